//! Federation transport with real servers: TLS, discovery of `localhost:PORT` names,
//! signed requests and their checks, server keys and the notary endpoints, the SSRF
//! guard.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use ruma::CanonicalJsonObject;
use ruma::signatures::{PublicKeyMap, PublicKeySet};
use serde_json::{Value, json};

use crate::federation_support::{
    Signing, TestRemote, federating_server, federating_server_with_env, test_ca,
};
use crate::harness::{StartOptions, TestServer, assert_error, token};

fn set_displayname(server: &TestServer, token: &str, user_id: &str, name: &str) {
    let (status, body) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/profile/{user_id}/displayname"),
        Some(token),
        &json!({ "displayname": name }),
    );
    assert_eq!(status, 200, "{body}");
}

/// Checks `signer`'s signature on `value` with the keys `signer` publishes.
fn assert_signed_by(value: &Value, signer: &TestServer) {
    let (status, published) = signer.get("/_matrix/key/v2/server", None);
    assert_eq!(status, 200);
    let mut set = PublicKeySet::new();
    for (id, key) in published["verify_keys"].as_object().unwrap() {
        set.insert(
            id.clone(),
            ruma::serde::Base64::parse(key["key"].as_str().unwrap()).unwrap(),
        );
    }
    let name = signer.server_name();
    assert!(
        value["signatures"][&name].is_object(),
        "no signature of {name}: {value}"
    );
    let mut only_signer = value.clone();
    only_signer["signatures"] = json!({ &name: value["signatures"][&name].clone() });
    let map = PublicKeyMap::from([(name, set)]);
    let object: CanonicalJsonObject = serde_json::from_value(only_signer).unwrap();
    ruma::signatures::verify_json(&map, &object).expect("signature verifies");
}

