//! Everything the dashboard shows and remembers, as plain data: the last
//! snapshots from the server, the live frames, and where the operator is
//! (screen, selection, filter, sort, overlays). `update` changes it; `view`
//! only reads it.

use crate::control::proto::{ChargerView, ServerStatus, SessionView};
use crate::domain::message::ConfigEntry;
use crate::domain::{Event, JournalEntry, Site};
use crate::loadctl::DlmView;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Live frames kept for the Log screen.
pub const LOG_CAP: usize = 2000;
/// Frames kept in a charger's detail view.
pub const DETAIL_LOG_CAP: usize = 300;
/// Power samples kept per charger for its sparkline.
pub const POWER_CAP: usize = 120;
/// How far back msg/s and the commit latency look.
pub const RATE_WINDOW_S: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Chargers,
    Sessions,
    Load,
    Alerts,
    Log,
}

pub const SCREENS: [Screen; 6] = [
    Screen::Overview,
    Screen::Chargers,
    Screen::Sessions,
    Screen::Load,
    Screen::Alerts,
    Screen::Log,
];

impl Screen {
    pub fn title(self) -> &'static str {
        match self {
            Screen::Overview => "Overview",
            Screen::Chargers => "Chargers",
            Screen::Sessions => "Sessions",
            Screen::Load => "Load",
            Screen::Alerts => "Alerts",
            Screen::Log => "Log",
        }
    }

    pub fn index(self) -> usize {
        SCREENS.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// What `:name` accepts (k9s style), including short forms.
    pub fn from_name(name: &str) -> Option<Screen> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "overview" | "ov" | "site" | "sites" | "home" => Screen::Overview,
            "chargers" | "charger" | "ch" | "cp" => Screen::Chargers,
            "sessions" | "session" | "se" | "tx" => Screen::Sessions,
            "load" | "dlm" | "circuits" | "circuit" | "lm" => Screen::Load,
            "alerts" | "alert" | "al" => Screen::Alerts,
            "log" | "logs" | "frames" => Screen::Log,
            _ => return None,
        })
    }

    /// Names of the orders `s` cycles through on this screen.
    pub fn sorts(self) -> &'static [&'static str] {
        match self {
            Screen::Chargers => &["id", "status", "power", "last seen"],
            Screen::Sessions => &["newest", "charger", "energy", "duration"],
            Screen::Alerts => &["newest", "severity", "charger"],
            Screen::Overview | Screen::Load | Screen::Log => &[],
        }
    }
}

/// What the server said last, fetched together.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub at: Option<DateTime<Utc>>,
    pub status: Option<ServerStatus>,
    pub chargers: Vec<ChargerView>,
    /// Newest first, as `session_list` returns them.
    pub sessions: Vec<SessionView>,
    /// True when `sessions` was cut at the fetch limit.
    pub sessions_truncated: bool,
    pub dlm: DlmView,
    pub events: Vec<Event>,
    pub sites: Vec<Site>,
}

/// Selection, order and filter of one screen's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub selected: usize,
    pub sort: usize,
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargerPane {
    Log,
    Config,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChargerDetail {
    pub id: String,
    /// Index into the charger's connectors (EVSE 0 excluded).
    pub connector: usize,
    pub pane: ChargerPane,
    /// Its frames: the history fetched on open, then the live ones.
    pub log: VecDeque<JournalEntry>,
    pub config: Option<Result<Vec<ConfigEntry>, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPane {
    Readings,
    Receipt,
}

#[derive(Debug, Clone)]
pub struct SessionDetail {
    pub id: u64,
    pub pane: SessionPane,
    /// `session_show` with its meter values, once fetched.
    pub view: Option<Box<SessionView>>,
    pub receipt: Option<Result<String, String>>,
}

#[derive(Debug, Clone)]
pub enum Detail {
    Charger(ChargerDetail),
    Session(SessionDetail),
    /// One frame of the Log screen, in full.
    Frame(JournalEntry),
}

/// An operator action: what a confirmation asks about and what the feed
/// turns into the same control request the CLI sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    Reset {
        charger: String,
        hard: bool,
    },
    Unlock {
        charger: String,
        evse: u32,
        connector: u32,
    },
    Availability {
        charger: String,
        operative: bool,
        evse: Option<u32>,
    },
    Accept {
        charger: String,
    },
    RemoteStart {
        charger: String,
        token: String,
        evse: Option<u32>,
    },
    RemoteStop {
        session: u64,
        charger: String,
    },
    BlockToken {
        uid: String,
    },
    CircuitLimit {
        circuit: String,
        max_current: [f64; 3],
    },
}

