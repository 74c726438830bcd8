//! The database monitor (spec 4): the long read transaction, the shadow WAL, checkpoints and
//! generations of one database, and the replicas that follow it.
//!
//! A sync pass runs on every `monitor-interval` tick, as in Litestream, and also as soon as the
//! file system reports a change to the database or its WAL, which is what makes replication
//! prompt. A tick that finds the database and WAL exactly as the last pass left them skips the
//! pass (a full pass still runs at least every [`FULL_PASS_EVERY`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime};

use ls_core::{Generation, Pos, wal_size};
use tokio::sync::{Mutex, Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::engine_error::ReplicateError;
use crate::replica::{Replica, ReplicaInner};
use crate::shadow::{self, Copied, HEADER_LEN, Meta, Modes, ScanCache};
use crate::shmlock;
use crate::sqlite::{CheckpointMode, Sqlite};

/// A pass that finds nothing changed is still run in full this often: a fallback only, as file
/// events and the size and time probe of every tick catch changes.
pub const FULL_PASS_EVERY: Duration = Duration::from_secs(60);

/// How often other processes' WAL-index locks are read, to notice a waiting checkpoint.
const CHECKPOINTER_PROBE: Duration = Duration::from_millis(200);

/// The same while other processes keep committing: a checkpointer that waits for readers holds
/// the writer lock, so none was waiting while commits came. When they stop, a waiting
/// checkpointer is seen within this, confirmed [`CHECKPOINTER_CONFIRM`] later, and let
/// through at its next retry: under 0.8 s on the 64 ms timer grid.
const CHECKPOINTER_PROBE_BUSY: Duration = Duration::from_millis(400);

/// The time between the two probes that must both see the same waiting checkpointer.
const CHECKPOINTER_CONFIRM: Duration = Duration::from_millis(100);

/// How often those locks are read when the database has been idle for `ACTIVE_WINDOW`.
const IDLE_PROBE: Duration = Duration::from_secs(1);

/// The tick of a database idle for `ACTIVE_WINDOW` whose WAL is watched (when the
/// `monitor-interval` is shorter): its writes wake the monitor at once, so the tick only reads
/// the locks and stands in for a lost event.
const IDLE_TICK: Duration = Duration::from_secs(2);

/// How long after a file event the database counts as in use.
const ACTIVE_WINDOW: Duration = Duration::from_secs(10);

/// Longest time we stay out of the way of an application checkpoint.
const STEP_ASIDE_MAX: Duration = Duration::from_secs(10);

/// WAL size in pages past which Litestream checkpoints with TRUNCATE (not configurable).
const TRUNCATE_PAGE_COUNT: u64 = 500_000;

/// Settings of one replicated database: the `dbs[]` keys of `litestream.yml`.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// The database file.
    pub path: PathBuf,
    /// The meta directory; `<dir>/.<name>-litestream` when `None`.
    pub meta_path: Option<PathBuf>,
    /// Time between sync passes; zero disables the monitor (nothing is replicated).
    pub monitor_interval: Duration,
    /// A PASSIVE checkpoint when the database file was not written for this long; zero
    /// disables.
    pub checkpoint_interval: Duration,
    /// WAL size in pages for a PASSIVE checkpoint; at least 1.
    pub min_checkpoint_page_count: u32,
    /// WAL size in pages for a RESTART checkpoint; zero disables.
    pub max_checkpoint_page_count: u32,
}

impl DbOptions {
    /// Litestream's defaults for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            meta_path: None,
            monitor_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(60),
            min_checkpoint_page_count: 1000,
            max_checkpoint_page_count: 10_000,
        }
    }
}

/// What replicas need of their database, shared without the database's own lock.
#[derive(Debug)]
pub(crate) struct DbShared {
    pub(crate) path: PathBuf,
    pub(crate) path_label: String,
    pub(crate) meta: Meta,
    /// Current generation, shadow index and committed shadow size; `None` before the first
    /// generation.
    position: PosCell,
    page_size: AtomicU32,
    /// Bumped after every pass that changed something; replicas wait on it.
    pub(crate) changed: watch::Sender<u64>,
    /// The `changed` value of the last change that came after a quiet spell: replicas upload
    /// it at once instead of waiting for their sync-interval.
    pub(crate) urgent: std::sync::atomic::AtomicU64,
    /// Held by snapshots; Litestream's own checkpoints are skipped meanwhile.
    pub(crate) checkpoint_lock: Mutex<()>,
    /// Cancelled when replication stops: the monitor and the replicas' tasks end.
    pub(crate) token: CancellationToken,
    /// Replicas ask for a sync pass before an upload: `requested` counts the asks, the monitor
    /// wakes on `pass_request` and publishes in `served` the count it had read before a pass.
    pass_request: Notify,
    requested: std::sync::atomic::AtomicU64,
    served: watch::Sender<u64>,
    /// A descriptor on the database file, opened once and never closed while the process
    /// runs: closing any descriptor of a file drops every POSIX lock the process holds on it,
    /// SQLite's SHARED lock included, which would let another process's last connection
    /// checkpoint and delete the WAL under us. Snapshots read through it with `pread`.
    db_file: StdMutex<Option<Arc<std::fs::File>>>,
    /// A descriptor on the `-shm` file, opened once and never closed (same reason), through
    /// which other processes' WAL-index locks are read.
    shm_file: StdMutex<Option<Arc<std::fs::File>>>,
    /// SQLite's commit counter (`iChange` in the `-shm`) right after our own last commit
    /// (`u64::MAX` before any): a file event with the counter still there was ours, not the
    /// application's, and does not make the monitor probe locks faster.
    own_commit: std::sync::atomic::AtomicU64,
    /// The LZ4 frame of the frames the last copy appended, made by the pass for a replica
    /// that stood where they begin: its next upload, ready without a read or an encoder.
    encoded: StdMutex<Option<Encoded>>,
}

/// An encoded WAL segment of the shadow file (see [`DbShared::encoded_segment`]).
#[derive(Debug)]
struct Encoded {
    start: Pos,
    end: u64,
    bytes: bytes::Bytes,
}

impl DbShared {
    /// The database position (generation, shadow index, committed shadow size).
    pub(crate) fn position(&self) -> Option<Pos> {
        self.position.get()
    }

    fn set_position(&self, pos: Option<Pos>) {
        self.position.set(pos);
    }

