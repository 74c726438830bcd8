//! `litestream replicate` end to end (issue #4): a python3 writer commits numbered rows while
//! our binary (or Litestream 0.3.13) replicates to a file replica; the replica is restored and
//! must hold the same rows as the source with `PRAGMA integrity_check` = ok. Covers checkpoints
//! by the application and by the engine, hand-overs between us and Litestream in one
//! generation, SIGKILL at random moments, page sizes, a 200 MB transaction, a database
//! replaced or its WAL removed, 50 databases, `-exec`, signals, metrics and bad input.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::support::fixtures::{our_bin, reference_bin};
use crate::support::replicate::{
    Replicate, Scene, SplitMix64, Tuning, Writer, WriterPlan, assert_same_rows, config_yaml,
    create_db, digests, file_url, free_port, generations, has_synced, http_get, insert_rows,
    restore, segments, snapshots, source_digest, source_digests, sql, sql_many, wal_path,
};

/// How long the first snapshot and segment may take to appear in a replica.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a bounded writer may take.
const WRITER_TIMEOUT: Duration = Duration::from_secs(120);

/// A scene with `app.db` (page size `page_size`, rows `1..=rows`), a `replica` folder and a
/// `litestream.yml` replicating one to the other with `tuning`.
fn scene_with_db(page_size: u32, rows: u64, tuning: &Tuning) -> (Scene, PathBuf, PathBuf, PathBuf) {
    let scene = Scene::new();
    let db = scene.join("app.db");
    let replica = scene.join("replica");
    create_db(&db, page_size);
    if rows > 0 {
        insert_rows(&db, 1, rows, 100);
    }
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&[(db.clone(), replica.clone())], tuning, None),
    );
    (scene, db, replica, config)
}

/// Starts `bin replicate -config config` and waits for its first snapshot and segment.
fn start_synced(bin: &Path, config: &Path, replica: &Path) -> Replicate {
    let mut replicate = Replicate::with_config(bin, config);
    replicate.wait_until(
        &format!("a snapshot and a segment in {}", replica.display()),
        SYNC_TIMEOUT,
        |_| has_synced(replica),
    );
    replicate
}

/// The distinct WAL indexes of a generation's segments (`<index>_<offset>.wal.lz4`).
fn segment_indexes(replica: &Path, generation: &str) -> Vec<String> {
    let mut indexes: Vec<String> = segments(replica, generation)
        .iter()
        .filter_map(|name| name.split('_').next().map(str::to_owned))
        .collect();
    indexes.dedup();
    indexes
}

/// The only generation of a replica; panics when there are several or none.
fn only_generation(replica: &Path) -> String {
    let names = generations(replica);
    assert_eq!(
        names.len(),
        1,
        "generations in {}: {names:?}",
        replica.display()
    );
    names[0].clone()
}

#[test]
fn replicate_under_load_with_app_checkpoints_restores_same_rows() {
    let (scene, db, replica, config) = scene_with_db(4096, 50, &Tuning::default());
    let replicate = start_synced(&our_bin(), &config, &replica);
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 51,
            count: 2000,
            blob: 1500,
            checkpoint_every: 100,
            pause_ms: 1,
        },
    );
    let (commits, checkpoints) = writer.finish(WRITER_TIMEOUT);
    assert_eq!(commits.len(), 2000);
    assert_eq!(checkpoints.len(), 20, "{checkpoints:?}");
    replicate.stop_ok();

    let source = source_digest(&db);
    assert_eq!((source.rows, source.max_id), (2050, 2050));
    let restored = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&restored, &source, "restored by ours");
    let generation = only_generation(&replica);
    let indexes = segment_indexes(&replica, &generation);
    assert!(
        indexes.len() >= 3,
        "~3 MB of WAL past min-checkpoint-page-count 100 left segments of only {indexes:?}"
    );
}

