//! Forks: three Hearth servers in one room; two of them change the same state at the
//! same moment (each before it hears of the other's change), so the room's DAG forks.
//! Every server resolves the fork the same way (state resolution v2 over its forward
//! extremities), and `/state` ends identical on all three, with the outcome the spec's
//! resolution gives (a ban raced against the banner's demotion does not stand).

use std::sync::Barrier;
use std::time::Duration;

use serde_json::{Value, json};

use crate::federation_rooms::{eventually, join_via};
use crate::federation_support::federating_server_with_env;
use crate::harness::TestServer;
use crate::room_support::{
    User, create_room, enc, get_event, get_state, membership, put_state, send_text, set_power, user,
};

const FAST_RETRY: (&str, &str) = ("HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS", "2");

/// The room's state as `user` reads it: (type, state_key, event_id), sorted.
pub(crate) fn state_of(
    server: &TestServer,
    user: &User,
    room: &str,
) -> Vec<(String, String, String)> {
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/state", enc(room)),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    let mut state: Vec<(String, String, String)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["state_key"].as_str().unwrap().to_owned(),
                e["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    state.sort();
    state
}

/// Whether `user` on `server` sees `event_id` (an accepted event of the room).
fn knows(server: &TestServer, user: &User, room: &str, event_id: &str) -> bool {
    get_event(server, user, room, event_id).0 == 200
}

/// Waits until the three servers show the same state, and returns it.
#[track_caller]
fn converged(servers: &[(&TestServer, &User)], room: &str) -> Vec<(String, String, String)> {
    eventually(
        Duration::from_secs(60),
        "the same state on all three",
        || {
            let first = state_of(servers[0].0, servers[0].1, room);
            servers[1..]
                .iter()
                .all(|(s, u)| state_of(s, u, room) == first)
                .then_some(first)
        },
    )
}

fn id_of(state: &[(String, String, String)], t: &str, k: &str) -> Option<String> {
    state
        .iter()
        .find(|(ty, sk, _)| ty == t && sk == k)
        .map(|(_, _, id)| id.clone())
}

/// Runs `left` and `right` at the same moment on two threads.
fn at_once<L, R>(left: L, right: R) -> (Value, Value)
where
    L: FnOnce() -> Value + Send,
    R: FnOnce() -> Value + Send,
{
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let l = s.spawn(|| {
            barrier.wait();
            left()
        });
        let r = s.spawn(|| {
            barrier.wait();
            right()
        });
        (l.join().unwrap(), r.join().unwrap())
    })
}

/// Mallory's membership everywhere after Bob's ban (made on B) raced Alice's demotion
/// of Bob (made on A): `join` when the two forked the room, `ban` when the ban reached A
/// first.
fn ban_outcome(
    a: &TestServer,
    alice: &User,
    b: &TestServer,
    bob: &User,
    room: &str,
    mallory: &str,
) -> &'static str {
    let (_, page) = b.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            enc(room)
        ),
        Some(&bob.token),
    );
    let ban_id = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["state_key"] == mallory && e["content"]["membership"] == "ban")
        .and_then(|e| e["event_id"].as_str())
        .expect("Bob's ban on B")
        .to_owned();
    let forked = !knows(a, alice, room, &ban_id);
    eprintln!("the ban and the demotion forked the room: {forked}");
    if forked { "join" } else { "ban" }
}

#[track_caller]
fn ok(answer: (u16, Value)) -> Value {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1
}

