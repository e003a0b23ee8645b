//! OpenID tokens: a user's token is exchanged by a third party for the user's ID through
//! `/_matrix/federation/v1/openid/userinfo` (no signature, the token is the credential).

use serde_json::json;

use crate::harness::{TestServer, assert_error};
use crate::room_support::{enc, user};

const USERINFO: &str = "/_matrix/federation/v1/openid/userinfo";

#[test]
fn an_openid_token_names_its_user_and_only_its_user() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let path = format!(
        "/_matrix/client/v3/user/{}/openid/request_token",
        enc(&alice.id)
    );
    let (status, body) = server.post(&path, Some(&alice.token), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["matrix_server_name"].as_str(),
        alice.id.split_once(':').map(|(_, server)| server)
    );
    let token = body["access_token"].as_str().unwrap().to_owned();

    let (status, info) = server.get(&format!("{USERINFO}?access_token={token}"), None);
    assert_eq!(status, 200, "{info}");
    assert_eq!(info, json!({ "sub": alice.id }));

    // Bob cannot ask for a token in Alice's name.
    assert_error(
        server.post(&path, Some(&bob.token), &json!({})),
        403,
        "M_FORBIDDEN",
    );
    // Unknown and missing tokens; an access token is not an OpenID token.
    assert_error(
        server.get(
            &format!("{USERINFO}?access_token=an%2Finvalid%2Ftoken"),
            None,
        ),
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(server.get(USERINFO, None), 401, "M_MISSING_TOKEN");
    assert_error(
        server.get(&format!("{USERINFO}?access_token={}", alice.token), None),
        401,
        "M_UNKNOWN_TOKEN",
    );

    // A token that was answered survives a restart.
    server.restart();
    let (status, info) = server.get(&format!("{USERINFO}?access_token={token}"), None);
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], alice.id);
}
