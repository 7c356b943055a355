//! Listeners, accept loops and graceful shutdown: one listener per protocol built so
//! far, every accepted socket served by its protocol front in its own task.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::access::Access;
use crate::config::{Config, DataDir, Listen, NatsTls};
use crate::connections::{Connections, Protocol, Registration};
use crate::operations;
use crate::protocols::{amqp, http_bus, kafka_rest, mqtt, nats, schema_registry, stomp};
use crate::router::{Now, OutboxLimits, RetainedLimits, Router};
use crate::storage::Storage;
use crate::transport::tls::Certificates;
use crate::transport::Duplex;
use crate::transport::{plain::Plain, tls, websocket};
use crate::Error;

/// How long shutdown waits for connections to say goodbye before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) router: Arc<Router>,
    /// The data directory, unless the broker runs in memory. Declared before
    /// `temporary`: closed before a temporary directory is removed.
    storage: Option<Storage>,
    _temporary: Option<TemporaryDir>,
    pub(crate) mqtt: mqtt::Registry,
    pub(crate) kafka: kafka_rest::State,
    /// The HTTP bus's held subscriptions.
    pub(crate) http_bus: http_bus::Subscriptions,
    pub(crate) registry: schema_registry::Registry,
    pub(crate) shutdown: CancellationToken,
    /// What the TLS listeners present, if any is configured.
    pub(crate) tls: Option<Arc<Certificates>>,
    /// Users and permissions.
    pub(crate) access: Access,
    next_conn: AtomicU64,
    /// Accepted sockets open now (what `max_connections` bounds).
    sockets: AtomicUsize,
    /// The wire fronts' connections, for the operator's view.
    pub(crate) clients: Arc<Connections>,
    /// Sockets refused at `max_connections`, per wire protocol.
    refused: [AtomicU64; crate::connections::PROTOCOLS],
    /// Set once every listener is bound and serving (`/readyz`).
    ready: std::sync::atomic::AtomicBool,
    /// When the broker started (`/varz`, `/api/overview`).
    pub(crate) started: std::time::SystemTime,
    /// Each running listener's name and bound address, once all are bound.
    bound: std::sync::OnceLock<Vec<(&'static str, SocketAddr)>>,
    nats_slow_consumers: AtomicU64,
    server_id: String,
    /// Keys the NATS nonces (random per process).
    nonce_key: std::collections::hash_map::RandomState,
}

/// A data directory created for one run and removed when the broker stops.
#[derive(Debug)]
struct TemporaryDir(std::path::PathBuf);

impl TemporaryDir {
    fn create() -> std::io::Result<TemporaryDir> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let path = std::env::temp_dir().join(format!(
            "dwbroker-{}-{:016x}",
            std::process::id(),
            h.finish()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TemporaryDir(path))
    }
}

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            debug!(dir = %self.0.display(), error = %e, "temporary data dir not removed");
        }
    }
}

