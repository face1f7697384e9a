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
use crate::sandbox::{CompileError, Compiled, InvokeError, Sandbox};
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
}

impl Registry {
    /// `databases` are the names modules may bind to; `max_size` caps uploads.
    pub fn new(store: Store, sandbox: Sandbox, databases: Vec<DatabaseName>, max_size: usize) -> Self {
        Self { inner: Arc::new(Inner { store, sandbox, databases, max_size, compiled: Mutex::new(HashMap::new()) }) }
    }

    pub fn max_size(&self) -> usize {
        self.inner.max_size
    }

    /// Validates, compiles and stores a new version of `name`.
    pub async fn upload(
        &self,
        name: ModuleName,
        database: DatabaseName,
        bytes: Vec<u8>,
        now: Millis,
    ) -> Result<ModuleRecord, UploadError> {
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
        let (compiled, bytes) = self.compile(bytes).await?;
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
