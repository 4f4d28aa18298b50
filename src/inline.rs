//! Short text held inline, for the IDs parsed on every connection.

use core::cmp::Ordering;
use core::hash::{Hash, Hasher};

/// At most `N` bytes of text, held inline: parsing an ID never allocates, and
/// the ID is `Copy`. Comparison and hashing are those of the text, so that a
/// type wrapping it may implement `Borrow<str>`.
#[derive(Clone, Copy)]
pub(crate) struct InlineStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    pub(crate) const EMPTY: Self = Self {
        len: 0,
        bytes: [0; N],
    };

    /// `None` if `text` is longer than `N` (or than 255) bytes.
    pub(crate) fn new(text: &str) -> Option<Self> {
        let len = u8::try_from(text.len()).ok()?;
        let mut bytes = [0u8; N];
        bytes
            .get_mut(..text.len())?
            .copy_from_slice(text.as_bytes());
        Some(Self { len, bytes })
    }

    /// The text's bytes, without the UTF-8 check `as_str` makes: for
    /// comparisons on the hot path.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub(crate) fn as_str(&self) -> &str {
        // Built only from a `&str`, so always valid UTF-8.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl<const N: usize> PartialEq for InlineStr<N> {
    fn eq(&self, other: &Self) -> bool {
        // Bytes: the same answer as the text's, without the UTF-8 checks.
        self.as_bytes() == other.as_bytes()
    }
}
impl<const N: usize> Eq for InlineStr<N> {}
impl<const N: usize> PartialOrd for InlineStr<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<const N: usize> Ord for InlineStr<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        // `str` orders by bytes: the same order, without the UTF-8 checks.
        self.as_bytes().cmp(other.as_bytes())
    }
}
impl<const N: usize> Hash for InlineStr<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// The text traits of an ID type wrapping an [`InlineStr`] with an `as_str`
/// method and a `FromStr`: `TryFrom<&str>` and `TryFrom<String>` (both
/// `FromStr`), `Borrow<str>`, `AsRef<str>`, `Display`, `Debug` and, with the
/// `serde` feature, (de)serialisation as a string.
macro_rules! text_id_impls {
    ($ty:ident, $expecting:literal) => {
        impl TryFrom<&str> for $ty {
            type Error = <$ty as core::str::FromStr>::Err;

            /// Same as [`FromStr`](core::str::FromStr).
            fn try_from(text: &str) -> Result<Self, Self::Error> {
                text.parse()
            }
        }
        impl TryFrom<alloc::string::String> for $ty {
            type Error = <$ty as core::str::FromStr>::Err;

            /// Same as [`FromStr`](core::str::FromStr).
            fn try_from(text: alloc::string::String) -> Result<Self, Self::Error> {
                text.parse()
            }
        }
        impl core::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_tuple(stringify!($ty))
                    .field(&self.as_str())
                    .finish()
            }
        }
        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(crate::serde_util::FromStrVisitor::new($expecting))
            }
        }
    };
}
pub(crate) use text_id_impls;
