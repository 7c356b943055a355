//! Control-line parsing and the resumable framer shared by both decoders.
//!
//! The framer finds the control line (scanning each byte once, like `LinesCodec::next_index`),
//! parses it, and for PUB/HPUB/MSG/HMSG waits for `#bytes` + CRLF before slicing the payload
//! out zero-copy. Nothing is consumed until a whole operation is there.
//!
//! Choices that follow nats-server's `parser.go` rather than the protocol doc: op names are
//! case-insensitive; fields are separated by runs of spaces or tabs; a control line may end in a
//! bare `\n`; an empty line, or a line starting with whitespace, is a parse error
//! (`OP_START` has no case for `\r`, `\n` or space, so it falls to `parseErr`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::DecodeError;
use super::headers::Headers;
use super::op::{ClientOp, ServerOp};
use super::Limits;

/// Number of decimal digits in `n`.
pub(crate) fn digits_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Writes `n` in decimal without allocating.
pub(crate) fn put_u64(dst: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut len = 0;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(buf.get(buf.len() - len..).unwrap_or_default());
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits a control line into its op name and the rest after the separating whitespace.
fn split_op(line: &[u8]) -> (&[u8], &[u8]) {
    let end = line.iter().position(|&b| is_ws(b)).unwrap_or(line.len());
    let (op, rest) = line.split_at_checked(end).unwrap_or((line, &[]));
    let start = rest.iter().position(|&b| !is_ws(b)).unwrap_or(rest.len());
    (op, rest.get(start..).unwrap_or_default())
}

/// Splits arguments at runs of spaces/tabs into at most `N` fields; `None` if there are more.
fn args<const N: usize>(rest: &[u8]) -> Option<(usize, [&[u8]; N])> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    for field in rest.split(|&b| is_ws(b)).filter(|f| !f.is_empty()) {
        *out.get_mut(n)? = field;
        n += 1;
    }
    Some((n, out))
}

/// The arguments of a line, as a slice to match on; too many arguments is a parse error.
macro_rules! fields {
    ($rest:expr, $n:literal, $out:ident) => {
        let parsed = args::<$n>($rest).ok_or(DecodeError::UnknownOperation)?;
        let $out = &parsed.1;
        let $out = $out.get(..parsed.0).ok_or(DecodeError::UnknownOperation)?;
    };
}

fn string(s: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(s)
        .map(str::to_owned)
        .map_err(|_| DecodeError::UnknownOperation)
}

fn opt_string(s: Option<&[u8]>) -> Result<Option<String>, DecodeError> {
    s.map(string).transpose()
}

/// A decimal number: ASCII digits only (no sign), no overflow.
fn number(s: &[u8]) -> Result<u64, DecodeError> {
    if s.is_empty() {
        return Err(DecodeError::UnknownOperation);
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(DecodeError::UnknownOperation);
        }
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(b - b'0')))
            .ok_or(DecodeError::UnknownOperation)
    })
}

fn size(s: &[u8]) -> Result<usize, DecodeError> {
    usize::try_from(number(s)?).map_err(|_| DecodeError::UnknownOperation)
}

/// `PING`, `PONG` and `+OK` take no arguments but may have trailing whitespace.
fn no_args(rest: &[u8]) -> Result<(), DecodeError> {
    if rest.iter().all(|&b| is_ws(b)) {
        Ok(())
    } else {
        Err(DecodeError::UnknownOperation)
    }
}

/// What a control line announced.
#[derive(Debug)]
pub(crate) enum Control<T> {
    /// A complete operation.
    Op(T),
    /// An operation whose payload follows: `op` holds empty placeholders until it arrives.
    Payload {
        op: T,
        /// `#hdr bytes` for HPUB/HMSG.
        hdr_len: Option<usize>,
        /// `#bytes` / `#total bytes`.
        total: usize,
    },
}

/// An operation type one decoder produces.
pub(crate) trait Frame: Sized {
    /// Parses one control line (without its line terminator).
    fn parse_control(line: &[u8]) -> Result<Control<Self>, DecodeError>;
    /// Fills the payload (and headers) into an op returned as `Control::Payload`.
    fn attach(self, headers: Option<Headers>, payload: Bytes) -> Self;
}

