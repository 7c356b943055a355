//! A raw STOMP client on our own codec, for byte-exact conversations
//! (tests/stomp.rs, tests/stomp_malformed.rs, tests/cross_protocol.rs).
//!
//! Frames are written with [`Frame::encode`] (or as raw bytes for malformed cases)
//! and the server's frames are read back with [`StompCodec`]: the commands are
//! shared, so the client-side decoder reads MESSAGE, RECEIPT, ERROR and CONNECTED.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use dwbroker_codecs::stomp::{Command, Frame, Received, StompCodec, StompLimits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::codec::Decoder;

use super::WAIT;

/// A raw STOMP connection.
pub struct StompRaw {
    pub stream: TcpStream,
    buf: BytesMut,
    codec: StompCodec,
    /// The version frames are encoded for (1.2 until a handshake says otherwise).
    pub version: Version,
    receipts: u64,
}

impl StompRaw {
    /// Opens a socket to the STOMP listener at `addr`.
    pub async fn connect(addr: SocketAddr) -> StompRaw {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connects in time")
            .expect("connects");
        StompRaw {
            stream,
            buf: BytesMut::new(),
            // Generous limits: the server's frames are trusted.
            codec: StompCodec::new(StompLimits {
                max_header_line: 1 << 20,
                max_headers: 100_000,
                max_body: 1 << 26,
            }),
            version: Version::V1_2,
            receipts: 0,
        }
    }

    /// Opens a socket and completes the handshake with `connect` (a CONNECT or STOMP
    /// frame); returns the CONNECTED frame. Later frames are encoded and decoded for
    /// the version CONNECTED names.
    pub async fn handshake(addr: SocketAddr, connect: Frame) -> (StompRaw, Frame) {
        let mut raw = StompRaw::connect(addr).await;
        raw.send_frame(&connect).await;
        let connected = raw.next().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        let version = connected
            .header("version")
            .map(|v| Version::parse(v).expect("a known version"))
            .unwrap_or(Version::V1_0);
        raw.set_version(version);
        (raw, connected)
    }

    /// Opens a socket and connects speaking `version` only (`accept-version` names it,
    /// login guest/guest); returns the CONNECTED frame.
    pub async fn connect_as(addr: SocketAddr, version: Version) -> (StompRaw, Frame) {
        let (raw, connected) = StompRaw::handshake(addr, connect_frame(version)).await;
        assert_eq!(connected.header("version"), Some(version.as_str()));
        (raw, connected)
    }

    /// Connects speaking 1.2.
    pub async fn connected(addr: SocketAddr) -> StompRaw {
        StompRaw::connect_as(addr, Version::V1_2).await.0
    }

