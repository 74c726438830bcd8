//! LZ4 frames as Litestream 0.3.13 writes and reads them (spec 7.2): every snapshot and WAL
//! segment is exactly one LZ4 frame.
//!
//! [`Lz4Writer`] emits v0.3.13's frame with smaller blocks: independent blocks of up to 256 KiB
//! (v0.3.13: 4 MiB), a content checksum, no block checksums, no content size (FLG `0x64`, BD
//! `0x50`; v0.3.13 writes BD `0x70` and reads any block size, spec 7.2). LZ4 matches reach back only
//! 64 KiB, so smaller blocks cost next to nothing in size and a sixteenth of the buffers
//! held while compressing a snapshot. Block compression is
//! lz4_flex's. [`Lz4Reader`] decodes the frame itself (blocks through lz4_flex) so that it can
//! accept any standard frame (linked or independent blocks, any block size, optional content
//! size and checksums, legacy frames, leading skippable frames) while rejecting what lz4_flex's
//! own decoder lets through: empty input and frames cut off at a block boundary. Like v0.3.13
//! it reads the first frame only and ignores what follows. Memory stays bounded by the frame's
//! maximum block size (4 MiB; 8 MiB for legacy frames) whatever the input size.
//!
//! Encryption, storage and naming are other modules' business.

use std::hash::Hasher as _;
use std::io::{self, Read, Write};

use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
use twox_hash::XxHash32;

/// Magic number of an LZ4 frame (`04 22 4D 18` on disk).
const FRAME_MAGIC: u32 = 0x184D_2204;
/// Magic number of a legacy LZ4 frame.
const LEGACY_MAGIC: u32 = 0x184C_2102;
/// Skippable frames use the 16 magic numbers `0x184D2A50..=0x184D2A5F`.
const SKIPPABLE_MAGIC_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
/// Decoded size of every legacy block but the last.
const LEGACY_BLOCK_SIZE: usize = 8 << 20;
/// Largest compressed legacy block: `LZ4_compressBound(8 MiB)`.
const LEGACY_MAX_COMPRESSED: usize = LEGACY_BLOCK_SIZE + LEGACY_BLOCK_SIZE / 255 + 16;
/// How far back a linked block may copy from.
const WINDOW_SIZE: usize = 64 * 1024;

/// Writes one LZ4 frame as Litestream 0.3.13 does, with 256 KiB blocks: FLG `0x64`, BD `0x50`.
///
/// Call [`Lz4Writer::finish`]: without it the frame has no end mark and readers reject it.
/// Input is buffered up to one 256 KiB block.
pub struct Lz4Writer<W: Write> {
    encoder: FrameEncoder<W>,
}

/// Reads the first LZ4 frame of a stream (see the module docs for what it accepts).
///
/// Decoding errors are `io::Error`s of kind `InvalidData` (or `UnexpectedEof` for truncated
/// input) wrapping an [`Lz4Error`]; errors of the underlying reader pass through unchanged.
pub struct Lz4Reader<R: Read> {
    inner: R,
    state: State,
    /// Input bytes consumed so far, for error messages.
    offset: u64,
    /// Largest decoded block of the frame.
    block_max: usize,
    linked: bool,
    block_checksums: bool,
    content_checksum: bool,
    content_size: Option<u64>,
    /// The compressed block being decoded.
    src: Vec<u8>,
    /// The decoded block; `out[out_pos..]` is not read yet.
    out: Vec<u8>,
    out_pos: usize,
    /// Linked blocks: the last (up to) 64 KiB of output before the current block.
    window: Vec<u8>,
    hasher: XxHash32,
    content_len: u64,
}

