//! The `file` replica client: a replica in a local directory, as Litestream's `FileReplicaClient`.
//!
//! Objects live at the paths of [`ls_core::layout`] under the replica root. Writes go to
//! `<final name>.tmp`, are fsynced, stat'ed for the size and mtime a listing will show, renamed to
//! the final name, and the directory is fsynced; listings take `created_at` from file mtimes.
//! Every blocking call runs in `tokio::task::spawn_blocking`, one closure per durable sequence.
//!
//! This module knows nothing of SQLite or generations' lifecycles: it stores, lists and deletes
//! bytes.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use ls_core::{
    ByteStream, ClientError, Generation, Pos, ReplicaClient, SnapshotInfo, WalSegmentInfo, layout,
};
use tokio::sync::mpsc;

/// Largest chunk a reader yields, so reading a snapshot of any size uses bounded memory.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Chunks queued between the async side of a write and its blocking writer.
const WRITE_QUEUE_CHUNKS: usize = 4;
/// Litestream's file mode for replica files when no database is attached.
const DEFAULT_FILE_MODE: u32 = 0o600;
/// Litestream's mode for replica directories when no database is attached.
const DEFAULT_DIR_MODE: u32 = 0o700;

/// A replica stored in a local directory (Litestream's `file` replica type).
///
/// Paths are always `root` joined with a path from [`ls_core::layout`], built from a validated
/// [`Generation`] (16 lowercase hex digits) and numbers. No name read from the disk or given by
/// a caller is ever joined onto the root, so no name (`..`, `/`, `%2f`, non-UTF-8 bytes) can
/// make the client read, write or delete outside `root`. Listings skip every name that is not
/// Litestream's and list only real directories and regular files: a symlink is never listed (as
/// Litestream's `IsDir` check skips symlinked generations), and deleting a generation that is a
/// symlink removes the link only. Symlinks someone placed inside the replica at Litestream's
/// names are otherwise followed, like any path on the host.
///
/// A missing root is [`ClientError::NotFound`] when listing generations; a root without a
/// `generations` directory has no generations. Writes create missing directories, the root
/// included.
///
/// # Cancel safety
///
/// Every method is cancel safe in the sense that dropping its future never leaves a partial
/// object at a final name: a write whose future is dropped before its stream ended removes its
/// `.tmp` file and leaves the final name untouched. Blocking work that already started (a
/// rename, a recursive delete) runs to completion in the background, so a dropped write or
/// delete may still take effect.
#[derive(Clone, Debug)]
pub struct FileReplicaClient {
    root: PathBuf,
    file_mode: u32,
    dir_mode: u32,
}

impl FileReplicaClient {
    /// A client for the replica directory `root`, creating files with mode 0600 and directories
    /// with mode 0700 (Litestream's modes when no database is attached).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            file_mode: DEFAULT_FILE_MODE,
            dir_mode: DEFAULT_DIR_MODE,
        }
    }

    /// The same client, creating files with `file_mode` and directories with `dir_mode`
    /// (permission bits, before the umask). Litestream uses the database file's mode and the
    /// mode of the database's parent directory.
    #[must_use]
    pub fn with_modes(mut self, file_mode: u32, dir_mode: u32) -> Self {
        self.file_mode = file_mode;
        self.dir_mode = dir_mode;
        self
    }

    /// The replica directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root` joined with a path from [`ls_core::layout`].
    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Stores `data` at `relative` durably; returns the stored size and the mtime.
    async fn write_object(
        &self,
        relative: &str,
        mut data: ByteStream,
    ) -> Result<(u64, SystemTime), ClientError> {
        let path = self.path(relative);
        let key = key_of(&path);
        let modes = Modes {
            file: self.file_mode,
            dir: self.dir_mode,
        };
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE_CHUNKS);
        // The whole sequence (create, write, fsync, stat, rename, fsync the directory) is one
        // blocking closure: a blocking task cannot be aborted, so cancelling this future cannot
        // cut it between the rename and the directory fsync. It commits only when told so after
        // the stream's last chunk; a dropped sender means the stream failed or was cancelled.
        let writer = tokio::task::spawn_blocking(move || write_durably(&path, modes, receiver));
        let mut stream_error = None;
        while let Some(item) = data.next().await {
            match item {
                Ok(chunk) => {
                    if sender.send(WriteMessage::Chunk(chunk)).await.is_err() {
                        // The writer stopped on an I/O error; joining it below reports it.
                        break;
                    }
                }
                Err(err) => {
                    stream_error = Some(err);
                    break;
                }
            }
        }
        if stream_error.is_none() {
            // A send error means the writer already stopped; its result says why.
            let _ = sender.send(WriteMessage::Commit).await;
        }
        drop(sender);
        let written = writer.await.map_err(|err| join_error("write", &key, err))?;
        match (written?, stream_error) {
            (_, Some(err)) => Err(err),
            (Some(written), None) => Ok(written),
            (None, None) => Err(ClientError::Io {
                op: "write",
                key,
                source: io::Error::other("writer stopped before the end of the data"),
            }),
        }
    }

    /// Opens `relative` for streaming; a missing file is [`ClientError::NotFound`].
    async fn reader(&self, relative: &str) -> Result<ByteStream, ClientError> {
        let path = self.path(relative);
        let key = key_of(&path);
        let opened = blocking("read", &key, move || {
            let file = File::open(&path).map_err(|err| read_error(&path, err))?;
            let len = file
                .metadata()
                .map_err(|err| io_error("read", &path, err))?
                .len();
            Ok(OpenFile {
                file,
                remaining_bytes: len,
            })
        })
        .await?;
        Ok(chunked_stream(opened, key))
    }
}

