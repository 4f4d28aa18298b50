//! Restrictions: which devices a restricted key may authenticate and see.
//!
//! A [`Restriction`] is a set of device IDs and [`TagPattern`]s. A device is in
//! its scope when its ID is listed **or** any of its tags matches any pattern.
//! Matching is exact and case-sensitive.
//!
//! # Text form
//!
//! A comma-separated list of entries; white space (space, tab, CR, LF) around
//! entries and around `=` is ignored:
//!
//! | entry | matches |
//! |---|---|
//! | `5f2b8c1e9a4d3b7c6e1f0a2b` | the device with that ID: 1 to 128 characters of `0-9 A-Z a-z _ . : -` |
//! | `vehicle=truck` | devices with a tag `vehicle` whose value is `truck` |
//! | `vehicle=` or `vehicle=*` | devices with a tag `vehicle`, whatever its value |
//! | `=truck` or `*=truck` | devices with any tag whose value is `truck` |
//! | `floor="Building 4, West"` | a quoted value: `\"` and `\\` are the only escapes |
//!
//! A tag key is 1 to 255 characters of `0-9 A-Z a-z _ -`. A tag value is 1 to 255
//! characters (Unicode scalar values, counted after unescaping). A bare value
//! may not contain `,`, `=` or `"` and loses its leading and trailing white
//! space; a quoted value may contain anything but an invisible character.
//! Invisible characters are rejected in every value, quoted or not: control
//! characters (Unicode category Cc: U+0000–U+001F, U+007F–U+009F), format
//! characters (Cf: zero-width characters such as U+200B, bidirectional controls
//! such as U+202E, the byte order mark) and the line and paragraph separators
//! U+2028 and U+2029. No platform value needs them, and they make restrictions
//! that print alike but differ: `vehicle=truck` followed by a U+200B would look
//! like `vehicle=truck` and match no truck. `=`, `*=*`, `=*`, `*=` and an empty
//! list are errors: an unrestricted key is
//! [`Scope::Unrestricted`](crate::Scope::Unrestricted), not a pattern that
//! matches everything.
//!
//! # Canonical form
//!
//! [`Display`](core::fmt::Display) prints device IDs, then tag patterns, each
//! sorted (IDs by bytes; patterns by key, then value, with a wildcard before any
//! text) and de-duplicated, joined by `,` without spaces. Wildcards print as `*`.
//! A value is quoted only when its bare form would read back differently: when it
//! is `*`, contains `,`, `=` or `"`, or starts or ends with white space
//! ([`char::is_whitespace`]); inside quotes `"` and `\` are escaped. So
//! `parse(display(r)) == r` for every restriction, and since no value holds an
//! invisible character, two different restrictions never print alike.
//!
//! # Limits
//!
//! [`Limits`] bounds the work and memory of building a restriction from any
//! input; the defaults are the platform's. The text length is checked before
//! anything else; device IDs and tag patterns are counted after de-duplication
//! (a restriction is a set), as they are added, so a long list is refused at the
//! first entry past the limit. Exceeding a limit is an error, never a truncation.
//!
//! ```
//! use structure_access::{DeviceRecord, Restriction};
//!
//! let r: Restriction = " vehicle = truck , color=, 5f2b8c1e9a4d3b7c6e1f0a2b".parse()?;
//! assert_eq!(r.to_string(), "5f2b8c1e9a4d3b7c6e1f0a2b,color=*,vehicle=truck");
//!
//! let red_car = DeviceRecord::new("app1".parse()?, "000000000000000000000001".parse()?)
//!     .with_tag("vehicle", "car")
//!     .with_tag("color", "red");
//! assert!(r.can_see(&red_car)); // any color
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod display;
mod error;
mod parse;
#[cfg(feature = "serde")]
mod wire;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::hash::{BuildHasher, Hash, Hasher};
use core::str::FromStr;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::device::{Device, MAX_DEVICE_ID_LEN, is_device_id_byte};
use crate::text::is_invisible;

pub use error::{Item, Location, RestrictionError};

use display::PatternText;
use error::snippet;

