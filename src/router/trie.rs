//! The subscription index: a token trie over filters of every dialect.
//!
//! Owns: storing values under filters, each by a key unique within its filter (a
//! session, a group name), and finding, for one subject, every value whose filter
//! matches — agreeing exactly with [`Filter::matches`], each value visited at most
//! once per call. Finding or removing one value by its key does not scan the others
//! under the same filter (a filter shared by 100,000 sessions is common: `#`, a
//! fan-out topic), and the caller holds the index lock meanwhile.
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
use std::hash::Hash;
use std::marker::PhantomData;

use super::subject::{Dialect, Filter, FilterToken, Subject};

/// Subject tokens held on the stack while matching; longer subjects spill to a Vec.
const STACK_TOKENS: usize = 32;
/// A node's values get a hash index by key beyond this many (below, a scan of the
/// list is as fast and costs no memory); it is dropped again below half of it.
const INDEX_FROM: usize = 8;

type FastHash = foldhash::fast::RandomState;
/// Where each (dialect, key) is in a node's list.
type Positions<K> = HashMap<(Dialect, K), usize, FastHash>;

/// Values of type `T` stored under filters by keys of type `K`.
pub struct Trie<K, T> {
    root: Node<K, T>,
    len: usize,
}

struct Node<K, T> {
    /// foldhash: a seeded hash several times cheaper than SipHash on short tokens;
    /// every publish hashes each of its subject's tokens here.
    literal: HashMap<Box<str>, Node<K, T>, FastHash>,
    one: Option<Box<Node<K, T>>>,
    /// MQTT `#` and AMQP `#`: zero or more tokens.
    rest_zero: Option<Box<Node<K, T>>>,
    /// NATS `>`: one or more tokens.
    rest_one: Option<Box<Node<K, T>>>,
    values: Values<K, T>,
}

struct Stored<K, T> {
    key: K,
    value: T,
    dialect: Dialect,
    /// MQTT filter starting with a wildcard: never matches a `$` subject.
    skips_dollar: bool,
}

/// The values stored under one filter token path: a list (matching walks it), and
/// past [`INDEX_FROM`] entries an index from (dialect, key) to list position.
/// Dialects share nodes (MQTT `a/b` and NATS `a.b`), so the dialect is part of
/// the key: an MQTT `$share` group and a NATS queue group may share a name.
struct Values<K, T> {
    list: Vec<Stored<K, T>>,
    index: Option<Box<Positions<K>>>,
}

impl<K: Clone + Eq + Hash, T> Values<K, T> {
    fn position(&self, dialect: Dialect, key: &K) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&(dialect, key.clone())).copied(),
            None => self
                .list
                .iter()
                .position(|s| s.dialect == dialect && s.key == *key),
        }
    }

    fn push(&mut self, stored: Stored<K, T>) {
        if let Some(index) = &mut self.index {
            index.insert((stored.dialect, stored.key.clone()), self.list.len());
        }
        self.list.push(stored);
        if self.index.is_none() && self.list.len() > INDEX_FROM {
            let index = self
                .list
                .iter()
                .enumerate()
                .map(|(i, s)| ((s.dialect, s.key.clone()), i))
                .collect();
            self.index = Some(Box::new(index));
        }
    }

    /// Removes the value at `i`; the last one takes its place.
    fn remove(&mut self, i: usize) -> T {
        let Stored {
            key,
            value,
            dialect,
            ..
        } = self.list.swap_remove(i);
        if let Some(index) = &mut self.index {
            index.remove(&(dialect, key));
            if let Some(moved) = self.list.get(i) {
                index.insert((moved.dialect, moved.key.clone()), i);
            }
            if self.list.len() < INDEX_FROM / 2 {
                self.index = None;
            }
        }
        value
    }
}

impl<K, T> Default for Node<K, T> {
    fn default() -> Self {
        Node {
            literal: HashMap::default(),
            one: None,
            rest_zero: None,
            rest_one: None,
            values: Values {
                list: Vec::new(),
                index: None,
            },
        }
    }
}

impl<K, T> Node<K, T> {
    fn has_children(&self) -> bool {
        !self.literal.is_empty()
            || self.one.is_some()
            || self.rest_zero.is_some()
            || self.rest_one.is_some()
    }

