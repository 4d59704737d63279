//! Pricing a session with a tariff: the choice of components per period,
//! step sizes, FLAT, VAT, min/max price and the rounded totals.

use super::error::PriceError;
use super::model::{Dimension, OcpiVersion, Tariff};
use super::money::{Amount, ROUNDING, RoundingPolicy};
use super::periods::{self, Atom, Snapshot, ms_to_utc};
use super::session::{ChargeState, Session};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

const THREE_POINT_SIX: Decimal = Decimal::from_parts(36, 0, 0, false, 1);
const THOUSAND: Decimal = Decimal::from_parts(1000, 0, 0, false, 0);
const DENOM: Decimal = Decimal::from_parts(3600, 0, 0, false, 0);

/// The result of pricing a session: everything a receipt needs to show how
/// every cent was computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Priced {
    pub tariff_id: String,
    pub tariff_version: OcpiVersion,
    pub currency: String,
    pub timezone: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rounding: RoundingPolicy,
    /// One entry per dimension: FLAT, ENERGY, TIME, PARKING_TIME.
    pub dimensions: Vec<DimensionCost>,
    /// Net, VAT and gross per VAT rate (`rate: null` = no VAT applies).
    pub vat: Vec<VatLine>,
    pub totals: Totals,
    /// The session cut where the applicable price components change.
    pub periods: Vec<Period>,
}

/// One dimension over the whole session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimensionCost {
    pub dimension: Dimension,
    /// `Wh`, `s` or `session`.
    pub unit: &'static str,
    /// Everything consumed (FLAT: 1 when a flat fee applied).
    pub quantity: Decimal,
    /// The part consumed while a component of this dimension applied.
    pub priced_quantity: Decimal,
    /// `priced_quantity` after `step_size`.
    pub billed_quantity: Decimal,
    pub step: Option<StepApplied>,
    /// Exact.
    pub net: Amount,
    pub gross: Amount,
    /// Rounded on their own by the rounding policy (for display, CDR subtotals).
    pub net_rounded: Decimal,
    pub gross_rounded: Decimal,
}

/// How `step_size` changed a dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepApplied {
    /// Wh or s.
    pub step_size: u32,
    /// The component whose step was used (the last one used in the session).
    pub element: usize,
    pub component: usize,
    /// Added to the billed quantity (Wh or s), billed in the last period that used it.
    pub added: Decimal,
}

/// Net, VAT and gross of every component with one VAT rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VatLine {
    /// Percent; `None` when the components carry no VAT.
    pub rate: Option<Decimal>,
    pub net: Amount,
    pub vat: Amount,
    pub gross: Amount,
}

/// The session totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Exact sums over all components, before min/max price.
    pub components_net: Amount,
    pub components_gross: Amount,
    /// The min_price / max_price adjustment, if one applied.
    pub adjustment: Option<Adjustment>,
    /// Exact, after the adjustment.
    pub net: Amount,
    pub gross: Amount,
    /// Rounded once by the rounding policy.
    pub excl_vat: Decimal,
    pub incl_vat: Decimal,
    /// `incl_vat - excl_vat`.
    pub vat: Decimal,
}

/// A min_price / max_price adjustment of the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adjustment {
    /// `min_price` or `max_price`.
    pub reason: &'static str,
    /// Added to the net (negative for max_price).
    pub net: Amount,
    pub gross: Amount,
}

/// A stretch of the session priced by one set of components.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub state: ChargeState,
    pub energy_wh: Decimal,
    pub duration_s: Decimal,
    /// kW as restrictions saw it (min, max; the average when not given).
    pub power_kw: (Decimal, Decimal),
    pub lines: Vec<Line>,
    /// Dimensions used in this period that no component priced (free).
    pub unpriced: Vec<Dimension>,
    pub net: Amount,
    pub gross: Amount,
}

/// One component pricing one dimension in one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub dimension: Dimension,
    /// Index into `elements` and into that element's `price_components`.
    pub element: usize,
    pub component: usize,
    /// The element's restrictions, summarised.
    pub restrictions: String,
    /// Per kWh, per hour or per session, excl. VAT.
    pub price: Decimal,
    pub vat: Option<Decimal>,
    /// Wh, s, or 1 for FLAT.
    pub volume: Decimal,
    /// `volume` plus any step_size rounding.
    pub billed: Decimal,
    pub net: Amount,
    pub gross: Amount,
}

