//! One bad-input case: bytes sent to one listener, and what the broker must answer.
//!
//! What the broker says is read back as a list of short lines, one per frame, packet or
//! response ("DISCONNECT 0x81", "connection.close 501", "ERROR Bad command", "-ERR
//! 'Unknown Protocol Operation'", "400 40001"), so a table row states its expectation
//! in the protocol's own terms and a failure shows what came instead.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use dwbroker_codecs::mqtt::{self, ProtocolVersion};
use dwbroker_codecs::stomp::{Received, StompCodec, StompLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::Decoder;

/// How long a case may take to get its answer (or its close).
const CASE_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Proto {
    Mqtt(ProtocolVersion),
    Amqp,
    Stomp,
    Nats,
    Http,
}

/// Where each listener is.
pub struct Ports {
    pub mqtt: SocketAddr,
    pub amqp: SocketAddr,
    pub stomp: SocketAddr,
    pub nats: SocketAddr,
    pub http: SocketAddr,
}

/// What the connection does after the answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum End {
    /// The broker closes it.
    Closed,
    /// It still works: the protocol's probe (PINGREQ, PING, a receipt, channel.open, a GET)
    /// is answered.
    Open,
}

pub struct Case {
    pub name: String,
    pub proto: Proto,
    /// Complete the protocol's handshake before sending (CONNECT/CONNACK, the AMQP
    /// connection and channel 1, STOMP CONNECTED, NATS CONNECT).
    pub session: bool,
    /// What is sent, each part after a pause.
    pub parts: Vec<(Duration, Vec<u8>)>,
    /// Shut the write side down after sending (a client that went away mid-frame).
    pub eof: bool,
    pub expect: Vec<String>,
    pub end: End,
}

impl Case {
    pub fn new(name: impl Into<String>, proto: Proto, bytes: impl Into<Vec<u8>>) -> Case {
        Case {
            name: name.into(),
            proto,
            session: false,
            parts: vec![(Duration::ZERO, bytes.into())],
            eof: false,
            expect: Vec::new(),
            end: End::Closed,
        }
    }

    /// Sent after the handshake.
    pub fn in_session(mut self) -> Case {
        self.session = true;
        self
    }

    /// Then `bytes`, after `pause`.
    pub fn then(mut self, pause: Duration, bytes: impl Into<Vec<u8>>) -> Case {
        self.parts.push((pause, bytes.into()));
        self
    }

    pub fn eof(mut self) -> Case {
        self.eof = true;
        self
    }

    /// The broker answers `said` and closes.
    pub fn closed(mut self, said: &[&str]) -> Case {
        self.expect = said.iter().map(|s| s.to_string()).collect();
        self.end = End::Closed;
        self
    }

    /// The broker answers `said` and the connection goes on.
    pub fn open(mut self, said: &[&str]) -> Case {
        self.expect = said.iter().map(|s| s.to_string()).collect();
        self.end = End::Open;
        self
    }
}

