//! The one integration test binary of ls-backends: the file replica client's conformance suite
//! (`file`), the cloud backends' suite against real servers (`conformance`, servers started by
//! `servers`), Litestream 0.3.13 interop (`interop`), and replica URL parsing (`url`), with the
//! helpers they share.

mod conformance;
mod file;
mod interop;
mod servers;
mod url;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use ls_core::{ByteStream, ClientError};

/// The workspace root: this crate is `<root>/crates/ls-backends`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("CARGO_MANIFEST_DIR is <root>/crates/ls-backends")
        .to_path_buf()
}

/// `<root>/../shared/fixtures`, the replicas the real Litestream 0.3.13 wrote; panics with a
/// clear message when it is missing, so the fixture tests never pass by finding nothing.
fn fixtures_dir() -> PathBuf {
    let dir = workspace_root().join("..").join("shared").join("fixtures");
    assert!(
        dir.join("README.md").is_file(),
        "the Litestream 0.3.13 fixtures are missing: expected {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

/// A stream yielding `chunks` in order.
fn stream_of(chunks: Vec<Vec<u8>>) -> ByteStream {
    Box::pin(futures_util::stream::iter(
        chunks.into_iter().map(|chunk| Ok(Bytes::from(chunk))),
    ))
}

/// A stream yielding `data` as one chunk.
fn bytes_stream(data: &[u8]) -> ByteStream {
    stream_of(vec![data.to_vec()])
}

/// Every chunk of `stream`, in order; the first error ends it.
async fn collect_chunks(mut stream: ByteStream) -> Result<Vec<Bytes>, ClientError> {
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk?);
    }
    Ok(chunks)
}

/// All bytes of `stream`.
async fn read_all(stream: ByteStream) -> Vec<u8> {
    collect_chunks(stream)
        .await
        .expect("the stream yields no error")
        .concat()
}
