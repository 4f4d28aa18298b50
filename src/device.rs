//! Devices: [`DeviceId`], the [`Device`] trait callers implement, and [`DeviceRecord`].

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::str::FromStr;

use crate::application::ApplicationId;
use crate::inline::{InlineStr, text_id_impls};

/// Longest device ID accepted.
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Whether `b` may appear in a device ID: `[0-9A-Za-z_.:-]`.
pub(crate) const fn is_device_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// A device's identifier: what a device sends as its MQTT client id.
///
/// 1 to 128 characters of `[0-9A-Za-z_.:-]`, not starting with `sts_` (the prefix
/// of secrets). The platform's own IDs are 24 hex characters, but integrators use
/// other shapes, so any ID of this alphabet is accepted. Held inline: parsing
/// never allocates.
///
/// ```
/// use structure_access::DeviceId;
///
/// let id: DeviceId = "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?;
/// assert_eq!(id.as_str(), "5f2b8c1e9a4d3b7c6e1f0a2b");
/// assert!("no spaces".parse::<DeviceId>().is_err());
/// # Ok::<(), structure_access::DeviceIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(InlineStr<MAX_DEVICE_ID_LEN>);

/// Why a text is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceIdError {
    /// The text is empty.
    #[error("expected a device ID, found an empty string")]
    Empty,
    /// The text is longer than [`MAX_DEVICE_ID_LEN`].
    #[error("device ID is {len} bytes long, expected at most {MAX_DEVICE_ID_LEN}")]
    TooLong {
        /// Length of the rejected text in bytes.
        len: usize,
    },
    /// Text starting with `sts_`, the prefix of secrets: refused, and not quoted,
    /// so that a secret typed in the wrong field cannot reach a log.
    #[error("expected a device ID, found text starting with the secret prefix `sts_` (not shown)")]
    LooksLikeSecret,
    /// A character outside `[0-9A-Za-z_.:-]`.
    #[error(
        "unexpected character `{}` at byte {offset} of device ID `{}`, expected one of `0-9 A-Z a-z _ . : -`",
        crate::text::Printable(*found),
        crate::text::Escaped(id)
    )]
    InvalidCharacter {
        /// The rejected text (the message shows it escaped: control, format
        /// and line separator characters as `\u{…}`).
        id: alloc::string::String,
        /// The rejected character.
        found: char,
        /// Its byte offset.
        offset: usize,
    },
}

impl DeviceId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The ID's length in bytes, read without the UTF-8 check of `as_str`.
    #[inline]
    fn byte_len(&self) -> usize {
        self.0.as_bytes().len()
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(DeviceIdError::Empty);
        }
        if s.len() > MAX_DEVICE_ID_LEN {
            return Err(DeviceIdError::TooLong { len: s.len() });
        }
        if s.starts_with(crate::secret::SECRET_PREFIX) {
            return Err(DeviceIdError::LooksLikeSecret);
        }
        if let Some((offset, found)) = s
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii() && is_device_id_byte(c as u8)))
        {
            return Err(DeviceIdError::InvalidCharacter {
                id: s.into(),
                found,
                offset,
            });
        }
        InlineStr::new(s)
            .map(Self)
            .ok_or(DeviceIdError::TooLong { len: s.len() })
    }
}

text_id_impls!(DeviceId, "a device ID");

