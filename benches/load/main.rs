//! The load harness: `cargo bench --bench load -- <scenario> [options]`; `--help`
//! explains the scenarios, the options and the output.
//!
//! dwbroker and the reference brokers (mosquitto, nats-server, RabbitMQ) are driven by
//! the same generator through off-the-shelf client crates (rumqttc, async-nats, lapin;
//! STOMP through a small raw-socket client on our codec). Each run reports throughput,
//! latency percentiles, messages lost, broker CPU time per delivered message and RSS
//! (from /proc), and the generator's own CPU; comparison mode alternates the brokers
//! and prints medians and ratios. scripts/benchmarks.sh turns the output into
//! BENCHMARKS.md.

mod amqp;
mod brokers;
mod cli;
mod crash;
mod flood;
mod jetstream;
mod kafka;
mod memory;
mod mixed_soak;
mod mqtt;
mod nats;
// The tests' PKI (rcgen): the harness's CA and server certificate for --tls.
#[allow(dead_code)]
#[path = "../../tests/common/tls.rs"]
mod pki;
mod procstat;
mod report;
mod soak;
mod stats;
mod stomp;

use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::Parser;

use brokers::{Dwbroker, Kind, Reference, Target, TlsReference};
use cli::{BrokerChoice, Cli, Scenario};
use procstat::Meter;
use report::{RunResult, Summary};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Bound on every connection and subscription set-up step.
pub const SETUP: Duration = Duration::from_secs(10);

/// One scenario with its options.
#[derive(Debug, Clone)]
pub struct Params {
    pub scenario: Scenario,
    pub size: usize,
    pub messages: u64,
    pub seconds: f64,
    pub rate: u64,
    pub subs: usize,
    pub confirms: bool,
    /// amqp-queue: durable queue, persistent messages.
    pub persistent: bool,
    /// js-*: memory storage.
    pub memory: bool,
    /// amqp-queue, kafka-produce: publishing connections.
    pub publishers: usize,
    /// kafka-*: records per produce request.
    pub batch: usize,
    /// kafka-*: avro instead of binary.
    pub avro: bool,
    pub connections: usize,
    pub drain: Duration,
    /// Any loss fails the run.
    pub strict: bool,
    /// Over TLS (`--tls`).
    pub tls: bool,
}

impl Params {
    /// Longest a publisher may take (it stops itself at --seconds; this catches one
    /// stuck on a broker that stopped reading).
    pub fn publish_cap(&self) -> Duration {
        Duration::from_secs_f64(self.seconds) + Duration::from_secs(5)
    }

    /// Longest wait for deliveries after publishing ended (a slow broker may still be
    /// delivering a backlog: it stops waiting earlier when nothing arrives for --drain).
    pub fn drain_cap(&self) -> Duration {
        Duration::from_secs_f64(self.seconds) + Duration::from_secs(10)
    }

    /// E.g. `mqtt-qos1 64B 1→10 unpaced`, `nats-pubsub 64B 1→1 unpaced TLS`.
    pub fn label(&self) -> String {
        let label = self.plain_label();
        if self.tls {
            format!("{label} TLS")
        } else {
            label
        }
    }

    fn plain_label(&self) -> String {
        let pace = if self.rate == 0 {
            "unpaced".to_string()
        } else {
            format!("{}/s", self.rate)
        };
        let name = self.scenario.name();
        let size = self.size.max(stats::STAMP);
        match self.scenario {
            Scenario::MqttIdle => format!("{name} {} conns", self.connections),
            Scenario::NatsReqrep
            | Scenario::MqttReqrep
            | Scenario::AmqpReqrep
            | Scenario::StompReqrep => format!("{name} {size}B {pace}"),
            Scenario::NatsQueue => format!("{name} {size}B group of {} {pace}", self.subs),
            Scenario::JsPublish | Scenario::JsPublishSync | Scenario::JsConsume => format!(
                "{name} {size}B {} {pace}",
                if self.memory { "memory" } else { "file" }
            ),
            Scenario::KafkaProduce | Scenario::KafkaConsume => format!(
                "{name} {size}B {} batch {}{} {pace}",
                if self.avro { "avro" } else { "binary" },
                self.batch,
                if self.publishers > 1 {
                    format!(" {} publishers", self.publishers)
                } else {
                    String::new()
                }
            ),
            Scenario::AmqpQueue => format!(
                "{name} {size}B {}{}{}{pace}",
                if self.persistent { "persistent " } else { "" },
                if self.confirms { "confirms " } else { "" },
                if self.publishers > 1 {
                    format!("{} publishers ", self.publishers)
                } else {
                    String::new()
                }
            ),
            _ => format!("{name} {size}B 1→{} {pace}", self.subs),
        }
    }
}

