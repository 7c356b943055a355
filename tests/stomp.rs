//! The STOMP front at the raw-TCP level: handshake and heart-beats, receipts, each
//! destination kind, escaping and bodies, acknowledgement modes, prefetch,
//! transactions. Absence is always proven with a sentinel message sent after what
//! must not arrive.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use dwbroker_codecs::stomp::{Command, Frame, Received, Version};
use tokio::time::Instant;

use common::stomp_raw::{assert_stomp_serves, connect_frame, send_frame, unique, StompRaw};
use common::WAIT;

async fn broker() -> (dwbroker::Broker, SocketAddr) {
    let (broker, _) = common::start().await;
    let addr = broker.stomp_addr().expect("stomp listener");
    (broker, addr)
}

/// What acknowledges `m`: its `ack` header (1.2), else its `message-id`.
fn ack_id(m: &Frame) -> String {
    m.header("ack")
        .or_else(|| m.header("message-id"))
        .expect("an ack or message-id header")
        .to_owned()
}

fn ack(id: &str) -> Frame {
    Frame::new(Command::Ack).with("id", id)
}

fn nack(id: &str) -> Frame {
    Frame::new(Command::Nack).with("id", id)
}

fn body(m: &Frame) -> &str {
    std::str::from_utf8(&m.body).expect("a UTF-8 body")
}

// --- Handshake -------------------------------------------------------------------------

#[tokio::test]
async fn connect_negotiates_each_version() {
    let (_b, addr) = broker().await;
    let mut sessions = Vec::new();
    for v in Version::ALL {
        let (c, connected) = StompRaw::connect_as(addr, v).await;
        assert_eq!(connected.header("version"), Some(v.as_str()));
        let server = connected.header("server").expect("server header");
        assert!(server.starts_with("dwbroker/"), "{server}");
        let session = connected.header("session").expect("session header");
        assert!(!session.is_empty());
        sessions.push(session.to_owned());
        assert_eq!(connected.header("heart-beat"), Some("0,0"));
        assert!(connected.body.is_empty());
        c.disconnect().await;
    }
    sessions.dedup();
    assert_eq!(sessions.len(), 3, "each connection has its own session");
}

#[tokio::test]
async fn accept_version_picks_the_highest_common_and_defaults_to_1_0() {
    let (_b, addr) = broker().await;
    for (accept, want) in [
        (None, "1.0"),
        (Some("1.0"), "1.0"),
        (Some("1.0,1.1"), "1.1"),
        (Some("1.1,1.0,2.0"), "1.1"),
        (Some("1.2,1.0"), "1.2"),
        (Some("1.0,1.1,1.2"), "1.2"),
    ] {
        let mut f = Frame::new(Command::Connect);
        if let Some(a) = accept {
            f = f.with("accept-version", a);
        }
        let (c, connected) = StompRaw::handshake(addr, f).await;
        assert_eq!(connected.header("version"), Some(want), "{accept:?}");
        c.disconnect().await;
    }
}

#[tokio::test]
async fn stomp_frame_connects_like_connect() {
    let (_b, addr) = broker().await;
    let f = Frame::new(Command::Stomp)
        .with("accept-version", "1.1,1.2")
        .with("host", "stomp.example.com");
    let (mut c, connected) = StompRaw::handshake(addr, f).await;
    assert_eq!(connected.header("version"), Some("1.2"));
    assert!(connected.header("session").is_some());
    // It works like any connection.
    let q = format!("/queue/{}", unique("stompcmd"));
    c.subscribe("s", &q, "auto").await;
    c.send_to(&q, b"hi").await;
    assert_eq!(body(&c.message().await), "hi");
    c.disconnect().await;
}

#[tokio::test]
async fn login_is_optional_guest_is_accepted_and_any_host() {
    let (_b, addr) = broker().await;
    let anonymous = Frame::new(Command::Connect)
        .with("accept-version", "1.2")
        .with("host", "some-vhost-that-does-not-exist");
    let (c, connected) = StompRaw::handshake(addr, anonymous).await;
    assert_eq!(connected.header("version"), Some("1.2"));
    c.disconnect().await;
    let guest = connect_frame(Version::V1_1).with("host", "localhost");
    let (c, connected) = StompRaw::handshake(addr, guest).await;
    assert_eq!(connected.header("version"), Some("1.1"));
    c.disconnect().await;
}

// --- Heart-beats -----------------------------------------------------------------------

#[tokio::test]
async fn heart_beat_negotiation_mirrors_the_client_with_a_floor() {
    let (_b, addr) = broker().await;
    for (client, want) in [
        (None, "0,0"),
        (Some("0,0"), "0,0"),
        // sx = client's cy, sy = client's cx.
        (Some("500,300"), "300,500"),
        (Some("0,2000"), "2000,0"),
        (Some("2000,0"), "0,2000"),
        // Nothing faster than 100 ms either way.
        (Some("1,5"), "100,100"),
        (Some("0,99"), "100,0"),
    ] {
        let mut f = connect_frame(Version::V1_2);
        if let Some(hb) = client {
            f = f.with("heart-beat", hb);
        }
        let (_c, connected) = StompRaw::handshake(addr, f).await;
        assert_eq!(connected.header("heart-beat"), Some(want), "{client:?}");
    }
}

#[tokio::test]
async fn server_beats_an_idle_client_that_asks_for_it() {
    let (_b, addr) = broker().await;
    let f = connect_frame(Version::V1_2).with("heart-beat", "0,200");
    let (mut c, connected) = StompRaw::handshake(addr, f).await;
    assert_eq!(connected.header("heart-beat"), Some("200,0"));
    // At least three beats while idle, each well within the bounded wait.
    let start = Instant::now();
    let deadline = start + WAIT;
    for _ in 0..3 {
        match c.recv_until(deadline).await {
            Some(Received::Heartbeat) => {}
            other => panic!("expected a heart-beat, got {other:?}"),
        }
    }
    // Every 200 ms asked: three beats take well under 5 s (about 0.6 s).
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // The connection still works after the beats.
    c.send_with_receipt(Frame::new(Command::Begin).with("transaction", "t"))
        .await;
}