/// The database file's modification time: it moves when a checkpoint backfills pages.
fn db_mtime(db: &Path) -> std::time::SystemTime {
    fs::metadata(db)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|err| panic!("cannot stat {}: {err}", db.display()))
}

/// Waits for the engine's time-based checkpoint to backfill the database.
fn wait_for_checkpoint(replicate: &mut Replicate, db: &Path) {
    let before = db_mtime(db);
    replicate.wait_until("a time-based checkpoint", SYNC_TIMEOUT, |_| {
        db_mtime(db) != before
    });
}

/// After a commit the database goes idle: the time-based PASSIVE checkpoint backfills it
/// without a write of its own (0.3.13 writes `_litestream_seq`, one more segment in a new
/// index), so nothing reaches the replica while idle. The application's next commit, from a
/// new connection, restarts the WAL and overwrites more of it than the old cycle held (0.3.13's
/// check would see "wal overwritten" there): the generation carries on, both restore it.
#[test]
fn replicate_idle_checkpoint_uploads_nothing_then_next_write_continues_generation() {
    let tuning = Tuning {
        checkpoint_interval: "2s",
        ..Tuning::default()
    };
    let (scene, db, replica, config) = scene_with_db(4096, 10, &tuning);
    let mut replicate = start_synced(&our_bin(), &config, &replica);
    let generation = only_generation(&replica);

    let before = segments(&replica, &generation).len();
    insert_rows(&db, 11, 5, 100);
    replicate.wait_until("the commit in the replica", SYNC_TIMEOUT, |_| {
        segments(&replica, &generation).len() > before
    });
    let synced = segments(&replica, &generation);
    wait_for_checkpoint(&mut replicate, &db);
    std::thread::sleep(Duration::from_secs(2));
    let idle = segments(&replica, &generation);
    assert_eq!(
        idle,
        synced,
        "segments written after the idle checkpoint\n{}",
        replicate.log()
    );

    insert_rows(&db, 16, 300, 1000);
    let seen = idle.len();
    replicate.wait_until("the big commit in the replica", SYNC_TIMEOUT, |_| {
        segments(&replica, &generation).len() > seen
    });
    let exited = replicate.stop_ok();
    assert_eq!(
        generations(&replica),
        vec![generation.clone()],
        "a new generation after the idle checkpoint:\n{}",
        exited.log
    );
    let source = source_digest(&db);
    assert_eq!((source.rows, source.max_id), (315, 315));
    let ours = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&ours, &source, "restored by ours");
    let theirs = restore(&reference_bin(), &replica, &scene.out_path("litestream"));
    assert_same_rows(&theirs, &source, "restored by Litestream 0.3.13");
}

#[test]
fn replicate_ours_restored_by_litestream_gives_same_rows() {
    let (scene, db, replica, config) = scene_with_db(4096, 50, &Tuning::default());
    let replicate = start_synced(&our_bin(), &config, &replica);
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 51,
            count: 800,
            blob: 1000,
            checkpoint_every: 200,
            pause_ms: 1,
        },
    );
    writer.finish(WRITER_TIMEOUT);
    replicate.stop_ok();

    let source = source_digest(&db);
    let theirs = restore(&reference_bin(), &replica, &scene.out_path("litestream"));
    assert_same_rows(&theirs, &source, "restored by Litestream 0.3.13");
    let ours = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&ours, &source, "restored by ours");
}

