use std::process::Stdio;

use crate::harness::{PASSWORD, TestServer, token};

const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

#[test]
fn a_restart_keeps_accounts_devices_and_tokens() {
    let mut server = TestServer::start();
    let registered = server.register("tess");
    let access = token(&registered);
    server.restart();
    let (status, me) = server.get(WHOAMI, Some(&access));
    assert_eq!(status, 200);
    assert_eq!(me["device_id"], registered["device_id"]);
    assert_eq!(server.login("tess", PASSWORD).0, 200);
    // last_seen was held in memory and written at shutdown.
    server.restart();
    let (_, device) = server.get(
        &format!(
            "/_matrix/client/v3/devices/{}",
            registered["device_id"].as_str().unwrap()
        ),
        Some(&access),
    );
    assert_eq!(device["last_seen_ip"], "127.0.0.1");
}

#[test]
fn kill_9_right_after_registration_keeps_the_account() {
    let mut server = TestServer::start();
    let registered = server.register("uma");
    server.kill_9();
    server.restart();
    assert_eq!(server.get(WHOAMI, Some(&token(&registered))).0, 200);
    assert_eq!(server.login("uma", PASSWORD).0, 200);
}

#[test]
fn sigterm_exits_cleanly() {
    let mut server = TestServer::start();
    server.register("vic");
    assert!(server.terminate().success());
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_clearly() {
    let server = TestServer::start();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(server.data_dir())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use by another hearth process"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The first server is unharmed.
    assert_eq!(server.get("/_matrix/client/versions", None).0, 200);
}

#[test]
fn open_registration_on_a_public_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("open registration"), "{stderr}");
    assert!(!dir.path().join("db").exists(), "nothing was created");
}

#[test]
fn help_documents_every_option() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (key, _) in hearth::config::OPTIONS {
        assert!(help.contains(key), "--help does not mention {key}");
    }
    for flag in [
        "--listen",
        "--data",
        "--server-name",
        "--config",
        "HEARTH_REGISTRATION__TOKENS",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn a_config_file_sets_options() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, "[registration]\nenabled = false\n").unwrap();
    let server = TestServer::start_with_env(&[("HEARTH_CONFIG", config.to_str().unwrap())]);
    let (status, body) = server.post(
        "/_matrix/client/v3/register",
        None,
        &serde_json::json!({ "username": "w", "password": PASSWORD }),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN"))
    );

    std::fs::write(&config, "[registration]\nnot_an_option = 1\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not_an_option"));
}

#[test]
fn a_devices_last_seen_is_stored_while_it_is_used_not_only_at_shutdown() {
    let mut server = TestServer::start();
    let registered = server.register("wes");
    let device_id = registered["device_id"].as_str().unwrap().to_owned();
    let user_id = registered["user_id"].as_str().unwrap().to_owned();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(server.get(WHOAMI, Some(&token(&registered))).0, 200);
    // No shutdown code runs: what the store holds is what was written as it happened.
    server.kill_9();
    let store = hearth::store::Store::open(&server.data_dir().join("db"), false).unwrap();
    let device = store.device(&user_id, &device_id).unwrap().expect("device");
    assert_eq!(device.last_seen_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        device.last_seen_ts.is_some_and(|ts| ts >= before),
        "{device:?}"
    );
}