#[async_trait::async_trait]
impl ReplicaClient for FileReplicaClient {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn generations(&self) -> Result<Vec<Generation>, ClientError> {
        let root = self.root.clone();
        blocking("list", &key_of(&root), move || list_generations(&root)).await
    }

    async fn delete_generation(&self, generation: &Generation) -> Result<(), ClientError> {
        let dir = self.path(&layout::generation_dir(generation));
        blocking("delete", &key_of(&dir), move || {
            // remove_dir_all removes a symlink itself, never what it points to.
            match fs::remove_dir_all(&dir) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    Err(io_error("delete", &dir, err))
                }
                _ => Ok(()),
            }
        })
        .await
    }

    async fn snapshots(&self, generation: &Generation) -> Result<Vec<SnapshotInfo>, ClientError> {
        let dir = self.path(&layout::snapshots_dir(generation));
        let generation = *generation;
        let mut snapshots = blocking("list", &key_of(&dir), move || {
            list_files(&dir, layout::parse_snapshot_name)
        })
        .await?
        .into_iter()
        .map(|(index, size, created_at)| SnapshotInfo {
            generation,
            index,
            size,
            created_at,
        })
        .collect::<Vec<_>>();
        snapshots.sort_by_key(|snapshot| snapshot.index);
        Ok(snapshots)
    }

    async fn write_snapshot(
        &self,
        generation: &Generation,
        index: u32,
        data: ByteStream,
    ) -> Result<SnapshotInfo, ClientError> {
        let (size, created_at) = self
            .write_object(&layout::snapshot_path(generation, index), data)
            .await?;
        Ok(SnapshotInfo {
            generation: *generation,
            index,
            size,
            created_at,
        })
    }

    async fn delete_snapshot(
        &self,
        generation: &Generation,
        index: u32,
    ) -> Result<(), ClientError> {
        let path = self.path(&layout::snapshot_path(generation, index));
        blocking("delete", &key_of(&path), move || remove_file(&path)).await
    }

    async fn snapshot_reader(
        &self,
        generation: &Generation,
        index: u32,
    ) -> Result<ByteStream, ClientError> {
        self.reader(&layout::snapshot_path(generation, index)).await
    }

    async fn wal_segments(
        &self,
        generation: &Generation,
    ) -> Result<Vec<WalSegmentInfo>, ClientError> {
        let dir = self.path(&layout::wal_dir(generation));
        let generation = *generation;
        let mut segments = blocking("list", &key_of(&dir), move || {
            list_files(&dir, layout::parse_wal_segment_name)
        })
        .await?
        .into_iter()
        .map(|((index, offset), size, created_at)| WalSegmentInfo {
            generation,
            index,
            offset,
            size,
            created_at,
        })
        .collect::<Vec<_>>();
        segments.sort_by_key(|segment| (segment.index, segment.offset));
        Ok(segments)
    }

    async fn write_wal_segment(
        &self,
        pos: &Pos,
        data: ByteStream,
    ) -> Result<WalSegmentInfo, ClientError> {
        let (size, created_at) = self
            .write_object(&layout::wal_segment_path(pos), data)
            .await?;
        Ok(WalSegmentInfo {
            generation: pos.generation,
            index: pos.index,
            offset: pos.offset,
            size,
            created_at,
        })
    }

    async fn delete_wal_segments(&self, positions: &[Pos]) -> Result<(), ClientError> {
        let paths = positions
            .iter()
            .map(|pos| self.path(&layout::wal_segment_path(pos)))
            .collect::<Vec<_>>();
        let key = key_of(&self.root);
        blocking("delete", &key, move || {
            paths.iter().try_for_each(|path| remove_file(path))
        })
        .await
    }

    async fn wal_segment_reader(&self, pos: &Pos) -> Result<ByteStream, ClientError> {
        self.reader(&layout::wal_segment_path(pos)).await
    }
}