/// `first` replicates while a writer commits, stops; `second` takes over the same database and
/// replica while the writer goes on, stops. One generation, no new snapshot; both restore the
/// source.
fn hand_over(first: &Path, second: &Path) {
    let (scene, db, replica, config) = scene_with_db(4096, 100, &Tuning::default());
    // The writer's connection stays open throughout: no WAL deletion between the two runs.
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 101,
            count: 0,
            blob: 200,
            checkpoint_every: 0,
            pause_ms: 10,
        },
    );
    let replicate = start_synced(first, &config, &replica);
    writer.wait_for_commits(50, WRITER_TIMEOUT);
    let first_log = stop_tool(replicate, first);
    let generation = only_generation(&replica);
    let snapshots_before = snapshots(&replica, &generation);
    let segments_before = segments(&replica, &generation).len();

    let mut replicate = Replicate::with_config(second, &config);
    let seen = writer.commits().len();
    writer.wait_for_commits(seen + 50, WRITER_TIMEOUT);
    replicate.wait_until(
        "a segment written by the second process",
        SYNC_TIMEOUT,
        |_| segments(&replica, &generation).len() > segments_before,
    );
    replicate.wait_for_log("wal segment written", SYNC_TIMEOUT);
    writer.finish(WRITER_TIMEOUT);
    let second_log = stop_tool(replicate, second);

    let context = format!("first run:\n{first_log}\nsecond run:\n{second_log}");
    assert_eq!(
        generations(&replica),
        vec![generation.clone()],
        "the second process started a new generation\n{context}"
    );
    assert_eq!(
        snapshots(&replica, &generation),
        snapshots_before,
        "the second process took a new snapshot\n{context}"
    );
    let url = file_url(&replica);
    let listing = Replicate::start(&our_bin(), &["generations", &url], scene.path())
        .wait(SYNC_TIMEOUT)
        .log;
    let rows: Vec<&str> = listing.lines().skip(1).collect();
    assert!(
        rows.len() == 1 && rows[0].contains(generation.as_str()),
        "`litestream generations` lists {rows:?}\n{context}"
    );
    assert!(
        !second_log.contains("new generation"),
        "second run logged a new generation\n{context}"
    );
    let source = source_digest(&db);
    let ours = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&ours, &source, "restored by ours");
    let theirs = restore(&reference_bin(), &replica, &scene.out_path("litestream"));
    assert_same_rows(&theirs, &source, "restored by Litestream 0.3.13");
}

/// Stops `replicate` (running `bin`) with SIGTERM and returns its log; it must exit 0, except
/// for a race of Litestream 0.3.13 itself: its final sync and its replica monitor may upload
/// the same segment at once, and the loser's rename of the shared `.tmp` file fails ("error
/// closing db ... .wal.lz4.tmp: no such file or directory", exit 1). The winner's upload is
/// whole, so the replica stays usable. The same race can also hang 0.3.13's shutdown: it is
/// killed after 30 s then, as a crash it must recover from anyway.
fn stop_tool(replicate: Replicate, bin: &Path) -> String {
    let reference = bin == reference_bin();
    let exited = if reference {
        replicate.stop_or_kill(Signal::SIGTERM, Duration::from_secs(30))
    } else {
        replicate.stop(Signal::SIGTERM)
    };
    let litestream_race = reference
        && (exited.code.is_none()
            || exited.code == Some(1)
                && exited.log.contains("error closing db")
                && exited
                    .log
                    .contains(".wal.lz4.tmp: no such file or directory"));
    assert!(
        exited.code == Some(0) || litestream_race,
        "`{} replicate` did not exit 0 on SIGTERM:\n{}",
        bin.display(),
        exited.log
    );
    exited.log
}

#[test]
fn replicate_after_litestream_continues_same_generation() {
    hand_over(&reference_bin(), &our_bin());
}

#[test]
fn replicate_before_litestream_lets_it_continue_same_generation() {
    hand_over(&our_bin(), &reference_bin());
}

