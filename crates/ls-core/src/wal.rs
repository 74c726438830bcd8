//! SQLite's WAL file format as Litestream relies on it (spec 3): the 32-byte WAL header, the
//! 24-byte frame headers and a streaming frame reader that checks salts and the checksum chain.
//!
//! [`WalReader`] has two modes. [`WalReader::next_frame`] is strict (restore): the first frame
//! that is partial, has foreign salts, page number 0 or a wrong checksum is an error naming its
//! frame number and byte offset. [`WalReader::next_valid_frame`] follows SQLite's own WAL
//! recovery and Litestream's copy rule (spec 3.5): such a frame ends the WAL silently, and
//! [`WalReader::last_commit`] says where the committed part ends. Errors carry no path: the
//! caller knows which file or segment it read and wraps [`WalError`] with it.
//!
//! This module only reads and checks bytes: which WAL file to read and what to do with the
//! frames belongs to the engine (`ls-replica`).

use std::fmt;
use std::io::{self, Read};

use crate::checksum::{ByteOrder, wal_checksum};

/// Size of the WAL header in bytes.
pub const WAL_HEADER_SIZE: usize = 32;

/// Size of a frame header in bytes; the page follows it.
pub const WAL_FRAME_HEADER_SIZE: usize = 24;

/// WAL header magic whose checksum words are little-endian.
pub const WAL_MAGIC_LE: u32 = 0x377f_0682;

/// WAL header magic whose checksum words are big-endian.
pub const WAL_MAGIC_BE: u32 = 0x377f_0683;

/// The only WAL format version SQLite writes and accepts (3.7.0).
pub const WAL_VERSION: u32 = 3_007_000;

/// `WAL_HEADER_SIZE` as a byte offset.
const HEADER_SIZE_U64: u64 = 32;

/// The 32-byte header at the start of a WAL file (spec 3.1). All fields are big-endian on disk.
///
/// [`WalHeader::parse`] accepts only a header SQLite itself would accept: known magic, a
/// matching header checksum, version 3007000 and a page size that is a power of two from 512
/// to 65536 (stored as the real value: unlike the database header, 65536 is not written as 1).
/// The fields are public so that tests can build headers; [`WalHeader::new`] computes the
/// checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalHeader {
    /// Byte order of the checksum words, from the magic number.
    pub byte_order: ByteOrder,
    /// File format version; always [`WAL_VERSION`] in a parsed header.
    pub version: u32,
    /// Database page size in bytes.
    pub page_size: u32,
    /// Checkpoint sequence number.
    pub checkpoint_seq: u32,
    /// Salt-1: changes at every WAL restart; every valid frame repeats it.
    pub salt1: u32,
    /// Salt-2: random at every WAL restart; every valid frame repeats it.
    pub salt2: u32,
    /// First checksum word over header bytes 0..24.
    pub checksum1: u32,
    /// Second checksum word over header bytes 0..24.
    pub checksum2: u32,
}

/// The 24-byte header before each page in a WAL (spec 3.2). All fields are big-endian on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalFrameHeader {
    /// Page number this frame holds (1-based; 0 never occurs in a valid frame).
    pub pgno: u32,
    /// For a commit frame, the database size in pages after the commit; 0 for other frames.
    pub db_size_pages: u32,
    /// Must equal the WAL header's salt-1.
    pub salt1: u32,
    /// Must equal the WAL header's salt-2.
    pub salt2: u32,
    /// First word of the cumulative checksum up to and including this frame.
    pub checksum1: u32,
    /// Second word of the cumulative checksum up to and including this frame.
    pub checksum2: u32,
}

/// A frame read by [`WalReader`]: its header, page and place in the WAL file.
///
/// It borrows the reader's single frame buffer, so it lives until the next read.
#[derive(Clone, Copy)]
pub struct WalFrame<'a> {
    header: WalFrameHeader,
    bytes: &'a [u8],
    offset: u64,
    frame_no: u64,
}

/// Where the committed part of the frames read so far ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalCommit {
    /// Byte offset just past the last commit frame read (where the next transaction starts).
    pub offset: u64,
    /// The checksum chain after that commit frame, to resume reading from `offset`.
    pub checksum: (u32, u32),
    /// Database size in pages after that commit.
    pub db_size_pages: u32,
}

/// Why a [`WalReader`] returned no more frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WalStop {
    /// The input ended on a frame boundary.
    End,
    /// The input ended inside a frame of which `len` bytes were present.
    PartialFrame {
        /// Bytes of the frame present.
        len: usize,
    },
    /// The frame's salts differ from the header's (a frame of an earlier WAL cycle).
    SaltMismatch,
    /// The frame's checksum does not continue the chain.
    ChecksumMismatch,
    /// The frame names page 0, which SQLite never writes.
    InvalidPageNumber,
}

/// Reads the frames of one WAL cycle from any [`Read`], checking them on the way, with one
/// frame buffer for the whole stream.
///
/// Wrap files in a `BufReader`: the reader asks for one frame per call. To read a WAL stored as
/// several pieces (Litestream's WAL segments of one index) give each next piece to
/// [`WalReader::continue_with`], or start from a known position with [`WalReader::resume`].
pub struct WalReader<R> {
    inner: R,
    header: WalHeader,
    /// One frame: header and page.
    buf: Vec<u8>,
    /// Byte offset of the next frame in the WAL file.
    offset: u64,
    /// Offset given to `new` or `resume`: where this reader's chain of frames starts.
    start_offset: u64,
    /// Checksum chain after the last accepted frame.
    checksum: (u32, u32),
    last_commit: Option<WalCommit>,
    stop: Option<WalStop>,
    /// Set after an invalid frame: the reader then returns no more frames.
    done: bool,
}

