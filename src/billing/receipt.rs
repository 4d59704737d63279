//! Receipts: the content of a billed session for the driver (text), for
//! machines (JSON, stable field names) and for the S.A.F.E.
//! Transparenzsoftware (XML); and the check of a receipt JSON that
//! `voltyard verify` runs.

use super::model::{Bill, EichrechtState, EnergySource, SignedRecord};
use crate::domain::{Charger, ChargerTxRef, Session};
use crate::ocmf::report::{Entry, VerifyReport, verify_entries};
use crate::ocmf::xml::{XmlTransaction, write_xml};
use crate::ocmf::{PublicKey, Record};
use crate::tariff::{self, Dimension, Priced, ROUNDING};
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `format` field of a receipt JSON.
pub const RECEIPT_FORMAT: &str = "voltyard-receipt/1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("session {0} is still in progress: a receipt exists once it has ended")]
    InProgress(u64),
    #[error("session {0} has no signed meter data: there is nothing for the Transparenzsoftware")]
    Unsigned(u64),
    #[error("session {session}: {why}")]
    Unusable { session: u64, why: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    pub session: ReceiptSession,
    pub charger: ReceiptCharger,
    pub site: ReceiptSite,
    /// The energy billed (or that would be billed), Wh.
    pub energy_wh: Option<i64>,
    pub energy_source: Option<EnergySource>,
    pub tariff: Option<ReceiptTariff>,
    pub billed: bool,
    pub unpriced_reason: Option<String>,
    pub lines: Vec<ReceiptLine>,
    pub steps: Vec<ReceiptStep>,
    pub vat: Vec<ReceiptVat>,
    pub totals: Option<ReceiptTotals>,
    /// `tariff::ROUNDING.statement`.
    pub rounding: String,
    pub eichrecht: ReceiptEichrecht,
    /// The two documents the price was computed from:
    /// `voltyard tariff price TARIFF.json --session SESSION.json` reproduces it.
    pub pricing_input: Option<PricingInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSession {
    pub id: u64,
    pub transaction_id: String,
    pub evse: u32,
    pub connector: u32,
    pub token: Option<String>,
    pub started_at: DateTime<Utc>,
    pub stopped_at: DateTime<Utc>,
    /// In the site's time zone.
    pub started_local: String,
    pub stopped_local: String,
    pub duration: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptCharger {
    pub id: String,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSite {
    pub name: String,
    pub timezone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptTariff {
    pub id: String,
    pub currency: String,
    pub ocpi_version: String,
    /// `group employees`, `charger CP-1`, `site default`.
    pub assigned_to: Option<String>,
    pub assignment: Option<u64>,
}

/// One price component applied to one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptLine {
    /// Lines of one period share this number (0, 1, …).
    #[serde(default)]
    pub period: usize,
    pub from_local: String,
    pub to_local: String,
    /// `charging`, `suspended_evse`, `suspended_ev`.
    pub state: String,
    /// `ENERGY`, `TIME`, `PARKING_TIME`, `FLAT`.
    pub dimension: String,
    /// `elements[i].price_components[j]` of the tariff.
    pub component: String,
    pub restrictions: String,
    /// Used in the period, and billed (after step_size): kWh, s or 1.
    pub quantity: Decimal,
    pub billed_quantity: Decimal,
    /// `kWh`, `s`, `session`.
    pub quantity_unit: String,
    /// Excl. VAT, per `price_unit` (`kWh`, `h`, `session`).
    pub unit_price: Decimal,
    pub price_unit: String,
    /// Percent; null when no VAT applies.
    pub vat_rate: Option<Decimal>,
    /// Exact (not rounded).
    pub net: Decimal,
    pub gross: Decimal,
    /// How the amount was computed, for people.
    pub computation: String,
}

/// A step_size that changed a billed quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptStep {
    pub dimension: String,
    pub component: String,
    /// Wh or s.
    pub step_size: u32,
    pub priced: Decimal,
    pub billed: Decimal,
    pub added: Decimal,
    /// `Wh` or `s`.
    pub unit: String,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptVat {
    pub rate: Option<Decimal>,
    /// Exact.
    pub net: Decimal,
    pub vat: Decimal,
    pub gross: Decimal,
    /// Rounded on their own by the rounding policy.
    pub net_rounded: Decimal,
    pub vat_rounded: Decimal,
    pub gross_rounded: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptTotals {
    pub currency: String,
    /// Exact sums of the lines.
    pub components_excl_vat: Decimal,
    pub components_incl_vat: Decimal,
    /// `min_price` / `max_price` when one applied.
    pub adjustment: Option<ReceiptAdjustment>,
    /// Rounded once, from the exact sums.
    pub total_excl_vat: Decimal,
    pub total_vat: Decimal,
    pub total_incl_vat: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAdjustment {
    pub reason: String,
    pub excl_vat: Decimal,
    pub incl_vat: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEichrecht {
    /// `verified`, `failed`, `unsigned`.
    pub state: EichrechtState,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub meter_serial: Option<String>,
    pub begin_wh: Option<i64>,
    pub end_wh: Option<i64>,
    pub begin_meter_time: Option<DateTime<Utc>>,
    pub end_meter_time: Option<DateTime<Utc>>,
    pub energy_wh: Option<i64>,
    /// The signed records, verbatim, with the keys they were verified with.
    pub records: Vec<ReceiptRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRecord {
    /// The session id (an integer, as the Transparenzsoftware wants).
    pub transaction_id: String,
    pub context: String,
    pub ocmf: String,
    pub public_key: Option<String>,
    pub key_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricingInput {
    /// The OCPI tariff, as stored (text: its numbers stay exactly as written).
    pub tariff: String,
    /// The session document (`tariff price --session` format).
    pub session: Value,
}

/// Prices a bill's stored inputs again (deterministic: the same result as at billing time).
pub fn reprice(bill: &Bill) -> Option<Result<(tariff::Tariff, Priced), String>> {
    let (text, doc) = (bill.tariff_text.as_ref()?, bill.pricing_session.as_ref()?);
    bill.price.as_ref()?;
    Some((|| {
        let t = tariff::parse_tariff(text).map_err(|e| format!("tariff: {e}"))?;
        let s = tariff::parse_session(&doc.to_string()).map_err(|e| format!("session: {e}"))?;
        let p = tariff::price(&t, &s).map_err(|e| e.to_string())?;
        Ok((t, p))
    })())
}

fn tz(name: &str) -> chrono_tz::Tz {
    name.parse().unwrap_or(chrono_tz::UTC)
}

fn local(zone: chrono_tz::Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// Up to 6 decimals; a longer exact value is cut and marked with `…`.
fn money(d: Decimal) -> String {
    if d.scale() <= 6 {
        d.normalize().to_string()
    } else {
        format!("{}…", d.round_dp_with_strategy(6, RoundingStrategy::ToZero).normalize())
    }
}

fn kwh(wh: Decimal) -> Decimal {
    (wh / Decimal::from(1000)).normalize()
}

fn secs(s: Decimal) -> String {
    let ms = (s * Decimal::from(1000)).trunc();
    tariff::hms_ms(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn computation(d: Dimension, billed: Decimal, used: Decimal, price: Decimal, cur: &str, net: Decimal) -> String {
    let step = if billed != used {
        match d {
            Dimension::Energy => format!(" (used {} kWh, rounded up by step_size)", kwh(used)),
            _ => format!(" (used {}, rounded up by step_size)", secs(used)),
        }
    } else {
        String::new()
    };
    match d {
        Dimension::Energy => format!(
            "{} kWh × {} {cur}/kWh = {} {cur}{step}",
            kwh(billed),
            price.normalize(),
            money(net)
        ),
        Dimension::Time | Dimension::ParkingTime => format!(
            "{} ({} s) × {} {cur}/h ÷ 3600 s/h = {} {cur}{step}",
            secs(billed),
            billed.normalize(),
            price.normalize(),
            money(net)
        ),
        Dimension::Flat => format!("1 × {} {cur} = {} {cur}", price.normalize(), money(net)),
    }
}

/// What a receipt is built from.
pub struct ReceiptInput<'a> {
    pub session: &'a Session,
    pub charger: Option<&'a Charger>,
    pub site: &'a str,
    pub bill: &'a Bill,
}

fn records(session: u64, b: &Bill) -> Vec<ReceiptRecord> {
    let mut out = Vec::new();
    let same = matches!((&b.eichrecht.begin, &b.eichrecht.end), (Some(x), Some(y)) if x.ocmf == y.ocmf);
    for (ctx, r) in [
        ("Transaction.Begin", &b.eichrecht.begin),
        ("Transaction.End", &b.eichrecht.end),
    ] {
        if let Some(r) = r {
            out.push(ReceiptRecord {
                transaction_id: session.to_string(),
                context: ctx.into(),
                ocmf: r.ocmf.clone(),
                public_key: r.public_key.clone(),
                key_source: r.key_source.clone(),
            });
        }
        if same {
            break;
        }
    }
    out
}

/// The receipt of a completed session.
pub fn receipt(i: &ReceiptInput) -> Result<Receipt, ReceiptError> {
    let (s, b) = (i.session, i.bill);
    let stopped = s.stopped_at.ok_or(ReceiptError::InProgress(s.id))?;
    let zone = tz(&b.timezone);
    let e = &b.eichrecht;
    let mut r = Receipt {
        format: RECEIPT_FORMAT.into(),
        session: ReceiptSession {
            id: s.id,
            transaction_id: match &s.tx_ref {
                ChargerTxRef::V16 { .. } => s.id.to_string(),
                ChargerTxRef::V201 { transaction_id } => transaction_id.clone(),
            },
            evse: s.evse,
            connector: s.connector,
            token: s.token.clone(),
            started_at: s.started_at,
            stopped_at: stopped,
            started_local: local(zone, s.started_at),
            stopped_local: local(zone, stopped),
            duration: tariff::hms_ms((stopped - s.started_at).num_milliseconds()),
        },
        charger: ReceiptCharger {
            id: s.charger.clone(),
            vendor: i.charger.and_then(|c| c.vendor.clone()),
            model: i.charger.and_then(|c| c.model.clone()),
            serial: i.charger.and_then(|c| c.serial.clone()),
        },
        site: ReceiptSite {
            name: i.site.into(),
            timezone: b.timezone.clone(),
        },
        energy_wh: match e.state {
            EichrechtState::Verified => e.energy_wh,
            EichrechtState::Failed => None,
            EichrechtState::Unsigned => Some(s.energy_wh()),
        },
        energy_source: match e.state {
            EichrechtState::Verified => Some(EnergySource::Signed),
            EichrechtState::Failed => None,
            EichrechtState::Unsigned => Some(EnergySource::MeterValues),
        },
        tariff: None,
        billed: b.price.is_some(),
        unpriced_reason: b.unpriced_reason.clone(),
        lines: vec![],
        steps: vec![],
        vat: vec![],
        totals: None,
        rounding: ROUNDING.statement.into(),
        eichrecht: ReceiptEichrecht {
            state: e.state,
            problems: e.problems.clone(),
            notes: e.notes.clone(),
            meter_serial: e.meter_serial.clone(),
            begin_wh: e.begin.as_ref().and_then(|x| x.register_wh),
            end_wh: e.end.as_ref().and_then(|x| x.register_wh),
            begin_meter_time: e.begin.as_ref().and_then(|x| x.meter_time),
            end_meter_time: e.end.as_ref().and_then(|x| x.meter_time),
            energy_wh: e.energy_wh,
            records: records(s.id, b),
        },
        pricing_input: None,
    };
    let Some(price) = &b.price else {
        return Ok(r);
    };
    r.energy_wh = Some(price.energy_wh);
    let (t, p) = match reprice(b) {
        Some(Ok(x)) => x,
        Some(Err(why)) => return Err(ReceiptError::Unusable { session: s.id, why }),
        None => {
            return Err(ReceiptError::Unusable {
                session: s.id,
                why: "the bill keeps no pricing input".into(),
            });
        }
    };
    r.tariff = Some(ReceiptTariff {
        id: t.id.clone(),
        currency: t.currency.clone(),
        ocpi_version: t.version.to_string(),
        assigned_to: price.scope.as_ref().map(ToString::to_string),
        assignment: price.assignment,
    });
    let cur = p.currency.clone();
    for (n, period) in p.periods.iter().enumerate() {
        for l in &period.lines {
            let (q, bq, unit) = match l.dimension {
                Dimension::Energy => (kwh(l.volume), kwh(l.billed), "kWh"),
                Dimension::Flat => (l.volume, l.billed, "session"),
                _ => (l.volume.normalize(), l.billed.normalize(), "s"),
            };
            let (net, gross) = (l.net.to_decimal(), l.gross.to_decimal());
            let mut how = computation(l.dimension, l.billed, l.volume, l.price, &cur, net);
            match l.vat {
                Some(rate) => how.push_str(&format!("; + {}% VAT = {} {cur}", rate.normalize(), money(gross))),
                None => how.push_str("; no VAT"),
            }
            r.lines.push(ReceiptLine {
                period: n,
                from_local: local(zone, period.start),
                to_local: local(zone, period.end),
                state: period.state.as_str().into(),
                dimension: l.dimension.ocpi().into(),
                component: format!("elements[{}].price_components[{}]", l.element, l.component),
                restrictions: l.restrictions.clone(),
                quantity: q,
                billed_quantity: bq,
                quantity_unit: unit.into(),
                unit_price: l.price.normalize(),
                price_unit: l.dimension.price_unit().into(),
                vat_rate: l.vat.map(|v| v.normalize()),
                net,
                gross,
                computation: how,
            });
        }
    }
    for d in &p.dimensions {
        if let Some(st) = &d.step {
            let unit = if d.dimension == Dimension::Energy { "Wh" } else { "s" };
            r.steps.push(ReceiptStep {
                dimension: d.dimension.ocpi().into(),
                component: format!("elements[{}].price_components[{}]", st.element, st.component),
                step_size: st.step_size,
                priced: d.priced_quantity.normalize(),
                billed: d.billed_quantity.normalize(),
                added: st.added.normalize(),
                unit: unit.into(),
                explanation: format!(
                    "{} priced {} {unit} rounded up to a multiple of step_size {} {unit} \
                     (elements[{}].price_components[{}]): {} {unit} added, billed at that component's price",
                    d.dimension.ocpi(),
                    d.priced_quantity.normalize(),
                    st.step_size,
                    st.element,
                    st.component,
                    st.added.normalize()
                ),
            });
        }
    }
    for v in &p.vat {
        r.vat.push(ReceiptVat {
            rate: v.rate.map(|x| x.normalize()),
            net: v.net.to_decimal(),
            vat: v.vat.to_decimal(),
            gross: v.gross.to_decimal(),
            net_rounded: ROUNDING.round(v.net),
            vat_rounded: ROUNDING.round(v.gross) - ROUNDING.round(v.net),
            gross_rounded: ROUNDING.round(v.gross),
        });
    }
    let tot = &p.totals;
    r.totals = Some(ReceiptTotals {
        currency: cur,
        components_excl_vat: tot.components_net.to_decimal(),
        components_incl_vat: tot.components_gross.to_decimal(),
        adjustment: tot.adjustment.as_ref().map(|a| ReceiptAdjustment {
            reason: a.reason.into(),
            excl_vat: a.net.to_decimal(),
            incl_vat: a.gross.to_decimal(),
        }),
        total_excl_vat: tot.excl_vat,
        total_vat: tot.vat,
        total_incl_vat: tot.incl_vat,
    });
    r.pricing_input = match (&b.tariff_text, &b.pricing_session) {
        (Some(t), Some(s)) => Some(PricingInput {
            tariff: t.clone(),
            session: s.clone(),
        }),
        _ => None,
    };
    Ok(r)
}

/// The receipt for people.
pub fn render_text(r: &Receipt) -> String {
    let mut o = String::new();
    let mut kv = |k: &str, v: String| o.push_str(&format!("{k:<14}{v}\n"));
    kv("Receipt", format!("charging session {}", r.session.id));
    let c = &r.charger;
    let what: Vec<&str> = [c.vendor.as_deref(), c.model.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    kv(
        "Charger",
        format!(
            "{} connector {}{}{}",
            c.id,
            r.session.evse,
            if what.is_empty() {
                String::new()
            } else {
                format!(", {}", what.join(" "))
            },
            c.serial.as_deref().map_or(String::new(), |s| format!(", serial {s}"))
        ),
    );
    kv("Site", format!("{} (times in {})", r.site.name, r.site.timezone));
    kv("Token", r.session.token.clone().unwrap_or_else(|| "-".into()));
    kv("Start", r.session.started_local.clone());
    kv("End", r.session.stopped_local.clone());
    kv("Duration", r.session.duration.clone());
    kv(
        "Energy",
        match (r.energy_wh, r.energy_source) {
            (Some(wh), Some(EnergySource::Signed)) => format!(
                "{} kWh ({wh} Wh, from the meter's signed readings)",
                kwh(Decimal::from(wh))
            ),
            (Some(wh), _) => format!(
                "{} kWh ({wh} Wh, from the charger's meter values)",
                kwh(Decimal::from(wh))
            ),
            (None, _) => "not established (see Eichrecht below)".into(),
        },
    );
    match &r.tariff {
        Some(t) => kv(
            "Tariff",
            format!(
                "{} (OCPI {}, {}){}",
                t.id,
                t.ocpi_version,
                t.currency,
                t.assigned_to.as_deref().map_or(String::new(), |a| format!(", for {a}"))
            ),
        ),
        None => kv("Tariff", "-".into()),
    }
    o.push('\n');
    if let Some(why) = &r.unpriced_reason {
        o.push_str(&format!("NOT BILLED: {why}\n\n"));
    }
    if !r.lines.is_empty() {
        o.push_str("Price lines (each period priced by the first matching tariff element per dimension)\n");
        let mut period = None;
        for l in &r.lines {
            if period != Some(l.period) {
                period = Some(l.period);
                o.push_str(&format!("  {} – {}, {}\n", l.from_local, l.to_local, l.state));
            }
            o.push_str(&format!(
                "    {:<13}{} ({}): {}\n",
                l.dimension, l.component, l.restrictions, l.computation
            ));
        }
        o.push('\n');
    }
    let steps: Vec<&ReceiptStep> = r.steps.iter().filter(|s| !s.added.is_zero()).collect();
    for s in &steps {
        o.push_str(&format!("step_size: {}\n", s.explanation));
    }
    if !steps.is_empty() {
        o.push('\n');
    }
    if let Some(t) = &r.totals {
        let cur = &t.currency;
        if !r.vat.is_empty() {
            o.push_str("VAT\n");
            for v in &r.vat {
                let rate = v.rate.map_or("no VAT".to_string(), |x| format!("{x}%"));
                o.push_str(&format!(
                    "  {rate:<8} net {} {cur}, VAT {} {cur}, gross {} {cur} (exact: {} + {} = {})\n",
                    v.net_rounded,
                    v.vat_rounded,
                    v.gross_rounded,
                    money(v.net),
                    money(v.vat),
                    money(v.gross)
                ));
            }
            o.push('\n');
        }
        if let Some(a) = &t.adjustment {
            o.push_str(&format!(
                "{} applied: {} {cur} excl. VAT, {} {cur} incl. VAT\n",
                a.reason,
                money(a.excl_vat),
                money(a.incl_vat)
            ));
        }
        o.push_str(&format!("Total excl. VAT   {:>10} {cur}\n", t.total_excl_vat));
        o.push_str(&format!("VAT               {:>10} {cur}\n", t.total_vat));
        o.push_str(&format!("Total incl. VAT   {:>10} {cur}\n\n", t.total_incl_vat));
    }
    o.push_str(&format!("Rounding: {}\n\n", r.rounding));
    let e = &r.eichrecht;
    let meter = e
        .meter_serial
        .as_deref()
        .map_or(String::new(), |m| format!(", meter serial {m}"));
    match e.state {
        EichrechtState::Verified => {
            o.push_str(&format!("Eichrecht: VERIFIED{meter}\n"));
            if let (Some(b), Some(en)) = (e.begin_wh, e.end_wh) {
                let at = |t: Option<DateTime<Utc>>| t.map_or("-".into(), |t| t.to_rfc3339());
                o.push_str(&format!(
                    "  signed begin {b} Wh at {}, end {en} Wh at {}: {} Wh\n",
                    at(e.begin_meter_time),
                    at(e.end_meter_time),
                    en - b
                ));
            }
        }
        EichrechtState::Failed => o.push_str(&format!("Eichrecht: FAILED{meter}\n")),
        EichrechtState::Unsigned => o.push_str("Eichrecht: no signed meter data (the meter does not sign)\n"),
    }
    for p in &e.problems {
        o.push_str(&format!("  problem: {p}\n"));
    }
    for n in &e.notes {
        o.push_str(&format!("  note: {n}\n"));
    }
    if !e.records.is_empty() {
        o.push_str(&format!(
            "  Check it yourself: voltyard receipt {} --format xml > receipt.xml, then open receipt.xml in the \
             S.A.F.E. Transparenzsoftware (or run voltyard verify receipt.xml)\n",
            r.session.id
        ));
    }
    o
}

/// The Transparenzsoftware input: the session's signed begin and end records
/// with their keys (one Begin and one End value).
pub fn render_xml(session: u64, bill: &Bill) -> Result<String, ReceiptError> {
    let e = &bill.eichrecht;
    let (Some(b), Some(en)) = (&e.begin, &e.end) else {
        return Err(ReceiptError::Unsigned(session));
    };
    let unusable = |why: String| ReceiptError::Unusable { session, why };
    let parse = |r: &SignedRecord| -> Result<(Record, PublicKey), ReceiptError> {
        let rec = Record::parse(&r.ocmf).map_err(|x| unusable(format!("signed record: {x}")))?;
        let key_text = r
            .public_key
            .as_deref()
            .ok_or_else(|| unusable("no public key is known for the meter".into()))?;
        let key = PublicKey::parse(key_text).map_err(|x| unusable(format!("public key: {x}")))?;
        Ok((rec, key))
    };
    let (br, bk) = parse(b)?;
    let (er, ek) = parse(en)?;
    write_xml(&[XmlTransaction {
        id: session,
        begin: &br,
        begin_key: &bk,
        end: &er,
        end_key: &ek,
    }])
    .map_err(|x| unusable(x.to_string()))
}

/// What `voltyard verify` found in a receipt JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptReport {
    #[serde(flatten)]
    pub report: VerifyReport,
    pub session: Option<u64>,
    /// Checks of the receipt's own figures against the verified records and
    /// against pricing its embedded input again.
    pub receipt_checks: Vec<String>,
    pub receipt_problems: Vec<String>,
}

impl ReceiptReport {
    pub fn ok(&self) -> bool {
        self.report.ok() && self.receipt_problems.is_empty()
    }
}

/// Whether `text` looks like a receipt JSON (an object with our `format`).
pub fn is_receipt(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && serde_json::from_str::<Value>(text).is_ok_and(|v| v["format"].as_str() == Some(RECEIPT_FORMAT))
}

/// Verifies a receipt JSON: its signed records (signatures and the session
/// check), the energy it states against the verified readings, and its
/// totals against pricing its embedded input again. `key` overrides the
/// receipt's keys.
pub fn verify_receipt(text: &str, key: Option<&str>) -> ReceiptReport {
    let failed = |why: String| ReceiptReport {
        report: VerifyReport {
            input: "receipt".into(),
            input_error: Some(why),
            ..VerifyReport::default()
        },
        session: None,
        receipt_checks: vec![],
        receipt_problems: vec![],
    };
    let r: Receipt = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return failed(format!("not a voltyard receipt: {e}")),
    };
    if r.format != RECEIPT_FORMAT {
        return failed(format!("receipt format {:?} is not {RECEIPT_FORMAT}", r.format));
    }
    let entries: Vec<Entry> = r
        .eichrecht
        .records
        .iter()
        .map(|x| Entry {
            label: match x.context.as_str() {
                "Transaction.Begin" => "begin record".into(),
                "Transaction.End" => "end record".into(),
                other => format!("{other} record"),
            },
            transaction_id: Some(x.transaction_id.clone()),
            context: Some(x.context.clone()),
            data: x.ocmf.clone(),
            format: Some("OCMF".into()),
            key: x.public_key.clone(),
        })
        .collect();
    let report = verify_entries("receipt", &entries, key);
    let mut checks = Vec::new();
    let mut problems = Vec::new();
    if entries.is_empty() {
        problems.push(format!(
            "the receipt carries no signed meter data (Eichrecht state {}): nothing can be verified",
            r.eichrecht.state.as_str()
        ));
    }
    if !entries.is_empty() && report.sessions.len() != 1 {
        problems.push(format!(
            "expected one transaction (begin and end record), found {}",
            report.sessions.len()
        ));
    }
    let verified = report
        .sessions
        .first()
        .filter(|s| s.verdict.ok())
        .and_then(|s| s.verdict.energy_wh);
    if let Some(wh) = verified {
        checks.push(format!("signed readings: {wh} Wh"));
        for (what, claimed) in [
            ("eichrecht.energy_wh", r.eichrecht.energy_wh),
            ("energy_wh", r.energy_wh),
        ] {
            match claimed {
                Some(c) if c == wh => checks.push(format!("{what} {c} Wh equals the signed energy")),
                Some(c) => problems.push(format!("{what} says {c} Wh, the signed readings {wh} Wh")),
                None => problems.push(format!("{what} is missing")),
            }
        }
    }
    if r.billed {
        match (&r.pricing_input, &r.totals) {
            (Some(input), Some(totals)) => {
                let priced = tariff::parse_tariff(&input.tariff)
                    .map_err(|e| format!("tariff: {e}"))
                    .and_then(|t| {
                        let s =
                            tariff::parse_session(&input.session.to_string()).map_err(|e| format!("session: {e}"))?;
                        let p = tariff::price(&t, &s).map_err(|e| e.to_string())?;
                        Ok((s, p))
                    });
                match priced {
                    Err(e) => problems.push(format!("the embedded pricing input cannot be priced: {e}")),
                    Ok((s, p)) => {
                        let t = &p.totals;
                        if (t.excl_vat, t.vat, t.incl_vat)
                            == (totals.total_excl_vat, totals.total_vat, totals.total_incl_vat)
                        {
                            checks.push(format!(
                                "totals {} / {} / {} {} reproduced from the embedded tariff and session",
                                t.excl_vat, t.vat, t.incl_vat, p.currency
                            ));
                        } else {
                            problems.push(format!(
                                "totals do not match: the receipt says {} / {} / {}, pricing its input gives {} / {} / {}",
                                totals.total_excl_vat,
                                totals.total_vat,
                                totals.total_incl_vat,
                                t.excl_vat,
                                t.vat,
                                t.incl_vat
                            ));
                        }
                        let priced_wh = s
                            .meter_readings
                            .last()
                            .zip(s.meter_readings.first())
                            .map(|(l, f)| l.wh - f.wh);
                        if r.energy_source == Some(EnergySource::Signed)
                            && let Some(wh) = verified
                            && priced_wh != Some(Decimal::from(wh))
                        {
                            problems.push(format!(
                                "the priced session has {} Wh, the signed readings {wh} Wh",
                                priced_wh.unwrap_or_default()
                            ));
                        }
                    }
                }
            }
            _ => problems.push("billed, but the pricing input or totals are missing".into()),
        }
    }
    ReceiptReport {
        report,
        session: Some(r.session.id),
        receipt_checks: checks,
        receipt_problems: problems,
    }
}
