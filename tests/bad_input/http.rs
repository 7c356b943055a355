//! HTTP cases on the Kafka REST listener: malformed HTTP is 400 (or 431) and the
//! connection closes; a well-formed request with a bad body gets the Confluent REST
//! Proxy's status and `error_code` and the connection is kept alive.

use crate::runner::{Case, Proto};

const V2: &str = "application/vnd.kafka.v2+json";
const JSON: &str = "application/vnd.kafka.json.v2+json";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";

fn request(method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: x\r\n");
    if let Some(ct) = content_type {
        r.push_str(&format!("content-type: {ct}\r\n"));
    }
    r.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut r = r.into_bytes();
    r.extend(body);
    r
}

fn case(name: impl std::fmt::Display, bytes: impl Into<Vec<u8>>) -> Case {
    Case::new(format!("http/{name}"), Proto::Http, bytes)
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // Not HTTP at all, or broken HTTP: 400 and closed.
    for (i, bytes) in [
        &b"HELLO\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /topics\r\n\r\n",
        b"GET /topics HTTP/9.9\r\nhost: x\r\n\r\n",
        b"GET /topics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /topics HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n",
        b"GET /topics HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
        b"GET /topics HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
        b"GET /top ics HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /topics HTTP/1.1\r\nho\x00st: x\r\n\r\n",
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
        b"AMQP\x00\x00\x09\x01",
        b"CONNECT\naccept-version:1.2\n\n\0",
        b"\r\n\r\n\r\n\r\nXYZ\r\n\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        out.push(case(format!("malformed_{i}"), bytes).closed(&["400"]));
    }
    out.push(case("tls_client_hello", crate::tls_client_hello()).closed(&["400"]));
    out.push(
        case(
            "transfer_encoding_unknown",
            "POST /topics/t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n",
        )
        .closed(&["400"]),
    );
    // Refused on its headers (no content type): the bad chunked body is never read.
    out.push(
        case(
            "chunked_body_garbage",
            "POST /topics/t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        )
        .closed(&["415 415"]),
    );
    // Headers past the HTTP listener's 64 KiB buffer (and past twice it: hyper checks
    // the buffer between reads, so one large read can overshoot it).
    out.push(
        case(
            "header_too_large",
            format!(
                "GET /topics HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "a".repeat(500_000)
            ),
        )
        .closed(&["431"]),
    );
    // A request that never completes, and a socket that says nothing, wait out the
    // header timeout (the connect timeout); a client that leaves mid-request is closed.
    out.push(case("silent_socket", Vec::new()).closed(&[]));
    out.push(case("request_never_completes", "GET /topics HTTP/1.1\r\nhost").closed(&[]));
    let whole = request(
        "POST",
        "/topics/cut",
        Some(JSON),
        br#"{"records":[{"value":1}]}"#,
    );
    let head_len = whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    for cut in 1..head_len {
        out.push(
            case(format!("request_cut_at_{cut}"), whole[..cut].to_vec())
                .eof()
                .closed(&[]),
        );
    }

    // Well-formed requests the API refuses, with Confluent's codes; the connection lives.
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown_path",
            request("GET", "/no/such/path", None, b""),
            "404 404",
        ),
        (
            "unknown_topic",
            request("GET", "/topics/no-such-topic", None, b""),
            "404 40401",
        ),
        (
            "unknown_partition",
            request("GET", "/topics/bystander-http/partitions/99", None, b""),
            "404 40402",
        ),
        (
            "unknown_instance_records",
            request("GET", "/consumers/g/instances/none/records", None, b""),
            "404 40403",
        ),
        (
            "unknown_instance_delete",
            request("DELETE", "/consumers/g/instances/none", Some(V2), b""),
            "404 40403",
        ),
        (
            "unknown_instance_subscribe",
            request(
                "POST",
                "/consumers/g/instances/none/subscription",
                Some(V2),
                br#"{"topics":["t"]}"#,
            ),
            "404 40403",
        ),
        ("wrong_method", request("PUT", "/topics", None, b""), "405"),
        (
            "produce_wrong_content_type",
            request("POST", "/topics/t", Some("text/plain"), b"{}"),
            "415 415",
        ),
        (
            "produce_no_content_type",
            request("POST", "/topics/t", None, b"{}"),
            "415 415",
        ),
        (
            "accept_unsupported",
            b"GET /topics HTTP/1.1\r\nhost: x\r\naccept: image/png\r\n\r\n".to_vec(),
            "406 406",
        ),
        (
            "create_consumer_bad_format",
            request(
                "POST",
                "/consumers/g",
                Some(V2),
                br#"{"name":"c","format":"yaml"}"#,
            ),
            "422 422",
        ),
        (
            "create_consumer_not_json",
            request("POST", "/consumers/g", Some(V2), b"{"),
            "400 400",
        ),
    ];
    for (what, bytes, said) in rows {
        out.push(case(what, bytes).open(&[said]));
    }
    // A body over the limit is refused unread, so the connection cannot go on.
    out.push(
        case(
            "produce_body_over_limit",
            request("POST", "/topics/t", Some(JSON), &vec![b' '; 70_000]),
        )
        .closed(&["413 413"]),
    );
    // Produce bodies that are not what the API takes.
    for (i, (ct, body, said)) in [
        (JSON, &b""[..], "400 400"),
        (JSON, b"{", "400 400"),
        // JSON of the wrong shape is a 400, as Jackson's mapping errors are.
        (JSON, b"[]", "400 400"),
        (JSON, b"null", "400 400"),
        (JSON, b"{}", "422 422"),
        (JSON, br#"{"records":5}"#, "400 400"),
        (JSON, br#"{"records":[5]}"#, "400 400"),
        // As Kafka's producer: the record fails in its offsets entry (50003), not the request.
        (JSON, br#"{"records":[{"value":1,"partition":-1}]}"#, "200"),
        (
            JSON,
            br#"{"records":[{"value":1,"partition":"a"}]}"#,
            "400 400",
        ),
        (JSON, b"\xFF\xFE{}", "400 400"),
        (
            JSON,
            br#"{"records":[{"value":1}],"records":[]}"#,
            "400 400",
        ),
        (
            BINARY,
            br#"{"records":[{"value":"not base64!"}]}"#,
            "400 400",
        ),
        (BINARY, br#"{"records":[{"value":5}]}"#, "400 400"),
        (
            BINARY,
            br#"{"records":[{"key":"@@@","value":"eA=="}]}"#,
            "400 400",
        ),
        (
            "application/vnd.kafka.avro.v2+json",
            br#"{"records":[{"value":1}]}"#,
            "422 42202",
        ),
        (
            "application/vnd.kafka.avro.v2+json",
            br#"{"value_schema":"{","records":[{"value":1}]}"#,
            "422 42205",
        ),
        (
            "application/vnd.kafka.protobuf.v2+json",
            br#"{"records":[{"value":1}]}"#,
            "422 42202",
        ),
        (
            "application/vnd.kafka.jsonschema.v2+json",
            br#"{"value_schema":"not json","records":[{"value":1}]}"#,
            "422 42205",
        ),
        (
            "application/vnd.kafka.nosuch.v2+json",
            br#"{"records":[{"value":1}]}"#,
            "415 415",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(
            case(
                format!("produce_body_{i}"),
                request("POST", "/topics/bi-t", Some(ct), body),
            )
            .open(&[said]),
        );
    }
    out
}
