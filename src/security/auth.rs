//! Security profile 1 at the handshake: HTTP Basic passwords checked off the
//! async runtime, failed attempts throttled per charger id and per source
//! address, and a charger's successful reconnects verified without Argon2.

use crate::domain::Charger;
use crate::domain::model::Event;
use crate::server::Shared;
use crate::store::{AdminOp, SecurityOp};
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Failures a charger id may have before it is throttled.
const FREE_PER_ID: u32 = 3;
/// Many chargers may share an address (NAT, a site's router).
const FREE_PER_IP: u32 = 10;
/// Wrong control tokens an address may send before it is throttled.
const FREE_CONTROL: u32 = 3;
/// The longest wait imposed after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Beyond this many tracked keys, old ones are forgotten.
const MAX_TRACKED: usize = 10_000;

/// The outcome of checking a handshake's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The charger has no password (or is unknown).
    NotNeeded,
    Ok,
    /// No or malformed credentials: the usual first step of HTTP Basic.
    Missing,
    Wrong,
    /// Too many failures: retry after this many seconds.
    Throttled(u64),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key<'a> {
    Id(&'a str),
    Ip(IpAddr),
    /// Control-token attempts, counted apart from charger passwords.
    Control(IpAddr),
}

#[derive(Hash, PartialEq, Eq)]
enum OwnedKey {
    Id(String),
    Ip(IpAddr),
    Control(IpAddr),
}

impl Key<'_> {
    fn owned(self) -> OwnedKey {
        match self {
            Key::Id(s) => OwnedKey::Id(s.to_string()),
            Key::Ip(ip) => OwnedKey::Ip(ip),
            Key::Control(ip) => OwnedKey::Control(ip),
        }
    }
}

struct Failures {
    count: u32,
    until: Instant,
}

pub struct Guard {
    failures: Mutex<HashMap<OwnedKey, Failures>>,
    /// id → digest of (secret, id, password, stored hash) of the last
    /// successful login: a reconnect storm costs a SHA-256 per charger, not
    /// 20 ms of Argon2. The key is random per process, so the table is
    /// useless to anyone who reads memory without it; a changed hash
    /// invalidates the entry.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    secret: [u8; 32],
    /// Argon2 takes 19 MiB per verification: at most this many at once.
    permits: Semaphore,
}

impl Default for Guard {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        if getrandom::fill(&mut secret).is_err() {
            // Without a secret the cache would be guessable: run without it.
            tracing::warn!("no OS randomness; password checks will not be cached");
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Guard {
            failures: Mutex::default(),
            verified: Mutex::default(),
            secret,
            permits: Semaphore::new(cores),
        }
    }
}

impl Guard {
    fn digest(&self, id: &str, password: &str, hash: &str) -> Option<[u8; 32]> {
        if self.secret == [0u8; 32] {
            return None;
        }
        let mut h = Sha256::new();
        for part in [&self.secret[..], id.as_bytes(), password.as_bytes(), hash.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Some(h.finalize().into())
    }

    fn throttled(&self, keys: &[Key]) -> Option<u64> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        keys.iter()
            .filter_map(|k| map.get(&k.owned()))
            .filter(|f| f.until > now)
            .map(|f| (f.until - now).as_secs() + 1)
            .max()
    }

