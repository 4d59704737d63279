//! How a charger's DataTransfer is answered: per vendorId from the config
//! (`[data_transfer."vendor"]`), a fixed answer or a program run without a
//! shell, the message as JSON on its stdin, its answer as JSON on stdout
//! (`{"status": "Accepted", "data": ...}`). The program is killed at its
//! timeout, so a connection waits for it at most that long.

use crate::config::VendorHook;
use crate::domain::message::{DataTransfer, DataTransferAnswer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const STATUSES: [&str; 4] = ["Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"];

/// Largest answer read from a hook program.
const MAX_OUTPUT: usize = 64 * 1024;

pub async fn answer(hooks: &BTreeMap<String, VendorHook>, charger: &str, dt: &DataTransfer) -> DataTransferAnswer {
    let fixed = |status: &str| DataTransferAnswer {
        status: status.into(),
        data: None,
        note: None,
    };
    match hooks.get(&dt.vendor_id) {
        None => DataTransferAnswer::default(),
        Some(VendorHook::Accept) => fixed("Accepted"),
        Some(VendorHook::Reject) => fixed("Rejected"),
        Some(VendorHook::UnknownMessageId) => fixed("UnknownMessageId"),
        Some(VendorHook::Command { command, timeout_ms }) => {
            let input = json!({
                "charger": charger,
                "vendorId": dt.vendor_id,
                "messageId": dt.message_id,
                "data": dt.data,
            });
            match run(command, &input, Duration::from_millis(*timeout_ms)).await {
                Ok(a) => a,
                Err(note) => {
                    tracing::warn!(charger, vendor = dt.vendor_id, "DataTransfer hook: {note}");
                    DataTransferAnswer {
                        status: "Rejected".into(),
                        data: None,
                        note: Some(note),
                    }
                }
            }
        }
    }
}

async fn run(command: &[String], input: &Value, timeout: Duration) -> Result<DataTransferAnswer, String> {
    let stdout = run_program(command, input, timeout, MAX_OUTPUT).await?;
    parse(&stdout).map_err(|e| format!("{}: {e}", command.first().map_or("", String::as_str)))
}

/// Run `command` (no shell) with `input` as JSON on its stdin; its stdout,
/// when it exits 0 within `timeout` having written at most `max` bytes.
/// The program is killed at the timeout. Also the Plug & Charge `program`
/// source's way out.
pub async fn run_program(command: &[String], input: &Value, timeout: Duration, max: usize) -> Result<Vec<u8>, String> {
    let (program, args) = command.split_first().ok_or("no program configured")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let text = input.to_string();
    let work = async move {
        // A program that does not read its input must not block us: ignore a broken pipe.
        let _ = stdin.write_all(text.as_bytes()).await;
        drop(stdin);
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{program} gave no answer within {timeout:?}"))?
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} exited with {}", out.status));
    }
    if out.stdout.len() > max {
        return Err(format!("{program} wrote more than {max} bytes"));
    }
    Ok(out.stdout)
}

fn parse(stdout: &[u8]) -> Result<DataTransferAnswer, String> {
    let v: Value = serde_json::from_slice(stdout).map_err(|e| format!("stdout is not JSON: {e}"))?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| STATUSES.contains(s))
        .ok_or("stdout needs \"status\": Accepted, Rejected, UnknownMessageId or UnknownVendorId")?;
    let data = match v.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok(DataTransferAnswer {
        status: status.to_string(),
        data,
        note: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(vendor: &str) -> DataTransfer {
        DataTransfer {
            vendor_id: vendor.into(),
            message_id: Some("m".into()),
            data: Some("hello".into()),
            answer: Default::default(),
        }
    }

    fn hooks(vendor: &str, h: VendorHook) -> BTreeMap<String, VendorHook> {
        BTreeMap::from([(vendor.to_string(), h)])
    }

    #[tokio::test]
    async fn fixed_answers_and_unknown_vendors() {
        let h = hooks("acme", VendorHook::Accept);
        assert_eq!(answer(&h, "CP", &dt("acme")).await.status, "Accepted");
        assert_eq!(answer(&h, "CP", &dt("other")).await.status, "UnknownVendorId");
    }

    #[tokio::test]
    async fn a_program_answers_from_its_stdin() {
        let script = r#"read line; echo "{\"status\":\"Accepted\",\"data\":$(printf '%s' "$line" | wc -c)}""#;
        let h = hooks(
            "acme",
            VendorHook::Command {
                command: vec!["/bin/sh".into(), "-c".into(), script.into()],
                timeout_ms: 5_000,
            },
        );
        let a = answer(&h, "CP", &dt("acme")).await;
        assert_eq!(a.status, "Accepted", "{a:?}");
        assert!(a.data.unwrap().trim().parse::<u32>().unwrap() > 20);
    }

    #[tokio::test]
    async fn a_slow_or_broken_program_is_a_rejection_with_a_note() {
        let slow = hooks(
            "acme",
            VendorHook::Command {
                command: vec!["/bin/sleep".into(), "5".into()],
                timeout_ms: 200,
            },
        );
        let started = std::time::Instant::now();
        let a = answer(&slow, "CP", &dt("acme")).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(a.status, "Rejected");
        assert!(a.note.unwrap().contains("no answer"));
        let garbage = hooks(
            "acme",
            VendorHook::Command {
                command: vec!["/bin/echo".into(), "not json".into()],
                timeout_ms: 2_000,
            },
        );
        let a = answer(&garbage, "CP", &dt("acme")).await;
        assert_eq!(a.status, "Rejected");
        assert!(a.note.unwrap().contains("not JSON"));
    }
}
