//! STOMP 1.2 over a small raw-socket client on `dwbroker_codecs::stomp` (no maintained
//! async STOMP client crate exists): SEND -> SUBSCRIBE on /queue/ and /topic/, and
//! request/reply through two queues.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use dwbroker_codecs::stomp::{
    Command, Frame, FrameWriter, Received, StompCodec, StompLimits, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Decoder;

use crate::brokers::Target;
use crate::procstat::Meter;
use crate::stats::{payload, round_trips, run_id, Pacer, Receivers, Recorder, Tasks};
use crate::{amqp, Outcome, Params, Res, SETUP};

/// Bytes of SEND frames buffered before a write.
const WRITE_CHUNK: usize = 64 * 1024;

/// One STOMP 1.2 connection (heart-beats off, TCP_NODELAY like the other clients).
pub struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    codec: StompCodec,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Res<Conn> {
        let stream = timeout(SETUP, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("STOMP connect to {addr} timed out"))??;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut c = Conn {
            rd,
            wr,
            buf: BytesMut::with_capacity(WRITE_CHUNK),
            // The server's frames are trusted.
            codec: StompCodec::new(StompLimits {
                max_header_line: 1 << 20,
                max_headers: 100_000,
                max_body: 1 << 26,
            }),
        };
        let connect = Frame::new(Command::Connect)
            .with("accept-version", "1.2")
            .with("host", "/")
            .with("login", "guest")
            .with("passcode", "guest")
            .with("heart-beat", "0,0");
        c.send(&connect).await?;
        let f = timeout(SETUP, c.next())
            .await
            .map_err(|_| "no CONNECTED in time")??;
        match f {
            Some(f) if f.command == Command::Connected => Ok(c),
            other => Err(format!("expected CONNECTED, got {other:?}").into()),
        }
    }

    pub async fn send(&mut self, f: &Frame) -> Res<()> {
        let mut out = BytesMut::new();
        f.encode(Version::V1_2, &mut out);
        self.wr.write_all(&out).await?;
        Ok(())
    }

    /// SENDs `body` to `dest`, with a reply-to header when `reply_to` is given.
    async fn send_to(&mut self, dest: &str, reply_to: Option<&str>, body: &[u8]) -> Res<()> {
        let mut out = BytesMut::new();
        let mut w = FrameWriter::start(&mut out, Command::Send, Version::V1_2);
        w.header("destination", dest)
            .header("content-length", &body.len().to_string());
        if let Some(r) = reply_to {
            w.header("reply-to", r);
        }
        w.finish(body);
        self.wr.write_all(&out).await?;
        Ok(())
    }

    /// SUBSCRIBEs to `dest` (ack auto) and waits for the RECEIPT.
    pub async fn subscribe(&mut self, dest: &str) -> Res<()> {
        let sub = Frame::new(Command::Subscribe)
            .with("id", "0")
            .with("destination", dest)
            .with("ack", "auto");
        self.send_with_receipt(sub, "sub").await
    }

    /// The next MESSAGE; any other frame, or the end of the connection, is an error.
    pub async fn message(&mut self) -> Res<Frame> {
        match self.next().await? {
            Some(f) if f.command == Command::Message => Ok(f),
            Some(f) => Err(format!("expected MESSAGE, got {f:?}").into()),
            None => Err("connection closed".into()),
        }
    }

    /// The next frame (heart-beats skipped); None once the server closed the socket.
    pub async fn next(&mut self) -> Res<Option<Frame>> {
        loop {
            while let Some(r) = self.codec.decode(&mut self.buf)? {
                if let Received::Frame(f) = r {
                    return Ok(Some(f));
                }
            }
            if self.buf.capacity() - self.buf.len() < 8192 {
                self.buf.reserve(WRITE_CHUNK);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Sends `f` with a receipt and waits for the RECEIPT.
    async fn send_with_receipt(&mut self, f: Frame, receipt: &str) -> Res<()> {
        self.send(&f.with("receipt", receipt)).await?;
        loop {
            let f = timeout(SETUP, self.next())
                .await
                .map_err(|_| format!("no RECEIPT {receipt} in time"))??
                .ok_or("connection closed before the RECEIPT")?;
            match f.command {
                Command::Receipt if f.header("receipt-id") == Some(receipt) => return Ok(()),
                Command::Error => return Err(format!("ERROR: {f:?}").into()),
                _ => {}
            }
        }
    }
}

/// SEND to /queue/<q> (`topic` false: `p.subs` competing consumers) or /topic/<t>
/// (`topic` true: `p.subs` subscribers, each gets every message).
pub async fn run(p: &Params, t: &Target, meter: &mut Meter, topic: bool) -> Res<Outcome> {
    let id = run_id();
    let queue = format!("load-stomp-{id}");
    let dest = if topic {
        format!("/topic/load.{id}")
    } else {
        format!("/queue/{queue}")
    };
    let rx = Receivers::new(p.subs);
    let mut tasks = Tasks::default();
    for rec in &rx.list {
        let mut c = Conn::connect(t.addr).await?;
        c.subscribe(&dest).await?;
        let rec = rec.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match c.next().await {
                    Ok(Some(f)) if f.command == Command::Message => rec.record(&f.body),
                    Ok(Some(f)) => {
                        rec.fail(format!("subscriber got {f:?}"));
                        return;
                    }
                    Ok(None) => return,
                    Err(e) => {
                        rec.fail(format!("subscriber: {e}"));
                        return;
                    }
                }
            }
        }));
    }
    let mut pc = Conn::connect(t.addr).await?;
    let len = p.size.max(crate::stats::STAMP).to_string();

    meter.start();
    let mut pacer = Pacer::new(p);
    let mut out_buf = BytesMut::with_capacity(2 * WRITE_CHUNK);
    let publishing = async {
        while let Some(seq) = pacer.next().await {
            let mut w = FrameWriter::start(&mut out_buf, Command::Send, Version::V1_2);
            w.header("destination", &dest)
                .header("content-length", &len);
            w.finish(&payload(seq, p.size));
            if out_buf.len() >= WRITE_CHUNK || pacer.ahead() {
                pc.wr.write_all(&out_buf).await?;
                out_buf.clear();
            }
        }
        pc.wr.write_all(&out_buf).await?;
        // Every SEND before it has been processed once the DISCONNECT's RECEIPT is back.
        pc.send_with_receipt(Frame::new(Command::Disconnect), "bye")
            .await?;
        Res::Ok(())
    };
    let published = timeout(p.publish_cap() + Duration::from_secs(5), publishing).await;
    let sent = pacer.sent;
    let expected = if topic { sent * p.subs as u64 } else { sent };
    rx.drain(expected, p.drain, p.drain_cap()).await;
    meter.stop();

    let mut out = Outcome::from_receivers(sent, expected, &rx);
    out.note_publisher(published);
    drop(tasks);
    if !topic {
        // /queue/<q> is the AMQP queue <q> on both brokers (RabbitMQ keeps it otherwise).
        if let Err(e) = amqp::delete_queue(t.amqp, &queue).await {
            out.notes.push(format!("deleting queue {queue}: {e}"));
        }
    }
    Ok(out)
}

