//! The access matrix: every protocol × the credentials it takes (none, a wrong
//! password, the right one, and NATS tokens and nkeys) × what a user does
//! (publish, subscribe, configure; allowed and denied), each answered in its
//! protocol's idiom. Then the check that no denied message reached a subscriber
//! of any protocol. The test prints the matrix and its size.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use common::amqp_raw::AmqpRaw;
use common::nats_lines::NatsLines;
use common::stomp_raw::StompRaw;
use common::users::{password_file, rules};
use common::{connect, start_with, Raw};
use dwbroker::config::{PermissionSpec, UserSpec};
use dwbroker::Broker;
use dwbroker_codecs::amqp::{
    BasicConsume, ConfirmSelect, Frame as AmqpFrame, Method, QueueBind, QueueDeclare,
};
use dwbroker_codecs::mqtt::{
    Packet, ProtocolVersion, Publish, QoS, RetainHandling, Subscribe, SubscriptionOptions,
};
use dwbroker_codecs::stomp::{Command, Frame};
use serde_json::json;

/// What a client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creds {
    None,
    WrongPassword,
    Password,
    Token,
    Nkey,
}

/// What a logged-in user does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Only log in.
    LogIn,
    Publish,
    PublishDenied,
    Subscribe,
    SubscribeDenied,
    Configure,
    ConfigureDenied,
}

const LOGINS: [Creds; 3] = [Creds::None, Creds::WrongPassword, Creds::Password];
const OPS: [Op; 6] = [
    Op::Publish,
    Op::PublishDenied,
    Op::Subscribe,
    Op::SubscribeDenied,
    Op::Configure,
    Op::ConfigureDenied,
];

/// The NATS token of the user `robot`, whose rules are alice's.
const TOKEN: &str = "r0bot-token";

async fn broker(dir: &std::path::Path, device: &nkeys::KeyPair) -> Broker {
    let file = password_file(
        dir,
        &[
            ("alice", "alice-pw"),
            ("watch", "watch-pw"),
            ("robot", TOKEN),
        ],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let robot_hash = text
        .lines()
        .find_map(|l| l.strip_prefix("robot:"))
        .and_then(|stored| stored.split_whitespace().next())
        .unwrap()
        .to_owned();
    let alice = PermissionSpec {
        publish: rules(&["matrix.ok.>", "$JS.API.>", "exchange:matrix.ok"]),
        subscribe: rules(&[
            "matrix.ok.>",
            "_INBOX.>",
            "queue:matrix.*",
            "stream:matrix.ok.kafka",
        ]),
        configure: rules(&[
            "queue:matrix.ok*",
            "stream:MATRIX_OK",
            "stream:matrix.ok.kafka",
            "stream:matrix.ok.created",
        ]),
        ..PermissionSpec::default()
    };
    let everything = PermissionSpec {
        publish: rules(&[">", "exchange:*"]),
        subscribe: rules(&[">", "queue:*", "stream:*", "exchange:*"]),
        configure: rules(&["queue:*", "stream:*", "exchange:*"]),
        ..PermissionSpec::default()
    };
    let (broker, _) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.users.insert(
            "device".into(),
            UserSpec {
                nkey: Some(device.public_key()),
                ..UserSpec::default()
            },
        );
        c.auth.users.insert(
            "token-user".into(),
            UserSpec {
                token_hash: Some(robot_hash),
                ..UserSpec::default()
            },
        );
        for user in ["alice", "device", "token-user"] {
            c.auth.permissions.insert(user.into(), alice.clone());
        }
        c.auth.permissions.insert("watch".into(), everything);
        // A Kafka topic capturing what was denied (its streams may not overlap
        // the topics the matrix produces to) and the final marker.
        c.merge_toml(
            "[[kafka_topics]]\nname = \"watch\"\npartitions = 1\n\
             subjects = [\"matrix.denied.>\", \"matrix.end\"]\n",
        )
        .unwrap();
    })
    .await;
    broker
}

