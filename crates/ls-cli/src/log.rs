//! The tracing subscriber: Litestream's three log formats (spec 13.1).
//!
//! Until a config file is read, lines use Go's default logger format on stderr
//! (`2026/11/25 19:27:20 INFO msg k=v`). Once one is read, [`configure`] switches to Go slog's
//! text handler (`time=... level=INFO msg=... k=v`) or JSON handler, on stdout or stderr, at
//! the configured level.
//!
//! Span fields come first, outermost span first, then the event's own fields, so
//! `#[instrument(fields(db = ..., replica = ...))]` prints `db=... replica=...` right after the
//! message, as Litestream's `logger.With` does. Conventions for code that logs:
//! - an error field recorded as `error = &err as &dyn Error` prints its whole source chain;
//! - a value recorded with `?` whose text is a `std::time::Duration`'s `Debug` form
//!   (`17.011044ms`, `1.5s`) is a duration: Go text (`4m41s`) in text lines, integer
//!   nanoseconds in JSON, as slog prints a `time.Duration`;
//! - TRACE events are never printed (Litestream has no such level).

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::RwLock;

use chrono::{DateTime, Local, Offset};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel, LoggingConfig};
use crate::duration::GoDuration;
use crate::quote::{go_quote, slog_needs_quoting};

/// The active format; starts as Go's default logger, changed once by [`configure`].
static SETTINGS: RwLock<Settings> = RwLock::new(Settings {
    style: Style::GoDefault,
    level: LogLevel::Info,
    to_stderr: true,
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settings {
    style: Style,
    level: LogLevel,
    to_stderr: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// Go's `log` package default: `YYYY/MM/DD HH:MM:SS LEVEL msg k=v`.
    GoDefault,
    /// Go slog's text handler.
    Text,
    /// Go slog's JSON handler.
    Json,
}

/// One field's value as recorded.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Duration(GoDuration),
}

/// Installs the subscriber in Go's default format (stderr, info). Call once, first thing.
pub(crate) fn init() {
    let subscriber = tracing_subscriber::registry().with(LitestreamLayer);
    // Fails only when a subscriber is already installed, which then keeps logging.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Switches to the format, level and stream of a config file's `logging` section.
pub(crate) fn configure(logging: &LoggingConfig) {
    let settings = Settings {
        style: match logging.format {
            LogFormat::Text => Style::Text,
            LogFormat::Json => Style::Json,
        },
        level: logging.level,
        to_stderr: logging.stderr,
    };
    *SETTINGS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = settings;
}

fn settings() -> Settings {
    *SETTINGS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fields recorded on a span, kept in its extensions.
struct SpanFields(Vec<(String, Value)>);

struct LitestreamLayer;

impl<S> Layer<S> for LitestreamLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        attrs.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(visitor.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        values.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            match extensions.get_mut::<SpanFields>() {
                Some(fields) => fields.0.extend(visitor.fields),
                None => extensions.insert(SpanFields(visitor.fields)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Our dependencies' own events (sqlx's statement log, hyper, object_store...) are not
        // Litestream's log lines.
        let target = event.metadata().target();
        if !target.starts_with("ls_") && !target.starts_with("litestream") {
            return;
        }
        let settings = settings();
        let Some(level) = litestream_level(*event.metadata().level()) else {
            return;
        };
        if level < settings.level {
            return;
        }
        let mut fields = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.0.iter().cloned());
                }
            }
        }
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        fields.extend(visitor.fields);
        let line = format_line(
            settings.style,
            &Local::now(),
            level,
            &visitor.message,
            &fields,
        );
        // A log line that cannot be written has nowhere else to go.
        let _ = if settings.to_stderr {
            io::stderr().lock().write_all(line.as_bytes())
        } else {
            io::stdout().lock().write_all(line.as_bytes())
        };
    }
}

/// Litestream's level for a tracing level; `None` for TRACE, which Litestream lacks.
fn litestream_level(level: Level) -> Option<LogLevel> {
    match level {
        Level::ERROR => Some(LogLevel::Error),
        Level::WARN => Some(LogLevel::Warn),
        Level::INFO => Some(LogLevel::Info),
        Level::DEBUG => Some(LogLevel::Debug),
        Level::TRACE => None,
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warn => "WARN",
        LogLevel::Error => "ERROR",
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: Vec<(String, Value)>,
}

impl FieldVisitor {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::Str(text) => text,
                other => text_value(&other),
            };
        } else {
            self.fields.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let value = match parse_rust_duration(&text) {
            Some(duration) if field.name() != "message" => Value::Duration(duration),
            _ => Value::Str(text),
        };
        self.push(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Str(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Str(error_chain(value)));
    }
}

/// An error and its sources on one line, as anyhow's `{:#}`, with operating system errors
/// worded as Go words them (`no such file or directory`, not `No such file or directory (os
/// error 2)`).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let cause_text = match cause.downcast_ref::<io::Error>() {
            Some(io_error) => os_error_text(io_error),
            None => cause.to_string(),
        };
        // Some errors (object_store's) already print their source: say it once.
        if !text.contains(&cause_text) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// An I/O error's text; for an OS error, the lowercase `strerror` text without Rust's
