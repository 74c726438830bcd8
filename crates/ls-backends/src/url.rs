//! Replica URLs (`file://`, `s3://`, `gcs://`, `abs://`, `sftp://`), read as Litestream 0.3.13
//! reads them: Go's `net/url` parser, `ParseReplicaURL`, `s3.ParseHost` and the per-type config
//! builders of `cmd/litestream/main.go`.
//!
//! A small parser of our own, not the `url` crate: Go's parser differs from the WHATWG one the
//! `url` crate implements (hosts of unknown schemes, percent-decoding, `file://host/...`), and
//! the replica a URL names must be the one 0.3.13 used. Merging with `litestream.yml` fields is
//! the CLI's job; this module only reads the URL.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ls_core::ReplicaClient;

use crate::file::FileReplicaClient;

/// A parsed replica URL.
///
/// Optional parts that are absent or empty in the URL are `None`; a config field may supply
/// them (the CLI merges, config fields winning, as Litestream does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaUrl {
    /// `file:///path`: a local directory.
    File {
        /// The text after `file://`, cleaned as Go's `path.Clean` (`file:///a//b/` is `/a/b`).
        /// As in 0.3.13 any host becomes the first path component (`file://tmp/x` is `/tmp/x`),
        /// and `?` or `#` and what follows stay part of the path. `file://` alone is `.`.
        path: PathBuf,
    },
    /// `s3://BUCKET[.provider-host][:port]/PATH`: S3 or an S3-compatible store.
    S3 {
        /// The bucket, from the host (see `region` and `endpoint`).
        bucket: String,
        /// The key prefix: the URL path cleaned, without a leading `/`; empty for the bucket's
        /// root (Litestream's `.`).
        path: String,
        /// The region a provider host implies (`us-east-1` for `*.localhost`).
        region: Option<String>,
        /// The endpoint a provider host implies, with its scheme and the URL's port
        /// (`http://localhost:9000` for `s3://bkt.localhost:9000/db`); `None` means AWS.
        endpoint: Option<String>,
        /// Whether the host implies path-style addressing (every recognised provider host).
        force_path_style: bool,
    },
    /// `gcs://BUCKET/PATH`: Google Cloud Storage.
    Gcs {
        /// The bucket (the URL host).
        bucket: String,
        /// The object name prefix, as for [`ReplicaUrl::S3`]'s `path`.
        path: String,
    },
    /// `abs://[ACCOUNT@]CONTAINER/PATH`: Azure Blob Storage.
    Abs {
        /// The storage account, from the URL's user name.
        account: Option<String>,
        /// The container (the URL host).
        container: String,
        /// The blob name prefix, as for [`ReplicaUrl::S3`]'s `path`.
        path: String,
    },
    /// `sftp://USER[:PASSWORD]@HOST[:PORT]/PATH`: a directory on an SFTP server.
    Sftp {
        /// `host` or `host:port`, as written.
        host: String,
        /// The SSH user.
        user: Option<String>,
        /// The SSH password; never printed.
        password: Option<Password>,
        /// The remote directory: the URL path as is (decoded, not cleaned, leading `/` kept).
        path: String,
    },
}

/// A password taken from a URL. Its `Debug` output is redacted, so it cannot leak into logs or
/// error messages by accident; [`Password::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a replica URL cannot be used. Every message names the URL, with any password replaced by
/// `xxxxx`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaUrlError {
    /// The text is not a URL Litestream accepts.
    #[error("invalid replica url {url}: {reason}")]
    Invalid {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The scheme is not one of `file`, `s3`, `gcs`, `abs`, `sftp`.
    #[error("unknown replica type in url: {url}")]
    UnknownType {
        /// The URL, redacted.
        url: String,
        /// The scheme, lowercased.
        scheme: String,
    },
    /// A part the replica type cannot do without is empty (Litestream's `bucket required for s3
    /// replica`, `host required for sftp replica`).
    #[error("{part} required for {kind} replica: {url}")]
    Missing {
        /// The replica type.
        kind: &'static str,
        /// The missing part: `bucket` or `host`.
        part: &'static str,
        /// The URL, redacted.
        url: String,
    },
    /// The replica type is known but this build cannot open it yet.
    #[error("replica type {kind:?} is not supported yet: {url}")]
    Unsupported {
        /// The replica type.
        kind: &'static str,
        /// The URL, redacted.
        url: String,
    },
}

