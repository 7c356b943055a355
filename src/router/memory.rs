//! The memory ledger: every byte the router holds for messages, counted in one
//! place, and the high watermark every front obeys.
//!
//! Owns: the count of message bytes held in queues (ready and delivered but not
//! yet settled), in session outboxes and in what fronts hold for the router
//! (AMQP content being received, open transactions), and the blocked state: set
//! when the count crosses the high watermark, cleared when it falls below
//! [`LOW_WATERMARK_PERCENT`] of it (hysteresis, so publishers are not switched
//! on and off for every message).
//! Refuses: what blocking means for a protocol (AMQP sends connection.blocked,
//! the others stop reading their publishers: the fronts decide), and dropping
//! anything to get under the bound (nothing acknowledged is ever dropped here).
//!
//! Streams are bounded by their own budget (`max_stream_bytes`, appends refused
//! beyond it) and are not counted: a stream keeps its messages until its limits
//! remove them, so counting them would block every publisher for good.
//!
//! Locking: the count is an atomic; the blocked state lives in a `watch` whose
//! lock is a leaf, taken only when the count crosses a watermark.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Publishers are let go again when the held bytes fall below this percentage of
/// the high watermark (RabbitMQ's alarm clears the same way, below the mark).
pub const LOW_WATERMARK_PERCENT: usize = 80;

/// The router's memory ledger.
pub struct Memory {
    held: AtomicUsize,
    high: AtomicUsize,
    /// Mirrors the watch's value, read on every charge and release.
    blocked: AtomicBool,
    state: watch::Sender<bool>,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory")
            .field("held", &self.held())
            .field("high", &self.high_watermark())
            .field("blocked", &self.is_blocked())
            .finish()
    }
}

impl Default for Memory {
    fn default() -> Memory {
        Memory::new(usize::MAX)
    }
}

impl Memory {
    /// A ledger holding nothing, blocking publishers above `high` bytes.
    pub fn new(high: usize) -> Memory {
        Memory {
            held: AtomicUsize::new(0),
            high: AtomicUsize::new(high),
            blocked: AtomicBool::new(false),
            state: watch::Sender::new(false),
        }
    }

    /// Sets the high watermark (at start, from the configuration).
    pub fn set_high_watermark(&self, high: usize) {
        self.high.store(high, Ordering::Relaxed);
        self.update();
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> usize {
        self.high.load(Ordering::Relaxed)
    }

    /// The bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether publishers are to be held back.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    /// A receiver of the blocked state, to wait for it to clear.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.state.subscribe()
    }

    /// Counts `bytes` more held.
    pub fn charge(&self, bytes: usize) {
        let after = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if after > self.high_watermark() && !self.is_blocked() {
            self.update();
        }
    }

    /// Counts `bytes` fewer held.
    pub fn release(&self, bytes: usize) {
        let before = self.held.fetch_sub(bytes, Ordering::Relaxed);
        debug_assert!(before >= bytes, "memory ledger released more than it held");
        let after = before.saturating_sub(bytes);
        let low = self.low_watermark();
        // Crossing the low mark always recomputes: an `update` running meanwhile
        // may have read the count before this release and be about to set the
        // state from it, so the flag alone is not to be trusted here.
        if after < low && (before >= low || self.is_blocked()) {
            self.update();
        }
    }

    fn low_watermark(&self) -> usize {
        self.high_watermark() / 100 * LOW_WATERMARK_PERCENT
    }

    /// Recomputes the blocked state from the count, under the watch's lock, so
    /// that concurrent crossings cannot leave it stale in the wrong direction.
    fn update(&self) {
        self.state.send_if_modified(|blocked| {
            let held = self.held();
            let now = if held > self.high_watermark() {
                true
            } else if held < self.low_watermark() {
                false
            } else {
                *blocked
            };
            if now == *blocked {
                return false;
            }
            *blocked = now;
            self.blocked.store(now, Ordering::Relaxed);
            // Debug, not warn: under sustained load the state flips with every
            // drained fifth of the bound.
            if now {
                tracing::debug!(
                    held,
                    high_watermark = self.high_watermark(),
                    "memory high watermark crossed: publishers are held back"
                );
            } else {
                tracing::debug!(held, "memory below the low watermark: publishers resume");
            }
            true
        });
    }
}

/// Bytes a front holds for the router (AMQP content being received, an open
/// transaction's messages), counted in the ledger until dropped.
#[derive(Debug)]
pub struct Held {
    memory: Arc<Memory>,
    bytes: usize,
}

impl Held {
    /// Nothing held yet.
    pub fn new(memory: Arc<Memory>) -> Held {
        Held { memory, bytes: 0 }
    }

    /// Counts `bytes` more.
    pub fn add(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.memory.charge(bytes);
    }

    /// Counts `bytes` fewer (at most what is held).
    pub fn remove(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.memory.release(bytes);
    }

    /// The bytes counted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.memory.release(self.bytes);
    }
}

/// Waits until `memory` lets publishers go (returns at once if it does).
pub async fn relieved(watch: &mut watch::Receiver<bool>) {
    // The sender lives as long as the router; if it is gone, nothing blocks.
    let _ = watch.wait_for(|blocked| !blocked).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_above_high_and_clears_below_low() {
        let m = Memory::new(1000);
        m.charge(900);
        assert!(!m.is_blocked());
        m.charge(200);
        assert!(m.is_blocked());
        m.release(200);
        // 900: between the marks, still blocked.
        assert!(m.is_blocked());
        m.release(150);
        assert!(!m.is_blocked());
        assert_eq!(m.held(), 750);
        assert!(!*m.watch().borrow());
    }

    #[test]
    fn held_bytes_are_released_when_dropped() {
        let m = Arc::new(Memory::new(100));
        {
            let mut h = Held::new(m.clone());
            h.add(160);
            assert!(m.is_blocked());
            h.remove(10);
            assert_eq!(h.bytes(), 150);
        }
        assert_eq!(m.held(), 0);
        assert!(!m.is_blocked());
    }

    #[tokio::test]
    async fn relieved_waits_for_the_low_watermark() {
        let m = Arc::new(Memory::new(100));
        m.charge(200);
        let mut w = m.watch();
        let waiter = tokio::spawn(async move { relieved(&mut w).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        m.release(150);
        waiter.await.unwrap();
    }
}
