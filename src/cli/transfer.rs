//! `charger firmware ...`, `charger logs fetch|uploads` and
//! `charger data-transfer(s)`: files to and from chargers, and vendor messages.

use super::charger::parse_since;
use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, CampaignTargets, ErrorKind, FirmwareSource, Request};
use crate::domain::message::Command;
use crate::domain::transfer::{FirmwareSignature, LogKind};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum FirmwareCmd {
    /// Keep a firmware file on the server for chargers to download; prints its URL.
    #[command(after_help = "Example:\n  voltyard charger firmware add ./acme-2.4.1.bin")]
    Add { file: PathBuf },
    /// Ask one charger to update its firmware.
    #[command(after_help = "Examples:
  voltyard charger firmware update CP-001 --file ./acme-2.4.1.bin
  voltyard charger firmware update CP-001 --url https://vendor.example/fw/2.4.1.bin --retrieve-at 2026-12-01T02:00:00Z
  voltyard charger firmware update CP-201 --file fw.bin --signature MEUCIQ… --signing-cert signer.pem

Progress: voltyard charger firmware status CP-001")]
    Update {
        id: String,
        #[command(flatten)]
        source: Source,
        /// When the charger should download it (RFC 3339; default now).
        #[arg(long, value_name = "TIME")]
        retrieve_at: Option<String>,
        /// How often the charger retries a failed download.
        #[arg(long)]
        retries: Option<u32>,
        #[command(flatten)]
        signed: Signed,
    },
    /// A charger's firmware requests and the status notifications it sent for each.
    #[command(after_help = "Example:\n  voltyard charger firmware status CP-001 --json")]
    Status { id: String },
    /// Roll firmware out over many chargers, a few at a time.
    #[command(subcommand)]
    Campaign(CampaignCmd),
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// A file the server keeps and serves itself.
    #[arg(long)]
    file: Option<PathBuf>,
    /// A URL chargers download from as is.
    #[arg(long)]
    url: Option<String>,
}

#[derive(Args)]
pub struct Signed {
    /// Base64 signature of the firmware (makes it a signed update).
    #[arg(long, requires = "signing_cert")]
    signature: Option<String>,
    /// PEM file of the certificate that signed it.
    #[arg(long, requires = "signature", value_name = "PEM")]
    signing_cert: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum CampaignCmd {
    /// Start a campaign: chargers are updated at most --concurrency at a time.
    #[command(after_help = "Examples:
  voltyard charger firmware campaign start --file ./acme-2.4.1.bin --model AC22 --concurrency 5 --wait
  voltyard charger firmware campaign start --url https://vendor.example/fw.bin --chargers CP-1,CP-2 --concurrency 1")]
    Start {
        #[command(flatten)]
        source: Source,
        /// Charger ids, comma separated.
        #[arg(long, value_delimiter = ',')]
        chargers: Vec<String>,
        /// Every accepted charger.
        #[arg(long)]
        all: bool,
        /// Every accepted charger of this site.
        #[arg(long)]
        site: Option<String>,
        /// Every accepted charger of this model (as it reported at boot).
        #[arg(long)]
        model: Option<String>,
        /// Most chargers updating at once.
        #[arg(long, default_value_t = 5)]
        concurrency: u32,
        /// How often each charger retries a failed download.
        #[arg(long)]
        retries: Option<u32>,
        #[command(flatten)]
        signed: Signed,
        /// Wait until every charger finished (a progress bar on a terminal); exit 1 if any failed.
        #[arg(long)]
        wait: bool,
    },
    /// All campaigns with their progress.
    #[command(after_help = "Example:\n  voltyard charger firmware campaign list")]
    List,
    /// One campaign: each charger's state.
    #[command(after_help = "Example:\n  voltyard charger firmware campaign show 3 --json")]
    Show { id: u64 },
    /// Stop sending to queued chargers (those updating carry on).
    #[command(after_help = "Example:\n  voltyard charger firmware campaign cancel 3")]
    Cancel { id: u64 },
}

#[derive(Subcommand)]
pub enum LogsCmd {
    /// Ask a charger to upload its diagnostics or security log to this server.
    #[command(after_help = "Examples:
  voltyard charger logs fetch CP-001 --wait
  voltyard charger logs fetch CP-201 --type security --since 2h

Files land in <data-dir>/files/logs/<charger>/; list them with: voltyard charger logs uploads CP-001")]
    Fetch {
        id: String,
        #[arg(long = "type", value_enum, default_value = "diagnostics")]
        kind: KindArg,
        /// Oldest entries wanted (RFC 3339 or a duration ago such as 2h).
        #[arg(long)]
        since: Option<String>,
        /// Wait until the upload finished (at most 5 minutes); exit 1 if it failed.
        #[arg(long)]
        wait: bool,
    },
    /// A charger's log requests, their statuses and the files it uploaded.
    #[command(after_help = "Example:\n  voltyard charger logs uploads CP-001 --json")]
    Uploads { id: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    Diagnostics,
    Security,
}

fn bad(field: &str, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Invalid, format!("{field}: {reason}")))
}