/// Whether `s` is a replica URL rather than a path: it starts with `<word chars>://`, as
/// Litestream's `isURL` (`^\w+://`).
pub fn is_url(s: &str) -> bool {
    let scheme_len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    scheme_len > 0
        && s.get(scheme_len..)
            .is_some_and(|rest| rest.starts_with("://"))
}

/// `url` with the password of its user info, if any, replaced by `xxxxx` (Go's
/// `URL.Redacted`), for messages and logs.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let authority_start = scheme_end + 3;
    let rest = url.get(authority_start..).unwrap_or_default();
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_len).unwrap_or_default();
    // A password holding `/`, `?` or `#` ends the authority early; then the last `@` of the
    // whole URL is taken, hiding too much rather than too little.
    let Some(at) = authority.rfind('@').or_else(|| rest.rfind('@')) else {
        return Cow::Borrowed(url);
    };
    let userinfo = rest.get(..at).unwrap_or_default();
    let Some(colon) = userinfo.find(':') else {
        return Cow::Borrowed(url);
    };
    let password_start = authority_start + colon + 1;
    let password_end = authority_start + at;
    Cow::Owned(format!(
        "{}xxxxx{}",
        url.get(..password_start).unwrap_or_default(),
        url.get(password_end..).unwrap_or_default()
    ))
}

/// Opens the replica `url` names.
///
/// Only `file` URLs are supported so far; `s3`, `gcs`, `abs` and `sftp` URLs parse but return
/// [`ReplicaUrlError::Unsupported`].
///
/// # Errors
/// When `url` does not parse (see [`ReplicaUrl::parse`]) or names an unsupported replica type.
pub fn open_url(url: &str) -> Result<Arc<dyn ReplicaClient>, ReplicaUrlError> {
    match ReplicaUrl::parse(url)? {
        ReplicaUrl::File { path } => Ok(Arc::new(FileReplicaClient::new(path))),
        other => Err(ReplicaUrlError::Unsupported {
            kind: other.kind(),
            url: redact_url(url).into_owned(),
        }),
    }
}

impl ReplicaUrl {
    /// Parses a replica URL as Litestream 0.3.13 does. Query strings are ignored (except in
    /// `file` URLs, where 0.3.13 keeps them in the path); the scheme is case-insensitive.
    ///
    /// One deliberate difference: where Go would percent-encode a character of a `file` URL's
    /// path (a space, non-ASCII text), giving a different directory than the one written, the
    /// path is kept as written.
    ///
    /// # Errors
    /// [`ReplicaUrlError::Invalid`] when `url` is not `scheme://...` or Go's parser would reject
    /// it (bad port, bad `%` escape, control characters); [`ReplicaUrlError::UnknownType`] for
    /// another scheme; [`ReplicaUrlError::Missing`] for an empty bucket, container or host.
    pub fn parse(url: &str) -> Result<Self, ReplicaUrlError> {
        let invalid = |reason: String| ReplicaUrlError::Invalid {
            url: redact_url(url).into_owned(),
            reason,
        };
        let parts = RawUrl::split(url).map_err(invalid)?;
        let missing = |kind: &'static str, part: &'static str| ReplicaUrlError::Missing {
            kind,
            part,
            url: redact_url(url).into_owned(),
        };
        match parts.scheme.as_str() {
            "file" => Ok(Self::File {
                path: PathBuf::from(file_path(parts.after_scheme)),
            }),
            "s3" => {
                let host = parse_s3_host(parts.host);
                if host.bucket.is_empty() {
                    return Err(missing("s3", "bucket"));
                }
                Ok(Self::S3 {
                    bucket: host.bucket,
                    path: object_prefix(&parts.path().map_err(invalid)?),
                    region: host.region,
                    endpoint: host.endpoint,
                    force_path_style: host.force_path_style,
                })
            }
            "gcs" => {
                if parts.host.is_empty() {
                    return Err(missing("gcs", "bucket"));
                }
                Ok(Self::Gcs {
                    bucket: parts.host.to_owned(),
                    path: object_prefix(&parts.path().map_err(invalid)?),
                })
            }
            "abs" => {
                if parts.host.is_empty() {
                    return Err(missing("abs", "bucket"));
                }
                let (account, _) = parts.user_and_password().map_err(invalid)?;
                Ok(Self::Abs {
                    account,
                    container: parts.host.to_owned(),
                    path: object_prefix(&parts.path().map_err(invalid)?),
                })
            }
            "sftp" => {
                if parts.host.is_empty() {
                    return Err(missing("sftp", "host"));
                }
                let (user, password) = parts.user_and_password().map_err(invalid)?;
                Ok(Self::Sftp {
                    host: parts.host.to_owned(),
                    user,
                    password: password.map(Password),
                    path: parts.path().map_err(invalid)?,
                })
            }
            _ => Err(ReplicaUrlError::UnknownType {
                url: redact_url(url).into_owned(),
                scheme: parts.scheme,
            }),
        }
    }

