//! `voltyard tui`: the live dashboard. `state` holds everything shown,
//! `update` is the only thing that changes it, `view` draws it (a pure
//! function, tested on ratatui's `TestBackend`), and `feed` talks to the
//! server through the control API. This module owns the terminal: raw mode
//! and the alternate screen, restored on every way out (a panic included),
//! and the loop that redraws at most four times a second when the data
//! changed, and at once after a key.

pub mod alerts;
pub mod feed;
pub mod keys;
pub mod rows;
pub mod state;
pub mod update;
pub mod view;

use chrono::Utc;
use feed::Feed;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::crossterm::{cursor, execute};
use state::{Notice, State, Tone};
use std::collections::BTreeSet;
use std::io::{IsTerminal, Stdout};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use update::{Effect, Msg};

/// Shortest time between two redraws caused by data (keys redraw at once).
const FRAME: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(
        "voltyard tui needs a terminal: stdin and stdout must both be a TTY (for scripts, use the other subcommands with --json)"
    )]
    NoTerminal,
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Options {
    /// The server: its control socket, or a remote control listener.
    pub server: crate::control::client::Target,
    /// Hide and refuse every action that changes something.
    pub readonly: bool,
    pub color: bool,
    /// Where acknowledged alerts are kept (shared by everyone who runs the
    /// dashboard on that server).
    pub acks: PathBuf,
    /// Device events (NotifyEvent) of this severity or worse are alerts.
    pub device_severity: u8,
}

impl Options {
    /// For the server whose data dir is `data_dir`; colour unless
    /// `no_color` or `NO_COLOR` is set.
    pub fn new(data_dir: &Path, readonly: bool, no_color: bool) -> Options {
        let no_color = no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Options {
            server: crate::control::client::Target::Socket(data_dir.join("control.sock")),
            readonly,
            color: !no_color,
            acks: data_dir.join("tui-acks.json"),
            device_severity: alerts::DEVICE_SEVERITY,
        }
    }
}

pub fn check_terminal() -> Result<(), TuiError> {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        Ok(())
    } else {
        Err(TuiError::NoTerminal)
    }
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
}

type PanicHook = Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync>;

/// Raw mode and the alternate screen for as long as it lives; a panic
/// restores the terminal before its message is printed.
struct RawScreen {
    hook: Option<PanicHook>,
}

impl RawScreen {
    fn enter() -> std::io::Result<RawScreen> {
        let prev: PanicHook = Arc::from(std::panic::take_hook());
        let chained = prev.clone();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            chained(info);
        }));
        let screen = RawScreen { hook: Some(prev) };
        enable_raw_mode()?;
        execute!(std::io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }
}

impl Drop for RawScreen {
    fn drop(&mut self) {
        restore();
        if let Some(prev) = self.hook.take() {
            let _ = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| prev(info)));
        }
    }
}

/// Terminal events, read on a thread of their own (crossterm reads block).
fn spawn_input(tx: mpsc::Sender<Event>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    })
}

fn load_acks(path: &Path) -> BTreeSet<String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_acks(path: &Path, acks: &BTreeSet<String>) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(acks).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

type Term = Terminal<CrosstermBackend<Stdout>>;

fn draw(terminal: &mut Term, state: &State) -> std::io::Result<()> {
    terminal.draw(|f| view::render(f, state)).map(drop)
}

/// Run the dashboard until the operator quits or `stop` completes.
pub async fn run(opts: Options, stop: impl Future<Output = ()>) -> Result<(), TuiError> {
    check_terminal()?;
    let screen = RawScreen::enter()?;
    let stop_input = Arc::new(AtomicBool::new(false));
    let (key_tx, mut keys) = mpsc::channel(64);
    let input = spawn_input(key_tx, stop_input.clone());
    let result = event_loop(&opts, &mut keys, stop).await;
    stop_input.store(true, Ordering::Relaxed);
    drop(keys);
    let _ = input.join();
    drop(screen);
    result
}

async fn event_loop(
    opts: &Options,
    keys: &mut mpsc::Receiver<Event>,
    stop: impl Future<Output = ()>,
) -> Result<(), TuiError> {
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let (mut feed, mut feed_rx) = Feed::start(&opts.server);
    let mut state = State::new(Utc::now(), opts.readonly, opts.color);
    state.device_severity = opts.device_severity;
    state.acks = load_acks(&opts.acks);
    let size = terminal.size()?;
    state.size = (size.width, size.height);
    draw(&mut terminal, &state)?;
    let mut dirty = false;
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(stop);
    loop {
        let effects = tokio::select! {
            _ = &mut stop => return Ok(()),
            ev = keys.recv() => {
                let msg = match ev {
                    None => return Ok(()),
                    Some(Event::Key(k)) if k.kind != KeyEventKind::Release => Msg::Key(k),
                    Some(Event::Resize(w, h)) => Msg::Resize(w, h),
                    Some(_) => continue,
                };
                let effects = update::update(&mut state, msg);
                // An operator's key is answered at once, not at the next frame.
                draw(&mut terminal, &state)?;
                dirty = false;
                effects
            }
            msg = feed_rx.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                dirty = true;
                update::update(&mut state, Msg::Feed(msg))
            }
            _ = clock.tick() => {
                dirty = true;
                update::update(&mut state, Msg::Tick(Utc::now()))
            }
            _ = frames.tick() => {
                if dirty {
                    draw(&mut terminal, &state)?;
                    dirty = false;
                }
                vec![]
            }
        };
        for effect in effects {
            match effect {
                Effect::Quit => return Ok(()),
                Effect::Run(job) => feed.run(job),
                Effect::SaveAcks => {
                    if let Err(e) = save_acks(&opts.acks, &state.acks) {
                        state.notice = Some(Notice {
                            text: format!("could not save acknowledgements to {}: {e}", opts.acks.display()),
                            tone: Tone::Bad,
                        });
                        dirty = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
