//! `xtask loadgen`: the charge points of the benchmark, in a process of
//! their own so that /proc figures of the server are the server's alone.
//!
//! One task per charger, one WebSocket each. The controller (`run`) hands
//! every charger the same order through a watch channel, measures the
//! target process (/proc/PID) around the measurement window, and prints one
//! JSON object per phase on stdout. Progress goes to stderr.
//!
//! Every wait has a deadline: a charger gives up connecting at the phase
//! deadline, a call that gets no answer within `CALL_TIMEOUT` costs the
//! charger its connection, and the controller stops waiting for chargers at
//! a deadline of its own.

use super::frames::{self, Proto};
use super::sys::{self, Flags};
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self as tg, Message, Utf8Bytes};

type Ws = WebSocketStream<TcpStream>;

/// A call without an answer for this long is lost, and so is its
/// connection (a late answer could no longer be matched).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// One connection attempt (TCP + WebSocket handshake + BootNotification).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Charge points per source address: few enough that the ephemeral ports of
/// one address never run out, even with a round of TIME_WAIT sockets from a
/// reconnect storm on top.
const PER_SOURCE: usize = 1000;

struct Cfg {
    addr: SocketAddr,
    proto: Proto,
    chargers: usize,
    pid: u32,
    echo: bool,
    rate: u64,
    duration: Duration,
    warmup: Duration,
    settle: Duration,
    tx_chargers: usize,
    ramp_concurrency: usize,
    ramp_timeout: Duration,
    storm_timeout: Duration,
    id_prefix: String,
    tag_prefix: String,
    sources: Vec<Ipv4Addr>,
    ws: WebSocketConfig,
    /// The voltyard CLI and data dir, to read the commit counter (`status`).
    status: Option<(String, String)>,
}

pub fn main(args: &[String]) -> Result<()> {
    let flags = Flags::parse(
        args,
        &["echo"],
        &[
            "addr",
            "protocol",
            "chargers",
            "pid",
            "phases",
            "rate",
            "duration",
            "warmup",
            "settle",
            "tx-chargers",
            "ramp-concurrency",
            "ramp-timeout",
            "storm-timeout",
            "id-prefix",
            "tag-prefix",
            "source-net",
            "threads",
            "server-bin",
            "data-dir",
        ],
    )?;
    let secs = |name: &str, default: f64| -> Result<Duration> {
        Ok(Duration::from_secs_f64(flags.num::<f64>(name)?.unwrap_or(default)))
    };
    let chargers: usize = flags.num("chargers")?.unwrap_or(200);
    let source_net: u8 = flags.num("source-net")?.unwrap_or(1);
    let sources = (0..chargers.div_ceil(PER_SOURCE).max(4))
        .map(|j| Ipv4Addr::new(127, source_net, (j / 250) as u8, (j % 250 + 1) as u8))
        .collect();
    let cfg = Cfg {
        addr: flags
            .str("addr")
            .context("--addr HOST:PORT is required")?
            .parse()
            .context("--addr")?,
        proto: Proto::parse(flags.str("protocol").unwrap_or("1.6")).context("--protocol must be 1.6 or 2.0.1")?,
        chargers,
        pid: flags.num("pid")?.context("--pid of the server is required")?,
        echo: flags.switch("echo"),
        rate: flags.num("rate")?.unwrap_or(10_000),
        duration: secs("duration", 20.0)?,
        warmup: secs("warmup", 2.0)?,
        settle: secs("settle", 5.0)?,
        tx_chargers: flags.num::<usize>("tx-chargers")?.unwrap_or(chargers).min(chargers),
        ramp_concurrency: flags.num("ramp-concurrency")?.unwrap_or(1000),
        ramp_timeout: secs("ramp-timeout", 180.0)?,
        storm_timeout: secs("storm-timeout", 60.0)?,
        id_prefix: flags.str("id-prefix").unwrap_or("BENCH-").to_string(),
        tag_prefix: flags.str("tag-prefix").unwrap_or("BT").to_string(),
        sources,
        // tungstenite's defaults (128 KiB read buffer, filled with zeros on
        // the first read) would cost ~2.5 GB at 19,000 sockets; OCPP replies
        // to a charger are small.
        ws: WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20)),
        status: flags
            .str("server-bin")
            .zip(flags.str("data-dir"))
            .map(|(b, d)| (b.to_string(), d.to_string())),
    };
    let phases: Vec<String> = flags
        .str("phases")
        .unwrap_or("ramp,idle,paced,max,storm,tx")
        .split(',')
        .map(str::to_string)
        .collect();
    let limit = sys::raise_nofile();
    if cfg.chargers as u64 + 64 > limit {
        bail!(
            "{} chargers need more open files than this process may have ({limit}); run fewer per process",
            cfg.chargers
        );
    }
    let threads: usize = flags.num("threads")?.unwrap_or(1);
    // One thread by default: on a small machine the generator then never
    // takes more than one core from the server it measures.
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(run(Arc::new(cfg), phases))
}

