//! The replica engine (spec 5): uploading the shadow WAL as segments, snapshots, recomputing the
//! position after a restart, retention, the snapshotter, and the monitor that decides when to
//! sync.
//!
//! Syncing is prompt and frugal: the first change after a quiet spell is uploaded at once, and
//! under sustained writes at most one sync runs per `sync-interval`, so never more uploads than
//! Litestream makes. A failed sync is retried with backoff even when the database is idle
//! (Litestream waits for the next change), and an outage is logged once, not once per retry.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;
use ls_core::{
    AgeIdentities, AgeRecipients, ClientError, Generation, Lz4Reader, Pos, ReplicaClient,
    SnapshotInfo, WAL_FRAME_HEADER_SIZE, frame_align,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::db::{DbShared, chain, join_error, u64_f64};
use crate::encode::encode_stream;
use crate::engine_error::ReplicateError;
use crate::image::DbImage;
use crate::shadow::HEADER_LEN;
use crate::sqlite::{CheckpointMode, Sqlite};

/// Longest wait between retries of a failing sync.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Attempts a snapshot makes before it gives up, when its position does not yet cover what
/// checkpoints wrote into the database file (ARCHITECTURE.md, I8).
const SNAPSHOT_ATTEMPTS: u32 = 5;
/// How long a snapshot waits for the replica to upload the WAL segments it needs before it is
/// stored (ARCHITECTURE.md, I8).
const SNAPSHOT_SEGMENT_WAIT: Duration = Duration::from_secs(30);
/// How long a snapshot waits for the database's sync pass that brings the shadow WAL up to its
/// read transaction.
const SNAPSHOT_PASS_WAIT: Duration = Duration::from_secs(5);

/// Settings of one replica: the `dbs[].replicas[]` keys that are not about storage.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// Unique name within the database; defaults to the replica type.
    pub name: String,
    /// Minimum time between two syncs.
    pub sync_interval: Duration,
    /// How long snapshots (and the WAL they need) are kept; zero keeps everything.
    pub retention: Duration,
    /// How often retention runs (capped at `retention`).
    pub retention_check_interval: Duration,
    /// Time between periodic snapshots; zero disables them.
    pub snapshot_interval: Duration,
    /// Time between validations (restore and compare); zero disables them.
    pub validation_interval: Duration,
    /// Encrypt uploads to these recipients (age), if any.
    pub recipients: Option<Arc<AgeRecipients>>,
    /// Decrypt downloads with these identities (age), if any.
    pub identities: Option<Arc<AgeIdentities>>,
}

impl ReplicaOptions {
    /// Litestream's defaults for a replica named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            sync_interval: Duration::from_secs(1),
            retention: Duration::from_secs(24 * 3600),
            retention_check_interval: Duration::from_secs(3600),
            snapshot_interval: Duration::ZERO,
            validation_interval: Duration::ZERO,
            recipients: None,
            identities: None,
        }
    }
}

/// A replica to attach to a [`crate::Db`]: its settings and its storage.
#[derive(Clone, Debug)]
pub struct Replica {
    options: ReplicaOptions,
    client: Arc<dyn ReplicaClient>,
}

impl Replica {
    /// A replica storing through `client`.
    pub fn new(options: ReplicaOptions, client: Arc<dyn ReplicaClient>) -> Self {
        Self { options, client }
    }

    /// The replica's name.
    pub fn name(&self) -> &str {
        &self.options.name
    }
}

/// A replica attached to its database.
#[derive(Debug)]
pub(crate) struct ReplicaInner {
    options: ReplicaOptions,
    client: Arc<dyn ReplicaClient>,
    db: Arc<DbShared>,
    /// Where the replica's WAL ends; `None` until computed (and after an error).
    pos: crate::db::PosCell,
    /// One sync at a time.
    sync_lock: Mutex<()>,
    /// One snapshot at a time.
    snapshot_lock: Mutex<()>,
    /// A snapshot waiting for segments asks the monitor to upload at once, sync-interval or not.
    flush: tokio::sync::Notify,
    flush_asked: std::sync::atomic::AtomicBool,
    db_label: String,
}

/// Whether the replica may already hold WAL segments of the generation a snapshot is taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Segments {
    /// The generation's first snapshot: segments are only uploaded after one.
    None,
    /// A later snapshot (periodic, or for retention).
    Maybe,
}

