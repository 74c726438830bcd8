//! age encryption as Litestream 0.3.13 applies it (spec 7.3): binary age v1 (no armor) with
//! native X25519 keys, around the LZ4 frame of every snapshot and WAL segment.
//!
//! Keys come from the `age.identities` and `age.recipients` lists of a replica's config; each
//! element is a whole "key file" text, parsed like filippo.io/age's `ParseIdentities` and
//! `ParseRecipients`. Secret keys never appear in errors or `Debug` output. Reading the config
//! and deciding when to encrypt are ls-cli's and ls-replica's business.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::str::FromStr;

use age::x25519;

/// X25519 identities (secret keys) that decrypt objects.
///
/// `Debug` shows how many keys there are, never the keys.
#[derive(Clone, Default)]
pub struct AgeIdentities {
    keys: Vec<x25519::Identity>,
}

/// X25519 recipients (public keys) that objects are encrypted to, one stanza each.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AgeRecipients {
    keys: Vec<x25519::Recipient>,
}

/// Encrypts what is written to it into an age file over `W`.
///
/// Call [`AgeWriter::finish`]: without it the last chunk is missing and decryption fails.
pub struct AgeWriter<W: Write> {
    inner: age::stream::StreamWriter<W>,
}

/// Decrypts an age file from `R`, checking each 64 KiB chunk's tag as it goes.
///
/// Read errors of kind `InvalidData` mean a chunk failed authentication (a corrupt or
/// truncated object).
pub struct AgeReader<R: Read> {
    inner: age::stream::StreamReader<BufReader<R>>,
}

/// Why keys cannot be parsed or an object cannot be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptionError {
    /// A line of an identities text is not an X25519 secret key. The line is not quoted: it
    /// may hold a secret.
    #[error("malformed identity at line {line}")]
    Identity {
        /// 1-based line number in the text.
        line: usize,
    },
    /// An identities text holds no key.
    #[error("no identities found")]
    NoIdentities,
    /// A line of a recipients text is not an X25519 public key (Litestream's text).
    #[error("malformed recipient at line {line}")]
    Recipient {
        /// 1-based line number in the text.
        line: usize,
    },
    /// A recipients text holds no key, or there is no recipient to encrypt to.
    #[error("no recipients found")]
    NoRecipients,
    /// Writing the age header failed.
    #[error("cannot write age header")]
    WriteHeader {
        /// The write error.
        #[source]
        source: io::Error,
    },
    /// Reading the age header failed.
    #[error("cannot read age header")]
    ReadHeader {
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The object does not start with a valid age v1 header.
    #[error("not an age-encrypted object (invalid or unknown age header)")]
    NotAge,
    /// None of the identities can decrypt the object.
    #[error("no identity matches the age object's recipients")]
    NoMatchingIdentity,
    /// Any other decryption failure reported by the age library.
    #[error("cannot decrypt age object")]
    Decrypt {
        /// The age library's reason.
        #[source]
        source: age::DecryptError,
    },
}

impl AgeIdentities {
    /// Parses one identities text: X25519 secret keys (`AGE-SECRET-KEY-1...`), one per line;
    /// empty lines and lines starting with `#` are skipped, as filippo.io/age does.
    ///
    /// # Errors
    /// [`EncryptionError::Identity`] for the first bad line; [`EncryptionError::NoIdentities`]
    /// when the text holds no key.
    pub fn parse(text: &str) -> Result<Self, EncryptionError> {
        let keys = parse_key_lines(text, |line| EncryptionError::Identity { line })?;
        if keys.is_empty() {
            return Err(EncryptionError::NoIdentities);
        }
        Ok(Self { keys })
    }