/// A device as the scope rules see it: its application, ID and tags.
///
/// Implement it over your own device rows; nothing is copied. The ID and the
/// application are taken as text, not as [`DeviceId`] and
/// [`ApplicationId`], so any row can be asked about; an ID that is not a valid
/// [`DeviceId`] simply matches no listed ID, and an application that is not a
/// valid [`ApplicationId`] is no principal's application.
///
/// ```
/// use structure_access::Device;
///
/// struct Row { application: String, id: String, tags: Vec<(String, String)> }
///
/// impl Device for Row {
///     fn application(&self) -> &str { &self.application }
///     fn id(&self) -> &str { &self.id }
///     fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
///         self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
///     }
/// }
/// ```
pub trait Device {
    /// The application the device belongs to.
    fn application(&self) -> &str;
    /// The device's ID.
    fn id(&self) -> &str;
    /// The device's tags as `(key, value)` pairs. A device has at most 100 tags
    /// on the platform; keys may repeat.
    fn tags(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl<D: Device + ?Sized> Device for &D {
    fn application(&self) -> &str {
        (**self).application()
    }
    fn id(&self) -> &str {
        (**self).id()
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        (**self).tags()
    }
}

/// Most tags a [`DeviceRecord`] read with serde may carry (the platform's limit).
pub const MAX_DEVICE_TAGS: usize = 100;

/// A small owned device: application, ID and tags.
///
/// With the `serde` feature it reads and writes the JSON shape of the
/// platform's API (and of the Mosquitto plugin's devices file); unknown fields
/// are refused, `application` is required, and at most [`MAX_DEVICE_TAGS`] tags
/// are read:
///
/// ```json
/// {"id": "5f2b…", "application": "64b1…", "tags": [{"key": "vehicle", "value": "truck"}]}
/// ```
///
/// ```
/// use structure_access::DeviceRecord;
///
/// let truck = DeviceRecord::new("64b1f0c2a7e3d95b8c4f2a10".parse()?, "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?)
///     .with_tag("vehicle", "truck")
///     .with_tag("color", "red");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    application: ApplicationId,
    id: DeviceId,
    /// The ID, then the application, as one text: what `Device` hands out on
    /// the hot path of `can_see`, without the UTF-8 check of the inline IDs.
    text: Box<str>,
    tags: Tags,
}

/// The text of a [`DeviceRecord`]: its ID, then its application.
fn record_text(id: &DeviceId, application: &ApplicationId) -> Box<str> {
    let mut text =
        alloc::string::String::with_capacity(id.as_str().len() + application.as_str().len());
    text.push_str(id.as_str());
    text.push_str(application.as_str());
    text.into()
}

/// A device's tags, in order, keys possibly repeated.
type Tags = Vec<(Box<str>, Box<str>)>;

impl DeviceRecord {
    /// A device of `application` with no tags.
    pub fn new(application: ApplicationId, id: DeviceId) -> Self {
        Self {
            text: record_text(&id, &application),
            application,
            id,
            tags: Vec::new(),
        }
    }

    /// Adds a tag.
    #[must_use]
    pub fn with_tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// The device's ID.
    pub fn device_id(&self) -> &DeviceId {
        &self.id
    }

    /// The device's application.
    pub fn application_id(&self) -> &ApplicationId {
        &self.application
    }
}

impl core::fmt::Debug for DeviceRecord {
    // The ID and application once each (`text` repeats them).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceRecord")
            .field("application", &self.application)
            .field("id", &self.id)
            .field("tags", &self.tags)
            .finish()
    }
}

impl Device for DeviceRecord {
    fn application(&self) -> &str {
        self.text.get(self.id.byte_len()..).unwrap_or_default()
    }
    fn id(&self) -> &str {
        self.text.get(..self.id.byte_len()).unwrap_or_default()
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (&**k, &**v))
    }
}

#[cfg(feature = "serde")]
mod wire {
    use super::*;
    use alloc::string::String;
    use serde::de::{Error as _, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct TagOut<'a> {
        key: &'a str,
        value: &'a str,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TagIn {
        key: String,
        value: String,
    }

    #[derive(Serialize)]
    struct WireOut<'a> {
        id: &'a DeviceId,
        application: &'a ApplicationId,
        tags: Vec<TagOut<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WireIn {
        id: DeviceId,
        application: ApplicationId,
        #[serde(default, deserialize_with = "bounded_tags")]
        tags: Tags,
    }

    /// Reads at most [`MAX_DEVICE_TAGS`] tags: a longer list is refused as soon
    /// as the limit is passed, so memory stays bounded.
    fn bounded_tags<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tags, D::Error> {
        struct BoundedTags;
        impl<'de> Visitor<'de> for BoundedTags {
            type Value = Tags;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "a list of at most {MAX_DEVICE_TAGS} tags")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut tags = Vec::new();
                while let Some(tag) = seq.next_element::<TagIn>()? {
                    if tags.len() == MAX_DEVICE_TAGS {
                        return Err(A::Error::custom(alloc::format!(
                            "more than {MAX_DEVICE_TAGS} tags, expected at most {MAX_DEVICE_TAGS}"
                        )));
                    }
                    tags.push((tag.key.into(), tag.value.into()));
                }
                Ok(tags)
            }
        }
        deserializer.deserialize_seq(BoundedTags)
    }

    impl Serialize for DeviceRecord {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            WireOut {
                id: &self.id,
                application: &self.application,
                tags: self
                    .tags
                    .iter()
                    .map(|(key, value)| TagOut { key, value })
                    .collect(),
            }
            .serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for DeviceRecord {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let wire = WireIn::deserialize(deserializer)?;
            Ok(Self {
                text: record_text(&wire.id, &wire.application),
                application: wire.application,
                id: wire.id,
                tags: wire.tags,
            })
        }
    }
}
