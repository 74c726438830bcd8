//! `cargo xtask fuzz [--secs N] [target...]`: runs the cargo-fuzz targets of `fuzz/` for N
//! seconds each (600 by default, every target when none is named), each on a corpus in
//! `target/fuzz-corpus/<target>` seeded from the Litestream 0.3.13 fixtures
//! (`../shared/fixtures`), and prints per target the runs, the corpus size and the crashes.
//!
//! Seeds: decoded WAL segments for `wal_reader`, the `.lz4` files for `lz4_reader`, the
//! encrypted replica's files for `age_reader` (run with the fixture's key, so they decrypt),
//! replica file and folder names for `path_parser`, and the `litestream.yml` files of the
//! fixtures and `examples/` for `config_parser`. libFuzzer's log of each run is kept beside the
//! corpus (`<target>.log`); a crash leaves its input in `fuzz/artifacts/<target>/`, and the task
//! exits non-zero.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::command::Cmd;
use crate::tools;

/// The fuzz targets, in the order they run.
const TARGETS: &[&str] = &[
    "wal_reader",
    "lz4_reader",
    "age_reader",
    "path_parser",
    "config_parser",
];

/// Seconds per target when `--secs` is not given.
const DEFAULT_SECS: u64 = 600;

/// Seeds larger than this are cut (WAL) or left out (LZ4, age): big inputs slow every run.
const MAX_SEED: usize = 64 * 1024;

/// What one target's run gave.
struct Outcome {
    target: &'static str,
    runs: u64,
    corpus: usize,
    crashes: Vec<PathBuf>,
    secs: u64,
}

/// Parses the arguments, seeds, builds and runs the targets, and prints a table.
///
/// # Errors
///
/// On a bad argument, a build failure, when a target cannot run, or when any target crashed.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let (secs, targets) = parse_args(args)?;
    let fixtures = root.join("..").join("shared").join("fixtures");
    if !fixtures.is_dir() {
        bail!(
            "the Litestream 0.3.13 fixtures are missing: expected {}",
            fixtures.display()
        );
    }
    tools::ensure_cargo_tool(root, "fuzz", "cargo-fuzz")?;
    let path = tools::path_with_tools(root)?;
    Cmd::cargo(root)
        .envs([("PATH", &path)])
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "build"])
        .run()?;

    let mut outcomes = Vec::new();
    for target in targets {
        let corpus = root.join("target").join("fuzz-corpus").join(target);
        fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let seeds = seed(target, &fixtures, root, &corpus)?;
        println!(
            "fuzz: {target}: {seeds} seed(s) written to {}",
            corpus.display()
        );
        outcomes.push(run_target(root, &path, &fixtures, target, &corpus, secs)?);
    }

    println!();
    println!(
        "{:<14} {:>6} {:>12} {:>10} {:>7} {:>8}",
        "target", "secs", "runs", "runs/s", "corpus", "crashes"
    );
    for o in &outcomes {
        let rate = o.runs.checked_div(o.secs.max(1)).unwrap_or(0);
        println!(
            "{:<14} {:>6} {:>12} {:>10} {:>7} {:>8}",
            o.target,
            o.secs,
            o.runs,
            rate,
            o.corpus,
            o.crashes.len()
        );
    }
    let crashed: Vec<_> = outcomes.iter().filter(|o| !o.crashes.is_empty()).collect();
    if crashed.is_empty() {
        return Ok(());
    }
    for o in &crashed {
        for crash in &o.crashes {
            println!("fuzz: {}: crash input {}", o.target, crash.display());
        }
    }
    bail!(
        "{} target(s) crashed; reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <input>`",
        crashed.len()
    )
}

