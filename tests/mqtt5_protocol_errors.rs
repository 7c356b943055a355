//! MQTT 5.0 (OASIS Standard, 7 March 2019) "is a Protocol Error" and "is a Malformed
//! Packet" statements that a client can trigger against a server, checked end to end:
//! exact raw bytes on a TCP socket, the server's exact answer, then a fresh client must
//! still be served.
//!
//! Test names carry the spec statement: `mqtt_x_y_z_n_…` for a numbered normative
//! statement [MQTT-x.y.z-n]; `sec_x_y_z_…` for an unnumbered sentence of section x.y.z
//! (most "It is a Protocol Error to include the … more than once" sentences carry no
//! identifier). Cases already covered by `mqtt_malformed.rs` are not repeated here.
//!
//! Errors inside CONNECT: §4.13.1 lets the server send CONNACK with the reason code
//! ("MAY send a CONNACK") before closing; the tests accept either that CONNACK (with the
//! code the spec gives) or a plain close, and refuse anything else (a success CONNACK in
//! particular). Errors after CONNECT: the server MUST close, and sends DISCONNECT with
//! the reason code first (§4.13.1); the tests require that DISCONNECT.

mod common;

use common::*;
use dwbroker_codecs::mqtt::{Packet, ProtocolVersion};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// 0x81 Malformed Packet.
const MALFORMED: u8 = 0x81;
/// 0x82 Protocol Error.
const PROTOCOL_ERROR: u8 = 0x82;

/// Prepends a fixed header: `first` (type and flags) and a one-byte Remaining Length.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(body.len()).expect("short body");
    assert!(len < 0x80, "one-byte Remaining Length only");
    let mut v = vec![first, len];
    v.extend_from_slice(body);
    v
}

/// A v5 CONNECT body: "MQTT", level 5, `flags`, keep alive 60, then `rest` (Property
/// Length, properties and payload, written out by each test).
fn connect_body(flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, flags, 0x00, 0x3C];
    v.extend_from_slice(rest);
    v
}

/// Sends a CONNECT and checks it is refused: either CONNACK with `code` then close, or a
/// plain close. Then checks the broker still serves.
async fn connect_refused(body: Vec<u8>, code: u8) {
    let (_b, addr) = start().await;
    let mut raw = Raw::open(addr, V5).await;
    raw.send(&frame(0x10, &body)).await;
    match raw.recv().await {
        None => {}
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.code.0, code, "CONNACK reason {a:?}");
            raw.expect_closed().await;
        }
        Some(other) => panic!("expected CONNACK 0x{code:02x} or close, got {other:?}"),
    }
    assert_broker_serves(addr).await;
}

/// Connects a v5 client, sends `bytes`, expects DISCONNECT with `code` and a close, then
/// checks the broker still serves.
async fn disconnected(bytes: Vec<u8>, code: u8) {
    let (_b, addr) = start().await;
    let (mut raw, _) = Raw::connected(addr, connect(V5, &format!("pe-{}", rand_suffix()))).await;
    raw.send(&bytes).await;
    raw.expect_disconnect(code).await;
    assert_broker_serves(addr).await;
}

// ---------------------------------------------------------------------------------------
// Controls: the same framing with each property once is accepted, so the refusals below
// are due to the rule each test names and not to a mistake in the bytes.
// ---------------------------------------------------------------------------------------

/// Sends a CONNECT and expects a success CONNACK.
async fn connect_accepted(addr: std::net::SocketAddr, body: Vec<u8>) -> Raw {
    let mut raw = Raw::open(addr, V5).await;
    raw.send(&frame(0x10, &body)).await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code.0, 0x00, "{body:02x?}: {a:?}"),
        other => panic!("{body:02x?}: expected CONNACK 0x00, got {other:?}"),
    }
    raw
}

