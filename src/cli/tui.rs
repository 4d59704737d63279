//! `voltyard tui`: the live dashboard (see docs/tui.md).

use crate::control::client::Target;
use crate::tui::{Options, TuiError};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct TuiArgs {
    /// Look, don't touch: hide every action (reset, start/stop, limits, …).
    #[arg(long)]
    readonly: bool,
    /// No colours (also when NO_COLOR is set); states stay apart by bold and underline.
    #[arg(long)]
    no_color: bool,
    /// Device events (2.0.1 NotifyEvent) of this severity or worse are alerts: 0 Danger … 4 Error … 9 Debug.
    #[arg(long, default_value_t = crate::tui::alerts::DEVICE_SEVERITY, value_parser = clap::value_parser!(u8).range(0..=9))]
    alert_severity: u8,
}

pub fn main(
    runtime: &tokio::runtime::Runtime,
    args: TuiArgs,
    data_dir: Option<PathBuf>,
    server: Option<Target>,
) -> ExitCode {
    if let Err(e) = crate::tui::check_terminal() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let dir = data_dir.unwrap_or_else(|| PathBuf::from("voltyard-data"));
    let mut opts = Options::new(&dir, args.readonly, args.no_color);
    opts.device_severity = args.alert_severity;
    if let Some(server) = server {
        opts.server = server;
    }
    runtime.block_on(async {
        // No server is exit 3, as for every other subcommand, before the
        // screen is taken over.
        if let Err(e) = opts.server.connect().await {
            eprintln!("error: {e}");
            return ExitCode::from(super::exit_code(&e));
        }
        match crate::tui::run(opts, crate::server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ TuiError::NoTerminal) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        }
    })
}