/// What every charger is told to do next.
enum Order {
    Wait,
    /// Connect and boot until accepted (ramp, storm); at most `limit`
    /// attempts in flight when given.
    Connect(Arc<Phase>, Option<Arc<Semaphore>>),
    /// Close the connection at once, without a WebSocket close handshake.
    Drop(Arc<Phase>),
    /// MeterValues until the phase ends: every `period` (paced), or the next
    /// as soon as the last is answered (closed loop).
    Meter(Arc<Phase>, Option<Duration>),
    /// Start and stop transactions until the phase ends.
    Tx(Arc<Phase>),
    Quit,
}

/// Counters of one phase, shared by all chargers.
struct Phase {
    start: Instant,
    /// Answers received in [from, to) are counted and timed.
    from: Instant,
    to: Instant,
    /// No new call after this instant.
    end: Instant,
    /// Connection attempts stop here.
    deadline: Instant,
    /// Chargers that have finished the order.
    done: AtomicUsize,
    /// Chargers that reached the goal of the phase (accepted, or took part).
    ok: AtomicUsize,
    sent: AtomicU64,
    /// CALLRESULTs (echoes, against the echo server) counted in the window.
    answered: AtomicU64,
    /// Of those, transactions completed (stop answered) in the window.
    transactions: AtomicU64,
    /// CALLRESULTs whose status is not Accepted (boot, start, stop).
    not_accepted: AtomicU64,
    call_errors: AtomicU64,
    /// Connections that broke during the phase.
    lost: AtomicU64,
    /// Latest acceptance, in µs after `start`.
    last_ok_us: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// From when a call was due (paced) or sent, to its answer.
    latency: Mutex<Histogram<u64>>,
    /// From when a call was actually sent, to its answer.
    service: Mutex<Histogram<u64>>,
}

impl Phase {
    fn new(start: Instant, from: Instant, to: Instant, end: Instant, deadline: Instant) -> Result<Arc<Phase>> {
        Ok(Arc::new(Phase {
            start,
            from,
            to,
            end,
            deadline,
            done: AtomicUsize::new(0),
            ok: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            not_accepted: AtomicU64::new(0),
            call_errors: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            last_ok_us: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            // 1 µs to 10 min, 3 significant digits.
            latency: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
            service: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        }))
    }

    fn error(&self, kind: String) {
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *e.entry(kind).or_default() += 1;
    }

