//! Walks every route the router serves (read from the router itself, so a route added
//! later is walked too) and sends each one requests it must refuse: no access token, an
//! oversized body, malformed JSON, JSON that is not an object, and JSON nested too deep.
//! Every answer must be a 4xx Matrix error in JSON, the server must stay up, and a canary
//! user's rooms, account and the server's user and room lists must be unchanged.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use hearth::config::Config;
use hearth::service::Services;
use hearth::service::keys::ServerKeys;
use hearth::store::Store;
use serde_json::{Value, json};

use crate::admin_support::{SECRET, admin};
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, send_text, user};

/// The body limits the server under test runs with.
const MAX_REQUEST: usize = 1 << 20;
const MAX_FEDERATION: usize = 4 << 20;

/// Routes that answer without an access token. Each must be a real route (checked), so
/// this list cannot go stale; every other client and admin route must want a token.
const OPEN: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/.well-known/matrix/client"),
    ("GET", "/.well-known/matrix/server"),
    ("GET", "/_matrix/client/versions"),
    ("GET", "/_matrix/client/v3/login"),
    ("POST", "/_matrix/client/v3/login"),
    ("POST", "/_matrix/client/v3/register"),
    ("GET", "/_matrix/client/v3/register/available"),
    (
        "GET",
        "/_matrix/client/v1/register/m.login.registration_token/validity",
    ),
    ("POST", "/_matrix/client/v3/refresh"),
    ("GET", "/_matrix/client/v3/publicRooms"),
    ("GET", "/_matrix/client/v3/directory/room/{room_alias}"),
    ("GET", "/_matrix/client/r0/directory/room/{room_alias}"),
    ("GET", "/_matrix/client/v3/directory/list/room/{room_id}"),
    ("GET", "/_matrix/client/v1/room_summary/{room}"),
    // Frozen: answered 404 with the reason, as the spec asks.
    ("GET", "/_matrix/media/v3/download/{server_name}/{media_id}"),
    (
        "GET",
        "/_matrix/media/v3/download/{server_name}/{media_id}/{file_name}",
    ),
    (
        "GET",
        "/_matrix/media/v3/thumbnail/{server_name}/{media_id}",
    ),
    ("GET", "/_matrix/client/v3/profile/{user_id}"),
    ("GET", "/_matrix/client/v3/profile/{user_id}/{key_name}"),
    ("GET", "/_matrix/key/v2/server"),
    ("GET", "/_matrix/key/v2/server/{key_id}"),
    ("GET", "/_matrix/key/v2/query/{server_name}"),
    ("GET", "/_matrix/key/v2/query/{server_name}/{key_id}"),
    ("POST", "/_matrix/key/v2/query"),
    ("GET", "/_matrix/federation/v1/version"),
    // Asked by third parties with an OpenID token, not an access token or a signature.
    ("GET", "/_matrix/federation/v1/openid/userinfo"),
    // Called by identity servers, which sign each invitation rather than the request.
    ("PUT", "/_matrix/federation/v1/3pid/onbind"),
    ("POST", "/_matrix/federation/v1/3pid/onbind"),
    ("GET", "/_synapse/admin/v1/register"),
    ("POST", "/_synapse/admin/v1/register"),
    // Email (spec/email.md): asking for a mail, a forgotten password, and the pages the
    // mailed links open (authorised by the link's token or signature).
    ("POST", "/_matrix/client/v3/account/3pid/email/requestToken"),
    (
        "POST",
        "/_matrix/client/v3/account/password/email/requestToken",
    ),
    ("POST", "/_matrix/client/v3/account/password"),
    ("GET", "/_hearth/client/v1/email/validate"),
    ("POST", "/_hearth/client/v1/email/validate"),
    ("GET", "/_hearth/client/v1/email/unsubscribe"),
    ("POST", "/_hearth/client/v1/email/unsubscribe"),
];

/// Every (method, path template) of the real router.
pub fn route_table() -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        server_name: "hearth.test".into(),
        data: dir.path().to_owned(),
        sync_writes: false,
        ..Config::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(&dir.path().join("db"), false).unwrap();
        let keys = ServerKeys::load_or_create(dir.path(), "hearth.test").unwrap();
        let services = Arc::new(Services::new(config, store, keys).unwrap());
        hearth::api::route_table(&services)
            .into_iter()
            .map(|(method, path)| (method.as_str().to_owned(), path))
            .collect()
    })
}

