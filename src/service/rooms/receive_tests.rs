//! The receive pipeline against a real store: events made by a second server's key, as
//! another homeserver would send them.

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::receive::{PduError, Received};
use super::{CreateRoom, EventTemplate, Preset};
use crate::config::Config;
use crate::event::{NewPdu, PublicKeyMap, RoomVersion, SigningKey, build_signed_pdu};
use crate::service::Services;
use crate::service::keys::ServerKeys;
use crate::store::{EventStatus, Store};

const REMOTE: &str = "remote.test";

struct Fixture {
    services: Services,
    remote: SigningKey,
    keys: PublicKeyMap,
    alice: OwnedUserId,
    room_id: OwnedRoomId,
    version: RoomVersion,
    _dir: tempfile::TempDir,
}

fn user(id: &str) -> OwnedUserId {
    UserId::parse(id).unwrap()
}

async fn fixture(version: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        server_name: "hearth.test".into(),
        data: dir.path().to_owned(),
        sync_writes: false,
        ..Config::default()
    };
    let store = Store::open(&dir.path().join("db"), false).unwrap();
    let keys = ServerKeys::load_or_create(dir.path(), "hearth.test").unwrap();
    let services = Services::new(config, store, keys).unwrap();
    let alice = user("@alice:hearth.test");
    let room_id = services
        .create_room(
            &alice,
            CreateRoom {
                preset: Some(Preset::PublicChat),
                room_version: Some(version.to_owned()),
                ..CreateRoom::default()
            },
        )
        .await
        .unwrap();
    let (remote, _) = SigningKey::generate(REMOTE, "ed25519:r1").unwrap();
    let mut keys = PublicKeyMap::new();
    remote.add_to(&mut keys);
    let version = services
        .store
        .room(room_id.as_str())
        .unwrap()
        .unwrap()
        .version;
    Fixture {
        services,
        remote,
        keys,
        alice,
        room_id,
        version,
        _dir: dir,
    }
}

impl Fixture {
    fn extremities(&self) -> Vec<OwnedEventId> {
        self.room().extremities
    }

    fn room(&self) -> crate::store::RoomRecord {
        self.services
            .store
            .room(self.room_id.as_str())
            .unwrap()
            .unwrap()
    }

    fn state_id(&self, t: &str, k: &str) -> Option<OwnedEventId> {
        self.services
            .store
            .current_state_id(self.room_id.as_str(), t, k)
            .unwrap()
    }

    /// The auth events a correct server would pick from the current state.
    fn auth_events(
        &self,
        t: &str,
        sender: &str,
        state_key: Option<&str>,
        content: &Value,
    ) -> Vec<OwnedEventId> {
        let types = crate::event::auth_types_for_event(
            self.version,
            t,
            &user(sender),
            state_key,
            content.as_object().unwrap(),
        );
        let mut ids: Vec<OwnedEventId> = types
            .iter()
            .filter_map(|(t, k)| self.state_id(t, k))
            .collect();
        ids.sort();
        ids
    }

    /// A remote event on the given prev events, signed with `key`.
    #[allow(clippy::too_many_arguments)]
    fn remote_event_with(
        &self,
        key: &SigningKey,
        sender: &str,
        t: &str,
        state_key: Option<&str>,
        content: Value,
        prev_events: Vec<OwnedEventId>,
        auth_events: Vec<OwnedEventId>,
    ) -> Value {
        let depth = prev_events
            .iter()
            .filter_map(|id| self.services.store.event(id.as_str()).unwrap())
            .filter_map(|r| r.pdu.get("depth").and_then(Value::as_u64))
            .max()
            .unwrap_or(0)
            + 1;
        let new = NewPdu {
            room_id: Some(self.room_id.clone()),
            sender: user(sender),
            event_type: t.to_owned(),
            state_key: state_key.map(str::to_owned),
            content,
            prev_events,
            auth_events,
            depth,
            origin_server_ts: crate::service::now_ms(),
            redacts: None,
        };
        build_signed_pdu(&new, self.version, key).unwrap().1
    }

