//! Queues, the router's stored destinations (AMQP queues, STOMP `/queue` and
//! `/topic` subscriptions): ready messages, consumers, prefetch credit and the
//! per-connection outlets deliveries are handed to.
//!
//! Owns: one queue's ready messages (FIFO, or priority buckets), its consumers and
//! round-robin dispatch under prefetch [`Credit`], TTL expiry at the head, length
//! limits, the settlement of what it delivered (every entry handed out is
//! unacknowledged until it is acked, requeued in its original order, or
//! rejected), its [`QueueStats`], and the accounting of its bytes into the
//! router's [`Memory`] ledger: an entry is counted from the moment it is queued
//! until it is settled or dropped, so what consumers hold unacknowledged counts too.
//! Refuses: routing (exchanges and dead-letter routing are in `vhost/`; a queue
//! only hands back the entries to dead-letter), acknowledgements and delivery tags
//! (the front's), I/O and clocks (`now` is an argument).
//!
//! Locking: `queue.state` (Mutex) -> `outlet.items` (Mutex, leaf); credits are
//! atomics. The outlet's waiter is notified after its lock is released.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::deaths::DeathReason;
use super::journal::{DestId, Journal, Record, Ticket};
use super::memory::Memory;
use super::message::{ConnId, Delivery, Message, Now};

/// Identifies a consumer within one router.
pub type ConsumerId = u64;

/// Bytes a queued entry costs in memory beyond its message's weight.
const ENTRY_OVERHEAD: usize = 128;

/// What a queue at its length limit does with a new message (`x-overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (dead-letter) the oldest ready messages.
    #[default]
    DropHead,
    /// Refuse the new message.
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    RejectPublishDlx,
}

/// RabbitMQ's `x-queue-type`. Quorum and stream queues are kept as durable queues
/// of the one kind dwbroker has (replication and stream offsets do not apply on one
/// node); the type is remembered so that a redeclaration must name the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// `classic` (the default).
    #[default]
    Classic,
    /// `quorum`: durable, not exclusive, not auto-delete.
    Quorum,
    /// `stream`: durable, not exclusive, not auto-delete.
    Stream,
}

impl QueueType {
    /// Its name in `x-queue-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// The `x-` arguments of a queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueArgs {
    /// `x-message-ttl`.
    pub message_ttl: Option<Duration>,
    /// `x-expires`: delete the queue after this long unused.
    pub expires: Option<Duration>,
    /// `x-max-length` (ready messages).
    pub max_length: Option<usize>,
    /// `x-max-length-bytes` (ready message bodies).
    pub max_length_bytes: Option<usize>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority`.
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`: one consumer at a time receives (the earliest
    /// registered); the next takes over when it goes.
    pub single_active_consumer: bool,
    /// `x-queue-type`.
    pub queue_type: QueueType,
}

/// One queue x-argument as the declaring protocol gave it: AMQP gives a typed
/// value, STOMP a header text that may also read as a number.
#[derive(Debug, Clone, Default)]
pub struct ArgValue {
    /// The value as an integer, if it is one.
    pub int: Option<i64>,
    /// The value as a string, if it is one.
    pub text: Option<String>,
    /// The value as a boolean, if it is one.
    pub flag: Option<bool>,
}

impl QueueArgs {
    /// RabbitMQ's queue x-arguments, checked as RabbitMQ checks them; `get` looks
    /// one up by name. `Err` names the invalid argument.
    pub fn parse(get: impl Fn(&str) -> Option<ArgValue>) -> Result<QueueArgs, &'static str> {
        let int = |arg: &'static str, min: i64| match get(arg) {
            None => Ok(None),
            Some(v) => match v.int {
                Some(n) if n >= min => Ok(Some(n)),
                _ => Err(arg),
            },
        };
        let text = |arg: &'static str| match get(arg) {
            None => Ok(None),
            Some(v) => v.text.map(Some).ok_or(arg),
        };
        let ms = |n: i64| Duration::from_millis(n.unsigned_abs());
        let overflow = match text("x-overflow")?.as_deref() {
            None | Some("drop-head") => Overflow::DropHead,
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            Some(_) => return Err("x-overflow"),
        };
        let max_priority = match int("x-max-priority", 0)? {
            None => None,
            Some(n) => Some(u8::try_from(n).map_err(|_| "x-max-priority")?),
        };
        let size = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
        const SAC: &str = "x-single-active-consumer";
        let single_active_consumer = match get(SAC) {
            None => false,
            Some(v) => match (v.flag, v.text.as_deref()) {
                (Some(b), _) => b,
                (None, Some("true")) => true,
                (None, Some("false")) => false,
                _ => return Err(SAC),
            },
        };
        let queue_type = match text("x-queue-type")?.as_deref() {
            None | Some("classic") => QueueType::Classic,
            Some("quorum") => QueueType::Quorum,
            Some("stream") => QueueType::Stream,
            Some(_) => return Err("x-queue-type"),
        };
        Ok(QueueArgs {
            message_ttl: int("x-message-ttl", 0)?.map(ms),
            expires: int("x-expires", 1)?.map(ms),
            max_length: int("x-max-length", 0)?.map(size),
            max_length_bytes: int("x-max-length-bytes", 0)?.map(size),
            overflow,
            dead_letter_exchange: text("x-dead-letter-exchange")?,
            dead_letter_routing_key: text("x-dead-letter-routing-key")?,
            max_priority,
            single_active_consumer,
            queue_type,
        })
    }
}

