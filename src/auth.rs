//! Authentication: [`Authenticator`], [`Principal`] and [`AuthError`].

use core::fmt;

use crate::application::ApplicationId;
use crate::device::{Device, DeviceId, DeviceIdError};
use crate::key::KeyId;
use crate::mqtt::{AdditionalTopics, SharedTopics};
use crate::record::{AccessKey, Scope};
use crate::secret::{Secret, SecretError};
use crate::time::UnixTime;
use crate::verifier::{Argon2Memory, HashPolicy, Verifier, VerifierError};

/// The one answer a client gets for any refusal, whatever its cause.
pub const PUBLIC_REFUSAL: &str = "bad credentials";

/// Why authentication was refused.
///
/// The variants are for the server's logs; the client must get the same answer
/// whatever the cause ([`AuthError::public_message`], or MQTT's "not
/// authorised"), so that it learns nothing about keys it cannot prove. No
/// message contains the secret.
///
/// Each message says its cause once: the variants that wrap another error show
/// that error's message as their own (`MalformedSecret`, `InvalidDeviceId`), or
/// return it from [`source`](core::error::Error::source) without repeating it
/// (`BadVerifier`): log the whole chain, as `anyhow`'s `{:#}` does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The password is not a well-formed secret (checked before any hashing).
    #[error(transparent)]
    MalformedSecret(#[from] SecretError),
    /// The client id is not a valid device ID.
    #[error(transparent)]
    InvalidDeviceId(#[from] DeviceIdError),
    /// No record for the key (a dummy verification was run all the same).
    #[error("unknown access key")]
    UnknownKey,
    /// The secret does not match the key's verifier.
    #[error("wrong secret for access key `{key}`")]
    WrongSecret {
        /// The key that was tried.
        key: KeyId,
    },
    /// An imported secret was presented for a key whose verifier is the fast
    /// scheme, which the hash policy lets prove generated secrets only. (The
    /// Argon2 dummy ran all the same.)
    #[error(
        "an imported secret was presented for access key `{key}`, whose fast verifier proves generated secrets only"
    )]
    ImportedSecretForFastVerifier {
        /// The key that was tried.
        key: KeyId,
    },
    /// Refused before any verification: proving this secret would run Argon2,
    /// and the caller's budget of slow verifications is spent (see
    /// [`Authenticator::authenticate_with`]).
    #[error("refused without verifying: the budget of slow (argon2) verifications is spent")]
    Throttled,
    /// The secret is right but the key is inactive.
    #[error("access key `{key}` is inactive")]
    InactiveKey {
        /// The inactive key.
        key: KeyId,
    },
    /// The secret is right but the key has expired (its
    /// [`expires_at`](AccessKey::expires_at) is now or earlier), or it has an
    /// expiry and the authenticator has no clock to compare it with.
    #[error("access key `{key}` has expired")]
    Expired {
        /// The expired key.
        key: KeyId,
    },
    /// The secret is right but the device belongs to another application than
    /// the key.
    #[error("device belongs to another application than access key `{key}`")]
    WrongApplication {
        /// The key used.
        key: KeyId,
    },
    /// The secret is right but the device is outside the key's restriction.
    /// (The device ID is the caller's own input, so it is not repeated here:
    /// that keeps the error small and free of allocation.)
    #[error("device is outside the scope of access key `{key}`")]
    OutOfScope {
        /// The key used.
        key: KeyId,
    },
    /// The key's stored verifier is malformed, outside the hash policy, or could
    /// not be computed: a fault on the server's side.
    #[error("stored verifier of access key `{key}` refused")]
    BadVerifier {
        /// The key whose record is at fault.
        key: KeyId,
        /// What is wrong with it.
        source: VerifierError,
    },
}

impl AuthError {
    /// The answer to send to the client: always [`PUBLIC_REFUSAL`].
    pub fn public_message(&self) -> &'static str {
        PUBLIC_REFUSAL
    }

    /// Whether the refusal comes from the server's own data (a bad stored
    /// verifier, or memory exhaustion) rather than from the client's credentials.
    #[must_use]
    pub fn is_server_fault(&self) -> bool {
        matches!(self, Self::BadVerifier { .. })
    }
}

