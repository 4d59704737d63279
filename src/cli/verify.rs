//! `voltyard verify FILE`: check OCMF signed meter data offline, without a server.
//!
//! FILE holds OCMF records (one per line) or a S.A.F.E. Transparenzsoftware XML file (`-` reads
//! stdin). `--key` is the meter's public key, as text or as the path of a file holding it; it is
//! used for every record and overrides keys inside the file. Exit status: 0 when every record
//! verifies and every transaction passes its checks, 1 when anything fails, 2 when the input (or
//! the key) cannot be read. See docs/eichrecht.md.

use crate::ocmf::key::PublicKey;
use crate::ocmf::report::{RecordReport, SessionReport, VerifyReport, verify_text};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// Verify the file at `path` and print the report (JSON with `json`).
pub fn run(path: &Path, key: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let text = match read_text(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("voltyard verify: {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let key = match key.map(read_key).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("voltyard verify: --key: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if crate::billing::receipt::is_receipt(&text) {
        return receipt(path, &text, key.as_deref(), json);
    }
    let report = verify_text(&text, key.as_deref());
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(match (&report.input_error, report.ok()) {
        (Some(e), _) => {
            if !json {
                eprintln!("voltyard verify: {}: {e}", path.display());
            }
            ExitCode::from(2)
        }
        (None, true) => ExitCode::SUCCESS,
        (None, false) => ExitCode::from(1),
    })
}

/// A receipt JSON (`voltyard receipt --format json`): its signed records, and its figures against
/// them and against pricing its embedded input again.
fn receipt(path: &Path, text: &str, key: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let r = crate::billing::receipt::verify_receipt(text, key);
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let mut out = render(&r.report);
        if r.report.input_error.is_none() {
            if let Some(id) = r.session {
                out.push_str(&format!(
                    "
receipt of session {id}
"
                ));
            }
            for c in &r.receipt_checks {
                out.push_str(&format!("    ok       {c}\n"));
            }
            for p in &r.receipt_problems {
                out.push_str(&format!("    problem  {p}\n"));
            }
            out.push_str(&format!("receipt: {}\n", if r.ok() { "VERIFIED" } else { "FAILED" }));
        }
        print!("{out}");
    }
    Ok(match (&r.report.input_error, r.ok()) {
        (Some(e), _) => {
            if !json {
                eprintln!("voltyard verify: {}: {e}", path.display());
            }
            ExitCode::from(2)
        }
        (None, true) => ExitCode::SUCCESS,
        (None, false) => ExitCode::from(1),
    })
}

/// The file's text: UTF-8, or ISO-8859-1 when an XML declaration says so.
fn read_text(path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    } else {
        bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    }
    match String::from_utf8(bytes) {
        Ok(t) => Ok(t),
        Err(e) => {
            let bytes = e.into_bytes();
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
            if head.starts_with("<?xml") && (head.contains("iso-8859-1") || head.contains("latin1")) {
                Ok(bytes.iter().map(|&b| char::from(b)).collect())
            } else {
                Err("not UTF-8 text".into())
            }
        }
    }
}

/// The key text: the argument itself, or the contents of the file it names. It must parse.
fn read_key(arg: &str) -> Result<String, String> {
    let p = Path::new(arg);
    let text = if arg.len() < 4096 && p.is_file() {
        std::fs::read_to_string(p).map_err(|e| format!("{arg}: {e}"))?
    } else {
        arg.to_owned()
    };
    PublicKey::parse(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// The report for people.
pub fn render(r: &VerifyReport) -> String {
    let mut out = String::new();
    if let Some(e) = &r.input_error {
        out.push_str(&format!("input not readable: {e}\n"));
        return out;
    }
    for rec in &r.records {
        record(&mut out, rec);
    }
    for s in &r.sessions {
        session(&mut out, r, s);
    }
    for &i in &r.unpaired {
        out.push_str(&format!(
            "{}: not part of a complete transaction (no session check)\n",
            r.records[i].label
        ));
    }
    let valid = r.records.iter().filter(|x| x.ok()).count();
    let sessions_ok = r.sessions.iter().filter(|s| s.verdict.ok()).count();
    out.push_str(&format!(
        "\n{} record(s), {} valid; {} transaction(s), {} passed: {}\n",
        r.records.len(),
        valid,
        r.sessions.len(),
        sessions_ok,
        if r.ok() { "VERIFIED" } else { "FAILED" }
    ));
    out
}

fn record(out: &mut String, rec: &RecordReport) {
    let mut head = rec.label.clone();
    if let Some(t) = &rec.transaction_id {
        head.push_str(&format!(", transaction {t}"));
    }
    if let Some(c) = &rec.context {
        head.push_str(&format!(", {c}"));
    }
    out.push_str(&format!("{head}: {}", rec.verdict.to_string().to_uppercase()));
    if let Some(c) = &rec.curve {
        out.push_str(&format!(" ({c})"));
    }
    out.push('\n');
    if let Some(e) = &rec.error {
        out.push_str(&format!("    error    {e}\n"));
    }
    let key = match rec.key_source {
        crate::ocmf::report::KeySource::Given => "given with --key",
        crate::ocmf::report::KeySource::Input => "from the file",
        crate::ocmf::report::KeySource::None => "none",
    };
    out.push_str(&format!("    key      {key}\n"));
    if let Some(m) = rec.meter.as_deref().filter(|m| !m.is_empty()) {
        out.push_str(&format!("    meter    {m}\n"));
    }
    if let Some(p) = &rec.pagination {
        out.push_str(&format!("    page     {p}\n"));
    }
    for line in &rec.readings {
        out.push_str(&format!("    reading  {line}\n"));
    }
    for q in &rec.quirks {
        out.push_str(&format!("    note     {q}\n"));
    }
    for i in &rec.issues {
        out.push_str(&format!("    content  {i}\n"));
    }
}

fn session(out: &mut String, r: &VerifyReport, s: &SessionReport) {
    let v = &s.verdict;
    let (b, e) = (&r.records[s.begin].label, &r.records[s.end].label);
    let which = if s.begin == s.end {
        b.clone()
    } else {
        format!("{b} → {e}")
    };
    let tx = s.transaction_id.as_deref().map_or(String::new(), |t| format!(" {t}"));
    out.push_str(&format!(
        "\ntransaction{tx} ({which}): {}\n",
        if v.ok() { "PASSED" } else { "FAILED" }
    ));
    for (name, reg) in [("begin", &v.begin), ("end", &v.end)] {
        if let Some(reg) = reg {
            let at = reg.at.map_or("-".into(), |t| t.to_rfc3339());
            out.push_str(&format!(
                "    {name:<8} {} Wh at {at}{}\n",
                reg.exact_wh,
                reg.pagination.as_deref().map_or(String::new(), |p| format!(" ({p})"))
            ));
        }
    }
    if let Some(wh) = v.energy_wh {
        out.push_str(&format!("    energy   {wh} Wh\n"));
    }
    for p in &v.problems {
        out.push_str(&format!("    problem  {p}\n"));
    }
    for n in &v.notes {
        out.push_str(&format!("    note     {n}\n"));
    }
}
