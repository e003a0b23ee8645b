//! Server-side key backups: versions (create, current, get, update, delete), keys per
//! session, room and backup with the spec's replacement rules, `etag` and `count`, the
//! errors of each, and durability.

use hearth::store::Store;
use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, enc, user};

const ALGORITHM: &str = "m.megolm_backup.v1.curve25519-aes-sha2";
const VERSION: &str = "/_matrix/client/v3/room_keys/version";
const ROOM: &str = "!room:example.org";
const OTHER_ROOM: &str = "!other:example.org";

fn create(server: &TestServer, user: &User, public_key: &str) -> String {
    let (status, body) = server.post(
        VERSION,
        Some(&user.token),
        &json!({"algorithm": ALGORITHM, "auth_data": {"public_key": public_key}}),
    );
    assert_eq!(status, 200, "{body}");
    body["version"].as_str().expect("version").to_owned()
}

fn key(is_verified: bool, first_message_index: u64, forwarded_count: u64, tag: &str) -> Value {
    json!({
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": {"ephemeral": "e", "ciphertext": tag, "mac": "m"},
    })
}

fn keys_path(room: Option<&str>, session: Option<&str>, version: &str) -> String {
    let mut path = "/_matrix/client/v3/room_keys/keys".to_owned();
    if let Some(room) = room {
        path += &format!("/{}", enc(room));
    }
    if let Some(session) = session {
        path += &format!("/{}", enc(session));
    }
    format!("{path}?version={version}")
}

fn put_session(
    server: &TestServer,
    user: &User,
    version: &str,
    session: &str,
    body: &Value,
) -> (u16, Value) {
    server.send(
        "PUT",
        &keys_path(Some(ROOM), Some(session), version),
        Some(&user.token),
        body,
    )
}

/// Puts a key that must be accepted; returns `(etag, count)`.
fn stored(
    server: &TestServer,
    user: &User,
    version: &str,
    session: &str,
    body: &Value,
) -> (String, u64) {
    let (status, answer) = put_session(server, user, version, session, body);
    assert_eq!(status, 200, "{answer}");
    (
        answer["etag"].as_str().expect("etag").to_owned(),
        answer["count"].as_u64().expect("count"),
    )
}

