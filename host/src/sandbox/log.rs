//! Host side of the WIT `log` interface: guest log lines become `tracing`
//! events attributed to the module, gid and branch.

use super::HostState;
use super::bindings::wasmtx::runtime::log::{Host, Level};

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let who = self.label.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Debug => tracing::debug!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Info => tracing::info!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Warn => tracing::warn!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Error => tracing::error!(target: "wasmtx::guest", branch = who, "{message}"),
        }
    }
}
