//! Access units to RTP packets for RTSP viewers: RFC 6184 (H.264) and RFC 7798 (H.265),
//! single NAL unit packets and fragmentation units; parameter sets sent before each key
//! frame. Headers are written by `rtp-types`.
//!
//! Written here rather than taken from webrtc-rs's `rtp` crate: its H.265 payloader drops
//! NAL unit types it does not list (IDR_N_LP, RASL, CRA with leading pictures) and writes
//! fixed fragmentation headers, which breaks many cameras' streams (docs/design/cameras.md).

use bytes::Bytes;
use rtp_types::RtpPacketBuilder;
use simpul_protocol::camera::{Codec, VideoFrame, nal_units};

/// The dynamic payload type the SDP announces.
pub const PAYLOAD_TYPE: u8 = 96;
/// The largest RTP payload: fits a 1500-byte Ethernet frame with IP, TCP and the
/// interleaving header to spare.
const MAX_PAYLOAD: usize = 1400;

/// One access unit as RTP packets (each a whole RTP packet, header included).
#[derive(Debug, Clone)]
pub struct Packets {
    pub rtp_timestamp: u32,
    pub first_seq: u16,
    pub packets: Vec<Bytes>,
    pub keyframe: bool,
}

/// Numbers packets for one stream; shared by every viewer of it.
#[derive(Debug)]
pub struct Packetizer {
    codec: Codec,
    ssrc: u32,
    seq: u16,
    /// Added to frame timestamps, so streams do not start at 0 (RFC 3550 §5.1).
    offset: u32,
}

