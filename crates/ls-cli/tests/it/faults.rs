//! Storage faults between `litestream` and S3 (issue #6, "Storage errors" and "Retention
//! deleting files while a restore runs"): moto behind the [`FaultProxy`], which answers 503 and
//! 500, stalls, cuts downloads in the middle of the body, answers 404 or deletes objects right
//! before they are fetched.
//!
//! Replicate rides out an outage logged once and recovers by itself; restore fetches cut
//! downloads again (Litestream 0.3.13 aborts), fails with one line naming the object when one
//! never arrives, and never writes a wrong database when retention deletes files under it.

#[path = "../../../ls-backends/tests/it/servers.rs"]
#[expect(dead_code, reason = "only moto is used here")]
#[expect(
    clippy::duplicate_mod,
    reason = "cloud.rs keeps its copy private; each test module has the harness to itself"
)]
mod servers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use servers::Server;

use crate::support::faultproxy::{Action, FaultProxy, Mode};
// `workspace_root` is how the servers harness finds its tools (`super::workspace_root`).
use crate::support::fixtures::{our_bin, reference_bin, workspace_root};
use crate::support::replicate::{
    Exited, Replicate, Scene, Writer, WriterPlan, assert_same_rows, create_db, digest, insert_rows,
    source_digest, wait_until,
};

/// How long the first snapshot and segment may take to reach moto.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long replicate may take to recover after the proxy passes again (a stalled request
/// waits for the client's 10 s idle read timeout first, then the retry's backoff).
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a bounded writer or a one-shot command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The bucket, and the replica's key prefix in it.
const BUCKET: &str = "bkt";
const PREFIX: &str = "app";
/// How long each kind of outage lasts in the replicate test.
const PHASE: Duration = Duration::from_secs(5);

/// A database replicated to moto through a proxy.
struct Setup {
    moto: Server,
    proxy: FaultProxy,
    scene: Scene,
    db: PathBuf,
    config: PathBuf,
}

impl Setup {
    /// `app.db` with rows `1..=50`, and a `litestream.yml` replicating it to moto through a
    /// fresh proxy; `replica_extra` lines go into the replica block.
    fn new(replica_extra: &str) -> Self {
        Self::with_max_checkpoint(replica_extra, 1000)
    }

    /// [`Setup::new`] with our RESTART checkpoint at `max_checkpoint_page_count` WAL pages.
    fn with_max_checkpoint(replica_extra: &str, max_checkpoint_page_count: u32) -> Self {
        let moto = servers::moto(BUCKET);
        let proxy = FaultProxy::start(&moto.addr);
        let scene = Scene::new();
        let db = scene.join("app.db");
        create_db(&db, 4096);
        insert_rows(&db, 1, 50, 100);
        let mut yaml = format!(
            "dbs:\n  - path: {}\n    monitor-interval: 100ms\n    checkpoint-interval: 1s\n    \
             min-checkpoint-page-count: 100\n    max-checkpoint-page-count: {}\n    replicas:\n      \
             - type: s3\n        bucket: {BUCKET}\n        path: {PREFIX}\n        \
             endpoint: http://{}\n        region: us-east-1\n        force-path-style: true\n        \
             access-key-id: AKIAFAULTTESTKEYID00\n        secret-access-key: faultTestSecret\n        \
             sync-interval: 200ms\n",
            db.display(),
            max_checkpoint_page_count,
            proxy.addr,
        );
        for line in replica_extra.lines() {
            yaml.push_str(&format!("        {}\n", line.trim()));
        }
        let config = scene.write("litestream.yml", &yaml);
        Self {
            moto,
            proxy,
            scene,
            db,
            config,
        }
    }

    /// `ours replicate -config litestream.yml`.
    fn replicate(&self) -> Replicate {
        Replicate::with_config(&our_bin(), &self.config)
    }

