//! Access units to fragmented MP4 (ISO/IEC 14496-12, boxes written by `mp4-atom`) for the
//! dashboard's live view: a browser plays it through Media Source Extensions as the
//! camera sent it, without transcoding (docs/design/cameras.md). One init segment from
//! the description the box sent, then one fragment (`moof` + `mdat`) per frame, so a
//! frame reaches the browser as soon as it reaches the fleet.
//!
//! The frames' data is already MP4 sample data (NAL units behind 4-byte lengths) and the
//! sample entry (`avc1` / `hvc1` with its parameter sets) comes from the box as retina
//! built it: nothing is re-encoded here.

use std::io::Cursor;

use mp4_atom::{
    Codec as SampleEntry, Decode, Dinf, Dref, Encode, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd,
    Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Url, Vmhd,
};
use simpul_protocol::camera::{StreamDescription, VideoFrame};

use super::RelayError;

/// The one track's id.
const TRACK: u32 = 1;
/// Sample flags (ISO/IEC 14496-12 §8.8.3.1): a sync sample depends on no other...
const SYNC: u32 = 0x0200_0000;
/// ...a delta frame depends on others and is not a sync sample.
const NON_SYNC: u32 = 0x0101_0000;
/// The frame duration assumed until two frames tell the real one: 1/25 s.
const FIRST_DURATION_DIVISOR: u32 = 25;

/// The `Content-Type` of the stream, with the codec string a browser checks before it
/// plays (`MediaSource.isTypeSupported`).
pub fn content_type(d: &StreamDescription) -> String {
    format!("video/mp4; codecs=\"{}\"", d.rfc6381)
}

/// `ftyp` and `moov` for `d`'s one video track.
pub fn init_segment(d: &StreamDescription) -> Result<Vec<u8>, RelayError> {
    let bad =
        |what: &str| RelayError::Tunnel(format!("the stream's sample entry {what}; the browser view cannot play it"));
    let raw = hex::decode(&d.sample_entry).map_err(|_| bad("is not hex"))?;
    let entry =
        SampleEntry::decode(&mut Cursor::new(raw.as_slice())).map_err(|e| bad(&format!("does not parse ({e})")))?;
    let (width, height) = (u16::try_from(d.width).unwrap_or(u16::MAX), u16::try_from(d.height).unwrap_or(u16::MAX));
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    };
    let moov = Moov {
        mvhd: Mvhd { timescale: 1000, rate: 1.into(), volume: 1.into(), next_track_id: TRACK + 1, ..Mvhd::default() },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex { track_id: TRACK, default_sample_description_index: 1, ..Trex::default() }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: TRACK,
                enabled: true,
                in_movie: true,
                width: width.into(),
                height: height.into(),
                ..Tkhd::default()
            },
            mdia: Mdia {
                mdhd: Mdhd { timescale: d.clock_rate, language: "und".into(), ..Mdhd::default() },
                hdlr: Hdlr { handler: b"vide".into(), name: "Simpul camera relay".to_owned() },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf { dref: Dref { entries: vec![Url::default().into()] } },
                    stbl: Stbl {
                        stsd: Stsd { codecs: vec![entry] },
                        stts: Stts::default(),
                        stsc: Stsc::default(),
                        stsz: Stsz::default(),
                        stco: Some(Stco::default()),
                        ..Stbl::default()
                    },
                    ..Minf::default()
                },
            },
            ..Trak::default()
        }],
        ..Moov::default()
    };
    let mut out = Vec::new();
    ftyp.encode(&mut out).map_err(|e| bad(&format!("cannot be written ({e})")))?;
    moov.encode(&mut out).map_err(|e| bad(&format!("cannot be written ({e})")))?;
    Ok(out)
}

/// Numbers fragments and places frames on the track's timeline for one viewer.
#[derive(Debug)]
pub struct Fragmenter {
    sequence: u32,
    /// The first frame's timestamp: the timeline starts at 0 there.
    start: Option<i64>,
    /// The last frame's decode time on the timeline.
    last: Option<u64>,
    duration: u32,
}

impl Fragmenter {
    pub fn new(d: &StreamDescription) -> Fragmenter {
        Fragmenter { sequence: 0, start: None, last: None, duration: (d.clock_rate / FIRST_DURATION_DIVISOR).max(1) }
    }

