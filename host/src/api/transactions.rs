//! `/v1/transactions`: submit a saga (optionally waiting for its end), read
//! one transaction with its branch ops, list recent ones.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ErrorEnvelope;
use super::{ApiError, AppState, body_error, time};
use crate::engine::control::{Control, Request};
use crate::model::{
    BranchId, BranchOp, Gid, HistoryEntry, Mode, ModuleName, ModuleRecord, Op, OpStatus, Options, Status, Target,
    Transaction, TransactionState,
};
use crate::store::ListFilter;
use axum::extract::rejection::BytesRejection;

/// A transaction to start: which fields apply depends on `mode` (see the README).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Generated when absent; submitting a gid again never runs a branch twice.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    gid: Option<String>,
    #[schema(value_type = Mode)]
    mode: String,
    /// A message's local function, run before its branches.
    local: Option<LocalRequest>,
    #[serde(default)]
    branches: Vec<BranchRequest>,
    /// A workflow's module (mode `workflow`).
    workflow: Option<WorkflowRequest>,
    /// A workflow's input, handed to its `run`.
    input: Option<serde_json::Value>,
    /// Answer once the transaction is final (or the server's wait ends: `202`).
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    options: Options,
}

/// One branch: `action` and `compensate` for a saga, `try`, `confirm` and
/// `cancel` for a TCC, `action` alone for an XA; which are required depends
/// on the mode.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchRequest {
    action: Option<FunctionRef>,
    compensate: Option<FunctionRef>,
    #[serde(rename = "try")]
    try_: Option<FunctionRef>,
    confirm: Option<FunctionRef>,
    cancel: Option<FunctionRef>,
    #[serde(default)]
    payload: serde_json::Value,
}

impl BranchRequest {
    /// The branch's ops in the order they are stored, each with its function,
    /// as `mode` requires them; the ops of another mode are refused.
    fn ops(&self, mode: Mode, branch_id: &BranchId) -> Result<Vec<(Op, &FunctionRef)>, ApiError> {
        let given = [
            (Op::Action, &self.action),
            (Op::Compensate, &self.compensate),
            (Op::Try, &self.try_),
            (Op::Confirm, &self.confirm),
            (Op::Cancel, &self.cancel),
        ];
        let wanted: &[Op] = match mode {
            Mode::Saga => &[Op::Action, Op::Compensate],
            Mode::Tcc => &[Op::Try, Op::Confirm, Op::Cancel],
            Mode::Xa | Mode::Msg => &[Op::Action],
            // A workflow has no branches in its request (refused before).
            Mode::Workflow => &[],
        };
        let names = || wanted.iter().map(|op| format!("`{op}`")).collect::<Vec<_>>().join(", ");
        let mut ops = Vec::with_capacity(wanted.len());
        for (op, f) in given {
            match (wanted.contains(&op), f) {
                (true, Some(f)) => ops.push((op, f)),
                (true, None) => {
                    return Err(ApiError::bad_request(
                        "invalid_branch",
                        format!("branch {branch_id}: a {mode} branch needs {}; `{op}` is missing", names()),
                    ));
                }
                (false, Some(_)) => {
                    return Err(ApiError::bad_request(
                        "invalid_branch",
                        format!("branch {branch_id}: a {mode} branch has {}, not `{op}`", names()),
                    ));
                }
                (false, None) => {}
            }
        }
        if mode == Mode::Xa {
            // Phase 2 is the host's (COMMIT or ROLLBACK PREPARED); the ops
            // name the action's function so that they show where they commit.
            let action = ops[0].1;
            ops.extend([(Op::Commit, action), (Op::Rollback, action)]);
        }
        Ok(ops)
    }
}

/// A workflow's module: `{"module"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    module: String,
}

/// A message's local function: `{"module","function","payload"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalRequest {
    module: String,
    function: String,
    #[serde(default)]
    payload: serde_json::Value,
}

/// What an op calls: `{"module","function"}`, an HTTP endpoint `{"url"}`,
/// or for a message's branch `{"topic"}` (one branch per subscriber,
/// expanded at submit).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionRef {
    #[serde(default)]
    module: String,
    #[serde(default)]
    function: String,
    topic: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubmitResponse {
    gid: String,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_reason: Option<String>,
    /// What a workflow's `run` returned, once it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<serde_json::Value>,
}

