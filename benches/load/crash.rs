//! Crash trials: publishers that wait for the broker's acknowledgement of durable
//! messages (AMQP publisher confirms, MQTT QoS 1 PUBACK and QoS 2 PUBREC, STOMP
//! RECEIPT of a persistent SEND) run against dwbroker until it is killed with
//! SIGKILL at a random moment; it is started again on the same data dir and every
//! destination is read back: the durable queues, and an MQTT persistent session
//! whose client was away (it resumes and takes what was queued for it). A trial
//! passes when every acknowledged message is there, nothing is there that was
//! never published, each destination is in publish order, and no message appears
//! twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dwbroker_codecs::stomp::{Command, Frame};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::time::timeout;

use crate::brokers::Dwbroker;
use crate::{amqp, stomp, Res, SETUP};

/// Bytes per message: a sequence number, then filler.
const SIZE: usize = 256;
/// Unacknowledged messages a publisher keeps in flight.
const WINDOW: usize = 64;
/// The kill comes this long after the publishers start, at random within.
const KILL_AFTER_MS: (u64, u64) = (150, 1500);

/// Where a stream's messages are stored.
#[derive(Clone, Copy)]
pub(crate) enum Sink {
    /// A durable queue (MQTT publishers reach it through amq.topic, key `crash.<topic>`).
    Queue(&'static str),
    /// The stored session of an MQTT client that subscribed to `crash/session/#`
    /// and left: the stream publishes to `crash/session/<name>`.
    Session(&'static str),
}

/// The stored session's client id.
const KEEPER: &str = "crash-keeper";

/// One durable stream of a trial: a publisher and where its messages land.
pub(crate) struct Stream {
    pub(crate) name: &'static str,
    pub(crate) sink: Sink,
    /// Published (handed to the client library), as sequence numbers 0..sent.
    sent: Mutex<u64>,
    /// Acknowledged by the broker.
    acked: Mutex<Vec<u64>>,
}

impl Stream {
    pub(crate) fn new(name: &'static str, sink: Sink) -> Arc<Stream> {
        Arc::new(Stream {
            name,
            sink,
            sent: Mutex::new(0),
            acked: Mutex::new(Vec::new()),
        })
    }

    fn next_seq(&self) -> u64 {
        let mut sent = self.sent.lock().unwrap();
        *sent += 1;
        *sent - 1
    }

    fn ack(&self, seq: u64) {
        self.acked.lock().unwrap().push(seq);
    }

    /// The MQTT topic an MQTT publisher of this stream publishes to.
    fn topic(&self) -> String {
        match self.sink {
            Sink::Queue(q) => format!("crash/{}", q.trim_start_matches("crash-")),
            Sink::Session(t) => format!("crash/session/{t}"),
        }
    }
}

/// The streams of a trial, in report order.
fn streams() -> Vec<Arc<Stream>> {
    vec![
        Stream::new("amqp-confirms", Sink::Queue("crash-amqp")),
        Stream::new("mqtt-qos1", Sink::Queue("crash-mqtt1")),
        Stream::new("mqtt-qos2", Sink::Queue("crash-mqtt2")),
        Stream::new("stomp-receipts", Sink::Queue("crash-stomp")),
        Stream::new("session-qos1", Sink::Session("q1")),
        Stream::new("session-qos2", Sink::Session("q2")),
    ]
}

pub(crate) fn payload(seq: u64) -> Vec<u8> {
    let mut v = vec![b'.'; SIZE];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v
}

pub(crate) fn seq_of(body: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(body.get(..8)?.try_into().ok()?))
}

/// What one stream of one trial found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub sent: u64,
    pub acked: u64,
    pub recovered: u64,
    pub acked_lost: u64,
    pub unexpected: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.recovered += o.recovered;
        self.acked_lost += o.acked_lost;
        self.unexpected += o.unexpected;
        self.out_of_order += o.out_of_order;
        self.duplicates += o.duplicates;
    }

    fn failed(&self) -> bool {
        self.acked_lost + self.unexpected + self.out_of_order + self.duplicates > 0
    }
}

