//! `voltyard demo`: a server on a scratch data dir, the demo site set up
//! through the control API, and the simulator driving it, with the
//! dashboard (`voltyard tui`) on a terminal and logs otherwise.

use crate::billing::Scope;
use crate::control::client::{Client, ClientError};
use crate::control::proto::{ChargerAdd, ErrorKind, Request, TokenAdd};
use crate::domain::{Access, TokenKind};
use crate::server::ServerConfig;
use crate::sim::scenario::TokenKind as SimTokenKind;
use crate::sim::{Options, Plan, Scenario, Simulation};
use anyhow::Context;
use clap::Args;
use serde_json::Value;
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
    let live = crate::tui::check_terminal().is_ok() && !json;
    let scenario = Scenario::load(&args.scenario)?;
    // A scratch dir unless the operator named one; removed when the demo ends.
    let scratch = match &data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("voltyard-demo-").tempdir()?),
    };
    let dir = data_dir.unwrap_or_else(|| scratch.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_default());
    if live {
        // The dashboard owns the terminal: the server's logs go to a file.
        std::fs::create_dir_all(&dir)?;
        log_to_file(&dir.join("demo.log"))?;
    } else {
        super::init_logging_at("info");
    }
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
        "  try: voltyard --data-dir {} charger list   ({} stops the demo)",
        dir.display(),
        if live { "q in the dashboard" } else { "Ctrl-C" }
    );
    let sim = Simulation::start(Options {
        url,
        scenario,
        seed: args.seed,
        validate: true,
        connect_rate: 50,
        call_timeout: Duration::from_secs(30),
    });
    if live {
        let stop = async {
            match args.duration {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = crate::server::shutdown_signal() => {}
                    }
                }
                None => crate::server::shutdown_signal().await,
            }
        };
        let shown = crate::tui::run(crate::tui::Options::new(&dir, false, false), stop).await;
        if let Err(e) = shown {
            tracing::error!("dashboard: {e}");
            eprintln!("error: the dashboard stopped: {e}");
        }
    } else {
        super::simulate::until_stopped(args.duration, Duration::from_secs(1), async |n| {
            if n.is_multiple_of(10) {
                tracing::info!("demo: {}", sim.summary().line());
            }
        })
        .await;
    }
    let summary = sim.stop().await;
    running.stop();
    super::simulate::report(&summary, json);
    drop(scratch);
    Ok(())
}

/// Logs at warn (or VOLTYARD_LOG) to `path`, appended.
fn log_to_file(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOLTYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
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
    // ISO 15118 cars on 2.0.1 chargers present their driver's contract id
    // (Plug & Charge) instead of the card.
    let contracts: Vec<_> = if s.cars.iter().any(|c| c.iso15118) {
        crate::sim::tokens(s)
            .into_iter()
            .map(|(uid, _, group)| (crate::sim::pnc_emaid(&uid), SimTokenKind::Contract, group))
            .collect()
    } else {
        Vec::new()
    };
    for (uid, kind, group) in crate::sim::tokens(s).into_iter().chain(contracts) {
        let kind = match kind {
            SimTokenKind::Rfid => TokenKind::Rfid,
            SimTokenKind::Vehicle => TokenKind::Vehicle,
            SimTokenKind::Contract => TokenKind::Contract,
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
                security_profile: None,
            }))
            .await;
        created_or_there(added).with_context(|| format!("registering {}", c.id))?;
    }
    Ok(())
}