impl Packetizer {
    pub fn new(codec: Codec) -> Packetizer {
        Packetizer { codec, ssrc: rand::random(), seq: rand::random(), offset: rand::random() }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The RTP packets of `frame`, with `parameter_sets` first when it is a key frame.
    pub fn packetize(&mut self, frame: &VideoFrame, parameter_sets: &[Bytes]) -> Packets {
        let rtp_timestamp = self.offset.wrapping_add(frame.timestamp as u32);
        let first_seq = self.seq;
        let mut nals: Vec<Bytes> = Vec::new();
        if frame.keyframe {
            nals.extend(parameter_sets.iter().cloned());
        }
        nals.extend(nal_units(&frame.data));
        let mut payloads: Vec<(Bytes, Option<Bytes>)> = Vec::new();
        for nal in &nals {
            self.fragment(nal, &mut payloads);
        }
        let last = payloads.len().saturating_sub(1);
        let mut packets = Vec::with_capacity(payloads.len());
        for (i, (head, body)) in payloads.iter().enumerate() {
            let mut b = RtpPacketBuilder::<&[u8], &[u8]>::new()
                .payload_type(PAYLOAD_TYPE)
                .sequence_number(self.seq)
                .timestamp(rtp_timestamp)
                .ssrc(self.ssrc)
                .marker_bit(i == last)
                .payload(head.as_ref());
            if let Some(body) = body {
                b = b.payload(body.as_ref());
            }
            if let Ok(p) = b.write_vec() {
                packets.push(Bytes::from(p));
            }
            self.seq = self.seq.wrapping_add(1);
        }
        Packets { rtp_timestamp, first_seq, packets, keyframe: frame.keyframe }
    }

    /// One NAL unit as payloads: whole, or in fragmentation units (a small header and a
    /// slice of the NAL unit).
    fn fragment(&self, nal: &Bytes, out: &mut Vec<(Bytes, Option<Bytes>)>) {
        if nal.len() <= MAX_PAYLOAD {
            out.push((nal.clone(), None));
            return;
        }
        let (header_len, skip) = match self.codec {
            Codec::H264 => (2, 1),
            Codec::H265 => (3, 2),
        };
        if nal.len() <= skip {
            return;
        }
        let chunk = MAX_PAYLOAD - header_len;
        let body = nal.slice(skip..);
        let count = body.len().div_ceil(chunk);
        for i in 0..count {
            let (start, end) = (i * chunk, ((i + 1) * chunk).min(body.len()));
            let se = if i == 0 { 0x80 } else { 0 } | if i + 1 == count { 0x40 } else { 0 };
            let header = match self.codec {
                // FU-A: indicator (F, NRI, type 28), header (S, E, R, the NAL's type).
                Codec::H264 => vec![(nal[0] & 0xE0) | 28, se | (nal[0] & 0x1F)],
                // FU: payload header (the NAL's header with type 49), FU header (S, E, type).
                Codec::H265 => vec![(nal[0] & 0x81) | (49 << 1), nal[1], se | ((nal[0] >> 1) & 0x3F)],
            };
            out.push((Bytes::from(header), Some(body.slice(start..end))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(nals: &[&[u8]], keyframe: bool) -> VideoFrame {
        let mut data = Vec::new();
        for n in nals {
            data.extend_from_slice(&(n.len() as u32).to_be_bytes());
            data.extend_from_slice(n);
        }
        VideoFrame { timestamp: 3000, keyframe, data: Bytes::from(data) }
    }

    fn parsed(p: &Bytes) -> rtp_types::RtpPacket<'_> {
        rtp_types::RtpPacket::parse(p.as_ref()).expect("an RTP packet")
    }

    #[test]
    fn small_nal_units_go_whole_and_the_marker_ends_the_access_unit() {
        let mut p = Packetizer::new(Codec::H264);
        let sps = Bytes::from_static(&[0x67, 1, 2]);
        let out = p.packetize(&frame(&[&[0x65, 9, 9, 9]], true), &[sps]);
        assert_eq!(out.packets.len(), 2, "the SPS, then the slice");
        let (a, b) = (parsed(&out.packets[0]), parsed(&out.packets[1]));
        assert_eq!(a.payload(), &[0x67, 1, 2]);
        assert!(!a.marker_bit() && b.marker_bit());
        assert_eq!(b.sequence_number(), a.sequence_number().wrapping_add(1));
        assert_eq!(a.timestamp(), b.timestamp());
        assert_eq!(b.payload_type(), PAYLOAD_TYPE);
    }

    #[test]
    fn a_large_h264_nal_unit_is_cut_into_fu_a_that_rebuild_it() {
        let mut nal = vec![0x65u8];
        nal.extend((0..5000u32).map(|i| (i % 251) as u8));
        let mut p = Packetizer::new(Codec::H264);
        let out = p.packetize(&frame(&[&nal], false), &[]);
        assert_eq!(out.packets.len(), 4);
        let mut rebuilt = Vec::new();
        for (i, pkt) in out.packets.iter().enumerate() {
            let pl = parsed(pkt).payload().to_vec();
            assert_eq!(pl[0] & 0x1F, 28, "FU-A");
            assert_eq!(pl[1] & 0x1F, 5, "the NAL's type");
            assert_eq!(pl[1] & 0x80 != 0, i == 0, "start bit only on the first");
            assert_eq!(pl[1] & 0x40 != 0, i == 3, "end bit only on the last");
            if i == 0 {
                rebuilt.push((pl[0] & 0xE0) | (pl[1] & 0x1F));
            }
            rebuilt.extend_from_slice(&pl[2..]);
            assert!(pkt.len() <= 12 + MAX_PAYLOAD);
        }
        assert_eq!(rebuilt, nal);
    }

    #[test]
    fn a_large_h265_nal_unit_is_cut_into_fus_that_keep_its_type_and_layer() {
        // IDR_N_LP (type 20), layer 0, tid 1: a type webrtc-rs's payloader drops.
        let mut nal = vec![20 << 1, 1];
        nal.extend((0..3000u32).map(|i| (i % 13) as u8));
        let mut p = Packetizer::new(Codec::H265);
        let out = p.packetize(&frame(&[&nal], true), &[]);
        let mut rebuilt = Vec::new();
        let n = out.packets.len();
        assert_eq!(n, 3);
        for (i, pkt) in out.packets.iter().enumerate() {
            let pl = parsed(pkt).payload().to_vec();
            assert_eq!((pl[0] >> 1) & 0x3F, 49, "FU");
            assert_eq!(pl[1], 1, "layer and tid kept");
            assert_eq!(pl[2] & 0x3F, 20, "the NAL's type");
            assert_eq!(pl[2] & 0x80 != 0, i == 0);
            assert_eq!(pl[2] & 0x40 != 0, i + 1 == n);
            if i == 0 {
                rebuilt.extend_from_slice(&[(pl[0] & 0x81) | ((pl[2] & 0x3F) << 1), pl[1]]);
            }
            rebuilt.extend_from_slice(&pl[3..]);
        }
        assert_eq!(rebuilt, nal);
    }

    #[test]
    fn sequence_numbers_run_on_across_frames_and_wrap() {
        let mut p = Packetizer::new(Codec::H264);
        p.seq = u16::MAX;
        let a = p.packetize(&frame(&[&[0x41, 1]], false), &[]);
        let b = p.packetize(&frame(&[&[0x41, 2]], false), &[]);
        assert_eq!(a.first_seq, u16::MAX);
        assert_eq!(b.first_seq, 0);
    }
}
