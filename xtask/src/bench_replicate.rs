//! `cargo xtask bench replicate`: our release `litestream replicate` against the real Litestream
//! 0.3.13, both run as `replicate DB file://DIR` (sync and monitor intervals of 1 s), one after
//! the other on the same kind of database, in one run that prints every figure for both tools
//! with the ratio and a PASS/MISS verdict against the targets of issue #4:
//!
//! 1. replication lag, commit returned to durable in the file replica, p50 and p99: (a) one small
//!    commit every 300 ms, 60 commits; (b) 200 commits/s for 20 s;
//! 2. CPU seconds (utime + stime from `/proc/<pid>/stat`) and peak RSS (`VmHWM` from
//!    `/proc/<pid>/status`) of the replicate process under 200 commits/s for 60 s;
//! 3. CPU seconds over 60 s on a quiet database;
//! 4. time from start to the first snapshot of a ~1 GiB database, and peak RSS meanwhile;
//! 5. peak RSS while one ~200 MB transaction is replicated to completion.
//!
//! `BENCH_REPLICATE_SECS` shortens the 60 s windows of 2 and 3 for quick runs;
//! `BENCH_REPLICATE_ROUNDS=N` measures 2 and 3 N times, the tools taking turns, and prints the
//! median (both tools' CPU figures vary by 10-20% from run to run). Work happens under
//! `target/bench/replicate/`; the 1 GiB database is built once there (delete it to rebuild).
//!
//! How lag is measured: a python3 `sqlite3` writer commits numbered rows and, after each commit
//! returns, notes the time and the *key* of its commit frame: the salts and checksums of the
//! frame header (bytes 8..24), which it finds by walking the frame headers of the `-wal` file
//! from where it stopped last time (restarting at the header when the WAL salt changes). That
//! key names the commit uniquely, whatever WAL index or offset either tool gives it. Meanwhile a
//! thread lists the replica's `wal/` directory every 5 ms and notes when each segment first
//! appears under its final name (both tools write a temporary file and rename it, so a visible
//! segment is complete and durable). Afterwards each segment is LZ4-decoded and its commit frames'
//! keys collected; the lag of a commit is the first sighting of a segment holding its key minus
//! its commit time, so the precision is the 5 ms poll period.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail};

use crate::bench::{
    LARGE_ROWS, build_ours, count_files, cpu_time, create_db, kib_ratio, list_files, reference_bin,
    stop, wait_until,
};
use crate::chart;

/// Commits of case 1a, one every [`SPORADIC_INTERVAL`].
const SPORADIC_COMMITS: u32 = 60;
const SPORADIC_INTERVAL: Duration = Duration::from_millis(300);
/// Commits per second of the sustained load (1b, 2).
const RATE: u32 = 200;
/// Length of the sustained load of 1b.
const LAG_LOAD_SECS: u32 = 20;
/// Default window of figures 2 and 3; `BENCH_REPLICATE_SECS` overrides it.
const WINDOW_SECS: u32 = 60;
const WINDOW_ENV: &str = "BENCH_REPLICATE_SECS";
/// Rounds of figures 2 and 3 (default 1); each figure is then the median round.
const ROUNDS_ENV: &str = "BENCH_REPLICATE_ROUNDS";
/// Rows of the small database the lag, CPU and big-transaction cases start from.
const SMALL_ROWS: u64 = 1_000;
/// Figure 5: one transaction of `BIG_ROWS` rows of `BIG_ROW_BYTES` random bytes.
const BIG_ROWS: u32 = 200;
const BIG_ROW_BYTES: u32 = 1 << 20;
/// Page size of every database here (`CREATE_DB_PY` in `bench.rs` sets it).
const PAGE_SIZE: u64 = 4096;
/// Bytes of a WAL header and of a WAL frame header.
const WAL_HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;
/// How often the replica's `wal/` directory is listed while measuring lag.
const SEGMENT_POLL: Duration = Duration::from_millis(5);
/// Longest wait, after the writer's last commit, for the replica to hold every commit.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// Commits `argv[2]` transactions of `argv[4]` rows of `argv[5]` random bytes into `argv[1]`,
/// one every `argv[3]` seconds (on a fixed schedule). Unless `argv[6]` is `-`, writes there one
/// line per commit: its commit time in ns since the epoch and the hex key of its commit frame
/// (header bytes 8..24: salts and checksums), found by walking the `-wal` frame headers. Prints
/// the seconds the commits took.
const WRITER_PY: &str = r#"
import sqlite3, sys, time
db, n, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rows, size, out = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
con = sqlite3.connect(db, timeout=30)
con.execute("PRAGMA busy_timeout=30000")
con.execute("PRAGMA synchronous=NORMAL")
rec = None if out == "-" else open(out, "w")
wal, salt, off = None, None, 32
t0 = time.time()
for i in range(n):
    wait = t0 + i * interval - time.time()
    if wait > 0:
        time.sleep(wait)
    con.executemany(
        "INSERT INTO t (k, v) VALUES (?, randomblob(?))",
        [("c%d.%d" % (i, r), size) for r in range(rows)],
    )
    con.commit()
    t = time.time_ns()
    if rec is None:
        continue
    if wal is None:
        wal = open(db + "-wal", "rb")
    wal.seek(0)
    h = wal.read(32)
    key = None
    if len(h) == 32:
        frame = 24 + int.from_bytes(h[8:12], "big")
        if h[16:24] != salt:
            salt, off = h[16:24], 32
        while True:
            wal.seek(off)
            f = wal.read(24)
            if len(f) < 24 or f[8:16] != salt:
                break
            off += frame
            if f[4:8] != b"\0\0\0\0":
                key = f[8:24]
    rec.write("%d %s\n" % (t, key.hex() if key else "-"))
