//! The live load-management loop in `serve`: it feeds what chargers and
//! meters report into the pure optimiser (`crate::dlm`) and turns the
//! limits it returns into OCPP charging profiles.
//!
//! Events (meter values, status and transaction changes, boots, pushed
//! meter readings, operator changes) arrive on one channel; a decision runs
//! at most every `min_gap_ms` after an event, and every `tick_ms` anyway.
//! The loop never touches redb itself: it reads through `Store` and sends
//! through the connection registry.

mod emit;
mod external;
mod modbus;
pub mod view;
mod world;

use crate::dlm::{Controller, Settings};
use crate::domain::circuit::MeterSource;
use crate::domain::message::{Inbound, Reply};
use crate::domain::session::{TxPhase, TxTarget};
use crate::domain::{ConnectorStatus, Event, Sample};
use crate::server::Shared;
use chrono::{DateTime, Utc};
use emit::Sent;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
pub use view::{DlmView, SiteView};
use world::{Key, World};

/// Events waiting for the loop; meter values beyond this are dropped
/// (the next one carries the same information).
const QUEUE: usize = 16_384;

/// A charger's own meter, at its terminals, per charger phase (A).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub t: DateTime<Utc>,
    pub current: [f64; 3],
    pub offered: Option<f64>,
    pub power_w: Option<f64>,
}

#[derive(Debug)]
pub enum Signal {
    Meter {
        charger: String,
        evse: Option<u32>,
        tx: Option<TxTarget>,
        reading: Reading,
    },
    /// An EVSE-0 meter value of a charger (maybe a circuit's meter).
    ChargerMeter {
        charger: String,
        current: [f64; 3],
        t: DateTime<Utc>,
    },
    /// The charger booted and was accepted: it gets its safe profiles.
    Booted { charger: String },
    /// Stored records changed: a session began or ended or a connector
    /// changed state at `charger`, or (`None`) the operator changed the
    /// tree.
    Changed { charger: Option<String> },
    /// A circuit meter reading (pushed or polled).
    CircuitMeter {
        circuit: String,
        current: [f64; 3],
        t: DateTime<Utc>,
    },
    /// The charger's answer to a profile we sent.
    Answer { key: Key, sent: Sent, accepted: bool },
    /// The car's own plan, checked against the limit we sent it.
    EvSchedule {
        key: Key,
        schedule: crate::domain::device::Schedule,
        t: DateTime<Utc>,
    },
}

/// What an inbound message tells load management, taken before the store
/// consumes it; sent once the store has acknowledged it.
#[derive(Debug)]
pub struct Observation {
    signals: Vec<Signal>,
    boot: bool,
}

