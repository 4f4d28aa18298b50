//! Classification of topics, the additional-topics policy of a key, and the
//! decisions on [`Principal`].

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use super::topic::{Topic, TopicError, TopicFilter, TopicFilterBuf, check_prefix};
use crate::application::ApplicationId;
use crate::auth::Principal;
use crate::device::{Device, MAX_DEVICE_ID_LEN, is_device_id_byte};

/// Most filters in one list of an [`AdditionalTopics`] policy.
///
/// The platform documents no count limit; this bound keeps the memory and the
/// per-decision work of a policy bounded (a decision reads every filter of a
/// list at most once).
pub const MAX_FILTERS_PER_LIST: usize = 1000;

/// Longest filter in an [`AdditionalTopics`] list, in bytes (the platform's limit).
pub const MAX_FILTER_LEN: usize = 1024;

/// How topics are laid out: the first level that holds device topics.
///
/// The default prefix is `structure`, giving the platform's device topics
/// `structure/{deviceId}/state` and `structure/{deviceId}/command`.
///
/// ```
/// use structure_access::mqtt::{Topic, TopicClass, TopicRules};
///
/// let rules = TopicRules::default();
/// let class = |t| rules.classify(Topic::new(t).unwrap());
/// assert_eq!(class("structure/5f2b8c1e9a4d3b7c6e1f0a2b/state"), TopicClass::State("5f2b8c1e9a4d3b7c6e1f0a2b"));
/// assert_eq!(class("structure/5f2b8c1e9a4d3b7c6e1f0a2b/command"), TopicClass::Command("5f2b8c1e9a4d3b7c6e1f0a2b"));
/// assert_eq!(class("structure/5f2b8c1e9a4d3b7c6e1f0a2b/other"), TopicClass::Reserved);
/// assert_eq!(class("structure"), TopicClass::Reserved);
/// assert_eq!(class("structures/x"), TopicClass::Custom);
/// assert_eq!(class("fleet/gps"), TopicClass::Custom);
///
/// let custom = TopicRules::new("acme")?;
/// assert_eq!(custom.classify(Topic::new("acme/d1/state")?), TopicClass::State("d1"));
/// assert!(TopicRules::new("acme/devices").is_err());
/// # Ok::<(), structure_access::mqtt::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicRules {
    prefix: Cow<'static, str>,
    single_application: Option<ApplicationId>,
}

impl TopicRules {
    /// The platform's layout, prefix `structure`; also [`TopicRules::default`].
    pub const STRUCTURE: Self = Self {
        prefix: Cow::Borrowed("structure"),
        single_application: None,
    };

    /// Rules with another prefix: one non-empty topic level, without `/`, `+`,
    /// `#` or NUL. A prefix starting with `$` is allowed; wildcard filters then
    /// never reach device topics, as MQTT's `$` rule says.
    pub fn new(prefix: &str) -> Result<Self, TopicError> {
        check_prefix(prefix)?;
        Ok(Self {
            prefix: Cow::Owned(prefix.into()),
            single_application: None,
        })
    }

    /// Declares that every device the broker's directory holds, and every
    /// device topic a client can name, belongs to `application`.
    ///
    /// Without this declaration, the decisions assume several applications
    /// share the broker: a device topic is allowed only after the directory
    /// shows that the device belongs to the principal's application, and a
    /// wildcard subscription over device topics is answered
    /// [`Decision::Filter`] even for an unrestricted key. With it, an
    /// unrestricted key of `application` sees every device topic without asking
    /// the directory and its wildcard subscriptions are
    /// [`Allow`](Decision::Allow)ed (no per-message cost), while a key of any
    /// other application sees no device topic but its own.
    ///
    /// ```
    /// use structure_access::mqtt::TopicRules;
    ///
    /// let rules = TopicRules::default().with_single_application("64b1f0c2a7e3d95b8c4f2a10".parse()?);
    /// assert_eq!(rules.single_application().map(|a| a.as_str()), Some("64b1f0c2a7e3d95b8c4f2a10"));
    /// # Ok::<(), structure_access::ApplicationIdError>(())
    /// ```
    #[must_use]
    pub fn with_single_application(mut self, application: ApplicationId) -> Self {
        self.single_application = Some(application);
        self
    }