/// Bounds on what a restriction may hold, checked while it is built.
///
/// [`Limits::default`] is the platform's: 1000 device IDs, 100 tag patterns,
/// 64 KiB of text, tag keys and values of 255 characters, device IDs of 128.
/// Raise or lower any of them:
///
/// ```
/// use structure_access::{Limits, Restriction};
///
/// let mut limits = Limits::default();
/// limits.max_device_ids = 2;
/// let err = Restriction::parse_with_limits("a,b,c", &limits).unwrap_err();
/// assert_eq!(err.offset(), Some(4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// Most distinct device IDs.
    pub max_device_ids: usize,
    /// Most distinct tag patterns.
    pub max_tag_patterns: usize,
    /// Longest restriction text, in bytes. Checked before parsing; does not apply
    /// to [`Restriction::from_parts`].
    pub max_input_bytes: usize,
    /// Longest device ID, in characters.
    pub max_device_id_chars: usize,
    /// Longest tag key, in characters.
    pub max_tag_key_chars: usize,
    /// Longest tag value, in characters (Unicode scalar values, after unescaping).
    pub max_tag_value_chars: usize,
}

impl Limits {
    /// The platform's limits, also [`Limits::default`].
    pub const PLATFORM: Self = Self {
        max_device_ids: 1000,
        max_tag_patterns: 100,
        max_input_bytes: 64 * 1024,
        max_device_id_chars: MAX_DEVICE_ID_LEN,
        max_tag_key_chars: 255,
        max_tag_value_chars: 255,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::PLATFORM
    }
}

/// One tag pattern of a restriction: a key, a value, or both; a missing side is
/// a wildcard.
///
/// Its [`Display`](fmt::Display) is its canonical text, `*` for a wildcard:
///
/// ```
/// use structure_access::Restriction;
///
/// let r: Restriction = "=truck,vehicle=".parse()?;
/// let patterns = r.tag_patterns();
/// assert_eq!((patterns[0].key(), patterns[0].value()), (None, Some("truck")));
/// assert_eq!(patterns[0].to_string(), "*=truck");
/// assert_eq!(patterns[1].to_string(), "vehicle=*");
/// # Ok::<(), structure_access::RestrictionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagPattern {
    // Never both `None`.
    key: Option<Arc<str>>,
    value: Option<Arc<str>>,
}

impl TagPattern {
    /// The key, `None` for any key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The value, `None` for any value.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Whether a tag `key=value` matches this pattern (case-sensitive).
    #[must_use]
    pub fn matches(&self, key: &str, value: &str) -> bool {
        self.key().is_none_or(|k| k == key) && self.value().is_none_or(|v| v == value)
    }

    /// The pattern as a [`TagFilter`], the platform's `deviceTags` entry.
    pub fn as_filter(&self) -> TagFilter<'_> {
        TagFilter::new(self.key(), self.value())
    }
}

/// A tag filter as the platform's API writes it (an entry of `deviceTags`), the
/// input of [`Restriction::from_parts`].
///
/// A key that is `None`, empty or `*` means any key; a value that is `None` or
/// empty means any value. A value of `*` is the literal text `*`: the platform
/// stores values, not patterns, so reading it as a wildcard could silently widen
/// a key's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TagFilter<'a> {
    /// The tag key, if the filter names one.
    pub key: Option<&'a str>,
    /// The tag value, if the filter names one.
    pub value: Option<&'a str>,
}

impl<'a> TagFilter<'a> {
    /// A filter from its key and value.
    pub const fn new(key: Option<&'a str>, value: Option<&'a str>) -> Self {
        Self { key, value }
    }
}

/// A set of device IDs and tag patterns: the scope of a restricted key.
///
/// Built from text ([`FromStr`], [`Restriction::parse_with_limits`]) or from the
/// platform's lists ([`Restriction::from_parts`]); see the [module
/// documentation](self) for the grammar, the canonical form and the limits.
/// Equality and hashing are those of the sets.
///
/// [`Restriction::can_see`] answers from hashed indexes built once: its cost
/// depends on the number of the device's tags, not on the size of the
/// restriction, and it allocates nothing.
///
/// With the `serde` feature a restriction serialises as its canonical text and
/// deserialises from that text or from the platform's object
/// `{"deviceIds": [...], "deviceTags": [{"key": ..., "value": ...}]}` (either list
/// may be missing; `key` and `value` may be missing or `null`; other fields are
/// refused), both with the default [`Limits`].
///
/// ```
/// use structure_access::{DeviceRecord, Restriction};
///
/// let r: Restriction = "color=red,1a2b3c4d5e6f7g8h9i0j1k2l".parse()?;
/// let listed = DeviceRecord::new("app1".parse()?, "1a2b3c4d5e6f7g8h9i0j1k2l".parse()?);
/// let red = DeviceRecord::new("app1".parse()?, "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?).with_tag("color", "red");
/// let blue = DeviceRecord::new("app1".parse()?, "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?).with_tag("color", "blue");
/// assert!(r.can_see(&listed));
/// assert!(r.can_see(&red));
/// assert!(!r.can_see(&blue));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Restriction {
    /// The device IDs, sorted, as places in `index.id_text`.
    ids: Box<[Span]>,
    patterns: Box<[TagPattern]>,
    index: Index,
}

