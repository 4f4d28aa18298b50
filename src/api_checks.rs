//! Compile-time checks of the API's promises, as doc tests (built only by
//! `cargo test --doc`). Each `compile_fail` example has a twin that compiles,
//! so that it fails for the reason it names and no other; the error codes are
//! checked on nightly only (`cargo +nightly test --doc api_checks`).
//!
//! # Checks whose result matters are `#[must_use]`
//!
//! Dropping the answer of a check is almost always a bug (`r.can_see(&d);` alone
//! decides nothing). The same calls, used, compile:
//!
//! ```
//! #![deny(unused_must_use)]
//! use structure_access::mqtt::{AdditionalTopics, FilterList, Topic, TopicFilter};
//! use structure_access::{DeviceRecord, HashPolicy, KeyStatus, Restriction, Secret, Verifier};
//!
//! let r: Restriction = "a".parse().unwrap();
//! let d = DeviceRecord::new("app1".parse().unwrap(), "a".parse().unwrap());
//! let v: Verifier = "$hmac-sha256$v=1$oM5KjfJWVYFidH1yVDqyUw$+/5vjk8lO4KlLGOZeg2hrTD8Q3T+/4is9ypRRMgBgsw".parse().unwrap();
//! let s = Secret::imported("0123456789abcdef").unwrap();
//! let policy = HashPolicy::default();
//! let list = FilterList::new(["a/#"]).unwrap();
//! let topic = Topic::new("a/b").unwrap();
//! let filter = TopicFilter::new("a/+").unwrap();
//! let _ = r.can_see(&d);
//! let _ = r.contains_device_id("a");
//! let _ = v.is_slow();
//! let _ = policy.needs_upgrade(&v, &s);
//! let _ = list.covers(filter);
//! let _ = list.matches(topic);
//! let _ = filter.matches(topic);
//! let _ = AdditionalTopics::All.allows_publish(topic);
//! let _ = KeyStatus::Active.is_active();
//! ```
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! # use structure_access::{DeviceRecord, Restriction};
//! # let r: Restriction = "a".parse().unwrap();
//! # let d = DeviceRecord::new("app1".parse().unwrap(), "a".parse().unwrap());
//! r.can_see(&d);
//! ```
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! # use structure_access::{HashPolicy, Secret, Verifier};
//! # let v: Verifier = "$hmac-sha256$v=1$oM5KjfJWVYFidH1yVDqyUw$+/5vjk8lO4KlLGOZeg2hrTD8Q3T+/4is9ypRRMgBgsw".parse().unwrap();
//! # let s = Secret::imported("0123456789abcdef").unwrap();
//! HashPolicy::default().needs_upgrade(&v, &s);
//! ```
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! # use structure_access::mqtt::{FilterList, TopicFilter};
//! # let list = FilterList::new(["a/#"]).unwrap();
//! list.covers(TopicFilter::new("a/+").unwrap());
//! ```
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! # use structure_access::mqtt::{AdditionalTopics, Topic};
//! AdditionalTopics::All.allows_publish(Topic::new("a/b").unwrap());
//! ```
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! structure_access::KeyStatus::Active.is_active();
//! ```
//!
//! [`Principal::can_see`](crate::Principal::can_see) and
//! [`AccessKey::can_see`](crate::AccessKey::can_see) need a key:
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! # use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Scope};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! # let policy = HashPolicy::default();
//! # let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse().unwrap(), Scope::Unrestricted, &policy).unwrap();
//! # let d = DeviceRecord::new("app1".parse().unwrap(), "a".parse().unwrap());
//! let principal = Authenticator::new(policy).authenticate(new.record.key(), Some(&new.record), &new.secret, &d).unwrap();
//! principal.can_see(&d);
//! ```
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! # use structure_access::{AccessKey, DeviceRecord, HashPolicy, Scope};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! # let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse().unwrap(), Scope::Unrestricted, &HashPolicy::default()).unwrap();
//! # let d = DeviceRecord::new("app1".parse().unwrap(), "a".parse().unwrap());
//! new.record.can_see(&d);
//! ```
//!
//! ```
//! #![deny(unused_must_use)]
//! # use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Scope};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! # let policy = HashPolicy::default();
//! # let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse().unwrap(), Scope::Unrestricted, &policy).unwrap();
//! # let d = DeviceRecord::new("app1".parse().unwrap(), "a".parse().unwrap());
//! let principal = Authenticator::new(policy).authenticate(new.record.key(), Some(&new.record), &new.secret, &d).unwrap();
//! assert!(principal.can_see(&d));
//! assert!(new.record.can_see(&d));
//! ```
//!
//! # Types that will grow are `#[non_exhaustive]`
//!
//! Adding a key status (`Expired`), a kind of scope, a cost parameter, a cache
//! counter or a field of a new key is not a breaking change. Outside the crate a
//! `match` needs a `_` arm, and these structs are built through their
//! constructors, never as literals:
//!
//! ```
//! use structure_access::{Cost, KeyStatus, Scope};
//!
//! fn status(s: KeyStatus) -> &'static str {
//!     match s {
//!         KeyStatus::Active => "works",
//!         _ => "refused",
//!     }
//! }
//! fn scope(s: &Scope) -> bool {
//!     match s {
//!         Scope::Unrestricted => true,
//!         _ => false,
//!     }
//! }
//! let cost = Cost::new(19456, 2, 1);
//! assert_eq!((cost.m, cost.t, cost.p), (19456, 2, 1));
//! assert_eq!(status(KeyStatus::Inactive), "refused");
//! assert!(scope(&Scope::Unrestricted));
//! ```
//!
//! ```compile_fail,E0004
//! use structure_access::KeyStatus;
//! fn status(s: KeyStatus) -> &'static str {
//!     match s {
//!         KeyStatus::Active => "works",
//!         KeyStatus::Inactive => "refused",
//!     }
//! }
//! ```
//!
//! ```compile_fail,E0004
//! use structure_access::Scope;
//! fn scope(s: &Scope) -> bool {
//!     match s {
//!         Scope::Unrestricted => true,
//!         Scope::Restricted(_) => false,
//!     }
//! }
//! ```
//!
//! ```compile_fail,E0639
//! let cost = structure_access::Cost { m: 19456, t: 2, p: 1 };
//! ```
//!
//! ```compile_fail,E0639
//! let stats = structure_access::CacheStats { hits: 0, misses: 0, len: 0 };
//! ```
//!
//! ```
//! let stats = structure_access::CacheStats::default();
//! assert_eq!((stats.hits, stats.misses, stats.len), (0, 0, 0));
//! ```
//!
//! A new key's parts are read as fields, or destructured with `..`:
//!
//! ```
//! # use structure_access::{AccessKey, HashPolicy, NewAccessKey, Scope};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! # let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1)).unwrap();
//! let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse().unwrap(), Scope::Unrestricted, &policy).unwrap();
//! let NewAccessKey { record, secret, .. } = new;
//! # let _ = (record, secret);
//! ```
//!
//! ```compile_fail,E0638
//! # use structure_access::{AccessKey, HashPolicy, NewAccessKey, Scope};
//! # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! # let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1)).unwrap();
//! let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse().unwrap(), Scope::Unrestricted, &policy).unwrap();
//! let NewAccessKey { record, secret } = new;
//! ```
