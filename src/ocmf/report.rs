//! The offline verifier behind `voltyard verify FILE`: OCMF lines or a Transparenzsoftware XML file
//! in, a report of every record and every transaction out.
//!
//! Inputs become [`Entry`]s (record text, optional key text, context, transaction id); entries are
//! verified one by one ([`verify_entry`]) and then paired into sessions: within one transaction id,
//! a `Transaction.Begin` value with the next `Transaction.End` value, or (without contexts) a record
//! with a begin reading with the next record with an end reading; a record holding both is a
//! session on its own.

use super::key::PublicKey;
use super::record::Record;
use super::session::{self, SessionVerdict};
use super::verify::{self, Quirk, Verdict, Verified, VerifyError};
use super::xml;
use serde::Serialize;

/// One signed record to check, from whatever container it came in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Where it came from, for people ("line 3", "value 2").
    pub label: String,
    pub transaction_id: Option<String>,
    /// `Transaction.Begin`, `Transaction.End`, …
    pub context: Option<String>,
    /// The OCMF record text (or whatever the container held, if it is not OCMF).
    pub data: String,
    /// `OCMF`, or the container's name for another format.
    pub format: Option<String>,
    /// The key that came with the record, if any.
    pub key: Option<String>,
}

/// Where the key used for a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The key given to the verifier (overrides keys in the input).
    Given,
    /// The key next to the record in the input.
    Input,
    None,
}

/// What was found about one record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordReport {
    pub label: String,
    pub transaction_id: Option<String>,
    pub context: Option<String>,
    pub verdict: Verdict,
    /// Why it is not valid.
    pub error: Option<String>,
    pub curve: Option<String>,
    pub quirks: Vec<String>,
    pub key_source: KeySource,
    /// Content issues (odd field types) that do not affect the signature.
    pub issues: Vec<String>,
    /// A summary of the payload.
    pub meter: Option<String>,
    pub pagination: Option<String>,
    pub readings: Vec<String>,
    #[serde(skip)]
    pub record: Option<Record>,
    #[serde(skip)]
    pub key: Option<PublicKey>,
    #[serde(skip)]
    pub result: Option<Result<Verified, VerifyError>>,
}

impl RecordReport {
    pub fn ok(&self) -> bool {
        self.verdict == Verdict::Valid
    }
}

/// One transaction's session check.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    pub transaction_id: Option<String>,
    /// Indices into [`VerifyReport::records`].
    pub begin: usize,
    pub end: usize,
    pub verdict: SessionVerdict,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// `ocmf` or `xml`.
    pub input: String,
    /// Set when the input could not be read as any accepted shape.
    pub input_error: Option<String>,
    pub records: Vec<RecordReport>,
    pub sessions: Vec<SessionReport>,
    /// Records that are in no session (a begin without an end…): noted, not failed.
    pub unpaired: Vec<usize>,
}

impl VerifyReport {
    /// True when the input was read, had at least one record, every record verifies and every
    /// session check passes.
    pub fn ok(&self) -> bool {
        self.input_error.is_none()
            && !self.records.is_empty()
            && self.records.iter().all(RecordReport::ok)
            && self.sessions.iter().all(|s| s.verdict.ok())
    }
}

/// Verify OCMF records (one per line; blank lines skipped) or a Transparenzsoftware XML file.
/// `key` is used for every record and overrides keys found in the input.
pub fn verify_text(input: &str, key: Option<&str>) -> VerifyReport {
    let text = input.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('<') {
        return match xml::read_xml(text) {
            Ok(values) => verify_entries("xml", &entries_from_xml(&values), key),
            Err(e) => VerifyReport {
                input: "xml".into(),
                input_error: Some(e.to_string()),
                ..VerifyReport::default()
            },
        };
    }
    let entries = entries_from_lines(text);
    let mut report = verify_entries("ocmf", &entries, key);
    if entries.is_empty() {
        report.input_error = Some("no OCMF record in the input".into());
    } else if report.records.iter().all(|r| r.record.is_none()) {
        report.input_error = Some("no line is an OCMF record".into());
    }
    report
}

