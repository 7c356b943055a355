//! Messages the router discarded, by why: counted where the decision is made,
//! read by `/metrics`. Drops are exceptional, so these counters are off the
//! common path (touched only when something is dropped).

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a message (a copy of it) was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A subscriber's outbox was full (`max_queued_messages` / `max_queued_bytes`).
    OutboxFull,
    /// Its TTL passed while it was queued, and its queue has no dead-letter
    /// exchange.
    Expired,
    /// A queue length limit dropped or refused it (no dead-letter exchange).
    MaxLength,
    /// A consumer rejected it without requeue (no dead-letter exchange).
    Rejected,
}

impl DropReason {
    /// Every reason, in the order [`Drops::counts`] gives them.
    pub const ALL: [DropReason; 4] = [
        DropReason::OutboxFull,
        DropReason::Expired,
        DropReason::MaxLength,
        DropReason::Rejected,
    ];

    /// Its name as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::OutboxFull => "outbox_full",
            DropReason::Expired => "expired",
            DropReason::MaxLength => "max_length",
            DropReason::Rejected => "rejected",
        }
    }
}

/// Counts of discarded messages since the start.
#[derive(Debug, Default)]
pub struct Drops([AtomicU64; 4]);

impl Drops {
    pub(crate) fn count(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.0[reason as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Every reason with its count.
    pub fn counts(&self) -> [(DropReason, u64); 4] {
        DropReason::ALL.map(|r| (r, self.0[r as usize].load(Ordering::Relaxed)))
    }
}
