use super::*;

const ME: &str = "@me:example.org";

/// The predefined rules of spec v1.17 (`content/client-server-api/modules/push.md`), in
/// the order the spec lists them.
const SPEC_OVERRIDE: [&str; 10] = [
    ".m.rule.master",
    ".m.rule.suppress_notices",
    ".m.rule.invite_for_me",
    ".m.rule.member_event",
    ".m.rule.is_user_mention",
    ".m.rule.is_room_mention",
    ".m.rule.tombstone",
    ".m.rule.reaction",
    ".m.rule.room.server_acl",
    ".m.rule.suppress_edits",
];
const SPEC_UNDERRIDE: [&str; 5] = [
    ".m.rule.call",
    ".m.rule.encrypted_room_one_to_one",
    ".m.rule.room_one_to_one",
    ".m.rule.message",
    ".m.rule.encrypted",
];

fn ids(ruleset: &Ruleset, kind: Kind) -> Vec<&str> {
    ruleset
        .rules(kind)
        .iter()
        .map(|r| r.rule_id.as_str())
        .collect()
}

/// The rule IDs a section of the spec text defines, in order.
fn spec_text_ids(text: &str, heading: &str) -> Vec<String> {
    let section = text.split(heading).nth(1).unwrap();
    let section = section.split("\n##### ").next().unwrap();
    section
        .lines()
        .filter_map(|line| line.split("\"rule_id\": \"").nth(1))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn predefined_rules_follow_the_spec() {
    let ruleset = Ruleset::predefined(ME);
    assert_eq!(ids(&ruleset, Kind::Override), SPEC_OVERRIDE);
    assert_eq!(ids(&ruleset, Kind::Underride), SPEC_UNDERRIDE);
    for kind in [Kind::Content, Kind::Room, Kind::Sender] {
        assert!(ruleset.rules(kind).is_empty());
    }
    assert!(
        Kind::ALL
            .iter()
            .all(|&k| ruleset.rules(k).iter().all(|r| r.default))
    );
    assert!(
        !ruleset
            .get(Kind::Override, ".m.rule.master")
            .unwrap()
            .enabled
    );

    // Where the offline spec is at hand (the development machine), the lists above are
    // checked against its text too.
    let spec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/matrix-spec/content/client-server-api/modules/push.md"
    );
    if let Ok(text) = std::fs::read_to_string(spec) {
        assert_eq!(
            spec_text_ids(&text, "##### Default Override Rules"),
            SPEC_OVERRIDE
        );
        assert_eq!(
            spec_text_ids(&text, "##### Default Underride Rules"),
            SPEC_UNDERRIDE
        );
    }
}

fn context(levels: &HashMap<String, i64>) -> PushContext<'_> {
    PushContext {
        user_id: ME,
        display_name: Some("Me Myself"),
        member_count: 5,
        sender_power_level: 0,
        notification_levels: levels,
    }
}

fn single(conditions: Value) -> CompiledRules {
    let mut ruleset = Ruleset::predefined(ME);
    for kind in Kind::ALL {
        ruleset.kinds[kind.index()].clear();
    }
    let rule = Rule {
        rule_id: "test".into(),
        default: false,
        enabled: true,
        actions: vec![json!("notify")],
        conditions: Some(serde_json::from_value(conditions).unwrap()),
        pattern: None,
    };
    ruleset.put_user_rule(Kind::Override, rule, None).unwrap();
    CompiledRules::new(&ruleset)
}

fn hits(rules: &CompiledRules, event: Value, context: &PushContext<'_>) -> bool {
    rules.evaluate(&event, context).is_some()
}

