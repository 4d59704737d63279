//! The documented stand-in for ISO 15118-2 EXI that the local source
//! understands (decision 67): `exiRequest` is base64 of a JSON object
//! `{"format": "voltyard-test-exi/1", "csr": PEM, "emaid": optional}` and
//! `exiResponse` base64 of `{"format": …, "emaid": …,
//! "contractCertificateChain": PEM}`. The EV makes its own key and sends
//! a CSR, so no private key travels (real ISO 15118-2 has the secondary
//! actor make the key and encrypt it to the EV's provisioning certificate).
//! The simulator speaks it; a real EV speaks EXI and needs the http or
//! program source.

use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "voltyard-test-exi/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub format: String,
    /// PKCS#10, PEM: the EV's contract key.
    pub csr: String,
    /// The contract id the EV asks for; the source picks one without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emaid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub format: String,
    pub emaid: String,
    /// Contract certificate, then the MO sub-CA, PEM.
    pub contract_certificate_chain: String,
}

/// Why an exiRequest is not in the test encoding.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TestExiError {
    #[error("exiRequest is not base64")]
    Base64,
    #[error("exiRequest is not in the {FORMAT} test encoding (real ISO 15118-2 EXI needs the http or program source)")]
    NotTestEncoding,
}

pub fn encode<T: Serialize>(v: &T) -> String {
    data_encoding::BASE64.encode(serde_json::to_string(v).unwrap_or_default().as_bytes())
}

pub fn decode<T: for<'de> Deserialize<'de>>(b64: &str) -> Result<T, TestExiError> {
    let bytes = data_encoding::BASE64
        .decode(b64.trim().as_bytes())
        .map_err(|_| TestExiError::Base64)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| TestExiError::NotTestEncoding)?;
    if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(TestExiError::NotTestEncoding);
    }
    serde_json::from_value(v).map_err(|_| TestExiError::NotTestEncoding)
}
