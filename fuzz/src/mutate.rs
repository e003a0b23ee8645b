//! Mutations: byte-level ones for every target, and for JSON targets, edits of the parsed
//! tree (replace a value with an awkward one, drop or rename a key, copy a subtree from
//! another input, nest deeper) so that most mutants still parse and reach the code behind
//! the parser.

use serde_json::{Map, Value};

use crate::targets::Target;

/// xorshift64*: small, seeded, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Byte strings worth inserting: JSON syntax, Matrix sigils and keys, numbers at edges.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e400",
    "-1",
    "9007199254740991",
    "9007199254740992",
    "18446744073709551616",
    "1.5",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "@",
    "!",
    "$",
    "#",
    ":",
    "*",
    "**",
    "m.room.member",
    "m.room.create",
    "m.room.power_levels",
    "m.room.join_rules",
    "content",
    "state_key",
    "sender",
    "type",
    "room_id",
    "auth_events",
    "prev_events",
    "signatures",
    "hashes",
    "membership",
    "join",
    "invite",
    "leave",
    "ban",
    "knock",
    "users",
    "events",
    "ed25519:",
    "sha256",
    "\u{1F600}",
    "\u{0301}",
    "\r\n",
    "\t",
];

/// Keys worth adding or renaming to.
const KEYS: &[&str] = &[
    "type",
    "state_key",
    "sender",
    "room_id",
    "content",
    "auth_events",
    "prev_events",
    "depth",
    "origin_server_ts",
    "hashes",
    "signatures",
    "unsigned",
    "event_id",
    "redacts",
    "membership",
    "users",
    "users_default",
    "events",
    "events_default",
    "state_default",
    "ban",
    "kick",
    "invite",
    "redact",
    "join_rule",
    "allow",
    "creator",
    "room_version",
    "additional_creators",
    "join_authorised_via_users_server",
    "third_party_invite",
    "limit",
    "types",
    "not_types",
    "senders",
    "not_senders",
    "rooms",
    "not_rooms",
    "timeline",
    "state",
    "ephemeral",
    "account_data",
    "presence",
    "event_fields",
    "contains_url",
    "lazy_load_members",
    "include_leave",
    "search_term",
    "keys",
    "filter",
    "order_by",
    "event_context",
    "groupings",
    "group_by",
    "key",
    "request_id",
    "txn_id",
    "typing",
    "timeout",
    "receipt_type",
    "thread_id",
    "status_msg",
    "origin",
    "pdus",
    "edus",
    "edu_type",
    "notifications",
    "room",
];

fn awkward_string(rng: &mut Rng) -> String {
    let choices: [&dyn Fn(&mut Rng) -> String; 12] = [
        &|_| String::new(),
        &|_| "@user:example.org".to_owned(),
        &|_| "!room:example.org".to_owned(),
        &|_| "$event".to_owned(),
        &|_| "@:".to_owned(),
        &|r| "*".repeat(1 + r.below(40)),
        &|r| "a*".repeat(1 + r.below(40)) + "b",
        &|r| "a".repeat(r.below(300)),
        &|r| "x".repeat(60_000 + r.below(10_000)),
        &|_| "\u{0}\u{7f}\u{fffd}\u{10ffff}".to_owned(),
        &|_| "ed25519:a".to_owned(),
        &|r| TOKENS[r.below(TOKENS.len())].to_owned(),
    ];
    choices[rng.below(choices.len())](rng)
}

fn awkward_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => {
            let n: i64 = match rng.below(6) {
                0 => 0,
                1 => -1,
                2 => (1 << 53) - 1,
                3 => 1 << 53,
                4 => i64::MIN,
                _ => rng.next_u64() as i64 >> rng.below(63),
            };
            Value::from(n)
        }
        3 => Value::from(u64::MAX),
        4 => serde_json::Number::from_f64(0.5).map_or(Value::Null, Value::Number),
        5 => Value::Array(Vec::new()),
        6 => Value::Object(Map::new()),
        _ => Value::String(awkward_string(rng)),
    }
}

/// Every value in the tree, depth first (the root first), as paths of steps.
fn paths(value: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    if out.len() > 4096 {
        return;
    }
    out.push(at.clone());
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Step::Index(i));
                paths(item, at, out);
                at.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                at.push(Step::Key(k.clone()));
                paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum Step {
    Index(usize),
    Key(String),
}

fn get_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut at = value;
    for step in path {
        at = match step {
            Step::Index(i) => at.get_mut(*i)?,
            Step::Key(k) => at.get_mut(k.as_str())?,
        };
    }
    Some(at)
}

fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut at = value;
    for step in path {
        at = match step {
            Step::Index(i) => at.get(*i)?,
            Step::Key(k) => at.get(k.as_str())?,
        };
    }
    Some(at)
}

fn random_subtree(rng: &mut Rng, value: &Value) -> Value {
    let mut all = Vec::new();
    paths(value, &mut Vec::new(), &mut all);
    let path = &all[rng.below(all.len())];
    get(value, path).cloned().unwrap_or(Value::Null)
}