    /// Sets the version frames are encoded and decoded for.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
        self.codec.set_version(version);
    }

    /// Writes raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Encodes `frame` for [`Self::version`] and writes it.
    pub async fn send_frame(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        frame.encode(self.version, &mut out);
        self.send_bytes(&out).await;
    }

    /// The next item from the server (frame or heart-beat), `None` once it closed the
    /// socket; panics if nothing arrives by `deadline`.
    pub async fn recv_until(&mut self, deadline: Instant) -> Option<Received> {
        loop {
            if let Some(r) = self
                .codec
                .decode(&mut self.buf)
                .expect("the server's frames decode")
            {
                return Some(r);
            }
            let n = timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for the server")
                .unwrap_or(0);
            if n == 0 {
                assert!(
                    self.buf.is_empty(),
                    "socket closed mid-frame: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        }
    }

    /// The next item within [`WAIT`].
    pub async fn recv(&mut self) -> Option<Received> {
        self.recv_until(Instant::now() + WAIT).await
    }

    /// The next frame (heart-beats skipped), or `None` once the socket closed.
    pub async fn try_next(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.recv_until(deadline).await? {
                Received::Frame(f) => return Some(f),
                Received::Heartbeat => continue,
            }
        }
    }

    /// The next frame (heart-beats skipped); panics on close or timeout.
    pub async fn next(&mut self) -> Frame {
        self.try_next()
            .await
            .expect("the server closed the connection")
    }

    /// The next frame, which must be a MESSAGE.
    pub async fn message(&mut self) -> Frame {
        let f = self.next().await;
        assert_eq!(f.command, Command::Message, "expected a MESSAGE: {f:?}");
        f
    }

    /// Asserts that the server closes the socket, sending nothing but heart-beats.
    pub async fn expect_closed(&mut self) {
        if let Some(f) = self.try_next().await {
            panic!("expected the connection to close, got {f:?}");
        }
    }

    /// Expects an ERROR frame with `message` (and `receipt-id` when `receipt` is
    /// given), the headers every ERROR has, then the socket closed. Returns the ERROR.
    pub async fn expect_error(&mut self, message: &str, receipt: Option<&str>) -> Frame {
        let f = self.next().await;
        assert_error(&f, message, receipt);
        self.expect_closed().await;
        f
    }

    /// Sends `frame` with a fresh `receipt` header and waits for its RECEIPT (the
    /// server has processed the frame).
    pub async fn send_with_receipt(&mut self, frame: Frame) {
        self.receipts += 1;
        let receipt = format!("r-{}", self.receipts);
        self.send_frame(&frame.with("receipt", &receipt)).await;
        let r = self.next().await;
        assert_eq!(r.command, Command::Receipt, "expected a RECEIPT: {r:?}");
        assert_eq!(r.header("receipt-id"), Some(receipt.as_str()));
    }

    /// Subscribes `id` to `destination` with `ack` mode; returns once it is in place.
    pub async fn subscribe(&mut self, id: &str, destination: &str, ack: &str) {
        self.subscribe_with(id, destination, ack, &[]).await;
    }

    /// Subscribes with extra headers; returns once it is in place.
    pub async fn subscribe_with(
        &mut self,
        id: &str,
        destination: &str,
        ack: &str,
        extra: &[(&str, &str)],
    ) {
        let mut f = Frame::new(Command::Subscribe)
            .with("id", id)
            .with("destination", destination)
            .with("ack", ack);
        for (n, v) in extra {
            f = f.with(n, v);
        }
        self.send_with_receipt(f).await;
    }

    /// SENDs `body` to `destination` (with a content-length).
    pub async fn send_to(&mut self, destination: &str, body: &[u8]) {
        self.send_frame(&send_frame(destination, body)).await;
    }

    /// A SEND and its receipt: the message is routed when this returns.
    pub async fn send_to_sync(&mut self, destination: &str, body: &[u8]) {
        self.send_with_receipt(send_frame(destination, body)).await;
    }

    /// DISCONNECT with a receipt; waits for the RECEIPT and the close.
    pub async fn disconnect(mut self) {
        self.send_with_receipt(Frame::new(Command::Disconnect))
            .await;
        self.expect_closed().await;
    }

    /// Reads items for `d` and returns how many heart-beats arrived (panics on a
    /// frame or a close).
    pub async fn heartbeats_for(&mut self, d: Duration) -> usize {
        let deadline = Instant::now() + d;
        let mut n = 0;
        loop {
            match timeout_at(deadline, self.recv_until(deadline + WAIT)).await {
                Err(_) => return n,
                Ok(Some(Received::Heartbeat)) => n += 1,
                Ok(other) => panic!("expected heart-beats only, got {other:?}"),
            }
        }
    }
}

/// The CONNECT frame of a client speaking only `version` (guest/guest, host `/`).
pub fn connect_frame(version: Version) -> Frame {
    Frame::new(Command::Connect)
        .with("accept-version", version.as_str())
        .with("host", "/")
        .with("login", "guest")
        .with("passcode", "guest")
}

/// A SEND of `body` to `destination` with its content-length.
pub fn send_frame(destination: &str, body: &[u8]) -> Frame {
    let mut f = Frame::new(Command::Send)
        .with("destination", destination)
        .with("content-length", &body.len().to_string());
    f.body = bytes::Bytes::copy_from_slice(body);
    f
}

/// Asserts that `f` is an ERROR with `message`, `receipt-id` when `receipt` is given
/// (and none otherwise), and the headers every ERROR carries.
pub fn assert_error(f: &Frame, message: &str, receipt: Option<&str>) {
    assert_eq!(f.command, Command::Error, "expected an ERROR: {f:?}");
    assert_eq!(f.header("message"), Some(message), "{f:?}");
    assert_eq!(f.header("receipt-id"), receipt, "{f:?}");
    assert_eq!(f.header("version"), Some("1.0,1.1,1.2"), "{f:?}");
    assert_eq!(f.header("content-type"), Some("text/plain"), "{f:?}");
    assert_eq!(
        f.header("content-length"),
        Some(f.body.len().to_string().as_str()),
        "{f:?}"
    );
    assert!(!f.body.is_empty(), "an ERROR explains itself: {f:?}");
    assert!(std::str::from_utf8(&f.body).is_ok(), "{f:?}");
}

/// A short unique name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", super::rand_suffix())
}

/// Checks that the broker still serves a fresh STOMP client: connect, subscribe,
/// send, receive.
pub async fn assert_stomp_serves(addr: SocketAddr) {
    let mut c = StompRaw::connected(addr).await;
    let q = format!("/queue/{}", unique("healthy"));
    c.subscribe("s", &q, "auto").await;
    c.send_to(&q, b"still here").await;
    let m = c.message().await;
    assert_eq!(&m.body[..], b"still here");
    assert_eq!(m.header("subscription"), Some("s"));
    c.disconnect().await;
}