    fn failed(&self, f: &Fail) {
        match f {
            Fail::CallError(_) => {
                self.call_errors.fetch_add(1, Relaxed);
            }
            Fail::NotAccepted(_) => {
                self.not_accepted.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        self.error(f.kind());
    }

    /// Count an answer that arrived now for a call due at `due` and sent at
    /// `sent`. Returns whether it fell in the measurement window.
    fn answered(&self, due: Instant, sent: Instant) -> bool {
        let now = Instant::now();
        if now < self.from || now >= self.to {
            return false;
        }
        self.answered.fetch_add(1, Relaxed);
        record(&self.latency, now.saturating_duration_since(due));
        record(&self.service, now.saturating_duration_since(sent));
        true
    }

    fn accepted(&self) {
        let us = Instant::now().saturating_duration_since(self.start).as_micros() as u64;
        record(&self.latency, Duration::from_micros(us));
        self.last_ok_us.fetch_max(us, Relaxed);
        self.ok.fetch_add(1, Relaxed);
    }

    fn errors_json(&self) -> Value {
        let e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        json!(*e)
    }

    fn latency_json(&self) -> Value {
        histogram_json(&self.latency)
    }
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 600_000_000);
    let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
    let _ = h.record(us);
}

fn histogram_json(h: &Mutex<Histogram<u64>>) -> Value {
    let h = h.lock().unwrap_or_else(|p| p.into_inner());
    if h.is_empty() {
        return Value::Null;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "count": h.len(),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": h.max() as f64 / 1000.0,
    })
}

/// Why a call or a connection attempt failed.
enum Fail {
    Bind(std::io::Error),
    Connect(std::io::Error),
    Handshake(tg::Error),
    Timeout(&'static str),
    Closed,
    Ws(tg::Error),
    Unreadable,
    /// A frame that is neither the answer nor a CALL: a CALLRESULT for
    /// another id, or an unknown type.
    Unexpected,
    CallError(String),
    NotAccepted(String),
}

impl Fail {
    fn kind(&self) -> String {
        match self {
            Fail::Bind(e) => format!("bind: {:?}", e.kind()),
            Fail::Connect(e) => format!("connect: {:?}", e.kind()),
            Fail::Handshake(tg::Error::Http(resp)) => format!("handshake: HTTP {}", resp.status()),
            Fail::Handshake(tg::Error::Io(e)) => format!("handshake: {:?}", e.kind()),
            Fail::Handshake(e) => format!("handshake: {}", short(e)),
            Fail::Timeout(what) => format!("timeout: {what}"),
            Fail::Closed => "closed by the server".into(),
            Fail::Ws(tg::Error::Io(e)) => format!("websocket: {:?}", e.kind()),
            Fail::Ws(e) => format!("websocket: {}", short(e)),
            Fail::Unreadable => "answer is not an OCPP-J frame".into(),
            Fail::Unexpected => "unexpected frame".into(),
            Fail::CallError(code) => format!("CALLERROR {code}"),
            Fail::NotAccepted(s) => format!("status {s}"),
        }
    }

    /// Whether the connection is still usable after this failure.
    fn keeps_connection(&self) -> bool {
        matches!(self, Fail::CallError(_) | Fail::NotAccepted(_))
    }
}

fn short(e: &tg::Error) -> String {
    e.to_string().chars().take(60).collect()
}

struct Charger {
    idx: usize,
    id: String,
    tag: String,
    conn: Option<Ws>,
    next_msg: u64,
    /// The energy register: rises with every reading, as a real one does.
    wh: u64,
    tx_count: u64,
}

async fn run(cfg: Arc<Cfg>, phases: Vec<String>) -> Result<()> {
    let (orders, rx) = watch::channel(Arc::new(Order::Wait));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(cfg.chargers);
    for idx in 0..cfg.chargers {
        let ch = Charger {
            idx,
            id: format!("{}{:05}", cfg.id_prefix, idx + 1),
            tag: format!("{}{:06}", cfg.tag_prefix, idx + 1),
            conn: None,
            next_msg: 0,
            wh: 1_000_000 + idx as u64,
            tx_count: 0,
        };
        tasks.push(tokio::spawn(ch.run(cfg.clone(), rx.clone(), connected.clone())));
    }
    drop(rx);
    let before = sys::rss_bytes(cfg.pid)?;
    emit(json!({"phase": "baseline", "rss_bytes": before, "chargers": cfg.chargers}))?;
    let mut result = Ok(());
    for name in &phases {
        let r = match name.as_str() {
            "ramp" => connect_phase(&cfg, &orders, "ramp", cfg.ramp_timeout, Some(cfg.ramp_concurrency))
                .await
                .and_then(|v| emit(v.clone()).map(|_| v)),
            "idle" => idle(&cfg, before, &connected).await,
            "paced" => {
                let period = Duration::from_secs_f64(cfg.chargers as f64 / cfg.rate.max(1) as f64);
                steady(&cfg, &orders, "paced", Some(period), &connected).await
            }
            "max" => steady(&cfg, &orders, "max", None, &connected).await,
            "storm" => storm(&cfg, &orders, &connected).await,
            "tx" => steady(&cfg, &orders, "tx", None, &connected).await,
            other => Err(anyhow::anyhow!("unknown phase {other:?}")),
        };
        if let Err(e) = r {
            result = Err(e.context(format!("phase {name}")));
            break;
        }
    }
    let _ = orders.send(Arc::new(Order::Quit));
    // Chargers stop at the next await; give them a moment, then leave anyway.
    let _ = timeout(Duration::from_secs(10), futures_util::future::join_all(tasks)).await;
    result
}

fn emit(v: Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}

fn progress(msg: &str) {
    eprintln!("loadgen: {msg}");
}

/// Wait until every charger has finished the order, or `until`; report
/// progress now and then. Returns whether all finished.
async fn wait_done(cfg: &Cfg, phase: &Phase, what: &str, until: Instant) -> bool {
    let mut last = Instant::now();
    loop {
        let done = phase.done.load(Relaxed);
        if done >= cfg.chargers {
            return true;
        }
        if Instant::now() >= until {
            progress(&format!(
                "{what}: gave up waiting: {done}/{} chargers finished",
                cfg.chargers
            ));
            return false;
        }
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            progress(&format!(
                "{what}: {}/{} ok, {done} finished",
                phase.ok.load(Relaxed),
                cfg.chargers
            ));
        }
        sleep(Duration::from_millis(20)).await;
    }
}

