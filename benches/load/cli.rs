//! The command line: scenarios, options and what a run prints.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

const ABOUT: &str = "Load generator for dwbroker and the reference brokers \
(mosquitto, nats-server, RabbitMQ), driven through off-the-shelf client crates.";

const LONG_ABOUT: &str = "\
Load generator for dwbroker and the reference brokers (mosquitto, nats-server, RabbitMQ),
driven through off-the-shelf client crates, so that the client side is not ours and the
same generator measures every broker:

  MQTT   rumqttc 0.25 (MQTT 3.1.1); mqtt-idle opens raw sockets that send one CONNECT
  NATS   async-nats 0.51
  AMQP   lapin 4
  STOMP  a small raw-socket client on dwbroker_codecs::stomp: there is no maintained
         async STOMP client crate worth pulling in (the crates on crates.io are
         unmaintained or synchronous), so STOMP is the one protocol spoken by our code.

Run as `cargo bench --bench load -- <SCENARIO> [OPTIONS]` (cargo builds target/release/
dwbroker with the bench). Every run is bounded by --messages and --seconds and stops by
itself; every server is on 127.0.0.1.

Brokers: dwbroker is started by the harness (target/release/dwbroker on 127.0.0.1 ports
11883/15675/16613/14222 for MQTT/AMQP/STOMP/NATS, or free ports if those are taken, with
--kafka-rest off --log warn and per-session queue limits max_queued_messages = 1000000,
max_queued_bytes = 1 GiB, like the reference mosquitto's 1000000 and unlimited; started
on every online CPU, then pinned like the reference brokers with --pin) and stopped at
the end. The reference brokers must already run:
`bash ../shared/tools/reference-brokers.sh start` (mosquitto 127.0.0.1:21883, nats-server
24222, RabbitMQ AMQP 25673 / STOMP 26614); their PIDs come from the pid files in $REF_DIR.
MQTT scenarios compare with mosquitto, NATS with nats-server, AMQP and STOMP with RabbitMQ.";

