//! AMQP 0-9-1 at the raw-TCP level, hand-built frames: the handshake as RabbitMQ does it
//! (capabilities, mechanisms, vhosts, tuning, heartbeats), frame-size edges, content
//! assembly, and the state errors not already in tests/amqp_malformed.rs. After every
//! case the broker still serves a fresh client.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use dwbroker_codecs::amqp::*;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use common::amqp_raw::{assert_amqp_serves, frame, AmqpRaw, FRAME_MAX};
use common::WAIT;

async fn broker() -> (dwbroker::Broker, SocketAddr) {
    broker_with(|_| {}).await
}

async fn broker_with(
    tweak: impl FnOnce(&mut dwbroker::config::Config),
) -> (dwbroker::Broker, SocketAddr) {
    let (broker, _) = common::start_with(tweak).await;
    let addr = broker.amqp_addr().expect("amqp listener");
    (broker, addr)
}

#[tokio::test]
async fn connection_start_offers_rabbitmqs_capabilities_mechanisms_and_locale() {
    let (_b, addr) = broker().await;
    let (_raw, start) = AmqpRaw::start(addr).await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let mechanisms = String::from_utf8_lossy(&start.mechanisms).to_string();
    let mechanisms: Vec<&str> = mechanisms.split_whitespace().collect();
    assert!(mechanisms.contains(&"PLAIN"), "{mechanisms:?}");
    assert!(mechanisms.contains(&"AMQPLAIN"), "{mechanisms:?}");
    let locales = String::from_utf8_lossy(&start.locales).to_string();
    assert!(
        locales.split_whitespace().any(|l| l == "en_US"),
        "{locales}"
    );
    let props = &start.server_properties;
    assert!(
        props
            .get("product")
            .and_then(FieldValue::as_str)
            .is_some_and(|p| !p.is_empty()),
        "{props:?}"
    );
    let Some(FieldValue::Table(caps)) = props.get("capabilities") else {
        panic!("no capabilities table: {props:?}");
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        assert_eq!(
            caps.get(cap).and_then(FieldValue::as_bool),
            Some(true),
            "capability {cap} in {caps:?}"
        );
    }
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn tune_offer_is_the_configured_limits() {
    let (_b, addr) = broker_with(|c| {
        c.limits.amqp_frame_max = 65_536;
        c.limits.amqp_channel_max = 16;
        c.limits.amqp_heartbeat = 30;
    })
    .await;
    let (_raw, tune) = AmqpRaw::tuned(addr).await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (16, 65_536, 30)
    );
}

#[tokio::test]
async fn amqplain_login_works() {
    let (_b, addr) = broker().await;
    let (mut raw, _) = AmqpRaw::start(addr).await;
    // AMQPLAIN: a field table without its length prefix.
    let mut resp = BytesMut::new();
    for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "guest")] {
        resp.put_u8(k.len() as u8);
        resp.put_slice(k.as_bytes());
        resp.put_u8(b'S');
        resp.put_u32(v.len() as u32);
        resp.put_slice(v.as_bytes());
    }
    raw.start_ok("AMQPLAIN", resp.freeze()).await;
    let Some((0, Method::ConnectionTune(_))) = raw.recv_method().await else {
        panic!("AMQPLAIN guest/guest refused");
    };
}

#[tokio::test]
async fn other_protocol_headers_get_0_9_1_back() {
    let (_b, addr) = broker().await;
    for header in [
        &b"AMQP\x00\x01\x00\x00"[..],        // AMQP 1.0
        b"AMQP\x03\x01\x00\x00",             // AMQP 1.0 SASL
        b"AMQP\x00\x00\x09\x02",             // no such revision
        b"\x16\x03\x01\x00\xa5\x01\x00\x00", // a TLS ClientHello
        b"amqp\x00\x00\x09\x01",             // wrong case
    ] {
        let mut raw = AmqpRaw::open(addr).await;
        raw.send(header).await;
        let mut got = Vec::new();
        timeout(WAIT, raw.stream.read_to_end(&mut got))
            .await
            .expect("closed in time")
            .unwrap();
        assert_eq!(got, PROTOCOL_HEADER, "answer to {header:?}");
    }
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn mechanism_not_offered_closes_without_a_word() {
    let (_b, addr) = broker().await;
    let (mut raw, _) = AmqpRaw::start(addr).await;
    raw.start_ok("EXTERNAL", Bytes::new()).await;
    raw.expect_closed().await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let (_b, addr) = broker().await;
    let (mut raw, tune) = AmqpRaw::tuned(addr).await;
    raw.send_method(
        0,
        ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: 0,
        },
    )
    .await;
    raw.open_vhost("no-such-vhost").await;
    let text = raw.expect_connection_close(ReplyCode::NotAllowed).await;
    assert!(
        text.contains("no-such-vhost") && text.contains("not found"),
        "{text}"
    );
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn tune_ok_frame_max_below_the_minimum_is_refused() {
    let (_b, addr) = broker().await;
    let (mut raw, tune) = AmqpRaw::tuned(addr).await;
    raw.send_method(
        0,
        ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: 4095,
            heartbeat: 0,
        },
    )
    .await;
    raw.expect_refused(&[ReplyCode::NotAllowed]).await;
    assert_amqp_serves(addr).await;
}

