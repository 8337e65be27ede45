//! The token format: `spl_{id}_{secret}`, `id` 8 random bytes and `secret` 32 random bytes,
//! both lowercase hex. The `spl_` prefix lets secret scanners and people recognise a Simpul
//! token; `id` is stored in clear and finds the row (and names the token in lists and
//! logs); the secret is stored only as an argon2id hash ([`super::password::hash_secret`]).
//! API tokens and login sessions have the same format.
//!
//! Enrolment tokens (docs/design/trust.md) name their fleet too: `sple_{fleet}_{id}_{secret}`,
//! `fleet` the 16 hex digits of the fleet id, so a fleet can tell a token of another fleet
//! from a made-up one.

use argon2::password_hash::rand_core::{OsRng, RngCore};

/// The prefix of every token.
pub const PREFIX: &str = "spl_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A freshly generated token.
#[derive(Debug)]
pub struct Generated {
    /// The public id (hex).
    pub id: String,
    /// The secret bytes: hash them, show the [`Generated::text`] once, forget them.
    pub secret: Vec<u8>,
    /// The whole token as the holder sends it.
    pub text: String,
}

/// The prefix of an enrolment token.
pub const ENROL_PREFIX: &str = "sple_";
const FLEET_ID_HEX: usize = 16;

/// Generates an enrolment token of fleet `fleet_id` (16 hex digits).
pub fn generate_enrolment(fleet_id: &str) -> Generated {
    let g = generate();
    let text = format!("{ENROL_PREFIX}{fleet_id}_{}", &g.text[PREFIX.len()..]);
    Generated { text, ..g }
}

/// An enrolment token taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct EnrolmentParts<'a> {
    pub fleet: &'a str,
    pub id: &'a str,
    pub secret: Vec<u8>,
}

/// Splits a presented enrolment token; `None` if it is not one.
pub fn parse_enrolment(text: &str) -> Option<EnrolmentParts<'_>> {
    let (fleet, rest) = text.strip_prefix(ENROL_PREFIX)?.split_once('_')?;
    if fleet.len() != FLEET_ID_HEX || unhex(fleet).is_none() {
        return None;
    }
    let (id, secret) = parse_parts(rest)?;
    Some(EnrolmentParts { fleet, id, secret })
}

/// Generates a token from the operating system's random source.
pub fn generate() -> Generated {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut id);
    OsRng.fill_bytes(&mut secret);
    let id = hex(&id);
    let text = format!("{PREFIX}{id}_{}", hex(&secret));
    Generated { id, secret: secret.to_vec(), text }
}

/// Splits a presented token into its id and secret bytes; `None` if it is not one.
pub fn parse(text: &str) -> Option<(&str, Vec<u8>)> {
    parse_parts(text.strip_prefix(PREFIX)?)
}

/// `{id}_{secret}`, checked.
fn parse_parts(text: &str) -> Option<(&str, Vec<u8>)> {
    let (id, secret) = text.split_once('_')?;
    if id.len() != ID_BYTES * 2 || unhex(id).is_none() {
        return None;
    }
    let secret = unhex(secret).filter(|s| s.len() == SECRET_BYTES)?;
    Some((id, secret))
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Lowercase hex (as tokens are written) to bytes; anything else is `None`.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_to_its_id_and_secret() {
        let t = generate();
        assert!(t.text.starts_with("spl_"));
        assert_eq!(t.text.len(), 4 + 16 + 1 + 64);
        let (id, secret) = parse(&t.text).unwrap();
        assert_eq!((id, secret), (t.id.as_str(), t.secret.clone()));
        assert_ne!(generate().text, t.text);
    }

    #[test]
    fn an_enrolment_token_names_its_fleet_and_parses_back() {
        let g = generate_enrolment("0123456789abcdef");
        assert!(g.text.starts_with("sple_0123456789abcdef_"), "{}", g.text);
        let p = parse_enrolment(&g.text).unwrap();
        assert_eq!((p.fleet, p.id, p.secret.clone()), ("0123456789abcdef", g.id.as_str(), g.secret));
        assert_eq!(parse(&g.text), None, "not an API token");
        assert_eq!(parse_enrolment(&generate().text), None, "an API token is not an enrolment token");
        assert_eq!(parse_enrolment("sple_0123_00_00"), None);
    }

    #[test]
    fn anything_else_is_not_a_token() {
        for bad in ["", "spl_", "spl_abc_def", "Bearer x", "spl_0123456789abcdef_zz", "spl_0123456789ABCDEF_00"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        let t = generate();
        assert!(parse(&t.text[..t.text.len() - 2]).is_none(), "a short secret");
    }
}
