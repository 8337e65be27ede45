//! simpul-provision: the bootstrap bundle a new box reads at first boot
//! (docs/design/trust.md, "The bundle"), and writing it onto a mounted SD card's boot
//! partition. The agent reads the same type ([`Bundle::read`]).

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// Where the bundle lives on the boot partition.
pub const BUNDLE_FILE: &str = "simpul/bundle.toml";

/// Files one of which a Raspberry Pi boot partition has.
const BOOT_MARKERS: &[&str] = &["config.txt", "cmdline.txt"];

/// What a new box needs to enrol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The fleet's device listener, `https://host:port`.
    pub fleet: String,
    /// The fleet's MQTT broker, `host:port`.
    pub broker: String,
    /// The one-time enrolment token (`sple_...`); removed by the agent once spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The device id to enrol as; default the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The site's name, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The group the token was made for (informational: the fleet takes it from the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The fleet CA, PEM: the only root the box trusts.
    pub ca: String,
}

/// What is wrong with a bundle or where it goes.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a bundle: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{0} does not look like a Raspberry Pi boot partition (no config.txt or cmdline.txt); pass --force if it is"
    )]
    NotBoot(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.display().to_string(), source }
}

impl Bundle {
    /// Every problem, in words (empty: fine).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let host_port = |s: &str| s.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        match self.fleet.strip_prefix("https://") {
            Some(rest) if host_port(rest.trim_end_matches('/')) => {}
            _ => out.push(format!("fleet {:?} must be https://host:port (the device listener)", self.fleet)),
        }
        if !host_port(&self.broker) {
            out.push(format!("broker {:?} must be host:port", self.broker));
        }
        if let Some(t) = &self.token {
            if !t.starts_with("sple_") || t.split('_').count() != 4 {
                out.push(
                    "token is not an enrolment token (sple_...): make one with `simpul-fleet tokens create --group G`"
                        .to_owned(),
                );
            }
        }
        let certs: Vec<_> = CertificateDer::pem_slice_iter(self.ca.as_bytes()).collect();
        if certs.is_empty() || certs.iter().any(Result::is_err) {
            out.push("ca is not a PEM certificate (the fleet's ca.pem)".to_owned());
        }
        out
    }

    /// Reads and checks a bundle file.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let bundle: Bundle = toml::from_str(&text)
            .map_err(|e| BundleError::Parse { path: path.display().to_string(), message: e.to_string() })?;
        let problems = bundle.problems();
        if !problems.is_empty() {
            return Err(BundleError::Invalid(format!("{}: {}", path.display(), problems.join("; "))));
        }
        Ok(bundle)
    }

    /// Writes the bundle to `path` (its folder made if needed), whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(BundleError::Invalid(problems.join("; ")));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let text = toml::to_string(self).map_err(|e| BundleError::Invalid(e.to_string()))?;
        let text = format!("# Simpul bootstrap bundle: the box reads it at first boot (docs/design/trust.md).\n{text}");
        // 0600: it holds the token (where the file system keeps modes; a FAT boot partition does not).
        simpul_base::fs::write_atomic(path, text.as_bytes(), 0o600).map_err(io(path))
    }
}

/// Writes `bundle` onto the boot partition mounted at `boot`; returns the file written.
/// Refuses a folder that is not a Pi boot partition unless `force`.
pub fn provision(boot: &Path, bundle: &Bundle, force: bool) -> Result<PathBuf, BundleError> {
    if !boot.is_dir() {
        return Err(BundleError::NotBoot(boot.display().to_string()));
    }
    if !force && !BOOT_MARKERS.iter().any(|m| boot.join(m).exists()) {
        return Err(BundleError::NotBoot(boot.display().to_string()));
    }
    let path = boot.join(BUNDLE_FILE);
    bundle.write(&path)?;
    Ok(path)
}
