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
    // The command name (field 2) may contain spaces and parentheses; the
    // fields we want are counted from the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("{path}: no ')'"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize, name: &str| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .with_context(|| format!("{path}: no {name}"))
    };
    // Field 3 (state) is index 0 here, so utime (14) and stime (15) are 11 and 12.
    let ticks = field(11, "utime")? + field(12, "stime")?;
    Ok(ticks * 1_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant of the C library.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
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
    pub fn parse(args: &[String], switches: &[&str]) -> Result<Flags> {
        let mut values = BTreeMap::new();
        let mut set = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                bail!("unexpected argument {a:?}");
            };
            if let Some((k, v)) = name.split_once('=') {
                values.insert(k.to_string(), v.to_string());
            } else if switches.contains(&name) {
                set.push(name.to_string());
            } else {
                let v = it.next().with_context(|| format!("--{name} needs a value"))?;
                values.insert(name.to_string(), v.clone());
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

    /// Refuse flags nobody asked for, so a typo is not silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<()> {
        for k in self.values.keys().chain(self.switches.iter()) {
            if !known.contains(&k.as_str()) {
                bail!("unknown flag --{k}");
            }
        }
        Ok(())
    }
}
