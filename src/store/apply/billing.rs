//! Billing inside the writer's transaction: a completed session is billed in
//! the same commit that completes it; tariffs, their assignments and meter
//! keys are stored here. The decisions are `billing`'s pure functions.

use super::{AdminResult, Ctx, Result, TariffAssign, decode, encode};
use crate::billing::{self, Assignment, Bill, BillInput, MeterKey, Scope, StoredTariff};
use crate::domain::{Charger, ConnectorStatus, DEFAULT_SITE, Session};
use chrono::{DateTime, Utc};
use redb::ReadableTable;
use serde_json::json;

impl Ctx<'_> {
    fn meter_keys_of(&self, charger: &str) -> Result<Vec<MeterKey>> {
        Ok(self
            .meter_keys
            .get(charger)?
            .map(|v| decode("meter_keys", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Bills a completed session and stores the bill.
    pub(super) fn settle(&mut self, s: &Session) -> Result<()> {
        let mut samples = Vec::new();
        for e in self.samples.range((s.id, 0)..=(s.id, u64::MAX))? {
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
        let assignments: Vec<Assignment> = self
            .assignments
            .iter()?
            .map(|e| decode("tariff_assignments", e?.1.value()))
            .collect::<Result<_>>()?;
        let assignment = billing::resolve(&assignments, s.started_at, &s.charger, &site, group.as_deref());
        let tariff: Option<StoredTariff> = match assignment {
            Some(a) => self
                .tariffs
                .get(a.tariff_id.as_str())?
                .map(|v| decode("tariffs", v.value()))
                .transpose()?,
            None => None,
        };
        let keys = self.meter_keys_of(&s.charger)?;
        let bill = billing::bill(&BillInput {
            session: s,
            samples: &samples,
            site: &site,
            timezone: &timezone,
            group: group.as_deref(),
            assignment,
            tariff: tariff.as_ref(),
            meter_keys: &keys,
            now: self.now,
        });
        self.bills.insert(s.id, encode(&bill).as_slice())?;
        Ok(())
    }
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
    for (id, c, e, _) in ctx.active_sessions()? {
        if c != charger || e != evse {
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
    let replaced = ctx.tariffs.get(tariff.id.as_str())?.is_some();
    ctx.tariffs.insert(tariff.id.as_str(), encode(&tariff).as_slice())?;
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
            ctx.assignments.insert(id, encode(&asg).as_slice())?;
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
        ctx.meter_keys.insert(charger, encode(&keys).as_slice())?;
        // Sessions that could not be verified for want of a key.
        let mut waiting = Vec::new();
        for e in ctx.bills.iter()? {
            let (k, v) = e?;
            let bytes = v.value();
            const MARK: &[u8] = b"\"needs_key\":true";
            if !bytes.windows(MARK.len()).any(|w| w == MARK) {
                continue;
            }
            let b: Bill = decode("bills", bytes)?;
            if b.charger == charger && b.eichrecht.needs_key {
                waiting.push(k.value());
            }
        }
        for id in waiting {
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
