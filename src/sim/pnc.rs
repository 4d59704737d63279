//! ISO 15118 Plug & Charge at a simulated 2.0.1 charger: an `iso15118` car
//! without a contract certificate gets one (Get15118EVCertificate, Install,
//! in the server's documented test encoding), the charger checks its OCSP
//! status (GetCertificateStatus), then authorizes with the certificate's
//! hash data and starts the transaction with the eMAID as idToken.
//! The eMAID is `ZZVYD` + the visit's token, so a plan stays the same for
//! a seed (keys and serials are random, as a real PKI's are).

use super::charger::{Charger, Clock, Purpose};
use super::scenario::TokenKind;
use crate::domain::Protocol;
use crate::pnc::{ocsp, test_exi, verify};
use serde_json::{Value, json};

const SCHEMA: &str = "urn:iso:15118:2:2013:MsgDef";

/// The contract id of the driver whose card is `token`.
pub fn emaid(token: &str) -> String {
    let id: String = token.chars().filter(char::is_ascii_alphanumeric).take(31).collect();
    format!("ZZVYD{id}")
}

impl Charger {
    /// Plug & Charge instead of a card: true when it took over.
    pub(super) fn pnc_authorize(&mut self, i: usize, clock: Clock) -> bool {
        if self.plan.protocol != Protocol::V201 {
            return false;
        }
        let Some(p) = self.conns[i].plugged.as_mut().filter(|p| p.visit.iso15118 && !p.remote) else {
            return false;
        };
        if p.visit.token_kind != TokenKind::Contract {
            p.visit.token = emaid(&p.visit.token);
            p.visit.token_kind = TokenKind::Contract;
        }
        p.auth = super::charger::Auth::Asked;
        let id = p.visit.token.clone();
        if self.contracts.contains_key(&id) {
            self.pnc_status(i, &id, clock);
        } else {
            let csr = rcgen::KeyPair::generate()
                .and_then(|k| rcgen::CertificateParams::default().serialize_request(&k))
                .and_then(|r| r.pem());
            let Ok(csr) = csr else {
                self.authorized(i, false, clock);
                return true;
            };
            let exi = test_exi::encode(&test_exi::Request {
                format: test_exi::FORMAT.into(),
                csr,
                emaid: Some(id),
            });
            self.push(
                "Get15118EVCertificate",
                json!({"iso15118SchemaVersion": SCHEMA, "action": "Install", "exiRequest": exi}),
                Purpose::PncInstall { conn: i },
                false,
                None,
            );
        }
        true
    }

    fn pnc_status(&mut self, i: usize, emaid: &str, clock: Clock) {
        let Some(hd) = self.contract_hash(emaid) else {
            return self.authorized(i, false, clock);
        };
        self.push(
            "GetCertificateStatus",
            json!({"ocspRequestData": hd}),
            Purpose::PncStatus { conn: i },
            false,
            None,
        );
    }

    fn contract_hash(&self, emaid: &str) -> Option<crate::domain::pnc::OcspRequestData> {
        let chain = verify::pem_chain(self.contracts.get(emaid)?).ok()?;
        verify::hash_data(chain.first()?, chain.get(1)?, "")
    }

    /// The answer to Get15118EVCertificate: keep the chain, check it.
    pub(super) fn pnc_installed(&mut self, i: usize, p: &Value, clock: Clock) {
        let Some(id) = self.conns[i].plugged.as_ref().map(|p| p.visit.token.clone()) else {
            return;
        };
        let res = p
            .get("exiResponse")
            .and_then(Value::as_str)
            .filter(|_| p["status"] == "Accepted")
            .and_then(|e| test_exi::decode::<test_exi::Response>(e).ok());
        match res {
            Some(r) if r.emaid == id => {
                self.contracts.insert(id.clone(), r.contract_certificate_chain);
                self.pnc_status(i, &id, clock);
            }
            _ => self.authorized(i, false, clock),
        }
    }

    /// The answer to GetCertificateStatus: a revoked contract is refused
    /// here; otherwise the CSMS decides at Authorize.
    pub(super) fn pnc_checked(&mut self, i: usize, p: &Value, clock: Clock) {
        let Some(id) = self.conns[i].plugged.as_ref().map(|p| p.visit.token.clone()) else {
            return;
        };
        let Some(hd) = self.contract_hash(&id) else {
            return self.authorized(i, false, clock);
        };
        let issuer = self
            .contracts
            .get(&id)
            .and_then(|c| verify::pem_chain(c).ok())
            .and_then(|c| c.get(1).cloned());
        let status = p
            .get("ocspResult")
            .and_then(Value::as_str)
            .and_then(|b| data_encoding::BASE64.decode(b.as_bytes()).ok())
            .zip(issuer)
            .map(|(der, issuer)| ocsp::read(&der, &hd, &[issuer]));
        if let Some(Ok(ocsp::Status::Revoked { .. })) = status {
            // A revoked contract: the charger refuses it without asking.
            self.contracts.remove(&id);
            return self.authorized(i, false, clock);
        }
        let payload = json!({
            "idToken": {"idToken": id, "type": "eMAID"},
            "iso15118CertificateHashData": [hd],
        });
        self.push("Authorize", payload, Purpose::Authorize { conn: i }, false, None);
    }
}
