//! `hearthctl backup` while messages are being sent: the backup, put in place of the
//! data directory, opens with every message acknowledged before it was asked for, the
//! same signing key, the same sessions and the media files.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::admin_support::{admin, hearthctl, run, start};
use crate::harness::assert_error;
use crate::room_support::{create_room, enc, send_text, user};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_backup_taken_under_load_restores_every_acknowledged_message() {
    let mut server = start();
    let root = admin(&server, "root");
    let room = create_room(&server, &root, json!({}));
    let keys_before = server.get("/_matrix/key/v2/server", None).1["verify_keys"].clone();
    let upload: serde_json::Value = server
        .client
        .post(server.url("/_matrix/media/v3/upload"))
        .bearer_auth(&root.token)
        .header("content-type", "text/plain")
        .body("media kept by the backup")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let media = upload["content_uri"]
        .as_str()
        .unwrap()
        .replace("mxc://", "");
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, &root.token).unwrap();

    let acknowledged = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let (backup, before, after) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = send_text(&server, &root, &room, &format!("t{n}"), &format!("m{n}"));
                acknowledged.lock().unwrap().push(id);
                n += 1;
            }
        });
        while acknowledged.lock().unwrap().len() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Everything acknowledged up to here must be in the backup.
        let before = acknowledged.lock().unwrap().len();
        let mut command = hearthctl(home.path());
        command
            .arg("--server")
            .arg(server.url(""))
            .arg("--token-file")
            .arg(&token_file)
            .arg("backup");
        let backup = run(command).ok();
        // Keep writing a little past the backup, then stop.
        let after = acknowledged.lock().unwrap().len();
        while acknowledged.lock().unwrap().len() < after + 5 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        (backup.stdout.trim().to_owned(), before, after)
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    let backup = Path::new(&backup);
    assert!(
        backup.starts_with(server.data.join("backups")),
        "{}",
        backup.display()
    );
    assert!(backup.join("db").is_dir() && backup.join("signing.key").is_file());

    // Only server admins may take one.
    let bob = user(&server, "bob");
    assert_error(
        server.send(
            "POST",
            "/_hearth/admin/v1/backup",
            Some(&bob.token),
            &json!({}),
        ),
        403,
        "M_FORBIDDEN",
    );

    // Restore: the backup becomes the data directory of the same server.
    let saved = tempfile::tempdir().unwrap();
    copy_dir(backup, saved.path());
    server.kill_9();
    std::fs::remove_dir_all(&server.data).unwrap();
    copy_dir(saved.path(), &server.data);
    server.restart();

    let keys_after = server.get("/_matrix/key/v2/server", None).1["verify_keys"].clone();
    assert_eq!(keys_before, keys_after, "the signing key changed");
    let mut restored = Vec::new();
    let mut from = String::new();
    loop {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100{from}",
            enc(&room)
        );
        let (status, page) = server.get(&path, Some(&root.token));
        assert_eq!(status, 200, "{page}");
        let chunk = page["chunk"].as_array().unwrap();
        restored.extend(
            chunk
                .iter()
                .filter_map(|e| e["event_id"].as_str().map(str::to_owned)),
        );
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = format!("&from={end}"),
            _ => break,
        }
    }
    for id in &acknowledged[..before] {
        assert!(restored.contains(id), "{id} is not in the backup");
    }
    // Nothing sent after the backup's answer is in it (the message in flight at that
    // moment may be).
    for id in &acknowledged[after + 1..] {
        assert!(!restored.contains(id), "{id}, sent later, is in the backup");
    }
    let download = server
        .client
        .get(server.url(&format!("/_matrix/client/v1/media/download/{media}")))
        .bearer_auth(&root.token)
        .send()
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.text().unwrap(), "media kept by the backup");
    // The restored server takes writes.
    send_text(&server, &root, &room, "after-restore", "hello again");
}
