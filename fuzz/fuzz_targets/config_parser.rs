//! Fuzzes `litestream.yml` loading: any text, with and without `$VAR` expansion, loads or fails
//! with an error, never a panic; duration text that parses prints back to the same duration.
//!
//! ls-cli is a binary crate, so its config modules are compiled here by path, as they sit at
//! the root of the `litestream` binary (`crate::duration`, `crate::quote`, ...).

#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/ls-cli/src/config.rs"]
mod config;
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/ls-cli/src/duration.rs"]
mod duration;
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/ls-cli/src/env_expand.rs"]
mod env_expand;
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/ls-cli/src/quote.rs"]
mod quote;

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

use crate::config::{Config, EnvExpansion};
use crate::duration::GoDuration;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = PathBuf::from("/fuzz/litestream.yml");
    for expansion in [EnvExpansion::Expand, EnvExpansion::Off] {
        if let Ok(config) = Config::from_text(path.clone(), &text, expansion) {
            // Debug walks every field, secrets and URLs included (redacted).
            let _ = format!("{config:?}");
        }
    }
    // Expansion with names as values: never longer than the input, no panic on odd `${`.
    let expanded = env_expand::expand(&text, |name| name.to_owned());
    assert!(expanded.len() <= text.len());
    if let Ok(parsed) = GoDuration::parse(&text) {
        let printed = parsed.to_string();
        assert_eq!(GoDuration::parse(&printed), Ok(parsed), "{printed:?}");
    }
});