/// `[--secs N] [target...]` into the seconds per target and the targets.
fn parse_args(args: &[String]) -> Result<(u64, Vec<&'static str>)> {
    let mut secs = DEFAULT_SECS;
    let mut targets = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--secs" {
            let value = iter.next().context("--secs needs a number of seconds")?;
            secs = value
                .parse()
                .with_context(|| format!("--secs: not a number of seconds: {value:?}"))?;
        } else if let Some(value) = arg.strip_prefix("--secs=") {
            secs = value
                .parse()
                .with_context(|| format!("--secs: not a number of seconds: {value:?}"))?;
        } else if let Some(target) = TARGETS.iter().find(|t| **t == arg.as_str()) {
            targets.push(*target);
        } else {
            bail!(
                "unknown fuzz target or flag {arg:?}; targets: {}",
                TARGETS.join(", ")
            );
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    Ok((secs, targets))
}

/// Writes the seeds of `target` into `corpus` (named `seed-*`, so re-seeding overwrites them);
/// returns how many.
fn seed(target: &str, fixtures: &Path, root: &Path, corpus: &Path) -> Result<usize> {
    let files = walk(fixtures)?;
    let name_of = |path: &Path| -> String {
        let rel = path.strip_prefix(fixtures).unwrap_or(path);
        rel.to_string_lossy().replace(['/', '\\'], "_")
    };
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    match target {
        "wal_reader" => {
            for path in files.iter().filter(|p| has_suffix(p, ".wal.lz4")) {
                if is_encrypted(path) {
                    continue;
                }
                let mut wal = decode_lz4(path)?;
                wal.truncate(MAX_SEED);
                seeds.push((name_of(path), wal));
            }
        }
        "lz4_reader" => {
            for path in files.iter().filter(|p| has_suffix(p, ".lz4")) {
                let bytes = read(path)?;
                if !is_encrypted(path) && bytes.len() <= MAX_SEED {
                    seeds.push((name_of(path), bytes));
                }
            }
        }
        "age_reader" => {
            for path in files.iter().filter(|p| has_suffix(p, ".lz4")) {
                let bytes = read(path)?;
                if is_encrypted(path) && bytes.len() <= MAX_SEED {
                    seeds.push((name_of(path), bytes));
                }
            }
        }
        "path_parser" => {
            let mut names = BTreeSet::new();
            for path in &files {
                let rel = path.strip_prefix(fixtures).unwrap_or(path);
                for component in rel.components() {
                    names.insert(component.as_os_str().to_string_lossy().into_owned());
                }
            }
            for (i, name) in names.into_iter().enumerate() {
                seeds.push((format!("{i:04}"), name.into_bytes()));
            }
        }
        "config_parser" => {
            let examples = root.join("examples").join("litestream.yml");
            for path in files
                .iter()
                .filter(|p| has_suffix(p, ".yml"))
                .chain(std::iter::once(&examples))
            {
                seeds.push((name_of(path), read(path)?));
            }
            for (i, text) in CONFIG_SEEDS.iter().enumerate() {
                seeds.push((format!("builtin-{i}"), text.as_bytes().to_vec()));
            }
        }
        other => bail!("no seeds for fuzz target {other:?}"),
    }
    if seeds.is_empty() {
        bail!("no seeds found for {target} in {}", fixtures.display());
    }
    for (name, bytes) in &seeds {
        let path = corpus.join(format!("seed-{name}"));
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(seeds.len())
}

/// Configs with the keys and forms the fixtures lack: durations, env references, cloud URLs.
const CONFIG_SEEDS: &[&str] = &[
    "addr: \":9090\"\nexec: sleep 1\nlogging:\n  level: debug\n  type: json\n  stderr: true\n",
    "access-key-id: $AWS_ACCESS_KEY_ID\nsecret-access-key: ${AWS_SECRET_ACCESS_KEY}\ndbs:\n  - path: ~/app.db\n    monitor-interval: 1s\n    checkpoint-interval: 1m30s\n    min-checkpoint-page-count: 10\n    max-checkpoint-page-count: 100\n    replicas:\n      - url: s3://bucket/app.db?region=us-east-1&endpoint=http://127.0.0.1:9000\n        retention: 24h\n        retention-check-interval: 1h\n        snapshot-interval: 1h\n        validation-interval: 0\n        sync-interval: 250ms\n",
    "dbs:\n  - path: /db\n    meta-path: /meta\n    replicas:\n      - type: sftp\n        host: example.com:22\n        user: u\n        password: p\n        path: /r\n        key-path: ~/.ssh/id\n      - type: abs\n        account-name: a\n        account-key: k\n        bucket: b\n        path: p\n      - type: gcs\n        bucket: b\n        path: p\n      - url: file:///tmp/r\n        name: local\n        sync-interval: -1.5h\n",
    "dbs:\n- path: ${DB:-x}\n  replicas: [{path: r, sync-interval: 1.5\u{b5}s, retention: 1e3s}]\n",
];

/// Runs one target for `secs` seconds on `corpus` and reads libFuzzer's final stats.
fn run_target(
    root: &Path,
    path: &std::ffi::OsStr,
    fixtures: &Path,
    target: &'static str,
    corpus: &Path,
    secs: u64,
) -> Result<Outcome> {
    let artifacts = root.join("fuzz").join("artifacts").join(target);
    let before = list(&artifacts);
    let log_path = corpus.with_extension("log");
    let log = fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!(
        "$ cargo fuzz run {target} {} -- -max_total_time={secs}  (log: {})",
        corpus.display(),
        log_path.display()
    );
    let started = Instant::now();
    let status = Command::new(cargo)
        .current_dir(root)
        .env("PATH", path)
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "LS_FUZZ_AGE_IDENTITY",
            fixtures.join("age-encrypted").join("age-identity.txt"),
        )
        .args(["fuzz", "run", target])
        .arg(corpus)
        .args([
            "--".to_owned(),
            format!("-max_total_time={secs}"),
            format!("-max_len={MAX_SEED}"),
            "-timeout=30".to_owned(),
            "-print_final_stats=1".to_owned(),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot run cargo fuzz run {target}"))?;
    let elapsed = started.elapsed().as_secs();
    let mut text = String::new();
    fs::File::open(&log_path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .with_context(|| format!("cannot read {}", log_path.display()))?;
    let runs = final_stat(&text, "stat::number_of_executed_units").unwrap_or(0);
    let crashes: Vec<PathBuf> = list(&artifacts).difference(&before).cloned().collect();
    if !status.success() && crashes.is_empty() {
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        for line in tail.iter().rev() {
            println!("  {line}");
        }
        bail!("cargo fuzz run {target} failed ({status}) without a crash input");
    }
    let corpus_size = list(corpus).len();
    println!(
        "fuzz: {target}: {runs} runs in {elapsed} s, corpus {corpus_size}, crashes {}",
        crashes.len()
    );
    Ok(Outcome {
        target,
        runs,
        corpus: corpus_size,
        crashes,
        secs: elapsed,
    })
}

/// The value of libFuzzer's `-print_final_stats` line `key: value`.
fn final_stat(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .filter_map(|line| line.strip_prefix(key))
        .filter_map(|rest| rest.trim_start_matches(':').trim().parse().ok())
        .next_back()
}

/// The files directly in `dir` (none when it does not exist).
fn list(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect()
}

/// Every file under `dir`, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn has_suffix(path: &Path, suffix: &str) -> bool {
    path.to_string_lossy().ends_with(suffix)
}

/// Whether `path` sits in the age-encrypted fixture (its files are `age(lz4(data))`).
fn is_encrypted(path: &Path) -> bool {
    path.components()
        .any(|component| component.as_os_str() == "age-encrypted")
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The decoded content of the LZ4 frame at `path`.
fn decode_lz4(path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    lz4_flex::frame::FrameDecoder::new(fs::File::open(path)?)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot decode the LZ4 frame {}", path.display()))?;
    Ok(out)
}
