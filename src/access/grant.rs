//! What an authenticated connection may do: a user's [`Permissions`] behind a
//! [`Grant`], and the [`Guard`] a connection keeps in front of it (its recent
//! decisions, and the replies it may send whatever its rules say).
//!
//! Owns: the permission questions the fronts ask, in the names of the one ACL
//! model (subjects, `queue:`, `exchange:`, `stream:`, `schema:`).
//! Refuses: who the user is ([`super::Access`] authenticates) and the rule
//! syntax ([`super::rules`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::rules::{FilterVerdict, Kind, Rules};
use crate::router::{Filter, Subject};

/// Publish, subscribe and configure rules of one user.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Permissions {
    publish: Rules,
    subscribe: Rules,
    configure: Rules,
    /// Whether the user has a permissions table at all: one without it may not
    /// even open the virtual host (as RabbitMQ refuses a user with no permissions
    /// on it).
    listed: bool,
    /// The operator's views and actions over HTTP.
    admin: bool,
}

impl Permissions {
    /// The rules of one `[auth.permissions.<user>]` table.
    pub(crate) fn parse(spec: &crate::config::PermissionSpec) -> Result<Permissions, String> {
        Ok(Permissions {
            publish: Rules::parse(&spec.publish, &spec.deny_publish)?,
            subscribe: Rules::parse(&spec.subscribe, &spec.deny_subscribe)?,
            configure: Rules::parse(&spec.configure, &spec.deny_configure)?,
            listed: true,
            admin: spec.admin,
        })
    }
}

/// What an authenticated connection may do. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(super) user: Option<Arc<str>>,
    /// `None`: everything.
    pub(super) permissions: Option<Arc<Permissions>>,
    /// How it was granted, so that a reload can grant it again or take it back.
    pub(super) origin: Origin,
}

/// How a [`Grant`] came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    /// Not authenticated (yet).
    Nobody,
    /// The open broker let the client in (anonymous, or guest/guest).
    Open,
    /// No credentials, by the `[auth] anonymous` rule.
    Anonymous,
    /// The user's credential that matched (its password or token hash, or its
    /// nkey): a reload that changes it takes the grant back.
    Credential(Arc<str>),
    /// A client certificate naming the user.
    Certificate,
}

impl Grant {
    /// Everything, as an open broker grants.
    pub(crate) fn everything() -> Grant {
        Grant {
            user: None,
            permissions: None,
            origin: Origin::Open,
        }
    }

    /// Nothing at all (a connection not yet authenticated).
    pub(crate) fn nothing() -> Grant {
        Grant {
            user: None,
            permissions: Some(Arc::default()),
            origin: Origin::Nobody,
        }
    }

    /// The user the connection authenticated as, if any.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether nothing is restricted (fronts skip their checks).
    pub(crate) fn unrestricted(&self) -> bool {
        self.permissions.is_none()
    }

    /// Whether the user may use the operator's views and actions (everybody
    /// while no permissions are configured).
    pub(crate) fn is_admin(&self) -> bool {
        self.permissions.as_ref().is_none_or(|p| p.admin)
    }

    /// Whether the virtual host may be opened at all (AMQP connection.open).
    pub(crate) fn may_open_vhost(&self) -> bool {
        self.permissions.as_ref().is_none_or(|p| p.listed)
    }

    /// Whether messages may be published to `subject`.
    pub(crate) fn may_publish(&self, subject: &Subject) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.publish.subject(subject))
    }

    /// Whether messages may be published to the exchange (or other named
    /// destination) `name`.
    pub(crate) fn may_publish_to(&self, kind: Kind, name: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.publish.name(kind, name))
    }

    /// Whether a message may be published through the AMQP exchange `exchange`
    /// with `routing_key` (also STOMP's `/topic/`, `/queue/` and `/exchange/`
    /// destinations): on `amq.topic` the routing key is the subject, as one rule
    /// covers every protocol; the default exchange is `exchange:amq.default`, as
    /// RabbitMQ names it; any other exchange by its name.
    pub(crate) fn may_publish_via(&self, exchange: &str, routing_key: &str) -> bool {
        match exchange {
            "amq.topic" => Subject::new(routing_key).is_ok_and(|s| self.may_publish(&s)),
            "" => self.may_publish_to(Kind::Exchange, "amq.default"),
            name => self.may_publish_to(Kind::Exchange, name),
        }
    }

    /// Whether a queue may be bound to `exchange` with `key` (a queue bound to an
    /// exchange reads from it): on `amq.topic` the binding key, as a subject
    /// filter, must lie wholly inside the subscribe rules (a binding cannot leave
    /// out denied subjects as a subscription does); any other exchange needs
    /// `exchange:<name>` among them.
    pub(crate) fn may_bind(&self, exchange: &str, key: &str) -> bool {
        match exchange {
            "amq.topic" => Filter::amqp_topic(key)
                .is_ok_and(|f| self.may_subscribe(&f) == FilterVerdict::Allowed),
            name => self.may_consume(Kind::Exchange, name),
        }
    }

    /// Whether a message on `subject` may be delivered to this user: its
    /// subscribe rules match the subject.
    pub(crate) fn may_receive(&self, subject: &Subject) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.subscribe.subject(subject))
    }

    /// Whether `filter` may be subscribed to.
    pub(crate) fn may_subscribe(&self, filter: &Filter) -> FilterVerdict {
        match &self.permissions {
            None => FilterVerdict::Allowed,
            Some(p) => p.subscribe.filter(filter),
        }
    }

    /// Whether the queue or stream `name` may be consumed from.
    pub(crate) fn may_consume(&self, kind: Kind, name: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.subscribe.name(kind, name))
    }

    /// Whether the queue, exchange or stream `name` may be declared, deleted or
    /// bound.
    pub(crate) fn may_configure(&self, kind: Kind, name: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.configure.name(kind, name))
    }
}

