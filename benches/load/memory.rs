//! The memory bound under load: an MQTT QoS 1 publisher and a NATS publisher feed
//! amq.topic-bound queues nobody consumes, and a slow STOMP subscriber takes a copy
//! of everything, against dwbroker with a small `memory_high_watermark`. The
//! publishers must stall (connected) while broker RSS stays within about three
//! times the bound; then consumers start and every acknowledged message must
//! arrive, in the queues and at the STOMP subscriber.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use rumqttc::{Event, Packet, QoS};
use tokio::task::JoinHandle;

use crate::brokers::Dwbroker;
use crate::cli::Protocol;
use crate::procstat::rss_kib;
use crate::{amqp, mqtt, nats, stomp, Res};

/// The longest the whole run may take.
const CAP: Duration = Duration::from_secs(900);
/// Publishing is stalled once nothing more was acknowledged for this long.
const STALL: Duration = Duration::from_secs(3);
/// The STOMP subscriber reads one message per this while it is slow.
const SLOW_READ: Duration = Duration::from_millis(5);

/// Counters shared with the tasks.
#[derive(Default)]
struct Counts {
    mqtt_acked: AtomicU64,
    nats_sent: AtomicU64,
    from_mqtt: AtomicU64,
    from_nats: AtomicU64,
    stomp: AtomicU64,
    stomp_fast: AtomicBool,
}

impl Counts {
    fn published(&self) -> u64 {
        self.mqtt_acked.load(Ordering::Relaxed) + self.nats_sent.load(Ordering::Relaxed)
    }
}

