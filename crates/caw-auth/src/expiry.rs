//! Token expiry as it is shown to people.

use jiff::Timestamp;

/// `valid (3h 5m remaining)` or `EXPIRED (2d 4h ago)`, relative to `now`.
pub fn describe(expires_at: Timestamp, now: Timestamp) -> String {
    let secs = expires_at.as_second() - now.as_second();
    if secs > 0 {
        format!("valid ({} remaining)", format_duration(secs.unsigned_abs()))
    } else {
        format!("EXPIRED ({} ago)", format_duration(secs.unsigned_abs()))
    }
}

/// A short duration: `42s`, `17m`, `3h 5m`, `2d 4h`.
pub fn format_duration(secs: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    match secs {
        s if s < MIN => format!("{s}s"),
        s if s < HOUR => format!("{}m", s / MIN),
        s if s < DAY => format!("{}h {}m", s / HOUR, (s % HOUR) / MIN),
        s => format!("{}d {}h", s / DAY, (s % DAY) / HOUR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn durations_use_the_two_largest_units() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(42), "42s");
        assert_eq!(format_duration(17 * 60 + 59), "17m");
        assert_eq!(format_duration(3 * 3600 + 5 * 60 + 9), "3h 5m");
        assert_eq!(format_duration(2 * 86400 + 4 * 3600 + 59), "2d 4h");
    }

    #[test]
    fn describe_says_valid_or_expired() {
        let now = ts(1_000_000);
        assert_eq!(
            describe(ts(1_000_000 + 3600), now),
            "valid (1h 0m remaining)"
        );
        assert_eq!(describe(ts(1_000_000 - 90), now), "EXPIRED (1m ago)");
        assert_eq!(describe(now, now), "EXPIRED (0s ago)");
    }
}