#[utoipa::path(
    post,
    path = "/v1/transactions",
    operation_id = "submit_transaction",
    tag = "transactions",
    request_body(content = SubmitRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Final: `succeeded` or `failed` (with `rollback_reason`)", body = SubmitResponse),
        (status = 202, description = "Accepted and running", body = SubmitResponse),
        (status = 400, description = "`invalid_request`, `invalid_gid`, `unsupported_mode`, `no_branches`, \
            `too_many_branches`, `invalid_branch`, `invalid_options`, `invalid_name`, `invalid_payload`, \
            `unknown_module`, `unknown_function`, `unknown_topic`, `not_a_branch_module`, `not_a_workflow`, \
            `url_not_allowed`, `xa_unsupported`, `invalid_body`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 409, description = "`gid_conflict`: the gid is used by a different transaction",
            body = ErrorEnvelope),
        (status = 413, description = "`too_large`, `payload_too_large`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorEnvelope),
    ),
)]
pub async fn submit(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let body = body.map_err(body_error)?;
    let request: SubmitRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("invalid transaction request: {e}")))?;
    let wait = request.wait;
    let mut new = build(&state, request).await?;
    // A W3C `traceparent` (an invalid one is ignored, as the W3C says) is kept
    // with the transaction, as a branch header: its trace is the
    // transaction's, and branches get it (see `crate::telemetry`). It is not
    // counted in `max_headers`, and replaces one given in `branch_headers`.
    if let Some(traceparent) = headers.get(crate::telemetry::TRACEPARENT).and_then(|v| v.to_str().ok())
        && crate::telemetry::parse_traceparent(traceparent).is_some()
    {
        let branch_headers = &mut new.transaction.options.branch_headers;
        crate::telemetry::set_header(branch_headers, crate::telemetry::TRACEPARENT, traceparent.trim().to_owned());
    }
    let gid = new.transaction.gid.clone();
    let submitted = state.engine.submit(new.clone(), wait).await?;
    let mut current = submitted.state;
    if wait && !current.transaction.status.is_final() {
        current = state.engine.wait(&gid, submitted.live, state.wait_timeout).await?.unwrap_or(current);
    }
    // A gid already used by another request (found at submit, or by the
    // first branch's commit) is a conflict, never a silent success.
    if !same_request(&current, &new) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "gid_conflict",
            format!("gid {gid} is already used by a different transaction"),
        ));
    }
    let t = current.transaction;
    let output = match (t.mode, t.status) {
        (Mode::Workflow, Status::Succeeded) => workflow_output(&state, &t.gid).await?,
        _ => None,
    };
    let code = if t.status.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
    let response =
        SubmitResponse { gid: t.gid.to_string(), status: t.status, rollback_reason: t.rollback_reason, output };
    Ok((code, Json(response)))
}

/// What a finished workflow's `run` returned (from its journal), as JSON.
async fn workflow_output(state: &AppState, gid: &Gid) -> Result<Option<serde_json::Value>, ApiError> {
    let journal = state.engine.store().journal(gid).await?;
    Ok(crate::engine::workflow::returned(&journal).and_then(Result::ok).map(bytes_json))
}

/// Bytes a guest gave or got, as JSON when they are JSON, else as text (or,
/// if not UTF-8, as `{"base64": ...}`).
fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    serde_json::from_slice(bytes).unwrap_or_else(|_| match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::Value::String(text.to_owned()),
        Err(_) => serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    })
}

/// Validates a request and resolves every module name to its current
/// version, which the transaction is then pinned to.
async fn build(state: &AppState, request: SubmitRequest) -> Result<TransactionState, ApiError> {
    let gid = match &request.gid {
        Some(g) => Gid::parse(g).map_err(|e| ApiError::bad_request("invalid_gid", e.0))?,
        None => Gid::generate(),
    };
    let mode = Mode::parse(&request.mode).ok_or_else(|| {
        ApiError::bad_request(
            "unsupported_mode",
            format!("mode {:?} is not supported; supported: saga, tcc, xa, msg, workflow", request.mode),
        )
    })?;
    let limits = &state.limits;
    if mode == Mode::Workflow {
        return build_workflow(state, gid, request).await;
    }
    if request.workflow.is_some() || request.input.is_some() {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("`workflow` and `input` are for workflow transactions, not {mode}"),
        ));
    }
    if request.branches.is_empty() {
        return Err(ApiError::bad_request("no_branches", format!("a {mode} transaction needs at least one branch")));
    }
    if request.branches.len() > limits.max_branches {
        return Err(ApiError::bad_request(
            "too_many_branches",
            format!("{} branches; at most {} (max_branches)", request.branches.len(), limits.max_branches),
        ));
    }
    check_options(&request.options, limits)?;
    check_concurrency(&request.options, mode, request.branches.len())?;
    let now = state.engine.now();
    let mut modules: HashMap<String, ModuleRecord> = HashMap::new();
    let mut ops = Vec::with_capacity(request.branches.len() * 3);
    match (mode, request.local) {
        (Mode::Msg, Some(local)) => {
            let branch_id = BranchId::local();
            let payload = encode_payload(&local.payload, &branch_id, limits)?;
            let f = FunctionRef { module: local.module, function: local.function, topic: None, url: None };
            let target = resolve(state, &mut modules, &f, &branch_id, Op::Msg, mode).await?;
            ops.push(BranchOp::new(branch_id, Op::Msg, target, payload, now));
        }
        (Mode::Msg, None) => {
            return Err(ApiError::bad_request(
                "invalid_branch",
                "a msg transaction needs `local`: {\"module\",\"function\",\"payload\"}, the function whose local \
                 transaction decides whether the message is sent"
                    .to_owned(),
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_branch",
                format!("`local` is for msg transactions, not {mode}"),
            ));
        }
        (_, None) => {}
    }
    let branches = expand_topics(state, mode, request.branches).await?;
    if branches.len() > limits.max_branches {
        return Err(ApiError::bad_request(
            "too_many_branches",
            format!(
                "{} branches once topics are expanded; at most {} (max_branches)",
                branches.len(),
                limits.max_branches
            ),
        ));
    }
    for (index, branch) in branches.into_iter().enumerate() {
        let branch_id = BranchId::from_index(index);
        let payload = encode_payload(&branch.payload, &branch_id, limits)?;
        for (op, f) in branch.ops(mode, &branch_id)? {
            let target = resolve(state, &mut modules, f, &branch_id, op, mode).await?;
            if mode == Mode::Xa
                && op == Op::Action
                && let Some(why) = state.branches.xa_refusal(&target.database)
            {
                return Err(ApiError::bad_request(
                    "xa_unsupported",
                    format!("branch {branch_id}: module {} runs on database {}: {why}", target.module, target.database),
                ));
            }
            ops.push(BranchOp::new(branch_id.clone(), op, target, payload.clone(), now));
        }
    }
    Ok(new_state(gid, mode, with_defaults(request.options, mode), ops, now))
}

