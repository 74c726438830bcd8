//! Generations and positions: `(generation, index, offset)` as Litestream names and prints them.

use std::fmt;
use std::str::FromStr;

/// The highest WAL index of a generation; reaching it forces a new generation (Litestream's
/// `MaxIndex`).
pub const MAX_INDEX: u32 = 0x7FFF_FFFF;

/// A generation name: exactly 16 lowercase hex digits, as Litestream's `IsGenerationName` demands.
///
/// The field is private: [`Generation::parse`] and [`Generation::random`] are the only ways in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation([u8; 16]);

/// A string that is not a generation name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid generation name {name:?}: want 16 lowercase hex digits")]
pub struct ParseGenerationError {
    /// The rejected text.
    pub name: String,
}

impl Generation {
    /// Parses a generation name.
    ///
    /// # Errors
    /// When `name` is not exactly 16 characters of `[0-9a-f]`.
    pub fn parse(name: &str) -> Result<Self, ParseGenerationError> {
        let bytes: [u8; 16] = name
            .as_bytes()
            .try_into()
            .map_err(|_| ParseGenerationError {
                name: name.to_owned(),
            })?;
        if bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(bytes))
        } else {
            Err(ParseGenerationError {
                name: name.to_owned(),
            })
        }
    }

    /// Whether `name` is a valid generation name.
    pub fn is_valid(name: &str) -> bool {
        Self::parse(name).is_ok()
    }

    /// A new random generation name: 8 random bytes, hex-encoded.
    pub fn random() -> Self {
        let raw: [u8; 8] = rand::random();
        let mut out = [0u8; 16];
        for (pair, byte) in out.chunks_exact_mut(2).zip(raw) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        Self(out)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a generation holds only ASCII hex digits")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl FromStr for Generation {
    type Err = ParseGenerationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Generation({})", self.as_str())
    }
}

/// A position in a generation's WAL history: the WAL `index` (one per WAL cycle) and the byte
/// `offset` inside that cycle's WAL file (0 is the start of the 32-byte WAL header).
///
/// Litestream's zero position ("unknown") is `Option<Pos>::None` here. Positions order by
/// generation, then index, then offset; only positions of one generation compare meaningfully.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Pos {
    /// The generation this position belongs to.
    pub generation: Generation,
    /// The WAL index (cycle number) within the generation.
    pub index: u32,
    /// The byte offset within that index's WAL file.
    pub offset: u64,
}

impl Pos {
    /// A position from its parts.
    pub fn new(generation: Generation, index: u32, offset: u64) -> Self {
        Self {
            generation,
            index,
            offset,
        }
    }
}

/// Prints `<generation>/<index %08x>:<offset decimal>`, as Litestream's `Pos.String`.
impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:08x}:{}", self.generation, self.index, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generation_parse_rejects_uppercase_and_wrong_length() {
        assert!(Generation::parse("afa94d810124981b").is_ok());
        assert!(Generation::parse("AFA94D810124981B").is_err());
        assert!(Generation::parse("afa94d810124981").is_err());
        assert!(Generation::parse("afa94d810124981bb").is_err());
        assert!(Generation::parse("afa94d81012498zz").is_err());
        assert!(Generation::parse("").is_err());
        assert!(Generation::parse("é94d810124981bxx").is_err());
    }

    #[test]
    fn pos_display_matches_litestream() {
        let generation = Generation::parse("249c268eb6efdc47").unwrap();
        assert_eq!(
            Pos::new(generation, 2, 32992).to_string(),
            "249c268eb6efdc47/00000002:32992"
        );
        let generation = Generation::parse("afa94d810124981b").unwrap();
        assert_eq!(
            Pos::new(generation, 0, 0).to_string(),
            "afa94d810124981b/00000000:0"
        );
    }

    #[test]
    fn pos_orders_by_index_then_offset() {
        let generation = Generation::random();
        assert!(Pos::new(generation, 1, 0) > Pos::new(generation, 0, 99_999));
        assert!(Pos::new(generation, 1, 4152) > Pos::new(generation, 1, 32));
    }

    proptest! {
        #[test]
        fn generation_random_parses_back(_seed in any::<u8>()) {
            let generation = Generation::random();
            prop_assert_eq!(Generation::parse(generation.as_str()).unwrap(), generation);
        }

        #[test]
        fn generation_parse_never_panics(name in ".{0,20}") {
            let _ = Generation::parse(&name);
        }
    }
}