if rec is not None:
    rec.close()
print(time.time() - t0)
"#;

/// Empties the WAL of `argv[1]` into the database.
const CHECKPOINT_PY: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
"#;

/// A replicate binary under test.
struct Tool {
    name: &'static str,
    bin: PathBuf,
}

/// Lags of the commits of one run, in ms, and what the run did.
struct Lags {
    sorted_ms: Vec<f64>,
    /// Commits whose frame no replicated segment holds (or whose key the writer missed).
    missing: usize,
    /// Commits per second the writer achieved.
    rate: f64,
    /// `VmHWM` of the replicate process at the end, KiB.
    hwm_kib: u64,
}

/// CPU and memory of one replicate process over a window.
struct Usage {
    cpu: Duration,
    hwm_kib: u64,
}

/// One printed figure: ours, Litestream's, and the target ratio if there is one.
struct Row {
    label: String,
    unit: &'static str,
    ours: f64,
    theirs: f64,
    target: Option<f64>,
}

/// Runs `cargo xtask bench replicate`.
///
/// # Errors
/// When a tool is missing, a set-up step fails, or a replicate process dies or falls behind.
pub(crate) fn run(root: &Path) -> Result<()> {
    let reference = reference_bin(root)?;
    let ours = build_ours(root)?;
    let tools = [
        Tool {
            name: "ours",
            bin: ours,
        },
        Tool {
            name: "0.3.13",
            bin: reference,
        },
    ];
    let window = window_secs()?;
    let work = root.join("target").join("bench").join("replicate");
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let large_db = build_large(&work)?;

    let mut rows = Vec::new();
    let [sporadic_ours, sporadic_theirs] = each(&tools, |tool| {
        println!(
            "bench replicate (1a) {}: {SPORADIC_COMMITS} commits, one every {SPORADIC_INTERVAL:?}",
            tool.name
        );
        commit_lags(
            &work,
            tool,
            "sporadic",
            SPORADIC_COMMITS,
            SPORADIC_INTERVAL,
            1,
            200,
        )
    })?;
    lag_rows(
        &mut rows,
        "1a sporadic",
        &sporadic_ours,
        &sporadic_theirs,
        Some(0.1),
        None,
    );
    let [load_ours, load_theirs] = each(&tools, |tool| {
        println!(
            "bench replicate (1b) {}: {RATE} commits/s for {LAG_LOAD_SECS} s",
            tool.name
        );
        commit_lags(
            &work,
            tool,
            "sustained",
            RATE * LAG_LOAD_SECS,
            rate_interval(),
            1,
            200,
        )
    })?;
    lag_rows(
        &mut rows,
        "1b 200 tx/s",
        &load_ours,
        &load_theirs,
        None,
        Some(1.0),
    );

    let rounds = rounds()?;
    let [busy_ours, busy_theirs] = each_round(&tools, rounds, |tool, round| {
        println!(
            "bench replicate (2) {} round {round}/{rounds}: CPU and RSS under {RATE} commits/s \
             for {window} s",
            tool.name
        );
        usage(&work, tool, window, true)
    })?;
    rows.push(Row::secs(
        format!("2 CPU, {window} s at 200 tx/s"),
        busy_ours.cpu,
        busy_theirs.cpu,
        Some(0.5),
    ));
    rows.push(Row::mib(
        "2 peak RSS, 200 tx/s",
        busy_ours.hwm_kib,
        busy_theirs.hwm_kib,
        Some(0.5),
    ));

    let [idle_ours, idle_theirs] = each_round(&tools, rounds, |tool, round| {
        println!(
            "bench replicate (3) {} round {round}/{rounds}: CPU over {window} s idle",
            tool.name
        );
        usage(&work, tool, window, false)
    })?;
    rows.push(Row::secs(
        format!("3 CPU, {window} s idle"),
        idle_ours.cpu,
        idle_theirs.cpu,
        Some(0.2),
    ));

    let [snap_ours, snap_theirs] = each(&tools, |tool| {
        println!(
            "bench replicate (4) {}: first snapshot of a ~1 GiB database",
            tool.name
        );
        first_snapshot(&work, tool, &large_db)
    })?;
    rows.push(Row::secs(
        "4 first snapshot, 1 GiB".into(),
        snap_ours.0,
        snap_theirs.0,
        None,
    ));
    rows.push(Row::mib(
        "4 peak RSS, 1 GiB snapshot",
        snap_ours.1,
        snap_theirs.1,
        Some(0.5),
    ));

    let [big_ours, big_theirs] = each(&tools, |tool| {
        println!(
            "bench replicate (5) {}: one ~{} MB transaction",
            tool.name,
            BIG_ROWS * BIG_ROW_BYTES / 1_000_000
        );
        commit_lags(
            &work,
            tool,
            "big",
            1,
            Duration::ZERO,
            BIG_ROWS,
            BIG_ROW_BYTES,
        )
    })?;
    for (tool, lags) in [("ours", &big_ours), ("0.3.13", &big_theirs)] {
        if lags.missing > 0 {
            bail!("(5) {tool}: the big transaction never reached the replica");
        }
    }
    rows.push(Row::mib(
        "5 peak RSS, 200 MB tx",
        big_ours.hwm_kib,
        big_theirs.hwm_kib,
        Some(0.5),
    ));
    rows.push(Row {
        label: "5 200 MB tx commit->replica".into(),
        unit: "s",
        ours: percentile(&big_ours.sorted_ms, 100) / 1000.0,
        theirs: percentile(&big_theirs.sorted_ms, 100) / 1000.0,
        target: None,
    });

    println!();
    for (name, ours, theirs) in [
        ("1a sporadic", &sporadic_ours, &sporadic_theirs),
        ("1b 200 tx/s", &load_ours, &load_theirs),
    ] {
        println!(
            "{name}: {} commits, {:.0}/{:.0} tx/s achieved, {}/{} not found in the replica (ours/0.3.13)",
            ours.sorted_ms.len() + ours.missing,
            ours.rate,
            theirs.rate,
            ours.missing,
            theirs.missing,
        );
    }
    println!(
        "\n{:<32} {:>10} {:>10} {:>8} {:>8}  verdict",
        "figure", "ours", "0.3.13", "ratio", "target"
    );
    for row in &rows {
        row.print();
    }
    let svg = work.join("lag.svg");
    let sporadic_title = format!("1a sporadic: a commit every {SPORADIC_INTERVAL:?}");
    let sustained_title = format!("1b sustained: {RATE} commits/s");
    chart::write_lag_chart(
        &svg,
        &[
            chart::LagPanel {
                title: &sporadic_title,
                ours_ms: &sporadic_ours.sorted_ms,
                theirs_ms: &sporadic_theirs.sorted_ms,
            },
            chart::LagPanel {
                title: &sustained_title,
                ours_ms: &load_ours.sorted_ms,
                theirs_ms: &load_theirs.sorted_ms,
            },
        ],
    )?;
    println!("\nchart: {}", svg.display());
    Ok(())
}

