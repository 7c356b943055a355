//! The NATS front at the byte level: the handshake clients rely on, verbose mode,
//! and every bad input with nats-server's exact answer. After each error case a
//! fresh client must still be served.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A raw NATS connection that has read INFO.
struct Raw {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    info: serde_json::Value,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Raw {
        let (r, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut raw = Raw {
            reader: BufReader::new(r),
            writer,
            info: serde_json::Value::Null,
        };
        let line = raw.line().await.expect("INFO");
        let json = line.strip_prefix("INFO ").expect("INFO comes first");
        raw.info = serde_json::from_str(json).unwrap();
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// The next line without its CRLF; `None` at end of stream.
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("timed out waiting for a line")
            .unwrap_or(0);
        (n > 0).then(|| line.trim_end_matches("\r\n").to_owned())
    }

    /// Asserts that `expected` is the next line.
    async fn expect(&mut self, expected: &str) {
        assert_eq!(self.line().await.as_deref(), Some(expected));
    }

    /// Asserts that the server sends `-ERR '<text>'` and closes.
    async fn expect_err_and_close(&mut self, text: &str) {
        self.expect(&format!("-ERR '{text}'")).await;
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.reader.read_to_end(&mut rest))
            .await
            .expect("connection closed")
            .unwrap();
        assert!(
            rest.is_empty(),
            "after -ERR: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

/// Checks that a fresh client can still subscribe and receive.
async fn assert_nats_serves(addr: SocketAddr) {
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {}\r\nSUB ok 1\r\nPUB ok 2\r\nhi\r\nPING\r\n")
        .await;
    raw.expect("MSG ok 1 2").await;
    raw.expect("hi").await;
    raw.expect("PONG").await;
}

async fn nats_addr() -> (dwbroker::Broker, SocketAddr) {
    let (broker, _) = start_with(|c| {
        c.limits.nats_max_payload = 1024;
        c.limits.nats_max_control_line = 256;
    })
    .await;
    let addr = broker.nats_addr().unwrap();
    (broker, addr)
}

#[tokio::test]
async fn info_first_with_the_fields_clients_need() {
    let (_b, addr) = nats_addr().await;
    let raw = Raw::open(addr).await;
    let info = &raw.info;
    for key in [
        "server_id",
        "server_name",
        "version",
        "host",
        "client_id",
        "client_ip",
    ] {
        assert!(info.get(key).is_some(), "INFO lacks {key}: {info}");
    }
    assert_eq!(info["proto"], 1);
    assert_eq!(info["headers"], true);
    assert_eq!(info["max_payload"], 1024);
    assert_eq!(info["port"], addr.port());
    let version = info["version"].as_str().unwrap();
    let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
    assert!(version.starts_with("2.") && minor >= 10, "{version}");
}

#[tokio::test]
async fn connect_then_ping_is_answered_by_pong_next() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {\"verbose\":false,\"lang\":\"python3\",\"protocol\":1,\"headers\":true,\"no_responders\":true}\r\nPING\r\n")
        .await;
    raw.expect("PONG").await;
}

#[tokio::test]
async fn verbose_mode_acknowledges_every_op() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {\"verbose\":true}\r\n").await;
    raw.expect("+OK").await;
    raw.send(b"sub v 9\r\n").await; // op names are case-insensitive
    raw.expect("+OK").await;
    raw.send(b"PUB v 1\r\nx\r\n").await;
    raw.expect("+OK").await;
    raw.expect("MSG v 9 1").await;
    raw.expect("x").await;
    raw.send(b"UNSUB 9\r\nPING\r\n").await;
    raw.expect("+OK").await;
    raw.expect("PONG").await;
}

#[tokio::test]
async fn messages_with_headers_reach_a_client_without_headers_as_msg() {
    let (_b, addr) = nats_addr().await;
    let mut plain = Raw::open(addr).await;
    plain.send(b"CONNECT {}\r\nSUB h 1\r\nPING\r\n").await;
    plain.expect("PONG").await;
    let mut with = Raw::open(addr).await;
    with.send(b"CONNECT {\"headers\":true}\r\nSUB h 2\r\nPING\r\n")
        .await;
    with.expect("PONG").await;
    let mut publisher = Raw::open(addr).await;
    publisher
        .send(b"CONNECT {\"headers\":true}\r\nHPUB h 24 29\r\nNATS/1.0\r\nA: 1\r\nA: 2\r\n\r\nhello\r\n")
        .await;
    plain.expect("MSG h 1 5").await;
    plain.expect("hello").await;
    with.expect("HMSG h 2 24 29").await;
    with.expect("NATS/1.0").await;
    with.expect("A: 1").await;
    with.expect("A: 2").await;
    with.expect("").await;
    with.expect("hello").await;
}

#[tokio::test]
async fn unknown_operation_is_an_error_and_closes() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"FOO bar\r\n").await;
    raw.expect_err_and_close("Unknown Protocol Operation").await;
    assert_nats_serves(addr).await;
}

