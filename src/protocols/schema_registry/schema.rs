//! The three schema types: parsing, the form that makes two texts the same
//! schema, compatibility between versions, and record bytes in and out.
//!
//! Owns: Avro (apache-avro: parsing with referenced named types, canonical form,
//! reader/writer resolution), JSON Schema (jsonschema: compiling and validating;
//! compatibility by the structural rules below), Protobuf (protox compiles the
//! `.proto` text, or takes a base64 FileDescriptorProto as Confluent's
//! serializers send it; prost-reflect encodes and decodes), and each type's
//! Confluent payload after the 5-byte header (Protobuf: message indexes first).
//! Refuses: ids, subjects and versions (state.rs) and HTTP (api.rs).

use std::collections::BTreeMap;
use std::sync::Arc;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::writer::datum::GenericDatumWriter;
use base64::Engine;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;

use super::avro_json;

/// A schema's type, as the registry names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    pub(crate) fn named(name: &str) -> Option<SchemaType> {
        match name.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

/// A parsed schema, ready to check, encode and decode.
#[derive(Clone)]
pub(crate) enum Parsed {
    Avro {
        schema: Arc<apache_avro::Schema>,
        /// The named types of its references.
        named: Arc<Vec<apache_avro::Schema>>,
    },
    Json {
        schema: Arc<Value>,
        validator: Arc<jsonschema::Validator>,
    },
    Protobuf {
        /// The first message of the file: what Confluent's serializers write
        /// with message indexes `[0]`.
        message: MessageDescriptor,
        pool: DescriptorPool,
    },
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Parsed::Avro { schema, .. } => write!(f, "Avro({})", schema.canonical_form()),
            Parsed::Json { schema, .. } => write!(f, "Json({schema})"),
            Parsed::Protobuf { message, .. } => write!(f, "Protobuf({})", message.full_name()),
        }
    }
}

/// The name a Protobuf schema is compiled under (imports name references).
const PROTO_FILE: &str = "schema.proto";

/// Parses `text` as a schema of `kind`; `references` are the (name, text) of the
/// schemas it refers to.
pub(crate) fn parse(
    kind: SchemaType,
    text: &str,
    references: &[(String, String)],
) -> Result<Parsed, String> {
    match kind {
        SchemaType::Avro => {
            let (schema, named) = if references.is_empty() {
                (
                    apache_avro::Schema::parse_str(text).map_err(|e| e.to_string())?,
                    Vec::new(),
                )
            } else {
                apache_avro::Schema::parse_str_with_list(
                    text,
                    references.iter().map(|(_, t)| t.as_str()),
                )
                .map_err(|e| e.to_string())?
            };
            Ok(Parsed::Avro {
                schema: Arc::new(schema),
                named: Arc::new(named),
            })
        }
        SchemaType::Json => {
            let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if !(schema.is_object() || schema.is_boolean()) {
                return Err("a JSON schema is an object or a boolean".into());
            }
            let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
            Ok(Parsed::Json {
                schema: Arc::new(schema),
                validator: Arc::new(validator),
            })
        }
        SchemaType::Protobuf => parse_proto(text, references),
    }
}

/// Files the Protobuf compiler may open: the schema, its references, and
/// Google's well-known types.
struct Sources(BTreeMap<String, String>);

impl protox::file::FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(text) => protox::file::File::from_source(name, text),
            None => protox::file::GoogleFileResolver::new().open_file(name),
        }
    }
}

fn parse_proto(text: &str, references: &[(String, String)]) -> Result<Parsed, String> {
    let mut files: BTreeMap<String, String> = references.iter().cloned().collect();
    // Confluent's serializers send the FileDescriptorProto in base64.
    let binary = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).ok())
        .filter(|fd| !fd.message_type.is_empty());
    let pool = match binary {
        Some(fd) => {
            let mut compiler = protox::Compiler::with_file_resolver(Sources(files));
            for dep in &fd.dependency {
                compiler.open_file(dep).map_err(|e| e.to_string())?;
            }
            let mut pool = compiler.descriptor_pool();
            pool.add_file_descriptor_proto(fd)
                .map_err(|e| e.to_string())?;
            pool
        }
        None => {
            files.insert(PROTO_FILE.to_owned(), text.to_owned());
            let mut compiler = protox::Compiler::with_file_resolver(Sources(files));
            compiler.open_file(PROTO_FILE).map_err(|e| e.to_string())?;
            compiler.descriptor_pool()
        }
    };
    let main = pool.files().last().ok_or_else(|| "no file".to_owned())?;
    let message = main
        .messages()
        .next()
        .ok_or_else(|| "the schema declares no message".to_owned())?;
    Ok(Parsed::Protobuf { message, pool })
}

