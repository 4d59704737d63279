use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use crate::domain::circuit::{Measures, MeterBinding, MeterSource, ModbusMeter, RegisterFormat, parse_reading};
use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum MeterCmd {
    /// Tell voltyard where a circuit's load it does not control is measured.
    #[command(after_help = "Examples:
  voltyard meter bind grid push --measures total
  voltyard meter bind grid ocpp --charger SITE-METER-1
  voltyard meter bind grid modbus --address 192.168.1.50:502 --unit 1 --register 6 --format f32")]
    Bind {
        circuit: String,
        source: SourceArg,
        /// `total`: the meter sees the whole circuit, chargers included; `unmanaged`: only the rest.
        #[arg(long, value_enum, default_value_t = MeasuresArg::Total)]
        measures: MeasuresArg,
        /// A reading older than this means the meter is silent: the circuit's safe capacity then
        /// applies, or without one its recent peak + 10 % of its limit for 10 minutes, then all of it.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        timeout: u32,
        /// For `ocpp`: the charger or OCPP meter device whose EVSE-0 / connector-0 values to use.
        #[arg(long)]
        charger: Option<String>,
        /// For `modbus`: IP:PORT of the Modbus TCP meter.
        #[arg(long)]
        address: Option<String>,
        #[arg(long, default_value_t = 1)]
        unit: u8,
        /// Input register of the L1 current (0-based); L2, L3 follow every --stride registers.
        #[arg(long)]
        register: Option<u16>,
        #[arg(long)]
        stride: Option<u16>,
        #[arg(long, value_enum, default_value_t = FormatArg::F32)]
        format: FormatArg,
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        poll: u32,
    },
    /// Forget a circuit's meter.
    #[command(after_help = "Example:\n  voltyard meter unbind grid")]
    Unbind { circuit: String },
    /// Push a reading (A per phase; negative = export) for a meter bound as `push`.
    #[command(
        after_help = "Examples:\n  voltyard meter push grid 41.5,38,40.2\n  voltyard meter push grid 20 --at 2026-11-23T10:00:00Z"
    )]
    Push {
        circuit: String,
        /// One value for all phases or L1,L2,L3.
        #[arg(allow_hyphen_values = true)]
        current: String,
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
    /// List bound meters.
    #[command(after_help = "Example:\n  voltyard meter list --json")]
    List,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SourceArg {
    Push,
    Ocpp,
    Modbus,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MeasuresArg {
    Total,
    Unmanaged,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    F32,
    I16Centi,
    U16Deci,
}

fn invalid(msg: impl Into<String>) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Invalid, msg))
}

pub async fn run(ctx: &Ctx, cmd: MeterCmd) -> Result<(), ClientError> {
    match cmd {
        MeterCmd::Bind {
            circuit,
            source,
            measures,
            timeout,
            charger,
            address,
            unit,
            register,
            stride,
            format,
            poll,
        } => {
            let source = match source {
                SourceArg::Push => MeterSource::Push,
                SourceArg::Ocpp => MeterSource::Ocpp {
                    charger: charger.ok_or_else(|| invalid("--charger: required for an ocpp meter"))?,
                },
                SourceArg::Modbus => {
                    let format = match format {
                        FormatArg::F32 => RegisterFormat::F32,
                        FormatArg::I16Centi => RegisterFormat::I16Centi,
                        FormatArg::U16Deci => RegisterFormat::U16Deci,
                    };
                    MeterSource::Modbus(ModbusMeter {
                        address: address.ok_or_else(|| invalid("--address: required for a modbus meter"))?,
                        unit,
                        register: register.ok_or_else(|| invalid("--register: required for a modbus meter"))?,
                        stride: stride.unwrap_or(format.registers()),
                        format,
                        poll_ms: poll,
                    })
                }
            };
            let meter = MeterBinding {
                source,
                measures: match measures {
                    MeasuresArg::Total => Measures::Total,
                    MeasuresArg::Unmanaged => Measures::Unmanaged,
                },
                timeout_s: timeout,
            };
            let v = ctx
                .call(Request::MeterBind {
                    circuit: circuit.clone(),
                    meter: Some(meter),
                })
                .await?;
            output::done(ctx, &v, &format!("meter of {circuit} bound"));
        }
        MeterCmd::Unbind { circuit } => {
            let v = ctx
                .call(Request::MeterBind {
                    circuit: circuit.clone(),
                    meter: None,
                })
                .await?;
            output::done(ctx, &v, &format!("meter of {circuit} removed"));
        }
        MeterCmd::Push { circuit, current, at } => {
            let current = parse_reading("current", &current).map_err(|e| invalid(e.to_string()))?;
            let v = ctx
                .call(Request::MeterPush {
                    circuit: circuit.clone(),
                    current,
                    at,
                })
                .await?;
            output::done(ctx, &v, &format!("reading of {circuit} taken"));
        }
        MeterCmd::List => {
            let v = ctx.call(Request::MeterList).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("CIRCUIT", "/circuit"),
                    ("SITE", "/site"),
                    ("SOURCE", "/meter/source/kind"),
                    ("MEASURES", "/meter/measures"),
                    ("TIMEOUT S", "/meter/timeout_s"),
                ],
            );
        }
    }
    Ok(())
}