/// Runs a case; `Err` says how the answer differed.
pub async fn run(case: &Case, ports: &Ports) -> Result<(), String> {
    let deadline = Instant::now() + CASE_WAIT;
    let addr = match case.proto {
        Proto::Mqtt(_) => ports.mqtt,
        Proto::Amqp => ports.amqp,
        Proto::Stomp => ports.stomp,
        Proto::Nats => ports.nats,
        Proto::Http => ports.http,
    };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut conn = Conn {
        stream,
        buf: BytesMut::new(),
        said: Vec::new(),
        reader: Reader::new(case.proto),
        closed: false,
    };
    if case.session {
        let (hello, ready) = handshake(case.proto);
        conn.write(&hello).await?;
        conn.read_until(deadline, |said| said.iter().any(|s| s == ready))
            .await?;
        if case.proto == Proto::Amqp {
            // connection.open-ok, then channel 1.
            conn.write(&amqp_open_channel(1)).await?;
            conn.read_until(deadline, |said| {
                said.iter().any(|s| s == "channel.open-ok 1")
            })
            .await?;
        }
        conn.said.clear();
    }
    for (pause, bytes) in &case.parts {
        if !pause.is_zero() {
            tokio::time::sleep(*pause).await;
        }
        // A broker that closed early (refusing the rest) is an answer, not an error.
        if conn.write(bytes).await.is_err() {
            break;
        }
    }
    if case.eof {
        let _ = conn.stream.shutdown().await;
    }
    match case.end {
        End::Closed => {
            conn.read_until(deadline, |_| false).await?;
            if !conn.closed {
                return Err(format!(
                    "still open after {CASE_WAIT:?}; said {:?}",
                    conn.said
                ));
            }
        }
        End::Open => {
            let (probe, answer) = probe(case.proto);
            let _ = conn.write(&probe).await;
            let enough = case.expect.len() + 1;
            conn.read_until(deadline, |said| {
                said.len() >= enough && said.last().is_some_and(|s| s == answer)
            })
            .await?;
            if conn.said.last().map(String::as_str) != Some(answer) {
                return Err(format!("closed; said {:?}", conn.said));
            }
            conn.said.pop();
        }
    }
    if conn.said != case.expect {
        return Err(format!("said {:?}, expected {:?}", conn.said, case.expect));
    }
    Ok(())
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    said: Vec<String>,
    reader: Reader,
    closed: bool,
}

impl Conn {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads until `done` holds for what was said, the broker closes, or the deadline.
    async fn read_until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<(), String> {
        loop {
            self.reader.read(&mut self.buf, &mut self.said);
            if done(&self.said) || self.closed {
                return Ok(());
            }
            match timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => {
                    return Err(format!("no answer in {CASE_WAIT:?}; said {:?}", self.said));
                }
                // A reset is a close too: the broker may close with our bytes unread.
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.reader.read(&mut self.buf, &mut self.said);
                    if !self.buf.is_empty() {
                        self.said.push(format!("TRUNCATED {:02x?}", &self.buf[..]));
                    }
                    self.closed = true;
                    return Ok(());
                }
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// The client's side of each handshake, and the line that says it completed.
fn handshake(proto: Proto) -> (Vec<u8>, &'static str) {
    match proto {
        Proto::Mqtt(v) => {
            // Each session its own client id: a shared one would take the others over.
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (mqtt_connect(v, &format!("case-{n}")), "CONNACK 0x00")
        }
        Proto::Amqp => {
            let mut b = b"AMQP\x00\x00\x09\x01".to_vec();
            b.extend(amqp_method(0, 10, 11, |a| {
                a.extend(0u32.to_be_bytes()); // client properties: empty table
                short_str(a, "PLAIN");
                long_str(a, b"\0guest\0guest");
                short_str(a, "en_US");
            }));
            b.extend(amqp_method(0, 10, 31, |a| {
                a.extend(2047u16.to_be_bytes());
                a.extend(131_072u32.to_be_bytes());
                a.extend(0u16.to_be_bytes());
            }));
            b.extend(amqp_method(0, 10, 40, |a| {
                short_str(a, "/");
                short_str(a, "");
                a.push(0);
            }));
            (b, "connection.open-ok")
        }
        Proto::Stomp => (
            b"CONNECT\naccept-version:1.2\nhost:/\n\n\0".to_vec(),
            "CONNECTED",
        ),
        Proto::Nats => (b"CONNECT {\"verbose\":false}\r\nPING\r\n".to_vec(), "PONG"),
        Proto::Http => (Vec::new(), ""),
    }
}

/// A request that a working connection answers, and its answer.
fn probe(proto: Proto) -> (Vec<u8>, &'static str) {
    match proto {
        Proto::Mqtt(_) => (vec![0xC0, 0x00], "PINGRESP"),
        Proto::Amqp => (amqp_open_channel(2000), "channel.open-ok 2000"),
        Proto::Stomp => (
            b"BEGIN\ntransaction:probe-tx\nreceipt:probe\n\n\0".to_vec(),
            "RECEIPT probe",
        ),
        Proto::Nats => (b"PING\r\n".to_vec(), "PONG"),
        Proto::Http => (b"GET /topics HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(), "200"),
    }
}

/// A clean-start CONNECT with keep alive 60 s.
pub fn mqtt_connect(v: ProtocolVersion, client_id: &str) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT".to_vec();
    body.push(if v == ProtocolVersion::V5 { 5 } else { 4 });
    body.extend([0x02, 0x00, 0x3c]);
    if v == ProtocolVersion::V5 {
        body.push(0);
    }
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    crate::mqtt::packet(0x10, &body)
}

pub fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend(s.as_bytes());
}

pub fn long_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend((s.len() as u32).to_be_bytes());
    out.extend(s);
}

