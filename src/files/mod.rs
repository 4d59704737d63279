//! Files the server keeps for chargers: firmware it serves (content-addressed
//! by sha256 under `<data-dir>/files/firmware/`) and logs chargers upload
//! (under `<data-dir>/files/logs/<charger>/`), and the one-time tokens that
//! let a charger upload. `http` serves both on the OCPP port.

pub mod http;

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub fn firmware_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("files").join("firmware")
}

pub fn logs_dir(data_dir: &Path, charger: &str) -> PathBuf {
    // Charger ids are printable ASCII without '/', but may be "." or "..".
    data_dir.join("files").join("logs").join(safe_name(charger))
}

/// A firmware file kept by the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredFirmware {
    pub sha256: String,
    pub name: String,
    pub bytes: u64,
}

/// Copy `src` into the firmware store under its sha256 (an existing copy is kept).
pub fn add_firmware(data_dir: &Path, src: &Path) -> std::io::Result<StoredFirmware> {
    let dir = firmware_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let mut input = std::fs::File::open(src)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    tmp.as_file().sync_all()?;
    let sha256 = data_encoding::HEXLOWER.encode(&hasher.finalize());
    let dest = dir.join(&sha256);
    if !dest.exists() {
        tmp.persist(&dest).map_err(|e| e.error)?;
    }
    let name = src
        .file_name()
        .map(|n| safe_name(&n.to_string_lossy()))
        .unwrap_or_else(|| "firmware.bin".into());
    Ok(StoredFirmware { sha256, name, bytes })
}

/// The URL a charger downloads a stored firmware file from.
pub fn firmware_url(base: &str, f: &StoredFirmware) -> String {
    format!("{}/files/firmware/{}/{}", base.trim_end_matches('/'), f.sha256, f.name)
}

/// A fresh upload token and the hash the store keeps of it.
pub fn new_upload_token() -> std::io::Result<(String, String)> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token = data_encoding::HEXLOWER.encode(&raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

pub fn upload_url(base: &str, token: &str) -> String {
    format!("{}/upload/{token}", base.trim_end_matches('/'))
}

/// A file name safe to create: letters, digits, `.`, `_`, `-` (others
/// become `_`), no leading dot, at most 100 characters.
pub fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "_".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_their_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name("diag 2026.zip"), "diag_2026.zip");
        assert_eq!(safe_name(""), "_");
    }

    #[test]
    fn firmware_is_stored_under_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("fw v2.bin");
        std::fs::write(&src, b"hello").unwrap();
        let f = add_firmware(dir.path(), &src).unwrap();
        assert_eq!(
            f.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(f.name, "fw_v2.bin");
        assert_eq!(
            std::fs::read(firmware_dir(dir.path()).join(&f.sha256)).unwrap(),
            b"hello"
        );
        assert_eq!(
            firmware_url("http://h:1/", &f),
            format!("http://h:1/files/firmware/{}/fw_v2.bin", f.sha256)
        );
    }

    #[test]
    fn tokens_are_unguessable_and_stored_hashed() {
        let (a, ha) = new_upload_token().unwrap();
        let (b, _) = new_upload_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a), ha);
        assert_ne!(a, ha);
    }
}
