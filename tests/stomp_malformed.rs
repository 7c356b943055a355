//! STOMP bad input at the raw-TCP level: each case gets an ERROR frame (its
//! `message` header, `receipt-id` when the bad frame's `receipt` was read), the
//! socket closes, and afterwards the broker still serves a fresh client.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use dwbroker_codecs::stomp::{Command, Frame, Version};

use common::stomp_raw::{assert_stomp_serves, connect_frame, send_frame, unique, StompRaw};

const MAX_LINE: usize = 256;
const MAX_HEADERS: usize = 8;
const MAX_BODY: u32 = 1024;

/// A broker with small STOMP limits.
async fn broker() -> (dwbroker::Broker, SocketAddr) {
    broker_with(|_| {}).await
}

async fn broker_with(
    tweak: impl FnOnce(&mut dwbroker::config::Config),
) -> (dwbroker::Broker, SocketAddr) {
    let (broker, _) = common::start_with(|c| {
        c.limits.stomp_max_header_line = MAX_LINE;
        c.limits.stomp_max_headers = MAX_HEADERS;
        c.limits.max_message_size = MAX_BODY;
        tweak(c);
    })
    .await;
    let addr = broker.stomp_addr().expect("stomp listener");
    (broker, addr)
}

/// Sends `bytes` on a 1.2 connection and expects ERROR `message` (with `receipt`),
/// the close, and a broker that still serves.
async fn connected_sends(
    addr: SocketAddr,
    bytes: &[u8],
    message: &str,
    receipt: Option<&str>,
) -> Frame {
    let mut c = StompRaw::connected(addr).await;
    c.send_bytes(bytes).await;
    let e = c.expect_error(message, receipt).await;
    assert_stomp_serves(addr).await;
    e
}

/// Sends `frame` on a 1.2 connection; same expectations.
async fn connected_sends_frame(
    addr: SocketAddr,
    frame: Frame,
    message: &str,
    receipt: Option<&str>,
) -> Frame {
    let mut c = StompRaw::connected(addr).await;
    c.send_frame(&frame).await;
    let e = c.expect_error(message, receipt).await;
    assert_stomp_serves(addr).await;
    e
}

fn body(f: &Frame) -> &str {
    std::str::from_utf8(&f.body).unwrap()
}

// --- Handshake -------------------------------------------------------------------------

