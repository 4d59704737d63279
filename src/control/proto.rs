//! Request and response types, shared by both ends of the control socket.

use crate::billing::{Bill, Eichrecht, EichrechtState, PriceSummary, Scope};
use crate::domain::circuit::{MeterBinding, PriceSlot};
use crate::domain::message::{Command, CommandResult};
use crate::domain::transfer::{FirmwareSignature, LogKind};
use crate::domain::{
    Access, AuthStatus, Charger, ChargerTxRef, ClosedBy, ConnectorStatus, JournalEntry, Protocol, Registration, Sample,
    Session, SessionStatus, TokenKind,
};
use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// Protocol version; bumped on an incompatible change.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Request {
    Status,
    ChargerList,
    ChargerShow {
        id: String,
    },
    ChargerAdd(ChargerAdd),
    ChargerAccept {
        id: String,
    },
    /// Set a charger's HTTP Basic password (generated when `password` is
    /// `None`); pushed to a connected charger unless `offline`.
    ChargerSetPassword {
        id: String,
        password: Option<String>,
        #[serde(default)]
        offline: bool,
    },
    /// Certificates installed on a charger (GetInstalledCertificateIds).
    ChargerCertList {
        id: String,
    },
    /// Install a root certificate (PEM) on a charger.
    ChargerCertInstall {
        id: String,
        kind: crate::domain::cert::CertKind,
        pem: String,
    },
    /// Delete the installed certificate with this serial number (hex).
    ChargerCertDelete {
        id: String,
        serial: String,
    },
    /// Ask a charger for a new certificate: it sends a SignCertificate.
    ChargerCertRenew {
        id: String,
    },
    /// Certificates the built-in CA issued, for one charger or all.
    CertIssued {
        charger: Option<String>,
    },
    /// The built-in CA's certificate (PEM), for chargers to trust.
    CaCertificate,
    /// Plug & Charge: the configured contract-certificate source, the local
    /// test PKI's roots and the contract certificates it issued.
    PncStatus,
    /// Issue a contract certificate (and key) for an eMAID from the local PnC CA.
    PncIssue {
        emaid: String,
    },
    /// Revoke a contract certificate the local PnC CA issued: OCSP answers
    /// revoked (reason cessationOfOperation when `cancelled`).
    CertRevoke {
        serial: String,
        #[serde(default)]
        cancelled: bool,
    },
    /// The OCPP security profile (0–3) a charger must connect with.
    ChargerSetProfile {
        id: String,
        profile: u8,
    },
    ChargerRemove {
        id: String,
    },
    /// A command sent to the charger over OCPP.
    ChargerCommand {
        id: String,
        command: Command,
    },
    ChargerLogs {
        id: String,
        since: Option<DateTime<Utc>>,
        limit: usize,
        follow: bool,
    },
    TokenList,
    TokenAdd(TokenAdd),
    TokenBlock {
        uid: String,
        blocked: bool,
    },
    TokenRemove {
        uid: String,
    },
    SiteList,
    SiteAdd {
        name: String,
        timezone: String,
        access: Access,
    },
    SiteAllow {
        name: String,
        groups: Vec<String>,
        days: Vec<Weekday>,
        from: Option<NaiveTime>,
        to: Option<NaiveTime>,
    },
    SiteClearRules {
        name: String,
    },
    SessionList {
        charger: Option<String>,
        status: Option<SessionStatus>,
        limit: Option<usize>,
    },
    SessionShow {
        id: u64,
    },
    SessionStart {
        charger: String,
        token: String,
        evse: Option<u32>,
    },
    SessionStop {
        id: u64,
    },
    Events {
        limit: usize,
    },
    CircuitAdd {
        id: String,
        site: String,
        parent: Option<String>,
        max_current: [f64; 3],
        phases: u8,
    },
    CircuitList,
    CircuitSetLimit {
        id: String,
        max_current: Option<[f64; 3]>,
        safe_current: Option<[f64; 3]>,
        max_power_w: Option<f64>,
    },
    CircuitRemove {
        id: String,
    },
    MeterBind {
        circuit: String,
        meter: Option<MeterBinding>,
    },
    /// A reading of a circuit's meter (bound with source `push`).
    MeterPush {
        circuit: String,
        current: [f64; 3],
        at: Option<DateTime<Utc>>,
    },
    MeterList,
    PriceImport {
        site: String,
        slots: Vec<PriceSlot>,
    },
    PriceList {
        site: String,
    },
    SessionSetTarget {
        id: u64,
        departure: Option<DateTime<Utc>>,
        energy_wh: Option<i64>,
        priority: Option<i32>,
    },
    DlmStatus,
    /// Lift limits another source set on a charger (NotifyChargingLimit)
    /// that the charger never cleared: all of them, or one EVSE's, or one
    /// source's. Answers `{"cleared": n}`.
    DlmClearLimit {
        charger: String,
        evse: Option<u32>,
        source: Option<String>,
    },
    /// Store an OCPI tariff (validated; its id is the OCPI `id`) and
    /// optionally assign it to a site, a charger or a token group.
    TariffSet {
        /// The OCPI 2.2.1 (or 2.1.1) Tariff object as JSON text.
        text: String,
        scope: Option<Scope>,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    },
    TariffList,
    TariffShow {
        id: String,
    },
    /// End a tariff assignment at `at` (now when absent) by setting its
    /// `until`; the assignment is kept.
    TariffUnassign {
        id: u64,
        at: Option<DateTime<Utc>>,
    },
    /// Delete a tariff no current or future assignment and no bill refers to.
    TariffRemove {
        id: String,
    },
    /// Price a completed session again with the assignments in force now
    /// for its start; the previous bill is kept in the session's notes.
    SessionReprice {
        id: u64,
    },
    /// OCPI 2.2.1 CDR of a priced session.
    SessionCdr {
        id: u64,
    },
    Receipt {
        session: u64,
        format: ReceiptFormat,
    },
    /// A charger's meter public key (Eichrecht), for meters whose key the
    /// charger does not send with the signed data.
    ChargerSetMeterKey {
        id: String,
        key: String,
        connector: Option<u32>,
    },
    /// A live feed of journaled frames (of one charger, or all): a first
    /// `{}` reply, then `WatchItem` lines until the client hangs up. What
    /// the dashboard refetches its snapshots on.
    Watch {
        charger: Option<String>,
    },
    /// Send a charger (or every charger of a site) its local authorization
    /// list, and from then on keep it in sync; `groups` limits the list to
    /// these token groups (an empty list lifts the limit).
    LocalListSync {
        id: Option<String>,
        site: Option<String>,
        groups: Option<Vec<String>>,
        full: bool,
    },
    /// The list version the charger reports, and what voltyard tracks.
    LocalListVersion {
        id: String,
    },
    ReservationAdd {
        charger: String,
        token: String,
        evse: Option<u32>,
        expires: DateTime<Utc>,
    },
    ReservationList {
        charger: Option<String>,
        limit: usize,
    },
    ReservationCancel {
        id: u64,
    },
    /// The availability requested per connector, with the connectors' states.
    ChargerAvailability {
        id: String,
    },
    /// 2.0.1 GetTransactionStatus; `transaction` is a session id or the charger's transaction id.
    ChargerTxStatus {
        id: String,
        transaction: Option<String>,
    },
    /// 2.0.1 SetDisplayMessage; `session` shows it during that session only.
    ChargerMessageSet {
        id: String,
        text: String,
        priority: crate::domain::ops::MessagePriority,
        state: Option<crate::domain::ops::MessageState>,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        session: Option<u64>,
        message_id: Option<i64>,
    },
    /// 2.0.1 GetDisplayMessages, with the messages the charger reports.
    ChargerMessageList {
        id: String,
    },
    /// Keep a firmware file for chargers to download (content-addressed).
    FirmwareAdd {
        /// Absolute path, readable by the server.
        path: String,
    },
    /// UpdateFirmware (SignedUpdateFirmware with a signature) to one charger.
    FirmwareUpdate {
        id: String,
        source: FirmwareSource,
        retrieve_at: Option<DateTime<Utc>>,
        retries: Option<u32>,
        signature: Option<FirmwareSignature>,
    },
    /// A charger's firmware requests and the statuses it reported.
    FirmwareStatus {
        id: String,
    },
    CampaignStart {
        source: FirmwareSource,
        targets: CampaignTargets,
        concurrency: u32,
        retries: Option<u32>,
        signature: Option<FirmwareSignature>,
    },
    CampaignList,
    CampaignShow {
        id: u64,
    },
    CampaignCancel {
        id: u64,
    },
    /// GetDiagnostics / GetLog to one charger, uploading to this server.
    LogsFetch {
        id: String,
        kind: LogKind,
        since: Option<DateTime<Utc>>,
    },
    /// A charger's log requests and the files it uploaded.
    LogsUploads {
        id: String,
    },
    /// The DataTransfers a charger sent and how they were answered.
    DataTransfers {
        id: String,
        limit: usize,
    },
    /// Ask for a device-model report: 2.0.1 GetBaseReport (`base`) or
    /// GetReport (`component`, `variable`, `criteria`); 1.6 GetConfiguration.
    /// Answers `{"request_id", "status"}`; the parts arrive afterwards.
    ChargerReport {
        id: String,
        #[serde(default)]
        base: Option<String>,
        #[serde(default)]
        component: Option<String>,
        #[serde(default)]
        variable: Option<String>,
        #[serde(default)]
        criteria: Vec<String>,
    },
    /// The stored device model of a charger (no charger round trip).
    ChargerVariables {
        id: String,
        #[serde(default)]
        component: Option<String>,
        #[serde(default)]
        variable: Option<String>,
    },
    /// The last report asked of a charger: complete, partial, requested or refused.
    ChargerReportStatus {
        id: String,
    },
    /// Install a variable monitor (SetVariableMonitoring).
    MonitorSet {
        id: String,
        monitor: crate::domain::message::MonitorRequest,
    },
    /// Ask for the monitoring report (GetMonitoringReport); answers `{"request_id", "status"}`.
    MonitorReport {
        id: String,
    },
    /// The stored monitors of a charger and the state of the last monitoring report.
    MonitorList {
        id: String,
    },
    /// Remove a monitor (ClearVariableMonitoring).
    MonitorClear {
        id: String,
        monitor_id: i64,
    },
    /// SetMonitoringBase: All, FactoryDefault or HardWiredOnly.
    MonitoringBase {
        id: String,
        base: String,
    },
    /// SetMonitoringLevel: events of this severity (0–9) or worse are reported.
    MonitoringLevel {
        id: String,
        severity: u8,
    },
}