/// `now` is when the message arrived: a meter's freshness is judged by our
/// clock, not by the charger's.
pub fn observe(charger: &str, inbound: &Inbound, now: DateTime<Utc>) -> Option<Observation> {
    let mut signals = Vec::new();
    let mut boot = false;
    match inbound {
        Inbound::Boot { .. } => boot = true,
        Inbound::Status { evse, status, t, .. } => {
            // A suspended connector draws nothing, though a charger may
            // send no meter value to say so.
            if matches!(status, ConnectorStatus::SuspendedEv | ConnectorStatus::SuspendedEvse) {
                signals.push(Signal::Meter {
                    charger: charger.to_string(),
                    evse: Some(*evse),
                    tx: None,
                    reading: Reading::idle((*t).min(now)),
                });
            }
            signals.push(changed(charger));
        }
        Inbound::Meter { evse: 0, samples } => {
            if let Some(r) = reading(samples, now) {
                signals.push(Signal::ChargerMeter {
                    charger: charger.to_string(),
                    current: r.current,
                    t: now,
                });
            }
        }
        Inbound::Meter { evse, samples } => {
            if let Some(reading) = reading(samples, now) {
                signals.push(Signal::Meter {
                    charger: charger.to_string(),
                    evse: Some(*evse),
                    tx: None,
                    reading,
                });
            }
        }
        Inbound::Tx(m) => {
            let idle = m
                .charging_state
                .as_deref()
                .is_some_and(|s| matches!(s, "SuspendedEV" | "SuspendedEVSE" | "EVConnected" | "Idle"));
            let reading = reading(&m.samples, now).or_else(|| idle.then(|| Reading::idle(m.t.min(now))));
            if let Some(reading) = reading {
                signals.push(Signal::Meter {
                    charger: charger.to_string(),
                    evse: m.evse,
                    tx: Some(m.target.clone()),
                    reading,
                });
            }
            if m.phase != TxPhase::Updated || m.charging_state.is_some() {
                signals.push(changed(charger));
            }
        }
        Inbound::ChargingNeeds { .. } | Inbound::ChargingLimit { .. } | Inbound::ChargingLimitCleared { .. } => {
            signals.push(changed(charger))
        }
        Inbound::EvSchedule { evse, schedule } => signals.push(Signal::EvSchedule {
            key: (charger.to_string(), *evse),
            schedule: schedule.clone(),
            t: now,
        }),
        Inbound::Heartbeat
        | Inbound::Authorize { .. }
        | Inbound::Notice { .. }
        | Inbound::Report(_)
        | Inbound::MonitoringReport(_)
        | Inbound::DeviceEvents(_)
        | Inbound::ReservationStatus { .. }
        | Inbound::DisplayMessages { .. }
        | Inbound::FirmwareStatus { .. }
        | Inbound::LogStatus { .. }
        | Inbound::DataTransfer(_)
        | Inbound::SignCertificate { .. }
        | Inbound::CertificateRequest { .. }
        | Inbound::EvCertificate { .. }
        | Inbound::EvCertificateAnswered { .. }
        | Inbound::CertificateStatus { .. }
        | Inbound::CertificateStatusAnswered { .. }
        | Inbound::ContractAuthorize { .. }
        | Inbound::ContractChecked { .. } => {}
    }
    (boot || !signals.is_empty()).then_some(Observation { signals, boot })
}

fn changed(charger: &str) -> Signal {
    Signal::Changed {
        charger: Some(charger.to_string()),
    }
}

impl Reading {
    fn idle(t: DateTime<Utc>) -> Self {
        Reading {
            t,
            current: [0.0; 3],
            offered: None,
            power_w: None,
        }
    }
}

/// Per-phase current from the newest sampled values of a message. A value
/// without a phase counts on every phase, which is the safe reading. Its
/// time is never later than `now`: a charger clock running ahead must not
/// make an old reading look newer than a limit we sent.
fn reading(samples: &[Sample], now: DateTime<Utc>) -> Option<Reading> {
    let t = samples
        .iter()
        .filter(|s| s.measurand.starts_with("Current."))
        .map(|s| s.t)
        .max()?;
    let mut current = [None; 3];
    let mut offered = None;
    let mut power_w = None;
    for s in samples.iter().filter(|s| s.t == t) {
        // Normalised to A and W, in thousandths.
        let value = s.value_milli as f64 / 1000.0;
        match s.measurand.as_ref() {
            "Current.Import" => match s.phase.as_deref().and_then(|p| p.get(..2)) {
                Some("L1") => current[0] = Some(value),
                Some("L2") => current[1] = Some(value),
                Some("L3") => current[2] = Some(value),
                _ => {
                    for c in &mut current {
                        c.get_or_insert(value);
                    }
                }
            },
            "Current.Offered" => offered = Some(value),
            "Power.Active.Import" if s.phase.is_none() => power_w = Some(value),
            _ => {}
        }
    }
    if current.iter().all(Option::is_none) {
        return None;
    }
    Some(Reading {
        t: t.min(now),
        current: current.map(|c| c.unwrap_or(0.0)),
        offered,
        power_w,
    })
}

/// The handle every part of the server holds.
pub struct LoadControl {
    tx: mpsc::Sender<Signal>,
    rx: Mutex<Option<mpsc::Receiver<Signal>>>,
    view: Mutex<DlmView>,
    dropped: AtomicU64,
    reloads: AtomicU64,
}

impl Default for LoadControl {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        LoadControl {
            tx,
            rx: Mutex::new(Some(rx)),
            view: Mutex::new(DlmView::default()),
            dropped: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
        }
    }
}

