//! The protocol-neutral router: the in-process message bus every front publishes
//! into and subscribes from.
//!
//! Owns: the subscription index ([`Trie`] of plain subscriptions and shared
//! [`Group`]s), the registry of subscriber [`Session`]s and their bounded outboxes,
//! the [`Retained`] store, and the fan-out rules of [`Router::publish`] (one
//! [`Dispatch`] per session, granted-QoS capping, no-local, retain-as-published,
//! round robin in groups).
//! Refuses: wire types (nothing here imports `dwbroker_codecs`; fronts translate to
//! [`Message`] and [`Filter`]), I/O, tasks and clocks (`now` is an argument; the only
//! async function is [`Session::wait`]), and protocol policy (acks, in-flight windows,
//! permissions, what a full outbox means for the protocol).
//!
//! Concurrency: publishers match and push themselves, concurrently, under the
//! index's read lock; (un)subscribing and opening/closing sessions take the write
//! lock. Locks are `std::sync`, never held across `.await`; the order is written in
//! docs/locks.md.

mod drops;
pub mod groups;
pub mod journal;
pub mod memory;
pub mod message;
pub mod queues;
mod restore;
pub mod retained;
pub mod sessions;
pub mod streams;
pub mod subject;
pub mod trie;
pub mod vhost;

use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use drops::{DropReason, Drops};
pub use groups::{Group, GroupKey, Member};
pub use journal::{DestId, Journal, Record, StoreFailure, Ticket};
pub use memory::{Held, Memory};
pub use message::{ConnId, Delivery, Dispatch, Extensions, Headers, Message, Now, SubscriptionIds};
pub use queues::{
    ArgValue, ConsumerId, ConsumerSpec, Credit, Entry, Outlet, OutletItem, Overflow, Queue,
    QueueArgs, QueueSpec, QueueStats, QueueType,
};
pub use restore::{FrontState, RestoredSession};
pub use retained::{Retained, RetainedLimits};
pub use sessions::{DropStats, OutboxLimits, Pushed, Session, SessionId};
pub use subject::{Dialect, Filter, FilterError, FilterToken, LastSubject, Subject, SubjectError};
pub use trie::Trie;
pub use vhost::deaths::{self, Death, DeathReason};
pub use vhost::exchanges::{BindArgs, Dest, ExchangeKind, ExchangeSpec};
pub use vhost::{VhostError, VhostLimits, DEFAULT_VHOST_LIMITS, REPLY_TO_PREFIX};

/// The options of one subscription (the default: at most once, no MQTT 5
/// options, no group).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubOptions {
    /// The highest delivery guarantee granted.
    pub qos: Delivery,
    /// Do not deliver messages published by the connection the session is attached
    /// to (MQTT 5 No Local).
    pub no_local: bool,
    /// Keep the publisher's retain flag on delivery (MQTT 5 Retain As Published).
    pub retain_as_published: bool,
    /// The MQTT 5 subscription identifier, echoed on matching deliveries.
    pub subscription_id: Option<u32>,
    /// The shared subscription group (MQTT `$share/<group>/`, NATS queue group).
    pub share_group: Option<String>,
    /// Subjects left out of this subscription's deliveries: the deny rules of the
    /// subscriber's permissions that its filter overlaps (the front decides them;
    /// the router only applies them).
    pub withheld: Option<Arc<[Filter]>>,
}

impl SubOptions {
    /// Whether a message on `subject` is not delivered to this subscription
    /// although its filter matches: published by the subscriber's own connection
    /// under No Local, or withheld.
    fn skips(&self, session: &Session, origin: ConnId, subject: &Subject) -> bool {
        (self.no_local && origin != 0 && session.connection() == origin)
            || self
                .withheld
                .as_ref()
                .is_some_and(|w| w.iter().any(|f| f.matches(subject)))
    }
}

/// What the trie stores under a filter.
#[derive(Debug)]
enum Target {
    /// A plain subscription of one session.
    Sub {
        session: Arc<Session>,
        opts: SubOptions,
    },
    /// A shared group: one member per message.
    Group(Group),
    /// A queue or exchange bound to `amq.topic` (the pattern is the filter).
    Bound(Dest),
    /// A stream capturing the filter's subjects.
    Stream(Arc<streams::Stream>),
}

/// What tells a target from the others under the same filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TargetKey {
    Sub(SessionId),
    Group(Box<str>),
    Bound(Dest),
    Stream(Arc<str>),
}

/// A subscription as a session remembers it, to find it again on unsubscribe and
/// on close.
type SubKey = (Filter, Option<String>);

#[derive(Debug)]
struct Registered {
    session: Arc<Session>,
    subs: HashSet<SubKey>,
}

#[derive(Debug, Default)]
struct Index {
    trie: Trie<TargetKey, Target>,
    sessions: HashMap<SessionId, Registered>,
    /// Subscriptions of all sessions, group memberships included.
    subscriptions: usize,
}

impl Index {
    /// Takes `session`'s subscription to `filter` (in `group`) out of the trie.
    fn detach(&mut self, session: SessionId, filter: &Filter, group: Option<&str>) {
        match group {
            Some(name) => {
                let key = TargetKey::Group(name.into());
                let mut emptied = false;
                if let Some(Target::Group(g)) = self.trie.find_mut(filter, &key) {
                    g.leave(session);
                    emptied = g.is_empty();
                }
                if emptied {
                    self.trie.remove(filter, &key);
                }
            }
            None => {
                self.trie.remove(filter, &TargetKey::Sub(session));
            }
        }
    }
}