/// A workflow: `{"mode":"workflow","workflow":{"module"},"input"}`, pinned
/// to the workflow module's current version; its steps are added as `run`
/// calls them.
async fn build_workflow(state: &AppState, gid: Gid, request: SubmitRequest) -> Result<TransactionState, ApiError> {
    let invalid = |m: &str| Err(ApiError::bad_request("invalid_request", m.to_owned()));
    if !request.branches.is_empty() {
        return invalid("a workflow has no `branches`: its steps are the branch functions its run calls");
    }
    if request.local.is_some() {
        return invalid("`local` is for msg transactions, not workflow");
    }
    let Some(workflow) = request.workflow else {
        return invalid("a workflow transaction needs `workflow`: {\"module\"}, the workflow module to run");
    };
    check_options(&request.options, &state.limits)?;
    check_concurrency(&request.options, Mode::Workflow, 0)?;
    let local = BranchId::local();
    let input = encode_payload(&request.input.unwrap_or(serde_json::Value::Null), &local, &state.limits)?;
    let name = ModuleName::parse(&workflow.module)
        .map_err(|e| ApiError::bad_request("invalid_name", format!("workflow: {}", e.0)))?;
    let record = state.registry.current(&name).await?.ok_or_else(|| {
        ApiError::bad_request("unknown_module", format!("workflow: no module named {:?}", workflow.module))
    })?;
    if record.world != "workflow" {
        return Err(ApiError::bad_request(
            "not_a_workflow",
            format!(
                "workflow: module {} is a {} module; a workflow transaction runs a module of the workflow world \
                 (see docs/writing-workflows.md)",
                record.name, record.world
            ),
        ));
    }
    let now = state.engine.now();
    let target =
        Target { module: record.name, digest: record.digest, database: record.database, function: "run".to_owned() };
    let ops = vec![BranchOp::new(local, Op::Run, target, input, now)];
    Ok(new_state(gid, Mode::Workflow, request.options, ops, now))
}

/// A new transaction of `mode`, due now, not leased yet.
fn new_state(
    gid: Gid,
    mode: Mode,
    options: Options,
    ops: Vec<BranchOp>,
    now: crate::model::Millis,
) -> TransactionState {
    TransactionState { transaction: Transaction::new(gid, mode, mode.initial_status(), options, now, now), ops }
}

/// A message's branches with every `{"topic"}` target replaced by one branch
/// per subscriber (in subscription order), in place; other modes' branches
/// unchanged. A topic without subscribers is refused.
async fn expand_topics(
    state: &AppState,
    mode: Mode,
    branches: Vec<BranchRequest>,
) -> Result<Vec<BranchRequest>, ApiError> {
    if mode != Mode::Msg {
        return Ok(branches);
    }
    let mut expanded = Vec::with_capacity(branches.len());
    for (index, branch) in branches.into_iter().enumerate() {
        let Some(topic) = branch.action.as_ref().and_then(|a| a.topic.clone()) else {
            expanded.push(branch);
            continue;
        };
        let at = format!("branch {}", BranchId::from_index(index));
        let action = branch.action.as_ref().expect("has a topic");
        if !action.module.is_empty() || !action.function.is_empty() || action.url.is_some() {
            return Err(ApiError::bad_request(
                "invalid_branch",
                format!("{at}: a target is {{\"module\",\"function\"}} or {{\"topic\"}}, not both"),
            ));
        }
        let name = crate::store::TopicName::parse(&topic)
            .map_err(|e| ApiError::bad_request("invalid_name", format!("{at}: {}", e.0)))?;
        let subscribers = state.engine.store().subscribers(&name).await?;
        if subscribers.is_empty() {
            return Err(ApiError::bad_request(
                "unknown_topic",
                format!("{at}: topic {name} has no subscribers (PUT /v1/topics/{name}/subscribers adds one)"),
            ));
        }
        for s in subscribers {
            let action = match s.url() {
                Some(url) => {
                    FunctionRef { module: String::new(), function: String::new(), topic: None, url: Some(url.into()) }
                }
                None => FunctionRef { module: s.module.to_string(), function: s.function, topic: None, url: None },
            };
            expanded.push(BranchRequest {
                action: Some(action),
                payload: branch.payload.clone(),
                ..BranchRequest::default()
            });
        }
    }
    Ok(expanded)
}

