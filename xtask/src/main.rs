//! `cargo xtask`: the project's developer and CI tasks, in plain Rust.
//!
//! Bare `cargo xtask` lists the tasks. `ci` is exactly what CI runs (`.ci/run` calls it), so a
//! green `cargo xtask ci` here means a green CI. The tidy checks of the house style are the
//! `#[test]`s of `tidy.rs`, run by the test step of `ci` like every other test.

// xtask talks to the developer on the terminal: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_replicate;
mod bench_s3;
mod chart;
mod ci;
mod command;
mod dist;
mod fuzz;
mod soak;
#[cfg(test)]
mod tidy;
mod tools;

use std::env;
use std::path::PathBuf;
use std::process::ExitCode;

/// The tasks, in the order `cargo xtask` lists them.
const TASKS: &[(&str, &str)] = &[
    (
        "ci",
        "exactly what CI runs: fmt, clippy, deny, tools, tests, examples, doc tests, docs, fuzz build",
    ),
    (
        "bench",
        "`bench restore|replicate`: our release build against Litestream 0.3.13 (time, lag, CPU, RSS)",
    ),
    (
        "fuzz",
        "`fuzz [--secs N] [target...]`: each cargo-fuzz target N s (600) on a fixture-seeded corpus",
    ),
    (
        "soak",
        "`soak [--mins N] [--bin P]`: N min (30) of replicate under a mixed load: flat RSS, no errors, exact restore",
    ),
    (
        "dist",
        "release tarball in target/dist: stripped litestream, man pages, completions, SHA-256",
    ),
    (
        "tools",
        "install what the tests need into target/tools (reference Litestream 0.3.13, cargo-deny, sqlite3)",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            print_tasks();
            ExitCode::SUCCESS
        }
        Some("bench") => match bench::run(&root, &args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: bench: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some("fuzz") => match fuzz::run(&root, &args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: fuzz: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some("soak") => match soak::run(&root, &args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: soak: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some(task) if args.len() > 1 => {
            eprintln!(
                "error: task `{task}` takes no arguments, got {:?}",
                &args[1..]
            );
            ExitCode::FAILURE
        }
        Some("ci") => ci::run(&root),
        Some("dist") => match dist::run(&root) {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: dist: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some("tools") => match tools::install(&root) {
            Ok(tools) => {
                println!("tools: ready; tests find them with:");
                for (key, value) in tools.env() {
                    println!("  export {key}={}", value.to_string_lossy());
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: tools: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some(task) => {
            eprintln!("error: unknown task `{task}`");
            print_tasks();
            ExitCode::FAILURE
        }
    }
}

fn print_tasks() {
    println!("usage: cargo xtask <task>\n\ntasks:");
    for (name, what) in TASKS {
        println!("  {name:<7} {what}");
    }
}

/// The workspace root: xtask lives in `<root>/xtask`.
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), PathBuf::from)
}
