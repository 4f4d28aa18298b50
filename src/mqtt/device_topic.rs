//! [`DeviceTopic`]: the name of a device's state or command topic, held inline.

use core::fmt;

use super::{Topic, TopicRules};
use crate::device::DeviceId;

/// Longest [`DeviceTopic`]: `{prefix}/{deviceId}/command` must fit.
pub const MAX_DEVICE_TOPIC_LEN: usize = 255;

/// The name of a device topic, `{prefix}/{deviceId}/state` or
/// `{prefix}/{deviceId}/command`, built without allocating and held inline
/// (`Copy`), for MQTT clients that take a `&str`.
///
/// [`TopicRules::classify`] classifies it as the device's
/// [`State`](super::TopicClass::State) or [`Command`](super::TopicClass::Command)
/// topic. [`DeviceCredentials`](crate::DeviceCredentials) gives the names under
/// the platform's prefix; [`DeviceTopic::state`] and [`DeviceTopic::command`]
/// take the prefix of any [`TopicRules`].
///
/// ```
/// use structure_access::mqtt::{DeviceTopic, TopicClass, TopicRules};
///
/// let rules = TopicRules::new("acme")?;
/// let topic = DeviceTopic::command(&rules, &"dev-1".parse()?)?;
/// assert_eq!(topic.as_str(), "acme/dev-1/command");
/// assert_eq!(rules.classify(topic.as_topic()), TopicClass::Command("dev-1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceTopic {
    len: u8,
    bytes: [u8; MAX_DEVICE_TOPIC_LEN],
}

/// Why a [`DeviceTopic`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceTopicError {
    /// The prefix and the device ID make a name longer than
    /// [`MAX_DEVICE_TOPIC_LEN`].
    #[error(
        "device topic would be {len} bytes long, expected at most {MAX_DEVICE_TOPIC_LEN}: the topic prefix is too long"
    )]
    TooLong {
        /// Length the name would have.
        len: usize,
    },
}

impl DeviceTopic {
    /// `{prefix}/{device}/state` under `rules`.
    pub fn state(rules: &TopicRules, device: &DeviceId) -> Result<Self, DeviceTopicError> {
        Self::build(rules.prefix(), device, "state")
    }

    /// `{prefix}/{device}/command` under `rules`.
    pub fn command(rules: &TopicRules, device: &DeviceId) -> Result<Self, DeviceTopicError> {
        Self::build(rules.prefix(), device, "command")
    }

    /// Under the platform's prefix, `structure`: always fits (at most
    /// 9 + 1 + 128 + 8 bytes).
    pub(crate) fn structure(device: &DeviceId, kind: &str) -> Self {
        Self::build(TopicRules::STRUCTURE.prefix(), device, kind).unwrap_or(Self {
            len: 0,
            bytes: [0; MAX_DEVICE_TOPIC_LEN],
        })
    }

    fn build(prefix: &str, device: &DeviceId, kind: &str) -> Result<Self, DeviceTopicError> {
        let parts = [prefix, "/", device.as_str(), "/", kind];
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        let too_long = DeviceTopicError::TooLong { len };
        let mut bytes = [0u8; MAX_DEVICE_TOPIC_LEN];
        let mut at = 0;
        for part in parts {
            bytes
                .get_mut(at..at + part.len())
                .ok_or_else(|| too_long.clone())?
                .copy_from_slice(part.as_bytes());
            at += part.len();
        }
        Ok(Self {
            len: u8::try_from(len).map_err(|_| too_long)?,
            bytes,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Built only from `&str` parts.
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// The name as a [`Topic`], for the topic policy.
    pub fn as_topic(&self) -> Topic<'_> {
        // A rules' prefix, a device ID and `state` or `command`: no wildcard,
        // no NUL, within MQTT's length.
        Topic::from_valid_parts(self.as_str())
    }
}

impl AsRef<str> for DeviceTopic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for DeviceTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DeviceTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DeviceTopic").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_device_id_fits_under_the_platform_prefix() {
        let id: DeviceId = "x".repeat(128).parse().unwrap();
        let topic = DeviceTopic::structure(&id, "command");
        assert_eq!(topic.as_str().len(), 9 + 1 + 128 + 8);
        let long = TopicRules::new(&"p".repeat(200)).unwrap();
        assert_eq!(
            DeviceTopic::state(&long, &id),
            Err(DeviceTopicError::TooLong {
                len: 200 + 1 + 128 + 6
            })
        );
    }
}