/// An XA not finished in this many seconds is rolled back unless the request
/// says otherwise (DTM's default for XA, 35 s).
const XA_TIMEOUT_TO_FAIL: u64 = 35;

/// The request's options with the mode's defaults filled in: an XA gets a
/// `timeout_to_fail`, since its prepared branches hold their locks until it
/// decides, and two XAs each waiting for rows the other's prepared branch
/// holds would otherwise wait for ever.
fn with_defaults(mut options: Options, mode: Mode) -> Options {
    if mode == Mode::Xa && options.timeout_to_fail.is_none() {
        options.timeout_to_fail = Some(XA_TIMEOUT_TO_FAIL);
    }
    options
}

/// A branch's JSON payload as bytes, within the size limit.
fn encode_payload(
    payload: &serde_json::Value,
    branch_id: &BranchId,
    limits: &super::ApiLimits,
) -> Result<Vec<u8>, ApiError> {
    let bytes = serde_json::to_vec(payload).map_err(|e| {
        ApiError::bad_request("invalid_payload", format!("branch {branch_id}: payload cannot be encoded: {e}"))
    })?;
    if bytes.len() > limits.max_payload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "branch {branch_id}: the payload is {} bytes; at most {} (max_payload_kb)",
                bytes.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    Ok(bytes)
}

/// `concurrent` for sagas and messages, `orders` for concurrent sagas only
/// (naming real branches, without a cycle); `delay` for messages only, and
/// for messages neither `timeout_to_fail` nor `retry_limit` (a message never
/// rolls back once its local transaction committed).
pub(super) fn check_concurrency(options: &Options, mode: Mode, branches: usize) -> Result<(), ApiError> {
    let invalid = |m: String| Err(ApiError::bad_request("invalid_options", m));
    if options.concurrent && !matches!(mode, Mode::Saga | Mode::Msg) {
        return invalid(format!("concurrent applies to sagas and messages, not to a {mode}"));
    }
    if mode == Mode::Msg && !options.orders.is_empty() {
        return invalid(
            "orders apply to a concurrent saga; a concurrent message sends every branch at once".to_owned(),
        );
    }
    if options.delay.is_some() && mode != Mode::Msg {
        return invalid(format!("delay applies to messages, not to a {mode}"));
    }
    if let Some(secs) = options.delay
        && secs > 366 * 86_400
    {
        return invalid(format!("delay must be at most a year (31622400 seconds), got {secs}"));
    }
    if mode == Mode::Msg && (options.timeout_to_fail.is_some() || options.retry_limit.is_some()) {
        return invalid(
            "timeout_to_fail and retry_limit do not apply to a message: once its local transaction committed, \
             its branches are retried until they succeed"
                .to_owned(),
        );
    }
    if !options.concurrent && !options.orders.is_empty() {
        return invalid("orders apply to a concurrent saga: add \"concurrent\": true".to_owned());
    }
    crate::engine::saga::check_orders(&options.orders, branches).or_else(invalid)
}

/// Options within sane bounds: retry intervals of at least a second, at most a
/// day, the cap not below the base; a timeout of at most a year; a request
/// timeout within the server's deadline; headers few and short.
pub(super) fn check_options(options: &Options, limits: &super::ApiLimits) -> Result<(), ApiError> {
    let invalid = |m: String| Err(ApiError::bad_request("invalid_options", m));
    if let Some(secs) = options.retry_interval
        && !(1..=86_400).contains(&secs)
    {
        return invalid(format!("retry_interval must be between 1 and 86400 seconds, got {secs}"));
    }
    if let Some(secs) = options.timeout_to_fail
        && secs > 366 * 86_400
    {
        return invalid(format!("timeout_to_fail must be at most a year (31622400 seconds), got {secs}"));
    }
    if let Some(secs) = options.max_retry_interval
        && !(1..=86_400).contains(&secs)
    {
        return invalid(format!("max_retry_interval must be between 1 and 86400 seconds, got {secs}"));
    }
    if let (Some(cap), Some(base)) = (options.max_retry_interval, options.retry_interval)
        && cap < base
    {
        return invalid(format!("max_retry_interval ({cap} s) must not be below retry_interval ({base} s)"));
    }
    let most = limits.max_request_timeout.as_secs().max(1);
    if let Some(secs) = options.request_timeout
        && !(1..=most).contains(&secs)
    {
        return invalid(format!(
            "request_timeout must be between 1 and {most} seconds (the server's deadline_ms), got {secs}"
        ));
    }
    if options.branch_headers.len() > limits.max_headers {
        return invalid(format!("at most {} branch_headers, got {}", limits.max_headers, options.branch_headers.len()));
    }
    if let Some((name, _)) = options
        .branch_headers
        .iter()
        .find(|(k, v)| k.len() > limits.max_header_bytes || v.len() > limits.max_header_bytes)
    {
        let name: String = name.chars().take(40).collect();
        return invalid(format!(
            "branch header {name:?}: names and values are at most {} bytes",
            limits.max_header_bytes
        ));
    }
    Ok(())
}

