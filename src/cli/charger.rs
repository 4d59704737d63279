use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ChargerAdd, Request};
use crate::domain::message::Command;
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

#[derive(Subcommand)]
pub enum ChargerCmd {
    /// Register a charger so it is Accepted when it boots.
    #[command(
        after_help = "Example:\n  voltyard charger add CP-001 --circuit board-a --max-current 32 --phases 3 --phase-rotation L2L3L1 --password 's3cret-pass'"
    )]
    Add {
        id: String,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        circuit: Option<String>,
        /// Per-phase current limit of the charger, in A.
        #[arg(long, value_name = "A")]
        max_current: Option<u32>,
        /// A DC charger's power limit, in kW: load management steers it in W.
        #[arg(long, value_name = "KW")]
        max_power: Option<u32>,
        #[arg(long, value_parser = ["1", "3"])]
        phases: Option<String>,
        #[arg(long, value_parser = ["L1L2L3", "L2L3L1", "L3L1L2"])]
        phase_rotation: Option<String>,
        /// HTTP Basic password the charger must present (security profile 1).
        #[arg(long)]
        password: Option<String>,
        /// OCPP security profile the charger must connect with: 0 none, 1 Basic auth,
        /// 2 TLS + Basic auth, 3 TLS with a client certificate.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=3))]
        security_profile: Option<u8>,
    },
    /// Set a charger's HTTP Basic password and push it to the charger.
    #[command(after_help = super::charger_security::SET_PASSWORD_HELP)]
    SetPassword {
        id: String,
        /// The new password (16 to 40 characters); omit it with --generate.
        #[arg(required_unless_present = "generate", conflicts_with = "generate")]
        value: Option<String>,
        /// Let the server generate a strong password (printed once).
        #[arg(long)]
        generate: bool,
        /// Only store it: the charger is not connected and gets the password another way.
        #[arg(long)]
        offline: bool,
    },
    /// Set the OCPP security profile a charger must connect with (0–3).
    #[command(
        after_help = "A charger that connects with a lower profile is refused and the refusal is recorded.\n\nExample:\n  voltyard charger set-security-profile CP-001 2"
    )]
    SetSecurityProfile {
        id: String,
        #[arg(value_parser = clap::value_parser!(u8).range(0..=3))]
        profile: u8,
    },
    /// List chargers with their connection and connector states.
    #[command(after_help = "Example:\n  voltyard charger list --json")]
    List,
    /// Show one charger.
    #[command(after_help = "Example:\n  voltyard charger show CP-001")]
    Show { id: String },
    /// Accept a pending charger.
    #[command(after_help = "Example:\n  voltyard charger accept CP-NEW-7")]
    Accept { id: String },
    /// Forget a charger.
    #[command(after_help = "Example:\n  voltyard charger remove CP-001")]
    Remove { id: String },
    /// Reset a charger (soft by default).
    #[command(after_help = "Example:\n  voltyard charger reset CP-001 --hard")]
    Reset {
        id: String,
        #[arg(long)]
        hard: bool,
    },
    /// Unlock a connector.
    #[command(after_help = "Example:\n  voltyard charger unlock CP-001 --connector 1")]
    Unlock {
        id: String,
        /// Connector (1.6) or EVSE (2.0.1) number.
        #[arg(long)]
        connector: u32,
        /// Connector within the EVSE (2.0.1).
        #[arg(long, default_value_t = 1)]
        connector_id: u32,
    },
    /// Ask a charger to send a message now (OCPP name, e.g. StatusNotification).
    #[command(
        after_help = "Kinds, OCPP 1.6: BootNotification, DiagnosticsStatusNotification, FirmwareStatusNotification,
Heartbeat, MeterValues, StatusNotification, and (sent as ExtendedTriggerMessage)
LogStatusNotification, SignChargePointCertificate.
Kinds, OCPP 2.0.1: BootNotification, LogStatusNotification, FirmwareStatusNotification, Heartbeat,
MeterValues, SignChargingStationCertificate, SignV2GCertificate, StatusNotification,
TransactionEvent, SignCombinedCertificate, PublishFirmwareStatusNotification.

Example:
  voltyard charger trigger CP-001 StatusNotification --connector 1"
    )]
    Trigger {
        id: String,
        message: String,
        #[arg(long)]
        connector: Option<u32>,
    },
    /// Make a charger or connector operative or inoperative; without a state, show what was asked.
    #[command(
        after_help = "A connector with a running transaction answers Scheduled: it changes when the transaction ends
(exit 0). `voltyard charger availability CP-001` shows each request: pending, scheduled or effective.

