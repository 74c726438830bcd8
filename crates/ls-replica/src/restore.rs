//! Restore: downloads the snapshot and WAL segments a [`RestorePlan`] names and writes the
//! database they describe, as Litestream's `Replica.Restore` does, but stricter and without
//! SQLite.
//!
//! The async side (this file) streams the snapshot and fetches WAL segments ahead, at most
//! `parallelism` at once and at most [`WAL_BUDGET_BYTES`] of stored bytes held in memory; the
//! blocking side (`restore/apply.rs`) decodes them (age, LZ4), checks every WAL frame's salt
//! and checksum chain and every segment's place, and writes pages into a temporary file beside
//! the output. The output appears, by a no-replace link, only once the whole database is
//! written and synced; on any failure nothing is left behind. A download that fails for a
//! passing reason (the transport, a 5xx, a body cut short of the listed size) is fetched again
//! with backoff, the snapshot from where its bytes stopped (`restore/retry.rs`); a missing or
//! damaged object fails the restore at once, naming it. Choosing what to restore is
//! [`crate::plan_restore`]'s job; argv, exit codes and progress bars are ls-cli's.

mod apply;
mod retry;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream;
use ls_core::{AgeIdentities, ClientError, Generation, Pos, ReplicaClient, WalSegmentInfo, layout};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::error::RestoreError;
use crate::restore::retry::Retry;
use crate::restore_plan::RestorePlan;

/// Litestream's default number of concurrent WAL downloads (`-parallelism`).
pub const DEFAULT_PARALLELISM: usize = 8;

/// Most stored WAL bytes downloaded but not yet applied at any time (a larger segment is
/// fetched alone).
pub const WAL_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Snapshot chunks queued between the download and the decoder.
const SNAPSHOT_QUEUE_CHUNKS: usize = 8;

/// What a restore writes and how.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The database file to create; it must not exist and is never overwritten.
    pub output: PathBuf,
    /// How many WAL segments are downloaded at once; values below 1 count as 1.
    pub parallelism: usize,
    /// Keys that decrypt the replica's objects; empty for a replica without encryption.
    pub identities: AgeIdentities,
}

/// Hears how far a restore is; called from the restore's worker thread, so keep it cheap.
pub trait RestoreProgress: Send + Sync {
    /// The restore starts: it will download `stored_bytes` in `n_segments` WAL segments plus
    /// the snapshot.
    fn start(&self, stored_bytes: u64, n_segments: usize) {
        let _ = (stored_bytes, n_segments);
    }

    /// `stored_bytes` more were decoded and written; `n_segments` more segments were applied.
    fn advance(&self, stored_bytes: u64, n_segments: usize) {
        let _ = (stored_bytes, n_segments);
    }
}

/// A [`RestoreProgress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl RestoreProgress for NoProgress {}

/// What a finished restore wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The replica position the database was restored to: the end of the last WAL segment
    /// applied, or the snapshot's index at offset 0 for a snapshot-only restore.
    pub pos: Pos,
    /// The snapshot the restore started from.
    pub snapshot_index: u32,
    /// Number of WAL segments applied.
    pub n_segments: usize,
    /// Stored (compressed, maybe encrypted) bytes downloaded.
    pub stored_bytes: u64,
    /// Size of the restored database in bytes.
    pub db_size_bytes: u64,
    /// The database's page size in bytes.
    pub page_size: u32,
}

