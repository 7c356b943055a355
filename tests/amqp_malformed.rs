//! AMQP 0-9-1 bad input at the raw-TCP level: each case gets RabbitMQ's answer, and
//! afterwards the broker still serves a fresh client.

mod common;

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use dwbroker_codecs::amqp::*;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use common::amqp_raw::{assert_amqp_serves, frame, AmqpRaw};
use common::WAIT;

async fn broker() -> (dwbroker::Broker, SocketAddr) {
    let (broker, _) = common::start_with(|c| c.limits.max_message_size = 1024).await;
    let addr = broker.amqp_addr().expect("amqp listener");
    (broker, addr)
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_then_close() {
    let (_b, addr) = broker().await;
    for header in [&b"AMQP\x00\x00\x08\x00"[..], b"GET / HTTP/1.1\r\n\r\n"] {
        let mut raw = AmqpRaw::open(addr).await;
        raw.send(header).await;
        let mut got = Vec::new();
        timeout(WAIT, raw.stream.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, PROTOCOL_HEADER);
    }
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn bad_frame_end_is_a_frame_error() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send(&frame(8, 0, &[], 0x00)).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn unknown_frame_type_is_a_frame_error() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send(&frame(7, 0, &[], FRAME_END)).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn frame_above_frame_max_is_refused_before_its_payload() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    // Only the 7-byte header of a 1 GiB frame: the broker must not wait for it.
    let mut head = BytesMut::new();
    head.put_u8(3);
    head.put_u16(1);
    head.put_u32(1 << 30);
    raw.send(&head).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn method_on_a_channel_that_is_not_open_is_a_channel_error() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send_method(5, QueueDeclare::default()).await;
    raw.expect_connection_close(ReplyCode::ChannelError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn content_header_without_a_publish_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_content_header(1, 60, 3, &BasicProperties::default(), &mut b);
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn body_without_a_publish_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_body(1, b"abc", 131_072, &mut b);
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn body_larger_than_the_header_says_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_method(1, &Method::BasicPublish(BasicPublish::default()), &mut b);
    encode_content_header(1, 60, 2, &BasicProperties::default(), &mut b);
    encode_body(1, b"abcdef", 131_072, &mut b);
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn method_where_content_was_expected_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send_method(1, BasicPublish::default()).await;
    raw.send_method(1, BasicQos::default()).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn truncated_method_arguments_are_a_syntax_error() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    // queue.declare (50, 10) whose arguments stop after the ticket.
    raw.send(&frame(1, 1, &[0, 50, 0, 10, 0, 0], FRAME_END))
        .await;
    raw.expect_connection_close(ReplyCode::SyntaxError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn unknown_method_is_not_implemented() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send(&frame(1, 1, &[0, 60, 0, 99], FRAME_END)).await;
    raw.expect_connection_close(ReplyCode::NotImplemented).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn heartbeat_on_a_channel_is_a_frame_error() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send(&frame(8, 1, &[], FRAME_END)).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn wrong_password_is_access_refused() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::open(addr).await;
    raw.send(&PROTOCOL_HEADER).await;
    raw.recv_method().await.expect("connection.start");
    raw.start_ok("PLAIN", Bytes::from_static(b"\0guest\0wrong"))
        .await;
    let text = raw.expect_connection_close(ReplyCode::AccessRefused).await;
    assert!(text.contains("Login was refused"), "{text}");
    // Without the capability the socket is just closed.
    let mut raw = AmqpRaw::open(addr).await;
    raw.send(&PROTOCOL_HEADER).await;
    raw.recv_method().await.expect("connection.start");
    raw.start_ok_with("PLAIN", Bytes::from_static(b"\0guest\0wrong"), &[])
        .await;
    raw.expect_closed().await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn tune_ok_above_the_offer_closes_the_socket() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::open(addr).await;
    raw.send(&PROTOCOL_HEADER).await;
    raw.recv_method().await.expect("connection.start");
    raw.start_ok("PLAIN", Bytes::from_static(b"\0guest\0guest"))
        .await;
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
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn immediate_and_prefetch_size_are_not_implemented() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
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
    let mut raw = AmqpRaw::handshake(addr).await;
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
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn channel_errors_close_only_the_channel() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
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
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn exclusive_queue_of_another_connection_is_locked() {
    let (_b, addr) = broker().await;
    let mut owner = AmqpRaw::handshake(addr).await;
    let q = owner.declare_queue(1).await;
    let mut other = AmqpRaw::handshake(addr).await;
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
    assert_amqp_serves(addr).await;
}