/// An invalid WAL header or frame, or a read error, with the frame number and byte offset at
/// fault. The caller adds the path or segment name it was reading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Reading the header failed.
    #[error("cannot read wal header")]
    ReadHeader {
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The input ended inside the header.
    #[error("wal header is truncated: {len} of 32 bytes")]
    ShortHeader {
        /// Bytes present.
        len: usize,
    },
    /// The magic number is neither [`WAL_MAGIC_LE`] nor [`WAL_MAGIC_BE`].
    #[error("invalid wal header magic: {magic:#010x}")]
    Magic {
        /// The magic number found.
        magic: u32,
    },
    /// The header checksum does not match its first 24 bytes.
    #[error(
        "invalid wal header checksum: stored ({:#010x},{:#010x}) != computed ({:#010x},{:#010x})",
        stored.0, stored.1, computed.0, computed.1
    )]
    HeaderChecksum {
        /// Checksum stored in the header.
        stored: (u32, u32),
        /// Checksum computed over header bytes 0..24.
        computed: (u32, u32),
    },
    /// The format version is not [`WAL_VERSION`].
    #[error("unsupported wal format version {version} (want 3007000)")]
    Version {
        /// The version found.
        version: u32,
    },
    /// The page size is not a power of two from 512 to 65536.
    #[error("invalid wal page size {page_size}")]
    PageSize {
        /// The page size found, in bytes.
        page_size: u32,
    },
    /// A resume offset is not the start of a frame.
    #[error("wal offset {offset} is not on a frame boundary for page size {page_size}")]
    UnalignedOffset {
        /// The offset asked for.
        offset: u64,
        /// The WAL's page size in bytes.
        page_size: u32,
    },
    /// Reading a frame failed.
    #[error("cannot read wal frame {frame_no} at offset {offset}")]
    Read {
        /// 1-based frame number in the WAL file.
        frame_no: u64,
        /// Byte offset of the frame in the WAL file.
        offset: u64,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The input ended inside a frame.
    #[error("wal frame {frame_no} at offset {offset} is truncated: {len} of {frame_size} bytes")]
    ShortFrame {
        /// 1-based frame number in the WAL file.
        frame_no: u64,
        /// Byte offset of the frame in the WAL file.
        offset: u64,
        /// Bytes present.
        len: usize,
        /// Bytes a frame has.
        frame_size: usize,
    },
    /// The frame's salts differ from the header's.
    #[error("salt mismatch in wal frame {frame_no} at offset {offset}")]
    Salt {
        /// 1-based frame number in the WAL file.
        frame_no: u64,
        /// Byte offset of the frame in the WAL file.
        offset: u64,
    },
    /// The frame's checksum does not continue the chain.
    #[error("checksum mismatch in wal frame {frame_no} at offset {offset}")]
    Checksum {
        /// 1-based frame number in the WAL file.
        frame_no: u64,
        /// Byte offset of the frame in the WAL file.
        offset: u64,
    },
    /// The frame names page 0.
    #[error("invalid page number 0 in wal frame {frame_no} at offset {offset}")]
    PageNumber {
        /// 1-based frame number in the WAL file.
        frame_no: u64,
        /// Byte offset of the frame in the WAL file.
        offset: u64,
    },
}

/// The frame-aligned prefix of a WAL of `size` bytes (spec 3.4): 0 below the header size, else
/// the header plus the whole frames that fit.
pub fn frame_align(size: u64, page_size: u32) -> u64 {
    if size < HEADER_SIZE_U64 {
        return 0;
    }
    let frame_size = frame_size_u64(page_size);
    HEADER_SIZE_U64 + (size - HEADER_SIZE_U64) / frame_size * frame_size
}

/// Byte size of a WAL with `n_frames` frames: `32 + (24 + page_size) * n_frames` (spec 3.4),
/// saturating at `u64::MAX`.
pub fn wal_size(page_size: u32, n_frames: u64) -> u64 {
    frame_size_u64(page_size)
        .saturating_mul(n_frames)
        .saturating_add(HEADER_SIZE_U64)
}

impl WalHeader {
    /// A header for a new WAL cycle, with its checksum computed.
    pub fn new(
        byte_order: ByteOrder,
        page_size: u32,
        checkpoint_seq: u32,
        salt1: u32,
        salt2: u32,
    ) -> Self {
        let mut header = Self {
            byte_order,
            version: WAL_VERSION,
            page_size,
            checkpoint_seq,
            salt1,
            salt2,
            checksum1: 0,
            checksum2: 0,
        };
        let bytes = header.to_bytes();
        (header.checksum1, header.checksum2) = wal_checksum(byte_order, 0, 0, &bytes[..24]);
        header
    }

