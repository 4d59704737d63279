//! `cargo xtask bench ocpp`: a reproducible OCPP load benchmark.
//!
//! This process only orchestrates: it builds and starts the release server
//! on a fresh data dir, adds RFID tokens with the real CLI, runs the load
//! generator (`xtask loadgen`, a child process) against it, then runs the
//! same load against a bare echo server (`xtask echo-server`) for the limit,
//! and prints a table and writes JSON. Every child is killed by its PID when
//! its guard is dropped, on success and on error; the data dir is a
//! `TempDir` and goes away the same way.

mod dlm;
mod echo;
mod frames;
mod loadgen;
mod sys;

pub use echo::main as echo_server;
pub use loadgen::main as loadgen;

use anyhow::{Context, Result, bail};
use frames::Proto;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use sys::{Flags, Killed};

pub const USAGE: &str = "cargo xtask bench ocpp [--quick] [--chargers N] [--duration SECS] [--rate MSG_PER_S]
                       [--tx-chargers N] [--protocol 1.6|2.0.1] [--json PATH] [--server-bin PATH]
           cargo xtask bench dlm [--quick] [--seed N] [--chargers N] [--json PATH]";

/// The goals the issue sets; a miss is reported, never an error.
const GOAL_CHARGERS: usize = 19_000;
const GOAL_RSS_PER_CHARGER: f64 = 16.0 * 1024.0;
const GOAL_STORM_S: f64 = 10.0;
const GOAL_DURABLE_MSGS: f64 = 40_000.0;
const GOAL_P99_MS: f64 = 20.0;
const GOAL_P99_RATE: u64 = 10_000;
const GOAL_ECHO_SHARE: f64 = 0.40;

struct Opts {
    quick: bool,
    chargers: usize,
    requested: usize,
    duration: f64,
    warmup: f64,
    settle: f64,
    rate: u64,
    tx_chargers: usize,
    proto: Proto,
    json: PathBuf,
    /// A prebuilt server to measure instead of building target/release/voltyard
    /// (to compare two builds).
    server_bin: Option<PathBuf>,
}

pub fn bench(root: &Path, args: &[String]) -> Result<()> {
    // `cargo xtask` builds the dev profile; an unoptimised load generator
    // (and echo server) would measure itself rather than the server. So
    // the bench re-runs itself from a release build, and its children are
    // that same executable (current_exe).
    if cfg!(debug_assertions) && std::env::var_os("XTASK_BENCH_RELEASE").is_none() {
        crate::run(crate::cargo().args(["build", "--release", "-p", "xtask"]))?;
        let exe = root.join("target/release/xtask");
        eprintln!("xtask: running {} bench {}", exe.display(), args.join(" "));
        let status = Command::new(&exe)
            .arg("bench")
            .args(args)
            .env("XTASK_BENCH_RELEASE", "1")
            .status()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        if !status.success() {
            // The release run has already said what went wrong.
            std::process::exit(status.code().unwrap_or(1));
        }
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("ocpp") => ocpp(root, &args[1..]),
        Some("dlm") => dlm::main(root, &args[1..]),
        _ => bail!("usage: {USAGE}"),
    }
}

fn options(args: &[String]) -> Result<Opts> {
    let flags = Flags::parse(
        args,
        &["quick"],
        &[
            "chargers",
            "duration",
            "rate",
            "json",
            "protocol",
            "tx-chargers",
            "server-bin",
        ],
    )?;
    let quick = flags.switch("quick");
    let requested: usize = flags
        .num("chargers")?
        .unwrap_or(if quick { 200 } else { GOAL_CHARGERS });
    if requested == 0 {
        bail!("--chargers must be at least 1");
    }
    // The load generator holds every socket in one process.
    let cap = sys::nofile_hard().saturating_sub(100) as usize;
    let chargers = requested.min(cap);
    if chargers < requested {
        eprintln!(
            "xtask: {requested} chargers need more than one load generator process: the open-file hard limit is {} per process, so this run uses {chargers}",
            sys::nofile_hard()
        );
    }
    let tx_default = if quick { 50 } else { 1000 };
    Ok(Opts {
        quick,
        chargers,
        requested,
        duration: flags.num("duration")?.unwrap_or(if quick { 3.0 } else { 20.0 }),
        warmup: if quick { 0.5 } else { 3.0 },
        settle: if quick { 1.0 } else { 5.0 },
        rate: flags.num("rate")?.unwrap_or(if quick { 2000 } else { GOAL_P99_RATE }),
        tx_chargers: flags.num::<usize>("tx-chargers")?.unwrap_or(tx_default).min(chargers),
        proto: Proto::parse(flags.str("protocol").unwrap_or("1.6")).context("--protocol must be 1.6 or 2.0.1")?,
        json: PathBuf::from(flags.str("json").unwrap_or("target/bench/ocpp.json")),
        server_bin: flags.str("server-bin").map(PathBuf::from),
    })
}

