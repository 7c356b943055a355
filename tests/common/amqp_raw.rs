//! A raw AMQP 0-9-1 client on our own codec, for byte-exact conversations
//! (tests/amqp_malformed.rs, tests/amqp_raw.rs).

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use dwbroker_codecs::amqp::*;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Decoder;

use super::WAIT;

pub const FRAME_MAX: u32 = 131_072;

/// A byte stream to the broker: TCP, or TLS over it.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub struct AmqpRaw {
    pub stream: Box<dyn Io>,
    buf: BytesMut,
    codec: AmqpCodec,
}

impl AmqpRaw {
    pub async fn open(addr: SocketAddr) -> AmqpRaw {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connects in time")
            .expect("connects");
        AmqpRaw::over(stream)
    }

    /// A client on an open byte stream (a TLS connection, say).
    pub fn over(stream: impl Io + 'static) -> AmqpRaw {
        AmqpRaw {
            stream: Box::new(stream),
            buf: BytesMut::new(),
            codec: AmqpCodec::new(0),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn send_method(&mut self, channel: u16, method: impl Into<Method>) {
        let mut b = BytesMut::new();
        encode_method(channel, &method.into(), &mut b);
        self.send(&b).await;
    }

    /// The next frame, or `None` once the server has closed the socket.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self
                .codec
                .decode(&mut self.buf)
                .expect("server frames decode")
            {
                return Some(f);
            }
            let n = timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("server answers in time")
                .unwrap_or(0);
            if n == 0 {
                assert!(self.buf.is_empty(), "socket closed mid-frame");
                return None;
            }
        }
    }

    /// The next method (heartbeats skipped), or `None` once the socket is closed.
    pub async fn recv_method(&mut self) -> Option<(u16, Method)> {
        loop {
            match self.recv().await? {
                Frame::Method { channel, method } => return Some((channel, method)),
                Frame::Heartbeat { .. } => continue,
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }

    pub async fn start(addr: SocketAddr) -> (AmqpRaw, ConnectionStart) {
        let mut raw = AmqpRaw::open(addr).await;
        raw.send(&PROTOCOL_HEADER).await;
        let Some((0, Method::ConnectionStart(start))) = raw.recv_method().await else {
            panic!("no connection.start");
        };
        (raw, start)
    }

    /// start-ok advertising the capabilities RabbitMQ's clients send.
    pub async fn start_ok(&mut self, mechanism: &str, response: Bytes) {
        let caps = [
            "authentication_failure_close",
            "consumer_cancel_notify",
            "basic.nack",
            "publisher_confirms",
        ];
        self.start_ok_with(mechanism, response, &caps).await;
    }

    /// start-ok advertising exactly `caps`.
    pub async fn start_ok_with(&mut self, mechanism: &str, response: Bytes, caps: &[&str]) {
        let mut table = FieldTable::default();
        for cap in caps {
            table.insert(*cap, FieldValue::Bool(true));
        }
        let mut props = FieldTable::default();
        props.insert("capabilities", FieldValue::Table(table));
        self.send_method(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: mechanism.into(),
                response,
                locale: "en_US".into(),
            },
        )
        .await;
    }

    /// Up to connection.tune: returns the offer.
    pub async fn tuned(addr: SocketAddr) -> (AmqpRaw, ConnectionTune) {
        let (mut raw, _) = AmqpRaw::start(addr).await;
        raw.start_ok("PLAIN", Bytes::from_static(b"\0guest\0guest"))
            .await;
        let Some((0, Method::ConnectionTune(tune))) = raw.recv_method().await else {
            panic!("no connection.tune");
        };
        (raw, tune)
    }

    /// A full handshake with `tune_ok`'s values, then channel 1 opened.
    pub async fn handshake_with(addr: SocketAddr, tune_ok: ConnectionTuneOk) -> AmqpRaw {
        let (mut raw, _) = AmqpRaw::tuned(addr).await;
        raw.send_method(0, tune_ok).await;
        raw.open_vhost("/").await;
        let Some((0, Method::ConnectionOpenOk(_))) = raw.recv_method().await else {
            panic!("no connection.open-ok");
        };
        raw.open_channel(1).await;
        raw
    }

    /// A full handshake logging in as `user` with PLAIN, then channel 1 opened.
    pub async fn logged_in(addr: SocketAddr, user: &str, password: &str) -> AmqpRaw {
        let (mut raw, _) = AmqpRaw::start(addr).await;
        let response = format!("\0{user}\0{password}");
        raw.start_ok("PLAIN", Bytes::from(response)).await;
        let Some((0, Method::ConnectionTune(tune))) = raw.recv_method().await else {
            panic!("{user} is not logged in");
        };
        raw.send_method(
            0,
            ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max: FRAME_MAX,
                heartbeat: 0,
            },
        )
        .await;
        raw.open_vhost("/").await;
        let Some((0, Method::ConnectionOpenOk(_))) = raw.recv_method().await else {
            panic!("no connection.open-ok");
        };
        raw.open_channel(1).await;
        raw
    }

