//! Charger operations over the control API: local lists, reservations,
//! requested availability, transaction status and display messages.

use super::local_list::{self, Mode};
use super::proto::{ApiError, ErrorKind, Request};
use super::server::{admin, command, internal, invalid};
use crate::domain::message::{Command, CommandResult};
use crate::domain::ops::{DisplayMessage, ReservationStatus};
use crate::domain::{ChargerTxRef, Protocol, TokenKind};
use crate::server::Shared;
use crate::store::{AdminOp, OpsOp};
use chrono::Utc;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A number for a message or request id, unique enough per charger and
/// within the 32-bit integers OCPP allows.
fn fresh_id() -> i64 {
    (Utc::now().timestamp_millis() % i64::from(i32::MAX)).max(1)
}

pub(super) async fn handle(shared: &Arc<Shared>, req: Request) -> Result<Value, ApiError> {
    let store = &shared.store;
    match req {
        Request::LocalListSync { id, site, groups, full } => {
            let mode = if full { Mode::Full } else { Mode::Operator };
            let ids: Vec<String> = match (id, site) {
                (Some(id), None) => vec![id],
                (None, Some(site)) => {
                    let ids: Vec<String> = store
                        .chargers()
                        .map_err(internal)?
                        .into_iter()
                        .filter(|c| c.site == site)
                        .map(|c| c.id)
                        .collect();
                    if ids.is_empty() {
                        return Err(ApiError::new(ErrorKind::NotFound, format!("no charger at site {site}")));
                    }
                    ids
                }
                _ => return Err(invalid("charger", "give a charger id or --site, not both")),
            };
            if ids.len() == 1 {
                let r = local_list::sync(shared, &ids[0], mode, groups).await?;
                return Ok(json!(r));
            }
            // A site: each charger's outcome; one offline charger does not stop the others.
            let mut out = Vec::new();
            for id in ids {
                match local_list::sync(shared, &id, mode, groups.clone()).await {
                    Ok(r) => out.push(json!(r)),
                    Err(e) => out.push(json!({"charger": id, "error": e.message})),
                }
            }
            Ok(json!(out))
        }
        Request::LocalListVersion { id } => {
            let tracked = store.local_list(&id).map_err(internal)?;
            let r = command(shared, &id, Command::GetLocalListVersion).await?;
            let version = match r {
                CommandResult::ListVersion { version } => version,
                _ => -1,
            };
            Ok(json!({
                "charger": id,
                "version": version,
                "managed": tracked.is_some(),
                "confirmed_version": tracked.as_ref().map(|l| l.version),
                "entries": tracked.as_ref().map(|l| l.entries.len()),
                "hash": tracked.as_ref().map(|l| l.hash.clone()),
                "groups": tracked.as_ref().map(|l| l.groups.clone()),
                "not_supported": tracked.as_ref().is_some_and(|l| l.not_supported),
                "synced_at": tracked.as_ref().and_then(|l| l.synced_at),
                "last_error": tracked.and_then(|l| l.last_error),
            }))
        }
        Request::ReservationAdd {
            charger,
            token,
            evse,
            expires,
        } => {
            let now = Utc::now();
            if expires <= now {
                return Err(invalid("expires", "must be in the future"));
            }
            if evse == Some(0) {
                return Err(invalid(
                    "connector",
                    "must be 1 or more (leave it out for any connector)",
                ));
            }
            let proto = store.charger(&charger).map_err(internal)?.and_then(|c| c.protocol);
            if proto == Some(Protocol::V16) && token.len() > 20 {
                return Err(invalid("token", "an OCPP 1.6 idTag is at most 20 characters"));
            }
            let op = OpsOp::ReservationAdd {
                charger: charger.clone(),
                evse,
                token: token.clone(),
                expires,
            };
            let stored = admin(shared, AdminOp::Ops(op)).await?;
            let id = stored["id"].as_u64().unwrap_or(0);
            let group = stored["group"].as_str().map(str::to_string);
            let kind = store
                .token(&token)
                .map_err(internal)?
                .map_or(TokenKind::Rfid, |t| t.kind);
            let cmd = Command::ReserveNow {
                id,
                token,
                kind,
                group,
                evse,
                expires,
            };
            let (status, detail, outcome) = match command(shared, &charger, cmd).await {
                Ok(_) => (ReservationStatus::Accepted, "charger accepted".to_string(), Ok(())),
                Err(e) => {
                    let answer = match &e.result {
                        Some(CommandResult::Status { status, .. }) => format!("charger answered {status}"),
                        _ => e.message.clone(),
                    };
                    (ReservationStatus::Rejected, answer, Err(e))
                }
            };
            let r = admin(shared, AdminOp::Ops(OpsOp::ReservationSet { id, status, detail })).await?;
            outcome.map(|()| r).map_err(|mut e| {
                e.message = format!("reservation {id} not made: {}", e.message);
                e
            })
        }
        Request::ReservationList { charger, limit } => {
            Ok(json!(store.reservations(charger.as_deref(), limit).map_err(internal)?))
        }
        Request::ReservationCancel { id } => {
            let Some(r) = store.reservation(id).map_err(internal)? else {
                return Err(ApiError::new(ErrorKind::NotFound, format!("no reservation {id}")));
            };
            if !r.status.open() {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!(
                        "reservation {id} is already {}",
                        json!(r.status).as_str().unwrap_or("closed")
                    ),
                ));
            }
            let detail = match command(shared, &r.charger, Command::CancelReservation { id }).await {
                Ok(_) => "cancelled by the operator".to_string(),
                // The charger no longer holds it (expired or used there): nothing left to cancel.
                Err(e) if e.kind == ErrorKind::Rejected && e.result.is_some() => {
                    "cancelled by the operator; the charger did not hold it any more".to_string()
                }
                Err(e) => return Err(e),
            };
            let op = OpsOp::ReservationSet {
                id,
                status: ReservationStatus::Cancelled,
                detail,
            };
            admin(shared, AdminOp::Ops(op)).await
        }
        Request::ChargerAvailability { id } => {
            let Some(ch) = store.charger(&id).map_err(internal)? else {
                return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {id}")));
            };
            let requested = store.availability(&id).map_err(internal)?;
            let connectors: Vec<Value> = ch
                .connectors
                .iter()
                .map(|c| json!({"evse": c.evse, "connector": c.connector, "status": c.status}))
                .collect();
            Ok(json!({"charger": id, "requested": requested, "connectors": connectors}))
        }
        Request::ChargerTxStatus { id, transaction } => {
            let transaction_id = match transaction {
                None => None,
                Some(t) => Some(charger_tx_id(shared, &id, &t)?),
            };
            let r = command(
                shared,
                &id,
                Command::GetTransactionStatus {
                    transaction_id: transaction_id.clone(),
                },
            )
            .await?;
            let CommandResult::TransactionStatus {
                ongoing,
                messages_in_queue,
                ..
            } = r
            else {
                return Ok(json!(r));
            };
            Ok(json!({
                "charger": id,
                "transaction_id": transaction_id,
                "ongoing": ongoing,
                "messages_in_queue": messages_in_queue,
            }))
        }
        Request::ChargerMessageSet {
            id,
            text,
            priority,
            state,
            from,
            until,
            session,
            message_id,
        } => {
            if text.is_empty() || text.chars().count() > 512 {
                return Err(invalid("text", "must be 1 to 512 characters"));
            }
            if let (Some(f), Some(u)) = (from, until)
                && u <= f
            {
                return Err(invalid("until", "must be after --from"));
            }
            let transaction_id = session
                .map(|s| charger_tx_id(shared, &id, &s.to_string()))
                .transpose()?;
            let message = DisplayMessage {
                id: message_id.unwrap_or_else(fresh_id),
                priority,
                state,
                from,
                until,
                transaction_id,
                text,
                language: None,
            };
            let r = command(
                shared,
                &id,
                Command::SetDisplayMessage {
                    message: message.clone(),
                },
            )
            .await?;
            Ok(json!({"charger": id, "message": message, "result": r}))
        }
        Request::ChargerMessageList { id } => {
            let request_id = fresh_id();
            match command(shared, &id, Command::GetDisplayMessages { request_id }).await {
                Ok(_) => {}
                // Unknown: the charger has no message matching (here: none at all).
                Err(ApiError {
                    result: Some(CommandResult::Status { status, .. }),
                    ..
                }) if status == "Unknown" => return Ok(json!([])),
                Err(e) => return Err(e),
            }
            // The messages follow in NotifyDisplayMessages; wait for the last part.
            let deadline = tokio::time::Instant::now() + shared.config.call_timeout();
            loop {
                if let Some(r) = store.display_report(&id).map_err(internal)?
                    && r.request_id == request_id
                    && r.complete
                {
                    return Ok(json!(r.messages));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(ApiError::new(
                        ErrorKind::Timeout,
                        format!("charger {id} accepted GetDisplayMessages but sent no NotifyDisplayMessages"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        other => Err(ApiError::new(
            ErrorKind::Internal,
            format!("{other:?} is not a charger operation"),
        )),
    }
}

/// The charger's transaction id for `t`: one of our session ids on that
/// charger (started over 2.0.1), or the charger's own id as given.
fn charger_tx_id(shared: &Shared, charger: &str, t: &str) -> Result<String, ApiError> {
    if let Ok(n) = t.parse::<u64>()
        && let Some(s) = shared.store.session(n).map_err(internal)?
        && s.charger == charger
    {
        return match s.tx_ref {
            ChargerTxRef::V201 { transaction_id } => Ok(transaction_id),
            ChargerTxRef::V16 { .. } => Err(invalid("transaction", format!("session {n} was started over OCPP 1.6"))),
        };
    }
    Ok(t.to_string())
}

/// What a command answered that voltyard keeps: the availability asked for.
pub(super) async fn after_command(
    shared: &Shared,
    charger: &str,
    cmd: &Command,
    result: &CommandResult,
) -> Result<(), ApiError> {
    if let (Command::Availability { operative, evse }, CommandResult::Status { status, .. }) = (cmd, result) {
        let op = OpsOp::Availability {
            charger: charger.to_string(),
            evse: evse.unwrap_or(0),
            operative: *operative,
            scheduled: status == "Scheduled",
        };
        admin(shared, AdminOp::Ops(op)).await?;
    }
    Ok(())
}

/// Names the trigger kinds of the charger's version for one it does not have.
pub(super) fn check_trigger(shared: &Shared, charger: &str, cmd: &Command) -> Result<(), ApiError> {
    let Command::Trigger { message, .. } = cmd else {
        return Ok(());
    };
    let proto = match shared.registry.live(charger) {
        Some(l) => Some(l.protocol),
        None => shared
            .store
            .charger(charger)
            .map_err(internal)?
            .and_then(|c| c.protocol),
    };
    let Some(proto) = proto else { return Ok(()) };
    let kinds = crate::ocpp::trigger_kinds(proto);
    if kinds.contains(&message.as_str()) {
        return Ok(());
    }
    let version = if proto == Protocol::V16 { "1.6" } else { "2.0.1" };
    Err(invalid(
        "message",
        format!(
            "{message:?} is not a trigger kind of OCPP {version}; valid: {}",
            kinds.join(", ")
        ),
    ))
}
