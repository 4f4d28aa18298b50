//! Topic names and topic filters, validated per MQTT 3.1.1 and 5, and matching.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use core::str::FromStr;

/// Longest topic name or filter MQTT can carry, in bytes (a 16-bit length).
pub const MAX_TOPIC_LEN: usize = 65535;

/// Longest piece of offending input quoted in an error message, in characters.
const SNIPPET_CHARS: usize = 32;
/// How many characters before the offending byte a long quote starts.
const SNIPPET_LEAD: usize = 12;

/// What a [`TopicError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicKind {
    /// A topic name, as in PUBLISH: no wildcards.
    Name,
    /// A topic filter, as in SUBSCRIBE: may hold `+` and `#` wildcards.
    Filter,
    /// The prefix of [`TopicRules`](super::TopicRules): one topic level.
    Prefix,
}

impl fmt::Display for TopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Name => "topic name",
            Self::Filter => "topic filter",
            Self::Prefix => "topic prefix",
        })
    }
}

/// Why a text is not a valid topic name, topic filter or topic prefix.
///
/// Every message is one line, names the byte offset of the problem when there
/// is one and what was expected, and quotes the offending input in backticks,
/// shortened to a window around the problem with control characters escaped.
///
/// ```
/// use structure_access::mqtt::{TopicError, TopicFilter};
///
/// let err = TopicFilter::new("fleet/truck+/state").unwrap_err();
/// assert_eq!(err.offset(), Some(11));
/// assert_eq!(
///     err.to_string(),
///     "unexpected `+` at byte 11 of topic filter `fleet/truck+/state`, \
///      expected a wildcard to fill a whole level, between `/` separators"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The text is empty: MQTT requires at least one character.
    #[error("expected a {kind} of at least one character, found an empty string")]
    Empty {
        /// What was expected.
        kind: TopicKind,
    },
    /// The text is longer than allowed ([`MAX_TOPIC_LEN`], or a policy's own limit).
    #[error("{kind} `{text}` is {len} bytes long, expected at most {max}")]
    TooLong {
        /// What is too long.
        kind: TopicKind,
        /// The start of the text, shortened.
        text: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A NUL character (U+0000), which MQTT forbids anywhere in a topic.
    #[error(
        "unexpected NUL character (U+0000) at byte {offset} of {kind} `{text}`, expected any other character"
    )]
    Nul {
        /// What the NUL is part of.
        kind: TopicKind,
        /// Its byte offset.
        offset: usize,
        /// The text around it, shortened, the NUL escaped.
        text: String,
    },
    /// A `+` or `#` in a topic name: wildcards belong to filters only.
    #[error(
        "unexpected wildcard `{found}` at byte {offset} of topic name `{text}`, expected a topic name without `+` or `#`"
    )]
    WildcardInName {
        /// The wildcard.
        found: char,
        /// Its byte offset.
        offset: usize,
        /// The text around it, shortened.
        text: String,
    },
    /// A `+` or `#` in a filter that shares its level with other characters.
    #[error(
        "unexpected `{found}` at byte {offset} of topic filter `{text}`, expected a wildcard to fill a whole level, between `/` separators"
    )]
    WildcardNotALevel {
        /// The wildcard.
        found: char,
        /// Its byte offset.
        offset: usize,
        /// The text around it, shortened.
        text: String,
    },
    /// A `#` followed by more levels.
    #[error(
        "unexpected `/` after `#` at byte {offset} of topic filter `{text}`, expected `#` only as the last level"
    )]
    HashNotLast {
        /// The byte offset of the `#`.
        offset: usize,
        /// The text around it, shortened.
        text: String,
    },
    /// A shared subscription (`$share/{group}/{filter}`) without a group, with
    /// a group holding `+` or `#`, or without a filter (MQTT 5 §4.8.2).
    #[error(
        "malformed shared subscription `{text}`, expected `$share/{{group}}/{{filter}}` with a group of at least one character without `/`, `+` or `#`, and a filter"
    )]
    SharedSubscription {
        /// The filter, shortened.
        text: String,
    },
    /// A prefix holding `/`, `+` or `#`: a prefix is one literal level.
    #[error(
        "unexpected `{found}` at byte {offset} of topic prefix `{text}`, expected a single topic level without `/`, `+` or `#`"
    )]
    PrefixNotALevel {
        /// The character.
        found: char,
        /// Its byte offset.
        offset: usize,
        /// The text around it, shortened.
        text: String,
    },
}