    /// Parses and checks the first 32 bytes of `bytes` (the rest, such as frames, is ignored).
    ///
    /// # Errors
    /// [`WalError::ShortHeader`] for fewer than 32 bytes; [`WalError::Magic`],
    /// [`WalError::HeaderChecksum`], [`WalError::Version`] or [`WalError::PageSize`] for a
    /// header SQLite would not accept, checked in that order.
    pub fn parse(bytes: &[u8]) -> Result<Self, WalError> {
        let Some((bytes, _)) = bytes.split_first_chunk::<WAL_HEADER_SIZE>() else {
            return Err(WalError::ShortHeader { len: bytes.len() });
        };
        let word = |at: usize| be_u32(bytes, at);
        let magic = word(0);
        let byte_order = match magic {
            WAL_MAGIC_LE => ByteOrder::LittleEndian,
            WAL_MAGIC_BE => ByteOrder::BigEndian,
            _ => return Err(WalError::Magic { magic }),
        };
        let header = Self {
            byte_order,
            version: word(4),
            page_size: word(8),
            checkpoint_seq: word(12),
            salt1: word(16),
            salt2: word(20),
            checksum1: word(24),
            checksum2: word(28),
        };
        let computed = wal_checksum(byte_order, 0, 0, &bytes[..24]);
        if computed != header.checksum() {
            return Err(WalError::HeaderChecksum {
                stored: header.checksum(),
                computed,
            });
        }
        header.validate()?;
        Ok(header)
    }

    /// The 32 header bytes, fields as they are (the checksum is not recomputed).
    pub fn to_bytes(&self) -> [u8; WAL_HEADER_SIZE] {
        let mut out = [0u8; WAL_HEADER_SIZE];
        let words = [
            self.magic(),
            self.version,
            self.page_size,
            self.checkpoint_seq,
            self.salt1,
            self.salt2,
            self.checksum1,
            self.checksum2,
        ];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The magic number: [`WAL_MAGIC_LE`] or [`WAL_MAGIC_BE`] by [`WalHeader::byte_order`].
    pub fn magic(&self) -> u32 {
        match self.byte_order {
            ByteOrder::LittleEndian => WAL_MAGIC_LE,
            ByteOrder::BigEndian => WAL_MAGIC_BE,
        }
    }

    /// The header checksum `(checksum1, checksum2)`, where the frame checksum chain starts.
    pub fn checksum(&self) -> (u32, u32) {
        (self.checksum1, self.checksum2)
    }

    /// Size of one frame (header and page) in bytes.
    pub fn frame_size(&self) -> u64 {
        frame_size_u64(self.page_size)
    }

    /// Checks version and page size (not the checksum).
    fn validate(&self) -> Result<(), WalError> {
        if self.version != WAL_VERSION {
            return Err(WalError::Version {
                version: self.version,
            });
        }
        if !self.page_size.is_power_of_two() || !(512..=65536).contains(&self.page_size) {
            return Err(WalError::PageSize {
                page_size: self.page_size,
            });
        }
        Ok(())
    }
}

impl WalFrameHeader {
    /// Parses a frame header; any 24 bytes parse, validity depends on the WAL around it.
    pub fn parse(bytes: &[u8; WAL_FRAME_HEADER_SIZE]) -> Self {
        let word = |at: usize| be_u32(bytes, at);
        Self {
            pgno: word(0),
            db_size_pages: word(4),
            salt1: word(8),
            salt2: word(12),
            checksum1: word(16),
            checksum2: word(20),
        }
    }

    /// The 24 header bytes.
    pub fn to_bytes(&self) -> [u8; WAL_FRAME_HEADER_SIZE] {
        let mut out = [0u8; WAL_FRAME_HEADER_SIZE];
        let words = [
            self.pgno,
            self.db_size_pages,
            self.salt1,
            self.salt2,
            self.checksum1,
            self.checksum2,
        ];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Whether this frame commits a transaction (its database size is not 0).
    pub fn is_commit(&self) -> bool {
        self.db_size_pages != 0
    }

    /// The stored checksum `(checksum1, checksum2)`.
    pub fn checksum(&self) -> (u32, u32) {
        (self.checksum1, self.checksum2)
    }
}

impl<'a> WalFrame<'a> {
    /// The parsed frame header.
    pub fn header(&self) -> &WalFrameHeader {
        &self.header
    }

    /// The page: `page_size` bytes.
    pub fn page(&self) -> &'a [u8] {
        self.bytes.get(WAL_FRAME_HEADER_SIZE..).unwrap_or_default()
    }

    /// The whole frame as stored: 24 header bytes, then the page.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Byte offset of the frame in the WAL file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// 1-based frame number in the WAL file, as SQLite counts frames.
    pub fn frame_no(&self) -> u64 {
        self.frame_no
    }
}

impl fmt::Debug for WalFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalFrame")
            .field("frame_no", &self.frame_no)
            .field("offset", &self.offset)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for WalStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::End => f.write_str("end of wal"),
            Self::PartialFrame { len } => write!(f, "partial frame of {len} bytes"),
            Self::SaltMismatch => f.write_str("salt mismatch"),
            Self::ChecksumMismatch => f.write_str("checksum mismatch"),
            Self::InvalidPageNumber => f.write_str("invalid page number 0"),
        }
    }
}

impl<R: Read> WalReader<R> {
    /// Reads and checks the WAL header from the start of `inner`; frames follow from offset 32.
    ///
    /// # Errors
    /// [`WalError::ReadHeader`] on a read error, otherwise as [`WalHeader::parse`].
    pub fn new(mut inner: R) -> Result<Self, WalError> {
        let mut bytes = [0u8; WAL_HEADER_SIZE];
        let len =
            read_full(&mut inner, &mut bytes).map_err(|source| WalError::ReadHeader { source })?;
        let header = WalHeader::parse(bytes.get(..len).unwrap_or_default())?;
        Ok(Self::with_position(
            inner,
            header,
            HEADER_SIZE_U64,
            header.checksum(),
        ))
    }

