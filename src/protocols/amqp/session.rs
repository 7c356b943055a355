//! The AMQP 0-9-1 connection state machine: handshake, channels, and every
//! method of RabbitMQ's dialect, turned into router calls and frames to send.
//!
//! Owns: connection and channel state (delivery tags, unacked deliveries,
//! consumers, prefetch credit, confirm and tx modes, content assembly), the
//! RabbitMQ answers to bad input (channel errors close the channel, hard errors
//! the connection), and the frames written in answer.
//! Refuses: I/O and timers (mod.rs), the queue/exchange model (router::vhost),
//! property mapping (translate.rs).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dwbroker_codecs::amqp::*;

use super::translate;
use crate::access::{Grant, Guard, Kind};
use crate::connections::{Counts, Identity};
use crate::protocols::acks::Deferred;
use crate::protocols::delivery::Deliveries;
use crate::router::{
    ArgValue, BindArgs, ConnId, ConsumerId, ConsumerSpec, Credit, Dest, Entry, ExchangeKind,
    ExchangeSpec, Held, Now, Outlet, OutletItem, Queue, QueueArgs, QueueSpec, Router, StoreFailure,
    Subject, Ticket, VhostError, REPLY_TO_PREFIX,
};

/// Transactions hold at most this many publishes and acks before commit.
const MAX_TX_OPS: usize = 65_536;

/// How a connection ends.
#[derive(Debug)]
pub(super) enum Exit {
    /// Send connection.close with this, then wait (bounded) for close-ok.
    Close {
        code: ReplyCode,
        text: String,
        class_id: u16,
        method_id: u16,
    },
    /// Close the socket after what is already in `out`, sending nothing more.
    Silent(String),
    /// The client closed the connection (answered) or the socket.
    Closed(String),
}

/// A failure while handling one method.
enum Fault {
    Channel(ReplyCode, String),
    Conn(Exit),
}

type Handled = Result<(), Fault>;

fn conn_fault(code: ReplyCode, text: impl Into<String>, class_id: u16, method_id: u16) -> Fault {
    Fault::Conn(Exit::Close {
        code,
        text: text.into(),
        class_id,
        method_id,
    })
}

fn chan_fault(code: ReplyCode, text: impl Into<String>) -> Fault {
    Fault::Channel(code, text.into())
}

impl From<VhostError> for Fault {
    fn from(e: VhostError) -> Fault {
        let code = match &e {
            VhostError::NotFound { .. } => ReplyCode::NotFound,
            VhostError::Locked(_) => ReplyCode::ResourceLocked,
            VhostError::Inequivalent { .. }
            | VhostError::InUse { .. }
            | VhostError::NotEmpty(_)
            | VhostError::Precondition(_) => ReplyCode::PreconditionFailed,
            VhostError::ExclusiveConsumer(_) | VhostError::AccessRefused(_) => {
                ReplyCode::AccessRefused
            }
            VhostError::TooMany(_) => {
                return Fault::Conn(Exit::Close {
                    code: ReplyCode::ResourceError,
                    text: format!("RESOURCE_ERROR - {e}"),
                    class_id: 0,
                    method_id: 0,
                })
            }
        };
        Fault::Channel(code, e.to_string())
    }
}

/// Server limits offered in connection.tune.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offer {
    pub(super) channel_max: u16,
    pub(super) frame_max: u32,
    pub(super) heartbeat: u16,
    pub(super) max_message_size: u64,
    /// Consumers one connection may hold (`max_subscriptions_per_session`).
    pub(super) max_consumers: usize,
    /// Bytes one transaction may hold (`max_queued_bytes`, as STOMP's).
    pub(super) max_tx_bytes: usize,
    /// How long a delivery may stay unacknowledged (`amqp_consumer_timeout_ms`).
    pub(super) consumer_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StartOk,
    TuneOk,
    Open,
    Ready,
}

/// Capabilities the client advertised in start-ok.
#[derive(Debug, Default, Clone, Copy)]
struct ClientCaps {
    consumer_cancel_notify: bool,
    connection_blocked: bool,
    authentication_failure_close: bool,
}

/// A delivered, not yet settled message.
struct Unacked {
    queue: Arc<Queue>,
    entry: Entry,
    /// The consumer and channel credit it holds (none for basic.get).
    credit: Option<(Arc<Credit>, Arc<Credit>)>,
    /// When it was sent (the consumer timeout counts from there).
    sent: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Reject,
}

struct Consumer {
    id: ConsumerId,
    queue: Arc<Queue>,
    no_ack: bool,
    credit: Arc<Credit>,
}

/// A publish waiting for its content header and body.
struct Content {
    publish: BasicPublish,
    header: Option<ContentHeader>,
    body: BytesMut,
    single: Option<Bytes>,
    /// The body received so far, counted in the memory ledger.
    held: Held,
}

/// A publish ready to route.
struct Outgoing {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    message: crate::router::Message,
}

enum Mode {
    Plain,
    Confirm { published: u64 },
    Tx(Tx),
}

struct Tx {
    publishes: Vec<Outgoing>,
    settles: Vec<(u64, Unacked, Settle)>,
    /// The publishes' bytes, counted in the memory ledger.
    held: Held,
}

impl Tx {
    fn new(router: &Router) -> Tx {
        Tx {
            publishes: Vec::new(),
            settles: Vec::new(),
            held: Held::new(router.memory().clone()),
        }
    }
}

/// An answer that waits for storage (see `protocols::acks`). The channel's
/// epoch tells whether the channel it was for is still the one open under that
/// number.
enum Answer {
    Confirm {
        ch: u16,
        epoch: u64,
        tag: u64,
        /// Every queue took the message (no reject-publish refusal).
        accepted: bool,
    },
    TxCommitOk {
        ch: u16,
        epoch: u64,
    },
}

struct Channel {
    /// Unique within the connection: a channel number reopened is a new epoch.
    epoch: u64,
    content: Option<Content>,
    consumers: HashMap<String, Consumer>,
    unacked: BTreeMap<u64, Unacked>,
    next_tag: u64,
    prefetch: u32,
    credit: Arc<Credit>,
    mode: Mode,
    reply_queue: Option<String>,
    /// The queue this channel declared last: an empty queue name stands for it.
    last_queue: Option<String>,
}

impl Channel {
    fn new(epoch: u64) -> Channel {
        Channel {
            epoch,
            content: None,
            consumers: HashMap::new(),
            unacked: BTreeMap::new(),
            next_tag: 1,
            prefetch: 0,
            credit: Arc::new(Credit::new(0)),
            mode: Mode::Plain,
            reply_queue: None,
            last_queue: None,
        }
    }
}

/// One AMQP connection.
pub(super) struct Connection {
    pub(super) id: ConnId,
    router: Arc<Router>,
    /// Frames to write.
    pub(super) out: BytesMut,
    state: State,
    offer: Offer,
    /// Negotiated.
    pub(super) frame_max: u32,
    pub(super) heartbeat: u16,
    channel_max: u16,
    user: String,
    caps: ClientCaps,
    channels: HashMap<u16, Channel>,
    /// Channels that sent or were sent channel.close and await close-ok.
    closing: HashMap<u16, ()>,
    /// Consumer id -> (channel, tag).
    consumers: HashMap<ConsumerId, (u16, String)>,
    pub(super) outlet: Arc<Outlet>,
    /// Whether connection.blocked was sent and not yet lifted.
    pub(super) blocked: bool,
    /// Whether this connection has published (only publishers are blocked).
    pub(super) publisher: bool,
    /// Set by channel.close: the channel being handled is not kept.
    channel_closed: bool,
    /// Confirms and tx.commit-oks waiting for storage.
    deferred: Deferred<Answer>,
    next_epoch: u64,
    /// start-ok's credentials, until the shell has authenticated them.
    login: Option<PendingLogin>,
    /// The user the client's TLS certificate names: EXTERNAL is offered for it.
    certificate_user: Option<String>,
    /// What the client's user may do (nothing before the login).
    guard: Guard,
    /// Who the client says it is (start-ok's client properties) and its user.
    pub(super) identity: Identity,
    /// Messages and payload bytes in and out, for the operator's view.
    pub(super) counts: Counts,
}

