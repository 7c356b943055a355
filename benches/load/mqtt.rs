//! MQTT with rumqttc (3.1.1): 1 -> N publish/subscribe at QoS 0 or 1, request/reply,
//! and idle connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS, TlsConfiguration,
    Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::brokers::Target;
use crate::procstat::Meter;
use crate::stats::{payload, round_trips, run_id, Pacer, Receivers, Recorder, Tasks};
use crate::{Outcome, Params, Res, SETUP};

pub fn client(id: String, t: &Target, size: usize, cap: usize) -> (AsyncClient, EventLoop) {
    client_with(id, t, size, cap, true)
}

/// [`client`], with a persistent session (MQTT 3.1.1 clean session 0) unless `clean`.
fn client_with(
    id: String,
    t: &Target,
    size: usize,
    cap: usize,
    clean: bool,
) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, t.addr.ip().to_string(), t.addr.port());
    if let Some(tls) = &t.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config.clone(),
        )));
    }
    if let Some((user, password)) = &t.login {
        o.set_credentials(user, password);
    }
    o.set_keep_alive(Duration::from_secs(60));
    o.set_clean_session(clean);
    o.set_max_packet_size(size + 4096, size + 4096);
    o.set_inflight(100);
    let (c, mut ev) = AsyncClient::new(o, cap);
    // rumqttc leaves Nagle on; async-nats and lapin turn it off, and so does this.
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    ev.set_network_options(net);
    (c, ev)
}

/// Polls `ev` until it fails: hands PUBLISH payloads to `deliver`; signals the first
/// CONNACK/SUBACK on `ready`; counts PUBACKs in `acked`. The failure goes to `ready`
/// while it waits, else to `deliver`.
fn poll(
    mut ev: EventLoop,
    what: String,
    ready: oneshot::Sender<Result<(), String>>,
    acked: Arc<AtomicU64>,
    want_suback: bool,
    mut deliver: impl FnMut(Result<Bytes, String>) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ready = Some(ready);
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => deliver(Ok(p.payload)),
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) if want_suback => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) if !want_suback => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let e = format!("{what}: {e}");
                    match ready.take() {
                        Some(r) => _ = r.send(Err(e)),
                        None => deliver(Err(e)),
                    }
                    return;
                }
            }
        }
    })
}

/// A `deliver` for [`poll`] that counts what arrives in `rec`.
fn recording(rec: Arc<Recorder>) -> impl FnMut(Result<Bytes, String>) + Send + 'static {
    move |m| match m {
        Ok(payload) => rec.record(&payload),
        Err(e) => rec.fail(e),
    }
}

/// Subscribes `c` (polled by a [`poll`] task that signals `ready`) to `topic` and waits
/// for the SUBACK.
async fn subscribe(
    c: &AsyncClient,
    topic: &str,
    qos: QoS,
    ready: oneshot::Receiver<Result<(), String>>,
    what: &str,
) -> Res<()> {
    c.subscribe(topic, qos).await?;
    timeout(SETUP, ready)
        .await
        .map_err(|_| format!("{what}: no SUBACK in time"))?
        .map_err(|_| format!("{what}: polling stopped"))??;
    Ok(())
}

/// A connected publisher (polled in `tasks`): its client, its PUBACK count, and
/// a recorder that receives nothing but the publisher's own errors.
async fn publisher(
    id: &str,
    t: &Target,
    p: &Params,
    tasks: &mut Tasks,
) -> Res<(AsyncClient, Arc<AtomicU64>, Arc<Recorder>)> {
    let pub_rec = Arc::new(Recorder::default());
    let (pc, ev) = client(format!("load-pub-{id}"), t, p.size, 1024);
    let (tx, ready) = oneshot::channel();
    let acked = Arc::new(AtomicU64::new(0));
    tasks.push(poll(
        ev,
        "publisher".into(),
        tx,
        acked.clone(),
        false,
        recording(pub_rec.clone()),
    ));
    timeout(SETUP, ready)
        .await
        .map_err(|_| "publisher: no CONNACK in time")?
        .map_err(|_| "publisher: polling stopped")??;
    Ok((pc, acked, pub_rec))
}

