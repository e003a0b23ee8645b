//! Deleting media with the real `hearthctl`: by ID, a user's uploads, and by age and
//! size; files shared by identical uploads stay until the last record that points at
//! them goes, thumbnails go with their content.

use serde_json::json;

use crate::admin_cli::{Ctl, download_status, upload_text};
use crate::admin_support::{admin, start};
use crate::media::{files_under, png, thumbnail, upload};
use crate::room_support::{enc, user};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn media_is_deleted_by_id_user_and_age_with_its_files() {
    let server = start();
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let ctl = Ctl::new(&server, &root.token);
    let media = server.data_dir().join("media");
    let content_files = || files_under(&media.join("content")).len();
    let thumbnail_files = || files_under(&media.join("thumbnails")).len();

    // Two uploads of the same picture share one file; a thumbnail is made of it.
    let picture = png(640, 480);
    let first = upload(&server, &alice, "image/png", &picture);
    let second = upload(&server, &alice, "image/png", &picture);
    let text = upload_text(&server, &alice, "alice's notes");
    let scaled = thumbnail(&server, &alice, &first, "width=32&height=32&method=scale");
    assert_eq!(scaled.status, 200);
    assert_eq!((content_files(), thumbnail_files()), (2, 1));

    // By ID: that record goes, the shared file and its thumbnail stay for the other.
    let out = ctl.run(&["media", "delete", &first]).ok().stdout;
    assert!(out.contains("1 media deleted"), "{out}");
    assert_eq!(download_status(&server, &bob, &first), 404);
    assert_eq!(download_status(&server, &bob, &second), 200);
    assert_eq!((content_files(), thumbnail_files()), (2, 1));

    // A user's uploads: the last record of the picture goes, so do its file and thumbnail.
    let answer = ctl.json(&["media", "delete", "--user", "alice"]);
    assert_eq!(answer["total"], 2, "{answer}");
    for mxc in [&second, &text] {
        assert_eq!(download_status(&server, &bob, mxc), 404, "{mxc}");
    }
    assert_eq!((content_files(), thumbnail_files()), (0, 0));

    // By age and size: avatars are kept unless asked for.
    let avatar = upload(&server, &bob, "image/png", &png(40, 40));
    let (status, body) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/profile/{}/avatar_url", enc(&bob.id)),
        Some(&bob.token),
        &json!({ "avatar_url": avatar }),
    );
    assert_eq!(status, 200, "{body}");
    let large = upload(&server, &bob, "application/octet-stream", &[7u8; 4096]);
    let small = upload(&server, &bob, "text/plain", b"tiny");
    let cutoff = (now_ms() + 1_000).to_string();
    let answer = ctl.json(&[
        "media",
        "delete",
        "--before-ts",
        &cutoff,
        "--size-gt",
        "100",
    ]);
    assert_eq!(
        answer["deleted_media"],
        json!([large.rsplit('/').next().unwrap()])
    );
    assert_eq!(download_status(&server, &bob, &large), 404);
    for kept in [&avatar, &small] {
        assert_eq!(download_status(&server, &bob, kept), 200, "{kept}");
    }
    let answer = ctl.json(&[
        "media",
        "delete",
        "--before-ts",
        &cutoff,
        "--size-gt",
        "100",
        "--include-avatars",
    ]);
    assert_eq!(answer["total"], 1, "{answer}");
    assert_eq!(download_status(&server, &bob, &avatar), 404);
    assert_eq!(download_status(&server, &bob, &small), 200);
    assert_eq!(content_files(), 1);

    // Refusals: other servers' media, unknown media, and a missing cutoff over HTTP.
    ctl.run(&["media", "delete", "mxc://elsewhere.example/abcdef"])
        .fails_with("Only this server's media");
    let unknown = format!("mxc://{}/nosuchmedia", server.server_name());
    ctl.run(&["media", "delete", &unknown])
        .fails_with("Unknown media");
    let (status, body) = server.post(
        "/_synapse/admin/v1/media/delete?size_gt=5",
        Some(&root.token),
        &json!({}),
    );
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_MISSING_PARAM"))
    );

    let actions = ctl.audit_actions();
    for action in ["media.delete", "media.delete_user", "media.delete_old"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not in {actions:?}"
        );
    }
}