fn tag_of(server: &TestServer, user: &User, version: &str, session: &str) -> Value {
    let (status, body) = server.get(
        &keys_path(Some(ROOM), Some(session), version),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    body["session_data"]["ciphertext"].clone()
}

#[test]
fn versions_are_created_read_updated_and_deleted() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let token = Some(alice.token.as_str());
    assert_error(server.get(VERSION, token), 404, "M_NOT_FOUND");

    let first = create(&server, &alice, "one");
    let (status, current) = server.get(VERSION, token);
    assert_eq!(status, 200, "{current}");
    assert_eq!(current["version"], first.as_str());
    assert_eq!(current["algorithm"], ALGORITHM);
    assert_eq!(current["auth_data"], json!({"public_key": "one"}));
    assert_eq!(current["count"], 0);
    assert!(current["etag"].is_string(), "{current}");

    // A newer version becomes the current one; the older one can still be read.
    let second = create(&server, &alice, "two");
    assert_ne!(first, second);
    assert_eq!(server.get(VERSION, token).1["version"], second.as_str());
    let (status, old) = server.get(&format!("{VERSION}/{first}"), token);
    assert_eq!(status, 200, "{old}");
    assert_eq!(old["auth_data"]["public_key"], "one");

    // Only auth_data changes; the algorithm and the version in the body must match.
    let path = format!("{VERSION}/{second}");
    let signed = json!({"public_key": "two", "signatures": {"@alice:x": {"ed25519:D": "sig"}}});
    let (status, body) = server.send(
        "PUT",
        &path,
        token,
        &json!({"algorithm": ALGORITHM, "auth_data": signed, "version": second}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get(&path, token).1["auth_data"], signed);
    assert_error(
        server.send(
            "PUT",
            &path,
            token,
            &json!({"algorithm": "m.other", "auth_data": {}}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.send(
            "PUT",
            &path,
            token,
            &json!({"algorithm": ALGORITHM, "auth_data": {}, "version": first}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_eq!(server.get(&path, token).1["auth_data"], signed);
    assert_error(
        server.send(
            "PUT",
            &format!("{VERSION}/999"),
            token,
            &json!({"algorithm": ALGORITHM, "auth_data": {}}),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(&format!("{VERSION}/999"), token),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(&format!("{VERSION}/abc"), token),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.post(VERSION, token, &json!({"algorithm": ALGORITHM})),
        400,
        "M_BAD_JSON",
    );

    // Deleting the current version makes the older one current again; deleting it
    // twice succeeds; a version that never existed is not found.
    let (status, body) = server.send("DELETE", &path, token, &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_error(server.get(&path, token), 404, "M_NOT_FOUND");
    assert_eq!(server.get(VERSION, token).1["version"], first.as_str());
    assert_eq!(server.send("DELETE", &path, token, &json!({})).0, 200);
    assert_error(
        server.send("DELETE", &format!("{VERSION}/999"), token, &json!({})),
        404,
        "M_NOT_FOUND",
    );
    // Version numbers are not handed out twice.
    let third = create(&server, &alice, "three");
    assert!(third != first && third != second, "{third}");
}

#[test]
fn a_backup_belongs_to_its_user_and_needs_a_token() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let version = create(&server, &alice, "alice");
    stored(&server, &alice, &version, "s1", &key(false, 0, 0, "secret"));
    let bob_token = Some(bob.token.as_str());
    assert_error(server.get(VERSION, bob_token), 404, "M_NOT_FOUND");
    assert_error(
        server.get(&format!("{VERSION}/{version}"), bob_token),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(&keys_path(None, None, &version), bob_token),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.send(
            "DELETE",
            &format!("{VERSION}/{version}"),
            bob_token,
            &json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(server.get(VERSION, None), 401, "M_MISSING_TOKEN");
    assert_error(
        server.get(&keys_path(None, None, &version), None),
        401,
        "M_MISSING_TOKEN",
    );
    assert_eq!(tag_of(&server, &alice, &version, "s1"), "secret");
}

#[test]
fn a_stored_key_is_replaced_only_by_a_better_one() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let version = create(&server, &alice, "k");
    let (etag, count) = stored(&server, &alice, &version, "s", &key(false, 5, 1, "a"));
    assert_eq!(count, 1);

    // Same verification: the lower first_message_index wins...
    let (etag2, count) = stored(&server, &alice, &version, "s", &key(false, 3, 9, "b"));
    assert_eq!(count, 1);
    assert_ne!(etag2, etag, "a replaced key changes the etag");
    assert_eq!(tag_of(&server, &alice, &version, "s"), "b");
    let (etag3, _) = stored(&server, &alice, &version, "s", &key(false, 4, 0, "worse"));
    assert_eq!(etag3, etag2, "a key kept as it was leaves the etag alone");
    assert_eq!(tag_of(&server, &alice, &version, "s"), "b");

    // ...then the lower forwarded_count; an equal key does not replace.
    let (etag4, _) = stored(&server, &alice, &version, "s", &key(false, 3, 2, "c"));
    assert_ne!(etag4, etag3);
    assert_eq!(tag_of(&server, &alice, &version, "s"), "c");
    let (etag5, _) = stored(&server, &alice, &version, "s", &key(false, 3, 2, "same"));
    assert_eq!(etag5, etag4);
    assert_eq!(tag_of(&server, &alice, &version, "s"), "c");

    // A verified key beats an unverified one whatever its index, and is not
    // replaced by an unverified one however good.
    stored(
        &server,
        &alice,
        &version,
        "s",
        &key(true, 50, 7, "verified"),
    );
    assert_eq!(tag_of(&server, &alice, &version, "s"), "verified");
    stored(
        &server,
        &alice,
        &version,
        "s",
        &key(false, 0, 0, "unverified"),
    );
    assert_eq!(tag_of(&server, &alice, &version, "s"), "verified");
    stored(
        &server,
        &alice,
        &version,
        "s",
        &key(true, 10, 7, "verified-earlier"),
    );
    assert_eq!(tag_of(&server, &alice, &version, "s"), "verified-earlier");

    let (_, current) = server.get(VERSION, Some(&alice.token));
    assert_eq!(current["count"], 1);
}

#[test]
fn keys_go_only_to_the_current_version() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let body = key(false, 0, 0, "x");
    // No version query parameter; no backup at all.
    assert_error(
        server.send(
            "PUT",
            &format!("/_matrix/client/v3/room_keys/keys/{}/s", enc(ROOM)),
            Some(&alice.token),
            &body,
        ),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        put_session(&server, &alice, "1", "s", &body),
        404,
        "M_NOT_FOUND",
    );

    let old = create(&server, &alice, "old");
    stored(&server, &alice, &old, "kept", &body);
    let current = create(&server, &alice, "new");
    for wrong in [old.as_str(), "999", "abc"] {
        let error = assert_error(
            put_session(&server, &alice, wrong, "s", &body),
            403,
            "M_WRONG_ROOM_KEYS_VERSION",
        );
        assert_eq!(error["current_version"], current.as_str(), "{error}");
    }
    // The older version is still readable, and its keys deletable.
    assert_eq!(tag_of(&server, &alice, &old, "kept"), "x");
    let (status, deleted) = server.send(
        "DELETE",
        &keys_path(Some(ROOM), Some("kept"), &old),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["count"], 0);

    // Bad input: a room ID that is none, a key missing a field.
    assert_error(
        server.send(
            "PUT",
            &keys_path(Some("not-a-room"), Some("s"), &current),
            Some(&alice.token),
            &body,
        ),
        400,
        "M_INVALID_PARAM",
    );
    let mut partial = body.clone();
    partial.as_object_mut().unwrap().remove("is_verified");
    assert_error(
        put_session(&server, &alice, &current, "s", &partial),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.send(
            "PUT",
            &keys_path(None, None, &current),
            Some(&alice.token),
            &json!({"rooms": {"not-a-room": {"sessions": {}}}}),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_eq!(server.get(VERSION, Some(&alice.token)).1["count"], 0);
}

#[test]
fn keys_are_read_and_deleted_by_session_room_and_backup() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let token = Some(alice.token.as_str());
    let version = create(&server, &alice, "k");
    let (status, answer) = server.send(
        "PUT",
        &keys_path(None, None, &version),
        token,
        &json!({"rooms": {
            ROOM: {"sessions": {"a": key(false, 0, 0, "a"), "b": key(true, 1, 0, "b")}},
            OTHER_ROOM: {"sessions": {"c": key(false, 2, 1, "c")}},
        }}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 3);
    let (status, answer) = server.send(
        "PUT",
        &keys_path(Some(OTHER_ROOM), None, &version),
        token,
        &json!({"sessions": {"d": key(false, 0, 0, "d")}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 4);

    let (status, all) = server.get(&keys_path(None, None, &version), token);
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["rooms"][ROOM]["sessions"]["b"], key(true, 1, 0, "b"));
    assert_eq!(
        all["rooms"][OTHER_ROOM]["sessions"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    let (_, room) = server.get(&keys_path(Some(ROOM), None, &version), token);
    assert_eq!(room["sessions"].as_object().unwrap().len(), 2, "{room}");
    let (status, empty) = server.get(&keys_path(Some("!none:example.org"), None, &version), token);
    assert_eq!((status, empty), (200, json!({"sessions": {}})));
    assert_error(
        server.get(&keys_path(Some(ROOM), Some("nope"), &version), token),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get("/_matrix/client/v3/room_keys/keys", token),
        400,
        "M_MISSING_PARAM",
    );

    let etag = |server: &TestServer| server.get(VERSION, token).1["etag"].clone();
    let before = etag(&server);
    let (_, answer) = server.send(
        "DELETE",
        &keys_path(Some(ROOM), Some("a"), &version),
        token,
        &json!({}),
    );
    assert_eq!(answer["count"], 3, "{answer}");
    assert_ne!(etag(&server), before);
    assert_error(
        server.get(&keys_path(Some(ROOM), Some("a"), &version), token),
        404,
        "M_NOT_FOUND",
    );
    let (_, answer) = server.send(
        "DELETE",
        &keys_path(Some(OTHER_ROOM), None, &version),
        token,
        &json!({}),
    );
    assert_eq!(answer["count"], 1, "{answer}");
    assert_eq!(
        server
            .get(&keys_path(Some(OTHER_ROOM), None, &version), token)
            .1,
        json!({"sessions": {}})
    );
    let (_, answer) = server.send(
        "DELETE",
        &keys_path(None, None, &version),
        token,
        &json!({}),
    );
    assert_eq!(answer["count"], 0, "{answer}");
    assert_eq!(
        server.get(&keys_path(None, None, &version), token).1,
        json!({"rooms": {}})
    );

    // Deleting a version deletes its keys.
    stored(&server, &alice, &version, "z", &key(false, 0, 0, "z"));
    assert_eq!(
        server
            .send("DELETE", &format!("{VERSION}/{version}"), token, &json!({}))
            .0,
        200
    );
    assert_error(
        server.get(&keys_path(None, None, &version), token),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.send(
            "DELETE",
            &keys_path(None, None, &version),
            token,
            &json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
    let next = create(&server, &alice, "next");
    assert_eq!(server.get(VERSION, token).1["count"], 0);
    assert_eq!(
        server.get(&keys_path(None, None, &next), token).1,
        json!({"rooms": {}})
    );
}

#[test]
fn a_backup_survives_kill_9() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let version = create(&server, &alice, "durable");
    let (etag, _) = stored(&server, &alice, &version, "s", &key(true, 0, 0, "kept"));
    server.kill_9();
    server.restart();
    let (status, current) = server.get(VERSION, Some(&alice.token));
    assert_eq!(status, 200, "{current}");
    assert_eq!(current["version"], version.as_str());
    assert_eq!(current["etag"], etag.as_str());
    assert_eq!(current["count"], 1);
    assert_eq!(tag_of(&server, &alice, &version, "s"), "kept");
}

#[test]
fn deactivating_the_account_deletes_its_backup() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let version = create(&server, &alice, "gone");
    stored(&server, &alice, &version, "s", &key(false, 0, 0, "x"));
    let path = "/_matrix/client/v3/account/deactivate";
    let (_, challenge) = server.post(path, Some(&alice.token), &json!({}));
    let session = challenge["session"].as_str().expect("UIA session");
    let (status, body) = server.post(
        path,
        Some(&alice.token),
        &json!({"auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": crate::harness::PASSWORD,
            "session": session,
        }}),
    );
    assert_eq!(status, 200, "{body}");
    // Erased from the store, not only unreachable.
    server.kill_9();
    let store = Store::open(&server.data_dir().join("db"), false).unwrap();
    let versions = store.backup_versions(&alice.id).unwrap();
    assert_eq!(versions.len(), 1);
    assert!(versions.iter().all(|(_, v)| v.deleted && v.count == 0));
    assert!(store.backup_keys(&alice.id, 1, None).unwrap().is_empty());
}

/// SyTest's backup tests (behind "Can create backup version", which sends `auth_data`
/// as a string the spec's type refuses) with an object `auth_data`: room IDs without a
/// server name (`!abcd`, as room version 12 makes them) name rooms; an empty room and an
/// empty backup answer empty lists, an unknown session 404; deleting the newest version
/// makes the previous one current again.
#[test]
fn sytests_backup_steps_pass_with_an_object_auth_data() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let token = Some(alice.token.as_str());
    let first = create(&server, &alice, "k1");
    let second = create(&server, &alice, "k2");
    let room_path = |room: &str, session: Option<&str>, version: &str| {
        let mut path = format!("/_matrix/client/v3/room_keys/keys/{}", enc(room));
        if let Some(session) = session {
            path += &format!("/{}", enc(session));
        }
        format!("{path}?version={version}")
    };
    assert_error(
        server.get(
            &room_path("!notaroom", Some("notassession"), &second),
            token,
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(
        server.get(&room_path("!notaroom", None, &second), token),
        (200, json!({"sessions": {}}))
    );
    assert_eq!(
        server.get(&keys_path(None, None, &second), token),
        (200, json!({"rooms": {}}))
    );
    // "Can update keys with better versions", in a room named as SyTest names it.
    for index in [3, 1, 2] {
        let (status, body) = server.send(
            "PUT",
            &room_path("!abcd", Some("1234"), &second),
            token,
            &key(false, index, 0, &format!("i{index}")),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server.get(&room_path("!abcd", Some("1234"), &second), token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, key(false, 1, 0, "i1"));
    // "Will not back up to an old backup version".
    let (status, body) = server.send(
        "PUT",
        &room_path("!abcd", Some("1234"), &first),
        token,
        &key(false, 0, 0, "old"),
    );
    assert!((400..500).contains(&status), "{status} {body}");
    // "Can delete backup".
    let (status, _) = server.send("DELETE", &format!("{VERSION}/{second}"), token, &json!({}));
    assert_eq!(status, 200);
    let (status, body) = server.get(VERSION, token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], first.as_str());
    assert_error(
        server.get(&format!("{VERSION}/{second}"), token),
        404,
        "M_NOT_FOUND",
    );
}
