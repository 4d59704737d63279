//! Firmware updates and log uploads as a charger does them: accept the
//! request, report progress, hand the link a job (a real HTTP download or
//! upload, `sim::http`), and on its result report the outcome; a firmware
//! that downloaded is installed by rebooting, and the charger boots with
//! the new version. A configurable share of transfers fails.

use super::charger::{Charger, Clock, Purpose};
use crate::domain::Protocol;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A firmware image whose first line is `VOLTYARD-SIM-FW <version>` installs
/// as that version; any other file as `sha-` and its hash's first 12 digits.
pub const VERSION_MARK: &str = "VOLTYARD-SIM-FW ";

/// How to report one transfer's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    pub action: &'static str,
    pub request_id: Option<i64>,
    /// The failure status of this action.
    pub failed: &'static str,
    pub signed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Download {
        url: String,
        after: Duration,
        report: Report,
    },
    Upload {
        url: String,
        name: String,
        body: Vec<u8>,
        /// multipart/form-data POST (1.6 diagnostics), else a raw PUT.
        multipart: bool,
        report: Report,
    },
}

pub struct Transfers {
    pub firmware: String,
    jobs: Vec<Job>,
    /// Downloaded and installing: reported Installed after the reboot.
    installing: Option<(Report, String)>,
    failure_percent: u32,
    rng: u64,
}

impl Transfers {
    pub fn new(failure_percent: u32, seed: u64) -> Transfers {
        Transfers {
            firmware: concat!("voltyard-sim ", env!("CARGO_PKG_VERSION")).to_string(),
            jobs: Vec::new(),
            installing: None,
            failure_percent,
            rng: seed | 1,
        }
    }

    /// Whether this transfer fails (xorshift, so a seed replays the same failures).
    fn fails(&mut self) -> bool {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x % 100) < u64::from(self.failure_percent)
    }
}

/// The version a downloaded image installs as.
pub fn version_of(image: &[u8]) -> String {
    if let Some(rest) = image.strip_prefix(VERSION_MARK.as_bytes()) {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let v = String::from_utf8_lossy(line).trim().to_string();
        if !v.is_empty() {
            return v.chars().take(50).collect();
        }
    }
    let hex = data_encoding::HEXLOWER.encode(&Sha256::digest(image));
    format!("sha-{}", &hex[..12])
}

impl Charger {
    fn report_transfer(&mut self, r: Report, status: &str, survives_reconnect: bool) {
        let mut p = json!({"status": status});
        if let Some(id) = r.request_id {
            p["requestId"] = json!(id);
        }
        self.push(r.action, p, Purpose::Plain, survives_reconnect, None);
    }

    /// UpdateFirmware (1.6, 2.0.1) or SignedUpdateFirmware (1.6): the answer.
    pub(super) fn update_firmware(&mut self, action: &str, p: &Value, clock: Clock) -> Value {
        let signed = action == "SignedUpdateFirmware" || p.pointer("/firmware/signature").is_some();
        let (url, at) = match p.get("firmware") {
            Some(f) => (f.get("location"), f.get("retrieveDateTime")),
            None => (p.get("location"), p.get("retrieveDate")),
        };
        let url = url.and_then(Value::as_str).unwrap_or_default().to_string();
        let after = at
            .and_then(Value::as_str)
            .and_then(crate::ocpp::parse_time)
            .and_then(|t| (t - clock.wall).to_std().ok())
            .unwrap_or_default();
        let request_id = p.get("requestId").and_then(Value::as_i64);
        let report = match (self.proto(), action) {
            (Protocol::V16, "UpdateFirmware") => Report {
                action: "FirmwareStatusNotification",
                request_id: None,
                failed: "DownloadFailed",
                signed: false,
            },
            (Protocol::V16, _) => Report {
                action: "SignedFirmwareStatusNotification",
                request_id,
                failed: "DownloadFailed",
                signed,
            },
            (Protocol::V201, _) => Report {
                action: "FirmwareStatusNotification",
                request_id,
                failed: "DownloadFailed",
                signed,
            },
        };
        if signed
            && !p
                .pointer("/firmware/signingCertificate")
                .and_then(Value::as_str)
                .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
        {
            return json!({"status": "InvalidCertificate"});
        }
        if after.is_zero() {
            self.report_transfer(report, "Downloading", false);
        } else if report.action != "FirmwareStatusNotification" {
            self.report_transfer(report, "DownloadScheduled", false);
        }
        self.transfers.jobs.push(Job::Download { url, after, report });
        if action == "UpdateFirmware" && self.proto() == Protocol::V16 {
            json!({})
        } else {
            json!({"status": "Accepted"})
        }
    }

