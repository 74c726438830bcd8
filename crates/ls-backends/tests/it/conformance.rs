//! One `ReplicaClient` conformance suite run on every cloud backend against a real server
//! (moto, fake-gcs-server, Azurite, sshd): writes, listings, reads, deletes, `NotFound`,
//! listings past 1,000 objects (pagination), names that are not Litestream's, multipart-sized
//! objects, and errors that name the bucket and key.
#![expect(
    clippy::unwrap_used,
    reason = "the suite's parts are test code called from #[tokio::test] functions"
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use ls_backends::{
    AzureOptions, GcsOptions, HostKeyCheck, ObjectReplicaClient, S3Options, Secret, SftpOptions,
    SftpReplicaClient,
};
use ls_core::{ClientError, Generation, Pos, ReplicaClient, layout};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::servers::{self, AZURITE_ACCOUNT, AZURITE_KEY, Server};
use crate::{bytes_stream, collect_chunks, read_all, stream_of};

/// Writes raw bytes at a key relative to the replica root, bypassing the client, to plant
/// names the client would never write.
type Plant = Box<dyn Fn(String, Vec<u8>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A client on one replica root, and a way to plant raw objects under that root.
pub(crate) struct Backend {
    pub(crate) client: Arc<dyn ReplicaClient>,
    pub(crate) plant: Plant,
    /// GCS and Azure list snapshots and segments recursively (0.3.13).
    pub(crate) recursive: bool,
    /// What every error about this replica must name (bucket or host).
    pub(crate) names: String,
}

fn generation(name: &str) -> Generation {
    Generation::parse(name).expect("a valid generation name")
}

/// The whole suite, each part on its own replica root from `backend(root)`.
pub(crate) async fn run_suite(backend: impl Fn(&str) -> Backend) {
    round_trip(&backend("suite/round-trip")).await;
    foreign_names(&backend("suite/foreign")).await;
    large_object(&backend("suite/large")).await;
    pagination(&backend("suite/many")).await;
    missing_objects(&backend("suite/missing")).await;
}

async fn round_trip(backend: &Backend) {
    let client = &backend.client;
    let generation = generation("249c268eb6efdc47");
    let data = b"lz4 bytes of a snapshot".repeat(10);
    let written = client
        .write_snapshot(
            &generation,
            3,
            stream_of(vec![data[..7].to_vec(), data[7..].to_vec()]),
        )
        .await
        .expect("the snapshot is written");
    assert_eq!(written.index, 3);
    assert_eq!(written.size, u64::try_from(data.len()).unwrap());
    client
        .write_snapshot(&generation, 1, bytes_stream(b"first"))
        .await
        .unwrap();
    let positions = [(1, 32), (0, 4152), (1, 0), (0, 0), (10, 0), (0, 0x1_0000)];
    for (index, offset) in positions {
        let pos = Pos::new(generation, index, offset);
        let segment = client
            .write_wal_segment(&pos, bytes_stream(format!("{index}/{offset}").as_bytes()))
            .await
            .expect("the segment is written");
        assert_eq!(segment.pos(), pos);
    }
    let other = self::generation("0000000000000001");
    client
        .write_snapshot(&other, 0, bytes_stream(b""))
        .await
        .unwrap();

    assert_eq!(client.generations().await.unwrap(), vec![other, generation]);
    let snapshots = client.snapshots(&generation).await.unwrap();
    let indexes: Vec<u32> = snapshots.iter().map(|s| s.index).collect();
    assert_eq!(indexes, vec![1, 3]);
    assert_eq!(snapshots[1].size, written.size);
    let age = std::time::SystemTime::now()
        .duration_since(snapshots[1].created_at)
        .unwrap_or_default();
    assert!(age.as_secs() < 600, "created_at is {age:?} old");
    assert_eq!(
        read_all(client.snapshot_reader(&generation, 3).await.unwrap()).await,
        data
    );
    let empty = collect_chunks(client.snapshot_reader(&other, 0).await.unwrap())
        .await
        .unwrap();
    assert!(empty.concat().is_empty());

    let segments = client.wal_segments(&generation).await.unwrap();
    let listed: Vec<(u32, u64)> = segments.iter().map(|s| (s.index, s.offset)).collect();
    assert_eq!(
        listed,
        vec![(0, 0), (0, 4152), (0, 0x1_0000), (1, 0), (1, 32), (10, 0)]
    );
    for segment in &segments {
        let data = read_all(client.wal_segment_reader(&segment.pos()).await.unwrap()).await;
        assert_eq!(
            data,
            format!("{}/{}", segment.index, segment.offset).as_bytes()
        );
        assert_eq!(segment.size, u64::try_from(data.len()).unwrap());
    }

    // Overwriting replaces.
    client
        .write_snapshot(&generation, 1, bytes_stream(b"second"))
        .await
        .unwrap();
    assert_eq!(
        read_all(client.snapshot_reader(&generation, 1).await.unwrap()).await,
        b"second"
    );

    client.delete_snapshot(&generation, 1).await.unwrap();
    client
        .delete_wal_segments(&[Pos::new(generation, 0, 0), Pos::new(generation, 10, 0)])
        .await
        .unwrap();
    let indexes: Vec<u32> = client
        .snapshots(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.index)
        .collect();
    assert_eq!(indexes, vec![3]);
    assert_eq!(client.wal_segments(&generation).await.unwrap().len(), 4);

    client.delete_generation(&generation).await.unwrap();
    assert_eq!(client.generations().await.unwrap(), vec![other]);
    assert_eq!(client.snapshots(&generation).await.unwrap(), vec![]);
    assert_eq!(client.wal_segments(&generation).await.unwrap(), vec![]);
}

async fn missing_objects(backend: &Backend) {
    let client = &backend.client;
    let generation = generation("0123456789abcdef");
    // Deleting what does not exist succeeds.
    client.delete_snapshot(&generation, 7).await.unwrap();
    client
        .delete_wal_segments(&[Pos::new(generation, 0, 0), Pos::new(generation, 1, 32)])
        .await
        .unwrap();
    client.delete_generation(&generation).await.unwrap();
    assert_eq!(client.snapshots(&generation).await.unwrap(), vec![]);
    assert_eq!(client.wal_segments(&generation).await.unwrap(), vec![]);

    match client.snapshot_reader(&generation, 5).await {
        Err(ClientError::NotFound { key }) => {
            assert!(
                key.contains(&backend.names),
                "{key} names {}",
                backend.names
            );
            assert!(
                key.ends_with(&layout::snapshot_path(&generation, 5)),
                "{key}"
            );
        }
        Err(err) => panic!("want NotFound, got {err:?}"),
        Ok(_) => panic!("want NotFound, got a reader"),
    }
    match client
        .wal_segment_reader(&Pos::new(generation, 0, 32))
        .await
    {
        Err(ClientError::NotFound { key }) => {
            assert!(key.ends_with("wal/00000000_00000020.wal.lz4"), "{key}");
        }
        Err(err) => panic!("want NotFound, got {err:?}"),
        Ok(_) => panic!("want NotFound, got a reader"),
    }
}

async fn foreign_names(backend: &Backend) {
    let client = &backend.client;
    let generation = generation("0123456789abcdef");
    client
        .write_snapshot(&generation, 1, bytes_stream(b"s"))
        .await
        .unwrap();
    client
        .write_wal_segment(&Pos::new(generation, 1, 0), bytes_stream(b"w"))
        .await
        .unwrap();
    let dir = layout::generation_dir(&generation);
    for name in [
        "generations/README".to_owned(),
        "generations/ABCDEF0123456789/snapshots/00000000.snapshot.lz4".to_owned(),
        "generations/0123456789abcde/snapshots/00000000.snapshot.lz4".to_owned(),
        "other/generations/1111111111111111/snapshots/00000000.snapshot.lz4".to_owned(),
        format!("{dir}/snapshots/00000002.snapshot.lz4.tmp"),
        format!("{dir}/snapshots/0000000A.snapshot.lz4"),
        format!("{dir}/snapshots/00000002.snapshot"),
        format!("{dir}/snapshots/.DS_Store"),
        format!("{dir}/wal/00000001_00000020.wal.lz4.tmp"),
        format!("{dir}/wal/00000001.wal.lz4"),
        format!("{dir}/wal/00000001_0000002G.wal.lz4"),
        format!("{dir}/wal/00000003_00000000.wal"),
        format!("{dir}/notes.txt"),
    ] {
        (backend.plant)(name, b"junk".to_vec()).await;
    }
    // A matching name one folder down: GCS and Azure list recursively (0.3.13 does too).
    (backend.plant)(
        format!("{dir}/snapshots/old/00000004.snapshot.lz4"),
        b"deep".to_vec(),
    )
    .await;

    assert_eq!(client.generations().await.unwrap(), vec![generation]);
    let indexes: Vec<u32> = client
        .snapshots(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.index)
        .collect();
    if backend.recursive {
        assert_eq!(indexes, vec![1, 4]);
    } else {
        assert_eq!(indexes, vec![1]);
    }
    let segments: Vec<Pos> = client
        .wal_segments(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.pos())
        .collect();
    assert_eq!(segments, vec![Pos::new(generation, 1, 0)]);
}

async fn large_object(backend: &Backend) {
    let client = &backend.client;
    let generation = generation("0123456789abcdef");
    // Past the 5 MiB single-PUT limit: a multipart upload of two parts.
    let data: Vec<u8> = (0..(6 * 1024 * 1024 + 17))
        .map(|i: u32| u8::try_from(i % 251).unwrap())
        .collect();
    let chunks: Vec<Vec<u8>> = data.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let written = client
        .write_snapshot(&generation, 0, stream_of(chunks))
        .await
        .expect("the large snapshot is written");
    assert_eq!(written.size, u64::try_from(data.len()).unwrap());
    let listed = client.snapshots(&generation).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, written.size);
    let chunks = collect_chunks(client.snapshot_reader(&generation, 0).await.unwrap())
        .await
        .unwrap();
    assert_eq!(chunks.concat(), data);
}

