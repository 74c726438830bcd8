//! The `s3`, `gcs` and `abs` replica clients: one [`ObjectReplicaClient`] over an
//! `object_store` store and a key prefix, as Litestream's `s3`, `gcs` and `abs` packages.
//!
//! Keys are `<prefix>/` joined with a path from [`ls_core::layout`]. Listings follow 0.3.13:
//! generations from a `/`-delimited listing of `<prefix>/generations/`; snapshots and WAL segments
//! from a delimited listing on S3 (direct children only) and a recursive one on GCS and Azure
//! (base names only), each in the store's key order, which is numeric order for Litestream's
//! fixed-width hex names; a key `object_store` cannot represent (a `.` or `..` segment) is
//! skipped, as 0.3.13 ignores names it does not recognise. Writes are a single `PUT` with a `Content-Length` (no `aws-chunked`
//! trailer) up to 5 MiB, and a multipart upload with 5 MiB parts, up to 5 in flight, above, as
//! the AWS SDK's upload manager does. Deletes ignore missing objects. Requests that fail with a
//! network error, a timeout, 429 or 5xx are retried with exponential backoff by `object_store`.
//!
//! With `STORAGE_EMULATOR_HOST` set, a `gcs` replica sends uploads and deletes through the
//! JSON API and every object in one `PUT` (see `gcs_emulator`), as fake-gcs-server serves
//! only reads and listings of the XML API.
//!
//! This module knows nothing of SQLite or generations' lifecycles, and reads no environment
//! variable: the options say where the credentials come from (`S3Options::credentials_from_env`
//! takes the lookup as an argument).

mod gcs_emulator;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use ls_core::{
    ByteStream, ClientError, Generation, Pos, ReplicaClient, SnapshotInfo, WalSegmentInfo, layout,
};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::{Path, PathPart};
use object_store::{
    BackoffConfig, ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    StaticCredentialProvider, WriteMultipart,
};
use tokio::sync::OnceCell;

use crate::object::gcs_emulator::GcsEmulatorConnector;
use crate::secret::Secret;
use crate::url::object_prefix;

/// The AWS SDK upload manager's part size: objects up to this size go in one `PUT`.
const PART_BYTES: usize = 5 * 1024 * 1024;
/// The AWS SDK upload manager's parts in flight.
const PARTS_IN_FLIGHT: usize = 5;

/// The keys of a listing page when none is asked for (S3's and GCS's default).
const LIST_PAGE_KEYS: usize = 1000;

/// What the client needs of a store: objects, and listings page by page (to step past a key
/// `object_store` cannot represent, see [`ObjectReplicaClient::list_all`]).
trait Store: ObjectStore + PaginatedListStore {}

impl<T: ObjectStore + PaginatedListStore> Store for T {}

/// The objects and, for a delimited listing, the common prefixes under a prefix.
#[derive(Debug, Default)]
struct Listing {
    objects: Vec<ObjectMeta>,
    prefixes: Vec<Path>,
}

/// Settings of an `s3` replica: Litestream's `s3.ReplicaClient` fields after the URL and the
/// config were merged (spec 11.2).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (`path`), cleaned as Go's `path.Join` does; empty for the bucket's root.
    pub path: String,
    /// The region; empty means `us-east-1` with a custom endpoint, else the bucket's region
    /// looked up on first use.
    pub region: String,
    /// A custom endpoint (`https://host[:port]`); empty means AWS.
    pub endpoint: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of `bucket.endpoint/key`.
    pub force_path_style: bool,
    /// Accept any TLS certificate (Litestream's `skip-verify`).
    pub skip_verify: bool,
    /// Static access key id; with [`S3Options::secret_access_key`], used when either is set.
    pub access_key_id: Secret,
    /// Static secret access key.
    pub secret_access_key: Secret,
    /// Session token that goes with the static keys (from `AWS_SESSION_TOKEN`).
    pub session_token: Secret,
}

