//! Charger passwords (OCPP security profile 1) are kept as salted SHA-256,
//! compared in constant time.

use sha2::{Digest, Sha256};

pub fn hash(password: &str, salt: &[u8; 16]) -> String {
    let salt_hex = data_encoding::HEXLOWER.encode(salt);
    format!("sha256${salt_hex}${}", digest(&salt_hex, password))
}

pub fn verify(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let got = digest(salt, password);
    got.len() == expected.len() && got.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn digest(salt_hex: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt_hex.as_bytes());
    h.update(password.as_bytes());
    data_encoding::HEXLOWER.encode(&h.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let h = super::hash("s3cret", &[7; 16]);
        assert!(super::verify("s3cret", &h));
        assert!(!super::verify("s3creT", &h));
        assert!(!super::verify("s3cret", "md5$x$y"));
    }
}
