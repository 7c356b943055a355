//! AMQP 0-9-1 with lapin: publish to one queue -> one consumer, with or without
//! publisher confirms; request/reply through the default exchange.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::time::timeout;

use crate::brokers::Target;
use crate::procstat::Meter;
use crate::stats::{payload, round_trips, run_id, Pacer, Receivers, Recorder, Tasks};
use crate::{Outcome, Params, Res, SETUP};

/// Deliveries the consumer may hold unacknowledged (basic.qos).
const PREFETCH: u16 = 1000;
/// The consumer acknowledges every this many deliveries at once (multiple = true).
const ACK_EVERY: u64 = 100;
/// Publishes in flight at once: awaiting their write, or their confirm with --confirms.
const WINDOW_CONFIRMS: usize = 1000;
const WINDOW: usize = 256;

pub async fn connect(addr: SocketAddr) -> Res<Connection> {
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let c = timeout(
        SETUP,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| format!("AMQP connect to {addr} timed out"))??;
    Ok(c)
}

/// Deletes queue `name` on the broker at `addr` (also used for STOMP's /queue/).
pub async fn delete_queue(addr: SocketAddr, name: &str) -> Res<()> {
    let c = connect(addr).await?;
    let ch = c.create_channel().await?;
    ch.queue_delete(name.into(), QueueDeleteOptions::default())
        .await?;
    let _ = c.close(200, "bye".into()).await;
    Ok(())
}

/// Publishes to queue `q` through the default exchange -> one consumer.
pub async fn queue(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let q = format!("load-amqp-{}", run_id());
    let cc = connect(t.addr).await?;
    let cch = cc.create_channel().await?;
    let declare = QueueDeclareOptions {
        durable: p.persistent,
        ..QueueDeclareOptions::default()
    };
    cch.queue_declare(q.as_str().into(), declare, FieldTable::default())
        .await?;
    cch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let mut consumer = cch
        .basic_consume(
            q.as_str().into(),
            "load".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let rx = Receivers::new(1);
    let rec = rx.list[0].clone();
    let mut task = Tasks::default();
    task.push(tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(d) = consumer.next().await {
            match d {
                Ok(d) => {
                    rec.record(&d.data);
                    n += 1;
                    if n.is_multiple_of(ACK_EVERY) {
                        let multiple = BasicAckOptions { multiple: true };
                        if let Err(e) = d.acker.ack(multiple).await {
                            rec.fail(format!("consumer ack: {e}"));
                            return;
                        }
                    }
                }
                Err(e) => {
                    rec.fail(format!("consumer: {e}"));
                    return;
                }
            }
        }
    }));

    // --publishers connections, one channel each; messages go round robin.
    let mut publishers = Vec::new();
    for _ in 0..p.publishers.max(1) {
        let pc = connect(t.addr).await?;
        let pch = pc.create_channel().await?;
        if p.confirms {
            pch.confirm_select(ConfirmSelectOptions::default()).await?;
        }
        publishers.push((pc, pch));
    }
    let props = if p.persistent {
        BasicProperties::default().with_delivery_mode(2)
    } else {
        BasicProperties::default()
    };
    let acked = AtomicU64::new(0);
    let nacked = AtomicU64::new(0);
    let failed = std::sync::Mutex::new(None::<String>);

    meter.start();
    let mut pacer = Pacer::new(p);
    let publish = |seq: u64, ch: Channel| {
        let body = payload(seq, p.size);
        let (q, acked, nacked, failed, props) = (&q, &acked, &nacked, &failed, &props);
        async move {
            let r = async {
                let confirm = ch
                    .basic_publish(
                        "".into(),
                        q.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        props.clone(),
                    )
                    .await?;
                Res::Ok(confirm.await?)
            }
            .await;
            match r {
                Ok(c) if c.is_nack() => nacked.fetch_add(1, Ordering::Relaxed),
                Ok(_) => acked.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    failed.lock().unwrap().get_or_insert(e.to_string());
                    0
                }
            };
        }
    };
    let window = if p.confirms { WINDOW_CONFIRMS } else { WINDOW };
    let publishing = futures_util::stream::unfold(&mut pacer, |pacer| async move {
        let seq = pacer.next().await?;
        Some((seq, pacer))
    })
    .map(|seq| publish(seq, publishers[seq as usize % publishers.len()].1.clone()))
    .buffer_unordered(window)
    .for_each(|_| async {});
    let published = timeout(p.publish_cap(), publishing).await;
    let sent = acked.load(Ordering::Relaxed);
    let nacks = nacked.load(Ordering::Relaxed);
    rx.drain(sent, p.drain, p.drain_cap()).await;
    meter.stop();

    let mut out = Outcome::from_receivers(sent, sent, &rx);
    out.nacked = nacks;
    out.note_publisher(published.map(Ok));
    if let Some(e) = failed.lock().unwrap().take() {
        out.errors.push(format!("publisher: {e}"));
    }
    drop(task);
    for (pc, _) in &publishers {
        let _ = pc.close(200, "bye".into()).await;
    }
    cch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = cc.close(200, "bye".into()).await;
    Ok(out)
}

