//! MQTT topic policy: what an authenticated device may publish, subscribe to and
//! receive.
//!
//! A broker authenticates a device at CONNECT ([`Authenticator`](crate::Authenticator)
//! gives a [`Principal`]); then, for every PUBLISH and SUBSCRIBE, it asks the
//! principal. The decisions are pure and exact: the only outside data they read is
//! a device the caller's [`DeviceDirectory`] hands out, and only when the answer
//! depends on that device's tags.
//!
//! # Topics
//!
//! [`Topic`] (a name, as PUBLISH carries) and [`TopicFilter`] (as SUBSCRIBE
//! carries) are validated per MQTT 3.1.1 and 5: 1 to 65535 bytes of UTF-8, no NUL;
//! in a filter `+` and `#` only as whole levels and `#` only last; none in a name.
//! Both are borrowed `Copy` views: validating allocates nothing.
//! [`TopicFilterBuf`] is the owned filter, for lists. A wildcard in the first level
//! never matches a topic whose first level starts with `$`.
//!
//! # Classes
//!
//! [`TopicRules`] (prefix `structure` by default) sorts topics into:
//!
//! | topic | class |
//! |---|---|
//! | `structure/{deviceId}/state` | [`TopicClass::State`] |
//! | `structure/{deviceId}/command` | [`TopicClass::Command`] |
//! | any other topic whose first level is `structure` | [`TopicClass::Reserved`]: always denied |
//! | anything else | [`TopicClass::Custom`]: the key's [`AdditionalTopics`] decide |
//!
//! Custom topics whose first level starts with `$` (MQTT reserves them for the
//! broker) are allowed only by an allow-list filter that names that first level,
//! such as `$fleet/#`: `All` and every deny-list deny them, so a deny-list of `#`
//! means "no custom topics", `$` ones included (see [`AdditionalTopics`]).
//!
//! `{deviceId}` must be a valid [`DeviceId`](crate::DeviceId), and a device topic
//! has exactly three levels.
//!
//! # Decisions
//!
//! "Sees" below means: the device is the principal's own, or it belongs to the
//! principal's application and the key is unrestricted, or the key's restriction
//! lists the ID, or one of its tags matches the restriction. A device of another
//! application is never seen, whatever the key. Only the caller's directory
//! knows a device's application, so it is asked for every other device, and a
//! device it does not know is not seen; a broker whose devices all belong to one
//! application says so with [`TopicRules::with_single_application`], and the
//! directory is then asked only when the answer depends on the device's tags.
//!
//! | request | device topic (`state` / `command`) | reserved | custom |
//! |---|---|---|---|
//! | [`may_publish`](Principal::may_publish) | `state` of a device it sees: allow; any `command`: deny | deny | [`AdditionalTopics::allows_publish`] |
//! | [`may_subscribe`](Principal::may_subscribe), no wildcard | of a device it sees: allow | deny | [`AdditionalTopics::allows_subscribe`] |
//! | [`may_receive`](Principal::may_receive) | of a device it sees: `true` | `false` | [`AdditionalTopics::allows_receive`] |
//!
//! A subscription with wildcards is split by what it can match:
//!
//! - **custom topics** (its first level is not the prefix): every one of them must
//!   be allowed by the policy, or the subscription is denied. `None` denies,
//!   `All` allows; an allow-list must *cover* the filter (every topic the filter
//!   matches is matched by a listed filter: [`FilterList::covers`], exact set
//!   containment over all topics); a deny-list must not *intersect* it (no topic
//!   matched by both: [`FilterList::intersects`], ignoring listed filters that
//!   start with the prefix);
//! - **topics under the prefix** (its first level is the prefix, or a wildcard
//!   and the prefix does not start with `$`): allowed outright for an
//!   unrestricted key of the application declared with
//!   [`TopicRules::with_single_application`]; otherwise (a restricted key, or
//!   several applications on the broker) the answer is [`Decision::Filter`]:
//!   the broker delivers each message only if
//!   [`may_receive`](Principal::may_receive) allows it, so neither out-of-scope
//!   devices nor other applications' devices ever leak through a wildcard.
//!
//! A shared subscription, `$share/{group}/{filter}` (MQTT 5 §4.8.2), is
//! decided on its `{filter}`: the group grants nothing. A malformed one (no
//! group, a group holding `+` or `#`, no filter) is an error,
//! [`TopicError::SharedSubscription`].
//!
//! ```
//! use std::collections::HashMap;
//! use structure_access::mqtt::{Decision, TopicRules};
//! use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Restriction};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//!
//! let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?; // cheap, for the example
//! let scope: Restriction = "site=north".parse()?;
//! let app = "acme".parse()?;
//! let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), app, scope.into(), &policy)?;
//! let gateway = DeviceRecord::new(app, "gw1".parse()?).with_tag("site", "north");
//! let auth = Authenticator::new(policy);
//! let principal = auth.authenticate(new.record.key(), Some(&new.record), &new.secret, &gateway)?;
//!
//! // The broker's own device store.
//! let mut devices = HashMap::new();
//! devices.insert("s1", DeviceRecord::new(app, "s1".parse()?).with_tag("site", "north"));
//! devices.insert("s2", DeviceRecord::new(app, "s2".parse()?).with_tag("site", "south"));
//! devices.insert("x1", DeviceRecord::new("other".parse()?, "x1".parse()?).with_tag("site", "north"));
//! let directory = |id: &str| devices.get(id);
//! let rules = TopicRules::default();
//!
//! assert_eq!(principal.may_publish(&rules, "structure/gw1/state", &directory)?, Decision::Allow);
//! assert_eq!(principal.may_publish(&rules, "structure/s1/state", &directory)?, Decision::Allow);
//! assert_eq!(principal.may_publish(&rules, "structure/s2/state", &directory)?, Decision::Deny);
//! // Another application's device, even with a matching tag.
//! assert_eq!(principal.may_publish(&rules, "structure/x1/state", &directory)?, Decision::Deny);
//! assert_eq!(principal.may_publish(&rules, "structure/gw1/command", &directory)?, Decision::Deny);
//! assert_eq!(principal.may_subscribe(&rules, "structure/s1/command", &directory)?, Decision::Allow);
//! assert_eq!(principal.may_subscribe(&rules, "structure/+/state", &directory)?, Decision::Filter);
//! assert!(principal.may_receive(&rules, "structure/s1/state", &directory)?);
//! assert!(!principal.may_receive(&rules, "structure/s2/state", &directory)?);
//! // No additional topics on this key: custom topics are denied.
//! assert_eq!(principal.may_publish(&rules, "fleet/gps", &directory)?, Decision::Deny);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod device_topic;
mod policy;
mod topic;
#[cfg(feature = "serde")]
mod wire;

#[cfg(doc)]
use crate::Principal;

pub use device_topic::{DeviceTopic, DeviceTopicError, MAX_DEVICE_TOPIC_LEN};
pub(crate) use policy::SharedTopics;
pub use policy::{
    AdditionalTopics, Decision, DeviceDirectory, FilterList, FilterListError, MAX_FILTER_LEN,
    MAX_FILTERS_PER_LIST, TopicClass, TopicRules,
};
pub use topic::{MAX_TOPIC_LEN, Topic, TopicError, TopicFilter, TopicFilterBuf, TopicKind};