#[tokio::test]
async fn silent_client_that_promised_beats_is_closed() {
    let (_b, addr) = broker().await;
    let f = connect_frame(Version::V1_2).with("heart-beat", "200,0");
    let start = Instant::now();
    let (mut c, connected) = StompRaw::handshake(addr, f).await;
    assert_eq!(connected.header("heart-beat"), Some("0,200"));
    // The server gives up after twice the interval: a close, not an ERROR.
    c.expect_closed().await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn client_beats_keep_the_connection_open() {
    let (_b, addr) = broker().await;
    let f = connect_frame(Version::V1_2).with("heart-beat", "1000,0");
    let (mut c, connected) = StompRaw::handshake(addr, f).await;
    assert_eq!(connected.header("heart-beat"), Some("0,1000"));
    // 2.5 s of beats every 200 ms: more than twice the interval without a frame.
    for _ in 0..12 {
        c.send_bytes(b"\n").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.send_bytes(b"\r\n").await;
    c.send_with_receipt(Frame::new(Command::Begin).with("transaction", "t"))
        .await;
    c.disconnect().await;
}

#[tokio::test]
async fn a_frame_still_arriving_counts_as_client_activity() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("slow"));
    // The server expects a beat every 500 ms and gives up after 1 s of silence.
    let f = connect_frame(Version::V1_2).with("heart-beat", "500,0");
    let (mut c, _) = StompRaw::handshake(addr, f).await;
    let head = format!("SEND\ndestination:{q}\nreceipt:r-slow\ncontent-length:30\n\n");
    c.send_bytes(head.as_bytes()).await;
    // A byte every 100 ms: the client is never silent for long, but the frame takes
    // three seconds to arrive.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = tokio::io::AsyncWriteExt::write_all(&mut c.stream, b"x").await;
        assert!(sent.is_ok(), "the server closed the connection mid-frame");
    }
    c.send_bytes(b"\0").await;
    let r = c.next().await;
    assert_eq!(r.header("receipt-id"), Some("r-slow"), "{r:?}");
}

// --- Receipts --------------------------------------------------------------------------

#[tokio::test]
async fn every_frame_gets_its_receipt_and_disconnect_closes_after_it() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connected(addr).await;
    let q = format!("/queue/{}", unique("receipts"));
    let frames = [
        Frame::new(Command::Subscribe)
            .with("id", "s1")
            .with("destination", &q)
            .with("ack", "client-individual"),
        Frame::new(Command::Begin).with("transaction", "tx"),
        send_frame(&q, b"in tx").with("transaction", "tx"),
        Frame::new(Command::Abort).with("transaction", "tx"),
        Frame::new(Command::Begin).with("transaction", "tx2"),
        Frame::new(Command::Commit).with("transaction", "tx2"),
        Frame::new(Command::Unsubscribe).with("id", "s1"),
    ];
    // A frame held in a transaction gets its receipt when the transaction ends
    // (RabbitMQ's order): receipt-2 comes with the ABORT's.
    let expected: [&[&str]; 7] = [
        &["receipt-0"],
        &["receipt-1"],
        &[],
        &["receipt-2", "receipt-3"],
        &["receipt-4"],
        &["receipt-5"],
        &["receipt-6"],
    ];
    for (i, (f, want)) in frames.into_iter().zip(expected).enumerate() {
        let r = format!("receipt-{i}");
        c.send_frame(&f.with("receipt", &r)).await;
        for w in want {
            let got = c.next().await;
            assert_eq!(got.command, Command::Receipt, "{got:?}");
            assert_eq!(got.header("receipt-id"), Some(*w));
            assert!(got.body.is_empty());
        }
    }
    // A SEND's receipt comes after the message is routed; DISCONNECT's before the close.
    c.send_frame(&send_frame(&q, b"x").with("receipt", "last-send"))
        .await;
    assert_eq!(c.next().await.header("receipt-id"), Some("last-send"));
    c.send_frame(&Frame::new(Command::Disconnect).with("receipt", "bye"))
        .await;
    let got = c.next().await;
    assert_eq!(
        (got.command, got.header("receipt-id")),
        (Command::Receipt, Some("bye"))
    );
    c.expect_closed().await;
}

/// RabbitMQ sends the receipts of a transaction's SENDs when it commits, after
/// nothing before.
#[tokio::test]
async fn receipts_of_a_transactions_sends_come_at_commit() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connected(addr).await;
    let q = format!("/queue/{}", unique("txr"));
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "t"))
        .await;
    for i in 0..5 {
        c.send_frame(
            &send_frame(&q, b"m")
                .with("transaction", "t")
                .with("receipt", &format!("s{i}")),
        )
        .await;
    }
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), c.recv()).await;
    assert!(early.is_err(), "before COMMIT: {early:?}");
    c.send_frame(
        &Frame::new(Command::Commit)
            .with("transaction", "t")
            .with("receipt", "commit"),
    )
    .await;
    for want in ["s0", "s1", "s2", "s3", "s4", "commit"] {
        assert_eq!(c.next().await.header("receipt-id"), Some(want));
    }
}

// --- Destinations ----------------------------------------------------------------------

#[tokio::test]
async fn queue_destination_is_declared_on_first_use_and_maps_every_header() {
    let (_b, addr) = broker().await;
    let name = unique("q");
    let q = format!("/queue/{name}");
    let mut producer = StompRaw::connected(addr).await;
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 60_000;
    let reply_to = format!("/topic/{name}.replies");
    let f = send_frame(&q, b"{\"a\":1}")
        .with("content-type", "application/json")
        .with("persistent", "true")
        .with("reply-to", &reply_to)
        .with("correlation-id", "corr-1")
        .with("expires", &expires.to_string())
        .with("priority", "5")
        .with("amqp-message-id", "mid-1")
        .with("timestamp", "1700000000")
        .with("x-custom", "v1")
        .with("other", "v2")
        .with("x-custom", "ignored repeat");
    // Sent before anyone subscribes: the SEND declares the queue, which keeps it.
    producer.send_with_receipt(f).await;
    let (mut consumer, connected) = StompRaw::connect_as(addr, Version::V1_2).await;
    let session = connected.header("session").unwrap().to_owned();
    consumer.subscribe("sub-1", &q, "auto").await;
    let m = consumer.message().await;
    assert_eq!(body(&m), "{\"a\":1}");
    let names: Vec<&str> = m.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "subscription",
            "destination",
            "message-id",
            "redelivered",
            "content-type",
            "content-length",
            "persistent",
            "reply-to",
            "correlation-id",
            "expires",
            "priority",
            "amqp-message-id",
            "timestamp",
            "x-custom",
            "other",
        ],
        "{m:?}"
    );
    assert_eq!(m.header("subscription"), Some("sub-1"));
    assert_eq!(m.header("destination"), Some(q.as_str()));
    assert_eq!(
        m.header("message-id"),
        Some(format!("T_sub-1@@{session}@@1").as_str())
    );
    assert_eq!(m.header("redelivered"), Some("false"));
    assert_eq!(m.header("content-type"), Some("application/json"));
    assert_eq!(m.header("content-length"), Some("7"));
    assert_eq!(m.header("persistent"), Some("true"));
    assert_eq!(m.header("reply-to"), Some(reply_to.as_str()));
    assert_eq!(m.header("correlation-id"), Some("corr-1"));
    let got: u64 = m.header("expires").unwrap().parse().unwrap();
    assert!(got.abs_diff(expires) <= 2_000, "{got} vs {expires}");
    assert_eq!(m.header("priority"), Some("5"));
    assert_eq!(m.header("amqp-message-id"), Some("mid-1"));
    assert_eq!(m.header("timestamp"), Some("1700000000"));
    assert_eq!(m.header("x-custom"), Some("v1"));
    assert_eq!(m.header("other"), Some("v2"));
    // A second message gets the next delivery number.
    producer.send_to(&q, b"second").await;
    let m = consumer.message().await;
    assert_eq!(
        m.header("message-id"),
        Some(format!("T_sub-1@@{session}@@2").as_str())
    );
    assert_eq!(m.header("persistent"), None);
}

