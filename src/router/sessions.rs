//! Subscriber sessions: an identity plus a bounded outbox.
//!
//! Owns: the outbox of one subscriber (the MQTT and NATS fronts and the
//! in-process API hold one per subscriber; an MQTT persistent session keeps it
//! while the client is offline), its limits and its drop accounting, the wake-up
//! of the task that drains it, and, for a stored session (an MQTT session that
//! outlives its connection, on a router with storage), the record of every
//! at-least-once dispatch it holds until its front settles it: a stored session
//! is the destination of its pending messages.
//! Refuses: protocol state (packet ids, in-flight windows, acknowledgements belong
//! to the front), I/O, and the decision of what a drop means for the protocol (the
//! front reads [`Session::take_drop_stats`]).
//!
//! Locking: the outbox `Mutex` is a leaf (see docs/locks.md); nothing else is locked
//! while it is held, and the waiter is notified after it is released.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::journal::{DestId, Journal, Record, Ticket};
use super::memory::Memory;
use super::message::{ConnId, Delivery, Dispatch};

/// Bytes an outbox entry costs beyond its message's weight (the queue slot, the
/// shared message's allocation, subscription ids), so that a flood of tiny messages
/// is bounded by bytes too.
const ENTRY_OVERHEAD: usize = 128;

fn cost(d: &Dispatch) -> usize {
    d.message.weight() + ENTRY_OVERHEAD
}

/// Identifies a session within one router.
pub type SessionId = u64;

/// How much an outbox holds before pushes are dropped.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// The most messages queued at once.
    pub max_messages: usize,
    /// The most bytes queued at once, by `Message::weight` plus a fixed cost per
    /// entry (the message that crosses the limit is still accepted; the next one is
    /// dropped).
    pub max_bytes: usize,
}

/// What happened to a pushed dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// It is in the outbox.
    Queued,
    /// The outbox was full; it was counted in [`DropStats`] and discarded.
    Dropped,
}

/// Dispatches dropped because the outbox was full, since the last
/// [`Session::take_drop_stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropStats {
    /// All dropped dispatches.
    pub messages: u64,
    /// Of which at-most-once (QoS 0).
    pub qos0: u64,
}

/// The queued dispatches, at-most-once ones apart from the others, each in
/// arrival order and numbered so that taking the next one merges them: the oldest
/// at-most-once dispatch (what a full outbox drops for a QoS 1/2 one) is at a
/// front, not found by a scan.
#[derive(Debug, Default)]
struct Outbox {
    qos0: VecDeque<(u64, Dispatch)>,
    others: VecDeque<(u64, Dispatch)>,
    next: u64,
    bytes: usize,
    drops: DropStats,
    /// Dropping since the last successful push: warn once per overflow episode.
    overflowing: bool,
    /// The sequence number of the last stored dispatch.
    last_seq: u64,
}

impl Outbox {
    fn len(&self) -> usize {
        self.qos0.len() + self.others.len()
    }

    fn is_full(&self, limits: &OutboxLimits) -> bool {
        self.len() >= limits.max_messages || self.bytes >= limits.max_bytes
    }

    fn push_back(&mut self, d: Dispatch, memory: &Memory) {
        self.added(&d, memory);
        let n = self.next;
        self.next += 1;
        if d.qos == Delivery::AtMostOnce {
            self.qos0.push_back((n, d));
        } else {
            self.others.push_back((n, d));
        }
    }

    /// The oldest dispatch.
    fn pop_front(&mut self, memory: &Memory) -> Option<Dispatch> {
        let first_is_qos0 = match (self.qos0.front(), self.others.front()) {
            (Some((a, _)), Some((b, _))) => a < b,
            (a, _) => a.is_some(),
        };
        let (_, d) = if first_is_qos0 {
            self.qos0.pop_front()?
        } else {
            self.others.pop_front()?
        };
        self.removed(&d, memory);
        Some(d)
    }

    /// Counts `d`, just queued, here and in the router's ledger.
    fn added(&mut self, d: &Dispatch, memory: &Memory) {
        let c = cost(d);
        self.bytes += c;
        memory.charge(c);
    }

    /// Stops counting `d`, just taken out.
    fn removed(&mut self, d: &Dispatch, memory: &Memory) {
        let c = cost(d);
        self.bytes -= c;
        memory.release(c);
    }

