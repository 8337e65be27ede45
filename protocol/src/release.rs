//! Signed releases (docs/design/updates.md): what a release says about its binary, the
//! exact bytes an ed25519 release key signs, and the checks a box makes before it runs a
//! binary it downloaded.
//!
//! The signature covers a canonical text, not JSON, so no serializer's choices (key order,
//! spacing, number forms) can make two parties disagree on what was signed:
//!
//! ```text
//! simpul-release v1
//! version 1.4.0
//! target aarch64-unknown-linux-gnu
//! sha256 <64 hex digits>
//! size 6123456
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line of the signed text; a new layout gets a new one.
const DOMAIN: &str = "simpul-release v1";

/// The HTTP header that carries a release's signed manifest (JSON, one line): on publish
/// (ops to fleet) and on download (fleet to box).
pub const SIGNATURE_HEADER: &str = "simpul-release-signature";

/// The targets a release may be built for.
pub const TARGETS: [&str; 3] =
    ["aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf", "x86_64-unknown-linux-gnu"];

/// What a release says about its binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Semantic version, e.g. `1.4.0`.
    pub version: String,
    /// The Rust target triple it runs on (one of [`TARGETS`]).
    pub target: String,
    /// SHA-256 of the binary, lowercase hex.
    pub sha256: String,
    /// The binary's length in bytes.
    pub size: u64,
}

/// A manifest with its signature: what `simpul-fleet releases sign` writes beside the
/// binary (`<binary>.sig`, JSON), the fleet stores, and a box checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    pub manifest: Manifest,
    /// The release key's public half, 64 hex digits (which pinned key to check against).
    pub public_key: String,
    /// The ed25519 signature over [`Manifest::signed_text`], 128 hex digits.
    pub signature: String,
}

/// Why a release is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("the release is not signed")]
    Unsigned,
    #[error("the release is signed by key {key}, which this box does not trust (its pinned release keys: {pinned})")]
    UnknownKey { key: String, pinned: String },
    #[error("the release's signature does not hold: it was not made by key {key} over this manifest")]
    BadSignature { key: String },
    #[error("the binary's SHA-256 is {found}, the signed manifest says {signed}: it was changed or cut short")]
    HashMismatch { signed: String, found: String },
    #[error("the binary is {found} bytes, the signed manifest says {signed}")]
    SizeMismatch { signed: u64, found: u64 },
    #[error("{0:?} is not a version (x.y.z)")]
    BadVersion(String),
    #[error("the release is for {offered}, this box is {here}")]
    WrongTarget { offered: String, here: String },
    #[error("version {offered} is not newer than the running {running}: a box never goes back by an update")]
    NotNewer { offered: String, running: String },
    #[error("{what} is not {len} hex digits")]
    BadHex { what: &'static str, len: usize },
}

impl Manifest {
    /// The manifest of `binary`.
    pub fn of(binary: &[u8], version: &str, target: &str) -> Result<Manifest, ReleaseError> {
        parse_version(version)?;
        if !TARGETS.contains(&target) {
            return Err(ReleaseError::WrongTarget { offered: target.to_owned(), here: TARGETS.join(", ") });
        }
        Ok(Manifest {
            version: version.to_owned(),
            target: target.to_owned(),
            sha256: sha256_hex(binary),
            size: binary.len() as u64,
        })
    }

    /// The exact bytes the release key signs.
    pub fn signed_text(&self) -> String {
        format!(
            "{DOMAIN}\nversion {}\ntarget {}\nsha256 {}\nsize {}\n",
            self.version, self.target, self.sha256, self.size
        )
    }

    /// Signs the manifest with `key`.
    pub fn sign(self, key: &SigningKey) -> SignedManifest {
        let signature = key.sign(self.signed_text().as_bytes());
        SignedManifest {
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
            manifest: self,
        }
    }
}

impl SignedManifest {
    /// Checks the signature against `pinned` keys: signed, by one of them, over this
    /// manifest. Says nothing yet of the binary (see [`SignedManifest::check_binary`]).
    pub fn verify(&self, pinned: &[VerifyingKey]) -> Result<(), ReleaseError> {
        if self.signature.is_empty() || self.public_key.is_empty() {
            return Err(ReleaseError::Unsigned);
        }
        let key = parse_public_key(&self.public_key)?;
        if !pinned.contains(&key) {
            let pinned = pinned.iter().map(|k| hex::encode(k.as_bytes())).collect::<Vec<_>>().join(", ");
            return Err(ReleaseError::UnknownKey { key: self.public_key.clone(), pinned });
        }
        let bytes: [u8; 64] = decode_hex(&self.signature, "the signature")?;
        let signature = Signature::from_bytes(&bytes);
        key.verify(self.manifest.signed_text().as_bytes(), &signature)
            .map_err(|_| ReleaseError::BadSignature { key: self.public_key.clone() })?;
        parse_version(&self.manifest.version)?;
        Ok(())
    }

    /// Checks a binary of `size` bytes and SHA-256 `sha256` (hex) is the one signed for.
    pub fn check_binary(&self, sha256: &str, size: u64) -> Result<(), ReleaseError> {
        if size != self.manifest.size {
            return Err(ReleaseError::SizeMismatch { signed: self.manifest.size, found: size });
        }
        if !sha256.eq_ignore_ascii_case(&self.manifest.sha256) {
            return Err(ReleaseError::HashMismatch { signed: self.manifest.sha256.clone(), found: sha256.to_owned() });
        }
        Ok(())
    }