/// One edit of the tree.
fn mutate_json(rng: &mut Rng, value: &mut Value, other: &Value) {
    let mut all = Vec::new();
    paths(value, &mut Vec::new(), &mut all);
    let path = all[rng.below(all.len())].clone();
    let from_other = rng.chance(2);
    let donor = random_subtree(rng, if from_other { other } else { value });
    let Some(node) = get_mut(value, &path) else {
        return;
    };
    match rng.below(9) {
        0 | 1 => *node = awkward_value(rng),
        2 => *node = donor,
        3 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(rng.below(map.len()))
                    .cloned()
                    .unwrap_or_default();
                map.remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            _ => *node = Value::Null,
        },
        4 => match node {
            Value::Object(map) => {
                let key = KEYS[rng.below(KEYS.len())].to_owned();
                map.insert(
                    key,
                    if rng.chance(2) {
                        donor
                    } else {
                        awkward_value(rng)
                    },
                );
            }
            Value::Array(items) => {
                let at = rng.below(items.len() + 1);
                let item = if rng.chance(2) || items.is_empty() {
                    donor
                } else {
                    items[rng.below(items.len())].clone()
                };
                items.insert(at, item);
            }
            _ => *node = donor,
        },
        5 => {
            // Rename a key.
            if let Value::Object(map) = node
                && !map.is_empty()
            {
                let key = map
                    .keys()
                    .nth(rng.below(map.len()))
                    .cloned()
                    .unwrap_or_default();
                if let Some(v) = map.remove(&key) {
                    let new = if rng.chance(2) {
                        KEYS[rng.below(KEYS.len())].to_owned()
                    } else {
                        awkward_string(rng)
                    };
                    map.insert(new, v);
                }
            }
        }
        6 => {
            // Nest: wrap in an array or object.
            let inner = node.take();
            *node = if rng.chance(2) {
                Value::Array(vec![inner])
            } else {
                let mut map = Map::new();
                map.insert(KEYS[rng.below(KEYS.len())].to_owned(), inner);
                Value::Object(map)
            };
        }
        7 => match node {
            Value::String(s) => mutate_string(rng, s),
            Value::Array(items) if items.len() > 1 => {
                let (a, b) = (rng.below(items.len()), rng.below(items.len()));
                items.swap(a, b);
            }
            _ => *node = awkward_value(rng),
        },
        _ => {
            // Repeat an array's item many times.
            if let Value::Array(items) = node
                && !items.is_empty()
            {
                let item = items[rng.below(items.len())].clone();
                for _ in 0..rng.below(64) {
                    items.push(item.clone());
                }
            } else {
                *node = awkward_value(rng);
            }
        }
    }
}

fn mutate_string(rng: &mut Rng, s: &mut String) {
    match rng.below(5) {
        0 => s.push_str(&awkward_string(rng)),
        1 => {
            let cut = rng.below(s.len() + 1);
            if s.is_char_boundary(cut) {
                s.truncate(cut);
            }
        }
        2 => *s = s.repeat(1 + rng.below(8)),
        3 => {
            let at = rng.below(s.len() + 1);
            if s.is_char_boundary(at) {
                s.insert_str(at, TOKENS[rng.below(TOKENS.len())]);
            }
        }
        _ => *s = awkward_string(rng),
    }
}

/// One byte-level edit.
fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(9) {
        0 if len > 0 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            data[at] = [0, 0xff, 0x7f, 0x80, b'"', b'{', b'0', b'\\'][rng.below(8)];
        }
        2 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(16)).min(len);
            data.drain(at..end);
        }
        3 => {
            let at = rng.below(len + 1);
            let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
            data.splice(at..at, token.iter().copied());
        }
        4 if len > 0 => {
            // Duplicate a chunk.
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let chunk = data[start..end].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        5 if !other.is_empty() => {
            // Splice: our head, the other input's tail.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        6 if len >= 4 => {
            // An integer field at an edge (image headers are full of them).
            let at = rng.below(len - 3);
            let word: u32 = [0, 1, 0xffff, 0x7fff_ffff, 0xffff_ffff, 0x8000][rng.below(6)];
            let bytes = if rng.chance(2) {
                word.to_be_bytes()
            } else {
                word.to_le_bytes()
            };
            data[at..at + 4].copy_from_slice(&bytes);
        }
        7 if len > 0 => {
            let at = rng.below(len);
            data[at] = data[at].wrapping_add(1 + rng.below(3) as u8);
        }
        _ => {
            let at = rng.below(len + 1);
            data.insert(at, rng.next_u64() as u8);
        }
    }
}

/// A mutant of `base` (possibly mixed with `other`), at most the target's input size.
pub fn mutate(rng: &mut Rng, base: &[u8], other: &[u8], target: &Target) -> Vec<u8> {
    let mut out = base.to_vec();
    let structured = if target.json && rng.below(4) != 0 {
        // Targets whose input has a line before the JSON (the search's next_batch) keep it.
        let split = if target.head_line {
            out.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1)
        } else {
            0
        };
        let other_json = serde_json::from_slice::<Value>(skip_line(other, target.head_line));
        match serde_json::from_slice::<Value>(&out[split..]) {
            Ok(mut value) => {
                let other = other_json.unwrap_or(Value::Null);
                for _ in 0..1 + rng.below(3) {
                    mutate_json(rng, &mut value, &other);
                }
                let text = if rng.chance(8) {
                    serde_json::to_vec_pretty(&value)
                } else {
                    serde_json::to_vec(&value)
                };
                out.truncate(split);
                if target.head_line && rng.chance(4) {
                    out.clear();
                    out.extend_from_slice(awkward_string(rng).replace('\n', "").as_bytes());
                    out.push(b'\n');
                }
                out.extend(text.unwrap_or_default());
                true
            }
            Err(_) => false,
        }
    } else {
        false
    };
    if !structured {
        for _ in 0..1 + rng.below(4) {
            mutate_bytes(rng, &mut out, other);
        }
    }
    out.truncate(target.max_len);
    out
}

fn skip_line(data: &[u8], head_line: bool) -> &[u8] {
    if !head_line {
        return data;
    }
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => &data[i + 1..],
        None => data,
    }
}
