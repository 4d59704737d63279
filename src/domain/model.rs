use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// The OCPP dialect a charger speaks on its current (or last) connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "ocpp1.6")]
    V16,
    #[serde(rename = "ocpp2.0.1")]
    V201,
}

impl Protocol {
    pub fn subprotocol(self) -> &'static str {
        match self {
            Protocol::V16 => "ocpp1.6",
            Protocol::V201 => "ocpp2.0.1",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.subprotocol())
    }
}

/// Whether the operator lets a charger in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Pending,
    Accepted,
    Rejected,
}

/// Connector state, the union of 1.6 ChargePointStatus and 2.0.1
/// ConnectorStatus refined by TransactionEvent.chargingState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorStatus {
    Unknown,
    Available,
    Preparing,
    Charging,
    SuspendedEv,
    SuspendedEvse,
    Finishing,
    Occupied,
    Reserved,
    Unavailable,
    Faulted,
}

impl ConnectorStatus {
    /// True when a car may be plugged in (used to judge zombie sessions).
    pub fn vehicle_absent(self) -> bool {
        matches!(
            self,
            ConnectorStatus::Available | ConnectorStatus::Reserved | ConnectorStatus::Unavailable
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorStatus::Unknown => "unknown",
            ConnectorStatus::Available => "available",
            ConnectorStatus::Preparing => "preparing",
            ConnectorStatus::Charging => "charging",
            ConnectorStatus::SuspendedEv => "suspended_ev",
            ConnectorStatus::SuspendedEvse => "suspended_evse",
            ConnectorStatus::Finishing => "finishing",
            ConnectorStatus::Occupied => "occupied",
            ConnectorStatus::Reserved => "reserved",
            ConnectorStatus::Unavailable => "unavailable",
            ConnectorStatus::Faulted => "faulted",
        }
    }
}

/// One connector. For 1.6 `evse` is the connectorId and `connector` is 1;
/// for 2.0.1 they are the EVSE id and the connector id within it. EVSE 0
/// is the charger itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub evse: u32,
    pub connector: u32,
    pub status: ConnectorStatus,
    pub error_code: Option<String>,
    pub info: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charger {
    pub id: String,
    pub registration: Registration,
    pub protocol: Option<Protocol>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub site: String,
    pub circuit: Option<String>,
    pub max_current: Option<u32>,
    /// Set for a DC charger: load management steers it in W.
    #[serde(default)]
    pub max_power_w: Option<u32>,
    pub phases: u8,
    pub phase_rotation: String,
    /// Argon2id hash of the HTTP Basic password (security profile 1); older
    /// rows hold a salted SHA-256 that is re-hashed on the next login.
    pub password_hash: Option<String>,
    /// A new password pushed to the charger and not yet confirmed: it is
    /// valid next to the current one until the charger accepts it or logs in with it.
    #[serde(default)]
    pub password_pending: Option<String>,
    /// OCPP security profile the charger must connect with (0 = none,
    /// 1 = Basic auth, 2 = TLS + Basic auth, 3 = TLS with a client certificate).
    #[serde(default)]
    pub security_profile: u8,
    pub connectors: Vec<Connector>,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_boot: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Charger {
    pub fn new(id: &str, registration: Registration, now: DateTime<Utc>) -> Self {
        Charger {
            id: id.to_string(),
            registration,
            protocol: None,
            vendor: None,
            model: None,
            serial: None,
            firmware: None,
            site: DEFAULT_SITE.to_string(),
            circuit: None,
            max_current: None,
            max_power_w: None,
            phases: 3,
            phase_rotation: "L1L2L3".into(),
            password_hash: None,
            password_pending: None,
            security_profile: 0,
            connectors: Vec::new(),
            last_seen: None,
            last_boot: None,
            created_at: now,
        }
    }

    pub fn connector_mut(&mut self, evse: u32, connector: u32) -> &mut Connector {
        let pos = match self
            .connectors
            .iter()
            .position(|c| c.evse == evse && c.connector == connector)
        {
            Some(p) => p,
            None => {
                self.connectors.push(Connector {
                    evse,
                    connector,
                    status: ConnectorStatus::Unknown,
                    error_code: None,
                    info: None,
                    updated_at: DateTime::<Utc>::MIN_UTC,
                });
                self.connectors.sort_by_key(|c| (c.evse, c.connector));
                self.connectors
                    .iter()
                    .position(|c| c.evse == evse && c.connector == connector)
                    .unwrap_or(0)
            }
        };
        &mut self.connectors[pos]
    }
}

pub const DEFAULT_SITE: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Rfid,
    Vehicle,
    Contract,
    App,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub uid: String,
    pub kind: TokenKind,
    pub group: Option<String>,
    pub blocked: bool,
    pub expires: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Every registered, valid token may charge at any time.
    Public,
    /// Only tokens matching a rule may charge.
    Private,
}

/// One access rule of a private site: these groups (empty = any group),
/// on these weekdays (empty = every day), between `from` and `to` local
/// time (both absent = all day; `to` < `from` wraps past midnight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRule {
    pub groups: Vec<String>,
    pub days: Vec<Weekday>,
    pub from: Option<NaiveTime>,
    pub to: Option<NaiveTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub name: String,
    pub timezone: String,
    pub access: Access,
    pub rules: Vec<AccessRule>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Active,
    Completed,
}

/// Who decided that a session ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum ClosedBy {
    /// StopTransaction or TransactionEvent(Ended) from the charger.
    Charger,
    /// The server inferred the end from evidence; a later message from the
    /// charger overrides this.
    Inference { evidence: String },
}

