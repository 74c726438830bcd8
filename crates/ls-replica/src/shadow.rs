//! The local state beside the database (spec 2): the meta directory, the `generation` file and
//! the shadow WAL files, byte for byte as Litestream 0.3.13 keeps them, so either tool can take
//! over the other's running generation.
//!
//! Everything here is synchronous file I/O, run by the engine in `spawn_blocking`.

use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use ls_core::{
    DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, Generation, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE,
    WalHeader, WalReader, create_dir_all_durable_with_mode, frame_align, write_file_with_mode,
};

use crate::engine_error::ReplicateError;

/// Size of the WAL header as a file offset.
pub(crate) const HEADER_LEN: u64 = 32;

/// Permission bits for the files and directories we create: the database file's and its
/// directory's, as Litestream copies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Modes {
    /// For shadow WAL and generation files.
    pub(crate) file: u32,
    /// For directories of the meta directory.
    pub(crate) dir: u32,
}

impl Modes {
    /// The modes of `db` and its directory, or Litestream's defaults where they cannot be read.
    pub(crate) fn of_db(db: &Path) -> Self {
        let file = fs_err::metadata(db).map_or(DEFAULT_FILE_MODE, |meta| meta.mode() & 0o777);
        let dir = db
            .parent()
            .and_then(|dir| fs_err::metadata(dir).ok())
            .map_or(DEFAULT_DIR_MODE, |meta| meta.mode() & 0o777);
        Self { file, dir }
    }
}

/// The meta directory of one database: `<dir>/.<name>-litestream` unless configured.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    dir: PathBuf,
}

impl Meta {
    /// The meta directory of `db`, or `meta_path` when set.
    pub(crate) fn new(db: &Path, meta_path: Option<&Path>) -> Self {
        if let Some(path) = meta_path {
            return Self {
                dir: path.to_path_buf(),
            };
        }
        let name = db
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = db.parent().unwrap_or_else(|| Path::new("."));
        Self {
            dir: parent.join(format!(".{name}-litestream")),
        }
    }