/// A request with raw bytes for a body; answers the status and the body as JSON.
fn send_bytes(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server
        .client
        .request(method, server.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

/// A problem, if the answer is not `status` with `errcode` and an `error` message.
fn refused(what: &str, answer: (u16, Value, String), status: u16, errcode: &str) -> Option<String> {
    let (got, body, text) = answer;
    let right = got == status && body["errcode"] == errcode && body["error"].is_string();
    (!right).then(|| format!("{what}: wanted {status} {errcode}, got {got} {text}"))
}

/// What a walk must leave unchanged: the canary's room, account and devices, and the
/// server's lists of users and rooms.
fn snapshot(server: &TestServer, root: &User, canary: &User, room: &str) -> Vec<Value> {
    let paths = [
        (
            format!("/_matrix/client/v3/rooms/{}/state", enc(room)),
            canary,
        ),
        (
            format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                enc(room)
            ),
            canary,
        ),
        ("/_matrix/client/v3/joined_rooms".to_owned(), canary),
        ("/_matrix/client/v3/devices".to_owned(), canary),
        (
            format!("/_matrix/client/v3/profile/{}", enc(&canary.id)),
            canary,
        ),
        ("/_matrix/client/v3/pushrules/".to_owned(), canary),
        ("/_synapse/admin/v2/users?limit=1000".to_owned(), root),
        ("/_synapse/admin/v1/rooms?limit=1000".to_owned(), root),
    ];
    paths
        .iter()
        .map(|(path, who)| {
            let (status, body) = server.get(path, Some(&who.token));
            assert_eq!(status, 200, "{path}: {body}");
            without_clocks(body)
        })
        .collect()
}

/// Drops what reading itself changes: events' ages and devices' last-seen times.
fn without_clocks(value: Value) -> Value {
    match value {
        Value::Object(map) => map
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "age" | "last_seen_ts" | "last_seen_ip"))
            .map(|(k, v)| (k, without_clocks(v)))
            .collect(),
        Value::Array(items) => items.into_iter().map(without_clocks).collect(),
        other => other,
    }
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut path = template.to_owned();
    while let Some(start) = path.find('{') {
        let end = start + path[start..].find('}').unwrap();
        let name = path[start + 1..end].trim_start_matches('*');
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "x".to_owned());
        path.replace_range(start..=end, &value);
    }
    path
}

