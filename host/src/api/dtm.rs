//! DTM's HTTP API on the same port (`/api/dtmsvr/…`, `/api/ping`), so that
//! clients written for DTM (its SDKs, its HTTP calls) work unchanged: the
//! routes, request fields, envelope (`dtm_result`), status names (`succeed`)
//! and status codes (`409` FAILURE, `425` ONGOING, `500` any other error) of
//! `../shared/reference/dtm.md` §1. Transactions made here are ordinary
//! transactions, seen by both APIs.
//!
//! Branch URLs are HTTP endpoints (`http://…`, allowed by `http_allow`), or
//! `wasm://<module>/<function>`: that function of an uploaded module, run in
//! the sandbox behind the barrier, pinned like any Wasm target.
//!
//! Served: sagas (sequential and concurrent, `custom_data` orders), two-phase
//! messages (`prepare` with `query_prepared`, `submit`, `abort`, the
//! back-check when a prepared message times out, `custom_data` delay),
//! `wait_result`, client-driven TCC and XA (`prepare`, `registerBranch` and
//! its aliases, `submit` or `abort`; rolled back after `timeout_to_fail`,
//! default 35 s), `query`, `all`, `newGid`, `forceStop`,
//! `resetNextCronTime`, `version`, `ping`, and topics (`subscribe`,
//! `unsubscribe`, `DELETE topic/{name}`, `topic://name` actions), whose
//! subscribers may be URLs or `wasm://` functions.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, time, transactions};
use crate::engine::ControlError;
use crate::engine::control::{Control, Request};
use crate::model::{BranchId, BranchOp, Gid, Millis, Mode, ModuleName, Op, OpStatus, Options, Status, Target};
use crate::model::{Transaction, TransactionState};
use crate::store::TopicName;

/// The routes, to be nested under `/api`.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/ping", any(|| async { Json(json!({ "msg": "pong" })) }))
        .route("/dtmsvr/version", get(version))
        .route("/dtmsvr/newGid", get(new_gid))
        .route("/dtmsvr/prepare", post(prepare))
        .route("/dtmsvr/submit", post(submit))
        .route("/dtmsvr/abort", post(abort))
        .route("/dtmsvr/forceStop", post(force_stop))
        .route("/dtmsvr/resetNextCronTime", post(reset_next_cron_time))
        .route("/dtmsvr/registerBranch", post(register_branch))
        .route("/dtmsvr/registerTccBranch", post(register_branch))
        .route("/dtmsvr/registerXaBranch", post(register_branch))
        .route("/dtmsvr/query", get(query))
        .route("/dtmsvr/all", get(all))
        .route("/dtmsvr/subscribe", get(subscribe))
        .route("/dtmsvr/unsubscribe", get(unsubscribe))
        .route("/dtmsvr/topic/{name}", axum::routing::delete(delete_topic))
}

/// How long a prepared message waits for its client's `submit` before the
/// host back-checks it (DTM's default `timeout_to_fail`).
const BACK_CHECK_AFTER_SECS: u64 = 35;

/// A DTM error reply: `409` FAILURE, `425` ONGOING, `500` anything else.
#[derive(Debug)]
pub struct DtmError {
    status: StatusCode,
    message: String,
}

impl DtmError {
    fn failure(message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, message: message.into() }
    }

    fn other(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }
}

