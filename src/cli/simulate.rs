//! `voltyard simulate`: run virtual chargers against any CSMS URL.

use crate::sim::scenario::ProtocolChoice;
use crate::sim::{Credentials, Options, Plan, Scenario, Simulation, Summary};
use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Args)]
pub struct SimulateArgs {
    /// CSMS endpoint; each charger connects to URL/{chargerId}.
    #[arg(long, value_name = "URL", required_unless_present = "plan")]
    url: Option<String>,
    /// Number of chargers (a generic site; not with --scenario).
    #[arg(long, value_name = "N", conflicts_with = "scenario")]
    chargers: Option<u32>,
    /// OCPP version of the chargers: 1.6, 2.0.1 or mix.
    #[arg(long, value_name = "VERSION")]
    protocol: Option<ProtocolChoice>,
    /// Connectors per charger (generic site).
    #[arg(long, value_name = "K", default_value_t = 1, conflicts_with = "scenario")]
    connectors: u32,
    /// Same seed, same chargers, cars and visits.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// A scenario file (.toml / .json) or a built-in one: demo, office,
    /// apartments, depot, retail-dc.
    #[arg(long, value_name = "FILE|NAME")]
    scenario: Option<String>,
    /// Stop after this long (e.g. 90s, 10m); default: until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Percent of chargers with a real-world quirk (overrides the scenario).
    #[arg(long, value_name = "PERCENT")]
    misbehave: Option<u32>,
    /// New connections per second while the chargers come up.
    #[arg(long, value_name = "N", default_value_t = 200)]
    connect_rate: u32,
    /// Seconds a charger waits for the server's answer to a CALL.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    call_timeout: u64,
    /// Do not check every frame against the OCPP JSON schemas.
    #[arg(long)]
    no_validate: bool,
    /// HTTP Basic password of the chargers (security profiles 1 and 2).
    #[arg(long, value_name = "PASSWORD", env = "VOLTYARD_SIM_PASSWORD")]
    password: Option<String>,
    /// CA certificate (PEM) to trust for a wss:// URL.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) for security profile 3; `{id}` is replaced by the charger id.
    #[arg(long, value_name = "FILE")]
    client_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM); `{id}` is replaced by the charger id.
    #[arg(long, value_name = "FILE")]
    client_key: Option<std::path::PathBuf>,
    /// Print the chargers and their first visits, then exit (no network).
    #[arg(long)]
    plan: bool,
}

impl SimulateArgs {
    fn scenario(&self) -> anyhow::Result<Scenario> {
        let mut s = match &self.scenario {
            Some(name) => Scenario::load(name)?,
            None => Scenario::generic(
                self.chargers.unwrap_or(10),
                self.protocol.unwrap_or(ProtocolChoice::Mix),
                self.connectors,
            ),
        };
        if let (Some(p), Some(_)) = (self.protocol, &self.scenario) {
            s.chargers.iter_mut().for_each(|g| g.protocol = p);
        }
        if let Some(m) = self.misbehave {
            if m > 100 {
                bail!("--misbehave: a percentage, 0 to 100");
            }
            s.misbehaviour.percent = m;
        }
        if self.chargers == Some(0) || !(1..=8).contains(&self.connectors) {
            bail!("--chargers must be at least 1 and --connectors 1 to 8");
        }
        Ok(s)
    }
}

