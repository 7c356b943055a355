//! STOMP 1.2 cases: every error is an ERROR frame (its `message` header is what is
//! compared, RabbitMQ's texts) followed by the close (spec, "ERROR"); a client that goes
//! away mid-frame is closed without a word.

use crate::runner::{Case, Proto};

fn case(name: impl std::fmt::Display, bytes: impl Into<Vec<u8>>) -> Case {
    Case::new(format!("stomp/{name}"), Proto::Stomp, bytes).in_session()
}

fn error(name: impl std::fmt::Display, bytes: impl Into<Vec<u8>>, message: &str) -> Case {
    case(name, bytes).closed(&[&format!("ERROR {message}")])
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // Commands STOMP does not have, or that only a server sends.
    for (i, cmd) in [
        "FOO",
        "send",
        "Send",
        "SENDX",
        "SEN",
        "SUBSCRIBEX",
        "ACKNOWLEDGE",
        "GET / HTTP/1.1",
        "\u{e9}",
        "\x01",
        "SEND ",
        " SEND",
        "NACKS",
        "BEGINS",
        "COMMITX",
        "DISCONNECTED",
    ]
    .into_iter()
    .enumerate()
    {
        out.push(error(
            format!("unknown_command_{i}"),
            format!("{cmd}\ndestination:/queue/x\n\n\0"),
            "Bad command",
        ));
    }
    for cmd in ["MESSAGE", "RECEIPT", "ERROR", "CONNECTED"] {
        out.push(error(
            format!("server_command_{cmd}"),
            format!("{cmd}\n\n\0"),
            "Illegal command",
        ));
    }

    // Header lines.
    for (what, frame, message) in [
        (
            "no_colon",
            &b"SEND\ndestination\n\n\0"[..],
            "Malformed frame",
        ),
        (
            "not_utf8",
            b"SEND\ndestination:/queue/\xFF\n\n\0",
            "Malformed frame",
        ),
        (
            "escape_tab",
            b"SEND\ndestination:/queue/a\\tb\n\n\0",
            "Invalid header escape",
        ),
        (
            "escape_x",
            b"SEND\ndestination:/queue/a\\xb\n\n\0",
            "Invalid header escape",
        ),
        (
            "escape_trailing",
            b"SEND\ndestination:/queue/a\\\n\n\0",
            "Invalid header escape",
        ),
        (
            "escape_unicode",
            b"SEND\ndestination:/queue/a\\u0041\n\n\0",
            "Invalid header escape",
        ),
        (
            "escape_in_name",
            b"SEND\ndest\\qination:/queue/a\n\n\0",
            "Invalid header escape",
        ),
        (
            "content_length_text",
            b"SEND\ndestination:/queue/a\ncontent-length:abc\n\nx\0",
            "Malformed frame",
        ),
        (
            "content_length_negative",
            b"SEND\ndestination:/queue/a\ncontent-length:-1\n\nx\0",
            "Malformed frame",
        ),
        (
            "content_length_fraction",
            b"SEND\ndestination:/queue/a\ncontent-length:1.5\n\nx\0",
            "Malformed frame",
        ),
        (
            "content_length_space",
            b"SEND\ndestination:/queue/a\ncontent-length: 1\n\nx\0",
            "Malformed frame",
        ),
        (
            "content_length_huge",
            b"SEND\ndestination:/queue/a\ncontent-length:99999999999999999999\n\nx\0",
            "Malformed frame",
        ),
        (
            "content_length_over_limit",
            b"SEND\ndestination:/queue/a\ncontent-length:70000\n\nx\0",
            "Frame too large",
        ),
        (
            "content_length_short",
            b"SEND\ndestination:/queue/a\ncontent-length:1\n\nxyz\0",
            "Malformed frame",
        ),
        (
            "body_on_subscribe",
            b"SUBSCRIBE\nid:1\ndestination:/queue/a\n\nbody\0",
            "Malformed frame",
        ),
        ("body_on_ack", b"ACK\nid:1\n\nbody\0", "Malformed frame"),
        (
            "body_on_begin",
            b"BEGIN\ntransaction:t\n\nbody\0",
            "Malformed frame",
        ),
        (
            "body_on_disconnect",
            b"DISCONNECT\n\nbye\0",
            "Malformed frame",
        ),
    ] {
        out.push(error(format!("header_{what}"), frame, message));
    }
    // Over the limits: a header line (10 KiB), too many headers, a body with no NUL.
    for len in [10_300usize, 70_000] {
        out.push(error(
            format!("header_line_of_{len}"),
            format!("SEND\ndestination:/queue/{}\n\n\0", "a".repeat(len)),
            "Frame too large",
        ));
        out.push(error(
            format!("command_line_of_{len}"),
            "S".repeat(len),
            "Frame too large",
        ));
    }
    for n in [1_001usize, 5_000] {
        let mut f = String::from("SEND\ndestination:/queue/a\n");
        for i in 0..n {
            f.push_str(&format!("h{i}:v\n"));
        }
        f.push_str("\n\0");
        out.push(error(format!("headers_{n}"), f, "Frame too large"));
    }
    out.push(error(
        "body_without_nul_over_limit",
        [&b"SEND\ndestination:/queue/a\n\n"[..], &vec![b'x'; 70_000]].concat(),
        "Frame too large",
    ));

    // Frames with a missing or wrong header, and wrong state.
    for (what, frame, message) in [
        ("send_no_destination", "SEND\n\nx\0", "Missing destination"),
        (
            "subscribe_no_destination",
            "SUBSCRIBE\nid:1\n\n\0",
            "Missing destination",
        ),
        (
            "subscribe_no_id",
            "SUBSCRIBE\ndestination:/queue/a\n\n\0",
            "Missing id",
        ),
        ("unsubscribe_no_id", "UNSUBSCRIBE\n\n\0", "Missing id"),
        ("ack_no_id", "ACK\n\n\0", "Missing header"),
        ("nack_no_id", "NACK\n\n\0", "Missing header"),
        ("begin_no_transaction", "BEGIN\n\n\0", "Missing transaction"),
        (
            "commit_no_transaction",
            "COMMIT\n\n\0",
            "Missing transaction",
        ),
        (
            "commit_unknown",
            "COMMIT\ntransaction:nope\n\n\0",
            "Bad transaction",
        ),
        (
            "abort_unknown",
            "ABORT\ntransaction:nope\n\n\0",
            "Bad transaction",
        ),
        (
            "begin_twice",
            "BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\n\n\0",
            "Transaction already active",
        ),
        (
            "send_in_unknown_transaction",
            "SEND\ndestination:/queue/a\ntransaction:nope\n\nx\0",
            "Bad transaction",
        ),
        ("ack_unknown", "ACK\nid:no-such\n\n\0", "Unknown message"),
        ("nack_unknown", "NACK\nid:no-such\n\n\0", "Unknown message"),
        (
            "second_connect",
            "CONNECT\naccept-version:1.2\nhost:/\n\n\0",
            "Already connected",
        ),
        (
            "second_stomp",
            "STOMP\naccept-version:1.2\nhost:/\n\n\0",
            "Already connected",
        ),
        (
            "message_id_on_send",
            "SEND\ndestination:/queue/a\nmessage-id:1\n\nx\0",
            "Invalid header",
        ),
        (
            "ack_mode_unknown",
            "SUBSCRIBE\nid:1\ndestination:/queue/a\nack:sometimes\n\n\0",
            "Invalid ack mode",
        ),
    ] {
        out.push(error(what, frame, message));
    }
    // Destinations that are malformed ("Invalid destination") or name no kind this broker
    // has ("Unknown destination"), as RabbitMQ tells them apart.
    for (i, (d, message)) in [
        ("/queue/a/b", "Invalid destination"),
        ("/topic/a/b", "Invalid destination"),
        ("/exchange//x", "Invalid destination"),
        ("/exchange/amq.topic/a/b", "Invalid destination"),
        ("/queue", "Invalid destination"),
        ("/topic", "Invalid destination"),
        ("/temp-queue/a/b", "Invalid destination"),
        ("/exchange", "Invalid destination"),
        ("/nowhere/x", "Unknown destination"),
        ("queue/a", "Unknown destination"),
        ("/", "Unknown destination"),
        ("", "Unknown destination"),
        ("/amq/queue/", "Unknown destination"),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(error(
            format!("send_destination_{i}"),
            format!("SEND\ndestination:{d}\n\nx\0"),
            message,
        ));
        out.push(error(
            format!("subscribe_destination_{i}"),
            format!("SUBSCRIBE\nid:1\ndestination:{d}\n\n\0"),
            message,
        ));
    }
    out.push(error(
        "subscribe_missing_exchange",
        "SUBSCRIBE\nid:1\ndestination:/exchange/no-such-exchange/k\n\n\0",
        "not_found",
    ));
    out.push(error(
        "subscribe_missing_amq_queue",
        "SUBSCRIBE\nid:1\ndestination:/amq/queue/no-such-queue\n\n\0",
        "not_found",
    ));

    // Things that are not errors: an unknown subscription id, heart-beats between frames,
    // an unknown header, NULs between frames, a frame with receipt in a transaction.
    for (what, bytes, said) in [
        ("heartbeat_eols", "\n\r\n\n\n", vec![]),
        (
            "unknown_header",
            "SEND\ndestination:/queue/bi-unknown-header\nx-what:y\nreceipt:h\n\nx\0",
            vec!["RECEIPT h"],
        ),
        ("nuls_between_frames", "\0\0\0\n\0", vec![]),
        (
            "repeated_header_first_wins",
            "SEND\ndestination:/queue/bi-rep\ndestination:/queue/a/b\nreceipt:r\n\nx\0",
            vec!["RECEIPT r"],
        ),
        (
            "cr_lf_lines",
            "SEND\r\ndestination:/queue/bi-crlf\r\nreceipt:c\r\n\r\nx\0",
            vec!["RECEIPT c"],
        ),
        (
            "empty_body_with_length",
            "SEND\ndestination:/queue/bi-empty\ncontent-length:0\nreceipt:e\n\n\0",
            vec!["RECEIPT e"],
        ),
        (
            "nul_in_body_with_length",
            "SEND\ndestination:/queue/bi-nul\ncontent-length:3\nreceipt:n\n\na\0b\0",
            vec!["RECEIPT n"],
        ),
    ] {
        out.push(case(what, bytes).open(&said));
    }

    // RabbitMQ refuses an UNSUBSCRIBE of nothing.
    out.push(error(
        "unsubscribe_unknown",
        "UNSUBSCRIBE\nid:nope\n\n\0",
        "No subscription found",
    ));

    // CONNECT problems, before any session.
    for (what, frame, message) in [
        (
            "version_mismatch",
            "CONNECT\naccept-version:9.9\nhost:/\n\n\0",
            "Version mismatch",
        ),
        (
            "version_garbage",
            "CONNECT\naccept-version:x,y\nhost:/\n\n\0",
            "Version mismatch",
        ),
        (
            "heart_beat_garbage",
            "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:a,b\n\n\0",
            "Invalid heart-beat header",
        ),
        (
            "heart_beat_one_value",
            "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:100\n\n\0",
            "Invalid heart-beat header",
        ),
        (
            "heart_beat_negative",
            "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:-1,0\n\n\0",
            "Invalid heart-beat header",
        ),
        (
            "send_first",
            "SEND\ndestination:/queue/a\n\nx\0",
            "Illegal command",
        ),
        (
            "subscribe_first",
            "SUBSCRIBE\nid:1\ndestination:/queue/a\n\n\0",
            "Illegal command",
        ),
        (
            "body_on_connect",
            "CONNECT\naccept-version:1.2\n\nhello\0",
            "Malformed frame",
        ),
    ] {
        out.push(
            Case::new(format!("stomp/connect_{what}"), Proto::Stomp, frame)
                .closed(&[&format!("ERROR {message}")]),
        );
    }
    out.push(Case::new("stomp/silent_socket", Proto::Stomp, Vec::new()).closed(&[]));
    out.push(
        Case::new(
            "stomp/tls_client_hello",
            Proto::Stomp,
            crate::tls_client_hello(),
        )
        .closed(&["ERROR Bad command"]),
    );
    out.push(
        Case::new(
            "stomp/http_request",
            Proto::Stomp,
            "GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .closed(&["ERROR Bad command"]),
    );

    // Clients that go away mid-frame.
    let whole = b"SEND\ndestination:/queue/bi-cut\ncontent-length:5\nreceipt:r\n\nhello\0";
    for cut in 1..whole.len() {
        out.push(
            case(format!("send_cut_at_{cut}"), whole[..cut].to_vec())
                .eof()
                .closed(&[]),
        );
    }
    let whole = b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0";
    for cut in 1..whole.len() {
        out.push(
            Case::new(
                format!("stomp/connect_cut_at_{cut}"),
                Proto::Stomp,
                whole[..cut].to_vec(),
            )
            .eof()
            .closed(&[]),
        );
    }
    out
}