fn source(s: Source) -> Result<FirmwareSource, ClientError> {
    match (s.file, s.url) {
        (Some(f), _) => {
            let abs = std::fs::canonicalize(&f).map_err(|e| bad("--file", format!("{}: {e}", f.display())))?;
            Ok(FirmwareSource::File(abs.to_string_lossy().into_owned()))
        }
        (None, Some(u)) => Ok(FirmwareSource::Url(u)),
        (None, None) => Err(bad("--file", "give --file or --url")),
    }
}

fn signature(s: Signed) -> Result<Option<FirmwareSignature>, ClientError> {
    match (s.signature, s.signing_cert) {
        (Some(signature), Some(pem)) => {
            let signing_cert =
                std::fs::read_to_string(&pem).map_err(|e| bad("--signing-cert", format!("{}: {e}", pem.display())))?;
            Ok(Some(FirmwareSignature {
                signature,
                signing_cert,
            }))
        }
        _ => Ok(None),
    }
}

const REQUEST_COLUMNS: &[(&str, &str)] = &[
    ("REQUEST", "/id"),
    ("CREATED", "/created_at"),
    ("STATE", "/state"),
    ("ANSWER", "/answer"),
    ("STATUSES", "/history"),
    ("URL", "/order/url"),
];

const TARGET_COLUMNS: &[(&str, &str)] = &[
    ("CHARGER", "/charger"),
    ("STATE", "/state"),
    ("REQUEST", "/request"),
    ("SINCE", "/since"),
    ("DETAIL", "/detail"),
];

