//! Crashes and faults of `litestream replicate` (issue #6): SIGKILL at random moments (in the
//! middle of a snapshot upload, a WAL segment upload, a checkpoint, retention) with a file and
//! an S3 (moto) replica; a TRUNCATE checkpoint by the application while replicate is stopped;
//! a writer and checkpoints during the first snapshot of a 200 MB database; the database's and
//! the replica's disk full (tmpfs, so these tests need root, as CI has).
//!
//! What every test asserts is what a user cares about: a restore holds rows the database really
//! had (an exact prefix of the commits, `PRAGMA integrity_check` = ok), nothing committed well
//! before a kill is lost, and in the end the restore is identical to the database.

#[path = "../../../ls-backends/tests/it/servers.rs"]
#[expect(
    dead_code,
    clippy::duplicate_mod,
    reason = "cloud.rs loads the same harness for all its servers; these tests use moto only"
)]
mod servers;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use crate::support::fixtures::{our_bin, reference_bin, workspace_root};
use crate::support::replicate::{
    Digest, Replicate, Scene, SplitMix64, Tuning, Writer, WriterPlan, assert_same_rows, create_db,
    digest, digests, generations, has_synced, insert_rows, source_digest, spawn_python, sql,
    wait_until, wal_path,
};

/// How long the first snapshot and segment may take to reach a replica.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a writer may take to reach a count of commits or to stop.
const WRITER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a one-shot command (a restore) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a kill waits for the log line that opens its moment before it lands anyway.
const EVENT_TIMEOUT: Duration = Duration::from_secs(8);

/// S3 keys of the tests; moto takes any.
const S3_KEY_ID: &str = "AKIACRASHTESTKEYID66";
/// See [`S3_KEY_ID`].
const S3_SECRET: &str = "crashTestSecretAccessKey/5e2a9c1b7d3f";
/// moto's bucket.
const BUCKET: &str = "bkt";

/// Where a test replicates to.
enum Store {
    /// A file replica in this folder.
    File(PathBuf),
    /// moto's S3, under `app` in [`BUCKET`].
    S3(servers::Server),
}

impl Store {
    fn s3() -> Self {
        Self::S3(servers::moto(BUCKET))
    }

    fn is_s3(&self) -> bool {
        matches!(self, Self::S3(_))
    }

    /// The replica list item of `litestream.yml` (at 6 spaces).
    fn replica_yaml(&self) -> String {
        match self {
            Self::File(path) => format!("      - type: file\n        path: {}\n", path.display()),
            Self::S3(server) => format!(
                "      - type: s3\n        bucket: {BUCKET}\n        path: app\n        \
                 endpoint: http://{}\n        region: us-east-1\n        force-path-style: true\n        \
                 access-key-id: {S3_KEY_ID}\n        secret-access-key: {S3_SECRET}\n",
                server.addr
            ),
        }
    }
}

/// A `litestream.yml` at log level debug (the engine's checkpoints are debug lines)
/// replicating `db` to `store` with `tuning` and the `replica_extra` keys.
fn config_yaml(db: &Path, tuning: &Tuning, store: &Store, replica_extra: &[&str]) -> String {
    let mut yaml = format!(
        "logging:\n  level: debug\ndbs:\n  - path: {}\n    monitor-interval: {}\n    \
         checkpoint-interval: {}\n    min-checkpoint-page-count: {}\n    \
         max-checkpoint-page-count: {}\n    replicas:\n",
        db.display(),
        tuning.monitor_interval,
        tuning.checkpoint_interval,
        tuning.min_checkpoint_page_count,
        tuning.max_checkpoint_page_count,
    );
    yaml.push_str(&store.replica_yaml());
    yaml.push_str(&format!(
        "        sync-interval: {}\n",
        tuning.sync_interval
    ));
    for line in replica_extra {
        yaml.push_str(&format!("        {line}\n"));
    }
    yaml
}

/// `bin restore -config config -o out -if-replica-exists db`, digested; `Ok(None)` when the
/// replica holds no backup yet; `Err` saying what went wrong when the command fails or the
/// restored file is not a sound database.
fn try_restore(bin: &Path, config: &Path, db: &Path, out: &Path) -> Result<Option<Digest>, String> {
    let (config_text, db_text, out_text) = (
        config.to_string_lossy(),
        db.to_string_lossy(),
        out.to_string_lossy(),
    );
    let args = [
        "restore",
        "-config",
        &config_text,
        "-o",
        &out_text,
        "-if-replica-exists",
        &db_text,
    ];
    let cwd = out.parent().expect("an output path has a folder");
    let exited = Replicate::start(bin, &args, cwd).wait(COMMAND_TIMEOUT);
    let command = format!("`{} {}`", bin.display(), args.join(" "));
    if exited.code != Some(0) {
        return Err(format!(
            "{command} exited with {:?}:\n{}",
            exited.code, exited.log
        ));
    }
    if !out.exists() {
        return Ok(None);
    }
    let health = health(out);
    if health != "ok" {
        return Err(format!(
            "{command} wrote an unsound database: {health}\n{}",
            exited.log
        ));
    }
    Ok(Some(digest(out)))
}

/// [`try_restore`], panicking with `what` when it fails or the replica holds no backup.
fn restore(bin: &Path, config: &Path, db: &Path, out: &Path, what: &str) -> Digest {
    match try_restore(bin, config, db, out) {
        Ok(Some(restored)) => restored,
        Ok(None) => panic!(
            "{what}: `{} restore` of {} found no backup",
            bin.display(),
            db.display()
        ),
        Err(err) => panic!("{what}: {err}"),
    }
}

/// `ok` when `db` opens, passes `PRAGMA integrity_check` and has a readable table `t`; else
/// what SQLite said.
fn health(db: &Path) -> String {
    const SCRIPT: &str = r#"
import sqlite3, sys
try:
    con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
    lines = [r[0] for r in con.execute("PRAGMA integrity_check")]
    con.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()
    print("; ".join(lines))
except Exception as err:
    print("%s: %s" % (type(err).__name__, err))
"#;
    python(&[SCRIPT, &db.to_string_lossy()]).trim().to_owned()
}

/// The rows of `t` of a digest: count, smallest and largest id, SHA-256.
fn rows_of(digest: &Digest) -> (u64, u64, u64, &str) {
    (
        digest.rows,
        digest.min_id,
        digest.max_id,
        digest.rows_sha256.as_str(),
    )
}

/// A consistent copy of the live database `db` at `copy`, made through SQLite's backup API
/// over a read-only connection (which never checkpoints nor deletes the WAL on close), and
/// its digest. Safe while `replicate` and writers run.
fn backup_digest(db: &Path, copy: &Path) -> Digest {
    const SCRIPT: &str = r#"
import sqlite3, sys
src = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=30)
dst = sqlite3.connect(sys.argv[2])
src.backup(dst)
dst.close()
src.close()
"#;
    python(&[SCRIPT, &db.to_string_lossy(), &copy.to_string_lossy()]);
    digest(copy)
}