#[tokio::test]
async fn queue_destination_round_robins_between_subscribers() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("rr"));
    let mut a = StompRaw::connected(addr).await;
    let mut b = StompRaw::connected(addr).await;
    a.subscribe("a", &q, "auto").await;
    b.subscribe("b", &q, "auto").await;
    let mut p = StompRaw::connected(addr).await;
    for i in 0..4 {
        p.send_to(&q, format!("m{i}").as_bytes()).await;
    }
    let (a1, a2) = (a.message().await, a.message().await);
    let (b1, b2) = (b.message().await, b.message().await);
    let mut all: Vec<&str> = [&a1, &a2, &b1, &b2].into_iter().map(body).collect();
    all.sort_unstable();
    assert_eq!(all, ["m0", "m1", "m2", "m3"]);
}

#[tokio::test]
async fn topic_destination_fans_out_by_pattern() {
    let (_b, addr) = broker().await;
    let u = unique("t");
    let mut exact = StompRaw::connected(addr).await;
    let mut wild = StompRaw::connected(addr).await;
    exact.subscribe("e", &format!("/topic/{u}.x"), "auto").await;
    wild.subscribe("w", &format!("/topic/{u}.*"), "auto").await;
    wild.subscribe("end", &format!("/topic/{u}-end"), "auto")
        .await;
    exact
        .subscribe("end", &format!("/topic/{u}-end"), "auto")
        .await;
    let mut p = StompRaw::connected(addr).await;
    p.send_to(&format!("/topic/{u}.x"), b"to both").await;
    p.send_to(&format!("/topic/{u}.y"), b"to wild").await;
    p.send_to(&format!("/topic/{u}.x.z"), b"to nobody").await;
    p.send_to(&format!("/topic/{u}-end"), b"end").await;
    let m = exact.message().await;
    assert_eq!(
        (m.header("subscription"), m.header("destination"), body(&m)),
        (Some("e"), Some(format!("/topic/{u}.x").as_str()), "to both")
    );
    assert_eq!(body(&exact.message().await), "end");
    let m = wild.message().await;
    assert_eq!(
        (m.header("subscription"), m.header("destination"), body(&m)),
        (Some("w"), Some(format!("/topic/{u}.x").as_str()), "to both")
    );
    let m = wild.message().await;
    assert_eq!(
        (m.header("destination"), body(&m)),
        (Some(format!("/topic/{u}.y").as_str()), "to wild")
    );
    let m = wild.message().await;
    assert_eq!((m.header("subscription"), body(&m)), (Some("end"), "end"));
}

#[tokio::test]
async fn topic_messages_sent_before_subscribing_are_not_kept() {
    let (_b, addr) = broker().await;
    let t = format!("/topic/{}", unique("late"));
    let mut p = StompRaw::connected(addr).await;
    p.send_to_sync(&t, b"nobody listens").await;
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &t, "auto").await;
    p.send_to(&t, b"heard").await;
    assert_eq!(body(&c.message().await), "heard");
}

#[tokio::test]
async fn amq_queue_destination_needs_an_existing_queue() {
    let (_b, addr) = broker().await;
    let name = unique("amqq");
    let mut c = StompRaw::connected(addr).await;
    // /queue/ declares it; /amq/queue/ then reaches the same queue both ways.
    c.subscribe("declare", &format!("/queue/{name}"), "auto")
        .await;
    c.send_frame(&Frame::new(Command::Unsubscribe).with("id", "declare"))
        .await;
    c.subscribe("s", &format!("/amq/queue/{name}"), "auto")
        .await;
    c.send_to(&format!("/amq/queue/{name}"), b"via amq").await;
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), m.header("destination"), body(&m)),
        (
            Some("s"),
            Some(format!("/queue/{name}").as_str()),
            "via amq"
        )
    );
    c.disconnect().await;
    let mut c = StompRaw::connected(addr).await;
    c.send_frame(
        &Frame::new(Command::Subscribe)
            .with("id", "s")
            .with("destination", &format!("/amq/queue/{}", unique("missing")))
            .with("receipt", "r1"),
    )
    .await;
    let e = c.expect_error("not_found", Some("r1")).await;
    // RabbitMQ's wording: "no queue '...' in vhost '/'".
    assert!(body(&e).starts_with("no queue"), "{e:?}");
}

#[tokio::test]
async fn exchange_destination_binds_a_private_queue() {
    let (_b, addr) = broker().await;
    let k = unique("k");
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("d", &format!("/exchange/amq.direct/{k}"), "auto")
        .await;
    c.subscribe("f", "/exchange/amq.fanout", "auto").await;
    let mut p = StompRaw::connected(addr).await;
    p.send_to(&format!("/exchange/amq.direct/{k}-other"), b"no")
        .await;
    p.send_to(&format!("/exchange/amq.direct/{k}"), b"direct")
        .await;
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), m.header("destination"), body(&m)),
        (
            Some("d"),
            Some(format!("/exchange/amq.direct/{k}").as_str()),
            "direct"
        )
    );
    p.send_to(&format!("/exchange/amq.fanout/{k}"), b"fanout")
        .await;
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), m.header("destination"), body(&m)),
        (
            Some("f"),
            Some(format!("/exchange/amq.fanout/{k}").as_str()),
            "fanout"
        )
    );
    // A missing exchange is an error.
    p.send_frame(&send_frame(&format!("/exchange/{k}-nope/x"), b"?"))
        .await;
    p.expect_error("not_found", None).await;
}

