//! `litestream.yml`: where it is, how it is read (spec 10.1-10.3), and the settings it holds.
//!
//! Reading is Litestream's `ReadConfigFile`: `$VAR` expansion over the raw text (unless
//! `-no-expand-env`), YAML 1.1 through figment and serde-saphyr, unknown keys ignored, every
//! database path `~`-expanded and made absolute, and the global S3 keys copied into replicas
//! that have none. Replica settings are checked against each other only when a replica client
//! is built (`crate::client`), as Litestream does, so a broken replica of one database does not
//! stop a command about another.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use figment::Figment;
use figment::providers::Format;
use serde::{Deserialize, Deserializer};
use serde_saphyr::figment::Yaml;

use crate::duration::GoDuration;
use crate::env_expand::expand_env;
use crate::quote::go_quote;

/// The config file when neither `-config` nor `$LITESTREAM_CONFIG` names one.
const DEFAULT_CONFIG_PATH: &str = "/etc/litestream.yml";

/// A loaded `litestream.yml` with Litestream's defaults filled in.
#[derive(Debug)]
pub(crate) struct Config {
    /// The absolute path the file was read from.
    pub(crate) path: PathBuf,
    /// `addr`: the metrics HTTP bind address; empty when off.
    pub(crate) addr: String,
    /// `exec`: the child command; empty when none.
    pub(crate) exec: String,
    /// `logging`.
    pub(crate) logging: LoggingConfig,
    /// `dbs`, in file order.
    pub(crate) dbs: Vec<DbConfig>,
}

/// The `logging` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoggingConfig {
    /// `logging.level`.
    pub(crate) level: LogLevel,
    /// `logging.type`.
    pub(crate) format: LogFormat,
    /// `logging.stderr`: log to stderr instead of stdout.
    pub(crate) stderr: bool,
}

/// The least severe level that is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LogLevel {
    /// `debug`.
    Debug,
    /// `info`, and anything Litestream does not know.
    Info,
    /// `warn` or `warning`.
    Warn,
    /// `error`.
    Error,
}

/// How log lines are written once a config file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// `time=... level=... msg=...`, Go slog's text handler.
    Text,
    /// One JSON object per line, Go slog's JSON handler.
    Json,
}

/// One entry of `dbs`.
#[derive(Debug)]
pub(crate) struct DbConfig {
    /// Where the entry is in the file, such as `dbs[0]`, for error messages.
    pub(crate) key: String,
    /// `path`, `~`-expanded and absolute.
    pub(crate) path: PathBuf,
    /// `meta-path`, used verbatim.
    pub(crate) meta_path: Option<PathBuf>,
    /// `monitor-interval` (1s); `<= 0` disables the monitor.
    pub(crate) monitor_interval: GoDuration,
    /// `checkpoint-interval` (1m); 0 disables time-based checkpoints.
    pub(crate) checkpoint_interval: GoDuration,
    /// `min-checkpoint-page-count` (1000); must be positive when the database is opened.
    pub(crate) min_checkpoint_page_count: i64,
    /// `max-checkpoint-page-count` (10000); `<= 0` disables RESTART checkpoints.
    pub(crate) max_checkpoint_page_count: i64,
    /// `replicas`, in file order.
    pub(crate) replicas: Vec<ReplicaConfig>,
}

