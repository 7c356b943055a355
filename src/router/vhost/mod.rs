//! The RabbitMQ model, one virtual host `/`: exchanges, bindings and the queue
//! registry, a layer over the router's destinations ([`Queue`]s) and its subject
//! space (bindings of `amq.topic` live in the router's trie as `Target::Bound`).
//!
//! Split by concern: [`declare`] (exchanges, queues and bindings, RabbitMQ's
//! equivalence rules, their lifetimes), [`route`] (publishing through exchanges:
//! exchange-to-exchange bindings breadth first, alternate exchanges, the link to
//! the subject space, dead-lettering as an iterative work list with RabbitMQ's
//! cycle rule), [`consume`] (consumers, basic.get, and the settlement of
//! deliveries: ack, requeue, reject), and [`exchanges`] (one exchange's bindings
//! and each kind's matching).
//! Refuses: AMQP wire types and delivery tags (the fronts'), clocks (time comes in
//! as [`Now`](super::Now)).
//!
//! Locking (docs/locks.md): `vhost.exchanges` -> `router.index`;
//! `vhost.queues` alone; `queue.state` -> `outlet.items`. Publishing collects
//! destinations under `vhost.exchanges` (read) or `router.index` (read), releases
//! them, resolves queue names under `vhost.queues` (read), releases it, and only
//! then pushes into queues.

pub mod consume;
pub mod deaths;
pub mod declare;
pub mod exchanges;
pub mod route;

use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use self::exchanges::{Exchange, ExchangeKind, ExchangeSpec};
use super::memory::Memory;
use super::queues::Queue;
use super::Router;

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

pub(super) const AMQ_TOPIC: &str = "amq.topic";
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

pub(super) fn predeclared(name: &str) -> bool {
    PREDECLARED.iter().any(|(n, _)| *n == name)
}

/// The exchange registry.
#[derive(Debug)]
pub(crate) struct Exchanges {
    pub(super) map: HashMap<String, Exchange>,
    pub(super) bindings: usize,
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

/// The state of the one virtual host.
#[derive(Debug)]
pub(crate) struct Vhost {
    limits: VhostLimits,
    exchanges: RwLock<Exchanges>,
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    next_consumer: AtomicU64,
    /// The router's memory ledger, which every queue counts its entries in.
    pub(super) memory: Arc<Memory>,
    name_counter: AtomicU64,
    name_hasher: RandomState,
}

impl Vhost {
    /// The vhost with only the predeclared exchanges, bounded by `limits`.
    pub(crate) fn new(limits: VhostLimits, memory: Arc<Memory>) -> Vhost {
        Vhost {
            limits,
            exchanges: RwLock::new(Exchanges::new()),
            queues: RwLock::new(HashMap::new()),
            next_consumer: AtomicU64::new(1),
            memory,
            name_counter: AtomicU64::new(0),
            name_hasher: RandomState::new(),
        }
    }
}

pub(super) fn not_found(kind: &'static str, name: &str) -> VhostError {
    VhostError::NotFound {
        kind,
        name: name.to_owned(),
    }
}

pub(super) fn default_exchange_refused() -> VhostError {
    VhostError::AccessRefused("operation not permitted on the default exchange".into())
}

// Poisoning only means a thread panicked while holding the lock; the registries
// stay consistent between statements, so keep serving.
impl Router {
    pub(super) fn exchanges_read(&self) -> RwLockReadGuard<'_, Exchanges> {
        self.vhost
            .exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn exchanges_write(&self) -> RwLockWriteGuard<'_, Exchanges> {
        self.vhost
            .exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn queues_read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Queue>>> {
        self.vhost.queues.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn queues_write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Queue>>> {
        self.vhost.queues.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