#[test]
fn every_route_refuses_missing_tokens_and_bad_bodies_without_writing() {
    let table = route_table();
    assert!(table.len() > 200, "only {} routes", table.len());
    let stale: Vec<_> = OPEN
        .iter()
        .filter(|(method, path)| !table.iter().any(|(m, p)| m == method && p == path))
        .collect();
    assert!(stale.is_empty(), "listed as open but no route: {stale:?}");
    let max_upload = MAX_REQUEST.to_string();
    let server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__SHARED_SECRET", SECRET),
        ("HEARTH_MEDIA__MAX_UPLOAD_BYTES", &max_upload),
    ]);
    let root = admin(&server, "root");
    let canary = user(&server, "canary");
    let walker = user(&server, "walker");
    let room = create_room(&server, &canary, json!({"preset": "public_chat"}));
    let event = send_text(&server, &canary, &room, "t1", "hello");
    let values = [
        ("room_id", enc(&room)),
        ("room_id_or_alias", enc(&room)),
        ("user_id", enc(&canary.id)),
        ("event_id", enc(&event)),
        ("device_id", enc(&canary.device)),
        ("server_name", server.server_name()),
    ];
    let before = snapshot(&server, &root, &canary, &room);
    let mut problems = Vec::new();
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000));

    for (method, template) in &table {
        let path = fill(template, &values);
        let what = format!("{method} {template}");
        let federation = template.starts_with("/_matrix/federation/");
        let upload = template.starts_with("/_matrix/media/v3/upload");
        let open = OPEN.iter().any(|(m, p)| m == method && p == template);

        let answer = send_bytes(&server, method, &path, None, b"{}".to_vec());
        if federation && !open {
            problems.extend(refused(&what, answer, 401, "M_UNAUTHORIZED"));
        } else if !open {
            problems.extend(refused(&what, answer, 401, "M_MISSING_TOKEN"));
        } else {
            let (status, body, text) = answer;
            // A 401 from registration is user-interactive auth's list of flows.
            let explained = body["errcode"].is_string() || body["flows"].is_array();
            if status >= 500 || (status >= 400 && !explained) {
                problems.push(format!("{what} without a token: {status} {text}"));
            }
        }

        let limit = if federation {
            MAX_FEDERATION
        } else {
            MAX_REQUEST
        };
        let mut huge = b"{\"a\":\"".to_vec();
        huge.resize(limit + 16, b'x');
        huge.extend_from_slice(b"\"}");
        let answer = send_bytes(&server, method, &path, Some(&walker.token), huge);
        problems.extend(refused(
            &format!("{what} oversized"),
            answer,
            413,
            "M_TOO_LARGE",
        ));

        if upload || template.starts_with("/_hearth/client/v1/email/") {
            continue; // any bytes are a file's content, or a form
        }
        for (case, body, errcode) in [
            ("malformed", b"{\"a\": ".to_vec(), "M_NOT_JSON"),
            ("not an object", b"[1, 2, 3]".to_vec(), "M_BAD_JSON"),
            ("a string", b"\"text\"".to_vec(), "M_BAD_JSON"),
            ("nested too deep", deep.clone().into_bytes(), "M_NOT_JSON"),
        ] {
            let answer = send_bytes(&server, method, &path, Some(&walker.token), body);
            problems.extend(refused(&format!("{what} {case}"), answer, 400, errcode));
        }
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let (status, _) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200, "the server stopped answering");
    let after = snapshot(&server, &root, &canary, &room);
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(before, after, "the walk changed what the canary sees");
    }
}