    /// The replica type: `file`, `s3`, `gcs`, `abs` or `sftp`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::S3 { .. } => "s3",
            Self::Gcs { .. } => "gcs",
            Self::Abs { .. } => "abs",
            Self::Sftp { .. } => "sftp",
        }
    }
}

impl std::str::FromStr for ReplicaUrl {
    type Err = ReplicaUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Password {
    /// The password text, for handing to the SSH client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(xxxxx)")
    }
}

/// A URL cut as Go's `url.Parse` cuts it.
struct RawUrl<'a> {
    /// Lowercased.
    scheme: String,
    /// Everything after `scheme://`, verbatim.
    after_scheme: &'a str,
    /// Before the last `@` of the authority, still percent-encoded.
    userinfo: Option<&'a str>,
    /// `host[:port]`, validated.
    host: &'a str,
    /// From the first `/` after the authority, without query and fragment, still encoded.
    raw_path: &'a str,
}

impl<'a> RawUrl<'a> {
    fn split(url: &'a str) -> Result<Self, String> {
        if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("invalid control character in url".to_owned());
        }
        let (scheme, after_scheme) = match url.split_once("://") {
            Some((scheme, rest)) if is_url(url) => (scheme, rest),
            _ => return Err("want <type>://...".to_owned()),
        };
        // Go's getScheme: a letter, then letters, digits, `+`, `-` or `.`; `^\w+` already
        // excluded the last three, but not a leading digit or an `_`.
        let valid_scheme = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid_scheme {
            return Err("first path segment in URL cannot contain colon".to_owned());
        }
        let before_fragment = after_scheme.split('#').next().unwrap_or_default();
        let before_query = before_fragment.split('?').next().unwrap_or_default();
        let authority_len = before_query.find('/').unwrap_or(before_query.len());
        let (authority, raw_path) = before_query.split_at(authority_len);
        let (userinfo, host) = match authority.rfind('@') {
            Some(at) => (
                authority.get(..at),
                authority.get(at + 1..).unwrap_or_default(),
            ),
            None => (None, authority),
        };
        if let Some(userinfo) = userinfo {
            check_userinfo(userinfo)?;
        }
        check_host(host)?;
        // Go rejects bad escapes in the path whatever the scheme.
        percent_decode(raw_path)?;
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            after_scheme,
            userinfo,
            host,
            raw_path,
        })
    }

    /// The decoded path.
    fn path(&self) -> Result<String, String> {
        percent_decode(self.raw_path)
    }

    /// The decoded user name and password; empty ones are `None`.
    fn user_and_password(&self) -> Result<(Option<String>, Option<String>), String> {
        let Some(userinfo) = self.userinfo else {
            return Ok((None, None));
        };
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let non_empty = |text: String| (!text.is_empty()).then_some(text);
        let user = non_empty(percent_decode(user)?);
        let password = match password {
            Some(password) => non_empty(percent_decode(password)?),
            None => None,
        };
        Ok((user, password))
    }
}

/// What `s3.ParseHost` derives from an `s3://` URL's host.
struct S3Host {
    bucket: String,
    region: Option<String>,
    endpoint: Option<String>,
    force_path_style: bool,
}

