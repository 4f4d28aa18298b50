//! [`Secret`]: the secret half of an access key, its format and checksum.

use core::fmt;
use core::str::FromStr;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::encoding::{base62_fixed, base62_value, crc32, fill_base62, is_base62};

/// The prefix of every generated secret.
pub const SECRET_PREFIX: &str = "sts_";
/// Number of random base62 characters after [`SECRET_PREFIX`] (≥ 256 random bits).
pub const SECRET_RANDOM_LEN: usize = 43;
/// Number of base62 characters of the CRC32 checksum that ends a generated secret.
pub const SECRET_CHECKSUM_LEN: usize = 6;
/// Length of a generated secret.
pub const GENERATED_SECRET_LEN: usize =
    SECRET_PREFIX.len() + SECRET_RANDOM_LEN + SECRET_CHECKSUM_LEN;
/// Shortest imported secret accepted by [`Secret::imported`].
pub const MIN_IMPORTED_SECRET_LEN: usize = 16;
/// Longest secret accepted, generated or imported.
pub const MAX_SECRET_LEN: usize = 128;

const BODY_LEN: usize = SECRET_PREFIX.len() + SECRET_RANDOM_LEN;

/// The secret half of an access key: what a device sends as its MQTT password.
///
/// A generated secret is `sts_`, then 43 random base62 characters (256 bits), then
/// 6 base62 characters of CRC32 over everything before them. The prefix lets secret
/// scanners find leaked secrets; the checksum rejects a typo or garbage offline,
/// before any hashing. [`Secret::from_str`] accepts only this shape; secrets
/// imported from elsewhere go through [`Secret::imported`].
///
/// A `Secret` is held inline (no heap), zeroized on drop, compared in constant
/// time, has a redacted `Debug`, no `Display`, no `Serialize` and no `Hash`
/// (hashing is not constant-time). Reading it is the explicit
/// [`Secret::expose_secret`].
///
/// **What a move copies.** Being inline, a `Secret` is 129 bytes that a move
/// copies whole: returning one from a function, pushing it into a `Vec` or
/// boxing it copies the secret, and Rust does not wipe the place it moved
/// from, so a stale copy may stay in a stack frame or a freed buffer until
/// that memory is reused. Only the place it is dropped from is zeroized (so is
/// a `clone`, when dropped). To keep one copy, put a secret where it will stay
/// as soon as it exists (`Box::new(Secret::generate(rng))`, a field of a
/// long-lived struct) and pass it by reference; every function of this crate
/// takes `&Secret`.
///
/// ```
/// use structure_access::Secret;
/// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(1));
/// let text = secret.expose_secret();
/// assert!(text.starts_with("sts_"));
/// let parsed: Secret = text.parse()?;
/// assert_eq!(parsed, secret);
/// assert_eq!(format!("{secret:?}"), "Secret(\"sts_…\")");
/// # Ok::<(), structure_access::SecretError>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    len: u8,
    bytes: [u8; MAX_SECRET_LEN],
}

/// Why a text is not a [`Secret`]. The messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The text does not have the generated secret shape.
    #[error("malformed access secret of {len} bytes, expected `sts_` followed by {} base62 characters", SECRET_RANDOM_LEN + SECRET_CHECKSUM_LEN)]
    Malformed {
        /// Length of the rejected text in bytes.
        len: usize,
    },
    /// The shape is right but the checksum does not match: a typo or garbage.
    #[error(
        "access secret checksum mismatch, expected the last {SECRET_CHECKSUM_LEN} characters to be the CRC32 of the rest"
    )]
    Checksum,
    /// An imported secret of the wrong length.
    #[error(
        "imported access secret is {len} bytes long, expected {MIN_IMPORTED_SECRET_LEN} to {MAX_SECRET_LEN}"
    )]
    ImportedLength {
        /// Length of the rejected text in bytes.
        len: usize,
    },
    /// Text starting with `sts_`, the prefix of generated secrets, offered as an
    /// imported secret. A generated secret is parsed with [`Secret::from_str`]
    /// (its checksum checked); anything else with that prefix would be taken
    /// for a generated secret by its shape, and given a fast verifier.
    #[error(
        "imported access secret starts with `sts_`, the prefix of generated secrets, expected a generated secret (parsed with its checksum) or an imported one without that prefix"
    )]
    ImportedWithGeneratedPrefix,
    /// An imported secret with a character that is not printable ASCII.
    #[error(
        "imported access secret has a forbidden character at byte {offset}, expected printable ASCII without spaces"
    )]
    ImportedCharacter {
        /// Byte offset of the first forbidden character.
        offset: usize,
    },
}