    /// The application declared by [`with_single_application`](Self::with_single_application).
    pub fn single_application(&self) -> Option<&ApplicationId> {
        self.single_application.as_ref()
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What `topic` is under these rules:
    ///
    /// - `{prefix}/{deviceId}/state` → [`TopicClass::State`] and
    ///   `{prefix}/{deviceId}/command` → [`TopicClass::Command`], when the device
    ///   ID is a valid [`DeviceId`](crate::DeviceId) (1 to 128 characters of
    ///   `0-9 A-Z a-z _ . : -`) and there are exactly three levels;
    /// - any other topic whose first level is the prefix (including the prefix
    ///   alone) → [`TopicClass::Reserved`];
    /// - everything else → [`TopicClass::Custom`].
    ///
    /// Allocates nothing; costs one pass over the topic.
    pub fn classify<'a>(&self, topic: Topic<'a>) -> TopicClass<'a> {
        let Some(rest) = topic.as_str().strip_prefix(&*self.prefix) else {
            return TopicClass::Custom;
        };
        let rest = match rest.strip_prefix('/') {
            Some(rest) => rest,
            None if rest.is_empty() => return TopicClass::Reserved,
            // A longer first level, such as `structures`.
            None => return TopicClass::Custom,
        };
        // One pass: the device ID's bytes up to the next `/`.
        let Some(end) = rest.bytes().position(|b| {
            !DEVICE_ID_BYTES
                .get(usize::from(b))
                .copied()
                .unwrap_or(false)
        }) else {
            return TopicClass::Reserved;
        };
        let (Some(id), Some(b'/'), Some(kind)) = (
            rest.get(..end),
            rest.as_bytes().get(end),
            rest.get(end + 1..),
        ) else {
            return TopicClass::Reserved;
        };
        if id.is_empty() || id.len() > MAX_DEVICE_ID_LEN {
            return TopicClass::Reserved;
        }
        // `state` and `command` hold no `/`: the topic has exactly three levels.
        match kind {
            "state" => TopicClass::State(id),
            "command" => TopicClass::Command(id),
            _ => TopicClass::Reserved,
        }
    }

    /// Whether the first level of `filter` may match topics under the prefix:
    /// it is the prefix, or a wildcard and the prefix does not start with `$`.
    fn reaches_prefix(&self, first_level: &str) -> bool {
        first_level == &*self.prefix
            || (matches!(first_level, "+" | "#") && !self.prefix.starts_with('$'))
    }
}

impl Default for TopicRules {
    fn default() -> Self {
        Self::STRUCTURE
    }
}

/// [`is_device_id_byte`] as a table: one load per byte of a device topic.
static DEVICE_ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        // A `u8` fits: `i < 256`.
        #[allow(clippy::cast_possible_truncation)]
        let byte = i as u8;
        // Evaluated at compile time: an index out of bounds would not compile.
        #[allow(clippy::indexing_slicing)]
        {
            table[i] = is_device_id_byte(byte);
        }
        i += 1;
    }
    table
};

/// What a topic is, under some [`TopicRules`]. The device IDs are borrowed
/// from the topic and are valid [`DeviceId`](crate::DeviceId) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicClass<'a> {
    /// `{prefix}/{deviceId}/state`: the device's state reports.
    State(&'a str),
    /// `{prefix}/{deviceId}/command`: commands sent to the device.
    Command(&'a str),
    /// Any other topic under the prefix: reserved, always denied.
    Reserved,
    /// A topic outside the prefix: governed by the key's [`AdditionalTopics`].
    Custom,
}

impl<'a> TopicClass<'a> {
    /// The device ID of a state or command topic.
    pub fn device_id(&self) -> Option<&'a str> {
        match *self {
            Self::State(id) | Self::Command(id) => Some(id),
            Self::Reserved | Self::Custom => None,
        }
    }
}

