//! The HTTP bus interface on the `--http` listener, with reqwest: POST publishes
//! to every protocol's subscribers, GET returns what other protocols published
//! (held between polls for an `X-Client-Id`), PUT makes a NATS request answered by
//! NATS and MQTT 5 responders, DELETE unsubscribes; errors and permissions.

mod common;

use std::time::Duration;

use common::nats_lines::NatsLines;
use common::users::{password_file, rules};
use common::{amqp_channel, amqp_next, nats_client, nats_next, start, start_with, WAIT};
use dwbroker::config::PermissionSpec;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Http {
    base: String,
    client: Client,
}

impl Http {
    fn new(broker: &dwbroker::Broker) -> Http {
        Http {
            base: format!("http://{}", broker.http_addr().unwrap()),
            client: Client::new(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn post(&self, path: &str, body: &'static [u8]) -> (StatusCode, Value) {
        answer(self.req(reqwest::Method::POST, path).body(body)).await
    }

    async fn get(&self, path: &str, client_id: Option<&str>) -> (StatusCode, Value) {
        let mut r = self.req(reqwest::Method::GET, path);
        if let Some(id) = client_id {
            r = r.header("X-Client-Id", id);
        }
        answer(r).await
    }
}

async fn answer(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A raw STOMP 1.2 connection subscribed to `destination` (its receipt read).
async fn stomp_subscribed(addr: std::net::SocketAddr, destination: &str) -> tokio::net::TcpStream {
    let mut stomp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let frames = format!(
        "CONNECT\naccept-version:1.2\nhost:/\n\n\0\
         SUBSCRIBE\nid:0\ndestination:{destination}\nreceipt:r\n\n\0"
    );
    stomp.write_all(frames.as_bytes()).await.unwrap();
    read_until(&mut stomp, "receipt-id:r").await;
    stomp
}

/// What `stomp` sends until `needle` has come, within [`WAIT`] for each read.
async fn read_until(stomp: &mut tokio::net::TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(needle) {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(WAIT, stomp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before {needle:?}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_post_reaches_subscribers_of_every_protocol() {
    let (broker, mqtt) = start().await;
    let http = Http::new(&broker);
    let nats = nats_client(&broker).await;
    let mut nats_sub = nats.subscribe("bus.reading").await.unwrap();
    nats.flush().await.unwrap();
    let (mut m, _) = common::v4(mqtt, |_| {}, "bus-mqtt").await;
    m.subscribe("bus/reading", rumqttc::QoS::AtLeastOnce).await;
    let (_amqp, ch) = amqp_channel(&broker).await;
    ch.queue_declare(
        "bus-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "bus-q".into(),
        "amq.topic".into(),
        "bus.reading".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            "bus-q".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut stomp = stomp_subscribed(broker.stomp_addr().unwrap(), "/topic/bus.reading").await;

    let resp = http
        .req(reqwest::Method::POST, "/mqtt/bus/reading")
        .header("X-QoS", "1")
        .header("Content-Type", "text/plain")
        .body("21.5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body["matched"].as_u64().unwrap() >= 3, "{body}");

    assert_eq!(&nats_next(&mut nats_sub).await.payload[..], b"21.5");
    let p = m.publish().await;
    assert_eq!(
        (p.topic.as_ref(), &p.payload[..]),
        (&b"bus/reading"[..], &b"21.5"[..])
    );
    assert_eq!(&amqp_next(&mut consumer).await.data[..], b"21.5");
    let got = read_until(&mut stomp, "21.5").await;
    assert!(got.starts_with("MESSAGE"), "{got}");

    // NATS: the same, by subject.
    let (status, _) = http.post("/nats/bus.reading", b"22").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&nats_next(&mut nats_sub).await.payload[..], b"22");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_get_subscription_holds_messages_between_polls_until_deleted() {
    let (broker, mqtt) = start().await;
    let http = Http::new(&broker);
    // The first poll makes the subscription.
    let (status, first) = http.get("/mqtt/poll/+", Some("poller")).await;
    assert_eq!((status, first), (StatusCode::OK, serde_json::json!([])));
    let (m, _) = common::v4(mqtt, |_| {}, "bus-pub").await;
    m.client
        .publish("poll/a", rumqttc::QoS::AtLeastOnce, false, "one")
        .await
        .unwrap();
    m.client
        .publish(
            "poll/b",
            rumqttc::QoS::AtMostOnce,
            false,
            vec![0xffu8, 0xfe],
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < 2 && tokio::time::Instant::now() < deadline {
        let (_, batch) = http.get("/mqtt/poll/+?wait_ms=500", Some("poller")).await;
        got.extend(batch.as_array().unwrap().iter().cloned());
    }
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["topic"], "poll/a");
    assert_eq!(
        (got[0]["payload"].as_str(), got[0]["qos"].as_u64()),
        (Some("one"), Some(1))
    );
    assert_eq!(
        (got[1]["payload"].as_str(), got[1]["encoding"].as_str()),
        (Some("//4="), Some("base64"))
    );

    // Another client id has its own subscription, which saw none of it.
    let (_, other) = http.get("/mqtt/poll/+", Some("someone-else")).await;
    assert_eq!(other, serde_json::json!([]));

    let delete = |id: &str| {
        http.req(reqwest::Method::DELETE, "/mqtt/poll/+")
            .header("X-Client-Id", id)
            .send()
    };
    assert_eq!(
        delete("poller").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete("poller").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_long_poll_without_client_id_waits_for_the_next_message_and_retained_come_first() {
    let (broker, _) = start().await;
    let http = Http::new(&broker);
    let nats = nats_client(&broker).await;
    let publisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        nats.publish("wait.here", "late".into()).await.unwrap();
        nats.flush().await.unwrap();
    });
    let (status, got) = http.get("/nats/wait.*?wait_ms=5000", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got[0]["subject"], "wait.here");
    assert_eq!(got[0]["payload"], "late");
    publisher.await.unwrap();

    // A retained MQTT message, posted over HTTP, is the first answer of a new
    // subscription.
    let resp = http
        .req(reqwest::Method::POST, "/mqtt/state/door")
        .header("X-Retain", "1")
        .body("open")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, got) = http.get("/mqtt/state/%23", None).await;
    assert_eq!(got[0]["topic"], "state/door");
    assert_eq!(
        (got[0]["payload"].as_str(), got[0]["retain"].as_bool()),
        (Some("open"), Some(true))
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_put_is_a_request_answered_by_nats_and_mqtt5_responders() {
    let (broker, mqtt) = start().await;
    let http = Http::new(&broker);
    let nats = nats_client(&broker).await;
    let mut service = nats.subscribe("svc.upper").await.unwrap();
    nats.flush().await.unwrap();
    let responder = tokio::spawn(async move {
        let m = nats_next(&mut service).await;
        let text = String::from_utf8_lossy(&m.payload).to_uppercase();
        nats.publish(m.reply.unwrap(), text.into()).await.unwrap();
        nats.flush().await.unwrap();
    });
    let resp = http
        .req(reqwest::Method::PUT, "/nats/svc.upper")
        .body("shout")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "SHOUT");
    responder.await.unwrap();

    // An MQTT 5 responder answers on the request's response topic.
    let (mut m5, _) = common::v5(mqtt, |_| {}, "bus-responder").await;
    m5.subscribe("svc/echo", rumqttc::v5::mqttbytes::QoS::AtMostOnce)
        .await;
    let http_request = tokio::spawn({
        let base = http.base.clone();
        async move {
            Client::new()
                .put(format!("{base}/nats/svc.echo?timeout_ms=5000"))
                .body("ping")
                .send()
                .await
                .unwrap()
        }
    });
    let request = m5.publish().await;
    let topic = request
        .properties
        .as_ref()
        .unwrap()
        .response_topic
        .clone()
        .unwrap();
    m5.client
        .publish(
            topic,
            rumqttc::v5::mqttbytes::QoS::AtMostOnce,
            false,
            "pong",
        )
        .await
        .unwrap();
    let resp = http_request.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "pong");

    // Nobody listens: 503; nobody answers in time: 504.
    let (status, body) = answer(http.req(reqwest::Method::PUT, "/nats/svc.nobody").body("x")).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(503))
    );
    let mut lines = NatsLines::open(broker.nats_addr().unwrap()).await;
    lines
        .send("CONNECT {\"verbose\":false}\r\nSUB svc.silent 1\r\n")
        .await;
    assert_eq!(lines.until_pong().await, Ok(Vec::new()));
    let (status, _) = answer(
        http.req(reqwest::Method::PUT, "/nats/svc.silent?timeout_ms=200")
            .body("x"),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let (broker, _) = start_with(|c| c.limits.max_message_size = 1024).await;
    let http = Http::new(&broker);
    use reqwest::Method as M;
    // (method, path, a header, body size, the answer)
    type Case = (
        M,
        &'static str,
        Option<(&'static str, &'static str)>,
        usize,
        StatusCode,
    );
    let cases: [Case; 6] = [
        (M::POST, "/mqtt/a/+", None, 1, StatusCode::BAD_REQUEST),
        (M::POST, "/nats/a.*", None, 1, StatusCode::BAD_REQUEST),
        (
            M::POST,
            "/mqtt/a",
            Some(("X-QoS", "3")),
            1,
            StatusCode::BAD_REQUEST,
        ),
        (
            M::POST,
            "/nats/a",
            None,
            2048,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            M::POST,
            "/nats/a",
            Some(("X-Reply-To", "b.>")),
            1,
            StatusCode::BAD_REQUEST,
        ),
        (M::DELETE, "/nats/a", None, 0, StatusCode::BAD_REQUEST),
    ];
    for (method, path, header, size, expected) in cases {
        let mut r = http.req(method.clone(), path).body(vec![b'x'; size]);
        if let Some((k, v)) = header {
            r = r.header(k, v);
        }
        let (status, body) = answer(r).await;
        assert_eq!(status, expected, "{method} {path} {header:?}: {body}");
        assert_eq!(
            body["code"].as_u64(),
            Some(u64::from(expected.as_u16())),
            "{body}"
        );
        assert!(body["error"].is_string(), "{body}");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn the_bus_follows_the_users_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("app", "app-pw")]);
    let (broker, _) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.permissions.insert(
            "app".into(),
            PermissionSpec {
                publish: rules(&["app.>"]),
                subscribe: rules(&["app.>"]),
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    let http = Http::new(&broker);
    let as_app = |method, path: &str| {
        http.req(method, path)
            .basic_auth("app", Some("app-pw"))
            .body("x")
    };
    assert_eq!(
        answer(as_app(reqwest::Method::POST, "/nats/app.ok"))
            .await
            .0,
        StatusCode::OK
    );
    for (method, path) in [
        (reqwest::Method::POST, "/nats/other"),
        (reqwest::Method::GET, "/nats/other.>"),
        (reqwest::Method::PUT, "/nats/other"),
        (reqwest::Method::POST, "/mqtt/other/x"),
    ] {
        let (status, body) = answer(as_app(method.clone(), path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    // Another site's page in a browser may not use the bus (nor the API).
    let (status, _) = answer(
        as_app(reqwest::Method::POST, "/nats/app.ok").header("Sec-Fetch-Site", "cross-site"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // No credentials: 401.
    assert_eq!(
        http.post("/nats/app.ok", b"x").await.0,
        StatusCode::UNAUTHORIZED
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn an_idle_subscription_expires() {
    let (broker, _) =
        start_with(|c| c.limits.http_subscription_timeout = Duration::from_secs(1)).await;
    let http = Http::new(&broker);
    http.get("/nats/idle.x", Some("sleepy")).await;
    let nats = nats_client(&broker).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Published after it expired: a new subscription, which did not hold it.
    nats.publish("idle.x", "lost".into()).await.unwrap();
    nats.flush().await.unwrap();
    let (_, got) = http.get("/nats/idle.x", Some("sleepy")).await;
    assert_eq!(got, serde_json::json!([]));
    // The delete finds the new one only.
    let resp = http
        .req(reqwest::Method::DELETE, "/nats/idle.x")
        .header("X-Client-Id", "sleepy")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    broker.shutdown().await;
}

#[tokio::test]
async fn amqp_rows_declare_bind_publish_get_and_delete() {
    let (broker, _) = start().await;
    let http = Http::new(&broker);
    let call = |method: reqwest::Method, path: &str| http.req(method, path);
    use reqwest::Method as M;
    for path in [
        "/amqp/exchanges/orders?type=topic",
        "/amqp/queues/orders-q",
        "/amqp/bindings/orders/orders-q/order.%23",
    ] {
        let (status, body) = answer(call(M::PUT, path)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}: {body}");
    }
    let resp = call(M::POST, "/amqp/exchanges/orders/order.created")
        .header("X-Delivery-Mode", "2")
        .header("X-Correlation-Id", "c-7")
        .body("o1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["routed"], true);
    let (status, got) = answer(call(M::GET, "/amqp/queues/orders-q?count=5")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got.as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got[0]["payload"], "o1");
    assert_eq!(
        (got[0]["exchange"].as_str(), got[0]["routing_key"].as_str()),
        (Some("orders"), Some("order.created"))
    );
    assert_eq!(
        (
            got[0]["correlation_id"].as_str(),
            got[0]["redelivered"].as_bool()
        ),
        (Some("c-7"), Some(false))
    );
    // Acknowledged on return.
    assert_eq!(
        answer(call(M::GET, "/amqp/queues/orders-q")).await.1,
        serde_json::json!([])
    );

    // The default exchange, and an AMQP client reading what HTTP published.
    let (_amqp, ch) = amqp_channel(&broker).await;
    call(M::POST, "/amqp/exchanges/amq.default/orders-q")
        .body("direct")
        .send()
        .await
        .unwrap();
    let got = ch
        .basic_get(
            "orders-q".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(&got.delivery.data[..], b"direct");

    // Unbound, nothing is routed; refusals by the model are HTTP errors.
    assert_eq!(
        answer(call(M::DELETE, "/amqp/bindings/orders/orders-q/order.%23"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, body) = answer(call(M::POST, "/amqp/exchanges/orders/order.created").body("o2")).await;
    assert_eq!(body["routed"], false);
    assert_eq!(
        answer(call(M::PUT, "/amqp/exchanges/amq.topic?type=direct"))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        answer(call(M::PUT, "/amqp/exchanges/x?type=bogus")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        answer(call(M::DELETE, "/amqp/queues/orders-q")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        answer(call(M::GET, "/amqp/queues/orders-q")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        answer(call(M::DELETE, "/amqp/exchanges/orders")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        answer(call(M::POST, "/amqp/exchanges/orders/k").body("x"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn stomp_rows_send_to_topics_and_queues_and_read_them() {
    let (broker, _) = start().await;
    let http = Http::new(&broker);
    use reqwest::Method as M;
    let mut stomp = stomp_subscribed(broker.stomp_addr().unwrap(), "/topic/st.x").await;
    let (status, _) = answer(http.req(M::POST, "/stomp/topic/st.x").body("s1")).await;
    assert_eq!(status, StatusCode::OK);
    let got = read_until(&mut stomp, "s1").await;
    assert!(got.contains("destination:/topic/st.x"), "{got}");

    // A /queue/ destination is declared on use, and read back.
    let (status, _) = answer(
        http.req(M::POST, "/stomp/queue/st-q")
            .header("X-Persistent", "true")
            .body("s2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = answer(http.req(M::GET, "/stomp/queue/st-q?count=10")).await;
    assert_eq!(got[0]["payload"], "s2");

    // A held topic subscription gets what a STOMP client sends.
    http.get("/stomp/topic/st.y", Some("st-poller")).await;
    stomp
        .write_all(b"SEND\ndestination:/topic/st.y\n\nfrom stomp\0")
        .await
        .unwrap();
    let (_, got) = http
        .get("/stomp/topic/st.y?wait_ms=3000", Some("st-poller"))
        .await;
    assert_eq!(got[0]["destination"], "/topic/st.y", "{got}");
    assert_eq!(got[0]["payload"], "from stomp");
    let resp = http
        .req(M::DELETE, "/stomp/topic/st.y")
        .header("X-Client-Id", "st-poller")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for (method, path) in [
        (M::GET, "/stomp/exchange/amq.topic/k"),
        (M::POST, "/stomp/nowhere/x"),
    ] {
        assert_eq!(
            answer(http.req(method, path).body("x")).await.0,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_poll_the_client_abandons_leaves_no_subscription_behind() {
    let (broker, _) = start().await;
    let http = Http::new(&broker);
    let sessions = |o: &Value| o["sessions"].as_u64().unwrap();
    let before = sessions(&http.get("/api/overview", None).await.1);
    // The client gives up on a long poll and on a request after 200 ms.
    let poll = http.req(reqwest::Method::GET, "/nats/gone.*?wait_ms=30000");
    let request = http.req(reqwest::Method::PUT, "/nats/gone.svc?timeout_ms=30000");
    let mut lines = NatsLines::open(broker.nats_addr().unwrap()).await;
    lines
        .send("CONNECT {\"verbose\":false}\r\nSUB gone.svc 1\r\n")
        .await;
    assert_eq!(lines.until_pong().await, Ok(Vec::new()));
    let with_responder = sessions(&http.get("/api/overview", None).await.1);
    for r in [poll, request] {
        assert!(tokio::time::timeout(Duration::from_millis(200), r.send())
            .await
            .is_err());
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while sessions(&http.get("/api/overview", None).await.1) != with_responder {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a session was left open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(with_responder, before + 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn retained_messages_a_user_may_not_read_stay_out_of_a_get() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("viewer", "viewer-pw")]);
    let (broker, mqtt) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.permissions.insert(
            "viewer".into(),
            PermissionSpec {
                publish: rules(&["a.>"]),
                subscribe: rules(&["a.>"]),
                deny_subscribe: rules(&["a.secret"]),
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    let http = Http::new(&broker);
    let (m, _) = common::v4(
        mqtt,
        |o| {
            o.set_credentials("viewer", "viewer-pw");
        },
        "retainer",
    )
    .await;
    for topic in ["a/open", "a/secret"] {
        m.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, "r")
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, got) = answer(
            http.req(reqwest::Method::GET, "/mqtt/a/%23")
                .basic_auth("viewer", Some("viewer-pw")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{got}");
        let topics: Vec<&str> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["topic"].as_str().unwrap())
            .collect();
        assert!(!topics.contains(&"a/secret"), "{got}");
        if topics == ["a/open"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.shutdown().await;
}