async fn connect_phase(
    cfg: &Cfg,
    orders: &watch::Sender<Arc<Order>>,
    name: &str,
    limit: Duration,
    concurrency: Option<usize>,
) -> Result<Value> {
    let start = Instant::now();
    let deadline = start + limit;
    let phase = Phase::new(start, start, deadline, deadline, deadline)?;
    let sem = concurrency.map(|n| Arc::new(Semaphore::new(n.max(1))));
    orders.send(Arc::new(Order::Connect(phase.clone(), sem)))?;
    let all = wait_done(cfg, &phase, name, deadline + ATTEMPT_TIMEOUT).await;
    let accepted = phase.ok.load(Relaxed);
    let all_ok = all && accepted == cfg.chargers;
    let v = json!({
        "phase": name,
        "chargers": cfg.chargers,
        "accepted": accepted,
        "all_accepted": all_ok,
        "time_to_all_s": all_ok.then(|| phase.last_ok_us.load(Relaxed) as f64 / 1e6),
        "time_to_accept": phase.latency_json(),
        "not_accepted": phase.not_accepted.load(Relaxed),
        "call_errors": phase.call_errors.load(Relaxed),
        "errors": phase.errors_json(),
        "concurrency": concurrency,
        "server_rss_bytes": sys::rss_bytes(cfg.pid)?,
    });
    progress(&format!(
        "{name}: {accepted}/{} accepted in {:.1} s",
        cfg.chargers,
        start.elapsed().as_secs_f64()
    ));
    orders.send(Arc::new(Order::Wait))?;
    Ok(v)
}

/// RSS with every charger connected and quiet, after the server has had
/// `settle` to finish its bookkeeping.
async fn idle(cfg: &Cfg, before: u64, connected: &AtomicUsize) -> Result<Value> {
    sleep(cfg.settle).await;
    let rss = sys::rss_bytes(cfg.pid)?;
    let n = connected.load(Relaxed);
    let per = (n > 0).then(|| rss.saturating_sub(before) as f64 / n as f64);
    let v = json!({
        "phase": "idle",
        "connected": n,
        "rss_before_bytes": before,
        "rss_idle_bytes": rss,
        "rss_per_charger_bytes": per,
        "loadgen_rss_bytes": sys::rss_bytes(std::process::id()).ok(),
    });
    progress(&format!(
        "idle: {n} connected, RSS {:.1} MiB (before {:.1} MiB)",
        rss as f64 / 1048576.0,
        before as f64 / 1048576.0
    ));
    emit(v.clone())?;
    Ok(v)
}