impl Row {
    fn secs(label: String, ours: Duration, theirs: Duration, target: Option<f64>) -> Self {
        Self {
            label,
            unit: "s",
            ours: ours.as_secs_f64(),
            theirs: theirs.as_secs_f64(),
            target,
        }
    }

    fn mib(label: &str, ours: u64, theirs: u64, target: Option<f64>) -> Self {
        Self {
            label: label.into(),
            unit: "MiB",
            ours: kib_ratio(ours, 1024),
            theirs: kib_ratio(theirs, 1024),
            target,
        }
    }

    fn print(&self) {
        let ratio = if self.theirs > 0.0 {
            self.ours / self.theirs
        } else {
            f64::INFINITY
        };
        let (target, verdict) = match self.target {
            Some(target) if ratio <= target => (format!("<={target:.2}"), "PASS"),
            Some(target) => (format!("<={target:.2}"), "MISS"),
            None => ("-".into(), "-"),
        };
        let label = format!("{} ({})", self.label, self.unit);
        println!(
            "{label:<32} {:>10.3} {:>10.3} {ratio:>8.3} {target:>8}  {verdict}",
            self.ours, self.theirs
        );
    }
}

/// Runs `f` for each tool in turn.
fn each<T>(tools: &[Tool; 2], mut f: impl FnMut(&Tool) -> Result<T>) -> Result<[T; 2]> {
    let ours = f(&tools[0]).with_context(|| format!("with {}", tools[0].name))?;
    let theirs = f(&tools[1]).with_context(|| format!("with {}", tools[1].name))?;
    Ok([ours, theirs])
}

