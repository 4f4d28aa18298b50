//! [`ApplicationId`]: the application (tenant) a key and a device belong to.

use core::str::FromStr;

use crate::inline::{InlineStr, text_id_impls};

/// Longest application ID accepted.
pub const MAX_APPLICATION_ID_LEN: usize = 64;

/// The application (tenant) that a key and a device belong to.
///
/// The platform hosts many applications. A key belongs to one of them and a
/// device to one of them; nothing a key grants ever reaches a device of another
/// application, whether the key is restricted or not.
///
/// The platform's application IDs are 24 lowercase hex characters; any 1 to 64
/// characters of `[0-9A-Za-z_-]` are accepted, except text starting with `sts_`
/// (the prefix of secrets). Held inline: parsing never allocates.
///
/// ```
/// use structure_access::ApplicationId;
///
/// let app: ApplicationId = "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?;
/// assert_eq!(app.as_str(), "5f2b8c1e9a4d3b7c6e1f0a2b");
/// assert!("no spaces".parse::<ApplicationId>().is_err());
/// assert!("".parse::<ApplicationId>().is_err());
/// # Ok::<(), structure_access::ApplicationIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApplicationId(InlineStr<MAX_APPLICATION_ID_LEN>);

/// Why a text is not an [`ApplicationId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplicationIdError {
    /// The text is empty.
    #[error("expected an application ID, found an empty string")]
    Empty,
    /// The text is longer than [`MAX_APPLICATION_ID_LEN`].
    #[error("application ID is {len} bytes long, expected at most {MAX_APPLICATION_ID_LEN}")]
    TooLong {
        /// Length of the rejected text in bytes.
        len: usize,
    },
    /// Text starting with `sts_`, the prefix of secrets: refused, and not quoted.
    #[error(
        "expected an application ID, found text starting with the secret prefix `sts_` (not shown)"
    )]
    LooksLikeSecret,
    /// A character outside `[0-9A-Za-z_-]`.
    #[error(
        "unexpected character `{}` at byte {offset} of an application ID, expected one of `0-9 A-Z a-z _ -`",
        crate::text::Printable(*.found)
    )]
    InvalidCharacter {
        /// The rejected character (escaped in the message if not printable).
        found: char,
        /// Its byte offset.
        offset: usize,
    },
}

impl ApplicationId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether `text` is this ID (compared as bytes: no UTF-8 check on the
    /// hot path of `can_see`).
    #[inline]
    pub(crate) fn is(&self, text: &str) -> bool {
        self.0.as_bytes() == text.as_bytes()
    }
}

impl FromStr for ApplicationId {
    type Err = ApplicationIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ApplicationIdError::Empty);
        }
        if s.len() > MAX_APPLICATION_ID_LEN {
            return Err(ApplicationIdError::TooLong { len: s.len() });
        }
        if s.starts_with(crate::secret::SECRET_PREFIX) {
            return Err(ApplicationIdError::LooksLikeSecret);
        }
        if let Some((offset, found)) = s
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(ApplicationIdError::InvalidCharacter { found, offset });
        }
        InlineStr::new(s)
            .map(Self)
            .ok_or(ApplicationIdError::TooLong { len: s.len() })
    }
}

text_id_impls!(ApplicationId, "an application ID");
