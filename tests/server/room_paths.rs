//! URL shapes that real clients send for room endpoints.

use serde_json::json;

use crate::harness::{TestServer, token};

#[test]
fn empty_state_keys_work_with_and_without_a_trailing_slash() {
    let server = TestServer::start();
    let access = token(&server.register("uri"));
    let (_, room) = server.post("/_matrix/client/v3/createRoom", Some(&access), &json!({}));
    let room_id = room["room_id"].as_str().unwrap();
    let base = format!("/_matrix/client/v3/rooms/{room_id}/state/m.room.topic");
    let (status, _) = server.send(
        "PUT",
        &format!("{base}/"),
        Some(&access),
        &json!({ "topic": "slash" }),
    );
    assert_eq!(status, 200);
    assert_eq!(server.get(&base, Some(&access)).1["topic"], "slash");
    let (status, _) = server.send("PUT", &base, Some(&access), &json!({ "topic": "bare" }));
    assert_eq!(status, 200);
    assert_eq!(
        server.get(&format!("{base}/"), Some(&access)).1["topic"],
        "bare"
    );
}
