//! Keeping chargers' local authorization lists in sync with the token
//! store: a full list on the operator's first sync, when a charger
//! reconnects holding another version, or after it answered
//! VersionMismatch / Failed; a differential update to connected chargers
//! when tokens change. Only chargers with a list row are managed (see
//! `domain::ops::LocalList`); one sync per charger runs at a time.

use super::proto::{ApiError, ErrorKind};
use super::server::internal;
use crate::domain::message::{Command, CommandResult};
use crate::domain::ops::{self, ListEntry, LocalList};
use crate::domain::{DEFAULT_SITE, Protocol};
use crate::ocpp::registry::CallError;
use crate::server::Shared;
use crate::store::{AdminOp, OpsOp};
use chrono::Utc;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// One lock per charger, so a token change and a reconnect do not send
/// two lists with the same version; and the chargers with an automatic
/// sync waiting to start, so a burst of token changes costs one sync each.
#[derive(Default)]
pub struct SyncLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    waiting: Mutex<HashSet<String>>,
}

impl SyncLocks {
    fn of(&self, charger: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(charger.to_string()).or_default().clone()
    }

    /// False when an automatic sync of `charger` is already waiting.
    fn queue(&self, charger: &str) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(charger.to_string())
    }

    fn started(&self, charger: &str) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(charger);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Whatever brings a managed charger up to date (nothing when it is).
    Auto,
    /// The operator's sync: starts managing the charger, and asks again
    /// one that answered NotSupported.
    Operator,
    /// The operator's sync with a full list whatever the charger holds.
    Full,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub charger: String,
    /// full, differential, or none (already up to date).
    pub update: &'static str,
    pub version: i64,
    pub entries: usize,
    pub messages: usize,
}

/// Tokens changed: bring every managed, connected charger up to date.
pub fn tokens_changed(shared: &Arc<Shared>) {
    let lists = match shared.store.local_lists() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("local lists not synced after a token change: {e}");
            return;
        }
    };
    for list in lists.into_iter().filter(|l| !l.not_supported) {
        if shared.registry.live(&list.charger).is_some() {
            spawn(shared.clone(), list.charger);
        }
    }
}

/// A managed charger booted: check its version and send what it lacks.
pub fn booted(shared: &Arc<Shared>, charger: &str) {
    if let Ok(Some(list)) = shared.store.local_list(charger)
        && !list.not_supported
    {
        spawn(shared.clone(), charger.to_string());
    }
}

fn spawn(shared: Arc<Shared>, charger: String) {
    // The waiting sync will see this change too: it reads the tokens when it starts.
    if !shared.ops.local_lists.queue(&charger) {
        return;
    }
    tokio::spawn(async move {
        let lock = shared.ops.local_lists.of(&charger);
        let _held = lock.lock().await;
        shared.ops.local_lists.started(&charger);
        if let Err(e) = sync_locked(&shared, &charger, Mode::Auto, None).await {
            tracing::info!(charger, "local list not synced: {}", e.message);
        }
    });
}

fn call_error(e: CallError) -> ApiError {
    let kind = match &e {
        CallError::NotConnected(_) | CallError::Closed => ErrorKind::NotConnected,
        CallError::Busy(_) => ErrorKind::Busy,
        CallError::Timeout(_) => ErrorKind::Timeout,
        CallError::Remote { .. } | CallError::BadAnswer(_) => ErrorKind::Rejected,
        CallError::Invalid(_) => ErrorKind::Invalid,
    };
    ApiError::new(kind, e.to_string())
}

async fn call(shared: &Shared, charger: &str, cmd: Command) -> Result<CommandResult, CallError> {
    let wait = shared.config.call_timeout() * 2 + std::time::Duration::from_secs(5);
    shared.registry.call(charger, cmd, wait).await
}

/// A charger that does not do local lists says so with NotSupported (as a
/// status or, for a charger without the feature profile, a CALLERROR).
fn unsupported(r: &Result<CommandResult, CallError>) -> bool {
    match r {
        Ok(CommandResult::Status { status, .. }) => status == "NotSupported",
        Err(CallError::Remote { code, .. }) => code == "NotSupported" || code == "NotImplemented",
        _ => false,
    }
}

