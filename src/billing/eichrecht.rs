//! A session's signed meter data: find the signed begin and end records among
//! the stored samples, pick the public key for each, and run the OCMF session
//! check.

use super::model::{Eichrecht, EichrechtState, MeterKey, SignedRecord};
use crate::domain::Sample;
use crate::ocmf::ocpp::{self as ocmf_ocpp, ExtractError, SignedMeterData};
use crate::ocmf::{PublicKey, Record, check_session};
use chrono::{DateTime, Utc};
use serde_json::json;

const BEGIN: &str = "Transaction.Begin";
const END: &str = "Transaction.End";

/// The OCMF record in a stored signed value (1.6 SignedData value, or 2.0.1
/// signedMeterValue).
fn extract(s: &Sample) -> Option<Result<SignedMeterData, ExtractError>> {
    let signed = s.signed.as_ref()?;
    let context = Some(s.context.as_ref());
    Some(
        if signed.encoding_method.is_some() || signed.signing_method.is_some() || signed.public_key.is_some() {
            let smv = json!({
                "signedMeterData": signed.data,
                "encodingMethod": signed.encoding_method,
                "signingMethod": signed.signing_method,
                "publicKey": signed.public_key,
            });
            ocmf_ocpp::from_signed_meter_value(&smv, context)
        } else {
            ocmf_ocpp::from_signed_data_value(&signed.data, context)
        },
    )
}

struct Found {
    sent_at: DateTime<Utc>,
    data: SignedMeterData,
    record: Record,
}

/// The key for connector `evse`: one configured for it, else the charger's.
fn configured_key(keys: &[MeterKey], evse: u32) -> Option<&MeterKey> {
    keys.iter()
        .rev()
        .find(|k| k.connector == Some(evse))
        .or_else(|| keys.iter().rev().find(|k| k.connector.is_none()))
}

/// Checks the session's signed data. `keys` are the charger's known meter
/// keys; a key sent with the data wins over them.
pub fn check(charger: &str, evse: u32, samples: &[Sample], keys: &[MeterKey]) -> Eichrecht {
    let mut out = Eichrecht::unsigned();
    let mut found: Vec<Found> = Vec::new();
    for s in samples {
        let Some(r) = extract(s) else { continue };
        out.signed_values += 1;
        match r {
            Ok(data) => {
                if found.iter().any(|f| f.data.ocmf == data.ocmf) {
                    continue; // the same record again (a retry, or sent twice)
                }
                match Record::parse(&data.ocmf) {
                    Ok(record) => found.push(Found {
                        sent_at: s.t,
                        data,
                        record,
                    }),
                    Err(e) => out.problems.push(format!(
                        "signed value at {} ({}): not readable: {e}",
                        s.t.to_rfc3339(),
                        s.context
                    )),
                }
            }
            Err(e) => out
                .problems
                .push(format!("signed value at {} ({}): {e}", s.t.to_rfc3339(), s.context)),
        }
    }
    if out.signed_values == 0 {
        return out;
    }
    out.state = EichrechtState::Failed;
    let ctx = |f: &Found, c: &str| f.data.context.as_deref() == Some(c);
    let begin = found
        .iter()
        .position(|f| ctx(f, BEGIN))
        .or_else(|| found.iter().position(|f| f.record.has_begin()));
    let end = found
        .iter()
        .rposition(|f| ctx(f, END))
        .or_else(|| found.iter().rposition(|f| f.record.has_end()));
    if begin.is_none() {
        out.problems
            .push("no signed Transaction.Begin record (a reading with TX=B)".into());
    }
    if end.is_none() {
        out.problems
            .push("no signed Transaction.End record (a reading with an end TX)".into());
    }
    let (Some(b), Some(e)) = (begin, end) else {
        return out;
    };
    // A key sent next to any of the session's records (2.0.1 sends it once
    // per transaction at least) stands for the meter's key.
    let sent_key = found.iter().find_map(|f| f.data.public_key.clone());
    let key_for = |f: &Found| -> Option<(String, String)> {
        if let Some(k) = &f.data.public_key {
            return Some((k.clone(), "sent with the signed meter value".into()));
        }
        if let Some(k) = &sent_key {
            return Some((k.clone(), "sent with another signed value of the session".into()));
        }
        configured_key(keys, evse).map(|k| (k.key.clone(), k.source.clone()))
    };
    let (kb, ke) = (key_for(&found[b]), key_for(&found[e]));
    let parse = |k: &Option<(String, String)>, problems: &mut Vec<String>| -> Option<PublicKey> {
        let (text, source) = k.as_ref()?;
        match PublicKey::parse(text) {
            Ok(key) => Some(key),
            Err(err) => {
                problems.push(format!("the public key ({source}) cannot be read: {err}"));
                None
            }
        }
    };
    let (pb, pe) = (parse(&kb, &mut out.problems), parse(&ke, &mut out.problems));
    if kb.is_none() || ke.is_none() {
        out.needs_key = out.problems.is_empty();
        out.problems.push(format!(
            "no public key is known for the meter of charger {charger} connector {evse}: \
             read it with `voltyard charger config get {charger}` or set it with \
             `voltyard charger set-meter-key {charger} KEY`"
        ));
    }
    let verdict = check_session(&found[b].record, pb.as_ref(), &found[e].record, pe.as_ref());
    out.problems.extend(verdict.problems.iter().map(ToString::to_string));
    out.notes = verdict.notes.clone();
    let data = &found[b].record.data;
    out.meter_serial = data.ms.clone().or_else(|| data.gs.clone()).filter(|s| !s.is_empty());
    let record = |f: &Found, k: &Option<(String, String)>, reg: &Option<crate::ocmf::session::Register>| SignedRecord {
        context: f.data.context.clone(),
        sent_at: f.sent_at,
        ocmf: f.data.ocmf.clone(),
        public_key: k.as_ref().map(|k| k.0.clone()),
        key_source: k.as_ref().map(|k| k.1.clone()),
        register_wh: reg.as_ref().map(|r| r.wh),
        meter_time: reg.as_ref().and_then(|r| r.at),
    };
    out.begin = Some(record(&found[b], &kb, &verdict.begin));
    out.end = Some(record(&found[e], &ke, &verdict.end));
    if out.problems.is_empty() {
        out.state = EichrechtState::Verified;
        out.energy_wh = verdict.energy_wh;
        out.needs_key = false;
    }
    out
}