/// Settings of a `gcs` replica (spec 11.3). Credentials are Google's Application Default
/// Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the metadata server).
#[derive(Clone, Debug, Default)]
pub struct GcsOptions {
    /// The bucket.
    pub bucket: String,
    /// The object name prefix, cleaned; empty for the bucket's root.
    pub path: String,
    /// `STORAGE_EMULATOR_HOST` (`host:port` or a URL): talk to that emulator, without
    /// credentials, as Google's Go client does.
    pub emulator_host: String,
}

/// Settings of an `abs` (Azure Blob Storage) replica (spec 11.4). Shared-key auth only.
#[derive(Clone, Debug, Default)]
pub struct AzureOptions {
    /// The storage account (`account-name`, or the user of an `abs://` URL).
    pub account_name: String,
    /// The shared key (`account-key`, or `LITESTREAM_AZURE_ACCOUNT_KEY`).
    pub account_key: Secret,
    /// The container (`bucket`).
    pub container: String,
    /// The blob name prefix, cleaned; empty for the container's root.
    pub path: String,
    /// A custom service URL, account included for path-style servers such as Azurite
    /// (`http://127.0.0.1:10000/devstoreaccount1`); empty means
    /// `https://<account>.blob.core.windows.net`.
    pub endpoint: String,
}

/// Why a replica client cannot be built from its settings. Messages name the replica type and
/// the bucket or host; secrets never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A setting is missing or malformed.
    #[error("invalid {kind} replica settings: {reason}")]
    Invalid {
        /// The replica type.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The storage client refused the settings.
    #[error("cannot set up {kind} replica {target}")]
    Setup {
        /// The replica type.
        kind: &'static str,
        /// The bucket, container or host.
        target: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// A replica in an object store: S3 (or S3-compatible), GCS or Azure Blob Storage.
///
/// The store is built from the options at construction, except an S3 store without region or
/// endpoint, whose region is looked up on first use (Litestream's `GetBucketLocation`).
///
/// # Cancel safety
///
/// Dropping a write's future never leaves a partial object at the final key: a single `PUT`
/// either happened or not, and an unfinished multipart upload is invisible (the store's
/// lifecycle rules reclaim it). A dropped delete may have deleted some of its objects.
pub struct ObjectReplicaClient {
    kind: &'static str,
    /// `s3://bucket`, `gcs://bucket`, `abs://container`: the start of every key in errors.
    display_root: String,
    prefix: Path,
    /// GCS and Azure list snapshots and segments recursively, as 0.3.13 does.
    recursive: bool,
    /// Every object goes in one `PUT`, never a multipart upload (a GCS emulator has none).
    single_put: bool,
    store: OnceCell<Arc<dyn Store>>,
    /// An S3 store whose region must be looked up before it can be built.
    pending_s3: Option<PendingS3>,
}

/// What building an S3 store needs once the bucket's region is known.
#[derive(Clone)]
struct PendingS3 {
    builder: AmazonS3Builder,
    bucket: String,
    client_options: ClientOptions,
}

impl S3Options {
    /// Fills the credentials as 0.3.13 does when neither static key is set: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (each falling back to
    /// `LITESTREAM_ACCESS_KEY_ID` / `LITESTREAM_SECRET_ACCESS_KEY`), else the profile
    /// `AWS_PROFILE` (default `default`) of the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, default `$HOME/.aws/credentials`). Without any of these
    /// the store falls back to the instance metadata service.
    ///
    /// `env` looks a variable up; the caller decides where from.
    pub fn credentials_from_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        if !self.access_key_id.is_empty() || !self.secret_access_key.is_empty() {
            return;
        }
        let var = |name: &str| env(name).filter(|value| !value.is_empty());
        let id = var("AWS_ACCESS_KEY_ID").or_else(|| var("LITESTREAM_ACCESS_KEY_ID"));
        let secret = var("AWS_SECRET_ACCESS_KEY").or_else(|| var("LITESTREAM_SECRET_ACCESS_KEY"));
        if id.is_some() || secret.is_some() {
            self.access_key_id = Secret::new(id.unwrap_or_default());
            self.secret_access_key = Secret::new(secret.unwrap_or_default());
            self.session_token = Secret::new(var("AWS_SESSION_TOKEN").unwrap_or_default());
            return;
        }
        let file = var("AWS_SHARED_CREDENTIALS_FILE")
            .or_else(|| var("HOME").map(|home| format!("{home}/.aws/credentials")));
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        let Some(text) = file.and_then(|file| std::fs::read_to_string(file).ok()) else {
            return;
        };
        let keys = shared_credentials(&text, &profile);
        let key = |name: &str| {
            keys.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| Secret::new(v.clone()))
                .unwrap_or_default()
        };
        self.access_key_id = key("aws_access_key_id");
        self.secret_access_key = key("aws_secret_access_key");
        self.session_token = key("aws_session_token");
    }
}

