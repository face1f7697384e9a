//! `/v1/topics`: who subscribes to each topic. A message branch may name a
//! topic instead of a function; at submit it fans out to the topic's
//! subscribers (the engine's doing, not this module's).
//!
//! Subscribing checks that the module's current version exports the
//! function, as submitting a branch does; nothing re-checks later uploads.
//! A topic has no row of its own: it exists while it has subscribers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorEnvelope;
use super::{ApiError, AppState, body_error};
use crate::model::ModuleName;
use crate::store::{Subscriber, TopicName};

/// The body of `PUT` and `DELETE /v1/topics/{name}/subscribers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberRequest {
    module: String,
    function: String,
}

/// A subscription, as `PUT` answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    topic: String,
    module: String,
    function: String,
}

/// One subscriber in a topic's list: a module's function, or the URL a DTM
/// client subscribed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberView {
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// A topic and its subscribers, in subscription order.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicView {
    name: String,
    subscribers: Vec<SubscriberView>,
}

/// Every topic that has subscribers, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    topics: Vec<TopicView>,
}

/// What `DELETE` answers: the subscription is gone.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    removed: bool,
}

/// Subscribes a module's function: `201` when added, `200` when it was
/// subscribed already (the same body either way, so a retry is harmless).
#[utoipa::path(
    put,
    path = "/v1/topics/{name}/subscribers",
    operation_id = "subscribe",
    tag = "topics",
    params(("name" = String, Path, description = "The topic's name", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    request_body(content = SubscriberRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Subscribed already", body = SubscriptionView),
        (status = 201, description = "Subscribed", body = SubscriptionView),
        (status = 400, description = "`invalid_name`, `invalid_request`, `unknown_module`, `unknown_function`, \
            `invalid_body`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 413, description = "`too_large`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    let topic = topic_name(&name)?;
    let (module, function) = request(body)?;
    let record = state
        .registry
        .current(&module)
        .await?
        .ok_or_else(|| ApiError::bad_request("unknown_module", format!("no module named {:?}", module.as_str())))?;
    if !record.functions.iter().any(|f| f == &function) {
        return Err(ApiError::bad_request(
            "unknown_function",
            format!("module {} has no function {function:?}; it exports: {}", record.name, record.functions.join(", ")),
        ));
    }
    let now = state.engine.now();
    let added = state.engine.store().add_subscriber(&topic, &module, &function, now).await?;
    if added {
        tracing::info!(%topic, %module, function, "subscribed");
    }
    let code = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(SubscriptionView { topic: topic.to_string(), module: module.to_string(), function })))
}

/// Unsubscribes a module's function (whether or not the module still
/// exports it): `404` if it was not subscribed.
#[utoipa::path(
    delete,
    path = "/v1/topics/{name}/subscribers",
    operation_id = "unsubscribe",
    tag = "topics",
    params(("name" = String, Path, description = "The topic's name", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    request_body(content = SubscriberRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Unsubscribed", body = Removed),
        (status = 400, description = "`invalid_name`, `invalid_request`, `invalid_body`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: it was not subscribed", body = ErrorEnvelope),
        (status = 413, description = "`too_large`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Removed>, ApiError> {
    let topic = topic_name(&name)?;
    let (module, function) = request(body)?;
    if !state.engine.store().remove_subscriber(&topic, &module, &function).await? {
        return Err(ApiError::not_found(
            "not_found",
            format!("{module}.{function} is not subscribed to topic {topic}"),
        ));
    }
    tracing::info!(%topic, %module, function, "unsubscribed");
    Ok(Json(Removed { removed: true }))
}

/// Every topic that has subscribers, by name.
#[utoipa::path(
    get,
    path = "/v1/topics",
    operation_id = "list_topics",
    tag = "topics",
    responses(
        (status = 200, description = "Every topic that has subscribers", body = TopicList),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<TopicList>, ApiError> {
    let topics = group(state.engine.store().topics().await?);
    Ok(Json(TopicList { topics }))
}

/// One topic; `404` when it has no subscribers.
#[utoipa::path(
    get,
    path = "/v1/topics/{name}",
    operation_id = "get_topic",
    tag = "topics",
    params(("name" = String, Path, description = "The topic's name", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    responses(
        (status = 200, description = "The topic's subscribers, in subscription order", body = TopicView),
        (status = 400, description = "`invalid_name`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: the topic has no subscribers", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<TopicView>, ApiError> {
    let topic = topic_name(&name)?;
    let subscribers = state.engine.store().subscribers(&topic).await?;
    group(subscribers)
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("not_found", format!("topic {topic} has no subscribers")))
}

fn topic_name(name: &str) -> Result<TopicName, ApiError> {
    TopicName::parse(name).map_err(|e| ApiError::bad_request("invalid_name", e.0))
}

/// The module and function a subscriber request names.
fn request(body: Result<Bytes, BytesRejection>) -> Result<(ModuleName, String), ApiError> {
    let body = body.map_err(body_error)?;
    let SubscriberRequest { module, function } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("invalid subscriber request: {e}")))?;
    let module = ModuleName::parse(&module).map_err(|e| ApiError::bad_request("invalid_name", e.0))?;
    Ok((module, function))
}

/// Subscribers ordered by topic (as the store lists them) into one view per topic.
fn group(subscribers: Vec<Subscriber>) -> Vec<TopicView> {
    let mut topics: Vec<TopicView> = Vec::new();
    for s in subscribers {
        let entry = match s.url() {
            Some(url) => SubscriberView { module: None, function: None, url: Some(url.to_owned()) },
            None => SubscriberView { module: Some(s.module.to_string()), function: Some(s.function), url: None },
        };
        match topics.last_mut() {
            Some(last) if last.name == s.topic.as_str() => last.subscribers.push(entry),
            _ => topics.push(TopicView { name: s.topic.to_string(), subscribers: vec![entry] }),
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    //! Through the router (`oneshot`), on a real SQLite store with a module
    //! record planted directly (subscribing reads the record, never runs it).

    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use crate::api::auth::{Right, TokenSpec};
    use crate::api::{ApiLimits, AppState, Auth, router};
    use crate::branch::WasmBranches;
    use crate::database::Databases;
    use crate::engine::{Engine, EngineConfig, ManualClock};
    use crate::model::{DatabaseName, Digest, Millis, ModuleName, ModuleRecord};
    use crate::registry::{Registry, RegistryLimits};
    use crate::sandbox::{Limits, Sandbox};
    use crate::store::Store;
    use crate::test_db::fresh_sqlite;

    const TOKEN: &str = "operator";
    const READER: &str = "reader";

    /// The API with module `bank` (exporting `trans-in`, `trans-out`) stored,
    /// and two tokens: `operator` with every right, `reader` with `read`; and
    /// its clock, which moves only when told to.
    async fn app() -> (Router, ManualClock) {
        let store = Store::connect(&fresh_sqlite()).await.expect("store");
        let bytes = b"bank component";
        let bank = ModuleRecord {
            name: ModuleName::parse("bank").unwrap(),
            digest: Digest::of(bytes),
            world: "branch".to_owned(),
            functions: vec!["trans-in".to_owned(), "trans-out".to_owned()],
            database: DatabaseName::default_name(),
            instance_reuse: None,
            http_hosts: Vec::new(),
            size: bytes.len() as u64,
            created_at: Millis(1),
        };
        store.put_module(&bank, bytes).await.expect("plant bank");
        let urls = BTreeMap::from([(DatabaseName::default_name(), fresh_sqlite())]);
        let databases = Arc::new(Databases::connect(&urls, &Default::default()).await.expect("databases"));
        let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
        let limits = RegistryLimits { max_size: 1 << 20, ..Default::default() };
        let registry = Registry::new(store.clone(), sandbox.clone(), databases.kinds(), limits, Vec::new());
        let branches = WasmBranches::new(registry.clone(), sandbox, databases, &store);
        let clock = ManualClock::new(Millis(1_700_000_000_000));
        let engine = Engine::new(store, Arc::new(branches.clone()), Arc::new(clock.clone()), EngineConfig::default());
        let tokens = [
            TokenSpec { name: "ops".into(), token: TOKEN.into(), rights: Right::ALL.to_vec() },
            TokenSpec { name: "dashboard".into(), token: READER.into(), rights: vec![Right::Read] },
        ];
        let app = router(AppState {
            engine,
            registry,
            branches,
            http: crate::branch::HttpBranches::new(Vec::new().into(), Duration::from_secs(3)),
            auth: Auth::new(&tokens),
            limits: ApiLimits::default(),
            wait_timeout: Duration::from_secs(5),
        });
        (app, clock)
    }

    async fn send(app: &Router, token: &str, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn put(app: &Router, topic: &str, body: Value) -> (StatusCode, Value) {
        send(app, TOKEN, "PUT", &format!("/v1/topics/{topic}/subscribers"), Some(body)).await
    }

    async fn delete(app: &Router, topic: &str, body: Value) -> (StatusCode, Value) {
        send(app, TOKEN, "DELETE", &format!("/v1/topics/{topic}/subscribers"), Some(body)).await
    }

    async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
        send(app, TOKEN, "GET", uri, None).await
    }

    #[tokio::test]
    async fn subscribing_answers_201_then_200_and_the_topic_lists_its_subscribers_in_order() {
        let (app, clock) = app().await;
        let out = json!({ "module": "bank", "function": "trans-out" });
        let (status, body) = put(&app, "orders.created", out.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body, json!({ "topic": "orders.created", "module": "bank", "function": "trans-out" }));
        let (status, again) = put(&app, "orders.created", out).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again, body);
        // Subscribed later (though its name sorts first): listed after.
        clock.advance_ms(1);
        let (status, _) = put(&app, "orders.created", json!({ "module": "bank", "function": "trans-in" })).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = put(&app, "audit", json!({ "module": "bank", "function": "trans-in" })).await;
        assert_eq!(status, StatusCode::CREATED);

        let (status, topic) = get(&app, "/v1/topics/orders.created").await;
        assert_eq!(status, StatusCode::OK, "{topic}");
        let created = json!({ "name": "orders.created", "subscribers": [
            { "module": "bank", "function": "trans-out" },
            { "module": "bank", "function": "trans-in" },
        ]});
        assert_eq!(topic, created, "in subscription order");
        let (status, all) = get(&app, "/v1/topics").await;
        assert_eq!(status, StatusCode::OK, "{all}");
        let audit = json!({ "name": "audit", "subscribers": [{ "module": "bank", "function": "trans-in" }] });
        assert_eq!(all, json!({ "topics": [audit, created] }), "by topic name");
    }

    #[tokio::test]
    async fn bad_subscriptions_are_refused_with_a_reason_and_nothing_is_stored() {
        let (app, _) = app().await;
        let cases = [
            ("Orders", json!({ "module": "bank", "function": "trans-in" }), "invalid_name", "topic name \"Orders\""),
            ("orders", json!({ "module": "Bank", "function": "trans-in" }), "invalid_name", "module name \"Bank\""),
            (
                "orders",
                json!({ "module": "shop", "function": "trans-in" }),
                "unknown_module",
                "no module named \"shop\"",
            ),
            (
                "orders",
                json!({ "module": "bank", "function": "refund" }),
                "unknown_function",
                "module bank has no function \"refund\"; it exports: trans-in, trans-out",
            ),
            (
                "orders",
                json!({ "module": "bank", "function": "trans-in", "filter": "x" }),
                "invalid_request",
                "unknown field `filter`",
            ),
            ("orders", json!({ "module": "bank" }), "invalid_request", "missing field `function`"),
        ];
        for (topic, body, code, text) in cases {
            let (status, answer) = put(&app, topic, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{topic} {body}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{topic} {body}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(text), "{topic} {body}: {answer}");
        }
        assert_eq!(get(&app, "/v1/topics").await, (StatusCode::OK, json!({ "topics": [] })));
        let (status, body) = get(&app, "/v1/topics/Orders").await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_name")), "{body}");
    }

    #[tokio::test]
    async fn unsubscribing_removes_once_then_answers_404_and_an_empty_topic_is_gone() {
        let (app, _) = app().await;
        let sub = json!({ "module": "bank", "function": "trans-in" });
        put(&app, "orders", sub.clone()).await;
        put(&app, "audit", sub.clone()).await;

        let (status, body) = delete(&app, "orders", sub.clone()).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "removed": true })));
        let (status, body) = delete(&app, "orders", sub.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(body["error"]["message"], "bank.trans-in is not subscribed to topic orders");
        let (status, body) = delete(&app, "orders", json!({ "module": "bank", "function": "trans-in", "x": 1 })).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_request")), "{body}");

        let (status, body) = get(&app, "/v1/topics/orders").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["message"], "topic orders has no subscribers");
        let (_, all) = get(&app, "/v1/topics").await;
        assert_eq!(
            all["topics"].as_array().map(|t| t.iter().map(|t| &t["name"]).collect::<Vec<_>>()),
            Some(vec![&json!("audit")])
        );
    }

    #[tokio::test]
    async fn reading_topics_needs_read_and_changing_subscribers_needs_admin() {
        let (app, _) = app().await;
        let sub = json!({ "module": "bank", "function": "trans-in" });
        assert_eq!(put(&app, "orders", sub.clone()).await.0, StatusCode::CREATED);

        assert_eq!(send(&app, READER, "GET", "/v1/topics", None).await.0, StatusCode::OK);
        assert_eq!(send(&app, READER, "GET", "/v1/topics/orders", None).await.0, StatusCode::OK);
        for method in ["PUT", "DELETE"] {
            let (status, body) = send(&app, READER, method, "/v1/topics/orders/subscribers", Some(sub.clone())).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method}: {body}");
            assert!(body["error"]["message"].as_str().unwrap_or_default().contains("admin"), "{method}: {body}");
        }
        let (status, _) = send(&app, "wrong", "GET", "/v1/topics", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (_, topic) = get(&app, "/v1/topics/orders").await;
        assert_eq!(topic["subscribers"], json!([sub]), "the refused DELETE removed nothing");
    }
}
