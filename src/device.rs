//! Devices: [`DeviceId`], the [`Device`] trait callers implement, and [`DeviceRecord`].

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::str::FromStr;

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

/// A device as the scope rules see it: an ID and its tags.
///
/// Implement it over your own device rows; nothing is copied. The ID is taken
/// as text, not as a [`DeviceId`], so any row can be asked about; an ID that is
/// not a valid [`DeviceId`] simply matches no listed ID.
///
/// ```
/// use structure_access::Device;
///
/// struct Row { id: String, tags: Vec<(String, String)> }
///
/// impl Device for Row {
///     fn id(&self) -> &str { &self.id }
///     fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
///         self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
///     }
/// }
/// ```
pub trait Device {
    /// The device's ID.
    fn id(&self) -> &str;
    /// The device's tags as `(key, value)` pairs. A device has at most 100 tags
    /// on the platform; keys may repeat.
    fn tags(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl<D: Device + ?Sized> Device for &D {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        (**self).tags()
    }
}

/// A device without tags, known only by its ID.
impl Device for DeviceId {
    fn id(&self) -> &str {
        self.as_str()
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        core::iter::empty()
    }
}

/// A small owned device, for convenience and tests.
///
/// ```
/// use structure_access::DeviceRecord;
///
/// let truck = DeviceRecord::new("5f2b8c1e9a4d3b7c6e1f0a2b".parse()?)
///     .with_tag("vehicle", "truck")
///     .with_tag("color", "red");
/// # Ok::<(), structure_access::DeviceIdError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    id: DeviceId,
    tags: Vec<(Box<str>, Box<str>)>,
}

impl DeviceRecord {
    /// A device with no tags.
    pub fn new(id: DeviceId) -> Self {
        Self {
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
}

impl Device for DeviceRecord {
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (&**k, &**v))
    }
}
