//! Downloading the release an update order names: its signed manifest (a header of the
//! download) against the pinned keys before the body is read, then the bytes against the
//! signed size and SHA-256, then `agent.new` written whole (docs/design/updates.md).

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use simpul_protocol::control::UpdateOrder;
use simpul_protocol::release::{Hasher, ReleaseError, SIGNATURE_HEADER, SignedManifest, parse_public_key};

use super::{NEW, Staged, State, UpdateError};
use crate::config::UpdateConfig;
use crate::trust::Identity;

/// How long one download may take (a few MB over a slow uplink).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// The target triple this binary was built for, as releases name it.
pub fn this_target() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else if cfg!(target_arch = "arm") {
        "armv7-unknown-linux-gnueabihf"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

/// The pinned release keys.
pub fn pinned(config: &UpdateConfig) -> Result<Vec<VerifyingKey>, UpdateError> {
    let keys: Vec<VerifyingKey> = config.keys.iter().filter_map(|k| parse_public_key(k).ok()).collect();
    if keys.is_empty() { Err(UpdateError::NoKeys) } else { Ok(keys) }
}

/// Downloads the release `order` names for this box's target from `fleet` with the
/// identity in `identity_dir`, checks its signature against the pinned keys, that it fits
/// this box (target, newer than `running`) and that the bytes are the signed ones, and
/// stages it in `[update] dir`.
pub async fn fetch(
    config: &UpdateConfig,
    fleet: Option<&str>,
    identity_dir: &Path,
    order: &UpdateOrder,
    running: &str,
) -> Result<Staged, UpdateError> {
    let pinned = pinned(config)?;
    let fleet = fleet.ok_or(UpdateError::NoFleet)?;
    let dir = identity_dir.to_owned();
    let identity = tokio::task::spawn_blocking(move || Identity::load(&dir))
        .await
        .map_err(|e| UpdateError::Download(e.to_string()))?
        .map_err(|e| UpdateError::Download(format!("the box's identity: {e}")))?;
    let client = identity.https_client(DOWNLOAD_TIMEOUT).map_err(|e| UpdateError::Download(e.to_string()))?;
    let url = format!("{}/api/v1/releases/{}/{}", fleet.trim_end_matches('/'), order.version, this_target());
    tracing::info!(%url, "downloading a release");
    let mut resp = client.get(&url).send().await.map_err(|e| UpdateError::Download(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(UpdateError::Download(format!("GET {url}: {}", resp.status())));
    }
    // The signature first: nothing is read or kept of a release this box would refuse.
    let release: SignedManifest = match resp.headers().get(SIGNATURE_HEADER) {
        Some(v) => serde_json::from_slice(v.as_bytes()).map_err(|_| ReleaseError::Unsigned)?,
        None => return Err(ReleaseError::Unsigned.into()),
    };
    release.verify(&pinned)?;
    release.check_fits(this_target(), running)?;
    let m = &release.manifest;
    if m.version != order.version {
        return Err(UpdateError::Download(format!("asked for {}, the fleet sent {}", order.version, m.version)));
    }
    let cap = usize::try_from(m.size).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(cap.min(64 * 1024 * 1024));
    let mut hasher = Hasher::default();
    while let Some(chunk) = resp.chunk().await.map_err(|e| UpdateError::Download(e.to_string()))? {
        if bytes.len() + chunk.len() > cap {
            // More than was signed: stop reading; the size check below says so.
            bytes.extend_from_slice(&chunk);
            break;
        }
        hasher.update(&chunk);
        bytes.extend_from_slice(&chunk);
    }
    release.check_binary(&hasher.finish(), bytes.len() as u64)?;
    let dir = config.dir.clone();
    let staged = Staged { version: m.version.clone(), from: running.to_owned(), binary: dir.join(NEW) };
    let state = State::Fetched { version: staged.version.clone(), from: staged.from.clone() };
    let path = staged.binary.clone();
    tokio::task::spawn_blocking(move || -> Result<(), UpdateError> {
        std::fs::create_dir_all(&dir).map_err(|e| UpdateError::io(&dir, e))?;
        simpul_base::fs::write_atomic(&path, &bytes, 0o755).map_err(|e| UpdateError::io(&path, e))?;
        state.save(&dir)
    })
    .await
    .map_err(|e| UpdateError::Download(e.to_string()))??;
    tracing::info!(version = %staged.version, "release downloaded and checked");
    Ok(staged)
}
