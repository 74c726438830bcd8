//! Real storage servers for the backend tests, each started on 127.0.0.1 at a free port, waited
//! for by polling the port, and killed when dropped: moto (S3), fake-gcs-server (GCS), Azurite
//! (Azure Blob) and OpenSSH's sshd (SFTP). `cargo xtask tools` installs them under
//! `target/tools`; a missing one fails the test with that command in the message.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::workspace_root;

/// The install hint every missing-tool failure carries.
const INSTALL: &str = "run `cargo xtask tools` to install it under target/tools";

/// A running server process, killed (and reaped) on drop, with its scratch folder.
pub(crate) struct Server {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub(crate) addr: String,
    pub(crate) port: u16,
    /// Scratch space: data folders, keys, configs.
    pub(crate) dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The process may already be gone; either way nothing is left to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/tools/bin/<name>`, or `<name>` on PATH; panics with the install hint when neither
/// exists.
pub(crate) fn tool(name: &str) -> PathBuf {
    let local = workspace_root()
        .join("target")
        .join("tools")
        .join("bin")
        .join(name);
    if local.exists() {
        return local;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("{name} is missing: {INSTALL}");
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("the kernel hands out a free port")
        .port()
}

/// Starts `command` (its output to `<dir>/server.log`) and waits until its port answers.
fn start(name: &str, mut command: Command, port: u16, dir: TempDir) -> Server {
    let log = std::fs::File::create(dir.path().join("server.log")).expect("a log file");
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a second log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {name}: {err}; {INSTALL}"));
    let mut server = Server {
        child,
        addr: format!("127.0.0.1:{port}"),
        port,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(&server.addr).is_ok() {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let log =
                std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            panic!("{name} exited with {status} before listening:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {} within 60 s",
            server.addr
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// One plain HTTP/1.1 request to `addr`; returns the status code and body.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("the request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the response is read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// moto's S3 server, with `bucket` created. It accepts any credentials.
pub(crate) fn moto(bucket: &str) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut command = Command::new(tool("moto_server"));
    command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let server = start("moto_server", command, port, dir);
    let (status, body) = http(&server.addr, "PUT", &format!("/{bucket}"), "");
    assert_eq!(
        status, 200,
        "moto refused to create bucket {bucket}: {body}"
    );
    server
}

/// fake-gcs-server over HTTP with `bucket` created.
pub(crate) fn fake_gcs(bucket: &str) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join(bucket)).expect("the bucket folder");
    let mut command = Command::new(tool("fake-gcs-server"));
    command
        .args(["-scheme", "http", "-host", "127.0.0.1", "-port"])
        .arg(port.to_string())
        .args(["-backend", "memory", "-log-level", "error", "-data"])
        .arg(&data)
        .args(["-public-host", &format!("127.0.0.1:{port}")])
        .args(["-external-url", &format!("http://127.0.0.1:{port}")]);
    start("fake-gcs-server", command, port, dir)
}

/// Azurite's blob service with `container` created in the well-known `devstoreaccount1`.
pub(crate) fn azurite(container: &str) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut command = Command::new(tool("azurite-blob"));
    command
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .arg("--location")
        .arg(dir.path())
        .args(["--silent", "--skipApiVersionCheck", "--loose"]);
    let server = start("azurite-blob", command, port, dir);
    create_azure_container(&server, container);
    server
}

/// Azurite's well-known account.
pub(crate) const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known shared key.
pub(crate) const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Creates a container with a SharedKey-signed `PUT ?restype=container`, signed by node's
/// crypto module (node runs Azurite anyway).
fn create_azure_container(server: &Server, container: &str) {
    let script = r#"
const crypto = require('crypto'); const http = require('http');
const [port, account, key, container] = process.argv.slice(1);
const date = new Date().toUTCString(); const version = '2021-08-06';
const resource = `/${account}/${account}/${container}\nrestype:container`;
const toSign = `PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:${date}\nx-ms-version:${version}\n${resource}`;
const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
const req = http.request({host: '127.0.0.1', port, method: 'PUT', path: `/${account}/${container}?restype=container`,
  headers: {'x-ms-date': date, 'x-ms-version': version, 'Authorization': `SharedKey ${account}:${sig}`, 'Content-Length': 0}},
  (res) => { let body = ''; res.on('data', (c) => body += c); res.on('end', () => {
    if (res.statusCode !== 201) { console.error(res.statusCode, body); process.exit(1); } }); });
req.on('error', (e) => { console.error(e); process.exit(1); }); req.end();
"#;
    let output = Command::new("node")
        .args(["-e", script])
        .args([
            &server.port.to_string(),
            AZURITE_ACCOUNT,
            AZURITE_KEY,
            container,
        ])
        .output()
        .unwrap_or_else(|err| panic!("cannot run node: {err}; {INSTALL}"));
    assert!(
        output.status.success(),
        "cannot create container {container}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An sshd for the current user: throw-away host key, one authorized client key (no
/// passphrase), internal-sftp. The client key is `<dir>/client_key`, the host key's public
/// half `<dir>/host_key.pub`, and `<dir>/known_hosts` lists it for `[127.0.0.1]:<port>`.
pub(crate) fn sshd() -> Server {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("sshd is missing (Debian's openssh-server): {INSTALL}"));
    let port = free_port();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path();
    for key in ["host_key", "client_key"] {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
            .arg(path.join(key))
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success(), "ssh-keygen failed for {key}");
    }
    std::fs::copy(path.join("client_key.pub"), path.join("authorized_keys"))
        .expect("authorized_keys is written");
    let host_key = std::fs::read_to_string(path.join("host_key.pub")).expect("the host key");
    std::fs::write(
        path.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_key}"),
    )
    .expect("known_hosts is written");
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n\
         Subsystem sftp internal-sftp\n",
        dir = path.display()
    );
    std::fs::write(path.join("sshd_config"), config).expect("sshd_config is written");
    // sshd started as root wants its privilege separation folder.
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut command = Command::new(sshd);
    command
        .args(["-D", "-e", "-f"])
        .arg(path.join("sshd_config"));
    start("sshd", command, port, dir)
}

/// The user the tests run as.
pub(crate) fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8(output.stdout)
        .expect("a UTF-8 user name")
        .trim()
        .to_owned()
}

/// `path`'s text.
pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