/// Runs `trials` crash trials with `bin`; prints a line per trial and the totals
/// (`acked lost: 0` is the promise). Exits non-zero on any failure.
pub async fn run(bin: &Path, trials: u32) -> Res<bool> {
    let names: Vec<&str> = streams().iter().map(|s| s.name).collect();
    let mut totals = vec![Tally::default(); names.len()];
    let mut ok = true;
    for trial in 1..=trials {
        let dir =
            std::env::temp_dir().join(format!("dwbroker-crash-{}-{trial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = one_trial(bin, &dir, trial).await;
        let _ = std::fs::remove_dir_all(&dir);
        let tallies = result.map_err(|e| format!("trial {trial}: {e}"))?;
        let mut line = format!("trial {trial:>3}:");
        for (i, (name, t)) in names.iter().zip(&tallies).enumerate() {
            line += &format!(
                " {name} acked {}/{} recovered {}",
                t.acked, t.sent, t.recovered
            );
            if t.failed() {
                ok = false;
                line += &format!(
                    " [LOST {} UNEXPECTED {} DISORDER {} DUPLICATES {}]",
                    t.acked_lost, t.unexpected, t.out_of_order, t.duplicates
                );
            }
            line += if i + 1 < names.len() { ";" } else { "" };
            totals[i].add(*t);
        }
        println!("{line}");
    }
    println!();
    let mut all = Tally::default();
    for (name, t) in names.iter().zip(&totals) {
        println!(
            "{name:<15} sent {:>8}  acked {:>8}  recovered {:>8}  acked lost {}  unexpected {}  out of order {}  duplicates {}",
            t.sent, t.acked, t.recovered, t.acked_lost, t.unexpected, t.out_of_order, t.duplicates
        );
        all.add(*t);
    }
    println!(
        "trials: {trials}  acked: {}  recovered: {}  acked lost: {}  unexpected: {}  out of order: {}  duplicates: {}",
        all.acked, all.recovered, all.acked_lost, all.unexpected, all.out_of_order, all.duplicates
    );
    Ok(ok)
}

/// One trial on a fresh data dir.
async fn one_trial(bin: &Path, dir: &Path, trial: u32) -> Res<Vec<Tally>> {
    let mut broker = Dwbroker::start_on(bin, dir)?;
    let amqp_addr = broker.target(crate::cli::Protocol::Amqp).addr;
    let mqtt_addr = broker.target(crate::cli::Protocol::Mqtt).addr;
    let stomp_addr = broker.target(crate::cli::Protocol::Stomp).addr;
    declare(amqp_addr).await?;
    keeper(mqtt_addr, true).await?;
    let streams = streams();
    let tasks: Vec<_> = streams
        .iter()
        .map(|s| {
            let s = s.clone();
            match s.name {
                "amqp-confirms" => tokio::spawn(amqp_publisher(amqp_addr, s, None)),
                "stomp-receipts" => tokio::spawn(stomp_publisher(stomp_addr, s, None)),
                "mqtt-qos1" | "session-qos1" => {
                    tokio::spawn(mqtt_publisher(mqtt_addr, s, QoS::AtLeastOnce, trial, None))
                }
                _ => tokio::spawn(mqtt_publisher(mqtt_addr, s, QoS::ExactlyOnce, trial, None)),
            }
        })
        .collect();
    let (lo, hi) = KILL_AFTER_MS;
    let wait = lo + RandomState::new().hash_one(trial) % (hi - lo);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    broker.kill();
    for t in tasks {
        // Each ends with the connection the kill broke.
        let _ = timeout(Duration::from_secs(10), t).await;
    }
    drop(broker);
    let broker = Dwbroker::start_on(bin, dir)?;
    let amqp_addr = broker.target(crate::cli::Protocol::Amqp).addr;
    let mqtt_addr = broker.target(crate::cli::Protocol::Mqtt).addr;
    let mut from_session = keeper(mqtt_addr, false).await?;
    let mut out = Vec::new();
    for stream in &streams {
        let recovered = match stream.sink {
            Sink::Queue(q) => drain(amqp_addr, q).await?,
            Sink::Session(_) => from_session.remove(&stream.topic()).unwrap_or_default(),
        };
        out.push(check(stream, &recovered));
    }
    Ok(out)
}

/// The stored session's client: the first time it subscribes to
/// `crash/session/#` (QoS 2) and leaves; after the restart it resumes (it must
/// find its session present) and returns what it was sent, by topic, once
/// nothing more arrives for a second.
async fn keeper(addr: SocketAddr, first: bool) -> Res<HashMap<String, Vec<u64>>> {
    let mut o = MqttOptions::new(KEEPER, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(false);
    o.set_inflight(WINDOW as u16);
    let (client, mut ev) = AsyncClient::new(o, WINDOW);
    let mut got: HashMap<String, Vec<u64>> = HashMap::new();
    if first {
        client
            .subscribe("crash/session/#", QoS::ExactlyOnce)
            .await?;
    }
    loop {
        let polled = timeout(Duration::from_secs(if first { 10 } else { 1 }), ev.poll()).await;
        match polled {
            Err(_) if first => return Err("no SUBACK for the session's subscription".into()),
            Err(_) => break,
            Ok(Err(e)) => return Err(format!("session client: {e}").into()),
            Ok(Ok(Event::Incoming(Packet::ConnAck(c)))) if !first && !c.session_present => {
                return Err("the stored session was not present after the restart".into())
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if first => break,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let seq = seq_of(&p.payload).ok_or("a message without a sequence number")?;
                got.entry(p.topic.clone()).or_default().push(seq);
            }
            Ok(Ok(_)) => {}
        }
    }
    client.disconnect().await?;
    // Let the DISCONNECT (and the last acknowledgements) go out.
    while let Ok(Ok(_)) = timeout(Duration::from_millis(200), ev.poll()).await {}
    Ok(got)
}

/// The durable queues; MQTT's land through amq.topic bindings.
pub(crate) async fn declare(addr: SocketAddr) -> Res<()> {
    let c = amqp::connect(addr).await?;
    let ch = c.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for q in ["crash-amqp", "crash-mqtt1", "crash-mqtt2", "crash-stomp"] {
        ch.queue_declare(q.into(), durable, FieldTable::default())
            .await?;
    }
    for (q, key) in [
        ("crash-mqtt1", "crash.mqtt1"),
        ("crash-mqtt2", "crash.mqtt2"),
    ] {
        ch.queue_bind(
            q.into(),
            "amq.topic".into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    let _ = c.close(200, "bye".into()).await;
    Ok(())
}

/// Publishes persistent messages with confirms, WINDOW in flight, until the
/// connection fails.
pub(crate) async fn amqp_publisher(
    addr: SocketAddr,
    s: Arc<Stream>,
    pace: Option<Duration>,
) -> Res<()> {
    let Sink::Queue(queue) = s.sink else {
        return Err("AMQP publishes to a queue".into());
    };
    let c = amqp::connect(addr).await?;
    let ch = c.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut inflight = std::collections::VecDeque::new();
    loop {
        let seq = s.next_seq();
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &payload(seq),
                props.clone(),
            )
            .await?;
        inflight.push_back((seq, confirm));
        if let Some(p) = pace {
            tokio::time::sleep(p).await;
        }
        while inflight.len() >= WINDOW {
            let Some((seq, confirm)) = inflight.pop_front() else {
                break;
            };
            if confirm.await?.is_ack() {
                s.ack(seq);
            }
        }
    }
}

/// Publishes at `qos` to the stream's topic until the connection fails;
/// acknowledgements (PUBACK for QoS 1, PUBREC for QoS 2) come in publish order
/// ([MQTT-4.6.0-2], [MQTT-4.6.0-3]).
pub(crate) async fn mqtt_publisher(
    addr: SocketAddr,
    s: Arc<Stream>,
    qos: QoS,
    trial: u32,
    pace: Option<Duration>,
) -> Res<()> {
    let topic = s.topic();
    let mut o = MqttOptions::new(
        format!("crash-{}-{trial}-{}", s.name, std::process::id()),
        addr.ip().to_string(),
        addr.port(),
    );
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(WINDOW as u16);
    let (client, mut ev) = AsyncClient::new(o, WINDOW);
    // The sequence numbers this connection published, in order: the stream's
    // numbering goes on across connections (the soak's segments), its acks do not.
    let unacked = Arc::new(Mutex::new(VecDeque::new()));
    let publisher = {
        let (s, unacked) = (s.clone(), unacked.clone());
        tokio::spawn(async move {
            loop {
                let seq = s.next_seq();
                unacked.lock().unwrap().push_back(seq);
                if client
                    .publish(&topic, qos, false, payload(seq))
                    .await
                    .is_err()
                {
                    return;
                }
                if let Some(p) = pace {
                    tokio::time::sleep(p).await;
                }
            }
        })
    };
    loop {
        let acked = match ev.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => qos == QoS::AtLeastOnce,
            Ok(Event::Incoming(Packet::PubRec(_))) => qos == QoS::ExactlyOnce,
            Ok(_) => false,
            Err(_) => break,
        };
        if acked {
            if let Some(seq) = unacked.lock().unwrap().pop_front() {
                s.ack(seq);
            }
        }
    }
    publisher.abort();
    // What the client library took but never put on the wire is not "sent"; the
    // check only needs the upper bound.
    Ok(())
}

/// SENDs persistent messages with a receipt each, WINDOW at a time, until the
/// connection fails.
pub(crate) async fn stomp_publisher(
    addr: SocketAddr,
    s: Arc<Stream>,
    pace: Option<Duration>,
) -> Res<()> {
    let Sink::Queue(queue) = s.sink else {
        return Err("STOMP publishes to a queue".into());
    };
    let mut c = stomp::Conn::connect(addr).await?;
    let dest = format!("/queue/{queue}");
    loop {
        let mut batch = Vec::with_capacity(WINDOW);
        for _ in 0..WINDOW {
            let seq = s.next_seq();
            let body = payload(seq);
            let mut f = Frame::new(Command::Send)
                .with("destination", &dest)
                .with("persistent", "true")
                .with("receipt", &seq.to_string())
                .with("content-length", &body.len().to_string());
            f.body = body.into();
            c.send(&f).await?;
            batch.push(seq);
            if let Some(p) = pace {
                tokio::time::sleep(p).await;
            }
        }
        for _ in 0..batch.len() {
            match c.next().await? {
                Some(f) if f.command == Command::Receipt => {
                    let seq = f
                        .header("receipt-id")
                        .and_then(|r| r.parse().ok())
                        .ok_or("RECEIPT without a sequence number")?;
                    s.ack(seq);
                }
                Some(f) => return Err(format!("expected RECEIPT, got {f:?}").into()),
                None => return Err("connection closed".into()),
            }
        }
    }
}

/// Every message of `queue`, in order (basic.get, acknowledged as it is read).
pub(crate) async fn drain(addr: SocketAddr, queue: &str) -> Res<Vec<u64>> {
    let c = amqp::connect(addr).await?;
    let ch = c.create_channel().await?;
    let mut out = Vec::new();
    loop {
        let got = timeout(
            SETUP,
            ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
        )
        .await
        .map_err(|_| format!("basic.get on {queue} timed out"))??;
        let Some(m) = got else { break };
        out.push(seq_of(&m.delivery.data).ok_or("a message without a sequence number")?);
    }
    let _ = c.close(200, "bye".into()).await;
    Ok(out)
}

/// Compares what came back with what was published and acknowledged. No
/// publisher sends anything twice (none reconnects after the kill), so a message
/// that comes back twice is a duplicate the broker made: exactly once holds for
/// every stream, QoS 2's included.
pub(crate) fn check(s: &Stream, recovered: &[u64]) -> Tally {
    let sent = *s.sent.lock().unwrap();
    let acked = s.acked.lock().unwrap().clone();
    let got: HashSet<u64> = recovered.iter().copied().collect();
    Tally {
        sent,
        acked: acked.len() as u64,
        recovered: got.len() as u64,
        acked_lost: acked.iter().filter(|a| !got.contains(a)).count() as u64,
        unexpected: got.iter().filter(|&&g| g >= sent).count() as u64,
        out_of_order: recovered.windows(2).filter(|w| w[1] < w[0]).count() as u64,
        duplicates: (recovered.len() - got.len()) as u64,
    }
}
