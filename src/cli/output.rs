//! Tables for people, JSON for scripts.

use super::Ctx;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

/// Render `v` (an array of objects) as a table of the given (header, JSON
/// pointer) columns, or print it as JSON.
pub fn table(ctx: &Ctx, v: &Value, columns: &[(&str, &str)]) {
    if ctx.json {
        return json(v);
    }
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(columns.iter().map(|(h, _)| *h));
    for row in &rows {
        t.add_row(columns.iter().map(|(_, p)| cell(row.pointer(p))));
    }
    println!("{t}");
}

/// Render one object as `key: value` lines (all keys with --json).
pub fn object(ctx: &Ctx, v: &Value, keys: &[&str]) {
    if ctx.json {
        return json(v);
    }
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for k in keys {
        println!("{k:width$}  {}", cell(v.get(*k)));
    }
}

pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join(", "),
        Some(other) => other.to_string(),
    }
}

/// Print a short confirmation, or `{}` style JSON for scripts.
pub fn done(ctx: &Ctx, v: &Value, message: &str) {
    if ctx.json { json(v) } else { println!("{message}") }
}
