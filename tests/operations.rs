//! The operator's HTTP listener and nats-server's monitoring endpoints: health,
//! Prometheus metrics after a known workload, the JSON API (connections closed,
//! queues purged), `/varz` and `/connz`, and the admin permission.

mod common;

use std::time::Duration;

use common::nats_lines::NatsLines;
use common::users::{password_file, rules};
use common::{amqp_channel, start, start_with, WAIT};
use dwbroker::config::PermissionSpec;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let resp = Client::new()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn delete(base: &str, path: &str) -> (StatusCode, Value) {
    let resp = Client::new()
        .delete(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The samples of a scrape, by metric name and labels.
fn scrape(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text parses")
}

fn sample(scrape: &prometheus_parse::Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)));
    match found.map(|s| &s.value) {
        Some(prometheus_parse::Value::Counter(v))
        | Some(prometheus_parse::Value::Gauge(v))
        | Some(prometheus_parse::Value::Untyped(v)) => *v,
        other => panic!("{metric} {label:?}: {other:?}"),
    }
}

async fn metrics(base: &str) -> prometheus_parse::Scrape {
    let resp = Client::new()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    scrape(&resp.text().await.unwrap())
}

/// Polls until `check` holds for the metrics (the fronts publish their counts
/// once per loop turn), within [`WAIT`].
async fn metrics_until(base: &str, check: impl Fn(&prometheus_parse::Scrape) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = metrics(base).await;
        if check(&m) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:#?}", m.samples);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Declares queue `name` with `args` and publishes `n` copies of `body` to it
/// through the default exchange (without confirms: callers poll for the result).
async fn fill_queue(ch: &lapin::Channel, name: &str, args: FieldTable, n: usize, body: &[u8]) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    for _ in 0..n {
        ch.basic_publish(
            "".into(),
            name.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
}

/// A raw STOMP 1.2 connection after CONNECTED.
async fn stomp_connect(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"CONNECT\naccept-version:1.2\nhost:/\nclient-id:op-test\n\n\0")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"CONNECTED"));
    s
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("alice", "alice-pw")]);
    let (broker, _) = start_with(|c| c.auth.password_file = Some(file)).await;
    let base = format!("http://{}", broker.http_addr().unwrap());
    assert_eq!(
        get(&base, "/healthz").await,
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
    assert_eq!(
        get(&base, "/readyz").await,
        (StatusCode::OK, serde_json::json!({"status": "ready"}))
    );
    let monitor = format!("http://{}", broker.nats_monitor_addr().unwrap());
    assert_eq!(get(&monitor, "/healthz").await.0, StatusCode::OK);
    // Everything else needs a user.
    for (base, path) in [
        (&base, "/metrics"),
        (&base, "/api/overview"),
        (&monitor, "/varz"),
    ] {
        assert_eq!(get(base, path).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn metrics_count_a_known_workload_on_every_protocol() {
    let (broker, mqtt) = start().await;
    let base = format!("http://{}", broker.http_addr().unwrap());
    let before = metrics(&base).await;
    assert_eq!(
        sample(
            &before,
            "dwbroker_messages_received_total",
            Some(("protocol", "nats"))
        ),
        0.0
    );

    // NATS: one subscriber, 10 messages of 5 bytes.
    let mut nats = NatsLines::open(broker.nats_addr().unwrap()).await;
    nats.send("CONNECT {\"verbose\":false}\r\nSUB m.x 1\r\n")
        .await;
    assert_eq!(nats.until_pong().await, Ok(Vec::new()));
    nats.send(&"PUB m.x 5\r\nhello\r\n".repeat(10)).await;
    let lines = nats.until_pong().await.unwrap();
    assert_eq!(lines.iter().filter(|l| l.starts_with("MSG")).count(), 10);

    // MQTT: 3 publishes of 4 bytes.
    let (m, _) = common::v4(mqtt, |_| {}, "op-metrics").await;
    for _ in 0..3 {
        m.client
            .publish("m/y", rumqttc::QoS::AtMostOnce, false, "abcd")
            .await
            .unwrap();
    }

    // AMQP: 2 messages into a queue nobody consumes.
    let (_amqp, ch) = amqp_channel(&broker).await;
    fill_queue(&ch, "op-depth", FieldTable::default(), 2, b"xyz").await;

    // STOMP: one SEND of 6 bytes.
    let mut stomp = stomp_connect(broker.stomp_addr().unwrap()).await;
    stomp
        .write_all(b"SEND\ndestination:/topic/m.z\n\nstomp!\0")
        .await
        .unwrap();

    metrics_until(&base, |m| {
        let got = |metric, p| sample(m, metric, Some(("protocol", p)));
        got("dwbroker_messages_received_total", "nats") == 10.0
            && got("dwbroker_messages_delivered_total", "nats") == 10.0
            && got("dwbroker_received_payload_bytes_total", "nats") == 50.0
            && got("dwbroker_messages_received_total", "mqtt") == 3.0
            && got("dwbroker_received_payload_bytes_total", "mqtt") == 12.0
            && got("dwbroker_messages_received_total", "amqp") == 2.0
            && got("dwbroker_messages_received_total", "stomp") == 1.0
            && got("dwbroker_received_payload_bytes_total", "stomp") == 6.0
            && got("dwbroker_connections", "nats") == 1.0
            && got("dwbroker_connections", "mqtt") == 1.0
            && got("dwbroker_connections", "amqp") == 1.0
            && got("dwbroker_connections", "stomp") == 1.0
            && sample(
                m,
                "dwbroker_queue_messages_ready",
                Some(("queue", "op-depth")),
            ) == 2.0
            && sample(m, "dwbroker_queue_ready_bytes", Some(("queue", "op-depth"))) == 6.0
    })
    .await;
    let m = metrics(&base).await;
    assert!(sample(&m, "dwbroker_memory_high_watermark_bytes", None) > 0.0);
    assert_eq!(
        sample(
            &m,
            "dwbroker_login_failures_total",
            Some(("protocol", "mqtt"))
        ),
        0.0
    );

    // A queue with x-max-length 1 and no dead-letter exchange drops the oldest.
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(1));
    fill_queue(&ch, "op-short", args, 3, b"q").await;
    metrics_until(&base, |m| {
        sample(
            m,
            "dwbroker_messages_dropped_total",
            Some(("reason", "max_length")),
        ) == 2.0
    })
    .await;

    // A persistent message into a durable queue is fsynced before it is
    // acknowledged: the storage figures move.
    let fsyncs = sample(&m, "dwbroker_storage_fsyncs_total", None);
    ch.queue_declare(
        "op-durable".into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let resp = Client::new()
        .post(format!("{base}/amqp/exchanges/amq.default/op-durable"))
        .header("X-Delivery-Mode", "2")
        .body("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let m = metrics(&base).await;
    assert!(sample(&m, "dwbroker_storage_fsyncs_total", None) > fsyncs);
    // The HTTP bus's publish counts as HTTP's.
    let http = |metric| sample(&m, metric, Some(("protocol", "http")));
    assert_eq!(http("dwbroker_messages_received_total"), 1.0);
    assert_eq!(http("dwbroker_received_payload_bytes_total"), 4.0);
    assert!(http("dwbroker_connections_opened_total") >= 1.0);
    let commits = m
        .samples
        .iter()
        .find(|s| s.metric == "dwbroker_storage_commit_seconds")
        .map(|s| &s.value);
    match commits {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            assert!(buckets.last().unwrap().count >= 1.0, "{buckets:?}")
        }
        other => panic!("commit latency histogram: {other:?}"),
    }

    // Counters are cumulative: a closed connection's messages stay counted.
    drop(nats);
    metrics_until(&base, |m| {
        sample(m, "dwbroker_connections", Some(("protocol", "nats"))) == 0.0
            && sample(
                m,
                "dwbroker_messages_received_total",
                Some(("protocol", "nats")),
            ) == 10.0
            && sample(
                m,
                "dwbroker_connections_opened_total",
                Some(("protocol", "nats")),
            ) == 1.0
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn the_api_lists_connections_and_queues_and_closes_and_purges() {
    let (broker, mqtt) = start().await;
    let base = format!("http://{}", broker.http_addr().unwrap());

    let mut nats = NatsLines::open(broker.nats_addr().unwrap()).await;
    nats.send("CONNECT {\"verbose\":false,\"name\":\"api-client\",\"lang\":\"raw\",\"version\":\"1.0\"}\r\nSUB a.b 1\r\nSUB c.> 2\r\n")
        .await;
    assert_eq!(nats.until_pong().await, Ok(Vec::new()));
    let (_m, _) = common::v4(mqtt, |_| {}, "api-mqtt").await;

    let (status, list) = get(&base, "/api/connections").await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    // The two clients, and HTTP connections (this request's own among them).
    let wire = items.iter().filter(|c| c["protocol"] != "http").count();
    assert_eq!(wire, 2, "{list}");
    assert!(items.iter().any(|c| c["protocol"] == "http"), "{list}");
    let nats_conn = items.iter().find(|c| c["protocol"] == "nats").unwrap();
    assert_eq!(nats_conn["client_id"], "api-client");
    assert_eq!(nats_conn["client"], "raw 1.0");
    assert_eq!(nats_conn["subscriptions"], 2);
    let mqtt_conn = items.iter().find(|c| c["protocol"] == "mqtt").unwrap();
    assert_eq!(mqtt_conn["client_id"], "api-mqtt");

    // Paging.
    let (_, page) = get(&base, "/api/connections?offset=1&limit=1").await;
    assert_eq!(
        (
            page["offset"].as_u64(),
            page["limit"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(1), Some(1), 1)
    );
    assert!(page["total"].as_u64().unwrap() >= 3, "{page}");

    let (_, subs) = get(&base, "/api/subscriptions").await;
    let filters: Vec<&str> = subs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["connection"] == nats_conn["id"])
        .map(|s| s["filter"].as_str().unwrap())
        .collect();
    assert_eq!(filters.len(), 2);
    assert!(
        filters.contains(&"a.b") && filters.contains(&"c.>"),
        "{filters:?}"
    );

    // Closing the NATS connection from the API closes its socket.
    let id = nats_conn["id"].as_u64().unwrap();
    let (status, _) = delete(&base, &format!("/api/connections/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    loop {
        match nats.line().await {
            None => break,
            Some(line) => assert!(
                line.starts_with("PING") || line.starts_with("-ERR"),
                "{line}"
            ),
        }
    }
    // It leaves the list once its task has ended (after its socket closed).
    let deadline = tokio::time::Instant::now() + WAIT;
    let has_nats = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["protocol"] == "nats")
    };
    while has_nats(&get(&base, "/api/connections").await.1) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = delete(&base, &format!("/api/connections/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 404);
    assert_eq!(
        delete(&base, "/api/connections/x").await.0,
        StatusCode::BAD_REQUEST
    );

    // A queue with two messages, purged.
    let (_amqp, ch) = amqp_channel(&broker).await;
    fill_queue(&ch, "api-q", FieldTable::default(), 2, b"1").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, queues) = get(&base, "/api/queues").await;
        let q = queues["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "api-q")
            .cloned();
        if q.as_ref().is_some_and(|q| q["messages_ready"] == 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queues}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = delete(&base, "/api/queues/api-q/contents").await;
    assert_eq!((status, body["purged"].as_u64()), (StatusCode::OK, Some(2)));
    assert_eq!(
        delete(&base, "/api/queues/nope/contents").await.0,
        StatusCode::NOT_FOUND
    );

    // The dashboard: one page, nothing fetched from elsewhere.
    let resp = Client::new().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("<title>dwbroker</title>"));

    let (status, overview) = get(&base, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["ready"], true);
    assert_eq!(overview["protocols"]["nats"]["connections_opened"], 1);
    assert!(overview["queues"].as_u64().unwrap() >= 1);
    assert_eq!(get(&base, "/api/streams").await.0, StatusCode::OK);
    assert_eq!(get(&base, "/api/consumers").await.0, StatusCode::OK);
    broker.shutdown().await;
}

#[tokio::test]
async fn an_operator_close_reaches_each_protocol_as_its_own_goodbye() {
    let (broker, mqtt) = start().await;
    let base = format!("http://{}", broker.http_addr().unwrap());
    // MQTT 5: DISCONNECT 0x98 Administrative action.
    let (mut raw, _) = common::Raw::connected(
        mqtt,
        common::connect(dwbroker_codecs::mqtt::ProtocolVersion::V5, "op-close"),
    )
    .await;
    let (_, list) = get(&base, "/api/connections").await;
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["protocol"] == "mqtt")
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        delete(&base, &format!("/api/connections/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    raw.expect_disconnect(0x98).await;

    // STOMP: an ERROR, then the socket closes.
    let mut stomp = stomp_connect(broker.stomp_addr().unwrap()).await;
    let (_, list) = get(&base, "/api/connections").await;
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["protocol"] == "stomp")
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    delete(&base, &format!("/api/connections/{id}")).await;
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, stomp.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("ERROR") && text.contains("message:Connection closed"),
        "{text}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn nats_monitoring_reads_as_nats_server_s() {
    let (broker, _) = start().await;
    let monitor = format!("http://{}", broker.nats_monitor_addr().unwrap());
    let mut nats = NatsLines::open(broker.nats_addr().unwrap()).await;
    nats.send("CONNECT {\"verbose\":false,\"name\":\"mon\"}\r\nSUB s.1 1\r\nPUB s.1 2\r\nhi\r\nPUB s.2 3\r\nabc\r\n")
        .await;
    assert_eq!(nats.until_pong().await.unwrap().len(), 2);

    let (status, varz) = get(&monitor, "/varz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (varz["in_msgs"].as_u64(), varz["in_bytes"].as_u64()),
        (Some(2), Some(5))
    );
    assert_eq!(
        (varz["out_msgs"].as_u64(), varz["out_bytes"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(varz["connections"], 1);
    assert_eq!(varz["port"], broker.nats_addr().unwrap().port());
    assert!(varz["server_id"].is_string() && varz["uptime"].is_string());

    let (_, connz) = get(&monitor, "/connz?subs=1").await;
    assert_eq!(connz["num_connections"], 1);
    let c = &connz["connections"][0];
    assert_eq!(
        (c["name"].as_str(), c["subscriptions"].as_u64()),
        (Some("mon"), Some(1))
    );
    assert_eq!(
        (c["in_msgs"].as_u64(), c["out_msgs"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(c["subscriptions_list"], serde_json::json!(["s.1"]));
    assert_eq!(
        get(&monitor, "/connz?sort=bogus").await.0,
        StatusCode::BAD_REQUEST
    );

    let (_, subsz) = get(&monitor, "/subsz?subs=1&test=s.1").await;
    assert_eq!(subsz["total"], 1);
    assert_eq!(subsz["subscriptions_list"][0]["subject"], "s.1");
    let (status, jsz) = get(&monitor, "/jsz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jsz["streams"], 0, "{jsz}");

    // Once the client is gone, /connz is empty and /varz keeps its counts.
    drop(nats);
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(&monitor, "/connz").await.1["num_connections"] != 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&monitor, "/varz").await.1["in_msgs"], 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn metrics_and_the_api_need_the_admin_permission() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("root", "root-pw"), ("app", "app-pw")]);
    let (broker, _) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.permissions.insert(
            "root".into(),
            PermissionSpec {
                admin: true,
                ..PermissionSpec::default()
            },
        );
        c.auth.permissions.insert(
            "app".into(),
            PermissionSpec {
                publish: rules(&[">"]),
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    let http = broker.http_addr().unwrap();
    let monitor = broker.nats_monitor_addr().unwrap();
    let call = |addr, path: &str, user: &str| {
        let url = format!("http://{addr}{path}");
        let req = Client::new()
            .get(url)
            .basic_auth(user, Some(format!("{user}-pw")));
        async move { req.send().await.unwrap().status() }
    };
    for (addr, path) in [
        (http, "/metrics"),
        (http, "/api/connections"),
        (monitor, "/connz"),
    ] {
        assert_eq!(call(addr, path, "root").await, StatusCode::OK, "{path}");
        assert_eq!(
            call(addr, path, "app").await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let resp = Client::new()
        .get(format!("http://{http}/api/overview"))
        .basic_auth("app", Some("app-pw"))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 403);
    // A refused login counts.
    assert_eq!(
        call(http, "/metrics", "nobody").await,
        StatusCode::UNAUTHORIZED
    );
    let text = Client::new()
        .get(format!("http://{http}/metrics"))
        .basic_auth("root", Some("root-pw"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures = Some(("protocol", "http"));
    assert!(sample(&scrape(&text), "dwbroker_login_failures_total", failures) >= 1.0);
    broker.shutdown().await;
}
