//! Reading a tariff document (OCPI 2.2.1 or 2.1.1) into the model, with a
//! field path on every error. The field tables per version live here and in
//! `v211`; cross-field rules live in `validate`.

use super::error::InputError;
use super::json::{self, Node, Path};
use super::model::{Dimension, Element, OcpiVersion, Price, PriceComponent, Reservation, Restrictions, Tariff};
use super::reader::{Reader, optional};
use super::{v211, validate};
use chrono::Weekday;

const ELEMENT: &[&str] = &["price_components", "restrictions"];
const COMPONENT_V221: &[&str] = &["type", "price", "vat", "step_size"];
const RESTRICTIONS_V221: &[&str] = &[
    "start_time",
    "end_time",
    "start_date",
    "end_date",
    "min_kwh",
    "max_kwh",
    "min_current",
    "max_current",
    "min_power",
    "max_power",
    "min_duration",
    "max_duration",
    "day_of_week",
    "reservation",
];
const PRICE: &[&str] = &["excl_vat", "incl_vat"];
const TARIFF_TYPES: &[&str] = &[
    "AD_HOC_PAYMENT",
    "PROFILE_CHEAP",
    "PROFILE_FAST",
    "PROFILE_GREEN",
    "REGULAR",
];

/// The largest `step_size` accepted (about 136 years in seconds, 4 GWh).
const MAX_STEP: u64 = u32::MAX as u64;
/// The largest duration restriction accepted: 10 years in seconds.
const MAX_DURATION_S: u64 = 10 * 366 * 86_400;

/// The field tables of one OCPI version.
pub(crate) struct Fields {
    pub version: OcpiVersion,
    pub component: &'static [&'static str],
    pub restrictions: &'static [&'static str],
}

pub(crate) const V221: Fields = Fields {
    version: OcpiVersion::V221,
    component: COMPONENT_V221,
    restrictions: RESTRICTIONS_V221,
};

/// Reads a tariff whose version is told by its shape: a 2.2.1 tariff has the
/// required `country_code` and `party_id`; a 2.1.1 tariff has neither.
pub fn parse_tariff(text: &str) -> Result<Tariff, InputError> {
    let node = json::parse(text)?;
    let version = if node.get("country_code").is_some() || node.get("party_id").is_some() {
        OcpiVersion::V221
    } else {
        OcpiVersion::V211
    };
    read(&node, version)
}

/// Reads a tariff of the given version.
pub fn parse_tariff_version(text: &str, version: OcpiVersion) -> Result<Tariff, InputError> {
    let node = json::parse(text)?;
    read(&node, version)
}

fn read(node: &Node, version: OcpiVersion) -> Result<Tariff, InputError> {
    let fields = match version {
        OcpiVersion::V221 => &V221,
        OcpiVersion::V211 => &v211::FIELDS,
    };
    let mut r = Reader::default();
    let tariff = read_tariff(&mut r, node, fields);
    if let Some(t) = &tariff {
        validate::tariff(&mut r, t);
    }
    match tariff {
        Some(t) if r.errors.is_empty() => Ok(t),
        _ => {
            if r.errors.is_empty() {
                r.fail(&Path::root(), "is not a valid tariff");
            }
            Err(InputError::Invalid(r.errors))
        }
    }
}