impl TopicError {
    pub(crate) fn shared_subscription(text: &str) -> Self {
        Self::SharedSubscription {
            text: snippet(text, 0),
        }
    }

    /// The byte offset of the problem, if it is at one place.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::Empty { .. } | Self::TooLong { .. } | Self::SharedSubscription { .. } => None,
            Self::Nul { offset, .. }
            | Self::WildcardInName { offset, .. }
            | Self::WildcardNotALevel { offset, .. }
            | Self::HashNotLast { offset, .. }
            | Self::PrefixNotALevel { offset, .. } => Some(*offset),
        }
    }

    /// What the rejected text was meant to be.
    pub fn kind(&self) -> TopicKind {
        match self {
            Self::Empty { kind } | Self::TooLong { kind, .. } | Self::Nul { kind, .. } => *kind,
            Self::WildcardInName { .. } => TopicKind::Name,
            Self::WildcardNotALevel { .. }
            | Self::HashNotLast { .. }
            | Self::SharedSubscription { .. } => TopicKind::Filter,
            Self::PrefixNotALevel { .. } => TopicKind::Prefix,
        }
    }
}

/// `text` as quoted in a message: whole if short, else a window starting a few
/// characters before byte `offset`; `…` marks a cut, control characters are
/// escaped. `offset` is a character boundary (every offset reported is).
fn snippet(text: &str, offset: usize) -> String {
    let start = if text.chars().nth(SNIPPET_CHARS).is_none() {
        0
    } else {
        let before = text.get(..offset).unwrap_or_default();
        before
            .char_indices()
            .rev()
            .take(SNIPPET_LEAD)
            .last()
            .map_or(offset, |(i, _)| i)
    };
    crate::text::excerpt(text, start, SNIPPET_CHARS)
}

