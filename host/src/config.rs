//! Typed configuration, layered: defaults ← config file (TOML) ← environment
//! (`WASMTX_*`) ← command-line flags. Unknown keys in the file are an error,
//! so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::engine::RetryPolicy;
use crate::model::DatabaseName;
use crate::sandbox::Limits;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:36789";
pub const DEFAULT_DATA_DIR: &str = "./wasmtx-data";

/// What `wasmtx serve` runs with, fully resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Coordinator store URL (`sqlite://…` or `postgres://…`).
    pub store: String,
    /// Business databases by name; always contains `default`.
    pub databases: BTreeMap<DatabaseName, String>,
    /// Bearer token required on `/v1`; mandatory unless listening on loopback.
    pub token: Option<String>,
    pub limits: Limits,
    /// Where compiled module code is cached across restarts; `None` disables it.
    pub compile_cache: Option<PathBuf>,
    pub max_module_bytes: usize,
    pub retry: RetryPolicy,
    pub lease: Duration,
    pub wait_timeout: Duration,
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
    pub token: Option<String>,
    /// Per-invocation wall-clock budget, milliseconds.
    pub deadline_ms: Option<u64>,
    /// Per-instance memory cap, MiB.
    pub memory_mb: Option<usize>,
    /// Directory for compiled module code, or "off" (default: `<data_dir>/compile-cache`).
    pub compile_cache: Option<String>,
    pub max_module_mb: Option<usize>,
    pub retry_base_ms: Option<u64>,
    pub retry_cap_ms: Option<u64>,
    pub lease_secs: Option<u64>,
    pub wait_timeout_secs: Option<u64>,
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
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let file_config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?
            }
            None => FileConfig::default(),
        };
        Self::resolve(file_config, overrides)
    }

    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        let listen_text = o.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("listen address {listen_text:?} is invalid: {e}")))?;
        let data_dir = o.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let store = o.store.or(file.store).unwrap_or_else(|| sqlite_url(&data_dir, "coordinator.sqlite"));
        check_url("store", &store)?;

        let mut databases = BTreeMap::new();
        databases.insert(DatabaseName::default_name(), sqlite_url(&data_dir, "default.sqlite"));
        for (name, url) in file.databases {
            insert_database(&mut databases, &name, url)?;
        }
        for pair in o.databases {
            let (name, url) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::Invalid(format!("--database expects NAME=URL, got {pair:?}")))?;
            insert_database(&mut databases, name, url.to_owned())?;
        }

        let token = o.token.or(file.token).filter(|t| !t.is_empty());
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve on {listen} without a token: set WASMTX_TOKEN (or `token` in the config file), \
                 or listen on a loopback address for local development"
            )));
        }

        let defaults = Limits::default();
        let limits = Limits {
            deadline: file.deadline_ms.map(Duration::from_millis).unwrap_or(defaults.deadline),
            memory_bytes: file.memory_mb.map(|mb| mb << 20).unwrap_or(defaults.memory_bytes),
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
            Some(dir) => Some(PathBuf::from(dir)),
            None => Some(data_dir.join("compile-cache")),
        };
        Ok(Config {
            compile_cache,
            listen,
            data_dir,
            store,
            databases,
            token,
            limits,
            max_module_bytes: file.max_module_mb.unwrap_or(128) << 20,
            retry,
            lease,
            wait_timeout: Duration::from_secs(file.wait_timeout_secs.unwrap_or(60)),
        })
    }
}

fn insert_database(map: &mut BTreeMap<DatabaseName, String>, name: &str, url: String) -> Result<(), ConfigError> {
    let name = DatabaseName::parse(name).map_err(|e| ConfigError::Invalid(e.0))?;
    check_url(&format!("database {name}"), &url)?;
    map.insert(name, url);
    Ok(())
}

fn check_url(what: &str, url: &str) -> Result<(), ConfigError> {
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if known.iter().any(|p| url.starts_with(p)) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{what}: unsupported URL {url:?}; use sqlite://PATH or postgres://USER@HOST:PORT/DB"
        )))
    }
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_put_everything_in_the_data_dir() {
        let c = Config::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.store, "sqlite://./wasmtx-data/coordinator.sqlite?mode=rwc");
        assert_eq!(c.databases[&DatabaseName::default_name()], "sqlite://./wasmtx-data/default.sqlite?mode=rwc");
        assert_eq!(c.token, None);
        assert_eq!(c.compile_cache, Some(PathBuf::from("./wasmtx-data/compile-cache")));
    }

    #[test]
    fn the_compile_cache_can_be_moved_or_turned_off() {
        let file: FileConfig = toml::from_str("compile_cache = \"off\"").unwrap();
        assert_eq!(Config::resolve(file, Overrides::default()).unwrap().compile_cache, None);
        let file: FileConfig = toml::from_str("compile_cache = \"/var/cache/wasmtx\"").unwrap();
        let c = Config::resolve(file, Overrides::default()).unwrap();
        assert_eq!(c.compile_cache, Some(PathBuf::from("/var/cache/wasmtx")));
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
        let c = Config::resolve(file, o).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.store, "postgres://a@h/x");
        assert_eq!(c.databases[&DatabaseName::parse("bank").unwrap()], "sqlite://b.db");
        assert_eq!(c.databases[&DatabaseName::default_name()], "postgres://a@h/d");
    }

    #[test]
    fn unknown_file_keys_are_an_error() {
        let err = toml::from_str::<FileConfig>("listn = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `listn`"), "{err}");
    }

    #[test]
    fn public_listen_without_a_token_is_refused() {
        let o = Overrides { listen: Some("0.0.0.0:36789".into()), ..Overrides::default() };
        let err = Config::resolve(FileConfig::default(), o).unwrap_err().to_string();
        assert!(err.contains("without a token"), "{err}");
        let o =
            Overrides { listen: Some("0.0.0.0:36789".into()), token: Some("s3cret".into()), ..Overrides::default() };
        assert!(Config::resolve(FileConfig::default(), o).is_ok());
    }

    #[test]
    fn bad_database_flags_say_what_is_wrong() {
        let o = Overrides { databases: vec!["bank".into()], ..Overrides::default() };
        assert!(Config::resolve(FileConfig::default(), o).unwrap_err().to_string().contains("NAME=URL"));
        let o = Overrides { databases: vec!["bank=mysql://x".into()], ..Overrides::default() };
        assert!(Config::resolve(FileConfig::default(), o).unwrap_err().to_string().contains("unsupported URL"));
    }
}
