//! The command line: parse, call the control API, print a table or JSON.
//! Exit codes: 0 success, 1 refused or failed, 2 bad usage, 3 no server.

mod charger;
mod charger_ops;
mod charger_security;
mod circuit;
mod demo;
mod device;
mod dlm;
pub mod dlm_plan;
mod meter;
mod output;
mod pnc;
mod price;
mod receipt;
mod reservation;
mod session;
mod simulate;
mod site;
mod tariff;
mod tariff_price;
mod token;
mod transfer;
mod tui;
pub(crate) mod verify;

use crate::control::client::{Client, ClientError, Target};
use crate::control::proto::{ErrorKind, Request};
use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "voltyard",
    version,
    about = "A complete Charge Point Management System in one binary",
    after_help = "Examples:\n  voltyard serve --listen 0.0.0.0:9000 --data-dir /var/lib/voltyard\n  voltyard charger add CP-001\n  voltyard --json charger list\n  voltyard session list --json\n  voltyard --server tls://cpms.example:9444 --token-file control.token --ca-file ca.pem charger list"
)]
pub struct Cli {
    /// Data directory of the server to use (holds the database and control.sock).
    #[arg(long, global = true, env = "VOLTYARD_DATA", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print JSON instead of a table (also accepted after the verb).
    #[arg(long, global = true)]
    json: bool,
    /// Reach a remote server's TCP control listener instead of the local socket.
    #[arg(long, global = true, env = "VOLTYARD_SERVER", value_name = "tls://HOST:PORT")]
    server: Option<String>,
    /// File holding the server's control token (for --server); or set VOLTYARD_TOKEN to the token itself.
    #[arg(long, global = true, env = "VOLTYARD_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for the server's certificate (for --server).
    #[arg(long, global = true, env = "VOLTYARD_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server: OCPP endpoint, store and control socket.
    #[command(
        after_help = "Example:\n  voltyard serve --listen 0.0.0.0:9000 --data-dir ./voltyard-data\n\nChargers connect to ws://HOST:PORT/ocpp/{chargePointId} with subprotocol ocpp1.6 or ocpp2.0.1."
    )]
    Serve {
        /// Address to listen on [default: 0.0.0.0:9000].
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// TOML file with server settings (see docs/configuration.md).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Chargers: register, accept, inspect and command them.
    #[command(subcommand)]
    Charger(charger::ChargerCmd),
    /// Tokens (RFID cards, vehicle ids, contracts, app users).
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Charging sessions: list, inspect, remote start and stop.
    #[command(subcommand)]
    Session(session::SessionCmd),
    /// Sites: time zone and access policy.
    #[command(subcommand)]
    Site(site::SiteCmd),
    /// Reservations: hold a connector for a token until it expires.
    #[command(subcommand)]
    Reservation(reservation::ReservationCmd),
    /// ISO 15118 Plug & Charge: the contract-certificate source and the local test PKI.
    #[command(subcommand)]
    Pnc(pnc::PncCmd),
    /// Certificates the server's PKI issued: revoke a contract certificate.
    #[command(subcommand)]
    Cert(pnc::CertCmd),
    /// Circuits: the grid connection and boards chargers hang off, with per-phase limits.
    #[command(subcommand)]
    Circuit(circuit::CircuitCmd),
    /// Meters of load voltyard does not control (pushed, OCPP or Modbus TCP).
    #[command(subcommand)]
    Meter(meter::MeterCmd),
    /// Energy prices that load management shifts flexible charging by.
    #[command(subcommand)]
    Price(price::PriceCmd),
    /// Dynamic load management: live status, or a dry run of the optimiser.
    #[command(subcommand)]
    Dlm(dlm::DlmCmd),
    /// OCPI tariffs: store, assign (site, charger, token group) and unassign, list, remove, price offline.
    #[command(subcommand)]
    Tariff(tariff::TariffCmd),
    /// The receipt of a completed session: text for the driver, JSON, or the Transparenzsoftware XML.
    Receipt(receipt::ReceiptArgs),
    /// Check signed meter data offline: OCMF records, a Transparenzsoftware XML file or a receipt JSON.
    #[command(after_help = "Examples:
  voltyard verify receipt.xml
  voltyard verify 42.json                  (a receipt from `voltyard receipt 42 --format json`)
  voltyard verify records.txt --key 3059301306072A8648CE3D0201…

Exit status 0 when every record verifies and every transaction passes, 1 when anything fails, 2 when the input or the key cannot be read.")]
    Verify {
        /// OCMF records (one per line), a Transparenzsoftware XML file or a receipt JSON; `-` reads stdin.
        file: PathBuf,
        /// The meter's public key (text or a file holding it); overrides keys in the input.
        #[arg(long)]
        key: Option<String>,
    },
    /// Server health: version, connected chargers, commits.
    #[command(after_help = "Example:\n  voltyard status --json")]
    Status,
    /// Recent notable events: boots, faults, inferred session ends, orphan stops.
    #[command(after_help = "Example:\n  voltyard events --limit 20")]
    Events {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The live dashboard: sites, circuits, chargers, sessions, alerts and OCPP frames, with actions.
    #[command(after_help = "Examples:
  voltyard tui
  voltyard --data-dir /var/lib/voltyard tui --readonly
  ssh -t site-server voltyard tui --no-color

Keys: ? lists them on every screen; q quits. Needs a terminal (exit 2 without one), exit 3 when no server runs.")]
    Tui(tui::TuiArgs),
    /// The demo: a server on a scratch data dir with a simulated site.
    #[command(
        after_help = "Examples:\n  cargo run --release -- demo\n  voltyard demo --scenario office --duration 10m\n  voltyard --data-dir ./demo-data demo   (keep the data afterwards)"
    )]
    Demo(demo::DemoArgs),
    /// Virtual chargers and cars speaking OCPP-J to any CSMS.
    #[command(
        after_help = "Examples:\n  voltyard simulate --url ws://127.0.0.1:9000/ocpp --chargers 50 --protocol mix --duration 10m\n  voltyard simulate --url ws://csms.example:9000/ocpp --scenario office --seed 7\n  voltyard simulate --scenario scenarios/depot.toml --plan   (what would run, no network)\n  voltyard simulate --url wss://csms.example:9443/ocpp --ca-file server-ca.pem --password s3cret-16-chars-or-more\n  voltyard simulate --url wss://csms.example:9443/ocpp --ca-file server-ca.pem --client-cert certs/{id}.pem --client-key certs/{id}.key\n\nExit status 1 when a frame broke the OCPP schemas or no charger got connected."
    )]
    Simulate(simulate::SimulateArgs),
    /// Print shell completions.
    #[command(after_help = "Example:\n  voltyard completions bash > /etc/bash_completion.d/voltyard")]
    Completions { shell: clap_complete::Shell },
}

