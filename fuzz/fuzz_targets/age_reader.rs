//! Fuzzes `AgeIdentities::decrypt` and `AgeReader` with a key made for this run.

#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use age::secrecy::ExposeSecret;
use libfuzzer_sys::fuzz_target;
use ls_core::AgeIdentities;

fn identities() -> &'static AgeIdentities {
    static IDENTITIES: OnceLock<AgeIdentities> = OnceLock::new();
    IDENTITIES.get_or_init(|| {
        let key = age::x25519::Identity::generate().to_string();
        AgeIdentities::parse(key.expose_secret()).expect("a generated key parses")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = identities().decrypt(data) {
        let _ = reader.read_to_end(&mut Vec::new());
    }
});