/// `#hdr bytes` must fit in `#total bytes`.
fn hdr_sizes(hdr: &[u8], total: &[u8]) -> Result<(usize, usize), DecodeError> {
    let (hdr, total) = (size(hdr)?, size(total)?);
    if hdr > total {
        return Err(DecodeError::InvalidHeaders);
    }
    Ok((hdr, total))
}

impl Frame for ClientOp {
    fn parse_control(line: &[u8]) -> Result<Control<Self>, DecodeError> {
        let (op, rest) = split_op(line);
        if op.eq_ignore_ascii_case(b"PUB") {
            fields!(rest, 3, f);
            let (subject, reply_to, total) = match f {
                [s, n] => (s, None, n),
                [s, r, n] => (s, Some(*r), n),
                _ => return Err(DecodeError::UnknownOperation),
            };
            let op = Self::Pub {
                subject: string(subject)?,
                reply_to: opt_string(reply_to)?,
                payload: Bytes::new(),
            };
            let total = size(total)?;
            Ok(Control::Payload {
                op,
                hdr_len: None,
                total,
            })
        } else if op.eq_ignore_ascii_case(b"HPUB") {
            fields!(rest, 4, f);
            let (subject, reply_to, hdr, total) = match f {
                [s, h, n] => (s, None, h, n),
                [s, r, h, n] => (s, Some(*r), h, n),
                _ => return Err(DecodeError::UnknownOperation),
            };
            let (hdr, total) = hdr_sizes(hdr, total)?;
            let op = Self::HPub {
                subject: string(subject)?,
                reply_to: opt_string(reply_to)?,
                headers: Headers::default(),
                payload: Bytes::new(),
            };
            Ok(Control::Payload {
                op,
                hdr_len: Some(hdr),
                total,
            })
        } else if op.eq_ignore_ascii_case(b"SUB") {
            fields!(rest, 3, f);
            let (subject, queue_group, sid) = match f {
                [s, id] => (s, None, id),
                [s, q, id] => (s, Some(*q), id),
                _ => return Err(DecodeError::UnknownOperation),
            };
            Ok(Control::Op(Self::Sub {
                subject: string(subject)?,
                queue_group: opt_string(queue_group)?,
                sid: string(sid)?,
            }))
        } else if op.eq_ignore_ascii_case(b"UNSUB") {
            fields!(rest, 2, f);
            let (sid, max_msgs) = match f {
                [id] => (id, None),
                [id, n] => (id, Some(number(n)?)),
                _ => return Err(DecodeError::UnknownOperation),
            };
            Ok(Control::Op(Self::Unsub {
                sid: string(sid)?,
                max_msgs,
            }))
        } else if op.eq_ignore_ascii_case(b"PING") {
            no_args(rest).map(|()| Control::Op(Self::Ping))
        } else if op.eq_ignore_ascii_case(b"PONG") {
            no_args(rest).map(|()| Control::Op(Self::Pong))
        } else if op.eq_ignore_ascii_case(b"CONNECT") {
            Ok(Control::Op(Self::Connect(Bytes::copy_from_slice(rest))))
        } else {
            Err(DecodeError::UnknownOperation)
        }
    }

    fn attach(self, headers: Option<Headers>, payload: Bytes) -> Self {
        match self {
            Self::Pub {
                subject, reply_to, ..
            } => Self::Pub {
                subject,
                reply_to,
                payload,
            },
            Self::HPub {
                subject, reply_to, ..
            } => Self::HPub {
                subject,
                reply_to,
                headers: headers.unwrap_or_default(),
                payload,
            },
            other => other,
        }
    }
}