/// What the async side of a write sends its blocking writer.
enum WriteMessage {
    /// The next bytes of the object.
    Chunk(Bytes),
    /// The stream ended cleanly: make the object durable and visible.
    Commit,
}

/// Permission bits for created files and directories.
#[derive(Clone, Copy)]
struct Modes {
    file: u32,
    dir: u32,
}

/// An open file with the number of bytes left to read, for sizing read buffers.
struct OpenFile {
    file: File,
    remaining_bytes: u64,
}

/// Runs `work` on the blocking pool; a panicked or cancelled task is an I/O error on `key`.
async fn blocking<T, F>(op: &'static str, key: &str, work: F) -> Result<T, ClientError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ClientError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| join_error(op, key, err))?
}

fn join_error(op: &'static str, key: &str, err: tokio::task::JoinError) -> ClientError {
    ClientError::Io {
        op,
        key: key.to_owned(),
        source: io::Error::other(err),
    }
}

fn key_of(path: &Path) -> String {
    path.display().to_string()
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> ClientError {
    ClientError::Io {
        op,
        key: key_of(path),
        source,
    }
}

/// A failed open for reading: a missing file is [`ClientError::NotFound`].
fn read_error(path: &Path, source: io::Error) -> ClientError {
    if source.kind() == io::ErrorKind::NotFound {
        ClientError::NotFound { key: key_of(path) }
    } else {
        io_error("read", path, source)
    }
}

/// The valid generation directories under `<root>/generations`, by name.
fn list_generations(root: &Path) -> Result<Vec<Generation>, ClientError> {
    let dir = root.join(layout::GENERATIONS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            // A replica root without `generations/` is an empty replica; a missing root is
            // an error, so a mistyped replica path is not mistaken for an empty replica.
            return match fs::metadata(root) {
                Ok(_) => Ok(Vec::new()),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    Err(ClientError::NotFound { key: key_of(root) })
                }
                Err(err) => Err(io_error("list", root, err)),
            };
        }
        Err(err) => return Err(io_error("list", &dir, err)),
    };
    let mut generations = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error("list", &dir, err))?;
        let name = entry.file_name();
        let Some(generation) = name.to_str().and_then(|name| Generation::parse(name).ok()) else {
            continue;
        };
        match entry.file_type() {
            // As Litestream's `fi.IsDir()`: the type of the entry itself, so a symlink is skipped.
            Ok(file_type) if file_type.is_dir() => generations.push(generation),
            Ok(_) => {}
            // Deleted since the directory was read.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error("list", &entry.path(), err)),
        }
    }
    generations.sort();
    Ok(generations)
}

/// The regular files directly in `dir` whose names `parse` accepts, with size and mtime; a
/// missing `dir` has none.
fn list_files<T>(
    dir: &Path,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<(T, u64, SystemTime)>, ClientError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("list", dir, err)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error("list", dir, err))?;
        let name = entry.file_name();
        let Some(parsed) = name.to_str().and_then(&parse) else {
            continue;
        };
        // `DirEntry::metadata` does not follow symlinks: only regular files are objects.
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error("list", &entry.path(), err)),
        };
        if !metadata.is_file() {
            continue;
        }
        let modified = metadata
            .modified()
            .map_err(|err| io_error("list", &entry.path(), err))?;
        files.push((parsed, metadata.len(), modified));
    }
    Ok(files)
}

/// Removes a file; a missing one is not an error.
fn remove_file(path: &Path) -> Result<(), ClientError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error("delete", path, err)),
        _ => Ok(()),
    }
}