const AFTER_LONG_HELP: &str = "\
SCENARIOS (the payload carries a sequence number and the send timestamp; latency is
receive time minus send time, in the one generator process):
  mqtt-qos0    1 publisher -> --subs subscribers (1 -> N fan-out), QoS 0
  mqtt-qos1    the same at QoS 1 (publisher inflight 100); lost must be 0
  mqtt-session QoS 1 into an offline persistent session: a 3.1.1 client with clean
               session 0 subscribes and leaves, the publisher publishes --messages at
               QoS 1 (inflight 100; dwbroker stores each before its PUBACK), then the
               client comes back and takes them all; lost must be 0
  nats-pubsub  1 publisher -> --subs subscribers, one connection each
  nats-queue   1 publisher -> a queue group of --subs members (default 3)
  nats-reqrep  request/reply round trips one at a time through a responder connection
               (latency = round trip; throughput = round trips per second)
  mqtt-reqrep  the same over MQTT at QoS 0: requests to load/<id>/rpc, replies to
               load/<id>/reply
  amqp-reqrep  the same over AMQP: requests to queue load-rpc-<id> (default exchange)
               with reply_to = the requester's exclusive server-named queue and a
               correlation_id; no acks
  stomp-reqrep the same over STOMP: SEND to /queue/load-rpc-<id> with reply-to
               /queue/load-reply-<id> (ack auto)
  amqp-queue   publish to one queue (default exchange) -> 1 consumer (manual acks,
               prefetch 1000, multiple-ack every 100); --confirms waits for publisher
               confirms (1000 outstanding); --persistent makes the queue durable and
               the messages persistent; --publishers N spreads them over N
               connections; lost must be 0
  stomp-queue  SEND to /queue/<q> -> --subs consumers (ack auto); lost must be 0
  stomp-topic  SEND to /topic/<t> -> --subs subscribers (1 -> N fan-out)
  mqtt-idle    --connections idle MQTT 3.1.1 connections (CONNECT, CONNACK, then silence):
               broker RSS growth per connection after 1 s idle
  js-publish   JetStream: publishes to a stream of the run's own (file storage, or
               --memory) with 256 PubAcks in flight; received = PubAcks, latency =
               publish to PubAck. dwbroker fsyncs before a file stream's PubAck;
               nats-server by default does not (it syncs every 2 minutes)
  js-publish-sync  the same one publish at a time (each waits for its PubAck)
  js-consume   JetStream: the stream is filled with --messages first (not measured),
               then one durable pull consumer fetches batches of 500 and acks each
               message; throughput = messages consumed per second (no latency)
  kafka-produce  Kafka REST v2: POST /topics/<run's own topic> with --batch records per
               request (binary; --avro: avro with a registered value schema) over
               --publishers HTTP/1.1 keep-alive connections, one request in flight
               each; received = records whose offsets came back (after the fsync),
               latency = request round trip. No reference broker: --broker dwbroker
  kafka-consume  Kafka REST v2: the topic is filled first (not measured), then one
               consumer instance GETs records until it has them all
  smoke        a few hundred messages each of mqtt-qos1, nats-pubsub, amqp-queue
               --confirms and stomp-queue against dwbroker; exits 1 if any is lost
  crash        --trials crash trials against dwbroker: publishers of durable messages
               (AMQP with confirms, MQTT QoS 1 and QoS 2 into durable queues bound to
               amq.topic, STOMP persistent SENDs with receipts) run until dwbroker is
               killed with SIGKILL 0.15-1.5 s in; it is restarted on the same data dir
               and every queue is read back. Prints per trial and in total: acked,
               recovered, `acked lost`, unexpected, out of order, duplicates; exits 1
               unless every one of those failure counts is 0
  storage-soak --messages persistent messages of --size bytes (defaults 65536 x
               16384 = 1 GiB) published with confirms into a durable queue and
               consumed with acks, against dwbroker on a fresh data dir; prints the
               data dir's largest size and its size 10 s after the last ack; exits 1
               on a loss, a nack, or a run longer than 600 s
  memory-bound an MQTT QoS 1 publisher and a NATS publisher send --messages of --size
               bytes each (defaults 32768 x 16384: 1 GiB in all) into amq.topic-bound
               queues nobody consumes, and a slow STOMP subscriber takes a copy of
               everything, against dwbroker with memory_high_watermark = --bound-mib
               (default 64); publishing must stall with both publishers connected and
               broker RSS under 3x the bound; then consumers start and every
               acknowledged message must arrive. Prints RSS over time; exits 1 otherwise
  soak         --minutes (default 60) of mixed load on every protocol against one data
               dir, the broker restarted --restarts times (default 5; alternately
               SIGKILL and SIGTERM): paced durable publishers with acknowledgements
               (AMQP confirms, MQTT QoS 1/2, STOMP receipts) read by slow consumers,
               MQTT connect/disconnect churn and session takeovers, NATS pub/sub, Kafka
               REST produce. Prints RSS, fds and data dir size every 10 s; exits 1 if an
               acknowledged message is lost, the last segment's RSS peak is above twice
               the earlier segments' or the data dir keeps growing.
               Short form: --minutes 5 --restarts 2
  flood        --connections attempts (default 50000, up to 12000 open at once: the
               descriptor limit) against dwbroker with max_connections = 4000 and a 3 s
               connect timeout: half of them half-open (TCP only), the rest MQTT
               clients that CONNECT, SUBSCRIBE to a busy topic and never read, while a
               well-behaved client keeps round-tripping; prints accepted / refused, the
               round trip's worst latency and RSS; exits 1 if the well-behaved client
               stalls for 5 s, the broker dies, or RSS stays up after the flood
  all          every scenario above but smoke, soak and flood, with the options given

OUTPUT, per run: messages sent / received / lost (expected minus received; expected is
sent x subscribers for fan-out); throughput (messages received per second, from the
first send to the last receive); latency p50/p99/p999 in microseconds; broker CPU time
(utime+stime from /proc/<pid>/stat, delta over the run) per delivered message in
microseconds; broker RSS (VmRSS) in MiB; and the generator's own CPU (percent of one
core, and microseconds per message): near 100 % with --pin means the generator, not
the broker, was the limit, and broker CPU per message still compares brokers fairly.
Each run also prints one machine-readable line `RESULT {json}`; with --broker both each
scenario ends with `SUMMARY {json}` (medians over the pairs and the ratios
dwbroker / reference) that scripts/benchmarks.sh turns into BENCHMARKS.md.

A scenario publishes until --messages are sent or --seconds have passed, then waits
for deliveries until all arrived, or none arrived for --drain seconds, or --seconds
+ 10 s passed.
With --rate, messages are sent on a fixed schedule (tokio timers: bursts of up to 1 ms
of messages); without it, as fast as the client takes them (latency is then mostly
queueing). Exit status: 0, or 1 if a run failed or lost messages where none may be
lost (mqtt-qos1, amqp-queue, stomp-queue, smoke), 2 for a usage error.