/// The message bus. `Send + Sync`; share it in an `Arc`.
pub struct Router {
    limits: OutboxLimits,
    next_session: AtomicU64,
    index: RwLock<Index>,
    retained: Mutex<Retained>,
    /// The RabbitMQ model layer: exchanges, bindings, the queue registry.
    vhost: vhost::Vhost,
    /// Where changes of durable state are recorded (`None`: nothing is stored).
    journal: Option<Arc<Journal>>,
    /// The streams.
    streams: streams::Streams,
    /// Every byte held for messages in queues and outboxes, and the watermark.
    memory: Arc<Memory>,
    /// Messages discarded, by why.
    drops: Drops,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("limits", &self.limits)
            .field("sessions", &self.session_count())
            .field("subscriptions", &self.subscription_count())
            .field("retained", &self.retained_count())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// An empty router whose sessions get outboxes bounded by `limits`, whose
    /// retained store is bounded by `retained`, and whose vhost `/` (with only the
    /// predeclared exchanges) is bounded by `vhost`.
    pub fn new(limits: OutboxLimits, retained: RetainedLimits, vhost: VhostLimits) -> Router {
        let memory = Arc::new(Memory::default());
        Router {
            limits,
            next_session: AtomicU64::new(1),
            index: RwLock::new(Index::default()),
            retained: Mutex::new(Retained::new(retained)),
            vhost: vhost::Vhost::new(vhost, memory.clone()),
            journal: None,
            streams: streams::Streams::default(),
            memory,
            drops: Drops::default(),
        }
    }

    /// Messages discarded so far, by why.
    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// The memory ledger: what queues and outboxes hold, and whether publishers
    /// are to be held back.
    pub fn memory(&self) -> &Arc<Memory> {
        &self.memory
    }

