//! Gaps: a server that was down longer than the other side kept its events for it gets
//! newer events whose `prev_events` it lacks; it fetches the missing events
//! (`/get_missing_events`) and the state before them (`/state_ids`), ends with the same
//! room state as the server that never went down, and fetches the rest of the gap when
//! a reader pages back through it (`/backfill`).

use std::time::Duration;

use serde_json::json;

use crate::federation_forks::state_of;
use crate::federation_rooms::{eventually, join_via};
use crate::federation_support::federating_server_with_env;
use crate::harness::TestServer;
use crate::room_support::{User, create_room, enc, put_state, send_text, user};

/// The newest `limit` message bodies `user` reads, oldest first.
fn latest_bodies(server: &TestServer, user: &User, room: &str, limit: usize) -> Vec<String> {
    let (_, body) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}",
            enc(room)
        ),
        Some(&user.token),
    );
    let mut out: Vec<String> = body["chunk"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    out.reverse();
    out
}

#[test]
fn a_server_that_missed_more_than_was_kept_for_it_fills_the_gap_and_agrees_on_the_state() {
    // A keeps at most 5 events for a server that is down, and retries within a second.
    let a = federating_server_with_env(&[
        ("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "1"),
        ("HEARTH_FEDERATION__MAX_QUEUED_PDUS", "5"),
    ]);
    let mut b = federating_server_with_env(&[("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "1")]);
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12", "name": "Before"}),
    );
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    send_text(&a, &alice, &room, "warm", "before the outage");
    eventually(Duration::from_secs(20), "the first message on B", || {
        latest_bodies(&b, &bob, &room, 5)
            .contains(&"before the outage".to_owned())
            .then_some(())
    });

    let (_, synced) = b.get("/_matrix/client/v3/sync?timeout=0", Some(&bob.token));
    let since = synced["next_batch"].as_str().unwrap().to_owned();
    assert!(b.terminate().success());
    // The state changes early, among the events A will not keep for B.
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(send_text(
            &a,
            &alice,
            &room,
            &format!("m{i}"),
            &format!("while B was down {i}"),
        ));
    }
    let (status, body) = put_state(
        &a,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({"name": "Renamed while B was down"}),
    );
    assert_eq!(status, 200, "{body}");
    for i in 20..40 {
        send_text(
            &a,
            &alice,
            &room,
            &format!("m{i}"),
            &format!("while B was down {i}"),
        );
    }
    // A's next failed attempt trims its queue for B to the newest 5.
    std::thread::sleep(Duration::from_secs(3));
    b.restart();

    let expected: Vec<String> = (35..40).map(|i| format!("while B was down {i}")).collect();
    eventually(Duration::from_secs(60), "the newest messages on B", || {
        let got = latest_bodies(&b, &bob, &room, 5);
        (got == expected).then_some(())
    });
    // The gap was filled, and the state is A's, rename included, though B never got
    // the rename pushed.
    let got = latest_bodies(&b, &bob, &room, 15);
    let wanted: Vec<String> = (25..40).map(|i| format!("while B was down {i}")).collect();
    assert_eq!(got, wanted);
    // Bob's client learns that events may be missing before what it got.
    let (_, synced) = b.get(
        &format!("/_matrix/client/v3/sync?timeout=0&since={}", enc(&since)),
        Some(&bob.token),
    );
    assert_eq!(
        synced["rooms"]["join"][&room]["timeline"]["limited"], true,
        "{synced}"
    );
    // Older ones were never pushed to B: the gap path (`/get_missing_events`, in
    // rounds), not the queue, brought all of them, before any paging back.
    let event_on_b = |event_id: &str| {
        b.get(
            &format!(
                "/_matrix/client/v3/rooms/{}/event/{}",
                enc(&room),
                enc(event_id)
            ),
            Some(&bob.token),
        )
        .0
    };
    assert_eq!(event_on_b(&ids[10]), 200);
    // Paging back through the whole room fetches the rest of the gap (`/backfill`).
    let all = latest_bodies(&b, &bob, &room, 1000);
    let mut everything = vec!["before the outage".to_owned()];
    everything.extend((0..40).map(|i| format!("while B was down {i}")));
    assert_eq!(all, everything);
    assert_eq!(event_on_b(&ids[10]), 200);
    eventually(Duration::from_secs(20), "the same state on both", || {
        (state_of(&a, &alice, &room) == state_of(&b, &bob, &room)).then_some(())
    });
    let (_, name) = b.get(
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
        Some(&bob.token),
    );
    assert_eq!(name["name"], "Renamed while B was down");

    // The room goes on both ways.
    send_text(&b, &bob, &room, "back", "B is back");
    eventually(Duration::from_secs(20), "B's message on A", || {
        latest_bodies(&a, &alice, &room, 3)
            .contains(&"B is back".to_owned())
            .then_some(())
    });
}

/// A room of A that B joined, 60 messages both have, then `gap` messages (a rename at
/// the 100th) and "after the gap" that A sent while B was down, keeping one event for
/// B; B back up and holding the newest message. Returns B's sync token from before.
fn room_with_a_gap_on_b(gap: usize) -> (TestServer, TestServer, User, User, String, String) {
    // A keeps a single event for a server that is down: B must fetch the rest.
    let a = federating_server_with_env(&[
        ("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "1"),
        ("HEARTH_FEDERATION__MAX_QUEUED_PDUS", "1"),
    ]);
    let mut b = federating_server_with_env(&[("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "1")]);
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12", "name": "Before"}),
    );
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    // History before the gap, longer than what backfill examines at the room's start.
    for i in 0..60 {
        send_text(&a, &alice, &room, &format!("p{i}"), &format!("before {i}"));
    }
    eventually(Duration::from_secs(60), "the history before on B", || {
        latest_bodies(&b, &bob, &room, 1)
            .contains(&"before 59".to_owned())
            .then_some(())
    });
    let (_, synced) = b.get("/_matrix/client/v3/sync?timeout=0", Some(&bob.token));
    let since = synced["next_batch"].as_str().unwrap().to_owned();

    assert!(b.terminate().success());
    for i in 0..gap {
        if i == 100 {
            let (status, body) = put_state(
                &a,
                &alice,
                &room,
                "m.room.name",
                "",
                &json!({"name": "Renamed in the gap"}),
            );
            assert_eq!(status, 200, "{body}");
        }
        send_text(&a, &alice, &room, &format!("g{i}"), &format!("gap {i}"));
    }
    send_text(&a, &alice, &room, "last", "after the gap");
    // A's next failed attempt trims its queue for B to the newest event.
    std::thread::sleep(Duration::from_secs(3));
    b.restart();

    eventually(Duration::from_secs(120), "the newest message on B", || {
        latest_bodies(&b, &bob, &room, 1)
            .contains(&"after the gap".to_owned())
            .then_some(())
    });
    (a, b, alice, bob, room, since)
}

fn whole_history(gap: usize) -> Vec<String> {
    let mut everything: Vec<String> = (0..60).map(|i| format!("before {i}")).collect();
    everything.extend((0..gap).map(|i| format!("gap {i}")));
    everything.push("after the gap".to_owned());
    everything
}

#[test]
fn a_gap_longer_than_missing_events_fetch_is_filled_when_paging_back_through_it() {
    // /get_missing_events brings at most 300 events: the oldest 50 of the gap are still
    // missing, with 60 older events here, until a reader pages back into the gap.
    let (_a, b, _alice, bob, room, _) = room_with_a_gap_on_b(350);
    assert_eq!(latest_bodies(&b, &bob, &room, 1000), whole_history(350));
}

#[test]
fn a_server_that_missed_200_events_mid_room_fills_the_whole_gap() {
    let (a, b, alice, bob, room, since) = room_with_a_gap_on_b(200);
    // Every event of the gap is there, in order.
    assert_eq!(latest_bodies(&b, &bob, &room, 1000), whole_history(200));
    eventually(Duration::from_secs(20), "the same state on both", || {
        (state_of(&a, &alice, &room) == state_of(&b, &bob, &room)).then_some(())
    });
    let (_, name) = b.get(
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
        Some(&bob.token),
    );
    assert_eq!(name["name"], "Renamed in the gap");
    // Bob's client gets a limited timeline, and the rename in its state.
    let (_, synced) = b.get(
        &format!("/_matrix/client/v3/sync?timeout=0&since={}", enc(&since)),
        Some(&bob.token),
    );
    let joined = &synced["rooms"]["join"][&room];
    assert_eq!(joined["timeline"]["limited"], true, "{synced}");
    let renamed_in_sync = joined["state"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            joined["timeline"]["events"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Renamed in the gap");
    assert!(renamed_in_sync, "{synced}");
}