async fn steady(
    cfg: &Cfg,
    orders: &watch::Sender<Arc<Order>>,
    name: &str,
    period: Option<Duration>,
    connected: &AtomicUsize,
) -> Result<Value> {
    let start = Instant::now();
    let from = start + cfg.warmup;
    let to = from + cfg.duration;
    let phase = Phase::new(start, from, to, to, to)?;
    let order = match name {
        "tx" => Order::Tx(phase.clone()),
        _ => Order::Meter(phase.clone(), period),
    };
    let taking_part = match name {
        "tx" => cfg.tx_chargers.min(connected.load(Relaxed)),
        _ => connected.load(Relaxed),
    };
    orders.send(Arc::new(order))?;
    sleep_until(from).await;
    let (cpu0, self0) = (sys::cpu_us(cfg.pid)?, sys::cpu_us(std::process::id())?);
    let (io0, commits0) = (sys::write_bytes(cfg.pid), commits(cfg).await);
    let threads0 = sys::thread_cpu_us(cfg.pid);
    sleep_until(to).await;
    let (cpu1, self1) = (sys::cpu_us(cfg.pid)?, sys::cpu_us(std::process::id())?);
    let (io1, commits1) = (sys::write_bytes(cfg.pid), commits(cfg).await);
    let threads: BTreeMap<String, f64> = sys::thread_cpu_us(cfg.pid)
        .into_iter()
        .map(|(name, us)| {
            let before = threads0.get(&name).copied().unwrap_or(0);
            (
                name,
                us.saturating_sub(before) as f64 / 1e6 / cfg.duration.as_secs_f64(),
            )
        })
        .collect();
    let per_msg = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if phase.answered.load(Relaxed) > 0 => {
            Some(b.saturating_sub(a) as f64 / phase.answered.load(Relaxed) as f64)
        }
        _ => None,
    };
    let (written_per_msg, commits_per_msg) = (per_msg(io0, io1), per_msg(commits0, commits1));
    let rss = sys::rss_bytes(cfg.pid)?;
    let all = wait_done(cfg, &phase, name, to + CALL_TIMEOUT + Duration::from_secs(5)).await;
    orders.send(Arc::new(Order::Wait))?;
    let secs = cfg.duration.as_secs_f64();
    let answered = phase.answered.load(Relaxed);
    let cpu = cpu1.saturating_sub(cpu0);
    let v = json!({
        "phase": name,
        "chargers": taking_part,
        "target_rate": period.map(|_| cfg.rate),
        "window_s": secs,
        "warmup_s": cfg.warmup.as_secs_f64(),
        "sent": phase.sent.load(Relaxed),
        "answered_in_window": answered,
        "msgs_per_s": answered as f64 / secs,
        "transactions_per_s": (name == "tx").then(|| phase.transactions.load(Relaxed) as f64 / secs),
        "latency": phase.latency_json(),
        "service_latency": histogram_json(&phase.service),
        "server_cpu_us": cpu,
        "server_cpu_us_per_msg": (answered > 0).then(|| cpu as f64 / answered as f64),
        "server_cores_busy": cpu as f64 / 1e6 / secs,
        "server_thread_cores_busy": threads,
        "loadgen_cores_busy": self1.saturating_sub(self0) as f64 / 1e6 / secs,
        "server_rss_bytes": rss,
        "server_disk_write_bytes_per_msg": written_per_msg,
        "server_commits_per_s": commits0.zip(commits1).map(|(a, b)| b.saturating_sub(a) as f64 / secs),
        "msgs_per_commit": commits_per_msg.filter(|c| *c > 0.0).map(|c| 1.0 / c),
        "not_accepted": phase.not_accepted.load(Relaxed),
        "call_errors": phase.call_errors.load(Relaxed),
        "connections_lost": phase.lost.load(Relaxed),
        "errors": phase.errors_json(),
        "all_finished": all,
    });
    progress(&format!(
        "{name}: {:.0} msg/s, server {:.1} µs CPU per message",
        answered as f64 / secs,
        if answered > 0 {
            cpu as f64 / answered as f64
        } else {
            0.0
        }
    ));
    emit(v.clone())?;
    Ok(v)
}

