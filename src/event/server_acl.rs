//! `m.room.server_acl` evaluation (spec: client-server API, "Server Access Control
//! Lists (ACLs) for rooms"; the event's schema gives the order of the checks).
//!
//! Every field is read the way Synapse reads it: a missing or non-boolean
//! `allow_ip_literals` means `true`, a missing or non-list `allow` or `deny` means an
//! empty list, and entries that are not strings are ignored.

use ruma::ServerName;
use serde_json::Value;

/// The access rules of one `m.room.server_acl` content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAcl {
    allow_ip_literals: bool,
    /// Lower-cased globs: the spec makes matching case-insensitive.
    allow: Vec<String>,
    deny: Vec<String>,
}

fn globs(content: &Value, key: &str) -> Vec<String> {
    match content.get(key) {
        Some(Value::Array(entries)) => entries
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect(),
        _ => Vec::new(),
    }
}

impl ServerAcl {
    /// The rules of an event's `content`.
    pub fn from_content(content: &Value) -> Self {
        Self {
            allow_ip_literals: content
                .get("allow_ip_literals")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            allow: globs(content, "allow"),
            deny: globs(content, "deny"),
        }
    }

    /// Whether `server` may take part in the room. The port never counts: `evil.com`,
    /// `evil.com:8448` and `evil.com:1234` all match rules for `evil.com`.
    pub fn allows(&self, server: &ServerName) -> bool {
        if !self.allow_ip_literals && server.is_ip_literal() {
            return false;
        }
        let host = server.host().to_lowercase();
        if self.deny.iter().any(|glob| glob_matches(glob, &host)) {
            return false;
        }
        self.allow.iter().any(|glob| glob_matches(glob, &host))
    }
}

/// The appendix's glob matching over the whole of `text`: `*` matches any run of
/// characters (including none), `?` exactly one. Iterative, with one backtrack point
/// (the last `*`), so it takes at most `glob × text` steps and cannot recurse deeply.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let glob: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut g, mut t) = (0, 0);
    // The position after the last `*` seen, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g + 1, t));
                g += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and try again.
                Some((after_star, tried_at)) => {
                    g = after_star;
                    t = tried_at + 1;
                    star = Some((after_star, tried_at + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn name(s: &str) -> &ServerName {
        <&ServerName>::try_from(s).unwrap()
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "anything.example"));
        assert!(glob_matches("evil.com", "evil.com"));
        assert!(!glob_matches("evil.com", "notevil.com"));
        assert!(!glob_matches("evil.com", "evil.com.au"));
        assert!(glob_matches("*.evil.com", "a.b.evil.com"));
        assert!(!glob_matches("*.evil.com", "evil.com"));
        assert!(glob_matches("ev?l.com", "evil.com"));
        assert!(!glob_matches("ev?l.com", "evl.com"));
        assert!(glob_matches("*a*b*", "xxaxxbxx"));
        assert!(!glob_matches("*a*b", "xxaxxbxx"));
        assert!(glob_matches("a**b", "ab"));
        // Characters a regex would treat specially are literal here.
        assert!(!glob_matches("evil.com", "evilxcom"));
        assert!(glob_matches("[::1]", "[::1]"));
    }

    #[test]
    fn the_specs_example() {
        // data/event-schemas/examples/m.room.server_acl.yaml
        let acl = ServerAcl::from_content(&json!({
            "allow_ip_literals": false,
            "allow": ["*"],
            "deny": ["*.evil.com", "evil.com"],
        }));
        assert!(acl.allows(name("matrix.org")));
        assert!(acl.allows(name("good.example:8448")));
        assert!(!acl.allows(name("evil.com")));
        assert!(!acl.allows(name("sub.evil.com")));
        assert!(acl.allows(name("notevil.com")));
        assert!(!acl.allows(name("1.2.3.4")));
        assert!(!acl.allows(name("[1234:5678::abcd]")));
    }

    #[test]
    fn ports_are_not_considered() {
        let acl = ServerAcl::from_content(&json!({ "allow": ["*"], "deny": ["evil.com"] }));
        for server in ["evil.com", "evil.com:8448", "evil.com:1234"] {
            assert!(!acl.allows(name(server)), "{server}");
        }
        // A glob naming a port never matches, since only the host is compared.
        let acl = ServerAcl::from_content(&json!({ "allow": ["good.example:8448"] }));
        assert!(!acl.allows(name("good.example:8448")));
    }

    #[test]
    fn ip_literals() {
        let default = ServerAcl::from_content(&json!({ "allow": ["*"] }));
        assert!(default.allows(name("1.2.3.4")));
        assert!(default.allows(name("[::1]:8448")));
        let denied =
            ServerAcl::from_content(&json!({ "allow": ["*"], "allow_ip_literals": false }));
        for server in ["1.2.3.4", "1.2.3.4:8448", "[::1]", "[2001:db8::1]:443"] {
            assert!(!denied.allows(name(server)), "{server}");
        }
        // A host made of digits that is not an IPv4 address is a name.
        assert!(denied.allows(name("1.2.3.4.example")));
        // Anything else than `false` keeps the default.
        let not_bool =
            ServerAcl::from_content(&json!({ "allow": ["*"], "allow_ip_literals": "no" }));
        assert!(not_bool.allows(name("1.2.3.4")));
        // IP literals can still be matched by globs.
        let by_glob = ServerAcl::from_content(&json!({ "allow": ["*"], "deny": ["10.*"] }));
        assert!(!by_glob.allows(name("10.0.0.1:8448")));
        assert!(by_glob.allows(name("11.0.0.1")));
    }

    #[test]
    fn deny_wins_and_allow_defaults_to_nobody() {
        let both =
            ServerAcl::from_content(&json!({ "allow": ["*.example"], "deny": ["bad.example"] }));
        assert!(both.allows(name("good.example")));
        assert!(!both.allows(name("bad.example")));
        assert!(!both.allows(name("other.org")));
        // Without an allow list nobody is allowed, the room's own server included.
        let empty = ServerAcl::from_content(&json!({}));
        assert!(!empty.allows(name("good.example")));
        let only_deny = ServerAcl::from_content(&json!({ "deny": ["bad.example"] }));
        assert!(!only_deny.allows(name("good.example")));
    }

    #[test]
    fn matching_ignores_case() {
        let acl = ServerAcl::from_content(&json!({ "allow": ["*"], "deny": ["*.EVIL.com"] }));
        assert!(!acl.allows(name("Sub.Evil.COM")));
        let allow = ServerAcl::from_content(&json!({ "allow": ["Good.Example"] }));
        assert!(allow.allows(name("good.example")));
    }

    #[test]
    fn malformed_lists_are_read_leniently() {
        let acl = ServerAcl::from_content(&json!({ "allow": ["*", 5, null], "deny": "evil.com" }));
        // `deny` is not a list, so it denies nothing; the number and null are skipped.
        assert!(acl.allows(name("evil.com")));
        let not_list = ServerAcl::from_content(&json!({ "allow": "*" }));
        assert!(!not_list.allows(name("good.example")));
    }
}