fn password(creds: Creds) -> Option<(&'static str, &'static str)> {
    match creds {
        Creds::None => None,
        Creds::WrongPassword => Some(("alice", "not-alices")),
        _ => Some(("alice", "alice-pw")),
    }
}

/// MQTT (`version` 3.1.1 or 5.0): CONNACK, PUBACK and SUBACK codes.
async fn mqtt(addr: SocketAddr, version: ProtocolVersion, creds: Creds, op: Op) -> String {
    let mut c = connect(version, &format!("matrix-{creds:?}-{op:?}"));
    if let Some((user, pw)) = password(creds) {
        c.username = Some(user.into());
        c.password = Some(Bytes::from(pw));
    }
    if version == ProtocolVersion::V311 {
        // The codec reads 3.1.1's return codes as their 5.0 reason codes: the
        // bytes on the wire are what a 3.1.1 client sees.
        use tokio::io::AsyncReadExt;
        let mut raw = Raw::open(addr, version).await;
        raw.send_packet(Packet::Connect(c.clone())).await;
        let mut connack = [0u8; 4];
        raw.stream.read_exact(&mut connack).await.unwrap();
        if connack[3] != 0 || op == Op::LogIn {
            return format!("CONNACK {:02x?}", connack);
        }
    }
    let (mut raw, ack) = Raw::connected(addr, c).await;
    let Packet::ConnAck(ack) = ack else {
        unreachable!()
    };
    if ack.code.0 != 0 || op == Op::LogIn {
        return format!("CONNACK 0x{:02x}", ack.code.0);
    }
    let topic = |denied| match denied {
        false => "matrix/ok/mqtt",
        true => "matrix/denied/mqtt",
    };
    match op {
        Op::Publish | Op::PublishDenied => {
            raw.send_packet(Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: topic(op == Op::PublishDenied).into(),
                packet_id: 1,
                properties: Default::default(),
                payload: Bytes::from(topic(op == Op::PublishDenied)),
            }))
            .await;
            match raw.recv().await {
                Some(Packet::PubAck(a)) => format!("PUBACK 0x{:02x}", a.code.0),
                other => format!("{other:?}"),
            }
        }
        Op::Subscribe | Op::SubscribeDenied => {
            let filter = match op {
                Op::Subscribe => "matrix/ok/#",
                _ => "matrix/#",
            };
            raw.send_packet(Packet::Subscribe(Subscribe {
                packet_id: 2,
                properties: Default::default(),
                filters: vec![(
                    filter.into(),
                    SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: false,
                        retain_as_published: false,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                )],
            }))
            .await;
            match raw.recv().await {
                Some(Packet::SubAck(a)) => format!("SUBACK 0x{:02x}", a.codes[0].0),
                other => format!("{other:?}"),
            }
        }
        // MQTT declares nothing.
        _ => "n/a".into(),
    }
}

