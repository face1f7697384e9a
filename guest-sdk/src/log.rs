//! Log lines through the WIT `log` import; the host attributes them to the
//! module, transaction and branch.
//!
//! Plain functions take a message; the macros of the same names format one:
//!
//! ```no_run
//! use wasmtx_guest::log;
//!
//! log::info("starting");
//! let (amount, from) = (30, "alice");
//! log::info!("moved {amount} from {from}");
//! ```
//!
//! Outside the host (native unit tests of a guest crate) lines go to stderr.

#[cfg(target_arch = "wasm32")]
use crate::bindings::wasmtx::runtime::log::{Level, log as host_log};

/// A log line at `trace` level.
pub fn trace(message: &str) {
    emit(Severity::Trace, message);
}

/// A log line at `debug` level.
pub fn debug(message: &str) {
    emit(Severity::Debug, message);
}

/// A log line at `info` level.
pub fn info(message: &str) {
    emit(Severity::Info, message);
}

/// A log line at `warn` level.
pub fn warn(message: &str) {
    emit(Severity::Warn, message);
}

/// A log line at `error` level.
pub fn error(message: &str) {
    emit(Severity::Error, message);
}

#[derive(Clone, Copy, Debug)]
enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[cfg(target_arch = "wasm32")]
fn emit(severity: Severity, message: &str) {
    let level = match severity {
        Severity::Trace => Level::Trace,
        Severity::Debug => Level::Debug,
        Severity::Info => Level::Info,
        Severity::Warn => Level::Warn,
        Severity::Error => Level::Error,
    };
    host_log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
fn emit(severity: Severity, message: &str) {
    eprintln!("[{severity:?}] {message}");
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::log::trace(&::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::log::debug(&::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::log::info(&::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::log::warn(&::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::log::error(&::std::format!($($arg)+)) };
}

/// `log::debug!("{x} ...")`: formats, then logs at `debug` level.
pub use crate::__log_debug as debug;
/// `log::error!("{x} ...")`: formats, then logs at `error` level.
pub use crate::__log_error as error;
/// `log::info!("{x} ...")`: formats, then logs at `info` level.
pub use crate::__log_info as info;
/// `log::trace!("{x} ...")`: formats, then logs at `trace` level.
pub use crate::__log_trace as trace;
/// `log::warn!("{x} ...")`: formats, then logs at `warn` level.
pub use crate::__log_warn as warn;
