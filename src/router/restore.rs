//! Rebuilding durable state from storage, before any listener accepts: the same
//! structures the router's mutators build, without recording them again.
//!
//! Owns: putting recovered exchanges, queues (with their messages, in order),
//! bindings, retained messages and stored sessions in place. Refuses: reading storage (the
//! storage engine decodes and hands over plain values) and deciding what a
//! recovered message becomes (the engine marks delivered ones redelivered and
//! leaves out expired ones).

use std::sync::Arc;

use super::journal::{BindingRecord, DestId};
use super::message::{Dispatch, Message, Now};
use super::queues::{Entry, Queue, QueueSpec, QueueStore};
use super::sessions::{Session, SessionStore};
use super::subject::Filter;
use super::vhost::exchanges::{Exchange, ExchangeSpec};
use super::vhost::VhostError;
use super::{Router, SubOptions};

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
            self.vhost.memory.clone(),
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

/// A front's state for one stored session: (key, value) in key order.
pub type FrontState = Vec<(Box<[u8]>, Box<[u8]>)>;

/// A stored session put back, for its front to take up.
#[derive(Debug)]
pub struct RestoredSession {
    /// The name its front knows it by.
    pub name: String,
    /// Seconds it outlives its connection.
    pub expiry_secs: u32,
    /// The session, subscribed and holding its pending messages.
    pub session: Arc<Session>,
    /// The front's state ([`Session::record_state`]), in key order.
    pub state: FrontState,
}

impl Router {
    /// Puts a stored session back: registered, subscribed, its pending dispatches
    /// queued in order.
    pub(crate) fn restore_session(
        &self,
        id: DestId,
        name: String,
        expiry_secs: u32,
        subscriptions: Vec<(Filter, SubOptions)>,
        pending: Vec<Dispatch>,
        state: FrontState,
    ) -> RestoredSession {
        let store = self.journal.as_ref().map(|journal| SessionStore {
            journal: journal.clone(),
            id,
        });
        let session = self.register(self.limits, store);
        for (filter, opts) in subscriptions {
            self.subscribe_recorded(session.id(), filter, opts, false);
        }
        session.restore(pending);
        RestoredSession {
            name,
            expiry_secs,
            session,
            state,
        }
    }
}