/// What a scenario module returns.
#[derive(Debug, Default)]
pub struct Outcome {
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    /// Messages a receiver got more than once (not in `received`).
    pub duplicates: u64,
    /// When the last message arrived (stats::now_ns clock).
    pub last_ns: u64,
    /// Sorted, in nanoseconds.
    pub latencies: Vec<u64>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    pub nacked: u64,
    pub rss_per_conn_kib: Option<f64>,
}

impl Outcome {
    /// Notes how the publisher ended (bounded by `timeout(p.publish_cap(), ...)`).
    pub fn note_publisher(&mut self, published: Result<Res<()>, tokio::time::error::Elapsed>) {
        match published {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.errors.push(format!("publisher: {e}")),
            Err(_) => self.errors.push("publisher: stuck past --seconds".into()),
        }
    }

    /// A consumer's run over a stream or topic filled before it (not measured):
    /// the stamps are from the fill, so their age says nothing about the consumer.
    pub fn of_filled_consumer(
        sent: u64,
        rx: &stats::Receivers,
        consumed: Result<Res<()>, tokio::time::error::Elapsed>,
    ) -> Outcome {
        let mut out = Outcome::from_receivers(sent, sent, rx);
        out.latencies.clear();
        match consumed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.errors.push(format!("consumer: {e}")),
            Err(_) => out.errors.push("consumer: stuck past the drain cap".into()),
        }
        out
    }

    pub fn from_receivers(sent: u64, expected: u64, rx: &stats::Receivers) -> Outcome {
        Outcome {
            sent,
            expected,
            received: rx.total(),
            duplicates: rx.duplicates(),
            last_ns: rx.last_ns(),
            latencies: rx.latencies(),
            errors: rx.errors(),
            ..Outcome::default()
        }
    }
}

/// The runs the command line asks for.
fn plan(cli: &Cli) -> Vec<Params> {
    let base = |s: Scenario| Params {
        scenario: s,
        size: cli.size,
        messages: cli.messages.unwrap_or(100_000),
        seconds: cli.seconds,
        rate: cli.rate,
        subs: cli
            .subs
            .unwrap_or(if s == Scenario::NatsQueue { 3 } else { 1 })
            .max(1),
        confirms: cli.confirms,
        persistent: cli.persistent,
        memory: cli.memory,
        publishers: cli.publishers.max(1),
        batch: cli.batch.max(1),
        avro: cli.avro,
        connections: cli.connections,
        drain: Duration::from_secs_f64(cli.drain),
        tls: cli.tls,
        strict: matches!(
            s,
            Scenario::MqttQos1
                | Scenario::MqttSession
                | Scenario::AmqpQueue
                | Scenario::StompQueue
                | Scenario::JsPublish
                | Scenario::JsPublishSync
                | Scenario::JsConsume
                | Scenario::KafkaProduce
                | Scenario::KafkaConsume
        ),
    };
    match cli.scenario {
        Scenario::Smoke => [
            Scenario::MqttQos1,
            Scenario::NatsPubsub,
            Scenario::AmqpQueue,
            Scenario::StompQueue,
        ]
        .into_iter()
        .map(|s| Params {
            messages: cli.messages.unwrap_or(300),
            confirms: s == Scenario::AmqpQueue,
            strict: true,
            ..base(s)
        })
        .collect(),
        Scenario::All => [
            Scenario::MqttQos0,
            Scenario::MqttQos1,
            Scenario::NatsPubsub,
            Scenario::NatsQueue,
            Scenario::NatsReqrep,
            Scenario::MqttReqrep,
            Scenario::MqttSession,
            Scenario::AmqpQueue,
            Scenario::AmqpReqrep,
            Scenario::StompQueue,
            Scenario::StompTopic,
            Scenario::StompReqrep,
            Scenario::MqttIdle,
            Scenario::JsPublish,
            Scenario::JsPublishSync,
            Scenario::JsConsume,
            Scenario::KafkaProduce,
            Scenario::KafkaConsume,
        ]
        .into_iter()
        .map(base)
        .collect(),
        s => vec![base(s)],
    }
}