/// The server's count of committed write transactions, from `voltyard status`.
async fn commits(cfg: &Cfg) -> Option<u64> {
    let (bin, data) = cfg.status.clone()?;
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["--data-dir", &data, "--json", "status"]);
        sys::run_bounded(&mut cmd, Duration::from_secs(10))
    })
    .await
    .ok()?
    .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("commits")?.as_u64()
}

/// Every connection dropped at once, then every charger reconnecting at once.
async fn storm(cfg: &Cfg, orders: &watch::Sender<Arc<Order>>, connected: &AtomicUsize) -> Result<Value> {
    let start = Instant::now();
    let until = start + Duration::from_secs(30);
    let drop_phase = Phase::new(start, start, until, until, until)?;
    let before = connected.load(Relaxed);
    orders.send(Arc::new(Order::Drop(drop_phase.clone())))?;
    wait_done(cfg, &drop_phase, "storm (drop)", until).await;
    let dropped_in = start.elapsed().as_secs_f64();
    let mut v = connect_phase(cfg, orders, "storm", cfg.storm_timeout, None).await?;
    v["dropped"] = json!(before);
    v["drop_s"] = json!(dropped_in);
    emit(v.clone())?;
    Ok(v)
}

impl Charger {
    async fn run(mut self, cfg: Arc<Cfg>, mut rx: watch::Receiver<Arc<Order>>, connected: Arc<AtomicUsize>) {
        // `connected` is kept before `done` is counted, so the controller
        // reads a settled figure once every charger is done.
        let track = |before: bool, after: bool| match (before, after) {
            (false, true) => {
                connected.fetch_add(1, Relaxed);
            }
            (true, false) => {
                connected.fetch_sub(1, Relaxed);
            }
            _ => {}
        };
        loop {
            let order = rx.borrow_and_update().clone();
            let before = self.conn.is_some();
            let phase = match &*order {
                Order::Wait => None,
                Order::Quit => return,
                Order::Connect(phase, sem) => {
                    if self.conn.is_none() {
                        self.connect(&cfg, phase, sem.as_deref()).await;
                    } else {
                        phase.accepted();
                    }
                    Some(phase)
                }
                Order::Drop(phase) => {
                    self.conn = None;
                    Some(phase)
                }
                Order::Meter(phase, period) => {
                    if self.conn.is_some() {
                        phase.ok.fetch_add(1, Relaxed);
                        self.meter(&cfg, phase, *period).await;
                    }
                    Some(phase)
                }
                Order::Tx(phase) => {
                    if self.conn.is_some() && self.idx < cfg.tx_chargers {
                        phase.ok.fetch_add(1, Relaxed);
                        self.transactions(&cfg, phase).await;
                    }
                    Some(phase)
                }
            };
            track(before, self.conn.is_some());
            if let Some(p) = phase {
                p.done.fetch_add(1, Relaxed);
            }
            let before = self.conn.is_some();
            let go_on = self.await_order(&cfg, &mut rx).await;
            track(before, self.conn.is_some());
            if !go_on {
                return;
            }
        }
    }

