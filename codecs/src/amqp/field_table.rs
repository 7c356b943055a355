//! Field tables and field arrays, with RabbitMQ's type set (errata §3 / `rabbit_binary_parser`),
//! not the 0-9-1 spec's: `s` is a signed 16-bit integer (not a short string), `l` a *signed*
//! 64-bit integer (`L` is accepted as a synonym on decode), `x` a byte array, and there is no
//! short-string value type. Array and table lengths are byte lengths (errata §4).
//!
//! Decoding is bounded: every length is checked against the bytes left in the frame before
//! anything is read, and nesting deeper than [`MAX_DEPTH`] is a syntax error rather than a
//! stack overflow. Keys are kept in wire order; duplicates are kept as received.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::AmqpError;
use super::wire::{len_since, patch_u32, put_longstr, put_shortstr, Reader};

/// How many tables/arrays may nest inside a top-level table (RabbitMQ has no limit; `x-death`
/// headers nest three deep).
pub const MAX_DEPTH: usize = 32;

/// One field value. The comment on each variant is its wire tag.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`: one octet, non-zero is true.
    Bool(bool),
    /// `b`: signed 8-bit.
    I8(i8),
    /// `B`: unsigned 8-bit.
    U8(u8),
    /// `s`: signed 16-bit (RabbitMQ errata; the spec says short string).
    I16(i16),
    /// `u`: unsigned 16-bit.
    U16(u16),
    /// `I`: signed 32-bit.
    I32(i32),
    /// `i`: unsigned 32-bit.
    U32(u32),
    /// `l`: signed 64-bit (RabbitMQ errata); `L` decodes to this too.
    I64(i64),
    /// `f`: IEEE-754 single.
    F32(f32),
    /// `d`: IEEE-754 double.
    F64(f64),
    /// `D`: `value / 10^scale`; the value is signed (errata).
    Decimal {
        /// Number of decimal digits after the point.
        scale: u8,
        /// The unscaled value.
        value: i32,
    },
    /// `S`: a long string (opaque bytes, usually UTF-8).
    LongString(Bytes),
    /// `x`: a byte array (RabbitMQ extension).
    Bytes(Bytes),
    /// `A`: a field array; its length prefix counts bytes.
    Array(Vec<FieldValue>),
    /// `T`: a 64-bit POSIX timestamp (seconds).
    Timestamp(u64),
    /// `F`: a nested table.
    Table(FieldTable),
    /// `V`: no value.
    Void,
}

/// A field table: (short-string key, value) pairs in wire order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable(pub Vec<(String, FieldValue)>);

