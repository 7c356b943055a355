//! Consuming queues and settling deliveries: consumers under prefetch credit,
//! basic.get, and what becomes of a delivered message (ack, requeue, reject,
//! dead-letter), as router operations every front calls alike.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{not_found, VhostError};
use crate::router::deaths::DeathReason;
use crate::router::message::Now;
use crate::router::queues::{ConsumerId, ConsumerSpec, Dead, Entry, Outlet, OutletItem, Queue};
use crate::router::Router;

impl Router {
    /// Starts consuming `queue`; delivers what is ready.
    pub fn consume(
        &self,
        queue: &Arc<Queue>,
        consumer: ConsumerSpec,
        now: Now,
    ) -> Result<(), VhostError> {
        match queue.add_consumer(consumer, now.at) {
            Ok(()) => {}
            Err(true) => return Err(not_found("queue", queue.name())),
            Err(false) => return Err(VhostError::ExclusiveConsumer(queue.name().to_owned())),
        }
        self.kick(queue, now);
        Ok(())
    }

    /// Stops `consumer`; an auto-delete queue losing its last consumer is deleted.
    pub fn cancel(&self, queue: &Arc<Queue>, consumer: ConsumerId, now: Now) {
        if queue.remove_consumer(consumer, now.at) {
            self.remove_queue(queue);
        }
    }

    /// Stops `consumer` and takes back, requeued, what its queue had already handed
    /// to `outlet` for it; returns how many deliveries came back (their credit is
    /// the front's to give back).
    pub fn cancel_consumer(
        &self,
        queue: &Arc<Queue>,
        consumer: ConsumerId,
        outlet: &Outlet,
        now: Now,
    ) -> usize {
        // Removed first, so that nothing more is handed to the outlet for it.
        self.cancel(queue, consumer, now);
        let back = outlet.retract(consumer);
        let n = back.len();
        self.requeue_all(back, now);
        n
    }

    /// A fresh consumer id.
    pub fn next_consumer_id(&self) -> ConsumerId {
        self.vhost.next_consumer.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes the next ready entry (basic.get) and the ready count after it.
    pub fn get(&self, queue: &Arc<Queue>, now: Now) -> Option<(Entry, usize)> {
        let mut dead = Dead::new();
        let got = queue.get(now, &mut dead);
        self.dead_letter(queue, dead, now);
        got
    }

    /// Puts delivered `entries` back at the head of `queue`, in their original
    /// order, redelivered, and dispatches.
    pub fn requeue(&self, queue: &Arc<Queue>, entries: Vec<Entry>, now: Now) {
        let mut dead = Dead::new();
        queue.requeue(entries, now, &mut dead);
        self.dead_letter(queue, dead, now);
    }

    /// Puts entries back into their queues (grouped, one requeue per queue).
    pub fn requeue_all(&self, entries: impl IntoIterator<Item = (Arc<Queue>, Entry)>, now: Now) {
        for (queue, group) in by_queue(entries) {
            self.requeue(&queue, group, now);
        }
    }

    /// Settles delivered entries for good (their consumers have them), one lock
    /// per queue, and dispatches each queue again: the credit they held is free.
    pub fn ack_all(&self, entries: impl IntoIterator<Item = (Arc<Queue>, Entry)>, now: Now) {
        for (queue, group) in by_queue(entries) {
            queue.settle(&group);
            self.kick(&queue, now);
        }
    }

    /// Returns a closing connection's unacknowledged entries, and what its outlet
    /// still holds, to their queues: in one requeue per queue, so that they keep
    /// their order.
    pub fn return_unsettled(
        &self,
        unacked: impl IntoIterator<Item = (Arc<Queue>, Entry)>,
        outlet: &Outlet,
        now: Now,
    ) {
        let mut left = Vec::new();
        outlet.drain(&mut left);
        let undelivered = left.into_iter().filter_map(|item| match item {
            OutletItem::Deliver { queue, entry, .. } => Some((queue, entry)),
            OutletItem::Cancelled { .. } => None,
        });
        self.requeue_all(unacked.into_iter().chain(undelivered), now);
    }

    /// Settles delivered entries as rejected (dead-lettered where their queue
    /// says so, else dropped and counted), one lock per queue, and dispatches
    /// each queue again.
    pub fn reject_all(&self, entries: impl IntoIterator<Item = (Arc<Queue>, Entry)>, now: Now) {
        for (queue, group) in by_queue(entries) {
            queue.settle(&group);
            let dead = group
                .into_iter()
                .map(|e| (e, DeathReason::Rejected))
                .collect();
            self.dead_letter(&queue, dead, now);
            self.kick(&queue, now);
        }
    }

    /// Settles a delivered `entry` of `queue` for good: the consumer has it. A
    /// delivery to a consumer that acknowledges nothing (no-ack, STOMP `auto`) is
    /// acked by its front once it is written.
    pub fn ack(&self, queue: &Queue, entry: Entry, _now: Now) {
        queue.settle(std::slice::from_ref(&entry));
    }

    /// Settles a delivered `entry`: dead-letters it (reason rejected) if `queue`
    /// has a dead-letter exchange, else drops it (counted).
    pub fn reject(&self, queue: &Arc<Queue>, entry: Entry, now: Now) {
        queue.settle(std::slice::from_ref(&entry));
        self.dead_letter(queue, vec![(entry, DeathReason::Rejected)], now);
    }

    /// Dispatches `queue` (credit or outlet room was freed).
    pub fn kick(&self, queue: &Arc<Queue>, now: Now) {
        let mut dead = Dead::new();
        queue.dispatch(now, &mut dead);
        self.dead_letter(queue, dead, now);
    }
}

/// `entries` grouped by queue, each group in its original order.
fn by_queue(
    entries: impl IntoIterator<Item = (Arc<Queue>, Entry)>,
) -> Vec<(Arc<Queue>, Vec<Entry>)> {
    let mut groups: Vec<(Arc<Queue>, Vec<Entry>)> = Vec::new();
    for (queue, entry) in entries {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &queue)) {
            Some((_, group)) => group.push(entry),
            None => groups.push((queue, vec![entry])),
        }
    }
    groups
}
