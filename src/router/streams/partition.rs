//! Partitioned streams: a Kafka topic of N partitions is N streams capturing the
//! same subjects, and each publish those subjects match is appended to one of them.
//!
//! Owns: which partition a message goes to (an explicit choice carried by the
//! message, else Kafka's default partitioner on its key, else round robin), and
//! Kafka's murmur2 hash, so that a key lands where a Kafka producer puts it.
//! Refuses: what a partition is to a front (the Kafka REST front maps topics and
//! offsets onto these streams).

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;

use super::super::message::Message;

/// The message extension through which a publisher names the partition (4 bytes,
/// big-endian): the Kafka REST front's produce to `/topics/{t}/partitions/{p}`.
pub const PARTITION_EXTENSION: &str = "partition";

/// Which partition of how many a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    /// Its index, from 0.
    pub index: u32,
    /// How many partitions its topic has (at least 1).
    pub count: u32,
}

/// The extension value naming partition `index`.
pub fn partition_extension(index: u32) -> Bytes {
    Bytes::copy_from_slice(&index.to_be_bytes())
}

/// Picks partitions for one publish: every partitioned stream the publish matched
/// asks it, and all asking with the same count get the same answer.
#[derive(Debug, Default)]
pub(crate) struct Chooser {
    /// The next unkeyed publish's partition (modulo the count).
    round_robin: AtomicU32,
}

impl Chooser {
    /// The partition (of `count`) that `msg` goes to; `spread` is this publish's
    /// round-robin draw, taken once so that every topic it reaches agrees.
    pub(crate) fn choose(&self, msg: &Message, count: u32, spread: &mut Option<u32>) -> u32 {
        let count = count.max(1);
        if let Some(p) = msg.extensions.get(PARTITION_EXTENSION) {
            if let Ok(bytes) = <[u8; 4]>::try_from(p.as_ref()) {
                return u32::from_be_bytes(bytes) % count;
            }
        }
        if let Some(key) = &msg.key {
            return for_key(key, count);
        }
        let draw = *spread.get_or_insert_with(|| self.round_robin.fetch_add(1, Ordering::Relaxed));
        draw % count
    }
}

/// The partition Kafka's default partitioner gives `key` among `count`.
pub fn for_key(key: &[u8], count: u32) -> u32 {
    // Kafka's toPositive: the sign bit cleared, not the absolute value.
    (murmur2(key) as u32 & 0x7fff_ffff) % count.max(1)
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // The vectors of Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn keys_spread_as_kafka_partitions_them() {
        // toPositive(-973932308) % 3
        assert_eq!(
            for_key(b"21", 3),
            (-973_932_308i32 as u32 & 0x7fff_ffff) % 3
        );
        assert_eq!(for_key(b"abc", 1), 0);
    }

    #[test]
    fn explicit_partition_first_then_key_then_round_robin() {
        let chooser = Chooser::default();
        let mut msg = Message::default();
        let mut spread = None;
        let a = chooser.choose(&msg, 4, &mut spread);
        assert_eq!(
            chooser.choose(&msg, 4, &mut spread),
            a,
            "one draw per publish"
        );
        let mut spread = None;
        assert_eq!(chooser.choose(&msg, 4, &mut spread), (a + 1) % 4);
        msg.key = Some(Bytes::from_static(b"foobar"));
        assert_eq!(chooser.choose(&msg, 4, &mut None), for_key(b"foobar", 4));
        msg.extensions
            .set(PARTITION_EXTENSION, partition_extension(2));
        assert_eq!(chooser.choose(&msg, 4, &mut None), 2);
    }
}