#[tokio::test]
async fn temp_queue_reply_to_gets_the_reply() {
    let (_b, addr) = broker().await;
    let svc = format!("/queue/{}", unique("svc"));
    let mut responder = StompRaw::connected(addr).await;
    responder.subscribe("svc", &svc, "auto").await;
    let mut requester = StompRaw::connected(addr).await;
    requester
        .send_frame(
            &send_frame(&svc, b"question")
                .with("reply-to", "/temp-queue/r")
                .with("correlation-id", "c-1"),
        )
        .await;
    let req = responder.message().await;
    assert_eq!(body(&req), "question");
    let reply_to = req.header("reply-to").expect("reply-to").to_owned();
    assert!(reply_to.starts_with("/reply-queue/amq.gen-"), "{reply_to}");
    responder
        .send_frame(
            &send_frame(&reply_to, b"answer")
                .with("correlation-id", req.header("correlation-id").unwrap()),
        )
        .await;
    let m = requester.message().await;
    assert_eq!(
        (
            m.header("subscription"),
            m.header("correlation-id"),
            body(&m)
        ),
        (Some("/temp-queue/r"), Some("c-1"), "answer")
    );
    // The same temp queue serves the next request.
    requester
        .send_frame(&send_frame(&svc, b"again").with("reply-to", "/temp-queue/r"))
        .await;
    let req = responder.message().await;
    assert_eq!(req.header("reply-to"), Some(reply_to.as_str()));
}

// --- Escaping and bodies ---------------------------------------------------------------

#[tokio::test]
async fn header_escapes_round_trip_in_1_2() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("esc"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    // Escaped by hand: name "we:ird", value "a:b\nc\\d\re".
    let raw = format!("SEND\ndestination:{q}\nwe\\cird:a\\cb\\nc\\\\d\\re\n\nbody\0");
    c.send_bytes(raw.as_bytes()).await;
    let m = c.message().await;
    assert_eq!(m.header("we:ird"), Some("a:b\nc\\d\re"), "{m:?}");
    // And through our encoder, to a 1.1 consumer (which has no \r escape).
    let (mut c11, _) = StompRaw::connect_as(addr, Version::V1_1).await;
    let q2 = format!("/queue/{}", unique("esc11"));
    c11.subscribe("s", &q2, "auto").await;
    c.send_frame(&send_frame(&q2, b"x").with("k", "x:y\nz\\w"))
        .await;
    let m = c11.message().await;
    assert_eq!(m.header("k"), Some("x:y\nz\\w"), "{m:?}");
}

#[tokio::test]
async fn binary_body_with_nuls_round_trips() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("bin"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    let payload: Vec<u8> = (0..4).flat_map(|_| 0u8..=255).collect();
    c.send_to(&q, &payload).await;
    c.send_to(&q, b"\0").await;
    let m = c.message().await;
    assert_eq!(m.header("content-length"), Some("1024"));
    assert_eq!(&m.body[..], &payload[..]);
    assert_eq!(&c.message().await.body[..], b"\0");
    // A body without content-length ends at the first NUL.
    c.send_bytes(format!("SEND\ndestination:{q}\n\nplain\0").as_bytes())
        .await;
    let m = c.message().await;
    assert_eq!((body(&m), m.header("content-length")), ("plain", Some("5")));
}

#[tokio::test]
async fn one_mib_body_round_trips() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("big"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    let payload: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    c.send_to(&q, &payload).await;
    let m = c.message().await;
    assert_eq!(m.header("content-length"), Some("1048576"));
    assert!(m.body[..] == payload[..], "the body differs");
}

// --- Acknowledgements ------------------------------------------------------------------

/// `n` messages "m1".."mn" to `q`, sent from a fresh connection.
async fn fill(addr: SocketAddr, q: &str, n: usize) {
    let mut p = StompRaw::connected(addr).await;
    for i in 1..=n {
        p.send_to(q, format!("m{i}").as_bytes()).await;
    }
    p.disconnect().await;
}

/// The bodies a fresh auto subscriber of `q` receives until `sentinel` (sent after it
/// subscribed), with their `redelivered` headers.
async fn drain_until_sentinel(addr: SocketAddr, q: &str) -> Vec<(String, String)> {
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("drain", q, "auto").await;
    c.send_to(q, b"sentinel").await;
    let mut got = Vec::new();
    loop {
        let m = c.message().await;
        if body(&m) == "sentinel" {
            return got;
        }
        got.push((
            body(&m).to_owned(),
            m.header("redelivered").unwrap().to_owned(),
        ));
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn client_ack_is_cumulative() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("cum"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client").await;
    fill(addr, &q, 3).await;
    let ms = [c.message().await, c.message().await, c.message().await];
    let names: Vec<&str> = ms[0].headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..5],
        [
            "subscription",
            "destination",
            "message-id",
            "ack",
            "redelivered"
        ]
    );
    for (i, m) in ms.iter().enumerate() {
        assert_eq!(body(m), format!("m{}", i + 1));
        // 1.2 in a client mode: an `ack` header equal to the message-id.
        assert_eq!(m.header("ack"), m.header("message-id"));
    }
    // ACK of m2 acknowledges m1 too.
    c.send_with_receipt(ack(&ack_id(&ms[1]))).await;
    c.disconnect().await;
    assert_eq!(
        drain_until_sentinel(addr, &q).await,
        pairs(&[("m3", "true")])
    );
}

#[tokio::test]
async fn client_individual_ack_acknowledges_one_message() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("ind"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 3).await;
    let ms = [c.message().await, c.message().await, c.message().await];
    c.send_with_receipt(ack(&ack_id(&ms[1]))).await;
    // Acknowledging it again: it is no longer known.
    c.send_frame(&ack(&ack_id(&ms[1]))).await;
    c.expect_error("Unknown message", None).await;
    assert_eq!(
        drain_until_sentinel(addr, &q).await,
        pairs(&[("m1", "true"), ("m3", "true")])
    );
}

#[tokio::test]
async fn nack_requeues_with_redelivered_true() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("nack"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 1).await;
    let m = c.message().await;
    assert_eq!(m.header("redelivered"), Some("false"));
    c.send_frame(&nack(&ack_id(&m))).await;
    let again = c.message().await;
    assert_eq!(
        (body(&again), again.header("redelivered")),
        ("m1", Some("true"))
    );
    assert_ne!(again.header("message-id"), m.header("message-id"));
    c.send_with_receipt(ack(&ack_id(&again))).await;
    c.disconnect().await;
    assert_eq!(drain_until_sentinel(addr, &q).await, pairs(&[]));
}

