//! `cargo xtask soak [--mins N] [--bin PATH]`: N minutes (30 by default) of our release
//! `litestream replicate` (or the binary at PATH, such as Litestream 0.3.13 for a comparison)
//! to a file replica under a mixed python3 load, then a restore.
//!
//! The load inserts, updates and deletes small batches of rows many times a second, commits a
//! big transaction (~6 MB) every one to two minutes, and checkpoints from the application
//! (PASSIVE and TRUNCATE in turn) every 15 to 45 s; the table is kept near a fixed size, so a
//! flat RSS is expected. The config asks for short sync, checkpoint, snapshot and retention
//! intervals, so every path of the replication loop runs many times.
//!
//! The soak fails when:
//! - the RSS of `replicate` (sampled every 10 s) in the last third of the run is more than 10%
//!   above its maximum between the sixth and the third of the run (minutes 20-30 against 5-10
//!   for 30 minutes);
//! - `replicate` or `restore` logs a line at level ERROR or a panic, or `replicate` exits early;
//! - the restore of the replica, taken after `replicate` stopped on SIGINT, does not hold
//!   exactly the source's rows or fails `PRAGMA integrity_check`.
//!
//! Everything is kept in `target/soak/` (database, replica, logs, RSS samples).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{build_ours, create_db, list_files, stop};

/// Minutes when `--mins` is not given.
const DEFAULT_MINS: u64 = 30;
/// Time between two RSS samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Rows of the database before the load starts (~1 KB each).
const INITIAL_ROWS: u64 = 10_000;
/// Largest allowed growth of the late RSS over the early maximum, in percent.
const MAX_GROWTH_PCT: u64 = 10;

/// The mixed load: runs for `argv[2]` seconds on `argv[1]`, then prints its counts as `k=v`.
const LOAD_PY: &str = r#"
import random, sqlite3, sys, time
db, secs = sys.argv[1], float(sys.argv[2])
rnd = random.Random(6)
con = sqlite3.connect(db, timeout=60, isolation_level=None)
con.execute("PRAGMA busy_timeout=60000")
n = dict(tx=0, inserted=0, updated=0, deleted=0, big=0, passive=0, truncate=0, busy_ckpt=0)
t0 = time.time()
next_big, next_ckpt, ckpts = t0 + 45, t0 + 20, 0
KEEP = 20000
while time.time() - t0 < secs:
    now = time.time()
    con.execute("BEGIN IMMEDIATE")
    if now >= next_big:
        con.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000) "
            "INSERT INTO t (k, v) SELECT 'big' || x, randomblob(1500) FROM c")
        n["big"] += 1
        n["inserted"] += 4000
        next_big = now + rnd.uniform(60, 120)
    else:
        lo, hi = con.execute("SELECT min(id), max(id) FROM t").fetchone()
        op = rnd.random()
        if op < 0.5 or lo is None:
            rows = [("r%d" % rnd.randrange(1 << 30), rnd.randrange(50, 3000))
                    for _ in range(rnd.randrange(1, 20))]
            con.executemany("INSERT INTO t (k, v) VALUES (?, randomblob(?))", rows)
            n["inserted"] += len(rows)
        elif op < 0.8:
            a = rnd.randint(lo, hi)
            cur = con.execute("UPDATE t SET v = randomblob(?), k = k || 'u' WHERE id BETWEEN ? AND ?",
                              (rnd.randrange(50, 3000), a, a + rnd.randrange(10)))
            n["updated"] += cur.rowcount
        else:
            a = rnd.randint(lo, hi)
            cur = con.execute("DELETE FROM t WHERE id BETWEEN ? AND ?", (a, a + rnd.randrange(10)))
            n["deleted"] += cur.rowcount
    count = con.execute("SELECT count(*) FROM t").fetchone()[0]
    if count > KEEP:
        cur = con.execute("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY id LIMIT ?)",
                          (count - KEEP,))
        n["deleted"] += cur.rowcount
    con.execute("COMMIT")
    n["tx"] += 1
    if now >= next_ckpt:
        kind = "PASSIVE" if ckpts % 2 == 0 else "TRUNCATE"
        busy = con.execute("PRAGMA wal_checkpoint(%s)" % kind).fetchone()[0]
        n[kind.lower()] += 1
        n["busy_ckpt"] += busy
        ckpts += 1
        next_ckpt = now + rnd.uniform(15, 45)
    time.sleep(rnd.uniform(0.005, 0.08))
