//! The harness of the `replicate` tests: a temporary folder holding databases and file
//! replicas, `litestream.yml` files with short intervals, a `replicate` process (ours or
//! Litestream 0.3.13) whose logs can be waited for and which is stopped by a signal, a python3
//! `sqlite3` writer committing numbered rows of `t (id, k, v)`, and digests of databases.
//!
//! Nothing here sleeps to wait for replication: [`wait_until`] polls a condition with a
//! deadline and panics with what it waited for.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// How long a `replicate` process may take to exit after a signal.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The schema every test database starts with; [`crate::support::fixtures::ROWS_SQL`] reads it.
pub(crate) const SCHEMA: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB);";

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary folder of databases and replicas, removed on drop.
pub(crate) struct Scene {
    dir: TempDir,
}

impl Scene {
    /// A new empty folder; kept after the test when `LS_TEST_KEEP` is set, for a post-mortem.
    pub(crate) fn new() -> Self {
        let mut dir = tempfile::tempdir().expect("cannot create a temporary directory");
        if std::env::var_os("LS_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
        }
        Self { dir }
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `relative` inside the folder.
    pub(crate) fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `text` to `relative` and returns its path.
    pub(crate) fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|err| panic!("cannot create {}: {err}", parent.display()));
        }
        fs::write(&path, text)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }

    /// A fresh path for a restored database, alone in a new folder.
    pub(crate) fn out_path(&self, name: &str) -> PathBuf {
        let dir = self.join(&format!("restored-{name}"));
        fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        dir.join("restored.db")
    }
}

/// The intervals and thresholds written into `litestream.yml` for every database.
#[derive(Clone, Debug)]
pub(crate) struct Tuning {
    /// `monitor-interval`.
    pub(crate) monitor_interval: &'static str,
    /// `checkpoint-interval`.
    pub(crate) checkpoint_interval: &'static str,
    /// `min-checkpoint-page-count`.
    pub(crate) min_checkpoint_page_count: u32,
    /// `max-checkpoint-page-count`.
    pub(crate) max_checkpoint_page_count: u32,
    /// The replicas' `sync-interval`.
    pub(crate) sync_interval: &'static str,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            monitor_interval: "100ms",
            checkpoint_interval: "1s",
            min_checkpoint_page_count: 100,
            max_checkpoint_page_count: 1000,
            sync_interval: "200ms",
        }
    }
}

/// A `litestream.yml` replicating each `(db, replica folder)` pair to a file replica named
/// `file`, with `tuning`, and `addr` when given.
pub(crate) fn config_yaml(
    pairs: &[(PathBuf, PathBuf)],
    tuning: &Tuning,
    addr: Option<&str>,
) -> String {
    let mut yaml = String::new();
    if let Some(addr) = addr {
        yaml.push_str(&format!("addr: \"{addr}\"\n"));
    }
    yaml.push_str("dbs:\n");
    for (db, replica) in pairs {
        yaml.push_str(&format!(
            "  - path: {}\n    monitor-interval: {}\n    checkpoint-interval: {}\n    \
             min-checkpoint-page-count: {}\n    max-checkpoint-page-count: {}\n    replicas:\n      \
             - type: file\n        path: {}\n        sync-interval: {}\n",
            db.display(),
            tuning.monitor_interval,
            tuning.checkpoint_interval,
            tuning.min_checkpoint_page_count,
            tuning.max_checkpoint_page_count,
            replica.display(),
            tuning.sync_interval,
        ));
    }
    yaml
}

/// The `file://` URL of a replica folder.
pub(crate) fn file_url(replica: &Path) -> String {
    format!("file://{}", replica.display())
}

/// How a `replicate` process ended.
#[derive(Debug)]
pub(crate) struct Exited {
    /// Exit code; `None` when a signal ended it.
    pub(crate) code: Option<i32>,
    /// stdout and stderr, interleaved as read.
    pub(crate) log: String,
}

/// A running `litestream replicate` (or any `litestream` command), its output collected as it
/// comes. Killed with SIGKILL on drop if still running.
pub(crate) struct Replicate {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
    what: String,
}

