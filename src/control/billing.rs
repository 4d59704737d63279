//! Control methods of billing: tariffs and their assignments, repricing,
//! receipts, CDRs and meter keys. The work is `billing`'s; this file reads
//! the store, checks the request and shapes the answer.

use super::proto::*;
use super::server::{admin, internal, invalid};
use crate::billing::BillInput;
use crate::billing::receipt::{self, ReceiptError, ReceiptInput};
use crate::billing::{Bill, PriceSummary};
use crate::billing::{MeterKey, Scope, StoredTariff, cdr};
use crate::domain::DEFAULT_SITE;
use crate::domain::message::{CommandResult, ConfigEntry};
use crate::domain::{Sample, Session, SessionStatus};
use crate::ocmf::ocpp::{MeterKeySetting, meter_key_setting};
use crate::server::Shared;
use crate::store::{AdminOp, TariffAssign};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

fn not_found(m: String) -> ApiError {
    ApiError::new(ErrorKind::NotFound, m)
}

/// The tariff engine's validation, every problem on its own line.
fn tariff_errors(e: &crate::tariff::InputError) -> ApiError {
    let fields = e.fields();
    let body = if fields.is_empty() {
        e.to_string()
    } else {
        fields.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n")
    };
    ApiError::new(ErrorKind::Invalid, format!("the tariff is not valid:\n{body}"))
}

pub(super) async fn handle(shared: &Arc<Shared>, req: Request) -> Result<Value, ApiError> {
    let store = &shared.store;
    match req {
        Request::TariffSet {
            text,
            scope,
            from,
            until,
        } => {
            let t = crate::tariff::parse_tariff(&text).map_err(|e| tariff_errors(&e))?;
            if let (Some(f), Some(u)) = (from, until)
                && u <= f
            {
                return Err(invalid("until", "must be after --from"));
            }
            if scope.is_none() && (from.is_some() || until.is_some()) {
                return Err(invalid("from", "a validity period needs --site, --charger or --group"));
            }
            if let Some(Scope::Site(n) | Scope::Charger(n) | Scope::Group(n)) = &scope
                && n.trim().is_empty()
            {
                return Err(invalid("scope", "needs a name"));
            }
            let stored = StoredTariff {
                id: t.id.clone(),
                version: t.version.to_string(),
                currency: t.currency.clone(),
                text,
                updated_at: Utc::now(),
            };
            let assign = scope.map(|scope| TariffAssign { scope, from, until });
            let r = admin(
                shared,
                AdminOp::TariffSet {
                    tariff: Box::new(stored),
                    assign,
                },
            )
            .await?;
            // Running sessions may be priced differently now: tell their chargers.
            shared.ops.cost_nudge.notify_one();
            Ok(r)
        }
        Request::TariffList => {
            let assignments = store.assignments().map_err(internal)?;
            let list: Vec<Value> = store
                .tariffs()
                .map_err(internal)?
                .into_iter()
                .map(|t| {
                    let mine: Vec<_> = assignments.iter().filter(|a| a.tariff_id == t.id).collect();
                    json!({
                        "id": t.id,
                        "version": t.version,
                        "currency": t.currency,
                        "updated_at": t.updated_at,
                        "assignments": mine,
                    })
                })
                .collect();
            Ok(json!(list))
        }
        Request::TariffShow { id } => {
            let t = store
                .tariff(&id)
                .map_err(internal)?
                .ok_or_else(|| not_found(format!("no tariff {id}")))?;
            let assignments: Vec<_> = store
                .assignments()
                .map_err(internal)?
                .into_iter()
                .filter(|a| a.tariff_id == id)
                .collect();
            let ocpi: Value = serde_json::from_str(&t.text).unwrap_or(Value::Null);
            Ok(json!({
                "id": t.id,
                "version": t.version,
                "currency": t.currency,
                "updated_at": t.updated_at,
                "assignments": assignments,
                "tariff": ocpi,
                "text": t.text,
            }))
        }
        Request::TariffUnassign { id, at } => admin(shared, AdminOp::TariffUnassign { id, at }).await,
        Request::TariffRemove { id } => admin(shared, AdminOp::TariffRemove { id }).await,
        Request::SessionReprice { id } => admin(shared, AdminOp::SessionReprice { id }).await,
        Request::SessionCdr { id } => {
            let (s, bill) = session_and_bill(shared, id)?;
            let charger = store.charger(&s.charger).map_err(internal)?;
            let token = match &s.token {
                Some(uid) => store.token(uid).map_err(internal)?,
                None => None,
            };
            let site = charger.as_ref().map_or(DEFAULT_SITE, |c| c.site.as_str());
            cdr::cdr(&cdr::CdrInput {
                session: &s,
                charger: charger.as_ref(),
                token: token.as_ref(),
                site,
                bill: &bill,
            })
            .map_err(|e| match e {
                cdr::CdrError::NotPriced(..) => ApiError::new(ErrorKind::Conflict, e.to_string()),
                cdr::CdrError::Unusable(..) => ApiError::new(ErrorKind::Internal, e.to_string()),
            })
        }
        Request::Receipt { session, format } => {
            let (s, bill) = session_and_bill(shared, session)?;
            let fail = |e: ReceiptError| match e {
                ReceiptError::Unusable { .. } => ApiError::new(ErrorKind::Internal, e.to_string()),
                _ => ApiError::new(ErrorKind::Conflict, e.to_string()),
            };
            if format == ReceiptFormat::Xml {
                let xml = receipt::render_xml(s.id, &bill).map_err(fail)?;
                return Ok(json!({"format": "xml", "body": xml}));
            }
            let charger = store.charger(&s.charger).map_err(internal)?;
            let site = charger.as_ref().map_or(DEFAULT_SITE, |c| c.site.as_str());
            let r = receipt::receipt(&ReceiptInput {
                session: &s,
                charger: charger.as_ref(),
                site,
                bill: &bill,
            })
            .map_err(fail)?;
            Ok(match format {
                ReceiptFormat::Json => json!(r),
                _ => json!({"format": "text", "body": receipt::render_text(&r)}),
            })
        }
        Request::ChargerSetMeterKey { id, key, connector } => {
            crate::ocmf::PublicKey::parse(&key).map_err(|e| invalid("key", e))?;
            let key = MeterKey {
                connector,
                key: key.trim().to_string(),
                source: "set by the operator".into(),
                seen_at: Utc::now(),
            };
            admin(shared, AdminOp::MeterKey { charger: id, key }).await
        }
        other => Err(ApiError::new(
            ErrorKind::Internal,
            format!("{other:?} is not a billing request"),
        )),
    }
}