    /// Continues reading a WAL whose `header` is known from `offset`, where `inner` is
    /// positioned, with the checksum chain `last_checksum` (the header's checksum at offset 32,
    /// else the checksum fields of the frame that ends at `offset`).
    ///
    /// # Errors
    /// [`WalError::Version`] or [`WalError::PageSize`] for a header that could not have been
    /// parsed; [`WalError::UnalignedOffset`] when `offset` is not the start of a frame.
    pub fn resume(
        inner: R,
        header: WalHeader,
        offset: u64,
        last_checksum: (u32, u32),
    ) -> Result<Self, WalError> {
        header.validate()?;
        if offset < HEADER_SIZE_U64 || frame_align(offset, header.page_size) != offset {
            return Err(WalError::UnalignedOffset {
                offset,
                page_size: header.page_size,
            });
        }
        Ok(Self::with_position(inner, header, offset, last_checksum))
    }

    /// Reads the next frame, strictly: the frame must be whole, carry the header's salts and a
    /// non-zero page number, and continue the checksum chain.
    ///
    /// Returns `Ok(None)` when the input ends on a frame boundary (and after an error). Frames
    /// after the last commit frame belong to a transaction not committed yet: check
    /// [`WalReader::ends_on_commit`] at the end before trusting them.
    ///
    /// # Errors
    /// [`WalError::Read`], [`WalError::ShortFrame`], [`WalError::Salt`],
    /// [`WalError::PageNumber`] or [`WalError::Checksum`], naming the frame and its offset.
    pub fn next_frame(&mut self) -> Result<Option<WalFrame<'_>>, WalError> {
        let offset = self.offset;
        let frame_no = self.frame_no(offset);
        match self.read_frame()? {
            None => Ok(Some(self.current_frame(offset, frame_no))),
            Some(WalStop::End) => Ok(None),
            Some(WalStop::PartialFrame { len }) => Err(WalError::ShortFrame {
                frame_no,
                offset,
                len,
                frame_size: self.buf.len(),
            }),
            Some(WalStop::SaltMismatch) => Err(WalError::Salt { frame_no, offset }),
            Some(WalStop::ChecksumMismatch) => Err(WalError::Checksum { frame_no, offset }),
            Some(WalStop::InvalidPageNumber) => Err(WalError::PageNumber { frame_no, offset }),
        }
    }

    /// Reads the next frame as SQLite's WAL recovery does: a partial frame, foreign salts, page
    /// number 0 or a checksum that does not continue the chain ends the WAL without an error
    /// ([`WalReader::stop`] says which). Only read errors are errors.
    ///
    /// Frames after [`WalReader::last_commit`] are not committed and must not be used yet:
    /// Litestream's copy rule (spec 3.5) keeps the frames up to the last commit frame.
    ///
    /// # Errors
    /// [`WalError::Read`] when the underlying reader fails.
    pub fn next_valid_frame(&mut self) -> Result<Option<WalFrame<'_>>, WalError> {
        let offset = self.offset;
        let frame_no = self.frame_no(offset);
        match self.read_frame()? {
            None => Ok(Some(self.current_frame(offset, frame_no))),
            Some(_) => Ok(None),
        }
    }

    /// Continues the same WAL from another reader positioned at [`WalReader::offset`], such as
    /// the next WAL segment of the same index; keeps the checksum chain and the frame buffer.
    pub fn continue_with<S: Read>(self, inner: S) -> WalReader<S> {
        WalReader {
            inner,
            header: self.header,
            buf: self.buf,
            offset: self.offset,
            start_offset: self.start_offset,
            checksum: self.checksum,
            last_commit: self.last_commit,
            stop: None,
            done: false,
        }
    }

    fn with_position(inner: R, header: WalHeader, offset: u64, checksum: (u32, u32)) -> Self {
        let frame_size = WAL_FRAME_HEADER_SIZE
            + usize::try_from(header.page_size).expect("a checked page size is at most 65536");
        Self {
            inner,
            header,
            buf: vec![0; frame_size],
            offset,
            start_offset: offset,
            checksum,
            last_commit: None,
            stop: None,
            done: false,
        }
    }

    /// Reads and checks one frame into `buf`: `None` when it is valid, else why not.
    fn read_frame(&mut self) -> Result<Option<WalStop>, WalError> {
        if self.done {
            // After an invalid frame: no more frames, and `stop` keeps the reason.
            return Ok(Some(WalStop::End));
        }
        let offset = self.offset;
        let len = read_full(&mut self.inner, &mut self.buf).map_err(|source| WalError::Read {
            frame_no: self.frame_no(offset),
            offset,
            source,
        })?;
        let stop = if len == 0 {
            Some(WalStop::End)
        } else if len < self.buf.len() {
            Some(WalStop::PartialFrame { len })
        } else {
            self.check_frame()
        };
        self.stop = stop;
        if let Some(stop) = stop {
            // An invalid frame ends the WAL for good; a clean end may be followed by more data
            // (a WAL still being written), so reading again is allowed.
            self.done = stop != WalStop::End;
            return Ok(Some(stop));
        }
        self.offset += self.header.frame_size();
        Ok(None)
    }

    /// Checks the whole frame in `buf` and advances the chain when it is valid.
    fn check_frame(&mut self) -> Option<WalStop> {
        let frame_header = self.buffered_frame_header();
        if (frame_header.salt1, frame_header.salt2) != (self.header.salt1, self.header.salt2) {
            return Some(WalStop::SaltMismatch);
        }
        if frame_header.pgno == 0 {
            return Some(WalStop::InvalidPageNumber);
        }
        let (s0, s1) = self.checksum;
        let order = self.header.byte_order;
        let (s0, s1) = wal_checksum(order, s0, s1, self.buf.get(..8).unwrap_or_default());
        let checksum = wal_checksum(
            order,
            s0,
            s1,
            self.buf.get(WAL_FRAME_HEADER_SIZE..).unwrap_or_default(),
        );
        if checksum != frame_header.checksum() {
            return Some(WalStop::ChecksumMismatch);
        }
        self.checksum = checksum;
        if frame_header.is_commit() {
            self.last_commit = Some(WalCommit {
                offset: self.offset + self.header.frame_size(),
                checksum,
                db_size_pages: frame_header.db_size_pages,
            });
        }
        None
    }

    fn buffered_frame_header(&self) -> WalFrameHeader {
        let bytes = self
            .buf
            .first_chunk::<WAL_FRAME_HEADER_SIZE>()
            .expect("the frame buffer holds a header and a page");
        WalFrameHeader::parse(bytes)
    }

    fn current_frame(&self, offset: u64, frame_no: u64) -> WalFrame<'_> {
        WalFrame {
            header: self.buffered_frame_header(),
            bytes: &self.buf,
            offset,
            frame_no,
        }
    }
}

