//! The waits between a background worker's attempts (the federation sender, the pushers,
//! the fan-outs): one second after the first failure, doubling with each further one, up
//! to each worker's own maximum.

use std::time::Duration;

/// The wait after the first failure.
const FIRST: Duration = Duration::from_secs(1);

/// The wait after `failures` failed attempts in a row (at least one): 1 s, 2 s, 4 s …
/// up to `max`.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_the_maximum() {
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(0, max), Duration::from_secs(1));
        assert_eq!(backoff(1, max), Duration::from_secs(1));
        assert_eq!(backoff(2, max), Duration::from_secs(2));
        assert_eq!(backoff(5, max), Duration::from_secs(16));
        assert_eq!(backoff(40, max), max);
        assert_eq!(backoff(u32::MAX, max), max);
        assert_eq!(backoff(3, Duration::from_secs(3)), Duration::from_secs(3));
    }
}
