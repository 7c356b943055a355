//! Avro's JSON encoding, schema-directed, as Confluent's REST proxy reads and
//! writes Avro records: unions are `null` or `{"<branch type>": value}` (a bare
//! value is taken too, for the first branch it fits), bytes and fixed are strings
//! of code points 0-255, records are objects with defaults for missing fields.
//! Logical types travel as their underlying type (apache-avro's `resolve` makes
//! the rest). Also a decoder of Avro binary straight into that JSON, bounded in
//! depth and in items, which apache-avro's decoder is not.

use std::collections::HashMap;

use apache_avro::schema::{Schema, UnionSchema};
use apache_avro::types::Value;
use serde_json::{Map, Value as Json};

/// Named types by full name, for `Ref`s.
pub(crate) type Names<'a> = HashMap<String, &'a Schema>;

/// Collects the named types of `schema` (and of its references) into `names`.
pub(crate) fn collect_names<'a>(schema: &'a Schema, names: &mut Names<'a>) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.fullname(None), schema);
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema);
        }
        Schema::Fixed(f) | Schema::Duration(f) => {
            names.insert(f.name.fullname(None), schema);
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

fn deref<'a>(schema: &'a Schema, names: &Names<'a>) -> Result<&'a Schema, String> {
    match schema {
        Schema::Ref { name } => names
            .get(&name.fullname(None))
            .copied()
            .ok_or_else(|| format!("unknown type {}", name.fullname(None))),
        other => Ok(other),
    }
}

/// An int, or a logical type stored as one (a pattern: matches stay exhaustive).
macro_rules! int_like {
    () => {
        Schema::Int | Schema::Date | Schema::TimeMillis
    };
}

/// A long, or a logical type stored as one.
macro_rules! long_like {
    () => {
        Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    };
}

/// The name a union branch is tagged with in JSON.
fn branch_name(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        int_like!() => "int".into(),
        long_like!() => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) | Schema::Duration(f) => f.name.fullname(None),
        Schema::Decimal(_) | Schema::Uuid(_) | Schema::Union(_) => "bytes".into(),
        Schema::Ref { name } => name.fullname(None),
    }
}

fn latin1(text: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("{c:?} is not a byte")))
        .collect()
}

/// Conversion steps one record may take: an untagged value for a union is tried
/// against each branch, which nested unions would make exponential.
pub(crate) const STEPS: usize = 100_000;

/// A JSON record in Avro's JSON encoding as a value of `schema`, in at most
/// `budget` steps.
pub(crate) fn from_json(
    json: &Json,
    schema: &Schema,
    names: &Names<'_>,
    budget: &mut usize,
) -> Result<Value, String> {
    *budget = budget
        .checked_sub(1)
        .ok_or("the record is too complex to convert")?;
    let schema = deref(schema, names)?;
    let mismatch = || format!("{json} is not a {}", branch_name(schema));
    Ok(match (schema, json) {
        (Schema::Null, Json::Null) => Value::Null,
        (Schema::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (int_like!(), Json::Number(n)) => Value::Int(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(mismatch)?,
        ),
        (long_like!(), Json::Number(n)) => Value::Long(n.as_i64().ok_or_else(mismatch)?),
        (Schema::Float, Json::Number(n)) => Value::Float(n.as_f64().ok_or_else(mismatch)? as f32),
        (Schema::Double, Json::Number(n)) => Value::Double(n.as_f64().ok_or_else(mismatch)?),
        (Schema::Bytes | Schema::Decimal(_) | Schema::BigDecimal, Json::String(s)) => {
            Value::Bytes(latin1(s)?)
        }
        (Schema::Fixed(f) | Schema::Duration(f), Json::String(s)) => {
            let bytes = latin1(s)?;
            if bytes.len() != f.size {
                return Err(format!(
                    "fixed {} takes {} bytes, not {}",
                    branch_name(schema),
                    f.size,
                    bytes.len()
                ));
            }
            Value::Fixed(f.size, bytes)
        }
        (Schema::String | Schema::Uuid(_), Json::String(s)) => Value::String(s.clone()),
        (Schema::Array(a), Json::Array(items)) => Value::Array(
            items
                .iter()
                .map(|i| from_json(i, &a.items, names, budget))
                .collect::<Result<_, _>>()?,
        ),
        (Schema::Map(m), Json::Object(entries)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_json(v, &m.types, names, budget)?)))
                .collect::<Result<_, String>>()?,
        ),
        (Schema::Enum(e), Json::String(s)) => {
            let i = e.symbols.iter().position(|x| x == s).ok_or_else(mismatch)?;
            Value::Enum(i as u32, s.clone())
        }
        (Schema::Record(r), Json::Object(fields)) => {
            let mut out = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let value = match (fields.get(&f.name), &f.default) {
                    (Some(v), _) => from_json(v, &f.schema, names, budget),
                    (None, Some(default)) => default_value(default, &f.schema, names, budget),
                    (None, None) => Err(format!("field {} is missing", f.name)),
                }
                .map_err(|e| format!("{}: {e}", f.name))?;
                out.push((f.name.clone(), value));
            }
            Value::Record(out)
        }
        (Schema::Union(u), _) => from_json_union(json, u, names, budget)?,
        _ => return Err(mismatch()),
    })
}