impl Frame for ServerOp {
    fn parse_control(line: &[u8]) -> Result<Control<Self>, DecodeError> {
        let (op, rest) = split_op(line);
        if op.eq_ignore_ascii_case(b"MSG") {
            fields!(rest, 4, f);
            let (subject, sid, reply_to, total) = match f {
                [s, id, n] => (s, id, None, n),
                [s, id, r, n] => (s, id, Some(*r), n),
                _ => return Err(DecodeError::UnknownOperation),
            };
            let total = size(total)?;
            let op = Self::Msg {
                subject: string(subject)?,
                sid: string(sid)?,
                reply_to: opt_string(reply_to)?,
                payload: Bytes::new(),
            };
            Ok(Control::Payload {
                op,
                hdr_len: None,
                total,
            })
        } else if op.eq_ignore_ascii_case(b"HMSG") {
            fields!(rest, 5, f);
            let (subject, sid, reply_to, hdr, total) = match f {
                [s, id, h, n] => (s, id, None, h, n),
                [s, id, r, h, n] => (s, id, Some(*r), h, n),
                _ => return Err(DecodeError::UnknownOperation),
            };
            let (hdr, total) = hdr_sizes(hdr, total)?;
            let op = Self::HMsg {
                subject: string(subject)?,
                sid: string(sid)?,
                reply_to: opt_string(reply_to)?,
                headers: Headers::default(),
                payload: Bytes::new(),
            };
            Ok(Control::Payload {
                op,
                hdr_len: Some(hdr),
                total,
            })
        } else if op.eq_ignore_ascii_case(b"PING") {
            no_args(rest).map(|()| Control::Op(Self::Ping))
        } else if op.eq_ignore_ascii_case(b"PONG") {
            no_args(rest).map(|()| Control::Op(Self::Pong))
        } else if op.eq_ignore_ascii_case(b"+OK") {
            no_args(rest).map(|()| Control::Op(Self::Ok))
        } else if op.eq_ignore_ascii_case(b"-ERR") {
            // `-ERR 'text'`: the quotes are framing, the text may itself hold quotes/spaces.
            let mut text = rest;
            while let [head @ .., last] = text {
                if !is_ws(*last) {
                    break;
                }
                text = head;
            }
            let text = text
                .strip_prefix(b"'")
                .and_then(|t| t.strip_suffix(b"'"))
                .unwrap_or(text);
            Ok(Control::Op(Self::Err(string(text)?)))
        } else if op.eq_ignore_ascii_case(b"INFO") {
            Ok(Control::Op(Self::Info(Bytes::copy_from_slice(rest))))
        } else {
            Err(DecodeError::UnknownOperation)
        }
    }

    fn attach(self, headers: Option<Headers>, payload: Bytes) -> Self {
        match self {
            Self::Msg {
                subject,
                sid,
                reply_to,
                ..
            } => Self::Msg {
                subject,
                sid,
                reply_to,
                payload,
            },
            Self::HMsg {
                subject,
                sid,
                reply_to,
                ..
            } => Self::HMsg {
                subject,
                sid,
                reply_to,
                headers: headers.unwrap_or_default(),
                payload,
            },
            other => other,
        }
    }
}

/// A parsed control line waiting for its payload. The control line stays in the buffer (an
/// incomplete operation is never consumed); only its parse is kept, so it is not re-parsed on
/// every read of a large payload.
#[derive(Debug, Clone)]
struct Pending<T> {
    /// Control line length, terminator included.
    line_len: usize,
    op: T,
    hdr_len: Option<usize>,
    total: usize,
}

/// The resumable decoder state shared by both codecs.
#[derive(Debug, Clone)]
pub(crate) struct Framer<T> {
    pub(crate) limits: Limits,
    /// Bytes of the current control line already searched for `\n`.
    scanned: usize,
    pending: Option<Pending<T>>,
}

