//! One virtual charge point: connectors with cars, its meter, profiles and
//! settings, and the CALLs it has to send. No sockets and no clock: the link
//! feeds it the time (`Clock`), frames it received, and takes its outbox.

use super::car::{AC_VOLTS, Car, Draw};
use super::ocmf::Meter;
use super::plan::{ChargerPlan, Visit, Visits};
use super::profiles::{self, Profiles, Unit};
use super::scenario::{Quirk, Scenario, Supply, TokenKind};
use super::settings::{self, Settings};
use super::stats::Stats;
use crate::domain::Protocol;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: Instant,
    pub wall: DateTime<Utc>,
}

/// What a CALL we sent was for, so its answer lands in the right place.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    Boot,
    Authorize {
        conn: usize,
    },
    /// Get15118EVCertificate for the car at this connector.
    PncInstall {
        conn: usize,
    },
    /// GetCertificateStatus of that car's contract certificate.
    PncStatus {
        conn: usize,
    },
    Start {
        conn: usize,
        local: u64,
    },
    Plain,
}

#[derive(Debug, Clone)]
pub struct Out {
    pub action: &'static str,
    pub payload: Value,
    pub purpose: Purpose,
    /// Kept and replayed across a lost connection (transaction messages).
    pub transactional: bool,
    /// 1.6: the transaction whose server id goes into `transactionId`.
    pub(super) tx_local: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Available,
    Preparing,
    Charging,
    SuspendedEv,
    SuspendedEvse,
    Finishing,
    Unavailable,
}

