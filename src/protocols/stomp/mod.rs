//! The STOMP front's I/O shell: frames through the codec into the state machine,
//! deliveries out in one write per wake-up, heart-beats both ways, the handshake
//! timeout, flow control under memory pressure, and the connection's end.

mod session;
mod translate;

pub(crate) use translate::{parse_destination, send_route, Destination};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwbroker_codecs::stomp::{
    encode_heartbeat, Command, Frame, Received, StompCodec, StompError, StompLimits, Version,
};
use futures_util::StreamExt;
use tracing::{debug, info, warn};

use session::{Connection, Exit, Offer};

use crate::access::{Grant, Login, Peer};
use crate::connections::{Protocol, Registration};
use crate::protocols::acks;
use crate::protocols::delivery::{write_pending, Deliveries};
use crate::protocols::frames::FrameReader;
use crate::protocols::now;
use crate::protocols::pressure::Pressure;
use crate::protocols::socket::{self, Watched};
use crate::server::Context;
use crate::transport::{Duplex, Goodbye, ReadHalf, WriteHalf};

/// Deliveries a connection's queues may hand it before it writes them.
const OUTLET_MAX: usize = 1024;
/// How often heart-beats, the handshake timeout and the memory alarm are checked
/// (more often when a negotiated heart-beat needs it).
const TICK: Duration = Duration::from_millis(250);
const MIN_TICK: Duration = Duration::from_millis(25);
/// How long a DISCONNECT waits for the receipts of stored SENDs.
const DRAIN_RECEIPTS: Duration = Duration::from_secs(5);

/// How a connection ended.
enum End {
    /// The state machine ended it.
    Session(Exit),
    /// The peer went away, or was silent too long.
    Closed(String),
}

/// Serves one STOMP connection, over any byte stream, until it ends.
pub(crate) async fn serve<S: Duplex>(stream: S, peer: SocketAddr, ctx: Arc<Context>) {
    let certificate_user = ctx.access.certificate_user(stream.client_certificate());
    let (reader, mut writer) = stream.halves();
    let limits = &ctx.config.limits;
    let codec = StompCodec::new(StompLimits {
        max_header_line: limits.stomp_max_header_line,
        max_headers: limits.stomp_max_headers,
        max_body: limits.max_message_size as usize,
    });
    let offer = Offer {
        max_subscriptions: limits.max_subscriptions_per_session,
        max_tx_bytes: limits.max_queued_bytes,
    };
    let registration = ctx.register(Protocol::Stomp, peer);
    let conn_id = registration.id();
    let session = format!("session-{}", ctx.assign_client_id());
    let mut conn = Connection::new(conn_id, ctx.router.clone(), offer, session, OUTLET_MAX);
    let mut reader = FrameReader::new(Watched::new(reader), codec);
    debug!(%peer, conn = conn_id, "stomp: connection opened");
    let client = (peer, certificate_user.as_deref());
    let mut end = run(
        &mut conn,
        &mut reader,
        &mut writer,
        client,
        (&registration, &ctx),
    )
    .await;
    registration.record(conn.counts);
    if let End::Session(Exit::Disconnect) = end {
        // The receipts of earlier SENDs still waiting for storage go out before
        // DISCONNECT's own, and before the connection closes.
        if let Err(exit) = drain_deferred(&mut conn).await {
            end = End::Session(exit);
        }
    }
    conn.end(now());
    let mut last = std::mem::take(&mut conn.out);
    match end {
        End::Session(Exit::Disconnect) => {
            debug!(%peer, conn = conn_id, "stomp: client disconnected");
        }
        End::Session(Exit::Error {
            message,
            detail,
            receipt,
        }) => {
            warn!(%peer, conn = conn_id, message = %message, detail = %detail, "stomp: closing with ERROR");
            let version = conn.version().unwrap_or(Version::V1_2);
            let receipt: Vec<(&str, &str)> =
                receipt.iter().map(|r| ("receipt-id", r.as_str())).collect();
            translate::write_error(&mut last, version, &message, &detail, &receipt);
            writer.goodbye(if ctx.shutdown.is_cancelled() {
                Goodbye::GoingAway
            } else {
                Goodbye::ProtocolError(message)
            });
        }
        End::Closed(why) => info!(%peer, conn = conn_id, why = %why, "stomp: connection closed"),
    }
    socket::farewell(reader.into_inner().into_inner(), writer, &last).await;
}