/// The spec's frame-min-size is 4096 (RabbitMQ accepts it): content goes out in
/// frames that fit.
#[tokio::test]
async fn tune_ok_frame_max_of_the_minimum_is_accepted() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake_with(
        addr,
        ConnectionTuneOk {
            channel_max: 16,
            frame_max: 4096,
            heartbeat: 0,
        },
    )
    .await;
    let q = raw.declare_queue(1).await;
    let body: Vec<u8> = (0..10_000).map(|i| (i % 251) as u8).collect();
    let mut b = BytesMut::new();
    AmqpRaw::publish_frames(1, &q, body.len() as u64, &mut b);
    for part in body.chunks(4096 - 8) {
        b.put_slice(&frame(3, 1, part, FRAME_END));
    }
    raw.send(&b).await;
    assert_eq!(raw.get_framed(1, &q, 4096).await, Some(body));
}

#[tokio::test]
async fn channel_frames_before_connection_open_are_refused() {
    let (_b, addr) = broker().await;
    let (mut raw, tune) = AmqpRaw::tuned(addr).await;
    raw.send_method(
        0,
        ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: 0,
        },
    )
    .await;
    raw.send_method(1, ChannelOpen::default()).await;
    raw.expect_refused(&[
        ReplyCode::CommandInvalid,
        ReplyCode::ChannelError,
        ReplyCode::UnexpectedFrame,
    ])
    .await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn handshake_timeout_closes_silent_sockets() {
    let (_b, addr) = broker_with(|c| c.limits.connect_timeout = Duration::from_millis(300)).await;
    // Nothing at all.
    let mut raw = AmqpRaw::open(addr).await;
    let mut got = Vec::new();
    timeout(WAIT, raw.stream.read_to_end(&mut got))
        .await
        .expect("closed by the handshake timeout")
        .unwrap();
    assert!(got.is_empty(), "{got:?}");
    // Header, then silence after connection.start.
    let (mut raw, _) = AmqpRaw::start(addr).await;
    raw.expect_refused(&[]).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn missed_client_heartbeats_close_the_socket() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake_with(
        addr,
        ConnectionTuneOk {
            channel_max: 2047,
            frame_max: FRAME_MAX,
            heartbeat: 1,
        },
    )
    .await;
    // Silent from here: within about two intervals the broker drops us, without a
    // negotiated close, having sent heartbeats of its own meanwhile.
    let t0 = tokio::time::Instant::now();
    let mut heartbeats = 0;
    loop {
        match raw.recv().await {
            None => break,
            Some(Frame::Heartbeat { channel: 0 }) => heartbeats += 1,
            Some(other) => panic!("expected heartbeats then close, got {other:?}"),
        }
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert!(heartbeats >= 1, "the broker sent no heartbeat");
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn client_heartbeats_keep_the_connection_alive() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake_with(
        addr,
        ConnectionTuneOk {
            channel_max: 2047,
            frame_max: FRAME_MAX,
            heartbeat: 1,
        },
    )
    .await;
    let mut hb = BytesMut::new();
    encode_heartbeat(&mut hb);
    for _ in 0..8 {
        raw.send(&hb).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // 3.2 s later, still open.
    let q = raw.declare_queue(1).await;
    raw.publish(1, &q, b"alive").await;
    assert_eq!(raw.get(1, &q).await.as_deref(), Some(&b"alive"[..]));
}

#[tokio::test]
async fn client_close_gets_close_ok_then_the_socket_closes() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send_method(
        0,
        ConnectionClose {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        },
    )
    .await;
    let Some((0, Method::ConnectionCloseOk(_))) = raw.recv_method().await else {
        panic!("no connection.close-ok");
    };
    raw.expect_closed().await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn a_closed_channel_number_can_be_opened_again() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send_method(
        1,
        ChannelClose {
            reply_code: 200,
            reply_text: "done".into(),
            class_id: 0,
            method_id: 0,
        },
    )
    .await;
    let Some((1, Method::ChannelCloseOk(_))) = raw.recv_method().await else {
        panic!("no channel.close-ok");
    };
    raw.open_channel(1).await;
    let q = raw.declare_queue(1).await;
    raw.publish(1, &q, b"again").await;
    assert_eq!(raw.get(1, &q).await.as_deref(), Some(&b"again"[..]));
}

#[tokio::test]
async fn second_channel_open_is_a_channel_error() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send_method(1, ChannelOpen::default()).await;
    let text = raw.expect_connection_close(ReplyCode::ChannelError).await;
    assert!(text.contains("second 'channel.open'"), "{text}");
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn channel_above_the_negotiated_channel_max_is_refused() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake_with(
        addr,
        ConnectionTuneOk {
            channel_max: 2,
            frame_max: FRAME_MAX,
            heartbeat: 0,
        },
    )
    .await;
    raw.open_channel(2).await;
    raw.send_method(3, ChannelOpen::default()).await;
    // The spec: channel-max is the highest number (504); RabbitMQ counts channels (530).
    raw.expect_refused(&[ReplyCode::ChannelError, ReplyCode::NotAllowed])
        .await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn non_connection_method_on_channel_zero_is_a_channel_error() {
    // RabbitMQ rabbit_reader:handle_method0: 504 "unexpected method in connection state".
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send_method(0, BasicQos::default()).await;
    raw.expect_connection_close(ReplyCode::ChannelError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn unknown_class_is_not_implemented() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.send(&frame(1, 1, &[0, 99, 0, 10], FRAME_END)).await;
    raw.expect_connection_close(ReplyCode::NotImplemented).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn frame_just_above_frame_max_is_a_frame_error() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    let n = FRAME_MAX as usize + 100;
    let mut b = BytesMut::new();
    AmqpRaw::publish_frames(1, &q, n as u64, &mut b);
    b.put_slice(&frame(3, 1, &vec![7u8; n], FRAME_END));
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::FrameError).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn body_frame_of_exactly_frame_max_is_accepted() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    let body: Vec<u8> = (0..FRAME_MAX as usize - 8)
        .map(|i| (i % 253) as u8)
        .collect();
    let mut b = BytesMut::new();
    AmqpRaw::publish_frames(1, &q, body.len() as u64, &mut b);
    b.put_slice(&frame(3, 1, &body, FRAME_END));
    raw.send(&b).await;
    assert_eq!(raw.get(1, &q).await, Some(body));
}

#[tokio::test]
async fn body_in_one_byte_frames_is_reassembled() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    let body = b"reassembled from many frames";
    let mut b = BytesMut::new();
    AmqpRaw::publish_frames(1, &q, body.len() as u64, &mut b);
    for byte in body {
        b.put_slice(&frame(3, 1, &[*byte], FRAME_END));
    }
    raw.send(&b).await;
    assert_eq!(raw.get(1, &q).await.as_deref(), Some(&body[..]));
}

