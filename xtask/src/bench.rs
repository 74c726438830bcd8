//! `cargo xtask bench restore`: our release `litestream restore` against the real Litestream
//! 0.3.13 on the same replicas, written by 0.3.13 itself, so both tools read the same bytes.
//!
//! Cases: (a) a ~1 GiB snapshot and next to no WAL; (b) a ~60 MB snapshot and ~2,000 small WAL
//! segments; (c) the replica of (b) restored with `-timestamp` at its middle segment. The
//! replicas are built once under `target/bench/restore/` (delete it to rebuild) with a python3
//! `sqlite3` writer and `litestream replicate`. Each tool restores each case a few times, in
//! turns; the best wall time and the largest peak RSS (`/usr/bin/time -f %M`, else python3's
//! `getrusage`) are printed with the ratios and the targets. Both outputs must be identical.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail};

use crate::chart;
use crate::command::Cmd;

/// Rows of ~1 KiB (400 random bytes, 600 zeros) in case (a): about 1 GiB of database.
pub(crate) const LARGE_ROWS: u64 = 1_000_000;
/// Rows in the database of case (b) before the small transactions: about 60 MB.
const MEDIUM_ROWS: u64 = 58_000;
/// WAL segments case (b) waits for.
const SEGMENTS: usize = 2_000;
/// Restores per tool and case; the best time counts.
const RUNS: usize = 3;
/// Longest any set-up step may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// How often set-up polls the replica.
const POLL: Duration = Duration::from_millis(50);

/// Creates `argv[1]` with `argv[2]` rows of ~1 KiB in WAL mode, then empties the WAL.
const CREATE_DB_PY: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA page_size=4096")
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB)")
con.execute(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
    "INSERT INTO t (k, v) SELECT 'k' || x, randomblob(400) || zeroblob(600) FROM c",
    (int(sys.argv[2]),),
)
con.commit()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
"#;

/// Commits one small row at a time into `argv[1]` until the file `argv[2]` exists.
const WRITER_PY: &str = r#"
import os, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30)
con.execute("PRAGMA busy_timeout=30000")
i = 0
while not os.path.exists(sys.argv[2]):
    con.execute("INSERT INTO t (k, v) VALUES (?, randomblob(200))", ("w%d" % i,))
    con.commit()
    i += 1
    time.sleep(0.002)
con.close()
"#;

/// Runs `argv[1:]`, prints the peak RSS of the child in KiB (Linux `ru_maxrss`).
const MAXRSS_PY: &str = r#"
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"#;

/// One benchmark case: a replica and the restore flags.
struct Case {
    name: &'static str,
    what: String,
    replica: PathBuf,
    flags: Vec<String>,
    /// Our time must be at most this fraction of Litestream's.
    target_ratio: f64,
}

/// Best time and peak RSS of one tool on one case.
#[derive(Clone, Copy)]
struct Measure {
    seconds: f64,
    max_rss_kib: u64,
}

/// Runs `cargo xtask bench <what>`.
///
/// # Errors
/// For an unknown benchmark, a missing tool, a failed set-up or restore, or outputs that differ.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    match args {
        [what] if what == "restore" => restore(root),
        [what] if what == "replicate" => crate::bench_replicate::run(root),
        [what] if what == "s3" => crate::bench_s3::run(root),
        _ => bail!("usage: cargo xtask bench restore|replicate|s3"),
    }
}

