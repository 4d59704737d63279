//! What the benchmark reads from the operating system (/proc), the guard
//! that ends the child processes it started, and a small flag parser.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

/// CPU time (user + system) a process has used so far, in microseconds.
pub fn cpu_us(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    stat_cpu_us(&stat).with_context(|| format!("{path}: no utime/stime"))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant of the C library.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// CPU time per thread name (e.g. `store-writer`, `tokio-rt-worker`), in
/// microseconds: shows whether one thread is the bottleneck. Threads that
/// exited are not counted.
pub fn thread_cpu_us(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(n, _)| n.to_string());
        let Some(name) = name else { continue };
        if let Some(us) = stat_cpu_us(&stat) {
            *out.entry(name).or_default() += us;
        }
    }
    out
}

/// utime + stime of a /proc stat line, in microseconds.
fn stat_cpu_us(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses; the
    // fields we want are counted from the last ')'. Field 3 (state) is index
    // 0 there, so utime (14) and stime (15) are 11 and 12.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / clock_ticks())
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("{path}: no VmRSS"))?;
    Ok(kib * 1024)
}

/// Bytes a process has caused to be written to storage (`write_bytes` of
/// /proc/PID/io); None where the kernel does not account it.
pub fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Raise this process's open-file soft limit to its hard limit; returns the new limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// The hard limit on open files per process.
pub fn nofile_hard() -> u64 {
    rlimit::Resource::NOFILE.get().map(|(_, hard)| hard).unwrap_or(1024)
}

/// Facts about the machine the figures were measured on.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": model,
        "kernel": kernel,
        "mem_total_bytes": mem_kib * 1024,
        "nofile_hard_limit": nofile_hard(),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// A child process that is killed (by its own PID) and reaped when the
/// guard goes away, on success and on every error path alike.
pub struct Killed {
    pub name: &'static str,
    pub child: Child,
}

impl Killed {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the child has already exited: a crashed server must not be
    /// mistaken for a slow one.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} (pid {}) exited early with {status}", self.name, self.child.id());
        }
        Ok(())
    }

    /// Stop the child and report how it ended (None: it was still running).
    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        let early = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        early
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a command to completion, killing it if it takes longer than `limit`.
pub fn run_bounded(cmd: &mut std::process::Command, limit: Duration) -> Result<std::process::Output> {
    use std::process::Stdio;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Ok(out?),
        Err(_) => {
            // The waiting thread owns the Child and has not reaped it, so the
            // PID is still the one we started.
            // SAFETY: kill(2) with a PID and a signal number has no memory effects.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            bail!("{cmd:?} took longer than {limit:?} and was killed")
        }
    }
}

/// Wait for `cond` to hold, polling, for at most `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<bool> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// `--name value`, `--name=value` and bare `--switch` flags.
pub struct Flags {
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    /// Refuses a flag in neither list, so a typo is not silently ignored.
    pub fn parse(args: &[String], switches: &[&str], valued: &[&str]) -> Result<Flags> {
        let mut values = BTreeMap::new();
        let mut set = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(flag) = a.strip_prefix("--") else {
                bail!("unexpected argument {a:?}");
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (flag, None),
            };
            if switches.contains(&name) && inline.is_none() {
                set.push(name.to_string());
            } else if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v.to_string(),
                    None => it.next().with_context(|| format!("--{name} needs a value"))?.clone(),
                };
                values.insert(name.to_string(), v);
            } else {
                bail!("unknown flag --{name}");
            }
        }
        Ok(Flags { values, switches: set })
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.str(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| anyhow::anyhow!("--{name}: {v:?} is not a valid number"))
            })
            .transpose()
    }
}