#[tokio::test]
async fn empty_body_needs_no_body_frame() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    let mut b = BytesMut::new();
    AmqpRaw::publish_frames(1, &q, 0, &mut b);
    raw.send(&b).await;
    assert_eq!(raw.get(1, &q).await, Some(Vec::new()));
    // No stray body frame followed: the next answer is get-empty.
    assert_eq!(raw.get(1, &q).await, None);
}

#[tokio::test]
async fn content_may_interleave_with_other_channels() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(2).await;
    let mut b = BytesMut::new();
    AmqpRaw::publish_frames(1, &q, 6, &mut b);
    b.put_slice(&frame(3, 1, b"hal", FRAME_END));
    raw.send(&b).await;
    // A method on channel 2 between channel 1's body frames.
    raw.send_method(
        2,
        BasicQos {
            prefetch_count: 5,
            ..BasicQos::default()
        },
    )
    .await;
    let Some((2, Method::BasicQosOk(_))) = raw.recv_method().await else {
        panic!("no basic.qos-ok on channel 2");
    };
    raw.send(&frame(3, 1, b"ves", FRAME_END)).await;
    assert_eq!(raw.get(2, &q).await.as_deref(), Some(&b"halves"[..]));
}

#[tokio::test]
async fn content_header_of_another_class_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_method(1, &Method::BasicPublish(BasicPublish::default()), &mut b);
    encode_content_header(1, 50, 0, &BasicProperties::default(), &mut b);
    raw.send(&b).await;
    raw.expect_connection_close(ReplyCode::UnexpectedFrame)
        .await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn content_on_channel_zero_is_unexpected() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let mut b = BytesMut::new();
    encode_content_header(0, 60, 3, &BasicProperties::default(), &mut b);
    raw.send(&b).await;
    raw.expect_refused(&[ReplyCode::UnexpectedFrame]).await;
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn header_announcing_a_huge_body_is_refused_before_the_body() {
    let (_b, addr) = broker_with(|c| c.limits.max_message_size = 1024).await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    let mut b = BytesMut::new();
    AmqpRaw::publish_frames(1, &q, 1 << 40, &mut b);
    raw.send(&b).await;
    let text = raw
        .expect_channel_close(1, ReplyCode::PreconditionFailed)
        .await;
    assert!(text.contains("larger than"), "{text}");
    // Exactly the limit is accepted on a new channel.
    raw.open_channel(2).await;
    raw.publish(2, &q, &[1u8; 1024]).await;
    assert_eq!(raw.get(2, &q).await.map(|b| b.len()), Some(1024));
    assert_amqp_serves(addr).await;
}

