//! Reads of the contract certificates the local Plug & Charge CA issued.

use super::tables::CONTRACT_CERTS;
use super::{Result, Store, decode};
use crate::domain::pnc::{ContractCert, norm_serial};
use redb::{ReadableDatabase, ReadableTable};

impl Store {
    pub fn contract_cert(&self, serial: &str) -> Result<Option<ContractCert>> {
        let r = self.db().begin_read()?;
        let t = match r.open_table(CONTRACT_CERTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        t.get(norm_serial(serial).as_str())?
            .map(|v| decode("contract_certs", v.value()))
            .transpose()
    }

    /// Every contract certificate issued, oldest first.
    pub fn contract_certs(&self) -> Result<Vec<ContractCert>> {
        let r = self.db().begin_read()?;
        let t = match r.open_table(CONTRACT_CERTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(decode::<ContractCert>("contract_certs", e?.1.value())?);
        }
        out.sort_by_key(|c| c.issued_at);
        Ok(out)
    }
}
