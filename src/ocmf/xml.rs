//! The S.A.F.E. Transparenzsoftware's XML container:
//!
//! ```xml
//! <values>
//!   <value transactionId="1" context="Transaction.Begin">
//!     <signedData format="OCMF" encoding="plain">OCMF|{…}|{…}</signedData>
//!     <publicKey encoding="plain">3059301306…</publicKey>
//!   </value>
//!   <value transactionId="1" context="Transaction.End">…</value>
//! </values>
//! ```
//!
//! [`write_xml`] writes exactly one Begin and one End value per transaction with an SPKI hex key
//! (the Transparenzsoftware reads nothing else). [`read_xml`] reads such files in the shapes found
//! in the wild: keys with or without `encoding`, hex with spaces or base64, `context`/
//! `transactionId` on `<values>`, the `transactionld` typo, whitespace around the data, and
//! `<signedData>` elements without any `<value>` around them.

use super::key::{KeyError, PublicKey};
use super::record::Record;
use super::verify::{self, Quirk, VerifyError};
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};
use serde::Serialize;

/// One `<value>` (or a lone `<signedData>`) of a Transparenzsoftware file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct XmlValue {
    pub transaction_id: Option<String>,
    pub context: Option<String>,
    /// `signedData`'s `format` (`OCMF`, `ISA-EDL-40P`, …).
    pub format: Option<String>,
    /// `signedData`'s `encoding` (`plain`, `base64`, `hex`).
    pub encoding: Option<String>,
    /// The signed data's text, trimmed and decoded per `encoding`; `None` when undecodable.
    pub signed_data: Option<String>,
    /// The element holding the data (`signedData` or `encodedData`).
    pub element: String,
    pub public_key: Option<String>,
    pub public_key_encoding: Option<String>,
}

impl XmlValue {
    pub fn is_begin(&self) -> bool {
        self.context.as_deref() == Some("Transaction.Begin")
    }

    pub fn is_end(&self) -> bool {
        self.context.as_deref() == Some("Transaction.End")
    }

    /// The value's public key, decoded with the help of its `encoding` attribute.
    pub fn key(&self) -> Option<Result<PublicKey, KeyError>> {
        let text = self.public_key.as_deref()?;
        Some(
            match self
                .public_key_encoding
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("base64") => {
                    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                    match super::key::decode_base64(&compact) {
                        Some(bytes) => PublicKey::from_bytes(&bytes).or_else(|_| PublicKey::parse(text)),
                        None => PublicKey::parse(text),
                    }
                }
                _ => PublicKey::parse(text),
            },
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("not readable XML: {0}")]
    Syntax(String),
    #[error("no <signedData> in the file")]
    NoValues,
    #[error("transaction {0}: {1}")]
    Record(u64, String),
    #[error("transaction {id}: the {side} public key: {error}")]
    Key {
        id: u64,
        side: &'static str,
        error: KeyError,
    },
}

fn attrs(e: &BytesStart<'_>) -> Vec<(String, String)> {
    e.attributes()
        .flatten()
        .map(|a| {
            let k = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
            let v = a
                .unescape_value()
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned());
            (k, v)
        })
        .collect()
}

fn attr<'a>(list: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    list.iter()
        .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

const TX_ID: &[&str] = &["transactionId", "transactionld"];

#[derive(PartialEq)]
enum Capture {
    None,
    Data,
    Key,
}

