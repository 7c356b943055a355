//! Content negotiation as the proxy does it (JAX-RS matching of its media types).
//!
//! Owns: the v2 media types, which embedded format a request body is in, and
//! which response type an `Accept` header gets (quality and the server's own
//! preference, `qs`, multiplied; no acceptable type is 406).
//! Refuses: what a format means for the bytes (translate.rs).

use axum::http::{header, HeaderMap};

use super::errors::RestError;
use crate::protocols::schema_registry::schema::SchemaType;

/// The proxy's own JSON type: every response but records.
pub(crate) const V2_JSON: &str = "application/vnd.kafka.v2+json";

/// How a record's key and value are embedded in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// Base64 of the bytes.
    Binary,
    /// A JSON value, stored as its text.
    Json,
    /// Avro through the schema registry.
    Avro,
    /// JSON Schema through the schema registry.
    JsonSchema,
    /// Protobuf through the schema registry.
    Protobuf,
}

impl Format {
    pub(crate) const ALL: [Format; 5] = [
        Format::Binary,
        Format::Json,
        Format::Avro,
        Format::JsonSchema,
        Format::Protobuf,
    ];

    /// Its name in a consumer's `format` and in its media type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Binary => "binary",
            Format::Json => "json",
            Format::Avro => "avro",
            Format::JsonSchema => "jsonschema",
            Format::Protobuf => "protobuf",
        }
    }

    /// The format named `name` (any case, as the proxy reads it).
    pub(crate) fn named(name: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// `application/vnd.kafka.<name>.v2+json`.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Format::Binary => "application/vnd.kafka.binary.v2+json",
            Format::Json => "application/vnd.kafka.json.v2+json",
            Format::Avro => "application/vnd.kafka.avro.v2+json",
            Format::JsonSchema => "application/vnd.kafka.jsonschema.v2+json",
            Format::Protobuf => "application/vnd.kafka.protobuf.v2+json",
        }
    }

    /// The registry's schema type of a schema format.
    pub(crate) fn schema_type(self) -> Option<SchemaType> {
        match self {
            Format::Binary | Format::Json => None,
            Format::Avro => Some(SchemaType::Avro),
            Format::JsonSchema => Some(SchemaType::Json),
            Format::Protobuf => Some(SchemaType::Protobuf),
        }
    }

    /// Whether records in it carry a schema id.
    pub(crate) fn has_schema(self) -> bool {
        self.schema_type().is_some()
    }

    /// Whether a consumer reading `self` serves a records request for `other`:
    /// the schema formats share one reader in the proxy.
    pub(crate) fn reads_as(self, other: Format) -> bool {
        let schema = |f| matches!(f, Format::Avro | Format::JsonSchema | Format::Protobuf);
        self == other || (schema(self) && schema(other))
    }
}

/// The request's media type without parameters, lower case.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// The embedded format of a produce request: only the five embedded types are
/// accepted (plain JSON is 415, as in the proxy since v6).
pub(crate) fn produce_format(headers: &HeaderMap) -> Result<Format, RestError> {
    let ct = content_type(headers).ok_or_else(RestError::unsupported_media_type)?;
    Format::ALL
        .into_iter()
        .find(|f| f.media_type() == ct)
        .ok_or_else(RestError::unsupported_media_type)
}

/// Checks a consumer request's body type: any v2 type (a missing one is taken
/// as v2 JSON, as clients that send no body leave it out).
pub(crate) fn check_v2_body(headers: &HeaderMap) -> Result<(), RestError> {
    match content_type(headers) {
        None => Ok(()),
        Some(ct) if ct == V2_JSON || Format::ALL.iter().any(|f| f.media_type() == ct) => Ok(()),
        Some(_) => Err(RestError::unsupported_media_type()),
    }
}

/// One range of an Accept header and its quality.
struct Range<'a> {
    kind: &'a str,
    q: f32,
}

fn ranges(accept: &str) -> Vec<Range<'_>> {
    accept
        .split(',')
        .filter_map(|part| {
            let mut params = part.split(';');
            let kind = params.next()?.trim();
            if kind.is_empty() {
                return None;
            }
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some(Range { kind, q })
        })
        .collect()
}