    fn is_empty(&self) -> bool {
        self.values.list.is_empty() && !self.has_children()
    }

    /// The wildcard child slot a `Rest` token of `dialect` lives in.
    fn rest_slot(&mut self, dialect: Dialect) -> &mut Option<Box<Node<K, T>>> {
        match dialect {
            Dialect::Nats => &mut self.rest_one,
            Dialect::Mqtt | Dialect::AmqpTopic => &mut self.rest_zero,
        }
    }

    fn rest_ref(&self, dialect: Dialect) -> Option<&Node<K, T>> {
        match dialect {
            Dialect::Nats => self.rest_one.as_deref(),
            Dialect::Mqtt | Dialect::AmqpTopic => self.rest_zero.as_deref(),
        }
    }
}

impl<K, T> Default for Trie<K, T> {
    fn default() -> Self {
        Trie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<K, T> fmt::Debug for Trie<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trie")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<K: Clone + Eq + Hash, T> Trie<K, T> {
    /// Stores `value` under `filter` by `key`; returns the value it replaces, if
    /// one was stored under the same filter by the same key.
    pub fn insert(&mut self, filter: &Filter, key: K, value: T) -> Option<T> {
        let dialect = filter.dialect();
        let mut node = &mut self.root;
        for token in filter.tokens() {
            node = match token {
                FilterToken::Literal(l) => node.literal.entry(l.clone()).or_default(),
                FilterToken::One => node.one.get_or_insert_with(Box::default),
                FilterToken::Rest => node.rest_slot(dialect).get_or_insert_with(Box::default),
            };
        }
        if let Some(i) = node.values.position(dialect, &key) {
            return Some(std::mem::replace(&mut node.values.list[i].value, value));
        }
        node.values.push(Stored {
            key,
            value,
            dialect,
            skips_dollar: filter.skips_dollar(),
        });
        self.len += 1;
        None
    }

    /// Removes and returns the value stored under exactly `filter` (same tokens,
    /// same dialect) by `key`; prunes nodes left empty.
    pub fn remove(&mut self, filter: &Filter, key: &K) -> Option<T> {
        let removed = remove_at(&mut self.root, filter.tokens(), filter.dialect(), key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The value stored under exactly `filter` by `key`.
    pub fn find_mut(&mut self, filter: &Filter, key: &K) -> Option<&mut T> {
        let dialect = filter.dialect();
        let mut node = &mut self.root;
        for token in filter.tokens() {
            node = match token {
                FilterToken::Literal(l) => node.literal.get_mut(&**l)?,
                FilterToken::One => node.one.as_deref_mut()?,
                FilterToken::Rest => node.rest_slot(dialect).as_deref_mut()?,
            };
        }
        let i = node.values.position(dialect, key)?;
        Some(&mut node.values.list[i].value)
    }

    /// The value stored under exactly `filter` by `key`.
    pub fn find(&self, filter: &Filter, key: &K) -> Option<&T> {
        let dialect = filter.dialect();
        let mut node = &self.root;
        for token in filter.tokens() {
            node = match token {
                FilterToken::Literal(l) => node.literal.get(&**l)?,
                FilterToken::One => node.one.as_deref()?,
                FilterToken::Rest => node.rest_ref(dialect)?,
            };
        }
        let i = node.values.position(dialect, key)?;
        Some(&node.values.list[i].value)
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

fn remove_at<K: Clone + Eq + Hash, T>(
    node: &mut Node<K, T>,
    tokens: &[FilterToken],
    dialect: Dialect,
    key: &K,
) -> Option<T> {
    let Some((token, rest)) = tokens.split_first() else {
        let i = node.values.position(dialect, key)?;
        return Some(node.values.remove(i));
    };
    match token {
        FilterToken::Literal(l) => {
            let child = node.literal.get_mut(&**l)?;
            let removed = remove_at(child, rest, dialect, key);
            if removed.is_some() && child.is_empty() {
                node.literal.remove(&**l);
            }
            removed
        }
        FilterToken::One => remove_in_slot(&mut node.one, rest, dialect, key),
        FilterToken::Rest => remove_in_slot(node.rest_slot(dialect), rest, dialect, key),
    }
}

fn remove_in_slot<K: Clone + Eq + Hash, T>(
    slot: &mut Option<Box<Node<K, T>>>,
    tokens: &[FilterToken],
    dialect: Dialect,
    key: &K,
) -> Option<T> {
    let child = slot.as_deref_mut()?;
    let removed = remove_at(child, tokens, dialect, key);
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

struct Matcher<'t, 'a, K, T, F> {
    tokens: &'t [&'t str],
    dollar: bool,
    visit: &'t mut F,
    /// `None` until a path can reach a node twice: until then every node is reached
    /// at most once, so nothing needs remembering.
    seen: Option<Seen>,
    /// The trie's nodes, borrowed for `'a`.
    nodes: PhantomData<&'a Node<K, T>>,
}

fn addr<K, T>(node: &Node<K, T>) -> usize {
    node as *const Node<K, T> as usize
}

impl<'a, K, T, F: FnMut(&'a T)> Matcher<'_, 'a, K, T, F> {
    /// At `node` having consumed `tokens[..pos]`.
    fn at(&mut self, node: &'a Node<K, T>, pos: usize) {
        if pos == self.tokens.len() {
            self.emit(node);
        }
        self.descend(node, pos);
    }

    /// Follows `node`'s children from position `pos`.
    fn descend(&mut self, node: &'a Node<K, T>, pos: usize) {
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
    fn emit(&mut self, node: &'a Node<K, T>) {
        if node.values.list.is_empty() {
            return;
        }
        if let Some(seen) = &mut self.seen {
            if !seen.emitted.insert(addr(node)) {
                return;
            }
        }
        for stored in &node.values.list {
            if !(self.dollar && stored.skips_dollar) {
                (self.visit)(&stored.value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(trie: &Trie<u32, u32>, subject: &str) -> Vec<u32> {
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
        trie.insert(&Filter::mqtt("a/b").unwrap(), 1, 1);
        trie.insert(&Filter::mqtt("a/+").unwrap(), 2, 2);
        trie.insert(&Filter::mqtt("a/#").unwrap(), 3, 3);
        trie.insert(&Filter::nats("a.>").unwrap(), 4, 4);
        trie.insert(&Filter::amqp_topic("#.b").unwrap(), 5, 5);
        assert_eq!(trie.len(), 5);
        assert_eq!(matches(&trie, "a.b"), [1, 2, 3, 4, 5]);
        assert_eq!(matches(&trie, "a"), [3]);
        assert_eq!(matches(&trie, "b"), [5]);
        assert_eq!(matches(&trie, "a.c.d"), [3, 4]);

        // Removal is by exact filter, dialect included.
        assert_eq!(trie.remove(&Filter::nats("a.*").unwrap(), &2), None);
        assert_eq!(trie.remove(&Filter::mqtt("a/+").unwrap(), &9), None);
        assert_eq!(trie.remove(&Filter::mqtt("a/+").unwrap(), &2), Some(2));
        assert_eq!(trie.len(), 4);
        assert_eq!(matches(&trie, "a.b"), [1, 3, 4, 5]);
        for (f, key) in [
            (Filter::mqtt("a/b"), 1),
            (Filter::mqtt("a/#"), 3),
            (Filter::nats("a.>"), 4),
            (Filter::amqp_topic("#.b"), 5),
        ] {
            assert_eq!(trie.remove(&f.unwrap(), &key), Some(key));
        }
        assert!(trie.is_empty());
        // Pruned back to an empty root.
        assert!(trie.root.is_empty());
    }

    #[test]
    fn same_filter_keeps_several_values() {
        let mut trie = Trie::default();
        let f = Filter::nats("x.y").unwrap();
        trie.insert(&f, 1, 1);
        trie.insert(&f, 2, 2);
        assert_eq!(matches(&trie, "x.y"), [1, 2]);
        *trie.find_mut(&f, &2).unwrap() = 7;
        assert_eq!(trie.insert(&f, 1, 8), Some(1), "the same key replaces");
        assert_eq!(trie.len(), 2);
        assert_eq!(trie.remove(&f, &2), Some(7));
        assert_eq!(matches(&trie, "x.y"), [8]);
        // The same tokens in another dialect are another filter.
        let mqtt = Filter::mqtt("x/y").unwrap();
        assert!(trie.find_mut(&mqtt, &1).is_none());
        trie.insert(&mqtt, 1, 9);
        assert_eq!(matches(&trie, "x.y"), [8, 9]);
        assert_eq!(trie.find(&f, &1), Some(&8));
        assert_eq!(trie.find(&mqtt, &1), Some(&9));
    }

    #[test]
    fn many_values_under_one_filter_are_found_by_key() {
        let mut trie = Trie::default();
        let nats = Filter::nats("fan.>").unwrap();
        let mqtt = Filter::mqtt("fan/#").unwrap();
        for key in 0..200u32 {
            trie.insert(&nats, key, key);
            trie.insert(&mqtt, key, 1000 + key);
        }
        assert_eq!(trie.len(), 400);
        // Remove the odd keys in an order that moves entries around in the list.
        for key in (1..200u32).step_by(2).rev() {
            assert_eq!(trie.remove(&nats, &key), Some(key));
        }
        for key in 0..200u32 {
            let want = (key % 2 == 0).then_some(key);
            assert_eq!(trie.find(&nats, &key).copied(), want, "key {key}");
            assert_eq!(trie.find(&mqtt, &key), Some(&(1000 + key)));
        }
        let mut want: Vec<u32> = (0..200).step_by(2).chain(1000..1200).collect();
        want.sort_unstable();
        assert_eq!(matches(&trie, "fan.out"), want);
        // Back under the index threshold, then empty: lookups still right, nodes pruned.
        for key in (0..200u32).step_by(2) {
            assert_eq!(trie.remove(&nats, &key), Some(key));
            assert_eq!(trie.remove(&mqtt, &key), Some(1000 + key));
        }
        for key in (1..200u32).step_by(2) {
            assert_eq!(trie.find(&mqtt, &key), Some(&(1000 + key)));
            assert_eq!(trie.remove(&mqtt, &key), Some(1000 + key));
        }
        assert!(trie.is_empty());
        assert!(trie.root.is_empty());
    }

    #[test]
    fn dollar_rule_per_dialect() {
        let mut trie = Trie::default();
        trie.insert(&Filter::mqtt("#").unwrap(), 1, 1);
        trie.insert(&Filter::mqtt("+/x").unwrap(), 2, 2);
        trie.insert(&Filter::mqtt("$SYS/#").unwrap(), 3, 3);
        trie.insert(&Filter::nats(">").unwrap(), 4, 4);
        trie.insert(&Filter::nats("*.x").unwrap(), 5, 5);
        trie.insert(&Filter::amqp_topic("#").unwrap(), 6, 6);
        trie.insert(&Filter::amqp_topic("*.x").unwrap(), 7, 7);
        assert_eq!(matches(&trie, "$SYS.x"), [3, 4, 5, 6, 7]);
        assert_eq!(matches(&trie, "a.x"), [1, 2, 4, 5, 6, 7]);
    }

    #[test]
    fn amqp_hash_reaching_a_node_twice_visits_once() {
        let mut trie = Trie::default();
        trie.insert(&Filter::amqp_topic("#.a.#").unwrap(), 1, 1);
        trie.insert(&Filter::amqp_topic("#.a").unwrap(), 2, 2);
        trie.insert(&Filter::amqp_topic("#.*.#").unwrap(), 3, 3);
        assert_eq!(matches(&trie, "a.a.a"), [1, 2, 3]);
        assert_eq!(matches(&trie, "b"), [3]);
    }

    #[test]
    fn long_subjects_spill_to_the_heap() {
        let mut trie = Trie::default();
        trie.insert(&Filter::nats("a.>").unwrap(), 1, 1);
        trie.insert(&Filter::amqp_topic("#.z").unwrap(), 2, 2);
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

    fn assert_agrees(trie: &Trie<usize, usize>, filters: &[Option<Filter>], subject: &Subject) {
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
                    trie.insert(f, i, i);
                }
            }
            for _ in 0..200 {
                assert_agrees(&trie, &filters, &random_subject(&mut rng));
            }
            // Remove about half and check again (pruning must not lose the rest).
            for (i, slot) in filters.iter_mut().enumerate() {
                if rng.below(2) == 0 {
                    if let Some(f) = slot.take() {
                        assert_eq!(trie.remove(&f, &i), Some(i));
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
