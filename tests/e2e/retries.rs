//! Branches that do not succeed: guest `retry`, traps and deadlines are
//! retried with backoff, visible in the API while they last, and bounded by
//! `retry_limit`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example};

async fn server_with_misbehave() -> Server {
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    let (status, body) = server.upload("misbehave", example("misbehave-rust")).await;
    assert_eq!(status, 201, "{body}");
    server
}

fn saga(action: &str, payload: Value, options: Value) -> Value {
    json!({
        "mode": "saga",
        "branches": [{
            "action": { "module": "misbehave", "function": action },
            "compensate": { "module": "misbehave", "function": "echo" },
            "payload": payload,
        }],
        "options": options,
    })
}

#[tokio::test]
async fn a_retrying_branch_shows_its_error_attempts_and_next_retry_until_the_limit_rolls_it_back() {
    let server = server_with_misbehave().await;
    let (status, body) =
        server.post("/v1/transactions", &saga("retry", json!("upstream busy"), json!({ "retry_limit": 3 }))).await;
    assert_eq!(status, 202, "{body}");
    let gid = body["gid"].as_str().unwrap().to_owned();

    // While it is stuck, the API says why and when it tries next.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        if tx["status"] == "submitted" && tx["attempts"].as_u64().unwrap_or(0) >= 1 {
            assert!(tx["last_error"].as_str().unwrap().contains("upstream busy"), "{tx}");
            assert!(tx["next_retry_at"].is_string(), "{tx}");
            assert_eq!(tx["branches"][0]["last_error"], "\"upstream busy\"", "the guest echoes its JSON payload");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never saw the retrying state: {tx}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let tx = server.wait_final(&gid, Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(tx["rollback_reason"], "retry limit of 3 exceeded after 4 attempts: \"upstream busy\"");
    assert_eq!(tx["branches"][0]["attempts"], 4);
    assert_eq!(tx["branches"][1]["status"], "succeeded", "the compensation ran");
}

#[tokio::test]
async fn a_trapping_branch_is_retried_with_backoff_not_failed_at_once() {
    let server = server_with_misbehave().await;
    let (status, body) = server.post("/v1/transactions", &saga("trap", json!(null), json!({ "retry_limit": 2 }))).await;
    assert_eq!(status, 202, "{body}");
    let gid = body["gid"].as_str().unwrap();
    let tx = server.wait_final(gid, Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    let reason = tx["rollback_reason"].as_str().unwrap();
    assert!(reason.starts_with("retry limit of 2 exceeded after 3 attempts: guest trapped"), "{reason}");
}

#[tokio::test]
async fn a_business_failure_is_final_at_once() {
    let server = server_with_misbehave().await;
    let mut request = saga("fail", json!("not allowed"), json!({}));
    request["wait"] = json!(true);
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["rollback_reason"], "\"not allowed\"");
    let (_, tx) = server.get(&format!("/v1/transactions/{}", body["gid"].as_str().unwrap())).await;
    assert_eq!(tx["branches"][0]["attempts"], 1, "never retried");
}

#[tokio::test]
async fn timeout_to_fail_rolls_back_a_saga_whose_branch_keeps_asking_to_retry() {
    let server = server_with_misbehave().await;
    let options = json!({ "timeout_to_fail": 2, "retry_interval": 1 });
    let (status, body) = server.post("/v1/transactions", &saga("retry", json!("later"), options)).await;
    assert_eq!(status, 202, "{body}");
    let gid = body["gid"].as_str().unwrap().to_owned();
    let tx = server.wait_final(&gid, Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(tx["rollback_reason"], "timeout after 2 seconds");
    assert!(tx["branches"][0]["attempts"].as_u64().unwrap() >= 2, "it was retried until then: {tx}");
    assert_eq!(tx["branches"][1]["status"], "succeeded", "the compensation ran");
}

#[tokio::test]
async fn request_timeout_cuts_a_slow_branch_at_its_own_deadline() {
    let server = server_with_misbehave().await;
    let started = std::time::Instant::now();
    let options = json!({ "request_timeout": 1, "retry_limit": 0 });
    let mut body = saga("spin", json!(null), options);
    body["wait"] = json!(true);
    let (status, tx) = server.post("/v1/transactions", &body).await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(
        tx["rollback_reason"],
        "retry limit of 0 exceeded after 1 attempts: deadline exceeded: the guest ran longer than 1s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut after 1 s, not the server's 10 s: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn headers_reach_the_branch_on_every_attempt() {
    let server = server_with_misbehave().await;
    let options = json!({ "branch_headers": [["x-tenant", "acme"]], "retry_interval": 1 });
    let (status, body) = server.post("/v1/transactions", &saga("retry-times", json!(2), options)).await;
    assert_eq!(status, 202, "{body}");
    let gid = body["gid"].as_str().unwrap().to_owned();
    // The second attempt asks for a third, and says what it was given.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        if tx["branches"][0]["attempts"] == 2 {
            assert_eq!(tx["branches"][0]["last_error"], r#"attempt 2 headers [("x-tenant", "acme")]"#, "{tx}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never saw the second attempt: {tx}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tx = server.wait_final(&gid, Duration::from_secs(15)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    assert_eq!(tx["branches"][0]["attempts"], 3);
}

#[tokio::test]
async fn max_retry_interval_caps_the_backoff_of_one_transaction() {
    let server = server_with_misbehave().await;
    let options = json!({ "retry_interval": 1, "max_retry_interval": 1 });
    let (status, body) = server.post("/v1/transactions", &saga("trap", json!(null), options)).await;
    assert_eq!(status, 202, "{body}");
    let gid = body["gid"].as_str().unwrap().to_owned();
    // Without the cap the fourth wait would be 8 s; with it, every wait is 1 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        if tx["branches"][0]["attempts"].as_u64().unwrap() >= 4 {
            let next = crate::harness::parse_time(tx["next_retry_at"].as_str().unwrap());
            let wait = next.duration_since(std::time::SystemTime::now()).unwrap_or_default();
            assert!(wait <= Duration::from_millis(1_100), "waits {wait:?} after 4 errors: {tx}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never saw the fourth attempt: {tx}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn options_out_of_range_are_refused_and_store_nothing() {
    let server = server_with_misbehave().await;
    let cases = [
        (
            json!({ "request_timeout": 0 }),
            "request_timeout must be between 1 and 10 seconds (the server's deadline_ms), got 0",
        ),
        (
            json!({ "request_timeout": 11 }),
            "request_timeout must be between 1 and 10 seconds (the server's deadline_ms), got 11",
        ),
        (json!({ "max_retry_interval": 0 }), "max_retry_interval must be between 1 and 86400 seconds, got 0"),
        (
            json!({ "retry_interval": 10, "max_retry_interval": 5 }),
            "max_retry_interval (5 s) must not be below retry_interval (10 s)",
        ),
        (json!({ "retry_interval": 0 }), "retry_interval must be between 1 and 86400 seconds, got 0"),
    ];
    for (i, (options, message)) in cases.into_iter().enumerate() {
        let mut body = saga("echo", json!(null), options);
        body["gid"] = json!(format!("bad-options-{i}"));
        let (status, answer) = server.post("/v1/transactions", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_options");
        assert_eq!(answer["error"]["message"], message);
        let (status, _) = server.get(&format!("/v1/transactions/bad-options-{i}")).await;
        assert_eq!(status, 404);
    }
}
