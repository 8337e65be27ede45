//! The camera tunnel's messages: what one side writes the other reads back, and bytes that
//! are not a message are an error, never a panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use simpul_protocol::camera::{
    CameraWireError, Codec, StreamDescription, TunnelMessage, TunnelRequest, VideoFrame, decode, encode, keyframe_path,
    nal_units, stream_path,
};

/// Encodes `m` and decodes it the way the fleet does: the 4-byte length, then the rest.
fn round_trip(m: &TunnelMessage) -> Result<TunnelMessage, CameraWireError> {
    let mut buf = BytesMut::new();
    encode(m, &mut buf);
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    assert_eq!(len, buf.len() - 4, "the length counts what follows it");
    decode(buf.freeze().slice(4..))
}

fn description() -> StreamDescription {
    StreamDescription::video(
        Codec::H265,
        "hvc1.1.6.L93.B0",
        (1920, 1080),
        &[&[0x40, 1], &[0x42, 1], &[0x44, 1]],
        &[9; 20],
    )
}

#[test]
fn a_description_comes_back_whole_with_its_parameter_sets() {
    let d = description();
    assert_eq!(round_trip(&TunnelMessage::Description(d.clone())), Ok(TunnelMessage::Description(d.clone())));
    assert_eq!(d.parameter_set_bytes(), vec![vec![0x40, 1], vec![0x42, 1], vec![0x44, 1]]);
    assert_eq!(d.clock_rate, 90_000);
}

proptest! {
    #[test]
    fn any_frame_comes_back_whole(timestamp in any::<i64>(), keyframe in any::<bool>(), data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let f = TunnelMessage::Frame(VideoFrame { timestamp, keyframe, data: Bytes::from(data) });
        prop_assert_eq!(round_trip(&f), Ok(f));
    }

    #[test]
    fn garbage_is_an_error_or_a_message_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(Bytes::from(bytes.clone()));
        let _ = nal_units(&Bytes::from(bytes));
    }
}

#[test]
fn broken_messages_say_what_is_wrong() {
    assert_eq!(decode(Bytes::new()), Err(CameraWireError::Empty));
    assert_eq!(decode(Bytes::from_static(&[7, 1, 2])), Err(CameraWireError::UnknownKind(7)));
    assert_eq!(decode(Bytes::from_static(&[2, 0, 0])), Err(CameraWireError::ShortFrame(3)));
    assert!(matches!(decode(Bytes::from_static(b"\x01{not json")), Err(CameraWireError::Description(_))));
}

#[test]
fn nal_units_stop_at_a_length_that_runs_past_the_end() {
    let data = Bytes::from_static(&[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 9, 0x41]);
    assert_eq!(nal_units(&data), vec![Bytes::from_static(&[0x65, 1])]);
}

#[test]
fn tunnel_paths_name_the_camera_and_nothing_else_parses() {
    assert_eq!(TunnelRequest::parse(&stream_path("gate")), Some(TunnelRequest::Stream("gate")));
    assert_eq!(TunnelRequest::parse(&keyframe_path("gate")), Some(TunnelRequest::Keyframe("gate")));
    for bad in
        ["/cameras//stream", "/cameras/gate", "/cameras/gate/stream/more", "/other/gate/stream", "/cameras/gate/x"]
    {
        assert_eq!(TunnelRequest::parse(bad), None, "{bad}");
    }
}