impl Parsed {
    /// The form in which two registrations are the same schema.
    pub(crate) fn canonical(&self, text: &str) -> String {
        match self {
            // Not Avro's Parsing Canonical Form: it drops defaults and docs, and a
            // schema that differs in a default is another schema (as Confluent's
            // registry, which compares the compact full form).
            Parsed::Avro { schema, .. } => {
                serde_json::to_string(schema.as_ref()).unwrap_or_else(|_| schema.canonical_form())
            }
            Parsed::Json { schema, .. } => schema.to_string(),
            Parsed::Protobuf { .. } => text.trim().to_owned(),
        }
    }

    /// A Protobuf schema as Confluent's `format=serialized` shows it: the base64
    /// of its FileDescriptorProto (what the Python client's deserializer reads).
    pub(crate) fn serialized(&self) -> Option<String> {
        let Parsed::Protobuf { message, .. } = self else {
            return None;
        };
        let proto = message
            .parent_file()
            .file_descriptor_proto()
            .encode_to_vec();
        Some(base64::engine::general_purpose::STANDARD.encode(proto))
    }

    /// A record's JSON as the payload after the 5-byte header.
    pub(crate) fn encode(&self, json: &Value) -> Result<Vec<u8>, String> {
        match self {
            Parsed::Avro { schema, named } => {
                let names = avro_names(schema, named);
                let value =
                    avro_json::from_json(json, schema, &names, &mut avro_json::STEPS.clone())?;
                let all: Vec<&apache_avro::Schema> =
                    named.iter().chain([schema.as_ref()]).collect();
                let value = value
                    .resolve_schemata(schema, all.clone())
                    .map_err(|e| e.to_string())?;
                GenericDatumWriter::builder(schema)
                    .schemata(all)
                    .map_err(|e| e.to_string())?
                    .build()
                    .map_err(|e| e.to_string())?
                    .write_value_to_vec(value)
                    .map_err(|e| e.to_string())
            }
            Parsed::Json { validator, .. } => {
                if let Err(e) = validator.validate(json) {
                    return Err(e.to_string());
                }
                Ok(json.to_string().into_bytes())
            }
            Parsed::Protobuf { message, .. } => {
                let msg = DynamicMessage::deserialize(message.clone(), json)
                    .map_err(|e| e.to_string())?;
                // Message indexes [0] are written as a single 0.
                let mut out = vec![0];
                msg.encode(&mut out).map_err(|e| e.to_string())?;
                Ok(out)
            }
        }
    }

    /// The payload after the 5-byte header, as JSON.
    pub(crate) fn decode(&self, mut bytes: &[u8]) -> Result<Value, String> {
        match self {
            // Our own decoder: bounded in depth and in items, unlike apache-avro's.
            Parsed::Avro { schema, named } => {
                avro_json::decode(bytes, schema, &avro_names(schema, named))
            }
            Parsed::Json { .. } => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Parsed::Protobuf { message, .. } => {
                let target = message_at(message, &mut bytes)?;
                let msg = DynamicMessage::decode(target, bytes).map_err(|e| e.to_string())?;
                serde_json::to_value(&msg).map_err(|e| e.to_string())
            }
        }
    }
}

/// The named types of an Avro schema and of its references.
fn avro_names<'a>(
    schema: &'a apache_avro::Schema,
    named: &'a [apache_avro::Schema],
) -> avro_json::Names<'a> {
    let mut names = avro_json::Names::new();
    for n in named {
        avro_json::collect_names(n, &mut names);
    }
    avro_json::collect_names(schema, &mut names);
    names
}

/// Reads Confluent's message indexes (zigzag varints: a count, then the index
/// at each nesting level; a single 0 means `[0]`) and finds that message.
fn message_at(first: &MessageDescriptor, bytes: &mut &[u8]) -> Result<MessageDescriptor, String> {
    let count = zigzag(bytes)?;
    if count == 0 {
        return Ok(first.clone());
    }
    let file = first.parent_file();
    let mut current: Option<MessageDescriptor> = None;
    for _ in 0..count.min(64) {
        let i = usize::try_from(zigzag(bytes)?).map_err(|_| "negative message index")?;
        let next = match &current {
            None => file.messages().nth(i),
            Some(m) => m.child_messages().nth(i),
        };
        current = Some(next.ok_or_else(|| format!("no message at index {i}"))?);
    }
    current.ok_or_else(|| "no message".to_owned())
}

