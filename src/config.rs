//! One `Config` for the whole broker: built from defaults, then a TOML file, then flags.
//!
//! Every limit is a named constant with its documented default, so that the numbers
//! live in one place. This module owns parsing and validation of the configuration;
//! it refuses nothing about protocols and starts nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::storage::Fsync;

/// Default MQTT listener (loopback, like mosquitto 2 without a config file).
pub const DEFAULT_MQTT_ADDR: &str = "127.0.0.1:1883";
/// Default AMQP 0-9-1 listener.
pub const DEFAULT_AMQP_ADDR: &str = "127.0.0.1:5672";
/// Default STOMP listener.
pub const DEFAULT_STOMP_ADDR: &str = "127.0.0.1:61613";
/// Default NATS listener.
pub const DEFAULT_NATS_ADDR: &str = "127.0.0.1:4222";
/// Default Kafka REST Proxy v2 listener.
pub const DEFAULT_KAFKA_REST_ADDR: &str = "127.0.0.1:8082";
/// Default MQTT-over-WebSocket listener (mosquitto's and EMQX's customary 8083).
pub const DEFAULT_MQTT_WS_ADDR: &str = "127.0.0.1:8083";
/// Health, metrics, the JSON API, the dashboard and the HTTP bus.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// nats-server's monitoring endpoints, where its `-m 8222` serves them.
pub const DEFAULT_NATS_MONITOR_ADDR: &str = "127.0.0.1:8222";
/// Default STOMP-over-WebSocket listener (RabbitMQ Web-STOMP's 15674).
pub const DEFAULT_STOMP_WS_ADDR: &str = "127.0.0.1:15674";

/// Largest message (MQTT: whole packet) accepted from a client: 16 MiB, RabbitMQ's default.
/// Announced to MQTT 5 clients as Maximum Packet Size.
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 16 * 1024 * 1024;
/// Open connections across all listeners; beyond it new sockets are closed at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 65_536;
/// Unacknowledged QoS 1/2 messages in each direction of one MQTT connection
/// (announced as Receive Maximum; the client's own Receive Maximum may lower it outbound).
pub const DEFAULT_MAX_INFLIGHT: u16 = 1024;
/// Messages held per session while it is offline or behind (mosquitto's `max_queued_messages`).
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 1000;
/// Payload bytes held per session while it is offline or behind.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;
/// Largest keep alive a client may ask for, in seconds; above it (or for 0) MQTT 5
/// clients are told Server Keep Alive. 65535 = accept whatever the client asks.
pub const DEFAULT_MAX_KEEP_ALIVE: u16 = 65_535;
/// Time a new connection has to complete its protocol handshake (RabbitMQ: 10 s), and an
/// HTTP client to send a request's headers.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest session expiry interval granted to MQTT clients, in seconds (1 day).
pub const DEFAULT_MAX_SESSION_EXPIRY: u32 = 86_400;
/// Sessions (connected or parked) the broker keeps at once; beyond it new MQTT
/// clients are refused with CONNACK 0x97 Quota exceeded (3.1.1: 0x03).
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
/// Subscriptions one session may hold; beyond it SUBACK answers 0x97 (3.1.1: 0x80).
/// Also the subscriptions of one NATS connection and the consumers of one AMQP
/// connection (beyond it: channel.close 406).
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION: usize = 10_000;
/// Topic aliases an MQTT 5 client may set per connection (announced as Topic
/// Alias Maximum; 0 switches client aliases off).
pub const DEFAULT_MAX_TOPIC_ALIAS: u16 = 64;
/// Largest NATS message payload (announced in INFO as max_payload), nats-server's default.
pub const DEFAULT_NATS_MAX_PAYLOAD: u32 = 1024 * 1024;
/// Longest NATS control line, nats-server's `MAX_CONTROL_LINE_SIZE`.
pub const DEFAULT_NATS_MAX_CONTROL_LINE: u32 = 4096;
/// Bytes waiting to be written to one NATS client before it is disconnected as a slow
/// consumer (nats-server's `max_pending`).
pub const DEFAULT_NATS_MAX_PENDING: usize = 64 * 1024 * 1024;
/// Seconds between the server's PINGs to a NATS client (nats-server: 2 minutes).
pub const DEFAULT_NATS_PING_INTERVAL: Duration = Duration::from_secs(120);
/// Unanswered PINGs after which a NATS client is closed as stale (nats-server: 2).
pub const DEFAULT_NATS_MAX_PINGS_OUT: u32 = 2;
/// The largest AMQP frame offered in connection.tune (RabbitMQ's default).
pub const DEFAULT_AMQP_FRAME_MAX: u32 = 131_072;
/// The most AMQP channels per connection offered in connection.tune (RabbitMQ's default).
pub const DEFAULT_AMQP_CHANNEL_MAX: u16 = 2047;
/// The AMQP heartbeat interval offered in connection.tune, in seconds (RabbitMQ's default).
pub const DEFAULT_AMQP_HEARTBEAT: u16 = 60;
/// The longest STOMP command or header line, in bytes (ActiveMQ's limit).
pub const DEFAULT_STOMP_MAX_HEADER_LINE: usize = 10 * 1024;
/// The most headers in one STOMP frame (ActiveMQ's limit).
pub const DEFAULT_STOMP_MAX_HEADERS: usize = 1000;
/// Bytes the router may hold for messages (queued, delivered and not yet settled,
/// in subscriber outboxes, in AMQP content and transactions being received) above
/// which every front holds its publishers back (AMQP connection.blocked; STOMP,
/// MQTT, NATS and HTTP publishers are not read from) until the total falls below
/// 80 % of it. Streams have their own bound (`max_stream_bytes`).
pub const DEFAULT_MEMORY_HIGH_WATERMARK: usize = 1024 * 1024 * 1024;
/// Subjects with a retained message; beyond it new retained messages are
/// delivered but not kept (logged).
pub const DEFAULT_MAX_RETAINED_MESSAGES: usize = 1_000_000;
/// Bytes of retained messages (payload, headers and properties).
pub const DEFAULT_MAX_RETAINED_BYTES: usize = 1024 * 1024 * 1024;
/// Bytes all streams hold together (their messages are held in memory, a `file`
/// stream's on disk too); an append beyond it is refused (JetStream: 503
/// "insufficient resources"). Each stream's own max_bytes/max_msgs/max_age apply
/// within it.
pub const DEFAULT_MAX_STREAM_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Partitions of a Kafka topic created by its first produce.
pub const DEFAULT_KAFKA_PARTITIONS: u32 = 1;
/// A Kafka REST consumer instance unused this long is removed (the proxy's
/// `consumer.instance.timeout.ms`).
pub const DEFAULT_KAFKA_INSTANCE_TIMEOUT: Duration = Duration::from_secs(300);
/// An HTTP bus subscription (a GET with `X-Client-Id`) not polled for this long
/// is removed, with what it held.
pub const DEFAULT_HTTP_SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an AMQP delivery may stay unacknowledged before its channel is closed
/// with 406 (RabbitMQ's `consumer_timeout`, 30 minutes); zero: never.
pub const DEFAULT_AMQP_CONSUMER_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The largest HTTP request body; a larger one is refused with 413 before it is
/// read.
pub const DEFAULT_HTTP_MAX_BODY: usize = 16 * 1024 * 1024;

