//! An OCPI 2.2.1 CDR for a priced session (`tariff::cdr_json` plus what the
//! store knows: ids, token, charger, and the signed meter data).

use super::model::Bill;
use super::receipt::reprice;
use crate::domain::{Charger, Session, Token, TokenKind};
use crate::ocmf::Record;
use crate::tariff::{CdrContext, CdrLocation, CdrToken, GeoLocation, cdr_json};
use serde_json::{Value, json};

/// Used when the tariff (OCPI 2.1.1) names no operator.
const FALLBACK_COUNTRY: &str = "ZZ";
const FALLBACK_PARTY: &str = "VYD";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdrError {
    #[error("session {0} is not priced{reason}", reason = .1.as_deref().map_or(String::new(), |r| format!(": {r}")))]
    NotPriced(u64, Option<String>),
    #[error("session {0}: {1}")]
    Unusable(u64, String),
}

/// What the CDR is built from.
pub struct CdrInput<'a> {
    pub session: &'a Session,
    pub charger: Option<&'a Charger>,
    pub token: Option<&'a Token>,
    pub site: &'a str,
    pub bill: &'a Bill,
}

fn token_type(t: Option<&Token>) -> &'static str {
    match t.map(|t| t.kind) {
        Some(TokenKind::Rfid) => "RFID",
        Some(TokenKind::App) => "APP_USER",
        _ => "OTHER",
    }
}

/// OCPI 2.2.1 `SignedData` for the session's OCMF records.
fn signed_data(bill: &Bill) -> Option<Value> {
    let e = &bill.eichrecht;
    let (b, en) = (e.begin.as_ref()?, e.end.as_ref()?);
    let mut values = Vec::new();
    for (nature, r) in [("Start", b), ("End", en)] {
        let plain = Record::parse(&r.ocmf).ok().map(|x| x.payload_str().to_string());
        values.push(json!({"nature": nature, "plain_data": plain.unwrap_or_default(), "signed_data": r.ocmf}));
        if b.ocmf == en.ocmf {
            break;
        }
    }
    let mut o = json!({"encoding_method": "OCMF", "signed_values": values});
    if let Some(k) = &b.public_key {
        o["public_key"] = json!(k);
    }
    Some(o)
}

pub fn cdr(i: &CdrInput) -> Result<Value, CdrError> {
    let (s, b) = (i.session, i.bill);
    let (tariff, priced) = match reprice(b) {
        None => return Err(CdrError::NotPriced(s.id, b.unpriced_reason.clone())),
        Some(Err(e)) => return Err(CdrError::Unusable(s.id, e)),
        Some(Ok(x)) => x,
    };
    let country = tariff.country_code.clone().unwrap_or_else(|| FALLBACK_COUNTRY.into());
    let party = tariff.party_id.clone().unwrap_or_else(|| FALLBACK_PARTY.into());
    let uid = s.token.clone().unwrap_or_default();
    let evse = format!("{}*{}", s.charger, s.evse);
    let dc = i.charger.is_some_and(|c| c.max_power_w.is_some());
    let power = match (dc, i.charger.map_or(3, |c| c.phases)) {
        (true, _) => "DC",
        (false, 1) => "AC_1_PHASE",
        _ => "AC_3_PHASE",
    };
    let ctx = CdrContext {
        country_code: country.clone(),
        party_id: party.clone(),
        id: format!("{}-{}", s.charger, s.id),
        session_id: Some(s.id.to_string()),
        cdr_token: CdrToken {
            country_code: country,
            party_id: party,
            uid: uid.clone(),
            token_type: token_type(i.token).into(),
            contract_id: uid,
        },
        auth_method: if s.remote_start_id.is_some() {
            "COMMAND".into()
        } else {
            "WHITELIST".into()
        },
        authorization_reference: None,
        cdr_location: CdrLocation {
            id: i.site.into(),
            name: Some(i.site.into()),
            // voltyard keeps no street address or coordinates for a site yet.
            address: String::new(),
            city: String::new(),
            postal_code: None,
            state: None,
            country: String::new(),
            coordinates: GeoLocation {
                latitude: "0.000000".into(),
                longitude: "0.000000".into(),
            },
            evse_uid: evse.clone(),
            evse_id: evse,
            connector_id: s.connector.to_string(),
            connector_standard: if dc { "IEC_62196_T2_COMBO" } else { "IEC_62196_T2" }.into(),
            connector_format: if dc { "CABLE" } else { "SOCKET" }.into(),
            connector_power_type: power.into(),
        },
        meter_id: b.eichrecht.meter_serial.clone(),
        tariffs: b
            .tariff_text
            .as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .into_iter()
            .collect(),
        last_updated: b.computed_at,
    };
    let mut v = cdr_json(&priced, &ctx).map_err(|e| CdrError::Unusable(s.id, e.to_string()))?;
    if let Some(sd) = signed_data(b) {
        v["signed_data"] = sd;
    }
    Ok(v)
}