/// Runs the scenario: `messages` of `size` bytes per publisher, under a bound of
/// `bound_mib`. Prints RSS over time and the outcome; false if a message was lost,
/// a publisher was disconnected, publishing never stalled, or RSS went past 3x the
/// bound.
pub async fn run(bin: &Path, messages: u64, size: usize, bound_mib: u64) -> Res<bool> {
    let bound = bound_mib * 1024 * 1024;
    let dir = std::env::temp_dir().join(format!("dwbroker-membound-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = format!("memory_high_watermark = {bound}\n");
    let broker = Dwbroker::start_with_limits(bin, &dir, &limits)?;
    let pid = broker.pid();
    let counts = Arc::new(Counts::default());
    let start = Instant::now();

    let c = amqp::connect(broker.target(Protocol::Amqp).addr).await?;
    let ch = c.create_channel().await?;
    for (queue, key) in [("mb-mqtt", "mb.mqtt"), ("mb-nats", "mb.nats")] {
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            queue.into(),
            "amq.topic".into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    let stomp_sub = slow_stomp(&broker, counts.clone()).await?;

    let mqtt_pub = mqtt_publisher(&broker, messages, size, counts.clone());
    let nats_pub = nats_publisher(&broker, messages, size, counts.clone()).await?;

    let mut samples = Vec::new();
    let sample = |samples: &mut Vec<(f64, u64)>| {
        samples.push((start.elapsed().as_secs_f64(), rss_kib(pid).unwrap_or(0)));
    };
    let peak = |samples: &[(f64, u64)]| samples.iter().map(|s| s.1).max().unwrap_or(0);

    // Phase 1: nobody consumes the queues; publishing must stall, connected.
    let mut last = (counts.published(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sample(&mut samples);
        let now = counts.published();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= STALL {
            break;
        }
        if mqtt_pub.is_finished() && nats_pub.is_finished() {
            break;
        }
        if start.elapsed() > CAP {
            return Err("phase 1 took longer than the cap".into());
        }
    }
    let stalled_at = counts.published();
    let stalled = !(mqtt_pub.is_finished() && nats_pub.is_finished());
    let phase1_peak = peak(&samples);

    // Phase 2: consumers drain; the publishers finish.
    for (queue, counter) in [("mb-mqtt", 0), ("mb-nats", 1)] {
        let ch = c.create_channel().await?;
        ch.basic_qos(500, BasicQosOptions::default()).await?;
        let mut deliveries = ch
            .basic_consume(
                queue.into(),
                queue.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let counts = counts.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = deliveries.next().await {
                if d.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
                let n = if counter == 0 {
                    &counts.from_mqtt
                } else {
                    &counts.from_nats
                };
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    counts.stomp_fast.store(true, Ordering::Relaxed);
    let everything = |c: &Counts| {
        c.from_mqtt.load(Ordering::Relaxed) == messages
            && c.from_nats.load(Ordering::Relaxed) == messages
            && c.stomp.load(Ordering::Relaxed) == 2 * messages
    };
    while !everything(&counts) && start.elapsed() < CAP {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sample(&mut samples);
    }
    let mqtt_ok = mqtt_pub.await?;
    let nats_ok = nats_pub.await?;
    stomp_sub.abort();
    let elapsed = start.elapsed();
    let peak_kib = peak(&samples);

    let mib = |kib: u64| kib as f64 / 1024.0;
    let total_mib = (2 * messages * size as u64) as f64 / (1024.0 * 1024.0);
    println!(
        "memory-bound: {messages} x {size} B per publisher (MQTT QoS 1, NATS; {total_mib:.0} MiB \
         in all, STOMP subscriber copy too), memory_high_watermark {bound_mib} MiB"
    );
    let step = (samples.len() / 20).max(1);
    let curve: Vec<String> = samples
        .iter()
        .step_by(step)
        .map(|(t, kib)| format!("{t:.0}s {:.0}", mib(*kib)))
        .collect();
    println!(
        "memory-bound: broker RSS MiB over time: {}",
        curve.join(", ")
    );
    let lost_mqtt = messages.saturating_sub(counts.from_mqtt.load(Ordering::Relaxed));
    let lost_nats = messages.saturating_sub(counts.from_nats.load(Ordering::Relaxed));
    let lost_stomp = (2 * messages).saturating_sub(counts.stomp.load(Ordering::Relaxed));
    println!(
        "memory-bound: publishing stalled: {stalled} (at {stalled_at} of {} acknowledged); \
         peak RSS {:.1} MiB while stalled, {:.1} MiB overall ({:.2}x the bound); \
         publishers connected to the end: MQTT {}, NATS {}; lost: queue from MQTT {lost_mqtt}, \
         queue from NATS {lost_nats}, STOMP subscriber {lost_stomp}; {:.1} s",
        2 * messages,
        mib(phase1_peak),
        mib(peak_kib),
        (peak_kib * 1024) as f64 / bound as f64,
        mqtt_ok.is_ok(),
        nats_ok.is_ok(),
        elapsed.as_secs_f64(),
    );
    if let Err(e) = &mqtt_ok {
        println!("memory-bound: MQTT publisher: {e}");
    }
    if let Err(e) = &nats_ok {
        println!("memory-bound: NATS publisher: {e}");
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(stalled
        && mqtt_ok.is_ok()
        && nats_ok.is_ok()
        && lost_mqtt + lost_nats + lost_stomp == 0
        && peak_kib * 1024 < 3 * bound)
}

/// An MQTT 3.1.1 publisher at QoS 1 counting PUBACKs.
fn mqtt_publisher(
    broker: &Dwbroker,
    messages: u64,
    size: usize,
    counts: Arc<Counts>,
) -> JoinHandle<Result<(), String>> {
    let target = broker.target(Protocol::Mqtt);
    let (client, mut ev) = mqtt::client("membound-mqtt".into(), &target, size, 100);
    tokio::spawn(async move {
        let sender = tokio::spawn(async move {
            let body = vec![1u8; size];
            for _ in 0..messages {
                if client
                    .publish("mb/mqtt", QoS::AtLeastOnce, false, body.clone())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if counts.mqtt_acked.fetch_add(1, Ordering::Relaxed) + 1 == messages {
                        sender.abort();
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(format!("disconnected: {e}")),
            }
        }
    })
}

/// A NATS publisher; a message counts once the client has handed it to the
/// connection, and the final flush proves the broker read them all.
async fn nats_publisher(
    broker: &Dwbroker,
    messages: u64,
    size: usize,
    counts: Arc<Counts>,
) -> Res<JoinHandle<Result<(), String>>> {
    let client = nats::connect(broker.target(Protocol::Nats).addr, None, None).await?;
    Ok(tokio::spawn(async move {
        let body = bytes::Bytes::from(vec![2u8; size]);
        for _ in 0..messages {
            client
                .publish("mb.nats", body.clone())
                .await
                .map_err(|e| e.to_string())?;
            counts.nats_sent.fetch_add(1, Ordering::Relaxed);
        }
        client.flush().await.map_err(|e| e.to_string())?;
        match client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            other => Err(format!("connection {other:?}")),
        }
    }))
}

/// A STOMP subscriber to everything the publishers send, reading slowly until
/// `stomp_fast` is set.
async fn slow_stomp(broker: &Dwbroker, counts: Arc<Counts>) -> Res<JoinHandle<()>> {
    let mut conn = stomp::Conn::connect(broker.target(Protocol::Stomp).addr).await?;
    conn.subscribe("/topic/mb.*").await?;
    Ok(tokio::spawn(async move {
        while conn.message().await.is_ok() {
            counts.stomp.fetch_add(1, Ordering::Relaxed);
            if !counts.stomp_fast.load(Ordering::Relaxed) {
                tokio::time::sleep(SLOW_READ).await;
            }
        }
    }))
}
