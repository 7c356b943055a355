//! dwbroker, the DataWarehouse message broker, as a library.
//!
//! [`Broker`] starts the listeners in process and is also the warehouse's internal
//! message bus: it publishes and subscribes with the same [`router::Message`] that
//! every protocol front uses, so an in-process subscriber sees what MQTT clients
//! publish and MQTT subscribers see what the warehouse publishes.
//!
//! ```
//! use dwbroker::config::{Config, DataDir, Listen};
//! use dwbroker::router::{Message, Subject};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = Config::default();
//! // Port 0 picks a free port; protocols not needed here are switched off.
//! config.listeners.mqtt = Listen::parse("127.0.0.1:0")?;
//! // Durable state in a directory of its own for this run (the default is
//! // ./dwbroker-data; DataDir::None keeps everything in memory).
//! config.data_dir = DataDir::Temporary;
//! let broker = dwbroker::Broker::start(config).await?;
//! println!("MQTT on {:?}", broker.mqtt_addr());
//!
//! // NATS-style filters over the shared subject space ("sensors/+/temp" in MQTT).
//! let mut sub = broker.subscribe("sensors.*.temp")?;
//! let message = Message {
//!     subject: Subject::new("sensors.kitchen.temp")?,
//!     payload: "21.5".into(),
//!     ..Message::default()
//! };
//! assert_eq!(broker.publish(message).queued, 1);
//! let got = sub.recv().await.expect("broker running");
//! assert_eq!(&got.payload[..], b"21.5");
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs, missing_debug_implementations)]

pub(crate) mod access;
pub mod config;
pub(crate) mod connections;
pub(crate) mod operations;
pub(crate) mod protocols;
pub mod router;
pub mod server;
pub mod storage;
pub(crate) mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

use router::{Delivery, Filter, FilterError, Message, Routed, Session, SubOptions};
use server::Context;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen for {protocol} on {addr}: {source}")]
    Bind {
        /// The protocol of the listener.
        protocol: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory cannot be used.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] transport::tls::TlsError),
}

/// Creates the password file or sets `user`'s password in it (`dwbroker passwd`):
/// an argon2id hash, the file written whole with mode 0600.
pub fn set_password(file: &std::path::Path, user: &str, password: &[u8]) -> Result<(), String> {
    access::passwords::set(file, user, password)
}

/// A running broker: its listeners and its in-process bus.
#[derive(Debug)]
pub struct Broker {
    ctx: Arc<Context>,
    listeners: server::Listeners,
}

impl Broker {
    /// Validates `config`, binds its listeners and starts serving.
    pub async fn start(config: config::Config) -> Result<Broker, Error> {
        config.validate()?;
        let ctx = Arc::new(Context::open(config)?);
        let listeners = server::start(&ctx).await?;
        Ok(Broker { ctx, listeners })
    }

