//! The blocking half of a restore: decodes the snapshot into a temporary file, applies the WAL
//! segments' frames page by page, and links the finished file to the output.
//!
//! Everything here runs on one blocking thread, fed by the downloads through bounded queues.
//! Litestream hands each index's WAL to SQLite's checkpoint, which silently stops at the first
//! bad frame; here every frame must be valid, every segment must start where the previous one
//! of its index ended, and every index must end on a commit, so damage is an error naming the
//! segment, never a shorter database.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf as _, Bytes};
use ls_core::{
    AgeIdentities, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, Generation, Lz4Reader, Pos, SnapshotInfo,
    WalReader, WalSegmentInfo, create_dir_all_durable_with_mode, fsync_dir, layout,
};
use tokio::sync::mpsc;
use tracing::info;

use super::{FetchedSegment, RestoreProgress, segment_what};
use crate::error::RestoreError;

/// Size of the buffer the snapshot is decoded through and written from.
const SNAPSHOT_BUF_BYTES: usize = 2 * 1024 * 1024;

/// Buffers in flight between the snapshot decoder and its writer.
const SNAPSHOT_BUFFERS: usize = 2;

/// Alignment of buffers, offsets and lengths for `O_DIRECT` writes (any logical block size up
/// to 4 KiB).
const DIRECT_ALIGN: usize = 4096;

/// SQLite's database header is 100 bytes and starts with this magic.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const SQLITE_HEADER_BYTES: usize = 100;

/// Everything the worker needs, moved onto its thread.
pub(super) struct Job {
    pub(super) output: PathBuf,
    pub(super) identities: AgeIdentities,
    pub(super) generation: Generation,
    pub(super) snapshot: SnapshotInfo,
    pub(super) wal: Vec<Vec<WalSegmentInfo>>,
    pub(super) progress: Arc<dyn RestoreProgress>,
    pub(super) span: tracing::Span,
}

/// What the worker wrote.
pub(super) struct Applied {
    pub(super) pos: Pos,
    pub(super) db_size_bytes: u64,
    pub(super) page_size: u32,
}