/// A method frame whose arguments `args` writes.
pub fn amqp_method(
    channel: u16,
    class: u16,
    method: u16,
    args: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend(class.to_be_bytes());
    payload.extend(method.to_be_bytes());
    args(&mut payload);
    amqp_frame(1, channel, &payload)
}

pub fn amqp_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend(channel.to_be_bytes());
    f.extend((payload.len() as u32).to_be_bytes());
    f.extend(payload);
    f.push(0xCE);
    f
}

pub fn amqp_open_channel(channel: u16) -> Vec<u8> {
    amqp_method(channel, 20, 10, |a| a.push(0))
}

/// Turns what the broker sent into lines, one per unit; what does not parse yet stays in
/// the buffer.
enum Reader {
    Mqtt(mqtt::Codec),
    Amqp,
    Stomp(StompCodec),
    Nats,
    Http,
}

impl Reader {
    fn new(proto: Proto) -> Reader {
        match proto {
            Proto::Mqtt(v) => Reader::Mqtt(mqtt::Codec::client(v, 1 << 24)),
            Proto::Amqp => Reader::Amqp,
            Proto::Stomp => Reader::Stomp(StompCodec::new(StompLimits {
                max_header_line: 1 << 20,
                max_headers: 10_000,
                max_body: 1 << 24,
            })),
            Proto::Nats => Reader::Nats,
            Proto::Http => Reader::Http,
        }
    }

    fn read(&mut self, buf: &mut BytesMut, said: &mut Vec<String>) {
        loop {
            let line = match self {
                Reader::Mqtt(codec) => match codec.decode(buf) {
                    Ok(Some(p)) => Some(mqtt_line(&p)),
                    Ok(None) => None,
                    Err(e) => Some(garbage(buf, &e.to_string())),
                },
                Reader::Amqp => amqp_line(buf),
                Reader::Stomp(codec) => match codec.decode(buf) {
                    Ok(Some(Received::Frame(f))) => Some(match f.command.as_str() {
                        "ERROR" => format!("ERROR {}", f.header("message").unwrap_or("")),
                        "RECEIPT" => format!("RECEIPT {}", f.header("receipt-id").unwrap_or("")),
                        "MESSAGE" => {
                            format!("MESSAGE {}", f.header("destination").unwrap_or(""))
                        }
                        other => other.to_string(),
                    }),
                    Ok(Some(_)) => continue, // a heart-beat
                    Ok(None) => None,
                    Err(e) => Some(garbage(buf, &e.to_string())),
                },
                Reader::Nats => nats_line(buf),
                Reader::Http => http_line(buf),
            };
            match line {
                Some(l) => said.push(l),
                None => return,
            }
        }
    }
}

fn garbage(buf: &mut BytesMut, why: &str) -> String {
    let line = format!("GARBAGE {why}: {:02x?}", &buf[..buf.len().min(32)]);
    buf.clear();
    line
}

