//! Data representations of §1.5: integers, UTF-8 strings, binary data and Variable Byte
//! Integers, read from a bounds-checked cursor and written to a `BytesMut`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::header::{read_varint, VarInt};

/// The longest UTF-8 string or binary field: its length is a two-byte integer (§1.5.4).
pub(crate) const MAX_FIELD_LEN: usize = 65_535;

/// A cursor over one packet's body. Every read checks the remaining length first, so a short
/// packet is `DecodeError::Truncated`, never a panic; `Bytes` reads are zero-copy slices.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    /// A Variable Byte Integer (§1.5.5) inside the body.
    pub(crate) fn varint(&mut self) -> Result<usize, DecodeError> {
        match read_varint(&self.buf) {
            VarInt::Value(v, n) => {
                self.buf.advance(n);
                Ok(v)
            }
            VarInt::Incomplete => Err(DecodeError::Truncated),
            VarInt::Malformed => Err(DecodeError::MalformedVarInt),
        }
    }

    /// The next `n` bytes, as a zero-copy slice of the packet.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Everything left (a PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Binary Data (§1.5.6): a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String (§1.5.4). The length was checked against the packet before the
    /// `String` is allocated.
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let raw = self.binary()?;
        // [MQTT-1.5.4-1] The character data in a UTF-8 Encoded String MUST be well-formed UTF-8
        // as defined by the Unicode specification and restated in RFC 3629. In particular, the
        // character data MUST NOT include encodings of code points between U+D800 and U+DFFF.
        // (`from_utf8` rejects surrogates and overlong forms.)
        let s = std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8)?;
        // [MQTT-1.5.4-2] A UTF-8 Encoded String MUST NOT include an encoding of the null
        // character U+0000.
        if s.contains('\0') {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(s.to_owned())
    }

    /// Fails if anything is left: for packets whose fields fill the Remaining Length exactly.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// Encoded length of a UTF-8 string or binary field: two length bytes plus the data.
pub(crate) fn field_len(data: &[u8]) -> usize {
    2 + data.len()
}

/// Writes Binary Data (or a string's bytes) with its two-byte length prefix.
pub(crate) fn put_binary(dst: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    if data.len() > MAX_FIELD_LEN {
        return Err(EncodeError::FieldTooLong { len: data.len() });
    }
    // Cannot truncate: checked against MAX_FIELD_LEN (u16::MAX) above.
    dst.put_u16(data.len() as u16);
    dst.put_slice(data);
    Ok(())
}

/// Writes a UTF-8 Encoded String. A Rust `&str` is well-formed UTF-8 already; U+0000 is not
/// checked here (the peer would reject it, and so would our decoder).
pub(crate) fn put_string(dst: &mut BytesMut, s: &str) -> Result<(), EncodeError> {
    put_binary(dst, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_1_5_4_1_ill_formed_utf8_is_malformed() {
        // An encoded surrogate U+D800 (ED A0 80) and a lone continuation byte.
        for bad in [&[0x00, 0x03, 0xED, 0xA0, 0x80][..], &[0x00, 0x01, 0x80]] {
            let mut r = Reader::new(Bytes::copy_from_slice(bad));
            assert!(matches!(r.string(), Err(DecodeError::InvalidUtf8)));
        }
    }

    #[test]
    fn mqtt_1_5_4_2_null_character_is_malformed() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x03, b'a', 0x00, b'b']));
        assert!(matches!(r.string(), Err(DecodeError::InvalidUtf8)));
    }

    #[test]
    fn string_length_past_end_is_truncated() {
        let mut r = Reader::new(Bytes::from_static(&[0xFF, 0xFF, b'a']));
        assert!(matches!(r.string(), Err(DecodeError::Truncated)));
        let mut r = Reader::new(Bytes::from_static(&[0x00]));
        assert!(matches!(r.binary(), Err(DecodeError::Truncated)));
    }

    #[test]
    fn string_roundtrip_and_bom_kept() {
        // §1.5.4: 0xEF 0xBB 0xBF is a ZERO WIDTH NO-BREAK SPACE and MUST NOT be stripped.
        let s = "\u{FEFF}A\u{2A6D4}";
        let mut dst = BytesMut::new();
        put_string(&mut dst, s).unwrap();
        assert_eq!(dst.len(), field_len(s.as_bytes()));
        let mut r = Reader::new(dst.freeze());
        assert_eq!(r.string().unwrap(), s);
        r.finish().unwrap();
    }

    #[test]
    fn too_long_field_is_an_encode_error() {
        let mut dst = BytesMut::new();
        let big = vec![b'a'; MAX_FIELD_LEN + 1];
        assert!(matches!(
            put_binary(&mut dst, &big),
            Err(EncodeError::FieldTooLong { len: 65_536 })
        ));
        put_binary(&mut dst, &big[..MAX_FIELD_LEN]).unwrap();
    }
}
