//! Fuzzes the replica path parsers: whatever parses formats back to the same name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ls_core::{Generation, layout};

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(index) = layout::parse_snapshot_name(name) {
            assert_eq!(layout::snapshot_name(index), name);
        }
        if let Some((index, offset)) = layout::parse_wal_segment_name(name) {
            assert_eq!(layout::wal_segment_name(index, offset), name);
        }
        if let Ok(generation) = Generation::parse(name) {
            assert_eq!(generation.as_str(), name);
        }
    }
});
