//! The soak: --minutes of mixed load on every protocol against one dwbroker data dir,
//! split into --restarts + 1 segments with the broker restarted between them
//! (alternately SIGKILL and SIGTERM). In each segment:
//! - durable streams with acknowledgements, paced (AMQP confirms, MQTT QoS 1 and QoS 2
//!   through amq.topic, STOMP persistent SENDs with receipts), each read by a slow
//!   consumer (prefetch 20, 1 ms per message, acks) on its durable queue;
//! - churn: MQTT clients that connect, subscribe, publish and leave every 100 ms, an
//!   MQTT persistent session taken over by a new connection with its client id every
//!   500 ms, NATS publish/subscribe at about 1,000 messages per second, Kafka REST
//!   produce requests (into a topic that keeps 1 MiB).
//!
//! Every 10 s it prints the broker's RSS, open file descriptors and data dir size. At
//! the end the publishers stop, the consumers drain, what is left is read with
//! basic.get, and every acknowledged message must have been received (a message may
//! arrive twice: a consumer's ack lost to a kill is redelivered). Exits 1 on a loss,
//! on RSS in the last segment above twice the highest peak of the segments before it
//! (each restart starts from a small process, and the storage engine's caches fill
//! during a segment: growth across segments is what would be a leak), or on a data
//! dir that keeps growing (its settled size above twice the first segment's end plus
//! 16 MiB).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::brokers::Dwbroker;
use crate::cli::Protocol;
use crate::crash::{self, Sink, Stream};
use crate::{amqp, nats, procstat, Res};

/// Time between two publishes of one durable stream (about 250 messages/s each).
const PACE: Duration = Duration::from_millis(4);
/// Sampling interval of RSS, descriptors and data dir.
const SAMPLE: Duration = Duration::from_secs(10);
/// The Kafka REST producer's topic keeps 1 MiB (about 50,000 of its records, five
/// minutes of them): a topic's records are held in memory, so one without a
/// retention limit grows the broker for as long as it is fed.
const KAFKA_TOPIC: &str = "[[kafka_topics]]\nname = \"soak\"\nretention_bytes = 1048576\n";

/// The durable streams, as the crash trials have them (their queues, their topics).
fn streams() -> Vec<Arc<Stream>> {
    vec![
        Stream::new("amqp-confirms", Sink::Queue("crash-amqp")),
        Stream::new("mqtt-qos1", Sink::Queue("crash-mqtt1")),
        Stream::new("mqtt-qos2", Sink::Queue("crash-mqtt2")),
        Stream::new("stomp-receipts", Sink::Queue("crash-stomp")),
    ]
}

fn queue_of(s: &Stream) -> &'static str {
    match s.sink {
        Sink::Queue(q) => q,
        Sink::Session(_) => unreachable!("the soak's streams are queues"),
    }
}

/// What the churn did, for the report.
#[derive(Default)]
struct Churn {
    mqtt_sessions: AtomicU64,
    takeovers: AtomicU64,
    nats_received: AtomicU64,
    kafka_records: AtomicU64,
}