impl Job {
    /// Writes the database; on failure the temporary file is removed.
    pub(super) fn run(
        self,
        snapshot_rx: mpsc::Receiver<Bytes>,
        mut segment_rx: mpsc::Receiver<FetchedSegment>,
    ) -> Result<Applied, RestoreError> {
        let _entered = self.span.clone().entered();
        let dir = parent_dir(&self.output);
        create_dir_all_durable_with_mode(dir, DEFAULT_DIR_MODE).map_err(|source| {
            RestoreError::Write {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        let mut temp = TempFile::create(&self.output)?;
        info!(
            generation = %self.generation,
            index = self.snapshot.index,
            path = %temp.path.display(),
            "restoring snapshot"
        );
        let page_size = self.write_snapshot(&mut temp, snapshot_rx)?;

        let mut pos = Pos::new(self.generation, self.snapshot.index, 0);
        match (self.wal.first(), self.wal.last()) {
            (Some(first), Some(last)) => {
                let index_min = first.first().map_or(self.snapshot.index, |s| s.index);
                let index_max = last.first().map_or(index_min, |s| s.index);
                info!(
                    generation = %self.generation,
                    index_min,
                    index_max,
                    "restoring wal files"
                );
                for segments in &self.wal {
                    if let Some(end) =
                        self.apply_index(&temp, page_size, segments, &mut segment_rx)?
                    {
                        pos = end;
                    }
                }
            }
            _ => info!("snapshot only, finalizing database"),
        }

        temp.file
            .sync_all()
            .map_err(|source| temp.write_error(source))?;
        let db_size_bytes = temp
            .file
            .metadata()
            .map_err(|source| temp.write_error(source))?
            .len();
        info!("renaming database from temporary location");
        temp.persist(&self.output)?;
        Ok(Applied {
            pos,
            db_size_bytes,
            page_size,
        })
    }

    /// Decodes the snapshot into the temporary file; returns the database's page size.
    fn write_snapshot(
        &self,
        temp: &mut TempFile,
        snapshot_rx: mpsc::Receiver<Bytes>,
    ) -> Result<u32, RestoreError> {
        let path = layout::snapshot_path(&self.generation, self.snapshot.index);
        let what = format!("snapshot {path}");
        let input = ChannelReader {
            rx: snapshot_rx,
            chunk: Bytes::new(),
            progress: Arc::clone(&self.progress),
        };
        let mut decoded = decoder(input, &self.identities, &what)?;
        let damaged = |source: io::Error| RestoreError::Damaged {
            what: what.clone(),
            source: Box::new(source),
        };

        // Decoding and writing overlap: this thread decodes into one buffer while a second
        // writes the previous one (O_DIRECT writes wait for the disk).
        let writer = SnapshotWriter::open(&temp.path, &temp.file);
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(AlignedBuf, usize, u64)>(1);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<AlignedBuf>();
        for _ in 0..SNAPSHOT_BUFFERS {
            // The receiver is alive: it is ours, below.
            let _ = empty_tx.send(AlignedBuf::new());
        }
        let (decoded_res, written) = std::thread::scope(|scope| {
            let write_thread = scope.spawn(move || write_chunks(writer, &full_rx, &empty_tx));
            let decoded_res = (|| {
                let mut page_size = None;
                let mut size = 0u64;
                loop {
                    // No buffer back means the writer stopped: its error explains.
                    let Ok(mut buf) = empty_rx.recv() else {
                        return Ok(None);
                    };
                    let n = read_full(&mut decoded, buf.as_mut_slice()).map_err(&damaged)?;
                    let chunk = buf.as_mut_slice().get(..n).unwrap_or_default();
                    let page_size = match page_size {
                        Some(page_size) => page_size,
                        None => *page_size.insert(database_page_size(chunk).map_err(|reason| {
                            RestoreError::NotADatabase {
                                path: path.clone(),
                                reason,
                            }
                        })?),
                    };
                    if n == 0 {
                        if !size.is_multiple_of(u64::from(page_size)) {
                            return Err(RestoreError::NotADatabase {
                                path: path.clone(),
                                reason: "its size is not a whole number of pages",
                            });
                        }
                        return Ok(Some(page_size));
                    }
                    if full_tx.send((buf, n, size)).is_err() {
                        return Ok(None);
                    }
                    size += u64::try_from(n).unwrap_or(u64::MAX);
                }
            })();
            drop(full_tx);
            (decoded_res, write_thread.join())
        });
        let written = written.unwrap_or_else(|_| Err(io::Error::other("snapshot writer panicked")));
        written.map_err(|source| temp.write_error(source))?;
        decoded_res?.ok_or_else(|| RestoreError::Interrupted { what: what.clone() })
    }

    /// Applies one WAL index; returns the position where its segments end.
    fn apply_index(
        &self,
        temp: &TempFile,
        page_size: u32,
        segments: &[WalSegmentInfo],
        segment_rx: &mut mpsc::Receiver<FetchedSegment>,
    ) -> Result<Option<Pos>, RestoreError> {
        let started = Instant::now();
        let mut wal: Option<WalReader<Box<dyn Read>>> = None;
        let mut last = None;
        for planned in segments {
            let what = segment_what(self.generation, planned.index, planned.offset);
            let Some(fetched) = segment_rx.blocking_recv() else {
                return Err(RestoreError::Interrupted { what });
            };
            let info = &fetched.info;
            let path = layout::wal_segment_path(&info.pos());
            let decoded = decoder(fetched.bytes.clone().reader(), &self.identities, &what)?;
            let damaged = |source: ls_core::WalError| RestoreError::Damaged {
                what: what.clone(),
                source: Box::new(source),
            };
            let mut reader = match wal.take() {
                None if info.offset == 0 => {
                    let reader = WalReader::new(decoded).map_err(damaged)?;
                    let wal_page_size = reader.header().page_size;
                    if wal_page_size != page_size {
                        return Err(RestoreError::PageSizeMismatch {
                            path,
                            wal_page_size,
                            db_page_size: page_size,
                        });
                    }
                    reader
                }
                None => {
                    return Err(RestoreError::SegmentGap {
                        path,
                        index: info.index,
                        offset: info.offset,
                        expected: 0,
                    });
                }
                Some(previous) if previous.offset() != info.offset => {
                    return Err(RestoreError::SegmentGap {
                        path,
                        index: info.index,
                        offset: info.offset,
                        expected: previous.offset(),
                    });
                }
                Some(previous) => previous.continue_with(decoded),
            };
            while let Some(frame) = reader.next_frame().map_err(damaged)? {
                // The reader rejects page number 0, so page 1 is at offset 0.
                let page_index = frame.header().pgno.saturating_sub(1);
                let at = u64::from(page_index) * u64::from(page_size);
                temp.file
                    .write_all_at(frame.page(), at)
                    .map_err(|source| temp.write_error(source))?;
            }
            self.progress.advance(info.size, 1);
            last = Some(path);
            wal = Some(reader);
        }
        let (Some(reader), Some(path)) = (wal, last) else {
            return Ok(None);
        };
        let index = segments.first().map_or(0, |segment| segment.index);
        if !reader.ends_on_commit() {
            return Err(RestoreError::Uncommitted {
                generation: self.generation,
                index,
                offset: reader.offset(),
                path,
            });
        }
        if let Some(commit) = reader.last_commit() {
            // As SQLite's checkpoint of a whole WAL: the file ends at the last commit's size.
            let size = u64::from(commit.db_size_pages) * u64::from(page_size);
            temp.file
                .set_len(size)
                .map_err(|source| temp.write_error(source))?;
        }
        info!(
            generation = %self.generation,
            index,
            elapsed = ?started.elapsed(),
            "applied wal"
        );
        Ok(Some(Pos::new(self.generation, index, reader.offset())))
    }
}

/// The plain bytes of a stored object: age-decrypted when there are identities, then LZ4.
fn decoder<'a, R: Read + 'a>(
    input: R,
    identities: &AgeIdentities,
    what: &str,
) -> Result<Box<dyn Read + 'a>, RestoreError> {
    if identities.is_empty() {
        return Ok(Box::new(Lz4Reader::new(input)));
    }
    let decrypted = identities
        .decrypt(input)
        .map_err(|source| RestoreError::Decrypt {
            what: what.to_owned(),
            source,
        })?;
    Ok(Box::new(Lz4Reader::new(decrypted)))
}

/// The page size in a SQLite header, checked: offset 16, big-endian, 1 meaning 65536.
fn database_page_size(header: &[u8]) -> Result<u32, &'static str> {
    if header.len() < SQLITE_HEADER_BYTES {
        return Err("it is shorter than the 100-byte header");
    }
    if !header.starts_with(SQLITE_MAGIC) {
        return Err("it does not start with the SQLite magic");
    }
    let raw = header
        .get(16..18)
        .and_then(|bytes| <[u8; 2]>::try_from(bytes).ok())
        .map(u16::from_be_bytes)
        .unwrap_or_default();
    let page_size = if raw == 1 { 65536 } else { u32::from(raw) };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err("its header names an invalid page size");
    }
    Ok(page_size)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// The directory holding `path`: its parent, or `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A `Read` over the snapshot chunks the download sends; the end of the queue is the end of
/// the object (a failed download ends it early, and the decoder then reports a truncation).
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
    progress: Arc<dyn RestoreProgress>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.progress
                        .advance(u64::try_from(chunk.len()).unwrap_or(u64::MAX), 0);
                    self.chunk = chunk;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        self.chunk.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// Writes the snapshot's bytes, in order from offset 0. On Linux it writes the aligned part
/// through a second descriptor opened with `O_DIRECT`, so a large snapshot goes to the disk at
/// its speed instead of through the page cache, which costs more CPU than decoding; where the
/// file system refuses direct I/O, and for the unaligned tail, it writes through the page
/// cache. The final `sync_all` of the buffered descriptor makes both durable.
struct SnapshotWriter<'a> {
    buffered: &'a File,
    direct: Option<File>,
}

