//! Reads of the certificates the built-in CA issued.

use super::tables::CERTIFICATES;
use super::{Result, Store, decode};
use crate::domain::cert::IssuedCert;
use redb::{ReadableDatabase, ReadableTable};

impl Store {
    /// Every issued certificate, oldest serial order (random), for one
    /// charger or all.
    pub fn issued_certs(&self, charger: Option<&str>) -> Result<Vec<IssuedCert>> {
        let r = self.db().begin_read()?;
        let t = match r.open_table(CERTIFICATES) {
            Ok(t) => t,
            // Nothing was ever issued.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in t.iter()? {
            let c: IssuedCert = decode("certificates", e?.1.value())?;
            if charger.is_none_or(|id| id == c.charger) {
                out.push(c);
            }
        }
        out.sort_by_key(|c| c.issued_at);
        Ok(out)
    }
}
