//! [`scan`]: finding leaked secrets (and, on request, key ids) in any bytes.
//!
//! A candidate is found by its prefix with `memchr`'s vectorised substring
//! search; only then are its 49 characters, its boundaries and its checksum
//! looked at. Text without the prefix costs only the search.

use core::fmt;
use core::ops::Range;

use memchr::memmem::Finder;

use crate::encoding::is_base62;
use crate::key::{GENERATED_KEY_LEN, KEY_PREFIX, KeyId};
use crate::secret::{GENERATED_SECRET_LEN, SECRET_PREFIX, Secret, check_generated};

/// How many characters after the prefix a finding shows: enough to tell two
/// findings apart, far too few to use (a secret has 49).
pub const SHOWN_CHARS: usize = 4;

/// Finds every generated secret in `haystack`: `sts_`, 49 base62 characters
/// ending in a valid CRC32 checksum, with no base62 character right before or
/// right after it. Findings come in order of their byte offsets.
///
/// The search allocates nothing, per finding or otherwise, works without `std`,
/// and never panics, whatever the bytes. A finding borrows the haystack; its
/// `Debug` and `Display` show the prefix and [`SHOWN_CHARS`] characters.
///
/// ```
/// use structure_access::{Secret, scan};
/// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(1));
/// let text = format!("MQTT_PASSWORD={}\n", secret.expose_secret());
/// let findings: Vec<_> = scan(text.as_bytes()).collect();
/// assert_eq!(findings.len(), 1);
/// assert_eq!(findings[0].offset(), "MQTT_PASSWORD=".len());
/// assert_eq!(findings[0].to_string(), format!("{}… (access secret)", &text[14..22]));
/// // To revoke the key it belongs to: find the record whose verifier it opens.
/// assert_eq!(findings[0].secret(), Some(secret));
/// ```
pub fn scan(haystack: &[u8]) -> Findings<'_> {
    Scanner::new().scan(haystack)
}

/// A configured search, reusable over many haystacks (the prefix searchers are
/// built once). [`scan`] is `Scanner::new().scan(haystack)`.
///
/// ```
/// use structure_access::{FindingKind, Scanner};
///
/// let scanner = Scanner::new().with_key_ids(true);
/// let text = b"user: stk_4DmVJcy3ZpW0gNqk8TbX2a";
/// let finding = scanner.scan(text).next().unwrap();
/// assert_eq!(finding.kind(), FindingKind::KeyId);
/// assert!(finding.kind().is_public());
/// assert_eq!(format!("{finding}"), "stk_4DmV… (access key id, a public identifier)");
/// ```
#[derive(Debug, Clone)]
pub struct Scanner {
    secrets: Finder<'static>,
    key_ids: Option<Finder<'static>>,
}

impl Scanner {
    /// A scanner for generated secrets only.
    pub fn new() -> Self {
        Self {
            secrets: Finder::new(SECRET_PREFIX.as_bytes()),
            key_ids: None,
        }
    }

    /// Also reports generated key ids (`stk_` and 22 base62 characters, bounded
    /// like secrets), as [`FindingKind::KeyId`]: public identifiers, worth
    /// knowing about only to find which key a nearby secret belongs to.
    #[must_use]
    pub fn with_key_ids(mut self, key_ids: bool) -> Self {
        self.key_ids = key_ids.then(|| Finder::new(KEY_PREFIX.as_bytes()));
        self
    }

    /// Every finding in `haystack`, in order of offset.
    pub fn scan<'a>(&self, haystack: &'a [u8]) -> Findings<'a> {
        Findings {
            secrets: Stream::new(self.secrets.clone(), FindingKind::Secret),
            key_ids: self
                .key_ids
                .as_ref()
                .map(|finder| Stream::new(finder.clone(), FindingKind::KeyId)),
            haystack,
        }
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// A generated access secret with a valid checksum: a leak.
    Secret,
    /// A generated key id: a public identifier, not a leak.
    KeyId,
}

impl FindingKind {
    /// Whether findings of this kind are public identifiers rather than leaks.
    #[must_use]
    pub const fn is_public(self) -> bool {
        matches!(self, Self::KeyId)
    }

    /// `access secret` or `access key id, a public identifier`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "access secret",
            Self::KeyId => "access key id, a public identifier",
        }
    }

    const fn prefix(self) -> &'static str {
        match self {
            Self::Secret => SECRET_PREFIX,
            Self::KeyId => KEY_PREFIX,
        }
    }

    const fn len(self) -> usize {
        match self {
            Self::Secret => GENERATED_SECRET_LEN,
            Self::KeyId => GENERATED_KEY_LEN,
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret (or key id) found by [`scan`], borrowing the scanned bytes.
///
/// `Debug` and `Display` show its prefix and first [`SHOWN_CHARS`] characters,
/// never more: `sts_AbCd… (access secret)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Finding<'a> {
    kind: FindingKind,
    offset: usize,
    text: &'a [u8],
}

impl<'a> Finding<'a> {
    /// What was found.
    pub fn kind(&self) -> FindingKind {
        self.kind
    }

    /// The byte offset of its first character (the prefix) in the haystack.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Its byte range in the haystack.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.text.len()
    }

    /// Whether it is a secret (a leak), not a public key id.
    #[must_use]
    pub fn is_secret(&self) -> bool {
        self.kind == FindingKind::Secret
    }

    /// The prefix and the first [`SHOWN_CHARS`] characters: what may be shown.
    pub fn redacted(&self) -> &'a str {
        let shown = self
            .text
            .get(..self.kind.prefix().len() + SHOWN_CHARS)
            .unwrap_or_default();
        // Findings are ASCII by construction.
        core::str::from_utf8(shown).unwrap_or_default()
    }

    /// The secret found, to revoke the key it belongs to; `None` for a key id.
    pub fn secret(&self) -> Option<Secret> {
        match self.kind {
            FindingKind::Secret => core::str::from_utf8(self.text).ok()?.parse().ok(),
            FindingKind::KeyId => None,
        }
    }

    /// The key id found; `None` for a secret.
    pub fn key_id(&self) -> Option<KeyId> {
        match self.kind {
            FindingKind::KeyId => core::str::from_utf8(self.text).ok()?.parse().ok(),
            FindingKind::Secret => None,
        }
    }
}