/// One replica, from `dbs[].replicas[]` or from a replica URL on the command line.
///
/// The storage fields are kept as written; `crate::client` checks them against each other.
#[derive(Debug, Default)]
pub(crate) struct ReplicaConfig {
    /// Where the replica is described, for error messages: `dbs[0].replicas[1]` or the URL.
    pub(crate) key: String,
    /// `name`; empty means the replica type.
    pub(crate) name: String,
    /// `type`; empty means the URL scheme, else `file`.
    pub(crate) kind: String,
    /// `url`.
    pub(crate) url: UrlText,
    /// `path`: file directory, object key prefix or remote directory.
    pub(crate) path: String,
    /// `retention` (24h); `<= 0` disables retention.
    pub(crate) retention: GoDuration,
    /// `retention-check-interval` (1h).
    pub(crate) retention_check_interval: GoDuration,
    /// `snapshot-interval` (0: off).
    pub(crate) snapshot_interval: GoDuration,
    /// `validation-interval` (0: off).
    pub(crate) validation_interval: GoDuration,
    /// `sync-interval` (1s).
    pub(crate) sync_interval: GoDuration,
    /// `age.identities`.
    pub(crate) age_identities: Vec<Secret>,
    /// `age.recipients`.
    pub(crate) age_recipients: Vec<String>,
    /// `access-key-id`, or the global one.
    pub(crate) access_key_id: Secret,
    /// `secret-access-key`, or the global one.
    pub(crate) secret_access_key: Secret,
    /// `region`.
    pub(crate) region: String,
    /// `bucket` (bucket or container).
    pub(crate) bucket: String,
    /// `endpoint`.
    pub(crate) endpoint: String,
    /// `force-path-style`; unset means `endpoint != ""`.
    pub(crate) force_path_style: Option<bool>,
    /// `skip-verify`.
    pub(crate) skip_verify: bool,
    /// `account-name`.
    pub(crate) account_name: String,
    /// `account-key`.
    pub(crate) account_key: Secret,
    /// `host`.
    pub(crate) host: String,
    /// `user`.
    pub(crate) user: String,
    /// `password`.
    pub(crate) password: Secret,
    /// `key-path`.
    pub(crate) key_path: String,
    /// `host-key` (not in 0.3.13): the SFTP server's expected public key, OpenSSH format.
    pub(crate) host_key: String,
    /// `insecure-ignore-host-key` (not in 0.3.13): accept any SFTP host key, as 0.3.13 does.
    pub(crate) insecure_ignore_host_key: bool,
}

/// A replica URL as written; `Debug` hides the password an `sftp://user:password@host` URL may
/// hold.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct UrlText(String);

/// A credential: printed by `Debug` as `<redacted>` so it never reaches a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret(String);

