//! The verification cache: repeat authentications without Argon2.

use core::fmt;
use core::hash::BuildHasher;
use std::boxed::Box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::vec::Vec;

use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use blake2::digest::{FixedOutput, KeyInit, Update};
use hashbrown::HashMap;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::key::KeyId;
use crate::secret::Secret;
use crate::verifier::Verifier;

/// Default number of entries of a [`VerificationCache`].
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
const SHARDS: usize = 16;
/// BLAKE2b's full key size.
const MAC_KEY_LEN: usize = 64;

/// A keyed MAC of (verifier, secret): what the cache stores instead of a secret.
pub(crate) type Tag = [u8; 32];

/// Remembers which (verifier, secret) pairs were proven, so that a repeat
/// authentication costs a keyed BLAKE2b (well under a microsecond) instead of
/// Argon2 (tens of milliseconds).
///
/// - It stores, per key id, a BLAKE2b MAC of the verifier string and the secret
///   under a random key drawn when the cache is made: never the secret, and
///   nothing an attacker who reads the process memory can test guesses against
///   without that key.
/// - A changed verifier (rotation) misses automatically; failures are never
///   cached; status and scope are checked on every call, cached or not.
/// - It is bounded: at most `capacity` entries of about 112 bytes each
///   (≈ 1.1 MiB for the default 10 000), in 16 shards behind read-write locks, so
///   concurrent hits rarely contend. A full shard evicts an arbitrary entry.
///
/// ```
/// use structure_access::{Authenticator, HashPolicy, VerificationCache};
///
/// let cache = VerificationCache::new(10_000)?;
/// let auth = Authenticator::new(HashPolicy::default()).with_cache(cache);
/// # Ok::<(), structure_access::RandomnessError>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub struct VerificationCache {
    /// The keyed MAC with its key block already absorbed, cloned for each tag.
    mac: Blake2bMac<U32>,
    shards: Box<[RwLock<HashMap<KeyId, Tag>>]>,
    shard_capacity: usize,
    hasher: foldhash::fast::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters of a [`VerificationCache`], for monitoring.
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
/// Fields may be added: read them, or destructure with `..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Authentications proven by the cache, without Argon2.
    pub hits: u64,
    /// Lookups that found no matching entry and ran Argon2.
    pub misses: u64,
    /// Entries held now.
    pub len: usize,
}

impl fmt::Debug for VerificationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationCache")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl VerificationCache {
    /// A cache of at most `capacity` entries, with a MAC key from the operating
    /// system's generator.
    pub fn new(capacity: usize) -> Result<Self, crate::RandomnessError> {
        let mut mac_key = [0u8; MAC_KEY_LEN];
        getrandom::fill(&mut mac_key).map_err(crate::RandomnessError)?;
        Ok(Self::with_key(capacity, mac_key))
    }

    /// A cache of at most `capacity` entries, with a MAC key from `rng`.
    pub fn with_rng<R: rand_core::CryptoRng + ?Sized>(capacity: usize, rng: &mut R) -> Self {
        let mut mac_key = [0u8; MAC_KEY_LEN];
        rng.fill_bytes(&mut mac_key);
        Self::with_key(capacity, mac_key)
    }

    fn with_key(capacity: usize, mut mac_key: [u8; MAC_KEY_LEN]) -> Self {
        let mut mac = Blake2bMac::<U32>::new((&mac_key).into());
        mac_key.zeroize();
        // A domain byte makes BLAKE2b compress the key block now, once, rather
        // than on every tag.
        mac.update(b"\x01");
        let capacity = capacity.max(1);
        let shard_capacity = capacity.div_ceil(SHARDS);
        let shards: Vec<_> = (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect();
        Self {
            mac,
            shards: shards.into_boxed_slice(),
            shard_capacity,
            hasher: foldhash::fast::RandomState::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The largest number of entries.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * SHARDS
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Hit and miss counts since the cache was made, and the current size.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            len: self.len(),
        }
    }

    /// Whether the cache is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the entry of `key`: its next authentication runs Argon2.
    pub fn invalidate(&self, key: &KeyId) {
        if let Some(shard) = self.shard(key) {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
        }
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    fn shard(&self, key: &KeyId) -> Option<&RwLock<HashMap<KeyId, Tag>>> {
        let hash = self.hasher.hash_one(key.as_str());
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        self.shards.get(index)
    }

    /// The MAC of (verifier, secret) under this cache's key.
    pub(crate) fn tag(&self, verifier: &Verifier, secret: &Secret) -> Tag {
        let phc = verifier.as_str().as_bytes();
        let mut mac = self.mac.clone();
        // Length-prefixed, so that no two (verifier, secret) pairs share an input.
        mac.update(&(phc.len() as u64).to_le_bytes());
        mac.update(phc);
        mac.update(secret.as_bytes());
        mac.finalize_fixed().into()
    }

    /// Whether `key`'s entry equals `tag` (constant-time comparison).
    pub(crate) fn contains(&self, key: &KeyId, tag: &Tag) -> bool {
        let Some(shard) = self.shard(key) else {
            return false;
        };
        let hit = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|stored| bool::from(stored.ct_eq(tag)));
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Records a proven (verifier, secret) for `key`.
    pub(crate) fn insert(&self, key: KeyId, tag: Tag) {
        let Some(shard) = self.shard(&key) else {
            return;
        };
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.shard_capacity && !map.contains_key(&key) {
            if let Some(victim) = map.keys().next().copied() {
                map.remove(&victim);
            }
        }
        map.insert(key, tag);
    }
}
