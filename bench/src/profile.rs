//! The two client loads of the single-server bench: `basic` (an inline filter with a
//! large timeline window, messages on a fixed schedule, round-robin over the clients)
//! and `element` (each client uploads the sync filter Element Web uploads and syncs with
//! its ID; messages arrive as a Poisson process from randomly chosen clients).

use std::time::Duration;

use clap::ValueEnum;
use serde_json::{Value, json};

use crate::matrix::{BENCH_ID_KEY, FILTER};

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Profile {
    /// Inline filter (no presence or account data, timeline limit 1000), fixed schedule
    Basic,
    /// Uploaded filter as Element Web's (lazy-loaded members, timeline limit 50),
    /// Poisson arrivals
    Element,
}

/// The timeline limit of the `element` filter.
pub const ELEMENT_TIMELINE_LIMIT: u32 = 50;

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Basic => "basic",
            Profile::Element => "element",
        }
    }

    /// The filter a client of this profile uploads (`POST /user/{userId}/filter`) and
    /// then names by its ID in every sync, or `None` for the inline filter.
    ///
    /// Element Web starts matrix-js-sdk with lazy-loaded members, which puts
    /// `room.state.lazy_load_members` in the sync filter; the SDK's default filter also
    /// asks for thread notification counts when the server offers them; and the
    /// timeline limit is the initial sync limit. Nothing else is filtered out: presence,
    /// account data, receipts and typing all come as the server sends them.
    pub fn uploaded_filter(self) -> Option<Value> {
        match self {
            Profile::Basic => None,
            Profile::Element => Some(json!({
                "room": {
                    "state": {"lazy_load_members": true},
                    "timeline": {
                        "limit": ELEMENT_TIMELINE_LIMIT,
                        "unread_thread_notifications": true,
                    },
                },
            })),
        }
    }

    /// The `filter` of the measured syncs when nothing is uploaded.
    pub fn inline_filter(self) -> &'static str {
        FILTER
    }

    /// The content of bench message `id`: what Element sends for plain text (an empty
    /// `m.mentions` marks a message that mentions nobody), plus the bench ID.
    pub fn message_content(self, id: u64) -> Value {
        let mut content = json!({
            "msgtype": "m.text",
            "body": format!("hearth-bench message {id}"),
            BENCH_ID_KEY: id,
        });
        if self == Profile::Element {
            content["m.mentions"] = json!({});
        }
        content
    }

    /// When each message of a run is sent and by which client.
    pub fn schedule(self, rate: f64, duration: f64, clients: usize, seed: u64) -> Schedule {
        match self {
            Profile::Basic => Schedule::fixed(rate, duration, clients),
            Profile::Element => Schedule::poisson(rate, duration, clients, seed),
        }
    }
}

/// The send time (from the start of sending) and sender (client index) of each message,
/// fixed before the run so that a slow server does not slow the sending.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub at: Vec<Duration>,
    pub sender: Vec<usize>,
}

impl Schedule {
    /// round(rate × duration) messages evenly spaced at `rate`, message k from client
    /// k mod `clients`.
    pub fn fixed(rate: f64, duration: f64, clients: usize) -> Self {
        let messages = (rate * duration).round() as usize;
        Schedule {
            at: (0..messages)
                .map(|i| Duration::from_secs_f64(i as f64 / rate))
                .collect(),
            sender: (0..messages).map(|i| i % clients.max(1)).collect(),
        }
    }

    /// A Poisson process of `rate` per second over `duration` seconds: exponentially
    /// distributed gaps, each message from a client chosen uniformly (so each client on
    /// its own is a Poisson process of rate/`clients`). The same seed gives the same
    /// schedule, so runs stay comparable.
    pub fn poisson(rate: f64, duration: f64, clients: usize, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let mut schedule = Schedule {
            at: Vec::new(),
            sender: Vec::new(),
        };
        let mut t = 0.0;
        loop {
            t += -(1.0 - rng.unit()).ln() / rate;
            if t >= duration {
                return schedule;
            }
            schedule.at.push(Duration::from_secs_f64(t));
            schedule.sender.push(rng.below(clients.max(1)));
        }
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }
}

/// SplitMix64 (Steele, Lea and Flood): a tiny generator whose output depends only on
/// the seed, whatever crate versions the bench is built with.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (the modulo bias is below 2^-40 for any client count here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_schedule_is_even_and_round_robin() {
        let schedule = Schedule::fixed(4.0, 1.0, 3);
        assert_eq!(schedule.len(), 4);
        assert_eq!(schedule.at[1], Duration::from_millis(250));
        assert_eq!(schedule.sender, vec![0, 1, 2, 0]);
    }

    #[test]
    fn poisson_schedule_is_seeded_and_has_the_rate() {
        let a = Schedule::poisson(500.0, 20.0, 200, 1);
        assert_eq!(a, Schedule::poisson(500.0, 20.0, 200, 1));
        assert_ne!(a.at, Schedule::poisson(500.0, 20.0, 200, 2).at);
        // 10,000 expected; a Poisson count's standard deviation is 100.
        assert!((9_600..=10_400).contains(&a.len()), "{} messages", a.len());
        assert!(a.at.windows(2).all(|w| w[0] <= w[1]));
        assert!(a.at.last().unwrap() < &Duration::from_secs(20));
        // Exponential gaps: the mean is 1/rate and about 1/e of them exceed it.
        let gaps: Vec<f64> =
            a.at.windows(2)
                .map(|w| (w[1] - w[0]).as_secs_f64())
                .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.002).abs() < 0.0001, "mean gap {mean}");
        let long = gaps.iter().filter(|&&g| g > 0.002).count() as f64 / gaps.len() as f64;
        assert!(
            (long - (-1.0f64).exp()).abs() < 0.02,
            "share above mean {long}"
        );
        // Every client sends, none far more than the others (50 expected each).
        let mut per_client = vec![0; 200];
        for &sender in &a.sender {
            per_client[sender] += 1;
        }
        assert!(per_client.iter().all(|&n| (20..=90).contains(&n)));
    }

    #[test]
    fn element_filter_and_content_mirror_element() {
        let filter = Profile::Element.uploaded_filter().unwrap();
        assert_eq!(filter["room"]["state"]["lazy_load_members"], true);
        assert_eq!(filter["room"]["timeline"]["limit"], 50);
        assert!(Profile::Basic.uploaded_filter().is_none());
        let content = Profile::Element.message_content(7);
        assert_eq!(content[BENCH_ID_KEY], 7);
        assert_eq!(content["m.mentions"], json!({}));
        assert!(
            Profile::Basic
                .message_content(7)
                .get("m.mentions")
                .is_none()
        );
    }
}
