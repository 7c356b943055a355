//! The bad-input corpus: well over a thousand byte-level cases across the five
//! listeners, each with the answer its spec gives (reason code, reply code, ERROR,
//! -ERR, HTTP status) and whether the connection closes, run as one table while a
//! well-behaved client of every protocol keeps making round trips beside them.
//!
//! `DWBROKER_CASE=substring` runs only the cases whose names contain it.

#[path = "../common/mod.rs"]
mod common;

mod amqp;
mod bystanders;
mod http;
mod mqtt;
mod nats;
mod runner;
mod stomp;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runner::{Case, Ports, Proto};
use tokio::sync::Semaphore;

/// Cases in flight at once.
const PARALLEL: usize = 48;

/// A TLS 1.2/1.3 ClientHello's first bytes (record type 22, version 3.1), as a client
/// that mistook the port for a TLS one sends them.
pub fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
    ];
    hello.extend([0x11; 32]);
    hello.extend([0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    hello
}

fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(mqtt::cases());
    cases.extend(amqp::cases());
    cases.extend(nats::cases());
    cases.extend(stomp::cases());
    cases.extend(http::cases());
    if let Ok(only) = std::env::var("DWBROKER_CASE") {
        cases.retain(|c| c.name.contains(&only));
    }
    cases
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Mqtt(_) => "mqtt",
        Proto::Amqp => "amqp",
        Proto::Stomp => "stomp",
        Proto::Nats => "nats",
        Proto::Http => "http",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_gets_its_answer_and_nobody_else_notices() {
    let (broker, mqtt) = common::start_with(|c| {
        c.limits.connect_timeout = Duration::from_secs(3);
        c.limits.max_message_size = 65_536;
        c.limits.nats_max_payload = 65_536;
        c.limits.http_max_body = 65_536;
    })
    .await;
    let ports = Arc::new(Ports {
        mqtt,
        amqp: broker.amqp_addr().unwrap(),
        stomp: broker.stomp_addr().unwrap(),
        nats: broker.nats_addr().unwrap(),
        http: broker.kafka_rest_addr().unwrap(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let bystanders = bystanders::spawn_all(&broker, stop.clone());

    let cases = all_cases();
    let mut per_proto: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cases {
        *per_proto.entry(proto_name(c.proto)).or_default() += 1;
    }
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(&c.name), "two cases are named {}", c.name);
    }
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut running = Vec::new();
    for case in cases {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let ports = ports.clone();
        running.push(tokio::spawn(async move {
            let r = runner::run(&case, &ports).await;
            drop(permit);
            (case.name, r)
        }));
    }
    let mut failures = Vec::new();
    for r in running {
        let (name, r) = r.await.unwrap();
        if let Err(e) = r {
            failures.push(format!("{name}: {e}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut disturbed = Vec::new();
    for b in bystanders {
        let (proto, r) = b.await.unwrap();
        match r {
            Ok(rounds) if rounds > 0 => eprintln!("bystander {proto}: {rounds} round trips"),
            Ok(_) => disturbed.push(format!("{proto}: no round trip completed")),
            Err(e) => disturbed.push(format!("{proto}: {e}")),
        }
    }
    eprintln!("cases per protocol: {per_proto:?}");
    failures.sort();
    assert!(
        failures.is_empty() && disturbed.is_empty(),
        "{} cases failed:\n{}\nbystanders disturbed: {disturbed:?}",
        failures.len(),
        failures.join("\n")
    );
    common::assert_broker_serves(mqtt).await;
}