/// A connection's grant with its recent publish decisions (a publisher sends to
/// few subjects, each checked against every rule once) and the reply subjects it
/// may answer.
#[derive(Debug)]
pub(crate) struct Guard {
    grant: Grant,
    published: Decisions,
    received: Decisions,
    /// Reply subjects of requests delivered to the connection, with when the
    /// permission to answer lapses (Unix ms).
    responses: HashMap<Subject, u64, foldhash::fast::RandomState>,
}

/// Decisions a connection remembers per kind; beyond it they are forgotten (a
/// client of ever new subjects pays the rule check each time, no more memory).
const REMEMBERED_SUBJECTS: usize = 256;

/// One kind of decision (may publish, may receive) by subject, bounded.
#[derive(Debug, Default)]
struct Decisions(HashMap<Subject, bool, foldhash::fast::RandomState>);

impl Decisions {
    /// The remembered decision for `subject`, or `decide`'s, remembered.
    fn get_or(&mut self, subject: &Subject, decide: impl FnOnce() -> bool) -> bool {
        if let Some(&known) = self.0.get(subject) {
            return known;
        }
        let allowed = decide();
        if self.0.len() >= REMEMBERED_SUBJECTS {
            self.0.clear();
        }
        self.0.insert(subject.clone(), allowed);
        allowed
    }
}
/// How long a request's reply subject may be answered, and how many such subjects
/// a connection holds at once (nats-server's `allow_responses` defaults: one
/// response within two minutes).
pub(super) const RESPONSE_WINDOW_MS: u64 = 120_000;
const MAX_RESPONSES: usize = 4096;

impl Guard {
    /// A guard for `grant`.
    pub(crate) fn new(grant: Grant) -> Guard {
        Guard {
            grant,
            published: Decisions::default(),
            received: Decisions::default(),
            responses: HashMap::default(),
        }
    }

    /// The grant.
    pub(crate) fn grant(&self) -> &Grant {
        &self.grant
    }

    /// Whether a message may be published to `subject` at `now_ms`: by the rules,
    /// or as the one response to a request delivered to this connection.
    pub(crate) fn may_publish(&mut self, subject: &Subject, now_ms: u64) -> bool {
        if self.grant.unrestricted() {
            return true;
        }
        let grant = &self.grant;
        self.published
            .get_or(subject, || grant.may_publish(subject))
            || self
                .responses
                .remove(subject)
                .is_some_and(|until| now_ms <= until)
    }

    /// Whether a message on `subject` may be delivered: checked per delivery where
    /// a subscription can outlive the rules it was checked against (an MQTT
    /// persistent session resumed under another user or restored after a restart,
    /// whose subscriptions were made by someone else).
    pub(crate) fn may_receive(&mut self, subject: &Subject) -> bool {
        if self.grant.unrestricted() {
            return true;
        }
        let grant = &self.grant;
        self.received.get_or(subject, || grant.may_receive(subject))
    }

    /// Notes that a request with reply subject `reply` was delivered at `now_ms`:
    /// one response to it is allowed whatever the publish rules say (as
    /// nats-server's `allow_responses`), so that a service needs no publish rule
    /// for its callers' inboxes.
    pub(crate) fn expect_response(&mut self, reply: &Subject, now_ms: u64) {
        if self.grant.unrestricted() {
            return;
        }
        if self.responses.len() >= MAX_RESPONSES {
            self.responses.retain(|_, until| now_ms <= *until);
            if self.responses.len() >= MAX_RESPONSES {
                return;
            }
        }
        self.responses
            .insert(reply.clone(), now_ms.saturating_add(RESPONSE_WINDOW_MS));
    }
}