/// Why `litestream.yml` could not be used. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file does not exist (Litestream's exact text).
    #[error("config file not found: {}", path.display())]
    NotFound {
        /// The absolute path looked at.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read config {}", path.display())]
    Read {
        /// The absolute path.
        path: PathBuf,
        /// The read failure.
        #[source]
        source: io::Error,
    },
    /// The text is not YAML, or a value has the wrong type or form.
    #[error("cannot load config {}: {}", path.display(), describe(key, message))]
    Invalid {
        /// The absolute path.
        path: PathBuf,
        /// The key at fault, such as `dbs[0].replicas[0].retention`; empty for the whole file.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

fn describe(key: &str, message: &str) -> String {
    if key.is_empty() {
        message.to_owned()
    } else {
        format!("{key}: {message}")
    }
}

/// Whether `$VAR` references in the file are expanded (`-no-expand-env` turns it off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EnvExpansion {
    /// Expand, as Litestream does by default.
    Expand,
    /// Read the text as is.
    Off,
}

impl Config {
    /// The config file read when `-config` is not given: `$LITESTREAM_CONFIG` when non-empty,
    /// else `/etc/litestream.yml`; not yet expanded.
    pub(crate) fn default_path() -> PathBuf {
        match std::env::var_os("LITESTREAM_CONFIG") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// Reads and checks the file at `path` (`~`-expanded and made absolute first).
    ///
    /// # Errors
    /// When the file is missing or unreadable, is not YAML, or a value has the wrong form;
    /// the error names the file and the key.
    pub(crate) fn load(path: &Path, expansion: EnvExpansion) -> Result<Self, ConfigError> {
        let path = expand_path(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ConfigError::NotFound { path });
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::from_text(path, &text, expansion)
    }

    /// Parses config `text` as if read from `path` (absolute).
    ///
    /// # Errors
    /// As [`Config::load`], minus the I/O.
    pub(crate) fn from_text(
        path: PathBuf,
        text: &str,
        expansion: EnvExpansion,
    ) -> Result<Self, ConfigError> {
        let text = match expansion {
            EnvExpansion::Expand => expand_env(text),
            EnvExpansion::Off => text.to_owned(),
        };
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.clone(),
            key,
            message,
        };
        // An empty document (or one of comments only) is an empty config, as in Go's yaml.v2.
        let raw: RawConfig = if is_blank_yaml(&text) {
            RawConfig::default()
        } else {
            Figment::from(Yaml::string(&text))
                .extract()
                .map_err(|err| invalid(figment_key(&err), one_line(&err.kind.to_string())))?
        };

        let logging = LoggingConfig {
            level: LogLevel::parse(&raw.logging.level),
            format: LogFormat::parse(&raw.logging.kind).ok_or_else(|| {
                invalid(
                    "logging.type".to_owned(),
                    format!(
                        "unknown log type {}: want text or json",
                        go_quote(&raw.logging.kind)
                    ),
                )
            })?,
            stderr: raw.logging.stderr.unwrap_or(false),
        };

        let mut dbs = Vec::with_capacity(raw.dbs.len());
        for (db_index, raw_db) in raw.dbs.into_iter().enumerate() {
            let key = format!("dbs[{db_index}]");
            if raw_db.path.is_empty() {
                return Err(invalid(
                    format!("{key}.path"),
                    "database path required".to_owned(),
                ));
            }
            let db_path = expand_path(Path::new(&raw_db.path))
                .map_err(|err| invalid(format!("{key}.path"), err.to_string()))?;
            let replicas = raw_db
                .replicas
                .into_iter()
                .enumerate()
                .map(|(replica_index, raw_replica)| {
                    raw_replica.into_config(
                        format!("{key}.replicas[{replica_index}]"),
                        &raw.access_key_id,
                        &raw.secret_access_key,
                    )
                })
                .collect();
            dbs.push(DbConfig {
                key,
                path: db_path,
                meta_path: raw_db.meta_path.map(PathBuf::from),
                monitor_interval: raw_db.monitor_interval.unwrap_or(GoDuration(1_000_000_000)),
                checkpoint_interval: raw_db
                    .checkpoint_interval
                    .unwrap_or(GoDuration(60_000_000_000)),
                min_checkpoint_page_count: raw_db.min_checkpoint_page_count.unwrap_or(1000),
                max_checkpoint_page_count: raw_db.max_checkpoint_page_count.unwrap_or(10_000),
                replicas,
            });
        }

        Ok(Self {
            path,
            addr: raw.addr,
            exec: raw.exec,
            logging,
            dbs,
        })
    }

    /// The database whose expanded path is exactly `path` (already expanded).
    pub(crate) fn db(&self, path: &Path) -> Option<&DbConfig> {
        self.dbs.iter().find(|db| db.path == path)
    }
}

impl ReplicaConfig {
    /// A replica given only by its URL on the command line, with Litestream's defaults and no
    /// credentials but the environment's.
    pub(crate) fn from_url(url: &str) -> Self {
        RawReplicaConfig {
            url: url.to_owned(),
            ..RawReplicaConfig::default()
        }
        .into_config(
            ls_backends::redact_url(url).into_owned(),
            &Secret::default(),
            &Secret::default(),
        )
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            format: LogFormat::Text,
            stderr: false,
        }
    }
}

impl LogLevel {
    /// Litestream's reading of `logging.level`: case-insensitive, unknown means info.
    fn parse(text: &str) -> Self {
        match text.to_ascii_uppercase().as_str() {
            "DEBUG" => Self::Debug,
            "WARN" | "WARNING" => Self::Warn,
            "ERROR" => Self::Error,
            _ => Self::Info,
        }
    }
}

impl LogFormat {
    /// `text`, `json` or empty (text). Litestream 0.3.13 crashes on anything else; we refuse it.
    fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

impl Secret {
    /// A credential for unit tests elsewhere in the crate.
    #[cfg(test)]
    pub(crate) fn from_test(text: &str) -> Self {
        Self(text.to_owned())
    }

    /// The credential itself, for the code that hands it to a storage client or decrypts.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no credential was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl UrlText {
    /// The URL as written, password included.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether no URL was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for UrlText {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for UrlText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&ls_backends::redact_url(&self.0), f)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

/// `~`-expands `path` and makes it absolute and clean, as Litestream's `expand`: `~` and
/// `~/...` use the home directory; relative paths are relative to the working directory.
///
/// # Errors
/// When the home directory or the working directory is unknown.
pub(crate) fn expand_path(path: &Path) -> io::Result<PathBuf> {
    let home_relative = if path == Path::new("~") {
        Some(Path::new(""))
    } else {
        path.strip_prefix("~")
            .ok()
            .filter(|_| path.as_os_str().as_encoded_bytes().starts_with(b"~/"))
    };
    if let Some(rest) = home_relative {
        let home = std::env::home_dir()
            .filter(|home| !home.as_os_str().is_empty())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "cannot expand path {}, no home directory available",
                    path.display()
                ))
            })?;
        return Ok(clean(&home.join(rest)));
    }
    if path.is_absolute() {
        return Ok(clean(path));
    }
    Ok(clean(&std::env::current_dir()?.join(path)))
}

