//! Schema versions. Version 1 is the first; each later version adds a step
//! here that rewrites what changed, inside one write transaction, so a
//! crash mid-migration leaves the old version intact.

use super::tables::*;
use super::{Result, StoreError, encode};
use crate::domain::{Access, DEFAULT_SITE, Site};
use chrono::Utc;
use redb::{Database, ReadableTable};

pub const CURRENT: u64 = 1;

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
            w.open_table(CHARGER_SAMPLES)?;
            w.open_table(JOURNAL)?;
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
        meta.insert("schema_version", CURRENT)?;
    }
    w.commit()?;
    Ok(())
}
