//! What an operator deploys with: `hearth --check-config` on the files in `deploy/` and
//! on broken ones, and the `.well-known` answers Hearth serves itself.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{TestServer, assert_error};

/// Runs `hearth --check-config` with only the given `HEARTH_*` variables set.
fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (key, _) in std::env::vars() {
        if key.starts_with("HEARTH_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .arg("--check-config")
        .envs(env.iter().copied());
    command.output().expect("run hearth --check-config")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A refusal: exit code 2, nothing on stdout and one line on stderr naming `needle`.
fn assert_refused(output: &Output, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert!(output.stdout.is_empty(), "stdout: {}", stdout(output));
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("hearth: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[test]
fn the_example_configuration_passes_the_check_and_says_what_it_serves() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/hearth.toml.example");
    let output = check(&["--config", example.to_str().unwrap()], &[]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    assert!(
        out.starts_with("hearth: configuration OK: example.org"),
        "{out}"
    );
    assert!(out.contains("https://matrix.example.org"), "{out}");
    assert!(out.contains("/var/lib/hearth/data"), "{out}");
}

#[test]
fn a_broken_configuration_is_one_clear_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };

    let typo = write(
        "typo.toml",
        "server_name = \"example.org\"\nlisen = \"127.0.0.1:8008\"\n",
    );
    assert_refused(&check(&["--config", &typo], &[]), "lisen");

    let missing = dir.path().join("absent.toml");
    assert_refused(
        &check(&["--config", missing.to_str().unwrap()], &[]),
        "does not exist",
    );

    // A certificate that is not there is found by the check, not at the first start.
    let tls = write(
        "tls.toml",
        "[tls]\ncertificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\n",
    );
    assert_refused(&check(&["--config", &tls], &[]), "/nonexistent/cert.pem");

    let not_pem = write("not-a-ca.pem", "hello");
    let ca = write(
        "ca.toml",
        &format!("[federation]\nextra_ca_files = [\"{not_pem}\"]\n"),
    );
    assert_refused(&check(&["--config", &ca], &[]), "not-a-ca.pem");

    // The environment is checked as well as the file.
    assert_refused(
        &check(&[], &[("HEARTH_WELL_KNOWN__SERVER", "not a host:port")]),
        "well_known.server",
    );
    assert_refused(
        &check(&["--listen", "0.0.0.0:8008"], &[]),
        "open registration",
    );

    // The data directory must be a directory.
    let file = write("data-file", "");
    assert_refused(&check(&["--data", &file], &[]), "not a directory");

    let fine = check(&["--data", dir.path().join("d").to_str().unwrap()], &[]);
    assert!(fine.status.success(), "{}", stderr(&fine));
    assert!(
        !dir.path().join("d").exists(),
        "the check created the data directory"
    );
}

#[test]
fn well_known_server_delegates_when_configured_and_is_404_otherwise() {
    let plain = TestServer::start();
    assert_error(
        plain.get("/.well-known/matrix/server", None),
        404,
        "M_NOT_FOUND",
    );

    let delegating =
        TestServer::start_with_env(&[("HEARTH_WELL_KNOWN__SERVER", "matrix.example.org:443")]);
    let response = delegating
        .client
        .get(delegating.url("/.well-known/matrix/server"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "m.server": "matrix.example.org:443" })
    );

    // The client answer follows public_baseurl, trailing slash or not.
    let client =
        TestServer::start_with_env(&[("HEARTH_PUBLIC_BASEURL", "https://matrix.example.org/")]);
    let (status, body) = client.get("/.well-known/matrix/client", None);
    assert_eq!(status, 200);
    assert_eq!(
        body["m.homeserver"]["base_url"],
        "https://matrix.example.org"
    );
}