/// A provider host pattern of `s3.ParseHost`, anchored, after the optional `<bucket>.` prefix.
struct Provider {
    /// `.` is a literal dot, `?` any one character (0.3.13's unescaped dots), `*` the region
    /// (`[^.]+`, always followed by a literal dot).
    pattern: &'static str,
    /// The endpoint's host, with `{}` standing for the region.
    endpoint: &'static str,
    /// The region when the pattern has none.
    fixed_region: &'static str,
    /// `http` for localhost, `https` otherwise.
    scheme: &'static str,
}

/// `s3.ParseHost`'s patterns, in its order.
const PROVIDERS: [Provider; 6] = [
    // ^(?:(.+)\.)?localhost$
    Provider {
        pattern: "localhost",
        endpoint: "localhost",
        fixed_region: "us-east-1",
        scheme: "http",
    },
    // ^(?:(.+)\.)?s3.([^.]+)\.backblazeb2.com$
    Provider {
        pattern: "s3?*.backblazeb2?com",
        endpoint: "s3.{}.backblazeb2.com",
        fixed_region: "",
        scheme: "https",
    },
    // ^(?:(.+)\.)?s3.filebase.com$
    Provider {
        pattern: "s3?filebase?com",
        endpoint: "s3.filebase.com",
        fixed_region: "",
        scheme: "https",
    },
    // ^(?:(.+)\.)?([^.]+)\.digitaloceanspaces.com$
    Provider {
        pattern: "*.digitaloceanspaces?com",
        endpoint: "{}.digitaloceanspaces.com",
        fixed_region: "",
        scheme: "https",
    },
    // ^(?:(.+)\.)?s3.([^.]+)\.scw\.cloud$
    Provider {
        pattern: "s3?*.scw.cloud",
        endpoint: "s3.{}.scw.cloud",
        fixed_region: "",
        scheme: "https",
    },
    // ^(?:(.+)\.)?([^.]+)\.linodeobjects.com$
    Provider {
        pattern: "*.linodeobjects?com",
        endpoint: "{}.linodeobjects.com",
        fixed_region: "",
        scheme: "https",
    },
];

/// Litestream's `s3.ParseHost`: bucket, region and endpoint from `host[:port]`.
fn parse_s3_host(host_port: &str) -> S3Host {
    let (host, port) = split_host_port(host_port).unwrap_or((host_port, ""));
    for provider in &PROVIDERS {
        if let Some((bucket, region)) = match_provider(host, provider.pattern) {
            let region = region.unwrap_or(provider.fixed_region);
            let mut endpoint = format!(
                "{}://{}",
                provider.scheme,
                provider.endpoint.replace("{}", region)
            );
            if !port.is_empty() {
                endpoint.push(':');
                endpoint.push_str(port);
            }
            return S3Host {
                bucket: bucket.to_owned(),
                region: (!region.is_empty()).then(|| region.to_owned()),
                endpoint: Some(endpoint),
                force_path_style: true,
            };
        }
    }
    S3Host {
        bucket: host.to_owned(),
        region: None,
        endpoint: None,
        force_path_style: false,
    }
}

/// Go's `net.SplitHostPort`, or `None` where it fails (no port, too many colons).
fn split_host_port(host_port: &str) -> Option<(&str, &str)> {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = host_port.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

/// Matches `^(?:(.+)\.)?PATTERN$` the way Go's leftmost-first regexp does: the longest bucket
/// prefix that lets the pattern match the rest wins. Returns the bucket (empty without one) and
/// the region the pattern's `*` captured.
fn match_provider<'h>(host: &'h str, pattern: &str) -> Option<(&'h str, Option<&'h str>)> {
    let dots = host
        .char_indices()
        .filter(|(_, c)| *c == '.')
        .map(|(i, _)| i);
    let mut dots = dots.collect::<Vec<_>>();
    dots.reverse();
    for dot in dots {
        if dot == 0 {
            continue;
        }
        let (Some(bucket), Some(rest)) = (host.get(..dot), host.get(dot + 1..)) else {
            continue;
        };
        if let Some(region) = match_pattern(rest, pattern) {
            return Some((bucket, region));
        }
    }
    match_pattern(host, pattern).map(|region| ("", region))
}

