//! Takeovers: a CONNECT for a device that already has a live session.
//!
//! MQTT's rule is that the new connection takes the session over (client id
//! = device ID here), so anyone holding a key in a device's scope can knock
//! that device offline again and again. Both brokers count takeovers per
//! device ([`Takeovers`]), write each as an audit event, and write a
//! `conflicting_client_id` event when a device is taken over more than the
//! limit in a minute (a possible sign of leaked credentials, as AWS IoT
//! Device Defender calls it). With [`TakeoverPolicy::SameKey`], a CONNECT
//! authenticated with another key than the live session's is refused
//! instead.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use structure_access::DeviceId;

/// What a CONNECT for a device with a live session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TakeoverPolicy {
    /// Take it over, whatever key it authenticated with (MQTT's rule).
    #[default]
    Allow,
    /// Take it over only when authenticated with the live session's key;
    /// refuse it otherwise.
    SameKey,
}

/// Why a text is not a [`TakeoverPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not `allow` or `same_key`", crate::escape(found))]
pub struct TakeoverPolicyError {
    found: String,
}

impl FromStr for TakeoverPolicy {
    type Err = TakeoverPolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "allow" => Ok(Self::Allow),
            "same_key" => Ok(Self::SameKey),
            other => Err(TakeoverPolicyError {
                found: crate::excerpt(other),
            }),
        }
    }
}

impl fmt::Display for TakeoverPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::SameKey => "same_key",
        })
    }
}

/// Takeovers of a device in a minute past which it is a conflicting client id.
pub const DEFAULT_TAKEOVER_LIMIT: u32 = 5;

/// The window takeovers are counted in.
const WINDOW: Duration = Duration::from_secs(60);

/// Entries kept before the old ones are dropped.
const PRUNE_AT: usize = 4096;

/// Takeovers per device in the current minute of each.
#[derive(Debug)]
pub struct Takeovers {
    limit: u32,
    by_device: HashMap<DeviceId, (Instant, u32)>,
}

impl Takeovers {
    /// Counting against `limit` a minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            by_device: HashMap::new(),
        }
    }

    /// Counts a takeover of `device` at `now`: how many in its minute, and
    /// whether this one is the first past the limit (say so once a minute).
    pub fn count(&mut self, device: DeviceId, now: Instant) -> (u32, bool) {
        if self.by_device.len() >= PRUNE_AT {
            self.by_device
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        let entry = self.by_device.entry(device).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        (entry.1, entry.1 == self.limit.saturating_add(1))
    }

    /// How many devices are counted (bounded: entries older than a minute
    /// are dropped once there are many).
    pub fn len(&self) -> usize {
        self.by_device.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_takeover_in_a_minute_is_a_conflict_said_once() {
        let mut t = Takeovers::new(DEFAULT_TAKEOVER_LIMIT);
        let d: DeviceId = "d-1".parse().unwrap();
        let start = Instant::now();
        let counts: Vec<_> = (0..8)
            .map(|i| t.count(d, start + Duration::from_secs(i)))
            .collect();
        assert_eq!(counts.iter().filter(|(_, conflict)| *conflict).count(), 1);
        assert_eq!(counts[5], (6, true));
        // A minute later the count starts again.
        assert_eq!(t.count(d, start + Duration::from_secs(61)), (1, false));
    }

    #[test]
    fn old_entries_are_dropped_once_there_are_many() {
        let mut t = Takeovers::new(5);
        let start = Instant::now();
        for i in 0..PRUNE_AT {
            t.count(format!("d-{i}").parse().unwrap(), start);
        }
        t.count("late".parse().unwrap(), start + WINDOW);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_policy_reads_its_two_words_and_nothing_else() {
        assert_eq!("allow".parse(), Ok(TakeoverPolicy::Allow));
        assert_eq!("same_key".parse(), Ok(TakeoverPolicy::SameKey));
        let e = "Same_Key\n"
            .parse::<TakeoverPolicy>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is not `allow` or `same_key`") && !e.contains('\n'),
            "{e}"
        );
        assert_eq!(TakeoverPolicy::SameKey.to_string(), "same_key");
    }
}