fn read_tariff(r: &mut Reader, node: &Node, f: &Fields) -> Option<Tariff> {
    let root = Path::root();
    // Unknown top-level fields are informational at worst: they are ignored.
    r.object(node, &root, None)?;
    let v221 = f.version == OcpiVersion::V221;

    let country_code = if v221 {
        r.required(node, &root, "country_code")
            .and_then(|n| exact_len(r, n, &root.key("country_code"), 2))
    } else {
        None
    };
    let party_id = if v221 {
        r.required(node, &root, "party_id")
            .and_then(|n| exact_len(r, n, &root.key("party_id"), 3))
    } else {
        None
    };
    let id = r
        .required(node, &root, "id")
        .and_then(|n| r.text(n, &root.key("id"), 36));
    let currency = r.required(node, &root, "currency").and_then(|n| {
        let p = root.key("currency");
        let s = r.string(n, &p)?;
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(s)
        } else {
            r.fail(
                &p,
                format!("must be an ISO 4217 code of three upper-case letters, not \"{s}\""),
            );
            None
        }
    });
    let tariff_type = match optional(node, "type").filter(|_| v221) {
        Some(n) => {
            let p = root.key("type");
            let s = r.string(n, &p);
            match s {
                Some(s) if TARIFF_TYPES.contains(&s.as_str()) => Some(s),
                Some(s) => {
                    r.fail(&p, format!("must be one of {}, not \"{s}\"", TARIFF_TYPES.join(", ")));
                    None
                }
                None => None,
            }
        }
        None => None,
    };
    let min_price = optional(node, "min_price")
        .filter(|_| v221)
        .and_then(|n| price(r, n, &root.key("min_price")));
    let max_price = optional(node, "max_price")
        .filter(|_| v221)
        .and_then(|n| price(r, n, &root.key("max_price")));
    let start_date_time = optional(node, "start_date_time")
        .filter(|_| v221)
        .and_then(|n| r.date_time(n, &root.key("start_date_time")));
    let end_date_time = optional(node, "end_date_time")
        .filter(|_| v221)
        .and_then(|n| r.date_time(n, &root.key("end_date_time")));
    let last_updated = r
        .required(node, &root, "last_updated")
        .and_then(|n| r.date_time(n, &root.key("last_updated")));

    let mut elements = Vec::new();
    let elements_ok = match r.required(node, &root, "elements") {
        Some(n) => {
            let p = root.key("elements");
            match r.array(n, &p) {
                Some([]) => {
                    r.fail(&p, "must have at least one element");
                    false
                }
                Some(items) => {
                    let mut ok = true;
                    for (i, item) in items.iter().enumerate() {
                        match element(r, item, &p.index(i), f) {
                            Some(e) => elements.push(e),
                            None => ok = false,
                        }
                    }
                    ok
                }
                None => false,
            }
        }
        None => false,
    };

    Some(Tariff {
        version: f.version,
        country_code,
        party_id,
        id: id?,
        currency: currency?,
        tariff_type,
        min_price,
        max_price,
        elements: if elements_ok { elements } else { return None },
        start_date_time,
        end_date_time,
        last_updated: last_updated?,
    })
}

fn exact_len(r: &mut Reader, n: &Node, p: &Path, len: usize) -> Option<String> {
    let s = r.string(n, p)?;
    if s.chars().count() == len {
        Some(s)
    } else {
        r.fail(p, format!("must be exactly {len} characters"));
        None
    }
}

fn price(r: &mut Reader, n: &Node, p: &Path) -> Option<Price> {
    r.object(n, p, Some(PRICE))?;
    let excl_vat = r
        .required(n, p, "excl_vat")
        .and_then(|v| r.non_negative(v, &p.key("excl_vat")));
    let incl_vat = optional(n, "incl_vat").and_then(|v| r.non_negative(v, &p.key("incl_vat")));
    let excl_vat = excl_vat?;
    if let Some(incl) = incl_vat
        && incl < excl_vat
    {
        r.fail(&p.key("incl_vat"), format!("must be ≥ excl_vat ({excl_vat})"));
        return None;
    }
    Some(Price { excl_vat, incl_vat })
}

fn element(r: &mut Reader, n: &Node, p: &Path, f: &Fields) -> Option<Element> {
    r.object(n, p, Some(ELEMENT))?;
    let mut components = Vec::new();
    let mut ok = true;
    match r.required(n, p, "price_components") {
        Some(list) => {
            let lp = p.key("price_components");
            match r.array(list, &lp) {
                Some([]) => {
                    r.fail(&lp, "must have at least one price component");
                    ok = false;
                }
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match component(r, item, &lp.index(i), f) {
                            Some(c) => components.push(c),
                            None => ok = false,
                        }
                    }
                }
                None => ok = false,
            }
        }
        None => ok = false,
    }
    let restrictions = match optional(n, "restrictions") {
        Some(rn) => restrictions(r, rn, &p.key("restrictions"), f),
        None => Some(Restrictions::default()),
    };
    if !ok {
        return None;
    }
    Some(Element {
        price_components: components,
        restrictions: restrictions?,
    })
}

