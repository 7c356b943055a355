//! Kafka REST v2 with reqwest over HTTP/1.1 keep-alive: produce in batches
//! (binary, or avro with a registered value schema) and consume a filled topic
//! through one consumer instance. There is no reference proxy on this machine:
//! the figures are absolute, with the broker's CPU per record.

use std::net::SocketAddr;

use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::timeout;

use crate::brokers::Target;
use crate::procstat::Meter;
use crate::stats::{payload, run_id, sent_at, Pacer, Receivers, Recorder};
use crate::{Outcome, Params, Res, SETUP};

const V2: &str = "application/vnd.kafka.v2+json";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";
const AVRO: &str = "application/vnd.kafka.avro.v2+json";
/// The avro records: the harness's payload (sequence number and send time) as bytes.
const SCHEMA: &str =
    r#"{"type":"record","name":"Load","fields":[{"name":"payload","type":"bytes"}]}"#;

struct Run {
    http: reqwest::Client,
    base: String,
    topic: String,
    avro: bool,
    /// The avro value schema's id, once registered.
    schema_id: Option<u64>,
}

async fn setup(p: &Params, addr: SocketAddr) -> Res<Run> {
    let http = reqwest::Client::builder()
        .timeout(SETUP)
        .pool_max_idle_per_host(p.publishers.max(1))
        .build()?;
    let mut run = Run {
        http,
        base: format!("http://{addr}"),
        topic: format!("load-{}", run_id()),
        avro: p.avro,
        schema_id: None,
    };
    // The first request creates the topic (and registers the schema).
    run.produce(&[payload(u64::MAX, p.size)]).await?;
    Ok(run)
}

impl Run {
    /// One produce request of `bodies`; the number of records acknowledged.
    async fn produce(&mut self, bodies: &[Vec<u8>]) -> Res<usize> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let (ct, body) = if self.avro {
            // Avro's JSON encoding of bytes: one character per byte (ISO-8859-1).
            let records: Vec<Value> = bodies
                .iter()
                .map(|b| json!({ "value": { "payload": b.iter().map(|&c| char::from(c)).collect::<String>() } }))
                .collect();
            let mut body = json!({ "records": records });
            match self.schema_id {
                Some(id) => body["value_schema_id"] = json!(id),
                None => body["value_schema"] = json!(SCHEMA),
            }
            (AVRO, body)
        } else {
            let records: Vec<Value> = bodies.iter().map(|b| json!({ "value": b64(b) })).collect();
            (BINARY, json!({ "records": records }))
        };
        let resp = self
            .http
            .post(format!("{}/topics/{}", self.base, self.topic))
            .header("Content-Type", ct)
            .header("Accept", V2)
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await?;
        if !status.is_success() {
            return Err(format!("produce: {status} {answer}").into());
        }
        self.schema_id = answer["value_schema_id"].as_u64().or(self.schema_id);
        let offsets = answer["offsets"].as_array().ok_or("produce: no offsets")?;
        Ok(offsets.iter().filter(|o| o["error_code"].is_null()).count())
    }
}

/// Produces until the (shared) pacer stops, `batch` records per request, on
/// one connection; records the acknowledged ones.
async fn produce_on(mut run: Run, pacer: &Mutex<Pacer>, p: &Params, rec: &Recorder) -> Res<()> {
    let mut bodies = Vec::with_capacity(p.batch);
    loop {
        bodies.clear();
        {
            let mut pacer = pacer.lock().await;
            while bodies.len() < p.batch {
                match pacer.next().await {
                    Some(seq) => bodies.push(payload(seq, p.size)),
                    None => break,
                }
            }
        }
        if bodies.is_empty() {
            return Ok(());
        }
        let acked = run.produce(&bodies).await?;
        for body in bodies.iter().take(acked) {
            rec.record(body);
        }
    }
}

/// kafka-produce: --publishers connections share the pacer's sequence numbers.
pub async fn produce(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let mut runs = Vec::new();
    for _ in 0..p.publishers.max(1) {
        runs.push(setup(p, t.addr).await?);
    }
    let rx = Receivers::new(1);
    let pacer = Mutex::new(Pacer::new(p));
    meter.start();
    let publishing = futures_util::future::try_join_all(
        runs.into_iter()
            .map(|run| produce_on(run, &pacer, p, &rx.list[0])),
    );
    let published = timeout(p.publish_cap(), async { publishing.await.map(|_| ()) }).await;
    meter.stop();
    let sent = pacer.lock().await.sent;
    let mut out = Outcome::from_receivers(sent, sent, &rx);
    out.note_publisher(published);
    Ok(out)
}

/// kafka-consume: the topic is filled first (not measured), then one consumer
/// instance reads it all.
pub async fn consume(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let run = setup(p, t.addr).await?;
    let filled = Receivers::new(1);
    let pacer = Mutex::new(Pacer::new(p));
    let (http, base, topic, avro) = (
        run.http.clone(),
        run.base.clone(),
        run.topic.clone(),
        run.avro,
    );
    timeout(p.publish_cap(), produce_on(run, &pacer, p, &filled.list[0]))
        .await
        .map_err(|_| "filling the topic took longer than --seconds")??;
    let sent = pacer.lock().await.sent;
    let format = if avro { "avro" } else { "binary" };
    let created: Value = http
        .post(format!("{base}/consumers/load-{}", run_id()))
        .header("Content-Type", V2)
        .body(json!({ "format": format, "auto.offset.reset": "earliest", "auto.commit.enable": "false" }).to_string())
        .send()
        .await?
        .json()
        .await?;
    let instance = created["base_uri"]
        .as_str()
        .ok_or("no base_uri")?
        .to_owned();
    http.post(format!("{instance}/subscription"))
        .header("Content-Type", V2)
        .body(json!({ "topics": [topic] }).to_string())
        .send()
        .await?;
    let rx = Receivers::new(1);
    let rec = &rx.list[0];
    let accept = if avro { AVRO } else { BINARY };
    meter.start();
    let consuming = async {
        let mut empty = 0;
        while rec.count() < sent && empty < 3 {
            let records: Value = http
                .get(format!("{instance}/records?timeout=1000"))
                .header("Accept", accept)
                .send()
                .await?
                .json()
                .await?;
            let records = records.as_array().ok_or("records: not an array")?;
            empty = if records.is_empty() { empty + 1 } else { 0 };
            for r in records {
                let bytes = if avro {
                    r["value"]["payload"]
                        .as_str()
                        .unwrap_or_default()
                        .chars()
                        .map(|c| c as u8)
                        .collect()
                } else {
                    base64::engine::general_purpose::STANDARD
                        .decode(r["value"].as_str().unwrap_or_default())?
                };
                // The fill's first record (sequence u64::MAX) made the topic.
                if sent_at(&bytes).is_some() && bytes[..8] != u64::MAX.to_be_bytes() {
                    rec.record(&bytes);
                }
            }
        }
        Res::Ok(())
    };
    let consumed = timeout(p.drain_cap(), consuming).await;
    meter.stop();
    let out = Outcome::of_filled_consumer(sent, &rx, consumed);
    let _ = http.delete(&instance).send().await;
    Ok(out)
}
