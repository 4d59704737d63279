//! The device model, monitors, device events, external charging limits
//! and what cars say they need, inside the writer's transaction. A report
//! part is committed before the charger hears its answer, so a report that
//! was acknowledged is on disk in full.

use super::{AdminResult, Ctx, Result, decode, encode};
use crate::domain::device::{
    DeviceEvent, DeviceNote, EvInfo, EvNeeds, ExternalLimit, Monitor, ReportPart, ReportStatus, ReportedVariable,
    Schedule, StoredVariable,
};
use crate::domain::{Charger, Event, Protocol, Session};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, Table};
use serde_json::json;

/// Needs a car sent before its session opened are applied to a session
/// that opens on that EVSE within this long.
const NEEDS_WAIT_S: i64 = 600;

/// Which of a charger's reports a status row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// GetBaseReport / GetReport → NotifyReport (1.6: GetConfiguration).
    Device,
    /// GetMonitoringReport → NotifyMonitoringReport.
    Monitoring,
}

impl ReportKind {
    fn tag(self) -> &'static str {
        match self {
            ReportKind::Device => "device",
            ReportKind::Monitoring => "monitoring",
        }
    }
}

/// The key of a charger's report status row.
pub fn report_key(charger: &str, kind: ReportKind) -> String {
    format!("{charger}\u{1f}{}", kind.tag())
}

/// The range of keys of one charger in a table keyed `charger␟…`: ids are
/// printable ASCII, so nothing but this charger's rows falls between.
pub fn charger_range(charger: &str) -> (String, String) {
    (format!("{charger}\u{1f}"), format!("{charger}\u{20}"))
}

pub fn evse_key(charger: &str, evse: u32) -> String {
    format!("{charger}\u{1f}{evse}")
}

#[derive(Debug, Clone)]
pub enum DeviceOp {
    /// A report is about to be asked for: allocate a fresh requestId and
    /// note the request (answers `{"request_id": n}`).
    ReportRequested {
        charger: String,
        kind: ReportKind,
        what: String,
    },
    /// The charger's answer to the request.
    ReportAnswered {
        charger: String,
        kind: ReportKind,
        request_id: i64,
        answer: String,
    },
    /// Values read with GetConfiguration (1.6) or GetVariables (2.0.1);
    /// with `request_id` they are a whole 1.6 report.
    Values {
        charger: String,
        values: Vec<ReportedVariable>,
        request_id: Option<i64>,
    },
    MonitorSet {
        charger: String,
        monitor: Monitor,
    },
    MonitorCleared {
        charger: String,
        id: i64,
    },
    /// The operator lifts external limits the charger never cleared (all,
    /// or one EVSE's, or one source's); answers `{"cleared": n}`.
    LimitsLifted {
        charger: String,
        evse: Option<u32>,
        source: Option<String>,
    },
}

pub(super) fn admin(ctx: &mut Ctx, op: DeviceOp, t: DateTime<Utc>) -> Result<AdminResult> {
    Ok(match op {
        DeviceOp::ReportRequested { charger, kind, what } => {
            let id = ctx.meta.get("next_request_id")?.map(|v| v.value()).unwrap_or(1);
            ctx.meta.insert("next_request_id", id + 1)?;
            let request_id = i64::try_from(id).unwrap_or(i64::MAX);
            let st = ReportStatus::new(request_id, &what, t);
            put(ctx.reports.t()?, &report_key(&charger, kind), &st)?;
            AdminResult::Json(json!({"request_id": request_id}))
        }
        DeviceOp::ReportAnswered {
            charger,
            kind,
            request_id,
            answer,
        } => {
            let key = report_key(&charger, kind);
            if let Some(mut st) = get::<ReportStatus>(ctx.reports.t()?, &key)?.filter(|s| s.request_id == request_id) {
                st.answer = Some(answer);
                st.updated_at = t;
                put(ctx.reports.t()?, &key, &st)?;
            }
            AdminResult::Done
        }
        DeviceOp::Values {
            charger,
            values,
            request_id,
        } => {
            for v in &values {
                store_variable(ctx, &charger, v, request_id, t)?;
            }
            if let Some(rid) = request_id {
                let key = report_key(&charger, ReportKind::Device);
                let mut st = get::<ReportStatus>(ctx.reports.t()?, &key)?
                    .filter(|s| s.request_id == rid)
                    .unwrap_or_else(|| ReportStatus::new(rid, "GetConfiguration", t));
                st.answer = Some("Accepted".into());
                st.add_part(0, false, values.len(), t);
                put(ctx.reports.t()?, &key, &st)?;
            }
            AdminResult::Done
        }
        DeviceOp::MonitorSet { charger, monitor } => {
            put(ctx.monitors.t()?, &monitor_key(&charger, monitor.id), &monitor)?;
            AdminResult::Done
        }
        DeviceOp::MonitorCleared { charger, id } => {
            ctx.monitors.t()?.remove(monitor_key(&charger, id).as_str())?;
            AdminResult::Done
        }
        DeviceOp::LimitsLifted { charger, evse, source } => {
            let n = remove_limits(ctx, &charger, evse, source.as_deref())?;
            let place = evse.map_or_else(|| "every EVSE".to_string(), |e| format!("EVSE {e}"));
            let whose = source.map_or_else(|| "every source".to_string(), |s| format!("source {s}"));
            let detail = format!("{place}: the operator lifted the limits of {whose} ({n} cleared)");
            ctx.event(t, Some(&charger), "charging_limit_cleared", detail)?;
            AdminResult::Json(json!({"cleared": n}))
        }
    })
}

