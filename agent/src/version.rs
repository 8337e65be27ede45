//! The version this binary reports (status, heartbeat, update checks).
//!
//! It lives in a fixed 32-byte slot, `SIMPUL-VERSION:` then the version and zeros, built
//! from `CARGO_PKG_VERSION`. Release tooling and the update tests can stamp another version
//! into a copy of the built binary ([`stamp`]) without building it again; the slot is read
//! through `black_box` so the compiler cannot fold the build's value in.

/// The slot's marker.
pub const MARKER: &[u8; 15] = b"SIMPUL-VERSION:";
/// The slot's length.
pub const SLOT: usize = 32;

const fn slot() -> [u8; SLOT] {
    let mut out = [0u8; SLOT];
    let mut i = 0;
    while i < MARKER.len() {
        out[i] = MARKER[i];
        i += 1;
    }
    let v = env!("CARGO_PKG_VERSION").as_bytes();
    let mut j = 0;
    while j < v.len() && MARKER.len() + j < SLOT {
        out[MARKER.len() + j] = v[j];
        j += 1;
    }
    out
}

#[used]
static VERSION_SLOT: [u8; SLOT] = slot();

/// The running binary's version.
pub fn current() -> String {
    // Read from memory, as the bytes are in the binary on disk, stamped or not.
    let slot: &[u8; SLOT] = std::hint::black_box(&VERSION_SLOT);
    parse_slot(slot).unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

fn is_slot(window: &[u8]) -> bool {
    let Some(version) = parse_slot(window) else { return false };
    let end = MARKER.len() + version.len();
    semver::Version::parse(&version).is_ok() && end < SLOT && window[end..].iter().all(|b| *b == 0)
}

fn parse_slot(slot: &[u8]) -> Option<String> {
    let rest = slot.strip_prefix(MARKER.as_slice())?;
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let text = std::str::from_utf8(rest.get(..end)?).ok()?;
    (!text.is_empty()).then(|| text.to_owned())
}

/// Writes `version` into the version slot of `binary` (an agent binary's bytes). Fails when
/// the binary holds no slot, more than one, or the version does not fit.
pub fn stamp(binary: &mut [u8], version: &str) -> Result<(), String> {
    if MARKER.len() + version.len() >= SLOT || semver::Version::parse(version).is_err() {
        return Err(format!("{version:?} is not a version that fits the {SLOT}-byte slot"));
    }
    // The marker's bytes also sit elsewhere (the constant this module compares with): a
    // slot is the marker, a version, and zeros to its end.
    let at: Vec<usize> = binary.windows(SLOT).enumerate().filter(|(_, w)| is_slot(w)).map(|(i, _)| i).collect();
    let [start] = at.as_slice() else { return Err(format!("{} version slots in the binary, not one", at.len())) };
    let slot = binary.get_mut(*start..*start + SLOT).ok_or("the version slot is cut short")?;
    slot.fill(0);
    slot[..MARKER.len()].copy_from_slice(MARKER);
    slot[MARKER.len()..MARKER.len() + version.len()].copy_from_slice(version.as_bytes());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_built_version_is_reported_and_a_stamped_copy_reports_its_own() {
        assert_eq!(current(), env!("CARGO_PKG_VERSION"));
        let mut fake = b"ELF....".to_vec();
        fake.extend_from_slice(&slot());
        fake.extend_from_slice(b"....rest");
        stamp(&mut fake, "9.8.7").unwrap();
        let at = fake.windows(MARKER.len()).position(|w| w == MARKER).unwrap();
        assert_eq!(parse_slot(&fake[at..at + SLOT]).as_deref(), Some("9.8.7"));
        assert!(stamp(&mut fake, "1.0.0-a-very-long-prerelease-tag").is_err());
        assert!(stamp(&mut b"no slot".to_vec(), "1.0.0").is_err());
    }
}
