//! MQTT 3.1.1 and 5.0 cases. A 5.0 connection that breaks a rule after CONNECT gets
//! DISCONNECT with the reason code (§4.13.1: Malformed Packet 0x81, Protocol Error 0x82,
//! ...) and is closed; a 3.1.1 connection is closed without a word [MQTT-4.8.0-1]; a bad
//! CONNECT gets CONNACK with the reason (5.0) or nothing (3.1.1).

use std::time::Duration;

use dwbroker_codecs::mqtt::ProtocolVersion::{self, V311, V5};

use crate::runner::{mqtt_connect, Case, Proto};

/// A packet: the first byte, then the Remaining Length and `body`.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        p.push(b);
        if n == 0 {
            break;
        }
    }
    p.extend(body);
    p
}

fn s(x: &[u8]) -> Vec<u8> {
    let mut v = (x.len() as u16).to_be_bytes().to_vec();
    v.extend(x);
    v
}

/// A property list: Property Length, then the properties.
fn props(p: &[u8]) -> Vec<u8> {
    assert!(p.len() < 128);
    let mut v = vec![p.len() as u8];
    v.extend(p);
    v
}

fn name(v: ProtocolVersion) -> &'static str {
    if v == V5 {
        "v5"
    } else {
        "v311"
    }
}

fn proto(v: ProtocolVersion) -> Proto {
    Proto::Mqtt(v)
}

/// After CONNECT: 5.0 says DISCONNECT `code`, 3.1.1 just closes.
fn refused(c: Case, v: ProtocolVersion, code: u8) -> Case {
    if v == V5 {
        c.closed(&[&format!("DISCONNECT 0x{code:02x}")])
    } else {
        c.closed(&[])
    }
}

/// A bad CONNECT: 5.0 says CONNACK `code`, 3.1.1 just closes.
fn connect_refused(c: Case, v: ProtocolVersion, code: u8) -> Case {
    if v == V5 {
        c.closed(&[&format!("CONNACK 0x{code:02x}")])
    } else {
        c.closed(&[])
    }
}

/// A CONNECT body with `flags`, client id, will, username and password as given;
/// `props`/`will_props` only for 5.0.
fn connect_body(
    v: ProtocolVersion,
    flags: u8,
    props_: &[u8],
    client_id: &[u8],
    will: Option<(&[u8], &[u8], &[u8])>,
    user: Option<&[u8]>,
    pass: Option<&[u8]>,
) -> Vec<u8> {
    let mut b = s(b"MQTT");
    b.push(if v == V5 { 5 } else { 4 });
    b.push(flags);
    b.extend(60u16.to_be_bytes());
    if v == V5 {
        b.extend(props(props_));
    }
    b.extend(s(client_id));
    if let Some((will_props, topic, payload)) = will {
        if v == V5 {
            b.extend(props(will_props));
        }
        b.extend(s(topic));
        b.extend(s(payload));
    }
    if let Some(u) = user {
        b.extend(s(u));
    }
    if let Some(p) = pass {
        b.extend(s(p));
    }
    b
}

/// A full CONNECT with will, username and password (flags 0xC6: user, password, will
/// QoS 0, will, clean start).
fn full_connect(v: ProtocolVersion) -> Vec<u8> {
    let p: &[u8] = &[0x11, 0, 0, 0, 10, 0x21, 0, 10];
    let wp: &[u8] = &[0x18, 0, 0, 0, 1];
    packet(
        0x10,
        &connect_body(
            v,
            0xC6,
            p,
            b"full",
            Some((wp, b"will/t", b"bye")),
            Some(b"u"),
            Some(b"p"),
        ),
    )
}

/// Invalid UTF-8 (§1.5.4): overlong, surrogate, U+0000, bytes never valid, a truncated
/// sequence, beyond U+10FFFF, a lone continuation byte.
const BAD_UTF8: &[(&str, &[u8])] = &[
    ("overlong", b"a\xC0\x80"),
    ("surrogate", b"\xED\xA0\x80"),
    ("nul", b"a\x00b"),
    ("ff", b"\xFF"),
    ("truncated", b"\xE2\x82"),
    ("above_max", b"\xF4\x90\x80\x80"),
    ("lone_continuation", b"\x80"),
    ("five_byte", b"\xF8\x88\x80\x80\x80"),
];