impl FieldTable {
    /// The value of the first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `v`: replaces the first entry of that name in place, or appends.
    pub fn insert(&mut self, key: impl Into<String>, v: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of entries (duplicates counted).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &(String, FieldValue)> {
        self.0.iter()
    }
}

impl FromIterator<(String, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (String, FieldValue)>>(iter: I) -> Self {
        FieldTable(iter.into_iter().collect())
    }
}

impl FieldValue {
    /// Any integer type (timestamps included) that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            FieldValue::Timestamp(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A long string or byte array that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongString(b) | FieldValue::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// A `t` value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as text, for carrying AMQP headers into text-header protocols (STOMP, NATS):
    /// integers in decimal, booleans `true`/`false`, strings and byte arrays as lossy UTF-8,
    /// decimals with their point, `V` as the empty string, arrays and tables as JSON-ish text
    /// (strings quoted and escaped inside them, `V` as `null`).
    pub fn to_text(&self) -> String {
        match self {
            FieldValue::LongString(b) | FieldValue::Bytes(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            FieldValue::Void => String::new(),
            other => {
                let mut out = String::new();
                other.write_json(&mut out);
                out
            }
        }
    }

    fn write_json(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = match self {
            FieldValue::Bool(v) => write!(out, "{v}"),
            FieldValue::I8(v) => write!(out, "{v}"),
            FieldValue::U8(v) => write!(out, "{v}"),
            FieldValue::I16(v) => write!(out, "{v}"),
            FieldValue::U16(v) => write!(out, "{v}"),
            FieldValue::I32(v) => write!(out, "{v}"),
            FieldValue::U32(v) => write!(out, "{v}"),
            FieldValue::I64(v) => write!(out, "{v}"),
            FieldValue::F32(v) => write!(out, "{v}"),
            FieldValue::F64(v) => write!(out, "{v}"),
            FieldValue::Timestamp(v) => write!(out, "{v}"),
            FieldValue::Decimal { scale, value } => {
                write_decimal(out, *scale, *value);
                Ok(())
            }
            FieldValue::LongString(b) | FieldValue::Bytes(b) => {
                write_json_string(out, &String::from_utf8_lossy(b));
                Ok(())
            }
            FieldValue::Void => write!(out, "null"),
            FieldValue::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
                Ok(())
            }
            FieldValue::Table(t) => {
                out.push('{');
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(out, k);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
                Ok(())
            }
        };
    }
}

fn write_decimal(out: &mut String, scale: u8, value: i32) {
    let digits = value.unsigned_abs().to_string();
    if value < 0 {
        out.push('-');
    }
    let scale = usize::from(scale);
    if scale == 0 {
        out.push_str(&digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A table: a 32-bit byte length, then (shortstr key, tagged value) pairs filling exactly that
/// many bytes. `depth` is how many tables/arrays enclose this one.
pub(crate) fn decode_table(r: &mut Reader, depth: usize) -> Result<FieldTable, AmqpError> {
    if depth > MAX_DEPTH {
        return Err(r.err("field tables nested deeper than 32"));
    }
    let len = r.long()?;
    let mut inner = r.sub(len as usize, "field table longer than its frame")?;
    let mut entries = Vec::new();
    while !inner.is_empty() {
        let key = inner.shortstr()?;
        let value = decode_value(&mut inner, depth)?;
        entries.push((key, value));
    }
    Ok(FieldTable(entries))
}

fn decode_array(r: &mut Reader, depth: usize) -> Result<Vec<FieldValue>, AmqpError> {
    if depth > MAX_DEPTH {
        return Err(r.err("field tables nested deeper than 32"));
    }
    let len = r.long()?;
    let mut inner = r.sub(len as usize, "field array longer than its frame")?;
    let mut items = Vec::new();
    while !inner.is_empty() {
        items.push(decode_value(&mut inner, depth)?);
    }
    Ok(items)
}

fn decode_value(r: &mut Reader, depth: usize) -> Result<FieldValue, AmqpError> {
    let tag = r.octet()?;
    Ok(match tag {
        b't' => FieldValue::Bool(r.octet()? != 0),
        b'b' => FieldValue::I8(r.octet()? as i8),
        b'B' => FieldValue::U8(r.octet()?),
        b's' => FieldValue::I16(r.short()? as i16),
        b'u' => FieldValue::U16(r.short()?),
        b'I' => FieldValue::I32(r.long()? as i32),
        b'i' => FieldValue::U32(r.long()?),
        b'l' | b'L' => FieldValue::I64(r.longlong()? as i64),
        b'f' => FieldValue::F32(f32::from_bits(r.long()?)),
        b'd' => FieldValue::F64(f64::from_bits(r.longlong()?)),
        b'D' => {
            let scale = r.octet()?;
            let value = r.long()? as i32;
            FieldValue::Decimal { scale, value }
        }
        b'S' => FieldValue::LongString(r.longstr()?),
        b'x' => FieldValue::Bytes(r.longstr()?),
        b'A' => FieldValue::Array(decode_array(r, depth + 1)?),
        b'T' => FieldValue::Timestamp(r.longlong()?),
        b'F' => FieldValue::Table(decode_table(r, depth + 1)?),
        b'V' => FieldValue::Void,
        _ => return Err(r.err("unknown field value type")),
    })
}

/// Writes `t` with its byte-length prefix (patched in after the entries are written).
pub(crate) fn encode_table(t: &FieldTable, dst: &mut BytesMut) {
    let at = dst.len();
    dst.put_u32(0);
    for (k, v) in t.iter() {
        put_shortstr(dst, k);
        encode_value(v, dst);
    }
    let len = len_since(dst, at + 4);
    patch_u32(dst, at, len);
}

fn encode_value(v: &FieldValue, dst: &mut BytesMut) {
    match v {
        FieldValue::Bool(b) => {
            dst.put_u8(b't');
            dst.put_u8(u8::from(*b));
        }
        FieldValue::I8(n) => {
            dst.put_u8(b'b');
            dst.put_i8(*n);
        }
        FieldValue::U8(n) => {
            dst.put_u8(b'B');
            dst.put_u8(*n);
        }
        FieldValue::I16(n) => {
            dst.put_u8(b's');
            dst.put_i16(*n);
        }
        FieldValue::U16(n) => {
            dst.put_u8(b'u');
            dst.put_u16(*n);
        }
        FieldValue::I32(n) => {
            dst.put_u8(b'I');
            dst.put_i32(*n);
        }
        FieldValue::U32(n) => {
            dst.put_u8(b'i');
            dst.put_u32(*n);
        }
        FieldValue::I64(n) => {
            dst.put_u8(b'l');
            dst.put_i64(*n);
        }
        FieldValue::F32(n) => {
            dst.put_u8(b'f');
            dst.put_u32(n.to_bits());
        }
        FieldValue::F64(n) => {
            dst.put_u8(b'd');
            dst.put_u64(n.to_bits());
        }
        FieldValue::Decimal { scale, value } => {
            dst.put_u8(b'D');
            dst.put_u8(*scale);
            dst.put_i32(*value);
        }
        FieldValue::LongString(b) => {
            dst.put_u8(b'S');
            put_longstr(dst, b);
        }
        FieldValue::Bytes(b) => {
            dst.put_u8(b'x');
            put_longstr(dst, b);
        }
        FieldValue::Array(items) => {
            dst.put_u8(b'A');
            let at = dst.len();
            dst.put_u32(0);
            for item in items {
                encode_value(item, dst);
            }
            let len = len_since(dst, at + 4);
            patch_u32(dst, at, len);
        }
        FieldValue::Timestamp(t) => {
            dst.put_u8(b'T');
            dst.put_u64(*t);
        }
        FieldValue::Table(t) => {
            dst.put_u8(b'F');
            encode_table(t, dst);
        }
        FieldValue::Void => dst.put_u8(b'V'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<FieldTable, AmqpError> {
        let mut r = Reader::new(Bytes::copy_from_slice(bytes), 0, 0, "test");
        decode_table(&mut r, 0)
    }

    #[test]
    fn text_rendering() {
        assert_eq!(FieldValue::I16(-3).to_text(), "-3");
        assert_eq!(FieldValue::Bool(true).to_text(), "true");
        assert_eq!(
            FieldValue::LongString(Bytes::from_static(b"a\"b")).to_text(),
            "a\"b"
        );
        assert_eq!(
            FieldValue::Decimal {
                scale: 2,
                value: -5
            }
            .to_text(),
            "-0.05"
        );
        assert_eq!(
            FieldValue::Decimal {
                scale: 2,
                value: 12345
            }
            .to_text(),
            "123.45"
        );
        let t: FieldTable = [
            (
                "k".to_owned(),
                FieldValue::LongString(Bytes::from_static(b"v\n")),
            ),
            (
                "a".to_owned(),
                FieldValue::Array(vec![FieldValue::U8(1), FieldValue::Void]),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            FieldValue::Table(t).to_text(),
            r#"{"k":"v\n","a":[1,null]}"#
        );
    }

    #[test]
    fn insert_replaces_in_place() {
        let mut t = FieldTable::default();
        t.insert("a", FieldValue::U8(1));
        t.insert("b", FieldValue::U8(2));
        t.insert("a", FieldValue::U8(3));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("a"), Some(&FieldValue::U8(3)));
        assert_eq!(t.iter().next().map(|(k, _)| k.as_str()), Some("a"));
    }

    #[test]
    fn depth_is_bounded() {
        // 40 nested tables `{"a": {"a": ...}}`, built from the inside out.
        let mut inner: Vec<u8> = vec![0, 0, 0, 0];
        for _ in 0..40 {
            let mut outer = Vec::new();
            let len = (inner.len() + 3) as u32;
            outer.extend_from_slice(&len.to_be_bytes());
            outer.extend_from_slice(&[1, b'a', b'F']);
            outer.extend_from_slice(&inner);
            inner = outer;
        }
        let err = decode(&inner).unwrap_err();
        assert!(matches!(err, AmqpError::Syntax { reason, .. } if reason.contains("deeper")));
    }

    #[test]
    fn big_lengths_do_not_allocate() {
        let err = decode(&[0xFF, 0xFF, 0xFF, 0xFF, 0]).unwrap_err();
        assert!(matches!(err, AmqpError::Syntax { .. }));
        // An array claiming 4 GiB inside a small table.
        let err = decode(&[0, 0, 0, 7, 1, b'a', b'A', 0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert!(matches!(err, AmqpError::Syntax { .. }));
    }
}
