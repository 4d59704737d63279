//! The dashboard's side of the control API. One task follows the server's
//! `watch` stream (every journaled frame); a frame only marks the snapshots
//! stale, and another task refetches them, debounced, at most twice a
//! second (and every few seconds regardless, for what changes without a
//! frame, such as a connection dropping). Operator actions and detail
//! fetches each run on their own connection, so a charger that takes 30 s
//! to answer holds up nothing else. Results reach the update loop through
//! one bounded channel; when that is full, frames are counted as skipped
//! rather than waited for.

use super::state::{Act, Link, Snapshot};
use crate::control::client::{Client, ClientError, Target};
use crate::control::proto::{ErrorKind, Request, ServerStatus, SessionView, WatchItem};
use crate::domain::message::{Command, CommandResult, ConfigEntry};
use crate::domain::{JournalEntry, Protocol, SessionStatus};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// Sessions fetched per snapshot (the newest; active ones are among them
/// unless a site has this many running at once).
pub const SESSIONS: usize = 300;
/// Events fetched per snapshot, for alerts.
const EVENTS: usize = 200;
/// Frames shown when a charger's detail opens.
const HISTORY: usize = 100;
/// Smallest gap between two snapshot fetches.
const MIN_GAP: Duration = Duration::from_millis(500);
/// Refetch this often even when no frame arrives.
const IDLE_REFRESH: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(2);
/// 2.0.1 has no "all keys" read; these are the variables an operator
/// usually looks at first.
const V201_KEYS: &[&str] = &[
    "OCPPCommCtrlr.HeartbeatInterval",
    "OCPPCommCtrlr.NetworkProfileConnectionAttempts",
    "SampledDataCtrlr.TxUpdatedInterval",
    "SampledDataCtrlr.TxUpdatedMeasurands",
    "AlignedDataCtrlr.Interval",
    "AuthCtrlr.AuthorizeRemoteStart",
    "AuthCtrlr.LocalPreAuthorize",
    "TxCtrlr.EVConnectionTimeOut",
    "TxCtrlr.StopTxOnEVSideDisconnect",
    "SmartChargingCtrlr.Enabled",
    "SecurityCtrlr.SecurityProfile",
];

/// How an action ended, as the status line shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// With the charger's status word (Accepted, Unlocked, Scheduled…) or "done".
    Accepted(String),
    Rejected(String),
    Timeout(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub enum FeedMsg {
    Link(Link),
    Snapshot(Box<Snapshot>),
    Frame(JournalEntry),
    /// Frames that were skipped (by the server or here).
    Lagged(u64),
    Done {
        act: Act,
        outcome: Outcome,
    },
    ChargerLog {
        id: String,
        entries: Vec<JournalEntry>,
    },
    ChargerConfig {
        id: String,
        result: Result<Vec<ConfigEntry>, String>,
    },
    Session {
        id: u64,
        result: Result<Box<SessionView>, String>,
    },
    Receipt {
        id: u64,
        result: Result<String, String>,
    },
}

/// Work the update loop asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Act(Act),
    ChargerLog { id: String },
    ChargerConfig { id: String, protocol: Option<Protocol> },
    Session { id: u64 },
    Receipt { id: u64 },
}

