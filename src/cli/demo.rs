//! `voltyard demo`: a server on a scratch data dir, the demo site set up
//! through the control API, and the simulator driving it, with a live view
//! on a terminal and logs otherwise.

use crate::billing::Scope;
use crate::control::client::{Client, ClientError};
use crate::control::proto::{ChargerAdd, ErrorKind, Request, TokenAdd};
use crate::domain::{Access, TokenKind};
use crate::server::ServerConfig;
use crate::sim::scenario::TokenKind as SimTokenKind;
use crate::sim::{Options, Plan, Scenario, Simulation, Summary};
use anyhow::Context;
use clap::Args;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
pub struct DemoArgs {
    /// Where the OCPP endpoint listens (a busy port falls back to a free one).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Site to simulate: a built-in scenario name or a scenario file.
    #[arg(long, value_name = "FILE|NAME", default_value = "demo")]
    scenario: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this long (e.g. 2m); default: until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

pub async fn run(args: DemoArgs, data_dir: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let live = std::io::stdout().is_terminal() && !json;
    super::init_logging_at(if live { "warn" } else { "info" });
    let scenario = Scenario::load(&args.scenario)?;
    // A scratch dir unless the operator named one; removed when the demo ends.
    let scratch = match &data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("voltyard-demo-").tempdir()?),
    };
    let dir = data_dir.unwrap_or_else(|| scratch.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_default());
    let mut cfg = ServerConfig {
        listen: args.listen,
        data_dir: dir.clone(),
        ..ServerConfig::default()
    };
    let running = match crate::server::start(cfg.clone()).await {
        Ok(r) => r,
        Err(e) if args.listen.port() != 0 => {
            tracing::warn!("{e:#}; using a free port instead");
            cfg.listen = SocketAddr::new(args.listen.ip(), 0);
            crate::server::start(cfg).await?
        }
        Err(e) => return Err(e),
    };
    let url = format!("ws://{}/ocpp", running.addr);
    let socket = running.shared.config.control_socket();
    let mut client = Client::connect(&socket).await?;
    provision(&mut client, &scenario, args.seed).await?;
    eprintln!(
        "voltyard demo: OCPP at {url}/{{id}}, data in {}{}",
        dir.display(),
        if scratch.is_some() { " (removed on exit)" } else { "" }
    );
    eprintln!(
        "  try: voltyard --data-dir {} charger list   (Ctrl-C stops the demo)",
        dir.display()
    );
    let sim = Simulation::start(Options {
        url,
        scenario,
        seed: args.seed,
        validate: true,
        connect_rate: 50,
        call_timeout: Duration::from_secs(30),
    });
    super::simulate::until_stopped(args.duration, Duration::from_secs(1), async |n| {
        let s = sim.summary();
        if live {
            let screen = dashboard(&mut client, &s, &dir).await;
            print!("\x1b[H\x1b[2J{screen}");
            let _ = std::io::stdout().flush();
        } else if n.is_multiple_of(10) {
            tracing::info!("demo: {}", s.line());
        }
    })
    .await;
    let summary = sim.stop().await;
    running.stop();
    if live {
        print!("\x1b[H\x1b[2J");
    }
    super::simulate::report(&summary, json);
    drop(scratch);
    Ok(())
}

/// Whatever is already there (a kept `--data-dir` from an earlier demo)
/// stays as it is.
fn created_or_there(r: Result<Value, ClientError>) -> Result<(), ClientError> {
    match r {
        Err(ClientError::Api(e)) if e.kind == ErrorKind::Conflict => Ok(()),
        other => other.map(drop),
    }
}

const DEMO_TARIFF: &str = include_str!("../../scenarios/demo-tariff.json");

