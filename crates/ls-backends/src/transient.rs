//! [`is_transient`]: whether a [`ClientError`] is worth retrying later.

use std::error::Error;
use std::io;

use ls_core::ClientError;

/// Whether `err` looks transient: a network failure, a timeout, a throttle (429) or a server
/// error (5xx), after the backend's own retries gave up. Missing objects, refused credentials,
/// missing buckets and other 4xx answers are permanent. The replicate engine uses this to log an
/// outage once and keep retrying quietly.
pub fn is_transient(err: &ClientError) -> bool {
    let source: &(dyn Error + 'static) = match err {
        ClientError::NotFound { .. } => return false,
        ClientError::Io { source, .. } => return io_transient(source),
        ClientError::Backend { source, .. } => source.as_ref(),
        _ => return false,
    };
    let mut current = Some(source);
    while let Some(err) = current {
        if let Some(status) = http_status(err) {
            return status >= 500 || status == 429 || status == 408;
        }
        if err
            .downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return io_transient(io);
        }
        if let Some(ssh) = err.downcast_ref::<russh::Error>() {
            return matches!(
                ssh,
                russh::Error::IO(_)
                    | russh::Error::Disconnect
                    | russh::Error::ConnectionTimeout
                    | russh::Error::KeepaliveTimeout
                    | russh::Error::InactivityTimeout
                    | russh::Error::HUP
                    | russh::Error::SendError
            );
        }
        if let Some(sftp) = err.downcast_ref::<russh_sftp::client::error::Error>() {
            return matches!(
                sftp,
                russh_sftp::client::error::Error::IO(_) | russh_sftp::client::error::Error::Timeout
            );
        }
        current = err.source();
    }
    false
}

/// The HTTP status an `object_store` request failed with, read from its message (the error type
/// that holds it is private): `... Server returned non-2xx status code: 503 Service Unavailable`.
pub(crate) fn http_status(err: &(dyn Error + 'static)) -> Option<u16> {
    let text = err.to_string();
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

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