#[test]
fn replicate_killed_at_random_moments_restores_exact_prefix() {
    // LS_CRASH_SEED replays another schedule; the seed is in every failure message.
    let seed = std::env::var("LS_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0x5eed_0004_u64);
    let mut rng = SplitMix64::new(seed);
    let tuning = Tuning::default();
    // Sync (200ms) + monitor (100ms) intervals, plus a margin for a busy 2-core machine.
    let bound = Duration::from_millis(300 + 2000);
    let (scene, db, replica, config) = scene_with_db(4096, 0, &tuning);
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 1,
            count: 0,
            blob: 600,
            checkpoint_every: 0,
            pause_ms: 3,
        },
    );
    writer.wait_for_commits(20, WRITER_TIMEOUT);
    let iterations = rng.range(5, 9);
    let mut prefixes = Vec::new();
    for iteration in 0..iterations {
        let started = Instant::now();
        let replicate = Replicate::with_config(&our_bin(), &config);
        let run_for = Duration::from_millis(rng.range(2500, 5000));
        // Not a wait for replication: the kill lands at a chosen, random moment.
        std::thread::sleep(run_for);
        let killed_at = Instant::now();
        let exited = replicate.stop(Signal::SIGKILL);
        let must_have = writer
            .commits()
            .iter()
            .filter(|(_, at)| (*at).max(started) + bound <= killed_at)
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0);
        let what = format!(
            "seed {seed:#x} iteration {iteration} (killed after {run_for:?}, {} commits so far)",
            writer.commits().len()
        );
        assert!(must_have > 0, "{what}: no commit old enough to check");
        assert!(
            has_synced(&replica),
            "{what}: nothing replicated\n{}",
            exited.log
        );
        let out = scene.out_path(&format!("kill-{iteration}"));
        let restored = restore(&our_bin(), &replica, &out);
        assert_eq!(restored.integrity, "ok", "{what}: integrity_check");
        assert!(
            restored.is_prefix(),
            "{what}: restored ids are not 1..k: {restored:?}\n{}",
            exited.log
        );
        assert!(
            restored.max_id >= must_have,
            "{what}: restored rows 1..{} but commit {must_have} was older than {bound:?} at the \
             kill\n{}",
            restored.max_id,
            exited.log
        );
        prefixes.push((what, restored));
    }
    let replicate = Replicate::with_config(&our_bin(), &config);
    let seen = writer.commits().len();
    writer.wait_for_commits(seen + 20, WRITER_TIMEOUT);
    writer.finish(WRITER_TIMEOUT);
    replicate.stop_ok();

    let source = source_digest(&db);
    let restored = restore(&our_bin(), &replica, &scene.out_path("final"));
    assert_same_rows(
        &restored,
        &source,
        &format!("seed {seed:#x}: final restore"),
    );
    let theirs = restore(
        &reference_bin(),
        &replica,
        &scene.out_path("final-litestream"),
    );
    assert_same_rows(
        &theirs,
        &source,
        &format!("seed {seed:#x}: final restore by Litestream 0.3.13"),
    );
    // Each restored prefix holds the source's rows, not just their ids.
    for (what, restored) in &prefixes {
        let expected = digests(std::slice::from_ref(&source.path), Some(restored.max_id)).remove(0);
        assert_same_rows(restored, &expected, what);
    }
}

fn round_trip_with_page_size(page_size: u32, blob: u32, count: u64) {
    let tuning = Tuning {
        min_checkpoint_page_count: 20,
        max_checkpoint_page_count: 200,
        ..Tuning::default()
    };
    let (scene, db, replica, config) = scene_with_db(page_size, 20, &tuning);
    let replicate = start_synced(&our_bin(), &config, &replica);
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 21,
            count,
            blob,
            checkpoint_every: 50,
            pause_ms: 2,
        },
    );
    writer.finish(WRITER_TIMEOUT);
    replicate.stop_ok();

    let source = source_digest(&db);
    assert_eq!(source.page_size, u64::from(page_size));
    let ours = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&ours, &source, &format!("page size {page_size}, ours"));
    assert_eq!(ours.page_size, u64::from(page_size));
    let theirs = restore(&reference_bin(), &replica, &scene.out_path("litestream"));
    assert_same_rows(
        &theirs,
        &source,
        &format!("page size {page_size}, Litestream"),
    );
}

