//! Permission rules: allow and deny patterns over subjects and names, deny wins.
//!
//! Owns: the pattern syntax (a NATS subject filter such as `sensors.>`, or a name
//! `queue:<glob>`, `exchange:<glob>`, `stream:<glob>`, `schema:<glob>` where `*` matches any run of
//! characters) and the three questions a front asks: may this subject be used, may
//! this subscription filter be taken (every subject it can match must be allowed;
//! deny patterns it only overlaps are excluded from its deliveries, as nats-server
//! filters a wildcard subscription's denied subjects), may this name be used.
//! Refuses: protocol syntax (fronts translate MQTT topics, AMQP patterns and STOMP
//! destinations to [`Subject`] and [`Filter`] first) and users.

use std::fmt;

use crate::router::{Filter, FilterToken, Subject};

/// What a name pattern names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// An AMQP or STOMP queue (`queue:<name>`).
    Queue,
    /// An AMQP exchange (`exchange:<name>`).
    Exchange,
    /// A stream (JetStream, Kafka topic): `stream:<name>`.
    Stream,
    /// A schema registry subject: `schema:<name>`.
    Schema,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Queue => "queue:",
            Kind::Exchange => "exchange:",
            Kind::Stream => "stream:",
            Kind::Schema => "schema:",
        }
    }
}

/// One allow or deny pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Subject(Filter),
    Name(Kind, Box<str>),
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        for kind in [Kind::Queue, Kind::Exchange, Kind::Stream, Kind::Schema] {
            if let Some(glob) = text.strip_prefix(kind.prefix()) {
                if glob.is_empty() {
                    return Err(format!("`{text}`: an empty name"));
                }
                return Ok(Pattern::Name(kind, glob.into()));
            }
        }
        Filter::nats(text)
            .map(Pattern::Subject)
            .map_err(|e| format!("`{text}` is neither a NATS subject filter ({e}) nor queue:, exchange:, stream: or schema: a name"))
    }
}

/// Allow and deny patterns for one kind of use (publish, subscribe or configure).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
}

/// Whether a subscription filter may be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilterVerdict {
    /// Every subject the filter matches is allowed.
    Allowed,
    /// Allowed, but deliveries on subjects these filters match must be withheld
    /// (deny patterns the filter overlaps without being inside one).
    AllowedExcept(Vec<Filter>),
    /// The filter reaches beyond what is allowed, or lies inside a deny pattern.
    Denied,
}

impl FilterVerdict {
    /// What a subscription allowed by this verdict leaves out of its deliveries
    /// (`SubOptions::withheld`), or `None` if it is denied.
    pub(crate) fn withheld(self) -> Option<Option<std::sync::Arc<[Filter]>>> {
        match self {
            FilterVerdict::Allowed => Some(None),
            FilterVerdict::AllowedExcept(denied) => Some(Some(denied.into())),
            FilterVerdict::Denied => None,
        }
    }
}

impl Rules {
    /// Rules from the configuration's pattern lists.
    pub(crate) fn parse(allow: &[String], deny: &[String]) -> Result<Rules, String> {
        let parse = |list: &[String]| -> Result<Vec<Pattern>, String> {
            list.iter().map(|p| Pattern::parse(p)).collect()
        };
        Ok(Rules {
            allow: parse(allow)?,
            deny: parse(deny)?,
        })
    }

    /// Whether messages may be published to (or otherwise name) `subject`.
    pub(crate) fn subject(&self, subject: &Subject) -> bool {
        let matching = |p: &Pattern| matches!(p, Pattern::Subject(f) if f.matches(subject));
        self.allow.iter().any(matching) && !self.deny.iter().any(matching)
    }

