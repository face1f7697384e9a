//! Runs one branch op for the engine: the pinned module version in the
//! sandbox, inside one local transaction on the module's database that also
//! carries the barrier row, committed only if the guest returned `ok`.
//!
//! This is where a branch's outcome is mapped to the protocol's words
//! ([`Outcome`]): guest `failure` → `Failed`, guest `retry` → `Retry`, and
//! everything else (trap, deadline, database unavailable, commit failure) →
//! `Error`, which the engine backs off and retries.

pub mod http;

use std::collections::HashSet;
use std::sync::Arc;

use std::time::Instant;

use tracing::Instrument;

use crate::database::{BarrierKey, BranchRun, Databases, DbError, Decision, ProgressRefused, RunError, TxWork};
use crate::engine::{
    BoxFuture, BranchCall, BranchExecutor, BranchResult, Carried, Outcome, RunEnd, StepQuestion, WorkflowRun,
};
use crate::model::{DatabaseName, Digest, Gid, Mode, ModuleName, Op, Status, StepTarget, Target};
pub use http::HttpBranches;

use crate::registry::Registry;
use crate::sandbox::{Invocation, InvokeError, Prepared, Sandbox, WorkflowInstance};
use crate::store::Store;

/// Branch ops whose target is a Wasm module.
#[derive(Clone)]
pub struct WasmBranches {
    registry: Registry,
    sandbox: Sandbox,
    databases: Arc<Databases>,
    /// Databases that live where the store does: their branch commits carry progress.
    colocated: Arc<HashSet<DatabaseName>>,
}

/// Why a direct call ([`WasmBranches::call`]) did not return output.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Guest(#[from] InvokeError),
    #[error("database {0:?} is not bound on this server")]
    UnknownDatabase(DatabaseName),
    #[error("database error: {0}")]
    Database(#[from] DbError),
    #[error("{0}")]
    Module(String),
}

impl WasmBranches {
    /// `store` is the coordinator's store: a database on the same file or
    /// Postgres database is co-located with it.
    pub fn new(registry: Registry, sandbox: Sandbox, databases: Arc<Databases>, store: &Store) -> Self {
        let colocated = databases
            .names()
            .into_iter()
            .filter(|name| databases.get(name).is_some_and(|db| db.colocated_with(store)))
            .collect();
        Self { registry, sandbox, databases, colocated: Arc::new(colocated) }
    }

    /// Runs `function` once in its own local transaction on `database`, with
    /// no barrier and no global transaction; commits only on `ok`.
    pub async fn call(
        &self,
        module: &ModuleName,
        digest: &Digest,
        database: &DatabaseName,
        function: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let deadline = Instant::now() + self.sandbox.limits().deadline;
        let runner = self.registry.runner(module, digest).await.map_err(|e| CallError::Module(e.to_string()))?;
        let db = self.databases.get(database).ok_or_else(|| CallError::UnknownDatabase(database.clone()))?;
        let prepared = self.sandbox.prepare(&runner, deadline).await?;
        let invocation = Invocation {
            function: function.to_owned(),
            gid: String::new(),
            branch_id: String::new(),
            op: Op::Call,
            attempt: 1,
            headers: Vec::new(),
            payload,
            module: module.to_string(),
        };
        let decision = db.run_local(deadline, guest_work(prepared, invocation, None)).await?;
        Ok(decision.into_inner()?)
    }