impl Act {
    /// One line for the confirmation prompt and the status line.
    pub fn describe(&self) -> String {
        match self {
            Act::Reset { charger, hard } => format!("{} reset {charger}", if *hard { "Hard" } else { "Soft" }),
            Act::Unlock { charger, evse, .. } => format!("Unlock connector {evse} of {charger}"),
            Act::Availability {
                charger,
                operative,
                evse,
            } => format!(
                "Make {charger}{} {}",
                evse.map(|e| format!(" connector {e}")).unwrap_or_default(),
                if *operative { "operative" } else { "inoperative" }
            ),
            Act::Accept { charger } => format!("Accept pending charger {charger}"),
            Act::RemoteStart { charger, token, evse } => format!(
                "Remote start on {charger}{} for token {token}",
                evse.map(|e| format!(" EVSE {e}")).unwrap_or_default()
            ),
            Act::RemoteStop { session, charger } => format!("Remote stop session {session} on {charger}"),
            Act::BlockToken { uid } => format!("Block token {uid}"),
            Act::CircuitLimit { circuit, max_current } => format!(
                "Set the limit of circuit {circuit} to {}/{}/{} A",
                max_current[0], max_current[1], max_current[2]
            ),
        }
    }
}

/// What a text prompt is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    StartToken { charger: String, evse: Option<u32> },
    CircuitLimit { circuit: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Help,
    Confirm(Act),
    Prompt {
        ask: Ask,
        text: String,
    },
    /// The `:` command line.
    Command(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Info,
    Good,
    Bad,
}

/// The status line.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub tone: Tone,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    Up,
    Down(String),
}

/// Server counters at one snapshot, for rates over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSample {
    pub at: DateTime<Utc>,
    pub frames: u64,
    pub commits: u64,
    pub commit_us: u64,
}

#[derive(Debug, Clone)]
pub struct State {
    pub screen: Screen,
    pub now: DateTime<Utc>,
    pub readonly: bool,
    pub color: bool,
    /// Terminal size (columns, rows), for page moves.
    pub size: (u16, u16),
    pub data: Snapshot,
    pub link: Link,
    /// Live frames, oldest first.
    pub log: VecDeque<JournalEntry>,
    /// Frames the server journaled since the watch began (skipped ones included).
    pub frames_seen: u64,
    pub rates: VecDeque<RateSample>,
    /// W per charger, one sample per snapshot.
    pub power: BTreeMap<String, VecDeque<u64>>,
    pub tables: [Table; 6],
    /// The Log screen sticks to the newest frame until the operator moves.
    pub follow_log: bool,
    pub detail: Option<Detail>,
    pub overlay: Option<Overlay>,
    /// The `/` filter of the current screen is being typed.
    pub filtering: bool,
    pub notice: Option<Notice>,
    /// Keys of acknowledged alerts.
    pub acks: BTreeSet<String>,
    pub show_acked: bool,
    pub quit: bool,
    /// Device events of this severity or worse are alerts.
    pub device_severity: u8,
}

impl State {
    pub fn new(now: DateTime<Utc>, readonly: bool, color: bool) -> Self {
        State {
            screen: Screen::Overview,
            now,
            readonly,
            color,
            size: (80, 24),
            data: Snapshot::default(),
            link: Link::Connecting,
            log: VecDeque::new(),
            frames_seen: 0,
            rates: VecDeque::new(),
            power: BTreeMap::new(),
            tables: Default::default(),
            follow_log: true,
            detail: None,
            overlay: None,
            filtering: false,
            notice: None,
            acks: BTreeSet::new(),
            show_acked: false,
            quit: false,
            device_severity: super::alerts::DEVICE_SEVERITY,
        }
    }

    pub fn table(&self) -> &Table {
        &self.tables[self.screen.index()]
    }

    pub fn table_mut(&mut self) -> &mut Table {
        &mut self.tables[self.screen.index()]
    }

    /// Journaled frames per second over the rate window.
    pub fn msg_per_s(&self) -> Option<f64> {
        let (first, last) = (self.rates.front()?, self.rates.back()?);
        let secs = (last.at - first.at).num_milliseconds() as f64 / 1000.0;
        (secs >= 1.0).then(|| (last.frames - first.frames) as f64 / secs)
    }

    /// Mean write-transaction time over the rate window, in ms.
    pub fn commit_ms(&self) -> Option<f64> {
        let (first, last) = (self.rates.front()?, self.rates.back()?);
        let commits = last.commits.checked_sub(first.commits)?;
        let us = last.commit_us.checked_sub(first.commit_us)?;
        (commits > 0).then(|| us as f64 / commits as f64 / 1000.0)
    }

    pub fn charger(&self, id: &str) -> Option<&ChargerView> {
        self.data.chargers.iter().find(|c| c.id == id)
    }

    /// What the charger draws now, from load management's measurements
    /// (A per phase at 230 V); `None` when load management does not see it.
    pub fn power_w(&self, id: &str) -> Option<f64> {
        let prefix = format!("{id}/");
        let mut found = false;
        let mut amps = 0.0;
        for c in self.data.dlm.sites.iter().flat_map(|s| &s.chargers) {
            if c.id == id || c.id.starts_with(&prefix) {
                found = true;
                amps += c.measured.iter().sum::<f64>();
            }
        }
        found.then_some(amps * 230.0)
    }

    /// The active session on a charger (the first one, for several EVSEs).
    pub fn active_session(&self, charger: &str) -> Option<&SessionView> {
        self.data
            .sessions
            .iter()
            .filter(|s| s.charger == charger && s.stopped_at.is_none())
            .min_by_key(|s| s.id)
    }
}
