//! A stream consumer's position and acknowledgement state: the positions API
//! every stream front reads through (JetStream consumers today; Kafka consumer
//! groups keep committed offsets through the same stream reads).
//!
//! Owns: where a consumer starts (deliver policy), what it delivers next
//! (redeliveries first, then new messages its filters accept, within
//! max_ack_pending), the pending deliveries with their deadlines (ack wait,
//! backoff, NAK delay, in-progress), delivery counts, max_deliver, and the ack
//! floor.
//! Refuses: where deliveries go (the front decides: a pull request's inbox, a
//! push consumer's subject), locking (the stream holds its state lock) and
//! records (the stream writes them from what this returns).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::journal::DestId;
use super::super::message::Message;
use super::super::subject::{Filter, Subject};
use super::config::{AckPolicy, ConsumerConfig, DeliverPolicy};
use super::log::{accepts, Log};

/// A consumer and a stream sequence number it has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Deliveries made (redeliveries count).
    pub consumer_seq: u64,
    /// The stream message.
    pub stream_seq: u64,
}

/// A delivery the consumer has made and not yet had settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDelivery {
    /// The consumer sequence of its first delivery.
    pub consumer_seq: u64,
    /// How many times it has been delivered.
    pub deliveries: u64,
}

/// One message handed out.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The stream sequence.
    pub stream_seq: u64,
    /// The consumer sequence of this delivery.
    pub consumer_seq: u64,
    /// How many times it has now been delivered (1: first time).
    pub deliveries: u64,
    /// When the stream stored it (ns since the Unix epoch).
    pub time_ns: u64,
    /// Messages still to deliver after this one.
    pub pending: u64,
    /// The message.
    pub message: Arc<Message>,
}

/// How a delivery was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// Done with it (with ack policy all: with every earlier one too).
    Ack,
    /// Redeliver it, now or after the delay.
    Nak(Option<Duration>),
    /// Still working on it: restart its ack wait.
    Progress,
    /// Never deliver it again.
    Term,
}

/// What the consumer's state looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerState {
    /// The last delivery.
    pub delivered: Position,
    /// Everything up to here is acknowledged.
    pub ack_floor: Position,
    /// Deliveries awaiting an answer.
    pub num_ack_pending: u64,
    /// Of which delivered more than once.
    pub num_redelivered: u64,
    /// Messages still to deliver.
    pub num_pending: u64,
}

/// One consumer of a stream.
#[derive(Debug)]
pub struct Consumer {
    pub(crate) id: DestId,
    pub(crate) config: Arc<ConsumerConfig>,
    filters: Vec<Filter>,
    pub(crate) created_ns: u64,
    delivered: Position,
    ack_floor: Position,
    /// The next stream sequence to look at for a first delivery.
    next_seq: u64,
    /// Last-per-subject starts with these, then reads on from `next_seq`.
    starting: VecDeque<u64>,
    pending: BTreeMap<u64, (PendingDelivery, Instant)>,
    /// Pending deliveries whose deadline passed (or that were NAKed): sent first.
    redeliver: BTreeSet<u64>,
    /// Messages after `next_seq` its filters accept.
    unread: u64,
}

impl Consumer {
    /// A new consumer of `log`, starting where its deliver policy says.
    pub(crate) fn new(
        id: DestId,
        config: Arc<ConsumerConfig>,
        filters: Vec<Filter>,
        log: &Log,
        created_ns: u64,
    ) -> Consumer {
        let wanted = |s: &Subject| accepts(&filters, s);
        let after_last = log.last_seq() + 1;
        let mut starting = VecDeque::new();
        let next_seq = match config.deliver_policy {
            DeliverPolicy::All => log.first_seq(),
            DeliverPolicy::Last => log.last_where(wanted).map_or(after_last, |m| m.seq),
            DeliverPolicy::New => after_last,
            DeliverPolicy::ByStartSequence(seq) => seq.max(1),
            DeliverPolicy::ByStartTime(ns) => log.first_at_or_after(ns).unwrap_or(after_last),
            DeliverPolicy::LastPerSubject => {
                starting = log.last_per_subject(&filters).into();
                after_last
            }
        };
        let start = starting.front().copied().unwrap_or(next_seq);
        let position = Position {
            consumer_seq: 0,
            stream_seq: start.saturating_sub(1),
        };
        let unread = log.count_from(next_seq, |s| accepts(&filters, s));
        Consumer {
            id,
            config,
            filters,
            created_ns,
            delivered: position,
            ack_floor: position,
            next_seq,
            starting,
            pending: BTreeMap::new(),
            redeliver: BTreeSet::new(),
            unread,
        }
    }

