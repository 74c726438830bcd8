//! `cargo xtask ci`: exactly what CI runs, in order, stopping at the first failure.
//!
//! Each step prints its elapsed time; the run ends with the line `ci: N passed, M failed` (steps),
//! the plain closing line CI reads. A step that fails names its command and exit status.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::command::Cmd;
use crate::tools::{self, Tools};

/// Runs every CI step and reports; the exit code is a failure when any step failed.
pub(crate) fn run(root: &Path) -> ExitCode {
    let has_fuzz = root.join("fuzz").join("Cargo.toml").exists();
    let mut ci = Ci {
        passed: 0,
        total: if has_fuzz { 9 } else { 8 },
        started: Instant::now(),
    };
    let result = steps(&mut ci, root, has_fuzz);
    let elapsed = format_duration(ci.started.elapsed());
    match result {
        Ok(()) => {
            println!("ci: every step passed in {elapsed}");
            println!("ci: {} passed, 0 failed", ci.passed);
            ExitCode::SUCCESS
        }
        Err(_) => {
            let skipped = ci.total - ci.passed - 1;
            println!("ci: stopped after {elapsed}; {skipped} later step(s) not run");
            println!("ci: {} passed, 1 failed", ci.passed);
            ExitCode::FAILURE
        }
    }
}

/// The steps, in CI's order.
fn steps(ci: &mut Ci, root: &Path, has_fuzz: bool) -> Result<()> {
    ci.step("fmt", || {
        Cmd::cargo(root)
            .args(["fmt", "--all", "--", "--check"])
            .run()
    })?;
    ci.step("clippy", || {
        Cmd::cargo(root)
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .run()
    })?;
    // Advisories are left out: their database is on a host these machines cannot reach.
    ci.step("deny", || {
        tools::ensure_cargo_tool(root, "deny", "cargo-deny")?;
        Cmd::cargo(root)
            .envs([("PATH", tools::path_with_tools(root)?)])
            .args(["deny", "check", "bans", "licenses", "sources"])
            .run()
    })?;
    let tools = ci.step("tools", || tools::install(root))?;
    ci.step("tests", || tests(root, &tools))?;
    // The library example replicates and restores a real database in a temporary directory.
    ci.step("examples", || {
        Cmd::cargo(root)
            .envs(tools.env())
            .args(["run", "--package", "ls-replica", "--example", "embed"])
            .run()
    })?;
    ci.step("doc tests", || {
        Cmd::cargo(root)
            .envs(tools.env())
            .args(["test", "--doc", "--workspace"])
            .run()
    })?;
    ci.step("docs", || {
        Cmd::cargo(root)
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--no-deps", "--workspace"])
            .run()
    })?;
    if has_fuzz {
        ci.step("fuzz build", || fuzz_build(root))?;
    }
    Ok(())
}

/// The workspace's tests, with nextest when it is installed.
fn tests(root: &Path, tools: &Tools) -> Result<()> {
    let has_nextest = Cmd::cargo(root)
        .envs(tools.env())
        .args(["nextest", "--version"])
        .succeeds();
    if has_nextest {
        Cmd::cargo(root)
            .envs(tools.env())
            .args(["nextest", "run", "--workspace"])
            .run()
    } else {
        println!("ci: cargo-nextest not found; running `cargo test` instead");
        Cmd::cargo(root)
            .envs(tools.env())
            .args(["test", "--workspace"])
            .run()
    }
}

/// Builds the cargo-fuzz targets. libFuzzer wants nightly; `RUSTC_BOOTSTRAP=1` lets the pinned
/// stable toolchain build them. When cargo-fuzz cannot be had, the fuzz crate is type-checked
/// instead, so its code still cannot rot.
fn fuzz_build(root: &Path) -> Result<()> {
    match tools::ensure_cargo_tool(root, "fuzz", "cargo-fuzz") {
        Ok(()) => Cmd::cargo(root)
            .envs([("PATH", tools::path_with_tools(root)?)])
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "build"])
            .run(),
        Err(err) => {
            println!("ci: no cargo-fuzz ({err:#}); checking the fuzz crate instead");
            Cmd::cargo(root)
                .args(["check", "--manifest-path", "fuzz/Cargo.toml"])
                .run()
        }
    }
}

/// Progress of a CI run.
struct Ci {
    passed: usize,
    total: usize,
    started: Instant,
}

impl Ci {
    /// Runs one step, printing its name before and its outcome and elapsed time after.
    fn step<T>(&mut self, name: &str, run: impl FnOnce() -> Result<T>) -> Result<T> {
        let number = self.passed + 1;
        println!("ci: [{number}/{}] {name}", self.total);
        let started = Instant::now();
        let result = run();
        let elapsed = format_duration(started.elapsed());
        match &result {
            Ok(_) => {
                self.passed += 1;
                println!("ci: [{number}/{}] {name}: ok in {elapsed}", self.total);
            }
            Err(err) => {
                println!(
                    "ci: [{number}/{}] {name}: FAILED after {elapsed}: {err:#}",
                    self.total
                );
            }
        }
        result
    }
}

/// `12.3s`, or `2m05.0s` from a minute on.
fn format_duration(elapsed: Duration) -> String {
    let tenths = elapsed.as_millis() / 100;
    let (minutes, tenths) = (tenths / 600, tenths % 600);
    if minutes == 0 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        format!("{minutes}m{:02}.{}s", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::format_duration;

    #[test]
    fn format_duration_under_and_over_a_minute_reads_well() {
        assert_eq!(format_duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(format_duration(Duration::from_millis(125_050)), "2m05.0s");
    }
}