/// NATS: PONG, or the `-ERR` line.
async fn nats(addr: SocketAddr, device: &nkeys::KeyPair, creds: Creds, op: Op) -> String {
    use base64::Engine;
    let mut n = NatsLines::open(addr).await;
    let connect = match creds {
        Creds::None => json!({ "verbose": false }),
        Creds::Token => json!({ "verbose": false, "auth_token": TOKEN }),
        Creds::Nkey => {
            let nonce = n.info["nonce"].as_str().expect("INFO has a nonce");
            let sig = device.sign(nonce.as_bytes()).unwrap();
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
            json!({ "verbose": false, "nkey": device.public_key(), "sig": sig })
        }
        _ => {
            let (user, pass) = password(creds).unwrap();
            json!({ "verbose": false, "user": user, "pass": pass })
        }
    };
    let stream = |name: &str| {
        let body = json!({ "name": name, "subjects": [format!("{}.js", name.to_lowercase())] });
        format!(
            "SUB _INBOX.m 9\r\nPUB $JS.API.STREAM.CREATE.{name} _INBOX.m {}\r\n{body}\r\n",
            body.to_string().len()
        )
    };
    let ops = match op {
        Op::LogIn => String::new(),
        Op::Publish => "PUB matrix.ok.nats 14\r\nmatrix.ok.nats\r\n".into(),
        Op::PublishDenied => "PUB matrix.denied.nats 18\r\nmatrix.denied.nats\r\n".into(),
        Op::Subscribe => "SUB matrix.ok.> 1\r\n".into(),
        Op::SubscribeDenied => "SUB matrix.> 1\r\n".into(),
        Op::Configure => stream("MATRIX_OK"),
        Op::ConfigureDenied => stream("MATRIX_NO"),
    };
    n.send(&format!("CONNECT {connect}\r\n{ops}")).await;
    let mut lines = match n.until_pong().await {
        Ok(lines) => lines,
        Err(lines) => return format!("{} (closed)", lines.join(" ")),
    };
    if let Some(err) = lines.iter().find(|l| l.starts_with("-ERR")) {
        return err.clone();
    }
    if op != Op::Configure {
        return "PONG".into();
    }
    // The stream's reply may come after the PONG that follows its request.
    if lines.is_empty() {
        lines.push(n.line().await.unwrap_or_default());
        lines.push(n.line().await.unwrap_or_default());
    }
    let created: serde_json::Value = serde_json::from_str(&lines[1]).unwrap_or_default();
    match (
        lines[0].starts_with("MSG _INBOX.m"),
        created["config"]["name"].as_str(),
    ) {
        (true, Some(name)) => format!("stream {name} created"),
        _ => lines.join(" "),
    }
}

/// AMQP over raw frames: connection.tune or the close, and per operation the
/// ok method or the channel's close code.
async fn amqp(addr: SocketAddr, creds: Creds, op: Op) -> String {
    let (mut raw, _) = AmqpRaw::start(addr).await;
    // AMQP always sends a user: "no credentials" is an empty one.
    let (user, pw) = password(creds).unwrap_or(("", ""));
    raw.start_ok("PLAIN", Bytes::from(format!("\0{user}\0{pw}")))
        .await;
    match raw.recv_method().await {
        Some((0, Method::ConnectionTune(t))) => {
            raw.send_method(
                0,
                dwbroker_codecs::amqp::ConnectionTuneOk {
                    channel_max: t.channel_max,
                    frame_max: t.frame_max,
                    heartbeat: 0,
                },
            )
            .await;
        }
        Some((0, Method::ConnectionClose(c))) => {
            return format!("connection.close {}", c.reply_code)
        }
        other => return format!("{other:?}"),
    }
    raw.open_vhost("/").await;
    let Some((0, Method::ConnectionOpenOk(_))) = raw.recv_method().await else {
        return "no connection.open-ok".into();
    };
    if op == Op::LogIn {
        return "connection.open-ok".into();
    }
    raw.open_channel(1).await;
    match op {
        Op::Publish | Op::PublishDenied => {
            raw.send_method(1, ConfirmSelect { nowait: false }).await;
            raw.recv_method().await;
            let key = match op {
                Op::Publish => "matrix.ok.amqp",
                _ => "matrix.denied.amqp",
            };
            raw.publish_to(1, "amq.topic", key, key.as_bytes()).await;
        }
        Op::Subscribe | Op::SubscribeDenied => {
            let queue = match op {
                Op::Subscribe => "matrix.ok.q",
                _ => "other.q",
            };
            raw.send_method(
                1,
                BasicConsume {
                    queue: queue.into(),
                    consumer_tag: "c".into(),
                    ..BasicConsume::default()
                },
            )
            .await;
        }
        _ => {
            let queue = match op {
                Op::Configure => "matrix.ok.new",
                _ => "matrix.no.new",
            };
            raw.send_method(
                1,
                QueueDeclare {
                    queue: queue.into(),
                    ..QueueDeclare::default()
                },
            )
            .await;
        }
    }
    match raw.recv_method().await {
        Some((_, Method::ChannelClose(c))) => format!("channel.close {}", c.reply_code),
        Some((_, m)) => m.name().to_owned(),
        None => "closed".into(),
    }
}

