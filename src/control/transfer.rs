//! Firmware updates, campaigns, log fetches and DataTransfer history over
//! the control API. A request row is written before its CALL goes out, so
//! a charger's first status always finds it.

use super::proto::{ApiError, CampaignTargets, ErrorKind, FirmwareSource, Request};
use super::server::{admin, command, internal, invalid};
use crate::domain::message::{Command, CommandResult};
use crate::domain::transfer::{FirmwareOrder, FirmwareSignature, LogKind};
use crate::domain::{Charger, Registration};
use crate::server::Shared;
use crate::store::{AdminOp, TransferOp};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub(super) async fn handle(shared: &Shared, req: Request) -> Result<Value, ApiError> {
    let store = &shared.store;
    match req {
        Request::FirmwareAdd { path } => {
            let f = store_file(shared, path).await?;
            let url = crate::files::firmware_url(&shared.public_url, &f);
            Ok(json!({"sha256": f.sha256, "name": f.name, "bytes": f.bytes, "url": url}))
        }
        Request::FirmwareUpdate {
            id,
            source,
            retrieve_at,
            retries,
            signature,
        } => {
            known(shared, &id)?;
            online(shared, &id)?;
            let order = order(shared, source, retrieve_at, retries, signature).await?;
            let url = order.url.clone();
            let (request, result) = update_firmware(shared, &id, order, None).await?;
            Ok(json!({"request": request, "url": url, "answer": result}))
        }
        Request::FirmwareStatus { id } => {
            known(shared, &id)?;
            Ok(json!(store.firmware_requests(&id).map_err(internal)?))
        }
        Request::CampaignStart {
            source,
            targets,
            concurrency,
            retries,
            signature,
        } => {
            if concurrency == 0 {
                return Err(invalid("--concurrency", "must be at least 1"));
            }
            let chargers = select(shared, &targets)?;
            let order = order(shared, source, None, retries, signature).await?;
            let op = TransferOp::CampaignCreate {
                order,
                concurrency,
                chargers,
            };
            let created = admin(shared, AdminOp::Transfer(op)).await?;
            let id = created["id"].as_u64().unwrap_or_default();
            shared.campaign_wake.notify_one();
            campaign_view(shared, id)
        }
        Request::CampaignList => {
            let list: Vec<Value> = store
                .campaigns()
                .map_err(internal)?
                .into_iter()
                .map(|c| {
                    let progress = c.progress();
                    json!({"id": c.id, "created_at": c.created_at, "state": c.state, "url": c.order.url,
                           "concurrency": c.concurrency, "progress": progress})
                })
                .collect();
            Ok(json!(list))
        }
        Request::CampaignShow { id } => campaign_view(shared, id),
        Request::CampaignCancel { id } => {
            admin(shared, AdminOp::Transfer(TransferOp::CampaignCancel { id })).await?;
            campaign_view(shared, id)
        }
        Request::LogsFetch { id, kind, since } => {
            known(shared, &id)?;
            online(shared, &id)?;
            fetch_logs(shared, &id, kind, since).await
        }
        Request::LogsUploads { id } => {
            known(shared, &id)?;
            Ok(json!(store.log_requests(&id).map_err(internal)?))
        }
        Request::DataTransfers { id, limit } => {
            known(shared, &id)?;
            let events = store.data_transfers(&id, limit).map_err(internal)?;
            let list: Vec<Value> = events
                .into_iter()
                .map(|e| {
                    let mut v =
                        serde_json::from_str::<Value>(&e.detail).unwrap_or_else(|_| json!({"detail": e.detail}));
                    v["t"] = json!(e.t);
                    v
                })
                .collect();
            Ok(json!(list))
        }
        other => Err(ApiError::new(
            ErrorKind::Internal,
            format!("{other:?} is not a transfer request"),
        )),
    }
}

fn known(shared: &Shared, id: &str) -> Result<Charger, ApiError> {
    shared
        .store
        .charger(id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no charger {id}")))
}

/// A request is recorded only for a charger that can be asked now.
fn online(shared: &Shared, id: &str) -> Result<(), ApiError> {
    match shared.registry.live(id) {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            ErrorKind::NotConnected,
            format!("charger {id} is not connected"),
        )),
    }
}

async fn store_file(shared: &Shared, path: String) -> Result<crate::files::StoredFirmware, ApiError> {
    let p = std::path::PathBuf::from(&path);
    if !p.is_absolute() {
        return Err(invalid("--file", format!("{path:?} must be an absolute path")));
    }
    let data_dir = shared.config.data_dir.clone();
    tokio::task::spawn_blocking(move || crate::files::add_firmware(&data_dir, &p))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?
        .map_err(|e| invalid("--file", format!("{path}: {e}")))
}

