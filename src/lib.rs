#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
// docs.rs (`--cfg docsrs`) shows which feature each gated item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![warn(
    missing_debug_implementations,
    rust_2018_idioms,
    unused_qualifications,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::todo,
    clippy::unimplemented
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(doctest)]
mod api_checks;
mod application;
mod auth;
#[cfg(feature = "std")]
mod cache;
mod credentials;
mod device;
mod encoding;
mod inline;
mod key;
pub mod mqtt;
#[cfg(feature = "std")]
mod pool;
mod record;
pub mod restriction;
mod scan;
mod secret;
#[cfg(feature = "serde")]
mod serde_util;
mod text;
mod time;
mod verifier;

pub use application::{ApplicationId, ApplicationIdError, MAX_APPLICATION_ID_LEN};
pub use auth::{AuthError, AuthWork, Authenticated, Authenticator, PUBLIC_REFUSAL, Principal};
#[cfg(feature = "std")]
pub use cache::{CacheStats, DEFAULT_CACHE_CAPACITY, VerificationCache};
pub use credentials::{CredentialsError, DeviceCredentials};
pub use device::{
    Device, DeviceId, DeviceIdError, DeviceRecord, MAX_DEVICE_ID_LEN, MAX_DEVICE_TAGS,
};
pub use key::{GENERATED_KEY_LEN, KEY_PREFIX, KeyError, KeyId, MAX_KEY_LEN};
pub use mqtt::{
    AdditionalTopics, Decision, DeviceDirectory, FilterList, Topic, TopicError, TopicFilter,
    TopicRules,
};
pub use record::{
    AccessKey, GenerateError, KeyStatus, KeyStatusError, MAX_DESCRIPTION_CHARS, NewAccessKey,
    RecordError, Scope,
};
pub use restriction::{Limits, Restriction, RestrictionError, TagFilter, TagPattern};
pub use scan::{
    DEFAULT_SCAN_WINDOW, Finding, FindingEncoding, FindingKind, Findings, SCAN_OVERLAP,
    SHOWN_CHARS, Scanner, Window, scan,
};
pub use secret::{
    GENERATED_SECRET_LEN, MAX_SECRET_LEN, MIN_IMPORTED_SECRET_LEN, SECRET_PREFIX, Secret,
    SecretError,
};
pub use text::is_invisible;
pub use time::{TimeError, UnixTime};
pub use verifier::{
    Argon2Memory, Cost, FAST_OUTPUT_LEN, FAST_SCHEME_ID, HashPolicy, MAX_OUTPUT_LEN, MAX_PHC_LEN,
    MAX_SALT_LEN, MIN_OUTPUT_LEN, MIN_SALT_LEN, OUTPUT_LEN, SALT_LEN, Scheme, Variant, Verifier,
    VerifierError,
};

/// The operating system's randomness failed (only with the `std` feature).
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(pub(crate) getrandom::Error);