/// `<path>.tmp`, in the same directory so the final rename is atomic.
fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// The directory holding `path` (`.` for a bare relative name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Writes what `receiver` delivers to `<path>.tmp` and, on [`WriteMessage::Commit`], fsyncs it,
/// stats it, renames it to `path` and fsyncs the directory. Returns `None`, having removed the
/// temp file, when the sender went away without committing.
fn write_durably(
    path: &Path,
    modes: Modes,
    mut receiver: mpsc::Receiver<WriteMessage>,
) -> Result<Option<(u64, SystemTime)>, ClientError> {
    let dir = parent_dir(path);
    create_dir_all_durably(dir, modes.dir)?;
    let tmp = tmp_path(path);
    let mut file = open_options(modes.file)
        .open(&tmp)
        .map_err(|err| io_error("create", &tmp, err))?;
    let result = fill_and_commit(&mut file, &tmp, path, dir, &mut receiver);
    if !matches!(result, Ok(Some(_))) {
        drop(file);
        // Best effort: a leftover `.tmp` is ignored by listings (as Litestream leaves them), and
        // the error that matters is the one already in `result`.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn fill_and_commit(
    file: &mut File,
    tmp: &Path,
    path: &Path,
    dir: &Path,
    receiver: &mut mpsc::Receiver<WriteMessage>,
) -> Result<Option<(u64, SystemTime)>, ClientError> {
    loop {
        match receiver.blocking_recv() {
            Some(WriteMessage::Chunk(chunk)) => file
                .write_all(&chunk)
                .map_err(|err| io_error("write", tmp, err))?,
            Some(WriteMessage::Commit) => break,
            None => return Ok(None),
        }
    }
    // A failed fsync is never retried: the error goes up and the temp file is removed.
    file.sync_all().map_err(|err| io_error("sync", tmp, err))?;
    let metadata = file.metadata().map_err(|err| io_error("stat", tmp, err))?;
    let modified = metadata
        .modified()
        .map_err(|err| io_error("stat", tmp, err))?;
    fs::rename(tmp, path).map_err(|err| io_error("rename", tmp, err))?;
    sync_dir(dir)?;
    Ok(Some((metadata.len(), modified)))
}

fn open_options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// Creates `dir` and its missing ancestors with `mode`, then fsyncs the parent of each created
/// directory so the new entries survive a crash.
fn create_dir_all_durably(dir: &Path, mode: u32) -> Result<(), ClientError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(candidate) = current {
        let exists = candidate
            .try_exists()
            .map_err(|err| io_error("create directory", candidate, err))?;
        if exists {
            break;
        }
        missing.push(candidate);
        current = candidate.parent().filter(|p| !p.as_os_str().is_empty());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    #[cfg(not(unix))]
    let _ = mode;
    builder
        .create(dir)
        .map_err(|err| io_error("create directory", dir, err))?;
    for created in missing.iter().rev() {
        sync_dir(parent_dir(created))?;
    }
    Ok(())
}

/// Fsyncs a directory, making renames and new entries in it durable.
fn sync_dir(dir: &Path) -> Result<(), ClientError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|err| io_error("sync directory", dir, err))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files on Windows; NTFS journals renames.
        let _ = dir;
        Ok(())
    }
}

/// Streams an open file in chunks of at most [`READ_CHUNK_BYTES`], each read on the blocking
/// pool.
fn chunked_stream(file: OpenFile, key: String) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some((file, key)),
        |state| async move {
            let (mut open, key) = state?;
            let read = tokio::task::spawn_blocking(move || {
                let hint = usize::try_from(open.remaining_bytes)
                    .unwrap_or(READ_CHUNK_BYTES)
                    .min(READ_CHUNK_BYTES);
                let mut buf = Vec::with_capacity(hint);
                let limit = u64::try_from(READ_CHUNK_BYTES).unwrap_or(u64::MAX);
                let result = (&mut open.file).take(limit).read_to_end(&mut buf);
                (open, buf, result)
            })
            .await;
            match read {
                Err(err) => Some((Err(join_error("read", &key, err)), None)),
                Ok((_, _, Err(err))) => Some((
                    Err(ClientError::Io {
                        op: "read",
                        key,
                        source: err,
                    }),
                    None,
                )),
                Ok((_, _, Ok(0))) => None,
                Ok((mut open, buf, Ok(n))) => {
                    let n = u64::try_from(n).unwrap_or(u64::MAX);
                    open.remaining_bytes = open.remaining_bytes.saturating_sub(n);
                    Some((Ok(Bytes::from(buf)), Some((open, key))))
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_path_appends_suffix_in_same_directory() {
        let path = Path::new("/r/generations/0123456789abcdef/wal/00000000_00000000.wal.lz4");
        assert_eq!(
            tmp_path(path),
            Path::new("/r/generations/0123456789abcdef/wal/00000000_00000000.wal.lz4.tmp")
        );
        assert_eq!(parent_dir(&tmp_path(path)), parent_dir(path));
    }

    #[test]
    fn parent_dir_of_bare_name_is_current_dir() {
        assert_eq!(parent_dir(Path::new("x")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/x")), Path::new("a"));
    }
}
