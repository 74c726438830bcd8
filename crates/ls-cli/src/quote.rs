//! Go's string quoting (`strconv.Quote`, what `%q` prints) and the rule Go's `log/slog` text
//! handler uses to decide whether a value needs quoting at all.
//!
//! Litestream's error texts (`replica "x" not found ...`) and log values go through these, so
//! our output matches byte for byte.

use std::fmt::Write as _;

/// Quotes `text` as Go's `strconv.Quote`: `"` and `\` escaped, control characters as `\n`,
/// `\t`, ... or `\xNN`, other unprintable characters as `\uNNNN`; printable Unicode unchanged.
pub(crate) fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if !is_go_print(c) => {
                let code = u32::from(c);
                // Writing to a String cannot fail.
                let _ = if code < 0x1_0000 {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether Go's `log/slog` text handler would quote `text` (its `needsQuoting`): empty text,
/// a space, `=`, `"`, an ASCII control character, or a Unicode space or unprintable character.
pub(crate) fn slog_needs_quoting(text: &str) -> bool {
    text.is_empty()
        || text.chars().any(|c| {
            if c.is_ascii() {
                c == ' ' || c == '=' || c == '"' || c.is_ascii_control()
            } else {
                c.is_whitespace() || !is_go_print(c)
            }
        })
}

/// An approximation of Go's `strconv.IsPrint` for non-ASCII text: Unicode spaces other than
/// the ASCII space, control and format characters are unprintable.
fn is_go_print(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    if c.is_whitespace() || c.is_control() {
        return false;
    }
    // Format characters (Unicode category Cf) that commonly appear in text.
    !matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}'
            | '\u{f0000}'..='\u{10ffff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("abc"), r#""abc""#);
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("a\nb\t\u{1b}"), r#""a\nb\t\x1b""#);
        assert_eq!(
            go_quote("ISO 8601\u{a0}format"),
            r#""ISO 8601\u00a0format""#
        );
        assert_eq!(go_quote("caf\u{e9} \u{b5}s"), "\"caf\u{e9} \u{b5}s\"");
        assert_eq!(go_quote(""), r#""""#);
    }

    #[test]
    fn slog_needs_quoting_matches_text_handler() {
        for text in ["", "a b", "a=b", "a\"b", "a\nb", "a\u{a0}b"] {
            assert!(slog_needs_quoting(text), "{text:?}");
        }
        for text in [
            "/data/app.db",
            "249c268eb6efdc47/00000000:16512",
            "17.011044ms",
            "908.134\u{b5}s",
            r"a\b",
            "\u{e9}",
        ] {
            assert!(!slog_needs_quoting(text), "{text:?}");
        }
    }
}