async fn pagination(backend: &Backend) {
    let client = &backend.client;
    let generation = generation("0123456789abcdef");
    const COUNT: u32 = 1_005;
    let writes = futures_util::stream::iter(0..COUNT)
        .map(|offset| {
            let client = Arc::clone(client);
            async move {
                let pos = Pos::new(generation, 0, u64::from(offset) * 32);
                client
                    .write_wal_segment(&pos, bytes_stream(b"w"))
                    .await
                    .expect("the segment is written");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    let plants = futures_util::stream::iter(0..COUNT)
        .map(|n| {
            let name = format!("generations/{:016x}/snapshots/00000000.snapshot.lz4", n + 1);
            (backend.plant)(name, b"s".to_vec())
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    futures_util::join!(writes, plants);

    let segments = client.wal_segments(&generation).await.unwrap();
    assert_eq!(segments.len(), usize::try_from(COUNT).unwrap());
    assert!(segments.windows(2).all(|w| w[0].pos() < w[1].pos()));
    let generations = client.generations().await.unwrap();
    assert_eq!(generations.len(), usize::try_from(COUNT + 1).unwrap());
    assert!(generations.windows(2).all(|w| w[0] < w[1]));

    client.delete_generation(&generation).await.unwrap();
    assert_eq!(client.wal_segments(&generation).await.unwrap(), vec![]);
}

/// ring as rustls's provider, for the raw stores built before any client (clients install it
/// themselves); an already installed provider is fine.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plant function over a raw `object_store` store and the replica's prefix.
fn store_plant(store: Arc<dyn ObjectStore>, prefix: &str) -> Plant {
    let prefix = prefix.to_owned();
    Box::new(move |name, data| {
        let store = Arc::clone(&store);
        let path = StorePath::parse(format!("{prefix}/{name}")).expect("a valid key");
        Box::pin(async move {
            store
                .put(&path, PutPayload::from(data))
                .await
                .expect("the raw object is planted");
        })
    })
}

/// S3 options for moto at `server`.
pub(crate) fn moto_options(server: &Server, bucket: &str, path: &str) -> S3Options {
    S3Options {
        bucket: bucket.to_owned(),
        path: path.to_owned(),
        endpoint: format!("http://{}", server.addr),
        force_path_style: true,
        access_key_id: Secret::new("AKIDTEST"),
        secret_access_key: Secret::new("secrettest"),
        ..S3Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moto_passes_conformance_suite() {
    let server = servers::moto("bkt");
    install_crypto_provider();
    let raw: Arc<dyn ObjectStore> = Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("bkt")
            .with_endpoint(format!("http://{}", server.addr))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("AKIDTEST")
            .with_secret_access_key("secrettest")
            .build()
            .unwrap(),
    );
    run_suite(|root| Backend {
        client: Arc::new(ObjectReplicaClient::s3(moto_options(&server, "bkt", root)).unwrap()),
        plant: store_plant(Arc::clone(&raw), root),
        recursive: false,
        names: "s3://bkt/".to_owned(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_not_found_naming_bucket() {
    let server = servers::moto("bkt");
    let client = ObjectReplicaClient::s3(moto_options(&server, "nobucket", "db")).unwrap();
    match client.generations().await {
        Err(ClientError::NotFound { key }) => assert_eq!(key, "s3://nobucket"),
        other => panic!("want NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_virtual_hosted_endpoint_puts_bucket_in_host() {
    // Path-style off: the bucket goes in front of the endpoint's host, as the AWS SDK does;
    // `bkt.example.invalid` never resolves, so the failure is transient and names the key.
    let server = servers::moto("bkt");
    let mut options = moto_options(&server, "bkt", "db");
    options.force_path_style = false;
    options.endpoint = "http://example.invalid:9".to_owned();
    let client = ObjectReplicaClient::s3(options).unwrap();
    let err = client
        .write_snapshot(&generation("0123456789abcdef"), 0, bytes_stream(b"x"))
        .await
        .unwrap_err();
    let text = format!("{err}");
    assert!(
        text.contains("s3://bkt/db/generations/0123456789abcdef/snapshots/00000000.snapshot.lz4"),
        "{text}"
    );
    assert!(ls_backends::is_transient(&err), "{err:?}");
    assert!(!format!("{err:?}").contains("secrettest"));
}

/// Uploads `data` to fake-gcs-server through the JSON API (`uploadType=media`).
fn gcs_plant(addr: &str, bucket: &str, key: &str, data: &[u8]) {
    let body = String::from_utf8(data.to_vec()).expect("text data");
    let name: String = key
        .bytes()
        .map(|b| match b {
            b'/' => "%2F".to_owned(),
            b => char::from(b).to_string(),
        })
        .collect();
    let (status, response) = servers::http(
        addr,
        "POST",
        &format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}"),
        &body,
    );
    assert_eq!(status, 200, "upload of {key}: {response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fake_server_passes_conformance_suite() {
    let server = servers::fake_gcs("bkt");
    let addr = server.addr.clone();
    run_suite(|root| {
        let addr = addr.clone();
        let root = root.to_owned();
        Backend {
            client: Arc::new(
                ObjectReplicaClient::gcs(GcsOptions {
                    bucket: "bkt".to_owned(),
                    path: root.clone(),
                    emulator_host: addr.clone(),
                })
                .unwrap(),
            ),
            plant: Box::new(move |name, data| {
                let addr = addr.clone();
                let key = format!("{root}/{name}");
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || gcs_plant(&addr, "bkt", &key, &data))
                        .await
                        .unwrap();
                })
            }),
            recursive: true,
            names: "gcs://bkt/".to_owned(),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_fake_server_lists_and_reads_json_uploads() {
    let server = servers::fake_gcs("bkt");
    let generation = generation("0123456789abcdef");
    let dir = format!("db/{}", layout::generation_dir(&generation));
    for (name, data) in [
        ("snapshots/00000001.snapshot.lz4", "snap"),
        ("snapshots/00000000.snapshot.lz4.tmp", "junk"),
        ("wal/00000001_00000000.wal.lz4", "wal-1-0"),
        ("wal/00000000_00001000.wal.lz4", "wal-0-4096"),
    ] {
        gcs_plant(
            &server.addr,
            "bkt",
            &format!("{dir}/{name}"),
            data.as_bytes(),
        );
    }
    gcs_plant(&server.addr, "bkt", "db/generations/README", b"junk");
    let client = ObjectReplicaClient::gcs(GcsOptions {
        bucket: "bkt".to_owned(),
        path: "db".to_owned(),
        emulator_host: server.addr.clone(),
    })
    .unwrap();
    assert_eq!(client.generations().await.unwrap(), vec![generation]);
    let snapshots = client.snapshots(&generation).await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].size, 4);
    assert_eq!(
        read_all(client.snapshot_reader(&generation, 1).await.unwrap()).await,
        b"snap"
    );
    let segments: Vec<(u32, u64)> = client
        .wal_segments(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.index, s.offset))
        .collect();
    assert_eq!(segments, vec![(0, 4096), (1, 0)]);
    assert_eq!(
        read_all(
            client
                .wal_segment_reader(&Pos::new(generation, 1, 0))
                .await
                .unwrap()
        )
        .await,
        b"wal-1-0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_azurite_passes_conformance_suite() {
    let server = servers::azurite("ctr");
    install_crypto_provider();
    let endpoint = format!("http://{}/{AZURITE_ACCOUNT}", server.addr);
    let raw: Arc<dyn ObjectStore> = Arc::new(
        object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(AZURITE_ACCOUNT)
            .with_access_key(AZURITE_KEY)
            .with_container_name("ctr")
            .with_endpoint(endpoint.clone())
            .with_allow_http(true)
            .build()
            .unwrap(),
    );
    run_suite(|root| Backend {
        client: Arc::new(
            ObjectReplicaClient::azure(AzureOptions {
                account_name: AZURITE_ACCOUNT.to_owned(),
                account_key: Secret::new(AZURITE_KEY),
                container: "ctr".to_owned(),
                path: root.to_owned(),
                endpoint: endpoint.clone(),
            })
            .unwrap(),
        ),
        plant: store_plant(Arc::clone(&raw), root),
        recursive: true,
        names: "abs://ctr/".to_owned(),
    })
    .await;
}

/// SFTP options for `server` (from [`servers::sshd`]) with the replica at `root`.
pub(crate) fn sftp_options(server: &Server, root: &std::path::Path) -> SftpOptions {
    SftpOptions {
        host: server.addr.clone(),
        user: servers::current_user(),
        password: Secret::default(),
        key_path: server.dir.path().join("client_key").display().to_string(),
        path: root.display().to_string(),
        host_key: HostKeyCheck::KnownHosts(server.dir.path().join("known_hosts")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_sshd_passes_conformance_suite() {
    let server = servers::sshd();
    let replicas = tempfile::tempdir().unwrap();
    let base = replicas.path().to_path_buf();
    run_suite(|root| {
        let dir = base.join(root);
        let plant_dir = dir.clone();
        Backend {
            client: Arc::new(SftpReplicaClient::new(sftp_options(&server, &dir)).unwrap()),
            plant: Box::new(move |name, data| {
                let path = plant_dir.join(name);
                Box::pin(async move {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, data).unwrap();
                })
            }),
            recursive: false,
            names: format!("sftp://{}@{}", servers::current_user(), server.addr),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_unknown_host_key_is_refused() {
    let server = servers::sshd();
    let replicas = tempfile::tempdir().unwrap();
    let empty_known_hosts = replicas.path().join("known_hosts");
    std::fs::write(&empty_known_hosts, "").unwrap();
    let mut options = sftp_options(&server, replicas.path());
    options.host_key = HostKeyCheck::KnownHosts(empty_known_hosts.clone());
    let client = SftpReplicaClient::new(options.clone()).unwrap();
    let err = client.generations().await.unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("is not in"), "{text}");
    assert!(text.contains(&server.addr), "{text}");

    // A wrong pinned key is refused; the right one and the insecure opt-out are accepted.
    let other_key = servers::read(&server.dir.path().join("client_key.pub"));
    options.host_key = HostKeyCheck::Key(other_key);
    let err = SftpReplicaClient::new(options.clone())
        .unwrap()
        .generations()
        .await
        .unwrap_err();
    assert!(
        format!("{}", std::error::Error::source(&err).unwrap()).contains("host-key"),
        "{err:?}"
    );
    options.host_key = HostKeyCheck::Key(servers::read(&server.dir.path().join("host_key.pub")));
    SftpReplicaClient::new(options.clone())
        .unwrap()
        .generations()
        .await
        .unwrap();
    options.host_key = HostKeyCheck::InsecureIgnore;
    SftpReplicaClient::new(options)
        .unwrap()
        .generations()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_missing_root_is_not_found() {
    let server = servers::sshd();
    let replicas = tempfile::tempdir().unwrap();
    let client =
        SftpReplicaClient::new(sftp_options(&server, &replicas.path().join("missing"))).unwrap();
    match client.generations().await {
        Err(ClientError::NotFound { key }) => assert!(key.ends_with("/missing"), "{key}"),
        other => panic!("want NotFound, got {other:?}"),
    }
}