    pub async fn handshake(addr: SocketAddr) -> AmqpRaw {
        AmqpRaw::handshake_with(
            addr,
            ConnectionTuneOk {
                channel_max: 2047,
                frame_max: FRAME_MAX,
                heartbeat: 0,
            },
        )
        .await
    }

    pub async fn open_vhost(&mut self, vhost: &str) {
        self.send_method(
            0,
            ConnectionOpen {
                virtual_host: vhost.into(),
                ..ConnectionOpen::default()
            },
        )
        .await;
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(channel, ChannelOpen::default()).await;
        match self.recv_method().await {
            Some((ch, Method::ChannelOpenOk(_))) if ch == channel => {}
            other => panic!("channel {channel} did not open: {other:?}"),
        }
    }

    /// Expects connection.close with `code`, answers close-ok, expects the socket closed.
    pub async fn expect_connection_close(&mut self, code: ReplyCode) -> String {
        let (ch, m) = self.recv_method().await.expect("connection.close");
        let Method::ConnectionClose(close) = m else {
            panic!("expected connection.close {code:?}, got {m:?}");
        };
        assert_eq!(
            (ch, close.reply_code),
            (0, code.code()),
            "{}",
            close.reply_text
        );
        self.send_method(0, ConnectionCloseOk {}).await;
        self.expect_closed().await;
        close.reply_text
    }

    pub async fn expect_channel_close(&mut self, channel: u16, code: ReplyCode) -> String {
        let (ch, m) = self.recv_method().await.expect("channel.close");
        let Method::ChannelClose(close) = m else {
            panic!("expected channel.close {code:?}, got {m:?}");
        };
        assert_eq!(
            (ch, close.reply_code),
            (channel, code.code()),
            "{}",
            close.reply_text
        );
        self.send_method(channel, ChannelCloseOk {}).await;
        close.reply_text
    }

    /// Expects the socket to close with nothing but heartbeats before it.
    pub async fn expect_closed(&mut self) {
        loop {
            match self.recv().await {
                None => return,
                Some(Frame::Heartbeat { .. }) => continue,
                Some(other) => panic!("expected the socket closed, got {other:?}"),
            }
        }
    }

    /// Expects the connection refused: the socket closes, either silently or after a
    /// connection.close whose code is one of `codes` (RabbitMQ closes silently in the
    /// handshake phases; either is an acceptable refusal).
    pub async fn expect_refused(&mut self, codes: &[ReplyCode]) {
        loop {
            match self.recv().await {
                None => return,
                Some(Frame::Heartbeat { .. }) => continue,
                Some(Frame::Method {
                    channel: 0,
                    method: Method::ConnectionClose(c),
                }) => {
                    assert!(
                        codes.iter().any(|k| k.code() == c.reply_code),
                        "connection.close {} {}",
                        c.reply_code,
                        c.reply_text
                    );
                    self.send_method(0, ConnectionCloseOk {}).await;
                    self.expect_closed().await;
                    return;
                }
                Some(other) => panic!("expected a refusal, got {other:?}"),
            }
        }
    }

