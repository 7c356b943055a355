//! Answers to publishers that wait for storage (AMQP publisher confirms and
//! tx.commit-ok, MQTT PUBACK/PUBREC, STOMP RECEIPT): every front holds them the
//! same way.
//!
//! Owns: the order (an answer never overtakes one given to an earlier publish of
//! the same connection, so a front keeps its protocol's ordering rules), and
//! the rule that a publish whose message must be durable is answered only once
//! the storage ticket covering it has completed, with the outcome. An answer
//! with nothing to wait for and nothing ahead of it is given at once: non-durable
//! traffic never waits.
//! Refuses: what an answer is and what a failure means (each session decides:
//! basic.nack, PUBACK 0x80, ERROR).

use std::collections::VecDeque;

use crate::router::{StoreFailure, Ticket};

/// Answers waiting for their storage tickets, in the order of their publishes.
#[derive(Debug)]
pub(crate) struct Deferred<A> {
    waiting: VecDeque<(Ticket, A)>,
}

impl<A> Default for Deferred<A> {
    fn default() -> Self {
        Deferred {
            waiting: VecDeque::new(),
        }
    }
}

impl<A> Deferred<A> {
    /// Queues `answer` until `ticket` completes, behind the answers already
    /// waiting; gives it back if it can be given now.
    pub(crate) fn defer(&mut self, ticket: Ticket, answer: A) -> Option<A> {
        if self.waiting.is_empty() && ticket.outcome() == Some(Ok(())) {
            return Some(answer);
        }
        self.waiting.push_back((ticket, answer));
        None
    }

    /// The ticket the first waiting answer waits for.
    pub(crate) fn head(&self) -> Option<Ticket> {
        self.waiting.front().map(|(t, _)| t.clone())
    }

    /// The answers whose tickets have completed, in order, with the outcome;
    /// stops at the first still waiting.
    pub(crate) fn ready(&mut self) -> Vec<(A, Result<(), StoreFailure>)> {
        let mut out = Vec::new();
        while let Some(outcome) = self.waiting.front().and_then(|(t, _)| t.outcome()) {
            if let Some((_, answer)) = self.waiting.pop_front() {
                out.push((answer, outcome));
            }
        }
        out
    }
}

/// Resolves when `head` (a [`Deferred::head`]) completes; never without one.
pub(crate) async fn committed(head: &Option<Ticket>) {
    match head {
        Some(ticket) => {
            let _ = ticket.wait().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::router::journal::Taken;
    use crate::router::{Journal, Record, Subject};

    fn record() -> Record {
        Record::Retained {
            subject: Subject::new("a").unwrap(),
            message: None,
        }
    }

    #[test]
    fn answers_keep_their_order_and_wait_for_their_commit() {
        let journal = Arc::new(Journal::new(0));
        let mut d = Deferred::default();
        // Nothing to wait for: answered at once.
        assert_eq!(d.defer(Ticket::default(), 1), Some(1));
        let t = journal.append(record());
        assert_eq!(d.defer(t, 2), None);
        // Nothing to wait for, but behind 2: waits too.
        assert_eq!(d.defer(Ticket::default(), 3), None);
        assert!(d.ready().is_empty());
        let Taken::Batch(_, commit) = journal.take(Duration::from_secs(1)) else {
            panic!("a batch");
        };
        let t = journal.append(record());
        assert_eq!(d.defer(t, 4), None);
        commit.complete(Ok(()));
        let ready: Vec<i32> = d
            .ready()
            .into_iter()
            .map(|(a, r)| {
                assert!(r.is_ok());
                a
            })
            .collect();
        assert_eq!(ready, [2, 3]);
        assert!(d.head().is_some());
        let Taken::Batch(_, commit) = journal.take(Duration::from_secs(1)) else {
            panic!("a batch");
        };
        commit.complete(Err(StoreFailure("disk full".into())));
        let ready = d.ready();
        assert_eq!(ready.len(), 1);
        assert!(ready[0].1.is_err());
        assert!(d.head().is_none());
    }
}