fn restore(root: &Path) -> Result<()> {
    let reference = reference_bin(root)?;
    let ours = build_ours(root)?;
    let work = root.join("target").join("bench").join("restore");
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    let large = build_large(&work, &reference)?;
    let (medium, middle) = build_segments(&work, &reference)?;
    let cases = [
        Case {
            name: "a",
            what: "~1 GiB snapshot, no WAL to speak of".into(),
            replica: large,
            flags: Vec::new(),
            target_ratio: 2.0 / 3.0,
        },
        Case {
            name: "b",
            what: format!("~60 MB snapshot + {SEGMENTS}+ WAL segments"),
            replica: medium.clone(),
            flags: Vec::new(),
            target_ratio: 1.0 / 3.0,
        },
        Case {
            name: "c",
            what: format!("(b) with -timestamp {middle}"),
            replica: medium,
            flags: vec!["-timestamp".into(), middle],
            target_ratio: 1.0 / 3.0,
        },
    ];

    let mut rows = Vec::new();
    for case in &cases {
        println!("bench restore ({}): {}", case.name, case.what);
        let (our, their) = measure_case(&work, case, &ours, &reference)?;
        rows.push((case, our, their));
    }
    println!();
    println!(
        "{:<4} {:>10} {:>12} {:>10} {:>12} {:>10} {:>10}  verdict",
        "case", "ours s", "ours RSS", "0.3.13 s", "0.3.13 RSS", "time", "RSS"
    );
    for &(case, our, their) in &rows {
        let time_ratio = our.seconds / their.seconds.max(1e-9);
        let rss_ratio = kib_ratio(our.max_rss_kib, their.max_rss_kib);
        let verdict = if time_ratio <= case.target_ratio && our.max_rss_kib <= their.max_rss_kib {
            "meets target"
        } else {
            "MISSES target"
        };
        println!(
            "({}) {:>10.3} {:>9} MiB {:>10.3} {:>9} MiB {:>9.2}x {:>9.2}x  {verdict} (time <= {:.2}x, RSS <= 1x)",
            case.name,
            our.seconds,
            our.max_rss_kib / 1024,
            their.seconds,
            their.max_rss_kib / 1024,
            time_ratio,
            rss_ratio,
            case.target_ratio,
        );
    }
    let bars: Vec<chart::RestoreBar<'_>> = rows
        .iter()
        .map(|(case, our, their)| chart::RestoreBar {
            case: case.name,
            ours_secs: our.seconds,
            theirs_secs: their.seconds,
        })
        .collect();
    let svg = work.join("restore.svg");
    chart::write_restore_chart(&svg, &bars)?;
    println!("\nchart: {}", svg.display());
    Ok(())
}

/// Restores `case` `RUNS` times with each tool, in turns; checks both outputs are identical.
fn measure_case(
    work: &Path,
    case: &Case,
    ours: &Path,
    reference: &Path,
) -> Result<(Measure, Measure)> {
    let out_dir = work.join(format!("out-{}", case.name));
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let url = format!("file://{}", case.replica.display());
    let mut best = [None::<Measure>, None::<Measure>];
    for run in 0..RUNS {
        for (slot, (tool, bin)) in [("ours", ours), ("0.3.13", reference)]
            .into_iter()
            .enumerate()
        {
            let out = out_dir.join(format!("{tool}.db"));
            clear_outputs(&out)?;
            let mut args: Vec<String> = vec!["restore".into()];
            args.extend(case.flags.iter().cloned());
            args.extend(["-o".into(), out.display().to_string(), url.clone()]);
            let measure = timed(bin, &args)?;
            println!(
                "  run {} {tool:<6} {:.3} s, {} MiB",
                run + 1,
                measure.seconds,
                measure.max_rss_kib / 1024
            );
            best[slot] = Some(match best[slot] {
                None => measure,
                Some(previous) => Measure {
                    seconds: previous.seconds.min(measure.seconds),
                    max_rss_kib: previous.max_rss_kib.max(measure.max_rss_kib),
                },
            });
        }
        if run == 0 {
            let (a, b) = (out_dir.join("ours.db"), out_dir.join("0.3.13.db"));
            if !same_file_bytes(&a, &b)? {
                bail!(
                    "case ({}): {} and {} differ",
                    case.name,
                    a.display(),
                    b.display()
                );
            }
        }
    }
    for tool in ["ours", "0.3.13"] {
        clear_outputs(&out_dir.join(format!("{tool}.db")))?;
    }
    match best {
        [Some(our), Some(their)] => Ok((our, their)),
        _ => bail!("case ({}): no run", case.name),
    }
}

