//! Well-behaved clients, one per protocol, that keep making round trips while the cases
//! run: each publishes a numbered message, waits for it to come back (or, over HTTP, for
//! its offset), and counts. A stall, an error or a message out of order is a disturbance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dwbroker::Broker;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;

use crate::common::stomp_raw::StompRaw;
use crate::common::*;

/// A bystander's outcome: its protocol and how many round trips it completed.
pub type Outcome = (&'static str, Result<u64, String>);

/// How long one round trip may take before it counts as a disturbance.
const ROUND_TRIP: Duration = Duration::from_secs(5);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(ROUND_TRIP, f)
        .await
        .map_err(|_| format!("{what}: no answer in {ROUND_TRIP:?}"))
}

fn check(seq: u64, got: &[u8]) -> Result<(), String> {
    let want = seq.to_string();
    if got != want.as_bytes() {
        return Err(format!(
            "round trip {seq}: got {:?}",
            String::from_utf8_lossy(got)
        ));
    }
    Ok(())
}

pub fn spawn_all(broker: &Broker, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Outcome>> {
    let mqtt = broker.mqtt_addr().unwrap();
    let stomp = broker.stomp_addr().unwrap();
    let http = broker.kafka_rest_addr().unwrap();
    let nats = broker.nats_addr().unwrap();
    let amqp = broker.amqp_addr().unwrap();
    vec![
        tokio::spawn({
            let stop = stop.clone();
            async move { ("mqtt", mqtt_rounds(mqtt, stop).await) }
        }),
        tokio::spawn({
            let stop = stop.clone();
            async move { ("nats", nats_rounds(nats, stop).await) }
        }),
        tokio::spawn({
            let stop = stop.clone();
            async move { ("amqp", amqp_rounds(amqp, stop).await) }
        }),
        tokio::spawn({
            let stop = stop.clone();
            async move { ("stomp", stomp_rounds(stomp, stop).await) }
        }),
        tokio::spawn(async move { ("http", http_rounds(http, stop).await) }),
    ]
}

async fn mqtt_rounds(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let (mut c, _) = v4(addr, |_| {}, "bystander-mqtt").await;
    c.subscribe("bystander/mqtt", rumqttc::QoS::AtLeastOnce)
        .await;
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        c.client
            .publish(
                "bystander/mqtt",
                rumqttc::QoS::AtLeastOnce,
                false,
                seq.to_string(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let p = bounded("mqtt", c.publish()).await?;
        check(seq, &p.payload)?;
        seq += 1;
    }
    Ok(seq)
}

async fn nats_rounds(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let client = async_nats::connect(format!("nats://{addr}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut sub = client
        .subscribe("bystander.nats")
        .await
        .map_err(|e| e.to_string())?;
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        client
            .publish("bystander.nats", seq.to_string().into())
            .await
            .map_err(|e| e.to_string())?;
        let m = bounded("nats", sub.next())
            .await?
            .ok_or("nats: subscription ended")?;
        check(seq, &m.payload)?;
        seq += 1;
    }
    Ok(seq)
}

async fn amqp_rounds(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "bystander".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let confirm = ch
            .basic_publish(
                "".into(),
                q.name().as_str().into(),
                BasicPublishOptions::default(),
                seq.to_string().as_bytes(),
                BasicProperties::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let confirmed = bounded("amqp confirm", confirm)
            .await?
            .map_err(|e| e.to_string())?;
        if !confirmed.is_ack() {
            return Err(format!("amqp: publish {seq} not confirmed"));
        }
        let d = bounded("amqp delivery", consumer.next())
            .await?
            .ok_or("amqp: consumer ended")?
            .map_err(|e| e.to_string())?;
        check(seq, &d.data)?;
        d.ack(BasicAckOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        seq += 1;
    }
    Ok(seq)
}

async fn stomp_rounds(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let mut c = StompRaw::connected(addr).await;
    c.subscribe("s", "/queue/bystander-stomp", "auto").await;
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        c.send_to("/queue/bystander-stomp", seq.to_string().as_bytes())
            .await;
        let m = bounded("stomp", c.message()).await?;
        check(seq, &m.body)?;
        seq += 1;
    }
    c.disconnect().await;
    Ok(seq)
}

async fn http_rounds(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/topics/bystander-http");
    let mut last: Option<i64> = None;
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let resp = bounded(
            "http",
            http.post(&url)
                .header("Content-Type", "application/vnd.kafka.json.v2+json")
                .body(format!("{{\"records\":[{{\"value\":{seq}}}]}}"))
                .send(),
        )
        .await?
        .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("http: produce {seq} answered {}", resp.status()));
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        let offset = body["offsets"][0]["offset"]
            .as_i64()
            .ok_or(format!("http: no offset in {body}"))?;
        if last.is_some_and(|l| offset <= l) {
            return Err(format!("http: offset {offset} after {last:?}"));
        }
        last = Some(offset);
        seq += 1;
    }
    Ok(seq)
}