impl Status {
    pub(super) fn v16(self) -> &'static str {
        match self {
            Status::Available => "Available",
            Status::Preparing => "Preparing",
            Status::Charging => "Charging",
            Status::SuspendedEv => "SuspendedEV",
            Status::SuspendedEvse => "SuspendedEVSE",
            Status::Finishing => "Finishing",
            Status::Unavailable => "Unavailable",
        }
    }
    pub(super) fn v201(self) -> &'static str {
        match self {
            Status::Available => "Available",
            Status::Unavailable => "Unavailable",
            _ => "Occupied",
        }
    }
    /// 2.0.1 TransactionEvent chargingState.
    pub(super) fn charging_state(self) -> &'static str {
        match self {
            Status::Charging => "Charging",
            Status::SuspendedEv => "SuspendedEV",
            Status::SuspendedEvse => "SuspendedEVSE",
            _ => "EVConnected",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Auth {
    /// Not asked yet (or the question was lost with the connection).
    Waiting,
    Asked,
    Accepted,
    Refused,
}

#[derive(Debug, Clone)]
pub(super) struct Tx {
    pub local: u64,
    /// 1.6: the server's transactionId once StartTransaction is answered.
    pub server_id: Option<i64>,
    /// 2.0.1 transactionId (1.6: the server id as text once known).
    pub id: String,
    pub seq: u32,
    pub started: DateTime<Utc>,
    pub token: String,
    pub token_kind: TokenKind,
    pub ended: bool,
}

pub(super) struct Plugged {
    pub visit: Visit,
    pub car: Car,
    pub leave_at: Instant,
    pub(super) auth: Auth,
    pub tx: Option<Tx>,
    /// The driver/server ended the session but the car is still plugged in.
    pub(super) finished: bool,
    /// Started by the CSMS (RequestStartTransaction): its token, not Plug & Charge.
    pub(super) remote: bool,
}

pub(super) struct Conn {
    pub id: u32,
    pub(super) visits: Visits,
    pub(super) next: Option<(Instant, Visit)>,
    pub plugged: Option<Plugged>,
    pub(super) register_mwh: u64,
    /// W·ms not yet a whole mWh.
    pub(super) energy_rest: i64,
    pub draw: Draw,
    /// mA per phase (AC) or W (DC) the car may take now.
    pub offered: i64,
    /// The limit the charger is moving to, and since when.
    pub(super) target: (i64, Instant),
    pub(super) next_meter: Instant,
    pub available: bool,
    /// ChangeAvailability(Inoperative) during a transaction: after it.
    pub(super) unavailable_after_tx: bool,
    pub(super) reported: Option<Status>,
    pub(super) reported_state: Option<&'static str>,
}

pub struct Charger {
    pub plan: ChargerPlan,
    pub settings: Settings,
    pub(super) conns: Vec<Conn>,
    pub(super) profiles: Profiles,
    pub(super) outbox: VecDeque<Out>,
    pub(super) meter: Option<Meter>,
    pub accepted: bool,
    pub online: bool,
    pub(super) boot_reason: &'static str,
    pub(super) boot_retry_at: Option<Instant>,
    pub(super) next_heartbeat: Instant,
    pub(super) tx_counter: u64,
    pub(super) auth_cache: HashSet<String>,
    /// eMAID → contract certificate chain (PEM) installed for ISO 15118 cars.
    pub(super) contracts: std::collections::HashMap<String, String>,
    /// 1.6: ended transactions whose queued messages still need their id.
    pub(super) finished_tx_ids: Vec<Tx>,
    /// A Reset was accepted: reboot at this instant, with this stop reason.
    pub(super) reset_at: Option<(Instant, &'static str)>,
    /// Reset: transactions were stopped; reboot once their messages are
    /// out (or at this deadline).
    pub(super) reboot_by: Option<Instant>,
    /// The link should close the socket and stay offline this long.
    pub drop_for: Option<Duration>,
    pub(super) next_drop: Option<Instant>,
    pub(super) drop_every: (u32, u32),
    pub offline_s: u32,
    pub(super) drop_rng: u64,
    pub(super) last_tick: Instant,
    pub(super) stats: Arc<Stats>,
    /// Local list, reservations, display messages, running costs.
    pub(super) ops: super::ops::Ops,
    /// Firmware and log transfers in progress, and the running firmware.
    pub(super) transfers: super::transfer::Transfers,
    /// Monitors, events and the external limit (2.0.1 device model).
    pub(super) device: super::device::DeviceState,
    pub(super) security: super::security::SimSecurity,
}

/// Decimal text of a milli value (`12345` → `"12.345"`).
pub fn milli_text(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let v = v.unsigned_abs();
    let frac = v % 1000;
    if frac == 0 {
        format!("{sign}{}", v / 1000)
    } else {
        format!("{sign}{}.{:03}", v / 1000, frac)
            .trim_end_matches('0')
            .to_string()
    }
}

pub(super) fn milli_number(v: i64) -> Value {
    serde_json::from_str(&milli_text(v)).unwrap_or(Value::from(0))
}

impl Charger {
    pub fn new(plan: ChargerPlan, scenario: &Scenario, stats: Arc<Stats>, clock: Clock) -> Charger {
        let meter = plan.meter_key.map(|k| {
            Meter::new(
                k,
                &format!("MTR{}", &plan.serial[2..]),
                &format!("{} {}", plan.vendor, plan.model),
                &plan.serial,
            )
        });
        let keys: Vec<String> = match &meter {
            Some(m) => {
                let hex = data_encoding::HEXUPPER.encode(&m.public_key_der());
                (0..plan.connectors).map(|_| format!("oca:base16:asn1:{hex}")).collect()
            }
            None => Vec::new(),
        };
        let settings = Settings::new(plan.connectors, plan.meter_interval_s, &plan.phase_rotation, &keys);
        let conns = (1..=plan.connectors)
            .map(|id| {
                let mut visits = Visits::new(scenario, &plan, id);
                let v = visits.next_visit();
                Conn {
                    id,
                    next: Some((clock.now + Duration::from_secs(v.wait_s as u64), v)),
                    visits,
                    plugged: None,
                    // Meters are not new: a register that is not zero shows up
                    // bugs that treat the register as the session energy.
                    register_mwh: (plan.index as u64 + 1) * 1_234_567_000 + id as u64 * 100_000_000,
                    energy_rest: 0,
                    draw: Draw::default(),
                    offered: 0,
                    target: (0, clock.now),
                    next_meter: clock.now,
                    available: true,
                    unavailable_after_tx: false,
                    reported: None,
                    reported_state: None,
                }
            })
            .collect();
        let drop_every = (
            scenario.misbehaviour.drop_every_s[0],
            scenario.misbehaviour.drop_every_s[1],
        );
        let mut c = Charger {
            settings,
            conns,
            profiles: Profiles::default(),
            outbox: VecDeque::new(),
            meter,
            accepted: false,
            online: false,
            boot_reason: "PowerUp",
            boot_retry_at: None,
            next_heartbeat: clock.now,
            tx_counter: 0,
            auth_cache: HashSet::new(),
            contracts: Default::default(),
            finished_tx_ids: Vec::new(),
            reset_at: None,
            reboot_by: None,
            drop_for: None,
            next_drop: None,
            drop_every,
            offline_s: scenario.misbehaviour.offline_s,
            drop_rng: plan.visit_seed | 1,
            last_tick: clock.now,
            stats,
            ops: Default::default(),
            transfers: super::transfer::Transfers::new(
                scenario.misbehaviour.transfer_failure_percent,
                plan.visit_seed ^ 0x5eed,
            ),
            device: Default::default(),
            security: Default::default(),
            plan,
        };
        if c.plan.quirk == Some(Quirk::DropAndReplay) {
            c.next_drop = Some(clock.now + c.drop_interval());
        }
        let hw = c.plan_hw_limit();
        for conn in &mut c.conns {
            conn.offered = hw;
            conn.target = (hw, clock.now);
        }
        c
    }

    pub fn proto(&self) -> Protocol {
        self.plan.protocol
    }

    /// xorshift: the drop schedule is as reproducible as the visits.
    pub(super) fn drop_interval(&mut self) -> Duration {
        let mut x = self.drop_rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.drop_rng = x;
        let (lo, hi) = self.drop_every;
        Duration::from_secs(lo as u64 + x % (hi - lo + 1) as u64)
    }

    pub(super) fn dc(&self) -> bool {
        self.plan.supply == Supply::Dc
    }

    /// The hardware limit: mA per phase (AC) or W (DC).
    pub(super) fn plan_hw_limit(&self) -> i64 {
        match self.plan.supply {
            Supply::Ac => self.plan.max_current_a as i64 * 1000,
            Supply::Dc => self.plan.max_power_kw.unwrap_or(50) as i64 * 1000,
        }
    }

    pub(super) fn push(
        &mut self,
        action: &'static str,
        payload: Value,
        purpose: Purpose,
        transactional: bool,
        tx: Option<u64>,
    ) {
        self.outbox.push_back(Out {
            action,
            payload,
            purpose,
            transactional,
            tx_local: tx,
        });
    }

    // ---- the link's side -------------------------------------------------

    /// The next CALL to send. Before the server accepted us, only boots go.
    pub fn next_out(&mut self, clock: Clock) -> Option<Out> {
        if !self.online {
            return None;
        }
        if !self.accepted {
            // A triggered boot goes at once; otherwise wait for the interval.
            let triggered = self.outbox.iter().any(|o| o.purpose == Purpose::Boot);
            self.outbox.retain(|o| o.purpose != Purpose::Boot);
            if triggered || self.boot_retry_at.is_none_or(|t| clock.now >= t) {
                self.boot_retry_at = Some(clock.now + Duration::from_secs(30));
                return Some(self.boot_message());
            }
            return None;
        }
        loop {
            let mut out = self.outbox.pop_front()?;
            if self.proto() == Protocol::V16
                && let Some(local) = out.tx_local
            {
                let id = self
                    .conns
                    .iter()
                    .filter_map(|c| c.plugged.as_ref()?.tx.as_ref())
                    .chain(self.finished_tx_ids.iter())
                    .find(|t| t.local == local)
                    .and_then(|t| t.server_id);
                match id {
                    Some(id) => out.payload["transactionId"] = json!(id),
                    // The server refused the start outright: there is no
                    // transaction to stop, and readings go out unattached.
                    None if out.action == "StopTransaction" => continue,
                    None => {
                        if let Some(o) = out.payload.as_object_mut() {
                            o.remove("transactionId");
                        }
                    }
                }
            }
            return Some(out);
        }
    }

    pub(super) fn boot_message(&self) -> Out {
        let p = &self.plan;
        let payload = match self.proto() {
            Protocol::V16 => {
                let mut b = json!({
                    "chargePointVendor": p.vendor,
                    "chargePointModel": p.model,
                    "chargePointSerialNumber": p.serial,
                    "firmwareVersion": self.transfers.firmware,
                });
                if self.meter.is_some() {
                    b["meterType"] = json!("VirtualMeter");
                    b["meterSerialNumber"] = json!(format!("MTR{}", &p.serial[2..]));
                }
                b
            }
            Protocol::V201 => json!({
                "reason": self.boot_reason,
                "chargingStation": {
                    "vendorName": p.vendor,
                    "model": p.model,
                    "serialNumber": p.serial,
                    "firmwareVersion": self.transfers.firmware,
                }
            }),
        };
        Out {
            action: "BootNotification",
            payload,
            purpose: Purpose::Boot,
            transactional: false,
            tx_local: None,
        }
    }

    pub fn on_connect(&mut self) {
        self.online = true;
        for c in &mut self.conns {
            c.reported = None;
        }
    }

    /// The connection is gone; `outstanding` was in flight. Transaction
    /// messages stay queued for replay, the rest is stale by reconnection.
    pub fn on_disconnect(&mut self, outstanding: Option<Out>) {
        self.online = false;
        if let Some(o) = outstanding {
            if let Purpose::Authorize { conn } | Purpose::PncInstall { conn } | Purpose::PncStatus { conn } = o.purpose
                && let Some(p) = self.conns[conn].plugged.as_mut()
            {
                p.auth = Auth::Waiting;
            }
            if o.transactional {
                self.outbox.push_front(o);
            }
        }
        self.outbox.retain(|o| o.transactional);
        for c in &mut self.conns {
            if let Some(p) = c.plugged.as_mut()
                && p.auth == Auth::Asked
            {
                p.auth = Auth::Waiting;
            }
        }
    }

    /// Queued transaction messages a reconnect will replay.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    pub fn on_result(&mut self, purpose: Purpose, p: &Value, clock: Clock) {
        match purpose {
            Purpose::Boot => {
                let interval = p
                    .get("interval")
                    .and_then(Value::as_u64)
                    .unwrap_or(300)
                    .clamp(1, 86_400);
                match p.get("status").and_then(Value::as_str) {
                    Some("Accepted") => {
                        if !self.accepted {
                            Stats::gauge(&self.stats.accepted, 1);
                        }
                        self.accepted = true;
                        self.boot_retry_at = None;
                        self.settings.set(settings::HEARTBEAT, None, &interval.to_string());
                        self.next_heartbeat = clock.now + Duration::from_secs(interval);
                        self.boot_reason = "PowerUp";
                        if self.proto() == Protocol::V16 {
                            self.push(
                                "StatusNotification",
                                json!({"connectorId": 0, "errorCode": "NoError", "status": "Available",
                                       "timestamp": crate::ocpp::format_time(clock.wall)}),
                                Purpose::Plain,
                                false,
                                None,
                            );
                        }
                    }
                    // Pending / Rejected: try again after the interval given.
                    _ => self.boot_retry_at = Some(clock.now + Duration::from_secs(interval)),
                }
            }
            Purpose::Authorize { conn } => {
                let key = if self.proto() == Protocol::V16 {
                    "idTagInfo"
                } else {
                    "idTokenInfo"
                };
                let ok = p.pointer(&format!("/{key}/status")).and_then(Value::as_str) == Some("Accepted");
                self.authorized(conn, ok, clock);
            }
            Purpose::Start { conn, local } => {
                let ok = p.pointer("/idTagInfo/status").and_then(Value::as_str) == Some("Accepted");
                let id = p.get("transactionId").and_then(Value::as_i64);
                let plugged = self.conns[conn].plugged.as_mut().and_then(|pl| pl.tx.as_mut());
                for tx in plugged.into_iter().chain(self.finished_tx_ids.iter_mut()) {
                    if tx.local == local {
                        tx.server_id = id;
                        if let Some(id) = id {
                            tx.id = id.to_string();
                        }
                    }
                }
                let running = self.conns[conn]
                    .plugged
                    .as_ref()
                    .and_then(|pl| pl.tx.as_ref())
                    .is_some_and(|t| t.local == local && !t.ended);
                if !ok && running {
                    Stats::add(&self.stats.auth_rejected, 1);
                    self.stop_tx(conn, "DeAuthorized", "Deauthorized", clock);
                }
            }
            Purpose::PncInstall { conn } => self.pnc_installed(conn, p, clock),
            Purpose::PncStatus { conn } => self.pnc_checked(conn, p, clock),
            Purpose::Plain => {}
        }
    }

    /// A CALLERROR or a timeout in answer to our CALL.
    pub fn on_failure(&mut self, purpose: Purpose, clock: Clock) {
        match purpose {
            Purpose::Boot => self.boot_retry_at = Some(clock.now + Duration::from_secs(30)),
            Purpose::Authorize { conn } | Purpose::PncInstall { conn } | Purpose::PncStatus { conn } => {
                self.authorized(conn, false, clock)
            }
            _ => {}
        }
    }

    // ---- time passing ----------------------------------------------------

    /// When the charger next needs `tick`.
    pub fn next_wakeup(&self) -> Instant {
        // Statuses owed (just accepted, or reconnected): report at once.
        if self.online && self.accepted && self.conns.iter().any(|c| c.reported.is_none()) {
            return self.last_tick;
        }
        let mut t = self.next_heartbeat;
        let busy = self.conns.iter().any(|c| c.plugged.is_some()) || self.monitoring();
        if busy {
            return self.last_tick + Duration::from_secs(1);
        }
        for c in &self.conns {
            if let Some((at, _)) = &c.next {
                t = t.min(*at);
            }
        }
        if let Some(d) = self.next_drop {
            t = t.min(d);
        }
        if let Some((r, _)) = self.reset_at {
            t = t.min(r);
        }
        if let Some(r) = self.reboot_by {
            t = t.min(r);
        }
        if let Some(b) = self.boot_retry_at {
            t = t.min(b);
        }
        t.max(self.last_tick + Duration::from_millis(200))
    }

    pub fn tick(&mut self, clock: Clock) {
        let dt_ms = clock.now.saturating_duration_since(self.last_tick).as_millis() as i64;
        self.last_tick = clock.now;
        if let Some((at, reason)) = self.reset_at
            && clock.now >= at
        {
            self.reset_at = None;
            for i in 0..self.conns.len() {
                if self.conns[i].plugged.as_ref().is_some_and(|p| p.tx.is_some()) {
                    self.stop_tx(i, reason, "ResetCommand", clock);
                }
            }
            self.reboot_by = Some(clock.now + Duration::from_secs(10));
            return;
        }
        if let Some(at) = self.next_drop
            && clock.now >= at
        {
            self.next_drop = Some(clock.now + Duration::from_secs(self.offline_s as u64) + self.drop_interval());
            self.drop_for = Some(Duration::from_secs(self.offline_s as u64));
        }
        for i in 0..self.conns.len() {
            self.tick_conn(i, dt_ms, clock);
        }
        self.expire_reservations(clock);
        if self.accepted && self.online && clock.now >= self.next_heartbeat {
            let s = self.settings.int(settings::HEARTBEAT).unwrap_or(300).max(1);
            self.next_heartbeat = clock.now + Duration::from_secs(s);
            self.push("Heartbeat", json!({}), Purpose::Plain, false, None);
        }
        if self.accepted && self.online {
            self.report_statuses(clock);
        }
        self.tick_device(clock);
    }

    pub(super) fn tick_conn(&mut self, i: usize, dt_ms: i64, clock: Clock) {
        let target = self.target_limit(i, clock);
        let delay = Duration::from_secs(self.plan.limit_delay_s as u64);
        let conn = &mut self.conns[i];
        if target != conn.target.0 {
            conn.target = (target, clock.now);
        }
        if conn.offered != conn.target.0 && clock.now.saturating_duration_since(conn.target.1) >= delay {
            conn.offered = conn.target.0;
        }
        let charging = conn
            .plugged
            .as_ref()
            .is_some_and(|p| p.tx.as_ref().is_some_and(|t| !t.ended) && !p.finished);
        let draw = match (&conn.plugged, charging) {
            (Some(p), true) if self.plan.supply == Supply::Dc => p.car.dc_draw(conn.offered),
            (Some(p), true) => p.car.ac_draw(conn.offered, self.plan.phases),
            _ => Draw::default(),
        };
        if (draw.power_w > 0) != (conn.draw.power_w > 0) {
            Stats::gauge(&self.stats.charging, if draw.power_w > 0 { 1 } else { -1 });
        }
        conn.draw = draw;
        conn.energy_rest += draw.power_w * dt_ms;
        let mwh = conn.energy_rest / 3600;
        conn.energy_rest %= 3600;
        let before_wh = conn.register_mwh / 1000;
        conn.register_mwh += mwh as u64;
        Stats::add(&self.stats.energy_wh, conn.register_mwh / 1000 - before_wh);
        if let Some(p) = conn.plugged.as_mut() {
            p.car.absorb(mwh as u64);
        }
        if charging && clock.now >= conn.next_meter {
            let every = self.settings.int(settings::METER_INTERVAL).unwrap_or(60).max(1);
            self.conns[i].next_meter = clock.now + Duration::from_secs(every);
            self.send_meter_values(i, "Sample.Periodic", true, clock);
        }
        let conn = &self.conns[i];
        let leaving = conn.plugged.as_ref().is_some_and(|p| clock.now >= p.leave_at);
        if leaving {
            self.unplug(i, clock);
        }
        let conn = &mut self.conns[i];
        let arriving = conn.plugged.is_none()
            && conn.available
            && self.accepted
            && conn.next.as_ref().is_some_and(|(at, _)| clock.now >= *at);
        if arriving && let Some((_, visit)) = conn.next.take() {
            self.plug_in(i, visit, None, clock);
        }
        if self.conns[i].plugged.as_ref().is_some_and(|p| p.auth == Auth::Waiting)
            && self.online
            && !self.pnc_authorize(i, clock)
        {
            self.ask_authorization(i);
        }
    }

    // ---- limits ----------------------------------------------------------

    /// What the connector should offer now: hardware, profiles, availability.
    pub(super) fn target_limit(&self, i: usize, clock: Clock) -> i64 {
        let conn = &self.conns[i];
        let hw = self.plan_hw_limit();
        if !conn.available {
            return 0;
        }
        if self.plan.quirk == Some(Quirk::IgnoreProfiles) {
            return hw;
        }
        let convert = |per: &profiles::Period, unit: Unit| -> i64 {
            match (self.plan.supply, unit) {
                (Supply::Ac, u) => profiles::to_ma(per, u, self.plan.phases, AC_VOLTS),
                (Supply::Dc, Unit::Watts) => per.limit_milli / 1000,
                // A on a DC charger: at the nominal 400 V battery voltage.
                (Supply::Dc, Unit::Amps) => per.limit_milli * 400 / 1000,
            }
        };
        let tx = conn
            .plugged
            .as_ref()
            .and_then(|p| p.tx.as_ref())
            .map(|t| (t.id.as_str(), t.started));
        let mut limit = hw;
        if let Some((p, per)) = self.profiles.session_limit(conn.id, tx, clock.wall) {
            limit = limit.min(convert(per, p.unit));
        }
        let active = self
            .conns
            .iter()
            .filter(|c| c.plugged.as_ref().is_some_and(|p| p.tx.is_some()))
            .count()
            .max(1) as i64;
        for (p, per) in self.profiles.station_limits(clock.wall) {
            // A charger-wide cap is shared by the connectors in use.
            limit = limit.min(convert(per, p.unit) / active);
        }
        if self.plan.quirk == Some(Quirk::RoundLimits) {
            limit = (limit + 500) / 1000 * 1000;
        }
        limit.max(0)
    }

    pub(super) fn queue_boot_front(&mut self) {
        self.outbox.push_front(self.boot_message());
    }

    pub(super) fn push_plain(&mut self, action: &'static str, payload: Value) {
        self.push(action, payload, Purpose::Plain, false, None);
    }

    pub(super) fn schedule_reset(&mut self, clock: Clock, reason: &'static str) {
        self.reset_at = Some((clock.now + Duration::from_millis(500), reason));
    }

    /// A reset is due: its stop messages are out (`idle`: nothing in
    /// flight) or it waited long enough.
    pub fn reboot_due(&self, now: Instant, idle: bool) -> bool {
        self.reboot_by
            .is_some_and(|by| now >= by || (idle && self.outbox.is_empty()))
    }

    /// The link closed the socket for a reset: start again from power-up.
    pub fn rebooted(&mut self) {
        if self.accepted {
            Stats::gauge(&self.stats.accepted, -1);
        }
        self.reboot_by = None;
        self.accepted = false;
        self.boot_reason = "RemoteReset";
        self.boot_retry_at = None;
        self.firmware_rebooted();
        for i in 0..self.conns.len() {
            self.profiles.end_transaction(self.conns[i].id);
        }
    }

    pub(super) fn set_unavailable_after_tx(&mut self, i: usize) {
        self.conns[i].unavailable_after_tx = true;
    }

    pub(super) fn next_visit_now(&mut self, i: usize) -> Visit {
        self.conns[i].visits.next_visit()
    }

    pub(super) fn remember_finished(&mut self, i: usize) {
        if let Some(t) = self.conns[i].plugged.as_ref().and_then(|p| p.tx.clone()) {
            self.finished_tx_ids.push(t);
            // Only the newest few can still have queued messages.
            if self.finished_tx_ids.len() > 16 {
                self.finished_tx_ids.remove(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::plan::Plan;
    use crate::sim::scenario::ProtocolChoice;

    fn booted(proto: ProtocolChoice, quirk: Option<Quirk>) -> (Charger, Clock) {
        let mut s = Scenario::generic(1, proto, 1);
        s.arrivals.first_within_s = 100_000;
        let mut plan = Plan::new(&s, 1).chargers.remove(0);
        plan.quirk = quirk;
        plan.limit_delay_s = 3;
        let clock = Clock {
            now: Instant::now(),
            wall: "2026-11-23T10:00:00Z".parse().unwrap(),
        };
        let mut c = Charger::new(plan, &s, Arc::new(Stats::default()), clock);
        c.on_connect();
        let boot = c.next_out(clock).unwrap();
        assert_eq!(boot.action, "BootNotification");
        c.on_result(Purpose::Boot, &json!({"status": "Accepted", "interval": 60}), clock);
        (c, clock)
    }

    fn later(c: Clock, s: u64) -> Clock {
        Clock {
            now: c.now + Duration::from_secs(s),
            wall: c.wall + chrono::Duration::seconds(s as i64),
        }
    }

    fn drain(c: &mut Charger, clock: Clock) -> Vec<Out> {
        std::iter::from_fn(|| c.next_out(clock)).collect()
    }

    fn tx_default_8a() -> Value {
        json!({"connectorId": 0, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8}]}}})
    }

    #[test]
    fn a_new_limit_is_followed_after_the_delay_and_never_exceeded() {
        let (mut c, t0) = booted(ProtocolChoice::V16, None);
        let r = c.handle_call("RemoteStartTransaction", &json!({"idTag": "X", "connectorId": 1}), t0);
        assert_eq!(r.unwrap()["status"], "Accepted");
        c.tick(later(t0, 1));
        assert_eq!(c.conns[0].draw.current_ma, [16_000; 3]);
        let r = c.handle_call("SetChargingProfile", &tx_default_8a(), later(t0, 1));
        assert_eq!(r.unwrap()["status"], "Accepted");
        c.tick(later(t0, 2));
        assert_eq!(c.conns[0].offered, 16_000, "applied before its delay");
        for s in 3..=6 {
            c.tick(later(t0, s));
        }
        assert_eq!(c.conns[0].offered, 8_000);
        assert_eq!(c.conns[0].draw.current_ma, [8_000; 3]);
        // The next periodic reading (every 10 s) reports the new offer.
        for s in 7..=12 {
            c.tick(later(t0, s));
        }
        let frames = drain(&mut c, later(t0, 12));
        let offered: Vec<&Value> = frames
            .iter()
            .filter(|o| o.action == "MeterValues")
            .flat_map(|o| o.payload["meterValue"][0]["sampledValue"].as_array().unwrap())
            .filter(|s| s["measurand"] == "Current.Offered")
            .collect();
        assert_eq!(offered.last().unwrap()["value"], "8");
    }

    #[test]
    fn below_six_amps_the_car_pauses_and_the_connector_says_so() {
        let (mut c, t0) = booted(ProtocolChoice::V16, None);
        c.handle_call("RemoteStartTransaction", &json!({"idTag": "X", "connectorId": 1}), t0)
            .unwrap();
        let mut p = tx_default_8a();
        p["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = json!(4.5);
        c.handle_call("SetChargingProfile", &p, t0).unwrap();
        for s in 1..=5 {
            c.tick(later(t0, s));
        }
        assert_eq!(c.conns[0].draw, Draw::default());
        assert_eq!(c.status(0), Status::SuspendedEvse);
        let statuses: Vec<String> = drain(&mut c, later(t0, 5))
            .iter()
            .filter(|o| o.action == "StatusNotification")
            .map(|o| o.payload["status"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(statuses.last().map(String::as_str), Some("SuspendedEVSE"));
    }

    #[test]
    fn quirky_chargers_misbehave_as_configured() {
        let (mut c, t0) = booted(ProtocolChoice::V16, Some(Quirk::RejectProfiles));
        c.handle_call("RemoteStartTransaction", &json!({"idTag": "X", "connectorId": 1}), t0)
            .unwrap();
        let r = c.handle_call("SetChargingProfile", &tx_default_8a(), t0).unwrap();
        assert_eq!(r["status"], "Rejected");

        let (mut c, t0) = booted(ProtocolChoice::V16, Some(Quirk::IgnoreProfiles));
        c.handle_call("RemoteStartTransaction", &json!({"idTag": "X", "connectorId": 1}), t0)
            .unwrap();
        assert_eq!(
            c.handle_call("SetChargingProfile", &tx_default_8a(), t0).unwrap()["status"],
            "Accepted"
        );
        for s in 1..=6 {
            c.tick(later(t0, s));
        }
        assert_eq!(c.conns[0].draw.current_ma, [16_000; 3]);
    }

    #[test]
    fn offline_transactions_are_queued_and_replayed_in_order_with_the_server_id() {
        let (mut c, t0) = booted(ProtocolChoice::V16, None);
        drain(&mut c, t0);
        c.handle_call("RemoteStartTransaction", &json!({"idTag": "X", "connectorId": 1}), t0)
            .unwrap();
        c.on_disconnect(None);
        for s in 1..=12 {
            c.tick(later(t0, s));
        }
        c.unplug(0, later(t0, 12));
        let queued = c.queued();
        assert!(queued >= 3, "start, meter values and stop stay queued: {queued}");
        c.on_connect();
        let t = later(t0, 13);
        let start = c.next_out(t).unwrap();
        assert_eq!(start.action, "StartTransaction");
        c.on_result(
            start.purpose,
            &json!({"transactionId": 77, "idTagInfo": {"status": "Accepted"}}),
            t,
        );
        let rest = drain(&mut c, t);
        let stop = rest.iter().find(|o| o.action == "StopTransaction").unwrap();
        assert_eq!(stop.payload["transactionId"], 77);
        assert!(
            rest.iter()
                .filter(|o| o.action == "MeterValues")
                .all(|o| o.payload["transactionId"] == 77)
        );
    }

    #[test]
    fn kwh_labelled_as_wh() {
        let (c, _) = booted(ProtocolChoice::V16, Some(Quirk::KwhAsWh));
        let v = c.register_sample16(12_345_678, "Sample.Periodic");
        assert_eq!((v["value"].as_str(), v["unit"].as_str()), (Some("12.345"), Some("Wh")));
    }
}