impl<'a> SnapshotWriter<'a> {
    fn open(path: &Path, buffered: &'a File) -> Self {
        Self {
            buffered,
            direct: open_direct(path),
        }
    }

    fn write_at(&mut self, chunk: &[u8], offset: u64) -> io::Result<()> {
        let aligned = chunk.len().is_multiple_of(DIRECT_ALIGN)
            && offset.is_multiple_of(u64::try_from(DIRECT_ALIGN).unwrap_or(u64::MAX))
            && chunk.as_ptr().align_offset(DIRECT_ALIGN) == 0;
        if aligned && let Some(direct) = &self.direct {
            match direct.write_all_at(chunk, offset) {
                Ok(()) => return Ok(()),
                // The file system takes no direct I/O after all: the page cache it is.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => self.direct = None,
                Err(err) => return Err(err),
            }
        }
        self.buffered.write_all_at(chunk, offset)
    }
}

/// A write-only descriptor of `path` with `O_DIRECT`, or `None` where that is not possible.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

/// Direct I/O is only used on Linux.
#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// A [`SNAPSHOT_BUF_BYTES`] buffer aligned for `O_DIRECT`, inside a larger allocation.
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> Self {
        let raw = vec![0u8; SNAPSHOT_BUF_BYTES + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        Self { raw, start }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        let end = self.start + SNAPSHOT_BUF_BYTES;
        self.raw.get_mut(self.start..end).unwrap_or_default()
    }
}

