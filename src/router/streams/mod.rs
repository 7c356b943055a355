//! Streams: append-only logs with sequence numbers that capture publishes from
//! every protocol, and the consumers that read them by position.
//!
//! Owns: the stream registry (names, non-overlapping subject filters, which are
//! in the router's trie so that [`Router::publish`] appends whatever matches),
//! appending with its conditions (expected stream / last sequence / last
//! subject sequence / last message id, deduplication by message id within the
//! window), limits and retention (max messages, bytes, age, per subject,
//! message size, discard old/new; interest and work-queue removal on ack),
//! purge, message get and delete, consumers ([`consumer`]) and the records
//! that make a `file` stream durable.
//! Refuses: wire formats (the JetStream front speaks JSON; these are router
//! values), where deliveries go, and timers (the caller passes `now`, and asks
//! for expiries).
//!
//! Locking: each stream's state is one mutex (its log and its consumers),
//! taken after the index lock is released and never with another stream's;
//! the registry's lock is taken before a stream's, never while holding one.

pub mod config;
pub mod consumer;
pub mod log;
pub mod partition;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use tokio::sync::watch;

use self::config::{ConsumerConfig, Discard, Retention, StorageKind, StreamConfig};
use self::consumer::{AckKind, Consumer, ConsumerState, Delivered, PendingDelivery, Position};
use self::log::{Log, StreamMessage};
use self::partition::{Chooser, Partition};
use super::journal::{DestId, Journal, Record, Ticket};
use super::message::{Message, Now};
use super::subject::{Filter, FilterToken, Subject};
use super::{Router, Target, TargetKey};

/// Headers a publisher sets to make an append conditional (nats-server's names;
/// any protocol's headers are read).
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
/// See [`EXPECTED_STREAM`].
pub const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
/// See [`EXPECTED_STREAM`].
pub const EXPECTED_LAST_SUBJECT_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
/// See [`EXPECTED_STREAM`].
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";

/// Why a stream refused an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// The stream is sealed.
    Sealed,
    /// `Nats-Expected-Stream` named another stream.
    WrongStream,
    /// `Nats-Expected-Last-Sequence` did not match; the actual one.
    WrongLastSequence(u64),
    /// `Nats-Expected-Last-Subject-Sequence` did not match; the actual one.
    WrongLastSubjectSequence(u64),
    /// `Nats-Expected-Last-Msg-Id` did not match; the actual one (empty: none).
    WrongLastMsgId(String),
    /// Larger than max_msg_size.
    TooLarge,
    /// Discard new, and max_msgs is reached.
    MaxMessages,
    /// Discard new, and max_bytes would be passed.
    MaxBytes,
    /// All streams together hold the most bytes the broker allows.
    Full,
}

/// A stream's answer to one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stream.
    pub stream: Arc<str>,
    /// Its sequence number, or why it was refused.
    pub outcome: Result<Sequenced, AppendError>,
}

/// An accepted append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequenced {
    /// The sequence number.
    pub seq: u64,
    /// It was a duplicate by message id: `seq` is the original's.
    pub duplicate: bool,
}

/// Why a stream or consumer operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// No stream of that name.
    #[error("stream not found")]
    NotFound,
    /// A stream of that name exists with another configuration.
    #[error("stream name already in use with a different configuration")]
    NameInUse,
    /// Its subjects overlap another stream's.
    #[error("subjects overlap with an existing stream")]
    SubjectsOverlap,
    /// A subject filter is not valid.
    #[error("invalid subject filter: {0}")]
    BadSubject(String),
    /// The change is not allowed on an existing stream.
    #[error("{0}")]
    CannotChange(&'static str),
    /// The stream does not allow it.
    #[error("{0}")]
    Denied(&'static str),
    /// No consumer of that name.
    #[error("consumer not found")]
    ConsumerNotFound,
    /// A consumer of that name exists with another configuration.
    #[error("consumer already exists")]
    ConsumerExists,
    /// The stream has max_consumers consumers.
    #[error("maximum consumers limit reached")]
    MaxConsumers,
    /// Work-queue streams give each message to one consumer.
    #[error("{0}")]
    WorkQueue(&'static str),
    /// No message there.
    #[error("no message found")]
    NoMessage,
}

/// What a stream reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// Messages held.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The first sequence number (last + 1 when empty).
    pub first_seq: u64,
    /// When the first message was stored (ns; 0: none).
    pub first_ns: u64,
    /// The last sequence number given out.
    pub last_seq: u64,
    /// When it was stored (ns; 0: none).
    pub last_ns: u64,
    /// Consumers.
    pub consumers: usize,
    /// Subjects with messages.
    pub subjects: usize,
    /// Sequence numbers deleted from the middle.
    pub deleted: u64,
}

/// What a consumer reports about itself.
#[derive(Debug, Clone)]
pub struct ConsumerInfo {
    /// Its stream.
    pub stream: String,
    /// Its declaration.
    pub config: Arc<ConsumerConfig>,
    /// When it was created (ns since the Unix epoch).
    pub created_ns: u64,
    /// Its counts.
    pub state: ConsumerState,
}

/// One stream.
pub struct Stream {
    id: DestId,
    name: Arc<str>,
    created_ns: u64,
    /// Fixed at creation: a stream cannot change partitions.
    partition: Option<Partition>,
    /// Set when the stream is stored (`file`, on a broker with storage).
    journal: Option<Arc<Journal>>,
    budget: Arc<Budget>,
    state: Mutex<State>,
}

/// The bytes all streams hold together (in memory, whatever their storage), and
/// the most they may.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicU64,
    max: AtomicU64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            used: AtomicU64::new(0),
            max: AtomicU64::new(u64::MAX),
        }
    }
}