#[tokio::test]
async fn nack_without_requeue_drops_the_message() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("drop"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 1).await;
    let m = c.message().await;
    c.send_frame(&nack(&ack_id(&m)).with("requeue", "false"))
        .await;
    c.send_to(&q, b"sentinel").await;
    let next = c.message().await;
    assert_eq!(
        (body(&next), next.header("redelivered")),
        ("sentinel", Some("false"))
    );
}

/// stomp.py writes Python's `False`; RabbitMQ reads it as false.
#[tokio::test]
async fn nack_with_requeue_false_capitalised_drops_the_message() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("dropcap"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 1).await;
    let m = c.message().await;
    c.send_frame(&nack(&ack_id(&m)).with("requeue", "False"))
        .await;
    c.send_to(&q, b"sentinel").await;
    assert_eq!(body(&c.message().await), "sentinel");
}

/// STOMP 1.2 acknowledges by `id`; a message-id alone is RabbitMQ's
/// "Missing header" error.
#[tokio::test]
async fn a_1_2_ack_without_id_is_an_error() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("noid"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 1).await;
    let m = c.message().await;
    c.send_frame(&Frame::new(Command::Ack).with("message-id", &ack_id(&m)))
        .await;
    let e = c.expect_error("Missing header", None).await;
    assert!(body(&e).contains("'id'"), "{e:?}");
}

/// As RabbitMQ: a name with a `/` in a queue or topic destination, an empty
/// exchange name or a routing key with a `/` is "Invalid destination".
#[tokio::test]
async fn invalid_destinations_get_rabbitmqs_answer() {
    let (_b, addr) = broker().await;
    for (dest, body_text) in [
        (
            "/queue/bah/baz",
            "'/bah/baz' is not a valid queue destination\n",
        ),
        (
            "/topic/bah/baz",
            "'/bah/baz' is not a valid topic destination\n",
        ),
        (
            "/exchange//foo",
            "'//foo' is not a valid exchange destination\n",
        ),
        (
            "/exchange/x/a/b",
            "'/x/a/b' is not a valid exchange destination\n",
        ),
        ("/queue", "'' is not a valid queue destination\n"),
    ] {
        let mut c = StompRaw::connected(addr).await;
        c.send_frame(&send_frame(dest, b"x")).await;
        let e = c.expect_error("Invalid destination", None).await;
        assert_eq!(body(&e), body_text, "{dest}");
    }
    assert_stomp_serves(addr).await;
}

/// A durable subscription is found again by its id: without one it is refused.
#[tokio::test]
async fn a_durable_subscription_needs_an_id() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connected(addr).await;
    c.send_frame(
        &Frame::new(Command::Subscribe)
            .with("destination", "/topic/durable-invalid")
            .with("durable", "true"),
    )
    .await;
    c.expect_error("Missing Header", None).await;
}

/// `x-queue-name` names a subscription's queue, durable or not, so that AMQP can
/// publish to it through the default exchange (RabbitMQ's behaviour).
#[tokio::test]
async fn x_queue_name_names_the_subscription_queue() {
    let (b, addr) = broker().await;
    let name = unique("named");
    let mut c = StompRaw::connected(addr).await;
    c.subscribe_with(
        "n",
        "/topic/xqn",
        "auto",
        &[("x-queue-name", name.as_str())],
    )
    .await;
    let (_conn, ch) = common::amqp_channel(&b).await;
    ch.basic_publish(
        "".into(),
        name.as_str().into(),
        lapin::options::BasicPublishOptions::default(),
        b"by name",
        lapin::BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(body(&c.message().await), "by name");
}

/// A message routed with an empty key (a fanout's) shows its exchange
/// destination without a trailing `/`.
#[tokio::test]
async fn fanout_destination_has_no_trailing_slash() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("f", "/exchange/amq.fanout", "auto").await;
    c.send_to("/exchange/amq.fanout", b"all").await;
    let m = c.message().await;
    assert_eq!(m.header("destination"), Some("/exchange/amq.fanout"));
}

#[tokio::test]
async fn prefetch_count_one_holds_the_second_message_until_ack() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("pf"));
    let side = format!("/queue/{}", unique("side"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe_with("p", &q, "client-individual", &[("prefetch-count", "1")])
        .await;
    c.subscribe("side", &side, "auto").await;
    let mut p = StompRaw::connected(addr).await;
    p.send_to(&q, b"m1").await;
    p.send_to(&q, b"m2").await;
    p.send_to(&side, b"sentinel").await;
    let m1 = c.message().await;
    assert_eq!(body(&m1), "m1");
    // The side queue's sentinel, sent after m2, overtakes it: m2 is held.
    let s = c.message().await;
    assert_eq!(
        (s.header("subscription"), body(&s)),
        (Some("side"), "sentinel")
    );
    c.send_frame(&ack(&ack_id(&m1))).await;
    let m2 = c.message().await;
    assert_eq!((m2.header("subscription"), body(&m2)), (Some("p"), "m2"));
}

#[tokio::test]
async fn unacked_messages_are_requeued_at_disconnect() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("requeue"));
    let mut other = StompRaw::connected(addr).await;
    let mut first = StompRaw::connected(addr).await;
    first.subscribe("s", &q, "client").await;
    fill(addr, &q, 2).await;
    assert_eq!(body(&first.message().await), "m1");
    assert_eq!(body(&first.message().await), "m2");
    // The other subscriber arrives while both are held, then the first goes away
    // without a DISCONNECT.
    other.subscribe("o", &q, "client-individual").await;
    drop(first);
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = other.message().await;
        assert_eq!(m.header("redelivered"), Some("true"), "{m:?}");
        got.push(body(&m).to_owned());
        other.send_frame(&ack(&ack_id(&m))).await;
    }
    got.sort();
    assert_eq!(got, ["m1", "m2"]);
}

// --- Transactions ----------------------------------------------------------------------

#[tokio::test]
async fn commit_delivers_the_transaction_s_sends() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("commit"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    c.send_with_receipt(Frame::new(Command::Begin).with("transaction", "t1"))
        .await;
    for b in ["a", "b"] {
        c.send_frame(&send_frame(&q, b.as_bytes()).with("transaction", "t1"))
            .await;
    }
    c.send_to(&q, b"outside").await;
    assert_eq!(body(&c.message().await), "outside");
    c.send_with_receipt(Frame::new(Command::Commit).with("transaction", "t1"))
        .await;
    assert_eq!(body(&c.message().await), "a");
    assert_eq!(body(&c.message().await), "b");
}

