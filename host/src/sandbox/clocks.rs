//! `wasi:clocks/monotonic-clock` without sleep. A branch may read the time,
//! but waiting on a clock would hold its transaction (and, on SQLite, its
//! database's single writer) while doing nothing: subscribing to a future
//! instant traps with a message that says so. A zero wait (a yield) is fine.

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{Duration, Host, Instant};

/// The monotonic clock a branch sees.
pub(super) struct NoSleep<'a>(pub WasiClocksCtxView<'a>);

/// Marker for [`NoSleep`] in the linker.
pub(super) struct NoSleepClocks;

impl HasData for NoSleepClocks {
    type Data<'a> = NoSleep<'a>;
}

fn refused(what: String) -> wasmtime::Error {
    wasmtime::format_err!("sleep is not available to a branch: it asked to wait {what}; a branch must not wait")
}

impl Host for NoSleep<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        self.0.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<Duration> {
        self.0.resolution()
    }

    fn subscribe_instant(&mut self, when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.0.now()?;
        if when > now {
            return Err(refused(format!("until {}ns from now", when - now)));
        }
        self.0.subscribe_instant(when)
    }

    fn subscribe_duration(&mut self, duration: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        if duration > 0 {
            return Err(refused(format!("{duration}ns")));
        }
        self.0.subscribe_duration(duration)
    }
}
