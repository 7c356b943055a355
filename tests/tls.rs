//! TLS listeners (`--mqtts`, `--amqps`, `--stomps`, NATS's upgrade after INFO,
//! HTTPS): real clients over TLS with a test CA, an untrusted certificate refused
//! by the client, client certificates required or optional, certificates reloaded
//! without dropping connections, plain text on a TLS port and a TLS client on a
//! plain port answered at once, and a TLS listener without a certificate refused
//! at start.

mod common;

use std::net::SocketAddr;
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
    start_with(pki, |_| {}).await
}

async fn start_with(pki: &Pki, tweak: impl FnOnce(&mut dwbroker::config::Config)) -> Broker {
    let mut c = common::config();
    let any = Listen::parse("127.0.0.1:0").unwrap();
    c.listeners.mqtts = any;
    c.listeners.amqps = any;
    c.listeners.stomps = any;
    c.tls = Some(pki.config());
    tweak(&mut c);
    Broker::start(c).await.expect("broker starts")
}

/// An MQTT 3.1.1 CONNECT (clean session, no client id: each gets its own, so no
/// connection takes another's over; keep alive 30).
const MQTT_CONNECT: &[u8] = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00";

/// Sends CONNECT over `stream` and returns the 4 bytes answered (a CONNACK), or
/// the error that ended the connection.
async fn mqtt_connack<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    stream: &mut S,
) -> std::io::Result<[u8; 4]> {
    stream.write_all(MQTT_CONNECT).await?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, stream.read_exact(&mut connack))
        .await
        .expect("an answer in time")?;
    Ok(connack)
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

/// Connects over TLS with `client` and asserts that an MQTT CONNECT is accepted.
async fn assert_mqtt_served(addr: std::net::SocketAddr, client: Arc<ClientConfig>) {
    let mut stream = tls_connect(addr, client).await.expect("TLS handshake");
    let connack = mqtt_connack(&mut stream).await.expect("a CONNACK");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
}

/// Why a TLS client with `client` was refused: in the handshake, or (TLS 1.3, where
/// the client finishes first) by the alert its first read gets instead of a CONNACK.
async fn refusal(addr: std::net::SocketAddr, client: Arc<ClientConfig>) -> String {
    match tls_connect(addr, client).await {
        Err(e) => e.to_string(),
        Ok(mut s) => mqtt_connack(&mut s)
            .await
            .expect_err("no CONNACK")
            .to_string(),
    }
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
    assert_mqtt_served(broker.mqtts_addr().unwrap(), pki.client()).await;
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
        tcp.write_all(MQTT_CONNECT).await.unwrap();
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

/// The first bytes of a TLS 1.2/1.3 ClientHello: a handshake record (22, version
/// 3.1, 200 bytes) starting a ClientHello (1) of 196 bytes, without a newline.
const CLIENT_HELLO_START: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
];

