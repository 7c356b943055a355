//! One subject space for every protocol, and each protocol's filter dialect.
//!
//! Owns: the canonical [`Subject`] (tokens joined by `.`; a token may be empty and
//! may contain `/`, never `.`), the MQTT topic mapping (`/` ⇄ `.`, a `.` inside an
//! MQTT level becomes `/`), and the three filter dialects with their matching rules
//! ([`Filter::matches`] is the reference implementation the trie is tested against).
//! Refuses: protocol framing and policy. Protocol prefixes (`$share/g/`, STOMP
//! `/topic/`, AMQP exchanges) are stripped by the fronts; NATS subject validation for
//! publishing is the NATS front's business, [`Subject::new`] accepts any non-empty
//! string.
//!
//! The MQTT mapping swaps `/` and `.` character by character, so it is an exact
//! involution: MQTT `a.b/c` is the canonical `a/b.c` (tokens `a/b`, `c`), and
//! [`Subject::to_mqtt_topic`] gives `a.b/c` back. Empty levels survive: MQTT `/a` is
//! `.a` (tokens `""`, `a`) and `a//b` is `a..b`.
//!
//! | dialect | one token | rest | `$` rule |
//! | --- | --- | --- | --- |
//! | MQTT `a/+/#` | `+` (may be empty) | `#` last, zero or more (`a/#` matches `a`) | a filter starting with a wildcard does not match a subject whose first token starts with `$` |
//! | NATS `a.*.>` | `*` | `>` last, one or more (`a.>` does not match `a`) | none |
//! | AMQP topic `a.*.#` | `*` | `#` anywhere, zero or more (`#.b` matches `b`) | none |

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// The most tokens a subject or filter may have (EMQX's default topic depth).
/// Deeper ones are refused, which bounds the trie's recursion and the work of
/// matching however long the string (an MQTT topic of 65,534 `/` is 65,535 levels).
pub const MAX_TOKENS: usize = 128;

fn too_deep(canonical: &str, separator: char) -> bool {
    canonical.matches(separator).count() >= MAX_TOKENS
}

/// Why a string is not a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The subject (or MQTT topic name) is empty.
    #[error("empty subject")]
    Empty,
    /// An MQTT topic name contains the wildcard `+` or `#` [MQTT-3.3.2-2].
    #[error("topic name contains a wildcard")]
    Wildcard,
    /// An MQTT topic name contains U+0000 [MQTT-4.7.3-2].
    #[error("topic name contains U+0000")]
    Nul,
    /// More than [`MAX_TOKENS`] tokens.
    #[error("more than {MAX_TOKENS} levels")]
    TooDeep,
}

/// Why a string is not a filter in its dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The filter is empty (MQTT, NATS).
    #[error("empty filter")]
    Empty,
    /// A NATS filter has an empty token (`a..b`, `.a`, `a.`).
    #[error("empty token in filter")]
    EmptyToken,
    /// An MQTT wildcard shares its level with other characters (`a/b#`, `a+/b`)
    /// [MQTT-4.7.1-2], [MQTT-4.7.1-3].
    #[error("wildcard is not a whole level")]
    Wildcard,
    /// A multi-level wildcard (MQTT `#`, NATS `>`) is not the last token.
    #[error("multi-level wildcard is not last")]
    RestNotLast,
    /// A NATS filter contains whitespace.
    #[error("whitespace in filter")]
    Whitespace,
    /// An MQTT filter contains U+0000 [MQTT-4.7.3-2].
    #[error("filter contains U+0000")]
    Nul,
    /// More than [`MAX_TOKENS`] tokens.
    #[error("more than {MAX_TOKENS} levels")]
    TooDeep,
}

/// A subject in the canonical form shared by every protocol: tokens joined by `.`.
///
/// Cheap to clone (one `Arc<str>`). Ordering and hashing are those of the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Subject(Arc<str>);