#[test]
fn replicate_page_size_1024_restores_same_rows() {
    round_trip_with_page_size(1024, 300, 600);
}

#[test]
fn replicate_page_size_65536_restores_same_rows() {
    round_trip_with_page_size(65536, 20_000, 200);
}

#[test]
fn replicate_200_mb_transaction_restores_same_rows() {
    let (scene, db, replica, config) = scene_with_db(4096, 10, &Tuning::default());
    let replicate = start_synced(&our_bin(), &config, &replica);
    // One statement, one commit: 200 rows of 1 MiB.
    insert_rows(&db, 11, 200, 1 << 20);
    replicate.stop_ok();

    let source = source_digest(&db);
    assert_eq!(source.rows, 210);
    let restored = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&restored, &source, "200 MB transaction");
}

#[test]
fn replicate_database_replaced_while_running_starts_new_generation() {
    let (scene, db, replica, config) = scene_with_db(4096, 100, &Tuning::default());
    let mut replicate = start_synced(&our_bin(), &config, &replica);
    replicate.wait_for_log("new generation", SYNC_TIMEOUT);
    for path in [db.clone(), wal_path(&db), scene.join("app.db-shm")] {
        // The -shm may be absent.
        let _ = fs::remove_file(&path);
    }
    // Built aside and renamed into place: replicate, reopening the path, must not race the
    // set-up's own `journal_mode=WAL` (which fails at once, busy, when it loses).
    let fresh = scene.join("fresh.db");
    create_db(&fresh, 4096);
    fs::rename(&fresh, &db).expect("rename the new database into place");
    // The new database's rows differ in ids and blobs from the old one's.
    let writer = Writer::start(
        &db,
        &WriterPlan {
            first_id: 1000,
            count: 30,
            blob: 50,
            checkpoint_every: 0,
            pause_ms: 20,
        },
    );
    writer.wait_done(WRITER_TIMEOUT);
    replicate.wait_for_lines("new generation", 2, SYNC_TIMEOUT);
    // A replica error ends the wait early: the restore below then shows what was lost.
    replicate.wait_until(
        "a snapshot of a second generation, or a replica error",
        SYNC_TIMEOUT,
        |log| {
            log.contains("monitor error")
                || generations(&replica)
                    .iter()
                    .filter(|name| !snapshots(&replica, name).is_empty())
                    .count()
                    >= 2
        },
    );
    let exited = replicate.stop(Signal::SIGTERM);
    writer.finish(WRITER_TIMEOUT);

    let source = source_digest(&db);
    assert_eq!((source.rows, source.min_id), (30, 1000));
    let restored = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_eq!(
        (
            restored.rows,
            restored.min_id,
            restored.max_id,
            &restored.rows_sha256
        ),
        (
            source.rows,
            source.min_id,
            source.max_id,
            &source.rows_sha256
        ),
        "the replica does not restore the new database:\n{}",
        exited.log
    );
    assert_eq!(restored.integrity, "ok");
    assert_eq!(exited.code, Some(0), "{}", exited.log);
}

/// Replicates rows 1..=200 of `db`, stops, has the application write rows 201..=300 and
/// remove the WAL (TRUNCATE, then close), and starts ours again: returns the first generation
/// and the running replicate once the new generation's snapshot is in the replica.
fn replicate_then_remove_wal(db: &Path, replica: &Path, config: &Path) -> (String, Replicate) {
    let replicate = start_synced(&our_bin(), config, replica);
    insert_rows(db, 101, 100, 100);
    replicate.stop_ok();
    let generation = only_generation(replica);

    // The application writes, checkpoints with TRUNCATE and closes: SQLite deletes the WAL.
    sql(
        db,
        "INSERT INTO t (id, k, v) SELECT id + 100, k || '-again', v FROM t WHERE id > 100; \
         PRAGMA wal_checkpoint(TRUNCATE);",
    );
    assert!(
        fs::metadata(wal_path(db)).map_or(true, |meta| meta.len() == 0),
        "the application's close left a non-empty WAL"
    );

    let mut replicate = Replicate::with_config(&our_bin(), config);
    replicate.wait_for_log("new generation", SYNC_TIMEOUT);
    replicate.wait_until("a new generation in the replica", SYNC_TIMEOUT, |_| {
        generations(replica)
            .iter()
            .any(|name| *name != generation && !snapshots(replica, name).is_empty())
    });
    (generation, replicate)
}