    /// Adds the keys of `other` (Litestream concatenates the keys of every list element).
    pub fn extend(&mut self, other: Self) {
        self.keys.extend(other.keys);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key: then objects are read without decryption.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public keys of these identities.
    pub fn to_recipients(&self) -> AgeRecipients {
        AgeRecipients {
            keys: self.keys.iter().map(x25519::Identity::to_public).collect(),
        }
    }

    /// Reads the age header from `input` and unlocks it with one of the identities.
    ///
    /// # Errors
    /// [`EncryptionError::NotAge`] for input that is not age v1 (such as a plain LZ4 frame),
    /// [`EncryptionError::NoMatchingIdentity`] when no identity fits,
    /// [`EncryptionError::ReadHeader`] on a read error, [`EncryptionError::Decrypt`] otherwise.
    pub fn decrypt<R: Read>(&self, input: R) -> Result<AgeReader<R>, EncryptionError> {
        let decryptor =
            age::Decryptor::new_buffered(BufReader::new(input)).map_err(decrypt_error)?;
        let inner = decryptor
            .decrypt(self.keys.iter().map(|key| -> &dyn age::Identity { key }))
            .map_err(decrypt_error)?;
        Ok(AgeReader { inner })
    }
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeIdentities")
            .field("len", &self.keys.len())
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl AgeRecipients {
    /// Parses one recipients text: X25519 public keys (`age1...`), one per line; empty lines
    /// and lines starting with `#` are skipped, as filippo.io/age does.
    ///
    /// # Errors
    /// [`EncryptionError::Recipient`] for the first bad line (`malformed recipient at line N`,
    /// as Litestream says); [`EncryptionError::NoRecipients`] when the text holds no key.
    pub fn parse(text: &str) -> Result<Self, EncryptionError> {
        let keys = parse_key_lines(text, |line| EncryptionError::Recipient { line })?;
        if keys.is_empty() {
            return Err(EncryptionError::NoRecipients);
        }
        Ok(Self { keys })
    }

    /// Adds the keys of `other` (Litestream concatenates the keys of every list element).
    pub fn extend(&mut self, other: Self) {
        self.keys.extend(other.keys);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key: then objects are stored without encryption.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Starts an age file over `output`, encrypted to every recipient; writes the header now.
    ///
    /// # Errors
    /// [`EncryptionError::NoRecipients`] when there is no recipient;
    /// [`EncryptionError::WriteHeader`] when writing the header fails.
    pub fn encrypt<W: Write>(&self, output: W) -> Result<AgeWriter<W>, EncryptionError> {
        let encryptor = age::Encryptor::with_recipients(
            self.keys.iter().map(|key| -> &dyn age::Recipient { key }),
        )
        .map_err(|_| EncryptionError::NoRecipients)?;
        let inner = encryptor
            .wrap_output(output)
            .map_err(|source| EncryptionError::WriteHeader { source })?;
        Ok(AgeWriter { inner })
    }
}

impl fmt::Debug for AgeRecipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(ToString::to_string))
            .finish()
    }
}

impl<W: Write> AgeWriter<W> {
    /// Encrypts and writes the last chunk, flushes the underlying writer and returns it.
    ///
    /// # Errors
    /// Errors of the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        let mut output = self.inner.finish()?;
        output.flush()?;
        Ok(output)
    }
}

impl<W: Write> Write for AgeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> fmt::Debug for AgeWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeWriter").finish_non_exhaustive()
    }
}

impl<R: Read> Read for AgeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: Read> fmt::Debug for AgeReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeReader").finish_non_exhaustive()
    }
}

/// Parses the key lines of a key file: lines split on `\n` (a trailing `\r` dropped), empty
/// lines and `#` comments skipped, every other line one key. `bad_line` makes the error for a
/// 1-based line number; the line itself is never put in an error.
fn parse_key_lines<K: FromStr>(
    text: &str,
    bad_line: impl Fn(usize) -> EncryptionError,
) -> Result<Vec<K>, EncryptionError> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(line.parse().map_err(|_| bad_line(index + 1))?);
    }
    Ok(keys)
}

