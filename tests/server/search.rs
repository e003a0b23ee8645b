//! `POST /search`: finding messages, membership limits, ordering, paging, filters,
//! redaction, context and the index's upkeep, at scale too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;

const SEARCH: &str = "/_matrix/client/v3/search";

fn search_raw(
    server: &TestServer,
    user: &User,
    criteria: Value,
    next_batch: Option<&str>,
) -> (u16, Value) {
    let path = match next_batch {
        Some(token) => format!("{SEARCH}?next_batch={}", enc(token)),
        None => SEARCH.to_owned(),
    };
    server.post(
        &path,
        Some(&user.token),
        &json!({ "search_categories": { "room_events": criteria } }),
    )
}

/// The `room_events` part of a successful search.
#[track_caller]
fn search(server: &TestServer, user: &User, criteria: Value) -> Value {
    search_page(server, user, criteria, None)
}

#[track_caller]
fn search_page(
    server: &TestServer,
    user: &User,
    criteria: Value,
    next_batch: Option<&str>,
) -> Value {
    let (status, body) = search_raw(server, user, criteria, next_batch);
    assert_eq!(status, 200, "{body}");
    body["search_categories"]["room_events"].clone()
}

fn result_bodies(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["result"]["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn result_ids(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"]["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A room that cannot collide with another room the same user creates in the same
/// millisecond: room IDs of v12 rooms are the hash of the create event, which is otherwise
/// identical for identical requests.
#[track_caller]
fn distinct_room(server: &TestServer, user: &User, mut body: Value, n: usize) -> String {
    body["creation_content"] = json!({ "org.hearth.test.room": n });
    create_room(server, user, body)
}

/// A deterministic stream of chat-like words: 1,000 made-up words with a skewed
/// (Zipf-like) frequency, so some words are common and most are rare.
struct Words {
    state: u64,
    vocabulary: Vec<String>,
}

impl Words {
    fn new(seed: u64) -> Self {
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ba", "de", "fo", "gu", "hi", "jo",
            "pe", "zu",
        ];
        let vocabulary = (0..1000)
            .map(|i: usize| {
                let mut word = String::new();
                let mut n = i + 16;
                while n > 0 {
                    word.push_str(SYLLABLES[n % 16]);
                    n /= 16;
                }
                word
            })
            .collect();
        Self {
            state: seed,
            vocabulary,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn sentence(&mut self) -> String {
        let len = 4 + (self.next_u64() % 12) as usize;
        (0..len)
            .map(|_| {
                // Squaring a uniform number skews the choice towards the first words.
                let u = (self.next_u64() % 1000) as f64 / 1000.0;
                self.vocabulary[(u * u * 1000.0) as usize].clone()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Sends `count` messages spread over `rooms` from parallel threads (`per_room` for each
/// room, since sends to one room take turns), and returns their bodies and how long it
/// took.
fn fill(
    server: &Arc<TestServer>,
    sender: &Arc<User>,
    rooms: &[String],
    count: usize,
    per_room: usize,
) -> (Vec<String>, f64) {
    let started = Instant::now();
    let workers = rooms.len() * per_room;
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let server = server.clone();
            let sender = sender.clone();
            let room = rooms[w % rooms.len()].clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut words = Words::new(w as u64 + 1);
                let mut bodies = Vec::new();
                for k in (w..count).step_by(workers) {
                    let body = words.sentence();
                    let url = server.url(&send_path(&room, "m.room.message", &format!("fill{k}")));
                    let response = client
                        .put(url)
                        .bearer_auth(&sender.token)
                        .json(&json!({ "msgtype": "m.text", "body": body }))
                        .send()
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    bodies.push(body);
                }
                bodies
            })
        })
        .collect();
    let bodies = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    (bodies, started.elapsed().as_secs_f64())
}

/// 100,000 messages by default (about 50 s in a debug build on two busy cores);
/// `SEARCH_TEST_MESSAGES` sets another number for quicker runs. The timings printed are
/// for information: `spec/performance.md` has release-build figures.
#[test]
fn stays_fast_with_many_messages() {
    let count: usize = std::env::var("SEARCH_TEST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let server = Arc::new(TestServer::start());
    let alice = Arc::new(user(&server, "alice"));
    let rooms: Vec<String> = (0..4)
        .map(|i| distinct_room(&server, &alice, json!({}), i))
        .collect();
    let (bodies, secs) = fill(&server, &alice, &rooms, count, 2);
    eprintln!(
        "sent {count} messages in {secs:.1} s ({:.0}/s)",
        count as f64 / secs
    );
    let needle = send_text(
        &server,
        &alice,
        &rooms[2],
        "needle",
        "where is the xylophonist tonight",
    );

    // The median of five runs, in milliseconds, with the answer.
    let timed = |criteria: Value| {
        let mut times = Vec::new();
        let mut found = Value::Null;
        for _ in 0..5 {
            let started = Instant::now();
            found = search(&server, &alice, criteria.clone());
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        (found, times[2])
    };
    let (found, ms) = timed(json!({ "search_term": "xylophonist" }));
    eprintln!("rare word: {ms:.1} ms");
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(result_ids(&found), [needle.as_str()]);
    let (found, ms) = timed(json!({ "search_term": "XYLOPHONIST tonight" }));
    eprintln!("rare and common word: {ms:.1} ms");
    assert_eq!(result_ids(&found), [needle]);

    // The generator is deterministic, so the exact number of matches is known. The last
    // word of a query also matches longer words it begins.
    let has = |body: &str, word: &str, prefix: bool| {
        body.split(' ')
            .any(|w| w == word || (prefix && w.starts_with(word)))
    };
    let common = bodies.iter().filter(|b| has(b, "kalo", true)).count();
    let both = bodies
        .iter()
        .filter(|b| has(b, "kalo", false) && has(b, "mine", true))
        .count();
    for order in ["recent", "rank"] {
        let (found, ms) = timed(json!({ "search_term": "kalo", "order_by": order }));
        eprintln!("common word, {order}: {ms:.1} ms, count {}", found["count"]);
        assert_eq!(found["count"], common);
        assert_eq!(found["results"].as_array().unwrap().len(), 10);
        let (found, ms) = timed(json!({ "search_term": "kalo mine", "order_by": order }));
        eprintln!(
            "two common words, {order}: {ms:.1} ms, count {}",
            found["count"]
        );
        assert_eq!(found["count"], both);
        for body in result_bodies(&found) {
            assert!(
                has(&body, "kalo", false) && has(&body, "mine", true),
                "{body}"
            );
        }
    }
}

fn redact(server: &TestServer, user: &User, room: &str, event_id: &str) {
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/r{}",
            enc(room),
            enc(event_id),
            enc(event_id)
        ),
        Some(&user.token),
        &json!({ "reason": "spam" }),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn finds_a_message_only_for_members_with_highlights() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "name": "Mars watchers" }));
    let other = create_room(&server, &bob, json!({}));
    for i in 0..30 {
        send_text(
            &server,
            &alice,
            &room,
            &format!("t{i}"),
            &format!("chatter number {i}"),
        );
    }
    let wanted = send_text(&server, &alice, &room, "w", "The Martians have landed!");
    send_text(&server, &bob, &other, "b", "Martians in Bob's room");

    let found = search(&server, &alice, json!({ "search_term": "martians LANDED" }));
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(result_ids(&found), [wanted.as_str()]);
    let result = &found["results"][0];
    assert_eq!(result["result"]["room_id"], room.as_str());
    assert_eq!(result["result"]["sender"], alice.id.as_str());
    assert!(result["rank"].as_f64().unwrap() > 0.0, "{result}");
    assert_eq!(found["highlights"], json!(["landed", "martians"]));
    assert!(found.get("next_batch").is_none(), "{found}");

    // The last word also matches the words it begins; the others must match whole.
    let found = search(&server, &alice, json!({ "search_term": "have mart" }));
    assert_eq!(result_ids(&found), [wanted.as_str()]);
    assert_eq!(found["highlights"], json!(["have", "martians"]));
    let found = search(&server, &alice, json!({ "search_term": "mart have" }));
    assert_eq!(found["count"], 0, "{found}");

    // Bob is not in Alice's room: he finds only his own room's message.
    let found = search(&server, &bob, json!({ "search_term": "martians" }));
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["results"][0]["result"]["room_id"], other.as_str());
    // A user in no room finds nothing; a term with no words finds nothing.
    let carol = user(&server, "carol");
    let found = search(&server, &carol, json!({ "search_term": "martians" }));
    assert_eq!(found["count"], 0);
    assert_eq!(found["results"], json!([]));
    let found = search(&server, &alice, json!({ "search_term": " ?! " }));
    assert_eq!(found["count"], 0);

    // Room names are searched too, under their own key.
    let found = search(&server, &alice, json!({ "search_term": "watchers" }));
    assert_eq!(found["results"][0]["result"]["type"], "m.room.name");
    let found = search(
        &server,
        &alice,
        json!({ "search_term": "watchers", "keys": ["content.body"] }),
    );
    assert_eq!(found["count"], 0, "{found}");
}

#[test]
fn former_members_find_only_what_came_before_they_left() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let before_join = send_text(&server, &alice, &room, "a", "pancake recipe one");
    join(&server, &bob, &room);
    let while_in = send_text(&server, &alice, &room, "b", "pancake recipe two");
    let (status, body) = membership(&server, &bob, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    send_text(&server, &alice, &room, "c", "pancake recipe three, secret");

    let found = search(
        &server,
        &bob,
        json!({ "search_term": "pancake", "order_by": "recent" }),
    );
    assert_eq!(result_ids(&found), [while_in.clone(), before_join.clone()]);
    assert_eq!(found["count"], 2);
    let found = search(&server, &bob, json!({ "search_term": "secret" }));
    assert_eq!(found["count"], 0, "{found}");
    // Context stops at the departure too.
    let found = search(
        &server,
        &bob,
        json!({ "search_term": "two", "event_context": { "after_limit": 10 } }),
    );
    let after = found["results"][0]["context"]["events_after"]
        .as_array()
        .unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["type"], "m.room.member");

    // A rejected invite gives no view of the room.
    let carol = user(&server, "carol");
    invite(&server, &alice, &room, &carol);
    let (status, body) = membership(&server, &carol, &room, "leave", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        search(&server, &carol, json!({ "search_term": "pancake" }))["count"],
        0
    );

    // Forgetting the room ends it.
    let (status, body) = membership(&server, &bob, &room, "forget", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        search(&server, &bob, json!({ "search_term": "pancake" }))["count"],
        0
    );

    // Rejoining gives the whole history again.
    join(&server, &bob, &room);
    assert_eq!(
        search(&server, &bob, json!({ "search_term": "pancake" }))["count"],
        3
    );
}