/// 1 publisher -> `p.subs` subscribers on one topic at `qos`.
pub async fn pubsub(p: &Params, t: &Target, meter: &mut Meter, qos: QoS) -> Res<Outcome> {
    let id = run_id();
    let topic = format!("load/{id}");
    let rx = Receivers::new(p.subs);
    let mut tasks = Tasks::default();
    let mut subs = Vec::new();
    for (i, rec) in rx.list.iter().enumerate() {
        let (c, ev) = client(format!("load-sub-{id}-{i}"), t, p.size, 16);
        let (tx, ready) = oneshot::channel();
        let acks = Arc::new(AtomicU64::new(0));
        let what = format!("subscriber {i}");
        tasks.push(poll(
            ev,
            what.clone(),
            tx,
            acks,
            true,
            recording(rec.clone()),
        ));
        subscribe(&c, &topic, qos, ready, &what).await?;
        subs.push(c);
    }
    let (pc, acked, pub_rec) = publisher(&id, t, p, &mut tasks).await?;

    meter.start();
    let mut pacer = Pacer::new(p);
    let publishing = async {
        while let Some(seq) = pacer.next().await {
            pc.publish(topic.as_str(), qos, false, payload(seq, p.size))
                .await?;
        }
        Res::Ok(())
    };
    let published = timeout(p.publish_cap(), publishing).await;
    let sent = pacer.sent;
    let expected = sent * p.subs as u64;
    rx.drain(expected, p.drain, p.drain_cap()).await;
    if qos == QoS::AtLeastOnce {
        // The last PUBACKs may still be on their way when the last delivery arrived.
        let until = tokio::time::Instant::now() + p.drain;
        while acked.load(Ordering::Relaxed) < sent && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    meter.stop();

    let mut out = Outcome::from_receivers(sent, expected, &rx);
    out.note_publisher(published);
    if qos == QoS::AtLeastOnce {
        let a = acked.load(Ordering::Relaxed);
        if a < sent {
            out.notes.push(format!("{} PUBACKs missing", sent - a));
        }
    }
    out.errors.extend(pub_rec.errors());
    for c in subs.iter().chain([&pc]) {
        let _ = c.try_disconnect();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(tasks);
    Ok(out)
}

/// QoS 1 into an offline persistent session: a client with a persistent session
/// subscribes and leaves; the publisher publishes `p.messages` at QoS 1 (each
/// PUBACK says the message is queued, and stored, for the session); then the
/// client comes back and takes them all.
pub async fn offline_session(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let id = run_id();
    let topic = format!("load/{id}/session");
    let keeper = format!("load-keeper-{id}");
    let mut tasks = Tasks::default();
    {
        let (c, ev) = client_with(keeper.clone(), t, p.size, 16, false);
        let (tx, ready) = oneshot::channel();
        tasks.push(poll(ev, "keeper".into(), tx, Arc::default(), true, |_| {}));
        subscribe(&c, &topic, QoS::AtLeastOnce, ready, "keeper").await?;
        c.disconnect().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (pc, acked, pub_rec) = publisher(&id, t, p, &mut tasks).await?;

    meter.start();
    let mut pacer = Pacer::new(p);
    let publishing = async {
        while let Some(seq) = pacer.next().await {
            pc.publish(
                topic.as_str(),
                QoS::AtLeastOnce,
                false,
                payload(seq, p.size),
            )
            .await?;
        }
        Res::Ok(())
    };
    let published = timeout(p.publish_cap(), publishing).await;
    let sent = pacer.sent;
    let until = tokio::time::Instant::now() + p.publish_cap();
    while acked.load(Ordering::Relaxed) < sent && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rx = Receivers::new(1);
    let (kc, ev) = client_with(keeper, t, p.size, 16, false);
    let (tx, ready) = oneshot::channel();
    tasks.push(poll(
        ev,
        "keeper".into(),
        tx,
        Arc::default(),
        false,
        recording(rx.list[0].clone()),
    ));
    timeout(SETUP, ready)
        .await
        .map_err(|_| "keeper: no CONNACK in time")?
        .map_err(|_| "keeper: polling stopped")??;
    rx.drain(sent, p.drain, p.drain_cap()).await;
    meter.stop();

    let mut out = Outcome::from_receivers(sent, sent, &rx);
    out.note_publisher(published);
    let a = acked.load(Ordering::Relaxed);
    if a < sent {
        out.notes.push(format!("{} PUBACKs missing", sent - a));
    }
    out.errors.extend(pub_rec.errors());
    // The session ends here: the next run starts clean.
    let _ = kc.try_disconnect();
    let _ = pc.try_disconnect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(tasks);
    let (cc, ev) = client_with(format!("load-keeper-{id}"), t, p.size, 16, true);
    let (tx, ready) = oneshot::channel();
    let mut end = Tasks::default();
    end.push(poll(
        ev,
        "cleanup".into(),
        tx,
        Arc::default(),
        false,
        |_| {},
    ));
    let _ = timeout(SETUP, ready).await;
    let _ = cc.disconnect().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(out)
}

/// Request/reply round trips at QoS 0, one at a time: the requester publishes to
/// load/<id>/rpc, the responder republishes each request to load/<id>/reply.
pub async fn reqrep(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let id = run_id();
    let (rpc, reply) = (format!("load/{id}/rpc"), format!("load/{id}/reply"));
    let mut tasks = Tasks::default();
    // The responder's failures end in its recorder (it records nothing).
    let resp_rec = Arc::new(Recorder::default());
    let (rc, ev) = client(format!("load-rpc-{id}"), t, p.size, 16);
    let (tx, ready) = oneshot::channel();
    let (echo, fail) = (rc.clone(), resp_rec.clone());
    let reply_topic = reply.clone();
    tasks.push(poll(
        ev,
        "responder".into(),
        tx,
        Arc::default(),
        true,
        move |m| {
            // One request at a time: the client's request queue always has room.
            let r = m.and_then(|req| {
                echo.try_publish(reply_topic.as_str(), QoS::AtMostOnce, false, req)
                    .map_err(|e| format!("responder: {e}"))
            });
            if let Err(e) = r {
                fail.fail(e);
            }
        },
    ));
    subscribe(&rc, &rpc, QoS::AtMostOnce, ready, "responder").await?;

    let (qc, ev) = client(format!("load-req-{id}"), t, p.size, 16);
    let (tx, ready) = oneshot::channel();
    let (replies_tx, mut replies) = mpsc::unbounded_channel();
    tasks.push(poll(
        ev,
        "requester".into(),
        tx,
        Arc::default(),
        true,
        move |m| {
            let _ = replies_tx.send(m);
        },
    ));
    subscribe(&qc, &reply, QoS::AtMostOnce, ready, "requester").await?;

    let mut out = round_trips(p, meter, async |body: &[u8]| {
        qc.publish(rpc.as_str(), QoS::AtMostOnce, false, body)
            .await?;
        let reply = replies
            .recv()
            .await
            .ok_or("requester: connection closed")??;
        Res::Ok(reply)
    })
    .await;
    out.errors.extend(resp_rec.errors());
    for c in [&rc, &qc] {
        let _ = c.try_disconnect();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(tasks);
    Ok(out)
}

/// An MQTT 3.1.1 CONNECT (clean session, keep alive 600 s) for `client_id`.
fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut v = vec![0x10, 0];
    v.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02]);
    v.extend_from_slice(&600u16.to_be_bytes());
    v.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    v.extend_from_slice(client_id.as_bytes());
    assert!(v.len() - 2 < 128, "one-byte remaining length");
    v[1] = (v.len() - 2) as u8;
    v
}

async fn connect_idle(addr: SocketAddr, client_id: String) -> Res<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(&connect_packet(&client_id)).await?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).await?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(format!("CONNACK {ack:?}").into());
    }
    Ok(s)
}