/// SHA-256 over the ids and blobs of `table` (`id`, `v`), in id order.
fn table_sha256(db: &Path, table: &str) -> String {
    const SCRIPT: &str = r#"
import hashlib, sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
digest = hashlib.sha256()
for (i, v) in con.execute("SELECT id, v FROM %s ORDER BY id" % sys.argv[2]):
    digest.update(b"%d:" % i)
    digest.update(v)
print(digest.hexdigest())
con.close()
"#;
    python(&[SCRIPT, &db.to_string_lossy(), table])
        .trim()
        .to_owned()
}

/// Runs `python3 -c args...`; panics with its stderr unless it succeeds; returns its stdout.
fn python(args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3: {err}"));
    assert!(
        output.status.success(),
        "python3 failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// SQL committing rows `first..first+count` of `t` in one transaction, as
/// [`insert_rows`] does.
fn rows_sql(first: u64, count: u64, blob: u32) -> String {
    let last = first + count;
    format!(
        "WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i+1 FROM n WHERE i+1 < {last}) \
         INSERT INTO t (id, k, v) SELECT i, 'row-'||i, randomblob({blob}) FROM n WHERE i < {last};"
    )
}

/// The seed of a randomised test: `LS_CRASH_SEED` (decimal or `0x` hex) replays one; else a
/// new one from the clock. Every failure message names it.
fn crash_seed() -> u64 {
    if let Ok(text) = std::env::var("LS_CRASH_SEED") {
        let parsed = match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => text.parse(),
        };
        return parsed.unwrap_or_else(|err| panic!("LS_CRASH_SEED={text:?}: {err}"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::from(now.subsec_nanos()) ^ now.as_secs().rotate_left(32)
}

/// An application: a python3 process holding one connection to a database (so closing it
/// never checkpoints and deletes the WAL behind the test's back) and running one line of SQL
/// at a time.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    db: PathBuf,
}

impl Session {
    fn open(db: &Path) -> Self {
        const SCRIPT: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
for line in sys.stdin:
    try:
        if line.startswith("PRAGMA"):
            out = repr(con.execute(line).fetchall())
        else:
            con.executescript(line)
            out = ""
        print("ok " + out, flush=True)
    except Exception as err:
        print("err %s" % err, flush=True)
con.close()
"#;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run python3: {err}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Self {
            child,
            stdin,
            stdout,
            db: db.to_path_buf(),
        }
    }

    /// Runs `script` (newlines become spaces); `Ok` with a PRAGMA's rows, or SQLite's error.
    fn run(&mut self, script: &str) -> Result<String, String> {
        let line = script.replace('\n', " ");
        let stdin = self.stdin.as_mut().expect("the session is open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|err| {
                panic!("cannot talk to the session on {}: {err}", self.db.display())
            });
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap_or_else(|err| {
            panic!("cannot read the session on {}: {err}", self.db.display())
        });
        match answer.trim_end().split_once(' ') {
            Some(("ok", rows)) => Ok(rows.to_owned()),
            Some(("err", err)) => Err(err.to_owned()),
            _ if answer.trim_end() == "ok" => Ok(String::new()),
            _ => panic!("the session on {} answered {answer:?}", self.db.display()),
        }
    }

    /// [`Session::run`], panicking on an error.
    fn run_ok(&mut self, script: &str) -> String {
        self.run(script)
            .unwrap_or_else(|err| panic!("{script} on {}: {err}", self.db.display()))
    }

    /// Closes the connection and waits for python to exit.
    fn close(mut self) {
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .unwrap_or_else(|err| panic!("cannot wait for the session: {err}"));
        assert!(
            status.success(),
            "the session on {} failed: {status}",
            self.db.display()
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Cleanup after a failed test; a closed session is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL at random moments.
// ---------------------------------------------------------------------------------------------

/// Where a kill lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    /// A random moment.
    Any,
    /// Just after a snapshot upload started.
    Snapshot,
    /// Just after a WAL segment upload started.
    Segment,
    /// Just after SQLite's checkpoint, before the shadow WAL moves on to the next index.
    Checkpoint,
    /// Just after retention deleted a snapshot, before it deletes WAL segments.
    Retention,
}

/// Every [`Moment`], drawn uniformly.
const MOMENTS: [Moment; 5] = [
    Moment::Any,
    Moment::Snapshot,
    Moment::Segment,
    Moment::Checkpoint,
    Moment::Retention,
];

impl Moment {
    /// The log text that opens the moment and the longest random delay after it, in ms: about
    /// the time the step takes here (a 16 MB snapshot takes ~100 ms to a file, longer to moto).
    fn trigger(self, s3: bool) -> Option<(&'static str, u64)> {
        match self {
            Self::Any => None,
            Self::Snapshot => Some(("msg=\"write snapshot\"", if s3 { 300 } else { 60 })),
            Self::Segment => Some(("msg=\"write wal segment\"", if s3 { 15 } else { 3 })),
            Self::Checkpoint => Some(("msg=checkpoint ", 2)),
            Self::Retention => Some((" deleted", 2)),
        }
    }
}

/// How many kills landed where, from the killed process's log.
#[derive(Debug, Default)]
struct Tally {
    /// Kills while a snapshot upload had started and not finished.
    mid_snapshot: u32,
    /// Kills while a WAL segment upload had started and not finished.
    mid_segment: u32,
    /// Kills within a few ms after an engine checkpoint line.
    after_checkpoint: u32,
    /// Kills within a few ms after a retention deletion line.
    after_retention: u32,
    /// Kills whose moment's line did not come within [`EVENT_TIMEOUT`].
    missed: u32,
    /// Restores that found no backup (killed before the first snapshot).
    empty: u32,
    /// The oldest commit a restore lacked, by its age at the kill (counted from the start of
    /// `replicate` when older): how much of the allowed lag the worst kill used.
    worst_lag: Duration,
}

/// Whether the log has more lines with `started` than with `finished`.
fn unfinished(log: &str, started: &str, finished: &str) -> bool {
    let count = |needle: &str| log.lines().filter(|line| line.contains(needle)).count();
    count(started) > count(finished)
}

/// Kills our `replicate` `kills` times at random moments while a python writer commits (with an
/// application checkpoint every 150 commits, through PASSIVE, FULL, RESTART, TRUNCATE), on a
/// 16 MB database with a small `min-checkpoint-page-count`, retention of 2 s checked every
/// 500 ms (so a snapshot every ~2 s, and deletions) and a snapshot interval of 3 s. After each
/// kill ours restores to an exact prefix of the commits holding every commit older than the
/// sync interval plus a margin; in the end ours and Litestream 0.3.13 restore every commit.
fn kill_at_random_moments(store: &Store, kills: usize) {
    let seed = crash_seed();
    let mut rng = SplitMix64::new(seed);
    let scene = Scene::new();
    let db = scene.join("app.db");
    create_db(&db, 4096);
    // Ballast for long snapshot uploads: 4,000 pages of random bytes.
    sql(
        &db,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v BLOB); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 4000) \
         INSERT INTO big SELECT i, randomblob(4000) FROM n;",
    );
    let tuning = Tuning {
        min_checkpoint_page_count: 20,
        max_checkpoint_page_count: 400,
        ..Tuning::default()
    };
    let config = scene.write(
        "litestream.yml",
        &config_yaml(
            &db,
            &tuning,
            store,
            &[
                "retention: 2s",
                "retention-check-interval: 500ms",
                "snapshot-interval: 3s",
            ],
        ),
    );
    // Sync (200 ms) and monitor (100 ms) intervals, plus a margin for a snapshot of a new
    // generation on a busy 2-core machine.
    let bound = Duration::from_millis(300 + 4000);
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 1,
            count: 0,
            blob: 600,
            checkpoint_every: 150,
            pause_ms: 3,
        },
    );
    writer.wait_for_commits(20, WRITER_TIMEOUT);
    let mut tally = Tally::default();
    let mut prefixes = Vec::new();
    // Each moment as often as the others, in a random order (Fisher-Yates).
    let mut schedule: Vec<Moment> = (0..kills).map(|n| MOMENTS[n % MOMENTS.len()]).collect();
    for n in (1..schedule.len()).rev() {
        let upper = u64::try_from(n + 1).expect("a count fits in u64");
        let other = usize::try_from(rng.range(0, upper)).expect("below a usize");
        schedule.swap(n, other);
    }
    for (kill, moment) in schedule.into_iter().enumerate() {
        let lead = Duration::from_millis(rng.range(200, 2500));
        let started = Instant::now();
        let mut replicate = Replicate::with_config(&our_bin(), &config);
        // Not a wait for replication: the kill lands at a chosen, random moment.
        thread::sleep(lead);
        if let Some((needle, max_delay_ms)) = moment.trigger(store.is_s3()) {
            let mark = replicate.log_len();
            if !replicate.poll_log_since(mark, needle, EVENT_TIMEOUT) {
                tally.missed += 1;
            }
            thread::sleep(Duration::from_millis(rng.range(0, max_delay_ms + 1)));
        }
        let killed_at = Instant::now();
        let exited = replicate.stop(Signal::SIGKILL);
        let log = &exited.log;
        if unfinished(log, "msg=\"write snapshot\"", "msg=\"snapshot written\"") {
            tally.mid_snapshot += 1;
        }
        if unfinished(
            log,
            "msg=\"write wal segment\"",
            "msg=\"wal segment written\"",
        ) {
            tally.mid_segment += 1;
        }
        match moment {
            Moment::Checkpoint => tally.after_checkpoint += 1,
            Moment::Retention => tally.after_retention += 1,
            _ => {}
        }
        let must_have = writer
            .commits()
            .iter()
            .filter(|(_, at)| (*at).max(started) + bound <= killed_at)
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0);
        let what = format!(
            "seed {seed:#x} kill {kill} ({moment:?}, lead {lead:?}, {} commits so far)",
            writer.commits().len()
        );
        let out = scene.out_path(&format!("kill-{kill}"));
        let restored = try_restore(&our_bin(), &config, &db, &out)
            .unwrap_or_else(|err| panic!("{what}: {err}\nkilled process:\n{log}"));
        let committed = writer
            .commits()
            .iter()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0);
        let Some(restored) = restored else {
            assert_eq!(
                must_have, 0,
                "{what}: no backup, but commit {must_have} was older than {bound:?} at the kill\n{log}"
            );
            tally.empty += 1;
            continue;
        };
        let sound = restored.integrity == "ok"
            && restored.is_prefix()
            && restored.max_id <= committed
            && restored.max_id >= must_have;
        if !sound {
            keep_for_post_mortem(store, &scene, kill, log);
        }
        assert_eq!(restored.integrity, "ok", "{what}: integrity_check\n{log}");
        assert!(
            restored.is_prefix() && restored.max_id <= committed,
            "{what}: restored ids are not 1..k with k <= {committed}: {restored:?}\n{log}"
        );
        assert!(
            restored.max_id >= must_have,
            "{what}: restored rows 1..{} but commit {must_have} was older than {bound:?} at the \
             kill\n{log}",
            restored.max_id,
        );
        let lag = writer
            .commits()
            .iter()
            .filter(|(id, _)| *id > restored.max_id)
            .map(|(_, at)| killed_at.saturating_duration_since((*at).max(started)))
            .max()
            .unwrap_or_default();
        tally.worst_lag = tally.worst_lag.max(lag);
        // Only the digest is kept: 16 MB a restore adds up over the kills.
        let _ = fs::remove_dir_all(out.parent().expect("an output path has a folder"));
        prefixes.push((what, restored));
    }

    let replicate = Replicate::with_config(&our_bin(), &config);
    let seen = writer.commits().len();
    writer.wait_for_commits(seen + 50, WRITER_TIMEOUT);
    let (commits, _) = writer.finish(WRITER_TIMEOUT);
    replicate.stop_ok();
    let last = commits.iter().map(|(id, _)| *id).max().unwrap_or(0);
    let source = source_digest(&db);
    assert!(
        source.is_prefix() && source.max_id == last,
        "seed {seed:#x}: the source holds {source:?}, the writer committed 1..{last}"
    );
    let big = table_sha256(&source.path, "big");
    let ours = restore(
        &our_bin(),
        &config,
        &db,
        &scene.out_path("final"),
        &format!("seed {seed:#x}: final restore"),
    );
    assert_same_rows(&ours, &source, &format!("seed {seed:#x}: final restore"));
    assert_eq!(
        table_sha256(&ours.path, "big"),
        big,
        "seed {seed:#x}: final restore, table big"
    );
    let theirs = restore(
        &reference_bin(),
        &config,
        &db,
        &scene.out_path("final-litestream"),
        &format!("seed {seed:#x}: final restore by Litestream 0.3.13"),
    );
    assert_same_rows(
        &theirs,
        &source,
        &format!("seed {seed:#x}: final restore by Litestream 0.3.13"),
    );
    // Each restored prefix holds the source's rows, not just their ids.
    for (what, restored) in &prefixes {
        let expected = digests(std::slice::from_ref(&source.path), Some(restored.max_id)).remove(0);
        assert_eq!(
            rows_of(restored),
            rows_of(&expected),
            "{what}: the restored rows differ from the source's"
        );
    }
    report_tally(store, seed, kills, &tally);
}