/// An authenticated device: its application and ID, the key it used, and that
/// key's scope.
///
/// Building one allocates nothing: the IDs are held inline and the scope's
/// restriction is shared with the key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    application: ApplicationId,
    device: DeviceId,
    key: KeyId,
    scope: Scope,
    topics: SharedTopics,
}

impl Principal {
    /// The application of the device and of the key.
    pub fn application(&self) -> &ApplicationId {
        &self.application
    }

    /// The authenticated device's ID.
    pub fn device_id(&self) -> &DeviceId {
        &self.device
    }

    /// The key it authenticated with (as [`AccessKey::key`] names it).
    pub fn key(&self) -> &KeyId {
        &self.key
    }

    /// The key's scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The key's policy for topics outside the device topics, shared with the
    /// key record.
    pub fn additional_topics(&self) -> &AdditionalTopics {
        self.topics.get()
    }

    /// The principal of a connection that **has already authenticated** with
    /// `record`'s key as `device`, derived again from the current record and
    /// device, without the secret and without hashing.
    ///
    /// The key's status and expiry (at `now`, which the caller gives: the
    /// crate reads no clock here; [`UnixTime::now`] reads the system's), the
    /// device's application and its membership in the key's scope are
    /// checked again, and the principal takes the record's current scope and
    /// additional topics. A broker calls it for ACL checks
    /// after a connection's DISCONNECT (wills, queued messages of offline
    /// sessions), to re-evaluate every live session after reloading its key
    /// records (revocation), and a stateless webhook broker for every request.
    ///
    /// **Only** call it for a connection that the broker authenticated with
    /// this key, as this device: it proves nothing about the client. A rotated
    /// secret is not noticed here either: compare the record's
    /// [`verifier`](AccessKey::verifier) with the one that authenticated the
    /// connection, and disconnect the client when it changed.
    ///
    /// ```
    /// use structure_access::{AccessKey, AuthError, Authenticator, DeviceRecord, HashPolicy, KeyStatus, Principal, Scope, UnixTime};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?; // cheap, for the example
    /// let app = "app1".parse()?;
    /// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), app, Scope::Unrestricted, &policy)?;
    /// let device = DeviceRecord::new(app, "d1".parse()?);
    /// // At CONNECT, with the secret.
    /// let principal = Authenticator::new(policy).authenticate(new.record.key(), Some(&new.record), &new.secret, &device)?;
    /// // Later, after the record changed: no secret needed.
    /// let now = UnixTime::now();
    /// assert!(Principal::reauthorize(&new.record, &device, now).is_ok());
    /// let record = new.record.clone().with_status(KeyStatus::Inactive);
    /// assert!(matches!(Principal::reauthorize(&record, &device, now), Err(AuthError::InactiveKey { .. })));
    /// // An expiry reached.
    /// let record = new.record.with_expiry(Some(now));
    /// assert!(matches!(Principal::reauthorize(&record, &device, now), Err(AuthError::Expired { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reauthorize<D: Device + ?Sized>(
        record: &AccessKey,
        device: &D,
        now: UnixTime,
    ) -> Result<Self, AuthError> {
        let device_id: DeviceId = device.id().parse()?;
        Self::admit(record, device_id, device, Some(now))
    }

    /// The checks that follow a proven secret: status, expiry (at `now`; a
    /// key with an expiry is refused when the time is not known),
    /// application, scope.
    fn admit<D: Device + ?Sized>(
        record: &AccessKey,
        device_id: DeviceId,
        device: &D,
        now: Option<UnixTime>,
    ) -> Result<Self, AuthError> {
        let key = *record.key();
        if !record.status().is_active() {
            return Err(AuthError::InactiveKey { key });
        }
        if record.expires_at().is_some() && now.is_none_or(|now| record.is_expired_at(now)) {
            return Err(AuthError::Expired { key });
        }
        if !record.application().is(device.application()) {
            return Err(AuthError::WrongApplication { key });
        }
        if !record.scope().contains(device) {
            return Err(AuthError::OutOfScope { key });
        }
        Ok(Self {
            application: *record.application(),
            device: device_id,
            key,
            scope: record.scope().clone(),
            topics: record.shared_topics().clone(),
        })
    }

    /// Whether this device may see `other`: never a device of another
    /// application; within the application, always for an unrestricted key,
    /// otherwise when `other` is in the key's restriction. Allocates nothing.
    #[inline]
    #[must_use]
    pub fn can_see<D: Device + ?Sized>(&self, other: &D) -> bool {
        self.application.is(other.application()) && self.scope.contains(other)
    }
}