fn monitor_key(charger: &str, id: i64) -> String {
    format!("{charger}\u{1f}{id}")
}

fn get<T: serde::de::DeserializeOwned>(table: &Table<&'static str, &'static [u8]>, key: &str) -> Result<Option<T>> {
    table.get(key)?.map(|v| decode("device", v.value())).transpose()
}

fn put<T: serde::Serialize>(table: &mut Table<&'static str, &'static [u8]>, key: &str, v: &T) -> Result<()> {
    table.insert(key, encode(v).as_slice())?;
    Ok(())
}

fn store_variable(
    ctx: &mut Ctx,
    charger: &str,
    v: &ReportedVariable,
    request_id: Option<i64>,
    t: DateTime<Utc>,
) -> Result<()> {
    let row = StoredVariable {
        var: v.clone(),
        reported_at: t,
        request_id,
    };
    put(ctx.device_model.t()?, &format!("{charger}\u{1f}{}", v.key()), &row)
}

/// A 2.0.1 charger whose device model may have changed since it was last
/// reported: new to us, or booting with another vendor, model or firmware.
pub(super) fn inventory_due(
    ctx: &mut Ctx,
    ch: &Charger,
    vendor: &str,
    model: &str,
    firmware: Option<&str>,
) -> Result<bool> {
    if ch.protocol != Some(Protocol::V201) {
        return Ok(false);
    }
    let changed = ch.vendor.as_deref() != Some(vendor)
        || ch.model.as_deref() != Some(model)
        || ch.firmware.as_deref() != firmware;
    let reported = get::<ReportStatus>(ctx.reports.t()?, &report_key(&ch.id, ReportKind::Device))?.is_some();
    Ok(changed || !reported)
}

/// Note a part of a report in its status row. Parts of an older request
/// (ids only grow) keep their values but leave the newer status alone; a
/// report we did not ask for starts a status of its own.
fn note_part(
    ctx: &mut Ctx,
    charger: &str,
    kind: ReportKind,
    part: (i64, u32, bool, usize),
    t: DateTime<Utc>,
) -> Result<bool> {
    let (request_id, seq_no, tbc, items) = part;
    let key = report_key(charger, kind);
    let mut st = match get::<ReportStatus>(ctx.reports.t()?, &key)? {
        Some(s) if s.request_id > request_id => return Ok(false),
        Some(s) if s.request_id == request_id => s,
        _ => ReportStatus::new(request_id, "sent by the charger", t),
    };
    let first = st.parts.is_empty();
    st.add_part(seq_no, tbc, items, t);
    put(ctx.reports.t()?, &key, &st)?;
    Ok(first)
}

pub(super) fn report(ctx: &mut Ctx, charger: &str, part: ReportPart<ReportedVariable>, t: DateTime<Utc>) -> Result<()> {
    for v in &part.items {
        store_variable(ctx, charger, v, Some(part.request_id), t)?;
    }
    note_part(
        ctx,
        charger,
        ReportKind::Device,
        (part.request_id, part.seq_no, part.tbc, part.items.len()),
        t,
    )?;
    Ok(())
}