/// The known fields of routes with JSON bodies, and their right types: `s` string, `i`
/// integer, `b` boolean, `o` object, `a` array; `!` marks a required field (which is
/// also sent as `null`). Taken from the spec's request bodies (as ruma's request types
/// spell them) and the server's own body types. Routes whose body is free content
/// (`/send`, `/state` of event types the server does not read, account data, tags) take
/// any object and are not listed; the state events the server itself reads are.
const FIELDS: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/_matrix/client/v3/createRoom",
        "visibility:s room_alias_name:s name:s topic:s invite:a invite_3pid:a room_version:s creation_content:o initial_state:a preset:s is_direct:b power_level_content_override:o",
    ),
    (
        "POST",
        "/_matrix/client/v3/login",
        "type:s! identifier:o user:s password:s token:s device_id:s initial_device_display_name:s refresh_token:b",
    ),
    (
        "POST",
        "/_matrix/client/v3/register",
        "username:s password:s device_id:s initial_device_display_name:s inhibit_login:b refresh_token:b auth:o guest_access_token:s",
    ),
    ("POST", "/_matrix/client/v3/refresh", "refresh_token:s!"),
    (
        "POST",
        "/_matrix/client/v3/account/password",
        "new_password:s! logout_devices:b auth:o",
    ),
    ("POST", "/_matrix/client/v3/account/deactivate", "auth:o"),
    (
        "POST",
        "/_matrix/client/v3/user/{user_id}/filter",
        "event_fields:a event_format:s presence:o account_data:o room:o",
    ),
    ("POST", "/_matrix/client/v3/search", "search_categories:o!"),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/invite",
        "user_id:s! reason:s id_server:s id_access_token:s medium:s address:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/account/3pid/bind",
        "id_server:s! id_access_token:s! sid:s! client_secret:s!",
    ),
    (
        "POST",
        "/_matrix/client/v3/account/3pid/unbind",
        "medium:s! address:s! id_server:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/kick",
        "user_id:s! reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/ban",
        "user_id:s! reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/unban",
        "user_id:s! reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/join",
        "reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/join/{room_id_or_alias}",
        "reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/knock/{room_id_or_alias}",
        "reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/leave",
        "reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/upgrade",
        "new_version:s! additional_creators:a",
    ),
    (
        "PUT",
        "/_matrix/client/v3/rooms/{room_id}/redact/{event_id}/{txn_id}",
        "reason:s",
    ),
    (
        "PUT",
        "/_matrix/client/v3/rooms/{room_id}/typing/{user_id}",
        "typing:b! timeout:i",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/receipt/{receipt_type}/{event_id}",
        "thread_id:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/read_markers",
        "m.fully_read:s m.read:s m.read.private:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/report/{event_id}",
        "reason:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/report",
        "reason:s!",
    ),
    (
        "POST",
        "/_matrix/client/v3/users/{user_id}/report",
        "reason:s!",
    ),
    (
        "PUT",
        "/_matrix/client/v3/presence/{user_id}/status",
        "presence:s! status_msg:s",
    ),
    (
        "PUT",
        "/_matrix/client/v3/directory/room/{room_alias}",
        "room_id:s!",
    ),
    (
        "PUT",
        "/_matrix/client/v3/directory/list/room/{room_id}",
        "visibility:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/publicRooms",
        "limit:i since:s filter:o include_all_networks:b third_party_instance_id:s",
    ),
    (
        "PUT",
        "/_matrix/client/v3/devices/{device_id}",
        "display_name:s",
    ),
    ("DELETE", "/_matrix/client/v3/devices/{device_id}", "auth:o"),
    (
        "POST",
        "/_matrix/client/v3/delete_devices",
        "devices:a! auth:o",
    ),
    (
        "PUT",
        "/_matrix/client/v3/sendToDevice/{event_type}/{txn_id}",
        "messages:o!",
    ),
    (
        "POST",
        "/_matrix/client/v3/keys/upload",
        "device_keys:o one_time_keys:o fallback_keys:o",
    ),
    (
        "POST",
        "/_matrix/client/v3/keys/query",
        "device_keys:o! timeout:i",
    ),
    (
        "POST",
        "/_matrix/client/v3/keys/claim",
        "one_time_keys:o! timeout:i",
    ),
    (
        "POST",
        "/_matrix/client/v3/keys/device_signing/upload",
        "master_key:o self_signing_key:o user_signing_key:o auth:o",
    ),
    (
        "POST",
        "/_matrix/client/v3/user_directory/search",
        "search_term:s! limit:i",
    ),
    (
        "POST",
        "/_matrix/client/v3/pushers/set",
        "pushkey:s! kind:s! app_id:s! app_display_name:s device_display_name:s profile_tag:s lang:s data:o append:b",
    ),
    (
        "PUT",
        "/_matrix/client/v3/pushrules/global/{kind}/{rule_id}",
        "actions:a! conditions:a pattern:s",
    ),
    (
        "PUT",
        "/_matrix/client/v3/pushrules/global/{kind}/{rule_id}/enabled",
        "enabled:b!",
    ),
    (
        "PUT",
        "/_matrix/client/v3/pushrules/global/{kind}/{rule_id}/actions",
        "actions:a!",
    ),
    (
        "PUT",
        "/_matrix/client/v3/profile/{user_id}/{key_name}",
        "displayname:s avatar_url:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/room_keys/version",
        "algorithm:s! auth_data:o!",
    ),
    ("PUT", "/_matrix/client/v3/room_keys/keys", "rooms:o!"),
    (
        "POST",
        "/_matrix/client/v3/account/3pid/email/requestToken",
        "client_secret:s! email:s! send_attempt:i! next_link:s",
    ),
    (
        "POST",
        "/_matrix/client/v3/account/3pid/add",
        "client_secret:s! sid:s! auth:o",
    ),
    (
        "POST",
        "/_matrix/client/v3/account/3pid/delete",
        "address:s! medium:s! id_server:s",
    ),
    (
        "POST",
        "/_synapse/admin/v1/register",
        "nonce:s! username:s! password:s! mac:s! admin:b displayname:s",
    ),
    (
        "PUT",
        "/_synapse/admin/v2/users/{user_id}",
        "password:s displayname:s avatar_url:s admin:b deactivated:b locked:b",
    ),
    (
        "POST",
        "/_synapse/admin/v1/reset_password/{user_id}",
        "new_password:s! logout_devices:b",
    ),
    ("POST", "/_synapse/admin/v1/deactivate/{user_id}", "erase:b"),
    (
        "POST",
        "/_synapse/admin/v1/users/{user_id}/override_ratelimit",
        "messages_per_second:i burst_count:i",
    ),
    (
        "POST",
        "/_synapse/admin/v1/registration_tokens/new",
        "token:s uses_allowed:i expiry_time:i length:i",
    ),
];

