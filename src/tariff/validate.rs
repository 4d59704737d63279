//! Rules that involve more than one field of a tariff.

use super::json::Path;
use super::model::{Dimension, Tariff};
use super::reader::Reader;
use rust_decimal::Decimal;

pub(crate) fn tariff(r: &mut Reader, t: &Tariff) {
    let root = Path::root();
    if let (Some(min), Some(max)) = (t.min_price, t.max_price) {
        if min.excl_vat > max.excl_vat {
            r.fail(&root.key("max_price").key("excl_vat"), "must be ≥ min_price.excl_vat");
        }
        if let (Some(a), Some(b)) = (min.incl_vat, max.incl_vat)
            && a > b
        {
            r.fail(&root.key("max_price").key("incl_vat"), "must be ≥ min_price.incl_vat");
        }
    }
    if let (Some(s), Some(e)) = (t.start_date_time, t.end_date_time)
        && e <= s
    {
        r.fail(&root.key("end_date_time"), "must be after start_date_time");
    }
    for (i, el) in t.elements.iter().enumerate() {
        let ep = root.key("elements").index(i);
        let rp = ep.key("restrictions");
        let rs = &el.restrictions;
        let mut seen: Vec<(Dimension, usize)> = Vec::new();
        for (j, c) in el.price_components.iter().enumerate() {
            let cp = ep.key("price_components").index(j);
            if let Some((_, first)) = seen.iter().find(|(d, _)| *d == c.dimension) {
                r.fail(
                    &cp.key("type"),
                    format!(
                        "the element already has a {} component (price_components[{first}]); only one per dimension can apply",
                        c.dimension
                    ),
                );
            } else {
                seen.push((c.dimension, j));
            }
            if rs.reservation.is_some() && !matches!(c.dimension, Dimension::Flat | Dimension::Time) {
                r.fail(
                    &cp.key("type"),
                    "an element restricted to a reservation may only have FLAT and TIME components",
                );
            }
        }
        if let (Some(s), Some(e)) = (rs.start_time, rs.end_time)
            && s == e
        {
            r.fail(
                &rp.key("end_time"),
                "must differ from start_time (the window would be empty)",
            );
        }
        if let (Some(s), Some(e)) = (rs.start_date, rs.end_date)
            && e <= s
        {
            r.fail(&rp.key("end_date"), "must be after start_date (end_date is exclusive)");
        }
        min_below_max(r, &rp, "kwh", rs.min_kwh, rs.max_kwh);
        min_below_max(r, &rp, "current", rs.min_current, rs.max_current);
        min_below_max(r, &rp, "power", rs.min_power, rs.max_power);
        min_below_max(
            r,
            &rp,
            "duration",
            rs.min_duration.map(Decimal::from),
            rs.max_duration.map(Decimal::from),
        );
    }
}

/// `min_x` is inclusive and `max_x` exclusive, so `min_x ≥ max_x` never matches.
fn min_below_max(r: &mut Reader, p: &Path, what: &str, min: Option<Decimal>, max: Option<Decimal>) {
    if let (Some(a), Some(b)) = (min, max)
        && b <= a
    {
        r.fail(
            &p.key(&format!("max_{what}")),
            format!("must be > min_{what} ({a}): min is inclusive and max exclusive, so the element would never apply"),
        );
    }
}