/// A field default, which is in the JSON encoding of the field's schema except
/// that a union's default is for its first branch, untagged.
fn default_value(
    default: &Json,
    schema: &Schema,
    names: &Names<'_>,
    budget: &mut usize,
) -> Result<Value, String> {
    match deref(schema, names)? {
        Schema::Union(u) => {
            let first = u.variants().first().ok_or("empty union")?;
            Ok(Value::Union(
                0,
                Box::new(from_json(default, first, names, budget)?),
            ))
        }
        other => from_json(default, other, names, budget),
    }
}

fn from_json_union(
    json: &Json,
    u: &UnionSchema,
    names: &Names<'_>,
    budget: &mut usize,
) -> Result<Value, String> {
    let variants = u.variants();
    if json.is_null() {
        let i = variants
            .iter()
            .position(|v| matches!(v, Schema::Null))
            .ok_or("null is not in the union")?;
        return Ok(Value::Union(i as u32, Box::new(Value::Null)));
    }
    if let Json::Object(tagged) = json {
        if let (1, Some((tag, inner))) = (tagged.len(), tagged.iter().next()) {
            for (i, v) in variants.iter().enumerate() {
                if branch_name(deref(v, names)?) == *tag || branch_name(v) == *tag {
                    return Ok(Value::Union(
                        i as u32,
                        Box::new(from_json(inner, v, names, budget)?),
                    ));
                }
            }
        }
    }
    for (i, v) in variants.iter().enumerate() {
        match from_json(json, v, names, budget) {
            Ok(value) => return Ok(Value::Union(i as u32, Box::new(value))),
            Err(e) if *budget == 0 => return Err(e),
            Err(_) => {}
        }
    }
    Err(format!("{json} fits no branch of the union"))
}

/// How deep a decoded value may nest (apache-avro's decoder has no limit; a
/// recursive schema would let a few bytes per level overflow the stack).
const MAX_DEPTH: usize = 128;

/// Bytes of a value of `schema` (Avro binary, the whole of `bytes`) as JSON in
/// Avro's JSON encoding. Bounded: at most [`MAX_DEPTH`] levels, and at most 8
/// values per input byte (items that take no bytes cannot multiply).
pub(crate) fn decode(bytes: &[u8], schema: &Schema, names: &Names<'_>) -> Result<Json, String> {
    let mut d = Decoder {
        input: bytes,
        names,
        nodes: bytes.len().saturating_mul(8).saturating_add(1024),
    };
    let value = d.value(schema, 0)?;
    if !d.input.is_empty() {
        return Err(format!("{} bytes after the value", d.input.len()));
    }
    Ok(value)
}

struct Decoder<'a, 'n> {
    input: &'a [u8],
    names: &'n Names<'n>,
    nodes: usize,
}

