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
