//! Reporting events, rooms and users: who may report what, the errors the spec asks for,
//! the rate limit, and reports kept for moderators across `kill -9`.

use hearth::store::{ReportTarget, Store};
use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;

fn report_event_path(room: &str, event_id: &str) -> String {
    format!(
        "/_matrix/client/v3/rooms/{}/report/{}",
        enc(room),
        enc(event_id)
    )
}

fn report_room_path(room: &str) -> String {
    format!("/_matrix/client/v3/rooms/{}/report", enc(room))
}

fn report_user_path(user_id: &str) -> String {
    format!("/_matrix/client/v3/users/{}/report", enc(user_id))
}

fn report(server: &TestServer, reporter: &User, path: &str, body: Value) -> (u16, Value) {
    server.post(path, Some(&reporter.token), &body)
}

#[test]
fn event_reports_need_a_joined_reporter_and_an_event_of_the_room() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let event = send_text(&server, &alice, &room, "t1", "something nasty");
    let path = report_event_path(&room, &event);

    assert_eq!(
        report(&server, &bob, &path, json!({ "reason": "nasty" })),
        (200, json!({}))
    );
    // The reason is optional, and the score older clients send is accepted.
    assert_eq!(report(&server, &bob, &path, json!({})), (200, json!({})));
    assert_eq!(
        report(
            &server,
            &bob,
            &path,
            json!({ "reason": "x", "score": -100 })
        ),
        (200, json!({}))
    );
    // Not joined: the same 404 as an unknown event.
    assert_error(
        report(&server, &carol, &path, json!({ "reason": "x" })),
        404,
        "M_NOT_FOUND",
    );
    let unknown = format!("$unknown:{}", server.server_name());
    assert_error(
        report(
            &server,
            &bob,
            &report_event_path(&room, &unknown),
            json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
    // An event of another room is not found in this one.
    let other = create_room(&server, &bob, json!({ "preset": "private_chat" }));
    let elsewhere = send_text(&server, &bob, &other, "t2", "mine");
    assert_error(
        report(
            &server,
            &bob,
            &report_event_path(&room, &elsewhere),
            json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
    // A redacted event has nothing left to review.
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/r1",
            enc(&room),
            enc(&event)
        ),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_error(
        report(&server, &bob, &path, json!({ "reason": "x" })),
        404,
        "M_NOT_FOUND",
    );
    // Under `joined` history visibility, what was said before someone joined is hidden
    // from them, and they cannot report it either.
    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.history_visibility",
        "",
        &json!({ "history_visibility": "joined" }),
    );
    assert_eq!(status, 200, "{body}");
    let before = send_text(&server, &alice, &room, "t3", "before carol came");
    join(&server, &carol, &room);
    assert_error(
        report(
            &server,
            &carol,
            &report_event_path(&room, &before),
            json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
    let after = send_text(&server, &alice, &room, "t4", "after carol came");
    assert_eq!(
        report(
            &server,
            &carol,
            &report_event_path(&room, &after),
            json!({})
        ),
        (200, json!({}))
    );
    assert_error(
        report(
            &server,
            &bob,
            &report_event_path(&room, "not-an-event-id"),
            json!({}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        report(&server, &bob, &path, json!({ "reason": 5 })),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.post(&path, None, &json!({ "reason": "x" })),
        401,
        "M_MISSING_TOKEN",
    );
}

#[test]
fn rooms_and_users_can_be_reported_by_anyone() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "private_chat" }));
    // Bob is not in the room, and may still report it; a blank reason will do.
    assert_eq!(
        report(
            &server,
            &bob,
            &report_room_path(&room),
            json!({ "reason": "" })
        ),
        (200, json!({}))
    );
    let missing = format!("!missing:{}", server.server_name());
    assert_error(
        report(
            &server,
            &bob,
            &report_room_path(&missing),
            json!({ "reason": "x" }),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        report(&server, &bob, &report_room_path(&room), json!({})),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        report(
            &server,
            &bob,
            &report_room_path("no-room"),
            json!({ "reason": "x" }),
        ),
        400,
        "M_INVALID_PARAM",
    );

    assert_eq!(
        report(
            &server,
            &bob,
            &report_user_path(&alice.id),
            json!({ "reason": "rude" })
        ),
        (200, json!({}))
    );
    // An unknown user is answered like a known one, revealing nothing.
    let nobody = format!("@nobody:{}", server.server_name());
    assert_eq!(
        report(
            &server,
            &bob,
            &report_user_path(&nobody),
            json!({ "reason": "x" })
        ),
        (200, json!({}))
    );
    assert_error(
        report(&server, &bob, &report_user_path(&alice.id), json!({})),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        report(
            &server,
            &bob,
            &report_user_path("alice"),
            json!({ "reason": "x" }),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        report(
            &server,
            &bob,
            &report_user_path(&alice.id),
            json!({ "reason": "x".repeat(5000) }),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn reports_are_kept_for_moderators_across_kill_9() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let event = send_text(&server, &alice, &room, "t1", "spam");
    let nobody = format!("@nobody:{}", server.server_name());
    for (path, body) in [
        (
            report_event_path(&room, &event),
            json!({ "reason": "spam", "score": -50 }),
        ),
        (report_room_path(&room), json!({ "reason": "spam room" })),
        (report_user_path(&alice.id), json!({ "reason": "spammer" })),
        (report_user_path(&nobody), json!({ "reason": "ghost" })),
    ] {
        assert_eq!(report(&server, &bob, &path, body), (200, json!({})));
    }
    server.kill_9();
    let store = Store::open(&server.data_dir().join("db"), false).unwrap();
    let reports = store.reports().unwrap();
    let summary: Vec<(u64, &str, ReportTarget, Option<&str>)> = reports
        .iter()
        .map(|(id, r)| {
            (
                *id,
                r.reporter.as_str(),
                r.target.clone(),
                r.reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                1,
                bob.id.as_str(),
                ReportTarget::Event {
                    room_id: room.as_str().try_into().unwrap(),
                    event_id: event.as_str().try_into().unwrap(),
                },
                Some("spam"),
            ),
            (
                2,
                bob.id.as_str(),
                ReportTarget::Room {
                    room_id: room.as_str().try_into().unwrap(),
                },
                Some("spam room"),
            ),
            (
                3,
                bob.id.as_str(),
                ReportTarget::User {
                    user_id: alice.id.as_str().try_into().unwrap(),
                },
                Some("spammer"),
            ),
        ]
    );
    assert!(reports.iter().all(|(_, r)| r.received_ts > 0));
    drop(store);
    // IDs carry on after a restart rather than overwrite earlier reports.
    server.restart();
    assert_eq!(
        report(
            &server,
            &bob,
            &report_room_path(&room),
            json!({ "reason": "again" })
        ),
        (200, json!({}))
    );
    server.kill_9();
    let store = Store::open(&server.data_dir().join("db"), false).unwrap();
    let ids: Vec<u64> = store.reports().unwrap().iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[test]
fn reports_are_rate_limited_per_reporter() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let path = report_user_path(&alice.id);
    for i in 0..10 {
        assert_eq!(
            report(
                &server,
                &bob,
                &path,
                json!({ "reason": format!("report {i}") })
            ),
            (200, json!({})),
            "report {i}"
        );
    }
    let body = assert_error(
        report(&server, &bob, &path, json!({ "reason": "one too many" })),
        429,
        "M_LIMIT_EXCEEDED",
    );
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0, "{body}");
    // The limit comes before any lookup, so it slows probing for rooms as well.
    let missing = format!("!missing:{}", server.server_name());
    assert_error(
        report(
            &server,
            &bob,
            &report_room_path(&missing),
            json!({ "reason": "x" }),
        ),
        429,
        "M_LIMIT_EXCEEDED",
    );
    assert_eq!(
        report(&server, &carol, &path, json!({ "reason": "me too" })),
        (200, json!({}))
    );
}
