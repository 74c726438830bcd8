//! Compatibility with Litestream 0.3.13 on the replicas it wrote (`../shared/fixtures`).
//!
//! `generations`, `snapshots` and `wal` must print exactly what 0.3.13 prints, and exit the same,
//! for every replica URL of every case and for the config form of config-driven cases. The one
//! exception is the `lag` column of `generations`: it is measured against the clock, so it is
//! dropped from both outputs before comparing (after splitting each line into fields on runs of
//! two or more spaces, since the column's width changes the padding of the others).
//!
//! The `harness_*` tests prove the harness by running the real Litestream on both sides and
//! through every `restores` entry; our own restore is checked against the same entries by the
//! restore tests, with [`run_restore_case`].

use std::path::Path;

use crate::support::fixtures::{Case, Expected, Run, our_bin, reference_bin, run_restore_case};

#[test]
fn generations_of_every_fixture_matches_litestream() {
    assert_listings_match("generations", &our_bin(), &reference_bin());
}

#[test]
fn snapshots_of_every_fixture_matches_litestream() {
    assert_listings_match("snapshots", &our_bin(), &reference_bin());
}

#[test]
fn wal_of_every_fixture_matches_litestream() {
    assert_listings_match("wal", &our_bin(), &reference_bin());
}

#[test]
fn harness_listings_of_litestream_against_itself_agree() {
    let reference = reference_bin();
    for command in ["generations", "snapshots", "wal"] {
        assert_listings_match(command, &reference, &reference);
    }
}

#[test]
fn harness_restores_with_litestream_give_every_expected_outcome() {
    let reference = reference_bin();
    let mut problems = Vec::new();
    let mut n_checked = 0_usize;
    for case in Case::all() {
        for spec in case.restores() {
            let outcome = run_restore_case(&case, &spec, &reference);
            n_checked += 1;
            if let Err(problem) = outcome.check(&case, &spec) {
                problems.push(problem);
            }
            // 0.3.13's own message is recorded in the fixture: the harness must see it, on
            // stdout (where 0.3.13 logs) or stderr.
            let printed = format!("{}{}", outcome.run.stdout, outcome.run.stderr);
            if let Expected::Fails {
                litestream_error, ..
            } = &spec.expected
                && !printed.contains(litestream_error.as_str())
            {
                problems.push(format!(
                    "case {} restore {}: output lacks {litestream_error:?}: {}",
                    case.name(),
                    spec.name,
                    printed.trim()
                ));
            }
        }
    }
    assert!(n_checked > 0, "no restores entry in any fixture");
    assert!(
        problems.is_empty(),
        "the real Litestream 0.3.13 disagrees with the fixtures ({} of {n_checked}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn mask_log_time_with_different_times_keeps_the_message() {
    let first =
        "time=2026-11-25T21:55:27.601Z level=ERROR msg=\"failed to run\" error=\"stat x\"\n";
    let second =
        "time=2026-11-25T21:55:28.002Z level=ERROR msg=\"failed to run\" error=\"stat x\"\n";
    assert_eq!(mask_log_time(first), mask_log_time(second));
    assert_eq!(
        mask_log_time(first),
        "time=<masked> level=ERROR msg=\"failed to run\" error=\"stat x\"\n"
    );
    assert_eq!(mask_log_time("a  b\n"), "a  b\n");
}

#[test]
fn mask_lag_with_different_widths_keeps_other_fields() {
    let short =
        "name  generation        lag   start\nfile  5741e5b3465e37e1  25ms  2026-11-25T21:46:51Z\n";
    let long = "name  generation        lag        start\nfile  5741e5b3465e37e1  1h2m3.5s  2026-11-25T21:46:51Z\n";
    assert_eq!(mask_lag(short), mask_lag(long));
    assert_eq!(
        mask_lag(short),
        vec![
            vec!["name", "generation", "start"],
            vec!["file", "5741e5b3465e37e1", "2026-11-25T21:46:51Z"],
        ]
    );
}

/// Runs `command` on every replica of every case with both binaries and asserts they agree.
fn assert_listings_match(command: &str, ours: &Path, reference: &Path) {
    let mut mismatches = Vec::new();
    let mut n_compared = 0_usize;
    for case in Case::all() {
        for args in listing_args(&case, command) {
            let our_run = case.run(ours, &args);
            let reference_run = case.run(reference, &args);
            n_compared += 1;
            if let Some(mismatch) = compare_listing(command, &our_run, &reference_run) {
                mismatches.push(format!(
                    "case {}: `litestream {}`: {mismatch}",
                    case.name(),
                    args.join(" ")
                ));
            }
        }
    }
    assert!(n_compared > 0, "no listing compared");
    assert!(
        mismatches.is_empty(),
        "`{command}` differs from Litestream 0.3.13 in {} of {n_compared} runs:\n\n{}",
        mismatches.len(),
        mismatches.join("\n\n")
    );
}

/// The invocations of `command` for a case: each replica URL, and the config form when the case
/// has a `litestream.yml`, for all replicas and for each named one (`-replica NAME`).
fn listing_args(case: &Case, command: &str) -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = case
        .replica_paths()
        .iter()
        .map(|path| {
            vec![
                command.to_owned(),
                format!("file://{}/{path}", case.dir().display()),
            ]
        })
        .collect();
    if let Some(db) = case.config_db_path() {
        let config = |extra: &[&str]| {
            let mut args = vec![command, "-config", "litestream.yml"];
            args.extend_from_slice(extra);
            args.push(&db);
            args.into_iter().map(str::to_owned).collect()
        };
        all.push(config(&[]));
        for name in case.config_replica_names() {
            all.push(config(&["-replica", &name]));
        }
    }
    all
}

