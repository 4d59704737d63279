//! Charging profiles as a charger keeps them: install, clear, and the limit
//! in force at an instant (highest stack level wins within a purpose; the
//! station maximum caps everything). Both OCPP versions parse into one shape.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    StationMax,
    TxDefault,
    Tx,
    /// 2.0.1 ChargingStationExternalConstraints: caps like StationMax.
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Absolute,
    Relative,
    Daily,
    Weekly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Amps,
    Watts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub start_s: i64,
    /// mA or mW.
    pub limit_milli: i64,
    pub phases: Option<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: i64,
    pub stack_level: i64,
    pub purpose: Purpose,
    /// 0 = the whole charger.
    pub connector: u32,
    pub transaction: Option<String>,
    pub kind: Kind,
    pub start: Option<DateTime<Utc>>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub duration_s: Option<i64>,
    pub unit: Unit,
    pub periods: Vec<Period>,
}

/// Why a profile was refused, as the charger would say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, Refused> {
    v.get(name).ok_or_else(|| Refused(format!("{name} missing")))
}

fn int(v: &Value, name: &str) -> Result<i64, Refused> {
    field(v, name)?
        .as_i64()
        .ok_or_else(|| Refused(format!("{name} is not an integer")))
}

fn time(v: &Value, name: &str) -> Result<Option<DateTime<Utc>>, Refused> {
    match v.get(name) {
        None => Ok(None),
        Some(t) => t
            .as_str()
            .and_then(crate::ocpp::parse_time)
            .map(Some)
            .ok_or_else(|| Refused(format!("{name} is not a date-time"))),
    }
}

fn milli(v: &Value) -> Result<i64, Refused> {
    let n = v.as_number().ok_or_else(|| Refused("limit is not a number".into()))?;
    let d: Decimal = n
        .to_string()
        .parse()
        .map_err(|_| Refused("limit is not a decimal".into()))?;
    (d * Decimal::from(1000))
        .round()
        .to_i64()
        .filter(|m| *m >= 0)
        .ok_or_else(|| Refused("limit out of range".into()))
}

impl Profile {
    /// 1.6 `csChargingProfiles` for `connector`.
    pub fn from_v16(connector: u32, p: &Value) -> Result<Profile, Refused> {
        let purpose = match field(p, "chargingProfilePurpose")?.as_str() {
            Some("ChargePointMaxProfile") => Purpose::StationMax,
            Some("TxDefaultProfile") => Purpose::TxDefault,
            Some("TxProfile") => Purpose::Tx,
            _ => return Err(Refused("unknown chargingProfilePurpose".into())),
        };
        let schedule = field(p, "chargingSchedule")?;
        Self::build(
            int(p, "chargingProfileId")?,
            connector,
            purpose,
            p,
            schedule,
            p.get("transactionId").and_then(Value::as_i64).map(|t| t.to_string()),
        )
    }

    /// 2.0.1 `chargingProfile` for EVSE `evse`; the first schedule counts.
    pub fn from_v201(evse: u32, p: &Value) -> Result<Profile, Refused> {
        let purpose = match field(p, "chargingProfilePurpose")?.as_str() {
            Some("ChargingStationMaxProfile") => Purpose::StationMax,
            Some("TxDefaultProfile") => Purpose::TxDefault,
            Some("TxProfile") => Purpose::Tx,
            Some("ChargingStationExternalConstraints") => Purpose::External,
            _ => return Err(Refused("unknown chargingProfilePurpose".into())),
        };
        let schedule = field(p, "chargingSchedule")?
            .as_array()
            .and_then(|s| s.first())
            .ok_or_else(|| Refused("chargingSchedule is empty".into()))?;
        Self::build(
            int(p, "id")?,
            evse,
            purpose,
            p,
            schedule,
            p.get("transactionId").and_then(Value::as_str).map(str::to_string),
        )
    }