    async fn run(&self, call: BranchCall) -> BranchResult {
        if call.mode == Mode::Xa && matches!(call.op, Op::Commit | Op::Rollback) {
            return self.finish_prepared(call).await;
        }
        if call.op == Op::Msg && call.attempt > 1 {
            return self.back_check(call).await;
        }
        let budget = call.timeout.map_or(self.sandbox.limits().deadline, |t| t.min(self.sandbox.limits().deadline));
        let deadline = Instant::now() + budget;
        let error = |m: String| BranchResult::of(Outcome::Error(m));
        let runner = match self.registry.runner(&call.target.module, &call.target.digest).await {
            Ok(c) => c,
            Err(e) => return error(format!("module {} unavailable: {e}", call.target.module)),
        };
        let db = match self.database(&call) {
            Ok(db) => db,
            Err(unbound) => return unbound,
        };
        // Instantiated before the database is touched: no connection or
        // writer waits on a guest's start-up.
        let prepared = match self.sandbox.prepare(&runner, deadline).await {
            Ok(prepared) => prepared,
            Err(e) => return BranchResult::of(outcome_of(Err(e))),
        };
        let key = barrier_key(&call);
        // A workflow step's output is kept with its commit, for a replay
        // that finds the step done (the barrier) but not journaled.
        let step = call.mode == Mode::Workflow && call.op == Op::Action;
        let keep_output = step.then(|| key.clone());
        let progress = call.progress.filter(|_| self.colocated.contains(&call.target.database));
        let carries = progress.is_some();
        let invocation = Invocation {
            function: call.target.function.clone(),
            gid: call.gid.to_string(),
            branch_id: call.branch_id.to_string(),
            op: call.op,
            attempt: call.attempt,
            headers: call.headers,
            payload: call.payload,
            module: call.target.module.to_string(),
        };
        let written = if carries { Carried::Written } else { Carried::No };
        let started = Instant::now();
        let ran = if call.mode == Mode::Xa {
            // Ended by PREPARE TRANSACTION (XA PREPARE on MariaDB); an XA op never carries progress.
            db.run_branch_prepared(key, deadline, guest_work(prepared, invocation, None)).await
        } else {
            db.run_branch(key, deadline, progress, guest_work(prepared, invocation, keep_output)).await
        };
        crate::metrics::business_db(db.kind(), started.elapsed());
        match ran {
            Ok(BranchRun::Skipped(verdict)) => {
                tracing::debug!(gid = %call.gid, branch = %call.branch_id, op = %call.op, ?verdict, "barrier: the guest did not run");
                if !step {
                    return BranchResult { outcome: Outcome::Succeeded, progress: written, output: Vec::new() };
                }
                match db.step_output(&call.gid, &call.branch_id).await {
                    Ok(Some(output)) => BranchResult { outcome: Outcome::Succeeded, progress: written, output },
                    Ok(None) => error(format!(
                        "step {} ran before, but its output is not in database {}; it cannot be answered",
                        call.branch_id, call.target.database
                    )),
                    Err(e) => error(format!("database {}: reading the step's output: {e}", call.target.database)),
                }
            }
            Ok(BranchRun::Ran(Decision::Commit(result))) => {
                let output = result.as_ref().ok().cloned().unwrap_or_default();
                BranchResult { outcome: outcome_of(result), progress: written, output }
            }
            Ok(BranchRun::Ran(Decision::Rollback(result))) => BranchResult::of(outcome_of(result)),
            Err(RunError::Progress(refused)) => {
                let progress = match refused {
                    ProgressRefused::Fenced => Carried::Fenced,
                    ProgressRefused::GidTaken => Carried::GidTaken,
                };
                BranchResult { outcome: Outcome::Error(refused.to_string()), progress, output: Vec::new() }
            }
            Err(RunError::Db(e)) => error(format!("database {}: {e}", call.target.database)),
        }
    }
}

impl WasmBranches {
    /// XA's phase 2 for one branch (`commit` or `rollback`): the host's
    /// alone, no guest runs.
    async fn finish_prepared(&self, call: BranchCall) -> BranchResult {
        let db = match self.database(&call) {
            Ok(db) => db,
            Err(unbound) => return unbound,
        };
        let deadline = Instant::now() + self.sandbox.limits().deadline;
        match db.finish_prepared(barrier_key(&call), deadline).await {
            Ok(()) => BranchResult::of(Outcome::Succeeded),
            Err(e) => BranchResult::of(Outcome::Error(format!("database {}: {e}", call.target.database))),
        }
    }

    /// A message's local function gets one attempt; every later attempt is
    /// the back-check of that one (see `engine::msg`): `Succeeded` if its
    /// local transaction committed, `Failed` if it did not (and now never
    /// will), `Error` if the database cannot say yet.
    async fn back_check(&self, call: BranchCall) -> BranchResult {
        let db = match self.database(&call) {
            Ok(db) => db,
            Err(unbound) => return unbound,
        };
        let deadline = Instant::now() + self.sandbox.limits().deadline;
        match db.query_prepared(barrier_key(&call), deadline).await {
            Ok(true) => BranchResult::of(Outcome::Succeeded),
            Ok(false) => BranchResult::of(Outcome::Failed(
                "the local transaction did not commit (its first attempt ended without an answer, or asked to be \
                 retried); the message is not sent"
                    .to_owned(),
            )),
            Err(e) => BranchResult::of(Outcome::Error(format!("database {}: back-check: {e}", call.target.database))),
        }
    }

    /// The call's business database, or the error outcome when it is not bound.
    fn database(&self, call: &BranchCall) -> Result<&crate::database::Database, BranchResult> {
        self.databases.get(&call.target.database).ok_or_else(|| {
            let m = format!("database {:?} is not bound on this server", call.target.database.as_str());
            BranchResult::of(Outcome::Error(m))
        })
    }

