//! A fault-injecting HTTP/1.1 proxy between an S3 client and moto, on 127.0.0.1, for the
//! storage-fault tests of issue #6.
//!
//! It serves one request per connection (every response it relays says `Connection: close`,
//! so clients never reuse a connection the proxy is about to cut) on std threads, and can:
//! pass requests through; answer every request with a 5xx and an S3 XML error body; stall
//! (read the request, never answer, hold the connection until the client gives up); cut the
//! response body of matching GETs after some bytes, a given number of times per object; answer
//! 404 `NoSuchKey` to matching GETs; or delete an object upstream right before the first GET
//! that names it (retention racing a restore). It records every request and what it did.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

/// What the proxy does to every request, before any per-object [`Rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Relays requests (subject to the rules).
    Pass,
    /// Answers every request with this 5xx status and an S3 error body.
    Status(u16),
    /// Reads each request and never answers.
    Stall,
}

/// What a [`Rule`] does to a matching GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Relays the response head and this many body bytes, then closes the connection.
    CutAfter(usize),
    /// Answers 404 `NoSuchKey` without asking upstream.
    NotFound,
    /// Deletes the object upstream, then relays the GET (which then finds nothing).
    DeleteFirst,
    /// Deletes these paths (`/<bucket>/<key>`) upstream, then relays the GET.
    DeleteOthersFirst(Vec<String>),
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// `GET`, `PUT`, ...
    pub(crate) method: String,
    /// The request target without its query (`/bkt/app/generations/...`).
    pub(crate) path: String,
    /// `pass`, `cut`, `404`, `deleted`, `stall` or the status answered (`503`, ...).
    pub(crate) outcome: String,
}