/// A monitoring report lists every monitor: the first part of a new one
/// replaces what was stored.
pub(super) fn monitoring_report(
    ctx: &mut Ctx,
    charger: &str,
    part: ReportPart<Monitor>,
    t: DateTime<Utc>,
) -> Result<()> {
    let first = note_part(
        ctx,
        charger,
        ReportKind::Monitoring,
        (part.request_id, part.seq_no, part.tbc, part.items.len()),
        t,
    )?;
    if first {
        let (from, to) = charger_range(charger);
        let old: Vec<String> = ctx
            .monitors
            .t()?
            .range(from.as_str()..to.as_str())?
            .map(|e| e.map(|(k, _)| k.value().to_string()))
            .collect::<std::result::Result<_, _>>()?;
        for k in old {
            ctx.monitors.t()?.remove(k.as_str())?;
        }
    }
    for m in &part.items {
        put(ctx.monitors.t()?, &monitor_key(charger, m.id), m)?;
    }
    Ok(())
}

/// Each event becomes an `Event` of kind `device_event` with the severity
/// of the monitor that fired; the variable's stored value follows it.
pub(super) fn events(ctx: &mut Ctx, charger: &str, events: Vec<DeviceEvent>) -> Result<()> {
    for e in events {
        let severity = match e.monitor {
            Some(id) => get::<Monitor>(ctx.monitors.t()?, &monitor_key(charger, id))?.map(|m| m.severity),
            None => None,
        };
        let vkey = format!("{charger}\u{1f}{}\u{1f}Actual", e.at.key());
        if let Some(mut row) = get::<StoredVariable>(ctx.device_model.t()?, &vkey)? {
            row.var.value = Some(e.value.clone());
            row.reported_at = e.t;
            put(ctx.device_model.t()?, &vkey, &row)?;
        }
        let subject = e.at.name();
        let mut detail = format!("{subject} = {}: {} ({}", e.value, e.trigger, e.notification);
        if let Some(id) = e.monitor {
            detail.push_str(&format!(", monitor {id}"));
        }
        if let Some(s) = severity {
            detail.push_str(&format!(", severity {s}"));
        }
        detail.push(')');
        if e.cleared {
            detail.push_str(" cleared");
        }
        if let Some(info) = &e.tech_info {
            detail.push_str(&format!(": {info}"));
        }
        let ev = Event {
            t: e.t,
            charger: Some(charger.to_string()),
            kind: "device_event".into(),
            detail,
            device: Some(DeviceNote {
                subject,
                severity,
                cleared: e.cleared,
            }),
        };
        let seq = ctx.seq();
        ctx.events.t()?.insert(seq, encode(&ev).as_slice())?;
    }
    Ok(())
}

fn limit_key(charger: &str, evse: u32, source: &str) -> String {
    format!("{charger}\u{1f}{evse}\u{1f}{source}")
}

pub(super) fn limit(ctx: &mut Ctx, l: ExternalLimit) -> Result<()> {
    let now = l.received_at;
    let detail = format!(
        "EVSE {}: {} limits charging{}{}",
        l.evse,
        l.source,
        match l
            .schedules
            .first()
            .and_then(|s| s.periods.first().map(|p| (p.limit, s.unit)))
        {
            Some((v, u)) => format!(" to {v} {u:?}"),
            None => " (no schedule given)".into(),
        },
        if l.grid_critical == Some(true) {
            ", grid critical"
        } else {
            ""
        }
    );
    put(ctx.charging_limits.t()?, &limit_key(&l.charger, l.evse, &l.source), &l)?;
    ctx.event(now, Some(&l.charger), "charging_limit", detail)
}

pub(super) fn limit_cleared(
    ctx: &mut Ctx,
    charger: &str,
    evse: Option<u32>,
    source: &str,
    t: DateTime<Utc>,
) -> Result<()> {
    let n = remove_limits(ctx, charger, evse, Some(source))?;
    let place = evse.map_or_else(|| "every EVSE".to_string(), |e| format!("EVSE {e}"));
    ctx.event(
        t,
        Some(charger),
        "charging_limit_cleared",
        format!("{place}: {source} lifted its limit ({n} cleared)"),
    )
}