/// STOMP: CONNECTED or ERROR, and per operation its RECEIPT or ERROR.
async fn stomp(addr: SocketAddr, creds: Creds, op: Op) -> String {
    let mut connect = Frame::new(Command::Connect).with("accept-version", "1.2");
    if let Some((user, pw)) = password(creds) {
        connect = connect.with("login", user).with("passcode", pw);
    }
    let mut raw = StompRaw::connect(addr).await;
    raw.send_frame(&connect).await;
    let answer = raw.next().await;
    let answered = |f: &Frame| match f.command {
        Command::Error => format!("ERROR {}", f.header("message").unwrap_or_default()),
        c => format!("{c:?}").to_uppercase(),
    };
    if answer.command != Command::Connected || op == Op::LogIn {
        return answered(&answer);
    }
    let frame = match op {
        Op::Publish => Frame::new(Command::Send).with("destination", "/topic/matrix.ok.stomp"),
        Op::PublishDenied => {
            Frame::new(Command::Send).with("destination", "/topic/matrix.denied.stomp")
        }
        Op::Subscribe => Frame::new(Command::Subscribe)
            .with("destination", "/topic/matrix.ok.#")
            .with("id", "1"),
        Op::SubscribeDenied => Frame::new(Command::Subscribe)
            .with("destination", "/topic/matrix.#")
            .with("id", "1"),
        // A queue declared on use: matrix.* may be consumed, only matrix.ok*
        // declared.
        Op::Configure => Frame::new(Command::Subscribe)
            .with("destination", "/queue/matrix.ok.stomp")
            .with("id", "1"),
        _ => Frame::new(Command::Subscribe)
            .with("destination", "/queue/matrix.no.stomp")
            .with("id", "1"),
    };
    // Every message carries its subject, so that a watcher that sees only
    // payloads (a Kafka consumer) can tell a denied one.
    let mut frame = frame.with("receipt", "r");
    if frame.command == Command::Send {
        let subject = frame
            .header("destination")
            .unwrap_or_default()
            .replace("/topic/", "");
        frame.body = Bytes::from(subject);
    }
    raw.send_frame(&frame).await;
    answered(&raw.next().await)
}

/// Kafka REST: the HTTP status (and Confluent error code).
async fn kafka(addr: SocketAddr, creds: Creds, op: Op) -> String {
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, kind: &str, body: serde_json::Value| {
        let mut req = http
            .request(method, format!("http://{addr}{path}"))
            .header("Accept", "application/vnd.kafka.v2+json");
        if let Some((user, pw)) = password(creds) {
            req = req.basic_auth(user, Some(pw));
        }
        if !body.is_null() {
            req = req.header("Content-Type", kind).body(body.to_string());
        }
        req
    };
    let show = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        match body["error_code"].as_u64() {
            Some(code) => format!("{status} {code}"),
            None => status.to_string(),
        }
    };
    const JSON: &str = "application/vnd.kafka.json.v2+json";
    const V2: &str = "application/vnd.kafka.v2+json";
    let produce = |topic: &str| {
        let record = json!({ "records": [{ "value": topic }] });
        call(
            reqwest::Method::POST,
            &format!("/topics/{topic}"),
            JSON,
            record,
        )
    };
    let req = match op {
        Op::LogIn => call(reqwest::Method::GET, "/topics", V2, serde_json::Value::Null),
        Op::Publish => produce("matrix.ok.kafka"),
        Op::Configure => produce("matrix.ok.created"),
        Op::PublishDenied => produce("matrix.denied.kafka"),
        // Publishing to matrix.ok.> is allowed, creating this topic is not.
        Op::ConfigureDenied => produce("matrix.ok.kafka2"),
        Op::Subscribe | Op::SubscribeDenied => {
            let name = format!("{op:?}");
            let instance = json!({ "name": name, "format": "json" });
            let created = call(reqwest::Method::POST, "/consumers/matrix", V2, instance)
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 200);
            let topic = match op {
                Op::Subscribe => "matrix.ok.kafka",
                _ => "other",
            };
            call(
                reqwest::Method::POST,
                &format!("/consumers/matrix/instances/{name}/subscription"),
                V2,
                json!({ "topics": [topic] }),
            )
        }
    };
    show(req.send().await.unwrap()).await
}