/// The credentials of connection.start-ok.
#[derive(Debug)]
pub(crate) struct PendingLogin {
    pub(crate) mechanism: String,
    pub(crate) user: String,
    pub(crate) password: String,
}

impl Connection {
    pub(super) fn new(id: ConnId, router: Arc<Router>, offer: Offer, outlet_max: usize) -> Self {
        Connection {
            id,
            router,
            out: BytesMut::new(),
            state: State::StartOk,
            offer,
            frame_max: offer.frame_max,
            heartbeat: 0,
            channel_max: offer.channel_max,
            user: String::new(),
            caps: ClientCaps::default(),
            channels: HashMap::new(),
            closing: HashMap::new(),
            consumers: HashMap::new(),
            outlet: Arc::new(Outlet::new(outlet_max)),
            blocked: false,
            publisher: false,
            channel_closed: false,
            deferred: Deferred::default(),
            next_epoch: 1,
            login: None,
            certificate_user: None,
            guard: Guard::new(Grant::nothing()),
            identity: Identity::default(),
            counts: Counts::default(),
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    fn send(&mut self, channel: u16, method: impl Into<Method>) {
        encode_method(channel, &method.into(), &mut self.out);
    }

    /// Offers EXTERNAL for `user`, whom the client's certificate names (before
    /// [`Connection::start`]).
    pub(super) fn offer_external(&mut self, user: Option<String>) {
        self.certificate_user = user;
    }

    /// Writes connection.start.
    pub(super) fn start(&mut self) {
        let mut caps = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "consumer_priorities",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to",
        ] {
            caps.insert(cap, FieldValue::Bool(true));
        }
        let text = |s: &str| FieldValue::LongString(Bytes::copy_from_slice(s.as_bytes()));
        let mut props = FieldTable::default();
        props.insert("capabilities", FieldValue::Table(caps));
        props.insert("cluster_name", text("dwbroker"));
        props.insert("copyright", text("the dwbroker authors"));
        props.insert(
            "information",
            text("dwbroker, the DataWarehouse message broker"),
        );
        props.insert("platform", text("Rust"));
        props.insert("product", text("dwbroker"));
        props.insert("version", text(env!("CARGO_PKG_VERSION")));
        self.send(
            0,
            ConnectionStart {
                version_major: 0,
                version_minor: 9,
                server_properties: props,
                mechanisms: match self.certificate_user {
                    Some(_) => Bytes::from_static(b"PLAIN AMQPLAIN EXTERNAL"),
                    None => Bytes::from_static(b"PLAIN AMQPLAIN"),
                },
                locales: Bytes::from_static(b"en_US"),
            },
        );
    }

    /// Handles one decoded frame.
    pub(super) fn handle(&mut self, frame: Frame, now: Now) -> Result<(), Exit> {
        match frame {
            Frame::Heartbeat { channel: 0 } => Ok(()),
            Frame::Heartbeat { .. } => Err(Exit::Close {
                code: ReplyCode::FrameError,
                text: "FRAME_ERROR - heartbeat frame on a non-zero channel".into(),
                class_id: 0,
                method_id: 0,
            }),
            Frame::Method { channel: 0, method } => self.connection_method(method),
            other if self.state != State::Ready => Err(Exit::Close {
                code: ReplyCode::CommandInvalid,
                text: format!(
                    "COMMAND_INVALID - frame on channel {} before connection.open",
                    other.channel()
                ),
                class_id: 0,
                method_id: 0,
            }),
            Frame::Header { channel: 0, .. } | Frame::Body { channel: 0, .. } => Err(Exit::Close {
                code: ReplyCode::UnexpectedFrame,
                text: "UNEXPECTED_FRAME - content frame on channel 0".into(),
                class_id: 0,
                method_id: 0,
            }),
            frame => self.channel_frame(frame, now),
        }
    }

    fn connection_method(&mut self, method: Method) -> Result<(), Exit> {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        let invalid = |what: &str| Exit::Close {
            code: ReplyCode::CommandInvalid,
            text: format!("COMMAND_INVALID - {what}"),
            class_id,
            method_id,
        };
        match (self.state, method) {
            (State::StartOk, Method::ConnectionStartOk(m)) => self.start_ok(m),
            (State::TuneOk, Method::ConnectionTuneOk(m)) => self.tune_ok(m),
            (State::Open, Method::ConnectionOpen(m)) => {
                if m.virtual_host != "/" {
                    return Err(Exit::Close {
                        code: ReplyCode::NotAllowed,
                        text: format!("NOT_ALLOWED - vhost {} not found", m.virtual_host),
                        class_id,
                        method_id,
                    });
                }
                if !self.guard.grant().may_open_vhost() {
                    tracing::info!(conn = self.id, user = %self.user, "amqp: no access to the vhost");
                    return Err(Exit::Close {
                        code: ReplyCode::NotAllowed,
                        text: format!(
                            "NOT_ALLOWED - access to vhost '/' refused for user '{}'",
                            self.user
                        ),
                        class_id,
                        method_id,
                    });
                }
                self.send(
                    0,
                    ConnectionOpenOk {
                        known_hosts: String::new(),
                    },
                );
                self.state = State::Ready;
                Ok(())
            }
            (_, Method::ConnectionClose(_)) => {
                self.send(0, ConnectionCloseOk {});
                Err(Exit::Closed("closed by the client".into()))
            }
            (State::Ready, Method::ConnectionUpdateSecret(_)) => {
                self.send(0, ConnectionUpdateSecretOk {});
                Ok(())
            }
            (State::Ready, Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_)) => Ok(()),
            // RabbitMQ (handle_method0): a non-connection method on channel 0 of an
            // open connection is a channel error.
            (State::Ready, m) => Err(Exit::Close {
                code: ReplyCode::ChannelError,
                text: format!(
                    "CHANNEL_ERROR - unexpected method {} on channel 0",
                    m.name()
                ),
                class_id,
                method_id,
            }),
            (_, m) => Err(invalid(&format!("{} not expected here", m.name()))),
        }
    }

    fn start_ok(&mut self, m: ConnectionStartOk) -> Result<(), Exit> {
        let property = |k: &str| {
            m.client_properties
                .get(k)
                .and_then(FieldValue::as_str)
                .map(str::to_owned)
        };
        self.identity = Identity {
            user: None,
            name: property("connection_name"),
            lang: property("product"),
            version: property("version"),
        };
        if let Some(FieldValue::Table(caps)) = m.client_properties.get("capabilities") {
            let has = |k: &str| caps.get(k).and_then(FieldValue::as_bool).unwrap_or(false);
            self.caps = ClientCaps {
                consumer_cancel_notify: has("consumer_cancel_notify"),
                connection_blocked: has("connection.blocked"),
                authentication_failure_close: has("authentication_failure_close"),
            };
        }
        let credentials = match m.mechanism.as_str() {
            "PLAIN" => plain_credentials(&m.response),
            "AMQPLAIN" => amqplain_credentials(&m.response),
            // The certificate is the credential (RabbitMQ's rabbitmq_auth_mechanism_ssl).
            "EXTERNAL" if self.certificate_user.is_some() => self
                .certificate_user
                .clone()
                .map(|user| (user, String::new())),
            // Rule start-ok/mechanism/validity: close without sending data.
            other => return Err(Exit::Silent(format!("mechanism {other} not offered"))),
        };
        let Some((user, password)) = credentials else {
            return Err(self.login_refused(&m.mechanism));
        };
        self.login = Some(PendingLogin {
            mechanism: m.mechanism,
            user,
            password,
        });
        Ok(())
    }

