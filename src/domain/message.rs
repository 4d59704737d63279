//! Version-neutral messages: what a charger told us (`Inbound`), what we
//! answer (`Reply`), and what the operator asks a charger to do (`Command`).

use super::device::{ComponentRef, DeviceEvent, EvNeeds, Monitor, ReportPart, ReportedVariable, Schedule};
use super::model::{AuthStatus, ConnectorStatus, Registration, Sample, Session};
use super::ops::{DisplayMessage, ListEntry};
use super::session::TxMessage;
use super::transfer::{FirmwareOrder, LogKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub enum Inbound {
    Boot {
        vendor: String,
        model: String,
        serial: Option<String>,
        firmware: Option<String>,
        reason: Option<String>,
    },
    Heartbeat,
    Authorize {
        token: String,
    },
    Status {
        evse: u32,
        connector: u32,
        status: ConnectorStatus,
        error_code: Option<String>,
        info: Option<String>,
        t: DateTime<Utc>,
    },
    /// Meter values outside a transaction (site or charger meters).
    Meter {
        evse: u32,
        samples: Vec<Sample>,
    },
    Tx(TxMessage),
    /// What the EV needs (2.0.1 NotifyEVChargingNeeds).
    ChargingNeeds {
        evse: u32,
        needs: EvNeeds,
    },
    /// One part of a device-model report (2.0.1 NotifyReport).
    Report(ReportPart<ReportedVariable>),
    /// One part of a monitoring report (2.0.1 NotifyMonitoringReport).
    MonitoringReport(ReportPart<Monitor>),
    /// Monitors that fired or cleared (2.0.1 NotifyEvent).
    DeviceEvents(Vec<DeviceEvent>),
    /// A limit from another source (2.0.1 NotifyChargingLimit); EVSE 0 is
    /// the whole charger.
    ChargingLimit {
        evse: u32,
        source: String,
        grid_critical: Option<bool>,
        schedules: Vec<Schedule>,
    },
    /// That source lifted its limit (2.0.1 ClearedChargingLimit).
    ChargingLimitCleared {
        evse: Option<u32>,
        source: String,
    },
    /// The car's own charging plan (2.0.1 NotifyEVChargingSchedule).
    EvSchedule {
        evse: u32,
        schedule: Schedule,
    },
    /// 2.0.1 ReservationStatusUpdate: the charger ended a reservation.
    ReservationStatus {
        id: i64,
        /// Expired or Removed.
        status: String,
    },
    /// 2.0.1 NotifyDisplayMessages: (part of) the answer to GetDisplayMessages.
    DisplayMessages {
        request_id: i64,
        messages: Vec<DisplayMessage>,
        more_to_come: bool,
    },
    /// A charger asks the CA to sign its CSR (SignCertificate).
    SignCertificate {
        csr: String,
        kind: Option<String>,
    },
    /// A SignCertificate after the CA looked at it: the certificate it
    /// issued, or why it refused (the connection fills this in).
    CertificateRequest {
        result: Result<super::cert::IssuedCert, String>,
    },
    /// Anything we record and acknowledge without acting on it yet
    /// (firmware, diagnostics, log and security notifications, DataTransfer, reports).
    Notice {
        kind: String,
        detail: String,
    },
    /// A firmware update's progress (1.6 FirmwareStatusNotification names no request).
    FirmwareStatus {
        status: String,
        request_id: Option<i64>,
    },
    /// A log or diagnostics upload's progress (DiagnosticsStatusNotification names no request).
    LogStatus {
        status: String,
        request_id: Option<i64>,
    },
    /// A vendor's DataTransfer, with the answer its hook gave.
    DataTransfer(DataTransfer),
    /// ISO 15118 Get15118EVCertificate (2.0.1): the EV's request, opaque.
    EvCertificate {
        schema_version: String,
        /// Install or Update.
        action: String,
        exi_request: String,
    },
    /// An EvCertificate after the contract-certificate source answered
    /// (the connection fills this in); `issued` is stored before the reply.
    EvCertificateAnswered {
        answer: super::pnc::SourceAnswer,
        issued: Option<super::pnc::ContractCert>,
    },
    /// GetCertificateStatus: an OCSP check the charger asks the CSMS for.
    CertificateStatus {
        request: super::pnc::OcspRequestData,
    },
    /// A CertificateStatus after the source answered.
    CertificateStatusAnswered {
        answer: super::pnc::SourceAnswer,
    },
    /// Authorize with a contract certificate or its hash data (ISO 15118).
    ContractAuthorize {
        token: String,
        data: super::pnc::ContractData,
    },
    /// A ContractAuthorize after its certificate was checked: the token is
    /// then authorized like any other, or refused with the verdict.
    ContractChecked {
        token: String,
        verdict: Result<(), (super::pnc::CertVerdict, String)>,
    },
}

/// A DataTransfer from a charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataTransfer {
    pub vendor_id: String,
    pub message_id: Option<String>,
    /// As sent: 1.6 carries a string, 2.0.1 any JSON (kept as its text).
    pub data: Option<String>,
    /// Filled in by the vendor's hook before the message is stored.
    pub answer: DataTransferAnswer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataTransferAnswer {
    /// Accepted, Rejected, UnknownMessageId or UnknownVendorId.
    pub status: String,
    pub data: Option<String>,
    /// Why the hook answered as it did when it failed (timeout, bad output).
    pub note: Option<String>,
}

impl Default for DataTransferAnswer {
    fn default() -> Self {
        DataTransferAnswer {
            status: "UnknownVendorId".into(),
            data: None,
            note: None,
        }
    }
}

impl Inbound {
    /// Carries signed meter data (Eichrecht), for which a meter key is needed.
    pub fn carries_signed_data(&self) -> bool {
        let samples = match self {
            Inbound::Meter { samples, .. } => samples,
            Inbound::Tx(m) => &m.samples,
            _ => return false,
        };
        samples.iter().any(|s| s.signed.is_some())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Boot {
        status: Registration,
        interval: u32,
        now: DateTime<Utc>,
    },
    Heartbeat {
        now: DateTime<Utc>,
    },
    Auth {
        status: AuthStatus,
    },
    TxStarted {
        session: u64,
        auth: AuthStatus,
    },
    /// Transaction message acknowledged; `auth` when it carried a token.
    Tx {
        auth: Option<AuthStatus>,
    },
    /// A transaction ended and was billed: `total_cost` (2.0.1 totalCost)
    /// when a tariff priced it.
    TxEnded {
        auth: Option<AuthStatus>,
        total_cost: Option<rust_decimal::Decimal>,
    },
    Ack,
    DataTransfer(DataTransferAnswer),
    /// `{"status": "Accepted"}` or `"Rejected"`.
    Status {
        accepted: bool,
    },
    /// Get15118EVCertificate: the exiResponse, or Failed with a reason.
    EvCertificate(super::pnc::SourceAnswer),
    /// GetCertificateStatus: the OCSP response (base64), or Failed.
    CertificateStatus(super::pnc::SourceAnswer),
    /// Authorize with a contract certificate: the token's status (`None`:
    /// Invalid, the certificate was refused) and the certificate's.
    ContractAuth {
        status: Option<AuthStatus>,
        certificate: super::pnc::CertVerdict,
    },
}

/// An operator's request to a charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    Reset {
        hard: bool,
    },
    Unlock {
        evse: u32,
        connector: u32,
    },
    Trigger {
        message: String,
        evse: Option<u32>,
    },
    GetConfig {
        keys: Vec<String>,
    },
    SetConfig {
        key: String,
        value: String,
    },
    /// The HTTP Basic password (1.6 AuthorizationKey, 2.0.1
    /// SecurityCtrlr.BasicAuthPassword); never journaled in clear.
    SetPassword {
        password: String,
    },
    RemoteStart {
        token: String,
        evse: Option<u32>,
        remote_start_id: i64,
    },
    RemoteStop {
        session: Box<Session>,
    },
    Availability {
        operative: bool,
        evse: Option<u32>,
    },
    /// 2.0.1: about one transaction, or (without) whether messages are queued.
    GetTransactionStatus {
        transaction_id: Option<String>,
    },
    SendLocalList {
        version: i64,
        /// Full replaces the list; otherwise the entries update it.
        full: bool,
        entries: Vec<ListEntry>,
    },
    GetLocalListVersion,
    ClearCache,
    ReserveNow {
        id: u64,
        token: String,
        kind: super::model::TokenKind,
        group: Option<String>,
        /// Connector (1.6) or EVSE (2.0.1); `None` is any (1.6 connector 0).
        evse: Option<u32>,
        expires: DateTime<Utc>,
    },
    CancelReservation {
        id: u64,
    },
    SetDisplayMessage {
        message: DisplayMessage,
    },
    GetDisplayMessages {
        request_id: i64,
    },
    ClearDisplayMessage {
        id: i64,
    },
    /// 2.0.1: the running cost of a transaction, in the tariff's currency.
    CostUpdated {
        transaction_id: String,
        total: rust_decimal::Decimal,
    },
    SetProfile {
        /// Connector (1.6) or EVSE (2.0.1); 0 is the whole charger.
        evse: u32,
        profile: ChargingProfile,
    },
    ClearProfile {
        id: Option<i64>,
        evse: Option<u32>,
        purpose: Option<ProfilePurpose>,
    },
    /// UpdateFirmware (1.6, 2.0.1) or SignedUpdateFirmware (1.6 with a signature).
    UpdateFirmware {
        request_id: i64,
        order: FirmwareOrder,
    },
    /// GetDiagnostics (1.6 diagnostics) or GetLog, uploading to `url`.
    GetLog {
        request_id: i64,
        kind: LogKind,
        url: String,
        since: Option<DateTime<Utc>>,
    },
    DataTransfer {
        vendor_id: String,
        message_id: Option<String>,
        data: Option<String>,
    },
    /// 2.0.1 GetBaseReport: `base` is ConfigurationInventory, FullInventory
    /// or SummaryInventory.
    GetBaseReport {
        request_id: i64,
        base: String,
    },
    /// 2.0.1 GetReport, narrowed by component (and variable) and criteria.
    GetReport {
        request_id: i64,
        component: Option<ComponentRef>,
        variable: Option<String>,
        criteria: Vec<String>,
    },
    SetMonitor {
        monitor: MonitorRequest,
    },
    GetMonitoringReport {
        request_id: i64,
        component: Option<ComponentRef>,
        variable: Option<String>,
        criteria: Vec<String>,
    },
    ClearMonitor {
        id: i64,
    },
    /// All, FactoryDefault or HardWiredOnly.
    SetMonitoringBase {
        base: String,
    },
    /// Only events of this severity or worse are reported.
    SetMonitoringLevel {
        severity: u8,
    },
    /// The certificate chain (PEM) the CA issued for a SignCertificate.
    CertificateSigned {
        chain: String,
        kind: Option<String>,
    },
    InstallCertificate {
        kind: super::cert::CertKind,
        pem: String,
    },
    DeleteCertificate {
        hash: super::cert::CertHash,
    },
    /// All kinds when `kind` is `None` (2.0.1 only; 1.6 asks one kind at a time).
    GetInstalledCertificates {
        kind: Option<super::cert::CertKind>,
    },
}

