//! Protocol versions and header escaping, which differs per version: none in 1.0;
//! `\n \c \\` in 1.1; `\r \n \c \\` in 1.2; never in CONNECT/CONNECTED frames.

use bytes::{BufMut, BytesMut};

use super::error::StompError;

/// A STOMP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// STOMP 1.0.
    V1_0,
    /// STOMP 1.1.
    V1_1,
    /// STOMP 1.2.
    V1_2,
}

impl Version {
    /// Every version this codec speaks, oldest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// As written in `accept-version` and `version` headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// The version named `text`.
    pub fn parse(text: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// The highest version of a comma-separated `accept-version` list that this codec
    /// speaks. A missing header means 1.0 (spec, "Protocol Negotiation").
    pub fn negotiate(accept_version: Option<&str>) -> Option<Version> {
        match accept_version {
            None => Some(Version::V1_0),
            Some(list) => list
                .split(',')
                .filter_map(|v| Version::parse(v.trim()))
                .max(),
        }
    }
}

/// Decodes a raw header name or value: escapes resolved when `escaped` (per
/// `version`), then checked to be UTF-8.
pub(crate) fn decode(raw: &[u8], version: Version, escaped: bool) -> Result<String, StompError> {
    if !escaped || version == Version::V1_0 || !raw.contains(&b'\\') {
        return utf8(raw.to_vec());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let decoded = match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'c') => b':',
            Some(b'\\') => b'\\',
            Some(b'r') if version == Version::V1_2 => b'\r',
            Some(&other) => return Err(StompError::BadEscape(escape_text(other))),
            None => return Err(StompError::BadEscape("\\ at the end".into())),
        };
        out.push(decoded);
    }
    utf8(out)
}

fn escape_text(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("\\{}", b as char)
    } else {
        format!("\\ followed by byte {b:#04x}")
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, StompError> {
    String::from_utf8(bytes).map_err(|_| StompError::Malformed("header is not UTF-8"))
}

/// Writes a header name or value, escaped for `version` when `escaped`. STOMP 1.0
/// has no escapes: a line break there would end the header, so it becomes a space.
pub(crate) fn encode(text: &str, version: Version, escaped: bool, out: &mut BytesMut) {
    let special = |b: &u8| matches!(b, b'\n' | b'\r' | b':' | b'\\');
    if !text.as_bytes().iter().any(special) {
        out.put_slice(text.as_bytes());
        return;
    }
    for &b in text.as_bytes() {
        match (b, version, escaped) {
            (b'\n' | b'\r', Version::V1_0, _) | (b'\n' | b'\r', _, false) => out.put_u8(b' '),
            (b'\n', _, true) => out.put_slice(b"\\n"),
            (b'\r', Version::V1_2, true) => out.put_slice(b"\\r"),
            (b':', Version::V1_1 | Version::V1_2, true) => out.put_slice(b"\\c"),
            (b'\\', Version::V1_1 | Version::V1_2, true) => out.put_slice(b"\\\\"),
            (other, _, _) => out.put_u8(other),
        }
    }
}
