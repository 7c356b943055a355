//! One STOMP connection's state machine: the handshake, subscriptions over router
//! queues (RabbitMQ's model: every subscription consumes a queue), acknowledgements,
//! transactions and receipts. No I/O: frames come in, bytes go out in `out`, so the
//! front can run on any byte stream.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use dwbroker_codecs::stomp::{Command, Frame, FrameWriter, Version};

use super::translate::{
    invalid_destination, message_from_send, parse_destination, send_route, shown_destination,
    shown_reply_to, write_error, write_message, Delivered, Destination, ReplyTo,
    VALID_DESTINATIONS,
};
use crate::access::{Grant, Guard, Kind};
use crate::connections::{Counts, Identity};
use crate::protocols::acks::Deferred;
use crate::protocols::delivery::Deliveries;
use crate::router::{
    ArgValue, ConnId, ConsumerId, ConsumerSpec, Credit, Dest, Entry, Held, Now, Outlet, OutletItem,
    Queue, QueueArgs, QueueSpec, Router, Subject, Ticket, VhostError,
};

/// The shortest heart-beat interval the server agrees to, either way: a client
/// asking for beats every millisecond gets them every 100.
const MIN_HEARTBEAT_MS: u64 = 100;
/// Open transactions per connection.
const MAX_TRANSACTIONS: usize = 1024;
/// Frames one transaction may hold.
const MAX_TX_FRAMES: usize = 10_000;

/// What the listener's configuration allows a connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offer {
    /// Subscriptions at once.
    pub(super) max_subscriptions: usize,
    /// Body bytes all open transactions of the connection may hold.
    pub(super) max_tx_bytes: usize,
}

/// Why the connection ends.
#[derive(Debug)]
pub(super) enum Exit {
    /// Write an ERROR frame (`message` header, `detail` body), then close.
    Error {
        message: String,
        detail: String,
        receipt: Option<String>,
    },
    /// The client sent DISCONNECT; its receipt, if it asked for one, is in `out`.
    Disconnect,
}

fn error(message: impl Into<String>, detail: impl Into<String>) -> Exit {
    Exit::Error {
        message: message.into(),
        detail: detail.into(),
        receipt: None,
    }
}

/// RabbitMQ's ERROR for a CONNECT whose login is refused.
pub(super) fn refused_login(login: &str) -> Exit {
    error("Bad CONNECT", format!("Access refused for user '{login}'"))
}

/// RabbitMQ's ERROR for a required header that is absent.
fn missing_header(header: &str, command: Command) -> Exit {
    error(
        "Missing header",
        format!("{} must include a '{header}' header", command.as_str()),
    )
}

fn missing(header: &str, command: Command) -> Exit {
    error(
        format!("Missing {header}"),
        format!("{} must include a '{header}' header", command.as_str()),
    )
}

