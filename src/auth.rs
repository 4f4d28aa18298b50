//! Authentication: [`Authenticator`], [`Principal`] and [`AuthError`].

use core::fmt;

use crate::application::ApplicationId;
use crate::device::{Device, DeviceId, DeviceIdError};
use crate::key::KeyId;
use crate::mqtt::{AdditionalTopics, SharedTopics};
use crate::record::{AccessKey, Scope};
use crate::secret::{Secret, SecretError};
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
    /// The key's status, the device's application and its membership in the
    /// key's scope are checked again, and the principal takes the record's
    /// current scope and additional topics. A broker calls it for ACL checks
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
    /// use structure_access::{AccessKey, AuthError, Authenticator, DeviceRecord, HashPolicy, KeyStatus, Principal, Scope};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?; // cheap, for the example
    /// let app = "app1".parse()?;
    /// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), app, Scope::Unrestricted, &policy)?;
    /// let device = DeviceRecord::new(app, "d1".parse()?);
    /// // At CONNECT, with the secret.
    /// let principal = Authenticator::new(policy).authenticate(Some(&new.record), &new.secret, &device)?;
    /// // Later, after the record changed: no secret needed.
    /// let record = new.record.with_status(KeyStatus::Inactive);
    /// assert!(matches!(Principal::reauthorize(&record, &device), Err(AuthError::InactiveKey { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reauthorize<D: Device + ?Sized>(
        record: &AccessKey,
        device: &D,
    ) -> Result<Self, AuthError> {
        let device_id: DeviceId = device.id().parse()?;
        Self::admit(record, device_id, device)
    }

    /// The checks that follow a proven secret: status, application, scope.
    fn admit<D: Device + ?Sized>(
        record: &AccessKey,
        device_id: DeviceId,
        device: &D,
    ) -> Result<Self, AuthError> {
        let key = *record.key();
        if !record.status().is_active() {
            return Err(AuthError::InactiveKey { key });
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

/// Turns (record, secret, device) into a [`Principal`], following the rules of
/// the platform without leaking anything to a caller who lacks the secret.
///
/// - The secret's shape and checksum are checked first (the format is public).
/// - The stored verifier is checked against the [`HashPolicy`] (bounds, allowed
///   algorithms, and that it may prove this kind of secret) before any hashing.
/// - A generated secret is proven by a fast `hmac-sha256` verifier in about a
///   microsecond, without the cache and without allocating; an imported secret
///   (or a stored Argon2 verifier) costs an Argon2 run, unless the cache knows it.
/// - An unknown key (`None`), or a stored verifier the policy refuses, runs a
///   dummy verification of the scheme the presented secret would use (fast for
///   a generated secret, Argon2id with the policy's parameters for an imported
///   one), so it costs what a wrong secret costs. (A stored Argon2 verifier of a
///   generated secret, from before the fast scheme, still costs more than an
///   unknown key: [`authenticate_and_upgrade`](Self::authenticate_and_upgrade)
///   replaces it.)
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
/// ```
/// use structure_access::{AccessKey, Authenticator, DeviceRecord, HashPolicy, Scope};
/// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let policy = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?; // cheap, for the example
/// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), "app1".parse()?, Scope::Unrestricted, &policy)?;
/// let auth = Authenticator::new(policy);
/// let device = DeviceRecord::new("app1".parse()?, "5f2b8c1e9a4d3b7c6e1f0a2b".parse()?);
/// let principal = auth.authenticate(Some(&new.record), &new.secret, &device)?;
/// assert_eq!(principal.device_id().as_str(), "5f2b8c1e9a4d3b7c6e1f0a2b");
/// assert!(auth.authenticate(None, &new.secret, &device).is_err());
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

    /// The hash policy.
    pub fn policy(&self) -> &HashPolicy {
        &self.policy
    }

    /// Parses `password` as a secret (generated shape if it starts with `sts_`,
    /// imported otherwise), then [`authenticate`](Self::authenticate)s. This is
    /// the entry point for an MQTT CONNECT or an HTTP auth request.
    pub fn authenticate_password<D: Device + ?Sized>(
        &self,
        record: Option<&AccessKey>,
        password: &str,
        device: &D,
    ) -> Result<Principal, AuthError> {
        let secret = Secret::parse_any(password)?;
        self.authenticate(record, &secret, device)
    }

    /// Authenticates `device` with `secret` against `record` (`None` when the
    /// caller found no record for the key).
    pub fn authenticate<D: Device + ?Sized>(
        &self,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
    ) -> Result<Principal, AuthError> {
        self.authenticate_with(record, secret, device, || true)
    }

    /// [`authenticate`](Self::authenticate), asking `permit_slow` right before
    /// an Argon2 computation would run (a cold Argon2 verification, or the
    /// Argon2 dummy of an unknown key presented an imported secret): when it
    /// answers `false`, nothing is computed and the answer is
    /// [`AuthError::Throttled`]. It is never asked for the fast scheme or a
    /// cache hit, so a server can bound its Argon2 work (per second, per client
    /// address) while devices with generated secrets keep connecting whatever
    /// the flood.
    ///
    /// ```
    /// use structure_access::{AccessKey, AuthError, Authenticator, DeviceRecord, HashPolicy, Scope, Secret};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let policy = HashPolicy::default();
    /// let app = "app1".parse()?;
    /// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), app, Scope::Unrestricted, &policy)?;
    /// let auth = Authenticator::new(policy);
    /// let device = DeviceRecord::new(app, "d1".parse()?);
    /// // A generated secret needs no Argon2: the budget is not even asked.
    /// auth.authenticate_with(Some(&new.record), &new.secret, &device, || false)?;
    /// // An imported-shaped password for an unknown key would cost an Argon2 dummy.
    /// let guess = Secret::imported("0123456789abcdef")?;
    /// assert_eq!(auth.authenticate_with(None, &guess, &device, || false), Err(AuthError::Throttled));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authenticate_with<D, P>(
        &self,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
        permit_slow: P,
    ) -> Result<Principal, AuthError>
    where
        D: Device + ?Sized,
        P: FnOnce() -> bool,
    {
        let device_id: DeviceId = device.id().parse()?;
        let Some(record) = record else {
            self.run_dummy(secret, permit_slow)?;
            return Err(AuthError::UnknownKey);
        };
        let key = *record.key();
        let verifier = record.verifier();
        if let Err(source) = self.policy.check_for(verifier, secret) {
            // Refusing at once would tell that the key exists: cost the same.
            self.run_dummy(secret, permit_slow)?;
            return Err(match source {
                VerifierError::FastForImported => AuthError::ImportedSecretForFastVerifier { key },
                source => AuthError::BadVerifier { key, source },
            });
        }
        if !self.verify(&key, verifier, secret, permit_slow)? {
            return Err(AuthError::WrongSecret { key });
        }
        // Only a caller holding the secret gets this far.
        Principal::admit(record, device_id, device)
    }

    /// [`authenticate`](Self::authenticate), and, when the stored verifier
    /// should be replaced ([`HashPolicy::needs_upgrade`]: another scheme than
    /// the policy writes for this kind of secret, or Argon2 parameters below
    /// the policy's), its replacement, computed while the proven secret is at
    /// hand. Store it in place of the record's verifier
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
    /// let done = auth.authenticate_and_upgrade(Some(&new.record), &new.secret, &device, &mut rng)?;
    /// let upgraded = done.upgrade.expect("another scheme than the policy's");
    /// assert_eq!(upgraded.scheme(), Scheme::HmacSha256);
    /// let record = new.record.with_verifier(upgraded);
    /// assert!(auth.authenticate_and_upgrade(Some(&record), &new.secret, &device, &mut rng)?.upgrade.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authenticate_and_upgrade<D, R>(
        &self,
        record: Option<&AccessKey>,
        secret: &Secret,
        device: &D,
        rng: &mut R,
    ) -> Result<Authenticated, AuthError>
    where
        D: Device + ?Sized,
        R: rand_core::CryptoRng + ?Sized,
    {
        let principal = self.authenticate(record, secret, device)?;
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

    /// The dummy verification for a refusal that must cost what a wrong secret
    /// costs: of the scheme the presented secret would use.
    fn run_dummy(
        &self,
        secret: &Secret,
        permit_slow: impl FnOnce() -> bool,
    ) -> Result<(), AuthError> {
        let dummy = if self.policy.scheme_for(secret).is_slow() {
            if !permit_slow() {
                return Err(AuthError::Throttled);
            }
            &self.dummy
        } else {
            &self.fast_dummy
        };
        // The same steps as for a stored verifier; the outcome is ignored: only
        // the work counts.
        let _ = self.policy.check_for(dummy, secret);
        let _ = self.verify_uncached(dummy, secret);
        Ok(())
    }

    fn verify(
        &self,
        key: &KeyId,
        verifier: &Verifier,
        secret: &Secret,
        permit_slow: impl FnOnce() -> bool,
    ) -> Result<bool, AuthError> {
        let bad = |source| AuthError::BadVerifier { key: *key, source };
        if !verifier.is_slow() {
            // Cheaper than the cache itself.
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
                return Ok(true);
            }
        }
        if !permit_slow() {
            return Err(AuthError::Throttled);
        }
        let ok = self.verify_uncached(verifier, secret).map_err(bad)?;
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
