//! AMQP 0-9-1 cases (spec section 4.2 and RabbitMQ's errata): a bad protocol header is
//! answered with the one we speak and closed; a frame-level fault is connection.close
//! 501 FRAME_ERROR, 502 SYNTAX_ERROR, 503 COMMAND_INVALID, 504 CHANNEL_ERROR, 505
//! UNEXPECTED_FRAME or 540 NOT_IMPLEMENTED; a fault in one channel's work is
//! channel.close (403, 404, 406) and the connection goes on.

use crate::runner::{amqp_frame, amqp_method, long_str, short_str, Case, Proto};

const HEADER: &str = "HEADER [0, 0, 9, 1]";

fn case(name: impl std::fmt::Display, bytes: impl Into<Vec<u8>>) -> Case {
    Case::new(format!("amqp/{name}"), Proto::Amqp, bytes).in_session()
}

fn connection_error(name: impl std::fmt::Display, bytes: impl Into<Vec<u8>>, code: u16) -> Case {
    case(name, bytes).closed(&[&format!("connection.close {code}")])
}

fn channel_error(name: impl std::fmt::Display, bytes: impl Into<Vec<u8>>, code: u16) -> Case {
    case(name, bytes).open(&[&format!("channel.close 1 {code}")])
}

/// queue.declare's arguments: name, flags (passive 1, durable 2, exclusive 4, auto-delete
/// 8, no-wait 16), then the raw arguments table.
fn queue_declare(channel: u16, name: &str, flags: u8, table: &[u8]) -> Vec<u8> {
    amqp_method(channel, 50, 10, |a| {
        a.extend([0, 0]);
        short_str(a, name);
        a.push(flags);
        a.extend(table);
    })
}

fn exchange_declare(channel: u16, name: &str, kind: &str, flags: u8) -> Vec<u8> {
    amqp_method(channel, 40, 10, |a| {
        a.extend([0, 0]);
        short_str(a, name);
        short_str(a, kind);
        a.push(flags);
        a.extend(0u32.to_be_bytes());
    })
}

fn basic_publish(channel: u16, exchange: &str, key: &str) -> Vec<u8> {
    amqp_method(channel, 60, 40, |a| {
        a.extend([0, 0]);
        short_str(a, exchange);
        short_str(a, key);
        a.push(0);
    })
}

/// A content header frame for class 60 with `size` body bytes and no properties.
fn content_header(channel: u16, size: u64) -> Vec<u8> {
    let mut p = 60u16.to_be_bytes().to_vec();
    p.extend([0, 0]);
    p.extend(size.to_be_bytes());
    p.extend([0, 0]);
    amqp_frame(2, channel, &p)
}

/// A one-entry arguments table whose value has type byte `kind` followed by `value`.
fn table(kind: u8, value: &[u8]) -> Vec<u8> {
    table_with("x", kind, value)
}

