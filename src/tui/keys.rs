//! The keys of each screen, as the help overlay and the footer list them.
//! `update` is what gives them their meaning; the tests check that the two
//! agree.

use super::state::{Detail, Screen, State};

pub type Key = (&'static str, &'static str);

const GLOBAL: &[Key] = &[
    ("Tab / S-Tab", "next / previous screen"),
    ("1-6", "go to a screen"),
    (":name", "go to a screen by name (:q quits)"),
    ("?", "this help"),
    ("q / C-c", "quit"),
];

const TABLE: &[Key] = &[
    ("j k ↑ ↓", "move"),
    ("g G", "first / last row"),
    ("PgUp PgDn", "page up / down"),
    ("/", "filter (Enter keeps it, Esc clears)"),
    ("Esc", "back / clear the filter"),
];

const CHARGER_ACTIONS: &[Key] = &[
    ("r / R", "soft / hard reset"),
    ("u", "unlock connector"),
    ("o / i", "operative / inoperative"),
    ("A", "accept a pending charger"),
    ("S", "remote start (asks for a token)"),
    ("x", "remote stop its session"),
];

/// The keys of the screen (or detail view) the operator is on, then the
/// keys that work everywhere.
pub fn help(state: &State) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    let actions = !state.readonly;
    match (&state.detail, state.screen) {
        (Some(Detail::Charger(_)), _) => {
            keys.extend([
                ("j k", "select a connector"),
                ("c", "configuration / message log"),
                ("Esc", "back to the list"),
            ]);
            if actions {
                keys.extend(CHARGER_ACTIONS);
            }
        }
        (Some(Detail::Session(_)), _) => {
            keys.extend([("v", "meter readings / receipt"), ("Esc", "back to the list")]);
            if actions {
                keys.extend([("x", "remote stop"), ("b", "block its token")]);
            }
        }
        (Some(Detail::Frame(_)), _) => keys.push(("Esc", "back to the log")),
        (None, Screen::Overview) => {}
        (None, screen) => {
            keys.extend(TABLE);
            if !screen.sorts().is_empty() {
                keys.push(("s", "cycle the sort order"));
            }
            match screen {
                Screen::Chargers => {
                    keys.push(("Enter", "details, log, configuration"));
                    if actions {
                        keys.extend(CHARGER_ACTIONS);
                    }
                }
                Screen::Sessions => {
                    keys.push(("Enter", "meter readings and receipt"));
                    if actions {
                        keys.extend([("x", "remote stop"), ("b", "block its token")]);
                    }
                }
                Screen::Load => {
                    if actions {
                        keys.push(("l", "set the circuit's limit (A)"));
                    }
                }
                Screen::Alerts => keys.extend([
                    ("Enter", "the charger's details"),
                    ("a", "acknowledge"),
                    ("A", "acknowledge all shown"),
                    ("h", "show / hide acknowledged"),
                ]),
                Screen::Log => keys.extend([("Enter", "the whole frame"), ("G", "follow new frames")]),
                Screen::Overview => {}
            }
        }
    }
    keys.extend(GLOBAL);
    keys
}

/// The footer's short reminder.
pub fn hint(state: &State) -> String {
    let mut parts: Vec<&str> = Vec::new();
    match (&state.detail, state.screen) {
        (Some(Detail::Charger(_)), _) => parts.extend(["c config", "esc back"]),
        (Some(Detail::Session(_)), _) => parts.extend(["v receipt", "esc back"]),
        (Some(Detail::Frame(_)), _) => parts.push("esc back"),
        (None, Screen::Overview) => parts.push("tab screens"),
        (None, Screen::Load) => parts.push("/ filter"),
        (None, _) => parts.extend(["/ filter", "enter open"]),
    }
    parts.extend(["? help", "q quit"]);
    parts.join(" · ")
}