/// OCMF records, one per line, or spread over several lines (a pretty-printed payload: the line
/// ends are part of the signed bytes). A line starting with `OCMF|`, or any line after a complete
/// record, starts a new entry; blank lines between records are skipped.
pub fn entries_from_lines(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let push = |entries: &mut Vec<Entry>, (line, data): (usize, String)| {
        entries.push(Entry {
            label: format!("line {line}"),
            data: data.trim().to_owned(),
            format: Some("OCMF".into()),
            ..Entry::default()
        })
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let starts = line.trim_start().starts_with("OCMF|");
        if let Some((_, buf)) = current.as_mut() {
            if !starts && buf.trim_start().starts_with("OCMF|") && Record::parse(buf).is_err() {
                buf.push_str(line);
                continue;
            }
            if let Some(done) = current.take() {
                push(&mut entries, done);
            }
        }
        if !line.trim().is_empty() {
            current = Some((i + 1, line.to_owned()));
        }
    }
    if let Some(done) = current {
        push(&mut entries, done);
    }
    entries
}

/// The entries of a Transparenzsoftware file.
pub fn entries_from_xml(values: &[xml::XmlValue]) -> Vec<Entry> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Entry {
            label: format!("value {}", i + 1),
            transaction_id: v.transaction_id.clone(),
            context: v.context.clone(),
            data: v.signed_data.clone().unwrap_or_default(),
            format: match (&v.format, v.element.as_str()) {
                (_, "encodedData") => Some(format!("{} (encodedData)", v.format.as_deref().unwrap_or("?"))),
                (f, _) => f.clone(),
            },
            key: v.public_key.clone(),
        })
        .collect()
}

/// Verify one entry. `given` overrides the entry's own key.
pub fn verify_entry(entry: &Entry, given: Option<&str>) -> RecordReport {
    let mut rep = RecordReport {
        label: entry.label.clone(),
        transaction_id: entry.transaction_id.clone(),
        context: entry.context.clone(),
        verdict: Verdict::Malformed,
        error: None,
        curve: None,
        quirks: Vec::new(),
        key_source: KeySource::None,
        issues: Vec::new(),
        meter: None,
        pagination: None,
        readings: Vec::new(),
        record: None,
        key: None,
        result: None,
    };
    let data = entry.data.trim();
    let format = entry.format.as_deref().map(str::trim);
    if let Some(f) = format.filter(|f| !f.eq_ignore_ascii_case("OCMF")) {
        rep.verdict = Verdict::Unsupported;
        rep.error = Some(format!("not an OCMF record (format {f})"));
        return rep;
    }
    if data.is_empty() {
        rep.error = Some("no signed data".into());
        return rep;
    }
    if format.is_none() && !data.starts_with("OCMF|") {
        rep.verdict = Verdict::Unsupported;
        rep.error = Some("not an OCMF record (unknown format)".into());
        return rep;
    }
    let record = match Record::parse(data) {
        Ok(r) => r,
        Err(e) => {
            rep.error = Some(e.to_string());
            return rep;
        }
    };
    let p = &record.data;
    rep.meter = Some(
        [&p.gi, &p.gs, &p.mv, &p.mm, &p.ms]
            .iter()
            .filter_map(|v| v.as_deref())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(" / "),
    );
    rep.pagination = p.pg.clone();
    rep.issues = p.issues.clone();
    rep.readings = p
        .readings
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} ST={}{}",
                r.tx.map_or('-', |t| t.code()),
                r.tm.as_deref().unwrap_or("-"),
                r.value.map_or("-".into(), |v| v.to_string()),
                r.unit.as_ref().map_or("-".into(), |u| u.to_string()),
                r.st.as_deref().unwrap_or("-"),
                r.ef.as_deref()
                    .filter(|e| !e.is_empty())
                    .map_or(String::new(), |e| format!(" EF={e}")),
            )
        })
        .collect();
    let (key_text, source) = match (given, entry.key.as_deref()) {
        (Some(k), _) => (Some(k), KeySource::Given),
        (None, Some(k)) => (Some(k), KeySource::Input),
        (None, None) => (None, KeySource::None),
    };
    rep.key_source = source;
    let key = match key_text.map(PublicKey::parse) {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            // an unsupported algorithm says more than a key that cannot be read
            let result = verify::verify_with(&record, None);
            let err = match result {
                Err(e @ (VerifyError::UnsupportedAlgorithm(_) | VerifyError::UnknownAlgorithm(_))) => e,
                _ => VerifyError::Key(e),
            };
            rep.verdict = err.verdict();
            rep.error = Some(err.to_string());
            rep.result = Some(Err(err));
            rep.record = Some(record);
            return rep;
        }
        None => None,
    };
    let result = verify::verify_with(&record, key.as_ref());
    match &result {
        Ok(v) => {
            rep.verdict = Verdict::Valid;
            rep.curve = Some(v.curve.to_string());
            rep.quirks = v.quirks.iter().map(Quirk::to_string).collect();
        }
        Err(e) => {
            rep.verdict = e.verdict();
            rep.error = Some(e.to_string());
            if let Ok((c, _)) = verify::algorithm(record.signature.sa.as_deref()) {
                rep.curve = Some(c.to_string());
            }
        }
    }
    rep.result = Some(result);
    rep.record = Some(record);
    rep.key = key;
    rep
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Begin,
    End,
    Both,
    Other,
}

