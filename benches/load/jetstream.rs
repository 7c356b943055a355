//! JetStream with async-nats: publish with PubAck (one at a time, or a window in
//! flight) and pull-consume, on a file or (--memory) memory stream of the run's own.

use std::collections::VecDeque;
use std::net::SocketAddr;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::timeout;

use crate::brokers::Target;
use crate::procstat::Meter;
use crate::stats::{payload, round_trips, run_id, Pacer, Receivers};
use crate::{Outcome, Params, Res, SETUP};

/// PubAcks awaited at once by js-publish (async-nats's own default window).
pub const WINDOW: usize = 256;
/// Messages asked for per pull request by js-consume.
const BATCH: usize = 500;

struct Run {
    js: jetstream::Context,
    name: String,
    subject: String,
}

async fn setup(p: &Params, addr: SocketAddr) -> Res<Run> {
    let client = timeout(SETUP, async_nats::connect(format!("nats://{addr}")))
        .await
        .map_err(|_| format!("NATS connect to {addr} timed out"))??;
    let js = jetstream::new(client);
    let id = run_id().replace('x', "_");
    let name = format!("LOAD_{id}");
    let subject = format!("load.js.{id}");
    let storage = if p.memory {
        stream::StorageType::Memory
    } else {
        stream::StorageType::File
    };
    timeout(
        SETUP,
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage,
            ..Default::default()
        }),
    )
    .await
    .map_err(|_| "stream create timed out")??;
    Ok(Run { js, name, subject })
}

impl Run {
    async fn remove(self) {
        let _ = timeout(SETUP, self.js.delete_stream(&self.name)).await;
    }
}

/// Publishes until the pacer stops, `window` PubAcks in flight; every acked
/// publish is recorded (latency: publish to PubAck).
async fn publish_windowed(
    run: &Run,
    pacer: &mut Pacer,
    size: usize,
    window: usize,
    rx: &Receivers,
) -> Res<()> {
    let mut inflight = VecDeque::with_capacity(window);
    let rec = &rx.list[0];
    while let Some(seq) = pacer.next().await {
        let body = payload(seq, size);
        let ack = run
            .js
            .publish(run.subject.clone(), Bytes::copy_from_slice(&body))
            .await?;
        inflight.push_back((ack, body));
        if inflight.len() >= window {
            if let Some((ack, body)) = inflight.pop_front() {
                ack.await?;
                rec.record(&body);
            }
        }
    }
    for (ack, body) in inflight {
        ack.await?;
        rec.record(&body);
    }
    Ok(())
}

/// js-publish (window of [`WINDOW`]) and js-publish-sync (one at a time).
pub async fn publish(p: &Params, t: &Target, meter: &mut Meter, sync: bool) -> Res<Outcome> {
    let run = setup(p, t.addr).await?;
    let out = if sync {
        round_trips(p, meter, async |body: &[u8]| {
            run.js
                .publish(run.subject.clone(), Bytes::copy_from_slice(body))
                .await?
                .await?;
            Res::Ok(body.to_vec())
        })
        .await
    } else {
        let rx = Receivers::new(1);
        meter.start();
        let mut pacer = Pacer::new(p);
        let published = timeout(
            p.publish_cap(),
            publish_windowed(&run, &mut pacer, p.size, WINDOW, &rx),
        )
        .await;
        meter.stop();
        let mut out = Outcome::from_receivers(pacer.sent, pacer.sent, &rx);
        out.note_publisher(published);
        out
    };
    run.remove().await;
    Ok(out)
}

/// js-consume: the stream is filled first (not measured), then one pull
/// consumer fetches it all in batches of [`BATCH`], acking each message.
pub async fn consume(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let run = setup(p, t.addr).await?;
    let filled = Receivers::new(1);
    let mut pacer = Pacer::new(p);
    timeout(
        p.publish_cap(),
        publish_windowed(&run, &mut pacer, p.size, WINDOW, &filled),
    )
    .await
    .map_err(|_| "filling the stream took longer than --seconds")??;
    let sent = pacer.sent;
    let stream = run.js.get_stream(&run.name).await?;
    let c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("load".into()),
            ..Default::default()
        })
        .await?;
    let rx = Receivers::new(1);
    let rec = &rx.list[0];
    meter.start();
    let consuming = async {
        while rec.count() < sent {
            let mut batch = c.fetch().max_messages(BATCH).messages().await?;
            let mut got = 0;
            while let Some(m) = batch.next().await {
                let m = m?;
                rec.record(&m.payload);
                m.ack().await?;
                got += 1;
            }
            if got == 0 {
                break;
            }
        }
        Res::Ok(())
    };
    let consumed = timeout(p.drain_cap(), consuming).await;
    meter.stop();
    let out = Outcome::of_filled_consumer(sent, &rx, consumed);
    run.remove().await;
    Ok(out)
}
