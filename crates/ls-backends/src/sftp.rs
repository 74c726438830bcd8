//! The `sftp` replica client: a replica in a directory of an SFTP server, as Litestream's
//! `sftp.ReplicaClient`, over russh and russh-sftp.
//!
//! One SSH connection per client, opened on first use and reused; after a failure that is not
//! a plain SFTP status (no such file, permission denied, ...) the connection is dropped and the
//! next call opens a new one, as 0.3.13 resets its client after a lost connection.
//!
//! Unlike 0.3.13, the server's host key is checked by default ([`HostKeyCheck`]). Writes go to
//! `<final name>.tmp` and are renamed into place (0.3.13 writes the final name directly), so a
//! failed upload never leaves a partial object behind. Listings take `created_at` from remote
//! mtimes (whole seconds).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use ls_core::{
    ByteStream, ClientError, Generation, Pos, ReplicaClient, SnapshotInfo, WalSegmentInfo, layout,
};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::secret::Secret;

/// Largest chunk a reader yields.
const READ_CHUNK_BYTES: usize = 32 * 1024;
/// SSH's port when `host` has none.
const DEFAULT_PORT: u16 = 22;

/// How the SFTP server's host key is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key must be listed for the host in this OpenSSH `known_hosts` file (usually
    /// `~/.ssh/known_hosts`; see [`HostKeyCheck::default_known_hosts`]).
    KnownHosts(PathBuf),
    /// The key must be this one: an OpenSSH public key line, `ssh-ed25519 AAAA... [comment]`
    /// (the `host-key` setting).
    Key(String),
    /// Any key is accepted, with a warning on each connection: Litestream 0.3.13's behaviour
    /// (the `insecure-ignore-host-key` setting).
    InsecureIgnore,
}

/// Settings of an `sftp` replica (spec 11.5).
#[derive(Clone, Debug)]
pub struct SftpOptions {
    /// `host` or `host:port` (port 22 by default).
    pub host: String,
    /// The SSH user.
    pub user: String,
    /// Password authentication, when not empty.
    pub password: Secret,
    /// An unencrypted private key file (OpenSSH or PEM) for public key authentication, when not
    /// empty.
    pub key_path: String,
    /// The remote replica directory; relative paths start at the login directory.
    pub path: String,
    /// How the server's host key is checked.
    pub host_key: HostKeyCheck,
}

/// A replica in a directory of an SFTP server (Litestream's `sftp` replica type).
///
/// # Cancel safety
///
/// A write whose future is dropped leaves at most a `.tmp` file, which listings skip; the final
/// name is untouched unless the rename had been sent. A dropped delete may have deleted some of
/// its files.
pub struct SftpReplicaClient {
    options: SftpOptions,
    host: String,
    port: u16,
    /// The expected key of [`HostKeyCheck::Key`], parsed once.
    pinned_key: Option<PublicKey>,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

/// An authenticated SSH connection and its SFTP session.
struct Connection {
    sftp: SftpSession,
    /// Keeps the SSH connection open while the session is used.
    _ssh: russh::client::Handle<HostKeyChecker>,
}

/// The russh handler: checks the server's key, remembering why it refused one.
struct HostKeyChecker {
    host: String,
    port: u16,
    check: HostKeyCheck,
    pinned_key: Option<PublicKey>,
    refused: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    /// `$HOME/.ssh/known_hosts`, with `HOME` looked up through `env`; `None` without a home.
    pub fn default_known_hosts(env: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let home = env("HOME").filter(|home| !home.is_empty())?;
        Some(Self::KnownHosts(
            PathBuf::from(home).join(".ssh").join("known_hosts"),
        ))
    }
}

impl SftpReplicaClient {
    /// A client for `options`; connects on first use.
    ///
    /// # Errors
    /// [`crate::OpenError::Invalid`] for an empty host or user, a bad port, or a `host-key`
    /// that is not an OpenSSH public key.
    pub fn new(options: SftpOptions) -> Result<Self, crate::OpenError> {
        let invalid = |reason: String| crate::OpenError::Invalid {
            kind: "sftp",
            reason,
        };
        if options.host.is_empty() {
            return Err(invalid("host required for sftp replica".to_owned()));
        }
        if options.user.is_empty() {
            return Err(invalid("user required for sftp replica".to_owned()));
        }
        let (host, port) = split_host_port(&options.host)
            .ok_or_else(|| invalid(format!("invalid port in host {:?}", options.host)))?;
        let pinned_key = match &options.host_key {
            HostKeyCheck::Key(line) => Some(
                PublicKey::from_openssh(line.trim())
                    .map_err(|err| invalid(format!("invalid host-key {line:?}: {err}")))?,
            ),
            _ => None,
        };
        Ok(Self {
            host,
            port,
            pinned_key,
            options,
            connection: tokio::sync::Mutex::new(None),
        })
    }