#[tokio::test]
async fn a_tls_client_on_a_plain_port_gets_the_protocols_answer_at_once() {
    let pki = Pki::new();
    let broker = start_with(&pki, |c| {
        c.listeners.kafka_rest = Listen::parse("127.0.0.1:0").unwrap();
    })
    .await;
    // What each protocol answers bytes it cannot take, then closes: MQTT nothing
    // (3.1.1's rule for a bad CONNECT), AMQP its protocol header, STOMP an ERROR
    // frame (even without the newline a command line ends with), NATS -ERR after
    // its INFO, HTTP 400.
    let answers: [(SocketAddr, &[u8]); 5] = [
        (broker.mqtt_addr().unwrap(), b""),
        (broker.amqp_addr().unwrap(), b"AMQP\x00\x00\x09\x01"),
        (broker.stomp_addr().unwrap(), b"ERROR\n"),
        (broker.nats_addr().unwrap(), b"INFO "),
        (broker.kafka_rest_addr().unwrap(), b"HTTP/1.1 400"),
    ];
    for (addr, answer) in answers {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(CLIENT_HELLO_START).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| {
                panic!("{addr} ({answer:?}): closed without waiting for a timeout")
            });
        assert!(read.is_ok(), "{addr}: {read:?}");
        assert!(
            got.starts_with(answer),
            "{addr}: {:?}",
            String::from_utf8_lossy(&got)
        );
        if answer.is_empty() {
            assert!(got.is_empty(), "{addr}: {got:?}");
        }
        if answer == b"INFO " {
            let text = String::from_utf8_lossy(&got);
            assert!(
                text.ends_with("-ERR 'Unknown Protocol Operation'\r\n"),
                "{text}"
            );
        }
        // A real TLS client fails its handshake at once too.
        let handshake =
            tokio::time::timeout(Duration::from_secs(2), tls_connect(addr, pki.client()))
                .await
                .unwrap_or_else(|_| panic!("{addr}: the handshake waited for a timeout"));
        assert!(handshake.is_err(), "{addr}: no TLS on a plain port");
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

    c.tls = Some(dwbroker::config::Tls::new(
        "/nonexistent/cert.pem",
        "/nonexistent/key.pem",
    ));
    let err = Broker::start(c.clone()).await.expect_err("no such file");
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");

    let pki = Pki::new();
    c.tls = Some(dwbroker::config::Tls::new(&pki.key, &pki.key));
    let err = Broker::start(c)
        .await
        .expect_err("a key is not a certificate");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn client_certificates_required_or_optional() {
    use dwbroker::config::ClientAuth;
    let pki = Pki::new();
    let broker = start_with(&pki, |c| {
        c.tls = Some(pki.config_with_clients(ClientAuth::Required));
    })
    .await;
    let addr = broker.mqtts_addr().unwrap();
    // TLS 1.3: the client finishes its side first and learns of the refusal (an
    // alert) when it reads.
    let refused = refusal(addr, pki.client()).await;
    assert!(refused.contains("CertificateRequired"), "{refused}");
    assert_mqtt_served(addr, pki.client_with_certificate("sensor-1")).await;
    // A certificate from another CA is refused.
    let other = Pki::new();
    let refused = refusal(addr, pki.client_with_certificate_from(&other, "intruder")).await;
    assert!(refused.contains("alert"), "{refused}");
    broker.shutdown().await;

    let broker = start_with(&pki, |c| {
        c.tls = Some(pki.config_with_clients(ClientAuth::Optional));
    })
    .await;
    let addr = broker.mqtts_addr().unwrap();
    assert_mqtt_served(addr, pki.client()).await;
    assert_mqtt_served(addr, pki.client_with_certificate("sensor-2")).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn reloaded_certificates_serve_new_handshakes_and_keep_connections() {
    let mut pki = Pki::new();
    let broker = start(&pki).await;
    let addr = broker.mqtts_addr().unwrap();
    let old_client = pki.client();
    let mut before = tls_connect(addr, old_client.clone()).await.unwrap();
    let connack = mqtt_connack(&mut before).await.unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);

    pki.rotate();
    assert!(broker.reload_tls().expect("reloads"));
    let err = tls_connect(addr, old_client)
        .await
        .expect_err("the old CA no longer matches");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert_mqtt_served(addr, pki.client()).await;
    // The connection made before the reload still works: PINGREQ, PINGRESP.
    before.write_all(&[0xC0, 0x00]).await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(WAIT, before.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pong, [0xD0, 0x00]);

    // A broken file is refused and the certificates in use stay.
    std::fs::write(&pki.cert, "not a certificate").unwrap();
    let err = broker.reload_tls().expect_err("a broken certificate file");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert_mqtt_served(addr, pki.client()).await;
    broker.shutdown().await;
}

/// The next message of a NATS subscription, within [`WAIT`].
async fn next_message(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    let next = futures_util::StreamExt::next(sub);
    tokio::time::timeout(WAIT, next)
        .await
        .expect("a message in time")
        .expect("subscribed")
}

/// Reads a NATS server line (INFO, -ERR, ...).
async fn nats_line<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .expect("a line in time")
            .expect("reads");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&line));
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[tokio::test]
async fn nats_clients_upgrade_after_info_and_plain_ones_are_told_tls_is_required() {
    let pki = Pki::new();
    let broker = start_with(&pki, |c| c.nats_tls = dwbroker::config::NatsTls::Required).await;
    let addr = broker.nats_addr().unwrap();
    let url = format!("tls://localhost:{}", addr.port());
    let tls_client = || {
        async_nats::ConnectOptions::new()
            .add_root_certificates(pki.ca_file.clone())
            .require_tls(true)
    };
    let sub_client = tls_client()
        .connect(&url)
        .await
        .expect("async-nats over TLS");
    let mut sub = sub_client.subscribe("tls.>").await.unwrap();
    sub_client.flush().await.unwrap();
    let pub_client = tls_client().connect(&url).await.unwrap();
    pub_client
        .publish("tls.a", "over tls".into())
        .await
        .unwrap();
    pub_client.flush().await.unwrap();
    let got = next_message(&mut sub).await;
    assert_eq!(&got.payload[..], b"over tls");
    // From MQTT in plain text to the NATS subscriber over TLS.
    let (mqtt, _) = common::v4(broker.mqtt_addr().unwrap(), |_| {}, "tls-bridge").await;
    mqtt.client
        .publish("tls/b", QoS::AtLeastOnce, false, "from mqtt")
        .await
        .unwrap();
    let got = next_message(&mut sub).await;
    assert_eq!(
        (got.subject.as_str(), &got.payload[..]),
        ("tls.b", &b"from mqtt"[..])
    );

    // A plain client reads INFO with tls_required, and -ERR when it does not upgrade.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    let info = nats_line(&mut plain).await;
    assert!(info.contains("\"tls_required\":true"), "{info}");
    plain.write_all(b"CONNECT {}\r\nPING\r\n").await.unwrap();
    assert_eq!(
        nats_line(&mut plain).await,
        "-ERR 'Secure Connection - TLS Required'\r\n"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn nats_tls_optional_serves_both_and_tls_first_starts_with_the_handshake() {
    let pki = Pki::new();
    let broker = start_with(&pki, |c| c.nats_tls = dwbroker::config::NatsTls::Optional).await;
    let port = broker.nats_addr().unwrap().port();
    let secure = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca_file.clone())
        .require_tls(true)
        .connect(format!("tls://localhost:{port}"))
        .await
        .expect("TLS client");
    let plain = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("plain client");
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let info = nats_line(&mut raw).await;
    assert!(info.contains("\"tls_available\":true"), "{info}");
    let mut sub = plain.subscribe("mixed").await.unwrap();
    plain.flush().await.unwrap();
    secure.publish("mixed", "hi".into()).await.unwrap();
    secure.flush().await.unwrap();
    let got = next_message(&mut sub).await;
    assert_eq!(&got.payload[..], b"hi");
    broker.shutdown().await;

    let broker = start_with(&pki, |c| c.nats_tls = dwbroker::config::NatsTls::First).await;
    let port = broker.nats_addr().unwrap().port();
    let first = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca_file.clone())
        .tls_first()
        .connect(format!("tls://localhost:{port}"))
        .await
        .expect("a TLS-first client");
    assert!(first.server_info().tls_required);
    let mut sub = first.subscribe("first").await.unwrap();
    first
        .publish("first", "after the handshake".into())
        .await
        .unwrap();
    let got = next_message(&mut sub).await;
    assert_eq!(&got.payload[..], b"after the handshake");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_on_an_optional_tls_listener_waits_one_connect_timeout() {
    let pki = Pki::new();
    let timeout = Duration::from_secs(1);
    let broker = start_with(&pki, |c| {
        c.nats_tls = dwbroker::config::NatsTls::Optional;
        c.limits.connect_timeout = timeout;
    })
    .await;
    let mut raw = TcpStream::connect(broker.nats_addr().unwrap())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(nats_line(&mut raw).await.starts_with("INFO "));
    // Neither a handshake nor CONNECT: told so once the connect timeout has
    // passed, not after a second wait for CONNECT.
    assert_eq!(
        nats_line(&mut raw).await,
        "-ERR 'Authentication Timeout'\r\n"
    );
    let waited = started.elapsed();
    assert!(waited >= timeout && waited < 2 * timeout, "{waited:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn kafka_rest_serves_https_when_asked() {
    let pki = Pki::new();
    let broker = start_with(&pki, |c| c.http_tls = true).await;
    let port = broker.kafka_rest_addr().unwrap().port();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*pki.client()).clone())
        .build()
        .unwrap();
    let topics = client
        .get(format!("https://localhost:{port}/topics"))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(topics.status(), 200);
    let produced = client
        .post(format!("https://localhost:{port}/topics/secure"))
        .header("content-type", "application/vnd.kafka.json.v2+json")
        .body(r#"{"records":[{"value":{"n":1}}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(produced.status(), 200, "{:?}", produced.text().await);
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/topics"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    broker.shutdown().await;
}

#[test]
fn sighup_reloads_the_certificates_of_the_running_binary() {
    let mut pki = Pki::new();
    let dir = common::process::data_dir();
    let args: Vec<std::ffi::OsString> = vec![
        "--mqtts".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        pki.cert.clone().into(),
        "--tls-key".into(),
        pki.key.clone().into(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let broker = common::process::Process::start_with(dir.path(), &args);
    let addr = broker.listening("mqtts");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let old_client = pki.client();
    runtime.block_on(assert_mqtt_served(addr, old_client.clone()));
    pki.rotate();
    broker.signal("HUP");
    broker
        .line_containing("TLS certificates reloaded", WAIT)
        .expect("the reload is logged");
    runtime.block_on(async {
        let err = tls_connect(addr, old_client).await.expect_err("old CA");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
        assert_mqtt_served(addr, pki.client()).await;
    });
}

#[tokio::test]
async fn a_client_certificate_logs_in_as_the_user_it_names_and_amqp_external_uses_it() {
    use bytes::Bytes;
    use common::amqp_raw::AmqpRaw;
    use dwbroker::config::{ClientAuth, PermissionSpec, UserSpec};
    use dwbroker_codecs::amqp::{Method, PROTOCOL_HEADER};
    let pki = Pki::new();
    let broker = start_with(&pki, |c| {
        c.tls = Some(pki.config_with_clients(ClientAuth::Optional));
        c.auth.users.insert(
            "sensor-7".into(),
            UserSpec {
                certificate: true,
                ..UserSpec::default()
            },
        );
        c.auth.permissions.insert(
            "sensor-7".into(),
            PermissionSpec {
                publish: vec!["sensors.>".into()],
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    let mqtts = broker.mqtts_addr().unwrap();
    // No user name: the certificate's common name is the user (3.1.1 CONNACK 0).
    let mut tls = tls_connect(mqtts, pki.client_with_certificate("sensor-7"))
        .await
        .unwrap();
    assert_eq!(mqtt_connack(&mut tls).await.unwrap(), [0x20, 2, 0, 0]);
    // A certificate naming no certificate user: bad user name or password (4);
    // no certificate and no user name: not authorized (5).
    let mut tls = tls_connect(mqtts, pki.client_with_certificate("sensor-8"))
        .await
        .unwrap();
    assert_eq!(mqtt_connack(&mut tls).await.unwrap(), [0x20, 2, 0, 4]);
    let mut tls = tls_connect(mqtts, pki.client()).await.unwrap();
    assert_eq!(mqtt_connack(&mut tls).await.unwrap(), [0x20, 2, 0, 5]);

    // AMQP offers EXTERNAL to a client with a certificate, and it logs in.
    let amqps = broker.amqps_addr().unwrap();
    let external = |client| async move {
        let tls = tls_connect(amqps, client).await.unwrap();
        let mut raw = AmqpRaw::over(tls);
        raw.send(&PROTOCOL_HEADER).await;
        let Some((0, Method::ConnectionStart(start))) = raw.recv_method().await else {
            panic!("no connection.start");
        };
        let mechanisms = String::from_utf8(start.mechanisms.to_vec()).unwrap();
        raw.start_ok("EXTERNAL", Bytes::new()).await;
        (mechanisms, raw.recv_method().await)
    };
    let (mechanisms, answer) = external(pki.client_with_certificate("sensor-7")).await;
    assert_eq!(mechanisms, "PLAIN AMQPLAIN EXTERNAL");
    assert!(
        matches!(answer, Some((0, Method::ConnectionTune(_)))),
        "{answer:?}"
    );
    let (mechanisms, answer) = external(pki.client()).await;
    assert_eq!(mechanisms, "PLAIN AMQPLAIN", "no certificate, no EXTERNAL");
    assert_eq!(answer, None, "a mechanism not offered: closed");
    broker.shutdown().await;
}
