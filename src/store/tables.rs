//! Table definitions. Keys are chosen for the queries we run (one
//! session's samples are a range) and, for the journal, for the write path.

use redb::TableDefinition;

/// schema_version, next_session, next_seq.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const CHARGERS: TableDefinition<&str, &[u8]> = TableDefinition::new("chargers");
pub const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
pub const SITES: TableDefinition<&str, &[u8]> = TableDefinition::new("sites");
/// circuit id → Circuit (ids are unique across sites).
pub const CIRCUITS: TableDefinition<&str, &[u8]> = TableDefinition::new("circuits");
/// site → `[PriceSlot]`, sorted by start.
pub const PRICES: TableDefinition<&str, &[u8]> = TableDefinition::new("prices");
pub const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
/// ChargerTxRef::index_key → session id: makes retried starts idempotent.
pub const TX_INDEX: TableDefinition<&str, u64> = TableDefinition::new("tx_index");
/// Open sessions: session id → charger.
pub const ACTIVE: TableDefinition<u64, &str> = TableDefinition::new("active");
/// (session, seq) → the samples of one message (`[Sample]`; rows written
/// before that change hold a single `Sample`).
pub const SAMPLES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("samples");
/// seq → one journaled frame (binary row, see `journal`).
pub const FRAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("frames");
/// charger → seq of its newest frame.
pub const FRAMES_HEAD: TableDefinition<&str, u64> = TableDefinition::new("frames_head");
/// seq → Event.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// OCPI tariff id → `billing::StoredTariff` (the document as given).
pub const TARIFFS: TableDefinition<&str, &[u8]> = TableDefinition::new("tariffs");
/// assignment id → `billing::Assignment`.
pub const TARIFF_ASSIGNMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("tariff_assignments");
/// session id → `billing::Bill` of a completed session, with its signed
/// begin/end records and keys. Never pruned (see ARCHITECTURE.md, store).
pub const BILLS: TableDefinition<u64, &[u8]> = TableDefinition::new("bills");
/// charger → `[billing::MeterKey]`: the meter public keys it published or
/// the operator set.
pub const METER_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("meter_keys");
/// reservation id → `domain::ops::Reservation`.
pub const RESERVATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("reservations");
/// Reservations still pending or accepted: id → charger.
pub const OPEN_RESERVATIONS: TableDefinition<u64, &str> = TableDefinition::new("open_reservations");
/// charger → `domain::ops::LocalList` (only chargers whose list voltyard manages).
pub const LOCAL_LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("local_lists");
/// charger → `[domain::ops::RequestedAvailability]`.
pub const AVAILABILITY: TableDefinition<&str, &[u8]> = TableDefinition::new("availability");
/// charger → `store::DisplayReport`: the newest NotifyDisplayMessages answer.
pub const DISPLAY_MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("display_messages");
/// (charger, request id) → `domain::transfer::FirmwareRequest`.
pub const FIRMWARE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("firmware");
/// (charger, request id) → `domain::transfer::LogRequest`.
pub const LOG_REQUESTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log_requests");
/// sha256 of an upload token → "charger\x1frequest id" (the token itself is
/// never stored). Removed when the upload it allows is stored.
pub const UPLOAD_TOKENS: TableDefinition<&str, &str> = TableDefinition::new("upload_tokens");
/// campaign id → `domain::transfer::Campaign`.
pub const CAMPAIGNS: TableDefinition<u64, &[u8]> = TableDefinition::new("campaigns");
/// `charger␟component␟instance␟evse␟connector␟variable␟instance␟attribute`
/// → `domain::device::StoredVariable`: a charger's device model (1.6
/// configuration keys under the component "").
pub const DEVICE_MODEL: TableDefinition<&str, &[u8]> = TableDefinition::new("device_model");
/// `charger␟device` / `charger␟monitoring` → `domain::device::ReportStatus`
/// of the last report asked for.
pub const REPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("reports");
/// `charger␟monitor id` → `domain::device::Monitor`.
pub const MONITORS: TableDefinition<&str, &[u8]> = TableDefinition::new("monitors");
/// `charger␟evse␟source` → `domain::device::ExternalLimit` until cleared.
pub const CHARGING_LIMITS: TableDefinition<&str, &[u8]> = TableDefinition::new("charging_limits");
/// `charger␟evse` → `domain::device::EvInfo`: the car's needs and plan.
pub const EV_INFO: TableDefinition<&str, &[u8]> = TableDefinition::new("ev_info");
/// serial (hex) → `domain::cert::IssuedCert`: what the built-in CA issued.
pub const CERTIFICATES: TableDefinition<&str, &[u8]> = TableDefinition::new("certificates");
/// serial (normalised hex) → `domain::pnc::ContractCert`: what the local
/// Plug & Charge CA issued, with its revocation.
pub const CONTRACT_CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contract_certs");
