//! Turns a replica's settings (from `litestream.yml` or a replica URL) into its replica client,
//! as Litestream's `NewReplicaFromConfig` and the per-type `new*ReplicaClientFromConfig`
//! functions do: the type comes from the URL scheme, else `type`, else `file`; URL and explicit
//! fields must not conflict (spec 10.2); the name defaults to the type.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ls_backends::{
    AzureOptions, FileReplicaClient, GcsOptions, HostKeyCheck, ObjectReplicaClient, ReplicaUrl,
    ReplicaUrlError, S3Options, Secret, SftpOptions, SftpReplicaClient, is_url, redact_url,
};
use ls_core::ReplicaClient;

use crate::config::{DbConfig, ReplicaConfig, expand_path};
use crate::quote::go_quote;

/// A replica ready to be listed or restored from: its name and its client.
#[derive(Clone, Debug)]
pub(crate) struct Replica {
    /// The configured name, or the replica type.
    pub(crate) name: String,
    /// The storage behind it.
    pub(crate) client: Arc<dyn ReplicaClient>,
}

/// Builds every replica of `db`, in config order.
///
/// # Errors
/// When a replica's settings are invalid or two replicas share a name; the error names the
/// config key.
pub(crate) fn open_db_replicas(db: &DbConfig, config_path: &Path) -> anyhow::Result<Vec<Replica>> {
    let mut names = HashSet::new();
    let mut replicas = Vec::with_capacity(db.replicas.len());
    for config in &db.replicas {
        let replica = open_replica(config)
            .with_context(|| format!("replica {} in {}", config.key, config_path.display()))?;
        if !names.insert(replica.name.clone()) {
            bail!(
                "database {} in {}: duplicate replica name: {}",
                db.path.display(),
                config_path.display(),
                go_quote(&replica.name)
            );
        }
        replicas.push(replica);
    }
    Ok(replicas)
}

/// Builds one replica from its settings.
///
/// # Errors
/// For an unknown type, a URL that does not parse, conflicting URL and explicit fields, a
/// missing path, bucket or host, and replica types this build cannot open yet.
pub(crate) fn open_replica(config: &ReplicaConfig) -> anyhow::Result<Replica> {
    open_replica_with_modes(config, None)
}

/// Builds one replica whose local files (file replicas only) get `modes` (file, directory),
/// as Litestream gives them the database file's and its directory's modes.
///
/// # Errors
/// As [`open_replica`].
pub(crate) fn open_replica_with_modes(
    config: &ReplicaConfig,
    modes: Option<(u32, u32)>,
) -> anyhow::Result<Replica> {
    if is_url(&config.path) {
        bail!(
            "replica path cannot be a url, please use the 'url' field instead: {}",
            redact_url(&config.path)
        );
    }
    let url = if config.url.is_empty() {
        None
    } else {
        match ReplicaUrl::parse(config.url.as_str()) {
            Ok(url) => Some(url),
            Err(ReplicaUrlError::UnknownType { scheme, .. }) => {
                bail!("unknown replica type in config: {}", go_quote(&scheme))
            }
            Err(err) => return Err(err.into()),
        }
    };
    let kind = match &url {
        Some(url) => url.kind(),
        None => match config.kind.as_str() {
            "" | "file" => "file",
            "s3" => "s3",
            "gcs" => "gcs",
            "abs" => "abs",
            "sftp" => "sftp",
            other => bail!("unknown replica type in config: {}", go_quote(other)),
        },
    };
    let has_url = url.is_some();
    if has_url && !config.path.is_empty() {
        bail!("cannot specify url & path for {kind} replica");
    }
    let client: Arc<dyn ReplicaClient> = match (kind, url) {
        ("file", url) => {
            let path = match url {
                Some(ReplicaUrl::File { path }) => path,
                _ => config.path.clone().into(),
            };
            if path.as_os_str().is_empty() {
                bail!("file replica path required");
            }
            let path = expand_path(&path)
                .with_context(|| format!("cannot expand replica path {}", path.display()))?;
            let client = FileReplicaClient::new(path);
            Arc::new(match modes {
                Some((file, dir)) => client.with_modes(file, dir),
                None => client,
            })
        }
        ("sftp", url) => {
            // Litestream's checks, so a bad config is reported as such before the backend
            // exists.
            if has_url && !config.host.is_empty() {
                bail!("cannot specify url & host for sftp replica");
            }
            if !has_url && config.host.is_empty() {
                bail!("host required for sftp replica");
            }
            if !has_url && config.user.is_empty() {
                bail!("user required for sftp replica");
            }
            Arc::new(open_sftp(config, url)?)
        }
        (kind, url) => {
            if has_url && !config.bucket.is_empty() {
                bail!("cannot specify url & bucket for {kind} replica");
            }
            if !has_url && config.bucket.is_empty() {
                bail!("bucket required for {kind} replica");
            }
            Arc::new(open_object(kind, config, url)?)
        }
    };
    let name = if config.name.is_empty() {
        kind.to_owned()
    } else {
        config.name.clone()
    };
    Ok(Replica { name, client })
}

