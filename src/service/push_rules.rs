//! A user's push rules, kept as the global account data `m.push_rules` (so changes
//! reach the user's clients through sync, as with Synapse). Without stored rules the
//! predefined rules apply.

use ruma::UserId;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::event::push_rules::{Anchor, Kind, Rule, Ruleset};
use crate::service::Services;

pub const PUSH_RULES_TYPE: &str = "m.push_rules";

/// A rule addressed by the client API.
pub struct RuleAddress<'a> {
    pub kind: Kind,
    pub rule_id: &'a str,
}

pub fn parse_kind(kind: &str) -> Result<Kind> {
    Kind::parse(kind).ok_or_else(|| {
        Error::invalid_param(format!(
            "Unknown push rule kind {kind:?}; expected override, underride, sender, room or content"
        ))
    })
}

fn not_found(address: &RuleAddress<'_>) -> Error {
    Error::not_found(format!(
        "No {} push rule {:?}",
        address.kind.as_str(),
        address.rule_id
    ))
}

/// Checks a list of actions from a client: "notify", the historical no-ops, or tweaks.
fn parse_actions(value: Option<&Value>) -> Result<Vec<Value>> {
    let Some(Value::Array(actions)) = value else {
        return Err(Error::bad_json("actions must be an array"));
    };
    for action in actions {
        let valid = match action {
            Value::String(s) => matches!(s.as_str(), "notify" | "dont_notify" | "coalesce"),
            Value::Object(tweak) => tweak.get("set_tweak").is_some_and(Value::is_string),
            _ => false,
        };
        if !valid {
            return Err(Error::bad_json(format!("Unrecognised action {action}")));
        }
    }
    Ok(actions.clone())
}

impl Services {
    /// The user's rule set: stored rules merged with the predefined ones.
    pub fn push_ruleset(&self, user_id: &UserId) -> Result<Ruleset> {
        let stored = self.account_data(user_id, None, PUSH_RULES_TYPE)?;
        Ok(Ruleset::from_account_data(
            stored.as_ref(),
            user_id.as_str(),
        ))
    }

    pub fn push_rule(&self, user_id: &UserId, address: &RuleAddress<'_>) -> Result<Rule> {
        self.push_ruleset(user_id)?
            .get(address.kind, address.rule_id)
            .cloned()
            .ok_or_else(|| not_found(address))
    }

    /// Reads, changes and stores the rule set under the user's account data lock.
    fn change_push_rules(
        &self,
        user_id: &UserId,
        change: impl FnOnce(&mut Ruleset) -> Result<()>,
    ) -> Result<()> {
        self.update_account_data(user_id, None, PUSH_RULES_TYPE, |current| {
            let mut ruleset = Ruleset::from_account_data(current.as_ref(), user_id.as_str());
            change(&mut ruleset)?;
            Ok(Some(ruleset.to_account_data()))
        })?;
        // Unread events follow the new rules (see `service::notifications`).
        self.reevaluate_unread(user_id)
    }

    /// `PUT /pushrules/global/{kind}/{ruleId}`: adds or replaces a user rule.
    pub fn put_push_rule(
        &self,
        user_id: &UserId,
        address: &RuleAddress<'_>,
        body: &Map<String, Value>,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<()> {
        let rule_id = address.rule_id;
        if rule_id.starts_with('.') {
            return Err(Error::invalid_param(
                "Rule IDs starting with '.' are reserved for predefined rules, which cannot be replaced",
            ));
        }
        if rule_id.is_empty() || rule_id.contains(['/', '\\']) {
            return Err(Error::invalid_param(
                "Rule IDs must be non-empty and contain no '/' or '\\'",
            ));
        }
        // Room and sender rule IDs are not checked to be room or user IDs: Synapse
        // accepts any ID (clients and SyTest use aliases such as `#spam:example.com`),
        // and the rule matches the room or sender equal to it.
        let actions = parse_actions(body.get("actions"))?;
        let conditions = match address.kind {
            Kind::Override | Kind::Underride => match body.get("conditions") {
                None => Some(Vec::new()),
                Some(Value::Array(conditions)) => {
                    if !conditions
                        .iter()
                        .all(|c| c.get("kind").is_some_and(Value::is_string))
                    {
                        return Err(Error::bad_json(
                            "Each condition must be an object with a string kind",
                        ));
                    }
                    Some(conditions.clone())
                }
                Some(_) => return Err(Error::bad_json("conditions must be an array")),
            },
            _ => None,
        };
        let pattern = match address.kind {
            Kind::Content => match body.get("pattern") {
                Some(Value::String(pattern)) => Some(pattern.clone()),
                Some(_) => return Err(Error::bad_json("pattern must be a string")),
                None => {
                    return Err(Error::missing_param("Content rules need a pattern"));
                }
            },
            _ => None,
        };
        let rule = Rule {
            rule_id: rule_id.to_owned(),
            default: false,
            enabled: true,
            actions,
            conditions,
            pattern,
        };
        let anchor = match (before, after) {
            (Some(before), _) => Some(Anchor::Before(before)),
            (None, Some(after)) => Some(Anchor::After(after)),
            (None, None) => None,
        };
        self.change_push_rules(user_id, |ruleset| {
            ruleset
                .put_user_rule(address.kind, rule, anchor)
                .map_err(|id| {
                    Error::new(
                        ErrorKind::Unknown,
                        format!("before/after rule not found: {id}"),
                    )
                })
        })
    }

    pub fn delete_push_rule(&self, user_id: &UserId, address: &RuleAddress<'_>) -> Result<()> {
        let ruleset = self.push_ruleset(user_id)?;
        match ruleset.get(address.kind, address.rule_id) {
            None => return Err(not_found(address)),
            Some(rule) if rule.default => {
                return Err(Error::invalid_param(
                    "Predefined rules cannot be deleted; disable them instead",
                ));
            }
            Some(_) => {}
        }
        self.change_push_rules(user_id, |ruleset| {
            if ruleset.remove_user_rule(address.kind, address.rule_id) {
                Ok(())
            } else {
                Err(not_found(address))
            }
        })
    }

    pub fn set_push_rule_enabled(
        &self,
        user_id: &UserId,
        address: &RuleAddress<'_>,
        enabled: bool,
    ) -> Result<()> {
        self.change_push_rules(user_id, |ruleset| {
            let rule = ruleset
                .get_mut(address.kind, address.rule_id)
                .ok_or_else(|| not_found(address))?;
            rule.enabled = enabled;
            Ok(())
        })
    }

    pub fn set_push_rule_actions(
        &self,
        user_id: &UserId,
        address: &RuleAddress<'_>,
        actions: Option<&Value>,
    ) -> Result<()> {
        let actions = parse_actions(actions)?;
        self.change_push_rules(user_id, |ruleset| {
            let rule = ruleset
                .get_mut(address.kind, address.rule_id)
                .ok_or_else(|| not_found(address))?;
            rule.actions = actions;
            Ok(())
        })
    }
}
