//! Push rules: the spec's predefined rule set, a user's rule set as the client API
//! shows it, and the evaluation of an event against a rule set.

use std::collections::HashMap;

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value, json};

/// The rule kinds, in the order the spec evaluates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Override,
    Content,
    Room,
    Sender,
    Underride,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Override,
        Kind::Content,
        Kind::Room,
        Kind::Sender,
        Kind::Underride,
    ];

    pub fn parse(kind: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Override => "override",
            Kind::Content => "content",
            Kind::Room => "room",
            Kind::Sender => "sender",
            Kind::Underride => "underride",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub rule_id: String,
    pub default: bool,
    pub enabled: bool,
    pub actions: Vec<Value>,
    /// Override and underride rules only.
    pub conditions: Option<Vec<Value>>,
    /// Content rules only.
    pub pattern: Option<String>,
}

impl Rule {
    pub fn to_json(&self) -> Value {
        let mut rule = json!({
            "rule_id": self.rule_id,
            "default": self.default,
            "enabled": self.enabled,
            "actions": self.actions,
        });
        if let Some(conditions) = &self.conditions {
            rule["conditions"] = Value::Array(conditions.clone());
        }
        if let Some(pattern) = &self.pattern {
            rule["pattern"] = Value::String(pattern.clone());
        }
        rule
    }