impl Subject {
    /// A subject from its canonical form; any non-empty string is accepted.
    pub fn new(canonical: &str) -> Result<Subject, SubjectError> {
        if canonical.is_empty() {
            return Err(SubjectError::Empty);
        }
        if too_deep(canonical, '.') {
            return Err(SubjectError::TooDeep);
        }
        Ok(Subject(Arc::from(canonical)))
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tokens, in order. The empty subject (only `Subject::default()`) has none.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        let s: &str = &self.0;
        (!s.is_empty()).then(|| s.split('.')).into_iter().flatten()
    }

    /// The subject an MQTT topic name publishes to: `/` becomes `.` and a `.`
    /// inside a level becomes `/`.
    pub fn from_mqtt_topic(topic: &str) -> Result<Subject, SubjectError> {
        // [MQTT-4.7.3-1] All Topic Names and Topic Filters MUST be at least one
        // character long.
        if topic.is_empty() {
            return Err(SubjectError::Empty);
        }
        // [MQTT-3.3.2-2] The Topic Name in the PUBLISH packet MUST NOT contain
        // wildcard characters.
        if topic.contains(['+', '#']) {
            return Err(SubjectError::Wildcard);
        }
        // [MQTT-4.7.3-2] Topic Names and Topic Filters MUST NOT include the null
        // character (Unicode U+0000).
        if topic.contains('\0') {
            return Err(SubjectError::Nul);
        }
        if too_deep(topic, '/') {
            return Err(SubjectError::TooDeep);
        }
        Ok(Subject(Arc::from(swap_separators(topic))))
    }

    /// The MQTT topic name of this subject: the exact inverse of
    /// [`Subject::from_mqtt_topic`].
    pub fn to_mqtt_topic(&self) -> String {
        swap_separators(&self.0)
    }

    /// Whether the first token starts with `$` (MQTT's `$SYS/...`): such subjects
    /// are not matched by MQTT filters that start with a wildcard.
    pub fn is_dollar(&self) -> bool {
        self.0.starts_with('$')
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Hash, Eq and Ord of `Subject` are those of its string, so maps keyed by
// `Subject` can be searched with a `&str`.
impl Borrow<str> for Subject {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The subject a connection last published to, under the name it was given in
/// (a NATS subject, an MQTT topic): a publisher that keeps publishing to one name
/// gets the same shared `Subject` back instead of a new allocation per message.
#[derive(Debug, Default)]
pub struct LastSubject {
    last: Option<(Box<str>, Subject)>,
}

impl LastSubject {
    /// The subject for `name`, made by `make` unless `name` is the last one.
    pub fn get(
        &mut self,
        name: &str,
        make: impl FnOnce(&str) -> Result<Subject, SubjectError>,
    ) -> Result<Subject, SubjectError> {
        if let Some((last, subject)) = &self.last {
            if **last == *name {
                return Ok(subject.clone());
            }
        }
        let subject = make(name)?;
        self.last = Some((name.into(), subject.clone()));
        Ok(subject)
    }
}

/// Swaps `/` and `.`: the MQTT level separator and the canonical token separator.
fn swap_separators(s: &str) -> String {
    // Runs per MQTT publish and delivery: copy the spans between separators
    // instead of mapping (and growing the string by) one char at a time.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(['/', '.']) {
        let (span, tail) = rest.split_at(at);
        out.push_str(span);
        let mut tail = tail.chars();
        out.push(if tail.next() == Some('/') { '.' } else { '/' });
        rest = tail.as_str();
    }
    out.push_str(rest);
    out
}

/// One token of a filter, in the canonical subject space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FilterToken {
    /// Exactly this token.
    Literal(Box<str>),
    /// Exactly one token, whatever it is (MQTT `+`, NATS and AMQP `*`).
    One,
    /// Several tokens: zero or more for MQTT and AMQP `#`, one or more for NATS `>`.
    Rest,
}

/// The protocol whose wildcard rules a filter follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// MQTT `+`/`#`, with the `$` rule.
    Mqtt,
    /// NATS `*`/`>`.
    Nats,
    /// AMQP topic exchange `*`/`#`.
    AmqpTopic,
}

