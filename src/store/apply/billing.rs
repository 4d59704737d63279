//! Billing inside the writer's transaction: a completed session is billed in
//! the same commit that completes it; tariffs, their assignments and meter
//! keys are stored here. The decisions are `billing`'s pure functions.

use super::{AdminResult, Ctx, Result, TariffAssign, decode, encode};
use crate::billing::{self, Assignment, Bill, BillInput, MeterKey, Scope, StoredTariff};
use crate::domain::{Charger, ConnectorStatus, DEFAULT_SITE, Session, SessionStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use redb::ReadableTable;
use serde_json::json;

impl Ctx<'_> {
    fn meter_keys_of(&mut self, charger: &str) -> Result<Vec<MeterKey>> {
        Ok(self
            .meter_keys
            .t()?
            .get(charger)?
            .map(|v| decode("meter_keys", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Bills a completed session and stores the bill.
    pub(super) fn settle(&mut self, s: &Session) -> Result<()> {
        let bill = self.bill_of(s)?;
        self.bills.t()?.insert(s.id, encode(&bill).as_slice())?;
        Ok(())
    }

    /// The bill of a completed session as it would be now: the assignment
    /// in force at its start, the tariff, the meter keys known.
    fn bill_of(&mut self, s: &Session) -> Result<Bill> {
        let mut samples = Vec::new();
        for e in self.samples.t()?.range((s.id, 0)..=(s.id, u64::MAX))? {
            crate::store::decode_samples(e?.1.value(), &mut samples)?;
        }
        let site = self
            .charger(&s.charger)?
            .map_or_else(|| DEFAULT_SITE.to_string(), |c| c.site);
        let timezone = self.site(&site)?.map_or_else(|| "UTC".to_string(), |x| x.timezone);
        let group = match &s.token {
            Some(uid) => self.token(uid)?.and_then(|t| t.group),
            None => None,
        };
        let assignments = self.all_assignments()?;
        let assignment = billing::resolve(&assignments, s.started_at, &s.charger, &site, group.as_deref());
        let tariff: Option<StoredTariff> = match assignment {
            Some(a) => self
                .tariffs
                .t()?
                .get(a.tariff_id.as_str())?
                .map(|v| decode("tariffs", v.value()))
                .transpose()?,
            None => None,
        };
        let keys = self.meter_keys_of(&s.charger)?;
        Ok(billing::bill(&BillInput {
            session: s,
            samples: &samples,
            site: &site,
            timezone: &timezone,
            group: group.as_deref(),
            assignment,
            tariff: tariff.as_ref(),
            meter_keys: &keys,
            now: self.now,
        }))
    }

    fn all_assignments(&mut self) -> Result<Vec<Assignment>> {
        self.assignments
            .t()?
            .iter()?
            .map(|e| decode("tariff_assignments", e?.1.value()))
            .collect()
    }

    /// The bills whose stored JSON contains `mark` and that `keep` accepts.
    /// Looking for the bytes first spares decoding every bill (each holds
    /// its pricing document and signed records).
    fn bills_matching(&mut self, mark: &[u8], keep: impl Fn(&Bill) -> bool) -> Result<Vec<Bill>> {
        let mut found = Vec::new();
        for e in self.bills.t()?.iter()? {
            let (_, v) = e?;
            let bytes = v.value();
            if !mark.is_empty() && !bytes.windows(mark.len()).any(|w| w == mark) {
                continue;
            }
            let b: Bill = decode("bills", bytes)?;
            if keep(&b) {
                found.push(b);
            }
        }
        Ok(found)
    }
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A 1.6 connector status while a session runs is its charging state.
pub(super) fn note_status(
    ctx: &mut Ctx,
    charger: &str,
    evse: u32,
    status: ConnectorStatus,
    at: DateTime<Utc>,
) -> Result<()> {
    if !matches!(
        status,
        ConnectorStatus::Charging
            | ConnectorStatus::SuspendedEv
            | ConnectorStatus::SuspendedEvse
            | ConnectorStatus::Finishing
    ) {
        return Ok(());
    }
    for (id, e) in ctx.active_on(charger) {
        if e != evse {
            continue;
        }
        if let Some(mut s) = ctx.session(id)? {
            let before = s.states.len();
            s.note_state(at, status.as_str());
            if s.states.len() != before {
                ctx.put_session(&s)?;
            }
        }
    }
    Ok(())
}

/// A new session starts in the state its connector last reported (a 1.6
/// charger often reports Charging before StartTransaction).
pub(super) fn seed_state(ch: &Charger, s: &mut Session) {
    if !s.states.is_empty() {
        return;
    }
    let status = ch
        .connectors
        .iter()
        .find(|c| c.evse == s.evse && c.connector == s.connector)
        .map(|c| c.status);
    if let Some(st @ (ConnectorStatus::Charging | ConnectorStatus::SuspendedEv | ConnectorStatus::SuspendedEvse)) =
        status
    {
        s.note_state(s.started_at, st.as_str());
    }
}

pub(super) fn tariff_set(
    ctx: &mut Ctx,
    tariff: StoredTariff,
    assign: Option<TariffAssign>,
    t: DateTime<Utc>,
) -> Result<AdminResult> {
    if let Some(a) = &assign {
        match &a.scope {
            Scope::Site(name) if ctx.site(name)?.is_none() => {
                return Ok(AdminResult::NotFound(format!("no site {name}")));
            }
            Scope::Charger(id) if ctx.charger(id)?.is_none() => {
                return Ok(AdminResult::NotFound(format!("no charger {id}")));
            }
            _ => {}
        }
    }
    let replaced = ctx.tariffs.t()?.get(tariff.id.as_str())?.is_some();
    ctx.tariffs
        .t()?
        .insert(tariff.id.as_str(), encode(&tariff).as_slice())?;
    let assignment = match assign {
        Some(a) => {
            let id = ctx.meta.get("next_assignment")?.map_or(1, |v| v.value());
            ctx.meta.insert("next_assignment", id + 1)?;
            let asg = Assignment {
                id,
                tariff_id: tariff.id.clone(),
                scope: a.scope,
                from: a.from,
                until: a.until,
                created_at: t,
            };
            ctx.assignments.t()?.insert(id, encode(&asg).as_slice())?;
            Some(asg)
        }
        None => None,
    };
    let detail = match &assignment {
        Some(a) => format!(
            "tariff {} {} and assigned to {} (assignment {})",
            tariff.id,
            if replaced { "replaced" } else { "stored" },
            a.scope,
            a.id
        ),
        None => format!("tariff {} {}", tariff.id, if replaced { "replaced" } else { "stored" }),
    };
    ctx.event(t, None, "tariff", detail)?;
    Ok(AdminResult::Json(json!({
        "id": tariff.id,
        "version": tariff.version,
        "currency": tariff.currency,
        "replaced": replaced,
        "assignment": assignment,
    })))
}

pub(super) fn meter_key(ctx: &mut Ctx, charger: &str, key: MeterKey) -> Result<AdminResult> {
    if ctx.charger(charger)?.is_none() {
        return Ok(AdminResult::NotFound(format!("no charger {charger}")));
    }
    let mut keys = ctx.meter_keys_of(charger)?;
    let unchanged = keys.iter().any(|k| k.connector == key.connector && k.key == key.key);
    let mut reverified = Vec::new();
    if !unchanged {
        keys.retain(|k| k.connector != key.connector);
        let detail = format!(
            "meter public key for {} set ({})",
            key.connector
                .map_or("the charger".to_string(), |c| format!("connector {c}")),
            key.source
        );
        keys.push(key.clone());
        ctx.meter_keys.t()?.insert(charger, encode(&keys).as_slice())?;
        // Sessions that could not be verified for want of a key.
        let waiting = ctx.bills_matching(b"\"needs_key\":true", |b| b.charger == charger && b.eichrecht.needs_key)?;
        for id in waiting.into_iter().map(|b| b.session) {
            if let Some(s) = ctx.session(id)? {
                ctx.settle(&s)?;
                reverified.push(id);
            }
        }
        let now = ctx.now;
        ctx.event(now, Some(charger), "meter_key", detail)?;
    }
    Ok(AdminResult::Json(json!({
        "charger": charger,
        "connector": key.connector,
        "changed": !unchanged,
        "reverified": reverified,
    })))
}

/// Ends an assignment at `at`: it never grows longer and is never deleted
/// (bills name it). Sessions it already priced that started at or after
/// `at` keep their bills until they are repriced; the answer lists them.
pub(super) fn tariff_unassign(ctx: &mut Ctx, id: u64, at: DateTime<Utc>) -> Result<AdminResult> {
    let Some(mut a) = ctx
        .assignments
        .t()?
        .get(id)?
        .map(|v| decode::<Assignment>("tariff_assignments", v.value()))
        .transpose()?
    else {
        return Ok(AdminResult::NotFound(format!("no tariff assignment {id}")));
    };
    if let Some(from) = a.from
        && at < from
    {
        return Ok(AdminResult::Invalid(
            "at",
            format!(
                "{} is before assignment {id} starts ({}); to cancel an assignment that has not started, end it at its start: --at {}",
                rfc(at),
                rfc(from),
                rfc(from)
            ),
        ));
    }
    let changed = match a.until {
        Some(until) if until < at => {
            return Ok(AdminResult::Conflict(format!(
                "assignment {id} already ended at {}; unassign only ends an assignment earlier",
                rfc(until)
            )));
        }
        Some(until) => until != at,
        None => true,
    };
    if changed {
        a.until = Some(at);
        ctx.assignments.t()?.insert(id, encode(&a).as_slice())?;
        let now = ctx.now;
        ctx.event(
            now,
            None,
            "tariff",
            format!(
                "assignment {id} (tariff {} for {}) ends at {}",
                a.tariff_id,
                a.scope,
                rfc(at)
            ),
        )?;
    }
    let mark = format!("\"assignment\":{id}");
    let priced = ctx.bills_matching(mark.as_bytes(), |b| {
        b.price.as_ref().and_then(|p| p.assignment) == Some(id)
    })?;
    let mut to_reprice = Vec::new();
    for b in priced {
        if let Some(s) = ctx.session(b.session)?
            && s.started_at >= at
        {
            to_reprice.push(s.id);
        }
    }
    Ok(AdminResult::Json(json!({
        "assignment": a,
        "changed": changed,
        "to_reprice": to_reprice,
    })))
}

/// Deletes a tariff unless an assignment in force now or later, or a bill,
/// refers to it. Assignments that ended stay as history.
pub(super) fn tariff_remove(ctx: &mut Ctx, id: &str) -> Result<AdminResult> {
    if ctx.tariffs.t()?.get(id)?.is_none() {
        return Ok(AdminResult::NotFound(format!("no tariff {id}")));
    }
    let now = ctx.now;
    let (holding, ended): (Vec<Assignment>, Vec<Assignment>) = ctx
        .all_assignments()?
        .into_iter()
        .filter(|a| a.tariff_id == id)
        .partition(|a| a.current_or_future(now));
    if !holding.is_empty() {
        let list: Vec<String> = holding.iter().map(|a| format!("{} ({})", a.id, a.scope)).collect();
        return Ok(AdminResult::Conflict(format!(
            "tariff {id} is still assigned: assignment{} {}; end it first with `voltyard tariff unassign ID`",
            if list.len() == 1 { "" } else { "s" },
            list.join(", ")
        )));
    }
    let mark = format!("\"tariff_id\":{}", json!(id));
    let mut priced: Vec<u64> = ctx
        .bills_matching(mark.as_bytes(), |b| b.price.as_ref().is_some_and(|p| p.tariff_id == id))?
        .into_iter()
        .map(|b| b.session)
        .collect();
    if !priced.is_empty() {
        priced.sort_unstable();
        const SHOWN: usize = 10;
        let more = priced.len().saturating_sub(SHOWN);
        let mut list: Vec<String> = priced.iter().take(SHOWN).map(u64::to_string).collect();
        if more > 0 {
            list.push(format!("and {more} more"));
        }
        return Ok(AdminResult::Conflict(format!(
            "tariff {id} priced session{} {}; a tariff that bills were priced with is kept",
            if priced.len() == 1 { "" } else { "s" },
            list.join(", ")
        )));
    }
    ctx.tariffs.t()?.remove(id)?;
    ctx.event(now, None, "tariff", format!("tariff {id} removed"))?;
    Ok(AdminResult::Json(json!({
        "id": id,
        "ended_assignments": ended.iter().map(|a| a.id).collect::<Vec<_>>(),
    })))
}

/// Bills a completed session again with the assignments, tariffs and meter
/// keys as they are now (the Eichrecht rule is `billing::bill`'s, as at
/// completion). When the bill changes, the previous one is summarised in
/// the session's notes with the time of repricing.
pub(super) fn reprice(ctx: &mut Ctx, id: u64) -> Result<AdminResult> {
    let Some(mut s) = ctx.session(id)? else {
        return Ok(AdminResult::NotFound(format!("no session {id}")));
    };
    if s.status == SessionStatus::Active {
        return Ok(AdminResult::Conflict(format!(
            "session {id} is still in progress; it is priced when it ends"
        )));
    }
    let old: Option<Bill> = ctx
        .bills
        .t()?
        .get(id)?
        .map(|v| decode("bills", v.value()))
        .transpose()?;
    let new = ctx.bill_of(&s)?;
    let unchanged = old.as_ref().is_some_and(|o| {
        Bill {
            computed_at: new.computed_at,
            ..o.clone()
        } == new
    });
    let brief = |b: &Bill| {
        json!({
            "price": b.price,
            "unpriced_reason": b.unpriced_reason,
            "eichrecht": b.eichrecht.state,
            "computed_at": b.computed_at,
        })
    };
    let before = old.as_ref().map(brief);
    if unchanged {
        return Ok(AdminResult::Json(json!({
            "session": id,
            "changed": false,
            "before": before,
            "after": before,
            "note": null,
        })));
    }
    let now = ctx.now;
    let was = old.as_ref().map_or_else(|| "no bill".to_string(), Bill::summary);
    let note = format!(
        "{}: repriced with the tariff assignments in force now for its start; previous bill: {was}; new bill: {}",
        rfc(now),
        new.summary()
    );
    s.notes.push(note.clone());
    ctx.sessions.t()?.insert(s.id, encode(&s).as_slice())?;
    ctx.bills.t()?.insert(s.id, encode(&new).as_slice())?;
    ctx.event(
        now,
        Some(&s.charger),
        "reprice",
        format!("session {id} repriced: was {was}; now {}", new.summary()),
    )?;
    Ok(AdminResult::Json(json!({
        "session": id,
        "changed": true,
        "before": before,
        "after": brief(&new),
        "note": note,
    })))
}