    fn from_json(kind: Kind, value: &Value) -> Option<Rule> {
        let rule_id = value.get("rule_id")?.as_str()?.to_owned();
        let actions = value.get("actions")?.as_array()?.clone();
        let conditions = match kind {
            Kind::Override | Kind::Underride => Some(
                value
                    .get("conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        let pattern = match kind {
            Kind::Content => Some(value.get("pattern")?.as_str()?.to_owned()),
            _ => None,
        };
        Some(Rule {
            rule_id,
            default: false,
            enabled: value
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            actions,
            conditions,
            pattern,
        })
    }
}

/// A user's rules of every kind, each kind in priority order: `.m.rule.master` first,
/// then the user's rules, then the other predefined rules (as Synapse orders them).
#[derive(Debug, Clone, PartialEq)]
pub struct Ruleset {
    kinds: [Vec<Rule>; 5],
}

/// Where a rule goes relative to another user rule of its kind.
pub enum Anchor<'a> {
    Before(&'a str),
    After(&'a str),
}

impl Ruleset {
    /// The predefined rules alone, as the spec lists them (v1.17, which dropped the
    /// legacy rules that looked for mentions in `body`).
    pub fn predefined(user_id: &str) -> Ruleset {
        let rule = |id: &str, conditions: Value, actions: Value| Rule {
            rule_id: id.to_owned(),
            default: true,
            enabled: true,
            actions: serde_json::from_value(actions).unwrap_or_default(),
            conditions: Some(serde_json::from_value(conditions).unwrap_or_default()),
            pattern: None,
        };
        let is_type = |t: &str| json!({"kind": "event_match", "key": "type", "pattern": t});
        let empty_state_key = json!({"kind": "event_match", "key": "state_key", "pattern": ""});
        let sound_default = json!({"set_tweak": "sound", "value": "default"});
        let highlight = json!({"set_tweak": "highlight"});
        let mut master = rule(".m.rule.master", json!([]), json!([]));
        master.enabled = false;
        let overrides = vec![
            master,
            rule(
                ".m.rule.suppress_notices",
                json!([{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}]),
                json!([]),
            ),
            rule(
                ".m.rule.invite_for_me",
                json!([
                    is_type("m.room.member"),
                    {"kind": "event_match", "key": "content.membership", "pattern": "invite"},
                    {"kind": "event_match", "key": "state_key", "pattern": user_id},
                ]),
                json!(["notify", sound_default]),
            ),
            rule(
                ".m.rule.member_event",
                json!([is_type("m.room.member")]),
                json!([]),
            ),
            rule(
                ".m.rule.is_user_mention",
                json!([{"kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids", "value": user_id}]),
                json!(["notify", sound_default, highlight]),
            ),
            rule(
                ".m.rule.is_room_mention",
                json!([
                    {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": true},
                    {"kind": "sender_notification_permission", "key": "room"},
                ]),
                json!(["notify", highlight]),
            ),
            rule(
                ".m.rule.tombstone",
                json!([is_type("m.room.tombstone"), empty_state_key]),
                json!(["notify", highlight]),
            ),
            rule(
                ".m.rule.reaction",
                json!([is_type("m.reaction")]),
                json!([]),
            ),
            rule(
                ".m.rule.room.server_acl",
                json!([is_type("m.room.server_acl"), empty_state_key]),
                json!([]),
            ),
            rule(
                ".m.rule.suppress_edits",
                json!([{"kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}]),
                json!([]),
            ),
        ];
        let member_count_two = json!({"kind": "room_member_count", "is": "2"});
        let underrides = vec![
            rule(
                ".m.rule.call",
                json!([is_type("m.call.invite")]),
                json!(["notify", {"set_tweak": "sound", "value": "ring"}]),
            ),
            rule(
                ".m.rule.encrypted_room_one_to_one",
                json!([member_count_two, is_type("m.room.encrypted")]),
                json!(["notify", sound_default]),
            ),
            rule(
                ".m.rule.room_one_to_one",
                json!([member_count_two, is_type("m.room.message")]),
                json!(["notify", sound_default]),
            ),
            rule(
                ".m.rule.message",
                json!([is_type("m.room.message")]),
                json!(["notify"]),
            ),
            rule(
                ".m.rule.encrypted",
                json!([is_type("m.room.encrypted")]),
                json!(["notify"]),
            ),
        ];
        Ruleset {
            kinds: [overrides, Vec::new(), Vec::new(), Vec::new(), underrides],
        }
    }

    /// The rule set from the stored `m.push_rules` content: the user's rules as stored,
    /// the predefined rules as the server defines them now with the user's `enabled` and
    /// `actions` for them. Stored entries that do not parse are dropped.
    pub fn from_account_data(content: Option<&Value>, user_id: &str) -> Ruleset {
        let mut ruleset = Self::predefined(user_id);
        let Some(global) = content.and_then(|c| c.get("global")) else {
            return ruleset;
        };
        for kind in Kind::ALL {
            let Some(stored) = global.get(kind.as_str()).and_then(Value::as_array) else {
                continue;
            };
            let mut user_rules = Vec::new();
            for value in stored {
                let Some(rule) = Rule::from_json(kind, value) else {
                    continue;
                };
                if rule.rule_id.starts_with('.') {
                    if let Some(predefined) = ruleset.get_mut(kind, &rule.rule_id) {
                        predefined.enabled = rule.enabled;
                        predefined.actions = rule.actions;
                    }
                } else if !user_rules.iter().any(|r: &Rule| r.rule_id == rule.rule_id) {
                    user_rules.push(rule);
                }
            }
            let start = ruleset.user_start(kind);
            let rules = &mut ruleset.kinds[kind.index()];
            rules.splice(start..start, user_rules);
        }
        ruleset
    }

    /// The ruleset object of the client API (`{"override": [...], ...}`).
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        for kind in Kind::ALL {
            let rules = self.rules(kind).iter().map(Rule::to_json).collect();
            object.insert(kind.as_str().to_owned(), Value::Array(rules));
        }
        Value::Object(object)
    }

    /// The `m.push_rules` account data content.
    pub fn to_account_data(&self) -> Value {
        json!({ "global": self.to_json() })
    }

    pub fn rules(&self, kind: Kind) -> &[Rule] {
        &self.kinds[kind.index()]
    }

    pub fn get(&self, kind: Kind, rule_id: &str) -> Option<&Rule> {
        self.rules(kind).iter().find(|r| r.rule_id == rule_id)
    }

    pub fn get_mut(&mut self, kind: Kind, rule_id: &str) -> Option<&mut Rule> {
        self.kinds[kind.index()]
            .iter_mut()
            .find(|r| r.rule_id == rule_id)
    }

    /// Where the user's rules of the kind begin: after `.m.rule.master`, which always
    /// comes first.
    fn user_start(&self, kind: Kind) -> usize {
        self.rules(kind)
            .iter()
            .position(|r| !(r.default && r.rule_id == ".m.rule.master"))
            .unwrap_or(self.rules(kind).len())
    }

    /// Adds a user rule or replaces the one with its ID. Without an anchor a new rule
    /// becomes the most important user rule of its kind and a replaced one keeps its
    /// place. Errs with the anchor's ID when it names no user rule of the kind.
    pub fn put_user_rule(
        &mut self,
        kind: Kind,
        mut rule: Rule,
        anchor: Option<Anchor<'_>>,
    ) -> Result<(), String> {
        let user_start = self.user_start(kind);
        let rules = &mut self.kinds[kind.index()];
        let own_id = rule.rule_id.clone();
        let anchor_index = |rules: &[Rule], id: &str| {
            rules
                .iter()
                .position(|r| !r.default && r.rule_id == id && id != own_id)
                .ok_or_else(|| id.to_owned())
        };
        if let Some(Anchor::Before(id) | Anchor::After(id)) = &anchor {
            anchor_index(rules, id)?;
        }
        let place = rules.iter().position(|r| !r.default && r.rule_id == own_id);
        if let Some(i) = place {
            // Changing a rule keeps whether the user enabled it.
            rule.enabled = rules.remove(i).enabled;
        }
        let index = match anchor {
            Some(Anchor::Before(id)) => anchor_index(rules, id)?,
            Some(Anchor::After(id)) => anchor_index(rules, id)? + 1,
            None => place.unwrap_or(user_start),
        };
        rules.insert(index, rule);
        Ok(())
    }

    /// Removes a user rule; false when there is none with that ID.
    pub fn remove_user_rule(&mut self, kind: Kind, rule_id: &str) -> bool {
        let rules = &mut self.kinds[kind.index()];
        let before = rules.len();
        rules.retain(|r| r.default || r.rule_id != rule_id);
        rules.len() != before
    }
}

/// What a matching rule asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub notify: bool,
    pub highlight: bool,
    pub sound: Option<String>,
}

impl Outcome {
    fn from_actions(actions: &[Value]) -> Outcome {
        let mut outcome = Outcome::default();
        for action in actions {
            match action {
                Value::String(s) if s == "notify" => outcome.notify = true,
                Value::Object(tweak) => match tweak.get("set_tweak").and_then(Value::as_str) {
                    Some("highlight") => {
                        outcome.highlight = tweak
                            .get("value")
                            .map(|v| v.as_bool() == Some(true))
                            .unwrap_or(true);
                    }
                    Some("sound") => {
                        outcome.sound = tweak.get("value").and_then(Value::as_str).map(Into::into);
                    }
                    _ => {}
                },
                // "dont_notify" and "coalesce" are historical no-ops.
                _ => {}
            }
        }
        outcome
    }
}

/// What the conditions need to know beyond the event.
pub struct PushContext<'a> {
    pub user_id: &'a str,
    /// The user's display name in the room.
    pub display_name: Option<&'a str>,
    /// Joined members of the room.
    pub member_count: u64,
    pub sender_power_level: i64,
    /// The room's `notifications` power levels (the spec's default for `room` is 50).
    pub notification_levels: &'a HashMap<String, i64>,
}

/// All an evaluation can learn of the evaluating user: with one compiled rule set and one
/// room, two users whose facts are equal get the same outcome for an event, so a big room
/// evaluates each distinct case once ([`CompiledRules::user_facts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserFacts {
    state_key_is_user: bool,
    mentions_user: bool,
    display_name_in_body: bool,
}

enum Condition {
    EventMatch {
        path: Vec<String>,
        glob: Regex,
    },
    PropertyIs {
        path: Vec<String>,
        value: Value,
    },
    PropertyContains {
        path: Vec<String>,
        value: Value,
    },
    ContainsDisplayName,
    MemberCount {
        op: Ordering,
        count: u64,
    },
    SenderPermission {
        key: String,
    },
    /// `state_key` is the user evaluating (compiled from an `event_match` on the user's
    /// own ID, so one compiled rule set serves every user).
    StateKeyIsUser,
    /// `content.m.mentions.user_ids` contains the user evaluating.
    MentionsUser,
    /// The spec: unrecognised conditions never match.
    Never,
}

#[derive(Clone, Copy)]
enum Ordering {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

enum Matcher {
    Conditions(Vec<Condition>),
    Room(String),
    Sender(String),
    Body(Regex),
}

/// A rule set prepared for evaluation: enabled rules only, in evaluation order, with
/// globs compiled once.
pub struct CompiledRules {
    rules: Vec<(Matcher, Outcome, Vec<Value>)>,
    needs_display_name: bool,
}

impl CompiledRules {
    pub fn new(ruleset: &Ruleset) -> CompiledRules {
        Self::compile(ruleset, None)
    }

    /// Compiles the user's rule set so that conditions naming the user themselves (the
    /// predefined invite and mention rules) refer to `PushContext::user_id` instead: the
    /// result of two users' predefined rule sets is then the same and can be shared.
    pub fn for_user(ruleset: &Ruleset, user_id: &str) -> CompiledRules {
        Self::compile(ruleset, Some(user_id))
    }

    fn compile(ruleset: &Ruleset, user_id: Option<&str>) -> CompiledRules {
        let mut rules = Vec::new();
        for kind in Kind::ALL {
            for rule in ruleset.rules(kind).iter().filter(|r| r.enabled) {
                let matcher = match kind {
                    Kind::Override | Kind::Underride => Matcher::Conditions(
                        rule.conditions
                            .iter()
                            .flatten()
                            .map(|c| compile_relative(c, user_id))
                            .collect(),
                    ),
                    Kind::Room => Matcher::Room(rule.rule_id.clone()),
                    Kind::Sender => Matcher::Sender(rule.rule_id.clone()),
                    Kind::Content => match rule.pattern.as_deref().and_then(body_glob) {
                        Some(regex) => Matcher::Body(regex),
                        None => Matcher::Conditions(vec![Condition::Never]),
                    },
                };
                rules.push((
                    matcher,
                    Outcome::from_actions(&rule.actions),
                    rule.actions.clone(),
                ));
            }
        }
        let needs_display_name = rules.iter().any(|(matcher, _, _)| {
            matches!(matcher, Matcher::Conditions(c)
                if c.iter().any(|c| matches!(c, Condition::ContainsDisplayName)))
        });
        CompiledRules {
            rules,
            needs_display_name,
        }
    }

    /// Whether any rule looks at the user's display name (else the context may omit it).
    pub fn needs_display_name(&self) -> bool {
        self.needs_display_name
    }

    /// What the user-relative conditions ([`Condition::StateKeyIsUser`],
    /// [`Condition::MentionsUser`], [`Condition::ContainsDisplayName`]) say of the event
    /// for the context's user: every other condition reads only the event and the room.
    pub fn user_facts(&self, event: &Value, context: &PushContext<'_>) -> UserFacts {
        UserFacts {
            state_key_is_user: condition_holds(&Condition::StateKeyIsUser, event, context),
            mentions_user: condition_holds(&Condition::MentionsUser, event, context),
            display_name_in_body: self.needs_display_name
                && condition_holds(&Condition::ContainsDisplayName, event, context),
        }
    }

    /// The outcome of the first matching rule, `None` when no rule matches.
    pub fn evaluate(&self, event: &Value, context: &PushContext<'_>) -> Option<&Outcome> {
        self.evaluate_actions(event, context)
            .map(|(outcome, _)| outcome)
    }

    /// The outcome and the actions (as the rule lists them) of the first matching rule.
    pub fn evaluate_actions(
        &self,
        event: &Value,
        context: &PushContext<'_>,
    ) -> Option<(&Outcome, &[Value])> {
        self.rules
            .iter()
            .find(|(matcher, _, _)| matches(matcher, event, context))
            .map(|(_, outcome, actions)| (outcome, actions.as_slice()))
    }
}

fn matches(matcher: &Matcher, event: &Value, context: &PushContext<'_>) -> bool {
    match matcher {
        Matcher::Conditions(conditions) => conditions
            .iter()
            .all(|c| condition_holds(c, event, context)),
        Matcher::Room(room_id) => event.get("room_id").and_then(Value::as_str) == Some(room_id),
        Matcher::Sender(sender) => event.get("sender").and_then(Value::as_str) == Some(sender),
        Matcher::Body(regex) => event
            .pointer("/content/body")
            .and_then(Value::as_str)
            .is_some_and(|body| regex.is_match(body)),
    }
}

fn condition_holds(condition: &Condition, event: &Value, context: &PushContext<'_>) -> bool {
    match condition {
        Condition::EventMatch { path, glob } => property(event, path)
            .and_then(Value::as_str)
            .is_some_and(|value| glob.is_match(value)),
        Condition::PropertyIs { path, value } => {
            property(event, path).is_some_and(|v| is_simple(v) && v == value)
        }
        Condition::PropertyContains { path, value } => property(event, path)
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|v| is_simple(v) && v == value)),
        Condition::ContainsDisplayName => {
            let body = event.pointer("/content/body").and_then(Value::as_str);
            match (body, context.display_name) {
                (Some(body), Some(name)) if !name.is_empty() => contains_word(body, name),
                _ => false,
            }
        }
        Condition::MemberCount { op, count } => {
            let n = context.member_count;
            match op {
                Ordering::Eq => n == *count,
                Ordering::Lt => n < *count,
                Ordering::Gt => n > *count,
                Ordering::Le => n <= *count,
                Ordering::Ge => n >= *count,
            }
        }
        Condition::SenderPermission { key } => {
            let required = context.notification_levels.get(key).copied().unwrap_or(50);
            context.sender_power_level >= required
        }
        Condition::StateKeyIsUser => event
            .get("state_key")
            .and_then(Value::as_str)
            .is_some_and(|k| k.eq_ignore_ascii_case(context.user_id)),
        Condition::MentionsUser => event
            .pointer("/content/m.mentions/user_ids")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(context.user_id))),
        Condition::Never => false,
    }
}