#[tokio::test]
async fn abort_discards_the_transaction_s_sends() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("abort"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "t1"))
        .await;
    c.send_frame(&send_frame(&q, b"discarded").with("transaction", "t1"))
        .await;
    c.send_frame(&Frame::new(Command::Abort).with("transaction", "t1"))
        .await;
    c.send_to(&q, b"sentinel").await;
    assert_eq!(body(&c.message().await), "sentinel");
    // The transaction is gone.
    c.send_frame(&Frame::new(Command::Commit).with("transaction", "t1"))
        .await;
    c.expect_error("Bad transaction", None).await;
}

#[tokio::test]
async fn acks_in_a_transaction_apply_at_commit_only() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("txack"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 2).await;
    let (m1, m2) = (c.message().await, c.message().await);
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "aborted"))
        .await;
    c.send_frame(&ack(&ack_id(&m1)).with("transaction", "aborted"))
        .await;
    c.send_frame(&Frame::new(Command::Abort).with("transaction", "aborted"))
        .await;
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "committed"))
        .await;
    c.send_frame(&ack(&ack_id(&m2)).with("transaction", "committed"))
        .await;
    c.send_with_receipt(Frame::new(Command::Commit).with("transaction", "committed"))
        .await;
    c.disconnect().await;
    assert_eq!(
        drain_until_sentinel(addr, &q).await,
        pairs(&[("m1", "true")])
    );
}

#[tokio::test]
async fn open_transaction_is_aborted_at_disconnect() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("opentx"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 1).await;
    let m1 = c.message().await;
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "t"))
        .await;
    c.send_frame(&send_frame(&q, b"never").with("transaction", "t"))
        .await;
    c.send_frame(&ack(&ack_id(&m1)).with("transaction", "t"))
        .await;
    c.disconnect().await;
    // The ACK was not applied and the SEND not published.
    assert_eq!(
        drain_until_sentinel(addr, &q).await,
        pairs(&[("m1", "true")])
    );
}

// --- STOMP 1.0 and 1.1 -----------------------------------------------------------------

#[tokio::test]
async fn stomp_1_0_subscribes_without_id_and_acks_by_message_id() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("v10"));
    let (mut c, _) = StompRaw::connect_as(addr, Version::V1_0).await;
    c.send_with_receipt(
        Frame::new(Command::Subscribe)
            .with("destination", &q)
            .with("ack", "client"),
    )
    .await;
    fill(addr, &q, 2).await;
    let m1 = c.message().await;
    // The destination names the subscription; 1.0 has no `ack` header.
    assert_eq!(m1.header("subscription"), Some(q.as_str()));
    assert_eq!(m1.header("ack"), None);
    assert_eq!(body(&c.message().await), "m2");
    c.send_with_receipt(
        Frame::new(Command::Ack).with("message-id", m1.header("message-id").unwrap()),
    )
    .await;
    // UNSUBSCRIBE by destination; m2 stays unacknowledged, requeued at the end.
    c.send_with_receipt(Frame::new(Command::Unsubscribe).with("destination", &q))
        .await;
    c.disconnect().await;
    assert_eq!(
        drain_until_sentinel(addr, &q).await,
        pairs(&[("m2", "true")])
    );
}

#[tokio::test]
async fn stomp_1_1_acks_by_message_id_and_nacks() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("v11"));
    let (mut c, _) = StompRaw::connect_as(addr, Version::V1_1).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 2).await;
    let (m1, m2) = (c.message().await, c.message().await);
    assert_eq!(m1.header("ack"), None, "1.1 has no ack header");
    c.send_frame(
        &Frame::new(Command::Ack)
            .with("subscription", "s")
            .with("message-id", m1.header("message-id").unwrap()),
    )
    .await;
    c.send_frame(
        &Frame::new(Command::Nack)
            .with("subscription", "s")
            .with("message-id", m2.header("message-id").unwrap()),
    )
    .await;
    let again = c.message().await;
    assert_eq!(
        (body(&again), again.header("redelivered")),
        ("m2", Some("true"))
    );
}

#[tokio::test]
async fn unsubscribe_stops_deliveries() {
    let (_b, addr) = broker().await;
    let u = unique("unsub");
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("gone", &format!("/topic/{u}.a"), "auto").await;
    c.subscribe("kept", &format!("/topic/{u}.b"), "auto").await;
    let mut p = StompRaw::connected(addr).await;
    p.send_to(&format!("/topic/{u}.a"), b"before").await;
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), body(&m)),
        (Some("gone"), "before")
    );
    c.send_with_receipt(Frame::new(Command::Unsubscribe).with("id", "gone"))
        .await;
    p.send_to(&format!("/topic/{u}.a"), b"after").await;
    p.send_to(&format!("/topic/{u}.b"), b"sentinel").await;
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), body(&m)),
        (Some("kept"), "sentinel")
    );
    // The id can be used again.
    c.subscribe("gone", &format!("/topic/{u}.a"), "auto").await;
    p.send_to(&format!("/topic/{u}.a"), b"again").await;
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), body(&m)),
        (Some("gone"), "again")
    );
}

// --- Edge cases ------------------------------------------------------------------------

#[tokio::test]
async fn cumulative_ack_stays_within_its_subscription() {
    let (_b, addr) = broker().await;
    let (qa, qb) = (
        format!("/queue/{}", unique("cuma")),
        format!("/queue/{}", unique("cumb")),
    );
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("a", &qa, "client").await;
    c.subscribe("b", &qb, "client").await;
    fill(addr, &qa, 1).await;
    let a1 = c.message().await;
    fill(addr, &qb, 1).await;
    let b1 = c.message().await;
    assert_eq!(
        (a1.header("subscription"), b1.header("subscription")),
        (Some("a"), Some("b"))
    );
    // b1 came later than a1: acknowledging it must not acknowledge a1.
    c.send_with_receipt(ack(&ack_id(&b1))).await;
    c.disconnect().await;
    assert_eq!(
        drain_until_sentinel(addr, &qa).await,
        pairs(&[("m1", "true")])
    );
    assert_eq!(drain_until_sentinel(addr, &qb).await, pairs(&[]));
}