impl IntoResponse for DtmError {
    fn into_response(self) -> Response {
        let body = match self.status {
            StatusCode::CONFLICT => json!({ "dtm_result": "FAILURE", "message": self.message }),
            StatusCode::TOO_EARLY => json!({ "dtm_result": "ONGOING", "message": self.message }),
            _ => json!({ "message": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ApiError> for DtmError {
    fn from(e: ApiError) -> Self {
        let status =
            if e.status == StatusCode::CONFLICT { StatusCode::CONFLICT } else { StatusCode::INTERNAL_SERVER_ERROR };
        Self { status, message: e.message }
    }
}

impl From<crate::engine::EngineError> for DtmError {
    fn from(e: crate::engine::EngineError) -> Self {
        DtmError::from(ApiError::from(e))
    }
}

impl From<crate::store::StoreError> for DtmError {
    fn from(e: crate::store::StoreError) -> Self {
        DtmError::from(ApiError::from(e))
    }
}

type Reply = Result<Json<Value>, DtmError>;

fn success() -> Reply {
    Ok(Json(json!({ "dtm_result": "SUCCESS" })))
}

/// A transaction as DTM's clients send it; fields they send as `null`, and
/// ones wasmtx does not use (`protocol`, `passthrough_headers`, `req_extra`,
/// ...), are accepted.
#[derive(Debug, Default, Deserialize)]
struct DtmTrans {
    #[serde(default)]
    gid: String,
    #[serde(default)]
    trans_type: String,
    #[serde(default)]
    steps: Option<Vec<BTreeMap<String, String>>>,
    #[serde(default)]
    payloads: Option<Vec<String>>,
    #[serde(default)]
    custom_data: Option<String>,
    #[serde(default)]
    query_prepared: Option<String>,
    #[serde(default)]
    wait_result: Option<bool>,
    #[serde(default)]
    timeout_to_fail: Option<i64>,
    #[serde(default)]
    request_timeout: Option<i64>,
    #[serde(default)]
    retry_interval: Option<i64>,
    #[serde(default)]
    retry_limit: Option<i64>,
    #[serde(default)]
    branch_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    concurrent: Option<bool>,
}

/// `custom_data` of a saga or a message.
#[derive(Debug, Default, Deserialize)]
struct CustomData {
    #[serde(default)]
    concurrent: bool,
    #[serde(default)]
    orders: BTreeMap<String, Vec<usize>>,
    #[serde(default)]
    delay: Option<u64>,
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> Result<T, DtmError> {
    let body = body.map_err(|e| DtmError::other(e.body_text()))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| DtmError::other(format!("invalid request body: {e}")))
}

/// DTM strips newlines, carriage returns and `;` from a gid.
fn gid(text: &str) -> Result<Gid, DtmError> {
    let cleaned: String = text.chars().filter(|c| !matches!(c, '\n' | '\r' | ';')).collect();
    if cleaned.is_empty() {
        return Err(DtmError::other("gid is empty"));
    }
    Gid::parse(&cleaned).map_err(|e| DtmError::other(e.0))
}

fn mode(trans_type: &str) -> Result<Mode, DtmError> {
    Mode::parse(trans_type).ok_or_else(|| DtmError::other(format!("unknown trans_type {trans_type:?}")))
}

/// DTM's name for a status.
fn status_name(status: Status) -> &'static str {
    match status {
        Status::Succeeded => "succeed",
        other => other.as_str(),
    }
}

async fn version() -> Json<Value> {
    Json(json!({ "version": format!("wasmtx {}", env!("CARGO_PKG_VERSION")) }))
}

async fn new_gid() -> Json<Value> {
    Json(json!({ "gid": Gid::generate().to_string(), "dtm_result": "SUCCESS" }))
}

/// A branch URL as a target: `http://…` (allowed by `http_allow`), `""`
/// (DTM: counts as success, never called), or `wasm://module/function`.
async fn target(state: &AppState, url: &str) -> Result<Target, DtmError> {
    if url.is_empty() {
        return Ok(Target::http(""));
    }
    if let Some(rest) = url.strip_prefix("wasm://") {
        let (module, function) = rest
            .split_once('/')
            .ok_or_else(|| DtmError::other(format!("{url}: a Wasm branch is wasm://<module>/<function>")))?;
        let name = ModuleName::parse(module).map_err(|e| DtmError::other(format!("{url}: {}", e.0)))?;
        let record = state
            .registry
            .current(&name)
            .await?
            .ok_or_else(|| DtmError::other(format!("{url}: no module named {module:?}")))?;
        if record.world != "branch" || !record.functions.iter().any(|f| f == function) {
            return Err(DtmError::other(format!("{url}: module {module} has no branch function {function:?}")));
        }
        return Ok(Target {
            module: name,
            digest: record.digest,
            database: record.database,
            function: function.into(),
        });
    }
    if let Some(why) = state.http.refusal(url) {
        return Err(DtmError::other(why));
    }
    Ok(Target::http(url))
}

/// The options DTM's fields and `custom_data` ask for, checked as the native API checks them.
fn options(state: &AppState, t: &DtmTrans, mode: Mode, branches: usize) -> Result<Options, DtmError> {
    let custom: CustomData = match t.custom_data.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(text) => serde_json::from_str(text).map_err(|e| DtmError::other(format!("custom_data: {e}")))?,
        None => CustomData::default(),
    };
    let positive = |v: Option<i64>| v.filter(|&v| v > 0).and_then(|v| u64::try_from(v).ok());
    let options = Options {
        // A message's timeout is when it is back-checked, not a rollback.
        timeout_to_fail: if mode == Mode::Msg { None } else { positive(t.timeout_to_fail) },
        retry_limit: if mode == Mode::Msg { None } else { positive(t.retry_limit).and_then(|v| u32::try_from(v).ok()) },
        retry_interval: positive(t.retry_interval),
        request_timeout: positive(t.request_timeout),
        branch_headers: t.branch_headers.clone().unwrap_or_default().into_iter().collect(),
        concurrent: t.concurrent.unwrap_or(false) || custom.concurrent,
        orders: custom.orders,
        delay: if mode == Mode::Msg { custom.delay.filter(|&d| d > 0) } else { None },
        ..Options::default()
    };
    transactions::check_options(&options, &state.limits)?;
    transactions::check_concurrency(&options, mode, branches)?;
    Ok(options)
}

/// A new saga or message from DTM's fields; a message is `prepared` (its
/// back-check due after the timeout) or already `submitted`.
async fn build(state: &AppState, t: &DtmTrans, gid: Gid, prepared: bool) -> Result<TransactionState, DtmError> {
    let mode = mode(&t.trans_type)?;
    if !matches!(mode, Mode::Saga | Mode::Msg) {
        return Err(DtmError::other(format!(
            "trans_type {mode}: submit serves DTM's saga and msg (a TCC or XA is prepared first, its branches \
             registered); workflows run through POST /v1/transactions"
        )));
    }
    let steps = t.steps.clone().unwrap_or_default();
    let payloads = t.payloads.clone().unwrap_or_default();
    if steps.is_empty() {
        return Err(DtmError::other("a transaction needs at least one step"));
    }
    if steps.len() > state.limits.max_branches {
        return Err(DtmError::other(format!(
            "{} steps; at most {} (max_branches)",
            steps.len(),
            state.limits.max_branches
        )));
    }
    let options = options(state, t, mode, steps.len())?;
    let now = state.engine.now();
    let mut ops = Vec::new();
    if mode == Mode::Msg {
        let check = t.query_prepared.clone().unwrap_or_default();
        if prepared && check.is_empty() {
            return Err(DtmError::other(
                "a prepared message needs query_prepared, the URL that says whether it committed",
            ));
        }
        let mut local = BranchOp::new(BranchId::local(), Op::Msg, target(state, &check).await?, Vec::new(), now);
        if !prepared {
            local.status = OpStatus::Succeeded;
        }
        ops.push(local);
    }
    let mut next = 0;
    for (i, step) in steps.iter().enumerate() {
        let payload = payloads.get(i).cloned().or_else(|| step.get("data").cloned()).unwrap_or_default().into_bytes();
        if payload.len() > state.limits.max_payload_bytes {
            return Err(DtmError::other(format!(
                "step {i}: the payload is {} bytes; at most {} (max_payload_kb)",
                payload.len(),
                state.limits.max_payload_bytes
            )));
        }
        let action = step.get("action").cloned().unwrap_or_default();
        if action.is_empty() {
            return Err(DtmError::other(format!("step {i}: action is empty")));
        }
        if mode == Mode::Msg {
            for target in action_targets(state, &action).await? {
                ops.push(BranchOp::new(BranchId::from_index(next), Op::Action, target, payload.clone(), now));
                next += 1;
            }
            continue;
        }
        let branch_id = BranchId::from_index(next);
        next += 1;
        ops.push(BranchOp::new(branch_id.clone(), Op::Action, target(state, &action).await?, payload.clone(), now));
        let compensate = step.get("compensate").cloned().unwrap_or_default();
        ops.push(BranchOp::new(branch_id, Op::Compensate, target(state, &compensate).await?, payload, now));
    }
    if next > state.limits.max_branches {
        return Err(DtmError::other(format!(
            "{next} branches once topics are expanded; at most {} (max_branches)",
            state.limits.max_branches
        )));
    }
    let back_check = now.plus_ms(positive_or(t.timeout_to_fail, BACK_CHECK_AFTER_SECS) * 1000);
    let (status, due) = if prepared { (Status::Prepared, back_check) } else { (Status::Submitted, now) };
    Ok(new_state(gid, mode, status, options, ops, now, due))
}

fn positive_or(v: Option<i64>, default: u64) -> u64 {
    v.filter(|&v| v > 0).and_then(|v| u64::try_from(v).ok()).unwrap_or(default)
}

async fn prepare(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Reply {
    let t: DtmTrans = parse(body)?;
    let gid = gid(&t.gid)?;
    if let Some(existing) = state.engine.snapshot(&gid).await? {
        let status = existing.transaction.status;
        return if status == Status::Prepared {
            success()
        } else {
            Err(DtmError::failure(format!("current status '{}', cannot prepare", status_name(status))))
        };
    }
    let new = match mode(&t.trans_type)? {
        Mode::Tcc | Mode::Xa => client_two_phase(&state, &t, gid)?,
        _ => build(&state, &t, gid, true).await?,
    };
    state.engine.submit(new, false).await?;
    success()
}

/// A TCC or XA whose first phase the client runs: `prepared`, without ops
/// until the client registers them, rolled back if not submitted within its
/// `timeout_to_fail` (DTM's default: 35 s).
fn client_two_phase(state: &AppState, t: &DtmTrans, gid: Gid) -> Result<TransactionState, DtmError> {
    let mode = mode(&t.trans_type)?;
    let mut options = options(state, t, mode, 0)?;
    options.timeout_to_fail = Some(positive_or(t.timeout_to_fail, BACK_CHECK_AFTER_SECS));
    let now = state.engine.now();
    Ok(new_state(gid, mode, Status::Prepared, options, Vec::new(), now, now))
}

/// A new transaction, due at `due`, not leased yet.
fn new_state(
    gid: Gid,
    mode: Mode,
    status: Status,
    options: Options,
    ops: Vec<BranchOp>,
    now: Millis,
    due: Millis,
) -> TransactionState {
    TransactionState { transaction: Transaction::new(gid, mode, status, options, now, due), ops }
}

async fn submit(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Reply {
    let t: DtmTrans = parse(body)?;
    let gid = gid(&t.gid)?;
    let wait = t.wait_result.unwrap_or(false);
    let live = match state.engine.snapshot(&gid).await? {
        None => {
            let new = build(&state, &t, gid.clone(), false).await?;
            state.engine.submit(new, wait).await?.live
        }
        Some(existing) => {
            let control = match existing.transaction.status {
                Status::Prepared => Control::Submit,
                // DTM processes a submitted transaction again.
                Status::Submitted => Control::RetryNow,
                status => {
                    return Err(DtmError::failure(format!("current status '{}', cannot submit", status_name(status))));
                }
            };
            control_as(&state, &gid, control, None).await?;
            None
        }
    };
    if wait {
        let done = state.engine.wait(&gid, live, state.wait_timeout).await?;
        return match done {
            Some(s) if s.transaction.status == Status::Succeeded => success(),
            Some(s) => Err(DtmError::failure(
                s.transaction.rollback_reason.unwrap_or_else(|| "wait result not return success".to_owned()),
            )),
            None => Err(DtmError::failure("wait result not return success")),
        };
    }
    success()
}

/// Applies `control` as the DTM client asked; DTM's codes for what does not apply.
async fn control_as(state: &AppState, gid: &Gid, control: Control, reason: Option<String>) -> Result<(), DtmError> {
    let request = Request { control, actor: "dtm client".to_owned(), reason, register: Vec::new() };
    match state.engine.control(gid, request).await {
        Ok(_) => Ok(()),
        Err(ControlError::NotFound(gid)) => Err(DtmError::other(format!("no trans with gid: {gid}"))),
        Err(ControlError::Refused(m) | ControlError::Busy(m)) => Err(DtmError::failure(m)),
        Err(ControlError::Engine(e)) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct GidBody {
    #[serde(default)]
    gid: String,
    #[serde(default)]
    rollback_reason: Option<String>,
}

/// `abort`: DTM's clients abort a message they prepared, or a TCC or XA
/// while it is `prepared` (again while `aborting`); anything else is `409`.
async fn abort(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Reply {
    let b: GidBody = parse(body)?;
    let gid = gid(&b.gid)?;
    let Some(existing) = state.engine.snapshot(&gid).await? else {
        return Err(DtmError::other(format!("no trans with gid: {gid}")));
    };
    let t = &existing.transaction;
    match (t.mode, t.status) {
        (Mode::Tcc | Mode::Xa, Status::Aborting) => return success(),
        (Mode::Msg | Mode::Tcc | Mode::Xa, Status::Prepared) => {}
        (mode, status) => {
            return Err(DtmError::failure(format!(
                "trans type: '{mode}' current status '{}', cannot abort",
                status_name(status)
            )));
        }
    }
    control_as(&state, &gid, Control::Abort, b.rollback_reason.filter(|r| !r.is_empty())).await?;
    success()
}

async fn force_stop(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Reply {
    let b: GidBody = parse(body)?;
    let gid = gid(&b.gid)?;
    control_as(&state, &gid, Control::ForceStop, None).await?;
    success()
}

async fn reset_next_cron_time(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Reply {
    let b: GidBody = parse(body)?;
    let gid = gid(&b.gid)?;
    control_as(&state, &gid, Control::RetryNow, None).await?;
    success()
}

/// `registerBranch` (and its TCC and XA aliases): a TCC branch's `confirm`
/// and `cancel` URLs with its `data`, or an XA branch's `url` (its commit and
/// rollback), join a TCC or XA its client prepared.
async fn register_branch(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Reply {
    let b: BTreeMap<String, Value> = parse(body)?;
    let text = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let gid = gid(&text("gid"))?;
    let existing = state.engine.snapshot(&gid).await?;
    let Some(existing) = existing.filter(|e| e.transaction.status == Status::Prepared) else {
        return Err(DtmError::failure(format!("no trans with gid: {gid} status: prepared found")));
    };
    let branch_id = BranchId::parse(&text("branch_id")).map_err(|e| DtmError::other(format!("branch_id: {}", e.0)))?;
    let now = state.engine.now();
    let mut ops = Vec::new();
    match existing.transaction.mode {
        Mode::Tcc => {
            let data = text("data").into_bytes();
            for op in [Op::Confirm, Op::Cancel] {
                let target = target(&state, &text(op.as_str())).await?;
                ops.push(BranchOp::new(branch_id.clone(), op, target, data.clone(), now));
            }
        }
        Mode::Xa => {
            let url = text("url");
            if url.starts_with("wasm://") {
                return Err(DtmError::other(
                    "an XA branch of a DTM client prepares in its own service: its url is http://; Wasm XA branches \
                     run through POST /v1/transactions with \"mode\":\"xa\"",
                ));
            }
            let target = target(&state, &url).await?;
            for op in [Op::Commit, Op::Rollback] {
                ops.push(BranchOp::new(branch_id.clone(), op, target.clone(), Vec::new(), now));
            }
        }
        _ => return Err(DtmError::failure(format!("no trans with gid: {gid} status: prepared found"))),
    }
    let request = Request { control: Control::Register, actor: "dtm client".to_owned(), reason: None, register: ops };
    match state.engine.control(&gid, request).await {
        Ok(_) => success(),
        Err(ControlError::NotFound(gid)) => {
            Err(DtmError::failure(format!("no trans with gid: {gid} status: prepared found")))
        }
        Err(ControlError::Refused(m) | ControlError::Busy(m)) => Err(DtmError::failure(m)),
        Err(ControlError::Engine(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct TopicParams {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    url: String,
}

fn topic_name(text: &str) -> Result<TopicName, DtmError> {
    if text.is_empty() {
        return Err(DtmError::other("topic is empty"));
    }
    TopicName::parse(text).map_err(|e| DtmError::other(e.0))
}

/// A subscriber's module and function: `wasm://module/function` is that
/// function, an `http://` URL is stored as the URL.
async fn subscriber(state: &AppState, url: &str) -> Result<(ModuleName, String), DtmError> {
    if url.is_empty() {
        return Err(DtmError::other("url is empty"));
    }
    let target = target(state, url).await?;
    Ok(match target.url() {
        Some(url) => (ModuleName::http_marker(), url.to_owned()),
        None => (target.module, target.function),
    })
}

type TopicQuery = Result<Query<TopicParams>, axum::extract::rejection::QueryRejection>;

/// The topic, the subscriber as stored, and the URL as given.
async fn topic_subscriber(
    state: &AppState,
    params: TopicQuery,
) -> Result<(TopicName, ModuleName, String, String), DtmError> {
    let Query(p) = params.map_err(|e| DtmError::other(e.body_text()))?;
    let topic = topic_name(&p.topic)?;
    let (module, function) = subscriber(state, &p.url).await?;
    Ok((topic, module, function, p.url))
}

/// `subscribe?topic&url[&remark]`: a repeated subscription is DTM's `500`.
async fn subscribe(State(state): State<AppState>, params: TopicQuery) -> Reply {
    let (topic, module, function, url) = topic_subscriber(&state, params).await?;
    let now = state.engine.now();
    if !state.engine.store().add_subscriber(&topic, &module, &function, now).await? {
        return Err(DtmError::other(format!("{url} is subscribed to topic {topic} already")));
    }
    success()
}

/// `unsubscribe?topic&url`: an unknown one is DTM's `500`.
async fn unsubscribe(State(state): State<AppState>, params: TopicQuery) -> Reply {
    let (topic, module, function, url) = topic_subscriber(&state, params).await?;
    if !state.engine.store().remove_subscriber(&topic, &module, &function).await? {
        return Err(DtmError::other(format!("{url} is not subscribed to topic {topic}")));
    }
    success()
}

/// `DELETE topic/{name}`: every subscriber goes; an unknown topic is DTM's `500`.
async fn delete_topic(State(state): State<AppState>, axum::extract::Path(name): axum::extract::Path<String>) -> Reply {
    let topic = topic_name(&name)?;
    let store = state.engine.store();
    let subscribers = store.subscribers(&topic).await?;
    if subscribers.is_empty() {
        return Err(DtmError::other(format!("topic {topic} not found")));
    }
    for s in subscribers {
        store.remove_subscriber(&topic, &s.module, &s.function).await?;
    }
    success()
}

/// The targets a step's action names: one, or for `topic://name` one per
/// subscriber (DTM expands a topic when the message is created).
async fn action_targets(state: &AppState, url: &str) -> Result<Vec<Target>, DtmError> {
    let Some(name) = url.strip_prefix("topic://") else { return Ok(vec![target(state, url).await?]) };
    let topic = topic_name(name)?;
    let subscribers = state.engine.store().subscribers(&topic).await?;
    if subscribers.is_empty() {
        return Err(DtmError::other(format!("topic {topic} not found")));
    }
    let mut targets = Vec::with_capacity(subscribers.len());
    for s in subscribers {
        targets.push(match s.url() {
            Some(url) => Target::http(url),
            None => target(state, &format!("wasm://{}/{}", s.module, s.function)).await?,
        });
    }
    Ok(targets)
}

#[derive(Debug, Deserialize)]
struct QueryParams {
    #[serde(default)]
    gid: String,
}

async fn query(
    State(state): State<AppState>,
    params: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(params) = params.map_err(|e| DtmError::other(e.body_text()))?;
    let gid = gid(&params.gid)?;
    match state.engine.snapshot(&gid).await? {
        None => Ok(Json(json!({ "transaction": null, "branches": [] }))),
        Some(s) => {
            let mut view = trans_view(&s.transaction);
            // A client's message: its back-check URL is the transaction's, not a branch.
            let check = s.op(&BranchId::local(), Op::Msg).filter(|_| crate::engine::control::client_message(&s));
            if let Some(url) = check.and_then(|o| o.target.url()) {
                view["query_prepared"] = json!(url);
            }
            let rows = dtm_rows(&s);
            let branches: Vec<Value> = rows.into_iter().map(|o| branch_view(&s.transaction.gid, o)).collect();
            Ok(Json(json!({ "transaction": view, "branches": branches })))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllParams {
    gid: Option<String>,
    position: Option<String>,
    limit: Option<u32>,
    status: Option<String>,
    trans_type: Option<String>,
}

async fn all(
    State(state): State<AppState>,
    params: Result<Query<AllParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(p) = params.map_err(|e| DtmError::other(e.body_text()))?;
    if let Some(g) = p.gid.as_deref().filter(|g| !g.is_empty()) {
        let gid = gid(g)?;
        let found = state.engine.snapshot(&gid).await?;
        let list: Vec<Value> = found.iter().map(|s| trans_view(&s.transaction)).collect();
        return Ok(Json(json!({ "transactions": list, "next_position": "" })));
    }
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let status = match p.status.as_deref().filter(|s| !s.is_empty()) {
        Some("succeed") => Some("succeeded".to_owned()),
        Some(s) => Some(Status::parse(s).ok_or_else(|| DtmError::other(format!("unknown status {s:?}")))?.to_string()),
        None => None,
    };
    let mode = match p.trans_type.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(mode(t)?.to_string()),
        None => None,
    };
    let cursor = p.position.filter(|c| !c.is_empty());
    let filter = crate::store::ListFilter { status, mode, module: None, cursor, limit };
    let page = state.engine.store().list_filtered(&filter).await?;
    let next = if page.len() == limit as usize {
        page.last().map(|t| t.gid.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let list: Vec<Value> = page.iter().map(trans_view).collect();
    Ok(Json(json!({ "transactions": list, "next_position": next })))
}

/// The branch rows in DTM's order: a saga's compensate row before its
/// action row, a TCC's cancel before its confirm, an XA's rollback before its
/// commit; a client message's back-check (`00 msg`) is not a row.
fn dtm_rows(s: &TransactionState) -> Vec<&BranchOp> {
    let client_message = crate::engine::control::client_message(s);
    let rank = |op: Op| match op {
        Op::Compensate | Op::Cancel | Op::Rollback => 0,
        _ => 1,
    };
    let mut rows: Vec<(usize, &BranchOp)> =
        s.ops.iter().enumerate().filter(|(_, o)| !(client_message && o.op == Op::Msg)).collect();
    // Stable: branches keep their order, the undo op goes first within one.
    rows.sort_by_key(|(i, o)| {
        let first = s.ops.iter().position(|x| x.branch_id == o.branch_id).unwrap_or(*i);
        (first, rank(o.op), *i)
    });
    rows.into_iter().map(|(_, o)| o).collect()
}

fn at(m: Millis) -> String {
    time::rfc3339(m)
}

/// A transaction as DTM's `query` and `all` show one.
fn trans_view(t: &Transaction) -> Value {
    let finished = |wanted: Status| (t.status == wanted).then(|| t.finished_at.map(at)).flatten();
    json!({
        "gid": t.gid.to_string(),
        "trans_type": t.mode.as_str(),
        "status": status_name(t.status),
        "protocol": "http",
        "rollback_reason": t.rollback_reason.clone().unwrap_or_default(),
        "create_time": at(t.created_at),
        "update_time": at(t.updated_at),
        "finish_time": finished(Status::Succeeded),
        "rollback_time": finished(Status::Failed),
        "next_cron_time": t.next_due.map(at),
        "timeout_to_fail": t.options.timeout_to_fail.unwrap_or(0),
        "retry_interval": t.options.retry_interval.unwrap_or(0),
        "request_timeout": t.options.request_timeout.unwrap_or(0),
        "retry_limit": t.options.retry_limit.unwrap_or(0),
        "concurrent": t.options.concurrent,
        "branch_headers": t.options.branch_headers.iter().cloned().collect::<BTreeMap<String, String>>(),
    })
}

/// A branch op as DTM's `query` shows it: its URL (`wasm://module/function` for a Wasm target).
fn branch_view(gid: &Gid, o: &BranchOp) -> Value {
    let url = match o.target.url() {
        Some(url) => url.to_owned(),
        None => format!("wasm://{}/{}", o.target.module, o.target.function),
    };
    json!({
        "gid": gid.to_string(),
        "url": url,
        "data": String::from_utf8_lossy(&o.payload),
        "branch_id": o.branch_id.to_string(),
        "op": o.op.as_str(),
        "status": match o.status { OpStatus::Succeeded => "succeed", s => s.as_str() },
        "update_time": at(o.updated_at),
    })
}
