//! Charger passwords (OCPP security profile 1). New hashes are Argon2id in
//! the PHC string format; hashes written before (`sha256$salt$digest`) still
//! verify, and the listener re-hashes them to Argon2id on the next login.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

/// OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane): about 20 ms on
/// one core. The listener caps how many run at once (see `security::auth`).
const M_KIB: u32 = 19 * 1024;
const T: u32 = 2;
const P: u32 = 1;

fn argon2() -> Argon2<'static> {
    // The constants are valid parameters; `Params::new` only fails on out-of-range values.
    let params = Params::new(M_KIB, T, P, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// An Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
pub fn hash(password: &str, salt: &[u8; 16]) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| HashError(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// A fresh salt from the OS generator.
pub fn hash_new(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
    hash(password, &salt)
}

/// Costs ~20 ms for an Argon2id hash: call it off the async runtime.
pub fn verify(password: &str, stored: &str) -> bool {
    if stored.starts_with("sha256$") {
        return verify_legacy(password, stored);
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash in a format or with parameters older than today's.
pub fn outdated(stored: &str) -> bool {
    !stored.starts_with(&format!("$argon2id$v=19$m={M_KIB},t={T},p={P}$"))
}

/// A random password of 40 hex digits (160 bits): usable as HTTP Basic
/// password and, unchanged, as the hex `AuthorizationKey` the OCPP 1.6
/// security whitepaper asks for (and within 2.0.1's 40-character limit).
pub fn generate() -> Result<String, HashError> {
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).map_err(|e| HashError(e.to_string()))?;
    Ok(data_encoding::HEXLOWER.encode(&raw))
}

fn verify_legacy(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(password.as_bytes());
    let got = data_encoding::HEXLOWER.encode(&h.finalize());
    got.len() == expected.len() && got.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn argon2_round_trip() {
        let h = super::hash("s3cret-pass", &[7; 16]).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(super::verify("s3cret-pass", &h));
        assert!(!super::verify("s3cret-pasS", &h));
        assert!(!super::outdated(&h));
    }

    #[test]
    fn legacy_sha256_hashes_still_verify_and_are_outdated() {
        // The previous release's format: sha256$hex(salt)$hex(sha256(hex(salt) || password)).
        let salt = "07070707070707070707070707070707";
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, salt.as_bytes());
        sha2::Digest::update(&mut h, b"s3cret");
        let real = format!(
            "sha256${salt}${}",
            data_encoding::HEXLOWER.encode(&sha2::Digest::finalize(h))
        );
        assert!(super::verify("s3cret", &real));
        assert!(!super::verify("s3creT", &real));
        assert!(super::outdated(&real));
        assert!(!super::verify("s3cret", "md5$x$y"));
    }

    #[test]
    fn generated_passwords_are_40_hex_digits_and_differ() {
        let a = super::generate().unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, super::generate().unwrap());
    }
}