con.close()
print(" ".join("%s=%d" % kv for kv in n.items()))
"#;

/// Prints `rows=<n> sha256=<hex> integrity=<text>` for the table `t` of `argv[1]`.
const DIGEST_PY: &str = r#"
import hashlib, sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
con.text_factory = bytes
h, rows = hashlib.sha256(), 0
for row in con.execute("SELECT id, k, v FROM t ORDER BY id"):
    h.update(repr(row).encode())
    rows += 1
ok = ",".join(r[0].decode() for r in con.execute("PRAGMA integrity_check"))
print("rows=%d sha256=%s integrity=%s" % (rows, h.hexdigest(), ok))
"#;

/// One RSS sample: seconds since `replicate` started, KiB.
#[derive(Clone, Copy)]
struct Sample {
    secs: u64,
    kib: u64,
}

/// Kills `replicate` if the soak stops early.
struct Replicate(Child);

impl Drop for Replicate {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Parses `[--mins N]`, runs the soak and prints its figures.
///
/// # Errors
///
/// On a bad argument, a failed build or setup, or when the soak fails (module doc).
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let (mins, bin) = parse_args(args)?;
    let total = mins * 60;
    let bin = match bin {
        Some(bin) => bin,
        None => build_ours(root)?,
    };
    let work = root.join("target").join("soak");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot clear {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let db = work.join("soak.db");
    let replica = work.join("replica");
    let config = work.join("litestream.yml");
    create_db(&db, INITIAL_ROWS)?;
    fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    monitor-interval: 1s\n    checkpoint-interval: 10s\n    \
             min-checkpoint-page-count: 100\n    max-checkpoint-page-count: 2000\n    \
             replicas:\n      - type: file\n        path: {}\n        sync-interval: 100ms\n        \
             snapshot-interval: 2m\n        retention: 5m\n        retention-check-interval: 1m\n",
            db.display(),
            replica.display()
        ),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;