    /// The meta directory itself.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn generation_file(&self) -> PathBuf {
        self.dir.join("generation")
    }

    fn generations_dir(&self) -> PathBuf {
        self.dir.join("generations")
    }

    /// `generations/<generation>/wal`.
    pub(crate) fn wal_dir(&self, generation: &Generation) -> PathBuf {
        self.generations_dir().join(generation.as_str()).join("wal")
    }

    /// The shadow WAL file of `index`.
    pub(crate) fn shadow_path(&self, generation: &Generation, index: u32) -> PathBuf {
        self.wal_dir(generation).join(format!("{index:08x}.wal"))
    }

    /// The current generation: the `generation` file's trimmed content when it is a generation
    /// name; `None` when the file is missing or holds anything else.
    pub(crate) fn read_generation(&self) -> Result<Option<Generation>, ReplicateError> {
        let path = self.generation_file();
        match fs_err::read_to_string(&path) {
            Ok(text) => Ok(Generation::parse(text.trim()).ok()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(ReplicateError::io("cannot read generation file", err)),
        }
    }

    /// Replaces the `generation` file atomically with `<name>\n`.
    pub(crate) fn write_generation(
        &self,
        generation: &Generation,
        modes: Modes,
    ) -> Result<(), ReplicateError> {
        create_dir_all_durable_with_mode(&self.dir, modes.dir)
            .map_err(|err| ReplicateError::io("cannot create meta directory", err))?;
        write_file_with_mode(self.generation_file(), modes.file, |file| {
            file.write_all(format!("{}\n", generation.as_str()).as_bytes())
        })
        .map_err(|err| ReplicateError::io("cannot write generation file", err))
    }

    /// Removes the `generation` file, so the next sync starts a new generation.
    pub(crate) fn clear_generation(&self) -> Result<(), ReplicateError> {
        match fs_err::remove_file(self.generation_file()) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(ReplicateError::io("cannot remove generation file", err)),
        }
    }

    /// The shadow WAL indexes of `generation` with their file sizes, in index order.
    pub(crate) fn shadow_files(
        &self,
        generation: &Generation,
    ) -> Result<Vec<(u32, u64)>, ReplicateError> {
        let dir = self.wal_dir(generation);
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(ReplicateError::io("cannot list shadow wal files", err)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| ReplicateError::io("cannot list shadow wal", err))?;
            let name = entry.file_name();
            let Some(index) = name.to_str().and_then(parse_shadow_name) else {
                continue;
            };
            let size = entry
                .metadata()
                .map_err(|err| ReplicateError::io("cannot stat shadow wal file", err))?
                .len();
            files.push((index, size));
        }
        files.sort_unstable();
        Ok(files)
    }

    /// The highest shadow WAL index of `generation`, 0 when there is none.
    pub(crate) fn current_index(&self, generation: &Generation) -> Result<u32, ReplicateError> {
        Ok(self
            .shadow_files(generation)?
            .last()
            .map_or(0, |(index, _)| *index))
    }

    /// Removes every `*.tmp` file under the meta directory, left over from a crash.
    pub(crate) fn remove_tmp_files(&self) -> Result<(), ReplicateError> {
        remove_tmp_under(&self.dir)
            .map_err(|err| ReplicateError::io("cannot remove temporary files", err))
    }

    /// Litestream's clean (spec 2.3): removes other generations' directories and the shadow WAL
    /// files every replica has moved past (`index < min_replica_index - 1`).
    pub(crate) fn clean(
        &self,
        generation: &Generation,
        min_replica_index: u32,
    ) -> Result<(), ReplicateError> {
        let generations = self.generations_dir();
        match fs_err::read_dir(&generations) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.file_name().to_str() == Some(generation.as_str()) {
                        continue;
                    }
                    fs_err::remove_dir_all(entry.path()).map_err(|err| {
                        ReplicateError::io("cannot remove old generation directory", err)
                    })?;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(ReplicateError::io("cannot list generations", err)),
        }
        if min_replica_index == 0 {
            return Ok(());
        }
        for (index, _) in self.shadow_files(generation)? {
            if index < min_replica_index - 1 {
                let path = self.shadow_path(generation, index);
                match fs_err::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(ReplicateError::io("cannot remove shadow wal file", err));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The index of a shadow WAL file name, `^[0-9a-f]{8}\.wal$`.
fn parse_shadow_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".wal")?;
    if hex.len() != 8 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

fn remove_tmp_under(dir: &Path) -> io::Result<()> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_tmp_under(&path)?;
        } else if path.extension().is_some_and(|ext| ext == "tmp") {
            fs_err::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The first 32 bytes of a file; an error of kind `UnexpectedEof` when it is shorter.
pub(crate) fn read_header_bytes(path: &Path) -> io::Result<[u8; WAL_HEADER_SIZE]> {
    let mut file = fs_err::File::open(path)?;
    let mut header = [0u8; WAL_HEADER_SIZE];
    file.read_exact(&mut header)?;
    Ok(header)
}

/// Size of a file, 0 when it does not exist.
pub(crate) fn file_size(path: &Path) -> io::Result<u64> {
    match fs_err::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err),
    }
}

/// What a copy from the real WAL into a shadow WAL did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Copied {
    /// Frame-aligned size of the real WAL when frames were copied, else the shadow's size
    /// (Litestream's `origSize`, which only feeds the TRUNCATE threshold).
    pub(crate) orig_size: u64,
    /// Size of the shadow WAL after the copy: always the end of a commit frame.
    pub(crate) new_size: u64,
    /// Frame bytes appended.
    pub(crate) appended: u64,
    /// The salts of the shadow's WAL cycle (header bytes 16..24).
    pub(crate) salts: [u8; 8],
}

/// Where a scan of the real WAL stopped last time, so that a long transaction still being
/// written is not re-read from its start at every pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanCache {
    /// The shadow file and start offset the scan began at.
    key: Option<(u32, u32, u64)>,
    /// Offset and checksum chain after the last valid frame scanned.
    scanned: u64,
    checksum: (u32, u32),
    /// End of the last commit frame seen.
    last_commit: u64,
    /// Checksum of the first frame scanned: a transaction rolled back after spilling frames is
    /// overwritten from there by the next one, which this notices.
    first: Option<(u32, u32)>,
}

/// Copies the committed frames the real WAL has past the end of the shadow WAL (spec 4.4):
/// frames that continue the shadow's checksum chain with its salts, up to the last commit
/// frame, appended at the shadow's frame-aligned end and synced.
///
/// The real WAL is scanned once to find the last commit, then its bytes up to there copied,
/// so memory stays bounded whatever the transaction size and a transaction not committed yet
/// never reaches the shadow file.
pub(crate) fn copy_to_shadow(
    wal_path: &Path,
    shadow_path: &Path,
    cache: &mut ScanCache,
) -> Result<Copied, ReplicateError> {
    copy_to_shadow_with(wal_path, shadow_path, cache, &mut |_, _| {})
}