/// Where durable state lives by default (created on first start).
pub const DEFAULT_DATA_DIR: &str = "./dwbroker-data";

/// Where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDir {
    /// This directory (created if missing).
    At(PathBuf),
    /// A fresh directory under the system's temporary directory, removed when
    /// the broker stops: durable within one run (tests, experiments).
    Temporary,
    /// Nothing is stored: the broker runs in memory, as if every queue were
    /// transient.
    None,
}

impl DataDir {
    /// Parses a directory, or `none`.
    pub fn parse(text: &str) -> DataDir {
        if text.eq_ignore_ascii_case("none") {
            DataDir::None
        } else {
            DataDir::At(PathBuf::from(text))
        }
    }
}

/// Where one protocol listens, or that it is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Bind this address (port 0 picks a free port).
    At(SocketAddr),
    /// Do not start this listener.
    Off,
}

impl Listen {
    /// Parses `HOST:PORT` or `off`.
    pub fn parse(text: &str) -> Result<Listen, ConfigError> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        text.parse().map(Listen::At).map_err(|_| {
            ConfigError::Invalid(format!("listener address {text:?} is not HOST:PORT or off"))
        })
    }
}

/// The listeners of the five protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// MQTT 3.1.1 / 5.0.
    pub mqtt: Listen,
    /// AMQP 0-9-1.
    pub amqp: Listen,
    /// STOMP 1.0-1.2.
    pub stomp: Listen,
    /// NATS client protocol.
    pub nats: Listen,
    /// Confluent Kafka REST Proxy v2 (which also serves the schema registry).
    pub kafka_rest: Listen,
    /// The schema registry alone, for clients configured with a registry URL
    /// of its own (off by default).
    pub schema_registry: Listen,
    /// MQTT over TLS (off by default; conventionally port 8883).
    pub mqtts: Listen,
    /// AMQP 0-9-1 over TLS (off by default; conventionally port 5671).
    pub amqps: Listen,
    /// STOMP over TLS (off by default; conventionally port 61614).
    pub stomps: Listen,
    /// MQTT over WebSocket, path `/mqtt` ([`DEFAULT_MQTT_WS_ADDR`]).
    pub mqtt_ws: Listen,
    /// MQTT over secure WebSocket (off by default).
    pub mqtt_wss: Listen,
    /// STOMP over WebSocket, path `/ws`, as RabbitMQ's Web-STOMP
    /// ([`DEFAULT_STOMP_WS_ADDR`]).
    pub stomp_ws: Listen,
    /// STOMP over secure WebSocket (off by default).
    pub stomp_wss: Listen,
    /// NATS over WebSocket, as nats-server's `websocket` block (off by default).
    pub nats_ws: Listen,
    /// NATS over secure WebSocket (off by default).
    pub nats_wss: Listen,
    /// Health, metrics, the JSON API and the dashboard ([`DEFAULT_HTTP_ADDR`]).
    pub http: Listen,
    /// nats-server's monitoring endpoints ([`DEFAULT_NATS_MONITOR_ADDR`]).
    pub nats_monitor: Listen,
}

/// The server's certificate and key for the TLS listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// PEM file: the certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file: the CA(s) client certificates must chain to; none: clients are not
    /// asked for a certificate.
    pub client_ca: Option<PathBuf>,
    /// Whether a client must present a certificate when `client_ca` is set.
    pub client_auth: ClientAuth,
}

impl Tls {
    /// A server certificate and key, without client certificates.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Tls {
        Tls {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            client_auth: ClientAuth::Required,
        }
    }
}

/// Whether TLS clients must present a certificate (when a client CA is set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client without a certificate is refused in the handshake.
    #[default]
    Required,
    /// A certificate is checked if presented; a client may have none.
    Optional,
}

impl ClientAuth {
    /// Parses `required` or `optional`.
    pub fn parse(text: &str) -> Result<ClientAuth, ConfigError> {
        match text {
            "required" => Ok(ClientAuth::Required),
            "optional" => Ok(ClientAuth::Optional),
            _ => Err(ConfigError::Invalid(format!(
                "tls client_auth {text:?} is not required or optional"
            ))),
        }
    }
}

