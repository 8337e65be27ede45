//! Looks at each camera now and then (an RTSP DESCRIBE: no video crosses the LAN) so the
//! heartbeat and the status page say whether it answers, and whether it takes the
//! configured password, before anyone tries to watch.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::serve::Cameras;
use super::source;

/// Probes every camera not being pulled, every `interval`, until `shutdown`.
pub async fn run(cams: Cameras, interval: Duration, shutdown: CancellationToken) {
    loop {
        for (id, cam) in cams.configs.iter() {
            if shutdown.is_cancelled() {
                return;
            }
            if cams.states.is_streaming(id) {
                continue;
            }
            match source::probe(cam, cams.timeout).await {
                Ok(label) => cams.states.answered(id, label),
                Err(e) => cams.states.failed(id, e.state, e.message),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
