//! The live client connections of every wire front, for the operator's view
//! (`/api/connections`, `/metrics`, nats-server's `/connz` and `/varz`) and for
//! closing one by hand: who connected when, from where, as whom, and how many
//! messages and bytes went each way.
//!
//! A front registers its connection when it starts serving it and keeps the
//! [`Registration`]; its state machine counts in plain integers and the shell
//! copies them here once per loop turn, so that no shared counter is touched per
//! message. What ended connections moved is kept in per-protocol totals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::router::SessionId;

/// The protocols whose connections are registered: the four wire protocols, and
/// HTTP (every HTTP listener: Kafka REST, the registry, the operator's and the
/// bus's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Protocol {
    Mqtt,
    Amqp,
    Stomp,
    Nats,
    Http,
}

/// How many [`Protocol`]s there are.
pub(crate) const PROTOCOLS: usize = 5;

impl Protocol {
    pub(crate) const ALL: [Protocol; PROTOCOLS] = [
        Protocol::Mqtt,
        Protocol::Amqp,
        Protocol::Stomp,
        Protocol::Nats,
        Protocol::Http,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Amqp => "amqp",
            Protocol::Stomp => "stomp",
            Protocol::Nats => "nats",
            Protocol::Http => "http",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Messages and bytes a connection received from its client and delivered to
/// it (bytes: payloads only, as nats-server counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) in_msgs: u64,
    pub(crate) in_bytes: u64,
    pub(crate) out_msgs: u64,
    pub(crate) out_bytes: u64,
}

impl Counts {
    pub(crate) fn received(&mut self, bytes: usize) {
        self.in_msgs += 1;
        self.in_bytes += bytes as u64;
    }

    pub(crate) fn delivered(&mut self, bytes: usize) {
        self.out_msgs += 1;
        self.out_bytes += bytes as u64;
    }

    fn add(&mut self, other: Counts) {
        self.in_msgs += other.in_msgs;
        self.in_bytes += other.in_bytes;
        self.out_msgs += other.out_msgs;
        self.out_bytes += other.out_bytes;
    }
}

/// What a client said about itself once it logged in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// The user it logged in as, if the broker has users.
    pub(crate) user: Option<String>,
    /// MQTT client id, NATS `name`, AMQP `connection_name`, STOMP `client-id`.
    pub(crate) name: Option<String>,
    /// NATS `lang` and `version`, AMQP `product` and `version`.
    pub(crate) lang: Option<String>,
    pub(crate) version: Option<String>,
}

/// One live connection, as the registry shows it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) protocol: Protocol,
    pub(crate) peer: SocketAddr,
    /// When it was accepted (wall clock, for display).
    pub(crate) since: SystemTime,
    started: Instant,
    identity: Mutex<Identity>,
    in_msgs: AtomicU64,
    in_bytes: AtomicU64,
    out_msgs: AtomicU64,
    out_bytes: AtomicU64,
    subscriptions: AtomicU64,
    /// Its router session (0: none yet), whose subscriptions it shows.
    session: AtomicU64,
    /// Its message rates over the last sampling period.
    rates: Mutex<Rates>,
    /// Cancelled at shutdown, or when an operator closes this connection.
    closing: CancellationToken,
}

impl Connection {
    pub(crate) fn identity(&self) -> Identity {
        self.identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            in_msgs: self.in_msgs.load(Ordering::Relaxed),
            in_bytes: self.in_bytes.load(Ordering::Relaxed),
            out_msgs: self.out_msgs.load(Ordering::Relaxed),
            out_bytes: self.out_bytes.load(Ordering::Relaxed),
        }
    }

    /// What the front recorded with [`Registration::set_subscriptions`].
    pub(crate) fn recorded_subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Its router session, once it has one.
    pub(crate) fn session(&self) -> Option<SessionId> {
        Some(self.session.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }

    /// Messages per second received and delivered over the last sampling
    /// period.
    pub(crate) fn rates(&self) -> (f64, f64) {
        let r = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        (r.in_per_sec, r.out_per_sec)
    }

    /// How long it has been open.
    pub(crate) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

/// Message rates from the difference of two samples of counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rates {
    last: Counts,
    pub(crate) in_per_sec: f64,
    pub(crate) out_per_sec: f64,
}