async fn order(
    shared: &Shared,
    source: FirmwareSource,
    retrieve_at: Option<DateTime<Utc>>,
    retries: Option<u32>,
    signature: Option<FirmwareSignature>,
) -> Result<FirmwareOrder, ApiError> {
    let (url, sha256) = match source {
        FirmwareSource::Url(u) => {
            if !u.contains("://") || u.len() > 512 {
                return Err(invalid(
                    "--url",
                    format!("{u:?} is not an absolute URL of at most 512 characters"),
                ));
            }
            (u, None)
        }
        FirmwareSource::File(path) => {
            let f = store_file(shared, path).await?;
            (crate::files::firmware_url(&shared.public_url, &f), Some(f.sha256))
        }
    };
    if let Some(s) = &signature
        && (s.signature.is_empty() || !s.signing_cert.contains("BEGIN CERTIFICATE"))
    {
        return Err(invalid(
            "--signing-cert",
            "a signed update needs --signature and a PEM certificate",
        ));
    }
    Ok(FirmwareOrder {
        url,
        sha256,
        retrieve_at,
        retries,
        signature,
    })
}

/// Write the request, send UpdateFirmware, record the answer.
pub(super) async fn update_firmware(
    shared: &Shared,
    charger: &str,
    order: FirmwareOrder,
    campaign: Option<u64>,
) -> Result<(u64, CommandResult), ApiError> {
    let op = TransferOp::FirmwareCreate {
        charger: charger.to_string(),
        order: order.clone(),
        campaign,
    };
    let id = admin(shared, AdminOp::Transfer(op)).await?["id"]
        .as_u64()
        .unwrap_or_default();
    let request_id = i64::try_from(id).map_err(|_| ApiError::new(ErrorKind::Internal, "request ids exhausted"))?;
    let result = command(shared, charger, Command::UpdateFirmware { request_id, order }).await;
    let (accepted, answer) = match &result {
        Ok(r) => (true, status_of(r)),
        Err(e) => (false, e.message.clone()),
    };
    let op = TransferOp::FirmwareAnswered {
        charger: charger.to_string(),
        id,
        accepted,
        answer,
    };
    admin(shared, AdminOp::Transfer(op)).await?;
    result.map(|r| (id, r))
}

fn status_of(r: &CommandResult) -> String {
    match r {
        CommandResult::Status { status, .. } => status.clone(),
        _ => "Accepted".into(),
    }
}

async fn fetch_logs(
    shared: &Shared,
    charger: &str,
    kind: LogKind,
    since: Option<DateTime<Utc>>,
) -> Result<Value, ApiError> {
    let (token, token_hash) =
        crate::files::new_upload_token().map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    let op = TransferOp::LogCreate {
        charger: charger.to_string(),
        kind,
        since,
        token_hash,
    };
    let id = admin(shared, AdminOp::Transfer(op)).await?["id"]
        .as_u64()
        .unwrap_or_default();
    let request_id = i64::try_from(id).map_err(|_| ApiError::new(ErrorKind::Internal, "request ids exhausted"))?;
    let url = crate::files::upload_url(&shared.public_url, &token);
    let result = command(
        shared,
        charger,
        Command::GetLog {
            request_id,
            kind,
            url,
            since,
        },
    )
    .await;
    let (accepted, answer, filename) = match &result {
        Ok(CommandResult::Status { status, detail, .. }) => (true, status.clone(), detail.clone()),
        Ok(r) => (true, status_of(r), None),
        Err(e) => (false, e.message.clone(), None),
    };
    let op = TransferOp::LogAnswered {
        charger: charger.to_string(),
        id,
        accepted,
        answer: answer.clone(),
        filename: filename.clone(),
    };
    admin(shared, AdminOp::Transfer(op)).await?;
    result?;
    Ok(json!({"request": id, "status": answer, "filename": filename}))
}

/// The chargers a campaign selects, sorted and without repeats.
fn select(shared: &Shared, t: &CampaignTargets) -> Result<Vec<String>, ApiError> {
    let all = shared.store.chargers().map_err(internal)?;
    let mut out: Vec<String> = Vec::new();
    for id in &t.chargers {
        if !all.iter().any(|c| &c.id == id) {
            return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {id}")));
        }
        out.push(id.clone());
    }
    let accepted = all.iter().filter(|c| c.registration == Registration::Accepted);
    for c in accepted {
        let by_site = t.site.as_ref().is_some_and(|s| &c.site == s);
        let by_model = t.model.as_ref().is_some_and(|m| c.model.as_ref() == Some(m));
        if t.all || by_site || by_model {
            out.push(c.id.clone());
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(invalid(
            "--chargers",
            "the campaign selects no charger (use --chargers, --all, --site or --model)",
        ));
    }
    Ok(out)
}

fn campaign_view(shared: &Shared, id: u64) -> Result<Value, ApiError> {
    let c = shared
        .store
        .campaign(id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no campaign {id}")))?;
    let progress = c.progress();
    let mut v = json!(c);
    v["progress"] = json!(progress);
    Ok(v)
}