/// Turns (key, record, secret, device) into a [`Principal`], following the
/// rules of the platform without leaking anything to a caller who lacks the
/// secret.
///
/// - The secret's shape and checksum are checked first (the format is public).
/// - The stored verifier is checked against the [`HashPolicy`] (bounds, allowed
///   algorithms, and that it may prove this kind of secret) before any hashing.
/// - A generated secret is proven by a fast `hmac-sha256` verifier in about a
///   microsecond, without the cache and without allocating; an imported secret
///   (or a stored Argon2 verifier) costs an Argon2 run, unless the cache knows it.
/// - The secret is verified in constant time; only then are the key's status,
///   the device's application and its membership in the key's scope checked.
/// - Argon2's block memory comes from a bounded pool and is reused: peak memory is
///   about `pool size × m`, however many verifications run.
/// - With the `std` feature, a `VerificationCache` can
///   make repeat authentications of the same (verifier, secret) skip Argon2.
/// - It blocks (Argon2, or waiting for a free buffer of the pool): from async
///   code, call it on a blocking thread; the [crate documentation](crate#async-servers)
///   shows how, with tokio.
///
/// # Which keys exist: the cost rule
///
/// What a refusal costs must not tell a caller without the secret whether the
/// key it named exists. A caller knows the key id it presents (its shape:
/// generated `stk_…` or imported, such as a UUID), the secret it presents
/// (generated `sts_…` or imported) and, at worst, the policy; it does not know
/// what verifier a record holds. So every authentication of a key costs the
/// scheme that [`HashPolicy::expected_scheme`] names for the presented key
/// id's shape, whatever the secret's shape and whether or not a record exists:
///
/// | key id | default | `argon2id_for_generated` | `allow_fast_for_imported` |
/// |---|---|---|---|
/// | generated (`stk_…`) | `hmac-sha256` | Argon2id | `hmac-sha256` |
/// | imported (UUID, …) | Argon2id | Argon2id | `hmac-sha256` |
///
/// (with both settings: Argon2id for generated keys, `hmac-sha256` for
/// imported ones.) Then:
///
/// - an unknown key runs a dummy verification of that scheme (Argon2id at the
///   policy's parameters);
/// - a known key whose verifier the policy refuses for this secret (such as an
///   imported secret presented for a fast verifier) runs the same dummy;
/// - a known key whose verifier is of that scheme is verified, nothing more;
/// - a known key whose verifier is fast where the rule names Argon2id (an
///   imported key given a generated secret, say) is verified **and** runs the
///   Argon2id dummy, so that it costs what an unknown key of its shape costs.
///   A success is then cached like an Argon2 one: a repeat costs a cache hit.
///
/// A record the rule cannot hide costs more than its key's dummy: an Argon2
/// verifier where the rule names `hmac-sha256` (a generated key's record from
/// before the fast scheme, or a human-chosen imported secret's under
/// `allow_fast_for_imported`), or an Argon2 verifier with other parameters
/// than the policy's (argon2-cffi's defaults cost 5× OWASP's). Such a key's
/// existence shows by timing until its verifier is replaced:
/// [`authenticate_and_upgrade`](Self::authenticate_and_upgrade) rewrites it
/// at the first successful authentication (or set the policy to match the
/// records: `argon2id_for_generated`, `with_params`).
///
/// The record passed must be the one found for `key`; a record of another key
/// is taken as no record (the dummy runs, and the answer is
/// [`AuthError::UnknownKey`]).
///
/// ```
/// use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Scope};
/// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?; // cheap, for the example
/// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse()?, Scope::Unrestricted, &policy)?;
/// let auth = Authenticator::new(policy);
/// let device = DeviceRecord::new("app1".parse()?, "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?);
/// let key = new.record.key();
/// let principal = auth.authenticate(key, Some(&new.record), &new.secret, &device)?;
/// assert_eq!(principal.device_id().as_str(), "5f2b8c1e9a4d3b7c6e1f0a2b");
/// assert!(auth.authenticate(key, None, &new.secret, &device).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Authenticator {
    policy: HashPolicy,
    dummy: Verifier,
    fast_dummy: Verifier,
    #[cfg(feature = "std")]
    pool: crate::pool::MemoryPool,
    #[cfg(feature = "std")]
    cache: Option<crate::cache::VerificationCache>,
    clock: Option<fn() -> UnixTime>,
}