impl Context {
    /// Opens the data directory (recovering what it holds into a new router)
    /// and prepares everything connections share; nothing listens yet.
    pub(crate) fn open(config: Config) -> Result<Context, Error> {
        // Before the data dir: a bad certificate stops the start with nothing opened.
        let tls = config
            .tls
            .as_ref()
            .map(Certificates::load)
            .transpose()?
            .map(Arc::new);
        let access = Access::load(&config.auth)
            .map_err(|e| Error::Config(crate::config::ConfigError::Invalid(e)))?;
        let outbox = OutboxLimits {
            max_messages: config.limits.max_queued_messages,
            max_bytes: config.limits.max_queued_bytes,
        };
        let retained = RetainedLimits {
            max_messages: config.limits.max_retained_messages,
            max_bytes: config.limits.max_retained_bytes,
        };
        let router = Router::new(outbox, retained, crate::router::DEFAULT_VHOST_LIMITS);
        router.set_max_stream_bytes(config.limits.max_stream_bytes);
        router
            .memory()
            .set_high_watermark(config.limits.memory_high_watermark);
        let temporary = match &config.data_dir {
            DataDir::Temporary => Some(TemporaryDir::create().map_err(|e| {
                Error::Storage(crate::storage::StorageError::Engine {
                    dir: std::env::temp_dir(),
                    what: "creating a temporary data dir".into(),
                    source: fjall::Error::Io(e),
                })
            })?),
            _ => None,
        };
        let dir = match (&config.data_dir, &temporary) {
            (DataDir::At(dir), _) => Some(dir.clone()),
            (_, Some(t)) => Some(t.0.clone()),
            _ => None,
        };
        let mqtt = mqtt::Registry::default();
        let (router, storage) = match dir {
            None => {
                info!("no data dir: nothing is stored, every queue is transient");
                (router, None)
            }
            Some(dir) => {
                let (storage, recovered) = Storage::open(&dir, config.fsync)?;
                let router = router.with_journal(storage.journal().clone());
                let now = Now::current();
                let (summary, sessions) = recovered.apply(&router, now);
                mqtt.restore(sessions, now.at);
                info!(
                    dir = %dir.display(),
                    fsync = %config.fsync,
                    exchanges = summary.exchanges,
                    queues = summary.queues,
                    messages = summary.messages,
                    bindings = summary.bindings,
                    retained = summary.retained,
                    sessions = summary.sessions,
                    session_messages = summary.session_messages,
                    "data dir opened and recovered"
                );
                (router, Some(storage))
            }
        };
        // After recovery: the registry replays its log stream.
        let registry = schema_registry::Registry::open(&router);
        Ok(Context {
            config,
            router: Arc::new(router),
            storage,
            _temporary: temporary,
            mqtt,
            kafka: kafka_rest::State::default(),
            http_bus: http_bus::Subscriptions::default(),
            registry,
            shutdown: CancellationToken::new(),
            tls,
            access,
            next_conn: AtomicU64::new(1),
            sockets: AtomicUsize::new(0),
            clients: Arc::default(),
            refused: Default::default(),
            ready: Default::default(),
            started: std::time::SystemTime::now(),
            bound: std::sync::OnceLock::new(),
            nats_slow_consumers: AtomicU64::new(0),
            nonce_key: std::collections::hash_map::RandomState::new(),
            server_id: {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u32(std::process::id());
                format!("DW{:016X}", h.finish())
            },
        })
    }

    /// The data directory, unless the broker runs in memory.
    #[cfg(test)]
    pub(crate) fn storage(&self) -> Option<&Storage> {
        self.storage.as_ref()
    }

    /// The storage committer's figures, unless the broker runs in memory.
    pub(crate) fn storage_metrics(&self) -> Option<&crate::storage::CommitMetrics> {
        self.storage.as_ref().map(Storage::metrics)
    }

    /// Commits what storage still holds and stops it (the end of a shutdown).
    pub(crate) fn close_storage(&self) {
        if let Some(storage) = &self.storage {
            storage.close();
        }
    }

    /// A connection id, never 0 (0 marks in-process publishers).
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// A client identifier for a client that sent none: unique within this run and
    /// not guessable, so that nobody can claim another client's assigned session.
    /// Counts a NATS client closed as a slow consumer; returns the total so far.
    pub(crate) fn count_nats_slow_consumer(&self) -> u64 {
        self.nats_slow_consumers.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// NATS clients closed as slow consumers so far.
    pub(crate) fn nats_slow_consumers(&self) -> u64 {
        self.nats_slow_consumers.load(Ordering::Relaxed)
    }

    /// Sockets of `protocol` refused at `max_connections` so far.
    pub(crate) fn refused(&self, protocol: Protocol) -> u64 {
        self.refused[protocol as usize].load(Ordering::Relaxed)
    }

    /// Whether storage is recovered and every listener bound and serving, and
    /// the broker is not stopping.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.shutdown.is_cancelled()
    }