/// Read a Transparenzsoftware file. Values come in document order.
pub fn read_xml(text: &str) -> Result<Vec<XmlValue>, XmlError> {
    let mut reader = Reader::from_str(text.trim_start_matches('\u{feff}'));
    reader.config_mut().trim_text(false);
    let mut defaults: Vec<(String, String)> = Vec::new();
    let mut current: Option<XmlValue> = None;
    let mut in_value = false;
    let mut capture = Capture::None;
    let mut buf = String::new();
    let mut out = Vec::new();
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| XmlError::Syntax(format!("at byte {}: {e}", reader.error_position())))?;
        match ev {
            Event::Start(e) if capture == Capture::None => {
                start_element(
                    &e,
                    false,
                    &mut defaults,
                    &mut current,
                    &mut in_value,
                    &mut capture,
                    &mut out,
                );
                buf.clear();
            }
            Event::Empty(e) if capture == Capture::None => {
                start_element(
                    &e,
                    true,
                    &mut defaults,
                    &mut current,
                    &mut in_value,
                    &mut capture,
                    &mut out,
                );
            }
            Event::Text(t) if capture != Capture::None => buf.push_str(&text_of(&t)?),
            Event::CData(t) if capture != Capture::None => buf.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) if capture != Capture::None => {
                let name = String::from_utf8_lossy(&r).into_owned();
                let ch = match name.as_str() {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => r
                        .resolve_char_ref()
                        .map_err(|e| XmlError::Syntax(e.to_string()))?
                        .ok_or_else(|| XmlError::Syntax(format!("unknown entity &{name};")))?,
                };
                buf.push(ch);
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match (name.as_str(), &capture) {
                    ("signedData" | "encodedData", Capture::Data) => {
                        capture = Capture::None;
                        if let Some(v) = current.as_mut() {
                            v.signed_data = decode_data(buf.trim(), v.encoding.as_deref());
                        }
                        if !in_value && let Some(v) = current.take() {
                            out.push(v);
                        }
                    }
                    ("publicKey", Capture::Key) => {
                        capture = Capture::None;
                        let key = buf.trim();
                        if let Some(v) = current.as_mut() {
                            v.public_key = (!key.is_empty()).then(|| key.to_owned());
                        }
                    }
                    ("value", Capture::None) => {
                        in_value = false;
                        if let Some(v) = current.take()
                            && !v.element.is_empty()
                        {
                            out.push(v);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if capture != Capture::None {
        return Err(XmlError::Syntax("the file ends inside an element".into()));
    }
    if out.is_empty() {
        return Err(XmlError::NoValues);
    }
    Ok(out)
}

/// An opening (or empty) element outside captured text.
fn start_element(
    e: &BytesStart<'_>,
    empty: bool,
    defaults: &mut Vec<(String, String)>,
    current: &mut Option<XmlValue>,
    in_value: &mut bool,
    capture: &mut Capture,
    out: &mut Vec<XmlValue>,
) {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let a = attrs(e);
    match name.as_str() {
        "values" => *defaults = a,
        "value" => {
            *in_value = !empty;
            *current = (!empty).then(|| XmlValue {
                transaction_id: attr(&a, TX_ID).or(attr(defaults, TX_ID)).map(str::to_owned),
                context: attr(&a, &["context"])
                    .or(attr(defaults, &["context"]))
                    .map(str::to_owned),
                ..XmlValue::default()
            });
        }
        "signedData" | "encodedData" => {
            let v = current.get_or_insert_with(|| XmlValue {
                transaction_id: attr(&a, TX_ID).or(attr(defaults, TX_ID)).map(str::to_owned),
                context: attr(defaults, &["context"]).map(str::to_owned),
                ..XmlValue::default()
            });
            v.element = name;
            v.format = attr(&a, &["format"]).map(str::to_owned);
            v.encoding = attr(&a, &["encoding"]).map(str::to_owned);
            if !empty {
                *capture = Capture::Data;
            } else if !*in_value && let Some(v) = current.take() {
                out.push(v);
            }
        }
        "publicKey" => {
            let v = current.get_or_insert_with(XmlValue::default);
            v.public_key_encoding = attr(&a, &["encoding"]).map(str::to_owned);
            if !empty {
                *capture = Capture::Key;
            }
        }
        _ => {}
    }
}

fn text_of(t: &BytesText<'_>) -> Result<String, XmlError> {
    t.xml10_content()
        .map(|c| c.into_owned())
        .map_err(|e| XmlError::Syntax(e.to_string()))
}

/// The signed data per its `encoding` attribute (`plain` when absent).
fn decode_data(text: &str, encoding: Option<&str>) -> Option<String> {
    let compact = || text.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    match encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("plain") | Some("") => Some(text.to_owned()),
        Some("base64") => super::key::decode_base64(&compact()).and_then(|b| String::from_utf8(b).ok()),
        Some("hex") => super::key::decode_hex(&compact()).and_then(|b| String::from_utf8(b).ok()),
        Some(_) => Some(text.to_owned()),
    }
}

/// One transaction for the Transparenzsoftware: its begin and end records with their keys.
pub struct XmlTransaction<'a> {
    /// The number shown in the Transparenzsoftware's tree (its schema wants an integer).
    pub id: u64,
    pub begin: &'a Record,
    pub begin_key: &'a PublicKey,
    pub end: &'a Record,
    pub end_key: &'a PublicKey,
}

/// Write a Transparenzsoftware input file: per transaction one `Transaction.Begin` and one
/// `Transaction.End` value with the records verbatim and the keys as SubjectPublicKeyInfo hex (a
/// bare point is wrapped in SPKI for the curve the record names). A meter that signs begin and end
/// in one record gets that record in both values.
pub fn write_xml(transactions: &[XmlTransaction<'_>]) -> Result<String, XmlError> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let io = |e: std::io::Error| XmlError::Syntax(e.to_string());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    w.create_element("values")
        .write_inner_content(|w| {
            for t in transactions {
                for (context, side, record, key) in [
                    ("Transaction.Begin", "begin", t.begin, t.begin_key),
                    ("Transaction.End", "end", t.end, t.end_key),
                ] {
                    let spki = spki_for(t.id, side, record, key).map_err(std::io::Error::other)?;
                    let id = t.id.to_string();
                    w.create_element("value")
                        .with_attributes([("transactionId", id.as_str()), ("context", context)])
                        .write_inner_content(|w| {
                            w.create_element("signedData")
                                .with_attributes([("format", "OCMF"), ("encoding", "plain")])
                                .write_text_content(BytesText::from_escaped(escape_text(record.text())))?;
                            w.create_element("publicKey")
                                .with_attribute(("encoding", "plain"))
                                .write_text_content(BytesText::new(&spki))?;
                            Ok(())
                        })?;
                }
            }
            Ok(())
        })
        .map_err(|e| match e.downcast::<XmlError>() {
            Ok(x) => x,
            Err(e) => io(e),
        })?;
    let mut text = String::from_utf8(w.into_inner()).map_err(|e| XmlError::Syntax(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// Why the Transparenzsoftware (1.4.x) may refuse a record it is given: it reads OCMF up to FV 1.3,
/// wants the signature as DER (BouncyCastle refuses raw r‖s and DER integers with superfluous
/// zeros) and does not verify every curve. Empty when nothing is known to be in the way.
pub fn transparenz_warnings(record: &Record) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(fv) = record.data.fv.as_deref() {
        let mut parts = fv.trim().split('.').map(|p| p.parse::<u32>().ok());
        if let (Some(Some(major)), minor) = (parts.next(), parts.next().flatten().unwrap_or(0))
            && (major, minor) > (1, 3)
        {
            out.push(format!("FV {fv}: the Transparenzsoftware 1.4 reads OCMF up to 1.3"));
        }
    }
    match verify::signature(record) {
        Ok(sig) => {
            if sig.quirks.contains(&Quirk::RawSignature) {
                out.push("the signature is raw r||s; the Transparenzsoftware wants DER".into());
            }
            if sig.quirks.contains(&Quirk::NonCanonicalDer) {
                out.push("the DER signature has padded integers, which the Transparenzsoftware refuses".into());
            }
        }
        Err(e) => out.push(e.to_string()),
    }
    out
}

/// `<`, `>`, `&` as entities, and carriage returns as `&#13;`: an XML parser turns a raw CR LF
/// into LF, which would change the signed bytes of a payload written with CR LF line ends.
fn escape_text(text: &str) -> String {
    partial_escape(text).replace('\r', "&#13;")
}

fn spki_for(id: u64, side: &'static str, record: &Record, key: &PublicKey) -> Result<String, XmlError> {
    let (curve, _) = verify::algorithm(record.signature.sa.as_deref())
        .map_err(|e: VerifyError| XmlError::Record(id, e.to_string()))?;
    key.spki_hex(curve).map_err(|error| XmlError::Key { id, side, error })
}