fn mqtt_line(p: &mqtt::Packet) -> String {
    use mqtt::Packet::*;
    match p {
        ConnAck(a) => format!("CONNACK 0x{:02x}", a.code.0),
        Disconnect(d) => format!("DISCONNECT 0x{:02x}", d.code.0),
        PubAck(a) => format!("PUBACK {} 0x{:02x}", a.packet_id, a.code.0),
        PubRec(a) => format!("PUBREC {} 0x{:02x}", a.packet_id, a.code.0),
        PubRel(a) => format!("PUBREL {} 0x{:02x}", a.packet_id, a.code.0),
        PubComp(a) => format!("PUBCOMP {} 0x{:02x}", a.packet_id, a.code.0),
        SubAck(a) => format!(
            "SUBACK {} {:02x?}",
            a.packet_id,
            a.codes.iter().map(|c| c.0).collect::<Vec<_>>()
        ),
        UnsubAck(a) => format!(
            "UNSUBACK {} {:02x?}",
            a.packet_id,
            a.codes.iter().map(|c| c.0).collect::<Vec<_>>()
        ),
        PingResp => "PINGRESP".into(),
        Publish(p) => format!("PUBLISH {}", p.topic),
        other => format!("{other:?}"),
    }
}

fn amqp_line(buf: &mut BytesMut) -> Option<String> {
    if buf.starts_with(b"AMQP") {
        if buf.len() < 8 {
            return None;
        }
        let line = format!("HEADER {:?}", &buf[4..8]);
        buf.advance(8);
        return Some(line);
    }
    loop {
        if buf.len() < 7 {
            return None;
        }
        let kind = buf[0];
        let channel = u16::from_be_bytes([buf[1], buf[2]]);
        let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
        if buf.len() < 8 + size {
            return None;
        }
        let frame = buf.split_to(8 + size);
        let p = &frame[7..7 + size];
        match kind {
            8 => continue, // heartbeat
            1 if p.len() >= 4 => {
                let class = u16::from_be_bytes([p[0], p[1]]);
                let method = u16::from_be_bytes([p[2], p[3]]);
                let code = || p.get(4..6).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                return Some(match (class, method) {
                    (10, 50) => format!("connection.close {}", code()),
                    (20, 40) => format!("channel.close {channel} {}", code()),
                    (20, 11) => format!("channel.open-ok {channel}"),
                    (10, 10) => "connection.start".into(),
                    (10, 30) => "connection.tune".into(),
                    (10, 41) => "connection.open-ok".into(),
                    _ => dwbroker_codecs::amqp::Method::name_of(class, method)
                        .unwrap_or("unknown method")
                        .to_string(),
                });
            }
            other => return Some(format!("frame type {other}")),
        }
    }
}

fn nats_line(buf: &mut BytesMut) -> Option<String> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&buf[..end]).into_owned();
    if line.starts_with("MSG ") || line.starts_with("HMSG ") {
        // The payload follows; its size is the last argument.
        let size: usize = line
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if buf.len() < end + 2 + size + 2 {
            return None;
        }
        buf.advance(end + 2 + size + 2);
        let subject = line.split(' ').nth(1).unwrap_or("");
        return Some(format!("MSG {subject}"));
    }
    buf.advance(end + 2);
    Some(if line.starts_with("INFO ") {
        "INFO".into()
    } else {
        line
    })
}

/// One HTTP response as "<status>" or "<status> <error_code>" for a JSON error body.
fn http_line(buf: &mut BytesMut) -> Option<String> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    if buf.len() < head_end + 4 + len {
        return None;
    }
    let body = buf[head_end + 4..head_end + 4 + len].to_vec();
    buf.advance(head_end + 4 + len);
    let status = head.split(' ').nth(1).unwrap_or("?").to_string();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error_code").and_then(|c| c.as_i64()));
    Some(match code {
        Some(c) => format!("{status} {c}"),
        None => status,
    })
}
