//! `cargo xtask bench dlm`: the load-management benchmark.
//!
//! Generated sites (scenario.rs) run second by second (physics.rs) under
//! voltyard's optimiser and three baselines (baselines.rs), each seeing only
//! what a CSMS sees (run.rs); the figures (metrics.rs) are compared with an
//! offline LP optimum (optimum.rs). See docs/benchmarks.md, "DLM benchmark".

mod baselines;
mod metrics;
mod optimum;
mod physics;
mod run;
mod scenario;

use super::sys::{self, Flags};
use anyhow::{Context, Result, bail};
use baselines::{EqualShare, Greedy, Ours, Policy, Unmanaged};
use metrics::Excused;
use run::Run;
use scenario::{SiteClass, Spec};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The goals the issue sets; a miss is reported, never an error.
const GOAL_AMPLE: f64 = 0.97;
const GOAL_TIGHT: f64 = 0.90;
const GOAL_JAIN: f64 = 0.97;
const GOAL_MSGS: f64 = 10.0;
const GOAL_P99_MS: f64 = 5.0;
const GOAL_P99_N: usize = 5000;

struct Opts {
    quick: bool,
    seed: u64,
    /// Sizes of the ample and tight sites (the ones with an LP).
    chargers: Vec<usize>,
    /// Horizon of those sites, hours of the day.
    day: (f64, f64),
    /// LP time slot.
    slot_s: u32,
    /// Decision-time runs: chargers, and their horizon.
    decision: Vec<usize>,
    decision_day: (f64, f64),
    json: PathBuf,
}

fn options(args: &[String]) -> Result<Opts> {
    let flags = Flags::parse(args, &["quick"], &["seed", "json", "chargers"])?;
    let quick = flags.switch("quick");
    let chargers = match flags.num::<usize>("chargers")? {
        Some(0) => bail!("--chargers must be at least 1"),
        Some(n) => vec![n],
        None if quick => vec![10],
        None => vec![30, 100],
    };
    Ok(Opts {
        quick,
        seed: flags.num("seed")?.unwrap_or(1),
        chargers,
        day: if quick { (6.0, 10.0) } else { (6.0, 20.0) },
        slot_s: 900,
        decision: if quick {
            vec![10, 100]
        } else {
            vec![10, 100, 1000, 5000]
        },
        decision_day: if quick { (8.0, 8.5) } else { (6.0, 9.0) },
        json: PathBuf::from(flags.str("json").unwrap_or("target/bench/dlm.json")),
    })
}

/// The figures that compare with the optimum, per controller run.
struct Row {
    run: Run,
    of_optimum: Option<f64>,
    regret: Option<f64>,
}

