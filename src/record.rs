//! [`AccessKey`]: the stored record of a key, its [`Scope`] and generation.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;

use crate::application::ApplicationId;
use crate::device::Device;
use crate::key::KeyId;
use crate::mqtt::{AdditionalTopics, SharedTopics};
use crate::restriction::Restriction;
use crate::secret::Secret;
use crate::time::UnixTime;
use crate::verifier::{Argon2Memory, HashPolicy, SALT_LEN, Verifier, VerifierError};

/// Longest description accepted, in characters (the platform's limit).
pub const MAX_DESCRIPTION_CHARS: usize = 32767;

/// Which devices of its application a key may authenticate and see.
///
/// A scope is application-free: the key record and the principal hold the
/// application and check it before the scope.
///
/// The restriction is shared, not copied: every [`Principal`](crate::Principal)
/// authenticated with a key holds the same `Arc`.
///
/// New kinds of scope may come: a `match` outside this crate needs a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Every device of the application.
    Unrestricted,
    /// Only the devices the restriction lists.
    Restricted(Arc<Restriction>),
}

impl Scope {
    /// Whether `device` is in scope, ignoring applications: an unrestricted
    /// scope sees every device. Callers go through [`AccessKey::can_see`] or
    /// [`Principal::can_see`](crate::Principal::can_see), which check the
    /// application first.
    #[inline]
    pub(crate) fn contains<D: Device + ?Sized>(&self, device: &D) -> bool {
        match self {
            Self::Unrestricted => true,
            Self::Restricted(restriction) => restriction.can_see(device),
        }
    }

    /// The restriction, if any.
    pub fn restriction(&self) -> Option<&Restriction> {
        match self {
            Self::Unrestricted => None,
            Self::Restricted(restriction) => Some(restriction),
        }
    }
}

impl From<Restriction> for Scope {
    fn from(restriction: Restriction) -> Self {
        Self::Restricted(Arc::new(restriction))
    }
}

impl From<Option<Restriction>> for Scope {
    fn from(restriction: Option<Restriction>) -> Self {
        restriction.map_or(Self::Unrestricted, Self::from)
    }
}

/// Whether a key may authenticate. An inactive key authenticates nobody.
///
/// New statuses may come (such as an expired key): a `match` outside this crate
/// needs a `_` arm, and only [`KeyStatus::Active`] authenticates
/// ([`KeyStatus::is_active`]). As text (`Display`, `FromStr`, serde) a status is
/// `active` or `inactive`.
///
/// ```
/// use structure_access::KeyStatus;
///
/// let status: KeyStatus = "inactive".parse()?;
/// assert_eq!(status, KeyStatus::Inactive);
/// assert_eq!(status.to_string(), "inactive");
/// assert!(!status.is_active());
/// assert!("Active".parse::<KeyStatus>().is_err());
/// # Ok::<(), structure_access::KeyStatusError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyStatus {
    /// The key works.
    #[default]
    Active,
    /// The key is switched off.
    Inactive,
}

/// Why an access key record is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The description is longer than [`MAX_DESCRIPTION_CHARS`].
    #[error("description is {chars} characters long, expected at most {MAX_DESCRIPTION_CHARS}")]
    DescriptionTooLong {
        /// Length of the rejected description in characters.
        chars: usize,
    },
}

/// Why a key could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The verifier could not be created.
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// The operating system's randomness failed.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[error(transparent)]
    Randomness(#[from] crate::RandomnessError),
}

/// The stored record of an access key: its id, application, verifier, scope,
/// status and description. It holds no secret and is what a service keeps in
/// its database.
///
/// With the `serde` feature it reads and writes this JSON shape (the restriction
/// in its canonical text form, `null` when unrestricted; unknown fields are
/// refused, so a misspelt `restriction` cannot silently widen a key, and
/// `application` is required, so a missing one cannot make a key global):
///
/// ```json
/// {"key": "stk_…", "application": "64b1…", "verifier": "$argon2id$v=19$…",
///  "restriction": null, "status": "active", "description": "…"}
/// ```
///
/// plus, when the key has an [`AdditionalTopics`] policy other than
/// [`AdditionalTopics::None`], an `"additionalTopics"` field in the platform's
/// shape (a missing or `null` field reads as `None`, so older records load),
/// and when the key expires, an `"expiresAt"` field in RFC 3339 UTC
/// (`"2027-03-01T12:00:00Z"`, see [`UnixTime`]; missing or `null`: never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    key: KeyId,
    application: ApplicationId,
    verifier: Verifier,
    scope: Scope,
    status: KeyStatus,
    description: Option<Box<str>>,
    topics: SharedTopics,
    expires_at: Option<UnixTime>,
}