impl GcsOptions {
    /// Reads `STORAGE_EMULATOR_HOST` through `env`, as Google's Go client does.
    pub fn emulator_from_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        if self.emulator_host.is_empty() {
            self.emulator_host = env("STORAGE_EMULATOR_HOST").unwrap_or_default();
        }
    }
}

impl AzureOptions {
    /// Takes the account key from `LITESTREAM_AZURE_ACCOUNT_KEY` through `env` when none is set.
    pub fn account_key_from_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        if self.account_key.is_empty() {
            self.account_key = Secret::new(env("LITESTREAM_AZURE_ACCOUNT_KEY").unwrap_or_default());
        }
    }
}

impl ObjectReplicaClient {
    /// An `s3` replica client.
    ///
    /// # Errors
    /// [`OpenError::Invalid`] for an empty bucket or a prefix `object_store` cannot represent;
    /// [`OpenError::Setup`] when the S3 client refuses the settings (a malformed endpoint).
    pub fn s3(options: S3Options) -> Result<Self, OpenError> {
        const KIND: &str = "s3";
        install_crypto_provider();
        if options.bucket.is_empty() {
            return Err(invalid(KIND, "bucket required for s3 replica"));
        }
        let prefix = prefix_path(KIND, &options.path)?;
        let allow_http = options.endpoint.starts_with("http://");
        let client_options =
            client_options(allow_http).with_allow_invalid_certificates(options.skip_verify);
        // A bucket cannot go in front of an IP address: such endpoints are path-style (the AWS
        // SDK would build an unresolvable name; object_store would panic).
        let path_style = options.force_path_style || endpoint_is_ip(&options.endpoint);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&options.bucket)
            .with_client_options(client_options.clone())
            .with_retry(retry_config())
            .with_virtual_hosted_style_request(!path_style);
        if !options.endpoint.is_empty() {
            let endpoint = options.endpoint.trim_end_matches('/');
            let endpoint = if path_style {
                endpoint.to_owned()
            } else {
                // object_store takes a virtual-hosted endpoint as the bucket's own URL; the AWS
                // SDK puts the bucket in front of the endpoint's host.
                match endpoint.split_once("://") {
                    Some((scheme, host)) => format!("{scheme}://{}.{host}", options.bucket),
                    None => format!("{}.{endpoint}", options.bucket),
                }
            };
            builder = builder.with_endpoint(endpoint);
        }
        if !options.access_key_id.is_empty() || !options.secret_access_key.is_empty() {
            builder = builder
                .with_access_key_id(options.access_key_id.expose())
                .with_secret_access_key(options.secret_access_key.expose());
            if !options.session_token.is_empty() {
                builder = builder.with_token(options.session_token.expose());
            }
        }
        let display_root = format!("s3://{}", options.bucket);
        let region = if !options.region.is_empty() {
            Some(options.region.clone())
        } else if !options.endpoint.is_empty() {
            Some("us-east-1".to_owned())
        } else {
            None
        };
        let (store, pending_s3) = match region {
            Some(region) => {
                let store = builder
                    .with_region(region)
                    .build()
                    .map_err(|err| setup(KIND, &options.bucket, err))?;
                let store: Arc<dyn Store> = Arc::new(store);
                (OnceCell::from(store), None)
            }
            None => (
                OnceCell::new(),
                Some(PendingS3 {
                    builder,
                    bucket: options.bucket.clone(),
                    client_options,
                }),
            ),
        };
        Ok(Self {
            kind: KIND,
            display_root,
            prefix,
            recursive: false,
            single_put: false,
            store,
            pending_s3,
        })
    }

    /// A `gcs` replica client.
    ///
    /// # Errors
    /// [`OpenError::Invalid`] for an empty bucket or a bad prefix; [`OpenError::Setup`] when
    /// the credentials cannot be read.
    pub fn gcs(options: GcsOptions) -> Result<Self, OpenError> {
        const KIND: &str = "gcs";
        install_crypto_provider();
        if options.bucket.is_empty() {
            return Err(invalid(KIND, "bucket required for gcs replica"));
        }
        let prefix = prefix_path(KIND, &options.path)?;
        let mut builder = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&options.bucket)
            .with_client_options(client_options(false))
            .with_retry(retry_config());
        let emulated = !options.emulator_host.is_empty();
        if emulated {
            let host = options.emulator_host.trim_end_matches('/');
            let base_url = if host.contains("://") {
                host.to_owned()
            } else {
                format!("http://{host}")
            };
            builder = builder
                .with_client_options(client_options(base_url.starts_with("http://")))
                .with_base_url(&base_url)
                .with_credentials(Arc::new(StaticCredentialProvider::new(
                    object_store::gcp::GcpCredential {
                        bearer: String::new(),
                    },
                )))
                .with_skip_signature(true)
                .with_http_connector(GcsEmulatorConnector);
        }
        let store = builder
            .build()
            .map_err(|err| setup(KIND, &options.bucket, err))?;
        let mut client = Self::ready(
            KIND,
            format!("gcs://{}", options.bucket),
            prefix,
            Arc::new(store),
        );
        client.single_put = emulated;
        Ok(client)
    }

    /// An `abs` (Azure Blob Storage) replica client.
    ///
    /// # Errors
    /// [`OpenError::Invalid`] for an empty account, key or container, or a bad prefix;
    /// [`OpenError::Setup`] for a malformed key or endpoint.
    pub fn azure(options: AzureOptions) -> Result<Self, OpenError> {
        const KIND: &str = "abs";
        install_crypto_provider();
        if options.container.is_empty() {
            return Err(invalid(KIND, "bucket required for abs replica"));
        }
        if options.account_name.is_empty() {
            return Err(invalid(KIND, "account name required for abs replica"));
        }
        if options.account_key.is_empty() {
            return Err(invalid(
                KIND,
                "account key required for abs replica (account-key or LITESTREAM_AZURE_ACCOUNT_KEY)",
            ));
        }
        let prefix = prefix_path(KIND, &options.path)?;
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&options.account_name)
            .with_access_key(options.account_key.expose())
            .with_container_name(&options.container)
            .with_client_options(client_options(false))
            .with_retry(retry_config());
        if !options.endpoint.is_empty() {
            let endpoint = options.endpoint.trim_end_matches('/').to_owned();
            builder = builder
                .with_client_options(client_options(endpoint.starts_with("http://")))
                .with_endpoint(endpoint);
        }
        let store = builder
            .build()
            .map_err(|err| setup(KIND, &options.container, err))?;
        Ok(Self::ready(
            KIND,
            format!("abs://{}", options.container),
            prefix,
            Arc::new(store),
        ))
    }

    fn ready(
        kind: &'static str,
        display_root: String,
        prefix: Path,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            kind,
            display_root,
            prefix,
            recursive: true,
            single_put: false,
            store: OnceCell::from(store),
            pending_s3: None,
        }
    }

    /// The store, built on first use when the S3 region had to be looked up.
    async fn store(&self) -> Result<&Arc<dyn Store>, ClientError> {
        self.store
            .get_or_try_init(|| async {
                let Some(pending) = self.pending_s3.clone() else {
                    return Err(ClientError::Backend {
                        op: "open",
                        key: self.display_root.clone(),
                        source: "the store was neither built nor pending".into(),
                    });
                };
                let region = object_store::aws::resolve_bucket_region(
                    &pending.bucket,
                    &pending.client_options,
                )
                .await
                .map_err(|err| ClientError::Backend {
                    op: "look up the bucket region of",
                    key: self.display_root.clone(),
                    source: Box::new(err),
                })?;
                let store = pending.builder.with_region(region).build().map_err(|err| {
                    ClientError::Backend {
                        op: "open",
                        key: self.display_root.clone(),
                        source: Box::new(err),
                    }
                })?;
                let store: Arc<dyn Store> = Arc::new(store);
                Ok(store)
            })
            .await
    }

    /// The key of `relative` (a path from [`ls_core::layout`]) under the prefix.
    fn path(&self, relative: &str) -> Path {
        self.prefix
            .parts()
            .chain(relative.split('/').map(PathPart::from))
            .collect()
    }

    /// `s3://bucket/key`, for errors.
    fn key(&self, path: &Path) -> String {
        format!("{}/{path}", self.display_root)
    }

    fn error(&self, op: &'static str, path: &Path, err: object_store::Error) -> ClientError {
        store_error(op, self.key(path), err)
    }

    /// Objects directly under `dir` (or anywhere under it, for GCS and Azure) whose base
    /// names `parse` accepts, in key order.
    async fn list_objects<T>(
        &self,
        dir: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<(T, ObjectMeta)>, ClientError> {
        let store = self.store().await?;
        let prefix = self.path(dir);
        let objects = self
            .list_all(store.as_ref(), &prefix, !self.recursive, None)
            .await
            .map_err(|err| self.list_error(&prefix, err))?
            .objects;
        let mut found: Vec<(T, ObjectMeta)> = objects
            .into_iter()
            .filter_map(|meta| {
                let parsed = parse(meta.location.filename()?)?;
                Some((parsed, meta))
            })
            .collect();
        found.sort_by(|a, b| a.1.location.cmp(&b.1.location));
        Ok(found)
    }

    /// Every object under `prefix` (with `delimited`, only its direct children, and the common
    /// prefixes of the others), after the key `start_after` when given.
    ///
    /// A key `object_store` cannot represent (a `.`, `..` or empty segment, a control
    /// character) fails the whole page holding it, naming it. Such a page is read again in
    /// smaller pages down to that one key, which is then skipped (logged at debug), as
    /// Litestream 0.3.13 ignores names it does not recognise; the listing goes on after it.
    /// Any other error (transport, HTTP status, a malformed response) fails the listing, and
    /// so does a key the store lists again after being asked to start after it.
    async fn list_all(
        &self,
        store: &dyn Store,
        prefix: &Path,
        delimited: bool,
        start_after: Option<String>,
    ) -> object_store::Result<Listing> {
        let prefix_text = if prefix.as_ref().is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut listing = Listing::default();
        let mut offset = start_after;
        let mut token: Option<String> = None;
        let mut page_keys: Option<usize> = None;
        let mut skipped: Vec<String> = Vec::new();
        loop {
            let options = PaginatedListOptions {
                offset: offset.clone(),
                delimiter: delimited.then_some(Cow::Borrowed("/")),
                max_keys: page_keys,
                page_token: token.clone(),
                ..PaginatedListOptions::default()
            };
            let err = match store.list_paginated(Some(&prefix_text), options).await {
                Ok(page) => {
                    listing.objects.extend(page.result.objects);
                    listing.prefixes.extend(page.result.common_prefixes);
                    match page.page_token {
                        Some(next) if !next.is_empty() => token = Some(next),
                        _ => return Ok(listing),
                    }
                    continue;
                }
                Err(err) => err,
            };
            let Some(key) = unrepresentable_key(&err) else {
                return Err(err);
            };
            if page_keys != Some(1) {
                // Read the same page again, half as large, until the bad key is alone.
                page_keys = Some((page_keys.unwrap_or(LIST_PAGE_KEYS) / 2).max(1));
                continue;
            }
            if skipped.iter().any(|seen| seen == key) {
                return Err(err);
            }
            tracing::debug!(
                key = %format!("{}/{key}", self.display_root),
                "skipping a listed key that cannot be represented"
            );
            offset = Some(skip_past(key));
            skipped.push(key.to_owned());
            token = None;
            page_keys = None;
        }
    }

    /// A listing failure; a missing bucket (404) is [`ClientError::NotFound`] naming it.
    fn list_error(&self, prefix: &Path, err: object_store::Error) -> ClientError {
        let missing = matches!(err, object_store::Error::NotFound { .. })
            || ls_core::http_status(&err) == Some(404);
        if missing {
            ClientError::NotFound {
                key: self.display_root.clone(),
            }
        } else {
            self.error("list", prefix, err)
        }
    }

    /// Stores `data` at `relative`: one `PUT` up to [`PART_BYTES`] (or always, with
    /// `single_put`), a multipart upload above. Returns the stored size.
    async fn write_object(&self, relative: &str, mut data: ByteStream) -> Result<u64, ClientError> {
        let store = self.store().await?;
        let path = self.path(relative);
        let mut head: Vec<Bytes> = Vec::new();
        let mut head_len = 0usize;
        while head_len <= PART_BYTES || self.single_put {
            match data.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    head_len += chunk.len();
                    head.push(chunk);
                }
                None => {
                    store
                        .put(&path, PutPayload::from_iter(head))
                        .await
                        .map_err(|err| self.error("write", &path, err))?;
                    return u64::try_from(head_len).map_err(|err| ClientError::Backend {
                        op: "write",
                        key: self.key(&path),
                        source: Box::new(err),
                    });
                }
            }
        }
        let upload = store
            .put_multipart(&path)
            .await
            .map_err(|err| self.error("write", &path, err))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut size = u64::try_from(head_len).unwrap_or(u64::MAX);
        for chunk in head {
            writer.put(chunk);
        }
        loop {
            if let Err(err) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                // The part's failure is the error to report; the abort only tidies up.
                let _ = writer.abort().await;
                return Err(self.error("write", &path, err));
            }
            match data.next().await {
                Some(Ok(chunk)) => {
                    size = size.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
                    writer.put(chunk);
                }
                Some(Err(err)) => {
                    // The stream's error is the one to report; the abort only tidies up.
                    let _ = writer.abort().await;
                    return Err(err);
                }
                None => break,
            }
        }
        writer
            .finish()
            .await
            .map_err(|err| self.error("write", &path, err))?;
        Ok(size)
    }

    async fn reader(&self, relative: &str) -> Result<ByteStream, ClientError> {
        let store = self.store().await?;
        let path = self.path(relative);
        let result = store
            .get(&path)
            .await
            .map_err(|err| self.error("read", &path, err))?;
        let key = self.key(&path);
        Ok(Box::pin(
            result
                .into_stream()
                .map_err(move |err| store_error("read", key.clone(), err)),
        ))
    }

    /// Deletes `paths`, in batches where the store has a bulk delete; missing ones are fine.
    async fn delete_paths(&self, paths: Vec<Path>) -> Result<(), ClientError> {
        if paths.is_empty() {
            return Ok(());
        }
        let store = self.store().await?;
        let first = paths.first().cloned().unwrap_or_default();
        let mut results =
            store.delete_stream(futures_util::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(self.error("delete", &first, err)),
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ReplicaClient for ObjectReplicaClient {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn generations(&self) -> Result<Vec<Generation>, ClientError> {
        let store = self.store().await?;
        let prefix = self.path(layout::GENERATIONS_DIR);
        let listed = self
            .list_all(store.as_ref(), &prefix, true, None)
            .await
            .map_err(|err| self.list_error(&prefix, err))?;
        let mut generations: Vec<Generation> = listed
            .prefixes
            .iter()
            .filter_map(|dir| Generation::parse(dir.filename()?).ok())
            .collect();
        generations.sort();
        generations.dedup();
        Ok(generations)
    }

    async fn delete_generation(&self, generation: &Generation) -> Result<(), ClientError> {
        let store = self.store().await?;
        let prefix = self.path(&layout::generation_dir(generation));
        let paths: Vec<Path> = self
            .list_all(store.as_ref(), &prefix, false, None)
            .await
            .map_err(|err| self.error("list", &prefix, err))?
            .objects
            .into_iter()
            .map(|meta| meta.location)
            .collect();
        self.delete_paths(paths).await
    }

    async fn snapshots(&self, generation: &Generation) -> Result<Vec<SnapshotInfo>, ClientError> {
        let listed = self
            .list_objects(
                &layout::snapshots_dir(generation),
                layout::parse_snapshot_name,
            )
            .await?;
        let mut snapshots: Vec<SnapshotInfo> = listed
            .into_iter()
            .map(|(index, meta)| SnapshotInfo {
                generation: *generation,
                index,
                size: meta.size,
                created_at: SystemTime::from(meta.last_modified),
            })
            .collect();
        // Recursive listings may hold the same name twice, in different folders.
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
        self.delete_paths(vec![self.path(&layout::snapshot_path(generation, index))])
            .await
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
        let listed = self
            .list_objects(&layout::wal_dir(generation), layout::parse_wal_segment_name)
            .await?;
        let mut segments: Vec<WalSegmentInfo> = listed
            .into_iter()
            .map(|((index, offset), meta)| segment_info(generation, index, offset, &meta))
            .collect();
        segments.sort_by_key(|segment| (segment.index, segment.offset));
        Ok(segments)
    }

    async fn wal_segments_from(
        &self,
        generation: &Generation,
        from_index: u32,
    ) -> Result<Vec<WalSegmentInfo>, ClientError> {
        if from_index == 0 {
            return self.wal_segments(generation).await;
        }
        // Segment names sort by (index, offset); every name of `from_index` and above sorts
        // after the bare index, so the listing starts there (`start-after` on S3).
        let store = self.store().await?;
        let dir = layout::wal_dir(generation);
        let prefix = self.path(&dir);
        let offset = self.path(&format!("{dir}/{from_index:08x}"));
        let objects = self
            .list_all(store.as_ref(), &prefix, false, Some(offset.to_string()))
            .await
            .map_err(|err| self.list_error(&prefix, err))?
            .objects;
        let mut segments: Vec<WalSegmentInfo> = objects
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                // Only direct children of the WAL folder, as the full listing.
                if !self.recursive && meta.location.prefix_match(&prefix)?.count() != 1 {
                    return None;
                }
                let (index, offset) = layout::parse_wal_segment_name(name)?;
                (index >= from_index).then(|| segment_info(generation, index, offset, &meta))
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
        let paths = positions
            .iter()
            .map(|pos| self.path(&layout::wal_segment_path(pos)))
            .collect();
        self.delete_paths(paths).await
    }

    async fn wal_segment_reader(&self, pos: &Pos) -> Result<ByteStream, ClientError> {
        self.reader(&layout::wal_segment_path(pos)).await
    }
}

impl fmt::Debug for ObjectReplicaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The builders hold credentials: only the location is shown.
        f.debug_struct("ObjectReplicaClient")
            .field("kind", &self.kind)
            .field("root", &self.display_root)
            .field("prefix", &self.prefix.as_ref())
            .finish_non_exhaustive()
    }
}

