//! The one virtual host `/`: the exchange and queue registries, and the
//! [`Router`] methods over them (declare, bind, publish through exchanges,
//! consume, dead-lettering).
//!
//! Owns: RabbitMQ's semantics for declarations and their equivalence, routing
//! through exchanges (exchange-to-exchange bindings breadth first, alternate
//! exchanges), the link between `amq.topic` and the shared subject space
//! (bindings of `amq.topic` live in the router's trie as `Target::Bound`), and
//! dead-lettering (an iterative work list, with RabbitMQ's cycle rule).
//! Refuses: AMQP wire types, delivery tags and acknowledgements (the front's),
//! clocks (time comes in as [`Now`]).
//!
//! Locking (docs/locks.md): `vhost.exchanges` -> `router.index`;
//! `vhost.queues` alone; `queue.state` -> `outlet.items`. Publishing collects
//! destinations under `vhost.exchanges` (read) or `router.index` (read), releases
//! them, resolves queue names under `vhost.queues` (read), releases it, and only
//! then pushes into queues.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::deaths::{self, DeathReason};
use super::exchanges::{
    topic_matches, BindArgs, Binding, Dest, Exchange, ExchangeKind, ExchangeSpec,
};
use super::message::{ConnId, Message, Now};
use super::queues::{
    ConsumerId, ConsumerSpec, Dead, Entry, Outlet, OutletItem, Overflow, Queue, QueueSpec,
};
use super::subject::{Filter, Subject};
use super::{Routed, Router, Target};

/// Bounds on the vhost's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VhostLimits {
    /// Queues at once.
    pub max_queues: usize,
    /// Exchanges at once (the predeclared ones included).
    pub max_exchanges: usize,
    /// Bindings at once.
    pub max_bindings: usize,
}

/// Defaults for [`VhostLimits`].
pub const DEFAULT_VHOST_LIMITS: VhostLimits = VhostLimits {
    max_queues: 10_000,
    max_exchanges: 10_000,
    max_bindings: 100_000,
};

/// Why a vhost operation failed (the comment on each variant is its AMQP reply code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VhostError {
    /// 404.
    #[error("no {kind} '{name}' in vhost '/'")]
    NotFound {
        /// "queue" or "exchange".
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// 405.
    #[error("cannot obtain exclusive access to locked queue '{0}' in vhost '/'")]
    Locked(String),
    /// 406.
    #[error("inequivalent arg '{arg}' for {kind} '{name}' in vhost '/': received '{received}' but current is '{current}'")]
    Inequivalent {
        /// The differing argument.
        arg: String,
        /// "queue" or "exchange".
        kind: &'static str,
        /// Its name.
        name: String,
        /// The value declared now.
        received: String,
        /// The value it has.
        current: String,
    },
    /// 406 (if-unused).
    #[error("{kind} '{name}' in vhost '/' in use")]
    InUse {
        /// "queue" or "exchange".
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// 406 (if-empty).
    #[error("queue '{0}' in vhost '/' not empty")]
    NotEmpty(String),
    /// 403.
    #[error("queue '{0}' in vhost '/' in exclusive use")]
    ExclusiveConsumer(String),
    /// 403.
    #[error("{0}")]
    AccessRefused(String),
    /// 406.
    #[error("{0}")]
    Precondition(String),
    /// 506 (connection error).
    #[error("too many {0}")]
    TooMany(&'static str),
}

const AMQ_TOPIC: &str = "amq.topic";
/// The routing-key prefix of direct reply-to: on the default exchange, a key
/// `amq.rabbitmq.reply-to.<subject>` with no queue of that name goes to
/// `<subject>` in the shared subject space (DESIGN.md, request/reply across
/// protocols).
pub const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";
const PREDECLARED: [(&str, ExchangeKind); 6] = [
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

fn predeclared(name: &str) -> bool {
    PREDECLARED.iter().any(|(n, _)| *n == name)
}

/// The exchange registry.
#[derive(Debug)]
pub(crate) struct Exchanges {
    map: HashMap<String, Exchange>,
    bindings: usize,
}

impl Exchanges {
    pub(crate) fn new() -> Exchanges {
        let map = PREDECLARED
            .iter()
            .map(|(name, kind)| {
                let spec = ExchangeSpec {
                    kind: *kind,
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    alternate_exchange: None,
                };
                (name.to_string(), Exchange::new(spec))
            })
            .collect();
        Exchanges { map, bindings: 0 }
    }
}

/// One routing task of the publish work list.
struct Job {
    msg: Arc<Message>,
    /// The exchange entries record.
    exchange: Arc<str>,
    routing_key: Arc<str>,
    start: Vec<Dest>,
    /// Counted in the returned [`Routed`] (dead letters are not).
    original: bool,
}

fn not_found(kind: &'static str, name: &str) -> VhostError {
    VhostError::NotFound {
        kind,
        name: name.to_owned(),
    }
}

fn default_exchange_refused() -> VhostError {
    VhostError::AccessRefused("operation not permitted on the default exchange".into())
}

fn text<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "none".to_owned(), T::to_string)
}

fn ms(d: &Option<Duration>) -> String {
    text(&d.map(|d| d.as_millis()))
}

fn overflow_text(o: Overflow) -> &'static str {
    match o {
        Overflow::DropHead => "drop-head",
        Overflow::RejectPublish => "reject-publish",
        Overflow::RejectPublishDlx => "reject-publish-dlx",
    }
}

/// The first differing (arg, received, current) between two queue declarations.
fn queue_difference(new: &QueueSpec, old: &QueueSpec) -> Option<(&'static str, String, String)> {
    let (a, b) = (&new.args, &old.args);
    let pairs = [
        ("durable", new.durable.to_string(), old.durable.to_string()),
        (
            "exclusive",
            new.exclusive_owner.is_some().to_string(),
            old.exclusive_owner.is_some().to_string(),
        ),
        (
            "auto_delete",
            new.auto_delete.to_string(),
            old.auto_delete.to_string(),
        ),
        ("x-message-ttl", ms(&a.message_ttl), ms(&b.message_ttl)),
        ("x-expires", ms(&a.expires), ms(&b.expires)),
        ("x-max-length", text(&a.max_length), text(&b.max_length)),
        (
            "x-max-length-bytes",
            text(&a.max_length_bytes),
            text(&b.max_length_bytes),
        ),
        (
            "x-overflow",
            overflow_text(a.overflow).to_owned(),
            overflow_text(b.overflow).to_owned(),
        ),
        (
            "x-dead-letter-exchange",
            text(&a.dead_letter_exchange),
            text(&b.dead_letter_exchange),
        ),
        (
            "x-dead-letter-routing-key",
            text(&a.dead_letter_routing_key),
            text(&b.dead_letter_routing_key),
        ),
        (
            "x-max-priority",
            text(&a.max_priority),
            text(&b.max_priority),
        ),
    ];
    pairs.into_iter().find(|(_, r, c)| r != c)
}

fn exchange_difference(
    new: &ExchangeSpec,
    old: &ExchangeSpec,
) -> Option<(&'static str, String, String)> {
    let pairs = [
        (
            "type",
            new.kind.as_str().to_owned(),
            old.kind.as_str().to_owned(),
        ),
        ("durable", new.durable.to_string(), old.durable.to_string()),
        (
            "auto_delete",
            new.auto_delete.to_string(),
            old.auto_delete.to_string(),
        ),
        (
            "internal",
            new.internal.to_string(),
            old.internal.to_string(),
        ),
        (
            "alternate-exchange",
            text(&new.alternate_exchange),
            text(&old.alternate_exchange),
        ),
    ];
    pairs.into_iter().find(|(_, r, c)| r != c)
}

