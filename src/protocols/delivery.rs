//! What the fronts whose consumers read router queues (AMQP, STOMP) do alike with
//! their outlet: encode deliveries at most [`WRITE_BUDGET`] bytes ahead of a
//! socket write, kick their queues when a full outlet gets room, and write until
//! nothing is left.
//!
//! A connection encodes from the outlet only while its output buffer is under the
//! budget; what is left waits in the outlet (bounded by its item limit), so that
//! many copies of a large message are never encoded at once.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWrite;

use super::now;
use super::socket::{self, WriteError};
use crate::router::{Memory, Now, Outlet, OutletItem, Queue, Router};

/// Bytes of deliveries encoded ahead of one socket write.
pub(crate) const WRITE_BUDGET: usize = 1 << 20;
/// Deliveries taken from the outlet at a time while within the budget.
const PUMP_BATCH: usize = 64;

/// A connection queues hand deliveries to.
pub(crate) trait Deliveries {
    /// Its outlet.
    fn outlet(&self) -> &Outlet;
    /// Bytes waiting to be written.
    fn out(&mut self) -> &mut BytesMut;
    /// Encodes (or settles) `items`, emptying it.
    fn deliver_all(&mut self, items: &mut Vec<OutletItem>, now: Now);
    /// The queues its consumers read.
    fn consumed_queues(&self) -> Vec<Arc<Queue>>;
    /// The router.
    fn router(&self) -> &Router;

    /// Encodes what the outlet holds until the output holds [`WRITE_BUDGET`]
    /// bytes; if the outlet had filled up, its queues are kicked (they stop
    /// handing deliveries to a full outlet).
    fn pump(&mut self, now: Now) {
        let was_full = self.outlet().is_full();
        let mut items = Vec::new();
        while self.out().len() < WRITE_BUDGET {
            self.outlet().drain_up_to(&mut items, PUMP_BATCH);
            if items.is_empty() {
                break;
            }
            self.deliver_all(&mut items, now);
        }
        if was_full {
            for queue in self.consumed_queues() {
                self.router().kick(&queue, now);
            }
        }
    }
}

/// Writes the output, then what the write budget left in the outlet, until
/// nothing is left. Returns whether anything was written.
pub(crate) async fn write_pending<W, C>(
    writer: &mut W,
    conn: &mut C,
    memory: &Arc<Memory>,
) -> Result<bool, WriteError>
where
    W: AsyncWrite + Unpin,
    C: Deliveries,
{
    let mut wrote = false;
    while !conn.out().is_empty() {
        socket::flush(writer, conn.out(), memory).await?;
        wrote = true;
        conn.pump(now());
    }
    Ok(wrote)
}
