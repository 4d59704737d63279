//! The single writer: every change is an `Op` sent to one thread, which
//! drains whatever is queued into one write transaction and commits it with
//! fsync (group commit). A caller hears back only after its change is on
//! disk, so "durable before acknowledged" holds without capping throughput:
//! while one commit is in flight, the next batch is queuing.

use super::apply::{self, AdminOp, AdminResult, Cache, Ctx, InboundOutcome};
use super::{Result, StoreError, migrate};
use crate::domain::admission::BootPolicy;
use crate::domain::message::Inbound;
use crate::domain::{Direction, JournalEntry};
use crate::ocpp::Rejection;
use chrono::{DateTime, Utc};
use redb::Database;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Most ops one transaction takes; bounds the latency of a batch.
const MAX_BATCH: usize = 1024;

/// A charger message's effect, or why it was refused.
pub type Applied = std::result::Result<InboundOutcome, Rejection>;

/// Renders the frame that answers a message (the caller's protocol, which
/// the store does not know), so the answer is journaled in the same
/// transaction as the message.
pub type Answer = Box<dyn FnOnce(&Applied) -> String + Send>;

pub(super) enum Op {
    Inbound {
        charger: String,
        frame: String,
        t: DateTime<Utc>,
        msg: Inbound,
        answer: Option<Answer>,
        reply: oneshot::Sender<Result<(Applied, String)>>,
    },
    Journal {
        charger: String,
        dir: Direction,
        frame: String,
        t: DateTime<Utc>,
    },
    Admin {
        op: AdminOp,
        t: DateTime<Utc>,
        reply: oneshot::Sender<Result<AdminResult>>,
    },
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    tx: mpsc::Sender<Op>,
    journal_feed: broadcast::Sender<JournalEntry>,
    counters: Arc<Counters>,
}

/// What the writer counts for `status`.
#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    commit_us: AtomicU64,
    boots_deferred: AtomicU64,
}

impl Store {
    /// Open (or create) the database and start the writer thread, with
    /// the default boot answers (`open_with` for the server's own).
    pub fn open(path: &Path) -> Result<Store> {
        let boot = BootPolicy {
            heartbeat_interval: 300,
            admission: Default::default(),
        };
        Self::open_with(path, boot, 128 << 20)
    }

    /// `boot`: the interval given to accepted chargers and admission
    /// control; `cache_bytes`: redb's page cache.
    pub fn open_with(path: &Path, boot: BootPolicy, cache_bytes: usize) -> Result<Store> {
        let db = redb::Builder::new().set_cache_size(cache_bytes).create(path)?;
        migrate::run(&db)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel(8192);
        let (journal_feed, _) = broadcast::channel(4096);
        let counters = Arc::new(Counters::default());
        let store = Store {
            db: db.clone(),
            tx,
            journal_feed: journal_feed.clone(),
            counters: counters.clone(),
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(db, rx, journal_feed, counters, boot))
            .map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        Ok(store)
    }

    pub(super) fn db(&self) -> &Database {
        &self.db
    }

    /// Number of write transactions committed since start.
    pub fn commits(&self) -> u64 {
        self.counters.commits.load(Ordering::Relaxed)
    }

    /// Time spent in write transactions (apply and commit) since start, µs.
    pub fn commit_time_us(&self) -> u64 {
        self.counters.commit_us.load(Ordering::Relaxed)
    }

    /// BootNotifications answered Pending by admission control since start.
    pub fn boots_deferred(&self) -> u64 {
        self.counters.boots_deferred.load(Ordering::Relaxed)
    }

