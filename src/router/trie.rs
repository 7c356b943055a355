//! The subscription index: a token trie over filters of every dialect.
//!
//! Owns: storing values under filters and finding, for one subject, every value
//! whose filter matches — agreeing exactly with [`Filter::matches`], each value
//! visited at most once per call.
//! Refuses: knowing what the values are (sessions, groups, queues are the router's),
//! locking (the caller holds the index lock), and allocating on the common match
//! path (subject tokens go into a stack buffer; only AMQP `#` followed by more
//! tokens needs a visited set).
//!
//! Shape (nats-server's `sublist.go`, extended): each node has literal children, a
//! one-token child (`+`/`*`), a zero-or-more child (MQTT `#`, AMQP `#`) and a
//! one-or-more child (NATS `>`). Dialects share nodes where their wildcards mean the
//! same thing; each stored value remembers its dialect and whether MQTT's `$` rule
//! applies to it, so `#` (MQTT) skips `$SYS.x` while `>` (NATS) matches it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use super::subject::{Dialect, Filter, FilterToken, Subject};

/// Subject tokens held on the stack while matching; longer subjects spill to a Vec.
const STACK_TOKENS: usize = 32;

/// Values of type `T` stored under filters.
pub struct Trie<T> {
    root: Node<T>,
    len: usize,
}

struct Node<T> {
    /// foldhash: a seeded hash several times cheaper than SipHash on short tokens;
    /// every publish hashes each of its subject's tokens here.
    literal: HashMap<Box<str>, Node<T>, foldhash::fast::RandomState>,
    one: Option<Box<Node<T>>>,
    /// MQTT `#` and AMQP `#`: zero or more tokens.
    rest_zero: Option<Box<Node<T>>>,
    /// NATS `>`: one or more tokens.
    rest_one: Option<Box<Node<T>>>,
    values: Vec<Stored<T>>,
}

struct Stored<T> {
    value: T,
    dialect: Dialect,
    /// MQTT filter starting with a wildcard: never matches a `$` subject.
    skips_dollar: bool,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: HashMap::default(),
            one: None,
            rest_zero: None,
            rest_one: None,
            values: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn has_children(&self) -> bool {
        !self.literal.is_empty()
            || self.one.is_some()
            || self.rest_zero.is_some()
            || self.rest_one.is_some()
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty() && !self.has_children()
    }

    /// The wildcard child slot a `Rest` token of `dialect` lives in.
    fn rest_slot(&mut self, dialect: Dialect) -> &mut Option<Box<Node<T>>> {
        match dialect {
            Dialect::Nats => &mut self.rest_one,
            Dialect::Mqtt | Dialect::AmqpTopic => &mut self.rest_zero,
        }
    }

    fn rest_ref(&self, dialect: Dialect) -> Option<&Node<T>> {
        match dialect {
            Dialect::Nats => self.rest_one.as_deref(),
            Dialect::Mqtt | Dialect::AmqpTopic => self.rest_zero.as_deref(),
        }
    }
}

