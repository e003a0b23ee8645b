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