/// `statuses` as one "Downloading, Installing, ..." cell.
fn with_history(v: &Value) -> Value {
    let mut rows = v.clone();
    for row in rows.as_array_mut().into_iter().flatten() {
        let h: Vec<&str> = row["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["status"].as_str())
            .collect();
        row["history"] = Value::String(h.join(", "));
    }
    rows
}

pub async fn firmware(ctx: &Ctx, cmd: FirmwareCmd) -> Result<(), ClientError> {
    match cmd {
        FirmwareCmd::Add { file } => {
            let abs = std::fs::canonicalize(&file).map_err(|e| bad("FILE", format!("{}: {e}", file.display())))?;
            let path = abs.to_string_lossy().into_owned();
            let v = ctx.call(Request::FirmwareAdd { path }).await?;
            output::object(ctx, &v, &["sha256", "name", "bytes", "url"]);
        }
        FirmwareCmd::Update {
            id,
            source: src,
            retrieve_at,
            retries,
            signed,
        } => {
            let retrieve_at = retrieve_at
                .map(|t| {
                    crate::ocpp::parse_time(&t)
                        .ok_or_else(|| bad("--retrieve-at", format!("{t:?} is not an RFC 3339 time")))
                })
                .transpose()?;
            let req = Request::FirmwareUpdate {
                id: id.clone(),
                source: source(src)?,
                retrieve_at,
                retries,
                signature: signature(signed)?,
            };
            let v = ctx.call(req).await?;
            output::done(
                ctx,
                &v,
                &format!(
                    "{id} accepted firmware request {} ({}); follow it with: voltyard charger firmware status {id}",
                    v["request"],
                    v["url"].as_str().unwrap_or("")
                ),
            );
        }
        FirmwareCmd::Status { id } => {
            let v = ctx.call(Request::FirmwareStatus { id }).await?;
            output::table(ctx, &with_history(&v), REQUEST_COLUMNS);
        }
        FirmwareCmd::Campaign(c) => campaign(ctx, c).await?,
    }
    Ok(())
}

async fn campaign(ctx: &Ctx, cmd: CampaignCmd) -> Result<(), ClientError> {
    match cmd {
        CampaignCmd::Start {
            source: src,
            chargers,
            all,
            site,
            model,
            concurrency,
            retries,
            signed,
            wait,
        } => {
            let req = Request::CampaignStart {
                source: source(src)?,
                targets: CampaignTargets {
                    chargers,
                    all,
                    site,
                    model,
                },
                concurrency,
                retries,
                signature: signature(signed)?,
            };
            let v = ctx.call(req).await?;
            let id = v["id"].as_u64().unwrap_or_default();
            if !wait {
                output::done(
                    ctx,
                    &v,
                    &format!(
                        "campaign {id} started over {} charger(s); follow it with: voltyard charger firmware campaign show {id}",
                        v["progress"]["total"]
                    ),
                );
                return Ok(());
            }
            let v = wait_campaign(ctx, id).await?;
            show_campaign(ctx, &v);
            let failed = v["progress"]["failed"].as_u64().unwrap_or(0);
            if failed > 0 {
                return Err(ClientError::Api(ApiError::new(
                    ErrorKind::Rejected,
                    format!("campaign {id}: {failed} charger(s) did not install the firmware"),
                )));
            }
        }
        CampaignCmd::List => {
            let v = ctx.call(Request::CampaignList).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("ID", "/id"),
                    ("STATE", "/state"),
                    ("CREATED", "/created_at"),
                    ("TOTAL", "/progress/total"),
                    ("QUEUED", "/progress/queued"),
                    ("IN FLIGHT", "/progress/in_flight"),
                    ("INSTALLED", "/progress/installed"),
                    ("FAILED", "/progress/failed"),
                    ("URL", "/url"),
                ],
            );
        }
        CampaignCmd::Show { id } => show_campaign(ctx, &ctx.call(Request::CampaignShow { id }).await?),
        CampaignCmd::Cancel { id } => {
            let v = ctx.call(Request::CampaignCancel { id }).await?;
            output::done(
                ctx,
                &v,
                &format!("campaign {id} cancelled; chargers already updating carry on"),
            );
        }
    }
    Ok(())
}

fn show_campaign(ctx: &Ctx, v: &Value) {
    if ctx.json {
        return output::json(v);
    }
    let p = &v["progress"];
    println!(
        "campaign {} {}: {} installed, {} failed, {} in flight, {} queued of {} (concurrency {})",
        v["id"],
        v["state"].as_str().unwrap_or("?"),
        p["installed"],
        p["failed"],
        p["in_flight"],
        p["queued"],
        p["total"],
        v["concurrency"]
    );
    println!("url {}", v["order"]["url"].as_str().unwrap_or("-"));
    output::table(ctx, &v["targets"], TARGET_COLUMNS);
}