/// [`copy_to_shadow`], showing `appended` the bytes it appended and their offset when they
/// went through memory (up to [`IN_MEMORY`] of them): what the shadow file now holds there.
pub(crate) fn copy_to_shadow_with(
    wal_path: &Path,
    shadow_path: &Path,
    cache: &mut ScanCache,
    appended: &mut dyn FnMut(u64, &[u8]),
) -> Result<Copied, ReplicateError> {
    let shadow_name = shadow_path.display().to_string();
    let shadow = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shadow_path)
        .map_err(|err| ReplicateError::io("cannot open shadow wal", err))?;
    let shadow_size = shadow
        .metadata()
        .map_err(|err| ReplicateError::io("cannot stat shadow wal", err))?
        .len();
    let mut header_bytes = [0u8; WAL_HEADER_SIZE];
    shadow
        .file()
        .read_exact_at(&mut header_bytes, 0)
        .map_err(|err| ReplicateError::io(format!("read header: {shadow_name}"), err))?;
    let header = WalHeader::parse(&header_bytes).map_err(|source| ReplicateError::Wal {
        context: format!("read header: {shadow_name}"),
        source,
    })?;
    let page_size = header.page_size;
    let frame_size = header.frame_size();
    let start = frame_align(shadow_size, page_size);
    let last_checksum = if start > HEADER_LEN {
        let mut frame_header = [0u8; WAL_FRAME_HEADER_SIZE];
        shadow
            .file()
            .read_exact_at(&mut frame_header, start - frame_size)
            .map_err(|err| ReplicateError::io(format!("last checksum: {shadow_name}"), err))?;
        ls_core::WalFrameHeader::parse(&frame_header).checksum()
    } else {
        header.checksum()
    };

    let real =
        fs_err::File::open(wal_path).map_err(|err| ReplicateError::io("cannot open wal", err))?;
    let real_size = real
        .metadata()
        .map_err(|err| ReplicateError::io("cannot stat wal", err))?
        .len();
    let real_aligned = frame_align(real_size, page_size);

    // A small tail (the usual case: what a second of commits wrote) is read in one call and
    // checked in memory; what is written to the shadow is then exactly what was checked. The
    // buffer is reused: a fresh one on every pass costs page faults.
    if real_aligned > start && real_aligned - start <= IN_MEMORY {
        *cache = ScanCache::default();
        let mut data = take_buffer();
        let copied = (|| {
            read_span(real.file(), start, real_aligned, &mut data).map_err(|err| {
                ReplicateError::io(format!("read wal: {}", wal_path.display()), err)
            })?;
            let span = Span {
                header,
                start,
                checksum: last_checksum,
            };
            let copied = append_checked(&shadow, &shadow_name, span, shadow_size, &data)?;
            if let Some(bytes) = usize::try_from(copied.appended)
                .ok()
                .and_then(|len| data.get(..len))
                .filter(|bytes| !bytes.is_empty())
            {
                appended(start, bytes);
            }
            Ok::<_, ReplicateError>(copied)
        })();
        give_buffer(data);
        let copied = copied?;
        return Ok(Copied {
            orig_size: if copied.appended > 0 {
                real_aligned
            } else {
                start
            },
            salts: salts_of(&header_bytes),
            ..copied
        });
    }

    // Pass 1: find the last commit frame that continues the chain.
    let key = Some((header.salt1, header.salt2, start));
    let mut first_now = None;
    if cache.key == key && cache.scanned > start {
        let mut frame_header = [0u8; WAL_FRAME_HEADER_SIZE];
        if real.file().read_exact_at(&mut frame_header, start).is_ok() {
            first_now = Some(ls_core::WalFrameHeader::parse(&frame_header).checksum());
        }
    }
    if cache.key != key || cache.scanned > real_aligned || first_now != cache.first {
        *cache = ScanCache {
            key,
            scanned: start,
            checksum: last_checksum,
            last_commit: start,
            first: None,
        };
    }
    // Over the std file, whose reads fill the buffer in place (fs_err's would zero all of it
    // first, on every pass).
    let mut reader = BufReader::with_capacity(1 << 20, real.file());
    reader
        .seek(SeekFrom::Start(cache.scanned))
        .map_err(|err| ReplicateError::io("read wal", err))?;
    let mut wal =
        WalReader::resume(reader, header, cache.scanned, cache.checksum).map_err(|source| {
            ReplicateError::Wal {
                context: format!("read wal: {}", wal_path.display()),
                source,
            }
        })?;
    loop {
        let frame = wal
            .next_valid_frame()
            .map_err(|source| ReplicateError::Wal {
                context: format!("read wal: {}", wal_path.display()),
                source,
            })?;
        let Some(frame) = frame else { break };
        if frame.offset() == start {
            cache.first = Some(frame.header().checksum());
        }
        if frame.header().is_commit() {
            cache.last_commit = frame.offset() + frame_size;
        }
    }
    cache.scanned = wal.offset();
    cache.checksum = wal.checksum();
    let last_commit = cache.last_commit;
    if last_commit <= start {
        return Ok(Copied {
            orig_size: start,
            new_size: start,
            appended: 0,
            salts: salts_of(&header_bytes),
        });
    }

    // Pass 2: copy the committed bytes. The engine holds a read transaction or the write lock,
    // so the WAL does not restart meanwhile, except while our read transaction sits on SQLite's
    // read-lock 0 (the WAL was wholly checkpointed when it began, as right after our own
    // checkpoint): then a writer may restart it and overwrite these frames from its start.
    // File to file: the kernel copies (copy_file_range on Linux), no buffer of ours.
    drop(wal);
    let copy = (|| -> Result<u64, ReplicateError> {
        let want = last_commit - start;
        let mut from = real.file();
        from.seek(SeekFrom::Start(start))
            .map_err(|err| ReplicateError::io(format!("read wal: {}", wal_path.display()), err))?;
        let mut to = shadow.file();
        to.seek(SeekFrom::Start(start))
            .map_err(|err| ReplicateError::io(format!("write shadow file: {shadow_name}"), err))?;
        let copied = std::io::copy(&mut from.take(want), &mut to)
            .map_err(|err| ReplicateError::io(format!("write shadow file: {shadow_name}"), err))?;
        if copied != want {
            return Err(ReplicateError::io(
                format!("read wal: {}", wal_path.display()),
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        let mut now = [0u8; WAL_HEADER_SIZE];
        real.file()
            .read_exact_at(&mut now, 0)
            .map_err(|err| ReplicateError::io(format!("read wal: {}", wal_path.display()), err))?;
        // The WAL restarted since the scan: keep only what still continues the chain.
        let keep = if now == header_bytes {
            last_commit
        } else {
            committed_end(shadow.file(), header, start, last_checksum, last_commit).map_err(
                |err| ReplicateError::io(format!("check shadow file: {shadow_name}"), err),
            )?
        };
        if shadow_size > keep || keep < last_commit {
            shadow.set_len(keep).map_err(|err| {
                ReplicateError::io(format!("write shadow file: {shadow_name}"), err)
            })?;
        }
        shadow
            .sync_data()
            .map_err(|err| ReplicateError::io(format!("sync shadow file: {shadow_name}"), err))?;
        Ok(keep)
    })();
    let last_commit = match copy {
        Ok(keep) => keep,
        Err(err) => {
            // A full disk or an I/O error mid-copy: put the shadow file back as it was, so it
            // still ends on a commit frame, and let the next pass try again.
            let _ = shadow.set_len(start);
            *cache = ScanCache::default();
            return Err(err);
        }
    };
    *cache = ScanCache::default();
    Ok(Copied {
        orig_size: real_aligned,
        new_size: last_commit,
        appended: last_commit - start,
        salts: salts_of(&header_bytes),
    })
}

/// The real WAL's bytes past the shadow's end up to this many are read in one call, checked
/// and written from memory; more are scanned and copied file to file.
const IN_MEMORY: u64 = 4 << 20;

/// A buffer goes back to the pool unless a copy used more than this.
const KEPT_BUFFER: usize = 2 << 20;

/// Buffers of in-memory copies between uses: as many as copies ever ran at once (one per
/// database at most), whichever threads run them.
static BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn take_buffer() -> Vec<u8> {
    BUFFERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop()
        .unwrap_or_default()
}

fn give_buffer(data: Vec<u8>) {
    if data.len() <= KEPT_BUFFER {
        BUFFERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(data);
    }
}

/// Reads into `data` the bytes of `file` from `start` to `end`, fewer when it ends sooner (a
/// writer may truncate the WAL meanwhile).
fn read_span(file: &std::fs::File, start: u64, end: u64, data: &mut Vec<u8>) -> io::Result<()> {
    let len = usize::try_from(end - start).map_err(io::Error::other)?;
    data.clear();
    if data.capacity() < len {
        // Room for any span at once: growing would copy the old buffer and fault in a new one.
        *data = Vec::with_capacity(usize::try_from(IN_MEMORY).unwrap_or(len).max(len));
    }
    data.resize(len, 0);
    let mut filled = 0;
    while let Some(rest) = data.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match file.read_at(rest, start + u64::try_from(filled).unwrap_or(u64::MAX)) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    data.truncate(filled);
    Ok(())
}

/// Where the bytes of an in-memory copy start: the real WAL's `header`, the shadow's committed
/// end `start`, and the checksum chain there.
struct Span {
    header: WalHeader,
    start: u64,
    checksum: (u32, u32),
}

/// Appends to `shadow` (holding `shadow_size` bytes) the frames of `data` (the real WAL's
/// bytes from `span.start`) up to the last commit frame that continues the checksum chain,
/// synced. `orig_size` and `salts` of the result are left for the caller.
fn append_checked(
    shadow: &fs_err::File,
    shadow_name: &str,
    span: Span,
    shadow_size: u64,
    data: &[u8],
) -> Result<Copied, ReplicateError> {
    let Span {
        header,
        start,
        checksum,
    } = span;
    let last_commit =
        last_commit_in(data, header, start, checksum).map_err(|source| ReplicateError::Wal {
            context: format!("read wal from offset {start}"),
            source,
        })?;
    let unchanged = Copied {
        orig_size: start,
        new_size: start,
        appended: 0,
        salts: [0; 8],
    };
    if last_commit <= start {
        return Ok(unchanged);
    }
    let committed = data
        .get(..usize::try_from(last_commit - start).unwrap_or(usize::MAX))
        .unwrap_or_default();
    let written = (|| -> io::Result<()> {
        shadow.file().write_all_at(committed, start)?;
        if shadow_size > last_commit {
            shadow.set_len(last_commit)?;
        }
        shadow.sync_data()
    })();
    if let Err(err) = written {
        // A full disk or an I/O error mid-write: put the shadow file back as it was, so it
        // still ends on a commit frame, and let the next pass try again.
        let _ = shadow.set_len(start);
        return Err(ReplicateError::io(
            format!("write shadow file: {shadow_name}"),
            err,
        ));
    }
    Ok(Copied {
        new_size: last_commit,
        appended: last_commit - start,
        ..unchanged
    })
}

/// The end of the last commit frame among the frames of `file` from `start` (a frame boundary
/// with checksum chain `checksum`) to `end` that carry `header`'s salts and continue the chain;
/// `start` when there is none.
fn committed_end(
    file: &std::fs::File,
    header: WalHeader,
    start: u64,
    checksum: (u32, u32),
    end: u64,
) -> std::io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(start))?;
    last_commit_in(reader.take(end - start), header, start, checksum).map_err(io::Error::other)
}