/// The property identifiers of §2.2.2.2, their value bytes, and where each may appear.
#[derive(Clone, Copy, PartialEq)]
enum At {
    Connect,
    Will,
    Publish,
    PubAck,
    Subscribe,
    Unsubscribe,
    Disconnect,
}

fn property_value(id: u8) -> Option<&'static [u8]> {
    Some(match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => &[1],
        0x02 | 0x11 | 0x18 | 0x27 => &[0, 0, 0, 5],
        0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => &[0, 1, b'x'],
        0x09 | 0x16 => &[0, 1, 7],
        0x0B => &[5],
        0x13 | 0x21 | 0x22 | 0x23 => &[0, 1],
        0x26 => &[0, 1, b'k', 0, 1, b'v'],
        _ => return None,
    })
}

fn allowed(id: u8, at: At) -> bool {
    use At::*;
    match id {
        0x01..=0x03 | 0x08 | 0x09 => matches!(at, Publish | Will),
        0x0B => at == Subscribe,
        0x11 => matches!(at, Connect | Disconnect),
        0x15 | 0x16 | 0x17 | 0x19 | 0x21 | 0x22 | 0x27 => at == Connect,
        0x18 => at == Will,
        0x1C => at == Disconnect,
        0x1F => matches!(at, PubAck | Disconnect),
        0x23 => at == Publish,
        0x26 => true,
        _ => false,
    }
}

/// A packet of kind `at` (after CONNECT, except Connect/Will) whose property list is
/// `p`.
fn with_props(at: At, p: &[u8]) -> Vec<u8> {
    match at {
        At::Connect => packet(0x10, &connect_body(V5, 0x02, p, b"p", None, None, None)),
        At::Will => packet(
            0x10,
            &connect_body(V5, 0x06, &[], b"p", Some((p, b"w", b"x")), None, None),
        ),
        At::Publish => {
            let mut b = s(b"t");
            b.extend(props(p));
            b.extend(b"payload");
            packet(0x30, &b)
        }
        At::PubAck => {
            let mut b = vec![0, 9, 0x10];
            b.extend(props(p));
            packet(0x40, &b)
        }
        At::Subscribe => {
            let mut b = vec![0, 1];
            b.extend(props(p));
            b.extend(s(b"t"));
            b.push(1);
            packet(0x82, &b)
        }
        At::Unsubscribe => {
            let mut b = vec![0, 1];
            b.extend(props(p));
            b.extend(s(b"t"));
            packet(0xA2, &b)
        }
        At::Disconnect => {
            let mut b = vec![0x00];
            b.extend(props(p));
            packet(0xE0, &b)
        }
    }
}

const PLACES: [(At, &str); 7] = [
    (At::Connect, "connect"),
    (At::Will, "will"),
    (At::Publish, "publish"),
    (At::PubAck, "puback"),
    (At::Subscribe, "subscribe"),
    (At::Unsubscribe, "unsubscribe"),
    (At::Disconnect, "disconnect"),
];

/// A case for packet kind `at` in 5.0: CONNECT and Will cases come before any session.
fn v5_case(name: String, at: At, bytes: Vec<u8>) -> Case {
    let c = Case::new(name, Proto::Mqtt(V5), bytes);
    if matches!(at, At::Connect | At::Will) {
        c
    } else {
        c.in_session()
    }
}

fn v5_refused(name: String, at: At, bytes: Vec<u8>, code: u8) -> Case {
    let c = v5_case(name, at, bytes);
    if matches!(at, At::Connect | At::Will) {
        connect_refused(c, V5, code)
    } else {
        refused(c, V5, code)
    }
}

