//! The Kafka REST Proxy v2 front with reqwest, as an HTTP client of Confluent's
//! proxy would use it: topics, produce, consumer groups, offsets, the proxy's
//! errors, and committed offsets across a kill -9.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use dwbroker::router::streams::partition::for_key;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const V2: &str = "application/vnd.kafka.v2+json";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";
const JSON: &str = "application/vnd.kafka.json.v2+json";

struct Rest {
    base: String,
    http: Client,
}

impl Rest {
    fn new(addr: SocketAddr) -> Rest {
        Rest {
            base: format!("http://{addr}"),
            http: Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .header("Accept", V2),
        )
        .await
    }

    async fn post(&self, path: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body.to_string());
        self.send(req).await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp: Response = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    async fn produce(&self, topic: &str, records: Value) -> Value {
        let (status, body) = self
            .post(
                &format!("/topics/{topic}"),
                BINARY,
                json!({ "records": records }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn consumer(&self, group: &str, name: &str, extra: Value) -> String {
        let mut body = json!({ "name": name, "format": "binary", "auto.offset.reset": "earliest", "auto.commit.enable": "false" });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, created) = self.post(&format!("/consumers/{group}"), V2, body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        assert_eq!(created["instance_id"], json!(name));
        let base_uri = created["base_uri"].as_str().unwrap();
        assert!(
            base_uri.ends_with(&format!("/consumers/{group}/instances/{name}")),
            "{base_uri}"
        );
        format!("/consumers/{group}/instances/{name}")
    }

    async fn records(&self, instance: &str, accept: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .get(format!("{}{instance}/records?timeout=500", self.base))
                .header("Accept", accept),
        )
        .await
    }

    /// Records until `n` arrived (bounded), as (partition, offset, value).
    async fn read_n(&self, instance: &str, n: usize) -> Vec<(u64, u64, String)> {
        let mut got = Vec::new();
        for _ in 0..20 {
            let (status, body) = self.records(instance, BINARY).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            for r in body.as_array().unwrap() {
                got.push((
                    r["partition"].as_u64().unwrap(),
                    r["offset"].as_u64().unwrap(),
                    decode(&r["value"]),
                ));
            }
            if got.len() >= n {
                break;
            }
        }
        got
    }
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn decode(v: &Value) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

async fn start(partitions: u32) -> (dwbroker::Broker, Rest) {
    let (broker, _) = common::start_with(|c| c.kafka_partitions = partitions).await;
    let rest = Rest::new(broker.kafka_rest_addr().unwrap());
    (broker, rest)
}

#[tokio::test]
async fn produce_then_read_topics_partitions_offsets_and_brokers() {
    let (_b, rest) = start(1).await;
    let produced = rest
        .produce(
            "orders",
            json!([{ "value": b64("one") }, { "key": b64("k"), "value": b64("two") }]),
        )
        .await;
    assert_eq!(
        produced,
        json!({
            "offsets": [
                { "partition": 0, "offset": 0, "error_code": null, "error": null },
                { "partition": 0, "offset": 1, "error_code": null, "error": null },
            ],
            "key_schema_id": null,
            "value_schema_id": null,
        })
    );
    assert_eq!(
        rest.get("/topics").await,
        (StatusCode::OK, json!(["orders"]))
    );
    let (status, topic) = rest.get("/topics/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(topic["name"], json!("orders"));
    assert_eq!(
        topic["partitions"],
        json!([{ "partition": 0, "leader": 0, "replicas": [{ "broker": 0, "leader": true, "in_sync": true }] }])
    );
    assert_eq!(
        rest.get("/topics/orders/partitions")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        rest.get("/topics/orders/partitions/0").await.1["leader"],
        json!(0)
    );
    assert_eq!(
        rest.get("/topics/orders/partitions/0/offsets").await,
        (
            StatusCode::OK,
            json!({ "beginning_offset": 0, "end_offset": 2 })
        )
    );
    assert_eq!(
        rest.get("/brokers").await,
        (StatusCode::OK, json!({ "brokers": [0] }))
    );
    // JSON embedded format: the value is stored as its JSON text.
    let (status, body) = rest
        .post(
            "/topics/orders/partitions/0",
            JSON,
            json!({ "records": [{ "value": { "n": 3 } }] }),
        )
        .await;
    assert_eq!(
        (status, body["offsets"][0]["offset"].clone()),
        (StatusCode::OK, json!(2))
    );
    let c = rest
        .consumer("g", "json-reader", json!({ "format": "json" }))
        .await;
    assert_eq!(
        rest.post(
            &format!("{c}/subscription"),
            V2,
            json!({ "topics": ["orders"] })
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    // A binary record that is not JSON fails a JSON consumer, as in the proxy.
    let (status, body) = rest.records(&c, JSON).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::REQUEST_TIMEOUT, json!(40801))
    );
    let (_, body) = rest
        .post(
            &format!("{c}/positions"),
            V2,
            json!({ "offsets": [{ "topic": "orders", "partition": 0, "offset": 2 }] }),
        )
        .await;
    assert_eq!(body, Value::Null);
    let (status, body) = rest.records(&c, JSON).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["value"], json!({ "n": 3 }));
    assert_eq!(body[0]["offset"], json!(2));
}

#[tokio::test]
async fn keyed_records_land_where_kafka_would_put_them_and_others_spread() {
    let (_b, rest) = start(3).await;
    let keys = ["alpha", "beta", "gamma", "delta", "21", "foobar"];
    let records: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "key": b64(k), "value": b64(k) }))
        .collect();
    let produced = rest.produce("keyed", json!(records)).await;
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            produced["offsets"][i]["partition"],
            json!(for_key(k.as_bytes(), 3)),
            "{k}"
        );
    }
    let unkeyed: Vec<Value> = (0..6)
        .map(|i| json!({ "value": b64(&i.to_string()) }))
        .collect();
    let produced = rest.produce("spread", json!(unkeyed)).await;
    let mut per = [0; 3];
    for o in produced["offsets"].as_array().unwrap() {
        per[o["partition"].as_u64().unwrap() as usize] += 1;
    }
    assert_eq!(per, [2, 2, 2], "round robin");
    // A record naming a partition that does not exist fails alone.
    let (status, body) = rest
        .post("/topics/spread", BINARY, json!({ "records": [{ "value": b64("x"), "partition": 7 }, { "value": b64("y"), "partition": 1 }] }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["offsets"][0]["error_code"], json!(50003));
    assert_eq!(body["offsets"][0]["partition"], Value::Null);
    assert_eq!(
        (
            body["offsets"][1]["partition"].clone(),
            body["offsets"][1]["offset"].clone()
        ),
        (json!(1), json!(2))
    );
}

