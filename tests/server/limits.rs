//! `[limits]`: per-user rates per endpoint family (admins exempt), per-address
//! registrations, `createRoom` sizes and filter sizes. The harness raises the rates for
//! every other test; these servers set them low again.

use serde_json::{Value, json};

use crate::admin_support::{SECRET, admin};
use crate::harness::{PASSWORD, TestServer, assert_error};
use crate::room_support::{create_room, enc, send_path, try_create_room, user};

#[track_caller]
fn assert_limited(answer: (u16, Value)) {
    let body = assert_error(answer, 429, "M_LIMIT_EXCEEDED");
    let wait = body["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 0, "{body}");
}

#[test]
fn sends_past_the_burst_are_refused_with_a_wait_and_admins_are_exempt() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__SHARED_SECRET", SECRET),
        ("HEARTH_LIMITS__MESSAGES_BURST", "3"),
        ("HEARTH_LIMITS__MESSAGES_PER_MINUTE", "1"),
    ]);
    let alice = user(&server, "alice");
    let root = admin(&server, "root");
    let room = create_room(&server, &root, json!({"preset": "public_chat"}));
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/join/{}", enc(&room)),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let message = json!({"msgtype": "m.text", "body": "hi"});
    for i in 0..3 {
        let path = send_path(&room, "m.room.message", &format!("a{i}"));
        let (status, body) = server.send("PUT", &path, Some(&alice.token), &message);
        assert_eq!(status, 200, "{body}");
    }
    let path = send_path(&room, "m.room.message", "a3");
    assert_limited(server.send("PUT", &path, Some(&alice.token), &message));
    // State events and redactions count as sends too.
    let topic = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.topic/",
        enc(&room)
    );
    assert_limited(server.send("PUT", &topic, Some(&alice.token), &json!({"topic": "t"})));
    // Nothing was stored for the refused send.
    let (_, messages) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            enc(&room)
        ),
        Some(&alice.token),
    );
    let bodies = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .count();
    assert_eq!(bodies, 3, "{messages}");
    // The server admin has the same allowance and is never refused.
    for i in 0..6 {
        let path = send_path(&room, "m.room.message", &format!("r{i}"));
        let (status, body) = server.send("PUT", &path, Some(&root.token), &message);
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn an_admin_override_replaces_the_limits_for_one_user() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__SHARED_SECRET", SECRET),
        ("HEARTH_LIMITS__MESSAGES_BURST", "3"),
        ("HEARTH_LIMITS__MESSAGES_PER_MINUTE", "1"),
    ]);
    let root = admin(&server, "root");
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &root, json!({"preset": "public_chat"}));
    for who in [&alice, &bob] {
        let (status, body) = server.post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            Some(&who.token),
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let override_path = |user_id: &str| {
        format!(
            "/_synapse/admin/v1/users/{}/override_ratelimit",
            enc(user_id)
        )
    };
    let message = json!({"msgtype": "m.text", "body": "hi"});
    let send = |who: &crate::room_support::User, txn: &str| {
        let path = send_path(&room, "m.room.message", txn);
        server.send("PUT", &path, Some(&who.token), &message)
    };

    // Nothing set: an empty object, as Synapse answers.
    let (status, body) = server.get(&override_path(&alice.id), Some(&root.token));
    assert_eq!((status, body), (200, json!({})));
    // Only admins, only local accounts that exist, only non-negative integers.
    let (status, _) = server.get(&override_path(&alice.id), Some(&bob.token));
    assert_eq!(status, 403);
    assert_error(
        server.get(
            &override_path("@nobody:elsewhere.example"),
            Some(&root.token),
        ),
        400,
        "M_INVALID_PARAM",
    );
    let missing = format!("@ghost:{}", server.server_name());
    assert_error(
        server.post(&override_path(&missing), Some(&root.token), &json!({})),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.post(
            &override_path(&alice.id),
            Some(&root.token),
            &json!({"messages_per_second": -1}),
        ),
        400,
        "M_INVALID_PARAM",
    );

    // A rate of 0 lifts every limit for alice (Synapse's meaning).
    let (status, body) = server.post(&override_path(&alice.id), Some(&root.token), &json!({}));
    assert_eq!(
        (status, body),
        (200, json!({"messages_per_second": 0, "burst_count": 0}))
    );
    for i in 0..6 {
        let (status, body) = send(&alice, &format!("a{i}"));
        assert_eq!(status, 200, "{body}");
    }
    // Bob gets a burst of 1: his second send waits about a second, not the configured minute.
    let (status, body) = server.post(
        &override_path(&bob.id),
        Some(&root.token),
        &json!({"messages_per_second": 1, "burst_count": 1}),
    );
    assert_eq!(
        (status, body),
        (200, json!({"messages_per_second": 1, "burst_count": 1}))
    );
    let (status, body) = server.get(&override_path(&bob.id), Some(&root.token));
    assert_eq!(
        (status, body),
        (200, json!({"messages_per_second": 1, "burst_count": 1}))
    );
    let (status, body) = send(&bob, "b0");
    assert_eq!(status, 200, "{body}");
    let answer = send(&bob, "b1");
    let body = assert_error(answer, 429, "M_LIMIT_EXCEEDED");
    let wait = body["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 0 && wait <= 1_000, "{body}");

    // Removed: alice is back under `[limits]` (a burst of 3).
    let (status, body) = server.send(
        "DELETE",
        &override_path(&alice.id),
        Some(&root.token),
        &json!({}),
    );
    assert_eq!((status, body), (200, json!({})));
    let (status, body) = server.get(&override_path(&alice.id), Some(&root.token));
    assert_eq!((status, body), (200, json!({})));
    for i in 0..3 {
        let (status, body) = send(&alice, &format!("c{i}"));
        assert_eq!(status, 200, "{body}");
    }
    assert_limited(send(&alice, "c3"));
}

#[test]
fn registrations_are_limited_per_address() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_LIMITS__REGISTRATIONS_BURST", "2"),
        ("HEARTH_LIMITS__REGISTRATIONS_PER_MINUTE", "1"),
    ]);
    server.register("one");
    server.register("two");
    assert_limited(server.post(
        "/_matrix/client/v3/register",
        None,
        &json!({
            "username": "three",
            "password": PASSWORD,
            "auth": { "type": "m.login.dummy" },
        }),
    ));
    let (status, body) = server.get("/_matrix/client/v3/register/available?username=three", None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn availability_questions_are_limited_per_address() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_LIMITS__AVAILABILITY_BURST", "3"),
        ("HEARTH_LIMITS__AVAILABILITY_PER_MINUTE", "1"),
    ]);
    server.register("taken");
    let ask = |name: &str| {
        server.get(
            &format!("/_matrix/client/v3/register/available?username={name}"),
            None,
        )
    };
    // Free, taken and invalid names all count.
    assert_eq!(ask("free").0, 200);
    assert_error(ask("taken"), 400, "M_USER_IN_USE");
    assert_error(ask("Not%20Valid"), 400, "M_INVALID_USERNAME");
    assert_limited(ask("free"));
    assert_limited(ask("taken"));
    // The allowance is the address's own: registering is still allowed.
    server.register("another");
    // Behind a proxy each forwarded address has its own.
    let proxied = TestServer::start_with_env(&[
        ("HEARTH_LIMITS__AVAILABILITY_BURST", "1"),
        ("HEARTH_LIMITS__AVAILABILITY_PER_MINUTE", "1"),
        ("HEARTH_FORWARDED_FOR_HEADER", "true"),
    ]);
    let ask_from = |addr: &str| {
        let response = proxied
            .client
            .get(proxied.url("/_matrix/client/v3/register/available?username=free"))
            .header("X-Forwarded-For", addr)
            .send()
            .unwrap();
        crate::harness::into_json(response)
    };
    assert_eq!(ask_from("203.0.113.1").0, 200);
    assert_limited(ask_from("203.0.113.1"));
    assert_eq!(ask_from("203.0.113.2").0, 200);
}