    let log_path = work.join("replicate.log");
    let log = fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    println!(
        "soak: {mins} min of `{} replicate` on {} (log {})",
        bin.display(),
        db.display(),
        log_path.display()
    );
    let child = Command::new(&bin)
        .arg("replicate")
        .arg("-config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {} replicate", bin.display()))?;
    let mut replicate = Replicate(child);
    let pid = replicate.0.id();
    let started = Instant::now();

    let mut load = Command::new("python3")
        .arg("-c")
        .arg(LOAD_PY)
        .arg(&db)
        .arg(total.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the python3 load")?;

    let mut samples = Vec::new();
    let mut next = Duration::ZERO;
    loop {
        if let Some(status) = replicate.0.try_wait()? {
            let _ = load.kill();
            bail!(
                "litestream replicate exited early ({status}) after {} s; see {}",
                started.elapsed().as_secs(),
                log_path.display()
            );
        }
        let elapsed = started.elapsed();
        if elapsed >= next {
            let kib = vm_rss_kib(pid)?;
            samples.push(Sample {
                secs: elapsed.as_secs(),
                kib,
            });
            if samples.len() % 6 == 1 {
                println!(
                    "soak: {:>4} s  RSS {:>6} KiB  replica: {} snapshot(s), {} WAL segment(s)",
                    elapsed.as_secs(),
                    kib,
                    list_files(&replica, "snapshots", ".snapshot.lz4")?.len(),
                    list_files(&replica, "wal", ".wal.lz4")?.len()
                );
            }
            next += SAMPLE_EVERY;
        }
        if load.try_wait()?.is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let load_out = load
        .wait_with_output()
        .context("cannot read the load's output")?;
    if !load_out.status.success() {
        bail!("the python3 load failed: {}", load_out.status);
    }
    let load_counts = String::from_utf8_lossy(&load_out.stdout).trim().to_owned();
    samples.push(Sample {
        secs: started.elapsed().as_secs(),
        kib: vm_rss_kib(pid)?,
    });
    stop(&mut replicate.0)?;
    let replicate_secs = started.elapsed().as_secs();

    let restored = work.join("restored.db");
    let restore_log = work.join("restore.log");
    let restore_started = Instant::now();
    let restore_out = Command::new(&bin)
        .arg("restore")
        .arg("-config")
        .arg(&config)
        .arg("-o")
        .arg(&restored)
        .arg(&db)
        .stdin(Stdio::null())
        .output()
        .context("cannot run litestream restore")?;
    let restore_secs = restore_started.elapsed().as_secs_f64();
    let mut restore_text = String::from_utf8_lossy(&restore_out.stdout).into_owned();
    restore_text.push_str(&String::from_utf8_lossy(&restore_out.stderr));
    fs::write(&restore_log, &restore_text)
        .with_context(|| format!("cannot write {}", restore_log.display()))?;

    let log_text = fs::read_to_string(&log_path)
        .with_context(|| format!("cannot read {}", log_path.display()))?;
    let rss = rss_verdict(&samples, total);
    write_samples(&work.join("rss.csv"), &samples)?;

    println!();
    println!("soak: figures after {replicate_secs} s of replicate");
    println!("  load            {load_counts}");
    println!(
        "  replica         {} snapshot(s), {} WAL segment(s), {} generation(s) at the end",
        list_files(&replica, "snapshots", ".snapshot.lz4")?.len(),
        list_files(&replica, "wal", ".wal.lz4")?.len(),
        fs::read_dir(replica.join("generations")).map_or(0, Iterator::count)
    );
    println!(
        "  RSS             min {} KiB, max {} KiB over {} samples",
        samples.iter().map(|s| s.kib).min().unwrap_or(0),
        samples.iter().map(|s| s.kib).max().unwrap_or(0),
        samples.len()
    );
    println!(
        "  RSS windows     early ({}-{} s) max {} KiB; late ({}-{} s) max {} KiB; growth {:+.1}%",
        rss.early.0,
        rss.early.1,
        rss.early_max,
        rss.late.0,
        rss.late.1,
        rss.late_max,
        rss.growth_pct
    );
    let levels = |text: &str, needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    println!(
        "  replicate log   {} line(s): {} INFO, {} WARN, {} ERROR, {} panic",
        log_text.lines().count(),
        levels(&log_text, "level=INFO"),
        levels(&log_text, "level=WARN"),
        levels(&log_text, "level=ERROR"),
        levels(&log_text, "panicked")
    );
    let mut reasons: Vec<&str> = log_text
        .lines()
        .filter(|l| l.contains("new generation"))
        .filter_map(|l| l.split("reason=").nth(1))
        .collect();
    reasons.sort_unstable();
    reasons.dedup_by(|a, b| a == b);
    println!(
        "  generations     {} started; reasons: {}",
        levels(&log_text, "new generation"),
        reasons.join(", ")
    );
    println!(
        "  restore         {restore_secs:.2} s, {}",
        restore_out.status
    );

    let mut failures = Vec::new();
    if !rss.ok {
        failures.push(format!(
            "RSS grew {:.1}% (more than {MAX_GROWTH_PCT}%) from the early to the late window",
            rss.growth_pct
        ));
    }
    for (name, text) in [("replicate", &log_text), ("restore", &restore_text)] {
        for line in text
            .lines()
            .filter(|l| l.contains("level=ERROR") || l.contains("panicked"))
            .take(5)
        {
            failures.push(format!("{name} logged: {line}"));
        }
    }
    if restore_out.status.success() {
        let source = digest(&db)?;
        let copy = digest(&restored)?;
        println!("  source          {source}");
        println!("  restored        {copy}");
        if source != copy {
            failures.push("the restored database differs from the source".to_owned());
        }
        if !copy.ends_with("integrity=ok") {
            failures.push("the restored database fails integrity_check".to_owned());
        }
    } else {
        failures.push(format!("restore failed: {}", restore_text.trim()));
    }
    if failures.is_empty() {
        println!("soak: passed");
        return Ok(());
    }
    for failure in &failures {
        println!("soak: FAIL: {failure}");
    }
    bail!(
        "{} check(s) failed; files in {}",
        failures.len(),
        work.display()
    )
}

/// `[--mins N] [--bin PATH]` into N and the binary to soak (ours, built, when not given; say
/// Litestream 0.3.13 to compare).
fn parse_args(args: &[String]) -> Result<(u64, Option<PathBuf>)> {
    let mut mins = DEFAULT_MINS;
    let mut bin = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, value),
            None => (
                arg.as_str(),
                iter.next()
                    .with_context(|| format!("{arg} needs a value"))?
                    .as_str(),
            ),
        };
        match flag {
            "--mins" => {
                mins = value
                    .parse()
                    .with_context(|| format!("--mins: not a number of minutes: {value:?}"))?;
            }
            "--bin" => bin = Some(PathBuf::from(value)),
            _ => bail!(
                "unknown soak argument {arg:?}; usage: cargo xtask soak [--mins N] [--bin PATH]"
            ),
        }
    }
    if mins < 1 {
        bail!("--mins must be at least 1");
    }
    Ok((mins, bin))
}