    /// Declares the queue `name` (durable false, not exclusive) and expects its
    /// declare-ok.
    pub async fn declare(&mut self, channel: u16, name: &str) {
        self.send_method(
            channel,
            QueueDeclare {
                queue: name.into(),
                ..QueueDeclare::default()
            },
        )
        .await;
        match self.recv_method().await {
            Some((ch, Method::QueueDeclareOk(_))) if ch == channel => {}
            other => panic!("{name} not declared: {other:?}"),
        }
    }

    pub async fn declare_queue(&mut self, channel: u16) -> String {
        self.send_method(
            channel,
            QueueDeclare {
                exclusive: true,
                ..QueueDeclare::default()
            },
        )
        .await;
        match self.recv_method().await {
            Some((ch, Method::QueueDeclareOk(ok))) if ch == channel => ok.queue,
            other => panic!("no queue.declare-ok: {other:?}"),
        }
    }

    pub fn publish_frames(channel: u16, routing_key: &str, body_size: u64, b: &mut BytesMut) {
        encode_method(
            channel,
            &Method::BasicPublish(BasicPublish {
                routing_key: routing_key.into(),
                ..BasicPublish::default()
            }),
            b,
        );
        encode_content_header(channel, 60, body_size, &BasicProperties::default(), b);
    }

    /// Publishes `body` through `exchange` with `routing_key`.
    pub async fn publish_to(
        &mut self,
        channel: u16,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) {
        let mut b = BytesMut::new();
        encode_method(
            channel,
            &Method::BasicPublish(BasicPublish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                ..BasicPublish::default()
            }),
            &mut b,
        );
        encode_content_header(
            channel,
            60,
            body.len() as u64,
            &BasicProperties::default(),
            &mut b,
        );
        encode_body(channel, body, FRAME_MAX, &mut b);
        self.send(&b).await;
    }

    pub async fn publish(&mut self, channel: u16, routing_key: &str, body: &[u8]) {
        let mut b = BytesMut::new();
        AmqpRaw::publish_frames(channel, routing_key, body.len() as u64, &mut b);
        encode_body(channel, body, FRAME_MAX, &mut b);
        self.send(&b).await;
    }

    /// basic.get with no-ack: the body (reassembled from all its frames), or `None` on
    /// get-empty.
    pub async fn get(&mut self, channel: u16, queue: &str) -> Option<Vec<u8>> {
        self.get_framed(channel, queue, FRAME_MAX).await
    }

    /// [`AmqpRaw::get`] on a connection tuned to `frame_max`: every body frame
    /// must fit in it.
    pub async fn get_framed(
        &mut self,
        channel: u16,
        queue: &str,
        frame_max: u32,
    ) -> Option<Vec<u8>> {
        self.send_method(
            channel,
            BasicGet {
                queue: queue.into(),
                no_ack: true,
                ..BasicGet::default()
            },
        )
        .await;
        match self.recv_method().await {
            Some((ch, Method::BasicGetOk(_))) if ch == channel => {}
            Some((ch, Method::BasicGetEmpty(_))) if ch == channel => return None,
            other => panic!("no basic.get-ok: {other:?}"),
        }
        let Some(Frame::Header { header, .. }) = self.recv().await else {
            panic!("no content header");
        };
        let mut body = Vec::new();
        while (body.len() as u64) < header.body_size {
            match self.recv().await {
                Some(Frame::Body {
                    channel: ch,
                    payload,
                }) if ch == channel => {
                    assert!(
                        payload.len() as u32 <= frame_max - 8,
                        "body frame above frame_max"
                    );
                    body.extend_from_slice(&payload);
                }
                other => panic!("expected a body frame, got {other:?}"),
            }
        }
        assert_eq!(body.len() as u64, header.body_size);
        Some(body)
    }
}

/// A raw frame: type, channel, payload, then `end`.
pub fn frame(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(kind);
    b.put_u16(channel);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.put_u8(end);
    b.to_vec()
}

/// The broker still completes a handshake and a publish/get round trip.
pub async fn assert_amqp_serves(addr: SocketAddr) {
    let mut raw = AmqpRaw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    raw.publish(1, &q, b"still here").await;
    assert_eq!(raw.get(1, &q).await.as_deref(), Some(&b"still here"[..]));
}
