//! Streams bytes produced by blocking code through LZ4 (and age) into a [`ByteStream`] for a
//! replica client, with bounded memory: a few 64 KiB chunks in flight, whatever the size.
//!
//! A producer that fails ends the stream with an error, never with a clean end, so a client
//! never stores a truncated object under its final name.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use ls_core::{AgeRecipients, ByteStream, ClientError, Lz4Writer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes per chunk handed to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between the encoder and the client.
const IN_FLIGHT: usize = 4;

/// Runs `produce` on a blocking thread, writing into an LZ4 frame encoder (then age, when
/// `recipients` is set); returns the encoded stream and the producer's handle, whose value is
/// what `produce` returned (e.g. the uncompressed byte count).
pub(crate) fn encode_stream<T, F>(
    recipients: Option<Arc<AgeRecipients>>,
    key: String,
    produce: F,
) -> (ByteStream, JoinHandle<io::Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Write) -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes, ClientError>>(IN_FLIGHT);
    let handle = tokio::task::spawn_blocking(move || {
        let mut sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = run_encoder(recipients.as_deref(), &mut sink, produce);
        match &result {
            Ok(_) => {
                let _ = sink.flush();
            }
            Err(err) => {
                // The client sees the error instead of a clean end of stream. If it already went
                // away there is nobody to tell.
                let _ = tx.blocking_send(Err(ClientError::Io {
                    op: "encode",
                    key,
                    source: io::Error::new(err.kind(), err.to_string()),
                }));
            }
        }
        result
    });
    let stream = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (Box::pin(stream), handle)
}

fn run_encoder<T, F>(
    recipients: Option<&AgeRecipients>,
    sink: &mut ChannelWriter,
    produce: F,
) -> io::Result<T>
where
    F: FnOnce(&mut dyn Write) -> io::Result<T>,
{
    match recipients {
        Some(recipients) if !recipients.is_empty() => {
            let age = recipients
                .encrypt(sink)
                .map_err(|err| io::Error::other(err.to_string()))?;
            let mut lz4 = Lz4Writer::new(age);
            let value = produce(&mut lz4)?;
            lz4.finish()?.finish()?;
            Ok(value)
        }
        _ => {
            let mut lz4 = Lz4Writer::new(sink);
            let value = produce(&mut lz4)?;
            lz4.finish()?;
            Ok(value)
        }
    }
}

/// A `Write` that hands full chunks to the async side.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, ClientError>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped reading"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK.saturating_sub(self.buf.len()).max(1);
        let take = data.len().min(room);
        self.buf
            .extend_from_slice(data.get(..take).unwrap_or_default());
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
