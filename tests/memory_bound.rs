//! The memory bound: with `memory_high_watermark` crossed, MQTT, NATS, AMQP and
//! STOMP publishers are held back (not read, not disconnected) while consumers
//! keep draining, and every acknowledged message arrives once they do.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dwbroker::router::Memory;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;

const HIGH: usize = 2 * 1024 * 1024;
const PAYLOAD: usize = 4096;
/// Per publisher: 8 MiB, four times the bound.
const PER_PUBLISHER: usize = 2048;

/// Samples the ledger until `stop`, returning the most it held.
async fn sample_peak(memory: Arc<Memory>, stop: Arc<AtomicBool>) -> usize {
    let mut peak = 0;
    while !stop.load(Ordering::Relaxed) {
        peak = peak.max(memory.held());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_are_held_back_at_the_watermark_and_nothing_acknowledged_is_lost() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("dwbroker=info")
        .try_init();
    let (broker, addr) = start_with(|c| c.limits.memory_high_watermark = HIGH).await;
    let (_amqp, ch) = amqp_channel(&broker).await;
    ch.queue_declare(
        "held".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "held".into(),
        "amq.topic".into(),
        "load.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let peak = tokio::spawn(sample_peak(broker.memory().clone(), stop.clone()));

    // An MQTT publisher at QoS 1: what it counts is what the broker PUBACKed.
    let mqtt_acked = Arc::new(AtomicUsize::new(0));
    let (mut m, _) = v4(
        addr,
        |o| {
            o.set_inflight(20);
        },
        "mem-mqtt",
    )
    .await;
    let client = m.client.clone();
    let mqtt_pub = tokio::spawn(async move {
        for _ in 0..PER_PUBLISHER {
            client
                .publish(
                    "load/mqtt",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    vec![1u8; PAYLOAD],
                )
                .await
                .unwrap();
        }
    });
    let acked = mqtt_acked.clone();
    let mqtt_events = tokio::spawn(async move {
        while let Some(e) = m.events.recv().await {
            match e {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                    if acked.fetch_add(1, Ordering::Relaxed) + 1 == PER_PUBLISHER {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Err("event loop ended".to_string())
    });

    // A NATS publisher: a flush that returns means the broker has read all of it.
    let n = nats_client(&broker).await;
    let nats_sent = Arc::new(AtomicUsize::new(0));
    let sent = nats_sent.clone();
    let nats = n.clone();
    let nats_pub = tokio::spawn(async move {
        for _ in 0..PER_PUBLISHER {
            nats.publish("load.nats", vec![2u8; PAYLOAD].into())
                .await
                .unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
        }
        nats.flush().await.unwrap();
    });

    // Nobody consumes: the publishers must stall near the bound, connected.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(broker.memory().is_blocked(), "{:?}", broker.memory());
    assert!(!mqtt_pub.is_finished() && !nats_pub.is_finished());
    assert!(
        !mqtt_events.is_finished(),
        "the MQTT publisher was disconnected"
    );
    assert_eq!(
        n.connection_state(),
        async_nats::connection::State::Connected
    );
    let stalled = mqtt_acked.load(Ordering::Relaxed) + nats_sent.load(Ordering::Relaxed);
    assert!(stalled < 2 * PER_PUBLISHER, "publishing never stalled");

    // A consumer drains: everything acknowledged arrives, publishers finish.
    ch.basic_qos(200, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "held".into(),
            "drain".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (mut from_mqtt, mut from_nats) = (0, 0);
    while from_mqtt + from_nats < 2 * PER_PUBLISHER {
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("deliveries keep coming")
            .expect("consumer open")
            .expect("delivery");
        match d.data[0] {
            1 => from_mqtt += 1,
            _ => from_nats += 1,
        }
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    mqtt_pub.await.unwrap();
    mqtt_events.await.unwrap().unwrap();
    nats_pub.await.unwrap();
    assert_eq!((from_mqtt, from_nats), (PER_PUBLISHER, PER_PUBLISHER));

    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();
    // Past the mark by at most what was read before the block was seen: a read
    // buffer per publisher and the messages in flight.
    assert!(peak < HIGH * 3 / 2, "peak {peak} for a bound of {HIGH}");
    assert!(!broker.memory().is_blocked());
    broker.shutdown().await;
}

/// A connection that consumes with acknowledgements and also publishes (a STOMP
/// worker) keeps being read over the watermark: its ACKs are what frees the
/// memory its pending deliveries hold, so holding it back would stall every
/// publisher for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_consumes_and_publishes_is_not_stalled_by_its_own_deliveries() {
    use common::stomp_raw::{unique, StompRaw};
    use dwbroker_codecs::stomp::{Command, Frame};
    const JOBS: usize = 256;
    let (broker, _) = start_with(|c| c.limits.memory_high_watermark = 256 * 1024).await;
    let addr = broker.stomp_addr().unwrap();
    let jobs = format!("/queue/{}", unique("jobs"));
    let replies = format!("/queue/{}", unique("replies"));
    let mut producer = StompRaw::connected(addr).await;
    for _ in 0..JOBS {
        producer.send_to(&jobs, &[3u8; PAYLOAD]).await;
    }
    // Everything is delivered to the worker at once (no prefetch): it holds
    // four times the bound unacknowledged before it answers anything.
    let mut worker = StompRaw::connected(addr).await;
    worker.subscribe("w", &jobs, "client-individual").await;
    let work = tokio::spawn(async move {
        for _ in 0..JOBS {
            let m = worker.message().await;
            let ack = m.header("ack").unwrap().to_owned();
            worker.send_to(&replies, b"done").await;
            worker
                .send_frame(&Frame::new(Command::Ack).with("id", &ack))
                .await;
        }
        (worker, replies)
    });
    let (_worker, replies) = tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("the worker gets through its jobs")
        .unwrap();
    let mut reader = StompRaw::connected(addr).await;
    reader.subscribe("r", &replies, "auto").await;
    for _ in 0..JOBS {
        reader.message().await;
    }
    broker.shutdown().await;
}
