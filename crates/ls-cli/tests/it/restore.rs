//! `litestream restore` on the replicas Litestream 0.3.13 wrote: every fixture restore gives
//! the expected rows and leaves nothing behind, point-in-time restores match 0.3.13's output
//! byte for byte, damaged replicas fail naming the object at fault, and the flags behave as
//! 0.3.13's.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::fixtures::{
    Case, Expected, RestoreSpec, db_summary, our_bin, reference_bin, run_restore_case,
};

/// The replica folder of a single-replica case, and its only generation's folder.
fn generation_dir(case: &Case) -> PathBuf {
    let generations = case.dir().join("replica").join("generations");
    let mut entries: Vec<PathBuf> = fs::read_dir(&generations)
        .expect("a fixture replica has generations/")
        .map(|entry| entry.expect("generations/ lists").path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 1, "{}", generations.display());
    entries.remove(0)
}

/// The WAL segment files of a generation, sorted by name (index, then offset).
fn segments(generation: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(generation.join("wal"))
        .expect("a fixture generation has wal/")
        .map(|entry| entry.expect("wal/ lists").path())
        .collect();
    files.sort();
    files
}

/// Runs `restore -o {OUT} file://{CASE}/replica` with our binary plus `extra` flags.
fn restore_url(case: &Case, extra: &[&str]) -> crate::support::fixtures::RestoreOutcome {
    let mut args: Vec<String> = vec!["restore".into()];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.extend(["-o".into(), "{OUT}".into(), "file://{CASE}/replica".into()]);
    let spec = RestoreSpec {
        name: "adhoc".into(),
        args,
        expected: Expected::Fails {
            litestream_error: String::new(),
            litestream_leaves: Vec::new(),
        },
    };
    run_restore_case(case, &spec, &our_bin())
}

/// Asserts a failed run: non-zero exit, no output, nothing left beside it, and stderr naming
/// `needle`.
fn assert_failed_cleanly(outcome: &crate::support::fixtures::RestoreOutcome, needle: &str) {
    assert!(
        !outcome.run.status.success(),
        "expected a failure; stderr: {}",
        outcome.run.stderr
    );
    assert!(
        !outcome.out.exists(),
        "output {} exists",
        outcome.out.display()
    );
    assert!(outcome.leftovers.is_empty(), "left {:?}", outcome.leftovers);
    let output = format!("{}{}", outcome.run.stderr, outcome.run.stdout);
    assert!(output.contains(needle), "{needle:?} not in: {output}");
}