    /// The running listeners and their bound addresses.
    pub(crate) fn listening(&self) -> &[(&'static str, SocketAddr)] {
        self.bound.get().map_or(&[], Vec::as_slice)
    }

    /// The bound address of the listener named `name`, if it runs.
    pub(crate) fn listening_on(&self, name: &str) -> Option<SocketAddr> {
        self.listening()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, at)| *at)
    }

    /// Registers a wire front's connection (its id is the front's `conn_id`).
    pub(crate) fn register(&self, protocol: Protocol, peer: SocketAddr) -> Registration {
        self.clients
            .register(self.next_conn_id(), protocol, peer, &self.shutdown)
    }

    /// The nonce NATS INFO sends connection `conn_id` for an nkey to sign: unique
    /// per connection (a signed CONNECT cannot be replayed on another) and
    /// unpredictable (keyed per process).
    pub(crate) fn nats_nonce(&self, conn_id: u64) -> String {
        use base64::Engine;
        use std::hash::BuildHasher;
        let mut bytes = [0u8; 16];
        for (half, chunk) in bytes.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&self.nonce_key.hash_one((conn_id, half)).to_le_bytes());
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// This broker's id, as NATS clients see it in INFO: stable for the process.
    pub(crate) fn server_id(&self) -> &str {
        &self.server_id
    }

    pub(crate) fn assign_client_id(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS per instance: 64 random bits without
        // another dependency.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.next_conn_id());
        format!("dwbroker-{:016x}-{}", h.finish(), self.next_conn_id())
    }
}