fn table_with(key: &str, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    short_str(&mut entry, key);
    entry.push(kind);
    entry.extend(value);
    let mut t = (entry.len() as u32).to_be_bytes().to_vec();
    t.extend(entry);
    t
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // Protocol headers we do not speak: answered with ours, then closed.
    for (i, header) in [
        &b"AMQP\x00\x00\x09\x00"[..],
        b"AMQP\x01\x01\x00\x09",
        b"AMQP\x00\x01\x00\x00",
        b"AMQP\x03\x01\x00\x00",
        b"AMQP\x00\x00\x08\x00",
        b"AMQX\x00\x00\x09\x01",
        b"amqp\x00\x00\x09\x01",
        b"GET / HT",
        b"\x10\x0c\x00\x04MQTT",
        b"\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
        b"CONNECT\n",
        b"PING\r\nPI",
    ]
    .into_iter()
    .enumerate()
    {
        out.push(
            Case::new(format!("amqp/protocol_header_{i}"), Proto::Amqp, header).closed(&[HEADER]),
        );
    }
    out.push(
        Case::new(
            "amqp/tls_client_hello",
            Proto::Amqp,
            crate::tls_client_hello(),
        )
        .closed(&[HEADER]),
    );
    // A header cut short by a client that leaves, and one that never completes.
    for cut in 1..8 {
        out.push(
            Case::new(
                format!("amqp/protocol_header_cut_at_{cut}"),
                Proto::Amqp,
                &b"AMQP\x00\x00\x09\x01"[..cut],
            )
            .eof()
            .closed(&[]),
        );
    }
    out.push(Case::new("amqp/silent_socket", Proto::Amqp, Vec::new()).closed(&[]));

    // Frame faults (section 4.2.3): unknown type, wrong end octet, oversized.
    for kind in [0u8, 4, 5, 6, 7, 9, 0x41, 0xFF] {
        out.push(connection_error(
            format!("frame_type_{kind}"),
            amqp_frame(kind, 1, &[0, 0, 0, 0]),
            501,
        ));
    }
    for end in [0x00u8, 0xCD, 0xCF, 0xFF, b'\n'] {
        let mut f = amqp_method(1, 60, 10, |a| a.extend([0, 0, 0, 0, 0, 0, 0]));
        *f.last_mut().unwrap() = end;
        out.push(connection_error(format!("frame_end_{end:#04x}"), f, 501));
    }
    for size in [131_073u32, 1 << 24, u32::MAX] {
        let mut f = vec![1, 0, 1];
        f.extend(size.to_be_bytes());
        out.push(connection_error(format!("frame_size_{size}"), f, 501));
    }
    // A heartbeat must be on channel 0 and empty.
    out.push(connection_error(
        "heartbeat_on_channel_1",
        amqp_frame(8, 1, &[]),
        501,
    ));
    out.push(connection_error(
        "heartbeat_with_payload",
        amqp_frame(8, 0, &[1]),
        501,
    ));

    // Method frames whose arguments are cut short: every cut of a queue.declare with an
    // arguments table, and of a basic.publish.
    let full = queue_declare(1, "cut-q", 0, &table(b'S', &[0, 0, 0, 3, b'a', b'b', b'c']));
    let args = &full[7..full.len() - 1];
    for cut in 4..args.len() {
        out.push(connection_error(
            format!("queue_declare_args_cut_at_{cut}"),
            amqp_frame(1, 1, &args[..cut]),
            502,
        ));
    }
    let full = basic_publish(1, "amq.direct", "key");
    let args = &full[7..full.len() - 1];
    for cut in 4..args.len() {
        out.push(connection_error(
            format!("basic_publish_args_cut_at_{cut}"),
            amqp_frame(1, 1, &args[..cut]),
            502,
        ));
    }
    // Bytes after the last argument, or after the last property (as RabbitMQ's exact
    // decoder and amq-protocol refuse them).
    let mut publish = basic_publish(1, "", "q");
    publish.truncate(publish.len() - 1);
    publish.extend([0x71, 0x2e]);
    let publish = amqp_frame(1, 1, &publish[7..]);
    out.push(connection_error(
        "method_bytes_after_arguments",
        publish,
        502,
    ));
    let mut header = content_header(1, 1);
    header.truncate(header.len() - 1);
    header.push(0);
    let header = amqp_frame(2, 1, &header[7..]);
    out.push(connection_error(
        "content_header_bytes_after_properties",
        [basic_publish(1, "", "q"), header].concat(),
        502,
    ));
    out.push(connection_error(
        "method_frame_empty",
        amqp_frame(1, 1, &[]),
        502,
    ));
    out.push(connection_error(
        "method_frame_class_only",
        amqp_frame(1, 1, &[0, 50]),
        502,
    ));

    // Field tables with types that do not exist, or values that run past the table.
    for kind in [
        b'Z', b'z', b'a', b'y', 0u8, b'!', b'X', 0xFF, b'n', b'w', b'g', b'k',
    ] {
        out.push(connection_error(
            format!("table_field_type_{kind:#04x}"),
            queue_declare(1, "tq", 0, &table(kind, &[0, 0, 0, 0])),
            502,
        ));
    }
    for (what, t) in [
        ("long_string_past_table", table(b'S', &[0, 0, 0, 200, b'a'])),
        ("nested_table_past_table", table(b'F', &[0, 0, 1, 0])),
        ("array_past_table", table(b'A', &[0, 0, 0, 50, b't', 1])),
        (
            "table_length_past_frame",
            vec![0, 0, 0, 200, 1, b'x', b't', 1],
        ),
        ("byte_array_past_table", table(b'x', &[0, 0, 0, 9, b'a'])),
        ("key_length_past_table", vec![0, 0, 0, 3, 10, b'x', b'y']),
        ("decimal_cut", table(b'D', &[2, 0])),
        ("timestamp_cut", table(b'T', &[0, 0, 0])),
    ] {
        out.push(connection_error(
            format!("table_{what}"),
            queue_declare(1, "tq", 0, &t),
            502,
        ));
    }

    // Unknown classes and methods.
    for (class, method) in [
        (10u16, 99u16),
        (20, 99),
        (40, 99),
        (50, 99),
        (60, 99),
        (90, 99),
        (85, 99),
        (999, 1),
        (0, 0),
        (65535, 65535),
    ] {
        out.push(connection_error(
            format!("method_{class}_{method}"),
            amqp_method(1, class, method, |_| {}),
            540,
        ));
    }

    // Frames out of order (section 4.2.6): content without a method, a body without a
    // header, a method in the middle of content, a body longer than the header said.
    out.push(connection_error(
        "content_header_alone",
        content_header(1, 3),
        505,
    ));
    out.push(connection_error(
        "body_alone",
        amqp_frame(3, 1, b"abc"),
        505,
    ));
    out.push(connection_error(
        "method_inside_content",
        [
            basic_publish(1, "", "q"),
            content_header(1, 3),
            basic_publish(1, "", "q"),
        ]
        .concat(),
        505,
    ));
    out.push(connection_error(
        "body_longer_than_header",
        [
            basic_publish(1, "", "q"),
            content_header(1, 2),
            amqp_frame(3, 1, b"abc"),
        ]
        .concat(),
        505,
    ));
    out.push(connection_error(
        "content_header_wrong_class",
        [basic_publish(1, "", "q"), {
            let mut f = content_header(1, 1);
            f[8] = 50;
            f
        }]
        .concat(),
        505,
    ));
    out.push(connection_error(
        "content_header_on_other_channel",
        [basic_publish(1, "", "q"), content_header(2, 1)].concat(),
        504,
    ));
    // A body over the message size limit is refused as RabbitMQ does: 406 on the channel.
    out.push(
        case(
            "content_body_over_limit",
            [basic_publish(1, "", "q"), content_header(1, 1 << 40)].concat(),
        )
        .open(&["channel.close 1 406"]),
    );

    // Channels: unopened, opened twice, beyond channel-max, channel methods on 0,
    // connection methods on a channel.
    out.push(connection_error(
        "method_on_unopened_channel",
        queue_declare(7, "q", 0, &[0, 0, 0, 0]),
        504,
    ));
    out.push(connection_error(
        "channel_open_twice",
        amqp_method(1, 20, 10, |a| a.push(0)),
        504,
    ));
    out.push(connection_error(
        "channel_beyond_max",
        amqp_method(4000, 20, 10, |a| a.push(0)),
        504,
    ));
    out.push(connection_error(
        "queue_declare_on_channel_0",
        queue_declare(0, "q", 0, &[0, 0, 0, 0]),
        504,
    ));
    // RabbitMQ: a connection method on a channel is COMMAND_INVALID, one out of order on
    // channel 0 is CHANNEL_ERROR ("unexpected method in connection state").
    out.push(connection_error(
        "connection_open_on_channel_1",
        amqp_method(1, 10, 40, |a| {
            short_str(a, "/");
            short_str(a, "");
            a.push(0);
        }),
        503,
    ));
    out.push(connection_error(
        "connection_open_again",
        amqp_method(0, 10, 40, |a| {
            short_str(a, "/");
            short_str(a, "");
            a.push(0);
        }),
        504,
    ));
    out.push(connection_error(
        "start_ok_again",
        amqp_method(0, 10, 11, |a| {
            a.extend(0u32.to_be_bytes());
            short_str(a, "PLAIN");
            long_str(a, b"\0guest\0guest");
            short_str(a, "en_US");
        }),
        504,
    ));
    // A close-ok nobody asked for is ignored.
    out.push(case("channel_close_ok_unasked", amqp_method(1, 20, 41, |_| {})).open(&[]));

    // One channel's faults: closed with the reason, the connection goes on.
    for (what, bytes, code) in [
        (
            "declare_passive_missing_queue",
            queue_declare(1, "no-such-queue", 1, &[0, 0, 0, 0]),
            404,
        ),
        (
            "declare_amq_prefix_queue",
            queue_declare(1, "amq.mine", 0, &[0, 0, 0, 0]),
            403,
        ),
        (
            "declare_amq_prefix_exchange",
            exchange_declare(1, "amq.mine", "direct", 0),
            403,
        ),
        (
            "declare_unknown_exchange_type",
            exchange_declare(1, "bi-x", "no-such-type", 0),
            406,
        ),
        (
            "redeclare_exchange_other_type",
            exchange_declare(1, "amq.topic", "direct", 0),
            406,
        ),
        (
            "declare_passive_missing_exchange",
            exchange_declare(1, "no-such-exchange", "direct", 1),
            404,
        ),
        (
            "publish_to_missing_exchange",
            [
                basic_publish(1, "no-such-exchange", "k"),
                content_header(1, 0),
            ]
            .concat(),
            404,
        ),
        (
            "ack_unknown_tag",
            amqp_method(1, 60, 80, |a| {
                a.extend(99u64.to_be_bytes());
                a.push(0);
            }),
            406,
        ),
        (
            "reject_unknown_tag",
            amqp_method(1, 60, 90, |a| {
                a.extend(99u64.to_be_bytes());
                a.push(0);
            }),
            406,
        ),
        (
            "consume_missing_queue",
            amqp_method(1, 60, 20, |a| {
                a.extend([0, 0]);
                short_str(a, "no-such-queue");
                short_str(a, "");
                a.push(0);
                a.extend(0u32.to_be_bytes());
            }),
            404,
        ),
        (
            "get_missing_queue",
            amqp_method(1, 60, 70, |a| {
                a.extend([0, 0]);
                short_str(a, "no-such-queue");
                a.push(0);
            }),
            404,
        ),
        (
            "bind_missing_exchange",
            amqp_method(1, 50, 20, |a| {
                a.extend([0, 0]);
                short_str(a, "");
                short_str(a, "no-such-exchange");
                short_str(a, "k");
                a.push(0);
                a.extend(0u32.to_be_bytes());
            }),
            404,
        ),
        (
            "queue_name_empty_none_declared",
            amqp_method(1, 50, 30, |a| {
                a.extend([0, 0]);
                short_str(a, "");
                a.push(0);
            }),
            404,
        ),
        (
            "delete_builtin_exchange",
            amqp_method(1, 40, 20, |a| {
                a.extend([0, 0]);
                short_str(a, "amq.direct");
                a.push(0);
            }),
            403,
        ),
        (
            "tx_commit_without_select",
            amqp_method(1, 90, 20, |_| {}),
            406,
        ),
        (
            "x_max_length_not_a_number",
            queue_declare(
                1,
                "bi-bad-arg",
                0,
                &table_with("x-max-length", b'S', &[0, 0, 0, 1, b'x']),
            ),
            406,
        ),
    ] {
        out.push(channel_error(what, bytes, code));
    }
    out.push(
        case(
            "confirm_after_tx_select",
            [
                amqp_method(1, 90, 10, |_| {}),
                amqp_method(1, 85, 10, |a| a.push(0)),
            ]
            .concat(),
        )
        .open(&["tx.select-ok", "channel.close 1 406"]),
    );

    // NOT_IMPLEMENTED is a connection error.
    out.push(connection_error(
        "recover_without_requeue",
        amqp_method(1, 60, 110, |a| a.push(0)),
        540,
    ));
    out.push(connection_error(
        "qos_prefetch_size",
        amqp_method(1, 60, 10, |a| {
            a.extend(1000u32.to_be_bytes());
            a.extend(0u16.to_be_bytes());
            a.push(0);
        }),
        540,
    ));

    // Clients that go away mid-frame.
    let whole = [
        basic_publish(1, "amq.direct", "cut"),
        content_header(1, 5),
        amqp_frame(3, 1, b"hello"),
    ]
    .concat();
    for cut in 1..whole.len() {
        out.push(
            case(format!("publish_cut_at_{cut}"), whole[..cut].to_vec())
                .eof()
                .closed(&[]),
        );
    }
    out
}