/// How a queue was declared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueSpec {
    /// Declared durable (kept in memory like the others).
    pub durable: bool,
    /// The connection owning an exclusive queue.
    pub exclusive_owner: Option<ConnId>,
    /// Deleted when its last consumer goes (if it ever had one).
    pub auto_delete: bool,
    /// The `x-` arguments.
    pub args: QueueArgs,
}

/// A message in a queue (ready, or delivered and not yet settled).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The shared message.
    pub message: Arc<Message>,
    /// The exchange it was published to.
    pub exchange: Arc<str>,
    /// The routing key it was published with.
    pub routing_key: Arc<str>,
    /// It was delivered before and requeued.
    pub redelivered: bool,
    pub(crate) seq: u64,
    /// Ms since the Unix epoch: the message's own expiry or the queue's TTL,
    /// whichever comes first.
    pub(crate) expires_at: Option<u64>,
    pub(crate) priority: u8,
}

impl Entry {
    /// Whether it is stored when its queue is durable (AMQP delivery mode 2,
    /// STOMP `persistent:true`, MQTT QoS 1/2).
    pub fn is_persistent(&self) -> bool {
        self.message.qos != Delivery::AtMostOnce
    }

    fn is_expired(&self, now: Now) -> bool {
        self.expires_at.is_some_and(|at| at <= now.unix_ms)
    }

    fn mem(&self) -> usize {
        self.message.weight() + ENTRY_OVERHEAD
    }

    fn body(&self) -> usize {
        self.message.payload.len()
    }
}

/// Prefetch credit shared between a queue (which takes one per unacked delivery)
/// and the front (which gives it back on ack/nack/reject). Limit 0 = unlimited.
#[derive(Debug)]
pub struct Credit {
    limit: AtomicU32,
    used: AtomicU32,
    /// No deliveries at all, acknowledged or not (AMQP channel.flow active=false).
    paused: AtomicBool,
}

impl Credit {
    /// Credit of `limit` (0 = unlimited), none in use.
    pub fn new(limit: u32) -> Credit {
        Credit {
            limit: AtomicU32::new(limit),
            used: AtomicU32::new(0),
            paused: AtomicBool::new(false),
        }
    }