/// The quality the most specific matching range gives `offered` (`None`: no range
/// matches).
fn quality(ranges: &[Range<'_>], offered: &str) -> Option<f32> {
    let (main, _) = offered.split_once('/')?;
    let specificity = |r: &Range<'_>| {
        if r.kind.eq_ignore_ascii_case(offered) {
            Some(3)
        } else if r
            .kind
            .strip_suffix("/*")
            .is_some_and(|m| m.eq_ignore_ascii_case(main))
        {
            Some(2)
        } else if r.kind == "*/*" || r.kind == "*" {
            Some(1)
        } else {
            None
        }
    };
    ranges
        .iter()
        .filter_map(|r| specificity(r).map(|s| (s, r.q)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, q)| q)
}

/// Which of `offered` (media type, the server's preference `qs`, value) the
/// request's Accept header gets; the first offered when it sends none.
pub(crate) fn negotiate<T: Copy>(
    headers: &HeaderMap,
    offered: &[(&str, f32, T)],
) -> Result<T, RestError> {
    let Some(accept) = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return offered
            .first()
            .map(|o| o.2)
            .ok_or_else(RestError::not_acceptable);
    };
    let ranges = ranges(accept);
    let mut best: Option<(f32, T)> = None;
    for (kind, qs, value) in offered {
        let Some(q) = quality(&ranges, kind) else {
            continue;
        };
        let score = q * qs;
        if score > 0.0 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, *value));
        }
    }
    best.map(|(_, v)| v).ok_or_else(RestError::not_acceptable)
}

/// Plain JSON, which the proxy answered with before v6 (`JSON_WEIGHTED`).
pub(crate) const JSON: &str = "application/json";

/// The type a response of the proxy's own JSON goes out as: v2 JSON, or plain
/// JSON for a client that accepts only that.
pub(crate) fn accept_v2(headers: &HeaderMap) -> Result<&'static str, RestError> {
    negotiate(headers, &[(V2_JSON, 1.0, V2_JSON), (JSON, 0.5, JSON)])
}

/// The format a records request asks for (its reader, in the proxy's terms):
/// binary is the default, and `application/vnd.kafka.v2+json` reads binary.
pub(crate) fn records_format(headers: &HeaderMap) -> Result<Format, RestError> {
    negotiate(
        headers,
        &[
            (Format::Binary.media_type(), 1.0, Format::Binary),
            (V2_JSON, 0.9, Format::Binary),
            (Format::Json.media_type(), 0.1, Format::Json),
            (Format::Avro.media_type(), 0.1, Format::Avro),
            (Format::JsonSchema.media_type(), 0.1, Format::JsonSchema),
            (Format::Protobuf.media_type(), 0.1, Format::Protobuf),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn produce_takes_only_embedded_types() {
        let ct = |v| produce_format(&with(header::CONTENT_TYPE, v));
        assert_eq!(
            ct("application/vnd.kafka.binary.v2+json"),
            Ok(Format::Binary)
        );
        assert_eq!(
            ct("application/vnd.kafka.json.v2+json; charset=utf-8"),
            Ok(Format::Json)
        );
        assert_eq!(ct("application/json").unwrap_err().code, 415);
        assert_eq!(ct("application/vnd.kafka.v2+json").unwrap_err().code, 415);
        assert_eq!(produce_format(&HeaderMap::new()).unwrap_err().code, 415);
    }

    #[test]
    fn records_readers_follow_accept_and_server_preference() {
        let acc = |v| records_format(&with(header::ACCEPT, v));
        assert_eq!(records_format(&HeaderMap::new()), Ok(Format::Binary));
        assert_eq!(acc("application/vnd.kafka.json.v2+json"), Ok(Format::Json));
        assert_eq!(acc("application/vnd.kafka.v2+json"), Ok(Format::Binary));
        assert_eq!(acc("*/*"), Ok(Format::Binary));
        assert_eq!(
            acc("application/vnd.kafka.avro.v2+json, application/vnd.kafka.v2+json;q=0.05"),
            Ok(Format::Avro)
        );
        assert_eq!(acc("application/json").unwrap_err().code, 406);
        assert_eq!(acc("text/html").unwrap_err().code, 406);
    }

    #[test]
    fn v2_responses_accept_wildcards_but_not_others() {
        assert!(accept_v2(&with(header::ACCEPT, "application/*")).is_ok());
        assert!(accept_v2(&with(header::ACCEPT, "application/vnd.kafka.v2+json;q=0")).is_err());
        assert_eq!(
            accept_v2(&with(header::ACCEPT, "application/json")),
            Ok(JSON)
        );
        assert!(accept_v2(&with(header::ACCEPT, "text/plain")).is_err());
    }
}