/// With `LS_TEST_KEEP` set, keeps what a post-mortem of a failed kill needs in the scene
/// (which that variable keeps): the killed process's log and, for S3, a copy of the bucket.
fn keep_for_post_mortem(store: &Store, scene: &Scene, kill: usize, log: &str) {
    if std::env::var_os("LS_TEST_KEEP").is_none() {
        return;
    }
    let _ = fs::write(scene.join(&format!("kill-{kill}.log")), log);
    let Store::S3(server) = store else { return };
    const DUMP: &str = r#"
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="x")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for item in page.get("Contents", []):
        path = os.path.join(sys.argv[3], item["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(sys.argv[2], item["Key"], path)
"#;
    let python = workspace_root().join("target/tools/venv/bin/python");
    let _ = Command::new(python)
        .arg("-c")
        .arg(DUMP)
        .arg(format!("http://{}", server.addr))
        .arg(BUCKET)
        .arg(scene.join("replica-s3"))
        .status();
    #[expect(clippy::print_stderr, reason = "where the post-mortem lies")]
    {
        eprintln!("post-mortem kept in {}", scene.path().display());
    }
}

#[expect(
    clippy::print_stderr,
    reason = "where the kills landed is the test's figure (shown with --no-capture)"
)]
fn report_tally(store: &Store, seed: u64, kills: usize, tally: &Tally) {
    let name = if store.is_s3() { "s3" } else { "file" };
    eprintln!("{name} replica, seed {seed:#x}, {kills} kills: {tally:?}");
}