impl<T> Default for Trie<T> {
    fn default() -> Self {
        Trie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> fmt::Debug for Trie<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trie")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T> Trie<T> {
    /// Stores `value` under `filter` (after any values already there).
    pub fn insert(&mut self, filter: &Filter, value: T) {
        let dialect = filter.dialect();
        let mut node = &mut self.root;
        for token in filter.tokens() {
            node = match token {
                FilterToken::Literal(l) => node.literal.entry(l.clone()).or_default(),
                FilterToken::One => node.one.get_or_insert_with(Box::default),
                FilterToken::Rest => node.rest_slot(dialect).get_or_insert_with(Box::default),
            };
        }
        node.values.push(Stored {
            value,
            dialect,
            skips_dollar: filter.skips_dollar(),
        });
        self.len += 1;
    }

    /// Removes and returns the first value stored under exactly `filter` (same
    /// tokens, same dialect) for which `pred` is true; prunes nodes left empty.
    pub fn remove(&mut self, filter: &Filter, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let removed = remove_at(&mut self.root, filter.tokens(), filter.dialect(), &mut pred);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The first value stored under exactly `filter` for which `pred` is true.
    pub fn find_mut(
        &mut self,
        filter: &Filter,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Option<&mut T> {
        let dialect = filter.dialect();
        let mut node = &mut self.root;
        for token in filter.tokens() {
            node = match token {
                FilterToken::Literal(l) => node.literal.get_mut(&**l)?,
                FilterToken::One => node.one.as_deref_mut()?,
                FilterToken::Rest => node.rest_slot(dialect).as_deref_mut()?,
            };
        }
        node.values
            .iter_mut()
            .find(|s| s.dialect == dialect && pred(&s.value))
            .map(|s| &mut s.value)
    }

    /// The first value stored under exactly `filter` for which `pred` is true.
    pub fn find(&self, filter: &Filter, mut pred: impl FnMut(&T) -> bool) -> Option<&T> {
        let dialect = filter.dialect();
        let mut node = &self.root;
        for token in filter.tokens() {
            node = match token {
                FilterToken::Literal(l) => node.literal.get(&**l)?,
                FilterToken::One => node.one.as_deref()?,
                FilterToken::Rest => node.rest_ref(dialect)?,
            };
        }
        node.values
            .iter()
            .find(|s| s.dialect == dialect && pred(&s.value))
            .map(|s| &s.value)
    }

    /// Calls `visit` once for every value whose filter matches `subject`.
    ///
    /// The values are borrowed for as long as the trie is, so a caller may collect
    /// them (the router gathers one session's matches before dispatching).
    pub fn for_each_match<'a>(&'a self, subject: &Subject, mut visit: impl FnMut(&'a T)) {
        let mut stack = [""; STACK_TOKENS];
        let heap: Vec<&str>;
        let mut n = 0;
        let mut spilled = false;
        for token in subject.tokens() {
            if n == STACK_TOKENS {
                spilled = true;
                break;
            }
            stack[n] = token;
            n += 1;
        }
        let tokens: &[&str] = if spilled {
            heap = subject.tokens().collect();
            &heap
        } else {
            &stack[..n]
        };
        let mut matcher = Matcher {
            tokens,
            dollar: subject.is_dollar(),
            visit: &mut visit,
            seen: None,
            nodes: PhantomData,
        };
        matcher.at(&self.root, 0);
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn remove_at<T>(
    node: &mut Node<T>,
    tokens: &[FilterToken],
    dialect: Dialect,
    pred: &mut impl FnMut(&T) -> bool,
) -> Option<T> {
    let Some((token, rest)) = tokens.split_first() else {
        let i = node
            .values
            .iter()
            .position(|s| s.dialect == dialect && pred(&s.value))?;
        return Some(node.values.remove(i).value);
    };
    match token {
        FilterToken::Literal(l) => {
            let child = node.literal.get_mut(&**l)?;
            let removed = remove_at(child, rest, dialect, pred);
            if removed.is_some() && child.is_empty() {
                node.literal.remove(&**l);
            }
            removed
        }
        FilterToken::One => remove_in_slot(&mut node.one, rest, dialect, pred),
        FilterToken::Rest => remove_in_slot(node.rest_slot(dialect), rest, dialect, pred),
    }
}

fn remove_in_slot<T>(
    slot: &mut Option<Box<Node<T>>>,
    tokens: &[FilterToken],
    dialect: Dialect,
    pred: &mut impl FnMut(&T) -> bool,
) -> Option<T> {
    let child = slot.as_deref_mut()?;
    let removed = remove_at(child, tokens, dialect, pred);
    if removed.is_some() && child.is_empty() {
        *slot = None;
    }
    removed
}

/// Where AMQP `#` with tokens after it makes several paths reach one node.
#[derive(Default)]
struct Seen {
    /// Nodes whose values were visited.
    emitted: HashSet<usize>,
    /// (node, subject position) pairs already explored.
    explored: HashSet<(usize, usize)>,
}

struct Matcher<'t, 'a, T, F> {
    tokens: &'t [&'t str],
    dollar: bool,
    visit: &'t mut F,
    /// `None` until a path can reach a node twice: until then every node is reached
    /// at most once, so nothing needs remembering.
    seen: Option<Seen>,
    /// The trie's nodes, borrowed for `'a`.
    nodes: PhantomData<&'a T>,
}

fn addr<T>(node: &Node<T>) -> usize {
    node as *const Node<T> as usize
}

impl<'a, T, F: FnMut(&'a T)> Matcher<'_, 'a, T, F> {
    /// At `node` having consumed `tokens[..pos]`.
    fn at(&mut self, node: &'a Node<T>, pos: usize) {
        if pos == self.tokens.len() {
            self.emit(node);
        }
        self.descend(node, pos);
    }

    /// Follows `node`'s children from position `pos`.
    fn descend(&mut self, node: &'a Node<T>, pos: usize) {
        if let Some(seen) = &mut self.seen {
            if !seen.explored.insert((addr(node), pos)) {
                return;
            }
        }
        let len = self.tokens.len();
        if let Some(rest) = node.rest_zero.as_deref() {
            // `#` swallows everything that is left…
            self.emit(rest);
            if rest.has_children() {
                // …or any number of tokens before its children take over (AMQP).
                self.seen.get_or_insert_with(Seen::default);
                for i in pos..=len {
                    self.descend(rest, i);
                }
            }
        }
        if pos < len {
            if let Some(rest) = node.rest_one.as_deref() {
                self.emit(rest);
            }
            if let Some(child) = node.literal.get(self.tokens[pos]) {
                self.at(child, pos + 1);
            }
            if let Some(one) = node.one.as_deref() {
                self.at(one, pos + 1);
            }
        }
    }

    /// Visits the values stored at `node`, once per call of `for_each_match`.
    fn emit(&mut self, node: &'a Node<T>) {
        if node.values.is_empty() {
            return;
        }
        if let Some(seen) = &mut self.seen {
            if !seen.emitted.insert(addr(node)) {
                return;
            }
        }
        for stored in &node.values {
            if !(self.dollar && stored.skips_dollar) {
                (self.visit)(&stored.value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(trie: &Trie<u32>, subject: &str) -> Vec<u32> {
        let subject = Subject::new(subject).unwrap();
        let mut out = Vec::new();
        trie.for_each_match(&subject, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn insert_match_remove() {
        let mut trie = Trie::default();
        assert!(trie.is_empty());
        trie.insert(&Filter::mqtt("a/b").unwrap(), 1);
        trie.insert(&Filter::mqtt("a/+").unwrap(), 2);
        trie.insert(&Filter::mqtt("a/#").unwrap(), 3);
        trie.insert(&Filter::nats("a.>").unwrap(), 4);
        trie.insert(&Filter::amqp_topic("#.b").unwrap(), 5);
        assert_eq!(trie.len(), 5);
        assert_eq!(matches(&trie, "a.b"), [1, 2, 3, 4, 5]);
        assert_eq!(matches(&trie, "a"), [3]);
        assert_eq!(matches(&trie, "b"), [5]);
        assert_eq!(matches(&trie, "a.c.d"), [3, 4]);

        // Removal is by exact filter, dialect included.
        assert_eq!(trie.remove(&Filter::nats("a.*").unwrap(), |_| true), None);
        assert_eq!(
            trie.remove(&Filter::mqtt("a/+").unwrap(), |v| *v == 9),
            None
        );
        assert_eq!(
            trie.remove(&Filter::mqtt("a/+").unwrap(), |_| true),
            Some(2)
        );
        assert_eq!(trie.len(), 4);
        assert_eq!(matches(&trie, "a.b"), [1, 3, 4, 5]);
        for f in [
            Filter::mqtt("a/b"),
            Filter::mqtt("a/#"),
            Filter::nats("a.>"),
            Filter::amqp_topic("#.b"),
        ] {
            assert!(trie.remove(&f.unwrap(), |_| true).is_some());
        }
        assert!(trie.is_empty());
        // Pruned back to an empty root.
        assert!(trie.root.is_empty());
    }

    #[test]
    fn same_filter_keeps_several_values() {
        let mut trie = Trie::default();
        let f = Filter::nats("x.y").unwrap();
        trie.insert(&f, 1);
        trie.insert(&f, 2);
        assert_eq!(matches(&trie, "x.y"), [1, 2]);
        *trie.find_mut(&f, |v| *v == 2).unwrap() = 7;
        assert_eq!(trie.remove(&f, |v| *v == 7), Some(7));
        assert_eq!(matches(&trie, "x.y"), [1]);
        assert!(trie
            .find_mut(&Filter::mqtt("x/y").unwrap(), |_| true)
            .is_none());
    }

    #[test]
    fn dollar_rule_per_dialect() {
        let mut trie = Trie::default();
        trie.insert(&Filter::mqtt("#").unwrap(), 1);
        trie.insert(&Filter::mqtt("+/x").unwrap(), 2);
        trie.insert(&Filter::mqtt("$SYS/#").unwrap(), 3);
        trie.insert(&Filter::nats(">").unwrap(), 4);
        trie.insert(&Filter::nats("*.x").unwrap(), 5);
        trie.insert(&Filter::amqp_topic("#").unwrap(), 6);
        trie.insert(&Filter::amqp_topic("*.x").unwrap(), 7);
        assert_eq!(matches(&trie, "$SYS.x"), [3, 4, 5, 6, 7]);
        assert_eq!(matches(&trie, "a.x"), [1, 2, 4, 5, 6, 7]);
    }

    #[test]
    fn amqp_hash_reaching_a_node_twice_visits_once() {
        let mut trie = Trie::default();
        trie.insert(&Filter::amqp_topic("#.a.#").unwrap(), 1);
        trie.insert(&Filter::amqp_topic("#.a").unwrap(), 2);
        trie.insert(&Filter::amqp_topic("#.*.#").unwrap(), 3);
        assert_eq!(matches(&trie, "a.a.a"), [1, 2, 3]);
        assert_eq!(matches(&trie, "b"), [3]);
    }

    #[test]
    fn long_subjects_spill_to_the_heap() {
        let mut trie = Trie::default();
        trie.insert(&Filter::nats("a.>").unwrap(), 1);
        trie.insert(&Filter::amqp_topic("#.z").unwrap(), 2);
        let long = format!("a.{}z", "b.".repeat(40));
        assert_eq!(matches(&trie, &long), [1, 2]);
    }

    /// A small deterministic PRNG (xorshift64*), so the property test needs no seed
    /// management and always runs the same cases.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
    }

    const WORDS: [&str; 5] = ["a", "b", "$x", "", "c/d"];

    fn random_filter(rng: &mut Rng) -> Option<Filter> {
        let len = rng.below(5);
        let dialect = rng.below(3);
        let mut parts = Vec::new();
        for _ in 0..len {
            let pick = rng.below(WORDS.len() + 2);
            parts.push(match (pick, dialect) {
                (p, 0) if p < WORDS.len() => WORDS[p].replace('/', "."),
                (p, _) if p < WORDS.len() => WORDS[p].to_owned(),
                (p, 0) if p == WORDS.len() => "+".to_owned(),
                (_, 0) => "#".to_owned(),
                (p, _) if p == WORDS.len() => "*".to_owned(),
                (_, 1) => ">".to_owned(),
                _ => "#".to_owned(),
            });
        }
        match dialect {
            0 => Filter::mqtt(&parts.join("/")).ok(),
            1 => Filter::nats(&parts.join(".")).ok(),
            _ => Filter::amqp_topic(&parts.join(".")).ok(),
        }
    }

    fn random_subject(rng: &mut Rng) -> Subject {
        let len = rng.below(6);
        let words: Vec<&str> = (0..len).map(|_| WORDS[rng.below(WORDS.len())]).collect();
        Subject::new(&words.join(".")).unwrap_or_default()
    }

    fn assert_agrees(trie: &Trie<usize>, filters: &[Option<Filter>], subject: &Subject) {
        let mut got = Vec::new();
        trie.for_each_match(subject, |v| got.push(*v));
        let visited = got.len();
        got.sort_unstable();
        got.dedup();
        assert_eq!(visited, got.len(), "a value visited twice for {subject:?}");
        let want: Vec<usize> = filters
            .iter()
            .enumerate()
            .filter(|(_, f)| f.as_ref().is_some_and(|f| f.matches(subject)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(got, want, "subject {subject:?}");
    }

    #[test]
    fn trie_agrees_with_filter_matches() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _round in 0..20 {
            let mut filters: Vec<Option<Filter>> =
                (0..80).map(|_| random_filter(&mut rng)).collect();
            let mut trie = Trie::default();
            for (i, f) in filters.iter().enumerate() {
                if let Some(f) = f {
                    trie.insert(f, i);
                }
            }
            for _ in 0..200 {
                assert_agrees(&trie, &filters, &random_subject(&mut rng));
            }
            // Remove about half and check again (pruning must not lose the rest).
            for (i, slot) in filters.iter_mut().enumerate() {
                if rng.below(2) == 0 {
                    if let Some(f) = slot.take() {
                        assert_eq!(trie.remove(&f, |v| *v == i), Some(i));
                    }
                }
            }
            assert_eq!(trie.len(), filters.iter().filter(|f| f.is_some()).count());
            for _ in 0..200 {
                assert_agrees(&trie, &filters, &random_subject(&mut rng));
            }
        }
    }
}
