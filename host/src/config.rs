//! Typed configuration, layered: defaults ← config file (TOML) ← environment
//! (`WASMTX_*`) ← command-line flags. Unknown keys in the file are an error,
//! so a typo never silently falls back to a default.
//!
//! Relative paths (the data directory, the compile cache, SQLite URLs) are
//! resolved once, here: those from flags, the environment and the defaults
//! against the working directory the server was started in, those from a
//! config file against the file's folder. Nothing later depends on the
//! working directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::ApiLimits;
use crate::api::auth::{Right, TokenSpec};
use crate::database::DbLimits;
use crate::engine::{Alerts, RetryPolicy};
use crate::model::DatabaseName;
use crate::registry::RegistryLimits;
use crate::sandbox::HostRule;
use crate::sandbox::Limits;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:36789";
/// Relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "wasmtx-data";
/// The SQLite file in the data dir that holds the store and the `default` database.
pub const DEFAULT_FILE: &str = "wasmtx.sqlite";
/// The two files data dirs of wasmtx 0.1 use (still used when present).
const LEGACY_STORE_FILE: &str = "coordinator.sqlite";
const LEGACY_DEFAULT_FILE: &str = "default.sqlite";

/// What `wasmtx serve` runs with, fully resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Absolute.
    pub data_dir: PathBuf,
    /// Coordinator store URL (`sqlite://…` with an absolute path, or `postgres://…`).
    pub store: String,
    /// Business databases by name; always contains `default`. SQLite paths are absolute.
    pub databases: BTreeMap<DatabaseName, String>,
    /// Bearer tokens accepted on `/v1`, with their rights; at least one is
    /// mandatory unless listening on loopback.
    pub tokens: Vec<TokenSpec>,
    /// What one invocation may cost.
    pub limits: Limits,
    /// What guest SQL may cost an invocation.
    pub db_limits: DbLimits,
    /// What uploads and the module caches may cost.
    pub registry: RegistryLimits,
    /// What one HTTP request may carry.
    pub api: ApiLimits,
    /// Hosts modules may reach over HTTP (each module narrows it at upload).
    pub http_allow: Vec<HostRule>,
    /// Transactions this instance drives at once.
    pub max_transactions: usize,
    /// Where compiled module code is cached across restarts (absolute); `None` disables it.
    pub compile_cache: Option<PathBuf>,
    pub retry: RetryPolicy,
    pub lease: Duration,
    /// How often this instance looks for due or orphaned work to claim.
    pub poll: Duration,
    pub wait_timeout: Duration,
    /// An XA branch prepared this long ago whose transaction will never
    /// finish it (failed, or not stored) is finished by the host.
    pub xa_orphan_after: Duration,
    /// Where and when to alert on stuck transactions; `None`: no alerts.
    pub alerts: Option<Alerts>,
    /// How long finished transactions are kept; `None`: forever.
    pub retention: Option<Duration>,
    /// The OpenTelemetry collector traces are exported to (OTLP over HTTP,
    /// protobuf), `http://HOST:PORT`; `None`: no traces.
    pub otlp_endpoint: Option<String>,
}