/// The answer to a PUBLISH or SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Refused.
    Deny,
    /// A subscription allowed on the condition that the broker asks
    /// [`Principal::may_receive`] for every message it would deliver through it,
    /// and drops those refused. Given for wildcard subscriptions of a restricted
    /// key that reach device topics, which may hold out-of-scope devices.
    Filter,
}

impl Decision {
    /// Whether the subscription or publication may go ahead ([`Allow`](Self::Allow)
    /// or [`Filter`](Self::Filter)).
    #[must_use]
    pub const fn is_granted(self) -> bool {
        !matches!(self, Self::Deny)
    }

    /// `allow`, `deny` or `filter`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Filter => "filter",
        }
    }

    const fn allow_if(allowed: bool) -> Self {
        if allowed { Self::Allow } else { Self::Deny }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller's device lookup: the crate asks it for a device only when the
/// answer depends on the device's tags.
///
/// Any `Fn(&str) -> Option<D>` where `D: Device` is one, so a closure over your
/// own store will do:
///
/// ```
/// use std::collections::HashMap;
/// use structure_access::{DeviceRecord, mqtt::DeviceDirectory};
///
/// let mut devices = HashMap::new();
/// devices.insert("d2".to_string(), DeviceRecord::new("app1".parse()?, "d2".parse()?).with_tag("site", "north"));
/// let directory = |id: &str| devices.get(id);
/// assert!(directory.find("d2").is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait DeviceDirectory {
    /// The device type handed out.
    type Device<'a>: Device
    where
        Self: 'a;

    /// The device with ID `id`, or `None` if there is none.
    fn find(&self, id: &str) -> Option<Self::Device<'_>>;
}

impl<F, D> DeviceDirectory for F
where
    F: Fn(&str) -> Option<D>,
    D: Device,
{
    type Device<'a>
        = D
    where
        Self: 'a;

    fn find(&self, id: &str) -> Option<D> {
        self(id)
    }
}

/// Why a list of filters was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterListError {
    /// A filter is invalid or longer than [`MAX_FILTER_LEN`].
    #[error("invalid topic filter at index {index}")]
    Filter {
        /// Its index in the list, from 0.
        index: usize,
        /// What is wrong with it.
        source: TopicError,
    },
    /// More than [`MAX_FILTERS_PER_LIST`] filters.
    #[error("expected at most {max} topic filters in a list, found one more at index {max}")]
    TooMany {
        /// The limit.
        max: usize,
    },
}

/// A list of topic filters, validated and bounded: at most
/// [`MAX_FILTERS_PER_LIST`] filters of at most [`MAX_FILTER_LEN`] bytes each.
/// Order is kept; duplicates are harmless.
///
/// ```
/// use structure_access::mqtt::{FilterList, Topic, TopicFilter};
///
/// let list = FilterList::new(["alerts/#", "fleet/+/gps"])?;
/// assert!(list.matches(Topic::new("fleet/truck1/gps")?));
/// assert!(list.covers(TopicFilter::new("alerts/fire/+")?));
/// assert!(!list.covers(TopicFilter::new("fleet/#")?)); // `fleet/truck1/speed` is not listed
/// assert!(list.intersects(TopicFilter::new("fleet/#")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FilterList {
    filters: Box<[TopicFilterBuf]>,
}

/// Words of the bit set [`FilterList::covers`] keeps on the stack: one bit per
/// level a listed filter can have (at most `MAX_FILTER_LEN + 1`).
const END_WORDS: usize = (MAX_FILTER_LEN + 1).div_ceil(64);

