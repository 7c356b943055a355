//! Subject trie: matching one subject against 10,000 subscribed filters, and one
//! session subscribing and unsubscribing among 10,000 that share its filter.

use criterion::{criterion_group, criterion_main, Criterion};
use dwbroker::router::{Filter, Subject, Trie};

fn filters() -> Vec<Filter> {
    let mut out = Vec::with_capacity(10_000);
    for building in 0..100 {
        for sensor in 0..97 {
            out.push(Filter::mqtt(&format!("site/b{building}/s{sensor}/temp")).expect("valid"));
        }
        out.push(Filter::mqtt(&format!("site/b{building}/+/temp")).expect("valid"));
        out.push(Filter::mqtt(&format!("site/b{building}/#")).expect("valid"));
        out.push(Filter::nats(&format!("site.b{building}.*.>")).expect("valid"));
    }
    out
}

fn bench(c: &mut Criterion) {
    let filters = filters();
    let mut trie = Trie::default();
    for (i, f) in filters.iter().enumerate() {
        trie.insert(f, i, i);
    }
    assert_eq!(trie.len(), 10_000);
    let hit = Subject::from_mqtt_topic("site/b42/s17/temp").expect("valid");
    let miss = Subject::from_mqtt_topic("other/b42/s17/temp").expect("valid");
    c.bench_function("trie_match_10k_filters_hit", |b| {
        b.iter(|| {
            let mut n = 0usize;
            trie.for_each_match(&hit, |_| n += 1);
            assert_eq!(n, 4);
            n
        })
    });
    c.bench_function("trie_match_10k_filters_miss", |b| {
        b.iter(|| {
            let mut n = 0usize;
            trie.for_each_match(&miss, |_| n += 1);
            n
        })
    });
    let shared = Filter::mqtt("fleet/#").expect("valid");
    let mut fleet = Trie::default();
    for i in 0..10_000usize {
        fleet.insert(&shared, i, i);
    }
    c.bench_function("trie_unsubscribe_subscribe_among_10k_on_one_filter", |b| {
        b.iter(|| {
            assert_eq!(fleet.remove(&shared, &5_000), Some(5_000));
            fleet.insert(&shared, 5_000, 5_000)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
