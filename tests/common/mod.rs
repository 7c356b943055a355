//! Test support: a broker started in process on port 0, rumqttc clients whose event
//! loops run in the background, and a raw MQTT client built on our own codec for
//! byte-exact conversations.
#![allow(dead_code)]

pub mod amqp_raw;
pub mod nats_lines;
pub mod process;
pub mod stomp_raw;
pub mod tls;
pub mod users;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use dwbroker::config::{Config, DataDir, Listen};
use dwbroker::Broker;
use dwbroker_codecs::mqtt::{Codec, Connect, Packet, Properties, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(5);

/// A config with the MQTT, NATS, AMQP, STOMP and Kafka REST listeners on free loopback ports
/// and a temporary data dir.
pub fn config() -> Config {
    let mut c = Config::default();
    c.listeners.mqtt = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.nats = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.amqp = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.stomp = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.kafka_rest = Listen::parse("127.0.0.1:0").unwrap();
    // WebSocket listeners default to fixed ports; tests that need them ask.
    c.listeners.mqtt_ws = Listen::Off;
    c.listeners.stomp_ws = Listen::Off;
    c.listeners.http = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.nats_monitor = Listen::parse("127.0.0.1:0").unwrap();
    // A fresh data dir per broker, removed when it stops: never the default.
    c.data_dir = DataDir::Temporary;
    c
}

/// Starts a broker with [`config`] changed by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> (Broker, SocketAddr) {
    let mut c = config();
    tweak(&mut c);
    let broker = Broker::start(c).await.expect("broker starts");
    let addr = broker.mqtt_addr().expect("mqtt listener");
    (broker, addr)
}

/// Starts a broker with the default limits.
pub async fn start() -> (Broker, SocketAddr) {
    start_with(|_| {}).await
}

/// A rumqttc 3.1.1 client whose event loop runs in a task; events arrive on `events`.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<rumqttc::Event, String>>,
}

/// Connects a 3.1.1 client and waits for its CONNACK.
pub async fn v4(
    addr: SocketAddr,
    opts: impl FnOnce(&mut rumqttc::MqttOptions),
    id: &str,
) -> (V4, rumqttc::ConnAck) {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    opts(&mut o);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let e = eventloop.poll().await;
            let stop = e.is_err();
            if tx.send(e.map_err(|e| e.to_string())).is_err() || stop {
                return;
            }
        }
    });
    let mut c = V4 { client, events: rx };
    let ack = c
        .next_incoming(|p| match p {
            rumqttc::Packet::ConnAck(a) => Some(a.clone()),
            _ => None,
        })
        .await;
    (c, ack)
}

impl V4 {
    /// Waits for the first incoming packet `pick` accepts; panics on error or timeout.
    pub async fn next_incoming<T>(
        &mut self,
        mut pick: impl FnMut(&rumqttc::Packet) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("timed out waiting for a packet")
                .expect("event loop ended");
            if let Ok(rumqttc::Event::Incoming(p)) = &e {
                if let Some(t) = pick(p) {
                    return t;
                }
            }
            if let Err(err) = e {
                panic!("connection failed: {err}");
            }
        }
    }

    /// The next PUBLISH.
    pub async fn publish(&mut self) -> rumqttc::Publish {
        self.next_incoming(|p| match p {
            rumqttc::Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Asserts that no PUBLISH arrives within `d`.
    pub async fn no_publish(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = e {
                panic!("unexpected publish on {}: {:?}", p.topic, p.payload);
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> rumqttc::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next_incoming(|p| match p {
            rumqttc::Packet::SubAck(a) => Some(a.clone()),
            _ => None,
        })
        .await
    }
}

/// A rumqttc MQTT 5 client whose event loop runs in a task.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<rumqttc::v5::Event, String>>,
}

/// Connects an MQTT 5 client and waits for its CONNACK.
pub async fn v5(
    addr: SocketAddr,
    opts: impl FnOnce(&mut rumqttc::v5::MqttOptions),
    id: &str,
) -> (V5, rumqttc::v5::mqttbytes::v5::ConnAck) {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    opts(&mut o);
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(o, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let e = eventloop.poll().await;
            let stop = e.is_err();
            if tx.send(e.map_err(|e| e.to_string())).is_err() || stop {
                return;
            }
        }
    });
    let mut c = V5 { client, events: rx };
    let ack = c
        .next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::ConnAck(a) => Some(a.clone()),
            _ => None,
        })
        .await;
    (c, ack)
}

impl V5 {
    /// Waits for the first incoming packet `pick` accepts; panics on error or timeout.
    pub async fn next_incoming<T>(
        &mut self,
        mut pick: impl FnMut(&rumqttc::v5::mqttbytes::v5::Packet) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("timed out waiting for a packet")
                .expect("event loop ended");
            if let Ok(rumqttc::v5::Event::Incoming(p)) = &e {
                if let Some(t) = pick(p) {
                    return t;
                }
            }
            if let Err(err) = e {
                panic!("connection failed: {err}");
            }
        }
    }

    /// The next PUBLISH.
    pub async fn publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        self.next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Asserts that no PUBLISH arrives within `d`.
    pub async fn no_publish(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::Publish(
                p,
            ))) = e
            {
                panic!("unexpected publish on {:?}", p.topic);
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> rumqttc::v5::mqttbytes::v5::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::SubAck(a) => Some(a.clone()),
            _ => None,
        })
        .await
    }
}