/// Figures 2 and 3 measured `rounds` times, the tools taking turns: for each tool the median
/// CPU time and the highest peak RSS.
fn each_round(
    tools: &[Tool; 2],
    rounds: u32,
    mut f: impl FnMut(&Tool, u32) -> Result<Usage>,
) -> Result<[Usage; 2]> {
    let mut runs: [Vec<Usage>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let [ours, theirs] = each(tools, |tool| f(tool, round))?;
        runs[0].push(ours);
        runs[1].push(theirs);
    }
    Ok(runs.map(|mut runs| {
        runs.sort_by_key(|run| run.cpu);
        let hwm_kib = runs.iter().map(|run| run.hwm_kib).max().unwrap_or(0);
        let cpu = runs
            .get(runs.len() / 2)
            .map_or(Duration::ZERO, |run| run.cpu);
        if runs.len() > 1 {
            let all: Vec<String> = runs
                .iter()
                .map(|run| format!("{:.3}", run.cpu.as_secs_f64()))
                .collect();
            println!("  CPU per round (s, sorted): {}", all.join(" "));
        }
        Usage { cpu, hwm_kib }
    }))
}

fn rounds() -> Result<u32> {
    match std::env::var(ROUNDS_ENV) {
        Ok(text) => match text.parse() {
            Ok(0) | Err(_) => bail!("{ROUNDS_ENV}={text:?} is not a positive number of rounds"),
            Ok(rounds) => Ok(rounds),
        },
        Err(_) => Ok(1),
    }
}

fn lag_rows(
    rows: &mut Vec<Row>,
    what: &str,
    ours: &Lags,
    theirs: &Lags,
    p50_target: Option<f64>,
    p99_target: Option<f64>,
) {
    for (pct, target) in [(50, p50_target), (99, p99_target)] {
        rows.push(Row {
            label: format!("{what} lag p{pct}"),
            unit: "ms",
            ours: percentile(&ours.sorted_ms, pct),
            theirs: percentile(&theirs.sorted_ms, pct),
            target,
        });
    }
}

/// Nearest-rank percentile of sorted values; NaN when there are none.
fn percentile(sorted: &[f64], pct: usize) -> f64 {
    let rank = (sorted.len() * pct).div_ceil(100);
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN)
}

fn rate_interval() -> Duration {
    Duration::from_secs(1) / RATE
}