/// One run of `p` on `t`, bounded as a whole.
async fn run_one(p: &Params, t: &Target, pinned: bool) -> RunResult {
    let mut meter = Meter::new(t.pid);
    let cap = p.publish_cap() + p.drain_cap() + Duration::from_secs(30);
    let run = async {
        match p.scenario {
            Scenario::MqttQos0 => mqtt::pubsub(p, t, &mut meter, rumqttc::QoS::AtMostOnce).await,
            Scenario::MqttQos1 => mqtt::pubsub(p, t, &mut meter, rumqttc::QoS::AtLeastOnce).await,
            Scenario::MqttIdle => mqtt::idle(p, t, &mut meter).await,
            Scenario::NatsPubsub => nats::pubsub(p, t, &mut meter, false).await,
            Scenario::NatsQueue => nats::pubsub(p, t, &mut meter, true).await,
            Scenario::NatsReqrep => nats::reqrep(p, t, &mut meter).await,
            Scenario::MqttReqrep => mqtt::reqrep(p, t, &mut meter).await,
            Scenario::MqttSession => mqtt::offline_session(p, t, &mut meter).await,
            Scenario::AmqpReqrep => amqp::reqrep(p, t, &mut meter).await,
            Scenario::StompReqrep => stomp::reqrep(p, t, &mut meter).await,
            Scenario::AmqpQueue => amqp::queue(p, t, &mut meter).await,
            Scenario::StompQueue => stomp::run(p, t, &mut meter, false).await,
            Scenario::StompTopic => stomp::run(p, t, &mut meter, true).await,
            Scenario::JsPublish => jetstream::publish(p, t, &mut meter, false).await,
            Scenario::JsPublishSync => jetstream::publish(p, t, &mut meter, true).await,
            Scenario::JsConsume => jetstream::consume(p, t, &mut meter).await,
            Scenario::KafkaProduce => kafka::produce(p, t, &mut meter).await,
            Scenario::KafkaConsume => kafka::consume(p, t, &mut meter).await,
            Scenario::Smoke
            | Scenario::Crash
            | Scenario::StorageSoak
            | Scenario::MemoryBound
            | Scenario::Soak
            | Scenario::Flood
            | Scenario::All => {
                unreachable!("expanded by plan(), or run on its own")
            }
        }
    };
    let outcome = match tokio::time::timeout(cap, run).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Outcome {
            errors: vec![e.to_string()],
            ..Outcome::default()
        },
        Err(_) => Outcome {
            errors: vec![format!("run did not finish within {cap:?}")],
            ..Outcome::default()
        },
    };
    if meter.started() && meter.t1_ns == 0 {
        meter.stop();
    }
    let r = RunResult::new(p, t, &meter, outcome, pinned);
    r.print();
    // Let the broker finish closing the run's connections before the next one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    r
}

/// Pins this process's only thread (the runtime's threads inherit it) to CPU 0.
fn pin_self() -> Res<()> {
    let status = Command::new("taskset")
        .args(["-cp", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("taskset -cp 0 <self> failed: {status}").into());
    }
    Ok(())
}