/// How the charger names this transaction, which makes retries idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChargerTxRef {
    /// 1.6: the StartTransaction content identifies a retry.
    V16 {
        connector: u32,
        timestamp: DateTime<Utc>,
        meter_start: i64,
        id_tag: String,
    },
    /// 2.0.1: the charger's own transactionId.
    V201 { transaction_id: String },
}

impl ChargerTxRef {
    /// Key of the idempotency index, scoped to one charger.
    pub fn index_key(&self, charger: &str) -> String {
        match self {
            ChargerTxRef::V16 {
                connector,
                timestamp,
                meter_start,
                id_tag,
            } => format!(
                "{charger}\u{1f}16\u{1f}{connector}\u{1f}{}\u{1f}{meter_start}\u{1f}{id_tag}",
                timestamp.timestamp_millis()
            ),
            ChargerTxRef::V201 { transaction_id } => {
                format!("{charger}\u{1f}201\u{1f}{transaction_id}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: u64,
    pub charger: String,
    pub evse: u32,
    pub connector: u32,
    pub token: Option<String>,
    pub auth: AuthStatus,
    pub tx_ref: ChargerTxRef,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub status: SessionStatus,
    /// Energy register at start, in Wh.
    pub meter_start_wh: Option<i64>,
    /// Last energy register seen, in Wh.
    pub meter_last_wh: Option<i64>,
    pub meter_stop_wh: Option<i64>,
    pub last_sample_at: Option<DateTime<Utc>>,
    pub stop_reason: Option<String>,
    pub closed_by: Option<ClosedBy>,
    /// Set after the charger rebooted while this session was open: the
    /// session needs evidence (connector status, GetTransactionStatus).
    pub suspect_since: Option<DateTime<Utc>>,
    pub charging_state: Option<String>,
    /// Highest TransactionEvent seqNo applied (2.0.1).
    pub last_seq_no: Option<u64>,
    pub remote_start_id: Option<i64>,
    /// Set when any message of the session arrived flagged offline or late.
    pub offline: bool,
    pub samples: u64,
    /// Human-readable history of inferences and corrections.
    pub notes: Vec<String>,
    pub received_at: DateTime<Utc>,
    /// When the driver leaves and how much energy they need (from
    /// NotifyEVChargingNeeds or the operator); load management plans by them.
    #[serde(default)]
    pub departure: Option<DateTime<Utc>>,
    #[serde(default)]
    pub energy_target_wh: Option<i64>,
    /// Load-management priority class; higher goes first.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Charging-state changes while the session ran (2.0.1 chargingState,
    /// 1.6 connector status), oldest first: pricing tells TIME from
    /// PARKING_TIME by them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<StateChange>,
}

/// The charging state from `t` on, as the charger named it (`Charging`,
/// `SuspendedEV`, `EVConnected`… in 2.0.1; `charging`, `suspended_ev`… from
/// a 1.6 StatusNotification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub t: DateTime<Utc>,
    pub state: String,
}

impl Session {
    /// Notes a state change; a repeat of the current state adds nothing. A
    /// change that arrives late (offline replay) is put in time order.
    pub fn note_state(&mut self, t: DateTime<Utc>, state: &str) {
        let pos = self.states.partition_point(|c| c.t <= t);
        if pos > 0 && self.states[pos - 1].state == state {
            return;
        }
        self.states.insert(
            pos,
            StateChange {
                t,
                state: state.to_string(),
            },
        );
    }
}

impl Session {
    pub fn energy_wh(&self) -> i64 {
        let end = self.meter_stop_wh.or(self.meter_last_wh);
        match (self.meter_start_wh, end) {
            (Some(a), Some(b)) if b >= a => b - a,
            _ => 0,
        }
    }
}

/// Result of authorizing a token, the union of 1.6 AuthorizationStatus and
/// 2.0.1 AuthorizationStatusEnumType (see `ocpp::v16`/`v201` for mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStatus {
    Accepted,
    Blocked,
    Expired,
    /// Not known to this server.
    Unknown,
    ConcurrentTx,
    /// Known, but the site's policy never admits its group.
    NotAtThisLocation,
    /// Known, admitted by the site at other times.
    NotAtThisTime,
}

/// A normalised meter sample. `value_milli` is in thousandths of the base
/// unit (mWh, mW, mA, mV, mvar, thousandths of a percent), so energy stays an
/// integer. The sampled value as sent is in the journal, not repeated here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t: DateTime<Utc>,
    pub measurand: Label,
    pub phase: Option<Label>,
    pub context: Label,
    pub location: Label,
    pub unit: Label,
    pub value_milli: i64,
    pub signed: Option<SignedMeter>,
}

/// One of the words OCPP spells a sampled value with: the known ones are
/// borrowed from the program, anything else a charger invents is owned.
pub type Label = std::borrow::Cow<'static, str>;

/// Signed meter data as the charger sent it (OCMF or another format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedMeter {
    pub data: String,
    pub signing_method: Option<String>,
    pub encoding_method: Option<String>,
    pub public_key: Option<String>,
}

/// A notable thing the operator should be able to find later: orphan
/// stops, inferred closures, corrections, rejected connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub t: DateTime<Utc>,
    pub charger: Option<String>,
    pub kind: String,
    pub detail: String,
    /// For `device_event`: what it is about, its severity, cleared or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<super::device::DeviceNote>,
}

/// One raw OCPP frame in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub t: DateTime<Utc>,
    pub charger: String,
    pub dir: Direction,
    pub frame: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}