/// Sync one charger's list. `groups` (operator's sync only) replaces the
/// group limit.
pub async fn sync(
    shared: &Shared,
    charger: &str,
    mode: Mode,
    groups: Option<Vec<String>>,
) -> Result<SyncReport, ApiError> {
    let lock = shared.ops.local_lists.of(charger);
    let _held = lock.lock().await;
    sync_locked(shared, charger, mode, groups).await
}

/// [`sync`] with the charger's lock held.
async fn sync_locked(
    shared: &Shared,
    charger: &str,
    mode: Mode,
    groups: Option<Vec<String>>,
) -> Result<SyncReport, ApiError> {
    let store = &shared.store;
    let Some(ch) = store.charger(charger).map_err(internal)? else {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {charger}")));
    };
    let mut list = match store.local_list(charger).map_err(internal)? {
        Some(l) => l,
        None if mode != Mode::Auto => LocalList {
            charger: charger.to_string(),
            ..Default::default()
        },
        None => return Err(ApiError::new(ErrorKind::NotFound, "local list not managed")),
    };
    if let Some(g) = groups {
        list.groups = g;
    }
    if mode != Mode::Auto {
        list.not_supported = false;
    } else if list.not_supported {
        return Err(ApiError::new(
            ErrorKind::Rejected,
            "the charger does not support local lists",
        ));
    }
    let Some(live) = shared.registry.live(charger) else {
        save(shared, list).await?;
        return Err(ApiError::new(
            ErrorKind::NotConnected,
            format!("charger {charger} is not connected; its list is sent when it connects"),
        ));
    };
    let result = run(shared, &ch.site, live.protocol, &mut list, mode).await;
    if let Err(e) = &result {
        list.last_error = Some(e.message.clone());
    }
    save(shared, list).await?;
    result
}

async fn save(shared: &Shared, list: LocalList) -> Result<(), ApiError> {
    super::server::admin(shared, AdminOp::Ops(OpsOp::LocalList(Box::new(list)))).await?;
    Ok(())
}

async fn run(
    shared: &Shared,
    site: &str,
    proto: Protocol,
    list: &mut LocalList,
    mode: Mode,
) -> Result<SyncReport, ApiError> {
    let charger = list.charger.clone();
    if mode != Mode::Auto || list.per_message.is_none() {
        read_limits(shared, proto, list).await;
    }
    let answer = call(shared, &charger, Command::GetLocalListVersion).await;
    if unsupported(&answer) {
        list.not_supported = true;
        return Err(ApiError::new(
            ErrorKind::Rejected,
            format!("charger {charger} does not support local lists; not retried until the next `local-list sync`"),
        ));
    }
    let held = match answer.map_err(call_error)? {
        CommandResult::ListVersion { version } => version,
        _ => -1,
    };
    let now = Utc::now();
    let tokens = shared.store.tokens().map_err(internal)?;
    let sites = shared.store.sites().map_err(internal)?;
    let Some(site) = sites
        .iter()
        .find(|s| s.name == site)
        .or_else(|| sites.iter().find(|s| s.name == DEFAULT_SITE))
    else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("site {site} does not exist"),
        ));
    };
    let desired = ops::desired(&tokens, site, &list.groups, list.max_entries, now);
    let stale = mode == Mode::Full || held != list.version || list.version <= 0;
    let mut full = stale;
    let mut entries = if full {
        desired.iter().map(|(uid, item)| entry(uid, item)).collect()
    } else {
        ops::diff(&list.entries, &desired)
    };
    if !full && entries.is_empty() {
        list.synced_at = Some(now);
        list.last_error = None;
        return Ok(SyncReport {
            charger,
            update: "none",
            version: list.version,
            entries: desired.len(),
            messages: 0,
        });
    }
    let mut version = held.max(list.version).max(0);
    let mut messages = 0;
    loop {
        match send(
            shared,
            proto,
            &charger,
            list,
            full,
            entries,
            &mut version,
            &mut messages,
        )
        .await?
        {
            Sent::Done => break,
            Sent::Mismatch if !full => {
                // The charger holds something else than we think: start over.
                full = true;
                entries = desired.iter().map(|(uid, item)| entry(uid, item)).collect();
            }
            Sent::Mismatch => {
                list.version = -1;
                return Err(ApiError::new(
                    ErrorKind::Rejected,
                    format!("charger {charger} refused the full local list"),
                ));
            }
            Sent::NotSupported => {
                list.not_supported = true;
                return Err(ApiError::new(
                    ErrorKind::Rejected,
                    format!("charger {charger} does not support local lists"),
                ));
            }
        }
    }
    list.version = version;
    list.hash = ops::content_hash(&desired);
    list.entries = desired;
    list.synced_at = Some(now);
    list.last_error = None;
    Ok(SyncReport {
        charger,
        update: if full { "full" } else { "differential" },
        version,
        entries: list.entries.len(),
        messages,
    })
}

