//! [`RestrictionError`]: why a restriction was rejected, and where.

use alloc::string::String;
use core::fmt;

use crate::text::Printable;

/// Longest piece of offending input quoted in an error message, in characters.
const SNIPPET_CHARS: usize = 24;

/// Where a [`RestrictionError`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// A byte offset in the restriction text.
    Byte(usize),
    /// An index into the device IDs given to
    /// [`Restriction::from_parts`](super::Restriction::from_parts) (the platform's
    /// `deviceIds` list), counting from 0.
    DeviceId(usize),
    /// An index into the tag filters given to
    /// [`Restriction::from_parts`](super::Restriction::from_parts) (the platform's
    /// `deviceTags` list), counting from 0.
    TagFilter(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Byte(offset) => write!(f, "at byte {offset}"),
            Self::DeviceId(index) => write!(f, "at deviceIds[{index}]"),
            Self::TagFilter(index) => write!(f, "at deviceTags[{index}]"),
        }
    }
}

/// Which part of a restriction a [`RestrictionError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Item {
    /// A device ID.
    DeviceId,
    /// The key of a tag pattern.
    TagKey,
    /// The value of a tag pattern.
    TagValue,
}

impl Item {
    const fn allowed(self) -> &'static str {
        match self {
            Self::DeviceId => "one of `0-9 A-Z a-z _ . : -`",
            Self::TagKey => "one of `0-9 A-Z a-z _ -`",
            Self::TagValue => {
                "a visible character (not a control, format, line or paragraph separator character)"
            }
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DeviceId => "device ID",
            Self::TagKey => "tag key",
            Self::TagValue => "tag value",
        })
    }
}

/// Why a restriction was rejected.
///
/// Every message is one line, names where the problem is (a byte offset in the
/// text, or an index into the lists given to
/// [`Restriction::from_parts`](super::Restriction::from_parts)) and what was
/// expected, and quotes the offending input in backticks, shortened to a few
/// characters with control characters escaped.
///
/// ```
/// use structure_access::Restriction;
///
/// let err = "vehicle=truck,color=\"red".parse::<Restriction>().unwrap_err();
/// assert_eq!(err.offset(), Some(24));
/// assert_eq!(err.to_string(), "expected a closing `\"` at byte 24, found the end of the input");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestrictionError {
    /// Neither a device ID nor a tag pattern. An unrestricted key is
    /// [`Scope::Unrestricted`](crate::Scope::Unrestricted), not an empty list.
    #[error("expected a device ID or a tag pattern {at}, found an empty restriction")]
    Empty {
        /// Where the first entry was expected.
        at: Location,
    },
    /// The text does not follow the grammar.
    #[error("expected {expected} {at}, found {}", Found(found.as_deref()))]
    Syntax {
        /// Where the unexpected input starts.
        at: Location,
        /// What would have been accepted there.
        expected: &'static str,
        /// The unexpected input, shortened; `None` at the end of the input.
        found: Option<String>,
    },
    /// A character that is not allowed in a device ID, tag key or tag value.
    #[error("unexpected character `{}` in {item} `{text}` {at}, expected {}", Printable(*found), item.allowed())]
    InvalidCharacter {
        /// Where the character is.
        at: Location,
        /// What the character is part of.
        item: Item,
        /// The character.
        found: char,
        /// The device ID, key or value, shortened.
        text: String,
    },
    /// A device ID, tag key or tag value longer than its [`Limits`](super::Limits).
    #[error("{item} `{text}` {at} is {len} characters long, expected at most {max}")]
    TooLong {
        /// Where the device ID, key or value starts.
        at: Location,
        /// What is too long.
        item: Item,
        /// The device ID, key or value, shortened.
        text: String,
        /// Its length in characters (Unicode scalar values, after unescaping).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A quoted tag value with nothing between the quotes.
    #[error("expected 1 to {max} characters between the quotes {at}, found `\"\"`")]
    EmptyQuotedValue {
        /// Where the opening quote is.
        at: Location,
        /// The longest value accepted.
        max: usize,
    },
    /// A tag pattern whose key and value are both missing or `*` (`=`, `*=*`):
    /// it would match every tag of every device.
    #[error("tag pattern `{text}` {at} matches every tag, expected a tag key, a tag value or both")]
    MatchesEverything {
        /// Where the pattern starts.
        at: Location,
        /// The pattern as written, shortened.
        text: String,
    },
    /// More distinct device IDs than [`Limits::max_device_ids`](super::Limits::max_device_ids).
    #[error("expected at most {max} distinct device IDs, found one more, `{text}`, {at}")]
    TooManyDeviceIds {
        /// Where the first device ID past the limit is.
        at: Location,
        /// That device ID, shortened.
        text: String,
        /// The limit.
        max: usize,
    },
    /// More distinct tag patterns than [`Limits::max_tag_patterns`](super::Limits::max_tag_patterns).
    #[error("expected at most {max} distinct tag patterns, found one more, `{text}`, {at}")]
    TooManyTagPatterns {
        /// Where the first tag pattern past the limit is.
        at: Location,
        /// That tag pattern, shortened.
        text: String,
        /// The limit.
        max: usize,
    },
    /// A text longer than [`Limits::max_input_bytes`](super::Limits::max_input_bytes),
    /// rejected before any parsing.
    #[error(
        "expected at most {max} bytes of restriction text, found {len}: `{text}` {at} is past the limit"
    )]
    InputTooLong {
        /// The first character past the limit.
        at: Location,
        /// The input past the limit, shortened.
        text: String,
        /// The length of the text in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl RestrictionError {
    /// Where the error was found.
    pub fn location(&self) -> Location {
        match self {
            Self::Empty { at }
            | Self::Syntax { at, .. }
            | Self::InvalidCharacter { at, .. }
            | Self::TooLong { at, .. }
            | Self::EmptyQuotedValue { at, .. }
            | Self::MatchesEverything { at, .. }
            | Self::TooManyDeviceIds { at, .. }
            | Self::TooManyTagPatterns { at, .. }
            | Self::InputTooLong { at, .. } => *at,
        }
    }

    /// The byte offset of the error in the restriction text; `None` for errors of
    /// [`Restriction::from_parts`](super::Restriction::from_parts), which name an
    /// index into its lists instead (see [`RestrictionError::location`]).
    pub fn offset(&self) -> Option<usize> {
        match self.location() {
            Location::Byte(offset) => Some(offset),
            Location::DeviceId(_) | Location::TagFilter(_) => None,
        }
    }
}

/// The offending input of a [`RestrictionError::Syntax`].
struct Found<'a>(Option<&'a str>);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => write!(f, "`{text}`"),
            None => f.write_str("the end of the input"),
        }
    }
}

/// `text` shortened to a few characters, control characters escaped, `…` marking
/// a cut.
pub(super) fn snippet(text: &str) -> String {
    crate::text::excerpt(text, 0, SNIPPET_CHARS)
}

/// The offending input at the start of `rest`: its first character and what
/// follows up to the next `,`, shortened. `None` at the end of the input.
pub(super) fn found_at(rest: &str) -> Option<String> {
    let mut chars = rest.chars();
    let first = chars.next()?;
    let tail = chars.as_str();
    let end = if first == ',' {
        0
    } else {
        tail.find(',').unwrap_or(tail.len())
    };
    let len = first.len_utf8() + end;
    Some(snippet(rest.get(..len).unwrap_or(rest)))
}