/// Matches all of `text` against a provider pattern (see [`Provider::pattern`]).
fn match_pattern<'t>(text: &'t str, pattern: &str) -> Option<Option<&'t str>> {
    let mut rest = text;
    let mut region = None;
    for token in pattern.chars() {
        match token {
            '?' => {
                let mut chars = rest.chars();
                chars.next()?;
                rest = chars.as_str();
            }
            '*' => {
                // `[^.]+` is always followed by a literal dot, so the longest run is the only
                // one that can match.
                let len = rest.find('.').unwrap_or(rest.len());
                if len == 0 {
                    return None;
                }
                let (captured, after) = rest.split_at(len);
                region = Some(captured);
                rest = after;
            }
            literal => rest = rest.strip_prefix(literal)?,
        }
    }
    rest.is_empty().then_some(region)
}

/// The path of a `file` URL: what follows `file://`, cleaned; Go's
/// `path.Clean(u.String())` with the scheme removed.
fn file_path(after_scheme: &str) -> String {
    let before_query = after_scheme.find(['?', '#']).map_or(after_scheme, |end| {
        after_scheme.get(..end).unwrap_or_default()
    });
    if before_query.is_empty() {
        // No host and no path: Go prints no `//`, so only a query or fragment (or nothing) is
        // left to clean.
        go_path_clean(after_scheme)
    } else {
        go_path_clean(&format!("//{after_scheme}"))
    }
}

/// An object key prefix: the path cleaned, without its leading `/`; Litestream's `.` for an
/// empty path is the empty prefix.
pub(crate) fn object_prefix(path: &str) -> String {
    let cleaned = go_path_clean(path);
    match cleaned.trim_start_matches('/') {
        "." => String::new(),
        trimmed => trimmed.to_owned(),
    }
}

/// Go's `path.Clean`: one `/` between elements, no `.`, `..` resolved lexically, no trailing
/// `/`, and `.` for an empty result.
fn go_path_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut elements: Vec<&str> = Vec::new();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if elements.last().is_some_and(|last| *last != "..") {
                    elements.pop();
                } else if !rooted {
                    elements.push("..");
                }
            }
            element => elements.push(element),
        }
    }
    let joined = elements.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Go's `validUserinfo`.
fn check_userinfo(userinfo: &str) -> Result<(), String> {
    let valid = userinfo
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b) || !b.is_ascii());
    if valid {
        Ok(())
    } else {
        Err("invalid userinfo".to_owned())
    }
}

/// Go's `parseHost` for the host forms replica URLs use: an optional numeric port, and only the
/// characters Go accepts in a host name. Percent-escapes (legal in Go only in rare cases) are
/// refused.
fn check_host(host: &str) -> Result<(), String> {
    let (name, colon_port) = if let Some(bracketed) = host.strip_prefix('[') {
        let Some(close) = bracketed.rfind(']') else {
            return Err("missing ']' in host".to_owned());
        };
        (
            bracketed.get(..close).unwrap_or_default(),
            bracketed.get(close + 1..).unwrap_or_default(),
        )
    } else {
        match host.rfind(':') {
            Some(colon) => (
                host.get(..colon).unwrap_or_default(),
                host.get(colon..).unwrap_or_default(),
            ),
            None => (host, ""),
        }
    };
    let valid_port = colon_port.is_empty()
        || colon_port
            .strip_prefix(':')
            .is_some_and(|port| port.bytes().all(|b| b.is_ascii_digit()));
    if !valid_port {
        return Err(format!("invalid port {colon_port:?} after host"));
    }
    let bad = name.chars().find(|c| {
        c.is_ascii() && !(c.is_ascii_alphanumeric() || "-_.~!$&'()*+,;=:[]<>\"".contains(*c))
    });
    match bad {
        Some(c) => Err(format!("invalid character {c:?} in host name")),
        None => Ok(()),
    }
}