impl Restriction {
    /// Parses the text form with the given limits ([`FromStr`] uses
    /// [`Limits::default`]).
    ///
    /// ```
    /// use structure_access::{Limits, Restriction};
    ///
    /// let mut limits = Limits::default();
    /// limits.max_tag_value_chars = 4;
    /// assert!(Restriction::parse_with_limits("vehicle=car", &limits).is_ok());
    /// let err = Restriction::parse_with_limits("vehicle=truck", &limits).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "tag value `truck` at byte 8 is 5 characters long, expected at most 4"
    /// );
    /// ```
    pub fn parse_with_limits(text: &str, limits: &Limits) -> Result<Self, RestrictionError> {
        parse::parse(text, limits)
    }

    /// Builds a restriction from device IDs and tag filters, the platform API's
    /// `deviceIds` and `deviceTags`, with the same rules and limits as the text
    /// form. Values are taken as they are (nothing is trimmed or unescaped);
    /// errors name the index of the offending entry.
    ///
    /// ```
    /// use structure_access::{Limits, Restriction, TagFilter};
    ///
    /// let r = Restriction::from_parts(
    ///     ["5f2b8c1e9a4d3b7c6e1f0a2b"],
    ///     [TagFilter::new(Some("floor"), Some("Building 4, West")), TagFilter::new(Some("vehicle"), None)],
    ///     &Limits::default(),
    /// )?;
    /// assert_eq!(r.to_string(), r#"5f2b8c1e9a4d3b7c6e1f0a2b,floor="Building 4, West",vehicle=*"#);
    /// assert_eq!(r, r.to_string().parse()?);
    /// # Ok::<(), structure_access::RestrictionError>(())
    /// ```
    pub fn from_parts<'a, I, T>(
        device_ids: I,
        tag_filters: T,
        limits: &Limits,
    ) -> Result<Self, RestrictionError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
        T: IntoIterator<Item = TagFilter<'a>>,
    {
        let mut builder = Builder::new(limits);
        for (index, id) in device_ids.into_iter().enumerate() {
            builder.add_device_id(id.as_ref(), Location::DeviceId(index))?;
        }
        for (index, filter) in tag_filters.into_iter().enumerate() {
            builder.add_filter(filter, Location::TagFilter(index))?;
        }
        builder.finish(Location::DeviceId(0))
    }

    /// Whether `device` is in scope: its ID is listed, or one of its tags matches
    /// one of the patterns.
    ///
    /// Costs one table lookup for the ID and, per tag, two string hashes and two
    /// bit tests, plus a table lookup when a bit is set (a real match, or about
    /// one time in 64): the same whatever the size of the restriction. Allocates
    /// nothing.
    #[inline]
    #[must_use]
    pub fn can_see<D: Device + ?Sized>(&self, device: &D) -> bool {
        self.index.contains_id(device.id())
            || device
                .tags()
                .any(|(key, value)| self.index.matches_tag(key, value))
    }

    /// Whether `id` is one of the listed device IDs.
    #[must_use]
    pub fn contains_device_id(&self, id: &str) -> bool {
        self.index.contains_id(id)
    }

    /// Whether a tag `key=value` matches one of the tag patterns.
    #[must_use]
    pub fn matches_tag(&self, key: &str, value: &str) -> bool {
        self.index.matches_tag(key, value)
    }

    /// The listed device IDs, sorted.
    pub fn device_ids(&self) -> impl ExactSizeIterator<Item = &str> + DoubleEndedIterator + Clone {
        self.ids.iter().map(|&span| self.index.id(span))
    }

    /// The tag patterns, sorted by key, then value (wildcards first).
    pub fn tag_patterns(&self) -> &[TagPattern] {
        &self.patterns
    }
}

impl FromStr for Restriction {
    type Err = RestrictionError;

    /// Parses the text form with [`Limits::default`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse(s, &Limits::PLATFORM)
    }
}

impl PartialEq for Restriction {
    fn eq(&self, other: &Self) -> bool {
        self.device_ids().eq(other.device_ids()) && self.patterns == other.patterns
    }
}