impl Replicate {
    /// Starts `bin args...` in `cwd`, with `$HOME` = `cwd` and no `$LITESTREAM_CONFIG`.
    pub(crate) fn start(bin: &Path, args: &[&str], cwd: &Path) -> Self {
        let what = format!("{} {}", bin.display(), args.join(" "));
        let mut child = Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .env("HOME", cwd)
            .env_remove("LITESTREAM_CONFIG")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start `{what}`: {err}"));
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![collect(stdout, &log), collect(stderr, &log)];
        Self {
            child: Some(child),
            log,
            readers,
            what,
        }
    }

    /// Starts `bin replicate -config config` in the config's folder.
    pub(crate) fn with_config(bin: &Path, config: &Path) -> Self {
        let cwd = config.parent().expect("a config path has a folder");
        let config = config.to_string_lossy();
        Self::start(bin, &["replicate", "-config", &config], cwd)
    }

    /// Everything printed so far.
    pub(crate) fn log(&self) -> String {
        self.log
            .lock()
            .expect("no reader panics holding the log")
            .clone()
    }

    /// How many lines printed so far contain `needle`.
    pub(crate) fn count(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Waits until at least `n` printed lines contain `needle`; panics with the log after
    /// `timeout` or when the process exits first.
    pub(crate) fn wait_for_lines(&mut self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count(needle) >= n {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "`{}` exited ({exited:?}) before printing {n} lines with {needle:?}:\n{}",
                self.what,
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "`{}`: no {n} lines with {needle:?} after {timeout:?}:\n{}",
                self.what,
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `condition` (given the log so far) every 20 ms until it holds; panics with
    /// `what` and the log after `timeout` or when the process exits first.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(&self.log()) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "`{}` exited ({exited:?}) before {what}:\n{}",
                self.what,
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "`{}`: timed out after {timeout:?} waiting for {what}:\n{}",
                self.what,
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for one line containing `needle`.
    pub(crate) fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_for_lines(needle, 1, timeout);
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("the process is running");
        Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"))
    }

    /// Sends `signal` and waits for the exit.
    pub(crate) fn stop(self, signal: Signal) -> Exited {
        kill(self.pid(), signal)
            .unwrap_or_else(|err| panic!("cannot send {signal} to `{}`: {err}", self.what));
        self.wait(EXIT_TIMEOUT)
    }

    /// SIGTERM, then the exit; panics unless it exits 0.
    pub(crate) fn stop_ok(self) -> Exited {
        let what = self.what.clone();
        let exited = self.stop(Signal::SIGTERM);
        assert_eq!(
            exited.code,
            Some(0),
            "`{what}` did not exit 0 on SIGTERM:\n{}",
            exited.log
        );
        exited
    }

    /// Sends `signal` and waits up to `timeout` for the exit; kills the process instead of
    /// panicking when it hangs (Litestream 0.3.13's shutdown can deadlock when its final sync
    /// races its replica monitor), so `code` is `None` then. Only for the reference binary:
    /// callers check the replica themselves.
    pub(crate) fn stop_or_kill(mut self, signal: Signal, timeout: Duration) -> Exited {
        kill(self.pid(), signal)
            .unwrap_or_else(|err| panic!("cannot send {signal} to `{}`: {err}", self.what));
        let child = self.child.as_mut().expect("the process is running");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(err) => panic!("cannot wait for `{}`: {err}", self.what),
            }
        }
        // Already exited, or hung: SIGKILL is then the way out (an error means it is gone).
        let _ = child.kill();
        self.wait(EXIT_TIMEOUT)
    }

    /// Waits for the process to exit on its own; kills it and panics after `timeout`.
    pub(crate) fn wait(mut self, timeout: Duration) -> Exited {
        let mut child = self.child.take().expect("the process is running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    // Best effort: the panic below is the report.
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "`{}` still running after {timeout:?}: killed\n{}",
                        self.what,
                        self.log()
                    );
                }
                Err(err) => panic!("cannot wait for `{}`: {err}", self.what),
            }
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("log readers do not panic");
        }
        Exited {
            code: status.code(),
            log: self.log(),
        }
    }
}

