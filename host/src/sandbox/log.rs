//! Host side of the WIT `log` interface: guest log lines become `tracing`
//! events attributed to the module, gid and branch. An invocation may write
//! at most [`super::Limits::max_log_bytes`] in [`super::Limits::max_log_lines`]
//! lines; past that the call traps, naming the limit.

use super::HostState;
use super::bindings::wasmtx::runtime::log::{Host, Level};

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.log.lines == 0 || message.len() > self.log.bytes {
            return Err(wasmtime::format_err!(
                "log limit exceeded: one invocation may write at most {} lines and {} bytes of log \
                 (max_log_kb)",
                self.log.max_lines,
                self.log.max_bytes
            ));
        }
        self.log.lines -= 1;
        self.log.bytes -= message.len();
        let who = self.label.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Debug => tracing::debug!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Info => tracing::info!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Warn => tracing::warn!(target: "wasmtx::guest", branch = who, "{message}"),
            Level::Error => tracing::error!(target: "wasmtx::guest", branch = who, "{message}"),
        }
        Ok(())
    }
}