#[test]
fn history_visibility_hides_what_came_before_joining() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(
        &server,
        &alice,
        json!({
            "preset": "public_chat",
            "initial_state": [{
                "type": "m.room.history_visibility", "state_key": "",
                "content": { "history_visibility": "joined" }
            }],
        }),
    );
    send_text(&server, &alice, &room, "a", "hedgehog hibernation plans");
    join(&server, &bob, &room);
    let seen = send_text(&server, &alice, &room, "b", "hedgehog breakfast");

    let found = search(&server, &bob, json!({ "search_term": "hedgehog" }));
    assert_eq!(result_ids(&found), [seen.as_str()]);
    // Neither the count nor the highlights tell of the hidden message.
    assert_eq!(found["count"], 1);
    let found = search(&server, &bob, json!({ "search_term": "hib" }));
    assert_eq!(found["count"], 0, "{found}");
    assert_eq!(found["highlights"], json!([]));
    // Context does not reach into it either.
    let found = search(
        &server,
        &bob,
        json!({ "search_term": "breakfast", "event_context": { "before_limit": 10 } }),
    );
    let before = found["results"][0]["context"]["events_before"]
        .as_array()
        .unwrap();
    assert!(
        before.iter().all(|e| e["type"] != "m.room.message"),
        "{before:?}"
    );
    // Alice, there from the start, finds both.
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "hedgehog" }))["count"],
        2
    );
}