pub fn main(root: &Path, args: &[String]) -> Result<()> {
    let opts = options(args)?;
    let started = Instant::now();
    let mut sites = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let classes = [SiteClass::Ample, SiteClass::Tight];
    for (n, class) in opts.chargers.iter().flat_map(|&n| classes.map(|c| (n, c))) {
        let sc = scenario::generate(&Spec {
            class,
            chargers: n,
            start_h: opts.day.0,
            end_h: opts.day.1,
            seed: opts.seed,
        });
        let excused = Excused::new(&sc);
        eprintln!(
            "xtask: site {}: {} chargers, {} sessions, {:.0} kWh needed, root fuse {} A, {} nodes; LP ...",
            sc.name,
            sc.chargers.len(),
            sc.sessions.len(),
            sc.need_wh() / 1000.0,
            sc.nodes[0].cap,
            sc.nodes.len()
        );
        let lp = optimum::Lp::new(&sc, opts.slot_s);
        let best = lp.max_energy()?;
        let cheapest = lp.min_cost(best.energy_wh * 0.999)?;
        eprintln!(
            "xtask: LP: {:.1} kWh ({} variables, {} constraints, {:.1} s); cheapest for it {:.2} EUR ({:.1} s)",
            best.energy_wh / 1000.0,
            best.variables,
            best.constraints,
            best.seconds,
            cheapest.cost_eur,
            cheapest.seconds
        );
        let policies: Vec<Box<dyn Policy>> = vec![
            Box::new(Ours::new(&sc)),
            Box::new(Unmanaged),
            Box::new(EqualShare::new(&sc)),
            Box::new(Greedy::new(&sc)),
        ];
        let mut site_runs = Vec::new();
        for mut p in policies {
            let mut r = run::simulate(&sc, p.as_mut(), &excused)?;
            // The cheapest schedule for the energy this controller delivered
            // (at most the optimum's).
            let target = r.energy_wh.min(best.energy_wh) * 0.999;
            let regret = if target > 0.0 {
                let c = lp.min_cost(target)?;
                (c.cost_eur > 0.0).then(|| r.cost_eur / (r.energy_wh / 1000.0) / (c.cost_eur / (target / 1000.0)) - 1.0)
            } else {
                None
            };
            let of_optimum = (best.energy_wh > 0.0).then(|| r.energy_wh / best.energy_wh);
            r.json["energy_of_optimum"] = json!(of_optimum);
            r.json["cost_regret"] = json!(regret);
            eprintln!(
                "xtask:   {:<20} {:.1} kWh, preventable {:.0} A·s, raw {:.0} A·s ({:.1} s)",
                r.controller,
                r.energy_wh / 1000.0,
                r.preventable_as,
                r.raw_as,
                r.json["wall_s"].as_f64().unwrap_or(0.0)
            );
            site_runs.push(r.json.clone());
            rows.push(Row {
                run: r,
                of_optimum,
                regret,
            });
        }
        sites.push(json!({
            "site": sc.name,
            "class": sc.class.name(),
            "chargers": sc.chargers.len(),
            "sessions": sc.sessions.len(),
            "start": sc.start.to_rfc3339(),
            "horizon_s": sc.horizon_s,
            "need_kwh": sc.need_wh() / 1000.0,
            "nodes": sc.nodes.iter().map(|n| json!({"id": n.id, "cap_a": n.cap})).collect::<Vec<_>>(),
            "ignoring_chargers": sc.chargers.iter().filter(|c| c.ignores).count(),
            "single_phase_cars": sc.sessions.iter().filter(|s| s.car_phases == 1).count(),
            "cars_32a": sc.sessions.iter().filter(|s| s.car_max >= 32.0).count(),
            "sleepy_cars": sc.sessions.iter().filter(|s| s.sleepy).count(),
            "cap_event": sc.cap_event.map(|e| json!({"start_s": e.start, "end_s": e.end, "factor": e.factor})),
            "dropouts_s": sc.dropouts,
            "unmanaged_steps": sc.unmanaged.len() - 1,
            "excused_node_seconds_share": excused.share(),
            "optimum": {
                "slot_s": opts.slot_s,
                "energy_kwh": best.energy_wh / 1000.0,
                "variables": best.variables,
                "constraints": best.constraints,
                "solve_s": best.seconds,
                "cheapest_cost_eur": cheapest.cost_eur,
            },
            "runs": site_runs,
        }));
    }

    // Decision time against N: ours only, the tight class.
    let mut decisions = Vec::new();
    for &n in &opts.decision {
        let sc = scenario::generate(&Spec {
            class: SiteClass::Tight,
            chargers: n,
            start_h: opts.decision_day.0,
            end_h: opts.decision_day.1,
            seed: opts.seed,
        });
        let excused = Excused::new(&sc);
        let mut ours = Ours::new(&sc);
        let r = run::simulate(&sc, &mut ours, &excused)?;
        let levels = sc.chain.iter().map(Vec::len).max().unwrap_or(0);
        eprintln!(
            "xtask: decision time, {n} chargers ({levels} levels, {} nodes): p50 {:.3} ms, p99 {:.3} ms over {} calls ({:.1} s)",
            sc.nodes.len(),
            r.decision_ns[0] as f64 / 1e6,
            r.decision_ns[1] as f64 / 1e6,
            r.calls,
            r.json["wall_s"].as_f64().unwrap_or(0.0)
        );
        decisions.push((n, levels, sc.nodes.len(), r));
    }

    let goals = print_tables(&opts, &rows, &decisions);
    let report = json!({
        "benchmark": "dlm",
        "seed": opts.seed,
        "machine": sys::machine(),
        "git_commit": git_commit(root),
        "config": {
            "quick": opts.quick,
            "chargers": opts.chargers,
            "day_hours_utc": [opts.day.0, opts.day.1],
            "lp_slot_s": opts.slot_s,
            "tick_s": scenario::TICK_S,
            "meter_delay_s": scenario::METER_DELAY_S,
            "site_meter_interval_s": scenario::SITE_METER_INTERVAL_S,
            "status_delay_s": scenario::STATUS_DELAY_S,
            "decision_chargers": opts.decision,
            "decision_day_hours_utc": [opts.decision_day.0, opts.decision_day.1],
        },
        "sites": sites,
        "decision_time": decisions.iter().map(|(n, levels, nodes, r)| json!({
            "chargers": n, "levels": levels, "nodes": nodes, "sessions": r.sessions,
            "calls": r.calls,
            "p50_ms": r.decision_ns[0] as f64 / 1e6,
            "p99_ms": r.decision_ns[1] as f64 / 1e6,
            "max_ms": r.decision_ns[2] as f64 / 1e6,
            "run": r.json,
        })).collect::<Vec<_>>(),
        "goals": goals,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    if let Some(dir) = opts.json.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&opts.json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", opts.json.display()))?;
    println!(
        "\nseed {}, {} on {} × {}, commit {}; {:.0} s; JSON: {}",
        opts.seed,
        report["machine"]["date"].as_str().unwrap_or("?"),
        report["machine"]["nproc"],
        report["machine"]["cpu_model"].as_str().unwrap_or("?"),
        report["git_commit"].as_str().unwrap_or("?"),
        started.elapsed().as_secs_f64(),
        opts.json.display()
    );
    if opts.quick {
        smoke_check(&rows, &decisions)?;
        println!("quick: every controller ran on every site, the LP solved, voltyard's step never failed");
    }
    Ok(())
}

fn git_commit(root: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    let head = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if head.is_empty() {
        return None;
    }
    let dirty = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1} %", v * 100.0)).unwrap_or_else(|| "-".into())
}

fn print_table(head: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |", parts.join(" | "))
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", line(head.iter().map(|h| h.to_string()).collect()));
    let _ = writeln!(
        out,
        "|{}|",
        width.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(out, "{}", line(r.clone()));
    }
}

fn print_tables(opts: &Opts, rows: &[Row], decisions: &[(usize, usize, usize, Run)]) -> Vec<Value> {
    let head = [
        "controller",
        "site",
        "preventable A·s",
        "raw A·s",
        "utilisation",
        "energy / need",
        "% of optimum",
        "satisfied",
        "Jain",
        "cost regret",
        "msgs/charger·h",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let x = &r.run;
            vec![
                x.controller.clone(),
                x.site.clone(),
                format!("{:.1}", x.preventable_as),
                format!("{:.0}", x.raw_as),
                pct(Some(x.utilisation)),
                pct(Some(x.energy_wh / x.need_wh.max(1.0))),
                pct(r.of_optimum),
                format!("{}/{}", x.satisfied, x.sessions),
                format!("{:.3}", x.jain),
                pct(r.regret),
                format!("{:.2}", x.msgs_per_charger_hour()),
            ]
        })
        .collect();
    print_table(&head, &cells);

    let cells: Vec<Vec<String>> = decisions
        .iter()
        .map(|(n, levels, nodes, r)| {
            vec![
                n.to_string(),
                format!("{levels} ({nodes} circuits)"),
                r.sessions.to_string(),
                r.calls.to_string(),
                format!("{:.3} ms", r.decision_ns[0] as f64 / 1e6),
                format!("{:.3} ms", r.decision_ns[1] as f64 / 1e6),
                format!("{:.3} ms", r.decision_ns[2] as f64 / 1e6),
            ]
        })
        .collect();
    print_table(
        &[
            "chargers",
            "levels below grid",
            "sessions",
            "calls",
            "step p50",
            "step p99",
            "step max",
        ],
        &cells,
    );

    // Goals, for voltyard's rows.
    let mut goals = Vec::new();
    let mut lines = Vec::new();
    let mut judge = |goal: &str, site: &str, value: String, verdict: Option<bool>| {
        let pass = match verdict {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        };
        lines.push(vec![
            goal.to_string(),
            site.to_string(),
            value.clone(),
            pass.to_string(),
        ]);
        goals.push(json!({"goal": goal, "site": site, "value": value, "pass": verdict}));
    };
    for r in rows.iter().filter(|r| r.run.controller == "voltyard") {
        let x = &r.run;
        judge(
            "0 preventable violations",
            &x.site,
            format!("{:.1} A·s", x.preventable_as),
            Some(x.preventable_as == 0.0),
        );
        let (goal, share) = if x.site.starts_with("ample") {
            ("≥ 97 % of the optimum's energy", GOAL_AMPLE)
        } else {
            ("≥ 90 % of the optimum's energy", GOAL_TIGHT)
        };
        judge(goal, &x.site, pct(r.of_optimum), r.of_optimum.map(|o| o >= share));
        judge(
            "Jain ≥ 0.97",
            &x.site,
            format!("{:.3}", x.jain),
            Some(x.jain >= GOAL_JAIN),
        );
        judge(
            "≤ 10 profile messages per charger-hour",
            &x.site,
            format!("{:.2}", x.msgs_per_charger_hour()),
            Some(x.msgs_per_charger_hour() <= GOAL_MSGS),
        );
    }
    let at_goal = decisions.iter().find(|d| d.0 == GOAL_P99_N);
    judge(
        "decision p99 ≤ 5 ms, 5,000 chargers, three levels",
        &at_goal.map(|d| format!("tight-{}", d.0)).unwrap_or_else(|| "-".into()),
        at_goal
            .map(|d| format!("{:.3} ms", d.3.decision_ns[1] as f64 / 1e6))
            .unwrap_or_else(|| "not run".into()),
        at_goal
            .filter(|_| !opts.quick)
            .map(|d| d.1 >= 3 && (d.3.decision_ns[1] as f64 / 1e6) <= GOAL_P99_MS),
    );
    print_table(&["goal (voltyard)", "site", "value", "pass"], &lines);
    goals
}

/// `--quick` asserts no timing: every controller ran on every site, the LP
/// solved with a positive optimum, voltyard's step never returned an error.
fn smoke_check(rows: &[Row], decisions: &[(usize, usize, usize, Run)]) -> Result<()> {
    let mut problems = Vec::new();
    if rows.len() != 8 {
        problems.push(format!("{} runs instead of 8", rows.len()));
    }
    if rows.iter().all(|r| r.run.sessions == 0) {
        problems.push("no sessions were generated".into());
    }
    for r in rows {
        if r.of_optimum.is_none() {
            problems.push(format!("{}: no optimum", r.run.site));
        }
        if r.run.controller != "unmanaged" && r.run.calls == 0 {
            problems.push(format!("{} on {}: never called", r.run.controller, r.run.site));
        }
    }
    for r in rows.iter().map(|r| &r.run).chain(decisions.iter().map(|d| &d.3)) {
        let errors = r.json["notes"]["step_errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            problems.push(format!(
                "voltyard's step failed {errors} times on {}: {}",
                r.site, r.json["notes"]["first_error"]
            ));
        }
    }
    if !problems.is_empty() {
        bail!("bench dlm --quick: {}", problems.join("\n"));
    }
    Ok(())
}