/// Request/reply round trips, one at a time: the requester publishes to queue
/// load-rpc-<id> (auto-delete) through the default exchange with reply_to = its exclusive
/// server-named queue and a correlation_id; the responder publishes each body back to
/// reply_to with the same correlation_id. Both consume without acks.
pub async fn reqrep(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let rpc = format!("load-rpc-{}", run_id());
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let rc = connect(t.addr).await?;
    let rch = rc.create_channel().await?;
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    rch.queue_declare(rpc.as_str().into(), auto_delete, FieldTable::default())
        .await?;
    let mut requests = rch
        .basic_consume(
            rpc.as_str().into(),
            "responder".into(),
            no_ack,
            FieldTable::default(),
        )
        .await?;
    // The responder's failures end in its recorder (it records nothing).
    let resp_rec = Arc::new(Recorder::default());
    let fail = resp_rec.clone();
    let mut task = Tasks::default();
    task.push(tokio::spawn(async move {
        while let Some(d) = requests.next().await {
            let r = async {
                let d = d?;
                let to = d
                    .properties
                    .reply_to()
                    .clone()
                    .ok_or("request without reply_to")?;
                let mut props = BasicProperties::default();
                if let Some(c) = d.properties.correlation_id() {
                    props = props.with_correlation_id(c.clone());
                }
                rch.basic_publish(
                    "".into(),
                    to,
                    BasicPublishOptions::default(),
                    &d.data,
                    props,
                )
                .await?;
                Res::Ok(())
            };
            if let Err(e) = r.await {
                fail.fail(format!("responder: {e}"));
                return;
            }
        }
    }));

    let qc = connect(t.addr).await?;
    let qch = qc.create_channel().await?;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    let reply_to = qch
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await?
        .name()
        .clone();
    let mut replies = qch
        .basic_consume(
            reply_to.clone(),
            "requester".into(),
            no_ack,
            FieldTable::default(),
        )
        .await?;

    let mut n = 0u64;
    let mut out = round_trips(p, meter, async |body: &[u8]| {
        n += 1;
        let id = ShortString::from(n.to_string());
        let props = BasicProperties::default()
            .with_reply_to(reply_to.clone())
            .with_correlation_id(id.clone());
        qch.basic_publish(
            "".into(),
            rpc.as_str().into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?;
        let d = replies.next().await.ok_or("reply consumer ended")??;
        match d.properties.correlation_id() {
            Some(c) if *c == id => Res::Ok(d.data),
            c => Err(format!("reply with correlation_id {c:?}, expected {id}").into()),
        }
    })
    .await;
    out.errors.extend(resp_rec.errors());
    drop(task);
    let _ = qc.close(200, "bye".into()).await;
    let _ = rc.close(200, "bye".into()).await;
    Ok(out)
}
