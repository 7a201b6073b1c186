//! Token expiry: how fresh a credential is, and how that is shown to people.

use jiff::Timestamp;

/// How fresh a credential is, as far as its file tells.
///
/// Ordered so that a greater value is the newer credential: first by
/// `expires_at`, then by `tiebreak` (codex's `last_refresh`). Unknown parts
/// compare as older than any known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Freshness {
    /// When the access token expires, if the file says.
    pub expires_at: Option<Timestamp>,
    /// A second clock that orders credentials with the same expiry.
    pub tiebreak: Option<Timestamp>,
}

impl Freshness {
    /// Freshness known only by its expiry.
    pub fn expiring(at: Option<Timestamp>) -> Self {
        Freshness {
            expires_at: at,
            tiebreak: None,
        }
    }

    /// True when replacing `self` by `candidate` would move to an older credential.
    ///
    /// Only a known, strictly older expiry (or the same expiry with an older
    /// tie-breaker) counts as a downgrade: a file whose expiry cannot be read
    /// is not judged by it.
    pub fn is_downgraded_by(&self, candidate: &Freshness) -> bool {
        match (self.expires_at, candidate.expires_at) {
            (Some(ours), Some(theirs)) if theirs < ours => true,
            (Some(ours), Some(theirs)) if theirs == ours => {
                matches!((self.tiebreak, candidate.tiebreak), (Some(a), Some(b)) if b < a)
            }
            _ => false,
        }
    }
}

/// Milliseconds since the Unix epoch, as Claude, opencode, Gemini and Qwen store them.
pub fn from_millis(value: &serde_json::Value) -> Option<Timestamp> {
    let ms = value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f as i64))?;
    if ms <= 0 {
        return None;
    }
    Timestamp::from_millisecond(ms).ok()
}

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

    #[test]
    fn millis_reject_zero_negative_and_non_numbers() {
        assert_eq!(from_millis(&serde_json::json!(0)), None);
        assert_eq!(from_millis(&serde_json::json!(-5)), None);
        assert_eq!(from_millis(&serde_json::json!("soon")), None);
        assert_eq!(
            from_millis(&serde_json::json!(1_700_000_000_000_i64)),
            Some(ts(1_700_000_000))
        );
    }

    #[test]
    fn downgrade_needs_a_known_older_expiry() {
        let old = Freshness::expiring(Some(ts(100)));
        let new = Freshness::expiring(Some(ts(200)));
        let unknown = Freshness::default();
        assert!(new.is_downgraded_by(&old));
        assert!(!old.is_downgraded_by(&new));
        assert!(!new.is_downgraded_by(&unknown));
        assert!(!unknown.is_downgraded_by(&old));
        assert!(!new.is_downgraded_by(&new));
    }

    #[test]
    fn tiebreak_orders_equal_expiries() {
        let a = Freshness {
            expires_at: Some(ts(100)),
            tiebreak: Some(ts(5)),
        };
        let b = Freshness {
            expires_at: Some(ts(100)),
            tiebreak: Some(ts(6)),
        };
        assert!(b.is_downgraded_by(&a));
        assert!(!a.is_downgraded_by(&b));
    }
}