/// The config file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    #[serde(default)]
    pub databases: BTreeMap<String, String>,
    /// A token with every right.
    pub token: Option<String>,
    /// Tokens with chosen rights: `[[tokens]] name = "ci", token = "…", rights = ["submit", "read"]`.
    #[serde(default)]
    pub tokens: Vec<TokenFile>,
    /// Per-invocation wall-clock budget, milliseconds.
    pub deadline_ms: Option<u64>,
    /// Per-instance memory cap (all its memories), MiB.
    pub memory_mb: Option<usize>,
    /// Output one function may return, KiB.
    pub max_output_kb: Option<usize>,
    /// A guest's failure or retry message, KiB.
    pub max_error_kb: Option<usize>,
    /// Log one invocation may write, KiB, and lines.
    pub max_log_kb: Option<usize>,
    pub max_log_lines: Option<u32>,
    /// Invocations running at once.
    pub max_invocations: Option<usize>,
    /// Idle reusable instances kept, all modules together.
    pub max_idle_instances: Option<usize>,
    /// Rows and MiB of results one invocation's queries may return.
    pub max_rows: Option<u64>,
    pub max_result_mb: Option<u64>,
    /// How long a branch may hold its SQLite database's single writer, milliseconds.
    pub sqlite_hold_ms: Option<u64>,
    /// Connections to each Postgres business database.
    pub postgres_connections: Option<u32>,
    /// Compilations at once, and how long one may take.
    pub max_compiles: Option<usize>,
    pub compile_timeout_secs: Option<u64>,
    /// Compiled code and instance pools unused this long are dropped.
    pub idle_evict_secs: Option<u64>,
    /// JSON request bodies, KiB; one branch's payload, KiB; branches per transaction.
    pub max_request_kb: Option<usize>,
    pub max_payload_kb: Option<usize>,
    pub max_branches: Option<usize>,
    /// Transactions this instance drives at once.
    pub max_transactions: Option<usize>,
    /// Hosts modules may reach over HTTP: `host`, `host:port`, `*.domain`
    /// (a module must also name them at upload; empty: no outbound HTTP).
    #[serde(default)]
    pub http_allow: Vec<String>,
    /// Directory for compiled module code, or "off" (default: `<data_dir>/compile-cache`).
    pub compile_cache: Option<String>,
    pub max_module_mb: Option<usize>,
    pub retry_base_ms: Option<u64>,
    pub retry_cap_ms: Option<u64>,
    pub lease_secs: Option<u64>,
    /// How often due work (retries, other instances' expired leases) is
    /// looked for, milliseconds.
    pub poll_ms: Option<u64>,
    pub wait_timeout_secs: Option<u64>,
    /// How long an XA branch may stay prepared, seconds, before the host
    /// rolls it back if its transaction failed or is unknown.
    pub xa_orphan_secs: Option<u64>,
    /// An `http://` URL alerts are POSTed to as JSON; empty or absent: no alerts.
    pub alert_webhook: Option<String>,
    /// Alert once on a transaction, or one of its ops, with more attempts than this.
    pub alert_after_retries: Option<u32>,
    /// Alert once on a transaction still unfinished this long after its creation, seconds.
    pub alert_after_unfinished_secs: Option<u64>,
    /// Delete transactions finished more than this many days ago; absent: keep them forever.
    pub retention_days: Option<u64>,
    /// An OpenTelemetry collector (`http://HOST:4318`) to export traces to over
    /// OTLP/HTTP; empty or absent: no traces. `WASMTX_OTLP_ENDPOINT` overrides it.
    pub otlp_endpoint: Option<String>,
}

/// One `[[tokens]]` entry of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    pub name: String,
    pub token: String,
    pub rights: Vec<String>,
}

