//! Rooms of the older versions (1–9) shared by two real Hearth servers: the join, messages,
//! string power levels and redactions cross in both directions.

use std::time::Duration;

use serde_json::json;

use crate::federation_rooms::{bodies, eventually, join_via, two_servers};
use crate::room_support::{create_room, enc, get_state, put_state, send_text, user};

#[test]
fn rooms_of_versions_1_3_5_and_8_federate_both_ways() {
    let (a, b) = two_servers();
    let alice = user(&a, "alice");
    let bob = user(&b, "bob");
    for version in ["1", "3", "5", "8"] {
        let room = create_room(
            &a,
            &alice,
            json!({"preset": "public_chat", "room_version": version}),
        );
        let (status, body) = join_via(&b, &bob, &room, &a.server_name());
        assert_eq!(status, 200, "v{version} join: {body}");
        let (status, create) = get_state(&b, &bob, &room, "m.room.create", "");
        assert_eq!(status, 200, "{create}");
        assert_eq!(create["room_version"], version);

        let from_a = format!("v{version} from A");
        let from_b = format!("v{version} from B");
        send_text(&a, &alice, &room, &format!("a{version}"), &from_a);
        let original = send_text(&b, &bob, &room, &format!("b{version}"), &from_b);
        eventually(Duration::from_secs(20), "both messages on both", || {
            let on_a = bodies(&a, &alice, &room);
            let on_b = bodies(&b, &bob, &room);
            (on_a.contains(&from_b) && on_b.contains(&from_a)).then_some(())
        });

        // String power levels (v1–v9) are enforced by value on the receiving server too.
        let levels = json!({
            "users": { alice.id.clone(): "100", bob.id.clone(): " 50 " },
            "state_default": "+50",
        });
        let (status, body) = put_state(&a, &alice, &room, "m.room.power_levels", "", &levels);
        assert_eq!(status, 200, "{body}");
        eventually(Duration::from_secs(20), "the power levels on B", || {
            let (_, pl) = get_state(&b, &bob, &room, "m.room.power_levels", "");
            (pl["state_default"] == "+50").then_some(())
        });
        let topic = json!({"topic": format!("v{version} topic from B")});
        let (status, body) = put_state(&b, &bob, &room, "m.room.topic", "", &topic);
        assert_eq!(status, 200, "{body}");
        eventually(Duration::from_secs(20), "B's topic on A", || {
            let (_, t) = get_state(&a, &alice, &room, "m.room.topic", "");
            (t == topic).then_some(())
        });

        // Alice redacts Bob's message; the top-level `redacts` of v1–v10 crosses.
        let (status, body) = a.send(
            "PUT",
            &format!(
                "/_matrix/client/v3/rooms/{}/redact/{}/r{version}",
                enc(&room),
                enc(&original)
            ),
            Some(&alice.token),
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
        eventually(Duration::from_secs(20), "the redaction on B", || {
            let (status, body) = b.get(
                &format!(
                    "/_matrix/client/v3/rooms/{}/event/{}",
                    enc(&room),
                    enc(&original)
                ),
                Some(&bob.token),
            );
            (status == 200 && body["content"] == json!({})).then_some(())
        });
    }
}