impl ReplicaInner {
    pub(crate) fn new(replica: Replica, db: Arc<DbShared>) -> Self {
        let db_label = db.path_label.clone();
        Self {
            options: replica.options,
            client: replica.client,
            db,
            pos: crate::db::PosCell::default(),
            sync_lock: Mutex::new(()),
            snapshot_lock: Mutex::new(()),
            flush: tokio::sync::Notify::new(),
            flush_asked: std::sync::atomic::AtomicBool::new(false),
            db_label,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.options.name
    }

    pub(crate) fn validation_interval(&self) -> Duration {
        self.options.validation_interval
    }

    pub(crate) fn client(&self) -> Arc<dyn ReplicaClient> {
        Arc::clone(&self.client)
    }

    /// Whether this replica encrypts what it uploads.
    pub(crate) fn encrypts(&self) -> bool {
        self.options
            .recipients
            .as_ref()
            .is_some_and(|recipients| !recipients.is_empty())
    }

    pub(crate) fn identities(&self) -> AgeIdentities {
        self.options
            .identities
            .as_deref()
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn position(&self) -> Option<Pos> {
        self.pos.get()
    }

    fn set_position(&self, pos: Option<Pos>) {
        self.pos.set(pos);
    }

    pub(crate) fn span(&self) -> tracing::Span {
        tracing::info_span!(parent: None, "replica", db = %self.db_label, replica = %self.options.name)
    }

    /// Starts the monitor, retainer and snapshotter tasks.
    pub(crate) fn start(self: &Arc<Self>, tracker: &TaskTracker) {
        let token = &self.db.token;
        for status in ["ok", "error"] {
            metrics::counter!(
                "litestream_replica_validation_total",
                "db" => self.db_label.clone(), "name" => self.options.name.clone(), "status" => status
            )
            .absolute(0);
        }
        let this = Arc::clone(self);
        let cancel = token.clone();
        tracker.spawn(async move { this.monitor(cancel).await }.instrument(self.span()));
        if !self.options.retention.is_zero() {
            let this = Arc::clone(self);
            let cancel = token.clone();
            tracker.spawn(async move { this.retainer(cancel).await }.instrument(self.span()));
        }
        if !self.options.snapshot_interval.is_zero() {
            let this = Arc::clone(self);
            let cancel = token.clone();
            tracker.spawn(async move { this.snapshotter(cancel).await }.instrument(self.span()));
        }
    }

    /// A sync in this replica's span, for the final sync and on-demand syncs.
    pub(crate) async fn sync_now(&self) -> Result<(), ReplicateError> {
        let span = self.span();
        self.sync().instrument(span).await
    }

    async fn monitor(self: Arc<Self>, token: CancellationToken) {
        let mut changes = self.db.changed.subscribe();
        let mut last_sync: Option<Instant> = None;
        let mut synced_seq = 0u64;
        let mut failing = false;
        let mut backoff = self.options.sync_interval.max(Duration::from_millis(100));
        let mut first = true;
        loop {
            if !first {
                if failing {
                    tokio::select! {
                        () = token.cancelled() => return,
                        res = changes.changed() => if res.is_err() { return },
                        () = tokio::time::sleep(backoff) => {}
                        () = self.flush.notified() => {}
                    }
                } else {
                    tokio::select! {
                        () = token.cancelled() => return,
                        res = changes.changed() => if res.is_err() { return },
                        () = self.flush.notified() => {}
                    }
                }
            }
            first = false;
            // At most one upload per sync-interval, except for a change that came after a
            // quiet spell (the database marks it urgent): sporadic commits are uploaded as they
            // come, commits that keep coming are batched into one upload per sync-interval.
            let urgent = |seen: u64| {
                self.db.urgent.load(std::sync::atomic::Ordering::Acquire) > seen
                    || self.flush_asked.load(std::sync::atomic::Ordering::Acquire)
            };
            if let Some(last) = last_sync.filter(|_| !urgent(synced_seq) || failing) {
                let next = last + self.options.sync_interval;
                while Instant::now() < next {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep_until(next.into()) => break,
                        () = self.flush.notified() => if !failing { break },
                        res = changes.changed() => {
                            if res.is_err() {
                                return;
                            }
                            changes.borrow_and_update();
                            if urgent(synced_seq) && !failing {
                                break;
                            }
                        }
                    }
                }
            }
            self.flush_asked
                .store(false, std::sync::atomic::Ordering::Release);
            synced_seq = *changes.borrow_and_update();
            // The sync-interval runs from one ask to the next, so the pass and the upload do
            // not push every later upload back.
            let started = Instant::now();
            // The database may only have flagged new commits (file events in a burst run no
            // pass): have it copy everything committed so far before uploading.
            self.db.fresh_pass(Duration::from_secs(2)).await;
            let before = self.position();
            let result = self.sync().await;
            // Only a sync that uploaded counts against the sync-interval.
            if result.is_err() || self.position() != before {
                last_sync = Some(started);
            }
            match result {
                Ok(()) => {
                    if failing {
                        tracing::info!("replica sync recovered");
                    }
                    failing = false;
                    backoff = self.options.sync_interval.max(Duration::from_millis(100));
                }
                Err(err) => {
                    if failing {
                        tracing::debug!(error = crate::engine_error::as_dyn(&err), "monitor error");
                    } else {
                        tracing::error!(error = crate::engine_error::as_dyn(&err), "monitor error");
                    }
                    failing = true;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Litestream's replica sync (spec 5.1).
    async fn sync(&self) -> Result<(), ReplicateError> {
        let _guard = self.sync_lock.lock().await;
        let result = self.sync_locked().await;
        if result.is_err() {
            self.set_position(None);
        }
        result
    }

    async fn sync_locked(&self) -> Result<(), ReplicateError> {
        let Some(dpos) = self.db.position() else {
            return Err(ReplicateError::Other(
                "no generation, waiting for data".to_owned(),
            ));
        };
        let started = Instant::now();
        tracing::debug!(position = %dpos, "replica sync");
        if self.position().map(|pos| pos.generation) != Some(dpos.generation) {
            let pos = self.resume_position(&dpos.generation).await?;
            tracing::debug!(position = %pos, "replica sync: calc new pos");
            self.set_position(Some(pos));
        }
        while self.upload_next_segment().await? {}
        if let Some(pos) = self.position()
            && pos.generation == dpos.generation
            && (pos.index, pos.offset) >= (dpos.index, dpos.offset)
        {
            metrics::gauge!(
                "litestream_replica_lag_seconds",
                "db" => self.db_label.clone(), "name" => self.options.name.clone()
            )
            .set(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Uploads what the shadow WAL holds past the replica position as one segment (spec 5.2);
    /// `false` when there is nothing to upload.
    async fn upload_next_segment(&self) -> Result<bool, ReplicateError> {
        let Some(mut pos) = self.position() else {
            return Ok(false);
        };
        let Some(dpos) = self.db.position() else {
            return Ok(false);
        };
        if dpos.generation != pos.generation {
            return Ok(false);
        }
        let page_size = self.db.page_size();
        let mut end = self.readable_end(&pos, &dpos, page_size).await?;
        let Some(mut end_offset) = end else {
            return Err(ReplicateError::Other(format!(
                "shadow wal {:08x} of generation {} is missing",
                pos.index, pos.generation
            )));
        };
        if pos.offset > end_offset {
            return Err(ReplicateError::Other(
                "wal reader offset too high".to_owned(),
            ));
        }
        if pos.offset == end_offset {
            if pos.index >= dpos.index {
                return Ok(false);
            }
            let next = Pos::new(pos.generation, pos.index + 1, 0);
            end = self.readable_end(&next, &dpos, page_size).await?;
            let Some(next_end) = end else {
                return Ok(false);
            };
            pos = next;
            end_offset = next_end;
            if end_offset == 0 {
                return Ok(false);
            }
        }
        tracing::info!(position = %pos, "write wal segment");
        let started = Instant::now();
        let shadow_path = self.db.meta.shadow_path(&pos.generation, pos.index);
        let start = pos;
        let key = format!("wal segment {start}");
        // Usually the pass that copied these frames also encoded them.
        let ready = if self.encrypts() {
            None
        } else {
            self.db.encoded_segment(&start, end_offset)
        };
        if let Some(bytes) = ready {
            let stream: ls_core::ByteStream =
                Box::pin(futures_util::stream::once(async move { Ok(bytes) }));
            let written = self.client.write_wal_segment(&start, stream).await;
            written.map_err(|err| ReplicateError::client("client write", err))?;
            self.uploaded(start, end_offset - start.offset, started);
            return Ok(true);
        }
        let (stream, producer) = encode_stream(
            self.options.recipients.clone(),
            key,
            move |out| -> io::Result<u64> {
                let mut file = fs_err::File::open(&shadow_path)?;
                file.seek(SeekFrom::Start(start.offset))?;
                let mut reader = BufReader::with_capacity(256 * 1024, file);
                let frame_len = WAL_FRAME_HEADER_SIZE + usize::try_from(page_size).unwrap_or(0);
                let mut buf = vec![0u8; frame_len];
                let mut offset = start.offset;
                let mut prev_salt = 0u64;
                if offset == 0 {
                    let header = buf.get_mut(..32).unwrap_or_default();
                    reader.read_exact(header)?;
                    prev_salt = u64::from_be_bytes(
                        header
                            .get(16..24)
                            .and_then(|s| s.try_into().ok())
                            .unwrap_or_default(),
                    );
                    out.write_all(header)?;
                    offset = HEADER_LEN;
                }
                while offset < end_offset {
                    reader.read_exact(&mut buf)?;
                    let salt = u64::from_be_bytes(
                        buf.get(8..16)
                            .and_then(|s| s.try_into().ok())
                            .unwrap_or_default(),
                    );
                    if prev_salt != 0 && salt != prev_salt {
                        return Err(io::Error::other(format!("replica salt mismatch: {start}")));
                    }
                    prev_salt = salt;
                    out.write_all(&buf)?;
                    offset += u64::try_from(frame_len).unwrap_or(0);
                }
                Ok(offset - start.offset)
            },
        );
        let written = self.client.write_wal_segment(&start, stream).await;
        let produced = producer.await.map_err(join_error)?;
        let size = match (written, produced) {
            (Ok(_), Ok(size)) => size,
            (_, Err(err)) => {
                return Err(ReplicateError::io(
                    format!("cannot read shadow wal for {start}"),
                    err,
                ));
            }
            (Err(err), Ok(_)) => return Err(ReplicateError::client("client write", err)),
        };
        self.uploaded(start, size, started);
        Ok(true)
    }

    /// Moves the position past a segment of `size` bytes from `start` just uploaded.
    fn uploaded(&self, start: Pos, size: u64, started: Instant) {
        let new_pos = Pos::new(start.generation, start.index, start.offset + size);
        self.set_position(Some(new_pos));
        let labels = [
            ("db", self.db_label.clone()),
            ("name", self.options.name.clone()),
        ];
        metrics::counter!("litestream_replica_wal_bytes", &labels).increment(size);
        metrics::gauge!("litestream_replica_wal_index", &labels).set(f64::from(new_pos.index));
        metrics::gauge!("litestream_replica_wal_offset", &labels).set(u64_f64(new_pos.offset));
        tracing::info!(position = %start, elapsed = ?started.elapsed(), sz = size, "wal segment written");
    }

    /// How far the shadow file of `pos.index` may be read: the committed size the database
    /// published for the current index, the frame-aligned file size for older (finished) ones;
    /// `None` when the file does not exist.
    async fn readable_end(
        &self,
        pos: &Pos,
        dpos: &Pos,
        page_size: u32,
    ) -> Result<Option<u64>, ReplicateError> {
        if pos.index == dpos.index {
            return Ok(Some(dpos.offset));
        }
        if pos.index > dpos.index {
            return Ok(None);
        }
        let path = self.db.meta.shadow_path(&pos.generation, pos.index);
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(frame_align(meta.len(), page_size))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(ReplicateError::io("cannot stat shadow wal", err)),
        }
    }

    /// Writes a snapshot of the database at the current position (spec 5.3).
    pub(crate) async fn snapshot(
        &self,
        segments: Segments,
    ) -> Result<SnapshotInfo, ReplicateError> {
        let _snapshot_guard = self.snapshot_lock.lock().await;
        if self.db.page_size() == 0 {
            return Err(ReplicateError::Other("no database available".to_owned()));
        }
        let _checkpoint_guard = self.db.checkpoint_lock.lock().await;
        let mut conn = Sqlite::open(&self.db.path)
            .await
            .map_err(|err| ReplicateError::sql("snapshot: open database", err))?;
        let mut attempt = 1;
        let result = loop {
            let result = self.snapshot_with(&mut conn, segments).await;
            match result {
                Err(ReplicateError::Unsettled(reason)) if attempt < SNAPSHOT_ATTEMPTS => {
                    tracing::warn!(attempt, reason, "snapshot not consistent, taking it again");
                    // Out of the way meanwhile: a checkpoint waiting for readers can finish.
                    let _ = conn.rollback().await;
                    tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                    attempt += 1;
                }
                result => break result,
            }
        };
        let _ = conn.close().await;
        result
    }

    async fn snapshot_with(
        &self,
        conn: &mut Sqlite,
        segments: Segments,
    ) -> Result<SnapshotInfo, ReplicateError> {
        conn.no_autocheckpoint()
            .await
            .map_err(|err| ReplicateError::sql("snapshot", err))?;
        conn.checkpoint(CheckpointMode::Passive)
            .await
            .map_err(|err| ReplicateError::sql("pre-snapshot checkpoint", err))?;
        conn.begin_read()
            .await
            .map_err(|err| ReplicateError::sql("snapshot: begin read", err))?;
        // Have the shadow WAL copy every frame committed so far: the position the snapshot is
        // labelled with must cover every frame the database file holds (ARCHITECTURE.md, I8).
        self.db.fresh_pass(SNAPSHOT_PASS_WAIT).await;
        let Some(pos) = self.db.position() else {
            return Err(ReplicateError::Other("no generation available".to_owned()));
        };
        if segments == Segments::Maybe {
            self.await_segments_through(&pos).await?;
        }
        let Some(file) = self.db.db_file() else {
            return Err(ReplicateError::Other("no database available".to_owned()));
        };
        // How far checkpoints wrote the WAL into the file must be within what the snapshot
        // lays over it (I7, I8).
        if let Some(shm) = self.db.shm_file() {
            let Some(backfill) = crate::shmlock::backfill(&shm) else {
                return Err(ReplicateError::Unsettled("the wal-index could not be read"));
            };
            self.covers(&pos, &shm, backfill).await?;
        }
        let shadow = self.db.meta.shadow_path(&pos.generation, pos.index);
        let page_size = self.db.page_size();
        tracing::info!(position = %pos, "write snapshot");
        let started = Instant::now();
        let (stream, producer) = encode_stream(
            self.options.recipients.clone(),
            format!("snapshot {pos}"),
            move |out| -> io::Result<u64> {
                let image = DbImage::open(file, &shadow, pos.offset, page_size)?;
                io::copy(&mut BufReader::with_capacity(256 * 1024, image), out)
            },
        );
        let written = self
            .client
            .write_snapshot(&pos.generation, pos.index, stream)
            .await;
        let produced = producer.await.map_err(join_error)?;
        let info = match (written, produced) {
            (Ok(info), Ok(_)) => info,
            (_, Err(err)) => {
                return Err(ReplicateError::io("cannot read database for snapshot", err));
            }
            (Err(err), Ok(_)) => return Err(ReplicateError::client("cannot write snapshot", err)),
        };
        tracing::info!(position = %pos, elapsed = ?started.elapsed(), sz = info.size, "snapshot written");
        conn.rollback()
            .await
            .map_err(|err| ReplicateError::sql("snapshot: end read", err))?;
        Ok(info)
    }

    /// Checks that `pos`, where a snapshot is about to be labelled, covers every frame of the
    /// WAL that checkpoints wrote into the database file (`backfill`, read just before the
    /// copy; later ones stop at the snapshot's read mark): same WAL cycle, and at least that
    /// many frames in the shadow WAL (ARCHITECTURE.md, I7, I8).
    async fn covers(
        &self,
        pos: &Pos,
        shm: &std::fs::File,
        backfill: crate::shmlock::Backfill,
    ) -> Result<(), ReplicateError> {
        let mut through = None;
        // The wal-index header is rewritten on every commit; a reading between its two copies
        // is simply made again.
        for _ in 0..3 {
            through = crate::shmlock::backfilled_through(shm, backfill);
            if through.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let Some((salt, frames)) = through else {
            return Err(ReplicateError::Unsettled(
                "the wal-index header kept changing while it was read",
            ));
        };
        let shadow = self.db.meta.shadow_path(&pos.generation, pos.index);
        let header =
            crate::db::spawn_blocking_in_span(move || crate::shadow::read_header_bytes(&shadow))
                .await
                .map_err(join_error)?
                .map_err(|err| ReplicateError::io("snapshot: read shadow wal header", err))?;
        let frame =
            u64::try_from(WAL_FRAME_HEADER_SIZE).unwrap_or(24) + u64::from(self.db.page_size());
        let end = HEADER_LEN + u64::from(frames) * frame;
        if header.get(16..24) != Some(salt.as_slice()) || pos.offset < end {
            return Err(ReplicateError::Unsettled(
                "the shadow wal has not caught up with the database file yet",
            ));
        }
        Ok(())
    }

    /// Waits until this replica holds every WAL segment of `pos`'s index up to `pos`, or none
    /// of that index, asking the monitor to upload at once. A snapshot stored while the
    /// replica held only the start of that index would restore those older frames over the
    /// newer pages the database file holds: a state the database never had (ARCHITECTURE.md, I8).
    async fn await_segments_through(&self, pos: &Pos) -> Result<(), ReplicateError> {
        let deadline = Instant::now() + SNAPSHOT_SEGMENT_WAIT;
        let mut asked = false;
        loop {
            if self.db.token.is_cancelled() {
                return Err(ReplicateError::Other(
                    "snapshot: replication is stopping".to_owned(),
                ));
            }
            // A new generation needs its own first snapshot, which the monitor takes (and
            // which waits for this one to end).
            if self.db.position().map(|now| now.generation) != Some(pos.generation) {
                return Err(ReplicateError::Other(
                    "snapshot: generation changed during snapshot".to_owned(),
                ));
            }
            match self.position() {
                // Not in this generation yet: it has no segment of it (they are uploaded only
                // after a snapshot, and a replica that uploaded one keeps its position there
                // unless an error cleared it).
                Some(at) if at.generation != pos.generation => return Ok(()),
                Some(at)
                    if at.index < pos.index || (at.index, at.offset) >= (pos.index, pos.offset) =>
                {
                    return Ok(());
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(ReplicateError::Other(format!(
                    "snapshot: the replica did not upload the wal up to {pos} within {SNAPSHOT_SEGMENT_WAIT:?}"
                )));
            }
            // One ask: the monitor clears it when its sync starts, and a sync that began
            // before the ask leaves it set for the next one.
            if !asked {
                self.flush_asked
                    .store(true, std::sync::atomic::Ordering::Release);
                self.flush.notify_one();
                asked = true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Where the replica stands in `generation`, taking its first snapshot when it has none
    /// (spec 5.1, 5.6).
    ///
    /// The replica's last segment is looked for from the lowest shadow WAL index kept locally
    /// (clean never removes a shadow file at or above a replica's index, so it is there) with
    /// one listing from that key. Segments are only ever uploaded after a snapshot of their
    /// generation, so finding one means the snapshot listing can be skipped: resuming costs a
    /// listing and a download, where 0.3.13 lists the snapshots twice and every segment.
    async fn resume_position(&self, generation: &Generation) -> Result<Pos, ReplicateError> {
        let context = |err: ReplicateError| {
            ReplicateError::Other(format!(
                "cannot determine replica position: {}",
                chain(&err)
            ))
        };
        let meta = self.db.meta.clone();
        let generation_copy = *generation;
        let from_index = crate::db::spawn_blocking_in_span(move || {
            meta.shadow_files(&generation_copy)
                .ok()
                .and_then(|files| files.first().map(|(index, _)| *index))
                .unwrap_or(0)
        })
        .await
        .map_err(join_error)?;
        let segments = match self.client.wal_segments_from(generation, from_index).await {
            Ok(segments) => segments,
            Err(ClientError::NotFound { .. }) => Vec::new(),
            Err(err) => return Err(context(ReplicateError::client("max wal segment", err))),
        };
        if let Some(last) = segments.iter().max_by_key(|s| (s.index, s.offset)) {
            let pos = last.pos();
            let n = self.decoded_len(&pos).await.map_err(context)?;
            return Ok(Pos::new(*generation, pos.index, pos.offset + n));
        }
        let snapshots = match self.client.snapshots(generation).await {
            Ok(snapshots) => snapshots,
            Err(ClientError::NotFound { .. }) => Vec::new(),
            Err(err) => return Err(ReplicateError::client("cannot list snapshots", err)),
        };
        if snapshots.is_empty() {
            let info = self.snapshot(Segments::None).await?;
            if info.generation != *generation {
                return Err(ReplicateError::Other(
                    "generation changed during snapshot, exiting sync".to_owned(),
                ));
            }
            return Ok(Pos::new(*generation, info.index, 0));
        }
        // A replica behind the local shadow files (or a generation with segments only below
        // them): 0.3.13's full computation.
        let Some(snapshot) = snapshots.iter().max_by_key(|s| s.index) else {
            return Err(context(ReplicateError::Other(format!(
                "max snapshot: no snapshot available: generation={generation}"
            ))));
        };
        let all = match self.client.wal_segments(generation).await {
            Ok(segments) => segments,
            Err(ClientError::NotFound { .. }) => Vec::new(),
            Err(err) => return Err(context(ReplicateError::client("max wal segment", err))),
        };
        let Some(last) = all.iter().max_by_key(|s| (s.index, s.offset)) else {
            return Ok(Pos::new(*generation, snapshot.index, 0));
        };
        let pos = last.pos();
        let n = self.decoded_len(&pos).await.map_err(context)?;
        Ok(Pos::new(*generation, pos.index, pos.offset + n))
    }

    /// The decoded length of one WAL segment.
    async fn decoded_len(&self, pos: &Pos) -> Result<u64, ReplicateError> {
        let mut stream = self
            .client
            .wal_segment_reader(pos)
            .await
            .map_err(|err| ReplicateError::client("read wal segment", err))?;
        // The segment is decoded as it arrives, a few chunks in flight: a segment holding a
        // transaction of hundreds of megabytes never sits whole in memory.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, ClientError>>(4);
        let identities = self.options.identities.clone();
        let pos = *pos;
        let decoder = crate::db::spawn_blocking_in_span(move || -> Result<u64, ReplicateError> {
            let context = || format!("decode wal segment {pos}");
            let input = ChannelReader {
                rx,
                chunk: bytes::Bytes::new(),
            };
            let reader: Box<dyn Read> = match identities {
                Some(ids) if !ids.is_empty() => {
                    Box::new(
                        ids.decrypt(input)
                            .map_err(|source| ReplicateError::Encryption {
                                context: context(),
                                source,
                            })?,
                    )
                }
                _ => Box::new(input),
            };
            io::copy(&mut Lz4Reader::new(reader), &mut io::sink())
                .map_err(|err| ReplicateError::io(context(), err))
        });
        while let Some(chunk) = stream.next().await {
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        decoder.await.map_err(join_error)?
    }

    async fn retainer(self: Arc<Self>, token: CancellationToken) {
        let interval = self
            .options
            .retention_check_interval
            .min(self.options.retention)
            .max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(err) = self.enforce_retention().await {
                tracing::error!(error = crate::engine_error::as_dyn(&err), "retainer error");
            }
        }
    }

    /// Litestream's retention (spec 5.4).
    async fn enforce_retention(&self) -> Result<(), ReplicateError> {
        let cutoff = SystemTime::now()
            .checked_sub(self.options.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let generations = match self.client.generations().await {
            Ok(generations) => generations,
            Err(ClientError::NotFound { .. }) => Vec::new(),
            Err(err) => return Err(ReplicateError::client("cannot list generations", err)),
        };
        let mut retained: Vec<SnapshotInfo> = Vec::new();
        let mut all = Vec::new();
        for generation in &generations {
            let snapshots = self
                .client
                .snapshots(generation)
                .await
                .map_err(|err| ReplicateError::client("cannot list snapshots", err))?;
            all.push((*generation, snapshots));
        }
        for (_, snapshots) in &all {
            retained.extend(snapshots.iter().filter(|s| s.created_at >= cutoff).cloned());
        }
        if retained.is_empty() {
            retained.push(self.snapshot(Segments::Maybe).await?);
        }
        for generation in &generations {
            let Some(keep) = retained
                .iter()
                .filter(|s| s.generation == *generation)
                .min_by_key(|s| s.index)
            else {
                self.client
                    .delete_generation(generation)
                    .await
                    .map_err(|err| ReplicateError::client("cannot delete generation", err))?;
                continue;
            };
            let snapshots = all
                .iter()
                .find(|(g, _)| g == generation)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            for snapshot in snapshots.iter().filter(|s| s.index < keep.index) {
                self.client
                    .delete_snapshot(generation, snapshot.index)
                    .await
                    .map_err(|err| ReplicateError::client("cannot delete snapshot", err))?;
                tracing::info!(generation = %generation, index = keep.index, "snapshot deleted");
            }
            let segments = self
                .client
                .wal_segments(generation)
                .await
                .map_err(|err| ReplicateError::client("cannot list wal segments", err))?;
            let old: Vec<Pos> = segments
                .iter()
                .filter(|s| s.index < keep.index)
                .map(ls_core::WalSegmentInfo::pos)
                .collect();
            if !old.is_empty() {
                self.client
                    .delete_wal_segments(&old)
                    .await
                    .map_err(|err| ReplicateError::client("cannot delete wal segments", err))?;
                tracing::info!(
                    generation = %generation,
                    index = keep.index,
                    n = old.len(),
                    "wal segmented deleted before"
                );
            }
        }
        Ok(())
    }

    async fn snapshotter(self: Arc<Self>, token: CancellationToken) {
        let interval = self.options.snapshot_interval;
        if let Some(pos) = self.db.position() {
            match self.client.snapshots(&pos.generation).await {
                Ok(snapshots) => {
                    if let Some(last) = snapshots.iter().max_by_key(|s| s.index) {
                        let age = last.created_at.elapsed().unwrap_or_default();
                        let next = interval.saturating_sub(age);
                        tracing::info!(
                            previous = %chrono_rfc3339(last.created_at),
                            next = ?next,
                            "snapshot interval adjusted"
                        );
                        tokio::select! {
                            () = token.cancelled() => return,
                            () = tokio::time::sleep(next) => {}
                        }
                        self.periodic_snapshot().await;
                    }
                }
                Err(err) => {
                    tracing::error!(
                        error = crate::engine_error::as_dyn(&err),
                        "snapshotter cannot determine latest snapshot"
                    );
                }
            }
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.periodic_snapshot().await;
        }
    }

    async fn periodic_snapshot(&self) {
        match self.snapshot(Segments::Maybe).await {
            Ok(_) => {}
            Err(ReplicateError::Other(text)) if text == "no generation available" => {}
            Err(_) if self.db.token.is_cancelled() => {}
            Err(err) => {
                tracing::error!(
                    error = crate::engine_error::as_dyn(&err),
                    "snapshotter error"
                );
            }
        }
    }
}

/// A blocking `Read` over chunks sent by an async task; a chunk that is an error fails the read.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, ClientError>>,
    chunk: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(err)) => return Err(io::Error::other(err)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(self.chunk.get(..n).unwrap_or_default());
        bytes::Buf::advance(&mut self.chunk, n);
        Ok(n)
    }
}

/// A time as RFC 3339 in UTC with whole seconds, as Go prints `time.Time` in this log line.
fn chrono_rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client that stores nothing, for tests that never reach storage.
    #[derive(Debug)]
    pub(crate) struct NullClient;

    #[async_trait::async_trait]
    impl ReplicaClient for NullClient {
        fn kind(&self) -> &'static str {
            "null"
        }
        async fn generations(&self) -> Result<Vec<Generation>, ClientError> {
            Ok(Vec::new())
        }
        async fn delete_generation(&self, _: &Generation) -> Result<(), ClientError> {
            Ok(())
        }
        async fn snapshots(&self, _: &Generation) -> Result<Vec<SnapshotInfo>, ClientError> {
            Ok(Vec::new())
        }
        async fn write_snapshot(
            &self,
            _: &Generation,
            _: u32,
            _: ls_core::ByteStream,
        ) -> Result<SnapshotInfo, ClientError> {
            Err(ClientError::NotFound { key: "null".into() })
        }
        async fn delete_snapshot(&self, _: &Generation, _: u32) -> Result<(), ClientError> {
            Ok(())
        }
        async fn snapshot_reader(
            &self,
            _: &Generation,
            _: u32,
        ) -> Result<ls_core::ByteStream, ClientError> {
            Err(ClientError::NotFound { key: "null".into() })
        }
        async fn wal_segments(
            &self,
            _: &Generation,
        ) -> Result<Vec<ls_core::WalSegmentInfo>, ClientError> {
            Ok(Vec::new())
        }
        async fn write_wal_segment(
            &self,
            _: &Pos,
            _: ls_core::ByteStream,
        ) -> Result<ls_core::WalSegmentInfo, ClientError> {
            Err(ClientError::NotFound { key: "null".into() })
        }
        async fn delete_wal_segments(&self, _: &[Pos]) -> Result<(), ClientError> {
            Ok(())
        }
        async fn wal_segment_reader(&self, _: &Pos) -> Result<ls_core::ByteStream, ClientError> {
            Err(ClientError::NotFound { key: "null".into() })
        }
    }

    #[test]
    fn chrono_rfc3339_formats_utc_seconds() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_635_748);
        assert_eq!(chrono_rfc3339(time), "2026-11-25T19:42:28Z");
    }
}