fn component(r: &mut Reader, n: &Node, p: &Path, f: &Fields) -> Option<PriceComponent> {
    r.object(n, p, Some(f.component))?;
    let dimension = r.required(n, p, "type").and_then(|t| {
        let tp = p.key("type");
        let s = r.string(t, &tp)?;
        let d = Dimension::from_ocpi(&s);
        if d.is_none() {
            r.fail(
                &tp,
                format!("must be one of ENERGY, FLAT, TIME, PARKING_TIME, not \"{s}\""),
            );
        }
        d
    });
    let price = r
        .required(n, p, "price")
        .and_then(|v| r.non_negative(v, &p.key("price")));
    let vat = match optional(n, "vat").filter(|_| f.version == OcpiVersion::V221) {
        Some(v) => {
            let vp = p.key("vat");
            match r.non_negative(v, &vp) {
                Some(d) if d > rust_decimal::Decimal::ONE_HUNDRED => {
                    r.fail(&vp, "must be a percentage between 0 and 100");
                    return None;
                }
                Some(d) => Some(d),
                None => return None,
            }
        }
        None => None,
    };
    let step = r
        .required(n, p, "step_size")
        .and_then(|v| r.integer(v, &p.key("step_size"), MAX_STEP));
    let dimension = dimension?;
    let step = step?;
    if step == 0 && dimension != Dimension::Flat {
        r.fail(&p.key("step_size"), "must be > 0");
        return None;
    }
    Some(PriceComponent {
        dimension,
        price: price?,
        vat,
        step_size: u32::try_from(step).unwrap_or(u32::MAX),
    })
}

fn restrictions(r: &mut Reader, n: &Node, p: &Path, f: &Fields) -> Option<Restrictions> {
    r.object(n, p, Some(f.restrictions))?;
    let before = r.errors.len();
    let mut out = Restrictions::default();
    let has = |k: &str| f.restrictions.contains(&k);
    macro_rules! field {
        ($key:literal, $method:ident $(, $arg:expr)?) => {
            if has($key) {
                optional(n, $key).and_then(|v| r.$method(v, &p.key($key) $(, $arg)?))
            } else {
                None
            }
        };
    }
    out.start_time = field!("start_time", time_of_day);
    out.end_time = field!("end_time", time_of_day);
    out.start_date = field!("start_date", date);
    out.end_date = field!("end_date", date);
    out.min_kwh = field!("min_kwh", non_negative);
    out.max_kwh = field!("max_kwh", non_negative);
    out.min_current = field!("min_current", non_negative);
    out.max_current = field!("max_current", non_negative);
    out.min_power = field!("min_power", non_negative);
    out.max_power = field!("max_power", non_negative);
    out.min_duration = field!("min_duration", integer, MAX_DURATION_S);
    out.max_duration = field!("max_duration", integer, MAX_DURATION_S);
    if let Some(days) = optional(n, "day_of_week") {
        let dp = p.key("day_of_week");
        if let Some(items) = r.array(days, &dp) {
            for (i, d) in items.iter().enumerate() {
                let ip = dp.index(i);
                if let Some(s) = r.string(d, &ip) {
                    match weekday(&s) {
                        Some(w) if !out.day_of_week.contains(&w) => out.day_of_week.push(w),
                        Some(_) => {}
                        None => r.fail(&ip, format!("must be MONDAY … SUNDAY, not \"{s}\"")),
                    }
                }
            }
        }
    }
    if has("reservation")
        && let Some(v) = optional(n, "reservation")
    {
        let rp = p.key("reservation");
        match r.string(v, &rp).as_deref() {
            Some("RESERVATION") => out.reservation = Some(Reservation::Reservation),
            Some("RESERVATION_EXPIRES") => out.reservation = Some(Reservation::ReservationExpires),
            Some(s) => r.fail(&rp, format!("must be RESERVATION or RESERVATION_EXPIRES, not \"{s}\"")),
            None => {}
        }
    }
    if r.errors.len() > before { None } else { Some(out) }
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "MONDAY" => Weekday::Mon,
        "TUESDAY" => Weekday::Tue,
        "WEDNESDAY" => Weekday::Wed,
        "THURSDAY" => Weekday::Thu,
        "FRIDAY" => Weekday::Fri,
        "SATURDAY" => Weekday::Sat,
        "SUNDAY" => Weekday::Sun,
        _ => return None,
    })
}