Examples:
  voltyard charger availability CP-001 inoperative --connector 2
  voltyard charger availability CP-001 --json"
    )]
    Availability {
        id: String,
        state: Option<AvailabilityState>,
        #[arg(long)]
        connector: Option<u32>,
    },
    /// Set the public key of a charger's Eichrecht meter, for meters whose key does not come with the signed data.
    #[command(
        after_help = "Chargers that publish MeterPublicKey[n] (1.6) or FiscalMetering.PublicKey (2.0.1) are read with
`voltyard charger config get ID`: voltyard keeps the key it sees there. Sessions that could not be
verified for want of a key are verified again when the key arrives.

Example:
  voltyard charger set-meter-key CP-001 3059301306072A8648CE3D020106082A8648CE3D03010703420004… --connector 1"
    )]
    SetMeterKey {
        id: String,
        /// SubjectPublicKeyInfo (hex, base64 or PEM), `oca:base16:asn1:…`, or a bare point.
        key: String,
        /// The connector whose meter it is (absent: the charger's only meter).
        #[arg(long)]
        connector: Option<u32>,
    },
    /// Read or change configuration (2.0.1 keys are Component.Variable).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Certificates: installed on a charger, issued by the built-in CA, and the CA itself.
    #[command(subcommand)]
    Cert(super::charger_security::CertCmd),
    /// Ask for the device-model report (2.0.1 GetBaseReport / GetReport; 1.6 GetConfiguration), or its status.
    Report(super::device::ReportArgs),
    /// The stored device model: every reported variable (no charger round trip).
    #[command(
        after_help = "Examples:\n  voltyard charger variables CP-201\n  voltyard charger variables CP-201 --component EVSE@1 --variable Power --json"
    )]
    Variables {
        id: String,
        /// Name, Name:instance or Name@evse (case-insensitive).
        #[arg(long)]
        component: Option<String>,
        #[arg(long)]
        variable: Option<String>,
    },
    /// Variable monitors (2.0.1): set, list, clear; monitoring base and level.
    #[command(subcommand)]
    Monitor(super::device::MonitorCmd),
    /// The local authorization list: send it, keep it in sync, read its version.
    #[command(subcommand)]
    LocalList(super::charger_ops::LocalListCmd),
    /// Clear the charger's authorization cache.
    #[command(after_help = "Example:\n  voltyard charger clear-cache CP-001")]
    ClearCache { id: String },
    /// Ask a 2.0.1 charger about a transaction (a session id or its transaction id), or whether it has messages queued.
    #[command(
        after_help = "Examples:\n  voltyard charger tx-status CP-201 42\n  voltyard charger tx-status CP-201 --json"
    )]
    TxStatus { id: String, transaction: Option<String> },
    /// Display messages of a 2.0.1 charger.
    #[command(subcommand)]
    Message(super::charger_ops::MessageCmd),
    /// Show the raw OCPP frames of a charger; `fetch` and `uploads` get its own log files.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  voltyard charger logs CP-001 --since 10m\n  voltyard charger logs CP-001 --follow\n  voltyard charger logs fetch CP-001 --wait"
    )]
    Logs {
        #[command(subcommand)]
        files: Option<super::transfer::LogsCmd>,
        #[arg(required = true)]
        id: Option<String>,
        /// RFC 3339 time or a duration ago such as 15m, 2h, 1day.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Keep printing new frames as they arrive.
        #[arg(long, short)]
        follow: bool,
    },
    /// Firmware: update one charger, follow its progress, or run a campaign over many.
    #[command(subcommand)]
    Firmware(super::transfer::FirmwareCmd),
    /// Send a DataTransfer to a charger and print its answer.
    #[command(
        after_help = "Example:\n  voltyard charger data-transfer CP-001 --vendor com.acme --message-id SetLed --data '{\"color\":\"green\"}'"
    )]
    DataTransfer {
        id: String,
        #[arg(long = "vendor")]
        vendor: String,
        #[arg(long)]
        message_id: Option<String>,
        #[arg(long)]
        data: Option<String>,
    },
    /// The DataTransfers a charger sent and how each was answered.
    #[command(after_help = "Example:\n  voltyard charger data-transfers CP-001 --json")]
    DataTransfers {
        id: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AvailabilityState {
    Operative,
    Inoperative,
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Read configuration keys (all keys on 1.6 when none are given).
    #[command(
        after_help = "Examples:\n  voltyard charger config get CP-001 HeartbeatInterval\n  voltyard charger config get CP-201 OCPPCommCtrlr.HeartbeatInterval --json"
    )]
    Get { id: String, keys: Vec<String> },
    /// Change one configuration key.
    #[command(
        after_help = "Examples:\n  voltyard charger config set CP-001 HeartbeatInterval 120\n  voltyard charger config set CP-201 OCPPCommCtrlr.HeartbeatInterval 120"
    )]
    Set { id: String, key: String, value: String },
}