impl FilterList {
    /// An empty list, which matches nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Validates a list of filters.
    pub fn new<I>(filters: I) -> Result<Self, FilterListError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut builder = ListBuilder::default();
        for filter in filters {
            builder.push(filter.as_ref())?;
        }
        Ok(builder.finish())
    }

    /// The filters.
    pub fn as_slice(&self) -> &[TopicFilterBuf] {
        &self.filters
    }

    /// How many filters there are.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether some filter of the list matches `topic`.
    #[must_use]
    pub fn matches(&self, topic: Topic<'_>) -> bool {
        self.filters.iter().any(|f| f.as_filter().matches(topic))
    }

    /// Whether some filter of the list has a topic in common with `filter`.
    #[must_use]
    pub fn intersects(&self, filter: TopicFilter<'_>) -> bool {
        self.filters
            .iter()
            .any(|f| f.as_filter().intersects(filter))
    }

    /// Whether every topic `filter` matches is matched by some filter of the
    /// list: `filter ⊆ ∪ list`, exactly.
    ///
    /// The union matters: `a/#` is covered by `a`, `a/+` and `a/+/#` together,
    /// by no one of them alone. The rule, level by level: a literal level of
    /// `filter` is covered by the same literal or `+` (but a `$…` first level
    /// only by the same literal); a `+` level only by `+` (a level takes
    /// infinitely many values, so listed literals never exhaust it); a `#` level
    /// (meaning "no more levels" or "one more level of any value, then `#`") by a
    /// `#`, or by a listed filter ending there plus, one level deeper, `+` levels
    /// covering the rest in the same way. The empty string is not a topic, so
    /// `/#` needs nothing for its parent level. Each listed filter is read once; the
    /// work is O(total length of the list) and nothing is allocated.
    #[must_use]
    pub fn covers(&self, filter: TopicFilter<'_>) -> bool {
        if let Some(topic) = filter.as_topic() {
            return self.matches(topic);
        }
        let Some(k) = filter.hash_level() else {
            // Without `#`, the topics worst placed are all as deep as the filter:
            // one listed filter must take them all.
            return self
                .filters
                .iter()
                .any(|listed| !matches!(reach(filter, listed.as_filter()), Reach::Nothing));
        };
        // The topics of `filter` end at depths `first_end..`: at 1 at the
        // earliest, and not at 1 under `/#` (that topic would be the empty
        // string). Each depth needs a listed filter ending there, until one
        // listed filter takes every deeper topic with a `#`.
        let first_end = if filter.as_str() == "/#" { 2 } else { k.max(1) };
        let mut hash_min = usize::MAX;
        // Bit `d - k`: some listed filter ends at depth `d`.
        let mut ends = [0u64; END_WORDS];
        for listed in self.filters.iter() {
            match reach(filter, listed.as_filter()) {
                Reach::Nothing => {}
                Reach::Hash(depth) if depth <= first_end => return true,
                Reach::Hash(depth) => hash_min = hash_min.min(depth),
                Reach::End(depth) => {
                    let bit = depth.saturating_sub(k);
                    if let Some(word) = ends.get_mut(bit / 64) {
                        *word |= 1u64 << (bit % 64);
                    }
                }
            }
        }
        hash_min != usize::MAX
            && (first_end..hash_min).all(|depth| {
                let bit = depth - k;
                ends.get(bit / 64)
                    .is_some_and(|word| word & (1u64 << (bit % 64)) != 0)
            })
    }

    /// Like [`intersects`](Self::intersects), ignoring listed filters whose
    /// first level is the literal `prefix`: they only reach topics under it.
    fn intersects_outside(&self, filter: TopicFilter<'_>, prefix: &str) -> bool {
        self.filters.iter().any(|f| {
            let f = f.as_filter();
            f.levels().next() != Some(prefix) && f.intersects(filter)
        })
    }
}

/// How far a listed filter `L` follows a filter `F` when every wildcard of `F`
/// takes a value no literal of `L` names.
enum Reach {
    /// `L` misses some of those topics at every depth.
    Nothing,
    /// `L` matches them all from this depth on, with a `#`.
    Hash(usize),
    /// `L` matches the ones that end at this depth, and only those.
    End(usize),
}