    /// This router, recording every change of durable state in `journal`.
    /// Called before the router is used.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Router {
        self.journal = Some(journal);
        self
    }

    /// Appends the record `make` builds, if the router stores anything.
    fn record(&self, make: impl FnOnce() -> Record) -> Ticket {
        match &self.journal {
            Some(journal) => journal.append(make()),
            None => Ticket::default(),
        }
    }

    /// Runs `f` so that the durable changes it makes are committed together.
    pub(crate) fn atomically<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.journal {
            Some(journal) => journal.atomic(f),
            None => f(),
        }
    }

    // Poisoning only means a thread panicked while holding the lock; every
    // structure behind these locks stays consistent between statements, so keep
    // serving instead of spreading the panic to every connection.
    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn retained_store(&self) -> MutexGuard<'_, Retained> {
        self.retained.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new session with an empty outbox and returns it.
    pub fn open_session(&self) -> Arc<Session> {
        self.open_session_with(self.limits)
    }

    /// Registers a new session whose outbox has its own `limits` (a front whose
    /// protocol bounds a subscriber differently, as NATS does by pending bytes).
    pub fn open_session_with(&self, limits: OutboxLimits) -> Arc<Session> {
        self.register(limits, None)
    }

    /// Registers a new session that outlives its connection: on a router with
    /// storage it is stored under `name` (its subscriptions, its pending
    /// at-least-once messages and its front's state) until it ends.
    pub fn open_stored_session(&self, name: &str, expiry_secs: u32) -> Arc<Session> {
        let store = self.journal.as_ref().map(|journal| {
            let id = journal.next_dest_id();
            journal.append(Record::SessionOpened {
                id,
                name: name.to_owned(),
                expiry_secs,
            });
            sessions::SessionStore {
                journal: journal.clone(),
                id,
            }
        });
        self.register(self.limits, store)
    }

    /// Records a stored session's new expiry.
    pub fn store_session_expiry(&self, session: &Session, name: &str, expiry_secs: u32) {
        if let Some(store) = session.store() {
            store.journal.append(Record::SessionOpened {
                id: store.id,
                name: name.to_owned(),
                expiry_secs,
            });
        }
    }

    pub(crate) fn register(
        &self,
        limits: OutboxLimits,
        store: Option<sessions::SessionStore>,
    ) -> Arc<Session> {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session::with_store(id, limits, store, self.memory.clone()));
        self.write().sessions.insert(
            id,
            Registered {
                session: session.clone(),
                subs: HashSet::new(),
            },
        );
        session
    }

    /// Drops every subscription and group membership of session `id` and
    /// unregisters it. Holders of its `Arc` may still drain what was queued.
    pub fn close_session(&self, id: SessionId) {
        self.close_session_with(id, Vec::new());
    }

    /// Closes session `id` like [`Router::close_session`]; shared-subscription
    /// messages still in its outbox, and those in `unacked` (delivered but not
    /// acknowledged, handed back by its front), go to another member of their
    /// group (MQTT 5 §4.8.2: the server SHOULD send them to another client of
    /// the shared subscription). Other messages end with the session.
    pub fn close_session_with(&self, id: SessionId, unacked: Vec<Dispatch>) {
        let session = {
            let mut index = self.write();
            let Some(registered) = index.sessions.remove(&id) else {
                return;
            };
            for (filter, group) in &registered.subs {
                index.detach(id, filter, group.as_deref());
            }
            index.subscriptions -= registered.subs.len();
            registered.session
        };
        if let Some(store) = session.store() {
            store.journal.append(Record::SessionEnded { id: store.id });
        }
        let orphans: Vec<Dispatch> = unacked
            .into_iter()
            .chain(std::iter::from_fn(|| session.pop()))
            .filter(|d| d.share.is_some())
            .collect();
        if orphans.is_empty() {
            return;
        }
        let index = self.read();
        for orphan in orphans {
            let Some(key) = &orphan.share else { continue };
            let group = TargetKey::Group(key.name.clone());
            if let Some(Target::Group(group)) = index.trie.find(&key.filter, &group) {
                let message = &orphan.message;
                let skips = |session: &Session, opts: &SubOptions| {
                    opts.skips(session, message.origin, &message.subject)
                };
                dispatch_to_group(
                    &index.sessions,
                    group,
                    &orphan.message,
                    skips,
                    &mut Ticket::default(),
                );
            }
        }
    }

    /// Subscribes `session` to `filter` (in `opts.share_group`, if any). Returns
    /// true if it replaced the session's existing subscription to the same
    /// (filter, share group), whose options are then replaced. An unknown (closed)
    /// session is ignored and false returned.
    pub fn subscribe(&self, session: SessionId, filter: Filter, opts: SubOptions) -> bool {
        self.subscribe_recorded(session, filter, opts, true)
    }

    /// [`Router::subscribe`]; a stored session's subscription is recorded if
    /// `record` (it is not when it is restored).
    pub(crate) fn subscribe_recorded(
        &self,
        session: SessionId,
        filter: Filter,
        opts: SubOptions,
        record: bool,
    ) -> bool {
        let mut guard = self.write();
        let index = &mut *guard;
        let Some(registered) = index.sessions.get_mut(&session) else {
            return false;
        };
        if let Some(store) = registered.session.store().filter(|_| record) {
            store.journal.append(Record::SessionSubscribed {
                session: store.id,
                filter: filter.clone(),
                opts: opts.clone(),
            });
        }
        // [MQTT-3.8.4-3] A new subscription with the same filter as an existing one
        // replaces it (its options), it does not add a second one.
        let replaced = !registered
            .subs
            .insert((filter.clone(), opts.share_group.clone()));
        match opts.share_group.clone() {
            Some(name) => {
                let key = TargetKey::Group(name.as_str().into());
                if let Some(Target::Group(g)) = index.trie.find_mut(&filter, &key) {
                    g.join(session, opts);
                } else {
                    let mut group = Group::new(&name, filter.clone());
                    group.join(session, opts);
                    index.trie.insert(&filter, key, Target::Group(group));
                }
            }
            None => {
                let session = registered.session.clone();
                let key = TargetKey::Sub(session.id());
                index
                    .trie
                    .insert(&filter, key, Target::Sub { session, opts });
            }
        }
        if !replaced {
            index.subscriptions += 1;
        }
        replaced
    }

    /// Removes `session`'s subscription to `filter` in `share_group`; returns
    /// whether there was one.
    pub fn unsubscribe(
        &self,
        session: SessionId,
        filter: &Filter,
        share_group: Option<&str>,
    ) -> bool {
        let mut index = self.write();
        let Some(registered) = index.sessions.get_mut(&session) else {
            return false;
        };
        if !registered
            .subs
            .remove(&(filter.clone(), share_group.map(str::to_owned)))
        {
            return false;
        }
        if let Some(store) = registered.session.store() {
            store.journal.append(Record::SessionUnsubscribed {
                session: store.id,
                filter: filter.clone(),
                group: share_group.map(str::to_owned),
            });
        }
        index.detach(session, filter, share_group);
        index.subscriptions -= 1;
        true
    }

    /// Routes `msg` and returns how many sessions it was queued for (pushes dropped
    /// by a full outbox are not counted).
    ///
    /// - A retained message becomes its subject's retained message (an empty
    ///   payload clears it) and is still delivered to current subscribers as a
    ///   normal message (MQTT 3.1.1 [MQTT-3.3.1-10], MQTT 5 [MQTT-3.3.1-6]).
    /// - A message that has expired by `now` is delivered to no one (a retained one
    ///   clears the retained message instead of being stored).
    /// - Plain subscriptions: one [`Dispatch`] per session however many of its
    ///   subscriptions match, with qos = min(message qos, highest granted qos of
    ///   those subscriptions) [MQTT-3.3.5-1], every matching subscription id, and
    ///   the retain flag kept if any of them has retain-as-published. No-local
    ///   subscriptions skip messages whose origin is the session's connection.
    /// - Each matching shared group: one member, round robin, passing over members
    ///   that no-local excludes and, if another member has room, members whose
    ///   outbox is full (MQTT 5 §4.8.2 leaves the choice of member to the server).
    /// - Queues and exchanges bound to `amq.topic` with a matching pattern: each
    ///   queue once, as an entry of exchange `amq.topic` with the subject as
    ///   routing key (counted in `matched`/`queued`/`rejected`).
    pub fn publish(&self, msg: Message, now: Now) -> Routed {
        let (mut routed, bound, msg) = self.publish_sessions(msg, now);
        if !bound.is_empty() {
            routed.add(self.publish_bound(msg, bound, now));
        }
        routed
    }

    /// The subject-space part of [`Router::publish`]: sessions and groups, and the
    /// destinations bound to `amq.topic` that match (collected under the index
    /// read lock, to be pushed into after releasing it).
    pub(crate) fn publish_sessions(
        &self,
        msg: Message,
        now: Now,
    ) -> (Routed, Vec<Dest>, Arc<Message>) {
        let expired = msg.is_expired(now.unix_ms);
        let msg = Arc::new(msg);
        let mut routed = Routed::default();
        if msg.retain {
            // Retained messages are always durable: recorded under the store's
            // lock, in the order they replace each other.
            let mut retained = self.retained_store();
            let stored = if expired || msg.payload.is_empty() {
                retained.clear(&msg.subject).then_some(None)
            } else {
                retained.set(msg.clone()).then(|| Some(msg.clone()))
            };
            if let Some(message) = stored {
                routed.ticket = self.record(|| Record::Retained {
                    subject: msg.subject.clone(),
                    message,
                });
            }
        }
        if expired {
            return (routed, Vec::new(), msg);
        }
        let skips =
            |session: &Session, opts: &SubOptions| opts.skips(session, msg.origin, &msg.subject);
        let index = self.read();
        // Inline up to a few subscribers: a publish should not allocate for its list.
        let mut plain: SmallVec<[(&Arc<Session>, &SubOptions); 8]> = SmallVec::new();
        let mut bound: Vec<Dest> = Vec::new();
        let mut captured: SmallVec<[Arc<streams::Stream>; 1]> = SmallVec::new();
        index
            .trie
            .for_each_match(&msg.subject, |target| match target {
                Target::Sub { session, opts } => {
                    if !skips(session, opts) {
                        plain.push((session, opts));
                    }
                }
                Target::Group(group) => {
                    let ticket = &mut routed.ticket;
                    if let Some(pushed) =
                        dispatch_to_group(&index.sessions, group, &msg, skips, ticket)
                    {
                        routed.count(pushed);
                    }
                }
                Target::Bound(dest) => {
                    if !bound.contains(dest) {
                        bound.push(dest.clone());
                    }
                }
                Target::Stream(stream) => {
                    if !captured.iter().any(|s| Arc::ptr_eq(s, stream)) {
                        captured.push(stream.clone());
                    }
                }
            });
        if plain.len() > 1 {
            plain.sort_unstable_by_key(|(session, _)| session.id());
        }
        for run in plain.chunk_by(|a, b| a.0.id() == b.0.id()) {
            let session = run[0].0;
            let granted = run.iter().map(|(_, o)| o.qos).max().unwrap_or_default();
            let dispatch = Dispatch {
                message: msg.clone(),
                qos: msg.qos.min(granted),
                retain: msg.retain && run.iter().any(|(_, o)| o.retain_as_published),
                subscription_ids: run.iter().filter_map(|(_, o)| o.subscription_id).collect(),
                share: None,
                seq: 0,
            };
            let pushed = session.push_stored(dispatch, &mut routed.ticket);
            routed.count(pushed);
        }
        drop(plain);
        drop(index);
        let refused = routed.matched.saturating_sub(routed.queued) as u64;
        self.drops.count(DropReason::OutboxFull, refused);
        self.pick_partitions(&msg, &mut captured);
        if !captured.is_empty() {
            routed.matched += captured.len();
            routed.queued += captured.len();
            routed.appended = self.append_to_streams(&msg, &captured, now, &mut routed.ticket);
        }
        (routed, bound, msg)
    }

    /// Frees retained messages that have expired by `now`; returns how many.
    pub fn remove_expired_retained(&self, now: Now) -> usize {
        let mut retained = self.retained_store();
        let gone = retained.remove_expired(now.unix_ms);
        for subject in &gone {
            self.record(|| Record::Retained {
                subject: subject.clone(),
                message: None,
            });
        }
        gone.len()
    }

    /// The retained messages matching `filter` that have not expired by `now`.
    /// A wildcard filter is matched a page of stored subjects at a time, so that
    /// a `#` subscription over a large store does not hold up retained publishes.
    pub fn retained(&self, filter: &Filter, now: Now) -> Vec<Arc<Message>> {
        const PAGE: usize = 1024;
        let mut found = Vec::new();
        let mut after = None;
        loop {
            after = self.retained_store().matching_page(
                filter,
                now.unix_ms,
                after.as_ref(),
                PAGE,
                &mut found,
            );
            if after.is_none() {
                return found;
            }
        }
    }

    /// How many sessions are registered.
    pub fn session_count(&self) -> usize {
        self.read().sessions.len()
    }

    /// The filters (with their share groups) `session` is subscribed to.
    pub(crate) fn subscriptions_of(&self, session: SessionId) -> Vec<(Filter, Option<String>)> {
        self.read()
            .sessions
            .get(&session)
            .map(|r| r.subs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many subscriptions exist (group memberships included).
    pub fn subscription_count(&self) -> usize {
        self.read().subscriptions
    }

    /// Whether `session` may take a subscription to `filter` in `share_group`
    /// without holding more than `max` subscriptions (replacing one it holds is
    /// always allowed).
    pub fn may_subscribe(
        &self,
        session: SessionId,
        filter: &Filter,
        share_group: Option<&str>,
        max: usize,
    ) -> bool {
        let index = self.read();
        let Some(registered) = index.sessions.get(&session) else {
            return false;
        };
        registered.subs.len() < max
            || registered
                .subs
                .contains(&(filter.clone(), share_group.map(str::to_owned)))
    }

    /// A ticket that completes once everything recorded so far is stored (at
    /// once without storage): for an answer that follows changes made by
    /// several router calls.
    pub fn storage_barrier(&self) -> Ticket {
        self.journal
            .as_ref()
            .map_or_else(Ticket::default, |j| j.barrier())
    }

    /// Whether a publish on `subject` would reach a subscriber or a group (a
    /// JetStream push consumer delivers only while someone listens).
    pub fn has_interest(&self, subject: &Subject) -> bool {
        let mut any = false;
        self.read().trie.for_each_match(subject, |target| {
            any |= matches!(target, Target::Sub { .. } | Target::Group(_));
        });
        any
    }

    /// How many subjects have a retained message (expired ones included until
    /// they are replaced).
    pub fn retained_count(&self) -> usize {
        self.retained_store().len()
    }
}

/// Queues `msg` for one member of `group`; `None` if no member may receive it.
fn dispatch_to_group(
    sessions: &HashMap<SessionId, Registered>,
    group: &Group,
    msg: &Arc<Message>,
    skips: impl Fn(&Session, &SubOptions) -> bool,
    ticket: &mut Ticket,
) -> Option<Pushed> {
    // Prefer a member whose client is connected and keeping up, then one that is
    // keeping up (a parked persistent session), then anyone: a message should not
    // wait in an absent member's queue while another member could take it.
    let eligible = |m: &Member, need_online: bool, need_room: bool| {
        sessions.get(&m.session).is_some_and(|r| {
            let offline = need_online && r.session.connection() == 0;
            let full = need_room && r.session.is_full();
            !skips(&r.session, &m.opts) && !offline && !full
        })
    };
    let member = group
        .pick_where(|m| eligible(m, true, true))
        .or_else(|| group.pick_where(|m| eligible(m, false, true)))
        .or_else(|| group.pick_where(|m| eligible(m, false, false)))?;
    let registered = sessions.get(&member.session)?;
    let dispatch = Dispatch {
        message: msg.clone(),
        qos: msg.qos.min(member.opts.qos),
        retain: msg.retain && member.opts.retain_as_published,
        subscription_ids: member.opts.subscription_id.into_iter().collect(),
        share: Some(group.key().clone()),
        seq: 0,
    };
    Some(registered.session.push_stored(dispatch, ticket))
}

/// What one publish reached.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Sessions with a matching subscription (a group counts once).
    pub matched: usize,
    /// Of which the message was queued for (the others' outboxes were full).
    pub queued: usize,
    /// Queues that refused the message (`x-overflow` reject-publish).
    pub rejected: usize,
    /// Completes when every stored copy of the message is durable; a front
    /// acknowledges a publisher only then.
    pub ticket: Ticket,
    /// What each stream that captured the message answered.
    pub appended: Vec<streams::Appended>,
}