    /// The kept-open descriptor of the database file, once initialised.
    pub(crate) fn db_file(&self) -> Option<Arc<std::fs::File>> {
        self.db_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// SQLite's commit counter in the `-shm`, once it is open.
    fn commit_counter(&self) -> Option<u32> {
        self.shm_file()
            .and_then(|shm| shmlock::commit_counter(&shm))
    }

    /// Records SQLite's commit counter after a commit of our own.
    fn note_own_commit(&self) {
        if let Some(counter) = self.commit_counter() {
            self.own_commit.store(u64::from(counter), Ordering::Relaxed);
        }
    }

    /// Whether someone else committed since our own last commit (true when unknown).
    fn others_committed(&self) -> bool {
        self.commit_counter()
            .is_none_or(|counter| u64::from(counter) != self.own_commit.load(Ordering::Relaxed))
    }

    pub(crate) fn shm_file(&self) -> Option<Arc<std::fs::File>> {
        self.shm_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Asks the monitor for a sync pass and waits until one that started after the ask has
    /// ended (at most `limit`), so an upload ships everything committed until now.
    /// Returns at once when replication is stopping (the monitor is gone: the final sync has
    /// run its own pass).
    pub(crate) async fn fresh_pass(&self, limit: Duration) {
        if self.token.is_cancelled() {
            return;
        }
        let ticket = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut served = self.served.subscribe();
        self.pass_request.notify_one();
        tokio::select! {
            () = self.token.cancelled() => {}
            _ = tokio::time::timeout(limit, served.wait_for(|n| *n >= ticket)) => {}
        }
    }

    /// The unencrypted LZ4 frame of the shadow file's bytes from `start` to `end`, when the
    /// last pass made it. A shadow file's committed bytes never change while the process
    /// runs (copies only append; a failed one cuts the file back to where it began), so the
    /// frame holds what the file holds there.
    pub(crate) fn encoded_segment(&self, start: &Pos, end: u64) -> Option<bytes::Bytes> {
        self.encoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|encoded| encoded.start == *start && encoded.end == end)
            .map(|encoded| encoded.bytes.clone())
    }

    /// Keeps `encoded` after a copy that appended frames (dropping one that no longer ends
    /// where the shadow file does).
    fn set_encoded(&self, encoded: Option<Encoded>) {
        *self
            .encoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = encoded;
    }

    /// The page size, 0 before initialisation.
    pub(crate) fn page_size(&self) -> u32 {
        self.page_size.load(Ordering::Relaxed)
    }
}

/// Connection state, guarded by the database's lock.
#[derive(Debug, Default)]
struct DbState {
    /// The connection holding the long read transaction.
    rtx: Option<Sqlite>,
    /// The connection for writes and checkpoints.
    conn: Option<Sqlite>,
    cache: ScanCache,
    /// What the files looked like after the last full pass, and when it ran.
    probe: Option<(Probe, Instant)>,
    tasks_started: bool,
    /// Set while a checkpoint (an application's we stepped aside for, or our own PASSIVE one)
    /// may have restarted the WAL or may still let the next writer restart it; kept while our
    /// read transaction stays open and the WAL's cycle gets no new frames.
    stepped: Option<StepAside>,
    /// What the last clean saw (generation, shadow index, lowest replica index) and the size of
    /// the shadow files other than the current one: while these stay, a pass has nothing to
    /// clean and the size metric needs no directory listing.
    cleaned: Option<((Generation, u32, u32), u64)>,
}

/// What the shadow WAL held when we released the read transaction for an application's
/// checkpoint: everything committed in that WAL cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StepAside {
    generation: Generation,
    index: u32,
    /// Committed end of the shadow WAL, which was also the end of the WAL's commits.
    end: u64,
    /// The real (and shadow) WAL header of that cycle.
    header: [u8; 32],
    /// No new WAL cycle had started when the read transaction was back.
    clean: bool,
}

/// Sizes and modification times of the database and its WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    db: (u64, SystemTime),
    wal: Option<(u64, SystemTime)>,
}

/// One replicated database with its replicas. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<DbInner>,
}

#[derive(Debug)]
struct DbInner {
    options: DbOptions,
    shared: Arc<DbShared>,
    wal_path: PathBuf,
    state: Mutex<DbState>,
    replicas: Vec<Arc<ReplicaInner>>,
    tracker: TaskTracker,
    wake: Arc<crate::watch::Wake>,
    /// The replication lock file, kept open while the process runs.
    lock_file: StdMutex<Option<nix::fcntl::Flock<std::fs::File>>>,
}

