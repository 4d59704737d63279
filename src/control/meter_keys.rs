//! Learning meter public keys: a 1.6 charger whose meter signs (OCMF in a
//! `SignedData` sampled value) but publishes its key only as the
//! configuration key `MeterPublicKey[n]` is asked for its configuration once,
//! the first time its signed data is seen and no key is known, and the key is
//! kept (`capture_meter_keys`). Off the charger's message path: a
//! connection only notes the charger (`SignedSeen::note`, never waiting);
//! a note dropped because the queue is full is repeated by the next signed
//! value.

use super::billing::capture_meter_keys;
use crate::domain::message::Command;
use crate::domain::{Protocol, Registration};
use crate::server::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Ask a charger again at most this often.
const RETRY: Duration = Duration::from_secs(600);

/// Chargers whose signed meter data was just seen.
pub struct SignedSeen {
    tx: mpsc::Sender<String>,
    rx: Mutex<Option<mpsc::Receiver<String>>>,
}

impl Default for SignedSeen {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(1024);
        SignedSeen {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl SignedSeen {
    pub fn note(&self, charger: &str) {
        let _ = self.tx.try_send(charger.to_string());
    }
}

pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(watch(shared))
}

async fn watch(shared: Arc<Shared>) {
    let taken = shared.signed_seen.rx.lock().ok().and_then(|mut rx| rx.take());
    let Some(mut seen) = taken else { return };
    let mut asked: HashMap<String, Instant> = HashMap::new();
    while let Some(charger) = seen.recv().await {
        if asked.get(&charger).is_some_and(|t| t.elapsed() < RETRY) {
            continue;
        }
        if shared.store.meter_keys(&charger).is_ok_and(|k| !k.is_empty()) {
            continue;
        }
        let Ok(Some(ch)) = shared.store.charger(&charger) else {
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