/// Sessions with their bills as the API shows them; an active one also
/// with what it costs so far: priced as if it ended at `now` at its last
/// meter reading, from its registers only (no signed data: an estimate for
/// the operator, not a bill). Tariffs, assignments and sites are read once
/// for the whole list, and only when one of them is active.
pub(super) fn views(
    shared: &Shared,
    sessions: Vec<(Session, Option<Bill>)>,
    mut samples: Option<Vec<Sample>>,
    now: DateTime<Utc>,
) -> Result<Vec<SessionView>, ApiError> {
    let mut prices: Option<Pricing> = None;
    let mut out = Vec::with_capacity(sessions.len());
    for (s, bill) in sessions {
        let so_far = if s.status == SessionStatus::Active {
            let pricing = match &mut prices {
                Some(p) => p,
                None => prices.insert(Pricing::load(shared)?),
            };
            pricing.so_far(shared, s.clone(), now)?
        } else {
            None
        };
        let mut view = SessionView::new(s, samples.take()).billed(bill);
        view.price_so_far = so_far;
        out.push(view);
    }
    Ok(out)
}

/// What pricing an active session needs, read once per request.
struct Pricing {
    assignments: Vec<crate::billing::Assignment>,
    tariffs: Vec<StoredTariff>,
    sites: Vec<crate::domain::Site>,
    site_of: HashMap<String, String>,
    group_of: HashMap<String, Option<String>>,
}

impl Pricing {
    fn load(shared: &Shared) -> Result<Pricing, ApiError> {
        let store = &shared.store;
        Ok(Pricing {
            assignments: store.assignments().map_err(internal)?,
            tariffs: store.tariffs().map_err(internal)?,
            sites: store.sites().map_err(internal)?,
            site_of: HashMap::new(),
            group_of: HashMap::new(),
        })
    }

    fn so_far(
        &mut self,
        shared: &Shared,
        mut s: Session,
        now: DateTime<Utc>,
    ) -> Result<Option<PriceSummary>, ApiError> {
        let store = &shared.store;
        let site = match self.site_of.entry(s.charger.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(
                store
                    .charger(&s.charger)
                    .map_err(internal)?
                    .map_or_else(|| DEFAULT_SITE.to_string(), |c| c.site),
            ),
        }
        .clone();
        let group = match &s.token {
            Some(uid) => match self.group_of.entry(uid.clone()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(store.token(uid).map_err(internal)?.and_then(|t| t.group)),
            }
            .clone(),
            None => None,
        };
        let timezone = self
            .sites
            .iter()
            .find(|x| x.name == site)
            .map_or("UTC", |x| x.timezone.as_str());
        let assignment = crate::billing::resolve(&self.assignments, s.started_at, &s.charger, &site, group.as_deref());
        let tariff = assignment.and_then(|a| self.tariffs.iter().find(|t| t.id == a.tariff_id));
        s.stopped_at = Some(now.max(s.started_at));
        s.meter_stop_wh = s.meter_last_wh.or(s.meter_start_wh);
        let bill = crate::billing::bill(&BillInput {
            session: &s,
            samples: &[],
            site: &site,
            timezone,
            group: group.as_deref(),
            assignment,
            tariff,
            meter_keys: &[],
            now,
        });
        Ok(bill.price)
    }
}

fn session_and_bill(shared: &Shared, id: u64) -> Result<(crate::domain::Session, crate::billing::Bill), ApiError> {
    let s = shared
        .store
        .session(id)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no session {id}")))?;
    if s.status == crate::domain::SessionStatus::Active {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            ReceiptError::InProgress(id).to_string(),
        ));
    }
    let bill = shared
        .store
        .bill(id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::new(ErrorKind::Conflict, format!("session {id} has no bill")))?;
    Ok((s, bill))
}

/// Meter public keys in a configuration answer (`MeterPublicKey[n]`,
/// `FiscalMetering.PublicKey`) are kept: sessions waiting for them are
/// verified again.
pub(super) async fn capture_meter_keys(shared: &Shared, charger: &str, result: &CommandResult) {
    let CommandResult::Config { entries, .. } = result else {
        return;
    };
    for ConfigEntry { key, value, .. } in entries {
        let (Some(setting), Some(value)) = (meter_key_setting(key), value.as_deref()) else {
            continue;
        };
        if crate::ocmf::PublicKey::parse(value).is_err() {
            continue;
        }
        let connector = match setting {
            MeterKeySetting::Charger => None,
            MeterKeySetting::Connector(n) => Some(n),
        };
        let op = AdminOp::MeterKey {
            charger: charger.to_string(),
            key: MeterKey {
                connector,
                key: value.trim().to_string(),
                source: format!("{key} (charger configuration)"),
                seen_at: Utc::now(),
            },
        };
        if let Err(e) = admin(shared, op).await {
            tracing::warn!(charger, "could not keep the meter key {key}: {e}");
        }
    }
}
