//! `voltyard dlm plan`: the load-management controller on JSON lines, without a server.
//!
//! Reads one [`SiteState`] per line from stdin (blank lines skipped), writes one [`Allocation`] per
//! line to stdout (flushed per line), keeping one [`Controller`] across lines exactly as the live
//! loop does. A line that is not a valid site state is reported on stderr with its line number and
//! the field, produces no output line, leaves the controller's state untouched, and the run goes on;
//! the exit status is then 2 at the end. See docs/dlm.md for the schema.

use crate::dlm::{Allocation, ChargerState, CircuitState, Controller, PriceSlot, SessionState, Settings, SiteState};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{BufRead, Write};

/// Run the load-management controller on site states from stdin, one JSON object per line.
///
/// Example:
///   echo '{"time":"2026-11-23T08:00:00Z","circuits":[{"id":"grid","parent":null,"max_current":[32,32,32]}],
///   "chargers":[{"id":"CP-1","circuit":"grid","phases":3,"phase_rotation":"L1L2L3","min_current":6,
///   "max_current":32,"session":{"id":"s1","measured_current":[16,16,16],"energy_wh":0}}]}' | voltyard dlm plan
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Part of every circuit limit kept free for measurement error [default: 0.03].
    #[arg(long, value_name = "FRACTION")]
    pub headroom: Option<f64>,
    /// Minimum headroom in A per phase [default: 0.5].
    #[arg(long, value_name = "A")]
    pub headroom_min: Option<f64>,
    /// Seconds between pause rotations when not every car fits at its minimum [default: 600].
    #[arg(long, value_name = "SECONDS")]
    pub rotation_period: Option<f64>,
    /// Limit changes smaller than this are not sent, in A [default: 1].
    #[arg(long, value_name = "A")]
    pub deadband: Option<f64>,
    /// At most one increase per charger in this many seconds [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub increase_interval: Option<f64>,
    /// Seconds a charger needs to follow a new limit [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub apply_delay: Option<f64>,
    /// Settings as a JSON object (any field of docs/dlm.md's settings table); flags override it.
    #[arg(long, value_name = "JSON")]
    pub settings: Option<String>,
}

impl PlanArgs {
    /// The settings these flags describe (defaults for what is not given).
    pub fn to_settings(&self) -> Result<Settings, PlanError> {
        let mut s = match &self.settings {
            Some(text) => serde_json::from_str::<Settings>(text).map_err(|e| PlanError::Settings(e.to_string()))?,
            None => Settings::default(),
        };
        let set = |slot: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut s.headroom_fraction, self.headroom);
        set(&mut s.headroom_min_a, self.headroom_min);
        set(&mut s.rotation_period_s, self.rotation_period);
        set(&mut s.deadband_a, self.deadband);
        set(&mut s.increase_interval_s, self.increase_interval);
        set(&mut s.apply_delay_s, self.apply_delay);
        s.check().map_err(|e| PlanError::Settings(e.to_string()))?;
        Ok(s)
    }
}

/// Why `dlm plan` failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Some lines were refused (each already reported on stderr); the others were answered.
    #[error("{count} line(s) were not valid site states (first: line {first})")]
    BadLines { count: usize, first: usize },
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl PlanError {
    /// The process exit status: 2 for bad input or settings, 1 for I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            PlanError::BadLines { .. } | PlanError::Settings(_) => 2,
            PlanError::Io(_) => 1,
        }
    }
}

/// Plans every line of `input` into `output`; refused lines are described on `errors`.
pub fn run_with(
    input: impl BufRead,
    mut output: impl Write,
    mut errors: impl Write,
    settings: Settings,
) -> Result<(), PlanError> {
    settings.check().map_err(|e| PlanError::Settings(e.to_string()))?;
    let mut controller = Controller::new(settings);
    let mut bad = 0usize;
    let mut first_bad = 0usize;
    for (n, line) in input.lines().enumerate() {
        let number = n + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = parse(&line).and_then(|state| controller.step(&state).map_err(|e| e.to_string()));
        match result {
            Ok(allocation) => {
                write_line(&mut output, &allocation)?;
            }
            Err(message) => {
                if bad == 0 {
                    first_bad = number;
                }
                bad += 1;
                writeln!(errors, "voltyard dlm plan: line {number}: {message}")?;
                errors.flush()?;
            }
        }
    }
    if bad > 0 {
        return Err(PlanError::BadLines {
            count: bad,
            first: first_bad,
        });
    }
    Ok(())
}

/// Plans every line of `input` into `output`, reporting refused lines on stderr.
pub fn run(input: impl BufRead, output: impl Write, settings: Settings) -> Result<(), PlanError> {
    run_with(input, output, std::io::stderr(), settings)
}

/// One input line as a site state; a refusal names the field (`chargers[3].phases`) where it can.
fn parse(line: &str) -> Result<SiteState, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    serde_json::from_value::<SiteState>(value.clone()).map_err(|e| match blame_site(&value) {
        Some(path) => format!("`{path}`: {e}"),
        None => e.to_string(),
    })
}

/// The path of the field that makes `v` fail as a site state.
fn blame_site(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    let Some(time) = obj.get("time") else {
        return Some("time".into());
    };
    if serde_json::from_value::<chrono::DateTime<chrono::Utc>>(time.clone()).is_err() {
        return Some("time".into());
    }
    for (key, _) in [("circuits", 0), ("chargers", 1), ("prices", 2)] {
        let Some(list) = obj.get(key) else {
            if key == "prices" {
                continue;
            }
            return Some(key.into());
        };
        let Some(items) = list.as_array() else {
            return Some(key.into());
        };
        for (i, item) in items.iter().enumerate() {
            let path = format!("{key}[{i}]");
            let found = match key {
                "circuits" => blame::<CircuitState>(item, &path),
                "prices" => blame::<PriceSlot>(item, &path),
                _ => match item.get("session") {
                    Some(s) if !s.is_null() && serde_json::from_value::<SessionState>(s.clone()).is_err() => {
                        blame::<SessionState>(s, &format!("{path}.session"))
                    }
                    _ => blame::<ChargerState>(item, &path),
                },
            };
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// When `v` fails as a `T`: the member whose removal makes it parse (or be reported missing).
fn blame<T: DeserializeOwned>(v: &Value, path: &str) -> Option<String> {
    if serde_json::from_value::<T>(v.clone()).is_ok() {
        return None;
    }
    let Some(obj) = v.as_object() else {
        return Some(path.to_string());
    };
    for key in obj.keys() {
        let mut without = obj.clone();
        without.remove(key);
        match serde_json::from_value::<T>(Value::Object(without)) {
            Ok(_) => return Some(format!("{path}.{key}")),
            Err(e) if e.to_string().contains(&format!("missing field `{key}`")) => {
                return Some(format!("{path}.{key}"));
            }
            Err(_) => {}
        }
    }
    Some(path.to_string())
}

fn write_line(output: &mut impl Write, allocation: &Allocation) -> Result<(), PlanError> {
    let text = serde_json::to_string(allocation).map_err(std::io::Error::other)?;
    output.write_all(text.as_bytes())?;
    output.write_all(b"\n")?;
    output.flush()?;
    Ok(())
}

/// `voltyard dlm plan`: stdin to stdout. The error carries the exit status (see [`PlanError::exit_code`]).
pub fn run_cli(args: PlanArgs) -> Result<(), PlanError> {
    let settings = args.to_settings()?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    run(stdin, stdout, settings)
}