fn vhost_error(e: VhostError) -> Exit {
    let (message, code) = match &e {
        VhostError::NotFound { .. } => ("not_found", "NOT_FOUND"),
        VhostError::Locked(_) => ("resource_locked", "RESOURCE_LOCKED"),
        VhostError::AccessRefused(_) | VhostError::ExclusiveConsumer(_) => {
            ("access_refused", "ACCESS_REFUSED")
        }
        VhostError::Inequivalent { .. }
        | VhostError::InUse { .. }
        | VhostError::NotEmpty(_)
        | VhostError::Precondition(_) => ("precondition_failed", "PRECONDITION_FAILED"),
        VhostError::TooMany(_) => ("resource_error", "RESOURCE_ERROR"),
    };
    // RabbitMQ's STOMP adaptor words a missing resource as the vhost does ("no
    // exchange 'x' in vhost '/'"), the others with their AMQP code first.
    match e {
        VhostError::NotFound { .. } => error(message, e.to_string()),
        _ => error(message, format!("{code} - {e}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    Auto,
    /// ACK/NACK are cumulative for the subscription.
    Client,
    ClientIndividual,
}

#[derive(Debug)]
struct Subscription {
    destination: String,
    consumer: ConsumerId,
    queue: Arc<Queue>,
    ack: AckMode,
    credit: Arc<Credit>,
    /// A durable subscription: its queue outlives the connection.
    durable: bool,
}

/// A delivery waiting for ACK or NACK.
#[derive(Debug)]
struct Pending {
    subscription: String,
    queue: Arc<Queue>,
    entry: Entry,
    credit: Arc<Credit>,
    cumulative: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Reject,
}

/// A frame an open transaction holds until COMMIT.
#[derive(Debug)]
enum TxOp {
    Send(Frame),
    /// ACK/NACK of delivery `n`, and, for a cumulative one, of the subscription's
    /// earlier deliveries still pending at COMMIT.
    Settle {
        n: u64,
        cumulative: Option<String>,
        how: Settle,
    },
}

/// An open transaction: the frames it holds until COMMIT, and the receipts they
/// asked for, sent when it ends (RabbitMQ's order), not when a frame is held.
#[derive(Debug, Default)]
struct Transaction {
    ops: Vec<TxOp>,
    receipts: Vec<String>,
}

impl TxOp {
    /// The memory it holds, charged to the connection's transaction budget.
    fn size(&self) -> usize {
        match self {
            TxOp::Send(f) => {
                f.body.len()
                    + f.headers
                        .iter()
                        .map(|(n, v)| n.len() + v.len())
                        .sum::<usize>()
            }
            TxOp::Settle { cumulative, .. } => 64 + cumulative.as_ref().map_or(0, String::len),
        }
    }
}

/// One STOMP connection.
#[derive(Debug)]
pub(super) struct Connection {
    id: ConnId,
    router: Arc<Router>,
    offer: Offer,
    session: String,
    version: Option<Version>,
    /// Negotiated heart-beats: (server to client, client to server); zero = none.
    pub(super) heartbeat: (Duration, Duration),
    /// Bytes to write.
    pub(super) out: BytesMut,
    /// Where this connection's queues hand their deliveries.
    pub(super) outlet: Arc<Outlet>,
    /// It has sent a SEND (flow control pauses publishers only).
    pub(super) publisher: bool,
    /// The connection-wide credit every consumer takes from (unlimited: STOMP's
    /// prefetch is per subscription).
    credit: Arc<Credit>,
    subscriptions: HashMap<String, Subscription>,
    by_consumer: HashMap<ConsumerId, String>,
    pending: BTreeMap<u64, Pending>,
    next_delivery: u64,
    transactions: HashMap<String, Transaction>,
    /// Body bytes of the open transactions, counted in the memory ledger.
    tx_bytes: Held,
    /// `/temp-queue/<name>` -> the queue standing for it.
    temp_queues: HashMap<String, String>,
    /// Receipts waiting for storage (a persistent SEND's, a COMMIT's), and those
    /// asked for after them: receipts go out in order.
    deferred: Deferred<String>,
    /// What the shell's authentication of the coming CONNECT granted.
    authorized: Option<Grant>,
    /// What the client's user may do (nothing before CONNECT).
    guard: Guard,
    /// Who the client said it is at CONNECT, and its user.
    pub(super) identity: Identity,
    /// Messages and payload bytes in and out, for the operator's view.
    pub(super) counts: Counts,
}

impl Connection {
    pub(super) fn new(
        id: ConnId,
        router: Arc<Router>,
        offer: Offer,
        session: String,
        outlet_max: usize,
    ) -> Connection {
        let tx_bytes = Held::new(router.memory().clone());
        Connection {
            id,
            router,
            offer,
            session,
            version: None,
            heartbeat: (Duration::ZERO, Duration::ZERO),
            out: BytesMut::new(),
            outlet: Arc::new(Outlet::new(outlet_max)),
            publisher: false,
            credit: Arc::new(Credit::new(0)),
            subscriptions: HashMap::new(),
            by_consumer: HashMap::new(),
            pending: BTreeMap::new(),
            next_delivery: 1,
            transactions: HashMap::new(),
            tx_bytes,
            temp_queues: HashMap::new(),
            deferred: Deferred::default(),
            authorized: None,
            guard: Guard::new(Grant::nothing()),
            identity: Identity::default(),
            counts: Counts::default(),
        }
    }

    /// Lets the CONNECT in with `grant` (the shell has authenticated it).
    pub(super) fn authorize(&mut self, grant: Grant) {
        self.authorized = Some(grant);
    }

    /// Its subscriptions.
    pub(super) fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// What the client's user may do.
    pub(super) fn grant(&self) -> &Grant {
        self.guard.grant()
    }

    /// Applies the user's permissions after a reload: a user that is gone, or a
    /// subscription the user may no longer read, ends the connection with an
    /// ERROR (STOMP's only way to refuse), as the SUBSCRIBE would be refused now.
    pub(super) fn reauthorize(&mut self, grant: Option<Grant>) -> Result<(), Exit> {
        let Some(grant) = grant else {
            return self.permit(false, || "vhost '/'".into());
        };
        self.guard = Guard::new(grant);
        let mut destinations: Vec<&str> = self
            .subscriptions
            .values()
            .map(|s| s.destination.as_str())
            .collect();
        destinations.sort_unstable();
        match destinations
            .into_iter()
            .find(|d| !may_read(self.guard.grant(), d))
        {
            Some(refused) => self.permit(false, || format!("destination '{refused}'")),
            None => Ok(()),
        }
    }

    /// Whether a delivery to this connection awaits its ACK or NACK.
    pub(super) fn awaiting_acks(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The negotiated version (`None` before CONNECTED).
    pub(super) fn version(&self) -> Option<Version> {
        self.version
    }

    /// Handles one frame from the client.
    pub(super) fn handle(&mut self, frame: Frame, now: Now) -> Result<(), Exit> {
        let command = frame.command;
        let receipt = frame.header("receipt").map(str::to_owned);
        let tx = frame.header("transaction").map(str::to_owned);
        // A COMMIT or ABORT answers the receipts its transaction's frames asked
        // for, in order, before its own.
        let ended = match (command, &tx) {
            (Command::Commit | Command::Abort, Some(tx)) => self
                .transactions
                .get_mut(tx)
                .map(|t| std::mem::take(&mut t.receipts))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let done = match self.version {
            None => self.connect(&frame).map(|()| Ticket::default()),
            Some(_) => self.command(frame, now),
        };
        match done {
            Err(Exit::Error {
                message, detail, ..
            }) => Err(Exit::Error {
                message,
                detail,
                receipt,
            }),
            Err(other) => Err(other),
            Ok(ticket) => {
                for r in ended {
                    if let Some(r) = self.deferred.defer(ticket.clone(), r) {
                        self.write_receipt(&r);
                    }
                }
                // A frame a transaction holds gets its receipt when it ends.
                if let (Command::Send | Command::Ack | Command::Nack, Some(tx), Some(r)) =
                    (command, &tx, &receipt)
                {
                    if let Some(t) = self.transactions.get_mut(tx) {
                        t.receipts.push(r.clone());
                        return Ok(());
                    }
                }
                if let Some(r) = receipt.filter(|_| !command.is_handshake()) {
                    if let Some(r) = self.deferred.defer(ticket, r) {
                        self.write_receipt(&r);
                    }
                }
                match command {
                    Command::Disconnect => Err(Exit::Disconnect),
                    _ => Ok(()),
                }
            }
        }
    }

    fn write_receipt(&mut self, receipt: &str) {
        let version = self.wire();
        let mut w = FrameWriter::start(&mut self.out, Command::Receipt, version);
        w.header("receipt-id", receipt);
        w.finish(b"");
    }

    /// The ticket the next waiting receipt waits for.
    pub(super) fn deferred_head(&self) -> Option<Ticket> {
        self.deferred.head()
    }

    /// Writes the waiting receipts whose storage commit has completed. A SEND
    /// whose message could not be stored gets an ERROR with its receipt-id
    /// instead, and the connection ends (STOMP's only negative answer).
    pub(super) fn release_deferred(&mut self) -> Result<(), Exit> {
        for (receipt, outcome) in self.deferred.ready() {
            match outcome {
                Ok(()) => self.write_receipt(&receipt),
                Err(failure) => {
                    return Err(Exit::Error {
                        message: "Message not stored".into(),
                        detail: format!("The broker could not store the message: {failure}"),
                        receipt: Some(receipt),
                    })
                }
            }
        }
        Ok(())
    }

    fn wire(&self) -> Version {
        self.version.unwrap_or(Version::V1_2)
    }

    fn connect(&mut self, frame: &Frame) -> Result<(), Exit> {
        if !matches!(frame.command, Command::Connect | Command::Stomp) {
            return Err(error(
                "Illegal command",
                "You must log in using CONNECT first",
            ));
        }
        let Some(version) = Version::negotiate(frame.header("accept-version")) else {
            return Err(error(
                "Version mismatch",
                "Supported versions are 1.0,1.1,1.2\n",
            ));
        };
        // The shell authenticated `login` and `passcode`; `host` names no vhost
        // here (stomp.py sends the socket's host).
        let grant = self.authorized.take().ok_or_else(|| {
            let login = frame.header("login").unwrap_or_default();
            refused_login(login)
        })?;
        self.identity = Identity {
            user: grant.user().map(str::to_owned),
            name: frame.header("client-id").map(str::to_owned),
            lang: None,
            version: Some(format!("STOMP {}", version.as_str())),
        };
        self.guard = Guard::new(grant);
        let (cx, cy) = match frame.header("heart-beat") {
            None => (0, 0),
            Some(hb) => parse_heart_beat(hb).ok_or_else(|| {
                error(
                    "Invalid heart-beat header",
                    format!("'{hb}' is not two comma-separated numbers of milliseconds"),
                )
            })?,
        };
        // We beat as often as the client wants to hear from us and want to hear
        // from it as often as it offers: the spec's max() rule then gives
        // exactly these intervals.
        let floor = |ms: u64| if ms == 0 { 0 } else { ms.max(MIN_HEARTBEAT_MS) };
        let (sx, sy) = (floor(cy), floor(cx));
        self.heartbeat = (Duration::from_millis(sx), Duration::from_millis(sy));
        self.version = Some(version);
        let mut w = FrameWriter::start(&mut self.out, Command::Connected, version);
        w.header("version", version.as_str())
            .header("server", concat!("dwbroker/", env!("CARGO_PKG_VERSION")))
            .header("session", &self.session)
            .header("heart-beat", &format!("{sx},{sy}"));
        w.finish(b"");
        Ok(())
    }

    /// Carries out a command; returns the storage ticket its receipt waits for.
    fn command(&mut self, frame: Frame, now: Now) -> Result<Ticket, Exit> {
        let none = |r: Result<(), Exit>| r.map(|()| Ticket::default());
        match frame.command {
            Command::Send => self.send(frame, now),
            Command::Subscribe => none(self.subscribe(&frame, now)),
            Command::Unsubscribe => none(self.unsubscribe(&frame, now)),
            Command::Ack => none(self.settle(&frame, true, now)),
            Command::Nack => none(self.settle(&frame, false, now)),
            Command::Begin => none(self.begin(&frame)),
            Command::Commit => self.commit(&frame, now),
            Command::Abort => {
                self.take_transaction(&frame)?;
                Ok(Ticket::default())
            }
            Command::Disconnect => Ok(Ticket::default()),
            Command::Connect | Command::Stomp => Err(error(
                "Already connected",
                "CONNECT may only be sent once per connection",
            )),
            c @ (Command::Connected | Command::Message | Command::Receipt | Command::Error) => {
                Err(error(
                    "Illegal command",
                    format!("{} is a server frame", c.as_str()),
                ))
            }
        }
    }

    fn send(&mut self, frame: Frame, now: Now) -> Result<Ticket, Exit> {
        self.publisher = true;
        self.counts.received(frame.body.len());
        // The broker names messages; RabbitMQ refuses a client's message-id.
        if frame.header("message-id").is_some() {
            return Err(error(
                "Invalid header",
                "'message-id' is not allowed on 'SEND'.\n",
            ));
        }
        let destination = frame
            .header("destination")
            .ok_or_else(|| missing("destination", Command::Send))?;
        match parse_destination(destination) {
            None => return Err(unknown_destination(destination)),
            Some(Destination::TempQueue(_)) => {
                return Err(error(
                    "Invalid destination",
                    format!("'{destination}' can only be used in a reply-to header"),
                ))
            }
            Some(_) => {}
        }
        match frame.header("transaction") {
            None => self.publish(&frame, now),
            Some(tx) => {
                let tx = tx.to_owned();
                self.hold(&tx, TxOp::Send(frame))?;
                Ok(Ticket::default())
            }
        }
    }

    /// Adds `op` to transaction `tx`, within the limits.
    fn hold(&mut self, tx: &str, op: TxOp) -> Result<(), Exit> {
        let size = op.size();
        let ops = &mut self
            .transactions
            .get_mut(tx)
            .ok_or_else(|| bad_transaction(tx))?
            .ops;
        if ops.len() >= MAX_TX_FRAMES || self.tx_bytes.bytes() + size > self.offer.max_tx_bytes {
            return Err(error(
                "Transaction too large",
                format!(
                    "a transaction may hold {MAX_TX_FRAMES} frames and the connection's \
                     transactions {} bytes",
                    self.offer.max_tx_bytes
                ),
            ));
        }
        self.tx_bytes.add(size);
        ops.push(op);
        Ok(())
    }

    /// Routes a SEND; returns the ticket of its stored copies.
    fn publish(&mut self, frame: &Frame, now: Now) -> Result<Ticket, Exit> {
        let destination = frame.header("destination").unwrap_or_default();
        let reply_to = match frame.header("reply-to") {
            None => None,
            Some(r) => Some(self.reply_to(r, now)?),
        };
        let msg = message_from_send(frame, reply_to, self.id);
        let Some((exchange, key, declare)) = parse_destination(destination).and_then(send_route)
        else {
            return Err(unknown_destination(destination));
        };
        if declare {
            self.queue_for(key, frame, now)?;
        }
        self.permit(self.guard.grant().may_publish_via(exchange, key), || {
            format!("destination '{destination}'")
        })?;
        let routed = self
            .router
            .publish_to_exchange(exchange, key, msg, now)
            .map_err(vhost_error)?;
        Ok(routed.ticket)
    }

    /// What a SEND's `reply-to` becomes: the reply subject (the translate module's
    /// rules) and the destination STOMP consumers are shown, verbatim but for a
    /// `/temp-queue/`, which gets its queue and subscription on first use.
    fn reply_to(&mut self, reply_to: &str, now: Now) -> Result<ReplyTo, Exit> {
        let (subject, shown) = match parse_destination(reply_to) {
            Some(Destination::TempQueue(_)) => {
                let queue = self.temp_queue(reply_to, now)?;
                let shown = format!("/reply-queue/{queue}");
                (Subject::new(&queue).ok(), shown)
            }
            Some(
                Destination::Queue(name)
                | Destination::AmqQueue(name)
                | Destination::ReplyQueue(name)
                | Destination::Topic(name),
            ) => (Subject::new(name).ok(), reply_to.to_owned()),
            Some(Destination::Exchange(..)) | None => (None, reply_to.to_owned()),
        };
        Ok(ReplyTo { subject, shown })
    }

    /// The queue behind `/temp-queue/<x>`: private to this connection, consumed by
    /// a subscription with that id, and bound to `amq.topic` under its own name so
    /// that responders of every protocol reach it.
    fn temp_queue(&mut self, destination: &str, now: Now) -> Result<String, Exit> {
        if let Some(name) = self.temp_queues.get(destination) {
            return Ok(name.clone());
        }
        if self.subscriptions.contains_key(destination) {
            return Err(duplicated(destination));
        }
        self.check_room()?;
        let queue = self.bound_queue("amq.topic", None, None, None, now)?;
        let name = queue.name().to_owned();
        self.router
            .bind("amq.topic", Dest::Queue(name.clone()), &name, Vec::new())
            .map_err(vhost_error)?;
        self.consume(destination, destination, queue, AckMode::Auto, 0, now)?;
        self.temp_queues
            .insert(destination.to_owned(), name.clone());
        Ok(name)
    }

    /// Queue `name` of a `/queue/` destination: used as it is if it exists, else
    /// declared from the frame's headers (durable unless `durable:false`).
    fn queue_for(&self, name: &str, frame: &Frame, now: Now) -> Result<Arc<Queue>, Exit> {
        match self.router.queue(name, self.id) {
            Ok(q) => return Ok(q),
            Err(VhostError::NotFound { .. }) => {}
            Err(e) => return Err(vhost_error(e)),
        }
        // Declaring on use is configuring.
        self.permit(self.guard.grant().may_configure(Kind::Queue, name), || {
            format!("queue '{name}'")
        })?;
        let args = QueueArgs::parse(|arg| {
            frame.header(arg).map(|v| ArgValue {
                int: v.parse().ok(),
                text: Some(v.to_owned()),
                flag: None,
            })
        })
        .map_err(|arg| {
            error(
                "precondition_failed",
                format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue '{name}'"),
            )
        })?;
        let spec = QueueSpec {
            durable: frame.header("durable") != Some("false"),
            exclusive_owner: (frame.header("exclusive") == Some("true")).then_some(self.id),
            auto_delete: frame.header("auto-delete") == Some("true"),
            args,
        };
        self.router
            .declare_queue(name, spec, false, self.id, now)
            .map_err(vhost_error)
    }

    /// The queue of a subscription to an exchange, bound to it with `key` when one
    /// is given: the durable queue `durable` names (it outlives the connection), or
    /// a queue private to this connection (deleted with it or its last consumer),
    /// named `x_queue_name` when the client gave one (so AMQP can publish to it by
    /// name, as with RabbitMQ), else by the server.
    fn bound_queue(
        &self,
        exchange: &str,
        key: Option<&str>,
        durable: Option<&str>,
        x_queue_name: Option<&str>,
        now: Now,
    ) -> Result<Arc<Queue>, Exit> {
        if self.router.exchange(exchange).is_none() {
            return Err(vhost_error(VhostError::NotFound {
                kind: "exchange",
                name: exchange.to_owned(),
            }));
        }
        let (name, spec) = match durable {
            Some(name) => (
                name,
                QueueSpec {
                    durable: true,
                    ..QueueSpec::default()
                },
            ),
            None => (
                x_queue_name.unwrap_or(""),
                QueueSpec {
                    exclusive_owner: Some(self.id),
                    auto_delete: true,
                    ..QueueSpec::default()
                },
            ),
        };
        let queue = self
            .router
            .declare_queue(name, spec, false, self.id, now)
            .map_err(vhost_error)?;
        if let Some(key) = key {
            let dest = Dest::Queue(queue.name().to_owned());
            if let Err(e) = self.router.bind(exchange, dest, key, Vec::new()) {
                // A named queue may serve another subscription already: it ends
                // with the connection instead.
                if durable.is_none() && x_queue_name.is_none() {
                    let _ = self
                        .router
                        .delete_queue(queue.name(), self.id, false, false);
                }
                return Err(vhost_error(e));
            }
        }
        Ok(queue)
    }

    fn subscribe(&mut self, frame: &Frame, now: Now) -> Result<(), Exit> {
        let destination = frame
            .header("destination")
            .ok_or_else(|| missing("destination", Command::Subscribe))?;
        // A durable subscription is found again by its id (RabbitMQ's wording).
        if frame.header("id").is_none() && wants_durable(frame) {
            return Err(error(
                "Missing Header",
                "A durable subscription must have an 'id' header",
            ));
        }
        // STOMP 1.0 made the id optional: the destination names the subscription.
        let id = match (frame.header("id"), self.version) {
            (Some(id), _) => id,
            (None, Some(Version::V1_0)) => destination,
            (None, _) => return Err(missing("id", Command::Subscribe)),
        };
        if self.subscriptions.contains_key(id) {
            return Err(duplicated(id));
        }
        self.check_room()?;
        let ack = match frame.header("ack") {
            None | Some("auto") => AckMode::Auto,
            Some("client") => AckMode::Client,
            Some("client-individual") => AckMode::ClientIndividual,
            Some(other) => {
                return Err(error(
                    "Invalid ack mode",
                    format!("ack must be auto, client or client-individual, not '{other}'"),
                ))
            }
        };
        let prefetch = match frame.header("prefetch-count") {
            None => 0,
            Some(p) => p.parse().map_err(|_| {
                error(
                    "Invalid prefetch-count",
                    format!("prefetch-count '{p}' is not a number"),
                )
            })?,
        };
        // Only subscriptions to an exchange have a queue of their own to keep.
        let mut durable = None;
        // A durable subscription's queue is declared, so configured.
        let durable_queue = durable_subscription(frame, id, destination);
        let grant = self.guard.grant();
        let binds = matches!(
            parse_destination(destination),
            Some(Destination::Topic(_) | Destination::Exchange(..))
        );
        let durable_ok = !binds
            || durable_queue
                .as_ref()
                .is_none_or(|q| grant.may_configure(Kind::Queue, q));
        let allowed = may_read(grant, destination) && durable_ok;
        self.permit(allowed, || format!("destination '{destination}'"))?;
        let queue = match parse_destination(destination) {
            None => return Err(unknown_destination(destination)),
            Some(Destination::Queue(name)) => self.queue_for(name, frame, now)?,
            Some(Destination::AmqQueue(name)) => {
                self.router.queue(name, self.id).map_err(vhost_error)?
            }
            Some(Destination::Topic(pattern)) => {
                durable = durable_queue.clone();
                self.bound_queue(
                    "amq.topic",
                    Some(pattern),
                    durable.as_deref(),
                    frame.header("x-queue-name"),
                    now,
                )?
            }
            Some(Destination::Exchange(exchange, key)) => {
                durable = durable_queue.clone();
                self.bound_queue(
                    exchange,
                    Some(key),
                    durable.as_deref(),
                    frame.header("x-queue-name"),
                    now,
                )?
            }
            Some(Destination::TempQueue(_) | Destination::ReplyQueue(_)) => {
                return Err(error(
                    "Invalid destination",
                    format!("'{destination}' cannot be subscribed to"),
                ))
            }
        };
        self.consume(id, destination, queue, ack, prefetch, now)?;
        if let Some(sub) = self.subscriptions.get_mut(id) {
            sub.durable = durable.is_some();
        }
        Ok(())
    }

    /// RabbitMQ's ERROR unless `allowed` (the connection then closes).
    fn permit(&self, allowed: bool, what: impl FnOnce() -> String) -> Result<(), Exit> {
        if allowed {
            return Ok(());
        }
        let user = self.guard.grant().user().unwrap_or("anonymous");
        Err(error(
            "access_refused",
            format!(
                "ACCESS_REFUSED - access to {} in vhost '/' refused for user '{user}'\n",
                what()
            ),
        ))
    }

    /// Refuses a subscription beyond the configured number per connection.
    fn check_room(&self) -> Result<(), Exit> {
        if self.subscriptions.len() >= self.offer.max_subscriptions {
            return Err(error(
                "Too many subscriptions",
                format!(
                    "a connection may have {} subscriptions",
                    self.offer.max_subscriptions
                ),
            ));
        }
        Ok(())
    }

    fn consume(
        &mut self,
        id: &str,
        destination: &str,
        queue: Arc<Queue>,
        ack: AckMode,
        prefetch: u32,
        now: Now,
    ) -> Result<(), Exit> {
        let consumer = self.router.next_consumer_id();
        let credit = Arc::new(Credit::new(prefetch));
        let spec = ConsumerSpec {
            id: consumer,
            no_ack: ack == AckMode::Auto,
            exclusive: false,
            credit: credit.clone(),
            channel_credit: self.credit.clone(),
            outlet: self.outlet.clone(),
            priority: 0,
        };
        self.router
            .consume(&queue, spec, now)
            .map_err(vhost_error)?;
        self.by_consumer.insert(consumer, id.to_owned());
        self.subscriptions.insert(
            id.to_owned(),
            Subscription {
                destination: destination.to_owned(),
                consumer,
                queue,
                ack,
                credit,
                durable: false,
            },
        );
        Ok(())
    }

    fn unsubscribe(&mut self, frame: &Frame, now: Now) -> Result<(), Exit> {
        let id = match (frame.header("id"), frame.header("destination")) {
            (Some(id), _) => id.to_owned(),
            // STOMP 1.0: by destination.
            (None, Some(d)) if self.version == Some(Version::V1_0) => self
                .subscriptions
                .iter()
                .find(|(_, s)| s.destination == d)
                .map(|(id, _)| id.clone())
                .unwrap_or_default(),
            (None, _) => return Err(missing("id", Command::Unsubscribe)),
        };
        let Some(sub) = self.subscriptions.remove(&id) else {
            return Err(error(
                "No subscription found",
                format!("UNSUBSCRIBE must refer to an existing subscription; '{id}' is none"),
            ));
        };
        self.temp_queues.retain(|d, _| *d != id);
        self.by_consumer.remove(&sub.consumer);
        // Its unacknowledged messages stay pending: they may still be acknowledged.
        // Deliveries not yet written go back to the queue (auto mode takes no
        // credit; the connection-wide credit is unlimited).
        self.router
            .cancel_consumer(&sub.queue, sub.consumer, &self.outlet, now);
        // A durable subscription ends for good when UNSUBSCRIBE says so again.
        if sub.durable && wants_durable(frame) {
            let _ = self
                .router
                .delete_queue(sub.queue.name(), self.id, false, false);
        }
        Ok(())
    }

    fn settle(&mut self, frame: &Frame, ack: bool, now: Now) -> Result<(), Exit> {
        let command = frame.command;
        // 1.2 acknowledges the MESSAGE's `ack` header as `id`, 1.0/1.1 its message-id.
        let (name, other) = match self.version {
            Some(Version::V1_2) => ("id", "message-id"),
            _ => ("message-id", "id"),
        };
        // 1.2 requires `id` (RabbitMQ refuses a 1.2 ACK without it); 1.0/1.1
        // clients are let off with the other name.
        let fallback = match self.version {
            Some(Version::V1_2) => None,
            _ => frame.header(other),
        };
        let id = frame
            .header(name)
            .or(fallback)
            .ok_or_else(|| missing_header(name, command))?;
        let n = delivery_number(id)
            .filter(|n| self.pending.contains_key(n))
            .ok_or_else(|| {
                error(
                    "Unknown message",
                    format!(
                        "{} of '{id}': no unacknowledged message has this id",
                        command.as_str()
                    ),
                )
            })?;
        let cumulative = self
            .pending
            .get(&n)
            .filter(|p| p.cumulative)
            .map(|p| p.subscription.clone());
        // RabbitMQ reads STOMP booleans as true/false in either case of the
        // first letter (stomp.py writes Python's `False`).
        let how = match (ack, frame.header("requeue")) {
            (true, _) => Settle::Ack,
            (false, Some("false" | "False")) => Settle::Reject,
            (false, _) => Settle::Requeue,
        };
        match frame.header("transaction") {
            None => {
                self.apply_settle(n, cumulative.as_deref(), how, now);
                Ok(())
            }
            Some(tx) => {
                let tx = tx.to_owned();
                self.hold(&tx, TxOp::Settle { n, cumulative, how })
            }
        }
    }

    /// Settles delivery `n` if still pending, and for a cumulative ACK/NACK every
    /// earlier pending delivery of `cumulative` (a subscription id).
    fn apply_settle(&mut self, n: u64, cumulative: Option<&str>, how: Settle, now: Now) {
        let numbers: Vec<u64> = match cumulative {
            Some(sub) => self
                .pending
                .range(..=n)
                .filter(|(_, p)| p.subscription == sub)
                .map(|(k, _)| *k)
                .collect(),
            None => vec![n],
        };
        let mut settled = Vec::new();
        for n in &numbers {
            if let Some(p) = self.pending.remove(n) {
                p.credit.release(1);
                self.credit.release(1);
                settled.push((p.queue, p.entry));
            }
        }
        match how {
            Settle::Requeue => self.router.requeue_all(settled, now),
            Settle::Ack => self.router.ack_all(settled, now),
            Settle::Reject => self.router.reject_all(settled, now),
        }
    }

    fn begin(&mut self, frame: &Frame) -> Result<(), Exit> {
        let tx = frame
            .header("transaction")
            .ok_or_else(|| missing("transaction", Command::Begin))?;
        if self.transactions.contains_key(tx) {
            return Err(error(
                "Transaction already active",
                format!("transaction '{tx}' was already begun"),
            ));
        }
        if self.transactions.len() >= MAX_TRANSACTIONS {
            return Err(error(
                "Too many transactions",
                format!("a connection may have {MAX_TRANSACTIONS} open transactions"),
            ));
        }
        self.transactions
            .insert(tx.to_owned(), Transaction::default());
        Ok(())
    }

    /// Ends the transaction a COMMIT or ABORT names; its frames are returned.
    fn take_transaction(&mut self, frame: &Frame) -> Result<Vec<TxOp>, Exit> {
        let tx = frame
            .header("transaction")
            .ok_or_else(|| missing("transaction", frame.command))?;
        let ops = self
            .transactions
            .remove(tx)
            .ok_or_else(|| bad_transaction(tx))?
            .ops;
        self.tx_bytes.remove(ops.iter().map(TxOp::size).sum());
        Ok(ops)
    }

    /// Applies a transaction: its SENDs are one storage batch.
    fn commit(&mut self, frame: &Frame, now: Now) -> Result<Ticket, Exit> {
        let ops = self.take_transaction(frame)?;
        let router = self.router.clone();
        router.atomically(|| {
            let mut ticket = Ticket::default();
            for op in ops {
                match op {
                    TxOp::Send(send) => ticket.merge(self.publish(&send, now)?),
                    TxOp::Settle { n, cumulative, how } => {
                        self.apply_settle(n, cumulative.as_deref(), how, now)
                    }
                }
            }
            Ok(ticket)
        })
    }

    fn deliver(&mut self, consumer: ConsumerId, queue: Arc<Queue>, entry: Entry, now: Now) {
        let Some(sub) = self
            .by_consumer
            .get(&consumer)
            .and_then(|id| self.subscriptions.get_key_value(id))
        else {
            // Unsubscribed meanwhile: the message goes back to its queue.
            self.router.requeue(&queue, vec![entry], now);
            return;
        };
        let (id, sub) = sub;
        let version = self.wire();
        let n = self.next_delivery;
        self.next_delivery += 1;
        let message_id = format!("T_{id}@@{}@@{n}", self.session);
        let destination = shown_destination(&entry.exchange, &entry.routing_key);
        let msg = &entry.message;
        let reply_to = match (shown_reply_to(msg), &msg.reply_to) {
            (Some(shown), _) => Some(shown),
            (None, Some(subject)) => Some(reply_destination(&self.router, subject)),
            (None, None) => None,
        };
        let acked = sub.ack != AckMode::Auto;
        let delivered = Delivered {
            subscription: id,
            destination: &destination,
            message_id: &message_id,
            ack: (acked && version == Version::V1_2).then_some(message_id.as_str()),
            redelivered: entry.redelivered,
            reply_to: reply_to.as_deref(),
        };
        write_message(&mut self.out, version, &delivered, &entry.message);
        self.counts.delivered(entry.message.payload.len());
        if acked {
            let pending = Pending {
                subscription: id.clone(),
                queue,
                entry,
                credit: sub.credit.clone(),
                cumulative: sub.ack == AckMode::Client,
            };
            self.pending.insert(n, pending);
        } else {
            // Settled on sending (ack mode auto).
            self.router.ack(&queue, entry, now);
        }
    }

    /// The queue of a subscription was deleted: RabbitMQ tells the client with an
    /// ERROR naming the subscription and keeps the connection.
    fn server_cancelled(&mut self, consumer: ConsumerId) {
        let Some(id) = self.by_consumer.remove(&consumer) else {
            return;
        };
        let Some(sub) = self.subscriptions.remove(&id) else {
            return;
        };
        self.temp_queues.retain(|d, _| *d != id);
        let detail = format!(
            "The server has cancelled a subscription.\nNo more messages will be delivered \
             for '{}'.\n",
            sub.destination
        );
        let version = self.wire();
        write_error(
            &mut self.out,
            version,
            "Server cancelled subscription",
            &detail,
            &[("subscription", &id)],
        );
    }

    /// Ends the connection's state: open transactions aborted, subscriptions
    /// cancelled, unacknowledged messages requeued, private queues deleted.
    pub(super) fn end(&mut self, now: Now) {
        self.transactions.clear();
        for (_, sub) in self.subscriptions.drain() {
            self.router.cancel(&sub.queue, sub.consumer, now);
        }
        self.by_consumer.clear();
        let pending = std::mem::take(&mut self.pending);
        let unacked = pending.into_values().map(|p| (p.queue, p.entry));
        self.router.return_unsettled(unacked, &self.outlet, now);
        self.router.connection_closed(self.id, now);
    }
}

/// How a reply subject is shown to a STOMP consumer (the translate module's rules).
fn reply_destination(router: &Router, subject: &Subject) -> String {
    let s = subject.as_str();
    if s.starts_with("amq.") {
        format!("/reply-queue/{s}")
    } else if router.has_queue(s) {
        format!("/queue/{s}")
    } else {
        format!("/topic/{s}")
    }
}

/// RabbitMQ's durable subscription headers: `durable:true` (or `persistent:true`).
fn wants_durable(frame: &Frame) -> bool {
    frame.header("durable") == Some("true") || frame.header("persistent") == Some("true")
}

/// The queue of a durable topic or exchange subscription (durable, and not
/// `auto-delete:true`): `x-queue-name`, else one named after the subscription's
/// id and destination (as RabbitMQ, so that two subscriptions sharing an id do
/// not share a queue).
/// Whether `grant` lets a subscription read `destination`: consume its queue,
/// or bind to its exchange with its key.
fn may_read(grant: &Grant, destination: &str) -> bool {
    match parse_destination(destination) {
        Some(Destination::Queue(name) | Destination::AmqQueue(name)) => {
            grant.may_consume(Kind::Queue, name)
        }
        Some(Destination::Topic(pattern)) => grant.may_bind("amq.topic", pattern),
        Some(Destination::Exchange(exchange, key)) => grant.may_bind(exchange, key),
        _ => true,
    }
}

fn durable_subscription(frame: &Frame, id: &str, destination: &str) -> Option<String> {
    if !wants_durable(frame) || frame.header("auto-delete") == Some("true") {
        return None;
    }
    Some(match frame.header("x-queue-name") {
        Some(name) => name.to_owned(),
        None => format!("stomp-subscription-{id}{destination}"),
    })
}

/// The delivery number at the end of a message id `T_<sub>@@<session>@@<n>`.
fn delivery_number(id: &str) -> Option<u64> {
    id.rsplit_once("@@")?.1.parse().ok()
}

fn parse_heart_beat(text: &str) -> Option<(u64, u64)> {
    let (x, y) = text.split_once(',')?;
    Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
}

fn unknown_destination(destination: &str) -> Exit {
    if let Some((kind, content)) = invalid_destination(destination) {
        return error(
            "Invalid destination",
            format!("'{content}' is not a valid {kind} destination\n"),
        );
    }
    error(
        "Unknown destination",
        format!("'{destination}' is not a valid destination.\n{VALID_DESTINATIONS}\n"),
    )
}

fn duplicated(id: &str) -> Exit {
    error(
        "Duplicated subscription identifier",
        // RabbitMQ names the subscription by its consumer tag, T_<id>.
        format!("A subscription identified by 'T_{id}' already exists."),
    )
}

fn bad_transaction(tx: &str) -> Exit {
    error(
        "Bad transaction",
        format!("Invalid transaction identifier: {tx}"),
    )
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
                OutletItem::Cancelled { consumer, .. } => self.server_cancelled(consumer),
            }
        }
    }

    fn consumed_queues(&self) -> Vec<Arc<Queue>> {
        self.subscriptions
            .values()
            .map(|s| s.queue.clone())
            .collect()
    }

    fn router(&self) -> &Router {
        &self.router
    }
}
