//! Retrying a restore's downloads: which storage failures are worth another try, and how long
//! to wait before it.
//!
//! A backend retries single requests itself (`object_store` retries 5xx, timeouts and bodies
//! cut short); what reaches the restore is a failure that outlived those retries, or one of a
//! backend without them (SFTP, files). The restore then fetches the object again, a few times
//! with exponential backoff, because one lost object otherwise costs the whole restore
//! (Litestream 0.3.13's `Replica.Restore` aborts on the first failed download). A missing
//! object, a refusal and a damaged object are final: trying again cannot help, and a damaged
//! object must never be mistaken for a cut download. ls-replica does not know the backends'
//! error types (house style 1.1), so it judges by what every [`ClientError`] carries: its
//! variant, the I/O error kinds and HTTP status in its source chain.

use std::time::Duration;

use ls_core::ClientError;

/// How many times a restore fetches one object before it gives up.
pub(crate) const FETCH_TRIES: u32 = 5;

/// The wait after the first failed fetch of an object; each later wait doubles.
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// The longest wait between two fetches of an object.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// The tries of one object's download.
#[derive(Debug)]
pub(crate) struct Retry {
    /// The object, as errors and logs name it (`wal segment generations/...`).
    what: String,
    /// Tries made so far, counting the one running.
    attempt: u32,
}

impl Retry {
    /// The first try of downloading `what`.
    pub(crate) fn new(what: String) -> Self {
        Self { what, attempt: 1 }
    }

    /// The object this download fetches.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// After a failed try: waits (backoff, logged at warn) and returns `Ok` when another try
    /// is worth it; returns the error when it is final or the tries are spent.
    ///
    /// # Cancel safety
    /// Cancel safe: it only sleeps.
    pub(crate) async fn after_failure(&mut self, err: ClientError) -> Result<(), ClientError> {
        if self.attempt >= FETCH_TRIES || !is_transient(&err) {
            return Err(err);
        }
        let delay = backoff(self.attempt);
        tracing::warn!(
            object = %self.what,
            attempt = self.attempt,
            tries = FETCH_TRIES,
            delay = ?delay,
            error = crate::engine_error::as_dyn(&err),
            "download failed, retrying"
        );
        tokio::time::sleep(delay).await;
        self.attempt += 1;
        Ok(())
    }
}

/// The wait after failed try number `attempt` (from 1): 100 ms, 200 ms, 400 ms, ... up to 2 s.
fn backoff(attempt: u32) -> Duration {
    let factor = 1_u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// Whether another fetch may succeed where this one failed: the transport failed (connection
/// refused, reset or closed, a timeout, a body cut short) or the server had a passing problem
/// (5xx, 429, 408). Not found, other 4xx answers, refused permissions and invalid data are
/// final. A backend failure that names neither an I/O error nor an HTTP status counts as
/// transient: a few more tries cost seconds, giving up on a passing failure costs the restore.
pub(crate) fn is_transient(err: &ClientError) -> bool {
    ls_core::is_transient_with(err, |_| None, true)
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::fmt;
    use std::io;

    use super::*;

    #[derive(Debug)]
    struct Message(&'static str);

    impl fmt::Display for Message {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Message {}

    fn backend(text: &'static str) -> ClientError {
        ClientError::Backend {
            op: "read",
            key: "k".into(),
            source: Box::new(Message(text)),
        }
    }

    fn io_error(kind: io::ErrorKind) -> ClientError {
        ClientError::Io {
            op: "read",
            key: "k".into(),
            source: io::Error::new(kind, "x"),
        }
    }

    #[test]
    fn backoff_doubles_from_100ms_up_to_2s() {
        let delays: Vec<_> = (1..=7).map(backoff).collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn is_transient_server_errors_and_cut_transport_yes() {
        assert!(is_transient(&backend(
            "Server returned non-2xx status code: 503 Service Unavailable"
        )));
        assert!(is_transient(&backend(
            "Server returned non-2xx status code: 500 Internal Server Error"
        )));
        assert!(is_transient(&backend("error sending request")));
        assert!(is_transient(&io_error(io::ErrorKind::UnexpectedEof)));
        assert!(is_transient(&io_error(io::ErrorKind::ConnectionReset)));
        assert!(is_transient(&io_error(io::ErrorKind::TimedOut)));
    }

    #[test]
    fn is_transient_missing_refused_or_bad_data_no() {
        assert!(!is_transient(&ClientError::NotFound { key: "k".into() }));
        assert!(!is_transient(&backend(
            "Server returned non-2xx status code: 403 Forbidden"
        )));
        assert!(!is_transient(&io_error(io::ErrorKind::NotFound)));
        assert!(!is_transient(&io_error(io::ErrorKind::PermissionDenied)));
        assert!(!is_transient(&io_error(io::ErrorKind::InvalidData)));
    }
}
