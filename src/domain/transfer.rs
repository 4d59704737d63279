//! Files moving between the server and chargers: firmware updates (one
//! charger, or a campaign over many), log and diagnostics uploads, and what
//! each charger reported about them. Pure data and rules; the store keeps
//! them and `transfer` moves the bytes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a charger is in a firmware update, as a campaign tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FwState {
    /// Waiting for a free slot (or for the charger to come online).
    Queued,
    /// UpdateFirmware accepted; no progress reported yet.
    Sent,
    Downloading,
    /// Downloaded, verified, scheduled or installing: everything up to the end.
    Installing,
    Installed,
    Failed,
    /// No progress within the step timeout.
    Timeout,
    Cancelled,
}

impl FwState {
    pub fn in_flight(self) -> bool {
        matches!(self, FwState::Sent | FwState::Downloading | FwState::Installing)
    }
    pub fn finished(self) -> bool {
        matches!(
            self,
            FwState::Installed | FwState::Failed | FwState::Timeout | FwState::Cancelled
        )
    }
}

/// The state a firmware status (any version's spelling) moves a request
/// to; `None` for one that says nothing new (Idle).
pub fn fw_state_of(status: &str) -> Option<FwState> {
    Some(match status {
        "Downloading" | "DownloadScheduled" | "DownloadPaused" => FwState::Downloading,
        "Downloaded" | "SignatureVerified" | "InstallScheduled" | "InstallRebooting" | "Installing" => {
            FwState::Installing
        }
        "Installed" => FwState::Installed,
        "DownloadFailed" | "InstallationFailed" | "InstallVerificationFailed" | "InvalidSignature" => FwState::Failed,
        _ => return None,
    })
}

/// One status a charger reported, when we heard it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    pub t: DateTime<Utc>,
    pub status: String,
}

/// A signed update (1.6 security extension SignedUpdateFirmware, 2.0.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareSignature {
    /// Base64 signature of the firmware file.
    pub signature: String,
    /// PEM certificate of the key that signed it.
    pub signing_cert: String,
}

/// What the operator asks for; the same for one charger and a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareOrder {
    pub url: String,
    /// sha256 of a file the server serves itself.
    pub sha256: Option<String>,
    pub retrieve_at: Option<DateTime<Utc>>,
    pub retries: Option<u32>,
    pub signature: Option<FirmwareSignature>,
}

/// One UpdateFirmware sent to one charger, and its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareRequest {
    /// Also the OCPP requestId (signed and 2.0.1 updates).
    pub id: u64,
    pub charger: String,
    pub order: FirmwareOrder,
    pub campaign: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub state: FwState,
    /// When the state last changed (step timeouts count from here).
    pub since: DateTime<Utc>,
    /// The charger's answer to the CALL, or why it was not sent.
    pub answer: Option<String>,
    pub statuses: Vec<Reported>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Running,
    Done,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignTarget {
    pub charger: String,
    pub state: FwState,
    pub request: Option<u64>,
    pub since: DateTime<Utc>,
    pub detail: Option<String>,
}

/// A firmware update rolled out over many chargers, at most
/// `concurrency` at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub order: FirmwareOrder,
    pub concurrency: u32,
    pub state: CampaignState,
    pub targets: Vec<CampaignTarget>,
}

impl Campaign {
    pub fn in_flight(&self) -> usize {
        self.targets.iter().filter(|t| t.state.in_flight()).count()
    }

    /// Counts per state, for progress lines.
    pub fn progress(&self) -> Progress {
        let mut p = Progress {
            total: self.targets.len(),
            ..Default::default()
        };
        for t in &self.targets {
            match t.state {
                FwState::Queued => p.queued += 1,
                FwState::Sent | FwState::Downloading | FwState::Installing => p.in_flight += 1,
                FwState::Installed => p.installed += 1,
                FwState::Failed | FwState::Timeout | FwState::Cancelled => p.failed += 1,
            }
        }
        p
    }

    /// Done when every target has finished; a cancelled campaign stays cancelled.
    pub fn settle(&mut self) {
        if self.state == CampaignState::Running && self.targets.iter().all(|t| t.state.finished()) {
            self.state = CampaignState::Done;
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: usize,
    pub queued: usize,
    pub in_flight: usize,
    pub installed: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// 1.6 GetDiagnostics, or GetLog DiagnosticsLog.
    Diagnostics,
    /// GetLog SecurityLog (1.6 security extension, 2.0.1).
    Security,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogState {
    Requested,
    Accepted,
    Uploading,
    Uploaded,
    Failed,
    Rejected,
}

/// The state a log or diagnostics status moves a request to.
pub fn log_state_of(status: &str) -> Option<LogState> {
    Some(match status {
        "Uploading" => LogState::Uploading,
        "Uploaded" => LogState::Uploaded,
        "UploadFailed" | "UploadFailure" | "BadMessage" | "NotSupportedOperation" | "PermissionDenied" => {
            LogState::Failed
        }
        _ => return None,
    })
}

/// A file a charger uploaded, kept under the data dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadedFile {
    pub name: String,
    /// Relative to the data dir.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub t: DateTime<Utc>,
}

/// One GetDiagnostics / GetLog sent to one charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRequest {
    /// Also the OCPP requestId (GetLog).
    pub id: u64,
    pub charger: String,
    pub kind: LogKind,
    pub since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub state: LogState,
    /// The file name the charger said it will upload.
    pub filename: Option<String>,
    pub answer: Option<String>,
    pub statuses: Vec<Reported>,
    pub files: Vec<UploadedFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_of_every_version_map_to_states() {
        assert_eq!(fw_state_of("Downloading"), Some(FwState::Downloading));
        assert_eq!(fw_state_of("SignatureVerified"), Some(FwState::Installing));
        assert_eq!(fw_state_of("InvalidSignature"), Some(FwState::Failed));
        assert_eq!(fw_state_of("Installed"), Some(FwState::Installed));
        assert_eq!(fw_state_of("Idle"), None);
        assert_eq!(log_state_of("UploadFailure"), Some(LogState::Failed));
        assert_eq!(log_state_of("UploadFailed"), Some(LogState::Failed));
        assert_eq!(log_state_of("Idle"), None);
    }

    #[test]
    fn a_campaign_is_done_only_when_every_target_finished() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let target = |state| CampaignTarget {
            charger: "A".into(),
            state,
            request: None,
            since: t,
            detail: None,
        };
        let mut c = Campaign {
            id: 1,
            created_at: t,
            order: FirmwareOrder {
                url: "http://x/f".into(),
                sha256: None,
                retrieve_at: None,
                retries: None,
                signature: None,
            },
            concurrency: 1,
            state: CampaignState::Running,
            targets: vec![target(FwState::Installed), target(FwState::Downloading)],
        };
        c.settle();
        assert_eq!(c.state, CampaignState::Running);
        assert_eq!(c.in_flight(), 1);
        c.targets[1].state = FwState::Failed;
        c.settle();
        assert_eq!(c.state, CampaignState::Done);
        assert_eq!(c.progress().installed, 1);
        assert_eq!(c.progress().failed, 1);
    }
}
