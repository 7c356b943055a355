//! Connection floods against dwbroker's MQTT listener (its default limits but
//! max_connections = 4000, a 3 s connect timeout and a 16 MiB memory bound), in two
//! waves of --connections / 2 attempts each, as fast as the generator's file
//! descriptors allow (up to 12,000 of its sockets open at once, spread over 64 loopback
//! source addresses so the ephemeral ports last). Every other attempt is half-open (TCP
//! only, never a byte); the rest send CONNECT and SUBSCRIBE to a busy topic, read the
//! CONNACK and then never read again. Meanwhile a well-behaved client that connected
//! first keeps making QoS 1 round trips and a publisher feeds the busy topic.
//!
//! Prints per wave the attempts, connections accepted (CONNACK, or held open until the
//! connect timeout), refused (closed at once: max_connections), failed to connect, the
//! well-behaved client's worst round trip, and broker RSS before, at its peak and after.
//! Exits 1 if the well-behaved client stalls for 5 s, the broker dies, or the second
//! wave leaves RSS above the first's by more than a quarter plus 16 MiB (what the
//! allocator keeps after the first is expected; growth wave after wave is a leak).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::brokers::Dwbroker;
use crate::cli::Protocol;
use crate::{procstat, Res};

const MAX_CONNECTIONS: usize = 4000;
const MEMORY_BOUND: usize = 16 << 20;
const CONNECT_TIMEOUT_SECS: u64 = 3;
/// The generator's own sockets open at once (its descriptor limit is 20,000 here).
const OPEN_AT_ONCE: usize = 12_000;
/// How long an accepted never-reading client stays.
const HOLD: Duration = Duration::from_secs(6);
/// A round trip this slow is a stall.
const STALL: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// CONNECT (3.1.1, clean session, keep alive 60 s) with client id `id`, then SUBSCRIBE
/// to `flood/busy` at QoS 0.
fn connect_and_subscribe(id: &str) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT\x04\x02\x00\x3c".to_vec();
    body.extend((id.len() as u16).to_be_bytes());
    body.extend(id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    let filter = b"flood/busy";
    let mut sub = vec![0x00, 0x01, 0x00, filter.len() as u8];
    sub.extend(filter);
    sub.push(0);
    p.extend([0x82, sub.len() as u8]);
    p.extend(sub);
    p
}