impl<R> WalReader<R> {
    /// The WAL header.
    pub fn header(&self) -> &WalHeader {
        &self.header
    }

    /// Byte offset of the next frame: the end of the frames accepted so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The checksum chain after the last frame accepted.
    pub fn checksum(&self) -> (u32, u32) {
        self.checksum
    }

    /// The last commit frame accepted since [`WalReader::new`] or [`WalReader::resume`], if
    /// any: the committed part of what was read ends at its `offset`.
    pub fn last_commit(&self) -> Option<WalCommit> {
        self.last_commit
    }

    /// Whether every frame accepted so far belongs to a committed transaction: no frame was
    /// read after the last commit frame (true before the first frame).
    pub fn ends_on_commit(&self) -> bool {
        match self.last_commit {
            Some(commit) => commit.offset == self.offset,
            None => self.offset == self.start_offset,
        }
    }

    /// Why the last read returned no frame, or `None` while frames keep coming.
    pub fn stop(&self) -> Option<WalStop> {
        self.stop
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn frame_no(&self, offset: u64) -> u64 {
        (offset.saturating_sub(HEADER_SIZE_U64)) / self.header.frame_size() + 1
    }
}

impl<R> fmt::Debug for WalReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalReader")
            .field("header", &self.header)
            .field("offset", &self.offset)
            .field("checksum", &self.checksum)
            .field("last_commit", &self.last_commit)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

fn frame_size_u64(page_size: u32) -> u64 {
    24 + u64::from(page_size)
}

/// The big-endian word at `at` of a fixed-size header.
fn be_u32<const N: usize>(bytes: &[u8; N], at: usize) -> u32 {
    let word = bytes
        .get(at..at + 4)
        .and_then(|word| <[u8; 4]>::try_from(word).ok())
        .expect("header fields lie inside the header");
    u32::from_be_bytes(word)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Spec Appendix D.1: the header of a real shadow WAL and the frame header after it.
    const D1_HEADER: &str = "377f0682002de2180000100000000001 93fafb1371a0374ce9e2fda6ef0275bc";
    const D1_FRAME_HEADER: &str = "000000030000003a93fafb1371a0374c2d3e21480a7e7817";

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// One frame of a generated WAL.
    #[derive(Clone, Debug, PartialEq)]
    struct GenFrame {
        pgno: u32,
        db_size_pages: u32,
        page: Vec<u8>,
    }

    /// A WAL file with correct checksums: `header` then `frames`.
    fn build_wal(header: &WalHeader, frames: &[GenFrame]) -> Vec<u8> {
        let mut out = header.to_bytes().to_vec();
        let mut checksum = header.checksum();
        for frame in frames {
            let mut frame_header = WalFrameHeader {
                pgno: frame.pgno,
                db_size_pages: frame.db_size_pages,
                salt1: header.salt1,
                salt2: header.salt2,
                checksum1: 0,
                checksum2: 0,
            };
            let bytes = frame_header.to_bytes();
            let (s0, s1) = wal_checksum(header.byte_order, checksum.0, checksum.1, &bytes[..8]);
            checksum = wal_checksum(header.byte_order, s0, s1, &frame.page);
            (frame_header.checksum1, frame_header.checksum2) = checksum;
            out.extend_from_slice(&frame_header.to_bytes());
            out.extend_from_slice(&frame.page);
        }
        out
    }

    /// A page of `page_size` pseudo-random bytes from `seed` (xorshift: fast in debug builds).
    fn page(page_size: u32, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..page_size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    fn arb_wal() -> impl Strategy<Value = (WalHeader, Vec<GenFrame>)> {
        let header = (
            prop_oneof![Just(ByteOrder::LittleEndian), Just(ByteOrder::BigEndian)],
            prop_oneof![Just(512u32), Just(1024), Just(4096)],
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        );
        header.prop_flat_map(|(order, page_size, seq, salt1, salt2)| {
            let header = WalHeader::new(order, page_size, seq, salt1, salt2);
            let frame = (
                1u32..200,
                prop::bool::weighted(0.3),
                1u32..500,
                any::<u64>(),
            )
                .prop_map(move |(pgno, commit, db_size, seed)| GenFrame {
                    pgno,
                    db_size_pages: if commit { db_size } else { 0 },
                    page: page(page_size, seed),
                });
            (Just(header), prop::collection::vec(frame, 0..8))
        })
    }

    /// Reads every frame strictly; the frames read and the final result.
    fn read_strict(bytes: &[u8]) -> (Vec<GenFrame>, Result<(), WalError>) {
        let mut frames = Vec::new();
        let mut reader = match WalReader::new(bytes) {
            Ok(reader) => reader,
            Err(err) => return (frames, Err(err)),
        };
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => frames.push(GenFrame {
                    pgno: frame.header().pgno,
                    db_size_pages: frame.header().db_size_pages,
                    page: frame.page().to_vec(),
                }),
                Ok(None) => return (frames, Ok(())),
                Err(err) => return (frames, Err(err)),
            }
        }
    }

