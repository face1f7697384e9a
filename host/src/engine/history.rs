//! Each transaction's history (status changes, op attempts, operators'
//! controls; its creation is in its own row), written beside the driver's writes and never in them: the
//! drive loop hands entries to a channel and goes on; one writer task appends
//! what has queued up in one store write. History is for people: the entries
//! not yet written when the process dies are lost, the transaction's state is
//! not, and a full queue drops entries (counted and logged) rather than slow
//! a transaction down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::{BranchId, Gid, HistoryEntry, Millis, Op, Status};
use crate::store::Store;

use super::saga::Outcome;

/// Entries waiting for the writer, at most.
const QUEUE: usize = 65_536;
/// Entries in one store write, at most.
const BATCH: usize = 512;
/// How long the writer gathers entries before a write.
const GATHER: Duration = Duration::from_millis(50);

/// Where the engine records history.
pub(super) struct History {
    queue: mpsc::Sender<HistoryEntry>,
    /// Entries queued and not written yet (or dropped by a failed write).
    pending: Arc<AtomicU64>,
    dropped: AtomicU64,
}

impl History {
    /// A history writing to `store`, with its writer task on the current
    /// Tokio runtime.
    pub fn start(store: Store) -> Self {
        let (queue, mut receiver) = mpsc::channel::<HistoryEntry>(QUEUE);
        let pending = Arc::new(AtomicU64::new(0));
        let written = pending.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while receiver.recv_many(&mut batch, BATCH).await > 0 {
                // Gather for a moment: one write of many entries costs the
                // store about what one write of one entry does.
                let gather = tokio::time::Instant::now() + GATHER;
                while batch.len() < BATCH {
                    let room = BATCH - batch.len();
                    match tokio::time::timeout_at(gather, receiver.recv_many(&mut batch, room)).await {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                if let Err(e) = store.append_history(&batch).await {
                    tracing::warn!(error = %e, entries = batch.len(), "could not write transaction history; dropped");
                }
                written.fetch_sub(batch.len() as u64, Ordering::AcqRel);
                batch.clear();
            }
        });
        Self { queue, pending, dropped: AtomicU64::new(0) }
    }

    pub fn record(&self, entry: HistoryEntry) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.queue.try_send(entry).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "transaction history queue full; entries dropped");
            }
        }
    }

    /// Waits until every entry recorded so far is written, for at most `grace`.
    pub async fn flush(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.pending.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The transaction's status changed to `status`, for `reason`.
pub(super) fn status(gid: &Gid, at: Millis, from: Status, to: Status, reason: Option<&str>) -> HistoryEntry {
    let detail = match reason {
        Some(reason) => format!("{from} -> {to}: {reason}"),
        None => format!("{from} -> {to}"),
    };
    HistoryEntry { outcome: Some(to.to_string()), detail: Some(detail), ..HistoryEntry::new(gid, at, "status") }
}

/// One attempt of one op ended with `outcome` after `duration_ms`.
pub(super) fn attempt(
    gid: &Gid,
    at: Millis,
    branch_id: &BranchId,
    op: Op,
    attempt: u32,
    outcome: &Outcome,
    duration_ms: u64,
) -> HistoryEntry {
    let (name, detail) = match outcome {
        Outcome::Succeeded => ("succeeded", None),
        Outcome::Failed(m) => ("failed", Some(m.clone())),
        Outcome::Retry(m) => ("retry", Some(m.clone())),
        Outcome::Error(m) => ("error", Some(m.clone())),
    };
    HistoryEntry {
        branch_id: Some(branch_id.clone()),
        op: Some(op),
        attempt: Some(attempt),
        outcome: Some(name.to_owned()),
        detail,
        duration_ms: Some(duration_ms),
        ..HistoryEntry::new(gid, at, "attempt")
    }
}