#[tokio::test]
async fn payload_above_max_payload_is_a_violation() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {}\r\nPUB big 2000\r\n").await;
    raw.expect_err_and_close("Maximum Payload Violation").await;
    assert_nats_serves(addr).await;
}

#[tokio::test]
async fn control_line_above_the_maximum_is_an_error() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    let mut line = b"PUB ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 400));
    raw.send(&line).await;
    raw.expect_err_and_close("maximum control line exceeded")
        .await;
    assert_nats_serves(addr).await;
}

#[tokio::test]
async fn payload_not_followed_by_crlf_is_a_protocol_error() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {}\r\nPUB a 2\r\nhello\r\n").await;
    raw.expect_err_and_close("Unknown Protocol Operation").await;
    assert_nats_serves(addr).await;
}

/// Nothing but CONNECT is accepted first (nats-server's answer when it has
/// authorization set up).
#[tokio::test]
async fn ops_before_connect_are_refused() {
    let (_b, addr) = nats_addr().await;
    for first in [&b"PING\r\n"[..], b"SUB a 1\r\n", b"PUB a 2\r\nhi\r\n"] {
        let mut raw = Raw::open(addr).await;
        raw.send(first).await;
        raw.expect_err_and_close("Authorization Violation").await;
    }
    assert_nats_serves(addr).await;
}

/// A client that never sends CONNECT is closed after `connect_timeout`, as
/// nats-server does after its auth_timeout.
#[tokio::test]
async fn no_connect_in_time_is_closed() {
    let (b, _) =
        start_with(|c| c.limits.connect_timeout = std::time::Duration::from_millis(300)).await;
    let addr = b.nats_addr().unwrap();
    let mut raw = Raw::open(addr).await;
    raw.expect_err_and_close("Authentication Timeout").await;
    // One that does is not.
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {}\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    raw.send(b"PING\r\n").await;
    raw.expect("PONG").await;
}

#[tokio::test]
async fn connect_errors() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {\"protocol\":2}\r\n").await;
    raw.expect_err_and_close("invalid client protocol").await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {\"no_responders\":true}\r\n").await;
    raw.expect_err_and_close("no responders requires headers support")
        .await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {not json\r\n").await;
    raw.expect_err_and_close("Unknown Protocol Operation").await;
    assert_nats_serves(addr).await;
}

#[tokio::test]
async fn invalid_sub_subject_keeps_the_connection() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {}\r\nSUB a..b 1\r\n").await;
    raw.expect("-ERR 'Invalid Subject'").await;
    raw.send(b"SUB a.> 2\r\nPUB a.b 1\r\nz\r\n").await;
    raw.expect("MSG a.b 2 1").await;
    raw.expect("z").await;
}

