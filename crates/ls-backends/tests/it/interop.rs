//! Litestream 0.3.13 writes, we read: the reference binary replicates a small SQLite database
//! (written by python's sqlite3) to a real server, then our client lists what it wrote and
//! reads and decodes every object.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ls_backends::ObjectReplicaClient;
use ls_core::ReplicaClient;

use crate::conformance::moto_options;
use crate::{read_all, servers, workspace_root};

/// The reference Litestream: `LITESTREAM_REF_BIN`, else `target/tools/venv/bin/litestream`.
fn reference_litestream() -> PathBuf {
    let path = std::env::var_os("LITESTREAM_REF_BIN").map_or_else(
        || workspace_root().join("target/tools/venv/bin/litestream"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the reference Litestream 0.3.13 is missing at {}: run `cargo xtask tools`",
        path.display()
    );
    path
}

/// Kills the reference `replicate` on drop.
struct Replicating(Child);

impl Drop for Replicating {
    fn drop(&mut self) {
        // Already gone is fine too.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_litestream_replica_lists_and_decodes() {
    let server = servers::moto("bkt");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('pragma journal_mode=wal');\
             c.execute('create table t(x)'); c.executemany('insert into t values(?)', [(i,) for i in range(100)]);\
             c.commit()",
        ])
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let config = dir.path().join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    replicas:\n      - type: s3\n        bucket: bkt\n        path: app\n        \
             endpoint: http://{}\n        region: us-east-1\n        force-path-style: true\n        \
             access-key-id: AKIDTEST\n        secret-access-key: secrettest\n",
            db.display(),
            server.addr
        ),
    )
    .unwrap();
    let replicating = Replicating(
        Command::new(reference_litestream())
            .args(["replicate", "-config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = ObjectReplicaClient::s3(moto_options(&server, "bkt", "app")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let generation = loop {
        if let Ok(generations) = client.generations().await
            && let Some(generation) = generations.first().copied()
            && !client.snapshots(&generation).await.unwrap().is_empty()
            && !client.wal_segments(&generation).await.unwrap().is_empty()
        {
            break generation;
        }
        assert!(
            Instant::now() < deadline,
            "Litestream wrote no replica in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(replicating);

    let snapshots = client.snapshots(&generation).await.unwrap();
    for snapshot in &snapshots {
        let data = read_all(
            client
                .snapshot_reader(&generation, snapshot.index)
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(u64::try_from(data.len()).unwrap(), snapshot.size);
        let page = ls_core::decompress(&data).expect("a snapshot is an LZ4 frame");
        assert!(page.starts_with(b"SQLite format 3\0"), "a database image");
    }
    for segment in client.wal_segments(&generation).await.unwrap() {
        let data = read_all(client.wal_segment_reader(&segment.pos()).await.unwrap()).await;
        assert_eq!(u64::try_from(data.len()).unwrap(), segment.size);
        let wal = ls_core::decompress(&data).expect("a segment is an LZ4 frame");
        assert!(!wal.is_empty());
    }

    // The reference lists the same snapshots.
    let output = Command::new(reference_litestream())
        .args(["snapshots", "-config"])
        .arg(&config)
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let listed = text.lines().skip(1).count();
    assert_eq!(listed, snapshots.len(), "{text}");
    for snapshot in &snapshots {
        assert!(
            text.contains(&format!("{}  {}", generation, snapshot.index))
                || text.contains(&generation.to_string()),
            "{text}"
        );
    }
}