impl Budget {
    fn change(&self, before: u64, after: u64) {
        if after > before {
            self.used.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            let less = before - after;
            let _ = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(less))
                });
        }
    }

    fn has_room(&self, more: u64) -> bool {
        let used = self.used.load(Ordering::Relaxed);
        used.saturating_add(more) <= self.max.load(Ordering::Relaxed)
    }
}

/// A stream's locked state. Released, it counts what its log grew or shrank by
/// in the budget, so that no mutation can forget to.
struct Locked<'a> {
    state: MutexGuard<'a, State>,
    budget: &'a Budget,
    bytes: u64,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.budget.change(self.bytes, self.state.log.bytes());
    }
}

struct State {
    config: Arc<StreamConfig>,
    log: Log,
    consumers: BTreeMap<String, Consumer>,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn ns(now: Now) -> u64 {
    now.unix_ms.saturating_mul(1_000_000)
}

/// The filters of `subjects` (canonical NATS syntax).
pub fn parse_filters(subjects: &[String]) -> Result<Vec<Filter>, StreamError> {
    subjects
        .iter()
        .map(|s| Filter::nats(s).map_err(|_| StreamError::BadSubject(s.clone())))
        .collect()
}

/// Whether some subject matches both NATS filters.
pub fn filters_overlap(a: &Filter, b: &Filter) -> bool {
    fn go(a: &[FilterToken], b: &[FilterToken]) -> bool {
        match (a.first(), b.first()) {
            (None, None) => true,
            (Some(FilterToken::Rest), Some(_)) | (Some(_), Some(FilterToken::Rest)) => true,
            (None, _) | (_, None) => false,
            (Some(FilterToken::Literal(x)), Some(FilterToken::Literal(y))) if x != y => false,
            _ => go(&a[1..], &b[1..]),
        }
    }
    go(a.tokens(), b.tokens())
}

impl Stream {
    fn lock(&self) -> Locked<'_> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = state.log.bytes();
        Locked {
            state,
            budget: &self.budget,
            bytes,
        }
    }

    /// Its name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// When it was created (ns since the Unix epoch).
    pub fn created_ns(&self) -> u64 {
        self.created_ns
    }

    /// Which partition of a topic it is.
    pub fn partition(&self) -> Option<Partition> {
        self.partition
    }

    /// Its declaration.
    pub fn config(&self) -> Arc<StreamConfig> {
        self.lock().config.clone()
    }

    fn record(&self, make: impl FnOnce() -> Record) -> Ticket {
        match &self.journal {
            Some(j) => j.append(make()),
            None => Ticket::default(),
        }
    }

    /// Its counts.
    pub fn stats(&self) -> StreamStats {
        let s = self.lock();
        StreamStats {
            messages: s.log.len(),
            bytes: s.log.bytes(),
            first_seq: s.log.first_seq(),
            first_ns: s.log.first().map_or(0, |m| m.time_ns),
            last_seq: s.log.last_seq(),
            last_ns: s.log.last_time_ns(),
            consumers: s.consumers.len(),
            subjects: s.log.num_subjects(),
            deleted: s.log.num_deleted(),
        }
    }

