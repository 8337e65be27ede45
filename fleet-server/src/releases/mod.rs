//! Releases on the fleet (docs/design/updates.md): signed agent binaries ops publish, kept
//! in the fleet's database so every fleet server serves the same ones. The fleet checks a
//! release against `[releases] keys` before it stores it, so nothing a box would refuse is
//! ever rolled out.

pub mod config;
pub mod download;
pub mod publish;
pub mod store;

pub use config::ReleasesConfig;
pub use publish::{PublishRefused, check};
pub use store::{DeviceRelease, ReleaseInfo, ReleaseStore};