/// The end of the last commit frame among the frames `reader` holds from `start` (a frame
/// boundary with checksum chain `checksum`) that carry `header`'s salts and continue the chain;
/// `start` when there is none. A read error ends the frames like an invalid frame does.
fn last_commit_in(
    reader: impl Read,
    header: WalHeader,
    start: u64,
    checksum: (u32, u32),
) -> Result<u64, ls_core::WalError> {
    let frame_size = header.frame_size();
    let mut wal = WalReader::resume(reader, header, start, checksum)?;
    let mut last = start;
    while let Ok(Some(frame)) = wal.next_valid_frame() {
        if frame.header().is_commit() {
            last = frame.offset() + frame_size;
        }
    }
    Ok(last)
}

/// The salts of a WAL header (bytes 16..24).
fn salts_of(header: &[u8; WAL_HEADER_SIZE]) -> [u8; 8] {
    let mut salts = [0u8; 8];
    salts.copy_from_slice(header.get(16..24).unwrap_or(&[0; 8]));
    salts
}

/// Starts the shadow WAL file of a new index (spec 4.8): the real WAL's checked header as the
/// whole file, written durably, then the copy.
pub(crate) fn init_shadow(
    wal_path: &Path,
    shadow_path: &Path,
    modes: Modes,
    cache: &mut ScanCache,
) -> Result<Copied, ReplicateError> {
    let header = read_header_bytes(wal_path).map_err(|err| {
        ReplicateError::io(format!("read wal header: {}", wal_path.display()), err)
    })?;
    WalHeader::parse(&header).map_err(|source| ReplicateError::Wal {
        context: format!("invalid wal header: {}", wal_path.display()),
        source,
    })?;
    if let Some(dir) = shadow_path.parent() {
        create_dir_all_durable_with_mode(dir, modes.dir)
            .map_err(|err| ReplicateError::io("cannot create shadow wal directory", err))?;
    }
    write_file_with_mode(shadow_path, modes.file, |file| file.write_all(&header))
        .map_err(|err| ReplicateError::io("cannot write shadow wal header", err))?;
    *cache = ScanCache::default();
    copy_to_shadow(wal_path, shadow_path, cache)
}

