//! What one viewer is sent, whatever it speaks (RTSP or MP4): the units since the key
//! frame it joined at, then each live unit; a viewer that falls behind the fan-out skips
//! to the next key frame instead of getting a picture with holes.

use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::relay::Unit;

struct Follow {
    gop: std::vec::IntoIter<Arc<Unit>>,
    rx: broadcast::Receiver<Arc<Unit>>,
    waiting_for_key: bool,
    camera: String,
}

/// The units to send a viewer of `camera` that joined with `gop` (from
/// [`super::relay::Viewer::subscribe`]). Ends when the relay is gone.
pub fn follow(
    gop: Vec<Arc<Unit>>,
    rx: broadcast::Receiver<Arc<Unit>>,
    camera: &str,
) -> impl Stream<Item = Arc<Unit>> + Send + 'static {
    let state = Follow { waiting_for_key: gop.is_empty(), gop: gop.into_iter(), rx, camera: camera.to_owned() };
    futures_util::stream::unfold(state, |mut s| async move {
        if let Some(u) = s.gop.next() {
            return Some((u, s));
        }
        loop {
            match s.rx.recv().await {
                Ok(u) if s.waiting_for_key && !u.frame.keyframe => {}
                Ok(u) => {
                    s.waiting_for_key = false;
                    return Some((u, s));
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::info!(camera = %s.camera, skipped = n, "camera relay: a slow viewer skips to the next key frame");
                    s.waiting_for_key = true;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::StreamExt;
    use simpul_protocol::camera::{Codec, StreamDescription, VideoFrame};

    use super::*;
    use crate::cameras::rtp::Packetizer;

    fn unit(n: i64, keyframe: bool) -> Arc<Unit> {
        let frame = VideoFrame { timestamp: n, keyframe, data: Bytes::from_static(&[0, 0, 0, 1, 0x41]) };
        let description = Arc::new(StreamDescription::video(Codec::H264, "avc1.42C01E", (2, 2), &[], &[]));
        Arc::new(Unit { description, rtp: Packetizer::new(Codec::H264).packetize(&frame, &[]), frame })
    }

    fn stamps(units: &[Arc<Unit>]) -> Vec<i64> {
        units.iter().map(|u| u.frame.timestamp).collect()
    }

    #[tokio::test]
    async fn a_viewer_gets_the_gop_then_live_units_each_once() {
        let (tx, rx) = broadcast::channel(8);
        let s = follow(vec![unit(0, true), unit(1, false)], rx, "gate");
        tx.send(unit(2, false)).ok();
        tx.send(unit(3, false)).ok();
        drop(tx);
        assert_eq!(stamps(&s.collect::<Vec<_>>().await), vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_viewer_joining_without_a_gop_waits_for_a_key_frame() {
        let (tx, rx) = broadcast::channel(8);
        let s = follow(vec![], rx, "gate");
        for (n, key) in [(5, false), (6, true), (7, false)] {
            tx.send(unit(n, key)).ok();
        }
        drop(tx);
        assert_eq!(stamps(&s.collect::<Vec<_>>().await), vec![6, 7]);
    }

    #[tokio::test]
    async fn a_viewer_that_falls_behind_skips_to_the_next_key_frame() {
        let (tx, rx) = broadcast::channel(4);
        let s = follow(vec![], rx, "gate");
        // Seven units into a queue of four: 0 to 2 are lost, so 3 and 4 (delta frames whose
        // references the viewer never got) must not be sent either.
        for (n, key) in [(0, true), (1, false), (2, false), (3, false), (4, false), (5, true), (6, false)] {
            tx.send(unit(n, key)).ok();
        }
        drop(tx);
        assert_eq!(stamps(&s.collect::<Vec<_>>().await), vec![5, 6]);
    }
}