impl LoadControl {
    pub fn signal(&self, s: Signal) {
        if self.tx.try_send(s).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After the store acknowledged the message `observe` looked at.
    pub fn acknowledged(&self, charger: &str, obs: Observation, reply: &Reply) {
        for s in obs.signals {
            self.signal(s);
        }
        if obs.boot
            && matches!(
                reply,
                Reply::Boot {
                    status: crate::domain::Registration::Accepted,
                    ..
                }
            )
        {
            self.signal(Signal::Booted {
                charger: charger.to_string(),
            });
        }
    }

    pub fn view(&self) -> DlmView {
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner()).clone();
        v.dropped_signals = self.dropped.load(Ordering::Relaxed);
        v.reloads = self.reloads.load(Ordering::Relaxed);
        v
    }

    fn publish(&self, v: DlmView) {
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// Start the loop (once; later calls do nothing).
    pub fn spawn(shared: Arc<Shared>) -> Option<tokio::task::JoinHandle<()>> {
        let rx = shared.load.rx.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        Some(tokio::spawn(run(shared, rx)))
    }
}

struct Loop {
    shared: Arc<Shared>,
    world: World,
    controllers: HashMap<String, Controller>,
    sent: HashMap<Key, Sent>,
    /// EVSEs that reported a meter value since the server started.
    fresh: HashSet<Key>,
    non_compliant: HashSet<String>,
    /// EVSEs whose last profile the charger refused; an event is recorded
    /// when one joins, not at every retry.
    refused: HashSet<Key>,
    started: DateTime<Utc>,
    managed: HashSet<String>,
    pollers: modbus::Pollers,
}

async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Signal>) {
    let cfg = shared.config.dlm.clone();
    let mut lp = Loop {
        shared: shared.clone(),
        world: World::default(),
        controllers: HashMap::new(),
        sent: HashMap::new(),
        fresh: HashSet::new(),
        non_compliant: HashSet::new(),
        refused: HashSet::new(),
        started: Utc::now(),
        managed: HashSet::new(),
        pollers: modbus::Pollers::default(),
    };
    lp.reload();
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let gap = Duration::from_millis(cfg.min_gap_ms);
    let mut dirty = false;
    let mut reload = false;
    let mut last = tokio::time::Instant::now() - gap;
    loop {
        let wait = if dirty {
            (last + gap).max(tokio::time::Instant::now())
        } else {
            tokio::time::Instant::now() + Duration::from_secs(3600)
        };
        tokio::select! {
            s = rx.recv() => {
                let Some(s) = s else { return };
                let (d, r) = lp.apply(s);
                dirty |= d;
                reload |= r;
                // Take everything already queued before deciding.
                while let Ok(s) = rx.try_recv() {
                    let (d, r) = lp.apply(s);
                    dirty |= d;
                    reload |= r;
                }
            }
            _ = tick.tick() => { dirty = true; reload = true; }
            _ = tokio::time::sleep_until(wait), if dirty => {
                if reload {
                    lp.reload();
                    reload = false;
                }
                lp.decide().await;
                dirty = false;
                last = tokio::time::Instant::now();
            }
        }
    }
}

impl Loop {
    fn reload(&mut self) {
        self.shared.load.reloads.fetch_add(1, Ordering::Relaxed);
        let store = &self.shared.store;
        let loaded = (|| -> crate::store::Result<()> {
            self.world.chargers = store
                .circuit_chargers()?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect();
            self.world.circuits = store.circuits()?;
            self.world.sessions = store.active_sessions()?;
            self.world.limits = store.charging_limits()?;
            self.world.ev = store.ev_infos()?.into_iter().collect();
            self.world.prices.clear();
            for site in self.world.sites() {
                let p = store.prices(&site)?;
                self.world.prices.insert(site, p);
            }
            Ok(())
        })();
        if let Err(e) = loaded {
            tracing::error!("load management cannot read the store: {e}");
        }
        self.managed = self.world.managed();
        let modbus = self
            .world
            .circuits
            .iter()
            .filter_map(|c| match c.meter.as_ref().map(|m| &m.source) {
                Some(MeterSource::Modbus(m)) => Some((c.id.clone(), m.clone())),
                _ => None,
            })
            .collect();
        self.pollers.sync(&self.shared, modbus);
        let open: HashSet<Key> = self
            .world
            .sessions
            .iter()
            .map(|s| (s.charger.clone(), s.evse))
            .collect();
        self.world.measured.retain(|k, _| open.contains(k));
    }

