//! Telling a passing storage failure from a final one, shared by the backends (which add what
//! they know of their own error types) and the restore engine's retries.

use std::error::Error;
use std::io;

use crate::ClientError;

/// Whether `err` may pass if the request is tried again: an I/O failure other than a missing
/// file, a refusal or bad data; an HTTP 5xx, 429 or 408. Not found is final. Along the source
/// chain of a backend error, `known` is asked first about each error (`Some` decides); a
/// backend error that names neither an HTTP status nor an I/O error is `unknown`.
pub fn is_transient_with(
    err: &ClientError,
    known: impl Fn(&(dyn Error + 'static)) -> Option<bool>,
    unknown: bool,
) -> bool {
    let source: &(dyn Error + 'static) = match err {
        ClientError::NotFound { .. } => return false,
        ClientError::Io { source, .. } => return io_transient(source),
        ClientError::Backend { source, .. } => source.as_ref(),
    };
    let mut current = Some(source);
    while let Some(err) = current {
        if let Some(status) = http_status(err) {
            return status >= 500 || status == 429 || status == 408;
        }
        if let Some(decided) = known(err) {
            return decided;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return io_transient(io);
        }
        current = err.source();
    }
    unknown
}

/// The HTTP status an `object_store` request failed with, read from its message (the error type
/// that holds it is private): `... Server returned non-2xx status code: 503 Service Unavailable`.
pub fn http_status(err: &(dyn Error + 'static)) -> Option<u16> {
    let text = err.to_string();
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

/// Whether an I/O failure may pass: everything but a missing file, a refusal and bad data.
fn io_transient(err: &io::Error) -> bool {
    !matches!(
        err.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::AlreadyExists
            | io::ErrorKind::Unsupported
    )
}