#[test]
fn replicate_killed_at_25_moments_with_file_replica_restores_prefixes() {
    let scene = Scene::new();
    kill_at_random_moments(&Store::File(scene.join("replica")), 25);
}

#[test]
fn replicate_killed_at_25_moments_with_s3_replica_restores_prefixes() {
    kill_at_random_moments(&Store::s3(), 25);
}

// ---------------------------------------------------------------------------------------------
// 2. A TRUNCATE checkpoint by the application while replicate is stopped.
// ---------------------------------------------------------------------------------------------

/// Checks that `restored` is a state the database had: integrity ok, ids `1..k` with
/// `k >= floor`, each row as in `source` (rows only ever get appended).
fn assert_past_state(restored: &Digest, source: &Digest, floor: u64, what: &str) {
    assert_eq!(restored.integrity, "ok", "{what}: integrity_check");
    assert!(
        restored.is_prefix() && restored.max_id >= floor && restored.max_id <= source.max_id,
        "{what}: restored ids are not 1..k with {floor} <= k <= {}: {restored:?}",
        source.max_id
    );
    let expected = digests(std::slice::from_ref(&source.path), Some(restored.max_id)).remove(0);
    assert_eq!(
        rows_of(restored),
        rows_of(&expected),
        "{what}: restored rows 1..{} differ from the database's",
        restored.max_id
    );
}

/// Restores with ours until the restore is identical to `source` (each one on the way must be
/// a state the database had, with at least rows `1..floor`).
fn wait_restores_source(
    replicate: &mut Replicate,
    scene: &Scene,
    config: &Path,
    db: &Path,
    source: &Digest,
    floor: u64,
    what: &str,
) {
    let mut attempt = 0;
    let prefix = what.replace(' ', "-");
    replicate.wait_until(
        &format!("{what}: a restore identical to the database ({source:?})"),
        SYNC_TIMEOUT,
        |_| {
            attempt += 1;
            let out = scene.out_path(&format!("{prefix}-{attempt}"));
            let restored = try_restore(&our_bin(), config, db, &out)
                .unwrap_or_else(|err| panic!("{what}, restore {attempt}: {err}"));
            restored.as_ref().is_some_and(|restored| {
                assert_past_state(
                    restored,
                    source,
                    floor,
                    &format!("{what}, restore {attempt}"),
                );
                rows_of(restored) == rows_of(source)
            })
        },
    );
}

/// Ours replicates rows 1..200 to a file replica and stops with `stop`; with replicate
/// stopped, the application (one connection, kept open) commits rows 201..300, runs
/// `PRAGMA wal_checkpoint(TRUNCATE)` and commits `rows_after` more rows; ours starts again.
/// Whether it starts a new generation or goes on in the same one, every restore is a state
/// the database had, and the last one is identical to it.
fn truncate_while_stopped(stop: Signal, rows_after: u64) {
    let scene = Scene::new();
    let (db, replica) = (scene.join("app.db"), scene.join("replica"));
    create_db(&db, 4096);
    insert_rows(&db, 1, 100, 200);
    let store = Store::File(replica.clone());
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&db, &Tuning::default(), &store, &[]),
    );
    let mut app = Session::open(&db);
    let mut replicate = Replicate::with_config(&our_bin(), &config);
    replicate.wait_until("a first snapshot and segment", SYNC_TIMEOUT, |_| {
        has_synced(&replica)
    });
    app.run_ok(&rows_sql(101, 100, 200));
    let first = backup_digest(&db, &scene.join("first.db"));
    wait_restores_source(
        &mut replicate,
        &scene,
        &config,
        &db,
        &first,
        100,
        "first run",
    );
    let before = generations(&replica);
    let exited = replicate.stop(stop);
    if stop == Signal::SIGTERM {
        assert_eq!(exited.code, Some(0), "SIGTERM:\n{}", exited.log);
    }

    app.run_ok(&rows_sql(201, 50, 200));
    app.run_ok(&rows_sql(251, 50, 200));
    let result = app.run_ok("PRAGMA wal_checkpoint(TRUNCATE)");
    assert!(
        result.starts_with("[(0,"),
        "the TRUNCATE checkpoint was busy: {result}"
    );
    let wal_len = fs::metadata(wal_path(&db)).map_or(0, |meta| meta.len());
    assert_eq!(
        wal_len, 0,
        "the TRUNCATE checkpoint left a WAL of {wal_len} bytes"
    );
    for first_id in (301..301 + rows_after).step_by(25) {
        let count = (301 + rows_after - first_id).min(25);
        app.run_ok(&rows_sql(first_id, count, 200));
    }
    let source = backup_digest(&db, &scene.join("source.db"));
    assert_eq!(source.max_id, 300 + rows_after);

    let mut replicate = Replicate::with_config(&our_bin(), &config);
    wait_restores_source(
        &mut replicate,
        &scene,
        &config,
        &db,
        &source,
        200,
        "second run",
    );
    let log = replicate.stop_ok().log;
    app.close();
    let after = generations(&replica);
    let new_generation = after.iter().any(|name| !before.contains(name));
    let what = format!(
        "{stop} then TRUNCATE; {} (generations {before:?} then {after:?})",
        if new_generation {
            "new generation"
        } else {
            "same generation"
        }
    );
    let ours = restore(&our_bin(), &config, &db, &scene.out_path("ours"), &what);
    assert_same_rows(&ours, &source, &format!("{what}: restored by ours\n{log}"));
    let theirs = restore(
        &reference_bin(),
        &config,
        &db,
        &scene.out_path("litestream"),
        &what,
    );
    assert_same_rows(
        &theirs,
        &source,
        &format!("{what}: restored by Litestream 0.3.13\n{log}"),
    );
}

#[test]
fn truncate_checkpoint_while_stopped_by_sigterm_restores_db() {
    truncate_while_stopped(Signal::SIGTERM, 100);
}

#[test]
fn truncate_checkpoint_while_stopped_by_sigkill_restores_db() {
    truncate_while_stopped(Signal::SIGKILL, 100);
}

#[test]
fn truncate_checkpoint_leaving_empty_wal_while_stopped_restores_db() {
    truncate_while_stopped(Signal::SIGKILL, 0);
}

// ---------------------------------------------------------------------------------------------
// 3. A writer and checkpoints during the first snapshot of a large database.
// ---------------------------------------------------------------------------------------------

/// A python3 process rewriting random rows of `big` (ids `1..=rows`), one per transaction, with
/// a PASSIVE or TRUNCATE checkpoint every 10 commits, until [`Churn::finish`].
struct Churn {
    child: Child,
    stop_file: PathBuf,
}

