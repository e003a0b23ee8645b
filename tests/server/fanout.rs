//! Changes that reach many rooms (a new display name or avatar, leaving every room on
//! deactivation) are carried out from a durable intent: killed part-way with `SIGKILL`,
//! the server finishes them after a restart, with no duplicate member events.
//!
//! `FANOUT_CRASH_ROUNDS=<n>` runs the kill test for `n` rounds instead of the short form's
//! 12 (not `HEARTH_*`: the server would read that as one of its settings).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admin_support::{self, admin};
use crate::harness::TestServer;
use crate::profile::{profile_of, profile_path};
use crate::room_support::*;

/// How long the rooms may take to catch up after a restart before the test fails. Not a
/// speed requirement: a bound so that a fan-out never finished fails the test.
const CATCH_UP: Duration = Duration::from_secs(30);

pub fn random_below(bound: u64) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(bound);
    hasher.finish() % bound
}

/// The user's member event content in every room, as its state has it.
fn member_contents(
    server: &TestServer,
    viewer: &User,
    rooms: &[String],
    user_id: &str,
) -> Vec<Value> {
    rooms
        .iter()
        .map(|room| {
            let (status, body) = get_state(server, viewer, room, "m.room.member", user_id);
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect()
}

/// Whether a member event content carries the profile's display name and avatar.
fn carries(content: &Value, profile: &Value) -> bool {
    content["membership"] == "join"
        && content.get("displayname") == profile.get("displayname")
        && content.get("avatar_url") == profile.get("avatar_url")
}

/// Waits until every room's member event for `user` carries their profile; answers how
/// long that took. Fails with the rooms still behind after [`CATCH_UP`].
#[track_caller]
fn wait_until_rooms_match(server: &TestServer, user: &User, rooms: &[String]) -> Duration {
    let started = Instant::now();
    loop {
        let profile = profile_of(server, &user.id);
        let contents = member_contents(server, user, rooms, &user.id);
        if contents.iter().all(|c| carries(c, &profile)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CATCH_UP,
            "rooms still behind the profile {profile}: {contents:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every member event about `user_id` in the room's history, oldest first.
fn member_history(server: &TestServer, viewer: &User, room: &str, user_id: &str) -> Vec<Value> {
    let mut events: Vec<Value> = room_history(server, viewer, room, |_| false)
        .into_iter()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == user_id)
        .collect();
    events.reverse();
    events
}

/// No member event repeats the one before it: a room the fan-out had already reached got
/// no second event.
#[track_caller]
fn assert_no_duplicate_member_events(server: &TestServer, user: &User, rooms: &[String]) -> usize {
    let mut total = 0;
    for room in rooms {
        let history = member_history(server, user, room, &user.id);
        for pair in history.windows(2) {
            assert_ne!(
                pair[0]["content"], pair[1]["content"],
                "a duplicate member event in {room}: {} then {}",
                pair[0]["event_id"], pair[1]["event_id"]
            );
        }
        total += history.len();
    }
    total
}

/// Alice, joined to `count` rooms of her own.
fn alice_in_rooms(server: &TestServer, count: usize) -> (User, Vec<String>) {
    let alice = user(server, "alice");
    let rooms = (0..count)
        .map(|_| create_room(server, &alice, json!({ "preset": "private_chat" })))
        .collect();
    (alice, rooms)
}

#[test]
fn two_rapid_profile_changes_end_with_the_last_one_everywhere() {
    let server = Arc::new(TestServer::start());
    let (alice, rooms) = alice_in_rooms(&server, 6);
    for round in 0..3 {
        // Several changes in flight at once: whichever is written last is the profile,
        // and every room must end with it, not with one overtaken on the way.
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let server = server.clone();
                let token = alice.token.clone();
                let path = profile_path(&alice.id, Some("displayname"));
                std::thread::spawn(move || {
                    let name = format!("Alice {round}.{i}");
                    let (status, body) =
                        server.send("PUT", &path, Some(&token), &json!({ "displayname": name }));
                    assert_eq!(status, 200, "{body}");
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        // Every change has answered: the rooms must have the last one already.
        let profile = profile_of(&server, &alice.id);
        assert!(
            profile["displayname"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Alice {round}.")),
            "{profile}"
        );
        for content in member_contents(&server, &alice, &rooms, &alice.id) {
            assert!(carries(&content, &profile), "{content} vs {profile}");
        }
    }
    // Two changes one right after the other, the second answered last.
    let path = profile_path(&alice.id, Some("displayname"));
    for name in ["First", "Second"] {
        let (status, body) = server.send(
            "PUT",
            &path,
            Some(&alice.token),
            &json!({ "displayname": name }),
        );
        assert_eq!(status, 200, "{body}");
    }
    for content in member_contents(&server, &alice, &rooms, &alice.id) {
        assert_eq!(content["displayname"], "Second", "{content}");
    }
    assert_no_duplicate_member_events(&server, &alice, &rooms);
}

#[test]
fn profile_changes_killed_at_random_moments_reach_every_room_after_a_restart() {
    let rounds: usize = std::env::var("FANOUT_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    // At info, the server logs the fan-outs it resumes at start-up.
    let mut server =
        TestServer::start_with_env(&[("RUST_LOG", "warn,hearth::service::fanout=info")]);
    let (alice, rooms) = alice_in_rooms(&server, 6);
    let avatar_base = format!("mxc://{}/avatar", server.server_name());
    let mut catch_up = Vec::new();
    let mut cut = 0;
    let mut answered_total = 0;
    let mut resumed = 0;
    for round in 0..rounds {
        // Changes one after another until the server dies under them.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let name_url = server.url(&profile_path(&alice.id, Some("displayname")));
            let avatar_url = server.url(&profile_path(&alice.id, Some("avatar_url")));
            let token = alice.token.clone();
            let avatar_base = avatar_base.clone();
            std::thread::spawn(move || {
                let mut answered = 0;
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let request = if i % 3 == 2 {
                        client
                            .put(&avatar_url)
                            .json(&json!({ "avatar_url": format!("{avatar_base}_{round}_{i}") }))
                    } else {
                        client
                            .put(&name_url)
                            .json(&json!({ "displayname": format!("Alice {round}.{i}") }))
                    };
                    match request.bearer_auth(&token).send() {
                        Ok(response) => {
                            assert_eq!(response.status().as_u16(), 200);
                            answered += 1;
                        }
                        // The kill: the request was cut part-way.
                        Err(_) => break,
                    }
                }
                answered
            })
        };
        std::thread::sleep(Duration::from_millis(20 + random_below(400)));
        // SIGKILL; the logs are those of the run before, which resumed what the kill
        // before it cut short.
        if server
            .stop_and_logs()
            .contains("resuming fan-outs left unfinished")
        {
            resumed += 1;
        }
        stop.store(true, Ordering::SeqCst);
        let answered = writer.join().unwrap();
        server.restart();
        let profile = profile_of(&server, &alice.id);
        let behind = member_contents(&server, &alice, &rooms, &alice.id)
            .iter()
            .filter(|c| !carries(c, &profile))
            .count();
        if behind > 0 {
            cut += 1;
        }
        catch_up.push(wait_until_rooms_match(&server, &alice, &rooms));
        answered_total += answered;
    }
    if server
        .stop_and_logs()
        .contains("resuming fan-outs left unfinished")
    {
        resumed += 1;
    }
    server.restart();
    let events = assert_no_duplicate_member_events(&server, &alice, &rooms);
    let slowest = catch_up.iter().max().copied().unwrap_or_default();
    println!(
        "{rounds} kills, {answered_total} changes answered; {resumed} restarts resumed a \
         fan-out cut short, {cut} still had rooms behind the profile when first read; slowest catch-up {slowest:?}; {events} member \
         events in {} rooms, none repeated",
        rooms.len()
    );
}

#[test]
fn deactivation_killed_part_way_leaves_every_room_after_a_restart() {
    let mut server = admin_support::start();
    let root = admin(&server, "root");
    let rooms: Vec<String> = (0..8)
        .map(|_| create_room(&server, &root, json!({ "preset": "public_chat" })))
        .collect();
    let mut outcomes = Vec::new();
    for round in 0..5 {
        let victim = user(&server, &format!("victim{round}"));
        for room in &rooms {
            join(&server, &victim, room);
        }
        let deactivation = {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let url = server.url(&format!(
                "/_synapse/admin/v1/deactivate/{}",
                enc(&victim.id)
            ));
            let token = root.token.clone();
            std::thread::spawn(move || {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .map(|r| r.status().as_u16())
            })
        };
        std::thread::sleep(Duration::from_millis(random_below(15)));
        server.kill_9();
        let answered = deactivation.join().unwrap();
        server.restart();
        let (status, shown) = server.get(
            &format!("/_synapse/admin/v2/users/{}", enc(&victim.id)),
            Some(&root.token),
        );
        assert_eq!(status, 200, "{shown}");
        let deactivated = shown["deactivated"] == true;
        outcomes.push(match (&answered, deactivated) {
            (Ok(_), _) => "answered before the kill",
            (Err(_), true) => "killed after the deactivation was written",
            (Err(_), false) => "killed before the deactivation was written",
        });
        if !deactivated {
            // Nothing happened, and no answer said otherwise.
            assert!(answered.is_err(), "{answered:?}");
            continue;
        }
        let started = Instant::now();
        loop {
            let memberships: Vec<Option<String>> = rooms
                .iter()
                .map(|room| membership_of(&server, &root, room, &victim.id))
                .collect();
            if memberships.iter().all(|m| m.as_deref() == Some("leave")) {
                break;
            }
            assert!(
                started.elapsed() < CATCH_UP,
                "{} still in rooms: {memberships:?}",
                victim.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("deactivations: {outcomes:?}");
}

#[test]
fn room_deletion_killed_part_way_finishes_after_a_restart_exactly_once() {
    let mut server = TestServer::start_with_env(&[
        ("HEARTH_REGISTRATION__SHARED_SECRET", admin_support::SECRET),
        ("RUST_LOG", "warn,hearth::service::fanout=info"),
    ]);
    let root = admin(&server, "root");
    let members: Vec<User> = (0..16)
        .map(|i| user(&server, &format!("member{i}")))
        .collect();
    let mut outcomes: Vec<&str> = Vec::new();
    for round in 0..6 {
        let room = create_room(
            &server,
            &members[0],
            json!({ "preset": "public_chat", "room_alias_name": format!("doomed{round}") }),
        );
        for member in &members[1..] {
            join(&server, member, &room);
        }
        send_text(&server, &members[1], &room, "t", "soon gone");
        let (status, body) = server.send(
            "DELETE",
            &format!("/_synapse/admin/v2/rooms/{}", enc(&room)),
            Some(&root.token),
            &json!({ "new_room_user_id": root.id, "purge": true, "message": format!("closed {round}") }),
        );
        // Answered once the deletion and its intent are written: it must survive the kill.
        assert_eq!(status, 200, "{body}");
        let delete_id = body["delete_id"].as_str().unwrap().to_owned();
        std::thread::sleep(Duration::from_millis(random_below(150)));
        server.kill_9();
        server.restart();
        let done = admin_support::wait_for_deletion(&server, &root, &delete_id);
        assert_eq!(done["status"], "complete", "{done}");
        let new_room = done["shutdown_room"]["new_room_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Every member is out of the room and in the one new room; the alias moved.
        for member in &members {
            let rooms = joined_rooms(&server, member);
            if rooms != std::slice::from_ref(&new_room) {
                panic!(
                    "{} is in {rooms:?}, not only in {new_room}; the server logged:\n{}",
                    member.id,
                    server.stop_and_logs()
                );
            }
        }
        // The admin made one new room per deletion, even when a kill cut its creation
        // short (a resumed pass finds it rather than making another).
        let admin_rooms = joined_rooms(&server, &root);
        if admin_rooms.len() != round + 1 || !admin_rooms.contains(&new_room) {
            panic!(
                "after {} deletions the admin is in {admin_rooms:?}; the server logged:\n{}",
                round + 1,
                server.stop_and_logs()
            );
        }
        let (status, resolved) = server.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc(&format!("#doomed{round}:{}", server.server_name()))
            ),
            None,
        );
        assert_eq!((status, &resolved["room_id"]), (200, &json!(new_room)));
        // One new room per deletion, one notice in it, one audit entry.
        let (_, messages) = server.get(
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                enc(&new_room)
            ),
            Some(&root.token),
        );
        let notices = messages["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .count();
        assert_eq!(notices, 1, "{messages}");
        for member in &members {
            let (status, body) = server.post(
                &format!("/_matrix/client/v3/rooms/{}/leave", enc(&new_room)),
                Some(&member.token),
                &json!({}),
            );
            assert_eq!(status, 200, "{body}");
        }
        let (_, log) = server.get(
            &format!(
                "/_hearth/admin/v1/audit?action=room.delete&target={}",
                enc(&room)
            ),
            Some(&root.token),
        );
        assert_eq!(log["total"], 1, "{log}");
        // SIGKILL again: the logs tell whether the run after the first kill had a
        // deletion to resume.
        let resumed = server
            .stop_and_logs()
            .contains("resuming fan-outs left unfinished");
        outcomes.push(if resumed {
            "killed part-way, resumed"
        } else {
            "finished before the kill"
        });
        server.restart();
    }
    let (_, root_rooms) = server.get("/_matrix/client/v3/joined_rooms", Some(&root.token));
    assert_eq!(
        root_rooms["joined_rooms"].as_array().unwrap().len(),
        6,
        "one new room per deletion: {root_rooms}"
    );
    println!("room deletions: {outcomes:?}");
}

#[test]
fn client_deactivation_leaves_every_room() {
    let server = TestServer::start();
    let (alice, rooms) = alice_in_rooms(&server, 3);
    let bob = user(&server, "bob");
    for room in &rooms {
        let (status, body) = server.post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(room)),
            Some(&alice.token),
            &json!({ "user_id": bob.id }),
        );
        assert_eq!(status, 200, "{body}");
        join(&server, &bob, room);
    }
    let path = "/_matrix/client/v3/account/deactivate";
    let (status, challenge) = server.post(path, Some(&bob.token), &json!({}));
    assert_eq!(status, 401);
    let session = challenge["session"].as_str().unwrap();
    let (status, body) = server.post(
        path,
        Some(&bob.token),
        &json!({ "auth": { "type": "m.login.password", "session": session,
                 "identifier": { "type": "m.id.user", "user": "bob" },
                 "password": crate::harness::PASSWORD } }),
    );
    assert_eq!(status, 200, "{body}");
    // Answered once every room is left.
    for room in &rooms {
        assert_eq!(
            membership_of(&server, &alice, room, &bob.id).as_deref(),
            Some("leave")
        );
    }
}
