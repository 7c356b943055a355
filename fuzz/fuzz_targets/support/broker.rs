//! One real broker per fuzzing process, on loopback ports, for the targets that reach a
//! parser through its listener (JetStream's JSON API, Kafka REST bodies). A panic in any
//! broker task aborts the process, so libFuzzer records the input even though tokio would
//! otherwise catch it; a request that gets no answer in time is reported as a hang.
// Each target uses the listener it fuzzes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use dwbroker::config::{Config, DataDir, Listen};
use dwbroker::Broker;

/// How long one request may take before the target calls it a hang.
pub const ANSWER: Duration = Duration::from_secs(5);

pub struct Running {
    _runtime: tokio::runtime::Runtime,
    broker: Broker,
}

impl Running {
    pub fn nats(&self) -> SocketAddr {
        self.broker.nats_addr().expect("nats listener")
    }

    pub fn kafka_rest(&self) -> SocketAddr {
        self.broker.kafka_rest_addr().expect("kafka rest listener")
    }
}

/// The broker, started on first use.
pub fn broker() -> &'static Running {
    static BROKER: OnceLock<Running> = OnceLock::new();
    BROKER.get_or_init(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::abort();
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut c = Config::default();
        c.listeners.mqtt = Listen::Off;
        c.listeners.amqp = Listen::Off;
        c.listeners.stomp = Listen::Off;
        c.listeners.mqtt_ws = Listen::Off;
        c.listeners.stomp_ws = Listen::Off;
        c.listeners.http = Listen::Off;
        c.listeners.nats_monitor = Listen::Off;
        c.listeners.nats = Listen::parse("127.0.0.1:0").expect("addr");
        c.listeners.kafka_rest = Listen::parse("127.0.0.1:0").expect("addr");
        c.data_dir = DataDir::Temporary;
        // Bounded state however long the run: small streams, short-lived consumers.
        c.limits.max_stream_bytes = 4 << 20;
        c.limits.kafka_instance_timeout = Duration::from_secs(2);
        let broker = runtime.block_on(Broker::start(c)).expect("broker starts");
        Running {
            _runtime: runtime,
            broker,
        }
    })
}

/// A blocking connection with a read timeout of [`ANSWER`].
pub fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).expect("connects to the broker");
    s.set_read_timeout(Some(ANSWER)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    BufReader::new(s)
}

/// Reads one CRLF-terminated line; `None` when the broker closed the connection.
pub fn line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut l = String::new();
    match r.read_line(&mut l) {
        Ok(0) => None,
        Ok(_) => Some(l.trim_end().to_owned()),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            panic!("the broker did not answer within {ANSWER:?}")
        }
        Err(_) => None,
    }
}

/// Reads `n` bytes; `false` when the broker closed the connection.
pub fn skip(r: &mut BufReader<TcpStream>, n: usize) -> bool {
    let mut buf = vec![0; n];
    r.read_exact(&mut buf).is_ok()
}

/// Writes `bytes`; `false` when the broker closed the connection.
pub fn send(r: &mut BufReader<TcpStream>, bytes: &[u8]) -> bool {
    r.get_mut().write_all(bytes).is_ok()
}