impl Churn {
    fn start(db: &Path, rows: u64) -> Self {
        const SCRIPT: &str = r#"
import os, random, sqlite3, sys, time
db, rows, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
con = sqlite3.connect(db, timeout=30, isolation_level=None)
n = 0
while not os.path.exists(stop):
    con.execute("BEGIN IMMEDIATE")
    con.execute("UPDATE big SET v = randomblob(4000) WHERE id = ?", (random.randint(1, rows),))
    con.execute("COMMIT")
    n += 1
    if n % 10 == 0:
        con.execute("PRAGMA busy_timeout=100")
        con.execute("PRAGMA wal_checkpoint(%s)" % ("TRUNCATE" if n % 20 == 0 else "PASSIVE")).fetchall()
        con.execute("PRAGMA busy_timeout=30000")
    time.sleep(0.005)
print(n)
con.close()
"#;
        let stop_file = db.with_extension("churn-stop");
        let child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(db)
            .arg(rows.to_string())
            .arg(&stop_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run python3: {err}"));
        Self { child, stop_file }
    }

    /// Stops it; returns how many rows it rewrote.
    fn finish(mut self) -> u64 {
        fs::write(&self.stop_file, "")
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", self.stop_file.display()));
        let child = std::mem::replace(
            &mut self.child,
            Command::new("true")
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run true: {err}")),
        );
        let output = child
            .wait_with_output()
            .unwrap_or_else(|err| panic!("cannot wait for the churn: {err}"));
        assert!(
            output.status.success(),
            "the churn failed: {}",
            output.status
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|err| panic!("the churn printed {:?}: {err}", output.stdout))
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        // Cleanup after a failed test; a finished churn is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn first_snapshot_of_200_mb_db_under_writes_and_checkpoints_restores_same() {
    const BIG_ROWS: u64 = 50_000;
    let scene = Scene::new();
    let db = scene.join("app.db");
    // A rollback journal while loading: the 200 MB go straight into the database file.
    sql(
        &db,
        &format!(
            "PRAGMA page_size=4096; CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB); \
             CREATE TABLE big (id INTEGER PRIMARY KEY, v BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < {BIG_ROWS}) \
             INSERT INTO big SELECT i, randomblob(4000) FROM n; PRAGMA journal_mode=WAL;"
        ),
    );
    let store = Store::File(scene.join("replica"));
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&db, &Tuning::default(), &store, &[]),
    );
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 1,
            count: 0,
            blob: 500,
            checkpoint_every: 20,
            pause_ms: 5,
        },
    );
    let churn = Churn::start(&db, BIG_ROWS);
    writer.wait_for_commits(10, WRITER_TIMEOUT);
    let mut replicate = Replicate::with_config(&our_bin(), &config);
    replicate.wait_for_log("msg=\"write snapshot\"", SYNC_TIMEOUT);
    let at_start = writer.commits().len();
    replicate.wait_for_log("msg=\"snapshot written\"", COMMAND_TIMEOUT);
    let at_end = writer.commits().len();
    assert!(
        at_end > at_start,
        "no commit during the first snapshot ({at_start} before and after): the test tests nothing"
    );
    writer.wait_for_commits(at_end + 50, WRITER_TIMEOUT);
    let rewritten = churn.finish();
    let (commits, checkpoints) = writer.finish(WRITER_TIMEOUT);
    let log = replicate.stop_ok().log;
    let what = format!(
        "{} commits ({} during the first snapshot), {rewritten} rows of big rewritten, {} \
         application checkpoints",
        commits.len(),
        at_end - at_start,
        checkpoints.len()
    );

    let source = source_digest(&db);
    assert_eq!(
        source.rows,
        u64::try_from(commits.len()).expect("fits"),
        "{what}"
    );
    let ours = restore(&our_bin(), &config, &db, &scene.out_path("ours"), &what);
    assert_same_rows(&ours, &source, &format!("{what}: table t\n{log}"));
    assert_eq!(
        table_sha256(&ours.path, "big"),
        table_sha256(&source.path, "big"),
        "{what}: table big\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Disk full.
// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted at a folder, unmounted on drop. Mounting needs root, which CI has: a failed
/// mount fails the test rather than skipping it.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size_mib: u32) -> Self {
        fs::create_dir_all(dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|err| panic!("cannot run mount: {err}"));
        assert!(
            output.status.success(),
            "cannot mount a {size_mib} MiB tmpfs at {} ({}): the disk-full tests need root, as \
             in CI: {}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Fills the file system with `<dir>/filler` until a write fails with ENOSPC; returns the
    /// filler's path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = fs::File::create(&path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
        for chunk in [1 << 20, 4096, 512] {
            let buf = vec![0xa5_u8; chunk];
            let err = loop {
                if let Err(err) = file.write_all(&buf) {
                    break err;
                }
            };
            assert_eq!(
                err.raw_os_error(),
                Some(nix::libc::ENOSPC),
                "filling {}: {err}",
                path.display()
            );
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Best effort: a lazy unmount when something still holds a file open.
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|status| status.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The first line of `log` after byte `mark` reporting ENOSPC.
fn enospc_line(log: &str, mark: usize) -> Option<String> {
    log.get(mark..)?
        .lines()
        .find(|line| line.to_lowercase().contains("no space left on device"))
        .map(str::to_owned)
}

/// Waits until `replicate` logs ENOSPC naming `path`, then until it tries (and fails) once more
/// without exiting; returns the first such line.
fn wait_enospc(replicate: &mut Replicate, mark: usize, path: &Path) -> String {
    replicate.wait_until("an error about the full disk", SYNC_TIMEOUT, |log| {
        enospc_line(log, mark).is_some()
    });
    let line = enospc_line(&replicate.log(), mark).expect("just seen");
    let error = line.split_once("error=").map_or("", |(_, error)| error);
    assert!(
        error.contains(&path.display().to_string()),
        "the error does not name a path under {}: {line}",
        path.display()
    );
    let again = replicate.log_len();
    replicate.wait_until("another attempt on the full disk", SYNC_TIMEOUT, |log| {
        enospc_line(log, again).is_some()
    });
    line
}

#[test]
fn db_disk_full_logs_shadow_path_and_resumes_when_space_returns() {
    let scene = Scene::new();
    let tmpfs = Tmpfs::mount(&scene.join("dbfs"), 16);
    let db = tmpfs.dir.join("app.db");
    create_db(&db, 4096);
    insert_rows(&db, 1, 1000, 400);
    let replica = scene.join("replica");
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&db, &Tuning::default(), &Store::File(replica.clone()), &[]),
    );
    let mut app = Session::open(&db);
    let mut replicate = Replicate::with_config(&our_bin(), &config);
    replicate.wait_until("a first snapshot and segment", SYNC_TIMEOUT, |_| {
        has_synced(&replica)
    });
    // ~130 pages of WAL in one commit; the engine's checkpoint then restarts the WAL, whose
    // file keeps its size: the small commits below reuse its blocks and need no free space.
    let mark = replicate.log_len();
    app.run_ok("UPDATE t SET v = randomblob(400);");
    assert!(
        replicate.poll_log_since(mark, "msg=checkpoint ", SYNC_TIMEOUT),
        "no checkpoint after a 500 kB commit:\n{}",
        replicate.log()
    );
    let filler = tmpfs.fill();
    let mark = replicate.log_len();
    for first_id in (1001..1051).step_by(5) {
        app.run(&rows_sql(first_id, 5, 100)).unwrap_or_else(|err| {
            panic!("the application cannot commit on the full disk (its WAL has room): {err}")
        });
    }
    let line = wait_enospc(&mut replicate, mark, &tmpfs.dir.join(".app.db-litestream"));
    let source = backup_digest(&db, &scene.join("source.db"));
    assert_eq!(source.max_id, 1050);
    fs::remove_file(&filler)
        .unwrap_or_else(|err| panic!("cannot remove {}: {err}", filler.display()));
    wait_restores_source(
        &mut replicate,
        &scene,
        &config,
        &db,
        &source,
        1000,
        "space returned",
    );
    let log = replicate.stop_ok().log;
    app.close();
    let what = format!("after the disk-full error {line:?}\n{log}");
    let ours = restore(&our_bin(), &config, &db, &scene.out_path("ours"), &what);
    assert_same_rows(&ours, &source, &format!("restored by ours {what}"));
    let theirs = restore(
        &reference_bin(),
        &config,
        &db,
        &scene.out_path("litestream"),
        &what,
    );
    assert_same_rows(
        &theirs,
        &source,
        &format!("restored by Litestream 0.3.13 {what}"),
    );
}

#[test]
fn replica_disk_full_logs_replica_path_and_resumes_when_space_returns() {
    let scene = Scene::new();
    let db = scene.join("app.db");
    create_db(&db, 4096);
    insert_rows(&db, 1, 1000, 400);
    let tmpfs = Tmpfs::mount(&scene.join("replica"), 8);
    let config = scene.write(
        "litestream.yml",
        &config_yaml(
            &db,
            &Tuning::default(),
            &Store::File(tmpfs.dir.clone()),
            &[],
        ),
    );
    let mut replicate = Replicate::with_config(&our_bin(), &config);
    replicate.wait_until("a first snapshot and segment", SYNC_TIMEOUT, |_| {
        has_synced(&tmpfs.dir)
    });
    let filler = tmpfs.fill();
    let mark = replicate.log_len();
    insert_rows(&db, 1001, 300, 400);
    let line = wait_enospc(&mut replicate, mark, &tmpfs.dir);
    let source = backup_digest(&db, &scene.join("source.db"));
    assert_eq!(source.max_id, 1300);
    fs::remove_file(&filler)
        .unwrap_or_else(|err| panic!("cannot remove {}: {err}", filler.display()));
    wait_restores_source(
        &mut replicate,
        &scene,
        &config,
        &db,
        &source,
        1000,
        "space returned",
    );
    let log = replicate.stop_ok().log;
    let what = format!("after the disk-full error {line:?}\n{log}");
    let ours = restore(&our_bin(), &config, &db, &scene.out_path("ours"), &what);
    assert_same_rows(&ours, &source, &format!("restored by ours {what}"));
    let theirs = restore(
        &reference_bin(),
        &config,
        &db,
        &scene.out_path("litestream"),
        &what,
    );
    assert_same_rows(
        &theirs,
        &source,
        &format!("restored by Litestream 0.3.13 {what}"),
    );
}

// ---------------------------------------------------------------------------------------------
// 5. An application's TRUNCATE checkpoints while replicate runs with default settings.
// ---------------------------------------------------------------------------------------------

/// How long an application's `PRAGMA wal_checkpoint(TRUNCATE)` may take while ours runs: the
/// next lock probe (at most 464 ms away) sees it, a second one 100-164 ms later confirms it,
/// and we step aside, well inside the application's 5 s `busy_timeout`.
const APP_TRUNCATE_MAX: Duration = Duration::from_secs(1);

/// A database of 20 rows replicated by ours to a file replica (default settings, debug log),
/// after its first snapshot and segment.
struct TruncateScene {
    scene: Scene,
    db: PathBuf,
    replica: PathBuf,
    config: PathBuf,
    replicate: Replicate,
    /// The replica's generations once synced.
    first: Vec<String>,
}

impl TruncateScene {
    fn start() -> Self {
        let scene = Scene::new();
        let (db, replica) = (scene.join("app.db"), scene.join("replica"));
        create_db(&db, 4096);
        insert_rows(&db, 1, 20, 200);
        let config = scene.write(
            "litestream.yml",
            &format!(
                "logging:\n  level: debug\ndbs:\n  - path: {}\n    replicas:\n{}",
                db.display(),
                Store::File(replica.clone()).replica_yaml()
            ),
        );
        let mut replicate = Replicate::with_config(&our_bin(), &config);
        replicate.wait_until("a first snapshot and segment", SYNC_TIMEOUT, |_| {
            has_synced(&replica)
        });
        let first = generations(&replica);
        Self {
            scene,
            db,
            replica,
            config,
            replicate,
            first,
        }
    }
}

impl TruncateScene {
    /// Once the application's last commit (row `last`) is in: waits until ours restores the
    /// database exactly, stops replicate, closes `apps`, and checks that the replica kept its
    /// first generation and that ours (and, with `litestream`, Litestream 0.3.13) restores the
    /// database's rows.
    fn settle(self, apps: Vec<Session>, last: u64, litestream: bool, what: &str) {
        let Self {
            scene,
            db,
            replica,
            config,
            mut replicate,
            first,
        } = self;
        let source = backup_digest(&db, &scene.join("source.db"));
        assert_eq!(source.max_id, last, "{what}: the database's last row");
        wait_restores_source(&mut replicate, &scene, &config, &db, &source, 20, what);
        let log = replicate.stop_ok().log;
        for app in apps {
            app.close();
        }
        let after = generations(&replica);
        assert_eq!(
            (after.len(), &after),
            (1, &first),
            "{what}: the replica should keep its first generation {first:?}\n{log}"
        );
        let ours = restore(&our_bin(), &config, &db, &scene.out_path("ours"), what);
        assert_same_rows(&ours, &source, &format!("{what}: restored by ours\n{log}"));
        if litestream {
            let theirs = restore(
                &reference_bin(),
                &config,
                &db,
                &scene.out_path("litestream"),
                what,
            );
            assert_same_rows(
                &theirs,
                &source,
                &format!("{what}: restored by Litestream 0.3.13\n{log}"),
            );
        }
    }
}

/// Runs the application's `PRAGMA wal_checkpoint(TRUNCATE)` on `app`: it must complete fully
/// and within `max`.
fn app_truncate(app: &mut Session, replicate: &Replicate, max: Duration, what: &str) {
    let started = Instant::now();
    let result = app.run_ok("PRAGMA wal_checkpoint(TRUNCATE)");
    let took = started.elapsed();
    assert_eq!(
        result,
        "[(0, 0, 0)]",
        "{what} did not complete (busy, log frames, checkpointed frames) after {took:?}:\n{}",
        replicate.log()
    );
    assert!(took < max, "{what} took {took:?}:\n{}", replicate.log());
}

/// Ours replicates (file replica, default settings) while an application connection (busy
/// timeout 5 s) three times commits 20 rows, runs `PRAGMA wal_checkpoint(TRUNCATE)`, which must
/// succeed fully within [`APP_TRUNCATE_MAX`], and stays idle for 2 s; with `other_writer`, a
/// second connection commits 5 rows right after each TRUNCATE. Then 20 more rows. The replica
/// keeps its one generation (until 8706e8b each TRUNCATE started a new one with a full
/// snapshot), and ours and Litestream 0.3.13 restore the database's rows.
fn app_truncates_keep_generation(other_writer: bool) {
    let truncates = TruncateScene::start();
    let mut app = Session::open(&truncates.db);
    app.run_ok("PRAGMA busy_timeout=5000");
    let mut other = other_writer.then(|| {
        let mut other = Session::open(&truncates.db);
        other.run_ok("PRAGMA busy_timeout=5000");
        other
    });
    let mut next_id = 21;
    for round in 1..=3 {
        for id in next_id..next_id + 20 {
            app.run_ok(&rows_sql(id, 1, 200));
        }
        next_id += 20;
        app_truncate(
            &mut app,
            &truncates.replicate,
            APP_TRUNCATE_MAX,
            &format!("round {round}: the application's TRUNCATE checkpoint"),
        );
        if let Some(other) = other.as_mut() {
            other.run_ok(&rows_sql(next_id, 5, 200));
            next_id += 5;
        }
        // Not a wait for replication: the application stays idle, as applications do.
        thread::sleep(Duration::from_secs(2));
    }
    app.run_ok(&rows_sql(next_id, 20, 200));
    let what = if other_writer {
        "3 application TRUNCATEs, each followed by another connection's commit"
    } else {
        "3 application TRUNCATEs, each followed by 2 s idle"
    };
    let apps = std::iter::once(app).chain(other).collect();
    truncates.settle(apps, next_id + 19, true, what);
}

#[test]
fn app_truncate_checkpoints_then_idle_keep_one_generation() {
    app_truncates_keep_generation(false);
}

#[test]
fn app_truncate_checkpoints_then_other_connection_writes_keep_one_generation() {
    app_truncates_keep_generation(true);
}

/// How long an application's TRUNCATE may take after the database sat idle: the idle tick
/// (every 2 s) finds the waiting checkpoint, two fast probes confirm it.
const IDLE_APP_TRUNCATE_MAX: Duration = Duration::from_secs(4);

/// The application commits, stays idle for 12 s (past the 10 s after which ours reads the locks
/// only on its idle tick, every 2 s), then runs `PRAGMA wal_checkpoint(TRUNCATE)` with a 10 s
/// busy timeout: it completes within [`IDLE_APP_TRUNCATE_MAX`] (Litestream 0.3.13 holds it for
/// the whole busy timeout), the generation is kept, and the replica restores the same rows.
#[test]
fn app_truncate_after_idle_spell_completes_within_the_idle_tick() {
    let truncates = TruncateScene::start();
    let mut app = Session::open(&truncates.db);
    app.run_ok("PRAGMA busy_timeout=10000");
    app.run_ok(&rows_sql(21, 30, 200));
    // Not a wait for replication: the application is idle, as applications are.
    thread::sleep(Duration::from_secs(12));
    app_truncate(
        &mut app,
        &truncates.replicate,
        IDLE_APP_TRUNCATE_MAX,
        "the application's TRUNCATE after an idle spell",
    );
    app.run_ok(&rows_sql(51, 10, 200));
    truncates.settle(vec![app], 60, false, "a TRUNCATE after an idle spell");
}

// ---------------------------------------------------------------------------------------------
// 6. SIGKILL right after a periodic snapshot, with the replica's segments lagging behind.
// ---------------------------------------------------------------------------------------------

/// Accounts of the transfer writer, each starting with [`OPENING_BALANCE`].
const ACCOUNTS: u64 = 5000;
/// See [`ACCOUNTS`]: every state the database ever had sums to `ACCOUNTS * OPENING_BALANCE`.
const OPENING_BALANCE: u64 = 100;

/// A python3 process committing, until stopped, transactions that each insert row `i` of `t`
/// and move one unit between two random accounts of `acct` (rows spread over the whole
/// file), with a PASSIVE checkpoint of its own every 50 commits. A restore that mixes pages
/// of two moments of the database breaks the sum of the balances.
struct Transfers {
    child: Child,
    last: Arc<AtomicU64>,
    stop_file: PathBuf,
}

impl Transfers {
    fn start(db: &Path) -> Self {
        const SCRIPT: &str = r#"
import os, random, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
i = 0
while not os.path.exists(sys.argv[2]):
    i += 1
    a, b = random.randint(1, int(sys.argv[3])), random.randint(1, int(sys.argv[3]))
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO t (id, k, v) VALUES (?, ?, randomblob(600))", (i, "row-%d" % i))
    con.execute("UPDATE acct SET bal = bal - 1 WHERE id = ?", (a,))
    con.execute("UPDATE acct SET bal = bal + 1 WHERE id = ?", (b,))
    con.execute("COMMIT")
    print(i, flush=True)
    if i % 50 == 0:
        con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    time.sleep(0.004)
con.close()
"#;
        sql(
            db,
            &format!(
                "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER, pad BLOB); \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < {ACCOUNTS}) \
                 INSERT INTO acct SELECT i, {OPENING_BALANCE}, randomblob(300) FROM n;"
            ),
        );
        let stop_file = db.with_extension("transfers-stop");
        let (child, stdout) = spawn_python(
            SCRIPT,
            &[
                db.as_os_str(),
                stop_file.as_os_str(),
                ACCOUNTS.to_string().as_ref(),
            ],
        );
        let last = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&last);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(id) = line.trim().parse::<u64>() {
                    seen.store(id, Ordering::SeqCst);
                }
            }
        });
        Self {
            child,
            last,
            stop_file,
        }
    }

    /// The last commit reported so far.
    fn last(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    /// Stops the writer and waits for it; panics if python failed.
    fn finish(mut self) {
        fs::write(&self.stop_file, "")
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", self.stop_file.display()));
        let status = self
            .child
            .wait()
            .unwrap_or_else(|err| panic!("cannot wait for the writer: {err}"));
        assert!(status.success(), "the transfer writer failed: {status}");
    }
}