    /// Why XA branches cannot run on `database`, if they cannot (it is not
    /// bound, is SQLite or Redis, or its Postgres has prepared transactions off).
    pub fn xa_refusal(&self, database: &DatabaseName) -> Option<String> {
        match self.databases.get(database) {
            None => Some("the database is not bound on this server".to_owned()),
            Some(db) => db.xa_refusal(),
        }
    }

    /// Finds XA branches left prepared for longer than `older_than` that no
    /// driver will finish, and finishes them as their transaction decided:
    /// rolled back when the transaction failed (an operator's force-stop) or
    /// is not in the store at all (never decided), committed when it
    /// succeeded. Branches of a transaction still under way are its driver's.
    /// Returns how many were finished.
    pub async fn sweep_prepared(&self, store: &Store, older_than: std::time::Duration) -> usize {
        let mut finished = 0;
        for name in self.databases.names() {
            let Some(db) = self.databases.get(&name) else { continue };
            let branches = match db.prepared_branches(older_than).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(database = %name, error = %e, "could not list prepared XA branches");
                    continue;
                }
            };
            for (gid, branch_id) in branches {
                let commit = match store.load(&gid).await {
                    Ok(None) => false,
                    Ok(Some(state)) => match state.transaction.status {
                        Status::Failed => false,
                        Status::Succeeded => true,
                        _ => continue,
                    },
                    Err(e) => {
                        tracing::warn!(%gid, error = %e, "store unavailable; prepared XA branch left for later");
                        continue;
                    }
                };
                match db.resolve_prepared(&gid, &branch_id, commit).await {
                    Ok(true) => {
                        finished += 1;
                        let verb = if commit { "committed" } else { "rolled back" };
                        tracing::warn!(%gid, branch = %branch_id, database = %name, "{verb} an XA branch left prepared");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%gid, branch = %branch_id, database = %name, error = %e, "could not finish an XA branch left prepared")
                    }
                }
            }
        }
        finished
    }
}

/// The barrier row of the call's op (DTM's first barrier call of a branch op: "01").
fn barrier_key(call: &BranchCall) -> BarrierKey {
    BarrierKey {
        trans_type: call.mode.as_str().to_owned(),
        gid: call.gid.clone(),
        branch_id: call.branch_id.clone(),
        op: call.op,
        barrier_id: "01".to_owned(),
    }
}

/// The guest's run inside the local transaction: commit on `ok`, roll back
/// otherwise. With `keep_output`, an `ok` output is recorded in the same
/// transaction (a workflow step's).
fn guest_work(
    prepared: Prepared,
    invocation: Invocation,
    keep_output: Option<BarrierKey>,
) -> TxWork<Result<Vec<u8>, InvokeError>> {
    // The guest's database calls are children of the branch op's span,
    // wherever the database runs the work (SQLite: on its writer thread).
    let span = tracing::Span::current();
    Box::new(move |tx| {
        Box::pin(async move {
            let (mut result, mut tx) = prepared.call(invocation, Some(tx)).instrument(span).await;
            if let (Ok(output), Some(key), Some(open)) = (&result, &keep_output, tx.as_mut())
                && let Err(e) = open.record_output(key, output).await
            {
                result = Err(InvokeError::Trap(format!("recording the step's output: {e}")));
            }
            let decision = if result.is_ok() { Decision::Commit(result) } else { Decision::Rollback(result) };
            (tx, decision)
        })
    })
}

/// The protocol's reading of an invocation's result.
fn outcome_of(result: Result<Vec<u8>, InvokeError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Succeeded,
        Err(InvokeError::Failure(m)) => Outcome::Failed(m),
        Err(InvokeError::Retry(m)) => Outcome::Retry(m),
        Err(InvokeError::Trap(m)) => Outcome::Error(m),
    }
}

impl BranchExecutor for WasmBranches {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, BranchResult> {
        traced(call, |call| Box::pin(self.run(call)))
    }

    fn colocated(&self, target: &Target) -> bool {
        self.colocated.contains(&target.database)
    }