/// A monitor to install (SetVariableMonitoring); `id` replaces one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorRequest {
    pub id: Option<i64>,
    pub component: ComponentRef,
    pub variable: String,
    pub variable_instance: Option<String>,
    pub kind: String,
    pub value: f64,
    pub severity: u8,
    pub transaction: bool,
}

/// A charging profile with one limit, as load management sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargingProfile {
    pub id: i64,
    pub stack_level: u32,
    pub purpose: ProfilePurpose,
    /// The charger's transaction id (ours for 1.6) for a Tx profile.
    pub transaction_id: Option<String>,
    /// From when the limit holds; `None` means relative to each
    /// transaction's start (a TxDefault that covers every new session).
    pub start: Option<DateTime<Utc>>,
    /// How long the limit holds; afterwards the charger falls back to the
    /// profiles below it. `None`: until replaced.
    pub duration_s: Option<u32>,
    pub unit: RateUnit,
    pub limit: f64,
    pub number_phases: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfilePurpose {
    /// 1.6 ChargePointMaxProfile, 2.0.1 ChargingStationMaxProfile.
    ChargerMax,
    TxDefault,
    Tx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RateUnit {
    A,
    W,
}

/// A charger's answer to a `Command`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CommandResult {
    /// Accepted / Rejected / NotSupported / RebootRequired / Unlocked ...
    Status {
        status: String,
        accepted: bool,
        detail: Option<String>,
    },
    Config {
        entries: Vec<ConfigEntry>,
        unknown: Vec<String>,
        accepted: bool,
    },
    TransactionStatus {
        ongoing: Option<bool>,
        messages_in_queue: bool,
        accepted: bool,
    },
    /// GetLocalListVersion: 0 is no list (1.6 -1: local lists are off).
    ListVersion { version: i64 },
    /// SetVariableMonitoring: the id the charger gave the monitor.
    Monitor {
        id: Option<i64>,
        status: String,
        accepted: bool,
    },
    /// GetInstalledCertificateIds: what the charger has installed.
    Certificates {
        status: String,
        accepted: bool,
        certificates: Vec<super::cert::CertHash>,
    },
}

impl CommandResult {
    pub fn accepted(&self) -> bool {
        match self {
            CommandResult::Status { accepted, .. }
            | CommandResult::Config { accepted, .. }
            | CommandResult::TransactionStatus { accepted, .. }
            | CommandResult::Monitor { accepted, .. }
            | CommandResult::Certificates { accepted, .. } => *accepted,
            CommandResult::ListVersion { .. } => true,
        }
    }
    pub fn status(status: &str, accepted_when: &[&str]) -> Self {
        CommandResult::Status {
            status: status.to_string(),
            accepted: accepted_when.contains(&status),
            detail: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntry {
    pub key: String,
    pub value: Option<String>,
    pub readonly: bool,
    /// 2.0.1 attribute status when not Accepted.
    pub status: Option<String>,
}