    /// Whether `filter` may be subscribed to.
    pub(crate) fn filter(&self, filter: &Filter) -> FilterVerdict {
        let subject_patterns = |list: &[Pattern]| -> Vec<Filter> {
            list.iter()
                .filter_map(|p| match p {
                    Pattern::Subject(f) => Some(f.clone()),
                    Pattern::Name(..) => None,
                })
                .collect()
        };
        let allowed = subject_patterns(&self.allow)
            .iter()
            .any(|a| contains(a.tokens(), filter.tokens()));
        if !allowed {
            return FilterVerdict::Denied;
        }
        let mut except = Vec::new();
        for d in subject_patterns(&self.deny) {
            if contains(d.tokens(), filter.tokens()) {
                return FilterVerdict::Denied;
            }
            if overlaps(d.tokens(), filter.tokens()) {
                except.push(d);
            }
        }
        if except.is_empty() {
            FilterVerdict::Allowed
        } else {
            FilterVerdict::AllowedExcept(except)
        }
    }

    /// Whether the queue, exchange or stream `name` may be used.
    pub(crate) fn name(&self, kind: Kind, name: &str) -> bool {
        let matching =
            |p: &Pattern| matches!(p, Pattern::Name(k, g) if *k == kind && glob(g, name));
        self.allow.iter().any(matching) && !self.deny.iter().any(matching)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix().trim_end_matches(':'))
    }
}

/// Whether the permission `outer` (NATS dialect: `>` last, one or more tokens)
/// matches every subject `inner` can match. A multi-token wildcard in `inner`
/// is covered only by one in `outer`: an MQTT `a/#` needs `a.>`, as the
/// configuration documents (its match of `a` itself is not asked for separately).
fn contains(outer: &[FilterToken], inner: &[FilterToken]) -> bool {
    let mut i = 0;
    loop {
        match (outer.get(i), inner.get(i)) {
            (None, None) => return true,
            (Some(FilterToken::Rest), Some(_)) => return true,
            (Some(FilterToken::One), Some(FilterToken::One | FilterToken::Literal(_))) => {}
            (Some(FilterToken::Literal(a)), Some(FilterToken::Literal(b))) if a == b => {}
            _ => return false,
        }
        i += 1;
    }
}

/// Whether some subject matches both the deny pattern `deny` (NATS dialect) and
/// `filter` (any dialect; a multi-token wildcard in it may match zero or more
/// tokens, anywhere for AMQP). A table over token positions: AMQP patterns may
/// hold many `#`, and trying each split in turn would take exponential time.
fn overlaps(deny: &[FilterToken], filter: &[FilterToken]) -> bool {
    let (n, m) = (deny.len(), filter.len());
    // can[i][j]: deny[i..] and filter[j..] have a subject in common.
    let mut can = vec![vec![false; m + 1]; n + 1];
    for i in (0..=n).rev() {
        for j in (0..=m).rev() {
            can[i][j] = match (deny.get(i), filter.get(j)) {
                (None, None) => true,
                // `>` needs at least one more token, which the filter's rest
                // must be able to supply.
                (Some(FilterToken::Rest), _) => j < m,
                (None, Some(FilterToken::Rest)) => can[i][j + 1],
                (Some(_), Some(FilterToken::Rest)) => can[i][j + 1] || can[i + 1][j],
                (None, Some(_)) | (Some(_), None) => false,
                (Some(FilterToken::Literal(a)), Some(FilterToken::Literal(b))) => {
                    a == b && can[i + 1][j + 1]
                }
                (Some(_), Some(_)) => can[i + 1][j + 1],
            };
        }
    }
    can[0][0]
}