#[test]
fn event_match_follows_the_spec_examples() {
    let levels = HashMap::new();
    let cx = context(&levels);
    let topic =
        single(json!([{"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}]));
    let with_topic = |topic: Value| json!({"type": "m.room.topic", "content": {"topic": topic}});
    assert!(hits(&topic, with_topic(json!("Lunch plans")), &cx));
    assert!(hits(&topic, with_topic(json!("LUNCH")), &cx));
    assert!(!hits(&topic, with_topic(json!(" lunch")), &cx));
    assert!(!hits(&topic, with_topic(json!("lunc")), &cx));
    assert!(!hits(&topic, with_topic(Value::Null), &cx));
    assert!(!hits(&topic, json!({"content": {}}), &cx));

    let body = single(json!([{"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}]));
    let with_body = |body: &str| json!({"type": "m.room.message", "content": {"body": body}});
    assert!(hits(&body, with_body("An example event."), &cx));
    assert!(hits(&body, with_body("exple"), &cx));
    assert!(hits(&body, with_body("An exciting triple-whammy"), &cx));
    assert!(!hits(&body, with_body("examples"), &cx));
    assert!(!hits(&body, with_body("counterexample"), &cx));
}

#[test]
fn property_conditions_match_exactly() {
    let levels = HashMap::new();
    let cx = context(&levels);
    let federate = single(
        json!([{"kind": "event_property_is", "key": "content.m\\.federate", "value": true}]),
    );
    let create = |value: Value| json!({"type": "m.room.create", "content": {"m.federate": value}});
    assert!(hits(&federate, create(json!(true)), &cx));
    assert!(!hits(&federate, create(json!("true")), &cx));
    assert!(!hits(&federate, create(json!(1)), &cx));

    let aliases = single(
        json!([{"kind": "event_property_contains", "key": "content.alt_aliases",
        "value": "#myroom:example.com"}]),
    );
    let with_aliases = |aliases: Value| json!({"content": {"alt_aliases": aliases}});
    assert!(hits(
        &aliases,
        with_aliases(json!(["#somewhere:example.org", "#myroom:example.com"])),
        &cx
    ));
    assert!(!hits(&aliases, with_aliases(json!([":example.com"])), &cx));
    assert!(!hits(
        &aliases,
        with_aliases(json!("#myroom:example.com")),
        &cx
    ));

    assert_eq!(split_path("a\\.b.c\\\\.d"), ["a.b", "c\\", "d"]);
    let unknown = single(json!([{"kind": "org.example.whatever"}]));
    assert!(!hits(&unknown, json!({}), &cx));
}

#[test]
fn member_count_display_name_and_permission() {
    let mut levels = HashMap::new();
    let count = |is: &str| single(json!([{"kind": "room_member_count", "is": is}]));
    let cx = context(&levels);
    for (is, expected) in [
        ("5", true),
        ("==5", true),
        ("2", false),
        ("<6", true),
        ("<5", false),
        (">4", true),
        (">5", false),
        ("<=5", true),
        (">=6", false),
        ("five", false),
    ] {
        assert_eq!(hits(&count(is), json!({}), &cx), expected, "{is}");
    }

    let name = single(json!([{"kind": "contains_display_name"}]));
    let said = |body: &str| json!({"content": {"body": body}});
    assert!(hits(&name, said("hey me myself, lunch?"), &cx));
    assert!(!hits(&name, said("hey me myselfish"), &cx));

    let permission = single(json!([{"kind": "sender_notification_permission", "key": "room"}]));
    assert!(
        !hits(&permission, json!({}), &cx),
        "default level for room is 50"
    );
    let mut powerful = context(&levels);
    powerful.sender_power_level = 50;
    assert!(hits(&permission, json!({}), &powerful));
    levels.insert("room".into(), 0);
    assert!(hits(&permission, json!({}), &context(&levels)));
}

fn outcome(ruleset: &Ruleset, event: Value, cx: &PushContext<'_>) -> Outcome {
    CompiledRules::new(ruleset)
        .evaluate(&event, cx)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn predefined_rules_decide_notify_and_highlight() {
    let levels = HashMap::new();
    let cx = context(&levels);
    let ruleset = Ruleset::predefined(ME);
    let message = |content: Value| json!({"type": "m.room.message", "room_id": "!r:x", "sender": "@you:x", "content": content});
    let plain = outcome(
        &ruleset,
        message(json!({"msgtype": "m.text", "body": "hi"})),
        &cx,
    );
    assert_eq!(
        plain,
        Outcome {
            notify: true,
            highlight: false,
            sound: None
        }
    );
    let mention =
        message(json!({"msgtype": "m.text", "body": "hi", "m.mentions": {"user_ids": [ME]}}));
    let mentioned = outcome(&ruleset, mention.clone(), &cx);
    assert!(mentioned.notify && mentioned.highlight);
    assert_eq!(mentioned.sound.as_deref(), Some("default"));
    let notice = outcome(
        &ruleset,
        message(json!({"msgtype": "m.notice", "body": "beep"})),
        &cx,
    );
    assert!(!notice.notify);
    let one_to_one = PushContext {
        member_count: 2,
        ..context(&levels)
    };
    let dm = outcome(
        &ruleset,
        message(json!({"msgtype": "m.text", "body": "hi"})),
        &one_to_one,
    );
    assert_eq!(dm.sound.as_deref(), Some("default"));
    let room_mention = message(json!({"body": "@room", "m.mentions": {"room": true}}));
    // From a sender below the `room` notification level it is an ordinary message.
    assert_eq!(
        outcome(&ruleset, room_mention.clone(), &cx),
        Outcome {
            notify: true,
            highlight: false,
            sound: None
        }
    );
    let moderator = PushContext {
        sender_power_level: 50,
        ..context(&levels)
    };
    assert!(outcome(&ruleset, room_mention, &moderator).highlight);
    let reaction = json!({"type": "m.reaction", "content": {}});
    assert!(!outcome(&ruleset, reaction, &cx).notify);

    // The master rule silences everything once enabled.
    let mut muted = ruleset.clone();
    muted
        .get_mut(Kind::Override, ".m.rule.master")
        .unwrap()
        .enabled = true;
    assert_eq!(outcome(&muted, mention.clone(), &cx), Outcome::default());

    // A room rule with no actions mutes the room, but mentions (override) still count.
    let mut room_rule = ruleset.clone();
    let rule = |id: &str| Rule {
        rule_id: id.into(),
        default: false,
        enabled: true,
        actions: vec![],
        conditions: None,
        pattern: None,
    };
    room_rule
        .put_user_rule(Kind::Room, rule("!r:x"), None)
        .unwrap();
    assert!(
        !outcome(
            &room_rule,
            message(json!({"msgtype": "m.text", "body": "hi"})),
            &cx
        )
        .notify
    );
    assert!(outcome(&room_rule, mention, &cx).highlight);

    let mut sender_rule = ruleset.clone();
    sender_rule
        .put_user_rule(Kind::Sender, rule("@you:x"), None)
        .unwrap();
    assert!(
        !outcome(
            &sender_rule,
            message(json!({"msgtype": "m.text", "body": "hi"})),
            &cx
        )
        .notify
    );

    let mut content_rule = ruleset.clone();
    let mut cake = rule("cake");
    cake.pattern = Some("cake*lie".into());
    cake.actions = vec![
        json!("notify"),
        json!({"set_tweak": "highlight", "value": true}),
    ];
    content_rule
        .put_user_rule(Kind::Content, cake, None)
        .unwrap();
    let cake_message = message(json!({"msgtype": "m.text", "body": "The cake is a lie!"}));
    assert!(outcome(&content_rule, cake_message, &cx).highlight);
}

#[test]
fn users_with_equal_facts_get_equal_outcomes() {
    let levels = HashMap::new();
    let mut ruleset = Ruleset::predefined(ME);
    // A rule on the display name, as older clients set.
    ruleset.kinds[Kind::Override.index()].push(Rule {
        rule_id: "name".into(),
        default: false,
        enabled: true,
        conditions: Some(vec![json!({"kind": "contains_display_name"})]),
        pattern: None,
        actions: vec![
            json!("notify"),
            json!({"set_tweak": "sound", "value": "ding"}),
        ],
    });
    for rules in [
        CompiledRules::for_user(&Ruleset::predefined(ME), ME),
        CompiledRules::for_user(&ruleset, ME),
    ] {
        let users = [
            ("@ann:x", Some("Ann")),
            ("@bob:x", Some("Bob")),
            ("@cy:x", None),
            ("@dee:x", Some("Ann")),
        ];
        let events = [
            json!({"type": "m.room.message", "sender": "@s:x", "content": {"msgtype": "m.text", "body": "hello"}}),
            json!({"type": "m.room.message", "sender": "@s:x", "content": {"msgtype": "m.text", "body": "hi Ann"}}),
            json!({"type": "m.room.message", "sender": "@s:x", "content": {"msgtype": "m.text", "body": "x", "m.mentions": {"user_ids": ["@bob:x"]}}}),
            json!({"type": "m.room.member", "sender": "@s:x", "state_key": "@cy:x", "content": {"membership": "invite"}}),
        ];
        for event in &events {
            let mut seen: HashMap<UserFacts, Option<Outcome>> = HashMap::new();
            for (user_id, name) in users {
                let context = PushContext {
                    user_id,
                    display_name: name,
                    ..context(&levels)
                };
                let facts = rules.user_facts(event, &context);
                let outcome = rules.evaluate(event, &context).cloned();
                if let Some(earlier) = seen.get(&facts) {
                    assert_eq!(earlier, &outcome, "{user_id} {event}");
                }
                seen.insert(facts, outcome);
            }
            // The mention, the invite and the name set one user apart.
            let distinct = seen.len();
            assert!(distinct <= 2, "{event}: {distinct}");
        }
    }
}