/// Poll until the campaign is no longer running; a bar on a terminal.
async fn wait_campaign(ctx: &Ctx, id: u64) -> Result<Value, ClientError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} finished {msg}").unwrap_or(ProgressStyle::default_bar()),
        );
        b
    });
    loop {
        let v = ctx.call(Request::CampaignShow { id }).await?;
        let p = &v["progress"];
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        if let Some(b) = &bar {
            b.set_length(n("total"));
            b.set_position(n("installed") + n("failed"));
            b.set_message(format!("({} in flight, {} failed)", n("in_flight"), n("failed")));
        }
        if v["state"] != "running" && n("in_flight") == 0 {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn logs(ctx: &Ctx, cmd: LogsCmd) -> Result<(), ClientError> {
    match cmd {
        LogsCmd::Fetch { id, kind, since, wait } => {
            let since = since.map(|s| parse_since(&s)).transpose()?;
            let kind = match kind {
                KindArg::Diagnostics => LogKind::Diagnostics,
                KindArg::Security => LogKind::Security,
            };
            let v = ctx
                .call(Request::LogsFetch {
                    id: id.clone(),
                    kind,
                    since,
                })
                .await?;
            let request = v["request"].as_u64().unwrap_or_default();
            if !wait {
                output::done(
                    ctx,
                    &v,
                    &format!("{id} accepted log request {request}; see it with: voltyard charger logs uploads {id}"),
                );
                return Ok(());
            }
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let all = ctx.call(Request::LogsUploads { id: id.clone() }).await?;
                let r = all
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["id"].as_u64() == Some(request))
                    .cloned()
                    .unwrap_or_default();
                let state = r["state"].as_str().unwrap_or("");
                let has_file = r["files"].as_array().is_some_and(|f| !f.is_empty());
                if (state == "uploaded" && has_file) || state == "failed" || Instant::now() >= deadline {
                    if ctx.json {
                        output::json(&r);
                    } else {
                        for f in r["files"].as_array().into_iter().flatten() {
                            println!("{} ({} bytes)", f["path"].as_str().unwrap_or("?"), f["bytes"]);
                        }
                    }
                    if state != "uploaded" || !has_file {
                        return Err(ClientError::Api(ApiError::new(
                            ErrorKind::Rejected,
                            format!(
                                "log request {request} of {id} ended {}",
                                if state.is_empty() { "without an upload" } else { state }
                            ),
                        )));
                    }
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        LogsCmd::Uploads { id } => {
            let mut v = ctx.call(Request::LogsUploads { id }).await?;
            if !ctx.json {
                v = with_history(&v);
                for row in v.as_array_mut().into_iter().flatten() {
                    let files: Vec<String> = row["files"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|f| format!("{} ({} bytes)", f["path"].as_str().unwrap_or("?"), f["bytes"]))
                        .collect();
                    row["file_list"] = Value::String(files.join(", "));
                }
            }
            output::table(
                ctx,
                &v,
                &[
                    ("REQUEST", "/id"),
                    ("KIND", "/kind"),
                    ("CREATED", "/created_at"),
                    ("STATE", "/state"),
                    ("STATUSES", "/history"),
                    ("FILES", "/file_list"),
                ],
            );
        }
    }
    Ok(())
}

/// `charger data-transfer ID --vendor V ...`: send one and print the answer.
pub async fn data_transfer(
    ctx: &Ctx,
    id: String,
    vendor_id: String,
    message_id: Option<String>,
    data: Option<String>,
) -> Result<(), ClientError> {
    let command = Command::DataTransfer {
        vendor_id,
        message_id,
        data,
    };
    let v = ctx.call(Request::ChargerCommand { id, command }).await?;
    let status = v["status"].as_str().unwrap_or("Accepted");
    let msg = match v["detail"].as_str() {
        Some(d) => format!("{status}: {d}"),
        None => status.to_string(),
    };
    output::done(ctx, &v, &msg);
    Ok(())
}

pub async fn data_transfers(ctx: &Ctx, id: String, limit: usize) -> Result<(), ClientError> {
    let v = ctx.call(Request::DataTransfers { id, limit }).await?;
    output::table(
        ctx,
        &v,
        &[
            ("TIME", "/t"),
            ("VENDOR", "/vendor_id"),
            ("MESSAGE", "/message_id"),
            ("DATA", "/data"),
            ("ANSWER", "/answer/status"),
            ("REPLY DATA", "/answer/data"),
            ("NOTE", "/answer/note"),
        ],
    );
    Ok(())
}
