//! Session lifecycle rules: one model for 1.6 Start/StopTransaction and
//! 2.0.1 TransactionEvent, idempotent on retries, and the charger's own data
//! always wins over the server's inference.

use super::meter::energy_register_wh;
use super::model::{AuthStatus, ChargerTxRef, ClosedBy, Sample, Session, SessionStatus};
use chrono::{DateTime, Utc};

/// Which session a transaction message is about.
#[derive(Debug, Clone, PartialEq)]
pub enum TxTarget {
    /// The charger's own reference (1.6 StartTransaction content, 2.0.1 id).
    Charger(ChargerTxRef),
    /// Our transaction id, as 1.6 Stop/MeterValues carry it.
    Session(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPhase {
    Started,
    Updated,
    Ended,
}

/// A version-neutral transaction message.
#[derive(Debug, Clone)]
pub struct TxMessage {
    pub target: TxTarget,
    pub phase: TxPhase,
    pub t: DateTime<Utc>,
    pub evse: Option<u32>,
    pub connector: Option<u32>,
    pub token: Option<String>,
    /// 1.6 meterStart / meterStop, in Wh.
    pub meter_wh: Option<i64>,
    pub samples: Vec<Sample>,
    pub seq_no: Option<u64>,
    pub charging_state: Option<String>,
    pub stop_reason: Option<String>,
    pub offline: bool,
    pub remote_start_id: Option<i64>,
    /// The reservation a starting transaction uses.
    pub reservation_id: Option<i64>,
}

/// Open a new session from a message that starts (or first mentions) it.
pub fn open(
    id: u64,
    charger: &str,
    msg: &TxMessage,
    tx_ref: ChargerTxRef,
    auth: AuthStatus,
    now: DateTime<Utc>,
) -> Session {
    let mut s = Session {
        id,
        charger: charger.to_string(),
        evse: msg.evse.unwrap_or(0),
        connector: msg.connector.unwrap_or(1),
        token: msg.token.clone(),
        auth,
        tx_ref,
        started_at: msg.t,
        stopped_at: None,
        status: SessionStatus::Active,
        meter_start_wh: msg.meter_wh,
        meter_last_wh: msg.meter_wh,
        meter_stop_wh: None,
        last_sample_at: None,
        stop_reason: None,
        closed_by: None,
        suspect_since: None,
        charging_state: None,
        last_seq_no: None,
        remote_start_id: msg.remote_start_id,
        offline: msg.offline,
        samples: 0,
        notes: Vec::new(),
        received_at: now,
        departure: None,
        energy_target_wh: None,
        priority: None,
        states: Vec::new(),
    };
    if let Some(state) = &msg.charging_state {
        s.charging_state = Some(state.clone());
        s.note_state(msg.t, state);
    }
    if msg.phase != TxPhase::Started {
        s.notes.push(format!(
            "{now}: first message seen for this transaction was {:?}; start time taken from it",
            msg.phase
        ));
    }
    s
}

/// Apply an Updated/Ended (or duplicate Started) message to a session.
/// Returns false when the message was already applied (a retry).
pub fn apply(s: &mut Session, msg: &TxMessage, now: DateTime<Utc>) -> bool {
    if msg.phase == TxPhase::Ended && s.closed_by == Some(ClosedBy::Charger) {
        return false;
    }
    if let (Some(seq), Some(last)) = (msg.seq_no, s.last_seq_no)
        && seq <= last
        && msg.phase != TxPhase::Ended
    {
        return false;
    }
    if let Some(seq) = msg.seq_no {
        s.last_seq_no = Some(s.last_seq_no.map_or(seq, |l| l.max(seq)));
    }
    if msg.offline || msg.t + chrono::Duration::minutes(5) < now {
        s.offline = true;
    }
    if s.token.is_none() && msg.token.is_some() {
        s.token = msg.token.clone();
    }
    if let Some(state) = &msg.charging_state {
        s.charging_state = Some(state.clone());
        s.note_state(msg.t, state);
    }
    if msg.t < s.started_at && msg.phase == TxPhase::Started {
        s.started_at = msg.t;
    }
    add_samples(s, &msg.samples);
    if msg.phase == TxPhase::Ended {
        end_by_charger(s, msg, now);
    }
    true
}

/// Meter samples only move the register forward in time: a replayed older
/// sample must not roll the last reading back.
pub fn add_samples(s: &mut Session, samples: &[Sample]) {
    s.samples += samples.len() as u64;
    let Some(last_t) = samples.iter().map(|x| x.t).max() else {
        return;
    };
    if let Some(wh) = energy_register_wh(samples) {
        if s.meter_start_wh.is_none() {
            s.meter_start_wh = Some(wh);
        }
        if s.last_sample_at.is_none_or(|prev| last_t >= prev) {
            s.meter_last_wh = Some(wh);
        }
    }
    if s.last_sample_at.is_none_or(|prev| last_t > prev) {
        s.last_sample_at = Some(last_t);
    }
}

fn end_by_charger(s: &mut Session, msg: &TxMessage, now: DateTime<Utc>) {
    let stop_wh = msg
        .meter_wh
        .or_else(|| energy_register_wh(&msg.samples))
        .or(s.meter_last_wh);
    if let Some(ClosedBy::Inference { evidence }) = &s.closed_by {
        s.notes.push(format!(
            "{now}: the charger's own stop ({} at {}) replaced the inferred end ({evidence}; {} Wh at {})",
            msg.stop_reason.as_deref().unwrap_or("no reason"),
            msg.t.to_rfc3339(),
            s.meter_stop_wh.map_or("?".into(), |w| w.to_string()),
            s.stopped_at.map_or("?".into(), |t| t.to_rfc3339()),
        ));
    }
    s.status = SessionStatus::Completed;
    s.stopped_at = Some(msg.t);
    s.meter_stop_wh = stop_wh;
    s.stop_reason = msg.stop_reason.clone().or(Some("Local".into()));
    s.closed_by = Some(ClosedBy::Charger);
    s.suspect_since = None;
}

/// Close a session the charger can no longer close for us, on evidence.
/// The end time is the last moment the session is known to have been alive.
pub fn close_by_inference(s: &mut Session, evidence: &str, now: DateTime<Utc>) {
    if s.status == SessionStatus::Completed {
        return;
    }
    let end = s.last_sample_at.unwrap_or(s.started_at).max(s.started_at);
    s.status = SessionStatus::Completed;
    s.stopped_at = Some(end);
    s.meter_stop_wh = s.meter_last_wh;
    s.stop_reason = Some("Inferred".into());
    s.closed_by = Some(ClosedBy::Inference {
        evidence: evidence.to_string(),
    });
    s.suspect_since = None;
    s.notes.push(format!("{now}: closed by inference: {evidence}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn msg(phase: TxPhase, at: i64, wh: Option<i64>, seq: Option<u64>) -> TxMessage {
        TxMessage {
            target: TxTarget::Session(1),
            phase,
            t: t(at),
            evse: Some(1),
            connector: Some(1),
            token: Some("TAG".into()),
            meter_wh: wh,
            samples: vec![],
            seq_no: seq,
            charging_state: None,
            stop_reason: Some("EVDisconnected".into()),
            offline: false,
            remote_start_id: None,
            reservation_id: None,
        }
    }

    fn session() -> Session {
        let m = msg(TxPhase::Started, 0, Some(1000), Some(0));
        let r = ChargerTxRef::V201 {
            transaction_id: "x".into(),
        };
        open(1, "CP1", &m, r, AuthStatus::Accepted, t(0))
    }

    #[test]
    fn charger_stop_overrides_inference() {
        let mut s = session();
        s.last_sample_at = Some(t(30));
        s.meter_last_wh = Some(5000);
        close_by_inference(&mut s, "connector available after reboot", t(40));
        assert_eq!(s.stopped_at, Some(t(30)));
        assert_eq!(s.energy_wh(), 4000);
        assert!(apply(&mut s, &msg(TxPhase::Ended, 35, Some(5600), Some(9)), t(50)));
        assert_eq!(s.closed_by, Some(ClosedBy::Charger));
        assert_eq!(s.stopped_at, Some(t(35)));
        assert_eq!(s.energy_wh(), 4600);
        assert_eq!(s.notes.len(), 2);
    }

    #[test]
    fn retried_stop_keeps_the_first() {
        let mut s = session();
        assert!(apply(&mut s, &msg(TxPhase::Ended, 35, Some(5600), None), t(36)));
        assert!(
            !apply(&mut s, &msg(TxPhase::Ended, 37, Some(9999), None), t(38)),
            "a retry is not applied again"
        );
        assert_eq!((s.stopped_at, s.meter_stop_wh), (Some(t(35)), Some(5600)));
    }

    #[test]
    fn duplicate_seq_no_is_not_applied_twice() {
        let mut s = session();
        assert!(apply(&mut s, &msg(TxPhase::Updated, 5, None, Some(1)), t(5)));
        assert!(!apply(&mut s, &msg(TxPhase::Updated, 5, None, Some(1)), t(6)));
    }
}
