//! Authentication: [`Authenticator`], [`Principal`] and [`AuthError`].

use core::fmt;

use crate::device::{Device, DeviceId, DeviceIdError};
use crate::key::KeyId;
use crate::mqtt::{AdditionalTopics, SharedTopics};
use crate::record::{AccessKey, KeyStatus, Scope};
use crate::secret::{Secret, SecretError};
#[cfg(not(feature = "std"))]
use crate::verifier::Argon2Memory;
use crate::verifier::{HashPolicy, Verifier, VerifierError};

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
    /// The secret is right but the key is inactive.
    #[error("access key `{key}` is inactive")]
    InactiveKey {
        /// The inactive key.
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

/// An authenticated device: its ID, the key it used, and that key's scope.
///
/// Building one allocates nothing: the IDs are held inline and the scope's
/// restriction is shared with the key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    device: DeviceId,
    key: KeyId,
    scope: Scope,
    topics: SharedTopics,
}

impl Principal {
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

    /// Whether this device may see `other`: always for an unrestricted key,
    /// otherwise when `other` is in the key's restriction. Allocates nothing.
    #[inline]
    #[must_use]
    pub fn can_see<D: Device + ?Sized>(&self, other: &D) -> bool {
        self.scope.can_see(other)
    }
}

/// Turns (record, secret, device) into a [`Principal`], following the rules of
/// the platform without leaking anything to a caller who lacks the secret.
///
/// - The secret's shape and checksum are checked first (the format is public).
/// - An unknown key (`None`) runs a dummy Argon2id verification with the
///   policy's parameters, so it costs what a wrong secret costs.
/// - The secret is verified in constant time; only then are the key's status and
///   the device's membership in the key's scope checked.
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
/// let policy = HashPolicy::default().with_params(64, 1, 1)?; // cheap, for the example
/// let new = AccessKey::generate(&mut ChaCha20Rng::seed_from_u64(1), Scope::Unrestricted, &policy)?;
/// let auth = Authenticator::new(policy);
/// let device = DeviceRecord::new("5f2b8c1e9a4d3b7c6e1f0a2b".parse()?);
/// let principal = auth.authenticate(Some(&new.record), &new.secret, &device)?;
/// assert_eq!(principal.device_id().as_str(), "5f2b8c1e9a4d3b7c6e1f0a2b");
/// assert!(auth.authenticate(None, &new.secret, &device).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Authenticator {
    policy: HashPolicy,
    dummy: Verifier,
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
            #[cfg(feature = "std")]
            pool: crate::pool::MemoryPool::new(crate::pool::default_pool_size()),
            #[cfg(feature = "std")]
            cache: None,
            policy,
        }
    }

    /// Sets how many Argon2 buffers may exist at once (at least 1). Verifications
    /// beyond that wait for a free buffer, so peak memory stays at about
    /// `size × m` KiB.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[must_use]
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool = crate::pool::MemoryPool::new(size);
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
        let device_id: DeviceId = device.id().parse()?;
        let Some(record) = record else {
            // Same work as a wrong secret; the outcome is ignored.
            let _ = self.verify_uncached(&self.dummy, secret);
            return Err(AuthError::UnknownKey);
        };
        let key = *record.key();
        let verifier = record.verifier();
        self.policy
            .check(verifier)
            .map_err(|source| AuthError::BadVerifier { key, source })?;
        if !self.verify(&key, verifier, secret)? {
            return Err(AuthError::WrongSecret { key });
        }
        // Only a caller holding the secret gets this far.
        if record.status() == KeyStatus::Inactive {
            return Err(AuthError::InactiveKey { key });
        }
        if !record.scope().can_see(device) {
            return Err(AuthError::OutOfScope { key });
        }
        Ok(Principal {
            device: device_id,
            key,
            scope: record.scope().clone(),
            topics: record.shared_topics().clone(),
        })
    }

    fn verify(&self, key: &KeyId, verifier: &Verifier, secret: &Secret) -> Result<bool, AuthError> {
        #[cfg(feature = "std")]
        if let Some(cache) = &self.cache {
            let tag = cache.tag(verifier, secret);
            if cache.contains(key, &tag) {
                return Ok(true);
            }
            let ok = self
                .verify_uncached(verifier, secret)
                .map_err(|source| AuthError::BadVerifier { key: *key, source })?;
            if ok {
                cache.insert(*key, tag);
            }
            return Ok(ok);
        }
        self.verify_uncached(verifier, secret)
            .map_err(|source| AuthError::BadVerifier { key: *key, source })
    }

    fn verify_uncached(&self, verifier: &Verifier, secret: &Secret) -> Result<bool, VerifierError> {
        #[cfg(feature = "std")]
        let result = {
            let mut memory = self.pool.acquire();
            verifier.matches(secret.as_bytes(), &mut memory)
        };
        #[cfg(not(feature = "std"))]
        let result = verifier.matches(secret.as_bytes(), &mut Argon2Memory::new());
        Ok(result?.into())
    }
}
