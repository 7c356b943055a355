//! Publishing through exchanges: the routing work list (exchange-to-exchange
//! bindings breadth first, alternate exchanges, `amq.topic` and direct reply-to
//! into the subject space) and dead-lettering, whose dead letters are routed by
//! the same work list with RabbitMQ's cycle rule.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use super::exchanges::{topic_matches, Dest};
use super::{not_found, VhostError, AMQ_TOPIC, REPLY_TO_PREFIX};
use crate::router::deaths;
use crate::router::message::{Message, Now};
use crate::router::queues::{Dead, Queue};
use crate::router::subject::Subject;
use crate::router::{DeathReason, DropReason, Routed, Router};

/// One routing task of the publish work list.
struct Job {
    msg: Arc<Message>,
    /// The exchange entries record.
    exchange: Arc<str>,
    routing_key: Arc<str>,
    start: Vec<Dest>,
    /// Counted in the returned [`Routed`] (dead letters are not).
    original: bool,
}

impl Router {
    /// Publishes `msg` to `exchange` with `routing_key`.
    pub fn publish_to_exchange(
        &self,
        exchange: &str,
        routing_key: &str,
        mut msg: Message,
        now: Now,
    ) -> Result<Routed, VhostError> {
        match self.exchanges_read().map.get(exchange) {
            None => return Err(not_found("exchange", exchange)),
            Some(e) if e.spec.internal => {
                return Err(VhostError::AccessRefused(format!(
                    "cannot publish to internal exchange '{exchange}' in vhost '/'"
                )))
            }
            Some(_) => {}
        }
        if exchange == AMQ_TOPIC {
            if let Ok(subject) = Subject::new(routing_key) {
                msg.subject = subject;
            }
        }
        let job = Job {
            msg: Arc::new(msg),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            start: vec![Dest::Exchange(exchange.to_owned())],
            original: true,
        };
        Ok(self.run(job, now))
    }

    /// Delivers a subject-space publish to the destinations bound to `amq.topic`
    /// that matched it.
    pub(crate) fn publish_bound(&self, msg: Arc<Message>, dests: Vec<Dest>, now: Now) -> Routed {
        let job = Job {
            exchange: AMQ_TOPIC.into(),
            routing_key: msg.subject.as_str().into(),
            msg,
            start: dests,
            original: true,
        };
        self.run(job, now)
    }

    /// Runs the publish work list: routes a job, queues it, and routes the dead
    /// letters that produces, until none are left.
    fn run(&self, job: Job, now: Now) -> Routed {
        let mut routed = Routed::default();
        let mut jobs = VecDeque::from([job]);
        let mut dead = Dead::new();
        let mut jobs_run = 0usize;
        while let Some(job) = jobs.pop_front() {
            let (queues, sessions) = self.resolve(&job, now);
            if job.original {
                routed.add(sessions);
            }
            if jobs_run >= MAX_JOBS_PER_PUBLISH {
                tracing::warn!(
                    left = jobs.len() + 1,
                    "dead-letter work list too long: remaining dead letters dropped"
                );
                break;
            }
            jobs_run += 1;
            for q in queues {
                if deaths::is_cycle(&job.msg, q.name()) {
                    continue;
                }
                let accepted = q.enqueue(
                    job.msg.clone(),
                    job.exchange.clone(),
                    job.routing_key.clone(),
                    now,
                    &mut dead,
                    &mut routed.ticket,
                );
                if job.original {
                    routed.matched += 1;
                    if accepted {
                        routed.queued += 1;
                    } else {
                        routed.rejected += 1;
                    }
                }
                self.count_dropped(&q, &dead);
                dead_letter_jobs(&q, &mut dead, now, &mut jobs);
            }
        }
        routed
    }

    /// Counts `dead` as dropped if `q` has no dead-letter exchange to take them.
    fn count_dropped(&self, q: &Queue, dead: &Dead) {
        if q.spec().args.dead_letter_exchange.is_some() {
            return;
        }
        for (_, reason) in dead {
            let reason = match reason {
                DeathReason::Expired => DropReason::Expired,
                DeathReason::MaxLen => DropReason::MaxLength,
                DeathReason::Rejected => DropReason::Rejected,
            };
            self.drops().count(reason, 1);
        }
    }

    /// Routes `dead` entries of `q` (dead-lettering), through the work list.
    pub(super) fn dead_letter(&self, q: &Arc<Queue>, mut dead: Dead, now: Now) {
        if dead.is_empty() {
            return;
        }
        self.count_dropped(q, &dead);
        let mut jobs = VecDeque::new();
        dead_letter_jobs(q, &mut dead, now, &mut jobs);
        for job in jobs {
            self.run(job, now);
        }
    }

