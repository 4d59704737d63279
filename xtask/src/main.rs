//! `cargo xtask <task>`: the project's one script runner.
//!
//! - `ci`: format check, clippy with warnings as errors, the whole test
//!   suite, the tariff cross-check against ocpi-tariffs
//!   (`crosscheck/tariffs`), and the interop test against the PyPI `ocpp`
//!   library.
//! - `interop`: only the interop test.
//! - `dist`: the static release binary, with proof that it is static.
//! - `bench ocpp`: the OCPP load benchmark (see docs/benchmarks.md).
//! - `bench dlm`: the load-management benchmark (same document).
//!
//! Hidden, for `bench` to start as child processes of its own:
//! `loadgen` (the charge points) and `echo-server` (the yardstick).

mod bench;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().cloned().unwrap_or_default();
    let rest = args.get(1..).unwrap_or_default();
    let root = root();
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "ci" => ci(),
        "interop" => interop(),
        "dist" => dist().map(|_| ()),
        "bench" => bench::bench(&root, rest),
        "loadgen" => bench::loadgen(rest),
        "echo-server" => bench::echo_server(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|interop|dist|bench>\n\n  ci       fmt check, clippy -D warnings, tests, tariff cross-check, bench ocpp --quick, bench dlm --quick, interop\n  interop  drive the server with the PyPI `ocpp` library as charge points\n  dist     build the static binary (target/{TARGET}/release/voltyard)\n  bench    {}",
                bench::USAGE
            );
            bail!("unknown task {task:?}")
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace"]))?;
    crosscheck_tariffs()?;
    // The smoke run of `cargo xtask bench ocpp --quick`: every phase against
    // the release server, no timing asserted.
    bench::bench(&root(), &["ocpp".to_string(), "--quick".to_string()])?;
    bench::bench(&root(), &["dlm".to_string(), "--quick".to_string()])?;
    interop()
}

/// The tariff engine against ocpi-tariffs (docs/tariffs.md): its own
/// workspace, because ocpi-tariffs pins a rust_decimal ours cannot share a
/// graph with; its own target dir, so its builds do not evict ours (~5 min
/// cold).
fn crosscheck_tariffs() -> Result<()> {
    run(cargo()
        .args(["test", "--manifest-path", "crosscheck/tariffs/Cargo.toml"])
        .env("CARGO_TARGET_DIR", root().join("target/crosscheck")))
}

fn interop() -> Result<()> {
    let probe = Command::new("python3").args(["-c", "import ocpp, websockets"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        bail!(
            "the interop test needs Python with the `ocpp` package: python3 -m pip install -r tests/interop/requirements.txt"
        );
    }
    run(cargo().args(["build", "--bin", "voltyard"]))?;
    let bin = root().join("target/debug/voltyard");
    // PyPI `ocpp` as the charge points, then as the CSMS our simulator drives.
    for script in [
        "tests/interop/ocpp_py_interop.py",
        "tests/interop/sim_vs_ocpp_py.py",
        "tests/interop/operations_interop.py",
        "tests/interop/firmware_interop.py",
        "tests/interop/device_model_interop.py",
        "tests/interop/security_interop.py",
        "tests/interop/pnc_interop.py",
    ] {
        run(Command::new("python3").arg(script).arg("--bin").arg(&bin))?;
    }
    Ok(())
}

fn dist() -> Result<PathBuf> {
    run(cargo()
        .args(["build", "--release", "--bin", "voltyard", "--target", TARGET])
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    let bin = root().join(format!("target/{TARGET}/release/voltyard"));
    let size = std::fs::metadata(&bin)
        .with_context(|| format!("{} was not built", bin.display()))?
        .len();
    println!("{}: {:.1} MiB", bin.display(), size as f64 / (1024.0 * 1024.0));
    let file = Command::new("file").arg(&bin).output();
    if let Ok(out) = &file {
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    // ldd exits non-zero on a static executable; that is the proof we want.
    let ldd = Command::new("ldd").arg(&bin).output().context("cannot run ldd")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    print!("ldd: {said}");
    let is_static = said.contains("not a dynamic executable") || said.contains("statically linked");
    if !is_static {
        bail!("{} is dynamically linked", bin.display());
    }
    println!("static: yes");
    Ok(bin)
}