impl Routed {
    fn add(&mut self, other: Routed) {
        self.matched += other.matched;
        self.queued += other.queued;
        self.rejected += other.rejected;
        self.ticket.merge(other.ticket);
        self.appended.extend(other.appended);
    }

    fn count(&mut self, pushed: Pushed) {
        self.matched += 1;
        if pushed == Pushed::Queued {
            self.queued += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: OutboxLimits = OutboxLimits {
        max_messages: 100,
        max_bytes: 1 << 20,
    };
    const RETAINED: RetainedLimits = RetainedLimits {
        max_messages: 100,
        max_bytes: 1 << 20,
    };

    fn opts(qos: Delivery) -> SubOptions {
        SubOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            subscription_id: None,
            share_group: None,
            withheld: None,
        }
    }

    fn shared(group: &str, qos: Delivery) -> SubOptions {
        SubOptions {
            share_group: Some(group.into()),
            ..opts(qos)
        }
    }

    fn mqtt(f: &str) -> Filter {
        Filter::mqtt(f).unwrap()
    }

    fn msg(topic: &str, qos: Delivery) -> Message {
        Message {
            subject: Subject::from_mqtt_topic(topic).unwrap(),
            payload: "p".into(),
            qos,
            ..Message::default()
        }
    }

    fn drain(session: &Session) -> Vec<Dispatch> {
        std::iter::from_fn(|| session.pop()).collect()
    }

    #[test]
    fn router_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Router>();
        check::<Session>();
    }