fn window_secs() -> Result<u32> {
    match std::env::var(WINDOW_ENV) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{WINDOW_ENV}={text:?} is not a number of seconds")),
        Err(_) => Ok(WINDOW_SECS),
    }
}

/// A running `replicate DB file://DIR`, killed if dropped before [`Replicate::stop`].
struct Replicate {
    child: Child,
    replica: PathBuf,
}

impl Replicate {
    /// Starts `tool` on `db` into `replica` (removed first), logging to `<replica>.log`, and
    /// waits for its first snapshot.
    fn start(tool: &Tool, db: &Path, replica: &Path) -> Result<Self> {
        let _ = fs::remove_dir_all(replica);
        let log_path = replica.with_extension("log");
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("cannot reopen {}", log_path.display()))?;
        let child = Command::new(&tool.bin)
            .arg("replicate")
            .arg(db)
            .arg(format!("file://{}", replica.display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("cannot start {} replicate", tool.bin.display()))?;
        Ok(Self {
            child,
            replica: replica.to_owned(),
        })
    }

    fn wait_for_snapshot(&mut self) -> Result<()> {
        let replica = self.replica.clone();
        wait_until(&mut self.child, "the first snapshot", || {
            Ok(count_files(&replica, "snapshots", ".snapshot.lz4")? >= 1)
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("replicate exited early: {status}");
        }
        Ok(())
    }

    fn stop(mut self) -> Result<()> {
        stop(&mut self.child)
    }
}

impl Drop for Replicate {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh directory `work/<case>-<tool>` holding a small database `app.db`.
fn fresh_small_db(work: &Path, tool: &Tool, case: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = work.join(format!("{case}-{}", tool.name));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let db = dir.join("app.db");
    create_db(&db, SMALL_ROWS)?;
    Ok((db, dir.join("replica")))
}

/// Runs the writer (see [`WRITER_PY`]); returns the seconds its commits took.
fn run_writer(
    db: &Path,
    commits: u32,
    interval: Duration,
    rows: u32,
    bytes: u32,
    out: Option<&Path>,
) -> Result<f64> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(WRITER_PY)
        .arg(db)
        .arg(commits.to_string())
        .arg(interval.as_secs_f64().to_string())
        .arg(rows.to_string())
        .arg(bytes.to_string())
        .arg(out.map_or_else(|| "-".into(), |out| out.display().to_string()))
        .stdin(Stdio::null())
        .output()
        .context("cannot run the python3 writer")?;
    if !output.status.success() {
        bail!(
            "the python3 writer failed: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("the python3 writer printed {text:?}"))
}

/// Figures 1 and 5: replicates a fresh small database while the writer commits, and returns
/// each commit's lag (see the module doc) and the process's peak RSS.
fn commit_lags(
    work: &Path,
    tool: &Tool,
    case: &str,
    commits: u32,
    interval: Duration,
    rows: u32,
    bytes: u32,
) -> Result<Lags> {
    let (db, replica) = fresh_small_db(work, tool, case)?;
    let mut replicate = Replicate::start(tool, &db, &replica)?;
    replicate.wait_for_snapshot()?;
    let stop_poll = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<BTreeMap<PathBuf, SystemTime>>> = Arc::default();
    let poller = {
        let (stop_poll, seen, replica) =
            (Arc::clone(&stop_poll), Arc::clone(&seen), replica.clone());
        thread::spawn(move || poll_segments(&replica, &stop_poll, &seen))
    };
    let res = track_commits(&mut replicate, &seen, &db, commits, interval, rows, bytes);
    stop_poll.store(true, Ordering::Relaxed);
    let _ = poller.join();
    let hwm = vm_hwm_kib(replicate.pid());
    replicate.stop()?;
    let (mut lags, missing, rate) = res?;
    lags.sort_by(f64::total_cmp);
    Ok(Lags {
        sorted_ms: lags,
        missing,
        rate,
        hwm_kib: hwm?,
    })
}

/// Runs the writer, then decodes the segments `seen` until every commit is in one (or
/// [`CATCH_UP_TIMEOUT`]). Returns the lags in ms, the commits not found, and the rate achieved.
fn track_commits(
    replicate: &mut Replicate,
    seen: &Mutex<BTreeMap<PathBuf, SystemTime>>,
    db: &Path,
    commits: u32,
    interval: Duration,
    rows: u32,
    bytes: u32,
) -> Result<(Vec<f64>, usize, f64)> {
    let record = db.with_extension("commits");
    let secs = run_writer(db, commits, interval, rows, bytes, Some(&record))?;
    let rate = f64::from(commits) / secs.max(1e-9);
    let text =
        fs::read_to_string(&record).with_context(|| format!("cannot read {}", record.display()))?;
    let mut wanted: Vec<(SystemTime, Option<[u8; 16]>)> = Vec::new();
    for line in text.lines() {
        let (nanos, key) = line
            .split_once(' ')
            .with_context(|| format!("bad line {line:?} in {}", record.display()))?;
        let nanos: u64 = nanos
            .parse()
            .with_context(|| format!("bad time {nanos:?} in {}", record.display()))?;
        wanted.push((
            SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos),
            parse_key(key),
        ));
    }
    let keys: HashSet<[u8; 16]> = wanted.iter().filter_map(|(_, key)| *key).collect();
    let mut first_seen: HashMap<[u8; 16], SystemTime> = HashMap::new();
    let mut decoded: HashSet<PathBuf> = HashSet::new();
    let started = Instant::now();
    loop {
        let segments: Vec<(PathBuf, SystemTime)> = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("the segment poller panicked"))?
            .iter()
            .map(|(path, time)| (path.clone(), *time))
            .collect();
        for (path, time) in segments {
            if !decoded.insert(path.clone()) {
                continue;
            }
            for key in commit_keys(&path)? {
                let entry = first_seen.entry(key).or_insert(time);
                *entry = (*entry).min(time);
            }
        }
        if keys.iter().all(|key| first_seen.contains_key(key)) {
            break;
        }
        replicate.check_alive()?;
        if started.elapsed() > CATCH_UP_TIMEOUT {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut lags = Vec::new();
    let mut missing = 0;
    for (committed, key) in wanted {
        match key.and_then(|key| first_seen.get(&key)) {
            Some(replicated) => lags.push(match replicated.duration_since(committed) {
                Ok(lag) => lag.as_secs_f64() * 1000.0,
                Err(early) => -early.duration().as_secs_f64() * 1000.0,
            }),
            None => missing += 1,
        }
    }
    Ok((lags, missing, rate))
}

/// Lists `replica`'s WAL segments every [`SEGMENT_POLL`] until `stop`, noting when each first
/// appears.
fn poll_segments(replica: &Path, stop: &AtomicBool, seen: &Mutex<BTreeMap<PathBuf, SystemTime>>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(segments) = list_files(replica, "wal", ".wal.lz4") {
            let now = SystemTime::now();
            let Ok(mut seen) = seen.lock() else { return };
            for segment in segments {
                seen.entry(segment).or_insert(now);
            }
        }
        thread::sleep(SEGMENT_POLL);
    }
}

/// 32 hex digits as 16 bytes; `None` for anything else (the writer's `-`).
fn parse_key(hex: &str) -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    (hex.len() == 32).then_some(key)
}

/// The keys (frame header bytes 8..24) of the commit frames in the WAL segment at `path`, named
/// `<index>_<offset>.wal.lz4` (offsets in the WAL; the segment at offset 0 holds the header).
fn commit_keys(path: &Path) -> Result<Vec<[u8; 16]>> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let offset = name
        .strip_suffix(".wal.lz4")
        .and_then(|stem| stem.split_once('_'))
        .and_then(|(_, offset)| u64::from_str_radix(offset, 16).ok())
        .with_context(|| format!("not a WAL segment name: {}", path.display()))?;
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut data = Vec::new();
    lz4_flex::frame::FrameDecoder::new(file)
        .read_to_end(&mut data)
        .with_context(|| format!("cannot decode {}", path.display()))?;
    let frame = FRAME_HEADER + PAGE_SIZE;
    // The first frame boundary at or after `offset`, relative to the segment's first byte.
    let first = if offset < WAL_HEADER {
        WAL_HEADER - offset
    } else {
        (frame - (offset - WAL_HEADER) % frame) % frame
    };
    let (first, frame) = (usize::try_from(first)?, usize::try_from(frame)?);
    let mut keys = Vec::new();
    let mut at = first;
    while let Some(header) = data.get(at..at + 24) {
        if header.get(4..8) != Some(&[0, 0, 0, 0][..]) {
            let mut key = [0u8; 16];
            key.copy_from_slice(header.get(8..24).context("a 24-byte frame header")?);
            keys.push(key);
        }
        at += frame;
    }
    Ok(keys)
}

