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
/// serial (hex) → `domain::cert::IssuedCert`: what the built-in CA issued.
pub const CERTIFICATES: TableDefinition<&str, &[u8]> = TableDefinition::new("certificates");
