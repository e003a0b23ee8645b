//! What Hearth does with another server's answers to its outbound invites and joins,
//! and with what that server does not answer: a server written by the test (its own key,
//! routes scripted per test) answers only the older v1 APIs, refuses with its own
//! error codes, answers with invalid JSON, or is gone. Hearth behaves as Synapse does
//! (these are SyTest's tests 50federation/30room-join and 35room-invite).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::federation_hostile::{event_id_of, push, state_id};
use crate::federation_partial_join::remote_join;
use crate::federation_support::{TestRemote, federating_server};
use crate::harness::assert_error;
use crate::room_support::{create_room, enc, get_event, user};
use crate::sync::sync;

/// What the remote received in its transactions, with a wake-up for waiters.
#[derive(Clone, Default)]
struct Received {
    pdus: Arc<(Mutex<Vec<Value>>, Condvar)>,
}

impl Received {
    fn push(&self, pdus: &[Value]) {
        let (list, arrived) = &*self.pdus;
        list.lock().unwrap().extend(pdus.iter().cloned());
        arrived.notify_all();
    }

    /// Waits until a PDU that `wanted` accepts arrived (failing after a generous minute);
    /// returns all PDUs received so far.
    #[track_caller]
    fn wait_for(&self, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (list, arrived) = &*self.pdus;
        let mut pdus = list.lock().unwrap();
        while !pdus.iter().any(&wanted) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "not among the PDUs received: {pdus:?}");
            pdus = arrived.wait_timeout(pdus, left).unwrap().0;
        }
        pdus.clone()
    }
}

fn not_found() -> Response {
    // As an older server (or SyTest's) answers an endpoint it lacks: no Matrix error.
    StatusCode::NOT_FOUND.into_response()
}

fn transactions(received: Received) -> Router {
    Router::new().route(
        "/_matrix/federation/v1/send/{txn}",
        put(move |axum::Json(body): axum::Json<Value>| {
            let received = received.clone();
            async move {
                received.push(body["pdus"].as_array().map_or(&[][..], |p| p));
                axum::Json(json!({"pdus": {}}))
            }
        }),
    )
}

fn membership_of(pdu: &Value) -> Option<&str> {
    pdu.pointer("/content/membership").and_then(Value::as_str)
}

#[test]
fn invites_go_through_v1_when_the_invitees_server_lacks_v2_and_are_not_sent_again() {
    let received = Received::default();
    let remote = TestRemote::start_with(|signer| {
        transactions(received.clone())
            .route(
                "/_matrix/federation/v2/invite/{room}/{event}",
                put(|| async { not_found() }),
            )
            .route(
                "/_matrix/federation/v1/invite/{room}/{event}",
                put(move |axum::Json(mut event): axum::Json<Value>| {
                    let signer = signer.clone();
                    async move {
                        signer.sign_event(&mut event, "2");
                        axum::Json(json!([200, {"event": event}]))
                    }
                }),
            )
    });
    let a = federating_server();
    let alice = user(&a, "alice");
    let room = create_room(&a, &alice, json!({"room_version": "2"}));
    let invitee = format!("@bob:{}", remote.server_name());
    let (status, body) = a.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        Some(&alice.token),
        &json!({"user_id": invitee}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = a.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(&room),
            enc(&invitee)
        ),
        Some(&alice.token),
    );
    assert_eq!((status, body["membership"].as_str()), (200, Some("invite")));

    // Taking the invite back is sent to the invitee's server; the invite, which it had
    // through /invite, is not sent again before it (a server not in the room may not
    // expect the room's events).
    let (status, body) = a.post(
        &format!("/_matrix/client/v3/rooms/{}/kick", enc(&room)),
        Some(&alice.token),
        &json!({"user_id": invitee}),
    );
    assert_eq!(status, 200, "{body}");
    let pdus = received.wait_for(|pdu| membership_of(pdu) == Some("leave"));
    assert!(
        pdus.iter().all(|pdu| membership_of(pdu) != Some("invite")),
        "{pdus:?}"
    );

    // A room whose events v1 cannot carry (IDs not in the event) is refused.
    let room = create_room(&a, &alice, json!({"room_version": "10"}));
    assert_error(
        a.post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            Some(&alice.token),
            &json!({"user_id": invitee}),
        ),
        400,
        "M_UNSUPPORTED_ROOM_VERSION",
    );
}

#[test]
fn an_invite_answered_with_invalid_json_is_a_bad_json_error() {
    let remote = TestRemote::start_with(|signer| {
        Router::new().route(
            "/_matrix/federation/v2/invite/{room}/{event}",
            put(move |axum::Json(body): axum::Json<Value>| {
                let signer = signer.clone();
                async move {
                    let mut event = body["event"].clone();
                    signer.sign_event(&mut event, "10");
                    // A float, which canonical JSON (and so signing) does not allow.
                    event["bad_val"] = json!(1.1);
                    axum::Json(json!({"event": event}))
                }
            }),
        )
    });
    let a = federating_server();
    let alice = user(&a, "alice");
    let room = create_room(&a, &alice, json!({"room_version": "10"}));
    let invitee = format!("@bob:{}", remote.server_name());
    assert_error(
        a.post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            Some(&alice.token),
            &json!({"user_id": invitee}),
        ),
        400,
        "M_BAD_JSON",
    );
}

