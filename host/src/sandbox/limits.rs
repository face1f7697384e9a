//! What one invocation may cost, and how each limit is enforced: wall time
//! by epoch interruption (the deadline), memory by [`InstanceLimiter`] (all
//! the instance's memories together) and the pooling allocator's bounds,
//! output and error sizes and log volume by checks in the host, concurrency
//! by a semaphore. A limit that is hit fails that one invocation with an
//! error naming it.

use std::time::Duration;

use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter};

/// Resource limits applied to every invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget for one invocation: instantiation, the call, and
    /// every host call it makes (database included).
    pub deadline: Duration,
    /// Linear memory of one instance, all its memories together.
    pub memory_bytes: usize,
    /// Output a function may return.
    pub max_output_bytes: usize,
    /// A guest's failure or retry message.
    pub max_error_bytes: usize,
    /// Log text one invocation may write.
    pub max_log_bytes: usize,
    /// Log lines one invocation may write.
    pub max_log_lines: u32,
    /// Invocations running at once on this server; more wait for a turn
    /// (within their deadline).
    pub max_invocations: usize,
    /// Idle instances kept for reuse, all modules together.
    pub max_idle_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            memory_bytes: 256 << 20,
            max_output_bytes: 1 << 20,
            max_error_bytes: 64 << 10,
            max_log_bytes: 64 << 10,
            max_log_lines: 1_000,
            max_invocations: 64,
            max_idle_instances: 64,
        }
    }
}

/// Component instances the pooling allocator holds slots for: every running
/// invocation, every idle instance, and one upload being inspected.
pub(super) fn instance_slots(limits: &Limits) -> u32 {
    u32::try_from(limits.max_invocations + limits.max_idle_instances + 2).unwrap_or(u32::MAX)
}

/// Counts an instance's linear memory across all its memories (wasmtime's
/// `StoreLimits` caps each memory alone), and bounds tables.
pub(super) struct InstanceLimiter {
    memory_bytes: usize,
    max_memory_bytes: usize,
}

/// Table elements one table may have (interpreter guests have thousands).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl InstanceLimiter {
    pub(super) fn new(max_memory_bytes: usize) -> Self {
        Self { memory_bytes: 0, max_memory_bytes }
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_bytes.saturating_sub(current).saturating_add(desired);
        if total > self.max_memory_bytes {
            return Err(wasmtime::format_err!(
                "memory limit exceeded: the instance's memories would take {} MiB, above the limit of {} MiB \
                 (memory_mb)",
                total >> 20,
                self.max_memory_bytes >> 20
            ));
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::format_err!(
                "table limit exceeded: a table would hold {desired} elements, above {MAX_TABLE_ELEMENTS}"
            ));
        }
        Ok(true)
    }
}

/// Bytes of a freed memory slot reset in place rather than decommitted.
const KEEP_RESIDENT: usize = 1 << 20;

/// The engine's configuration: components, epoch interruption, and (when
/// `pooling`) a pooling allocator sized so that no module can take more
/// than its share: memories, tables and core instances per component are
/// bounded, and there is a slot for every invocation allowed at once.
pub(super) fn engine_config(limits: &Limits, pooling: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if pooling {
        let slots = instance_slots(limits);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            // Interpreter guests link tens of core modules (CPython: about 65 instances).
            .max_core_instances_per_component(128)
            .total_core_instances(slots.saturating_mul(32))
            .max_memories_per_component(16)
            .total_memories(slots.saturating_mul(4))
            .max_tables_per_component(128)
            .total_tables(slots.saturating_mul(32))
            .total_stacks(slots)
            .max_memory_size(limits.memory_bytes)
            // A freed slot's first MiB of memory (and its tables) is reset
            // in place, only the pages the guest dirtied (PAGEMAP_SCAN, Linux
            // 6.7+), instead of unmapped with madvise: no TLB shootdown on
            // every invocation, no page faults on the next. Larger memories
            // are still returned to the system.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT / 16)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_are_counted_together() {
        let mut limiter = InstanceLimiter::new(10 << 20);
        assert!(limiter.memory_growing(0, 6 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 3 << 20, None).unwrap(), "a second memory, 9 MiB in all");
        let err = limiter.memory_growing(3 << 20, 5 << 20, None).unwrap_err().to_string();
        assert!(err.starts_with("memory limit exceeded") && err.contains("11 MiB"), "{err}");
        assert!(limiter.memory_growing(6 << 20, 7 << 20, None).unwrap(), "10 MiB in all is the limit");
    }
}
