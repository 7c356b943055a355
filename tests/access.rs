//! Users and permissions against the real listeners: a password file written by
//! `dwbroker passwd`, logins refused in each protocol's idiom, and the ACL of
//! `[auth.permissions]` enforced on MQTT, NATS and the bus they share.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::amqp_raw::AmqpRaw;
use common::nats_lines::NatsLines;
use common::stomp_raw::StompRaw;
use common::users::{password_file, rules};
use common::{start_with, v4, v5, WAIT};
use dwbroker::config::{Anonymous, PermissionSpec};
use dwbroker::Broker;
use dwbroker_codecs::amqp::ReplyCode;
use dwbroker_codecs::stomp::{Command, Frame};
use rumqttc::v5::mqttbytes::v5::{PubAckReason, SubscribeReasonCode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A broker with alice, bob, carol and svc: alice may use `sensors.>` and the
/// orders queues, bob may read `sensors.>` but not `sensors.secret.>`, carol has no
/// permissions (so may do nothing), svc may only read `svc.>` (and answer requests).
async fn secured(dir: &Path, anonymous: Anonymous) -> Broker {
    let file = password_file(
        dir,
        &[
            ("alice", "alice-pw"),
            ("bob", "bob-pw"),
            ("carol", "carol-pw"),
            ("svc", "svc-pw"),
        ],
    );
    let (broker, _) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.anonymous = anonymous;
        c.auth.permissions.insert(
            "alice".into(),
            PermissionSpec {
                publish: rules(&["sensors.>", "exchange:orders", "svc.>"]),
                subscribe: rules(&["sensors.>", "queue:orders.*", "_INBOX.>"]),
                configure: rules(&["queue:orders.*"]),
                ..PermissionSpec::default()
            },
        );
        c.auth.permissions.insert(
            "bob".into(),
            PermissionSpec {
                subscribe: rules(&["sensors.>"]),
                deny_subscribe: rules(&["sensors.secret.>"]),
                ..PermissionSpec::default()
            },
        );
        c.auth.permissions.insert(
            "svc".into(),
            PermissionSpec {
                subscribe: rules(&["svc.>"]),
                ..PermissionSpec::default()
            },
        );
        c.auth.permissions.insert(
            "visitor".into(),
            PermissionSpec {
                subscribe: rules(&["public.>"]),
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    broker
}

/// The CONNACK code an MQTT 5 client gets with these credentials.
async fn mqtt5_login(addr: SocketAddr, creds: Option<(&str, &str)>) -> Result<(), String> {
    let mut o = rumqttc::v5::MqttOptions::new("login-probe", addr.ip().to_string(), addr.port());
    if let Some((user, password)) = creds {
        o.set_credentials(user, password);
    }
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(o, 10);
    // Failed logins are delayed (longer each time from one address).
    match tokio::time::timeout(WAIT * 2, eventloop.poll())
        .await
        .expect("answered in time")
    {
        Ok(_) => Ok(()),
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => Err(format!("{code:?}")),
        Err(other) => Err(format!("failed: {other}")),
    }
}

/// The same for an MQTT 3.1.1 client.
async fn mqtt311_login(addr: SocketAddr, creds: Option<(&str, &str)>) -> Result<(), String> {
    let mut o = rumqttc::MqttOptions::new("login-probe-311", addr.ip().to_string(), addr.port());
    if let Some((user, password)) = creds {
        o.set_credentials(user, password);
    }
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
    match tokio::time::timeout(WAIT * 2, eventloop.poll())
        .await
        .expect("answered in time")
    {
        Ok(_) => Ok(()),
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Err(format!("{code:?}")),
        Err(other) => Err(format!("failed: {other}")),
    }
}

#[tokio::test]
async fn mqtt_logins_get_connack_codes_in_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let addr = broker.mqtt_addr().unwrap();
    assert_eq!(mqtt5_login(addr, None).await, Err("NotAuthorized".into()));
    assert_eq!(
        mqtt5_login(addr, Some(("alice", "wrong"))).await,
        Err("BadUserNamePassword".into())
    );
    assert_eq!(
        mqtt5_login(addr, Some(("mallory", "alice-pw"))).await,
        Err("BadUserNamePassword".into())
    );
    assert_eq!(mqtt5_login(addr, Some(("alice", "alice-pw"))).await, Ok(()));
    assert_eq!(mqtt311_login(addr, None).await, Err("NotAuthorized".into()));
    assert_eq!(
        mqtt311_login(addr, Some(("bob", "alice-pw"))).await,
        Err("BadUserNamePassword".into())
    );
    assert_eq!(mqtt311_login(addr, Some(("bob", "bob-pw"))).await, Ok(()));
    broker.shutdown().await;
}

#[tokio::test]
async fn anonymous_clients_get_the_named_users_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::As("visitor".into())).await;
    let addr = broker.mqtt_addr().unwrap();
    let (mut anon, ack) = v5(addr, |_| {}, "anon").await;
    assert_eq!(
        ack.code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
    let granted = anon
        .subscribe("public/#", rumqttc::v5::mqttbytes::QoS::AtMostOnce)
        .await;
    assert_eq!(
        granted.return_codes,
        [SubscribeReasonCode::Success(
            rumqttc::v5::mqttbytes::QoS::AtMostOnce
        )]
    );
    let refused = anon
        .subscribe("sensors/#", rumqttc::v5::mqttbytes::QoS::AtMostOnce)
        .await;
    assert_eq!(refused.return_codes, [SubscribeReasonCode::NotAuthorized]);
    broker.shutdown().await;
}

#[tokio::test]
async fn mqtt_publish_and_subscribe_follow_the_acl() {
    use rumqttc::v5::mqttbytes::QoS;
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let addr = broker.mqtt_addr().unwrap();
    let (mut alice, _) = v5(
        addr,
        |o| {
            o.set_credentials("alice", "alice-pw");
        },
        "alice",
    )
    .await;
    let (mut bob, _) = v5(
        addr,
        |o| {
            o.set_credentials("bob", "bob-pw");
        },
        "bob",
    )
    .await;
    // A filter reaching beyond the allowed subjects is refused, one inside them is
    // granted, in the same SUBSCRIBE.
    alice
        .client
        .subscribe_many([
            rumqttc::v5::mqttbytes::v5::Filter::new("#", QoS::AtLeastOnce),
            rumqttc::v5::mqttbytes::v5::Filter::new("sensors/+/temp", QoS::AtLeastOnce),
        ])
        .await
        .unwrap();
    let ack = alice
        .next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::SubAck(a) => Some(a.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        ack.return_codes,
        [
            SubscribeReasonCode::NotAuthorized,
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        ]
    );
    // bob reads sensors/# except what sensors.secret.> denies him.
    let granted = bob.subscribe("sensors/#", QoS::AtLeastOnce).await;
    assert_eq!(
        granted.return_codes,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let refused = bob.subscribe("sensors/secret/#", QoS::AtLeastOnce).await;
    assert_eq!(refused.return_codes, [SubscribeReasonCode::NotAuthorized]);
    // alice may not publish outside sensors.>: PUBACK 0x87, and nobody gets it.
    alice
        .client
        .publish("orders/new", QoS::AtLeastOnce, false, "denied")
        .await
        .unwrap();
    let puback = alice
        .next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::PubAck(a) => Some(a.clone()),
            _ => None,
        })
        .await;
    assert_eq!(puback.reason, PubAckReason::NotAuthorized);
    for (topic, body) in [
        ("sensors/secret/key", "hidden"),
        ("sensors/kitchen/temp", "21"),
    ] {
        alice
            .client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    let got = bob.publish().await;
    assert_eq!(
        &got.topic[..],
        b"sensors/kitchen/temp",
        "the denied subject is withheld"
    );
    bob.no_publish(Duration::from_millis(300)).await;
    // bob may not publish at all.
    bob.client
        .publish("sensors/kitchen/temp", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let puback = bob
        .next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::PubAck(a) => Some(a.clone()),
            _ => None,
        })
        .await;
    assert_eq!(puback.reason, PubAckReason::NotAuthorized);
    broker.shutdown().await;
}