    /// Every key under the replica's prefix, asked of moto directly (not through the proxy).
    fn keys(&self) -> Vec<String> {
        let (status, body) = servers::http(
            &self.moto.addr,
            "GET",
            &format!("/{BUCKET}?list-type=2&prefix={PREFIX}/"),
            "",
        );
        assert_eq!(status, 200, "moto cannot list: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>"))
            .map(|(key, _)| key.to_owned())
            .collect()
    }

    /// The snapshot keys, by index.
    fn snapshot_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .keys()
            .into_iter()
            .filter(|key| key.contains("/snapshots/"))
            .collect();
        keys.sort();
        keys
    }

    /// The WAL segment keys, by index and offset.
    fn segment_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .keys()
            .into_iter()
            .filter(|key| key.contains("/wal/"))
            .collect();
        keys.sort();
        keys
    }

    /// Waits until moto holds a snapshot and a WAL segment.
    fn wait_synced(&self) {
        wait_until("a snapshot and a wal segment in moto", SYNC_TIMEOUT, || {
            !self.snapshot_keys().is_empty() && !self.segment_keys().is_empty()
        });
    }

    /// `bin restore -config litestream.yml -o <out> app.db`, run to its end.
    fn restore(&self, bin: &Path, out: &Path) -> Exited {
        let config = self.config.to_string_lossy();
        let out = out.to_string_lossy();
        let db = self.db.to_string_lossy();
        Replicate::start(
            bin,
            &["restore", "-config", &config, "-o", &out, &db],
            self.scene.path(),
        )
        .wait(COMMAND_TIMEOUT)
    }

    /// Replicates while a bounded writer commits 300 rows with an application checkpoint every
    /// 60, then stops; the replica then holds several WAL indexes.
    fn replicate_rows(&self) {
        self.replicate_rows_and_snapshots(0);
    }

    /// [`Setup::replicate_rows`], then replicates on until the replica holds `snapshots`
    /// snapshot objects.
    fn replicate_rows_and_snapshots(&self, snapshots: usize) {
        let replicate = self.replicate();
        self.wait_synced();
        let writer = Writer::start(
            &self.db,
            &WriterPlan {
                first_id: 51,
                count: 300,
                blob: 800,
                checkpoint_every: 60,
                pause_ms: 2,
            },
        );
        writer.wait_done(COMMAND_TIMEOUT);
        writer.finish(COMMAND_TIMEOUT);
        wait_until("the snapshots", COMMAND_TIMEOUT, || {
            self.snapshot_keys().len() >= snapshots
        });
        replicate.stop_ok();
    }
}

/// The path the proxy sees for `key`: `/<bucket>/<key>`.
fn object_path(key: &str) -> String {
    format!("/{BUCKET}/{key}")
}

/// The replica path of a key (`generations/...`), as our errors and logs name objects.
fn replica_path(key: &str) -> &str {
    key.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(key)
}

/// The lines of `log` at level ERROR.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("level=ERROR"))
        .collect()
}

/// Asserts a restore failed with exit 1 and one error line naming `object`, and left nothing
/// in the output's folder.
fn assert_failed_naming(exited: &Exited, out: &Path, object: &str, what: &str) {
    assert_eq!(exited.code, Some(1), "{what}: exit code:\n{}", exited.log);
    let errors = error_lines(&exited.log);
    assert_eq!(errors.len(), 1, "{what}: one error line:\n{}", exited.log);
    assert!(
        errors[0].contains(object),
        "{what}: the error names {object}:\n{}",
        exited.log
    );
    let dir = out.parent().expect("an output path has a folder");
    let left: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{what}: files left behind: {left:?}");
}