    /// `moof` + `mdat` holding `frame`. Its duration is the gap to the frame before (the
    /// next one is not here yet, and waiting for it would delay every frame by one);
    /// a timestamp that goes backwards is moved just past the frame before.
    pub fn fragment(&mut self, frame: &VideoFrame) -> Result<Vec<u8>, RelayError> {
        let start = *self.start.get_or_insert(frame.timestamp);
        let mut at = u64::try_from(frame.timestamp.saturating_sub(start)).unwrap_or(0);
        if let Some(last) = self.last {
            if at <= last {
                at = last + 1;
            } else if let Ok(gap) = u32::try_from(at - last) {
                self.duration = gap;
            }
        }
        self.last = Some(at);
        self.sequence = self.sequence.wrapping_add(1);
        let size = u32::try_from(frame.data.len())
            .map_err(|_| RelayError::Tunnel(format!("a frame of {} bytes is too large", frame.data.len())))?;
        let mut moof = Moof {
            mfhd: Mfhd { sequence_number: self.sequence },
            traf: vec![Traf {
                tfhd: Tfhd { track_id: TRACK, default_base_is_moof: true, ..Tfhd::default() },
                tfdt: Some(Tfdt { base_media_decode_time: at }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: TrunSamples::Explicit(vec![TrunEntry {
                        duration: Some(self.duration),
                        size: Some(size),
                        flags: Some(if frame.keyframe { SYNC } else { NON_SYNC }),
                        cts: None,
                    }]),
                }],
                ..Traf::default()
            }],
        };
        let written = |e: mp4_atom::Error| RelayError::Tunnel(format!("a fragment cannot be written: {e}"));
        let mut head = Vec::new();
        moof.encode(&mut head).map_err(written)?;
        // The data starts after the moof and the mdat's 8-byte header; the offset field is
        // already there, so writing it again keeps the moof's size.
        let offset = i32::try_from(head.len() + 8).map_err(|_| RelayError::Tunnel("a moof too large".to_owned()))?;
        moof.traf[0].trun[0].data_offset = Some(offset);
        let mut out = Vec::with_capacity(head.len() + 8 + frame.data.len());
        moof.encode(&mut out).map_err(written)?;
        Mdat { data: frame.data.to_vec() }.encode(&mut out).map_err(written)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use mp4_atom::{Any, Avc1, Avcc, Visual};
    use simpul_protocol::camera::Codec;

    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x01, 0x40, 0x7B, 0x20];
    const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

    fn description() -> StreamDescription {
        let entry: SampleEntry = Avc1 {
            visual: Visual { data_reference_index: 1, width: 320, height: 240, ..Visual::default() },
            avcc: Avcc {
                configuration_version: 1,
                avc_profile_indication: 0x42,
                profile_compatibility: 0xC0,
                avc_level_indication: 0x1E,
                length_size: 4,
                sequence_parameter_sets: vec![SPS.to_vec()],
                picture_parameter_sets: vec![PPS.to_vec()],
                ext: None,
            },
            ..Avc1::default()
        }
        .into();
        let mut raw = Vec::new();
        entry.encode(&mut raw).expect("an avc1 box");
        StreamDescription::video(Codec::H264, "avc1.42C01E", (320, 240), &[SPS, PPS], &raw)
    }

    fn frame(timestamp: i64, keyframe: bool, len: usize) -> VideoFrame {
        let mut data = (len as u32).to_be_bytes().to_vec();
        data.extend(std::iter::repeat_n(if keyframe { 0x65 } else { 0x41 }, len));
        VideoFrame { timestamp, keyframe, data: Bytes::from(data) }
    }

    fn boxes(bytes: &[u8]) -> Vec<Any> {
        let mut cursor = Cursor::new(bytes);
        let mut out = Vec::new();
        while (cursor.position() as usize) < bytes.len() {
            out.push(Any::decode(&mut cursor).expect("a box"));
        }
        out
    }

    #[test]
    fn the_init_segment_carries_the_sample_entry_the_box_sent_and_the_90khz_clock() {
        let init = init_segment(&description()).expect("init");
        let parsed = boxes(&init);
        let [Any::Ftyp(_), Any::Moov(moov)] = parsed.as_slice() else { panic!("ftyp, moov: {parsed:?}") };
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.timescale, 90_000);
        assert_eq!(trak.tkhd.width, 320.into());
        let SampleEntry::Avc1(avc1) = &trak.mdia.minf.stbl.stsd.codecs[0] else { panic!("avc1") };
        assert_eq!(avc1.avcc.sequence_parameter_sets, vec![SPS.to_vec()]);
        assert!(moov.mvex.is_some(), "fragmented");
        assert_eq!(content_type(&description()), "video/mp4; codecs=\"avc1.42C01E\"");
    }

    #[test]
    fn a_sample_entry_that_does_not_parse_is_a_clear_error() {
        let mut d = description();
        d.sample_entry = "00000008".to_owned();
        let e = init_segment(&d).expect_err("refused");
        assert!(e.to_string().contains("browser view cannot play"), "{e}");
    }

    #[test]
    fn each_frame_is_one_fragment_whose_data_offset_points_at_its_bytes() {
        let d = description();
        let mut f = Fragmenter::new(&d);
        for (i, (ts, key)) in [(1_000_i64, true), (4_600, false), (8_200, false)].into_iter().enumerate() {
            let input = frame(ts, key, 100 + i);
            let out = f.fragment(&input).expect("fragment");
            let parsed = boxes(&out);
            let [Any::Moof(moof), Any::Mdat(mdat)] = parsed.as_slice() else { panic!("moof, mdat") };
            assert_eq!(moof.mfhd.sequence_number, i as u32 + 1);
            let traf = &moof.traf[0];
            let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            assert_eq!(tfdt, (ts - 1_000) as u64, "the timeline starts at the first frame");
            let trun = &traf.trun[0];
            let offset = trun.data_offset.expect("offset") as usize;
            assert_eq!(&out[offset..], input.data.as_ref(), "the offset lands on the frame's bytes");
            assert_eq!(mdat.data, input.data.to_vec());
            let entry = trun.samples.get(0).expect("one sample");
            assert_eq!(entry.flags, Some(if key { SYNC } else { NON_SYNC }));
            if i > 0 {
                assert_eq!(entry.duration, Some(3_600), "the gap to the frame before");
            }
        }
    }

    #[test]
    fn a_timestamp_going_backwards_still_moves_the_timeline_forwards() {
        let d = description();
        let mut f = Fragmenter::new(&d);
        let at = |out: Vec<u8>| match boxes(&out).first() {
            Some(Any::Moof(m)) => m.traf[0].tfdt.as_ref().map_or(0, |t| t.base_media_decode_time),
            _ => panic!("a moof"),
        };
        assert_eq!(at(f.fragment(&frame(9_000, true, 10)).expect("a")), 0);
        assert_eq!(at(f.fragment(&frame(12_000, false, 10)).expect("b")), 3_000);
        assert_eq!(at(f.fragment(&frame(11_000, false, 10)).expect("c")), 3_001);
        assert_eq!(at(f.fragment(&frame(2_000, false, 10)).expect("d")), 3_002);
    }
}