    /// Wait for the next order while keeping the socket read, so that pings
    /// are answered and a server-side close is noticed. False: quit.
    async fn await_order(&mut self, cfg: &Cfg, rx: &mut watch::Receiver<Arc<Order>>) -> bool {
        loop {
            let Some(ws) = self.conn.as_mut() else {
                return rx.changed().await.is_ok();
            };
            tokio::select! {
                changed = rx.changed() => return changed.is_ok(),
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let Some((2, id)) = frames::head(&t) && !cfg.echo {
                            let answer = frames::not_implemented(id);
                            if ws.send(Message::text(answer)).await.is_err() {
                                self.conn = None;
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => self.conn = None,
                },
            }
        }
    }

    fn next_id(&mut self) -> String {
        self.next_msg += 1;
        self.next_msg.to_string()
    }

    async fn connect(&mut self, cfg: &Cfg, phase: &Phase, sem: Option<&Semaphore>) {
        let mut attempt: u32 = 0;
        loop {
            let permit = match sem {
                Some(s) => match timeout_at(phase.deadline, s.acquire()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => break,
                },
                None => None,
            };
            let until = phase.deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
            let outcome = match timeout_at(until, self.attempt(cfg)).await {
                Ok(r) => r,
                Err(_) => Err(Fail::Timeout("connect and boot")),
            };
            drop(permit);
            match outcome {
                Ok(ws) => {
                    self.conn = Some(ws);
                    phase.accepted();
                    return;
                }
                Err(f) => phase.failed(&f),
            }
            attempt += 1;
            // Back off like a charger would, with jitter so retries spread out.
            let jitter = (self.idx as u64)
                .wrapping_mul(2654435761)
                .wrapping_add(attempt as u64 * 97)
                % 500;
            let wait = Duration::from_millis((100u64 << attempt.min(4)) + jitter);
            if Instant::now() + wait >= phase.deadline {
                break;
            }
            sleep(wait).await;
        }
        phase.error("gave up at the phase deadline".into());
    }

    async fn attempt(&mut self, cfg: &Cfg) -> Result<Ws, Fail> {
        let socket = TcpSocket::new_v4().map_err(Fail::Bind)?;
        let src = cfg.sources[self.idx % cfg.sources.len()];
        socket.bind(SocketAddr::new(src.into(), 0)).map_err(Fail::Bind)?;
        let stream = socket.connect(cfg.addr).await.map_err(Fail::Connect)?;
        let _ = stream.set_nodelay(true);
        let url = format!("ws://{}/ocpp/{}", cfg.addr, self.id);
        let mut req = url.into_client_request().map_err(Fail::Handshake)?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(cfg.proto.subprotocol()),
        );
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(cfg.ws))
            .await
            .map_err(Fail::Handshake)?;
        loop {
            let id = self.next_id();
            let reply = call(&mut ws, cfg.echo, &id, frames::boot(cfg.proto, &id, &self.id)).await?;
            if cfg.echo {
                return Ok(ws);
            }
            let payload = frames::result_payload(&reply).ok_or(Fail::Unreadable)?;
            match frames::boot_status(&payload) {
                Some("Accepted") => return Ok(ws),
                // Admission control: come back after the interval, as a real charger does.
                Some("Pending") => {
                    let wait = frames::boot_interval(&payload).unwrap_or(10).clamp(1, 300);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                other => return Err(Fail::NotAccepted(format!("BootNotification {}", other.unwrap_or("?")))),
            }
        }
    }

    /// Call with the charger's connection; a failure that leaves the
    /// connection in doubt closes it.
    async fn call(&mut self, cfg: &Cfg, phase: &Phase, frame: impl FnOnce(&str) -> String) -> Option<Utf8Bytes> {
        let id = self.next_id();
        let ws = self.conn.as_mut()?;
        phase.sent.fetch_add(1, Relaxed);
        let text = frame(&id);
        let outcome = match timeout(CALL_TIMEOUT, call(ws, cfg.echo, &id, text)).await {
            Ok(r) => r,
            Err(_) => Err(Fail::Timeout("answer")),
        };
        match outcome {
            Ok(reply) => Some(reply),
            Err(f) => {
                phase.failed(&f);
                if !f.keeps_connection() {
                    phase.lost.fetch_add(1, Relaxed);
                    self.conn = None;
                }
                None
            }
        }
    }

