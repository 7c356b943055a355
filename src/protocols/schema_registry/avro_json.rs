//! Avro's JSON encoding, schema-directed, as Confluent's REST proxy reads and
//! writes Avro records: unions are `null` or `{"<branch type>": value}` (a bare
//! value is taken too, for the first branch it fits), bytes and fixed are strings
//! of code points 0-255, records are objects with defaults for missing fields.
//! Logical types travel as their underlying type (apache-avro's `resolve` makes
//! the rest).

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

/// The name a union branch is tagged with in JSON.
fn branch_name(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
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

/// A JSON record in Avro's JSON encoding as a value of `schema`.
pub(crate) fn from_json(json: &Json, schema: &Schema, names: &Names<'_>) -> Result<Value, String> {
    let schema = deref(schema, names)?;
    let mismatch = || format!("{json} is not a {}", branch_name(schema));
    Ok(match (schema, json) {
        (Schema::Null, Json::Null) => Value::Null,
        (Schema::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (Schema::Int | Schema::Date | Schema::TimeMillis, Json::Number(n)) => Value::Int(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(mismatch)?,
        ),
        (
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos,
            Json::Number(n),
        ) => Value::Long(n.as_i64().ok_or_else(mismatch)?),
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
                .map(|i| from_json(i, &a.items, names))
                .collect::<Result<_, _>>()?,
        ),
        (Schema::Map(m), Json::Object(entries)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_json(v, &m.types, names)?)))
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
                    (Some(v), _) => from_json(v, &f.schema, names),
                    (None, Some(default)) => default_value(default, &f.schema, names),
                    (None, None) => Err(format!("field {} is missing", f.name)),
                }
                .map_err(|e| format!("{}: {e}", f.name))?;
                out.push((f.name.clone(), value));
            }
            Value::Record(out)
        }
        (Schema::Union(u), _) => from_json_union(json, u, names)?,
        _ => return Err(mismatch()),
    })
}

/// A field default, which is in the JSON encoding of the field's schema except
/// that a union's default is for its first branch, untagged.
fn default_value(default: &Json, schema: &Schema, names: &Names<'_>) -> Result<Value, String> {
    match deref(schema, names)? {
        Schema::Union(u) => {
            let first = u.variants().first().ok_or("empty union")?;
            Ok(Value::Union(0, Box::new(from_json(default, first, names)?)))
        }
        other => from_json(default, other, names),
    }
}

fn from_json_union(json: &Json, u: &UnionSchema, names: &Names<'_>) -> Result<Value, String> {
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
                        Box::new(from_json(inner, v, names)?),
                    ));
                }
            }
        }
    }
    for (i, v) in variants.iter().enumerate() {
        if let Ok(value) = from_json(json, v, names) {
            return Ok(Value::Union(i as u32, Box::new(value)));
        }
    }
    Err(format!("{json} fits no branch of the union"))
}

/// A decoded value of `schema` in Avro's JSON encoding.
pub(crate) fn to_json(value: &Value, schema: &Schema, names: &Names<'_>) -> Result<Json, String> {
    let schema = deref(schema, names)?;
    Ok(match (value, schema) {
        (Value::Union(i, inner), Schema::Union(u)) => {
            let branch = u
                .variants()
                .get(*i as usize)
                .ok_or("union branch out of range")?;
            let branch = deref(branch, names)?;
            if matches!(branch, Schema::Null) {
                Json::Null
            } else {
                let mut tagged = Map::new();
                tagged.insert(branch_name(branch), to_json(inner, branch, names)?);
                Json::Object(tagged)
            }
        }
        (Value::Record(fields), Schema::Record(r)) => {
            let mut out = Map::new();
            for ((name, v), f) in fields.iter().zip(&r.fields) {
                out.insert(name.clone(), to_json(v, &f.schema, names)?);
            }
            Json::Object(out)
        }
        (Value::Array(items), Schema::Array(a)) => Json::Array(
            items
                .iter()
                .map(|i| to_json(i, &a.items, names))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Map(entries), Schema::Map(m)) => {
            let mut out = Map::new();
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for k in keys {
                out.insert(k.clone(), to_json(&entries[k], &m.types, names)?);
            }
            Json::Object(out)
        }
        (Value::Bytes(b) | Value::Fixed(_, b), _) => {
            Json::String(b.iter().map(|&c| char::from(c)).collect())
        }
        (Value::Enum(_, symbol), _) => Json::String(symbol.clone()),
        (other, _) => Json::try_from(other.clone()).map_err(|e| e.to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(schema: &str, json: Json) -> Json {
        let schema = Schema::parse_str(schema).unwrap();
        let mut names = Names::new();
        collect_names(&schema, &mut names);
        let value = from_json(&json, &schema, &names).unwrap();
        to_json(&value, &schema, &names).unwrap()
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
        assert!(from_json(&json!("\u{100}"), &schema, &Names::new()).is_err());
    }
}