#[tokio::test]
async fn mqtt_311_denied_publishes_are_acknowledged_and_dropped() {
    use rumqttc::QoS;
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let addr = broker.mqtt_addr().unwrap();
    let (mut watcher, _) = v4(
        addr,
        |o| {
            o.set_credentials("alice", "alice-pw");
        },
        "watcher",
    )
    .await;
    watcher.subscribe("sensors/#", QoS::AtLeastOnce).await;
    let (mut bob, _) = v4(
        addr,
        |o| {
            o.set_credentials("bob", "bob-pw");
        },
        "bob311",
    )
    .await;
    let refused = bob.subscribe("orders/#", QoS::AtLeastOnce).await;
    assert_eq!(
        refused.return_codes,
        [rumqttc::SubscribeReasonCode::Failure]
    );
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        bob.client
            .publish("sensors/a", qos, false, "x")
            .await
            .unwrap();
    }
    bob.next_incoming(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    bob.next_incoming(|p| matches!(p, rumqttc::Packet::PubComp(_)).then_some(()))
        .await;
    watcher.no_publish(Duration::from_millis(300)).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_will_the_user_may_not_publish_refuses_the_connect() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let addr = broker.mqtt_addr().unwrap();
    let mut o = rumqttc::v5::MqttOptions::new("willing", addr.ip().to_string(), addr.port());
    o.set_credentials("alice", "alice-pw");
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        "orders/gone",
        "bye",
        rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        false,
        None,
    ));
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(o, 10);
    match tokio::time::timeout(WAIT, eventloop.poll()).await.unwrap() {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(
                code,
                rumqttc::v5::mqttbytes::v5::ConnectReturnCode::NotAuthorized
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    broker.shutdown().await;
}

/// A raw NATS connection: sends `ops` after CONNECT with `connect` and returns the
/// server's lines up to the PONG answering the final PING (or the close).
async fn nats_conversation(addr: SocketAddr, connect: &str, ops: &str) -> Vec<String> {
    let mut nats = NatsLines::open(addr).await;
    assert_eq!(nats.info["auth_required"], true, "{}", nats.info);
    nats.send(&format!("CONNECT {connect}\r\n{ops}")).await;
    match nats.until_pong().await {
        Ok(mut lines) => {
            lines.push("PONG".into());
            lines
        }
        Err(lines) => lines,
    }
}

#[tokio::test]
async fn nats_logins_and_permission_violations_read_as_nats_servers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let addr = broker.nats_addr().unwrap();
    for connect in [
        r#"{"verbose":false}"#,
        r#"{"verbose":false,"user":"alice","pass":"nope"}"#,
    ] {
        let got = nats_conversation(addr, connect, "").await;
        assert_eq!(got, ["-ERR 'Authorization Violation'"], "{connect}");
    }
    let alice = r#"{"verbose":false,"user":"alice","pass":"alice-pw"}"#;
    let got = nats_conversation(
        addr,
        alice,
        "SUB orders.> 1\r\nPUB orders.new 1\r\nx\r\nSUB sensors.> 2\r\nPUB sensors.a 1\r\ny\r\n",
    )
    .await;
    assert_eq!(
        got,
        [
            "-ERR 'Permissions Violation for Subscription to \"orders.>\"'",
            "-ERR 'Permissions Violation for Publish to \"orders.new\"'",
            "MSG sensors.a 2 1",
            "y",
            "PONG",
        ]
    );
    // async-nats with the right user works; without one the connect fails.
    let url = format!("nats://{addr}");
    assert!(async_nats::connect(&url).await.is_err());
    let client = async_nats::ConnectOptions::new()
        .user_and_password("bob".into(), "bob-pw".into())
        .connect(&url)
        .await
        .expect("bob connects");
    let mut sub = client.subscribe("sensors.>").await.unwrap();
    client.flush().await.unwrap();
    let publisher = async_nats::ConnectOptions::new()
        .user_and_password("alice".into(), "alice-pw".into())
        .connect(&url)
        .await
        .unwrap();
    publisher
        .publish("sensors.secret.x", "hidden".into())
        .await
        .unwrap();
    publisher
        .publish("sensors.open", "seen".into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    let msg = tokio::time::timeout(WAIT, futures_next(&mut sub))
        .await
        .unwrap();
    assert_eq!(msg.subject.as_str(), "sensors.open");
    broker.shutdown().await;
}

async fn futures_next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    use futures_util::StreamExt;
    sub.next().await.expect("subscription open")
}