    fn start_workflow(
        &self,
        target: &Target,
        gid: &Gid,
        input: Vec<u8>,
    ) -> BoxFuture<'_, Result<Box<dyn WorkflowRun>, String>> {
        let (target, gid) = (target.clone(), gid.clone());
        Box::pin(async move {
            let compiled = self
                .registry
                .compiled(&target.digest)
                .await
                .map_err(|e| format!("workflow module {} unavailable: {e}", target.module))?;
            let label = format!("{} {gid}/00 run", target.module);
            let instance = self.sandbox.start_workflow(&compiled, input, label).map_err(|e| e.to_string())?;
            Ok(Box::new(Run(instance)) as Box<dyn WorkflowRun>)
        })
    }

    fn resolve(&self, step: &StepTarget) -> BoxFuture<'_, Result<Target, String>> {
        let step = step.clone();
        Box::pin(async move {
            let name = ModuleName::parse(&step.module).map_err(|e| e.to_string())?;
            let record = match self.registry.current(&name).await {
                Ok(Some(record)) => record,
                Ok(None) => return Err(format!("module {:?} is not uploaded", step.module)),
                Err(e) => return Err(format!("module {:?} could not be looked up: {e}", step.module)),
            };
            if record.world != "branch" {
                return Err(format!("module {:?} is a {} module, not a branch module", step.module, record.world));
            }
            if !record.functions.contains(&step.function) {
                return Err(format!("module {:?} has no function {:?}", step.module, step.function));
            }
            Ok(Target { module: name, digest: record.digest, database: record.database, function: step.function })
        })
    }
}

/// The engine's executor: Wasm functions in the sandbox, HTTP endpoints
/// over the network ([`HttpBranches`]), by target.
#[derive(Clone)]
pub struct Branches {
    pub wasm: WasmBranches,
    pub http: HttpBranches,
}

impl BranchExecutor for Branches {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, BranchResult> {
        // Metrics labels: an HTTP target is `~http`, never its URL (unbounded).
        let (module, function) = match call.target.url() {
            Some(_) => ("~http".to_owned(), String::new()),
            None => (call.target.module.to_string(), call.target.function.clone()),
        };
        let op = call.op;
        let started = Instant::now();
        let run = traced(call, |call| {
            if call.target.url().is_some() { Box::pin(self.http.call(call)) } else { Box::pin(self.wasm.run(call)) }
        });
        Box::pin(async move {
            let result = run.await;
            let outcome = outcome_label(&result.outcome);
            crate::metrics::branch_op(&module, &function, op.as_str(), outcome, started.elapsed());
            result
        })
    }

    fn colocated(&self, target: &Target) -> bool {
        target.url().is_none() && self.wasm.colocated(target)
    }

    fn start_workflow(
        &self,
        target: &Target,
        gid: &Gid,
        input: Vec<u8>,
    ) -> BoxFuture<'_, Result<Box<dyn WorkflowRun>, String>> {
        self.wasm.start_workflow(target, gid, input)
    }

    fn resolve(&self, step: &StepTarget) -> BoxFuture<'_, Result<Target, String>> {
        self.wasm.resolve(step)
    }
}

/// An outcome as metrics and traces name it.
fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed(_) => "failed",
        Outcome::Retry(_) => "retry",
        Outcome::Error(_) => "error",
    }
}

/// Runs `call` with `run` in a `branch_op` span (see [`crate::telemetry`]),
/// child of the transaction's. With traces on, the branch is handed the
/// span's context as its `traceparent` header; off, the header the
/// transaction was submitted with (if any) goes unchanged.
fn traced<'a>(
    mut call: BranchCall,
    run: impl FnOnce(BranchCall) -> BoxFuture<'a, BranchResult>,
) -> BoxFuture<'a, BranchResult> {
    let (module, function) = match call.target.url() {
        Some(_) => ("~http", ""),
        None => (call.target.module.as_str(), call.target.function.as_str()),
    };
    let span = tracing::debug_span!(
        target: crate::telemetry::SPANS,
        "branch_op",
        branch_id = %call.branch_id,
        op = call.op.as_str(),
        module,
        function,
        attempt = call.attempt,
        outcome = tracing::field::Empty,
    );
    if let Some(traceparent) = crate::telemetry::traceparent(&span) {
        crate::telemetry::set_header(&mut call.headers, crate::telemetry::TRACEPARENT, traceparent);
    }
    let run = run(call).instrument(span.clone());
    Box::pin(async move {
        let result = run.await;
        span.record("outcome", outcome_label(&result.outcome));
        result
    })
}

/// A workflow instance, as the engine drives it.
struct Run(WorkflowInstance);

impl WorkflowRun for Run {
    fn next(&mut self) -> BoxFuture<'_, Option<StepQuestion>> {
        Box::pin(async move {
            let ask = self.0.asks.recv().await?;
            let reply = ask.reply;
            Some(StepQuestion {
                request: ask.request,
                answer: Box::new(move |answer| {
                    // The instance may be gone (it trapped meanwhile).
                    let _ = reply.send(answer);
                }),
            })
        })
    }

    fn end(&mut self) -> BoxFuture<'_, RunEnd> {
        Box::pin(async move {
            match self.0.end().await {
                Ok(returned) => RunEnd::Returned(returned),
                Err(e) => RunEnd::Trapped(e.to_string()),
            }
        })
    }
}