/// Makes ring rustls's process-wide crypto provider, for reqwest (built without one). When a
/// provider is already installed (by us or by the program) that one stays: the error is the
/// expected outcome then.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// HTTP settings of every object-store client. A stalled connection (accepted, then silent, or a
/// body that stops flowing) is detected by the 10 s idle read timeout and retried; the whole
/// request may take 5 minutes, so a large part or snapshot still uploads over a slow link
/// (object_store's default of 30 s for the whole request, body included, would fail a 5 MiB
/// part below ~170 KB/s every time).
fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_read_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
}

/// Retries of transient failures (connection errors, timeouts, 429, 5xx): up to 4 retries with
/// exponential backoff from 100 ms, within 30 s, so an outage surfaces to the replica loop (which
/// retries on its next tick) instead of blocking it for minutes.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 4,
        retry_timeout: Duration::from_secs(30),
    }
}

/// Whether `endpoint`'s host is an IP address (`http://127.0.0.1:9000`, `http://[::1]:9000`).
fn endpoint_is_ip(endpoint: &str) -> bool {
    let Some((_, rest)) = endpoint.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.starts_with('[') {
        return true;
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The key prefix as an `object_store` path: cleaned, without leading or trailing `/`.
fn prefix_path(kind: &'static str, path: &str) -> Result<Path, OpenError> {
    let cleaned = object_prefix(path);
    Path::parse(&cleaned).map_err(|err| OpenError::Invalid {
        kind,
        reason: format!("invalid path {cleaned:?}: {err}"),
    })
}

fn invalid(kind: &'static str, reason: &str) -> OpenError {
    OpenError::Invalid {
        kind,
        reason: reason.to_owned(),
    }
}

fn setup(kind: &'static str, target: &str, err: object_store::Error) -> OpenError {
    OpenError::Setup {
        kind,
        target: target.to_owned(),
        source: Box::new(err),
    }
}

/// The key a listing error says `object_store` cannot represent, if it is such an error.
fn unrepresentable_key(err: &object_store::Error) -> Option<&str> {
    let object_store::Error::InvalidPath { source } = err else {
        return None;
    };
    match source {
        object_store::path::Error::EmptySegment { path }
        | object_store::path::Error::BadSegment { path, .. }
        | object_store::path::Error::NonUnicode { path, .. } => Some(path),
        _ => None,
    }
}

/// The `start-after` key that goes past the listed `key`: the key itself, or for a common
/// prefix (`a/../`) one past every key under it (`a/..0`, which no Litestream name is).
fn skip_past(key: &str) -> String {
    match key.strip_suffix('/') {
        Some(dir) => format!("{dir}0"),
        None => key.to_owned(),
    }
}

fn store_error(op: &'static str, key: String, err: object_store::Error) -> ClientError {
    match err {
        object_store::Error::NotFound { .. } => ClientError::NotFound { key },
        err => ClientError::Backend {
            op,
            key,
            source: Box::new(err),
        },
    }
}

/// The `key = value` pairs of `[profile]` in an AWS shared credentials file.
fn shared_credentials(text: &str, profile: &str) -> Vec<(String, String)> {
    let mut in_profile = false;
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            continue;
        }
        if in_profile && let Some((key, value)) = line.split_once('=') {
            pairs.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    pairs
}

/// A listed WAL segment object as the trait reports it.
fn segment_info(
    generation: &Generation,
    index: u32,
    offset: u64,
    meta: &ObjectMeta,
) -> WalSegmentInfo {
    WalSegmentInfo {
        generation: *generation,
        index,
        offset,
        size: meta.size,
        created_at: SystemTime::from(meta.last_modified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_credentials_reads_only_the_profile() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\
                    # comment\n[other]\naws_access_key_id = C\n";
        assert_eq!(
            shared_credentials(text, "default"),
            vec![
                ("aws_access_key_id".to_owned(), "A".to_owned()),
                ("aws_secret_access_key".to_owned(), "B".to_owned()),
            ]
        );
        assert_eq!(
            shared_credentials(text, "other"),
            vec![("aws_access_key_id".to_owned(), "C".to_owned())]
        );
        assert!(shared_credentials(text, "missing").is_empty());
    }

    #[test]
    fn credentials_from_env_prefers_aws_then_litestream_vars() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let mut options = S3Options::default();
        options.credentials_from_env(env(&[
            ("LITESTREAM_ACCESS_KEY_ID", "lit"),
            ("LITESTREAM_SECRET_ACCESS_KEY", "litsecret"),
            ("AWS_ACCESS_KEY_ID", "aws"),
        ]));
        assert_eq!(options.access_key_id.expose(), "aws");
        assert_eq!(options.secret_access_key.expose(), "litsecret");

        let mut options = S3Options {
            access_key_id: Secret::new("config"),
            ..S3Options::default()
        };
        options.credentials_from_env(env(&[("AWS_SECRET_ACCESS_KEY", "aws")]));
        assert_eq!(options.access_key_id.expose(), "config");
        assert!(options.secret_access_key.is_empty());
    }

    #[test]
    fn debug_hides_secrets() {
        let options = S3Options {
            bucket: "bkt".to_owned(),
            access_key_id: Secret::new("AKIDSECRET"),
            secret_access_key: Secret::new("verysecret"),
            ..S3Options::default()
        };
        let client = ObjectReplicaClient::s3(options.clone()).expect("valid options");
        for text in [format!("{options:?}"), format!("{client:?}")] {
            assert!(!text.contains("AKIDSECRET"), "{text}");
            assert!(!text.contains("verysecret"), "{text}");
        }
    }
}
