//! The buffer checked against a simple model (a Vec of readings and a next seq), as
//! vector's disk buffer is: random appends, reads, acknowledgements and reopens.

mod buffer_support;

use std::sync::Arc;

use proptest::prelude::*;
use simpul_agent::Sample;
use simpul_agent::buffer::Buffer;
use simpul_protocol::{BootId, Reading, ReadingTime, SeqRange};

use buffer_support::{open_unlimited, same_reading, temp_buffer_path};

/// Sensor names, odd ones included.
const NAMES: &[&str] = &["rain", "level-1", "", "ü ñ 水位", "nul\0inside", "'; DROP TABLE readings; --"];

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<Sample>),
    /// `after` is taken modulo `next_seq + 3`.
    Read {
        after: u64,
        limit: usize,
    },
    /// The watermark is taken modulo `next_seq + 3`.
    Ack(u64),
    Reopen,
}

fn sample_strategy() -> impl Strategy<Value = Sample> {
    (0..NAMES.len(), 0..NAMES.len(), any::<f64>(), any::<i64>(), any::<bool>(), 0u8..3, any::<u64>()).prop_map(
        |(sensor, unit, value, wall_ms, synced, boot, mono_ms)| Sample {
            sensor: Arc::from(NAMES[sensor]),
            metric: Arc::from("level"),
            unit: Arc::from(NAMES[unit]),
            value,
            // Seqs, times and values are stored as SQLite integers: i64 is the range.
            time: ReadingTime { wall_ms, synced, boot_id: BootId([boot; 16]), mono_ms: mono_ms >> 1 },
        },
    )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(sample_strategy(), 0..20).prop_map(Op::Append),
        3 => (any::<u64>(), 0usize..30).prop_map(|(after, limit)| Op::Read { after, limit }),
        2 => any::<u64>().prop_map(Op::Ack),
        1 => Just(Op::Reopen),
    ]
}

/// What the buffer should hold.
#[derive(Debug, Default)]
struct Model {
    readings: Vec<Reading>,
    next_seq: u64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn appends_reads_acks_and_reopens_match_a_simple_model(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let (_dir, path) = temp_buffer_path();
        let mut buffer = open_unlimited(&path);
        let mut model = Model { readings: Vec::new(), next_seq: 1 };
        for op in ops {
            match op {
                Op::Append(samples) => {
                    let n = samples.len() as u64;
                    let got = buffer.append(samples.clone()).expect("append");
                    let want = (n > 0).then(|| SeqRange { first: model.next_seq, last: model.next_seq + n - 1 });
                    prop_assert_eq!(got, want);
                    for s in samples {
                        model.readings.push(s.into_reading(model.next_seq));
                        model.next_seq += 1;
                    }
                }
                Op::Read { after, limit } => {
                    let after = after % (model.next_seq + 3);
                    let batch = buffer.read_batch(after, limit).expect("read_batch");
                    let want: Vec<&Reading> = model.readings.iter().filter(|r| r.seq > after).take(limit).collect();
                    prop_assert_eq!(batch.readings.len(), want.len());
                    for (got, want) in batch.readings.iter().zip(want) {
                        prop_assert!(same_reading(got, want), "got {:?}, want {:?}", got, want);
                    }
                    prop_assert!(batch.dropped.is_empty());
                }
                Op::Ack(watermark) => {
                    let watermark = watermark % (model.next_seq + 3);
                    let deleted = buffer.delete_through(watermark).expect("delete_through");
                    let before = model.readings.len();
                    model.readings.retain(|r| r.seq > watermark);
                    prop_assert_eq!(deleted, (before - model.readings.len()) as u64);
                }
                Op::Reopen => {
                    drop(buffer);
                    buffer = open_unlimited(&path);
                }
            }
            let stats = buffer.stats().expect("stats");
            prop_assert_eq!(stats.next_seq, model.next_seq);
            prop_assert_eq!(stats.readings, model.readings.len() as u64);
            prop_assert_eq!(stats.first_seq, model.readings.first().map(|r| r.seq));
            prop_assert_eq!(stats.last_seq, model.readings.last().map(|r| r.seq));
        }
        // And a reader opened beside the writer sees the same.
        let reader = Buffer::open_read_only(&path).expect("open read-only");
        let all = reader.read_batch(0, usize::MAX).expect("read_batch");
        prop_assert_eq!(all.readings.len(), model.readings.len());
        for (got, want) in all.readings.iter().zip(&model.readings) {
            prop_assert!(same_reading(got, want), "got {:?}, want {:?}", got, want);
        }
    }
}
