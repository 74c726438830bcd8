//! `databases`, `generations`, `snapshots` and `wal` on hand-made replicas: Litestream's table
//! layout, ordering and time formats (spec 9.5-9.9). Replicas written by the real Litestream are
//! compared in `compat.rs`.

use crate::support::cli::TestEnv;

const GEN_A: &str = "0123456789abcdef";
const GEN_B: &str = "fedcba9876543210";

/// A replica in `rep/`: generation A with snapshots at index 0 and 2 and three WAL segments,
/// generation B with one snapshot, and a directory that is not a generation. The database
/// `app.db` was written at T0 + 140 s.
fn env_with_replica() -> TestEnv {
    let env = TestEnv::new();
    env.write_sized(
        &format!("rep/generations/{GEN_A}/snapshots/00000000.snapshot.lz4"),
        10,
        0,
    );
    env.write_sized(
        &format!("rep/generations/{GEN_A}/snapshots/00000002.snapshot.lz4"),
        20,
        30,
    );
    env.write_sized(
        &format!("rep/generations/{GEN_A}/wal/00000000_00000000.wal.lz4"),
        5,
        0,
    );
    env.write_sized(
        &format!("rep/generations/{GEN_A}/wal/00000000_00001020.wal.lz4"),
        6,
        10,
    );
    env.write_sized(
        &format!("rep/generations/{GEN_A}/wal/00000001_00000000.wal.lz4"),
        7,
        20,
    );
    env.write_sized(
        &format!("rep/generations/{GEN_B}/snapshots/00000000.snapshot.lz4"),
        3,
        100,
    );
    env.write_sized(
        "rep/generations/not-a-generation/snapshots/00000000.snapshot.lz4",
        1,
        0,
    );
    env.write_sized("app.db", 4096, 140);
    let rep = env.join("rep");
    env.write(
        "ls.yml",
        &format!(
            "dbs:\n  - path: ./app.db\n    replicas:\n      - path: {}\n      - name: second\n        url: file://{}/missing\n",
            rep.display(),
            env.path().display()
        ),
    );
    env
}

#[test]
fn databases_lists_paths_and_replica_names() {
    let env = env_with_replica();
    env.write(
        "two.yml",
        "dbs:\n  - path: /data/app.db\n    replicas:\n      - path: /b\n      - name: second\n        url: file:///c\n  - path: /data/x.db\n",
    );
    let out = env.run(&["databases", "-config", "two.yml"]);
    assert_eq!(out.code, Some(0));
    assert_eq!(
        out.stdout,
        "path          replicas\n/data/app.db  file,second\n/data/x.db    \n"
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn snapshots_config_form_lists_every_generation_by_index() {
    let env = env_with_replica();
    let db = env.join("app.db");
    let out = env.run(&["snapshots", "-config", "ls.yml", db.to_str().unwrap()]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    assert_eq!(
        out.stdout,
        format!(
            "replica  generation        index  size  created\n\
             file     {GEN_A}  0      10    2026-11-25T19:28:08Z\n\
             file     {GEN_A}  2      20    2026-11-25T19:28:38Z\n\
             file     {GEN_B}  0      3     2026-11-25T19:29:48Z\n"
        )
    );
}

#[test]
fn wal_url_form_lists_segments_and_filters_generation() {
    let env = env_with_replica();
    let url = format!("file://{}", env.join("rep").display());
    let out = env.run(&["wal", &url]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    assert_eq!(
        out.stdout,
        format!(
            "replica  generation        index  offset  size  created\n\
             file     {GEN_A}  0      0       5     2026-11-25T19:28:08Z\n\
             file     {GEN_A}  0      4128    6     2026-11-25T19:28:18Z\n\
             file     {GEN_A}  1      0       7     2026-11-25T19:28:28Z\n"
        )
    );
    let out = env.run(&["wal", "-generation", GEN_B, &url]);
    assert_eq!(
        out.stdout,
        "replica  generation  index  offset  size  created\n"
    );
}

#[test]
fn generations_config_form_measures_lag_from_database_mtime() {
    let env = env_with_replica();
    let out = env.run(&[
        "generations",
        "-config",
        "ls.yml",
        "-replica",
        "file",
        "app.db",
    ]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    assert_eq!(
        out.stdout,
        format!(
            "name  generation        lag    start                 end\n\
             file  {GEN_A}  1m50s  2026-11-25T19:28:08Z  2026-11-25T19:28:38Z\n\
             file  {GEN_B}  40s    2026-11-25T19:29:48Z  2026-11-25T19:29:48Z\n"
        )
    );
}

#[test]
fn generations_config_form_missing_database_fails() {
    let env = env_with_replica();
    std::fs::remove_file(env.join("app.db")).unwrap();
    let out = env.run(&["generations", "-config", "ls.yml", "app.db"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stdout,
        format!(
            "time=TIME level=ERROR msg=\"failed to run\" error=\"stat {}: no such file or directory\"\n",
            env.join("app.db").display()
        )
    );
}

#[test]
fn config_form_missing_replica_root_lists_as_empty() {
    let env = env_with_replica();
    let out = env.run(&[
        "snapshots",
        "-config",
        "ls.yml",
        "-replica",
        "second",
        "app.db",
    ]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    assert_eq!(out.stdout, "replica  generation  index  size  created\n");
}

#[test]
fn url_form_missing_replica_root_fails_naming_path() {
    let env = TestEnv::new();
    let missing = env.join("nonexistent");
    let url = format!("file://{}", missing.display());
    for command in ["generations", "snapshots", "wal"] {
        let out = env.run(&[command, &url]);
        assert_eq!(out.code, Some(1), "{command}");
        assert!(
            out.stderr
                .contains(&format!("{} not found", missing.display())),
            "{command}: {}",
            out.stderr
        );
        assert!(
            out.stderr.starts_with("TIME ERROR failed to run error="),
            "{command}: {}",
            out.stderr
        );
    }
}

#[test]
fn url_form_empty_replica_root_prints_header_only() {
    let env = TestEnv::new();
    std::fs::create_dir(env.join("empty")).unwrap();
    let url = format!("file://{}", env.join("empty").display());
    let out = env.run(&["generations", &url]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "name  generation  lag  start  end\n", "")
    );
}

#[test]
fn listing_to_closed_stdout_exits_cleanly() {
    use std::process::{Command, Stdio};
    let env = env_with_replica();
    let url = format!("file://{}", env.join("rep").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_litestream"))
        .args(["wal", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the child writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