    /// Reads in recovery mode; the committed frames, or `None` when the header is invalid.
    fn read_recovery(bytes: &[u8]) -> Option<Vec<GenFrame>> {
        let mut reader = WalReader::new(bytes).ok()?;
        let mut frames = Vec::new();
        let mut committed = 0;
        while let Some(frame) = reader.next_valid_frame().unwrap() {
            frames.push(GenFrame {
                pgno: frame.header().pgno,
                db_size_pages: frame.header().db_size_pages,
                page: frame.page().to_vec(),
            });
            if frame.header().is_commit() {
                committed = frames.len();
            }
        }
        let end = reader.last_commit().map_or(32, |commit| commit.offset);
        assert_eq!(
            end,
            wal_size(reader.header().page_size, u64::try_from(committed).unwrap())
        );
        frames.truncate(committed);
        Some(frames)
    }

    fn committed_prefix(frames: &[GenFrame]) -> &[GenFrame] {
        let end = frames
            .iter()
            .rposition(|f| f.db_size_pages != 0)
            .map_or(0, |i| i + 1);
        &frames[..end]
    }

    #[test]
    fn wal_header_parse_spec_d1_vector() {
        let header = WalHeader::parse(&hex(D1_HEADER)).unwrap();
        assert_eq!(header.byte_order, ByteOrder::LittleEndian);
        assert_eq!(header.version, 3_007_000);
        assert_eq!(header.page_size, 4096);
        assert_eq!(header.checkpoint_seq, 1);
        assert_eq!((header.salt1, header.salt2), (0x93fa_fb13, 0x71a0_374c));
        assert_eq!(header.checksum(), (0xe9e2_fda6, 0xef02_75bc));
        assert_eq!(header.to_bytes().to_vec(), hex(D1_HEADER));
        assert_eq!(
            WalHeader::new(ByteOrder::LittleEndian, 4096, 1, 0x93fa_fb13, 0x71a0_374c),
            header
        );
    }

    #[test]
    fn wal_frame_header_parse_spec_d1_vector() {
        let bytes: [u8; 24] = hex(D1_FRAME_HEADER).try_into().unwrap();
        let frame = WalFrameHeader::parse(&bytes);
        assert_eq!(frame.pgno, 3);
        assert_eq!(frame.db_size_pages, 58);
        assert!(frame.is_commit());
        assert_eq!((frame.salt1, frame.salt2), (0x93fa_fb13, 0x71a0_374c));
        assert_eq!(frame.checksum(), (0x2d3e_2148, 0x0a7e_7817));
        assert_eq!(frame.to_bytes(), bytes);
    }

