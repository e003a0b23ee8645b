//! Outages: a server that was down long enough for the others to back off from it far
//! into the future is sent what it missed as soon as it contacts them again, once and
//! in order, without anyone doing anything. (With the backoff ceiling shortened, the
//! plain catch-up after a restart is `federation_rooms`'
//! `a_server_that_was_down_gets_every_message_once_and_in_order`.)

use std::time::{Duration, Instant};

use serde_json::json;

use crate::federation_rooms::{bodies, eventually, join_via};
use crate::federation_support::federating_server_with_env;
use crate::room_support::{create_room, send_text, user};

#[test]
fn a_server_back_from_a_long_outage_is_sent_what_it_missed_when_it_contacts_us() {
    // A backs off up to an hour (the default ceiling): after six failures its next
    // attempt for B is 32 s away.
    let a = federating_server_with_env(&[]);
    let mut b = federating_server_with_env(&[("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2")]);
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12"}),
    );
    let (status, body) = join_via(&b, &bob, &room, &a.server_name());
    assert_eq!(status, 200, "{body}");
    send_text(&a, &alice, &room, "warm", "before the outage");
    eventually(Duration::from_secs(20), "the first message on B", || {
        bodies(&b, &bob, &room)
            .contains(&"before the outage".to_owned())
            .then_some(())
    });

    assert!(b.terminate().success());
    let first_failure = Instant::now();
    let sent: Vec<String> = (0..30).map(|i| format!("while B was down {i}")).collect();
    for (i, text) in sent.iter().enumerate() {
        send_text(&a, &alice, &room, &format!("m{i}"), text);
    }
    // A's attempts fail at about 0, 1, 3, 7, 15 and 31 s; the next is due at 63 s.
    std::thread::sleep(Duration::from_secs(33).saturating_sub(first_failure.elapsed()));
    b.restart();
    let restarted = first_failure.elapsed();
    // B speaks first: its transaction wakes A's queue for it.
    send_text(&b, &bob, &room, "back", "B is back");
    let got = eventually(Duration::from_secs(20), "the missed messages on B", || {
        let got = bodies(&b, &bob, &room);
        got.contains(&sent[29]).then_some(got)
    });
    let woken_after = first_failure.elapsed();
    assert!(
        woken_after < Duration::from_secs(60),
        "delivered at {woken_after:?}, not before A's scheduled retry"
    );
    let missed: Vec<String> = got
        .into_iter()
        .filter(|b| b.starts_with("while B was down"))
        .collect();
    assert_eq!(missed, sent, "every missed message once, in order");
    eprintln!("B restarted {restarted:?} into the outage, had A's events at {woken_after:?}");
    eventually(Duration::from_secs(20), "B's message on A", || {
        bodies(&a, &alice, &room)
            .contains(&"B is back".to_owned())
            .then_some(())
    });
}
