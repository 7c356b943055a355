//! A reload of users and permissions (SIGHUP's) as open connections see it: a
//! removed user is disconnected, and subscriptions the new rules refuse end in
//! each protocol's way, while what is still allowed keeps flowing.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::amqp_raw::AmqpRaw;
use common::nats_lines::NatsLines as Nats;
use common::stomp_raw::StompRaw;
use common::users::password_file;
use common::{start_with, v5};
use dwbroker::router::{Message, Subject};
use dwbroker_codecs::amqp::{BasicConsume, Method, ReplyCode};
use dwbroker_codecs::stomp::{Command, Frame};
use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;

fn write_config(path: &Path, users: &Path, alice_subscribe: &str) {
    let text = format!(
        "[auth]\npassword_file = {users:?}\n\n\
         [auth.permissions.alice]\n{alice_subscribe}\nconfigure = [\"queue:orders.*\"]\n\n\
         [auth.permissions.bob]\nsubscribe = [\"sensors.>\"]\n"
    );
    std::fs::write(path, text).unwrap();
}

fn message(subject: &str) -> Message {
    Message {
        subject: Subject::new(subject).unwrap(),
        payload: Bytes::copy_from_slice(subject.as_bytes()),
        ..Message::default()
    }
}

#[tokio::test]
async fn a_reload_disconnects_removed_users_and_ends_refused_subscriptions() {
    use rumqttc::v5::mqttbytes::QoS;
    let dir = tempfile::tempdir().unwrap();
    let users = password_file(dir.path(), &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let config = dir.path().join("dwbroker.toml");
    write_config(
        &config,
        &users,
        "subscribe = [\"sensors.>\", \"alerts.>\", \"queue:orders.*\"]",
    );
    let (broker, mqtt) = start_with(|c| c.merge_file(&config).unwrap()).await;
    let nats = broker.nats_addr().unwrap();

    let mut alice = Nats::connect(nats, "alice", "SUB sensors.> 1\r\nSUB alerts.> 2\r\n").await;
    let mut bob = Nats::connect(nats, "bob", "SUB sensors.> 1\r\n").await;
    let (mut alice_mqtt, _) = v5(
        mqtt,
        |o| {
            o.set_credentials("alice", "alice-pw");
        },
        "alice",
    )
    .await;
    alice_mqtt.subscribe("alerts/#", QoS::AtMostOnce).await;
    alice_mqtt.subscribe("sensors/#", QoS::AtMostOnce).await;
    let mut amqp = AmqpRaw::logged_in(broker.amqp_addr().unwrap(), "alice", "alice-pw").await;
    amqp.declare(1, "orders.eu").await;
    amqp.send_method(
        1,
        BasicConsume {
            queue: "orders.eu".into(),
            consumer_tag: "c1".into(),
            ..BasicConsume::default()
        },
    )
    .await;
    assert!(matches!(
        amqp.recv_method().await,
        Some((1, Method::BasicConsumeOk(_)))
    ));
    let connect = Frame::new(Command::Connect)
        .with("accept-version", "1.2")
        .with("login", "alice")
        .with("passcode", "alice-pw");
    let (mut stomp, _) = StompRaw::handshake(broker.stomp_addr().unwrap(), connect).await;
    stomp
        .send_frame(
            &Frame::new(Command::Subscribe)
                .with("destination", "/queue/orders.eu")
                .with("id", "1")
                .with("receipt", "subscribed"),
        )
        .await;
    assert_eq!(stomp.next().await.command, Command::Receipt);

    // alice loses alerts.>, sensors.secret.> and the orders queues; bob is removed.
    write_config(
        &config,
        &users,
        "subscribe = [\"sensors.>\"]\ndeny_subscribe = [\"sensors.secret.>\"]",
    );
    let kept: String = std::fs::read_to_string(&users)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("bob:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&users, kept).unwrap();
    broker.reload_access().unwrap();

    assert_eq!(
        alice.line().await.as_deref(),
        Some("-ERR 'Permissions Violation for Subscription to \"alerts.>\"'")
    );
    assert_eq!(
        bob.line().await.as_deref(),
        Some("-ERR 'Authorization Violation'")
    );
    assert_eq!(bob.line().await, None, "bob's connection is closed");
    let error = stomp.next().await;
    assert_eq!(error.command, Command::Error, "{error:?}");
    assert_eq!(error.header("message"), Some("access_refused"));
    let why = amqp.expect_channel_close(1, ReplyCode::AccessRefused).await;
    assert!(why.contains("queue 'orders.eu'"), "{why}");
    // Only the channel is closed: the connection opens another.
    amqp.open_channel(2).await;
    // A connection takes a reload before its next input: this SUBSCRIBE is
    // judged by the new rules, and what follows is delivered under them.
    let refused = alice_mqtt.subscribe("alerts/new", QoS::AtMostOnce).await;
    assert_eq!(refused.return_codes, [SubscribeReasonCode::NotAuthorized]);

    for subject in ["alerts.fire", "sensors.secret.key", "sensors.kitchen"] {
        broker.publish(message(subject));
    }
    alice.send("").await;
    assert_eq!(
        alice.until_pong().await,
        Ok(vec![
            "MSG sensors.kitchen 1 15".to_owned(),
            "sensors.kitchen".to_owned()
        ])
    );
    assert_eq!(&alice_mqtt.publish().await.topic[..], b"sensors/kitchen");
    alice_mqtt.no_publish(Duration::from_millis(300)).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn amqp_users_without_permissions_may_not_open_the_vhost() {
    let dir = tempfile::tempdir().unwrap();
    let users = password_file(dir.path(), &[("alice", "alice-pw"), ("carol", "carol-pw")]);
    let config = dir.path().join("dwbroker.toml");
    write_config(&config, &users, "subscribe = [\"sensors.>\"]");
    let (broker, _) = start_with(|c| c.merge_file(&config).unwrap()).await;
    let addr = broker.amqp_addr().unwrap();
    let uri = format!("amqp://alice:alice-pw@{addr}/%2f");
    lapin::Connection::connect(&uri, Default::default())
        .await
        .expect("alice has permissions on the vhost");
    let uri = format!("amqp://carol:carol-pw@{addr}/%2f");
    let refused = lapin::Connection::connect(&uri, Default::default())
        .await
        .expect_err("carol has no permissions at all");
    assert!(
        refused
            .to_string()
            .contains("access to vhost '/' refused for user 'carol'"),
        "{refused}"
    );
    broker.shutdown().await;
}