    fn build(
        id: i64,
        connector: u32,
        purpose: Purpose,
        p: &Value,
        s: &Value,
        transaction: Option<String>,
    ) -> Result<Profile, Refused> {
        let kind = match (
            field(p, "chargingProfileKind")?.as_str(),
            p.get("recurrencyKind").and_then(Value::as_str),
        ) {
            (Some("Absolute"), _) => Kind::Absolute,
            (Some("Relative"), _) => Kind::Relative,
            (Some("Recurring"), Some("Daily")) => Kind::Daily,
            (Some("Recurring"), Some("Weekly")) => Kind::Weekly,
            _ => return Err(Refused("chargingProfileKind / recurrencyKind not understood".into())),
        };
        let unit = match field(s, "chargingRateUnit")?.as_str() {
            Some("A") => Unit::Amps,
            Some("W") => Unit::Watts,
            _ => return Err(Refused("chargingRateUnit must be A or W".into())),
        };
        let mut periods = Vec::new();
        for per in field(s, "chargingSchedulePeriod")?
            .as_array()
            .ok_or_else(|| Refused("chargingSchedulePeriod is not an array".into()))?
        {
            periods.push(Period {
                start_s: int(per, "startPeriod")?,
                limit_milli: milli(field(per, "limit")?)?,
                phases: per.get("numberPhases").and_then(Value::as_u64).map(|n| n.min(3) as u8),
            });
        }
        if periods.is_empty() || periods[0].start_s != 0 {
            return Err(Refused("the first period must start at 0".into()));
        }
        if periods.windows(2).any(|w| w[1].start_s <= w[0].start_s) {
            return Err(Refused("periods must be in increasing startPeriod order".into()));
        }
        if purpose == Purpose::StationMax && connector != 0 {
            return Err(Refused(
                "a station maximum profile belongs on connector / EVSE 0".into(),
            ));
        }
        Ok(Profile {
            id,
            stack_level: int(p, "stackLevel")?,
            purpose,
            connector,
            transaction,
            kind,
            start: time(s, "startSchedule")?,
            valid_from: time(p, "validFrom")?,
            valid_to: time(p, "validTo")?,
            duration_s: s.get("duration").and_then(Value::as_i64),
            unit,
            periods,
        })
    }

    /// The period limit in force at `now`, if the profile is active then.
    /// `tx_start` anchors relative profiles.
    fn limit_at(&self, now: DateTime<Utc>, tx_start: Option<DateTime<Utc>>) -> Option<&Period> {
        if self.valid_from.is_some_and(|f| now < f) || self.valid_to.is_some_and(|t| now >= t) {
            return None;
        }
        let anchor = match self.kind {
            Kind::Relative => tx_start.unwrap_or(now),
            Kind::Absolute => self.start.or(tx_start).unwrap_or(now),
            Kind::Daily | Kind::Weekly => {
                let start = self.start?;
                let cycle = if self.kind == Kind::Daily { 86_400 } else { 7 * 86_400 };
                let since = (now - start).num_seconds().rem_euclid(cycle);
                now - chrono::Duration::seconds(since)
            }
        };
        let offset = (now - anchor).num_seconds();
        if offset < 0 || self.duration_s.is_some_and(|d| offset >= d) {
            return None;
        }
        self.periods.iter().rev().find(|p| p.start_s <= offset)
    }
}

/// The profiles installed on one charger.
#[derive(Debug, Default, Clone)]
pub struct Profiles {
    list: Vec<Profile>,
}

/// A limit converted for an AC charger: mA per phase.
pub fn to_ma(p: &Period, unit: Unit, phases: u8, volts: i64) -> i64 {
    match unit {
        Unit::Amps => p.limit_milli,
        Unit::Watts => {
            let n = p.phases.unwrap_or(phases).clamp(1, 3) as i64;
            p.limit_milli / (volts * n)
        }
    }
}

impl Profiles {
    /// OCPP: a profile with the same id, or the same purpose, stack level and
    /// connector, replaces the old one.
    pub fn install(&mut self, p: Profile) {
        self.list.retain(|o| {
            o.id != p.id && !(o.purpose == p.purpose && o.stack_level == p.stack_level && o.connector == p.connector)
        });
        self.list.push(p);
    }

    /// Remove what matches every given criterion; the number removed.
    pub fn clear(
        &mut self,
        id: Option<i64>,
        connector: Option<u32>,
        purpose: Option<Purpose>,
        stack: Option<i64>,
    ) -> usize {
        let before = self.list.len();
        self.list.retain(|p| {
            let hit = id.is_none_or(|i| p.id == i)
                && connector.is_none_or(|c| p.connector == c)
                && purpose.is_none_or(|x| p.purpose == x)
                && stack.is_none_or(|s| p.stack_level == s);
            !hit
        });
        before - self.list.len()
    }