/// ` (os error N)` suffix, as Go prints a `syscall.Errno`.
fn os_error_text(error: &io::Error) -> String {
    let text = error.to_string();
    let Some(code) = error.raw_os_error() else {
        return text;
    };
    let message = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Reads back the `Debug` text of a `std::time::Duration`: digits, an optional fraction, and
/// one of `ns`, `µs`, `ms`, `s`.
fn parse_rust_duration(text: &str) -> Option<GoDuration> {
    let (number, unit) = ["ns", "\u{b5}s", "ms", "s"]
        .iter()
        .find_map(|unit| text.strip_suffix(unit).map(|number| (number, *unit)))?;
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (number.contains('.') && frac.is_empty())
    {
        return None;
    }
    GoDuration::parse(&format!("{number}{unit}")).ok()
}

/// The value as slog's text handler prints it, before quoting.
fn text_value(value: &Value) -> String {
    match value {
        Value::Str(text) => text.clone(),
        Value::I64(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
        Value::Duration(d) => d.to_string(),
    }
}

fn quoted_if_needed(text: &str) -> String {
    if slog_needs_quoting(text) {
        go_quote(text)
    } else {
        text.to_owned()
    }
}

/// One whole log line, newline included.
fn format_line<Tz: chrono::TimeZone>(
    style: Style,
    now: &DateTime<Tz>,
    level: LogLevel,
    message: &str,
    fields: &[(String, Value)],
) -> String
where
    Tz::Offset: fmt::Display,
{
    let mut line = String::new();
    // Writing to a String cannot fail, in this whole function.
    match style {
        Style::GoDefault => {
            let _ = write!(
                line,
                "{} {} {message}",
                now.format("%Y/%m/%d %H:%M:%S"),
                level_name(level)
            );
            write_text_fields(&mut line, fields);
        }
        Style::Text => {
            let _ = write!(
                line,
                "time={} level={} msg={}",
                rfc3339(now, "%.3f"),
                level_name(level),
                quoted_if_needed(message)
            );
            write_text_fields(&mut line, fields);
        }
        Style::Json => {
            let _ = write!(
                line,
                "{{\"time\":{},\"level\":\"{}\",\"msg\":{}",
                json_string(&rfc3339_nano(now)),
                level_name(level),
                json_string(message)
            );
            for (key, value) in fields {
                let _ = write!(line, ",{}:{}", json_string(key), json_value(value));
            }
            line.push('}');
        }
    }
    line.push('\n');
    line
}

fn write_text_fields(line: &mut String, fields: &[(String, Value)]) {
    for (key, value) in fields {
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            " {}={}",
            quoted_if_needed(key),
            quoted_if_needed(&text_value(value))
        );
    }
}

/// `2006-01-02T15:04:05<frac>Z07:00` with `Z` for UTC.
fn rfc3339<Tz: chrono::TimeZone>(now: &DateTime<Tz>, fraction: &str) -> String
where
    Tz::Offset: fmt::Display,
{
    let zone = if now.offset().fix().local_minus_utc() == 0 {
        "Z".to_owned()
    } else {
        now.format("%:z").to_string()
    };
    format!(
        "{}{zone}",
        now.format(&format!("%Y-%m-%dT%H:%M:%S{fraction}"))
    )
}

/// Go's `time.RFC3339Nano`: nanoseconds with trailing zeros trimmed, no fraction when zero.
fn rfc3339_nano<Tz: chrono::TimeZone>(now: &DateTime<Tz>) -> String
where
    Tz::Offset: fmt::Display,
{
    let full = rfc3339(now, "%.9f");
    // The fraction is the only `.` in the text.
    match full.split_once('.') {
        Some((head, tail)) => {
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            let zone = &tail[digits.len()..];
            let trimmed = digits.trim_end_matches('0');
            if trimmed.is_empty() {
                format!("{head}{zone}")
            } else {
                format!("{head}.{trimmed}{zone}")
            }
        }
        None => full,
    }
}

fn json_value(value: &Value) -> String {
    match value {
        Value::Str(text) => json_string(text),
        Value::I64(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F64(v) if v.is_finite() => v.to_string(),
        Value::F64(v) => json_string(&v.to_string()),
        Value::Bool(v) => v.to_string(),
        Value::Duration(d) => d.0.to_string(),
    }
}

/// A JSON string as slog writes it: no HTML escaping; U+2028 and U+2029 escaped.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, TimeZone, Utc};

    fn at_utc() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 19, 28, 8).unwrap()
            + chrono::Duration::nanoseconds(497_506_321)
    }

    fn fields(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn format_go_default_leaves_message_unquoted() {
        let line = format_line(
            Style::GoDefault,
            &at_utc(),
            LogLevel::Info,
            "sync: new generation",
            &fields(&[
                ("db", Value::Str("/data/app.db".into())),
                ("generation", Value::Str("afa94d810124981b".into())),
                ("reason", Value::Str("no generation exists".into())),
            ]),
        );
        assert_eq!(
            line,
            "2026/11/25 19:28:08 INFO sync: new generation db=/data/app.db generation=afa94d810124981b reason=\"no generation exists\"\n"
        );
    }

    #[test]
    fn format_text_matches_slog_text_handler() {
        let line = format_line(
            Style::Text,
            &at_utc(),
            LogLevel::Info,
            "wal segment written",
            &fields(&[
                ("position", Value::Str("249c268eb6efdc47/00000000:0".into())),
                ("elapsed", Value::Duration(GoDuration(1_501_020))),
                ("sz", Value::I64(16512)),
            ]),
        );
        assert_eq!(
            line,
            "time=2026-11-25T19:28:08.497Z level=INFO msg=\"wal segment written\" position=249c268eb6efdc47/00000000:0 elapsed=1.50102ms sz=16512\n"
        );
        let single = format_line(Style::Text, &at_utc(), LogLevel::Error, "litestream", &[]);
        assert_eq!(
            single,
            "time=2026-11-25T19:28:08.497Z level=ERROR msg=litestream\n"
        );
    }

    #[test]
    fn format_text_quotes_error_with_nbsp() {
        let line = format_line(
            Style::GoDefault,
            &at_utc(),
            LogLevel::Error,
            "failed to run",
            &fields(&[(
                "error",
                Value::Str("invalid -timestamp, must specify in ISO 8601\u{a0}format".into()),
            )]),
        );
        assert_eq!(
            line,
            "2026/11/25 19:28:08 ERROR failed to run error=\"invalid -timestamp, must specify in ISO 8601\\u00a0format\"\n"
        );
    }

    #[test]
    fn format_text_uses_local_offset() {
        let zone = FixedOffset::east_opt(2 * 3600).unwrap();
        let line = format_line(
            Style::Text,
            &at_utc().with_timezone(&zone),
            LogLevel::Warn,
            "x",
            &[],
        );
        assert_eq!(
            line,
            "time=2026-11-25T21:28:08.497+02:00 level=WARN msg=x\n"
        );
    }

    #[test]
    fn format_json_matches_slog_json_handler() {
        let line = format_line(
            Style::Json,
            &at_utc(),
            LogLevel::Info,
            "replicating to",
            &fields(&[
                ("name", Value::Str("file".into())),
                ("sync-interval", Value::Duration(GoDuration(1_000_000_000))),
                ("ok", Value::Bool(true)),
                ("note", Value::Str("a\"b<c>\n".into())),
            ]),
        );
        assert_eq!(
            line,
            "{\"time\":\"2026-11-25T19:28:08.497506321Z\",\"level\":\"INFO\",\"msg\":\"replicating to\",\"name\":\"file\",\"sync-interval\":1000000000,\"ok\":true,\"note\":\"a\\\"b<c>\\n\"}\n"
        );
    }

    #[test]
    fn rfc3339_nano_trims_trailing_zeros() {
        let whole = Utc.with_ymd_and_hms(2026, 11, 25, 19, 30, 43).unwrap();
        assert_eq!(rfc3339_nano(&whole), "2026-11-25T19:30:43Z");
        let frac = whole + chrono::Duration::nanoseconds(595_817_280);
        assert_eq!(rfc3339_nano(&frac), "2026-11-25T19:30:43.59581728Z");
    }

    #[test]
    fn parse_rust_duration_reads_debug_text() {
        for d in [
            std::time::Duration::from_nanos(17_011_044),
            std::time::Duration::from_secs(281),
            std::time::Duration::from_nanos(908_134),
            std::time::Duration::from_nanos(7),
            std::time::Duration::ZERO,
        ] {
            let parsed = parse_rust_duration(&format!("{d:?}")).unwrap();
            assert_eq!(parsed.to_std(), d);
        }
        for text in ["file", "5", "s", ".5s", "1.s", "-1s", "1h"] {
            assert_eq!(parse_rust_duration(text), None, "{text}");
        }
    }

    #[test]
    fn error_chain_words_os_errors_like_go() {
        let err = io::Error::from_raw_os_error(2);
        assert_eq!(error_chain(&err), "no such file or directory");
    }

    #[test]
    fn error_chain_joins_sources() {
        let inner = io::Error::new(io::ErrorKind::NotFound, "no such file");
        let outer = io::Error::other(Chained("cannot open /x", inner));
        assert_eq!(error_chain(&outer), "cannot open /x: no such file");
    }

    #[test]
    fn error_chain_says_a_source_its_error_already_printed_once() {
        let inner = io::Error::new(io::ErrorKind::NotFound, "403 Forbidden");
        let outer = io::Error::other(Chained("list failed: 403 Forbidden", inner));
        assert_eq!(error_chain(&outer), "list failed: 403 Forbidden");
    }

    #[derive(Debug)]
    struct Chained(&'static str, io::Error);
    impl fmt::Display for Chained {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Chained {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }
}