fn decrypt_error(err: age::DecryptError) -> EncryptionError {
    match err {
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            EncryptionError::NotAge
        }
        age::DecryptError::NoMatchingKeys => EncryptionError::NoMatchingIdentity,
        age::DecryptError::Io(source) => EncryptionError::ReadHeader { source },
        source => EncryptionError::Decrypt { source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use proptest::prelude::*;

    fn new_key_text() -> String {
        x25519::Identity::generate()
            .to_string()
            .expose_secret()
            .to_owned()
    }

    fn round_trip(recipients: &AgeRecipients, identities: &AgeIdentities, data: &[u8]) -> Vec<u8> {
        let mut writer = recipients.encrypt(Vec::new()).unwrap();
        writer.write_all(data).unwrap();
        let object = writer.finish().unwrap();
        assert!(object.starts_with(b"age-encryption.org/v1\n"));
        let mut out = Vec::new();
        identities
            .decrypt(object.as_slice())
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn age_parse_key_file_skips_comments_and_blank_lines() {
        let text = format!(
            "# created: now\n\n{}\r\n# another\n{}",
            new_key_text(),
            new_key_text()
        );
        let identities = AgeIdentities::parse(&text).unwrap();
        assert_eq!(identities.len(), 2);
        let recipients = identities.to_recipients();
        let listed = format!("{recipients:?}");
        let text = listed
            .trim_matches(['[', ']'])
            .replace(['"', ' '], "")
            .replace(',', "\n#\n");
        assert_eq!(AgeRecipients::parse(&text).unwrap(), recipients);
    }

    #[test]
    fn age_parse_bad_recipient_names_line() {
        let good = AgeIdentities::parse(&new_key_text())
            .unwrap()
            .to_recipients();
        let good = good.keys[0].to_string();
        let err = AgeRecipients::parse(&format!("{good}\n\nage1notakey")).unwrap_err();
        assert_eq!(err.to_string(), "malformed recipient at line 3");
        let err = AgeRecipients::parse("# nothing here\n").unwrap_err();
        assert_eq!(err.to_string(), "no recipients found");
        // Go's scanner does not trim: a leading space makes the line malformed.
        assert!(AgeRecipients::parse(&format!(" {good}")).is_err());
    }

    #[test]
    fn age_parse_bad_identity_hides_secret() {
        let key = new_key_text();
        let broken = format!("{}X", &key);
        let err = AgeIdentities::parse(&format!("{key}\n{broken}")).unwrap_err();
        assert_eq!(err.to_string(), "malformed identity at line 2");
        assert!(!format!("{err:?}").contains("AGE-SECRET"));
        assert!(matches!(
            AgeIdentities::parse(""),
            Err(EncryptionError::NoIdentities)
        ));
    }

    #[test]
    fn age_identities_debug_redacts_keys() {
        let key = new_key_text();
        let identities = AgeIdentities::parse(&key).unwrap();
        let debug = format!("{identities:?}");
        assert_eq!(debug, "AgeIdentities { len: 1, keys: \"[redacted]\" }");
        assert!(!debug.contains(&key[15..30]));
    }

    #[test]
    fn age_round_trip_with_two_recipients() {
        let first = AgeIdentities::parse(&new_key_text()).unwrap();
        let second = AgeIdentities::parse(&new_key_text()).unwrap();
        let mut recipients = first.to_recipients();
        recipients.extend(second.to_recipients());
        let data: Vec<u8> = (0..200_000u32).map(|i| i.to_le_bytes()[0] ^ 0x5a).collect();
        assert_eq!(round_trip(&recipients, &first, &data), data);
        assert_eq!(round_trip(&recipients, &second, &data), data);
        assert_eq!(round_trip(&recipients, &second, b""), b"");
    }

    #[test]
    fn age_decrypt_with_wrong_identity_fails() {
        let owner = AgeIdentities::parse(&new_key_text()).unwrap();
        let stranger = AgeIdentities::parse(&new_key_text()).unwrap();
        let mut writer = owner.to_recipients().encrypt(Vec::new()).unwrap();
        writer.write_all(b"secret rows").unwrap();
        let object = writer.finish().unwrap();
        let err = stranger.decrypt(object.as_slice()).unwrap_err();
        assert!(
            matches!(err, EncryptionError::NoMatchingIdentity),
            "{err:?}"
        );
    }

    #[test]
    fn age_decrypt_plain_lz4_is_not_age() {
        let identities = AgeIdentities::parse(&new_key_text()).unwrap();
        let frame = crate::lz4::compress(b"plain");
        let err = identities.decrypt(frame.as_slice()).unwrap_err();
        assert!(matches!(err, EncryptionError::NotAge), "{err:?}");
    }

    #[test]
    fn age_encrypt_without_recipients_fails() {
        let err = AgeRecipients::default().encrypt(Vec::new()).unwrap_err();
        assert!(matches!(err, EncryptionError::NoRecipients));
    }

    #[test]
    fn age_truncated_or_corrupt_payload_fails() {
        let identities = AgeIdentities::parse(&new_key_text()).unwrap();
        let mut writer = identities.to_recipients().encrypt(Vec::new()).unwrap();
        writer.write_all(&[7u8; 100_000]).unwrap();
        let object = writer.finish().unwrap();
        let truncated = &object[..object.len() - 100];
        let mut reader = identities.decrypt(truncated).unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
        let mut corrupt = object.clone();
        let at = corrupt.len() - 5;
        corrupt[at] ^= 1;
        let mut reader = identities.decrypt(corrupt.as_slice()).unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn age_parse_arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = AgeIdentities::parse(&text);
            let _ = AgeRecipients::parse(&text);
        }
    }
}
