//! `serve` settings: defaults, then the `--config` TOML file, then flags.

use crate::domain::admission::AdmissionConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownChargers {
    /// Let them connect; they boot as Pending until `charger accept`.
    Pending,
    /// Register them as accepted at once: for test benches and simulations,
    /// never for a site on the internet.
    Accept,
    /// Refuse the WebSocket handshake (HTTP 404).
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub unknown_chargers: UnknownChargers,
    /// Interval given to chargers in BootNotification.
    pub heartbeat_interval_s: u32,
    /// WebSocket ping period.
    pub ping_interval_s: u64,
    /// A connection with no frame (pong included) for this long is dead.
    pub idle_timeout_s: u64,
    /// Largest OCPP message processed; larger ones get a CALLERROR.
    pub max_message_bytes: usize,
    /// The database's page cache (redb's default, 1 GiB, filled up under a
    /// sustained load and stayed resident).
    pub store_cache_mib: usize,
    /// How long a charger may take to answer one of our CALLs.
    pub call_timeout_s: u64,
    pub handshake_timeout_s: u64,
    pub backlog: i32,
    /// A charger may send this many messages a second on average; beyond
    /// it the connection reads no further frames until it is back under
    /// (the charger is slowed down, the server is not); 0 turns it off.
    pub max_messages_per_s: f64,
    /// ... with bursts of this many (a charger replaying its offline queue).
    pub message_burst: u32,
    pub admission: AdmissionConfig,
    pub dlm: DlmConfig,
    /// How often a 2.0.1 charger is sent the running cost of each of its
    /// sessions (CostUpdated); 0 turns it off. Also sent on a tariff change.
    pub cost_update_interval_s: u64,
    /// Files served to and received from chargers (firmware, logs).
    pub files: FilesConfig,
    /// vendorId → what a charger's DataTransfer from that vendor is answered.
    pub data_transfer: BTreeMap<String, VendorHook>,
    pub device_model: DeviceModelConfig,
    /// A second listener for wss:// (security profiles 2 and 3).
    pub tls_listen: Option<SocketAddr>,
    /// The server certificate chain (PEM), re-read on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM), re-read on SIGHUP.
    pub tls_key: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for charger client certificates,
    /// besides the built-in CA in `<data-dir>/ca/`.
    pub tls_client_ca: Vec<PathBuf>,
    /// Validity of certificates the built-in CA issues, in days.
    pub cert_days: u32,
    /// When set, a charger's CSR must carry this organization name.
    pub cert_organization: Option<String>,
    /// Raise an alert this many days before an issued certificate expires.
    pub cert_expiry_warn_days: u32,
    /// A TCP listener for the control API (TLS with `tls_cert`/`tls_key`, token first).
    pub control_listen: Option<SocketAddr>,
    /// The file holding the control token; default `<data-dir>/control.token`,
    /// made on first start. Refused when group or others may read it.
    pub control_token_file: Option<PathBuf>,
    /// ISO 15118 Plug & Charge: where contract certificates come from.
    pub pnc: PncConfig,
}

/// `[pnc]` (see docs/plug-and-charge.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PncConfig {
    pub source: PncSource,
    /// For `http`: where requests are POSTed (`http://host:port/path` or
    /// `https://…`).
    pub url: Option<String>,
    /// For an `https` url: CA certificates (PEM) the server's certificate
    /// must chain to.
    pub ca_file: Option<PathBuf>,
    /// For an `https` url whose server wants a client certificate: the
    /// chain and key (PEM) voltyard shows.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// For `program`: the program and its arguments (no shell).
    pub command: Vec<String>,
    /// How long `http` and `program` may take to answer.
    pub timeout_ms: u64,
    /// For `http` and `program`: MO root certificates (PEM) contract
    /// certificates must chain to and OCSP responses be signed under.
    pub mo_roots: Vec<PathBuf>,
    /// Validity of contract certificates the local source issues.
    pub contract_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PncSource {
    /// The built-in test PKI in `<data-dir>/pnc/`.
    Local,
    Http,
    Program,
}

impl Default for PncConfig {
    fn default() -> Self {
        PncConfig {
            source: PncSource::Local,
            url: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            command: Vec::new(),
            timeout_ms: 5_000,
            mo_roots: Vec::new(),
            contract_days: 730,
        }
    }
}

