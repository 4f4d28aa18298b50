//! [`KeyId`]: the public half of an access key, and its format.

use core::str::FromStr;

use crate::encoding::{fill_base62, is_base62};
use crate::inline::{InlineStr, text_id_impls};
use crate::text::{Escaped, Printable};

/// The prefix of every generated key id.
pub const KEY_PREFIX: &str = "stk_";
/// Number of random base62 characters after [`KEY_PREFIX`] (≥ 128 random bits).
pub const KEY_RANDOM_LEN: usize = 22;
/// Length of a generated key id.
pub const GENERATED_KEY_LEN: usize = KEY_PREFIX.len() + KEY_RANDOM_LEN;
/// Longest key id accepted, generated or imported.
pub const MAX_KEY_LEN: usize = 64;

/// The public half of an access key: what a device sends as its MQTT username.
///
/// Two shapes are accepted:
///
/// - **generated** keys: `stk_` followed by exactly 22 base62 characters
///   (`[0-9A-Za-z]`), 128 bits of randomness. Any text starting with `stk_`
///   must have this exact shape, so a truncated or mistyped key is rejected.
/// - **imported** keys (the platform's existing keys are UUIDs): 1 to 64
///   characters of `[0-9A-Za-z_-]`, not starting with `sts_` (the prefix of
///   secrets: a secret typed as a key is refused without being quoted).
///
/// Parsing is cheap and never allocates: the key is held inline.
///
/// ```
/// use structure_access::KeyId;
///
/// let generated: KeyId = "stk_4DmVJcy3ZpW0gNqk8TbX2a".parse()?;
/// let imported: KeyId = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse()?;
/// assert!(generated.is_generated());
/// assert!(!imported.is_generated());
/// assert!("stk_tooshort".parse::<KeyId>().is_err());
/// # Ok::<(), structure_access::KeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(InlineStr<MAX_KEY_LEN>);

/// Why a text is not a [`KeyId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is empty.
    #[error("expected an access key, found an empty string")]
    Empty,
    /// The text is longer than [`MAX_KEY_LEN`].
    #[error("access key is {len} bytes long, expected at most {max}")]
    TooLong {
        /// Length of the rejected text in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the accepted alphabet.
    #[error(
        "unexpected character `{}` at byte {offset} of access key `{}`, expected one of `0-9 A-Z a-z _ -`",
        Printable(*found),
        Escaped(key)
    )]
    InvalidCharacter {
        /// The key text (keys are public).
        key: alloc::string::String,
        /// The rejected character.
        found: char,
        /// Its byte offset.
        offset: usize,
    },
    /// Text starting with `sts_`, the prefix of secrets: most likely a secret
    /// typed where its key belongs. It is not quoted, so that it cannot reach a log.
    #[error(
        "expected an access key, found text starting with the secret prefix `sts_` (not shown)"
    )]
    LooksLikeSecret,
    /// Text starting with `stk_` that is not a well-formed generated key.
    #[error(
        "malformed generated access key `{}`, expected `stk_` followed by {KEY_RANDOM_LEN} base62 characters",
        Escaped(key)
    )]
    MalformedGenerated {
        /// The key text (keys are public).
        key: alloc::string::String,
    },
}

impl KeyId {
    /// Generates a new key id from a cryptographically secure RNG.
    ///
    /// ```
    /// # use structure_access::KeyId;
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let key = KeyId::generate(&mut ChaCha20Rng::seed_from_u64(7));
    /// assert!(key.as_str().starts_with("stk_"));
    /// assert_eq!(key.as_str().len(), 26);
    /// ```
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        match Self::try_generate(rng) {
            Ok(key) => key,
        }
    }

    /// Like [`KeyId::generate`], for an RNG that can fail.
    pub(crate) fn try_generate<R: rand_core::TryCryptoRng + ?Sized>(
        rng: &mut R,
    ) -> Result<Self, R::Error> {
        let mut text = [0u8; GENERATED_KEY_LEN];
        let (prefix, random) = text.split_at_mut(KEY_PREFIX.len());
        prefix.copy_from_slice(KEY_PREFIX.as_bytes());
        fill_base62(rng, random)?;
        let text = core::str::from_utf8(&text).unwrap_or_default();
        Ok(Self(InlineStr::new(text).unwrap_or(InlineStr::EMPTY)))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether this key has the generated `stk_` shape (as opposed to imported).
    #[must_use]
    pub fn is_generated(&self) -> bool {
        self.as_str().starts_with(KEY_PREFIX)
    }
}

fn malformed_generated(s: &str) -> KeyError {
    KeyError::MalformedGenerated { key: s.into() }
}

/// Whether `random`, what follows `stk_`, is a generated key's: its length,
/// all base62 (what `KeyId::from_str` and `scan` both check).
pub(crate) fn is_generated_random(random: &[u8]) -> bool {
    random.len() == KEY_RANDOM_LEN && random.iter().all(|&b| is_base62(b))
}

impl FromStr for KeyId {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(KeyError::Empty);
        }
        if s.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong {
                len: s.len(),
                max: MAX_KEY_LEN,
            });
        }
        if s.starts_with(crate::secret::SECRET_PREFIX) {
            return Err(KeyError::LooksLikeSecret);
        }
        if let Some(random) = s.strip_prefix(KEY_PREFIX) {
            if !is_generated_random(random.as_bytes()) {
                return Err(malformed_generated(s));
            }
        } else if let Some((offset, found)) = s
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(KeyError::InvalidCharacter {
                key: s.into(),
                found,
                offset,
            });
        }
        InlineStr::new(s).map(Self).ok_or(KeyError::TooLong {
            len: s.len(),
            max: MAX_KEY_LEN,
        })
    }
}

text_id_impls!(KeyId, "an access key");
