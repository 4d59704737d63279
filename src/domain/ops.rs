//! Operations on chargers that outlive one CALL: the local authorization
//! list a charger holds, reservations, the availability an operator asked
//! for, and display messages. Pure data and rules; the store keeps them and
//! `control::ops` talks to the chargers.

use super::auth;
use super::model::{Access, AuthStatus, Site, Token, TokenKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One token as a charger's local list holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListItem {
    pub kind: TokenKind,
    pub status: AuthStatus,
    pub expires: Option<DateTime<Utc>>,
    pub group: Option<String>,
}

/// One entry of a SendLocalList; `item: None` removes the token (differential only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListEntry {
    pub uid: String,
    pub kind: TokenKind,
    pub item: Option<ListItem>,
}

/// What voltyard knows about one charger's local list. A row exists only
/// for chargers whose list voltyard manages (the first `local-list sync`
/// creates it); only those are kept in sync automatically.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LocalList {
    pub charger: String,
    /// Token groups the list is limited to; empty: every token the site admits.
    pub groups: Vec<String>,
    /// The version the charger confirmed; 0 before the first sync, -1 when
    /// what the charger holds is unknown (a sync failed half-way).
    pub version: i64,
    /// Hash of the confirmed content (see [`content_hash`]).
    pub hash: String,
    /// The confirmed content, to compute differential updates from.
    pub entries: BTreeMap<String, ListItem>,
    /// The charger answered NotSupported: not retried until an operator syncs again.
    pub not_supported: bool,
    /// Entries per SendLocalList (1.6 SendLocalListMaxLength, 2.0.1 ItemsPerMessage).
    pub per_message: Option<usize>,
    /// Bytes per SendLocalList (2.0.1 BytesPerMessage).
    pub bytes_per_message: Option<usize>,
    /// Entries the charger can hold (1.6 LocalAuthListMaxLength, 2.0.1 Entries).
    pub max_entries: Option<usize>,
    pub synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Whether a site lets a token group in at any time (a list entry is not
/// re-checked against time windows by the charger).
fn admitted_always(site: &Site, group: Option<&str>) -> bool {
    if site.access == Access::Public {
        return true;
    }
    site.rules.iter().any(|r| {
        r.days.is_empty()
            && r.from.is_none()
            && r.to.is_none()
            && (r.groups.is_empty() || group.is_some_and(|g| r.groups.iter().any(|x| x == g)))
    })
}

/// The list a charger at `site` should hold: tokens the site admits at any
/// time (tokens admitted only in time windows are left to online
/// authorization), limited to `groups` when given. Blocked and expired
/// tokens stay in the list with that status so an offline charger refuses
/// them even when its cache still holds them. Capped at `max` entries,
/// refusals first.
pub fn desired(
    tokens: &[Token],
    site: &Site,
    groups: &[String],
    max: Option<usize>,
    now: DateTime<Utc>,
) -> BTreeMap<String, ListItem> {
    let mut picked: Vec<(&Token, AuthStatus)> = tokens
        .iter()
        .filter(|t| groups.is_empty() || t.group.as_ref().is_some_and(|g| groups.contains(g)))
        .filter(|t| admitted_always(site, t.group.as_deref()))
        .map(|t| {
            let status = match auth::authorize(Some(t), site, now, false) {
                AuthStatus::Blocked => AuthStatus::Blocked,
                AuthStatus::Expired => AuthStatus::Expired,
                _ => AuthStatus::Accepted,
            };
            (t, status)
        })
        .collect();
    if let Some(max) = max.filter(|m| picked.len() > *m) {
        picked.sort_by_key(|(t, s)| (*s == AuthStatus::Accepted, t.uid.clone()));
        picked.truncate(max);
    }
    picked
        .into_iter()
        .map(|(t, status)| {
            let item = ListItem {
                kind: t.kind,
                status,
                expires: t.expires.filter(|_| status == AuthStatus::Accepted),
                group: t.group.clone(),
            };
            (t.uid.clone(), item)
        })
        .collect()
}

/// The entries that turn `from` into `to`: changed and new ones with their
/// item, removed ones without.
pub fn diff(from: &BTreeMap<String, ListItem>, to: &BTreeMap<String, ListItem>) -> Vec<ListEntry> {
    let mut out: Vec<ListEntry> = to
        .iter()
        .filter(|(uid, item)| from.get(*uid) != Some(item))
        .map(|(uid, item)| ListEntry {
            uid: uid.clone(),
            kind: item.kind,
            item: Some(item.clone()),
        })
        .collect();
    out.extend(
        from.iter()
            .filter(|(uid, _)| !to.contains_key(*uid))
            .map(|(uid, item)| ListEntry {
                uid: uid.clone(),
                kind: item.kind,
                item: None,
            }),
    );
    out
}

/// A stable fingerprint of a list's content (FNV-1a over its canonical JSON).
pub fn content_hash(entries: &BTreeMap<String, ListItem>) -> String {
    let text = serde_json::to_string(entries).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Split entries into messages of at most `per_message` entries and
/// `max_bytes` bytes (as `size` measures one entry with its separator;
/// `overhead` is the rest of the message). Always at least one (possibly
/// empty) chunk.
pub fn chunks(
    entries: Vec<ListEntry>,
    per_message: usize,
    max_bytes: Option<usize>,
    overhead: usize,
    size: impl Fn(&ListEntry) -> usize,
) -> Vec<Vec<ListEntry>> {
    let per_message = per_message.max(1);
    let mut out: Vec<Vec<ListEntry>> = vec![Vec::new()];
    let mut bytes = overhead;
    for e in entries {
        let n = size(&e);
        let last = out.last().map_or(0, Vec::len);
        if last > 0 && (last >= per_message || max_bytes.is_some_and(|m| bytes + n > m)) {
            out.push(Vec::new());
            bytes = overhead;
        }
        bytes += n;
        if let Some(c) = out.last_mut() {
            c.push(e);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    /// Stored, ReserveNow not answered yet.
    Pending,
    Accepted,
    /// The charger refused it (Occupied, Faulted, Unavailable, Rejected).
    Rejected,
    /// A transaction started with it.
    Used,
    Expired,
    Cancelled,
}

impl ReservationStatus {
    pub fn open(self) -> bool {
        matches!(self, ReservationStatus::Pending | ReservationStatus::Accepted)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: u64,
    pub charger: String,
    /// Connector (1.6) or EVSE (2.0.1); `None` reserves any one of the charger's.
    pub evse: Option<u32>,
    pub token: String,
    /// The token's group when reserved: its members may use the reservation too.
    pub group: Option<String>,
    pub expires: DateTime<Utc>,
    pub status: ReservationStatus,
    /// The charger's answer or why the status changed.
    pub detail: Option<String>,
    pub session: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Reservation {
    /// Holds its connector at `t`.
    pub fn holds(&self, t: DateTime<Utc>) -> bool {
        self.status.open() && t < self.expires
    }

    /// This token (of this group) may use the reservation.
    pub fn admits(&self, uid: &str, group: Option<&str>) -> bool {
        self.token == uid || (self.group.is_some() && self.group.as_deref() == group)
    }
}

/// Would a transaction (or, with `evse: None`, an authorization) of
/// `uid` be taking a reserved connector from someone else? `evses` are the
/// charger's connectors (EVSE ids above 0), `busy` those in use. A
/// reservation of a given connector blocks it; a charger-wide one keeps one
/// free connector back. Returns the reservation that blocks.
pub fn blocking<'a>(
    open: &'a [Reservation],
    uid: &str,
    group: Option<&str>,
    evse: Option<u32>,
    evses: &[u32],
    busy: &[u32],
    t: DateTime<Utc>,
) -> Option<&'a Reservation> {
    let others: Vec<&Reservation> = open.iter().filter(|r| r.holds(t) && !r.admits(uid, group)).collect();
    if others.is_empty() {
        return None;
    }
    let free: Vec<u32> = evses.iter().copied().filter(|e| !busy.contains(e)).collect();
    let reserved_for = |e: u32| others.iter().copied().find(|r| r.evse == Some(e));
    let wide = others.iter().copied().find(|r| r.evse.is_none());
    match evse {
        Some(e) => {
            if let Some(r) = reserved_for(e) {
                return Some(r);
            }
            // A charger-wide reservation needs one free connector left after this start.
            let left = free.iter().filter(|&&f| f != e && reserved_for(f).is_none()).count();
            wide.filter(|_| left == 0)
        }
        None => {
            let usable: Vec<u32> = free.iter().copied().filter(|&f| reserved_for(f).is_none()).collect();
            match (usable.len(), wide) {
                (0, _) => others.first().copied(),
                (1, Some(w)) => Some(w),
                _ => None,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AvailabilityState {
    /// Accepted; the charger has not reported the new status yet.
    Pending,
    /// The charger will change it when the running transaction ends.
    Scheduled,
    /// The charger reported the requested status.
    Effective,
}

/// The availability an operator asked for, per connector (0 = the charger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedAvailability {
    pub evse: u32,
    pub operative: bool,
    pub state: AvailabilityState,
    pub requested_at: DateTime<Utc>,
    pub effective_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessagePriority {
    AlwaysFront,
    InFront,
    NormalCycle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageState {
    Charging,
    Faulted,
    Idle,
    Unavailable,
}

/// A message for a charger's display (2.0.1 MessageInfo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayMessage {
    pub id: i64,
    pub priority: MessagePriority,
    pub state: Option<MessageState>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The charger's transaction id it is shown during.
    pub transaction_id: Option<String>,
    pub text: String,
    pub language: Option<String>,
}

/// A charger's answer to GetDisplayMessages, as its NotifyDisplayMessages arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayReport {
    pub request_id: i64,
    pub messages: Vec<DisplayMessage>,
    /// The last part has arrived.
    pub complete: bool,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::AccessRule;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn token(uid: &str, group: Option<&str>, blocked: bool) -> Token {
        Token {
            uid: uid.into(),
            kind: TokenKind::Rfid,
            group: group.map(str::to_string),
            blocked,
            expires: None,
            note: None,
            created_at: now(),
        }
    }

    fn site(access: Access, rules: Vec<AccessRule>) -> Site {
        Site {
            name: "s".into(),
            timezone: "UTC".into(),
            access,
            rules,
            created_at: now(),
        }
    }

    #[test]
    fn the_list_holds_tokens_admitted_at_any_time_and_refusals() {
        let rule = |groups: &[&str], window: bool| AccessRule {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            days: vec![],
            from: window.then(|| chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap()),
            to: window.then(|| chrono::NaiveTime::from_hms_opt(18, 0, 0).unwrap()),
        };
        let private = site(
            Access::Private,
            vec![rule(&["staff"], false), rule(&["visitors"], true)],
        );
        let tokens = [
            token("A", Some("staff"), false),
            token("B", Some("visitors"), false),
            token("C", Some("staff"), true),
            token("D", None, false),
        ];
        let list = desired(&tokens, &private, &[], None, now());
        assert_eq!(list.keys().collect::<Vec<_>>(), ["A", "C"]);
        assert_eq!(list["C"].status, AuthStatus::Blocked);
        let public = site(Access::Public, vec![]);
        assert_eq!(desired(&tokens, &public, &[], None, now()).len(), 4);
        let only = desired(&tokens, &public, &["visitors".into()], None, now());
        assert_eq!(only.keys().collect::<Vec<_>>(), ["B"]);
        let capped = desired(&tokens, &public, &[], Some(2), now());
        assert!(capped.contains_key("C"), "refusals are kept first when capped");
        assert_eq!(capped.len(), 2);
    }

    #[test]
    fn diff_updates_adds_and_removes() {
        let item = |s| ListItem {
            kind: TokenKind::Rfid,
            status: s,
            expires: None,
            group: None,
        };
        let from: BTreeMap<_, _> = [
            ("A".to_string(), item(AuthStatus::Accepted)),
            ("B".into(), item(AuthStatus::Accepted)),
        ]
        .into();
        let to: BTreeMap<_, _> = [
            ("A".to_string(), item(AuthStatus::Blocked)),
            ("C".into(), item(AuthStatus::Accepted)),
        ]
        .into();
        let d = diff(&from, &to);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].item.as_ref().map(|i| i.status), Some(AuthStatus::Blocked));
        assert_eq!(
            d[2],
            ListEntry {
                uid: "B".into(),
                kind: TokenKind::Rfid,
                item: None
            }
        );
        assert_ne!(content_hash(&from), content_hash(&to));
        assert!(diff(&to, &to).is_empty());
    }

    #[test]
    fn chunks_respect_count_and_bytes() {
        let e = |i: usize| ListEntry {
            uid: format!("T{i}"),
            kind: TokenKind::Rfid,
            item: None,
        };
        let all: Vec<_> = (0..10).map(e).collect();
        let c = chunks(all.clone(), 4, None, 0, |_| 10);
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let c = chunks(all, 100, Some(50), 10, |_| 10);
        assert!(c.iter().all(|c| c.len() * 10 + 10 <= 50), "{c:?}");
        assert_eq!(c[0].len(), 4);
        assert_eq!(c.iter().map(Vec::len).sum::<usize>(), 10);
        assert_eq!(chunks(vec![], 5, None, 0, |_| 1), vec![Vec::<ListEntry>::new()]);
    }

    fn reservation(id: u64, evse: Option<u32>, token: &str) -> Reservation {
        Reservation {
            id,
            charger: "CP".into(),
            evse,
            token: token.into(),
            group: Some("fleet".into()),
            expires: now() + chrono::Duration::minutes(30),
            status: ReservationStatus::Accepted,
            detail: None,
            session: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn a_reserved_connector_refuses_other_tokens_until_it_expires() {
        let open = [reservation(1, Some(1), "R")];
        let t = now();
        assert_eq!(
            blocking(&open, "X", None, Some(1), &[1, 2], &[], t).map(|r| r.id),
            Some(1)
        );
        assert!(blocking(&open, "X", None, Some(2), &[1, 2], &[], t).is_none());
        assert!(blocking(&open, "R", None, Some(1), &[1, 2], &[], t).is_none());
        assert!(blocking(&open, "Y", Some("fleet"), Some(1), &[1, 2], &[], t).is_none());
        // Authorize: refused only when nothing is left for this token.
        assert!(blocking(&open, "X", None, None, &[1, 2], &[], t).is_none());
        assert!(blocking(&open, "X", None, None, &[1, 2], &[2], t).is_some());
        let later = t + chrono::Duration::hours(1);
        assert!(blocking(&open, "X", None, Some(1), &[1, 2], &[], later).is_none());
    }

    #[test]
    fn a_charger_wide_reservation_keeps_one_connector_back() {
        let open = [reservation(1, None, "R")];
        let t = now();
        assert!(blocking(&open, "X", None, Some(1), &[1, 2], &[], t).is_none());
        assert!(blocking(&open, "X", None, Some(1), &[1, 2], &[2], t).is_some());
        assert!(blocking(&open, "X", None, None, &[1, 2], &[1], t).is_some());
        assert!(blocking(&open, "X", None, None, &[1, 2], &[], t).is_none());
    }
}