    /// The credentials of start-ok, for the shell to authenticate (then
    /// [`Connection::logged_in`]).
    pub(crate) fn take_login(&mut self) -> Option<PendingLogin> {
        self.login.take()
    }

    /// Goes on with connection.tune once the login is accepted, or closes as
    /// RabbitMQ does: 403 ACCESS_REFUSED to a client that can read it, silence
    /// to one that cannot.
    pub(crate) fn logged_in(
        &mut self,
        login: &PendingLogin,
        grant: Option<Grant>,
    ) -> Result<(), Exit> {
        let Some(grant) = grant else {
            return Err(self.login_refused(&login.mechanism));
        };
        self.user = grant
            .user()
            .map_or_else(|| login.user.clone(), str::to_owned);
        self.identity.user = Some(self.user.clone());
        self.guard = Guard::new(grant);
        self.send(
            0,
            ConnectionTune {
                channel_max: self.offer.channel_max,
                frame_max: self.offer.frame_max,
                heartbeat: self.offer.heartbeat,
            },
        );
        self.state = State::TuneOk;
        Ok(())
    }

    /// Its consumers, on every channel.
    pub(super) fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// What the client's user may do.
    pub(crate) fn grant(&self) -> &Grant {
        self.guard.grant()
    }

    /// Applies the user's permissions after a reload. A user that is gone (or
    /// has lost the vhost) is disconnected with 320 CONNECTION_FORCED; a channel
    /// consuming from a queue the user may no longer consume from is closed with
    /// 403 ACCESS_REFUSED, as its next basic.consume would be.
    pub(super) fn reauthorize(&mut self, grant: Option<Grant>, now: Now) -> Result<(), Exit> {
        let grant = grant
            .filter(Grant::may_open_vhost)
            .ok_or_else(|| Exit::Close {
                code: ReplyCode::ConnectionForced,
                text: format!(
                    "CONNECTION_FORCED - access to vhost '/' withdrawn for user '{}'",
                    self.user
                ),
                class_id: 0,
                method_id: 0,
            })?;
        self.guard = Guard::new(grant);
        let mut refused: Vec<(u16, String)> = self
            .channels
            .iter()
            .filter_map(|(ch, channel)| {
                let queue = channel
                    .consumers
                    .values()
                    .map(|c| c.queue.name())
                    .find(|q| !self.guard.grant().may_consume(Kind::Queue, q))?;
                Some((*ch, queue.to_owned()))
            })
            .collect();
        refused.sort_unstable();
        for (ch, queue) in refused {
            let Some(channel) = self.channels.remove(&ch) else {
                continue;
            };
            let text = format!(
                "access to queue '{queue}' in vhost '/' refused for user '{}'",
                self.user
            );
            tracing::info!(conn = self.id, channel = ch, "amqp: {text}");
            self.fail_channel(ch, channel, (ReplyCode::AccessRefused, text), (0, 0), now);
        }
        Ok(())
    }

    fn login_refused(&self, mechanism: &str) -> Exit {
        if !self.caps.authentication_failure_close {
            return Exit::Silent("authentication failed".into());
        }
        Exit::Close {
            code: ReplyCode::AccessRefused,
            text: format!(
                "ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. \
                 For details see the broker logfile."
            ),
            class_id: 10,
            method_id: 11,
        }
    }

    fn tune_ok(&mut self, m: ConnectionTuneOk) -> Result<(), Exit> {
        // Rules tune-ok/channel-max and frame-max upper-limit: close without a
        // negotiated close.
        if m.frame_max > self.offer.frame_max || (m.frame_max != 0 && m.frame_max < FRAME_MIN_SIZE)
        {
            return Err(Exit::Silent(format!(
                "tune-ok frame_max {} refused",
                m.frame_max
            )));
        }
        if m.channel_max > self.offer.channel_max {
            return Err(Exit::Silent(format!(
                "tune-ok channel_max {} refused",
                m.channel_max
            )));
        }
        self.frame_max = if m.frame_max == 0 {
            self.offer.frame_max
        } else {
            m.frame_max
        };
        self.channel_max = if m.channel_max == 0 {
            self.offer.channel_max
        } else {
            m.channel_max
        };
        self.heartbeat = m.heartbeat;
        self.state = State::Open;
        Ok(())
    }

    fn channel_frame(&mut self, frame: Frame, now: Now) -> Result<(), Exit> {
        let ch = frame.channel();
        if self.closing.contains_key(&ch) {
            // After channel.close, everything but close and close-ok is discarded.
            match frame {
                Frame::Method {
                    method: Method::ChannelCloseOk(_),
                    ..
                } => {
                    self.closing.remove(&ch);
                }
                Frame::Method {
                    method: Method::ChannelClose(_),
                    ..
                } => {
                    self.send(ch, ChannelCloseOk {});
                }
                _ => {}
            }
            return Ok(());
        }
        let Some(mut channel) = self.channels.remove(&ch) else {
            return match frame {
                Frame::Method {
                    method: Method::ChannelOpen(_),
                    ..
                } => {
                    if ch > self.channel_max {
                        return Err(Exit::Close {
                            code: ReplyCode::ChannelError,
                            text: format!("CHANNEL_ERROR - channel {ch} above channel_max"),
                            class_id: 20,
                            method_id: 10,
                        });
                    }
                    let epoch = self.next_epoch;
                    self.next_epoch += 1;
                    self.channels.insert(ch, Channel::new(epoch));
                    self.send(
                        ch,
                        ChannelOpenOk {
                            channel_id: Bytes::new(),
                        },
                    );
                    Ok(())
                }
                Frame::Method { method, .. } => Err(Exit::Close {
                    code: ReplyCode::ChannelError,
                    text: format!("CHANNEL_ERROR - expected 'channel.open' on channel {ch}"),
                    class_id: method.class_id(),
                    method_id: method.method_id(),
                }),
                _ => Err(Exit::Close {
                    code: ReplyCode::ChannelError,
                    text: format!(
                        "CHANNEL_ERROR - content frame on channel {ch}, which is not open"
                    ),
                    class_id: 0,
                    method_id: 0,
                }),
            };
        };
        let (class_id, method_id) = match &frame {
            Frame::Method { method, .. } => (method.class_id(), method.method_id()),
            _ => (60, 40),
        };
        let result = match frame {
            Frame::Method { method, .. } => self.channel_method(ch, &mut channel, method, now),
            Frame::Header { header, .. } => self.content_header(&mut channel, header),
            Frame::Body { payload, .. } => self.content_body(&mut channel, payload),
            Frame::Heartbeat { .. } => Ok(()),
        };
        let result = result.and_then(|()| self.finish_content(ch, &mut channel, now));
        match result {
            Ok(()) if std::mem::take(&mut self.channel_closed) => Ok(()),
            Ok(()) => {
                self.channels.insert(ch, channel);
                Ok(())
            }
            Err(Fault::Channel(code, text)) => {
                self.fail_channel(ch, channel, (code, text), (class_id, method_id), now);
                Ok(())
            }
            Err(Fault::Conn(exit)) => {
                self.channels.insert(ch, channel);
                Err(exit)
            }
        }
    }