/// The HTTP side of the OCPP port: firmware downloads and log uploads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Base URL chargers reach this server at, e.g. `http://cpms.example:9000`.
    /// Default: `http://` and the listen address (127.0.0.1 for 0.0.0.0).
    pub public_url: Option<String>,
    /// Largest upload accepted (bytes).
    pub max_upload_bytes: u64,
    /// A campaign's charger that reports no progress for this long times out.
    pub firmware_step_timeout_s: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            public_url: None,
            max_upload_bytes: 64 << 20,
            firmware_step_timeout_s: 1800,
        }
    }
}

/// How a vendor's DataTransfer is answered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum VendorHook {
    Accept,
    Reject,
    UnknownMessageId,
    /// Run a program (no shell) with the message as JSON on stdin; its
    /// stdout (`{"status": ..., "data": ...}`) is the answer.
    Command {
        command: Vec<String>,
        #[serde(default = "hook_timeout")]
        timeout_ms: u64,
    },
}

fn hook_timeout() -> u64 {
    2_000
}

/// OCPP 2.0.1 device model (see docs/device-model.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceModelConfig {
    /// Ask a 2.0.1 charger for a FullInventory report when it boots for
    /// the first time or with another vendor, model or firmware.
    pub report_on_boot: bool,
}

impl Default for DeviceModelConfig {
    fn default() -> Self {
        DeviceModelConfig { report_on_boot: true }
    }
}

/// The live load-management loop (see docs/dlm.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DlmConfig {
    pub enabled: bool,
    /// Periodic decision even without events, in ms.
    pub tick_ms: u64,
    /// Shortest gap between two event-driven decisions, in ms.
    pub min_gap_ms: u64,
    /// Lifetime of a steering profile: a charger that loses us falls back
    /// to its safe TxDefault after this long.
    pub profile_duration_s: u32,
    /// After a restart, no limit is raised until the charger has sent a
    /// meter value or this long has passed.
    pub warmup_s: u64,
    /// The low TxDefault every charger gets at boot, so a new session starts safe (A).
    pub default_current: f64,
    /// Assumed when a charger has no `max_current` (A).
    pub charger_max_current: f64,
    /// Per-phase nominal voltage used to convert W and A.
    pub voltage: f64,
    /// How long a charger may take to follow a new limit before it counts
    /// as non-compliant (s).
    pub apply_delay_s: f64,
}

