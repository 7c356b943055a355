//! Frames and the incremental decoder.
//!
//! The decoder consumes a frame line by line as it arrives and keeps what it parsed, so
//! every byte is scanned once however the input is split; the limits (line length,
//! header count, body size) are checked while scanning, before anything over them is
//! buffered.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::command::Command;
use super::error::StompError;
use super::header::{self, Version};

/// Most bytes reserved ahead for a body whose `content-length` is known: a client
/// announcing a large body must send it before the buffer grows further.
const MAX_RESERVE: usize = 1 << 20;

/// Headers, in wire order; a name may repeat and the first occurrence wins.
pub type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// The headers, unescaped.
    pub headers: Headers,
    /// The body (empty when there is none).
    pub body: Bytes,
}

impl Frame {
    /// A frame without headers or body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &str, value: &str) -> Frame {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The value of header `name` (its first occurrence).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Writes the frame for a peer speaking `version`, its headers as they are (add a
    /// `content-length` header for a body that may contain NUL).
    pub fn encode(&self, version: Version, out: &mut BytesMut) {
        let mut w = FrameWriter::start(out, self.command, version);
        for (name, value) in &self.headers {
            w.header(name, value);
        }
        w.finish(&self.body);
    }
}

/// Writes one frame header by header, escaping per version; nothing is allocated.
#[derive(Debug)]
pub struct FrameWriter<'a> {
    out: &'a mut BytesMut,
    version: Version,
    escaped: bool,
}

impl<'a> FrameWriter<'a> {
    /// Starts a `command` frame for a peer speaking `version`.
    pub fn start(out: &'a mut BytesMut, command: Command, version: Version) -> FrameWriter<'a> {
        out.put_slice(command.as_str().as_bytes());
        out.put_u8(b'\n');
        FrameWriter {
            out,
            version,
            escaped: !command.is_handshake(),
        }
    }

    /// Adds a header.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        header::encode(name, self.version, self.escaped, self.out);
        self.out.put_u8(b':');
        header::encode(value, self.version, self.escaped, self.out);
        self.out.put_u8(b'\n');
        self
    }

    /// Ends the headers, writes `body` and the NUL terminator.
    pub fn finish(self, body: &[u8]) {
        self.out.reserve(body.len() + 2);
        self.out.put_u8(b'\n');
        self.out.put_slice(body);
        self.out.put_u8(0);
    }
}

/// A heart-beat: one end-of-line between frames.
pub fn encode_heartbeat(out: &mut BytesMut) {
    out.put_u8(b'\n');
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A whole frame.
    Frame(Frame),
    /// An end-of-line between frames: a heart-beat.
    Heartbeat,
}

/// Bounds on what one frame may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StompLimits {
    /// Longest command or header line, in bytes, without its end-of-line.
    pub max_header_line: usize,
    /// Most headers in one frame.
    pub max_headers: usize,
    /// Largest body, in bytes.
    pub max_body: usize,
}

/// An error found before the end of the headers (an unknown command, a body over
/// the limit) is reported at their end, so that the front can echo the frame's
/// `receipt` wherever it stands; nothing of the body is buffered by then.
type Deferred = Option<StompError>;

#[derive(Debug)]
enum State {
    /// Between frames: EOLs are heart-beats, anything else starts a command line.
    Idle,
    /// After the command line, reading header lines.
    Headers(Frame, Option<usize>, Deferred),
    /// After the blank line, reading the body (of `content-length` bytes, or up to a NUL).
    Body(Frame, Option<usize>),
}

/// Decodes frames from a client's byte stream ([`tokio_util::codec::Decoder`]).
#[derive(Debug)]
pub struct StompCodec {
    scan: Scanner,
    state: State,
}

/// The position and rules of scanning, apart from the frame being built.
#[derive(Debug)]
struct Scanner {
    limits: StompLimits,
    version: Version,
    /// Bytes of the current line or NUL-terminated body already searched.
    scanned: usize,
}

impl StompCodec {
    /// A decoder with `limits`, unescaping as STOMP 1.2 until told the version.
    pub fn new(limits: StompLimits) -> StompCodec {
        StompCodec {
            scan: Scanner {
                limits,
                version: Version::V1_2,
                scanned: 0,
            },
            state: State::Idle,
        }
    }

    /// Sets the negotiated version (it decides the escapes of later frames).
    pub fn set_version(&mut self, version: Version) {
        self.scan.version = version;
    }

    /// The `receipt` header of a frame whose decoding failed, if it was read before the
    /// error (the ERROR frame echoes it as `receipt-id`).
    pub fn failed_receipt(&self) -> Option<&str> {
        match &self.state {
            State::Headers(f, ..) | State::Body(f, _) => f.header("receipt"),
            State::Idle => None,
        }
    }
}