/// Where a firmware update's file comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirmwareSource {
    /// Given to chargers as is.
    Url(String),
    /// A file the server stores and serves itself (absolute path).
    File(String),
}

/// Which chargers a campaign updates (at least one selector).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CampaignTargets {
    #[serde(default)]
    pub chargers: Vec<String>,
    #[serde(default)]
    pub all: bool,
    pub site: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptFormat {
    /// For the driver.
    Text,
    /// For machines (stable field names).
    Json,
    /// The S.A.F.E. Transparenzsoftware's input.
    Xml,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargerAdd {
    pub id: String,
    pub site: Option<String>,
    pub circuit: Option<String>,
    pub max_current: Option<u32>,
    #[serde(default)]
    pub max_power_w: Option<u32>,
    pub phases: Option<u8>,
    pub phase_rotation: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub security_profile: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenAdd {
    pub uid: String,
    pub kind: TokenKind,
    pub group: Option<String>,
    pub expires: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

/// One response line: `{"ok": true, "result": …}` or `{"ok": false,
/// "error": {"kind", "message"}}`. A streaming request (`follow`) is then
/// followed by `{"journal": …}` lines until the client hangs up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamItem {
    pub journal: JournalEntry,
}

/// One line of a `watch` stream: `{"journal": …}` or `{"lagged": n}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchItem {
    Journal(JournalEntry),
    /// The watcher fell behind and `n` frames were skipped: whatever it
    /// derives from the frames must be read again.
    Lagged(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong (bad field): CLI exit 2.
    Invalid,
    NotFound,
    Conflict,
    NotConnected,
    /// The charger answered, but not with Accepted.
    Rejected,
    Timeout,
    Busy,
    Internal,
    /// The TCP control listener refused the token (or got none).
    Unauthorized,
}

/// The first line a client sends on the TCP control listener, before any
/// request: the token that `control_token_file` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The charger's answer, when it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CommandResult>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            result: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStatus {
    pub version: String,
    pub api: u32,
    pub listen: String,
    pub data_dir: String,
    pub chargers_connected: usize,
    pub commits: u64,
    /// Time spent in write transactions since start (µs); its growth over
    /// the growth of `commits` is the mean commit latency.
    #[serde(default)]
    pub commit_time_us: u64,
    /// BootNotifications answered Pending by admission control since start.
    #[serde(default)]
    pub boots_deferred: u64,
    /// Times a charger was slowed down for sending faster than
    /// `max_messages_per_s` since start.
    #[serde(default)]
    pub chargers_throttled: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectorView {
    pub evse: u32,
    pub connector: u32,
    pub status: ConnectorStatus,
    pub error_code: Option<String>,
    pub info: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The answer to `ChargerSetPassword`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordSet {
    pub id: String,
    /// The generated password, shown once; `None` when the operator gave it.
    pub password: Option<String>,
    /// The charger accepted the new password over OCPP.
    pub pushed: bool,
}

/// A charger as the operator sees it: stored record plus live connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargerView {
    pub id: String,
    pub status: Registration,
    pub connected: bool,
    pub protocol: Option<Protocol>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub site: String,
    pub circuit: Option<String>,
    pub max_current: Option<u32>,
    pub max_power_w: Option<u32>,
    pub phases: u8,
    pub phase_rotation: String,
    pub password: bool,
    /// A pushed password the charger has not confirmed yet.
    #[serde(default)]
    pub password_pending: bool,
    #[serde(default)]
    pub security_profile: u8,
    pub connectors: Vec<ConnectorView>,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_boot: Option<DateTime<Utc>>,
    pub connected_since: Option<DateTime<Utc>>,
}

impl ChargerView {
    pub fn new(c: Charger, live: Option<crate::ocpp::registry::Live>) -> Self {
        ChargerView {
            status: c.registration,
            connected: live.is_some(),
            protocol: live.as_ref().map(|l| l.protocol).or(c.protocol),
            last_seen: live.as_ref().map(|l| l.last_seen).or(c.last_seen),
            connected_since: live.map(|l| l.since),
            password: c.password_hash.is_some(),
            password_pending: c.password_pending.is_some(),
            security_profile: c.security_profile,
            connectors: c
                .connectors
                .into_iter()
                .map(|k| ConnectorView {
                    evse: k.evse,
                    connector: k.connector,
                    status: k.status,
                    error_code: k.error_code,
                    info: k.info,
                    updated_at: (k.updated_at > DateTime::<Utc>::MIN_UTC).then_some(k.updated_at),
                })
                .collect(),
            id: c.id,
            vendor: c.vendor,
            model: c.model,
            serial: c.serial,
            firmware: c.firmware,
            site: c.site,
            circuit: c.circuit,
            max_current: c.max_current,
            max_power_w: c.max_power_w,
            phases: c.phases,
            phase_rotation: c.phase_rotation,
            last_boot: c.last_boot,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionView {
    pub id: u64,
    pub charger: String,
    pub evse: u32,
    pub connector: u32,
    pub token: Option<String>,
    pub auth: AuthStatus,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub energy_wh: i64,
    pub status: SessionStatus,
    pub meter_start_wh: Option<i64>,
    pub meter_stop_wh: Option<i64>,
    pub stop_reason: Option<String>,
    pub closed_by: Option<ClosedBy>,
    /// The charger's own transaction id (2.0.1), or ours (1.6).
    pub transaction_id: String,
    pub suspect_since: Option<DateTime<Utc>>,
    pub offline: bool,
    pub samples: u64,
    pub notes: Vec<String>,
    /// What the driver needs, for load management.
    pub departure: Option<DateTime<Utc>>,
    pub energy_target_wh: Option<i64>,
    pub priority: Option<i32>,
    /// Once completed and billed: the price (null with `unpriced_reason`
    /// when there is none).
    #[serde(default)]
    pub price: Option<PriceSummary>,
    #[serde(default)]
    pub unpriced_reason: Option<String>,
    /// While active: what it costs if it ended now (from the meter
    /// registers; an estimate, not a bill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_so_far: Option<PriceSummary>,
    /// Once completed: the check of its signed meter data.
    #[serde(default)]
    pub eichrecht: Option<EichrechtView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_values: Option<Vec<Sample>>,
}

/// The Eichrecht result of a session, as lists show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EichrechtView {
    /// `verified`, `failed` or `unsigned`.
    pub state: EichrechtState,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub meter_serial: Option<String>,
    /// Signed begin and end registers (Wh) and the energy between them.
    pub begin_wh: Option<i64>,
    pub end_wh: Option<i64>,
    pub energy_wh: Option<i64>,
    pub signed_values: usize,
}

impl EichrechtView {
    pub fn new(e: &Eichrecht) -> Self {
        EichrechtView {
            state: e.state,
            problems: e.problems.clone(),
            notes: e.notes.clone(),
            meter_serial: e.meter_serial.clone(),
            begin_wh: e.begin.as_ref().and_then(|r| r.register_wh),
            end_wh: e.end.as_ref().and_then(|r| r.register_wh),
            energy_wh: e.energy_wh,
            signed_values: e.signed_values,
        }
    }
}

impl SessionView {
    pub fn new(s: Session, meter_values: Option<Vec<Sample>>) -> Self {
        SessionView {
            energy_wh: s.energy_wh(),
            transaction_id: match &s.tx_ref {
                ChargerTxRef::V16 { .. } => s.id.to_string(),
                ChargerTxRef::V201 { transaction_id } => transaction_id.clone(),
            },
            id: s.id,
            charger: s.charger,
            evse: s.evse,
            connector: s.connector,
            token: s.token,
            auth: s.auth,
            started_at: s.started_at,
            stopped_at: s.stopped_at,
            status: s.status,
            meter_start_wh: s.meter_start_wh,
            meter_stop_wh: s.meter_stop_wh,
            stop_reason: s.stop_reason,
            closed_by: s.closed_by,
            suspect_since: s.suspect_since,
            offline: s.offline,
            samples: s.samples,
            notes: s.notes,
            departure: s.departure,
            energy_target_wh: s.energy_target_wh,
            priority: s.priority,
            price: None,
            unpriced_reason: None,
            price_so_far: None,
            eichrecht: None,
            meter_values,
        }
    }

    /// With the session's bill (or why there is none).
    pub fn billed(mut self, bill: Option<Bill>) -> Self {
        match bill {
            Some(b) => {
                self.eichrecht = Some(EichrechtView::new(&b.eichrecht));
                self.price = b.price;
                self.unpriced_reason = b.unpriced_reason;
            }
            None if self.status == SessionStatus::Active => {
                self.unpriced_reason = Some("the session is still in progress".into());
            }
            None => self.unpriced_reason = Some("no bill: the session ended before billing existed".into()),
        }
        self
    }
}