/// Subscribers of every protocol, as `watch` (who may read everything), on
/// every matrix subject.
struct Watchers {
    nats: NatsLines,
    mqtt: Raw,
    amqp: AmqpRaw,
    stomp: StompRaw,
}

impl Watchers {
    async fn start(broker: &Broker) -> Watchers {
        let nats =
            NatsLines::connect(broker.nats_addr().unwrap(), "watch", "SUB matrix.> 1\r\n").await;
        let mut c = connect(ProtocolVersion::V5, "watch");
        c.username = Some("watch".into());
        c.password = Some(Bytes::from_static(b"watch-pw"));
        let (mut mqtt, _) = Raw::connected(broker.mqtt_addr().unwrap(), c).await;
        mqtt.send_packet(Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: vec![(
                "matrix/#".into(),
                SubscriptionOptions {
                    qos: QoS::AtMostOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::DoNotSend,
                },
            )],
        }))
        .await;
        assert!(matches!(mqtt.recv().await, Some(Packet::SubAck(_))));
        let mut amqp = AmqpRaw::logged_in(broker.amqp_addr().unwrap(), "watch", "watch-pw").await;
        for queue in ["watch.q", "matrix.ok.q", "other.q"] {
            amqp.declare(1, queue).await;
        }
        amqp.send_method(
            1,
            QueueBind {
                queue: "watch.q".into(),
                exchange: "amq.topic".into(),
                routing_key: "matrix.#".into(),
                ..QueueBind::default()
            },
        )
        .await;
        assert!(matches!(
            amqp.recv_method().await,
            Some((1, Method::QueueBindOk(_)))
        ));
        let connect = Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("login", "watch")
            .with("passcode", "watch-pw");
        let (mut stomp, _) = StompRaw::handshake(broker.stomp_addr().unwrap(), connect).await;
        stomp
            .send_frame(
                &Frame::new(Command::Subscribe)
                    .with("destination", "/topic/matrix.#")
                    .with("id", "w")
                    .with("receipt", "w"),
            )
            .await;
        assert_eq!(stomp.next().await.command, Command::Receipt);
        Watchers {
            nats,
            mqtt,
            amqp,
            stomp,
        }
    }

    /// The subjects each watcher received up to `marker` (published last).
    async fn received(&mut self, marker: &str) -> Vec<(&'static str, Vec<String>)> {
        let mut nats = Vec::new();
        while let Some(line) = self.nats.line().await {
            if let Some(subject) = line.strip_prefix("MSG ").and_then(|m| m.split(' ').next()) {
                nats.push(subject.to_owned());
                if subject == marker {
                    break;
                }
            }
        }
        let mut mqtt = Vec::new();
        while let Some(Packet::Publish(p)) = self.mqtt.recv().await {
            let subject = p.topic.replace('/', ".");
            mqtt.push(subject.clone());
            if subject == marker {
                break;
            }
        }
        let mut amqp = Vec::new();
        loop {
            self.amqp
                .send_method(
                    1,
                    dwbroker_codecs::amqp::BasicGet {
                        queue: "watch.q".into(),
                        no_ack: true,
                        ..Default::default()
                    },
                )
                .await;
            match self.amqp.recv_method().await {
                Some((1, Method::BasicGetOk(ok))) => {
                    // The header frame follows, and a body frame unless it is empty.
                    if let Some(AmqpFrame::Header { header, .. }) = self.amqp.recv().await {
                        if header.body_size > 0 {
                            self.amqp.recv().await;
                        }
                    }
                    amqp.push(ok.routing_key.clone());
                    if ok.routing_key == marker {
                        break;
                    }
                }
                Some((1, Method::BasicGetEmpty(_))) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                other => panic!("{other:?}"),
            }
        }
        let mut stomp = Vec::new();
        loop {
            let f = self.stomp.next().await;
            let destination = f.header("destination").unwrap_or_default().to_owned();
            let subject = destination.trim_start_matches("/topic/").to_owned();
            stomp.push(subject.clone());
            if subject == marker {
                break;
            }
        }
        vec![
            ("NATS", nats),
            ("MQTT", mqtt),
            ("AMQP", amqp),
            ("STOMP", stomp),
        ]
    }
}