/// Whether `name` matches the glob `pattern`, where `*` matches any run of
/// characters and everything else itself. Greedy with one backtrack point, so
/// linear in practice and never exponential.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> Rules {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Rules::parse(&own(allow), &own(deny)).unwrap()
    }

    fn subject(s: &str) -> Subject {
        Subject::new(s).unwrap()
    }

    #[test]
    fn subjects_are_allowed_by_a_match_and_denied_by_any_deny() {
        let r = rules(&["sensors.>", "orders.*"], &["sensors.secret.>"]);
        assert!(r.subject(&subject("sensors.kitchen.temp")));
        assert!(r.subject(&subject("orders.new")));
        assert!(!r.subject(&subject("orders.new.eu")));
        assert!(!r.subject(&subject("sensors.secret.key")));
        assert!(!r.subject(&subject("sensors")));
        assert!(!rules(&[], &[]).subject(&subject("a")));
    }

    #[test]
    fn a_filter_must_lie_inside_an_allowed_pattern() {
        let r = rules(&["a.>", "b.c"], &[]);
        for (filter, verdict) in [
            (Filter::mqtt("a/#").unwrap(), true),
            (Filter::mqtt("a/+/x").unwrap(), true),
            (Filter::nats("a.>").unwrap(), true),
            (Filter::amqp_topic("a.#.x").unwrap(), true),
            (Filter::mqtt("#").unwrap(), false),
            (Filter::mqtt("+/x").unwrap(), false),
            (Filter::mqtt("b/c").unwrap(), true),
            (Filter::mqtt("b/+").unwrap(), false),
            (Filter::nats("b.>").unwrap(), false),
            (Filter::mqtt("a").unwrap(), false),
        ] {
            let got = r.filter(&filter) == FilterVerdict::Allowed;
            assert_eq!(got, verdict, "{filter:?}");
        }
    }

    #[test]
    fn deny_patterns_refuse_what_they_contain_and_except_what_they_overlap() {
        let r = rules(&["sensors.>"], &["sensors.secret.>"]);
        assert_eq!(
            r.filter(&Filter::mqtt("sensors/secret/#").unwrap()),
            FilterVerdict::Denied
        );
        assert_eq!(
            r.filter(&Filter::nats("sensors.secret.x").unwrap()),
            FilterVerdict::Denied
        );
        assert_eq!(
            r.filter(&Filter::mqtt("sensors/public/#").unwrap()),
            FilterVerdict::Allowed
        );
        let deny = Filter::nats("sensors.secret.>").unwrap();
        for wide in [
            Filter::mqtt("sensors/#").unwrap(),
            Filter::mqtt("sensors/+/key").unwrap(),
            Filter::amqp_topic("sensors.#.key").unwrap(),
        ] {
            assert_eq!(
                r.filter(&wide),
                FilterVerdict::AllowedExcept(vec![deny.clone()]),
                "{wide:?}"
            );
        }
        // Overlap needs a subject both can match: `sensors.secret` alone is not
        // matched by `sensors.secret.>`.
        assert_eq!(
            r.filter(&Filter::mqtt("sensors/+").unwrap()),
            FilterVerdict::Allowed
        );
    }

    #[test]
    fn overlap_of_many_amqp_hashes_is_quick() {
        let deep = ["#"; 60].join(".x.");
        let filter = Filter::amqp_topic(&deep).unwrap();
        let deny = Filter::nats(&["y"; 100].join(".")).unwrap();
        assert!(!overlaps(deny.tokens(), filter.tokens()));
    }

    #[test]
    fn names_match_globs_of_their_kind() {
        let r = rules(
            &["queue:orders.*", "exchange:orders", "stream:*"],
            &["queue:orders.secret"],
        );
        assert!(r.name(Kind::Queue, "orders.eu"));
        assert!(r.name(Kind::Queue, "orders."));
        assert!(!r.name(Kind::Queue, "orders.secret"));
        assert!(!r.name(Kind::Queue, "orders"));
        assert!(!r.name(Kind::Exchange, "orders.eu"));
        assert!(r.name(Kind::Exchange, "orders"));
        assert!(r.name(Kind::Stream, "anything"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("*", ""));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_pattern_named() {
        let err = Rules::parse(&["a..b".into()], &[]).unwrap_err();
        assert!(err.contains("a..b"), "{err}");
        assert!(Rules::parse(&["queue:".into()], &[]).is_err());
        assert!(Rules::parse(&["a.>.b".into()], &[]).is_err());
    }
}