/// State events whose content the server reads itself, with their fields' types.
const STATE_FIELDS: &[(&str, &str)] = &[
    (
        "m.room.power_levels",
        "users:o users_default:i events:o events_default:i state_default:i ban:i kick:i redact:i invite:i notifications:o",
    ),
    ("m.room.join_rules", "join_rule:s! allow:a"),
    ("m.room.history_visibility", "history_visibility:s!"),
    ("m.room.guest_access", "guest_access:s!"),
    ("m.room.canonical_alias", "alias:s alt_aliases:a"),
    ("m.room.server_acl", "allow:a deny:a allow_ip_literals:b"),
    ("m.room.encryption", "algorithm:s!"),
    ("m.room.name", "name:s!"),
    ("m.room.topic", "topic:s!"),
    ("m.room.tombstone", "replacement_room:s! body:s"),
];

/// Values of every type but `kind`; `null` too for a required field.
fn wrong_values(kind: &str, required: bool) -> Vec<Value> {
    let all = [
        ("s", json!("text")),
        ("s", json!("")),
        ("i", json!(7)),
        ("i", json!(-1)),
        ("i", json!(18_446_744_073_709_551_615_u64)),
        ("i", json!(-9_223_372_036_854_775_808_i64)),
        ("i", json!(1e300)),
        ("i", json!(1.5)),
        ("b", json!(true)),
        ("o", json!({})),
        ("o", json!({ "a": { "b": [1, "x", null] } })),
        ("a", json!([])),
        ("a", json!([1, "x", {}, null])),
    ];
    let mut values: Vec<Value> = all
        .into_iter()
        .filter(|(k, _)| *k != kind)
        .map(|(_, v)| v)
        .collect();
    // A huge number where a number is wanted too, and a string holding one.
    if kind == "i" {
        values.extend([json!("10"), json!(1e300), json!(1.5)]);
    }
    if required {
        values.push(Value::Null);
    }
    values
}

/// A known field: its name, its kind and whether it is required.
type Field = (&'static str, &'static str, bool);

/// The fields of a field list.
fn parse_fields(spec: &'static str) -> Vec<Field> {
    spec.split_whitespace()
        .map(|f| {
            let (name, kind) = f.rsplit_once(':').unwrap();
            let required = kind.ends_with('!');
            (name, kind.trim_end_matches('!'), required)
        })
        .collect()
}

