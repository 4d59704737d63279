//! `serve` settings: defaults, then the `--config` TOML file, then flags.

use serde::Deserialize;
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
    /// How long a charger may take to answer one of our CALLs.
    pub call_timeout_s: u64,
    pub handshake_timeout_s: u64,
    pub backlog: i32,
    pub dlm: DlmConfig,
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
            call_timeout_s: 60,
            handshake_timeout_s: 10,
            backlog: 4096,
            dlm: DlmConfig::default(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: Vec::new(),
            cert_days: 365,
            cert_organization: None,
            cert_expiry_warn_days: 30,
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
        if self.tls_listen.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return bad("tls_listen", "needs tls_cert and tls_key (PEM files)");
        }
        if !(1..=3650).contains(&self.cert_days) {
            return bad("cert_days", "must be between 1 and 3650");
        }
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
}