    /// Stops (or resumes) every delivery that goes through this credit.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Whether deliveries are stopped.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Changes the limit (0 = unlimited); deliveries in use are kept.
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }

    /// The limit (0 = unlimited).
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }

    /// Unsettled deliveries holding credit.
    pub fn in_use(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// Gives back `n` (saturating at zero).
    pub fn release(&self, n: u32) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    /// Takes one if the limit allows; never overshoots under concurrency.
    pub(crate) fn try_take(&self) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let limit = self.limit();
            if limit != 0 && used >= limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used.saturating_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => used = actual,
            }
        }
    }
}

/// What queues hand to a connection.
#[derive(Debug)]
pub enum OutletItem {
    /// Deliver `entry` to `consumer`.
    Deliver {
        /// The consumer.
        consumer: ConsumerId,
        /// The queue it came from.
        queue: Arc<Queue>,
        /// The entry (settled by the front: ack, or requeue/reject via the router).
        entry: Entry,
    },
    /// The queue cancelled `consumer` (it was deleted).
    Cancelled {
        /// The consumer.
        consumer: ConsumerId,
        /// The deleted queue.
        queue: Arc<Queue>,
    },
}

/// The per-connection inbox queues hand deliveries to; bounded by `max_items`
/// for messages (cancel notices always fit). The front drains it and writes.
///
/// The bound is checked before a queue delivers: queues delivering concurrently
/// may overshoot it by one each.
pub struct Outlet {
    max_items: usize,
    items: Mutex<Vec<OutletItem>>,
    notify: Notify,
}

impl fmt::Debug for Outlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outlet")
            .field("max_items", &self.max_items)
            .field("len", &self.len())
            .finish()
    }
}

impl Outlet {
    /// An empty outlet holding at most `max_items` deliveries.
    pub fn new(max_items: usize) -> Outlet {
        Outlet {
            max_items,
            items: Mutex::new(Vec::new()),
            notify: Notify::new(),
        }
    }

    fn items(&self) -> MutexGuard<'_, Vec<OutletItem>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves everything queued into `out`, in order.
    pub fn drain(&self, out: &mut Vec<OutletItem>) {
        out.append(&mut self.items());
    }

    /// Moves at most `max` of the oldest items into `out`, in order.
    pub fn drain_up_to(&self, out: &mut Vec<OutletItem>, max: usize) {
        let mut items = self.items();
        let n = items.len().min(max);
        out.extend(items.drain(..n));
    }

    /// Takes back the deliveries queued for `consumer` (it was cancelled), in order.
    pub(crate) fn retract(&self, consumer: ConsumerId) -> Vec<(Arc<Queue>, Entry)> {
        let mut items = self.items();
        let mut back = Vec::new();
        items.retain_mut(|item| match item {
            OutletItem::Deliver {
                consumer: c,
                queue,
                entry,
            } if *c == consumer => {
                back.push((queue.clone(), entry.clone()));
                false
            }
            _ => true,
        });
        back
    }

    /// Resolves once something has been pushed since the previous `wait`
    /// resolved. Cancel-safe.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    /// Whether it holds as many deliveries as it may (queues then wait for room).
    pub fn is_full(&self) -> bool {
        !self.has_room()
    }

    fn has_room(&self) -> bool {
        self.items().len() < self.max_items
    }

    fn push(&self, item: OutletItem) {
        self.items().push(item);
        self.notify.notify_one();
    }
}

/// A consumer as a queue knows it.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Its id (from [`Router::next_consumer_id`](super::Router::next_consumer_id)).
    pub id: ConsumerId,
    /// Deliveries are settled on sending: no credit taken.
    pub no_ack: bool,
    /// The only consumer of the queue.
    pub exclusive: bool,
    /// Per-consumer prefetch.
    pub credit: Arc<Credit>,
    /// Per-channel prefetch.
    pub channel_credit: Arc<Credit>,
    /// Where its deliveries go.
    pub outlet: Arc<Outlet>,
    /// Consumer priority (RabbitMQ's `x-priority`): messages go to the highest
    /// priority consumers that have room, round robin among equals.
    pub priority: i32,
}

