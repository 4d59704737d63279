//! Checks on a begin record and an end record beyond their signatures: one meter, one key, one
//! transaction, pages and time moving forward, the register not running backwards, no error or
//! status flags, energy units. A meter that writes begin and end into one record (KEBA, Enercharge)
//! is checked by passing that record as both.

use super::key::{Curve, PublicKey};
use super::record::{Reading, Record, TimeSync, Tx, Unit};
use super::verify::{self, Verified, VerifyError};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use std::fmt;

/// Begin or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Begin,
    End,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Begin => "begin",
            Side::End => "end",
        })
    }
}

/// One thing wrong with a session. Each makes the session fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0} record: {1}")]
    Signature(Side, VerifyError),
    #[error("{field} differs: begin {begin:?}, end {end:?}")]
    MeterMismatch {
        field: &'static str,
        begin: Option<String>,
        end: Option<String>,
    },
    #[error("begin and end are signed with different public keys")]
    KeyMismatch,
    #[error("begin and end are signed on different curves ({begin} and {end})")]
    CurveMismatch { begin: Curve, end: Curve },
    #[error("{0} record has no PG")]
    NoPagination(Side),
    #[error("{side} record's PG {pg:?} is not a transaction page (T<n>)")]
    NotTransactionPage { side: Side, pg: String },
    #[error("pagination does not increase: begin {begin}, end {end}")]
    PaginationOrder { begin: String, end: String },
    #[error("no begin reading (TX=B) in the begin record")]
    NoBeginReading,
    #[error("no end reading (TX=E, L, R, A or P) in the end record")]
    NoEndReading,
    #[error("the begin record already ends a transaction (TX={0})")]
    BeginRecordEnds(char),
    #[error("the end record begins another transaction (TX=B at {0})")]
    EndRecordBegins(String),
    #[error("an exception reading (TX=X) at {0}: time and/or energy are not usable from there")]
    ExceptionReading(String),
    #[error("{0} reading has no usable time (TM)")]
    NoTime(Side),
    #[error("end time {end} is before begin time {begin}")]
    TimeOrder { begin: String, end: String },
    #[error("{0} reading has no value (RV)")]
    NoValue(Side),
    #[error("{side} reading's unit {unit:?} is not Wh or kWh")]
    NotEnergy { side: Side, unit: String },
    #[error("begin and end read different registers: {begin:?} and {end:?}")]
    RegisterMismatch { begin: Option<String>, end: Option<String> },
    #[error("the register runs backwards: begin {begin} Wh, end {end} Wh")]
    RegisterDecreased { begin: Decimal, end: Decimal },
    #[error("{side} reading has meter status ST={st:?} (not G, OK)")]
    Status { side: Side, st: String },
    #[error("{0} reading has no meter status (ST)")]
    NoStatus(Side),
    #[error("{side} reading has error flags EF={ef:?}")]
    ErrorFlags { side: Side, ef: String },
    #[error("{side} record has identification level IL={il} (an error level)")]
    IdentificationError { side: Side, il: String },
    #[error("identification differs between begin and end ({field}: {begin:?} and {end:?})")]
    IdentificationMismatch {
        field: &'static str,
        begin: Option<String>,
        end: Option<String>,
    },
}

/// A register reading used for billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Register {
    /// Whole Wh (truncated when the meter reports finer; see [`Self::exact_wh`]).
    pub wh: i64,
    /// The reading in Wh, exactly.
    pub exact_wh: Decimal,
    pub at: Option<DateTime<Utc>>,
    pub time_sync: Option<TimeSync>,
    pub ri: Option<String>,
    pub pagination: Option<String>,
}

/// The outcome of [`check_session`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionVerdict {
    #[serde(serialize_with = "display_list")]
    pub problems: Vec<Problem>,
    /// Observations that do not fail the session (unsynchronised clock, sub-Wh resolution…).
    pub notes: Vec<String>,
    pub begin: Option<Register>,
    pub end: Option<Register>,
    /// End minus begin, whole Wh, when both registers are known and the session has no problem.
    pub energy_wh: Option<i64>,
}

fn display_list<S: serde::Serializer>(v: &[Problem], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|p| p.to_string()))
}

impl SessionVerdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Check a transaction from its begin and end records; each key verifies its record's signature
/// (`None`: no key, which is a problem). Pass one record twice for a meter that signs begin and end
/// together.
pub fn check_session(
    begin: &Record,
    begin_key: Option<&PublicKey>,
    end: &Record,
    end_key: Option<&PublicKey>,
) -> SessionVerdict {
    let b = verify::verify_with(begin, begin_key);
    let e = verify::verify_with(end, end_key);
    check_session_verified(begin, begin_key, &b, end, end_key, &e)
}