/// `p.connections` idle connections: the broker's RSS growth per connection.
pub async fn idle(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let id = run_id();
    let deadline = tokio::time::Instant::now() + p.publish_cap();
    meter.start();
    let results: Vec<Res<TcpStream>> = futures_util::stream::iter(0..p.connections)
        .map(|i| {
            let cid = format!("idle-{id}-{i}");
            async move {
                tokio::time::timeout_at(deadline, connect_idle(t.addr, cid))
                    .await
                    .map_err(|_| "not connected within --seconds")?
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut errors: Vec<String> = Vec::new();
    let mut conns = Vec::new();
    for r in results {
        match r {
            Ok(s) => conns.push(s),
            Err(e) if errors.len() < 3 => errors.push(e.to_string()),
            Err(_) => {}
        }
    }
    let established = conns.len() as u64;
    // Let the broker settle: no packet arrives on the connections from here on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    meter.stop();
    drop(conns);
    let mut out = Outcome {
        sent: p.connections as u64,
        expected: p.connections as u64,
        received: established,
        last_ns: meter.t1_ns,
        errors,
        ..Outcome::default()
    };
    if established > 0 {
        let grown = meter.rss1_kib as f64 - meter.rss0_kib as f64;
        out.rss_per_conn_kib = Some(grown / established as f64);
    }
    // The broker needs a moment to close them all before the next run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(out)
}