/// The snapshot writer's loop: writes each full buffer at its offset and hands it back.
fn write_chunks(
    mut writer: SnapshotWriter<'_>,
    full_rx: &std::sync::mpsc::Receiver<(AlignedBuf, usize, u64)>,
    empty_tx: &std::sync::mpsc::Sender<AlignedBuf>,
) -> io::Result<()> {
    for (mut buf, n, offset) in full_rx {
        writer.write_at(buf.as_mut_slice().get(..n).unwrap_or_default(), offset)?;
        if empty_tx.send(buf).is_err() {
            // The decoder stopped; its result explains.
            break;
        }
    }
    Ok(())
}

/// The temporary file the database is written to, beside the output: removed on drop unless
/// [`TempFile::persist`] linked it to the output.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// Creates `<output>.<random>.tmp`, new (never an existing file), mode 0600 as Litestream's
    /// restore.
    fn create(output: &Path) -> Result<Self, RestoreError> {
        let mut attempts = 0;
        loop {
            let mut name = output.as_os_str().to_owned();
            name.push(format!(".{:016x}.tmp", rand::random::<u64>()));
            let path = PathBuf::from(name);
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(DEFAULT_FILE_MODE)
                .open(&path);
            match opened {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        persisted: false,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => {
                    attempts += 1;
                }
                Err(source) => return Err(RestoreError::Write { path, source }),
            }
        }
    }

    fn write_error(&self, source: io::Error) -> RestoreError {
        RestoreError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Gives the (synced) file the name `output` without ever replacing an existing file: a
    /// hard link, which fails if `output` exists, then the temporary name is removed and the
    /// directory synced. Where hard links are not supported, a rename after a last check.
    fn persist(mut self, output: &Path) -> Result<(), RestoreError> {
        let exists = || RestoreError::OutputExists {
            path: output.to_path_buf(),
        };
        let output_error = |source| RestoreError::Write {
            path: output.to_path_buf(),
            source,
        };
        match std::fs::hard_link(&self.path, output) {
            Ok(()) => {
                self.persisted = true;
                std::fs::remove_file(&self.path).map_err(|source| self.write_error(source))?;
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(exists()),
            Err(_) => {
                // The file system cannot link (FAT, some FUSE): a rename, which replaces, so
                // check first; only a writer racing us between the check and the rename
                // could still lose its file.
                if std::fs::symlink_metadata(output).is_ok() {
                    return Err(exists());
                }
                std::fs::rename(&self.path, output).map_err(output_error)?;
                self.persisted = true;
            }
        }
        fsync_dir(parent_dir(output)).map_err(output_error)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            // The restore failed and that error is what the caller reports; a temporary file
            // we cannot remove is left for the user to see beside the output.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page_size_field: u16) -> Vec<u8> {
        let mut header = vec![0u8; SQLITE_HEADER_BYTES];
        header[..16].copy_from_slice(SQLITE_MAGIC);
        header[16..18].copy_from_slice(&page_size_field.to_be_bytes());
        header
    }

    #[test]
    fn database_page_size_reads_one_as_65536() {
        assert_eq!(database_page_size(&header(4096)), Ok(4096));
        assert_eq!(database_page_size(&header(1)), Ok(65536));
    }

    #[test]
    fn database_page_size_rejects_bad_headers() {
        assert!(database_page_size(&header(4096)[..99]).is_err());
        assert!(database_page_size(&header(1000)).is_err());
        assert!(database_page_size(&header(256)).is_err());
        let mut bad_magic = header(4096);
        bad_magic[0] = b'X';
        assert!(database_page_size(&bad_magic).is_err());
    }

    #[test]
    fn temp_file_create_is_unique_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("db");
        let first = TempFile::create(&output).unwrap();
        let second = TempFile::create(&output).unwrap();
        assert_ne!(first.path, second.path);
        assert_eq!(first.path.parent(), Some(dir.path()));
        drop(first);
        drop(second);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn temp_file_persist_never_replaces_output() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("db");
        std::fs::write(&output, b"keep").unwrap();
        let temp = TempFile::create(&output).unwrap();
        let err = temp.persist(&output).unwrap_err();
        assert!(matches!(err, RestoreError::OutputExists { .. }), "{err}");
        assert_eq!(std::fs::read(&output).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