impl Db {
    /// A database to replicate to `replicas`; nothing runs until [`Db::start`].
    ///
    /// # Errors
    /// Two replicas with the same name (`duplicate replica name`), or a minimum checkpoint page
    /// count of zero.
    pub fn new(options: DbOptions, replicas: Vec<Replica>) -> Result<Self, ReplicateError> {
        if options.min_checkpoint_page_count == 0 {
            return Err(ReplicateError::Other(
                "minimum checkpoint page count required".to_owned(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for replica in &replicas {
            if !names.insert(replica.name().to_owned()) {
                return Err(ReplicateError::Other(format!(
                    "duplicate replica name: {:?}",
                    replica.name()
                )));
            }
        }
        let path_label = options.path.display().to_string();
        let shared = Arc::new(DbShared {
            path: options.path.clone(),
            path_label: path_label.clone(),
            meta: Meta::new(&options.path, options.meta_path.as_deref()),
            position: PosCell::default(),
            page_size: AtomicU32::new(0),
            changed: watch::channel(0).0,
            urgent: std::sync::atomic::AtomicU64::new(0),
            own_commit: std::sync::atomic::AtomicU64::new(u64::MAX),
            encoded: StdMutex::new(None),
            checkpoint_lock: Mutex::new(()),
            token: CancellationToken::new(),
            pass_request: Notify::new(),
            requested: std::sync::atomic::AtomicU64::new(0),
            served: watch::channel(0).0,
            db_file: StdMutex::new(None),
            shm_file: StdMutex::new(None),
        });
        let replicas = replicas
            .into_iter()
            .map(|replica| Arc::new(ReplicaInner::new(replica, Arc::clone(&shared))))
            .collect();
        let mut wal_path = options.path.clone().into_os_string();
        wal_path.push("-wal");
        Ok(Self {
            inner: Arc::new(DbInner {
                wal_path: PathBuf::from(wal_path),
                options,
                shared,
                state: Mutex::new(DbState::default()),
                replicas,
                tracker: TaskTracker::new(),
                wake: Arc::new(crate::watch::Wake::default()),
                lock_file: StdMutex::new(None),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.options.path
    }

    /// The replicas' names, in configuration order.
    pub fn replica_names(&self) -> Vec<String> {
        self.inner
            .replicas
            .iter()
            .map(|replica| replica.name().to_owned())
            .collect()
    }

    /// The current position (generation, shadow WAL index, offset), if a generation exists.
    pub fn position(&self) -> Option<Pos> {
        self.inner.shared.position()
    }

    /// Each replica's name and the position it has uploaded up to, if known.
    pub fn replica_positions(&self) -> Vec<(String, Option<Pos>)> {
        self.inner
            .replicas
            .iter()
            .map(|replica| (replica.name().to_owned(), replica.position()))
            .collect()
    }

    /// Starts the monitor: sync passes on every tick and file change, and the replicas' tasks
    /// once the database is first initialised. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// When another process replicates this database (it holds the lock file `lock` in the
    /// meta directory), or the meta directory cannot be created.
    pub fn start(&self) -> Result<(), ReplicateError> {
        self.lock()?;
        if self.inner.options.monitor_interval.is_zero() {
            return Ok(());
        }
        self.watch_files();
        let inner = Arc::clone(&self.inner);
        let span = tracing::info_span!("db", db = %self.inner.shared.path_label);
        self.inner
            .tracker
            .spawn(async move { inner.monitor().await }.instrument(span));
        Ok(())
    }

    /// Takes the replication lock: an exclusive `flock` on `<meta>/lock`, held (descriptor kept
    /// open) for the life of the process. Litestream 0.3.13 takes none, and ignores the file.
    fn lock(&self) -> Result<(), ReplicateError> {
        let mut slot = self
            .inner
            .lock_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_some() {
            return Ok(());
        }
        let meta = self.inner.shared.meta.dir();
        let modes = Modes::of_db(&self.inner.options.path);
        ls_core::create_dir_all_durable_with_mode(meta, modes.dir)
            .map_err(|err| ReplicateError::io("cannot create meta directory", err))?;
        let path = meta.join("lock");
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(modes.file)
            .open(&path)
            .map_err(|err| ReplicateError::io(format!("cannot open {}", path.display()), err))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(locked) => {
                *slot = Some(locked);
                Ok(())
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(ReplicateError::Other(format!(
                "database {} is already being replicated by another process (it holds {})",
                self.inner.options.path.display(),
                path.display()
            ))),
            Err((_, err)) => Err(ReplicateError::io(
                format!("cannot lock {}", path.display()),
                std::io::Error::from(err),
            )),
        }
    }

    /// Runs one sync pass now, then syncs every replica: what `close` does at the end, usable
    /// by an embedding program to make everything committed so far durable in the replicas.
    ///
    /// # Errors
    /// The first failure of the pass or of a replica sync.
    ///
    /// # Cancel safety
    /// Not cancel safe: a pass dropped midway is redone by the next one, which is harmless,
    /// but the caller learns nothing about what was uploaded.
    pub async fn sync(&self) -> Result<(), ReplicateError> {
        let span = tracing::info_span!("db", db = %self.inner.shared.path_label);
        async {
            self.inner.sync(true).await?;
            for replica in &self.inner.replicas {
                replica.sync_now().await?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Stops the monitor and the replicas' tasks, runs a final sync of the database and of
    /// every replica, releases the read transaction and closes SQLite (spec 4.9).
    ///
    /// # Errors
    /// The first failure of the final syncs or of closing.
    ///
    /// # Cancel safety
    /// Not cancel safe; await it to the end.
    pub async fn close(&self) -> Result<(), ReplicateError> {
        let span = tracing::info_span!("db", db = %self.inner.shared.path_label);
        async {
            self.inner.shared.token.cancel();
            self.inner.tracker.close();
            self.inner.tracker.wait().await;
            let mut first_err = None;
            let initialized = self.inner.state.lock().await.rtx.is_some();
            if initialized {
                if let Err(err) = self.inner.sync(true).await {
                    first_err.get_or_insert(err);
                }
                for replica in &self.inner.replicas {
                    if let Err(err) = replica.sync_now().await {
                        first_err.get_or_insert(err);
                    }
                }
            }
            let mut state = self.inner.state.lock().await;
            for conn in [state.rtx.take(), state.conn.take()].into_iter().flatten() {
                if let Err(err) = conn.close().await {
                    first_err.get_or_insert(ReplicateError::sql("cannot close database", err));
                }
            }
            first_err.map_or(Ok(()), Err)
        }
        .instrument(span)
        .await
    }

    fn watch_files(&self) {
        let Some(dir) = self.inner.options.path.parent() else {
            return;
        };
        crate::watch::subscribe(
            dir,
            &self.inner.options.path,
            &self.inner.wal_path,
            &self.inner.wake,
        );
    }
}

impl DbInner {
    async fn monitor(self: Arc<Self>) {
        let interval = self.options.monitor_interval;
        let mut next_tick = crate::timer_grid::on_grid(Instant::now() + interval);
        // Other processes' locks are read every 200-264 ms while the database is in use (file
        // events in the last 10 s; every 400-464 ms while commits keep coming) or something
        // looks like a waiting checkpointer (confirmed 100-164 ms later), on each tick
        // otherwise (every second by default, every 2 s while the WAL's writes wake us): an
        // idle replicate then costs next to nothing.
        let mut next_probe = Instant::now() + CHECKPOINTER_PROBE;
        // SQLite's commit counter at the last probe.
        let mut probed_commits = None;
        let mut last_activity = Instant::now()
            .checked_sub(ACTIVE_WINDOW)
            .unwrap_or_else(Instant::now);
        let mut suspect: Option<(i32, Option<Probe>)> = None;
        let mut last_error: Option<(Instant, String)> = None;
        let mut last_pass: Option<Instant> = None;
        loop {
            // When idle, the locks are read on the tick itself: one wake-up a second, not two.
            let fast_probe = suspect.is_some()
                || last_activity.elapsed() < ACTIVE_WINDOW
                || self.options.monitor_interval > IDLE_PROBE;
            let (full, urgent) = tokio::select! {
                () = self.shared.token.cancelled() => return,
                () = tokio::time::sleep_until(next_tick.into()) => {
                    let step = if !fast_probe && self.wake.watching() {
                        interval.max(IDLE_TICK)
                    } else {
                        interval
                    };
                    next_tick = crate::timer_grid::on_grid(Instant::now() + step);
                    if !fast_probe {
                        suspect = self.probe_checkpointer(suspect).await;
                    }
                    // Under load the replicas' own passes already run once per interval.
                    if last_pass.is_some_and(|at| at.elapsed() < self.options.monitor_interval) {
                        continue;
                    }
                    (false, false)
                }
                woken = self.wake.woken() => match woken {
                    // The first change after a quiet spell runs a pass at once and ships.
                    crate::watch::Woken::Urgent => {
                        if self.shared.others_committed() {
                            last_activity = Instant::now();
                        }
                        (true, true)
                    }
                    // Changes that keep coming only tell the replicas there is more: each asks
                    // for a pass right before its next upload, once per sync-interval.
                    crate::watch::Woken::Pending => {
                        if self.shared.others_committed() {
                            last_activity = Instant::now();
                        }
                        if self.shared.position().is_some() {
                            self.shared.changed.send_modify(|n| *n = n.wrapping_add(1));
                            continue;
                        }
                        (true, false)
                    }
                },
                () = self.shared.pass_request.notified() => (true, false),
                () = tokio::time::sleep_until(next_probe.into()), if fast_probe => {
                    suspect = self.probe_checkpointer(suspect).await;
                    let commits = self.shared.commit_counter();
                    let step = if suspect.is_some() {
                        CHECKPOINTER_CONFIRM
                    } else if commits.is_some() && commits != probed_commits {
                        CHECKPOINTER_PROBE_BUSY
                    } else {
                        CHECKPOINTER_PROBE
                    };
                    probed_commits = commits;
                    // On the grid: one wake-up per probe instead of two.
                    next_probe = crate::timer_grid::on_grid(Instant::now() + step);
                    continue;
                }
            };
            self.wake.pass_started();
            last_pass = Some(Instant::now());
            let serving = self.shared.requested.load(Ordering::Acquire);
            match self.sync_with(full, urgent).await {
                Ok(()) => last_error = None,
                Err(err) => {
                    // Passes started by file events can fail many times a second for one
                    // cause; log it once per tick at most, as Litestream's tick does.
                    let text = chain(&err);
                    let repeat =
                        last_error
                            .as_ref()
                            .is_some_and(|(at, previous): &(Instant, String)| {
                                *previous == text && at.elapsed() < self.options.monitor_interval
                            });
                    if repeat {
                        tracing::debug!(error = crate::engine_error::as_dyn(&err), "sync error");
                    } else if err.is_busy() {
                        // The application held SQLite's lock past our busy timeout: nothing is
                        // wrong, the next pass tries again (0.3.13 logs these as errors).
                        tracing::warn!(error = crate::engine_error::as_dyn(&err), "sync error");
                        last_error = Some((Instant::now(), text));
                    } else {
                        tracing::error!(error = crate::engine_error::as_dyn(&err), "sync error");
                        last_error = Some((Instant::now(), text));
                    }
                }
            }
            self.shared.served.send_if_modified(|served| {
                let advanced = serving > *served;
                if advanced {
                    *served = serving;
                }
                advanced
            });
            if !self.state.lock().await.tasks_started && self.shared.position().is_some() {
                self.start_replica_tasks().await;
            }
        }
    }

    /// Looks for an application checkpoint (FULL, RESTART or TRUNCATE) waiting for our read
    /// transaction: the same process holding the writer and checkpointer locks on two probes in
    /// a row, with the database and WAL files unchanged in between. Then steps aside.
    async fn probe_checkpointer(
        &self,
        suspect: Option<(i32, Option<Probe>)>,
    ) -> Option<(i32, Option<Probe>)> {
        let shm = self.shared.shm_file()?;
        let pid = shmlock::blocked_checkpointer(&shm)?;
        if i64::from(pid) == i64::from(std::process::id()) {
            return None;
        }
        let files = self.probe();
        match suspect {
            Some((previous, previous_files)) if previous == pid && previous_files == files => {
                if let Err(err) = self.step_aside(pid).await {
                    tracing::error!(error = crate::engine_error::as_dyn(&err), "sync error");
                }
                None
            }
            _ => Some((pid, files)),
        }
    }

    /// Lets a waiting application checkpoint through: copies every committed frame into the
    /// shadow WAL, releases the read transaction, waits for the checkpointer to finish, and takes
    /// the read transaction back. The checkpointer holds the writer lock all along, so no frame
    /// can be committed to the old WAL cycle after the copy (ARCHITECTURE.md, invariant I5).
    async fn step_aside(&self, pid: i32) -> Result<(), ReplicateError> {
        // A snapshot's own read transaction pins the WAL until it ends; stepping aside meanwhile
        // would not let the checkpoint through.
        let Ok(_guard) = self.shared.checkpoint_lock.try_lock() else {
            return Ok(());
        };
        let mut state = self.state.lock().await;
        let (Some(pos), Some(shm)) = (self.shared.position(), self.shared.shm_file()) else {
            return Ok(());
        };
        if !shmlock::holds_write_lock(&shm, pid) {
            return Ok(());
        }
        let meta = self.shared.meta.clone();
        let wal_path = self.wal_path.clone();
        let shadow_path = meta.shadow_path(&pos.generation, pos.index);
        let mut cache = state.cache;
        let (copied, header, cache) = spawn_blocking_in_span(move || {
            let copied = shadow::copy_to_shadow(&wal_path, &shadow_path, &mut cache)?;
            let real = shadow::read_header_bytes(&wal_path)
                .map_err(|err| ReplicateError::io("read wal header", err))?;
            let shadow = shadow::read_header_bytes(&shadow_path)
                .map_err(|err| ReplicateError::io("read shadow wal header", err))?;
            Ok::<_, ReplicateError>((copied, (real == shadow).then_some(real), cache))
        })
        .await
        .map_err(join_error)??;
        state.cache = cache;
        self.shared
            .set_position(Some(Pos::new(pos.generation, pos.index, copied.new_size)));
        let Some(header) = header else {
            // The WAL already restarted; the next pass sorts it out as Litestream would.
            return Ok(());
        };
        let Some(rtx) = state.rtx.as_mut() else {
            return Ok(());
        };
        // Commits so far, read while the checkpointer holds the writer lock (so none can
        // happen meanwhile).
        let commits = shmlock::commit_counter(&shm);
        if !shmlock::holds_write_lock(&shm, pid) {
            return Ok(());
        }
        tracing::debug!(pid, "stepping aside for an application checkpoint");
        rtx.rollback()
            .await
            .map_err(|err| ReplicateError::sql("release read lock", err))?;
        let deadline = Instant::now() + STEP_ASIDE_MAX;
        while shmlock::holds_write_lock(&shm, pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rtx.begin_read()
            .await
            .map_err(|err| ReplicateError::sql("acquire read lock", err))?;
        // Read after the read lock is back (from now on at most one new WAL cycle can start):
        // every commit since the checkpoint is in the WAL's current cycle, so no cycle came and
        // went unseen (ARCHITECTURE.md, I5).
        let clean = match (commits, shmlock::commit_counter(&shm)) {
            (Some(before), Some(now)) if before == now => true,
            (Some(before), Some(now)) => {
                let wal_path = self.wal_path.clone();
                let in_cycle =
                    spawn_blocking_in_span(move || shadow::commits_in_cycle(&wal_path, &header))
                        .await
                        .map_err(join_error)?;
                // A commit while counting leaves the question open: not clean.
                in_cycle.is_ok_and(|count| {
                    shmlock::commit_counter(&shm) == Some(now)
                        && count == u64::from(now.wrapping_sub(before))
                })
            }
            _ => false,
        };
        state.stepped = Some(StepAside {
            generation: pos.generation,
            index: pos.index,
            end: copied.new_size,
            header,
            clean,
        });
        drop(state);
        self.sync(true).await
    }

    async fn start_replica_tasks(self: &Arc<Self>) {
        let mut state = self.state.lock().await;
        if state.tasks_started {
            return;
        }
        state.tasks_started = true;
        for replica in &self.replicas {
            replica.start(&self.tracker);
            let interval = replica.validation_interval();
            if !interval.is_zero() {
                let this = Arc::clone(self);
                let replica = Arc::clone(replica);
                let token = self.shared.token.clone();
                let span = replica.span();
                self.tracker.spawn(
                    async move { this.validator(replica, interval, token).await }.instrument(span),
                );
            }
        }
    }

    /// Litestream's validator (spec 5.8): every `interval`, checkpoint with RESTART, checksum
    /// the database, restore the replica up to the same point and compare.
    async fn validator(
        self: Arc<Self>,
        replica: Arc<ReplicaInner>,
        interval: Duration,
        token: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(err) = self.validate(&replica, &token).await {
                tracing::error!(
                    error = crate::engine_error::as_dyn(&err),
                    "validation error"
                );
            }
        }
    }

    async fn validate(
        &self,
        replica: &ReplicaInner,
        token: &CancellationToken,
    ) -> Result<(), ReplicateError> {
        let (pos, db_crc) = {
            let mut state = self.state.lock().await;
            if self.shared.position().is_none() {
                return Err(ReplicateError::Other("no current generation".to_owned()));
            }
            self.checkpoint(&mut state, CheckpointMode::Restart).await?;
            let Some(pos) = self.shared.position() else {
                return Err(ReplicateError::Other("no current generation".to_owned()));
            };
            let Some(file) = self.shared.db_file() else {
                return Err(ReplicateError::Other("no database available".to_owned()));
            };
            let crc = spawn_blocking_in_span(move || crc64_file(&file))
                .await
                .map_err(join_error)?
                .map_err(|err| ReplicateError::io("cannot checksum database", err))?;
            (Pos::new(pos.generation, pos.index, 0), crc)
        };
        if pos.index == 0 {
            return Ok(());
        }
        // Wait for the replica to reach the position.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match replica.position() {
                Some(rp) if rp.generation != pos.generation => {
                    return Err(ReplicateError::Other("generation changed".to_owned()));
                }
                Some(rp) if (rp.index, rp.offset) >= (pos.index, pos.offset) => break,
                Some(_) => {}
                None => tracing::info!("validator: no replica position available"),
            }
            if Instant::now() >= deadline {
                return Err(ReplicateError::Other(
                    "replica wait exceeded timeout".to_owned(),
                ));
            }
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        let client = replica.client();
        let replicas = [(replica.name().to_owned(), Arc::clone(&client))];
        let plan = crate::plan_restore(
            &replicas,
            Some(pos.generation),
            crate::RestoreUntil::Index(pos.index - 1),
        )
        .await
        .map_err(|err| ReplicateError::Other(format!("validation restore: {}", chain(&err))))?
        .ok_or_else(|| {
            ReplicateError::Other("validation restore: no matching backups".to_owned())
        })?;
        let dir = std::env::temp_dir().join(format!("{:016x}-litestream", rand::random::<u64>()));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|err| ReplicateError::io("validation restore", err))?;
        let output = dir.join("replica");
        let options = crate::RestoreOptions {
            output: output.clone(),
            parallelism: crate::DEFAULT_PARALLELISM,
            identities: replica.identities(),
        };
        let restored = crate::restore(client, &plan, options, Arc::new(crate::NoProgress)).await;
        let replica_crc = match restored {
            Ok(_) => spawn_blocking_in_span(move || {
                std::fs::File::open(&output).and_then(|file| crc64_file(&file))
            })
            .await
            .map_err(join_error)?
            .map_err(|err| ReplicateError::io("cannot checksum restored replica", err)),
            Err(err) => Err(ReplicateError::Other(format!(
                "validation restore: {}",
                chain(&err)
            ))),
        };
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let replica_crc = replica_crc?;
        let status = if db_crc == replica_crc { "ok" } else { "error" };
        metrics::counter!(
            "litestream_replica_validation_total",
            "db" => self.shared.path_label.clone(), "name" => replica.name().to_owned(), "status" => status
        )
        .increment(1);
        tracing::info!(
            status = if db_crc == replica_crc { "ok" } else { "mismatch" },
            db = %format!("{db_crc:016x}"),
            replica = %format!("{replica_crc:016x}"),
            position = %pos,
            "validator"
        );
        if db_crc != replica_crc {
            return Err(ReplicateError::Other(
                "invalid replica, checksum mismatch".to_owned(),
            ));
        }
        Ok(())
    }

    /// One sync pass (spec 4.3). `force` runs it in full even when nothing seems changed.
    async fn sync(&self, force: bool) -> Result<(), ReplicateError> {
        self.sync_with(force, false).await
    }

    /// A sync pass; `urgent` marks its news for the replicas as a change after a quiet spell,
    /// to be uploaded at once.
    async fn sync_with(&self, force: bool, urgent: bool) -> Result<(), ReplicateError> {
        let mut state = self.state.lock().await;
        let db_meta = match std::fs::metadata(&self.options.path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!("sync: no database found");
                return Ok(());
            }
            Err(err) => return Err(ReplicateError::io("cannot stat database", err)),
        };
        if state.rtx.is_some() && self.replaced(&db_meta) {
            tracing::warn!("database file replaced, reopening it");
            for conn in [state.rtx.take(), state.conn.take()].into_iter().flatten() {
                let _ = conn.close().await;
            }
            state.stepped = None;
            state.probe = None;
            state.cache = ScanCache::default();
        }
        if state.rtx.is_none()
            && let Err(err) = self.init(&mut state).await
        {
            for conn in [state.rtx.take(), state.conn.take()].into_iter().flatten() {
                let _ = conn.close().await;
            }
            return Err(err);
        }
        let probe = self.probe_with(&db_meta);
        if !force
            && let Some((last, at)) = state.probe
            && Some(last) == probe
            && at.elapsed() < FULL_PASS_EVERY
            && !self.checkpoint_due(&state, &db_meta)
        {
            return Ok(());
        }
        let started = Instant::now();
        let label = self.shared.path_label.clone();
        let result = self.sync_locked(&mut state, urgent).await;
        metrics::counter!("litestream_sync_count", "db" => label.clone()).increment(1);
        // A float counter in Litestream; the `metrics` facade's counters are integers, so it is
        // a gauge that only grows.
        metrics::gauge!("litestream_sync_seconds", "db" => label.clone())
            .increment(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {
                // The files as they were before the pass: anything written during it makes the
                // next tick run a pass.
                state.probe = probe.map(|p| (p, started));
                tracing::debug!("sync: ok");
            }
            Err(_) => {
                state.probe = None;
                metrics::counter!("litestream_sync_error_count", "db" => label).increment(1);
            }
        }
        result
    }

    /// Sizes and modification times of the database and its WAL. Two `stat` calls on local
    /// files: made in place, as a hop to the blocking pool would cost more than the calls and
    /// this runs on every idle tick.
    fn probe(&self) -> Option<Probe> {
        let db = std::fs::metadata(&self.options.path).ok()?;
        self.probe_with(&db)
    }

    /// [`Self::probe`] with the database's metadata already read.
    fn probe_with(&self, db: &std::fs::Metadata) -> Option<Probe> {
        let wal = std::fs::metadata(&self.wal_path)
            .ok()
            .and_then(|meta| Some((meta.len(), meta.modified().ok()?)));
        Some(Probe {
            db: (db.len(), db.modified().ok()?),
            wal,
        })
    }

    /// Whether the file at the database path is no longer the one we opened (deleted and
    /// recreated, or renamed over).
    fn replaced(&self, db_meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let Some(file) = self.shared.db_file() else {
            return false;
        };
        file.metadata()
            .is_ok_and(|open| open.ino() != db_meta.ino() || open.dev() != db_meta.dev())
    }

    /// Whether the time-based checkpoint is due: never while the WAL's cycle was checkpointed
    /// whole and got no frame since (`stepped`), as there is nothing to backfill.
    fn checkpoint_due(&self, state: &DbState, db_meta: &std::fs::Metadata) -> bool {
        let interval = self.options.checkpoint_interval;
        if interval.is_zero() || state.stepped.is_some() {
            return false;
        }
        let Some(pos) = self.shared.position() else {
            return false;
        };
        let page_size = self.shared.page_size();
        pos.offset > wal_size(page_size, 1)
            && db_meta
                .modified()
                .ok()
                .and_then(|mtime| mtime.elapsed().ok())
                .is_some_and(|age| age > interval)
    }

    /// Opens the connections, converts to WAL mode, starts the read transaction and checks that
    /// the shadow WAL still continues the real WAL (spec 2.5, 2.6, 4.2).
    async fn init(&self, state: &mut DbState) -> Result<(), ReplicateError> {
        let path = &self.options.path;
        // Kept open until the database file is replaced (invariant I6).
        let file = std::fs::File::open(path).map_err(|err| {
            ReplicateError::io(format!("cannot open database: {}", path.display()), err)
        })?;
        *self
            .shared
            .db_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(file));
        let mut conn = Sqlite::open(path).await.map_err(|err| {
            ReplicateError::sql(format!("cannot open database: {}", path.display()), err)
        })?;
        let page_size = conn.init().await.map_err(|err| match err {
            crate::sqlite::InitError::Sql(source) => ReplicateError::sql("init", source),
            other => ReplicateError::Other(other.to_string()),
        })?;
        self.shared.page_size.store(page_size, Ordering::Relaxed);
        state.conn = Some(conn);
        let mut rtx = Sqlite::open(path)
            .await
            .map_err(|err| ReplicateError::sql("cannot open read connection", err))?;
        rtx.no_autocheckpoint()
            .await
            .map_err(|err| ReplicateError::sql("init", err))?;
        rtx.begin_read()
            .await
            .map_err(|err| ReplicateError::sql("cannot acquire read lock", err))?;
        state.rtx = Some(rtx);
        state.stepped = None;
        let mut shm = self.options.path.clone().into_os_string();
        shm.push("-shm");
        *self
            .shared
            .shm_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            std::fs::File::open(PathBuf::from(shm)).ok().map(Arc::new);
        // Opening converted the database and created Litestream's tables.
        self.shared.note_own_commit();

        let meta = self.shared.meta.clone();
        let wal_path = self.wal_path.clone();
        let modes = Modes::of_db(path);
        let position = spawn_blocking_in_span(move || -> Result<Option<Pos>, ReplicateError> {
            ls_core::create_dir_all_durable_with_mode(meta.dir(), modes.dir)
                .map_err(|err| ReplicateError::io("cannot create meta directory", err))?;
            meta.remove_tmp_files()?;
            let Some(generation) = meta.read_generation()? else {
                return Ok(None);
            };
            let index = meta.current_index(&generation)?;
            let shadow_path = meta.shadow_path(&generation, index);
            let check = (|| -> Result<(), String> {
                let real = shadow::read_header_bytes(&wal_path)
                    .map_err(|err| format!("primary wal header: {}", io_text(&err)))?;
                let shadow = shadow::read_header_bytes(&shadow_path)
                    .map_err(|err| format!("shadow wal header: {}", io_text(&err)))?;
                if real != shadow {
                    return Err("wal header mismatch".to_owned());
                }
                Ok(())
            })();
            if let Err(reason) = check {
                tracing::warn!(
                    error = %reason,
                    "init: cannot determine last wal position, clearing generation"
                );
                meta.clear_generation()?;
                return Ok(None);
            }
            let size = shadow::repair_tail(&shadow_path)?;
            meta.clean(&generation, 0)?;
            Ok(Some(Pos::new(generation, index, size)))
        })
        .await
        .map_err(join_error)??;
        self.shared.set_position(position);
        Ok(())
    }

    async fn sync_locked(&self, state: &mut DbState, urgent: bool) -> Result<(), ReplicateError> {
        let page_size = self.shared.page_size();
        // Ensure the WAL exists, with a header to copy.
        let wal_len = shadow::file_size(&self.wal_path)
            .map_err(|err| ReplicateError::io("ensure wal exists", err))?;
        if wal_len < HEADER_LEN
            && let Some(conn) = state.conn.as_mut()
        {
            conn.bump_seq()
                .await
                .map_err(|err| ReplicateError::sql("ensure wal exists", err))?;
            self.shared.note_own_commit();
        }

        let meta = self.shared.meta.clone();
        let wal_path = self.wal_path.clone();
        let db_path = self.options.path.clone();
        let mut cache = state.cache;
        let stepped = state.stepped.take();
        let label = self.shared.path_label.clone();
        // Where a replica without encryption waits for the next frames: the pass encodes
        // them for it while they are in memory.
        let want = self.shared.position().filter(|pos| {
            self.replicas
                .iter()
                .any(|replica| !replica.encrypts() && replica.position() == Some(*pos))
        });
        let outcome = spawn_blocking_in_span(move || -> Result<PassOutcome, ReplicateError> {
            // Read only when a file is created: two `stat` calls saved on every other pass.
            let modes = || Modes::of_db(&db_path);
            let db_meta = fs_err::metadata(&db_path)
                .map_err(|err| ReplicateError::io("cannot verify wal state", err))?;
            let wal_size_now = shadow::file_size(&wal_path)
                .map_err(|err| ReplicateError::io("cannot verify wal state", err))?;
            metrics::gauge!("litestream_db_size", "db" => label.clone())
                .set(u64_f64(db_meta.len()));
            metrics::gauge!("litestream_wal_size", "db" => label.clone())
                .set(u64_f64(wal_size_now));

            let generation = meta.read_generation()?;
            if let (Some(step), Some(current)) = (stepped, generation) {
                let index = meta.current_index(&current)?;
                if step.generation == current
                    && step.index == index
                    && shadow::restarted_after(
                        &wal_path,
                        &meta.shadow_path(&current, index),
                        &step.header,
                        step.end,
                        step.clean,
                    )?
                {
                    // The application's checkpoint restarted the WAL after we had copied
                    // all of the old cycle: carry on in the next index, same generation.
                    let next = meta.shadow_path(&current, index + 1);
                    let copied = shadow::init_shadow(&wal_path, &next, modes(), &mut cache)?;
                    if copied.appended > 0 {
                        metrics::counter!("litestream_total_wal_bytes", "db" => label.clone())
                            .increment(copied.appended);
                    }
                    return Ok(PassOutcome {
                        pos: Pos::new(current, index + 1, copied.new_size),
                        orig_size: copied.orig_size,
                        changed: true,
                        db_mtime: db_meta.modified().ok(),
                        cache,
                        stepped: None,
                        salts: copied.salts,
                        appended: true,
                        encoded: None,
                    });
                }
            }
            let (generation, index, verified) = match generation {
                None => (
                    None,
                    0,
                    shadow::Verified {
                        reason: Some("no generation exists"),
                        restart: false,
                    },
                ),
                Some(generation) => {
                    let index = meta.current_index(&generation)?;
                    let shadow_path = meta.shadow_path(&generation, index);
                    let verified = shadow::verify(&wal_path, &shadow_path, index, page_size)
                        .map_err(|err| {
                            ReplicateError::Other(format!(
                                "cannot verify wal state: {}",
                                chain(&err)
                            ))
                        })?;
                    (Some(generation), index, verified)
                }
            };
            // Replicas are woken only when there is something new for them: frames copied, a
            // new index or a new generation. (0.3.13 also wakes them whenever the WAL file's
            // size differs from the shadow's, which after a restart is every pass.)
            let mut changed = verified.restart || verified.reason.is_some();
            let mut encoded = None;

            let (generation, index, copied) = match (verified.reason, generation) {
                (Some(_), _) | (None, None) => {
                    let reason = reason_or(verified.reason);
                    let generation = Generation::random();
                    let shadow_path = meta.shadow_path(&generation, 0);
                    let copied = shadow::init_shadow(&wal_path, &shadow_path, modes(), &mut cache)
                        .map_err(|err| {
                            ReplicateError::Other(format!("create generation: {}", chain(&err)))
                        })?;
                    meta.write_generation(&generation, modes())?;
                    meta.clean(&generation, 0)?;
                    tracing::info!(generation = %generation, reason, "sync: new generation");
                    changed = true;
                    (generation, 0, copied)
                }
                (None, Some(generation)) => {
                    let shadow_path = meta.shadow_path(&generation, index);
                    let copied = shadow::copy_to_shadow_with(
                        &wal_path,
                        &shadow_path,
                        &mut cache,
                        &mut |start, bytes| {
                            let start = Pos::new(generation, index, start);
                            if want == Some(start) && !verified.restart {
                                encoded = Some(Encoded {
                                    start,
                                    end: start.offset
                                        + u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                                    bytes: ls_core::compress(bytes).into(),
                                });
                            }
                        },
                    )
                    .map_err(|err| ReplicateError::Other(format!("sync wal: {}", chain(&err))))?;
                    if verified.restart {
                        let next = meta.shadow_path(&generation, index + 1);
                        let new = shadow::init_shadow(&wal_path, &next, modes(), &mut cache)
                            .map_err(|err| {
                                ReplicateError::Other(format!("sync wal: {}", chain(&err)))
                            })?;
                        (
                            generation,
                            index + 1,
                            Copied {
                                orig_size: copied.orig_size,
                                ..new
                            },
                        )
                    } else {
                        (generation, index, copied)
                    }
                }
            };
            if copied.appended > 0 {
                changed = true;
                metrics::counter!("litestream_total_wal_bytes", "db" => label.clone())
                    .increment(copied.appended);
            }
            // The WAL still holds the checkpointed cycle, with nothing after what we copied:
            // the record stays for the writer that restarts it (ARCHITECTURE.md, I5).
            let stepped = stepped.filter(|step| {
                verified.reason.is_none()
                    && !verified.restart
                    && step.generation == generation
                    && step.index == index
                    && copied.appended == 0
                    && copied.new_size == step.end
            });
            Ok(PassOutcome {
                pos: Pos::new(generation, index, copied.new_size),
                orig_size: copied.orig_size,
                changed,
                db_mtime: db_meta.modified().ok(),
                cache,
                stepped,
                salts: copied.salts,
                appended: copied.appended > 0,
                encoded,
            })
        })
        .await
        .map_err(join_error)??;
        state.cache = outcome.cache;
        state.stepped = outcome.stepped;
        if outcome.appended {
            // Before the position moves: a replica that sees it finds the frame.
            self.shared.set_encoded(outcome.encoded);
        }
        self.shared.set_position(Some(outcome.pos));
        let mut changed = outcome.changed;

        // Checkpoint decision (spec 4.3 step 7).
        let new_size = outcome.pos.offset;
        let mode = if outcome.orig_size >= wal_size(page_size, TRUNCATE_PAGE_COUNT) {
            Some(CheckpointMode::Truncate)
        } else if self.options.max_checkpoint_page_count > 0
            && new_size >= wal_size(page_size, u64::from(self.options.max_checkpoint_page_count))
        {
            Some(CheckpointMode::Restart)
        } else if state.stepped.is_some() {
            // The cycle was checkpointed whole and got no frame since: nothing to backfill.
            None
        } else if self.unbackfilled(new_size, page_size, outcome.salts)
            >= u64::from(self.options.min_checkpoint_page_count)
            || (!self.options.checkpoint_interval.is_zero()
                && outcome
                    .db_mtime
                    .and_then(|mtime| mtime.elapsed().ok())
                    .is_some_and(|age| age > self.options.checkpoint_interval)
                && new_size > wal_size(page_size, 1))
        {
            Some(CheckpointMode::Passive)
        } else {
            None
        };
        if let Some(mode) = mode {
            changed = true;
            self.checkpoint(state, mode).await?;
        }

        // Clean, metrics, wake replicas.
        let min_index = self.min_replica_index();
        let meta = self.shared.meta.clone();
        let Some(pos) = self.shared.position() else {
            return Ok(());
        };
        let label = self.shared.path_label.clone();
        let key = (pos.generation, pos.index, min_index);
        let others = match state.cleaned {
            Some((seen, others)) if seen == key => others,
            _ => {
                let others = spawn_blocking_in_span(move || -> Result<u64, ReplicateError> {
                    meta.clean(&pos.generation, min_index).map_err(|err| {
                        ReplicateError::Other(format!("cannot clean: {}", chain(&err)))
                    })?;
                    Ok(meta
                        .shadow_files(&pos.generation)?
                        .iter()
                        .filter(|(index, _)| *index != pos.index)
                        .map(|(_, size)| size)
                        .sum())
                })
                .await
                .map_err(join_error)??;
                state.cleaned = Some((key, others));
                others
            }
        };
        metrics::gauge!("litestream_shadow_wal_index", "db" => label.clone())
            .set(f64::from(pos.index));
        metrics::gauge!("litestream_shadow_wal_size", "db" => label)
            .set(u64_f64(others.saturating_add(pos.offset)));
        // An urgent pass that finds nothing new still wakes the replicas: a tick's pass may
        // have copied the frames of that first commit a moment before, without the mark.
        if changed || urgent {
            // The urgent mark is set before the replicas are woken (inside the update), so a
            // replica never sees the change without it and waits out its sync-interval.
            self.shared.changed.send_modify(|n| {
                *n = n.wrapping_add(1);
                if urgent {
                    self.shared.urgent.store(*n, Ordering::Release);
                }
            });
        }
        Ok(())
    }

    /// Frames of the shadow's current index (`new_size` bytes, WAL cycle `salts`) that no
    /// checkpoint has copied into the database file yet, by SQLite's `nBackfill`: all of them
    /// when the `-shm` cannot tell. A PASSIVE checkpoint is due when they reach
    /// `min-checkpoint-page-count`, not the WAL's size, so while the WAL does not restart after
    /// a complete checkpoint (a commit landed before our read transaction came back, which
    /// then holds a read mark) we do not checkpoint again on every pass.
    fn unbackfilled(&self, new_size: u64, page_size: u32, salts: [u8; 8]) -> u64 {
        let frame = wal_size(page_size, 1) - HEADER_LEN;
        let frames = new_size.saturating_sub(HEADER_LEN) / frame.max(1);
        match self
            .shared
            .shm_file()
            .as_deref()
            .and_then(shmlock::backfilled)
        {
            Some((cycle, done)) if cycle == salts => frames.saturating_sub(u64::from(done)),
            _ => frames,
        }
    }

    /// The lowest WAL index any replica has reached in the current generation (0 when one is
    /// elsewhere or unknown), which bounds what clean may remove.
    fn min_replica_index(&self) -> u32 {
        let Some(pos) = self.shared.position() else {
            return 0;
        };
        self.replicas
            .iter()
            .map(|replica| match replica.position() {
                Some(rp) if rp.generation == pos.generation => rp.index,
                _ => 0,
            })
            .min()
            .unwrap_or(0)
    }

    /// Litestream's checkpoint (spec 4.6): copy, release the read transaction, checkpoint,
    /// take it back, force a frame, and when the WAL restarted, drain the old cycle into the
    /// current shadow file and start the next index under the write lock.
    async fn checkpoint(
        &self,
        state: &mut DbState,
        mode: CheckpointMode,
    ) -> Result<(), ReplicateError> {
        let Ok(_guard) = self.shared.checkpoint_lock.try_lock() else {
            return Ok(());
        };
        let Some(pos) = self.shared.position() else {
            return Ok(());
        };
        let meta = self.shared.meta.clone();
        let wal_path = self.wal_path.clone();
        let shadow_path = meta.shadow_path(&pos.generation, pos.index);
        let mut cache = state.cache;
        let (header, copied, cache) = {
            let wal_path = wal_path.clone();
            let shadow_path = shadow_path.clone();
            spawn_blocking_in_span(move || -> Result<_, ReplicateError> {
                let header = shadow::read_header_bytes(&wal_path)
                    .map_err(|err| ReplicateError::io("checkpoint: read wal header", err))?;
                let copied = shadow::copy_to_shadow(&wal_path, &shadow_path, &mut cache)?;
                Ok((header, copied, cache))
            })
            .await
            .map_err(join_error)??
        };
        state.cache = cache;
        self.shared
            .set_position(Some(Pos::new(pos.generation, pos.index, copied.new_size)));

        let label = self.shared.path_label.clone();
        // The read transaction is released below: an older record no longer holds.
        state.stepped = None;
        let (Some(rtx), Some(conn)) = (state.rtx.as_mut(), state.conn.as_mut()) else {
            return Ok(());
        };
        rtx.rollback()
            .await
            .map_err(|err| ReplicateError::sql("release read lock", err))?;
        let started = Instant::now();
        let result = conn.checkpoint(mode).await;
        let reacquired = rtx.begin_read().await;
        metrics::counter!("litestream_checkpoint_count", "db" => label.clone(), "mode" => mode.as_str()).increment(1);
        metrics::gauge!("litestream_checkpoint_seconds", "db" => label.clone(), "mode" => mode.as_str())
            .increment(started.elapsed().as_secs_f64());
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                metrics::counter!("litestream_checkpoint_error_count", "db" => label, "mode" => mode.as_str()).increment(1);
                return Err(ReplicateError::sql(
                    format!("checkpoint: mode={}", mode.as_str()),
                    err,
                ));
            }
        };
        reacquired.map_err(|err| ReplicateError::sql("acquire read lock", err))?;
        tracing::debug!(
            mode = mode.as_str(),
            result = %format!("{},{},{}", result[0], result[1], result[2]),
            "checkpoint"
        );
        // A whole cycle backfilled (not busy, every frame of the WAL checkpointed).
        let complete = result[0] == 0 && result[1] >= 0 && result[1] == result[2];
        if mode == CheckpointMode::Passive && complete {
            // No write of our own to restart the WAL (0.3.13 writes `_litestream_seq` here,
            // one more segment to upload even when the database is idle): copy what came in
            // meanwhile and, while the WAL still holds this cycle, keep a record so that the
            // application's next write, which restarts it, continues in the next index. Our
            // read transaction is back, so at most one new cycle can start before we look
            // (ARCHITECTURE.md, I5).
            let wal_path = wal_path.clone();
            let shadow_path = shadow_path.clone();
            let mut cache = state.cache;
            let (copied, same, cache) = spawn_blocking_in_span(move || {
                let copied = shadow::copy_to_shadow(&wal_path, &shadow_path, &mut cache)?;
                let now = shadow::read_header_bytes(&wal_path)
                    .map_err(|err| ReplicateError::io("checkpoint: read wal header", err))?;
                Ok::<_, ReplicateError>((copied, now == header, cache))
            })
            .await
            .map_err(join_error)??;
            state.cache = cache;
            self.shared
                .set_position(Some(Pos::new(pos.generation, pos.index, copied.new_size)));
            if same {
                state.stepped = Some(StepAside {
                    generation: pos.generation,
                    index: pos.index,
                    end: copied.new_size,
                    header,
                    clean: true,
                });
                return Ok(());
            }
        }
        conn.bump_seq()
            .await
            .map_err(|err| ReplicateError::sql("checkpoint: write seq", err))?;
        self.shared.note_own_commit();
        let other = shadow::read_header_bytes(&wal_path)
            .map_err(|err| ReplicateError::io("checkpoint: read wal header", err))?;
        if other == header {
            return Ok(());
        }
        conn.begin_write_lock()
            .await
            .map_err(|err| ReplicateError::sql("checkpoint: acquire write lock", err))?;
        let modes = Modes::of_db(&self.options.path);
        let next_path = meta.shadow_path(&pos.generation, pos.index + 1);
        let mut cache = state.cache;
        let drained = spawn_blocking_in_span(move || -> Result<_, ReplicateError> {
            shadow::copy_to_shadow(&wal_path, &shadow_path, &mut cache)?;
            let copied = shadow::init_shadow(&wal_path, &next_path, modes, &mut cache)?;
            Ok((copied, cache))
        })
        .await
        .map_err(join_error)?;
        let rolled_back = conn.rollback().await;
        let (copied, cache) = drained?;
        rolled_back.map_err(|err| ReplicateError::sql("checkpoint: release write lock", err))?;
        state.cache = cache;
        self.shared.set_position(Some(Pos::new(
            pos.generation,
            pos.index + 1,
            copied.new_size,
        )));
        Ok(())
    }
}

/// CRC-64/GO-ISO of a whole file, read with `pread` so the descriptor stays open.
fn crc64_file(file: &std::fs::File) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt as _;
    const CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_GO_ISO);
    let mut digest = CRC.digest();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        digest.update(buf.get(..n).unwrap_or_default());
        offset += u64::try_from(n).unwrap_or(0);
    }
    Ok(digest.finalize())
}

/// A position shared between tasks: the database's or a replica's.
#[derive(Debug, Default)]
pub(crate) struct PosCell(StdMutex<Option<Pos>>);

impl PosCell {
    /// The position, if known.
    pub(crate) fn get(&self) -> Option<Pos> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the position.
    pub(crate) fn set(&self, pos: Option<Pos>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pos;
    }
}

/// What the blocking part of a pass found.
struct PassOutcome {
    pos: Pos,
    orig_size: u64,
    changed: bool,
    db_mtime: Option<SystemTime>,
    cache: ScanCache,
    /// The checkpoint record to keep for the next pass.
    stepped: Option<StepAside>,
    /// The salts of the shadow's WAL cycle.
    salts: [u8; 8],
    /// Whether frames were appended to a shadow file.
    appended: bool,
    /// The appended frames encoded for a replica waiting for them.
    encoded: Option<Encoded>,
}

fn reason_or(reason: Option<&'static str>) -> &'static str {
    reason.unwrap_or("no generation exists")
}

/// Go's text for common I/O errors in Litestream's messages (`EOF`).
fn io_text(err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        "EOF".to_owned()
    } else if err.kind() == std::io::ErrorKind::NotFound {
        "no such file or directory".to_owned()
    } else {
        err.to_string()
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Some errors (object_store's) already print their source: say it once.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `spawn_blocking` that keeps the caller's span, so log lines from blocking work carry the
/// `db=` attribute.
pub(crate) fn spawn_blocking_in_span<F, T>(work: F) -> tokio::task::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
}

pub(crate) fn join_error(err: tokio::task::JoinError) -> ReplicateError {
    ReplicateError::Other(format!("background task failed: {err}"))
}

/// A byte count as a gauge value (exact below 2^53, which covers any file).
#[allow(clippy::as_conversions, clippy::cast_precision_loss)]
pub(crate) fn u64_f64(value: u64) -> f64 {
    value as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_new_duplicate_replica_names_fail() {
        let options = DbOptions::new("/tmp/x.db");
        let client: Arc<dyn ls_core::ReplicaClient> = Arc::new(crate::replica::tests::NullClient);
        let replicas = vec![
            Replica::new(crate::ReplicaOptions::new("file"), Arc::clone(&client)),
            Replica::new(crate::ReplicaOptions::new("file"), client),
        ];
        let err = Db::new(options, replicas).expect_err("duplicate names");
        assert_eq!(err.to_string(), "duplicate replica name: \"file\"");
    }

    #[test]
    fn chain_joins_sources() {
        let err = ReplicateError::io("open x", std::io::Error::other("boom"));
        assert_eq!(chain(&err), "open x: boom");
    }

    #[test]
    fn chain_says_a_source_its_error_already_printed_once() {
        let err = ReplicateError::io(
            "list: 403 Forbidden",
            std::io::Error::other("403 Forbidden"),
        );
        assert_eq!(chain(&err), "list: 403 Forbidden");
    }
}