/// Go's `unescape`: `%XY` becomes the byte `0xXY`; a `%` without two hex digits is an error;
/// the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, String> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let escape = bytes.get(i + 1..i + 3).and_then(|hex| {
                let hex = std::str::from_utf8(hex).ok()?;
                if hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    u8::from_str_radix(hex, 16).ok()
                } else {
                    None
                }
            });
            let Some(decoded) = escape else {
                let shown = text.get(i..).unwrap_or_default();
                let shown: String = shown.chars().take(3).collect();
                return Err(format!("invalid URL escape {shown:?}"));
            };
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes decode to invalid UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_clean_matches_go_examples() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("//", "/"),
            ("abc", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/./../../g", "a/g"),
            ("/../a", "/a"),
            ("../../a/..", "../.."),
            ("a//b", "a/b"),
            ("//tmp/lt/x?foo", "/tmp/lt/x?foo"),
        ] {
            assert_eq!(go_path_clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn parse_s3_host_matches_litestream_tests() {
        let cases = [
            (
                "foo.localhost:9000",
                "foo",
                Some("us-east-1"),
                Some("http://localhost:9000"),
                true,
            ),
            (
                "localhost",
                "",
                Some("us-east-1"),
                Some("http://localhost"),
                true,
            ),
            (
                "foo.s3.us-west-000.backblazeb2.com",
                "foo",
                Some("us-west-000"),
                Some("https://s3.us-west-000.backblazeb2.com"),
                true,
            ),
            (
                "foo.s3.filebase.com",
                "foo",
                None,
                Some("https://s3.filebase.com"),
                true,
            ),
            (
                "foo.nyc3.digitaloceanspaces.com",
                "foo",
                Some("nyc3"),
                Some("https://nyc3.digitaloceanspaces.com"),
                true,
            ),
            (
                "foo.s3.fr-par.scw.cloud",
                "foo",
                Some("fr-par"),
                Some("https://s3.fr-par.scw.cloud"),
                true,
            ),
            (
                "foo.us-east-1.linodeobjects.com",
                "foo",
                Some("us-east-1"),
                Some("https://us-east-1.linodeobjects.com"),
                true,
            ),
            ("mybkt", "mybkt", None, None, false),
            ("mybkt:9000", "mybkt", None, None, false),
            (
                "my.bkt.example.com",
                "my.bkt.example.com",
                None,
                None,
                false,
            ),
            // Greedy bucket, unescaped dots matching any character, as in 0.3.13.
            (
                "a.b.s3xfilebasexcom",
                "a.b",
                None,
                Some("https://s3.filebase.com"),
                true,
            ),
        ];
        for (host, bucket, region, endpoint, path_style) in cases {
            let parsed = parse_s3_host(host);
            assert_eq!(parsed.bucket, bucket, "bucket of {host}");
            assert_eq!(parsed.region.as_deref(), region, "region of {host}");
            assert_eq!(parsed.endpoint.as_deref(), endpoint, "endpoint of {host}");
            assert_eq!(parsed.force_path_style, path_style, "path style of {host}");
        }
    }

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("sftp://u:secret@h:22/p"),
            "sftp://u:xxxxx@h:22/p"
        );
        assert_eq!(redact_url("sftp://u@h/p"), "sftp://u@h/p");
        assert_eq!(redact_url("sftp://u:@h/p"), "sftp://u:xxxxx@h/p");
        assert_eq!(redact_url("s3://bkt/p@q:r"), "s3://bkt/p@q:r");
        assert_eq!(redact_url("sftp://u:pa/ss@h/p"), "sftp://u:xxxxx@h/p");
        assert_eq!(redact_url("ftp://u:pa#ss@h/p"), "ftp://u:xxxxx@h/p");
        assert_eq!(redact_url("/not/a/url"), "/not/a/url");
        assert_eq!(redact_url("sftp://u:p@ss:w@rd@h/p"), "sftp://u:xxxxx@h/p");
    }

    #[test]
    fn percent_decode_rejects_bad_escapes() {
        assert_eq!(percent_decode("a%20b").as_deref(), Ok("a b"));
        assert_eq!(percent_decode("a+b").as_deref(), Ok("a+b"));
        assert!(percent_decode("a%zzb").is_err());
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("%ff").is_err());
        assert!(percent_decode("%é").is_err());
    }
}
