//! The operations, typed by direction (client→server `ClientOp`, server→client `ServerOp`), and
//! their encoders.
//!
//! Encoders write upper-case op names and single spaces only: async-nats matches
//! `starts_with(b"MSG ")` and friends, and nats-server's double space in `MSG s 1  24` (empty
//! reply) is a bug clients merely tolerate. So an empty `reply_to`/`queue_group` is written as
//! absent, never as an empty field. Field contents are written as given; keeping whitespace
//! and CR/LF out of subjects and sids is the caller's job (the front validates subjects).

use bytes::{BufMut, Bytes, BytesMut};

use super::headers::Headers;
use super::parse::{digits_len, put_u64};

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT <json>`: the raw JSON after the op; the front parses it, the codec does not.
    Connect(Bytes),
    /// `PUB <subject> [reply-to] <#bytes>`.
    Pub {
        /// The subject published to.
        subject: String,
        /// Where replies go (request/reply).
        reply_to: Option<String>,
        /// The payload, sliced zero-copy from the read buffer.
        payload: Bytes,
    },
    /// `HPUB <subject> [reply-to] <#hdr bytes> <#total bytes>`.
    HPub {
        /// The subject published to.
        subject: String,
        /// Where replies go (request/reply).
        reply_to: Option<String>,
        /// The parsed header block.
        headers: Headers,
        /// The payload after the header block.
        payload: Bytes,
    },
    /// `SUB <subject> [queue group] <sid>`.
    Sub {
        /// The subject filter (may hold wildcards).
        subject: String,
        /// The queue group, if any.
        queue_group: Option<String>,
        /// The client-chosen subscription id.
        sid: String,
    },
    /// `UNSUB <sid> [max_msgs]`.
    Unsub {
        /// The subscription id.
        sid: String,
        /// Unsubscribe after this many deliveries in total on the sid.
        max_msgs: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// What a server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO <json>`: raw JSON, built by the front.
    Info(Bytes),
    /// `MSG <subject> <sid> [reply-to] <#bytes>`.
    Msg {
        /// The subject the message was published to.
        subject: String,
        /// The subscription id it is delivered for.
        sid: String,
        /// Where replies go.
        reply_to: Option<String>,
        /// The payload.
        payload: Bytes,
    },
    /// `HMSG <subject> <sid> [reply-to] <#hdr bytes> <#total bytes>`.
    HMsg {
        /// The subject the message was published to.
        subject: String,
        /// The subscription id it is delivered for.
        sid: String,
        /// Where replies go.
        reply_to: Option<String>,
        /// The header block.
        headers: Headers,
        /// The payload after the header block.
        payload: Bytes,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK` (only to `verbose` clients).
    Ok,
    /// `-ERR '<text>'`; the text without its quotes.
    Err(String),
}

/// `Some("")` is written as absent: an empty field would produce a double space.
fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Length of `" <s>"` if present.
fn opt_len(s: &Option<String>) -> usize {
    opt(s).map_or(0, |s| 1 + s.len())
}

fn put_opt(dst: &mut BytesMut, s: &Option<String>) {
    if let Some(s) = opt(s) {
        dst.put_u8(b' ');
        dst.put_slice(s.as_bytes());
    }
}

fn put_size(dst: &mut BytesMut, n: usize) {
    dst.put_u8(b' ');
    put_u64(dst, n as u64);
}

/// Writes the shape PUB, HPUB, MSG and HMSG share (without the final CRLF):
/// `<verb><subject>[ <sid>][ <reply>][ <#hdr>] <#total>\r\n[<headers>]<payload>`.
fn put_message(
    dst: &mut BytesMut,
    verb: &[u8],
    subject: &str,
    sid: Option<&str>,
    reply_to: Option<&str>,
    headers: Option<&Headers>,
    payload: &[u8],
) {
    dst.put_slice(verb);
    dst.put_slice(subject.as_bytes());
    if let Some(sid) = sid {
        dst.put_u8(b' ');
        dst.put_slice(sid.as_bytes());
    }
    if let Some(reply_to) = reply_to.filter(|r| !r.is_empty()) {
        dst.put_u8(b' ');
        dst.put_slice(reply_to.as_bytes());
    }
    let hdr = headers.map_or(0, Headers::encoded_len);
    if headers.is_some() {
        put_size(dst, hdr);
    }
    put_size(dst, hdr + payload.len());
    dst.put_slice(b"\r\n");
    if let Some(headers) = headers {
        headers.encode(dst);
    }
    dst.put_slice(payload);
}

/// Appends `MSG`, or `HMSG` when `headers` are given, from borrowed parts: what
/// [`ServerOp::Msg`] and [`ServerOp::HMsg`] encode, without a front having to own a
/// copy of the subject and sid for every delivery. An empty `reply_to` is absent.
pub fn encode_msg(
    dst: &mut BytesMut,
    subject: &str,
    sid: &str,
    reply_to: Option<&str>,
    headers: Option<&Headers>,
    payload: &[u8],
) {
    let reply_to = reply_to.filter(|r| !r.is_empty());
    let hdr = headers.map_or(0, Headers::encoded_len);
    let verb: &[u8] = if headers.is_some() { b"HMSG " } else { b"MSG " };
    dst.reserve(
        verb.len()
            + subject.len()
            + 1
            + sid.len()
            + reply_to.map_or(0, |r| 1 + r.len())
            + if headers.is_some() { size_len(hdr) } else { 0 }
            + size_len(hdr + payload.len())
            + 2
            + hdr
            + payload.len()
            + 2,
    );
    put_message(dst, verb, subject, Some(sid), reply_to, headers, payload);
    dst.put_slice(b"\r\n");
}

fn size_len(n: usize) -> usize {
    1 + digits_len(n as u64)
}

impl ClientOp {
    /// The exact number of bytes [`ClientOp::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Connect(json) => b"CONNECT ".len() + json.len() + 2,
            Self::Pub {
                subject,
                reply_to,
                payload,
            } => {
                b"PUB ".len()
                    + subject.len()
                    + opt_len(reply_to)
                    + size_len(payload.len())
                    + 2
                    + payload.len()
                    + 2
            }
            Self::HPub {
                subject,
                reply_to,
                headers,
                payload,
            } => {
                let hdr = headers.encoded_len();
                let total = hdr + payload.len();
                b"HPUB ".len()
                    + subject.len()
                    + opt_len(reply_to)
                    + size_len(hdr)
                    + size_len(total)
                    + 2
                    + total
                    + 2
            }
            Self::Sub {
                subject,
                queue_group,
                sid,
            } => b"SUB ".len() + subject.len() + opt_len(queue_group) + 1 + sid.len() + 2,
            Self::Unsub { sid, max_msgs } => {
                b"UNSUB ".len() + sid.len() + max_msgs.map_or(0, |n| 1 + digits_len(n)) + 2
            }
            Self::Ping | Self::Pong => 6,
        }
    }

    /// Appends the operation to `dst`, reserving [`ClientOp::encoded_len`] bytes first.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        match self {
            Self::Connect(json) => {
                dst.put_slice(b"CONNECT ");
                dst.put_slice(json);
            }
            Self::Pub {
                subject,
                reply_to,
                payload,
            } => put_message(dst, b"PUB ", subject, None, opt(reply_to), None, payload),
            Self::HPub {
                subject,
                reply_to,
                headers,
                payload,
            } => put_message(
                dst,
                b"HPUB ",
                subject,
                None,
                opt(reply_to),
                Some(headers),
                payload,
            ),
            Self::Sub {
                subject,
                queue_group,
                sid,
            } => {
                dst.put_slice(b"SUB ");
                dst.put_slice(subject.as_bytes());
                put_opt(dst, queue_group);
                dst.put_u8(b' ');
                dst.put_slice(sid.as_bytes());
            }
            Self::Unsub { sid, max_msgs } => {
                dst.put_slice(b"UNSUB ");
                dst.put_slice(sid.as_bytes());
                if let Some(n) = max_msgs {
                    dst.put_u8(b' ');
                    put_u64(dst, *n);
                }
            }
            Self::Ping => dst.put_slice(b"PING"),
            Self::Pong => dst.put_slice(b"PONG"),
        }
        dst.put_slice(b"\r\n");
    }
}

