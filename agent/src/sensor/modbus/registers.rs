//! The register map: which reads to make, and how words become values.
//!
//! Registers of the same function that sit next to each other are read in one request
//! (fewer round trips on a slow RS-485 bus); a gap starts a new request, so a register
//! the device does not have is never read by accident.

use crate::config::sensor::{DataType, RegisterConfig, RegisterFunction, Scaling, WordOrder};
use crate::sensor::emit::Channel;

/// Most registers one Modbus read may ask for.
pub const MAX_READ: u16 = 125;

/// One value of the map, ready to decode.
#[derive(Clone, Debug)]
pub struct Point {
    /// Metric and unit.
    pub channel: Channel,
    /// How its words hold the number.
    pub data_type: DataType,
    /// Word order of 32-bit types.
    pub word_order: WordOrder,
    /// `value = raw * scale + offset`, rounded to `decimals`.
    pub scaling: Scaling,
    /// Offset of its first word within its [`Read`].
    pub at: usize,
}

/// One Modbus request and the points it carries.
#[derive(Clone, Debug)]
pub struct Read {
    /// Function 3 or 4.
    pub function: RegisterFunction,
    /// First register.
    pub address: u16,
    /// Number of registers.
    pub count: u16,
    /// The points in this read.
    pub points: Vec<Point>,
}

/// Groups `registers` into as few reads as adjacency allows, in address order.
pub fn plan(registers: &[RegisterConfig]) -> Vec<Read> {
    let mut sorted: Vec<&RegisterConfig> = registers.iter().collect();
    sorted.sort_by_key(|r| (r.function == RegisterFunction::Input, r.address));
    let mut reads: Vec<Read> = Vec::new();
    for r in sorted {
        let width = r.data_type.registers();
        let joins = reads.last().is_some_and(|last| {
            last.function == r.function
                && u32::from(last.address) + u32::from(last.count) == u32::from(r.address)
                && last.count + width <= MAX_READ
        });
        if !joins {
            reads.push(Read { function: r.function, address: r.address, count: 0, points: Vec::new() });
        }
        if let Some(read) = reads.last_mut() {
            read.points.push(Point {
                channel: Channel::new(&r.metric, &r.unit),
                data_type: r.data_type,
                word_order: r.word_order,
                scaling: r.scaling(),
                at: usize::from(read.count),
            });
            read.count += width;
        }
    }
    reads
}

/// The raw number in `words` (at least as many as `data_type` spans; `None` otherwise,
/// or for a float that is not finite).
pub fn decode(data_type: DataType, word_order: WordOrder, words: &[u16]) -> Option<f64> {
    let pair = || -> Option<u32> {
        let (a, b) = (*words.first()?, *words.get(1)?);
        let (hi, lo) = match word_order {
            WordOrder::Big => (a, b),
            WordOrder::Little => (b, a),
        };
        Some((u32::from(hi) << 16) | u32::from(lo))
    };
    let v = match data_type {
        DataType::U16 => f64::from(*words.first()?),
        DataType::I16 => f64::from(i16::from_ne_bytes(words.first()?.to_ne_bytes())),
        DataType::U32 => f64::from(pair()?),
        DataType::I32 => f64::from(i32::from_ne_bytes(pair()?.to_ne_bytes())),
        DataType::F32 => f64::from(f32::from_bits(pair()?)),
    };
    v.is_finite().then_some(v)
}

impl Point {
    /// This point's value out of its read's `words`, mapped and rounded.
    pub fn value(&self, words: &[u16]) -> Option<f64> {
        let raw = decode(self.data_type, self.word_order, words.get(self.at..)?)?;
        Some(self.scaling.apply(raw))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn reg(metric: &str, function: RegisterFunction, address: u16, data_type: DataType) -> RegisterConfig {
        RegisterConfig {
            metric: metric.into(),
            function,
            address,
            data_type,
            word_order: WordOrder::Big,
            unit: String::new(),
            scale: 1.0,
            offset: 0.0,
            decimals: 2,
        }
    }

    #[test]
    fn adjacent_registers_of_one_function_share_a_read_and_gaps_split() {
        use RegisterFunction::{Holding, Input};
        let map = [
            reg("c", Holding, 2, DataType::F32),
            reg("a", Holding, 0, DataType::U16),
            reg("b", Holding, 1, DataType::I16),
            reg("d", Holding, 10, DataType::U16),
            reg("e", Input, 4, DataType::U32),
        ];
        let reads = plan(&map);
        let shape: Vec<_> = reads.iter().map(|r| (r.function, r.address, r.count, r.points.len())).collect();
        assert_eq!(shape, vec![(Holding, 0, 4, 3), (Holding, 10, 1, 1), (Input, 4, 2, 1)]);
        let offsets: Vec<_> = reads[0].points.iter().map(|p| (p.channel.metric.to_string(), p.at)).collect();
        assert_eq!(offsets, vec![("a".into(), 0), ("b".into(), 1), ("c".into(), 2)]);
    }

    #[test]
    fn a_read_never_exceeds_the_modbus_limit() {
        let map: Vec<_> = (0..200).map(|i| reg("x", RegisterFunction::Holding, i, DataType::U16)).collect();
        let reads = plan(&map);
        assert!(reads.iter().all(|r| r.count <= MAX_READ));
        assert_eq!(reads.iter().map(|r| u32::from(r.count)).sum::<u32>(), 200);
    }

    #[test]
    fn words_decode_by_type_and_word_order() {
        assert_eq!(decode(DataType::U16, WordOrder::Big, &[0xFFFF]), Some(65535.0));
        assert_eq!(decode(DataType::I16, WordOrder::Big, &[0xFFFE]), Some(-2.0));
        assert_eq!(decode(DataType::U32, WordOrder::Big, &[0x0001, 0x0002]), Some(65538.0));
        assert_eq!(decode(DataType::U32, WordOrder::Little, &[0x0002, 0x0001]), Some(65538.0));
        assert_eq!(decode(DataType::I32, WordOrder::Big, &[0xFFFF, 0xFFFF]), Some(-1.0));
        assert_eq!(decode(DataType::I32, WordOrder::Little, &[0x7960, 0xFFFE]), Some(-100_000.0));
        let bits = 123.25f32.to_bits();
        let (hi, lo) = ((bits >> 16) as u16, (bits & 0xFFFF) as u16);
        assert_eq!(decode(DataType::F32, WordOrder::Big, &[hi, lo]), Some(123.25));
        assert_eq!(decode(DataType::F32, WordOrder::Little, &[lo, hi]), Some(123.25));
        assert_eq!(decode(DataType::F32, WordOrder::Big, &[0x7FC0, 0]), None, "NaN is no reading");
        assert_eq!(decode(DataType::U32, WordOrder::Big, &[1]), None, "too few words");
    }

    #[test]
    fn a_point_scales_and_rounds_its_words() {
        let mut r = reg("level", RegisterFunction::Holding, 0, DataType::U16);
        r.scale = 0.1;
        r.decimals = 1;
        let reads = plan(&[r]);
        assert_eq!(reads[0].points[0].value(&[1234]), Some(123.4));
    }

    proptest! {
        #[test]
        fn any_words_never_panic(words in proptest::collection::vec(any::<u16>(), 0..4)) {
            for t in [DataType::U16, DataType::I16, DataType::U32, DataType::I32, DataType::F32] {
                for o in [WordOrder::Big, WordOrder::Little] {
                    let _ = decode(t, o, &words);
                }
            }
        }
    }
}
