//! The NATS header block (ADR-4) carried by HPUB and HMSG.
//!
//! This module only frames the block: it does not validate header names against RFC 7230 nor
//! give any header a meaning (`Nats-Msg-Id`, status 503, ... are the front's business).

use bytes::{BufMut, BytesMut};

use super::error::DecodeError;
use super::parse::{digits_len, put_u64};

/// The version line every header block starts with (ADR-4).
const VERSION: &[u8] = b"NATS/1.0";

/// A NATS header block (ADR-4): `NATS/1.0[ <status>[ <description>]]\r\n` then
/// `Name: value\r\n`* then `\r\n`.
///
/// Entries keep wire order and duplicates, because ADR-4 allows repeated keys and clients
/// expose them as multi-valued maps; names keep their case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// The inline status (`503` for no responders, `404`/`408` for JetStream pulls).
    pub status: Option<u16>,
    /// The text after the status (`No Messages`). Only written when `status` is set, since the
    /// version line has no place for a description without a status.
    pub description: Option<String>,
    /// `(name, value)` pairs in wire order.
    pub entries: Vec<(String, String)>,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_start_ws(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    s
}

fn trim_end_ws(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn utf8(s: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(s)
        .map(str::to_owned)
        .map_err(|_| DecodeError::InvalidHeaders)
}

impl Headers {
    /// Parses a whole header block, `NATS/1.0` through the final `\r\n\r\n`.
    ///
    /// A `Name: value` line is split at the first `:`, and leading spaces are trimmed off the
    /// value. Lines must end in `\r\n`; a line without `:`, an empty name, a bare CR or LF, or
    /// non-UTF-8 text is [`DecodeError::InvalidHeaders`].
    pub fn parse(block: &[u8]) -> Result<Headers, DecodeError> {
        // Dropping the blank line leaves "NATS/1.0...\r\n" + "Name: value\r\n"*.
        let body = block
            .strip_suffix(b"\r\n")
            .filter(|b| b.ends_with(b"\r\n"))
            .ok_or(DecodeError::InvalidHeaders)?;
        // `body` ends with "\r\n", so splitting the rest at '\n' gives lines ending in '\r'.
        let body = body
            .strip_suffix(b"\n")
            .ok_or(DecodeError::InvalidHeaders)?;
        let mut headers = Headers::default();
        let mut iter = body.split(|&b| b == b'\n').map(|l| {
            l.strip_suffix(b"\r")
                .filter(|l| !l.contains(&b'\r'))
                .ok_or(DecodeError::InvalidHeaders)
        });
        let version_line = iter.next().ok_or(DecodeError::InvalidHeaders)??;
        let after = version_line
            .strip_prefix(VERSION)
            .ok_or(DecodeError::InvalidHeaders)?;
        if !after.is_empty() {
            if !after.first().copied().is_some_and(is_ws) {
                return Err(DecodeError::InvalidHeaders);
            }
            let after = trim_start_ws(after);
            let end = after.iter().position(|&b| is_ws(b)).unwrap_or(after.len());
            let (code, description) = after.split_at_checked(end).unwrap_or((after, &[]));
            if !code.is_empty() {
                if !code.iter().all(u8::is_ascii_digit) {
                    return Err(DecodeError::InvalidHeaders);
                }
                let code = std::str::from_utf8(code)
                    .ok()
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or(DecodeError::InvalidHeaders)?;
                headers.status = Some(code);
                let description = trim_end_ws(trim_start_ws(description));
                if !description.is_empty() {
                    headers.description = Some(utf8(description)?);
                }
            }
        }
        for line in iter {
            let line = line?;
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(DecodeError::InvalidHeaders)?;
            let (name, value) = line
                .split_at_checked(colon)
                .ok_or(DecodeError::InvalidHeaders)?;
            let value = value.get(1..).unwrap_or_default();
            if name.is_empty() {
                return Err(DecodeError::InvalidHeaders);
            }
            headers
                .entries
                .push((utf8(name)?, utf8(trim_start_ws(value))?));
        }
        Ok(headers)
    }

    /// The exact number of bytes [`Headers::encode`] writes: the `#hdr bytes` of HPUB/HMSG.
    pub fn encoded_len(&self) -> usize {
        let mut len = VERSION.len() + 2;
        if let Some(status) = self.status {
            len += 1 + digits_len(u64::from(status));
            if let Some(d) = &self.description {
                len += 1 + d.len();
            }
        }
        for (name, value) in &self.entries {
            len += name.len() + 2 + value.len() + 2;
        }
        len + 2
    }

    /// Appends the block, final blank line included. Names and values are written as given;
    /// the caller keeps CR, LF and `:` out of names and CR/LF out of values.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_slice(VERSION);
        if let Some(status) = self.status {
            dst.put_u8(b' ');
            put_u64(dst, u64::from(status));
            if let Some(d) = &self.description {
                dst.put_u8(b' ');
                dst.put_slice(d.as_bytes());
            }
        }
        dst.put_slice(b"\r\n");
        for (name, value) in &self.entries {
            dst.put_slice(name.as_bytes());
            dst.put_slice(b": ");
            dst.put_slice(value.as_bytes());
            dst.put_slice(b"\r\n");
        }
        dst.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(h: &Headers) -> Vec<u8> {
        let mut b = BytesMut::new();
        h.encode(&mut b);
        assert_eq!(b.len(), h.encoded_len());
        b.to_vec()
    }

    #[test]
    fn plain_block_keeps_order_case_and_duplicates() {
        let h = Headers::parse(b"NATS/1.0\r\nA: 1\r\nb:2\r\nA:   3\r\nX-Y: a: b \r\n\r\n").unwrap();
        assert_eq!(h.status, None);
        assert_eq!(h.description, None);
        let e: Vec<(&str, &str)> = h
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(e, [("A", "1"), ("b", "2"), ("A", "3"), ("X-Y", "a: b ")]);
    }

    #[test]
    fn empty_block() {
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\n\r\n").unwrap(),
            Headers::default()
        );
        assert_eq!(enc(&Headers::default()), b"NATS/1.0\r\n\r\n");
    }

    #[test]
    fn status_line_503() {
        let h = Headers::parse(b"NATS/1.0 503\r\n\r\n").unwrap();
        assert_eq!(h.status, Some(503));
        assert_eq!(h.description, None);
        assert_eq!(enc(&h), b"NATS/1.0 503\r\n\r\n");
    }

    #[test]
    fn status_line_with_description() {
        let raw = b"NATS/1.0 404 No Messages\r\nNats-Subject: foo\r\n\r\n";
        let h = Headers::parse(raw).unwrap();
        assert_eq!(h.status, Some(404));
        assert_eq!(h.description.as_deref(), Some("No Messages"));
        assert_eq!(h.entries, [("Nats-Subject".into(), "foo".into())]);
        assert_eq!(enc(&h), raw);
    }

    #[test]
    fn description_without_status_is_not_written() {
        let h = Headers {
            status: None,
            description: Some("x".into()),
            entries: vec![],
        };
        assert_eq!(enc(&h), b"NATS/1.0\r\n\r\n");
    }

    #[test]
    fn malformed_blocks_are_rejected() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"NATS/1.0\r\n",
            b"NATS/1.0\r\nA: b\r\n",
            b"NATS/2.0\r\n\r\n",
            b"NATS/1.0x\r\n\r\n",
            b"NATS/1.0 abc\r\n\r\n",
            b"NATS/1.0 99999\r\n\r\n",
            b"NATS/1.0\r\nno colon\r\n\r\n",
            b"NATS/1.0\r\n: empty name\r\n\r\n",
            b"NATS/1.0\r\n\r\nA: b\r\n\r\n",
            b"NATS/1.0\nA: b\r\n\r\n",
            b"NATS/1.0\r\nA: \xff\r\n\r\n",
            b"NATS/1.0\r\nA: b\rc\r\n\r\n",
        ] {
            assert!(
                matches!(Headers::parse(bad), Err(DecodeError::InvalidHeaders)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
