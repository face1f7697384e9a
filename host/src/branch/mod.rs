//! Runs one branch op for the engine: the pinned module version in the
//! sandbox, inside one local transaction on the module's database that also
//! carries the barrier row, committed only if the guest returned `ok`.
//!
//! This is where a branch's outcome is mapped to the protocol's words
//! ([`Outcome`]): guest `failure` → `Failed`, guest `retry` → `Retry`, and
//! everything else (trap, deadline, database unavailable, commit failure) →
//! `Error`, which the engine backs off and retries.

use std::collections::HashSet;
use std::sync::Arc;

use std::time::Instant;

use crate::database::{BarrierKey, BranchRun, Databases, DbError, Decision, ProgressRefused, RunError, TxWork};
use crate::engine::{BoxFuture, BranchCall, BranchExecutor, BranchResult, Carried, Outcome};
use crate::model::{DatabaseName, Digest, ModuleName, Op, Target};
use crate::registry::Registry;
use crate::sandbox::{Invocation, InvokeError, Prepared, Sandbox};
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
        let decision = db.run_local(deadline, guest_work(prepared, invocation)).await?;
        Ok(decision.into_inner()?)
    }

    async fn run(&self, call: BranchCall) -> BranchResult {
        let budget = call.timeout.map_or(self.sandbox.limits().deadline, |t| t.min(self.sandbox.limits().deadline));
        let deadline = Instant::now() + budget;
        let error = |m: String| BranchResult::of(Outcome::Error(m));
        let runner = match self.registry.runner(&call.target.module, &call.target.digest).await {
            Ok(c) => c,
            Err(e) => return error(format!("module {} unavailable: {e}", call.target.module)),
        };
        let Some(db) = self.databases.get(&call.target.database) else {
            return error(format!("database {:?} is not bound on this server", call.target.database.as_str()));
        };
        // Instantiated before the database is touched: no connection or
        // writer waits on a guest's start-up.
        let prepared = match self.sandbox.prepare(&runner, deadline).await {
            Ok(prepared) => prepared,
            Err(e) => return BranchResult::of(outcome_of(Err(e))),
        };
        let progress = call.progress.filter(|_| self.colocated.contains(&call.target.database));
        let carries = progress.is_some();
        let key = BarrierKey {
            trans_type: call.mode.as_str().to_owned(),
            gid: call.gid.clone(),
            branch_id: call.branch_id.clone(),
            op: call.op,
            barrier_id: "01".to_owned(),
        };
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
        match db.run_branch(key, deadline, progress, guest_work(prepared, invocation)).await {
            Ok(BranchRun::Skipped(verdict)) => {
                tracing::debug!(gid = %call.gid, branch = %call.branch_id, op = %call.op, ?verdict, "barrier: the guest did not run");
                BranchResult { outcome: Outcome::Succeeded, progress: written }
            }
            Ok(BranchRun::Ran(Decision::Commit(result))) => {
                BranchResult { outcome: outcome_of(result), progress: written }
            }
            Ok(BranchRun::Ran(Decision::Rollback(result))) => BranchResult::of(outcome_of(result)),
            Err(RunError::Progress(refused)) => {
                let progress = match refused {
                    ProgressRefused::Fenced => Carried::Fenced,
                    ProgressRefused::GidTaken => Carried::GidTaken,
                };
                BranchResult { outcome: Outcome::Error(refused.to_string()), progress }
            }
            Err(RunError::Db(e)) => error(format!("database {}: {e}", call.target.database)),
        }
    }
}

/// The guest's run inside the local transaction: commit on `ok`, roll back otherwise.
fn guest_work(prepared: Prepared, invocation: Invocation) -> TxWork<Result<Vec<u8>, InvokeError>> {
    Box::new(move |tx| {
        Box::pin(async move {
            let (result, tx) = prepared.call(invocation, Some(tx)).await;
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
        Box::pin(self.run(call))
    }

    fn colocated(&self, target: &Target) -> bool {
        self.colocated.contains(&target.database)
    }
}