    /// Closes, as RabbitMQ does, every channel holding a delivery unacknowledged
    /// for longer than the consumer timeout (406: the client is stuck, and what it
    /// holds goes back to its queues for others).
    pub(super) fn expire_deliveries(&mut self, now: Now) {
        let Some(timeout) = self.offer.consumer_timeout else {
            return;
        };
        // Delivery tags grow with time: a channel's first unacked is its oldest.
        let late: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, c)| {
                c.unacked
                    .values()
                    .next()
                    .is_some_and(|u| now.at.saturating_duration_since(u.sent) > timeout)
            })
            .map(|(ch, _)| *ch)
            .collect();
        for ch in late {
            if let Some(channel) = self.channels.remove(&ch) {
                let text = format!(
                    "delivery acknowledgement on channel {ch} timed out. Timeout value used: {} ms. \
                     This timeout value can be configured, see consumers doc guide to learn more",
                    timeout.as_millis()
                );
                tracing::warn!(conn = self.id, channel = ch, "amqp: {text}");
                self.fail_channel(
                    ch,
                    channel,
                    (ReplyCode::PreconditionFailed, text),
                    (0, 0),
                    now,
                );
            }
        }
    }

    /// Closes channel `ch` with a channel error (channel.close, then only
    /// close-ok is awaited), giving back what it holds.
    fn fail_channel(
        &mut self,
        ch: u16,
        channel: Channel,
        (code, text): (ReplyCode, String),
        (class_id, method_id): (u16, u16),
        now: Now,
    ) {
        self.release_channel(channel, now);
        self.send(
            ch,
            ChannelClose {
                reply_code: code.code(),
                reply_text: format!("{} - {text}", code.name()),
                class_id,
                method_id,
            },
        );
        self.closing.insert(ch, ());
    }

    /// Gives `answer` now, or once its ticket completes (in order with the
    /// answers before it).
    /// Called while channel `ch` of the answer is being handled (it is alive).
    fn answer(&mut self, ticket: Ticket, answer: Answer) {
        if let Some(answer) = self.deferred.defer(ticket, answer) {
            // Nothing to wait for: nothing can fail.
            let _ = self.send_answer(answer, Ok(()));
        }
    }

    /// The ticket the next waiting answer waits for.
    pub(super) fn deferred_head(&self) -> Option<Ticket> {
        self.deferred.head()
    }

    /// Gives the waiting answers whose storage commit has completed.
    pub(super) fn release_deferred(&mut self) -> Result<(), Exit> {
        for (answer, outcome) in self.deferred.ready() {
            self.give(answer, outcome)?;
        }
        Ok(())
    }

    /// A confirm acks a message that is stored (nacks one refused or not
    /// stored); a tx.commit whose publishes could not be stored closes the
    /// connection with 541 (RabbitMQ's answer to an internal failure). An
    /// answer for a channel closed meanwhile is dropped.
    fn give(&mut self, answer: Answer, outcome: Result<(), StoreFailure>) -> Result<(), Exit> {
        let (ch, epoch) = match &answer {
            Answer::Confirm { ch, epoch, .. } | Answer::TxCommitOk { ch, epoch } => (*ch, *epoch),
        };
        if self.channels.get(&ch).is_none_or(|c| c.epoch != epoch) {
            return Ok(());
        }
        self.send_answer(answer, outcome)
    }

    fn send_answer(
        &mut self,
        answer: Answer,
        outcome: Result<(), StoreFailure>,
    ) -> Result<(), Exit> {
        let ch = match &answer {
            Answer::Confirm { ch, .. } | Answer::TxCommitOk { ch, .. } => *ch,
        };
        match (answer, outcome) {
            (Answer::Confirm { tag, accepted, .. }, outcome) => {
                if accepted && outcome.is_ok() {
                    self.send(
                        ch,
                        BasicAck {
                            delivery_tag: tag,
                            multiple: false,
                        },
                    );
                } else {
                    self.send(
                        ch,
                        BasicNack {
                            delivery_tag: tag,
                            multiple: false,
                            requeue: false,
                        },
                    );
                }
            }
            (Answer::TxCommitOk { .. }, Ok(())) => self.send(ch, TxCommitOk {}),
            (Answer::TxCommitOk { .. }, Err(failure)) => {
                return Err(Exit::Close {
                    code: ReplyCode::InternalError,
                    text: format!("INTERNAL_ERROR - {failure}"),
                    class_id: 90,
                    method_id: 20,
                });
            }
        }
        Ok(())
    }

    /// Gives back what a closing channel holds: unacked deliveries are requeued,
    /// consumers cancelled.
    fn release_channel(&mut self, channel: Channel, now: Now) {
        let unacked = self.close_channel(channel, now);
        self.router.requeue_all(settle_credit(unacked), now);
    }

    /// Cancels a closing channel's consumers; returns its unacknowledged deliveries.
    fn close_channel(&mut self, channel: Channel, now: Now) -> Vec<Unacked> {
        for (_, c) in channel.consumers {
            self.consumers.remove(&c.id);
            self.router.cancel(&c.queue, c.id, now);
        }
        let mut unacked: Vec<Unacked> = channel.unacked.into_values().collect();
        if let Mode::Tx(tx) = channel.mode {
            unacked.extend(tx.settles.into_iter().map(|(_, u, _)| u));
        }
        unacked
    }

    fn requeue(&self, unacked: impl IntoIterator<Item = Unacked>, now: Now) {
        self.router.requeue_all(settle_credit(unacked), now);
    }

    /// Ends the connection's state: channels released, exclusive queues deleted.
    pub(super) fn end(&mut self, now: Now) {
        let channels: Vec<Channel> = self.channels.drain().map(|(_, c)| c).collect();
        let mut unacked = Vec::new();
        for channel in channels {
            unacked.extend(self.close_channel(channel, now));
        }
        self.router
            .return_unsettled(settle_credit(unacked), &self.outlet, now);
        self.router.connection_closed(self.id, now);
    }

    fn content_header(&mut self, channel: &mut Channel, header: ContentHeader) -> Handled {
        let unexpected = || {
            Fault::Conn(Exit::Close {
                code: ReplyCode::UnexpectedFrame,
                text: "UNEXPECTED_FRAME - content header not expected".into(),
                class_id: 60,
                method_id: 40,
            })
        };
        let Some(content) = channel.content.as_mut() else {
            return Err(unexpected());
        };
        if content.header.is_some() || header.class_id != 60 {
            return Err(unexpected());
        }
        if header.body_size > self.offer.max_message_size {
            channel.content = None;
            return Err(chan_fault(
                ReplyCode::PreconditionFailed,
                format!(
                    "message size {} is larger than configured max size {}",
                    header.body_size, self.offer.max_message_size
                ),
            ));
        }
        content.header = Some(header);
        Ok(())
    }

    fn content_body(&mut self, channel: &mut Channel, payload: Bytes) -> Handled {
        let unexpected = |text: &str| {
            Fault::Conn(Exit::Close {
                code: ReplyCode::UnexpectedFrame,
                text: format!("UNEXPECTED_FRAME - {text}"),
                class_id: 60,
                method_id: 40,
            })
        };
        let Some(content) = channel.content.as_mut() else {
            return Err(unexpected("content body without a publish"));
        };
        let Some(header) = &content.header else {
            return Err(unexpected("content body before its header"));
        };
        let have = content.body.len() + content.single.as_ref().map_or(0, Bytes::len);
        if (have + payload.len()) as u64 > header.body_size {
            return Err(unexpected(
                "content body larger than the header's body size",
            ));
        }
        content.held.add(payload.len());
        if have == 0 && payload.len() as u64 == header.body_size {
            content.single = Some(payload);
        } else {
            if let Some(first) = content.single.take() {
                content.body.extend_from_slice(&first);
            }
            content.body.extend_from_slice(&payload);
        }
        Ok(())
    }

    /// Routes a publish whose content is complete.
    fn finish_content(&mut self, ch: u16, channel: &mut Channel, now: Now) -> Handled {
        let complete = channel.content.as_ref().is_some_and(|c| {
            c.header.as_ref().is_some_and(|h| {
                (c.body.len() + c.single.as_ref().map_or(0, Bytes::len)) as u64 == h.body_size
            })
        });
        if !complete {
            return Ok(());
        }
        let Some(Content {
            publish,
            header: Some(header),
            body,
            single,
            held: _held,
        }) = channel.content.take()
        else {
            return Ok(());
        };
        let payload = single.unwrap_or_else(|| body.freeze());
        let mut props = header.properties;
        let mut raw = header.raw_properties;
        if let Some(user) = &props.user_id {
            if *user != self.user {
                return Err(chan_fault(
                    ReplyCode::PreconditionFailed,
                    format!(
                        "user_id property set to '{user}' but authenticated user was '{}'",
                        self.user
                    ),
                ));
            }
        }
        if props.reply_to.as_deref() == Some("amq.rabbitmq.reply-to") {
            let Some(queue) = &channel.reply_queue else {
                return Err(chan_fault(
                    ReplyCode::PreconditionFailed,
                    "fast reply consumer does not exist",
                ));
            };
            props.reply_to = Some(queue.clone());
            let mut encoded = BytesMut::new();
            props.encode(&mut encoded);
            raw = encoded.freeze();
        }
        let subject = Subject::new(&publish.routing_key).unwrap_or_default();
        let message = translate::message_from_publish(&props, raw, payload, subject, self.id, now)
            .map_err(|e| chan_fault(ReplyCode::PreconditionFailed, e.0))?;
        let out = Outgoing {
            exchange: publish.exchange,
            routing_key: publish.routing_key,
            mandatory: publish.mandatory,
            message,
        };
        self.publisher = true;
        self.counts.received(out.message.payload.len());
        match &mut channel.mode {
            Mode::Tx(tx) => {
                let size = out.message.weight();
                if tx.publishes.len() + tx.settles.len() >= MAX_TX_OPS
                    || tx.held.bytes() + size > self.offer.max_tx_bytes
                {
                    return Err(chan_fault(
                        ReplyCode::PreconditionFailed,
                        format!(
                            "transaction too large: a transaction may hold {MAX_TX_OPS} \
                             operations and {} bytes",
                            self.offer.max_tx_bytes
                        ),
                    ));
                }
                tx.held.add(size);
                tx.publishes.push(out);
                Ok(())
            }
            Mode::Confirm { published } => {
                *published += 1;
                let tag = *published;
                let (accepted, ticket) = self.route(ch, out, now)?;
                let answer = Answer::Confirm {
                    ch,
                    epoch: channel.epoch,
                    tag,
                    accepted,
                };
                self.answer(ticket, answer);
                Ok(())
            }
            Mode::Plain => self.route(ch, out, now).map(|_| ()),
        }
    }

    /// 403 ACCESS_REFUSED on the channel unless `allowed`, in RabbitMQ's words.
    fn permit(&self, allowed: bool, what: impl FnOnce() -> String) -> Handled {
        if allowed {
            return Ok(());
        }
        Err(chan_fault(
            ReplyCode::AccessRefused,
            format!(
                "access to {} in vhost '/' refused for user '{}'",
                what(),
                self.user
            ),
        ))
    }

    fn check_publishable(&self, exchange: &str) -> Handled {
        match self.router.exchange(exchange) {
            None => Err(VhostError::NotFound {
                kind: "exchange",
                name: exchange.to_owned(),
            }
            .into()),
            Some(spec) if spec.internal => Err(chan_fault(
                ReplyCode::AccessRefused,
                format!("cannot publish to internal exchange '{exchange}' in vhost '/'"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Routes one publish; returns whether every queue accepted it (for
    /// confirms) and the ticket of its stored copies.
    fn route(&mut self, ch: u16, out: Outgoing, now: Now) -> Result<(bool, Ticket), Fault> {
        let returned = out.mandatory.then(|| out.message.clone());
        let routed =
            self.router
                .publish_to_exchange(&out.exchange, &out.routing_key, out.message, now)?;
        if routed.matched == 0 {
            if let Some(message) = returned {
                self.send(
                    ch,
                    BasicReturn {
                        reply_code: ReplyCode::NoRoute.code(),
                        reply_text: "NO_ROUTE".into(),
                        exchange: out.exchange,
                        routing_key: out.routing_key,
                    },
                );
                self.write_content(ch, &message, now);
            }
        }
        Ok((routed.rejected == 0, routed.ticket))
    }

    fn write_content(&mut self, ch: u16, message: &crate::router::Message, now: Now) {
        let router = &self.router;
        let props = translate::delivery_properties(message, now, &|q| router.has_queue(q));
        encode_content_header_raw(
            ch,
            60,
            message.payload.len() as u64,
            props.bytes(),
            &mut self.out,
        );
        encode_body(ch, &message.payload, self.frame_max, &mut self.out);
    }

    fn channel_method(
        &mut self,
        ch: u16,
        channel: &mut Channel,
        method: Method,
        now: Now,
    ) -> Handled {
        if channel.content.is_some() {
            return Err(conn_fault(
                ReplyCode::UnexpectedFrame,
                format!(
                    "UNEXPECTED_FRAME - expected content header, got {}",
                    method.name()
                ),
                method.class_id(),
                method.method_id(),
            ));
        }
        let (class_id, method_id) = (method.class_id(), method.method_id());
        match method {
            Method::ChannelOpen(_) => Err(conn_fault(
                ReplyCode::ChannelError,
                "CHANNEL_ERROR - second 'channel.open' seen",
                class_id,
                method_id,
            )),
            Method::ChannelClose(_) => {
                let released = std::mem::replace(channel, Channel::new(0));
                self.release_channel(released, now);
                self.send(ch, ChannelCloseOk {});
                // Not reinserted: the caller drops it.
                self.channel_closed = true;
                Ok(())
            }
            Method::ChannelCloseOk(_) => Ok(()),
            Method::ChannelFlow(f) => {
                // The client asks for no deliveries on this channel until it sends
                // active=true again (AMQP 0-9-1 channel.flow); what is unacked stays.
                channel.credit.pause(!f.active);
                if f.active {
                    for c in channel.consumers.values() {
                        self.router.kick(&c.queue, now);
                    }
                }
                self.send(ch, ChannelFlowOk { active: f.active });
                Ok(())
            }
            Method::AccessRequest(_) => {
                self.send(ch, AccessRequestOk { ticket: 1 });
                Ok(())
            }
            Method::ExchangeDeclare(m) => {
                let grant = self.guard.grant();
                let allowed = m.passive || grant.may_configure(Kind::Exchange, &m.exchange);
                self.permit(allowed, || format!("exchange '{}'", m.exchange))?;
                self.exchange_declare(ch, m)
            }
            Method::ExchangeDelete(m) => {
                let allowed = self
                    .guard
                    .grant()
                    .may_configure(Kind::Exchange, &m.exchange);
                self.permit(allowed, || format!("exchange '{}'", m.exchange))?;
                self.router.delete_exchange(&m.exchange, m.if_unused)?;
                if !m.nowait {
                    self.send(ch, ExchangeDeleteOk {});
                }
                Ok(())
            }
            Method::ExchangeBind(m) => {
                let grant = self.guard.grant();
                let allowed = grant.may_configure(Kind::Exchange, &m.destination)
                    && grant.may_bind(&m.source, &m.routing_key);
                self.permit(allowed, || format!("exchange '{}'", m.destination))?;
                self.router.bind(
                    &m.source,
                    Dest::Exchange(m.destination),
                    &m.routing_key,
                    bind_args(&m.arguments),
                )?;
                if !m.nowait {
                    self.send(ch, ExchangeBindOk {});
                }
                Ok(())
            }
            Method::ExchangeUnbind(m) => {
                let allowed = self
                    .guard
                    .grant()
                    .may_configure(Kind::Exchange, &m.destination);
                self.permit(allowed, || format!("exchange '{}'", m.destination))?;
                self.router.unbind(
                    &m.source,
                    Dest::Exchange(m.destination),
                    &m.routing_key,
                    &bind_args(&m.arguments),
                )?;
                if !m.nowait {
                    self.send(ch, ExchangeUnbindOk {});
                }
                Ok(())
            }
            Method::QueueDeclare(m) => {
                channel.last_queue = Some(self.queue_declare(ch, m, now)?);
                Ok(())
            }
            Method::QueueBind(m) => {
                // RabbitMQ's shortcut: with the queue left out, an empty routing
                // key is the queue's name too.
                let key = match (m.queue.is_empty(), m.routing_key.is_empty()) {
                    (true, true) => last_queue(channel, String::new())?,
                    _ => m.routing_key,
                };
                let queue = last_queue(channel, m.queue)?;
                let grant = self.guard.grant();
                self.permit(grant.may_configure(Kind::Queue, &queue), || {
                    format!("queue '{queue}'")
                })?;
                self.permit(grant.may_bind(&m.exchange, &key), || {
                    format!("exchange '{}' with binding key '{key}'", m.exchange)
                })?;
                self.router.queue(&queue, self.id)?;
                self.router.bind(
                    &m.exchange,
                    Dest::Queue(queue),
                    &key,
                    bind_args(&m.arguments),
                )?;
                if !m.nowait {
                    self.send(ch, QueueBindOk {});
                }
                Ok(())
            }
            Method::QueueUnbind(m) => {
                let queue = last_queue(channel, m.queue)?;
                let allowed = self.guard.grant().may_configure(Kind::Queue, &queue);
                self.permit(allowed, || format!("queue '{queue}'"))?;
                self.router.queue(&queue, self.id)?;
                self.router.unbind(
                    &m.exchange,
                    Dest::Queue(queue),
                    &m.routing_key,
                    &bind_args(&m.arguments),
                )?;
                self.send(ch, QueueUnbindOk {});
                Ok(())
            }
            Method::QueuePurge(m) => {
                let queue = last_queue(channel, m.queue)?;
                let allowed = self.guard.grant().may_consume(Kind::Queue, &queue);
                self.permit(allowed, || format!("queue '{queue}'"))?;
                let n = self.router.purge_queue(&queue, self.id)?;
                if !m.nowait {
                    self.send(
                        ch,
                        QueuePurgeOk {
                            message_count: count32(n),
                        },
                    );
                }
                Ok(())
            }
            Method::QueueDelete(m) => {
                let queue = last_queue(channel, m.queue)?;
                let allowed = self.guard.grant().may_configure(Kind::Queue, &queue);
                self.permit(allowed, || format!("queue '{queue}'"))?;
                let n = self
                    .router
                    .delete_queue(&queue, self.id, m.if_unused, m.if_empty)?;
                if !m.nowait {
                    self.send(
                        ch,
                        QueueDeleteOk {
                            message_count: count32(n),
                        },
                    );
                }
                Ok(())
            }
            Method::BasicQos(m) => {
                if m.prefetch_size != 0 {
                    return Err(conn_fault(
                        ReplyCode::NotImplemented,
                        format!("NOT_IMPLEMENTED - prefetch_size!=0 ({})", m.prefetch_size),
                        class_id,
                        method_id,
                    ));
                }
                if m.global {
                    channel.credit.set_limit(u32::from(m.prefetch_count));
                    for c in channel.consumers.values() {
                        self.router.kick(&c.queue, now);
                    }
                } else {
                    channel.prefetch = u32::from(m.prefetch_count);
                }
                self.send(ch, BasicQosOk {});
                Ok(())
            }
            Method::BasicConsume(m) => self.consume(ch, channel, m, now),
            Method::BasicCancel(m) => {
                if let Some(c) = channel.consumers.remove(&m.consumer_tag) {
                    self.consumers.remove(&c.id);
                    let back = self
                        .router
                        .cancel_consumer(&c.queue, c.id, &self.outlet, now);
                    // Deliveries taken back held channel credit (not per-consumer
                    // credit: that consumer is gone).
                    if !c.no_ack {
                        channel
                            .credit
                            .release(u32::try_from(back).unwrap_or(u32::MAX));
                    }
                }
                if !m.nowait {
                    self.send(
                        ch,
                        BasicCancelOk {
                            consumer_tag: m.consumer_tag,
                        },
                    );
                }
                Ok(())
            }
            Method::BasicPublish(m) => {
                if m.immediate {
                    return Err(conn_fault(
                        ReplyCode::NotImplemented,
                        "NOT_IMPLEMENTED - immediate=true",
                        class_id,
                        method_id,
                    ));
                }
                self.check_publishable(&m.exchange)?;
                let allowed = self
                    .guard
                    .grant()
                    .may_publish_via(&m.exchange, &m.routing_key);
                self.permit(allowed, || match m.exchange.as_str() {
                    "amq.topic" => format!("topic '{}' in exchange 'amq.topic'", m.routing_key),
                    "" => "exchange 'amq.default'".into(),
                    name => format!("exchange '{name}'"),
                })?;
                channel.content = Some(Content {
                    publish: m,
                    header: None,
                    body: BytesMut::new(),
                    held: Held::new(self.router.memory().clone()),
                    single: None,
                });
                Ok(())
            }
            Method::BasicGet(m) => {
                let name = last_queue(channel, m.queue)?;
                let allowed = self.guard.grant().may_consume(Kind::Queue, &name);
                self.permit(allowed, || format!("queue '{name}'"))?;
                let queue = self.router.queue(&name, self.id)?;
                match self.router.get(&queue, now) {
                    None => self.send(
                        ch,
                        BasicGetEmpty {
                            cluster_id: String::new(),
                        },
                    ),
                    Some((entry, remaining)) => {
                        let tag = channel.next_tag;
                        channel.next_tag += 1;
                        self.send(
                            ch,
                            BasicGetOk {
                                delivery_tag: tag,
                                redelivered: entry.redelivered,
                                exchange: entry.exchange.to_string(),
                                routing_key: entry.routing_key.to_string(),
                                message_count: count32(remaining),
                            },
                        );
                        self.write_content(ch, &entry.message, now);
                        self.counts.delivered(entry.message.payload.len());
                        if m.no_ack {
                            self.router.ack(&queue, entry, now);
                        } else {
                            channel.unacked.insert(
                                tag,
                                Unacked {
                                    queue,
                                    entry,
                                    credit: None,
                                    sent: now.at,
                                },
                            );
                        }
                    }
                }
                Ok(())
            }
            Method::BasicAck(m) => {
                self.settle(channel, m.delivery_tag, m.multiple, Settle::Ack, now)
            }
            Method::BasicReject(m) => {
                let how = if m.requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                };
                self.settle(channel, m.delivery_tag, false, how, now)
            }
            Method::BasicNack(m) => {
                let how = if m.requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                };
                self.settle(channel, m.delivery_tag, m.multiple, how, now)
            }
            // RabbitMQ: recovering without requeueing is not implemented (540).
            Method::BasicRecover(BasicRecover { requeue: false })
            | Method::BasicRecoverAsync(BasicRecoverAsync { requeue: false }) => Err(conn_fault(
                ReplyCode::NotImplemented,
                "NOT_IMPLEMENTED - requeue=false",
                class_id,
                method_id,
            )),
            Method::BasicRecover(_) => {
                let unacked = std::mem::take(&mut channel.unacked);
                self.requeue(unacked.into_values(), now);
                self.send(ch, BasicRecoverOk {});
                Ok(())
            }
            Method::BasicRecoverAsync(_) => {
                let unacked = std::mem::take(&mut channel.unacked);
                self.requeue(unacked.into_values(), now);
                Ok(())
            }
            Method::ConfirmSelect(m) => {
                match channel.mode {
                    Mode::Tx(_) => {
                        return Err(chan_fault(
                            ReplyCode::PreconditionFailed,
                            "cannot switch from tx to confirm mode",
                        ))
                    }
                    Mode::Plain => channel.mode = Mode::Confirm { published: 0 },
                    Mode::Confirm { .. } => {}
                }
                if !m.nowait {
                    self.send(ch, ConfirmSelectOk {});
                }
                Ok(())
            }
            Method::TxSelect(_) => {
                match channel.mode {
                    Mode::Confirm { .. } => {
                        return Err(chan_fault(
                            ReplyCode::PreconditionFailed,
                            "cannot switch from confirm to tx mode",
                        ))
                    }
                    Mode::Plain => channel.mode = Mode::Tx(Tx::new(&self.router)),
                    Mode::Tx(_) => {}
                }
                self.send(ch, TxSelectOk {});
                Ok(())
            }
            Method::TxCommit(_) => {
                let Mode::Tx(tx) = &mut channel.mode else {
                    return Err(chan_fault(
                        ReplyCode::PreconditionFailed,
                        "channel is not transactional",
                    ));
                };
                let tx = std::mem::replace(tx, Tx::new(&self.router));
                // One storage batch for the whole transaction: after a crash it
                // is there entirely or not at all.
                let router = self.router.clone();
                let routed = router.atomically(|| {
                    let mut ticket = Ticket::default();
                    for out in tx.publishes {
                        ticket.merge(self.route(ch, out, now)?.1);
                    }
                    Ok(ticket)
                });
                let ticket = match routed {
                    Ok(ticket) => ticket,
                    Err(fault) => {
                        // The acks were not committed: the channel closes and
                        // requeues them like any unacked delivery.
                        for (tag, unacked, _) in tx.settles {
                            channel.unacked.insert(tag, unacked);
                        }
                        return Err(fault);
                    }
                };
                for (_, unacked, how) in tx.settles {
                    self.apply_settle(vec![unacked], how, now);
                }
                self.kick_shared_credit(channel, now);
                let answer = Answer::TxCommitOk {
                    ch,
                    epoch: channel.epoch,
                };
                self.answer(ticket, answer);
                Ok(())
            }
            Method::TxRollback(_) => {
                let Mode::Tx(tx) = &mut channel.mode else {
                    return Err(chan_fault(
                        ReplyCode::PreconditionFailed,
                        "channel is not transactional",
                    ));
                };
                let tx = std::mem::replace(tx, Tx::new(&self.router));
                for (tag, unacked, _) in tx.settles {
                    channel.unacked.insert(tag, unacked);
                }
                self.send(ch, TxRollbackOk {});
                Ok(())
            }
            other => Err(conn_fault(
                ReplyCode::CommandInvalid,
                format!(
                    "COMMAND_INVALID - {} not expected from a client",
                    other.name()
                ),
                class_id,
                method_id,
            )),
        }
    }

    fn exchange_declare(&mut self, ch: u16, m: ExchangeDeclare) -> Handled {
        let kind = match ExchangeKind::parse(&m.kind) {
            Some(kind) => kind,
            None if m.passive => ExchangeKind::Direct,
            // RabbitMQ since 3.11: a channel error (3.10 closed the connection
            // with 503).
            None => {
                return Err(chan_fault(
                    ReplyCode::PreconditionFailed,
                    format!("unknown exchange type '{}'", m.kind),
                ))
            }
        };
        let spec = ExchangeSpec {
            kind,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            alternate_exchange: m
                .arguments
                .get("alternate-exchange")
                .and_then(FieldValue::as_str)
                .map(str::to_owned),
        };
        self.router.declare_exchange(&m.exchange, spec, m.passive)?;
        if !m.nowait {
            self.send(ch, ExchangeDeclareOk {});
        }
        Ok(())
    }

    /// Declares a queue; returns its name (the server's for an empty one).
    fn queue_declare(&mut self, ch: u16, m: QueueDeclare, now: Now) -> Result<String, Fault> {
        // A server-named queue's name starts `amq.gen-` (a `queue:amq.gen-*` rule).
        let name = if m.queue.is_empty() {
            "amq.gen-"
        } else {
            &m.queue
        };
        let allowed = m.passive || self.guard.grant().may_configure(Kind::Queue, name);
        self.permit(allowed, || format!("queue '{name}'"))?;
        let args = queue_args(&m.queue, &m.arguments)?;
        let spec = QueueSpec {
            durable: m.durable,
            exclusive_owner: m.exclusive.then_some(self.id),
            auto_delete: m.auto_delete,
            args,
        };
        let queue = self
            .router
            .declare_queue(&m.queue, spec, m.passive, self.id, now)?;
        if !m.nowait {
            self.send(
                ch,
                QueueDeclareOk {
                    queue: queue.name().to_owned(),
                    message_count: count32(queue.message_count()),
                    consumer_count: count32(queue.consumer_count()),
                },
            );
        }
        Ok(queue.name().to_owned())
    }

    fn consume(&mut self, ch: u16, channel: &mut Channel, m: BasicConsume, now: Now) -> Handled {
        let queue = if m.queue == "amq.rabbitmq.reply-to" {
            if !m.no_ack {
                return Err(chan_fault(
                    ReplyCode::PreconditionFailed,
                    "reply consumer cannot acknowledge",
                ));
            }
            let name = format!("{REPLY_TO_PREFIX}{}", random_token());
            let spec = QueueSpec {
                exclusive_owner: Some(self.id),
                auto_delete: true,
                ..QueueSpec::default()
            };
            let queue = self
                .router
                .declare_queue(&name, spec, false, self.id, now)?;
            self.router
                .bind("amq.topic", Dest::Queue(name.clone()), &name, Vec::new())?;
            channel.reply_queue = Some(name);
            queue
        } else {
            let name = last_queue(channel, m.queue.clone())?;
            let allowed = self.guard.grant().may_consume(Kind::Queue, &name);
            self.permit(allowed, || format!("queue '{name}'"))?;
            self.router.queue(&name, self.id)?
        };
        let tag = if m.consumer_tag.is_empty() {
            format!("amq.ctag-{}", random_token())
        } else {
            m.consumer_tag
        };
        if channel.consumers.contains_key(&tag) {
            return Err(conn_fault(
                ReplyCode::NotAllowed,
                format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
                60,
                20,
            ));
        }
        if self.consumers.len() >= self.offer.max_consumers {
            return Err(chan_fault(
                ReplyCode::PreconditionFailed,
                format!(
                    "connection already has {} consumers, the configured maximum",
                    self.offer.max_consumers
                ),
            ));
        }
        let id = self.router.next_consumer_id();
        let credit = Arc::new(Credit::new(channel.prefetch));
        let spec = ConsumerSpec {
            id,
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            credit: credit.clone(),
            channel_credit: channel.credit.clone(),
            outlet: self.outlet.clone(),
            priority: match m.arguments.get("x-priority") {
                None => 0,
                Some(v) => v
                    .as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .ok_or_else(|| {
                        chan_fault(
                            ReplyCode::PreconditionFailed,
                            "invalid arg 'x-priority' for basic.consume",
                        )
                    })?,
            },
        };
        self.router.consume(&queue, spec, now)?;
        // consume-ok still goes out before any delivery: deliveries are written
        // from the outlet after this method's answer.
        if !m.nowait {
            self.send(
                ch,
                BasicConsumeOk {
                    consumer_tag: tag.clone(),
                },
            );
        }
        self.consumers.insert(id, (ch, tag.clone()));
        channel.consumers.insert(
            tag,
            Consumer {
                id,
                queue,
                no_ack: m.no_ack,
                credit,
            },
        );
        Ok(())
    }

    fn settle(
        &mut self,
        channel: &mut Channel,
        tag: u64,
        multiple: bool,
        how: Settle,
        now: Now,
    ) -> Handled {
        let tags: Vec<u64> = if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            let tags: Vec<u64> = channel.unacked.range(..=upto).map(|(t, _)| *t).collect();
            if tag != 0 && !channel.unacked.contains_key(&tag) {
                return Err(unknown_tag(tag));
            }
            tags
        } else {
            if !channel.unacked.contains_key(&tag) {
                return Err(unknown_tag(tag));
            }
            vec![tag]
        };
        let mut settled = Vec::with_capacity(tags.len());
        for t in tags {
            let Some(unacked) = channel.unacked.remove(&t) else {
                continue;
            };
            match &mut channel.mode {
                Mode::Tx(tx) => tx.settles.push((t, unacked, how)),
                _ => settled.push(unacked),
            }
        }
        self.apply_settle(settled, how, now);
        self.kick_shared_credit(channel, now);
        Ok(())
    }

    /// With a channel-wide prefetch, credit freed by one queue's message may let
    /// any of the channel's queues deliver.
    fn kick_shared_credit(&self, channel: &Channel, now: Now) {
        if channel.credit.limit() == 0 {
            return;
        }
        for c in channel.consumers.values() {
            self.router.kick(&c.queue, now);
        }
    }

    /// Requeues, acks or rejects `unacked`, giving back the credit they held.
    fn apply_settle(&self, unacked: Vec<Unacked>, how: Settle, now: Now) {
        if how == Settle::Requeue {
            return self.requeue(unacked, now);
        }
        let entries = unacked.into_iter().map(|u| {
            if let Some((c, g)) = &u.credit {
                c.release(1);
                g.release(1);
            }
            (u.queue, u.entry)
        });
        if how == Settle::Ack {
            self.router.ack_all(entries, now);
        } else {
            self.router.reject_all(entries, now);
        }
    }

    fn deliver(&mut self, consumer: ConsumerId, queue: Arc<Queue>, entry: Entry, now: Now) {
        let found = self.consumers.get(&consumer).and_then(|(ch, tag)| {
            let channel = self.channels.get(ch)?;
            let c = channel.consumers.get(tag)?;
            Some((
                *ch,
                tag.clone(),
                c.no_ack,
                c.credit.clone(),
                channel.credit.clone(),
            ))
        });
        let Some((ch, tag, no_ack, credit, channel_credit)) = found else {
            // Its channel closed meanwhile: the message goes back to its queue.
            self.router.requeue(&queue, vec![entry], now);
            return;
        };
        let Some(channel) = self.channels.get_mut(&ch) else {
            self.router.requeue(&queue, vec![entry], now);
            return;
        };
        let delivery_tag = channel.next_tag;
        channel.next_tag += 1;
        encode_method(
            ch,
            &Method::BasicDeliver(BasicDeliver {
                consumer_tag: tag,
                delivery_tag,
                redelivered: entry.redelivered,
                exchange: entry.exchange.to_string(),
                routing_key: entry.routing_key.to_string(),
            }),
            &mut self.out,
        );
        let message = entry.message.clone();
        if no_ack {
            // Settled on sending (AMQP auto-ack).
            self.router.ack(&queue, entry, now);
        } else {
            channel.unacked.insert(
                delivery_tag,
                Unacked {
                    queue,
                    entry,
                    credit: Some((credit, channel_credit)),
                    sent: now.at,
                },
            );
        }
        self.write_content(ch, &message, now);
        self.counts.delivered(message.payload.len());
    }

    /// Whether a delivery to this connection awaits its acknowledgement.
    pub(super) fn awaiting_acks(&self) -> bool {
        self.channels.values().any(|c| !c.unacked.is_empty())
    }

    /// Sends connection.blocked or unblocked if the client understands them.
    pub(super) fn set_blocked(&mut self, blocked: bool) {
        if blocked == self.blocked {
            return;
        }
        self.blocked = blocked;
        if self.caps.connection_blocked {
            if blocked {
                self.send(
                    0,
                    ConnectionBlocked {
                        reason: "low on memory".into(),
                    },
                );
            } else {
                self.send(0, ConnectionUnblocked {});
            }
        }
    }
}

/// `name`, or for an empty one the channel's most recently declared queue
/// (RabbitMQ's shortcut; 404 if it declared none).
fn last_queue(channel: &Channel, name: String) -> Result<String, Fault> {
    if !name.is_empty() {
        return Ok(name);
    }
    channel
        .last_queue
        .clone()
        .ok_or_else(|| chan_fault(ReplyCode::NotFound, "no previously declared queue"))
}

fn unknown_tag(tag: u64) -> Fault {
    chan_fault(
        ReplyCode::PreconditionFailed,
        format!("unknown delivery tag {tag}"),
    )
}

fn count32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// 22 characters unlikely to repeat, for server-named queues and consumer tags.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    let a = h.finish();
    h.write_u64(a);
    format!("{:016x}{:06x}", a, h.finish() & 0xff_ffff)
}

fn plain_credentials(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    Some((user.to_owned(), pass.to_owned()))
}

/// AMQPLAIN: a field table without its length prefix, with LOGIN and PASSWORD.
fn amqplain_credentials(response: &[u8]) -> Option<(String, String)> {
    let (mut user, mut pass) = (None, None);
    let mut rest = response;
    while let Some((&klen, tail)) = rest.split_first() {
        let key = tail.get(..usize::from(klen))?;
        let tail = tail.get(usize::from(klen)..)?;
        let (&kind, tail) = tail.split_first()?;
        if kind != b'S' {
            return None;
        }
        let len = u32::from_be_bytes(tail.get(..4)?.try_into().ok()?) as usize;
        let value = std::str::from_utf8(tail.get(4..4 + len)?).ok()?.to_owned();
        rest = tail.get(4 + len..)?;
        match key {
            b"LOGIN" => user = Some(value),
            b"PASSWORD" => pass = Some(value),
            _ => {}
        }
    }
    Some((user?, pass?))
}

/// Binding arguments as the router compares them.
fn bind_args(table: &FieldTable) -> BindArgs {
    table
        .iter()
        .map(|(k, v)| (k.clone(), (*v != FieldValue::Void).then(|| v.to_text())))
        .collect()
}

/// Gives back the credit of unacknowledged deliveries being requeued; yields
/// their entries.
fn settle_credit(
    unacked: impl IntoIterator<Item = Unacked>,
) -> impl Iterator<Item = (Arc<Queue>, Entry)> {
    unacked.into_iter().map(|u| {
        if let Some((c, g)) = &u.credit {
            c.release(1);
            g.release(1);
        }
        (u.queue, u.entry)
    })
}

/// The x-arguments of queue.declare, checked as RabbitMQ checks them.
fn queue_args(queue: &str, table: &FieldTable) -> Result<QueueArgs, Fault> {
    QueueArgs::parse(|arg| {
        table.get(arg).map(|v| ArgValue {
            int: v.as_i64(),
            text: v.as_str().map(str::to_owned),
            flag: v.as_bool(),
        })
    })
    .map_err(|arg| {
        chan_fault(
            ReplyCode::PreconditionFailed,
            format!("invalid arg '{arg}' for queue '{queue}' in vhost '/'"),
        )
    })
}

impl Deliveries for Connection {
    fn outlet(&self) -> &Outlet {
        &self.outlet
    }

    fn out(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    fn deliver_all(&mut self, items: &mut Vec<OutletItem>, now: Now) {
        for item in items.drain(..) {
            match item {
                OutletItem::Deliver {
                    consumer,
                    queue,
                    entry,
                } => self.deliver(consumer, queue, entry, now),
                OutletItem::Cancelled { consumer, .. } => {
                    let Some((ch, tag)) = self.consumers.remove(&consumer) else {
                        continue;
                    };
                    if let Some(channel) = self.channels.get_mut(&ch) {
                        channel.consumers.remove(&tag);
                    }
                    if self.caps.consumer_cancel_notify {
                        self.send(
                            ch,
                            BasicCancel {
                                consumer_tag: tag,
                                nowait: true,
                            },
                        );
                    }
                }
            }
        }
    }

    fn consumed_queues(&self) -> Vec<Arc<Queue>> {
        self.channels
            .values()
            .flat_map(|c| c.consumers.values().map(|c| c.queue.clone()))
            .collect()
    }

    fn router(&self) -> &Router {
        &self.router
    }
}