#[test]
fn replicate_wal_removed_while_stopped_starts_new_generation() {
    let (scene, db, replica, config) = scene_with_db(4096, 100, &Tuning::default());
    let (_, replicate) = replicate_then_remove_wal(&db, &replica, &config);
    insert_rows(&db, 301, 50, 100);
    let exited = replicate.stop_ok();
    assert!(
        exited.log.contains("clearing generation") || exited.log.contains("new generation"),
        "no log line about the generation:\n{}",
        exited.log
    );

    let source = source_digest(&db);
    assert_eq!(source.rows, 350);
    let restored = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&restored, &source, "after the WAL was removed");
}

/// Sets the mtime of `path`, and of every file under it when it is a folder, to `mtime`.
fn set_mtimes(path: &Path, mtime: SystemTime) {
    if !path.is_dir() {
        fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| file.set_modified(mtime))
            .unwrap_or_else(|err| panic!("cannot set the mtime of {}: {err}", path.display()));
        return;
    }
    for entry in fs::read_dir(path).unwrap_or_else(|err| panic!("{}: {err}", path.display())) {
        set_mtimes(&entry.expect("a directory entry").path(), mtime);
    }
}

/// A store that keeps whole seconds (SFTP) can give two generations the same newest time, when
/// a new generation starts in the second the old one last wrote. The restore must take the
/// generation that began later, whatever their names; 0.3.13 takes the first in listing order.
#[test]
fn restore_of_two_generations_newest_in_same_second_takes_the_later_one() {
    let (scene, db, replica, config) = scene_with_db(4096, 100, &Tuning::default());
    let (old_name, replicate) = replicate_then_remove_wal(&db, &replica, &config);
    insert_rows(&db, 301, 50, 100);
    replicate.stop_ok();
    let new_name = generations(&replica)
        .into_iter()
        .find(|name| *name != old_name)
        .expect("the new generation");

    // Named so that the old generation is listed first, whatever names they were given.
    let generations_dir = replica.join("generations");
    let (old, new) = ("0000000000000001".to_owned(), "fffffffffffffffe".to_owned());
    fs::rename(generations_dir.join(&old_name), generations_dir.join(&old)).expect("rename old");
    fs::rename(generations_dir.join(&new_name), generations_dir.join(&new)).expect("rename new");

    // As SFTP would list them: the old generation began 10 s earlier, and its last segment
    // landed in the second the new generation began and ended.
    let second = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let old_dir = generations_dir.join(&old);
    set_mtimes(&old_dir, second - Duration::from_secs(10));
    let last_old = segments(&replica, &old)
        .last()
        .map(|name| old_dir.join("wal").join(name))
        .expect("a segment in the old generation");
    set_mtimes(&last_old, second);
    set_mtimes(&generations_dir.join(&new), second);

    let source = source_digest(&db);
    assert_eq!(source.rows, 350);
    let restored = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(
        &restored,
        &source,
        &format!("two generations newest in one second (old {old}, new {new})"),
    );
}