impl Secret {
    /// Generates a new secret from a cryptographically secure RNG.
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        match Self::try_generate(rng) {
            Ok(secret) => secret,
        }
    }

    /// Like [`Secret::generate`], for an RNG that can fail.
    pub(crate) fn try_generate<R: rand_core::TryCryptoRng + ?Sized>(
        rng: &mut R,
    ) -> Result<Self, R::Error> {
        let mut secret = Self {
            len: u8::try_from(GENERATED_SECRET_LEN).unwrap_or(0),
            bytes: [0u8; MAX_SECRET_LEN],
        };
        let (body, rest) = secret.bytes.split_at_mut(BODY_LEN);
        let (prefix, random) = body.split_at_mut(SECRET_PREFIX.len());
        prefix.copy_from_slice(SECRET_PREFIX.as_bytes());
        fill_base62(rng, random)?;
        let checksum = base62_fixed::<SECRET_CHECKSUM_LEN>(u64::from(crc32(body)));
        rest.get_mut(..SECRET_CHECKSUM_LEN)
            .unwrap_or_default()
            .copy_from_slice(&checksum);
        Ok(secret)
    }

    /// Accepts a secret that was not generated by this crate, such as the
    /// platform's existing 64-hex-character secrets.
    ///
    /// Any printable ASCII without spaces, 16 to 128 characters, not starting
    /// with `sts_`, is accepted; no checksum is checked, so a typo is caught
    /// only by verification. Text starting with `sts_` is refused
    /// ([`SecretError::ImportedWithGeneratedPrefix`]): the prefix marks
    /// generated secrets, which get a fast verifier, so a human-chosen
    /// `sts_password1234` imported as it is would get one too, and could be
    /// guessed offline from it.
    ///
    /// ```
    /// # use structure_access::{Secret, SecretError};
    /// let legacy = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    /// let secret = Secret::imported(legacy)?;
    /// assert_eq!(secret.expose_secret(), legacy);
    /// assert!(!secret.is_generated());
    /// assert!(Secret::imported("short").is_err());
    /// assert_eq!(
    ///     Secret::imported("sts_password1234"),
    ///     Err(SecretError::ImportedWithGeneratedPrefix)
    /// );
    /// # Ok::<(), structure_access::SecretError>(())
    /// ```
    pub fn imported(text: &str) -> Result<Self, SecretError> {
        if text.starts_with(SECRET_PREFIX) {
            return Err(SecretError::ImportedWithGeneratedPrefix);
        }
        let len = text.len();
        if !(MIN_IMPORTED_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
            return Err(SecretError::ImportedLength { len });
        }
        if let Some(offset) = text.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(SecretError::ImportedCharacter { offset });
        }
        Ok(Self::copy_from(text.as_bytes()))
    }

    /// Parses either shape: the generated one if the text starts with `sts_`,
    /// otherwise an imported one. Convenient for servers that accept both.
    pub fn parse_any(text: &str) -> Result<Self, SecretError> {
        if text.starts_with(SECRET_PREFIX) {
            text.parse()
        } else {
            Self::imported(text)
        }
    }

    fn copy_from(text: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_SECRET_LEN];
        bytes
            .get_mut(..text.len())
            .unwrap_or_default()
            .copy_from_slice(text);
        Self {
            len: u8::try_from(text.len()).unwrap_or(0),
            bytes,
        }
    }

    /// The secret as text. This is the only way to read it: keep the result
    /// out of logs, and do not store it.
    pub fn expose_secret(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Whether this secret has the generated `sts_` shape.
    #[must_use]
    pub fn is_generated(&self) -> bool {
        self.as_bytes().starts_with(SECRET_PREFIX.as_bytes())
    }
}

impl FromStr for Secret {
    type Err = SecretError;

    /// Parses a generated secret, checking its shape and checksum.
    /// Takes tens of nanoseconds and never allocates.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        check_generated(text.as_bytes())?;
        Ok(Self::copy_from(text.as_bytes()))
    }
}

/// Checks the generated shape of `bytes`, then its checksum: the one rule
/// behind [`Secret::from_str`] and [`scan`](crate::scan()).
pub(crate) fn check_generated(bytes: &[u8]) -> Result<(), SecretError> {
    if bytes.len() != GENERATED_SECRET_LEN
        || !bytes.starts_with(SECRET_PREFIX.as_bytes())
        || !bytes
            .get(SECRET_PREFIX.len()..)
            .unwrap_or_default()
            .iter()
            .all(|&b| is_base62(b))
    {
        return Err(SecretError::Malformed { len: bytes.len() });
    }
    let (body, checksum) = bytes.split_at(BODY_LEN);
    // Decoding the six digits costs multiplications; encoding the CRC would
    // cost divisions. Both directions are one-to-one below 62^6.
    if base62_value(checksum) != Some(u64::from(crc32(body))) {
        return Err(SecretError::Checksum);
    }
    Ok(())
}

impl TryFrom<&str> for Secret {
    type Error = SecretError;

    /// Same as [`FromStr`]: the generated shape only (use
    /// [`Secret::parse_any`] or [`Secret::imported`] for others).
    fn try_from(text: &str) -> Result<Self, SecretError> {
        text.parse()
    }
}

impl TryFrom<alloc::string::String> for Secret {
    type Error = SecretError;

    /// Same as [`FromStr`], and the string is wiped ([`Zeroize`]) before it is
    /// dropped, whether it parses or not.
    fn try_from(mut text: alloc::string::String) -> Result<Self, SecretError> {
        let secret = text.parse();
        text.zeroize();
        secret
    }
}

impl ConstantTimeEq for Secret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        // Both buffers are compared whole, so the time does not depend on where
        // they differ; the unused tail is always zero.
        self.len.ct_eq(&other.len) & self.bytes.as_slice().ct_eq(other.bytes.as_slice())
    }
}

impl PartialEq for Secret {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}
impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.is_generated() {
            "sts_…"
        } else {
            "…"
        };
        f.debug_tuple("Secret").field(&shown).finish()
    }
}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
        self.len.zeroize();
    }
}
impl Drop for Secret {
    fn drop(&mut self) {
        self.zeroize();
    }
}
impl ZeroizeOnDrop for Secret {}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for Secret {
    /// Deserialises with [`Secret::parse_any`], for configuration files of
    /// devices. There is deliberately no `Serialize`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an access secret")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Secret::parse_any(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}
