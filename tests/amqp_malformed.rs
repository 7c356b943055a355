//! AMQP 0-9-1 bad input at the raw-TCP level: each case gets RabbitMQ's answer, and
//! afterwards the broker still serves a fresh client.

mod common;

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use dwbroker_codecs::amqp::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Decoder;

use common::WAIT;

struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    codec: AmqpCodec,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Raw {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        Raw {
            stream,
            buf: BytesMut::new(),
            codec: AmqpCodec::new(0),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn send_method(&mut self, channel: u16, method: impl Into<Method>) {
        let mut b = BytesMut::new();
        encode_method(channel, &method.into(), &mut b);
        self.send(&b).await;
    }

    /// The next frame, or `None` once the server has closed the socket.
    async fn recv(&mut self) -> Option<Frame> {
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
                return None;
            }
        }
    }

    async fn recv_method(&mut self) -> Option<(u16, Method)> {
        loop {
            match self.recv().await? {
                Frame::Method { channel, method } => return Some((channel, method)),
                Frame::Heartbeat { .. } => continue,
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }

    /// Protocol header, start-ok (PLAIN guest/guest), tune-ok, open, channel 1.
    async fn handshake(addr: SocketAddr) -> Raw {
        let mut raw = Raw::open(addr).await;
        raw.send(&PROTOCOL_HEADER).await;
        let Some((0, Method::ConnectionStart(_))) = raw.recv_method().await else {
            panic!("no connection.start");
        };
        raw.start_ok(b"\0guest\0guest", true).await;
        let Some((0, Method::ConnectionTune(tune))) = raw.recv_method().await else {
            panic!("no connection.tune");
        };
        raw.send_method(
            0,
            ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            },
        )
        .await;
        raw.send_method(
            0,
            ConnectionOpen {
                virtual_host: "/".into(),
                ..ConnectionOpen::default()
            },
        )
        .await;
        let Some((0, Method::ConnectionOpenOk(_))) = raw.recv_method().await else {
            panic!("no connection.open-ok");
        };
        raw.send_method(1, ChannelOpen::default()).await;
        let Some((1, Method::ChannelOpenOk(_))) = raw.recv_method().await else {
            panic!("no channel.open-ok");
        };
        raw
    }

    async fn start_ok(&mut self, response: &'static [u8], auth_failure_close: bool) {
        let mut caps = FieldTable::default();
        caps.insert(
            "authentication_failure_close",
            FieldValue::Bool(auth_failure_close),
        );
        let mut props = FieldTable::default();
        props.insert("capabilities", FieldValue::Table(caps));
        self.send_method(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: Bytes::from_static(response),
                locale: "en_US".into(),
            },
        )
        .await;
    }

    /// Expects connection.close with `code`, answers close-ok, expects the socket closed.
    async fn expect_connection_close(&mut self, code: ReplyCode) -> String {
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

    async fn expect_channel_close(&mut self, channel: u16, code: ReplyCode) -> String {
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

    async fn expect_closed(&mut self) {
        loop {
            match self.recv().await {
                None => return,
                Some(Frame::Heartbeat { .. }) => continue,
                Some(other) => panic!("expected the socket closed, got {other:?}"),
            }
        }
    }

    /// Declares an exclusive server-named queue on `channel` and returns its name.
    async fn declare_queue(&mut self, channel: u16) -> String {
        self.send_method(
            channel,
            QueueDeclare {
                exclusive: true,
                ..QueueDeclare::default()
            },
        )
        .await;
        let Some((_, Method::QueueDeclareOk(ok))) = self.recv_method().await else {
            panic!("no queue.declare-ok");
        };
        ok.queue
    }

    async fn publish(&mut self, channel: u16, routing_key: &str, body: &[u8]) {
        let mut b = BytesMut::new();
        encode_method(
            channel,
            &Method::BasicPublish(BasicPublish {
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
        encode_body(channel, body, 131_072, &mut b);
        self.send(&b).await;
    }
}

/// A raw frame: type, channel, payload, then `end`.
fn frame(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(kind);
    b.put_u16(channel);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.put_u8(end);
    b.to_vec()
}

/// The broker still completes a handshake and a publish/get round trip.
async fn assert_serves(addr: SocketAddr) {
    let mut raw = Raw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    raw.publish(1, &q, b"still here").await;
    raw.send_method(
        1,
        BasicGet {
            queue: q,
            no_ack: true,
            ..BasicGet::default()
        },
    )
    .await;
    let Some((1, Method::BasicGetOk(_))) = raw.recv_method().await else {
        panic!("no basic.get-ok");
    };
    let Some(Frame::Header { .. }) = raw.recv().await else {
        panic!("no content header");
    };
    let Some(Frame::Body { payload, .. }) = raw.recv().await else {
        panic!("no body");
    };
    assert_eq!(&payload[..], b"still here");
}

async fn broker() -> (dwbroker::Broker, SocketAddr) {
    let (broker, _) = common::start_with(|c| c.limits.max_message_size = 1024).await;
    let addr = broker.amqp_addr().expect("amqp listener");
    (broker, addr)
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_then_close() {
    let (_b, addr) = broker().await;
    for header in [&b"AMQP\x00\x00\x08\x00"[..], b"GET / HTTP/1.1\r\n\r\n"] {
        let mut raw = Raw::open(addr).await;
        raw.send(header).await;
        let mut got = Vec::new();
        timeout(WAIT, raw.stream.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, PROTOCOL_HEADER);
    }
    assert_serves(addr).await;
}

#[tokio::test]
async fn bad_frame_end_is_a_frame_error() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    raw.send(&frame(8, 0, &[], 0x00)).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn unknown_frame_type_is_a_frame_error() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    raw.send(&frame(7, 0, &[], FRAME_END)).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn frame_above_frame_max_is_refused_before_its_payload() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    // Only the 7-byte header of a 1 GiB frame: the broker must not wait for it.
    let mut head = BytesMut::new();
    head.put_u8(3);
    head.put_u16(1);
    head.put_u32(1 << 30);
    raw.send(&head).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn method_on_a_channel_that_is_not_open_is_a_channel_error() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    raw.send_method(5, QueueDeclare::default()).await;
    raw.expect_connection_close(ReplyCode::ChannelError).await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn content_header_without_a_publish_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_content_header(1, 60, 3, &BasicProperties::default(), &mut b);
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn body_without_a_publish_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_body(1, b"abc", 131_072, &mut b);
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn body_larger_than_the_header_says_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_method(1, &Method::BasicPublish(BasicPublish::default()), &mut b);
    encode_content_header(1, 60, 2, &BasicProperties::default(), &mut b);
    encode_body(1, b"abcdef", 131_072, &mut b);
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn method_where_content_was_expected_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    raw.send_method(1, BasicPublish::default()).await;
    raw.send_method(1, BasicQos::default()).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn truncated_method_arguments_are_a_syntax_error() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    // queue.declare (50, 10) whose arguments stop after the ticket.
    raw.send(&frame(1, 1, &[0, 50, 0, 10, 0, 0], FRAME_END))
        .await;
    raw.expect_connection_close(ReplyCode::SyntaxError).await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn unknown_method_is_not_implemented() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    raw.send(&frame(1, 1, &[0, 60, 0, 99], FRAME_END)).await;
    raw.expect_connection_close(ReplyCode::NotImplemented).await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn heartbeat_on_a_channel_is_a_frame_error() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    raw.send(&frame(8, 1, &[], FRAME_END)).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn wrong_password_is_access_refused() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::open(addr).await;
    raw.send(&PROTOCOL_HEADER).await;
    raw.recv_method().await.expect("connection.start");
    raw.start_ok(b"\0guest\0wrong", true).await;
    let text = raw.expect_connection_close(ReplyCode::AccessRefused).await;
    assert!(text.contains("Login was refused"), "{text}");
    // Without the capability the socket is just closed.
    let mut raw = Raw::open(addr).await;
    raw.send(&PROTOCOL_HEADER).await;
    raw.recv_method().await.expect("connection.start");
    raw.start_ok(b"\0guest\0wrong", false).await;
    raw.expect_closed().await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn tune_ok_above_the_offer_closes_the_socket() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::open(addr).await;
    raw.send(&PROTOCOL_HEADER).await;
    raw.recv_method().await.expect("connection.start");
    raw.start_ok(b"\0guest\0guest", true).await;
    let Some((0, Method::ConnectionTune(tune))) = raw.recv_method().await else {
        panic!("no tune");
    };
    raw.send_method(
        0,
        ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max + 1,
            heartbeat: 0,
        },
    )
    .await;
    raw.expect_closed().await;
    assert_serves(addr).await;
}

#[tokio::test]
async fn immediate_and_prefetch_size_are_not_implemented() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    raw.send_method(
        1,
        BasicPublish {
            immediate: true,
            ..BasicPublish::default()
        },
    )
    .await;
    let text = raw.expect_connection_close(ReplyCode::NotImplemented).await;
    assert!(text.contains("immediate=true"), "{text}");
    let mut raw = Raw::handshake(addr).await;
    raw.send_method(
        1,
        BasicQos {
            prefetch_size: 10,
            ..BasicQos::default()
        },
    )
    .await;
    let text = raw.expect_connection_close(ReplyCode::NotImplemented).await;
    assert!(text.contains("prefetch_size!=0 (10)"), "{text}");
    assert_serves(addr).await;
}

#[tokio::test]
async fn channel_errors_close_only_the_channel() {
    let (_b, addr) = broker().await;
    let mut raw = Raw::handshake(addr).await;
    // Unknown delivery tag: 406 on channel 1.
    raw.send_method(
        1,
        BasicAck {
            delivery_tag: 99,
            multiple: false,
        },
    )
    .await;
    let text = raw
        .expect_channel_close(1, ReplyCode::PreconditionFailed)
        .await;
    assert!(text.contains("unknown delivery tag 99"), "{text}");
    // Publish to a missing exchange: 404 on channel 2.
    raw.send_method(2, ChannelOpen::default()).await;
    raw.recv_method().await.expect("channel.open-ok");
    raw.send_method(
        2,
        BasicPublish {
            exchange: "no-such-exchange".into(),
            ..BasicPublish::default()
        },
    )
    .await;
    raw.expect_channel_close(2, ReplyCode::NotFound).await;
    // Declaring an amq.* exchange: 403 on channel 3.
    raw.send_method(3, ChannelOpen::default()).await;
    raw.recv_method().await.expect("channel.open-ok");
    raw.send_method(
        3,
        ExchangeDeclare {
            exchange: "amq.mine".into(),
            kind: "direct".into(),
            ..ExchangeDeclare::default()
        },
    )
    .await;
    raw.expect_channel_close(3, ReplyCode::AccessRefused).await;
    // A body above max_message_size (1024 here): 406 on channel 1, reopened.
    raw.send_method(1, ChannelOpen::default()).await;
    raw.recv_method().await.expect("channel.open-ok");
    let q = raw.declare_queue(1).await;
    raw.publish(1, &q, &[0u8; 2000]).await;
    let text = raw
        .expect_channel_close(1, ReplyCode::PreconditionFailed)
        .await;
    assert!(
        text.contains("larger than configured max size 1024"),
        "{text}"
    );
    // The connection still works on a new channel.
    raw.send_method(4, ChannelOpen::default()).await;
    let Some((4, Method::ChannelOpenOk(_))) = raw.recv_method().await else {
        panic!("channel 4 did not open");
    };
    raw.publish(4, &q, b"ok").await;
    raw.send_method(
        4,
        BasicGet {
            queue: q,
            no_ack: true,
            ..BasicGet::default()
        },
    )
    .await;
    let Some((4, Method::BasicGetOk(_))) = raw.recv_method().await else {
        panic!("no basic.get-ok after channel errors");
    };
    assert_serves(addr).await;
}

#[tokio::test]
async fn exclusive_queue_of_another_connection_is_locked() {
    let (_b, addr) = broker().await;
    let mut owner = Raw::handshake(addr).await;
    let q = owner.declare_queue(1).await;
    let mut other = Raw::handshake(addr).await;
    other
        .send_method(
            1,
            QueueDeclare {
                queue: q,
                passive: true,
                ..QueueDeclare::default()
            },
        )
        .await;
    other
        .expect_channel_close(1, ReplyCode::ResourceLocked)
        .await;
    assert_serves(addr).await;
}