#[test]
fn every_known_field_of_the_wrong_type_is_refused_without_writing() {
    let table = route_table();
    let unknown: Vec<_> = FIELDS
        .iter()
        .filter(|(method, path, _)| !table.iter().any(|(m, p)| m == method && p == path))
        .collect();
    assert!(unknown.is_empty(), "listed but no route: {unknown:?}");
    let server = TestServer::start_with_env(&[("HEARTH_REGISTRATION__SHARED_SECRET", SECRET)]);
    let root = admin(&server, "root");
    let canary = user(&server, "canary");
    let walker = user(&server, "walker");
    let room = create_room(&server, &canary, json!({"preset": "public_chat"}));
    send_text(&server, &canary, &room, "t1", "hello");
    // The walker acts on its own room, account and device, so that every body is read
    // for real rather than refused for want of power first.
    let own_room = create_room(&server, &walker, json!({"preset": "public_chat"}));
    let own_event = send_text(&server, &walker, &own_room, "t1", "mine");
    let values = [
        ("room_id", enc(&own_room)),
        ("room_id_or_alias", enc(&own_room)),
        ("user_id", enc(&walker.id)),
        ("event_id", enc(&own_event)),
        ("device_id", enc(&walker.device)),
        ("server_name", server.server_name()),
        (
            "room_alias",
            enc(&format!("#walk:{}", server.server_name())),
        ),
        ("receipt_type", "m.read".to_owned()),
        ("kind", "override".to_owned()),
        ("key_name", "displayname".to_owned()),
    ];
    let before = snapshot(&server, &root, &canary, &room);
    let mut problems = Vec::new();
    let mut sent = 0;
    let mut cases: Vec<(String, String, Vec<Field>)> = FIELDS
        .iter()
        .map(|(m, p, f)| (m.to_string(), p.to_string(), parse_fields(f)))
        .collect();
    for (event_type, fields) in STATE_FIELDS {
        cases.push((
            "PUT".into(),
            format!("/_matrix/client/v3/rooms/{{room_id}}/state/{event_type}/"),
            parse_fields(fields),
        ));
    }
    let explained = |json: &Value| json["errcode"].is_string() || json["flows"].is_array();
    for (method, template, fields) in &cases {
        let path = fill(template, &values);
        // Admin routes as an admin, so that their bodies are read too.
        let token = if template.starts_with("/_synapse/admin/") {
            &root.token
        } else {
            &walker.token
        };
        for (field, kind, required) in fields {
            for wrong in wrong_values(kind, *required) {
                let body = json!({ *field: wrong });
                let answer = send_bytes(
                    &server,
                    method,
                    &path,
                    Some(token),
                    body.to_string().into_bytes(),
                );
                sent += 1;
                let (status, json, text) = answer;
                if !(400..500).contains(&status) || !explained(&json) {
                    problems.push(format!("{method} {template} {body}: {status} {text}"));
                }
            }
        }
        // All fields wrong at once.
        for pick in 0..3 {
            let body: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(field, kind, required)| {
                    let wrong = wrong_values(kind, *required);
                    (field.to_string(), wrong[pick % wrong.len()].clone())
                })
                .collect();
            let text = Value::Object(body).to_string();
            let (status, json, answer) = send_bytes(
                &server,
                method,
                &path,
                Some(token),
                text.clone().into_bytes(),
            );
            sent += 1;
            if !(400..500).contains(&status) || !explained(&json) {
                problems.push(format!("{method} {template} {text}: {status} {answer}"));
            }
        }
    }
    println!("{sent} requests with wrong-typed fields");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let (status, _) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200, "the server stopped answering");
    // The walker's own account and room are as they were too: its token still works
    // and its room still has its message.
    let (status, body) = server.get("/_matrix/client/v3/account/whoami", Some(&walker.token));
    assert_eq!(status, 200, "the walker's session is gone: {body}");
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&own_room),
            enc(&own_event)
        ),
        Some(&walker.token),
    );
    assert_eq!(status, 200, "{body}");
    let after = snapshot(&server, &root, &canary, &room);
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(before, after, "the walk changed what the canary sees");
    }
}

/// Writes a request head and `body_len` bytes of body, then reads the whole answer:
/// it must arrive complete before the server closes the connection.
fn raw_oversized(server: &TestServer, head: &str, chunked: bool, body_len: usize) -> String {
    let mut socket = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        if chunked {
            socket.write_all(format!("{n:x}\r\n").as_bytes()).unwrap();
        }
        socket.write_all(&chunk[..n]).unwrap();
        if chunked {
            socket.write_all(b"\r\n").unwrap();
        }
        sent += n;
    }
    if chunked {
        socket.write_all(b"0\r\n\r\n").unwrap();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&answer);
                if let Some((head, body)) = text.split_once("\r\n\r\n")
                    && let Some(len) = head.lines().find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    && body.len() >= len
                {
                    break;
                }
            }
            Err(e) => panic!(
                "the connection failed before the answer: {e}; got {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn an_oversized_body_is_answered_413_before_the_connection_closes() {
    let server = TestServer::start();
    let len = 2 << 20;
    let head = format!(
        "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    let answer = raw_oversized(&server, &head, false, len);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("M_TOO_LARGE"), "{answer}");

    // Without a declared length the limit is found while reading.
    let head = "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let answer = raw_oversized(&server, head, true, len);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("M_TOO_LARGE"), "{answer}");

    let (status, _) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200);
}
