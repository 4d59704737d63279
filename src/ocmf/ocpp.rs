//! Where signed meter data sits in OCPP messages (pure functions over `serde_json::Value`):
//!
//! - 1.6: a SampledValue with `"format": "SignedData"` (MeterValues, StopTransaction's
//!   transactionData); its `value` is the OCMF record itself, or a JSON text holding
//!   `signedMeterData` (2.0.1 style, possibly with `publicKey`) or `signedMeterValue` (an object).
//! - 2.0.1: a SampledValue's `signedMeterValue` {signedMeterData, signingMethod, encodingMethod,
//!   publicKey}; `signedMeterData` is base64 of the OCMF text (some chargers send it plain) and
//!   `publicKey` base64 or hex of the key, or empty.
//! - Keys configured on the charger (`MeterPublicKey[n]` in 1.6, FiscalMetering.PublicKey in
//!   2.0.1) are strings for [`super::key::PublicKey::parse`]; [`meter_key_setting`] recognises
//!   their names.

use super::key;
use serde::Serialize;
use serde_json::Value;

/// Signed meter data found in an OCPP message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedMeterData {
    /// The OCMF record (decoded when it came base64 or hex encoded).
    pub ocmf: String,
    /// The public key sent with the data, as sent (any shape the key parser accepts).
    pub public_key: Option<String>,
    /// 2.0.1 `signingMethod`, when given.
    pub signing_method: Option<String>,
    /// 2.0.1 `encodingMethod`, when given.
    pub encoding_method: Option<String>,
    /// The SampledValue's `context` (`Transaction.Begin`, `Transaction.End`, `Sample.Periodic`…).
    pub context: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("the signed data is empty")]
    Empty,
    #[error("encodingMethod {0:?} is not OCMF")]
    NotOcmf(String),
    #[error("the signed data is neither an OCMF record nor base64 or hex of one")]
    Unrecognised,
    #[error("signedMeterValue has no signedMeterData string")]
    NoSignedMeterData,
}

/// The OCMF text in a signed-data string: the record itself, base64 of it, or hex of it.
pub fn decode_signed_data(s: &str) -> Result<String, ExtractError> {
    let t = s.trim().trim_start_matches('\u{feff}');
    if t.is_empty() {
        return Err(ExtractError::Empty);
    }
    if t.starts_with("OCMF|") {
        return Ok(t.to_owned());
    }
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = key::decode_hex(&compact).or_else(|| key::decode_base64(&compact));
    match decoded.and_then(|b| String::from_utf8(b).ok()) {
        Some(text) if text.trim_start_matches('\u{feff}').trim().starts_with("OCMF|") => {
            Ok(text.trim_start_matches('\u{feff}').trim().to_owned())
        }
        _ => Err(ExtractError::Unrecognised),
    }
}