#[test]
fn s3_503_500_and_stall_under_load_logged_once_replication_recovers() {
    let setup = Setup::new("");
    let mut replicate = setup.replicate();
    setup.wait_synced();
    // About 50 transactions a second throughout.
    let writer = Writer::start(
        &setup.db,
        &WriterPlan {
            first_id: 51,
            count: 0,
            blob: 500,
            checkpoint_every: 200,
            pause_ms: 20,
        },
    );
    writer.wait_for_commits(50, COMMAND_TIMEOUT);

    // Each kind of outage lasts at least PHASE and until a request met it.
    for (mode, outcome) in [
        (Mode::Status(503), "503"),
        (Mode::Status(500), "500"),
        (Mode::Stall, "stall"),
    ] {
        setup.proxy.set_mode(mode);
        let started = Instant::now();
        let proxy = &setup.proxy;
        replicate.wait_until(&format!("{outcome} answered"), SYNC_TIMEOUT, |_| {
            started.elapsed() >= PHASE && proxy.seen().iter().any(|seen| seen.outcome == outcome)
        });
    }
    let errors_in_outage = replicate.count("level=ERROR");
    setup.proxy.set_mode(Mode::Pass);
    let recovery = Instant::now();
    replicate.wait_for_log("replica sync recovered", RECOVERY_TIMEOUT);
    let recovered_after = recovery.elapsed();
    let (commits, _) = writer.finish(COMMAND_TIMEOUT);
    let exited = replicate.stop_ok();

    assert_eq!(
        errors_in_outage, 1,
        "one error line for the whole outage:\n{}",
        exited.log
    );
    assert_eq!(
        error_lines(&exited.log).len(),
        1,
        "no error after the outage (recovered {recovered_after:?} after it ended):\n{}",
        exited.log
    );
    let source = source_digest(&setup.db);
    assert_eq!(
        source.rows,
        u64::try_from(commits.len()).expect("a row count") + 50
    );
    let out = setup.scene.out_path("after-outage");
    let restored = setup.restore(&our_bin(), &out);
    assert_eq!(restored.code, Some(0), "restore failed:\n{}", restored.log);
    assert_same_rows(&digest(&out), &source, "restored after the outage");
}

#[test]
fn s3_restore_of_cut_downloads_retries_same_rows_litestream_aborts() {
    let setup = Setup::new("");
    setup.replicate_rows();
    let source = source_digest(&setup.db);
    let snapshot = setup.snapshot_keys().pop().expect("a snapshot");
    let segments = setup.segment_keys();
    assert!(segments.len() >= 5, "several segments: {segments:?}");
    let segment = &segments[segments.len() / 2];

    // Six cuts outlast the S3 client's own retries of one download (five requests, each
    // resuming where the last stopped), so the restore must fetch these two again; every
    // other segment is cut twice, which the client's resumption absorbs.
    setup
        .proxy
        .on_get(&object_path(&snapshot), Action::CutAfter(200), 6);
    setup
        .proxy
        .on_get(&object_path(segment), Action::CutAfter(40), 6);
    setup
        .proxy
        .on_get(&format!("/{BUCKET}/{PREFIX}/"), Action::CutAfter(40), 2);
    let out = setup.scene.out_path("ours-cut");
    let exited = setup.restore(&our_bin(), &out);
    assert_eq!(exited.code, Some(0), "restore failed:\n{}", exited.log);
    assert_same_rows(&digest(&out), &source, "restored through cut downloads");
    for object in [&snapshot, segment] {
        let retries: Vec<_> = exited
            .log
            .lines()
            .filter(|line| {
                line.contains("level=WARN")
                    && line.contains("download failed, retrying")
                    && line.contains(replica_path(object))
            })
            .collect();
        assert!(
            !retries.is_empty(),
            "a retry of {object} logged at warn:\n{}",
            exited.log
        );
    }
    let cuts = setup.proxy.count("GET", "", "cut");
    assert!(cuts >= 12 + 2 * (segments.len() - 1), "{cuts} cuts");

    // Litestream 0.3.13 gives up on the first cut download.
    setup.proxy.clear_rules();
    setup
        .proxy
        .on_get(&object_path(segment), Action::CutAfter(40), 1);
    let out = setup.scene.out_path("reference-cut");
    let exited = setup.restore(&reference_bin(), &out);
    assert_ne!(
        exited.code,
        Some(0),
        "Litestream 0.3.13 survived a cut download:\n{}",
        exited.log
    );

    // A download that fails every time fails the restore, naming the object, after the tries.
    setup.proxy.clear_rules();
    setup
        .proxy
        .on_get(&object_path(segment), Action::CutAfter(40), u32::MAX);
    let out = setup.scene.out_path("ours-always-cut");
    let started = Instant::now();
    let exited = setup.restore(&our_bin(), &out);
    let elapsed = started.elapsed();
    assert_failed_naming(&exited, &out, replica_path(segment), "always cut");
    assert_eq!(
        exited
            .log
            .lines()
            .filter(|line| line.contains("download failed, retrying"))
            .count(),
        4,
        "four retries after the first try:\n{}",
        exited.log
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "gave up after {elapsed:?}"
    );
}