    /// A remote event on the room's current extremities and state, as a correct server
    /// would make it.
    fn remote_event(
        &self,
        sender: &str,
        t: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Value {
        let auth = self.auth_events(t, sender, state_key, &content);
        self.remote_event_with(
            &self.remote,
            sender,
            t,
            state_key,
            content,
            self.extremities(),
            auth,
        )
    }

    async fn receive(&self, json: Value) -> Result<(OwnedEventId, Received), PduError> {
        self.services
            .receive_pdu(&self.room_id, json, &self.keys)
            .await
    }

    async fn join_bob(&self) -> OwnedEventId {
        let bob = format!("@bob:{REMOTE}");
        let join = self.remote_event(
            &bob,
            "m.room.member",
            Some(&bob),
            json!({"membership": "join"}),
        );
        let (id, outcome) = self.receive(join).await.unwrap();
        assert_eq!(outcome, Received::Accepted);
        id
    }

    fn status(&self, id: &OwnedEventId) -> EventStatus {
        self.services
            .store
            .event(id.as_str())
            .unwrap()
            .unwrap()
            .status
    }

    fn in_timeline(&self, id: &OwnedEventId) -> bool {
        self.services
            .store
            .room_events_after(self.room_id.as_str(), 0, 1000)
            .unwrap()
            .iter()
            .any(|(_, e)| e == id)
    }

    async fn local(&self, template: EventTemplate) -> OwnedEventId {
        self.services
            .append_event(&self.room_id, &self.alice, template, None)
            .await
            .unwrap()
    }
}

fn room(f: &Fixture) -> &RoomId {
    &f.room_id
}

#[tokio::test]
async fn a_remote_join_and_message_are_accepted_into_the_timeline_and_state() {
    for version in ["10", "11", "12"] {
        let f = fixture(version).await;
        let join = f.join_bob().await;
        assert_eq!(
            f.state_id("m.room.member", "@bob:remote.test"),
            Some(join.clone())
        );
        assert_eq!(
            f.services
                .membership(room(&f), &user("@bob:remote.test"))
                .unwrap()
                .as_deref(),
            Some("join")
        );
        assert_eq!(f.extremities(), vec![join.clone()]);
        let message = f.remote_event(
            "@bob:remote.test",
            "m.room.message",
            None,
            json!({"body": "hi", "msgtype": "m.text"}),
        );
        let (id, outcome) = f.receive(message.clone()).await.unwrap();
        assert_eq!(outcome, Received::Accepted, "room v{version}");
        assert!(f.in_timeline(&id));
        // The same event again changes nothing.
        let (again, outcome) = f.receive(message).await.unwrap();
        assert_eq!(again, id);
        assert_eq!(outcome, Received::AlreadyKnown(EventStatus::Accepted));
        // A local event follows the remote one.
        let reply = f
            .local(EventTemplate::message(
                "m.room.message",
                json!({"body": "hello bob", "msgtype": "m.text"}),
            ))
            .await;
        let record = f.services.store.event(reply.as_str()).unwrap().unwrap();
        assert_eq!(record.pdu["prev_events"], json!([id]));
    }
}

#[tokio::test]
async fn a_message_from_a_non_member_is_rejected_and_never_shown() {
    let f = fixture("11").await;
    // Auth events chosen as if the sender were a member: there is no member event.
    let message = f.remote_event(
        "@eve:remote.test",
        "m.room.message",
        None,
        json!({"body": "spam"}),
    );
    let (id, outcome) = f.receive(message).await.unwrap();
    assert!(
        matches!(outcome, Received::Rejected(ref why) if why.contains("auth events")),
        "{outcome:?}"
    );
    assert_eq!(f.status(&id), EventStatus::Rejected);
    assert!(!f.in_timeline(&id));
    assert!(!f.extremities().contains(&id));

    // A member without power who raises his own power level is rejected; an event
    // citing that rejected event as an auth event is rejected too.
    f.join_bob().await;
    let bob = "@bob:remote.test";
    let mut levels = f
        .services
        .store
        .event(f.state_id("m.room.power_levels", "").unwrap().as_str())
        .unwrap()
        .unwrap()
        .pdu["content"]
        .clone();
    levels["users"][bob] = json!(100);
    let grab = f.remote_event(bob, "m.room.power_levels", Some(""), levels);
    let (grab_id, outcome) = f.receive(grab).await.unwrap();
    assert!(matches!(outcome, Received::Rejected(_)), "{outcome:?}");
    assert_ne!(f.state_id("m.room.power_levels", ""), Some(grab_id.clone()));
    let mut auth: Vec<OwnedEventId> = f
        .auth_events("m.room.message", bob, None, &json!({}))
        .into_iter()
        .filter(|id| Some(id) != f.state_id("m.room.power_levels", "").as_ref())
        .collect();
    auth.push(grab_id);
    auth.sort();
    let message = f.remote_event_with(
        &f.remote,
        bob,
        "m.room.message",
        None,
        json!({"body": "x"}),
        f.extremities(),
        auth,
    );
    let (id, outcome) = f.receive(message).await.unwrap();
    assert!(
        matches!(outcome, Received::Rejected(ref why) if why.contains("auth events")),
        "{outcome:?}"
    );
    assert!(!f.in_timeline(&id));
}

#[tokio::test]
async fn a_forged_signature_is_refused_and_nothing_is_stored() {
    let f = fixture("11").await;
    f.join_bob().await;
    let (impostor, _) = SigningKey::generate(REMOTE, "ed25519:r1").unwrap();
    let auth = f.auth_events("m.room.message", "@bob:remote.test", None, &json!({}));
    let forged = f.remote_event_with(
        &impostor,
        "@bob:remote.test",
        "m.room.message",
        None,
        json!({"body": "forged"}),
        f.extremities(),
        auth,
    );
    let err = f.receive(forged.clone()).await.unwrap_err();
    assert!(matches!(err, PduError::BadSignature(_)), "{err}");
    let id = crate::event::event_id(&forged, f.version).unwrap();
    assert!(f.services.store.event(id.as_str()).unwrap().is_none());

    // A server whose key is unknown is refused the same way.
    let (stranger, _) = SigningKey::generate("stranger.test", "ed25519:s").unwrap();
    let auth = f.auth_events("m.room.message", "@sam:stranger.test", None, &json!({}));
    let unknown = f.remote_event_with(
        &stranger,
        "@sam:stranger.test",
        "m.room.message",
        None,
        json!({"body": "?"}),
        f.extremities(),
        auth,
    );
    assert!(matches!(
        f.receive(unknown).await.unwrap_err(),
        PduError::BadSignature(_)
    ));
}

#[tokio::test]
async fn content_changed_after_signing_is_stored_redacted() {
    let f = fixture("11").await;
    f.join_bob().await;
    let mut message = f.remote_event(
        "@bob:remote.test",
        "m.room.message",
        None,
        json!({"body": "original", "msgtype": "m.text"}),
    );
    message["content"]["body"] = json!("tampered");
    let (id, outcome) = f.receive(message).await.unwrap();
    assert_eq!(outcome, Received::Accepted);
    let stored = f.services.store.event(id.as_str()).unwrap().unwrap();
    assert_eq!(stored.pdu["content"], json!({}));
}

#[tokio::test]
async fn an_event_on_unknown_prev_events_is_not_stored() {
    let f = fixture("11").await;
    f.join_bob().await;
    let ghost: OwnedEventId = "$doesnotexistdoesnotexistdoesnotexist00000"
        .try_into()
        .unwrap();
    let auth = f.auth_events("m.room.message", "@bob:remote.test", None, &json!({}));
    let message = f.remote_event_with(
        &f.remote,
        "@bob:remote.test",
        "m.room.message",
        None,
        json!({"body": "?"}),
        vec![ghost.clone()],
        auth,
    );
    let err = f.receive(message.clone()).await.unwrap_err();
    assert!(
        matches!(err, PduError::MissingPrevEvents(ref ids) if ids == &vec![ghost]),
        "{err}"
    );
    let id = crate::event::event_id(&message, f.version).unwrap();
    assert!(f.services.store.event(id.as_str()).unwrap().is_none());
}

#[tokio::test]
async fn an_event_that_the_current_state_forbids_is_soft_failed() {
    let f = fixture("11").await;
    f.join_bob().await;
    let before_ban = f.extremities();
    // Alice bans bob; bob, not having seen the ban, sends on the old extremity.
    let ban = f
        .local(EventTemplate::state(
            "m.room.member",
            "@bob:remote.test",
            json!({"membership": "ban"}),
        ))
        .await;
    let auth: Vec<OwnedEventId> = {
        let record = f
            .services
            .store
            .event(before_ban[0].as_str())
            .unwrap()
            .unwrap();
        let types = crate::event::auth_types_for_event(
            f.version,
            "m.room.message",
            &user("@bob:remote.test"),
            None,
            &serde_json::Map::new(),
        );
        let wanted: Vec<(&str, &str)> = types
            .iter()
            .map(|(t, k)| (t.as_str(), k.as_str()))
            .collect();
        let mut ids: Vec<OwnedEventId> = f
            .services
            .state_entries_at(record.state_after, &wanted)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        ids.sort();
        ids
    };
    let message = f.remote_event_with(
        &f.remote,
        "@bob:remote.test",
        "m.room.message",
        None,
        json!({"body": "I was never banned"}),
        before_ban,
        auth,
    );
    let (id, outcome) = f.receive(message).await.unwrap();
    assert!(matches!(outcome, Received::SoftFailed(_)), "{outcome:?}");
    assert_eq!(f.status(&id), EventStatus::SoftFailed);
    assert!(!f.in_timeline(&id));
    assert_eq!(f.extremities(), vec![ban]);
}

#[tokio::test]
async fn concurrent_state_from_two_servers_is_resolved_and_merged_by_the_next_event() {
    let f = fixture("11").await;
    f.join_bob().await;
    let fork_point = f.extremities();
    // Alice gives bob no power; bob (power 0 in a public room) may still set nothing
    // but can send messages. A local topic change and a remote message on the same
    // prev event make two extremities.
    let topic = f
        .local(EventTemplate::state(
            "m.room.topic",
            "",
            json!({"topic": "local topic"}),
        ))
        .await;
    let auth = {
        let record = f
            .services
            .store
            .event(fork_point[0].as_str())
            .unwrap()
            .unwrap();
        let types = crate::event::auth_types_for_event(
            f.version,
            "m.room.member",
            &user("@bob:remote.test"),
            Some("@bob:remote.test"),
            json!({"membership": "join"}).as_object().unwrap(),
        );
        let wanted: Vec<(&str, &str)> = types
            .iter()
            .map(|(t, k)| (t.as_str(), k.as_str()))
            .collect();
        let mut ids: Vec<OwnedEventId> = f
            .services
            .state_entries_at(record.state_after, &wanted)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        ids.sort();
        ids
    };
    // Bob changes his display name on the fork: a state event on the other branch.
    let rename = f.remote_event_with(
        &f.remote,
        "@bob:remote.test",
        "m.room.member",
        Some("@bob:remote.test"),
        json!({"membership": "join", "displayname": "Bob B."}),
        fork_point,
        auth,
    );
    let (rename_id, outcome) = f.receive(rename).await.unwrap();
    assert_eq!(outcome, Received::Accepted);
    let mut extremities = f.extremities();
    extremities.sort();
    let mut expected = vec![topic.clone(), rename_id.clone()];
    expected.sort();
    assert_eq!(extremities, expected);
    // The current state holds both branches' changes.
    assert_eq!(f.state_id("m.room.topic", ""), Some(topic.clone()));
    assert_eq!(
        f.state_id("m.room.member", "@bob:remote.test"),
        Some(rename_id.clone())
    );
    // Bob goes on with messages on his branch: the extremities' states are still those
    // the current state was resolved from, so nothing is resolved again.
    let resolutions = || {
        f.services
            .rooms
            .resolutions
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let resolved_before = resolutions();
    let mut branch_tip = rename_id.clone();
    for n in 0..3 {
        let content = json!({"msgtype": "m.text", "body": format!("on the branch {n}")});
        let auth = f.auth_events("m.room.message", "@bob:remote.test", None, &content);
        let message = f.remote_event_with(
            &f.remote,
            "@bob:remote.test",
            "m.room.message",
            None,
            content,
            vec![branch_tip.clone()],
            auth,
        );
        let (id, outcome) = f.receive(message).await.unwrap();
        assert_eq!(outcome, Received::Accepted);
        branch_tip = id;
    }
    assert_eq!(resolutions(), resolved_before, "no resolution per message");
    let mut extremities = f.extremities();
    extremities.sort();
    let mut expected = vec![topic.clone(), branch_tip.clone()];
    expected.sort();
    assert_eq!(extremities, expected);
    assert_eq!(f.state_id("m.room.topic", ""), Some(topic.clone()));
    assert_eq!(
        f.state_id("m.room.member", "@bob:remote.test"),
        Some(rename_id.clone())
    );
    // A state change on the branch is resolved with the other side again.
    let content = json!({"membership": "join", "displayname": "Bob C."});
    let auth = f.auth_events(
        "m.room.member",
        "@bob:remote.test",
        Some("@bob:remote.test"),
        &content,
    );
    let rename_again = f.remote_event_with(
        &f.remote,
        "@bob:remote.test",
        "m.room.member",
        Some("@bob:remote.test"),
        content,
        vec![branch_tip.clone()],
        auth,
    );
    let (rename_again_id, outcome) = f.receive(rename_again).await.unwrap();
    assert_eq!(outcome, Received::Accepted);
    assert_eq!(resolutions(), resolved_before + 1);
    assert_eq!(f.state_id("m.room.topic", ""), Some(topic.clone()));
    assert_eq!(
        f.state_id("m.room.member", "@bob:remote.test"),
        Some(rename_again_id.clone())
    );
    let mut expected = [topic.clone(), rename_again_id.clone()];
    expected.sort();
    // The next local event follows both and leaves one extremity.
    let next = f
        .local(EventTemplate::message(
            "m.room.message",
            json!({"body": "merged"}),
        ))
        .await;
    let record = f.services.store.event(next.as_str()).unwrap().unwrap();
    let mut prevs: Vec<String> = serde_json::from_value(record.pdu["prev_events"].clone()).unwrap();
    prevs.sort();
    assert_eq!(
        prevs,
        expected.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(f.extremities(), vec![next]);
}

#[tokio::test]
async fn auth_chain_events_are_stored_as_outliers_outside_the_timeline() {
    let f = fixture("11").await;
    let bob = "@bob:remote.test";
    let content = json!({"membership": "join"});
    let auth = f.auth_events("m.room.member", bob, Some(bob), &content);
    let join = f.remote_event_with(
        &f.remote,
        bob,
        "m.room.member",
        Some(bob),
        content,
        f.extremities(),
        auth,
    );
    let (id, outcome) = f
        .services
        .store_outlier(&f.room_id, f.version, join.clone(), &f.keys, None)
        .unwrap();
    assert_eq!(outcome, Received::Outlier);
    assert_eq!(f.status(&id), EventStatus::Outlier);
    assert!(!f.in_timeline(&id));
    assert_eq!(f.state_id("m.room.member", bob), None);
    // Receiving it later as a timeline event de-outliers it.
    let (again, outcome) = f.receive(join).await.unwrap();
    assert_eq!(again, id);
    assert_eq!(outcome, Received::Accepted);
    assert!(f.in_timeline(&id));
}

#[tokio::test]
async fn an_event_its_auth_events_allow_but_the_state_before_it_forbids_is_rejected() {
    let f = fixture("11").await;
    f.join_bob().await;
    let bob = "@bob:remote.test";
    // Bob's auth events still name his join, but the event follows his kick.
    let auth = f.auth_events("m.room.message", bob, None, &json!({}));
    f.local(EventTemplate::state(
        "m.room.member",
        bob,
        json!({"membership": "leave"}),
    ))
    .await;
    let message = f.remote_event_with(
        &f.remote,
        bob,
        "m.room.message",
        None,
        json!({"body": "still here?"}),
        f.extremities(),
        auth,
    );
    let (id, outcome) = f.receive(message).await.unwrap();
    assert!(
        matches!(outcome, Received::Rejected(ref why) if why.contains("state before")),
        "{outcome:?}"
    );
    assert_eq!(f.status(&id), EventStatus::Rejected);
    assert!(!f.in_timeline(&id));
}

#[tokio::test]
async fn outliers_stored_together_reject_what_builds_on_a_rejected_auth_event() {
    let f = fixture("11").await;
    f.local(EventTemplate::state(
        "m.room.join_rules",
        "",
        json!({"join_rule": "invite"}),
    ))
    .await;
    let bob = "@bob:remote.test";
    // Bob joins an invite-only room without an invite: rejected.
    let join = f.remote_event(
        bob,
        "m.room.member",
        Some(bob),
        json!({"membership": "join"}),
    );
    let join_id = crate::event::event_id(&join, f.version).unwrap();
    let mut auth = f.auth_events("m.room.message", bob, None, &json!({}));
    auth.push(join_id.clone());
    // Enough events after it for the signatures to be checked in parallel; each names
    // the rejected join, whose membership would otherwise let Bob speak.
    let mut events = vec![crate::service::rooms::OutlierInput {
        json: join,
        keys: f.keys.clone(),
    }];
    for i in 0..80 {
        let message = f.remote_event_with(
            &f.remote,
            bob,
            "m.room.message",
            None,
            json!({"body": format!("{i}")}),
            vec![join_id.clone()],
            auth.clone(),
        );
        events.push(crate::service::rooms::OutlierInput {
            json: message,
            keys: f.keys.clone(),
        });
    }
    let ids: Vec<OwnedEventId> = events
        .iter()
        .map(|e| crate::event::event_id(&e.json, f.version).unwrap())
        .collect();
    let rejected = f
        .services
        .store_outliers(&f.room_id, f.version, events, None)
        .unwrap();
    assert_eq!(rejected.len(), ids.len());
    for id in &ids {
        assert_eq!(f.status(id), EventStatus::Rejected);
        assert!(!f.in_timeline(id));
    }
    // A badly signed event fails the whole call.
    let mut forged = f.remote_event(bob, "m.room.topic", Some(""), json!({"topic": "x"}));
    forged["content"]["topic"] = json!("changed after signing");
    forged["signatures"][REMOTE] = json!({"ed25519:r1": "AAAA"});
    let outcome = f.services.store_outliers(
        &f.room_id,
        f.version,
        vec![crate::service::rooms::OutlierInput {
            json: forged,
            keys: f.keys.clone(),
        }],
        None,
    );
    assert!(matches!(outcome, Err((_, PduError::BadSignature(_)))));
}