/// The process environment, for the backends' `*_from_env` lookups.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `own` unless empty, else `fallback`.
fn or(own: &str, fallback: Option<String>) -> String {
    if own.is_empty() {
        fallback.unwrap_or_default()
    } else {
        own.to_owned()
    }
}

/// An `s3`, `gcs` or `abs` replica: URL fields merged with config fields as
/// `newS3ReplicaClientFromConfig` and its siblings do (spec 11.2-11.4).
fn open_object(
    kind: &str,
    config: &ReplicaConfig,
    url: Option<ReplicaUrl>,
) -> anyhow::Result<ObjectReplicaClient> {
    let client = match (kind, url) {
        ("s3", url) => {
            let (bucket, path, region, endpoint, url_path_style) = match url {
                Some(ReplicaUrl::S3 {
                    bucket,
                    path,
                    region,
                    endpoint,
                    force_path_style,
                }) => (bucket, path, region, endpoint, force_path_style),
                _ => (
                    config.bucket.clone(),
                    config.path.clone(),
                    None,
                    None,
                    false,
                ),
            };
            // `force-path-style` starts as "a config endpoint is set", an explicit setting
            // overrides it, and a provider host in the URL turns it on.
            let force_path_style = config
                .force_path_style
                .unwrap_or(!config.endpoint.is_empty())
                || url_path_style;
            let mut options = S3Options {
                bucket,
                path,
                region: or(&config.region, region),
                endpoint: or(&config.endpoint, endpoint),
                force_path_style,
                skip_verify: config.skip_verify,
                access_key_id: Secret::new(config.access_key_id.expose()),
                secret_access_key: Secret::new(config.secret_access_key.expose()),
                session_token: Secret::default(),
            };
            options.credentials_from_env(env_var);
            ObjectReplicaClient::s3(options)
        }
        ("gcs", url) => {
            let (bucket, path) = match url {
                Some(ReplicaUrl::Gcs { bucket, path }) => (bucket, path),
                _ => (config.bucket.clone(), config.path.clone()),
            };
            let mut options = GcsOptions {
                bucket,
                path,
                emulator_host: String::new(),
            };
            options.emulator_from_env(env_var);
            ObjectReplicaClient::gcs(options)
        }
        (_, url) => {
            let (account, container, path) = match url {
                Some(ReplicaUrl::Abs {
                    account,
                    container,
                    path,
                }) => (account, container, path),
                _ => (None, config.bucket.clone(), config.path.clone()),
            };
            let mut options = AzureOptions {
                account_name: or(&config.account_name, account),
                account_key: Secret::new(config.account_key.expose()),
                container,
                path,
                endpoint: config.endpoint.clone(),
            };
            options.account_key_from_env(env_var);
            ObjectReplicaClient::azure(options)
        }
    };
    Ok(client?)
}