async fn run(cli: Cli, plan: Vec<Params>) -> ExitCode {
    let mut choice = cli.broker;
    if cli.scenario == Scenario::Smoke && choice != BrokerChoice::Dwbroker {
        println!("smoke runs against dwbroker alone");
        choice = BrokerChoice::Dwbroker;
    }
    let use_dw = choice != BrokerChoice::Reference;
    let use_ref = choice != BrokerChoice::Dwbroker;
    let pki = cli.tls.then(pki::Pki::new);
    let mut dw = None;
    if use_dw {
        match Dwbroker::start(&cli.dwbroker_bin, pki.as_ref(), cli.acl) {
            Ok(d) => dw = Some(d),
            Err(e) => {
                eprintln!("load: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut refs = None;
    let mut tls_refs = None;
    if use_ref {
        let found = match &pki {
            Some(pki) => TlsReference::start(pki).map(|r| tls_refs = Some(r)),
            None => Reference::find(&cli.ref_dir).map(|r| refs = Some(r)),
        };
        if let Err(e) = found {
            eprintln!("load: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Pinning: every broker thread on CPU 1, for dwbroker and the references alike.
    let mut restore = Vec::new();
    if cli.pin {
        let ours = dw.iter().map(|d| d.pid());
        let theirs =
            (refs.iter().flat_map(|r| r.pids())).chain(tls_refs.iter().flat_map(|r| r.pids()));
        for pid in ours.chain(theirs) {
            // The reference brokers' affinity is restored at the end (dwbroker is ours).
            if Some(pid) != dw.as_ref().map(|d| d.pid()) {
                if let Some(saved) = brokers::affinity(pid) {
                    restore.push((pid, saved));
                }
            }
            if let Err(e) = brokers::pin(pid, "1") {
                eprintln!("load: {e}");
                return ExitCode::FAILURE;
            }
        }
        println!(
            "pinned: generator on CPU 0 (taskset -cp 0 {}), broker(s) on CPU 1 (taskset -a -cp 1 <pid>)",
            std::process::id()
        );
    } else {
        println!("not pinned: broker(s) and generator share every CPU");
    }

    let mut all_ok = true;
    let mut kinds = Vec::new();
    if use_dw {
        kinds.push(Kind::Dwbroker);
    }
    if use_ref {
        kinds.push(Kind::Reference);
    }
    'plan: for p in &plan {
        let proto = p.scenario.protocol();
        // mqtt-idle measures RSS growth: in a fresh process each time, since memory a
        // broker already holds from earlier runs hides it.
        let fresh = p.scenario == Scenario::MqttIdle;
        let rounds = if choice == BrokerChoice::Both {
            cli.pairs.max(1)
        } else {
            1
        };
        let (mut dw_runs, mut ref_runs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for &kind in &kinds {
                let mut private = None;
                let target = match (kind, fresh) {
                    (Kind::Dwbroker, true) => {
                        drop(dw.take());
                        Dwbroker::start(&cli.dwbroker_bin, pki.as_ref(), cli.acl).and_then(|d| {
                            if cli.pin {
                                brokers::pin(d.pid(), "1")?;
                            }
                            Ok(dw.insert(d).target(proto))
                        })
                    }
                    (Kind::Dwbroker, false) => dw
                        .as_ref()
                        .map(|d| d.target(proto))
                        .ok_or_else(|| "dwbroker is not running".into()),
                    (Kind::Reference, true) => brokers::PrivateMosquitto::start(pki.as_ref())
                        .and_then(|m| {
                            if cli.pin {
                                brokers::pin(m.pid(), "1")?;
                            }
                            println!(
                                "mosquitto of our own (reference configuration) for {}: pid {}, {}",
                                p.label(),
                                m.pid(),
                                m.target().addr
                            );
                            Ok(private.insert(m).target())
                        }),
                    (Kind::Reference, false) => match (&refs, &tls_refs) {
                        (_, Some(r)) => r.target(proto),
                        (Some(r), None) => r.target(proto),
                        (None, None) => Err("no reference brokers".into()),
                    },
                };
                let t = match target {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("load: {}: {} broker: {e}", p.label(), kind.as_str());
                        all_ok = false;
                        continue 'plan;
                    }
                };
                let r = run_one(p, &t, cli.pin).await;
                all_ok &= r.ok;
                match t.kind {
                    Kind::Dwbroker => dw_runs.push(r),
                    Kind::Reference => ref_runs.push(r),
                }
                drop(private);
                if let Some(d) = dw.as_mut() {
                    if let Err(e) = d.check_alive() {
                        eprintln!("load: {e}");
                        all_ok = false;
                        break 'plan;
                    }
                }
            }
        }
        if choice == BrokerChoice::Both {
            Summary::new(p, rounds, cli.pin, &dw_runs, &ref_runs).print();
        }
    }

    for (pid, cpus) in restore {
        let _ = brokers::pin(pid, &cpus);
    }
    drop(dw);
    if all_ok {
        ExitCode::SUCCESS
    } else {
        println!("load: some runs failed or lost messages where none may be lost (see above)");
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // async-nats builds its TLS configuration with the process's default provider,
    // which rustls cannot pick itself when two are compiled in.
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut plan = plan(&cli);
    let options = cli.tls || cli.acl > 0;
    if options && cli.scenario == Scenario::All {
        plan.retain(|p| p.scenario.configurable_clients());
    }
    if let Some(p) = plan
        .iter()
        .find(|p| options && !p.scenario.configurable_clients())
    {
        eprintln!(
            "load: --tls and --acl run mqtt-qos0, mqtt-qos1, mqtt-reqrep, mqtt-session, \
             nats-pubsub, nats-queue and nats-reqrep, not {}",
            p.scenario.name()
        );
        return ExitCode::FAILURE;
    }
    if cli.pin {
        if let Err(e) = pin_self() {
            eprintln!("load: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Built after pinning, so that its threads inherit the generator's CPU.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    stats::now_ns();
    let verdict = |name: &str, r: Res<bool>| match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("load: {name} failed (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("load: {name}: {e}");
            ExitCode::FAILURE
        }
    };
    let code = match cli.scenario {
        Scenario::Crash => verdict(
            "crash trials",
            rt.block_on(crash::run(&cli.dwbroker_bin, cli.trials)),
        ),
        Scenario::StorageSoak => verdict(
            "storage soak",
            rt.block_on(soak::run(
                &cli.dwbroker_bin,
                cli.messages.unwrap_or(65_536),
                if cli.size == 64 { 16_384 } else { cli.size },
            )),
        ),
        Scenario::MemoryBound => verdict(
            "memory bound",
            rt.block_on(memory::run(
                &cli.dwbroker_bin,
                cli.messages.unwrap_or(32_768),
                if cli.size == 64 { 16_384 } else { cli.size },
                cli.bound_mib,
            )),
        ),
        Scenario::Soak => verdict(
            "soak",
            rt.block_on(mixed_soak::run(
                &cli.dwbroker_bin,
                cli.minutes,
                cli.restarts,
            )),
        ),
        Scenario::Flood => verdict(
            "flood",
            rt.block_on(flood::run(
                &cli.dwbroker_bin,
                if cli.connections == 10_000 {
                    50_000
                } else {
                    cli.connections
                },
            )),
        ),
        _ => rt.block_on(run(cli, plan)),
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}