/// See [`FilterList::covers`]; a loop over the levels of `listed`, no recursion.
fn reach(filter: TopicFilter<'_>, listed: TopicFilter<'_>) -> Reach {
    if filter.literals_conflict(listed) {
        return Reach::Nothing;
    }
    // Only a literal first level can start with `$`.
    let dollar = filter.as_str().starts_with('$');
    let mut levels = filter.levels();
    let mut in_hash = false;
    let mut depth = 0;
    for level in listed.levels() {
        let wanted = if in_hash { Some("#") } else { levels.next() };
        if level == "#" {
            return if depth == 0 && dollar {
                Reach::Nothing
            } else {
                Reach::Hash(depth)
            };
        }
        let followed = match wanted {
            None => false,
            Some("#") => {
                in_hash = true;
                level == "+"
            }
            Some("+") => level == "+",
            Some(wanted) => level == wanted || (level == "+" && !(depth == 0 && dollar)),
        };
        if !followed {
            return Reach::Nothing;
        }
        depth += 1;
    }
    let wanted = if in_hash { Some("#") } else { levels.next() };
    match wanted {
        None | Some("#") => Reach::End(depth),
        Some(_) => Reach::Nothing,
    }
}

/// Builds a [`FilterList`], enforcing the limits as filters come.
#[derive(Default)]
pub(crate) struct ListBuilder {
    filters: Vec<TopicFilterBuf>,
}

impl ListBuilder {
    pub(crate) fn push(&mut self, filter: &str) -> Result<(), FilterListError> {
        let index = self.filters.len();
        if index >= MAX_FILTERS_PER_LIST {
            return Err(FilterListError::TooMany {
                max: MAX_FILTERS_PER_LIST,
            });
        }
        let filter = TopicFilterBuf::with_max_len(filter, MAX_FILTER_LEN)
            .map_err(|source| FilterListError::Filter { index, source })?;
        self.filters.push(filter);
        Ok(())
    }

    pub(crate) fn finish(self) -> FilterList {
        FilterList {
            filters: self.filters.into_boxed_slice(),
        }
    }
}

/// A key's policy for topics outside the device topics (the platform's
/// "additional topics"). The prefix's own topics are never governed by it.
///
/// | policy | PUBLISH of a custom topic | SUBSCRIBE to a custom filter |
/// |---|---|---|
/// | `None` (default) | denied | denied |
/// | `All` | allowed, except `$` topics | allowed, except filters of `$` topics |
/// | `AllowList` | allowed if a `publish` filter matches it | allowed if every topic it can match is matched by some `subscribe` filter ([`FilterList::covers`]) |
/// | `DenyList` | allowed unless a `publish` filter matches it, or it is a `$` topic | allowed unless it has a topic in common with a `subscribe` filter ([`FilterList::intersects`]), or its first level starts with `$` |
///
/// # `$` topics
///
/// MQTT reserves topics whose first level starts with `$` (`$SYS/…`) for the
/// broker, and a filter whose first level is `+` or `#` never matches them. So
/// that no policy reaches them by accident, a custom `$` topic is allowed only by
/// an **allow-list** filter that names its first level (`$fleet/#` allows
/// `$fleet/x`; `#` and `+/x` do not). `All` and every deny-list deny them: a
/// deny-list of `#` ("no custom topics") denies `$covert/x` as it denies
/// `covert/x`. A wildcard subscription (`#`, `+/x`) never matches a `$` topic, so
/// it is judged on the other custom topics alone.
///
/// With the `serde` feature it reads and writes the platform's shape,
/// `{"filterType": "none" | "all" | "whitelist" | "blacklist", "pubTopics": [...],
/// "subTopics": [...]}`. Both lists may be missing or `null` (empty); for `none`
/// and `all` they are validated and then ignored; other fields are refused.
///
/// ```
/// use structure_access::mqtt::{AdditionalTopics, FilterList, Topic, TopicFilter};
///
/// let policy = AdditionalTopics::AllowList {
///     publish: FilterList::new(["alerts/#"])?,
///     subscribe: FilterList::new(["config", "config/+/#"])?,
/// };
/// assert!(policy.allows_publish(Topic::new("alerts/fire")?));
/// assert!(!policy.allows_publish(Topic::new("config/site")?));
/// // `config/#` matches `config` and every topic below it: the two filters
/// // together cover it, neither alone does.
/// assert!(policy.allows_subscribe(TopicFilter::new("config/#")?));
/// assert!(!policy.allows_subscribe(TopicFilter::new("#")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum AdditionalTopics {
    /// No topic outside the device topics.
    #[default]
    None,
    /// Every topic outside the device topics, except `$` topics.
    All,
    /// Only the listed topics.
    AllowList {
        /// Filters of the topics the device may publish to.
        publish: FilterList,
        /// Filters of the topics the device may subscribe to.
        subscribe: FilterList,
    },
    /// Every topic except the listed ones and `$` topics.
    DenyList {
        /// Filters of the topics the device may not publish to.
        publish: FilterList,
        /// Filters of the topics the device may not subscribe to.
        subscribe: FilterList,
    },
}