/// Request/reply round trips, one at a time: the requester SENDs to
/// /queue/load-rpc-<id> with reply-to /queue/load-reply-<id>, the responder SENDs each
/// body to the destination in the request's reply-to header.
pub async fn reqrep(p: &Params, t: &Target, meter: &mut Meter) -> Res<Outcome> {
    let id = run_id();
    let (rpc, reply) = (format!("load-rpc-{id}"), format!("load-reply-{id}"));
    let (rpc_dest, reply_dest) = (format!("/queue/{rpc}"), format!("/queue/{reply}"));
    let mut responder = Conn::connect(t.addr).await?;
    responder.subscribe(&rpc_dest).await?;
    // The responder's failures end in its recorder (it records nothing).
    let resp_rec = Arc::new(Recorder::default());
    let fail = resp_rec.clone();
    let mut task = Tasks::default();
    task.push(tokio::spawn(async move {
        loop {
            let r = async {
                let f = responder.message().await?;
                let to = f.header("reply-to").ok_or("request without reply-to")?;
                responder.send_to(to, None, &f.body).await
            };
            if let Err(e) = r.await {
                fail.fail(format!("responder: {e}"));
                return;
            }
        }
    }));
    let mut requester = Conn::connect(t.addr).await?;
    requester.subscribe(&reply_dest).await?;

    let mut out = round_trips(p, meter, async |body: &[u8]| {
        requester
            .send_to(&rpc_dest, Some(&reply_dest), body)
            .await?;
        Res::Ok(requester.message().await?.body)
    })
    .await;
    out.errors.extend(resp_rec.errors());
    drop(task);
    drop(requester);
    // /queue/<q> is the AMQP queue <q> on both brokers (RabbitMQ keeps it otherwise).
    for q in [rpc, reply] {
        if let Err(e) = amqp::delete_queue(t.amqp, &q).await {
            out.notes.push(format!("deleting queue {q}: {e}"));
        }
    }
    Ok(out)
}