/// The hashing one authentication did, for tests that pin which dummy runs
/// (timing itself is for the benchmarks). Returned by
/// [`Authenticator::authenticate_traced`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AuthWork {
    /// HMAC-SHA-256 computations (the fast scheme, real or dummy).
    pub hmac_sha256: u32,
    /// Argon2 computations (real or dummy).
    pub argon2: u32,
    /// Their total `m × t`, in KiB passes.
    pub argon2_kib_passes: u64,
    /// Whether the verification cache answered.
    pub cache_hit: bool,
}

impl AuthWork {
    fn count(&mut self, verifier: &Verifier) {
        match verifier.cost() {
            Some(cost) => {
                self.argon2 += 1;
                self.argon2_kib_passes += u64::from(cost.m) * u64::from(cost.t);
            }
            None => self.hmac_sha256 += 1,
        }
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Authenticator");
        s.field("policy", &self.policy);
        #[cfg(feature = "std")]
        s.field("pool", &self.pool).field("cache", &self.cache);
        s.finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator enforcing `policy`, with a memory pool of one buffer per
    /// available core (under `std`) and no cache.
    pub fn new(policy: HashPolicy) -> Self {
        Self {
            dummy: Verifier::dummy(&policy),
            fast_dummy: Verifier::fast_dummy(),
            #[cfg(feature = "std")]
            pool: crate::pool::MemoryPool::new(
                crate::pool::default_pool_size(),
                pool_keep_kib(&policy),
            ),
            #[cfg(feature = "std")]
            cache: None,
            #[cfg(feature = "std")]
            clock: Some(UnixTime::now),
            #[cfg(not(feature = "std"))]
            clock: None,
            policy,
        }
    }

    /// Sets how many Argon2 buffers may exist at once (at least 1). Verifications
    /// beyond that wait for a free buffer, so peak memory stays at about
    /// `size × m` KiB. A buffer that a stored verifier with a larger `m` than the
    /// policy's made grow is released after use.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[must_use]
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool = crate::pool::MemoryPool::new(size, pool_keep_kib(&self.policy));
        self
    }

    /// Adds a verification cache.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[must_use]
    pub fn with_cache(mut self, cache: crate::cache::VerificationCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The cache, to invalidate entries.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn cache(&self) -> Option<&crate::cache::VerificationCache> {
        self.cache.as_ref()
    }

    /// Sets where the time of an authentication comes from, to compare
    /// with the keys' expiry. With `std` it is the system clock
    /// ([`UnixTime::now`]); without, there is none until one is given here,
    /// and a key that has an expiry authenticates nobody
    /// ([`AuthError::Expired`]): a time not known is never taken as "not
    /// expired".
    ///
    /// ```
    /// use structure_access::{AccessKey, AuthError, Authenticator, DeviceRecord, HashPolicy, Scope, UnixTime};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// fn new_year() -> UnixTime {
    ///     "2027-01-01T00:00:00Z".parse().unwrap_or(UnixTime::EPOCH)
    /// }
    /// let policy = HashPolicy::default();
    /// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse()?, Scope::Unrestricted, &policy)?;
    /// let record = new.record.with_expiry(Some("2027-01-01T00:00:00Z".parse()?));
    /// let device = DeviceRecord::new("app1".parse()?, "d1".parse()?);
    /// let auth = Authenticator::new(policy).with_clock(new_year);
    /// let refused = auth.authenticate(record.key(), Some(&record), &new.secret, &device);
    /// assert!(matches!(refused, Err(AuthError::Expired { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_clock(mut self, now: fn() -> UnixTime) -> Self {
        self.clock = Some(now);
        self
    }