impl Decoder<'_, '_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.input.len() < n {
            return Err("the value ends early".into());
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.long()?).map_err(|_| "a negative length".to_owned())
    }

    fn latin1(&mut self, n: usize) -> Result<Json, String> {
        Ok(Json::String(
            self.take(n)?.iter().map(|&c| char::from(c)).collect(),
        ))
    }

    /// The item count of the next block (0: the end); a negative count is
    /// followed by the block's size in bytes, which is skipped over.
    fn block(&mut self) -> Result<usize, String> {
        let count = self.long()?;
        if count < 0 {
            self.long()?;
        }
        usize::try_from(count.unsigned_abs()).map_err(|_| "a block too large".to_owned())
    }

    /// Calls `each` for every item of an array's or a map's blocks.
    fn blocks(
        &mut self,
        mut each: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let n = self.block()?;
            if n == 0 {
                return Ok(());
            }
            for _ in 0..n {
                each(self)?;
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        let text = std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())?;
        Ok(text.to_owned())
    }

    fn value(&mut self, schema: &Schema, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(format!("the value nests deeper than {MAX_DEPTH} levels"));
        }
        self.nodes = self
            .nodes
            .checked_sub(1)
            .ok_or("the value holds too many items for its size")?;
        let schema = deref(schema, self.names)?;
        Ok(match schema {
            Schema::Null => Json::Null,
            Schema::Boolean => Json::Bool(self.take(1)?[0] != 0),
            int_like!() => {
                let n = self.long()?;
                i32::try_from(n)
                    .map_err(|_| format!("{n} is not an int"))?
                    .into()
            }
            long_like!() => self.long()?.into(),
            Schema::Float => {
                let b = self.take(4)?;
                let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                serde_json::Number::from_f64(f64::from(f)).map_or(Json::Null, Json::Number)
            }
            Schema::Double => {
                let b = self.take(8)?;
                let f = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
            }
            Schema::String | Schema::Uuid(apache_avro::schema::UuidSchema::String) => {
                Json::String(self.string()?)
            }
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(apache_avro::schema::UuidSchema::Bytes) => {
                let n = self.len()?;
                self.latin1(n)?
            }
            Schema::Decimal(d) => match &d.inner {
                apache_avro::schema::InnerDecimalSchema::Bytes => {
                    let n = self.len()?;
                    self.latin1(n)?
                }
                apache_avro::schema::InnerDecimalSchema::Fixed(f) => self.latin1(f.size)?,
            },
            Schema::Fixed(f)
            | Schema::Duration(f)
            | Schema::Uuid(apache_avro::schema::UuidSchema::Fixed(f)) => self.latin1(f.size)?,
            Schema::Enum(e) => {
                let i = self.len()?;
                Json::String(
                    e.symbols
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("no symbol {i}"))?,
                )
            }
            Schema::Array(a) => {
                let mut items = Vec::new();
                self.blocks(|d| {
                    items.push(d.value(&a.items, depth + 1)?);
                    Ok(())
                })?;
                Json::Array(items)
            }
            Schema::Map(m) => {
                let mut entries = Map::new();
                self.blocks(|d| {
                    let key = d.string()?;
                    let v = d.value(&m.types, depth + 1)?;
                    entries.insert(key, v);
                    Ok(())
                })?;
                Json::Object(entries)
            }
            Schema::Record(r) => {
                let mut out = Map::new();
                for f in &r.fields {
                    out.insert(f.name.clone(), self.value(&f.schema, depth + 1)?);
                }
                Json::Object(out)
            }
            Schema::Union(u) => {
                let i = self.len()?;
                let branch = u
                    .variants()
                    .get(i)
                    .ok_or_else(|| format!("no union branch {i}"))?;
                let branch = deref(branch, self.names)?;
                let inner = self.value(branch, depth + 1)?;
                if matches!(branch, Schema::Null) {
                    Json::Null
                } else {
                    let mut tagged = Map::new();
                    tagged.insert(branch_name(branch), inner);
                    Json::Object(tagged)
                }
            }
            Schema::Ref { name } => return Err(format!("unknown type {}", name.fullname(None))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names_of(schema: &Schema) -> Names<'_> {
        let mut names = Names::new();
        collect_names(schema, &mut names);
        names
    }

    #[test]
    fn decoding_is_bounded_in_depth_and_in_items() {
        let list = Schema::parse_str(
            r#"{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}"#,
        )
        .unwrap();
        let names = names_of(&list);
        // next = N { next = N { next = null } }: union index 1, 1, then 0.
        assert_eq!(
            decode(&[2, 2, 0], &list, &names).unwrap(),
            json!({"next": {"N": {"next": {"N": {"next": null}}}}})
        );
        // A million levels in a megabyte: refused, not a stack overflow.
        assert!(decode(&vec![2u8; 1 << 20], &list, &names).is_err());
        // Arrays of arrays of nulls: each inner array is 2 bytes for 300k items.
        let nulls =
            Schema::parse_str(r#"{"type":"array","items":{"type":"array","items":"null"}}"#)
                .unwrap();
        let mut bytes = vec![];
        let varint = |n: i64, out: &mut Vec<u8>| {
            let mut z = ((n << 1) ^ (n >> 63)) as u64;
            loop {
                let b = (z & 0x7f) as u8;
                z >>= 7;
                if z == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        };
        varint(100_000, &mut bytes);
        for _ in 0..100_000 {
            varint(300_000, &mut bytes);
            bytes.push(0);
        }
        bytes.push(0);
        assert!(decode(&bytes, &nulls, &names_of(&nulls)).is_err());
        // Trailing or missing bytes are errors too.
        let int = Schema::parse_str(r#""int""#).unwrap();
        assert_eq!(decode(&[0x54], &int, &Names::new()).unwrap(), json!(42));
        assert!(decode(&[0x54, 0], &int, &Names::new()).is_err());
        assert!(decode(&[0x80], &int, &Names::new()).is_err());
    }

    #[test]
    fn untagged_unions_cannot_take_exponential_time() {
        // Each level: a union of two records that both recurse through the union.
        let schema = r#"{"type":"record","name":"T","fields":[{"name":"u","type":["null",
            {"type":"record","name":"A","fields":[{"name":"t","type":"T"},{"name":"x","type":"int"}]},
            {"type":"record","name":"B","fields":[{"name":"t","type":"T"},{"name":"y","type":"int"}]}]}]}"#;
        let schema = Schema::parse_str(schema).unwrap();
        let mut names = Names::new();
        collect_names(&schema, &mut names);
        let mut json = json!({"u": null});
        for _ in 0..60 {
            json = json!({"u": {"t": json, "z": 1}});
        }
        let started = std::time::Instant::now();
        assert!(from_json(&json, &schema, &names, &mut STEPS.clone()).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    fn round_trip(schema: &str, json: Json) -> Json {
        use crate::protocols::schema_registry::schema::{parse, SchemaType};
        let parsed = parse(SchemaType::Avro, schema, &[]).unwrap();
        parsed.decode(&parsed.encode(&json).unwrap()).unwrap()
    }

    #[test]
    fn unions_are_tagged_and_bytes_are_latin1() {
        let schema = r#"{"type":"record","name":"R","namespace":"n","fields":[
            {"name":"b","type":"bytes"},
            {"name":"u","type":["null","string","R2"]},
            {"name":"d","type":"int","default":7},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}
        ]}"#
        .replace(
            "\"R2\"",
            r#"{"type":"record","name":"R2","fields":[{"name":"x","type":"long"}]}"#,
        );
        let out = round_trip(
            &schema,
            json!({"b": "\u{0}\u{ff}a", "u": {"string": "s"}, "e": "B"}),
        );
        assert_eq!(
            out,
            json!({"b": "\u{0}\u{ff}a", "u": {"string": "s"}, "d": 7, "e": "B"})
        );
        // A bare value for a union is taken for the first branch it fits.
        let out = round_trip(&schema, json!({"b": "", "u": "bare", "e": "A"}));
        assert_eq!(out["u"], json!({"string": "bare"}));
        let out = round_trip(&schema, json!({"b": "", "u": {"n.R2": {"x": 3}}, "e": "A"}));
        assert_eq!(out["u"], json!({"n.R2": {"x": 3}}));
        let out = round_trip(&schema, json!({"b": "", "u": null, "e": "A"}));
        assert_eq!(out["u"], Json::Null);
        let schema = Schema::parse_str(r#"{"type":"bytes"}"#).unwrap();
        assert!(from_json(
            &json!("\u{100}"),
            &schema,
            &Names::new(),
            &mut STEPS.clone()
        )
        .is_err());
    }

    proptest::proptest! {
        /// Whatever bytes a record holds, decoding answers (Ok or Err), never
        /// panics, and stays within its bounds.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let schemas = [
                r#"{"type":"record","name":"N","fields":[{"name":"v","type":["null","string","bytes","N"]},{"name":"m","type":{"type":"map","values":"N"}}]}"#,
                r#"{"type":"array","items":{"type":"array","items":["null",{"type":"fixed","name":"F","size":3},{"type":"enum","name":"E","symbols":["A"]}]}}"#,
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"double"},{"name":"b","type":"long"},{"name":"c","type":"boolean"},{"name":"d","type":"float"}]}"#,
            ];
            for text in schemas {
                let schema = Schema::parse_str(text).unwrap();
                let _ = decode(&bytes, &schema, &names_of(&schema));
            }
        }
    }
}