#[derive(Debug)]
struct State {
    /// Ready entries by priority (index = priority); one bucket without
    /// `x-max-priority`.
    buckets: Vec<VecDeque<Entry>>,
    count: usize,
    /// Body bytes of ready entries (`x-max-length-bytes`).
    bytes: usize,
    /// Memory of ready entries (weight + overhead).
    mem: usize,
    /// Entries handed out (to consumers or basic.get) and not yet settled.
    unacked: usize,
    consumers: Vec<ConsumerSpec>,
    cursor: usize,
    had_consumer: bool,
    last_used: Instant,
    next_seq: u64,
    deleted: bool,
}

/// A queue's counts, as management views show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages ready for delivery.
    pub ready: usize,
    /// Messages delivered and not yet settled.
    pub unacked: usize,
    /// Consumers.
    pub consumers: usize,
    /// Body bytes of the ready messages.
    pub ready_bytes: usize,
}

/// Entries a queue operation dropped that go to the dead-letter exchange.
pub(crate) type Dead = Vec<(Entry, DeathReason)>;

/// Where a durable queue's persistent messages are recorded.
#[derive(Debug)]
pub(crate) struct QueueStore {
    pub(crate) journal: Arc<Journal>,
    pub(crate) id: DestId,
}

/// One queue.
pub struct Queue {
    name: String,
    spec: QueueSpec,
    memory: Arc<Memory>,
    /// Set for a durable queue of a router with storage.
    store: Option<QueueStore>,
    state: Mutex<State>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Queue {
    pub(crate) fn new(
        name: String,
        spec: QueueSpec,
        memory: Arc<Memory>,
        store: Option<QueueStore>,
        now: Instant,
    ) -> Queue {
        let buckets = usize::from(spec.args.max_priority.unwrap_or(0)) + 1;
        Queue {
            name,
            spec,
            memory,
            store,
            state: Mutex::new(State {
                buckets: (0..buckets).map(|_| VecDeque::new()).collect(),
                count: 0,
                bytes: 0,
                mem: 0,
                unacked: 0,
                consumers: Vec::new(),
                cursor: 0,
                had_consumer: false,
                last_used: now,
                next_seq: 0,
                deleted: false,
            }),
        }
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it was declared.
    pub fn spec(&self) -> &QueueSpec {
        &self.spec
    }

    /// Its storage id, if it is stored.
    pub(crate) fn store(&self) -> Option<&QueueStore> {
        self.store.as_ref()
    }

    /// Appends `record` about `entry` if the entry is stored.
    fn record(&self, entry: &Entry, record: impl FnOnce(DestId) -> Record) -> Ticket {
        match &self.store {
            Some(store) if entry.is_persistent() => store.journal.append(record(store.id)),
            _ => Ticket::default(),
        }
    }

    /// Records that `entry` left the queue for good.
    fn record_removed(&self, st: &State, entry: &Entry) {
        if !st.deleted {
            self.record(entry, |queue| Record::Removed {
                queue,
                seq: entry.seq,
            });
        }
    }

    /// Records the first delivery of a stored entry.
    fn record_delivered(&self, entry: &Entry) {
        if !entry.redelivered {
            self.record(entry, |queue| Record::Delivered {
                queue,
                seq: entry.seq,
            });
        }
    }

    /// Ready messages (not delivered ones).
    pub fn message_count(&self) -> usize {
        self.state().count
    }

    /// Consumers.
    pub fn consumer_count(&self) -> usize {
        self.state().consumers.len()
    }

    /// What the queue holds now.
    pub fn stats(&self) -> QueueStats {
        let st = self.state();
        QueueStats {
            ready: st.count,
            unacked: st.unacked,
            consumers: st.consumers.len(),
            ready_bytes: st.bytes,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dead_letters(&self) -> bool {
        self.spec.args.dead_letter_exchange.is_some()
    }

    pub(crate) fn touch(&self, now: Instant) {
        self.state().last_used = now;
    }

    /// Whether the queue has been unused (no consumers, no get, no declare) for
    /// its `x-expires`.
    pub(crate) fn is_unused_expired(&self, now: Instant) -> bool {
        let Some(expires) = self.spec.args.expires else {
            return false;
        };
        let st = self.state();
        st.consumers.is_empty() && now >= st.last_used + expires
    }

    fn add(&self, st: &mut State, entry: Entry, front: bool) {
        st.count += 1;
        st.bytes += entry.body();
        st.mem += entry.mem();
        self.memory.charge(entry.mem());
        let bucket = &mut st.buckets[usize::from(entry.priority)];
        if front {
            bucket.push_front(entry);
        } else {
            bucket.push_back(entry);
        }
    }

    /// Takes the head of `bucket` out of the ready entries; it stays counted in
    /// the ledger until [`Queue::forget`] (settled or dropped).
    fn take_from(&self, st: &mut State, bucket: usize) -> Option<Entry> {
        let entry = st.buckets[bucket].pop_front()?;
        st.count -= 1;
        st.bytes -= entry.body();
        st.mem -= entry.mem();
        Some(entry)
    }

    /// Stops counting an entry taken out of the queue: it was settled or dropped.
    fn forget(&self, entry: &Entry) {
        self.memory.release(entry.mem());
    }

    fn head_bucket(st: &State) -> Option<usize> {
        st.buckets.iter().rposition(|b| !b.is_empty())
    }

    /// Removes `entry` and hands it to `dead` (dead-lettered, or counted as
    /// dropped when the queue has no dead-letter exchange).
    fn drop_entry(&self, st: &State, entry: Entry, reason: DeathReason, dead: &mut Dead) {
        self.record_removed(st, &entry);
        self.forget(&entry);
        dead.push((entry, reason));
    }

    /// Drops (dead-letters) the expired entries at the head of every bucket but
    /// the one numbered `spare`.
    fn expire_heads(&self, st: &mut State, now: Now, dead: &mut Dead, spare: Option<u64>) {
        for b in 0..st.buckets.len() {
            while st.buckets[b]
                .front()
                .is_some_and(|e| e.is_expired(now) && Some(e.seq) != spare)
            {
                if let Some(e) = self.take_from(st, b) {
                    self.drop_entry(st, e, DeathReason::Expired, dead);
                }
            }
        }
    }

    fn over_limits(&self, st: &State) -> bool {
        let args = &self.spec.args;
        args.max_length.is_some_and(|m| st.count > m)
            || args.max_length_bytes.is_some_and(|m| st.bytes > m)
    }

    /// Queues `message`; false if the queue refused it (reject-publish, or the
    /// queue was deleted). A persistent message entering a stored queue adds the
    /// commit that makes it durable to `ticket`.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        message: Arc<Message>,
        exchange: Arc<str>,
        routing_key: Arc<str>,
        now: Now,
        dead: &mut Dead,
        ticket: &mut Ticket,
    ) -> bool {
        let args = &self.spec.args;
        let ttl_expiry = args
            .message_ttl
            .map(|ttl| now.unix_ms.saturating_add(ttl.as_millis() as u64));
        let expires_at = match (message.expires_at, ttl_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let priority = match args.max_priority {
            Some(max) => message.priority.unwrap_or(0).min(max),
            None => 0,
        };
        let zero_ttl = args.message_ttl == Some(Duration::ZERO) && !message.is_expired(now.unix_ms);
        let mut st = self.state();
        if st.deleted {
            return false;
        }
        let entry = Entry {
            message,
            exchange,
            routing_key,
            redelivered: false,
            seq: st.next_seq,
            expires_at,
            priority,
        };
        // x-message-ttl 0: RabbitMQ still hands the message to a consumer that can
        // take it at once, and drops it otherwise. (A message whose own expiry has
        // passed is not delivered at all.)
        let due = (zero_ttl && entry.is_expired(now)).then_some(entry.seq);
        st.next_seq += 1;
        if args.overflow != Overflow::DropHead {
            let full = args.max_length.is_some_and(|m| st.count >= m)
                || args
                    .max_length_bytes
                    .is_some_and(|m| st.bytes + entry.body() > m);
            if full {
                // Refused, not dropped: the publisher is told (nack). Only
                // reject-publish-dlx also dead-letters it.
                if args.overflow == Overflow::RejectPublishDlx && self.dead_letters() {
                    dead.push((entry, DeathReason::MaxLen));
                }
                return false;
            }
        }
        ticket.merge(self.record(&entry, |queue| Record::Enqueued {
            queue,
            entry: entry.clone(),
        }));
        self.add(&mut st, entry, false);
        while self.over_limits(&st) {
            let Some(b) = Self::head_bucket(&st) else {
                break;
            };
            if let Some(e) = self.take_from(&mut st, b) {
                self.drop_entry(&st, e, DeathReason::MaxLen, dead);
            }
        }
        self.dispatch_locked(&mut st, now, dead, due);
        if due.is_some() {
            self.expire_heads(&mut st, now, dead, None);
        }
        true
    }

    /// Hands ready entries to consumers with room, round robin.
    pub(crate) fn dispatch(self: &Arc<Self>, now: Now, dead: &mut Dead) {
        let mut st = self.state();
        self.dispatch_locked(&mut st, now, dead, None);
    }

    /// Hands ready entries to consumers with room; an expired entry numbered
    /// `spare` may still go (it has just arrived expired).
    fn dispatch_locked(
        self: &Arc<Self>,
        st: &mut State,
        now: Now,
        dead: &mut Dead,
        spare: Option<u64>,
    ) {
        loop {
            self.expire_heads(st, now, dead, spare);
            if st.consumers.is_empty() {
                return;
            }
            let Some(b) = Self::head_bucket(st) else {
                return;
            };
            // A single-active-consumer queue offers to its earliest consumer only.
            let n = if self.spec.args.single_active_consumer {
                1
            } else {
                st.consumers.len()
            };
            let mut chosen = None;
            // Consumers are sorted by priority, highest first: try each level in
            // turn, round robin within it.
            let mut start = 0;
            while start < n && chosen.is_none() {
                let level = st.consumers[start].priority;
                let len = st.consumers[start..n]
                    .iter()
                    .take_while(|c| c.priority == level)
                    .count();
                for i in 0..len {
                    let idx = start + (st.cursor + i) % len;
                    let c = &st.consumers[idx];
                    if !c.outlet.has_room() || c.channel_credit.is_paused() {
                        continue;
                    }
                    if !c.no_ack {
                        if !c.credit.try_take() {
                            continue;
                        }
                        if !c.channel_credit.try_take() {
                            c.credit.release(1);
                            continue;
                        }
                    }
                    chosen = Some(idx);
                    break;
                }
                start += len;
            }
            let Some(idx) = chosen else {
                return;
            };
            let Some(entry) = self.take_from(st, b) else {
                return;
            };
            st.cursor = (idx + 1) % n;
            st.unacked += 1;
            self.record_delivered(&entry);
            let c = &st.consumers[idx];
            c.outlet.push(OutletItem::Deliver {
                consumer: c.id,
                queue: self.clone(),
                entry,
            });
        }
    }

    /// Takes the next ready entry (basic.get) and the ready count after it.
    pub(crate) fn get(&self, now: Now, dead: &mut Dead) -> Option<(Entry, usize)> {
        let mut st = self.state();
        st.last_used = now.at;
        self.expire_heads(&mut st, now, dead, None);
        let b = Self::head_bucket(&st)?;
        let entry = self.take_from(&mut st, b)?;
        st.unacked += 1;
        self.record_delivered(&entry);
        Some((entry, st.count))
    }

    /// Settles delivered entries for good (acked, or rejected and handed to
    /// dead-lettering).
    pub(crate) fn settle(&self, entries: &[Entry]) {
        let mut st = self.state();
        st.unacked = st.unacked.saturating_sub(entries.len());
        for entry in entries {
            self.record_removed(&st, entry);
            self.forget(entry);
        }
    }

    /// Puts `entries` back at the head, in their original order, redelivered.
    pub(crate) fn requeue(self: &Arc<Self>, mut entries: Vec<Entry>, now: Now, dead: &mut Dead) {
        let mut st = self.state();
        st.unacked = st.unacked.saturating_sub(entries.len());
        // Counted again by `add`.
        for e in &entries {
            self.forget(e);
        }
        if st.deleted {
            return;
        }
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.seq));
        for mut e in entries {
            e.redelivered = true;
            self.add(&mut st, e, true);
        }
        self.dispatch_locked(&mut st, now, dead, None);
    }

    /// Puts recovered entries back, in sequence order, without recording them
    /// again; new entries are numbered after them.
    pub(crate) fn restore(&self, mut entries: Vec<Entry>) {
        let mut st = self.state();
        entries.sort_unstable_by_key(|e| e.seq);
        if let Some(last) = entries.last() {
            st.next_seq = last.seq + 1;
        }
        for e in entries {
            self.add(&mut st, e, false);
        }
    }

    /// Drops every ready entry; returns how many.
    pub(crate) fn purge(&self) -> usize {
        let mut st = self.state();
        let n = st.count;
        for b in 0..st.buckets.len() {
            while let Some(e) = self.take_from(&mut st, b) {
                self.record_removed(&st, &e);
                self.forget(&e);
            }
        }
        n
    }

    /// Expires heads (housekeeping).
    pub(crate) fn expire(&self, now: Now, dead: &mut Dead) {
        let mut st = self.state();
        self.expire_heads(&mut st, now, dead, None);
    }

    /// Adds a consumer; `Err(true)` if the queue is deleted, `Err(false)` if an
    /// exclusive consumer rule refuses it.
    pub(crate) fn add_consumer(&self, consumer: ConsumerSpec, now: Instant) -> Result<(), bool> {
        let mut st = self.state();
        if st.deleted {
            return Err(true);
        }
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !st.consumers.is_empty())
        {
            return Err(false);
        }
        // Priority order, but registration order for a single active consumer.
        let at = st
            .consumers
            .iter()
            .position(|c| c.priority < consumer.priority)
            .filter(|_| !self.spec.args.single_active_consumer)
            .unwrap_or(st.consumers.len());
        st.consumers.insert(at, consumer);
        st.had_consumer = true;
        st.last_used = now;
        Ok(())
    }

    /// Removes a consumer; true if the queue should now be auto-deleted.
    pub(crate) fn remove_consumer(&self, id: ConsumerId, now: Instant) -> bool {
        let mut st = self.state();
        let before = st.consumers.len();
        st.consumers.retain(|c| c.id != id);
        if st.consumers.len() == before {
            return false;
        }
        st.last_used = now;
        if st.cursor >= st.consumers.len() {
            st.cursor = 0;
        }
        self.spec.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted
    }

    /// Marks the queue deleted, drops its ready entries and cancels its
    /// consumers; returns the ready count.
    pub(crate) fn delete(self: &Arc<Self>) -> usize {
        let consumers = {
            let mut st = self.state();
            st.deleted = true;
            std::mem::take(&mut st.consumers)
        };
        let n = self.purge();
        for c in consumers {
            c.outlet.push(OutletItem::Cancelled {
                consumer: c.id,
                queue: self.clone(),
            });
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_limits_and_releases() {
        let c = Credit::new(2);
        assert!(c.try_take());
        assert!(c.try_take());
        assert!(!c.try_take());
        assert_eq!(c.in_use(), 2);
        c.release(5);
        assert_eq!(c.in_use(), 0);
        c.set_limit(0);
        assert!((0..100).all(|_| c.try_take()));
        assert_eq!(c.limit(), 0);
    }
}
