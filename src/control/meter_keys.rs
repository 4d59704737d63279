//! Learning meter public keys: a 1.6 charger whose meter signs (OCMF in a
//! `SignedData` sampled value) but publishes its key only as the
//! configuration key `MeterPublicKey[n]` is asked for its configuration once,
//! the first time its signed data is seen and no key is known, and the key is
//! kept (`capture_meter_keys`). Off the charger's message path: the task reads
//! the journal feed, which may drop lines under load (then the next signed
//! value asks).

use super::billing::capture_meter_keys;
use crate::domain::message::Command;
use crate::domain::{Direction, Protocol, Registration};
use crate::server::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// Ask a charger again at most this often.
const RETRY: Duration = Duration::from_secs(600);

pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(watch(shared))
}

async fn watch(shared: Arc<Shared>) {
    let mut feed = shared.store.subscribe_journal();
    let mut asked: HashMap<String, Instant> = HashMap::new();
    loop {
        let j = match feed.recv().await {
            Ok(j) => j,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        if j.dir != Direction::In || !j.frame.contains("\"SignedData\"") {
            continue;
        }
        if asked.get(&j.charger).is_some_and(|t| t.elapsed() < RETRY) {
            continue;
        }
        if shared.store.meter_keys(&j.charger).is_ok_and(|k| !k.is_empty()) {
            continue;
        }
        let Ok(Some(ch)) = shared.store.charger(&j.charger) else {
            continue;
        };
        if ch.registration != Registration::Accepted
            || shared.registry.live(&ch.id).map(|l| l.protocol) != Some(Protocol::V16)
        {
            continue;
        }
        asked.insert(ch.id.clone(), Instant::now());
        let shared = shared.clone();
        tokio::spawn(async move {
            let cmd = Command::GetConfig { keys: vec![] };
            match shared
                .registry
                .call(&ch.id, cmd, shared.config.call_timeout() * 2)
                .await
            {
                Ok(result) => capture_meter_keys(&shared, &ch.id, &result).await,
                Err(e) => tracing::info!(charger = ch.id, "could not read the meter key: {e}"),
            }
        });
    }
}