    /// Per subject `filter` accepts, how many messages it has.
    pub fn subject_counts(&self, filter: &Filter) -> BTreeMap<String, u64> {
        self.lock().log.subject_counts(filter)
    }

    /// Appends `msg` if its conditions hold and the limits allow; the ticket
    /// covers its record.
    fn append(&self, msg: &Arc<Message>, now: Now, ticket: &mut Ticket) -> Appended {
        let outcome = self.try_append(msg, now, ticket);
        Appended {
            stream: self.name.clone(),
            outcome,
        }
    }

    fn try_append(
        &self,
        msg: &Arc<Message>,
        now: Now,
        ticket: &mut Ticket,
    ) -> Result<Sequenced, AppendError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let config = s.config.clone();
        if config.sealed {
            return Err(AppendError::Sealed);
        }
        check_expectations(&self.name, &s.log, msg)?;
        let time_ns = ns(now);
        if let Some(id) = &msg.message_id {
            let window = u64::try_from(config.duplicate_window.as_nanos()).unwrap_or(u64::MAX);
            if let Some(seq) = s.log.duplicate_of(id, time_ns.saturating_sub(window)) {
                return Ok(Sequenced {
                    seq,
                    duplicate: true,
                });
            }
        }
        let candidate = StreamMessage {
            seq: 0,
            time_ns,
            message: msg.clone(),
        };
        let size = candidate.size();
        if config
            .max_msg_size
            .is_some_and(|max| msg.payload.len() as u64 > max)
        {
            return Err(AppendError::TooLarge);
        }
        if !self.budget.has_room(size) {
            return Err(AppendError::Full);
        }
        if config.discard == Discard::New {
            if config.max_msgs.is_some_and(|max| s.log.len() >= max) {
                return Err(AppendError::MaxMessages);
            }
            if config
                .max_bytes
                .is_some_and(|max| s.log.bytes() + size > max)
            {
                return Err(AppendError::MaxBytes);
            }
        }
        let stored = s.log.append(msg.clone(), time_ns).clone();
        let seq = stored.seq;
        if let Some(id) = &msg.message_id {
            s.log.remember_id(id.clone(), seq, time_ns);
        }
        for c in s.consumers.values_mut() {
            c.on_append(seq, &msg.subject);
        }
        ticket.merge(self.record(|| Record::StreamAppended {
            stream: self.id,
            message: stored,
        }));
        self.enforce_limits(s, Some(&msg.subject), now);
        if config.retention == Retention::Interest
            && !s.consumers.values().any(|c| c.reads(&msg.subject))
        {
            self.remove(s, seq);
        }
        Ok(Sequenced {
            seq,
            duplicate: false,
        })
    }

    /// Drops what the limits no longer allow (the oldest first).
    fn enforce_limits(&self, s: &mut State, subject: Option<&Subject>, now: Now) {
        let config = s.config.clone();
        if let (Some(max), Some(subject)) = (config.max_msgs_per_subject, subject) {
            loop {
                let over = s
                    .log
                    .subject_seqs(subject)
                    .filter(|seqs| seqs.len() as u64 > max)
                    .and_then(|seqs| seqs.first().copied());
                let Some(seq) = over else { break };
                self.remove(s, seq);
            }
        }
        let aged = |m: &StreamMessage| {
            config.max_age.is_some_and(|age| {
                let age = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
                m.time_ns.saturating_add(age) <= ns(now)
            })
        };
        while let Some(first) = s.log.first() {
            let over_msgs = config.max_msgs.is_some_and(|max| s.log.len() > max);
            let over_bytes = config.max_bytes.is_some_and(|max| s.log.bytes() > max);
            if !(over_msgs || over_bytes || aged(first)) {
                break;
            }
            let seq = first.seq;
            self.remove(s, seq);
        }
    }

    fn remove(&self, s: &mut State, seq: u64) -> bool {
        let Some(m) = s.log.remove(seq) else {
            return false;
        };
        for c in s.consumers.values_mut() {
            c.on_remove(seq, &m.message.subject);
        }
        self.record(|| Record::StreamRemoved {
            stream: self.id,
            seq,
        });
        true
    }

    /// Drops messages older than max_age; returns when the next one will be.
    pub fn expire_messages(&self, now: Now) -> Option<u64> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let age = s.config.max_age?;
        self.enforce_limits(s, None, now);
        let age = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
        s.log
            .first()
            .map(|m| m.time_ns.saturating_add(age) / 1_000_000)
    }

    /// Removes the messages `filter` accepts (all if none): those numbered below
    /// `below`, or all but the newest `keep`; returns how many.
    pub fn purge(
        &self,
        filter: Option<&Filter>,
        below: Option<u64>,
        keep: Option<u64>,
    ) -> Result<u64, StreamError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.config.sealed || s.config.deny_purge {
            return Err(StreamError::Denied("stream purge not permitted"));
        }
        let wanted = |subject: &Subject| filter.is_none_or(|f| f.matches(subject));
        let limit = below.unwrap_or(s.log.last_seq() + 1);
        let mut seqs = s.log.seqs_where(limit, wanted);
        if let Some(keep) = keep {
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            seqs.truncate(seqs.len().saturating_sub(keep));
        }
        let purged = seqs.len() as u64;
        match (filter, seqs.last()) {
            (None, Some(&last)) => {
                // A prefix of the log: one record, a range delete in storage.
                for seq in seqs {
                    s.log.remove(seq);
                }
                self.record(|| Record::StreamPurged {
                    stream: self.id,
                    below: last + 1,
                });
            }
            _ => {
                for seq in seqs {
                    s.log.remove(seq);
                    self.record(|| Record::StreamRemoved {
                        stream: self.id,
                        seq,
                    });
                }
            }
        }
        let State { log, consumers, .. } = s;
        for c in consumers.values_mut() {
            c.on_purge(log);
        }
        Ok(purged)
    }

    /// The message numbered `seq`.
    pub fn get(&self, seq: u64) -> Option<StreamMessage> {
        self.lock().log.get(seq).cloned()
    }

    /// The first message at or after `seq` on a subject `filter` accepts.
    pub fn next_matching(&self, seq: u64, filter: &Filter) -> Option<StreamMessage> {
        self.lock()
            .log
            .next_from(seq, |s| filter.matches(s))
            .cloned()
    }

    /// Appends `msg` to this stream itself, not through a subject: a front's own
    /// log (the schema registry's). The ticket covers the record.
    pub fn append_direct(
        &self,
        msg: Message,
        now: Now,
    ) -> (Result<Sequenced, AppendError>, Ticket) {
        let mut ticket = Ticket::default();
        let outcome = self.try_append(&Arc::new(msg), now, &mut ticket);
        (outcome, ticket)
    }

    /// The first message stored at or after `time_ns` (ns since the Unix epoch).
    pub fn first_at_or_after(&self, time_ns: u64) -> Option<u64> {
        self.lock().log.first_at_or_after(time_ns)
    }

    /// Up to `max` messages from sequence `from` on, and at least one, if there is
    /// one, however large: a reader by position (a Kafka fetch) always progresses.
    pub fn read(&self, from: u64, max: usize, max_bytes: u64) -> Vec<StreamMessage> {
        let s = self.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        for m in s.log.range_from(from) {
            bytes += m.size();
            if out.len() >= max || (bytes > max_bytes && !out.is_empty()) {
                break;
            }
            out.push(m.clone());
        }
        out
    }

    /// Sets consumer `name`'s position: every message up to `stream_seq` is
    /// delivered and acknowledged (a Kafka offset commit). Pending deliveries
    /// below it are settled; the ones after it are delivered again.
    pub fn set_position(&self, name: &str, stream_seq: u64) -> Result<(), StreamError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let c = s
            .consumers
            .get_mut(name)
            .ok_or(StreamError::ConsumerNotFound)?;
        c.seek(stream_seq, &s.log);
        self.record_position(c);
        Ok(())
    }

    /// The last message on a subject `filter` accepts.
    pub fn last_matching(&self, filter: &Filter) -> Option<StreamMessage> {
        self.lock().log.last_where(|s| filter.matches(s)).cloned()
    }

    /// Deletes the message numbered `seq`.
    pub fn delete_message(&self, seq: u64) -> Result<(), StreamError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.config.sealed || s.config.deny_delete {
            return Err(StreamError::Denied("message delete not permitted"));
        }
        if self.remove(s, seq) {
            Ok(())
        } else {
            Err(StreamError::NoMessage)
        }
    }

    /// Adds a consumer, or returns the one of that name if its declaration is
    /// the same.
    pub fn add_consumer(
        &self,
        mut config: ConsumerConfig,
        now: Now,
        update: bool,
    ) -> Result<ConsumerInfo, StreamError> {
        let filters = parse_filters(&config.filter_subjects)?;
        let mut guard = self.lock();
        let s = &mut *guard;
        if let Some(existing) = s.consumers.get_mut(&config.name) {
            if *existing.config == config {
                return Ok(self.info_of(existing));
            }
            if !update {
                return Err(StreamError::ConsumerExists);
            }
            config.durable = existing.config.durable;
            let config = Arc::new(config);
            existing.config = config.clone();
            let id = existing.id;
            let created_ns = existing.created_ns;
            self.record(|| Record::ConsumerCreated {
                id,
                stream: self.id,
                config,
                created_ns,
            });
            return Ok(self.info_of(existing));
        }
        if s.config
            .max_consumers
            .is_some_and(|max| s.consumers.len() as u64 >= max)
        {
            return Err(StreamError::MaxConsumers);
        }
        if s.config.retention == Retention::WorkQueue {
            for other in s.consumers.values() {
                let clash = match (filters.is_empty(), other.filters().is_empty()) {
                    (true, _) | (_, true) => true,
                    _ => filters
                        .iter()
                        .any(|f| other.filters().iter().any(|g| filters_overlap(f, g))),
                };
                if clash {
                    return Err(StreamError::WorkQueue(if filters.is_empty() {
                        "multiple non-filtered consumers not allowed on workqueue stream"
                    } else {
                        "filtered consumer not unique on workqueue stream"
                    }));
                }
            }
        }
        let id = self.journal.as_ref().map_or(0, |j| j.next_dest_id());
        let config = Arc::new(config);
        let created_ns = ns(now);
        let consumer = Consumer::new(id, config.clone(), filters, &s.log, created_ns);
        self.record(|| Record::ConsumerCreated {
            id,
            stream: self.id,
            config: config.clone(),
            created_ns,
        });
        let info = self.info_of(&consumer);
        s.consumers.insert(config.name.clone(), consumer);
        Ok(info)
    }

    fn info_of(&self, c: &Consumer) -> ConsumerInfo {
        ConsumerInfo {
            stream: self.name.to_string(),
            config: c.config.clone(),
            created_ns: c.created_ns,
            state: c.state(),
        }
    }

    /// The consumer `name`.
    pub fn consumer_info(&self, name: &str) -> Option<ConsumerInfo> {
        let s = self.lock();
        s.consumers.get(name).map(|c| self.info_of(c))
    }

    /// Whether it has a consumer of that name.
    pub fn has_consumer(&self, name: &str) -> bool {
        self.lock().consumers.contains_key(name)
    }

    /// Every consumer, by name.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        let s = self.lock();
        s.consumers.values().map(|c| self.info_of(c)).collect()
    }

    /// Deletes the consumer `name`.
    pub fn delete_consumer(&self, name: &str) -> Result<(), StreamError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let c = s
            .consumers
            .remove(name)
            .ok_or(StreamError::ConsumerNotFound)?;
        self.record(|| Record::ConsumerDeleted { id: c.id });
        if s.config.retention != Retention::Limits {
            self.drop_settled(s, None);
        }
        Ok(())
    }

    /// Up to `max` deliveries for consumer `name` (redeliveries first), each
    /// recorded as pending (or, with no acks, as its new position).
    pub fn deliver(
        &self,
        name: &str,
        max: usize,
        max_bytes: Option<u64>,
        now: Instant,
    ) -> Vec<Delivered> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let Some(c) = s.consumers.get_mut(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bytes = 0u64;
        while out.len() < max {
            let Some(d) = c.next(&s.log, now) else { break };
            bytes += d.message.payload.len() as u64;
            let id = c.id;
            if let Some(p) = c.pending(d.stream_seq) {
                self.record(|| Record::ConsumerPending {
                    id,
                    seq: d.stream_seq,
                    pending: p,
                });
            }
            out.push(d);
            if max_bytes.is_some_and(|m| bytes >= m) {
                break;
            }
        }
        if !out.is_empty() {
            self.record_position(c);
        }
        out
    }

    fn record_position(&self, c: &Consumer) {
        let state = c.state();
        self.record(|| Record::ConsumerPosition {
            id: c.id,
            delivered: state.delivered,
            ack_floor: state.ack_floor,
        });
    }

    /// Whether consumer `name` has something to deliver now.
    pub fn has_work(&self, name: &str) -> bool {
        self.lock()
            .consumers
            .get(name)
            .is_some_and(Consumer::has_work)
    }

    /// Applies an answer from consumer `name` to its delivery of `seq`;
    /// returns whether the consumer exists.
    pub fn answer(&self, name: &str, seq: u64, kind: AckKind, now: Instant) -> bool {
        let mut guard = self.lock();
        let s = &mut *guard;
        let Some(c) = s.consumers.get_mut(name) else {
            return false;
        };
        let settled = c.answer(seq, kind, now);
        if settled.is_empty() {
            return true;
        }
        let id = c.id;
        for seq in &settled {
            self.record(|| Record::ConsumerSettled { id, seq: *seq });
        }
        self.record_position(c);
        if s.config.retention != Retention::Limits {
            self.drop_settled(s, Some(&settled));
        }
        true
    }

    /// Interest and work-queue retention: removes messages every consumer that
    /// reads them is done with (among `seqs`, or all).
    fn drop_settled(&self, s: &mut State, seqs: Option<&[u64]>) {
        let candidates: Vec<u64> = match seqs {
            Some(seqs) => seqs.to_vec(),
            None => s.log.seqs_where(u64::MAX, |_| true),
        };
        let work_queue = s.config.retention == Retention::WorkQueue;
        for seq in candidates {
            let Some(m) = s.log.get(seq) else { continue };
            let subject = m.message.subject.clone();
            let interested = s.consumers.values().filter(|c| c.reads(&subject));
            let mut any = false;
            let mut done = true;
            for c in interested {
                any = true;
                done &= c.is_done_with(seq, &subject);
            }
            if (any || !work_queue) && done {
                self.remove(s, seq);
            }
        }
    }

    /// Moves deliveries past their deadline to redelivery; returns the
    /// earliest next deadline.
    pub fn expire_deliveries(&self, now: Instant) -> Option<Instant> {
        let mut s = self.lock();
        s.consumers.values_mut().filter_map(|c| c.expire(now)).min()
    }
}