fn zigzag(bytes: &mut &[u8]) -> Result<i64, String> {
    let raw = prost::encoding::decode_varint(bytes).map_err(|e| e.to_string())?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// How a new version must relate to the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub(crate) const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub(crate) fn named(name: &str) -> Option<Compatibility> {
        Compatibility::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// Whether it checks against every earlier version, not only the latest.
    pub(crate) fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// The same directions against the latest version only.
    pub(crate) fn latest_only(self) -> Compatibility {
        match self {
            Compatibility::BackwardTransitive => Compatibility::Backward,
            Compatibility::ForwardTransitive => Compatibility::Forward,
            Compatibility::FullTransitive => Compatibility::Full,
            other => other,
        }
    }

    fn backward(self) -> bool {
        !matches!(
            self,
            Compatibility::None | Compatibility::Forward | Compatibility::ForwardTransitive
        )
    }

    fn forward(self) -> bool {
        !matches!(
            self,
            Compatibility::None | Compatibility::Backward | Compatibility::BackwardTransitive
        )
    }
}

/// Checks `new` against `olds` (already narrowed to the latest unless
/// transitive); the reasons it is not compatible, if any.
pub(crate) fn check(level: Compatibility, new: &Parsed, olds: &[&Parsed]) -> Vec<String> {
    let mut problems = Vec::new();
    for old in olds {
        if level.backward() {
            // The new schema reads what the old one wrote.
            problems.extend(can_read(old, new).err().map(|e| format!("backward: {e}")));
        }
        if level.forward() {
            problems.extend(can_read(new, old).err().map(|e| format!("forward: {e}")));
        }
    }
    problems
}