/// A raw MQTT client on a TCP socket, speaking through our own codec.
pub struct Raw {
    pub stream: TcpStream,
    codec: Codec,
    buf: BytesMut,
}

impl Raw {
    /// Opens a socket; `version` is what the codec decodes server packets as.
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            codec: Codec::client(version, 1 << 28),
            buf: BytesMut::new(),
        }
    }

    /// Opens a socket and completes CONNECT/CONNACK with `connect`.
    pub async fn connected(addr: SocketAddr, connect: Connect) -> (Raw, Packet) {
        let mut raw = Raw::open(addr, connect.version).await;
        raw.send_packet(Packet::Connect(connect)).await;
        let ack = raw.recv().await.expect("CONNACK");
        assert!(matches!(ack, Packet::ConnAck(_)), "{ack:?}");
        (raw, ack)
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Encodes and writes a packet.
    pub async fn send_packet(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        self.codec.encode(packet, &mut out).unwrap();
        self.send(&out).await;
    }

    /// The next packet from the server, `None` when it closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(p) = self
                .codec
                .decode(&mut self.buf)
                .expect("server sent a valid packet")
            {
                return Some(p);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for the server")
                .unwrap_or(0);
            if n == 0 {
                assert!(self.buf.is_empty(), "connection closed mid-packet");
                return None;
            }
        }
    }

    /// Asserts that the server closes the connection without sending anything else.
    pub async fn expect_closed(&mut self) {
        let p = self.recv().await;
        assert!(p.is_none(), "expected the connection to close, got {p:?}");
    }

    /// Asserts that the server sends DISCONNECT with `code` and then closes.
    pub async fn expect_disconnect(&mut self, code: u8) {
        match self.recv().await {
            Some(Packet::Disconnect(d)) => assert_eq!(d.code.0, code, "DISCONNECT reason {d:?}"),
            other => panic!("expected DISCONNECT 0x{code:02x}, got {other:?}"),
        }
        self.expect_closed().await;
    }
}

/// A CONNECT packet with defaults: clean start, keep alive 30 s, no will.
pub fn connect(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        version,
        clean_start: true,
        keep_alive: 30,
        properties: Properties::default(),
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
    }
}

/// Checks that the broker still serves a fresh client: connect, subscribe, publish,
/// receive.
pub async fn assert_broker_serves(addr: SocketAddr) {
    let id = format!("healthy-{}", rand_suffix());
    let (mut c, _) = v4(addr, |_| {}, &id).await;
    let topic = format!("health/{id}");
    c.subscribe(&topic, rumqttc::QoS::AtLeastOnce).await;
    c.client
        .publish(&topic, rumqttc::QoS::AtLeastOnce, false, "ok")
        .await
        .unwrap();
    let p = c.publish().await;
    assert_eq!(&p.payload[..], b"ok");
}

/// A short unique suffix for ids and topics.
pub fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 20)
}

/// An async-nats client connected to the broker's NATS listener.
pub async fn nats_client(broker: &Broker) -> async_nats::Client {
    let addr = broker.nats_addr().expect("nats listener");
    async_nats::connect(format!("nats://{addr}"))
        .await
        .expect("connects")
}

/// The next message of a NATS subscription, within [`WAIT`].
pub async fn nats_next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    use futures_util::StreamExt;
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("timed out waiting for a message")
        .expect("subscription open")
}

/// Up to `n` messages of a JetStream pull consumer (one fetch expiring after
/// 500 ms), each within [`WAIT`].
pub async fn js_fetch(
    c: &async_nats::jetstream::consumer::PullConsumer,
    n: usize,
) -> Vec<async_nats::jetstream::Message> {
    use futures_util::StreamExt;
    let mut batch = c
        .fetch()
        .max_messages(n)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .expect("fetch");
    let mut out = Vec::new();
    while let Some(m) = tokio::time::timeout(WAIT, batch.next())
        .await
        .expect("fetch ends in time")
    {
        out.push(m.expect("a message"));
    }
    out
}

/// An AMQP (lapin) connection to `broker` as guest, vhost `/`.
pub async fn amqp_connect(broker: &Broker) -> lapin::Connection {
    let uri = format!("amqp://guest:guest@{}/%2f", broker.amqp_addr().unwrap());
    tokio::time::timeout(
        WAIT,
        lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()),
    )
    .await
    .expect("AMQP connects in time")
    .expect("AMQP connects")
}

/// An AMQP connection and one channel on it.
pub async fn amqp_channel(broker: &Broker) -> (lapin::Connection, lapin::Channel) {
    let conn = amqp_connect(broker).await;
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// The next delivery of an AMQP consumer, within [`WAIT`].
pub async fn amqp_next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    use futures_util::StreamExt;
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("an AMQP delivery in time")
        .expect("consumer open")
        .expect("delivery ok")
}