    /// Checks the release fits a box on `target` running `running`: same target, newer.
    pub fn check_fits(&self, target: &str, running: &str) -> Result<(), ReleaseError> {
        if self.manifest.target != target {
            return Err(ReleaseError::WrongTarget { offered: self.manifest.target.clone(), here: target.to_owned() });
        }
        if parse_version(&self.manifest.version)? <= parse_version(running)? {
            return Err(ReleaseError::NotNewer { offered: self.manifest.version.clone(), running: running.to_owned() });
        }
        Ok(())
    }
}

/// A version as semver.
pub fn parse_version(v: &str) -> Result<semver::Version, ReleaseError> {
    semver::Version::parse(v).map_err(|_| ReleaseError::BadVersion(v.to_owned()))
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A streaming SHA-256 (for a binary downloaded in pieces).
#[derive(Clone, Debug, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest, lowercase hex.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// A release public key from its 64 hex digits (as pinned in `[update] keys`).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, ReleaseError> {
    let bytes: [u8; 32] = decode_hex(text.trim(), "a release public key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| ReleaseError::BadHex { what: "a release public key", len: 64 })
}

fn decode_hex<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], ReleaseError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| ReleaseError::BadHex { what, len: N * 2 })?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: &str = "aarch64-unknown-linux-gnu";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_release_signed_by_a_pinned_key_verifies_and_fits_a_box_running_an_older_version() {
        let binary = b"\x7fELF pretend".to_vec();
        let signed = Manifest::of(&binary, "1.4.0", T).unwrap().sign(&key(1));
        let pinned = [key(9).verifying_key(), key(1).verifying_key()];
        signed.verify(&pinned).unwrap();
        signed.check_binary(&sha256_hex(&binary), binary.len() as u64).unwrap();
        signed.check_fits(T, "1.3.9").unwrap();
        let text = serde_json::to_string(&signed).unwrap();
        assert_eq!(serde_json::from_str::<SignedManifest>(&text).unwrap(), signed, "the .sig file round-trips");
    }

    #[test]
    fn unsigned_wrongly_signed_tampered_older_and_foreign_releases_are_each_refused_with_their_reason() {
        let binary = b"new agent".to_vec();
        let good = Manifest::of(&binary, "2.0.0", T).unwrap().sign(&key(1));
        let pinned = [key(1).verifying_key()];

        let unsigned = SignedManifest { signature: String::new(), public_key: String::new(), ..good.clone() };
        assert_eq!(unsigned.verify(&pinned), Err(ReleaseError::Unsigned));

        let other = Manifest::of(&binary, "2.0.0", T).unwrap().sign(&key(2));
        assert!(matches!(other.verify(&pinned), Err(ReleaseError::UnknownKey { .. })));

        // The other key's signature under the pinned key's name.
        let forged = SignedManifest { public_key: good.public_key.clone(), ..other };
        assert!(matches!(forged.verify(&pinned), Err(ReleaseError::BadSignature { .. })));

        // Any field changed after signing breaks the signature.
        for tamper in [
            |m: &mut Manifest| m.version = "9.0.0".to_owned(),
            |m: &mut Manifest| m.target = "x86_64-unknown-linux-gnu".to_owned(),
            |m: &mut Manifest| m.sha256 = "00".repeat(32),
            |m: &mut Manifest| m.size += 1,
        ] {
            let mut t = good.clone();
            tamper(&mut t.manifest);
            assert!(matches!(t.verify(&pinned), Err(ReleaseError::BadSignature { .. })), "{t:?}");
        }

        let mut cut = binary.clone();
        cut.pop();
        assert!(matches!(
            good.check_binary(&sha256_hex(&cut), cut.len() as u64),
            Err(ReleaseError::SizeMismatch { .. })
        ));
        let mut changed = binary.clone();
        changed[0] ^= 1;
        let e = good.check_binary(&sha256_hex(&changed), changed.len() as u64);
        assert!(matches!(e, Err(ReleaseError::HashMismatch { .. })));

        assert!(matches!(good.check_fits(T, "2.0.0"), Err(ReleaseError::NotNewer { .. })), "the same version");
        assert!(matches!(good.check_fits(T, "2.1.0"), Err(ReleaseError::NotNewer { .. })), "an older one");
        let e = good.check_fits("armv7-unknown-linux-gnueabihf", "1.0.0");
        assert!(matches!(e, Err(ReleaseError::WrongTarget { .. })));

        assert!(matches!(Manifest::of(&binary, "two", T), Err(ReleaseError::BadVersion(_))));
        assert!(matches!(parse_public_key("abcd"), Err(ReleaseError::BadHex { .. })));
        let garbage = SignedManifest { signature: "zz".repeat(64), ..good.clone() };
        assert!(matches!(garbage.verify(&pinned), Err(ReleaseError::BadHex { .. })));
    }

    #[test]
    fn the_signed_text_is_the_documented_layout() {
        let m = Manifest { version: "1.4.0".into(), target: T.into(), sha256: "ab".repeat(32), size: 7 };
        let want = format!("simpul-release v1\nversion 1.4.0\ntarget {T}\nsha256 {}\nsize 7\n", "ab".repeat(32));
        assert_eq!(m.signed_text(), want);
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), sha256_hex(b"abc"));
    }
}
