//! The spec's domain types (§4.2.5) read from a bounds-checked cursor and written to a
//! `BytesMut`. Method arguments and content properties are both read and written with these,
//! one call per field, named after the wire type (`octet`, `short`, `shortstr`, ...), so the
//! method and property tables can call `r.$wire_type()` / `w.$wire_type(..)` directly.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::AmqpError;
use super::field_table::{self, FieldTable};

/// A cursor over one frame's arguments. Every read checks the remaining length first, so short
/// input is a [`AmqpError::Syntax`] naming what was being decoded, never a panic; long strings
/// are zero-copy slices of the frame.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    /// The octet that consecutive `bit` fields are packed into, and how many of its bits were
    /// used; any non-bit read ends the packing (§4.2.5.2).
    bits: Option<(u8, u8)>,
    class_id: u16,
    method_id: u16,
    context: &'static str,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, class_id: u16, method_id: u16, context: &'static str) -> Self {
        Self {
            buf,
            bits: None,
            class_id,
            method_id,
            context,
        }
    }

    /// The syntax error for this reader's context.
    pub(crate) fn err(&self, reason: &'static str) -> AmqpError {
        AmqpError::Syntax {
            class_id: self.class_id,
            method_id: self.method_id,
            context: self.context,
            reason,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&mut self, n: usize, reason: &'static str) -> Result<(), AmqpError> {
        self.bits = None;
        if self.buf.len() < n {
            Err(self.err(reason))
        } else {
            Ok(())
        }
    }

    /// The next `n` bytes as a zero-copy slice; `n` is checked against what is left first, so
    /// a length field can never make us allocate or read beyond the frame.
    pub(crate) fn take(&mut self, n: usize, reason: &'static str) -> Result<Bytes, AmqpError> {
        self.need(n, reason)?;
        Ok(self.buf.split_to(n))
    }

    /// A reader over the next `n` bytes with the same error context (a table or an array).
    pub(crate) fn sub(&mut self, n: usize, reason: &'static str) -> Result<Reader, AmqpError> {
        let buf = self.take(n, reason)?;
        Ok(Reader::new(
            buf,
            self.class_id,
            self.method_id,
            self.context,
        ))
    }

    pub(crate) fn octet(&mut self) -> Result<u8, AmqpError> {
        self.need(1, "ends early")?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn short(&mut self) -> Result<u16, AmqpError> {
        self.need(2, "ends early")?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn long(&mut self) -> Result<u32, AmqpError> {
        self.need(4, "ends early")?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn longlong(&mut self) -> Result<u64, AmqpError> {
        self.need(8, "ends early")?;
        Ok(self.buf.get_u64())
    }

    pub(crate) fn timestamp(&mut self) -> Result<u64, AmqpError> {
        self.longlong()
    }

    /// One `bit` field: consecutive bits share an octet, least significant bit first.
    pub(crate) fn bit(&mut self) -> Result<bool, AmqpError> {
        let (octet, used) = match self.bits {
            Some((octet, used)) if used < 8 => (octet, used),
            _ => (self.octet()?, 0),
        };
        self.bits = Some((octet, used + 1));
        Ok(octet & (1 << used) != 0)
    }

    /// A `shortstr`: one length octet, then UTF-8 (invalid UTF-8 is a syntax error: the
    /// broker uses these as names and keys).
    pub(crate) fn shortstr(&mut self) -> Result<String, AmqpError> {
        let len = self.octet()?;
        let raw = self.take(usize::from(len), "short string longer than its frame")?;
        match std::str::from_utf8(&raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.err("short string is not UTF-8")),
        }
    }

    /// A `longstr`: a 32-bit length, then opaque bytes (a zero-copy slice).
    pub(crate) fn longstr(&mut self) -> Result<Bytes, AmqpError> {
        let len = self.long()?;
        let len =
            usize::try_from(len).map_err(|_| self.err("long string longer than its frame"))?;
        self.take(len, "long string longer than its frame")
    }

    pub(crate) fn table(&mut self) -> Result<FieldTable, AmqpError> {
        field_table::decode_table(self, 0)
    }
}

/// Writes fields in order, packing consecutive `bit` fields into one octet.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    dst: &'a mut BytesMut,
    /// Where the octet that the current run of bits is packed into sits, and how many bits it
    /// holds; any non-bit write ends the run.
    bits: Option<(usize, u8)>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(dst: &'a mut BytesMut) -> Self {
        Self { dst, bits: None }
    }

    pub(crate) fn octet(&mut self, v: &u8) {
        self.bits = None;
        self.dst.put_u8(*v);
    }

    pub(crate) fn short(&mut self, v: &u16) {
        self.bits = None;
        self.dst.put_u16(*v);
    }

    pub(crate) fn long(&mut self, v: &u32) {
        self.bits = None;
        self.dst.put_u32(*v);
    }

    pub(crate) fn longlong(&mut self, v: &u64) {
        self.bits = None;
        self.dst.put_u64(*v);
    }

    pub(crate) fn timestamp(&mut self, v: &u64) {
        self.longlong(v);
    }

    pub(crate) fn bit(&mut self, v: &bool) {
        match self.bits {
            Some((at, used)) if used < 8 => {
                if *v {
                    if let Some(octet) = self.dst.get_mut(at) {
                        *octet |= 1 << used;
                    }
                }
                self.bits = Some((at, used + 1));
            }
            _ => {
                let at = self.dst.len();
                self.dst.put_u8(u8::from(*v));
                self.bits = Some((at, 1));
            }
        }
    }

    pub(crate) fn shortstr(&mut self, v: &str) {
        self.bits = None;
        put_shortstr(self.dst, v);
    }

    pub(crate) fn longstr(&mut self, v: &[u8]) {
        self.bits = None;
        put_longstr(self.dst, v);
    }

    pub(crate) fn table(&mut self, v: &FieldTable) {
        self.bits = None;
        field_table::encode_table(v, self.dst);
    }
}

/// The longest prefix of `s` that fits a `shortstr` (255 bytes) and ends on a character
/// boundary. Encoding never fails or panics: an over-long name is truncated, which the peer
/// sees as a different (valid) name; callers that care validate lengths before encoding.
pub(crate) fn shortstr_prefix(s: &str) -> &str {
    if s.len() <= 255 {
        return s;
    }
    let mut end = 255;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

pub(crate) fn put_shortstr(dst: &mut BytesMut, s: &str) {
    let s = shortstr_prefix(s);
    dst.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
    dst.put_slice(s.as_bytes());
}

/// A `longstr`; anything past 4 GiB - 1 is truncated (a frame could not carry it anyway).
pub(crate) fn put_longstr(dst: &mut BytesMut, v: &[u8]) {
    let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
    dst.put_u32(len);
    dst.put_slice(v.get(..len as usize).unwrap_or(v));
}

/// Overwrites the big-endian `u32` at `at` (a length written as a placeholder before its
/// contents were known).
pub(crate) fn patch_u32(dst: &mut BytesMut, at: usize, v: u32) {
    if let Some(slot) = dst.get_mut(at..at + 4) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
}

/// The number of bytes written since `start`, as a wire length.
pub(crate) fn len_since(dst: &BytesMut, start: usize) -> u32 {
    u32::try_from(dst.len().saturating_sub(start)).unwrap_or(u32::MAX)
}

impl Reader {
    /// Everything left (a content header's property bytes), zero-copy.
    pub(crate) fn take_rest(&mut self) -> Bytes {
        self.bits = None;
        std::mem::take(&mut self.buf)
    }
}
