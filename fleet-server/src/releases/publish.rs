//! The checks a release passes before the fleet stores it: the same a box makes, against
//! the fleet's `[releases] keys`.

use ed25519_dalek::VerifyingKey;
use simpul_protocol::release::{ReleaseError, SignedManifest, parse_public_key, sha256_hex};

/// Why a release was not published.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    #[error("no release keys are configured ([releases] keys): the fleet accepts no release")]
    NoKeys,
    #[error("the signature names version {signed_version} for {signed_target}, the request {version} for {target}")]
    Mismatch { version: String, target: String, signed_version: String, signed_target: String },
    #[error(transparent)]
    Release(#[from] ReleaseError),
}

impl PublishRefused {
    /// The HTTP status for it.
    pub fn status(&self) -> u16 {
        match self {
            PublishRefused::NoKeys => 409,
            PublishRefused::Release(ReleaseError::UnknownKey { .. } | ReleaseError::BadSignature { .. }) => 403,
            _ => 400,
        }
    }
}

/// Checks `signed` and `binary` for publishing as `version` for `target` with `keys`.
pub fn check(
    keys: &[String],
    version: &str,
    target: &str,
    signed: &SignedManifest,
    binary: &[u8],
) -> Result<(), PublishRefused> {
    let pinned: Vec<VerifyingKey> = keys.iter().filter_map(|k| parse_public_key(k).ok()).collect();
    if pinned.is_empty() {
        return Err(PublishRefused::NoKeys);
    }
    let m = &signed.manifest;
    if m.version != version || m.target != target {
        return Err(PublishRefused::Mismatch {
            version: version.to_owned(),
            target: target.to_owned(),
            signed_version: m.version.clone(),
            signed_target: m.target.clone(),
        });
    }
    signed.verify(&pinned)?;
    signed.check_binary(&sha256_hex(binary), binary.len() as u64)?;
    Ok(())
}