#[tokio::test]
async fn nack_in_client_mode_is_cumulative() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("cumnack"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client").await;
    fill(addr, &q, 3).await;
    let ms = [c.message().await, c.message().await, c.message().await];
    // NACK of m2 requeues m1 and m2; m3 stays with us.
    c.send_frame(&nack(&ack_id(&ms[1]))).await;
    let mut again = [c.message().await, c.message().await];
    again.sort_by(|x, y| x.body.cmp(&y.body));
    for (m, want) in again.iter().zip(["m1", "m2"]) {
        assert_eq!((body(m), m.header("redelivered")), (want, Some("true")));
    }
    // The redeliveries have the latest delivery numbers: acknowledging the last one
    // settles everything, m3 included.
    let last = again
        .iter()
        .max_by_key(|m| {
            let id = ack_id(m);
            id.rsplit_once("@@").unwrap().1.parse::<u64>().unwrap()
        })
        .unwrap();
    c.send_with_receipt(ack(&ack_id(last))).await;
    c.disconnect().await;
    assert_eq!(drain_until_sentinel(addr, &q).await, pairs(&[]));
}

#[tokio::test]
async fn messages_of_a_cancelled_subscription_can_still_be_acked() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("late-ack"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    fill(addr, &q, 2).await;
    let (m1, _m2) = (c.message().await, c.message().await);
    c.send_with_receipt(Frame::new(Command::Unsubscribe).with("id", "s"))
        .await;
    c.send_with_receipt(ack(&ack_id(&m1))).await;
    c.disconnect().await;
    // m2 was neither acknowledged nor lost.
    assert_eq!(
        drain_until_sentinel(addr, &q).await,
        pairs(&[("m2", "true")])
    );
}

#[tokio::test]
async fn message_expired_on_arrival_is_not_delivered() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("expired"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    c.send_frame(&send_frame(&q, b"stale").with("expires", "1"))
        .await;
    // expires:0 means never.
    c.send_frame(&send_frame(&q, b"fresh").with("expires", "0"))
        .await;
    let m = c.message().await;
    assert_eq!((body(&m), m.header("expires")), ("fresh", None));
}

#[tokio::test]
async fn crlf_line_ends_and_repeated_headers() {
    let (_b, addr) = broker().await;
    let (qa, qb) = (
        format!("/queue/{}", unique("crlf-a")),
        format!("/queue/{}", unique("crlf-b")),
    );
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("a", &qa, "auto").await;
    c.subscribe("b", &qb, "auto").await;
    // The first `destination` wins; CRLF ends lines; a repeated user header keeps
    // its first value.
    let raw = format!(
        "SEND\r\ndestination:{qa}\r\ndestination:{qb}\r\nk:first\r\nk:second\r\n\r\ncrlf\0\r\n\r\n"
    );
    c.send_bytes(raw.as_bytes()).await;
    c.send_to(&qb, b"sentinel").await;
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), m.header("k"), body(&m)),
        (Some("a"), Some("first"), "crlf")
    );
    let k_count = m.headers.iter().filter(|(n, _)| n == "k").count();
    assert_eq!(k_count, 1, "{m:?}");
    let m = c.message().await;
    assert_eq!(
        (m.header("subscription"), body(&m)),
        (Some("b"), "sentinel")
    );
}

#[tokio::test]
async fn stomp_1_0_headers_are_not_escaped() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("v10esc"));
    let (mut c10, _) = StompRaw::connect_as(addr, Version::V1_0).await;
    c10.send_with_receipt(
        Frame::new(Command::Subscribe)
            .with("destination", &q)
            .with("id", "s"),
    )
    .await;
    // A backslash sequence from a 1.0 client is literal text.
    c10.send_bytes(format!("SEND\ndestination:{q}\nk:a\\cb\\t\n\n1.0\0").as_bytes())
        .await;
    let m = c10.message().await;
    assert_eq!(m.header("k"), Some("a\\cb\\t"), "{m:?}");
    // A 1.2 publisher's value with a colon and a line break: the colon is written as
    // it is, the line break (which 1.0 cannot carry) as a space.
    let mut c12 = StompRaw::connected(addr).await;
    c12.send_frame(&send_frame(&q, b"1.2").with("k", "x:y\nz"))
        .await;
    let m = c10.message().await;
    assert_eq!((body(&m), m.header("k")), ("1.2", Some("x:y z")), "{m:?}");
}

#[tokio::test]
async fn many_frames_in_one_write_are_all_handled() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("pipeline"));
    let mut c = StompRaw::connected(addr).await;
    let mut out = bytes::BytesMut::new();
    Frame::new(Command::Subscribe)
        .with("id", "s")
        .with("destination", &q)
        .encode(Version::V1_2, &mut out);
    for i in 0..200 {
        send_frame(&q, format!("{i}").as_bytes()).encode(Version::V1_2, &mut out);
        out.extend_from_slice(b"\n");
    }
    c.send_bytes(&out).await;
    for i in 0..200 {
        assert_eq!(body(&c.message().await), i.to_string());
    }
}

#[tokio::test]
async fn a_frame_split_into_single_bytes_is_decoded() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("split"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    let mut out = bytes::BytesMut::new();
    send_frame(&q, b"a\0b")
        .with("k", "x:y")
        .encode(Version::V1_2, &mut out);
    for b in out.iter() {
        c.send_bytes(&[*b]).await;
        tokio::task::yield_now().await;
    }
    let m = c.message().await;
    assert_eq!((&m.body[..], m.header("k")), (&b"a\0b"[..], Some("x:y")));
}

#[tokio::test]
async fn prefetch_with_cumulative_ack_releases_every_acked_message() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("pfcum"));
    let side = format!("/queue/{}", unique("side"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe_with("p", &q, "client", &[("prefetch-count", "2")])
        .await;
    c.subscribe("side", &side, "auto").await;
    let mut p = StompRaw::connected(addr).await;
    for i in 1..=5 {
        p.send_to(&q, format!("m{i}").as_bytes()).await;
    }
    p.send_to(&side, b"sentinel").await;
    let (m1, m2) = (c.message().await, c.message().await);
    assert_eq!((body(&m1), body(&m2)), ("m1", "m2"));
    let m = c.message().await;
    assert_eq!(body(&m), "sentinel", "only two in flight");
    // One cumulative ACK frees both slots.
    c.send_frame(&ack(&ack_id(&m2))).await;
    let (m3, m4) = (c.message().await, c.message().await);
    assert_eq!((body(&m3), body(&m4)), ("m3", "m4"));
    p.send_to(&side, b"sentinel 2").await;
    assert_eq!(body(&c.message().await), "sentinel 2");
    c.send_frame(&ack(&ack_id(&m4))).await;
    assert_eq!(body(&c.message().await), "m5");
}

#[tokio::test]
async fn queue_arguments_come_from_the_declaring_frame() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("maxlen"));
    let mut p = StompRaw::connected(addr).await;
    // The first SEND declares it with a maximum length of 2 (drop-head).
    p.send_with_receipt(send_frame(&q, b"m1").with("x-max-length", "2"))
        .await;
    for b in ["m2", "m3"] {
        p.send_to_sync(&q, b.as_bytes()).await;
    }
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    assert_eq!(body(&c.message().await), "m2");
    assert_eq!(body(&c.message().await), "m3");
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("excl"));
    let mut owner = StompRaw::connected(addr).await;
    owner
        .subscribe_with("s", &q, "auto", &[("exclusive", "true")])
        .await;
    let mut other = StompRaw::connected(addr).await;
    other
        .send_frame(
            &Frame::new(Command::Subscribe)
                .with("id", "s")
                .with("destination", &q),
        )
        .await;
    other.expect_error("resource_locked", None).await;
    owner.send_to(&q, b"mine").await;
    assert_eq!(body(&owner.message().await), "mine");
}