async fn resolve(
    state: &AppState,
    modules: &mut HashMap<String, ModuleRecord>,
    f: &FunctionRef,
    branch_id: &BranchId,
    op: Op,
    mode: Mode,
) -> Result<Target, ApiError> {
    let at = || format!("branch {branch_id} {op}");
    if f.topic.is_some() {
        return Err(ApiError::bad_request(
            "invalid_branch",
            format!("{}: a topic is a target for a message's branch only", at()),
        ));
    }
    if let Some(url) = &f.url {
        let refused = |m: String| Err(ApiError::bad_request("invalid_branch", format!("{}: {m}", at())));
        if !f.module.is_empty() || !f.function.is_empty() {
            return refused("a target is {\"module\",\"function\"} or {\"url\"}, not both".to_owned());
        }
        if op == Op::Msg {
            return refused(
                "a message's local function runs in the host's local transaction with its barrier row: it must be \
                 a Wasm function"
                    .to_owned(),
            );
        }
        if mode == Mode::Xa {
            return refused(
                "an XA branch's action ends in a transaction the host prepares: it must be a Wasm function on \
                 Postgres or MariaDB"
                    .to_owned(),
            );
        }
        if let Some(why) = state.http.refusal(url) {
            return Err(ApiError::bad_request("url_not_allowed", format!("{}: {why}", at())));
        }
        return Ok(Target::http(url.clone()));
    }
    for (field, value) in [("module", &f.module), ("function", &f.function)] {
        if value.is_empty() {
            return Err(ApiError::bad_request("invalid_branch", format!("{}: `{field}` is missing", at())));
        }
    }
    if !modules.contains_key(&f.module) {
        let name = ModuleName::parse(&f.module)
            .map_err(|e| ApiError::bad_request("invalid_name", format!("{}: {}", at(), e.0)))?;
        let record = state.registry.current(&name).await?.ok_or_else(|| {
            ApiError::bad_request("unknown_module", format!("{}: no module named {:?}", at(), f.module))
        })?;
        modules.insert(f.module.clone(), record);
    }
    let module = &modules[&f.module];
    if module.world != "branch" {
        return Err(ApiError::bad_request(
            "not_a_branch_module",
            format!(
                "{}: module {} is a {} module; branches call functions of branch modules",
                at(),
                module.name,
                module.world
            ),
        ));
    }
    if !module.functions.iter().any(|x| x == &f.function) {
        return Err(ApiError::bad_request(
            "unknown_function",
            format!(
                "{}: module {} has no function {:?}; it exports: {}",
                at(),
                module.name,
                f.function,
                module.functions.join(", ")
            ),
        ));
    }
    Ok(Target {
        module: module.name.clone(),
        digest: module.digest.clone(),
        database: module.database.clone(),
        function: f.function.clone(),
    })
}

/// Whether a repeated gid carries the same transaction (module versions may differ).
fn same_request(stored: &TransactionState, new: &TransactionState) -> bool {
    let key = |o: &BranchOp| {
        (o.branch_id.clone(), o.op, o.target.module.clone(), o.target.function.clone(), o.payload.clone())
    };
    // A workflow's steps are added as it runs: its request is its `00 run`.
    let requested = |s: &TransactionState| match s.transaction.mode {
        Mode::Workflow => s.ops.iter().filter(|o| o.branch_id == BranchId::local()).map(key).collect::<Vec<_>>(),
        _ => s.ops.iter().map(key).collect(),
    };
    stored.transaction.mode == new.transaction.mode && requested(stored) == requested(new)
}

/// A transaction; `branches`, `history`, `journal` and `output` only in one
/// transaction's view, not in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView {
    gid: String,
    mode: Mode,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_reason: Option<String>,
    /// The error that keeps the transaction from progressing, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_retry_at: Option<String>,
    options: Options,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    branches: Option<Vec<BranchOpView>>,
    /// Status changes, op attempts and controls, oldest first (one transaction's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<serde_json::Value>>,
    /// A workflow's journal: every call its `run` made and its answer, in
    /// order, ending with what `run` returned (one transaction's view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    journal: Option<Vec<serde_json::Value>>,
    /// What a workflow's `run` returned, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchOpView {
    branch_id: String,
    op: Op,
    /// The Wasm function it calls (all three absent for an HTTP target).
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    /// The endpoint of an HTTP target.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    status: OpStatus,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    updated_at: String,
}