/// The running feed; dropping it stops its tasks.
pub struct Feed {
    socket: Target,
    out: mpsc::Sender<FeedMsg>,
    stale: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Feed {
    pub fn start(socket: &Target) -> (Feed, mpsc::Receiver<FeedMsg>) {
        let (out, rx) = mpsc::channel(1024);
        let stale = Arc::new(Notify::new());
        let tasks = vec![
            tokio::spawn(follow(socket.clone(), out.clone(), stale.clone())),
            tokio::spawn(snapshots(socket.clone(), out.clone(), stale.clone())),
        ];
        let feed = Feed {
            socket: socket.clone(),
            out,
            stale,
            tasks,
        };
        (feed, rx)
    }

    /// Run `job` on its own connection; its result arrives as a `FeedMsg`.
    pub fn run(&mut self, job: Job) {
        let (socket, out, stale) = (self.socket.clone(), self.out.clone(), self.stale.clone());
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(tokio::spawn(async move {
            let is_act = matches!(job, Job::Act(_));
            let msg = perform(&socket, job).await;
            let _ = out.send(msg).await;
            if is_act {
                stale.notify_one();
            }
        }));
    }
}

/// Follow the journal; every frame marks the snapshots stale.
async fn follow(socket: Target, out: mpsc::Sender<FeedMsg>, stale: Arc<Notify>) {
    loop {
        let mut client = match socket.connect().await {
            Ok(c) => c,
            Err(e) => {
                let _ = out.send(FeedMsg::Link(Link::Down(e.to_string()))).await;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Err(e) = client.call(Request::Watch { charger: None }).await {
            let _ = out.send(FeedMsg::Link(Link::Down(e.to_string()))).await;
            tokio::time::sleep(RETRY).await;
            continue;
        }
        let _ = out.send(FeedMsg::Link(Link::Up)).await;
        stale.notify_one();
        let mut skipped = 0u64;
        loop {
            let msg = match client.next_watch_item().await {
                Ok(WatchItem::Journal(j)) => FeedMsg::Frame(j),
                Ok(WatchItem::Lagged(n)) => FeedMsg::Lagged(n),
                Err(e) => {
                    let _ = out.send(FeedMsg::Link(Link::Down(e.to_string()))).await;
                    break;
                }
            };
            stale.notify_one();
            if skipped > 0 && out.try_send(FeedMsg::Lagged(skipped)).is_ok() {
                skipped = 0;
            }
            if out.try_send(msg).is_err() {
                skipped += 1;
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Refetch the snapshots when stale, at most every `MIN_GAP`.
async fn snapshots(socket: Target, out: mpsc::Sender<FeedMsg>, stale: Arc<Notify>) {
    let mut client: Option<Client> = None;
    loop {
        tokio::select! {
            _ = stale.notified() => {}
            _ = tokio::time::sleep(IDLE_REFRESH) => {}
        }
        let started = tokio::time::Instant::now();
        if client.is_none() {
            client = socket.connect().await.ok();
        }
        if let Some(c) = client.as_mut() {
            match fetch(c).await {
                Ok(s) => {
                    if out.send(FeedMsg::Snapshot(Box::new(s))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    client = None;
                    let _ = out.send(FeedMsg::Link(Link::Down(e.to_string()))).await;
                }
            }
        }
        // Frames that arrive meanwhile leave one wake-up behind: a burst
        // costs one more fetch, not one per frame.
        tokio::time::sleep_until(started + MIN_GAP).await;
    }
}

async fn get<T: DeserializeOwned>(c: &mut Client, req: Request) -> Result<T, ClientError> {
    let v = c.call(req).await?;
    serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))
}

async fn fetch(c: &mut Client) -> Result<Snapshot, ClientError> {
    let status: ServerStatus = get(c, Request::Status).await?;
    let chargers = get(c, Request::ChargerList).await?;
    let sessions: Vec<SessionView> = get(
        c,
        Request::SessionList {
            charger: None,
            status: None,
            limit: Some(SESSIONS),
        },
    )
    .await?;
    // Running sessions older than the newest SESSIONS still belong on screen.
    let mut sessions_truncated = false;
    let sessions = if sessions.len() >= SESSIONS {
        sessions_truncated = true;
        let mut active: Vec<SessionView> = get(
            c,
            Request::SessionList {
                charger: None,
                status: Some(SessionStatus::Active),
                limit: None,
            },
        )
        .await?;
        active.retain(|a| !sessions.iter().any(|s| s.id == a.id));
        sessions.into_iter().chain(active).collect()
    } else {
        sessions
    };
    Ok(Snapshot {
        at: Some(chrono::Utc::now()),
        status: Some(status),
        chargers,
        sessions,
        sessions_truncated,
        dlm: get(c, Request::DlmStatus).await?,
        events: get(c, Request::Events { limit: EVENTS }).await?,
        sites: get(c, Request::SiteList).await?,
    })
}

/// The control request an action is: the very ones the CLI sends.
pub fn request(act: &Act) -> Request {
    let command = |id: &str, command: Command| Request::ChargerCommand {
        id: id.to_string(),
        command,
    };
    match act.clone() {
        Act::Reset { charger, hard } => command(&charger, Command::Reset { hard }),
        Act::Unlock {
            charger,
            evse,
            connector,
        } => command(&charger, Command::Unlock { evse, connector }),
        Act::Availability {
            charger,
            operative,
            evse,
        } => command(&charger, Command::Availability { operative, evse }),
        Act::Accept { charger } => Request::ChargerAccept { id: charger },
        Act::RemoteStart { charger, token, evse } => Request::SessionStart { charger, token, evse },
        Act::RemoteStop { session, .. } => Request::SessionStop { id: session },
        Act::BlockToken { uid } => Request::TokenBlock { uid, blocked: true },
        Act::CircuitLimit { circuit, max_current } => Request::CircuitSetLimit {
            id: circuit,
            max_current: Some(max_current),
            safe_current: None,
            max_power_w: None,
        },
    }
}

fn outcome(r: Result<Value, ClientError>) -> Outcome {
    match r {
        Ok(v) => Outcome::Accepted(v.get("status").and_then(Value::as_str).unwrap_or("done").to_string()),
        Err(ClientError::Api(e)) => match e.kind {
            ErrorKind::Rejected => Outcome::Rejected(e.message),
            ErrorKind::Timeout => Outcome::Timeout(e.message),
            _ => Outcome::Failed(e.message),
        },
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

async fn call(socket: &Target, req: Request) -> Result<Value, ClientError> {
    socket.connect().await?.call(req).await
}

async fn perform(socket: &Target, job: Job) -> FeedMsg {
    match job {
        Job::Act(act) => {
            let outcome = outcome(call(socket, request(&act)).await);
            FeedMsg::Done { act, outcome }
        }
        Job::ChargerLog { id } => {
            let req = Request::ChargerLogs {
                id: id.clone(),
                since: None,
                limit: HISTORY,
                follow: false,
            };
            let entries = match call(socket, req).await {
                Ok(v) => serde_json::from_value(v).unwrap_or_default(),
                Err(_) => vec![],
            };
            FeedMsg::ChargerLog { id, entries }
        }
        Job::ChargerConfig { id, protocol } => {
            let keys = match protocol {
                Some(Protocol::V201) => V201_KEYS.iter().map(|k| k.to_string()).collect(),
                _ => vec![],
            };
            let req = Request::ChargerCommand {
                id: id.clone(),
                command: Command::GetConfig { keys },
            };
            let result = match call(socket, req).await {
                Ok(v) => match serde_json::from_value::<CommandResult>(v) {
                    Ok(CommandResult::Config { entries, .. }) => Ok(entries),
                    Ok(_) => Err("the charger sent no configuration".to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            FeedMsg::ChargerConfig { id, result }
        }
        Job::Session { id } => {
            let result = match call(socket, Request::SessionShow { id }).await {
                Ok(v) => serde_json::from_value(v).map(Box::new).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            FeedMsg::Session { id, result }
        }
        Job::Receipt { id } => {
            let req = Request::Receipt {
                session: id,
                format: crate::control::proto::ReceiptFormat::Text,
            };
            let result = match call(socket, req).await {
                Ok(v) => Ok(v.get("body").and_then(Value::as_str).unwrap_or_default().to_string()),
                Err(e) => Err(e.to_string()),
            };
            FeedMsg::Receipt { id, result }
        }
    }
}
