//! Reads of the device model, monitors, external charging limits and the
//! cars' info, each in its own read transaction.

use super::apply::{ReportKind, charger_range, evse_key, report_key};
use super::tables::*;
use super::{Result, Store, decode};
use crate::domain::device::{EvInfo, ExternalLimit, Monitor, ReportStatus, StoredVariable};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

impl Store {
    fn rows_of<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        name: &'static str,
        charger: Option<&str>,
    ) -> Result<Vec<T>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(table)?;
        match charger {
            Some(c) => {
                let (from, to) = charger_range(c);
                t.range(from.as_str()..to.as_str())?
                    .map(|e| decode(name, e?.1.value()))
                    .collect()
            }
            None => t.iter()?.map(|e| decode(name, e?.1.value())).collect(),
        }
    }

    /// A charger's stored device model, ordered by component and variable.
    pub fn variables(&self, charger: &str) -> Result<Vec<StoredVariable>> {
        self.rows_of(DEVICE_MODEL, "device_model", Some(charger))
    }

    /// The last device-model report (or monitoring report) asked of a charger.
    pub fn report_status(&self, charger: &str, kind: ReportKind) -> Result<Option<ReportStatus>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(REPORTS)?;
        t.get(report_key(charger, kind).as_str())?
            .map(|v| decode("reports", v.value()))
            .transpose()
    }

    pub fn monitors(&self, charger: &str) -> Result<Vec<Monitor>> {
        let mut m: Vec<Monitor> = self.rows_of(MONITORS, "monitors", Some(charger))?;
        m.sort_by_key(|m| m.id);
        Ok(m)
    }

    /// Every external limit in force (not cleared), of every charger.
    pub fn charging_limits(&self) -> Result<Vec<ExternalLimit>> {
        self.rows_of(CHARGING_LIMITS, "charging_limits", None)
    }

    /// The cars' info per EVSE, of every charger, keyed `(charger, evse)`.
    pub fn ev_infos(&self) -> Result<Vec<((String, u32), EvInfo)>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(EV_INFO)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            let Some((charger, evse)) = k.value().rsplit_once('\u{1f}') else {
                continue;
            };
            let Ok(evse) = evse.parse() else { continue };
            out.push(((charger.to_string(), evse), decode("ev_info", v.value())?));
        }
        Ok(out)
    }

    pub fn ev_info(&self, charger: &str, evse: u32) -> Result<Option<EvInfo>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(EV_INFO)?;
        t.get(evse_key(charger, evse).as_str())?
            .map(|v| decode("ev_info", v.value()))
            .transpose()
    }
}