/// Remove a charger's external limits at `evse` (all EVSEs when `None`)
/// from `source` (every source when `None`); returns how many.
fn remove_limits(ctx: &mut Ctx, charger: &str, evse: Option<u32>, source: Option<&str>) -> Result<usize> {
    let (from, to) = charger_range(charger);
    let mut gone = Vec::new();
    for e in ctx.charging_limits.t()?.range(from.as_str()..to.as_str())? {
        let (k, v) = e?;
        let l: ExternalLimit = decode("charging_limits", v.value())?;
        if source.is_none_or(|s| s == l.source) && evse.is_none_or(|e| e == l.evse) {
            gone.push(k.value().to_string());
        }
    }
    for k in &gone {
        ctx.charging_limits.t()?.remove(k.as_str())?;
    }
    Ok(gone.len())
}

/// The car's info at an EVSE for the session open there now: what was
/// kept for another session is dropped.
fn ev_info_for(ctx: &mut Ctx, charger: &str, evse: u32) -> Result<(EvInfo, Option<u64>)> {
    let open = ctx
        .active_on(charger)
        .into_iter()
        .find(|(_, e)| *e == evse)
        .map(|o| o.0);
    let info = get::<EvInfo>(ctx.ev_info.t()?, &evse_key(charger, evse))?
        .filter(|i| i.session == open)
        .unwrap_or_default();
    Ok((EvInfo { session: open, ..info }, open))
}

/// What a car needs becomes its session's target (departure, energy), and
/// is kept for load management (its maximum current and power).
pub(super) fn needs(ctx: &mut Ctx, charger: &str, evse: u32, needs: EvNeeds, t: DateTime<Utc>) -> Result<()> {
    let (mut info, open) = ev_info_for(ctx, charger, evse)?;
    let detail = match open.map(|id| ctx.session(id)).transpose()?.flatten() {
        Some(mut s) => {
            apply_needs(&mut s, &needs);
            ctx.put_session(&s)?;
            format!("EVSE {evse}: session {} {}", s.id, describe(&needs))
        }
        None => format!(
            "EVSE {evse}: no open session yet; {} (kept for the next session)",
            describe(&needs)
        ),
    };
    info.needs = Some(needs);
    put(ctx.ev_info.t()?, &evse_key(charger, evse), &info)?;
    ctx.event(t, Some(charger), "ev_charging_needs", detail)
}

fn describe(n: &EvNeeds) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "departs {}, needs {} Wh, max {} A / {} W",
        opt(n.departure.map(|d| d.to_rfc3339())),
        opt(n.energy_wh.map(|e| e.to_string())),
        opt(n.max_current_a.map(|a| a.to_string())),
        opt(n.max_power_w.map(|w| w.to_string())),
    )
}

fn apply_needs(s: &mut Session, n: &EvNeeds) {
    s.departure = n.departure.or(s.departure);
    s.energy_target_wh = n.energy_wh.or(s.energy_target_wh);
}

/// A session opening where a car already said what it needs (ISO 15118
/// cars may do so before the transaction starts) takes those needs.
pub(super) fn adopt_needs(ctx: &mut Ctx, s: &mut Session, now: DateTime<Utc>) -> Result<()> {
    let key = evse_key(&s.charger, s.evse);
    let Some(mut info) = get::<EvInfo>(ctx.ev_info.t()?, &key)? else {
        return Ok(());
    };
    let fresh = info
        .needs
        .as_ref()
        .is_some_and(|n| (now - n.received_at).num_seconds() <= NEEDS_WAIT_S);
    if info.session.is_some() || !fresh {
        return Ok(());
    }
    if let Some(n) = &info.needs {
        apply_needs(s, n);
        s.notes.push(format!("{now}: target from the car's charging needs"));
    }
    info.session = Some(s.id);
    put(ctx.ev_info.t()?, &key, &info)
}

pub(super) fn ev_schedule(ctx: &mut Ctx, charger: &str, evse: u32, schedule: Schedule, t: DateTime<Utc>) -> Result<()> {
    let (mut info, _) = ev_info_for(ctx, charger, evse)?;
    info.schedule = Some(schedule);
    info.schedule_at = Some(t);
    put(ctx.ev_info.t()?, &evse_key(charger, evse), &info)
}
