use std::time::Duration;

use bytes::Bytes;

use super::config::{AckPolicy, ConsumerConfig, Discard, Retention, StreamConfig};
use super::consumer::AckKind;
use super::*;
use crate::router::journal::Taken;
use crate::router::{OutboxLimits, RetainedLimits, Routed, DEFAULT_VHOST_LIMITS};

fn router() -> Router {
    let limits = OutboxLimits {
        max_messages: 100,
        max_bytes: 1 << 20,
    };
    let retained = RetainedLimits {
        max_messages: 100,
        max_bytes: 1 << 20,
    };
    Router::new(limits, retained, DEFAULT_VHOST_LIMITS)
}

fn stream(name: &str, subjects: &[&str]) -> StreamConfig {
    StreamConfig {
        name: name.into(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        duplicate_window: Duration::from_secs(120),
        ..StreamConfig::default()
    }
}

fn publish(r: &Router, subject: &str, headers: &[(&str, &str)], id: Option<&str>) -> Routed {
    let msg = Message {
        subject: Subject::new(subject).unwrap(),
        payload: Bytes::from_static(b"hello"),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        message_id: id.map(str::to_owned),
        ..Message::default()
    };
    r.publish(msg, Now::current())
}

fn seq_of(routed: &Routed) -> Result<Sequenced, AppendError> {
    routed.appended[0].outcome.clone()
}

#[test]
fn publishes_on_captured_subjects_are_appended_in_order_and_deduplicated() {
    let r = router();
    r.create_stream(stream("S", &["orders.>"]), Now::current())
        .unwrap();
    assert!(publish(&r, "other", &[], None).appended.is_empty());
    assert_eq!(seq_of(&publish(&r, "orders.a", &[], None)).unwrap().seq, 1);
    let first = seq_of(&publish(&r, "orders.b", &[], Some("id-1"))).unwrap();
    let again = seq_of(&publish(&r, "orders.b", &[], Some("id-1"))).unwrap();
    assert_eq!((first.seq, first.duplicate), (2, false));
    assert_eq!((again.seq, again.duplicate), (2, true));
    let stats = r.stream("S").unwrap().stats();
    assert_eq!((stats.messages, stats.first_seq, stats.last_seq), (2, 1, 2));
    assert_eq!(stats.subjects, 2);
}

#[test]
fn overlapping_subjects_and_changed_configs_are_refused() {
    let r = router();
    let now = Now::current();
    r.create_stream(stream("A", &["a.*"]), now).unwrap();
    assert_eq!(
        r.create_stream(stream("B", &["a.>"]), now).unwrap_err(),
        StreamError::SubjectsOverlap
    );
    r.create_stream(stream("B", &["b.*", "a"]), now).unwrap();
    assert!(r.create_stream(stream("A", &["a.*"]), now).is_ok());
    assert_eq!(
        r.create_stream(stream("A", &["x"]), now).unwrap_err(),
        StreamError::NameInUse
    );
    r.delete_stream("A").unwrap();
    assert!(publish(&r, "a.x", &[], None).appended.is_empty());
}

#[test]
fn expectations_and_limits() {
    let r = router();
    let mut config = stream("S", &["s.*"]);
    config.max_msgs = Some(2);
    config.max_msgs_per_subject = Some(1);
    r.create_stream(config, Now::current()).unwrap();
    publish(&r, "s.a", &[], None);
    publish(&r, "s.a", &[], None);
    publish(&r, "s.b", &[], None);
    let s = r.stream("S").unwrap();
    assert_eq!(s.stats().messages, 2, "one per subject");
    assert!(s.get(1).is_none());
    assert_eq!(
        seq_of(&publish(&r, "s.c", &[(EXPECTED_LAST_SEQ, "2")], None)),
        Err(AppendError::WrongLastSequence(3))
    );
    assert_eq!(
        seq_of(&publish(&r, "s.c", &[(EXPECTED_STREAM, "T")], None)),
        Err(AppendError::WrongStream)
    );
    publish(&r, "s.c", &[(EXPECTED_LAST_SEQ, "3")], None);
    assert_eq!(s.stats().messages, 2, "max_msgs drops the oldest");
    assert_eq!(s.stats().first_seq, 3);

    let mut config = stream("N", &["n"]);
    config.max_msgs = Some(1);
    config.discard = Discard::New;
    r.create_stream(config, Now::current()).unwrap();
    publish(&r, "n", &[], None);
    assert_eq!(
        seq_of(&publish(&r, "n", &[], None)),
        Err(AppendError::MaxMessages)
    );
}

#[test]
fn all_streams_together_stay_within_the_byte_budget() {
    let r = router();
    r.create_stream(stream("A", &["a"]), Now::current())
        .unwrap();
    r.create_stream(stream("B", &["b"]), Now::current())
        .unwrap();
    publish(&r, "a", &[], None);
    let one = r.stream_bytes();
    assert!(one > 0);
    r.set_max_stream_bytes(one * 3);
    publish(&r, "a", &[], None);
    publish(&r, "b", &[], None);
    assert_eq!(r.stream_bytes(), one * 3);
    assert_eq!(seq_of(&publish(&r, "b", &[], None)), Err(AppendError::Full));
    // What leaves a stream (purge, delete) makes room again.
    r.stream("A").unwrap().purge(None, None, None).unwrap();
    assert_eq!(r.stream_bytes(), one);
    assert_eq!(seq_of(&publish(&r, "b", &[], None)).unwrap().seq, 2);
    r.delete_stream("B").unwrap();
    assert_eq!(r.stream_bytes(), 0);
}

#[test]
fn purge_keeps_sequence_numbers() {
    let r = router();
    r.create_stream(stream("S", &["p.*"]), Now::current())
        .unwrap();
    for subject in ["p.a", "p.b", "p.a", "p.b"] {
        publish(&r, subject, &[], None);
    }
    let s = r.stream("S").unwrap();
    let a = Filter::nats("p.a").unwrap();
    assert_eq!(s.purge(Some(&a), None, None), Ok(2));
    assert_eq!(s.purge(None, None, Some(1)), Ok(1));
    assert_eq!(s.stats().first_seq, 4);
    assert_eq!(s.purge(None, None, None), Ok(1));
    let stats = s.stats();
    assert_eq!((stats.messages, stats.first_seq, stats.last_seq), (0, 5, 4));
    assert_eq!(seq_of(&publish(&r, "p.a", &[], None)).unwrap().seq, 5);
}

#[test]
fn work_queue_messages_leave_when_acked() {
    let r = router();
    let mut config = stream("W", &["w"]);
    config.retention = Retention::WorkQueue;
    r.create_stream(config, Now::current()).unwrap();
    let s = r.stream("W").unwrap();
    let consumer = ConsumerConfig {
        name: "c".into(),
        durable: true,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        ..ConsumerConfig::default()
    };
    s.add_consumer(consumer.clone(), Now::current(), false)
        .unwrap();
    let second = ConsumerConfig {
        name: "d".into(),
        ..consumer
    };
    assert!(matches!(
        s.add_consumer(second, Now::current(), false),
        Err(StreamError::WorkQueue(_))
    ));
    publish(&r, "w", &[], None);
    publish(&r, "w", &[], None);
    let now = Instant::now();
    let got = s.deliver("c", 10, None, now);
    assert_eq!(got.len(), 2);
    assert!(s.answer("c", 1, AckKind::Ack, now));
    assert_eq!(s.stats().messages, 1);
    assert_eq!(s.consumer_info("c").unwrap().state.num_ack_pending, 1);
}

#[test]
fn a_file_stream_records_appends_and_consumer_state() {
    let journal = Arc::new(Journal::new(0));
    let r = router().with_journal(journal.clone());
    let now = Now::current();
    r.create_stream(stream("F", &["f"]), now).unwrap();
    let mut memory = stream("M", &["m"]);
    memory.storage = StorageKind::Memory;
    r.create_stream(memory, now).unwrap();
    let routed = publish(&r, "f", &[], None);
    assert!(!routed.ticket.is_empty(), "a file append waits for storage");
    assert!(publish(&r, "m", &[], None).ticket.is_empty());
    let s = r.stream("F").unwrap();
    s.add_consumer(
        ConsumerConfig {
            name: "c".into(),
            ack_wait: Duration::from_secs(30),
            ..ConsumerConfig::default()
        },
        now,
        false,
    )
    .unwrap();
    s.deliver("c", 1, None, Instant::now());
    s.answer("c", 1, AckKind::Ack, Instant::now());
    let Taken::Batch(records, _) = journal.take(Duration::from_secs(1)) else {
        panic!("records");
    };
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| match r {
            Record::StreamCreated { .. } => "created",
            Record::StreamAppended { .. } => "appended",
            Record::ConsumerCreated { .. } => "consumer",
            Record::ConsumerPending { .. } => "pending",
            Record::ConsumerPosition { .. } => "position",
            Record::ConsumerSettled { .. } => "settled",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["created", "appended", "consumer", "pending", "position", "settled", "position"]
    );
}

fn partition_of(r: &Router, name: &str, index: u32) {
    let config = StreamConfig {
        partition: Some(Partition { index, count: 3 }),
        ..stream(name, &["topic"])
    };
    r.create_stream(config, Now::current()).unwrap();
}

#[test]
fn a_partitioned_topic_takes_each_publish_into_one_partition() {
    let r = router();
    for p in 0..3 {
        partition_of(&r, &format!("topic.{p}"), p);
    }
    // A stream that is not a sibling may not overlap.
    assert_eq!(
        r.create_stream(stream("other", &["topic"]), Now::current())
            .unwrap_err(),
        StreamError::SubjectsOverlap
    );
    let into = |routed: &Routed| {
        assert_eq!(routed.appended.len(), 1);
        routed.appended[0].stream.to_string()
    };
    // Unkeyed: round robin.
    let names: Vec<String> = (0..3)
        .map(|_| into(&publish(&r, "topic", &[], None)))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["topic.0", "topic.1", "topic.2"]);
    // Keyed: Kafka's partitioner.
    let keyed = Message {
        subject: Subject::new("topic").unwrap(),
        key: Some(Bytes::from_static(b"foobar")),
        ..Message::default()
    };
    let want = format!("topic.{}", partition::for_key(b"foobar", 3));
    for _ in 0..3 {
        assert_eq!(into(&r.publish(keyed.clone(), Now::current())), want);
    }
    // Named by the publisher.
    let mut named = keyed.clone();
    named.extensions.set(
        partition::PARTITION_EXTENSION,
        partition::partition_extension(1),
    );
    assert_eq!(into(&r.publish(named, Now::current())), "topic.1");
    let counts: u64 = (0..3)
        .map(|p| r.stream(&format!("topic.{p}")).unwrap().stats().messages)
        .sum();
    assert_eq!(counts, 7);
}

#[test]
fn a_read_by_position_always_progresses_and_a_position_can_be_set() {
    let r = router();
    let s = r
        .create_stream(stream("S", &["s"]), Now::current())
        .unwrap();
    for _ in 0..5 {
        publish(&r, "s", &[], None);
    }
    let seqs = |v: Vec<StreamMessage>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(s.read(2, 2, u64::MAX)), [2, 3]);
    assert_eq!(
        seqs(s.read(4, 10, 0)),
        [4],
        "one message even past max_bytes"
    );
    assert!(s.read(6, 10, u64::MAX).is_empty());
    let group = ConsumerConfig {
        name: "g".into(),
        durable: true,
        ack_policy: AckPolicy::None,
        ..ConsumerConfig::default()
    };
    s.add_consumer(group, Now::current(), false).unwrap();
    s.set_position("g", 3).unwrap();
    let state = s.consumer_info("g").unwrap().state;
    assert_eq!(
        (state.delivered.stream_seq, state.ack_floor.stream_seq),
        (3, 3)
    );
    assert_eq!(state.num_pending, 2);
    assert_eq!(
        s.set_position("nobody", 1).unwrap_err(),
        StreamError::ConsumerNotFound
    );
}