/// Checks emptiness and length, before anything else.
fn check_len(text: &str, kind: TopicKind, max: usize) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty { kind });
    }
    if text.len() > max {
        return Err(TopicError::TooLong {
            kind,
            text: snippet(text, 0),
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// The offset of the first NUL, `+` or `#` in `bytes`. Eight bytes at a time
/// (a NUL-byte test on each pattern, as in `memchr`): topics are validated on
/// every message.
fn find_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const fn has_zero_byte(x: u64) -> bool {
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    }
    let mut chunks = bytes.chunks_exact(8);
    let mut skipped = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        if has_zero_byte(x)
            || has_zero_byte(x ^ (ONES * u64::from(b'+')))
            || has_zero_byte(x ^ (ONES * u64::from(b'#')))
        {
            break;
        }
        skipped += 8;
    }
    bytes
        .get(skipped..)
        .unwrap_or_default()
        .iter()
        .position(|&b| matches!(b, 0 | b'+' | b'#'))
        .map(|i| skipped + i)
}

fn check_name(text: &str) -> Result<(), TopicError> {
    check_len(text, TopicKind::Name, MAX_TOPIC_LEN)?;
    let bytes = text.as_bytes();
    match find_special(bytes).and_then(|offset| Some((offset, *bytes.get(offset)?))) {
        None => Ok(()),
        Some((offset, 0)) => Err(TopicError::Nul {
            kind: TopicKind::Name,
            offset,
            text: snippet(text, offset),
        }),
        Some((offset, b)) => Err(TopicError::WildcardInName {
            found: char::from(b),
            offset,
            text: snippet(text, offset),
        }),
    }
}

/// Checks a filter against `max` bytes; returns the length of its literal
/// prefix (the bytes before its first wildcard, all of it if none).
fn check_filter(text: &str, max: usize) -> Result<usize, TopicError> {
    check_len(text, TopicKind::Filter, max)?;
    let bytes = text.as_bytes();
    let Some(first) = find_special(bytes) else {
        return Ok(bytes.len());
    };
    let mut literal = None;
    for (offset, &b) in bytes.iter().enumerate().skip(first) {
        match b {
            0 => {
                return Err(TopicError::Nul {
                    kind: TopicKind::Filter,
                    offset,
                    text: snippet(text, offset),
                });
            }
            b'+' | b'#' => {
                literal.get_or_insert(offset);
                let before = offset.checked_sub(1).and_then(|i| bytes.get(i));
                let after = bytes.get(offset + 1);
                let alone = before.is_none_or(|&c| c == b'/') && after.is_none_or(|&c| c == b'/');
                if !alone {
                    return Err(TopicError::WildcardNotALevel {
                        found: char::from(b),
                        offset,
                        text: snippet(text, offset),
                    });
                }
                if b == b'#' && after.is_some() {
                    return Err(TopicError::HashNotLast {
                        offset,
                        text: snippet(text, offset),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(literal.unwrap_or(bytes.len()))
}

/// Checks a [`TopicRules`](super::TopicRules) prefix: one literal level.
pub(crate) fn check_prefix(text: &str) -> Result<(), TopicError> {
    check_len(text, TopicKind::Prefix, MAX_TOPIC_LEN)?;
    match text
        .bytes()
        .enumerate()
        .find(|&(_, b)| matches!(b, 0 | b'/' | b'+' | b'#'))
    {
        None => Ok(()),
        Some((offset, 0)) => Err(TopicError::Nul {
            kind: TopicKind::Prefix,
            offset,
            text: snippet(text, offset),
        }),
        Some((offset, b)) => Err(TopicError::PrefixNotALevel {
            found: char::from(b),
            offset,
            text: snippet(text, offset),
        }),
    }
}

/// A validated MQTT topic name (what a PUBLISH carries), borrowed: validation
/// allocates nothing and the view is `Copy`.
///
/// Valid: 1 to 65535 bytes of UTF-8 (guaranteed by `&str`), no NUL (U+0000), no
/// `+` or `#`. Empty levels are allowed (`a//b`, `/a`, `a/`), as MQTT allows
/// them. Topics starting with `$` (such as `$SYS/…`) are valid names; they are
/// never matched by a filter starting with a wildcard.
///
/// ```
/// use structure_access::mqtt::Topic;
///
/// let topic = Topic::new("structure/5f2b8c1e9a4d3b7c6e1f0a2b/state")?;
/// assert_eq!(topic.levels().count(), 3);
/// assert!(Topic::new("structure/+/state").is_err());
/// # Ok::<(), structure_access::mqtt::TopicError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic<'a>(&'a str);

impl<'a> Topic<'a> {
    /// Validates `text` as a topic name.
    pub fn new(text: &'a str) -> Result<Self, TopicError> {
        check_name(text)?;
        Ok(Self(text))
    }

    /// A topic built from parts that are valid by construction (a
    /// [`TopicRules`](super::TopicRules) prefix, a device ID, a fixed level).
    pub(crate) const fn from_valid_parts(text: &'a str) -> Self {
        Self(text)
    }

    /// The topic as text.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }

    /// The levels, split at `/` (at least one, possibly empty).
    pub fn levels(&self) -> impl DoubleEndedIterator<Item = &'a str> + Clone + 'a {
        self.0.split('/')
    }

    /// Whether the first level starts with `$` (such topics are for the server,
    /// and wildcards in a filter's first level never match them).
    #[must_use]
    pub fn is_dollar(&self) -> bool {
        self.0.starts_with('$')
    }

    /// The topic as a filter without wildcards, which matches only itself.
    pub const fn as_filter(&self) -> TopicFilter<'a> {
        TopicFilter {
            text: self.0,
            literal: self.0.len(),
        }
    }
}

impl<'a> TryFrom<&'a str> for Topic<'a> {
    type Error = TopicError;

    fn try_from(text: &'a str) -> Result<Self, TopicError> {
        Self::new(text)
    }
}

impl AsRef<str> for Topic<'_> {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl fmt::Display for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Topic").field(&self.0).finish()
    }
}

/// A validated MQTT topic filter (what a SUBSCRIBE carries), borrowed: validation
/// allocates nothing and the view is `Copy`.
///
/// Valid: what a [`Topic`] allows, except that `+` (one level) and `#` (any
/// number of levels, including none: `a/#` matches `a`) may appear, each only as
/// a whole level, and `#` only as the last level.
///
/// ```
/// use structure_access::mqtt::{Topic, TopicFilter};
///
/// let filter = TopicFilter::new("sport/+/player1/#")?;
/// assert!(filter.matches(Topic::new("sport/tennis/player1")?));
/// assert!(filter.matches(Topic::new("sport/tennis/player1/ranking/wimbledon")?));
/// assert!(!filter.matches(Topic::new("sport/player1")?));
/// // A wildcard in the first level never matches a `$` topic.
/// assert!(!TopicFilter::new("#")?.matches(Topic::new("$SYS/uptime")?));
/// assert!(TopicFilter::new("$SYS/#")?.matches(Topic::new("$SYS/uptime")?));
/// # Ok::<(), structure_access::mqtt::TopicError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter<'a> {
    text: &'a str,
    /// Length of the literal prefix: the bytes before the first wildcard level
    /// (all of them without one). Non-empty, it ends with `/`.
    literal: usize,
}

impl<'a> TopicFilter<'a> {
    /// Validates `text` as a topic filter.
    pub fn new(text: &'a str) -> Result<Self, TopicError> {
        let literal = check_filter(text, MAX_TOPIC_LEN)?;
        Ok(Self { text, literal })
    }

    /// The filter as text.
    pub const fn as_str(&self) -> &'a str {
        self.text
    }

    /// The levels, split at `/` (at least one, possibly empty).
    pub fn levels(&self) -> impl DoubleEndedIterator<Item = &'a str> + Clone + 'a {
        self.text.split('/')
    }

    /// Whether the filter holds a `+` or `#` level.
    #[must_use]
    pub const fn has_wildcards(&self) -> bool {
        self.literal < self.text.len()
    }

    /// The filter as a topic name, if it has no wildcards (it then matches that
    /// one topic only).
    pub const fn as_topic(&self) -> Option<Topic<'a>> {
        if self.has_wildcards() {
            None
        } else {
            Some(Topic(self.text))
        }
    }

    /// Whether the filter matches `topic`, per MQTT: level by level, `+`
    /// matching any one level, `#` any number of remaining levels including
    /// none, and neither matching a first level that starts with `$`.
    #[must_use]
    pub fn matches(&self, topic: Topic<'_>) -> bool {
        let (Some(literal), Some(wild)) =
            (self.text.get(..self.literal), self.text.get(self.literal..))
        else {
            return false;
        };
        if wild.is_empty() {
            return self.text == topic.0;
        }
        // The literal prefix is compared as bytes, which rejects most filters of
        // a long list at once.
        let Some(rest) = topic.0.strip_prefix(literal) else {
            // `a/#` also matches its parent `a`.
            return wild == "#" && literal.strip_suffix('/') == Some(topic.0);
        };
        if literal.is_empty() && topic.is_dollar() {
            return false;
        }
        let mut topic_levels = rest.split('/');
        for level in wild.split('/') {
            match (level, topic_levels.next()) {
                ("#", _) => return true,
                (_, None) => return false,
                ("+", Some(_)) => {}
                (level, Some(other)) if level == other => {}
                _ => return false,
            }
        }
        topic_levels.next().is_none()
    }

    /// Whether some topic is matched by both filters.
    ///
    /// ```
    /// use structure_access::mqtt::TopicFilter;
    ///
    /// let a = TopicFilter::new("fleet/+/gps")?;
    /// assert!(a.intersects(TopicFilter::new("fleet/truck1/#")?));
    /// assert!(!a.intersects(TopicFilter::new("fleet/+/speed")?));
    /// assert!(!TopicFilter::new("+/x")?.intersects(TopicFilter::new("$SYS/x")?));
    /// # Ok::<(), structure_access::mqtt::TopicError>(())
    /// ```
    #[must_use]
    pub fn intersects(&self, other: TopicFilter<'_>) -> bool {
        if self.literals_conflict(other) {
            return false;
        }
        let mut mine = self.levels();
        let mut theirs = other.levels();
        // A first level forced to be empty: the topic of that one level would be
        // the empty string, which is not a topic.
        let empty_first = self.text.starts_with('/') || other.text.starts_with('/');
        let mut depth = 0;
        loop {
            match (mine.next(), theirs.next()) {
                (None, None) => return true,
                // `#` takes any rest, including none (the level above it).
                (Some("#"), other) | (other, Some("#")) => {
                    return match other {
                        None => !(depth == 1 && empty_first),
                        Some(level) => !(depth == 0 && level.starts_with('$')),
                    };
                }
                (None, Some(_)) | (Some(_), None) => return false,
                (Some("+"), Some(level)) | (Some(level), Some("+")) => {
                    if depth == 0 && level.starts_with('$') {
                        return false;
                    }
                }
                (Some(a), Some(b)) => {
                    if a != b {
                        return false;
                    }
                }
            }
            depth += 1;
        }
    }

    /// Whether the literal prefixes of both filters differ in a byte they both
    /// have: then some level is literal in both and different, and no topic
    /// matches both. A `memcmp` that settles most pairs without splitting levels.
    pub(crate) fn literals_conflict(&self, other: TopicFilter<'_>) -> bool {
        let common = self.literal.min(other.literal);
        self.text.as_bytes().get(..common) != other.text.as_bytes().get(..common)
    }

    /// The index of the `#` level, if the filter ends with one.
    pub(crate) fn hash_level(&self) -> Option<usize> {
        if self.text == "#" {
            Some(0)
        } else if self.text.ends_with("/#") {
            Some(self.text.bytes().filter(|&b| b == b'/').count())
        } else {
            None
        }
    }
}

