//! Records <-> router messages.
//!
//! Owns: the produce request body (records with key, value and partition, the
//! schema fields), turning an embedded key or value into bytes (binary: base64;
//! json: the JSON text), a record into a `Message` on the topic's subject, and a
//! stored message into a consumer's record in its format.
//! Refuses: which partition and offset (the router's partitioned streams) and HTTP.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::RestError;
use super::media::Format;
use crate::protocols::schema_registry::schema::Parsed;
use crate::protocols::schema_registry::Registry;
use crate::router::streams::log::StreamMessage;
use crate::router::streams::partition::{partition_extension, PARTITION_EXTENSION};
use crate::router::{Delivery, Message, Now, Subject};

/// A produce request's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProduceRequest {
    pub(crate) records: Option<Vec<RecordIn>>,
    pub(crate) key_schema: Option<String>,
    pub(crate) key_schema_id: Option<u32>,
    pub(crate) value_schema: Option<String>,
    pub(crate) value_schema_id: Option<u32>,
}

/// One record to produce.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordIn {
    #[serde(default)]
    pub(crate) key: Value,
    #[serde(default)]
    pub(crate) value: Value,
    pub(crate) partition: Option<i64>,
}

/// Parses a JSON body: not JSON, or JSON of another shape, is a 400 as Jackson's.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RestError> {
    serde_json::from_slice(body).map_err(RestError::bad_request)
}

/// A schema a record is produced with: its id and the parsed schema.
pub(crate) type WithSchema = (u32, Parsed);

/// Confluent's wire format: magic byte 0, the schema id (4 bytes, big-endian),
/// then the schema type's payload.
const MAGIC: u8 = 0;

/// An embedded key or value as bytes (`None`: Kafka's null); the schema formats
/// need the schema the request named.
pub(crate) fn embedded_bytes(
    format: Format,
    data: &Value,
    schema: Option<&WithSchema>,
) -> Result<Option<Bytes>, RestError> {
    if data.is_null() {
        return Ok(None);
    }
    match format {
        Format::Binary => {
            let Value::String(text) = data else {
                return Err(RestError::bad_request(format!(
                    "Bad Request: data={data} is not a base64 string."
                )));
            };
            BASE64
                .decode(text)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|_| {
                    RestError::bad_request(format!(
                        "Bad Request: data={data} is not a valid base64 string."
                    ))
                })
        }
        Format::Json => Ok(Some(Bytes::from(data.to_string()))),
        Format::Avro | Format::JsonSchema | Format::Protobuf => {
            let Some((id, parsed)) = schema else {
                return Err(RestError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    42206,
                    "Payload error. A record needs a schema in this format",
                ));
            };
            let payload = parsed.encode(data).map_err(|e| {
                RestError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    42203,
                    format!("Conversion of JSON to Object failed: {e}"),
                )
            })?;
            let mut out = Vec::with_capacity(5 + payload.len());
            out.push(MAGIC);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&payload);
            Ok(Some(Bytes::from(out)))
        }
    }
}

/// A value in Confluent's wire format, decoded with the schema its id names.
fn decode_with_schema(registry: &Registry, bytes: &[u8]) -> Result<Value, String> {
    let (&magic, rest) = bytes.split_first().ok_or("no bytes")?;
    if magic != MAGIC || rest.len() < 4 {
        return Err("Unknown magic byte!".into());
    }
    let (id, payload) = rest.split_at(4);
    let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    let schema = registry.schema(id).map_err(|e| e.message)?;
    schema.parsed.decode(payload)
}

/// The message a record becomes on `subject`: durable (a produce is answered
/// after the fsync), stamped now, in `partition` if the producer named one.
pub(crate) fn record_message(
    subject: &Subject,
    format: Format,
    key: Option<Bytes>,
    value: Option<Bytes>,
    partition: Option<u32>,
    now: Now,
) -> Message {
    let mut msg = Message {
        subject: subject.clone(),
        payload: value.unwrap_or_default(),
        key,
        timestamp: Some(now.unix_ms),
        qos: Delivery::AtLeastOnce,
        content_type: (format == Format::Json).then(|| "application/json".to_owned()),
        ..Message::default()
    };
    if let Some(p) = partition {
        msg.extensions
            .set(PARTITION_EXTENSION, partition_extension(p));
    }
    msg
}

