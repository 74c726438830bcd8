//! Go's `time.Duration` as text: `time.ParseDuration` for config values and `Duration.String`
//! for the `lag` column and log values.
//!
//! Durations are signed nanosecond counts, as in Go: config values may be zero or negative
//! (Litestream reads `<= 0` as "disabled") and a generation's lag may be negative.

use std::fmt;

/// Nanoseconds per unit, as Go's `unitMap` (both micro signs are accepted).
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A signed duration in nanoseconds, printed the way Go prints a `time.Duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct GoDuration(pub(crate) i64);

/// A duration string Go's `time.ParseDuration` would reject.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseDurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or out of range.
    #[error("invalid duration {}", crate::quote::go_quote(.text))]
    Invalid {
        /// The whole rejected text.
        text: String,
    },
    /// A number without a unit, such as `10` inside `1h10`.
    #[error("invalid duration {}: missing unit", crate::quote::go_quote(.text))]
    MissingUnit {
        /// The whole rejected text.
        text: String,
    },
    /// A unit Go does not know, such as `d`.
    #[error("invalid duration {}: unknown unit {}", crate::quote::go_quote(.text), crate::quote::go_quote(.unit))]
    UnknownUnit {
        /// The whole rejected text.
        text: String,
        /// The unknown unit.
        unit: String,
    },
}

impl GoDuration {
    /// The duration as a `std` duration; zero and negative durations become zero.
    pub(crate) fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }

    /// Parses Go duration text (`1h30m`, `-1.5s`, `250ms`, `0`), as `time.ParseDuration`.
    ///
    /// # Errors
    /// When Go would reject the text; days (`1d`) are an unknown unit.
    pub(crate) fn parse(text: &str) -> Result<Self, ParseDurationError> {
        let invalid = || ParseDurationError::Invalid {
            text: text.to_owned(),
        };
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(Self(0));
        }
        if rest.is_empty() {
            return Err(invalid());
        }
        // Accumulated in u64 like Go: the magnitude may reach 1<<63 for the most negative value.
        let mut total: u64 = 0;
        while !rest.is_empty() {
            if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
                return Err(invalid());
            }
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let int_part = &rest[..int_len];
            rest = &rest[int_len..];
            let mut frac_part = "";
            if let Some(after_dot) = rest.strip_prefix('.') {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                frac_part = &after_dot[..frac_len];
                rest = &after_dot[frac_len..];
            }
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
            let unit_len = rest
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(rest.len());
            if unit_len == 0 {
                return Err(ParseDurationError::MissingUnit {
                    text: text.to_owned(),
                });
            }
            let unit_text = &rest[..unit_len];
            rest = &rest[unit_len..];
            let Some(&(_, unit)) = UNITS.iter().find(|(name, _)| *name == unit_text) else {
                return Err(ParseDurationError::UnknownUnit {
                    text: text.to_owned(),
                    unit: unit_text.to_owned(),
                });
            };
            let whole = parse_leading_int(int_part).ok_or_else(invalid)?;
            let mut value = whole.checked_mul(unit).ok_or_else(invalid)?;
            value = value
                .checked_add(fraction_nanos(frac_part, unit))
                .ok_or_else(invalid)?;
            total = total.checked_add(value).ok_or_else(invalid)?;
            if total > 1 << 63 {
                return Err(invalid());
            }
        }
        if negative {
            // `total <= 1 << 63`, so the negation fits in i64.
            let magnitude = i128::from(total);
            i64::try_from(-magnitude).map(Self).map_err(|_| invalid())
        } else {
            i64::try_from(total).map(Self).map_err(|_| invalid())
        }
    }
}

/// The integer part of one number; `None` when it overflows Go's `1<<63` limit.
fn parse_leading_int(digits: &str) -> Option<u64> {
    let mut value: u64 = 0;
    for digit in digits.bytes() {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        if value > 1 << 63 {
            return None;
        }
    }
    Some(value)
}

/// `0.<digits>` of `unit`, in whole nanoseconds, truncated. Go computes this in float64; exact
/// integer arithmetic differs only below a nanosecond. Digits beyond what fits are ignored, as
/// Go's `leadingFraction` does.
fn fraction_nanos(digits: &str, unit: u64) -> u64 {
    let mut numerator: u128 = 0;
    let mut scale: u128 = 1;
    for digit in digits.bytes() {
        if scale >= 10u128.pow(19) {
            break;
        }
        numerator = numerator * 10 + u128::from(digit - b'0');
        scale *= 10;
    }
    u64::try_from(numerator * u128::from(unit) / scale).unwrap_or(u64::MAX)
}

/// Prints like Go's `Duration.String`: `0s`, `908.134µs`, `1.5ms`, `40s`, `4m41s`, `1h0m0s`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut nanos = self.0.unsigned_abs();
        let sign = if self.0 < 0 { "-" } else { "" };
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < NANOS_PER_SECOND {
            let (unit, precision) = if nanos < 1_000 {
                ("ns", 0)
            } else if nanos < 1_000_000 {
                ("\u{b5}s", 3)
            } else {
                ("ms", 6)
            };
            let (whole, frac) = split_fraction(nanos, precision);
            return write!(f, "{sign}{whole}{frac}{unit}");
        }
        let (seconds, frac) = split_fraction(nanos, 9);
        nanos = seconds;
        let secs = nanos % 60;
        let minutes = nanos / 60;
        if minutes == 0 {
            return write!(f, "{sign}{secs}{frac}s");
        }
        let hours = minutes / 60;
        if hours == 0 {
            return write!(f, "{sign}{}m{secs}{frac}s", minutes % 60);
        }
        write!(f, "{sign}{hours}h{}m{secs}{frac}s", minutes % 60)
    }
}

/// Splits `value` into `value / 10^precision` and the fraction `.ddd` with trailing zeros
/// removed (empty when the fraction is zero), as Go's `fmtFrac`.
fn split_fraction(value: u64, precision: u32) -> (u64, String) {
    let divisor = 10u64.pow(precision);
    let frac = value % divisor;
    if frac == 0 {
        return (value / divisor, String::new());
    }
    let digits = format!(
        "{frac:0width$}",
        width = usize::try_from(precision).unwrap_or(0)
    );
    (
        value / divisor,
        format!(".{}", digits.trim_end_matches('0')),
    )
}

/// Truncates a lag the way Litestream's `truncateDuration` does before printing it: whole
/// seconds above 10s, tenths above 1s, milliseconds above 1ms, microseconds above 1µs.
pub(crate) fn truncate_lag(d: GoDuration) -> GoDuration {
    const SECOND: i64 = 1_000_000_000;
    let magnitude = d.0.unsigned_abs();
    let step = if magnitude > 10 * 1_000_000_000 {
        SECOND
    } else if magnitude > 1_000_000_000 {
        SECOND / 10
    } else if magnitude > 1_000_000 {
        1_000_000
    } else if magnitude > 1_000 {
        1_000
    } else {
        return d;
    };
    // Rust's `%` truncates toward zero, as Go's `Duration.Truncate` does here.
    GoDuration(d.0 - d.0 % step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<i64, ParseDurationError> {
        GoDuration::parse(text).map(|d| d.0)
    }

    #[test]
    fn parse_accepts_go_forms() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("1s", 1_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("-1.5s", -1_500_000_000),
            ("+2m", 120_000_000_000),
            ("250ms", 250_000_000),
            ("10us", 10_000),
            ("10\u{b5}s", 10_000),
            ("10\u{3bc}s", 10_000),
            ("7ns", 7),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("1h1m1s1ms1us1ns", 3_661_001_001_001),
            ("0.000000001s", 1),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ];
        for &(text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn parse_days_names_unknown_unit() {
        let err = parse("1d").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid duration "1d": unknown unit "d""#
        );
    }

    #[test]
    fn parse_rejects_malformed_text() {
        for text in [
            "",
            "-",
            "s",
            ".s",
            "1",
            "1h10",
            "1.2.3s",
            "2562047h47m16.854775808s",
            "x1s",
            " 1s",
            "1S",
        ] {
            assert!(parse(text).is_err(), "{text:?} should fail");
        }
        assert_eq!(
            parse("1h10").unwrap_err().to_string(),
            r#"invalid duration "1h10": missing unit"#
        );
        assert_eq!(parse("").unwrap_err().to_string(), r#"invalid duration """#);
    }

    #[test]
    fn display_matches_go_duration_string() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (908_134, "908.134\u{b5}s"),
            (1_000, "1\u{b5}s"),
            (1_500_000, "1.5ms"),
            (8_000_000, "8ms"),
            (-8_000_000, "-8ms"),
            (17_011_044, "17.011044ms"),
            (6_200_000_000, "6.2s"),
            (40_000_000_000, "40s"),
            (281_000_000_000, "4m41s"),
            (3_600_000_000_000, "1h0m0s"),
            (7_384_500_000_000, "2h3m4.5s"),
            (1_000_000_000, "1s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for &(nanos, want) in cases {
            assert_eq!(GoDuration(nanos).to_string(), want, "{nanos}");
        }
    }

    #[test]
    fn display_then_parse_round_trips() {
        for nanos in [
            0,
            1,
            999,
            1_000,
            1_234_567,
            61_000_000_001,
            -90_061_000_000_000,
        ] {
            let text = GoDuration(nanos).to_string();
            assert_eq!(parse(&text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn truncate_lag_follows_litestream_thresholds() {
        let cases: &[(i64, i64)] = &[
            (40_123_456_789, 40_000_000_000),
            (10_000_000_000, 10_000_000_000),
            (10_000_000_001, 10_000_000_000),
            (9_987_654_321, 9_900_000_000),
            (1_000_000_000, 1_000_000_000),
            (-8_123_456, -8_000_000),
            (1_000_000, 1_000_000),
            (5_432, 5_000),
            (1_000, 1_000),
            (999, 999),
            (-40_999_999_999, -40_000_000_000),
        ];
        for &(input, want) in cases {
            assert_eq!(truncate_lag(GoDuration(input)), GoDuration(want), "{input}");
        }
    }

    #[test]
    fn to_std_clamps_negative_to_zero() {
        assert_eq!(GoDuration(-5).to_std(), std::time::Duration::ZERO);
        assert_eq!(GoDuration(5).to_std(), std::time::Duration::from_nanos(5));
    }
}