/// Figures 2 and 3: CPU time of `tool` over `secs` after its first snapshot, under the
/// sustained load or idle, and its peak RSS at the end.
fn usage(work: &Path, tool: &Tool, secs: u32, load: bool) -> Result<Usage> {
    let case = if load { "busy" } else { "idle" };
    let (db, replica) = fresh_small_db(work, tool, case)?;
    let mut replicate = Replicate::start(tool, &db, &replica)?;
    replicate.wait_for_snapshot()?;
    let pid = replicate.pid();
    let before = cpu_time(pid)?;
    if load {
        let took = run_writer(&db, RATE * secs, rate_interval(), 1, 200, None)?;
        println!("  {} commits in {took:.1} s", RATE * secs);
    } else {
        thread::sleep(Duration::from_secs(u64::from(secs)));
    }
    replicate.check_alive()?;
    let after = cpu_time(pid)?;
    let hwm_kib = vm_hwm_kib(pid)?;
    replicate.stop()?;
    let cpu = after.saturating_sub(before);
    println!(
        "  CPU {:.3} s, peak RSS {} MiB",
        cpu.as_secs_f64(),
        hwm_kib / 1024
    );
    Ok(Usage { cpu, hwm_kib })
}

/// Figure 4: time from starting `tool` on the ~1 GiB database to its first snapshot appearing
/// under its final name, and the peak RSS by then.
fn first_snapshot(work: &Path, tool: &Tool, db: &Path) -> Result<(Duration, u64)> {
    checkpoint(db)?;
    if let Some(dir) = db.parent() {
        let _ = fs::remove_dir_all(dir.join(".app.db-litestream"));
    }
    let replica = work.join("large").join(format!("replica-{}", tool.name));
    let started = Instant::now();
    let mut replicate = Replicate::start(tool, db, &replica)?;
    replicate.wait_for_snapshot()?;
    let took = started.elapsed();
    let hwm_kib = vm_hwm_kib(replicate.pid())?;
    replicate.stop()?;
    println!(
        "  {:.2} s, peak RSS {} MiB",
        took.as_secs_f64(),
        hwm_kib / 1024
    );
    let _ = fs::remove_dir_all(&replica);
    Ok((took, hwm_kib))
}