/// How the NATS listener offers TLS, as nats-server's `tls` block does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NatsTls {
    /// Plain text only.
    #[default]
    Off,
    /// INFO says `tls_required`; the client upgrades after INFO.
    Required,
    /// INFO says `tls_available`; a client may upgrade or stay in plain text.
    Optional,
    /// The client starts with a TLS handshake (nats-server's `handshake_first`).
    First,
}

impl NatsTls {
    /// Parses `off`, `required`, `optional` or `first`.
    pub fn parse(text: &str) -> Result<NatsTls, ConfigError> {
        match text {
            "off" => Ok(NatsTls::Off),
            "required" => Ok(NatsTls::Required),
            "optional" => Ok(NatsTls::Optional),
            "first" => Ok(NatsTls::First),
            _ => Err(ConfigError::Invalid(format!(
                "nats tls {text:?} is not off, required, optional or first"
            ))),
        }
    }
}

/// Limits that bound memory and time per connection and per session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub max_message_size: u32,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_MAX_INFLIGHT`].
    pub max_inflight: u16,
    /// See [`DEFAULT_MAX_QUEUED_MESSAGES`].
    pub max_queued_messages: usize,
    /// See [`DEFAULT_MAX_QUEUED_BYTES`].
    pub max_queued_bytes: usize,
    /// See [`DEFAULT_MAX_KEEP_ALIVE`].
    pub max_keep_alive: u16,
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`DEFAULT_MAX_SESSION_EXPIRY`].
    pub max_session_expiry: u32,
    /// See [`DEFAULT_MAX_SESSIONS`].
    pub max_sessions: usize,
    /// See [`DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION`].
    pub max_subscriptions_per_session: usize,
    /// See [`DEFAULT_MAX_TOPIC_ALIAS`].
    pub max_topic_alias: u16,
    /// See [`DEFAULT_MAX_RETAINED_MESSAGES`].
    pub max_retained_messages: usize,
    /// See [`DEFAULT_MAX_RETAINED_BYTES`].
    pub max_retained_bytes: usize,
    /// See [`DEFAULT_MAX_STREAM_BYTES`].
    pub max_stream_bytes: u64,
    /// See [`DEFAULT_NATS_MAX_PAYLOAD`].
    pub nats_max_payload: u32,
    /// See [`DEFAULT_NATS_MAX_CONTROL_LINE`].
    pub nats_max_control_line: u32,
    /// See [`DEFAULT_NATS_MAX_PENDING`].
    pub nats_max_pending: usize,
    /// See [`DEFAULT_NATS_PING_INTERVAL`].
    pub nats_ping_interval: Duration,
    /// See [`DEFAULT_NATS_MAX_PINGS_OUT`].
    pub nats_max_pings_out: u32,
    /// See [`DEFAULT_AMQP_FRAME_MAX`].
    pub amqp_frame_max: u32,
    /// See [`DEFAULT_AMQP_CHANNEL_MAX`].
    pub amqp_channel_max: u16,
    /// See [`DEFAULT_AMQP_HEARTBEAT`].
    pub amqp_heartbeat: u16,
    /// See [`DEFAULT_STOMP_MAX_HEADER_LINE`].
    pub stomp_max_header_line: usize,
    /// See [`DEFAULT_STOMP_MAX_HEADERS`].
    pub stomp_max_headers: usize,
    /// See [`DEFAULT_MEMORY_HIGH_WATERMARK`].
    pub memory_high_watermark: usize,
    /// See [`DEFAULT_HTTP_MAX_BODY`].
    pub http_max_body: usize,
    /// See [`DEFAULT_KAFKA_INSTANCE_TIMEOUT`].
    pub kafka_instance_timeout: Duration,
    /// See [`DEFAULT_HTTP_SUBSCRIPTION_TIMEOUT`].
    pub http_subscription_timeout: Duration,
    /// See [`DEFAULT_AMQP_CONSUMER_TIMEOUT`].
    pub amqp_consumer_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_keep_alive: DEFAULT_MAX_KEEP_ALIVE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_session_expiry: DEFAULT_MAX_SESSION_EXPIRY,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_subscriptions_per_session: DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION,
            max_topic_alias: DEFAULT_MAX_TOPIC_ALIAS,
            max_retained_messages: DEFAULT_MAX_RETAINED_MESSAGES,
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
            nats_max_payload: DEFAULT_NATS_MAX_PAYLOAD,
            nats_max_control_line: DEFAULT_NATS_MAX_CONTROL_LINE,
            nats_max_pending: DEFAULT_NATS_MAX_PENDING,
            nats_ping_interval: DEFAULT_NATS_PING_INTERVAL,
            nats_max_pings_out: DEFAULT_NATS_MAX_PINGS_OUT,
            amqp_frame_max: DEFAULT_AMQP_FRAME_MAX,
            amqp_channel_max: DEFAULT_AMQP_CHANNEL_MAX,
            amqp_heartbeat: DEFAULT_AMQP_HEARTBEAT,
            stomp_max_header_line: DEFAULT_STOMP_MAX_HEADER_LINE,
            stomp_max_headers: DEFAULT_STOMP_MAX_HEADERS,
            memory_high_watermark: DEFAULT_MEMORY_HIGH_WATERMARK,
            http_max_body: DEFAULT_HTTP_MAX_BODY,
            kafka_instance_timeout: DEFAULT_KAFKA_INSTANCE_TIMEOUT,
            http_subscription_timeout: DEFAULT_HTTP_SUBSCRIPTION_TIMEOUT,
            amqp_consumer_timeout: DEFAULT_AMQP_CONSUMER_TIMEOUT,
        }
    }
}