    /// `sftp://user@host:port`, for errors.
    fn display_root(&self) -> String {
        format!("sftp://{}@{}", self.options.user, self.options.host)
    }

    /// The remote path of `relative` (a path from [`ls_core::layout`]) under the root.
    fn path(&self, relative: &str) -> String {
        join(&self.options.path, relative)
    }

    fn key(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.display_root())
        } else {
            format!("{}/~/{path}", self.display_root())
        }
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Arc<Connection>, ClientError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(Arc::clone(connection));
        }
        let connection = Arc::new(self.connect().await?);
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    async fn connect(&self) -> Result<Connection, ClientError> {
        let key = self.display_root();
        let backend = |op: &'static str, source: Box<dyn std::error::Error + Send + Sync>| {
            ClientError::Backend {
                op,
                key: key.clone(),
                source,
            }
        };
        let refused = Arc::new(Mutex::new(None));
        let checker = HostKeyChecker {
            host: self.host.clone(),
            port: self.port,
            check: self.options.host_key.clone(),
            pinned_key: self.pinned_key.clone(),
            refused: Arc::clone(&refused),
        };
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            ..russh::client::Config::default()
        });
        let mut ssh =
            match russh::client::connect(config, (self.host.as_str(), self.port), checker).await {
                Ok(ssh) => ssh,
                Err(err) => {
                    let reason = refused.lock().ok().and_then(|mut reason| reason.take());
                    return Err(match reason {
                        Some(reason) => backend("connect to", reason.into()),
                        None => backend("connect to", Box::new(err)),
                    });
                }
            };
        let user = self.options.user.clone();
        let mut authenticated = false;
        if !self.options.password.is_empty() {
            authenticated = ssh
                .authenticate_password(user.clone(), self.options.password.expose())
                .await
                .map_err(|err| backend("authenticate to", Box::new(err)))?
                .success();
        }
        if !authenticated && !self.options.key_path.is_empty() {
            let path = self.options.key_path.clone();
            let private_key =
                tokio::task::spawn_blocking(move || russh::keys::load_secret_key(&path, None))
                    .await
                    .map_err(|err| backend("authenticate to", Box::new(err)))?
                    .map_err(|err| {
                        backend(
                            "authenticate to",
                            format!("cannot read key-path {}: {err}", self.options.key_path).into(),
                        )
                    })?;
            let hash = ssh
                .best_supported_rsa_hash()
                .await
                .map_err(|err| backend("authenticate to", Box::new(err)))?
                .flatten();
            authenticated = ssh
                .authenticate_publickey(
                    user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(private_key), hash),
                )
                .await
                .map_err(|err| backend("authenticate to", Box::new(err)))?
                .success();
        }
        if !authenticated {
            return Err(backend(
                "authenticate to",
                format!("the server refused user {user:?} with the given password or key-path")
                    .into(),
            ));
        }
        let channel = ssh
            .channel_open_session()
            .await
            .map_err(|err| backend("open a session on", Box::new(err)))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|err| backend("start sftp on", Box::new(err)))?;
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|err| backend("start sftp on", Box::new(err)))?;
        Ok(Connection { sftp, _ssh: ssh })
    }

    /// Maps `err` on `path`, forgetting the connection unless the server answered with a
    /// plain status; a missing file is [`ClientError::NotFound`].
    async fn error(&self, op: &'static str, path: &str, err: SftpError) -> ClientError {
        let key = self.key(path);
        match &err {
            SftpError::Status(status) if status.status_code == StatusCode::NoSuchFile => {
                return ClientError::NotFound { key };
            }
            SftpError::Status(status)
                if !matches!(
                    status.status_code,
                    StatusCode::NoConnection | StatusCode::ConnectionLost
                ) => {}
            _ => *self.connection.lock().await = None,
        }
        ClientError::Backend {
            op,
            key,
            source: Box::new(err),
        }
    }

    /// The regular files in `dir` whose names `parse` accepts, with size and mtime; a missing
    /// `dir` has none.
    async fn list_files<T>(
        &self,
        dir: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<(T, u64, SystemTime)>, ClientError> {
        let connection = self.connection().await?;
        let entries = match connection.sftp.read_dir(dir).await {
            Ok(entries) => entries,
            Err(err) => {
                return match self.error("list", dir, err).await {
                    ClientError::NotFound { .. } => Ok(Vec::new()),
                    err => Err(err),
                };
            }
        };
        Ok(entries
            .filter_map(|entry| {
                let metadata = entry.metadata();
                if !metadata.file_type().is_file() {
                    return None;
                }
                let parsed = parse(&entry.file_name())?;
                Some((parsed, metadata.size.unwrap_or(0), mtime(&metadata)))
            })
            .collect())
    }

    /// Creates `dir` and its missing parents.
    async fn create_dir_all(&self, sftp: &SftpSession, dir: &str) -> Result<(), ClientError> {
        let mut missing = Vec::new();
        let mut current = dir.trim_end_matches('/').to_owned();
        while !current.is_empty() {
            match sftp.metadata(current.as_str()).await {
                Ok(metadata) if metadata.file_type().is_dir() => break,
                Ok(_) => {
                    return Err(ClientError::Backend {
                        op: "create",
                        key: self.key(&current),
                        source: "a file is in the way of a directory".into(),
                    });
                }
                Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
                    missing.push(current.clone());
                    match current.rfind('/') {
                        Some(slash) => current.truncate(slash),
                        None => break,
                    }
                }
                Err(err) => return Err(self.error("create", &current, err).await),
            }
        }
        for dir in missing.iter().rev() {
            if let Err(err) = sftp.create_dir(dir.as_str()).await {
                // Someone else may have created it meanwhile.
                if !matches!(sftp.metadata(dir.as_str()).await, Ok(m) if m.file_type().is_dir()) {
                    return Err(self.error("create", dir, err).await);
                }
            }
        }
        Ok(())
    }

    /// Stores `data` at `relative` through `<name>.tmp` and a rename; returns the stored size.
    async fn write_object(&self, relative: &str, mut data: ByteStream) -> Result<u64, ClientError> {
        let connection = self.connection().await?;
        let sftp = &connection.sftp;
        let path = self.path(relative);
        if let Some((parent, _)) = path.rsplit_once('/')
            && !parent.is_empty()
        {
            self.create_dir_all(sftp, parent).await?;
        }
        let tmp = format!("{path}.tmp");
        let mut file = match sftp.create(tmp.as_str()).await {
            Ok(file) => file,
            Err(err) => return Err(self.error("write", &tmp, err).await),
        };
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    drop(file);
                    // The stream's error is the one to report; removing the temp file tidies.
                    let _ = sftp.remove_file(tmp.as_str()).await;
                    return Err(err);
                }
            };
            if let Err(err) = file.write_all(&chunk).await {
                return Err(self.io_error("write", &tmp, err).await);
            }
            size = size.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        }
        if let Err(err) = file.shutdown().await {
            return Err(self.io_error("write", &tmp, err).await);
        }
        drop(file);
        // Plain SFTP rename refuses an existing target.
        match sftp.remove_file(path.as_str()).await {
            Ok(()) => {}
            Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {}
            Err(err) => return Err(self.error("write", &path, err).await),
        }
        if let Err(err) = sftp.rename(tmp.as_str(), path.as_str()).await {
            return Err(self.error("write", &path, err).await);
        }
        Ok(size)
    }

    async fn io_error(&self, op: &'static str, path: &str, err: std::io::Error) -> ClientError {
        *self.connection.lock().await = None;
        ClientError::Io {
            op,
            key: self.key(path),
            source: err,
        }
    }

    async fn reader(&self, relative: &str) -> Result<ByteStream, ClientError> {
        let connection = self.connection().await?;
        let path = self.path(relative);
        let file = match connection.sftp.open(path.as_str()).await {
            Ok(file) => file,
            Err(err) => return Err(self.error("read", &path, err).await),
        };
        let key = self.key(&path);
        let stream = futures_util::stream::unfold(Some(file), move |file| {
            let key = key.clone();
            async move {
                let mut file = file?;
                let mut buf = vec![0u8; READ_CHUNK_BYTES];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Bytes::from(buf)), Some(file)))
                    }
                    Err(source) => Some((
                        Err(ClientError::Io {
                            op: "read",
                            key,
                            source,
                        }),
                        None,
                    )),
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn remove_file(&self, sftp: &SftpSession, path: &str) -> Result<(), ClientError> {
        match sftp.remove_file(path).await {
            Ok(()) => Ok(()),
            Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
                Ok(())
            }
            Err(err) => Err(self.error("delete", path, err).await),
        }
    }

    /// Removes `dir` and everything in it, deepest first, never following symlinks.
    async fn remove_tree(&self, sftp: &SftpSession, dir: &str) -> Result<(), ClientError> {
        let mut stack = vec![dir.to_owned()];
        let mut dirs = Vec::new();
        while let Some(current) = stack.pop() {
            let entries = match sftp.read_dir(current.as_str()).await {
                Ok(entries) => entries,
                Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
                    continue;
                }
                Err(err) => return Err(self.error("delete", &current, err).await),
            };
            for entry in entries {
                let name = entry.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                let child = format!("{current}/{name}");
                if entry.metadata().file_type().is_dir() {
                    stack.push(child);
                } else {
                    self.remove_file(sftp, &child).await?;
                }
            }
            dirs.push(current);
        }
        for dir in dirs.iter().rev() {
            match sftp.remove_dir(dir.as_str()).await {
                Ok(()) => {}
                Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {}
                Err(err) => return Err(self.error("delete", dir, err).await),
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ReplicaClient for SftpReplicaClient {
    fn kind(&self) -> &'static str {
        "sftp"
    }

    async fn generations(&self) -> Result<Vec<Generation>, ClientError> {
        let connection = self.connection().await?;
        let dir = self.path(layout::GENERATIONS_DIR);
        let entries = match connection.sftp.read_dir(dir.as_str()).await {
            Ok(entries) => entries,
            Err(err) => {
                return match self.error("list", &dir, err).await {
                    ClientError::NotFound { .. } => {
                        // As the file client: a missing root is an error, a root without
                        // `generations/` an empty replica.
                        let root = if self.options.path.is_empty() {
                            ".".to_owned()
                        } else {
                            self.options.path.clone()
                        };
                        match connection.sftp.metadata(root.as_str()).await {
                            Ok(_) => Ok(Vec::new()),
                            Err(err) => Err(self.error("list", &root, err).await),
                        }
                    }
                    err => Err(err),
                };
            }
        };
        let mut generations: Vec<Generation> = entries
            .filter(|entry| entry.metadata().file_type().is_dir())
            .filter_map(|entry| Generation::parse(&entry.file_name()).ok())
            .collect();
        generations.sort();
        Ok(generations)
    }

    async fn delete_generation(&self, generation: &Generation) -> Result<(), ClientError> {
        let connection = self.connection().await?;
        let dir = self.path(&layout::generation_dir(generation));
        self.remove_tree(&connection.sftp, &dir).await
    }

    async fn snapshots(&self, generation: &Generation) -> Result<Vec<SnapshotInfo>, ClientError> {
        let dir = self.path(&layout::snapshots_dir(generation));
        let mut snapshots: Vec<SnapshotInfo> = self
            .list_files(&dir, layout::parse_snapshot_name)
            .await?
            .into_iter()
            .map(|(index, size, created_at)| SnapshotInfo {
                generation: *generation,
                index,
                size,
                created_at,
            })
            .collect();
        snapshots.sort_by_key(|snapshot| snapshot.index);
        Ok(snapshots)
    }

    async fn write_snapshot(
        &self,
        generation: &Generation,
        index: u32,
        data: ByteStream,
    ) -> Result<SnapshotInfo, ClientError> {
        let started = SystemTime::now();
        let size = self
            .write_object(&layout::snapshot_path(generation, index), data)
            .await?;
        Ok(SnapshotInfo {
            generation: *generation,
            index,
            size,
            created_at: started,
        })
    }

    async fn delete_snapshot(
        &self,
        generation: &Generation,
        index: u32,
    ) -> Result<(), ClientError> {
        let connection = self.connection().await?;
        let path = self.path(&layout::snapshot_path(generation, index));
        self.remove_file(&connection.sftp, &path).await
    }

    async fn snapshot_reader(
        &self,
        generation: &Generation,
        index: u32,
    ) -> Result<ByteStream, ClientError> {
        self.reader(&layout::snapshot_path(generation, index)).await
    }

    async fn wal_segments(
        &self,
        generation: &Generation,
    ) -> Result<Vec<WalSegmentInfo>, ClientError> {
        let dir = self.path(&layout::wal_dir(generation));
        let mut segments: Vec<WalSegmentInfo> = self
            .list_files(&dir, layout::parse_wal_segment_name)
            .await?
            .into_iter()
            .map(|((index, offset), size, created_at)| WalSegmentInfo {
                generation: *generation,
                index,
                offset,
                size,
                created_at,
            })
            .collect();
        segments.sort_by_key(|segment| (segment.index, segment.offset));
        Ok(segments)
    }

    async fn write_wal_segment(
        &self,
        pos: &Pos,
        data: ByteStream,
    ) -> Result<WalSegmentInfo, ClientError> {
        let started = SystemTime::now();
        let size = self
            .write_object(&layout::wal_segment_path(pos), data)
            .await?;
        Ok(WalSegmentInfo {
            generation: pos.generation,
            index: pos.index,
            offset: pos.offset,
            size,
            created_at: started,
        })
    }

    async fn delete_wal_segments(&self, positions: &[Pos]) -> Result<(), ClientError> {
        let connection = self.connection().await?;
        for pos in positions {
            let path = self.path(&layout::wal_segment_path(pos));
            self.remove_file(&connection.sftp, &path).await?;
        }
        Ok(())
    }

    async fn wal_segment_reader(&self, pos: &Pos) -> Result<ByteStream, ClientError> {
        self.reader(&layout::wal_segment_path(pos)).await
    }
}

impl fmt::Debug for SftpReplicaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpReplicaClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl russh::client::Handler for HostKeyChecker {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        let refuse = |reason: String| {
            if let Ok(mut slot) = self.refused.lock() {
                *slot = Some(reason);
            }
            Ok(false)
        };
        let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256);
        match &self.check {
            HostKeyCheck::InsecureIgnore => {
                tracing::warn!(
                    host = %self.host,
                    %fingerprint,
                    "sftp: accepting the host key without checking it (insecure-ignore-host-key)"
                );
                Ok(true)
            }
            HostKeyCheck::Key(_) => match &self.pinned_key {
                Some(pinned) if pinned.key_data() == key.key_data() => Ok(true),
                _ => refuse(format!(
                    "host key {fingerprint} of {} is not the configured host-key",
                    self.host
                )),
            },
            HostKeyCheck::KnownHosts(file) => {
                let (host, port, file_owned, key_owned) =
                    (self.host.clone(), self.port, file.clone(), key.clone());
                let checked = tokio::task::spawn_blocking(move || {
                    russh::keys::check_known_hosts_path(&host, port, &key_owned, &file_owned)
                })
                .await;
                match checked {
                    Ok(Ok(true)) => Ok(true),
                    Ok(Ok(false)) => refuse(format!(
                        "host key {fingerprint} of {} is not in {}; add it (ssh-keyscan) or set \
                         host-key",
                        self.host,
                        file.display()
                    )),
                    Ok(Err(err)) => refuse(format!(
                        "cannot check the host key {fingerprint} of {} against {}: {err}",
                        self.host,
                        file.display()
                    )),
                    Err(err) => refuse(format!("cannot check the host key: {err}")),
                }
            }
        }
    }
}