/// The policy of records that set none; a `static`, so a record without one
/// allocates nothing for it.
static NO_ADDITIONAL_TOPICS: AdditionalTopics = AdditionalTopics::None;

impl AdditionalTopics {
    /// Whether the policy lets a device publish to `topic` (a custom topic;
    /// device topics are not the policy's business). A `$` topic needs an
    /// allow-list filter that names its first level.
    #[must_use]
    pub fn allows_publish(&self, topic: Topic<'_>) -> bool {
        match self {
            Self::AllowList { publish, .. } => publish.matches(topic),
            _ if topic.is_dollar() => false,
            Self::None => false,
            Self::All => true,
            Self::DenyList { publish, .. } => !publish.matches(topic),
        }
    }

    /// Whether the policy lets a device receive a message on `topic` through a
    /// subscription: the `subscribe` list applied to one topic. A `$` topic
    /// needs an allow-list filter that names its first level.
    #[must_use]
    pub fn allows_receive(&self, topic: Topic<'_>) -> bool {
        match self {
            Self::AllowList { subscribe, .. } => subscribe.matches(topic),
            _ if topic.is_dollar() => false,
            Self::None => false,
            Self::All => true,
            Self::DenyList { subscribe, .. } => !subscribe.matches(topic),
        }
    }

    /// Whether the policy lets a device subscribe to `filter`: every topic the
    /// filter can match must be allowed by the `subscribe` list (an allow-list
    /// must cover the filter, a deny-list must have no topic in common with it).
    /// A filter of `$` topics needs allow-list filters that name its first level.
    #[must_use]
    pub fn allows_subscribe(&self, filter: TopicFilter<'_>) -> bool {
        match self {
            Self::AllowList { subscribe, .. } => subscribe.covers(filter),
            _ if is_dollar_filter(filter) => false,
            Self::None => false,
            Self::All => true,
            Self::DenyList { subscribe, .. } => !subscribe.intersects(filter),
        }
    }

    /// Like [`allows_subscribe`](Self::allows_subscribe), for the topics of
    /// `filter` whose first level is not `prefix` (the caller knows there are
    /// some). For an allow-list this is the same question: a filter reaching
    /// both sides starts with a wildcard, and any topic it misses can be given
    /// a first level other than the prefix.
    fn allows_subscribe_outside(&self, filter: TopicFilter<'_>, prefix: &str) -> bool {
        match self {
            Self::AllowList { subscribe, .. } => subscribe.covers(filter),
            _ if is_dollar_filter(filter) => false,
            Self::None => false,
            Self::All => true,
            Self::DenyList { subscribe, .. } => !subscribe.intersects_outside(filter, prefix),
        }
    }
}

/// Whether `filter` matches only `$` topics: its first level, a literal, starts
/// with `$`. (A wildcard first level matches no `$` topic at all.)
fn is_dollar_filter(filter: TopicFilter<'_>) -> bool {
    filter.as_str().starts_with('$')
}

/// An [`AdditionalTopics`] as a record and its principals hold it: shared, and
/// not allocated at all when it is [`AdditionalTopics::None`].
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SharedTopics(Option<Arc<AdditionalTopics>>);

