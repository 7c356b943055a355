//! The AMQP 0-9-1 front's I/O shell: the protocol header, frames through the
//! codec into the state machine, deliveries out in one write per wake-up,
//! heartbeats, the memory alarm (connection.blocked), and the connection's end.

mod session;
mod translate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwbroker_codecs::amqp::{
    check_protocol_header, encode_heartbeat, encode_method, AmqpCodec, AmqpError, ConnectionClose,
    Method, ReplyCode, PROTOCOL_HEADER,
};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use session::{Connection, Exit, Offer, PendingLogin};

use crate::access::{Grant, Login, Peer};
use crate::connections::{Protocol, Registration};
use crate::protocols::acks;
use crate::protocols::delivery::{write_pending, Deliveries};
use crate::protocols::frames::FrameReader;
use crate::protocols::now;
use crate::protocols::pressure::Pressure;
use crate::protocols::socket::{self, Watched};
use crate::server::Context;
use crate::transport::{Duplex, ReadHalf, WriteHalf};

/// Deliveries a connection's queues may hand it before it writes them.
const OUTLET_MAX: usize = 1024;
/// How often heartbeats and the memory alarm are checked.
const TICK: Duration = Duration::from_millis(250);

/// Serves one AMQP connection, over any byte stream, until it ends.
pub(crate) async fn serve<S: Duplex>(stream: S, peer: SocketAddr, ctx: Arc<Context>) {
    let limits = &ctx.config.limits;
    let certificate_user = ctx.access.certificate_user(stream.client_certificate());
    let (mut read_half, writer) = stream.halves();
    let mut header = [0u8; 8];
    match tokio::time::timeout(limits.connect_timeout, read_half.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return debug!(%peer, error = %e, "amqp: closed before the protocol header"),
        Err(_) => return debug!(%peer, "amqp: no protocol header in time"),
    }
    if !check_protocol_header(&header) {
        // Rule connection/start/protocol-name: answer with the header we speak.
        info!(%peer, "amqp: wrong protocol header");
        socket::farewell(read_half, writer, &PROTOCOL_HEADER).await;
        return;
    }
    let offer = Offer {
        channel_max: limits.amqp_channel_max,
        frame_max: limits.amqp_frame_max,
        heartbeat: limits.amqp_heartbeat,
        max_message_size: u64::from(limits.max_message_size),
        max_consumers: limits.max_subscriptions_per_session,
        max_tx_bytes: limits.max_queued_bytes,
        consumer_timeout: Some(limits.amqp_consumer_timeout).filter(|t| !t.is_zero()),
    };
    let registration = ctx.register(Protocol::Amqp, peer);
    let conn_id = registration.id();
    let mut conn = Connection::new(conn_id, ctx.router.clone(), offer, OUTLET_MAX);
    conn.offer_external(certificate_user);
    conn.start();
    let mut reader = FrameReader::new(Watched::new(read_half), AmqpCodec::new(offer.frame_max));
    let mut writer = writer;
    info!(%peer, conn = conn_id, "amqp: connection opened");
    let exit = run(
        &mut conn,
        &mut reader,
        &mut writer,
        peer,
        (&registration, &ctx),
    )
    .await;
    registration.record(conn.counts);
    conn.end(now());
    match exit {
        Exit::Closed(why) => {
            info!(%peer, conn = conn_id, why = %why, "amqp: connection closed");
            if !conn.out.is_empty() {
                socket::farewell(reader.into_inner().into_inner(), writer, &conn.out).await;
            }
        }
        Exit::Silent(why) => {
            warn!(%peer, conn = conn_id, why = %why, "amqp: connection dropped");
            socket::farewell(reader.into_inner().into_inner(), writer, &conn.out).await;
        }
        Exit::Close {
            code,
            text,
            class_id,
            method_id,
        } => {
            warn!(%peer, conn = conn_id, code = code.code(), text = %text, "amqp: closing connection");
            let mut last = std::mem::take(&mut conn.out);
            encode_method(
                0,
                &Method::ConnectionClose(ConnectionClose {
                    reply_code: code.code(),
                    reply_text: text,
                    class_id,
                    method_id,
                }),
                &mut last,
            );
            // The client answers close-ok and closes; farewell reads until then.
            socket::farewell(reader.into_inner().into_inner(), writer, &last).await;
        }
    }
}

