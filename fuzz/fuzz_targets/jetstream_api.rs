//! JetStream's JSON API through the real NATS listener: byte 0 picks an API subject
//! (streams S1/S2, consumers C1/C2, so state builds up across inputs), the rest is the
//! request body. Invariants: the broker never panics, and answers the PING that follows
//! every request (a request that wedges the connection is a hang).
#![no_main]

use std::io::BufReader;
use std::net::TcpStream;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

#[path = "support/broker.rs"]
mod support;

const SUBJECTS: &[&str] = &[
    "INFO",
    "STREAM.CREATE.S1",
    "STREAM.CREATE.S2",
    "STREAM.UPDATE.S1",
    "STREAM.INFO.S1",
    "STREAM.NAMES",
    "STREAM.LIST",
    "STREAM.PURGE.S1",
    "STREAM.DELETE.S2",
    "STREAM.MSG.GET.S1",
    "STREAM.MSG.DELETE.S1",
    "CONSUMER.CREATE.S1",
    "CONSUMER.CREATE.S1.C1",
    "CONSUMER.DURABLE.CREATE.S1.C2",
    "CONSUMER.INFO.S1.C1",
    "CONSUMER.NAMES.S1",
    "CONSUMER.LIST.S1",
    "CONSUMER.DELETE.S1.C2",
    "CONSUMER.MSG.NEXT.S1.C1",
    "S1.PUBLISH",
];

/// The connection, kept across inputs (reopened if the broker closes it).
static CONN: Mutex<Option<BufReader<TcpStream>>> = Mutex::new(None);

fn open() -> BufReader<TcpStream> {
    let mut c = support::connect(support::broker().nats());
    support::line(&mut c).expect("INFO");
    assert!(support::send(
        &mut c,
        b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB _INBOX.fuzz.> 1\r\nPING\r\n"
    ));
    until_pong(&mut c).expect("PONG after CONNECT");
    c
}

/// Reads (skipping messages) until PONG; `None` if the broker closed the connection.
fn until_pong(c: &mut BufReader<TcpStream>) -> Option<()> {
    loop {
        let l = support::line(c)?;
        if l == "PONG" {
            return Some(());
        }
        if l.starts_with("MSG ") || l.starts_with("HMSG ") {
            let size: usize = l.rsplit(' ').next()?.parse().ok()?;
            support::skip(c, size + 2).then_some(())?;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, body @ ..] = data else { return };
    let body = &body[..body.len().min(16 * 1024)];
    let subject = if SUBJECTS[usize::from(*pick) % SUBJECTS.len()] == "S1.PUBLISH" {
        // Messages for the streams to hold (S1 captures S1.>).
        "S1.x".to_owned()
    } else {
        format!("$JS.API.{}", SUBJECTS[usize::from(*pick) % SUBJECTS.len()])
    };
    let mut req = format!("PUB {subject} _INBOX.fuzz.r {}\r\n", body.len()).into_bytes();
    req.extend(body);
    req.extend(b"\r\nPING\r\n");
    let mut guard = CONN.lock().unwrap_or_else(|e| e.into_inner());
    let conn = guard.get_or_insert_with(open);
    if !support::send(conn, &req) || until_pong(conn).is_none() {
        // Closed by the broker (an -ERR it is entitled to): start over next time.
        *guard = None;
    }
});