impl SharedTopics {
    pub(crate) fn new(topics: Arc<AdditionalTopics>) -> Self {
        match *topics {
            AdditionalTopics::None => Self(None),
            _ => Self(Some(topics)),
        }
    }

    /// Like [`SharedTopics::new`], allocating only for a policy other than `None`.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn from_value(topics: AdditionalTopics) -> Self {
        match topics {
            AdditionalTopics::None => Self(None),
            topics => Self(Some(Arc::new(topics))),
        }
    }

    pub(crate) fn get(&self) -> &AdditionalTopics {
        self.0.as_deref().unwrap_or(&NO_ADDITIONAL_TOPICS)
    }

    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for SharedTopics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// The MQTT decisions for an authenticated device. They are pure: the only
/// outside data they read is a device asked of `devices`, and only when the
/// answer depends on its tags. See the [module documentation](super) for the
/// rules.
impl Principal {
    /// Whether this device may publish to `topic`:
    ///
    /// - its own `state` topic: [`Allow`](Decision::Allow);
    /// - the `state` topic of another device: `Allow` if it can see that device
    ///   (a gateway reporting for its devices; never a device of another
    ///   application), else [`Deny`](Decision::Deny);
    /// - any `command` topic, its own included: `Deny`;
    /// - a reserved topic: `Deny`;
    /// - a custom topic: [`AdditionalTopics::allows_publish`].
    ///
    /// Never [`Filter`](Decision::Filter). Errors only for an invalid topic name.
    pub fn may_publish<L: DeviceDirectory + ?Sized>(
        &self,
        rules: &TopicRules,
        topic: &str,
        devices: &L,
    ) -> Result<Decision, TopicError> {
        let topic = Topic::new(topic)?;
        Ok(match rules.classify(topic) {
            TopicClass::State(id) => Decision::allow_if(self.sees_device(rules, id, devices)),
            TopicClass::Command(_) | TopicClass::Reserved => Decision::Deny,
            TopicClass::Custom => {
                Decision::allow_if(self.additional_topics().allows_publish(topic))
            }
        })
    }

    /// Whether this device may subscribe to `filter`.
    ///
    /// A filter without wildcards is classified as a topic:
    ///
    /// - the `state` or `command` topic of itself or of a device it can see:
    ///   [`Allow`](Decision::Allow), else [`Deny`](Decision::Deny);
    /// - a reserved topic: `Deny`;
    /// - a custom topic: [`AdditionalTopics::allows_subscribe`].
    ///
    /// A filter with wildcards may match topics under the prefix (its first
    /// level is the prefix, or a wildcard when the prefix does not start with
    /// `$`) and custom topics (its first level is not the prefix):
    ///
    /// 1. if it can match custom topics, all of them must be allowed by the
    ///    policy, else `Deny` (with an allow-list, every custom topic it can
    ///    match must be matched by a listed filter; with a deny-list, none may
    ///    be matched by a listed filter);
    /// 2. if it can match topics under the prefix: `Allow` for an unrestricted
    ///    key of the application declared with
    ///    [`TopicRules::with_single_application`], else
    ///    [`Filter`](Decision::Filter) (deliver each message only if
    ///    [`may_receive`](Self::may_receive) says so);
    /// 3. otherwise `Allow`.
    ///
    /// A shared subscription, `$share/{group}/{filter}` (MQTT 5 §4.8.2, also
    /// accepted by brokers from MQTT 3.1.1 clients), is decided on its
    /// `{filter}`: the group only spreads messages among its members, so it
    /// grants nothing. A `$share` filter without a group, with a group holding
    /// `+` or `#`, or without a filter is an error
    /// ([`TopicError::SharedSubscription`]).
    ///
    /// Errors only for an invalid topic filter.
    pub fn may_subscribe<L: DeviceDirectory + ?Sized>(
        &self,
        rules: &TopicRules,
        filter: &str,
        devices: &L,
    ) -> Result<Decision, TopicError> {
        let filter = TopicFilter::new(shared_subscription_filter(filter)?)?;
        let topics = self.additional_topics();
        if let Some(topic) = filter.as_topic() {
            return Ok(match rules.classify(topic) {
                TopicClass::State(id) | TopicClass::Command(id) => {
                    Decision::allow_if(self.sees_device(rules, id, devices))
                }
                TopicClass::Reserved => Decision::Deny,
                TopicClass::Custom => Decision::allow_if(topics.allows_subscribe(filter)),
            });
        }
        let first = filter.levels().next().unwrap_or_default();
        if first != rules.prefix() && !topics.allows_subscribe_outside(filter, rules.prefix()) {
            return Ok(Decision::Deny);
        }
        Ok(
            if !rules.reaches_prefix(first) || self.sees_every_device(rules) {
                Decision::Allow
            } else {
                Decision::Filter
            },
        )
    }