/// The connected loop; it ends only with an `Exit`.
async fn run<R: ReadHalf, W: WriteHalf>(
    conn: &mut Connection,
    reader: &mut FrameReader<Watched<R>, AmqpCodec>,
    writer: &mut W,
    peer: SocketAddr,
    (registration, ctx): (&Registration, &Context),
) -> Exit {
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
            Err(e) => return Exit::Closed(format!("write failed: {e:?}")),
        }
        // A blocked publisher is not read from (RabbitMQ's flow control), so its
        // publishes wait in the socket instead of in memory; as RabbitMQ, only
        // connections that publish are told (lapin stops sending anything,
        // heartbeats included, while it is blocked).
        let held_back = pressure.holds(conn.publisher, || conn.awaiting_acks());
        if conn.is_ready() {
            conn.set_blocked(held_back);
        }
        let reading = !held_back;
        let deferred = conn.deferred_head();
        tokio::select! {
            biased;
            _ = registration.closing().cancelled() => return Exit::Close {
                code: ReplyCode::ConnectionForced,
                // RabbitMQ's texts for a shutdown and for its management UI's close.
                text: if registration.closed_by_operator(&ctx.shutdown) {
                    "CONNECTION_FORCED - Closed via management plugin".into()
                } else {
                    "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'".into()
                },
                class_id: 0,
                method_id: 0,
            },
            // Before the client's input: what it sends after a reload is judged by
            // the new rules.
            Ok(()) = reloads.changed() => {
                if let Err(exit) = conn.reauthorize(ctx.access.regrant(conn.grant()), now()) {
                    return exit;
                }
            }
            _ = tick.tick() => {
                if !reading {
                    // Unread input is not silence: its heartbeats wait in the socket.
                    reader.get_mut().touch();
                }
                // RabbitMQ's handshake_timeout: an unauthenticated socket does
                // not stay open.
                if !conn.is_ready() && opened.elapsed() > ctx.config.limits.connect_timeout {
                    return Exit::Silent("handshake not completed in time".into());
                }
                conn.expire_deliveries(now());
                let hb = Duration::from_secs(conn.heartbeat.into());
                if !hb.is_zero() {
                    // §4.2.7: a peer silent for two intervals is gone.
                    if reader.get_ref().last_read().elapsed() > hb * 2 {
                        return Exit::Silent("missed heartbeats from client".into());
                    }
                    if last_write.elapsed() >= hb / 2 {
                        encode_heartbeat(&mut conn.out);
                    }
                }
            }
            _ = pressure.relieved(), if held_back => {}
            frame = reader.next(), if reading => match frame {
                None => return Exit::Closed("closed by the client".into()),
                Some(Err(e)) => return decode_exit(e),
                Some(Ok(frame)) => {
                    if let Err(exit) = conn.handle(frame, now()) {
                        return exit;
                    }
                    if let Some(login) = conn.take_login() {
                        let grant = log_in(ctx, peer, &login).await;
                        if let Err(exit) = conn.logged_in(&login, grant) {
                            return exit;
                        }
                        registration.identify(conn.identity.clone());
                    }
                    if reader.decoder().max_frame_size() != conn.frame_max {
                        reader.decoder_mut().set_max_frame_size(conn.frame_max);
                    }
                }
            },
            _ = outlet.wait() => {}
            _ = acks::committed(&deferred) => {}
        }
        if let Err(exit) = conn.release_deferred() {
            return exit;
        }
        conn.pump(now());
        registration.record(conn.counts);
        registration.set_subscriptions(conn.consumer_count());
    }
}

/// Authenticates start-ok's user and password, or with EXTERNAL the user the
/// client's certificate names; `None` if refused.
async fn log_in(ctx: &Context, peer: SocketAddr, login: &PendingLogin) -> Option<Grant> {
    let login = match login.mechanism.as_str() {
        "EXTERNAL" => Login::Certificate(&login.user),
        _ => Login::Password {
            user: &login.user,
            password: login.password.as_bytes(),
        },
    };
    let peer = Peer {
        ip: peer.ip(),
        via: Protocol::Amqp,
    };
    ctx.access.authenticate(peer, login).await.ok()
}

/// The exit for input the codec refused.
fn decode_exit(e: AmqpError) -> Exit {
    let (class_id, method_id) = e.class_method();
    match e {
        AmqpError::Io(io) => Exit::Closed(io.to_string()),
        other => {
            let code = other.reply_code();
            Exit::Close {
                code,
                text: format!("{} - {other}", code.name()),
                class_id,
                method_id,
            }
        }
    }
}