/// Why an LZ4 frame cannot be decoded (or, rarely, encoded).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Lz4Error {
    /// The input has no bytes at all.
    #[error("not an lz4 frame: the input is empty")]
    Empty,
    /// The input does not start with an LZ4 frame magic number.
    #[error("not an lz4 frame (bad magic {magic:#010x})")]
    BadMagic {
        /// The first four bytes, little-endian.
        magic: u32,
    },
    /// The input ends before the frame does.
    #[error("lz4 frame is truncated at offset {offset}")]
    Truncated {
        /// Input bytes present.
        offset: u64,
    },
    /// Unknown version, reserved bits set or an unknown block size.
    #[error("unsupported lz4 frame descriptor (FLG {flg:#04x}, BD {bd:#04x})")]
    Descriptor {
        /// The FLG byte.
        flg: u8,
        /// The BD byte.
        bd: u8,
    },
    /// The frame descriptor's checksum byte is wrong.
    #[error(
        "lz4 frame descriptor checksum mismatch: stored {stored:#04x}, computed {computed:#04x}"
    )]
    DescriptorChecksum {
        /// Checksum byte in the frame.
        stored: u8,
        /// Checksum byte computed from the descriptor.
        computed: u8,
    },
    /// The frame needs a dictionary, which Litestream never uses.
    #[error("lz4 frames that need a dictionary are not supported")]
    Dictionary,
    /// A block is larger than the frame's maximum block size.
    #[error("lz4 block at offset {offset} has {size} bytes, above the frame's maximum of {max}")]
    BlockTooBig {
        /// Input offset of the block's size word.
        offset: u64,
        /// Size the block claims.
        size: usize,
        /// The frame's maximum.
        max: usize,
    },
    /// A block's checksum is wrong.
    #[error("lz4 block checksum mismatch at offset {offset}")]
    BlockChecksum {
        /// Input offset of the block's size word.
        offset: u64,
    },
    /// A block's compressed data is invalid.
    #[error("cannot decompress lz4 block at offset {offset}")]
    Block {
        /// Input offset of the block's size word.
        offset: u64,
        /// lz4_flex's reason.
        #[source]
        source: lz4_flex::block::DecompressError,
    },
    /// The decoded content does not match the frame's content checksum.
    #[error("lz4 content checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ContentChecksum {
        /// Checksum in the frame.
        stored: u32,
        /// Checksum of the decoded content.
        computed: u32,
    },
    /// The decoded content does not have the size the frame header declares.
    #[error(
        "lz4 content size mismatch: the header says {expected} bytes, the frame holds {actual}"
    )]
    ContentSize {
        /// Size in the frame header.
        expected: u64,
        /// Decoded size.
        actual: u64,
    },
    /// A read after an earlier decoding error.
    #[error("lz4 frame already failed to decode")]
    Failed,
    /// Reading the compressed input failed ([`decompress`] only; [`Lz4Reader`] passes read
    /// errors through).
    #[error("cannot read lz4 input")]
    Read {
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// lz4_flex failed to encode a block.
    #[error("cannot encode lz4 frame")]
    Encode {
        /// lz4_flex's reason.
        #[source]
        source: lz4_flex::frame::Error,
    },
}

/// Compresses `data` into one LZ4 frame as [`Lz4Writer`] writes it.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut writer = Lz4Writer::new(Vec::with_capacity(data.len() / 2 + 64));
    writer
        .write_all(data)
        .expect("compressing into a Vec only fails on allocation failure, which aborts");
    writer
        .finish()
        .expect("finishing a frame without a content size into a Vec cannot fail")
}

/// Decodes the first LZ4 frame of `data`.
///
/// # Errors
/// The [`Lz4Error`] describing the first problem met.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, Lz4Error> {
    let mut out = Vec::new();
    Lz4Reader::new(data)
        .read_to_end(&mut out)
        .map_err(Lz4Error::from_io)?;
    Ok(out)
}

impl<W: Write> Lz4Writer<W> {
    /// Starts a frame over `inner`; nothing is written before the first block or `finish`.
    pub fn new(inner: W) -> Self {
        let frame_info = FrameInfo::new()
            .block_size(BlockSize::Max256KB)
            .block_mode(BlockMode::Independent)
            .block_checksums(false)
            .content_checksum(true)
            .content_size(None);
        Self {
            encoder: FrameEncoder::with_frame_info(frame_info, inner),
        }
    }

    /// Writes the last block, the end mark and the content checksum, flushes the underlying
    /// writer and returns it.
    ///
    /// # Errors
    /// Errors of the underlying writer; an [`Lz4Error::Encode`] (as `io::Error`) if lz4_flex
    /// fails.
    pub fn finish(self) -> io::Result<W> {
        let mut inner = self.encoder.finish().map_err(|err| match err {
            lz4_flex::frame::Error::IoError(err) => err,
            other => io::Error::other(Lz4Error::Encode { source: other }),
        })?;
        inner.flush()?;
        Ok(inner)
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        self.encoder.get_ref()
    }
}