/// One attempt from source address 127.0.0.`src`.
async fn attempt(addr: SocketAddr, src: u8, n: u64, counts: &Counts) {
    let Ok(socket) = TcpSocket::new_v4() else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, src), 0)))
        .is_err()
    {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut s = match timeout(Duration::from_secs(10), socket.connect(addr)).await {
        Ok(Ok(s)) => s,
        _ => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut buf = [0u8; 4];
    if n.is_multiple_of(2) {
        // Half-open: the broker should hold it until the connect timeout, or close it at
        // once when it is over max_connections.
        let started = Instant::now();
        let _ = timeout(HOLD, s.read(&mut buf)).await;
        if started.elapsed()
            >= Duration::from_secs(CONNECT_TIMEOUT_SECS) - Duration::from_millis(500)
        {
            counts.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    if s.write_all(&connect_and_subscribe(&format!("flood-{n}")))
        .await
        .is_err()
    {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match timeout(Duration::from_secs(10), s.read_exact(&mut buf)).await {
        Ok(Ok(_)) if buf == [0x20, 0x02, 0x00, 0x00] => {
            counts.accepted.fetch_add(1, Ordering::Relaxed);
            // Never read again: the busy topic piles up behind this socket.
            tokio::time::sleep(HOLD).await;
        }
        _ => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn run(bin: &Path, attempts: usize) -> Res<bool> {
    let dir = std::env::temp_dir().join(format!("dwbroker-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = format!(
        "max_connections = {MAX_CONNECTIONS}\nconnect_timeout_secs = {CONNECT_TIMEOUT_SECS}\n\
         memory_high_watermark = {MEMORY_BOUND}\n"
    );
    let mut broker = Dwbroker::start_with_default_limits(bin, &dir, &limits)?;
    let addr = broker.target(Protocol::Mqtt).addr;
    let pid = broker.pid();

    // The well-behaved client, connected before the flood.
    let mut o = MqttOptions::new("flood-probe", addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (probe, mut ev) = AsyncClient::new(o, 64);
    probe.subscribe("flood/probe", QoS::AtLeastOnce).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let worst_us = Arc::new(AtomicU64::new(0));
    let rounds = Arc::new(AtomicU64::new(0));
    let prober = {
        let (stop, worst_us, rounds) = (stop.clone(), worst_us.clone(), rounds.clone());
        tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                probe
                    .publish("flood/probe", QoS::AtLeastOnce, false, seq.to_string())
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    let e = timeout(STALL, ev.poll())
                        .await
                        .map_err(|_| format!("round trip {seq} stalled for {STALL:?}"))?
                        .map_err(|e| e.to_string())?;
                    if let Event::Incoming(Packet::Publish(p)) = e {
                        if p.payload == seq.to_string().as_bytes() {
                            break;
                        }
                    }
                }
                worst_us.fetch_max(sent.elapsed().as_micros() as u64, Ordering::Relaxed);
                rounds.fetch_add(1, Ordering::Relaxed);
                seq += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<(), String>(())
        })
    };
    // The busy topic's publisher.
    let feeder = {
        let stop = stop.clone();
        let mut o = MqttOptions::new("flood-feeder", addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        let (c, mut ev) = AsyncClient::new(o, 1024);
        tokio::spawn(async move { while ev.poll().await.is_ok() {} });
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..10 {
                    let _ = c
                        .publish("flood/busy", QoS::AtMostOnce, false, vec![b'b'; 256])
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = procstat::rss_kib(pid).unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(procstat::rss_kib(pid).unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let mib = |k: u64| k as f64 / 1024.0;
    let mut after = Vec::new();
    for wave in 1..=2 {
        let counts = Arc::new(Counts::default());
        let gate = Arc::new(Semaphore::new(OPEN_AT_ONCE));
        let started = Instant::now();
        let mut running = Vec::with_capacity(attempts / 2);
        for n in 0..(attempts / 2) as u64 {
            let permit = gate.clone().acquire_owned().await?;
            let counts = counts.clone();
            let src = 2 + (n % 64) as u8;
            running.push(tokio::spawn(async move {
                attempt(addr, src, n, &counts).await;
                drop(permit);
            }));
        }
        for r in running {
            let _ = r.await;
        }
        let secs = started.elapsed().as_secs_f64();
        // Let the broker see every socket gone, then measure.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss = procstat::rss_kib(pid).unwrap_or(0);
        after.push(rss);
        println!(
            "flood wave {wave}: {} attempts in {secs:.1} s (at most {OPEN_AT_ONCE} open at once): \
             accepted {}, refused {}, failed to connect {}; broker RSS peak so far {:.1} MiB, \
             after {:.1} MiB with {} descriptors open",
            attempts / 2,
            counts.accepted.load(Ordering::Relaxed),
            counts.refused.load(Ordering::Relaxed),
            counts.failed.load(Ordering::Relaxed),
            mib(peak.load(Ordering::Relaxed)),
            mib(rss),
            procstat::open_fds(pid),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let probe_result = prober.await?;
    feeder.abort();
    sampler.abort();
    let alive = broker.check_alive();
    println!(
        "flood: well-behaved client {} round trips, worst {:.1} ms; broker RSS before {:.1} MiB, \
         peak {:.1} MiB, after the waves {:.1} / {:.1} MiB",
        rounds.load(Ordering::Relaxed),
        worst_us.load(Ordering::Relaxed) as f64 / 1000.0,
        mib(rss_before),
        mib(peak.load(Ordering::Relaxed)),
        mib(after[0]),
        mib(after[1]),
    );
    let mut ok = true;
    if let Err(e) = probe_result {
        println!("flood: the well-behaved client was disturbed: {e}");
        ok = false;
    }
    if let Err(e) = alive {
        println!("flood: {e}");
        ok = false;
    }
    if after[1] > after[0] + after[0] / 4 + 16 * 1024 {
        println!("flood: RSS grew from one wave to the next");
        ok = false;
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ok)
}