/// [`check_session`] with the signatures already verified.
pub fn check_session_verified(
    begin: &Record,
    begin_key: Option<&PublicKey>,
    begin_sig: &Result<Verified, VerifyError>,
    end: &Record,
    end_key: Option<&PublicKey>,
    end_sig: &Result<Verified, VerifyError>,
) -> SessionVerdict {
    let mut c = Checker::default();
    let same = begin.text() == end.text();
    if let Err(err) = begin_sig {
        c.problems.push(Problem::Signature(Side::Begin, err.clone()));
    }
    if !same && let Err(err) = end_sig {
        c.problems.push(Problem::Signature(Side::End, err.clone()));
    }
    if !same {
        c.same_meter(begin, end);
        c.same_key(begin_key, begin_sig, end_key, end_sig);
        c.pagination(begin, end);
        c.identification(begin, end);
    }
    for (side, rec) in [(Side::Begin, begin), (Side::End, end)] {
        if let Some(il) = rec.data.il.as_deref()
            && matches!(il, "MISMATCH" | "INVALID" | "OUTDATED" | "UNKNOWN")
        {
            c.problems.push(Problem::IdentificationError { side, il: il.into() });
        }
        if same {
            break;
        }
    }
    // the billing register: the first energy reading at B, and the end reading of the same register
    let energy = |r: &&Reading| r.unit.as_ref().is_some_and(Unit::is_active_energy);
    let begins = || begin.data.readings.iter().filter(|r| r.tx == Some(Tx::Begin));
    let b = begins().find(energy).or_else(|| begins().next());
    let ends = || end.data.readings.iter().rev().filter(|r| r.tx.is_some_and(Tx::is_end));
    let e = ends().find(energy).or_else(|| ends().next());
    if b.is_none() {
        c.problems.push(Problem::NoBeginReading);
    }
    if e.is_none() {
        c.problems.push(Problem::NoEndReading);
    }
    if !same {
        if let Some(r) = begin.reading(Tx::is_end) {
            c.problems.push(Problem::BeginRecordEnds(r.tx.map_or('?', Tx::code)));
        }
        if let Some(r) = end.reading(|t| t == Tx::Begin) {
            c.problems
                .push(Problem::EndRecordBegins(r.tm.clone().unwrap_or_default()));
        }
    }
    for rec in if same { vec![begin] } else { vec![begin, end] } {
        if let Some(x) = rec.reading(|t| t == Tx::Exception) {
            c.problems
                .push(Problem::ExceptionReading(x.tm.clone().unwrap_or_default()));
        }
    }
    let begin_reg = b.and_then(|r| c.register(Side::Begin, r, begin));
    // The end reading of the same register as the begin reading, when the record has several.
    let e = match (b, e) {
        (Some(b), Some(_)) if b.ri.is_some() => end
            .data
            .readings
            .iter()
            .rev()
            .find(|r| r.tx.is_some_and(Tx::is_end) && r.ri == b.ri)
            .or(e),
        _ => e,
    };
    let end_reg = e.and_then(|r| c.register(Side::End, r, end));
    if let (Some(b), Some(e)) = (b, e) {
        if b.ri != e.ri {
            c.problems.push(Problem::RegisterMismatch {
                begin: b.ri.clone(),
                end: e.ri.clone(),
            });
        }
        match (b.time, e.time) {
            (Some(bt), Some(et)) if et.utc() < bt.utc() => c.problems.push(Problem::TimeOrder {
                begin: b.tm.clone().unwrap_or_default(),
                end: e.tm.clone().unwrap_or_default(),
            }),
            _ => {}
        }
    }
    if let (Some(b), Some(e)) = (&begin_reg, &end_reg)
        && e.exact_wh < b.exact_wh
    {
        c.problems.push(Problem::RegisterDecreased {
            begin: b.exact_wh,
            end: e.exact_wh,
        });
    }
    let energy_wh = match (&begin_reg, &end_reg) {
        (Some(b), Some(e)) if c.problems.is_empty() => Some(e.wh - b.wh),
        _ => None,
    };
    SessionVerdict {
        problems: c.problems,
        notes: c.notes,
        begin: begin_reg,
        end: end_reg,
        energy_wh,
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    notes: Vec<String>,
}

impl Checker {
    fn same_meter(&mut self, begin: &Record, end: &Record) {
        let (b, e) = (&begin.data, &end.data);
        for (field, b, e) in [("GI", &b.gi, &e.gi), ("GS", &b.gs, &e.gs), ("MS", &b.ms, &e.ms)] {
            if b != e {
                self.problems.push(Problem::MeterMismatch {
                    field,
                    begin: b.clone(),
                    end: e.clone(),
                });
            }
        }
    }

    fn same_key(
        &mut self,
        begin_key: Option<&PublicKey>,
        begin_sig: &Result<Verified, VerifyError>,
        end_key: Option<&PublicKey>,
        end_sig: &Result<Verified, VerifyError>,
    ) {
        let curve = match (begin_sig, end_sig) {
            (Ok(b), Ok(e)) if b.curve != e.curve => {
                self.problems.push(Problem::CurveMismatch {
                    begin: b.curve,
                    end: e.curve,
                });
                return;
            }
            (Ok(v), _) | (_, Ok(v)) => Some(v.curve),
            _ => None,
        };
        if let (Some(b), Some(e)) = (begin_key, end_key) {
            let same = match curve.or(b.curve()).or(e.curve()) {
                Some(c) => b.same_as(e, c),
                None => b == e,
            };
            if !same {
                self.problems.push(Problem::KeyMismatch);
            }
        }
    }

    fn pagination(&mut self, begin: &Record, end: &Record) {
        let mut pages = [None, None];
        for (i, (side, rec)) in [(Side::Begin, begin), (Side::End, end)].into_iter().enumerate() {
            match (rec.data.pg.as_deref(), rec.data.pagination()) {
                (None, _) => self.problems.push(Problem::NoPagination(side)),
                (Some(_), Some(('T', n))) => pages[i] = Some(n),
                (Some(pg), _) => self.problems.push(Problem::NotTransactionPage { side, pg: pg.into() }),
            }
        }
        if let [Some(b), Some(e)] = pages
            && e <= b
        {
            self.problems.push(Problem::PaginationOrder {
                begin: format!("T{b}"),
                end: format!("T{e}"),
            });
        }
    }

    fn identification(&mut self, begin: &Record, end: &Record) {
        let (b, e) = (&begin.data, &end.data);
        let flags = |p: &super::record::Payload| (!p.if_.is_empty()).then(|| p.if_.join(","));
        let status = |p: &super::record::Payload| p.is.map(|v| v.to_string());
        let pairs = [
            ("ID", b.id.clone(), e.id.clone()),
            ("IT", b.it.clone(), e.it.clone()),
            ("IS", status(b), status(e)),
            ("IF", flags(b), flags(e)),
        ];
        for (field, bv, ev) in pairs {
            if bv != ev {
                self.problems.push(Problem::IdentificationMismatch {
                    field,
                    begin: bv,
                    end: ev,
                });
            }
        }
    }

    /// The billing register of one reading, with its own checks.
    fn register(&mut self, side: Side, r: &Reading, rec: &Record) -> Option<Register> {
        match r.st.as_deref() {
            Some("G") => {}
            Some(st) => self.problems.push(Problem::Status { side, st: st.into() }),
            None => self.problems.push(Problem::NoStatus(side)),
        }
        if let Some(ef) = r.ef.as_deref()
            && !ef.trim().is_empty()
        {
            self.problems.push(Problem::ErrorFlags { side, ef: ef.into() });
        }
        match r.time {
            None => self.problems.push(Problem::NoTime(side)),
            Some(t) => match t.sync {
                Some(TimeSync::Synchronised) | Some(TimeSync::Relative) => {}
                Some(TimeSync::Informative) => self.notes.push(format!("{side} time is informative (I)")),
                Some(TimeSync::Unknown) => self.notes.push(format!("{side} time is not synchronised (U)")),
                None => self.notes.push(format!("{side} time has no status letter")),
            },
        }
        let Some(value) = r.value else {
            self.problems.push(Problem::NoValue(side));
            return None;
        };
        let unit = r.unit.clone().unwrap_or(Unit::Other(String::new()));
        let Some(exact_wh) = unit.to_wh(value) else {
            self.problems.push(Problem::NotEnergy {
                side,
                unit: unit.to_string(),
            });
            return None;
        };
        let whole = exact_wh.trunc();
        if whole != exact_wh {
            self.notes.push(format!(
                "{side} register {exact_wh} Wh is finer than 1 Wh; billed as {whole} Wh"
            ));
        }
        Some(Register {
            wh: whole.to_i64()?,
            exact_wh: exact_wh.normalize(),
            at: r.time.map(|t| t.utc()),
            time_sync: r.time.and_then(|t| t.sync),
            ri: r.ri.clone(),
            pagination: rec.data.pg.clone(),
        })
    }
}
