//! The campaign runner: once a second (and when a campaign starts) it times
//! out targets that made no progress, then sends UpdateFirmware to queued
//! targets that are online while fewer than `concurrency` are in flight.
//! Everything it knows is in the store, so a restarted server resumes where
//! it stopped; the chargers' status notifications move the targets.

use super::proto::ErrorKind;
use crate::domain::transfer::{Campaign, CampaignState, FwState};
use crate::server::Shared;
use crate::store::{AdminOp, TransferOp};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        resume(&shared).await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shared.campaign_wake.notified() => {}
            }
            match shared.store.campaigns() {
                Ok(list) => {
                    for c in list.into_iter().filter(|c| c.state != CampaignState::Done) {
                        step(&shared, c).await;
                    }
                }
                Err(e) => tracing::warn!("campaigns unreadable: {e}"),
            }
        }
    })
}

/// After a restart: a target whose UpdateFirmware was written but never
/// answered (the server stopped between the two) goes back to the queue,
/// since nobody knows whether the charger got it. Nothing is in flight
/// yet: the runner is the only sender and has not started.
async fn resume(shared: &Shared) {
    let Ok(list) = shared.store.campaigns() else { return };
    for c in list.iter().filter(|c| c.state == CampaignState::Running) {
        for t in c.targets.iter().filter(|t| t.state == FwState::Sent) {
            let Some(request) = t.request else { continue };
            let unanswered = shared
                .store
                .firmware_requests(&t.charger)
                .map(|rs| rs.iter().any(|r| r.id == request && r.answer.is_none()))
                .unwrap_or(false);
            if !unanswered {
                continue;
            }
            target(
                shared,
                c.id,
                &t.charger,
                FwState::Queued,
                "sent again after a server restart".into(),
            )
            .await;
            let op = TransferOp::FirmwareAnswered {
                charger: t.charger.clone(),
                id: request,
                accepted: false,
                answer: "the server restarted before the charger answered".into(),
            };
            let _ = shared.store.admin(AdminOp::Transfer(op), Utc::now()).await;
        }
    }
}

async fn target(shared: &Shared, id: u64, charger: &str, state: FwState, detail: String) {
    let op = TransferOp::CampaignTarget {
        id,
        charger: charger.to_string(),
        state,
        detail,
    };
    if let Err(e) = shared.store.admin(AdminOp::Transfer(op), Utc::now()).await {
        tracing::warn!(campaign = id, charger, "campaign target not updated: {e}");
    }
}

async fn step(shared: &Shared, mut c: Campaign) {
    let now = Utc::now();
    let limit =
        chrono::Duration::seconds(i64::try_from(shared.config.files.firmware_step_timeout_s).unwrap_or(i64::MAX));
    for t in c
        .targets
        .iter_mut()
        .filter(|t| t.state.in_flight() && now - t.since > limit)
    {
        let op = match t.request {
            Some(id) => TransferOp::FirmwareTimeout {
                charger: t.charger.clone(),
                id,
            },
            None => TransferOp::CampaignTarget {
                id: c.id,
                charger: t.charger.clone(),
                state: FwState::Timeout,
                detail: "no progress".into(),
            },
        };
        if shared.store.admin(AdminOp::Transfer(op), now).await.is_ok() {
            t.state = FwState::Timeout;
        }
    }
    if c.state != CampaignState::Running {
        return;
    }
    let mut in_flight = c.in_flight();
    let slots = usize::try_from(c.concurrency).unwrap_or(usize::MAX);
    for t in c.targets.iter().filter(|t| t.state == FwState::Queued) {
        if in_flight >= slots {
            break;
        }
        // An offline charger keeps its place in the queue.
        if shared.registry.live(&t.charger).is_none() {
            continue;
        }
        match super::transfer::update_firmware(shared, &t.charger, c.order.clone(), Some(c.id)).await {
            Ok(_) => in_flight += 1,
            Err(e) if matches!(e.kind, ErrorKind::NotConnected | ErrorKind::Busy) => {
                target(shared, c.id, &t.charger, FwState::Queued, e.message).await;
            }
            // The refused request already moved the target to failed.
            Err(e) => tracing::info!(
                campaign = c.id,
                charger = t.charger,
                "update not accepted: {}",
                e.message
            ),
        }
    }
}