/// A freshly generated key: the record to store and the secret to show once.
///
/// This is the only moment the secret exists in the clear; the crate cannot
/// recover it later. Its `Debug` is redacted like the secret's. Fields may be
/// added: read them (`new.record`, `new.secret`), or destructure with `..`.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewAccessKey {
    /// The record to store.
    pub record: AccessKey,
    /// The secret to hand to the device owner, once.
    pub secret: Secret,
}

impl AccessKey {
    /// Generates a key id and secret from `rng`, and the record holding the
    /// secret's verifier, made with `policy`'s parameters.
    ///
    /// ```
    /// use structure_access::{AccessKey, HashPolicy, Scope};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?; // cheap, for the example
    /// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse()?, Scope::Unrestricted, &policy)?;
    /// new.record.verifier().verify(&new.secret, &policy)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(
        rng: &mut R,
        application: ApplicationId,
        scope: Scope,
        policy: &HashPolicy,
    ) -> Result<NewAccessKey, VerifierError> {
        match Self::try_generate(rng, application, scope, policy) {
            Ok(new) => Ok(new),
            Err(Ok(e)) => Err(e),
        }
    }

    /// Like [`AccessKey::generate`], with the operating system's generator.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn generate_os(
        application: ApplicationId,
        scope: Scope,
        policy: &HashPolicy,
    ) -> Result<NewAccessKey, GenerateError> {
        Self::try_generate(&mut getrandom::SysRng, application, scope, policy).map_err(
            |e| match e {
                Ok(e) => GenerateError::Verifier(e),
                Err(e) => GenerateError::Randomness(crate::RandomnessError(e)),
            },
        )
    }

    fn try_generate<R: rand_core::TryCryptoRng + ?Sized>(
        rng: &mut R,
        application: ApplicationId,
        scope: Scope,
        policy: &HashPolicy,
    ) -> Result<NewAccessKey, Result<VerifierError, R::Error>> {
        let key = KeyId::try_generate(rng).map_err(Err)?;
        let secret = Secret::try_generate(rng).map_err(Err)?;
        let mut salt = [0u8; SALT_LEN];
        rng.try_fill_bytes(&mut salt).map_err(Err)?;
        let verifier = Verifier::create_with_salt(&secret, policy, &salt, &mut Argon2Memory::new())
            .map_err(Ok)?;
        Ok(NewAccessKey {
            record: Self::new(key, application, verifier, scope),
            secret,
        })
    }

    /// A record from its parts, for keys made elsewhere (imported keys).
    /// The status is [`KeyStatus::Active`] and there is no description.
    pub fn new(key: KeyId, application: ApplicationId, verifier: Verifier, scope: Scope) -> Self {
        Self {
            key,
            application,
            verifier,
            scope,
            status: KeyStatus::Active,
            description: None,
            topics: SharedTopics::default(),
            expires_at: None,
        }
    }

    /// Sets when the key expires (`None`: never). From that second on it
    /// authenticates nobody ([`AuthError::Expired`](crate::AuthError::Expired)),
    /// and [`Principal::reauthorize`](crate::Principal::reauthorize) refuses it.
    #[must_use]
    pub fn with_expiry(mut self, expires_at: Option<UnixTime>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// When the key expires, if it does.
    #[must_use]
    pub fn expires_at(&self) -> Option<UnixTime> {
        self.expires_at
    }

    /// Whether the key has expired at `now`: its expiry is `now` or earlier.
    #[must_use]
    pub fn is_expired_at(&self, now: UnixTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Sets the description (at most 32767 characters).
    pub fn with_description(mut self, description: &str) -> Result<Self, RecordError> {
        self.description = Some(check_description(description)?);
        Ok(self)
    }

    /// Sets the policy for topics outside the device topics (MQTT). Give an
    /// `Arc` to share one policy between many keys; a principal authenticated
    /// with the key shares it too, without copying.
    ///
    /// ```
    /// use structure_access::mqtt::{AdditionalTopics, FilterList};
    /// # use structure_access::{AccessKey, HashPolicy, Scope};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// # let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?;
    /// # let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse()?, Scope::Unrestricted, &policy)?;
    ///
    /// let topics = AdditionalTopics::AllowList {
    ///     publish: FilterList::new(["alerts/#"])?,
    ///     subscribe: FilterList::empty(),
    /// };
    /// let record = new.record.with_additional_topics(topics.clone());
    /// assert_eq!(record.additional_topics(), &topics);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_additional_topics(mut self, topics: impl Into<Arc<AdditionalTopics>>) -> Self {
        self.topics = SharedTopics::new(topics.into());
        self
    }

    /// Replaces the verifier: after a rotated secret, or with the upgrade
    /// [`Authenticator::authenticate_and_upgrade`](crate::Authenticator::authenticate_and_upgrade)
    /// computed.
    #[must_use]
    pub fn with_verifier(mut self, verifier: Verifier) -> Self {
        self.verifier = verifier;
        self
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: KeyStatus) -> Self {
        self.status = status;
        self
    }

    /// Changes the status (restrictions never change: make a new key instead).
    pub fn set_status(&mut self, status: KeyStatus) {
        self.status = status;
    }

    /// The public key id.
    pub fn key(&self) -> &KeyId {
        &self.key
    }

    /// The application the key belongs to.
    pub fn application(&self) -> &ApplicationId {
        &self.application
    }

    /// Whether the key covers `device`: the device belongs to the key's
    /// application and is in its scope. Status is not checked here.
    #[inline]
    #[must_use]
    pub fn can_see<D: Device + ?Sized>(&self, device: &D) -> bool {
        self.application.is(device.application()) && self.scope.contains(device)
    }

    /// The secret's verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The key's scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The key's status.
    pub fn status(&self) -> KeyStatus {
        self.status
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The policy for topics outside the device topics ([`AdditionalTopics::None`]
    /// unless set).
    pub fn additional_topics(&self) -> &AdditionalTopics {
        self.topics.get()
    }

    /// The policy as principals share it.
    pub(crate) fn shared_topics(&self) -> &SharedTopics {
        &self.topics
    }
}

fn check_description(description: &str) -> Result<Box<str>, RecordError> {
    // Counting stops just past the limit: the work is bounded by the limit.
    let chars = description.chars().take(MAX_DESCRIPTION_CHARS + 1).count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(RecordError::DescriptionTooLong {
            chars: description.chars().count(),
        });
    }
    Ok(description.into())
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
mod wire {
    use super::*;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct WireOut<'a> {
        key: &'a KeyId,
        application: &'a ApplicationId,
        verifier: &'a Verifier,
        restriction: Option<&'a Restriction>,
        status: KeyStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        #[serde(rename = "additionalTopics", skip_serializing_if = "Option::is_none")]
        additional_topics: Option<&'a AdditionalTopics>,
        #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
        expires_at: Option<UnixTime>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WireIn {
        key: KeyId,
        // Required: a missing application must never make a key global.
        application: ApplicationId,
        verifier: Verifier,
        // Required even though nullable: a missing field must not mean "unrestricted".
        #[serde(deserialize_with = "Option::deserialize")]
        restriction: Option<Restriction>,
        status: KeyStatus,
        #[serde(default)]
        description: Option<alloc::string::String>,
        // Missing or null: none, as for records written before the field existed.
        #[serde(rename = "additionalTopics", default)]
        additional_topics: Option<AdditionalTopics>,
        // Missing or null: the key never expires.
        #[serde(rename = "expiresAt", default)]
        expires_at: Option<UnixTime>,
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl Serialize for AccessKey {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            WireOut {
                key: &self.key,
                application: &self.application,
                verifier: &self.verifier,
                restriction: self.scope.restriction(),
                status: self.status,
                description: self.description(),
                additional_topics: (!self.topics.is_none()).then(|| self.topics.get()),
                expires_at: self.expires_at,
            }
            .serialize(serializer)
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<'de> Deserialize<'de> for AccessKey {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let wire = WireIn::deserialize(deserializer)?;
            let description = wire
                .description
                .as_deref()
                .map(check_description)
                .transpose()
                .map_err(serde::de::Error::custom)?;
            Ok(Self {
                key: wire.key,
                application: wire.application,
                verifier: wire.verifier,
                scope: wire.restriction.into(),
                status: wire.status,
                description,
                topics: wire
                    .additional_topics
                    .map(SharedTopics::from_value)
                    .unwrap_or_default(),
                expires_at: wire.expires_at,
            })
        }
    }
}

impl KeyStatus {
    /// `active` or `inactive`, as stored.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    /// Whether a key of this status may authenticate: only an active one.
    #[must_use]
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Active)
    }
}

/// Why a text is not a [`KeyStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown access key status `{}`, expected `active` or `inactive`",
    crate::text::Escaped(found)
)]
pub struct KeyStatusError {
    found: alloc::string::String,
}

impl KeyStatusError {
    /// The rejected text (at most 32 characters of it).
    #[must_use]
    pub fn found(&self) -> &str {
        &self.found
    }
}

impl core::str::FromStr for KeyStatus {
    type Err = KeyStatusError;

    /// `active` or `inactive`, exactly (lowercase, as stored).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "inactive" => Ok(Self::Inactive),
            _ => Err(KeyStatusError {
                found: text.chars().take(32).collect(),
            }),
        }
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for KeyStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for KeyStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(crate::serde_util::FromStrVisitor::new(
            "`active` or `inactive`",
        ))
    }
}