/// An `sftp` replica: URL fields merged with config fields (spec 11.5), and the host key check
/// this port adds: `host-key`, else `~/.ssh/known_hosts`, unless `insecure-ignore-host-key`.
fn open_sftp(config: &ReplicaConfig, url: Option<ReplicaUrl>) -> anyhow::Result<SftpReplicaClient> {
    let (host, user, password, path) = match url {
        Some(ReplicaUrl::Sftp {
            host,
            user,
            password,
            path,
        }) => (
            host,
            or(&config.user, user),
            if config.password.is_empty() {
                password
                    .map(|password| Secret::new(password.expose()))
                    .unwrap_or_default()
            } else {
                Secret::new(config.password.expose())
            },
            path,
        ),
        _ => (
            config.host.clone(),
            config.user.clone(),
            Secret::new(config.password.expose()),
            config.path.clone(),
        ),
    };
    if user.is_empty() {
        bail!("user required for sftp replica");
    }
    let host_key = if config.insecure_ignore_host_key {
        HostKeyCheck::InsecureIgnore
    } else if !config.host_key.is_empty() {
        HostKeyCheck::Key(config.host_key.clone())
    } else {
        HostKeyCheck::default_known_hosts(env_var).context(
            "no home directory for ~/.ssh/known_hosts: set host-key (or \
             insecure-ignore-host-key: true) for the sftp replica",
        )?
    };
    Ok(SftpReplicaClient::new(SftpOptions {
        host,
        user,
        password,
        key_path: config.key_path.clone(),
        path,
        host_key,
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(edit: impl FnOnce(&mut ReplicaConfig)) -> anyhow::Result<Replica> {
        let mut config = ReplicaConfig::from_url("");
        edit(&mut config);
        open_replica(&config)
    }

    fn error(edit: impl FnOnce(&mut ReplicaConfig)) -> String {
        format!("{:#}", replica(edit).unwrap_err())
    }

    #[test]
    fn open_replica_file_path_defaults_name_to_type() {
        let replica = replica(|c| c.path = "/backup/app".into()).unwrap();
        assert_eq!(replica.name, "file");
        assert_eq!(replica.client.kind(), "file");
        let named = super::open_replica(&ReplicaConfig {
            name: "second".into(),
            url: "file:///backup/app2".into(),
            ..ReplicaConfig::from_url("")
        })
        .unwrap();
        assert_eq!(named.name, "second");
    }

    #[test]
    fn open_replica_reports_litestream_conflicts() {
        assert_eq!(
            error(|c| {
                c.url = "file:///a".into();
                c.path = "/b".into();
            }),
            "cannot specify url & path for file replica"
        );
        assert_eq!(error(|_| {}), "file replica path required");
        assert_eq!(
            error(|c| c.path = "s3://bkt/x".into()),
            "replica path cannot be a url, please use the 'url' field instead: s3://bkt/x"
        );
        assert_eq!(
            error(|c| c.kind = "ftp".into()),
            "unknown replica type in config: \"ftp\""
        );
        assert_eq!(
            error(|c| c.url = "foo://bar".into()),
            "unknown replica type in config: \"foo\""
        );
        assert_eq!(
            error(|c| {
                c.url = "s3://bkt/db".into();
                c.bucket = "other".into();
            }),
            "cannot specify url & bucket for s3 replica"
        );
        assert_eq!(
            error(|c| c.kind = "gcs".into()),
            "bucket required for gcs replica"
        );
        assert_eq!(
            error(|c| c.kind = "sftp".into()),
            "host required for sftp replica"
        );
        assert_eq!(
            error(|c| {
                c.kind = "sftp".into();
                c.host = "h".into();
            }),
            "user required for sftp replica"
        );
    }

    #[test]
    fn open_replica_cloud_urls_open_their_clients() {
        for (url, kind) in [
            ("s3://bkt.localhost:9000/db", "s3"),
            ("gcs://bkt/db", "gcs"),
            ("sftp://me@127.0.0.1:2222/backup", "sftp"),
        ] {
            let replica = replica(|c| c.url = url.into()).unwrap();
            assert_eq!(replica.client.kind(), kind, "{url}");
            assert_eq!(replica.name, kind);
        }
        let abs = replica(|c| {
            c.url = "abs://acct@ctr/db".into();
            c.account_key = crate::config::Secret::from_test("a2V5");
        })
        .unwrap();
        assert_eq!(abs.client.kind(), "abs");
    }

    #[test]
    fn open_replica_s3_keeps_keys_out_of_debug() {
        let replica = replica(|c| {
            c.kind = "s3".into();
            c.bucket = "bkt".into();
            c.endpoint = "http://127.0.0.1:9000".into();
            c.access_key_id = crate::config::Secret::from_test("AKIDVISIBLE");
            c.secret_access_key = crate::config::Secret::from_test("hiddensecret");
        })
        .unwrap();
        let debug = format!("{replica:?}");
        assert!(debug.contains("s3://bkt"), "{debug}");
        assert!(!debug.contains("hiddensecret"), "{debug}");
    }

    #[test]
    fn open_replica_sftp_url_without_user_fails() {
        assert_eq!(
            error(|c| c.url = "sftp://127.0.0.1/backup".into()),
            "user required for sftp replica"
        );
    }
}