    /// The hash policy.
    pub fn policy(&self) -> &HashPolicy {
        &self.policy
    }

    /// Whether authenticating `key` (with `record`, the one found for it, if
    /// any) may run Argon2, whatever the secret: when the cost rule names
    /// Argon2id for its shape, or its record has an Argon2 verifier. A server
    /// that answers cheap authentications inline hands these to a blocking
    /// thread.
    ///
    /// ```
    /// use structure_access::{Authenticator, HashPolicy, KeyId};
    ///
    /// let auth = Authenticator::new(HashPolicy::default());
    /// let generated: KeyId = "stk_4DmVJcy3ZpW0gNqk8TbX2a".parse()?;
    /// let uuid: KeyId = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse()?;
    /// assert!(!auth.may_run_argon2(&generated, None));
    /// assert!(auth.may_run_argon2(&uuid, None));
    /// # Ok::<(), structure_access::KeyError>(())
    /// ```
    #[must_use]
    pub fn may_run_argon2(&self, key: &KeyId, record: Option<&AccessKey>) -> bool {
        self.policy.expected_scheme(key).is_slow()
            || record.is_some_and(|record| record.verifier().is_slow())
    }

    /// Parses `password` as a secret (generated shape if it starts with `sts_`,
    /// imported otherwise), then [`authenticate`](Self::authenticate)s. This is
    /// the entry point for an MQTT CONNECT or an HTTP auth request.
    pub fn authenticate_password<D: Device + ?Sized>(
        &self,
        key: &KeyId,
        record: Option<&AccessKey>,
        password: &str,
        device: &D,
    ) -> Result<Principal, AuthError> {
        let secret = Secret::parse_any(password)?;
        self.authenticate(key, record, &secret, device)
    }

    /// Authenticates `device` with `secret` for `key`, whose record is
    /// `record` (`None` when the caller found none).
    pub fn authenticate<D: Device + ?Sized>(
        &self,
        key: &KeyId,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
    ) -> Result<Principal, AuthError> {
        self.authenticate_with(key, record, secret, device, || true)
    }