    /// The queues a job reaches (each once), and the subject-space sessions it was
    /// delivered to on the way.
    fn resolve(&self, job: &Job, now: Now) -> (Vec<Arc<Queue>>, Routed) {
        let mut sessions = Routed::default();
        let mut names: Vec<String> = Vec::new();
        let mut seen_queues: HashSet<String> = HashSet::new();
        let mut visited: HashSet<String> = HashSet::new();
        let mut frontier: VecDeque<Dest> = job.start.iter().cloned().collect();
        let rk: &str = &job.routing_key;
        if !matches!(job.start.as_slice(), [Dest::Exchange(_)]) {
            // Destinations bound to amq.topic: the subject space was already published to.
            visited.insert(AMQ_TOPIC.to_owned());
        }
        loop {
            let mut subject_space = false;
            let mut reply_to = false;
            {
                let ex = self.exchanges_read();
                while let Some(d) = frontier.pop_front() {
                    match d {
                        Dest::Queue(q) => {
                            if seen_queues.insert(q.clone()) {
                                names.push(q);
                            }
                        }
                        Dest::Exchange(x) => {
                            if !visited.insert(x.clone()) {
                                continue;
                            }
                            if x.is_empty() {
                                if rk.starts_with(REPLY_TO_PREFIX)
                                    && !self.queues_read().contains_key(rk)
                                {
                                    reply_to = true;
                                } else {
                                    frontier.push_back(Dest::Queue(rk.to_owned()));
                                }
                            } else if x == AMQ_TOPIC {
                                subject_space = true;
                                if rk.is_empty() {
                                    // No subject has zero words: match bindings here.
                                    if let Some(e) = ex.map.get(AMQ_TOPIC) {
                                        for b in &e.bindings {
                                            if b.filter().is_some_and(|f| topic_matches(f, "")) {
                                                frontier.push_back(b.dest.clone());
                                            }
                                        }
                                    }
                                }
                            } else if let Some(e) = ex.map.get(&x) {
                                let mut out = Vec::new();
                                e.route(rk, &job.msg.headers, &mut out);
                                // RabbitMQ: an exchange that routes nowhere hands the
                                // message to its alternate exchange, whether it was
                                // published to or reached through a binding.
                                if out.is_empty() {
                                    if let Some(ae) = &e.spec.alternate_exchange {
                                        frontier.push_back(Dest::Exchange(ae.clone()));
                                    }
                                }
                                frontier.extend(out.into_iter().cloned());
                            }
                        }
                    }
                }
            }
            let subject = if reply_to {
                Subject::new(&rk[REPLY_TO_PREFIX.len()..]).ok()
            } else if subject_space {
                Subject::new(rk).ok()
            } else {
                None
            };
            let Some(subject) = subject else { break };
            let mut msg = (*job.msg).clone();
            msg.subject = subject;
            let (r, bound, _) = self.publish_sessions(msg, now);
            sessions.add(r);
            if reply_to {
                visited.insert(AMQ_TOPIC.to_owned());
            }
            frontier.extend(bound);
            if frontier.is_empty() {
                break;
            }
            // Only once: amq.topic is visited now, so the next pass ends the loop.
            visited.insert(AMQ_TOPIC.to_owned());
        }
        let queues = self.queues_read();
        let found = names
            .iter()
            .filter_map(|n| queues.get(n).cloned())
            .collect();
        (found, sessions)
    }
}

/// Routing steps one publish may take, dead letters included: a fanout
/// dead-letter exchange over many overflowing queues multiplies them.
const MAX_JOBS_PER_PUBLISH: usize = 10_000;

/// Turns `q`'s dead entries into jobs for its dead-letter exchange.
fn dead_letter_jobs(q: &Queue, dead: &mut Dead, now: Now, jobs: &mut VecDeque<Job>) {
    let args = &q.spec().args;
    let Some(dlx) = &args.dead_letter_exchange else {
        dead.clear();
        return;
    };
    for (entry, reason) in dead.drain(..) {
        let mut msg = (*entry.message).clone();
        deaths::add_death(
            &mut msg,
            q.name(),
            reason,
            &entry.exchange,
            &entry.routing_key,
            now.unix_ms,
        );
        msg.expires_at = None;
        // A dead letter is a new publish of an old message: it must not replace
        // the subject's retained message.
        msg.retain = false;
        let routing_key: Arc<str> = match &args.dead_letter_routing_key {
            Some(k) => k.as_str().into(),
            None => entry.routing_key.clone(),
        };
        if dlx == AMQ_TOPIC {
            if let Ok(s) = Subject::new(&routing_key) {
                msg.subject = s;
            }
        }
        jobs.push_back(Job {
            msg: Arc::new(msg),
            exchange: dlx.as_str().into(),
            routing_key,
            start: vec![Dest::Exchange(dlx.clone())],
            original: false,
        });
    }
}