/// Runs `bin args` once: wall time from here, peak RSS from `/usr/bin/time` or python3.
fn timed(bin: &Path, args: &[String]) -> Result<Measure> {
    let time_bin = Path::new("/usr/bin/time");
    let rss_file = std::env::temp_dir().join(format!("xtask-bench-rss-{}", std::process::id()));
    let mut command = if time_bin.is_file() {
        let mut command = Command::new(time_bin);
        command
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(bin);
        command
    } else {
        let mut command = Command::new("python3");
        command.arg("-c").arg(MAXRSS_PY).arg(bin);
        command
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    command.stdout(Stdio::piped());
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "`{} {}` failed: {}: {}",
            bin.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let rss_text = if time_bin.is_file() {
        let text = fs::read_to_string(&rss_file)
            .with_context(|| format!("cannot read {}", rss_file.display()))?;
        let _ = fs::remove_file(&rss_file);
        text
    } else {
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let max_rss_kib = rss_text
        .lines()
        .rev()
        .find_map(|line| line.trim().parse::<u64>().ok())
        .with_context(|| format!("no peak RSS in {rss_text:?}"))?;
    Ok(Measure {
        seconds,
        max_rss_kib,
    })
}

/// Removes `out` and whatever a restore leaves beside it (0.3.13's `.tmp-wal`, `.tmp-shm`).
fn clear_outputs(out: &Path) -> Result<()> {
    let Some(dir) = out.parent() else {
        return Ok(());
    };
    let name = out
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with(&name) {
            fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Whether two files hold the same bytes.
fn same_file_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |path: &Path| {
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))
    };
    let (mut a, mut b) = (open(a)?, open(b)?);
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut buf_a, mut buf_b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut buf_a)?;
        let m = read_full(&mut b, &mut buf_b)?;
        if n != m || buf_a[..n] != buf_b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut fs::File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Case (a): a ~1 GiB database replicated by 0.3.13 until its snapshot is written.
fn build_large(work: &Path, reference: &Path) -> Result<PathBuf> {
    let dir = work.join("large");
    let replica = dir.join("replica");
    if dir.join("ready").is_file() {
        return Ok(replica);
    }
    println!("bench: building case (a) in {} (once)", dir.display());
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let db = dir.join("app.db");
    create_db(&db, LARGE_ROWS)?;
    let config = write_config(&dir, &db, &replica, "1s", "1s")?;
    let mut litestream = spawn_replicate(reference, &config)?;
    let res = wait_until(&mut litestream, "the snapshot", || {
        Ok(count_files(&replica, "snapshots", ".snapshot.lz4")? >= 1
            && count_files(&replica, "wal", ".wal.lz4")? >= 1)
    });
    stop(&mut litestream)?;
    res?;
    fs::remove_file(&db).with_context(|| format!("cannot remove {}", db.display()))?;
    fs::write(dir.join("ready"), b"").context("cannot mark case (a) ready")?;
    Ok(replica)
}

/// Case (b): a ~60 MB database and a writer committing small transactions while 0.3.13
/// replicates every 10 ms, until the replica holds [`SEGMENTS`] WAL segments. Returns the
/// replica and the mtime of its middle segment, RFC 3339 with nanoseconds, for case (c).
fn build_segments(work: &Path, reference: &Path) -> Result<(PathBuf, String)> {
    let dir = work.join("segments");
    let replica = dir.join("replica");
    if !dir.join("ready").is_file() {
        println!(
            "bench: building cases (b) and (c) in {} (once)",
            dir.display()
        );
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let db = dir.join("app.db");
        create_db(&db, MEDIUM_ROWS)?;
        let config = write_config(&dir, &db, &replica, "10ms", "10ms")?;
        let mut litestream = spawn_replicate(reference, &config)?;
        let stop_file = dir.join("stop-writer");
        let mut writer = Command::new("python3")
            .arg("-c")
            .arg(WRITER_PY)
            .arg(&db)
            .arg(&stop_file)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the python3 writer")?;
        let res = wait_until(&mut litestream, "enough WAL segments", || {
            Ok(count_files(&replica, "wal", ".wal.lz4")? >= SEGMENTS)
        });
        fs::write(&stop_file, b"").context("cannot stop the writer")?;
        let writer_status = writer.wait().context("cannot wait for the writer")?;
        // Let 0.3.13 ship what the writer committed last: until the count stops moving.
        let mut last = count_files(&replica, "wal", ".wal.lz4")?;
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(500));
            let now = count_files(&replica, "wal", ".wal.lz4")?;
            if now == last {
                break;
            }
            last = now;
        }
        stop(&mut litestream)?;
        res?;
        if !writer_status.success() {
            bail!("the python3 writer failed: {writer_status}");
        }
        fs::remove_file(&db).with_context(|| format!("cannot remove {}", db.display()))?;
        fs::write(dir.join("ready"), b"").context("cannot mark case (b) ready")?;
    }
    let mut segments = list_files(&replica, "wal", ".wal.lz4")?;
    segments.sort();
    let Some(middle) = segments.get(segments.len() / 2) else {
        bail!("case (b) has no WAL segments in {}", replica.display());
    };
    let mtime = fs::metadata(middle)
        .and_then(|meta| meta.modified())
        .with_context(|| format!("cannot stat {}", middle.display()))?;
    Ok((replica, rfc3339_nanos(mtime)?))
}

pub(crate) fn create_db(db: &Path, rows: u64) -> Result<()> {
    let status = Command::new("python3")
        .arg("-c")
        .arg(CREATE_DB_PY)
        .arg(db)
        .arg(rows.to_string())
        .status()
        .context("cannot run python3")?;
    if !status.success() {
        bail!("creating {} failed: {status}", db.display());
    }
    Ok(())
}