/// One sample of the broker process and its data dir.
struct Sample {
    secs: u64,
    segment: u32,
    rss_mib: f64,
    fds: usize,
    data_mib: f64,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

pub async fn run(bin: &Path, minutes: f64, restarts: u32) -> Res<bool> {
    let dir = std::env::temp_dir().join(format!("dwbroker-soak-mixed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let total = Duration::from_secs_f64(minutes * 60.0);
    let segment_len = total / (restarts + 1);
    let streams = streams();
    let received: Arc<HashMap<&'static str, Mutex<Vec<u64>>>> = Arc::new(
        streams
            .iter()
            .map(|s| (s.name, Mutex::new(Vec::new())))
            .collect(),
    );
    let churn = Arc::new(Churn::default());
    let pid = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let segment_now = Arc::new(AtomicU32::new(0));
    let sampler = {
        let (pid, samples, segment_now, dir) = (
            pid.clone(),
            samples.clone(),
            segment_now.clone(),
            dir.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SAMPLE).await;
                let p = pid.load(Ordering::Relaxed);
                let s = Sample {
                    secs: start.elapsed().as_secs(),
                    segment: segment_now.load(Ordering::Relaxed),
                    rss_mib: procstat::rss_kib(p).unwrap_or(0) as f64 / 1024.0,
                    fds: procstat::open_fds(p),
                    data_mib: mib(crate::soak::dir_size(&dir)),
                };
                println!(
                    "t={:>5}s segment {} rss {:>7.1} MiB  fds {:>4}  data dir {:>7.1} MiB",
                    s.secs, s.segment, s.rss_mib, s.fds, s.data_mib
                );
                samples.lock().unwrap().push(s);
            }
        })
    };

    let mut broker = Dwbroker::start_on_with(bin, &dir, KAFKA_TOPIC)?;
    crash::declare(broker.target(Protocol::Amqp).addr).await?;
    let mut segment_end_data = Vec::new();
    for segment in 0..=restarts {
        segment_now.store(segment, Ordering::Relaxed);
        pid.store(broker.pid(), Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = durable_load(&broker, &streams, &received, segment).await?;
        tasks.extend(churn_load(&broker, &churn, &stop, segment));
        tokio::time::sleep(segment_len).await;
        broker.check_alive()?;
        if segment < restarts {
            segment_end_data.push(crate::soak::dir_size(&dir));
            // Alternately a crash and a clean stop; publishers and consumers end with
            // their connections.
            if segment.is_multiple_of(2) {
                broker.kill();
            }
            drop(broker);
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = timeout(Duration::from_secs(15), t).await;
            }
            let started = Instant::now();
            broker = Dwbroker::start_on_with(bin, &dir, KAFKA_TOPIC)?;
            println!(
                "segment {segment} ended: broker restarted ({}), listening after {:.1} s",
                if segment.is_multiple_of(2) {
                    "SIGKILL"
                } else {
                    "SIGTERM"
                },
                started.elapsed().as_secs_f64()
            );
        } else {
            // The end: publishers stop, consumers drain what is left.
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.abort();
            }
        }
    }
    // Consumers were aborted with the publishers: read the rest with basic.get.
    let amqp_addr = broker.target(Protocol::Amqp).addr;
    let mut ok = true;
    println!();
    for s in &streams {
        let rest = crash::drain(amqp_addr, queue_of(s)).await?;
        let mut got = received[s.name].lock().unwrap().clone();
        got.extend(rest);
        let t = crash::check(s, &got);
        let failed = t.acked_lost > 0 || t.unexpected > 0;
        ok &= !failed;
        println!(
            "{:<15} acked {:>8}  received {:>8} (distinct)  acked lost {}  unexpected {}  redelivered twice {}",
            s.name, t.acked, t.recovered, t.acked_lost, t.unexpected, t.duplicates
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = crate::soak::dir_size(&dir);
    sampler.abort();
    let samples = samples.lock().unwrap();
    let peak = |seg: u32| {
        samples
            .iter()
            .filter(|s| s.segment == seg)
            .map(|s| s.rss_mib)
            .fold(0.0, f64::max)
    };
    let earlier = (0..restarts).map(peak).fold(0.0, f64::max);
    let last = peak(restarts);
    let max_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    println!(
        "churn: {} MQTT sessions, {} takeovers, {} NATS messages received, {} Kafka REST records",
        churn.mqtt_sessions.load(Ordering::Relaxed),
        churn.takeovers.load(Ordering::Relaxed),
        churn.nats_received.load(Ordering::Relaxed),
        churn.kafka_records.load(Ordering::Relaxed),
    );
    let first_data = segment_end_data.first().copied().unwrap_or(settled);
    println!(
        "soak: {minutes} min, {restarts} restarts; peak RSS earlier segments {earlier:.1} MiB, last segment {last:.1} MiB; \
         most fds {max_fds}; data dir at the first restart {:.1} MiB, settled at the end {:.1} MiB",
        mib(first_data),
        mib(settled)
    );
    if restarts > 0 && last > 2.0 * earlier {
        println!("soak: RSS grew: the last segment's peak is more than twice the earlier ones'");
        ok = false;
    }
    if settled > 2 * first_data + (16 << 20) {
        println!("soak: the data dir grew");
        ok = false;
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ok)
}

/// The paced durable publishers and their slow consumers.
async fn durable_load(
    broker: &Dwbroker,
    streams: &[Arc<Stream>],
    received: &Arc<HashMap<&'static str, Mutex<Vec<u64>>>>,
    segment: u32,
) -> Res<Vec<JoinHandle<()>>> {
    let amqp_addr = broker.target(Protocol::Amqp).addr;
    let mqtt_addr = broker.target(Protocol::Mqtt).addr;
    let stomp_addr = broker.target(Protocol::Stomp).addr;
    let mut tasks = Vec::new();
    for s in streams {
        let s2 = s.clone();
        let pace = Some(PACE);
        tasks.push(match s.name {
            "amqp-confirms" => tokio::spawn(async move {
                let _ = crash::amqp_publisher(amqp_addr, s2, pace).await;
            }),
            "stomp-receipts" => tokio::spawn(async move {
                let _ = crash::stomp_publisher(stomp_addr, s2, pace).await;
            }),
            "mqtt-qos1" => tokio::spawn(async move {
                let _ = crash::mqtt_publisher(mqtt_addr, s2, QoS::AtLeastOnce, segment, pace).await;
            }),
            _ => tokio::spawn(async move {
                let _ = crash::mqtt_publisher(mqtt_addr, s2, QoS::ExactlyOnce, segment, pace).await;
            }),
        });
        tasks.push(slow_consumer(amqp_addr, queue_of(s), s.name, received.clone()).await?);
    }
    Ok(tasks)
}

/// Consumes `queue` with prefetch 20, 1 ms per message, acking each, recording what it
/// received, until the connection ends.
async fn slow_consumer(
    addr: SocketAddr,
    queue: &'static str,
    name: &'static str,
    received: Arc<HashMap<&'static str, Mutex<Vec<u64>>>>,
) -> Res<JoinHandle<()>> {
    let c = amqp::connect(addr).await?;
    let ch = c.create_channel().await?;
    ch.basic_qos(20, BasicQosOptions::default()).await?;
    let mut deliveries = ch
        .basic_consume(
            queue.into(),
            "soak".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(d)) = deliveries.next().await {
            if let Some(seq) = crash::seq_of(&d.data) {
                received[name].lock().unwrap().push(seq);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            if d.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
        drop(c);
    }))
}