#[tokio::test]
async fn two_instances_of_a_group_split_partitions_and_a_new_one_resumes_from_the_commit() {
    let (_b, rest) = start(2).await;
    let records: Vec<Value> = (0..10)
        .map(|i| json!({ "value": b64(&format!("m{i}")), "partition": i % 2 }))
        .collect();
    rest.produce("work", json!(records)).await;
    let a = rest.consumer("grp", "a", json!({})).await;
    let b = rest.consumer("grp", "b", json!({})).await;
    for c in [&a, &b] {
        rest.post(
            &format!("{c}/subscription"),
            V2,
            json!({ "topics": ["work"] }),
        )
        .await;
    }
    assert_eq!(
        rest.get(&format!("{a}/subscription")).await.1,
        json!({ "topics": ["work"] })
    );
    assert_eq!(
        rest.get(&format!("{a}/assignments")).await.1,
        json!({ "partitions": [{ "topic": "work", "partition": 0 }] })
    );
    assert_eq!(
        rest.get(&format!("{b}/assignments")).await.1,
        json!({ "partitions": [{ "topic": "work", "partition": 1 }] })
    );
    let got_a = rest.read_n(&a, 5).await;
    let got_b = rest.read_n(&b, 5).await;
    assert!(
        got_a.iter().all(|(p, _, _)| *p == 0) && got_a.len() == 5,
        "{got_a:?}"
    );
    assert!(
        got_b.iter().all(|(p, _, _)| *p == 1) && got_b.len() == 5,
        "{got_b:?}"
    );
    // a commits what it read (an empty body: everything returned so far), b an explicit offset.
    let (status, body) = rest.post(&format!("{a}/offsets"), V2, Value::Null).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, _) = rest
        .post(
            &format!("{b}/offsets"),
            V2,
            json!({ "offsets": [{ "topic": "work", "partition": 1, "offset": 1 }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, committed) = rest
        .send(
            rest.http
                .get(format!("{}{a}/offsets", rest.base))
                .header("Content-Type", V2)
                .body(json!({ "partitions": [{ "topic": "work", "partition": 0 }, { "topic": "work", "partition": 1 }] }).to_string()),
        )
        .await;
    assert_eq!(
        committed,
        json!({ "offsets": [
            { "topic": "work", "partition": 0, "offset": 5, "metadata": "" },
            { "topic": "work", "partition": 1, "offset": 2, "metadata": "" },
        ] })
    );
    // Both leave; a new instance gets both partitions and resumes after the commits.
    assert_eq!(rest.delete(&a).await, StatusCode::NO_CONTENT);
    assert_eq!(rest.delete(&b).await, StatusCode::NO_CONTENT);
    let c = rest.consumer("grp", "c", json!({})).await;
    rest.post(
        &format!("{c}/subscription"),
        V2,
        json!({ "topic_pattern": "wo.*" }),
    )
    .await;
    let mut got = rest.read_n(&c, 3).await;
    got.sort();
    assert_eq!(
        got,
        [
            (1, 2, "m5".into()),
            (1, 3, "m7".into()),
            (1, 4, "m9".into())
        ]
    );
    // Seek to the beginning of partition 0 and to the end of 1.
    let parts = json!({ "partitions": [{ "topic": "work", "partition": 0 }] });
    assert_eq!(
        rest.post(&format!("{c}/positions/beginning"), V2, parts)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let got = rest.read_n(&c, 5).await;
    assert_eq!(got.iter().map(|r| r.1).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    let parts = json!({ "partitions": [{ "topic": "work", "partition": 0 }] });
    assert_eq!(
        rest.post(&format!("{c}/positions/end"), V2, parts).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(rest.records(&c, BINARY).await.1, json!([]));
    // Seek by time: the first record stored at or after it; past the last, the end.
    let at = |ms: u64| {
        let stamp = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        json!({ "timestamps": [{ "topic": "work", "partition": 1, "timestamp": stamp }] })
    };
    assert_eq!(
        rest.post(&format!("{c}/positions"), V2, at(1_000)).await.0,
        StatusCode::NO_CONTENT
    );
    let got = rest.read_n(&c, 5).await;
    assert_eq!(
        got.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    );
    let future = at(u64::from(u32::MAX) * 1000);
    assert_eq!(
        rest.post(&format!("{c}/positions"), V2, future).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rest.records(&c, BINARY).await.1,
        json!([]),
        "past the last: at the end"
    );
    let bad =
        json!({ "timestamps": [{ "topic": "work", "partition": 1, "timestamp": "yesterday" }] });
    assert_eq!(
        rest.post(&format!("{c}/positions"), V2, bad).await.1["error_code"],
        json!(422)
    );
}

#[tokio::test]
async fn kafka_records_reach_other_protocols_and_their_publishes_reach_kafka() {
    let (broker, rest) = start(1).await;
    let nats = common::nats_client(&broker).await;
    let mut sub = nats.subscribe("sensors.temp").await.unwrap();
    nats.flush().await.unwrap();
    rest.produce("sensors.temp", json!([{ "value": b64("21.5") }]))
        .await;
    assert_eq!(&common::nats_next(&mut sub).await.payload[..], b"21.5");
    // An MQTT sensor publishing on sensors/temp feeds the topic.
    let (mut mqtt, _) = common::v4(broker.mqtt_addr().unwrap(), |_| {}, "sensor").await;
    mqtt.client
        .publish("sensors/temp", rumqttc::QoS::AtLeastOnce, false, "22.0")
        .await
        .unwrap();
    mqtt.next_incoming(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    let c = rest.consumer("dash", "d", json!({})).await;
    rest.post(
        &format!("{c}/subscription"),
        V2,
        json!({ "topics": ["sensors.temp"] }),
    )
    .await;
    let got = rest.read_n(&c, 2).await;
    assert_eq!(got, [(0, 0, "21.5".into()), (0, 1, "22.0".into())]);
}

#[tokio::test]
async fn a_topic_declared_in_the_config_captures_its_subject_filters() {
    let (broker, _) = common::start_with(|c| {
        c.merge_toml(
            "[[kafka_topics]]\nname = \"plant\"\npartitions = 2\nsubjects = [\"plant.>\"]\n",
        )
        .unwrap();
    })
    .await;
    let rest = Rest::new(broker.kafka_rest_addr().unwrap());
    assert_eq!(
        rest.get("/topics/plant/partitions")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // MQTT sensors below plant/ feed it before any Kafka client produced.
    let (mut mqtt, _) = common::v4(broker.mqtt_addr().unwrap(), |_| {}, "plant-sensor").await;
    for (i, t) in ["plant/a", "plant/b/c", "plant/a", "plant/d"]
        .iter()
        .enumerate()
    {
        mqtt.client
            .publish(*t, rumqttc::QoS::AtLeastOnce, false, format!("v{i}"))
            .await
            .unwrap();
        mqtt.next_incoming(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }
    rest.produce(
        "plant",
        json!([{ "value": b64("from-kafka"), "partition": 1 }]),
    )
    .await;
    let c = rest.consumer("ops", "o", json!({})).await;
    rest.post(
        &format!("{c}/subscription"),
        V2,
        json!({ "topics": ["plant"] }),
    )
    .await;
    let mut got: Vec<String> = rest.read_n(&c, 5).await.into_iter().map(|r| r.2).collect();
    got.sort();
    assert_eq!(got, ["from-kafka", "v0", "v1", "v2", "v3"]);
    let r = common::config().merge_toml("[[kafka_topics]]\nname = \"x\"\npartitions = 0\n");
    assert!(r.is_err(), "0 partitions is refused");
}

#[tokio::test]
async fn a_declared_topic_keeps_its_retention_bytes_and_drops_the_oldest_records() {
    let (broker, _) = common::start_with(|c| {
        c.merge_toml(
            "[[kafka_topics]]\nname = \"logs\"\npartitions = 1\nretention_bytes = 1000\nretention_ms = 3600000\n",
        )
        .unwrap();
    })
    .await;
    let rest = Rest::new(broker.kafka_rest_addr().unwrap());
    let (status, topic) = rest.get("/topics/logs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(topic["configs"]["retention.bytes"], "1000");
    assert_eq!(topic["configs"]["retention.ms"], "3600000");
    let value = "v".repeat(100);
    for _ in 0..5 {
        let records: Vec<Value> = (0..10).map(|_| json!({ "value": b64(&value) })).collect();
        rest.produce("logs", json!(records)).await;
    }
    // Each record counts its subject, value and 16 bytes: 120 bytes, 8 fit in 1000.
    assert_eq!(
        rest.get("/topics/logs/partitions/0/offsets").await,
        (
            StatusCode::OK,
            json!({ "beginning_offset": 42, "end_offset": 50 })
        )
    );
}

#[tokio::test]
async fn bad_requests_get_the_proxy_status_and_error_code_and_write_nothing() {
    let (_b, rest) = start(1).await;
    let code = |r: &(StatusCode, Value)| (r.0, r.1["error_code"].clone());
    // Unsupported request types and unacceptable responses.
    let r = rest
        .post(
            "/topics/t",
            "application/json",
            json!({ "records": [{ "value": b64("x") }] }),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::UNSUPPORTED_MEDIA_TYPE, json!(415)));
    let r = rest
        .send(
            rest.http
                .get(format!("{}/topics", rest.base))
                .header("Accept", "text/html"),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::NOT_ACCEPTABLE, json!(406)));
    // Malformed JSON, base64 that is not, a body without records.
    let r = rest
        .send(
            rest.http
                .post(format!("{}/topics/t", rest.base))
                .header("Content-Type", BINARY)
                .body("{\"records\": ["),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::BAD_REQUEST, json!(400)));
    let r = rest
        .post(
            "/topics/t",
            BINARY,
            json!({ "records": [{ "value": b64("ok") }, { "value": "not base64!" }] }),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::BAD_REQUEST, json!(400)));
    let r = rest
        .post("/topics/t", BINARY, json!({ "records": [] }))
        .await;
    assert_eq!(code(&r), (StatusCode::UNPROCESSABLE_ENTITY, json!(422)));
    let r = rest
        .post("/topics/t", BINARY, json!({ "records": [{ "value": 5 }] }))
        .await;
    assert_eq!(code(&r), (StatusCode::BAD_REQUEST, json!(400)));
    // Nothing was half-written: the topic does not even exist.
    assert_eq!(
        code(&rest.get("/topics/t").await),
        (StatusCode::NOT_FOUND, json!(40401))
    );
    rest.produce("t", json!([{ "value": b64("x") }])).await;
    assert_eq!(
        rest.get("/topics/t/partitions/0/offsets").await.1["end_offset"],
        json!(1)
    );
    assert_eq!(
        code(&rest.get("/topics/t/partitions/3").await),
        (StatusCode::NOT_FOUND, json!(40402))
    );
    assert_eq!(
        code(&rest.get("/topics/nope/partitions").await),
        (StatusCode::NOT_FOUND, json!(404))
    );
    // Consumers: missing instance, duplicate name, wrong format, subscribe + assign.
    assert_eq!(
        code(&rest.records("/consumers/g/instances/ghost", BINARY).await),
        (StatusCode::NOT_FOUND, json!(40403))
    );
    let c = rest.consumer("g", "i", json!({})).await;
    let r = rest.post("/consumers/g", V2, json!({ "name": "i" })).await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, json!(40902)));
    assert_eq!(
        code(&rest.records(&c, JSON).await),
        (StatusCode::NOT_ACCEPTABLE, json!(40601))
    );
    rest.post(
        &format!("{c}/assignments"),
        V2,
        json!({ "partitions": [{ "topic": "t", "partition": 0 }] }),
    )
    .await;
    let r = rest
        .post(&format!("{c}/subscription"), V2, json!({ "topics": ["t"] }))
        .await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, json!(40903)));
    let r = rest
        .post(
            "/consumers/g",
            V2,
            json!({ "name": "j", "auto.offset.reset": "sometime" }),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::UNPROCESSABLE_ENTITY, json!(42204)));
    let r = rest
        .post("/consumers/g", V2, json!({ "name": "j", "format": "yaml" }))
        .await;
    assert_eq!(code(&r), (StatusCode::UNPROCESSABLE_ENTITY, json!(422)));
    let r = rest
        .post(
            "/topics/bad$name",
            BINARY,
            json!({ "records": [{ "value": b64("x") }] }),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::BAD_REQUEST, json!(40002)));
    // Offsets are Kafka's non-negative i64.
    let r = rest
        .post(
            &format!("{c}/offsets"),
            V2,
            json!({ "offsets": [{ "topic": "t", "partition": 0, "offset": u64::MAX }] }),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::UNPROCESSABLE_ENTITY, json!(422)));
    let r = rest
        .post(
            &format!("{c}/positions"),
            V2,
            json!({ "offsets": [{ "topic": "t", "partition": 0, "offset": -1 }] }),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::BAD_REQUEST, json!(400)));
}