#[test]
fn make_join_refusals_reach_the_client_with_the_remotes_error_code() {
    let remote = TestRemote::start_with_routes(Router::new().route(
        "/_matrix/federation/v1/make_join/{room}/{user}",
        get(|Path((room, _)): Path<(String, String)>| async move {
            let body = if room.starts_with("!old") {
                json!({
                    "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
                    "error": "upgrade",
                    "room_version": "future-version",
                })
            } else {
                json!({"errcode": "M_TEST_ERROR_CODE", "error": "denied!"})
            };
            (StatusCode::BAD_REQUEST, axum::Json(body))
        }),
    ));
    let a = federating_server();
    let alice = user(&a, "alice");
    let join = |room: &str| {
        a.post(
            &format!(
                "/_matrix/client/v3/join/{}?server_name={}",
                enc(room),
                remote.server_name()
            ),
            Some(&alice.token),
            &json!({}),
        )
    };
    let body = assert_error(
        join(&format!("!denied:{}", remote.server_name())),
        400,
        "M_TEST_ERROR_CODE",
    );
    assert_eq!(body["error"], "denied!");
    let body = assert_error(
        join(&format!("!old:{}", remote.server_name())),
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
    );
    assert_eq!(body["room_version"], "future-version");
}

#[test]
fn declining_an_invite_when_the_inviting_server_is_gone_still_leaves_the_room() {
    let remote = TestRemote::start();
    let a = federating_server();
    let bob = user(&a, "bob");
    let bob_id = format!("@bob:{}", a.server_name());
    let room = format!("!gone:{}", remote.server_name());
    let mut invite = json!({
        "room_id": room,
        "sender": format!("@carol:{}", remote.server_name()),
        "type": "m.room.member",
        "state_key": bob_id,
        "content": {"membership": "invite"},
        "prev_events": [],
        "auth_events": [],
        "depth": 5,
        "origin_server_ts": 1_700_000_000_000u64,
    });
    remote.sign_event(&mut invite, "10");
    let object: ruma::CanonicalJsonObject = serde_json::from_value(invite.clone()).unwrap();
    let rules = ruma::RoomVersionId::V10.rules().unwrap();
    let event_id = format!(
        "${}",
        ruma::signatures::reference_hash(&object, &rules).unwrap()
    );
    let (status, body) = remote.request(
        &a,
        "PUT",
        &format!(
            "/_matrix/federation/v2/invite/{}/{}",
            enc(&room),
            enc(&event_id)
        ),
        Some(&json!({
            "room_version": "10",
            "event": invite,
            "invite_room_state": [{
                "type": "m.room.create",
                "state_key": "",
                "sender": format!("@carol:{}", remote.server_name()),
                "content": {"room_version": "10"},
            }],
        })),
    );
    assert_eq!(status, 200, "{body}");
    let first = sync(&a, &bob, "");
    assert!(first["rooms"]["invite"][&room].is_object(), "{first}");
    let since = first["next_batch"].as_str().unwrap().to_owned();

    // The inviting server is gone: the invite is declined here all the same, with a
    // leave of Bob's own that the room's left section shows.
    drop(remote);
    let (status, body) = a.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let next = sync(&a, &bob, &format!("since={since}"));
    let left = &next["rooms"]["leave"][&room];
    let events = left["timeline"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{next}");
    assert_eq!(events[0]["type"], "m.room.member");
    assert_eq!(events[0]["sender"], bob_id);
    assert_eq!(events[0]["state_key"], bob_id);
    assert_eq!(events[0]["content"]["membership"], "leave");
    assert!(next["rooms"]["invite"].get(&room).is_none(), "{next}");
}

#[test]
fn a_pushed_event_whose_sender_sends_nothing_of_what_precedes_it_is_dropped() {
    let state_asked = Arc::new(AtomicBool::new(false));
    let asked = state_asked.clone();
    let remote = TestRemote::start_with_routes(
        Router::new()
            .route(
                "/_matrix/federation/v1/get_missing_events/{room}",
                post(|| async { axum::Json(json!({"events": []})) }),
            )
            .route(
                "/_matrix/federation/v1/state_ids/{room}",
                get(move || {
                    asked.store(true, Ordering::SeqCst);
                    async { not_found() }
                }),
            ),
    );
    let a = federating_server();
    let alice = user(&a, "alice");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12"}),
    );
    remote_join(&remote, &a, &room, "rita", "");
    let rita = format!("@rita:{}", remote.server_name());
    let power_levels = state_id(&a, &alice, &room, "m.room.power_levels", "");
    let membership = state_id(&a, &alice, &room, "m.room.member", &rita);
    let mut event = json!({
        "room_id": room,
        "sender": rita,
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": "after a gap"},
        "prev_events": ["$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
        "auth_events": [power_levels, membership],
        "depth": 50,
        "origin_server_ts": 1_700_000_000_000u64,
    });
    remote.sign_event(&mut event, "12");
    let results = push(&remote, &a, "gap1", std::slice::from_ref(&event));
    assert!(results[0]["error"].is_string(), "{results:?}");
    assert!(!state_asked.load(Ordering::SeqCst));
    let (status, body) = get_event(&a, &alice, &room, &event_id_of(&event));
    assert_eq!(status, 404, "{body}");
}