#[test]
fn pages_follow_next_batch_without_duplicates() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let rooms = [
        distinct_room(&server, &alice, json!({}), 0),
        distinct_room(&server, &alice, json!({}), 1),
    ];
    let mut expected = HashSet::new();
    for i in 0..25 {
        // Varying lengths and repeats give varied ranks, with ties as well.
        let body = format!("{} comet {}", "comet ".repeat(i % 3), "x ".repeat(i % 5));
        expected.insert(send_text(
            &server,
            &alice,
            &rooms[i % 2],
            &format!("t{i}"),
            &body,
        ));
    }
    for order in ["recent", "rank"] {
        let criteria = json!({
            "search_term": "comet", "order_by": order, "filter": { "limit": 10 }
        });
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        let mut late = None;
        let mut last_rank = f64::INFINITY;
        loop {
            let page = search_page(&server, &alice, criteria.clone(), token.as_deref());
            assert_eq!(page["count"], expected.len(), "{page}");
            pages += 1;
            for result in page["results"].as_array().unwrap() {
                let rank = result["rank"].as_f64().unwrap();
                if order == "rank" {
                    assert!(
                        rank <= last_rank,
                        "ranks must not rise: {rank} after {last_rank}"
                    );
                }
                last_rank = rank;
            }
            seen.extend(result_ids(&page));
            if pages == 1 {
                // A message arriving between pages belongs to a later search, not this one,
                // even though it would rank first.
                late = Some(send_text(
                    &server,
                    &alice,
                    &rooms[0],
                    &format!("late-{order}"),
                    "comet comet",
                ));
            }
            match page.get("next_batch").and_then(Value::as_str) {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, expected.len().div_ceil(10), "{order}");
        let unique: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "duplicates in {order}: {seen:?}");
        assert_eq!(unique, expected, "{order}");
        // The next search sees the late message.
        expected.insert(late.unwrap());
        assert_eq!(search(&server, &alice, criteria)["count"], expected.len());
    }
    // A token from another order, or not from us, is refused.
    let page = search(
        &server,
        &alice,
        json!({ "search_term": "comet", "order_by": "recent" }),
    );
    let token = page["next_batch"].as_str().unwrap();
    assert_error(
        search_raw(
            &server,
            &alice,
            json!({ "search_term": "comet", "order_by": "rank" }),
            Some(token),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        search_raw(
            &server,
            &alice,
            json!({ "search_term": "comet" }),
            Some("garbage!"),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn rank_prefers_dense_matches_and_recent_prefers_new_ones() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let dense = send_text(&server, &alice, &room, "a", "rocket rocket rocket");
    let long = send_text(
        &server,
        &alice,
        &room,
        "b",
        "yesterday we talked for hours about the weather the news and a rocket",
    );
    let newest = send_text(
        &server,
        &alice,
        &room,
        "c",
        "a rocket launched today from the old pad",
    );

    let rank = search(&server, &alice, json!({ "search_term": "rocket" }));
    assert_eq!(
        result_ids(&rank),
        [dense.clone(), newest.clone(), long.clone()]
    );
    let ranks: Vec<f64> = rank["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rank"].as_f64().unwrap())
        .collect();
    assert!(ranks[0] > ranks[1] && ranks[1] > ranks[2], "{ranks:?}");
    let recent = search(
        &server,
        &alice,
        json!({ "search_term": "rocket", "order_by": "recent" }),
    );
    assert_eq!(result_ids(&recent), [newest, long, dense]);
}

#[test]
fn filters_narrow_by_room_sender_type_and_limit() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let first = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "topic": "Kiwi growers" }),
    );
    let second = distinct_room(&server, &alice, json!({ "preset": "public_chat" }), 2);
    join(&server, &bob, &first);
    join(&server, &bob, &second);
    let a1 = send_text(&server, &alice, &first, "a1", "kiwi one");
    let b1 = send_text(&server, &bob, &first, "b1", "kiwi two");
    let a2 = send_text(&server, &alice, &second, "a2", "kiwi three");
    let (status, body) = try_send(
        &server,
        &bob,
        &second,
        "img",
        &json!({ "msgtype": "m.image", "body": "kiwi picture", "url": "mxc://x/y" }),
    );
    assert_eq!(status, 200, "{body}");
    let picture = body["event_id"].as_str().unwrap().to_owned();

    let ids = |filter: Value| {
        let found = search(
            &server,
            &alice,
            json!({ "search_term": "kiwi", "order_by": "recent", "filter": filter }),
        );
        let ids = result_ids(&found);
        // The count is exact for everything but contains_url, which only the events tell.
        if filter.get("contains_url").is_none() {
            assert_eq!(found["count"], ids.len(), "{found}");
        }
        ids
    };
    assert_eq!(ids(json!({ "rooms": [first] })).len(), 3); // the topic too
    assert_eq!(
        ids(json!({ "rooms": [first], "types": ["m.room.message"] })),
        [b1.clone(), a1.clone()]
    );
    assert_eq!(
        ids(json!({ "not_rooms": [first] })),
        [picture.clone(), a2.clone()]
    );
    assert_eq!(
        ids(json!({ "senders": [bob.id] })),
        [picture.clone(), b1.clone()]
    );
    assert_eq!(
        ids(json!({ "not_senders": [bob.id], "types": ["m.room.message"] })),
        [a2.clone(), a1.clone()]
    );
    assert_eq!(ids(json!({ "contains_url": true })), [picture.as_str()]);
    assert_eq!(ids(json!({ "types": ["m.room.topic"] })).len(), 1);
    let limited = search(
        &server,
        &alice,
        json!({ "search_term": "kiwi", "order_by": "recent", "filter": { "limit": 2 } }),
    );
    assert_eq!(result_ids(&limited), [picture, a2]);
    assert_eq!(limited["count"], 5);
    assert!(limited["next_batch"].is_string());
    // A filter naming a room the user is not in finds nothing there.
    let carol = user(&server, "carol");
    let private = create_room(&server, &carol, json!({}));
    send_text(&server, &carol, &private, "c", "kiwi secret");
    assert!(ids(json!({ "rooms": [private] })).is_empty());
}