/// The RSS check: the windows compared (in seconds) and their maxima.
struct RssVerdict {
    early: (u64, u64),
    late: (u64, u64),
    early_max: u64,
    late_max: u64,
    growth_pct: f64,
    ok: bool,
}

/// Compares the late window's maximum (last third) with the early one (sixth to third).
fn rss_verdict(samples: &[Sample], total: u64) -> RssVerdict {
    let early = (total / 6, total / 3);
    let late = (total - total / 3, total);
    let max_in = |(from, to): (u64, u64)| {
        samples
            .iter()
            .filter(|s| s.secs >= from && s.secs <= to)
            .map(|s| s.kib)
            .max()
            .unwrap_or(0)
    };
    let (early_max, late_max) = (max_in(early), max_in(late));
    let to_f64 = |kib: u64| f64::from(u32::try_from(kib).unwrap_or(u32::MAX));
    let growth_pct = (to_f64(late_max) / to_f64(early_max).max(1.0) - 1.0) * 100.0;
    RssVerdict {
        early,
        late,
        early_max,
        late_max,
        growth_pct,
        ok: early_max > 0 && late_max * 100 <= early_max * (100 + MAX_GROWTH_PCT),
    }
}

fn write_samples(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut text = String::from("secs,rss_kib\n");
    for s in samples {
        text.push_str(&format!("{},{}\n", s.secs, s.kib));
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `VmRSS` of `pid` in KiB.
fn vm_rss_kib(pid: u32) -> Result<u64> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {}", path.display()))
}

/// The row count, digest and integrity of table `t` in `db`.
fn digest(db: &Path) -> Result<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(DIGEST_PY)
        .arg(db)
        .output()
        .context("cannot run python3")?;
    if !out.status.success() {
        bail!(
            "digest of {} failed: {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(kib: &[u64]) -> Vec<Sample> {
        kib.iter()
            .zip((0..).step_by(10))
            .map(|(&kib, secs)| Sample { secs, kib })
            .collect()
    }

    #[test]
    fn rss_verdict_flat_run_passes() {
        // 180 s: early window 30-60 s, late window 120-180 s.
        let run = samples(&[
            50, 90, 95, 100, 100, 100, 100, 100, 100, 100, 100, 100, 108, 109, 110, 100, 100, 105,
            100,
        ]);
        let verdict = rss_verdict(&run, 180);
        assert_eq!((verdict.early_max, verdict.late_max), (100, 110));
        assert!(verdict.ok);
    }

    #[test]
    fn rss_verdict_growth_above_ten_percent_fails() {
        let run = samples(&[
            50, 90, 95, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100,
            111,
        ]);
        assert!(!rss_verdict(&run, 180).ok);
    }

    #[test]
    fn parse_args_reads_mins_in_both_forms() {
        assert_eq!(parse_args(&[]).unwrap(), (30, None));
        assert_eq!(
            parse_args(&["--mins".to_owned(), "3".to_owned()]).unwrap(),
            (3, None)
        );
        assert_eq!(
            parse_args(&["--mins=2".to_owned(), "--bin=/x".to_owned()]).unwrap(),
            (2, Some(PathBuf::from("/x")))
        );
        assert!(parse_args(&["--mins=0".to_owned()]).is_err());
        assert!(parse_args(&["--secs=2".to_owned()]).is_err());
    }
}
