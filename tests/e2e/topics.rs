//! Topic subscribers through the real server, on SQLite and on Postgres:
//! subscribing is idempotent and survives a restart, topics list their
//! subscribers in subscription order, unsubscribing removes once, and a
//! subscriber must be a function the module's current version exports.

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example};

/// A server with the Rust bank module uploaded as `bank`.
async fn bank(backend: Backend) -> Server {
    let server = Server::start(backend).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "upload: {body}");
    server
}

fn function(name: &str) -> Value {
    json!({ "module": "bank", "function": name })
}

async fn subscribers_are_kept_listed_in_order_and_removed_once(backend: Backend) {
    let mut server = bank(backend).await;
    let path = "/v1/topics/orders.paid/subscribers";

    let (status, body) = server.put(path, &function("trans-out")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({ "topic": "orders.paid", "module": "bank", "function": "trans-out" }));
    let (status, again) = server.put(path, &function("trans-out")).await;
    assert_eq!((status, &again), (200, &body), "subscribing again changes nothing");
    // Later, so listed after trans-out even though its name sorts first.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, body) = server.put(path, &function("trans-in")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.put("/v1/topics/audit/subscribers", &function("trans-in")).await;
    assert_eq!(status, 201, "{body}");

    let paid = json!({ "name": "orders.paid", "subscribers": [function("trans-out"), function("trans-in")] });
    let audit = json!({ "name": "audit", "subscribers": [function("trans-in")] });
    server.restart().await;
    assert_eq!(server.get("/v1/topics/orders.paid").await, (200, paid.clone()), "kept across a restart");
    assert_eq!(server.get("/v1/topics").await, (200, json!({ "topics": [audit.clone(), paid] })));

    let (status, body) = server.delete(path, &function("trans-out")).await;
    assert_eq!((status, body), (200, json!({ "removed": true })));
    let (status, body) = server.delete(path, &function("trans-out")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = server.delete(path, &function("trans-in")).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = server.get("/v1/topics/orders.paid").await;
    assert_eq!(status, 404, "a topic without subscribers is gone: {body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(server.get("/v1/topics").await, (200, json!({ "topics": [audit] })));
}

async fn only_an_exported_function_of_an_uploaded_module_may_subscribe(backend: Backend) {
    let server = bank(backend).await;
    let cases = [
        ("Orders", function("trans-in"), "invalid_name", "topic name \"Orders\" is invalid"),
        ("orders", json!({ "module": "shop", "function": "trans-in" }), "unknown_module", "no module named \"shop\""),
        ("orders", function("refund"), "unknown_function", "module bank has no function \"refund\"; it exports: "),
        ("orders", json!({ "module": "bank", "function": "trans-in", "when": 1 }), "invalid_request", "unknown field"),
    ];
    for (topic, body, code, text) in cases {
        let (status, answer) = server.put(&format!("/v1/topics/{topic}/subscribers"), &body).await;
        assert_eq!(status, 400, "{topic} {body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{topic} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(text), "{topic} {body}: {answer}");
    }
    assert_eq!(server.get("/v1/topics").await, (200, json!({ "topics": [] })), "nothing was stored");
}

on_both_backends!(
    subscribers_are_kept_listed_in_order_and_removed_once,
    only_an_exported_function_of_an_uploaded_module_may_subscribe,
);