#[test]
fn redacted_messages_are_not_found() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let kept = send_text(&server, &alice, &room, "a", "banana bread");
    let gone = send_text(&server, &alice, &room, "b", "banana split with a secret");
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "banana" }))["count"],
        2
    );
    redact(&server, &alice, &room, &gone);
    let found = search(&server, &alice, json!({ "search_term": "banana" }));
    assert_eq!(result_ids(&found), [kept]);
    assert_eq!(found["count"], 1);
    assert_eq!(
        search(&server, &alice, json!({ "search_term": "secret" }))["count"],
        0
    );
}

#[test]
fn context_profiles_state_and_groups() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "name": "Garden" }),
    );
    let other = distinct_room(&server, &alice, json!({}), 2);
    join(&server, &bob, &room);
    let (status, body) = put_state(
        &server,
        &bob,
        &room,
        "m.room.member",
        &bob.id,
        &json!({ "membership": "join", "displayname": "Bob the Builder" }),
    );
    assert_eq!(status, 200, "{body}");
    let b1 = send_text(&server, &bob, &room, "b1", "before one");
    let b2 = send_text(&server, &alice, &room, "b2", "before two");
    let hit = send_text(&server, &bob, &room, "hit", "the tulip bulbs are here");
    let a1 = send_text(&server, &alice, &room, "a1", "after one");
    let elsewhere = send_text(&server, &alice, &other, "o", "tulip elsewhere");

    let found = search(
        &server,
        &alice,
        json!({
            "search_term": "tulip",
            "order_by": "recent",
            "filter": { "rooms": [room] },
            "event_context": { "before_limit": 2, "after_limit": 3, "include_profile": true },
            "include_state": true,
        }),
    );
    let context = &found["results"][0]["context"];
    let ids = |events: &Value| -> Vec<String> {
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Before: newest first; after: oldest first.
    assert_eq!(ids(&context["events_before"]), [b2, b1]);
    assert_eq!(ids(&context["events_after"]), [a1]);
    assert!(
        context["start"].is_string() && context["end"].is_string(),
        "{context}"
    );
    assert_eq!(
        context["profile_info"][&bob.id],
        json!({ "displayname": "Bob the Builder" })
    );
    assert!(context["profile_info"][&alice.id].is_object(), "{context}");
    let state = found["state"][&room].as_array().unwrap();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Garden"),
        "{state:?}"
    );
    assert!(found["state"].get(&other).is_none());

    // Groups partition the page by room and by sender.
    let found = search(
        &server,
        &alice,
        json!({
            "search_term": "tulip",
            "order_by": "recent",
            "filter": { "limit": 1 },
            "groupings": { "group_by": [{ "key": "room_id" }, { "key": "sender" }] },
        }),
    );
    assert_eq!(result_ids(&found), [elsewhere.as_str()]);
    let by_room = &found["groups"]["room_id"];
    assert_eq!(by_room[&other]["results"], json!([elsewhere]));
    assert_eq!(by_room[&other]["order"], 1);
    // Alice's room has no more results; the next page of her messages has none either,
    // but the overall search goes on to Bob's message.
    assert!(by_room[&other].get("next_batch").is_none(), "{by_room}");
    let by_sender = &found["groups"]["sender"][&alice.id];
    assert!(by_sender.get("next_batch").is_none(), "{by_sender}");
    let next = found["next_batch"].as_str().unwrap();
    let rest = search_page(
        &server,
        &alice,
        json!({
            "search_term": "tulip", "order_by": "recent", "filter": { "limit": 1 },
            "groupings": { "group_by": [{ "key": "room_id" }] },
        }),
        Some(next),
    );
    assert_eq!(result_ids(&rest), [hit.as_str()]);
    assert_eq!(rest["groups"]["room_id"][&room]["results"], json!([hit]));
}