    /// Apply a charger's message, journal it and the answer `answer`
    /// renders from the outcome; returns both once durable.
    pub async fn inbound(
        &self,
        charger: &str,
        frame: String,
        t: DateTime<Utc>,
        msg: Inbound,
        answer: Answer,
    ) -> Result<(Applied, String)> {
        let (reply, rx) = oneshot::channel();
        let op = Op::Inbound {
            charger: charger.to_string(),
            frame,
            t,
            msg,
            answer: Some(answer),
            reply,
        };
        self.tx.send(op).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Journal a frame that changes nothing (our calls, the charger's
    /// answers, refused frames) without waiting for the commit. Waits only
    /// for room in the writer's queue: a connection whose frames the disk
    /// cannot keep up with slows down rather than lose journal lines.
    pub async fn record_frame(&self, charger: &str, dir: Direction, frame: String, t: DateTime<Utc>) {
        let op = Op::Journal {
            charger: charger.to_string(),
            dir,
            frame,
            t,
        };
        if self.tx.send(op).await.is_err() {
            tracing::warn!(charger, "store closed: frame not journaled");
        }
    }

    pub async fn admin(&self, op: AdminOp, t: DateTime<Utc>) -> Result<AdminResult> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Admin { op, t, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Live feed of journaled frames, for `charger logs --follow`.
    pub fn subscribe_journal(&self) -> broadcast::Receiver<JournalEntry> {
        self.journal_feed.subscribe()
    }
}

fn run(
    db: Arc<Database>,
    mut rx: mpsc::Receiver<Op>,
    feed: broadcast::Sender<JournalEntry>,
    counters: Arc<Counters>,
    boot: BootPolicy,
) {
    let mut cache = Cache::default();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        match commit_batch(&db, &mut batch, &mut cache, &boot) {
            Ok((results, journaled)) => {
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                counters.commit_us.fetch_add(took, Ordering::Relaxed);
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .boots_deferred
                    .store(cache.gate.deferred_total, Ordering::Relaxed);
                for (op, result) in batch.into_iter().zip(results) {
                    deliver(op, result);
                }
                for j in journaled {
                    let _ = feed.send(j);
                }
            }
            Err(e) => {
                tracing::error!("commit failed, batch of {} rolled back: {e}", batch.len());
                cache.clear();
                for op in batch {
                    deliver(op, Outcome::Failed(e.to_string()));
                }
            }
        }
    }
}

pub(super) enum Outcome {
    Inbound(Applied, String),
    Admin(AdminResult),
    Journaled,
    Failed(String),
}

fn deliver(op: Op, outcome: Outcome) {
    let failed = |m: String| StoreError::Db(redb::Error::Io(std::io::Error::other(m)));
    match (op, outcome) {
        (Op::Inbound { reply, .. }, Outcome::Inbound(r, answer)) => drop(reply.send(Ok((r, answer)))),
        (Op::Inbound { reply, .. }, Outcome::Failed(m)) => drop(reply.send(Err(failed(m)))),
        (Op::Admin { reply, .. }, Outcome::Admin(r)) => drop(reply.send(Ok(r))),
        (Op::Admin { reply, .. }, Outcome::Failed(m)) => drop(reply.send(Err(failed(m)))),
        _ => {}
    }
}

fn commit_batch(
    db: &Database,
    batch: &mut [Op],
    cache: &mut Cache,
    boot: &BootPolicy,
) -> Result<(Vec<Outcome>, Vec<JournalEntry>)> {
    let w = db.begin_write()?;
    let mut results = Vec::with_capacity(batch.len());
    let mut journaled = Vec::new();
    {
        let mut ctx = Ctx::open(&w, cache)?;
        for op in batch.iter_mut() {
            let outcome = match op {
                Op::Inbound {
                    charger,
                    frame,
                    t,
                    msg,
                    answer,
                    ..
                } => {
                    let seq = ctx.call_seq();
                    let msg = std::mem::replace(msg, Inbound::Heartbeat);
                    let applied = apply::inbound(&mut ctx, charger, msg, *t, boot)?;
                    let text = answer.take().map(|render| render(&applied)).unwrap_or_default();
                    let (call, reply) = ctx.journal_exchange(charger, seq, std::mem::take(frame), text.clone(), *t)?;
                    journaled.push(call);
                    journaled.push(reply);
                    Outcome::Inbound(applied, text)
                }
                Op::Journal { charger, dir, frame, t } => {
                    journaled.push(ctx.journal(charger, *dir, std::mem::take(frame), *t)?);
                    Outcome::Journaled
                }
                Op::Admin { op, t, .. } => {
                    let op = std::mem::replace(op, AdminOp::Noop);
                    Outcome::Admin(apply::admin(&mut ctx, op, *t)?)
                }
            };
            results.push(outcome);
        }
        ctx.finish()?;
    }
    w.commit()?;
    Ok((results, journaled))
}