#[test]
fn registration_token_validity_questions_are_limited_per_address() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__REQUIRE_TOKEN", "true"),
        ("HEARTH_LIMITS__TOKEN_VALIDITY_BURST", "2"),
        ("HEARTH_LIMITS__TOKEN_VALIDITY_PER_MINUTE", "1"),
    ]);
    let ask = |token: &str| {
        server.get(
            &format!(
                "/_matrix/client/v1/register/m.login.registration_token/validity?token={token}"
            ),
            None,
        )
    };
    let (status, body) = ask("guess1");
    assert_eq!((status, &body["valid"]), (200, &json!(false)), "{body}");
    assert_eq!(ask("guess2").0, 200);
    // Tokens cannot be guessed in bulk: the third question waits, whatever it asks.
    assert_limited(ask("guess3"));
    assert_limited(ask("guess1"));
    // The allowance is its own: name availability is still answered.
    let (status, body) = server.get("/_matrix/client/v3/register/available?username=free", None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn joins_invites_and_searches_have_their_own_allowances() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_LIMITS__JOINS_BURST", "1"),
        ("HEARTH_LIMITS__JOINS_PER_MINUTE", "1"),
        ("HEARTH_LIMITS__INVITES_BURST", "1"),
        ("HEARTH_LIMITS__INVITES_PER_MINUTE", "1"),
        ("HEARTH_LIMITS__SEARCH_BURST", "1"),
        ("HEARTH_LIMITS__SEARCH_PER_MINUTE", "1"),
    ]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let first = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let second = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let join = |room: &str| {
        server.post(
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            Some(&bob.token),
            &json!({}),
        )
    };
    assert_eq!(join(&first).0, 200);
    assert_limited(join(&second));
    let invite = |who: &str| {
        server.post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&second)),
            Some(&alice.token),
            &json!({ "user_id": who }),
        )
    };
    assert_eq!(invite(&bob.id).0, 200);
    assert_limited(invite(&carol.id));
    let search = json!({"search_categories": {"room_events": {"search_term": "hi"}}});
    assert_eq!(
        server
            .post("/_matrix/client/v3/search", Some(&alice.token), &search)
            .0,
        200
    );
    assert_limited(server.post("/_matrix/client/v3/search", Some(&alice.token), &search));
}

