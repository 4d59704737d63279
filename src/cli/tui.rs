//! `voltyard tui`: the live dashboard (see docs/tui.md).

use crate::control::client::Client;
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
}

pub fn main(runtime: &tokio::runtime::Runtime, args: TuiArgs, data_dir: Option<PathBuf>) -> ExitCode {
    if let Err(e) = crate::tui::check_terminal() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let dir = data_dir.unwrap_or_else(|| PathBuf::from("voltyard-data"));
    let opts = Options::new(&dir, args.readonly, args.no_color);
    runtime.block_on(async {
        // No server is exit 3, as for every other subcommand, before the
        // screen is taken over.
        if let Err(e) = Client::connect(&opts.socket).await {
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