/// Cuts a shadow WAL back to the end of its last commit frame, dropping what a crash in the
/// middle of a copy may have left; returns the size kept.
pub(crate) fn repair_tail(shadow_path: &Path) -> Result<u64, ReplicateError> {
    let file = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shadow_path)
        .map_err(|err| ReplicateError::io("cannot open shadow wal", err))?;
    let size = file
        .metadata()
        .map_err(|err| ReplicateError::io("cannot stat shadow wal", err))?
        .len();
    let mut wal = WalReader::new(BufReader::with_capacity(1 << 20, file)).map_err(|source| {
        ReplicateError::Wal {
            context: format!("read header: {}", shadow_path.display()),
            source,
        }
    })?;
    let frame_size = wal.header().frame_size();
    let mut last_commit = HEADER_LEN;
    while let Some(frame) = wal
        .next_valid_frame()
        .map_err(|source| ReplicateError::Wal {
            context: format!("read shadow wal: {}", shadow_path.display()),
            source,
        })?
    {
        if frame.header().is_commit() {
            last_commit = frame.offset() + frame_size;
        }
    }
    if last_commit < size {
        let file = wal.into_inner().into_inner();
        file.set_len(last_commit)
            .map_err(|err| ReplicateError::io("cannot truncate shadow wal", err))?;
        file.sync_data()
            .map_err(|err| ReplicateError::io("cannot sync shadow wal", err))?;
    }
    Ok(last_commit)
}

