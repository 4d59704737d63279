//! `voltyard tariff price TARIFF.json --session SESSION.json [--json]`: price
//! a session offline with the tariff engine and show how every cent was
//! computed. No server involved.

use crate::tariff::{self, Amount, Dimension, Line, Priced};
use anyhow::Context as _;
use comfy_table::{CellAlignment, Table, presets::UTF8_BORDERS_ONLY};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Parses both documents (tariff: OCPI 2.2.1 or 2.1.1, told by its shape)
/// and prices the session.
pub fn price_offline(tariff_json: &str, session_json: &str) -> anyhow::Result<Priced> {
    let tariff = tariff::parse_tariff(tariff_json).context("tariff")?;
    let session = tariff::parse_session(session_json).context("session")?;
    Ok(tariff::price(&tariff, &session)?)
}

/// The priced session as JSON: the full breakdown plus the OCPI 2.2.1 CDR
/// charging periods. Money and quantities are decimal strings (exact).
pub fn render_json(p: &Priced) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert(
            "cdr_charging_periods".into(),
            serde_json::to_value(p.cdr_charging_periods()).unwrap_or(Value::Null),
        );
    }
    v
}

/// Up to 6 decimals; a longer exact value is cut and marked with `…`.
fn money(a: Amount) -> String {
    let d = a.to_decimal();
    if d.scale() <= 6 {
        d.to_string()
    } else {
        format!("{}…", d.round_dp_with_strategy(6, RoundingStrategy::ToZero).normalize())
    }
}

fn kwh(wh: Decimal) -> String {
    format!("{} kWh", (wh / Decimal::from(1000)).normalize())
}

