//! Rebuilding durable state from storage, before any listener accepts: the same
//! structures the router's mutators build, without recording them again.
//!
//! Owns: putting recovered exchanges, queues (with their messages, in order),
//! bindings and retained messages in place. Refuses: reading storage (the
//! storage engine decodes and hands over plain values) and deciding what a
//! recovered message becomes (the engine marks delivered ones redelivered and
//! leaves out expired ones).

use std::sync::Arc;

use super::journal::{BindingRecord, DestId};
use super::message::{Message, Now};
use super::queues::{Entry, Queue, QueueSpec, QueueStore};
use super::vhost::exchanges::{Exchange, ExchangeSpec};
use super::vhost::VhostError;
use super::Router;

impl Router {
    /// Puts a durable exchange back.
    pub(crate) fn restore_exchange(&self, name: &str, spec: ExchangeSpec) {
        self.exchanges_write()
            .map
            .insert(name.to_owned(), Exchange::new(spec));
    }

    /// Puts a durable queue back with its stored messages.
    pub(crate) fn restore_queue(
        &self,
        id: DestId,
        name: &str,
        spec: QueueSpec,
        entries: Vec<Entry>,
        now: Now,
    ) {
        let store = self.journal.as_ref().map(|journal| QueueStore {
            journal: journal.clone(),
            id,
        });
        let queue = Queue::new(
            name.to_owned(),
            spec,
            self.vhost.queued_bytes.clone(),
            store,
            now.at,
        );
        queue.restore(entries);
        self.queues_write().insert(name.to_owned(), Arc::new(queue));
    }

    /// Puts a durable binding back; refused if one of its ends is gone.
    pub(crate) fn restore_binding(&self, b: BindingRecord) -> Result<(), VhostError> {
        self.bind_recorded(&b.source, b.dest, &b.key, b.args, false)
    }

    /// Puts a retained message back.
    pub(crate) fn restore_retained(&self, message: Arc<Message>) {
        self.retained_store().set(message);
    }
}
