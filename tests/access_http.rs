//! Users and permissions on the HTTP fronts: Basic auth on the Kafka REST proxy
//! and the schema registry, topics by their subject and stream rules, schema
//! subjects by `schema:` rules.

mod common;

use std::net::SocketAddr;

use common::start_with;
use common::users::{password_file, rules};
use dwbroker::config::PermissionSpec;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const V2: &str = "application/vnd.kafka.v2+json";
const JSON: &str = "application/vnd.kafka.json.v2+json";
const SCHEMA: &str = "application/vnd.schemaregistry.v1+json";

/// A client of the Kafka REST listener (which also serves the registry's API)
/// logging in as `user` (`None`: no Authorization header).
struct Http {
    base: String,
    user: Option<(&'static str, &'static str)>,
    client: Client,
}

impl Http {
    fn new(addr: SocketAddr, user: Option<(&'static str, &'static str)>) -> Http {
        Http {
            base: format!("http://{addr}"),
            user,
            client: Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Value)>,
    ) -> (StatusCode, Value, Option<String>) {
        // Records are asked for in their embedded format.
        let accept = if path.ends_with("/records") { JSON } else { V2 };
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Accept", accept);
        if let Some((user, password)) = self.user {
            req = req.basic_auth(user, Some(password));
        }
        if let Some((kind, body)) = body {
            req = req.header("Content-Type", kind).body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, challenge)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, body, _) = self.call(reqwest::Method::GET, path, None).await;
        (status, body)
    }

    async fn post(&self, path: &str, kind: &str, body: Value) -> (StatusCode, Value) {
        let (status, body, _) = self
            .call(reqwest::Method::POST, path, Some((kind, body)))
            .await;
        (status, body)
    }
}

#[tokio::test]
async fn kafka_rest_and_the_registry_take_basic_auth_and_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let (broker, _) = start_with(|c| {
        c.auth.password_file = Some(file);
        c.auth.permissions.insert(
            "alice".into(),
            PermissionSpec {
                publish: rules(&["sensors"]),
                subscribe: rules(&["stream:sensors"]),
                configure: rules(&["stream:sensors", "schema:sensors-*"]),
                ..PermissionSpec::default()
            },
        );
        c.auth.permissions.insert(
            "bob".into(),
            PermissionSpec {
                subscribe: rules(&["schema:sensors-value"]),
                ..PermissionSpec::default()
            },
        );
    })
    .await;
    let addr = broker.kafka_rest_addr().unwrap();
    let alice = Http::new(addr, Some(("alice", "alice-pw")));
    let bob = Http::new(addr, Some(("bob", "bob-pw")));
    let record = json!({ "records": [{ "value": { "t": 21 } }] });

    // Without credentials, or with a wrong password: 401 and a Basic challenge.
    for nobody in [None, Some(("alice", "wrong"))] {
        let (status, body, challenge) = Http::new(addr, nobody)
            .call(
                reqwest::Method::POST,
                "/topics/sensors",
                Some((JSON, record.clone())),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error_code"], 40101);
        assert_eq!(challenge.as_deref(), Some("Basic realm=\"dwbroker\""));
    }

    // alice produces to sensors (creating it), not to orders; bob to neither.
    let (status, body) = alice.post("/topics/sensors", JSON, record.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offsets"][0]["offset"], 0);
    for (who, topic) in [(&alice, "orders"), (&bob, "sensors")] {
        let (status, body) = who
            .post(&format!("/topics/{topic}"), JSON, record.clone())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error_code"], 40301);
        assert_eq!(
            body["message"],
            format!("Not authorized to access topics: [{topic}]")
        );
    }

    // alice reads sensors; bob may not subscribe to it, nor read it through
    // alice's instance.
    let instance = json!({ "name": "i", "format": "json", "auto.offset.reset": "earliest" });
    let (status, _) = alice.post("/consumers/g", V2, instance.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let sub = json!({ "topics": ["sensors"] });
    let (status, body) = alice
        .post("/consumers/g/instances/i/subscription", V2, sub.clone())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = alice.get("/consumers/g/instances/i/records").await;
    let records = format!("{body}");
    assert_eq!(status, StatusCode::OK, "{records}");
    assert_eq!(body[0]["value"], json!({ "t": 21 }), "{records}");
    let (status, body) = bob.get("/consumers/g/instances/i/records").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = bob.post("/consumers/h", V2, instance).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = bob
        .post("/consumers/h/instances/i/subscription", V2, sub)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The registry: alice registers under sensors-*; bob reads sensors-value only.
    let schema = json!({ "schema": "{\"type\":\"string\"}" });
    for subject in ["sensors-value", "sensors-key"] {
        let (status, body) = alice
            .post(
                &format!("/subjects/{subject}/versions"),
                SCHEMA,
                schema.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = bob
        .post("/subjects/sensors-value/versions", SCHEMA, schema.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "User is denied operation Write on Subject: sensors-value"
    );
    let (status, body) = bob.get("/subjects/sensors-value/versions").await;
    assert_eq!((status, body), (StatusCode::OK, json!([1])));
    let (status, _) = bob.get("/subjects/sensors-key/versions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, listed) = bob.get("/subjects").await;
    assert_eq!(listed, json!(["sensors-value"]));
    let (_, listed) = alice.get("/subjects").await;
    assert_eq!(listed, json!([]), "alice may change them but not read them");
    broker.shutdown().await;
}
