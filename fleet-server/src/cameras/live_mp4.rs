//! One browser's live view: the camera's stream as fragmented MP4 over plain HTTP
//! (`GET /api/v1/cameras/{device}/{camera}/live.mp4`), which the dashboard feeds into
//! Media Source Extensions (docs/design/cameras.md). The browser is one more viewer of the
//! camera's relay, so it costs the box's uplink nothing when anyone else already watches.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use simpul_protocol::camera::StreamDescription;

use super::RelayError;
use super::fmp4::{Fragmenter, content_type, init_segment};
use super::follow::follow;
use super::relay::{Relays, Viewer};

/// An open live view: its `Content-Type` (with the codec string) and its bytes.
pub struct LiveMp4 {
    pub content_type: String,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send + 'static>>,
}

impl std::fmt::Debug for LiveMp4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveMp4").field("content_type", &self.content_type).finish_non_exhaustive()
    }
}

/// Starts watching `device`'s `camera` and waits for its stream. The body is the init
/// segment, then a fragment per frame from the last key frame on. It ends when the camera's
/// upstream ends or its stream changes (a camera that changed its resolution or codec: the
/// page opens the view again); the viewer lets go of the relay when the body is dropped.
pub async fn open(relays: &Relays, device: &str, camera: &str) -> Result<LiveMp4, RelayError> {
    let viewer = relays.watch(device, camera);
    let (opened, _) = viewer.live().await?;
    let init = Bytes::from(init_segment(&opened)?);
    let content_type = content_type(&opened);
    let (gop, rx) = viewer.subscribe();
    let ended = viewer.ended();
    let key = viewer.key().clone();
    let mut fragmenter = Fragmenter::new(&opened);
    let who = key.clone();
    let fragments = follow(gop, rx, camera)
        .take_until(ended)
        .take_while(move |u| std::future::ready(same(&u.description, &opened)))
        .filter_map(move |u| {
            let out = match fragmenter.fragment(&u.frame) {
                Ok(b) => Some(Bytes::from(b)),
                Err(e) => {
                    tracing::warn!(device = %who.0, camera = %who.1, error = %e, "live view: a frame skipped");
                    None
                }
            };
            std::future::ready(out)
        });
    let relays = relays.clone();
    let body = futures_util::stream::once(std::future::ready(init)).chain(fragments).map(move |b| {
        // The viewer lives as long as the body: dropping the body lets go of the relay.
        let _watching: &Viewer = &viewer;
        relays.sent(&key, b.len() as u64);
        b
    });
    Ok(LiveMp4 { content_type, body: body.boxed() })
}

/// Whether a unit still belongs to the stream the init segment described.
fn same(now: &Arc<StreamDescription>, opened: &Arc<StreamDescription>) -> bool {
    Arc::ptr_eq(now, opened) || (now.codec == opened.codec && now.sample_entry == opened.sample_entry)
}