impl Drop for Transfers {
    fn drop(&mut self) {
        // Cleanup after a failed test; a finished writer is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of the balances in `db`.
fn balance_sum(db: &Path) -> u64 {
    const SCRIPT: &str = r#"
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT sum(bal) FROM acct").fetchone()[0])
"#;
    let text = python(&[SCRIPT, &db.to_string_lossy()]);
    text.trim()
        .parse()
        .unwrap_or_else(|err| panic!("sum of balances in {}: {text:?}: {err}", db.display()))
}

/// A periodic snapshot copies the raw database file, which holds every frame a checkpoint
/// (ours before the snapshot, or the application's) has copied into it, possibly far past
/// what the replica's segments hold (here `sync-interval: 5s` under sustained writes). Killed
/// right after such a snapshot is stored, a replica would restore it and then the older
/// frames of its index over it: a mix of two moments (Litestream 0.3.13 does this; 3 of 4
/// tries break the sum). Ours stores a snapshot only once the replica holds the segments up
/// to its position, so each restore is a state the database had, holding every commit made
/// before the snapshot began.
#[test]
fn replicate_killed_right_after_a_snapshot_restores_a_state_the_database_had() {
    let scene = Scene::new();
    let db = scene.join("app.db");
    create_db(&db, 4096);
    let writer = Transfers::start(&db);
    // Our PASSIVE checkpoints run on every pass past 100 pages, and none restarts the WAL, so
    // every snapshot lands in the index the replica is uploading.
    let tuning = Tuning {
        monitor_interval: "1s",
        checkpoint_interval: "60s",
        min_checkpoint_page_count: 100,
        max_checkpoint_page_count: 100_000,
        sync_interval: "5s",
    };
    let config = scene.write(
        "litestream.yml",
        &config_yaml(
            &db,
            &tuning,
            &Store::File(scene.join("replica")),
            &["snapshot-interval: 2s"],
        ),
    );
    let total = ACCOUNTS * OPENING_BALANCE;
    for kill in 0..3 {
        let mut replicate = Replicate::with_config(&our_bin(), &config);
        // The first snapshot after a start; then a periodic one, taken with the replica's
        // segments up to 5 s behind.
        let mark = replicate.log_len();
        let found = replicate.poll_log_since(mark, "msg=\"snapshot written\"", SYNC_TIMEOUT);
        assert!(found, "kill {kill}: no snapshot\n{}", replicate.log());
        // Committed before the next snapshot began.
        let before_snapshot = writer.last();
        let mark = replicate.log_len();
        assert!(
            replicate.poll_log_since(mark, "msg=\"snapshot written\"", SYNC_TIMEOUT),
            "kill {kill}: the periodic snapshot was not written\n{}",
            replicate.log()
        );
        let log = replicate.stop(Signal::SIGKILL).log;
        let what = format!("kill {kill} right after a snapshot");
        let out = scene.out_path(&format!("kill-{kill}"));
        let restored = restore(&our_bin(), &config, &db, &out, &what);
        assert_eq!(restored.integrity, "ok", "{what}: integrity_check\n{log}");
        assert!(
            restored.is_prefix(),
            "{what}: restored ids are not 1..k: {restored:?}\n{log}"
        );
        assert_eq!(
            balance_sum(&out),
            total,
            "{what}: the balances of the restore do not add up: pages of two moments\n{log}"
        );
        assert!(
            restored.max_id >= before_snapshot,
            "{what}: restored rows 1..{} but commit {before_snapshot} came before the \
             snapshot began\n{log}",
            restored.max_id
        );
    }
    let replicate = Replicate::with_config(&our_bin(), &config);
    let resumed = writer.last();
    wait_until("50 more commits", WRITER_TIMEOUT, || {
        writer.last() >= resumed + 50
    });
    writer.finish();
    replicate.stop_ok();
    let source = source_digest(&db);
    let ours = restore(
        &our_bin(),
        &config,
        &db,
        &scene.out_path("final"),
        "final restore",
    );
    assert_same_rows(&ours, &source, "final restore");
    assert_eq!(balance_sum(&ours.path), total, "final restore: balances");
}

/// A checkpoint that a reader holds back copies a page only when its latest frame is within the
/// reader's mark: a page changed both before and after the mark keeps its old version while the
/// pages around it move on, so the raw database file is a state the database never had (here
/// 200 rows, then 400, then 600, but the raw file holds some other count). A snapshot restored
/// without the segments after it (a replica killed between the two) must still be a state the
/// database had: ours lays the shadow WAL's pages over the file up to the snapshot's position
/// (Litestream 0.3.13 stores the raw file, and restores 204 rows here).
#[test]
fn a_snapshot_alone_restores_a_state_the_database_had_after_a_held_back_checkpoint() {
    let (ours, log) = snapshot_alone_after_a_held_back_checkpoint(&our_bin());
    assert_eq!(ours.integrity, "ok", "integrity_check\n{log}");
    assert!(
        ours.is_prefix() && ours.max_id == 600,
        "the snapshot restores {ours:?}, not the 600 rows committed before it\n{log}"
    );
    let (theirs, log) = snapshot_alone_after_a_held_back_checkpoint(&reference_bin());
    assert!(
        theirs.integrity != "ok" || ![200, 400, 600].contains(&theirs.max_id),
        "Litestream 0.3.13's snapshot restored a state the database had: {theirs:?}\n{log}"
    );
}

/// Commits 200, 400 then 600 rows with a reader holding back the application's checkpoint
/// after 400, has `bin` replicate until its first snapshot is written and stop, drops the
/// replica's segments and restores what is left with `bin`: the restore's digest and the
/// replicate log.
fn snapshot_alone_after_a_held_back_checkpoint(bin: &Path) -> (Digest, String) {
    const SCRIPT: &str = r#"
import os, shutil, sqlite3, sys, time
db, stop = sys.argv[1], sys.argv[2]
w = sqlite3.connect(db, isolation_level=None)
w.execute("PRAGMA wal_autocheckpoint=0")
def insert(first, last):
    w.execute("BEGIN")
    for i in range(first, last + 1):
        w.execute("INSERT INTO t (id, k, v) VALUES (?, 'row-' || ?, randomblob(300))", (i, i))
    w.execute("COMMIT")
insert(1, 200)
w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
insert(201, 400)
r = sqlite3.connect(db, isolation_level=None)
r.execute("BEGIN")
r.execute("SELECT count(*) FROM t").fetchall()
insert(401, 600)
busy, frames, done = w.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
raw = db + ".raw"
shutil.copy(db, raw)
c = sqlite3.connect(raw)
state = (c.execute("PRAGMA integrity_check").fetchone()[0], c.execute("SELECT count(*) FROM t").fetchone()[0])
c.close()
print(frames, done, state[0], state[1], flush=True)
while not os.path.exists(stop):
    time.sleep(0.05)
r.rollback()
"#;
    let scene = Scene::new();
    let db = scene.join("app.db");
    create_db(&db, 4096);
    let stop = scene.join("stop");
    let (app, stdout) = spawn_python(SCRIPT, &[db.as_os_str(), stop.as_os_str()]);
    let mut app = KillOnDrop(app);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|err| panic!("cannot read the application: {err}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [frames, done, integrity, rows] = fields[..] else {
        panic!("the application printed {line:?}");
    };
    let number = |text: &str| -> u64 {
        text.parse()
            .unwrap_or_else(|err| panic!("the application printed {line:?}: {err}"))
    };
    // The premise: the checkpoint stopped at the reader and left a file no commit made.
    assert!(
        number(done) < number(frames)
            && (integrity != "ok" || !["200", "400", "600"].contains(&rows)),
        "the held-back checkpoint copied {done} of {frames} frames and left a raw file with \
         integrity {integrity} and {rows} rows"
    );
    let replica = scene.join("replica");
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&db, &Tuning::default(), &Store::File(replica.clone()), &[]),
    );
    let mut replicate = Replicate::with_config(bin, &config);
    replicate.wait_for_log("msg=\"snapshot written\"", SYNC_TIMEOUT);
    // Litestream 0.3.13 can hang on SIGTERM; its final sync does not matter here.
    let log = replicate
        .stop_or_kill(Signal::SIGTERM, Duration::from_secs(10))
        .log;
    // The replica as a kill right after the snapshot would leave it: no segment.
    for generation in generations(&replica) {
        let wal = replica.join("generations").join(&generation).join("wal");
        fs::remove_dir_all(&wal)
            .unwrap_or_else(|err| panic!("cannot remove {}: {err}", wal.display()));
    }
    let restored = restore(
        bin,
        &config,
        &db,
        &scene.out_path("snapshot-alone"),
        "restore of the snapshot alone",
    );
    fs::write(&stop, "").unwrap_or_else(|err| panic!("cannot write {}: {err}", stop.display()));
    let status = app
        .0
        .wait()
        .unwrap_or_else(|err| panic!("cannot wait for the application: {err}"));
    assert!(status.success(), "the application failed: {status}");
    (restored, log)
}

/// A child process killed when the test ends before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