/// Verify entries and pair them into sessions.
pub fn verify_entries(input: &str, entries: &[Entry], key: Option<&str>) -> VerifyReport {
    let records: Vec<RecordReport> = entries.iter().map(|e| verify_entry(e, key)).collect();
    // groups by transaction id, in order of first appearance
    let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if r.record.is_none() {
            continue;
        }
        match groups.iter_mut().find(|(id, _)| *id == r.transaction_id) {
            Some((_, members)) => members.push(i),
            None => groups.push((r.transaction_id.clone(), vec![i])),
        }
    }
    let role = |r: &RecordReport| -> Role {
        let Some(rec) = r.record.as_ref() else {
            return Role::Other;
        };
        match r.context.as_deref() {
            Some("Transaction.Begin") => Role::Begin,
            Some("Transaction.End") if rec.has_begin() && rec.has_end() => Role::Both,
            Some("Transaction.End") => Role::End,
            _ => match (rec.has_begin(), rec.has_end()) {
                (true, true) => Role::Both,
                (true, false) => Role::Begin,
                (false, true) => Role::End,
                (false, false) => Role::Other,
            },
        }
    };
    let mut sessions = Vec::new();
    let mut unpaired = Vec::new();
    let mut unpaired_other = Vec::new();
    // a begin left without an end is a session of its own if its record also ends the transaction
    let mut settle = |pending: Option<usize>, id: &Option<String>, sessions: &mut Vec<SessionReport>| {
        if let Some(b) = pending {
            if records[b].record.as_ref().is_some_and(Record::has_end) {
                sessions.extend(session_of(id, &records, b, b));
            } else {
                unpaired.push(b);
            }
        }
    };
    for (id, members) in &groups {
        // exactly one Begin and one End value (the Transparenzsoftware's rule), in either order
        let with = |ctx: &str| -> Vec<usize> {
            members
                .iter()
                .copied()
                .filter(|&i| records[i].context.as_deref() == Some(ctx))
                .collect()
        };
        if let ([b], [e]) = (with("Transaction.Begin").as_slice(), with("Transaction.End").as_slice()) {
            sessions.extend(session_of(id, &records, *b, *e));
            unpaired_other.extend(members.iter().filter(|&&i| i != *b && i != *e));
            continue;
        }
        let mut pending: Option<usize> = None;
        for &i in members {
            match (role(&records[i]), pending) {
                (Role::Begin, p) => {
                    settle(p, id, &mut sessions);
                    pending = Some(i);
                }
                (Role::End | Role::Both, Some(b)) => {
                    sessions.extend(session_of(id, &records, b, i));
                    pending = None;
                }
                (Role::Both, None) => sessions.extend(session_of(id, &records, i, i)),
                (Role::End | Role::Other, _) => unpaired_other.push(i),
            }
        }
        settle(pending, id, &mut sessions);
    }
    unpaired.extend(unpaired_other);
    unpaired.sort_unstable();
    VerifyReport {
        input: input.into(),
        input_error: None,
        records,
        sessions,
        unpaired,
    }
}

fn session_of(id: &Option<String>, records: &[RecordReport], b: usize, e: usize) -> Option<SessionReport> {
    let (rb, re) = (records.get(b)?, records.get(e)?);
    let result = |r: &RecordReport| r.result.clone().unwrap_or(Err(VerifyError::NoKey));
    let verdict = session::check_session_verified(
        rb.record.as_ref()?,
        rb.key.as_ref(),
        &result(rb),
        re.record.as_ref()?,
        re.key.as_ref(),
        &result(re),
    );
    Some(SessionReport {
        transaction_id: id.clone(),
        begin: b,
        end: e,
        verdict,
    })
}