impl Router {
    fn exchanges_read(&self) -> RwLockReadGuard<'_, Exchanges> {
        self.exchanges.read().unwrap_or_else(|e| e.into_inner())
    }

    fn exchanges_write(&self) -> RwLockWriteGuard<'_, Exchanges> {
        self.exchanges.write().unwrap_or_else(|e| e.into_inner())
    }

    fn queues_read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Queue>>> {
        self.queues.read().unwrap_or_else(|e| e.into_inner())
    }

    fn queues_write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Queue>>> {
        self.queues.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Declares (or checks, when `passive`) exchange `name`.
    pub fn declare_exchange(
        &self,
        name: &str,
        spec: ExchangeSpec,
        passive: bool,
    ) -> Result<(), VhostError> {
        let mut ex = self.exchanges_write();
        if let Some(e) = ex.map.get(name) {
            if passive {
                return Ok(());
            }
            if name.is_empty() {
                return Err(default_exchange_refused());
            }
            if let Some((arg, received, current)) = exchange_difference(&spec, &e.spec) {
                return Err(VhostError::Inequivalent {
                    arg: arg.to_owned(),
                    kind: "exchange",
                    name: name.to_owned(),
                    received,
                    current,
                });
            }
            return Ok(());
        }
        if passive {
            return Err(not_found("exchange", name));
        }
        if name.starts_with("amq.") {
            return Err(VhostError::AccessRefused(format!(
                "exchange name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        if ex.map.len() >= self.vhost.max_exchanges {
            return Err(VhostError::TooMany("exchanges"));
        }
        ex.map.insert(name.to_owned(), Exchange::new(spec));
        Ok(())
    }

    /// The declaration of exchange `name`.
    pub fn exchange(&self, name: &str) -> Option<ExchangeSpec> {
        self.exchanges_read().map.get(name).map(|e| e.spec.clone())
    }

    /// Deletes exchange `name` and every binding from or to it; an absent
    /// exchange is Ok (RabbitMQ 3.10).
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), VhostError> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if predeclared(name) {
            return Err(VhostError::AccessRefused(format!(
                "operation not permitted on exchange '{name}' in vhost '/'"
            )));
        }
        let mut ex = self.exchanges_write();
        let Some(e) = ex.map.get(name) else {
            return Ok(());
        };
        if if_unused && !e.bindings.is_empty() {
            return Err(VhostError::InUse {
                kind: "exchange",
                name: name.to_owned(),
            });
        }
        self.remove_exchange(&mut ex, name);
        Ok(())
    }

    /// Removes an exchange, its bindings, and bindings to it.
    fn remove_exchange(&self, ex: &mut Exchanges, name: &str) {
        // Iterative: removing an exchange can empty an auto-delete exchange bound
        // to it, and so on down a chain as long as max_exchanges.
        let mut doomed = vec![name.to_owned()];
        while let Some(name) = doomed.pop() {
            if let Some(e) = ex.map.remove(&name) {
                ex.bindings -= e.bindings.len();
            }
            let dest = Dest::Exchange(name);
            doomed.extend(self.remove_bindings_only(ex, |_, b| b.dest == dest));
        }
    }

    /// Removes the bindings `remove(source, binding)` selects, from the trie too
    /// for `amq.topic`; auto-delete exchanges left without bindings go as well.
    fn remove_bindings(&self, ex: &mut Exchanges, remove: impl FnMut(&str, &Binding) -> bool) {
        for name in self.remove_bindings_only(ex, remove) {
            self.remove_exchange(ex, &name);
        }
    }

    /// Removes the selected bindings; returns the auto-delete exchanges they left
    /// empty, for the caller to remove.
    fn remove_bindings_only(
        &self,
        ex: &mut Exchanges,
        mut remove: impl FnMut(&str, &Binding) -> bool,
    ) -> Vec<String> {
        let mut topic_removed = Vec::new();
        let mut emptied = Vec::new();
        let mut removed_total = 0;
        for (name, e) in ex.map.iter_mut() {
            let before = e.bindings.len();
            e.bindings.retain(|b| {
                let rm = remove(name, b);
                if rm && name == AMQ_TOPIC {
                    topic_removed.push(b.clone());
                }
                !rm
            });
            let removed = before - e.bindings.len();
            removed_total += removed;
            if removed > 0 && e.bindings.is_empty() && e.spec.auto_delete && !predeclared(name) {
                emptied.push(name.clone());
            }
        }
        ex.bindings -= removed_total;
        if !topic_removed.is_empty() {
            let mut index = self.write();
            for b in topic_removed {
                if let Some(f) = b.filter() {
                    index
                        .trie
                        .remove(f, |t| matches!(t, Target::Bound(d) if *d == b.dest));
                }
            }
        }
        emptied
    }

    /// Binds `dest` to exchange `source`; idempotent.
    pub fn bind(
        &self,
        source: &str,
        dest: Dest,
        routing_key: &str,
        args: BindArgs,
    ) -> Result<(), VhostError> {
        if source.is_empty() || dest == Dest::Exchange(String::new()) {
            return Err(default_exchange_refused());
        }
        if let Dest::Queue(q) = &dest {
            if !self.queues_read().contains_key(q) {
                return Err(not_found("queue", q));
            }
        }
        let mut ex = self.exchanges_write();
        if let Dest::Exchange(x) = &dest {
            if !ex.map.contains_key(x) {
                return Err(not_found("exchange", x));
            }
        }
        let at_limit = ex.bindings >= self.vhost.max_bindings;
        let Some(e) = ex.map.get_mut(source) else {
            return Err(not_found("exchange", source));
        };
        if e.bindings
            .iter()
            .any(|b| b.dest == dest && b.key == routing_key && b.args == args)
        {
            return Ok(());
        }
        if at_limit {
            return Err(VhostError::TooMany("bindings"));
        }
        let binding = Binding::new(e.spec.kind, dest.clone(), routing_key, args);
        if source == AMQ_TOPIC {
            let filter = Filter::amqp_topic(routing_key).map_err(|err| {
                VhostError::Precondition(format!("invalid routing key '{routing_key}': {err}"))
            })?;
            self.write().trie.insert(&filter, Target::Bound(dest));
        }
        e.bindings.push(binding);
        ex.bindings += 1;
        Ok(())
    }

    /// Removes a binding; an absent one is Ok.
    pub fn unbind(
        &self,
        source: &str,
        dest: Dest,
        routing_key: &str,
        args: &BindArgs,
    ) -> Result<(), VhostError> {
        if source.is_empty() || dest == Dest::Exchange(String::new()) {
            return Err(default_exchange_refused());
        }
        let mut ex = self.exchanges_write();
        self.remove_bindings(&mut ex, |s, b| {
            s == source && b.dest == dest && b.key == routing_key && b.args == *args
        });
        Ok(())
    }

    fn server_name(&self, now: Now) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let n = self.name_counter.fetch_add(1, Ordering::Relaxed);
        let a = self.name_hasher.hash_one((n, now.at, 1u8));
        let b = self.name_hasher.hash_one((n, now.at, 2u8));
        let bits = (u128::from(a) << 64) | u128::from(b);
        let mut name = String::from("amq.gen-");
        for i in 0..22 {
            name.push(ALPHABET[((bits >> (i * 6)) & 63) as usize] as char);
        }
        name
    }

    /// Declares (or checks, when `passive`) queue `name` ("" = server-named) for
    /// connection `conn`.
    pub fn declare_queue(
        &self,
        name: &str,
        spec: QueueSpec,
        passive: bool,
        conn: ConnId,
        now: Now,
    ) -> Result<Arc<Queue>, VhostError> {
        let server_named = name.is_empty() && !passive;
        let name = if server_named {
            self.server_name(now)
        } else {
            name.to_owned()
        };
        let mut queues = self.queues_write();
        if let Some(q) = queues.get(&name) {
            if q.spec().exclusive_owner.is_some_and(|o| o != conn) {
                return Err(VhostError::Locked(name));
            }
            if !passive {
                if let Some((arg, received, current)) = queue_difference(&spec, q.spec()) {
                    return Err(VhostError::Inequivalent {
                        arg: arg.to_owned(),
                        kind: "queue",
                        name,
                        received,
                        current,
                    });
                }
            }
            // A passive declare only looks: it does not renew the x-expires lease
            // (RabbitMQ), or polling for a queue's expiry would keep it alive.
            if !passive {
                q.touch(now.at);
            }
            return Ok(q.clone());
        }
        if passive {
            return Err(not_found("queue", &name));
        }
        // Direct reply-to queues are the one exception: the AMQP front names
        // them, exclusive to the consuming connection.
        let reply_to = name.starts_with(REPLY_TO_PREFIX) && spec.exclusive_owner.is_some();
        if !server_named && !reply_to && name.starts_with("amq.") {
            return Err(VhostError::AccessRefused(format!(
                "queue name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        if queues.len() >= self.vhost.max_queues {
            return Err(VhostError::TooMany("queues"));
        }
        let q = Arc::new(Queue::new(
            name.clone(),
            spec,
            self.queued_bytes.clone(),
            now.at,
        ));
        queues.insert(name, q.clone());
        Ok(q)
    }

    /// Queue `name`, if `conn` may use it.
    pub fn queue(&self, name: &str, conn: ConnId) -> Result<Arc<Queue>, VhostError> {
        let q = self
            .queues_read()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found("queue", name))?;
        if q.spec().exclusive_owner.is_some_and(|o| o != conn) {
            return Err(VhostError::Locked(name.to_owned()));
        }
        Ok(q)
    }

    /// Whether a queue `name` exists (whoever may use it).
    pub fn has_queue(&self, name: &str) -> bool {
        self.queues_read().contains_key(name)
    }

    /// Deletes queue `name`; returns its ready count (0 if absent, as RabbitMQ 3.10).
    pub fn delete_queue(
        &self,
        name: &str,
        conn: ConnId,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<usize, VhostError> {
        let q = match self.queue(name, conn) {
            Ok(q) => q,
            Err(VhostError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        if if_unused && q.consumer_count() > 0 {
            return Err(VhostError::InUse {
                kind: "queue",
                name: name.to_owned(),
            });
        }
        if if_empty && q.message_count() > 0 {
            return Err(VhostError::NotEmpty(name.to_owned()));
        }
        Ok(self.remove_queue(&q))
    }

    /// Unregisters `q`, removes its bindings and cancels its consumers.
    fn remove_queue(&self, q: &Arc<Queue>) -> usize {
        {
            let mut queues = self.queues_write();
            if queues.get(q.name()).is_some_and(|r| Arc::ptr_eq(r, q)) {
                queues.remove(q.name());
            }
        }
        {
            let dest = Dest::Queue(q.name().to_owned());
            let mut ex = self.exchanges_write();
            self.remove_bindings(&mut ex, |_, b| b.dest == dest);
        }
        q.delete()
    }

    /// Drops every ready message of queue `name`; returns how many.
    pub fn purge_queue(&self, name: &str, conn: ConnId) -> Result<usize, VhostError> {
        Ok(self.queue(name, conn)?.purge())
    }

    /// Publishes `msg` to `exchange` with `routing_key`.
    pub fn publish_to_exchange(
        &self,
        exchange: &str,
        routing_key: &str,
        mut msg: Message,
        now: Now,
    ) -> Result<Routed, VhostError> {
        match self.exchanges_read().map.get(exchange) {
            None => return Err(not_found("exchange", exchange)),
            Some(e) if e.spec.internal => {
                return Err(VhostError::AccessRefused(format!(
                    "cannot publish to internal exchange '{exchange}' in vhost '/'"
                )))
            }
            Some(_) => {}
        }
        if exchange == AMQ_TOPIC {
            if let Ok(subject) = Subject::new(routing_key) {
                msg.subject = subject;
            }
        }
        let job = Job {
            msg: Arc::new(msg),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            start: vec![Dest::Exchange(exchange.to_owned())],
            original: true,
        };
        Ok(self.run(job, now))
    }

    /// Delivers a subject-space publish to the destinations bound to `amq.topic`
    /// that matched it.
    pub(crate) fn publish_bound(&self, msg: Arc<Message>, dests: Vec<Dest>, now: Now) -> Routed {
        let job = Job {
            exchange: AMQ_TOPIC.into(),
            routing_key: msg.subject.as_str().into(),
            msg,
            start: dests,
            original: true,
        };
        self.run(job, now)
    }

    /// Runs the publish work list: routes a job, queues it, and routes the dead
    /// letters that produces, until none are left.
    fn run(&self, job: Job, now: Now) -> Routed {
        let mut routed = Routed::default();
        let mut jobs = VecDeque::from([job]);
        let mut dead = Dead::new();
        let mut jobs_run = 0usize;
        while let Some(job) = jobs.pop_front() {
            let (queues, sessions) = self.resolve(&job, now);
            if job.original {
                routed.add(sessions);
            }
            if jobs_run >= MAX_JOBS_PER_PUBLISH {
                tracing::warn!(
                    left = jobs.len() + 1,
                    "dead-letter work list too long: remaining dead letters dropped"
                );
                break;
            }
            jobs_run += 1;
            for q in queues {
                if deaths::is_cycle(&job.msg, q.name()) {
                    continue;
                }
                let accepted = q.enqueue(
                    job.msg.clone(),
                    job.exchange.clone(),
                    job.routing_key.clone(),
                    now,
                    &mut dead,
                );
                if job.original {
                    routed.matched += 1;
                    if accepted {
                        routed.queued += 1;
                    } else {
                        routed.rejected += 1;
                    }
                }
                dead_letter_jobs(&q, &mut dead, now, &mut jobs);
            }
        }
        routed
    }

    /// Routes `dead` entries of `q` (dead-lettering), through the work list.
    fn dead_letter(&self, q: &Arc<Queue>, mut dead: Dead, now: Now) {
        if dead.is_empty() {
            return;
        }
        let mut jobs = VecDeque::new();
        dead_letter_jobs(q, &mut dead, now, &mut jobs);
        for job in jobs {
            self.run(job, now);
        }
    }

    /// The queues a job reaches (each once), and the subject-space sessions it was
    /// delivered to on the way.
    fn resolve(&self, job: &Job, now: Now) -> (Vec<Arc<Queue>>, Routed) {
        let mut sessions = Routed::default();
        let mut names: Vec<String> = Vec::new();
        let mut seen_queues: HashSet<String> = HashSet::new();
        let mut visited: HashSet<String> = HashSet::new();
        let mut frontier: VecDeque<Dest> = job.start.iter().cloned().collect();
        let rk: &str = &job.routing_key;
        let mut ae_from = match job.start.as_slice() {
            [Dest::Exchange(x)] => Some(x.clone()),
            _ => None,
        };
        if ae_from.is_none() {
            // Destinations bound to amq.topic: the subject space was already published to.
            visited.insert(AMQ_TOPIC.to_owned());
        }
        loop {
            let mut subject_space = false;
            let mut reply_to = false;
            {
                let ex = self.exchanges_read();
                while let Some(d) = frontier.pop_front() {
                    match d {
                        Dest::Queue(q) => {
                            if seen_queues.insert(q.clone()) {
                                names.push(q);
                            }
                        }
                        Dest::Exchange(x) => {
                            if !visited.insert(x.clone()) {
                                continue;
                            }
                            if x.is_empty() {
                                if rk.starts_with(REPLY_TO_PREFIX)
                                    && !self.queues_read().contains_key(rk)
                                {
                                    reply_to = true;
                                } else {
                                    frontier.push_back(Dest::Queue(rk.to_owned()));
                                }
                            } else if x == AMQ_TOPIC {
                                subject_space = true;
                                if rk.is_empty() {
                                    // No subject has zero words: match bindings here.
                                    if let Some(e) = ex.map.get(AMQ_TOPIC) {
                                        for b in &e.bindings {
                                            if b.filter().is_some_and(|f| topic_matches(f, "")) {
                                                frontier.push_back(b.dest.clone());
                                            }
                                        }
                                    }
                                }
                            } else if let Some(e) = ex.map.get(&x) {
                                let mut out = Vec::new();
                                e.route(rk, &job.msg.headers, &mut out);
                                frontier.extend(out.into_iter().cloned());
                            }
                        }
                    }
                }
                if names.is_empty() && !subject_space && !reply_to {
                    let ae = ae_from
                        .as_deref()
                        .and_then(|x| ex.map.get(x))
                        .and_then(|e| e.spec.alternate_exchange.clone());
                    if let Some(ae) = ae.filter(|ae| !visited.contains(ae)) {
                        frontier.push_back(Dest::Exchange(ae.clone()));
                        ae_from = Some(ae);
                        continue;
                    }
                }
            }
            let subject = if reply_to {
                Subject::new(&rk[REPLY_TO_PREFIX.len()..]).ok()
            } else if subject_space {
                Subject::new(rk).ok()
            } else {
                None
            };
            let Some(subject) = subject else { break };
            let mut msg = (*job.msg).clone();
            msg.subject = subject;
            let (r, bound, _) = self.publish_sessions(msg, now);
            sessions.add(r);
            if reply_to {
                visited.insert(AMQ_TOPIC.to_owned());
            }
            frontier.extend(bound);
            if frontier.is_empty() {
                break;
            }
            // Only once: amq.topic is visited now, so the next pass ends the loop.
            visited.insert(AMQ_TOPIC.to_owned());
            ae_from = None;
        }
        let queues = self.queues_read();
        let found = names
            .iter()
            .filter_map(|n| queues.get(n).cloned())
            .collect();
        (found, sessions)
    }

    /// Starts consuming `queue`; delivers what is ready.
    pub fn consume(
        &self,
        queue: &Arc<Queue>,
        consumer: ConsumerSpec,
        now: Now,
    ) -> Result<(), VhostError> {
        match queue.add_consumer(consumer, now.at) {
            Ok(()) => {}
            Err(true) => return Err(not_found("queue", queue.name())),
            Err(false) => return Err(VhostError::ExclusiveConsumer(queue.name().to_owned())),
        }
        self.kick(queue, now);
        Ok(())
    }

    /// Stops `consumer`; an auto-delete queue losing its last consumer is deleted.
    pub fn cancel(&self, queue: &Arc<Queue>, consumer: ConsumerId, now: Now) {
        if queue.remove_consumer(consumer, now.at) {
            self.remove_queue(queue);
        }
    }

    /// Stops `consumer` and takes back, requeued, what its queue had already handed
    /// to `outlet` for it; returns how many deliveries came back (their credit is
    /// the front's to give back).
    pub fn cancel_consumer(
        &self,
        queue: &Arc<Queue>,
        consumer: ConsumerId,
        outlet: &Outlet,
        now: Now,
    ) -> usize {
        // Removed first, so that nothing more is handed to the outlet for it.
        self.cancel(queue, consumer, now);
        let back = outlet.retract(consumer);
        let n = back.len();
        self.requeue_all(back, now);
        n
    }

    /// A fresh consumer id.
    pub fn next_consumer_id(&self) -> ConsumerId {
        self.next_consumer.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes the next ready entry (basic.get) and the ready count after it.
    pub fn get(&self, queue: &Arc<Queue>, now: Now) -> Option<(Entry, usize)> {
        let mut dead = Dead::new();
        let got = queue.get(now, &mut dead);
        self.dead_letter(queue, dead, now);
        got
    }

    /// Puts `entries` back at the head of `queue`, redelivered, and dispatches.
    pub fn requeue(&self, queue: &Arc<Queue>, entries: Vec<Entry>, now: Now) {
        let mut dead = Dead::new();
        queue.requeue(entries, now, &mut dead);
        self.dead_letter(queue, dead, now);
    }

    /// Puts entries back into their queues (grouped, one requeue per queue).
    pub fn requeue_all(&self, entries: impl IntoIterator<Item = (Arc<Queue>, Entry)>, now: Now) {
        let mut by_queue: Vec<(Arc<Queue>, Vec<Entry>)> = Vec::new();
        for (queue, entry) in entries {
            match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &queue)) {
                Some((_, group)) => group.push(entry),
                None => by_queue.push((queue, vec![entry])),
            }
        }
        for (queue, group) in by_queue {
            self.requeue(&queue, group, now);
        }
    }

    /// Returns a closing connection's unacknowledged entries, and what its outlet
    /// still holds, to their queues: in one requeue per queue, so that they keep
    /// their order.
    pub fn return_unsettled(
        &self,
        unacked: impl IntoIterator<Item = (Arc<Queue>, Entry)>,
        outlet: &Outlet,
        now: Now,
    ) {
        let mut left = Vec::new();
        outlet.drain(&mut left);
        let undelivered = left.into_iter().filter_map(|item| match item {
            OutletItem::Deliver { queue, entry, .. } => Some((queue, entry)),
            OutletItem::Cancelled { .. } => None,
        });
        self.requeue_all(unacked.into_iter().chain(undelivered), now);
    }

    /// Dead-letters `entry` (reason rejected) if `queue` has a dead-letter
    /// exchange, else drops it.
    pub fn reject(&self, queue: &Arc<Queue>, entry: Entry, now: Now) {
        if queue.spec().args.dead_letter_exchange.is_some() {
            self.dead_letter(queue, vec![(entry, DeathReason::Rejected)], now);
        }
    }

    /// Dispatches `queue` (credit or outlet room was freed).
    pub fn kick(&self, queue: &Arc<Queue>, now: Now) {
        let mut dead = Dead::new();
        queue.dispatch(now, &mut dead);
        self.dead_letter(queue, dead, now);
    }

    /// Deletes the queues exclusively owned by `conn`.
    pub fn connection_closed(&self, conn: ConnId, _now: Now) {
        let owned: Vec<Arc<Queue>> = self
            .queues_read()
            .values()
            .filter(|q| q.spec().exclusive_owner == Some(conn))
            .cloned()
            .collect();
        for q in owned {
            self.remove_queue(&q);
        }
    }

    /// Expires (dead-letters) heads and deletes queues unused past `x-expires`.
    pub fn vhost_housekeeping(&self, now: Now) {
        let all: Vec<Arc<Queue>> = self.queues_read().values().cloned().collect();
        for q in all {
            if q.is_unused_expired(now.at) {
                self.remove_queue(&q);
                continue;
            }
            let mut dead = Dead::new();
            q.expire(now, &mut dead);
            self.dead_letter(&q, dead, now);
        }
    }

    /// Memory held by ready messages of all queues.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Queues declared.
    pub fn queue_count(&self) -> usize {
        self.queues_read().len()
    }
}

/// Turns `q`'s dead entries into jobs for its dead-letter exchange.
/// Routing steps one publish may take, dead letters included: a fanout
/// dead-letter exchange over many overflowing queues multiplies them.
const MAX_JOBS_PER_PUBLISH: usize = 10_000;

fn dead_letter_jobs(q: &Queue, dead: &mut Dead, now: Now, jobs: &mut VecDeque<Job>) {
    let args = &q.spec().args;
    let Some(dlx) = &args.dead_letter_exchange else {
        dead.clear();
        return;
    };
    for (entry, reason) in dead.drain(..) {
        let mut msg = (*entry.message).clone();
        deaths::add_death(
            &mut msg,
            q.name(),
            reason,
            &entry.exchange,
            &entry.routing_key,
            now.unix_ms,
        );
        msg.expires_at = None;
        // A dead letter is a new publish of an old message: it must not replace
        // the subject's retained message.
        msg.retain = false;
        let routing_key: Arc<str> = match &args.dead_letter_routing_key {
            Some(k) => k.as_str().into(),
            None => entry.routing_key.clone(),
        };
        if dlx == AMQ_TOPIC {
            if let Ok(s) = Subject::new(&routing_key) {
                msg.subject = s;
            }
        }
        jobs.push_back(Job {
            msg: Arc::new(msg),
            exchange: dlx.as_str().into(),
            routing_key,
            start: vec![Dest::Exchange(dlx.clone())],
            original: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::queues::{Credit, Outlet, OutletItem, QueueArgs};
    use crate::router::{Delivery, OutboxLimits, RetainedLimits, SubOptions};

    fn router() -> Router {
        Router::new(
            OutboxLimits {
                max_messages: 100,
                max_bytes: 1 << 20,
            },
            RetainedLimits {
                max_messages: 100,
                max_bytes: 1 << 20,
            },
            DEFAULT_VHOST_LIMITS,
        )
    }

    fn t0() -> Now {
        Now {
            at: std::time::Instant::now(),
            unix_ms: 1_700_000_000_000,
        }
    }

    fn later(now: Now, ms: u64) -> Now {
        Now {
            at: now.at + Duration::from_millis(ms),
            unix_ms: now.unix_ms + ms,
        }
    }

    fn msg(payload: &'static str) -> Message {
        Message {
            payload: payload.into(),
            ..Message::default()
        }
    }

    fn declare(r: &Router, name: &str, args: QueueArgs, now: Now) -> Arc<Queue> {
        let spec = QueueSpec {
            args,
            ..QueueSpec::default()
        };
        r.declare_queue(name, spec, false, 1, now).unwrap()
    }

    fn exchange(r: &Router, name: &str, kind: ExchangeKind) {
        let spec = ExchangeSpec {
            kind,
            durable: false,
            auto_delete: false,
            internal: false,
            alternate_exchange: None,
        };
        r.declare_exchange(name, spec, false).unwrap();
    }

    fn get_all(r: &Router, q: &Arc<Queue>, now: Now) -> Vec<Entry> {
        std::iter::from_fn(|| r.get(q, now).map(|(e, _)| e)).collect()
    }

    fn payloads(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8(e.message.payload.to_vec()).unwrap())
            .collect()
    }

    fn consumer(
        r: &Router,
        outlet: &Arc<Outlet>,
        credit: u32,
        channel: &Arc<Credit>,
    ) -> ConsumerSpec {
        ConsumerSpec {
            id: r.next_consumer_id(),
            no_ack: false,
            exclusive: false,
            credit: Arc::new(Credit::new(credit)),
            channel_credit: channel.clone(),
            outlet: outlet.clone(),
            priority: 0,
        }
    }

    fn delivered(outlet: &Outlet) -> Vec<(ConsumerId, Entry)> {
        let mut items = Vec::new();
        outlet.drain(&mut items);
        items
            .into_iter()
            .filter_map(|i| match i {
                OutletItem::Deliver {
                    consumer, entry, ..
                } => Some((consumer, entry)),
                OutletItem::Cancelled { .. } => None,
            })
            .collect()
    }

    #[test]
    fn cancel_consumer_takes_back_what_its_outlet_holds_and_leaves_the_rest() {
        let r = router();
        let now = t0();
        let q = declare(&r, "q", QueueArgs::default(), now);
        let other = declare(&r, "other", QueueArgs::default(), now);
        let outlet = Arc::new(Outlet::new(100));
        let channel = Arc::new(Credit::new(0));
        let c = consumer(&r, &outlet, 0, &channel);
        let id = c.id;
        r.consume(&q, c, now).unwrap();
        r.consume(&other, consumer(&r, &outlet, 0, &channel), now)
            .unwrap();
        for p in ["a", "b", "c"] {
            r.publish_to_exchange("", "q", msg(p), now).unwrap();
        }
        r.publish_to_exchange("", "other", msg("kept"), now)
            .unwrap();
        assert_eq!(outlet.len(), 4);
        assert_eq!(r.cancel_consumer(&q, id, &outlet, now), 3);
        // Back in the queue, in order, redelivered; the other consumer's delivery stays.
        let back = get_all(&r, &q, now);
        assert_eq!(payloads(&back), ["a", "b", "c"]);
        assert!(back.iter().all(|e| e.redelivered));
        let left = delivered(&outlet);
        assert_eq!(
            payloads(&left.into_iter().map(|(_, e)| e).collect::<Vec<_>>()),
            ["kept"]
        );
    }

    #[test]
    fn declare_redeclare_and_exclusive_lock() {
        let r = router();
        let now = t0();
        let q = declare(&r, "q", QueueArgs::default(), now);
        assert_eq!(q.name(), "q");
        // Same declaration: the same queue.
        assert!(Arc::ptr_eq(
            &q,
            &declare(&r, "q", QueueArgs::default(), now)
        ));
        let ttl = QueueArgs {
            message_ttl: Some(Duration::from_secs(1)),
            ..QueueArgs::default()
        };
        let err = r
            .declare_queue(
                "q",
                QueueSpec {
                    args: ttl,
                    ..QueueSpec::default()
                },
                false,
                1,
                now,
            )
            .unwrap_err();
        assert!(
            matches!(&err, VhostError::Inequivalent { arg, .. } if arg == "x-message-ttl"),
            "{err}"
        );
        let durable = QueueSpec {
            durable: true,
            ..QueueSpec::default()
        };
        let err = r.declare_queue("q", durable, false, 1, now).unwrap_err();
        assert!(matches!(&err, VhostError::Inequivalent { arg, .. } if arg == "durable"));
        // Passive.
        assert!(r
            .declare_queue("q", QueueSpec::default(), true, 2, now)
            .is_ok());
        assert!(matches!(
            r.declare_queue("nope", QueueSpec::default(), true, 1, now),
            Err(VhostError::NotFound { kind: "queue", .. })
        ));
        // Exclusive: locked for other connections, even passively.
        let excl = QueueSpec {
            exclusive_owner: Some(7),
            ..QueueSpec::default()
        };
        r.declare_queue("x", excl.clone(), false, 7, now).unwrap();
        assert_eq!(
            r.declare_queue("x", QueueSpec::default(), true, 8, now)
                .unwrap_err(),
            VhostError::Locked("x".into())
        );
        assert_eq!(r.queue("x", 8).unwrap_err(), VhostError::Locked("x".into()));
        assert!(r.queue("x", 7).is_ok());
        // Server-named.
        let gen = r
            .declare_queue("", QueueSpec::default(), false, 1, now)
            .unwrap();
        assert!(
            gen.name().starts_with("amq.gen-") && gen.name().len() == 30,
            "{}",
            gen.name()
        );
        // Reserved names.
        assert!(matches!(
            r.declare_queue("amq.q", QueueSpec::default(), false, 1, now),
            Err(VhostError::AccessRefused(_))
        ));
        let spec = ExchangeSpec {
            kind: ExchangeKind::Direct,
            durable: false,
            auto_delete: false,
            internal: false,
            alternate_exchange: None,
        };
        assert!(matches!(
            r.declare_exchange("amq.foo", spec.clone(), false),
            Err(VhostError::AccessRefused(_))
        ));
        r.declare_exchange("e", spec.clone(), false).unwrap();
        let fanout = ExchangeSpec {
            kind: ExchangeKind::Fanout,
            ..spec
        };
        assert!(matches!(
            r.declare_exchange("e", fanout, false),
            Err(VhostError::InUse { .. } | VhostError::Inequivalent { .. })
        ));
        assert!(matches!(
            r.delete_exchange("amq.direct", false),
            Err(VhostError::AccessRefused(_))
        ));
        assert!(r.delete_exchange("absent", false).is_ok());
        assert_eq!(r.delete_queue("absent", 1, false, false), Ok(0));
        assert_eq!(r.queue_count(), 3);
    }

    #[test]
    fn direct_fanout_headers_routing() {
        let r = router();
        let now = t0();
        let a = declare(&r, "a", QueueArgs::default(), now);
        let b = declare(&r, "b", QueueArgs::default(), now);
        // Default exchange.
        let routed = r.publish_to_exchange("", "a", msg("1"), now).unwrap();
        assert_eq!((routed.matched, routed.queued), (1, 1));
        assert_eq!(
            r.publish_to_exchange("", "zz", msg("1"), now)
                .unwrap()
                .matched,
            0
        );
        assert!(matches!(
            r.publish_to_exchange("missing", "a", msg("1"), now),
            Err(VhostError::NotFound {
                kind: "exchange",
                ..
            })
        ));
        r.bind("amq.direct", Dest::Queue("a".into()), "k", vec![])
            .unwrap();
        r.bind("amq.direct", Dest::Queue("a".into()), "k", vec![])
            .unwrap();
        r.bind("amq.direct", Dest::Queue("b".into()), "k", vec![])
            .unwrap();
        assert_eq!(
            r.publish_to_exchange("amq.direct", "k", msg("2"), now)
                .unwrap()
                .queued,
            2
        );
        assert_eq!(
            r.publish_to_exchange("amq.direct", "j", msg("2"), now)
                .unwrap()
                .queued,
            0
        );
        r.bind("amq.fanout", Dest::Queue("b".into()), "", vec![])
            .unwrap();
        assert_eq!(
            r.publish_to_exchange("amq.fanout", "whatever", msg("3"), now)
                .unwrap()
                .queued,
            1
        );
        r.bind(
            "amq.headers",
            Dest::Queue("a".into()),
            "",
            vec![
                ("x-match".into(), Some("any".into())),
                ("h".into(), Some("1".into())),
            ],
        )
        .unwrap();
        let with = |v: &str| Message {
            headers: vec![("h".into(), v.into())],
            ..msg("4")
        };
        assert_eq!(
            r.publish_to_exchange("amq.headers", "", with("1"), now)
                .unwrap()
                .queued,
            1
        );
        assert_eq!(
            r.publish_to_exchange("amq.headers", "", with("2"), now)
                .unwrap()
                .queued,
            0
        );
        assert_eq!(payloads(&get_all(&r, &a, now)), ["1", "2", "4"]);
        let got = get_all(&r, &b, now);
        assert_eq!(payloads(&got), ["2", "3"]);
        assert_eq!(&*got[0].exchange, "amq.direct");
        assert_eq!(&*got[0].routing_key, "k");
        // Unbind.
        r.unbind("amq.direct", Dest::Queue("b".into()), "k", &vec![])
            .unwrap();
        assert_eq!(
            r.publish_to_exchange("amq.direct", "k", msg("5"), now)
                .unwrap()
                .queued,
            1
        );
        // Deleting a queue removes its bindings.
        r.delete_queue("a", 1, false, false).unwrap();
        assert_eq!(
            r.publish_to_exchange("amq.direct", "k", msg("6"), now)
                .unwrap()
                .matched,
            0
        );
        assert!(matches!(
            r.bind("", Dest::Queue("b".into()), "x", vec![]),
            Err(VhostError::AccessRefused(_))
        ));
    }

    #[test]
    fn topic_routing_e2e_cycle_and_alternate() {
        let r = router();
        let now = t0();
        let q = declare(&r, "q", QueueArgs::default(), now);
        let empty = declare(&r, "empty", QueueArgs::default(), now);
        exchange(&r, "t", ExchangeKind::Topic);
        r.bind("t", Dest::Queue("q".into()), "a.*.c", vec![])
            .unwrap();
        r.bind("t", Dest::Queue("q".into()), "a.#", vec![]).unwrap();
        r.bind("t", Dest::Queue("empty".into()), "#", vec![])
            .unwrap();
        let routed = r.publish_to_exchange("t", "a.b.c", msg("1"), now).unwrap();
        assert_eq!(routed.queued, 2, "q once, empty once");
        r.publish_to_exchange("t", "", msg("2"), now).unwrap();
        assert_eq!(q.message_count(), 1);
        assert_eq!(empty.message_count(), 2);
        // Exchange-to-exchange with a cycle.
        exchange(&r, "f1", ExchangeKind::Fanout);
        exchange(&r, "f2", ExchangeKind::Fanout);
        r.bind("f1", Dest::Exchange("f2".into()), "", vec![])
            .unwrap();
        r.bind("f2", Dest::Exchange("f1".into()), "", vec![])
            .unwrap();
        r.bind("f2", Dest::Exchange("t".into()), "", vec![])
            .unwrap();
        let routed = r.publish_to_exchange("f1", "a.x", msg("3"), now).unwrap();
        assert_eq!(routed.queued, 2);
        let got = get_all(&r, &q, now);
        assert_eq!(payloads(&got), ["1", "3"]);
        assert_eq!(&*got[1].exchange, "f1");
        // Alternate exchange for unroutable messages.
        let spec = ExchangeSpec {
            kind: ExchangeKind::Direct,
            durable: false,
            auto_delete: false,
            internal: false,
            alternate_exchange: Some("amq.fanout".into()),
        };
        r.declare_exchange("d", spec, false).unwrap();
        r.bind("amq.fanout", Dest::Queue("q".into()), "", vec![])
            .unwrap();
        assert_eq!(
            r.publish_to_exchange("d", "nothing", msg("4"), now)
                .unwrap()
                .queued,
            1
        );
        assert_eq!(q.message_count(), 1);
        // Deleting an exchange removes bindings to it.
        r.delete_exchange("t", false).unwrap();
        assert_eq!(
            r.publish_to_exchange("f1", "a.x", msg("5"), now)
                .unwrap()
                .matched,
            0
        );
        assert!(matches!(
            r.delete_exchange("f1", true),
            Err(VhostError::InUse { .. })
        ));
    }

    #[test]
    fn amq_topic_shares_the_subject_space() {
        let r = router();
        let now = t0();
        let q = declare(&r, "q", QueueArgs::default(), now);
        let all = declare(&r, "all", QueueArgs::default(), now);
        r.bind(
            "amq.topic",
            Dest::Queue("q".into()),
            "sensors.*.temp",
            vec![],
        )
        .unwrap();
        r.bind("amq.topic", Dest::Queue("q".into()), "sensors.#", vec![])
            .unwrap();
        r.bind("amq.topic", Dest::Queue("all".into()), "#", vec![])
            .unwrap();
        // An MQTT-style publish reaches the queue once.
        let m = Message {
            subject: Subject::from_mqtt_topic("sensors/kitchen/temp").unwrap(),
            ..msg("21.5")
        };
        let routed = r.publish(m, now);
        assert_eq!((routed.matched, routed.queued), (2, 2));
        let got = get_all(&r, &q, now);
        assert_eq!(got.len(), 1);
        assert_eq!(&*got[0].exchange, "amq.topic");
        assert_eq!(&*got[0].routing_key, "sensors.kitchen.temp");
        // An AMQP publish to amq.topic reaches subject-space subscribers.
        let s = r.open_session();
        r.subscribe(
            s.id(),
            Filter::mqtt("sensors/#").unwrap(),
            SubOptions {
                qos: Delivery::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                subscription_id: None,
                share_group: None,
            },
        );
        let routed = r
            .publish_to_exchange("amq.topic", "sensors.x", msg("p"), now)
            .unwrap();
        assert_eq!(routed.queued, 3);
        assert_eq!(s.pop().unwrap().message.subject.as_str(), "sensors.x");
        assert_eq!(q.message_count(), 1);
        // The empty key: only `#` bindings.
        r.publish_to_exchange("amq.topic", "", msg("e"), now)
            .unwrap();
        assert_eq!(all.message_count(), 3);
        // Direct reply-to into the subject space.
        let reply = r.open_session();
        r.subscribe(
            reply.id(),
            Filter::nats("_INBOX.abc").unwrap(),
            SubOptions {
                qos: Delivery::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                subscription_id: None,
                share_group: None,
            },
        );
        let routed = r
            .publish_to_exchange("", "amq.rabbitmq.reply-to._INBOX.abc", msg("r"), now)
            .unwrap();
        // The session, and the queue bound to amq.topic with `#`.
        assert_eq!(routed.queued, 2);
        assert_eq!(reply.len(), 1);
        // Unbinding removes it from the trie.
        r.unbind("amq.topic", Dest::Queue("all".into()), "#", &vec![])
            .unwrap();
        r.unbind("amq.topic", Dest::Queue("q".into()), "sensors.#", &vec![])
            .unwrap();
        r.unbind(
            "amq.topic",
            Dest::Queue("q".into()),
            "sensors.*.temp",
            &vec![],
        )
        .unwrap();
        r.unsubscribe(s.id(), &Filter::mqtt("sensors/#").unwrap(), None);
        r.unsubscribe(reply.id(), &Filter::nats("_INBOX.abc").unwrap(), None);
        assert!(r.read().trie.is_empty());
    }

    #[test]
    fn consume_with_prefetch_round_robin() {
        let r = router();
        let now = t0();
        let q = declare(&r, "q", QueueArgs::default(), now);
        let outlet = Arc::new(Outlet::new(100));
        let channel = Arc::new(Credit::new(0));
        let c1 = consumer(&r, &outlet, 2, &channel);
        let c2 = consumer(&r, &outlet, 2, &channel);
        let (id1, id2) = (c1.id, c2.id);
        let credit1 = c1.credit.clone();
        r.consume(&q, c1, now).unwrap();
        r.consume(&q, c2, now).unwrap();
        for p in ["1", "2", "3", "4", "5", "6"] {
            r.publish_to_exchange("", "q", msg(p), now).unwrap();
        }
        let got = delivered(&outlet);
        let ids: Vec<ConsumerId> = got.iter().map(|(c, _)| *c).collect();
        assert_eq!(ids, [id1, id2, id1, id2]);
        assert_eq!(q.message_count(), 2);
        // Acking one of c1's frees one credit.
        credit1.release(1);
        r.kick(&q, now);
        let got = delivered(&outlet);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, id1);
        assert_eq!(payloads(&[got[0].1.clone()]), ["5"]);
        // Channel credit caps both.
        let q2 = declare(&r, "q2", QueueArgs::default(), now);
        let ch = Arc::new(Credit::new(1));
        r.consume(&q2, consumer(&r, &outlet, 0, &ch), now).unwrap();
        r.consume(&q2, consumer(&r, &outlet, 0, &ch), now).unwrap();
        r.publish_to_exchange("", "q2", msg("a"), now).unwrap();
        r.publish_to_exchange("", "q2", msg("b"), now).unwrap();
        assert_eq!(delivered(&outlet).len(), 1);
        // A full outlet is skipped until kicked.
        let small = Arc::new(Outlet::new(1));
        let q3 = declare(&r, "q3", QueueArgs::default(), now);
        r.consume(&q3, consumer(&r, &small, 0, &Arc::new(Credit::new(0))), now)
            .unwrap();
        r.publish_to_exchange("", "q3", msg("a"), now).unwrap();
        r.publish_to_exchange("", "q3", msg("b"), now).unwrap();
        assert_eq!(delivered(&small).len(), 1);
        r.kick(&q3, now);
        assert_eq!(delivered(&small).len(), 1);
        // Exclusive consumers.
        let ex = ConsumerSpec {
            exclusive: true,
            ..consumer(&r, &outlet, 0, &channel)
        };
        assert_eq!(
            r.consume(&q, ex, now),
            Err(VhostError::ExclusiveConsumer("q".into()))
        );
    }

    #[test]
    fn requeue_keeps_order_and_marks_redelivered() {
        let r = router();
        let now = t0();
        let q = declare(&r, "q", QueueArgs::default(), now);
        for p in ["1", "2", "3", "4"] {
            r.publish_to_exchange("", "q", msg(p), now).unwrap();
        }
        let (e1, left) = r.get(&q, now).unwrap();
        assert_eq!(left, 3);
        let (e2, _) = r.get(&q, now).unwrap();
        let (e3, _) = r.get(&q, now).unwrap();
        assert!(!e1.redelivered);
        r.requeue(&q, vec![e3, e1, e2], now);
        let got = get_all(&r, &q, now);
        assert_eq!(payloads(&got), ["1", "2", "3", "4"]);
        assert_eq!(
            got.iter().map(|e| e.redelivered).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(r.queued_bytes(), 0);
    }

    #[test]
    fn ttl_expiry_dead_letters_with_a_death_record() {
        let r = router();
        let now = t0();
        let dlq = declare(&r, "dlq", QueueArgs::default(), now);
        let args = QueueArgs {
            message_ttl: Some(Duration::from_millis(100)),
            dead_letter_exchange: Some(String::new()),
            dead_letter_routing_key: Some("dlq".into()),
            ..QueueArgs::default()
        };
        let q = declare(&r, "q", args, now);
        r.publish_to_exchange("", "q", msg("old"), now).unwrap();
        assert!(r.queued_bytes() > 0);
        r.vhost_housekeeping(later(now, 50));
        assert_eq!((q.message_count(), dlq.message_count()), (1, 0));
        let t = later(now, 100);
        r.vhost_housekeeping(t);
        assert_eq!((q.message_count(), dlq.message_count()), (0, 1));
        let (e, _) = r.get(&dlq, t).unwrap();
        let d = &deaths::deaths(&e.message)[0];
        assert_eq!(d.queue, "q");
        assert_eq!(d.reason, DeathReason::Expired);
        assert_eq!(d.exchange, "");
        assert_eq!(d.routing_keys, ["q"]);
        assert_eq!(d.count, 1);
        assert_eq!(d.time_ms, t.unix_ms);
        assert_eq!(&*e.routing_key, "dlq");
        // Rejected (no requeue) dead-letters too.
        r.publish_to_exchange("", "q", msg("rej"), t).unwrap();
        let (e, _) = r.get(&q, t).unwrap();
        r.reject(&q, e, t);
        let (e, _) = r.get(&dlq, t).unwrap();
        assert_eq!(deaths::deaths(&e.message)[0].reason, DeathReason::Rejected);
        assert_eq!(r.queued_bytes(), 0);
    }

    #[test]
    fn max_length_drop_head_and_reject_publish() {
        let r = router();
        let now = t0();
        let args = QueueArgs {
            max_length: Some(2),
            ..QueueArgs::default()
        };
        let q = declare(&r, "q", args, now);
        for p in ["1", "2", "3"] {
            assert_eq!(
                r.publish_to_exchange("", "q", msg(p), now).unwrap().queued,
                1
            );
        }
        assert_eq!(payloads(&get_all(&r, &q, now)), ["2", "3"]);
        let args = QueueArgs {
            max_length: Some(2),
            overflow: Overflow::RejectPublish,
            ..QueueArgs::default()
        };
        let q = declare(&r, "rp", args, now);
        let counts: Vec<(usize, usize)> = ["1", "2", "3"]
            .iter()
            .map(|p| {
                let routed = r.publish_to_exchange("", "rp", msg(p), now).unwrap();
                (routed.queued, routed.rejected)
            })
            .collect();
        assert_eq!(counts, [(1, 0), (1, 0), (0, 1)]);
        assert_eq!(payloads(&get_all(&r, &q, now)), ["1", "2"]);
        // A single message over max-length-bytes is dropped.
        let args = QueueArgs {
            max_length_bytes: Some(3),
            ..QueueArgs::default()
        };
        let q = declare(&r, "mb", args, now);
        r.publish_to_exchange("", "mb", msg("toolong"), now)
            .unwrap();
        r.publish_to_exchange("", "mb", msg("ok"), now).unwrap();
        assert_eq!(payloads(&get_all(&r, &q, now)), ["ok"]);
    }

    #[test]
    fn priority_order() {
        let r = router();
        let now = t0();
        let args = QueueArgs {
            max_priority: Some(9),
            ..QueueArgs::default()
        };
        let q = declare(&r, "q", args, now);
        for (p, prio) in [("1", 1), ("9", 9), ("5", 5), ("max", 200)] {
            let m = Message {
                priority: Some(prio),
                ..msg(p)
            };
            r.publish_to_exchange("", "q", m, now).unwrap();
        }
        assert_eq!(payloads(&get_all(&r, &q, now)), ["9", "max", "5", "1"]);
    }

    #[test]
    fn self_dead_letter_cycle_terminates() {
        let r = router();
        let now = t0();
        let args = QueueArgs {
            max_length: Some(1),
            dead_letter_exchange: Some(String::new()),
            ..QueueArgs::default()
        };
        let q = declare(&r, "a", args, now);
        for p in ["1", "2", "3"] {
            r.publish_to_exchange("", "a", msg(p), now).unwrap();
        }
        assert_eq!(q.message_count(), 1);
        // A rejected message may re-enter its own queue (it has a Rejected death).
        let (e, _) = r.get(&q, now).unwrap();
        r.reject(&q, e, now);
        let (e, _) = r.get(&q, now).unwrap();
        assert_eq!(deaths::deaths(&e.message)[0].reason, DeathReason::Rejected);
    }

    #[test]
    fn expiry_cycle_after_a_reject_terminates() {
        // q1 dead-letters into q2, which expires at once into itself: after the
        // client's reject the automatic q2 -> q2 cycle must still be cut.
        let r = router();
        let now = t0();
        let dl_to = |rk: &str, ttl: Option<Duration>| QueueArgs {
            dead_letter_exchange: Some(String::new()),
            dead_letter_routing_key: Some(rk.into()),
            message_ttl: ttl,
            ..QueueArgs::default()
        };
        let q1 = declare(&r, "q1", dl_to("q2", None), now);
        let q2 = declare(&r, "q2", dl_to("q2", Some(Duration::ZERO)), now);
        r.publish_to_exchange("", "q1", msg("m"), now).unwrap();
        let (e, _) = r.get(&q1, now).unwrap();
        r.reject(&q1, e, now);
        r.vhost_housekeeping(now);
        assert_eq!(q2.message_count(), 0);
    }

    #[test]
    fn auto_delete_on_last_cancel_and_exclusive_on_close() {
        let r = router();
        let now = t0();
        let spec = QueueSpec {
            auto_delete: true,
            ..QueueSpec::default()
        };
        let q = r.declare_queue("ad", spec, false, 1, now).unwrap();
        r.bind("amq.direct", Dest::Queue("ad".into()), "k", vec![])
            .unwrap();
        let outlet = Arc::new(Outlet::new(10));
        let ch = Arc::new(Credit::new(0));
        let c1 = consumer(&r, &outlet, 0, &ch);
        let c2 = consumer(&r, &outlet, 0, &ch);
        let (id1, id2) = (c1.id, c2.id);
        r.consume(&q, c1, now).unwrap();
        r.consume(&q, c2, now).unwrap();
        r.cancel(&q, id1, now);
        assert_eq!(r.queue_count(), 1);
        r.cancel(&q, id2, now);
        assert_eq!(r.queue_count(), 0);
        assert_eq!(
            r.publish_to_exchange("amq.direct", "k", msg("x"), now)
                .unwrap()
                .matched,
            0
        );
        // Exclusive queue deleted on its connection's close; its consumer cancelled.
        let spec = QueueSpec {
            exclusive_owner: Some(5),
            ..QueueSpec::default()
        };
        let x = r.declare_queue("x", spec, false, 5, now).unwrap();
        r.consume(&x, consumer(&r, &outlet, 0, &ch), now).unwrap();
        r.connection_closed(6, now);
        assert_eq!(r.queue_count(), 1);
        r.connection_closed(5, now);
        assert_eq!(r.queue_count(), 0);
        let mut items = Vec::new();
        outlet.drain(&mut items);
        assert!(matches!(items.as_slice(), [OutletItem::Cancelled { .. }]));
        // x-expires.
        let args = QueueArgs {
            expires: Some(Duration::from_secs(1)),
            ..QueueArgs::default()
        };
        declare(&r, "lease", args, now);
        r.vhost_housekeeping(later(now, 999));
        assert_eq!(r.queue_count(), 1);
        r.vhost_housekeeping(later(now, 1000));
        assert_eq!(r.queue_count(), 0);
    }
}