fn ocpp(root: &Path, args: &[String]) -> Result<()> {
    let opts = options(args)?;
    let bin = match &opts.server_bin {
        Some(b) => b.clone(),
        None => {
            crate::run(crate::cargo().args(["build", "--release", "-p", "voltyard"]))?;
            root.join("target/release/voltyard")
        }
    };
    let out_dir = opts
        .json
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let started = Instant::now();

    let ours = {
        let tmp = tempfile::Builder::new().prefix("voltyard-bench-").tempdir()?;
        let server_log = out_dir.join("ocpp-server.log");
        let mut server = start_server(&bin, tmp.path(), &server_log)?;
        let (addr, data) = (server.1.clone(), tmp.path().join("data"));
        let tokens = add_tokens(&bin, &data, opts.tx_chargers)?;
        eprintln!(
            "xtask: {} tokens added with `voltyard token add` in {:.1} s",
            opts.tx_chargers, tokens
        );
        let phases = "ramp,idle,paced,max,storm,tx";
        let status = Some((bin.as_path(), data.as_path()));
        let mut results = run_loadgen(&opts, &addr, server.0.pid(), phases, status)?;
        let crashed = server.0.check_alive().err().map(|e| e.to_string());
        results["server_log"] = json!(server_log);
        results["tokens_add_s"] = json!(tokens);
        results["server_crashed"] = json!(crashed);
        server.0.stop();
        results
    };

    let echo = {
        let (guard, addr) = start_echo()?;
        let r = run_loadgen(&opts, &addr, guard.pid(), "ramp,idle,max", None)?;
        guard.stop();
        r
    };

    let machine = sys::machine();
    let (rows, goals) = table(&opts, &ours, &echo);
    print_table(&rows);
    let report = json!({
        "benchmark": "ocpp",
        "machine": machine,
        "config": {
            "server_bin": bin,
            "chargers": opts.chargers,
            "chargers_requested": opts.requested,
            "protocol": opts.proto.name(),
            "quick": opts.quick,
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "paced_rate": opts.rate,
            "tx_chargers": opts.tx_chargers,
        },
        "voltyard": ours,
        "echo": echo,
        "goals": goals,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    std::fs::write(&opts.json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", opts.json.display()))?;
    println!(
        "\n{} on {} × {} ({}); JSON: {}",
        report["machine"]["date"].as_str().unwrap_or("?"),
        report["machine"]["nproc"],
        report["machine"]["cpu_model"].as_str().unwrap_or("?"),
        report["machine"]["kernel"].as_str().unwrap_or("?"),
        opts.json.display()
    );
    if opts.quick {
        smoke_check(&ours, &echo)?;
        println!("quick: every phase ran and every call got its CALLRESULT");
    }
    Ok(())
}

/// Start `voltyard serve` on a free port; returns the guard and host:port.
fn start_server(bin: &Path, tmp: &Path, log: &Path) -> Result<(Killed, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let data = tmp.join("data");
    let cfg = tmp.join("bench.toml");
    // Long heartbeat, ping and idle intervals: the benchmark measures OCPP
    // traffic, not keep-alives.
    let toml = format!(
        "listen = \"{addr}\"\ndata_dir = {data:?}\nunknown_chargers = \"accept\"\nheartbeat_interval_s = 3600\nping_interval_s = 300\nidle_timeout_s = 900\n",
        data = data.display().to_string()
    );
    std::fs::write(&cfg, toml)?;
    let log_file = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        // The environment form of --data-dir would override the file.
        .env_remove("VOLTYARD_DATA")
        // The default level, whatever the caller's environment says, so runs
        // compare.
        .env("VOLTYARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut server = Killed {
        name: "voltyard serve",
        child,
    };
    let ready = sys::wait_for(Duration::from_secs(30), || {
        server.check_alive()?;
        Ok(std::net::TcpStream::connect(&addr).is_ok() && data.join("control.sock").exists())
    })
    .with_context(|| format!("server log: {}", log.display()))?;
    if !ready {
        bail!(
            "voltyard serve did not listen on {addr} within 30 s (log: {})",
            log.display()
        );
    }
    eprintln!(
        "xtask: voltyard serve (pid {}) on {addr}, data dir {}",
        server.pid(),
        data.display()
    );
    Ok((server, addr))
}

/// One RFID token per charger that takes part in the transaction phase: a
/// token in an open session on one charger is ConcurrentTx on every other.
/// Added with the real CLI, a few processes at a time. Returns the seconds taken.
fn add_tokens(bin: &Path, data: &Path, n: usize) -> Result<f64> {
    let start = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(1);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i > n {
                            return Ok(());
                        }
                        let tag = format!("BT{i:06}");
                        let mut cmd = Command::new(bin);
                        cmd.arg("--data-dir")
                            .arg(data)
                            .args(["token", "add", &tag, "--note", "bench"])
                            .env_remove("VOLTYARD_DATA");
                        let out = sys::run_bounded(&mut cmd, Duration::from_secs(60))?;
                        if !out.status.success() {
                            bail!(
                                "voltyard token add {tag} failed ({}): {}",
                                out.status,
                                String::from_utf8_lossy(&out.stderr).trim()
                            );
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a token worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// Start the echo server; returns the guard and host:port it listens on.
fn start_echo() -> Result<(Killed, String)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["echo-server", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the echo server")?;
    let stdout = child.stdout.take().context("echo server stdout")?;
    let guard = Killed {
        name: "echo server",
        child,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .context("the echo server did not say where it listens within 10 s")?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .with_context(|| format!("echo server said {line:?}"))?
        .to_string();
    eprintln!("xtask: echo server (pid {}) on {addr}", guard.pid());
    Ok((guard, addr))
}

/// Run the load generator against `addr` (the process `pid`); returns its
/// phase results keyed by phase name. `status` (the voltyard binary and data
/// dir) is None for the echo server.
fn run_loadgen(opts: &Opts, addr: &str, pid: u32, phases: &str, status: Option<(&Path, &Path)>) -> Result<Value> {
    let echo = status.is_none();
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("loadgen")
        .args(["--addr", addr, "--pid", &pid.to_string(), "--phases", phases])
        .args(["--protocol", opts.proto.name()])
        .args(["--chargers", &opts.chargers.to_string()])
        .args(["--rate", &opts.rate.to_string()])
        .args(["--duration", &opts.duration.to_string()])
        .args(["--warmup", &opts.warmup.to_string()])
        .args(["--settle", &opts.settle.to_string()])
        .args(["--tx-chargers", &opts.tx_chargers.to_string()])
        // Fresh source addresses for the second run, clear of the first
        // run's TIME_WAIT sockets.
        .args(["--source-net", if echo { "2" } else { "1" }]);
    match status {
        Some((bin, data)) => {
            cmd.arg("--server-bin").arg(bin).arg("--data-dir").arg(data);
        }
        None => {
            cmd.arg("--echo");
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the load generator")?;
    let stdout = child.stdout.take().context("load generator stdout")?;
    let mut guard = Killed {
        name: "load generator",
        child,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Every phase is bounded inside the generator; this is the backstop.
    let steady = 3.0 * (opts.warmup + opts.duration + 40.0);
    let budget = Duration::from_secs_f64(180.0 + 30.0 + opts.settle + steady + 30.0 + 60.0 + 30.0 + 120.0);
    let deadline = Instant::now() + budget;
    let mut results = serde_json::Map::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let v: Value = serde_json::from_str(&line)
                    .with_context(|| format!("load generator printed {line:?}, not JSON"))?;
                let name = v.get("phase").and_then(Value::as_str).unwrap_or("?").to_string();
                results.insert(name, v);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("the load generator did not finish within {budget:?}; killed it");
            }
        }
    }
    let status = guard.child.wait()?;
    if !status.success() {
        bail!("the load generator failed with {status}");
    }
    Ok(Value::Object(results))
}

struct Row {
    phase: &'static str,
    figure: String,
    value: String,
    goal: String,
    pass: String,
}

fn row(phase: &'static str, figure: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        phase,
        figure: figure.into(),
        value: value.into(),
        goal: String::new(),
        pass: String::new(),
    }
}

/// A goal's verdict: None when this run cannot judge it (e.g. fewer chargers).
fn judged(mut r: Row, goal: &str, verdict: Option<bool>, goals: &mut Vec<Value>) -> Row {
    r.goal = goal.to_string();
    r.pass = match verdict {
        Some(true) => "PASS".into(),
        Some(false) => "MISS".into(),
        None => "n/a".into(),
    };
    goals.push(json!({"goal": goal, "figure": r.figure, "value": r.value, "pass": verdict}));
    r
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_f64()
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt(v: Option<f64>, show: impl Fn(f64) -> String) -> String {
    v.map(show).unwrap_or_else(|| "-".into())
}

fn bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1048576.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// p50 / p99 / p999 of the histogram `key` of a phase.
fn latency(v: &Value, key: &str) -> String {
    let q = |name: &str| f(v, &[key, name]);
    match (q("p50_ms"), q("p99_ms"), q("p999_ms")) {
        (Some(a), Some(b), Some(c)) => format!("{a:.2} / {b:.2} / {c:.2} ms"),
        _ => "-".into(),
    }
}

fn errors(v: &Value) -> String {
    match v.get("errors").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => {
            let total: f64 = m.values().filter_map(Value::as_f64).sum();
            let kinds: Vec<String> = m.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            format!("{} ({})", thousands(total), kinds.join(", "))
        }
        _ => "0".into(),
    }
}

fn table(opts: &Opts, ours: &Value, echo: &Value) -> (Vec<Row>, Vec<Value>) {
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    let n = opts.chargers;
    let full = n >= GOAL_CHARGERS;
    let null = Value::Null;
    let ph = |name: &str| ours.get(name).unwrap_or(&null);

    let ramp = ph("ramp");
    let accepted = f(ramp, &["accepted"]).unwrap_or(0.0);
    rows.push(judged(
        row(
            "ramp",
            "chargers connected and Accepted",
            format!("{} of {}", thousands(accepted), thousands(n as f64)),
        ),
        "19,000 on one server",
        full.then_some(accepted >= GOAL_CHARGERS as f64),
        &mut goals,
    ));
    rows.push(row(
        "ramp",
        "time until all Accepted",
        opt(f(ramp, &["time_to_all_s"]), |s| format!("{s:.1} s")),
    ));
    rows.push(row("ramp", "connect errors", errors(ramp)));

    let idle = ph("idle");
    rows.push(row(
        "idle",
        "server RSS before any connection",
        opt(f(idle, &["rss_before_bytes"]), bytes),
    ));
    rows.push(row(
        "idle",
        format!(
            "server RSS, {} idle chargers",
            thousands(f(idle, &["connected"]).unwrap_or(0.0))
        ),
        opt(f(idle, &["rss_idle_bytes"]), bytes),
    ));
    let per = f(idle, &["rss_per_charger_bytes"]);
    rows.push(judged(
        row("idle", "RSS per connected idle charger", opt(per, bytes)),
        "≤ 16 KiB",
        per.map(|p| p <= GOAL_RSS_PER_CHARGER),
        &mut goals,
    ));

    let paced = ph("paced");
    let achieved = f(paced, &["msgs_per_s"]);
    rows.push(row(
        "paced",
        "MeterValues msg/s: target / achieved",
        format!("{} / {}", thousands(opts.rate as f64), opt(achieved, thousands)),
    ));
    let p99 = f(paced, &["latency", "p99_ms"]);
    let at_rate = opts.rate == GOAL_P99_RATE;
    let kept_up = achieved.is_some_and(|a| a >= 0.95 * opts.rate as f64);
    rows.push(judged(
        row("paced", "reply latency p50 / p99 / p999", latency(paced, "latency")),
        "p99 ≤ 20 ms at 10,000 msg/s",
        at_rate.then(|| kept_up && p99.is_some_and(|p| p <= GOAL_P99_MS)),
        &mut goals,
    ));
    rows.push(row(
        "paced",
        "same, from when sent (not when due)",
        latency(paced, "service_latency"),
    ));
    steady_rows(&mut rows, "paced", paced);

    let max = ph("max");
    let sustained = f(max, &["msgs_per_s"]);
    rows.push(judged(
        row(
            "max",
            "MeterValues msg/s, durable (closed loop)",
            opt(sustained, thousands),
        ),
        "≥ 40,000 msg/s",
        Some(sustained.is_some_and(|s| s >= GOAL_DURABLE_MSGS)),
        &mut goals,
    ));
    rows.push(row("max", "reply latency p50 / p99 / p999", latency(max, "latency")));
    steady_rows(&mut rows, "max", max);

    let storm = ph("storm");
    let back = f(storm, &["accepted"]).unwrap_or(0.0);
    let t = f(storm, &["time_to_all_s"]);
    rows.push(row(
        "storm",
        "reconnected and Accepted",
        format!("{} of {}", thousands(back), thousands(n as f64)),
    ));
    rows.push(judged(
        row(
            "storm",
            "time until all Accepted again",
            opt(t, |s| format!("{s:.1} s")),
        ),
        "19,000 within 10 s",
        full.then(|| back >= GOAL_CHARGERS as f64 && t.is_some_and(|t| t <= GOAL_STORM_S)),
        &mut goals,
    ));
    rows.push(row("storm", "errors seen", errors(storm)));

    let tx = ph("tx");
    rows.push(row(
        "tx",
        "chargers (one token each) / transactions per s",
        format!(
            "{} / {}",
            thousands(f(tx, &["chargers"]).unwrap_or(0.0)),
            opt(f(tx, &["transactions_per_s"]), thousands)
        ),
    ));
    rows.push(row(
        "tx",
        "start + stop msg/s, durable",
        opt(f(tx, &["msgs_per_s"]), thousands),
    ));
    rows.push(row("tx", "reply latency p50 / p99 / p999", latency(tx, "latency")));
    rows.push(row(
        "tx",
        "server CPU per message",
        opt(f(tx, &["server_cpu_us_per_msg"]), |u| format!("{u:.1} µs")),
    ));
    rows.push(row(
        "tx",
        "answers not Accepted / errors",
        format!("{} / {}", f(tx, &["not_accepted"]).unwrap_or(0.0), errors(tx)),
    ));

    let emax = echo.get("max").unwrap_or(&null);
    let echo_rate = f(emax, &["msgs_per_s"]);
    rows.push(row("echo", "echo msg/s (same closed loop)", opt(echo_rate, thousands)));
    rows.push(row(
        "echo",
        "echo server CPU per message",
        opt(f(emax, &["server_cpu_us_per_msg"]), |u| format!("{u:.1} µs")),
    ));
    rows.push(row(
        "echo",
        "echo server RSS per idle connection",
        opt(f(echo.get("idle").unwrap_or(&null), &["rss_per_charger_bytes"]), bytes),
    ));
    let share = match (sustained, echo_rate) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    rows.push(judged(
        row(
            "limit",
            "voltyard msg/s ÷ echo msg/s",
            opt(share, |s| format!("{:.0} %", s * 100.0)),
        ),
        "≥ 40 %",
        Some(share.is_some_and(|s| s >= GOAL_ECHO_SHARE)),
        &mut goals,
    ));
    let cpu_ratio = match (f(max, &["server_cpu_us_per_msg"]), f(emax, &["server_cpu_us_per_msg"])) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    rows.push(row(
        "limit",
        "voltyard CPU/msg ÷ echo CPU/msg",
        opt(cpu_ratio, |r| format!("{r:.1} ×")),
    ));
    (rows, goals)
}

fn steady_rows(rows: &mut Vec<Row>, phase: &'static str, v: &Value) {
    rows.push(row(
        phase,
        "server CPU per message",
        opt(f(v, &["server_cpu_us_per_msg"]), |u| format!("{u:.1} µs")),
    ));
    rows.push(row(
        phase,
        "cores busy: server / load generator",
        match (f(v, &["server_cores_busy"]), f(v, &["loadgen_cores_busy"])) {
            (Some(a), Some(b)) => format!("{a:.2} / {b:.2}"),
            _ => "-".into(),
        },
    ));
    if let Some(threads) = v.get("server_thread_cores_busy").and_then(Value::as_object) {
        let mut busy: Vec<(&String, f64)> = threads.iter().filter_map(|(k, c)| Some((k, c.as_f64()?))).collect();
        busy.sort_by(|a, b| b.1.total_cmp(&a.1));
        let shown: Vec<String> = busy.iter().take(3).map(|(k, c)| format!("{k} {c:.2}")).collect();
        rows.push(row(phase, "server cores busy per thread", shown.join(", ")));
    }
    rows.push(row(
        phase,
        "server disk writes per message / messages per commit",
        format!(
            "{} / {}",
            opt(f(v, &["server_disk_write_bytes_per_msg"]), bytes),
            opt(f(v, &["msgs_per_commit"]), |m| format!("{m:.1}"))
        ),
    ));
    rows.push(row(phase, "server RSS at end", opt(f(v, &["server_rss_bytes"]), bytes)));
    rows.push(row(phase, "errors", errors(v)));
}

fn print_table(rows: &[Row]) {
    let head = ["phase", "figure", "value", "goal", "pass"];
    let cells = |r: &Row| {
        [
            r.phase.to_string(),
            r.figure.clone(),
            r.value.clone(),
            r.goal.clone(),
            r.pass.clone(),
        ]
    };
    let mut width = head.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in width.iter_mut().zip(cells(r)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |c: [String; 5]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |", parts.join(" | "))
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", line(head.map(String::from)));
    let _ = writeln!(out, "|{}|", width.map(|w| "-".repeat(w + 2)).join("|"));
    for r in rows {
        let _ = writeln!(out, "{}", line(cells(r)));
    }
}

/// `--quick` asserts no timing, only that every phase ran and every call
/// was answered with a CALLRESULT (and every status was Accepted).
fn smoke_check(ours: &Value, echo: &Value) -> Result<()> {
    let mut problems = Vec::new();
    let no_errors = |v: &Value| v.get("errors").and_then(Value::as_object).is_some_and(|m| m.is_empty());
    for name in ["ramp", "idle", "paced", "max", "storm", "tx"] {
        let Some(v) = ours.get(name) else {
            problems.push(format!("phase {name} did not run"));
            continue;
        };
        let all_of = |field: &str| f(v, &[field]) == f(v, &["chargers"]);
        let ok = match name {
            "ramp" | "storm" => all_of("accepted") && no_errors(v),
            "idle" => f(v, &["connected"]).is_some_and(|c| c > 0.0),
            "tx" => f(v, &["transactions_per_s"]).is_some_and(|t| t > 0.0) && no_errors(v),
            _ => f(v, &["answered_in_window"]).is_some_and(|a| a > 0.0) && no_errors(v),
        };
        if !ok {
            problems.push(format!("{name}: {v}"));
        }
    }
    for name in ["ramp", "max"] {
        match echo.get(name) {
            Some(v) if no_errors(v) => {}
            Some(v) => problems.push(format!("echo {name}: {v}")),
            None => problems.push(format!("echo phase {name} did not run")),
        }
    }
    if !problems.is_empty() {
        bail!("bench --quick: {}", problems.join("\n"));
    }
    Ok(())
}