#[test]
fn users_read_profiles_of_users_on_another_server_both_ways() {
    let a = federating_server();
    let b = federating_server();
    let alice = token(&a.register("alice"));
    let bob = token(&b.register("bob"));
    let alice_id = format!("@alice:{}", a.server_name());
    let bob_id = format!("@bob:{}", b.server_name());
    set_displayname(&a, &alice, &alice_id, "Alice of A");
    set_displayname(&b, &bob, &bob_id, "Bob of B");

    // A discovers B, signs; B fetches A's key and checks the signature.
    let (status, body) = a.get(
        &format!("/_matrix/client/v3/profile/{bob_id}"),
        Some(&alice),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "displayname": "Bob of B" }));
    let (status, body) = a.get(
        &format!("/_matrix/client/v3/profile/{bob_id}/displayname"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "displayname": "Bob of B" }));
    // And the other way round.
    let (status, body) = b.get(
        &format!("/_matrix/client/v3/profile/{alice_id}"),
        Some(&bob),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["displayname"], "Alice of A");

    // The remote's 404s come through as 404s.
    assert_error(
        a.get(
            &format!("/_matrix/client/v3/profile/{bob_id}/avatar_url"),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        a.get(
            &format!("/_matrix/client/v3/profile/@nobody:{}", b.server_name()),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
    // Setting someone else's profile is still refused locally.
    assert_error(
        a.send(
            "PUT",
            &format!("/_matrix/client/v3/profile/{bob_id}/displayname"),
            Some(&alice),
            &json!({ "displayname": "Mallory" }),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn the_notary_endpoints_return_a_servers_keys_signed_by_it_and_by_the_notary() {
    let a = federating_server();
    let mut b = federating_server();
    let b_name = b.server_name();
    let (_, b_published) = b.get("/_matrix/key/v2/server", None);
    // The `{keyId}` form (out of the spec, still asked by older servers) answers the same.
    let (status, by_id) = b.get("/_matrix/key/v2/server/ed25519:any", None);
    assert_eq!(status, 200, "{by_id}");
    assert_eq!(by_id["verify_keys"], b_published["verify_keys"]);

    let (status, body) = a.post(
        "/_matrix/key/v2/query",
        None,
        &json!({ "server_keys": { &b_name: {} } }),
    );
    assert_eq!(status, 200, "{body}");
    let keys = body["server_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{body}");
    assert_eq!(keys[0]["server_name"], b_name);
    assert_eq!(keys[0]["verify_keys"], b_published["verify_keys"]);
    assert_signed_by(&keys[0], &b);
    assert_signed_by(&keys[0], &a);

    let (status, body) = a.get(
        &format!("/_matrix/key/v2/query/{b_name}?minimum_valid_until_ts=1"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let keys = body["server_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{body}");
    assert_signed_by(&keys[0], &b);
    assert_signed_by(&keys[0], &a);

    // The notary's own keys, and several servers at once with key criteria.
    let (status, body) = a.post(
        "/_matrix/key/v2/query",
        None,
        &json!({ "server_keys": {
            a.server_name(): {},
            &b_name: { "ed25519:whatever": { "minimum_valid_until_ts": 1 } },
        } }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server_keys"].as_array().unwrap().len(), 2, "{body}");

    // Keys stay cached once B is gone.
    b.kill_9();
    let (status, body) = a.get(&format!("/_matrix/key/v2/query/{b_name}"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["server_keys"][0]["verify_keys"],
        b_published["verify_keys"]
    );

    // A server that cannot be reached and was never seen: no keys.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (status, body) = a.get(&format!("/_matrix/key/v2/query/localhost:{port}"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "server_keys": [] }));
    assert_error(
        a.post("/_matrix/key/v2/query", None, &json!({ "server_keys": 3 })),
        400,
        "M_BAD_JSON",
    );
}

#[test]
fn federation_requests_need_a_valid_signature_for_this_server() {
    let remote = TestRemote::start();
    let a = federating_server();
    let alice = token(&a.register("alice"));
    let alice_id = format!("@alice:{}", a.server_name());
    set_displayname(&a, &alice, &alice_id, "Alice");
    let path = format!("/_matrix/federation/v1/query/profile?user_id={alice_id}");

    let refused = |signing: Signing, body: Option<&Value>| {
        let body = assert_error(
            remote.request_with(&a, "GET", &path, body, signing),
            401,
            "M_UNAUTHORIZED",
        );
        body["error"].as_str().unwrap().to_owned()
    };
    let error = refused(Signing::Unsigned, None);
    assert!(error.contains("Missing X-Matrix"), "{error}");
    let error = refused(Signing::WrongKey, None);
    assert!(error.contains("Invalid X-Matrix signature"), "{error}");
    let error = refused(Signing::UnknownKeyId, None);
    assert!(error.contains("ed25519:unpublished"), "{error}");
    let error = refused(Signing::Destination("elsewhere.example".into()), None);
    assert!(error.contains("elsewhere.example"), "{error}");
    // A header that does not parse is a bad request (as Synapse answers), an origin
    // that is no server name (a port that is not a number) included.
    for header in [
        "X-Matrix origin=nonsense".to_owned(),
        format!(
            "X-Matrix origin=\"localhost:http\",destination=\"{}\",key=\"ed25519:1\",sig=\"AAAA\"",
            a.server_name()
        ),
    ] {
        let body = assert_error(
            remote.request_with(&a, "GET", &path, None, Signing::Header(header)),
            400,
            "M_UNAUTHORIZED",
        );
        assert!(
            body["error"].as_str().unwrap().contains("Malformed"),
            "{body}"
        );
    }
    // Tampered after signing: another query string, another body.
    let signed_for_other = remote.authorization(
        "GET",
        &format!(
            "/_matrix/federation/v1/query/profile?user_id=@bob:{}",
            a.server_name()
        ),
        &a.server_name(),
        None,
    );
    refused(Signing::Header(signed_for_other), None);
    refused(
        Signing::SignedBody(json!({ "a": 1 })),
        Some(&json!({ "a": 2 })),
    );

    // Correctly signed: answered.
    let (status, body) = remote.request(&a, "GET", &path, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "displayname": "Alice" }));
    let (status, body) = remote.request(&a, "GET", &format!("{path}&field=displayname"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "displayname": "Alice" }));
    let (status, body) = remote.request(&a, "GET", &format!("{path}&field=avatar_url"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));
    // With a body the signature covers it.
    let (status, body) = remote.request(&a, "GET", &path, Some(&json!({ "a": 1 })));
    assert_eq!(status, 200, "{body}");
    // Users that are not A's, or do not exist.
    assert_error(
        remote.request(
            &a,
            "GET",
            &format!(
                "/_matrix/federation/v1/query/profile?user_id=@x:{}",
                remote.server_name()
            ),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        remote.request(
            &a,
            "GET",
            &format!(
                "/_matrix/federation/v1/query/profile?user_id=@ghost:{}",
                a.server_name()
            ),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn the_version_needs_no_signature_and_unknown_paths_are_404() {
    let a = federating_server();
    let (status, body) = a.get("/_matrix/federation/v1/version", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server"]["name"], "Hearth");
    assert!(body["server"]["version"].is_string());
    assert_error(
        a.get("/_matrix/federation/v1/nothing_here", None),
        404,
        "M_UNRECOGNIZED",
    );
}

#[test]
fn the_default_denylist_refuses_loopback_before_connecting() {
    // A server with the default denylist, trusting the test CA.
    let tls = test_ca().issue();
    let a = TestServer::start_with(StartOptions {
        env: vec![(
            "HEARTH_FEDERATION__EXTRA_CA_FILES".into(),
            format!("[{:?}]", tls.ca.display().to_string()),
        )],
        tls: Some(tls),
    });
    // Something listening where the user's server name points, to see if anyone calls.
    let bait = TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let port = bait.local_addr().unwrap().port();

    let started = Instant::now();
    let body = assert_error(
        a.get(
            &format!("/_matrix/client/v3/profile/@victim:localhost:{port}"),
            None,
        ),
        502,
        "M_UNKNOWN",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(error.contains("ip_range_denylist"), "{error}");
    assert!(
        bait.accept().is_err(),
        "the server connected to a denied address"
    );
    // The notary endpoint does not reach it either.
    let (status, body) = a.get(&format!("/_matrix/key/v2/query/localhost:{port}"), None);
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "server_keys": [] }));
    assert!(bait.accept().is_err());
}

#[test]
fn certificates_of_unknown_authorities_are_refused() {
    let b = federating_server();
    let bob = b.register("bob");
    assert!(bob["user_id"].is_string());
    // A trusts only the built-in roots.
    let a = TestServer::start_with(StartOptions {
        env: vec![("HEARTH_FEDERATION__IP_RANGE_DENYLIST".into(), "[]".into())],
        tls: Some(test_ca().issue()),
    });
    let body = assert_error(
        a.get(
            &format!(
                "/_matrix/client/v3/profile/{}",
                bob["user_id"].as_str().unwrap()
            ),
            None,
        ),
        502,
        "M_UNKNOWN",
    );
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("TLS"), "{error}");
}

#[test]
fn with_federation_off_nothing_is_served_or_sent() {
    let b = federating_server();
    let a = federating_server_with_env(&[("HEARTH_FEDERATION__ENABLED", "false")]);
    assert_error(
        a.get("/_matrix/federation/v1/version", None),
        404,
        "M_UNRECOGNIZED",
    );
    assert_error(
        a.get(&format!("/_matrix/key/v2/query/{}", b.server_name()), None),
        404,
        "M_UNRECOGNIZED",
    );
    let (status, _) = a.get("/_matrix/key/v2/server", None);
    assert_eq!(status, 200);
    assert_error(
        a.get(
            &format!("/_matrix/client/v3/profile/@bob:{}", b.server_name()),
            None,
        ),
        403,
        "M_FORBIDDEN",
    );
}