/// The whole broker configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listener addresses.
    pub listeners: Listeners,
    /// Accept clients without credentials on non-loopback listeners too.
    pub allow_anonymous: bool,
    /// Log filter (`RUST_LOG` syntax), e.g. `info` or `dwbroker=debug`.
    pub log: Option<String>,
    /// Resource limits.
    pub limits: Limits,
    /// Where durable state lives ([`DEFAULT_DATA_DIR`]).
    pub data_dir: DataDir,
    /// When written state is fsynced ([`Fsync::Always`]).
    pub fsync: Fsync,
    /// Partitions of a Kafka topic created by its first produce
    /// ([`DEFAULT_KAFKA_PARTITIONS`]).
    pub kafka_partitions: u32,
    /// Kafka topics created at start (if missing).
    pub kafka_topics: Vec<KafkaTopic>,
    /// The certificate the TLS listeners present (required by any of them).
    pub tls: Option<Tls>,
    /// How the NATS listener offers TLS.
    pub nats_tls: NatsTls,
    /// The HTTP listeners (Kafka REST, schema registry, HTTP, NATS monitoring)
    /// serve HTTPS only.
    pub http_tls: bool,
    /// Origins of the browser pages that may open WebSocket connections (`*`:
    /// any); empty: pages of the host the client connected to.
    pub websocket_origins: Vec<String>,
    /// Users and permissions.
    pub auth: Auth,
}

/// A Kafka topic declared in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTopic {
    /// Its name (also the subject its records are published on).
    pub name: String,
    /// Its partitions ([`DEFAULT_KAFKA_PARTITIONS`] if not given).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Subject filters (NATS syntax) whose publishes it captures besides its own name.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Kafka's `retention.bytes`: the most bytes each partition keeps (the oldest
    /// records go first); none: no limit. Records are held in memory.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Kafka's `retention.ms`: records older than this go; none: no limit.
    #[serde(default)]
    pub retention_ms: Option<u64>,
}

impl KafkaTopic {
    /// What the topic keeps.
    pub fn retention(&self) -> Retention {
        Retention {
            bytes: self.retention_bytes,
            age: self.retention_ms.map(Duration::from_millis),
        }
    }
}

/// How much a Kafka topic keeps per partition (none: everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// The most bytes per partition.
    pub bytes: Option<u64>,
    /// The oldest record's age.
    pub age: Option<Duration>,
}

fn default_partitions() -> u32 {
    DEFAULT_KAFKA_PARTITIONS
}

impl Default for Config {
    fn default() -> Self {
        let at = |s: &str| Listen::parse(s).unwrap_or(Listen::Off);
        Config {
            listeners: Listeners {
                mqtt: at(DEFAULT_MQTT_ADDR),
                amqp: at(DEFAULT_AMQP_ADDR),
                stomp: at(DEFAULT_STOMP_ADDR),
                nats: at(DEFAULT_NATS_ADDR),
                kafka_rest: at(DEFAULT_KAFKA_REST_ADDR),
                schema_registry: Listen::Off,
                mqtts: Listen::Off,
                amqps: Listen::Off,
                stomps: Listen::Off,
                mqtt_ws: at(DEFAULT_MQTT_WS_ADDR),
                mqtt_wss: Listen::Off,
                stomp_ws: at(DEFAULT_STOMP_WS_ADDR),
                stomp_wss: Listen::Off,
                nats_ws: Listen::Off,
                nats_wss: Listen::Off,
                http: at(DEFAULT_HTTP_ADDR),
                nats_monitor: at(DEFAULT_NATS_MONITOR_ADDR),
            },
            allow_anonymous: false,
            log: None,
            limits: Limits::default(),
            data_dir: DataDir::At(PathBuf::from(DEFAULT_DATA_DIR)),
            fsync: Fsync::default(),
            kafka_partitions: DEFAULT_KAFKA_PARTITIONS,
            kafka_topics: Vec::new(),
            tls: None,
            nats_tls: NatsTls::Off,
            http_tls: false,
            websocket_origins: Vec::new(),
            auth: Auth::default(),
        }
    }
}

/// Users and permissions (`[auth]`): see "Transports and access" in the design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The password file `dwbroker passwd` writes (`user:argon2id-hash` lines).
    pub password_file: Option<PathBuf>,
    /// Users declared in the configuration, by name.
    pub users: BTreeMap<String, UserSpec>,
    /// What anonymous clients get once users exist.
    pub anonymous: Anonymous,
    /// Permissions by user. None at all: every user may do everything; otherwise
    /// a user without an entry may do nothing.
    pub permissions: BTreeMap<String, PermissionSpec>,
    /// The configuration file whose `[auth]` users, anonymous rule and
    /// permissions a reload (SIGHUP) reads again.
    pub reload_from: Option<PathBuf>,
    /// Which name of a client certificate is its user.
    pub certificate_identity: CertificateIdentity,
    /// The MQTT 5 SUBACK reason code of a subscription the rules refuse: 0x87
    /// Not authorized (the default), or 0x80 Unspecified error for clients
    /// that know no other failure (`[auth] mqtt5_refused_subscription = 128`).
    pub mqtt5_refused_subscription: u8,
}

/// SUBACK's Not authorized.
const NOT_AUTHORIZED: u8 = 0x87;

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            password_file: None,
            users: BTreeMap::new(),
            anonymous: Anonymous::default(),
            permissions: BTreeMap::new(),
            reload_from: None,
            certificate_identity: CertificateIdentity::default(),
            mqtt5_refused_subscription: NOT_AUTHORIZED,
        }
    }
}

impl Auth {
    /// Whether users are configured (a password file or `[auth.users]`).
    pub fn has_users(&self) -> bool {
        self.password_file.is_some() || !self.users.is_empty()
    }
}