impl<'a> TryFrom<&'a str> for TopicFilter<'a> {
    type Error = TopicError;

    fn try_from(text: &'a str) -> Result<Self, TopicError> {
        Self::new(text)
    }
}

impl<'a> From<Topic<'a>> for TopicFilter<'a> {
    fn from(topic: Topic<'a>) -> Self {
        topic.as_filter()
    }
}

impl AsRef<str> for TopicFilter<'_> {
    fn as_ref(&self) -> &str {
        self.text
    }
}

impl fmt::Display for TopicFilter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

impl fmt::Debug for TopicFilter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TopicFilter").field(&self.text).finish()
    }
}

/// An owned, validated topic filter, for lists kept in a policy.
///
/// ```
/// use structure_access::mqtt::{Topic, TopicFilterBuf};
///
/// let filter: TopicFilterBuf = "alerts/#".parse()?;
/// assert!(filter.as_filter().matches(Topic::new("alerts/fire")?));
/// # Ok::<(), structure_access::mqtt::TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilterBuf {
    text: Box<str>,
    literal: usize,
}

impl TopicFilterBuf {
    /// Validates `text` as a topic filter of at most [`MAX_TOPIC_LEN`] bytes.
    pub fn new(text: &str) -> Result<Self, TopicError> {
        Self::with_max_len(text, MAX_TOPIC_LEN)
    }

