//! MQTT 5 enhanced authentication with SCRAM-SHA-256 (§4.12, RFC 5802/7677):
//! CONNECT names the method with the client's first message, AUTH carries the
//! challenge and the proof, CONNACK the server's signature. The client side here
//! is computed from the RFC, independently of the broker's code.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use common::users::password_file;
use common::{connect, start, start_with, Raw};
use dwbroker_codecs::mqtt::{Auth, Packet, Properties, ProtocolVersion, ReasonCode};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The client's final message for `server_first`, and the server signature it
/// expects back.
fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> (String, String) {
    let field = |name: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    let nonce = field("r=");
    let salt = B64.decode(field("s=")).unwrap();
    let iterations: u32 = field("i=").parse().unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hmac(&salted, b"Server Key");
    (
        format!("{without_proof},p={}", B64.encode(proof)),
        format!(
            "v={}",
            B64.encode(hmac(&server_key, auth_message.as_bytes()))
        ),
    )
}

fn scram_properties(data: &str) -> Properties {
    Properties {
        authentication_method: Some("SCRAM-SHA-256".into()),
        authentication_data: Some(Bytes::from(data.to_owned())),
        ..Properties::default()
    }
}

/// Runs the exchange as `user` with `password`: the CONNACK, and the server
/// signature the client expected.
async fn scram_connect(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
) -> (Raw, dwbroker_codecs::mqtt::ConnAck, String) {
    let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
    let mut c = connect(ProtocolVersion::V5, &format!("scram-{user}-{password}"));
    c.properties = scram_properties(&format!("n,,{bare}"));
    let mut raw = Raw::open(addr, ProtocolVersion::V5).await;
    raw.send_packet(Packet::Connect(c)).await;
    let challenge = match raw.recv().await {
        Some(Packet::Auth(a)) => a,
        other => panic!("expected AUTH, got {other:?}"),
    };
    assert_eq!(challenge.code, ReasonCode::CONTINUE_AUTHENTICATION);
    let props = &challenge.properties;
    assert_eq!(
        props.authentication_method.as_deref(),
        Some("SCRAM-SHA-256")
    );
    let server_first =
        String::from_utf8(props.authentication_data.clone().unwrap().to_vec()).unwrap();
    assert!(
        server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"),
        "{server_first}"
    );
    let (last, expected) = client_final(password, &bare, &server_first);
    raw.send_packet(Packet::Auth(Auth {
        code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: scram_properties(&last),
    }))
    .await;
    let Some(Packet::ConnAck(ack)) = raw.recv().await else {
        panic!("no CONNACK");
    };
    (raw, ack, expected)
}

#[tokio::test]
async fn scram_sha_256_logs_in_with_the_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("alice", "alice-pw")]);
    let (broker, addr) = start_with(|c| c.auth.password_file = Some(file)).await;

    let (mut raw, ack, expected) = scram_connect(addr, "alice", "alice-pw").await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    assert_eq!(
        ack.properties.authentication_method.as_deref(),
        Some("SCRAM-SHA-256")
    );
    let signature = ack.properties.authentication_data.clone().unwrap();
    assert_eq!(
        signature,
        Bytes::from(expected),
        "the server proves it knows the verifier"
    );
    // Re-authentication is not offered: DISCONNECT 0x8C.
    raw.send_packet(Packet::Auth(Auth {
        code: ReasonCode(0x19),
        properties: scram_properties("n,,n=alice,r=again"),
    }))
    .await;
    raw.expect_disconnect(0x8C).await;

    let (_, ack, _) = scram_connect(addr, "alice", "wrong").await;
    assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    let (_, ack, _) = scram_connect(addr, "mallory", "alice-pw").await;
    assert_eq!(ack.code, ReasonCode::BAD_USER_NAME_OR_PASSWORD);

    // Another method, or malformed first data: refused in CONNACK.
    for (method, data, code) in [
        ("PLAIN", "x", ReasonCode::BAD_AUTHENTICATION_METHOD),
        (
            "SCRAM-SHA-256",
            "p=tls-unique,,n=alice,r=x",
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        ),
    ] {
        let mut c = connect(ProtocolVersion::V5, "other-method");
        c.properties = Properties {
            authentication_method: Some(method.into()),
            authentication_data: Some(Bytes::from_static(data.as_bytes())),
            ..Properties::default()
        };
        let (_, ack) = Raw::connected(addr, c).await;
        let Packet::ConnAck(ack) = ack else {
            unreachable!()
        };
        assert_eq!(ack.code, code, "{method} {data}");
    }
    // Something else than AUTH in the middle of the exchange: Protocol Error.
    let mut c = connect(ProtocolVersion::V5, "interrupted");
    c.properties = scram_properties("n,,n=alice,r=abc");
    let mut raw = Raw::open(addr, ProtocolVersion::V5).await;
    raw.send_packet(Packet::Connect(c)).await;
    assert!(matches!(raw.recv().await, Some(Packet::Auth(_))));
    raw.send_packet(Packet::PingReq).await;
    let Some(Packet::ConnAck(ack)) = raw.recv().await else {
        panic!("no CONNACK");
    };
    assert_eq!(ack.code, ReasonCode::PROTOCOL_ERROR);
    broker.shutdown().await;
}

#[tokio::test]
async fn an_open_broker_has_no_authentication_method() {
    let (broker, addr) = start().await;
    let mut c = connect(ProtocolVersion::V5, "scram-open");
    c.properties = scram_properties("n,,n=alice,r=abc");
    let (_, ack) = Raw::connected(addr, c).await;
    let Packet::ConnAck(ack) = ack else {
        unreachable!()
    };
    assert_eq!(ack.code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    broker.shutdown().await;
}