/// The component chosen for a dimension: (element, component).
type Choice = Option<(usize, usize)>;

#[derive(Debug, Clone)]
struct Chosen {
    atom: Atom,
    energy: Choice,
    time: Choice,
    parking: Choice,
    flat: Choice,
}

/// Prices a session. Pure: the same input always gives the same output.
pub fn price(tariff: &Tariff, session: &Session) -> Result<Priced, PriceError> {
    check_active(tariff, session)?;
    let atoms = periods::split(tariff, session);
    let mut chosen: Vec<Chosen> = Vec::with_capacity(atoms.len());
    let mut flat_taken = false;
    for atom in atoms {
        let snap = Snapshot::at(&atom, session);
        let pick = |d: Dimension| -> Choice {
            tariff.elements.iter().enumerate().find_map(|(i, el)| {
                let j = el.price_components.iter().position(|c| c.dimension == d)?;
                periods::matches(&el.restrictions, &snap).then_some((i, j))
            })
        };
        let flat = if flat_taken { None } else { pick(Dimension::Flat) };
        flat_taken |= flat.is_some();
        chosen.push(Chosen {
            energy: pick(Dimension::Energy),
            time: if atom.state.is_charging_time() {
                pick(Dimension::Time)
            } else {
                None
            },
            parking: if atom.state.is_charging_time() {
                None
            } else {
                pick(Dimension::ParkingTime)
            },
            flat,
            atom,
        });
    }
    let merged = merge(chosen);
    let mut periods: Vec<Period> = merged.iter().map(|c| period(tariff, c)).collect();
    let dimensions = apply_steps_and_sum(tariff, &merged, &mut periods);
    let vat = vat_lines(&periods);
    let totals = totals(tariff, &periods);
    Ok(Priced {
        tariff_id: tariff.id.clone(),
        tariff_version: tariff.version,
        currency: tariff.currency.clone(),
        timezone: session.timezone.name().to_string(),
        start: session.start,
        end: session.end,
        rounding: ROUNDING,
        dimensions,
        vat,
        totals,
        periods,
    })
}

fn check_active(tariff: &Tariff, s: &Session) -> Result<(), PriceError> {
    let after_start = tariff.start_date_time.is_none_or(|t| s.start >= t);
    let before_end = tariff.end_date_time.is_none_or(|t| s.start < t);
    if after_start && before_end {
        return Ok(());
    }
    let show = |t: Option<DateTime<Utc>>| t.map_or_else(|| "…".to_string(), |t| t.to_rfc3339());
    Err(PriceError::TariffNotActive {
        tariff_id: tariff.id.clone(),
        start: s.start,
        valid: format!(
            "from {} until {}",
            show(tariff.start_date_time),
            show(tariff.end_date_time)
        ),
    })
}