/// The outcome of the continuity checks of spec 4.5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    /// Why a new generation must start; `None` to continue the current one.
    pub(crate) reason: Option<&'static str>,
    /// The real WAL was restarted (its header differs from the shadow's).
    pub(crate) restart: bool,
}

/// Litestream's verification: whether the shadow WAL still continues the real WAL.
pub(crate) fn verify(
    wal_path: &Path,
    shadow_path: &Path,
    index: u32,
    page_size: u32,
) -> Result<Verified, ReplicateError> {
    let new_generation = |reason| {
        Ok(Verified {
            reason: Some(reason),
            restart: false,
        })
    };
    if index >= ls_core::MAX_INDEX {
        return new_generation("max index exceeded");
    }
    // Each file is opened once: its size, header and last frame read through one descriptor.
    let shadow = match fs_err::File::open(shadow_path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return new_generation("no shadow wal");
        }
        Err(err) => return Err(ReplicateError::io("cannot stat shadow wal", err)),
    };
    let shadow_size = shadow
        .metadata()
        .map_err(|err| ReplicateError::io("cannot stat shadow wal", err))?
        .len();
    let shadow_size = frame_align(shadow_size, page_size);
    if shadow_size < HEADER_LEN {
        return new_generation("short shadow wal");
    }
    // A missing WAL is an empty one, shorter than any shadow file.
    let real = match fs_err::File::open(wal_path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return new_generation("wal truncated by another process");
        }
        Err(err) => return Err(ReplicateError::io("cannot stat wal", err)),
    };
    let wal_size = real
        .metadata()
        .map_err(|err| ReplicateError::io("cannot stat wal", err))?
        .len();
    if shadow_size > frame_align(wal_size, page_size) {
        return new_generation("wal truncated by another process");
    }
    let mut real_header = [0u8; WAL_HEADER_SIZE];
    real.file()
        .read_exact_at(&mut real_header, 0)
        .map_err(|err| ReplicateError::io("cannot read wal header", err))?;
    let mut shadow_header = [0u8; WAL_HEADER_SIZE];
    shadow
        .file()
        .read_exact_at(&mut shadow_header, 0)
        .map_err(|err| ReplicateError::io("cannot read shadow wal header", err))?;
    let restart = real_header != shadow_header;
    if restart && shadow_size == HEADER_LEN {
        return new_generation("wal header only, mismatched");
    }
    if shadow_size > HEADER_LEN {
        let frame_size = u64::from(page_size) + 24;
        let offset = shadow_size - frame_size;
        let len = usize::try_from(frame_size).unwrap_or(0);
        let mut real_frame = vec![0u8; len];
        let mut shadow_frame = vec![0u8; len];
        real.file()
            .read_exact_at(&mut real_frame, offset)
            .map_err(|err| ReplicateError::io("cannot read last wal frame", err))?;
        shadow
            .file()
            .read_exact_at(&mut shadow_frame, offset)
            .map_err(|err| ReplicateError::io("cannot read last shadow wal frame", err))?;
        if real_frame != shadow_frame {
            return new_generation("wal overwritten by another process");
        }
    }
    Ok(Verified {
        reason: None,
        restart,
    })
}