EXAMPLES:
  cargo bench --bench load -- mqtt-qos1 --messages 20000 --subs 10
  cargo bench --bench load -- nats-pubsub --broker both --pairs 3 --pin --rate 10000
  cargo bench --bench load -- amqp-queue --confirms --size 1024 --broker reference
  cargo bench --bench load -- smoke
  cargo bench --bench load -- crash --trials 100";

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// MQTT QoS 0, 1 -> --subs fan-out
    MqttQos0,
    /// MQTT QoS 1, 1 -> --subs fan-out
    MqttQos1,
    /// NATS 1 -> --subs fan-out
    NatsPubsub,
    /// NATS queue group of --subs members
    NatsQueue,
    /// NATS request/reply round trips
    NatsReqrep,
    /// MQTT QoS 1 into an offline persistent session
    MqttSession,
    /// MQTT request/reply round trips (QoS 0)
    MqttReqrep,
    /// AMQP request/reply round trips (reply_to, correlation_id)
    AmqpReqrep,
    /// STOMP request/reply round trips (reply-to)
    StompReqrep,
    /// AMQP publish -> consume on one queue (--confirms)
    AmqpQueue,
    /// STOMP SEND -> SUBSCRIBE on /queue/
    StompQueue,
    /// STOMP SEND -> SUBSCRIBE on /topic/ (--subs fan-out)
    StompTopic,
    /// --connections idle MQTT connections: broker RSS per connection
    MqttIdle,
    /// JetStream publish with PubAck, 256 in flight (file stream; --memory)
    JsPublish,
    /// JetStream publish with PubAck, one at a time (file stream; --memory)
    JsPublishSync,
    /// JetStream pull-consume of a filled stream (file stream; --memory)
    JsConsume,
    /// Kafka REST produce, --batch records per request (--avro)
    KafkaProduce,
    /// Kafka REST consume of a filled topic (--avro)
    KafkaConsume,
    /// A few hundred messages per protocol against dwbroker; fails on any loss
    Smoke,
    /// Crash trials against dwbroker (--trials): kill -9, restart, count
    Crash,
    /// Persistent publish + ack volume against dwbroker: data dir size
    StorageSoak,
    /// Publishers held back at memory_high_watermark (--bound-mib): RSS, no loss
    MemoryBound,
    /// Mixed load on every protocol with restarts (--minutes, --restarts)
    Soak,
    /// Connection floods: half-open and never-reading clients (--connections)
    Flood,
    /// Every scenario but smoke
    All,
}

impl Scenario {
    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::MqttQos0 => "mqtt-qos0",
            Scenario::MqttQos1 => "mqtt-qos1",
            Scenario::NatsPubsub => "nats-pubsub",
            Scenario::NatsQueue => "nats-queue",
            Scenario::NatsReqrep => "nats-reqrep",
            Scenario::MqttReqrep => "mqtt-reqrep",
            Scenario::MqttSession => "mqtt-session",
            Scenario::AmqpReqrep => "amqp-reqrep",
            Scenario::StompReqrep => "stomp-reqrep",
            Scenario::AmqpQueue => "amqp-queue",
            Scenario::StompQueue => "stomp-queue",
            Scenario::StompTopic => "stomp-topic",
            Scenario::MqttIdle => "mqtt-idle",
            Scenario::JsPublish => "js-publish",
            Scenario::JsPublishSync => "js-publish-sync",
            Scenario::JsConsume => "js-consume",
            Scenario::KafkaProduce => "kafka-produce",
            Scenario::KafkaConsume => "kafka-consume",
            Scenario::Smoke => "smoke",
            Scenario::Crash => "crash",
            Scenario::StorageSoak => "storage-soak",
            Scenario::MemoryBound => "memory-bound",
            Scenario::Soak => "soak",
            Scenario::Flood => "flood",
            Scenario::All => "all",
        }
    }

    /// The protocol the scenario speaks.
    /// Whether `--tls` and `--acl` can run it: the MQTT and NATS scenarios whose
    /// clients take a TLS configuration and credentials (mqtt-idle's raw sockets and
    /// JetStream's client do not).
    pub fn configurable_clients(self) -> bool {
        matches!(
            self,
            Scenario::MqttQos0
                | Scenario::MqttQos1
                | Scenario::MqttReqrep
                | Scenario::MqttSession
                | Scenario::NatsPubsub
                | Scenario::NatsQueue
                | Scenario::NatsReqrep
        )
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Scenario::MqttQos0
            | Scenario::MqttQos1
            | Scenario::MqttIdle
            | Scenario::MqttReqrep
            | Scenario::MqttSession => Protocol::Mqtt,
            Scenario::NatsPubsub
            | Scenario::NatsQueue
            | Scenario::NatsReqrep
            | Scenario::JsPublish
            | Scenario::JsPublishSync
            | Scenario::JsConsume => Protocol::Nats,
            Scenario::AmqpQueue | Scenario::AmqpReqrep => Protocol::Amqp,
            Scenario::StompQueue | Scenario::StompTopic | Scenario::StompReqrep => Protocol::Stomp,
            Scenario::KafkaProduce | Scenario::KafkaConsume => Protocol::Kafka,
            Scenario::Smoke
            | Scenario::Crash
            | Scenario::StorageSoak
            | Scenario::MemoryBound
            | Scenario::Soak
            | Scenario::Flood
            | Scenario::All => {
                unreachable!("expanded or run on its own before running")
            }
        }
    }
}

