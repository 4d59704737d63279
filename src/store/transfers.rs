//! Reads of firmware requests, campaigns, log requests and upload tokens.

use super::tables::{CAMPAIGNS, EVENTS, FIRMWARE, LOG_REQUESTS, UPLOAD_TOKENS};
use super::{Result, Store, decode};
use crate::domain::Event;
use crate::domain::transfer::{Campaign, FirmwareRequest, LogRequest};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;

type Keyed = TableDefinition<'static, (&'static str, u64), &'static [u8]>;

impl Store {
    fn keyed_rows<T: DeserializeOwned>(&self, table: Keyed, name: &'static str, charger: &str) -> Result<Vec<T>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(table)?;
        t.range((charger, 0)..=(charger, u64::MAX))?
            .map(|e| decode(name, e?.1.value()))
            .collect()
    }

    /// A charger's firmware requests, oldest first.
    pub fn firmware_requests(&self, charger: &str) -> Result<Vec<FirmwareRequest>> {
        self.keyed_rows(FIRMWARE, "firmware", charger)
    }

    /// A charger's log and diagnostics requests, oldest first.
    pub fn log_requests(&self, charger: &str) -> Result<Vec<LogRequest>> {
        self.keyed_rows(LOG_REQUESTS, "log_requests", charger)
    }

    pub fn campaigns(&self) -> Result<Vec<Campaign>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(CAMPAIGNS)?;
        t.iter()?.map(|e| decode("campaigns", e?.1.value())).collect()
    }

    pub fn campaign(&self, id: u64) -> Result<Option<Campaign>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(CAMPAIGNS)?;
        let row = t.get(id)?;
        row.map(|v| decode("campaigns", v.value())).transpose()
    }

    /// The charger and log request an unspent upload token (by its hash) is for.
    pub fn upload_token(&self, token_hash: &str) -> Result<Option<(String, u64)>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(UPLOAD_TOKENS)?;
        let row = t.get(token_hash)?;
        Ok(row.and_then(|v| {
            let (charger, id) = v.value().split_once('\u{1f}')?;
            Some((charger.to_string(), id.parse().ok()?))
        }))
    }

    /// The newest `limit` DataTransfers of a charger, oldest first.
    pub fn data_transfers(&self, charger: &str, limit: usize) -> Result<Vec<Event>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(EVENTS)?;
        let mut out = Vec::new();
        for e in t.iter()?.rev() {
            let e: Event = decode("events", e?.1.value())?;
            if e.kind == "DataTransfer" && e.charger.as_deref() == Some(charger) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    }
}
