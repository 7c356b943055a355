//! Kafka REST and Schema Registry request bodies through the real HTTP listener: byte 0
//! picks an endpoint and content type, the rest is the body. Invariants: the broker
//! never panics and answers every request with a status line (a request that gets none
//! is a hang); 5xx is never the answer to a body.
#![no_main]

use std::io::BufReader;
use std::net::TcpStream;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

#[path = "support/broker.rs"]
mod support;

const V2: &str = "application/vnd.kafka.v2+json";
const SR: &str = "application/vnd.schemaregistry.v1+json";

const ENDPOINTS: &[(&str, &str)] = &[
    ("/topics/fz", "application/vnd.kafka.json.v2+json"),
    ("/topics/fz", "application/vnd.kafka.binary.v2+json"),
    ("/topics/fz", "application/vnd.kafka.avro.v2+json"),
    ("/topics/fz", "application/vnd.kafka.jsonschema.v2+json"),
    ("/topics/fz", "application/vnd.kafka.protobuf.v2+json"),
    (
        "/topics/fz/partitions/0",
        "application/vnd.kafka.json.v2+json",
    ),
    ("/consumers/g1", V2),
    ("/consumers/g1/instances/i1/subscription", V2),
    ("/consumers/g1/instances/i1/assignments", V2),
    ("/consumers/g1/instances/i1/positions", V2),
    ("/consumers/g1/instances/i1/positions/beginning", V2),
    ("/consumers/g1/instances/i1/offsets", V2),
    ("/subjects/fz-value/versions", SR),
    ("/subjects/fz-value", SR),
    ("/compatibility/subjects/fz-value/versions/latest", SR),
    ("/config/fz-value", SR),
];

static CONN: Mutex<Option<BufReader<TcpStream>>> = Mutex::new(None);

/// Reads one response; its status, or `None` if the broker closed the connection.
fn response(c: &mut BufReader<TcpStream>) -> Option<u16> {
    let status_line = support::line(c)?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut len = 0;
    loop {
        let h = support::line(c)?;
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().ok()?;
            }
        }
    }
    support::skip(c, len).then_some(status)
}

fuzz_target!(|data: &[u8]| {
    let [pick, body @ ..] = data else { return };
    let body = &body[..body.len().min(32 * 1024)];
    let (path, content_type) = ENDPOINTS[usize::from(*pick) % ENDPOINTS.len()];
    // PUT for the schema registry's config, POST for everything else.
    let method = if path.starts_with("/config/") {
        "PUT"
    } else {
        "POST"
    };
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: fuzz\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend(body);
    let mut guard = CONN.lock().unwrap_or_else(|e| e.into_inner());
    let conn = guard.get_or_insert_with(|| support::connect(support::broker().kafka_rest()));
    let status = if support::send(conn, &req) {
        response(conn)
    } else {
        None
    };
    match status {
        Some(s) => assert!(s < 500, "{method} {path} with {body:?} answered {s}"),
        None => *guard = None,
    }
});
