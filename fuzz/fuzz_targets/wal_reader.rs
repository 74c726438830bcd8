//! Fuzzes `WalReader` in both modes: no panic, and never more frames than the input holds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ls_core::WalReader;

fuzz_target!(|data: &[u8]| {
    let limit = data.len() / 536 + 2;
    if let Ok(mut reader) = WalReader::new(data) {
        let mut n = 0;
        while let Ok(Some(_)) = reader.next_frame() {
            n += 1;
            assert!(n <= limit, "more frames than bytes allow");
        }
    }
    if let Ok(mut reader) = WalReader::new(data) {
        let mut n = 0;
        while let Ok(Some(frame)) = reader.next_valid_frame() {
            assert_eq!(frame.bytes().len(), 24 + frame.page().len());
            n += 1;
            assert!(n <= limit, "more frames than bytes allow");
        }
        assert!(
            reader
                .last_commit()
                .is_none_or(|commit| commit.offset <= reader.offset())
        );
    }
});