/// The payloads of the Kafka topic `watch`, up to `marker`, read as `watch`.
async fn kafka_watched(addr: SocketAddr, marker: &str) -> Vec<String> {
    use base64::Engine;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/consumers/watch");
    let v2 = "application/vnd.kafka.v2+json";
    let created = http
        .post(&base)
        .basic_auth("watch", Some("watch-pw"))
        .header("Content-Type", v2)
        .body(
            json!({ "name": "w", "format": "binary", "auto.offset.reset": "earliest" }).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let subscribed = http
        .post(format!("{base}/instances/w/subscription"))
        .basic_auth("watch", Some("watch-pw"))
        .header("Content-Type", v2)
        .body(json!({ "topics": ["watch"] }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 204);
    let mut payloads = Vec::new();
    for _ in 0..20 {
        let records: serde_json::Value = http
            .get(format!("{base}/instances/w/records"))
            .basic_auth("watch", Some("watch-pw"))
            .header("Accept", "application/vnd.kafka.binary.v2+json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for r in records.as_array().unwrap() {
            let value = base64::engine::general_purpose::STANDARD
                .decode(r["value"].as_str().unwrap_or_default())
                .unwrap();
            payloads.push(String::from_utf8_lossy(&value).trim_matches('"').to_owned());
        }
        if payloads.iter().any(|p| p == marker) {
            break;
        }
    }
    payloads
}

impl Watchers {}

#[tokio::test]
async fn auth_matrix_of_five_protocols_credentials_and_operations() {
    let dir = tempfile::tempdir().unwrap();
    let device = nkeys::KeyPair::new_user();
    let broker = broker(dir.path(), &device).await;
    let mut watchers = Watchers::start(&broker).await;
    let mqtt_addr = broker.mqtt_addr().unwrap();
    let nats_addr = broker.nats_addr().unwrap();
    let amqp_addr = broker.amqp_addr().unwrap();
    let stomp_addr = broker.stomp_addr().unwrap();
    let kafka_addr = broker.kafka_rest_addr().unwrap();

    // (protocol, credentials, operation, expected answer)
    let mut expected: Vec<(&str, Creds, Op, &str)> = Vec::new();
    let logins = |proto, answers: [&'static str; 3]| {
        LOGINS
            .into_iter()
            .zip(answers)
            .map(move |(c, a)| (proto, c, Op::LogIn, a))
    };
    let ops = |proto, answers: [&'static str; 6]| {
        OPS.into_iter()
            .zip(answers)
            .map(move |(o, a)| (proto, Creds::Password, o, a))
    };
    expected.extend(logins(
        "MQTT 5",
        ["CONNACK 0x87", "CONNACK 0x86", "CONNACK 0x00"],
    ));
    expected.extend(ops(
        "MQTT 5",
        [
            "PUBACK 0x00",
            "PUBACK 0x87",
            "SUBACK 0x01",
            "SUBACK 0x87",
            "n/a",
            "n/a",
        ],
    ));
    // 3.1.1 return codes 5 (not authorized) and 4 (bad user name or password).
    expected.extend(logins(
        "MQTT 3.1.1",
        [
            "CONNACK [20, 02, 00, 05]",
            "CONNACK [20, 02, 00, 04]",
            "CONNACK [20, 02, 00, 00]",
        ],
    ));
    expected.extend(ops(
        "MQTT 3.1.1",
        [
            "PUBACK 0x00",
            "PUBACK 0x00",
            "SUBACK 0x01",
            "SUBACK 0x80",
            "n/a",
            "n/a",
        ],
    ));
    let violation = "-ERR 'Authorization Violation' (closed)";
    expected.extend(logins("NATS", [violation, violation, "PONG"]));
    expected.push(("NATS", Creds::Token, Op::LogIn, "PONG"));
    expected.push(("NATS", Creds::Nkey, Op::LogIn, "PONG"));
    expected.extend(ops(
        "NATS",
        [
            "PONG",
            "-ERR 'Permissions Violation for Publish to \"matrix.denied.nats\"'",
            "PONG",
            "-ERR 'Permissions Violation for Subscription to \"matrix.>\"'",
            "stream MATRIX_OK created",
            "-ERR 'Permissions Violation for Publish to \"$JS.API.STREAM.CREATE.MATRIX_NO\"'",
        ],
    ));
    expected.extend(logins(
        "AMQP",
        [
            "connection.close 403",
            "connection.close 403",
            "connection.open-ok",
        ],
    ));
    expected.extend(ops(
        "AMQP",
        [
            "basic.ack",
            "channel.close 403",
            "basic.consume-ok",
            "channel.close 403",
            "queue.declare-ok",
            "channel.close 403",
        ],
    ));
    expected.extend(logins(
        "STOMP",
        ["ERROR Bad CONNECT", "ERROR Bad CONNECT", "CONNECTED"],
    ));
    expected.extend(ops(
        "STOMP",
        [
            "RECEIPT",
            "ERROR access_refused",
            "RECEIPT",
            "ERROR access_refused",
            "RECEIPT",
            "ERROR access_refused",
        ],
    ));
    expected.extend(logins("Kafka REST", ["401 40101", "401 40101", "200"]));
    expected.extend(ops(
        "Kafka REST",
        ["200", "403 40301", "204", "403 40301", "200", "403 40301"],
    ));

    let mut table = String::new();
    let mut wrong = Vec::new();
    for (proto, creds, op, want) in &expected {
        let got = match *proto {
            "MQTT 5" => mqtt(mqtt_addr, ProtocolVersion::V5, *creds, *op).await,
            "MQTT 3.1.1" => mqtt(mqtt_addr, ProtocolVersion::V311, *creds, *op).await,
            "NATS" => nats(nats_addr, &device, *creds, *op).await,
            "AMQP" => amqp(amqp_addr, *creds, *op).await,
            "STOMP" => stomp(stomp_addr, *creds, *op).await,
            _ => kafka(kafka_addr, *creds, *op).await,
        };
        writeln!(table, "{proto:<11} {creds:<13?} {op:<15?} {got}").unwrap();
        if got != *want {
            wrong.push(format!(
                "{proto} {creds:?} {op:?}: expected {want}, got {got}"
            ));
        }
    }
    println!(
        "auth matrix: 5 protocols (MQTT in two versions), {} cells\n{table}",
        expected.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // No denied message reached anyone; the allowed ones did.
    broker.publish(dwbroker::router::Message {
        subject: dwbroker::router::Subject::new("matrix.end").unwrap(),
        payload: Bytes::from_static(b"matrix.end"),
        ..Default::default()
    });
    let kafka = kafka_watched(kafka_addr, "matrix.end").await;
    println!("Kafka REST watcher (of matrix.denied.>) received {kafka:?}");
    assert_eq!(
        kafka,
        ["matrix.end"],
        "only the marker reached the Kafka topic"
    );
    for (proto, subjects) in watchers.received("matrix.end").await {
        println!("{proto} watcher received {subjects:?}");
        assert!(
            !subjects.iter().any(|s| s.contains("denied")),
            "a denied message reached a {proto} subscriber: {subjects:?}"
        );
        for allowed in [
            "matrix.ok.mqtt",
            "matrix.ok.nats",
            "matrix.ok.amqp",
            "matrix.ok.stomp",
            "matrix.ok.kafka",
        ] {
            assert!(
                subjects.iter().any(|s| s == allowed),
                "{proto} watcher missed {allowed}: {subjects:?}"
            );
        }
    }
    broker.shutdown().await;
}