/// Sends `bytes` then PINGREQ and expects PINGRESP: `bytes` was accepted.
async fn accepted(raw: &mut Raw, bytes: &[u8]) {
    raw.send(bytes).await;
    raw.send(&[0xC0, 0x00]).await;
    loop {
        match raw.recv().await {
            Some(Packet::PingResp) => return,
            Some(Packet::Publish(_) | Packet::SubAck(_) | Packet::UnsubAck(_)) => {}
            other => panic!("{bytes:02x?}: expected PINGRESP, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn control_single_properties_are_accepted() {
    let (_b, addr) = start().await;
    for rest in [
        &[0x00, 0x00, 0x01, b'c'][..],
        &[0x05, 0x11, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x01, b'c'],
        &[0x03, 0x21, 0x00, 0x0A, 0x00, 0x01, b'c'],
        &[0x05, 0x27, 0x00, 0x00, 0x10, 0x00, 0x00, 0x01, b'c'],
        &[0x03, 0x22, 0x00, 0x05, 0x00, 0x01, b'c'],
        &[0x02, 0x19, 0x01, 0x00, 0x01, b'c'],
        &[0x02, 0x17, 0x01, 0x00, 0x01, b'c'],
    ] {
        connect_accepted(addr, connect_body(0x02, rest)).await;
    }
    for will in [
        &[0x00][..],
        &[0x05, 0x18, 0x00, 0x00, 0x00, 0x05],
        &[0x02, 0x01, 0x01],
        &[0x05, 0x02, 0x00, 0x00, 0x00, 0x05],
        &[0x04, 0x03, 0x00, 0x01, b't'],
        &[0x04, 0x08, 0x00, 0x01, b'r'],
        &[0x04, 0x09, 0x00, 0x01, b'k'],
    ] {
        connect_accepted(addr, will_connect(will)).await;
    }
    let mut raw = connect_accepted(addr, connect_body(0x02, &[0x00, 0x00, 0x01, b'c'])).await;
    for props in [
        &[0x00][..],
        &[0x02, 0x01, 0x00],
        &[0x05, 0x02, 0x00, 0x00, 0x00, 0x0A],
        &[0x03, 0x23, 0x00, 0x01],
        &[0x04, 0x08, 0x00, 0x01, b'r'],
        &[0x04, 0x09, 0x00, 0x01, b'k'],
        &[0x04, 0x03, 0x00, 0x01, b't'],
    ] {
        accepted(&mut raw, &publish(props)).await;
    }
    // PUBACK / PUBREL with one Reason String (unknown Packet Identifier 1: PUBREL gets
    // PUBCOMP 0x92, PUBACK is ignored).
    accepted(
        &mut raw,
        &[0x40, 0x08, 0x00, 0x01, 0x00, 0x04, 0x1F, 0x00, 0x01, b'a'],
    )
    .await;
    raw.send(&[0x62, 0x08, 0x00, 0x01, 0x00, 0x04, 0x1F, 0x00, 0x01, b'a'])
        .await;
    assert!(matches!(raw.recv().await, Some(Packet::PubComp(_))));
    // SUBSCRIBE with options 0x00 and one Subscription Identifier; UNSUBSCRIBE "a".
    accepted(
        &mut raw,
        &[
            0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, b'a', 0x00,
        ],
    )
    .await;
    accepted(&mut raw, &[0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a']).await;
    // DISCONNECT with one Reason String: a normal close, no DISCONNECT back.
    raw.send(&[0xE0, 0x06, 0x00, 0x04, 0x1F, 0x00, 0x01, b'a'])
        .await;
    raw.expect_closed().await;
}

// ---------------------------------------------------------------------------------------
// CONNECT (§3.1)
// ---------------------------------------------------------------------------------------

/// [MQTT-3.1.2-3] "The Server MUST validate that the reserved flag in the CONNECT packet
/// is set to 0 [MQTT-3.1.2-3]. If the reserved flag is not 0 it is a Malformed Packet."
#[tokio::test]
async fn mqtt_3_1_2_3_connect_reserved_flag_is_malformed() {
    // flags 0x03 = Clean Start | reserved bit 0; Property Length 0; Client Id "c".
    connect_refused(connect_body(0x03, &[0x00, 0x00, 0x01, b'c']), MALFORMED).await;
}

/// [MQTT-3.1.2-11] "If the Will Flag is set to 0, then the Will QoS MUST be set to 0."
/// (§3.1.2.6; a violation is a malformed CONNECT, §4.13.1.)
#[tokio::test]
async fn mqtt_3_1_2_11_will_qos_without_will_flag_is_malformed() {
    // flags 0x0A = Clean Start | Will QoS 1, Will Flag 0.
    connect_refused(connect_body(0x0A, &[0x00, 0x00, 0x01, b'c']), MALFORMED).await;
}

/// [MQTT-3.1.2-12] "If the Will Flag is set to 1, the value of Will QoS can be 0 (0x00),
/// 1 (0x01), or 2 (0x02) [MQTT-3.1.2-12]. A value of 3 (0x03) is a Malformed Packet."
#[tokio::test]
async fn mqtt_3_1_2_12_will_qos_3_is_malformed() {
    // flags 0x1E = Clean Start | Will Flag | Will QoS 3.
    connect_refused(
        connect_body(
            0x1E,
            &[
                0x00, // Property Length 0
                0x00, 0x01, b'c', // Client Id "c"
                0x00, // Will Property Length 0
                0x00, 0x01, b'w', // Will Topic "w"
                0x00, 0x01, b'x', // Will Payload "x"
            ],
        ),
        MALFORMED,
    )
    .await;
}

/// [MQTT-3.1.2-13] "If the Will Flag is set to 0, then Will Retain MUST be set to 0."
#[tokio::test]
async fn mqtt_3_1_2_13_will_retain_without_will_flag_is_malformed() {
    // flags 0x22 = Clean Start | Will Retain, Will Flag 0.
    connect_refused(connect_body(0x22, &[0x00, 0x00, 0x01, b'c']), MALFORMED).await;
}

/// [MQTT-3.1.2-17] "If the User Name Flag is set to 1, a User Name MUST be present in the
/// Payload." Missing, the packet runs short: Malformed (§4.13.1).
#[tokio::test]
async fn mqtt_3_1_2_17_user_name_flag_without_user_name_is_malformed() {
    // flags 0x82 = Clean Start | User Name Flag; payload has only the Client Id.
    connect_refused(connect_body(0x82, &[0x00, 0x00, 0x01, b'c']), MALFORMED).await;
}

/// [MQTT-3.1.2-18] "If the Password Flag is set to 0, a Password MUST NOT be present in
/// the Payload." Extra bytes after the last field: Malformed.
#[tokio::test]
async fn mqtt_3_1_2_18_password_without_password_flag_is_malformed() {
    connect_refused(
        connect_body(
            0x02, // Clean Start only
            &[
                0x00, // Property Length 0
                0x00, 0x01, b'c', // Client Id "c"
                0x00, 0x02, b'p', b'w', // a Password the flags do not announce
            ],
        ),
        MALFORMED,
    )
    .await;
}

/// [MQTT-3.1.2-19] "If the Password Flag is set to 1, a Password MUST be present in the
/// Payload."
#[tokio::test]
async fn mqtt_3_1_2_19_password_flag_without_password_is_malformed() {
    // flags 0x42 = Clean Start | Password Flag; payload has only the Client Id.
    connect_refused(connect_body(0x42, &[0x00, 0x00, 0x01, b'c']), MALFORMED).await;
}

/// [MQTT-1.5.4-2] "A UTF-8 Encoded String MUST NOT include an encoding of the null
/// character U+0000. If a receiver (Server or Client) receives an MQTT Control Packet
/// containing U+0000 it is a Malformed Packet." Here in the Client Identifier.
#[tokio::test]
async fn mqtt_1_5_4_2_null_in_client_id_is_malformed() {
    connect_refused(
        connect_body(0x02, &[0x00, 0x00, 0x02, b'c', 0x00]),
        MALFORMED,
    )
    .await;
}

/// [MQTT-1.5.4-1] "The character data in a UTF-8 Encoded String MUST be well-formed
/// UTF-8 … If the Client or Server receives an MQTT Control Packet containing ill-formed
/// UTF-8 it is a Malformed Packet." Here a UTF-16 surrogate (ED A0 80) in the Client Id.
#[tokio::test]
async fn mqtt_1_5_4_1_surrogate_in_client_id_is_malformed() {
    connect_refused(
        connect_body(0x02, &[0x00, 0x00, 0x03, 0xED, 0xA0, 0x80]),
        MALFORMED,
    )
    .await;
}

/// [MQTT-1.5.5-1] "The encoded value MUST use the minimum number of bytes necessary to
/// represent the value." A Property Length of 0 written as 0x80 0x00.
#[tokio::test]
async fn mqtt_1_5_5_1_non_minimal_property_length_in_connect_is_malformed() {
    connect_refused(
        connect_body(0x02, &[0x80, 0x00, 0x00, 0x01, b'c']),
        MALFORMED,
    )
    .await;
}

/// §2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its
/// packet type, or contains a value not of the specified data type, is a Malformed
/// Packet." Topic Alias (0x23) is a PUBLISH property.
#[tokio::test]
async fn sec_2_2_2_2_publish_property_in_connect_is_malformed() {
    connect_refused(
        connect_body(
            0x02,
            &[0x03, 0x23, 0x00, 0x01, 0x00, 0x01, b'c'], // Topic Alias 1; Client Id "c"
        ),
        MALFORMED,
    )
    .await;
}

/// §2.2.2.2: an Identifier no packet type defines (0x7F) is not valid for CONNECT.
#[tokio::test]
async fn sec_2_2_2_2_unknown_property_in_connect_is_malformed() {
    connect_refused(
        connect_body(0x02, &[0x02, 0x7F, 0x00, 0x00, 0x01, b'c']),
        MALFORMED,
    )
    .await;
}

/// §3.1.2.11.2: "It is a Protocol Error to include the Session Expiry Interval more than
/// once."
#[tokio::test]
async fn sec_3_1_2_11_2_session_expiry_interval_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[
                0x0A, // Property Length 10
                0x11, 0x00, 0x00, 0x00, 0x0A, // Session Expiry Interval 10
                0x11, 0x00, 0x00, 0x00, 0x0A, // Session Expiry Interval 10, again
                0x00, 0x01, b'c',
            ],
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.3: "It is a Protocol Error to include the Receive Maximum value more than
/// once or for it to have the value 0." — the value 0.
#[tokio::test]
async fn sec_3_1_2_11_3_receive_maximum_zero_is_a_protocol_error() {
    connect_refused(
        connect_body(0x02, &[0x03, 0x21, 0x00, 0x00, 0x00, 0x01, b'c']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.3 — Receive Maximum twice.
#[tokio::test]
async fn sec_3_1_2_11_3_receive_maximum_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[
                0x06, // Property Length 6
                0x21, 0x00, 0x0A, // Receive Maximum 10
                0x21, 0x00, 0x0A, // again
                0x00, 0x01, b'c',
            ],
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.4: "It is a Protocol Error to include the Maximum Packet Size more than
/// once, or for the value to be set to zero." — the value 0.
#[tokio::test]
async fn sec_3_1_2_11_4_maximum_packet_size_zero_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[0x05, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'c'],
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.4 — Maximum Packet Size twice.
#[tokio::test]
async fn sec_3_1_2_11_4_maximum_packet_size_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[
                0x0A, // Property Length 10
                0x27, 0x00, 0x00, 0x10, 0x00, // Maximum Packet Size 4096
                0x27, 0x00, 0x00, 0x10, 0x00, // again
                0x00, 0x01, b'c',
            ],
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.5: "It is a Protocol Error to include the Topic Alias Maximum value more than
/// once."
#[tokio::test]
async fn sec_3_1_2_11_5_topic_alias_maximum_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[0x06, 0x22, 0x00, 0x05, 0x22, 0x00, 0x05, 0x00, 0x01, b'c'],
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.6: "It is Protocol Error to include the Request Response Information more
/// than once, or to have a value other than 0 or 1." — the value 2.
#[tokio::test]
async fn sec_3_1_2_11_6_request_response_information_2_is_a_protocol_error() {
    connect_refused(
        connect_body(0x02, &[0x02, 0x19, 0x02, 0x00, 0x01, b'c']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.6 — Request Response Information twice.
#[tokio::test]
async fn sec_3_1_2_11_6_request_response_information_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(0x02, &[0x04, 0x19, 0x01, 0x19, 0x01, 0x00, 0x01, b'c']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.7: "It is a Protocol Error to include Request Problem Information more than
/// once, or to have a value other than 0 or 1." — the value 2.
#[tokio::test]
async fn sec_3_1_2_11_7_request_problem_information_2_is_a_protocol_error() {
    connect_refused(
        connect_body(0x02, &[0x02, 0x17, 0x02, 0x00, 0x01, b'c']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.7 — Request Problem Information twice.
#[tokio::test]
async fn sec_3_1_2_11_7_request_problem_information_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(0x02, &[0x04, 0x17, 0x01, 0x17, 0x01, 0x00, 0x01, b'c']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.9: "It is a Protocol Error to include Authentication Method more than once."
#[tokio::test]
async fn sec_3_1_2_11_9_authentication_method_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[
                0x08, // Property Length 8
                0x15, 0x00, 0x01, b'm', // Authentication Method "m"
                0x15, 0x00, 0x01, b'm', // again
                0x00, 0x01, b'c',
            ],
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there is no
/// Authentication Method."
#[tokio::test]
async fn sec_3_1_2_11_10_authentication_data_without_method_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[0x04, 0x16, 0x00, 0x01, b'd', 0x00, 0x01, b'c'], // Authentication Data "d"
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.2.11.10: "It is a Protocol Error to include Authentication Data more than once."
#[tokio::test]
async fn sec_3_1_2_11_10_authentication_data_twice_is_a_protocol_error() {
    connect_refused(
        connect_body(
            0x02,
            &[
                0x0C, // Property Length 12
                0x15, 0x00, 0x01, b'm', // Authentication Method "m"
                0x16, 0x00, 0x01, b'd', // Authentication Data "d"
                0x16, 0x00, 0x01, b'd', // again
                0x00, 0x01, b'c',
            ],
        ),
        PROTOCOL_ERROR,
    )
    .await;
}

/// A CONNECT with a Will (flags 0x06 = Clean Start | Will Flag, Will QoS 0) carrying the
/// given Will Properties (with their Property Length), Will Topic "w", payload "x".
fn will_connect(will_props: &[u8]) -> Vec<u8> {
    let mut rest = vec![0x00, 0x00, 0x01, b'c']; // Property Length 0; Client Id "c"
    rest.extend_from_slice(will_props);
    rest.extend_from_slice(&[0x00, 0x01, b'w', 0x00, 0x01, b'x']);
    connect_body(0x06, &rest)
}

/// §3.1.3.2.2: "It is a Protocol Error to include the Will Delay Interval more than once."
#[tokio::test]
async fn sec_3_1_3_2_2_will_delay_interval_twice_is_a_protocol_error() {
    connect_refused(
        will_connect(&[
            0x0A, // Will Property Length 10
            0x18, 0x00, 0x00, 0x00, 0x05, // Will Delay Interval 5
            0x18, 0x00, 0x00, 0x00, 0x05, // again
        ]),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.3.2.3: "It is a Protocol Error to include the Payload Format Indicator more than
/// once."
#[tokio::test]
async fn sec_3_1_3_2_3_will_payload_format_indicator_twice_is_a_protocol_error() {
    connect_refused(
        will_connect(&[0x04, 0x01, 0x01, 0x01, 0x01]),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.3.2.4: "It is a Protocol Error to include the Message Expiry Interval more than
/// once."
#[tokio::test]
async fn sec_3_1_3_2_4_will_message_expiry_interval_twice_is_a_protocol_error() {
    connect_refused(
        will_connect(&[
            0x0A, 0x02, 0x00, 0x00, 0x00, 0x05, 0x02, 0x00, 0x00, 0x00, 0x05,
        ]),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.3.2.5: "It is a Protocol Error to include the Content Type more than once."
#[tokio::test]
async fn sec_3_1_3_2_5_will_content_type_twice_is_a_protocol_error() {
    connect_refused(
        will_connect(&[0x08, 0x03, 0x00, 0x01, b't', 0x03, 0x00, 0x01, b't']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.3.2.6: "It is a Protocol Error to include the Response Topic more than once."
#[tokio::test]
async fn sec_3_1_3_2_6_will_response_topic_twice_is_a_protocol_error() {
    connect_refused(
        will_connect(&[0x08, 0x08, 0x00, 0x01, b'r', 0x08, 0x00, 0x01, b'r']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.1.3.2.7: "It is a Protocol Error to include Correlation Data more than once."
#[tokio::test]
async fn sec_3_1_3_2_7_will_correlation_data_twice_is_a_protocol_error() {
    connect_refused(
        will_connect(&[0x08, 0x09, 0x00, 0x01, b'k', 0x09, 0x00, 0x01, b'k']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §2.2.2.2 in the Will Properties: Session Expiry Interval (0x11) is not a Will Property.
#[tokio::test]
async fn sec_2_2_2_2_session_expiry_in_will_properties_is_malformed() {
    connect_refused(
        will_connect(&[0x05, 0x11, 0x00, 0x00, 0x00, 0x05]),
        MALFORMED,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// PUBLISH (§3.3) — QoS 0 to topic "a": 0x30, then 00 01 'a', Property Length, properties.
// ---------------------------------------------------------------------------------------

/// A QoS 0 PUBLISH to "a" with the given Property Length and properties, payload "x".
fn publish(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, b'a'];
    body.extend_from_slice(props);
    body.push(b'x');
    frame(0x30, &body)
}

/// §3.3.2.3.2: "It is a Protocol Error to include the Payload Format Indicator more than
/// once."
#[tokio::test]
async fn sec_3_3_2_3_2_publish_payload_format_indicator_twice_is_a_protocol_error() {
    disconnected(publish(&[0x04, 0x01, 0x00, 0x01, 0x00]), PROTOCOL_ERROR).await;
}

/// §3.3.2.3.3: "It is a Protocol Error to include the Message Expiry Interval more than
/// once."
#[tokio::test]
async fn sec_3_3_2_3_3_publish_message_expiry_interval_twice_is_a_protocol_error() {
    disconnected(
        publish(&[
            0x0A, 0x02, 0x00, 0x00, 0x00, 0x0A, 0x02, 0x00, 0x00, 0x00, 0x0A,
        ]),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.3.2.3.4: "It is a Protocol Error to include the Topic Alias value more than once."
#[tokio::test]
async fn sec_3_3_2_3_4_publish_topic_alias_twice_is_a_protocol_error() {
    disconnected(
        publish(&[0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x01]),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.3.2.3.5: "It is a Protocol Error to include the Response Topic more than once."
#[tokio::test]
async fn sec_3_3_2_3_5_publish_response_topic_twice_is_a_protocol_error() {
    disconnected(
        publish(&[0x08, 0x08, 0x00, 0x01, b'r', 0x08, 0x00, 0x01, b'r']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.3.2.3.6: "It is a Protocol Error to include Correlation Data more than once."
#[tokio::test]
async fn sec_3_3_2_3_6_publish_correlation_data_twice_is_a_protocol_error() {
    disconnected(
        publish(&[0x08, 0x09, 0x00, 0x01, b'k', 0x09, 0x00, 0x01, b'k']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.3.2.3.9: "It is a Protocol Error to include the Content Type more than once."
#[tokio::test]
async fn sec_3_3_2_3_9_publish_content_type_twice_is_a_protocol_error() {
    disconnected(
        publish(&[0x08, 0x03, 0x00, 0x01, b't', 0x03, 0x00, 0x01, b't']),
        PROTOCOL_ERROR,
    )
    .await;
}

/// §2.2.2.2: Session Expiry Interval (0x11) is not valid in PUBLISH: Malformed.
#[tokio::test]
async fn sec_2_2_2_2_connect_property_in_publish_is_malformed() {
    disconnected(publish(&[0x05, 0x11, 0x00, 0x00, 0x00, 0x0A]), MALFORMED).await;
}

/// §2.2.2.2: an unknown property Identifier (0x7F) in PUBLISH: Malformed.
#[tokio::test]
async fn sec_2_2_2_2_unknown_property_in_publish_is_malformed() {
    disconnected(publish(&[0x01, 0x7F]), MALFORMED).await;
}

/// [MQTT-1.5.5-1] in a Property Length: 0 written as 0x80 0x00.
#[tokio::test]
async fn mqtt_1_5_5_1_non_minimal_property_length_in_publish_is_malformed() {
    disconnected(publish(&[0x80, 0x00]), MALFORMED).await;
}

/// §4.13.1 / §2.2.2.1: a Property Length running past the Remaining Length is Malformed
/// ("data in the packet … does not conform with this specification").
#[tokio::test]
async fn sec_2_2_2_1_property_length_beyond_packet_is_malformed() {
    // 30 05 | 00 01 'a' | Property Length 9 | one byte: the properties overrun.
    disconnected(vec![0x30, 0x05, 0x00, 0x01, b'a', 0x09, 0x01], MALFORMED).await;
}

/// §4.13.1: a Topic Name length running past the Remaining Length is Malformed.
#[tokio::test]
async fn sec_4_13_1_topic_length_beyond_packet_is_malformed() {
    // 30 03 | topic length 5 but only one byte follows.
    disconnected(vec![0x30, 0x03, 0x00, 0x05, b'a'], MALFORMED).await;
}

/// [MQTT-1.5.4-1] ill-formed UTF-8 (a UTF-16 surrogate, ED A0 80) in a Topic Name.
#[tokio::test]
async fn mqtt_1_5_4_1_surrogate_in_topic_name_is_malformed() {
    disconnected(
        vec![0x30, 0x06, 0x00, 0x03, 0xED, 0xA0, 0x80, 0x00],
        MALFORMED,
    )
    .await;
}

/// [MQTT-3.3.1-2] "The DUP flag MUST be set to 0 for all QoS 0 messages." PUBLISH flags
/// are checked like other fixed-header flags ([MQTT-2.1.3-1]: Malformed).
#[tokio::test]
async fn mqtt_3_3_1_2_dup_on_qos0_is_malformed() {
    // 0x38 = PUBLISH, DUP 1, QoS 0.
    disconnected(vec![0x38, 0x04, 0x00, 0x01, b'a', 0x00], MALFORMED).await;
}

// ---------------------------------------------------------------------------------------
// PUBACK / PUBREC / PUBREL / PUBCOMP (§3.4–§3.7)
// ---------------------------------------------------------------------------------------

/// [MQTT-3.6.1-1] "Bits 3,2,1 and 0 of the Fixed Header in the PUBREL packet are reserved
/// and MUST be set to 0,0,1 and 0 respectively. The Server MUST treat any other value as
/// malformed and close the Network Connection."
#[tokio::test]
async fn mqtt_3_6_1_1_pubrel_with_wrong_flags_is_malformed() {
    // 0x60 = PUBREL with flags 0000 (must be 0010); Packet Identifier 1.
    disconnected(vec![0x60, 0x02, 0x00, 0x01], MALFORMED).await;
}

/// [MQTT-2.1.3-1] reserved flags of PUBACK, PUBREC and PUBCOMP must be 0000: "If invalid
/// flags are received it is a Malformed Packet."
#[tokio::test]
async fn mqtt_2_1_3_1_puback_with_wrong_flags_is_malformed() {
    disconnected(vec![0x41, 0x02, 0x00, 0x01], MALFORMED).await;
}

/// [MQTT-2.1.3-1] for PUBREC.
#[tokio::test]
async fn mqtt_2_1_3_1_pubrec_with_wrong_flags_is_malformed() {
    disconnected(vec![0x52, 0x02, 0x00, 0x01], MALFORMED).await;
}

/// [MQTT-2.1.3-1] for PUBCOMP.
#[tokio::test]
async fn mqtt_2_1_3_1_pubcomp_with_wrong_flags_is_malformed() {
    disconnected(vec![0x72, 0x02, 0x00, 0x01], MALFORMED).await;
}

/// §3.4.2.2.2: "It is a Protocol Error to include the Reason String more than once."
#[tokio::test]
async fn sec_3_4_2_2_2_puback_reason_string_twice_is_a_protocol_error() {
    // 40 0C | Packet Id 1 | reason 0x00 | Property Length 8 | 1F "a" | 1F "a".
    disconnected(
        vec![
            0x40, 0x0C, 0x00, 0x01, 0x00, 0x08, 0x1F, 0x00, 0x01, b'a', 0x1F, 0x00, 0x01, b'a',
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.6.2.2.2: "It is a Protocol Error to include the Reason String more than once."
#[tokio::test]
async fn sec_3_6_2_2_2_pubrel_reason_string_twice_is_a_protocol_error() {
    disconnected(
        vec![
            0x62, 0x0C, 0x00, 0x01, 0x00, 0x08, 0x1F, 0x00, 0x01, b'a', 0x1F, 0x00, 0x01, b'a',
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §2.2.2.2: Payload Format Indicator (0x01) is not valid in PUBACK: Malformed.
#[tokio::test]
async fn sec_2_2_2_2_publish_property_in_puback_is_malformed() {
    disconnected(
        vec![0x40, 0x06, 0x00, 0x01, 0x00, 0x02, 0x01, 0x00],
        MALFORMED,
    )
    .await;
}

/// §4.13.1: a PUBACK too short to hold its Packet Identifier is Malformed.
#[tokio::test]
async fn sec_4_13_1_truncated_puback_is_malformed() {
    disconnected(vec![0x40, 0x01, 0x00], MALFORMED).await;
}

// ---------------------------------------------------------------------------------------
// SUBSCRIBE (§3.8) — 0x82, Packet Id 00 01, Property Length, then filter "a" + options.
// ---------------------------------------------------------------------------------------

/// [MQTT-3.8.3-5] "The Server MUST treat a SUBSCRIBE packet as malformed if any of
/// Reserved bits in the Payload are non-zero."
#[tokio::test]
async fn mqtt_3_8_3_5_subscribe_reserved_option_bits_are_malformed() {
    // Options 0xC0: reserved bits 7 and 6 set, QoS 0.
    disconnected(
        vec![0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0xC0],
        MALFORMED,
    )
    .await;
}

/// §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
#[tokio::test]
async fn sec_3_8_3_1_subscribe_maximum_qos_3_is_a_protocol_error() {
    disconnected(
        vec![0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
#[tokio::test]
async fn sec_3_8_3_1_subscribe_retain_handling_3_is_a_protocol_error() {
    disconnected(
        vec![0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.8.2.1.2: "The Subscription Identifier can have the value of 1 to 268,435,455. It is
/// a Protocol Error if the Subscription Identifier has a value of 0."
#[tokio::test]
async fn sec_3_8_2_1_2_subscription_identifier_0_is_a_protocol_error() {
    // Property Length 2: 0B 00.
    disconnected(
        vec![
            0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, b'a', 0x00,
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.8.2.1.2: "It is a Protocol Error to include the Subscription Identifier more than
/// once."
#[tokio::test]
async fn sec_3_8_2_1_2_subscription_identifier_twice_is_a_protocol_error() {
    // Property Length 4: 0B 01 | 0B 02.
    disconnected(
        vec![
            0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b'a', 0x00,
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// [MQTT-2.2.1-3] "Each time a Client sends a new SUBSCRIBE, UNSUBSCRIBE, or PUBLISH
/// (where QoS > 0) MQTT Control Packet it MUST assign it a non-zero Packet Identifier".
/// (§2.2.1: "SUBSCRIBE, UNSUBSCRIBE, and PUBLISH (in cases where QoS > 0) Control Packets
/// MUST contain a non-zero 16-bit Packet Identifier.") SUBSCRIBE with Packet Id 0.
#[tokio::test]
async fn mqtt_2_2_1_3_subscribe_packet_id_0_is_a_protocol_error() {
    disconnected(
        vec![0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §2.2.2.2: Topic Alias (0x23) is not valid in SUBSCRIBE: Malformed.
#[tokio::test]
async fn sec_2_2_2_2_topic_alias_in_subscribe_is_malformed() {
    disconnected(
        vec![
            0x82, 0x0A, 0x00, 0x01, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, b'a', 0x00,
        ],
        MALFORMED,
    )
    .await;
}

/// [MQTT-1.5.4-1] ill-formed UTF-8 in a Topic Filter (0xFF never occurs in UTF-8).
#[tokio::test]
async fn mqtt_1_5_4_1_invalid_utf8_topic_filter_is_malformed() {
    disconnected(
        vec![0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0xFF, 0x00],
        MALFORMED,
    )
    .await;
}

/// §4.13.1: a SUBSCRIBE filter with no Subscription Options byte runs short: Malformed.
#[tokio::test]
async fn sec_4_13_1_subscribe_filter_without_options_is_malformed() {
    disconnected(
        vec![0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a'],
        MALFORMED,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// UNSUBSCRIBE (§3.10) — 0xA2, Packet Id, Property Length, filters.
// ---------------------------------------------------------------------------------------

/// [MQTT-3.10.1-1] "Bits 3,2,1 and 0 of the Fixed Header of the UNSUBSCRIBE packet are
/// reserved and MUST be set to 0,0,1 and 0 respectively. The Server MUST treat any other
/// value as malformed and close the Network Connection."
#[tokio::test]
async fn mqtt_3_10_1_1_unsubscribe_with_wrong_flags_is_malformed() {
    disconnected(
        vec![0xA0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a'],
        MALFORMED,
    )
    .await;
}

/// [MQTT-3.10.3-2] "The Payload of an UNSUBSCRIBE packet MUST contain at least one Topic
/// Filter." (§3.10.3: "An UNSUBSCRIBE packet with no Payload is a Protocol Error.")
#[tokio::test]
async fn mqtt_3_10_3_2_unsubscribe_without_filters_is_a_protocol_error() {
    disconnected(vec![0xA2, 0x03, 0x00, 0x01, 0x00], PROTOCOL_ERROR).await;
}

/// [MQTT-2.2.1-3] UNSUBSCRIBE with Packet Identifier 0.
#[tokio::test]
async fn mqtt_2_2_1_3_unsubscribe_packet_id_0_is_a_protocol_error() {
    disconnected(
        vec![0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, b'a'],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §2.2.2.2: Subscription Identifier (0x0B) is not valid in UNSUBSCRIBE: Malformed.
#[tokio::test]
async fn sec_2_2_2_2_subscription_identifier_in_unsubscribe_is_malformed() {
    disconnected(
        vec![0xA2, 0x08, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, b'a'],
        MALFORMED,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// PINGREQ (§3.12)
// ---------------------------------------------------------------------------------------

/// [MQTT-2.1.3-1] PINGREQ flags are reserved 0000: 0xC1 is Malformed.
#[tokio::test]
async fn mqtt_2_1_3_1_pingreq_with_wrong_flags_is_malformed() {
    disconnected(vec![0xC1, 0x00], MALFORMED).await;
}

/// §3.12.2/§3.12.3: "The PINGREQ packet has no Variable Header" / "no Payload": a byte
/// after the fixed header is Malformed (§4.13.1).
#[tokio::test]
async fn sec_3_12_pingreq_with_a_body_is_malformed() {
    disconnected(vec![0xC0, 0x01, 0x00], MALFORMED).await;
}

// ---------------------------------------------------------------------------------------
// DISCONNECT (§3.14) — 0xE0, Reason Code, Property Length, properties.
// ---------------------------------------------------------------------------------------

/// [MQTT-3.14.1-1] "The Client or Server MUST validate that reserved bits are set to 0. If
/// they are not zero it sends a DISCONNECT packet with a Reason code of 0x81 (Malformed
/// Packet)."
#[tokio::test]
async fn mqtt_3_14_1_1_disconnect_reserved_flags_are_malformed() {
    disconnected(vec![0xE1, 0x00], MALFORMED).await;
}

/// §3.14.2.2.2: "It is a Protocol Error to include the Session Expiry Interval more than
/// once."
#[tokio::test]
async fn sec_3_14_2_2_2_disconnect_session_expiry_twice_is_a_protocol_error() {
    // Reason 0x00 | Property Length 10 | 11 00000000 | 11 00000000.
    disconnected(
        vec![
            0xE0, 0x0C, 0x00, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00,
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.14.2.2.3: "It is a Protocol Error to include the Reason String more than once."
#[tokio::test]
async fn sec_3_14_2_2_3_disconnect_reason_string_twice_is_a_protocol_error() {
    disconnected(
        vec![
            0xE0, 0x0A, 0x00, 0x08, 0x1F, 0x00, 0x01, b'a', 0x1F, 0x00, 0x01, b'a',
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.14.2.2.5: "It is a Protocol Error to include the Server Reference more than once."
#[tokio::test]
async fn sec_3_14_2_2_5_disconnect_server_reference_twice_is_a_protocol_error() {
    disconnected(
        vec![
            0xE0, 0x0A, 0x00, 0x08, 0x1C, 0x00, 0x01, b'a', 0x1C, 0x00, 0x01, b'a',
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §2.2.2.2: Payload Format Indicator (0x01) is not valid in DISCONNECT: Malformed.
#[tokio::test]
async fn sec_2_2_2_2_publish_property_in_disconnect_is_malformed() {
    disconnected(vec![0xE0, 0x04, 0x00, 0x02, 0x01, 0x00], MALFORMED).await;
}

// ---------------------------------------------------------------------------------------
// AUTH (§3.15) — the test client's CONNECT has no Authentication Method.
// ---------------------------------------------------------------------------------------

/// [MQTT-3.15.1-1] "Bits 3,2,1 and 0 of the Fixed Header of the AUTH packet are reserved
/// and MUST all be set to 0. The Client or Server MUST treat any other value as malformed
/// and close the Network Connection."
#[tokio::test]
async fn mqtt_3_15_1_1_auth_reserved_flags_are_malformed() {
    // 0xF1: AUTH with flags 0001; reason 0x18 Continue authentication, Property Length 0.
    disconnected(vec![0xF1, 0x02, 0x18, 0x00], MALFORMED).await;
}

/// §4.12: "If the Client does not include an Authentication Method in the CONNECT, the
/// Client MUST NOT send an AUTH packet to the Server" (statement id not checked); the broker
/// answers it as a Protocol Error (§4.13.2).
#[tokio::test]
async fn sec_4_12_auth_without_authentication_method_is_a_protocol_error() {
    // AUTH, reason 0x18, Property Length 4, Authentication Method "m".
    disconnected(
        vec![0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, b'm'],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §3.15.2.2.2: "It is a Protocol Error to include Authentication Method more than once."
#[tokio::test]
async fn sec_3_15_2_2_2_auth_method_twice_is_a_protocol_error() {
    disconnected(
        vec![
            0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00, 0x01, b'm', 0x15, 0x00, 0x01, b'm',
        ],
        PROTOCOL_ERROR,
    )
    .await;
}

/// §2.2.2.2: Topic Alias (0x23) is not valid in AUTH: Malformed.
#[tokio::test]
async fn sec_2_2_2_2_topic_alias_in_auth_is_malformed() {
    disconnected(vec![0xF0, 0x05, 0x18, 0x03, 0x23, 0x00, 0x01], MALFORMED).await;
}

// ---------------------------------------------------------------------------------------
// Fixed header (§2.1)
// ---------------------------------------------------------------------------------------

/// §2.1.2: packet type 0 is "Reserved — Forbidden"; receiving it is Malformed (§4.13.1).
#[tokio::test]
async fn sec_2_1_2_packet_type_0_is_malformed() {
    disconnected(vec![0x00, 0x00], MALFORMED).await;
}

/// [MQTT-3.1.2-1] "If the Protocol Name is incorrect the Server MAY disconnect the Client,
/// or it MAY continue processing the CONNECT packet in accordance with some other
/// specification. In the latter case, the Server MUST NOT continue to process the CONNECT
/// packet in line with this specification." No success CONNACK may come back.
#[tokio::test]
async fn mqtt_3_1_2_1_wrong_protocol_name_is_not_accepted() {
    // Protocol Name "MQTX", level 5, Clean Start, keep alive 60, no properties, id "c".
    connect_refused(
        vec![
            0x00, 0x04, b'M', b'Q', b'T', b'X', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x01, b'c',
        ],
        0x84,
    )
    .await;
}
