//! The schema registry with reqwest: every resource and its errors, the three
//! schema types, compatibility levels, deletes, the registry's own listener, the
//! Kafka REST produce of the schema formats, and schemas across a kill -9.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const SR: &str = "application/vnd.schemaregistry.v1+json";

struct Registry {
    base: String,
    http: Client,
}

impl Registry {
    fn new(addr: SocketAddr) -> Registry {
        Registry {
            base: format!("http://{addr}"),
            http: Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("Content-Type", SR).body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    async fn register(&self, subject: &str, schema: &str, kind: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema, "schemaType": kind }),
        )
        .await
    }
}

fn code(r: &(StatusCode, Value)) -> (u16, Value) {
    (r.0.as_u16(), r.1["error_code"].clone())
}

const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}"#;
const BREAKING: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#;

async fn start() -> (dwbroker::Broker, Registry) {
    let (broker, _) = common::start_with(|c| {
        c.listeners.schema_registry = dwbroker::config::Listen::parse("127.0.0.1:0").unwrap();
    })
    .await;
    let r = Registry::new(broker.kafka_rest_addr().unwrap());
    (broker, r)
}

#[tokio::test]
async fn register_look_up_and_read_versions_and_ids() {
    let (broker, r) = start().await;
    assert_eq!(
        r.get("/schemas/types").await.1,
        json!(["JSON", "PROTOBUF", "AVRO"])
    );
    assert_eq!(
        r.register("users-value", V1, "AVRO").await,
        (StatusCode::OK, json!({ "id": 1 }))
    );
    // The same schema (in another spelling) is the same version; under another subject, the same id.
    let spaced = V1.replace(',', ", ");
    assert_eq!(
        r.register("users-value", &spaced, "AVRO").await.1,
        json!({ "id": 1 })
    );
    assert_eq!(r.register("other", V1, "AVRO").await.1, json!({ "id": 1 }));
    assert_eq!(
        r.register("users-value", V2, "AVRO").await.1,
        json!({ "id": 2 })
    );
    assert_eq!(r.get("/subjects").await.1, json!(["other", "users-value"]));
    assert_eq!(
        r.get("/subjects/users-value/versions").await.1,
        json!([1, 2])
    );
    let (status, latest) = r.get("/subjects/users-value/versions/latest").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            latest["subject"].clone(),
            latest["version"].clone(),
            latest["id"].clone(),
            latest["schemaType"].clone()
        ),
        (json!("users-value"), json!(2), json!(2), json!("AVRO"))
    );
    assert_eq!(
        r.get("/subjects/users-value/versions/-1").await.1["version"],
        json!(2)
    );
    assert_eq!(
        r.get("/subjects/users-value/versions/1/schema").await.1,
        serde_json::from_str::<Value>(V1).unwrap()
    );
    assert_eq!(r.get("/schemas/ids/2").await.1["schema"], json!(V2));
    assert_eq!(
        r.get("/schemas/ids/1/versions").await.1,
        json!([{ "subject": "other", "version": 1 }, { "subject": "users-value", "version": 1 }])
    );
    let (status, found) = r
        .post("/subjects/users-value", json!({ "schema": V1 }))
        .await;
    assert_eq!(
        (status, found["version"].clone(), found["id"].clone()),
        (StatusCode::OK, json!(1), json!(1))
    );
    // Errors.
    assert_eq!(
        code(&r.get("/subjects/nobody/versions").await),
        (404, json!(40401))
    );
    assert_eq!(
        code(&r.get("/subjects/users-value/versions/9").await),
        (404, json!(40402))
    );
    assert_eq!(code(&r.get("/schemas/ids/99").await), (404, json!(40403)));
    assert_eq!(
        code(
            &r.post("/subjects/users-value", json!({ "schema": BREAKING }))
                .await
        ),
        (404, json!(40403))
    );
    assert_eq!(
        code(&r.get("/subjects/users-value/versions/0").await),
        (422, json!(42202))
    );
    assert_eq!(
        code(&r.get("/subjects/users-value/versions/x").await),
        (422, json!(42202))
    );
    assert_eq!(
        code(&r.register("bad", "{\"type\": \"recordd\"}", "AVRO").await),
        (422, json!(42201))
    );
    assert_eq!(
        code(&r.register("bad", "not json", "AVRO").await),
        (422, json!(42201))
    );
    assert_eq!(
        code(&r.register("bad", V1, "XML").await),
        (422, json!(42201))
    );
    // The registry's own listener serves the same registry.
    let alone = Registry::new(broker.schema_registry_addr().unwrap());
    assert_eq!(
        alone.get("/subjects").await.1,
        json!(["other", "users-value"])
    );
    assert_eq!(alone.get("/").await, (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn compatibility_levels_decide_what_may_be_registered() {
    let (_b, r) = start().await;
    r.register("s", V1, "AVRO").await;
    assert_eq!(
        r.get("/config").await.1,
        json!({ "compatibilityLevel": "BACKWARD" })
    );
    let check = |v: &str| json!({ "schema": v });
    assert_eq!(
        r.post("/compatibility/subjects/s/versions/latest", check(V2))
            .await
            .1,
        json!({ "is_compatible": true })
    );
    let (_, verbose) = r
        .post(
            "/compatibility/subjects/s/versions/latest?verbose=true",
            check(BREAKING),
        )
        .await;
    assert_eq!(verbose["is_compatible"], json!(false));
    assert!(!verbose["messages"].as_array().unwrap().is_empty());
    assert_eq!(
        code(&r.register("s", BREAKING, "AVRO").await),
        (409, json!(409))
    );
    // FORWARD accepts it (old readers ignore the new field), per subject.
    assert_eq!(code(&r.get("/config/s").await), (404, json!(40408)));
    assert_eq!(
        r.get("/config/s?defaultToGlobal=true").await.1,
        json!({ "compatibilityLevel": "BACKWARD" })
    );
    assert_eq!(
        r.put("/config/s", json!({ "compatibility": "FORWARD" }))
            .await
            .1,
        json!({ "compatibility": "FORWARD" })
    );
    assert_eq!(
        r.register("s", BREAKING, "AVRO").await.1,
        json!({ "id": 2 })
    );
    assert_eq!(
        code(
            &r.put("/config", json!({ "compatibility": "SIDEWAYS" }))
                .await
        ),
        (422, json!(42203))
    );
    assert_eq!(
        r.delete("/config/s").await.1,
        json!({ "compatibilityLevel": "FORWARD" })
    );
    assert_eq!(
        r.put("/config", json!({ "compatibility": "NONE" })).await.0,
        StatusCode::OK
    );
    assert_eq!(
        r.register("s", r#""string""#, "AVRO").await.1,
        json!({ "id": 3 })
    );
    // JSON Schema and Protobuf: at least BACKWARD.
    r.put("/config", json!({ "compatibility": "BACKWARD" }))
        .await;
    let j1 = json!({ "type": "object", "properties": { "n": { "type": "integer" } } }).to_string();
    let j2 = json!({ "type": "object", "properties": { "n": { "type": "integer" } }, "required": ["n"] }).to_string();
    assert_eq!(r.register("j", &j1, "JSON").await.0, StatusCode::OK);
    assert_eq!(code(&r.register("j", &j2, "JSON").await), (409, json!(409)));
    let p1 = "syntax = \"proto3\"; message M { string a = 1; }";
    let p2 = "syntax = \"proto3\"; message M { int64 a = 1; }";
    assert_eq!(r.register("p", p1, "PROTOBUF").await.0, StatusCode::OK);
    assert_eq!(
        code(&r.register("p", p2, "PROTOBUF").await),
        (409, json!(409))
    );
    assert_eq!(
        code(&r.register("p", "message {", "PROTOBUF").await),
        (422, json!(42201))
    );
    let (_, latest) = r.get("/subjects/p/versions/latest?format=serialized").await;
    assert_eq!(latest["schemaType"], json!("PROTOBUF"));
    assert_ne!(
        latest["schema"],
        json!(p1),
        "serialized: base64 of the FileDescriptorProto"
    );
}

#[tokio::test]
async fn soft_then_permanent_deletes() {
    let (_b, r) = start().await;
    r.register("d", V1, "AVRO").await;
    r.register("d", V2, "AVRO").await;
    assert_eq!(
        code(&r.delete("/subjects/d?permanent=true").await),
        (404, json!(40405))
    );
    assert_eq!(
        code(&r.delete("/subjects/d/versions/1?permanent=true").await),
        (404, json!(40407))
    );
    assert_eq!(r.delete("/subjects/d/versions/1").await.1, json!(1));
    assert_eq!(
        code(&r.delete("/subjects/d/versions/1").await),
        (404, json!(40406))
    );
    assert_eq!(r.get("/subjects/d/versions").await.1, json!([2]));
    assert_eq!(
        r.get("/subjects/d/versions?deleted=true").await.1,
        json!([1, 2])
    );
    assert_eq!(r.delete("/subjects/d").await.1, json!([2]));
    assert_eq!(code(&r.delete("/subjects/d").await), (404, json!(40404)));
    assert_eq!(r.get("/subjects").await.1, json!([]));
    assert_eq!(r.get("/subjects?deleted=true").await.1, json!(["d"]));
    // The ids stay readable; a permanent delete removes the subject.
    assert_eq!(r.get("/schemas/ids/1").await.0, StatusCode::OK);
    assert_eq!(
        r.delete("/subjects/d?permanent=true").await.1,
        json!([1, 2])
    );
    assert_eq!(
        code(&r.get("/subjects/d/versions?deleted=true").await),
        (404, json!(40401))
    );
    // Registering again after a delete continues the numbering from what is left.
    assert_eq!(r.register("d", V1, "AVRO").await.0, StatusCode::OK);
    assert_eq!(r.get("/subjects/d/versions").await.1, json!([1]));
}

#[tokio::test]
async fn kafka_rest_produces_and_consumes_the_schema_formats() {
    let (broker, r) = start().await;
    let rest = Registry::new(broker.kafka_rest_addr().unwrap());
    let post = |path: &str, ct: &'static str, body: Value| {
        let req = rest
            .http
            .post(format!("{}{path}", rest.base))
            .header("Content-Type", ct)
            .body(body.to_string());
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let avro = "application/vnd.kafka.avro.v2+json";
    let (status, body) = post(
        "/topics/people",
        avro,
        json!({ "value_schema": V1, "records": [{ "value": { "name": "ann" } }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["value_schema_id"].clone();
    assert_eq!(
        r.get("/subjects/people-value/versions/latest").await.1["id"],
        id
    );
    let (status, body) = post(
        "/topics/people",
        avro,
        json!({ "value_schema_id": id, "records": [{ "value": { "name": "bob" } }] }),
    )
    .await;
    assert_eq!(
        (status, body["offsets"][0]["offset"].clone()),
        (StatusCode::OK, json!(1))
    );
    // The proxy's errors for the schema formats; nothing is written.
    let r1 = post(
        "/topics/people",
        avro,
        json!({ "records": [{ "value": { "name": "x" } }] }),
    )
    .await;
    assert_eq!(
        (r1.0.as_u16(), r1.1["error_code"].clone()),
        (422, json!(42202))
    );
    let r2 = post(
        "/topics/people",
        avro,
        json!({ "value_schema_id": id, "records": [{ "key": "k", "value": { "name": "x" } }] }),
    )
    .await;
    assert_eq!(
        (r2.0.as_u16(), r2.1["error_code"].clone()),
        (422, json!(42201))
    );
    let r3 = post(
        "/topics/people",
        avro,
        json!({ "value_schema": "{\"type\":\"nope\"}", "records": [{ "value": 1 }] }),
    )
    .await;
    assert_eq!(
        (r3.0.as_u16(), r3.1["error_code"].clone()),
        (422, json!(42205))
    );
    let r4 = post(
        "/topics/people",
        avro,
        json!({ "value_schema_id": id, "records": [{ "value": { "age": 3 } }] }),
    )
    .await;
    assert_eq!(
        (r4.0.as_u16(), r4.1["error_code"].clone()),
        (422, json!(42203))
    );
    let (_, offsets) = rest.get("/topics/people/partitions/0/offsets").await;
    assert_eq!(offsets["end_offset"], json!(2));
    // An avro consumer gets them decoded; a JSON consumer is the wrong reader.
    let v2 = "application/vnd.kafka.v2+json";
    let (_, created) = post(
        "/consumers/g",
        v2,
        json!({ "name": "a", "format": "avro", "auto.offset.reset": "earliest" }),
    )
    .await;
    let base = created["base_uri"].as_str().unwrap().to_owned();
    let inst = base.trim_start_matches(&rest.base).to_owned();
    post(
        &format!("{inst}/subscription"),
        v2,
        json!({ "topics": ["people"] }),
    )
    .await;
    let records = rest
        .http
        .get(format!("{base}/records"))
        .header("Accept", avro)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let values: Vec<Value> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values, [json!({ "name": "ann" }), json!({ "name": "bob" })]);
}

#[tokio::test]
async fn references_resolve_for_records_and_keep_their_target_from_deletion() {
    let (broker, r) = start().await;
    let address = r#"{"type":"record","name":"Address","namespace":"dw","fields":[{"name":"city","type":"string"}]}"#;
    let person = r#"{"type":"record","name":"Person","namespace":"dw","fields":[{"name":"home","type":"dw.Address"}]}"#;
    assert_eq!(
        r.register("address", address, "AVRO").await.1,
        json!({ "id": 1 })
    );
    let (status, body) = r
        .post(
            "/subjects/people-value/versions",
            json!({ "schema": person, "references": [{ "name": "dw.Address", "subject": "address", "version": 1 }] }),
        )
        .await;
    assert_eq!(
        (status, body.clone()),
        (StatusCode::OK, json!({ "id": 2 })),
        "{body}"
    );
    assert_eq!(
        r.get("/schemas/ids/2").await.1["references"][0]["subject"],
        json!("address")
    );
    assert_eq!(
        code(&r.delete("/subjects/address/versions/1").await),
        (422, json!(42206))
    );
    // A record of the referring schema goes through the REST proxy and back.
    let rest = reqwest::Client::new();
    let base = format!("http://{}", broker.kafka_rest_addr().unwrap());
    let produced: Value = rest
        .post(format!("{base}/topics/people"))
        .header("Content-Type", "application/vnd.kafka.avro.v2+json")
        .body(json!({ "value_schema_id": 2, "records": [{ "value": { "home": { "city": "Oslo" } } }] }).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(produced["offsets"][0]["offset"], json!(0), "{produced}");
    let v2 = "application/vnd.kafka.v2+json";
    let created: Value = rest
        .post(format!("{base}/consumers/g"))
        .header("Content-Type", v2)
        .body(json!({ "format": "avro", "auto.offset.reset": "earliest" }).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inst = created["base_uri"].as_str().unwrap();
    rest.post(format!("{inst}/subscription"))
        .header("Content-Type", v2)
        .body(json!({ "topics": ["people"] }).to_string())
        .send()
        .await
        .unwrap();
    let records: Value = rest
        .get(format!("{inst}/records"))
        .header("Accept", "application/vnd.kafka.avro.v2+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        records[0]["value"],
        json!({ "home": { "city": "Oslo" } }),
        "{records}"
    );
}

#[test]
fn schemas_survive_kill_9() {
    use common::process::{data_dir, Process};
    let dir = data_dir();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = Process::start(dir.path());
    rt.block_on(async {
        let r = Registry::new(broker.kafka_rest);
        r.register("kept", V1, "AVRO").await;
        r.register("kept", V2, "AVRO").await;
        r.put("/config/kept", json!({ "compatibility": "FULL" }))
            .await;
        r.delete("/subjects/kept/versions/1").await;
    });
    broker.kill();
    let broker = Process::start(dir.path());
    rt.block_on(async {
        let r = Registry::new(broker.kafka_rest);
        assert_eq!(r.get("/subjects/kept/versions").await.1, json!([2]));
        assert_eq!(r.get("/schemas/ids/2").await.1["schema"], json!(V2));
        assert_eq!(
            r.get("/config/kept").await.1,
            json!({ "compatibilityLevel": "FULL" })
        );
        // Ids continue after the stored ones.
        assert_eq!(
            r.register("more", r#""string""#, "AVRO").await.1,
            json!({ "id": 3 })
        );
    });
}