/// `host[:port]` or `[v6]:port` split, port 22 by default; `None` for a bad port.
fn split_host_port(host: &str) -> Option<(String, u16)> {
    if let Some(bracketed) = host.strip_prefix('[') {
        let (name, rest) = bracketed.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if rest.is_empty() => DEFAULT_PORT,
            None => return None,
        };
        return Some((name.to_owned(), port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => Some((name.to_owned(), port.parse().ok()?)),
        _ => Some((host.to_owned(), DEFAULT_PORT)),
    }
}

/// Go's `path.Join(root, relative)` for a clean `relative`.
fn join(root: &str, relative: &str) -> String {
    let trimmed = root.trim_end_matches('/');
    if trimmed.is_empty() && root.starts_with('/') {
        format!("/{relative}")
    } else if trimmed.is_empty() {
        relative.to_owned()
    } else {
        format!("{trimmed}/{relative}")
    }
}

fn mtime(metadata: &FileAttributes) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(metadata.mtime.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_defaults_to_22() {
        assert_eq!(split_host_port("h"), Some(("h".to_owned(), 22)));
        assert_eq!(split_host_port("h:2222"), Some(("h".to_owned(), 2222)));
        assert_eq!(
            split_host_port("[::1]:2222"),
            Some(("::1".to_owned(), 2222))
        );
        assert_eq!(split_host_port("[::1]"), Some(("::1".to_owned(), 22)));
        assert_eq!(split_host_port("h:x"), None);
    }

    #[test]
    fn join_keeps_absolute_and_relative_roots() {
        assert_eq!(join("/backup/", "generations"), "/backup/generations");
        assert_eq!(join("", "generations"), "generations");
        assert_eq!(join("/", "generations"), "/generations");
    }
}
