use std::os::unix::fs::PermissionsExt;

use ruma::CanonicalJsonObject;
use ruma::signatures::{PublicKeyMap, PublicKeySet};

use crate::harness::TestServer;

#[test]
fn the_server_key_is_published_self_signed_and_kept_private_on_disk() {
    let mut server = TestServer::start();
    let (status, body) = server.get("/_matrix/key/v2/server", None);
    assert_eq!(status, 200);
    assert_eq!(body["server_name"], server.server_name());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(body["valid_until_ts"].as_u64().unwrap() > now);
    let keys = body["verify_keys"].as_object().unwrap();
    assert_eq!(keys.len(), 1);
    let (key_id, key) = keys.iter().next().unwrap();
    assert!(key_id.starts_with("ed25519:"));

    let mut set = PublicKeySet::new();
    set.insert(
        key_id.clone(),
        ruma::serde::Base64::parse(key["key"].as_str().unwrap()).unwrap(),
    );
    let mut map = PublicKeyMap::new();
    map.insert(server.server_name(), set);
    let object: CanonicalJsonObject = serde_json::from_value(body.clone()).unwrap();
    ruma::signatures::verify_json(&map, &object).expect("self-signature verifies");
    let mut tampered = body.clone();
    tampered["valid_until_ts"] = serde_json::json!(1);
    let object: CanonicalJsonObject = serde_json::from_value(tampered).unwrap();
    assert!(ruma::signatures::verify_json(&map, &object).is_err());

    let mode = std::fs::metadata(server.data_dir().join("signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    server.restart();
    let (_, again) = server.get("/_matrix/key/v2/server", None);
    assert_eq!(again["verify_keys"], body["verify_keys"]);
}