    /// Whether a message on `topic` may be delivered to this device through a
    /// subscription answered [`Decision::Filter`] (or any other):
    ///
    /// - the `state` or `command` topic of itself or of a device it can see: `true`;
    /// - of any other device: `false`;
    /// - a reserved topic: `false`;
    /// - a custom topic: [`AdditionalTopics::allows_receive`].
    ///
    /// Errors only for an invalid topic name.
    pub fn may_receive<L: DeviceDirectory + ?Sized>(
        &self,
        rules: &TopicRules,
        topic: &str,
        devices: &L,
    ) -> Result<bool, TopicError> {
        let topic = Topic::new(topic)?;
        Ok(match rules.classify(topic) {
            TopicClass::State(id) | TopicClass::Command(id) => self.sees_device(rules, id, devices),
            TopicClass::Reserved => false,
            TopicClass::Custom => self.additional_topics().allows_receive(topic),
        })
    }

    /// Whether every device topic is this principal's to see: an unrestricted
    /// key of the one application the rules declare.
    fn sees_every_device(&self, rules: &TopicRules) -> bool {
        self.scope().restriction().is_none()
            && rules.single_application() == Some(self.application())
    }

    /// Whether the device with ID `id` is this one, or of the same application
    /// and in scope.
    ///
    /// Without a declared single application, `devices` is asked for every
    /// other device: only the directory knows its application. With one, it
    /// is asked only for a restricted key and an ID the restriction does not
    /// list (its tags can still bring it in).
    fn sees_device<L: DeviceDirectory + ?Sized>(
        &self,
        rules: &TopicRules,
        id: &str,
        devices: &L,
    ) -> bool {
        if id == self.device_id().as_str() {
            return true;
        }
        let Some(application) = rules.single_application() else {
            return devices
                .find(id)
                .is_some_and(|device| device.id() == id && self.can_see(&device));
        };
        if application != self.application() {
            return false;
        }
        let Some(restriction) = self.scope().restriction() else {
            return true;
        };
        if restriction.contains_device_id(id) {
            return true;
        }
        // The listed IDs are ruled out: only the device's tags can bring it in.
        devices.find(id).is_some_and(|device| {
            device.id() == id
                && application.is(device.application())
                && device
                    .tags()
                    .any(|(key, value)| restriction.matches_tag(key, value))
        })
    }
}

/// The `{filter}` of a shared subscription `$share/{group}/{filter}`, or the
/// whole text for any other filter. Per MQTT 5 §4.8.2 the group is at least one
/// character without `/`, `+` or `#`, and a filter follows it.
fn shared_subscription_filter(text: &str) -> Result<&str, TopicError> {
    if !text.starts_with("$share") {
        return Ok(text);
    }
    // The whole text must be a valid filter too (no NUL, no stray wildcard).
    TopicFilter::new(text)?;
    let Some(rest) = text.strip_prefix("$share/") else {
        return if text == "$share" {
            Err(TopicError::shared_subscription(text))
        } else {
            Ok(text)
        };
    };
    match rest.split_once('/') {
        Some((group, filter))
            if !group.is_empty() && !group.contains(['+', '#']) && !filter.is_empty() =>
        {
            Ok(filter)
        }
        _ => Err(TopicError::shared_subscription(text)),
    }
}