impl<T: Frame> Framer<T> {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            scanned: 0,
            pending: None,
        }
    }

    /// Decodes one operation, or returns `Ok(None)` leaving `src` untouched. After an error the
    /// state is reset; the connection is expected to close.
    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Result<Option<T>, DecodeError> {
        let result = self.decode_inner(src);
        if result.is_err() {
            self.scanned = 0;
            self.pending = None;
        }
        result
    }

    fn decode_inner(&mut self, src: &mut BytesMut) -> Result<Option<T>, DecodeError> {
        let max = self.limits.max_control_line;
        let pending = match self.pending.take() {
            Some(p) => p,
            None => {
                // Every operation starts with a letter (`+OK` and `-ERR` aside): other
                // bytes (a TLS ClientHello, binary garbage) are refused at once, as
                // nats-server's parser does, not after a line end that may never come.
                if let Some(&b) = src.first() {
                    if !(b.is_ascii_alphabetic() || b == b'+' || b == b'-') {
                        return Err(DecodeError::UnknownOperation);
                    }
                }
                let found = src
                    .get(self.scanned..)
                    .and_then(|s| s.iter().position(|&b| b == b'\n'))
                    .map(|i| i + self.scanned);
                let Some(nl) = found else {
                    self.scanned = src.len();
                    // A trailing `\r` may be the first half of the terminator.
                    let line = src.len() - usize::from(src.last() == Some(&b'\r'));
                    if line > max {
                        return Err(DecodeError::ControlLineTooLong { max });
                    }
                    return Ok(None);
                };
                let raw = src.get(..nl).unwrap_or_default();
                let line = raw.strip_suffix(b"\r").unwrap_or(raw);
                if line.len() > max {
                    return Err(DecodeError::ControlLineTooLong { max });
                }
                let line_len = nl + 1;
                match T::parse_control(line)? {
                    Control::Op(op) => {
                        src.advance(line_len);
                        self.scanned = 0;
                        return Ok(Some(op));
                    }
                    Control::Payload { op, hdr_len, total } => {
                        if total > self.limits.max_payload {
                            return Err(DecodeError::MaxPayloadExceeded {
                                size: total,
                                max: self.limits.max_payload,
                            });
                        }
                        Pending {
                            line_len,
                            op,
                            hdr_len,
                            total,
                        }
                    }
                }
            }
        };
        let body_end = pending.line_len.saturating_add(pending.total);
        let needed = body_end.saturating_add(2);
        if src.len() < needed {
            src.reserve(needed - src.len());
            self.pending = Some(pending);
            return Ok(None);
        }
        if src.get(body_end..needed) != Some(&b"\r\n"[..]) {
            return Err(DecodeError::BadPayloadTerminator);
        }
        src.advance(pending.line_len);
        let mut payload = src.split_to(pending.total).freeze();
        src.advance(2);
        self.scanned = 0;
        let headers = match pending.hdr_len {
            Some(hdr_len) => {
                if hdr_len > payload.len() {
                    return Err(DecodeError::InvalidHeaders);
                }
                let block = payload.split_to(hdr_len);
                Some(Headers::parse(&block)?)
            }
            None => None,
        };
        Ok(Some(pending.op.attach(headers, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_helpers() {
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut b = BytesMut::new();
            put_u64(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
            assert_eq!(digits_len(n), n.to_string().len());
        }
    }

    #[test]
    fn numbers_are_plain_unsigned_decimals() {
        assert_eq!(number(b"0").unwrap(), 0);
        assert_eq!(number(b"007").unwrap(), 7);
        assert_eq!(number(b"18446744073709551615").unwrap(), u64::MAX);
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1a",
            b"18446744073709551616",
            b"1.0",
        ] {
            assert!(number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fields_split_on_runs_of_spaces_and_tabs() {
        let (op, rest) = split_op(b"PUB \t foo\t\tbar  5 ");
        assert_eq!(op, b"PUB");
        let (n, f) = args::<3>(rest).unwrap();
        assert_eq!(n, 3);
        assert_eq!(f, [&b"foo"[..], b"bar", b"5"]);
        assert!(args::<2>(rest).is_none());
    }

    #[test]
    fn empty_and_indented_lines_are_unknown() {
        for line in [&b""[..], b" PING", b"\tPING", b"PINGX", b"PING x"] {
            assert!(
                matches!(
                    ClientOp::parse_control(line),
                    Err(DecodeError::UnknownOperation)
                ),
                "{line:?}"
            );
        }
    }

    #[test]
    fn hdr_larger_than_total_is_invalid_headers() {
        assert!(matches!(
            ClientOp::parse_control(b"HPUB a 10 5"),
            Err(DecodeError::InvalidHeaders)
        ));
        assert!(matches!(
            ServerOp::parse_control(b"HMSG a 1 10 5"),
            Err(DecodeError::InvalidHeaders)
        ));
    }

    #[test]
    fn err_text_quotes_are_framing() {
        let text = |line: &[u8]| match ServerOp::parse_control(line) {
            Ok(Control::Op(ServerOp::Err(t))) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(b"-ERR 'Stale Connection'"), "Stale Connection");
        assert_eq!(text(b"-err  'it''s' "), "it''s");
        assert_eq!(text(b"-ERR"), "");
        assert_eq!(text(b"-ERR unquoted text"), "unquoted text");
    }
}