const COLUMNS: &[(&str, &str)] = &[
    ("ID", "/id"),
    ("STATUS", "/status"),
    ("CONNECTED", "/connected"),
    ("PROTOCOL", "/protocol"),
    ("VENDOR", "/vendor"),
    ("MODEL", "/model"),
    ("FIRMWARE", "/firmware"),
    ("LAST SEEN", "/last_seen"),
];

pub async fn run(ctx: &Ctx, cmd: ChargerCmd) -> Result<(), ClientError> {
    let command = |id: String, command: Command| Request::ChargerCommand { id, command };
    match cmd {
        ChargerCmd::Add {
            id,
            site,
            circuit,
            max_current,
            max_power,
            phases,
            phase_rotation,
            password,
            security_profile,
        } => {
            let phases = phases.and_then(|p| p.parse().ok());
            let max_power_w = max_power.map(|kw| kw.saturating_mul(1000));
            let v = ctx
                .call(Request::ChargerAdd(ChargerAdd {
                    id: id.clone(),
                    site,
                    circuit,
                    max_current,
                    max_power_w,
                    phases,
                    phase_rotation,
                    password,
                    security_profile,
                }))
                .await?;
            output::done(ctx, &v, &format!("charger {id} registered"));
        }
        ChargerCmd::List => {
            let v = ctx.call(Request::ChargerList).await?;
            if ctx.json {
                output::json(&v);
            } else {
                let mut rows = v.clone();
                for row in rows.as_array_mut().into_iter().flatten() {
                    row["conn"] = Value::String(connectors(row));
                }
                let mut cols = COLUMNS.to_vec();
                cols.insert(4, ("CONNECTORS", "/conn"));
                output::table(ctx, &rows, &cols);
            }
        }
        ChargerCmd::Show { id } => {
            let mut v = ctx.call(Request::ChargerShow { id }).await?;
            if !ctx.json {
                v["connectors"] = Value::String(connectors(&v));
            }
            output::object(
                ctx,
                &v,
                &[
                    "id",
                    "status",
                    "connected",
                    "protocol",
                    "vendor",
                    "model",
                    "serial",
                    "firmware",
                    "site",
                    "circuit",
                    "max_current",
                    "phases",
                    "phase_rotation",
                    "password",
                    "password_pending",
                    "security_profile",
                    "connectors",
                    "last_seen",
                    "last_boot",
                    "connected_since",
                ],
            );
        }
        ChargerCmd::SetPassword {
            id,
            value,
            generate: _,
            offline,
        } => super::charger_security::set_password(ctx, id, value, offline).await?,
        ChargerCmd::SetSecurityProfile { id, profile } => {
            let v = ctx
                .call(Request::ChargerSetProfile {
                    id: id.clone(),
                    profile,
                })
                .await?;
            output::done(
                ctx,
                &v,
                &format!("charger {id} must now connect with security profile {profile}"),
            );
        }
        ChargerCmd::Accept { id } => {
            let v = ctx.call(Request::ChargerAccept { id: id.clone() }).await?;
            output::done(ctx, &v, &format!("charger {id} accepted"));
        }
        ChargerCmd::Remove { id } => {
            let v = ctx.call(Request::ChargerRemove { id: id.clone() }).await?;
            output::done(ctx, &v, &format!("charger {id} removed"));
        }
        ChargerCmd::Reset { id, hard } => result(ctx, ctx.call(command(id, Command::Reset { hard })).await?),
        ChargerCmd::Unlock {
            id,
            connector,
            connector_id,
        } => result(
            ctx,
            ctx.call(command(
                id,
                Command::Unlock {
                    evse: connector,
                    connector: connector_id,
                },
            ))
            .await?,
        ),
        ChargerCmd::Trigger { id, message, connector } => result(
            ctx,
            ctx.call(command(
                id,
                Command::Trigger {
                    message,
                    evse: connector,
                },
            ))
            .await?,
        ),
        ChargerCmd::Availability {
            id,
            state: None,
            connector: _,
        } => super::charger_ops::availability(ctx, id).await?,
        ChargerCmd::Availability {
            id,
            state: Some(state),
            connector,
        } => {
            let operative = matches!(state, AvailabilityState::Operative);
            let v = ctx
                .call(command(
                    id,
                    Command::Availability {
                        operative,
                        evse: connector,
                    },
                ))
                .await?;
            super::charger_ops::availability_result(ctx, &v, operative, connector);
        }
        ChargerCmd::LocalList(c) => super::charger_ops::local_list(ctx, c).await?,
        ChargerCmd::ClearCache { id } => super::charger_ops::clear_cache(ctx, id).await?,
        ChargerCmd::TxStatus { id, transaction } => super::charger_ops::tx_status(ctx, id, transaction).await?,
        ChargerCmd::Message(c) => super::charger_ops::message(ctx, c).await?,
        ChargerCmd::Config(ConfigCmd::Get { id, keys }) => {
            let v = ctx.call(command(id, Command::GetConfig { keys })).await?;
            if ctx.json {
                output::json(&v);
            } else {
                output::table(
                    ctx,
                    &v["entries"],
                    &[
                        ("KEY", "/key"),
                        ("VALUE", "/value"),
                        ("READONLY", "/readonly"),
                        ("STATUS", "/status"),
                    ],
                );
                if let Some(unknown) = v["unknown"].as_array().filter(|u| !u.is_empty()) {
                    println!("unknown keys: {}", output::cell(Some(&Value::Array(unknown.clone()))));
                }
            }
        }
        ChargerCmd::Report(a) => super::device::report(ctx, a).await?,
        ChargerCmd::Variables {
            id,
            component,
            variable,
        } => super::device::variables(ctx, id, component, variable).await?,
        ChargerCmd::Monitor(m) => super::device::monitor(ctx, m).await?,
        ChargerCmd::SetMeterKey { id, key, connector } => {
            let v = ctx
                .call(Request::ChargerSetMeterKey {
                    id: id.clone(),
                    key,
                    connector,
                })
                .await?;
            let n = v["reverified"].as_array().map_or(0, Vec::len);
            output::done(
                ctx,
                &v,
                &format!("meter key of {id} kept; {n} session(s) verified again"),
            );
        }
        ChargerCmd::Cert(c) => super::charger_security::cert(ctx, c).await?,
        ChargerCmd::Config(ConfigCmd::Set { id, key, value }) => {
            result(ctx, ctx.call(command(id, Command::SetConfig { key, value })).await?)
        }
        ChargerCmd::Logs { files: Some(cmd), .. } => super::transfer::logs(ctx, cmd).await?,
        ChargerCmd::Firmware(cmd) => super::transfer::firmware(ctx, cmd).await?,
        ChargerCmd::DataTransfer {
            id,
            vendor,
            message_id,
            data,
        } => super::transfer::data_transfer(ctx, id, vendor, message_id, data).await?,
        ChargerCmd::DataTransfers { id, limit } => super::transfer::data_transfers(ctx, id, limit).await?,
        ChargerCmd::Logs {
            files: None,
            id,
            since,
            limit,
            follow,
        } => {
            let id = id.unwrap_or_default();
            let since = since.map(|s| parse_since(&s)).transpose()?;
            let req = Request::ChargerLogs {
                id,
                since,
                limit,
                follow,
            };
            let mut client = ctx.client().await?;
            let history = client.call(req).await?;
            for entry in history.as_array().into_iter().flatten() {
                print_frame(ctx, entry);
            }
            if follow {
                loop {
                    let item = client.next_item().await?;
                    print_frame(ctx, &serde_json::to_value(item.journal).unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}

fn connectors(v: &Value) -> String {
    v["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["evse"].as_u64() != Some(0))
        .map(|c| format!("{}:{}", c["evse"], c["status"].as_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn result(ctx: &Ctx, v: Value) {
    let status = v.get("status").and_then(Value::as_str).unwrap_or("Accepted");
    output::done(ctx, &v, status);
}

fn print_frame(ctx: &Ctx, e: &Value) {
    if ctx.json {
        println!("{e}");
    } else {
        let arrow = if e["dir"] == "in" { "<-" } else { "->" };
        println!(
            "{} {arrow} {}",
            e["t"].as_str().unwrap_or("?"),
            e["frame"].as_str().unwrap_or("")
        );
    }
}

/// "15m" / "2h" ago, or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, ClientError> {
    if let Some(t) = crate::ocpp::parse_time(s) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        ClientError::Api(crate::control::proto::ApiError::new(
            crate::control::proto::ErrorKind::Invalid,
            format!("--since: {s:?} is neither an RFC 3339 time nor a duration like 15m ({e})"),
        ))
    })?;
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        .ok_or_else(|| {
            ClientError::Api(crate::control::proto::ApiError::new(
                crate::control::proto::ErrorKind::Invalid,
                format!("--since: {s:?} reaches back further than any log"),
            ))
        })
}