impl fmt::Display for Finding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}… ({})", self.redacted(), self.kind)
    }
}

impl fmt::Debug for Finding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("kind", &self.kind)
            .field("offset", &self.offset)
            .field("text", &format_args!("{}…", self.redacted()))
            .finish()
    }
}

/// The findings of one haystack, in order of offset: an iterator from
/// [`scan`] or [`Scanner::scan`]. Allocates nothing. Its `Debug` shows the
/// haystack's length, never its bytes (they hold the secrets).
#[derive(Clone)]
pub struct Findings<'a> {
    haystack: &'a [u8],
    secrets: Stream<'a>,
    key_ids: Option<Stream<'a>>,
}

impl fmt::Debug for Findings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Findings")
            .field("haystack_len", &self.haystack.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Iterator for Findings<'a> {
    type Item = Finding<'a>;

    fn next(&mut self) -> Option<Finding<'a>> {
        let secret = self.secrets.peek(self.haystack);
        let Some(key_ids) = self.key_ids.as_mut() else {
            return self.secrets.take();
        };
        let key_id = key_ids.peek(self.haystack);
        match (secret, key_id) {
            (Some(s), Some(k)) if k.offset < s.offset => key_ids.take(),
            (Some(_), _) => self.secrets.take(),
            (None, _) => key_ids.take(),
        }
    }
}

impl core::iter::FusedIterator for Findings<'_> {}

/// The findings of one kind, with the next one looked up ahead.
#[derive(Debug, Clone)]
struct Stream<'a> {
    finder: Finder<'static>,
    kind: FindingKind,
    /// Where the search resumes; `None` once the haystack is exhausted.
    from: Option<usize>,
    peeked: Option<Finding<'a>>,
}

impl<'a> Stream<'a> {
    fn new(finder: Finder<'static>, kind: FindingKind) -> Self {
        Self {
            finder,
            kind,
            from: Some(0),
            peeked: None,
        }
    }

    fn peek(&mut self, haystack: &'a [u8]) -> Option<Finding<'a>> {
        if self.peeked.is_none() {
            self.peeked = self.search(haystack);
        }
        self.peeked
    }

    fn take(&mut self) -> Option<Finding<'a>> {
        self.peeked.take()
    }

    fn search(&mut self, haystack: &'a [u8]) -> Option<Finding<'a>> {
        while let Some(from) = self.from {
            let Some(found) = haystack
                .get(from..)
                .and_then(|rest| self.finder.find(rest))
                .map(|at| from + at)
            else {
                self.from = None;
                return None;
            };
            let end = found + self.kind.len();
            match haystack.get(found..end) {
                Some(text) if self.accepts(haystack, found, text) => {
                    self.from = Some(end);
                    return Some(Finding {
                        kind: self.kind,
                        offset: found,
                        text,
                    });
                }
                // The prefix cannot overlap itself: resume after it.
                Some(_) => self.from = Some(found + self.kind.prefix().len()),
                // Too close to the end for a whole finding.
                None => self.from = None,
            }
        }
        None
    }

    /// Whether `text`, found at `offset`, is bounded and has the right shape.
    fn accepts(&self, haystack: &[u8], offset: usize, text: &[u8]) -> bool {
        let before = offset.checked_sub(1).and_then(|i| haystack.get(i)).copied();
        let after = haystack.get(offset + text.len()).copied();
        if before.is_some_and(is_base62) || after.is_some_and(is_base62) {
            return false;
        }
        match self.kind {
            FindingKind::Secret => check_generated(text).is_ok(),
            FindingKind::KeyId => text
                .get(KEY_PREFIX.len()..)
                .is_some_and(crate::key::is_generated_random),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    const SECRET: &str = "sts_dGlMoiyrlfxX1rTnyFf3vA7NUtFOY6aF0kDQHBwtnOA2WSIsB";

    #[test]
    fn the_test_secret_is_valid() {
        assert!(SECRET.parse::<Secret>().is_ok());
    }

    #[test]
    fn boundaries_decide() {
        let found = |text: &str| {
            scan(text.as_bytes())
                .map(|f| (f.offset(), f.range().end))
                .collect::<Vec<_>>()
        };
        assert_eq!(found(SECRET), [(0, 53)]);
        assert_eq!(found(&format!("a_{SECRET}-")), [(2, 55)]);
        assert_eq!(found(&format!("é{SECRET}é")), [(2, 55)]);
        assert!(found(&format!("a{SECRET}")).is_empty());
        assert!(found(&format!("{SECRET}0")).is_empty());
        assert!(found(&SECRET[..52]).is_empty());
        assert_eq!(found(&format!("sts_{SECRET}")), [(4, 57)]);
        assert_eq!(found(&format!("{SECRET} {SECRET}")), [(0, 53), (54, 107)]);
    }
}