    /// Count a failure; returns the failure count for the id.
    fn fail(&self, keys: &[(Key, u32)]) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() > MAX_TRACKED {
            map.retain(|_, f| f.until + MAX_BACKOFF > now);
        }
        let mut first = 0;
        for (i, (k, free)) in keys.iter().enumerate() {
            let f = map.entry(k.owned()).or_insert(Failures { count: 0, until: now });
            f.count = f.count.saturating_add(1);
            if f.count > *free {
                let wait = Duration::from_secs(1u64 << (f.count - free - 1).min(16)).min(MAX_BACKOFF);
                f.until = now + wait;
            }
            if i == 0 {
                first = f.count;
            }
        }
        first
    }

    fn succeed(&self, id: &str, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&OwnedKey::Id(id.to_string()));
        map.remove(&OwnedKey::Ip(ip));
    }

    /// Seconds `ip` must still wait after wrong control tokens.
    pub fn control_throttled(&self, ip: IpAddr) -> Option<u64> {
        self.throttled(&[Key::Control(ip)])
    }

    /// Count a wrong control token from `ip`; returns its failure count.
    pub fn control_failed(&self, ip: IpAddr) -> u32 {
        self.fail(&[(Key::Control(ip), FREE_CONTROL)])
    }

    pub fn control_succeeded(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&OwnedKey::Control(ip));
    }

    /// Forget a charger's cached login (its password changed).
    pub fn forget(&self, id: &str) {
        self.verified.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// Check the `Authorization` header of a handshake for a known charger.
pub async fn check(shared: &Shared, ch: &Charger, ip: IpAddr, authorization: Option<&str>) -> Verdict {
    if ch.password_hash.is_none() && ch.password_pending.is_none() {
        return Verdict::NotNeeded;
    }
    let guard = &shared.guard;
    let keys = [Key::Id(&ch.id), Key::Ip(ip)];
    if let Some(secs) = guard.throttled(&keys) {
        tracing::warn!(charger = ch.id, %ip, "handshake throttled after failed passwords");
        return Verdict::Throttled(secs);
    }
    let Some((user, password)) = authorization.and_then(basic) else {
        return Verdict::Missing;
    };
    let hashes: Vec<String> = ch.password_hash.iter().chain(&ch.password_pending).cloned().collect();
    let cached = guard
        .verified
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&ch.id)
        .copied();
    let hit = cached.and_then(|c| {
        hashes
            .iter()
            .find(|h| guard.digest(&ch.id, &password, h) == Some(c))
            .cloned()
    });
    let matched = if user != ch.id {
        None
    } else if hit.is_some() {
        hit
    } else {
        verify_blocking(guard, password.clone(), hashes).await
    };
    let Some(hash) = matched else {
        let n = guard.fail(&[(Key::Id(&ch.id), FREE_PER_ID), (Key::Ip(ip), FREE_PER_IP)]);
        let detail = format!("wrong password from {ip} (failure {n} in a row)");
        tracing::warn!(charger = ch.id, "{detail}");
        record(shared, &ch.id, "auth_failed", detail).await;
        return Verdict::Wrong;
    };
    guard.succeed(&ch.id, ip);
    if ch.password_pending.as_deref() == Some(hash.as_str()) {
        // The charger took the new password even if its answer was lost.
        let op = SecurityOp::PasswordConfirm {
            id: ch.id.clone(),
            hash: hash.clone(),
        };
        let _ = shared.store.admin(AdminOp::Security(op), Utc::now()).await;
    }
    let stored = if crate::domain::password::outdated(&hash) {
        rehash(shared, &ch.id, &password, &hash).await.unwrap_or(hash)
    } else {
        hash
    };
    if let Some(d) = guard.digest(&ch.id, &password, &stored) {
        guard
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ch.id.clone(), d);
    }
    Verdict::Ok
}

/// The stored hash the password matches, checked on the blocking pool.
async fn verify_blocking(guard: &Guard, password: String, hashes: Vec<String>) -> Option<String> {
    let _permit = guard.permits.acquire().await.ok()?;
    tokio::task::spawn_blocking(move || {
        hashes
            .into_iter()
            .find(|h| crate::domain::password::verify(&password, h))
    })
    .await
    .ok()
    .flatten()
}

/// Migrate a legacy (salted SHA-256) hash to Argon2id now that the
/// password is known; returns the new hash once stored.
async fn rehash(shared: &Shared, id: &str, password: &str, old: &str) -> Option<String> {
    let _permit = shared.guard.permits.acquire().await.ok()?;
    let pw = password.to_string();
    let new = tokio::task::spawn_blocking(move || crate::domain::password::hash_new(&pw))
        .await
        .ok()?
        .ok()?;
    let op = SecurityOp::PasswordRehash {
        id: id.to_string(),
        old: old.to_string(),
        new: new.clone(),
    };
    shared.store.admin(AdminOp::Security(op), Utc::now()).await.ok()?;
    tracing::info!(charger = id, "password hash upgraded to Argon2id");
    Some(new)
}

pub async fn record(shared: &Shared, charger: &str, kind: &str, detail: String) {
    let e = Event {
        t: Utc::now(),
        charger: Some(charger.to_string()),
        kind: kind.to_string(),
        detail,
        device: None,
    };
    if let Err(e) = shared.store.admin(AdminOp::Record(e), Utc::now()).await {
        tracing::error!(charger, "cannot record a security event: {e}");
    }
}

fn basic(header: &str) -> Option<(String, String)> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = data_encoding::BASE64.decode(b64.trim().as_bytes()).ok()?;
    let creds = String::from_utf8(raw).ok()?;
    let (user, password) = creds.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_the_free_failures_and_grows() {
        let g = Guard::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let keys = [(Key::Id("CP"), FREE_PER_ID), (Key::Ip(ip), FREE_PER_IP)];
        for _ in 0..FREE_PER_ID {
            g.fail(&keys);
            assert_eq!(g.throttled(&[Key::Id("CP")]), None);
        }
        g.fail(&keys);
        assert_eq!(g.throttled(&[Key::Id("CP")]), Some(1));
        g.fail(&keys);
        assert_eq!(g.throttled(&[Key::Id("CP")]), Some(2));
        // Another charger behind the same address is not yet throttled.
        assert_eq!(g.throttled(&[Key::Id("OTHER"), Key::Ip(ip)]), None);
        g.succeed("CP", ip);
        assert_eq!(g.throttled(&[Key::Id("CP"), Key::Ip(ip)]), None);
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(basic("Basic Q1A6cHc6eA=="), Some(("CP".into(), "pw:x".into())));
        assert_eq!(basic("Bearer x"), None);
        assert_eq!(basic("Basic !!!"), None);
    }
}