/// The ~1 GiB database of figure 4, built once in `work/large/app.db`.
fn build_large(work: &Path) -> Result<PathBuf> {
    let dir = work.join("large");
    let db = dir.join("app.db");
    if dir.join("ready").is_file() {
        return Ok(db);
    }
    println!(
        "bench: building the ~1 GiB database in {} (once)",
        dir.display()
    );
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    create_db(&db, LARGE_ROWS)?;
    fs::write(dir.join("ready"), b"").context("cannot mark the large database ready")?;
    Ok(db)
}

fn checkpoint(db: &Path) -> Result<()> {
    let status = Command::new("python3")
        .arg("-c")
        .arg(CHECKPOINT_PY)
        .arg(db)
        .status()
        .context("cannot run python3")?;
    if !status.success() {
        bail!("checkpointing {} failed: {status}", db.display());
    }
    Ok(())
}

/// `VmHWM` (peak resident set) of `pid` in KiB.
fn vm_hwm_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50), 50.0);
        assert_eq!(percentile(&values, 99), 99.0);
        assert_eq!(percentile(&[7.0], 99), 7.0);
        assert!(percentile(&[], 50).is_nan());
    }

    #[test]
    fn parse_key_rejects_short_or_non_hex() {
        assert_eq!(parse_key("-"), None);
        assert_eq!(parse_key(&"zz".repeat(16)), None);
        assert_eq!(parse_key(&"0a".repeat(17)), None);
        assert_eq!(parse_key(&"0a".repeat(16)), Some([10; 16]));
    }
}