fn check_expectations(name: &str, log: &Log, msg: &Message) -> Result<(), AppendError> {
    // A value that is not a number matches no sequence (as nats-server answers it).
    let is = |value: &str, actual: u64| value.trim().parse::<u64>() == Ok(actual);
    for (key, value) in &msg.headers {
        match key.as_str() {
            EXPECTED_STREAM if value != name => return Err(AppendError::WrongStream),
            EXPECTED_LAST_SEQ if !is(value, log.last_seq()) => {
                return Err(AppendError::WrongLastSequence(log.last_seq()));
            }
            EXPECTED_LAST_SUBJECT_SEQ => {
                let last = log
                    .subject_seqs(&msg.subject)
                    .and_then(|s| s.last().copied())
                    .unwrap_or(0);
                if !is(value, last) {
                    return Err(AppendError::WrongLastSubjectSequence(last));
                }
            }
            EXPECTED_LAST_MSG_ID if log.last_id() != Some(value.as_str()) => {
                return Err(AppendError::WrongLastMsgId(
                    log.last_id().unwrap_or_default().to_owned(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(crate) struct Streams {
    by_name: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Marked on every append and consumer change, for the fronts that deliver
    /// (each watches with a receiver of its own).
    changed: watch::Sender<()>,
    /// Which partition of a partitioned topic each publish goes to.
    chooser: Chooser,
    /// Ids of streams and consumers when nothing is stored.
    next_id: AtomicU64,
    budget: Arc<Budget>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            by_name: RwLock::default(),
            changed: watch::Sender::new(()),
            chooser: Chooser::default(),
            next_id: AtomicU64::default(),
            budget: Arc::default(),
        }
    }
}

impl Streams {
    /// Marks a change for every watcher.
    fn wake(&self) {
        self.changed.send_replace(());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.by_name.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Router {
    /// Creates a stream (or returns the existing one if `config` is the same).
    pub fn create_stream(
        &self,
        config: StreamConfig,
        now: Now,
    ) -> Result<Arc<Stream>, StreamError> {
        let filters = parse_filters(&config.subjects)?;
        let mut streams = self.streams.write();
        if let Some(existing) = streams.get(&config.name) {
            return if *existing.config() == config {
                Ok(existing.clone())
            } else {
                Err(StreamError::NameInUse)
            };
        }
        check_overlap(&streams, &config, &filters)?;
        let journal = self
            .journal
            .clone()
            .filter(|_| config.storage == StorageKind::File);
        let id = match &journal {
            Some(j) => j.next_dest_id(),
            None => self.streams.next_id.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let config = Arc::new(config);
        let stream = Arc::new(Stream {
            id,
            name: config.name.as_str().into(),
            created_ns: ns(now),
            partition: config.partition,
            journal,
            budget: self.streams.budget.clone(),
            state: Mutex::new(State {
                config: config.clone(),
                log: Log::default(),
                consumers: BTreeMap::new(),
            }),
        });
        stream.record(|| Record::StreamCreated {
            id,
            config: config.clone(),
            created_ns: stream.created_ns,
        });
        self.attach_stream(&stream, &filters);
        streams.insert(config.name.clone(), stream.clone());
        Ok(stream)
    }

    /// Changes a stream's declaration (its name, storage and retention stay).
    pub fn update_stream(
        &self,
        config: StreamConfig,
        now: Now,
    ) -> Result<Arc<Stream>, StreamError> {
        let filters = parse_filters(&config.subjects)?;
        let streams = self.streams.write();
        let stream = streams
            .get(&config.name)
            .ok_or(StreamError::NotFound)?
            .clone();
        let old = stream.config();
        if old.storage != config.storage {
            return Err(StreamError::CannotChange(
                "stream configuration update can not change storage type",
            ));
        }
        if old.retention != config.retention {
            return Err(StreamError::CannotChange(
                "stream configuration update can not change retention policy",
            ));
        }
        if old.partition != config.partition {
            return Err(StreamError::CannotChange(
                "stream configuration update can not change partitions",
            ));
        }
        if old.sealed && !config.sealed {
            return Err(StreamError::CannotChange(
                "stream configuration update can not unseal a sealed stream",
            ));
        }
        check_overlap(&streams, &config, &filters)?;
        self.detach_stream(&stream, &parse_filters(&old.subjects)?);
        self.attach_stream(&stream, &filters);
        let config = Arc::new(config);
        {
            let mut guard = stream.lock();
            guard.config = config.clone();
            stream.enforce_limits(&mut guard, None, now);
        }
        stream.record(|| Record::StreamCreated {
            id: stream.id,
            config,
            created_ns: stream.created_ns,
        });
        drop(streams);
        self.streams.wake();
        Ok(stream)
    }

    /// Deletes a stream with its messages and consumers.
    pub fn delete_stream(&self, name: &str) -> Result<(), StreamError> {
        let stream = self
            .streams
            .write()
            .remove(name)
            .ok_or(StreamError::NotFound)?;
        let config = stream.config();
        self.detach_stream(&stream, &parse_filters(&config.subjects)?);
        let consumers: Vec<DestId> = {
            let mut s = stream.lock();
            // Its messages leave the budget now, whoever still holds the stream.
            s.log = Log::default();
            s.consumers.values().map(|c| c.id).collect()
        };
        for id in consumers {
            stream.record(|| Record::ConsumerDeleted { id });
        }
        stream.record(|| Record::StreamDeleted { id: stream.id });
        Ok(())
    }

    fn attach_stream(&self, stream: &Arc<Stream>, filters: &[Filter]) {
        let mut index = self.write();
        for f in filters {
            let key = TargetKey::Stream(stream.name().clone());
            index.trie.insert(f, key, Target::Stream(stream.clone()));
        }
    }

    fn detach_stream(&self, stream: &Arc<Stream>, filters: &[Filter]) {
        let mut index = self.write();
        for f in filters {
            index
                .trie
                .remove(f, &TargetKey::Stream(stream.name().clone()));
        }
    }

    /// The stream `name`.
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    /// Every stream, by name.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().values().cloned().collect()
    }

    /// A watch of stream changes: its `changed()` resolves when a stream was
    /// appended to or a consumer changed since the receiver last looked.
    pub fn stream_changes(&self) -> watch::Receiver<()> {
        self.streams.changed.subscribe()
    }

    /// The most bytes all streams may hold together; an append beyond it is
    /// refused ([`AppendError::Full`]).
    pub fn set_max_stream_bytes(&self, max: u64) {
        self.streams.budget.max.store(max, Ordering::Relaxed);
    }

    /// The bytes all streams hold together.
    pub fn stream_bytes(&self) -> u64 {
        self.streams.budget.used.load(Ordering::Relaxed)
    }

    /// Marks a change for [`Router::stream_changes`].
    pub fn wake_streams(&self) {
        self.streams.wake();
    }

    /// Keeps, of the partitions among `captured` (the streams a publish matched),
    /// the one each topic gives the message.
    pub(crate) fn pick_partitions(
        &self,
        msg: &Message,
        captured: &mut smallvec::SmallVec<[Arc<Stream>; 1]>,
    ) {
        if captured.iter().all(|s| s.partition.is_none()) {
            return;
        }
        let mut spread = None;
        captured.retain(|s| {
            s.partition
                .is_none_or(|p| self.streams.chooser.choose(msg, p.count, &mut spread) == p.index)
        });
    }

    /// Appends `msg` to each stream in `streams` (the ones its subject matched).
    pub(crate) fn append_to_streams(
        &self,
        msg: &Arc<Message>,
        streams: &[Arc<Stream>],
        now: Now,
        ticket: &mut Ticket,
    ) -> Vec<Appended> {
        let out = streams.iter().map(|s| s.append(msg, now, ticket)).collect();
        self.streams.wake();
        out
    }

    /// Recovery: puts back a stored stream with its messages and consumers.
    pub(crate) fn restore_stream(
        &self,
        stored: RestoredStream,
        now: Instant,
    ) -> Result<(), StreamError> {
        let RestoredStream {
            id,
            config,
            created_ns,
            last,
            messages,
            consumers,
        } = stored;
        let filters = parse_filters(&config.subjects)?;
        let mut log = Log::default();
        for m in messages {
            if let Some(id) = &m.message.message_id {
                log.remember_id(id.clone(), m.seq, m.time_ns);
            }
            log.restore(m);
        }
        log.restore_last_seq(last.0, last.1);
        let mut by_name = BTreeMap::new();
        for c in consumers {
            let filters = parse_filters(&c.config.filter_subjects)?;
            let consumer = Consumer::restore(
                c.id,
                Arc::new(c.config),
                filters,
                &log,
                c.created_ns,
                c.delivered,
                c.ack_floor,
                c.pending,
                now,
            );
            by_name.insert(consumer.config.name.clone(), consumer);
        }
        let stream = Arc::new(Stream {
            id,
            name: config.name.as_str().into(),
            created_ns,
            partition: config.partition,
            journal: self.journal.clone(),
            budget: self.streams.budget.clone(),
            state: Mutex::new(State {
                config: Arc::new(config),
                log,
                consumers: by_name,
            }),
        });
        stream.budget.change(0, stream.lock().log.bytes());
        self.attach_stream(&stream, &filters);
        self.streams.write().insert(stream.name.to_string(), stream);
        Ok(())
    }
}

/// A stored stream, for recovery.
#[derive(Debug)]
pub struct RestoredStream {
    /// Its id.
    pub id: DestId,
    /// Its declaration.
    pub config: StreamConfig,
    /// When it was created.
    pub created_ns: u64,
    /// The last sequence number given out, and its time.
    pub last: (u64, u64),
    /// Its messages.
    pub messages: Vec<StreamMessage>,
    /// Its consumers.
    pub consumers: Vec<RestoredConsumer>,
}

/// A stored consumer, for recovery.
#[derive(Debug)]
pub struct RestoredConsumer {
    /// Its id.
    pub id: DestId,
    /// Its declaration.
    pub config: ConsumerConfig,
    /// When it was created.
    pub created_ns: u64,
    /// Its last delivery.
    pub delivered: Position,
    /// Its ack floor.
    pub ack_floor: Position,
    /// Its pending deliveries.
    pub pending: Vec<(u64, PendingDelivery)>,
}

fn check_overlap(
    streams: &BTreeMap<String, Arc<Stream>>,
    config: &StreamConfig,
    filters: &[Filter],
) -> Result<(), StreamError> {
    for (other_name, other) in streams {
        if *other_name == config.name {
            continue;
        }
        let theirs = other.config();
        // The partitions of one topic capture the same subjects on purpose.
        let siblings = match (config.partition, theirs.partition) {
            (Some(a), Some(b)) => a.count == b.count && a.index != b.index,
            _ => false,
        };
        if siblings && theirs.subjects == config.subjects {
            continue;
        }
        let theirs = parse_filters(&theirs.subjects)?;
        if filters
            .iter()
            .any(|f| theirs.iter().any(|g| filters_overlap(f, g)))
        {
            return Err(StreamError::SubjectsOverlap);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
