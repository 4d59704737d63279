//! Who is connected right now, and the door to each connection for
//! server-initiated calls. The lock is never held across an await.

use crate::domain::Protocol;
use crate::domain::message::{Command, CommandResult};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Calls one connection may have waiting before we refuse more.
pub const CALL_QUEUE: usize = 64;

#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CallError {
    #[error("charger {0} is not connected")]
    NotConnected(String),
    #[error("charger {0} has too many commands waiting; try again shortly")]
    Busy(String),
    #[error("charger did not answer within {0} s")]
    Timeout(u64),
    #[error("charger answered {code}: {description}")]
    Remote { code: String, description: String },
    /// The operator's request cannot be expressed for this charger.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadAnswer(String),
    #[error("the connection closed before the charger answered")]
    Closed,
}

pub struct CallRequest {
    /// Boxed: every connection's call queue preallocates a block of slots,
    /// and `Command`'s largest variant would make each slot hundreds of bytes.
    pub cmd: Box<Command>,
    pub reply: oneshot::Sender<Result<CommandResult, CallError>>,
}

/// What a connection task gets when it registers.
pub struct Registration {
    pub generation: u64,
    pub calls: mpsc::Receiver<CallRequest>,
    pub replaced: oneshot::Receiver<()>,
    pub last_seen: Arc<AtomicI64>,
}

struct Entry {
    generation: u64,
    protocol: Protocol,
    since: DateTime<Utc>,
    last_seen: Arc<AtomicI64>,
    calls: mpsc::Sender<CallRequest>,
    replace: Option<oneshot::Sender<()>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub protocol: Protocol,
    pub since: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
    next_generation: AtomicU64,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every update is a single insert/remove), so poisoning is ignored.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a new connection; an older one for the same id is told to close.
    pub fn register(&self, id: &str, protocol: Protocol, now: DateTime<Utc>) -> Registration {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, calls) = mpsc::channel(CALL_QUEUE);
        let (replace, replaced) = oneshot::channel();
        let last_seen = Arc::new(AtomicI64::new(now.timestamp_millis()));
        let entry = Entry {
            generation,
            protocol,
            since: now,
            last_seen: last_seen.clone(),
            calls: tx,
            replace: Some(replace),
        };
        if let Some(mut old) = self.lock().insert(id.to_string(), entry)
            && let Some(tx) = old.replace.take()
        {
            let _ = tx.send(());
        }
        Registration {
            generation,
            calls,
            replaced,
            last_seen,
        }
    }

    /// Remove a connection, unless a newer one has taken its place.
    pub fn unregister(&self, id: &str, generation: u64) {
        let mut map = self.lock();
        if map.get(id).is_some_and(|e| e.generation == generation) {
            map.remove(id);
        }
    }

    pub fn live(&self, id: &str) -> Option<Live> {
        self.lock().get(id).map(|e| Live {
            protocol: e.protocol,
            since: e.since,
            last_seen: DateTime::from_timestamp_millis(e.last_seen.load(Ordering::Relaxed)).unwrap_or(e.since),
        })
    }

    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// Send a command and wait for the charger's answer. The connection
    /// enforces the response timeout; `wait` only guards against a
    /// connection that never answers its queue.
    pub async fn call(&self, id: &str, cmd: Command, wait: Duration) -> Result<CommandResult, CallError> {
        let sender = self.lock().get(id).map(|e| e.calls.clone());
        let Some(sender) = sender else {
            return Err(CallError::NotConnected(id.to_string()));
        };
        let (reply, rx) = oneshot::channel();
        sender
            .try_send(CallRequest {
                cmd: Box::new(cmd),
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => CallError::Busy(id.to_string()),
                mpsc::error::TrySendError::Closed(_) => CallError::NotConnected(id.to_string()),
            })?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(CallError::Closed),
            Err(_) => Err(CallError::Timeout(wait.as_secs())),
        }
    }
}