fn entry(uid: &str, item: &ops::ListItem) -> ListEntry {
    ListEntry {
        uid: uid.to_string(),
        kind: item.kind,
        item: Some(item.clone()),
    }
}

enum Sent {
    Done,
    Mismatch,
    NotSupported,
}

/// Send `entries` in as many messages as the charger's limits ask; each
/// message carries the next version.
#[allow(clippy::too_many_arguments)]
async fn send(
    shared: &Shared,
    proto: Protocol,
    charger: &str,
    list: &mut LocalList,
    full: bool,
    entries: Vec<ListEntry>,
    version: &mut i64,
    messages: &mut usize,
) -> Result<Sent, ApiError> {
    let encoded = |entries: Vec<ListEntry>| {
        let cmd = Command::SendLocalList {
            version: i64::from(i32::MAX),
            full: false,
            entries,
        };
        // Not schema-checked: a list with the same entry twice only measures.
        let payload = match proto {
            Protocol::V16 => crate::ocpp::v16::encode_command(&cmd),
            Protocol::V201 => crate::ocpp::v201::encode_command(&cmd),
        };
        payload.map_or(400, |(_, p)| p.to_string().len())
    };
    // What one more entry adds (its JSON and a comma).
    let size = |e: &ListEntry| encoded(vec![e.clone(), e.clone()]).saturating_sub(encoded(vec![e.clone()]));
    // The payload without entries, the list's key and brackets, and the
    // frame around it: `[2,"vy…","SendLocalList",` and `]`.
    let overhead = encoded(Vec::new()) + r#","localAuthorizationList":[]"#.len() + 30;
    let chunks = ops::chunks(
        entries,
        list.per_message.unwrap_or(usize::MAX),
        list.bytes_per_message,
        overhead,
        size,
    );
    for (i, chunk) in chunks.into_iter().enumerate() {
        *version += 1;
        let cmd = Command::SendLocalList {
            version: *version,
            full: full && i == 0,
            entries: chunk,
        };
        let answer = call(shared, charger, cmd).await;
        if unsupported(&answer) {
            return Ok(Sent::NotSupported);
        }
        *messages += 1;
        match answer.map_err(call_error)? {
            r if r.accepted() => {}
            CommandResult::Status { status, .. } if status == "VersionMismatch" || status == "Failed" => {
                list.version = -1;
                return Ok(Sent::Mismatch);
            }
            other => {
                list.version = -1;
                return Err(ApiError {
                    kind: ErrorKind::Rejected,
                    message: format!("charger {charger} refused the local list update"),
                    result: Some(other),
                });
            }
        }
    }
    Ok(Sent::Done)
}

/// The charger's list limits, from its configuration (kept as they were
/// when it does not say).
async fn read_limits(shared: &Shared, proto: Protocol, list: &mut LocalList) {
    let keys: &[&str] = match proto {
        Protocol::V16 => &["LocalAuthListMaxLength", "SendLocalListMaxLength"],
        Protocol::V201 => &[
            "LocalAuthListCtrlr.Entries",
            "LocalAuthListCtrlr.ItemsPerMessage",
            "LocalAuthListCtrlr.BytesPerMessage",
        ],
    };
    let cmd = Command::GetConfig {
        keys: keys.iter().map(|k| k.to_string()).collect(),
    };
    let Ok(CommandResult::Config { entries, .. }) = call(shared, &list.charger, cmd).await else {
        return;
    };
    let value = |k: &str| {
        entries
            .iter()
            .find(|e| e.key == k)
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    list.max_entries = value(keys[0]).or(list.max_entries);
    list.per_message = value(keys[1]).or(list.per_message);
    if let Some(k) = keys.get(2) {
        list.bytes_per_message = value(k).or(list.bytes_per_message);
    }
}
