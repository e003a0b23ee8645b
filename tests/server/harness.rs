//! Starts the real `hearth` binary on a free loopback port with a temporary data directory,
//! speaking plain HTTP or, with [`TlsFiles`], HTTPS (see `federation_support.rs`).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

pub struct TestServer {
    child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub client: Client,
    extra_env: Vec<(String, String)>,
    tls: Option<TlsFiles>,
}

/// A certificate for the server to present, and the CA the test client trusts for it.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A file with the CA that issued `cert`.
    pub ca: PathBuf,
    /// The same CA as PEM.
    pub ca_pem: String,
    /// Keeps the files' directory while a server may read them.
    pub _dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// How to start a server: extra `HEARTH_*` settings and, optionally, TLS.
#[derive(Default)]
pub struct StartOptions {
    pub env: Vec<(String, String)>,
    pub tls: Option<TlsFiles>,
}

pub const PASSWORD: &str = "correct horse battery";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port held bound but not listening: a connection to it is refused, and no
/// other test's server can take it while it is held (a port from [`free_port`] is free
/// only when chosen). For a test of what happens when nothing answers.
pub struct ClosedPort {
    fd: std::os::fd::OwnedFd,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a descriptor this function owns; the address
        // structures are initialised before the kernel reads them and sized as passed.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut address: libc::sockaddr_in = std::mem::zeroed();
            address.sin_family = libc::AF_INET as libc::sa_family_t;
            address.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(raw, (&raw const address).cast(), len);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let named = libc::getsockname(raw, (&raw mut address).cast(), &mut len);
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            Self {
                fd,
                port: u16::from_be(address.sin_port),
            }
        }
    }

    /// Starts listening on the port: from now on connections to it are accepted.
    pub fn listen(self) -> TcpListener {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is a bound TCP socket this value owns.
        let listening = unsafe { libc::listen(self.fd.as_raw_fd(), 128) };
        assert_eq!(listening, 0, "listen: {}", std::io::Error::last_os_error());
        TcpListener::from(self.fd)
    }
}

