//! TLS listeners (`--mqtts`, `--amqps`, `--stomps`): real clients over TLS with a test
//! CA, an untrusted certificate refused by the client, plain text on a TLS port
//! closed without a hang, and a TLS listener without a certificate refused at start.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::Pki;
use common::WAIT;
use dwbroker::config::Listen;
use dwbroker::Broker;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use rumqttc::{QoS, TlsConfiguration, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// A broker with its plain listeners and the three TLS ones on free ports.
async fn start(pki: &Pki) -> Broker {
    let mut c = common::config();
    let any = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.mqtts = any;
    c.listeners.amqps = any;
    c.listeners.stomps = any;
    c.tls = Some(pki.config());
    Broker::start(c).await.expect("broker starts")
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    client: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(client).connect(name, tcp).await
}

fn mqtts(pki: &Pki) -> impl FnOnce(&mut rumqttc::MqttOptions) + '_ {
    move |o| {
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            pki.client(),
        )));
    }
}

#[tokio::test]
async fn mqtt_clients_exchange_messages_over_tls_and_with_plain_tcp_clients() {
    let pki = Pki::new();
    let broker = start(&pki).await;
    let tls_addr = broker.mqtts_addr().expect("mqtts listener");
    // rumqttc names the server by the host it connects to: "localhost" is in the
    // certificate.
    let tls_addr = std::net::SocketAddr::from(([127, 0, 0, 1], tls_addr.port()));
    let (mut sub, _) = common::v4(tls_addr, mqtts(&pki), "tls-sub").await;
    sub.client
        .subscribe("tls/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.next_incoming(|p| matches!(p, rumqttc::Packet::SubAck(_)).then_some(()))
        .await;
    let (plain, _) = common::v4(broker.mqtt_addr().unwrap(), |_| {}, "plain-pub").await;
    plain
        .client
        .publish("tls/a", QoS::AtLeastOnce, false, "from plain tcp")
        .await
        .unwrap();
    let got = sub.publish().await;
    assert_eq!(&got.payload[..], b"from plain tcp");

    let (mut tls_pub, _) = common::v4(tls_addr, mqtts(&pki), "tls-pub").await;
    let big = vec![7u8; 300_000];
    tls_pub
        .client
        .publish("tls/big", QoS::AtLeastOnce, false, big.clone())
        .await
        .unwrap();
    tls_pub
        .next_incoming(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    let got = sub.publish().await;
    assert_eq!(
        got.payload.len(),
        big.len(),
        "a message larger than a TLS record"
    );
    assert_eq!(&got.payload[..], &big[..]);
    broker.shutdown().await;
}

#[tokio::test]
async fn lapin_publishes_and_gets_over_amqps() {
    let pki = Pki::new();
    let broker = start(&pki).await;
    let addr = broker.amqps_addr().expect("amqps listener");
    let uri = format!("amqps://localhost:{}/%2f", addr.port());
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pki.ca_pem.clone()),
    };
    let runtime = lapin::runtime::default_runtime().unwrap();
    let conn = tokio::time::timeout(
        WAIT,
        lapin::Connection::connect_with_config(&uri, Default::default(), tls, runtime),
    )
    .await
    .expect("connects in time")
    .expect("connects over TLS");
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            q.name().as_str().into(),
            BasicPublishOptions::default(),
            b"over amqps",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    confirm.await.unwrap();
    let got = ch
        .basic_get(q.name().as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(got.delivery.data, b"over amqps");
    conn.close(200, "bye".into()).await.unwrap();
    broker.shutdown().await;
}

/// Reads STOMP frames until one whose command is `command`; returns it.
async fn stomp_frame<S: AsyncReadExt + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    command: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Some(end) = buf.iter().position(|b| *b == 0) {
            let frame: Vec<u8> = buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&frame).trim_start().to_string();
            if text.starts_with(command) {
                return text;
            }
            assert!(!text.starts_with("ERROR"), "{text}");
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("a frame in time")
            .expect("reads");
        assert!(n > 0, "closed while waiting for {command}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn stomp_over_tls_reaches_a_plain_stomp_subscriber() {
    let pki = Pki::new();
    let broker = start(&pki).await;
    let (mut plain, _) = common::stomp_raw::StompRaw::handshake(
        broker.stomp_addr().unwrap(),
        common::stomp_raw::connect_frame(dwbroker_codecs::stomp::Version::V1_2),
    )
    .await;
    plain.subscribe("s1", "/topic/tls.news", "auto").await;
    let mut tls = tls_connect(broker.stomps_addr().unwrap(), pki.client())
        .await
        .expect("TLS handshake");
    let mut buf = Vec::new();
    tls.write_all(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
        .await
        .unwrap();
    stomp_frame(&mut tls, &mut buf, "CONNECTED").await;
    tls.write_all(b"SUBSCRIBE\nid:t1\ndestination:/topic/tls.news\n\n\0SEND\ndestination:/topic/tls.news\nreceipt:r1\n\nhello over tls\0")
        .await
        .unwrap();
    stomp_frame(&mut tls, &mut buf, "RECEIPT").await;
    let own = stomp_frame(&mut tls, &mut buf, "MESSAGE").await;
    assert!(own.ends_with("hello over tls\0"), "{own}");
    let got = plain.next().await;
    assert_eq!(&got.body[..], b"hello over tls");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_not_connected() {
    let pki = Pki::new();
    let broker = start(&pki).await;
    let err = tls_connect(broker.mqtts_addr().unwrap(), Pki::stranger())
        .await
        .expect_err("an unknown issuer is refused");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // The broker keeps serving TLS clients that trust it.
    let mut ok = tls_connect(broker.mqtts_addr().unwrap(), pki.client())
        .await
        .expect("TLS handshake");
    // MQTT 3.1.1 CONNECT, clean session, client id "t", keep alive 30.
    ok.write_all(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x1e\x00\x01t")
        .await
        .unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, ok.read_exact(&mut connack))
        .await
        .expect("CONNACK in time")
        .unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    broker.shutdown().await;
}

#[tokio::test]
async fn plain_text_on_a_tls_port_is_closed_at_once() {
    let pki = Pki::new();
    let broker = start(&pki).await;
    for addr in [
        broker.mqtts_addr().unwrap(),
        broker.amqps_addr().unwrap(),
        broker.stomps_addr().unwrap(),
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x1e\x00\x01t")
            .await
            .unwrap();
        // rustls answers a non-TLS record with an alert, then the socket closes.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut rest))
            .await
            .expect("closed without waiting for the handshake timeout");
        assert!(read.is_err() || rest.len() < 16, "{rest:?}");
        assert_ne!(rest.first(), Some(&0x20), "no CONNACK in plain text");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_tls_listener_needs_a_certificate_and_a_readable_one() {
    let mut c = common::config();
    c.listeners.mqtts = Listen::parse("127.0.0.1:0").unwrap();
    let err = Broker::start(c.clone()).await.expect_err("no certificate");
    assert!(
        err.to_string()
            .contains("mqtts listener needs a certificate"),
        "{err}"
    );

    c.tls = Some(dwbroker::config::Tls {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
    });
    let err = Broker::start(c.clone()).await.expect_err("no such file");
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");

    let pki = Pki::new();
    c.tls = Some(dwbroker::config::Tls {
        cert: pki.key.clone(),
        key: pki.key.clone(),
    });
    let err = Broker::start(c)
        .await
        .expect_err("a key is not a certificate");
    assert!(err.to_string().contains("certificate"), "{err}");
}
