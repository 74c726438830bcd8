//! SQLite's WAL checksum (spec 3.3): a running pair of 32-bit sums over 8-byte units.
//!
//! The byte order of the units follows the WAL header's magic; the WAL layout itself (headers,
//! frames, the checksum chain) lives in `wal.rs`.

/// The byte order in which a WAL's checksum words are read, chosen by its header magic:
/// `0x377f0682` means little-endian, `0x377f0683` big-endian (SQLite's `nativeCksum`).
///
/// Header fields themselves are always big-endian; only checksum input words follow this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Checksum words are little-endian (magic `0x377f0682`).
    LittleEndian,
    /// Checksum words are big-endian (magic `0x377f0683`).
    BigEndian,
}

/// Continues SQLite's WAL checksum `(s0, s1)` over `data`, as `walChecksumBytes` does.
///
/// Each 8-byte unit gives two words `x0`, `x1` read in `byte_order`; then, modulo 2^32,
/// `s0 += x0 + s1; s1 += x1 + s0`. Start from `(0, 0)` for the WAL header, from the header's
/// checksum for the first frame and from the previous frame's checksum after that.
///
/// SQLite only checksums whole units (24 header bytes, 8 frame-header bytes, pages whose size
/// is a power of two): a trailing part of fewer than 8 bytes is ignored.
pub fn wal_checksum(byte_order: ByteOrder, s0: u32, s1: u32, data: &[u8]) -> (u32, u32) {
    let (mut s0, mut s1) = (s0, s1);
    match byte_order {
        ByteOrder::LittleEndian => {
            for unit in data.chunks_exact(8) {
                let (x0, x1) = split_unit(unit);
                s0 = s0.wrapping_add(u32::from_le_bytes(x0)).wrapping_add(s1);
                s1 = s1.wrapping_add(u32::from_le_bytes(x1)).wrapping_add(s0);
            }
        }
        ByteOrder::BigEndian => {
            for unit in data.chunks_exact(8) {
                let (x0, x1) = split_unit(unit);
                s0 = s0.wrapping_add(u32::from_be_bytes(x0)).wrapping_add(s1);
                s1 = s1.wrapping_add(u32::from_be_bytes(x1)).wrapping_add(s0);
            }
        }
    }
    (s0, s1)
}

/// The two 4-byte words of one 8-byte checksum unit.
fn split_unit(unit: &[u8]) -> ([u8; 4], [u8; 4]) {
    let unit: &[u8; 8] = unit
        .try_into()
        .expect("chunks_exact(8) yields 8-byte units");
    let (x0, x1) = unit.split_at(4);
    (
        x0.try_into().expect("first half of an 8-byte unit"),
        x1.try_into().expect("second half of an 8-byte unit"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec Appendix D.1: the header of a real shadow WAL.
    const D1_HEADER: [u8; 32] = [
        0x37, 0x7f, 0x06, 0x82, 0x00, 0x2d, 0xe2, 0x18, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x93, 0xfa, 0xfb, 0x13, 0x71, 0xa0, 0x37, 0x4c, 0xe9, 0xe2, 0xfd, 0xa6, 0xef, 0x02,
        0x75, 0xbc,
    ];

    #[test]
    fn wal_checksum_spec_d1_header_matches() {
        assert_eq!(
            wal_checksum(ByteOrder::LittleEndian, 0, 0, &D1_HEADER[..24]),
            (0xe9e2_fda6, 0xef02_75bc)
        );
    }

    #[test]
    fn wal_checksum_byte_orders_differ() {
        assert_ne!(
            wal_checksum(ByteOrder::BigEndian, 0, 0, &D1_HEADER[..24]),
            (0xe9e2_fda6, 0xef02_75bc)
        );
    }

    #[test]
    fn wal_checksum_chains_like_one_pass() {
        let data: Vec<u8> = (0..=255u8).collect();
        let (a0, a1) = wal_checksum(ByteOrder::BigEndian, 7, 9, &data[..64]);
        let chained = wal_checksum(ByteOrder::BigEndian, a0, a1, &data[64..]);
        assert_eq!(chained, wal_checksum(ByteOrder::BigEndian, 7, 9, &data));
    }

    #[test]
    fn wal_checksum_empty_input_returns_seed() {
        assert_eq!(wal_checksum(ByteOrder::LittleEndian, 3, 4, &[]), (3, 4));
    }
}