impl ServerOp {
    /// The exact number of bytes [`ServerOp::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Info(json) => b"INFO ".len() + json.len() + 2,
            Self::Msg {
                subject,
                sid,
                reply_to,
                payload,
            } => {
                b"MSG ".len()
                    + subject.len()
                    + 1
                    + sid.len()
                    + opt_len(reply_to)
                    + size_len(payload.len())
                    + 2
                    + payload.len()
                    + 2
            }
            Self::HMsg {
                subject,
                sid,
                reply_to,
                headers,
                payload,
            } => {
                let hdr = headers.encoded_len();
                let total = hdr + payload.len();
                b"HMSG ".len()
                    + subject.len()
                    + 1
                    + sid.len()
                    + opt_len(reply_to)
                    + size_len(hdr)
                    + size_len(total)
                    + 2
                    + total
                    + 2
            }
            Self::Ping | Self::Pong => 6,
            Self::Ok => 5,
            Self::Err(text) => b"-ERR '".len() + text.len() + 3,
        }
    }

    /// Appends the operation to `dst`, reserving [`ServerOp::encoded_len`] bytes first.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Self::Msg {
                subject,
                sid,
                reply_to,
                payload,
            } => return encode_msg(dst, subject, sid, opt(reply_to), None, payload),
            Self::HMsg {
                subject,
                sid,
                reply_to,
                headers,
                payload,
            } => return encode_msg(dst, subject, sid, opt(reply_to), Some(headers), payload),
            _ => {}
        }
        dst.reserve(self.encoded_len());
        match self {
            Self::Info(json) => {
                dst.put_slice(b"INFO ");
                dst.put_slice(json);
            }
            // Encoded above, whole.
            Self::Msg { .. } | Self::HMsg { .. } => return,
            Self::Ping => dst.put_slice(b"PING"),
            Self::Pong => dst.put_slice(b"PONG"),
            Self::Ok => dst.put_slice(b"+OK"),
            Self::Err(text) => {
                // errProto = "-ERR '%s'\r\n" (nats-server client.go).
                dst.put_slice(b"-ERR '");
                dst.put_slice(text.as_bytes());
                dst.put_u8(b'\'');
            }
        }
        dst.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(op: ServerOp) -> Vec<u8> {
        let mut b = BytesMut::new();
        op.encode(&mut b);
        assert_eq!(b.len(), op.encoded_len(), "{op:?}");
        b.to_vec()
    }

    fn client(op: ClientOp) -> Vec<u8> {
        let mut b = BytesMut::new();
        op.encode(&mut b);
        assert_eq!(b.len(), op.encoded_len(), "{op:?}");
        b.to_vec()
    }

    fn msg(reply_to: Option<&str>, payload: &'static [u8]) -> ServerOp {
        ServerOp::Msg {
            subject: "foo.bar".into(),
            sid: "9".into(),
            reply_to: reply_to.map(Into::into),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn msg_exact_bytes() {
        assert_eq!(server(msg(None, b"hello")), b"MSG foo.bar 9 5\r\nhello\r\n");
        assert_eq!(
            server(msg(Some("INBOX.1"), b"hello")),
            b"MSG foo.bar 9 INBOX.1 5\r\nhello\r\n"
        );
        assert_eq!(server(msg(None, b"")), b"MSG foo.bar 9 0\r\n\r\n");
    }

    #[test]
    fn empty_reply_is_not_a_double_space() {
        assert_eq!(server(msg(Some(""), b"x")), b"MSG foo.bar 9 1\r\nx\r\n");
    }

    #[test]
    fn hmsg_exact_bytes_no_responders() {
        // reference §1.7: what nats-server 2.9.10 sends for no responders.
        let op = ServerOp::HMsg {
            subject: "_INBOX.x".into(),
            sid: "9".into(),
            reply_to: None,
            headers: Headers {
                status: Some(503),
                ..Headers::default()
            },
            payload: Bytes::new(),
        };
        assert_eq!(
            server(op),
            b"HMSG _INBOX.x 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        );
    }

    #[test]
    fn hmsg_with_reply_and_payload() {
        let op = ServerOp::HMsg {
            subject: "foo.bar".into(),
            sid: "1".into(),
            reply_to: Some("reply.x".into()),
            headers: Headers {
                entries: vec![("K".into(), "V".into())],
                ..Headers::default()
            },
            payload: Bytes::from_static(b"hello"),
        };
        assert_eq!(
            server(op),
            b"HMSG foo.bar 1 reply.x 18 23\r\nNATS/1.0\r\nK: V\r\n\r\nhello\r\n"
        );
    }

    #[test]
    fn simple_server_ops() {
        assert_eq!(
            server(ServerOp::Info(Bytes::from_static(b"{}"))),
            b"INFO {}\r\n"
        );
        assert_eq!(server(ServerOp::Ping), b"PING\r\n");
        assert_eq!(server(ServerOp::Pong), b"PONG\r\n");
        assert_eq!(server(ServerOp::Ok), b"+OK\r\n");
        assert_eq!(
            server(ServerOp::Err("Unknown Protocol Operation".into())),
            b"-ERR 'Unknown Protocol Operation'\r\n"
        );
    }

    #[test]
    fn client_ops_exact_bytes() {
        assert_eq!(
            client(ClientOp::Connect(Bytes::from_static(
                b"{\"verbose\":false}"
            ))),
            b"CONNECT {\"verbose\":false}\r\n"
        );
        assert_eq!(
            client(ClientOp::Pub {
                subject: "a".into(),
                reply_to: Some("r".into()),
                payload: Bytes::from_static(b"hi"),
            }),
            b"PUB a r 2\r\nhi\r\n"
        );
        assert_eq!(
            client(ClientOp::HPub {
                subject: "a".into(),
                reply_to: None,
                headers: Headers::default(),
                payload: Bytes::from_static(b"hi"),
            }),
            b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
        );
        assert_eq!(
            client(ClientOp::Sub {
                subject: "a.*".into(),
                queue_group: Some("q".into()),
                sid: "7".into(),
            }),
            b"SUB a.* q 7\r\n"
        );
        assert_eq!(
            client(ClientOp::Sub {
                subject: "a".into(),
                queue_group: None,
                sid: "7".into(),
            }),
            b"SUB a 7\r\n"
        );
        assert_eq!(
            client(ClientOp::Unsub {
                sid: "7".into(),
                max_msgs: Some(10),
            }),
            b"UNSUB 7 10\r\n"
        );
        assert_eq!(
            client(ClientOp::Unsub {
                sid: "7".into(),
                max_msgs: None,
            }),
            b"UNSUB 7\r\n"
        );
        assert_eq!(client(ClientOp::Ping), b"PING\r\n");
        assert_eq!(client(ClientOp::Pong), b"PONG\r\n");
    }
}