/// Another process bound the port first.
#[derive(Debug)]
struct PortTaken;

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux: the
/// socket's inode in `/proc/net/tcp` is among the process's open files).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let address = format!("0100007F:{port:04X}");
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&address.as_str()) && fields.get(3) == Some(&"0A"))
            .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
            .flatten()
    });
    let (Some(inode), Ok(fds)) = (inode, std::fs::read_dir(format!("/proc/{pid}/fd"))) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == inode.as_str())
    })
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts with extra `HEARTH_*` environment settings.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        Self::start_with(StartOptions {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls: None,
        })
    }

    /// Starts with the given settings on a port chosen now.
    ///
    /// A free port is only free when it is chosen: another test may choose the same one
    /// and bind it first. The loser then starts again, on another port and with a new
    /// data directory (the server name holds the port).
    pub fn start_with(options: StartOptions) -> Self {
        for _ in 0..5 {
            let mut server = Self::unstarted(free_port(), &options);
            match server.spawn() {
                Ok(()) => return server,
                Err(PortTaken) => continue,
            }
        }
        panic!("five ports in a row were taken by others before hearth could bind them");
    }

    fn unstarted(port: u16, options: &StartOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut builder = Client::builder().timeout(Duration::from_secs(30));
        if let Some(tls) = &options.tls {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap(),
            );
        }
        Self {
            child: None,
            port,
            data,
            _dir: Some(dir),
            client: builder.build().unwrap(),
            extra_env: options.env.clone(),
            tls: options.tls.clone(),
        }
    }

    pub fn server_name(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// Whether the server speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(&self.data)
            .arg("--server-name")
            .arg(self.server_name())
            .env("RUST_LOG", "warn")
            // Tests must not be slowed by fsync; kill -9 durability needs only the WAL.
            .env("HEARTH_SYNC_WRITES", "false");
        // Tests send, join and register faster than any person, from one address; the
        // limits have tests of their own (limits.rs), which set them lower again.
        for family in [
            "MESSAGES",
            "JOINS",
            "INVITES",
            "REGISTRATIONS",
            "AVAILABILITY",
            "TOKEN_VALIDITY",
            "SEARCH",
        ] {
            command.env(format!("HEARTH_LIMITS__{family}_BURST"), "1000000");
        }
        if let Some(tls) = &self.tls {
            command
                .arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key);
        }
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        command
    }

    /// Starts the binary and waits until it answers. Another process answering on the
    /// port does not count: the listening socket must be the child's own.
    fn spawn(&mut self) -> Result<(), PortTaken> {
        let child = self
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hearth");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pid = self.child.as_ref().unwrap().id();
            if let Ok(r) = self.client.get(self.url("/_matrix/client/versions")).send()
                && r.status().is_success()
                && listens_on(pid, self.port)
            {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let logs = self.stderr();
                self.child = None;
                if logs.contains("cannot listen on") {
                    return Err(PortTaken);
                }
                panic!("hearth exited early ({status}): {logs}");
            }
            assert!(Instant::now() < deadline, "hearth did not become ready");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(child) = self.child.as_mut()
            && let Some(err) = child.stderr.as_mut()
        {
            let _ = err.read_to_string(&mut text);
        }
        text
    }

    /// Stops the server and returns what it logged: for a failing test to show.
    pub fn stop_and_logs(&mut self) -> String {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        let text = self.stderr();
        self.kill_9();
        text
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        child.wait().unwrap()
    }

    /// Sets a `HEARTH_*` setting for the next start ([`Self::restart`]).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            assert!(self.terminate().success());
        }
        if self.spawn().is_err() {
            panic!(
                "port {} was taken by another process during the restart",
                self.port
            );
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json(request.send().unwrap())
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json(request.send().unwrap())
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.send("POST", path, token, body)
    }

    pub fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        into_json(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .unwrap(),
        )
    }

    /// Registers through the dummy UIA stage; returns the whole response.
    pub fn register(&self, username: &str) -> Value {
        let (status, body) = self.post(
            "/_matrix/client/v3/register",
            None,
            &json!({
                "username": username,
                "password": PASSWORD,
                "auth": { "type": "m.login.dummy" },
            }),
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn login(&self, user: &str, password: &str) -> (u16, Value) {
        self.post(
            "/_matrix/client/v3/login",
            None,
            &json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": user },
                "password": password,
            }),
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn into_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

pub fn token(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Asserts a Matrix error response.
#[track_caller]
pub fn assert_error(response: (u16, Value), status: u16, errcode: &str) -> Value {
    let (got_status, body) = response;
    assert_eq!(got_status, status, "{body}");
    assert_eq!(body["errcode"], errcode, "{body}");
    assert!(body["error"].is_string(), "{body}");
    body
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Something else answering `/versions` on the port must not pass for the server: the
    /// server started there cannot bind it, and the harness says so instead of handing
    /// the test the other process.
    #[test]
    fn another_process_answering_on_the_port_is_not_taken_for_the_server() {
        let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = impostor.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in impostor.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                      content-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            }
        });
        let (status, _) = into_json(
            Client::new()
                .get(format!("http://127.0.0.1:{port}/_matrix/client/versions"))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200, "the impostor answers as a server would");

        let mut server = TestServer::unstarted(port, &StartOptions::default());
        assert!(server.spawn().is_err());
        assert!(server.child.is_none());
        // A server started the usual way gets a port of its own and is the one answering.
        let server = TestServer::start();
        assert_ne!(server.port, port);
        assert!(listens_on(server.child.as_ref().unwrap().id(), server.port));
    }

    /// A held port refuses connections, cannot be bound by anyone else, and accepts once
    /// it listens.
    #[test]
    fn a_closed_port_refuses_and_is_kept_until_it_listens() {
        let closed = ClosedPort::new();
        let port = closed.port;
        let refused = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(TcpListener::bind(("127.0.0.1", port)).is_err());
        assert!(TcpListener::bind(("0.0.0.0", port)).is_err());
        let listener = closed.listen();
        assert_eq!(listener.local_addr().unwrap().port(), port);
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(listener.accept().is_ok());
    }
}