/// [`compile_condition`], with conditions on `user_id` itself made relative to the
/// evaluating user.
fn compile_relative(condition: &Value, user_id: Option<&str>) -> Condition {
    if let Some(user_id) = user_id {
        let kind = condition.get("kind").and_then(Value::as_str);
        let key = condition.get("key").and_then(Value::as_str);
        match (kind, key) {
            (Some("event_match"), Some("state_key"))
                if condition.get("pattern").and_then(Value::as_str) == Some(user_id) =>
            {
                return Condition::StateKeyIsUser;
            }
            (Some("event_property_contains"), Some("content.m\\.mentions.user_ids"))
                if condition.get("value").and_then(Value::as_str) == Some(user_id) =>
            {
                return Condition::MentionsUser;
            }
            _ => {}
        }
    }
    compile_condition(condition)
}

/// The spec matches only non-compound values exactly (no casts between types).
fn is_simple(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn compile_condition(condition: &Value) -> Condition {
    let key = || condition.get("key").and_then(Value::as_str).map(split_path);
    let compiled = match condition.get("kind").and_then(Value::as_str) {
        Some("event_match") => {
            let pattern = condition.get("pattern").and_then(Value::as_str);
            match (key(), pattern) {
                (Some(path), Some(pattern)) => {
                    let is_body = path == ["content", "body"];
                    let glob = if is_body {
                        body_glob(pattern)
                    } else {
                        whole_glob(pattern)
                    };
                    glob.map(|glob| Condition::EventMatch { path, glob })
                }
                _ => None,
            }
        }
        Some(kind @ ("event_property_is" | "event_property_contains")) => {
            match (key(), condition.get("value")) {
                (Some(path), Some(value)) if is_simple(value) => {
                    let value = value.clone();
                    Some(if kind == "event_property_is" {
                        Condition::PropertyIs { path, value }
                    } else {
                        Condition::PropertyContains { path, value }
                    })
                }
                _ => None,
            }
        }
        Some("contains_display_name") => Some(Condition::ContainsDisplayName),
        Some("room_member_count") => condition
            .get("is")
            .and_then(Value::as_str)
            .and_then(parse_member_count),
        Some("sender_notification_permission") => condition
            .get("key")
            .and_then(Value::as_str)
            .map(|key| Condition::SenderPermission { key: key.into() }),
        _ => None,
    };
    compiled.unwrap_or(Condition::Never)
}

fn parse_member_count(is: &str) -> Option<Condition> {
    let (op, number) = [
        ("==", Ordering::Eq),
        ("<=", Ordering::Le),
        (">=", Ordering::Ge),
        ("<", Ordering::Lt),
        (">", Ordering::Gt),
    ]
    .into_iter()
    .find_map(|(prefix, op)| is.strip_prefix(prefix).map(|rest| (op, rest)))
    .unwrap_or((Ordering::Eq, is));
    let count = number.parse().ok()?;
    Some(Condition::MemberCount { op, count })
}

/// Splits a dot-separated property path, where `\.` is a literal dot and `\\` a
/// backslash.
fn split_path(key: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('.' | '\\')) => parts.last_mut().unwrap().push(next),
                Some(other) => {
                    let part = parts.last_mut().unwrap();
                    part.push('\\');
                    part.push(other);
                }
                None => parts.last_mut().unwrap().push('\\'),
            },
            '.' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