impl<W: Write> Write for Lz4Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }

    /// Emits the buffered input as a (possibly short) block and flushes the underlying writer.
    /// Frames stay valid, but flushing often makes smaller blocks and worse compression.
    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()?;
        self.encoder.get_mut().flush()
    }
}

/// Where the reader is in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the frame header.
    Start,
    /// Between blocks of a standard frame.
    Blocks,
    /// Between blocks of a legacy frame.
    Legacy,
    /// The frame is over.
    Done,
    /// A decoding error happened.
    Failed,
}

impl<R: Read> Lz4Reader<R> {
    /// A reader of the frame at the start of `inner`. Nothing is read before the first `read`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: State::Start,
            offset: 0,
            block_max: 0,
            linked: false,
            block_checksums: false,
            content_checksum: false,
            content_size: None,
            src: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            window: Vec::new(),
            hasher: XxHash32::with_seed(0),
            content_len: 0,
        }
    }

    /// The underlying reader (positioned somewhere after what was decoded).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Advances the state machine by one step: a header or a block.
    fn step(&mut self) -> Result<(), Step> {
        match self.state {
            State::Start => self.read_header(),
            State::Blocks => self.read_block(),
            State::Legacy => self.read_legacy_block(),
            State::Done => Ok(()),
            State::Failed => Err(Step::Lz4(Lz4Error::Failed)),
        }
    }

    fn read_header(&mut self) -> Result<(), Step> {
        let mut magic = [0u8; 4];
        let mut len = self.read_some(&mut magic)?;
        if len == 0 {
            return Err(Step::Lz4(Lz4Error::Empty));
        }
        loop {
            if len < magic.len() {
                return Err(self.truncated());
            }
            let value = u32::from_le_bytes(magic);
            match value {
                FRAME_MAGIC => return self.read_descriptor(),
                LEGACY_MAGIC => {
                    self.block_max = LEGACY_BLOCK_SIZE;
                    self.state = State::Legacy;
                    return Ok(());
                }
                _ if value & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC => {
                    let size = u64::from(u32::from_le_bytes(self.read_array::<4>()?));
                    let skipped = io::copy(&mut (&mut self.inner).take(size), &mut io::sink())?;
                    self.offset += skipped;
                    if skipped < size {
                        return Err(self.truncated());
                    }
                    len = self.read_some(&mut magic)?;
                }
                _ => return Err(Step::Lz4(Lz4Error::BadMagic { magic: value })),
            }
        }
    }

    fn read_descriptor(&mut self) -> Result<(), Step> {
        let [flg, bd] = self.read_array::<2>()?;
        let bad_descriptor = || Step::Lz4(Lz4Error::Descriptor { flg, bd });
        // FLG: version (2 bits, must be 01), block independence, block checksum, content
        // size, content checksum, reserved (0), dictionary id.
        if flg >> 6 != 0b01 || flg & 0b10 != 0 || bd & 0x8F != 0 {
            return Err(bad_descriptor());
        }
        self.block_max = match (bd >> 4) & 0x7 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            _ => return Err(bad_descriptor()),
        };
        self.linked = flg & 0x20 == 0;
        self.block_checksums = flg & 0x10 != 0;
        self.content_checksum = flg & 0x04 != 0;
        let has_content_size = flg & 0x08 != 0;
        let has_dictionary = flg & 0x01 != 0;

        let mut descriptor = Vec::with_capacity(14);
        descriptor.extend_from_slice(&[flg, bd]);
        if has_content_size {
            let size = self.read_array::<8>()?;
            descriptor.extend_from_slice(&size);
            self.content_size = Some(u64::from_le_bytes(size));
        }
        if has_dictionary {
            descriptor.extend_from_slice(&self.read_array::<4>()?);
        }
        let [stored] = self.read_array::<1>()?;
        let computed = XxHash32::oneshot(0, &descriptor).to_le_bytes()[1];
        if stored != computed {
            return Err(Step::Lz4(Lz4Error::DescriptorChecksum { stored, computed }));
        }
        if has_dictionary {
            return Err(Step::Lz4(Lz4Error::Dictionary));
        }
        self.state = State::Blocks;
        Ok(())
    }

    fn read_block(&mut self) -> Result<(), Step> {
        let block_offset = self.offset;
        let word = u32::from_le_bytes(self.read_array::<4>()?);
        if word == 0 {
            return self.read_end();
        }
        let stored = word & 0x8000_0000 != 0;
        let size = usize::try_from(word & 0x7FFF_FFFF).expect("31-bit sizes fit in usize");
        if size > self.block_max {
            return Err(Step::Lz4(Lz4Error::BlockTooBig {
                offset: block_offset,
                size,
                max: self.block_max,
            }));
        }
        self.fill_src(size)?;
        if self.block_checksums {
            let checksum = u32::from_le_bytes(self.read_array::<4>()?);
            if checksum != XxHash32::oneshot(0, &self.src) {
                return Err(Step::Lz4(Lz4Error::BlockChecksum {
                    offset: block_offset,
                }));
            }
        }
        if stored {
            std::mem::swap(&mut self.src, &mut self.out);
        } else {
            // LZ4 expands at most 255-fold (a match-length byte adds 255 bytes), so small
            // blocks need no full-size, zero-filled buffer.
            let bound = size.saturating_mul(255).saturating_add(64);
            self.out.resize(self.block_max.min(bound), 0);
            let decoded = if self.linked && !self.window.is_empty() {
                lz4_flex::block::decompress_into_with_dict(&self.src, &mut self.out, &self.window)
            } else {
                lz4_flex::block::decompress_into(&self.src, &mut self.out)
            }
            .map_err(|source| {
                Step::Lz4(Lz4Error::Block {
                    offset: block_offset,
                    source,
                })
            })?;
            self.out.truncate(decoded);
        }
        self.out_pos = 0;
        self.content_len += u64::try_from(self.out.len()).expect("a block is at most 4 MiB");
        if self.content_checksum {
            self.hasher.write(&self.out);
        }
        if self.linked {
            self.slide_window();
        }
        Ok(())
    }

    fn read_end(&mut self) -> Result<(), Step> {
        if let Some(expected) = self.content_size
            && expected != self.content_len
        {
            return Err(Step::Lz4(Lz4Error::ContentSize {
                expected,
                actual: self.content_len,
            }));
        }
        if self.content_checksum {
            let stored = u32::from_le_bytes(self.read_array::<4>()?);
            let computed = self.hasher.finish_32();
            if stored != computed {
                return Err(Step::Lz4(Lz4Error::ContentChecksum { stored, computed }));
            }
        }
        self.state = State::Done;
        Ok(())
    }

    fn read_legacy_block(&mut self) -> Result<(), Step> {
        let block_offset = self.offset;
        let mut word = [0u8; 4];
        match self.read_some(&mut word)? {
            // A legacy frame has no end mark: it ends with the input.
            0 => {
                self.state = State::Done;
                return Ok(());
            }
            4 => {}
            _ => return Err(self.truncated()),
        }
        let word = u32::from_le_bytes(word);
        if word == LEGACY_MAGIC {
            // The start of another legacy frame: only the first frame is read.
            self.state = State::Done;
            return Ok(());
        }
        let size = usize::try_from(word).unwrap_or(usize::MAX);
        if size > LEGACY_MAX_COMPRESSED {
            return Err(Step::Lz4(Lz4Error::BlockTooBig {
                offset: block_offset,
                size,
                max: LEGACY_MAX_COMPRESSED,
            }));
        }
        self.fill_src(size)?;
        let bound = size.saturating_mul(255).saturating_add(64);
        self.out.resize(LEGACY_BLOCK_SIZE.min(bound), 0);
        let decoded =
            lz4_flex::block::decompress_into(&self.src, &mut self.out).map_err(|source| {
                Step::Lz4(Lz4Error::Block {
                    offset: block_offset,
                    source,
                })
            })?;
        self.out.truncate(decoded);
        self.out_pos = 0;
        Ok(())
    }

    /// Keeps the last 64 KiB of output (this block included) as the next block's dictionary.
    fn slide_window(&mut self) {
        if self.out.len() >= WINDOW_SIZE {
            self.window.clear();
            self.window
                .extend_from_slice(&self.out[self.out.len() - WINDOW_SIZE..]);
        } else {
            let keep = WINDOW_SIZE - self.out.len();
            if self.window.len() > keep {
                self.window.drain(..self.window.len() - keep);
            }
            self.window.extend_from_slice(&self.out);
        }
    }

    fn truncated(&self) -> Step {
        Step::Lz4(Lz4Error::Truncated {
            offset: self.offset,
        })
    }

    /// Fills `buf` as far as the input allows; returns the bytes read.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Step> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Step::Io(err)),
            }
        }
        self.offset += u64::try_from(filled).expect("a buffer length fits in u64");
        Ok(filled)
    }

    /// Reads exactly `N` bytes or fails as truncated.
    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], Step> {
        let mut buf = [0u8; N];
        if self.read_some(&mut buf)? < N {
            return Err(self.truncated());
        }
        Ok(buf)
    }

    /// Reads the next `size` bytes into `src` or fails as truncated. The buffer grows as bytes
    /// arrive, so a block size word that lies costs no allocation.
    fn fill_src(&mut self, size: usize) -> Result<(), Step> {
        self.src.clear();
        let wanted = u64::try_from(size).expect("a block size fits in u64");
        let read = (&mut self.inner).take(wanted).read_to_end(&mut self.src)?;
        self.offset += u64::try_from(read).expect("a block size fits in u64");
        if read < size {
            return Err(self.truncated());
        }
        Ok(())
    }
}

