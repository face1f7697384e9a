//! Bad uploads and bad transaction requests: a 4xx that says what is wrong,
//! and nothing stored.

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example, transfer};

async fn server() -> Server {
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    server
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_reason_and_nothing_is_stored() {
    let server = server().await;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("text", b"hello, world".to_vec(), "not_wasm", "not a WebAssembly binary"),
        ("empty", Vec::new(), "empty_upload", "empty"),
        // The smallest valid core module: magic + version 1.
        ("core", b"\0asm\x01\0\0\0".to_vec(), "core_module", "not a component"),
        // The smallest valid component: it exports nothing.
        ("nothing", b"\0asm\x0d\0\x01\0".to_vec(), "world_mismatch", "does not implement"),
        ("truncated", example("transfer-rust")[..200].to_vec(), "invalid_component", "invalid component"),
    ];
    for (name, bytes, code, text) in cases {
        let (status, body) = server.upload(name, bytes).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(message(&body).contains(text), "{name}: {body}");
        let (status, _) = server.get(&format!("/v1/modules/{name}")).await;
        assert_eq!(status, 404, "{name} must not be stored");
    }

    let r = server
        .http
        .put(format!("{}/v1/modules/bank?database=nope", server.base))
        .body(example("transfer-rust"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_database", "{body}");
    assert!(message(&body).contains("nope"));

    let (status, body) = server.upload("Bad Name", example("transfer-rust")).await;
    assert_eq!(status, 400, "{body}");

    let (_, list) = server.get("/v1/modules").await;
    assert_eq!(list["modules"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_good_upload_reports_its_digest_and_functions() {
    let server = server().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "bank");
    assert_eq!(body["world"], "branch");
    assert_eq!(body["database"], "default");
    assert!(body["digest"].as_str().unwrap().starts_with("sha256:"));
    let functions: Vec<&str> = body["functions"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    for f in ["setup", "trans-out", "trans-out-revert", "trans-in", "trans-in-revert", "balance"] {
        assert!(functions.contains(&f), "{f} missing from {functions:?}");
    }
    let (status, got) = server.get("/v1/modules/bank").await;
    assert_eq!(status, 200);
    assert_eq!(got["digest"], body["digest"]);
}

#[tokio::test]
async fn bad_transaction_requests_are_refused_and_nothing_is_stored() {
    let server = server().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");

    let mut unknown_module = transfer("bank", Some("t1"), "a", "b", 1, true);
    unknown_module["branches"][1]["action"]["module"] = json!("nobank");
    let mut unknown_function = transfer("bank", Some("t2"), "a", "b", 1, true);
    unknown_function["branches"][0]["compensate"]["function"] = json!("trans-out-undo");
    let mut bad_mode = transfer("bank", Some("t3"), "a", "b", 1, true);
    bad_mode["mode"] = json!("tcc-ish");
    let mut unknown_field = transfer("bank", Some("t4"), "a", "b", 1, true);
    unknown_field["brnaches"] = json!([]);
    let mut bad_gid = transfer("bank", None, "a", "b", 1, true);
    bad_gid["gid"] = json!("a;b");
    let mut no_branches = transfer("bank", Some("t6"), "a", "b", 1, true);
    no_branches["branches"] = json!([]);
    let mut missing_compensate = transfer("bank", Some("t7"), "a", "b", 1, true);
    missing_compensate["branches"][0].as_object_mut().unwrap().remove("compensate");

    let cases = [
        (unknown_module, "unknown_module", "nobank"),
        (unknown_function, "unknown_function", "trans-out-undo"),
        (bad_mode, "unsupported_mode", "tcc-ish"),
        (unknown_field, "invalid_request", "brnaches"),
        (bad_gid, "invalid_gid", "gid"),
        (no_branches, "no_branches", "at least one branch"),
        (missing_compensate, "invalid_branch", "`compensate` is missing"),
    ];
    for (request, code, text) in cases {
        let (status, body) = server.post("/v1/transactions", &request).await;
        assert_eq!(status, 400, "{request}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(message(&body).contains(text), "{body}");
    }
    let r = server.http.post(format!("{}/v1/transactions", server.base)).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let (_, list) = server.get("/v1/transactions").await;
    assert_eq!(list["transactions"], json!([]), "nothing was stored");
    let (status, _) = server.get("/v1/transactions/t1").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn direct_calls_report_guest_refusals_and_unknown_functions() {
    let server = server().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    server.call("bank", "setup", json!({ "accounts": [{ "id": "alice", "balance": 5 }] })).await;

    let (status, body) = server.post("/v1/modules/bank/call/balance", &json!({ "id": "zed" })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "branch_failure");

    let (status, body) = server.post("/v1/modules/bank/call/nope", &json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_function");

    let (status, body) = server.post("/v1/modules/ghost/call/balance", &json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_module");
    // A failed call leaves nothing behind: the balance is unchanged.
    assert_eq!(server.balance("bank", "alice").await, 5);
}

#[tokio::test]
async fn instance_reuse_is_opt_in_per_upload_and_bounded() {
    let server = server().await;
    let put = |query: &'static str| {
        let url = format!("{}/v1/modules/bank{query}", server.base);
        server.http.put(url).body(example("transfer-rust")).send()
    };
    let r = put("?reuse=0").await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_reuse", "{body}");

    let r = put("?reuse=50").await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["instance_reuse"], 50, "{body}");

    // A reused module behaves exactly like a fresh one.
    server
        .call("bank", "setup", json!({ "accounts": [{ "id": "a", "balance": 10 }, { "id": "b", "balance": 0 }] }))
        .await;
    for _ in 0..3 {
        let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "a", "b", 2, true)).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    }
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "a", "b", 100, true)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("failed")), "{body}");
    assert_eq!(server.balance("bank", "a").await, 4);
    assert_eq!(server.balance("bank", "b").await, 6);
}

#[tokio::test]
async fn uploads_and_requests_past_their_limits_are_refused_with_a_4xx_and_nothing_is_stored() {
    let extra =
        crate::harness::Extra { config: "max_module_mb = 1\nmax_branches = 8\n".to_owned(), ..Default::default() };
    let server = Server::start_with(Backend::Sqlite, extra).await;
    server.ready().await;

    let mut random = b"\0asm\x0d\0\x01\0".to_vec();
    random.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let (status, body) = server.upload("random", random).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_component")), "{body}");
    let (status, body) = server.upload("huge", vec![0u8; (1 << 20) + 1]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
    let r = server
        .http
        .put(format!("{}/v1/modules/bank?http=http://x/y", server.base))
        .body(example("transfer-rust"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_http_host", "{body}");

    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let mut many = transfer("bank", Some("many"), "a", "b", 1, true);
    let one = many["branches"][0].clone();
    many["branches"] = Value::Array(vec![one; 9]);
    let (status, body) = server.post("/v1/transactions", &many).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("too_many_branches")), "{body}");
    let mut fat = transfer("bank", Some("fat"), "a", "b", 1, true);
    fat["branches"][0]["payload"] = json!({ "pad": "x".repeat(70_000) });
    let (status, body) = server.post("/v1/transactions", &fat).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    let mut headers = transfer("bank", Some("headers"), "a", "b", 1, true);
    headers["options"] = json!({ "branch_headers": [["x", "y".repeat(5000)]] });
    let (status, body) = server.post("/v1/transactions", &headers).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_options")), "{body}");
    // Its own connection: the server answers before reading the body, then closes.
    let r =
        reqwest::Client::new().post(format!("{}/v1/transactions", server.base)).body(vec![b' '; 2 << 20]).send().await;
    assert!(r.is_err() || r.is_ok_and(|r| r.status().as_u16() == 413), "a JSON body of 2 MiB is refused");
    let (status, body) = server.post("/v1/modules/bank/call/balance", &json!({ "pad": "x".repeat(70_000) })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");

    let (_, list) = server.get("/v1/transactions").await;
    assert_eq!(list["transactions"], json!([]), "nothing was stored");
    let (_, modules) = server.get("/v1/modules").await;
    assert_eq!(modules["modules"].as_array().map(Vec::len), Some(1), "only the good upload: {modules}");
}