impl Eq for Restriction {}

impl Hash for Restriction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.ids.len());
        for id in self.device_ids() {
            id.hash(state);
        }
        self.patterns.hash(state);
    }
}

impl fmt::Debug for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Ids<'a>(&'a Restriction);
        impl fmt::Debug for Ids<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.device_ids()).finish()
            }
        }
        f.debug_struct("Restriction")
            .field("device_ids", &Ids(self))
            .field("tag_patterns", &self.patterns)
            .finish()
    }
}

/// The hashed form `can_see` reads. One hasher serves every table, so a tag
/// value is hashed once and looked up both among the any-key values and among
/// its key's values.
#[derive(Clone, Default)]
struct Index {
    hasher: DefaultHashBuilder,
    /// Every device ID, end to end: one allocation rather than one per ID.
    id_text: String,
    ids: HashTable<Span>,
    /// Values of `*=value` patterns.
    any_key: HashTable<Arc<str>>,
    /// Keys of `key=*` and `key=value` patterns.
    keys: HashTable<KeyEntry>,
    /// The hashes of `any_key`'s values and of `keys`' keys.
    filter: Filter,
}

/// Where a device ID lies in [`Index::id_text`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// The text of `span` in `text`.
#[inline]
fn span_text(text: &str, span: Span) -> &str {
    text.get(span.start..span.end).unwrap_or_default()
}

/// Set apart the hashes of keys from those of values in the [`Filter`]: a
/// string that is both a key and a value takes two bits.
const KEY_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// A Bloom filter with one hash function and about 64 bits per entry: a clear
/// bit proves a string is not in a table, so most tags that match nothing cost
/// two bit tests instead of two table probes. A set bit (a real entry, or a
/// collision about once in 64) leads to the probe. The filter's density, and so
/// its cost, is the same for a restriction of one pattern or of a hundred.
#[derive(Clone, Default)]
struct Filter {
    words: Box<[u64]>,
    /// `words.len() - 1`; the length is a power of two.
    mask: u64,
}

impl Filter {
    fn with_entries(entries: usize) -> Self {
        let words = entries.max(1).next_power_of_two();
        Self {
            words: alloc::vec![0; words].into_boxed_slice(),
            mask: u64::try_from(words - 1).unwrap_or(0),
        }
    }

    #[inline]
    fn slot(&self, hash: u64) -> (usize, u64) {
        let word = usize::try_from((hash >> 6) & self.mask).unwrap_or(0);
        (word, 1 << (hash & 63))
    }

    fn insert(&mut self, hash: u64) {
        let (word, bit) = self.slot(hash);
        if let Some(word) = self.words.get_mut(word) {
            *word |= bit;
        }
    }

    #[inline]
    fn may_contain(&self, hash: u64) -> bool {
        let (word, bit) = self.slot(hash);
        self.words.get(word).is_some_and(|word| word & bit != 0)
    }
}

#[derive(Clone)]
struct KeyEntry {
    key: Arc<str>,
    /// `key=*` is a pattern.
    any_value: bool,
    /// Values of the `key=value` patterns.
    values: HashTable<Arc<str>>,
}

/// The hash every table uses. A table holds one kind of string, so the bytes
/// alone are hashed, without `Hash for str`'s terminator: one multiplication
/// fewer per string on the hot path.
#[inline]
fn hash_str(hasher: &DefaultHashBuilder, text: &str) -> u64 {
    let mut state = hasher.build_hasher();
    state.write(text.as_bytes());
    state.finish()
}

/// String equality for the lookups, inlined: keys, values and IDs are short,
/// and a call to `memcmp` costs more than comparing them in registers.
#[inline(always)]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    // Two overlapping loads cover every length from one to two words.
    let word = |bytes: &[u8], at: usize| -> u64 {
        bytes
            .get(at..at.saturating_add(8))
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_ne_bytes)
    };
    let half = |bytes: &[u8], at: usize| -> u32 {
        bytes
            .get(at..at.saturating_add(4))
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_ne_bytes)
    };
    match len {
        0..4 => a == b,
        4..8 => half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8),
        _ => a == b,
    }
}

impl Index {
    #[inline]
    fn hash(&self, text: &str) -> u64 {
        hash_str(&self.hasher, text)
    }

    #[inline]
    fn id(&self, span: Span) -> &str {
        span_text(&self.id_text, span)
    }