/// A subscription filter: tokens in the canonical subject space plus the dialect
/// that decides what the wildcards mean.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    tokens: Vec<FilterToken>,
    dialect: Dialect,
}

impl Filter {
    /// An MQTT topic filter such as `a/+/#`.
    pub fn mqtt(filter: &str) -> Result<Filter, FilterError> {
        // [MQTT-4.7.3-1] at least one character long.
        if filter.is_empty() {
            return Err(FilterError::Empty);
        }
        // [MQTT-4.7.3-2] no U+0000.
        if filter.contains('\0') {
            return Err(FilterError::Nul);
        }
        if too_deep(filter, '/') {
            return Err(FilterError::TooDeep);
        }
        let levels: Vec<&str> = filter.split('/').collect();
        let last = levels.len() - 1;
        let mut tokens = Vec::with_capacity(levels.len());
        for (i, level) in levels.into_iter().enumerate() {
            tokens.push(match level {
                "+" => FilterToken::One,
                // [MQTT-4.7.1-2] The multi-level wildcard character MUST be
                // specified either on its own or following a topic level separator.
                // In either case it MUST be the last character specified in the
                // Topic Filter.
                "#" if i == last => FilterToken::Rest,
                "#" => return Err(FilterError::RestNotLast),
                // [MQTT-4.7.1-3] The single-level wildcard can be used at any level
                // in the Topic Filter, but it MUST occupy an entire level.
                l if l.contains(['+', '#']) => return Err(FilterError::Wildcard),
                l => FilterToken::Literal(l.replace('.', "/").into_boxed_str()),
            });
        }
        Ok(Filter {
            tokens,
            dialect: Dialect::Mqtt,
        })
    }

    /// A NATS subject filter such as `a.*.>`.
    ///
    /// As in nats-server, `*` and `>` are wildcards only as whole tokens; `a*` is a
    /// literal token.
    pub fn nats(filter: &str) -> Result<Filter, FilterError> {
        if filter.is_empty() {
            return Err(FilterError::Empty);
        }
        if filter.chars().any(char::is_whitespace) {
            return Err(FilterError::Whitespace);
        }
        if too_deep(filter, '.') {
            return Err(FilterError::TooDeep);
        }
        let count = filter.split('.').count();
        let mut tokens = Vec::with_capacity(count);
        for (i, token) in filter.split('.').enumerate() {
            tokens.push(match token {
                "" => return Err(FilterError::EmptyToken),
                "*" => FilterToken::One,
                ">" if i + 1 == count => FilterToken::Rest,
                ">" => return Err(FilterError::RestNotLast),
                t => FilterToken::Literal(t.into()),
            });
        }
        Ok(Filter {
            tokens,
            dialect: Dialect::Nats,
        })
    }

    /// An AMQP topic-exchange binding pattern such as `a.*.#`.
    ///
    /// `#` may appear anywhere, any number of times; adjacent `#`s are merged
    /// (`#.#` means the same as `#`). Empty words are allowed (`a..b`), and the
    /// empty pattern is zero words, as in RabbitMQ. `*` and `#` are wildcards only
    /// as whole words.
    pub fn amqp_topic(pattern: &str) -> Result<Filter, FilterError> {
        if too_deep(pattern, '.') {
            return Err(FilterError::TooDeep);
        }
        let mut tokens = Vec::new();
        if !pattern.is_empty() {
            for word in pattern.split('.') {
                let token = match word {
                    "*" => FilterToken::One,
                    "#" => FilterToken::Rest,
                    w => FilterToken::Literal(w.into()),
                };
                if token == FilterToken::Rest && tokens.last() == Some(&FilterToken::Rest) {
                    continue;
                }
                tokens.push(token);
            }
        }
        Ok(Filter {
            tokens,
            dialect: Dialect::AmqpTopic,
        })
    }