impl Rates {
    fn sample(&mut self, now: Counts, seconds: f64) {
        let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
        self.in_per_sec = per_sec(now.in_msgs, self.last.in_msgs);
        self.out_per_sec = per_sec(now.out_msgs, self.last.out_msgs);
        self.last = now;
    }
}

/// Every protocol's connections opened and their traffic, including ended ones.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub(crate) opened: u64,
    pub(crate) counts: Counts,
}

/// The registry of live connections.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By id: ids grow, so this is the order connections came in.
    live: BTreeMap<u64, Arc<Connection>>,
    /// What ended connections moved, and how many were ever opened, per protocol.
    ended: [Totals; PROTOCOLS],
    /// Per protocol, over the last sampling period.
    rates: [Rates; PROTOCOLS],
}

impl Connections {
    /// Registers connection `id` until the returned registration is dropped;
    /// `shutdown` is the broker's (the connection's closing signal follows it).
    pub(crate) fn register(
        self: &Arc<Self>,
        id: u64,
        protocol: Protocol,
        peer: SocketAddr,
        shutdown: &CancellationToken,
    ) -> Registration {
        let connection = Arc::new(Connection {
            id,
            protocol,
            peer,
            since: SystemTime::now(),
            started: Instant::now(),
            identity: Mutex::default(),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            out_msgs: AtomicU64::new(0),
            out_bytes: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
            session: AtomicU64::new(0),
            rates: Mutex::default(),
            closing: shutdown.child_token(),
        });
        let mut inner = self.lock();
        inner.ended[protocol.index()].opened += 1;
        inner.live.insert(id, connection.clone());
        Registration {
            connection,
            registry: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live connections, oldest first.
    pub(crate) fn live(&self) -> Vec<Arc<Connection>> {
        self.lock().live.values().cloned().collect()
    }

    /// Connection `id`, if it is live.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Connection>> {
        self.lock().live.get(&id).cloned()
    }

    /// Asks connection `id` to close (as for shutdown, with its protocol's
    /// goodbye); false if there is no such live connection.
    pub(crate) fn close(&self, id: u64) -> bool {
        match self.get(id) {
            Some(c) => {
                c.closing.cancel();
                true
            }
            None => false,
        }
    }

    /// Adds messages that moved outside any registered connection's counts (the
    /// HTTP bus's requests) to `protocol`'s totals.
    pub(crate) fn count(&self, protocol: Protocol, counts: Counts) {
        self.lock().ended[protocol.index()].counts.add(counts);
    }

    /// Takes a sample of every rate, `seconds` after the last one.
    pub(crate) fn sample(&self, seconds: f64) {
        let seconds = seconds.max(0.001);
        let mut inner = self.lock();
        for c in inner.live.values() {
            let mut rates = c.rates.lock().unwrap_or_else(|p| p.into_inner());
            rates.sample(c.counts(), seconds);
        }
        let totals = inner.totals();
        for (rates, t) in inner.rates.iter_mut().zip(totals) {
            rates.sample(t.counts, seconds);
        }
    }

    /// Per protocol: messages per second received and delivered over the last
    /// sampling period.
    pub(crate) fn rates(&self) -> [(Protocol, Rates); PROTOCOLS] {
        let inner = self.lock();
        Protocol::ALL.map(|p| (p, inner.rates[p.index()]))
    }

    /// Per protocol: connections ever opened and messages moved, live ones
    /// included.
    pub(crate) fn totals(&self) -> [(Protocol, Totals); PROTOCOLS] {
        let totals = self.lock().totals();
        Protocol::ALL.map(|p| (p, totals[p.index()]))
    }
}

impl Inner {
    /// What ended connections moved plus what the live ones have, by protocol
    /// index.
    fn totals(&self) -> [Totals; PROTOCOLS] {
        let mut totals = self.ended;
        for c in self.live.values() {
            totals[c.protocol.index()].counts.add(c.counts());
        }
        totals
    }
}

/// A connection's place in the registry, held by its front while it serves it.
#[derive(Debug)]
pub(crate) struct Registration {
    connection: Arc<Connection>,
    registry: Arc<Connections>,
}

impl Registration {
    pub(crate) fn id(&self) -> u64 {
        self.connection.id
    }