/// Whether data written with `writer` can be read with `reader`.
fn can_read(writer: &Parsed, reader: &Parsed) -> Result<(), String> {
    match (writer, reader) {
        (Parsed::Avro { schema: w, .. }, Parsed::Avro { schema: r, .. }) => {
            SchemaCompatibility::can_read(w, r)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        (Parsed::Json { schema: w, .. }, Parsed::Json { schema: r, .. }) => {
            json_can_read(w, r, "#")
        }
        (Parsed::Protobuf { pool: w, .. }, Parsed::Protobuf { pool: r, .. }) => {
            proto_can_read(w, r)
        }
        _ => Err("the schema type changed".into()),
    }
}

/// JSON Schema, structurally: the reader must accept every document the writer
/// accepted, as far as types, required properties and closed objects tell.
fn json_can_read(writer: &Value, reader: &Value, at: &str) -> Result<(), String> {
    let (Some(w), Some(r)) = (writer.as_object(), reader.as_object()) else {
        return if reader == &Value::Bool(true) || writer == reader {
            Ok(())
        } else {
            Err(format!(
                "{at}: the schema changed from {writer} to {reader}"
            ))
        };
    };
    let types = |o: &serde_json::Map<String, Value>| -> Option<Vec<String>> {
        match o.get("type")? {
            Value::String(t) => Some(vec![t.clone()]),
            Value::Array(ts) => Some(
                ts.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        }
    };
    if let (Some(wt), Some(rt)) = (types(w), types(r)) {
        let widened =
            |t: &String| rt.contains(t) || (t == "integer" && rt.iter().any(|r| r == "number"));
        if let Some(t) = wt.iter().find(|t| !widened(t)) {
            return Err(format!("{at}: type {t} is no longer allowed"));
        }
    } else if types(r).is_some() && types(w).is_none() {
        return Err(format!("{at}: a type restriction was added"));
    }
    let names = |o: &serde_json::Map<String, Value>, key: &str| -> Vec<String> {
        o.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let w_required = names(w, "required");
    if let Some(p) = names(r, "required")
        .into_iter()
        .find(|p| !w_required.contains(p))
    {
        return Err(format!("{at}: property {p} became required"));
    }
    let empty = serde_json::Map::new();
    let props = |o: &serde_json::Map<String, Value>| {
        o.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (wp, rp) = (props(w), props(r));
    let closed = r.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, ws) in &wp {
        match rp.get(name) {
            Some(rs) => json_can_read(ws, rs, &format!("{at}/properties/{name}"))?,
            None if closed => {
                return Err(format!(
                    "{at}: property {name} was removed from a closed object"
                ))
            }
            None => {}
        }
    }
    if w.get("additionalProperties") != Some(&Value::Bool(false)) && closed {
        return Err(format!("{at}: the object was closed to other properties"));
    }
    if let (Some(wi), Some(ri)) = (w.get("items"), r.get("items")) {
        json_can_read(wi, ri, &format!("{at}/items"))?;
    }
    Ok(())
}

/// Protobuf: every message the writer has keeps its fields' numbers with the
/// same kind and cardinality in the reader (fields may be added or removed).
fn proto_can_read(writer: &DescriptorPool, reader: &DescriptorPool) -> Result<(), String> {
    for wm in writer.all_messages() {
        if wm.parent_file().name().starts_with("google/protobuf/") {
            continue;
        }
        let Some(rm) = reader.get_message_by_name(wm.full_name()) else {
            return Err(format!("message {} was removed", wm.full_name()));
        };
        for wf in wm.fields() {
            let Some(rf) = rm.get_field(wf.number()) else {
                continue;
            };
            let same_kind = match (wf.kind(), rf.kind()) {
                (prost_reflect::Kind::Message(a), prost_reflect::Kind::Message(b)) => {
                    a.full_name() == b.full_name()
                }
                (prost_reflect::Kind::Enum(a), prost_reflect::Kind::Enum(b)) => {
                    a.full_name() == b.full_name()
                }
                (a, b) => a == b,
            };
            if !same_kind || wf.is_list() != rf.is_list() || wf.is_map() != rf.is_map() {
                return Err(format!(
                    "field {} of {} changed its type",
                    wf.number(),
                    wm.full_name()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USER_V1: &str =
        r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}"#;
    const USER_V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}"#;
    const USER_BAD: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#;

    fn avro(text: &str) -> Parsed {
        parse(SchemaType::Avro, text, &[]).unwrap()
    }

    #[test]
    fn avro_round_trips_and_evolves_by_the_rules() {
        let v1 = avro(USER_V1);
        let bytes = v1.encode(&json!({"name": "ann"})).unwrap();
        assert_eq!(bytes, [6, b'a', b'n', b'n']);
        assert_eq!(v1.decode(&bytes).unwrap(), json!({"name": "ann"}));
        assert!(v1.encode(&json!({"nom": 1})).is_err());
        let (v2, bad) = (avro(USER_V2), avro(USER_BAD));
        assert_ne!(
            v2.canonical(USER_V2),
            bad.canonical(USER_BAD),
            "a default makes another schema"
        );
        let spaced = USER_V1.replace(',', " , ");
        assert_eq!(avro(&spaced).canonical(&spaced), v1.canonical(USER_V1));
        assert!(check(Compatibility::Backward, &v2, &[&v1]).is_empty());
        assert!(
            !check(Compatibility::Backward, &bad, &[&v1]).is_empty(),
            "a new field without default"
        );
        assert!(check(Compatibility::Forward, &bad, &[&v1]).is_empty());
        assert!(!check(Compatibility::Full, &bad, &[&v1]).is_empty());
        assert!(check(Compatibility::None, &bad, &[&v1]).is_empty());
        assert!(parse(SchemaType::Avro, "{\"type\": \"nope\"}", &[]).is_err());
    }

    #[test]
    fn json_schemas_validate_and_evolve_structurally() {
        let s = |v: Value| parse(SchemaType::Json, &v.to_string(), &[]).unwrap();
        let v1 = s(json!({"type": "object", "properties": {"n": {"type": "integer"}}}));
        assert!(v1.encode(&json!({"n": 1})).is_ok());
        assert!(v1.encode(&json!({"n": "x"})).is_err());
        let widened = s(json!({"type": "object", "properties": {"n": {"type": "number"}}}));
        assert!(check(Compatibility::Backward, &widened, &[&v1]).is_empty());
        let required = s(
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["m"]}),
        );
        assert!(!check(Compatibility::Backward, &required, &[&v1]).is_empty());
        assert!(parse(SchemaType::Json, "[1]", &[]).is_err());
    }

    #[test]
    fn protobuf_text_compiles_encodes_with_indexes_and_evolves() {
        let v1 = parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; message Reading { string id = 1; double value = 2; }",
            &[],
        )
        .unwrap();
        let bytes = v1.encode(&json!({"id": "s1", "value": 21.5})).unwrap();
        assert_eq!(bytes[0], 0, "message indexes [0]");
        assert_eq!(
            v1.decode(&bytes).unwrap(),
            json!({"id": "s1", "value": 21.5})
        );
        let added = parse(SchemaType::Protobuf, "syntax = \"proto3\"; message Reading { string id = 1; double value = 2; int64 at = 3; }", &[]).unwrap();
        assert!(check(Compatibility::Backward, &added, &[&v1]).is_empty());
        let changed = parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; message Reading { int32 id = 1; }",
            &[],
        )
        .unwrap();
        assert!(!check(Compatibility::Backward, &changed, &[&v1]).is_empty());
        assert!(parse(SchemaType::Protobuf, "message {", &[]).is_err());
    }
}