/// Values given on the command line or in the environment (flags win; clap
/// reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    /// `NAME=URL` pairs.
    pub databases: Vec<String>,
    /// `WASMTX_TOKEN`: a token with every right.
    pub token: Option<String>,
    /// `--auth-token NAME:RIGHTS:TOKEN`, rights comma-separated.
    pub auth_tokens: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot determine the working directory: {0}")]
    WorkingDir(std::io::Error),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads `file` (if any) and layers `overrides` on top; relative paths
    /// are resolved against the current working directory.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().map_err(ConfigError::WorkingDir)?;
        let mut config = Self::load_in(&cwd, file, overrides)?;
        // No flag: the environment alone overrides the file's key.
        if let Ok(endpoint) = std::env::var("WASMTX_OTLP_ENDPOINT") {
            config.otlp_endpoint = otlp_endpoint(Some(&endpoint))?;
        }
        Ok(config)
    }

    /// [`Config::load`] as if started in `cwd` (absolute).
    pub fn load_in(cwd: &Path, file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let (file_config, file_dir) = match file {
            Some(path) => {
                let path = absolute(cwd, path);
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                // The file exists: its canonical folder is what its paths are relative to.
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                let parsed = toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse { path: path.clone(), message: toml_error(&text, &e) })?;
                let dir = path.parent().map_or_else(|| cwd.to_owned(), Path::to_owned);
                (parsed, dir)
            }
            None => (FileConfig::default(), cwd.to_owned()),
        };
        Self::resolve(file_config, &file_dir, overrides, cwd)
    }

    /// Layers `o` (relative to `cwd`) over `file` (relative to `file_dir`) over the defaults.
    pub fn resolve(file: FileConfig, file_dir: &Path, o: Overrides, cwd: &Path) -> Result<Config, ConfigError> {
        let listen_text = o.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("listen address {listen_text:?} is invalid: {e}")))?;
        let data_dir = match (o.data_dir, file.data_dir) {
            (Some(dir), _) => absolute(cwd, &dir),
            (None, Some(dir)) => absolute(file_dir, &dir),
            (None, None) => absolute(cwd, Path::new(DEFAULT_DATA_DIR)),
        };
        // One file for the store and the `default` database, so that a
        // branch's commit carries the transaction's progress; a data dir of
        // an earlier version keeps its two files.
        let (store_file, default_file) = if data_dir.join(LEGACY_STORE_FILE).exists() {
            (LEGACY_STORE_FILE, LEGACY_DEFAULT_FILE)
        } else {
            (DEFAULT_FILE, DEFAULT_FILE)
        };
        let store = match (o.store, file.store) {
            (Some(url), _) => resolve_sqlite_url(&url, cwd),
            (None, Some(url)) => resolve_sqlite_url(&url, file_dir),
            (None, None) => sqlite_url(&data_dir, store_file),
        };
        check_url("store", &store, false)?;

        let mut databases = BTreeMap::new();
        databases.insert(DatabaseName::default_name(), sqlite_url(&data_dir, default_file));
        for (name, url) in file.databases {
            insert_database(&mut databases, &name, resolve_sqlite_url(&url, file_dir))?;
        }
        for pair in o.databases {
            let (name, url) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::Invalid(format!("--database expects NAME=URL, got {pair:?}")))?;
            insert_database(&mut databases, name, resolve_sqlite_url(url, cwd))?;
        }

        let mut tokens = Vec::new();
        if let Some(token) = o.token.or(file.token).filter(|t| !t.is_empty()) {
            tokens.push(TokenSpec { name: "token".to_owned(), token, rights: Right::ALL.to_vec() });
        }
        for t in file.tokens {
            tokens.push(token_spec(&t.name, &t.token, t.rights.iter().map(String::as_str))?);
        }
        for flag in &o.auth_tokens {
            let mut parts = flag.splitn(3, ':');
            let (Some(name), Some(rights), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(ConfigError::Invalid(
                    "--auth-token expects NAME:RIGHTS:TOKEN (rights: read,submit,admin)".into(),
                ));
            };
            tokens.push(token_spec(name, token, rights.split(','))?);
        }
        if tokens.is_empty() && !listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve on {listen} without a token: set WASMTX_TOKEN, --auth-token or `tokens` in the \
                 config file, or listen on a loopback address for local development"
            )));
        }

        let d = Limits::default();
        let limits = Limits {
            deadline: file.deadline_ms.map(Duration::from_millis).unwrap_or(d.deadline),
            memory_bytes: file.memory_mb.map(|mb| mb << 20).unwrap_or(d.memory_bytes),
            max_output_bytes: file.max_output_kb.map(|kb| kb << 10).unwrap_or(d.max_output_bytes),
            max_error_bytes: file.max_error_kb.map(|kb| kb << 10).unwrap_or(d.max_error_bytes),
            max_log_bytes: file.max_log_kb.map(|kb| kb << 10).unwrap_or(d.max_log_bytes),
            max_log_lines: file.max_log_lines.unwrap_or(d.max_log_lines),
            max_invocations: file.max_invocations.unwrap_or(d.max_invocations).max(1),
            max_idle_instances: file.max_idle_instances.unwrap_or(d.max_idle_instances),
        };
        let d = DbLimits::default();
        let db_limits = DbLimits {
            max_rows: file.max_rows.unwrap_or(d.max_rows),
            max_bytes: file.max_result_mb.map(|mb| mb << 20).unwrap_or(d.max_bytes),
            sqlite_hold: file.sqlite_hold_ms.map(Duration::from_millis).unwrap_or(d.sqlite_hold),
            postgres_connections: file.postgres_connections.unwrap_or(d.postgres_connections).max(1),
        };
        let d = RegistryLimits::default();
        let registry = RegistryLimits {
            max_size: file.max_module_mb.map(|mb| mb << 20).unwrap_or(d.max_size),
            max_compiles: file.max_compiles.unwrap_or(d.max_compiles).max(1),
            compile_timeout: file.compile_timeout_secs.map(Duration::from_secs).unwrap_or(d.compile_timeout),
            idle_evict: file.idle_evict_secs.map(Duration::from_secs).unwrap_or(d.idle_evict),
            record_ttl: d.record_ttl,
        };
        let http_allow = file
            .http_allow
            .iter()
            .map(|h| HostRule::parse(h).map_err(|e| ConfigError::Invalid(format!("http_allow: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let d = ApiLimits::default();
        let api = ApiLimits {
            max_request_bytes: file.max_request_kb.map(|kb| kb << 10).unwrap_or(d.max_request_bytes),
            max_payload_bytes: file.max_payload_kb.map(|kb| kb << 10).unwrap_or(d.max_payload_bytes),
            max_branches: file.max_branches.unwrap_or(d.max_branches).max(1),
            max_request_timeout: limits.deadline,
            ..d
        };
        let retry_defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            base_ms: file.retry_base_ms.unwrap_or(retry_defaults.base_ms).max(1),
            cap_ms: file.retry_cap_ms.unwrap_or(retry_defaults.cap_ms).max(1),
        };
        let lease = Duration::from_secs(file.lease_secs.unwrap_or(30).max(1));
        if lease <= limits.deadline {
            return Err(ConfigError::Invalid(format!(
                "lease_secs ({lease:?}) must be longer than the invocation deadline ({:?})",
                limits.deadline
            )));
        }
        let compile_cache = match file.compile_cache.as_deref() {
            Some("off") => None,
            Some(dir) => Some(absolute(file_dir, Path::new(dir))),
            None => Some(data_dir.join("compile-cache")),
        };
        Ok(Config {
            compile_cache,
            listen,
            data_dir,
            store,
            databases,
            tokens,
            limits,
            db_limits,
            registry,
            api,
            http_allow,
            max_transactions: file.max_transactions.unwrap_or(512).max(1),
            retry,
            lease,
            poll: Duration::from_millis(file.poll_ms.unwrap_or(200).clamp(10, 60_000)),
            wait_timeout: Duration::from_secs(file.wait_timeout_secs.unwrap_or(60)),
            xa_orphan_after: Duration::from_secs(file.xa_orphan_secs.unwrap_or(60).max(1)),
            alerts: alerts(file.alert_webhook.as_deref(), file.alert_after_retries, file.alert_after_unfinished_secs)?,
            retention: retention(file.retention_days)?,
            otlp_endpoint: otlp_endpoint(file.otlp_endpoint.as_deref())?,
        })
    }
}

/// The collector's URL, checked; `None` when absent or empty. `http://`
/// only: the exporter's HTTP client has no TLS.
fn otlp_endpoint(endpoint: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else { return Ok(None) };
    let invalid = |why: &str| ConfigError::Invalid(format!("otlp_endpoint {}: {why}", redact_url(endpoint)));
    let url = reqwest::Url::parse(endpoint).map_err(|e| invalid(&format!("not an http://HOST:PORT URL: {e}")))?;
    match url.scheme() {
        "http" if url.host().is_some() => Ok(Some(endpoint.trim_end_matches('/').to_owned())),
        "https" => Err(invalid("https is not supported (no TLS in this build); use http://, e.g. a nearby collector")),
        _ => Err(invalid("use an http://HOST:PORT URL (OTLP over HTTP, usually port 4318)")),
    }
}

/// The alert settings; `None` without a webhook. The webhook must be an
/// `http://` URL: this build's HTTP client has no TLS.
fn alerts(
    webhook: Option<&str>,
    retries: Option<u32>,
    unfinished_secs: Option<u64>,
) -> Result<Option<Alerts>, ConfigError> {
    let Some(webhook) = webhook.map(str::trim).filter(|w| !w.is_empty()) else { return Ok(None) };
    let url = reqwest::Url::parse(webhook)
        .map_err(|e| ConfigError::Invalid(format!("alert_webhook {webhook:?} is not a URL: {e}")))?;
    match url.scheme() {
        "http" if url.host().is_some() => {}
        "https" => {
            return Err(ConfigError::Invalid(format!(
                "alert_webhook {}: https is not supported (this build's HTTP client has no TLS); use an http:// URL, \
                 e.g. a relay inside the cluster",
                redact_url(webhook)
            )));
        }
        _ => {
            return Err(ConfigError::Invalid(format!(
                "alert_webhook {}: use an http://HOST[:PORT]/PATH URL",
                redact_url(webhook)
            )));
        }
    }
    if unfinished_secs == Some(0) {
        return Err(ConfigError::Invalid("alert_after_unfinished_secs must be at least 1".into()));
    }
    Ok(Some(Alerts {
        webhook: webhook.to_owned(),
        after_retries: retries.unwrap_or(Alerts::DEFAULT_AFTER_RETRIES),
        after_unfinished: unfinished_secs.map_or(Alerts::DEFAULT_AFTER_UNFINISHED, Duration::from_secs),
    }))
}

/// `retention_days` as a duration; `None` keeps finished transactions forever.
fn retention(days: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match days {
        None => Ok(None),
        Some(0) => Err(ConfigError::Invalid(
            "retention_days must be at least 1 (leave it out to keep finished transactions forever)".into(),
        )),
        Some(days) => Ok(Some(Duration::from_secs(days.saturating_mul(86_400)))),
    }
}

fn token_spec<'a>(name: &str, token: &str, rights: impl Iterator<Item = &'a str>) -> Result<TokenSpec, ConfigError> {
    if name.is_empty() || token.is_empty() {
        return Err(ConfigError::Invalid(format!("token {name:?}: name and token must not be empty")));
    }
    let rights = rights
        .map(|r| {
            Right::parse(r.trim()).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "token {name:?}: unknown right {r:?} (rights: read, submit, admin, metrics)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rights.is_empty() {
        return Err(ConfigError::Invalid(format!("token {name:?} has no rights")));
    }
    Ok(TokenSpec { name: name.to_owned(), token: token.to_owned(), rights })
}

/// A TOML error on one line: "line L, column C: message".
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn insert_database(map: &mut BTreeMap<DatabaseName, String>, name: &str, url: String) -> Result<(), ConfigError> {
    let name = DatabaseName::parse(name).map_err(|e| ConfigError::Invalid(e.0))?;
    check_url(&format!("database {name}"), &url, true)?;
    map.insert(name, url);
    Ok(())
}

/// A store URL is SQLite or Postgres; a business database's may also be
/// MySQL/MariaDB or Redis (`business`).
fn check_url(what: &str, url: &str, business: bool) -> Result<(), ConfigError> {
    let known = ["sqlite:", "postgres://", "postgresql://"];
    let others = ["mysql://", "mariadb://", "redis://"];
    if known.iter().any(|p| url.starts_with(p)) || (business && others.iter().any(|p| url.starts_with(p))) {
        Ok(())
    } else {
        let also =
            if business { ", mysql://USER@HOST:PORT/DB (MariaDB) or redis://HOST:PORT/DB[?prefix=…]" } else { "" };
        Err(ConfigError::Invalid(format!(
            "{what}: unsupported URL {url:?}; use sqlite://PATH or postgres://USER@HOST:PORT/DB{also}"
        )))
    }
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

/// `path` made absolute against `base`, with `.` components dropped (`..`
/// is kept: resolving it lexically would be wrong across symlinks).
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_owned() } else { base.join(path) };
    joined.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// A SQLite URL (`sqlite://PATH`, `sqlite:PATH`, with an optional `?query`)
/// whose relative path is made absolute against `base`. Other URLs, and
/// in-memory databases, come back unchanged.
pub fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else { return url.to_owned() };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let in_memory = path.is_empty() || path == ":memory:" || query.is_some_and(|q| q.contains("mode=memory"));
    if in_memory {
        return url.to_owned();
    }
    let path = absolute(base, Path::new(path));
    match query {
        Some(query) => format!("sqlite://{}?{query}", path.display()),
        None => format!("sqlite://{}", path.display()),
    }
}