    /// Apply one event; returns (decide soon, reload the records first).
    fn apply(&mut self, s: Signal) -> (bool, bool) {
        match s {
            Signal::Meter {
                charger,
                evse,
                tx,
                reading,
            } => {
                if !self.managed.contains(&charger) {
                    return (false, false);
                }
                let evse = evse.or_else(|| tx.and_then(|t| self.world.evse_of_tx(&charger, &t)));
                let Some(evse) = evse else { return (false, true) };
                let key = (charger, evse);
                self.fresh.insert(key.clone());
                self.world.measured.insert(key, reading);
                (true, false)
            }
            Signal::ChargerMeter { charger, current, t } => {
                self.world.charger_meters.insert(charger, (current, t));
                (true, false)
            }
            Signal::CircuitMeter { circuit, current, t } => {
                self.world.meters.insert(circuit, (current, t));
                (true, false)
            }
            Signal::Booted { charger } => {
                if self
                    .shared
                    .store
                    .charger(&charger)
                    .ok()
                    .flatten()
                    .is_some_and(|c| c.circuit.is_some())
                {
                    // Whatever we had sent is gone with the reboot.
                    self.sent.retain(|k, _| k.0 != charger);
                    emit::baseline(self.shared.clone(), charger);
                    (true, true)
                } else {
                    (false, false)
                }
            }
            // Reloading reads every charger in a circuit: a storm of boots
            // or status changes from chargers outside any circuit must not
            // cost a reload each (one joining a circuit is picked up by
            // the operator's change or the next tick).
            Signal::Changed { charger: Some(c) } if !self.managed.contains(&c) => (false, false),
            Signal::Changed { .. } => (true, true),
            Signal::Answer { key, sent, accepted } => {
                if accepted {
                    self.refused.remove(&key);
                } else if self.refused.insert(key.clone()) {
                    let detail = format!(
                        "EVSE {} refused a charging profile of {:.1} A; retried every {} s",
                        key.1,
                        sent.current,
                        emit::RETRY.num_seconds()
                    );
                    self.record(&key.0, "profile_rejected", &detail);
                }
                emit::answered(&mut self.sent, key, sent, accepted);
                (!accepted, false)
            }
            Signal::EvSchedule { key, schedule, t } => {
                let phases = self.world.chargers.get(&key.0).map_or(3, |c| c.phases);
                let volts = self.shared.config.dlm.voltage;
                let sent = self.sent.get(&key).map(|s| s.current);
                if let Some(why) = sent.and_then(|a| external::schedule_mismatch(&schedule, t, a, phases, volts)) {
                    tracing::warn!(charger = key.0, evse = key.1, "EV charging schedule: {why}");
                    self.record(&key.0, "ev_schedule_mismatch", &format!("EVSE {}: {why}", key.1));
                }
                (false, false)
            }
        }
    }

    async fn decide(&mut self) {
        if !self.shared.config.dlm.enabled {
            return;
        }
        let now = Utc::now();
        let cfg = self.shared.config.dlm.clone();
        let registry = &self.shared.registry;
        let mut sites = Vec::new();
        let mut orders = Vec::new();
        // What bounds each EVSE besides its circuits, for `dlm status`.
        let caps: HashMap<String, view::Cap> = self
            .world
            .chargers
            .values()
            .flat_map(|ch| {
                world::evses(ch)
                    .into_iter()
                    .filter_map(|e| self.world.cap(ch, e, now, &cfg).map(|c| (world::dlm_id(ch, e), c)))
            })
            .collect();
        for site in self.world.sites() {
            let sent = &self.sent;
            let fallback = |k: &Key| emit::still_in_force(sent.get(k), now);
            let connected = |id: &str| registry.live(id).is_some();
            let state = self.world.site_state(&site, now, &cfg, &connected, &fallback);
            let controller = self.controllers.entry(site.clone()).or_insert_with(|| {
                Controller::new(Settings {
                    volts: cfg.voltage,
                    apply_delay_s: cfg.apply_delay_s,
                    ..Settings::default()
                })
            });
            let started = std::time::Instant::now();
            match controller.step(&state) {
                Ok(alloc) => {
                    let took = started.elapsed();
                    for id in &alloc.non_compliant {
                        if self.non_compliant.insert(id.clone()) {
                            self.record(
                                id,
                                "non_compliant",
                                "charger draws more than its limit; its draw is reserved",
                            );
                        }
                    }
                    let now_bad: HashSet<&String> = alloc.non_compliant.iter().collect();
                    let recovered: Vec<String> = self
                        .non_compliant
                        .iter()
                        .filter(|id| !now_bad.contains(id) && state.chargers.iter().any(|c| &c.id == *id))
                        .cloned()
                        .collect();
                    for id in recovered {
                        self.non_compliant.remove(&id);
                        self.record(&id, "compliant", "charger follows its limit again");
                    }
                    orders.extend(emit::orders(
                        &self.world,
                        &state,
                        &alloc,
                        &self.sent,
                        &self.fresh,
                        self.started,
                        now,
                        &cfg,
                    ));
                    sites.push(view::site(&site, &state, &alloc, &caps, took));
                }
                Err(e) => {
                    tracing::warn!(site, "load management cannot plan this site: {e}");
                    sites.push(SiteView::error(&site, now, e.to_string()));
                }
            }
        }
        self.shared.load.publish(DlmView {
            time: Some(now),
            sites,
            dropped_signals: 0,
            reloads: 0,
        });
        emit::send(&self.shared, &mut self.sent, orders).await;
    }