#[tokio::test]
async fn version_mismatch_names_the_supported_versions() {
    let (_b, addr) = broker().await;
    for accept in ["2.0", "1.3,3.0", ""] {
        let mut c = StompRaw::connect(addr).await;
        c.send_frame(
            &Frame::new(Command::Connect)
                .with("accept-version", accept)
                .with("receipt", "r-v"),
        )
        .await;
        let e = c.expect_error("Version mismatch", Some("r-v")).await;
        assert!(body(&e).contains("1.0,1.1,1.2"), "{e:?}");
    }
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn bad_login_is_refused() {
    let (_b, addr) = broker().await;
    for (login, passcode) in [
        ("bob", Some("guest")),
        ("guest", Some("wrong")),
        ("guest", None),
    ] {
        let mut c = StompRaw::connect(addr).await;
        let mut f = Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("login", login);
        if let Some(p) = passcode {
            f = f.with("passcode", p);
        }
        c.send_frame(&f).await;
        let e = c.expect_error("Bad CONNECT", None).await;
        assert!(body(&e).contains(login), "{e:?}");
    }
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn invalid_heart_beat_header_is_refused() {
    let (_b, addr) = broker().await;
    for hb in ["100", "a,b", "-1,5", ""] {
        let mut c = StompRaw::connect(addr).await;
        c.send_frame(&connect_frame(Version::V1_2).with("heart-beat", hb))
            .await;
        c.expect_error("Invalid heart-beat header", None).await;
    }
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn frame_before_connect_is_an_illegal_command() {
    let (_b, addr) = broker().await;
    for f in [
        send_frame("/queue/x", b"early").with("receipt", "r-early"),
        Frame::new(Command::Subscribe)
            .with("id", "s")
            .with("destination", "/queue/x")
            .with("receipt", "r-early"),
        Frame::new(Command::Disconnect).with("receipt", "r-early"),
        // A server frame before CONNECT.
        Frame::new(Command::Connected).with("receipt", "r-early"),
    ] {
        let mut c = StompRaw::connect(addr).await;
        c.send_frame(&f).await;
        c.expect_error("Illegal command", Some("r-early")).await;
    }
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn second_connect_is_refused() {
    let (_b, addr) = broker().await;
    for cmd in [Command::Connect, Command::Stomp] {
        let mut f = connect_frame(Version::V1_2).with("receipt", "r-again");
        f.command = cmd;
        connected_sends_frame(addr, f, "Already connected", Some("r-again")).await;
    }
}

#[tokio::test]
async fn server_frames_from_the_client_are_illegal() {
    let (_b, addr) = broker().await;
    for cmd in [
        Command::Message,
        Command::Receipt,
        Command::Error,
        Command::Connected,
    ] {
        let f = Frame::new(cmd)
            .with("destination", "/queue/x")
            .with("receipt", "r-srv");
        let e = connected_sends_frame(addr, f, "Illegal command", Some("r-srv")).await;
        assert!(body(&e).contains(cmd.as_str()), "{e:?}");
    }
}

#[tokio::test]
async fn no_connect_in_time_closes_the_socket() {
    let (_b, addr) = broker_with(|c| c.limits.connect_timeout = Duration::from_secs(1)).await;
    let mut c = StompRaw::connect(addr).await;
    c.expect_closed().await;
    assert_stomp_serves(addr).await;
}

// --- Frame semantics -------------------------------------------------------------------

#[tokio::test]
async fn missing_destination_is_refused() {
    let (_b, addr) = broker().await;
    for cmd in [Command::Send, Command::Subscribe] {
        let f = Frame::new(cmd).with("id", "s").with("receipt", "r-md");
        connected_sends_frame(addr, f, "Missing destination", Some("r-md")).await;
    }
}

#[tokio::test]
async fn subscribe_without_id_is_refused_in_1_1_and_1_2() {
    let (_b, addr) = broker().await;
    for v in [Version::V1_1, Version::V1_2] {
        let (mut c, _) = StompRaw::connect_as(addr, v).await;
        c.send_frame(
            &Frame::new(Command::Subscribe)
                .with("destination", "/queue/x")
                .with("receipt", "r-id"),
        )
        .await;
        c.expect_error("Missing id", Some("r-id")).await;
    }
    // UNSUBSCRIBE without id (1.2) too.
    let f = Frame::new(Command::Unsubscribe).with("destination", "/queue/x");
    connected_sends_frame(addr, f, "Missing id", None).await;
}

#[tokio::test]
async fn unknown_destination_is_refused() {
    let (_b, addr) = broker().await;
    for d in ["/foo/bar", "queue/x", "", "/temp-queue"] {
        let f = Frame::new(Command::Subscribe)
            .with("id", "s")
            .with("destination", d)
            .with("receipt", "r-ud");
        let e = connected_sends_frame(addr, f, "Unknown destination", Some("r-ud")).await;
        assert!(body(&e).contains("Valid destination types"), "{e:?}");
    }
    let f = send_frame("/nowhere/x", b"?");
    connected_sends_frame(addr, f, "Unknown destination", None).await;
    // A known type with nothing after it is RabbitMQ's "Invalid destination".
    for (d, kind) in [("/queue/", "queue"), ("/topic/", "topic")] {
        let f = Frame::new(Command::Subscribe)
            .with("id", "s")
            .with("destination", d)
            .with("receipt", "r-id");
        let e = connected_sends_frame(addr, f, "Invalid destination", Some("r-id")).await;
        assert_eq!(body(&e), format!("'/' is not a valid {kind} destination\n"));
    }
    // A temporary queue is only a reply-to.
    let f = send_frame("/temp-queue/x", b"?").with("receipt", "r-tq");
    connected_sends_frame(addr, f, "Invalid destination", Some("r-tq")).await;
    let f = Frame::new(Command::Subscribe)
        .with("id", "s")
        .with("destination", "/temp-queue/x");
    connected_sends_frame(addr, f, "Invalid destination", None).await;
}

#[tokio::test]
async fn duplicated_subscription_id_is_refused() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("same", &format!("/queue/{}", unique("dup")), "auto")
        .await;
    c.send_frame(
        &Frame::new(Command::Subscribe)
            .with("id", "same")
            .with("destination", "/topic/other")
            .with("receipt", "r-dup"),
    )
    .await;
    let e = c
        .expect_error("Duplicated subscription identifier", Some("r-dup"))
        .await;
    assert!(body(&e).contains("same"), "{e:?}");
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn ack_of_an_unknown_message_is_refused() {
    let (_b, addr) = broker().await;
    for id in ["nope", "T_s@@session-1@@999", ""] {
        for cmd in [Command::Ack, Command::Nack] {
            let f = Frame::new(cmd).with("id", id).with("receipt", "r-um");
            connected_sends_frame(addr, f, "Unknown message", Some("r-um")).await;
        }
    }
    // An auto-mode delivery is not pending either.
    let q = format!("/queue/{}", unique("auto"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    c.send_to(&q, b"x").await;
    let m = c.message().await;
    c.send_frame(&Frame::new(Command::Ack).with("id", m.header("message-id").unwrap()))
        .await;
    c.expect_error("Unknown message", None).await;
    // ACK without any id header.
    connected_sends_frame(addr, Frame::new(Command::Ack), "Missing header", None).await;
}

#[tokio::test]
async fn unsubscribe_of_an_unknown_subscription_is_refused() {
    let (_b, addr) = broker().await;
    let f = Frame::new(Command::Unsubscribe)
        .with("id", "never")
        .with("receipt", "r-ns");
    connected_sends_frame(addr, f, "No subscription found", Some("r-ns")).await;
}

#[tokio::test]
async fn unknown_transaction_is_refused() {
    let (_b, addr) = broker().await;
    for f in [
        send_frame("/queue/x", b"?").with("transaction", "ghost"),
        Frame::new(Command::Commit).with("transaction", "ghost"),
        Frame::new(Command::Abort).with("transaction", "ghost"),
    ] {
        let e = connected_sends_frame(
            addr,
            f.with("receipt", "r-tx"),
            "Bad transaction",
            Some("r-tx"),
        )
        .await;
        assert!(body(&e).contains("ghost"), "{e:?}");
    }
    // An ACK in an unknown transaction (of a pending message).
    let q = format!("/queue/{}", unique("txack"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "client-individual").await;
    c.send_to(&q, b"x").await;
    let m = c.message().await;
    c.send_frame(
        &Frame::new(Command::Ack)
            .with("id", m.header("ack").unwrap())
            .with("transaction", "ghost"),
    )
    .await;
    c.expect_error("Bad transaction", None).await;
    // BEGIN without a name, and BEGIN twice.
    connected_sends_frame(
        addr,
        Frame::new(Command::Begin),
        "Missing transaction",
        None,
    )
    .await;
    let mut c = StompRaw::connected(addr).await;
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "t"))
        .await;
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "t"))
        .await;
    c.expect_error("Transaction already active", None).await;
    assert_stomp_serves(addr).await;
}

// --- Codec errors ----------------------------------------------------------------------

#[tokio::test]
async fn unknown_command_is_refused() {
    let (_b, addr) = broker().await;
    // Its headers are still read, so its receipt is echoed.
    for (raw, receipt) in [
        (&b"FOO\nreceipt:r-foo\n\n\0"[..], Some("r-foo")),
        (b"send\ndestination:/queue/x\n\n\0", None),
        (b"SEND \n\n\0", None),
    ] {
        let e = connected_sends(addr, raw, "Bad command", receipt).await;
        assert!(body(&e).contains("Could not interpret command"), "{e:?}");
    }
}

#[tokio::test]
async fn header_line_without_colon_is_malformed() {
    let (_b, addr) = broker().await;
    connected_sends(
        addr,
        b"SEND\nreceipt:r-colon\ndestination:/queue/x\nno colon here\n\nbody\0",
        "Malformed frame",
        Some("r-colon"),
    )
    .await;
    // Before CONNECT the same.
    let mut c = StompRaw::connect(addr).await;
    c.send_bytes(b"CONNECT\naccept-version\n\n\0").await;
    c.expect_error("Malformed frame", None).await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn undefined_escape_is_refused() {
    let (_b, addr) = broker().await;
    for raw in [
        &b"SEND\nreceipt:r-esc\ndestination:/queue/x\nk:a\\tb\n\n\0"[..],
        b"SEND\nreceipt:r-esc\ndestination:/queue/x\nk:ends with \\\n\n\0",
        b"SEND\nreceipt:r-esc\ndestination:/queue/x\nk\\x:v\n\n\0",
    ] {
        let e = connected_sends(addr, raw, "Invalid header escape", Some("r-esc")).await;
        assert!(body(&e).contains("escape"), "{e:?}");
    }
}

#[tokio::test]
async fn carriage_return_escape_is_undefined_in_1_1() {
    let (_b, addr) = broker().await;
    let (mut c, _) = StompRaw::connect_as(addr, Version::V1_1).await;
    c.send_bytes(b"SEND\nreceipt:r-cr\ndestination:/queue/x\nk:a\\rb\n\n\0")
        .await;
    c.expect_error("Invalid header escape", Some("r-cr")).await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn bad_content_length_is_malformed() {
    let (_b, addr) = broker().await;
    for cl in ["abc", "+5", "-1", "5 ", "0x10", "1e3"] {
        let raw =
            format!("SEND\nreceipt:r-cl\ndestination:/queue/x\ncontent-length:{cl}\n\nhello\0");
        let e = connected_sends(addr, raw.as_bytes(), "Malformed frame", Some("r-cl")).await;
        assert!(body(&e).contains("content-length"), "{e:?}");
    }
}

#[tokio::test]
async fn body_longer_than_content_length_is_malformed() {
    let (_b, addr) = broker().await;
    connected_sends(
        addr,
        b"SEND\nreceipt:r-long\ndestination:/queue/x\ncontent-length:3\n\nabcdef\0",
        "Malformed frame",
        Some("r-long"),
    )
    .await;
}

#[tokio::test]
async fn body_on_a_frame_without_one_is_malformed() {
    let (_b, addr) = broker().await;
    let q = format!("/queue/{}", unique("body"));
    for cmd in ["SUBSCRIBE", "BEGIN", "DISCONNECT"] {
        let raw =
            format!("{cmd}\nreceipt:r-b\nid:s\ndestination:{q}\ntransaction:t\n\nunexpected\0");
        let e = connected_sends(addr, raw.as_bytes(), "Malformed frame", Some("r-b")).await;
        assert!(body(&e).contains("cannot have a body"), "{e:?}");
    }
}

#[tokio::test]
async fn header_that_is_not_utf8_is_malformed() {
    let (_b, addr) = broker().await;
    connected_sends(
        addr,
        b"SEND\nreceipt:r-u\ndestination:/queue/x\nk:\xff\xfe\n\n\0",
        "Malformed frame",
        Some("r-u"),
    )
    .await;
}

// --- Limits ----------------------------------------------------------------------------

#[tokio::test]
async fn header_line_over_the_limit_is_too_large() {
    let (_b, addr) = broker().await;
    let long = "v".repeat(MAX_LINE);
    let raw = format!("SEND\nreceipt:r-line\ndestination:/queue/x\nk:{long}\n\n\0");
    let e = connected_sends(addr, raw.as_bytes(), "Frame too large", Some("r-line")).await;
    assert!(body(&e).contains(&MAX_LINE.to_string()), "{e:?}");
    // Exactly at the limit is fine.
    let mut c = StompRaw::connected(addr).await;
    let at_limit = "v".repeat(MAX_LINE - 2);
    c.send_with_receipt(send_frame("/queue/x", b"").with("k", &at_limit))
        .await;
    c.disconnect().await;
    // A command line over the limit.
    let raw = format!("{}\n\n\0", "S".repeat(MAX_LINE + 1));
    connected_sends(addr, raw.as_bytes(), "Frame too large", None).await;
}

#[tokio::test]
async fn header_line_sent_slowly_without_end_is_refused_at_the_limit() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connected(addr).await;
    c.send_bytes(b"SEND\nreceipt:r-slow\ndestination:/queue/x\nk:")
        .await;
    // A little over the limit in small chunks, and never a line end: the ERROR can
    // only come from the server refusing the line as it grows.
    for _ in 0..(MAX_LINE / 32 + 2) {
        let chunk = [b'x'; 32];
        if tokio::io::AsyncWriteExt::write_all(&mut c.stream, &chunk)
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.expect_error("Frame too large", Some("r-slow")).await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn too_many_headers_is_too_large() {
    let (_b, addr) = broker().await;
    let mut raw = String::from("SEND\nreceipt:r-many\ndestination:/queue/x\n");
    for i in 0..MAX_HEADERS {
        raw.push_str(&format!("h{i}:v\n"));
    }
    raw.push_str("\n\0");
    let e = connected_sends(addr, raw.as_bytes(), "Frame too large", Some("r-many")).await;
    assert!(body(&e).contains(&MAX_HEADERS.to_string()), "{e:?}");
    // Exactly the maximum is fine.
    let mut c = StompRaw::connected(addr).await;
    let mut f = send_frame("/queue/x", b"");
    for i in 0..MAX_HEADERS - 3 {
        f = f.with(&format!("h{i}"), "v");
    }
    c.send_with_receipt(f).await;
    c.disconnect().await;
}

#[tokio::test]
async fn announced_body_over_the_limit_is_refused_before_it_arrives() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connected(addr).await;
    // Only the headers: the 1 GiB body never comes.
    c.send_bytes(b"SEND\nreceipt:r-big\ndestination:/queue/x\ncontent-length:1073741824\n\n")
        .await;
    let e = c.expect_error("Frame too large", Some("r-big")).await;
    assert!(body(&e).contains("1073741824"), "{e:?}");
    // One byte over the limit, announced.
    let raw = format!(
        "SEND\ndestination:/queue/x\ncontent-length:{}\n\n",
        MAX_BODY + 1
    );
    connected_sends(addr, raw.as_bytes(), "Frame too large", None).await;
    // Exactly the limit is delivered.
    let q = format!("/queue/{}", unique("limit"));
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", &q, "auto").await;
    c.send_to(&q, &vec![7u8; MAX_BODY as usize]).await;
    assert_eq!(c.message().await.body.len(), MAX_BODY as usize);
}

#[tokio::test]
async fn unterminated_body_over_the_limit_is_too_large() {
    let (_b, addr) = broker().await;
    let mut raw = b"SEND\nreceipt:r-nul\ndestination:/queue/x\n\n".to_vec();
    raw.extend(std::iter::repeat_n(b'a', MAX_BODY as usize + 100));
    connected_sends(addr, &raw, "Frame too large", Some("r-nul")).await;
    // The NUL arriving in the same write as too many body bytes changes nothing.
    raw.push(0);
    connected_sends(addr, &raw, "Frame too large", Some("r-nul")).await;
}

// --- Not STOMP at all ------------------------------------------------------------------

#[tokio::test]
async fn garbage_bytes_are_refused() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connect(addr).await;
    c.send_bytes(b"\x00\x01\x02\xffgarbage\x7f\n\n\0").await;
    c.expect_error("Bad command", None).await;
    // Binary garbage without a line end: its first byte starts no command.
    let mut c = StompRaw::connect(addr).await;
    c.send_bytes(&[0xAB; 2 * MAX_LINE]).await;
    c.expect_error("Bad command", None).await;
    // A command-like line that never ends: over the line limit.
    let mut c = StompRaw::connect(addr).await;
    c.send_bytes(&[b'A'; 2 * MAX_LINE]).await;
    c.expect_error("Frame too large", None).await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn http_request_is_refused() {
    let (_b, addr) = broker().await;
    let mut c = StompRaw::connect(addr).await;
    c.send_bytes(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n")
        .await;
    let e = c.expect_error("Bad command", None).await;
    assert!(body(&e).contains("GET / HTTP/1.1"), "{e:?}");
    assert_stomp_serves(addr).await;
}

/// A TLS 1.2 ClientHello (no line feed in it).
fn client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03];
    hello.extend([0x42; 32]); // random
    hello.push(0); // session id
    hello.extend([0x00, 0x04, 0xc0, 0x2f, 0x00, 0x9c]); // cipher suites
    hello.extend([0x01, 0x00]); // compression: null
    let sni = b"localhost";
    let mut ext = vec![0x00, 0x00];
    let name_list_len = sni.len() + 3;
    ext.extend((name_list_len as u16 + 2).to_be_bytes());
    ext.extend((name_list_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend((sni.len() as u16).to_be_bytes());
    ext.extend(sni);
    hello.extend((ext.len() as u16).to_be_bytes());
    hello.extend(ext);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend((hello.len() as u16).to_be_bytes());
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

#[tokio::test]
async fn tls_client_hello_is_refused() {
    let (_b, addr) = broker().await;
    let hello = client_hello();
    assert!(!hello.contains(&b'\n'));
    // Its first byte (0x16) starts no command: refused at once, without waiting for a
    // line end that never comes.
    let mut c = StompRaw::connect(addr).await;
    c.send_bytes(&hello).await;
    c.expect_error("Bad command", None).await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn invalid_subscribe_headers_are_refused() {
    let (_b, addr) = broker_with(|c| c.limits.max_subscriptions_per_session = 2).await;
    let q = format!("/queue/{}", unique("subs"));
    for (name, value, message) in [
        ("ack", "sometimes", "Invalid ack mode"),
        ("prefetch-count", "many", "Invalid prefetch-count"),
        ("prefetch-count", "-1", "Invalid prefetch-count"),
    ] {
        let f = Frame::new(Command::Subscribe)
            .with("id", "s")
            .with("destination", &q)
            .with(name, value)
            .with("receipt", "r-sub");
        connected_sends_frame(addr, f, message, Some("r-sub")).await;
    }
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("a", &q, "auto").await;
    c.subscribe("b", &q, "auto").await;
    c.send_frame(
        &Frame::new(Command::Subscribe)
            .with("id", "c")
            .with("destination", &q),
    )
    .await;
    c.expect_error("Too many subscriptions", None).await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn transaction_over_the_byte_limit_is_refused() {
    let (_b, addr) = broker_with(|c| c.limits.max_queued_bytes = 2048).await;
    let mut c = StompRaw::connected(addr).await;
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "t"))
        .await;
    // Bodies and headers count: two of ~950 bytes fit, a third of ~350 does not.
    c.send_frame(&send_frame("/queue/x", &[b'a'; 900]).with("transaction", "t"))
        .await;
    c.send_frame(&send_frame("/queue/x", &[b'a'; 900]).with("transaction", "t"))
        .await;
    c.send_frame(
        &send_frame("/queue/x", &[b'a'; 300])
            .with("transaction", "t")
            .with("receipt", "r-big-tx"),
    )
    .await;
    c.expect_error("Transaction too large", Some("r-big-tx"))
        .await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn acks_held_by_a_transaction_are_bounded() {
    let (_b, addr) = broker_with(|c| c.limits.max_queued_bytes = 2048).await;
    let mut c = StompRaw::connected(addr).await;
    let q = format!("/queue/{}", unique("txack"));
    c.subscribe("s", &q, "client").await;
    c.send_to(&q, b"m").await;
    let m = c.message().await;
    let id = m.header("ack").expect("ack header").to_owned();
    c.send_frame(&Frame::new(Command::Begin).with("transaction", "t"))
        .await;
    // The same ACK again and again: each one held costs room in the budget.
    for _ in 0..100 {
        c.send_frame(
            &Frame::new(Command::Ack)
                .with("id", &id)
                .with("transaction", "t"),
        )
        .await;
    }
    c.expect_error("Transaction too large", None).await;
    assert_stomp_serves(addr).await;
}

#[tokio::test]
async fn temporary_queues_count_as_subscriptions() {
    let (_b, addr) = broker_with(|c| c.limits.max_subscriptions_per_session = 2).await;
    let mut c = StompRaw::connected(addr).await;
    for i in 0..2 {
        c.send_with_receipt(
            send_frame(&format!("/queue/{}", unique("req")), b"?")
                .with("reply-to", &format!("/temp-queue/r{i}")),
        )
        .await;
    }
    c.send_frame(
        &send_frame(&format!("/queue/{}", unique("req")), b"?")
            .with("reply-to", "/temp-queue/r2")
            .with("receipt", "r-third"),
    )
    .await;
    c.expect_error("Too many subscriptions", Some("r-third"))
        .await;
    assert_stomp_serves(addr).await;
}