pub async fn run(args: SimulateArgs, json: bool) -> anyhow::Result<bool> {
    let scenario = args.scenario()?;
    if args.plan {
        print_plan(&scenario, args.seed, json);
        return Ok(true);
    }
    let url = args.url.clone().context("--url is required")?;
    if !url.starts_with("ws://") && !url.starts_with("wss://") {
        bail!("--url must start with ws:// or wss:// (got {url})");
    }
    if url.starts_with("wss://") && args.ca_file.is_none() {
        bail!("--ca-file: wss:// needs the CA certificate (PEM) that signed the server's certificate");
    }
    if args.client_cert.is_some() != args.client_key.is_some() {
        bail!("--client-cert and --client-key go together");
    }
    let credentials = Credentials {
        password: args.password.clone(),
        ca_file: args.ca_file.clone(),
        client_cert: args.client_cert.clone(),
        client_key: args.client_key.clone(),
    };
    let sim = Simulation::start_with(
        Options {
            url,
            scenario,
            seed: args.seed,
            validate: !args.no_validate,
            connect_rate: args.connect_rate,
            call_timeout: Duration::from_secs(args.call_timeout.max(1)),
        },
        credentials,
    );
    watch(&sim, args.duration).await;
    let summary = sim.stop().await;
    report(&summary, json);
    Ok(summary.schema_violations == 0 && summary.accepted + summary.connects > 0)
}

/// Call `tick` every `period` until `duration` has passed, or Ctrl-C /
/// SIGTERM.
pub async fn until_stopped(duration: Option<Duration>, period: Duration, mut tick: impl AsyncFnMut(u64)) {
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let stop = crate::server::shutdown_signal();
    tokio::pin!(stop);
    let mut every = tokio::time::interval(period);
    let mut n = 0u64;
    loop {
        let until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep_until(until) => if deadline.is_some() { break },
            _ = every.tick() => {
                n += 1;
                tick(n).await;
            }
        }
    }
}

/// A live line until the duration ends or Ctrl-C: a spinner on a terminal,
/// a log line every 10 s otherwise.
pub async fn watch(sim: &Simulation, duration: Option<Duration>) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").unwrap_or(ProgressStyle::default_spinner()),
        );
        b
    });
    until_stopped(duration, Duration::from_millis(500), async |n| {
        let line = sim.summary().line();
        match &bar {
            Some(b) => {
                b.set_message(line);
                b.tick();
            }
            None if n.is_multiple_of(20) => eprintln!("simulate: {line}"),
            None => {}
        }
    })
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

pub fn report(s: &Summary, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    println!(
        "{} chargers for {:.0} s: {} sessions started, {} completed, {:.1} kWh",
        s.chargers,
        s.elapsed_s,
        s.sessions_started,
        s.sessions_completed,
        s.energy_wh as f64 / 1000.0
    );
    println!(
        "messages {} sent, {} received; {} server CALLs answered; connects {} (failed {}), drops {}, replayed {}",
        s.messages_sent,
        s.messages_received,
        s.calls_answered,
        s.connects,
        s.connect_failures,
        s.disconnects,
        s.replayed
    );
    println!(
        "errors: {} CALLERRORs from the server, {} sent, {} timeouts, {} schema violations, {} authorizations refused",
        s.call_errors_received, s.call_errors_sent, s.timeouts, s.schema_violations, s.auth_rejected
    );
    for e in &s.errors {
        println!("  {e}");
    }
}

fn print_plan(s: &Scenario, seed: u64, json: bool) {
    let plan = Plan::new(s, seed);
    let rows: Vec<serde_json::Value> = plan
        .chargers
        .iter()
        .map(|c| {
            let visits: Vec<_> = (1..=c.connectors)
                .map(|k| {
                    let mut v = crate::sim::Visits::new(s, c, k);
                    v.next_visit()
                })
                .collect();
            serde_json::json!({"charger": c, "first_visits": visits})
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return;
    }
    for (c, r) in plan.chargers.iter().zip(&rows) {
        let v = &r["first_visits"][0];
        println!(
            "{:<14} {:<9} {}×{:?} {:>3} A {}{}  first car: {} after {} s, {} for {} s ({})",
            c.id,
            c.protocol,
            c.connectors,
            c.supply,
            c.max_current_a,
            if c.signed_meter { "signed " } else { "" },
            c.quirk.map(|q| format!("[{q:?}]")).unwrap_or_default(),
            v["car"].as_str().unwrap_or("?"),
            v["wait_s"],
            v["token"].as_str().unwrap_or("?"),
            v["dwell_s"],
            s.site.name,
        );
    }
}
