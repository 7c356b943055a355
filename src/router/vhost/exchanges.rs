//! Exchanges of the AMQP-style model and their bindings.
//!
//! Owns: one exchange's declaration and bindings, and each kind's matching
//! (direct, fanout, topic, headers) of a routing key and headers to destinations.
//! Refuses: following exchange-to-exchange bindings, alternate exchanges and
//! queues (`route.rs`), and the subject space (bindings of `amq.topic` are also in
//! the router's trie; `declare.rs` keeps both in step).

use crate::router::journal::BindingRecord;
use crate::router::message::Headers;
use crate::router::subject::{Filter, FilterToken};

/// The type of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Routing key equals the binding key.
    Direct,
    /// Every binding.
    Fanout,
    /// AMQP topic patterns over `.`-separated words.
    Topic,
    /// Binding arguments against message headers.
    Headers,
}

impl ExchangeKind {
    /// The kind named by an AMQP `exchange.declare` type.
    pub fn parse(s: &str) -> Option<ExchangeKind> {
        Some(match s {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }

    /// The AMQP type name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// How an exchange was declared.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeSpec {
    /// The type.
    pub kind: ExchangeKind,
    /// Declared durable (kept in memory like the others).
    pub durable: bool,
    /// Deleted when its last binding (as source) is removed.
    pub auto_delete: bool,
    /// Clients may not publish to it (only other exchanges).
    pub internal: bool,
    /// `alternate-exchange`: where unroutable messages go.
    pub alternate_exchange: Option<String>,
}

/// The destination of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A queue, by name.
    Queue(String),
    /// An exchange, by name (exchange-to-exchange binding).
    Exchange(String),
}

/// Binding arguments as text (headers exchanges): (name, Some(value rendered as
/// text)) or (name, None) for a void value, which matches on presence alone.
/// `x-match` is one of them.
pub type BindArgs = Vec<(String, Option<String>)>;

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) dest: Dest,
    pub(crate) key: String,
    pub(crate) args: BindArgs,
    /// Both ends are durable: the binding is stored.
    pub(crate) durable: bool,
    /// The parsed pattern (topic exchanges).
    filter: Option<Filter>,
}

impl Binding {
    pub(crate) fn new(
        kind: ExchangeKind,
        dest: Dest,
        key: &str,
        args: BindArgs,
        durable: bool,
    ) -> Binding {
        let filter = match kind {
            ExchangeKind::Topic => Filter::amqp_topic(key).ok(),
            _ => None,
        };
        Binding {
            dest,
            key: key.to_owned(),
            args,
            durable,
            filter,
        }
    }

    /// The binding from exchange `source` as storage records it.
    pub(crate) fn record(&self, source: &str) -> BindingRecord {
        BindingRecord {
            source: source.to_owned(),
            dest: self.dest.clone(),
            key: self.key.clone(),
            args: self.args.clone(),
        }
    }

    pub(crate) fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }
}

/// One exchange.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) spec: ExchangeSpec,
    pub(crate) bindings: Vec<Binding>,
}

impl Exchange {
    pub(crate) fn new(spec: ExchangeSpec) -> Exchange {
        Exchange {
            spec,
            bindings: Vec::new(),
        }
    }

    /// Pushes the destination of every binding matching (`routing_key`,
    /// `headers`); a destination may appear more than once.
    pub(crate) fn route<'a>(
        &'a self,
        routing_key: &str,
        headers: &Headers,
        out: &mut Vec<&'a Dest>,
    ) {
        for b in &self.bindings {
            let hit = match self.spec.kind {
                ExchangeKind::Direct => b.key == routing_key,
                ExchangeKind::Fanout => true,
                ExchangeKind::Topic => b
                    .filter
                    .as_ref()
                    .is_some_and(|f| topic_matches(f, routing_key)),
                ExchangeKind::Headers => headers_match(&b.args, headers),
            };
            if hit {
                out.push(&b.dest);
            }
        }
    }
}

/// Whether an AMQP topic pattern matches `routing_key` (split on `.` into words;
/// the empty key is zero words).
pub(crate) fn topic_matches(filter: &Filter, routing_key: &str) -> bool {
    let words: Vec<&str> = if routing_key.is_empty() {
        Vec::new()
    } else {
        routing_key.split('.').collect()
    };
    let n = words.len();
    // reach[j]: the pattern so far consumes exactly words[..j].
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for token in filter.tokens() {
        let mut next = vec![false; n + 1];
        match token {
            FilterToken::Literal(l) => {
                for j in 0..n {
                    next[j + 1] = reach[j] && words[j] == &**l;
                }
            }
            FilterToken::One => next[1..].copy_from_slice(&reach[..n]),
            FilterToken::Rest => {
                let mut any = false;
                for j in 0..=n {
                    any |= reach[j];
                    next[j] = any;
                }
            }
        }
        reach = next;
    }
    reach[n]
}

/// Headers-exchange matching: `x-match` all (default) / any / all-with-x /
/// any-with-x; the forms without `-with-x` ignore names starting with `x-`.
pub(crate) fn headers_match(args: &BindArgs, headers: &Headers) -> bool {
    let mode = args
        .iter()
        .find(|(k, _)| k == "x-match")
        .and_then(|(_, v)| v.as_deref())
        .unwrap_or("all");
    let (any, with_x) = match mode {
        "any" => (true, false),
        "all-with-x" => (false, true),
        "any-with-x" => (true, true),
        _ => (false, false),
    };
    let considered = args
        .iter()
        .filter(|(k, _)| k != "x-match" && (with_x || !k.starts_with("x-")));
    let mut hits = considered.map(|(name, value)| {
        headers.iter().any(|(h, v)| {
            h == name
                && (with_x || !h.starts_with("x-"))
                && value.as_ref().is_none_or(|want| want == v)
        })
    });
    if any {
        hits.any(|h| h)
    } else {
        hits.all(|h| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(p: &str, key: &str) -> bool {
        topic_matches(&Filter::amqp_topic(p).unwrap(), key)
    }

    #[test]
    fn topic_words() {
        assert!(topic("#", ""));
        assert!(!topic("*", ""));
        assert!(topic("", ""));
        assert!(topic("a.*.c", "a..c"));
        assert!(topic("a.#", "a"));
        assert!(topic("a.#.c", "a.b.b.c"));
        assert!(!topic("a.*", "a.b.c"));
        assert!(topic("*.b.#", "a.b"));
    }

    #[test]
    fn headers_modes() {
        let h: Headers = vec![("a".into(), "1".into()), ("x-b".into(), "2".into())];
        let args = |v: &[(&str, Option<&str>)]| -> BindArgs {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
                .collect()
        };
        assert!(headers_match(&args(&[("a", Some("1"))]), &h));
        assert!(!headers_match(&args(&[("a", Some("1")), ("c", None)]), &h));
        assert!(headers_match(
            &args(&[("x-match", Some("any")), ("a", Some("1")), ("c", None)]),
            &h
        ));
        assert!(headers_match(&args(&[("a", None)]), &h));
        // x- headers are ignored unless -with-x.
        assert!(headers_match(&args(&[("x-b", Some("9"))]), &h));
        assert!(!headers_match(
            &args(&[("x-match", Some("all-with-x")), ("x-b", Some("9"))]),
            &h
        ));
        assert!(headers_match(
            &args(&[("x-match", Some("any-with-x")), ("x-b", Some("2"))]),
            &h
        ));
    }
}
