//! The server's own work for charger operations: expiring reservations and
//! sending 2.0.1 chargers the running cost of their sessions.

use crate::domain::message::Command;
use crate::domain::{ChargerTxRef, Protocol};
use crate::server::Shared;
use crate::store::{AdminOp, OpsOp};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often reservations past their expiry are marked expired.
const SWEEP: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct OpsState {
    pub local_lists: super::local_list::SyncLocks,
    /// Wakes the cost updates early (a tariff changed).
    pub cost_nudge: tokio::sync::Notify,
}

pub fn spawn(shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(sweep(shared.clone()))];
    if shared.config.cost_update_interval_s > 0 {
        tasks.push(tokio::spawn(cost_updates(shared)));
    }
    tasks
}

/// The charger expires a reservation by itself; the server marks it so
/// that it no longer refuses other tokens and the operator sees it.
async fn sweep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SWEEP);
    loop {
        tick.tick().await;
        let now = Utc::now();
        match shared.store.open_reservation_due(now) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!("reservation sweep: {e}");
                continue;
            }
        }
        if let Err(e) = shared.store.admin(AdminOp::Ops(OpsOp::ReservationsExpire), now).await {
            tracing::warn!("reservation sweep: {e}");
        }
    }
}

async fn cost_updates(shared: Arc<Shared>) {
    let every = Duration::from_secs(shared.config.cost_update_interval_s);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shared.ops.cost_nudge.notified() => {}
        }
        if let Err(e) = send_costs(&shared).await {
            tracing::warn!("cost updates: {}", e.message);
        }
    }
}

/// CostUpdated to each 2.0.1 charger online, for each of its running
/// sessions that a tariff prices. Sent one after the other: a slow charger
/// delays the next round, never the server.
async fn send_costs(shared: &Shared) -> Result<(), super::proto::ApiError> {
    let mut tx_ids = HashMap::new();
    let mut active = Vec::new();
    for s in shared.store.active_sessions().map_err(super::server::internal)? {
        let online201 = shared
            .registry
            .live(&s.charger)
            .is_some_and(|l| l.protocol == Protocol::V201);
        if let (true, ChargerTxRef::V201 { transaction_id }) = (online201, &s.tx_ref) {
            tx_ids.insert(s.id, transaction_id.clone());
            active.push((s, None));
        }
    }
    if active.is_empty() {
        return Ok(());
    }
    for v in super::billing::views(shared, active, None, Utc::now())? {
        let (Some(price), Some(transaction_id)) = (&v.price_so_far, tx_ids.remove(&v.id)) else {
            continue;
        };
        let cmd = Command::CostUpdated {
            transaction_id,
            total: price.total_incl_vat,
        };
        if let Err(e) = shared
            .registry
            .call(&v.charger, cmd, shared.config.call_timeout())
            .await
        {
            tracing::debug!(charger = v.charger, "CostUpdated: {e}");
        }
    }
    Ok(())
}
