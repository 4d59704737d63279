//! The only module that touches redb. One writer thread applies every change
//! with group commit (`writer`); reads run on any thread in their own read
//! transaction. Records are JSON so that a new optional field needs no
//! migration; structural changes go through `migrate`.

mod apply;
mod certs;
mod device;
mod journal;
mod migrate;
mod ops;
mod pnc;
mod tables;
mod writer;

mod transfers;
pub use apply::{
    AdminOp, AdminResult, DeviceOp, InboundOutcome, LoadOp, OpsOp, PncOp, ReportKind, SecurityOp, TariffAssign,
    TransferOp,
};
pub use writer::{Answer, Applied, Store};

use crate::billing::{Assignment, Bill, MeterKey, StoredTariff};
use crate::domain::circuit::{Circuit, PriceSlot};
use crate::domain::{Charger, Event, JournalEntry, Sample, Session, SessionStatus, Site, Token};
use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use tables::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt record in {table}: {err}")]
    Corrupt {
        table: &'static str,
        err: serde_json::Error,
    },
    #[error("corrupt row {key} in {table}: {why}")]
    CorruptRow { table: &'static str, key: u64, why: String },
    #[error(
        "database schema version {found} is newer than this binary understands ({supported}); use a newer voltyard"
    )]
    TooNew { found: u64, supported: u64 },
    #[error("the store has shut down")]
    Closed,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(impl From<$t> for StoreError { fn from(e: $t) -> Self { StoreError::Db(e.into()) } })*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt { table, err })
}

/// A samples row: one message's samples; the first databases held one
/// sample per row.
fn decode_samples(bytes: &[u8], out: &mut Vec<Sample>) -> Result<()> {
    if bytes.first() == Some(&b'[') {
        out.extend(decode::<Vec<Sample>>("samples", bytes)?);
    } else {
        out.push(decode("samples", bytes)?);
    }
    Ok(())
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Our record types serialise infallibly (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_default()
}

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub charger: Option<String>,
    pub status: Option<SessionStatus>,
    pub limit: Option<usize>,
}