    /// [`authenticate`](Self::authenticate), asking `permit_slow` right before
    /// an Argon2 computation would run (a cold Argon2 verification, or the
    /// Argon2 dummy of the cost rule): when it answers `false`, nothing is
    /// computed and the answer is [`AuthError::Throttled`]. It is never asked
    /// when the rule names the fast scheme for the key and its record's
    /// verifier is fast, nor for a cache hit, so a server can bound its Argon2
    /// work (per second, per client address) while devices with generated keys
    /// and secrets keep connecting whatever the flood.
    ///
    /// ```
    /// use structure_access::{AccessKey, AuthError, Authenticator, DeviceRecord, HashPolicy, KeyId, Scope, Secret};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let policy = HashPolicy::default();
    /// let app = "app1".parse()?;
    /// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), app, Scope::Unrestricted, &policy)?;
    /// let auth = Authenticator::new(policy);
    /// let device = DeviceRecord::new(app, "d1".parse()?);
    /// // A generated key and secret need no Argon2: the budget is not even asked.
    /// auth.authenticate_with(new.record.key(), Some(&new.record), &new.secret, &device, || false)?;
    /// // An imported (UUID-shaped) key costs Argon2id, known or not.
    /// let uuid: KeyId = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse()?;
    /// let guess = Secret::imported("0123456789abcdef")?;
    /// assert_eq!(auth.authenticate_with(&uuid, None, &guess, &device, || false), Err(AuthError::Throttled));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authenticate_with<D, P>(
        &self,
        key: &KeyId,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
        permit_slow: P,
    ) -> Result<Principal, AuthError>
    where
        D: Device + ?Sized,
        P: FnOnce() -> bool,
    {
        self.run(
            key,
            record,
            secret,
            device,
            permit_slow,
            &mut AuthWork::default(),
        )
    }

    /// [`authenticate_with`](Self::authenticate_with), also telling what it
    /// computed: for tests that pin which dummy the cost rule runs.
    #[doc(hidden)]
    pub fn authenticate_traced<D, P>(
        &self,
        key: &KeyId,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
        permit_slow: P,
    ) -> (Result<Principal, AuthError>, AuthWork)
    where
        D: Device + ?Sized,
        P: FnOnce() -> bool,
    {
        let mut work = AuthWork::default();
        let result = self.run(key, record, secret, device, permit_slow, &mut work);
        (result, work)
    }

    fn run<D, P>(
        &self,
        key: &KeyId,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
        permit_slow: P,
        work: &mut AuthWork,
    ) -> Result<Principal, AuthError>
    where
        D: Device + ?Sized,
        P: FnOnce() -> bool,
    {
        let device_id: DeviceId = device.id().parse()?;
        // The cost of every path below, from what the caller knows too.
        let expected = self.policy.expected_scheme(key);
        let Some(record) = record.filter(|record| record.key() == key) else {
            self.run_dummy(expected.is_slow(), secret, permit_slow, work)?;
            return Err(AuthError::UnknownKey);
        };
        let verifier = record.verifier();
        if let Err(source) = self.policy.check_for(verifier, secret) {
            // Refusing at once would tell that the key exists: cost the same.
            self.run_dummy(expected.is_slow(), secret, permit_slow, work)?;
            return Err(match source {
                VerifierError::FastForImported => {
                    AuthError::ImportedSecretForFastVerifier { key: *key }
                }
                source => AuthError::BadVerifier { key: *key, source },
            });
        }
        // A fast verifier where the rule names Argon2id: padded to its dummy.
        let pad = expected.is_slow() && !verifier.is_slow();
        if !self.verify(key, verifier, secret, pad, permit_slow, work)? {
            return Err(AuthError::WrongSecret { key: *key });
        }
        // Only a caller holding the secret gets this far.
        Principal::admit(record, device_id, device, self.clock.map(|now| now()))
    }

    /// [`authenticate`](Self::authenticate), and, when the stored verifier
    /// should be replaced ([`HashPolicy::needs_upgrade`]: another scheme than
    /// the policy writes for this kind of secret, or Argon2 parameters other
    /// than the policy's), its replacement, computed while the proven secret
    /// is at hand. Store it in place of the record's verifier
    /// ([`AccessKey::with_verifier`]).
    ///
    /// ```
    /// use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Scheme, Scope};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// // A record from before the fast scheme: Argon2id for a generated secret.
    /// let old = HashPolicy::default().argon2id_for_generated(true).with_params(structure_access::Cost::new(64, 1, 1))?;
    /// let app = "app1".parse()?;
    /// let mut rng = ChaCha20Rng::seed_from_u64(1);
    /// let new = AccessKey::generate(&mut rng, app, Scope::Unrestricted, &old)?;
    /// let auth = Authenticator::new(HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?);
    /// let device = DeviceRecord::new(app, "d1".parse()?);
    /// let key = *new.record.key();
    /// let done = auth.authenticate_and_upgrade(&key, Some(&new.record), &new.secret, &device, &mut rng)?;
    /// let upgraded = done.upgrade.expect("another scheme than the policy's");
    /// assert_eq!(upgraded.scheme(), Scheme::HmacSha256);
    /// let record = new.record.with_verifier(upgraded);
    /// assert!(auth.authenticate_and_upgrade(&key, Some(&record), &new.secret, &device, &mut rng)?.upgrade.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authenticate_and_upgrade<D, R>(
        &self,
        key: &KeyId,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
        rng: &mut R,
    ) -> Result<Authenticated, AuthError>
    where
        D: Device + ?Sized,
        R: rand_core::CryptoRng + ?Sized,
    {
        let principal = self.authenticate(key, record, secret, device)?;
        let upgrade = record
            .filter(|record| self.policy.needs_upgrade(record.verifier(), secret))
            .and_then(|_| {
                let mut salt = [0u8; crate::verifier::SALT_LEN];
                rng.fill_bytes(&mut salt);
                self.with_memory(|memory| {
                    Verifier::create_with_salt(secret, &self.policy, &salt, memory)
                })
                .ok()
            });
        Ok(Authenticated { principal, upgrade })
    }

    /// The dummy verification for a refusal that must cost what the cost rule
    /// says: Argon2id at the policy's parameters (`slow`) or the fast scheme.
    fn run_dummy(
        &self,
        slow: bool,
        secret: &Secret,
        permit_slow: impl FnOnce() -> bool,
        work: &mut AuthWork,
    ) -> Result<(), AuthError> {
        let dummy = if slow {
            if !permit_slow() {
                return Err(AuthError::Throttled);
            }
            &self.dummy
        } else {
            &self.fast_dummy
        };
        // The same steps as for a stored verifier; the outcome is ignored: only
        // the work counts.
        let _ = self.policy.check(dummy);
        work.count(dummy);
        let _ = self.verify_uncached(dummy, secret);
        Ok(())
    }

    /// Verifies `secret` against `verifier`; with `pad`, a fast verifier
    /// also costs the Argon2id dummy.
    fn verify(
        &self,
        key: &KeyId,
        verifier: &Verifier,
        secret: &Secret,
        pad: bool,
        permit_slow: impl FnOnce() -> bool,
        work: &mut AuthWork,
    ) -> Result<bool, AuthError> {
        let bad = |source| AuthError::BadVerifier { key: *key, source };
        if !verifier.is_slow() && !pad {
            // Cheaper than the cache itself.
            work.count(verifier);
            return self.verify_uncached(verifier, secret).map_err(bad);
        }
        #[cfg(feature = "std")]
        let cached = self
            .cache
            .as_ref()
            .map(|cache| (cache, cache.tag(verifier, secret)));
        #[cfg(feature = "std")]
        if let Some((cache, tag)) = &cached {
            if cache.contains(key, tag) {
                work.cache_hit = true;
                return Ok(true);
            }
        }
        if !permit_slow() {
            return Err(AuthError::Throttled);
        }
        work.count(verifier);
        let ok = self.verify_uncached(verifier, secret).map_err(bad)?;
        if pad {
            work.count(&self.dummy);
            let _ = self.verify_uncached(&self.dummy, secret);
        }
        #[cfg(feature = "std")]
        if let (true, Some((cache, tag))) = (ok, cached) {
            cache.insert(*key, tag);
        }
        Ok(ok)
    }

    /// Runs `f` with Argon2 memory: from the pool under `std`, fresh otherwise.
    fn with_memory<T>(&self, f: impl FnOnce(&mut Argon2Memory) -> T) -> T {
        #[cfg(feature = "std")]
        {
            f(&mut self.pool.acquire())
        }
        #[cfg(not(feature = "std"))]
        {
            f(&mut Argon2Memory::new())
        }
    }

    fn verify_uncached(&self, verifier: &Verifier, secret: &Secret) -> Result<bool, VerifierError> {
        let result = if verifier.is_slow() {
            self.with_memory(|memory| verifier.matches(secret.as_bytes(), memory))
        } else {
            // No Argon2 blocks: an empty buffer, never allocated.
            verifier.matches(secret.as_bytes(), &mut Argon2Memory::new())
        };
        Ok(result?.into())
    }
}

/// Pool buffers up to the policy's `m` are kept; larger ones are released.
#[cfg(feature = "std")]
fn pool_keep_kib(policy: &HashPolicy) -> usize {
    usize::try_from(policy.params().m).unwrap_or(usize::MAX)
}

/// A successful [`Authenticator::authenticate_and_upgrade`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Authenticated {
    /// The authenticated device.
    pub principal: Principal,
    /// The verifier to store in place of the record's, when the policy wants
    /// another one; `None` when the stored one is as the policy writes it (or,
    /// rarely, when the replacement could not be computed: out of memory; it is
    /// computed again at the next authentication).
    pub upgrade: Option<Verifier>,
}
