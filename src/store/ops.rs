//! Reads of charger operations: reservations, local lists, requested
//! availability, display message reports.

use super::tables::*;
use super::{Result, Store, decode};
use crate::domain::ops::{DisplayReport, LocalList, RequestedAvailability, Reservation};
use redb::{ReadableDatabase, ReadableTable};

impl Store {
    /// Newest first, of one charger when given; at most `limit`.
    pub fn reservations(&self, charger: Option<&str>, limit: usize) -> Result<Vec<Reservation>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(RESERVATIONS)?;
        let mut out = Vec::new();
        for e in t.iter()?.rev() {
            let res: Reservation = decode("reservations", e?.1.value())?;
            if charger.is_some_and(|c| c != res.charger) {
                continue;
            }
            out.push(res);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn reservation(&self, id: u64) -> Result<Option<Reservation>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(RESERVATIONS)?;
        t.get(id)?.map(|v| decode("reservations", v.value())).transpose()
    }

    /// Whether a pending or accepted reservation is past its expiry (the sweep's check).
    pub fn open_reservation_due(&self, now: chrono::DateTime<chrono::Utc>) -> Result<bool> {
        let r = self.db().begin_read()?;
        let open = r.open_table(OPEN_RESERVATIONS)?;
        let all = r.open_table(RESERVATIONS)?;
        for e in open.iter()? {
            if let Some(v) = all.get(e?.0.value())? {
                let res: Reservation = decode("reservations", v.value())?;
                if res.expires <= now {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    pub fn local_list(&self, charger: &str) -> Result<Option<LocalList>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(LOCAL_LISTS)?;
        t.get(charger)?.map(|v| decode("local_lists", v.value())).transpose()
    }

    /// Every charger whose local list voltyard manages.
    pub fn local_lists(&self) -> Result<Vec<LocalList>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(LOCAL_LISTS)?;
        t.iter()?.map(|e| decode("local_lists", e?.1.value())).collect()
    }

    pub fn availability(&self, charger: &str) -> Result<Vec<RequestedAvailability>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(AVAILABILITY)?;
        Ok(t.get(charger)?
            .map(|v| decode("availability", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn display_report(&self, charger: &str) -> Result<Option<DisplayReport>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(DISPLAY_MESSAGES)?;
        t.get(charger)?
            .map(|v| decode("display_messages", v.value()))
            .transpose()
    }
}