impl Store {
    pub fn charger(&self, id: &str) -> Result<Option<Charger>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(CHARGERS)?;
        t.get(id)?.map(|v| decode("chargers", v.value())).transpose()
    }

    pub fn chargers(&self) -> Result<Vec<Charger>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(CHARGERS)?;
        t.iter()?.map(|e| decode("chargers", e?.1.value())).collect()
    }

    /// Chargers placed in a circuit: all that load management needs, without
    /// holding a copy of every unmanaged charger.
    pub fn circuit_chargers(&self) -> Result<Vec<Charger>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(CHARGERS)?;
        // Load management rereads this every few seconds; most chargers of
        // a big fleet may be in no circuit, so a row is read whole only
        // when its `circuit` is set.
        #[derive(serde::Deserialize)]
        struct InCircuit {
            circuit: Option<String>,
        }
        let mut out = Vec::new();
        for e in t.iter()? {
            let row = e?.1;
            let probe: InCircuit = decode("chargers", row.value())?;
            if probe.circuit.is_some() {
                out.push(decode("chargers", row.value())?);
            }
        }
        Ok(out)
    }

    pub fn tokens(&self) -> Result<Vec<Token>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(TOKENS)?;
        t.iter()?.map(|e| decode("tokens", e?.1.value())).collect()
    }

    pub fn sites(&self) -> Result<Vec<Site>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(SITES)?;
        t.iter()?.map(|e| decode("sites", e?.1.value())).collect()
    }

    pub fn circuits(&self) -> Result<Vec<Circuit>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(CIRCUITS)?;
        t.iter()?.map(|e| decode("circuits", e?.1.value())).collect()
    }

    pub fn prices(&self, site: &str) -> Result<Vec<PriceSlot>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(PRICES)?;
        Ok(t.get(site)?
            .map(|v| decode("prices", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Sessions still open, from the index of open sessions.
    pub fn active_sessions(&self) -> Result<Vec<Session>> {
        let r = self.db().begin_read()?;
        let active = r.open_table(ACTIVE)?;
        let sessions = r.open_table(SESSIONS)?;
        let mut out = Vec::new();
        for e in active.iter()? {
            if let Some(v) = sessions.get(e?.0.value())? {
                out.push(decode("sessions", v.value())?);
            }
        }
        Ok(out)
    }

    pub fn session(&self, id: u64) -> Result<Option<Session>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(SESSIONS)?;
        t.get(id)?.map(|v| decode("sessions", v.value())).transpose()
    }

    /// Newest first.
    pub fn sessions(&self, f: &SessionFilter) -> Result<Vec<Session>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(SESSIONS)?;
        let mut out = Vec::new();
        for e in t.iter()?.rev() {
            let s: Session = decode("sessions", e?.1.value())?;
            if f.charger.as_ref().is_some_and(|c| *c != s.charger) || f.status.is_some_and(|st| st != s.status) {
                continue;
            }
            out.push(s);
            if f.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    pub fn samples(&self, session: u64) -> Result<Vec<Sample>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(SAMPLES)?;
        let mut out = Vec::new();
        for e in t.range((session, 0)..=(session, u64::MAX))? {
            decode_samples(e?.1.value(), &mut out)?;
        }
        Ok(out)
    }

    /// Every stored tariff, by id.
    pub fn tariffs(&self) -> Result<Vec<StoredTariff>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(TARIFFS)?;
        t.iter()?.map(|e| decode("tariffs", e?.1.value())).collect()
    }

    pub fn tariff(&self, id: &str) -> Result<Option<StoredTariff>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(TARIFFS)?;
        t.get(id)?.map(|v| decode("tariffs", v.value())).transpose()
    }

    /// Every tariff assignment, oldest first.
    pub fn assignments(&self) -> Result<Vec<Assignment>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(TARIFF_ASSIGNMENTS)?;
        t.iter()?.map(|e| decode("tariff_assignments", e?.1.value())).collect()
    }

    /// The bill of a completed session.
    pub fn bill(&self, session: u64) -> Result<Option<Bill>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(BILLS)?;
        t.get(session)?.map(|v| decode("bills", v.value())).transpose()
    }

    /// [`Store::sessions`] with each session's bill, in one read transaction.
    pub fn sessions_with_bills(&self, f: &SessionFilter) -> Result<Vec<(Session, Option<Bill>)>> {
        let r = self.db().begin_read()?;
        let bills = r.open_table(BILLS)?;
        let mut out = Vec::new();
        for s in self.sessions(f)? {
            let b = bills.get(s.id)?.map(|v| decode("bills", v.value())).transpose()?;
            out.push((s, b));
        }
        Ok(out)
    }

    /// The meter public keys known for a charger.
    pub fn meter_keys(&self, charger: &str) -> Result<Vec<MeterKey>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(METER_KEYS)?;
        Ok(t.get(charger)?
            .map(|v| decode("meter_keys", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn token(&self, uid: &str) -> Result<Option<Token>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(TOKENS)?;
        t.get(uid)?.map(|v| decode("tokens", v.value())).transpose()
    }

    /// The newest `limit` frames of a charger at or after `since`, oldest first.
    pub fn journal(&self, charger: &str, since: Option<DateTime<Utc>>, limit: usize) -> Result<Vec<JournalEntry>> {
        let r = self.db().begin_read()?;
        journal::read(
            &r.open_table(FRAMES)?,
            &r.open_table(FRAMES_HEAD)?,
            charger,
            since,
            limit,
        )
    }

    pub fn events(&self, limit: usize) -> Result<Vec<Event>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(EVENTS)?;
        let mut out: Vec<Event> = t
            .iter()?
            .rev()
            .take(limit)
            .map(|e| decode("events", e?.1.value()))
            .collect::<Result<_>>()?;
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::SAMPLES;

    fn sample(milli: i64) -> Sample {
        Sample {
            t: "2026-11-23T10:00:00Z".parse().unwrap(),
            measurand: "Energy.Active.Import.Register".into(),
            phase: None,
            context: "Sample.Periodic".into(),
            location: "Outlet".into(),
            unit: "Wh".into(),
            value_milli: milli,
            signed: None,
        }
    }

    #[test]
    fn samples_read_back_from_old_single_rows_and_new_message_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.redb")).unwrap();
        let w = store.db().begin_write().unwrap();
        {
            let mut t = w.open_table(SAMPLES).unwrap();
            t.insert((7, 1), encode(&sample(1)).as_slice()).unwrap();
            t.insert((7, 2), encode(&[sample(2), sample(3)].as_slice()).as_slice())
                .unwrap();
            t.insert((8, 3), encode(&[sample(9)].as_slice()).as_slice()).unwrap();
        }
        w.commit().unwrap();
        let got: Vec<i64> = store.samples(7).unwrap().iter().map(|s| s.value_milli).collect();
        assert_eq!(got, [1, 2, 3]);
    }

    #[test]
    fn only_chargers_in_a_circuit_are_read_for_load_management() {
        use crate::domain::{Charger, Registration};
        use crate::store::tables::CHARGERS;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.redb")).unwrap();
        let now = "2026-11-24T10:00:00Z".parse().unwrap();
        let w = store.db().begin_write().unwrap();
        {
            let mut t = w.open_table(CHARGERS).unwrap();
            for (id, circuit) in [
                ("A", None),
                ("B", Some("board \"east\"")),
                ("C", Some("main")),
                ("D", None),
            ] {
                let mut c = Charger::new(id, Registration::Accepted, now);
                c.circuit = circuit.map(str::to_string);
                t.insert(id, encode(&c).as_slice()).unwrap();
            }
        }
        w.commit().unwrap();
        let got: Vec<(String, Option<String>)> = store
            .circuit_chargers()
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.circuit))
            .collect();
        assert_eq!(
            got,
            [
                ("B".into(), Some("board \"east\"".into())),
                ("C".into(), Some("main".into()))
            ]
        );
    }
}