    /// Cancelled at shutdown or when an operator closes the connection.
    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.connection.closing
    }

    /// Whether the connection is closing because an operator asked (not for
    /// shutdown).
    pub(crate) fn closed_by_operator(&self, shutdown: &CancellationToken) -> bool {
        self.connection.closing.is_cancelled() && !shutdown.is_cancelled()
    }

    /// Records the connection's router session.
    pub(crate) fn set_session(&self, session: SessionId) {
        self.connection.session.store(session, Ordering::Relaxed);
    }

    /// Records who the client is (after its login).
    pub(crate) fn identify(&self, identity: Identity) {
        *self
            .connection
            .identity
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = identity;
    }

    /// Publishes the front's running counts (totals since the connection
    /// opened).
    pub(crate) fn record(&self, counts: Counts) {
        let c = &self.connection;
        c.in_msgs.store(counts.in_msgs, Ordering::Relaxed);
        c.in_bytes.store(counts.in_bytes, Ordering::Relaxed);
        c.out_msgs.store(counts.out_msgs, Ordering::Relaxed);
        c.out_bytes.store(counts.out_bytes, Ordering::Relaxed);
    }

    /// Records how many subscriptions the client holds, for fronts that count
    /// them otherwise than the router (NATS: one per sid).
    pub(crate) fn set_subscriptions(&self, subscriptions: usize) {
        self.connection
            .subscriptions
            .store(subscriptions as u64, Ordering::Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.live.remove(&self.connection.id);
        let index = self.connection.protocol.index();
        inner.ended[index].counts.add(self.connection.counts());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_keep_what_ended_connections_moved() {
        let registry = Arc::new(Connections::default());
        let shutdown = CancellationToken::new();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = registry.register(1, Protocol::Nats, peer, &shutdown);
        let b = registry.register(2, Protocol::Nats, peer, &shutdown);
        let mut counts = Counts::default();
        counts.received(10);
        counts.delivered(3);
        a.record(counts);
        b.record(counts);
        assert_eq!(registry.live().len(), 2);
        drop(a);
        assert_eq!(registry.live().len(), 1);
        let nats = registry.totals()[Protocol::Nats.index()].1;
        assert_eq!(nats.opened, 2);
        assert_eq!(nats.counts.in_msgs, 2);
        assert_eq!(nats.counts.in_bytes, 20);
        assert_eq!(nats.counts.out_bytes, 6);
        assert_eq!(registry.totals()[Protocol::Mqtt.index()].1.opened, 0);
    }

    #[test]
    fn rates_are_the_difference_of_two_samples() {
        let registry = Arc::new(Connections::default());
        let shutdown = CancellationToken::new();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = registry.register(1, Protocol::Stomp, peer, &shutdown);
        let mut counts = Counts::default();
        for _ in 0..10 {
            counts.received(1);
        }
        a.record(counts);
        registry.sample(2.0);
        let conn = registry.get(1).unwrap();
        assert_eq!(conn.rates(), (5.0, 0.0));
        let stomp = registry.rates()[Protocol::Stomp.index()].1;
        assert_eq!(stomp.in_per_sec, 5.0);
        registry.sample(1.0);
        assert_eq!(conn.rates(), (0.0, 0.0));
    }

    #[test]
    fn closing_follows_shutdown_and_the_operator() {
        let registry = Arc::new(Connections::default());
        let shutdown = CancellationToken::new();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = registry.register(1, Protocol::Mqtt, peer, &shutdown);
        let b = registry.register(2, Protocol::Mqtt, peer, &shutdown);
        assert!(registry.close(1));
        assert!(!registry.close(9));
        assert!(a.closing().is_cancelled() && a.closed_by_operator(&shutdown));
        assert!(!b.closing().is_cancelled());
        shutdown.cancel();
        assert!(b.closing().is_cancelled() && !b.closed_by_operator(&shutdown));
    }
}