#[tokio::test]
async fn amqp_and_stomp_logins_are_checked_against_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let amqp = broker.amqp_addr().unwrap();
    let plain = |user: &str, pass: &str| Bytes::from(format!("\0{user}\0{pass}"));
    // A client that reads authentication_failure_close hears 403.
    let (mut raw, _) = AmqpRaw::start(amqp).await;
    raw.start_ok_with(
        "PLAIN",
        plain("alice", "wrong"),
        &["authentication_failure_close"],
    )
    .await;
    raw.expect_connection_close(ReplyCode::AccessRefused).await;
    // guest/guest is no user here.
    let (mut raw, _) = AmqpRaw::start(amqp).await;
    raw.start_ok_with(
        "PLAIN",
        plain("guest", "guest"),
        &["authentication_failure_close"],
    )
    .await;
    raw.expect_connection_close(ReplyCode::AccessRefused).await;
    let uri = format!("amqp://alice:alice-pw@{amqp}/%2f");
    let conn = lapin::Connection::connect(&uri, Default::default())
        .await
        .expect("alice logs in over AMQP");
    conn.close(200, "bye".into()).await.unwrap();

    let stomp = broker.stomp_addr().unwrap();
    for (login, passcode) in [(None, None), (Some("alice"), Some("wrong"))] {
        let mut raw = StompRaw::connect(stomp).await;
        let mut frame = Frame::new(Command::Connect).with("accept-version", "1.2");
        if let (Some(l), Some(p)) = (login, passcode) {
            frame = frame.with("login", l).with("passcode", p);
        }
        raw.send_frame(&frame).await;
        let error = raw.next().await;
        assert_eq!(error.command, Command::Error, "{error:?}");
        assert_eq!(error.header("message"), Some("Bad CONNECT"));
    }
    let connect = Frame::new(Command::Connect)
        .with("accept-version", "1.2")
        .with("login", "bob")
        .with("passcode", "bob-pw");
    let (_raw, connected) = StompRaw::handshake(stomp, connect).await;
    assert_eq!(connected.command, Command::Connected);
    broker.shutdown().await;
}

