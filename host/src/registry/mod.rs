//! Module upload, validation and versions, and the caches in front of them:
//! compiled code by digest, runners by (module, version), current module
//! records by name.
//!
//! An upload becomes visible only after it compiled, implements the `branch`
//! world and answered `handler.functions`; its bytes are stored by digest, so
//! a version is immutable and in-flight transactions pinned to a digest keep
//! running it after a new upload under the same name. Compiled code is rebuilt
//! from the stored bytes on demand (so any instance can run any module).
//!
//! Bounds: at most [`RegistryLimits::max_compiles`] compilations run at once,
//! each for at most [`RegistryLimits::compile_timeout`]; compiled code,
//! runners and their idle instances unused for [`RegistryLimits::idle_evict`]
//! are dropped by [`Registry::evict_idle`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, Semaphore};

use crate::model::{DatabaseName, Digest, Millis, ModuleName, ModuleRecord};
use crate::sandbox::{CompileError, Compiled, HostRule, HttpGrant, InvokeError, Runner, Sandbox};
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
    /// The module's store import does not fit its database's kind.
    #[error(
        "the module imports `wasmtx:runtime/{imported}`, but database {database:?} is {kind}, reached through \
         `wasmtx:runtime/{wanted}`: build the module against world `{}` or bind it to a {} database",
        if *wanted == "kv" { "kv-branch" } else { "branch" },
        if *imported == "kv" { "Redis" } else { "SQL" }
    )]
    WrongStore { imported: &'static str, database: String, kind: &'static str, wanted: &'static str },
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("compilation took longer than {0:?} (compile_timeout_secs); the module was not stored")]
    CompileTimeout(Duration),
    #[error("the component failed when asked for its functions: {0}")]
    Inspect(InvokeError),
    #[error("the component exports no functions (handler.functions returned an empty list)")]
    NoFunctions,
    #[error("function name {0:?} is invalid: use 1 to 128 printable characters")]
    BadFunctionName(String),
    #[error("reuse must be between 1 and {max} invocations per instance, got {got}")]
    InvalidReuse { got: u32, max: u32 },
    #[error("{0}")]
    InvalidHttpHost(String),
    /// An option that only branch modules take, given with a workflow module.
    #[error(
        "{0} is for branch modules; a workflow module runs one fresh instance per run and reaches nothing but its \
         steps and log"
    )]
    NotForWorkflows(&'static str),
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
    #[error("compiling stored module {0} took longer than {1:?}")]
    CompileTimeout(Digest, Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What uploads and the caches may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Largest upload, in bytes.
    pub max_size: usize,
    /// Compilations running at once (each keeps a core busy).
    pub max_compiles: usize,
    pub compile_timeout: Duration,
    /// Compiled code and instance pools unused this long are dropped.
    pub idle_evict: Duration,
    /// How long a module's current version is served from memory before the
    /// store is asked again (an upload here refreshes it at once).
    pub record_ttl: Duration,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        Self {
            max_size: 128 << 20,
            max_compiles: 1,
            compile_timeout: Duration::from_secs(120),
            idle_evict: Duration::from_secs(600),
            record_ttl: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sandbox: Sandbox,
    /// The names modules may bind to, with their kinds (`Database::kind`).
    databases: Vec<(DatabaseName, &'static str)>,
    limits: RegistryLimits,
    /// Hosts the operator lets modules reach over HTTP (`http_allow`).
    http_allow: Arc<[HostRule]>,
    compiles: Arc<Semaphore>,
    /// One cell per digest so concurrent first uses compile once.
    compiled: Mutex<HashMap<Digest, Used<Arc<OnceCell<Compiled>>>>>,
    /// How each (module, version) runs; pools are never shared across names.
    runners: Mutex<HashMap<(ModuleName, Digest), Used<Runner>>>,
    /// Current version of each name, as last read.
    records: Mutex<HashMap<ModuleName, (Instant, Option<ModuleRecord>)>>,
}

/// A cache entry and when it was last used.
struct Used<T> {
    value: T,
    at: Instant,
}

impl<T: Clone> Used<T> {
    fn new(value: T) -> Self {
        Self { value, at: Instant::now() }
    }

    fn touch(&mut self) -> T {
        self.at = Instant::now();
        self.value.clone()
    }
}

/// The most invocations one reused instance may serve.
pub const MAX_REUSE: u32 = 100_000;
/// Idle instances kept per reused module version (the sandbox bounds them all together too).
const POOL_CAPACITY: usize = 16;
/// Functions a module may export, and the length of each name.
const MAX_FUNCTIONS: usize = 1_000;
const MAX_FUNCTION_NAME: usize = 128;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Reusable guest instances waiting idle, all modules together.
    pub fn idle_instances(&self) -> usize {
        self.inner.sandbox.idle_instances()
    }

    /// Module versions whose compiled code is held now.
    pub fn compiled_count(&self) -> usize {
        lock(&self.inner.compiled).values().filter(|used| used.value.get().is_some()).count()
    }

    /// `databases` are the names modules may bind to; `http_allow` the hosts
    /// the operator lets modules reach over HTTP (each upload narrows it).
    pub fn new(
        store: Store,
        sandbox: Sandbox,
        databases: Vec<(DatabaseName, &'static str)>,
        limits: RegistryLimits,
        http_allow: Vec<HostRule>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                sandbox,
                databases,
                http_allow: http_allow.into(),
                compiles: Arc::new(Semaphore::new(limits.max_compiles.max(1))),
                limits,
                compiled: Mutex::new(HashMap::new()),
                runners: Mutex::new(HashMap::new()),
                records: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn max_size(&self) -> usize {
        self.inner.limits.max_size
    }

    /// Validates, compiles and stores a new version of `name`. `instance_reuse`
    /// opts in to reusing instances for up to that many invocations each;
    /// `http_hosts` are the hosts its outbound HTTP may reach (within the
    /// operator's `http_allow`).
    pub async fn upload(
        &self,
        name: ModuleName,
        database: DatabaseName,
        instance_reuse: Option<u32>,
        http_hosts: Vec<String>,
        bytes: Vec<u8>,
        now: Millis,
    ) -> Result<ModuleRecord, UploadError> {
        for host in &http_hosts {
            HostRule::parse(host).map_err(UploadError::InvalidHttpHost)?;
        }
        if let Some(got) = instance_reuse
            && !(1..=MAX_REUSE).contains(&got)
        {
            return Err(UploadError::InvalidReuse { got, max: MAX_REUSE });
        }
        if bytes.is_empty() {
            return Err(UploadError::Empty);
        }
        let max = self.inner.limits.max_size;
        if bytes.len() > max {
            return Err(UploadError::TooLarge { size: bytes.len(), max });
        }
        let Some(&(_, kind)) = self.inner.databases.iter().find(|(name, _)| *name == database) else {
            return Err(UploadError::UnknownDatabase(database.to_string()));
        };
        let digest = Digest::of(&bytes);
        let cached = self.cell(&digest).get().cloned();
        let (compiled, bytes) = match cached {
            Some(compiled) => (compiled, bytes),
            None => self.compile(bytes).await.map_err(|e| match e {
                Compilation::Failed(e) => UploadError::Compile(e),
                Compilation::TimedOut(t) => UploadError::CompileTimeout(t),
            })?,
        };
        let wanted = crate::database::Database::interface_of(kind);
        if let Some(imported) = compiled.store_interface().filter(|i| *i != wanted) {
            return Err(UploadError::WrongStore { imported, database: database.to_string(), kind, wanted });
        }
        if compiled.world() == "workflow" {
            if instance_reuse.is_some() {
                return Err(UploadError::NotForWorkflows("reuse"));
            }
            if !http_hosts.is_empty() {
                return Err(UploadError::NotForWorkflows("http_hosts"));
            }
        }
        let mut functions = self.inner.sandbox.functions(&compiled).await.map_err(UploadError::Inspect)?;
        functions.sort();
        functions.dedup();
        if functions.is_empty() {
            return Err(UploadError::NoFunctions);
        }
        if functions.len() > MAX_FUNCTIONS {
            return Err(UploadError::Inspect(InvokeError::Trap(format!(
                "the component exports {} functions; at most {MAX_FUNCTIONS}",
                functions.len()
            ))));
        }
        if let Some(bad) =
            functions.iter().find(|f| f.is_empty() || f.len() > MAX_FUNCTION_NAME || f.chars().any(|c| c.is_control()))
        {
            return Err(UploadError::BadFunctionName(bad.clone()));
        }
        let record = ModuleRecord {
            name,
            digest: digest.clone(),
            world: compiled.world().to_owned(),
            functions,
            database,
            instance_reuse,
            size: bytes.len() as u64,
            created_at: now,
            http_hosts,
        };
        self.inner.store.put_module(&record, &bytes).await?;
        let _ = self.cell(&digest).set(compiled);
        lock(&self.inner.records).insert(record.name.clone(), (Instant::now(), Some(record.clone())));
        Ok(record)
    }

    /// The runnable form of a stored version, compiled once per process.
    pub async fn compiled(&self, digest: &Digest) -> Result<Compiled, LoadError> {
        let cell = self.cell(digest);
        let compiled = cell
            .get_or_try_init(|| async {
                let bytes =
                    self.inner.store.module_bytes(digest).await?.ok_or_else(|| LoadError::Missing(digest.clone()))?;
                let (compiled, _) = self.compile(bytes).await.map_err(|e| match e {
                    Compilation::Failed(e) => LoadError::Compile(digest.clone(), e),
                    Compilation::TimedOut(t) => LoadError::CompileTimeout(digest.clone(), t),
                })?;
                Ok::<_, LoadError>(compiled)
            })
            .await?;
        Ok(compiled.clone())
    }

    /// How to run `name` at the version `digest` (a transaction's pinned
    /// version, or the current one for a direct call).
    pub async fn runner(&self, name: &ModuleName, digest: &Digest) -> Result<Runner, LoadError> {
        let key = (name.clone(), digest.clone());
        if let Some(runner) = lock(&self.inner.runners).get_mut(&key) {
            return Ok(runner.touch());
        }
        let record =
            self.inner.store.module_version(name, digest).await?.ok_or_else(|| LoadError::Missing(digest.clone()))?;
        let compiled = self.compiled(digest).await?;
        let runner = match record.instance_reuse {
            Some(n) if n > 1 => Runner::reused(Arc::new(self.inner.sandbox.instance_pool(compiled, n, POOL_CAPACITY))),
            _ => Runner::fresh(compiled),
        };
        // Rules were checked at upload; one that no longer parses grants nothing.
        let module_hosts: Arc<[HostRule]> = record.http_hosts.iter().filter_map(|h| HostRule::parse(h).ok()).collect();
        let runner = runner.with_http(HttpGrant::new(self.inner.http_allow.clone(), module_hosts));
        Ok(lock(&self.inner.runners).entry(key).or_insert_with(|| Used::new(runner)).touch())
    }

    /// The current version of `name`, from memory when read recently.
    pub async fn current(&self, name: &ModuleName) -> Result<Option<ModuleRecord>, StoreError> {
        if let Some((at, record)) = lock(&self.inner.records).get(name)
            && at.elapsed() < self.inner.limits.record_ttl
        {
            return Ok(record.clone());
        }
        let record = self.inner.store.module(name).await?;
        lock(&self.inner.records).insert(name.clone(), (Instant::now(), record.clone()));
        Ok(record)
    }

    pub async fn list(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        self.inner.store.modules().await
    }

    /// Drops compiled code, runners (with their idle instances) and module
    /// records unused for `idle_evict`. Returns how many entries went.
    pub fn evict_idle(&self) -> usize {
        let idle = self.inner.limits.idle_evict;
        let fresh = |at: &Instant| at.elapsed() < idle;
        let mut evicted = 0;
        {
            let mut runners = lock(&self.inner.runners);
            let before = runners.len();
            runners.retain(|_, used| fresh(&used.at));
            evicted += before - runners.len();
        }
        {
            let mut compiled = lock(&self.inner.compiled);
            let before = compiled.len();
            // A cell still being filled (a compile in flight) is kept.
            compiled.retain(|_, used| fresh(&used.at) || used.value.get().is_none());
            evicted += before - compiled.len();
        }
        lock(&self.inner.records).retain(|_, (at, _)| at.elapsed() < self.inner.limits.record_ttl);
        evicted
    }

    /// Runs [`Registry::evict_idle`] every minute until the task is aborted.
    pub fn spawn_eviction(&self) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let evicted = registry.evict_idle();
                if evicted > 0 {
                    tracing::debug!(evicted, "dropped idle compiled modules and instance pools");
                }
            }
        })
    }

    fn cell(&self, digest: &Digest) -> Arc<OnceCell<Compiled>> {
        let mut map = lock(&self.inner.compiled);
        map.entry(digest.clone()).or_insert_with(|| Used::new(Arc::default())).touch()
    }

    /// Compiles on a blocking thread (interpreter guests take seconds), one of
    /// at most `max_compiles` at a time, giving up after `compile_timeout`
    /// (the thread finishes on its own, still holding its compile slot).
    async fn compile(&self, bytes: Vec<u8>) -> Result<(Compiled, Vec<u8>), Compilation> {
        let timeout = self.inner.limits.compile_timeout;
        let started = Instant::now();
        let permit = tokio::time::timeout(timeout, self.inner.compiles.clone().acquire_owned())
            .await
            .map_err(|_| Compilation::TimedOut(timeout))?
            .map_err(|_| Compilation::TimedOut(timeout))?;
        let sandbox = self.inner.sandbox.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            sandbox.compile(&bytes).map(|c| (c, bytes))
        });
        let remaining = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, task).await {
            Ok(Ok(result)) => result.map_err(Compilation::Failed),
            Ok(Err(e)) => Err(Compilation::Failed(CompileError::Invalid(format!("compiler task failed: {e}")))),
            Err(_) => Err(Compilation::TimedOut(timeout)),
        }
    }
}

enum Compilation {
    Failed(CompileError),
    TimedOut(Duration),
}