#[test]
fn create_room_and_filters_have_size_limits() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_LIMITS__CREATE_ROOM_INITIAL_STATE", "2"),
        ("HEARTH_LIMITS__CREATE_ROOM_INVITES", "1"),
        ("HEARTH_LIMITS__FILTER_BYTES", "200"),
    ]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let state = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"type": "m.custom", "state_key": i.to_string(), "content": {}}))
            .collect()
    };
    assert_error(
        try_create_room(&server, &alice, json!({ "initial_state": state(3) })),
        413,
        "M_TOO_LARGE",
    );
    assert_error(
        try_create_room(&server, &alice, json!({ "invite": [bob.id, carol.id] })),
        413,
        "M_TOO_LARGE",
    );
    let (_, rooms) = server.get("/_matrix/client/v3/joined_rooms", Some(&alice.token));
    assert_eq!(rooms["joined_rooms"], json!([]), "a refused room was made");
    create_room(
        &server,
        &alice,
        json!({ "initial_state": state(2), "invite": [bob.id] }),
    );

    let filter_path = format!("/_matrix/client/v3/user/{}/filter", enc(&alice.id));
    let big = json!({"room": {"rooms": (0..40).map(|i| format!("!r{i}:x")).collect::<Vec<_>>()}});
    assert_error(
        server.post(&filter_path, Some(&alice.token), &big),
        413,
        "M_TOO_LARGE",
    );
    let (status, body) = server.post(
        &filter_path,
        Some(&alice.token),
        &json!({"room": {"timeline": {"limit": 5}}}),
    );
    assert_eq!(status, 200, "{body}");
    let inline = enc(&big.to_string());
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/sync?timeout=0&filter={inline}"),
            Some(&alice.token),
        ),
        413,
        "M_TOO_LARGE",
    );
}

#[test]
fn bodies_nested_too_deep_are_refused_before_any_handler() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let deep = format!(
        "{{\"msgtype\":\"m.text\",\"body\":\"x\",\"n\":{}{}}}",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let path = send_path(&room, "m.room.message", "deep");
    let response = server
        .client
        .put(server.url(&path))
        .bearer_auth(&alice.token)
        .body(deep)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().unwrap();
    assert_eq!(body["errcode"], "M_NOT_JSON", "{body}");
    let (status, _) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200);
}

fn raw(server: &TestServer) -> std::net::TcpStream {
    let socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    socket
}

/// Reads until the server closes; a read timeout fails the test.
fn read_to_close(socket: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&answer).into_owned();
            }
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
}