    #[inline]
    fn contains_id(&self, id: &str) -> bool {
        self.ids
            .find(self.hash(id), |&span| same(self.id(span), id))
            .is_some()
    }

    #[inline]
    fn matches_tag(&self, key: &str, value: &str) -> bool {
        let value_hash = self.hash(value);
        if self.filter.may_contain(value_hash)
            && self.any_key.find(value_hash, |e| same(e, value)).is_some()
        {
            return true;
        }
        let key_hash = self.hash(key);
        self.filter.may_contain(key_hash ^ KEY_SALT)
            && self
                .keys
                .find(key_hash, |e| same(&e.key, key))
                .is_some_and(|entry| {
                    entry.any_value || entry.values.find(value_hash, |e| same(e, value)).is_some()
                })
    }

    /// Builds the filter from the tables.
    fn build_filter(&mut self) {
        let mut filter = Filter::with_entries(self.any_key.len() + self.keys.len());
        for value in &self.any_key {
            filter.insert(hash_str(&self.hasher, value));
        }
        for entry in &self.keys {
            filter.insert(hash_str(&self.hasher, &entry.key) ^ KEY_SALT);
        }
        self.filter = filter;
    }
}

/// Collects entries into an [`Index`], de-duplicating and enforcing the count
/// limits as it goes.
struct Builder<'l> {
    limits: &'l Limits,
    index: Index,
    /// The distinct entries in the order they came: sorting input that is
    /// already sorted (the canonical form, read back from storage) is linear.
    ids: Vec<Span>,
    patterns: Vec<TagPattern>,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            index: Index::default(),
            ids: Vec::new(),
            patterns: Vec::new(),
        }
    }

    /// Makes room for about `entries` device IDs, within the limit, so that
    /// the table is not rebuilt as it grows.
    fn reserve_device_ids(&mut self, entries: usize) {
        let additional = entries.min(self.limits.max_device_ids);
        let Index {
            hasher,
            id_text,
            ids,
            ..
        } = &mut self.index;
        ids.reserve(additional, |&span| {
            hash_str(hasher, span_text(id_text, span))
        });
        self.ids.reserve(additional);
    }

    /// Adds a device ID given as data (not text): checks it first.
    fn add_device_id(&mut self, id: &str, at: Location) -> Result<(), RestrictionError> {
        if id.is_empty() {
            return Err(RestrictionError::Syntax {
                at,
                expected: "a device ID of at least one character",
                found: Some(String::new()),
            });
        }
        check_chars(id, Item::DeviceId, at, is_device_id_char)?;
        check_len(
            id,
            id.len(),
            Item::DeviceId,
            at,
            self.limits.max_device_id_chars,
        )?;
        self.insert_device_id(id, at)
    }

    /// Adds a tag filter given as data (not text): checks it first.
    fn add_filter(&mut self, filter: TagFilter<'_>, at: Location) -> Result<(), RestrictionError> {
        let key = filter.key.filter(|k| !k.is_empty() && *k != "*");
        let value = filter.value.filter(|v| !v.is_empty());
        if let Some(key) = key {
            check_chars(key, Item::TagKey, at, is_tag_key_char)?;
            check_len(
                key,
                key.len(),
                Item::TagKey,
                at,
                self.limits.max_tag_key_chars,
            )?;
        }
        if let Some(value) = value {
            check_chars(value, Item::TagValue, at, |c| !is_invisible(c))?;
            let chars = value.chars().count();
            check_len(
                value,
                chars,
                Item::TagValue,
                at,
                self.limits.max_tag_value_chars,
            )?;
        }
        self.insert_pattern(key, value, at)
    }

    /// Adds a checked device ID.
    fn insert_device_id(&mut self, id: &str, at: Location) -> Result<(), RestrictionError> {
        let Index {
            hasher,
            id_text,
            ids,
            ..
        } = &mut self.index;
        let hash = hash_str(hasher, id);
        if ids
            .find(hash, |&span| same(span_text(id_text, span), id))
            .is_some()
        {
            return Ok(());
        }
        if ids.len() >= self.limits.max_device_ids {
            return Err(RestrictionError::TooManyDeviceIds {
                at,
                text: snippet(id),
                max: self.limits.max_device_ids,
            });
        }
        let start = id_text.len();
        id_text.push_str(id);
        let span = Span {
            start,
            end: id_text.len(),
        };
        ids.insert_unique(hash, span, |&span| {
            hash_str(hasher, span_text(id_text, span))
        });
        self.ids.push(span);
        Ok(())
    }

    /// Adds a checked tag pattern; `None` is a wildcard.
    fn insert_pattern(
        &mut self,
        key: Option<&str>,
        value: Option<&str>,
        at: Location,
    ) -> Result<(), RestrictionError> {
        let max = self.limits.max_tag_patterns;
        let full = self.patterns.len() >= max;
        let too_many = || RestrictionError::TooManyTagPatterns {
            at,
            text: snippet(&alloc::format!("{}", PatternText { key, value })),
            max,
        };
        let Index {
            hasher,
            any_key,
            keys,
            ..
        } = &mut self.index;
        match (key, value) {
            (None, None) => {
                return Err(RestrictionError::MatchesEverything {
                    at,
                    text: alloc::format!("{}", PatternText { key, value }),
                });
            }
            (None, Some(value)) => {
                let hash = hash_str(hasher, value);
                if any_key.find(hash, |e| **e == *value).is_some() {
                    return Ok(());
                }
                if full {
                    return Err(too_many());
                }
                let value: Arc<str> = value.into();
                any_key.insert_unique(hash, value.clone(), |e| hash_str(hasher, e));
                self.patterns.push(TagPattern {
                    key: None,
                    value: Some(value),
                });
            }
            (Some(key), value) => {
                let hash = hash_str(hasher, key);
                let entry = match keys.entry(hash, |e| *e.key == *key, |e| hash_str(hasher, &e.key))
                {
                    hashbrown::hash_table::Entry::Occupied(entry) => entry.into_mut(),
                    hashbrown::hash_table::Entry::Vacant(entry) => {
                        if full {
                            return Err(too_many());
                        }
                        entry
                            .insert(KeyEntry {
                                key: key.into(),
                                any_value: false,
                                values: HashTable::new(),
                            })
                            .into_mut()
                    }
                };
                let value = match value {
                    None if entry.any_value => return Ok(()),
                    None if full => return Err(too_many()),
                    None => {
                        entry.any_value = true;
                        None
                    }
                    Some(value) => {
                        let hash = hash_str(hasher, value);
                        if entry.values.find(hash, |e| **e == *value).is_some() {
                            return Ok(());
                        }
                        if full {
                            return Err(too_many());
                        }
                        let value: Arc<str> = value.into();
                        entry
                            .values
                            .insert_unique(hash, value.clone(), |e| hash_str(hasher, e));
                        Some(value)
                    }
                };
                self.patterns.push(TagPattern {
                    key: Some(entry.key.clone()),
                    value,
                });
            }
        }
        Ok(())
    }

    /// The restriction, or [`RestrictionError::Empty`] at `empty_at`.
    fn finish(self, empty_at: Location) -> Result<Restriction, RestrictionError> {
        let Self {
            mut index,
            mut ids,
            mut patterns,
            ..
        } = self;
        if ids.is_empty() && patterns.is_empty() {
            return Err(RestrictionError::Empty { at: empty_at });
        }
        ids.sort_unstable_by(|&a, &b| index.id(a).cmp(index.id(b)));
        patterns.sort_unstable();
        index.build_filter();
        Ok(Restriction {
            ids: ids.into_boxed_slice(),
            patterns: patterns.into_boxed_slice(),
            index,
        })
    }
}

fn is_device_id_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_device_id_byte)
}

fn is_tag_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// `base` moved `offset` bytes further when it is a byte offset.
fn shifted(base: Location, offset: usize) -> Location {
    match base {
        Location::Byte(start) => Location::Byte(start.saturating_add(offset)),
        other => other,
    }
}

/// Fails at the first character of `text` that is not `allowed`.
fn check_chars(
    text: &str,
    item: Item,
    at: Location,
    allowed: impl Fn(char) -> bool,
) -> Result<(), RestrictionError> {
    match text.char_indices().find(|&(_, c)| !allowed(c)) {
        None => Ok(()),
        Some((offset, found)) => Err(RestrictionError::InvalidCharacter {
            at: shifted(at, offset),
            item,
            found,
            text: snippet(text),
        }),
    }
}

/// Fails when `len` is over `max`.
fn check_len(
    text: &str,
    len: usize,
    item: Item,
    at: Location,
    max: usize,
) -> Result<(), RestrictionError> {
    if len > max {
        return Err(RestrictionError::TooLong {
            at,
            item,
            text: snippet(text),
            len,
            max,
        });
    }
    Ok(())
}