#[tokio::test]
async fn frames_after_disconnect_or_an_error_are_not_processed() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("after"));
    let mut c = StompRaw::connected(addr).await;
    let mut out = bytes::BytesMut::new();
    Frame::new(Command::Disconnect)
        .with("receipt", "bye")
        .encode(Version::V1_2, &mut out);
    send_frame(&q, b"after disconnect").encode(Version::V1_2, &mut out);
    c.send_bytes(&out).await;
    assert_eq!(c.next().await.header("receipt-id"), Some("bye"));
    c.expect_closed().await;
    let mut c = StompRaw::connected(addr).await;
    let mut out = bytes::BytesMut::new();
    Frame::new(Command::Subscribe)
        .with("id", "x")
        .encode(Version::V1_2, &mut out);
    send_frame(&q, b"after error").encode(Version::V1_2, &mut out);
    c.send_bytes(&out).await;
    c.expect_error("Missing destination", None).await;
    assert_eq!(drain_until_sentinel(addr, &q).await, pairs(&[]));
}

#[tokio::test]
async fn publisher_paused_under_memory_pressure_resumes_when_drained() {
    let (b, _) = common::start_with(|c| c.limits.memory_high_watermark = 64 * 1024).await;
    let addr = b.stomp_addr().unwrap();
    let q = format!("/queue/{}", unique("flow"));
    let mut p = StompRaw::connected(addr).await;
    // 400 KiB for a queue nobody consumes yet: well over the watermark.
    let payload = vec![b'x'; 4096];
    for _ in 0..100 {
        p.send_to(&q, &payload).await;
    }
    p.send_frame(&send_frame(&q, b"last").with("receipt", "done"))
        .await;
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    for _ in 0..100 {
        let m = c.message().await;
        assert_eq!(m.body.len(), 4096);
        c.send_frame(&ack(&ack_id(&m))).await;
    }
    assert_eq!(body(&c.message().await), "last");
    let r = p.next().await;
    assert_eq!(r.header("receipt-id"), Some("done"));
}

#[tokio::test]
async fn nack_without_requeue_dead_letters_when_the_queue_says_so() {
    let (_b, addr) = broker().await;
    let (src, dlq) = (unique("dlsrc"), unique("dlq"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("dead", &format!("/queue/{dlq}"), "auto").await;
    // The subscription declares the source queue with its dead-letter arguments.
    c.subscribe_with(
        "s",
        &format!("/queue/{src}"),
        "client-individual",
        &[
            ("x-dead-letter-exchange", ""),
            ("x-dead-letter-routing-key", &dlq),
        ],
    )
    .await;
    fill(addr, &format!("/queue/{src}"), 1).await;
    let m = c.message().await;
    assert_eq!(m.header("subscription"), Some("s"));
    c.send_frame(&nack(&ack_id(&m)).with("requeue", "false"))
        .await;
    let d = c.message().await;
    assert_eq!(
        (d.header("subscription"), d.header("destination"), body(&d)),
        (Some("dead"), Some(format!("/queue/{dlq}").as_str()), "m1")
    );
}

// --- Review regressions ------------------------------------------------------------------

#[tokio::test]
async fn durable_unsubscribe_never_deletes_a_shared_queue() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("shared"));
    let mut a = StompRaw::connected(addr).await;
    let mut other = StompRaw::connected(addr).await;
    other.subscribe("keep", &q, "auto").await;
    a.subscribe_with("d", &q, "auto", &[("durable", "true")])
        .await;
    a.send_with_receipt(
        Frame::new(Command::Unsubscribe)
            .with("id", "d")
            .with("durable", "true"),
    )
    .await;
    // The queue and its other consumer are still there.
    a.send_to_sync(&q, b"still here").await;
    assert_eq!(body(&other.message().await), "still here");
}

#[tokio::test]
async fn durable_subscriptions_sharing_an_id_keep_their_own_queues() {
    let (_b, addr) = broker().await;
    let (ta, tb) = (unique("ta"), unique("tb"));
    let durable = [("durable", "true"), ("auto-delete", "false")];
    let mut a = StompRaw::connected(addr).await;
    let mut b = StompRaw::connected(addr).await;
    a.subscribe_with("same", &format!("/topic/{ta}"), "auto", &durable)
        .await;
    b.subscribe_with("same", &format!("/topic/{tb}"), "auto", &durable)
        .await;
    let mut p = StompRaw::connected(addr).await;
    p.send_to_sync(&format!("/topic/{ta}"), b"for a").await;
    p.send_to_sync(&format!("/topic/{tb}"), b"for b").await;
    assert_eq!(body(&a.message().await), "for a");
    assert_eq!(body(&b.message().await), "for b");
    // Neither got the other's message: a sentinel arrives next.
    p.send_to_sync(&format!("/topic/{ta}"), b"sentinel").await;
    assert_eq!(body(&a.message().await), "sentinel");
}

#[tokio::test]
async fn a_large_message_to_many_subscriptions_of_one_connection_all_arrive() {
    let (_b, addr) = broker().await;
    let topic = format!("/topic/{}", unique("big"));
    let mut c = StompRaw::connected(addr).await;
    for i in 0..40 {
        c.subscribe(&format!("s{i}"), &topic, "auto").await;
    }
    let big = vec![b'x'; 512 * 1024];
    let mut p = StompRaw::connected(addr).await;
    p.send_to_sync(&topic, &big).await;
    let mut subs = std::collections::HashSet::new();
    for _ in 0..40 {
        let m = c.message().await;
        assert_eq!(m.body.len(), big.len());
        subs.insert(m.header("subscription").unwrap_or_default().to_owned());
    }
    assert_eq!(subs.len(), 40, "each subscription got it once");
}