#[tokio::test]
async fn amqp_and_stomp_permissions_refuse_with_403_and_error() {
    use lapin::options::*;
    use lapin::types::FieldTable;
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let uri = format!("amqp://alice:alice-pw@{}/%2f", broker.amqp_addr().unwrap());
    let conn = lapin::Connection::connect(&uri, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "orders.eu".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("configure queue:orders.* allows it");
    ch.queue_bind(
        "orders.eu".into(),
        "amq.topic".into(),
        "sensors.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("subscribe sensors.> covers the binding key");
    ch.basic_publish(
        "amq.topic".into(),
        "sensors.kitchen".into(),
        BasicPublishOptions::default(),
        b"warm",
        Default::default(),
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(m) = ch
                .basic_get("orders.eu".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the allowed message arrives");
    assert_eq!(got.delivery.data, b"warm");
    let refused = ch
        .queue_declare(
            "billing".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("no configure permission on queue:billing");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "amq.topic".into(),
        "orders.new".into(),
        BasicPublishOptions::default(),
        b"denied",
        Default::default(),
    )
    .await
    .ok();
    // The channel is closed with 403; the next call on it fails.
    let after = ch
        .queue_declare(
            "orders.us".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("the channel was closed by the refused publish");
    assert!(
        after.to_string().contains("ACCESS_REFUSED") || !ch.status().connected(),
        "{after}"
    );

    let stomp = broker.stomp_addr().unwrap();
    let connect = Frame::new(Command::Connect)
        .with("accept-version", "1.2")
        .with("login", "alice")
        .with("passcode", "alice-pw");
    let (mut raw, _) = StompRaw::handshake(stomp, connect.clone()).await;
    raw.send_frame(&Frame::new(Command::Send).with("destination", "/topic/orders.new"))
        .await;
    let error = raw.next().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.header("message"), Some("access_refused"));
    let (mut raw, _) = StompRaw::handshake(stomp, connect).await;
    raw.send_frame(
        &Frame::new(Command::Subscribe)
            .with("destination", "/queue/billing")
            .with("id", "1"),
    )
    .await;
    let error = raw.next().await;
    assert_eq!(error.header("message"), Some("access_refused"), "{error:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_service_may_answer_each_request_once_without_a_publish_rule() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let addr = broker.nats_addr().unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    next_line(&mut lines).await; // INFO
    write
        .write_all(b"CONNECT {\"verbose\":false,\"user\":\"svc\",\"pass\":\"svc-pw\"}\r\nSUB svc.time 1\r\nPING\r\n")
        .await
        .unwrap();
    assert_eq!(next_line(&mut lines).await, "PONG");
    let alice = async_nats::ConnectOptions::new()
        .user_and_password("alice".into(), "alice-pw".into())
        .connect(format!("nats://{addr}"))
        .await
        .unwrap();
    let request = tokio::spawn(async move { alice.request("svc.time", "now?".into()).await });
    let msg = next_line(&mut lines).await;
    let reply = msg
        .split(' ')
        .nth(3)
        .expect("MSG svc.time 1 <reply> <size>")
        .to_owned();
    assert_eq!(next_line(&mut lines).await, "now?");
    // The first answer is allowed, a second is not, and an unrelated subject never.
    write
        .write_all(format!("PUB {reply} 4\r\nnoon\r\nPUB {reply} 4\r\nlate\r\nPUB _INBOX.other 1\r\nx\r\nPING\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut lines).await,
        format!("-ERR 'Permissions Violation for Publish to \"{reply}\"'")
    );
    assert_eq!(
        next_line(&mut lines).await,
        "-ERR 'Permissions Violation for Publish to \"_INBOX.other\"'"
    );
    assert_eq!(next_line(&mut lines).await, "PONG");
    let answer = request.await.unwrap().expect("the request is answered");
    assert_eq!(&answer.payload[..], b"noon");
    broker.shutdown().await;
}

#[tokio::test]
async fn nats_nkeys_sign_the_nonce_and_tokens_name_a_user() {
    use dwbroker::config::UserSpec;
    let dir = tempfile::tempdir().unwrap();
    // A token hash as `dwbroker passwd` writes it (the argon2id hash, before
    // the SCRAM verifier).
    let file = password_file(dir.path(), &[("robot", "t0ken")]);
    let text = std::fs::read_to_string(&file).unwrap();
    let (_, stored) = text.trim().split_once(':').unwrap();
    let token_hash = stored.split_whitespace().next().unwrap().to_owned();
    let device = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let (broker, _) = start_with(|c| {
        c.auth.users.insert(
            "device".into(),
            UserSpec {
                nkey: Some(device.public_key()),
                ..UserSpec::default()
            },
        );
        c.auth.users.insert(
            "robot".into(),
            UserSpec {
                token_hash: Some(token_hash),
                ..UserSpec::default()
            },
        );
    })
    .await;
    let url = format!("nats://{}", broker.nats_addr().unwrap());
    let signed = async_nats::ConnectOptions::with_nkey(device.seed().unwrap())
        .connect(&url)
        .await
        .expect("the device's nkey logs in");
    signed.publish("x", "y".into()).await.unwrap();
    signed.flush().await.unwrap();
    let unknown = async_nats::ConnectOptions::with_nkey(stranger.seed().unwrap())
        .connect(&url)
        .await;
    assert!(unknown.is_err(), "an nkey of no user is refused");
    async_nats::ConnectOptions::with_token("t0ken".into())
        .connect(&url)
        .await
        .expect("the token logs in");
    let wrong = async_nats::ConnectOptions::with_token("guess".into())
        .connect(&url)
        .await;
    assert!(wrong.is_err(), "a wrong token is refused");
    broker.shutdown().await;
}

async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .expect("reads")
        .expect("not closed")
}

#[tokio::test]
async fn jetstream_requests_need_the_streams_permission() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("js", "js-pw")]);
    let (broker, _) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.permissions.insert(
            "js".into(),
            PermissionSpec {
                publish: rules(&["$JS.API.>", "orders.>"]),
                subscribe: rules(&["_INBOX.>"]),
                configure: rules(&["stream:ORDERS"]),
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    let addr = broker.nats_addr().unwrap();
    let create = |name: &str| {
        let body = format!(r#"{{"name":"{name}","subjects":["orders.{name}"]}}"#);
        format!(
            "SUB _INBOX.js 1\r\nPUB $JS.API.STREAM.CREATE.{name} _INBOX.js {}\r\n{body}\r\n",
            body.len()
        )
    };
    let login = r#"{"verbose":false,"user":"js","pass":"js-pw"}"#;
    let got = nats_conversation(addr, login, &create("OTHER")).await;
    assert_eq!(
        got,
        [
            "-ERR 'Permissions Violation for Publish to \"$JS.API.STREAM.CREATE.OTHER\"'",
            "PONG"
        ]
    );
    let client = async_nats::ConnectOptions::with_user_and_password("js".into(), "js-pw".into())
        .connect(format!("nats://{addr}"))
        .await
        .unwrap();
    async_nats::jetstream::new(client)
        .create_stream(async_nats::jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .expect("configure stream:ORDERS allows creating it");
    // Reading the stream needs subscribe on stream:ORDERS, which js lacks.
    let next = "PUB $JS.API.CONSUMER.MSG.NEXT.ORDERS.c1 _INBOX.js 1\r\n1\r\n";
    let got = nats_conversation(addr, login, next).await;
    assert_eq!(
        got[0],
        "-ERR 'Permissions Violation for Publish to \"$JS.API.CONSUMER.MSG.NEXT.ORDERS.c1\"'"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_session_resumed_by_another_user_delivers_only_what_that_user_may_read() {
    use rumqttc::QoS;
    let dir = tempfile::tempdir().unwrap();
    let broker = secured(dir.path(), Anonymous::Refused).await;
    let addr = broker.mqtt_addr().unwrap();
    let persistent = |user: &'static str, password: &'static str| {
        move |o: &mut rumqttc::MqttOptions| {
            o.set_credentials(user, password);
            o.set_clean_session(false);
        }
    };
    // alice (no deny rule) subscribes in a persistent session, then leaves.
    let (mut alice, _) = v4(addr, persistent("alice", "alice-pw"), "shared-id").await;
    alice.subscribe("sensors/#", QoS::AtLeastOnce).await;
    alice.client.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // bob resumes it: the subscription is alice's, the rules are bob's.
    let (mut bob, ack) = v4(addr, persistent("bob", "bob-pw"), "shared-id").await;
    assert!(ack.session_present);
    let (publisher, _) = v4(
        addr,
        |o| {
            o.set_credentials("alice", "alice-pw");
        },
        "publisher",
    )
    .await;
    for (topic, body) in [("sensors/secret/key", "hidden"), ("sensors/hall", "open")] {
        publisher
            .client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    let got = bob.publish().await;
    assert_eq!(got.topic, "sensors/hall");
    bob.no_publish(Duration::from_millis(300)).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn refused_subscriptions_may_be_answered_with_0x80() {
    use dwbroker_codecs::mqtt::{
        Packet, ProtocolVersion, QoS, RetainHandling, Subscribe, SubscriptionOptions,
    };
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("alice", "alice-pw")]);
    let (broker, addr) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.anonymous = Anonymous::As("alice".into());
        c.auth.mqtt5_refused_subscription = 0x80;
        c.auth.permissions.insert(
            "alice".into(),
            PermissionSpec {
                subscribe: rules(&[">"]),
                deny_subscribe: rules(&["test.nosubscribe"]),
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    let (mut raw, _) =
        common::Raw::connected(addr, common::connect(ProtocolVersion::V5, "paho-like")).await;
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: false,
        retain_as_published: false,
        retain_handling: RetainHandling::SendAtSubscribe,
    };
    raw.send_packet(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Default::default(),
        filters: vec![
            ("test/nosubscribe".into(), options),
            ("test/other".into(), options),
        ],
    }))
    .await;
    let Some(Packet::SubAck(ack)) = raw.recv().await else {
        panic!("no SUBACK");
    };
    let codes: Vec<u8> = ack.codes.iter().map(|c| c.0).collect();
    assert_eq!(codes, [0x80, 0x01]);
    broker.shutdown().await;
}
