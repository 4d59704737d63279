//! Schema versions. Version 1 is the first; each later version adds a step
//! here that rewrites what changed, inside one write transaction, so a
//! crash mid-migration leaves the old version intact.

use super::tables::*;
use super::{Result, StoreError, decode, encode, journal};
use crate::domain::{Access, DEFAULT_SITE, JournalEntry, Site};
use chrono::Utc;
use redb::{Database, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

pub const CURRENT: u64 = 2;

/// Version 1's journal: (charger, seq) → JSON `JournalEntry`.
const JOURNAL_V1: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("journal");
/// Version 1's values outside transactions, never read; the journal holds them.
const CHARGER_SAMPLES_V1: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("charger_samples");

pub fn run(db: &Database) -> Result<()> {
    let w = db.begin_write()?;
    {
        let mut meta = w.open_table(META)?;
        let found = meta.get("schema_version")?.map(|v| v.value()).unwrap_or(0);
        if found > CURRENT {
            return Err(StoreError::TooNew {
                found,
                supported: CURRENT,
            });
        }
        if found == 0 {
            // A new database: create every table and the default site.
            w.open_table(CHARGERS)?;
            w.open_table(TOKENS)?;
            w.open_table(SESSIONS)?;
            w.open_table(TX_INDEX)?;
            w.open_table(ACTIVE)?;
            w.open_table(SAMPLES)?;
            w.open_table(EVENTS)?;
            let mut sites = w.open_table(SITES)?;
            let site = Site {
                name: DEFAULT_SITE.into(),
                timezone: "UTC".into(),
                access: Access::Public,
                rules: vec![],
                created_at: Utc::now(),
            };
            sites.insert(DEFAULT_SITE, encode(&site).as_slice())?;
            meta.insert("next_session", 1)?;
            meta.insert("next_seq", 1)?;
        }
        // Tables added after version 1 need no rewrite, only to exist.
        w.open_table(CIRCUITS)?;
        w.open_table(PRICES)?;
        w.open_table(FRAMES)?;
        w.open_table(FRAMES_HEAD)?;
        w.open_table(TARIFFS)?;
        w.open_table(TARIFF_ASSIGNMENTS)?;
        w.open_table(BILLS)?;
        w.open_table(METER_KEYS)?;
        w.open_table(RESERVATIONS)?;
        w.open_table(OPEN_RESERVATIONS)?;
        w.open_table(LOCAL_LISTS)?;
        w.open_table(AVAILABILITY)?;
        w.open_table(DISPLAY_MESSAGES)?;
        w.open_table(FIRMWARE)?;
        w.open_table(LOG_REQUESTS)?;
        w.open_table(UPLOAD_TOKENS)?;
        w.open_table(CAMPAIGNS)?;
        w.open_table(DEVICE_MODEL)?;
        w.open_table(REPORTS)?;
        w.open_table(MONITORS)?;
        w.open_table(CHARGING_LIMITS)?;
        w.open_table(EV_INFO)?;
        if found == 1 {
            journal_to_frames(&w)?;
        }
        meta.insert("schema_version", CURRENT)?;
    }
    w.commit()?;
    Ok(())
}

/// 1 → 2: the journal moves to append-ordered binary rows linked per
/// charger. Rows keep their sequence numbers, so `--follow` positions and
/// event order are unchanged.
fn journal_to_frames(w: &WriteTransaction) -> Result<()> {
    let old = w.open_table(JOURNAL_V1)?;
    let mut frames = w.open_table(FRAMES)?;
    let mut heads = w.open_table(FRAMES_HEAD)?;
    // (charger, seq) order: each charger's rows arrive oldest first, so the
    // head after the last one links the whole chain.
    for row in old.iter()? {
        let (_, v) = row?;
        let entry: JournalEntry = decode("journal", v.value())?;
        let prev = heads.get(entry.charger.as_str())?.map(|v| v.value()).unwrap_or(0);
        journal::append(&mut frames, prev, &entry)?;
        heads.insert(entry.charger.as_str(), entry.seq)?;
    }
    drop(old);
    let migrated = w.delete_table(JOURNAL_V1)?;
    let dropped = w.delete_table(CHARGER_SAMPLES_V1)?;
    tracing::info!(
        migrated,
        dropped,
        "schema 2: journal moved to {}, values outside transactions kept only in the journal",
        FRAMES.name()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Direction;
    use crate::store::Store;

    #[test]
    fn a_version_1_journal_is_moved_to_linked_frames_and_old_tables_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.redb");
        let t0: chrono::DateTime<Utc> = "2026-11-20T08:00:00Z".parse().unwrap();
        {
            let db = Database::create(&path).unwrap();
            let w = db.begin_write().unwrap();
            {
                let mut meta = w.open_table(META).unwrap();
                meta.insert("schema_version", 1).unwrap();
                meta.insert("next_seq", 10).unwrap();
                meta.insert("next_session", 1).unwrap();
                let mut j = w.open_table(JOURNAL_V1).unwrap();
                for (charger, seq, dir) in [
                    ("A", 1, Direction::In),
                    ("B", 2, Direction::In),
                    ("A", 3, Direction::Out),
                ] {
                    let e = JournalEntry {
                        seq,
                        t: t0 + chrono::Duration::seconds(seq as i64),
                        charger: charger.into(),
                        dir,
                        frame: format!("[3,\"{seq}\",{{}}]"),
                    };
                    j.insert((charger, seq), encode(&e).as_slice()).unwrap();
                }
                w.open_table(CHARGER_SAMPLES_V1)
                    .unwrap()
                    .insert(("A", 4), &b"[]"[..])
                    .unwrap();
            }
            w.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let a = store.journal("A", None, 10).unwrap();
        assert_eq!(
            a.iter().map(|e| (e.seq, e.dir)).collect::<Vec<_>>(),
            [(1, Direction::In), (3, Direction::Out)]
        );
        assert_eq!(a[1].frame, "[3,\"3\",{}]");
        assert_eq!(store.journal("B", None, 10).unwrap().len(), 1);
        assert_eq!(
            store
                .journal("A", Some(t0 + chrono::Duration::seconds(2)), 10)
                .unwrap()
                .len(),
            1
        );
        let r = redb::ReadableDatabase::begin_read(store.db()).unwrap();
        let names: Vec<String> = r.list_tables().unwrap().map(|t| t.name().to_string()).collect();
        assert!(
            !names.iter().any(|n| n == "journal" || n == "charger_samples"),
            "{names:?}"
        );
        assert_eq!(
            r.open_table(META)
                .unwrap()
                .get("schema_version")
                .unwrap()
                .unwrap()
                .value(),
            CURRENT
        );
    }
}