impl Default for DlmConfig {
    fn default() -> Self {
        DlmConfig {
            enabled: true,
            tick_ms: 5_000,
            min_gap_ms: 200,
            profile_duration_s: 1_800,
            warmup_s: 60,
            default_current: 6.0,
            charger_max_current: 16.0,
            voltage: 230.0,
            apply_delay_s: 30.0,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
            data_dir: PathBuf::from("voltyard-data"),
            unknown_chargers: UnknownChargers::Pending,
            heartbeat_interval_s: 300,
            ping_interval_s: 30,
            idle_timeout_s: 90,
            max_message_bytes: 64 * 1024,
            store_cache_mib: 128,
            call_timeout_s: 60,
            handshake_timeout_s: 10,
            backlog: 4096,
            max_messages_per_s: 100.0,
            message_burst: 500,
            admission: AdmissionConfig::default(),
            dlm: DlmConfig::default(),
            cost_update_interval_s: 60,
            files: FilesConfig::default(),
            data_transfer: BTreeMap::new(),
            device_model: DeviceModelConfig::default(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: Vec::new(),
            cert_days: 365,
            cert_organization: None,
            cert_expiry_warn_days: 30,
            control_listen: None,
            control_token_file: None,
            pnc: PncConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}: {err}")]
    Parse { path: PathBuf, err: toml::de::Error },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.into(), err })?;
        let cfg: ServerConfig = toml::from_str(&text).map_err(|err| ConfigError::Parse { path: path.into(), err })?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        if self.ping_interval_s == 0 {
            return bad("ping_interval_s", "must be at least 1");
        }
        if self.idle_timeout_s <= self.ping_interval_s {
            return bad(
                "idle_timeout_s",
                "must be longer than ping_interval_s, or live connections would be dropped",
            );
        }
        if self.max_message_bytes < 1024 {
            return bad("max_message_bytes", "must be at least 1024");
        }
        if !(1..=1 << 20).contains(&self.store_cache_mib) {
            return bad("store_cache_mib", "must be between 1 and 1048576");
        }
        if self.call_timeout_s == 0 {
            return bad("call_timeout_s", "must be at least 1");
        }
        if self.heartbeat_interval_s == 0 {
            return bad("heartbeat_interval_s", "must be at least 1");
        }
        if self.handshake_timeout_s == 0 {
            return bad("handshake_timeout_s", "must be at least 1");
        }
        if self.backlog < 1 {
            return bad("backlog", "must be at least 1");
        }
        if !self.max_messages_per_s.is_finite() || self.max_messages_per_s < 0.0 {
            return bad("max_messages_per_s", "must be a number >= 0 (0 turns the limit off)");
        }
        if self.max_messages_per_s > 0.0 && self.message_burst == 0 {
            return bad("message_burst", "must be at least 1");
        }
        if let Err((field, reason)) = self.admission.check() {
            return bad(field, reason);
        }
        self.check_files()?;
        if self.tls_listen.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return bad("tls_listen", "needs tls_cert and tls_key (PEM files)");
        }
        if self.control_listen.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return bad(
                "control_listen",
                "needs tls_cert and tls_key (PEM files): the TCP control listener only speaks TLS",
            );
        }
        if !(1..=3650).contains(&self.cert_days) {
            return bad("cert_days", "must be between 1 and 3650");
        }
        self.check_pnc()?;
        let d = &self.dlm;
        if d.tick_ms < 100 || d.min_gap_ms == 0 {
            return bad("dlm.tick_ms", "tick_ms must be at least 100 and min_gap_ms at least 1");
        }
        if d.profile_duration_s < 60 {
            return bad("dlm.profile_duration_s", "must be at least 60");
        }
        if !(0.0..=80.0).contains(&d.default_current) || !(6.0..=1000.0).contains(&d.charger_max_current) {
            return bad(
                "dlm.default_current",
                "default_current must be 0..80 A and charger_max_current 6..1000 A",
            );
        }
        if !(1.0..=600.0).contains(&d.apply_delay_s) {
            return bad("dlm.apply_delay_s", "must be between 1 and 600 s");
        }
        if !(100.0..=400.0).contains(&d.voltage) {
            return bad("dlm.voltage", "must be between 100 and 400 V");
        }
        Ok(())
    }

    fn check_files(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if let Some(u) = &self.files.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return bad("files.public_url", format!("{u:?} must start with http:// or https://"));
        }
        if self.files.max_upload_bytes == 0 {
            return bad("files.max_upload_bytes", "must be at least 1".into());
        }
        if self.files.firmware_step_timeout_s == 0 {
            return bad("files.firmware_step_timeout_s", "must be at least 1".into());
        }
        for (vendor, hook) in &self.data_transfer {
            if let VendorHook::Command { command, timeout_ms } = hook
                && (command.is_empty() || *timeout_ms == 0 || *timeout_ms > 30_000)
            {
                return bad(
                    "data_transfer",
                    format!("{vendor}: command must name a program and timeout_ms be 1..30000"),
                );
            }
        }
        Ok(())
    }

    fn check_pnc(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        let p = &self.pnc;
        if !(1..=60_000).contains(&p.timeout_ms) {
            return bad("pnc.timeout_ms", "must be 1..60000");
        }
        if !(1..=3650).contains(&p.contract_days) {
            return bad("pnc.contract_days", "must be between 1 and 3650");
        }
        match p.source {
            PncSource::Http
                if !p
                    .url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")) =>
            {
                bad("pnc.url", "source = \"http\" needs url = \"http(s)://host:port/path\"")
            }
            PncSource::Http if p.url.as_deref().is_some_and(|u| u.starts_with("https://")) && p.ca_file.is_none() => {
                bad(
                    "pnc.ca_file",
                    "an https url needs ca_file (PEM) to check the server against",
                )
            }
            PncSource::Http if p.client_cert.is_some() != p.client_key.is_some() => {
                bad("pnc.client_cert", "client_cert and client_key go together")
            }
            PncSource::Program if p.command.is_empty() => bad(
                "pnc.command",
                "source = \"program\" needs command = [\"/path/to/program\", …]",
            ),
            PncSource::Http | PncSource::Program if p.mo_roots.is_empty() => bad(
                "pnc.mo_roots",
                "an http or program source needs the MO root certificates (PEM files) to check contract certificates against",
            ),
            _ => Ok(()),
        }
    }

    pub fn pnc_dir(&self) -> PathBuf {
        self.data_dir.join("pnc")
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_s)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_s)
    }
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_s)
    }
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_s)
    }
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("voltyard.redb")
    }
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir.join("ca")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }
    pub fn control_token_file(&self) -> PathBuf {
        self.control_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("control.token"))
    }
}
