//! The bytes a snapshot stores: the database file with the pages of the shadow WAL's frames up
//! to the snapshot's position laid over it (ARCHITECTURE.md, I7).
//!
//! The raw file of a WAL-mode database is not always a state the database had. A checkpoint
//! that a reader holds back (`mxSafeFrame` below the WAL's end) copies a page only when its
//! latest frame is at or before that mark; a page also changed after the mark keeps its old
//! version, while the pages around it move on. SQLite's readers never look at such a file
//! alone, but a snapshot restored without segments would (0.3.13 stores the raw file).
//!
//! Every frame a checkpoint copied into the file belongs to the WAL cycle of the snapshot's
//! index and comes at or before its position (the snapshot's read transaction bounds them, I8),
//! and the cycle before was checkpointed whole before the WAL restarted. So the file with the
//! latest version, up to the position, of each page those frames hold, cut to the commit's
//! page count, is exactly the database at that position, whatever checkpoints write during the
//! copy: every page they write is one of those laid over.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use ls_core::{WAL_FRAME_HEADER_SIZE, WalFrameHeader};

use crate::shadow::HEADER_LEN;

/// Bytes of the image produced at a time (at least one page).
const CHUNK: u64 = 256 * 1024;

/// A `Read` of the database as it was at the end of a shadow WAL's first `end` bytes.
pub(crate) struct DbImage {
    db: Arc<File>,
    /// The shadow WAL and, per page number, the offset of its latest page image up to `end`;
    /// `None` when the shadow holds no frame (the file is then the whole state).
    overlay: Option<(File, HashMap<u32, u64>)>,
    page_size: u64,
    /// Bytes to produce: the commit's page count times the page size (unbounded for a raw file).
    len: Option<u64>,
    /// Next byte to produce.
    offset: u64,
    /// Pages being produced, starting at byte `chunk_start` of the image.
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl DbImage {
    /// The image of the database at byte `end` of the shadow WAL at `shadow_path` (a commit
    /// boundary), over the database file `db`.
    pub(crate) fn open(
        db: Arc<File>,
        shadow_path: &Path,
        end: u64,
        page_size: u32,
    ) -> io::Result<Self> {
        let page = u64::from(page_size);
        let mut image = Self {
            db,
            overlay: None,
            page_size: page,
            len: None,
            offset: 0,
            chunk: Vec::new(),
            chunk_start: 0,
        };
        if end <= HEADER_LEN {
            return Ok(image);
        }
        let frame = u64::try_from(WAL_FRAME_HEADER_SIZE).unwrap_or(24) + page;
        let frames = (end - HEADER_LEN) / frame;
        if page == 0 || !(end - HEADER_LEN).is_multiple_of(frame) {
            return Err(invalid(shadow_path, end, "is not a frame boundary"));
        }
        let shadow = File::open(shadow_path)?;
        let mut latest = HashMap::new();
        let mut pages = 0;
        let mut header = [0u8; WAL_FRAME_HEADER_SIZE];
        for n in 0..frames {
            let at = HEADER_LEN + n * frame;
            shadow.read_exact_at(&mut header, at)?;
            let parsed = WalFrameHeader::parse(&header);
            if parsed.pgno == 0 {
                return Err(invalid(shadow_path, at, "holds a frame of page 0"));
            }
            latest.insert(parsed.pgno, at + frame - page);
            pages = parsed.db_size_pages;
        }
        if pages == 0 {
            return Err(invalid(shadow_path, end, "does not end on a commit"));
        }
        image.overlay = Some((shadow, latest));
        image.len = Some(u64::from(pages) * page);
        Ok(image)
    }

    /// Fills `chunk` with the pages from the one holding `offset`.
    fn fill(&mut self, len: u64) -> io::Result<()> {
        let first = self.offset / self.page_size;
        let start = first * self.page_size;
        let end = len.min(start + CHUNK.max(self.page_size));
        let size = usize::try_from(end - start).map_err(io::Error::other)?;
        self.chunk.clear();
        self.chunk.resize(size, 0);
        // The file may end before the image does (pages only the WAL holds): zeros there,
        // which the overlay replaces.
        let mut filled = 0;
        while let Some(rest) = self.chunk.get_mut(filled..).filter(|rest| !rest.is_empty()) {
            let n = self.db.read_at(rest, start + wide(filled))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if let Some((shadow, latest)) = &self.overlay {
            let page = usize::try_from(self.page_size).map_err(io::Error::other)?;
            for (n, slot) in self.chunk.chunks_exact_mut(page).enumerate() {
                let page_no = u32::try_from(first + wide(n) + 1).map_err(io::Error::other)?;
                if let Some(at) = latest.get(&page_no) {
                    shadow.read_exact_at(slot, *at)?;
                }
            }
        }
        self.chunk_start = start;
        Ok(())
    }
}

impl Read for DbImage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(len) = self.len else {
            // No frame: the file as it is.
            let n = self.db.read_at(buf, self.offset)?;
            self.offset += wide(n);
            return Ok(n);
        };
        if self.offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let chunk_end = self.chunk_start + wide(self.chunk.len());
        if self.offset < self.chunk_start || self.offset >= chunk_end {
            self.fill(len)?;
        }
        let from = usize::try_from(self.offset - self.chunk_start).map_err(io::Error::other)?;
        let available = self.chunk.get(from..).unwrap_or_default();
        let n = buf.len().min(available.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(available.get(..n).unwrap_or_default());
        self.offset += wide(n);
        Ok(n)
    }
}

fn invalid(path: &Path, at: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("shadow wal {} at byte {at} {what}", path.display()),
    )
}

/// A length as `u64` (lossless on every supported target).
fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