/// Counts a connection while it lives.
struct ConnectionSlot(Arc<Context>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The protocol fronts with a listener.
#[derive(Debug, Clone, Copy)]
enum Front {
    Mqtt,
    Amqp,
    Stomp,
    Nats,
    KafkaRest,
    SchemaRegistry,
    /// Health, metrics, the JSON API and the dashboard.
    Http,
    /// nats-server's monitoring endpoints.
    NatsMonitor,
}

impl Front {
    /// The protocol it speaks.
    fn protocol(self) -> Protocol {
        match self {
            Front::Mqtt => Protocol::Mqtt,
            Front::Amqp => Protocol::Amqp,
            Front::Stomp => Protocol::Stomp,
            Front::Nats => Protocol::Nats,
            Front::KafkaRest | Front::SchemaRegistry | Front::Http | Front::NatsMonitor => {
                Protocol::Http
            }
        }
    }
}

/// The running listeners.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// Each listener's name (as in `Config::listener_list`) and bound address.
    bound: Vec<(&'static str, SocketAddr)>,
    tracker: TaskTracker,
}

/// What a listener's accepted sockets carry before its front sees them.
#[derive(Clone)]
enum Transport {
    Tcp,
    /// A TLS handshake first, then the front.
    Tls(Arc<Certificates>),
    /// The front negotiates TLS itself (NATS: after INFO, as nats-server).
    Negotiated(Arc<Certificates>),
    /// A WebSocket upgrade first, over TCP or (with certificates) TLS.
    WebSocket(&'static websocket::Endpoint, Option<Arc<Certificates>>),
}

/// Binds every configured listener and starts serving.
pub(crate) async fn start(ctx: &Arc<Context>) -> Result<Listeners, Error> {
    // Before any listener: a produce must not create a declared topic first.
    kafka_rest::declare_topics(ctx);
    // Every listener is bound before any serves: if one cannot bind, the ones
    // bound so far are dropped (their ports free again) and nothing was served.
    let mut bound = Vec::new();
    let mut listeners = Vec::new();
    for (name, listen) in ctx.config.listener_list() {
        let Listen::At(addr) = listen else { continue };
        let front = match name {
            "mqtt" | "mqtts" | "mqtt-ws" | "mqtt-wss" => Front::Mqtt,
            "amqp" | "amqps" => Front::Amqp,
            "stomp" | "stomps" | "stomp-ws" | "stomp-wss" => Front::Stomp,
            "nats" | "nats-ws" | "nats-wss" => Front::Nats,
            "kafka-rest" => Front::KafkaRest,
            "schema-registry" => Front::SchemaRegistry,
            "http" => Front::Http,
            "nats-monitor" => Front::NatsMonitor,
            other => {
                debug!(protocol = other, %addr, "listener not started: no such front");
                continue;
            }
        };
        let bind_error = |source| Error::Bind {
            protocol: name,
            addr,
            source,
        };
        let transport = transport_of(name, front, ctx);
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let at = listener.local_addr().map_err(bind_error)?;
        bound.push((name, at));
        listeners.push((name, at, front, transport, listener));
    }
    let _ = ctx.bound.set(bound.clone());
    let tracker = TaskTracker::new();
    for (name, at, front, transport, listener) in listeners {
        info!(protocol = %name, addr = %at, "listening");
        let accepting = accept_loop(listener, front, transport, ctx.clone(), tracker.clone());
        tracker.spawn(accepting);
    }
    tracker.spawn(mqtt::sweeper(ctx.clone()));
    tracker.spawn(housekeeping(ctx.clone()));
    tracker.spawn(queue_housekeeping(ctx.clone()));
    tracker.spawn(kafka_rest::expire_instances(ctx.clone()));
    tracker.spawn(operations::sample_rates(ctx.clone()));
    tracker.spawn(http_bus::expire_subscriptions(ctx.clone()));
    tracker.spawn(nats::jetstream::serve(
        ctx.router.clone(),
        ctx.shutdown.clone(),
    ));
    ctx.ready.store(true, Ordering::Relaxed);
    Ok(Listeners { bound, tracker })
}

/// How often expired retained messages are freed.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// Frees what expires in the router (retained messages) until shutdown.
async fn housekeeping(ctx: Arc<Context>) {
    every(HOUSEKEEPING_INTERVAL, &ctx.shutdown, |now| {
        let freed = ctx.router.remove_expired_retained(now);
        if freed > 0 {
            debug!(freed, "expired retained messages freed");
        }
    })
    .await;
}

/// How often queues drop (or dead-letter) expired messages and expire unused
/// queues: the granularity of message TTLs and x-expires.
const QUEUE_HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);

async fn queue_housekeeping(ctx: Arc<Context>) {
    every(QUEUE_HOUSEKEEPING_INTERVAL, &ctx.shutdown, |now| {
        ctx.router.vhost_housekeeping(now);
    })
    .await;
}

/// Calls `tick` with the current time every `period` until `shutdown`; a late
/// tick is not made up for.
pub(crate) async fn every(
    period: Duration,
    shutdown: &CancellationToken,
    mut tick: impl FnMut(crate::router::Now),
) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => tick(crate::protocols::now()),
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    front: Front,
    transport: Transport,
    ctx: Arc<Context>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = ctx.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let count = ctx.sockets.fetch_add(1, Ordering::Relaxed);
                let slot = ConnectionSlot(ctx.clone());
                if count >= ctx.config.limits.max_connections {
                    ctx.refused[front.protocol() as usize].fetch_add(1, Ordering::Relaxed);
                    warn!(%peer, max = ctx.config.limits.max_connections, "connection refused: max_connections reached");
                    continue;
                }
                // Nagle would hold small acks and publishes for up to 40 ms.
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(%peer, error = %e, "TCP_NODELAY not set");
                }
                let connection = serve(front, transport.clone(), stream, peer, ctx.clone());
                tracker.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the connections of the listener named `name` arrive on. (`Config::validate`
/// refuses a TLS listener without a certificate.)
fn transport_of(name: &str, front: Front, ctx: &Context) -> Transport {
    let secure = ctx.tls.clone().filter(|_| ctx.config.is_tls_listener(name));
    if name.ends_with("-ws") || name.ends_with("-wss") {
        let endpoint = match front {
            Front::Mqtt => &websocket::MQTT,
            Front::Nats => &websocket::NATS,
            _ => &websocket::STOMP,
        };
        return Transport::WebSocket(endpoint, secure);
    }
    match (secure, &ctx.tls) {
        (Some(tls), _) => Transport::Tls(tls),
        (None, Some(tls)) if name == "nats" && ctx.config.nats_tls != NatsTls::Off => {
            Transport::Negotiated(tls.clone())
        }
        _ => Transport::Tcp,
    }
}

/// One connection's task, boxed: a task is as large as its future, and an idle
/// MQTT client should pay neither for another front's state nor for the arguments.
fn serve(
    front: Front,
    transport: Transport,
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let local = stream.local_addr().ok();
    match transport {
        Transport::Tcp => serve_over(front, Plain::new(stream, peer), peer, local, ctx),
        Transport::Tls(tls) => Box::pin(async move {
            let timeout = ctx.config.limits.connect_timeout;
            if let Some(stream) = tls::handshake(&tls, stream, peer, &front, timeout).await {
                serve_over(front, stream, peer, local, ctx).await;
            }
        }),
        Transport::Negotiated(tls) => {
            Box::pin(nats::serve_negotiated(stream, peer, local, tls, ctx))
        }
        Transport::WebSocket(endpoint, None) => Box::pin(async move {
            let stream = Plain::new(stream, peer);
            if let Some(ws) = upgrade(stream, endpoint, peer, front, &ctx).await {
                serve_over(front, ws, peer, local, ctx).await;
            }
        }),
        Transport::WebSocket(endpoint, Some(tls)) => Box::pin(async move {
            let timeout = ctx.config.limits.connect_timeout;
            let Some(stream) = tls::handshake(&tls, stream, peer, &front, timeout).await else {
                return;
            };
            if let Some(ws) = upgrade(stream, endpoint, peer, front, &ctx).await {
                serve_over(front, ws, peer, local, ctx).await;
            }
        }),
    }
}

/// The WebSocket upgrade of a connection to a WebSocket listener; `None` (logged)
/// if it was refused or failed.
async fn upgrade<S: Duplex>(
    stream: S,
    endpoint: &'static websocket::Endpoint,
    peer: SocketAddr,
    front: Front,
    ctx: &Context,
) -> Option<websocket::WsStream<S>> {
    let limits = &ctx.config.limits;
    // A message may carry a whole packet and then some.
    let max_message = limits.max_message_size as usize + 64 * 1024;
    let upgrading = websocket::accept(
        stream,
        endpoint,
        &ctx.config.websocket_origins,
        max_message,
        limits.connect_timeout,
    );
    match upgrading.await {
        Ok(ws) => Some(ws),
        Err(why) => {
            info!(%peer, ?front, why = %why, "WebSocket upgrade failed");
            None
        }
    }
}

/// A front's task over any byte stream.
fn serve_over<S: Duplex>(
    front: Front,
    stream: S,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    ctx: Arc<Context>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    match front {
        Front::Mqtt => Box::pin(mqtt::serve(stream, peer, ctx)),
        Front::Amqp => Box::pin(amqp::serve(stream, peer, ctx)),
        Front::Stomp => Box::pin(stomp::serve(stream, peer, ctx)),
        Front::Nats => Box::pin(nats::serve(stream, peer, local, ctx)),
        Front::KafkaRest => Box::pin(kafka_rest::serve(stream, peer, ctx)),
        Front::SchemaRegistry => Box::pin(schema_registry::serve(stream, peer, ctx)),
        Front::Http => Box::pin(operations::serve(stream, peer, ctx)),
        Front::NatsMonitor => Box::pin(operations::nats_monitor::serve(stream, peer, ctx)),
    }
}

impl Listeners {
    /// The address the listener named `name` (as in `Config::listener_list`) is
    /// bound to, if it runs.
    pub(crate) fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.bound
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, at)| *at)
    }

    /// Stops accepting, tells connected clients the server is going away and waits
    /// (bounded) for their tasks to end.
    pub(crate) async fn shutdown(self, ctx: &Context) {
        ctx.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("shutdown: some connections did not close in time");
        }
    }
}

/// Runs the broker until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> Result<(), Error> {
    let broker = crate::Broker::start(config).await?;
    wait_for_signal(&broker).await;
    info!("shutting down");
    broker.shutdown().await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM; on SIGHUP, reloads the TLS certificates, users
/// and permissions.
async fn wait_for_signal(broker: &crate::Broker) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hangup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hangup.recv() => {
                    match broker.reload_tls() {
                        Ok(true) => info!("SIGHUP: TLS certificates reloaded"),
                        Ok(false) => info!("SIGHUP: no TLS configured, nothing to reload"),
                        Err(e) => warn!(error = %e, "SIGHUP: TLS certificates not reloaded; the previous ones stay"),
                    }
                    match broker.reload_access() {
                        Ok(()) => info!("SIGHUP: users and permissions reloaded"),
                        Err(e) => warn!(error = %e, "SIGHUP: users and permissions not reloaded; the previous ones stay"),
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = broker;
        let _ = tokio::signal::ctrl_c().await;
    }
}