    /// GetDiagnostics (1.6) or GetLog: the answer; the file goes up as a job.
    pub(super) fn get_log(&mut self, action: &str, p: &Value, clock: Clock) -> Value {
        let stamp = clock.wall.format("%Y%m%dT%H%M%SZ");
        let id = &self.plan.id;
        let request_id = p.get("requestId").and_then(Value::as_i64);
        let diagnostics = action == "GetDiagnostics";
        let (url, name, report) = if diagnostics {
            let url = p.get("location").and_then(Value::as_str).unwrap_or_default();
            let report = Report {
                action: "DiagnosticsStatusNotification",
                request_id: None,
                failed: "UploadFailed",
                signed: false,
            };
            (url.to_string(), format!("diagnostics-{id}-{stamp}.log"), report)
        } else {
            let url = p
                .pointer("/log/remoteLocation")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = p.get("logType").and_then(Value::as_str).unwrap_or("DiagnosticsLog");
            let report = Report {
                action: "LogStatusNotification",
                request_id,
                failed: "UploadFailure",
                signed: false,
            };
            (url.to_string(), format!("{kind}-{id}-{stamp}.log"), report)
        };
        let body = self.log_text(&name, clock).into_bytes();
        self.report_transfer(report, "Uploading", false);
        self.transfers.jobs.push(Job::Upload {
            url: if diagnostics {
                url
            } else {
                format!("{}/{name}", url.trim_end_matches('/'))
            },
            name: name.clone(),
            body,
            multipart: diagnostics,
            report,
        });
        if diagnostics {
            json!({"fileName": name})
        } else {
            json!({"status": "Accepted", "filename": name})
        }
    }

    fn log_text(&self, name: &str, clock: Clock) -> String {
        let mut s = format!(
            "# {name}\n# charger {} firmware {}\n",
            self.plan.id, self.transfers.firmware
        );
        for c in &self.conns {
            s.push_str(&format!(
                "{} connector {} available={} register_wh={}\n",
                crate::ocpp::format_time(clock.wall),
                c.id,
                c.available,
                c.register_mwh / 1000
            ));
        }
        s
    }

    /// DataTransfer: vendor `voltyard.sim` echoes the data back; others are unknown.
    pub(super) fn data_transfer(&self, p: &Value) -> Value {
        if p.get("vendorId").and_then(Value::as_str) != Some("voltyard.sim") {
            return json!({"status": "UnknownVendorId"});
        }
        match p.get("data") {
            Some(d) => json!({"status": "Accepted", "data": d}),
            None => json!({"status": "Accepted"}),
        }
    }

    /// The transfers the link should start now.
    pub fn take_jobs(&mut self) -> Vec<Job> {
        std::mem::take(&mut self.transfers.jobs)
    }

    /// A job's outcome: the downloaded image, or why it failed.
    pub fn job_done(&mut self, job: Job, result: Result<Vec<u8>, String>, clock: Clock) {
        let failed = self.transfers.fails();
        match job {
            Job::Download { report, .. } => match result {
                Ok(image) if !failed => {
                    self.report_transfer(report, "Downloaded", false);
                    if report.signed {
                        self.report_transfer(report, "SignatureVerified", false);
                    }
                    self.report_transfer(report, "Installing", false);
                    self.transfers.installing = Some((report, version_of(&image)));
                    self.schedule_reset(clock, "Reboot");
                }
                Ok(_) => self.report_transfer(report, report.failed, false),
                Err(e) => {
                    self.stats
                        .error(format!("{}: firmware download failed: {e}", self.plan.id));
                    self.report_transfer(report, report.failed, false);
                }
            },
            Job::Upload { report, .. } => match result {
                Ok(_) if !failed => self.report_transfer(report, "Uploaded", false),
                Ok(_) => self.report_transfer(report, report.failed, false),
                Err(e) => {
                    self.stats.error(format!("{}: log upload failed: {e}", self.plan.id));
                    self.report_transfer(report, report.failed, false);
                }
            },
        }
    }

    /// After a reboot: a firmware that was installing runs now.
    pub(super) fn firmware_rebooted(&mut self) {
        if let Some((report, version)) = self.transfers.installing.take() {
            self.transfers.firmware = version;
            self.boot_reason = "FirmwareUpdate";
            // Kept across reconnects: it goes out after the next boot.
            self.report_transfer(report, "Installed", true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_image() {
        assert_eq!(version_of(b"VOLTYARD-SIM-FW 2.4.1\nbinary"), "2.4.1");
        assert_eq!(version_of(b"hello"), "sha-2cf24dba5fb0");
    }

    #[test]
    fn the_failure_share_is_roughly_kept() {
        let mut t = Transfers::new(30, 42);
        let n = (0..1000).filter(|_| t.fails()).count();
        assert!((200..400).contains(&n), "{n}");
        let mut never = Transfers::new(0, 42);
        assert!((0..100).all(|_| !never.fails()));
    }
}