#[test]
fn a_group_token_continues_within_its_group() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let rooms = [
        distinct_room(&server, &alice, json!({}), 0),
        distinct_room(&server, &alice, json!({}), 1),
    ];
    let mut in_first = Vec::new();
    for i in 0..6 {
        let id = send_text(&server, &alice, &rooms[i % 2], &format!("t{i}"), "walrus");
        if i % 2 == 0 {
            in_first.push(id);
        }
    }
    in_first.reverse();
    let criteria = json!({
        "search_term": "walrus", "order_by": "recent", "filter": { "limit": 2 },
        "groupings": { "group_by": [{ "key": "room_id" }] },
    });
    let page = search(&server, &alice, criteria.clone());
    let group = &page["groups"]["room_id"][&rooms[0]];
    assert_eq!(group["results"], json!([in_first[0]]));
    let token = group["next_batch"].as_str().unwrap().to_owned();
    let rest = search_page(&server, &alice, criteria, Some(&token));
    assert_eq!(result_ids(&rest), in_first[1..]);
    assert!(rest.get("next_batch").is_none(), "{rest}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    assert_error(
        server.post(SEARCH, None, &json!({})),
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        server.post(SEARCH, Some(&alice.token), &json!({})),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        server.post(
            SEARCH,
            Some(&alice.token),
            &json!({ "search_categories": { "people": {} } }),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        search_raw(&server, &alice, json!({}), None),
        400,
        "M_MISSING_PARAM",
    );
    for criteria in [
        json!({ "search_term": 5 }),
        json!({ "search_term": "x", "keys": ["content.url"] }),
        json!({ "search_term": "x", "order_by": "oldest" }),
        json!({ "search_term": "x", "filter": { "limit": 0 } }),
        json!({ "search_term": "x", "filter": { "senders": ["nobody"] } }),
        json!({ "search_term": "x", "event_context": { "before_limit": -1 } }),
        json!({ "search_term": "x", "include_state": "yes" }),
        json!({ "search_term": "x", "groupings": { "group_by": [{ "key": "type" }] } }),
    ] {
        assert_error(
            search_raw(&server, &alice, criteria, None),
            400,
            "M_BAD_JSON",
        );
    }
    let many: Vec<String> = (0..65).map(|i| format!("w{i}")).collect();
    assert_error(
        search_raw(
            &server,
            &alice,
            json!({ "search_term": many.join(" ") }),
            None,
        ),
        400,
        "M_INVALID_PARAM",
    );
    let (status, body) = send_raw(&server, "POST", SEARCH, &alice.token, "{not json");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errcode"], "M_NOT_JSON");
}

#[test]
fn the_index_survives_kill_9_and_is_rebuilt_when_missing() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let kept = send_text(&server, &alice, &room, "a", "durable giraffe");
    let gone = send_text(&server, &alice, &room, "b", "giraffe to redact");
    redact(&server, &alice, &room, &gone);
    server.kill_9();
    server.restart();
    let found = search(&server, &alice, json!({ "search_term": "giraffe" }));
    assert_eq!(result_ids(&found), [kept.as_str()]);

    // A store whose index is missing (written before the index existed) is indexed at
    // start-up; redacted events stay out.
    assert!(server.terminate().success());
    {
        let store = hearth::store::Store::open(&server.data_dir().join("db"), false).unwrap();
        let mut batch = store.batch();
        batch.clear_search_index();
        batch.delete(hearth::store::Cf::Meta, b"search_index_version");
        store.write(batch).unwrap();
    }
    server.restart();
    let found = search(&server, &alice, json!({ "search_term": "giraffe" }));
    assert_eq!(result_ids(&found), [kept]);
    assert_eq!(found["count"], 1);
}