    /// The dialect whose wildcard rules apply.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The tokens, in the canonical subject space.
    pub fn tokens(&self) -> &[FilterToken] {
        &self.tokens
    }

    /// Whether this filter is subject to MQTT's `$` rule: an MQTT filter whose
    /// first token is a wildcard.
    pub(crate) fn skips_dollar(&self) -> bool {
        // [MQTT-4.7.2-1] The Server MUST NOT match Topic Filters starting with a
        // wildcard character (# or +) with Topic Names beginning with a $ character.
        self.dialect == Dialect::Mqtt
            && matches!(
                self.tokens.first(),
                Some(FilterToken::One | FilterToken::Rest)
            )
    }

    /// The canonical string of the leading literal tokens (joined by `.`), and
    /// whether that is the whole filter. Used to narrow retained lookups.
    pub(crate) fn literal_prefix(&self) -> (String, bool) {
        let mut out = String::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let FilterToken::Literal(l) = t else {
                return (out, false);
            };
            if i > 0 {
                out.push('.');
            }
            out.push_str(l);
        }
        (out, true)
    }

    /// Whether `subject` matches, by the dialect's rules. This is the reference
    /// implementation (a small dynamic programme over token positions); the
    /// [`Trie`](super::trie::Trie) must agree with it.
    pub fn matches(&self, subject: &Subject) -> bool {
        if self.skips_dollar() && subject.is_dollar() {
            return false;
        }
        match self.matches_linear(subject) {
            Some(matched) => matched,
            None => self.matches_anywhere(subject),
        }
    }

    /// Matching for any filter, AMQP's `#` in the middle included: a small dynamic
    /// programme over token positions.
    fn matches_anywhere(&self, subject: &Subject) -> bool {
        let subject: Vec<&str> = subject.tokens().collect();
        let n = subject.len();
        let rest_min = match self.dialect {
            Dialect::Nats => 1,
            Dialect::Mqtt | Dialect::AmqpTopic => 0,
        };
        // reach[j]: the filter tokens seen so far can consume exactly subject[..j].
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        let mut next = vec![false; n + 1];
        for token in &self.tokens {
            next.iter_mut().for_each(|r| *r = false);
            match token {
                FilterToken::Literal(l) => {
                    for j in 0..n {
                        next[j + 1] = reach[j] && subject[j] == &**l;
                    }
                }
                FilterToken::One => {
                    next[1..].copy_from_slice(&reach[..n]);
                }
                FilterToken::Rest => {
                    let mut any = false;
                    for k in 0..=n {
                        if k >= rest_min && reach[k - rest_min] {
                            any = true;
                        }
                        next[k] = any;
                    }
                }
            }
            std::mem::swap(&mut reach, &mut next);
        }
        reach[n]
    }

    /// Matching in one pass, for filters whose only multi-token wildcard (if any)
    /// is the last token (every MQTT and NATS filter); `None` for the others.
    fn matches_linear(&self, subject: &Subject) -> Option<bool> {
        let (body, rest) = match self.tokens.split_last() {
            Some((FilterToken::Rest, body)) => (body, true),
            _ => (&self.tokens[..], false),
        };
        if body.contains(&FilterToken::Rest) {
            return None;
        }
        let mut tokens = subject.tokens();
        for t in body {
            let Some(token) = tokens.next() else {
                return Some(false);
            };
            if let FilterToken::Literal(l) = t {
                if token != &**l {
                    return Some(false);
                }
            }
        }
        let remaining = tokens.count();
        Some(match (rest, self.dialect) {
            (false, _) => remaining == 0,
            (true, Dialect::Nats) => remaining >= 1,
            (true, Dialect::Mqtt | Dialect::AmqpTopic) => true,
        })
    }

    /// A display and key form, in the dialect's own syntax with a dialect marker:
    /// `mqtt:a/+/#`, `nats:a.*.>`, `amqp:a.*.#`. Distinct filters give distinct
    /// strings.
    pub fn canonical(&self) -> String {
        let marker = match self.dialect {
            Dialect::Mqtt => "mqtt:",
            Dialect::Nats => "nats:",
            Dialect::AmqpTopic => "amqp:",
        };
        format!("{marker}{}", self.syntax())
    }

    /// The filter as its dialect writes it (`a/+/#`, `a.*.>`, `a.*.#`): what a
    /// client of that protocol subscribed with.
    pub fn syntax(&self) -> String {
        let (sep, one, rest) = match self.dialect {
            Dialect::Mqtt => ('/', "+", "#"),
            Dialect::Nats => ('.', "*", ">"),
            Dialect::AmqpTopic => ('.', "*", "#"),
        };
        let mut out = String::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            match t {
                FilterToken::Literal(l) if self.dialect == Dialect::Mqtt => {
                    out.push_str(&swap_separators(l));
                }
                FilterToken::Literal(l) => out.push_str(l),
                FilterToken::One => out.push_str(one),
                FilterToken::Rest => out.push_str(rest),
            }
        }
        out
    }

    /// The filter [`Filter::canonical`] wrote.
    pub fn from_canonical(text: &str) -> Result<Filter, FilterError> {
        if let Some(f) = text.strip_prefix("mqtt:") {
            Filter::mqtt(f)
        } else if let Some(f) = text.strip_prefix("nats:") {
            Filter::nats(f)
        } else if let Some(f) = text.strip_prefix("amqp:") {
            Filter::amqp_topic(f)
        } else {
            Err(FilterError::Empty)
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_subject_is_reused_and_replaced() {
        let mut last = LastSubject::default();
        let a = last.get("a/b", Subject::from_mqtt_topic).unwrap();
        assert_eq!(a.as_str(), "a.b");
        let again = last
            .get("a/b", |_| panic!("the last subject is reused"))
            .unwrap();
        assert!(Arc::ptr_eq(&a.0, &again.0));
        assert_eq!(last.get("c", Subject::new).unwrap().as_str(), "c");
        assert_eq!(last.get("", Subject::new), Err(SubjectError::Empty));
        assert_eq!(last.get("c", |_| panic!("still c")).unwrap().as_str(), "c");
    }

    fn s(canonical: &str) -> Subject {
        Subject::new(canonical).unwrap()
    }

    fn t(topic: &str) -> Subject {
        Subject::from_mqtt_topic(topic).unwrap()
    }

    fn toks(subject: &Subject) -> Vec<&str> {
        subject.tokens().collect()
    }

    #[test]
    fn new_accepts_any_nonempty_string() {
        assert_eq!(Subject::new(""), Err(SubjectError::Empty));
        assert_eq!(toks(&s("a.b c.*")), ["a", "b c", "*"]);
        assert_eq!(toks(&s("a..b")), ["a", "", "b"]);
        assert_eq!(toks(&Subject::default()), Vec::<&str>::new());
        assert_eq!(s("x.y").to_string(), "x.y");
    }

    #[test]
    fn mqtt_topic_round_trips() {
        for (topic, canonical, tokens) in [
            ("a/b/c", "a.b.c", vec!["a", "b", "c"]),
            ("a.b/c", "a/b.c", vec!["a/b", "c"]),
            ("/a", ".a", vec!["", "a"]),
            ("a//b", "a..b", vec!["a", "", "b"]),
            ("a/", "a.", vec!["a", ""]),
            ("/", ".", vec!["", ""]),
            ("$SYS/broker", "$SYS.broker", vec!["$SYS", "broker"]),
            ("a.b.c", "a/b/c", vec!["a/b/c"]),
        ] {
            let subject = t(topic);
            assert_eq!(subject.as_str(), canonical, "{topic}");
            assert_eq!(toks(&subject), tokens, "{topic}");
            assert_eq!(subject.to_mqtt_topic(), topic);
        }
    }

    #[test]
    fn mqtt_topic_rejections() {
        // [MQTT-4.7.3-1], [MQTT-3.3.2-2], [MQTT-4.7.3-2]
        assert_eq!(Subject::from_mqtt_topic(""), Err(SubjectError::Empty));
        assert_eq!(Subject::from_mqtt_topic("a/+"), Err(SubjectError::Wildcard));
        assert_eq!(Subject::from_mqtt_topic("a/#"), Err(SubjectError::Wildcard));
        assert_eq!(Subject::from_mqtt_topic("a#b"), Err(SubjectError::Wildcard));
        assert_eq!(Subject::from_mqtt_topic("a\0b"), Err(SubjectError::Nul));
    }

    #[test]
    fn is_dollar() {
        assert!(t("$SYS/x").is_dollar());
        assert!(!t("a/$SYS").is_dollar());
        assert!(!t("/$x").is_dollar());
    }

    #[test]
    fn mqtt_filter_parsing() {
        let f = Filter::mqtt("a/+/#").unwrap();
        assert_eq!(f.dialect(), Dialect::Mqtt);
        assert_eq!(
            f.tokens(),
            [
                FilterToken::Literal("a".into()),
                FilterToken::One,
                FilterToken::Rest
            ]
        );
        assert_eq!(Filter::mqtt("#").unwrap().tokens(), [FilterToken::Rest]);
        assert_eq!(
            Filter::mqtt("a.b/c").unwrap().tokens()[0],
            FilterToken::Literal("a/b".into())
        );
        assert_eq!(Filter::mqtt("").unwrap_err(), FilterError::Empty);
        assert_eq!(Filter::mqtt("a/b#").unwrap_err(), FilterError::Wildcard);
        assert_eq!(Filter::mqtt("a+/b").unwrap_err(), FilterError::Wildcard);
        assert_eq!(Filter::mqtt("#/a").unwrap_err(), FilterError::RestNotLast);
        assert_eq!(Filter::mqtt("a\0").unwrap_err(), FilterError::Nul);
        assert!(Filter::mqtt("/").is_ok());
        assert!(Filter::mqtt("+/+").is_ok());
    }

    #[test]
    fn nats_filter_parsing() {
        let f = Filter::nats("a.*.>").unwrap();
        assert_eq!(f.dialect(), Dialect::Nats);
        assert_eq!(
            f.tokens(),
            [
                FilterToken::Literal("a".into()),
                FilterToken::One,
                FilterToken::Rest
            ]
        );
        assert_eq!(Filter::nats("").unwrap_err(), FilterError::Empty);
        assert_eq!(Filter::nats("a..b").unwrap_err(), FilterError::EmptyToken);
        assert_eq!(Filter::nats(".a").unwrap_err(), FilterError::EmptyToken);
        assert_eq!(Filter::nats("a.").unwrap_err(), FilterError::EmptyToken);
        assert_eq!(Filter::nats("a b").unwrap_err(), FilterError::Whitespace);
        assert_eq!(Filter::nats("a\t").unwrap_err(), FilterError::Whitespace);
        assert_eq!(Filter::nats(">.a").unwrap_err(), FilterError::RestNotLast);
        assert_eq!(
            Filter::nats("a*.b").unwrap().tokens()[0],
            FilterToken::Literal("a*".into())
        );
    }

    #[test]
    fn amqp_pattern_parsing() {
        let f = Filter::amqp_topic("a.*.#").unwrap();
        assert_eq!(f.dialect(), Dialect::AmqpTopic);
        assert_eq!(
            f.tokens(),
            [
                FilterToken::Literal("a".into()),
                FilterToken::One,
                FilterToken::Rest
            ]
        );
        assert_eq!(Filter::amqp_topic("").unwrap().tokens(), []);
        assert_eq!(
            Filter::amqp_topic("#.#.a").unwrap(),
            Filter::amqp_topic("#.a").unwrap()
        );
        assert_eq!(
            Filter::amqp_topic("a..b").unwrap().tokens()[1],
            FilterToken::Literal("".into())
        );
        assert!(Filter::amqp_topic("#.b.#").is_ok());
    }

    #[test]
    fn mqtt_matching() {
        let m = |f: &str, topic: &str| Filter::mqtt(f).unwrap().matches(&t(topic));
        assert!(m("a/b", "a/b"));
        assert!(!m("a/b", "a/b/c"));
        assert!(!m("a/b", "a"));
        // '+' is exactly one level, possibly empty.
        assert!(m("a/+", "a/b"));
        assert!(m("a/+", "a/"));
        assert!(!m("a/+", "a"));
        assert!(!m("a/+", "a/b/c"));
        assert!(m("+/+", "/a"));
        assert!(m("a/+/c", "a//c"));
        // '#' is zero or more levels, including the parent.
        assert!(m("a/#", "a"));
        assert!(m("a/#", "a/b"));
        assert!(m("a/#", "a/b/c"));
        assert!(!m("a/#", "b"));
        assert!(!m("a/#", "ab"));
        assert!(m("#", "a"));
        assert!(m("#", "/"));
        assert!(m("+/#", "a"));
        // A '.' inside a level is an ordinary character.
        assert!(m("a.b/+", "a.b/c"));
        assert!(!m("a/+", "a.b"));
        assert!(m("+", "a.b"));
    }

    #[test]
    fn mqtt_dollar_rule() {
        // [MQTT-4.7.2-1]
        let m = |f: &str, topic: &str| Filter::mqtt(f).unwrap().matches(&t(topic));
        assert!(!m("#", "$SYS/x"));
        assert!(!m("+/x", "$SYS/x"));
        assert!(!m("+", "$SYS"));
        assert!(m("$SYS/#", "$SYS/x"));
        assert!(m("$SYS/+", "$SYS/x"));
        assert!(m("a/#", "a/$x"));
        assert!(m("+/$x", "a/$x"));
        assert!(m("#", "a$"));
    }

    #[test]
    fn nats_matching() {
        let m = |f: &str, subject: &str| Filter::nats(f).unwrap().matches(&s(subject));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.b.c"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("a.*.c", "a.b.c"));
        // '>' is one or more tokens.
        assert!(!m("a.>", "a"));
        assert!(m("a.>", "a.b"));
        assert!(m("a.>", "a.b.c"));
        assert!(m(">", "a"));
        assert!(m("*.>", "a.b"));
        assert!(!m("*.>", "a"));
        // No $ rule.
        assert!(m(">", "$SYS.x"));
        assert!(m("*.x", "$SYS.x"));
        // '/' is an ordinary character (an MQTT '.' inside a level).
        assert!(m("a/b.*", "a/b.c"));
    }

    #[test]
    fn amqp_matching() {
        let m = |f: &str, subject: &str| Filter::amqp_topic(f).unwrap().matches(&s(subject));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a"));
        assert!(!m("a.*", "a.b.c"));
        // '#' is zero or more words, anywhere.
        assert!(m("#", "a"));
        assert!(m("#", "a.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#.b", "b"));
        assert!(m("#.b", "a.b"));
        assert!(m("#.b", "x.y.b"));
        assert!(!m("#.b", "b.a"));
        assert!(m("a.#.c", "a.c"));
        assert!(m("a.#.c", "a.x.y.c"));
        assert!(!m("a.#.c", "a.x.y"));
        assert!(m("#.a.#", "x.a.y"));
        assert!(m("#.a.#", "a"));
        assert!(m("*.#", "a"));
        assert!(m("*.#", "$"));
        assert!(m("*.#.*", "a.b"));
        assert!(!m("*.#.*", "a"));
        // No $ rule.
        assert!(m("#", "$SYS.x"));
        assert!(m("*.x", "$SYS.x"));
        // The empty pattern is zero words: only the empty subject.
        assert!(Filter::amqp_topic("").unwrap().matches(&Subject::default()));
        assert!(!m("", "a"));
        assert!(Filter::amqp_topic("#")
            .unwrap()
            .matches(&Subject::default()));
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(Filter::mqtt("a.b/+/#").unwrap().canonical(), "mqtt:a.b/+/#");
        assert_eq!(Filter::nats("a.*.>").unwrap().canonical(), "nats:a.*.>");
        assert_eq!(
            Filter::amqp_topic("a.*.#").unwrap().to_string(),
            "amqp:a.*.#"
        );
        assert_eq!(Filter::amqp_topic("").unwrap().canonical(), "amqp:");
        assert_ne!(
            Filter::mqtt("a/*").unwrap().canonical(),
            Filter::mqtt("a/+").unwrap().canonical()
        );
        for f in [
            Filter::mqtt("a.b/+/#").unwrap(),
            Filter::mqtt("$SYS/#").unwrap(),
            Filter::nats("a.*.>").unwrap(),
            Filter::amqp_topic("a.#.b").unwrap(),
            Filter::amqp_topic("").unwrap(),
        ] {
            assert_eq!(Filter::from_canonical(&f.canonical()).unwrap(), f);
        }
        assert!(Filter::from_canonical("a/b").is_err());
    }

    #[test]
    fn literal_prefix() {
        assert_eq!(
            Filter::mqtt("a.b/c/+/d").unwrap().literal_prefix(),
            ("a/b.c".to_owned(), false)
        );
        assert_eq!(
            Filter::nats("a.b").unwrap().literal_prefix(),
            ("a.b".to_owned(), true)
        );
        assert_eq!(
            Filter::mqtt("#").unwrap().literal_prefix(),
            (String::new(), false)
        );
    }

    #[test]
    fn depth_is_capped_at_max_tokens() {
        let deep = vec!["a"; MAX_TOKENS].join("/");
        assert!(Subject::from_mqtt_topic(&deep).is_ok());
        assert!(Filter::mqtt(&deep).is_ok());
        let deeper = format!("{deep}/a");
        assert_eq!(
            Subject::from_mqtt_topic(&deeper),
            Err(SubjectError::TooDeep)
        );
        assert_eq!(Filter::mqtt(&deeper), Err(FilterError::TooDeep));
        assert_eq!(Filter::mqtt(&"/".repeat(65_534)), Err(FilterError::TooDeep));
        assert_eq!(
            Subject::new(&".".repeat(MAX_TOKENS)),
            Err(SubjectError::TooDeep)
        );
        assert_eq!(
            Filter::nats(&deeper.replace('/', ".")),
            Err(FilterError::TooDeep)
        );
        assert_eq!(
            Filter::amqp_topic(&deeper.replace('/', ".")),
            Err(FilterError::TooDeep)
        );
    }

    #[test]
    fn linear_matching_agrees_with_the_general_matcher() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let words = ["a", "b", "", "$x"];
        for _ in 0..5000 {
            let len = (next() % 4) as usize + 1;
            let subject: Vec<&str> = (0..len).map(|_| words[(next() % 4) as usize]).collect();
            let Ok(subject) = Subject::from_mqtt_topic(&subject.join("/")) else {
                continue;
            };
            let flen = (next() % 4) as usize + 1;
            let mut levels: Vec<&str> = (0..flen)
                .map(|_| ["a", "b", "", "+"][(next() % 4) as usize])
                .collect();
            if next() % 2 == 0 {
                levels.push("#");
            }
            let Ok(mqtt) = Filter::mqtt(&levels.join("/")) else {
                continue;
            };
            let linear = mqtt.matches_linear(&subject).unwrap();
            assert_eq!(linear, mqtt.matches_anywhere(&subject), "{mqtt} {subject}");
            if let Ok(nats) = Filter::nats(&levels.join(".").replace('+', "*").replace('#', ">")) {
                let linear = nats.matches_linear(&subject).unwrap();
                assert_eq!(linear, nats.matches_anywhere(&subject), "{nats} {subject}");
            }
        }
    }
}