    /// The address the MQTT listener is bound to, if it runs.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("mqtt")
    }

    /// The address the AMQP 0-9-1 listener is bound to, if it runs.
    pub fn amqp_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("amqp")
    }

    /// The address the STOMP listener is bound to, if it runs.
    pub fn stomp_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("stomp")
    }

    /// The address the NATS listener is bound to, if it runs.
    pub fn nats_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("nats")
    }

    /// The address the Kafka REST listener is bound to, if it runs.
    pub fn kafka_rest_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("kafka-rest")
    }

    /// The address the schema registry listener is bound to, if it runs.
    pub fn schema_registry_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("schema-registry")
    }

    /// The address the HTTP listener (health, metrics, API, dashboard) is bound
    /// to, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("http")
    }

    /// The address nats-server's monitoring endpoints are served on, if they are.
    pub fn nats_monitor_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("nats-monitor")
    }

    /// The address the MQTT-over-WebSocket listener is bound to, if it runs.
    pub fn mqtt_ws_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("mqtt-ws")
    }

    /// The address the MQTT-over-secure-WebSocket listener is bound to, if it runs.
    pub fn mqtt_wss_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("mqtt-wss")
    }

    /// The address the STOMP-over-WebSocket listener is bound to, if it runs.
    pub fn stomp_ws_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("stomp-ws")
    }

    /// The address the STOMP-over-secure-WebSocket listener is bound to, if it runs.
    pub fn stomp_wss_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("stomp-wss")
    }

    /// The address the NATS-over-WebSocket listener is bound to, if it runs.
    pub fn nats_ws_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("nats-ws")
    }

    /// The address the MQTT-over-TLS listener is bound to, if it runs.
    pub fn mqtts_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("mqtts")
    }

    /// The address the AMQP-over-TLS listener is bound to, if it runs.
    pub fn amqps_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("amqps")
    }

    /// The address the STOMP-over-TLS listener is bound to, if it runs.
    pub fn stomps_addr(&self) -> Option<SocketAddr> {
        self.listeners.addr("stomps")
    }

    /// Reads the TLS certificate, key and client CA files again (what SIGHUP does):
    /// new handshakes use them, connections already made are untouched. `false` if
    /// no TLS is configured; on an error the previous certificates stay in use.
    pub fn reload_tls(&self) -> Result<bool, Error> {
        match &self.ctx.tls {
            None => Ok(false),
            Some(tls) => {
                tls.reload()?;
                Ok(true)
            }
        }
    }

    /// Reads the password file and the configuration file's `[auth]` again (what
    /// SIGHUP does): new logins use them, and open connections are checked again
    /// (a removed user, or a changed password, is disconnected; subscriptions no
    /// longer allowed are ended in each protocol's way). On an error the users and
    /// permissions in force stay.
    pub fn reload_access(&self) -> Result<(), Error> {
        self.ctx
            .access
            .reload()
            .map_err(|e| Error::Config(config::ConfigError::Invalid(e)))
    }

    /// The memory ledger: the bytes held for messages, and whether publishers
    /// are held back (`memory_high_watermark`).
    pub fn memory(&self) -> &Arc<router::Memory> {
        self.ctx.router.memory()
    }

    /// Publishes a message to every matching subscriber of every protocol; returns
    /// how many subscriber sessions it matched and was queued for.
    pub fn publish(&self, message: Message) -> Routed {
        self.ctx.router.publish(message, router::Now::current())
    }

    /// Subscribes in process with a NATS-style filter over the shared subject space
    /// (`*` one token, `>` one or more trailing tokens).
    pub fn subscribe(&self, filter: &str) -> Result<Subscription, FilterError> {
        let filter = Filter::nats(filter)?;
        let session = self.ctx.router.open_session();
        self.ctx.router.subscribe(
            session.id(),
            filter,
            SubOptions {
                qos: Delivery::ExactlyOnce,
                no_local: false,
                retain_as_published: false,
                subscription_id: None,
                share_group: None,
                withheld: None,
            },
        );
        Ok(Subscription {
            ctx: self.ctx.clone(),
            session,
        })
    }

    /// Stops the listeners, disconnects clients (MQTT 5 clients are told 0x8B
    /// Server shutting down) and waits, bounded, for their tasks to end.
    pub async fn shutdown(self) {
        self.listeners.shutdown(&self.ctx).await;
        self.ctx.close_storage();
    }
}

/// An in-process subscription; unsubscribes when dropped.
#[derive(Debug)]
pub struct Subscription {
    ctx: Arc<Context>,
    session: Arc<Session>,
}

impl Subscription {
    /// The next message; `None` once the broker has shut down.
    pub async fn recv(&mut self) -> Option<Arc<Message>> {
        loop {
            if let Some(dispatch) = self.session.pop() {
                return Some(dispatch.message);
            }
            tokio::select! {
                _ = self.session.wait() => {}
                _ = self.ctx.shutdown.cancelled() => return None,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.ctx.router.close_session(self.session.id());
    }
}