/// A WAL segment downloaded whole, with its share of the memory budget.
struct FetchedSegment {
    info: WalSegmentInfo,
    bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// Restores `plan` from `client` into `options.output`.
///
/// The snapshot streams to a temporary file beside the output (never whole in memory) while
/// WAL segments are fetched ahead; each WAL index is applied in order, and must follow on
/// exactly (offsets), carry valid salts and checksums, use the snapshot's page size and end on
/// a commit. The file is then truncated to the last commit's size, synced and linked to the
/// output, whose directory is synced. Logs Litestream's restore lines in the current span.
///
/// # Errors
/// [`RestoreError::OutputExists`] when the output exists (checked first and again, atomically,
/// at the end); a read error naming the snapshot or segment at fault when it is missing or its
/// download failed 5 times in a row; a decryption, decoding or consistency error naming it; an I/O error naming the file. Nothing is left behind on failure.
///
/// # Cancel safety
/// Cancelling stops the downloads; the worker then fails for want of data and removes the
/// temporary file, so nothing is left behind, but the restore must start over.
pub async fn restore(
    client: Arc<dyn ReplicaClient>,
    plan: &RestorePlan,
    options: RestoreOptions,
    progress: Arc<dyn RestoreProgress>,
) -> Result<RestoreSummary, RestoreError> {
    if std::fs::symlink_metadata(&options.output).is_ok() {
        return Err(RestoreError::OutputExists {
            path: options.output,
        });
    }
    let parallelism = options.parallelism.max(1);
    progress.start(plan.stored_bytes(), plan.n_segments());

    let (snapshot_tx, snapshot_rx) = mpsc::channel(SNAPSHOT_QUEUE_CHUNKS);
    let (segment_tx, segment_rx) = mpsc::channel(parallelism);
    let job = apply::Job {
        output: options.output.clone(),
        identities: options.identities,
        generation: plan.generation,
        snapshot: plan.snapshot.clone(),
        wal: plan.wal.clone(),
        progress,
        span: tracing::Span::current(),
    };
    let worker = tokio::task::spawn_blocking(move || job.run(snapshot_rx, segment_rx));

    let segments: Vec<WalSegmentInfo> = plan.wal.iter().flatten().cloned().collect();
    let (snapshot_res, segments_res) = futures_util::future::join(
        pump_snapshot(client.as_ref(), plan, snapshot_tx),
        pump_segments(&client, segments, parallelism, segment_tx),
    )
    .await;
    let applied = worker.await.map_err(|source| RestoreError::Worker {
        path: options.output.clone(),
        source,
    });
    // A failed download closes its queue, so the worker fails too, for want of data: the
    // download's error is the one that explains.
    snapshot_res?;
    segments_res?;
    let applied = applied??;
    Ok(RestoreSummary {
        pos: applied.pos,
        snapshot_index: plan.snapshot.index,
        n_segments: plan.n_segments(),
        stored_bytes: plan.stored_bytes(),
        db_size_bytes: applied.db_size_bytes,
        page_size: applied.page_size,
    })
}

/// Streams the snapshot's stored bytes to the worker, fetching it again after a transient
/// failure (see `retry.rs`) from where the worker's bytes end.
async fn pump_snapshot(
    client: &dyn ReplicaClient,
    plan: &RestorePlan,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), RestoreError> {
    let path = layout::snapshot_path(&plan.generation, plan.snapshot.index);
    let mut retry = Retry::new(format!("snapshot {path}"));
    let mut sent = 0_u64;
    loop {
        match send_snapshot(client, plan, &path, &mut sent, &tx).await {
            Ok(()) => return Ok(()),
            Err(err) => {
                retry
                    .after_failure(err)
                    .await
                    .map_err(|source| RestoreError::Read {
                        what: retry.what().to_owned(),
                        source,
                    })?;
            }
        }
    }
}

/// One try of the snapshot's download: skips the `sent` bytes the worker has already, sends
/// the rest and counts them in `sent`. Returns early, with `Ok`, when the worker stopped (its
/// own error says why).
///
/// # Errors
/// The storage's error, or [`ClientError::Io`] (`UnexpectedEof`) when the object ends before
/// the listed size: a download cut short is told apart from a damaged object that way, and
/// fetched again.
async fn send_snapshot(
    client: &dyn ReplicaClient,
    plan: &RestorePlan,
    path: &str,
    sent: &mut u64,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ClientError> {
    let mut stream = client
        .snapshot_reader(&plan.generation, plan.snapshot.index)
        .await?;
    let mut skip = *sent;
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk?;
        if skip > 0 {
            let n = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
            chunk.advance(n);
            skip -= u64::try_from(n).expect("n is at most skip, a u64");
            if chunk.is_empty() {
                continue;
            }
        }
        let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        if tx.send(chunk).await.is_err() {
            return Ok(());
        }
        *sent += len;
    }
    check_size(path, *sent, plan.snapshot.size)
}

/// Downloads the segments in order, `parallelism` at once within [`WAL_BUDGET_BYTES`], and
/// hands them to the worker in order.
async fn pump_segments(
    client: &Arc<dyn ReplicaClient>,
    segments: Vec<WalSegmentInfo>,
    parallelism: usize,
    tx: mpsc::Sender<FetchedSegment>,
) -> Result<(), RestoreError> {
    let budget = Arc::new(Semaphore::new(WAL_BUDGET_BYTES));
    // Permits are taken one segment after the other (`then`), so the oldest segment never
    // waits for memory held by younger ones that `buffered` could not hand out before it.
    let fetched = stream::iter(segments)
        .then(|info| {
            let budget = Arc::clone(&budget);
            async move {
                let wanted = usize::try_from(info.size)
                    .unwrap_or(WAL_BUDGET_BYTES)
                    .clamp(1, WAL_BUDGET_BYTES);
                let wanted = u32::try_from(wanted).expect("the budget fits in u32");
                let permit = budget.acquire_many_owned(wanted).await;
                (info, permit)
            }
        })
        .map(|(info, permit)| {
            let client = Arc::clone(client);
            async move {
                let permit = permit.map_err(|_| RestoreError::Interrupted {
                    what: format!("wal segment {}", layout::wal_segment_path(&info.pos())),
                })?;
                let bytes = fetch_segment(client.as_ref(), &info).await?;
                Ok::<_, RestoreError>(FetchedSegment {
                    info,
                    bytes,
                    _permit: permit,
                })
            }
        })
        .buffered(parallelism);
    let mut fetched = std::pin::pin!(fetched);
    while let Some(segment) = fetched.next().await {
        if tx.send(segment?).await.is_err() {
            // The worker stopped; its own error says why.
            return Ok(());
        }
    }
    Ok(())
}

/// The stored bytes of one segment, whole, fetched again after a transient failure (see
/// `retry.rs`).
async fn fetch_segment(
    client: &dyn ReplicaClient,
    info: &WalSegmentInfo,
) -> Result<Bytes, RestoreError> {
    let mut retry = Retry::new(segment_what(info.generation, info.index, info.offset));
    loop {
        match fetch_segment_once(client, info).await {
            Ok(bytes) => return Ok(bytes),
            Err(err) => {
                retry
                    .after_failure(err)
                    .await
                    .map_err(|source| RestoreError::Read {
                        what: retry.what().to_owned(),
                        source,
                    })?;
            }
        }
    }
}

/// One try of a segment's download.
///
/// # Errors
/// The storage's error, or [`ClientError::Io`] (`UnexpectedEof`) when the object ends before
/// the listed size.
async fn fetch_segment_once(
    client: &dyn ReplicaClient,
    info: &WalSegmentInfo,
) -> Result<Bytes, ClientError> {
    let pos = info.pos();
    let mut stream = client.wal_segment_reader(&pos).await?;
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk?);
    }
    // A segment in one chunk is kept as it came, without a copy.
    let bytes = if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        let mut buf = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
        for chunk in &chunks {
            buf.extend_from_slice(chunk);
        }
        buf.freeze()
    };
    let got = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    check_size(&layout::wal_segment_path(&pos), got, info.size)?;
    Ok(bytes)
}

/// Whether a download that ended cleanly has the object's listed size: a shorter body means
/// the transfer was cut (a transient [`ClientError::Io`], `UnexpectedEof`), not that the
/// object is short.
fn check_size(path: &str, got: u64, listed: u64) -> Result<(), ClientError> {
    if got >= listed {
        return Ok(());
    }
    Err(ClientError::Io {
        op: "read",
        key: path.to_owned(),
        source: io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the download ended after {got} of {listed} bytes"),
        ),
    })
}

/// `what` text of a segment in errors: `wal segment generations/<g>/wal/<i>_<o>.wal.lz4`.
fn segment_what(generation: Generation, index: u32, offset: u64) -> String {
    format!(
        "wal segment {}",
        layout::wal_segment_path(&Pos::new(generation, index, offset))
    )
}