/// Joins neighbouring atoms priced alike (same state, same components, no FLAT starting in the later one).
fn merge(chosen: Vec<Chosen>) -> Vec<Chosen> {
    let mut out: Vec<Chosen> = Vec::new();
    for c in chosen {
        if let Some(last) = out.last_mut() {
            let same = last.atom.state == c.atom.state
                && last.atom.end_ms == c.atom.start_ms
                && last.atom.load == c.atom.load
                && last.energy == c.energy
                && last.time == c.time
                && last.parking == c.parking
                && c.flat.is_none();
            if same {
                last.atom.end_ms = c.atom.end_ms;
                last.atom.e_end = c.atom.e_end;
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn line(tariff: &Tariff, choice: (usize, usize), volume: Decimal) -> Option<Line> {
    let el = tariff.elements.get(choice.0)?;
    let c = el.price_components.get(choice.1)?;
    let mut l = Line {
        dimension: c.dimension,
        element: choice.0,
        component: choice.1,
        restrictions: el.restrictions.summary(),
        price: c.price,
        vat: c.vat,
        volume,
        billed: volume,
        net: Amount::ZERO,
        gross: Amount::ZERO,
    };
    cost(&mut l);
    Some(l)
}

/// Sets a line's net and gross from its billed volume (exact).
fn cost(l: &mut Line) {
    let n3600 = match l.dimension {
        // Wh / 1000 × price × 3600
        Dimension::Energy => l.billed * l.price * THREE_POINT_SIX,
        // s / 3600 × price × 3600
        Dimension::Time | Dimension::ParkingTime => l.billed * l.price,
        Dimension::Flat => l.billed * l.price * DENOM,
    };
    l.net = Amount::from_n3600(n3600);
    l.gross = l.net.with_vat(l.vat);
}

fn period(tariff: &Tariff, c: &Chosen) -> Period {
    let a = &c.atom;
    let energy = a.energy_wh();
    let secs = Decimal::from(a.duration_ms()) / THOUSAND;
    let mut lines = Vec::new();
    let mut unpriced = Vec::new();
    if let Some(ch) = c.flat {
        lines.extend(line(tariff, ch, Decimal::ONE));
    }
    if energy > Decimal::ZERO {
        match c.energy {
            Some(ch) => lines.extend(line(tariff, ch, energy)),
            None => unpriced.push(Dimension::Energy),
        }
    }
    if a.duration_ms() > 0 {
        let (dim, ch) = if a.state.is_charging_time() {
            (Dimension::Time, c.time)
        } else {
            (Dimension::ParkingTime, c.parking)
        };
        match ch {
            Some(ch) => lines.extend(line(tariff, ch, secs)),
            None => unpriced.push(dim),
        }
    }
    let net = lines.iter().map(|l| l.net).sum();
    let gross = lines.iter().map(|l| l.gross).sum();
    Period {
        start: ms_to_utc(a.start_ms),
        end: ms_to_utc(a.end_ms),
        state: a.state,
        energy_wh: energy,
        duration_s: secs,
        power_kw: (a.load.power_min.normalize(), a.load.power_max.normalize()),
        lines,
        unpriced,
        net,
        gross,
    }
}

fn unit(d: Dimension) -> &'static str {
    match d {
        Dimension::Energy => "Wh",
        Dimension::Time | Dimension::ParkingTime => "s",
        Dimension::Flat => "session",
    }
}

/// Applies step_size (OCPI 2.2.1 §10.4.1 `step_size` in the CDR module, as
/// corrected): once per session for ENERGY, and once for TIME and
/// PARKING_TIME together — on PARKING_TIME when any parking was priced, else
/// on TIME — to the total priced volume of that dimension, with the step of
/// the last component used; the added volume is billed in the last period
/// that used that component. Then sums each dimension.
fn apply_steps_and_sum(tariff: &Tariff, merged: &[Chosen], periods: &mut [Period]) -> Vec<DimensionCost> {
    let priced_parking = periods.iter().any(|p| {
        p.lines
            .iter()
            .any(|l| l.dimension == Dimension::ParkingTime && l.volume > Decimal::ZERO)
    });
    let mut out = Vec::new();
    for d in Dimension::ALL {
        let quantity: Decimal = match d {
            Dimension::Energy => merged.iter().map(|c| c.atom.energy_wh()).sum(),
            Dimension::Time => periods
                .iter()
                .filter(|p| p.state.is_charging_time())
                .map(|p| p.duration_s)
                .sum(),
            Dimension::ParkingTime => periods
                .iter()
                .filter(|p| !p.state.is_charging_time())
                .map(|p| p.duration_s)
                .sum(),
            Dimension::Flat => Decimal::from(
                periods
                    .iter()
                    .flat_map(|p| &p.lines)
                    .filter(|l| l.dimension == d)
                    .count(),
            ),
        };
        let priced: Decimal = periods
            .iter()
            .flat_map(|p| &p.lines)
            .filter(|l| l.dimension == d)
            .map(|l| l.volume)
            .sum();
        let stepped = match d {
            Dimension::Energy => true,
            Dimension::Time => !priced_parking,
            Dimension::ParkingTime => true,
            Dimension::Flat => false,
        };
        let mut step = None;
        if stepped
            && let Some(l) = periods
                .iter_mut()
                .rev()
                .flat_map(|p| p.lines.iter_mut())
                .find(|l| l.dimension == d && l.volume > Decimal::ZERO)
        {
            let size = tariff
                .elements
                .get(l.element)
                .and_then(|e| e.price_components.get(l.component))
                .map_or(1, |c| c.step_size.max(1));
            let s = Decimal::from(size);
            let billed_total = (priced / s).ceil() * s;
            let added = billed_total - priced;
            if added > Decimal::ZERO {
                l.billed += added;
                cost(l);
            }
            step = Some(StepApplied {
                step_size: size,
                element: l.element,
                component: l.component,
                added,
            });
        }
        for p in periods.iter_mut() {
            p.net = p.lines.iter().map(|l| l.net).sum();
            p.gross = p.lines.iter().map(|l| l.gross).sum();
        }
        let lines = periods.iter().flat_map(|p| &p.lines).filter(|l| l.dimension == d);
        let billed: Decimal = lines.clone().map(|l| l.billed).sum();
        let net: Amount = lines.clone().map(|l| l.net).sum();
        let gross: Amount = lines.map(|l| l.gross).sum();
        out.push(DimensionCost {
            dimension: d,
            unit: unit(d),
            quantity: quantity.normalize(),
            priced_quantity: priced.normalize(),
            billed_quantity: billed.normalize(),
            step,
            net,
            gross,
            net_rounded: ROUNDING.round(net),
            gross_rounded: ROUNDING.round(gross),
        });
    }
    out
}

fn vat_lines(periods: &[Period]) -> Vec<VatLine> {
    let mut out: Vec<VatLine> = Vec::new();
    for l in periods.iter().flat_map(|p| &p.lines) {
        let rate = l.vat.map(|r| r.normalize());
        match out.iter_mut().find(|v| v.rate == rate) {
            Some(v) => {
                v.net = v.net + l.net;
                v.gross = v.gross + l.gross;
            }
            None => out.push(VatLine {
                rate,
                net: l.net,
                vat: Amount::ZERO,
                gross: l.gross,
            }),
        }
    }
    for v in &mut out {
        v.vat = v.gross - v.net;
    }
    out.sort_by_key(|v| v.rate);
    out
}

/// Sums, applies min_price / max_price (OCPI 2.2.1 §11.3.1: excl. and incl.
/// VAT limits each bind their own total) and rounds once.
fn totals(tariff: &Tariff, periods: &[Period]) -> Totals {
    let components_net: Amount = periods.iter().map(|p| p.net).sum();
    let components_gross: Amount = periods.iter().map(|p| p.gross).sum();
    let (mut net, mut gross) = (components_net, components_gross);
    let mut reason = None;
    if let Some(min) = tariff.min_price {
        let (n, g) = limit(net, gross, min.excl_vat, min.incl_vat, |a, b| a < b);
        if (n, g) != (net, gross) {
            reason = Some("min_price");
        }
        (net, gross) = (n, g);
    }
    if let Some(max) = tariff.max_price {
        let (n, g) = limit(net, gross, max.excl_vat, max.incl_vat, |a, b| a > b);
        if (n, g) != (net, gross) {
            reason = Some("max_price");
        }
        (net, gross) = (n, g);
    }
    let adjustment = reason.map(|reason| Adjustment {
        reason,
        net: net - components_net,
        gross: gross - components_gross,
    });
    let excl_vat = ROUNDING.round(net);
    let incl_vat = ROUNDING.round(gross);
    Totals {
        components_net,
        components_gross,
        adjustment,
        net,
        gross,
        excl_vat,
        incl_vat,
        vat: incl_vat - excl_vat,
    }
}

/// One limit: `beyond(total, limit)` tells when the total must be replaced.
/// Without `incl_vat` the incl.-VAT total moves by the same amount as the
/// excl.-VAT total (the adjustment carries no VAT).
fn limit(
    net: Amount,
    gross: Amount,
    excl: Decimal,
    incl: Option<Decimal>,
    beyond: impl Fn(Amount, Amount) -> bool,
) -> (Amount, Amount) {
    let excl = Amount::from_decimal(excl);
    let new_net = if beyond(net, excl) { excl } else { net };
    let new_gross = match incl {
        Some(incl) => {
            let incl = Amount::from_decimal(incl);
            if beyond(gross, incl) { incl } else { gross }
        }
        None => gross + (new_net - net),
    };
    (new_net, new_gross)
}

/// `h:mm:ss` (with `.mmm` when not whole seconds).
pub fn hms_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if f == 0 {
        format!("{sign}{h}:{m:02}:{s:02}")
    } else {
        format!("{sign}{h}:{m:02}:{s:02}.{f:03}")
    }
}