    /// TxProfiles end with their transaction.
    pub fn end_transaction(&mut self, connector: u32) {
        self.list
            .retain(|p| !(p.purpose == Purpose::Tx && p.connector == connector));
    }

    fn top(
        &self,
        now: DateTime<Utc>,
        tx_start: Option<DateTime<Utc>>,
        pick: impl Fn(&Profile) -> bool,
    ) -> Option<(&Profile, &Period)> {
        self.list
            .iter()
            .filter(|p| pick(p))
            .filter_map(|p| p.limit_at(now, tx_start).map(|per| (p, per)))
            .max_by_key(|(p, _)| (p.stack_level, p.connector))
    }

    /// The session limit on `connector` (TxProfile, else TxDefault), as
    /// (profile, period) so the caller converts the unit.
    pub fn session_limit(
        &self,
        connector: u32,
        tx: Option<(&str, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Option<(&Profile, &Period)> {
        let start = tx.map(|(_, s)| s);
        if let Some((id, _)) = tx
            && let Some(hit) = self.top(now, start, |p| {
                p.purpose == Purpose::Tx && p.connector == connector && p.transaction.as_deref().is_none_or(|t| t == id)
            })
        {
            return Some(hit);
        }
        self.top(now, start, |p| {
            p.purpose == Purpose::TxDefault && (p.connector == connector || p.connector == 0)
        })
    }

    /// Station-wide caps (station maximum, external constraints).
    pub fn station_limits(&self, now: DateTime<Utc>) -> Vec<(&Profile, &Period)> {
        [Purpose::StationMax, Purpose::External]
            .into_iter()
            .filter_map(|purpose| self.top(now, None, |p| p.purpose == purpose))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn tx_default(id: i64, stack: i64, limit: f64) -> Profile {
        Profile::from_v16(
            0,
            &json!({"chargingProfileId": id, "stackLevel": stack, "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative", "chargingSchedule": {"chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}),
        )
        .unwrap()
    }

    #[test]
    fn highest_stack_wins_and_tx_profile_beats_default() {
        let now = t("2026-11-23T10:00:00Z");
        let mut ps = Profiles::default();
        ps.install(tx_default(1, 0, 6.0));
        ps.install(tx_default(2, 1, 10.5));
        let (_, per) = ps.session_limit(1, None, now).unwrap();
        assert_eq!(per.limit_milli, 10_500);
        let tx = Profile::from_v201(
            1,
            &json!({"id": 9, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
                "transactionId": "abc", "chargingSchedule": [{"id": 1, "startSchedule": "2026-11-23T09:00:00Z",
                "duration": 7200, "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}, {"startPeriod": 3600, "limit": 4140}]}]}),
        )
        .unwrap();
        ps.install(tx);
        let (p, per) = ps.session_limit(1, Some(("abc", now)), now).unwrap();
        assert_eq!((p.id, per.limit_milli), (9, 4_140_000));
        assert_eq!(to_ma(per, p.unit, 3, 230), 6_000);
        // Another transaction does not see it; after its duration it lapses.
        assert_eq!(ps.session_limit(1, Some(("zzz", now)), now).unwrap().0.id, 2);
        let later = t("2026-11-23T11:00:01Z");
        assert_eq!(ps.session_limit(1, Some(("abc", later)), later).unwrap().0.id, 2);
        assert_eq!(ps.clear(None, None, Some(Purpose::TxDefault), None), 2);
    }

    #[test]
    fn same_purpose_and_stack_replaces() {
        let mut ps = Profiles::default();
        ps.install(tx_default(1, 0, 6.0));
        ps.install(tx_default(5, 0, 8.0));
        assert_eq!(ps.list.len(), 1);
    }

    #[test]
    fn refuses_malformed_schedules() {
        let bad = json!({"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 10, "limit": 6}]}});
        assert!(Profile::from_v16(1, &bad).is_err());
        let station = json!({"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}});
        assert!(Profile::from_v16(1, &station).is_err());
        assert!(Profile::from_v16(0, &station).is_ok());
    }
}