/// A user declared in the configuration (`[auth.users.<name>]`): any of a
/// password hash, a NATS nkey and a NATS token hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// An argon2id PHC string (`dwbroker passwd` writes them).
    pub password_hash: Option<String>,
    /// A NATS user nkey (public, `U...`): the client signs the INFO nonce with its
    /// seed, as with nats-server.
    pub nkey: Option<String>,
    /// An argon2id PHC string of a NATS `auth_token` that logs in as this user.
    pub token_hash: Option<String>,
    /// The SCRAM-SHA-256 verifier of the user's password (MQTT 5 enhanced
    /// authentication), as `dwbroker passwd` writes it after the hash.
    pub scram_sha_256: Option<String>,
    /// The user may log in with a client certificate (verified against
    /// `[tls] client_ca`) that names it (see [`Auth::certificate_identity`]).
    #[serde(default)]
    pub certificate: bool,
}

/// Which name of a client certificate is its user (`[auth] certificate_identity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateIdentity {
    /// The subject's common name (`cn`, the default; RabbitMQ's and
    /// mosquitto's choice).
    #[default]
    Cn,
    /// The first subject alternative name: a DNS name, an e-mail address or a
    /// URI (`san`).
    San,
}

/// What anonymous clients get once users exist (`[auth] anonymous`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Anonymous {
    /// They are refused (`anonymous = false`, the default).
    #[default]
    Refused,
    /// They get this user's permissions (`anonymous = "<user>"`).
    As(String),
}

/// One user's permissions (`[auth.permissions.<user>]`): NATS subject filters
/// and `queue:`, `exchange:`, `stream:` name globs; a deny pattern wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSpec {
    /// Subjects and exchanges the user may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Exceptions to `publish`.
    #[serde(default)]
    pub deny_publish: Vec<String>,
    /// Subjects, queues and streams the user may subscribe to or consume from.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Exceptions to `subscribe`.
    #[serde(default)]
    pub deny_subscribe: Vec<String>,
    /// Queues, exchanges and streams the user may declare, delete and bind.
    #[serde(default)]
    pub configure: Vec<String>,
    /// Exceptions to `configure`.
    #[serde(default)]
    pub deny_configure: Vec<String>,
    /// The operator's HTTP views and actions (`/metrics`, `/api/...`, the
    /// dashboard, nats-server's monitoring endpoints).
    #[serde(default)]
    pub admin: bool,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Parser message.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// The TOML file: every key optional, the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    mqtt: Option<String>,
    amqp: Option<String>,
    stomp: Option<String>,
    nats: Option<String>,
    kafka_rest: Option<String>,
    schema_registry: Option<String>,
    mqtts: Option<String>,
    amqps: Option<String>,
    stomps: Option<String>,
    mqtt_ws: Option<String>,
    mqtt_wss: Option<String>,
    stomp_ws: Option<String>,
    stomp_wss: Option<String>,
    nats_ws: Option<String>,
    nats_wss: Option<String>,
    nats_monitor: Option<String>,
    tls: Option<FileTls>,
    http: Option<FileHttp>,
    websocket: Option<FileWebSocket>,
    auth: Option<FileAuth>,
    allow_anonymous: Option<bool>,
    log: Option<String>,
    data_dir: Option<String>,
    fsync: Option<String>,
    kafka_partitions: Option<u32>,
    #[serde(default)]
    kafka_topics: Vec<KafkaTopic>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    client_auth: Option<String>,
    nats: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    password_file: Option<PathBuf>,
    anonymous: Option<FileAnonymous>,
    certificate_identity: Option<CertificateIdentity>,
    mqtt5_refused_subscription: Option<u8>,
    #[serde(default)]
    users: BTreeMap<String, UserSpec>,
    #[serde(default)]
    permissions: BTreeMap<String, PermissionSpec>,
}

