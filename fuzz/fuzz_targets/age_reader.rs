//! Fuzzes `AgeIdentities::decrypt` and `AgeReader`. The key is the one in the file named by
//! `$LS_FUZZ_AGE_IDENTITY` (`cargo xtask fuzz` points it at the age fixture's key, so seeds
//! from that replica decrypt and mutations reach the payload), else one made for this run.

#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use age::secrecy::ExposeSecret;
use libfuzzer_sys::fuzz_target;
use ls_core::AgeIdentities;

fn identities() -> &'static AgeIdentities {
    static IDENTITIES: OnceLock<AgeIdentities> = OnceLock::new();
    IDENTITIES.get_or_init(|| {
        let from_file = std::env::var_os("LS_FUZZ_AGE_IDENTITY")
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| AgeIdentities::parse(&text).ok());
        from_file.unwrap_or_else(|| {
            let key = age::x25519::Identity::generate().to_string();
            AgeIdentities::parse(key.expose_secret()).expect("a generated key parses")
        })
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = identities().decrypt(data) {
        let _ = reader.read_to_end(&mut Vec::new());
    }
});