#[tokio::test]
async fn jetstream_clients_do_not_see_or_change_kafka_topics() {
    let (broker, rest) = start(2).await;
    rest.produce("owned", json!([{ "value": b64("x") }])).await;
    let js = async_nats::jetstream::new(common::nats_client(&broker).await);
    assert!(js.get_stream("owned:0").await.is_err());
    assert!(js.delete_stream("owned:1").await.is_err());
    assert!(js.delete_stream("_schemas").await.is_err());
    use futures_util::StreamExt;
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(
        rest.get("/topics/owned/partitions")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_100_mb_body_is_refused_with_413_before_it_is_read() {
    let (broker, _rest) = start(1).await;
    let addr = broker.kafka_rest_addr().unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /topics/big HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {BINARY}\r\nContent-Length: {}\r\n\r\n{{\"records\":[",
        100 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(common::WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"error_code\":413"), "{text}");
}

#[test]
fn committed_offsets_and_records_survive_kill_9() {
    use common::process::{data_dir, Process};
    let dir = data_dir();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = Process::start(dir.path());
    rt.block_on(async {
        let rest = Rest::new(broker.kafka_rest);
        let records: Vec<Value> = (0..6)
            .map(|i| json!({ "value": b64(&format!("r{i}")) }))
            .collect();
        rest.produce("durable", json!(records)).await;
        let c = rest.consumer("keep", "first", json!({})).await;
        rest.post(
            &format!("{c}/subscription"),
            V2,
            json!({ "topics": ["durable"] }),
        )
        .await;
        assert_eq!(rest.read_n(&c, 6).await.len(), 6);
        let (status, _) = rest
            .post(
                &format!("{c}/offsets"),
                V2,
                json!({ "offsets": [{ "topic": "durable", "partition": 0, "offset": 3 }] }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    });
    broker.kill();
    let broker = Process::start(dir.path());
    rt.block_on(async {
        let rest = Rest::new(broker.kafka_rest);
        assert_eq!(
            rest.get("/topics/durable/partitions/0/offsets").await.1["end_offset"],
            json!(6)
        );
        let c = rest.consumer("keep", "second", json!({})).await;
        rest.post(
            &format!("{c}/subscription"),
            V2,
            json!({ "topics": ["durable"] }),
        )
        .await;
        let got = rest.read_n(&c, 2).await;
        assert_eq!(got, [(0, 4, "r4".into()), (0, 5, "r5".into())]);
    });
}