impl Drop for Replicate {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Cleanup after a failed test: the process may already be gone.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn collect(pipe: impl Read + Send + 'static, log: &Arc<Mutex<String>>) -> thread::JoinHandle<()> {
    let log = Arc::clone(log);
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        // A read error ends the log; assertions on it then fail with what was read.
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            log.lock()
                .expect("no reader panics holding the log")
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

/// Runs `script` on `db` with python3's `sqlite3` (autocommit; `executescript`); panics with
/// python's error on failure.
pub(crate) fn sql(db: &Path, script: &str) {
    const RUNNER: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.executescript(sys.argv[2])
con.close()
"#;
    python(&[RUNNER, &db.to_string_lossy(), script]);
}

/// Runs `script` on each of `dbs` as [`sql`] does, with one python3 run.
pub(crate) fn sql_many(dbs: &[PathBuf], script: &str) {
    const RUNNER: &str = r#"
import sqlite3, sys
for path in sys.argv[2:]:
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.executescript(sys.argv[1])
    con.close()
"#;
    let mut args: Vec<String> = vec![RUNNER.to_owned(), script.to_owned()];
    args.extend(dbs.iter().map(|db| db.to_string_lossy().into_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    python(&refs);
}

/// Creates `db` in WAL mode with page size `page_size` and the table `t`.
pub(crate) fn create_db(db: &Path, page_size: u32) {
    sql(
        db,
        &format!("PRAGMA page_size={page_size}; PRAGMA journal_mode=WAL; {SCHEMA}"),
    );
}

/// Commits rows `first..first+count` of `t` in one transaction, `k = 'row-<id>'` and
/// `v = randomblob(blob)`.
pub(crate) fn insert_rows(db: &Path, first: u64, count: u64, blob: u32) {
    let last = first + count;
    sql(
        db,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i+1 FROM n WHERE i+1 < {last}) \
             INSERT INTO t (id, k, v) SELECT i, 'row-'||i, randomblob({blob}) FROM n WHERE i < {last};"
        ),
    );
}

fn python(args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3: {err}"));
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the background [`Writer`] does.
#[derive(Clone, Debug)]
pub(crate) struct WriterPlan {
    /// The id of the first row.
    pub(crate) first_id: u64,
    /// How many rows to commit; 0 = until [`Writer::finish`].
    pub(crate) count: u64,
    /// Size of each row's random blob.
    pub(crate) blob: u32,
    /// Issue `PRAGMA wal_checkpoint(...)` after every this many commits (0 = never), cycling
    /// through PASSIVE, FULL, RESTART, TRUNCATE.
    pub(crate) checkpoint_every: u64,
    /// Pause after each commit, in milliseconds.
    pub(crate) pause_ms: u64,
}

/// A python3 process committing numbered rows (one per transaction) to a database and
/// reporting each commit as it happens. Its connection stays open until [`Writer::finish`],
/// so closing it never checkpoints and deletes the WAL before then.
pub(crate) struct Writer {
    child: Option<Child>,
    commits: Arc<Mutex<Vec<(u64, Instant)>>>,
    checkpoints: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
    stop_file: PathBuf,
    done: Arc<AtomicBool>,
}

/// Starts `python3 -c script args...` with stdin closed and stderr inherited; returns the child
/// and its piped stdout.
pub(crate) fn spawn_python(script: &str, args: &[&OsStr]) -> (Child, ChildStdout) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run python3: {err}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    (child, stdout)
}

impl Writer {
    /// Starts writing to `db` (which has the table `t`) as `plan` says.
    pub(crate) fn start(db: &Path, plan: &WriterPlan) -> Self {
        const SCRIPT: &str = r#"
import os, sqlite3, sys, time
db, first, count, blob, every, pause, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
con = sqlite3.connect(db, timeout=30, isolation_level=None)
modes = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"]
i, n = first, 0
while (count == 0 and not os.path.exists(stop)) or (count > 0 and i < first + count):
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO t (id, k, v) VALUES (?, ?, randomblob(?))", (i, "row-%d" % i, blob))
    con.execute("COMMIT")
    print(i, flush=True)
    if every and (i - first + 1) % every == 0:
        mode = modes[n % 4]
        n += 1
        con.execute("PRAGMA busy_timeout=100")
        r = con.execute("PRAGMA wal_checkpoint(%s)" % mode).fetchone()
        con.execute("PRAGMA busy_timeout=30000")
        print("checkpoint %s %s" % (mode, r), flush=True)
    if pause:
        time.sleep(pause / 1000)
    i += 1
print("done", flush=True)
while not os.path.exists(stop):
    time.sleep(0.01)
con.close()
"#;
        let stop_file = db.with_extension("writer-stop");
        // A stale stop file from an earlier writer on the same database.
        let _ = fs::remove_file(&stop_file);
        let (child, stdout) = spawn_python(
            SCRIPT,
            &[
                db.as_os_str(),
                plan.first_id.to_string().as_ref(),
                plan.count.to_string().as_ref(),
                plan.blob.to_string().as_ref(),
                plan.checkpoint_every.to_string().as_ref(),
                plan.pause_ms.to_string().as_ref(),
                stop_file.as_os_str(),
            ],
        );
        let commits = Arc::new(Mutex::new(Vec::new()));
        let checkpoints = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let done = Arc::clone(&done);
            let commits = Arc::clone(&commits);
            let checkpoints = Arc::clone(&checkpoints);
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(id) = line.trim().parse::<u64>() {
                        commits
                            .lock()
                            .expect("no panic holding the commits")
                            .push((id, Instant::now()));
                    } else if line == "done" {
                        done.store(true, Ordering::SeqCst);
                    } else if line.starts_with("checkpoint") {
                        checkpoints
                            .lock()
                            .expect("no panic holding the checkpoints")
                            .push(line);
                    }
                }
            })
        };
        Self {
            child: Some(child),
            commits,
            checkpoints,
            reader: Some(reader),
            stop_file,
            done,
        }
    }

    /// Every commit reported so far: row id and when the report arrived (just after the
    /// commit returned).
    pub(crate) fn commits(&self) -> Vec<(u64, Instant)> {
        self.commits
            .lock()
            .expect("no panic holding the commits")
            .clone()
    }

    /// Waits until a bounded writer committed all its rows; it keeps its connection open (so
    /// the WAL stays) until [`Writer::finish`].
    pub(crate) fn wait_done(&self, timeout: Duration) {
        wait_until("the writer's last commit", timeout, || {
            self.done.load(Ordering::SeqCst)
        });
    }

    /// Waits until at least `n` commits were reported.
    pub(crate) fn wait_for_commits(&self, n: usize, timeout: Duration) {
        wait_until(&format!("{n} commits of the writer"), timeout, || {
            self.commits().len() >= n
        });
    }

    /// Asks an endless writer to stop, waits for it (a bounded one simply finishes), and
    /// returns the commits and the checkpoint lines it printed; panics if python failed.
    pub(crate) fn finish(mut self, timeout: Duration) -> (Vec<(u64, Instant)>, Vec<String>) {
        fs::write(&self.stop_file, "")
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", self.stop_file.display()));
        let mut child = self.child.take().expect("the writer is running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the writer still runs after {timeout:?}: killed");
                }
                Err(err) => panic!("cannot wait for the writer: {err}"),
            }
        };
        assert!(status.success(), "the writer failed: {status}");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the commit reader does not panic");
        }
        let checkpoints = self
            .checkpoints
            .lock()
            .expect("no panic holding the checkpoints")
            .clone();
        (self.commits(), checkpoints)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Cleanup after a failed test.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The rows of `t` and the health of a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Digest {
    /// Row count of `t` (rows with `id <= limit` when a limit was given).
    pub(crate) rows: u64,
    /// Smallest `id` (0 when empty).
    pub(crate) min_id: u64,
    /// Largest `id` (0 when empty).
    pub(crate) max_id: u64,
    /// SHA-256 of [`crate::support::fixtures::ROWS_SQL`]'s lines (each + `\n`).
    pub(crate) rows_sha256: String,
    /// `PRAGMA integrity_check`, lines joined with `; `.
    pub(crate) integrity: String,
    /// `PRAGMA page_size`.
    pub(crate) page_size: u64,
    /// The file digested (a copy for [`source_digest`]), for [`row_diff`].
    pub(crate) path: PathBuf,
}