fn view(t: Transaction, ops: Option<Vec<BranchOp>>) -> TransactionView {
    let next_retry_at = match (t.status.is_final(), t.last_error.is_some(), t.next_due) {
        (false, true, Some(due)) => Some(time::rfc3339(due)),
        _ => None,
    };
    TransactionView {
        gid: t.gid.to_string(),
        mode: t.mode,
        status: t.status,
        rollback_reason: t.rollback_reason,
        last_error: t.last_error,
        attempts: t.attempts,
        next_retry_at,
        options: t.options,
        created_at: time::rfc3339(t.created_at),
        updated_at: time::rfc3339(t.updated_at),
        finished_at: t.finished_at.map(time::rfc3339),
        branches: ops.map(|ops| {
            ops.into_iter()
                .map(|o| BranchOpView {
                    branch_id: o.branch_id.to_string(),
                    op: o.op,
                    url: o.target.url().map(str::to_owned),
                    module: o.target.url().is_none().then(|| o.target.module.to_string()),
                    digest: o.target.url().is_none().then(|| o.target.digest.to_string()),
                    function: o.target.url().is_none().then(|| o.target.function.clone()),
                    status: o.status,
                    attempts: o.attempts,
                    last_error: o.last_error,
                    updated_at: time::rfc3339(o.updated_at),
                })
                .collect()
        }),
        history: None,
        journal: None,
        output: None,
    }
}

/// One journal entry as the API shows it: payloads and outputs as JSON (see [`bytes_json`]).
fn journal_view(e: &crate::model::JournalEntry) -> serde_json::Value {
    use crate::model::{StepAnswer, StepCall};
    let target = |t: &crate::model::StepTarget| serde_json::json!({ "module": t.module, "function": t.function });
    let call = match &e.call {
        StepCall::Call { branch_id, action, compensate, payload } => serde_json::json!({
            "kind": "call", "branch_id": branch_id.to_string(), "action": target(action),
            "compensate": compensate.as_ref().map(target), "payload": bytes_json(payload),
        }),
        StepCall::Now => serde_json::json!({ "kind": "now" }),
        StepCall::Random => serde_json::json!({ "kind": "random" }),
        StepCall::Sleep { millis } => serde_json::json!({ "kind": "sleep", "millis": millis }),
        StepCall::Signal { name } => serde_json::json!({ "kind": "signal", "name": name }),
        StepCall::End => serde_json::json!({ "kind": "end" }),
    };
    let answer = match &e.answer {
        StepAnswer::Ok { output } => serde_json::json!({ "kind": "ok", "output": bytes_json(output) }),
        StepAnswer::Failure { message } => serde_json::json!({ "kind": "failure", "message": message }),
        StepAnswer::Retry { message } => serde_json::json!({ "kind": "retry", "message": message }),
        StepAnswer::Value { value } => serde_json::json!({ "kind": "value", "value": value }),
        StepAnswer::Until { deadline } => serde_json::json!({ "kind": "until", "deadline": time::rfc3339(*deadline) }),
        StepAnswer::Signal { payload } => serde_json::json!({ "kind": "signal", "payload": bytes_json(payload) }),
    };
    serde_json::json!({ "seq": e.seq, "at": time::rfc3339(e.at), "call": call, "answer": answer })
}

/// History entries shown with a transaction, at most (the oldest first).
const MAX_HISTORY: u32 = 1000;

#[utoipa::path(
    get,
    path = "/v1/transactions/{gid}",
    operation_id = "get_transaction",
    tag = "transactions",
    params(("gid" = String, Path, description = "The transaction's gid", pattern = "^[A-Za-z0-9_.:-]{1,128}$")),
    responses(
        (status = 200, description = "The transaction with its branch ops, history and (workflows) journal",
            body = TransactionView),
        (status = 400, description = "`invalid_gid`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_transaction`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn get(State(state): State<AppState>, Path(gid): Path<String>) -> Result<Json<TransactionView>, ApiError> {
    let parsed = Gid::parse(&gid).map_err(|e| ApiError::bad_request("invalid_gid", e.0))?;
    let s = state
        .engine
        .snapshot(&parsed)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_transaction", format!("no transaction with gid {gid:?}")))?;
    let history = state.engine.store().history(&parsed, MAX_HISTORY).await?;
    // The creation is not a history row: the transaction's own row has it.
    let t = &s.transaction;
    let created = serde_json::json!({
        "at": time::rfc3339(t.created_at), "kind": "created",
        "outcome": t.mode.initial_status(), "detail": format!("mode {}", t.mode),
    });
    let mode = s.transaction.mode;
    let mut view = view(s.transaction, Some(s.ops));
    view.history = Some(std::iter::once(created).chain(history.into_iter().map(history_view)).collect());
    if mode == Mode::Workflow {
        let journal = state.engine.store().journal(&parsed).await?;
        view.output = crate::engine::workflow::returned(&journal).and_then(Result::ok).map(bytes_json);
        view.journal = Some(journal.iter().map(journal_view).collect());
    }
    Ok(Json(view))
}

/// One history entry as the API shows it.
fn history_view(e: HistoryEntry) -> serde_json::Value {
    let mut v = serde_json::json!({ "at": time::rfc3339(e.at), "kind": e.kind });
    let fields = [
        ("branch_id", e.branch_id.map(|b| serde_json::json!(b.to_string()))),
        ("op", e.op.map(|op| serde_json::json!(op))),
        ("attempt", e.attempt.map(|a| serde_json::json!(a))),
        ("outcome", e.outcome.map(|o| serde_json::json!(o))),
        ("detail", e.detail.map(|d| serde_json::json!(d))),
        ("duration_ms", e.duration_ms.map(|d| serde_json::json!(d))),
        ("actor", e.actor.map(|a| serde_json::json!(a))),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            v[name] = value;
        }
    }
    v
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    #[param(value_type = Option<Mode>)]
    mode: Option<String>,
    /// Transactions with a branch op on this module.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    module: Option<String>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    cursor: Option<String>,
}

