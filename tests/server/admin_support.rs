//! Shared steps of the admin tests: a server with shared-secret registration, its first
//! admin, and the real `hearthctl` binary.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::json;

use crate::harness::{PASSWORD, TestServer, token};
use crate::room_support::User;

pub const SECRET: &str = "admin-test-secret";

pub fn start() -> TestServer {
    TestServer::start_with_env(&[("HEARTH_REGISTRATION__SHARED_SECRET", SECRET)])
}

/// Registers a server admin through shared-secret registration.
pub fn admin(server: &TestServer, name: &str) -> User {
    let path = "/_synapse/admin/v1/register";
    let nonce = server.get(path, None).1["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let mac = hearth::service::shared_secret::mac(SECRET, &nonce, name, PASSWORD, true);
    let (status, body) = server.post(
        path,
        None,
        &json!({ "nonce": nonce, "username": name, "password": PASSWORD, "admin": true, "mac": mac }),
    );
    assert_eq!(status, 200, "{body}");
    User {
        id: body["user_id"].as_str().unwrap().to_owned(),
        token: token(&body),
        device: body["device_id"].as_str().unwrap().to_owned(),
    }
}

/// Polls a room deletion's status until it is no longer running; answers the status.
/// The bound is not a speed requirement: a deletion never finished fails the test.
pub fn wait_for_deletion(server: &TestServer, admin: &User, delete_id: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = server.get(
            &format!("/_synapse/admin/v2/rooms/delete_status/{delete_id}"),
            Some(&admin.token),
        );
        assert_eq!(status, 200, "{body}");
        if body["status"] != "shutting_down" {
            return body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the deletion is still running: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `hearthctl`, built once per test run from this workspace into the same target
/// directory as the `hearth` under test, so a test never runs a stale one.
pub fn hearthctl_path() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "hearthctl", "--bin", "hearthctl"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build for hearthctl");
            assert!(status.success(), "building hearthctl failed");
            let path = PathBuf::from(env!("CARGO_BIN_EXE_hearth")).with_file_name("hearthctl");
            assert!(path.exists(), "hearthctl not at {}", path.display());
            path
        })
        .clone()
}

/// A `hearthctl` command with a clean environment: no token or config from the caller,
/// and a private config directory.
pub fn hearthctl(config_home: &std::path::Path) -> Command {
    let mut command = Command::new(hearthctl_path());
    command
        .env_remove("HEARTHCTL_TOKEN")
        .env("XDG_CONFIG_HOME", config_home)
        .env("HOME", config_home)
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("HEARTH_") {
            command.env_remove(key);
        }
    }
    command
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// A failure: non-zero exit, one line on stderr containing `text`, no panic.
    #[track_caller]
    pub fn fails_with(self, text: &str) -> Self {
        assert_ne!(self.code, 0, "stdout: {}", self.stdout);
        assert_eq!(self.stderr.lines().count(), 1, "{}", self.stderr);
        assert!(self.stderr.starts_with("hearthctl: "), "{}", self.stderr);
        assert!(
            self.stderr.contains(text),
            "wanted {text:?} in {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

pub fn run(command: Command) -> Run {
    run_with_stdin(command, "")
}

/// Runs with `input` on standard input (passwords for `--password-stdin`).
pub fn run_with_stdin(mut command: Command, input: &str) -> Run {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hearthctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait for hearthctl");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
