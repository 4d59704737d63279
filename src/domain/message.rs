//! Version-neutral messages: what a charger told us (`Inbound`), what we
//! answer (`Reply`), and what the operator asks a charger to do (`Command`).

use super::model::{AuthStatus, ConnectorStatus, Registration, Sample, Session};
use super::session::TxMessage;
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
        departure: Option<DateTime<Utc>>,
        energy_wh: Option<i64>,
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
    Ack,
    /// `{"status": "Accepted"}` or `"Rejected"`.
    Status {
        accepted: bool,
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
    GetTransactionStatus {
        transaction_id: String,
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
            | CommandResult::Certificates { accepted, .. } => *accepted,
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