impl Digest {
    /// Whether `t` holds exactly the rows `1..=max_id`, no gaps.
    pub(crate) fn is_prefix(&self) -> bool {
        self.rows == self.max_id && (self.rows == 0 || self.min_id == 1)
    }
}

/// Digests databases with python3's `sqlite3`, each line of the output for one path: rows of
/// `t` with `id <= limit` (all when `limit` is `None`). Opening them may checkpoint their WAL:
/// use [`source_digest`] for live databases.
pub(crate) fn digests(dbs: &[PathBuf], limit: Option<u64>) -> Vec<Digest> {
    const SCRIPT: &str = r#"
import hashlib, sqlite3, sys
limit = int(sys.argv[1])
for path in sys.argv[2:]:
    con = sqlite3.connect(path)
    where = "WHERE id <= %d" % limit if limit >= 0 else ""
    digest = hashlib.sha256()
    rows, lo, hi = 0, 0, 0
    for (i, line) in con.execute("SELECT id, id||'|'||k||'|'||hex(v) FROM t %s ORDER BY id" % where):
        digest.update(("" if line is None else line).encode() + b"\n")
        rows += 1
        lo = i if rows == 1 else lo
        hi = i
    integrity = "; ".join(r[0] for r in con.execute("PRAGMA integrity_check"))
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    print(rows, lo, hi, digest.hexdigest(), page_size, integrity)
    con.close()
"#;
    if dbs.is_empty() {
        return Vec::new();
    }
    for db in dbs {
        assert!(db.is_file(), "no database at {}", db.display());
    }
    let limit = limit.map_or_else(|| "-1".to_owned(), |limit| limit.to_string());
    let mut args: Vec<String> = vec![SCRIPT.to_owned(), limit];
    args.extend(dbs.iter().map(|db| db.to_string_lossy().into_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = python(&refs);
    let digests: Vec<Digest> = stdout
        .lines()
        .zip(dbs)
        .map(|(line, path)| {
            let mut fields = line.splitn(6, ' ');
            let mut next = || fields.next().unwrap_or_default().to_owned();
            let number = |text: String| -> u64 {
                text.parse()
                    .unwrap_or_else(|err| panic!("python3 printed {line:?}: {err}"))
            };
            let (rows, min_id, max_id) = (number(next()), number(next()), number(next()));
            let rows_sha256 = next();
            let page_size = number(next());
            Digest {
                rows,
                min_id,
                max_id,
                rows_sha256,
                integrity: next(),
                page_size,
                path: path.clone(),
            }
        })
        .collect();
    assert_eq!(digests.len(), dbs.len(), "python3 printed {stdout:?}");
    digests
}

/// The digest of one database (see [`digests`]).
pub(crate) fn digest(db: &Path) -> Digest {
    digests(&[db.to_path_buf()], None).remove(0)
}

/// The digest of a live database, read from a copy of it and its WAL so that nothing changes
/// beside it (opening it could checkpoint and delete the WAL, which `replicate` would see).
/// The copy is `<db>.source-copy/copy.db`, kept for [`row_diff`]. Call it when no writer
/// and no `replicate` is running on it.
pub(crate) fn source_digest(db: &Path) -> Digest {
    source_digests(&[db.to_path_buf()]).remove(0)
}

/// [`source_digest`] of several databases, with one python3 run.
pub(crate) fn source_digests(dbs: &[PathBuf]) -> Vec<Digest> {
    let copies: Vec<PathBuf> = dbs.iter().map(|db| copy_db(db)).collect();
    digests(&copies, None)
}

/// Copies `db` and its WAL to `<db>.source-copy/copy.db` (replacing an older copy).
fn copy_db(db: &Path) -> PathBuf {
    let mut dir = db.as_os_str().to_owned();
    dir.push(".source-copy");
    let dir = PathBuf::from(dir);
    // An older copy may be there.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
    let copy = dir.join("copy.db");
    fs::copy(db, &copy).unwrap_or_else(|err| panic!("cannot copy {}: {err}", db.display()));
    let wal = wal_path(db);
    if wal.is_file() {
        fs::copy(&wal, wal_path(&copy))
            .unwrap_or_else(|err| panic!("cannot copy {}: {err}", wal.display()));
    }
    copy
}

/// How the rows of `t` with `id <= limit` differ between databases `a` and `b`: ids only in
/// one of them and ids whose row differs (at most 20 of each), for failure messages.
pub(crate) fn row_diff(a: &Path, b: &Path, limit: u64) -> String {
    const SCRIPT: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("ATTACH ? AS o", (sys.argv[2],))
lim = int(sys.argv[3])
def ids(sql):
    return [r[0] for r in con.execute(sql, (lim,))]
print("only in restored:", ids("SELECT id FROM main.t WHERE id <= ? EXCEPT SELECT id FROM o.t ORDER BY 1 LIMIT 20"))
print("only in source:", ids("SELECT id FROM o.t WHERE id <= ? EXCEPT SELECT id FROM main.t ORDER BY 1 LIMIT 20"))
print("rows differ:", ids("SELECT a.id FROM main.t a JOIN o.t b ON a.id = b.id WHERE a.id <= ? AND (a.k IS NOT b.k OR a.v IS NOT b.v) ORDER BY 1 LIMIT 20"))
"#;
    python(&[
        SCRIPT,
        &a.to_string_lossy(),
        &b.to_string_lossy(),
        &limit.to_string(),
    ])
}

/// `<db>-wal`.
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Restores the latest state of the file replica at `replica` to `out` with `bin`, panicking
/// unless it succeeds, and digests it.
pub(crate) fn restore(bin: &Path, replica: &Path, out: &Path) -> Digest {
    let url = file_url(replica);
    let out_text = out.to_string_lossy();
    let cwd = out.parent().expect("an output path has a folder");
    let exited = Replicate::start(bin, &["restore", "-o", &out_text, &url], cwd)
        .wait(Duration::from_secs(120));
    assert_eq!(
        exited.code,
        Some(0),
        "`{} restore -o {out_text} {url}` failed:\n{}",
        bin.display(),
        exited.log
    );
    digest(out)
}

/// Asserts `restored` has exactly `expected`'s rows and passes `integrity_check`.
pub(crate) fn assert_same_rows(restored: &Digest, expected: &Digest, what: &str) {
    assert_eq!(restored.integrity, "ok", "{what}: integrity_check");
    let same = (
        restored.rows,
        restored.min_id,
        restored.max_id,
        &restored.rows_sha256,
    ) == (
        expected.rows,
        expected.min_id,
        expected.max_id,
        &expected.rows_sha256,
    );
    let diff = if same {
        String::new()
    } else {
        row_diff(
            &restored.path,
            &expected.path,
            expected.max_id.max(restored.max_id),
        )
    };
    assert_eq!(
        (
            restored.rows,
            restored.min_id,
            restored.max_id,
            &restored.rows_sha256
        ),
        (
            expected.rows,
            expected.min_id,
            expected.max_id,
            &expected.rows_sha256
        ),
        "{what}: rows (count, min id, max id, sha256) differ from the source ({} vs {}):\n{diff}",
        restored.path.display(),
        expected.path.display()
    );
}

/// The generation names in a file replica, sorted.
pub(crate) fn generations(replica: &Path) -> Vec<String> {
    let mut names = list(&replica.join("generations"));
    names.sort();
    names
}

/// The snapshot file names of one generation of a file replica, sorted.
pub(crate) fn snapshots(replica: &Path, generation: &str) -> Vec<String> {
    let mut names = list(
        &replica
            .join("generations")
            .join(generation)
            .join("snapshots"),
    );
    names.sort();
    names
}

/// The WAL segment file names of one generation of a file replica, sorted.
pub(crate) fn segments(replica: &Path, generation: &str) -> Vec<String> {
    let mut names = list(&replica.join("generations").join(generation).join("wal"))
        .into_iter()
        .filter(|name| name.ends_with(".wal.lz4"))
        .collect::<Vec<_>>();
    names.sort();
    names
}

/// Whether the file replica has a snapshot and a WAL segment in some generation.
pub(crate) fn has_synced(replica: &Path) -> bool {
    generations(replica).iter().any(|generation| {
        !snapshots(replica, generation).is_empty() && !segments(replica, generation).is_empty()
    })
}

/// The names in `dir` (none when it does not exist).
fn list(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// `GET path` over HTTP/1.0 from `addr`; the whole response, or `None` when the connection
/// fails.
pub(crate) fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// A small deterministic random generator (SplitMix64) for seeded test schedules.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`high > low`).
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }
}

impl Replicate {
    /// How many bytes were printed so far: a mark for [`Replicate::poll_log_since`].
    pub(crate) fn log_len(&self) -> usize {
        self.log
            .lock()
            .expect("no reader panics holding the log")
            .len()
    }

    /// Polls the log every millisecond until text printed after byte `mark` (see
    /// [`Replicate::log_len`]) contains `needle`; returns whether it did within `timeout`.
    /// Panics with the log when the process exits first. Finer than [`Replicate::wait_until`],
    /// for tests that act the moment a line appears (a kill in the middle of an upload).
    pub(crate) fn poll_log_since(&mut self, mark: usize, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .log
                .lock()
                .expect("no reader panics holding the log")
                .get(mark..)
                .is_some_and(|text| text.contains(needle));
            if found {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "`{}` exited ({exited:?}) while waiting for {needle:?}:\n{}",
                self.what,
                self.log()
            );
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}