    /// A consumer as stored: it goes on after its last delivery, and what was
    /// pending is redelivered after its ack wait.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn restore(
        id: DestId,
        config: Arc<ConsumerConfig>,
        filters: Vec<Filter>,
        log: &Log,
        created_ns: u64,
        delivered: Position,
        ack_floor: Position,
        pending: Vec<(u64, PendingDelivery)>,
        now: Instant,
    ) -> Consumer {
        let next_seq = delivered.stream_seq.saturating_add(1);
        let unread = log.count_from(next_seq, |s| accepts(&filters, s));
        let mut c = Consumer {
            id,
            config,
            filters,
            created_ns,
            delivered,
            ack_floor,
            next_seq,
            starting: VecDeque::new(),
            pending: BTreeMap::new(),
            redeliver: BTreeSet::new(),
            unread,
        };
        for (seq, p) in pending {
            let due = now + c.wait_after(p.deliveries);
            c.pending.insert(seq, (p, due));
        }
        c
    }

    /// Its filters.
    pub(crate) fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// Whether it reads messages on `subject`.
    pub(crate) fn reads(&self, subject: &Subject) -> bool {
        accepts(&self.filters, subject)
    }

    fn wait_after(&self, deliveries: u64) -> Duration {
        let backoff = &self.config.backoff;
        if backoff.is_empty() {
            return self.config.ack_wait;
        }
        let i = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(usize::MAX);
        backoff[i.min(backoff.len() - 1)]
    }

    fn acks(&self) -> bool {
        self.config.ack_policy != AckPolicy::None
    }

    /// The counts it reports.
    pub(crate) fn state(&self) -> ConsumerState {
        ConsumerState {
            delivered: self.delivered,
            ack_floor: self.ack_floor,
            num_ack_pending: self.pending.len() as u64,
            num_redelivered: self
                .pending
                .values()
                .filter(|(p, _)| p.deliveries > 1)
                .count() as u64,
            num_pending: self.unread + self.starting.len() as u64,
        }
    }

    /// A new message was appended.
    pub(crate) fn on_append(&mut self, seq: u64, subject: &Subject) {
        if seq >= self.next_seq && self.reads(subject) {
            self.unread += 1;
        }
    }

    /// A message left the stream.
    pub(crate) fn on_remove(&mut self, seq: u64, subject: &Subject) {
        if seq >= self.next_seq && self.reads(subject) {
            self.unread = self.unread.saturating_sub(1);
        }
        self.starting.retain(|s| *s != seq);
    }

    /// The stream was purged below `seq` (or entirely): counts are taken again.
    pub(crate) fn on_purge(&mut self, log: &Log) {
        self.starting.retain(|s| log.get(*s).is_some());
        if self.next_seq < log.first_seq() {
            self.next_seq = log.first_seq();
        }
        self.unread = log.count_from(self.next_seq, |s| accepts(&self.filters, s));
    }

    /// Whether `next` would give something now.
    pub(crate) fn has_work(&self) -> bool {
        !self.redeliver.is_empty()
            || (self.has_room() && (self.unread > 0 || !self.starting.is_empty()))
    }

    fn has_room(&self) -> bool {
        !self.acks()
            || self
                .config
                .max_ack_pending
                .is_none_or(|max| (self.pending.len() as u64) < max)
    }

    /// The next delivery: a redelivery if one is due, else the next message its
    /// filters accept, if max_ack_pending allows. Messages past max_deliver are
    /// given up (no longer pending).
    pub(crate) fn next(&mut self, log: &Log, now: Instant) -> Option<Delivered> {
        while let Some(seq) = self.redeliver.pop_first() {
            let Some(m) = log.get(seq) else {
                self.settle(seq);
                continue;
            };
            let Some((p, _)) = self.pending.get(&seq).copied() else {
                continue;
            };
            if self
                .config
                .max_deliver
                .is_some_and(|max| p.deliveries >= max)
            {
                self.settle(seq);
                continue;
            }
            let deliveries = p.deliveries + 1;
            let due = now + self.wait_after(deliveries);
            self.pending.insert(
                seq,
                (
                    PendingDelivery {
                        consumer_seq: p.consumer_seq,
                        deliveries,
                    },
                    due,
                ),
            );
            self.delivered.consumer_seq += 1;
            return Some(Delivered {
                stream_seq: seq,
                consumer_seq: self.delivered.consumer_seq,
                deliveries,
                time_ns: m.time_ns,
                pending: self.unread + self.starting.len() as u64,
                message: m.message.clone(),
            });
        }
        if !self.has_room() {
            return None;
        }
        let m = match self.starting.pop_front() {
            Some(seq) => log.get(seq)?,
            None => {
                let m = log.next_from(self.next_seq, |s| accepts(&self.filters, s))?;
                self.next_seq = m.seq + 1;
                self.unread = self.unread.saturating_sub(1);
                m
            }
        };
        self.delivered.consumer_seq += 1;
        self.delivered.stream_seq = m.seq;
        if self.acks() {
            let due = now + self.wait_after(1);
            let p = PendingDelivery {
                consumer_seq: self.delivered.consumer_seq,
                deliveries: 1,
            };
            self.pending.insert(m.seq, (p, due));
        } else {
            self.ack_floor = self.delivered;
        }
        Some(Delivered {
            stream_seq: m.seq,
            consumer_seq: self.delivered.consumer_seq,
            deliveries: 1,
            time_ns: m.time_ns,
            pending: self.unread + self.starting.len() as u64,
            message: m.message.clone(),
        })
    }

    /// The pending delivery of stream message `seq`.
    pub(crate) fn pending(&self, seq: u64) -> Option<PendingDelivery> {
        self.pending.get(&seq).map(|(p, _)| *p)
    }

    /// Applies an answer to the delivery of stream message `seq`; returns the
    /// stream sequences it settled (acknowledged or terminated).
    pub(crate) fn answer(&mut self, seq: u64, kind: AckKind, now: Instant) -> Vec<u64> {
        if !self.pending.contains_key(&seq) {
            return Vec::new();
        }
        match kind {
            AckKind::Ack if self.config.ack_policy == AckPolicy::All => {
                let settled: Vec<u64> = self.pending.range(..=seq).map(|(s, _)| *s).collect();
                for s in &settled {
                    self.settle(*s);
                }
                settled
            }
            AckKind::Ack | AckKind::Term => {
                self.settle(seq);
                vec![seq]
            }
            AckKind::Nak(delay) => {
                match delay.filter(|d| !d.is_zero()) {
                    Some(d) => {
                        if let Some((_, due)) = self.pending.get_mut(&seq) {
                            *due = now + d;
                        }
                        self.redeliver.remove(&seq);
                    }
                    None => {
                        self.redeliver.insert(seq);
                    }
                }
                Vec::new()
            }
            AckKind::Progress => {
                let wait = self
                    .pending
                    .get(&seq)
                    .map(|(p, _)| self.wait_after(p.deliveries));
                if let (Some(wait), Some((_, due))) = (wait, self.pending.get_mut(&seq)) {
                    *due = now + wait;
                }
                self.redeliver.remove(&seq);
                Vec::new()
            }
        }
    }

    /// Moves the consumer to just after `stream_seq`: everything up to it is
    /// delivered and acknowledged, everything after it is read (again) next.
    pub(crate) fn seek(&mut self, stream_seq: u64, log: &Log) {
        let position = Position {
            consumer_seq: self.delivered.consumer_seq,
            stream_seq,
        };
        self.delivered = position;
        self.ack_floor = position;
        self.pending.clear();
        self.redeliver.clear();
        self.starting.clear();
        self.next_seq = stream_seq.saturating_add(1);
        self.unread = log.count_from(self.next_seq, |s| accepts(&self.filters, s));
    }

    fn settle(&mut self, seq: u64) {
        self.pending.remove(&seq);
        self.redeliver.remove(&seq);
        match self.pending.iter().next() {
            None => self.ack_floor = self.delivered,
            Some((first, (p, _))) => {
                self.ack_floor = Position {
                    consumer_seq: p.consumer_seq.saturating_sub(1),
                    stream_seq: first - 1,
                };
            }
        }
    }

    /// Moves deliveries whose deadline has passed to the redelivery queue;
    /// returns the next deadline.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (seq, (_, due)) in &self.pending {
            if self.redeliver.contains(seq) {
                continue;
            }
            if *due <= now {
                self.redeliver.insert(*seq);
            } else {
                next = Some(next.map_or(*due, |n| n.min(*due)));
            }
        }
        next
    }

    /// Whether this consumer is done with stream message `seq` on `subject`
    /// (it does not read it, or has delivered and settled it).
    pub(crate) fn is_done_with(&self, seq: u64, subject: &Subject) -> bool {
        !self.reads(subject)
            || (seq < self.next_seq
                && !self.pending.contains_key(&seq)
                && !self.starting.contains(&seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(subjects: &[&str]) -> Log {
        let mut log = Log::default();
        for s in subjects {
            let m = Message {
                subject: Subject::new(s).unwrap(),
                ..Message::default()
            };
            log.append(Arc::new(m), 1);
        }
        log
    }

    fn consumer(log: &Log, config: ConsumerConfig, filters: &[&str]) -> Consumer {
        let filters = filters.iter().map(|f| Filter::nats(f).unwrap()).collect();
        Consumer::new(1, Arc::new(config), filters, log, 0)
    }

    fn explicit() -> ConsumerConfig {
        ConsumerConfig {
            ack_wait: Duration::from_secs(30),
            ..ConsumerConfig::default()
        }
    }

    #[test]
    fn delivers_in_order_and_acks_move_the_floor() {
        let log = log_of(&["a", "b", "a"]);
        let now = Instant::now();
        let mut c = consumer(&log, explicit(), &[]);
        assert_eq!(c.state().num_pending, 3);
        let d: Vec<u64> = std::iter::from_fn(|| c.next(&log, now).map(|d| d.stream_seq)).collect();
        assert_eq!(d, [1, 2, 3]);
        assert_eq!(c.answer(2, AckKind::Ack, now), [2]);
        assert_eq!(c.state().ack_floor.stream_seq, 0);
        c.answer(1, AckKind::Ack, now);
        assert_eq!(c.state().ack_floor.stream_seq, 2);
        c.answer(3, AckKind::Ack, now);
        assert_eq!(c.state().ack_floor, c.state().delivered);
        assert_eq!(c.state().num_ack_pending, 0);
    }

    #[test]
    fn nak_and_expiry_redeliver_with_counts_and_max_deliver_gives_up() {
        let log = log_of(&["a"]);
        let now = Instant::now();
        let mut c = consumer(
            &log,
            ConsumerConfig {
                max_deliver: Some(2),
                ..explicit()
            },
            &[],
        );
        assert_eq!(c.next(&log, now).unwrap().deliveries, 1);
        c.answer(1, AckKind::Nak(None), now);
        let d = c.next(&log, now).unwrap();
        assert_eq!((d.stream_seq, d.deliveries, d.consumer_seq), (1, 2, 2));
        assert!(c.next(&log, now).is_none());
        c.expire(now + Duration::from_secs(31));
        assert!(c.next(&log, now).is_none(), "max_deliver reached");
        assert_eq!(c.state().num_ack_pending, 0);
    }

    #[test]
    fn filters_policies_and_max_ack_pending() {
        let log = log_of(&["a", "b", "a", "b"]);
        let now = Instant::now();
        let last = ConsumerConfig {
            deliver_policy: DeliverPolicy::Last,
            ..explicit()
        };
        let mut c = consumer(&log, last, &["a"]);
        assert_eq!(c.next(&log, now).unwrap().stream_seq, 3);
        let per_subject = ConsumerConfig {
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..explicit()
        };
        let mut c = consumer(&log, per_subject, &[]);
        let d: Vec<u64> = std::iter::from_fn(|| c.next(&log, now).map(|d| d.stream_seq)).collect();
        assert_eq!(d, [3, 4]);
        let one = ConsumerConfig {
            max_ack_pending: Some(1),
            ..explicit()
        };
        let mut c = consumer(&log, one, &["b"]);
        assert_eq!(c.next(&log, now).unwrap().stream_seq, 2);
        assert!(c.next(&log, now).is_none());
        c.answer(2, AckKind::Term, now);
        assert_eq!(c.next(&log, now).unwrap().stream_seq, 4);
    }
}
