//! Web Push pushers (MSC4174) as the Client-Server API sees them: the VAPID key in
//! `/capabilities` (kept across restarts), `/pushers/set` checking a subscription, the
//! pusher waiting for its activation, and `/pushers/ack` refusing what it did not issue.
//! Delivery (the encrypted message and its VAPID signature, checked with other
//! implementations) is tested in `tests/interop/test_webpush.py`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::user;

const SET: &str = "/_matrix/client/v3/pushers/set";
const ACK: &str = "/_matrix/client/v3/pushers/ack";
/// RFC 8291 Appendix A's subscription key and authentication secret.
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

fn vapid(server: &TestServer, token: &str) -> String {
    let (status, body) = server.get("/_matrix/client/v3/capabilities", Some(token));
    assert_eq!(status, 200, "{body}");
    let caps = &body["capabilities"];
    assert_eq!(caps["m.webpush"]["enabled"], true);
    assert_eq!(caps["org.matrix.msc4174.webpush"], caps["m.webpush"]);
    caps["m.webpush"]["vapid"].as_str().unwrap().to_owned()
}

fn webpush(url: &str, pushkey: &str, auth: &str) -> Value {
    json!({
        "kind": "webpush",
        "app_id": "org.example.web",
        "pushkey": pushkey,
        "app_display_name": "Web",
        "device_display_name": "Browser",
        "lang": "en",
        "data": {"url": url, "auth": auth},
    })
}

#[test]
fn the_vapid_key_is_advertised_and_kept_across_restarts() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let key = vapid(&server, &alice.token);
    let point = URL_SAFE_NO_PAD.decode(&key).unwrap();
    assert_eq!(point.len(), 65, "an uncompressed P-256 point");
    assert_eq!(point[0], 4);
    let (_, versions) = server.get("/_matrix/client/versions", None);
    assert_eq!(versions["unstable_features"]["org.matrix.msc4174"], true);
    server.restart();
    assert_eq!(vapid(&server, &alice.token), key);
}

#[test]
fn webpush_pushers_are_checked_and_wait_for_their_activation() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let url = "https://push.example.org/sub/alice";
    let refused = [
        (
            webpush("http://push.example.org/sub", P256DH, AUTH),
            "M_INVALID_PARAM",
        ),
        (webpush("not a url", P256DH, AUTH), "M_INVALID_PARAM"),
        // Loopback and private addresses are refused (federation.ip_range_denylist).
        (
            webpush("https://127.0.0.1/sub", P256DH, AUTH),
            "M_INVALID_PARAM",
        ),
        (
            webpush("https://[::1]:8443/sub", P256DH, AUTH),
            "M_INVALID_PARAM",
        ),
        (webpush(url, "not-a-key", AUTH), "M_INVALID_PARAM"),
        (webpush(url, &P256DH[..60], AUTH), "M_INVALID_PARAM"),
        (webpush(url, P256DH, "AAAA"), "M_INVALID_PARAM"),
    ];
    for (body, errcode) in refused {
        assert_error(server.post(SET, Some(&alice.token), &body), 400, errcode);
    }
    let mut no_auth = webpush(url, P256DH, AUTH);
    no_auth["data"].as_object_mut().unwrap().remove("auth");
    assert_error(
        server.post(SET, Some(&alice.token), &no_auth),
        400,
        "M_MISSING_PARAM",
    );
    let mut no_url = webpush(url, P256DH, AUTH);
    no_url["data"].as_object_mut().unwrap().remove("url");
    assert_error(
        server.post(SET, Some(&alice.token), &no_url),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        server.post(SET, None, &webpush(url, P256DH, AUTH)),
        401,
        "M_MISSING_TOKEN",
    );

    // Accepted: 201, "set but needs to be activated".
    let (status, body) = server.post(SET, Some(&alice.token), &webpush(url, P256DH, AUTH));
    assert_eq!(status, 201, "{body}");
    let (_, listed) = server.get("/_matrix/client/v3/pushers", Some(&alice.token));
    assert_eq!(
        listed["pushers"],
        json!([{
            "kind": "webpush",
            "app_id": "org.example.web",
            "pushkey": P256DH,
            "app_display_name": "Web",
            "device_display_name": "Browser",
            "lang": "en",
            "data": {"url": url, "auth": AUTH},
            "activated": false,
        }])
    );
    // Set again before its activation: a new token (201 again).
    let (status, _) = server.post(SET, Some(&alice.token), &webpush(url, P256DH, AUTH));
    assert_eq!(status, 201);
    // The unstable kind name some clients send is taken too, and kept as given.
    let mut unstable = webpush(url, P256DH, AUTH);
    unstable["kind"] = json!("org.matrix.msc4174.webpush");
    unstable["app_id"] = json!("org.example.unstable");
    let (status, body) = server.post(SET, Some(&bob.token), &unstable);
    assert_eq!(status, 201, "{body}");
    let (_, listed) = server.get("/_matrix/client/v3/pushers", Some(&bob.token));
    assert_eq!(listed["pushers"][0]["kind"], "org.matrix.msc4174.webpush");
    assert_eq!(listed["pushers"][0]["activated"], false);

    // Tokens the server did not send, and apps without a Web Push pusher.
    let ack = |token: &str, app_id: &str, ack_token: &str| {
        server.post(
            ACK,
            Some(token),
            &json!({"app_id": app_id, "ack_token": ack_token}),
        )
    };
    let guess = "6fc76b70-5fad-4eb7-93ea-a1af7a03258b";
    assert_error(
        ack(&alice.token, "org.example.web", guess),
        400,
        "M_UNKNOWN_ACTIVATION_TOKEN",
    );
    assert_error(
        ack(&alice.token, "org.example.other", guess),
        404,
        "M_NOT_FOUND",
    );
    // Another user's pusher is not theirs to activate.
    assert_error(
        ack(&bob.token, "org.example.web", guess),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.post(
            ACK,
            None,
            &json!({"app_id": "org.example.web", "ack_token": guess}),
        ),
        401,
        "M_MISSING_TOKEN",
    );
    let (status, _) = server.post(
        "/_matrix/client/unstable/org.matrix.msc4174/pushers/ack",
        Some(&alice.token),
        &json!({"app_id": "org.example.web", "ack_token": guess}),
    );
    assert_eq!(status, 400, "the unstable path answers too");
    assert_error(
        server.post(ACK, Some(&alice.token), &json!({"app_id": "x"})),
        400,
        "M_BAD_JSON",
    );

    // Removed like any pusher.
    let mut remove = webpush(url, P256DH, AUTH);
    remove["kind"] = Value::Null;
    let (status, body) = server.post(SET, Some(&alice.token), &remove);
    assert_eq!(status, 200, "{body}");
    let (_, listed) = server.get("/_matrix/client/v3/pushers", Some(&alice.token));
    assert_eq!(listed["pushers"], json!([]));
}