/// `anonymous = false` or `anonymous = "<user>"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileAnonymous {
    Allowed(bool),
    As(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebSocket {
    allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    /// The `--http` listener.
    listen: Option<String>,
    tls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_message_size: Option<u32>,
    max_connections: Option<usize>,
    max_inflight: Option<u16>,
    max_queued_messages: Option<usize>,
    max_queued_bytes: Option<usize>,
    max_keep_alive: Option<u16>,
    connect_timeout_secs: Option<u64>,
    max_session_expiry: Option<u32>,
    max_sessions: Option<usize>,
    max_subscriptions_per_session: Option<usize>,
    max_topic_alias: Option<u16>,
    max_retained_messages: Option<usize>,
    max_retained_bytes: Option<usize>,
    max_stream_bytes: Option<u64>,
    nats_max_payload: Option<u32>,
    nats_max_control_line: Option<u32>,
    nats_max_pending: Option<usize>,
    nats_ping_interval_secs: Option<u64>,
    nats_max_pings_out: Option<u32>,
    amqp_frame_max: Option<u32>,
    amqp_channel_max: Option<u16>,
    amqp_heartbeat: Option<u16>,
    stomp_max_header_line: Option<usize>,
    stomp_max_headers: Option<usize>,
    memory_high_watermark: Option<usize>,
    http_max_body: Option<usize>,
    kafka_instance_timeout_secs: Option<u64>,
    http_subscription_timeout_secs: Option<u64>,
    amqp_consumer_timeout_ms: Option<u64>,
}

impl Config {
    /// Applies a TOML configuration file on top of `self`.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        self.auth.reload_from = Some(path.to_owned());
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        self.merge_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: shown,
                message,
            },
            other => other,
        })
    }

    /// Applies TOML text on top of `self`.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            message: e.to_string(),
        })?;
        let listeners = [
            (&mut self.listeners.mqtt, file.mqtt),
            (&mut self.listeners.amqp, file.amqp),
            (&mut self.listeners.stomp, file.stomp),
            (&mut self.listeners.nats, file.nats),
            (&mut self.listeners.kafka_rest, file.kafka_rest),
            (&mut self.listeners.schema_registry, file.schema_registry),
            (&mut self.listeners.mqtts, file.mqtts),
            (&mut self.listeners.amqps, file.amqps),
            (&mut self.listeners.stomps, file.stomps),
            (&mut self.listeners.mqtt_ws, file.mqtt_ws),
            (&mut self.listeners.mqtt_wss, file.mqtt_wss),
            (&mut self.listeners.stomp_ws, file.stomp_ws),
            (&mut self.listeners.stomp_wss, file.stomp_wss),
            (&mut self.listeners.nats_ws, file.nats_ws),
            (&mut self.listeners.nats_wss, file.nats_wss),
            (&mut self.listeners.nats_monitor, file.nats_monitor),
            (
                &mut self.listeners.http,
                file.http.as_ref().and_then(|h| h.listen.clone()),
            ),
        ];
        for (slot, value) in listeners {
            if let Some(text) = value {
                *slot = Listen::parse(&text)?;
            }
        }
        if let Some(t) = file.tls {
            if let Some(mode) = &t.nats {
                self.nats_tls = NatsTls::parse(mode)?;
            }
            let client_auth = match &t.client_auth {
                Some(text) => ClientAuth::parse(text)?,
                None => ClientAuth::default(),
            };
            self.tls = Some(Tls {
                cert: t.cert,
                key: t.key,
                client_ca: t.client_ca,
                client_auth,
            });
        }
        if let Some(origins) = file.websocket.and_then(|w| w.allowed_origins) {
            self.websocket_origins = origins;
        }
        if let Some(tls) = file.http.and_then(|h| h.tls) {
            self.http_tls = tls;
        }
        if let Some(v) = file.allow_anonymous {
            self.allow_anonymous = v;
        }
        if let Some(auth) = file.auth {
            self.merge_auth(auth)?;
        }
        if file.log.is_some() {
            self.log = file.log;
        }
        if let Some(dir) = &file.data_dir {
            self.data_dir = DataDir::parse(dir);
        }
        if let Some(mode) = &file.fsync {
            self.fsync = parse_fsync(mode)?;
        }
        if let Some(n) = file.kafka_partitions {
            self.kafka_partitions = check_partitions(n)?;
        }
        for topic in &file.kafka_topics {
            check_partitions(topic.partitions)?;
        }
        self.kafka_topics.extend(file.kafka_topics);
        let l = file.limits;
        let lim = &mut self.limits;
        set(&mut lim.max_message_size, l.max_message_size);
        set(&mut lim.max_connections, l.max_connections);
        set(&mut lim.max_inflight, l.max_inflight);
        set(&mut lim.max_queued_messages, l.max_queued_messages);
        set(&mut lim.max_queued_bytes, l.max_queued_bytes);
        set(&mut lim.max_keep_alive, l.max_keep_alive);
        set(&mut lim.max_session_expiry, l.max_session_expiry);
        set(&mut lim.max_sessions, l.max_sessions);
        set(
            &mut lim.max_subscriptions_per_session,
            l.max_subscriptions_per_session,
        );
        set(&mut lim.max_topic_alias, l.max_topic_alias);
        set(&mut lim.max_retained_messages, l.max_retained_messages);
        set(&mut lim.max_retained_bytes, l.max_retained_bytes);
        set(&mut lim.max_stream_bytes, l.max_stream_bytes);
        set(&mut lim.http_max_body, l.http_max_body);
        set(
            &mut lim.kafka_instance_timeout,
            l.kafka_instance_timeout_secs.map(Duration::from_secs),
        );
        set(
            &mut lim.http_subscription_timeout,
            l.http_subscription_timeout_secs.map(Duration::from_secs),
        );
        set(
            &mut lim.amqp_consumer_timeout,
            l.amqp_consumer_timeout_ms.map(Duration::from_millis),
        );
        set(&mut lim.nats_max_payload, l.nats_max_payload);
        set(&mut lim.nats_max_control_line, l.nats_max_control_line);
        set(&mut lim.nats_max_pending, l.nats_max_pending);
        set(&mut lim.nats_max_pings_out, l.nats_max_pings_out);
        set(&mut lim.amqp_frame_max, l.amqp_frame_max);
        set(&mut lim.amqp_channel_max, l.amqp_channel_max);
        set(&mut lim.amqp_heartbeat, l.amqp_heartbeat);
        set(&mut lim.stomp_max_header_line, l.stomp_max_header_line);
        set(&mut lim.stomp_max_headers, l.stomp_max_headers);
        set(&mut lim.memory_high_watermark, l.memory_high_watermark);
        if let Some(secs) = l.nats_ping_interval_secs {
            lim.nats_ping_interval = Duration::from_secs(secs);
        }
        if let Some(secs) = l.connect_timeout_secs {
            lim.connect_timeout = Duration::from_secs(secs);
        }
        Ok(())
    }

    /// Checks ranges and the anonymous-access rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        // An MQTT packet cannot exceed 268,435,455 + 5 bytes; smaller than 128 bytes
        // would refuse ordinary CONNECT packets.
        if !(128..=268_435_460).contains(&l.max_message_size) {
            return Err(ConfigError::Invalid(format!(
                "limits.max_message_size {} must be between 128 and 268435460",
                l.max_message_size
            )));
        }
        if l.amqp_frame_max < dwbroker_codecs::amqp::FRAME_MIN_SIZE {
            return Err(ConfigError::Invalid(format!(
                "limits.amqp_frame_max {} must be at least {} (AMQP's frame-min-size)",
                l.amqp_frame_max,
                dwbroker_codecs::amqp::FRAME_MIN_SIZE
            )));
        }
        let at_least_one = [
            ("amqp_channel_max", usize::from(l.amqp_channel_max)),
            ("memory_high_watermark", l.memory_high_watermark),
            ("max_inflight", usize::from(l.max_inflight)),
            ("max_queued_messages", l.max_queued_messages),
            ("max_queued_bytes", l.max_queued_bytes),
            ("max_connections", l.max_connections),
            ("max_keep_alive", usize::from(l.max_keep_alive)),
            ("max_sessions", l.max_sessions),
            (
                "max_subscriptions_per_session",
                l.max_subscriptions_per_session,
            ),
            (
                "connect_timeout_secs",
                usize::from(!l.connect_timeout.is_zero()),
            ),
            ("nats_max_payload", l.nats_max_payload as usize),
            ("nats_max_control_line", l.nats_max_control_line as usize),
            ("nats_max_pending", l.nats_max_pending),
            (
                "nats_ping_interval_secs",
                usize::from(!l.nats_ping_interval.is_zero()),
            ),
            ("nats_max_pings_out", l.nats_max_pings_out as usize),
            ("stomp_max_header_line", l.stomp_max_header_line),
            ("stomp_max_headers", l.stomp_max_headers),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} must be at least 1"
                )));
            }
        }
        if self.tls.is_none() {
            let mut wanting = self
                .listener_list()
                .into_iter()
                .filter(|(name, listen)| Self::is_dedicated_tls(name) && *listen != Listen::Off)
                .map(|(name, _)| format!("the {name} listener"))
                .collect::<Vec<_>>();
            if self.nats_tls != NatsTls::Off {
                wanting.push("NATS TLS".into());
            }
            if self.http_tls {
                wanting.push("HTTPS".into());
            }
            if let Some(first) = wanting.first() {
                return Err(ConfigError::Invalid(format!(
                    "{first} needs a certificate: pass --tls-cert and --tls-key (or [tls] cert and key)"
                )));
            }
        }
        if !self.allow_anonymous && !self.auth.has_users() {
            for (name, listen) in self.listener_list() {
                if let Listen::At(addr) = listen {
                    if !addr.ip().is_loopback() {
                        return Err(ConfigError::Invalid(format!(
                            "the {name} listener on {addr} is not on loopback and no authentication is \
                             configured; pass --password-file (or [auth] password_file) to require users, \
                             or --allow-anonymous (or allow_anonymous = true) to accept anonymous \
                             clients from the network"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn merge_auth(&mut self, file: FileAuth) -> Result<(), ConfigError> {
        let auth = &mut self.auth;
        if file.password_file.is_some() {
            auth.password_file = file.password_file;
        }
        match file.anonymous {
            None | Some(FileAnonymous::Allowed(false)) => {}
            Some(FileAnonymous::Allowed(true)) => return Err(ConfigError::Invalid(
                "[auth] anonymous = true: name the user whose permissions anonymous clients get \
                     (anonymous = \"<user>\"), or false to refuse them"
                    .into(),
            )),
            Some(FileAnonymous::As(user)) => auth.anonymous = Anonymous::As(user),
        }
        if let Some(identity) = file.certificate_identity {
            auth.certificate_identity = identity;
        }
        match file.mqtt5_refused_subscription {
            None => {}
            Some(code @ (0x80 | NOT_AUTHORIZED)) => auth.mqtt5_refused_subscription = code,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "[auth] mqtt5_refused_subscription = {other}: 128 (0x80, Unspecified error) \
                     or 135 (0x87, Not authorized)"
                )))
            }
        }
        auth.users.extend(file.users);
        auth.permissions.extend(file.permissions);
        Ok(())
    }

    /// The listeners with their protocol names, in a fixed order.
    pub fn listener_list(&self) -> [(&'static str, Listen); 17] {
        let l = &self.listeners;
        [
            ("mqtt", l.mqtt),
            ("amqp", l.amqp),
            ("stomp", l.stomp),
            ("nats", l.nats),
            ("kafka-rest", l.kafka_rest),
            ("schema-registry", l.schema_registry),
            ("mqtts", l.mqtts),
            ("amqps", l.amqps),
            ("stomps", l.stomps),
            ("mqtt-ws", l.mqtt_ws),
            ("mqtt-wss", l.mqtt_wss),
            ("stomp-ws", l.stomp_ws),
            ("stomp-wss", l.stomp_wss),
            ("nats-ws", l.nats_ws),
            ("nats-wss", l.nats_wss),
            ("http", l.http),
            ("nats-monitor", l.nats_monitor),
        ]
    }

    /// Whether the listener of [`Config::listener_list`] named `name` is for TLS
    /// clients only (from the first byte).
    pub fn is_tls_listener(&self, name: &str) -> bool {
        Self::is_dedicated_tls(name)
            || self.http_tls
                && matches!(
                    name,
                    "kafka-rest" | "schema-registry" | "http" | "nats-monitor"
                )
    }

    /// The listeners that exist for TLS only.
    fn is_dedicated_tls(name: &str) -> bool {
        matches!(
            name,
            "mqtts" | "amqps" | "stomps" | "mqtt-wss" | "stomp-wss" | "nats-wss"
        )
    }
}

/// Checks a partition count (the config and the flag share the error).
pub fn check_partitions(n: u32) -> Result<u32, ConfigError> {
    if (1..=10_000).contains(&n) {
        Ok(n)
    } else {
        Err(ConfigError::Invalid(format!(
            "kafka_partitions {n} is not between 1 and 10000"
        )))
    }
}

/// Parses an fsync mode, with the error the config and the flag share.
pub fn parse_fsync(text: &str) -> Result<Fsync, ConfigError> {
    Fsync::parse(text).ok_or_else(|| {
        ConfigError::Invalid(format!("fsync {text:?} is not one of always, batch, never"))
    })
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_valid() {
        let c = Config::default();
        assert_eq!(c.listeners.mqtt, Listen::parse("127.0.0.1:1883").unwrap());
        assert_eq!(c.limits.max_message_size, 16 * 1024 * 1024);
        c.validate().unwrap();
    }

    #[test]
    fn file_overrides_and_off() {
        let mut c = Config::default();
        c.merge_toml("mqtt = \"127.0.0.1:0\"\nnats = \"off\"\n[limits]\nmax_message_size = 1024\n")
            .unwrap();
        assert_eq!(c.listeners.nats, Listen::Off);
        assert_eq!(c.limits.max_message_size, 1024);
        c.validate().unwrap();
    }

    #[test]
    fn tls_settings_from_the_file_and_what_needs_them() {
        let mut c = Config::default();
        c.merge_toml(
            "mqtts = \"127.0.0.1:8883\"\n[tls]\ncert = \"s.pem\"\nkey = \"s.key\"\n\
             client_ca = \"ca.pem\"\nclient_auth = \"optional\"\nnats = \"first\"\n\
             [http]\ntls = true\n",
        )
        .unwrap();
        let tls = c.tls.clone().unwrap();
        assert_eq!(tls.cert, PathBuf::from("s.pem"));
        assert_eq!(tls.client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(tls.client_auth, ClientAuth::Optional);
        assert_eq!(c.nats_tls, NatsTls::First);
        assert!(c.http_tls && c.is_tls_listener("kafka-rest") && c.is_tls_listener("mqtts"));
        assert!(!c.is_tls_listener("mqtt"));
        c.validate().unwrap();

        c.tls = None;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("mqtts listener needs a certificate"), "{err}");
        c.listeners.mqtts = Listen::Off;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("NATS TLS needs a certificate"), "{err}");
        c.nats_tls = NatsTls::Off;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("HTTPS needs a certificate"), "{err}");
        c.http_tls = false;
        c.validate().unwrap();

        let bad =
            Config::default().merge_toml("[tls]\ncert = \"a\"\nkey = \"b\"\nnats = \"yes\"\n");
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("not off, required, optional or first"));
        let bad =
            Config::default().merge_toml("[tls]\ncert = \"a\"\nkey = \"b\"\nclient_auth = \"x\"\n");
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("not required or optional"));
    }

    #[test]
    fn data_dir_and_fsync() {
        let mut c = Config::default();
        assert_eq!(c.data_dir, DataDir::At(PathBuf::from("./dwbroker-data")));
        assert_eq!(c.fsync, Fsync::Always);
        c.merge_toml("data_dir = \"/var/lib/dw\"\nfsync = \"batch\"\n")
            .unwrap();
        assert_eq!(c.data_dir, DataDir::At(PathBuf::from("/var/lib/dw")));
        assert_eq!(c.fsync, Fsync::Batch);
        c.merge_toml("data_dir = \"none\"\n").unwrap();
        assert_eq!(c.data_dir, DataDir::None);
        assert!(c.merge_toml("fsync = \"sometimes\"\n").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let mut c = Config::default();
        assert!(c.merge_toml("mqtt_port = 3\n").is_err());
    }

    #[test]
    fn network_listener_needs_allow_anonymous() {
        let mut c = Config::default();
        c.listeners.mqtt = Listen::parse("0.0.0.0:1883").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--allow-anonymous"), "{err}");
        c.allow_anonymous = true;
        c.validate().unwrap();
        c.allow_anonymous = false;
        c.auth.password_file = Some("users.pw".into());
        c.validate().unwrap();
    }

    #[test]
    fn auth_section_reads_users_anonymous_and_permissions() {
        let mut c = Config::default();
        c.merge_toml(
            r#"
            [auth]
            password_file = "users.pw"
            anonymous = "visitor"
            certificate_identity = "san"
            mqtt5_refused_subscription = 128
            [auth.users.visitor]
            password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"
            [auth.users."sensor-7.example"]
            certificate = true
            [auth.permissions.alice]
            publish = ["sensors.>", "exchange:orders"]
            subscribe = ["sensors.>", "queue:orders.*", "_INBOX.>"]
            configure = ["queue:orders.*"]
            [auth.permissions.bob]
            subscribe = ["sensors.>"]
            deny_subscribe = ["sensors.secret.>"]
            "#,
        )
        .unwrap();
        assert_eq!(c.auth.password_file, Some(PathBuf::from("users.pw")));
        assert_eq!(c.auth.anonymous, Anonymous::As("visitor".into()));
        let visitor = c.auth.users["visitor"].password_hash.as_deref();
        assert!(visitor.is_some_and(|h| h.starts_with("$argon2id$")));
        assert!(c.auth.users["sensor-7.example"].certificate);
        assert_eq!(c.auth.certificate_identity, CertificateIdentity::San);
        assert_eq!(c.auth.mqtt5_refused_subscription, 0x80);
        assert_eq!(Config::default().auth.mqtt5_refused_subscription, 0x87);
        let err = Config::default()
            .merge_toml("[auth]\nmqtt5_refused_subscription = 5\n")
            .unwrap_err();
        assert!(err.to_string().contains("128"), "{err}");
        assert_eq!(c.auth.permissions["alice"].configure, ["queue:orders.*"]);
        assert_eq!(
            c.auth.permissions["bob"].deny_subscribe,
            ["sensors.secret.>"]
        );
        let mut c = Config::default();
        c.merge_toml("[auth]\nanonymous = false\n").unwrap();
        assert_eq!(c.auth.anonymous, Anonymous::Refused);
        let err = c.merge_toml("[auth]\nanonymous = true\n").unwrap_err();
        assert!(err.to_string().contains("name the user"), "{err}");
        assert!(c
            .merge_toml("[auth.permissions.a]\npublish_all = []\n")
            .is_err());
    }

    #[test]
    fn bad_listener_text_is_refused() {
        assert!(Listen::parse("localhost").is_err());
        assert_eq!(Listen::parse("OFF").unwrap(), Listen::Off);
    }
}
