//! Password and secret hashes: argon2id, stored as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so the parameters travel with the hash
//! and can be raised later without breaking old hashes. Blocking (tens of ms for a
//! password): call from `spawn_blocking`.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Hashes a person's password: argon2id with the crate's defaults (19 MiB, 2 passes, the
/// OWASP recommendation), a random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    hash_with(&Argon2::default(), password.as_bytes())
}

/// Hashes a token's random secret. 256 random bits need no key stretching, only a one-way
/// function, so the parameters are light (1 MiB, 1 pass): every API request verifies one.
pub fn hash_secret(secret: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let params = Params::new(1024, 1, 1, None)?;
    hash_with(&Argon2::new(Algorithm::Argon2id, Version::V0x13, params), secret)
}

fn hash_with(argon: &Argon2<'_>, secret: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon.hash_password(secret, &salt)?.to_string())
}

/// Whether `secret` matches the PHC string `phc` (its own parameters). A malformed hash
/// matches nothing.
pub fn verify(secret: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(secret, &hash).is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of a password check when there is no such user, so a wrong user name
/// and a wrong password take the same time.
pub fn verify_nobody(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash_password("no such user, no such password").ok()) {
        let _ = verify(password.as_bytes(), phc);
    }
}

/// Why a new password is refused, if it is.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("a password needs at least {MIN_PASSWORD_LEN} characters"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_an_argon2id_phc_string_that_verifies_only_the_right_password() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify(b"correct horse battery", &phc));
        assert!(!verify(b"correct horse batterY", &phc));
        assert!(!verify(b"anything", "not a phc string"));
        let secret = hash_secret(&[7; 32]).unwrap();
        assert!(verify(&[7; 32], &secret) && !verify(&[8; 32], &secret));
    }
}
