//! Module upload, validation and versions, and the cache of compiled modules.
//!
//! An upload becomes visible only after it compiled, implements the `branch`
//! world and answered `handler.functions`; its bytes are stored by digest, so
//! a version is immutable and in-flight transactions pinned to a digest keep
//! running it after a new upload under the same name. Compiled code is cached
//! in memory by digest and rebuilt from the stored bytes on demand (so any
//! instance can run any module).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::model::{DatabaseName, Digest, Millis, ModuleName, ModuleRecord};
use crate::sandbox::{CompileError, Compiled, InstancePool, InvokeError, Runner, Sandbox};
use crate::store::{Store, StoreError};

/// Why an upload was refused. Everything but `Store` is the uploader's to fix.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is empty")]
    Empty,
    #[error("the upload is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("database {0:?} is not bound on this server (bind it with --database NAME=URL)")]
    UnknownDatabase(String),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("the component failed when asked for its functions: {0}")]
    Inspect(InvokeError),
    #[error("the component exports no functions (handler.functions returned an empty list)")]
    NoFunctions,
    #[error("reuse must be between 1 and {max} invocations per instance, got {got}")]
    InvalidReuse { got: u32, max: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a stored module version could not be made runnable.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no module version with digest {0}")]
    Missing(Digest),
    #[error("stored module {0} no longer compiles: {1}")]
    Compile(Digest, CompileError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sandbox: Sandbox,
    databases: Vec<DatabaseName>,
    max_size: usize,
    /// One cell per digest so concurrent first uses compile once.
    compiled: Mutex<HashMap<Digest, Arc<OnceCell<Compiled>>>>,
    /// How each (module, version) runs; pools are never shared across names.
    runners: Mutex<HashMap<(ModuleName, Digest), Runner>>,
}

/// The most invocations one reused instance may serve.
pub const MAX_REUSE: u32 = 100_000;
/// Idle instances kept per reused module version.
const POOL_CAPACITY: usize = 16;

impl Registry {
    /// `databases` are the names modules may bind to; `max_size` caps uploads.
    pub fn new(store: Store, sandbox: Sandbox, databases: Vec<DatabaseName>, max_size: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                sandbox,
                databases,
                max_size,
                compiled: Mutex::new(HashMap::new()),
                runners: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn max_size(&self) -> usize {
        self.inner.max_size
    }

    /// Validates, compiles and stores a new version of `name`. `instance_reuse`
    /// opts in to reusing instances for up to that many invocations each.
    pub async fn upload(
        &self,
        name: ModuleName,
        database: DatabaseName,
        instance_reuse: Option<u32>,
        bytes: Vec<u8>,
        now: Millis,
    ) -> Result<ModuleRecord, UploadError> {
        if let Some(got) = instance_reuse
            && !(1..=MAX_REUSE).contains(&got)
        {
            return Err(UploadError::InvalidReuse { got, max: MAX_REUSE });
        }
        if bytes.is_empty() {
            return Err(UploadError::Empty);
        }
        if bytes.len() > self.inner.max_size {
            return Err(UploadError::TooLarge { size: bytes.len(), max: self.inner.max_size });
        }
        if !self.inner.databases.contains(&database) {
            return Err(UploadError::UnknownDatabase(database.to_string()));
        }
        let digest = Digest::of(&bytes);
        let cached = self.cell(&digest).get().cloned();
        let (compiled, bytes) = match cached {
            Some(compiled) => (compiled, bytes),
            None => self.compile(bytes).await?,
        };
        let mut functions = self.inner.sandbox.functions(&compiled).await.map_err(UploadError::Inspect)?;
        functions.sort();
        functions.dedup();
        if functions.is_empty() {
            return Err(UploadError::NoFunctions);
        }
        let record = ModuleRecord {
            name,
            digest: digest.clone(),
            world: "branch".to_owned(),
            functions,
            database,
            instance_reuse,
            size: bytes.len() as u64,
            created_at: now,
        };
        self.inner.store.put_module(&record, &bytes).await?;
        let cell = self.cell(&digest);
        let _ = cell.set(compiled);
        Ok(record)
    }

    /// The runnable form of a stored version, compiled once per process.
    pub async fn compiled(&self, digest: &Digest) -> Result<Compiled, LoadError> {
        let cell = self.cell(digest);
        let compiled = cell
            .get_or_try_init(|| async {
                let bytes =
                    self.inner.store.module_bytes(digest).await?.ok_or_else(|| LoadError::Missing(digest.clone()))?;
                let (compiled, _) = self.compile(bytes).await.map_err(|e| LoadError::Compile(digest.clone(), e))?;
                Ok::<_, LoadError>(compiled)
            })
            .await?;
        Ok(compiled.clone())
    }

    /// How to run `name` at the version `digest` (a transaction's pinned
    /// version, or the current one for a direct call).
    pub async fn runner(&self, name: &ModuleName, digest: &Digest) -> Result<Runner, LoadError> {
        let key = (name.clone(), digest.clone());
        if let Some(runner) = self.inner.runners.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(runner.clone());
        }
        let record =
            self.inner.store.module_version(name, digest).await?.ok_or_else(|| LoadError::Missing(digest.clone()))?;
        let compiled = self.compiled(digest).await?;
        let runner = match record.instance_reuse {
            Some(n) if n > 1 => Runner::Reused(Arc::new(InstancePool::new(compiled, n, POOL_CAPACITY))),
            _ => Runner::Fresh(compiled),
        };
        let mut runners = self.inner.runners.lock().unwrap_or_else(|p| p.into_inner());
        Ok(runners.entry(key).or_insert(runner).clone())
    }

    pub async fn current(&self, name: &ModuleName) -> Result<Option<ModuleRecord>, StoreError> {
        self.inner.store.module(name).await
    }

    pub async fn list(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        self.inner.store.modules().await
    }

    fn cell(&self, digest: &Digest) -> Arc<OnceCell<Compiled>> {
        let mut map = self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(digest.clone()).or_default().clone()
    }

    /// Compiles on a blocking thread (interpreter guests take seconds).
    async fn compile(&self, bytes: Vec<u8>) -> Result<(Compiled, Vec<u8>), CompileError> {
        let sandbox = self.inner.sandbox.clone();
        tokio::task::spawn_blocking(move || sandbox.compile(&bytes).map(|c| (c, bytes)))
            .await
            .map_err(|e| CompileError::Invalid(format!("compiler task failed: {e}")))?
    }
}
