//! The offline description of a charging session: meter readings with the
//! charging state, in the site's time zone.

use super::error::InputError;
use super::json::{self, Node, Path};
use super::reader::{Reader, optional};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Serialize;

/// What the EV and the EVSE were doing from a reading until the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeState {
    /// Energy is flowing: TIME.
    Charging,
    /// The EVSE (or load management) paused delivery while the EV still
    /// requests power: TIME (OCPI 2.2.1 erratum of 2026).
    SuspendedEvse,
    /// The EV does not request power (full, or it stopped): PARKING_TIME.
    SuspendedEv,
    /// The session is over; only as the last reading.
    SessionEnd,
}

impl ChargeState {
    fn parse(s: &str) -> Option<ChargeState> {
        Some(match s {
            "charging" => ChargeState::Charging,
            "suspended_evse" => ChargeState::SuspendedEvse,
            "suspended_ev" => ChargeState::SuspendedEv,
            "session_end" => ChargeState::SessionEnd,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChargeState::Charging => "charging",
            ChargeState::SuspendedEvse => "suspended_evse",
            ChargeState::SuspendedEv => "suspended_ev",
            ChargeState::SessionEnd => "session_end",
        }
    }

    /// Whether this time is TIME (else PARKING_TIME).
    pub fn is_charging_time(self) -> bool {
        matches!(self, ChargeState::Charging | ChargeState::SuspendedEvse)
    }
}

/// One meter reading; its state and power hold until the next reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub t: DateTime<Utc>,
    /// The cumulative energy register, Wh (may have decimals).
    pub wh: Decimal,
    pub state: ChargeState,
    /// The lowest and highest power (kW) from this reading to the next, if known.
    pub min_kw: Option<Decimal>,
    pub max_kw: Option<Decimal>,
    /// The lowest and highest current (A, sum over phases), if known.
    pub min_a: Option<Decimal>,
    pub max_a: Option<Decimal>,
}

/// A charging session to price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The site's time zone: time-of-day, date and weekday restrictions are local to it.
    pub timezone: Tz,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Sorted by time; the first at `start`.
    pub meter_readings: Vec<Reading>,
}

const TOP: &[&str] = &["timezone", "start", "end", "meter_readings"];
const READING: &[&str] = &["t", "wh", "state", "min_kw", "max_kw", "min_a", "max_a"];
/// Sessions longer than this are refused (one year).
const MAX_SESSION_MS: i64 = 366 * 86_400_000;
/// Register values above this are refused (10⁹ Wh = 1 GWh).
const MAX_WH: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// Reads and checks a session document (see docs/tariffs.md for the format).
pub fn parse_session(text: &str) -> Result<Session, InputError> {
    let node = json::parse(text)?;
    let mut r = Reader::default();
    let s = read(&mut r, &node);
    match s {
        Some(s) if r.errors.is_empty() => Ok(s),
        _ => {
            if r.errors.is_empty() {
                r.fail(&Path::root(), "is not a valid session");
            }
            Err(InputError::Invalid(r.errors))
        }
    }
}

fn read(r: &mut Reader, node: &Node) -> Option<Session> {
    let root = Path::root();
    r.object(node, &root, Some(TOP))?;
    let timezone = r.required(node, &root, "timezone").and_then(|n| {
        let p = root.key("timezone");
        let s = r.string(n, &p)?;
        let tz = s.parse::<Tz>().ok();
        if tz.is_none() {
            r.fail(
                &p,
                format!("must be an IANA time zone such as Europe/Berlin, not \"{s}\""),
            );
        }
        tz
    });
    let start = r
        .required(node, &root, "start")
        .and_then(|n| r.date_time(n, &root.key("start")));
    let end = r
        .required(node, &root, "end")
        .and_then(|n| r.date_time(n, &root.key("end")));
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            r.fail(&root.key("end"), "must not be before start");
        } else if (e - s).num_milliseconds() > MAX_SESSION_MS {
            r.fail(&root.key("end"), "the session must not be longer than 366 days");
        }
    }
    let mut readings = Vec::new();
    if let Some(list) = r.required(node, &root, "meter_readings") {
        let lp = root.key("meter_readings");
        if let Some(items) = r.array(list, &lp) {
            if items.is_empty() {
                r.fail(&lp, "must have at least one reading (at start)");
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(rd) = reading(r, item, &lp.index(i)) {
                    readings.push((i, rd));
                }
            }
        }
    }
    let (timezone, start, end) = (timezone?, start?, end?);
    check_readings(r, &readings, start, end);
    Some(Session {
        timezone,
        start,
        end,
        meter_readings: readings.into_iter().map(|(_, rd)| rd).collect(),
    })
}

fn reading(r: &mut Reader, n: &Node, p: &Path) -> Option<Reading> {
    r.object(n, p, Some(READING))?;
    let t = r.required(n, p, "t").and_then(|v| r.date_time(v, &p.key("t")));
    let wh = r.required(n, p, "wh").and_then(|v| r.non_negative(v, &p.key("wh")));
    if let Some(w) = wh
        && w > MAX_WH
    {
        r.fail(&p.key("wh"), format!("must be at most {MAX_WH} Wh"));
    }
    let state = r.required(n, p, "state").and_then(|v| {
        let sp = p.key("state");
        let s = r.string(v, &sp)?;
        let st = ChargeState::parse(&s);
        if st.is_none() {
            r.fail(
                &sp,
                format!("must be charging, suspended_evse, suspended_ev or session_end, not \"{s}\""),
            );
        }
        st
    });
    let mut opt = |k: &str| optional(n, k).and_then(|v| r.non_negative(v, &p.key(k)));
    let (min_kw, max_kw, min_a, max_a) = (opt("min_kw"), opt("max_kw"), opt("min_a"), opt("max_a"));
    if let (Some(a), Some(b)) = (min_kw, max_kw)
        && b < a
    {
        r.fail(&p.key("max_kw"), "must be ≥ min_kw");
    }
    if let (Some(a), Some(b)) = (min_a, max_a)
        && b < a
    {
        r.fail(&p.key("max_a"), "must be ≥ min_a");
    }
    Some(Reading {
        t: t?,
        wh: wh?,
        state: state?,
        min_kw,
        max_kw,
        min_a,
        max_a,
    })
}

fn check_readings(r: &mut Reader, readings: &[(usize, Reading)], start: DateTime<Utc>, end: DateTime<Utc>) {
    let lp = Path::root().key("meter_readings");
    if let Some((i, first)) = readings.first()
        && first.t != start
    {
        r.fail(&lp.index(*i).key("t"), "the first reading must be at start");
    }
    for w in readings.windows(2) {
        let ((_, a), (j, b)) = (&w[0], &w[1]);
        if b.t <= a.t {
            r.fail(&lp.index(*j).key("t"), "must be later than the previous reading");
        }
        if b.wh < a.wh {
            r.fail(&lp.index(*j).key("wh"), "the register must not go backwards");
        }
        if a.state == ChargeState::SessionEnd {
            r.fail(&lp.index(*j), "no reading may follow a session_end reading");
        }
    }
    for (i, rd) in readings {
        if rd.t > end {
            r.fail(&lp.index(*i).key("t"), "must not be after end");
        }
        if rd.state == ChargeState::SessionEnd && rd.t != end {
            r.fail(&lp.index(*i).key("t"), "a session_end reading must be at end");
        }
    }
}