fn string(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// A 2.0.1 SignedMeterValueType object.
pub fn from_signed_meter_value(smv: &Value, context: Option<&str>) -> Result<SignedMeterData, ExtractError> {
    let encoding_method = non_empty(string(smv, "encodingMethod"));
    if let Some(m) = &encoding_method
        && !m.trim().eq_ignore_ascii_case("OCMF")
    {
        return Err(ExtractError::NotOcmf(m.clone()));
    }
    let data = string(smv, "signedMeterData").ok_or(ExtractError::NoSignedMeterData)?;
    Ok(SignedMeterData {
        ocmf: decode_signed_data(&data)?,
        public_key: non_empty(string(smv, "publicKey")),
        signing_method: non_empty(string(smv, "signingMethod")),
        encoding_method,
        context: context.map(str::to_owned),
    })
}

/// A SampledValue of either version: `None` when it carries no signed data.
pub fn from_sampled_value(sv: &Value) -> Option<Result<SignedMeterData, ExtractError>> {
    let context = sv.get("context").and_then(Value::as_str);
    if let Some(smv) = sv.get("signedMeterValue").filter(|v| v.is_object()) {
        return Some(from_signed_meter_value(smv, context));
    }
    if sv.get("format").and_then(Value::as_str) != Some("SignedData") {
        return None;
    }
    let value = sv.get("value").and_then(Value::as_str).unwrap_or_default();
    Some(from_signed_data_value(value, context))
}

/// A 1.6 SignedData `value`: the record, or JSON wrapping it.
pub fn from_signed_data_value(value: &str, context: Option<&str>) -> Result<SignedMeterData, ExtractError> {
    let t = value.trim();
    if t.starts_with('{')
        && let Ok(json) = serde_json::from_str::<Value>(t)
    {
        if let Some(inner) = json.get("signedMeterValue") {
            return match inner {
                Value::Object(_) => from_signed_meter_value(inner, context),
                Value::String(s) => from_signed_data_value(s, context),
                _ => Err(ExtractError::NoSignedMeterData),
            };
        }
        return from_signed_meter_value(&json, context);
    }
    Ok(SignedMeterData {
        ocmf: decode_signed_data(t)?,
        public_key: None,
        signing_method: None,
        encoding_method: None,
        context: context.map(str::to_owned),
    })
}

/// Every signed value in an OCPP message payload (MeterValues, StopTransaction, TransactionEvent
/// of either version), in document order: every SampledValue under any `sampledValue` array.
pub fn find_signed_meter_data(payload: &Value) -> Vec<Result<SignedMeterData, ExtractError>> {
    let mut out = Vec::new();
    walk(payload, &mut out);
    out
}

fn walk(v: &Value, out: &mut Vec<Result<SignedMeterData, ExtractError>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "sampledValue"
                    && let Value::Array(items) = child
                {
                    out.extend(items.iter().filter_map(from_sampled_value));
                } else {
                    walk(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
        _ => {}
    }
}

/// Which connector a meter-key setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MeterKeySetting {
    /// `MeterPublicKey` / `FiscalMetering.PublicKey`: the charger's (only) meter.
    Charger,
    /// `MeterPublicKey[n]`: connector n.
    Connector(u32),
}

/// Whether a configuration key / device-model variable holds a meter public key:
/// `MeterPublicKey`, `MeterPublicKey[n]` (1.6, OCA), `FiscalMetering.PublicKey` or
/// `FiscalMetering/PublicKey` (2.0.1 component and variable). `PublicKeyWithSignedMeterValue`
/// is not a key: it says when the key goes out with meter values (Never / OncePerTransaction /
/// EveryMeterValue).
pub fn meter_key_setting(name: &str) -> Option<MeterKeySetting> {
    let n = name.trim();
    if n.eq_ignore_ascii_case("MeterPublicKey") {
        return Some(MeterKeySetting::Charger);
    }
    if let Some(rest) = n.strip_prefix("MeterPublicKey[").and_then(|r| r.strip_suffix(']')) {
        return rest.trim().parse().ok().map(MeterKeySetting::Connector);
    }
    let lower = n.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("fiscalmetering")
        && matches!(rest, ".publickey" | "/publickey" | ":publickey")
    {
        return Some(MeterKeySetting::Charger);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const REC: &str = r#"OCMF|{"FV":"1.0","PG":"T1","RD":[]}|{"SD":"3006020101020101"}"#;

    #[test]
    fn v16_sampled_values_raw_and_wrapped() {
        let raw = json!({"value": REC, "format": "SignedData", "context": "Transaction.Begin"});
        let got = from_sampled_value(&raw).unwrap().unwrap();
        assert_eq!(
            (got.ocmf.as_str(), got.context.as_deref()),
            (REC, Some("Transaction.Begin"))
        );
        let b64 = data_encoding::BASE64.encode(REC.as_bytes());
        let wrapped = json!({"format": "SignedData", "context": "Transaction.End",
            "value": json!({"signedMeterData": b64, "publicKey": "3059AB", "encodingMethod": "OCMF"}).to_string()});
        let got = from_sampled_value(&wrapped).unwrap().unwrap();
        assert_eq!(got.ocmf, REC);
        assert_eq!(got.public_key.as_deref(), Some("3059AB"));
        let nested = json!({"format": "SignedData",
            "value": json!({"signedMeterValue": {"signedMeterData": REC, "encodingMethod": "OCMF"}}).to_string()});
        assert_eq!(from_sampled_value(&nested).unwrap().unwrap().ocmf, REC);
        let plain = json!({"value": "1234", "measurand": "Energy.Active.Import.Register"});
        assert!(from_sampled_value(&plain).is_none());
        let junk = json!({"format": "SignedData", "value": "not signed data"});
        assert_eq!(from_sampled_value(&junk).unwrap(), Err(ExtractError::Unrecognised));
    }

    #[test]
    fn v201_signed_meter_value_and_message_walk() {
        let hex = data_encoding::HEXUPPER.encode(REC.as_bytes());
        let ev = json!({"eventType": "Ended", "meterValue": [{"timestamp": "x", "sampledValue": [
            {"value": 10, "context": "Transaction.End"},
            {"value": 10, "context": "Transaction.End", "signedMeterValue": {
                "signedMeterData": data_encoding::BASE64.encode(REC.as_bytes()),
                "signingMethod": "ECDSA-secp256r1-SHA256", "encodingMethod": "OCMF", "publicKey": ""}},
            {"value": 10, "signedMeterValue": {"signedMeterData": hex, "signingMethod": "", "encodingMethod": "OCMF",
                "publicKey": "MFkw"}},
            {"value": 10, "signedMeterValue": {"signedMeterData": "AAAA", "signingMethod": "",
                "encodingMethod": "EDL", "publicKey": ""}}
        ]}]});
        let found = find_signed_meter_data(&ev);
        assert_eq!(found.len(), 3);
        let first = found[0].as_ref().unwrap();
        assert_eq!(first.ocmf, REC);
        assert_eq!(first.public_key, None);
        assert_eq!(first.context.as_deref(), Some("Transaction.End"));
        assert_eq!(first.signing_method.as_deref(), Some("ECDSA-secp256r1-SHA256"));
        assert_eq!(found[1].as_ref().unwrap().public_key.as_deref(), Some("MFkw"));
        assert_eq!(found[2], Err(ExtractError::NotOcmf("EDL".into())));
        // 1.6 StopTransaction.transactionData
        let stop = json!({"transactionId": 1, "transactionData": [{"timestamp": "x", "sampledValue": [
            {"value": REC, "format": "SignedData", "context": "Transaction.End"}]}]});
        assert_eq!(find_signed_meter_data(&stop).len(), 1);
    }

    #[test]
    fn key_setting_names() {
        assert_eq!(meter_key_setting("MeterPublicKey"), Some(MeterKeySetting::Charger));
        assert_eq!(
            meter_key_setting("MeterPublicKey[2]"),
            Some(MeterKeySetting::Connector(2))
        );
        assert_eq!(
            meter_key_setting("FiscalMetering.PublicKey"),
            Some(MeterKeySetting::Charger)
        );
        assert_eq!(meter_key_setting("PublicKeyWithSignedMeterValue"), None);
        assert_eq!(meter_key_setting("MeterPublicKey[x]"), None);
    }
}
