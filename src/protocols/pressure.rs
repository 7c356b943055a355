//! Back-pressure from the router's memory ledger, the one way every front holds
//! its publishers back.
//!
//! Owns: whether a connection is to be read from now (not while the router is
//! over its memory watermark and the connection has published and awaits no
//! acknowledgement of a delivery to it) and the wake-up
//! when publishers may go on. Its peer's bytes then wait in the socket (and TCP
//! slows the sender), not in the broker's memory; deliveries keep being written,
//! so consumers keep draining.
//! Refuses: the protocol's own signals (AMQP's connection.blocked is the AMQP
//! front's), and keep-alive policy: a front that stops reading must not count its
//! peer's unread input as silence.

use std::sync::Arc;

use tokio::sync::watch;

use crate::router::{memory, Memory};

/// One connection's view of the memory watermark.
#[derive(Debug)]
pub(crate) struct Pressure {
    memory: Arc<Memory>,
    watch: watch::Receiver<bool>,
}

impl Pressure {
    pub(crate) fn new(memory: &Arc<Memory>) -> Pressure {
        Pressure {
            memory: memory.clone(),
            watch: memory.watch(),
        }
    }

    /// Whether a connection is to be left unread now: it has published
    /// (`publisher`), the router is over its watermark, and it holds no
    /// deliveries awaiting its acknowledgement (`awaiting_acks`, asked only when
    /// over the watermark). Reading those acknowledgements is how memory is
    /// freed: a connection that both consumes and publishes (a STOMP worker,
    /// an MQTT client at QoS 1) would otherwise hold up every publisher with the
    /// bytes only it can release.
    pub(crate) fn holds(&self, publisher: bool, awaiting_acks: impl FnOnce() -> bool) -> bool {
        publisher && self.memory.is_blocked() && !awaiting_acks()
    }

    /// Resolves when publishers may go on (at once if they may). Cancel-safe.
    pub(crate) async fn relieved(&mut self) {
        memory::relieved(&mut self.watch).await;
    }
}