/// `url` with any password replaced by `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CWD: &str = "/work/here";
    const FILE_DIR: &str = "/etc/wasmtx";

    fn resolve(file: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        Config::resolve(file, Path::new(FILE_DIR), o, Path::new(CWD))
    }

    #[test]
    fn defaults_put_everything_in_the_data_dir_under_the_working_directory() {
        let c = resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from("/work/here/wasmtx-data"));
        assert_eq!(c.store, "sqlite:///work/here/wasmtx-data/wasmtx.sqlite?mode=rwc");
        assert_eq!(c.databases[&DatabaseName::default_name()], c.store, "store and default database share one file");
        assert!(c.tokens.is_empty());
        assert_eq!(c.compile_cache, Some(PathBuf::from("/work/here/wasmtx-data/compile-cache")));
    }

    #[test]
    fn the_compile_cache_can_be_moved_or_turned_off() {
        let file: FileConfig = toml::from_str("compile_cache = \"off\"").unwrap();
        assert_eq!(resolve(file, Overrides::default()).unwrap().compile_cache, None);
        let file: FileConfig = toml::from_str("compile_cache = \"/var/cache/wasmtx\"").unwrap();
        let c = resolve(file, Overrides::default()).unwrap();
        assert_eq!(c.compile_cache, Some(PathBuf::from("/var/cache/wasmtx")));
    }

    #[test]
    fn relative_paths_in_the_file_are_relative_to_the_file() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"state\"\ncompile_cache = \"./cache\"\nstore = \"sqlite://db/store.sqlite?mode=rwc\"\n\
             [databases]\nledger = \"sqlite:ledger.sqlite\"\n",
        )
        .unwrap();
        let c = resolve(file, Overrides::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/wasmtx/state"));
        assert_eq!(c.compile_cache, Some(PathBuf::from("/etc/wasmtx/cache")));
        assert_eq!(c.store, "sqlite:///etc/wasmtx/db/store.sqlite?mode=rwc");
        assert_eq!(c.databases[&DatabaseName::parse("ledger").unwrap()], "sqlite:///etc/wasmtx/ledger.sqlite");
        // The default database follows the data dir.
        assert_eq!(c.databases[&DatabaseName::default_name()], "sqlite:///etc/wasmtx/state/wasmtx.sqlite?mode=rwc");
    }

    #[test]
    fn relative_paths_in_flags_are_relative_to_the_working_directory() {
        let o = Overrides {
            data_dir: Some("./data".into()),
            store: Some("sqlite:./s.sqlite".into()),
            databases: vec!["bank=sqlite://../bank.sqlite".into()],
            ..Overrides::default()
        };
        let c = resolve(FileConfig::default(), o).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/work/here/data"));
        assert_eq!(c.store, "sqlite:///work/here/s.sqlite");
        assert_eq!(c.databases[&DatabaseName::parse("bank").unwrap()], "sqlite:///work/here/../bank.sqlite");
    }

    #[test]
    fn absolute_in_memory_and_postgres_urls_are_left_alone() {
        let base = Path::new(CWD);
        for url in ["sqlite:///abs/x.db", "sqlite::memory:", "sqlite://x?mode=memory", "postgres://u@h/db"] {
            let expected = if url == "sqlite:///abs/x.db" { "sqlite:///abs/x.db" } else { url };
            assert_eq!(resolve_sqlite_url(url, base), expected, "{url}");
        }
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://me:pw@h:5432/db?x=1"), "postgres://me:***@h:5432/db?x=1");
        assert_eq!(redact_url("postgres://me@h/db"), "postgres://me@h/db");
        assert_eq!(redact_url("sqlite:///a/b"), "sqlite:///a/b");
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:1\"\nstore = \"postgres://a@h/x\"\n[databases]\nbank = \"postgres://a@h/bank\"\n",
        )
        .unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2".into()),
            databases: vec!["bank=sqlite://b.db".into(), "default=postgres://a@h/d".into()],
            ..Overrides::default()
        };
        let c = resolve(file, o).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.store, "postgres://a@h/x");
        assert_eq!(c.databases[&DatabaseName::parse("bank").unwrap()], "sqlite:///work/here/b.db");
        assert_eq!(c.databases[&DatabaseName::default_name()], "postgres://a@h/d");
    }

    #[test]
    fn unknown_file_keys_are_an_error_on_one_line() {
        let text = "listen = \"127.0.0.1:1\"\nlistn = \"x\"";
        let err = toml::from_str::<FileConfig>(text).unwrap_err();
        let line = toml_error(text, &err);
        assert!(line.starts_with("line 2, column 1: unknown field `listn`"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn public_listen_without_a_token_is_refused() {
        let o = Overrides { listen: Some("0.0.0.0:36789".into()), ..Overrides::default() };
        let err = resolve(FileConfig::default(), o).unwrap_err().to_string();
        assert!(err.contains("without a token"), "{err}");
        let o =
            Overrides { listen: Some("0.0.0.0:36789".into()), token: Some("s3cret".into()), ..Overrides::default() };
        assert!(resolve(FileConfig::default(), o).is_ok());
        let o = Overrides {
            listen: Some("0.0.0.0:36789".into()),
            auth_tokens: vec!["ci:submit,read:t0ken".into()],
            ..Overrides::default()
        };
        let c = resolve(FileConfig::default(), o).unwrap();
        assert_eq!(c.tokens[0].rights, [Right::Submit, Right::Read]);
    }

    #[test]
    fn tokens_with_rights_come_from_the_file_and_flags_and_bad_ones_are_refused() {
        let file: FileConfig =
            toml::from_str("[[tokens]]\nname = \"ops\"\ntoken = \"abc\"\nrights = [\"admin\", \"read\"]\n").unwrap();
        let c = resolve(file, Overrides::default()).unwrap();
        assert_eq!(
            c.tokens,
            [TokenSpec { name: "ops".into(), token: "abc".into(), rights: vec![Right::Admin, Right::Read] }]
        );
        for flag in ["ci:write:x", "ci::x", "ci:read", ":read:x"] {
            let o = Overrides { auth_tokens: vec![flag.into()], ..Overrides::default() };
            assert!(resolve(FileConfig::default(), o).is_err(), "{flag}");
        }
    }

    #[test]
    fn alerts_and_retention_are_off_unless_configured_and_take_their_defaults() {
        let c = resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!((c.alerts, c.retention), (None, None));
        let file: FileConfig = toml::from_str("alert_webhook = \"\"").unwrap();
        assert_eq!(resolve(file, Overrides::default()).unwrap().alerts, None, "empty is off");

        let file: FileConfig =
            toml::from_str("alert_webhook = \"http://alerts.svc:8080/hook\"\nretention_days = 30").unwrap();
        let c = resolve(file, Overrides::default()).unwrap();
        assert_eq!(
            c.alerts,
            Some(Alerts {
                webhook: "http://alerts.svc:8080/hook".into(),
                after_retries: 10,
                after_unfinished: Duration::from_secs(3600),
            })
        );
        assert_eq!(c.retention, Some(Duration::from_secs(30 * 86_400)));

        let file: FileConfig = toml::from_str(
            "alert_webhook = \"http://127.0.0.1:9/a\"\nalert_after_retries = 3\nalert_after_unfinished_secs = 60",
        )
        .unwrap();
        let alerts = resolve(file, Overrides::default()).unwrap().alerts.unwrap();
        assert_eq!((alerts.after_retries, alerts.after_unfinished), (3, Duration::from_secs(60)));
    }

    #[test]
    fn a_webhook_that_is_not_http_or_a_retention_of_zero_days_is_refused() {
        for (text, expected) in [
            ("alert_webhook = \"https://hooks.example.com/x\"", "https is not supported"),
            ("alert_webhook = \"ftp://hooks.example.com/x\"", "http://"),
            ("alert_webhook = \"not a url\"", "not a URL"),
            ("alert_webhook = \"http://h/x\"\nalert_after_unfinished_secs = 0", "at least 1"),
            ("retention_days = 0", "keep finished transactions forever"),
        ] {
            let file: FileConfig = toml::from_str(text).unwrap();
            let err = resolve(file, Overrides::default()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn bad_database_flags_say_what_is_wrong() {
        let o = Overrides { databases: vec!["bank".into()], ..Overrides::default() };
        assert!(resolve(FileConfig::default(), o).unwrap_err().to_string().contains("NAME=URL"));
        let o = Overrides { databases: vec!["bank=mongodb://x".into()], ..Overrides::default() };
        assert!(resolve(FileConfig::default(), o).unwrap_err().to_string().contains("unsupported URL"));
    }

    #[test]
    fn traces_are_off_unless_an_http_collector_is_named() {
        assert_eq!(resolve(FileConfig::default(), Overrides::default()).unwrap().otlp_endpoint, None);
        let endpoint =
            |text: &str| resolve(toml::from_str(text).unwrap(), Overrides::default()).map(|c| c.otlp_endpoint);
        assert_eq!(endpoint("otlp_endpoint = \"\"").unwrap(), None);
        assert_eq!(
            endpoint("otlp_endpoint = \"http://127.0.0.1:4318/\"").unwrap().as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert!(endpoint("otlp_endpoint = \"https://otel.example\"").unwrap_err().to_string().contains("https"));
        assert!(endpoint("otlp_endpoint = \"127.0.0.1:4318\"").unwrap_err().to_string().contains("http://"));
    }
}