#[test]
fn s3_retention_during_restore_succeeds_or_fails_naming_object() {
    // Our RESTART checkpoints start new WAL indexes (while the rows are written, or after
    // the writer ends when the application's checkpoints kept them busy), so a periodic
    // snapshot lands in a later index than the first one (after a PASSIVE checkpoint the WAL
    // restarts only when the application's next transaction allows it).
    let setup = Setup::with_max_checkpoint("snapshot-interval: 1s", 150);
    setup.replicate_rows_and_snapshots(2);
    let source = source_digest(&setup.db);
    let snapshots = setup.snapshot_keys();
    assert!(snapshots.len() >= 2, "several snapshots: {snapshots:?}");
    let newest = snapshots.last().expect("a snapshot").clone();
    // `.../snapshots/<index>.snapshot.lz4` and `.../wal/<index>_<offset>.wal.lz4`.
    let index_of = |key: &str| -> String {
        let name = key.rsplit('/').next().unwrap_or_default();
        name.get(..8).unwrap_or_default().to_owned()
    };
    let newest_index = index_of(&newest);
    let segments = setup.segment_keys();
    let mut old: Vec<String> = snapshots[..snapshots.len() - 1].to_vec();
    old.extend(
        segments
            .iter()
            .filter(|key| index_of(key) < newest_index)
            .cloned(),
    );

    // Retention deletes what the newest snapshot makes obsolete while the restore runs: the
    // restore does not need it and gives the same rows.
    setup.proxy.on_get(
        "/snapshots/",
        Action::DeleteOthersFirst(old.iter().map(|key| object_path(key)).collect()),
        1,
    );
    let out = setup.scene.out_path("obsolete-deleted");
    let exited = setup.restore(&our_bin(), &out);
    assert_eq!(exited.code, Some(0), "restore failed:\n{}", exited.log);
    assert_same_rows(&digest(&out), &source, "restored while retention ran");
    let keys = setup.keys();
    assert!(
        old.iter().all(|key| !keys.contains(key)),
        "the old objects are gone: {keys:?}"
    );

    // The snapshot the restore planned with vanishes before its download.
    setup.proxy.clear_rules();
    setup
        .proxy
        .on_get(&object_path(&newest), Action::NotFound, u32::MAX);
    let out = setup.scene.out_path("snapshot-gone");
    let exited = setup.restore(&our_bin(), &out);
    assert_failed_naming(&exited, &out, replica_path(&newest), "snapshot gone");
    assert_eq!(
        setup.proxy.count("GET", &newest, "404"),
        1,
        "no retry of a 404"
    );

    // A segment it planned with is deleted right before its download.
    setup.proxy.clear_rules();
    let last = setup.segment_keys().pop().expect("a segment");
    setup
        .proxy
        .on_get(&object_path(&last), Action::DeleteFirst, 1);
    let passed_before = setup.proxy.count("GET", &last, "pass");
    let out = setup.scene.out_path("segment-gone");
    let exited = setup.restore(&our_bin(), &out);
    assert_failed_naming(&exited, &out, replica_path(&last), "segment deleted");
    assert!(
        exited.log.contains("not found"),
        "the error says not found:\n{}",
        exited.log
    );
    assert_eq!(setup.proxy.count("GET", &last, "deleted"), 1);
    assert_eq!(
        setup.proxy.count("GET", &last, "pass"),
        passed_before,
        "no retry of a 404"
    );
}