    fn count_drop(&mut self, session: SessionId, qos: Delivery) {
        self.drops.messages += 1;
        if qos == Delivery::AtMostOnce {
            self.drops.qos0 += 1;
        }
        if !self.overflowing {
            self.overflowing = true;
            tracing::warn!(
                session,
                queued = self.len(),
                bytes = self.bytes,
                "session outbox full, dropping messages"
            );
        }
    }
}

/// Where a stored session is recorded.
#[derive(Debug)]
pub(crate) struct SessionStore {
    pub(crate) journal: Arc<Journal>,
    pub(crate) id: DestId,
}

/// One subscriber: an id, the connection it is attached to, and its outbox.
pub struct Session {
    id: SessionId,
    connection: AtomicU64,
    limits: OutboxLimits,
    /// Set for a stored session.
    store: Option<SessionStore>,
    /// Where the outbox's bytes are counted.
    memory: Arc<Memory>,
    outbox: Mutex<Outbox>,
    notify: Notify,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("connection", &self.connection())
            .field("queued", &self.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with an empty outbox, attached to no connection (0).
    pub fn new(id: SessionId, limits: OutboxLimits) -> Session {
        Session::with_store(id, limits, None, Arc::new(Memory::default()))
    }

    pub(crate) fn with_store(
        id: SessionId,
        limits: OutboxLimits,
        store: Option<SessionStore>,
        memory: Arc<Memory>,
    ) -> Session {
        Session {
            id,
            connection: AtomicU64::new(0),
            limits,
            store,
            memory,
            outbox: Mutex::new(Outbox::default()),
            notify: Notify::new(),
        }
    }

    /// Its storage id, if it is stored.
    pub fn store_id(&self) -> Option<DestId> {
        self.store.as_ref().map(|s| s.id)
    }

    pub(crate) fn store(&self) -> Option<&SessionStore> {
        self.store.as_ref()
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The connection currently attached (0 = none), for no-local.
    pub fn connection(&self) -> ConnId {
        self.connection.load(Ordering::Acquire)
    }

    /// Attaches the session to `conn` (0 to detach).
    pub fn set_connection(&self, conn: ConnId) {
        self.connection.store(conn, Ordering::Release);
    }

    // A poisoned outbox only means another thread panicked mid-push; the queue is
    // still a valid VecDeque, so keep serving rather than spread the panic.
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `d` unless the outbox already holds `max_messages` messages or
    /// `max_bytes` bytes (by [`Message::weight`](super::message::Message::weight));
    /// wakes the waiter when queued.
    ///
    /// A full outbox makes room for an at-least-once or exactly-once dispatch by
    /// dropping its oldest at-most-once ones: QoS 0 is dropped beyond the limit,
    /// QoS 1/2 is held up to it.
    pub fn push(&self, d: Dispatch) -> Pushed {
        self.push_stored(d, &mut Ticket::default())
    }

    /// [`Session::push`]; a stored session records an at-least-once dispatch it
    /// queues (numbering it in [`Dispatch::seq`]) and adds the commit that makes
    /// it durable to `ticket`.
    pub fn push_stored(&self, mut d: Dispatch, ticket: &mut Ticket) -> Pushed {
        {
            let mut outbox = self.outbox();
            if d.qos != Delivery::AtMostOnce {
                while outbox.is_full(&self.limits) {
                    let Some((_, evicted)) = outbox.qos0.pop_front() else {
                        break;
                    };
                    outbox.removed(&evicted, &self.memory);
                    outbox.count_drop(self.id, Delivery::AtMostOnce);
                }
            }
            if outbox.is_full(&self.limits) {
                outbox.count_drop(self.id, d.qos);
                return Pushed::Dropped;
            }
            outbox.overflowing = false;
            if let Some(store) = self
                .store
                .as_ref()
                .filter(|_| d.qos != Delivery::AtMostOnce)
            {
                outbox.last_seq += 1;
                d.seq = outbox.last_seq;
                ticket.merge(store.journal.append(Record::SessionQueued {
                    session: store.id,
                    seq: d.seq,
                    dispatch: d.clone(),
                }));
            }
            outbox.push_back(d, &self.memory);
        }
        self.notify.notify_one();
        Pushed::Queued
    }

    /// Puts recovered dispatches back, in order and whatever the limits (they
    /// were accepted before), without recording them again.
    pub(crate) fn restore(&self, dispatches: Vec<Dispatch>) {
        let mut outbox = self.outbox();
        for d in dispatches {
            outbox.last_seq = outbox.last_seq.max(d.seq);
            outbox.push_back(d, &self.memory);
        }
    }

    /// Takes the queued dispatch numbered `seq` out of the outbox (a recovered
    /// message its front had already sent).
    pub fn take(&self, seq: u64) -> Option<Dispatch> {
        let mut outbox = self.outbox();
        // Only stored (at-least-once) dispatches have a seq; this runs at recovery.
        let i = outbox.others.iter().position(|(_, d)| d.seq == seq)?;
        let (_, d) = outbox.others.remove(i)?;
        outbox.removed(&d, &self.memory);
        Some(d)
    }

    /// The front is done with stored dispatch `seq` (acknowledged, expired, or
    /// too large for the client): it is no longer kept. Nothing for a dispatch
    /// that was not stored (seq 0).
    pub fn settle(&self, seq: u64) -> Ticket {
        match &self.store {
            Some(store) if seq != 0 => store.journal.append(Record::SessionSettled {
                session: store.id,
                seq,
            }),
            _ => Ticket::default(),
        }
    }

    /// Records state the front keeps for this stored session (`None` removes
    /// it): opaque to the router, handed back to the front at recovery.
    pub fn record_state(&self, key: &[u8], value: Option<&[u8]>) -> Ticket {
        match &self.store {
            Some(store) => store.journal.append(Record::SessionState {
                session: store.id,
                key: key.into(),
                value: value.map(Into::into),
            }),
            None => Ticket::default(),
        }
    }

    /// The next queued dispatch.
    pub fn pop(&self) -> Option<Dispatch> {
        self.outbox().pop_front(&self.memory)
    }

    /// How many dispatches are queued.
    pub fn len(&self) -> usize {
        self.outbox().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.outbox().len() == 0
    }

    /// Whether a push now would be dropped.
    pub fn is_full(&self) -> bool {
        self.outbox().is_full(&self.limits)
    }

    /// Resolves once something has been pushed since the previous `wait` resolved
    /// (a push made before `wait` is called is not lost). Cancel-safe.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// The drops since the previous call, resetting the counters.
    pub fn take_drop_stats(&self) -> DropStats {
        std::mem::take(&mut self.outbox().drops)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let outbox = self.outbox.get_mut().unwrap_or_else(|e| e.into_inner());
        self.memory.release(outbox.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::router::message::Message;

    fn dispatch(payload: &'static str, qos: Delivery) -> Dispatch {
        Dispatch {
            message: Arc::new(Message {
                payload: payload.into(),
                ..Message::default()
            }),
            qos,
            retain: false,
            subscription_ids: Default::default(),
            share: None,
            seq: 0,
        }
    }

    fn session(max_messages: usize, max_bytes: usize) -> Session {
        Session::new(
            7,
            OutboxLimits {
                max_messages,
                max_bytes,
            },
        )
    }

    #[test]
    fn fifo_and_connection() {
        let s = session(10, 1000);
        assert_eq!(s.id(), 7);
        assert_eq!(s.connection(), 0);
        s.set_connection(42);
        assert_eq!(s.connection(), 42);
        assert!(s.is_empty());
        assert_eq!(s.push(dispatch("a", Delivery::AtMostOnce)), Pushed::Queued);
        assert_eq!(s.push(dispatch("b", Delivery::AtMostOnce)), Pushed::Queued);
        assert_eq!(s.len(), 2);
        assert_eq!(&s.pop().unwrap().message.payload[..], b"a");
        assert_eq!(&s.pop().unwrap().message.payload[..], b"b");
        assert!(s.pop().is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn mixed_deliveries_keep_arrival_order_and_are_counted_in_the_ledger() {
        let memory = Arc::new(Memory::default());
        let s = Session::with_store(
            1,
            OutboxLimits {
                max_messages: 10,
                max_bytes: 10_000,
            },
            None,
            memory.clone(),
        );
        let qos = [
            Delivery::AtMostOnce,
            Delivery::AtLeastOnce,
            Delivery::AtMostOnce,
            Delivery::ExactlyOnce,
            Delivery::AtLeastOnce,
        ];
        for (p, q) in ["0", "1", "2", "3", "4"].into_iter().zip(qos) {
            s.push(dispatch(p, q));
        }
        assert!(memory.held() > 0);
        let order: Vec<_> = std::iter::from_fn(|| s.pop())
            .map(|d| String::from_utf8(d.message.payload.to_vec()).unwrap())
            .collect();
        assert_eq!(order, ["0", "1", "2", "3", "4"]);
        assert_eq!(memory.held(), 0);
        s.push(dispatch("kept", Delivery::AtLeastOnce));
        drop(s);
        assert_eq!(memory.held(), 0, "a dropped session releases its outbox");
    }

    #[test]
    fn message_limit_drops_and_counts() {
        let s = session(2, 1000);
        assert_eq!(s.push(dispatch("a", Delivery::AtLeastOnce)), Pushed::Queued);
        assert_eq!(s.push(dispatch("b", Delivery::AtLeastOnce)), Pushed::Queued);
        assert!(s.is_full());
        assert_eq!(s.push(dispatch("c", Delivery::AtMostOnce)), Pushed::Dropped);
        assert_eq!(
            s.push(dispatch("d", Delivery::AtLeastOnce)),
            Pushed::Dropped
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.take_drop_stats(),
            DropStats {
                messages: 2,
                qos0: 1
            }
        );
        assert_eq!(s.take_drop_stats(), DropStats::default());
        s.pop();
        assert_eq!(s.push(dispatch("e", Delivery::AtMostOnce)), Pushed::Queued);
    }

    #[test]
    fn byte_limit_admits_the_crossing_message_then_drops() {
        // Each entry costs its payload plus ENTRY_OVERHEAD.
        let s = session(100, ENTRY_OVERHEAD + 4);
        assert_eq!(
            s.push(dispatch("abc", Delivery::AtMostOnce)),
            Pushed::Queued
        );
        // 3 + overhead < limit: this one is admitted and crosses the limit.
        assert_eq!(
            s.push(dispatch("defg", Delivery::AtMostOnce)),
            Pushed::Queued
        );
        assert_eq!(s.push(dispatch("h", Delivery::AtMostOnce)), Pushed::Dropped);
        s.pop();
        s.pop();
        assert_eq!(s.push(dispatch("h", Delivery::AtMostOnce)), Pushed::Queued);
        assert_eq!(s.take_drop_stats().messages, 1);
    }

    #[test]
    fn qos1_evicts_the_oldest_qos0_from_a_full_outbox() {
        let s = session(2, 1000);
        s.push(dispatch("zero", Delivery::AtMostOnce));
        s.push(dispatch("one", Delivery::AtLeastOnce));
        assert_eq!(
            s.push(dispatch("two", Delivery::ExactlyOnce)),
            Pushed::Queued
        );
        let order: Vec<_> = std::iter::from_fn(|| s.pop())
            .map(|d| d.message.payload.clone())
            .collect();
        assert_eq!(order, ["one", "two"]);
        assert_eq!(
            s.take_drop_stats(),
            DropStats {
                messages: 1,
                qos0: 1
            }
        );
    }

    #[test]
    fn headers_count_towards_the_byte_limit() {
        let s = session(100, ENTRY_OVERHEAD + 100);
        let heavy = Dispatch {
            message: Arc::new(Message {
                headers: vec![("k".repeat(60), "v".repeat(60))],
                ..Message::default()
            }),
            qos: Delivery::AtMostOnce,
            retain: false,
            subscription_ids: Default::default(),
            share: None,
            seq: 0,
        };
        assert_eq!(s.push(heavy), Pushed::Queued);
        assert_eq!(s.push(dispatch("", Delivery::AtMostOnce)), Pushed::Dropped);
    }

    #[test]
    fn wait_sees_a_push_made_before_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let s = session(10, 1000);
        s.push(dispatch("a", Delivery::AtMostOnce));
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), s.wait())
                .await
                .expect("the stored permit wakes the waiter");
        });
    }

    #[test]
    fn wait_wakes_on_push_from_another_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let s = Arc::new(session(10, 1000));
        let pusher = s.clone();
        rt.block_on(async {
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                pusher.push(dispatch("a", Delivery::AtMostOnce));
            });
            tokio::time::timeout(std::time::Duration::from_secs(5), s.wait())
                .await
                .expect("woken by the push");
            t.join().unwrap();
        });
        assert_eq!(s.len(), 1);
    }
}