/// The wire protocol of a scenario (it decides the reference broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Mqtt,
    Nats,
    Amqp,
    Stomp,
    Kafka,
}

/// Which broker(s) to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrokerChoice {
    /// dwbroker, started by the harness
    Dwbroker,
    /// the protocol's reference broker, already running
    Reference,
    /// comparison: dwbroker and the reference alternately, --pairs times
    Both,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "load",
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// The scenario to run (see SCENARIOS below with --help).
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// Broker to measure; `both` is the comparison mode: dwbroker and the reference
    /// alternately (A B A B ...) for --pairs pairs, then per scenario the median of each
    /// and the ratio dwbroker / reference.
    #[arg(long, value_enum, default_value = "dwbroker")]
    pub broker: BrokerChoice,

    /// Pairs of runs in comparison mode.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub pairs: usize,

    /// Payload size in bytes (at least 16: sequence number and send timestamp).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub size: usize,

    /// Messages (requests for *-reqrep) to publish per run [default: 100000; smoke: 300].
    #[arg(long, value_name = "N")]
    pub messages: Option<u64>,

    /// Longest publishing time per run, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub seconds: f64,

    /// Offered rate in messages per second; 0 = unpaced (as fast as the client takes them).
    #[arg(long, default_value_t = 0, value_name = "MSGS_PER_S")]
    pub rate: u64,

    /// Subscribers (fan-out), queue-group members or queue consumers
    /// [default: 1; nats-queue: 3].
    #[arg(long, value_name = "N")]
    pub subs: Option<usize>,

    /// amqp-queue: publisher confirms (1000 outstanding at most).
    #[arg(long)]
    pub confirms: bool,

    /// amqp-queue: a durable queue and persistent messages (delivery mode 2),
    /// stored before they are confirmed.
    #[arg(long)]
    pub persistent: bool,

    /// js-*: a memory stream instead of a file stream.
    #[arg(long)]
    pub memory: bool,

    /// kafka-*: records per produce request.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub batch: usize,

    /// kafka-*: the avro embedded format (a registered value schema) instead of binary.
    #[arg(long)]
    pub avro: bool,

    /// amqp-queue, kafka-produce: publishing connections (one channel each, messages
    /// round robin).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub publishers: usize,

    /// crash: how many crash trials.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub trials: u32,

    /// soak: how long, in minutes.
    #[arg(long, default_value_t = 60.0, value_name = "MIN")]
    pub minutes: f64,

    /// soak: broker restarts, evenly spaced.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub restarts: u32,

    /// memory-bound: the broker's memory_high_watermark, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub bound_mib: u64,

    /// mqtt-idle: idle connections to open.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub connections: usize,

    /// Pin the broker to CPU 1 (`taskset -a -cp 1 <pid>`, every thread) and the generator
    /// to CPU 0, for dwbroker and the reference brokers alike (their affinity is restored
    /// at the end).
    #[arg(long)]
    pub pin: bool,

    /// MQTT and NATS scenarios over TLS (certificates made by the harness): dwbroker on
    /// --mqtts and with --nats-tls, the reference side a mosquitto and a nats-server of
    /// the harness's own with TLS listeners (reference configuration otherwise).
    #[arg(long)]
    pub tls: bool,

    /// MQTT and NATS scenarios with access control: dwbroker with a password file
    /// and N publish and N subscribe rules for the clients' user (the one that
    /// allows the scenario's subjects last), the clients logging in; 0: none.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub acl: usize,

    /// Seconds without a new delivery after which a run stops waiting for the rest.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub drain: f64,

    /// The dwbroker binary (cargo builds it with the bench).
    #[arg(long, value_name = "PATH", default_value = env!("CARGO_BIN_EXE_dwbroker"))]
    pub dwbroker_bin: PathBuf,

    /// Scratch dir of ../shared/tools/reference-brokers.sh (its pid files).
    #[arg(
        long,
        env = "REF_DIR",
        value_name = "DIR",
        default_value = "/tmp/dwbroker-reference-brokers"
    )]
    pub ref_dir: PathBuf,

    /// Passed by `cargo bench` to every harness=false bench: ignored.
    #[arg(long = "bench", hide = true)]
    pub cargo_bench: bool,
}