impl Scanner {
    /// The next line (without its EOL: LF or CRLF), or `None` until one is complete.
    fn line(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, StompError> {
        let max = self.limits.max_header_line;
        let from = self.scanned.min(src.len());
        let Some(at) = src
            .get(from..)
            .and_then(|s| s.iter().position(|&b| b == b'\n'))
        else {
            if src.len() > max.saturating_add(1) {
                return Err(StompError::HeaderLineTooLong { max });
            }
            self.scanned = src.len();
            return Ok(None);
        };
        let end = from + at;
        self.scanned = 0;
        let mut line = src.split_to(end + 1);
        line.truncate(end);
        if line.last() == Some(&b'\r') {
            line.truncate(end - 1);
        }
        if line.len() > max {
            return Err(StompError::HeaderLineTooLong { max });
        }
        Ok(Some(line))
    }

    /// Adds the header on `line` to `frame`, noting its `content-length`.
    fn header(
        &self,
        frame: &mut Frame,
        content_length: &mut Option<usize>,
        deferred: &mut Deferred,
        line: &[u8],
    ) -> Result<(), StompError> {
        if frame.headers.len() >= self.limits.max_headers {
            return Err(StompError::TooManyHeaders {
                max: self.limits.max_headers,
            });
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(StompError::Malformed("a header line has no ':'"))?;
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        let escaped = !frame.command.is_handshake();
        let name = header::decode(name, self.version, escaped)?;
        let value = header::decode(value, self.version, escaped)?;
        if name == "content-length" && frame.header("content-length").is_none() {
            // Octets in decimal digits only (`parse` would also take a `+`).
            let len: u64 = Some(&value)
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StompError::BadContentLength(value.clone()))?;
            let max = self.limits.max_body;
            if len > max as u64 {
                deferred.get_or_insert(StompError::BodyTooLarge { size: len, max });
            } else {
                *content_length = Some(len as usize);
            }
        }
        frame.headers.push((name, value));
        Ok(())
    }

    /// The body, or `None` until it is complete.
    fn body(
        &mut self,
        src: &mut BytesMut,
        content_length: Option<usize>,
    ) -> Result<Option<Bytes>, StompError> {
        let max = self.limits.max_body;
        let end = match content_length {
            Some(len) => {
                if src.len() <= len {
                    src.reserve((len + 1 - src.len()).min(MAX_RESERVE));
                    return Ok(None);
                }
                if src.get(len) != Some(&0) {
                    return Err(StompError::Malformed(
                        "no NUL after the content-length bytes of the body",
                    ));
                }
                len
            }
            None => {
                let from = self.scanned.min(src.len());
                let Some(at) = src.get(from..).and_then(|s| s.iter().position(|&b| b == 0)) else {
                    if src.len() > max {
                        let size = src.len() as u64;
                        return Err(StompError::BodyTooLarge { size, max });
                    }
                    self.scanned = src.len();
                    return Ok(None);
                };
                self.scanned = 0;
                let end = from + at;
                // The NUL may arrive in the same read as more than `max` body bytes.
                if end > max {
                    return Err(StompError::BodyTooLarge {
                        size: end as u64,
                        max,
                    });
                }
                end
            }
        };
        let body = src.split_to(end).freeze();
        src.advance(1);
        Ok(Some(body))
    }
}

impl Decoder for StompCodec {
    type Item = Received;
    type Error = StompError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Received>, StompError> {
        loop {
            match &mut self.state {
                State::Idle => {
                    // No command starts with anything but an upper-case letter: other
                    // bytes (a TLS ClientHello, binary garbage) are refused at once
                    // instead of waiting for a line end that may never come.
                    // A NUL between frames (a stray frame end) is skipped, as
                    // RabbitMQ does.
                    if src.first() == Some(&0) {
                        src.advance(1);
                        continue;
                    }
                    if let Some(&b) = src.first() {
                        if !(b.is_ascii_uppercase() || b == b'\n' || b == b'\r') {
                            let start = src.get(..src.len().min(16)).unwrap_or_default();
                            let line = start.split(|&b| b == b'\n').next().unwrap_or_default();
                            let name = String::from_utf8_lossy(line).into_owned();
                            return Err(StompError::UnknownCommand(name));
                        }
                    }
                    let Some(line) = self.scan.line(src)? else {
                        return Ok(None);
                    };
                    if line.is_empty() {
                        return Ok(Some(Received::Heartbeat));
                    }
                    // An unknown command's headers are still read (as a SEND's), for
                    // its receipt.
                    let (command, deferred) = match Command::parse(&line) {
                        Some(command) => (command, None),
                        None => {
                            let name = String::from_utf8_lossy(&line).into_owned();
                            (Command::Send, Some(StompError::UnknownCommand(name)))
                        }
                    };
                    self.state = State::Headers(Frame::new(command), None, deferred);
                }
                State::Headers(frame, content_length, deferred) => {
                    let Some(line) = self.scan.line(src)? else {
                        return Ok(None);
                    };
                    if !line.is_empty() {
                        self.scan.header(frame, content_length, deferred, &line)?;
                        continue;
                    }
                    if let Some(e) = deferred.take() {
                        return Err(e);
                    }
                    self.state = match std::mem::replace(&mut self.state, State::Idle) {
                        State::Headers(frame, content_length, _) => {
                            State::Body(frame, content_length)
                        }
                        other => other,
                    };
                }
                State::Body(frame, content_length) => {
                    let Some(body) = self.scan.body(src, *content_length)? else {
                        return Ok(None);
                    };
                    // End-of-line bytes before the NUL of a frame that has no
                    // body are not a body (RabbitMQ accepts them).
                    let eols_only = body.iter().all(|b| matches!(b, b'\n' | b'\r'));
                    if !frame.command.may_have_body() {
                        if !eols_only {
                            return Err(StompError::UnexpectedBody(frame.command.as_str()));
                        }
                    } else {
                        frame.body = body;
                    }
                    return Ok(match std::mem::replace(&mut self.state, State::Idle) {
                        State::Body(frame, _) => Some(Received::Frame(frame)),
                        _ => None,
                    });
                }
            }
        }
    }
}