/// An error inside the reader: from the underlying reader (passed through) or ours.
enum Step {
    Io(io::Error),
    Lz4(Lz4Error),
}

impl From<io::Error> for Step {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl Lz4Error {
    /// The `io::Error` an [`Lz4Reader`] returns for this error.
    fn into_io(self) -> io::Error {
        let kind = match self {
            Self::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }

    /// Recovers the [`Lz4Error`] inside an `io::Error` from [`Lz4Reader`], or wraps a read
    /// error.
    fn from_io(err: io::Error) -> Self {
        err.downcast::<Self>()
            .unwrap_or_else(|source| Self::Read { source })
    }
}

impl<R: Read> Read for Lz4Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(pending) = self.out.get(self.out_pos..)
                && !pending.is_empty()
            {
                let n = pending.len().min(buf.len());
                buf[..n].copy_from_slice(&pending[..n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.state == State::Done {
                return Ok(0);
            }
            if let Err(step) = self.step() {
                self.state = State::Failed;
                return Err(match step {
                    Step::Io(err) => err,
                    Step::Lz4(err) => err.into_io(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pseudo-random bytes (xorshift), fast in debug builds.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    /// Data that compresses and has matches across 64 KiB block boundaries.
    fn repetitive(len: usize) -> Vec<u8> {
        noise(10_000, 7).into_iter().cycle().take(len).collect()
    }

    fn encode_with(info: FrameInfo, data: &[u8]) -> Vec<u8> {
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn decode_err(bytes: &[u8]) -> Lz4Error {
        decompress(bytes).unwrap_err()
    }

    #[test]
    fn lz4_writer_emits_litestream_frame_header() {
        let frame = compress(b"hello, litestream");
        assert_eq!(&frame[..7], &[0x04, 0x22, 0x4D, 0x18, 0x64, 0x50, 0x08]);
        assert_eq!(&frame[frame.len() - 8..frame.len() - 4], &[0, 0, 0, 0]);
        assert_eq!(
            frame[frame.len() - 4..],
            XxHash32::oneshot(0, b"hello, litestream").to_le_bytes()
        );
        assert_eq!(decompress(&frame).unwrap(), b"hello, litestream");
    }

    #[test]
    fn lz4_writer_empty_input_writes_valid_frame() {
        let frame = compress(b"");
        assert_eq!(&frame[..7], &[0x04, 0x22, 0x4D, 0x18, 0x64, 0x50, 0x08]);
        assert_eq!(decompress(&frame).unwrap(), b"");
    }

    #[test]
    fn lz4_writer_large_input_splits_into_256_kib_blocks() {
        let data = repetitive(9 << 20);
        let frame = compress(&data);
        // The first block's size word follows the 7-byte header; at most 256 KiB decoded.
        assert_eq!(decompress(&frame).unwrap(), data);
        let mut reader = Lz4Reader::new(frame.as_slice());
        let mut first = vec![0u8; 8 << 20];
        let n = reader.read(&mut first).unwrap();
        assert_eq!(n, 256 << 10);
    }

    #[test]
    fn lz4_reader_decodes_maximally_compressed_blocks() {
        for len in [1, 19, 20, 300, 65_536, 4 << 20] {
            let zeros = vec![0u8; len];
            assert_eq!(decompress(&compress(&zeros)).unwrap(), zeros, "{len} zeros");
            let linked = FrameInfo::new().block_mode(BlockMode::Linked);
            assert_eq!(decompress(&encode_with(linked, &zeros)).unwrap(), zeros);
            let legacy = FrameInfo::new().legacy_frame(true);
            assert_eq!(decompress(&encode_with(legacy, &zeros)).unwrap(), zeros);
        }
    }

    #[test]
    fn lz4_writer_incompressible_block_is_stored() {
        let data = noise(100_000, 3);
        let frame = compress(&data);
        let word = u32::from_le_bytes(frame[7..11].try_into().unwrap());
        assert_eq!(word, 0x8000_0000 | 100_000);
        assert_eq!(decompress(&frame).unwrap(), data);
    }

    #[test]
    fn lz4_writer_flush_then_finish_round_trips() {
        let mut writer = Lz4Writer::new(Vec::new());
        writer.write_all(b"first").unwrap();
        writer.flush().unwrap();
        writer.write_all(b" second").unwrap();
        let frame = writer.finish().unwrap();
        assert_eq!(decompress(&frame).unwrap(), b"first second");
    }

    #[test]
    fn lz4_reader_accepts_standard_variants() {
        let data = repetitive(300_000);
        let variants = [
            FrameInfo::new().block_mode(BlockMode::Linked),
            FrameInfo::new()
                .block_mode(BlockMode::Linked)
                .content_checksum(true)
                .block_checksums(true),
            FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .content_size(Some(300_000)),
            FrameInfo::new()
                .block_size(BlockSize::Max256KB)
                .block_checksums(true),
            FrameInfo::new()
                .block_size(BlockSize::Max1MB)
                .content_checksum(true),
            FrameInfo::new().legacy_frame(true),
        ];
        for info in variants {
            let frame = encode_with(info.clone(), &data);
            assert_eq!(decompress(&frame).unwrap(), data, "{info:?}");
        }
    }

    #[test]
    fn lz4_reader_linked_small_blocks_use_window() {
        // Flushing after every write makes tiny linked blocks that refer to earlier ones.
        let info = FrameInfo::new()
            .block_mode(BlockMode::Linked)
            .content_checksum(true);
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        let data = repetitive(200_000);
        for chunk in data.chunks(3_000) {
            encoder.write_all(chunk).unwrap();
            encoder.flush().unwrap();
        }
        let frame = encoder.finish().unwrap();
        assert!(
            frame.len() < data.len() / 4,
            "blocks should reuse earlier ones"
        );
        assert_eq!(decompress(&frame).unwrap(), data);
    }

    #[test]
    fn lz4_reader_corrupt_content_checksum_fails() {
        let mut frame = compress(&repetitive(50_000));
        let last = frame.len() - 1;
        frame[last] ^= 0x55;
        assert!(matches!(
            decode_err(&frame),
            Lz4Error::ContentChecksum { .. }
        ));
    }

    #[test]
    fn lz4_reader_corrupt_block_checksum_fails() {
        let info = FrameInfo::new().block_checksums(true);
        let mut frame = encode_with(info, &repetitive(50_000));
        let at = frame.len() - 6;
        frame[at] ^= 1;
        assert!(matches!(
            decode_err(&frame),
            Lz4Error::BlockChecksum { offset: 7 }
        ));
    }

    #[test]
    fn lz4_reader_wrong_content_size_fails() {
        let info = FrameInfo::new().content_size(Some(10));
        let mut frame = encode_with(info, b"0123456789");
        // Rewrite the declared size to 11 and fix the descriptor checksum.
        frame[6] = 11;
        frame[14] = XxHash32::oneshot(0, &frame[4..14]).to_le_bytes()[1];
        let err = decode_err(&frame);
        assert!(
            matches!(
                err,
                Lz4Error::ContentSize {
                    expected: 11,
                    actual: 10
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn lz4_reader_bad_magic_fails_clearly() {
        let err = decode_err(b"age-encryption.org/v1\n");
        assert_eq!(err.to_string(), "not an lz4 frame (bad magic 0x2d656761)");
        assert!(matches!(decode_err(b""), Lz4Error::Empty));
    }

    #[test]
    fn lz4_reader_truncated_frame_fails_at_every_cut() {
        let info = FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .content_checksum(true);
        let frame = encode_with(info, &repetitive(140_000));
        // Every cut in the header and trailer, and a sample in between (each decode is slow
        // in debug builds).
        let len = frame.len();
        let mut block_ends = Vec::new();
        let mut at = 7;
        while at + 4 < len {
            let word = u32::from_le_bytes(frame[at..at + 4].try_into().unwrap());
            at += 4 + usize::try_from(word & 0x7FFF_FFFF).unwrap();
            block_ends.push(at);
        }
        assert!(block_ends.len() >= 3, "{block_ends:?}");
        let cuts = (1..40)
            .chain((40..len - 40).step_by(97))
            .chain(len - 40..len)
            .chain(block_ends.into_iter().filter(|&end| end < len));
        for cut in cuts {
            let err = decode_err(&frame[..cut]);
            assert!(
                matches!(err, Lz4Error::Truncated { .. }),
                "cut at {cut} gave {err:?}"
            );
        }
    }

    #[test]
    fn lz4_reader_truncated_error_is_unexpected_eof() {
        let frame = compress(b"some bytes");
        let err = Lz4Reader::new(&frame[..9])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(err.to_string(), "lz4 frame is truncated at offset 9");
    }

    #[test]
    fn lz4_reader_ignores_bytes_after_first_frame() {
        let mut bytes = compress(b"first");
        bytes.extend_from_slice(&compress(b"second"));
        bytes.extend_from_slice(b"garbage");
        assert_eq!(decompress(&bytes).unwrap(), b"first");
    }

    #[test]
    fn lz4_reader_skips_leading_skippable_frame() {
        let mut bytes = vec![0x5A, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 1, 2, 3];
        bytes.extend_from_slice(&compress(b"payload"));
        assert_eq!(decompress(&bytes).unwrap(), b"payload");
        assert!(matches!(
            decode_err(&bytes[..9]),
            Lz4Error::Truncated { .. }
        ));
    }

    #[test]
    fn lz4_reader_rejects_reserved_bits_and_dictionaries() {
        let mut frame = compress(b"x");
        frame[5] = 0x71;
        assert!(matches!(
            decode_err(&frame),
            Lz4Error::Descriptor {
                flg: 0x64,
                bd: 0x71
            }
        ));
        let mut frame = compress(b"x");
        frame[4] = 0x65;
        frame.insert(6, 0);
        frame.splice(7..7, [1, 2, 3, 4]);
        frame[10] = XxHash32::oneshot(0, &frame[4..10]).to_le_bytes()[1];
        let err = decode_err(&frame[..11]);
        assert!(matches!(err, Lz4Error::Dictionary), "{err:?}");
    }

    #[test]
    fn lz4_reader_read_after_error_keeps_failing() {
        let mut reader = Lz4Reader::new(&b"nope"[..]);
        assert!(reader.read(&mut [0; 8]).is_err());
        let err = reader.read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.to_string(), "lz4 frame already failed to decode");
    }

    #[test]
    fn lz4_reader_passes_read_errors_through() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone"))
            }
        }
        let err = Lz4Reader::new(Failing).read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn lz4_round_trip(data in prop::collection::vec(any::<u8>(), 0..20_000), repeat in 1usize..20) {
            let data: Vec<u8> = data.iter().copied().cycle().take(data.len() * repeat).collect();
            let frame = compress(&data);
            prop_assert_eq!(decompress(&frame).unwrap(), data.clone());
            // Streaming through a writer in small pieces gives the same content.
            let mut writer = Lz4Writer::new(Vec::new());
            for chunk in data.chunks(777) {
                writer.write_all(chunk).unwrap();
            }
            prop_assert_eq!(decompress(&writer.finish().unwrap()).unwrap(), data);
        }

        #[test]
        fn lz4_reader_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
            let _ = decompress(&bytes);
            let mut framed = vec![0x04, 0x22, 0x4D, 0x18, 0x64, 0x70, 0xB9];
            framed.extend_from_slice(&bytes);
            let _ = decompress(&framed);
        }

        #[test]
        fn lz4_reader_corruption_never_yields_wrong_content(
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let data = repetitive(150_000);
            let mut frame = compress(&data);
            let at = at.index(frame.len());
            frame[at] ^= flip;
            // Every byte is covered by the descriptor or content checksum, a block size or the
            // end mark: a corrupted frame never decodes to other content.
            if let Ok(decoded) = decompress(&frame) {
                prop_assert_eq!(decoded, data);
            }
        }
    }
}