fn write_config(
    dir: &Path,
    db: &Path,
    replica: &Path,
    monitor: &str,
    sync: &str,
) -> Result<PathBuf> {
    let config = dir.join("litestream.yml");
    let text = format!(
        "dbs:\n  - path: {}\n    monitor-interval: {monitor}\n    replicas:\n      - type: file\n        path: {}\n        sync-interval: {sync}\n",
        db.display(),
        replica.display()
    );
    fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    Ok(config)
}

fn spawn_replicate(reference: &Path, config: &Path) -> Result<Child> {
    Command::new(reference)
        .arg("replicate")
        .arg("-config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} replicate", reference.display()))
}

/// Polls `done` until it holds, failing if `litestream` exits or [`SETUP_TIMEOUT`] passes.
pub(crate) fn wait_until(
    litestream: &mut Child,
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if done()? {
            return Ok(());
        }
        if let Some(status) = litestream.try_wait()? {
            bail!("litestream replicate exited ({status}) before {what}");
        }
        if started.elapsed() > SETUP_TIMEOUT {
            bail!("no {what} after {SETUP_TIMEOUT:?}");
        }
        thread::sleep(POLL);
    }
}

/// Stops `litestream replicate` with SIGINT (it syncs once more) and waits for it.
pub(crate) fn stop(litestream: &mut Child) -> Result<()> {
    let pid = litestream.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status();
    if !sent.is_ok_and(|status| status.success()) {
        litestream
            .kill()
            .context("cannot stop litestream replicate")?;
    }
    litestream
        .wait()
        .context("cannot wait for litestream replicate")?;
    Ok(())
}

pub(crate) fn list_files(replica: &Path, kind: &str, suffix: &str) -> Result<Vec<PathBuf>> {
    let generations = replica.join("generations");
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(&generations) else {
        return Ok(files);
    };
    for generation in entries {
        let dir = generation?.path().join(kind);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.to_string_lossy().ends_with(suffix) {
                files.push(path);
            }
        }
    }
    Ok(files)
}

pub(crate) fn count_files(replica: &Path, kind: &str, suffix: &str) -> Result<usize> {
    Ok(list_files(replica, kind, suffix)?.len())
}

/// `time` as RFC 3339 in UTC with nanoseconds, which Go's `time.Parse(RFC3339, ..)` reads.
fn rfc3339_nanos(time: SystemTime) -> Result<String> {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .context("a file time before 1970")?;
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let (year, month, day) = civil_from_days(i64::try_from(days).context("a file time too far")?);
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:09}Z",
        since.subsec_nanos()
    ))
}

/// Howard Hinnant's `civil_from_days`: the date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Builds our release `litestream` (`cargo build --release -p ls-cli`) and returns its path.
pub(crate) fn build_ours(root: &Path) -> Result<PathBuf> {
    Cmd::cargo(root)
        .args(["build", "--release", "-p", "ls-cli"])
        .run()?;
    Ok(root.join("target").join("release").join("litestream"))
}

/// The reference Litestream: `LITESTREAM_REF_BIN`, else `target/tools/venv/bin/litestream`.
pub(crate) fn reference_bin(root: &Path) -> Result<PathBuf> {
    let path = std::env::var_os("LITESTREAM_REF_BIN").map_or_else(
        || {
            root.join("target")
                .join("tools")
                .join("venv")
                .join("bin")
                .join("litestream")
        },
        PathBuf::from,
    );
    if !path.is_file() {
        bail!(
            "the reference Litestream 0.3.13 is missing at {}: run `cargo xtask tools` or set \
             LITESTREAM_REF_BIN",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) fn kib_ratio(ours: u64, theirs: u64) -> f64 {
    let to_f64 = |kib: u64| f64::from(u32::try_from(kib).unwrap_or(u32::MAX));
    to_f64(ours) / to_f64(theirs).max(1.0)
}

/// CPU time used so far by every thread of `pid`, dead ones included, to the nanosecond (the
/// process CPU-time clock; `/proc/<pid>/stat` counts in 10 ms clock ticks, too coarse for an
/// idle process).
pub(crate) fn cpu_time(pid: u32) -> Result<Duration> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    let clock = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(raw))
        .with_context(|| format!("no CPU clock for pid {pid}"))?;
    let spent = nix::time::clock_gettime(clock)
        .with_context(|| format!("cannot read the CPU clock of pid {pid}"))?;
    Ok(Duration::from(spent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_nanos_formats_utc_with_nanoseconds() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_795_634_888_123_456_789);
        assert_eq!(
            rfc3339_nanos(time).unwrap(),
            "2026-11-25T19:28:08.123456789Z"
        );
    }
}