/// Connection churn and at-most-once traffic until `stop`.
fn churn_load(
    broker: &Dwbroker,
    churn: &Arc<Churn>,
    stop: &Arc<AtomicBool>,
    segment: u32,
) -> Vec<JoinHandle<()>> {
    let mqtt_addr = broker.target(Protocol::Mqtt).addr;
    let nats_addr = broker.target(Protocol::Nats).addr;
    let kafka_addr = broker.target(Protocol::Kafka).addr;
    let mut tasks = Vec::new();
    let (c, s) = (churn.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            n += 1;
            let id = format!("soak-churn-{segment}-{n}");
            if short_session(mqtt_addr, &id, true).await.is_ok() {
                c.mqtt_sessions.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }));
    let (c, s) = (churn.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            // Each connection with this id takes over the session of the one before.
            if short_session(mqtt_addr, "soak-taker", false).await.is_ok() {
                c.takeovers.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }));
    let (c, s) = (churn.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        let Ok(client) = nats::connect(nats_addr, None, None).await else {
            return;
        };
        let Ok(mut sub) = client.subscribe("soak.nats").await else {
            return;
        };
        let counter = c.clone();
        let reader = tokio::spawn(async move {
            while sub.next().await.is_some() {
                counter.nats_received.fetch_add(1, Ordering::Relaxed);
            }
        });
        while !s.load(Ordering::Relaxed) {
            for _ in 0..10 {
                if client.publish("soak.nats", "x".into()).await.is_err() {
                    reader.abort();
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reader.abort();
    }));
    let (c, s) = (churn.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        let http = reqwest::Client::new();
        let url = format!("http://{kafka_addr}/topics/soak");
        while !s.load(Ordering::Relaxed) {
            let sent = http
                .post(&url)
                .header("content-type", "application/vnd.kafka.json.v2+json")
                .body(r#"{"records":[{"value":1},{"value":2},{"value":3}]}"#)
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                c.kafka_records.fetch_add(3, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }));
    tasks
}

/// Connects as `id`, subscribes, publishes a few QoS 0 messages and disconnects.
async fn short_session(addr: SocketAddr, id: &str, clean: bool) -> Res<()> {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(clean);
    let (client, mut ev) = AsyncClient::new(o, 16);
    client.subscribe("soak/churn/#", QoS::AtLeastOnce).await?;
    for i in 0..3 {
        client
            .publish(format!("soak/churn/{i}"), QoS::AtMostOnce, false, "c")
            .await?;
    }
    client.disconnect().await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            ev.poll(),
        )
        .await
        {
            Ok(Ok(_)) => {}
            // The DISCONNECT went out and the broker closed: done.
            Ok(Err(_)) => return Ok(()),
            Err(_) => return Err("an MQTT churn session did not end in 5 s".into()),
        }
    }
}
