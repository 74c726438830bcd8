//! The replica path layout of Litestream 0.3.13, identical for every backend.
//!
//! ```text
//! generations/<generation>/snapshots/<index %08x>.snapshot.lz4
//! generations/<generation>/wal/<index %08x>_<offset %08x>.wal.lz4
//! ```
//!
//! Paths here are relative to the replica root and use `/`; a backend joins them onto its root.
//! Parsers return `None` for any name that is not one of ours (temp files, foreign files,
//! Litestream 0.3.0-0.3.4's whole-WAL names), so listings skip such names and never fail on them.

use crate::pos::{Generation, Pos};

/// The folder that holds every generation.
pub const GENERATIONS_DIR: &str = "generations";

/// `generations/<generation>`.
pub fn generation_dir(generation: &Generation) -> String {
    format!("{GENERATIONS_DIR}/{generation}")
}

/// `generations/<generation>/snapshots`.
pub fn snapshots_dir(generation: &Generation) -> String {
    format!("{GENERATIONS_DIR}/{generation}/snapshots")
}

/// `generations/<generation>/wal`.
pub fn wal_dir(generation: &Generation) -> String {
    format!("{GENERATIONS_DIR}/{generation}/wal")
}

/// `generations/<generation>/snapshots/<index %08x>.snapshot.lz4`.
pub fn snapshot_path(generation: &Generation, index: u32) -> String {
    format!("{}/{}", snapshots_dir(generation), snapshot_name(index))
}

/// `generations/<generation>/wal/<index %08x>_<offset %08x>.wal.lz4`.
pub fn wal_segment_path(pos: &Pos) -> String {
    format!(
        "{}/{}",
        wal_dir(&pos.generation),
        wal_segment_name(pos.index, pos.offset)
    )
}

/// `<index %08x>.snapshot.lz4`.
pub fn snapshot_name(index: u32) -> String {
    format!("{index:08x}.snapshot.lz4")
}

/// `<index %08x>_<offset %08x>.wal.lz4`.
pub fn wal_segment_name(index: u32, offset: u64) -> String {
    format!("{index:08x}_{offset:08x}.wal.lz4")
}

/// The index of a snapshot file name (`^([0-9a-f]{8})\.snapshot\.lz4$`), or `None` when the name
/// is not a snapshot's.
pub fn parse_snapshot_name(name: &str) -> Option<u32> {
    let index = name.strip_suffix(".snapshot.lz4")?;
    parse_hex8(index)
}

/// The `(index, offset)` of a WAL segment file name
/// (`^([0-9a-f]{8})_([0-9a-f]{8})\.wal\.lz4$`), or `None` when the name is not a segment's.
pub fn parse_wal_segment_name(name: &str) -> Option<(u32, u64)> {
    let stem = name.strip_suffix(".wal.lz4")?;
    let (index, offset) = stem.split_once('_')?;
    Some((parse_hex8(index)?, u64::from(parse_hex8(offset)?)))
}

/// Exactly 8 lowercase hex digits, as Litestream's name regexes demand.
fn parse_hex8(text: &str) -> Option<u32> {
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_match_litestream_examples() {
        let generation = Generation::parse("249c268eb6efdc47").unwrap();
        assert_eq!(
            snapshot_path(&generation, 3),
            "generations/249c268eb6efdc47/snapshots/00000003.snapshot.lz4"
        );
        assert_eq!(
            wal_segment_path(&Pos::new(generation, 2, 32992)),
            "generations/249c268eb6efdc47/wal/00000002_000080e0.wal.lz4"
        );
    }

    #[test]
    fn parsers_skip_foreign_names() {
        assert_eq!(parse_snapshot_name("00000003.snapshot.lz4"), Some(3));
        assert_eq!(parse_snapshot_name("00000003.snapshot.lz4.tmp"), None);
        assert_eq!(parse_snapshot_name("0000003.snapshot.lz4"), None);
        assert_eq!(parse_snapshot_name("0000000A.snapshot.lz4"), None);
        assert_eq!(parse_snapshot_name("+0000003.snapshot.lz4"), None);
        assert_eq!(
            parse_wal_segment_name("00000002_000080e0.wal.lz4"),
            Some((2, 0x80e0))
        );
        assert_eq!(parse_wal_segment_name("00000002.wal.lz4"), None);
        assert_eq!(
            parse_wal_segment_name("00000002_000080e0.wal.lz4.tmp"),
            None
        );
        assert_eq!(parse_wal_segment_name("../../../etc_passwd.wal.lz4"), None);
        assert_eq!(parse_wal_segment_name("00000002_-00080e0.wal.lz4"), None);
        assert_eq!(parse_wal_segment_name("README"), None);
    }

    proptest! {
        #[test]
        fn snapshot_name_round_trips(index in any::<u32>()) {
            prop_assert_eq!(parse_snapshot_name(&snapshot_name(index)), Some(index));
        }

        #[test]
        fn wal_segment_name_round_trips(index in any::<u32>(), offset in any::<u32>()) {
            let offset = u64::from(offset);
            prop_assert_eq!(parse_wal_segment_name(&wal_segment_name(index, offset)), Some((index, offset)));
        }

        #[test]
        fn parsers_never_panic(name in "\\PC{0,40}") {
            let _ = parse_snapshot_name(&name);
            let _ = parse_wal_segment_name(&name);
        }
    }
}