    #[test]
    fn wal_header_parse_bad_magic_fails() {
        let mut bytes = hex(D1_HEADER);
        bytes[3] = 0x84;
        let err = WalHeader::parse(&bytes).unwrap_err();
        assert!(
            matches!(err, WalError::Magic { magic: 0x377f_0684 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "invalid wal header magic: 0x377f0684");
    }

    #[test]
    fn wal_header_parse_short_input_fails() {
        let bytes = hex(D1_HEADER);
        assert!(matches!(
            WalHeader::parse(&bytes[..31]),
            Err(WalError::ShortHeader { len: 31 })
        ));
    }

    #[test]
    fn wal_header_parse_bad_checksum_fails() {
        let mut bytes = hex(D1_HEADER);
        bytes[31] ^= 1;
        assert!(matches!(
            WalHeader::parse(&bytes),
            Err(WalError::HeaderChecksum { .. })
        ));
    }

    #[test]
    fn wal_header_parse_bad_page_size_and_version_fail() {
        for page_size in [0, 256, 1000, 131_072] {
            let bytes = WalHeader::new(ByteOrder::BigEndian, page_size, 0, 1, 2).to_bytes();
            assert!(matches!(
                WalHeader::parse(&bytes),
                Err(WalError::PageSize { .. })
            ));
        }
        let mut header = WalHeader::new(ByteOrder::BigEndian, 4096, 0, 1, 2);
        header.version = 3_007_001;
        let bytes = header.to_bytes();
        let (c1, c2) = wal_checksum(ByteOrder::BigEndian, 0, 0, &bytes[..24]);
        (header.checksum1, header.checksum2) = (c1, c2);
        assert!(matches!(
            WalHeader::parse(&header.to_bytes()),
            Err(WalError::Version { version: 3_007_001 })
        ));
    }

    #[test]
    fn wal_header_parse_page_size_65536_is_stored_as_is() {
        let bytes = WalHeader::new(ByteOrder::LittleEndian, 65536, 0, 1, 2).to_bytes();
        assert_eq!(&bytes[8..12], &[0, 1, 0, 0]);
        assert_eq!(WalHeader::parse(&bytes).unwrap().page_size, 65536);
    }

    #[test]
    fn frame_align_and_wal_size_match_spec() {
        assert_eq!(wal_size(4096, 0), 32);
        assert_eq!(wal_size(4096, 4), 16_512);
        assert_eq!(wal_size(4096, 1000), 4_120_032);
        assert_eq!(wal_size(4096, 500_000), 2_060_000_032);
        assert_eq!(wal_size(65536, u64::MAX), u64::MAX);
        assert_eq!(frame_align(0, 4096), 0);
        assert_eq!(frame_align(31, 4096), 0);
        assert_eq!(frame_align(32, 4096), 32);
        assert_eq!(frame_align(4151, 4096), 32);
        assert_eq!(frame_align(4152, 4096), 4152);
        assert_eq!(frame_align(16_600, 4096), 16_512);
        assert_eq!(frame_align(0x438, 1024), 0x438);
    }

    #[test]
    fn wal_reader_generated_wal_reads_back() {
        let header = WalHeader::new(ByteOrder::BigEndian, 512, 7, 11, 13);
        let frames = vec![
            GenFrame {
                pgno: 1,
                db_size_pages: 0,
                page: page(512, 1),
            },
            GenFrame {
                pgno: 2,
                db_size_pages: 2,
                page: page(512, 2),
            },
            GenFrame {
                pgno: 3,
                db_size_pages: 0,
                page: page(512, 3),
            },
        ];
        let bytes = build_wal(&header, &frames);
        let mut reader = WalReader::new(bytes.as_slice()).unwrap();
        let first = reader.next_frame().unwrap().unwrap();
        assert_eq!((first.frame_no(), first.offset()), (1, 32));
        assert_eq!(first.bytes().len(), 536);
        let second = reader.next_frame().unwrap().unwrap();
        assert_eq!((second.frame_no(), second.offset()), (2, 568));
        assert!(reader.ends_on_commit());
        let commit = reader.last_commit().unwrap();
        assert_eq!((commit.offset, commit.db_size_pages), (1104, 2));
        assert_eq!(commit.checksum, reader.checksum());
        reader.next_frame().unwrap().unwrap();
        assert!(!reader.ends_on_commit());
        assert!(reader.next_frame().unwrap().is_none());
        assert_eq!(reader.stop(), Some(WalStop::End));
        assert_eq!(reader.offset(), 1640);
    }

    #[test]
    fn wal_reader_resume_and_continue_with_chain_checksums() {
        let header = WalHeader::new(ByteOrder::LittleEndian, 1024, 0, 5, 6);
        let frames: Vec<GenFrame> = (1..=6)
            .map(|i| GenFrame {
                pgno: i,
                db_size_pages: i % 2 * i,
                page: page(1024, i.into()),
            })
            .collect();
        let bytes = build_wal(&header, &frames);
        let split = usize::try_from(wal_size(1024, 2)).unwrap();
        let mut first = WalReader::new(&bytes[..split]).unwrap();
        while first.next_frame().unwrap().is_some() {}
        let (offset, checksum) = (first.offset(), first.checksum());
        assert_eq!(offset, wal_size(1024, 2));

        let mut resumed = WalReader::resume(&bytes[split..], header, offset, checksum).unwrap();
        assert!(resumed.ends_on_commit());
        let mut n = 0;
        while let Some(frame) = resumed.next_frame().unwrap() {
            assert_eq!(frame.frame_no(), 3 + n);
            n += 1;
        }
        assert_eq!(n, 4);

        let mid = split + 1048;
        let mut continued = first.continue_with(&bytes[split..mid]);
        assert!(continued.next_frame().unwrap().is_some());
        assert!(continued.next_frame().unwrap().is_none());
        let mut continued = continued.continue_with(&bytes[mid..]);
        let mut n = 0;
        while continued.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(continued.offset(), wal_size(1024, 6));
    }

    #[test]
    fn wal_reader_resume_wrong_checksum_fails_at_first_frame() {
        let header = WalHeader::new(ByteOrder::LittleEndian, 512, 0, 5, 6);
        let frames = vec![GenFrame {
            pgno: 1,
            db_size_pages: 1,
            page: page(512, 9),
        }];
        let bytes = build_wal(&header, &frames);
        let mut reader = WalReader::resume(&bytes[32..], header, 32, (1, 2)).unwrap();
        let err = reader.next_frame().unwrap_err();
        assert_eq!(
            err.to_string(),
            "checksum mismatch in wal frame 1 at offset 32"
        );
        assert!(reader.next_frame().unwrap().is_none());
    }

    #[test]
    fn wal_reader_resume_unaligned_offset_fails() {
        let header = WalHeader::new(ByteOrder::LittleEndian, 4096, 0, 5, 6);
        for offset in [0, 31, 33, 4151] {
            assert!(matches!(
                WalReader::resume(&[][..], header, offset, (0, 0)),
                Err(WalError::UnalignedOffset { .. })
            ));
        }
        assert!(WalReader::resume(&[][..], header, 4152, (0, 0)).is_ok());
    }

    #[test]
    fn wal_reader_partial_frame_strict_fails_recovery_stops() {
        let header = WalHeader::new(ByteOrder::BigEndian, 512, 0, 5, 6);
        let frames = vec![
            GenFrame {
                pgno: 1,
                db_size_pages: 1,
                page: page(512, 1),
            },
            GenFrame {
                pgno: 1,
                db_size_pages: 1,
                page: page(512, 2),
            },
        ];
        let bytes = build_wal(&header, &frames);
        let cut = &bytes[..bytes.len() - 1];
        let (read, result) = read_strict(cut);
        assert_eq!(read, frames[..1]);
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "wal frame 2 at offset 568 is truncated: 535 of 536 bytes"
        );

        let mut reader = WalReader::new(cut).unwrap();
        assert!(reader.next_valid_frame().unwrap().is_some());
        assert!(reader.next_valid_frame().unwrap().is_none());
        assert_eq!(reader.stop(), Some(WalStop::PartialFrame { len: 535 }));
        assert_eq!(reader.last_commit().unwrap().offset, 568);
    }

    #[test]
    fn wal_reader_old_salt_frame_ends_recovery() {
        let old = WalHeader::new(ByteOrder::BigEndian, 512, 0, 5, 6);
        let new = WalHeader::new(ByteOrder::BigEndian, 512, 1, 6, 7);
        let frames = vec![
            GenFrame {
                pgno: 1,
                db_size_pages: 1,
                page: page(512, 1),
            },
            GenFrame {
                pgno: 2,
                db_size_pages: 2,
                page: page(512, 2),
            },
        ];
        // A restarted WAL: the new header and first frame over the old cycle's second frame.
        let mut bytes = build_wal(&old, &frames);
        let fresh = build_wal(&new, &frames[..1]);
        bytes[..fresh.len()].copy_from_slice(&fresh);
        assert_eq!(read_recovery(&bytes).unwrap(), frames[..1]);
        let (_, result) = read_strict(&bytes);
        assert!(matches!(
            result,
            Err(WalError::Salt {
                frame_no: 2,
                offset: 568
            })
        ));
    }

    #[test]
    fn wal_reader_page_zero_is_invalid() {
        let header = WalHeader::new(ByteOrder::BigEndian, 512, 0, 5, 6);
        let frames = vec![GenFrame {
            pgno: 0,
            db_size_pages: 1,
            page: page(512, 1),
        }];
        let bytes = build_wal(&header, &frames);
        assert_eq!(read_recovery(&bytes).unwrap(), []);
        assert!(matches!(
            read_strict(&bytes).1,
            Err(WalError::PageNumber { .. })
        ));
    }

    #[test]
    fn wal_reader_read_error_names_frame() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let header = WalHeader::new(ByteOrder::BigEndian, 512, 0, 5, 6);
        let mut reader = WalReader::resume(Failing, header, 32 + 536 * 2, (0, 0)).unwrap();
        let err = reader.next_valid_frame().unwrap_err();
        assert_eq!(err.to_string(), "cannot read wal frame 3 at offset 1104");
        assert!(matches!(
            WalReader::new(Failing),
            Err(WalError::ReadHeader { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn wal_reader_generated_wal_reads_back_exactly((header, frames) in arb_wal()) {
            let bytes = build_wal(&header, &frames);
            let (read, result) = read_strict(&bytes);
            prop_assert!(result.is_ok());
            prop_assert_eq!(&read, &frames);
            prop_assert_eq!(read_recovery(&bytes).unwrap(), committed_prefix(&frames));
        }

        #[test]
        fn wal_reader_single_byte_corruption_is_caught(
            (header, frames) in arb_wal(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut bytes = build_wal(&header, &frames);
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            // The frame the corrupted byte belongs to (0 for the header).
            let frame_size = usize::try_from(header.frame_size()).unwrap();
            let bad_frame = if at < 32 { 0 } else { (at - 32) / frame_size + 1 };

            let (read, result) = read_strict(&bytes);
            prop_assert!(result.is_err(), "corruption at byte {} not detected", at);
            prop_assert_eq!(&read[..], &frames[..bad_frame.saturating_sub(1)]);

            match read_recovery(&bytes) {
                None => prop_assert_eq!(bad_frame, 0),
                Some(kept) => {
                    prop_assert!(bad_frame > 0);
                    let before = committed_prefix(&frames[..bad_frame - 1]);
                    prop_assert_eq!(&kept[..], before);
                }
            }
        }

        #[test]
        fn wal_reader_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let _ = read_strict(&bytes);
            let _ = read_recovery(&bytes);
            let _ = WalHeader::parse(&bytes);
        }

        #[test]
        fn wal_checksum_arbitrary_lengths_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = wal_checksum(ByteOrder::LittleEndian, 1, 2, &bytes);
        }
    }
}
