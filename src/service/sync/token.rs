//! Sync tokens: one position per stream, opaque to clients, and the rooms a response
//! deferred to the next one (`limits.sync_response_bytes`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ruma::OwnedRoomId;

/// Where a client's view of each stream ends. Every part is persisted or derived from a
/// clock, so a token stays meaningful across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncToken {
    pub events: u64,
    pub receipts: u64,
    pub account_data: u64,
    pub presence: u64,
    pub typing: u64,
    pub to_device: u64,
    pub device_lists: u64,
}

impl SyncToken {
    /// A sync token, with or without rooms deferred (which only `/sync` reads: for
    /// every other use, such as `/messages?from=`, the positions are what counts).
    pub fn parse(token: &str) -> Option<Self> {
        SyncSince::parse(token).map(|since| since.token)
    }

    fn parse_positions(token: &str) -> Option<Self> {
        let mut parts = token.strip_prefix('s')?.split('_');
        let mut next = || parts.next()?.parse::<u64>().ok();
        let token = Self {
            events: next()?,
            receipts: next()?,
            account_data: next()?,
            presence: next()?,
            typing: next()?,
            to_device: 0,
            device_lists: 0,
        };
        // Tokens from before to-device messages and device lists have five parts.
        let Some(to_device) = parts.next() else {
            return Some(token);
        };
        let token = Self {
            to_device: to_device.parse().ok()?,
            device_lists: parts.next()?.parse().ok()?,
            ..token
        };
        parts.next().is_none().then_some(token)
    }
}

impl fmt::Display for SyncToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s{}_{}_{}_{}_{}_{}_{}",
            self.events,
            self.receipts,
            self.account_data,
            self.presence,
            self.typing,
            self.to_device,
            self.device_lists
        )
    }
}

/// Rooms a sync response left out to stay within `limits.sync_response_bytes`: the first
/// of them and every room after it in room ID order. Until they are sent, the client's
/// view of them ends at `from` while its view of the other rooms (and of every other
/// stream) ends at the token's positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    /// Where the client's view of the deferred rooms ends: `None` when it never had
    /// them (the deferring sync was an initial one).
    pub from: Option<SyncToken>,
    /// The deferring sync asked for `full_state`, which the deferred rooms still get.
    pub full_state: bool,
    /// The first room deferred.
    pub next_room: OwnedRoomId,
}

/// What a client syncs from: a `next_batch`, which may carry deferred rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSince {
    pub token: SyncToken,
    pub deferred: Option<Deferred>,
}

impl From<SyncToken> for SyncSince {
    fn from(token: SyncToken) -> Self {
        Self {
            token,
            deferred: None,
        }
    }
}

impl SyncSince {
    /// `s<positions>`, or `s<positions>~<mode>~<room>` with deferred rooms: mode `i`
    /// (never synced), `p<token>` (synced up to that token) or `f<token>` (the same, with
    /// full state), and the first deferred room's ID in unpadded URL-safe base64, so the
    /// token needs no escaping beyond what a plain one needs.
    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.split('~');
        let positions = SyncToken::parse_positions(parts.next()?)?;
        let Some(mode) = parts.next() else {
            return Some(positions.into());
        };
        let room = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let (from, full_state) = match mode.split_at_checked(1)? {
            ("i", "") => (None, true),
            ("p", from) => (Some(SyncToken::parse_positions(from)?), false),
            ("f", from) => (Some(SyncToken::parse_positions(from)?), true),
            _ => return None,
        };
        let room = String::from_utf8(URL_SAFE_NO_PAD.decode(room).ok()?).ok()?;
        Some(Self {
            token: positions,
            deferred: Some(Deferred {
                from,
                full_state,
                next_room: OwnedRoomId::try_from(room).ok()?,
            }),
        })
    }
}

impl fmt::Display for SyncSince {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.token)?;
        if let Some(deferred) = &self.deferred {
            match (deferred.from, deferred.full_state) {
                (None, _) => write!(f, "~i")?,
                (Some(from), false) => write!(f, "~p{from}")?,
                (Some(from), true) => write!(f, "~f{from}")?,
            }
            write!(
                f,
                "~{}",
                URL_SAFE_NO_PAD.encode(deferred.next_room.as_str())
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferrals_round_trip() {
        let token = SyncToken {
            events: 12,
            receipts: 3,
            ..SyncToken::default()
        };
        let room = OwnedRoomId::try_from("!room/+x:example.org").unwrap();
        for (from, full_state) in [(None, true), (Some(token), false), (Some(token), true)] {
            let since = SyncSince {
                token: SyncToken {
                    events: 20,
                    ..token
                },
                deferred: Some(Deferred {
                    from,
                    full_state,
                    next_room: room.clone(),
                }),
            };
            let text = since.to_string();
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-~".contains(c)),
                "{text}"
            );
            assert_eq!(SyncSince::parse(&text), Some(since.clone()));
            assert_eq!(SyncToken::parse(&text), Some(since.token));
        }
        for bad in [
            "s1_2_3_4_5_6_7~",
            "s1_2_3_4_5_6_7~i",
            "s1_2_3_4_5_6_7~x~IQ",
            "s1_2_3_4_5_6_7~p~IQ",
            "s1_2_3_4_5_6_7~ps1_2~IQ",
            "s1_2_3_4_5_6_7~i~%%",
            "s1_2_3_4_5_6_7~i~cm9vbQ",
            "s1_2_3_4_5_6_7~i~IWE6Yg~x",
        ] {
            assert_eq!(SyncSince::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_round_trip() {
        let token = SyncToken {
            events: 12,
            receipts: 3,
            account_data: 4,
            presence: 5,
            typing: 1_700_000_000_000,
            to_device: 7,
            device_lists: 9,
        };
        assert_eq!(SyncToken::parse(&token.to_string()), Some(token));
    }

    #[test]
    fn five_part_tokens_still_parse() {
        let token = SyncToken::parse("s1_2_3_4_5").unwrap();
        assert_eq!(
            (token.typing, token.to_device, token.device_lists),
            (5, 0, 0)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "s",
            "s1_2_3_4",
            "x1_2_3_4_5",
            "s1_2_3_4_x",
            "s-1_2_3_4_5",
            "s1_2_3_4_5_6",
            "s1_2_3_4_5_6_7_8",
        ] {
            assert_eq!(SyncToken::parse(bad), None, "{bad}");
        }
    }
}
