//! Storage soak: persistent messages published with confirms into a durable queue
//! and acknowledged by a consumer, for a total volume far above the data dir's
//! expected size; the data dir is measured while it runs and after it settles, to
//! show that acknowledged messages give their space back.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio::time::timeout;

use crate::brokers::Dwbroker;
use crate::{amqp, Res};

/// Confirms awaited at once.
const WINDOW: usize = 256;
/// The longest a soak may take.
const CAP: Duration = Duration::from_secs(600);

/// Bytes under `dir`, recursively.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Publishes `messages` persistent messages of `size` bytes and consumes them;
/// prints the data dir's largest and final size. Fails if a message is lost or
/// the run takes longer than [`CAP`].
pub async fn run(bin: &Path, messages: u64, size: usize) -> Res<bool> {
    let dir = std::env::temp_dir().join(format!("dwbroker-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let broker = Dwbroker::start_on(bin, &dir)?;
    let addr = broker.target(crate::cli::Protocol::Amqp).addr;
    let c = amqp::connect(addr).await?;
    let ch = c.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("soak".into(), durable, FieldTable::default())
        .await?;
    let received = Arc::new(AtomicU64::new(0));
    let consumer = {
        let cc = amqp::connect(addr).await?;
        let cch = cc.create_channel().await?;
        cch.basic_qos(1000, BasicQosOptions::default()).await?;
        let mut deliveries = cch
            .basic_consume(
                "soak".into(),
                "soak".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = deliveries.next().await {
                if d.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
                if received.fetch_add(1, Ordering::Relaxed) + 1 == messages {
                    break;
                }
            }
            drop(cc);
        })
    };
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = vec![b's'; size];
    let props = BasicProperties::default().with_delivery_mode(2);
    let start = Instant::now();
    let cap = CAP;
    let mut largest = 0u64;
    let mut last_sample = Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    let mut nacked = 0u64;
    for _ in 0..messages {
        let confirm = ch
            .basic_publish(
                "".into(),
                "soak".into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await?;
        inflight.push_back(confirm);
        if inflight.len() >= WINDOW {
            if let Some(c) = inflight.pop_front() {
                nacked += u64::from(!c.await?.is_ack());
            }
        }
        if last_sample.elapsed() >= Duration::from_millis(500) {
            largest = largest.max(dir_size(&dir));
            last_sample = Instant::now();
        }
        if start.elapsed() > cap {
            return Err(format!("publishing took longer than {CAP:?}").into());
        }
    }
    for c in inflight {
        nacked += u64::from(!c.await?.is_ack());
    }
    let published = start.elapsed();
    let drained = timeout(cap, consumer).await.is_ok();
    largest = largest.max(dir_size(&dir));
    // Let the engine flush and compact what was deleted.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled = dir_size(&dir);
    let got = received.load(Ordering::Relaxed);
    let volume = messages * size as u64;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "soak: {messages} persistent messages of {size} B ({:.0} MiB) published with confirms \
         in {:.1} s ({:.0} msg/s), {got} consumed and acked, {nacked} nacked; data dir: largest \
         {:.1} MiB, {:.1} MiB 10 s after the last ack",
        mib(volume),
        published.as_secs_f64(),
        messages as f64 / published.as_secs_f64(),
        mib(largest),
        mib(settled),
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(drained && got == messages && nacked == 0)
}