/// A stored message as a record of `topic` partition `partition` for a consumer
/// reading `format`. JSON that does not parse is the proxy's 40801.
pub(crate) fn record_json(
    topic: &str,
    partition: u32,
    m: &StreamMessage,
    format: Format,
    registry: &Registry,
) -> Result<Value, RestError> {
    let msg = &m.message;
    let render = |bytes: Option<&Bytes>| -> Result<Value, RestError> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        let offset = m.seq - 1;
        match format {
            Format::Binary => Ok(Value::String(BASE64.encode(bytes))),
            _ if bytes.is_empty() => Ok(Value::Null),
            Format::Json => serde_json::from_slice(bytes).map_err(|e| {
                RestError::not_json(format!(
                    "Error deserializing key/value for offset {offset}: {e}"
                ))
            }),
            Format::Avro | Format::JsonSchema | Format::Protobuf => {
                decode_with_schema(registry, bytes).map_err(|e| {
                    RestError::not_json(format!(
                        "Error deserializing key/value for offset {offset}: {e}"
                    ))
                })
            }
        }
    };
    Ok(json!({
        "topic": topic,
        "key": render(msg.key.as_ref())?,
        "value": render(Some(&msg.payload))?,
        "partition": partition,
        "offset": m.seq - 1,
        "timestamp": m.time_ns / 1_000_000,
    }))
}

/// The bytes a record counts for against `max_bytes` (key and value, as the proxy counts).
pub(crate) fn record_size(m: &StreamMessage) -> u64 {
    (m.message.payload.len() + m.message.key.as_ref().map_or(0, Bytes::len)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_base64_and_json_is_its_text() {
        assert_eq!(
            embedded_bytes(Format::Binary, &json!("aGk="), None).unwrap(),
            Some(Bytes::from_static(b"hi"))
        );
        assert_eq!(
            embedded_bytes(Format::Binary, &Value::Null, None).unwrap(),
            None
        );
        assert_eq!(
            embedded_bytes(Format::Binary, &json!("*"), None)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            embedded_bytes(Format::Binary, &json!(5), None)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            embedded_bytes(Format::Json, &json!({"a": [1, 2]}), None).unwrap(),
            Some(Bytes::from_static(br#"{"a":[1,2]}"#))
        );
    }

    #[test]
    fn records_render_in_the_consumer_format() {
        let router = crate::router::Router::new(
            crate::router::OutboxLimits {
                max_messages: 10,
                max_bytes: 1 << 20,
            },
            crate::router::RetainedLimits {
                max_messages: 10,
                max_bytes: 1 << 20,
            },
            crate::router::DEFAULT_VHOST_LIMITS,
        );
        let registry = Registry::open(&router);
        let m = StreamMessage {
            seq: 5,
            time_ns: 7_000_000,
            message: std::sync::Arc::new(Message {
                payload: Bytes::from_static(br#"{"t":21.5}"#),
                key: Some(Bytes::from_static(b"\"k\"")),
                ..Message::default()
            }),
        };
        let binary = record_json("t", 1, &m, Format::Binary, &registry).unwrap();
        assert_eq!(binary["value"], json!("eyJ0IjoyMS41fQ=="));
        assert_eq!(
            (binary["offset"].clone(), binary["partition"].clone()),
            (json!(4), json!(1))
        );
        let as_json = record_json("t", 1, &m, Format::Json, &registry).unwrap();
        assert_eq!(
            (as_json["key"].clone(), as_json["value"].clone()),
            (json!("k"), json!({"t": 21.5}))
        );
        assert_eq!(as_json["timestamp"], json!(7));
        let text = StreamMessage {
            message: std::sync::Arc::new(Message {
                payload: Bytes::from_static(b"not json"),
                ..Message::default()
            }),
            ..m
        };
        assert_eq!(
            record_json("t", 1, &text, Format::Json, &registry)
                .unwrap_err()
                .code,
            40801
        );
    }
}