/// Lexical clean of an absolute path, as Go's `filepath.Clean`: no `.`, no `..`, no doubled or
/// trailing separators.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                // `..` at the root stays at the root.
                if out.parent().is_some() {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether YAML `text` holds no document content: only blank lines and comments.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    })
}

/// The key of a figment error as the user wrote it: `dbs[0].replicas[1].retention`.
fn figment_key(err: &figment::Error) -> String {
    let mut key = String::new();
    for part in &err.path {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            key.push('[');
            key.push_str(part);
            key.push(']');
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    key
}

/// Joins a possibly multi-line message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The file as written, before defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(deserialize_with = "loose_string")]
    addr: String,
    #[serde(deserialize_with = "or_default")]
    dbs: Vec<RawDbConfig>,
    #[serde(deserialize_with = "loose_string")]
    exec: String,
    #[serde(deserialize_with = "loose_secret")]
    access_key_id: Secret,
    #[serde(deserialize_with = "loose_secret")]
    secret_access_key: Secret,
    #[serde(deserialize_with = "or_default")]
    logging: RawLogging,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct RawLogging {
    #[serde(deserialize_with = "loose_string")]
    level: String,
    #[serde(rename = "type", deserialize_with = "loose_string")]
    kind: String,
    stderr: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct RawDbConfig {
    #[serde(deserialize_with = "loose_string")]
    path: String,
    #[serde(deserialize_with = "loose_opt_string")]
    meta_path: Option<String>,
    #[serde(deserialize_with = "opt_duration")]
    monitor_interval: Option<GoDuration>,
    #[serde(deserialize_with = "opt_duration")]
    checkpoint_interval: Option<GoDuration>,
    min_checkpoint_page_count: Option<i64>,
    max_checkpoint_page_count: Option<i64>,
    #[serde(deserialize_with = "or_default")]
    replicas: Vec<RawReplicaConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct RawReplicaConfig {
    #[serde(rename = "type", deserialize_with = "loose_string")]
    kind: String,
    #[serde(deserialize_with = "loose_string")]
    name: String,
    #[serde(deserialize_with = "loose_string")]
    path: String,
    #[serde(deserialize_with = "loose_string")]
    url: String,
    #[serde(deserialize_with = "opt_duration")]
    retention: Option<GoDuration>,
    #[serde(deserialize_with = "opt_duration")]
    retention_check_interval: Option<GoDuration>,
    #[serde(deserialize_with = "opt_duration")]
    snapshot_interval: Option<GoDuration>,
    #[serde(deserialize_with = "opt_duration")]
    validation_interval: Option<GoDuration>,
    #[serde(deserialize_with = "opt_duration")]
    sync_interval: Option<GoDuration>,
    #[serde(deserialize_with = "or_default")]
    age: RawAge,
    #[serde(deserialize_with = "loose_secret")]
    access_key_id: Secret,
    #[serde(deserialize_with = "loose_secret")]
    secret_access_key: Secret,
    #[serde(deserialize_with = "loose_string")]
    region: String,
    #[serde(deserialize_with = "loose_string")]
    bucket: String,
    #[serde(deserialize_with = "loose_string")]
    endpoint: String,
    force_path_style: Option<bool>,
    skip_verify: Option<bool>,
    #[serde(deserialize_with = "loose_string")]
    account_name: String,
    #[serde(deserialize_with = "loose_secret")]
    account_key: Secret,
    #[serde(deserialize_with = "loose_string")]
    host: String,
    #[serde(deserialize_with = "loose_string")]
    user: String,
    #[serde(deserialize_with = "loose_secret")]
    password: Secret,
    #[serde(deserialize_with = "loose_string")]
    key_path: String,
    #[serde(deserialize_with = "loose_string")]
    host_key: String,
    insecure_ignore_host_key: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAge {
    #[serde(deserialize_with = "or_default")]
    identities: Vec<LooseString>,
    #[serde(deserialize_with = "or_default")]
    recipients: Vec<LooseString>,
}

impl RawReplicaConfig {
    /// Fills Litestream's defaults and the global S3 keys (its `propagateGlobalSettings`).
    fn into_config(
        self,
        key: String,
        global_access_key_id: &Secret,
        global_secret_access_key: &Secret,
    ) -> ReplicaConfig {
        let or_global = |own: Secret, global: &Secret| {
            if own.is_empty() { global.clone() } else { own }
        };
        ReplicaConfig {
            key,
            name: self.name,
            kind: self.kind,
            url: UrlText(self.url),
            path: self.path,
            retention: self.retention.unwrap_or(GoDuration(24 * 3_600_000_000_000)),
            retention_check_interval: self
                .retention_check_interval
                .unwrap_or(GoDuration(3_600_000_000_000)),
            snapshot_interval: self.snapshot_interval.unwrap_or_default(),
            validation_interval: self.validation_interval.unwrap_or_default(),
            sync_interval: self.sync_interval.unwrap_or(GoDuration(1_000_000_000)),
            age_identities: self
                .age
                .identities
                .into_iter()
                .map(|identity| Secret(identity.0))
                .collect(),
            age_recipients: self.age.recipients.into_iter().map(|r| r.0).collect(),
            access_key_id: or_global(self.access_key_id, global_access_key_id),
            secret_access_key: or_global(self.secret_access_key, global_secret_access_key),
            region: self.region,
            bucket: self.bucket,
            endpoint: self.endpoint,
            force_path_style: self.force_path_style,
            skip_verify: self.skip_verify.unwrap_or(false),
            account_name: self.account_name,
            account_key: self.account_key,
            host: self.host,
            user: self.user,
            password: self.password,
            key_path: self.key_path,
            host_key: self.host_key,
            insecure_ignore_host_key: self.insecure_ignore_host_key.unwrap_or(false),
        }
    }
}

/// A YAML scalar read as text, as Go's yaml.v2 fills a string field from any scalar: `2024`
/// becomes `"2024"`. (Booleans and floats come back in their canonical spelling: `yes` reads
/// as `true`.) Null reads as empty.
#[derive(Debug, Default)]
struct LooseString(String);

impl<'de> Deserialize<'de> for LooseString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LooseString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(LooseString(v))
            }
            fn visit_char<E: serde::de::Error>(self, v: char) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(LooseString(String::new()))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(LooseString(String::new()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn loose_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    LooseString::deserialize(deserializer).map(|s| s.0)
}

fn loose_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    LooseString::deserialize(deserializer).map(|s| Secret(s.0))
}

fn loose_opt_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<LooseString>::deserialize(deserializer)?.map(|s| s.0))
}

/// A missing or null value reads as the default, as Go leaves a nil slice or zero struct.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A Go duration: text (`1h30m`) or a bare integer of nanoseconds, as yaml.v2 decodes
/// `time.Duration`.
fn opt_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<GoDuration>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Option<GoDuration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 10s, 1m30s or 24h")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            GoDuration::parse(v).map(Some).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(GoDuration(v)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(|v| Some(GoDuration(v)))
                .map_err(|_| E::custom(format!("duration {v} out of range")))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(PathBuf::from("/x/litestream.yml"), text, EnvExpansion::Off)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn config_defaults_fill_every_key() {
        let config =
            parse("dbs:\n  - path: /data/app.db\n    replicas:\n      - path: /backup/app\n")
                .unwrap();
        assert_eq!(config.addr, "");
        assert_eq!(config.logging, LoggingConfig::default());
        let db = &config.dbs[0];
        assert_eq!(db.key, "dbs[0]");
        assert_eq!(db.path, Path::new("/data/app.db"));
        assert_eq!(db.monitor_interval, GoDuration(1_000_000_000));
        assert_eq!(db.checkpoint_interval, GoDuration(60_000_000_000));
        assert_eq!(db.min_checkpoint_page_count, 1000);
        assert_eq!(db.max_checkpoint_page_count, 10_000);
        assert_eq!(db.meta_path, None);
        let replica = &db.replicas[0];
        assert_eq!(replica.key, "dbs[0].replicas[0]");
        assert_eq!(replica.path, "/backup/app");
        assert_eq!(replica.retention, GoDuration(86_400_000_000_000));
        assert_eq!(
            replica.retention_check_interval,
            GoDuration(3_600_000_000_000)
        );
        assert_eq!(replica.snapshot_interval, GoDuration(0));
        assert_eq!(replica.validation_interval, GoDuration(0));
        assert_eq!(replica.sync_interval, GoDuration(1_000_000_000));
        assert_eq!(replica.force_path_style, None);
    }

    #[test]
    fn config_reads_every_key() {
        let config = parse(
            r#"
access-key-id: AKIAGLOBAL
secret-access-key: globalsecret
addr: ":9090"
exec: "sleep 1"
logging:
  level: DeBuG
  type: json
  stderr: yes
dbs:
  - path: /data/app.db
    meta-path: /meta
    monitor-interval: 500ms
    checkpoint-interval: 10s
    min-checkpoint-page-count: 20
    max-checkpoint-page-count: 0
    bogus-key: ignored
    replica:
      path: ignored-too
    replicas:
      - name: offsite
        type: s3
        url: s3://mybkt/app
        retention: 72h
        retention-check-interval: 30m
        snapshot-interval: 24h
        validation-interval: 1.5h
        sync-interval: 5
        region: us-west-2
        bucket: 2024
        endpoint: http://localhost:9000
        force-path-style: off
        skip-verify: on
        access-key-id: AKIAOWN
        age:
          identities: [AGE-SECRET-KEY-1XYZ]
          recipients: [age1abc]
      - type: sftp
        host: example.com:2222
        user: me
        password: hunter2
        key-path: /k
        account-name: acct
        account-key: key
"#,
        )
        .unwrap();
        assert_eq!(config.addr, ":9090");
        assert_eq!(config.exec, "sleep 1");
        assert_eq!(
            config.logging,
            LoggingConfig {
                level: LogLevel::Debug,
                format: LogFormat::Json,
                stderr: true
            }
        );
        let db = &config.dbs[0];
        assert_eq!(db.meta_path.as_deref(), Some(Path::new("/meta")));
        assert_eq!(db.monitor_interval, GoDuration(500_000_000));
        assert_eq!(db.min_checkpoint_page_count, 20);
        assert_eq!(db.max_checkpoint_page_count, 0);
        let s3 = &db.replicas[0];
        assert_eq!(
            (s3.name.as_str(), s3.kind.as_str(), s3.url.as_str()),
            ("offsite", "s3", "s3://mybkt/app")
        );
        assert_eq!(s3.retention, GoDuration(72 * 3_600_000_000_000));
        assert_eq!(s3.retention_check_interval, GoDuration(1_800_000_000_000));
        assert_eq!(s3.validation_interval, GoDuration(5_400_000_000_000));
        assert_eq!(s3.sync_interval, GoDuration(5));
        assert_eq!(s3.bucket, "2024");
        assert_eq!(s3.region, "us-west-2");
        assert_eq!(s3.endpoint, "http://localhost:9000");
        assert_eq!(s3.force_path_style, Some(false));
        assert!(s3.skip_verify);
        assert_eq!(s3.access_key_id.expose(), "AKIAOWN");
        assert_eq!(s3.secret_access_key.expose(), "globalsecret");
        assert_eq!(s3.age_identities[0].expose(), "AGE-SECRET-KEY-1XYZ");
        assert_eq!(s3.age_recipients, ["age1abc"]);
        let sftp = &db.replicas[1];
        assert_eq!(sftp.access_key_id.expose(), "AKIAGLOBAL");
        assert_eq!(
            (sftp.host.as_str(), sftp.user.as_str()),
            ("example.com:2222", "me")
        );
        assert_eq!(sftp.password.expose(), "hunter2");
        assert_eq!(sftp.key_path, "/k");
        assert_eq!(sftp.account_name, "acct");
        assert_eq!(sftp.account_key.expose(), "key");
    }

    #[test]
    fn config_debug_redacts_secrets() {
        let config = parse(
            "access-key-id: AKIAVISIBLE\nsecret-access-key: topsecret\ndbs:\n  - path: /a\n    replicas:\n      - url: sftp://me:urlpass@host/x\n      - password: pw123\n        account-key: acctkey\n        age:\n          identities: [AGE-SECRET-KEY-1ABC]\n",
        )
        .unwrap();
        let debug = format!("{config:?}");
        for secret in [
            "AKIAVISIBLE",
            "topsecret",
            "urlpass",
            "pw123",
            "acctkey",
            "AGE-SECRET-KEY-1ABC",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn config_day_duration_names_key() {
        assert_eq!(
            error("dbs:\n  - path: /a\n    replicas:\n      - path: /b\n        retention: 1d\n"),
            r#"cannot load config /x/litestream.yml: dbs[0].replicas[0].retention: invalid duration "1d": unknown unit "d""#
        );
    }

    #[test]
    fn config_wrong_type_names_key() {
        let message = error("dbs:\n  - path: /a\n    min-checkpoint-page-count: many\n");
        assert!(
            message.starts_with(
                "cannot load config /x/litestream.yml: dbs[0].min-checkpoint-page-count: "
            ),
            "{message}"
        );
    }

    #[test]
    fn config_broken_yaml_is_one_line_naming_file_and_line() {
        let message = error("dbs:\n  - path: /a\n   replicas: [\n");
        assert!(
            message.starts_with("cannot load config /x/litestream.yml: "),
            "{message}"
        );
        assert!(message.contains("line"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn config_unknown_log_type_is_refused() {
        assert_eq!(
            error("logging:\n  type: xml\n"),
            r#"cannot load config /x/litestream.yml: logging.type: unknown log type "xml": want text or json"#
        );
    }

    #[test]
    fn config_log_level_unknown_means_info() {
        assert_eq!(
            parse("logging:\n  level: loud\n").unwrap().logging.level,
            LogLevel::Info
        );
        assert_eq!(
            parse("logging:\n  level: warning\n").unwrap().logging.level,
            LogLevel::Warn
        );
        assert_eq!(
            parse("logging:\n  level: ERROR\n").unwrap().logging.level,
            LogLevel::Error
        );
    }

    #[test]
    fn config_empty_or_null_sections_are_defaults() {
        assert!(parse("").unwrap().dbs.is_empty());
        assert!(parse("# only a comment\n").unwrap().dbs.is_empty());
        assert!(parse("dbs:\n").unwrap().dbs.is_empty());
        let config =
            parse("logging:\ndbs:\n  - path: /a\n    replicas:\n    meta-path:\n").unwrap();
        assert!(config.dbs[0].replicas.is_empty());
        assert_eq!(config.dbs[0].meta_path, None);
    }

    #[test]
    fn config_db_path_is_expanded_and_cleaned() {
        let config = parse("dbs:\n  - path: /data/./x/../app.db\n  - path: rel.db\n").unwrap();
        assert_eq!(config.dbs[0].path, Path::new("/data/app.db"));
        assert_eq!(
            config.dbs[1].path,
            std::env::current_dir().unwrap().join("rel.db")
        );
        assert!(config.db(Path::new("/data/app.db")).is_some());
        assert!(config.db(Path::new("/data/other.db")).is_none());
    }

    #[test]
    fn config_expands_env_unless_disabled() {
        // PATH is set in every test environment.
        let path = std::env::var("PATH").unwrap();
        let text = "exec: \"$PATH\"\n";
        let expanded =
            Config::from_text(PathBuf::from("/x.yml"), text, EnvExpansion::Expand).unwrap();
        assert_eq!(expanded.exec, path);
        let verbatim = Config::from_text(PathBuf::from("/x.yml"), text, EnvExpansion::Off).unwrap();
        assert_eq!(verbatim.exec, "$PATH");
    }

    #[test]
    fn expand_path_handles_home_and_relative() {
        let home = std::env::home_dir().unwrap();
        assert_eq!(expand_path(Path::new("~")).unwrap(), clean(&home));
        assert_eq!(
            expand_path(Path::new("~/a/../b.db")).unwrap(),
            home.join("b.db")
        );
        assert_eq!(expand_path(Path::new("/a//b/")).unwrap(), Path::new("/a/b"));
        assert_eq!(expand_path(Path::new("/../a")).unwrap(), Path::new("/a"));
        assert_eq!(
            expand_path(Path::new("~x/y")).unwrap(),
            std::env::current_dir().unwrap().join("~x/y")
        );
    }
}
