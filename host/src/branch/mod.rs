//! Runs one branch op for the engine: the pinned module version in the
//! sandbox, inside one local transaction on the module's database that also
//! carries the barrier row, committed only if the guest returned `ok`.
//!
//! This is where a branch's outcome is mapped to the protocol's words
//! ([`Outcome`]): guest `failure` → `Failed`, guest `retry` → `Retry`, and
//! everything else (trap, deadline, database unavailable, commit failure) →
//! `Error`, which the engine backs off and retries.

use std::sync::Arc;

use crate::database::{BarrierKey, BarrierVerdict, Databases, DbError, LocalTx};
use crate::engine::{BoxFuture, BranchCall, BranchExecutor, Outcome};
use crate::model::{DatabaseName, Digest, ModuleName, Op};
use crate::registry::Registry;
use crate::sandbox::{Invocation, InvokeError, Sandbox};

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
        let runner = self.registry.runner(module, digest).await.map_err(|e| CallError::Module(e.to_string()))?;
        let db = self.databases.get(database).ok_or_else(|| CallError::UnknownDatabase(database.clone()))?;
        let tx = db.begin().await?;
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
        let (result, tx) = self.sandbox.run(&runner, invocation, Some(tx)).await;
        finish_tx(tx, result.is_ok()).await?;
        Ok(result?)
    }

    async fn run(&self, call: BranchCall) -> Outcome {
        let runner = match self.registry.runner(&call.target.module, &call.target.digest).await {
            Ok(c) => c,
            Err(e) => return Outcome::Error(format!("module {} unavailable: {e}", call.target.module)),
        };
        let Some(db) = self.databases.get(&call.target.database) else {
            return Outcome::Error(format!("database {:?} is not bound on this server", call.target.database.as_str()));
        };
        let mut tx = match db.begin().await {
            Ok(tx) => tx,
            Err(e) => return Outcome::Error(format!("cannot open a transaction on {}: {e}", call.target.database)),
        };
        let key = BarrierKey {
            trans_type: call.mode.as_str(),
            gid: &call.gid,
            branch_id: &call.branch_id,
            op: call.op,
            barrier_id: "01",
        };
        match tx.enter_barrier(&key).await {
            Ok(BarrierVerdict::Proceed) => {}
            Ok(verdict @ (BarrierVerdict::Duplicate | BarrierVerdict::NullCompensation)) => {
                tracing::debug!(gid = %call.gid, branch = %call.branch_id, op = %call.op, ?verdict, "barrier: not running the guest");
                return match tx.commit().await {
                    Ok(()) => Outcome::Succeeded,
                    Err(e) => Outcome::Error(format!("barrier commit failed: {e}")),
                };
            }
            Err(e) => return Outcome::Error(format!("barrier: {e}")),
        }
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
        let (result, tx) = self.sandbox.run(&runner, invocation, Some(tx)).await;
        if let Err(e) = finish_tx(tx, result.is_ok()).await {
            return Outcome::Error(format!("commit failed: {e}"));
        }
        match result {
            Ok(_) => Outcome::Succeeded,
            Err(InvokeError::Failure(m)) => Outcome::Failed(m),
            Err(InvokeError::Retry(m)) => Outcome::Retry(m),
            Err(InvokeError::Trap(m)) => Outcome::Error(m),
        }
    }
}

/// Commits when the guest succeeded, rolls back otherwise.
async fn finish_tx(tx: Option<LocalTx>, ok: bool) -> Result<(), DbError> {
    match tx {
        Some(tx) if ok => tx.commit().await,
        Some(tx) => tx.rollback().await,
        None => Ok(()),
    }
}

impl BranchExecutor for WasmBranches {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, Outcome> {
        Box::pin(self.run(call))
    }
}