#[test]
fn concurrent_state_changes_on_two_servers_converge_on_all_three() {
    let env = [FAST_RETRY];
    let a = federating_server_with_env(&env);
    let b = federating_server_with_env(&env);
    let c = federating_server_with_env(&env);
    let alice = user(&a, "alice");
    let mallory = user(&a, "mallory");
    let bob = user(&b, "bob");
    let carol = user(&c, "carol");
    let room = create_room(
        &a,
        &alice,
        json!({"preset": "public_chat", "room_version": "12", "topic": "start"}),
    );
    ok(join_via(&a, &mallory, &room, &a.server_name()));
    ok(join_via(&b, &bob, &room, &a.server_name()));
    ok(join_via(&c, &carol, &room, &a.server_name()));
    set_power(&a, &alice, &room, &bob.id, 100);
    let servers = [(&a, &alice), (&b, &bob), (&c, &carol)];
    eventually(Duration::from_secs(30), "Bob's power on B", || {
        let (_, levels) = get_state(&b, &bob, &room, "m.room.power_levels", "");
        (levels["users"][&bob.id] == 100).then_some(())
    });
    converged(&servers, &room);

    // Topic against topic, sent on A and B at the same moment.
    let (from_a, from_b) = at_once(
        || {
            ok(put_state(
                &a,
                &alice,
                &room,
                "m.room.topic",
                "",
                &json!({"topic": "from A"}),
            ))
        },
        || {
            ok(put_state(
                &b,
                &bob,
                &room,
                "m.room.topic",
                "",
                &json!({"topic": "from B"}),
            ))
        },
    );
    let (topic_a, topic_b) = (
        from_a["event_id"].as_str().unwrap().to_owned(),
        from_b["event_id"].as_str().unwrap().to_owned(),
    );
    eventually(
        Duration::from_secs(30),
        "both topics on every server",
        || {
            servers
                .iter()
                .all(|(s, u)| knows(s, u, &room, &topic_a) && knows(s, u, &room, &topic_b))
                .then_some(())
        },
    );
    let state = converged(&servers, &room);
    let topic = id_of(&state, "m.room.topic", "").unwrap();
    assert!(topic == topic_a || topic == topic_b, "{state:?}");

    // Join rules against join rules.
    let (rules_a, rules_b) = at_once(
        || {
            ok(put_state(
                &a,
                &alice,
                &room,
                "m.room.join_rules",
                "",
                &json!({"join_rule": "invite"}),
            ))
        },
        || {
            ok(put_state(
                &b,
                &bob,
                &room,
                "m.room.join_rules",
                "",
                &json!({"join_rule": "knock"}),
            ))
        },
    );
    let rules: Vec<String> = [rules_a, rules_b]
        .iter()
        .map(|v| v["event_id"].as_str().unwrap().to_owned())
        .collect();
    eventually(
        Duration::from_secs(30),
        "both join rules everywhere",
        || {
            servers
                .iter()
                .all(|(s, u)| rules.iter().all(|id| knows(s, u, &room, id)))
                .then_some(())
        },
    );
    let state = converged(&servers, &room);
    assert!(rules.contains(&id_of(&state, "m.room.join_rules", "").unwrap()));

    // A ban by Bob raced against Alice taking Bob's power away. When the two fork the
    // room (each made before its server heard of the other), Alice (the creator)
    // outranks Bob, so resolution orders her change first and Bob's ban then fails:
    // Mallory stays, on every server. (Should the ban reach A before Alice's change is
    // made, there is no fork: the ban stands, and A shows it.)
    let (_, mut levels) = get_state(&a, &alice, &room, "m.room.power_levels", "");
    levels["users"][&bob.id] = json!(0);
    let (demoted, banned) = at_once(
        || {
            ok(put_state(
                &a,
                &alice,
                &room,
                "m.room.power_levels",
                "",
                &levels,
            ))
        },
        || {
            let (status, body) = membership(
                &b,
                &bob,
                &room,
                "ban",
                json!({"user_id": mallory.id, "reason": "race"}),
            );
            json!({ "status": status, "body": body })
        },
    );
    // Should Alice's change reach B before Bob's ban is made, B refuses the ban: there
    // is no fork and no ban anywhere.
    let ban_made = match banned["status"].as_u64() {
        Some(200) => true,
        Some(403) if banned["body"]["errcode"] == "M_FORBIDDEN" => false,
        _ => panic!("the ban answered {banned}"),
    };
    let demoted = demoted["event_id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the demotion everywhere", || {
        servers
            .iter()
            .all(|(s, u)| knows(s, u, &room, &demoted))
            .then_some(())
    });
    // The servers that accepted both sides have two forward extremities; a message from
    // each server makes an event that names them, so the resolution travels.
    for (i, (s, u)) in servers.iter().enumerate() {
        send_text(
            s,
            u,
            &room,
            &format!("after{i}"),
            &format!("after the race {i}"),
        );
    }
    let state = converged(&servers, &room);
    assert_eq!(
        id_of(&state, "m.room.power_levels", "").as_deref(),
        Some(demoted.as_str()),
        "{state:?}"
    );
    // Bob's ban, as B made it (`/ban` answers no event ID).
    let expected = if ban_made {
        ban_outcome(&a, &alice, &b, &bob, &room, &mallory.id)
    } else {
        "join"
    };
    for (s, u) in servers {
        let (_, levels) = get_state(s, u, &room, "m.room.power_levels", "");
        assert_eq!(levels["users"][&bob.id], 0, "{levels}");
        let (_, member) = get_state(s, u, &room, "m.room.member", &mallory.id);
        assert_eq!(member["membership"], expected, "{member}");
    }

    // The room still works from every side, and stays converged.
    for (i, (s, u)) in servers.iter().enumerate() {
        send_text(s, u, &room, &format!("end{i}"), &format!("the end {i}"));
    }
    converged(&servers, &room);
}
