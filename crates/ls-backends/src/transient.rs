//! [`is_transient`]: whether a [`ClientError`] is worth retrying later.

use std::error::Error;

use ls_core::ClientError;

/// Whether `err` looks transient: a network failure, a timeout, a throttle (429) or a server
/// error (5xx), after the backend's own retries gave up. Missing objects, refused credentials,
/// missing buckets and other 4xx answers are permanent. The replicate engine uses this to log an
/// outage once and keep retrying quietly.
pub fn is_transient(err: &ClientError) -> bool {
    ls_core::is_transient_with(err, known, false)
}

/// What this crate's own error types say, where they decide it.
fn known(err: &(dyn Error + 'static)) -> Option<bool> {
    if err
        .downcast_ref::<object_store::client::HttpError>()
        .is_some()
    {
        return Some(true);
    }
    if let Some(ssh) = err.downcast_ref::<russh::Error>() {
        return Some(matches!(
            ssh,
            russh::Error::IO(_)
                | russh::Error::Disconnect
                | russh::Error::ConnectionTimeout
                | russh::Error::KeepaliveTimeout
                | russh::Error::InactivityTimeout
                | russh::Error::HUP
                | russh::Error::SendError
        ));
    }
    if let Some(sftp) = err.downcast_ref::<russh_sftp::client::error::Error>() {
        return Some(matches!(
            sftp,
            russh_sftp::client::error::Error::IO(_) | russh_sftp::client::error::Error::Timeout
        ));
    }
    None
}