/// A page of transactions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionList {
    transactions: Vec<TransactionView>,
    /// The last gid of a full page: fetches the next one.
    next_cursor: Option<String>,
}

/// `GET /v1/transactions`: newest first, filtered by status, mode and module,
/// a page of `limit` (default 100, at most 1000) after `cursor` (the
/// `next_cursor` of the page before).
#[utoipa::path(
    get,
    path = "/v1/transactions",
    operation_id = "list_transactions",
    tag = "transactions",
    params(ListParams),
    responses(
        (status = 200, description = "A page of transactions, newest first", body = TransactionList),
        (status = 400, description = "`invalid_query`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TransactionList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let invalid = |m: String| ApiError::bad_request("invalid_query", m);
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(invalid(format!("limit must be between 1 and 1000, got {limit}")));
    }
    if let Some(status) = &params.status
        && Status::parse(status).is_none()
    {
        return Err(invalid(format!(
            "status must be prepared, submitted, aborting, succeeded or failed, got {status:?}"
        )));
    }
    if let Some(mode) = &params.mode
        && Mode::parse(mode).is_none()
    {
        return Err(invalid(format!("mode must be saga, tcc, xa, msg or workflow, got {mode:?}")));
    }
    if let Some(module) = &params.module {
        ModuleName::parse(module).map_err(|e| invalid(format!("module: {}", e.0)))?;
    }
    if let Some(cursor) = &params.cursor {
        let gid = Gid::parse(cursor).map_err(|e| invalid(format!("cursor: {}", e.0)))?;
        if state.engine.store().load(&gid).await?.is_none() {
            return Err(invalid(format!("cursor {cursor:?} names no transaction")));
        }
    }
    let filter =
        ListFilter { status: params.status, mode: params.mode, module: params.module, cursor: params.cursor, limit };
    let page = state.engine.store().list_filtered(&filter).await?;
    let next_cursor = (page.len() == limit as usize).then(|| page.last().map(|t| t.gid.to_string())).flatten();
    let transactions: Vec<TransactionView> = page.into_iter().map(|t| view(t, None)).collect();
    Ok(Json(TransactionList { transactions, next_cursor }))
}

/// The optional body of a control (none, `null` or an object): why.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    reason: Option<String>,
}

/// The longest reason a control may give, in bytes.
const MAX_REASON_BYTES: usize = 1000;

/// Rolls the transaction back: compensations (cancels, rollbacks) run.
#[utoipa::path(
    post,
    path = "/v1/transactions/{gid}/abort",
    operation_id = "abort_transaction",
    tag = "transactions",
    params(("gid" = String, Path, description = "The transaction's gid", pattern = "^[A-Za-z0-9_.:-]{1,128}$")),
    request_body(content = Option<ControlBody>, content_type = "application/json", description = "Why (optional)"),
    responses(
        (status = 200, description = "The transaction right after the change", body = TransactionView),
        (status = 400, description = "`invalid_gid`, `invalid_request`, `invalid_body`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_transaction`", body = ErrorEnvelope),
        (status = 409, description = "`not_applicable`, `busy`", body = ErrorEnvelope),
        (status = 413, description = "`too_large`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorEnvelope),
    ),
)]
pub async fn abort(
    state: State<AppState>,
    caller: Extension<Caller>,
    gid: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TransactionView>, ApiError> {
    control(state, caller, gid, body, Control::Abort).await
}

/// Marks the transaction `failed` at once, without compensation.
#[utoipa::path(
    post,
    path = "/v1/transactions/{gid}/force-stop",
    operation_id = "force_stop_transaction",
    tag = "transactions",
    params(("gid" = String, Path, description = "The transaction's gid", pattern = "^[A-Za-z0-9_.:-]{1,128}$")),
    request_body(content = Option<ControlBody>, content_type = "application/json", description = "Why (optional)"),
    responses(
        (status = 200, description = "The transaction right after the change", body = TransactionView),
        (status = 400, description = "`invalid_gid`, `invalid_request`, `invalid_body`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_transaction`", body = ErrorEnvelope),
        (status = 409, description = "`not_applicable`, `busy`", body = ErrorEnvelope),
        (status = 413, description = "`too_large`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorEnvelope),
    ),
)]
pub async fn force_stop(
    state: State<AppState>,
    caller: Extension<Caller>,
    gid: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TransactionView>, ApiError> {
    control(state, caller, gid, body, Control::ForceStop).await
}

/// The next attempt of a sleeping transaction runs now.
#[utoipa::path(
    post,
    path = "/v1/transactions/{gid}/retry-now",
    operation_id = "retry_transaction_now",
    tag = "transactions",
    params(("gid" = String, Path, description = "The transaction's gid", pattern = "^[A-Za-z0-9_.:-]{1,128}$")),
    request_body(content = Option<ControlBody>, content_type = "application/json", description = "Why (optional)"),
    responses(
        (status = 200, description = "The transaction right after the change", body = TransactionView),
        (status = 400, description = "`invalid_gid`, `invalid_request`, `invalid_body`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_transaction`", body = ErrorEnvelope),
        (status = 409, description = "`not_applicable`, `busy`", body = ErrorEnvelope),
        (status = 413, description = "`too_large`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorEnvelope),
    ),
)]
pub async fn retry_now(
    state: State<AppState>,
    caller: Extension<Caller>,
    gid: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TransactionView>, ApiError> {
    control(state, caller, gid, body, Control::RetryNow).await
}

/// Applies `control` as the caller asked; answers with the transaction right
/// after the change (it goes on from there: compensations run, the retry
/// starts). `409` when it does not apply (final, a decided TCC, driven by
/// another instance right now).
async fn control(
    State(state): State<AppState>,
    Extension(Caller(actor)): Extension<Caller>,
    Path(gid): Path<String>,
    body: Result<Bytes, BytesRejection>,
    control: Control,
) -> Result<Json<TransactionView>, ApiError> {
    let gid = Gid::parse(&gid).map_err(|e| ApiError::bad_request("invalid_gid", e.0))?;
    let body = body.map_err(body_error)?;
    let ControlBody { reason } = if body.iter().all(u8::is_ascii_whitespace) {
        ControlBody::default()
    } else {
        serde_json::from_slice::<Option<ControlBody>>(&body)
            .map_err(|e| ApiError::bad_request("invalid_request", format!("invalid control request: {e}")))?
            .unwrap_or_default()
    };
    if let Some(reason) = &reason
        && reason.len() > MAX_REASON_BYTES
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("reason is {} bytes; at most {MAX_REASON_BYTES}", reason.len()),
        ));
    }
    let after = state.engine.control(&gid, Request { control, actor, reason, register: Vec::new() }).await?;
    Ok(Json(view(after.transaction, Some(after.ops))))
}

