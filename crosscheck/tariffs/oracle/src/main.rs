//! Reads a JSON array of jobs on stdin, prices each CDR with ocpi-tariffs and
//! writes a JSON array of results on stdout. Job:
//! `{"id", "version": "2.2.1" | "2.1.1", "timezone", "tariff": "<json text>", "cdr": "<json text>"}`.
//! Result: `{"id", "error"}` or `{"id", totals as decimal strings, durations in milliseconds}`.

use std::io::Read as _;

use ocpi_tariffs::{Version, cdr, price, tariff};
use serde_json::{Value, json};

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("stdin: {e}");
        std::process::exit(2);
    }
    let jobs: Vec<Value> = match serde_json::from_str(&input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("jobs: {e}");
            std::process::exit(2);
        }
    };
    let out: Vec<Value> = jobs.iter().map(run).collect();
    println!("{}", Value::Array(out));
}

fn text<'a>(job: &'a Value, key: &str) -> &'a str {
    job.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn run(job: &Value) -> Value {
    let id = text(job, "id");
    match price_one(job) {
        Ok(v) => {
            let mut v = v;
            v["id"] = json!(id);
            v
        }
        Err(e) => json!({"id": id, "error": e}),
    }
}

fn price_one(job: &Value) -> Result<Value, String> {
    let version = match text(job, "version") {
        "2.1.1" => Version::V211,
        _ => Version::V221,
    };
    let tz: chrono_tz::Tz = text(job, "timezone").parse().map_err(|e| format!("timezone: {e}"))?;
    let tariff_json = text(job, "tariff");
    let cdr_json = text(job, "cdr");
    let tariff = tariff::parse_with_version(tariff_json, version).map_err(|e| format!("tariff: {e}"))?;
    let cdr = cdr::parse_with_version(cdr_json, version).map_err(|e| format!("cdr: {e}"))?;
    let report = cdr::price(&cdr.cdr, price::TariffSource::single(tariff.tariff), tz).map_err(|set| {
        let (error, _warnings) = set.into_parts();
        format!("price: {} at {}", error.warning(), error.element().path())
    })?;
    let (r, warnings) = report.into_parts();
    let price = |p: Option<ocpi_tariffs::Price>| {
        p.map(|p| {
            json!({
                "excl_vat": dec(p.excl_vat.into()),
                "incl_vat": p.incl_vat.map(|m| dec(m.into())),
            })
        })
    };
    let ms = |d: Option<chrono::TimeDelta>| d.map(|d| d.num_milliseconds());
    Ok(json!({
        "warnings": warnings.len_warnings(),
        "total_cost": price(r.total_cost.calculated),
        "total_energy_cost": price(r.total_energy_cost.calculated),
        "total_time_cost": price(r.total_charging_time_cost.calculated),
        "total_parking_cost": price(r.total_idle_cost.calculated),
        "total_fixed_cost": price(r.total_fixed_cost.calculated),
        "total_energy": r.total_energy.calculated.map(|k| dec(k.into())),
        "billed_energy": r.billed_energy.map(|k| dec(k.into())),
        "total_time_ms": r.total_time.calculated.num_milliseconds(),
        "total_charging_time_ms": ms(r.total_charging_time),
        "billed_charging_time_ms": ms(r.billed_charging_time),
        "total_parking_time_ms": ms(r.total_idle_time.calculated),
        "billed_parking_time_ms": ms(r.billed_idle_time),
    }))
}

fn dec(d: rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}