#[test]
fn restore_every_fixture_case_gives_expected_rows_and_leaves_nothing() {
    let mut problems = Vec::new();
    for case in Case::all() {
        for spec in case.restores() {
            let outcome = run_restore_case(&case, &spec, &our_bin());
            if let Err(problem) = outcome.check(&case, &spec) {
                problems.push(problem);
            }
            if !outcome.leftovers.is_empty() {
                problems.push(format!(
                    "case {} restore {}: left {:?}",
                    case.name(),
                    spec.name,
                    outcome.leftovers
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn restore_point_in_time_matches_litestream_byte_for_byte() {
    let mut compared = 0;
    for case in Case::all() {
        for spec in case.restores() {
            let point_in_time = spec
                .args
                .iter()
                .any(|arg| arg == "-timestamp" || arg == "-index");
            if !point_in_time || !matches!(spec.expected, Expected::Rows { .. }) {
                continue;
            }
            let ours = run_restore_case(&case, &spec, &our_bin());
            let theirs = run_restore_case(&case, &spec, &reference_bin());
            let what = format!("case {} restore {}", case.name(), spec.name);
            assert!(ours.run.status.success(), "{what}: {}", ours.run.stderr);
            assert!(theirs.run.status.success(), "{what}: {}", theirs.run.stderr);
            assert_eq!(ours.db, theirs.db, "{what}: contents differ");
            let (our_bytes, their_bytes) =
                (fs::read(&ours.out).unwrap(), fs::read(&theirs.out).unwrap());
            assert!(our_bytes == their_bytes, "{what}: database files differ");
            compared += 1;
        }
    }
    assert!(
        compared >= 5,
        "only {compared} point-in-time restores compared"
    );
}

#[test]
fn restore_segment_with_flipped_page_byte_fails_naming_it() {
    let case = Case::load("basic");
    let segment = segments(&generation_dir(&case))[1].clone();
    let mut wal = ls_core::decompress(&fs::read(&segment).unwrap()).unwrap();
    // The segment holds whole frames (24-byte header + page): flip a byte inside the first page.
    wal[24 + 100] ^= 0x55;
    fs::write(&segment, ls_core::compress(&wal)).unwrap();
    let outcome = restore_url(&case, &[]);
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert_failed_cleanly(&outcome, &name);
    assert_failed_cleanly(&outcome, "checksum");
}

#[test]
fn restore_missing_middle_segment_fails_naming_the_next() {
    let case = Case::load("basic");
    let files = segments(&generation_dir(&case));
    fs::remove_file(&files[1]).unwrap();
    let outcome = restore_url(&case, &[]);
    let next = files[2].file_name().unwrap().to_string_lossy().into_owned();
    assert_failed_cleanly(&outcome, &next);
    assert_failed_cleanly(&outcome, "missing");
}

#[test]
fn restore_truncated_snapshot_fails_naming_it() {
    let case = Case::load("large-txn");
    let generation = generation_dir(&case);
    let snapshots: Vec<PathBuf> = fs::read_dir(generation.join("snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    for snapshot in &snapshots {
        let bytes = fs::read(snapshot).unwrap();
        let file = fs::File::options().write(true).open(snapshot).unwrap();
        file.set_len(u64::try_from(bytes.len() / 2).unwrap())
            .unwrap();
    }
    let outcome = restore_url(&case, &[]);
    assert_failed_cleanly(&outcome, ".snapshot.lz4");
    assert_failed_cleanly(&outcome, "damaged");
}

#[test]
fn restore_with_wrong_age_identity_fails_naming_the_snapshot() {
    let case = Case::load("age-encrypted");
    let config = case.dir().join("litestream.yml");
    let text = fs::read_to_string(&config).unwrap();
    let key = text
        .split_whitespace()
        .find(|word| word.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    // Another valid X25519 identity (the secret key 01 02 .. 20), not the fixture's.
    let other = "AGE-SECRET-KEY-1QYPQXPQ9QCRSSZG2PVXQ6RS0ZQG3YYC5Z5TPWXQERGD3C8G7RUSQGPQYEE";
    assert!(
        text.contains(key),
        "the fixture config holds its identity inline"
    );
    fs::write(&config, text.replace(key, other)).unwrap();
    let spec = case
        .restores()
        .into_iter()
        .find(|spec| spec.args.iter().any(|arg| arg == "-config"))
        .unwrap();
    let outcome = run_restore_case(&case, &spec, &our_bin());
    assert_failed_cleanly(&outcome, "cannot decrypt snapshot");
    assert_failed_cleanly(&outcome, "no identity matches");
}

#[test]
fn restore_existing_output_is_refused_and_kept() {
    let case = Case::load("basic");
    let out = case.new_out_path();
    fs::write(&out, b"keep me").unwrap();
    let args = [
        "restore",
        "-o",
        &out.to_string_lossy(),
        "file://{CASE}/replica",
    ];
    let args: Vec<String> = case.substitute(&args.map(str::to_owned), &out);
    let run = case.run(&our_bin(), &args);
    assert!(!run.status.success());
    assert!(
        run.stderr
            .contains("cannot restore, output path already exists"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(&out).unwrap(), b"keep me");
}

#[test]
fn restore_if_db_not_exists_with_existing_output_exits_zero() {
    let case = Case::load("basic");
    let out = case.new_out_path();
    fs::write(&out, b"keep me").unwrap();
    let args = [
        "restore",
        "-if-db-not-exists",
        "-o",
        "{OUT}",
        "file://{CASE}/replica",
    ];
    let run = case.run(&our_bin(), &case.substitute(&args.map(str::to_owned), &out));
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("database already exists, skipping"));
    assert_eq!(fs::read(&out).unwrap(), b"keep me");
}

#[test]
fn restore_if_replica_exists_without_replica_exits_zero() {
    let case = Case::load("basic");
    let out = case.new_out_path();
    for (flag, success) in [(Some("-if-replica-exists"), true), (None, false)] {
        let mut args = vec!["restore".to_owned()];
        args.extend(flag.map(str::to_owned));
        args.extend(["-o".into(), "{OUT}".into(), "file://{CASE}/no-such".into()]);
        let run = case.run(&our_bin(), &case.substitute(&args, &out));
        assert_eq!(run.status.success(), success, "{flag:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("no matching backups found"),
            "{}",
            run.stderr
        );
        assert!(!out.exists());
    }
}

#[test]
fn restore_index_past_the_end_fails() {
    let case = Case::load("point-in-time");
    let outcome = restore_url(&case, &["-index", "000000ff"]);
    assert_failed_cleanly(&outcome, "index 000000ff not found");
}

#[test]
fn restore_unknown_generation_fails() {
    let case = Case::load("basic");
    for generation in ["0123456789abcdef", "not-a-generation"] {
        let outcome = restore_url(&case, &["-generation", generation]);
        assert_failed_cleanly(&outcome, "no matching backups found");
    }
}

#[test]
fn restore_bad_index_flag_prints_go_flag_error_and_usage() {
    let case = Case::load("basic");
    let outcome = restore_url(&case, &["-index", "0xff"]);
    assert_failed_cleanly(
        &outcome,
        "invalid value \"0xff\" for flag -index: invalid hexadecimal format",
    );
    assert!(
        outcome
            .run
            .stdout
            .contains("litestream restore [arguments]")
    );
}

#[test]
fn restore_parallelism_one_gives_same_database() {
    let case = Case::load("checkpoints");
    let serial = restore_url(&case, &["-parallelism", "1"]);
    let parallel = restore_url(&case, &["-parallelism", "64"]);
    assert!(serial.run.status.success(), "{}", serial.run.stderr);
    assert!(parallel.run.status.success(), "{}", parallel.run.stderr);
    assert_eq!(
        fs::read(&serial.out).unwrap(),
        fs::read(&parallel.out).unwrap()
    );
    let summary = db_summary(&serial.out);
    assert_eq!(summary.integrity, "ok");
}

#[test]
fn restore_logs_litestream_lines_and_a_summary() {
    let case = Case::load("checkpoints");
    let outcome = restore_url(&case, &[]);
    assert!(outcome.run.status.success(), "{}", outcome.run.stderr);
    let stderr = &outcome.run.stderr;
    for line in [
        "INFO restoring snapshot replica=file generation=",
        "INFO restoring wal files replica=file generation=",
        "index_min=0 index_max=13",
        "INFO applied wal replica=file generation=",
        "INFO renaming database from temporary location replica=file",
        "INFO restored database replica=file path=",
    ] {
        assert!(stderr.contains(line), "{line:?} not in:\n{stderr}");
    }
}