fn property<'e>(event: &'e Value, path: &[String]) -> Option<&'e Value> {
    path.iter().try_fold(event, |value, part| value.get(part))
}

fn glob_to_regex(glob: &str) -> String {
    let mut regex = String::new();
    for c in glob.chars() {
        match c {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            c => regex.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    regex
}

fn build(regex: &str) -> Option<Regex> {
    RegexBuilder::new(regex)
        .case_insensitive(true)
        .dot_matches_new_line(true)
        .build()
        .ok()
}

/// The whole value must match.
fn whole_glob(glob: &str) -> Option<Regex> {
    build(&format!("^(?:{})$", glob_to_regex(glob)))
}

/// `content.body`: a substring starting and ending at word boundaries, where anything
/// outside `[A-Za-z0-9_]` bounds a word.
fn body_glob(glob: &str) -> Option<Regex> {
    build(&format!(
        "(?:^|[^A-Za-z0-9_])(?:{})(?:[^A-Za-z0-9_]|$)",
        glob_to_regex(glob)
    ))
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `needle` occurs in `haystack` case-insensitively between word boundaries;
/// display names change per room, so this avoids compiling a pattern per event.
fn contains_word(haystack: &str, needle: &str) -> bool {
    let haystack = haystack.to_lowercase();
    let needle = needle.to_lowercase();
    haystack.match_indices(&needle).any(|(start, _)| {
        let end = start + needle.len();
        let before_ok = haystack[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word_char(c));
        let after_ok = haystack[end..]
            .chars()
            .next()
            .is_none_or(|c| !is_word_char(c));
        before_ok && after_ok
    })
}

#[cfg(test)]
#[path = "push_rules_tests.rs"]
mod tests;