/// The demo site, its tariff, tokens and chargers, created like an operator would.
async fn provision(client: &mut Client, s: &Scenario, seed: u64) -> anyhow::Result<()> {
    let site = client
        .call(Request::SiteAdd {
            name: s.site.id.clone(),
            timezone: s.site.timezone.clone(),
            access: Access::Public,
        })
        .await;
    created_or_there(site).context("creating the demo site")?;
    // Every session the demo completes is priced and gets a receipt.
    client
        .call(Request::TariffSet {
            text: DEMO_TARIFF.to_string(),
            scope: Some(Scope::Site(s.site.id.clone())),
            from: None,
            until: None,
        })
        .await
        .context("setting the demo tariff")?;
    for (uid, kind, group) in crate::sim::tokens(s) {
        let kind = match kind {
            SimTokenKind::Rfid => TokenKind::Rfid,
            SimTokenKind::Vehicle => TokenKind::Vehicle,
        };
        let token = client
            .call(Request::TokenAdd(TokenAdd {
                uid,
                kind,
                group,
                expires: None,
                note: Some("demo".into()),
            }))
            .await;
        created_or_there(token).context("adding the demo tokens")?;
    }
    for c in &s.circuits {
        let added = client
            .call(Request::CircuitAdd {
                id: c.id.clone(),
                site: s.site.id.clone(),
                parent: c.parent.clone(),
                max_current: c.max_current.map(f64::from),
                phases: 3,
            })
            .await;
        created_or_there(added).with_context(|| format!("adding circuit {}", c.id))?;
    }
    for c in Plan::new(s, seed).chargers {
        let added = client
            .call(Request::ChargerAdd(ChargerAdd {
                id: c.id.clone(),
                site: Some(s.site.id.clone()),
                circuit: c.circuit.clone(),
                max_current: Some(c.max_current_a),
                max_power_w: c.max_power_kw.map(|kw| kw * 1000),
                phases: Some(c.phases),
                phase_rotation: Some(c.phase_rotation.clone()),
                password: None,
            }))
            .await;
        created_or_there(added).with_context(|| format!("registering {}", c.id))?;
    }
    Ok(())
}

/// The live view: what the server knows (through the control API, like
/// any client) and what the simulator sees. Fits 80×24 for the demo site.
async fn dashboard(client: &mut Client, s: &Summary, dir: &Path) -> String {
    let chargers = client.call(Request::ChargerList).await.unwrap_or(Value::Null);
    let sessions = client
        .call(Request::SessionList {
            charger: None,
            status: Some(crate::domain::SessionStatus::Active),
            limit: None,
        })
        .await
        .unwrap_or(Value::Null);
    let mut out = format!(
        "voltyard demo — {} — Ctrl-C to stop\r\n{}\r\n\r\n",
        dir.display(),
        s.line()
    );
    out.push_str(&format!(
        "{:<12} {:<10} {:<6} {}\r\n",
        "charger", "protocol", "online", "connectors"
    ));
    for c in chargers.as_array().into_iter().flatten() {
        // EVSE 0 is the charger as a whole (1.6 connector 0).
        let conns: Vec<String> = c["connectors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["evse"].as_u64().unwrap_or(0) > 0)
            .map(|k| format!("{}:{}", k["evse"], k["status"].as_str().unwrap_or("?")))
            .collect();
        out.push_str(&format!(
            "{:<12} {:<10} {:<6} {}\r\n",
            c["id"].as_str().unwrap_or("?"),
            c["protocol"].as_str().unwrap_or("-"),
            if c["connected"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            conns.join(" ")
        ));
    }
    let active = sessions.as_array().map(|a| a.len()).unwrap_or(0);
    let energy: u64 = sessions
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["energy_wh"].as_u64())
        .sum();
    out.push_str(&format!(
        "\r\n{active} sessions active, {:.1} kWh in them so far\r\n",
        energy as f64 / 1000.0
    ));
    // Load management: measured load against each circuit's limit.
    let dlm = client.call(Request::DlmStatus).await.unwrap_or(Value::Null);
    for site in dlm["sites"].as_array().into_iter().flatten() {
        let circuits = site["circuits"].as_array().cloned().unwrap_or_default();
        // Parents first: the grid connection, then its boards.
        let depth = |c: &Value| {
            let mut d = 0;
            let mut parent = c["parent"].as_str();
            while let Some(p) = parent.filter(|_| d < 32) {
                d += 1;
                parent = circuits
                    .iter()
                    .find(|x| x["id"] == p)
                    .and_then(|x| x["parent"].as_str());
            }
            d
        };
        let mut ordered: Vec<&Value> = circuits.iter().collect();
        ordered.sort_by_key(|c| depth(c));
        for c in ordered {
            let phase = |i: usize| {
                format!(
                    "L{} {:>5.1}/{:<3.0}",
                    i + 1,
                    c["measured"][i].as_f64().unwrap_or(0.0),
                    c["limit"][i].as_f64().unwrap_or(0.0)
                )
            };
            out.push_str(&format!(
                "{:<12} {}  {}  {} A\r\n",
                c["id"].as_str().unwrap_or("?"),
                phase(0),
                phase(1),
                phase(2)
            ));
        }
    }
    out
}