#[test]
fn replicate_fifty_databases_from_config_restore_each() {
    let scene = Scene::new();
    let pairs: Vec<(PathBuf, PathBuf)> = (0..50)
        .map(|n| {
            (
                scene.join(&format!("dbs/db-{n:02}.db")),
                scene.join(&format!("replicas/db-{n:02}")),
            )
        })
        .collect();
    fs::create_dir_all(scene.join("dbs")).unwrap();
    let dbs: Vec<PathBuf> = pairs.iter().map(|(db, _)| db.clone()).collect();
    sql_many(
        &dbs,
        "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB); \
         INSERT INTO t VALUES (1, 'one', randomblob(100));",
    );
    let tuning = Tuning {
        monitor_interval: "250ms",
        ..Tuning::default()
    };
    let config = scene.write("litestream.yml", &config_yaml(&pairs, &tuning, None));
    let mut replicate = Replicate::with_config(&our_bin(), &config);
    replicate.wait_until("all 50 replicas synced", SYNC_TIMEOUT, |_| {
        pairs.iter().all(|(_, replica)| has_synced(replica))
    });
    sql_many(
        &dbs,
        "INSERT INTO t (id, k, v) VALUES (2, 'two', randomblob(200)); \
         INSERT INTO t (id, k, v) VALUES (3, 'three', randomblob(300));",
    );
    replicate.stop_ok();

    let sources = source_digests(&dbs);
    for ((db, replica), source) in pairs.iter().zip(&sources) {
        assert_eq!(source.rows, 3, "{}", db.display());
        let name = db.file_stem().unwrap().to_string_lossy().into_owned();
        let restored = restore(&our_bin(), replica, &scene.out_path(&name));
        assert_same_rows(&restored, source, &name);
    }
}

#[test]
fn replicate_exec_child_failing_exits_1_with_its_status() {
    let (scene, db, replica, _config) = scene_with_db(4096, 10, &Tuning::default());
    let (db_text, url) = (db.to_string_lossy(), file_url(&replica));
    let exited = Replicate::start(
        &our_bin(),
        &["replicate", "-exec", "sh -c 'exit 3'", &db_text, &url],
        scene.path(),
    )
    .wait(SYNC_TIMEOUT);
    assert_eq!(exited.code, Some(1), "{}", exited.log);
    assert!(exited.log.contains("exit status 3"), "{}", exited.log);
}

#[test]
fn replicate_exec_child_exiting_0_exits_0_after_final_sync() {
    let (scene, db, replica, _config) = scene_with_db(4096, 10, &Tuning::default());
    let script = scene.write(
        "child.py",
        "import sqlite3, sys\n\
         con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n\
         for i in range(11, 111):\n    \
         con.execute(\"INSERT INTO t (id, k, v) VALUES (?, 'child', randomblob(64))\", (i,))\n\
         con.close()\n",
    );
    let exec = format!("python3 {} {}", script.display(), db.display());
    let (db_text, url) = (db.to_string_lossy(), file_url(&replica));
    let exited = Replicate::start(
        &our_bin(),
        &["replicate", "-exec", &exec, &db_text, &url],
        scene.path(),
    )
    .wait(SYNC_TIMEOUT);
    assert_eq!(exited.code, Some(0), "{}", exited.log);
    assert!(
        exited
            .log
            .contains("subprocess exited, litestream shutting down"),
        "{}",
        exited.log
    );

    let source = source_digest(&db);
    assert_eq!(source.rows, 110);
    let restored = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&restored, &source, "after -exec child exited 0");
}

fn signal_syncs_rows_written_just_before(signal: Signal) {
    let (scene, db, replica, config) = scene_with_db(4096, 10, &Tuning::default());
    let replicate = start_synced(&our_bin(), &config, &replica);
    insert_rows(&db, 11, 40, 100);
    let exited = replicate.stop(signal);
    assert_eq!(exited.code, Some(0), "{signal}:\n{}", exited.log);
    assert!(
        exited
            .log
            .contains("signal received, litestream shutting down"),
        "{signal}:\n{}",
        exited.log
    );

    let source = source_digest(&db);
    assert_eq!(source.rows, 50);
    let restored = restore(&our_bin(), &replica, &scene.out_path("ours"));
    assert_same_rows(&restored, &source, &format!("after {signal}"));
}