    async fn meter(&mut self, cfg: &Cfg, phase: &Phase, period: Option<Duration>) {
        // Paced chargers are spread evenly over one period so the aggregate
        // rate is smooth; their latency is counted from when the message was
        // due, so a server that falls behind cannot hide it.
        let mut due = period.map(|p| phase.start + p.mul_f64(self.idx as f64 / cfg.chargers as f64));
        while self.conn.is_some() {
            let scheduled = match (due, period) {
                (Some(d), Some(p)) => {
                    if d >= phase.end {
                        break;
                    }
                    sleep_until(d).await;
                    due = Some(d + p);
                    d
                }
                _ => Instant::now(),
            };
            // A charger behind schedule does not catch up after the end.
            let sent = Instant::now();
            if sent >= phase.end {
                break;
            }
            self.wh += 7;
            let (proto, wh) = (cfg.proto, self.wh);
            let ts = frames::now();
            if self
                .call(cfg, phase, |id| frames::meter_values(proto, id, &ts, wh))
                .await
                .is_some()
            {
                phase.answered(scheduled, sent);
            }
        }
    }

    async fn transactions(&mut self, cfg: &Cfg, phase: &Phase) {
        let proto = cfg.proto;
        while self.conn.is_some() && Instant::now() < phase.end {
            self.tx_count += 1;
            let tx_ref = format!("{}-{}", self.id, self.tx_count);
            let tag = self.tag.clone();
            self.wh += 1;
            let (start_wh, ts) = (self.wh, frames::now());
            let sent = Instant::now();
            let Some(reply) = self
                .call(cfg, phase, |id| {
                    frames::start_tx(proto, id, &ts, &tag, start_wh, &tx_ref)
                })
                .await
            else {
                continue;
            };
            phase.answered(sent, sent);
            let session = if cfg.echo {
                0
            } else {
                let Some(payload) = frames::result_payload(&reply) else {
                    phase.failed(&Fail::Unreadable);
                    continue;
                };
                self.check_auth(proto, &payload, phase, "start");
                match proto {
                    Proto::V16 => match payload.get("transactionId").and_then(Value::as_i64) {
                        Some(s) => s,
                        None => {
                            phase.error("StartTransaction answer without transactionId".into());
                            continue;
                        }
                    },
                    Proto::V201 => 0,
                }
            };
            // A short charge: a few kWh later, the stop.
            self.wh += 5000;
            let (stop_wh, ts) = (self.wh, frames::now());
            let sent = Instant::now();
            let Some(reply) = self
                .call(cfg, phase, |id| {
                    frames::stop_tx(proto, id, &ts, &tag, stop_wh, session, &tx_ref)
                })
                .await
            else {
                continue;
            };
            if phase.answered(sent, sent) {
                phase.transactions.fetch_add(1, Relaxed);
            }
            if !cfg.echo {
                match frames::result_payload(&reply) {
                    Some(payload) => self.check_auth(proto, &payload, phase, "stop"),
                    None => phase.failed(&Fail::Unreadable),
                }
            }
        }
    }

    fn check_auth(&self, proto: Proto, payload: &Value, phase: &Phase, what: &str) {
        match frames::auth_status(proto, payload) {
            Some("Accepted") => {}
            other => phase.failed(&Fail::NotAccepted(format!("{what}: {}", other.unwrap_or("none")))),
        }
    }
}

/// Send one CALL and wait for the frame that carries its message id (the
/// CALLRESULT, or against the echo server the echoed CALL). CALLs from the
/// server in between are answered NotImplemented.
async fn call(ws: &mut Ws, echo: bool, id: &str, frame: String) -> Result<Utf8Bytes, Fail> {
    ws.send(Message::text(frame)).await.map_err(Fail::Ws)?;
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => return Err(Fail::Closed),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(Fail::Ws(e)),
        };
        let Some((kind, got)) = frames::head(&text) else {
            return Err(Fail::Unreadable);
        };
        if got == id {
            return match kind {
                _ if echo => Ok(text),
                3 => Ok(text),
                4 => {
                    let code = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get(2).and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_else(|| "?".into());
                    Err(Fail::CallError(code))
                }
                _ => Err(Fail::Unexpected),
            };
        }
        if kind == 2 && !echo {
            let answer = frames::not_implemented(got);
            ws.send(Message::text(answer)).await.map_err(Fail::Ws)?;
            continue;
        }
        return Err(Fail::Unexpected);
    }
}