    /// `id` is the optimiser's name of an EVSE; the event names its charger.
    fn record(&self, id: &str, kind: &str, detail: &str) {
        let shared = self.shared.clone();
        let charger = id.rsplit_once('/').map_or(id, |(c, _)| c);
        let e = Event {
            t: Utc::now(),
            charger: Some(charger.to_string()),
            kind: kind.to_string(),
            detail: detail.to_string(),
            device: None,
        };
        tokio::spawn(async move {
            let _ = shared.store.admin(crate::store::AdminOp::Record(e), Utc::now()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(measurand: &str, phase: Option<&str>, milli: i64, sec: u32) -> Sample {
        Sample {
            t: format!("2026-11-23T10:00:{sec:02}Z").parse().unwrap(),
            measurand: measurand.to_string().into(),
            phase: phase.map(|p| p.to_string().into()),
            context: "Sample.Periodic".into(),
            location: "Outlet".into(),
            unit: "A".into(),
            value_milli: milli,
            signed: None,
        }
    }

    #[test]
    fn the_newest_per_phase_currents_are_read_and_an_unphased_one_counts_on_every_phase() {
        let now = "2026-11-23T11:00:00Z".parse().unwrap();
        let r = reading(
            &[
                sample("Current.Import", Some("L1"), 9_000, 0),
                sample("Current.Import", Some("L1-N"), 16_000, 5),
                sample("Current.Import", Some("L3"), 15_500, 5),
                sample("Current.Offered", None, 16_000, 5),
                sample("Energy.Active.Import.Register", None, 1, 5),
            ],
            now,
        )
        .unwrap();
        assert_eq!(r.current, [16.0, 0.0, 15.5]);
        assert_eq!(r.offered, Some(16.0));
        let r = reading(&[sample("Current.Import", None, 7_000, 1)], now).unwrap();
        assert_eq!(r.current, [7.0; 3]);
        assert!(reading(&[sample("Energy.Active.Import.Register", None, 1, 1)], now).is_none());
        // A charger clock ahead of ours is clamped to the time of arrival.
        let early = "2026-11-23T10:00:02Z".parse().unwrap();
        assert_eq!(
            reading(&[sample("Current.Import", None, 7_000, 9)], early).unwrap().t,
            early
        );
    }

    #[test]
    fn a_suspended_connector_reads_as_drawing_nothing() {
        let t = "2026-11-23T10:00:00Z".parse().unwrap();
        let obs = observe(
            "CP",
            &Inbound::Status {
                evse: 2,
                connector: 1,
                status: ConnectorStatus::SuspendedEvse,
                error_code: None,
                info: None,
                t,
            },
            t,
        )
        .unwrap();
        assert!(matches!(
            &obs.signals[0],
            Signal::Meter { evse: Some(2), reading, .. } if reading.current == [0.0; 3]
        ));
        assert!(matches!(&obs.signals[1], Signal::Changed { charger: Some(c) } if c == "CP"));
        assert!(observe("CP", &Inbound::Heartbeat, t).is_none());
    }
}
