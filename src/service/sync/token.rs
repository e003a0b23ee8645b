//! Sync tokens: one position per stream, opaque to clients.

use std::fmt;

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
    pub fn parse(token: &str) -> Option<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
