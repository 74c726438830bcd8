//! `$VAR` expansion over the raw text of `litestream.yml`, exactly as Go's `os.ExpandEnv`
//! (spec 10.3), quirks included: `${A:-x}` looks up a variable literally named `A:-x`, and a
//! stray `${` swallows everything up to the next `}` anywhere below it.
//!
//! The scan works on bytes: every byte it stops at (`$`, `{`, `}`, ASCII names) is ASCII, so
//! each slice it takes falls on a UTF-8 boundary.

/// Expands `$NAME`, `${NAME}` and the one-character special names in `text`, reading variables
/// from the process environment; unset variables expand to nothing.
pub(crate) fn expand_env(text: &str) -> String {
    expand(text, |name| {
        std::env::var_os(name)
            .map(|value| value.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// Go's `os.Expand` with `lookup` as the mapping function.
pub(crate) fn expand(text: &str, mut lookup: impl FnMut(&str) -> String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&text[copied..j]);
            let (name, width) = shell_name(&text[j + 1..]);
            match name {
                // Bad syntax (`${}`, or `${` without a `}`): the characters are dropped.
                None if width > 0 => {}
                // No name after `$`: the dollar stays.
                None => out.push('$'),
                Some(name) => out.push_str(&lookup(name)),
            }
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    out.push_str(&text[copied.min(text.len())..]);
    out
}

/// Go's `isShellSpecialVar`.
fn is_special(b: u8) -> bool {
    matches!(
        b,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// Go's `getShellName`: the name that follows a `$` and how many bytes it spans. `None` with a
/// width > 0 is bad syntax to drop; `None` with width 0 means the `$` is literal.
fn shell_name(rest: &str) -> (Option<&str>, usize) {
    let bytes = rest.as_bytes();
    let Some(&first) = bytes.first() else {
        return (None, 0);
    };
    if first == b'{' {
        if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&rest[1..2]), 3);
        }
        return match bytes.iter().skip(1).position(|&b| b == b'}') {
            // `${}`: drop all three characters.
            Some(0) => (None, 2),
            Some(offset) => (Some(&rest[1..=offset]), offset + 2),
            // `${` with no `}` anywhere after it: drop the two characters.
            None => (None, 1),
        };
    }
    if is_special(first) {
        return (Some(&rest[..1]), 1);
    }
    let len = bytes
        .iter()
        .take_while(|&&b| b == b'_' || b.is_ascii_alphanumeric())
        .count();
    if len == 0 {
        (None, 0)
    } else {
        (Some(&rest[..len]), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_with(text: &str) -> String {
        expand(text, |name| match name {
            "FOO" => "foo".to_owned(),
            "BAR_1" => "bar".to_owned(),
            "A:-x" => "weird".to_owned(),
            "EMPTY" => String::new(),
            _ => String::new(),
        })
    }

    #[test]
    fn expand_replaces_plain_and_braced_names() {
        assert_eq!(expand_with("$FOO"), "foo");
        assert_eq!(expand_with("${FOO}"), "foo");
        assert_eq!(expand_with("a/$FOO.bar"), "a/foo.bar");
        assert_eq!(expand_with("$FOOx"), "");
        assert_eq!(expand_with("$BAR_1-$FOO"), "bar-foo");
        assert_eq!(expand_with("x${EMPTY}y"), "xy");
        assert_eq!(expand_with("$UNSET!"), "!");
    }

    #[test]
    fn expand_braced_name_is_everything_up_to_the_brace() {
        assert_eq!(expand_with("${A:-x}"), "weird");
        assert_eq!(expand_with("${B:-default}z"), "z");
    }

    #[test]
    fn expand_special_names_are_empty() {
        assert_eq!(expand_with("a$$b"), "ab");
        assert_eq!(expand_with("$1x"), "x");
        assert_eq!(expand_with("$-x"), "x");
        assert_eq!(expand_with("${1}x"), "x");
        assert_eq!(expand_with("${*}x"), "x");
    }

    #[test]
    fn expand_keeps_dollar_without_name() {
        assert_eq!(expand_with("a $ b"), "a $ b");
        assert_eq!(expand_with("$/x"), "$/x");
        assert_eq!(expand_with("'$'"), "'$'");
        assert_eq!(expand_with("cost: 5$"), "cost: 5$");
        assert_eq!(expand_with("$\n"), "$\n");
        assert_eq!(expand_with("$"), "$");
        assert_eq!(expand_with("$é"), "$é");
    }

    #[test]
    fn expand_drops_bad_brace_syntax() {
        assert_eq!(expand_with("a${}b"), "ab");
        assert_eq!(expand_with("a${b"), "ab");
        assert_eq!(expand_with("x ${"), "x ");
    }

    #[test]
    fn expand_stray_brace_swallows_following_lines() {
        let text = "password: ab${cd\npath: /x\nname: y}\nend: 1\n";
        assert_eq!(expand_with(text), "password: ab\nend: 1\n");
    }

    #[test]
    fn expand_keeps_text_without_dollar_and_utf8() {
        assert_eq!(
            expand_with("path: /données/é.db\n"),
            "path: /données/é.db\n"
        );
        assert_eq!(expand_with("é$FOO€"), "éfoo€");
        assert_eq!(expand_with("${é}x"), "x");
    }
}