#[test]
fn replicate_sigterm_exits_0_after_final_sync() {
    signal_syncs_rows_written_just_before(Signal::SIGTERM);
}

#[test]
fn replicate_sigint_exits_0_after_final_sync() {
    signal_syncs_rows_written_just_before(Signal::SIGINT);
}

#[test]
fn replicate_metrics_addr_serves_db_and_replica_series() {
    let scene = Scene::new();
    let db = scene.join("app.db");
    let replica = scene.join("replica");
    create_db(&db, 4096);
    insert_rows(&db, 1, 10, 100);
    let addr = format!("127.0.0.1:{}", free_port());
    let config = scene.write(
        "litestream.yml",
        &config_yaml(
            &[(db.clone(), replica.clone())],
            &Tuning::default(),
            Some(&addr),
        ),
    );
    let mut replicate = start_synced(&our_bin(), &config, &replica);
    insert_rows(&db, 11, 10, 100);
    let wanted = [
        format!("litestream_db_size{{db=\"{}\"}}", db.display()),
        "litestream_replica_wal_bytes{".to_owned(),
        "litestream_sync_count{".to_owned(),
    ];
    let mut last = None;
    replicate.wait_until("the three series on /metrics", SYNC_TIMEOUT, |_| {
        last = http_get(&addr, "/metrics");
        last.as_deref()
            .is_some_and(|body| wanted.iter().all(|series| body.contains(series.as_str())))
    });
    let body = last.unwrap_or_default();
    assert!(body.starts_with("HTTP/1."), "{body}");
    replicate.stop_ok();
}

#[test]
fn replicate_one_argument_fails_asking_for_replica_url() {
    let scene = Scene::new();
    let exited =
        Replicate::start(&our_bin(), &["replicate", "app.db"], scene.path()).wait(SYNC_TIMEOUT);
    assert_eq!(exited.code, Some(1), "{}", exited.log);
    assert!(
        exited.log.contains("must specify at least one replica URL"),
        "{}",
        exited.log
    );
}

#[test]
fn replicate_addr_without_port_fails() {
    let scene = Scene::new();
    let (db, replica) = (scene.join("app.db"), scene.join("replica"));
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&[(db, replica)], &Tuning::default(), Some("nope")),
    );
    let exited = Replicate::with_config(&our_bin(), &config).wait(SYNC_TIMEOUT);
    assert_eq!(exited.code, Some(1), "{}", exited.log);
    assert!(
        exited
            .log
            .contains("must specify port for bind address: \\\"nope\\\"")
            || exited
                .log
                .contains("must specify port for bind address: \"nope\""),
        "{}",
        exited.log
    );
}

#[test]
fn replicate_duplicate_replica_names_fail() {
    let scene = Scene::new();
    let db = scene.join("app.db");
    let (a, b) = (file_url(&scene.join("a")), file_url(&scene.join("b")));
    let db_text = db.to_string_lossy();
    let exited = Replicate::start(&our_bin(), &["replicate", &db_text, &a, &b], scene.path())
        .wait(SYNC_TIMEOUT);
    assert_eq!(exited.code, Some(1), "URL form:\n{}", exited.log);
    assert!(
        exited.log.contains("duplicate replica name"),
        "URL form:\n{}",
        exited.log
    );

    let config = scene.write(
        "litestream.yml",
        &format!(
            "dbs:\n  - path: {}\n    replicas:\n      - name: x\n        path: {}\n      \
             - name: x\n        path: {}\n",
            db.display(),
            scene.join("a").display(),
            scene.join("b").display()
        ),
    );
    let exited = Replicate::with_config(&our_bin(), &config).wait(SYNC_TIMEOUT);
    assert_eq!(exited.code, Some(1), "config form:\n{}", exited.log);
    assert!(
        exited.log.contains("duplicate replica name"),
        "config form:\n{}",
        exited.log
    );
}