/// A plausible body for each packet type, for the fixed-header flag cases.
fn body_of(kind: u8, v: ProtocolVersion) -> Vec<u8> {
    match kind {
        1 => connect_body(v, 0x02, &[], b"f", None, None, None),
        2 => vec![0, 0],
        4..=7 => vec![0, 1],
        8 => [
            &[0u8, 1][..],
            if v == V5 { &[0] } else { &[] },
            &s(b"a"),
            &[1],
        ]
        .concat(),
        9 => vec![0, 1, 0],
        10 => [&[0u8, 1][..], if v == V5 { &[0] } else { &[] }, &s(b"a")].concat(),
        11 => vec![0, 1],
        _ => Vec::new(),
    }
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for v in [V311, V5] {
        let n = name(v);
        let p = proto(v);

        // Anything but CONNECT first: closed, nothing said [MQTT-3.1.0-1].
        for kind in 2..=15u8 {
            let flags = if matches!(kind, 6 | 8 | 10) { 2 } else { 0 };
            out.push(
                Case::new(
                    format!("mqtt/{n}/first_packet_type_{kind}"),
                    p,
                    packet(kind << 4 | flags, &body_of(kind, v)),
                )
                .closed(&[]),
            );
        }

        // A CONNECT cut short by a client that goes away: nothing said.
        let full = full_connect(v);
        for cut in 1..full.len() {
            out.push(
                Case::new(
                    format!("mqtt/{n}/connect_cut_at_{cut}"),
                    p,
                    full[..cut].to_vec(),
                )
                .eof()
                .closed(&[]),
            );
        }
        // The whole CONNECT arrives byte by byte: accepted.
        let mut slow = Case::new(format!("mqtt/{n}/connect_byte_by_byte"), p, Vec::new());
        for b in &full {
            slow = slow.then(Duration::from_millis(5), vec![*b]);
        }
        out.push(slow.open(&["CONNACK 0x00"]));

        // A Remaining Length shorter than the CONNECT's fields: Malformed.
        let body = &full[2..];
        for len in 1..body.len() {
            let c = Case::new(
                format!("mqtt/{n}/connect_remaining_length_{len}_of_{}", body.len()),
                p,
                packet(0x10, &body[..len]),
            );
            // The protocol level is byte 7 of the variable header: before it, the
            // version is unknown and the connection is closed silently.
            out.push(if len >= 7 {
                connect_refused(c, v, 0x81)
            } else {
                c.closed(&[])
            });
        }

        // CONNECT flags [MQTT-3.1.2-3] reserved bit, will QoS 3, will QoS or retain
        // without will [MQTT-3.1.2-11, -13, -15].
        for (what, flags) in [
            ("reserved_bit", 0x03u8),
            ("will_qos_3", 0x1E),
            ("will_qos_without_will", 0x0A),
            ("will_retain_without_will", 0x22),
        ] {
            out.push(connect_refused(
                Case::new(
                    format!("mqtt/{n}/connect_flags_{what}"),
                    p,
                    packet(0x10, &connect_body(v, flags, &[], b"x", None, None, None)),
                ),
                v,
                0x81,
            ));
        }
        // A password without a user name: malformed in 3.1.1 [MQTT-3.1.2-22], allowed in
        // 5.0.
        let c = Case::new(
            format!("mqtt/{n}/password_without_username"),
            p,
            packet(
                0x10,
                &connect_body(v, 0x42, &[], b"pw", None, None, Some(b"p")),
            ),
        );
        out.push(if v == V5 {
            c.open(&["CONNACK 0x00"])
        } else {
            c.closed(&[])
        });

        // Unsupported protocol levels and names.
        // Unsupported protocol levels: CONNACK 0x84 in the form the level can read
        // (3.1.1's return code 0x01 up to level 5).
        for level in [0u8, 1, 2, 3, 6, 7, 0x84, 255] {
            if (level > 5) != (v == V5) {
                continue;
            }
            let mut b = s(b"MQTT");
            b.extend([level, 0x02, 0, 60, 0, 1, b'l']);
            out.push(
                Case::new(
                    format!("mqtt/{n}/protocol_level_{level}"),
                    p,
                    packet(0x10, &b),
                )
                .closed(&["CONNACK 0x84"]),
            );
        }
        if v == V311 {
            out.push(
                Case::new(
                    "mqtt/v311/mqtt_3_1_level_3",
                    p,
                    packet(
                        0x10,
                        &[&s(b"MQIsdp")[..], &[3, 0x02, 0, 60, 0, 1, b'o']].concat(),
                    ),
                )
                .closed(&["CONNACK 0x84"]),
            );
        }
        for bad in [&b"MQTX"[..], b"mqtt", b"", b"MQTTT", b"MQ\xC0\x80"] {
            let mut b = s(bad);
            b.extend([if v == V5 { 5 } else { 4 }, 0x02, 0, 60]);
            if v == V5 {
                b.push(0);
            }
            b.extend(s(b"n"));
            out.push(
                Case::new(
                    format!("mqtt/{n}/protocol_name_{}", String::from_utf8_lossy(bad)),
                    p,
                    packet(0x10, &b),
                )
                .closed(&[]),
            );
        }

        // Bad UTF-8 in every string a client sends.
        for (what, bad) in BAD_UTF8 {
            out.push(connect_refused(
                Case::new(
                    format!("mqtt/{n}/client_id_utf8_{what}"),
                    p,
                    packet(0x10, &connect_body(v, 0x02, &[], bad, None, None, None)),
                ),
                v,
                0x81,
            ));
            out.push(connect_refused(
                Case::new(
                    format!("mqtt/{n}/will_topic_utf8_{what}"),
                    p,
                    packet(
                        0x10,
                        &connect_body(v, 0x06, &[], b"w", Some((&[], bad, b"x")), None, None),
                    ),
                ),
                v,
                0x81,
            ));
            out.push(connect_refused(
                Case::new(
                    format!("mqtt/{n}/username_utf8_{what}"),
                    p,
                    packet(
                        0x10,
                        &connect_body(v, 0x82, &[], b"u", None, Some(bad), None),
                    ),
                ),
                v,
                0x81,
            ));
            let pv: &[u8] = if v == V5 { &[0] } else { &[] };
            let topic = [&s(bad)[..], pv, b"x"].concat();
            out.push(refused(
                Case::new(
                    format!("mqtt/{n}/publish_topic_utf8_{what}"),
                    p,
                    packet(0x30, &topic),
                )
                .in_session(),
                v,
                0x81,
            ));
            let sub = [&[0u8, 1][..], pv, &s(bad), &[0]].concat();
            out.push(refused(
                Case::new(
                    format!("mqtt/{n}/subscribe_filter_utf8_{what}"),
                    p,
                    packet(0x82, &sub),
                )
                .in_session(),
                v,
                0x81,
            ));
            let unsub = [&[0u8, 1][..], pv, &s(bad)].concat();
            out.push(refused(
                Case::new(
                    format!("mqtt/{n}/unsubscribe_filter_utf8_{what}"),
                    p,
                    packet(0xA2, &unsub),
                )
                .in_session(),
                v,
                0x81,
            ));
        }

        // Fixed header flags other than the ones each type requires [MQTT-2.1.3-1], and
        // the reserved types 0 (and 15 in 3.1.1).
        for kind in 0..=15u8 {
            let valid = match kind {
                3 => continue, // PUBLISH: flags are DUP, QoS, RETAIN (below)
                6 | 8 | 10 => Some(2),
                0 => None,
                15 if v == V311 => None,
                _ => Some(0),
            };
            // A packet only a server sends is a Protocol Error whatever its flags.
            let code = if matches!(kind, 2 | 9 | 11 | 13) {
                0x82
            } else {
                0x81
            };
            for flags in 0..16u8 {
                if Some(flags) == valid {
                    continue;
                }
                out.push(refused(
                    Case::new(
                        format!("mqtt/{n}/type_{kind}_flags_{flags:x}"),
                        p,
                        packet(kind << 4 | flags, &body_of(kind, v)),
                    )
                    .in_session(),
                    v,
                    code,
                ));
            }
        }

        // Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP), in session.
        for kind in [2u8, 9, 11, 13] {
            out.push(refused(
                Case::new(
                    format!("mqtt/{n}/server_packet_type_{kind}"),
                    p,
                    packet(kind << 4, &body_of(kind, v)),
                )
                .in_session(),
                v,
                0x82,
            ));
        }

        // Remaining Length: five bytes [MQTT-1.5.5], beyond the maximum packet size.
        out.push(refused(
            Case::new(
                format!("mqtt/{n}/remaining_length_five_bytes"),
                p,
                vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            )
            .in_session(),
            v,
            0x81,
        ));
        for size in [65_537usize, 1 << 20, 100 << 20, 268_435_455] {
            let mut b = packet(0x30, &[]);
            b.truncate(1);
            let mut n_ = size;
            loop {
                let mut x = (n_ % 128) as u8;
                n_ /= 128;
                if n_ > 0 {
                    x |= 0x80;
                }
                b.push(x);
                if n_ == 0 {
                    break;
                }
            }
            b.extend(s(b"big"));
            out.push(refused(
                Case::new(format!("mqtt/{n}/publish_of_{size}_bytes"), p, b).in_session(),
                v,
                0x95,
            ));
        }

        // Wrong state and forbidden values after CONNECT.
        let pv: Vec<u8> = if v == V5 { vec![0] } else { vec![] };
        let rows: Vec<(&str, Vec<u8>, u8)> = vec![
            ("second_connect", mqtt_connect(v, "again"), 0x82),
            (
                "publish_qos_3",
                packet(0x36, &[&s(b"t")[..], &[0, 1], &pv, b"x"].concat()),
                0x81,
            ),
            (
                "publish_wildcard_plus",
                packet(0x30, &[&s(b"a/+")[..], &pv].concat()),
                0x90,
            ),
            (
                "publish_wildcard_hash",
                packet(0x30, &[&s(b"a/#")[..], &pv].concat()),
                0x90,
            ),
            (
                "publish_qos1_packet_id_0",
                packet(0x32, &[&s(b"t")[..], &[0, 0], &pv].concat()),
                0x82,
            ),
            (
                "subscribe_no_filters",
                packet(0x82, &[&[0u8, 1][..], &pv].concat()),
                0x82,
            ),
            (
                "subscribe_packet_id_0",
                packet(0x82, &[&[0u8, 0][..], &pv, &s(b"t"), &[0]].concat()),
                0x82,
            ),
            (
                "subscribe_retain_handling_3",
                packet(0x82, &[&[0u8, 1][..], &pv, &s(b"t"), &[0x30]].concat()),
                if v == V5 { 0x82 } else { 0x81 },
            ),
            (
                "subscribe_qos_3",
                packet(0x82, &[&[0u8, 1][..], &pv, &s(b"t"), &[3]].concat()),
                0x82,
            ),
            (
                "subscribe_reserved_option_bits",
                packet(0x82, &[&[0u8, 1][..], &pv, &s(b"t"), &[0xC0]].concat()),
                0x81,
            ),
            (
                "subscribe_filter_missing_options",
                packet(0x82, &[&[0u8, 1][..], &pv, &s(b"t")].concat()),
                0x81,
            ),
            (
                "unsubscribe_no_filters",
                packet(0xA2, &[&[0u8, 1][..], &pv].concat()),
                0x82,
            ),
            (
                "unsubscribe_packet_id_0",
                packet(0xA2, &[&[0u8, 0][..], &pv, &s(b"t")].concat()),
                0x82,
            ),
            ("puback_too_short", packet(0x40, &[0]), 0x81),
            ("pingreq_with_body", packet(0xC0, &[0]), 0x81),
            (
                "publish_topic_length_beyond_packet",
                packet(0x30, &[0, 9, b'a']),
                0x81,
            ),
            ("publish_no_topic_length", packet(0x30, &[]), 0x81),
        ];
        for (what, bytes, code) in rows {
            out.push(refused(
                Case::new(format!("mqtt/{n}/{what}"), p, bytes).in_session(),
                v,
                code,
            ));
        }

        // Invalid topic filters: refused in SUBACK (5.0: 0x8F Topic Filter invalid; 3.1.1:
        // 0x80 Failure), the connection goes on.
        for filter in [
            &b"a/#/b"[..],
            b"a#",
            b"a/b+",
            b"+a",
            b"#/",
            b"",
            b"$share/g",
            b"$share//t",
            b"$share/g+/t",
        ] {
            let c = Case::new(
                format!(
                    "mqtt/{n}/subscribe_filter_{}",
                    String::from_utf8_lossy(filter)
                ),
                p,
                packet(0x82, &[&[0u8, 7][..], &pv, &s(filter), &[1]].concat()),
            )
            .in_session();
            out.push(c.open(&[if v == V5 {
                "SUBACK 7 [8f]"
            } else {
                "SUBACK 7 [80]"
            }]));
        }

        // Acknowledgements of nothing: ignored, or answered with "not found" (5.0).
        for (what, bytes, said) in [
            (
                "puback_unknown_id",
                packet(0x40, &[0, 42]),
                Vec::<String>::new(),
            ),
            ("pubcomp_unknown_id", packet(0x70, &[0, 42]), Vec::new()),
            (
                "pubrel_unknown_id",
                packet(0x62, &[0, 42]),
                vec![if v == V5 {
                    "PUBCOMP 42 0x92"
                } else {
                    "PUBCOMP 42 0x00"
                }
                .to_string()],
            ),
            (
                "pubrec_unknown_id",
                packet(0x50, &[0, 42]),
                vec![if v == V5 {
                    "PUBREL 42 0x92"
                } else {
                    "PUBREL 42 0x00"
                }
                .to_string()],
            ),
        ] {
            let said: Vec<&str> = said.iter().map(String::as_str).collect();
            out.push(
                Case::new(format!("mqtt/{n}/{what}"), p, bytes)
                    .in_session()
                    .open(&said),
            );
        }

        // Interleavings: a good QoS 1 PUBLISH and then garbage in the same write; a
        // PUBLISH split across writes; two PINGREQs in one write.
        let good = packet(0x32, &[&s(b"i/t")[..], &[0, 5], &pv, b"hi"].concat());
        // 5.0: no subscriber matched, so the PUBACK says 0x10 (No matching subscribers).
        let said_ack = if v == V5 {
            "PUBACK 5 0x10"
        } else {
            "PUBACK 5 0x00"
        };
        let c = Case::new(
            format!("mqtt/{n}/good_publish_then_reserved_type"),
            p,
            [&good[..], &[0x00, 0x00]].concat(),
        )
        .in_session();
        out.push(if v == V5 {
            c.closed(&[said_ack, "DISCONNECT 0x81"])
        } else {
            c.closed(&[said_ack])
        });
        let mut c = Case::new(
            format!("mqtt/{n}/publish_split_in_three"),
            p,
            good[..2].to_vec(),
        )
        .in_session();
        c = c
            .then(Duration::from_millis(30), good[2..5].to_vec())
            .then(Duration::from_millis(30), good[5..].to_vec());
        out.push(c.open(&[said_ack]));
        out.push(
            Case::new(
                format!("mqtt/{n}/two_pingreqs_one_write"),
                p,
                vec![0xC0, 0, 0xC0, 0],
            )
            .in_session()
            .open(&["PINGRESP", "PINGRESP"]),
        );

        // Slowloris: a CONNECT that never completes, and a socket that says nothing,
        // are closed by the connect timeout.
        out.push(
            Case::new(
                format!("mqtt/{n}/connect_never_completes"),
                p,
                full[..5].to_vec(),
            )
            .closed(&[]),
        );
        out.push(Case::new(format!("mqtt/{n}/silent_socket"), p, Vec::new()).closed(&[]));
        // HTTP and TLS on the MQTT port: the first byte is not CONNECT.
        out.push(
            Case::new(
                format!("mqtt/{n}/http_request"),
                p,
                b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            )
            .closed(&[]),
        );
        out.push(
            Case::new(
                format!("mqtt/{n}/tls_client_hello"),
                p,
                crate::tls_client_hello(),
            )
            .closed(&[]),
        );
    }

    // 5.0 properties: every identifier where it is not allowed is Malformed (§2.2.2.2);
    // those that may appear once are a Protocol Error twice.
    for (at, place) in PLACES {
        for id in 0u8..=0x30 {
            let Some(value) = property_value(id) else {
                if id % 4 == 0 || id == 0x30 {
                    // A sample of undefined identifiers.
                    out.push(v5_refused(
                        format!("mqtt/v5/{place}_undefined_property_{id:#04x}"),
                        at,
                        with_props(at, &[id, 0, 0, 0, 0]),
                        0x81,
                    ));
                }
                continue;
            };
            let once = [&[id][..], value].concat();
            if id == 0x0B && at == At::Publish {
                // [MQTT-3.3.4-6]: a Protocol Error, among the value rows below.
                continue;
            }
            if !allowed(id, at) {
                out.push(v5_refused(
                    format!("mqtt/v5/{place}_forbidden_property_{id:#04x}"),
                    at,
                    with_props(at, &once),
                    0x81,
                ));
            } else if id != 0x26 {
                out.push(v5_refused(
                    format!("mqtt/v5/{place}_property_{id:#04x}_twice"),
                    at,
                    with_props(at, &[&once[..], &once].concat()),
                    0x82,
                ));
            }
        }
        // A Property Length beyond the packet, and one that cuts a property.
        out.push(v5_refused(
            format!("mqtt/v5/{place}_property_length_beyond_packet"),
            at,
            props_length_beyond_packet(at),
            0x81,
        ));
        out.push(v5_refused(
            format!("mqtt/v5/{place}_property_cut"),
            at,
            with_props(at, &[0x26, 0, 5, b'k']),
            0x81,
        ));
    }
    // Values a property may not take.
    for (what, at, p, code) in [
        ("receive_maximum_0", At::Connect, &[0x21u8, 0, 0][..], 0x82),
        (
            "maximum_packet_size_0",
            At::Connect,
            &[0x27, 0, 0, 0, 0],
            0x82,
        ),
        (
            "request_problem_information_2",
            At::Connect,
            &[0x17, 2],
            0x82,
        ),
        (
            "request_response_information_2",
            At::Connect,
            &[0x19, 2],
            0x82,
        ),
        ("will_payload_format_2", At::Will, &[0x01, 2], 0x82),
        ("publish_payload_format_2", At::Publish, &[0x01, 2], 0x82),
        ("publish_topic_alias_0", At::Publish, &[0x23, 0, 0], 0x94),
        (
            "publish_topic_alias_above_maximum",
            At::Publish,
            &[0x23, 0xFF, 0xFF],
            0x94,
        ),
        (
            "publish_subscription_identifier",
            At::Publish,
            &[0x0B, 1],
            0x82,
        ),
        (
            "subscribe_subscription_identifier_0",
            At::Subscribe,
            &[0x0B, 0],
            0x82,
        ),
        (
            "subscribe_subscription_identifier_5_bytes",
            At::Subscribe,
            &[0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            0x81,
        ),
        (
            "user_property_bad_utf8",
            At::Publish,
            &[0x26, 0, 1, 0xFF, 0, 1, b'v'],
            0x81,
        ),
        (
            "content_type_bad_utf8",
            At::Publish,
            &[0x03, 0, 2, 0xC0, 0x80],
            0x81,
        ),
        (
            "response_topic_wildcard",
            At::Publish,
            &[0x08, 0, 1, b'#'],
            0x82,
        ),
    ] {
        out.push(v5_refused(
            format!("mqtt/v5/{what}"),
            at,
            with_props(at, p),
            code,
        ));
    }
    out
}

/// A `with_props(at, &[])` packet whose Property Length claims 100 bytes.
fn props_length_beyond_packet(at: At) -> Vec<u8> {
    let mut p = with_props(at, &[]);
    // The Property Length sits after the fixed header (2 bytes here) and the fields
    // before the properties.
    let at_byte = match at {
        At::Connect => 2 + 10,
        At::Will => 2 + 10 + 1 + 3,
        At::Publish | At::PubAck => 2 + 3,
        At::Subscribe | At::Unsubscribe => 2 + 2,
        At::Disconnect => 2 + 1,
    };
    p[at_byte] = 100;
    p
}