    /// Validates `text` as a topic filter of at most `max` bytes (and at most
    /// [`MAX_TOPIC_LEN`]).
    pub fn with_max_len(text: &str, max: usize) -> Result<Self, TopicError> {
        let literal = check_filter(text, max.min(MAX_TOPIC_LEN))?;
        Ok(Self {
            text: text.into(),
            literal,
        })
    }

    /// The borrowed view.
    pub fn as_filter(&self) -> TopicFilter<'_> {
        TopicFilter {
            text: &self.text,
            literal: self.literal,
        }
    }

    /// The filter as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for TopicFilterBuf {
    type Err = TopicError;

    fn from_str(text: &str) -> Result<Self, TopicError> {
        Self::new(text)
    }
}

impl TryFrom<&str> for TopicFilterBuf {
    type Error = TopicError;

    /// Same as [`TopicFilterBuf::new`].
    fn try_from(text: &str) -> Result<Self, TopicError> {
        Self::new(text)
    }
}

impl TryFrom<String> for TopicFilterBuf {
    type Error = TopicError;

    /// Same as [`TopicFilterBuf::new`].
    fn try_from(text: String) -> Result<Self, TopicError> {
        Self::new(&text)
    }
}

impl From<TopicFilter<'_>> for TopicFilterBuf {
    fn from(filter: TopicFilter<'_>) -> Self {
        Self {
            text: filter.text.into(),
            literal: filter.literal,
        }
    }
}

impl AsRef<str> for TopicFilterBuf {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TopicFilterBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for TopicFilterBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TopicFilterBuf").field(&&*self.text).finish()
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for TopicFilterBuf {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for TopicFilterBuf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(crate::serde_util::FromStrVisitor::new(
            "an MQTT topic filter",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_show_a_window_around_the_offset() {
        assert_eq!(snippet("a/b", 1), "a/b");
        let long = "0123456789".repeat(10);
        assert_eq!(snippet(&long, 0), "01234567890123456789012345678901…");
        // From 12 characters before byte 50, 32 characters.
        assert_eq!(snippet(&long, 50), "…89012345678901234567890123456789…");
        assert_eq!(snippet("a\0b", 1), "a\\u{0}b");
    }

    #[test]
    fn hash_level_is_the_index_of_the_last_level() {
        let level = |f: &str| TopicFilter::new(f).unwrap().hash_level();
        assert_eq!(level("#"), Some(0));
        assert_eq!(level("a/#"), Some(1));
        assert_eq!(level("/#"), Some(1));
        assert_eq!(level("a/+/#"), Some(2));
        assert_eq!(level("a/+"), None);
    }
}