/// A signal kept for a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalSentView {
    gid: String,
    signal: String,
    #[schema(value_type = String, pattern = "^sent$")]
    status: &'static str,
}

/// The longest signal name, in bytes.
const MAX_SIGNAL_NAME: usize = 128;

/// `POST /v1/transactions/{gid}/signals/{name}`: sends the signal `name`
/// with the request's JSON body (none: `null`) as its payload to a running
/// workflow. It is kept until the workflow awaits it; several of one name
/// are taken in the order they were sent. `202`; `404` for an unknown gid;
/// `409` for a transaction that is not a workflow or has ended.
#[utoipa::path(
    post,
    path = "/v1/transactions/{gid}/signals/{name}",
    operation_id = "send_signal",
    tag = "transactions",
    params(
        ("gid" = String, Path, description = "The workflow's gid", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("name" = String, Path, description = "The signal's name: 1 to 128 bytes of printable characters"),
    ),
    request_body(
        content = Option<serde_json::Value>,
        content_type = "application/json",
        description = "The signal's payload (none: `null`)",
    ),
    responses(
        (status = 202, description = "Sent: kept until the workflow awaits it", body = SignalSentView),
        (status = 400, description = "`invalid_gid`, `invalid_name`, `invalid_payload`, `invalid_body`",
            body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_transaction`", body = ErrorEnvelope),
        (status = 409, description = "`not_a_workflow`, `finished`, `too_many_signals`", body = ErrorEnvelope),
        (status = 413, description = "`too_large`, `payload_too_large`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorEnvelope),
    ),
)]
pub async fn signal(
    State(state): State<AppState>,
    Path((gid, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SignalSentView>), ApiError> {
    let gid = Gid::parse(&gid).map_err(|e| ApiError::bad_request("invalid_gid", e.0))?;
    if name.is_empty() || name.len() > MAX_SIGNAL_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("signal names are 1 to {MAX_SIGNAL_NAME} bytes of printable characters"),
        ));
    }
    let body = body.map_err(body_error)?;
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".to_vec()
    } else {
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_payload", format!("a signal's body is JSON: {e}")))?;
        serde_json::to_vec(&value).map_err(|e| ApiError::bad_request("invalid_payload", e.to_string()))?
    };
    if payload.len() > state.limits.max_payload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the signal is {} bytes; at most {} (max_payload_kb)",
                payload.len(),
                state.limits.max_payload_bytes
            ),
        ));
    }
    use crate::store::SignalSent;
    match state.engine.signal(&gid, &name, &payload).await? {
        SignalSent::Sent { .. } => {
            Ok((StatusCode::ACCEPTED, Json(SignalSentView { gid: gid.to_string(), signal: name, status: "sent" })))
        }
        SignalSent::UnknownGid => {
            Err(ApiError::not_found("unknown_transaction", format!("no transaction with gid {gid}")))
        }
        SignalSent::TooMany => Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_signals",
            format!("workflow {gid} holds {} signals already; the signal was not kept", crate::store::MAX_SIGNALS),
        )),
        SignalSent::NotWorkflow(mode) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_workflow",
            format!("transaction {gid} is a {mode}; only workflows take signals"),
        )),
        SignalSent::Finished(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("workflow {gid} has already {status}; the signal was not kept"),
        )),
    }
}