#[tokio::test]
async fn frames_after_a_channel_close_are_discarded_until_close_ok() {
    let (_b, addr) = broker().await;
    let mut raw = AmqpRaw::handshake(addr).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(2).await;
    // Unknown delivery tag: channel 1 closes with 406.
    raw.send_method(
        1,
        BasicAck {
            delivery_tag: 7,
            multiple: false,
        },
    )
    .await;
    // Before answering close-ok the client still publishes on channel 1: discarded.
    raw.publish(1, &q, b"discarded").await;
    let (ch, m) = raw.recv_method().await.expect("channel.close");
    let Method::ChannelClose(close) = m else {
        panic!("expected channel.close, got {m:?}");
    };
    assert_eq!((ch, close.reply_code), (1, 406), "{}", close.reply_text);
    assert!(
        close.reply_text.contains("unknown delivery tag 7"),
        "{}",
        close.reply_text
    );
    raw.send_method(1, ChannelCloseOk {}).await;
    assert_eq!(
        raw.get(2, &q).await,
        None,
        "a frame after channel.close was acted on"
    );
    assert_amqp_serves(addr).await;
}

/// A delivery left unacknowledged past the consumer timeout closes its channel with
/// RabbitMQ's 406, and the message goes back to its queue.
#[tokio::test]
async fn an_unacked_delivery_past_the_consumer_timeout_closes_its_channel() {
    let (_b, addr) = broker_with(|c| {
        c.limits.amqp_consumer_timeout = Duration::from_millis(300);
    })
    .await;
    let mut raw = AmqpRaw::handshake(addr).await;
    let q = raw.declare_queue(1).await;
    raw.publish(1, &q, b"held").await;
    raw.send_method(
        1,
        BasicGet {
            queue: q.as_str().into(),
            no_ack: false,
            ..BasicGet::default()
        },
    )
    .await;
    let Some((1, Method::BasicGetOk(_))) = raw.recv_method().await else {
        panic!("expected get-ok");
    };
    // Its header and body.
    raw.recv().await.expect("content header");
    raw.recv().await.expect("content body");
    let text = raw
        .expect_channel_close(1, ReplyCode::PreconditionFailed)
        .await;
    assert!(
        text.contains(
            "delivery acknowledgement on channel 1 timed out. Timeout value used: 300 ms"
        ),
        "{text}"
    );
    raw.open_channel(2).await;
    assert_eq!(raw.get(2, &q).await.as_deref(), Some(&b"held"[..]));
}