/// `None` when the runs agree: same exit code, same stdout (`lag` masked for `generations`).
fn compare_listing(command: &str, ours: &Run, reference: &Run) -> Option<String> {
    let (our_stdout, reference_stdout) = (
        mask_log_time(&ours.stdout),
        mask_log_time(&reference.stdout),
    );
    let same_stdout = if command == "generations" {
        mask_lag(&our_stdout) == mask_lag(&reference_stdout)
    } else {
        our_stdout == reference_stdout
    };
    let same_exit = ours.status.code() == reference.status.code();
    if same_stdout && same_exit {
        return None;
    }
    Some(format!(
        "exit {:?} (0.3.13: {:?})\n--- ours: stdout\n{}--- ours: stderr\n{}--- 0.3.13: stdout\n{}",
        ours.status.code(),
        reference.status.code(),
        ours.stdout,
        ours.stderr,
        reference.stdout
    ))
}

/// `stdout` with the time of each log line masked: 0.3.13 logs errors to stdout, as
/// `time=2026-11-25T21:55:27.601Z level=ERROR msg="failed to run" error="..."`.
fn mask_log_time(stdout: &str) -> String {
    stdout
        .lines()
        .map(|line| match line.strip_prefix("time=") {
            Some(rest) => {
                let after_time = rest.find(' ').map_or("", |space| &rest[space..]);
                format!("time=<masked>{after_time}\n")
            }
            None => format!("{line}\n"),
        })
        .collect()
}

/// The fields of each line (split on runs of two or more spaces) without the `lag` column.
fn mask_lag(stdout: &str) -> Vec<Vec<&str>> {
    let rows: Vec<Vec<&str>> = stdout.lines().map(fields).collect();
    let lag = rows
        .first()
        .and_then(|header| header.iter().position(|field| *field == "lag"));
    rows.into_iter()
        .map(|mut row| {
            if let Some(lag) = lag.filter(|lag| *lag < row.len()) {
                row.remove(lag);
            }
            row
        })
        .collect()
}

/// A tabwriter line's fields: Go's tabwriter pads with at least two spaces.
fn fields(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|field| !field.is_empty())
        .collect()
}
