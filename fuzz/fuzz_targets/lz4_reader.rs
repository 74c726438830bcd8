//! Fuzzes `Lz4Reader`: any input decodes or fails cleanly, in bounded memory.

#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use ls_core::Lz4Reader;

fuzz_target!(|data: &[u8]| {
    let mut reader = Lz4Reader::new(data);
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
});