fn duration(s: Decimal) -> String {
    let ms = (s * Decimal::from(1000)).trunc();
    tariff::hms_ms(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn quantity(d: Dimension, q: Decimal) -> String {
    match d {
        Dimension::Energy => kwh(q),
        Dimension::Time | Dimension::ParkingTime => duration(q),
        Dimension::Flat => q.normalize().to_string(),
    }
}

fn vat(rate: Option<Decimal>) -> String {
    rate.map_or_else(|| "no VAT".to_string(), |r| format!("{}%", r.normalize()))
}

fn priced_by(l: &Line) -> String {
    format!(
        "elements[{}].price_components[{}] {} {}/{} ({})",
        l.element,
        l.component,
        l.dimension,
        l.price.normalize(),
        l.dimension.price_unit(),
        l.restrictions
    )
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.iter().copied());
    t
}

fn right(t: &mut Table, cols: &[usize]) {
    for &c in cols {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// The receipt for people: periods, dimensions, VAT and totals.
pub fn render_text(p: &Priced) -> String {
    let tz: chrono_tz::Tz = p.timezone.parse().unwrap_or(chrono_tz::UTC);
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S%.f %Z").to_string();
    let mut out = String::new();
    out.push_str(&format!(
        "Tariff {} (OCPI {}), {}; times in {}\nSession {} – {} ({})\n\n",
        p.tariff_id,
        p.tariff_version,
        p.currency,
        p.timezone,
        local(p.start),
        local(p.end),
        tariff::hms_ms((p.end - p.start).num_milliseconds()),
    ));

    let mut t = table(&[
        "FROM",
        "STATE",
        "ENERGY",
        "TIME",
        "PRICED BY",
        "BILLED",
        "NET",
        "VAT",
        "GROSS",
    ]);
    for period in &p.periods {
        let head = [
            local(period.start),
            period.state.as_str().to_string(),
            kwh(period.energy_wh),
            duration(period.duration_s),
        ];
        if period.lines.is_empty() {
            let free: Vec<&str> = period.unpriced.iter().map(|d| d.ocpi()).collect();
            let mut row: Vec<String> = head.to_vec();
            row.push(format!("free ({})", free.join(", ")));
            row.extend(["-", "0", "-", "0"].map(String::from));
            t.add_row(row);
            continue;
        }
        for (i, l) in period.lines.iter().enumerate() {
            let mut row: Vec<String> = if i == 0 { head.to_vec() } else { vec![String::new(); 4] };
            row.push(priced_by(l));
            let billed = if l.billed != l.volume {
                format!(
                    "{} (used {})",
                    quantity(l.dimension, l.billed),
                    quantity(l.dimension, l.volume)
                )
            } else {
                quantity(l.dimension, l.billed)
            };
            row.push(billed);
            row.push(money(l.net));
            row.push(vat(l.vat));
            row.push(money(l.gross));
            t.add_row(row);
        }
        if !period.unpriced.is_empty() && !period.lines.is_empty() {
            let free: Vec<&str> = period.unpriced.iter().map(|d| d.ocpi()).collect();
            let mut row = vec![String::new(); 4];
            row.push(format!("free ({})", free.join(", ")));
            t.add_row(row);
        }
    }
    right(&mut t, &[2, 3, 5, 6, 8]);
    out.push_str(&format!(
        "Periods (each priced by the first matching element per dimension)\n{t}\n\n"
    ));

    let mut t = table(&["DIMENSION", "USED", "PRICED", "BILLED", "STEP", "NET", "GROSS"]);
    for dc in &p.dimensions {
        let step = dc.step.as_ref().map_or_else(
            || "-".to_string(),
            |s| {
                format!(
                    "{} of elements[{}].price_components[{}], +{}",
                    quantity(dc.dimension, Decimal::from(s.step_size)),
                    s.element,
                    s.component,
                    quantity(dc.dimension, s.added)
                )
            },
        );
        t.add_row(vec![
            dc.dimension.ocpi().to_string(),
            quantity(dc.dimension, dc.quantity),
            quantity(dc.dimension, dc.priced_quantity),
            quantity(dc.dimension, dc.billed_quantity),
            step,
            money(dc.net),
            money(dc.gross),
        ]);
    }
    right(&mut t, &[1, 2, 3, 5, 6]);
    out.push_str(&format!("Dimensions\n{t}\n\n"));

    let mut t = table(&["VAT RATE", "NET", "VAT", "GROSS"]);
    for v in &p.vat {
        t.add_row(vec![vat(v.rate), money(v.net), money(v.vat), money(v.gross)]);
    }
    right(&mut t, &[1, 2, 3]);
    out.push_str(&format!("VAT\n{t}\n\n"));

    let tot = &p.totals;
    let mut t = table(&["TOTAL", &p.currency]);
    t.add_row(vec![
        "components, exact, excl. VAT".to_string(),
        money(tot.components_net),
    ]);
    t.add_row(vec![
        "components, exact, incl. VAT".to_string(),
        money(tot.components_gross),
    ]);
    if let Some(a) = &tot.adjustment {
        t.add_row(vec![format!("{} adjustment excl. VAT", a.reason), money(a.net)]);
        t.add_row(vec![format!("{} adjustment incl. VAT", a.reason), money(a.gross)]);
    }
    t.add_row(vec!["total excl. VAT".to_string(), tot.excl_vat.to_string()]);
    t.add_row(vec!["VAT".to_string(), tot.vat.to_string()]);
    t.add_row(vec!["total incl. VAT".to_string(), tot.incl_vat.to_string()]);
    right(&mut t, &[1]);
    out.push_str(&format!("{t}\nRounding: {}\n", p.rounding.statement));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARIFF: &str = r#"{"country_code":"DE","party_id":"VYD","id":"22","currency":"EUR","elements":[
        {"price_components":[{"type":"TIME","price":1.20,"step_size":1800},{"type":"PARKING_TIME","price":1.00,"step_size":900}],
         "restrictions":{"start_time":"00:00","end_time":"17:00"}},
        {"price_components":[{"type":"TIME","price":2.40,"step_size":900},{"type":"PARKING_TIME","price":1.00,"step_size":900}],
         "restrictions":{"start_time":"17:00","end_time":"20:00"}}],"last_updated":"2018-12-18T17:07:11Z"}"#;
    const SESSION: &str = r#"{"timezone":"UTC","start":"2026-01-05T16:55:00Z","end":"2026-01-05T17:07:00Z","meter_readings":[
        {"t":"2026-01-05T16:55:00Z","wh":0,"state":"charging"},
        {"t":"2026-01-05T17:05:00Z","wh":1500,"state":"suspended_ev"},
        {"t":"2026-01-05T17:07:00Z","wh":1500,"state":"session_end"}]}"#;

    #[test]
    fn prices_and_renders() {
        let p = price_offline(TARIFF, SESSION).unwrap();
        assert_eq!(p.totals.incl_vat, Decimal::new(55, 2));
        let text = render_text(&p);
        assert!(
            text.contains("elements[1].price_components[0] TIME 2.4/h (17:00–20:00)"),
            "{text}"
        );
        assert!(text.contains("0:15:00 (used 0:02:00)"), "{text}");
        assert!(text.contains("total incl. VAT"), "{text}");
        let v = render_json(&p);
        assert_eq!(v["totals"]["excl_vat"], "0.55");
        assert_eq!(v["cdr_charging_periods"][2]["dimensions"][0]["type"], "PARKING_TIME");
    }

    #[test]
    fn errors_say_which_document() {
        let e = price_offline("{}", SESSION).unwrap_err();
        assert!(format!("{e:#}").starts_with("tariff: id: is required"), "{e:#}");
        let e = price_offline(TARIFF, "[").unwrap_err();
        assert!(format!("{e:#}").starts_with("session: not valid JSON"), "{e:#}");
    }
}