    #[test]
    fn plain_subscription_receives_shared_payload() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let s = r.open_session();
        assert!(!r.subscribe(s.id(), mqtt("a/+"), opts(Delivery::AtLeastOnce)));
        let m = msg("a/b", Delivery::ExactlyOnce);
        let payload = m.payload.clone();
        assert_eq!(r.publish(m, now).queued, 1);
        assert_eq!(r.publish(msg("b/b", Delivery::AtLeastOnce), now).queued, 0);
        let got = drain(&s);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].qos, Delivery::AtLeastOnce);
        assert!(!got[0].retain);
        // The payload is shared, not copied.
        assert_eq!(got[0].message.payload.as_ptr(), payload.as_ptr());
        assert_eq!(r.session_count(), 1);
        assert_eq!(r.subscription_count(), 1);
    }

    #[test]
    fn overlapping_subscriptions_give_one_dispatch_with_max_qos_and_all_ids() {
        // [MQTT-3.3.5-1]
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let s = r.open_session();
        let other = r.open_session();
        let mut a = opts(Delivery::AtMostOnce);
        a.subscription_id = Some(1);
        let mut b = opts(Delivery::AtLeastOnce);
        b.subscription_id = Some(2);
        r.subscribe(s.id(), mqtt("a/+"), a);
        r.subscribe(s.id(), mqtt("a/#"), b);
        r.subscribe(
            s.id(),
            Filter::nats("a.b").unwrap(),
            opts(Delivery::AtMostOnce),
        );
        r.subscribe(other.id(), mqtt("#"), opts(Delivery::ExactlyOnce));
        assert_eq!(r.subscription_count(), 4);
        assert_eq!(r.publish(msg("a/b", Delivery::ExactlyOnce), now).queued, 2);
        let got = drain(&s);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].qos, Delivery::AtLeastOnce);
        let mut ids = got[0].subscription_ids.clone();
        ids.sort_unstable();
        assert_eq!(ids[..], [1, 2]);
        let got = drain(&other);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].qos, Delivery::ExactlyOnce);
        assert!(got[0].subscription_ids.is_empty());
        // The message's own qos caps the delivery.
        r.publish(msg("a/b", Delivery::AtMostOnce), now);
        assert_eq!(drain(&s)[0].qos, Delivery::AtMostOnce);
    }

    #[test]
    fn resubscribing_replaces_options() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let s = r.open_session();
        assert!(!r.subscribe(s.id(), mqtt("a"), opts(Delivery::AtMostOnce)));
        assert!(r.subscribe(s.id(), mqtt("a"), opts(Delivery::ExactlyOnce)));
        assert_eq!(r.subscription_count(), 1);
        assert_eq!(r.publish(msg("a", Delivery::ExactlyOnce), now).queued, 1);
        let got = drain(&s);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].qos, Delivery::ExactlyOnce);
        // The same filter in a share group is a different subscription.
        assert!(!r.subscribe(s.id(), mqtt("a"), shared("g", Delivery::AtMostOnce)));
        assert!(r.subscribe(s.id(), mqtt("a"), shared("g", Delivery::AtLeastOnce)));
        assert_eq!(r.subscription_count(), 2);
    }

    #[test]
    fn unsubscribe() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let s = r.open_session();
        r.subscribe(s.id(), mqtt("a/#"), opts(Delivery::AtMostOnce));
        r.subscribe(s.id(), mqtt("a/#"), shared("g", Delivery::AtMostOnce));
        assert!(!r.unsubscribe(s.id(), &mqtt("a/+"), None));
        assert!(!r.unsubscribe(s.id(), &mqtt("a/#"), Some("h")));
        // Same tokens, other dialect: a different filter.
        assert!(!r.unsubscribe(s.id(), &Filter::amqp_topic("a.#").unwrap(), None));
        assert!(r.unsubscribe(s.id(), &mqtt("a/#"), None));
        assert!(!r.unsubscribe(s.id(), &mqtt("a/#"), None));
        assert_eq!(r.subscription_count(), 1);
        assert_eq!(r.publish(msg("a/b", Delivery::AtMostOnce), now).queued, 1);
        assert!(r.unsubscribe(s.id(), &mqtt("a/#"), Some("g")));
        assert_eq!(r.publish(msg("a/b", Delivery::AtMostOnce), now).queued, 0);
        assert_eq!(r.subscription_count(), 0);
        assert!(r.read().trie.is_empty());
    }

    #[test]
    fn no_local_skips_own_connection_only() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let s = r.open_session();
        s.set_connection(5);
        let mut o = opts(Delivery::AtMostOnce);
        o.no_local = true;
        r.subscribe(s.id(), mqtt("a"), o);
        let from = |origin| Message {
            origin,
            ..msg("a", Delivery::AtMostOnce)
        };
        assert_eq!(r.publish(from(5), now).queued, 0);
        assert_eq!(r.publish(from(6), now).queued, 1);
        // Origin 0 is in process, never "local".
        assert_eq!(r.publish(from(0), now).queued, 1);
        // A second, non-no-local subscription still delivers (once).
        r.subscribe(s.id(), mqtt("+"), opts(Delivery::AtMostOnce));
        assert_eq!(r.publish(from(5), now).queued, 1);
        assert_eq!(drain(&s).len(), 3);
    }

    #[test]
    fn retain_as_published() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let plain = r.open_session();
        let rap = r.open_session();
        r.subscribe(plain.id(), mqtt("a"), opts(Delivery::AtMostOnce));
        let mut o = opts(Delivery::AtMostOnce);
        o.retain_as_published = true;
        r.subscribe(rap.id(), mqtt("a"), o);
        // One of two matching subscriptions with retain-as-published is enough.
        r.subscribe(rap.id(), mqtt("#"), opts(Delivery::AtMostOnce));
        let retained = Message {
            retain: true,
            ..msg("a", Delivery::AtMostOnce)
        };
        assert_eq!(r.publish(retained, now).queued, 2);
        assert!(!drain(&plain)[0].retain);
        assert!(drain(&rap)[0].retain);
        r.publish(msg("a", Delivery::AtMostOnce), now);
        assert!(!drain(&rap)[0].retain);
    }

    #[test]
    fn retained_store_set_clear_and_expiry() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let s = r.open_session();
        r.subscribe(s.id(), mqtt("a/#"), opts(Delivery::AtMostOnce));
        let retained = |topic: &str, payload: &'static str| Message {
            retain: true,
            payload: payload.into(),
            ..msg(topic, Delivery::AtLeastOnce)
        };
        r.publish(retained("a/b", "1"), now);
        r.publish(retained("a/c", "2"), now);
        assert_eq!(r.retained_count(), 2);
        let found = r.retained(&mqtt("a/+"), now);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|m| m.retain));
        // An empty retained payload clears the store and is still delivered.
        drain(&s);
        assert_eq!(r.publish(retained("a/b", ""), now).queued, 1);
        assert_eq!(drain(&s).len(), 1);
        assert_eq!(r.retained_count(), 1);
        assert!(r.retained(&mqtt("a/b"), now).is_empty());
        // Expiry: skipped after its time, not delivered if already expired.
        let expiring = Message {
            expires_at: Some(now.unix_ms + 1000),
            ..retained("a/d", "3")
        };
        assert_eq!(r.publish(expiring, now).queued, 1);
        assert_eq!(r.retained(&mqtt("a/d"), now).len(), 1);
        assert!(r.retained(&mqtt("a/d"), now.plus_ms(1000)).is_empty());
        let dead = Message {
            expires_at: Some(now.unix_ms),
            ..retained("a/c", "4")
        };
        assert_eq!(r.publish(dead, now).queued, 0);
        assert!(r.retained(&mqtt("a/c"), now).is_empty());
        let dead_plain = Message {
            expires_at: Some(now.unix_ms - 1),
            ..msg("a/x", Delivery::AtMostOnce)
        };
        assert_eq!(r.publish(dead_plain, now).queued, 0);
    }

    #[test]
    fn dollar_subjects_skip_leading_mqtt_wildcards() {
        // [MQTT-4.7.2-1]
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let hash = r.open_session();
        let sys = r.open_session();
        let nats = r.open_session();
        r.subscribe(hash.id(), mqtt("#"), opts(Delivery::AtMostOnce));
        r.subscribe(hash.id(), mqtt("+/x"), opts(Delivery::AtMostOnce));
        r.subscribe(sys.id(), mqtt("$SYS/#"), opts(Delivery::AtMostOnce));
        r.subscribe(
            nats.id(),
            Filter::nats(">").unwrap(),
            opts(Delivery::AtMostOnce),
        );
        assert_eq!(
            r.publish(msg("$SYS/x", Delivery::AtMostOnce), now).queued,
            2
        );
        assert!(hash.is_empty());
        assert_eq!(sys.len(), 1);
        assert_eq!(nats.len(), 1);
        assert_eq!(r.publish(msg("a/x", Delivery::AtMostOnce), now).queued, 2);
        assert_eq!(drain(&hash).len(), 1);
        // Retained lookup follows the same rule.
        r.publish(
            Message {
                retain: true,
                ..msg("$SYS/y", Delivery::AtMostOnce)
            },
            now,
        );
        assert!(r.retained(&mqtt("#"), now).is_empty());
        assert_eq!(r.retained(&mqtt("$SYS/+"), now).len(), 1);
    }

    #[test]
    fn shared_group_round_robin_beside_plain_subscribers() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let m1 = r.open_session();
        let m2 = r.open_session();
        let plain = r.open_session();
        let mut o1 = shared("g", Delivery::AtLeastOnce);
        o1.subscription_id = Some(11);
        r.subscribe(m1.id(), mqtt("a/+"), o1);
        r.subscribe(m2.id(), mqtt("a/+"), shared("g", Delivery::AtMostOnce));
        r.subscribe(plain.id(), mqtt("a/#"), opts(Delivery::AtMostOnce));
        // m1 is also a plain subscriber: that delivery is separate.
        r.subscribe(m1.id(), mqtt("a/b"), opts(Delivery::AtMostOnce));
        let mut m1_group = 0;
        for _ in 0..4 {
            let queued = r.publish(msg("a/b", Delivery::ExactlyOnce), now).queued;
            assert_eq!(queued, 3);
        }
        assert_eq!(plain.len(), 4);
        for d in drain(&m1) {
            if d.subscription_ids[..] == [11] {
                m1_group += 1;
                assert_eq!(d.qos, Delivery::AtLeastOnce);
            } else {
                assert_eq!(d.qos, Delivery::AtMostOnce);
                assert!(d.subscription_ids.is_empty());
            }
        }
        assert_eq!(m1_group, 2);
        let m2_got = drain(&m2);
        assert_eq!(m2_got.len(), 2);
        assert!(m2_got
            .iter()
            .all(|d| d.qos == Delivery::AtMostOnce && !d.retain));
        // Another group on the same filter gets its own copy.
        let other = r.open_session();
        r.subscribe(other.id(), mqtt("a/+"), shared("h", Delivery::AtMostOnce));
        assert_eq!(r.publish(msg("a/b", Delivery::AtMostOnce), now).queued, 4);
        assert_eq!(other.len(), 1);
    }

    #[test]
    fn shared_group_passes_over_full_and_local_members() {
        let now = Now::current();
        let r = Router::new(
            OutboxLimits {
                max_messages: 1,
                max_bytes: 1 << 20,
            },
            RETAINED,
            DEFAULT_VHOST_LIMITS,
        );
        let m1 = r.open_session();
        let m2 = r.open_session();
        r.subscribe(m1.id(), mqtt("a"), shared("g", Delivery::AtMostOnce));
        r.subscribe(m2.id(), mqtt("a"), shared("g", Delivery::AtMostOnce));
        assert_eq!(r.publish(msg("a", Delivery::AtMostOnce), now).queued, 1);
        assert_eq!(r.publish(msg("a", Delivery::AtMostOnce), now).queued, 1);
        assert_eq!((m1.len(), m2.len()), (1, 1));
        // Both full: the turn's member takes the drop.
        assert_eq!(r.publish(msg("a", Delivery::AtMostOnce), now).queued, 0);
        assert_eq!(
            m1.take_drop_stats().messages + m2.take_drop_stats().messages,
            1
        );
        drain(&m1);
        // m2 full, m1 has room: m1 gets it whoever's turn it is.
        assert_eq!(r.publish(msg("a", Delivery::AtMostOnce), now).queued, 1);
        assert_eq!(m1.len(), 1);
        drain(&m1);
        drain(&m2);
        // No-local members are passed over.
        m1.set_connection(9);
        r.subscribe(
            m1.id(),
            mqtt("a"),
            SubOptions {
                no_local: true,
                ..shared("g", Delivery::AtMostOnce)
            },
        );
        for _ in 0..2 {
            let m = Message {
                origin: 9,
                ..msg("a", Delivery::AtMostOnce)
            };
            assert_eq!(r.publish(m, now).queued, 1);
            drain(&m2);
        }
        let m = Message {
            origin: 9,
            ..msg("a", Delivery::AtMostOnce)
        };
        assert_eq!(r.publish(m, now).queued, 1);
        assert_eq!((m1.len(), m2.len()), (0, 1));
    }

    #[test]
    fn close_session_removes_everything() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let s = r.open_session();
        let keep = r.open_session();
        r.subscribe(s.id(), mqtt("a/#"), opts(Delivery::AtMostOnce));
        r.subscribe(
            s.id(),
            Filter::nats("a.*").unwrap(),
            opts(Delivery::AtMostOnce),
        );
        r.subscribe(s.id(), mqtt("a/b"), shared("g", Delivery::AtMostOnce));
        r.subscribe(keep.id(), mqtt("a/b"), shared("g", Delivery::AtMostOnce));
        assert_eq!(r.subscription_count(), 4);
        r.close_session(s.id());
        r.close_session(s.id());
        assert_eq!(r.session_count(), 1);
        assert_eq!(r.subscription_count(), 1);
        assert_eq!(r.publish(msg("a/b", Delivery::AtMostOnce), now).queued, 1);
        assert!(s.is_empty());
        assert_eq!(keep.len(), 1);
        // Subscribing a closed session does nothing.
        assert!(!r.subscribe(s.id(), mqtt("a/b"), opts(Delivery::AtMostOnce)));
        assert_eq!(r.subscription_count(), 1);
        r.close_session(keep.id());
        assert_eq!(r.session_count(), 0);
        assert_eq!(r.subscription_count(), 0);
        assert!(r.read().trie.is_empty());
    }

    #[test]
    fn full_outbox_is_not_counted_and_records_drops() {
        let now = Now::current();
        let r = Router::new(
            OutboxLimits {
                max_messages: 2,
                max_bytes: 1 << 20,
            },
            RETAINED,
            DEFAULT_VHOST_LIMITS,
        );
        let s = r.open_session();
        r.subscribe(s.id(), mqtt("a"), opts(Delivery::AtLeastOnce));
        let counts: Vec<usize> = (0..4)
            .map(|_| r.publish(msg("a", Delivery::AtMostOnce), now).queued)
            .collect();
        assert_eq!(counts, [1, 1, 0, 0]);
        assert_eq!(
            s.take_drop_stats(),
            DropStats {
                messages: 2,
                qos0: 2
            }
        );
    }

    #[test]
    fn cross_dialect_delivery() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let m = r.open_session();
        let n = r.open_session();
        let a = r.open_session();
        r.subscribe(m.id(), mqtt("sensors/+/temp"), opts(Delivery::AtMostOnce));
        r.subscribe(
            n.id(),
            Filter::nats("sensors.*.temp").unwrap(),
            opts(Delivery::AtMostOnce),
        );
        r.subscribe(
            a.id(),
            Filter::amqp_topic("sensors.#").unwrap(),
            opts(Delivery::AtMostOnce),
        );
        let from_nats = Message {
            subject: Subject::new("sensors.kitchen.temp").unwrap(),
            ..Message::default()
        };
        assert_eq!(r.publish(from_nats, now).queued, 3);
        assert_eq!(
            drain(&m)[0].message.subject.to_mqtt_topic(),
            "sensors/kitchen/temp"
        );
        assert!(format!("{r:?}").contains("sessions: 3"));
    }

    #[test]
    fn shared_group_prefers_connected_members() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let parked = r.open_session();
        let online = r.open_session();
        online.set_connection(9);
        r.subscribe(parked.id(), mqtt("a"), shared("g", Delivery::AtMostOnce));
        r.subscribe(online.id(), mqtt("a"), shared("g", Delivery::AtMostOnce));
        for _ in 0..4 {
            r.publish(msg("a", Delivery::AtMostOnce), now);
        }
        assert_eq!((parked.len(), online.len()), (0, 4));
    }

    #[test]
    fn publish_counts_matches_even_when_outboxes_are_full() {
        let now = Now::current();
        let r = Router::new(
            OutboxLimits {
                max_messages: 1,
                max_bytes: 1 << 20,
            },
            RETAINED,
            DEFAULT_VHOST_LIMITS,
        );
        let s = r.open_session();
        r.subscribe(s.id(), mqtt("a"), opts(Delivery::AtMostOnce));
        r.publish(msg("a", Delivery::AtMostOnce), now);
        let routed = r.publish(msg("a", Delivery::AtMostOnce), now);
        assert_eq!(
            routed,
            Routed {
                matched: 1,
                queued: 0,
                rejected: 0,
                ..Routed::default()
            }
        );
        assert_eq!(
            r.publish(msg("b", Delivery::AtMostOnce), now),
            Routed::default()
        );
    }

    #[test]
    fn closing_a_member_hands_its_group_messages_to_another() {
        let now = Now::current();
        let r = Router::new(ROOMY, RETAINED, DEFAULT_VHOST_LIMITS);
        let leaving = r.open_session();
        let staying = r.open_session();
        let plain = r.open_session();
        r.subscribe(leaving.id(), mqtt("a"), shared("g", Delivery::AtLeastOnce));
        r.subscribe(plain.id(), mqtt("a"), opts(Delivery::AtLeastOnce));
        for _ in 0..2 {
            r.publish(msg("a", Delivery::AtLeastOnce), now);
        }
        // One is "in flight" (popped by the front), one still queued.
        let in_flight = leaving.pop().unwrap();
        assert!(in_flight.share.is_some());
        r.subscribe(staying.id(), mqtt("a"), shared("g", Delivery::AtLeastOnce));
        r.close_session_with(leaving.id(), vec![in_flight]);
        assert_eq!(staying.len(), 2);
        // A plain subscriber's messages are not handed to anyone.
        r.close_session(plain.id());
        assert_eq!(staying.len(), 2);
    }
}