/// The connected loop; it ends only with an `End`.
async fn run<R: ReadHalf, W: WriteHalf>(
    conn: &mut Connection,
    reader: &mut FrameReader<Watched<R>, StompCodec>,
    writer: &mut W,
    client: (SocketAddr, Option<&str>),
    (registration, ctx): (&Registration, &Context),
) -> End {
    let outlet = conn.outlet.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    let opened = Instant::now();
    let mut pressure = Pressure::new(ctx.router.memory());
    let mut reloads = ctx.access.reloads();
    loop {
        match write_pending(writer, conn, ctx.router.memory()).await {
            Ok(true) => last_write = Instant::now(),
            Ok(false) => {}
            Err(e) => return End::Closed(format!("write failed: {e}")),
        }
        // Under memory pressure a publisher is not read from (RabbitMQ's flow
        // control): its SENDs wait in the socket, not in memory.
        let held_back = pressure.holds(conn.publisher, || conn.awaiting_acks());
        let reading = !held_back;
        let deferred = conn.deferred_head();
        tokio::select! {
            biased;
            _ = registration.closing().cancelled() => {
                let (message, detail) = if registration.closed_by_operator(&ctx.shutdown) {
                    ("Connection closed", "An operator closed this connection.")
                } else {
                    ("Server shutdown", "The broker is shutting down.")
                };
                return End::Session(Exit::Error {
                    message: message.into(),
                    detail: detail.into(),
                    receipt: None,
                });
            }
            // Before the client's input: what it sends after a reload is judged by
            // the new rules.
            Ok(()) = reloads.changed() => {
                if let Err(exit) = conn.reauthorize(ctx.access.regrant(conn.grant())) {
                    return End::Session(exit);
                }
            }
            _ = tick.tick() => {
                if conn.version().is_none() && opened.elapsed() > ctx.config.limits.connect_timeout {
                    return End::Closed("no CONNECT in time".into());
                }
                if !reading {
                    // Unread input is not silence: its heart-beats wait in the socket.
                    reader.get_mut().touch();
                }
                let (send, receive) = conn.heartbeat;
                // A client silent for two of its intervals is gone (the spec leaves
                // the margin to the server; stompjs uses the same factor).
                if !receive.is_zero() && reader.get_ref().last_read().elapsed() > receive * 2 {
                    return End::Closed("missed heart-beats from the client".into());
                }
                if !send.is_zero() && last_write.elapsed() >= send / 2 {
                    encode_heartbeat(&mut conn.out);
                }
            }
            _ = pressure.relieved(), if held_back => {}
            item = reader.next(), if reading => match item {
                None => return End::Closed("closed by the client".into()),
                // The client went away (mid-frame, or the socket failed): nobody to tell.
                Some(Err(StompError::Io(e))) => return End::Closed(e.to_string()),
                Some(Err(e)) => {
                    return End::Session(Exit::Error {
                        message: e.summary().into(),
                        // RabbitMQ ends its error details with a line end.
                        detail: format!("{e}\n"),
                        receipt: reader.decoder().failed_receipt().map(str::to_owned),
                    })
                }
                Some(Ok(Received::Heartbeat)) => {}
                Some(Ok(Received::Frame(frame))) => {
                    let connecting = conn.version().is_none();
                    if connecting && matches!(frame.command, Command::Connect | Command::Stomp) {
                        match log_in(ctx, client, &frame).await {
                            Ok(grant) => conn.authorize(grant),
                            Err(exit) => return End::Session(exit),
                        }
                    }
                    if let Err(exit) = conn.handle(frame, now()) {
                        return End::Session(exit);
                    }
                    if let (true, Some(version)) = (connecting, conn.version()) {
                        registration.identify(conn.identity.clone());
                        reader.decoder_mut().set_version(version);
                        tick = tokio::time::interval(tick_for(conn.heartbeat));
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                }
            },
            _ = outlet.wait() => {}
            _ = acks::committed(&deferred) => {}
        }
        if let Err(exit) = conn.release_deferred() {
            return End::Session(exit);
        }
        conn.pump(now());
        registration.record(conn.counts);
        registration.set_subscriptions(conn.subscription_count());
    }
}

/// Authenticates a CONNECT's `login` and `passcode` (none: the client
/// certificate's user, or an anonymous client).
async fn log_in(
    ctx: &Context,
    (peer, certificate_user): (SocketAddr, Option<&str>),
    frame: &Frame,
) -> Result<Grant, Exit> {
    let user = frame.header("login");
    let passcode = frame.header("passcode").unwrap_or_default();
    let login = Login::password(user, passcode.as_bytes());
    ctx.access
        .authenticate(
            Peer {
                ip: peer.ip(),
                via: Protocol::Stomp,
            },
            login.or_certificate(certificate_user),
        )
        .await
        .map_err(|_| session::refused_login(user.unwrap_or_default()))
}

/// Waits (bounded) for every receipt still waiting for storage.
async fn drain_deferred(conn: &mut Connection) -> Result<(), Exit> {
    let drained = tokio::time::timeout(DRAIN_RECEIPTS, async {
        while let Some(head) = conn.deferred_head() {
            acks::committed(&Some(head)).await;
            conn.release_deferred()?;
        }
        Ok(())
    });
    drained.await.unwrap_or(Ok(()))
}

/// The tick period that checks the negotiated heart-beats in time: a quarter of
/// our sending interval, half of the client's.
fn tick_for((send, receive): (Duration, Duration)) -> Duration {
    [send / 4, receive / 2]
        .into_iter()
        .filter(|d| !d.is_zero())
        .min()
        .unwrap_or(TICK)
        .clamp(MIN_TICK, TICK)
}