#[tokio::test]
async fn pedantic_invalid_publish_subject_keeps_the_connection() {
    let (_b, addr) = nats_addr().await;
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {\"pedantic\":true}\r\nSUB p.* 1\r\nPUB p.* 1\r\nx\r\n")
        .await;
    raw.expect("-ERR 'Invalid Publish Subject'").await;
    raw.send(b"PUB p.ok 1\r\ny\r\n").await;
    raw.expect("MSG p.ok 1 1").await;
    raw.expect("y").await;
}

#[tokio::test]
async fn stale_connection_after_unanswered_pings() {
    let (broker, _) = start_with(|c| {
        c.limits.nats_ping_interval = std::time::Duration::from_millis(200);
        c.limits.nats_max_pings_out = 2;
    })
    .await;
    let addr = broker.nats_addr().unwrap();
    let mut raw = Raw::open(addr).await;
    raw.send(b"CONNECT {}\r\n").await;
    raw.expect("PING").await;
    raw.expect("PING").await;
    raw.expect_err_and_close("Stale Connection").await;
    // Answering keeps it alive.
    let mut live = Raw::open(addr).await;
    live.send(b"CONNECT {}\r\n").await;
    for _ in 0..4 {
        live.expect("PING").await;
        live.send(b"PONG\r\n").await;
    }
}

#[tokio::test]
async fn slow_consumer_is_disconnected_and_the_publisher_is_not_blocked() {
    let (broker, _) = start_with(|c| c.limits.nats_max_pending = 64 * 1024).await;
    let addr = broker.nats_addr().unwrap();
    // A subscriber that never reads.
    let mut slow = Raw::open(addr).await;
    slow.send(b"CONNECT {}\r\nSUB flood 1\r\nPING\r\n").await;
    slow.expect("PONG").await;
    let mut publisher = Raw::open(addr).await;
    publisher.send(b"CONNECT {}\r\n").await;
    let payload = vec![b'x'; 1000];
    let mut op = b"PUB flood 1000\r\n".to_vec();
    op.extend_from_slice(&payload);
    op.extend_from_slice(b"\r\n");
    let batch: Vec<u8> = op.iter().copied().cycle().take(op.len() * 100).collect();
    for _ in 0..100 {
        publisher.send(&batch).await;
    }
    publisher.send(b"PING\r\n").await;
    publisher.expect("PONG").await;
    // The slow subscriber's connection is closed (no -ERR, as nats-server): reading
    // what it was sent ends at the close.
    let mut rest = Vec::new();
    // Detected when its queue overflows, or at the latest when a write to it has
    // been blocked for the 10 s write deadline.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        slow.reader.read_to_end(&mut rest),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the slow consumer was not closed"
    );
    assert_nats_serves(addr).await;
}

#[tokio::test]
async fn fan_out_to_many_sids_is_bounded_by_the_pending_limit() {
    let (broker, _) = start_with(|c| c.limits.nats_max_pending = 64 * 1024).await;
    let addr = broker.nats_addr().unwrap();
    let mut many = Raw::open(addr).await;
    let mut subs = b"CONNECT {}\r\n".to_vec();
    for sid in 0..200 {
        subs.extend_from_slice(format!("SUB fan {sid}\r\n").as_bytes());
    }
    subs.extend_from_slice(b"PING\r\n");
    many.send(&subs).await;
    many.expect("PONG").await;
    // One 1000-byte message is 200 copies (200 KB) for this connection: more than
    // it may have pending, so it is closed instead of growing the broker's memory.
    let mut publisher = Raw::open(addr).await;
    let mut op = b"CONNECT {}\r\nPUB fan 1000\r\n".to_vec();
    op.extend(std::iter::repeat_n(b'x', 1000));
    op.extend_from_slice(b"\r\nPING\r\n");
    publisher.send(&op).await;
    publisher.expect("PONG").await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, many.reader.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(
        rest.len() <= 64 * 1024 + 2048,
        "{} bytes were sent",
        rest.len()
    );
    assert_nats_serves(addr).await;
}
