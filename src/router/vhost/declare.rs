//! Declaring and deleting exchanges, queues and bindings, with RabbitMQ's
//! equivalence rules and reserved names; the lifetimes of queues (exclusive,
//! auto-delete, `x-expires`) and of auto-delete exchanges.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::exchanges::{BindArgs, Binding, Dest, Exchange, ExchangeSpec};
use super::{
    default_exchange_refused, not_found, predeclared, Exchanges, VhostError, AMQ_TOPIC,
    REPLY_TO_PREFIX,
};
use crate::router::journal::Record;
use crate::router::message::{ConnId, Now};
use crate::router::queues::{Dead, Overflow, Queue, QueueSpec, QueueStore, QueueType};
use crate::router::subject::Filter;
use crate::router::{Router, Target, TargetKey};

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
        (
            "x-single-active-consumer",
            a.single_active_consumer.to_string(),
            b.single_active_consumer.to_string(),
        ),
        (
            "x-queue-type",
            a.queue_type.as_str().to_owned(),
            b.queue_type.as_str().to_owned(),
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
        if ex.map.len() >= self.vhost.limits.max_exchanges {
            return Err(VhostError::TooMany("exchanges"));
        }
        if spec.durable {
            self.record(|| Record::ExchangeDeclared {
                name: name.to_owned(),
                spec: spec.clone(),
            });
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
                for b in e.bindings.iter().filter(|b| b.durable) {
                    self.record(|| Record::Unbound(b.record(&name)));
                }
                if e.spec.durable {
                    self.record(|| Record::ExchangeDeleted { name: name.clone() });
                }
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
                if rm && b.durable {
                    self.record(|| Record::Unbound(b.record(name)));
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
            let topic = ex.map.get(AMQ_TOPIC);
            let mut index = self.write();
            for b in topic_removed {
                // Bindings that differ only by arguments share one trie entry.
                let still_bound = topic.is_some_and(|t| {
                    t.bindings
                        .iter()
                        .any(|r| r.dest == b.dest && r.key == b.key)
                });
                if let (Some(f), false) = (b.filter(), still_bound) {
                    index.trie.remove(f, &TargetKey::Bound(b.dest.clone()));
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
        self.bind_recorded(source, dest, routing_key, args, true)
    }

    /// [`Router::bind`]; a durable binding is recorded if `record` (it is not
    /// when it is restored from storage).
    pub(crate) fn bind_recorded(
        &self,
        source: &str,
        dest: Dest,
        routing_key: &str,
        args: BindArgs,
        record: bool,
    ) -> Result<(), VhostError> {
        if source.is_empty() || dest == Dest::Exchange(String::new()) {
            return Err(default_exchange_refused());
        }
        let dest_durable = match &dest {
            Dest::Queue(q) => match self.queues_read().get(q) {
                None => return Err(not_found("queue", q)),
                Some(queue) => queue.store().is_some(),
            },
            Dest::Exchange(_) => false,
        };
        let mut ex = self.exchanges_write();
        let dest_durable = match &dest {
            Dest::Queue(_) => dest_durable,
            Dest::Exchange(x) => match ex.map.get(x) {
                None => return Err(not_found("exchange", x)),
                Some(e) => e.spec.durable,
            },
        };
        let at_limit = ex.bindings >= self.vhost.limits.max_bindings;
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
        // RabbitMQ: a binding is durable when both of its ends are.
        let durable = dest_durable && e.spec.durable;
        let binding = Binding::new(e.spec.kind, dest.clone(), routing_key, args, durable);
        if source == AMQ_TOPIC {
            let filter = Filter::amqp_topic(routing_key).map_err(|err| {
                VhostError::Precondition(format!("invalid routing key '{routing_key}': {err}"))
            })?;
            let key = TargetKey::Bound(dest.clone());
            self.write().trie.insert(&filter, key, Target::Bound(dest));
        }
        if durable && record {
            self.record(|| Record::Bound(binding.record(source)));
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
        let n = self.vhost.name_counter.fetch_add(1, Ordering::Relaxed);
        let a = self.vhost.name_hasher.hash_one((n, now.at, 1u8));
        let b = self.vhost.name_hasher.hash_one((n, now.at, 2u8));
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
        if spec.args.queue_type != QueueType::Classic && !passive {
            // RabbitMQ: quorum and stream queues outlive their declarer.
            let refused = [
                (!spec.durable, "non-durable"),
                (spec.exclusive_owner.is_some(), "exclusive"),
                (spec.auto_delete, "auto-delete"),
            ];
            if let Some((_, property)) = refused.into_iter().find(|(bad, _)| *bad) {
                return Err(VhostError::Precondition(format!(
                    "invalid property '{property}' for queue '{name}' in vhost '/'"
                )));
            }
        }
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
        if queues.len() >= self.vhost.limits.max_queues {
            return Err(VhostError::TooMany("queues"));
        }
        // Exclusive and auto-delete queues end with their connection or consumer:
        // only durable queues that outlive both are stored.
        let stored = spec.durable && spec.exclusive_owner.is_none() && !spec.auto_delete;
        let store = self.journal.as_ref().filter(|_| stored).map(|journal| {
            let id = journal.next_dest_id();
            journal.append(Record::QueueDeclared {
                id,
                name: name.clone(),
                spec: spec.clone(),
            });
            QueueStore {
                journal: journal.clone(),
                id,
            }
        });
        let q = Arc::new(Queue::new(
            name.clone(),
            spec,
            self.vhost.memory.clone(),
            store,
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
    pub(super) fn remove_queue(&self, q: &Arc<Queue>) -> usize {
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
        if let Some(store) = q.store() {
            store.journal.append(Record::QueueDeleted {
                id: store.id,
                name: q.name().to_owned(),
            });
        }
        q.delete()
    }

    /// Drops every ready message of queue `name`; returns how many.
    pub fn purge_queue(&self, name: &str, conn: ConnId) -> Result<usize, VhostError> {
        Ok(self.queue(name, conn)?.purge())
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

    /// Queues declared.
    pub fn queue_count(&self) -> usize {
        self.queues_read().len()
    }

    /// Every declared queue, by name.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        let mut queues: Vec<_> = self.queues_read().values().cloned().collect();
        queues.sort_by(|a, b| a.name().cmp(b.name()));
        queues
    }
}
