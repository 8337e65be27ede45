//! Where releases are kept: their signed manifests and binaries.

use simpul_protocol::DeviceId;
use simpul_protocol::release::SignedManifest;

use crate::store::StoreError;

/// A release as listed (never its bytes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ReleaseInfo {
    pub version: String,
    pub target: String,
    pub sha256: String,
    pub size: u64,
    /// The release key that signed it (hex).
    pub public_key: String,
    pub published_ms: i64,
    pub published_by: String,
}

/// The releases table.
pub trait ReleaseStore: Send + Sync + std::fmt::Debug {
    /// Stores a checked release; `Ok(false)` when that version and target exist already
    /// (a release is never replaced: publish a new version).
    fn add_release(&self, signed: &SignedManifest, binary: &[u8], at_ms: i64, by: &str) -> Result<bool, StoreError>;

    /// Every release, newest first.
    fn releases(&self) -> Result<Vec<ReleaseInfo>, StoreError>;

    /// A release's signed manifest and binary.
    fn release(&self, version: &str, target: &str) -> Result<Option<(SignedManifest, Vec<u8>)>, StoreError>;

    /// Whether any target of `version` is published.
    fn has_version(&self, version: &str) -> Result<bool, StoreError>;

    /// Sets the release `device` should run (by a rollout, or by hand when `rollout` is
    /// `None`).
    fn set_device_release(
        &self,
        device: &DeviceId,
        version: &str,
        rollout: Option<u64>,
        at_ms: i64,
        by: &str,
    ) -> Result<(), StoreError>;

    /// The release each device should run (only `device`'s when given).
    fn device_releases(&self, device: Option<&DeviceId>) -> Result<Vec<DeviceRelease>, StoreError>;
}

/// The release a device should run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRelease {
    pub device: DeviceId,
    pub version: String,
    pub rollout: Option<u64>,
}

impl DeviceRelease {
    /// A `device_releases` row as stored; `None` for a name that is no device id.
    pub fn from_row(device: String, version: String, rollout: Option<i64>) -> Option<DeviceRelease> {
        let device = DeviceId::new(device).ok()?;
        Some(DeviceRelease { device, version, rollout: rollout.and_then(|r| u64::try_from(r).ok()) })
    }
}