/// Entry point for `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let data_dir = cli.data_dir.clone();
    let target = target(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.cmd {
        Cmd::Serve { listen, config } => {
            init_logging();
            match runtime.block_on(serve(listen, config, data_dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "voltyard", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Cmd::Tui(args) => match target {
            Ok(server) => tui::main(&runtime, args, data_dir, server),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Demo(args) => match runtime.block_on(demo::run(args, data_dir, json)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Cmd::Dlm(dlm::DlmCmd::Plan(args)) => match dlm_plan::run_cli(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Cmd::Tariff(tariff::TariffCmd::Price { tariff, session }) => match tariff::price(&tariff, &session, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Verify { file, key } => match verify::run(&file, key.as_deref(), json) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Cmd::Simulate(args) => {
            init_logging_at("warn");
            match runtime.block_on(simulate::run(args, json)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        cmd => {
            let target = match target {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let ctx = Ctx {
                target: target.unwrap_or_else(|| {
                    Target::Socket(
                        data_dir
                            .unwrap_or_else(|| PathBuf::from("voltyard-data"))
                            .join("control.sock"),
                    )
                }),
                json,
            };
            match runtime.block_on(run(&ctx, cmd)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let code = exit_code(&e);
                    eprintln!("error: {e}");
                    if let ClientError::Api(api) = &e
                        && let Some(r) = &api.result
                        && json
                    {
                        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
                    }
                    ExitCode::from(code)
                }
            }
        }
    }
}

/// The remote server named by `--server`, with its token and trusted CA.
fn target(cli: &Cli) -> Result<Option<Target>, String> {
    let Some(url) = &cli.server else {
        return Ok(None);
    };
    let (host, port) = crate::control::remote::Remote::parse_url(url).map_err(|e| format!("--server: {e}"))?;
    let token = match (&cli.token_file, std::env::var("VOLTYARD_TOKEN")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("--token-file {}: {e}", path.display()))?
            .trim()
            .to_string(),
        (None, Ok(token)) => token.trim().to_string(),
        (None, Err(_)) => return Err("--server needs --token-file PATH (or VOLTYARD_TOKEN)".into()),
    };
    if token.is_empty() {
        return Err("--token-file: the file holds no token".into());
    }
    let ca_file = cli
        .ca_file
        .clone()
        .ok_or("--server needs --ca-file PEM: the CA that signed the server's certificate")?;
    Ok(Some(Target::Tls(crate::control::remote::Remote {
        host,
        port,
        token,
        ca_file,
    })))
}

fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Unreachable { .. } | ClientError::Remote { .. } => 3,
        ClientError::Setup(_) => 2,
        ClientError::Api(api) if api.kind == ErrorKind::Invalid => 2,
        _ => 1,
    }
}

fn init_logging() {
    init_logging_at("info");
}

/// Logs to stderr at `level` unless VOLTYARD_LOG says otherwise; colours
/// only on a terminal, so files and journald get plain lines.
fn init_logging_at(level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOLTYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(listen: Option<SocketAddr>, config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cfg = match &config {
        Some(path) => crate::config::ServerConfig::load(path)?,
        None => crate::config::ServerConfig::default(),
    };
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    crate::server::run(cfg).await
}

pub(crate) struct Ctx {
    target: Target,
    json: bool,
}

impl Ctx {
    async fn call(&self, req: Request) -> Result<Value, ClientError> {
        self.target.connect().await?.call(req).await
    }
    async fn client(&self) -> Result<Client, ClientError> {
        self.target.connect().await
    }
}

async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), ClientError> {
    match cmd {
        Cmd::Charger(c) => charger::run(ctx, c).await,
        Cmd::Token(c) => token::run(ctx, c).await,
        Cmd::Session(c) => session::run(ctx, c).await,
        Cmd::Site(c) => site::run(ctx, c).await,
        Cmd::Reservation(c) => reservation::run(ctx, c).await,
        Cmd::Pnc(c) => pnc::run(ctx, c).await,
        Cmd::Cert(c) => pnc::cert(ctx, c).await,
        Cmd::Circuit(c) => circuit::run(ctx, c).await,
        Cmd::Meter(c) => meter::run(ctx, c).await,
        Cmd::Price(c) => price::run(ctx, c).await,
        Cmd::Dlm(dlm::DlmCmd::Status) => dlm::status(ctx).await,
        Cmd::Dlm(dlm::DlmCmd::ClearLimit(a)) => dlm::clear_limit(ctx, &a).await,
        Cmd::Tariff(c) => tariff::run(ctx, c).await,
        Cmd::Receipt(a) => receipt::run(ctx, a).await,
        Cmd::Status => {
            let v = ctx.call(Request::Status).await?;
            output::object(
                ctx,
                &v,
                &[
                    "version",
                    "listen",
                    "data_dir",
                    "chargers_connected",
                    "commits",
                    "boots_deferred",
                    "chargers_throttled",
                ],
            );
            Ok(())
        }
        Cmd::Events { limit } => {
            let v = ctx.call(Request::Events { limit }).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("TIME", "/t"),
                    ("CHARGER", "/charger"),
                    ("KIND", "/kind"),
                    ("DETAIL", "/detail"),
                ],
            );
            Ok(())
        }
        Cmd::Serve { .. }
        | Cmd::Completions { .. }
        | Cmd::Demo(_)
        | Cmd::Tui(_)
        | Cmd::Simulate(_)
        | Cmd::Verify { .. }
        | Cmd::Dlm(dlm::DlmCmd::Plan(_)) => Ok(()),
    }
}
