//! Runs one branch op for the engine: the pinned module version in the
//! sandbox, inside one local transaction on the module's database that also
//! carries the barrier row, committed only if the guest returned `ok`.
//!
//! This is where a branch's outcome is mapped to the protocol's words
//! ([`Outcome`]): guest `failure` → `Failed`, guest `retry` → `Retry`, and
//! everything else (trap, deadline, database unavailable, commit failure) →
//! `Error`, which the engine backs off and retries.

use std::sync::Arc;

use std::time::Instant;

use crate::database::{BarrierKey, BranchRun, Databases, DbError, Decision, TxWork};
use crate::engine::{BoxFuture, BranchCall, BranchExecutor, Outcome};
use crate::model::{DatabaseName, Digest, ModuleName, Op};
use crate::registry::Registry;
use crate::sandbox::{Invocation, InvokeError, Prepared, Sandbox};

/// Branch ops whose target is a Wasm module.
#[derive(Clone)]
pub struct WasmBranches {
    registry: Registry,
    sandbox: Sandbox,
    databases: Arc<Databases>,
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
    pub fn new(registry: Registry, sandbox: Sandbox, databases: Arc<Databases>) -> Self {
        Self { registry, sandbox, databases }
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

    async fn run(&self, call: BranchCall) -> Outcome {
        let deadline = Instant::now() + self.sandbox.limits().deadline;
        let runner = match self.registry.runner(&call.target.module, &call.target.digest).await {
            Ok(c) => c,
            Err(e) => return Outcome::Error(format!("module {} unavailable: {e}", call.target.module)),
        };
        let Some(db) = self.databases.get(&call.target.database) else {
            return Outcome::Error(format!("database {:?} is not bound on this server", call.target.database.as_str()));
        };
        // Instantiated before the database is touched: no connection or
        // writer waits on a guest's start-up.
        let prepared = match self.sandbox.prepare(&runner, deadline).await {
            Ok(prepared) => prepared,
            Err(e) => return outcome_of(Err(e)),
        };
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
        match db.run_branch(key, deadline, None, guest_work(prepared, invocation)).await {
            Ok(BranchRun::Skipped(verdict)) => {
                tracing::debug!(gid = %call.gid, branch = %call.branch_id, op = %call.op, ?verdict, "barrier: the guest did not run");
                Outcome::Succeeded
            }
            Ok(BranchRun::Ran(decision)) => outcome_of(decision.into_inner()),
            Err(e) => Outcome::Error(format!("database {}: {e}", call.target.database)),
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
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, Outcome> {
        Box::pin(self.run(call))
    }
}
