//! NATS client protocol cases, answered as nats-server answers: `-ERR '<text>'`, closing
//! for protocol errors and staying open for a bad subject or an unknown sid.

use crate::runner::{Case, Proto};

const UNKNOWN: &str = "-ERR 'Unknown Protocol Operation'";
/// nats-server's own words for it (lower case on the wire).
const CONTROL_LINE: &str = "-ERR 'maximum control line exceeded'";

fn case(name: impl std::fmt::Display, bytes: impl Into<Vec<u8>>) -> Case {
    Case::new(format!("nats/{name}"), Proto::Nats, bytes).in_session()
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // Words that are not operations (or are, misspelt, or are the server's own).
    for (i, op) in [
        "FOO",
        "PUBX a 1",
        "SUBSCRIBE a 1",
        "GET a",
        "HELLO",
        "P",
        "PU",
        "SU",
        "UN",
        "UNSUBX 1",
        "PIN",
        "PONGX",
        "MSG a 1 1",
        "HMSG a 1 2 2",
        "INFO {}",
        "+OK",
        "-ERR 'x'",
        "CONNEC {}",
        "\x01\x02",
        "\u{e9}",
        "PUB\x00a 1",
        "GET / HTTP/1.1",
        "\tPUB a 1",
        "XPING",
    ]
    .into_iter()
    .enumerate()
    {
        let name: String = op
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        out.push(case(format!("unknown_op_{i}_{name}"), format!("{op}\r\n")).closed(&[UNKNOWN]));
    }

    // PUB whose arguments do not parse.
    for (what, line) in [
        ("no_args", "PUB\r\n"),
        ("no_size", "PUB a\r\n"),
        ("size_not_a_number", "PUB a x\r\n"),
        ("size_negative", "PUB a -1\r\n"),
        ("size_overflow", "PUB a 99999999999999999999999\r\n"),
        ("four_args", "PUB a b c 1\r\n"),
        ("size_with_sign", "PUB a +1\r\n"),
        ("hpub_headers_beyond_total", "HPUB a 10 5\r\n"),
        ("hpub_no_total", "HPUB a 5\r\n"),
        ("hpub_not_numbers", "HPUB a x y\r\n"),
        ("sub_no_sid", "SUB a\r\n"),
        ("sub_four_args", "SUB a q 1 extra\r\n"),
        ("unsub_no_sid", "UNSUB\r\n"),
        ("unsub_max_not_a_number", "UNSUB 1 x\r\n"),
        ("unsub_three_args", "UNSUB 1 2 3\r\n"),
    ] {
        out.push(case(format!("args_{what}"), line).closed(&[UNKNOWN]));
    }

    // A payload longer or shorter than its size: the CRLF is not where it must be.
    for (what, bytes) in [
        ("payload_longer", &b"PUB a 2\r\nhello\r\n"[..]),
        ("payload_no_crlf", b"PUB a 5\r\nhelloXY"),
        (
            "hpub_payload_longer",
            b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhiXXXX\r\n",
        ),
        ("hpub_bad_header_block", b"HPUB a 5 7\r\nHTTP/\r\nhi\r\n"),
    ] {
        out.push(case(what, bytes).closed(&[UNKNOWN]));
    }

    // Over the limits: payload (64 KiB here) and control line (4 KiB).
    for size in [65_537u64, 1 << 20, 1 << 31, u64::from(u32::MAX) + 1] {
        out.push(
            case(format!("payload_of_{size}"), format!("PUB a {size}\r\n"))
                .closed(&["-ERR 'Maximum Payload Violation'"]),
        );
    }
    for len in [4_200usize, 10_000, 70_000] {
        out.push(
            case(
                format!("control_line_of_{len}"),
                format!("SUB {} 1\r\n", "a".repeat(len)),
            )
            .closed(&[CONTROL_LINE]),
        );
        out.push(
            case(format!("control_line_without_end_{len}"), "P".repeat(len))
                .closed(&[CONTROL_LINE]),
        );
    }

    // Subjects that are not subjects: SUB answers and goes on. PUB is checked only in
    // pedantic mode, as nats-server does.
    for (i, subject) in [
        "a..b", ".a", "a.", ".", "a.>.b", ">.a", ">.>", "a.>.*", "a. b",
    ]
    .into_iter()
    .enumerate()
    {
        out.push(
            case(
                format!("sub_invalid_subject_{i}"),
                format!("SUB {subject} 9\r\n"),
            )
            .open(&["-ERR 'Invalid Subject'"]),
        );
    }
    for (i, subject) in ["a..b", ".a", "a.", ".", ">.a", "a.*", "a.>", "*", ">"]
        .into_iter()
        .enumerate()
    {
        out.push(
            Case::new(
                format!("nats/pedantic_pub_invalid_subject_{i}"),
                Proto::Nats,
                format!("CONNECT {{\"pedantic\":true}}\r\nPUB {subject} 1\r\nx\r\n"),
            )
            .open(&["INFO", "-ERR 'Invalid Publish Subject'"]),
        );
        out.push(
            case(
                format!("pub_unchecked_subject_{i}"),
                format!("PUB {subject} 1\r\nx\r\n"),
            )
            .open(&[]),
        );
    }
    // '*' and '>' inside a longer token are literal characters.
    for (i, token) in ["a*", "*b", "c>", "**"].into_iter().enumerate() {
        out.push(
            case(
                format!("literal_wildcard_token_{i}"),
                format!("SUB lit{i}.{token} 1\r\nPUB lit{i}.{token} 1\r\nx\r\n"),
            )
            .open(&[&format!("MSG lit{i}.{token}")]),
        );
    }

    // Unknown sids and repeated UNSUBs are not errors.
    out.push(case("unsub_unknown_sid", "UNSUB 77\r\n").open(&[]));
    out.push(case("unsub_twice", "SUB a 5\r\nUNSUB 5\r\nUNSUB 5\r\n").open(&[]));
    out.push(case("unsub_max_zero", "SUB a 6\r\nUNSUB 6 0\r\n").open(&[]));
    // Lower-case operations are operations.
    out.push(case("lower_case_ping", "ping\r\n").open(&["PONG"]));
    out.push(case("mixed_case_sub_pub", "sUb m.c 3\r\npUb m.c 2\r\nhi\r\n").open(&["MSG m.c"]));
    // Only CR or only LF ends a line for nats-server's parser too.
    out.push(case("lf_only_ping", "PING\n").open(&["PONG"]));
    // Whitespace between arguments may be several spaces or tabs.
    out.push(
        case(
            "tabs_between_args",
            "SUB\tt.a\t\t4\r\nPUB  t.a   1\r\nx\r\n",
        )
        .open(&["MSG t.a"]),
    );

    // A second CONNECT is allowed (clients resend it); bad JSON in it is not.
    out.push(case("second_connect", "CONNECT {}\r\n").open(&[]));
    for (what, json) in [
        ("not_json", "hello"),
        ("truncated", "{\"verbose\":"),
        ("array", "[]"),
        ("wrong_type", "{\"verbose\":\"yes\"}"),
        ("nested_garbage", "{\"a\":{\"b\":[1,2,}}"),
        ("bad_utf8_escape", "{\"name\":\"\\ud800\"}"),
        ("number_for_string", "{\"name\":5}"),
        ("trailing_garbage", "{} x"),
        ("empty", ""),
    ] {
        out.push(
            Case::new(
                format!("nats/connect_{what}"),
                Proto::Nats,
                format!("CONNECT {json}\r\n"),
            )
            .closed(&["INFO", UNKNOWN]),
        );
    }
    // Anything before CONNECT.
    for (what, bytes) in [
        ("ping", "PING\r\n"),
        ("pub", "PUB a 1\r\nx\r\n"),
        ("sub", "SUB a 1\r\n"),
    ] {
        out.push(
            Case::new(format!("nats/before_connect_{what}"), Proto::Nats, bytes)
                .closed(&["INFO", "-ERR 'Authorization Violation'"]),
        );
    }
    // What is no operation at all fails to parse before the CONNECT check.
    out.push(
        Case::new("nats/before_connect_garbage", Proto::Nats, "XYZ\r\n").closed(&["INFO", UNKNOWN]),
    );
    out.push(
        Case::new("nats/silent_socket", Proto::Nats, Vec::new())
            .closed(&["INFO", "-ERR 'Authentication Timeout'"]),
    );

    // A client that goes away mid-operation: nothing more is said.
    let whole = b"HPUB cut.a 22 24\r\nNATS/1.0\r\nk: v\r\n\r\nhi\r\n";
    for cut in 1..whole.len() {
        out.push(
            case(format!("hpub_cut_at_{cut}"), whole[..cut].to_vec())
                .eof()
                .closed(&[]),
        );
    }
    let whole = b"PUB cut.b reply.x 5\r\nhello\r\n";
    for cut in 1..whole.len() {
        out.push(
            case(format!("pub_cut_at_{cut}"), whole[..cut].to_vec())
                .eof()
                .closed(&[]),
        );
    }
    // TLS and HTTP on the NATS port: a ClientHello's first byte starts no operation
    // (refused at once, without the line end it never sends); a request line is no
    // operation.
    out.push(
        Case::new(
            "nats/tls_client_hello",
            Proto::Nats,
            crate::tls_client_hello(),
        )
        .closed(&["INFO", UNKNOWN]),
    );
    out.push(
        Case::new(
            "nats/http_request",
            Proto::Nats,
            "GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .closed(&["INFO", UNKNOWN]),
    );
    out
}
