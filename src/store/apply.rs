//! Changes applied inside the writer's transaction. The decisions are the
//! domain's pure functions; this file loads their inputs and saves their
//! outputs.

mod billing;
mod ops;

pub use ops::OpsOp;
mod transfer;

pub use transfer::TransferOp;
mod device;
mod pnc;
mod security;
pub use pnc::PncOp;
pub use security::SecurityOp;

use super::tables::*;
use super::{Result, decode, encode};
use crate::billing::{MeterKey, Scope, StoredTariff};
use crate::domain::admission::{self, Admission, BootGate, BootPolicy};
use crate::domain::circuit::{Circuit, MeterBinding, PriceSlot};
use crate::domain::message::{Command, Inbound, Reply};
use crate::domain::session::{self, TxMessage, TxPhase, TxTarget};
use crate::domain::{
    AccessRule, AuthStatus, Charger, ChargerTxRef, DEFAULT_SITE, Direction, Event, JournalEntry, Protocol,
    Registration, Sample, Session, SessionStatus, Site, Token, auth,
};
use crate::ocpp::Rejection;
use crate::ocpp::frame::ErrorCode;
use chrono::{DateTime, Utc};
use redb::{Key, ReadableTable, Table, TableDefinition, Value, WriteTransaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the connection sends back, and what it should ask the charger next.
#[derive(Debug)]
pub struct InboundOutcome {
    pub reply: Reply,
    /// Evidence to collect (after a reboot with open sessions): the
    /// command and the session it is about.
    pub followups: Vec<(Command, u64)>,
    /// A 2.0.1 charger that is new or changed (vendor, model, firmware)
    /// was accepted at boot: its device model is due for a full report.
    pub inventory_due: bool,
}

#[derive(Debug, Clone)]
pub enum AdminOp {
    Noop,
    /// A charger connected: note its protocol; an unknown one is created
    /// with `create_as` (or refused when that is `None`).
    Connected {
        id: String,
        protocol: Protocol,
        create_as: Option<Registration>,
    },
    ChargerAdd(Box<Charger>),
    SetRegistration {
        id: String,
        registration: Registration,
    },
    ChargerRemove {
        id: String,
    },
    Disconnected {
        id: String,
        last_seen: DateTime<Utc>,
    },
    TokenAdd(Token),
    TokenBlocked {
        uid: String,
        blocked: bool,
    },
    TokenRemove {
        uid: String,
    },
    SiteAdd(Site),
    SiteRule {
        site: String,
        rule: Option<AccessRule>,
    },
    InferEnd {
        session: u64,
        evidence: String,
    },
    Record(Event),
    Load(LoadOp),
    /// Store a validated tariff (replacing one with the same id) and
    /// optionally assign it.
    TariffSet {
        tariff: Box<StoredTariff>,
        assign: Option<TariffAssign>,
    },
    /// A meter public key of a charger (seen in its configuration or set by
    /// the operator); sessions that waited for it are verified again.
    MeterKey {
        charger: String,
        key: MeterKey,
    },
    /// End a tariff assignment at `at` (the op's time when `None`) by
    /// setting its `until`; assignments are never deleted.
    TariffUnassign {
        id: u64,
        at: Option<DateTime<Utc>>,
    },
    /// Delete a tariff that no current or future assignment and no bill
    /// refers to.
    TariffRemove {
        id: String,
    },
    /// Bill a completed session again with the assignments as they are now;
    /// the previous bill is kept in the session's notes.
    SessionReprice {
        id: u64,
    },
    /// Reservations, local lists, requested availability.
    Ops(OpsOp),
    /// Firmware updates, campaigns, log requests and uploads.
    Transfer(transfer::TransferOp),
    /// Device model and monitoring bookkeeping (see `DeviceOp`).
    Device(DeviceOp),
    Security(SecurityOp),
    /// Contract certificates of the local Plug & Charge CA.
    Pnc(PncOp),
}

/// Who a tariff is for, and when.
#[derive(Debug, Clone)]
pub struct TariffAssign {
    pub scope: Scope,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Changes to what load management works from.
#[derive(Debug, Clone)]
pub enum LoadOp {
    CircuitAdd(Box<Circuit>),
    CircuitLimit {
        id: String,
        max_current: Option<[f64; 3]>,
        safe_current: Option<[f64; 3]>,
        max_power_w: Option<f64>,
    },
    CircuitRemove {
        id: String,
    },
    MeterBind {
        circuit: String,
        meter: Option<MeterBinding>,
    },
    /// Replace the site's prices from the first new slot's start on.
    Prices {
        site: String,
        slots: Vec<PriceSlot>,
    },
    SessionTarget {
        id: u64,
        departure: Option<DateTime<Utc>>,
        energy_target_wh: Option<i64>,
        priority: Option<i32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AdminResult {
    Done,
    Charger(Option<Box<Charger>>),
    NotFound(String),
    Conflict(String),
    /// A field of the request is refused given what is stored: (field, reason).
    Invalid(&'static str, String),
    /// A result to show as is.
    Json(serde_json::Value),
}

/// What the writer keeps between transactions. It is the only writer, so
/// a row it cached is the row on disk, as long as a failed commit clears
/// the cache (`Cache::clear`).
#[derive(Default)]
pub(super) struct Cache {
    /// Every message reads its charger's row; decoding it each time cost
    /// more than the rest of a MeterValues. Shared, so that a message that
    /// only reads the row (most of them) does not copy its strings.
    chargers: HashMap<String, Arc<Charger>>,
    /// Each charger's newest journal row (`frames_head`). Two frames a
    /// message each read and wrote the head row; now a transaction writes
    /// a charger's head once, in `Ctx::finish`.
    heads: HashMap<String, Head>,
    /// Counts transactions, to tell which heads moved in the current one.
    txn: u64,
    /// The `active` table, by session id: authorization and every status
    /// and transaction message looked through all open sessions, and
    /// reading the table for it cost 161 µs a message with 1,000 open.
    /// Loaded by the first transaction, kept by `put_session`.
    active: Option<BTreeMap<u64, Active>>,
    /// Admission control for boot storms: its bucket outlives transactions.
    pub(super) gate: BootGate,
}

/// An open session as the `active` table holds it.
struct Active {
    charger: String,
    evse: u32,
    /// Empty when the session holds no token (see `active_entry`).
    token: String,
}

impl Active {
    fn parse(entry: &str) -> Active {
        let mut parts = entry.split('\u{1f}');
        Active {
            charger: parts.next().unwrap_or_default().to_string(),
            evse: parts.next().and_then(|e| e.parse().ok()).unwrap_or(0),
            token: parts.next().unwrap_or_default().to_string(),
        }
    }
}

struct Head {
    seq: u64,
    /// The transaction that last moved it.
    moved_in: u64,
}

impl Cache {
    pub fn clear(&mut self) {
        self.chargers.clear();
        self.heads.clear();
        self.active = None;
    }
}

pub use device::{DeviceOp, ReportKind, charger_range, evse_key, report_key};

/// A table opened on first use. Opening one costs redb a lookup in its
/// table tree (about 3k instructions), and a transaction of meter values
/// touches four of our thirty: opening them all was a third of a small
/// commit's CPU.
pub(super) struct Lazy<'t, K: Key + 'static, V: Value + 'static> {
    w: &'t WriteTransaction,
    def: TableDefinition<'static, K, V>,
    table: Option<Table<'t, K, V>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> Lazy<'t, K, V> {
    pub(super) fn new(w: &'t WriteTransaction, def: TableDefinition<'static, K, V>) -> Self {
        Lazy { w, def, table: None }
    }

    pub(super) fn t(&mut self) -> Result<&mut Table<'t, K, V>> {
        let table = match self.table.take() {
            Some(t) => t,
            None => self.w.open_table(self.def)?,
        };
        Ok(self.table.insert(table))
    }
}

pub(super) struct Ctx<'t> {
    cache: &'t mut Cache,
    /// For the tables only a few ops open (`transfer`).
    w: &'t WriteTransaction,
    meta: Table<'t, &'static str, u64>,
    chargers: Table<'t, &'static str, &'static [u8]>,
    tokens: Lazy<'t, &'static str, &'static [u8]>,
    sites: Lazy<'t, &'static str, &'static [u8]>,
    circuits: Lazy<'t, &'static str, &'static [u8]>,
    prices: Lazy<'t, &'static str, &'static [u8]>,
    sessions: Lazy<'t, u64, &'static [u8]>,
    tx_index: Lazy<'t, &'static str, u64>,
    active: Lazy<'t, u64, &'static str>,
    samples: Lazy<'t, (u64, u64), &'static [u8]>,
    frames: Table<'t, u64, &'static [u8]>,
    frames_head: Table<'t, &'static str, u64>,
    /// This transaction's journal rows, written to `frames` in blocks.
    block: super::journal::Block,
    events: Lazy<'t, u64, &'static [u8]>,
    tariffs: Lazy<'t, &'static str, &'static [u8]>,
    assignments: Lazy<'t, u64, &'static [u8]>,
    bills: Lazy<'t, u64, &'static [u8]>,
    meter_keys: Lazy<'t, &'static str, &'static [u8]>,
    ops: ops::Tables<'t>,
    device_model: Lazy<'t, &'static str, &'static [u8]>,
    reports: Lazy<'t, &'static str, &'static [u8]>,
    monitors: Lazy<'t, &'static str, &'static [u8]>,
    charging_limits: Lazy<'t, &'static str, &'static [u8]>,
    ev_info: Lazy<'t, &'static str, &'static [u8]>,
    next_seq: u64,
    /// Chargers whose journal head moved in this transaction.
    moved_heads: Vec<String>,
    /// The time of the op being applied (bills are stamped with it).
    now: DateTime<Utc>,
}

impl<'t> Ctx<'t> {
    pub fn open(w: &'t WriteTransaction, cache: &'t mut Cache) -> Result<Self> {
        cache.txn += 1;
        if cache.active.is_none() {
            let table = w.open_table(ACTIVE)?;
            let mut index = BTreeMap::new();
            for e in table.iter()? {
                let (k, v) = e?;
                index.insert(k.value(), Active::parse(v.value()));
            }
            cache.active = Some(index);
        }
        let meta = w.open_table(META)?;
        let next_seq = meta.get("next_seq")?.map(|v| v.value()).unwrap_or(1);
        Ok(Ctx {
            cache,
            w,
            meta,
            chargers: w.open_table(CHARGERS)?,
            tokens: Lazy::new(w, TOKENS),
            sites: Lazy::new(w, SITES),
            circuits: Lazy::new(w, CIRCUITS),
            prices: Lazy::new(w, PRICES),
            sessions: Lazy::new(w, SESSIONS),
            tx_index: Lazy::new(w, TX_INDEX),
            active: Lazy::new(w, ACTIVE),
            samples: Lazy::new(w, SAMPLES),
            frames: w.open_table(FRAMES)?,
            frames_head: w.open_table(FRAMES_HEAD)?,
            block: Default::default(),
            events: Lazy::new(w, EVENTS),
            tariffs: Lazy::new(w, TARIFFS),
            assignments: Lazy::new(w, TARIFF_ASSIGNMENTS),
            bills: Lazy::new(w, BILLS),
            meter_keys: Lazy::new(w, METER_KEYS),
            ops: ops::Tables::open(w)?,
            device_model: Lazy::new(w, DEVICE_MODEL),
            reports: Lazy::new(w, REPORTS),
            monitors: Lazy::new(w, MONITORS),
            charging_limits: Lazy::new(w, CHARGING_LIMITS),
            ev_info: Lazy::new(w, EV_INFO),
            next_seq,
            moved_heads: Vec::new(),
            now: DateTime::<Utc>::UNIX_EPOCH,
        })
    }

    pub fn finish(mut self) -> Result<()> {
        self.block.flush(&mut self.frames)?;
        self.meta.insert("next_seq", self.next_seq)?;
        for charger in std::mem::take(&mut self.moved_heads) {
            if let Some(head) = self.cache.heads.get(&charger) {
                self.frames_head.insert(charger.as_str(), head.seq)?;
            }
        }
        Ok(())
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub fn journal(&mut self, charger: &str, dir: Direction, frame: String, t: DateTime<Utc>) -> Result<JournalEntry> {
        let entry = JournalEntry {
            seq: self.seq(),
            t,
            charger: charger.to_string(),
            dir,
            frame,
        };
        let head = self.head(charger)?;
        self.block.push(&mut self.frames, head, &entry)?;
        self.move_head(&entry);
        Ok(entry)
    }

    /// The sequence number a charger's CALL will be journaled under: taken
    /// before the CALL is applied, so that it precedes the rows it causes.
    pub fn call_seq(&mut self) -> u64 {
        self.seq()
    }

    /// Journals a charger's CALL (numbered with [`Ctx::call_seq`]) and our
    /// answer as one row.
    pub fn journal_exchange(
        &mut self,
        charger: &str,
        seq: u64,
        call: String,
        answer: String,
        t: DateTime<Utc>,
    ) -> Result<(JournalEntry, JournalEntry)> {
        let call = JournalEntry {
            seq,
            t,
            charger: charger.to_string(),
            dir: Direction::In,
            frame: call,
        };
        let answer = JournalEntry {
            seq: self.seq(),
            t,
            charger: charger.to_string(),
            dir: Direction::Out,
            frame: answer,
        };
        let head = self.head(charger)?;
        self.block.push_pair(&mut self.frames, head, &call, &answer)?;
        self.move_head(&call);
        Ok((call, answer))
    }

    /// The charger's newest journal row.
    fn head(&mut self, charger: &str) -> Result<u64> {
        if let Some(head) = self.cache.heads.get(charger) {
            return Ok(head.seq);
        }
        let seq = self.frames_head.get(charger)?.map(|v| v.value()).unwrap_or(0);
        self.cache.heads.insert(charger.to_string(), Head { seq, moved_in: 0 });
        Ok(seq)
    }

    fn move_head(&mut self, row: &JournalEntry) {
        let txn = self.cache.txn;
        let Some(head) = self.cache.heads.get_mut(&row.charger) else {
            return;
        };
        head.seq = row.seq;
        if head.moved_in != txn {
            head.moved_in = txn;
            self.moved_heads.push(row.charger.clone());
        }
    }

    fn event(&mut self, t: DateTime<Utc>, charger: Option<&str>, kind: &str, detail: String) -> Result<()> {
        let e = Event {
            t,
            charger: charger.map(str::to_string),
            kind: kind.to_string(),
            detail,
            device: None,
        };
        let seq = self.seq();
        self.events.t()?.insert(seq, encode(&e).as_slice())?;
        Ok(())
    }

    fn charger(&mut self, id: &str) -> Result<Option<Charger>> {
        Ok(self.shared_charger(id)?.map(Arc::unwrap_or_clone))
    }

    /// The cached row itself; `Arc::make_mut` copies it for a change.
    fn shared_charger(&mut self, id: &str) -> Result<Option<Arc<Charger>>> {
        if let Some(c) = self.cache.chargers.get(id) {
            return Ok(Some(c.clone()));
        }
        let found: Option<Arc<Charger>> = self
            .chargers
            .get(id)?
            .map(|v| decode("chargers", v.value()).map(Arc::new))
            .transpose()?;
        if let Some(c) = &found {
            self.cache.chargers.insert(id.to_string(), c.clone());
        }
        Ok(found)
    }

    fn put_charger(&mut self, c: &Charger) -> Result<()> {
        self.chargers.insert(c.id.as_str(), encode(c).as_slice())?;
        self.cache.chargers.insert(c.id.clone(), Arc::new(c.clone()));
        Ok(())
    }

    fn remove_charger(&mut self, id: &str) -> Result<bool> {
        self.cache.chargers.remove(id);
        Ok(self.chargers.remove(id)?.is_some())
    }

    fn token(&mut self, uid: &str) -> Result<Option<Token>> {
        self.tokens
            .t()?
            .get(uid)?
            .map(|v| decode("tokens", v.value()))
            .transpose()
    }

    fn site(&mut self, name: &str) -> Result<Option<Site>> {
        self.sites
            .t()?
            .get(name)?
            .map(|v| decode("sites", v.value()))
            .transpose()
    }

    fn circuit(&mut self, id: &str) -> Result<Option<Circuit>> {
        self.circuits
            .t()?
            .get(id)?
            .map(|v| decode("circuits", v.value()))
            .transpose()
    }

    fn put_circuit(&mut self, c: &Circuit) -> Result<()> {
        self.circuits.t()?.insert(c.id.as_str(), encode(c).as_slice())?;
        Ok(())
    }

    fn session(&mut self, id: u64) -> Result<Option<Session>> {
        self.sessions
            .t()?
            .get(id)?
            .map(|v| decode("sessions", v.value()))
            .transpose()
    }

    fn put_session(&mut self, s: &Session) -> Result<()> {
        self.sessions.t()?.insert(s.id, encode(s).as_slice())?;
        let index = self.cache.active.get_or_insert_default();
        if s.status == SessionStatus::Active {
            let entry = active_entry(s);
            self.active.t()?.insert(s.id, entry.as_str())?;
            index.insert(s.id, Active::parse(&entry));
        } else {
            self.active.t()?.remove(s.id)?;
            index.remove(&s.id);
            // Every completed session is billed (again, when it changes).
            self.settle(s)?;
        }
        Ok(())
    }

    /// One row per message: a B-tree insert per sampled value cost more
    /// than the values themselves (see docs/benchmarks.md).
    fn add_samples(&mut self, session: u64, samples: &[Sample]) -> Result<()> {
        if !samples.is_empty() {
            let seq = self.seq();
            self.samples.t()?.insert((session, seq), encode(&samples).as_slice())?;
        }
        Ok(())
    }

    fn next_session_id(&mut self) -> Result<u64> {
        let id = self.meta.get("next_session")?.map(|v| v.value()).unwrap_or(1);
        self.meta.insert("next_session", id + 1)?;
        Ok(id)
    }

    /// The open sessions on `charger` as (id, evse), oldest first.
    fn active_on(&self, charger: &str) -> Vec<(u64, u32)> {
        self.cache
            .active
            .iter()
            .flatten()
            .filter(|(_, a)| a.charger == charger)
            .map(|(id, a)| (*id, a.evse))
            .collect()
    }

    fn authorize(&mut self, charger: &Charger, uid: &str, t: DateTime<Utc>, except: Option<u64>) -> Result<AuthStatus> {
        let token = self.token(uid)?;
        let site = self.site(&charger.site)?.or(self.site(DEFAULT_SITE)?);
        let busy = self
            .cache
            .active
            .iter()
            .flatten()
            .any(|(id, a)| a.token == uid && Some(*id) != except && a.charger != charger.id);
        Ok(match site {
            Some(site) => auth::authorize(token.as_ref(), &site, t, busy),
            None => AuthStatus::Unknown,
        })
    }
}

/// A session refused authorization does not hold its token: the charger
/// will stop it, and it must not make the token look busy elsewhere.
fn active_entry(s: &Session) -> String {
    let token = if s.auth == AuthStatus::Accepted {
        s.token.as_deref().unwrap_or("")
    } else {
        ""
    };
    format!("{}\u{1f}{}\u{1f}{token}", s.charger, s.evse)
}

fn security(ch: &Charger) -> Rejection {
    let state = match ch.registration {
        Registration::Pending => "pending",
        Registration::Rejected => "rejected",
        Registration::Accepted => "accepted",
    };
    Rejection::new(
        ErrorCode::SecurityError,
        format!(
            "charger {} is {state}: only BootNotification and Heartbeat are answered until an operator accepts it",
            ch.id
        ),
    )
}

pub(super) fn inbound(
    ctx: &mut Ctx,
    charger_id: &str,
    msg: Inbound,
    t: DateTime<Utc>,
    boot: &BootPolicy,
) -> Result<std::result::Result<InboundOutcome, Rejection>> {
    ctx.now = t;
    let Some(mut ch) = ctx.shared_charger(charger_id)? else {
        return Ok(Err(Rejection::new(
            ErrorCode::SecurityError,
            format!("charger {charger_id} is not registered"),
        )));
    };
    let reply = |reply| {
        Ok(Ok(InboundOutcome {
            reply,
            followups: vec![],
            inventory_due: false,
        }))
    };
    let accepted = ch.registration == Registration::Accepted;
    match msg {
        Inbound::SignCertificate { .. } | Inbound::CertificateRequest { .. } => {
            reply(ctx.certificate_request(&ch.id, accepted, msg, t)?)
        }
        Inbound::Boot {
            vendor,
            model,
            serial,
            firmware,
            reason,
        } => {
            let mut gate = std::mem::take(&mut ctx.cache.gate);
            let admitted = if accepted {
                gate.admit(
                    &boot.admission,
                    t,
                    || !ctx.active_on(charger_id).is_empty(),
                    admission::jitter(charger_id, t),
                )
            } else {
                Admission::Accept
            };
            ctx.cache.gate = gate;
            if let Admission::Defer { retry_s } = admitted {
                // Nothing is written but the journal: a storm of deferred
                // boots must not become a storm of writes.
                return reply(Reply::Boot {
                    status: Registration::Pending,
                    interval: retry_s,
                    now: t,
                });
            }
            let inventory_due = accepted && device::inventory_due(ctx, &ch, &vendor, &model, firmware.as_deref())?;
            let c = Arc::make_mut(&mut ch);
            c.vendor = Some(vendor);
            c.model = Some(model);
            c.serial = serial;
            c.firmware = firmware;
            c.last_boot = Some(t);
            c.last_seen = Some(t);
            ctx.put_charger(&ch)?;
            let mut followups = Vec::new();
            if accepted {
                followups = reboot_evidence(ctx, &ch.id, t)?;
            }
            let detail = format!(
                "boot ({}), answered {:?}",
                reason.as_deref().unwrap_or("no reason given"),
                ch.registration
            );
            ctx.event(t, Some(&ch.id), "boot", detail)?;
            // A pending charger retries sooner so that an accept takes effect quickly.
            let interval = if accepted {
                boot.heartbeat_interval
            } else {
                boot.heartbeat_interval.min(30)
            };
            Ok(Ok(InboundOutcome {
                reply: Reply::Boot {
                    status: ch.registration,
                    interval,
                    now: t,
                },
                followups,
                inventory_due,
            }))
        }
        Inbound::Heartbeat => {
            Arc::make_mut(&mut ch).last_seen = Some(t);
            ctx.put_charger(&ch)?;
            reply(Reply::Heartbeat { now: t })
        }
        _ if !accepted => Ok(Err(security(&ch))),
        m @ (Inbound::EvCertificate { .. }
        | Inbound::EvCertificateAnswered { .. }
        | Inbound::CertificateStatus { .. }
        | Inbound::CertificateStatusAnswered { .. }
        | Inbound::ContractAuthorize { .. }
        | Inbound::ContractChecked { .. }) => reply(ctx.pnc_inbound(&ch, m, t)?),
        Inbound::Authorize { token } => {
            let mut status = ctx.authorize(&ch, &token, t, None)?;
            if status == AuthStatus::Accepted && ctx.reserved_for_other(&ch, &token, None, t)?.is_some() {
                status = AuthStatus::NotAtThisTime;
            }
            reply(Reply::Auth { status })
        }
        Inbound::Status {
            evse,
            connector,
            status,
            error_code,
            info,
            t: at,
        } => {
            let changed = Arc::make_mut(&mut ch);
            let c = changed.connector_mut(evse, connector);
            // Offline replays can arrive out of order: keep the newest.
            if at >= c.updated_at {
                c.status = status;
                c.error_code = error_code.clone();
                c.info = info;
                c.updated_at = at;
            }
            changed.last_seen = Some(t);
            ctx.put_charger(&ch)?;
            if let Some(code) = error_code {
                ctx.event(
                    at,
                    Some(&ch.id),
                    "fault",
                    format!("EVSE {evse} connector {connector}: {code}"),
                )?;
            }
            billing::note_status(ctx, &ch.id, evse, status, at)?;
            ops::note_status(ctx, &ch, evse, status, at)?;
            if status.vehicle_absent() {
                for (id, e) in ctx.active_on(&ch.id) {
                    if e != evse {
                        continue;
                    }
                    if let Some(mut s) = ctx.session(id)?
                        && let Some(since) = s.suspect_since
                    {
                        let evidence = format!(
                            "EVSE {evse} reported {} at {} after the charger rebooted at {}",
                            status.as_str(),
                            at.to_rfc3339(),
                            since.to_rfc3339()
                        );
                        session::close_by_inference(&mut s, &evidence, t);
                        ctx.put_session(&s)?;
                        ctx.event(t, Some(&ch.id), "inferred_end", format!("session {id}: {evidence}"))?;
                    }
                }
            }
            reply(Reply::Ack)
        }
        // Values outside a transaction are kept as the journaled frame; load
        // management reads them live (see docs/ARCHITECTURE.md, store).
        Inbound::Meter { .. } => reply(Reply::Ack),
        Inbound::Tx(m) => tx(ctx, &ch, m, t).map(|r| {
            r.map(|reply| InboundOutcome {
                reply,
                followups: vec![],
                inventory_due: false,
            })
        }),
        Inbound::ReservationStatus { id, status } => {
            ops::charger_ended_reservation(ctx, &ch.id, id, &status, t)?;
            reply(Reply::Ack)
        }
        Inbound::DisplayMessages {
            request_id,
            messages,
            more_to_come,
        } => {
            ops::display_messages(ctx, &ch.id, request_id, messages, more_to_come, t)?;
            reply(Reply::Ack)
        }
        Inbound::Notice { kind, detail } => {
            ctx.event(t, Some(&ch.id), &kind, detail)?;
            reply(Reply::Ack)
        }
        Inbound::FirmwareStatus { status, request_id } => {
            reply(transfer::firmware_status(ctx, &ch.id, status, request_id, t)?)
        }
        Inbound::LogStatus { status, request_id } => reply(transfer::log_status(ctx, &ch.id, status, request_id, t)?),
        Inbound::DataTransfer(dt) => reply(transfer::data_transfer(ctx, &ch.id, dt, t)?),
        Inbound::ChargingNeeds { evse, needs } => {
            device::needs(ctx, &ch.id, evse, needs, t)?;
            reply(Reply::Ack)
        }
        Inbound::Report(part) => {
            device::report(ctx, &ch.id, part, t)?;
            reply(Reply::Ack)
        }
        Inbound::MonitoringReport(part) => {
            device::monitoring_report(ctx, &ch.id, part, t)?;
            reply(Reply::Ack)
        }
        Inbound::DeviceEvents(events) => {
            device::events(ctx, &ch.id, events)?;
            reply(Reply::Ack)
        }
        Inbound::ChargingLimit {
            evse,
            source,
            grid_critical,
            schedules,
        } => {
            let limit = crate::domain::device::ExternalLimit {
                charger: ch.id.clone(),
                evse,
                source,
                grid_critical,
                schedules,
                received_at: t,
            };
            device::limit(ctx, limit)?;
            reply(Reply::Ack)
        }
        Inbound::ChargingLimitCleared { evse, source } => {
            device::limit_cleared(ctx, &ch.id, evse, &source, t)?;
            reply(Reply::Ack)
        }
        Inbound::EvSchedule { evse, schedule } => {
            device::ev_schedule(ctx, &ch.id, evse, schedule, t)?;
            reply(Reply::Ack)
        }
    }
}

/// A reboot does not prove a session ended: mark the open sessions suspect
/// and ask the charger for evidence.
fn reboot_evidence(ctx: &mut Ctx, charger: &str, t: DateTime<Utc>) -> Result<Vec<(Command, u64)>> {
    let mut cmds = Vec::new();
    for (id, evse) in ctx.active_on(charger) {
        let Some(mut s) = ctx.session(id)? else {
            continue;
        };
        s.suspect_since = Some(t);
        s.notes.push(format!(
            "{t}: the charger rebooted while this session was open; asking for evidence"
        ));
        let cmd = match &s.tx_ref {
            ChargerTxRef::V16 { .. } => Command::Trigger {
                message: "StatusNotification".into(),
                evse: Some(evse),
            },
            ChargerTxRef::V201 { transaction_id } => Command::GetTransactionStatus {
                transaction_id: Some(transaction_id.clone()),
            },
        };
        cmds.push((cmd, id));
        ctx.put_session(&s)?;
    }
    Ok(cmds)
}

fn tx(ctx: &mut Ctx, ch: &Charger, m: TxMessage, now: DateTime<Utc>) -> Result<std::result::Result<Reply, Rejection>> {
    let token_auth = |ctx: &mut Ctx, except| -> Result<Option<AuthStatus>> {
        m.token
            .as_deref()
            .map(|uid| ctx.authorize(ch, uid, m.t, except))
            .transpose()
    };
    let r = match &m.target {
        TxTarget::Charger(r) => r.clone(),
        TxTarget::Session(id) => {
            let Some(mut s) = ctx.session(*id)?.filter(|s| s.charger == ch.id) else {
                let what = if m.phase == TxPhase::Ended {
                    "StopTransaction"
                } else {
                    "MeterValues"
                };
                ctx.event(
                    now,
                    Some(&ch.id),
                    "unknown_transaction",
                    format!("{what} for transaction {id}, which this charger never started here"),
                )?;
                return Ok(Ok(Reply::Tx {
                    auth: token_auth(ctx, None)?,
                }));
            };
            if session::apply(&mut s, &m, now) {
                ctx.add_samples(s.id, &m.samples)?;
                ctx.put_session(&s)?;
            }
            return Ok(Ok(Reply::Tx {
                auth: token_auth(ctx, Some(s.id))?,
            }));
        }
    };
    let key = r.index_key(&ch.id);
    let known = ctx.tx_index.t()?.get(key.as_str())?.map(|v| v.value());
    if let Some(id) = known {
        let Some(mut s) = ctx.session(id)? else {
            return Ok(Err(Rejection::new(
                ErrorCode::InternalError,
                format!("transaction index points at missing session {id}"),
            )));
        };
        if m.phase == TxPhase::Started && matches!(r, ChargerTxRef::V16 { .. }) {
            return Ok(Ok(Reply::TxStarted {
                session: id,
                auth: s.auth,
            }));
        }
        let before_token = s.token.clone();
        if session::apply(&mut s, &m, now) {
            if s.token != before_token
                && let Some(uid) = s.token.clone()
            {
                s.auth = ctx.authorize(ch, &uid, m.t, Some(id))?;
            }
            ctx.add_samples(s.id, &m.samples)?;
            ctx.put_session(&s)?;
        }
        let auth = m.token.as_ref().map(|_| s.auth);
        if m.phase == TxPhase::Ended && s.status == SessionStatus::Completed {
            let total_cost = ops::final_cost(ctx, s.id)?;
            return Ok(Ok(Reply::TxEnded { auth, total_cost }));
        }
        return Ok(Ok(Reply::Tx { auth }));
    }
    // A transaction we have not seen: open a session.
    let mut auth = token_auth(ctx, None)?.unwrap_or(AuthStatus::Accepted);
    let evse = m.evse.unwrap_or(0);
    if auth == AuthStatus::Accepted
        && let Some(uid) = &m.token
        && m.reservation_id.is_none()
        && let Some(r) = ctx.reserved_for_other(ch, uid, Some(evse), m.t)?
    {
        auth = AuthStatus::NotAtThisTime;
        ctx.event(
            now,
            Some(&ch.id),
            "reservation",
            format!("token {uid} refused on EVSE {evse}: reserved by reservation {r}"),
        )?;
    }
    for (id, e) in ctx.active_on(&ch.id) {
        if e == evse
            && evse != 0
            && let Some(mut old) = ctx.session(id)?
        {
            let evidence = format!("a new transaction started on EVSE {evse} at {}", m.t.to_rfc3339());
            session::close_by_inference(&mut old, &evidence, now);
            ctx.put_session(&old)?;
            ctx.event(now, Some(&ch.id), "inferred_end", format!("session {id}: {evidence}"))?;
        }
    }
    let id = ctx.next_session_id()?;
    let mut s = session::open(id, &ch.id, &m, r.clone(), auth, now);
    billing::seed_state(ch, &mut s);
    device::adopt_needs(ctx, &mut s, now)?;
    if m.phase == TxPhase::Started {
        session::add_samples(&mut s, &m.samples);
    } else {
        session::apply(&mut s, &m, now);
        ctx.event(
            now,
            Some(&ch.id),
            "late_transaction",
            format!("session {id}: first message was {:?}", m.phase),
        )?;
    }
    ctx.add_samples(id, &m.samples)?;
    ctx.tx_index.t()?.insert(key.as_str(), id)?;
    ctx.put_session(&s)?;
    if auth == AuthStatus::Accepted {
        ctx.use_reservation(&ch.id, m.token.as_deref(), m.evse, m.reservation_id, id, m.t)?;
    }
    Ok(Ok(match r {
        ChargerTxRef::V16 { .. } => Reply::TxStarted { session: id, auth },
        ChargerTxRef::V201 { .. } => Reply::Tx {
            auth: m.token.as_ref().map(|_| auth),
        },
    }))
}

pub(super) fn admin(ctx: &mut Ctx, op: AdminOp, t: DateTime<Utc>) -> Result<AdminResult> {
    ctx.now = t;
    Ok(match op {
        AdminOp::Noop => AdminResult::Done,
        AdminOp::Connected {
            id,
            protocol,
            create_as,
        } => {
            let ch = match ctx.charger(&id)? {
                Some(mut ch) => {
                    ch.protocol = Some(protocol);
                    ch.last_seen = Some(t);
                    ch
                }
                None => {
                    let Some(registration) = create_as else {
                        return Ok(AdminResult::Charger(None));
                    };
                    let mut ch = Charger::new(&id, registration, t);
                    ch.protocol = Some(protocol);
                    ch.last_seen = Some(t);
                    let (kind, note) = match registration {
                        Registration::Pending => ("pending", "unknown charger connected; waiting for `charger accept`"),
                        _ => (
                            "auto-accepted",
                            "unknown charger connected and was accepted (unknown_chargers = \"accept\")",
                        ),
                    };
                    ctx.event(t, Some(&id), kind, note.into())?;
                    ch
                }
            };
            ctx.put_charger(&ch)?;
            AdminResult::Charger(Some(Box::new(ch)))
        }
        AdminOp::ChargerAdd(new) => match ctx.charger(&new.id)? {
            Some(old) if old.registration != Registration::Pending => {
                AdminResult::Conflict(format!("charger {} is already registered", new.id))
            }
            existing => {
                if ctx.site(&new.site)?.is_none() {
                    return Ok(AdminResult::NotFound(format!("site {} does not exist", new.site)));
                }
                if let Some(name) = &new.circuit {
                    match ctx.circuit(name)? {
                        None => return Ok(AdminResult::NotFound(format!("circuit {name} does not exist"))),
                        Some(c) if c.site != new.site => {
                            return Ok(AdminResult::Conflict(format!(
                                "circuit {name} belongs to site {}, not {}",
                                c.site, new.site
                            )));
                        }
                        Some(_) => {}
                    }
                }
                let mut ch = *new;
                if let Some(old) = existing {
                    // A pending charger that is now registered keeps what it told us.
                    ch.protocol = old.protocol;
                    ch.vendor = old.vendor;
                    ch.model = old.model;
                    ch.serial = old.serial;
                    ch.firmware = old.firmware;
                    ch.connectors = old.connectors;
                    ch.last_seen = old.last_seen;
                    ch.last_boot = old.last_boot;
                    ch.created_at = old.created_at;
                }
                ctx.put_charger(&ch)?;
                AdminResult::Charger(Some(Box::new(ch)))
            }
        },
        AdminOp::SetRegistration { id, registration } => match ctx.charger(&id)? {
            Some(mut ch) => {
                ch.registration = registration;
                ctx.put_charger(&ch)?;
                ctx.event(
                    t,
                    Some(&id),
                    "registration",
                    format!("operator set registration to {registration:?}"),
                )?;
                AdminResult::Charger(Some(Box::new(ch)))
            }
            None => AdminResult::NotFound(format!("no charger {id}")),
        },
        AdminOp::ChargerRemove { id } => {
            if !ctx.remove_charger(&id)? {
                AdminResult::NotFound(format!("no charger {id}"))
            } else {
                AdminResult::Done
            }
        }
        AdminOp::Disconnected { id, last_seen } => {
            if let Some(mut ch) = ctx.charger(&id)? {
                ch.last_seen = Some(last_seen);
                ctx.put_charger(&ch)?;
            }
            AdminResult::Done
        }
        AdminOp::TokenAdd(token) => {
            if ctx.token(&token.uid)?.is_some() {
                AdminResult::Conflict(format!("token {} already exists", token.uid))
            } else {
                ctx.tokens.t()?.insert(token.uid.as_str(), encode(&token).as_slice())?;
                AdminResult::Done
            }
        }
        AdminOp::TokenBlocked { uid, blocked } => match ctx.token(&uid)? {
            Some(mut tok) => {
                tok.blocked = blocked;
                ctx.tokens.t()?.insert(uid.as_str(), encode(&tok).as_slice())?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no token {uid}")),
        },
        AdminOp::TokenRemove { uid } => {
            if ctx.tokens.t()?.remove(uid.as_str())?.is_none() {
                AdminResult::NotFound(format!("no token {uid}"))
            } else {
                AdminResult::Done
            }
        }
        AdminOp::SiteAdd(site) => {
            if ctx.site(&site.name)?.is_some() {
                AdminResult::Conflict(format!("site {} already exists", site.name))
            } else {
                ctx.sites.t()?.insert(site.name.as_str(), encode(&site).as_slice())?;
                AdminResult::Done
            }
        }
        AdminOp::SiteRule { site, rule } => match ctx.site(&site)? {
            Some(mut s) => {
                match rule {
                    Some(r) => s.rules.push(r),
                    None => s.rules.clear(),
                }
                ctx.sites.t()?.insert(site.as_str(), encode(&s).as_slice())?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no site {site}")),
        },
        AdminOp::InferEnd { session: id, evidence } => match ctx.session(id)? {
            Some(mut s) => {
                let charger = s.charger.clone();
                session::close_by_inference(&mut s, &evidence, t);
                ctx.put_session(&s)?;
                ctx.event(t, Some(&charger), "inferred_end", format!("session {id}: {evidence}"))?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no session {id}")),
        },
        AdminOp::Record(e) => {
            let seq = ctx.seq();
            ctx.events.t()?.insert(seq, encode(&e).as_slice())?;
            AdminResult::Done
        }
        AdminOp::Load(op) => load_admin(ctx, op, t)?,
        AdminOp::TariffSet { tariff, assign } => billing::tariff_set(ctx, *tariff, assign, t)?,
        AdminOp::MeterKey { charger, key } => billing::meter_key(ctx, &charger, key)?,
        AdminOp::TariffUnassign { id, at } => billing::tariff_unassign(ctx, id, at.unwrap_or(t))?,
        AdminOp::TariffRemove { id } => billing::tariff_remove(ctx, &id)?,
        AdminOp::SessionReprice { id } => billing::reprice(ctx, id)?,
        AdminOp::Ops(op) => ops::admin(ctx, op, t)?,
        AdminOp::Transfer(op) => transfer::admin(ctx, op, t)?,
        AdminOp::Device(op) => device::admin(ctx, op, t)?,
        AdminOp::Security(op) => ctx.security(op)?,
        AdminOp::Pnc(op) => pnc::admin(ctx, op, t)?,
    })
}

fn load_admin(ctx: &mut Ctx, op: LoadOp, t: DateTime<Utc>) -> Result<AdminResult> {
    Ok(match op {
        LoadOp::CircuitAdd(c) => {
            if ctx.circuit(&c.id)?.is_some() {
                return Ok(AdminResult::Conflict(format!("circuit {} already exists", c.id)));
            }
            if ctx.site(&c.site)?.is_none() {
                return Ok(AdminResult::NotFound(format!("site {} does not exist", c.site)));
            }
            match &c.parent {
                Some(p) => match ctx.circuit(p)? {
                    None => return Ok(AdminResult::NotFound(format!("parent circuit {p} does not exist"))),
                    Some(parent) if parent.site != c.site => {
                        return Ok(AdminResult::Conflict(format!(
                            "parent circuit {p} belongs to site {}",
                            parent.site
                        )));
                    }
                    Some(_) => {}
                },
                None => {
                    let root = ctx
                        .circuits
                        .t()?
                        .iter()?
                        .filter_map(|e| e.ok())
                        .filter_map(|(_, v)| decode::<Circuit>("circuits", v.value()).ok())
                        .find(|o| o.site == c.site && o.parent.is_none());
                    if let Some(root) = root {
                        return Ok(AdminResult::Conflict(format!(
                            "site {} already has a grid connection ({}); give --parent",
                            c.site, root.id
                        )));
                    }
                }
            }
            ctx.put_circuit(&c)?;
            ctx.event(t, None, "circuit", format!("circuit {} added", c.id))?;
            AdminResult::Done
        }
        LoadOp::CircuitLimit {
            id,
            max_current,
            safe_current,
            max_power_w,
        } => match ctx.circuit(&id)? {
            Some(mut c) => {
                if let Some(m) = max_current {
                    c.max_current = m;
                }
                if safe_current.is_some() {
                    c.safe_current = safe_current;
                }
                if max_power_w.is_some() {
                    c.max_power_w = max_power_w;
                }
                ctx.put_circuit(&c)?;
                ctx.event(
                    t,
                    None,
                    "circuit",
                    format!("circuit {id} limit set to {:?} A", c.max_current),
                )?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no circuit {id}")),
        },
        LoadOp::CircuitRemove { id } => {
            if ctx.circuit(&id)?.is_none() {
                return Ok(AdminResult::NotFound(format!("no circuit {id}")));
            }
            for e in ctx.circuits.t()?.iter()? {
                let c: Circuit = decode("circuits", e?.1.value())?;
                if c.parent.as_deref() == Some(id.as_str()) {
                    return Ok(AdminResult::Conflict(format!(
                        "circuit {id} still feeds circuit {}; remove that first",
                        c.id
                    )));
                }
            }
            for e in ctx.chargers.iter()? {
                let ch: Charger = decode("chargers", e?.1.value())?;
                if ch.circuit.as_deref() == Some(id.as_str()) {
                    return Ok(AdminResult::Conflict(format!(
                        "charger {} is on circuit {id}; move or remove it first",
                        ch.id
                    )));
                }
            }
            ctx.circuits.t()?.remove(id.as_str())?;
            ctx.event(t, None, "circuit", format!("circuit {id} removed"))?;
            AdminResult::Done
        }
        LoadOp::MeterBind { circuit, meter } => match ctx.circuit(&circuit)? {
            Some(mut c) => {
                c.meter = meter;
                ctx.put_circuit(&c)?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no circuit {circuit}")),
        },
        LoadOp::Prices { site, slots } => {
            if ctx.site(&site)?.is_none() {
                return Ok(AdminResult::NotFound(format!("no site {site}")));
            }
            let mut all: Vec<PriceSlot> = match ctx.prices.t()?.get(site.as_str())? {
                Some(v) => decode("prices", v.value())?,
                None => Vec::new(),
            };
            if let Some(from) = slots.first().map(|s| s.start) {
                all.retain(|s| s.end <= from);
            }
            // Past prices are no use to planning; two days stay for `price list`.
            let horizon = t - chrono::Duration::days(2);
            all.retain(|s| s.end > horizon);
            all.extend(slots);
            ctx.prices.t()?.insert(site.as_str(), encode(&all).as_slice())?;
            AdminResult::Done
        }
        LoadOp::SessionTarget {
            id,
            departure,
            energy_target_wh,
            priority,
        } => match ctx.session(id)? {
            Some(mut s) if s.status == SessionStatus::Active => {
                if departure.is_some() {
                    s.departure = departure;
                }
                if energy_target_wh.is_some() {
                    s.energy_target_wh = energy_target_wh;
                }
                if priority.is_some() {
                    s.priority = priority;
                }
                ctx.put_session(&s)?;
                AdminResult::Done
            }
            Some(_) => AdminResult::Conflict(format!("session {id} has already ended")),
            None => AdminResult::NotFound(format!("no session {id}")),
        },
    })
}
