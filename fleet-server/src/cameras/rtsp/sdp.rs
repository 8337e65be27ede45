//! The SDP a viewer's DESCRIBE gets: one video track, the camera's codec at 90 kHz, its
//! parameter sets in the fmtp line (RFC 6184 §8.1, RFC 7798 §7.1), written by `sdp-types`.

use base64::Engine;
use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};
use simpul_protocol::camera::{Codec, StreamDescription};

use crate::cameras::rtp::PAYLOAD_TYPE;

/// The control name of the one track (`{content base}trackID=0`).
pub const TRACK: &str = "trackID=0";

fn attr(name: &str, value: impl Into<String>) -> Attribute {
    Attribute { attribute: name.to_owned(), value: Some(value.into()) }
}

/// The fmtp parameters for `d`'s codec.
pub fn fmtp(d: &StreamDescription) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let sets = d.parameter_set_bytes();
    match d.codec {
        Codec::H264 => {
            let mut p = "packetization-mode=1".to_owned();
            if let Some(sps) = sets.first().filter(|s| s.len() >= 4) {
                p.push_str(&format!(";profile-level-id={}", hex::encode_upper(&sps[1..4])));
            }
            let all: Vec<String> = sets.iter().map(|s| b64(s)).collect();
            p.push_str(&format!(";sprop-parameter-sets={}", all.join(",")));
            p
        }
        Codec::H265 => {
            let names = ["sprop-vps", "sprop-sps", "sprop-pps"];
            names.iter().zip(&sets).map(|(n, s)| format!("{n}={}", b64(s))).collect::<Vec<_>>().join(";")
        }
    }
}

/// The session description of `device`'s `camera`.
pub fn describe(device: &str, camera: &str, d: &StreamDescription) -> Vec<u8> {
    let session = Session {
        origin: Origin {
            username: None,
            sess_id: rand::random::<u32>().to_string(),
            sess_version: 1,
            nettype: "IN".to_owned(),
            addrtype: "IP4".to_owned(),
            unicast_address: "0.0.0.0".to_owned(),
        },
        session_name: format!("simpul {device}/{camera}"),
        session_description: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        times: vec![Time { start_time: 0, stop_time: 0, repeats: Vec::new() }],
        time_zones: Vec::new(),
        key: None,
        attributes: vec![attr("control", "*"), attr("range", "npt=0-")],
        medias: vec![Media {
            media: "video".to_owned(),
            port: 0,
            num_ports: None,
            proto: "RTP/AVP".to_owned(),
            fmt: PAYLOAD_TYPE.to_string(),
            media_title: None,
            connections: vec![Connection {
                nettype: "IN".to_owned(),
                addrtype: "IP4".to_owned(),
                connection_address: "0.0.0.0".to_owned(),
            }],
            bandwidths: Vec::new(),
            key: None,
            attributes: vec![
                attr("rtpmap", format!("{PAYLOAD_TYPE} {}/{}", d.codec.encoding_name(), d.clock_rate)),
                attr("fmtp", format!("{PAYLOAD_TYPE} {}", fmtp(d))),
                attr("control", TRACK),
            ],
        }],
    };
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = session.write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264() -> StreamDescription {
        StreamDescription {
            codec: Codec::H264,
            rfc6381: "avc1.64001F".to_owned(),
            width: 1280,
            height: 720,
            clock_rate: 90_000,
            parameter_sets: vec!["6764001fac".to_owned(), "68ee3cb0".to_owned()],
            sample_entry: String::new(),
        }
    }

    #[test]
    fn an_h264_description_names_its_profile_and_parameter_sets_and_parses_back() {
        let sdp = describe("kel-01", "gate", &h264());
        let parsed = Session::parse(&sdp).expect("our SDP parses");
        let m = &parsed.medias[0];
        assert_eq!(m.fmt, "96");
        assert_eq!(m.get_first_attribute_value("rtpmap").ok().flatten(), Some("96 H264/90000"));
        let fmtp = m.get_first_attribute_value("fmtp").ok().flatten().unwrap_or_default();
        assert!(fmtp.contains("profile-level-id=64001F"), "{fmtp}");
        assert!(fmtp.contains("sprop-parameter-sets=Z2QAH6w=,aO48sA=="), "{fmtp}");
        assert_eq!(m.get_first_attribute_value("control").ok().flatten(), Some(TRACK));
    }

    #[test]
    fn an_h265_description_carries_vps_sps_and_pps() {
        let d = StreamDescription {
            codec: Codec::H265,
            parameter_sets: vec!["40".to_owned(), "42".to_owned(), "44".to_owned()],
            ..h264()
        };
        assert_eq!(fmtp(&d), "sprop-vps=QA==;sprop-sps=Qg==;sprop-pps=RA==");
    }
}