#[test]
fn slow_clients_are_cut_off_and_others_are_still_served() {
    use std::io::Write;
    let server = TestServer::start_with_env(&[
        ("HEARTH_LIMITS__HEADER_READ_SECS", "1"),
        ("HEARTH_LIMITS__BODY_READ_SECS", "1"),
    ]);
    // Headers that never end (slow loris): the connection is closed.
    let mut heads: Vec<_> = (0..20).map(|_| raw(&server)).collect();
    for socket in &mut heads {
        socket
            .write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n")
            .unwrap();
    }
    let (status, _) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200, "other clients are served meanwhile");
    for socket in &mut heads {
        let answer = read_to_close(socket);
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    // A body that stops part way: 408 with a Matrix error, then the connection closes.
    let mut socket = raw(&server);
    socket
        .write_all(
            b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":",
        )
        .unwrap();
    let answer = read_to_close(&mut socket);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("M_UNKNOWN"), "{answer}");
    let (status, _) = server.get("/_matrix/client/versions", None);
    assert_eq!(status, 200);
}

#[test]
fn a_stalled_upload_is_dropped_and_a_slow_one_is_not() {
    use std::io::Write;
    let server = TestServer::start_with_env(&[("HEARTH_LIMITS__UPLOAD_IDLE_SECS", "1")]);
    let alice = user(&server, "alice");
    let head = |length: usize| {
        format!(
            "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n",
            alice.token
        )
    };
    // Part of the file, then nothing: 408, and the part received is not kept.
    let mut socket = raw(&server);
    socket.write_all(head(1000).as_bytes()).unwrap();
    socket.write_all(&[7u8; 100]).unwrap();
    let answer = read_to_close(&mut socket);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("M_UNKNOWN"), "{answer}");
    let tmp = server.data_dir().join("media").join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "partial uploads left behind: {left:?}");
    // An upload that keeps sending, however slowly, is not cut off: its whole time is
    // past the idle limit, but no pause is.
    let mut socket = raw(&server);
    socket.write_all(head(6).as_bytes()).unwrap();
    for byte in b"slowly" {
        std::thread::sleep(std::time::Duration::from_millis(300));
        socket.write_all(&[*byte]).unwrap();
    }
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    while !answer.contains("content_uri") {
        use std::io::Read;
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "closed without an answer: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A long-poll `/sync` from `addr` (behind the trusted proxy) held open on a raw socket.
fn hold_sync(server: &TestServer, token: &str, since: &str, addr: &str) -> std::net::TcpStream {
    // The slot of the sync just answered to the same user or address is given back
    // when the server has finished with that request, which may be a moment after the
    // client has read the answer: a hold sent in that moment is refused, so it is sent
    // again until the server keeps it (a held sync says nothing for 120 s).
    use std::io::Read;
    for _ in 0..100 {
        let mut socket = send_hold_sync(server, token, since, addr);
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        let mut first = [0u8; 12];
        match socket.read(&mut first) {
            Ok(n) if first[..n].starts_with(b"HTTP/1.1 429") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(n) => panic!(
                "the held sync was answered: {}",
                String::from_utf8_lossy(&first[..n])
            ),
            Err(_) => {
                socket.set_read_timeout(None).unwrap();
                return socket;
            }
        }
    }
    panic!("the server never kept the held sync");
}

fn send_hold_sync(
    server: &TestServer,
    token: &str,
    since: &str,
    addr: &str,
) -> std::net::TcpStream {
    use std::io::Write;
    let mut socket = raw(server);
    write!(
        socket,
        "GET /_matrix/client/v3/sync?since={}&timeout=120000&filter={} HTTP/1.1\r\n\
         Host: x\r\nAuthorization: Bearer {token}\r\nX-Forwarded-For: {addr}\r\n\r\n",
        enc(since),
        // Nothing the other requests of the test cause (presence) ends it early.
        enc(r#"{"presence":{"types":[]},"account_data":{"types":[]}}"#)
    )
    .unwrap();
    socket
}

/// A `/sync` that answers at once, from `addr`.
fn quick_sync(server: &TestServer, token: &str, addr: &str) -> (u16, Value) {
    let response = server
        .client
        .get(server.url("/_matrix/client/v3/sync?timeout=0"))
        .bearer_auth(token)
        .header("X-Forwarded-For", addr)
        .send()
        .unwrap();
    crate::harness::into_json(response)
}

/// Asks until the answer's status is `status`: held syncs are taken up (or given back)
/// by the server in its own time. A bound, not a speed requirement.
#[track_caller]
fn until_status(status: u16, mut ask: impl FnMut() -> (u16, Value)) -> (u16, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = ask();
        if answer.0 == status || std::time::Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn open_sync_socket(
    server: &TestServer,
    token: &str,
    addr: &str,
) -> Result<
    tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    (u16, Value),
> {
    use tungstenite::client::IntoClientRequest;
    let mut request = format!(
        "ws://127.0.0.1:{}/_matrix/client/unstable/org.hearth.sync/ws?access_token={token}",
        server.port
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("X-Forwarded-For", addr.parse().unwrap());
    match tungstenite::connect(request) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("the socket neither opened nor was refused: {e}"),
    }
}

#[test]
fn open_syncs_and_sockets_are_capped_per_user_and_per_address() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_FORWARDED_FOR_HEADER", "true"),
        ("HEARTH_LIMITS__SYNCS_PER_USER", "2"),
        ("HEARTH_LIMITS__SYNCS_PER_ADDRESS", "3"),
        ("HEARTH_LIMITS__SYNC_SOCKETS_PER_USER", "1"),
        ("HEARTH_LIMITS__SYNC_SOCKETS_PER_ADDRESS", "2"),
    ]);
    let (alice, bob, carol) = (
        user(&server, "alice"),
        user(&server, "bob"),
        user(&server, "carol"),
    );
    let here = "203.0.113.1";
    let since = |token: &str| {
        let (status, body) = quick_sync(&server, token, here);
        assert_eq!(status, 200, "{body}");
        body["next_batch"].as_str().unwrap().to_owned()
    };
    let alice_since = since(&alice.token);

    // Alice holds two long-polls: a third is refused until one ends.
    let mut held: Vec<_> = (0..2)
        .map(|_| hold_sync(&server, &alice.token, &alice_since, here))
        .collect();
    assert_limited(until_status(429, || {
        quick_sync(&server, &alice.token, "203.0.113.7")
    }));
    // Bob from the same address may still sync: the address holds two of its three.
    // (His token is the latest, so that his held sync has nothing new to answer at once.)
    let bob_since = since(&bob.token);
    // Once Bob holds one there too, the address is full, whoever asks from it.
    held.push(hold_sync(&server, &bob.token, &bob_since, here));
    assert_limited(until_status(429, || {
        quick_sync(&server, &carol.token, here)
    }));
    let (status, body) = quick_sync(&server, &carol.token, "203.0.113.2");
    assert_eq!(status, 200, "{body}");

    // A client that goes away gives its slot back: its request ends with it.
    for socket in held.drain(..2) {
        socket.shutdown(std::net::Shutdown::Both).unwrap();
    }
    let (status, body) = until_status(200, || quick_sync(&server, &alice.token, here));
    assert_eq!(status, 200, "{body}");
    let (status, body) = until_status(200, || quick_sync(&server, &carol.token, here));
    assert_eq!(status, 200, "{body}");
    drop(held);

    // Sockets: one per user, two per address; the upgrade is refused with a 429.
    let mut first = open_sync_socket(&server, &alice.token, here).expect("alice's socket");
    let refused = open_sync_socket(&server, &alice.token, "203.0.113.3")
        .err()
        .unwrap();
    assert_limited(refused);
    let _bobs = open_sync_socket(&server, &bob.token, here).expect("bob's socket");
    assert_limited(open_sync_socket(&server, &carol.token, here).err().unwrap());
    assert!(open_sync_socket(&server, &carol.token, "203.0.113.4").is_ok());
    // Closed, alice's socket is given back.
    first.close(None).unwrap();
    let mut again = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while again.is_none() && std::time::Instant::now() < deadline {
        let _ = first.read();
        match open_sync_socket(&server, &alice.token, "203.0.113.5") {
            Ok(socket) => again = Some(socket),
            Err(refused) => {
                assert_eq!(refused.0, 429, "{}", refused.1);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    assert!(
        again.is_some(),
        "alice's closed socket was never given back"
    );
}