/// A rule for the GETs whose path contains `pattern`: `action`, at most `times` times for each
/// object (`u32::MAX`: always).
#[derive(Clone, Debug)]
struct Rule {
    pattern: String,
    action: Action,
    times: u32,
    hits: HashMap<String, u32>,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// The proxy; stops and cuts every connection on drop.
pub(crate) struct FaultProxy {
    /// `127.0.0.1:<port>`, for the client's endpoint.
    pub(crate) addr: String,
    state: Arc<Mutex<State>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A passing proxy in front of `upstream` (`127.0.0.1:<port>`).
    pub(crate) fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy binds a port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address")
            .to_string();
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Pass,
            rules: Vec::new(),
            seen: Vec::new(),
        }));
        let open = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        {
            let (state, open, stop) = (Arc::clone(&state), Arc::clone(&open), Arc::clone(&stop));
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    if let Ok(clone) = client.try_clone() {
                        lock(&open).push(clone);
                    }
                    let (state, upstream) = (Arc::clone(&state), upstream.clone());
                    thread::spawn(move || {
                        // A client or upstream that goes away ends the exchange; nothing to do.
                        let _ = serve(client, &upstream, &state);
                    });
                }
            });
        }
        Self {
            addr,
            state,
            open,
            stop,
        }
    }

    /// Switches the mode for the requests that arrive from now on.
    pub(crate) fn set_mode(&self, mode: Mode) {
        lock(&self.state).mode = mode;
    }

    /// Applies `action` to GETs whose path contains `pattern`, `times` times per object
    /// (`u32::MAX`: always). Rules are tried in the order added; the first with hits left wins.
    pub(crate) fn on_get(&self, pattern: &str, action: Action, times: u32) {
        lock(&self.state).rules.push(Rule {
            pattern: pattern.to_owned(),
            action,
            times,
            hits: HashMap::new(),
        });
    }

    /// Drops every rule.
    pub(crate) fn clear_rules(&self) {
        lock(&self.state).rules.clear();
    }

    /// Every request so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// How many requests so far had `method`, a path containing `pattern` and `outcome`.
    pub(crate) fn count(&self, method: &str, pattern: &str, outcome: &str) -> usize {
        self.seen()
            .iter()
            .filter(|seen| {
                seen.method == method && seen.path.contains(pattern) && seen.outcome == outcome
            })
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in lock(&self.open).drain(..) {
            // Already closed is fine.
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().expect("no proxy thread panics holding a lock")
}

/// One request read off a client connection.
struct Request {
    method: String,
    /// The target as sent, query included.
    target: String,
    /// The request line and headers, `Connection` replaced by `close`, with the final CRLF.
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Request {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// Serves one request of `client`.
fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> io::Result<()> {
    let Some(request) = read_request(&mut client)? else {
        return Ok(());
    };
    let (mode, action) = {
        let mut state = lock(state);
        let mode = state.mode;
        let action = match mode {
            Mode::Pass => take_action(&mut state.rules, &request),
            _ => None,
        };
        let outcome = match (mode, &action) {
            (Mode::Status(status), _) => status.to_string(),
            (Mode::Stall, _) => "stall".to_owned(),
            (Mode::Pass, None) => "pass".to_owned(),
            (Mode::Pass, Some(Action::CutAfter(_))) => "cut".to_owned(),
            (Mode::Pass, Some(Action::NotFound)) => "404".to_owned(),
            (Mode::Pass, Some(Action::DeleteFirst)) => "deleted".to_owned(),
            (Mode::Pass, Some(Action::DeleteOthersFirst(_))) => "pass".to_owned(),
        };
        state.seen.push(Seen {
            method: request.method.clone(),
            path: request.path().to_owned(),
            outcome,
        });
        (mode, action)
    };
    match (mode, action) {
        (Mode::Pass, Some(Action::DeleteOthersFirst(paths))) => {
            for path in &paths {
                delete_upstream(upstream, path)?;
            }
            relay(&mut client, upstream, &request, None)
        }
        (Mode::Status(status), _) => {
            let (code, message) = match status {
                503 => ("SlowDown", "Please reduce your request rate."),
                _ => (
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                ),
            };
            answer(&mut client, status, code, message, request.path())
        }
        (Mode::Stall, _) => {
            // Holds the connection, answering nothing, until the client gives up (or the
            // proxy is dropped, which shuts the socket down).
            let mut sink = [0_u8; 1024];
            while client.read(&mut sink)? > 0 {}
            Ok(())
        }
        (Mode::Pass, Some(Action::NotFound)) => answer(
            &mut client,
            404,
            "NoSuchKey",
            "The specified key does not exist.",
            request.path(),
        ),
        (Mode::Pass, Some(Action::DeleteFirst)) => {
            delete_upstream(upstream, request.path())?;
            relay(&mut client, upstream, &request, None)
        }
        (Mode::Pass, Some(Action::CutAfter(n))) => relay(&mut client, upstream, &request, Some(n)),
        (Mode::Pass, None) => relay(&mut client, upstream, &request, None),
    }
}

/// The action of the first rule matching `request` with hits left, counting the hit.
fn take_action(rules: &mut [Rule], request: &Request) -> Option<Action> {
    if request.method != "GET" {
        return None;
    }
    let path = request.path();
    for rule in rules {
        if !path.contains(&rule.pattern) {
            continue;
        }
        let hits = rule.hits.entry(path.to_owned()).or_default();
        if *hits < rule.times {
            *hits += 1;
            return Some(rule.action.clone());
        }
    }
    None
}

/// Reads a request head and its body (`Content-Length` or chunked); `None` on a clean EOF.
fn read_request(client: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut byte = [0_u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(None);
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut head = format!("{request_line}\r\n");
    let mut content_length = 0_usize;
    let mut chunked = false;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "connection" => continue,
            "content-length" => content_length = value.trim().parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    let body = if chunked {
        read_chunked(client)?
    } else {
        let mut body = vec![0_u8; content_length];
        client.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method,
        target,
        head: head.into_bytes(),
        body,
    }))
}

/// A chunked body, raw (framing kept), through its last chunk and trailer.
fn read_chunked(client: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    loop {
        let size_line = read_line(client)?;
        raw.extend_from_slice(size_line.as_bytes());
        let size_hex = size_line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        if size == 0 {
            // Trailer lines up to an empty one.
            loop {
                let line = read_line(client)?;
                raw.extend_from_slice(line.as_bytes());
                if line == "\r\n" {
                    return Ok(raw);
                }
            }
        }
        let mut chunk = vec![0_u8; size + 2];
        client.read_exact(&mut chunk)?;
        raw.extend_from_slice(&chunk);
    }
}

/// One line, CRLF included.
fn read_line(client: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0_u8; 1];
    while !line.ends_with(b"\r\n") {
        if client.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Sends `request` upstream and relays the response; with `cut`, only the head and that many
/// body bytes, then the connection is closed.
fn relay(
    client: &mut TcpStream,
    upstream: &str,
    request: &Request,
    cut: Option<usize>,
) -> io::Result<()> {
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(&request.head)?;
    server.write_all(&request.body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(response.len(), |at| at + 4);
    let (head, body) = response.split_at(split);
    client.write_all(&close_head(head))?;
    match cut {
        Some(n) => {
            client.write_all(body.get(..n).unwrap_or(body))?;
            client.flush()?;
            client.shutdown(Shutdown::Both)
        }
        None => client.write_all(body),
    }
}

/// A response head with its `Connection` header replaced by `Connection: close`.
fn close_head(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Answers an S3 error: `status`, XML body with `code` and `message`.
fn answer(
    client: &mut TcpStream,
    status: u16,
    code: &str,
    message: &str,
    resource: &str,
) -> io::Result<()> {
    let reason = match status {
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><Resource>{resource}</Resource>\
         <RequestId>faultproxy</RequestId></Error>"
    );
    write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    client.flush()
}

/// Deletes the object at `path` (`/<bucket>/<key>`) upstream. moto checks no signature, but
/// refuses object requests without an `Authorization` header.
fn delete_upstream(upstream: &str, path: &str) -> io::Result<()> {
    let mut server = TcpStream::connect(upstream)?;
    write!(
        server,
        "DELETE {path} HTTP/1.1\r\nHost: {upstream}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=AKIAFAULTPROXY000000/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=00\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    if response.starts_with(b"HTTP/1.1 204") || response.starts_with(b"HTTP/1.1 200") {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "moto refused to delete {path}: {}",
        String::from_utf8_lossy(&response)
    )))
}