/// Whether the real WAL restarted exactly once since `old_header`, with nothing of the old cycle
/// past `end` left in it, while the shadow WAL still ends at `end`: the conditions under which
/// a WAL restart by an application's checkpoint continues the shadow WAL in the next index.
///
/// `clean` says no new cycle had started when our read transaction was back: from then on at
/// most one can start (a second restart needs the new cycle backfilled, which our read lock
/// prevents), so any new header is the next cycle. Otherwise the next cycle is recognised by
/// its first salt, which every restart increments (SQLite draws new salts only for a writer
/// that never restarted a WAL itself; then we cannot tell, and the caller starts a new
/// generation). The header's checkpoint counter is per connection in SQLite, so not used.
pub(crate) fn restarted_after(
    wal_path: &Path,
    shadow_path: &Path,
    old_header: &[u8; WAL_HEADER_SIZE],
    end: u64,
    clean: bool,
) -> Result<bool, ReplicateError> {
    let Ok(new_bytes) = read_header_bytes(wal_path) else {
        return Ok(false);
    };
    if new_bytes == *old_header {
        return Ok(false);
    }
    let (Ok(old), Ok(new)) = (WalHeader::parse(old_header), WalHeader::parse(&new_bytes)) else {
        return Ok(false);
    };
    if new.page_size != old.page_size || (!clean && new.salt1 != old.salt1.wrapping_add(1)) {
        return Ok(false);
    }
    let shadow_size =
        file_size(shadow_path).map_err(|err| ReplicateError::io("cannot stat shadow wal", err))?;
    if shadow_size != end {
        return Ok(false);
    }
    // A frame of the old cycle right after what we copied means commits we never saw.
    let wal =
        fs_err::File::open(wal_path).map_err(|err| ReplicateError::io("cannot open wal", err))?;
    let mut frame_header = [0u8; WAL_FRAME_HEADER_SIZE];
    if wal.file().read_exact_at(&mut frame_header, end).is_ok() {
        let frame = ls_core::WalFrameHeader::parse(&frame_header);
        if frame.salt1 == old.salt1 && frame.salt2 == old.salt2 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Commit frames in the WAL's current cycle: 0 when the WAL is empty or still holds the cycle
/// whose header is `old_header`.
pub(crate) fn commits_in_cycle(
    wal_path: &Path,
    old_header: &[u8; WAL_HEADER_SIZE],
) -> Result<u64, ReplicateError> {
    if file_size(wal_path).map_err(|err| ReplicateError::io("cannot stat wal", err))?
        < u64::try_from(WAL_HEADER_SIZE).unwrap_or(u64::MAX)
    {
        return Ok(0);
    }
    if read_header_bytes(wal_path).is_ok_and(|now| now == *old_header) {
        return Ok(0);
    }
    let file =
        fs_err::File::open(wal_path).map_err(|err| ReplicateError::io("cannot open wal", err))?;
    let context = || format!("read wal: {}", wal_path.display());
    let mut wal = WalReader::new(BufReader::with_capacity(256 * 1024, file)).map_err(|source| {
        ReplicateError::Wal {
            context: context(),
            source,
        }
    })?;
    let mut commits = 0u64;
    while let Some(frame) = wal
        .next_valid_frame()
        .map_err(|source| ReplicateError::Wal {
            context: context(),
            source,
        })?
    {
        if frame.header().is_commit() {
            commits += 1;
        }
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_shadow_name_accepts_only_litestream_names() {
        assert_eq!(parse_shadow_name("0000000a.wal"), Some(10));
        assert_eq!(parse_shadow_name("0000000A.wal"), None);
        assert_eq!(parse_shadow_name("000000a.wal"), None);
        assert_eq!(parse_shadow_name("0000000a.wal.tmp"), None);
    }

    #[test]
    fn meta_new_default_is_hidden_dir_beside_db() {
        let meta = Meta::new(Path::new("/data/app.db"), None);
        assert_eq!(meta.dir(), Path::new("/data/.app.db-litestream"));
    }

    /// A WAL cycle of 512-byte pages: its header and frames whose commit flags are `commits`.
    fn cycle(salt1: u32, commits: &[bool]) -> (WalHeader, Vec<u8>) {
        let header = WalHeader::new(ls_core::ByteOrder::LittleEndian, 512, 0, salt1, 7);
        let mut bytes = header.to_bytes().to_vec();
        let mut sum = header.checksum();
        for (n, commit) in commits.iter().enumerate() {
            let page = vec![u8::try_from(n).unwrap_or(0); 512];
            let mut frame = ls_core::WalFrameHeader {
                pgno: u32::try_from(n).unwrap_or(0) + 1,
                db_size_pages: if *commit { 4 } else { 0 },
                salt1,
                salt2: 7,
                checksum1: 0,
                checksum2: 0,
            }
            .to_bytes();
            sum =
                ls_core::wal_checksum(ls_core::ByteOrder::LittleEndian, sum.0, sum.1, &frame[..8]);
            sum = ls_core::wal_checksum(ls_core::ByteOrder::LittleEndian, sum.0, sum.1, &page);
            frame[16..20].copy_from_slice(&sum.0.to_be_bytes());
            frame[20..24].copy_from_slice(&sum.1.to_be_bytes());
            bytes.extend_from_slice(&frame);
            bytes.extend_from_slice(&page);
        }
        (header, bytes)
    }

    #[test]
    fn committed_end_stops_where_a_restarted_wal_overwrote_the_copy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("00000000.wal");
        let (header, mut bytes) = cycle(1, &[false, true, false, true]);
        let frame = 24 + 512;
        let end = u64::try_from(bytes.len()).expect("fits");
        std::fs::write(&path, &bytes).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        let start = HEADER_LEN;
        assert_eq!(
            committed_end(&file, header, start, header.checksum(), end).expect("read"),
            end,
            "an intact copy is kept whole"
        );
        // The next cycle (salt-1 + 1) wrote its second frame over our third one.
        let (_, next) = cycle(2, &[false, true]);
        bytes[32 + 2 * frame..32 + 3 * frame].copy_from_slice(&next[32 + frame..32 + 2 * frame]);
        std::fs::write(&path, &bytes).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        assert_eq!(
            committed_end(&file, header, start, header.checksum(), end).expect("read"),
            HEADER_LEN + 2 * u64::try_from(frame).expect("fits"),
            "the copy ends at the last commit before the overwritten frame"
        );
    }

    #[test]
    fn a_copy_through_memory_appends_and_shows_the_committed_frames_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = dir.path().join("db-wal");
        let shadow = dir.path().join("00000000.wal");
        let frame = 24 + 512;
        // Two commits, then a frame of a transaction still open.
        let (_, bytes) = cycle(1, &[false, true, true, false]);
        std::fs::write(&wal, &bytes).expect("write wal");
        std::fs::write(&shadow, &bytes[..32]).expect("write shadow");
        let mut cache = ScanCache::default();
        let mut seen = Vec::new();
        let copied = copy_to_shadow_with(&wal, &shadow, &mut cache, &mut |start, data| {
            seen.push((start, data.to_vec()));
        })
        .expect("copy");
        let committed = 32 + 3 * frame;
        assert_eq!(copied.new_size, u64::try_from(committed).expect("fits"));
        assert_eq!(copied.appended, u64::try_from(3 * frame).expect("fits"));
        assert_eq!(std::fs::read(&shadow).expect("read"), &bytes[..committed]);
        assert_eq!(seen, vec![(HEADER_LEN, bytes[32..committed].to_vec())]);

        // The open transaction commits: only its frames are appended next time.
        let (_, bytes) = cycle(1, &[false, true, true, false, true]);
        std::fs::write(&wal, &bytes).expect("write wal");
        seen.clear();
        let copied = copy_to_shadow_with(&wal, &shadow, &mut cache, &mut |start, data| {
            seen.push((start, data.to_vec()));
        })
        .expect("copy");
        assert_eq!(copied.new_size, u64::try_from(bytes.len()).expect("fits"));
        assert_eq!(std::fs::read(&shadow).expect("read"), bytes);
        let from = u64::try_from(committed).expect("fits");
        assert_eq!(seen, vec![(from, bytes[committed..].to_vec())]);

        // A frame that breaks the checksum chain is not copied.
        let mut broken = bytes.clone();
        let (_, more) = cycle(1, &[false, true, true, false, true, true]);
        broken.extend_from_slice(&more[bytes.len()..]);
        let last = broken.len() - 1;
        broken[last] ^= 0xff;
        std::fs::write(&wal, &broken).expect("write wal");
        let copied = copy_to_shadow(&wal, &shadow, &mut cache).expect("copy");
        assert_eq!(copied.appended, 0);
        assert_eq!(std::fs::read(&shadow).expect("read"), bytes);
    }
}
