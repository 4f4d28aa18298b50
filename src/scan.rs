//! [`scan`]: finding leaked secrets (and, on request, key ids) in any bytes,
//! written as they are, in base64 (standard or URL-safe) or in UTF-16.
//!
//! A candidate is found by its prefix with `memchr`'s vectorised substring
//! search (for base64, by the three encodings the prefix can have, one per
//! alignment; for UTF-16, by the prefix with its characters' zero bytes);
//! only then are its characters, its boundaries and its checksum looked at.
//! Text without any of these costs only the searches.

use core::fmt;
use core::ops::Range;

use memchr::memmem::Finder;
use zeroize::Zeroize;

use crate::encoding::is_base62;
use crate::key::{GENERATED_KEY_LEN, KEY_PREFIX, KeyId};
use crate::secret::{GENERATED_SECRET_LEN, SECRET_PREFIX, Secret, check_generated};

/// How many characters after the prefix a finding shows: enough to tell two
/// findings apart, far too few to use (a secret has 49).
pub const SHOWN_CHARS: usize = 4;

/// How many bytes each window of [`Scanner::scan_stream`] repeats from the end
/// of the one before: more than the longest encoded finding with the bytes its
/// boundaries need (a secret in UTF-16 takes 106 bytes, in base64 76
/// characters). Even, so that every window starts at an even offset of the
/// text, where UTF-16 code units start.
pub const SCAN_OVERLAP: usize = 128;

/// Bytes a finding's boundaries need before the first byte of its range (a
/// base64 quantum, or a UTF-16 code unit and its zero byte).
const CONTEXT_BEFORE: usize = 4;

/// The window size of [`Scanner::scan_stream`] that `keytool scan` uses.
pub const DEFAULT_SCAN_WINDOW: usize = 1 << 20;

/// Finds every generated secret in `haystack`: `sts_`, 49 base62 characters
/// ending in a valid CRC32 checksum, with no base62 character right before or
/// right after it, written as it is, in base64 or in UTF-16 (see
/// [`FindingEncoding`]). Findings come in order of the position of the secret's own
/// bytes ([`Finding::range`]).
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

/// How a finding is written in the haystack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingEncoding {
    /// As it is: ASCII, or any ASCII-compatible encoding (UTF-8, Latin-1).
    Plain,
    /// In a run of base64 (RFC 4648's standard alphabet, `+` and `/`, or one
    /// using neither), such as a Kubernetes `Secret`'s `data` or an HTTP
    /// `Authorization: Basic` header of `key:secret`.
    Base64,
    /// In a run of URL-safe base64 (`-` and `_`).
    Base64Url,
    /// In UTF-16, little-endian: its characters at even offsets.
    Utf16Le,
    /// In UTF-16, big-endian: its characters at odd offsets.
    Utf16Be,
}

impl FindingEncoding {
    /// `plain`, `base64`, `url-safe base64`, `utf-16le` or `utf-16be`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Base64 => "base64",
            Self::Base64Url => "url-safe base64",
            Self::Utf16Le => "utf-16le",
            Self::Utf16Be => "utf-16be",
        }
    }
}

impl fmt::Display for FindingEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured search, reusable over many haystacks (the searchers are built
/// once). [`scan`] is `Scanner::new().scan(haystack)`.
///
/// ```
/// use structure_access::{FindingEncoding, FindingKind, Scanner};
///
/// let scanner = Scanner::new().with_key_ids(true);
/// let text = b"user: stk_4DmVJcy3ZpW0gNqk8TbX2a";
/// let finding = scanner.scan(text).next().unwrap();
/// assert_eq!(finding.kind(), FindingKind::KeyId);
/// assert_eq!(finding.encoding(), FindingEncoding::Plain);
/// assert!(finding.kind().is_public());
/// assert_eq!(format!("{finding}"), "stk_4DmV… (access key id, a public identifier)");
/// ```
#[derive(Debug, Clone)]
pub struct Scanner {
    secrets: Searchers,
    key_ids: Option<Searchers>,
    decoding: bool,
}

/// The searchers of one kind: its prefix, as it is, in base64 at each of the
/// three alignments, and in UTF-16.
#[derive(Debug, Clone)]
struct Searchers {
    plain: Finder<'static>,
    base64: [Finder<'static>; 3],
    utf16: Finder<'static>,
}

/// The three base64 encodings of a 4-byte prefix, one per position of its
/// first byte in a 3-byte group, with where each starts in its 4-character
/// quantum: the characters that depend on the prefix alone.
// Evaluated at compile time: an index out of range would fail the build.
#[allow(clippy::indexing_slicing)]
const fn base64_needles(p: &[u8; 4]) -> ([u8; 5], [u8; 4], [u8; 5]) {
    // First byte at position 0: the whole group of three, and the next
    // quantum's first character.
    let at0 = [
        c(p[0] >> 2),
        c(((p[0] & 3) << 4) | (p[1] >> 4)),
        c(((p[1] & 15) << 2) | (p[2] >> 6)),
        c(p[2]),
        c(p[3] >> 2),
    ];
    // At position 1: the group's last two characters, the next one's first two.
    let at1 = [
        c(((p[0] & 15) << 2) | (p[1] >> 6)),
        c(p[1]),
        c(p[2] >> 2),
        c(((p[2] & 3) << 4) | (p[3] >> 4)),
    ];
    // At position 2: the group's last character and the next whole group.
    let at2 = [
        c(p[0]),
        c(p[1] >> 2),
        c(((p[1] & 3) << 4) | (p[2] >> 4)),
        c(((p[2] & 15) << 2) | (p[3] >> 6)),
        c(p[3]),
    ];
    (at0, at1, at2)
}

/// The base64 character of the low six bits of `v`.
// Evaluated at compile time; `v & 63` is always within the alphabet.
#[allow(clippy::indexing_slicing)]
const fn c(v: u8) -> u8 {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    A[(v & 63) as usize]
}

/// Where each base64 needle starts in its quantum, by alignment.
const NEEDLE_START: [usize; 3] = [0, 2, 3];

#[allow(clippy::indexing_slicing)]
const fn prefix4(prefix: &str) -> [u8; 4] {
    let b = prefix.as_bytes();
    [b[0], b[1], b[2], b[3]]
}

const fn utf16_needle(p: &[u8; 4]) -> [u8; 7] {
    [p[0], 0, p[1], 0, p[2], 0, p[3]]
}

const SECRET_NEEDLES: ([u8; 5], [u8; 4], [u8; 5]) = base64_needles(&prefix4(SECRET_PREFIX));
static SECRET_B64_0: [u8; 5] = SECRET_NEEDLES.0;
static SECRET_B64_1: [u8; 4] = SECRET_NEEDLES.1;
static SECRET_B64_2: [u8; 5] = SECRET_NEEDLES.2;
static SECRET_UTF16: [u8; 7] = utf16_needle(&prefix4(SECRET_PREFIX));
const KEY_NEEDLES: ([u8; 5], [u8; 4], [u8; 5]) = base64_needles(&prefix4(KEY_PREFIX));
static KEY_B64_0: [u8; 5] = KEY_NEEDLES.0;
static KEY_B64_1: [u8; 4] = KEY_NEEDLES.1;
static KEY_B64_2: [u8; 5] = KEY_NEEDLES.2;
static KEY_UTF16: [u8; 7] = utf16_needle(&prefix4(KEY_PREFIX));

impl Searchers {
    fn new(kind: FindingKind) -> Self {
        let (b0, b1, b2, utf16): (&'static [u8], &'static [u8], &'static [u8], &'static [u8]) =
            match kind {
                FindingKind::Secret => (&SECRET_B64_0, &SECRET_B64_1, &SECRET_B64_2, &SECRET_UTF16),
                FindingKind::KeyId => (&KEY_B64_0, &KEY_B64_1, &KEY_B64_2, &KEY_UTF16),
            };
        Self {
            plain: Finder::new(kind.prefix().as_bytes()),
            base64: [Finder::new(b0), Finder::new(b1), Finder::new(b2)],
            utf16: Finder::new(utf16),
        }
    }
}

impl Scanner {
    /// A scanner for generated secrets, as they are, in base64 and in UTF-16.
    pub fn new() -> Self {
        Self {
            secrets: Searchers::new(FindingKind::Secret),
            key_ids: None,
            decoding: true,
        }
    }

    /// Also reports generated key ids (`stk_` and 22 base62 characters, bounded
    /// like secrets), as [`FindingKind::KeyId`]: public identifiers, worth
    /// knowing about only to find which key a nearby secret belongs to.
    #[must_use]
    pub fn with_key_ids(mut self, key_ids: bool) -> Self {
        self.key_ids = key_ids.then(|| Searchers::new(FindingKind::KeyId));
        self
    }

    /// Whether secrets in base64 and UTF-16 are looked for too (on by
    /// default). Off, only what is written as it is is found, with one search
    /// instead of five.
    #[must_use]
    pub fn with_decoding(mut self, decoding: bool) -> Self {
        self.decoding = decoding;
        self
    }

    /// Every finding in `haystack`, in order of the position of its own bytes.
    pub fn scan<'a>(&self, haystack: &'a [u8]) -> Findings<'a> {
        self.findings(haystack, false)
    }

    fn findings<'a>(&self, haystack: &'a [u8], run_before: bool) -> Findings<'a> {
        let streams = |searchers: &Searchers, kind| {
            let stream = |form, finder: &Finder<'static>, on| {
                Stream::new(finder.clone(), kind, form, on, run_before)
            };
            let d = self.decoding;
            [
                stream(Form::Plain, &searchers.plain, true),
                stream(Form::Base64(0), &searchers.base64[0], d),
                stream(Form::Base64(1), &searchers.base64[1], d),
                stream(Form::Base64(2), &searchers.base64[2], d),
                stream(Form::Utf16, &searchers.utf16, d),
            ]
        };
        Findings {
            haystack,
            secrets: streams(&self.secrets, FindingKind::Secret),
            key_ids: self
                .key_ids
                .as_ref()
                .map(|searchers| streams(searchers, FindingKind::KeyId)),
        }
    }

    /// Scans a text too large to hold at once, such as a file of any size,
    /// in bounded memory: one buffer of `window` bytes (at least
    /// 2 × [`SCAN_OVERLAP`]; a smaller value is raised to that), wiped when
    /// done. `read` fills the start of the buffer it is given and returns how
    /// many bytes it wrote, 0 at the end of the text (as `std::io::Read::read`;
    /// its error ends the scan). `each` is called for every window: each
    /// repeats the last [`SCAN_OVERLAP`] bytes of the one before, so a finding
    /// across two reads is whole in one window, and [`Window::findings`]
    /// reports it once, in exactly one window: the findings of all windows
    /// are those of [`Scanner::scan`] over the whole text.
    ///
    /// ```
    /// use structure_access::{Scanner, Secret};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let secret = Secret::generate(&mut ChaCha20Rng::seed_from_u64(1));
    /// let text = format!("{}{}\n", "x ".repeat(300_000), secret.expose_secret());
    /// let mut rest = text.as_bytes();
    /// let read = |buffer: &mut [u8]| -> Result<usize, ()> {
    ///     let n = buffer.len().min(rest.len());
    ///     buffer[..n].copy_from_slice(&rest[..n]);
    ///     rest = &rest[n..];
    ///     Ok(n)
    /// };
    /// let mut found = Vec::new();
    /// Scanner::new().scan_stream(4096, read, |window| {
    ///     for finding in window.findings() {
    ///         found.push((window.text_offset(&finding), finding.secret()));
    ///     }
    /// })?;
    /// assert_eq!(found, [(600_000, Some(secret))]);
    /// # Ok::<(), ()>(())
    /// ```
    pub fn scan_stream<E>(
        &self,
        window: usize,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, E>,
        mut each: impl FnMut(&Window<'_>),
    ) -> Result<(), E> {
        // Even, like the overlap: every window starts at an even offset.
        let size = window.max(2 * SCAN_OVERLAP).saturating_add(1) & !1;
        let mut buffer = zeroize::Zeroizing::new(alloc::vec![0u8; size]);
        let (mut start, mut len, mut carry, mut first) = (0u64, 0usize, None, true);
        loop {
            let mut last = false;
            while len < size {
                let Some(free) = buffer.get_mut(len..) else {
                    break;
                };
                match read(free)? {
                    0 => {
                        last = true;
                        break;
                    }
                    n => len = len.saturating_add(n).min(size),
                }
            }
            let bytes = buffer.get(..len).unwrap_or_default();
            let owned_start = if first { 0 } else { CONTEXT_BEFORE.min(len) };
            let owned_end = if last {
                len
            } else {
                len - SCAN_OVERLAP + CONTEXT_BEFORE
            };
            each(&Window {
                scanner: self,
                bytes,
                start,
                owned: owned_start..owned_end.max(owned_start),
                carry,
            });
            if last {
                return Ok(());
            }
            let next = len - SCAN_OVERLAP;
            carry = match run_start(bytes, next, 0) {
                0 => carry.or(Some(start)).filter(|_| next > 0),
                at if at == next => None,
                at => Some(start + at as u64),
            };
            buffer.copy_within(next..len, 0);
            len = SCAN_OVERLAP;
            start += next as u64;
            first = false;
        }
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

/// One window of a [`Scanner::scan_stream`]: a stretch of the text, and the
/// findings it answers for.
pub struct Window<'a> {
    scanner: &'a Scanner,
    bytes: &'a [u8],
    start: u64,
    owned: Range<usize>,
    /// Where the base64 run holding `bytes[0]` began, if before this window.
    carry: Option<u64>,
}

impl fmt::Debug for Window<'_> {
    /// Its position and length, never its bytes (they may hold secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("start", &self.start)
            .field("len", &self.bytes.len())
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

impl<'a> Window<'a> {
    /// The offset of this window's first byte in the text.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The window's bytes (the text from [`start`](Self::start) on).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes this window answers for, as a range of [`bytes`](Self::bytes):
    /// every finding it reports has its range start there, and the windows'
    /// owned ranges, one after the other, make up the whole text (count lines
    /// over them).
    pub fn owned(&self) -> Range<usize> {
        self.owned.clone()
    }

    /// The findings this window reports, in order: those whose range starts
    /// in its [`owned`](Self::owned) bytes. Their offsets are in the window;
    /// [`text_offset`](Self::text_offset) gives them in the text.
    pub fn findings(&self) -> impl Iterator<Item = Finding<'a>> + 'a {
        let owned = self.owned.clone();
        self.scanner
            .findings(self.bytes, self.carry.is_some())
            .filter(move |finding| owned.contains(&finding.start))
    }

    /// `finding`'s [`offset`](Finding::offset) in the whole text, including a
    /// base64 run that began in an earlier window.
    pub fn text_offset(&self, finding: &Finding<'_>) -> u64 {
        match (finding.continued, self.carry) {
            (true, Some(carry)) => carry,
            _ => self.start + finding.offset as u64,
        }
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

    /// Whether `text` (decoded) has this kind's shape (and checksum).
    fn accepts(self, text: &[u8]) -> bool {
        match self {
            Self::Secret => check_generated(text).is_ok(),
            Self::KeyId => text
                .strip_prefix(KEY_PREFIX.as_bytes())
                .is_some_and(crate::key::is_generated_random),
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest finding, decoded, with room for a base64 quantum's extra bytes.
const DECODED_MAX: usize = GENERATED_SECRET_LEN + 8;
const SHOWN_MAX: usize = 4 + SHOWN_CHARS;

/// A secret (or key id) found by [`scan`], borrowing the scanned bytes.
///
/// `Debug` and `Display` show its prefix and first [`SHOWN_CHARS`] characters,
/// never more: `sts_AbCd… (access secret)`, and how it was written when it
/// was encoded: `sts_AbCd… (access secret, base64)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Finding<'a> {
    kind: FindingKind,
    encoding: FindingEncoding,
    offset: usize,
    start: usize,
    /// The bytes holding it: its text, or the base64 quanta or UTF-16 code
    /// units it is written in.
    text: &'a [u8],
    /// Decoded bytes before it in `text` (base64: its place in a quantum).
    skip: u8,
    /// The prefix and the first characters: what may be shown.
    shown: [u8; SHOWN_MAX],
    /// Its base64 run began before the haystack (a window of a stream).
    continued: bool,
}

impl<'a> Finding<'a> {
    /// What was found.
    pub fn kind(&self) -> FindingKind {
        self.kind
    }

    /// How it is written in the haystack.
    pub fn encoding(&self) -> FindingEncoding {
        self.encoding
    }

    /// Where to look for it: the byte offset of its first character when it
    /// is written as it is or in UTF-16, and of the first character of the
    /// base64 run holding it (a Kubernetes value, a `Basic` header's
    /// credentials) when it is in base64.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes that hold it in the haystack: its text, its UTF-16 code
    /// units, or the base64 quanta that decode to it (with up to two bytes of
    /// what surrounds it).
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.text.len()
    }

    /// Whether it is a secret (a leak), not a public key id.
    #[must_use]
    pub fn is_secret(&self) -> bool {
        self.kind == FindingKind::Secret
    }

    /// The prefix and the first [`SHOWN_CHARS`] characters: what may be shown.
    pub fn redacted(&self) -> &str {
        // Findings are ASCII by construction.
        core::str::from_utf8(&self.shown).unwrap_or_default()
    }

    /// The secret found, to revoke the key it belongs to; `None` for a key id.
    pub fn secret(&self) -> Option<Secret> {
        match self.kind {
            FindingKind::Secret => {
                self.decoded(|text| core::str::from_utf8(text).ok()?.parse().ok())
            }
            FindingKind::KeyId => None,
        }
    }

    /// The key id found; `None` for a secret.
    pub fn key_id(&self) -> Option<KeyId> {
        match self.kind {
            FindingKind::KeyId => {
                self.decoded(|text| core::str::from_utf8(text).ok()?.parse().ok())
            }
            FindingKind::Secret => None,
        }
    }

    /// Runs `f` on the finding's decoded text, in a buffer wiped afterwards.
    fn decoded<T>(&self, f: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
        let mut buffer = [0u8; DECODED_MAX];
        let len = decode(self.encoding, self.text, &mut buffer);
        let skip = usize::from(self.skip);
        let result = buffer
            .get(skip..len)
            .and_then(|text| text.get(..self.kind.len()))
            .and_then(f);
        buffer.zeroize();
        result
    }
}

impl fmt::Display for Finding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encoding {
            FindingEncoding::Plain => write!(f, "{}… ({})", self.redacted(), self.kind),
            encoding => write!(f, "{}… ({}, {encoding})", self.redacted(), self.kind),
        }
    }
}

impl fmt::Debug for Finding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("kind", &self.kind)
            .field("encoding", &self.encoding)
            .field("offset", &self.offset)
            .field("range", &self.range())
            .field("text", &format_args!("{}…", self.redacted()))
            .finish()
    }
}

/// The findings of one haystack, in order: an iterator from [`scan`] or
/// [`Scanner::scan`]. Allocates nothing. Its `Debug` shows the haystack's
/// length, never its bytes (they hold the secrets).
#[derive(Clone)]
pub struct Findings<'a> {
    haystack: &'a [u8],
    secrets: [Stream; 5],
    key_ids: Option<[Stream; 5]>,
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
        let haystack = self.haystack;
        let mut best: Option<(usize, &mut Stream)> = None;
        let streams = self
            .secrets
            .iter_mut()
            .chain(self.key_ids.iter_mut().flatten());
        for stream in streams {
            if let Some(start) = stream.peek(haystack) {
                if best.as_ref().is_none_or(|(best, _)| start < *best) {
                    best = Some((start, stream));
                }
            }
        }
        let (_, stream) = best?;
        stream.take(haystack)
    }
}

impl core::iter::FusedIterator for Findings<'_> {}

/// How a stream's prefix is searched and its candidates read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Plain,
    /// In base64, the prefix's first byte at this position of a 3-byte group.
    Base64(u8),
    Utf16,
}

/// A found candidate, checked, before it is turned into a [`Finding`].
#[derive(Debug, Clone, Copy)]
struct Candidate {
    encoding: FindingEncoding,
    offset: usize,
    start: usize,
    end: usize,
    skip: u8,
    shown: [u8; SHOWN_MAX],
    continued: bool,
}

/// The findings of one kind and form, with the next one looked up ahead.
#[derive(Debug, Clone)]
struct Stream {
    finder: Finder<'static>,
    kind: FindingKind,
    form: Form,
    /// Where the search resumes; `None` once the haystack is exhausted.
    from: Option<usize>,
    peeked: Option<Candidate>,
    /// Base64: the last position whose run start is known, and that start
    /// (`None`: the run began before the haystack).
    run: (usize, Option<usize>),
}

impl Stream {
    fn new(
        finder: Finder<'static>,
        kind: FindingKind,
        form: Form,
        on: bool,
        run_before: bool,
    ) -> Self {
        Self {
            finder,
            kind,
            form,
            from: on.then_some(0),
            peeked: None,
            run: (0, (!run_before).then_some(0)),
        }
    }

    /// The range start of the next finding.
    fn peek(&mut self, haystack: &[u8]) -> Option<usize> {
        if self.peeked.is_none() {
            self.peeked = self.search(haystack);
        }
        self.peeked.map(|c| c.start)
    }

    fn take<'a>(&mut self, haystack: &'a [u8]) -> Option<Finding<'a>> {
        let c = self.peeked.take()?;
        Some(Finding {
            kind: self.kind,
            encoding: c.encoding,
            offset: c.offset,
            start: c.start,
            text: haystack.get(c.start..c.end)?,
            skip: c.skip,
            shown: c.shown,
            continued: c.continued,
        })
    }

    fn search(&mut self, haystack: &[u8]) -> Option<Candidate> {
        while let Some(from) = self.from {
            let Some(found) = haystack
                .get(from..)
                .and_then(|rest| self.finder.find(rest))
                .map(|at| from + at)
            else {
                self.from = None;
                return None;
            };
            let (candidate, resume) = match self.form {
                Form::Plain => {
                    let c = self.plain(haystack, found);
                    // The prefix cannot overlap itself, nor start inside a
                    // finding (whose characters after it are base62).
                    let resume = c.map_or(found + self.kind.prefix().len(), |c| c.end);
                    (c, resume)
                }
                Form::Base64(at) => (self.base64(haystack, found, at), found + 1),
                Form::Utf16 => (self.utf16(haystack, found), found + 1),
            };
            self.from = Some(resume);
            if candidate.is_some() {
                return candidate;
            }
        }
        None
    }

    fn plain(&self, haystack: &[u8], at: usize) -> Option<Candidate> {
        let end = at + self.kind.len();
        let text = haystack.get(at..end)?;
        let before = at.checked_sub(1).and_then(|i| haystack.get(i)).copied();
        let after = haystack.get(end).copied();
        if before.is_some_and(is_base62) || after.is_some_and(is_base62) || !self.kind.accepts(text)
        {
            return None;
        }
        Some(Candidate {
            encoding: FindingEncoding::Plain,
            offset: at,
            start: at,
            end,
            skip: 0,
            shown: shown(text),
            continued: false,
        })
    }

    /// A candidate whose prefix's base64 needle is at `at`, the prefix's first
    /// byte at position `align` of its 3-byte group.
    fn base64(&mut self, haystack: &[u8], at: usize, align: u8) -> Option<Candidate> {
        let skip = usize::from(align);
        let quantum = at.checked_sub(*NEEDLE_START.get(skip)?)?;
        let len = self.kind.len();
        // The quanta holding the prefix's group, the finding and the byte after.
        let chars = (skip + len + 1).div_ceil(3) * 4;
        let window = haystack.get(quantum..).unwrap_or_default();
        let window = window.get(..chars).unwrap_or(window);
        let mut decoded = [0u8; DECODED_MAX];
        let (n, used, url) = decode_base64(window, &mut decoded);
        let text = decoded.get(skip..skip + len).unwrap_or_default();
        if n < skip + len || !self.kind.accepts(text) {
            decoded.zeroize();
            return None;
        }
        let before = match skip {
            0 => quantum
                .checked_sub(4)
                .and_then(|q| haystack.get(q..quantum))
                .and_then(|prior| {
                    let mut out = [0u8; 3];
                    (decode_base64(prior, &mut out).0 == 3).then_some(out[2])
                }),
            _ => decoded.get(skip - 1).copied(),
        };
        let after = (n > skip + len)
            .then(|| decoded.get(skip + len).copied())
            .flatten();
        let bounded = !before.is_some_and(is_base62) && !after.is_some_and(is_base62);
        let shown = shown(text);
        decoded.zeroize();
        if !bounded {
            return None;
        }
        // The quanta that decode to the finding itself.
        let end = quantum + (skip + len).div_ceil(3) * 4;
        let end = end.min(quantum + used);
        let run = self.run_start(haystack, quantum);
        Some(Candidate {
            encoding: if url {
                FindingEncoding::Base64Url
            } else {
                FindingEncoding::Base64
            },
            offset: run.unwrap_or(0),
            start: quantum,
            end,
            skip: align,
            shown,
            continued: run.is_none(),
        })
    }

    /// The start of the base64 run holding `at`: after the last byte before
    /// it that cannot be base64, or `None` when the run began before the
    /// haystack. Positions come in increasing order, so every byte is looked
    /// at once per stream.
    fn run_start(&mut self, haystack: &[u8], at: usize) -> Option<usize> {
        let (known, start) = self.run;
        let floor = known.min(at);
        let found = run_start(haystack, at, floor);
        let start = if found == floor { start } else { Some(found) };
        self.run = (at, start);
        start
    }

    /// A candidate whose prefix, with zero bytes between its characters, is
    /// at `at`: UTF-16 little-endian if `at` is even, big-endian if odd.
    fn utf16(&self, haystack: &[u8], at: usize) -> Option<Candidate> {
        let len = self.kind.len();
        let le = at & 1 == 0;
        // The zero byte of each code unit: after its character (LE), or before.
        let zero = |i: usize| {
            if le {
                Some(at + 2 * i + 1)
            } else {
                (at + 2 * i).checked_sub(1)
            }
        };
        let mut decoded = [0u8; DECODED_MAX];
        for i in 0..len {
            let c = haystack.get(at + 2 * i).copied();
            let z = zero(i).and_then(|z| haystack.get(z)).copied();
            match (c, z, decoded.get_mut(i)) {
                (Some(c), Some(0), Some(slot)) => *slot = c,
                _ => return None,
            }
        }
        let text = decoded.get(..len)?;
        if !self.kind.accepts(text) {
            decoded.zeroize();
            return None;
        }
        let shown = shown(text);
        decoded.zeroize();
        // The characters around it, if they are ASCII (a code unit whose other
        // byte is zero); anything else is not base62.
        let unit = |c: Option<usize>, z: Option<usize>| match (
            c.and_then(|c| haystack.get(c)),
            z.and_then(|z| haystack.get(z)),
        ) {
            (Some(&c), Some(0)) => Some(c),
            _ => None,
        };
        let before = unit(at.checked_sub(2), zero(0).and_then(|z| z.checked_sub(2)));
        let after = unit(Some(at + 2 * len), zero(len));
        if before.is_some_and(is_base62) || after.is_some_and(is_base62) {
            return None;
        }
        let start = if le { at } else { at - 1 };
        Some(Candidate {
            encoding: if le {
                FindingEncoding::Utf16Le
            } else {
                FindingEncoding::Utf16Be
            },
            offset: start,
            start,
            end: start + 2 * len,
            skip: 0,
            shown,
            continued: false,
        })
    }
}

/// The prefix and the first characters of a decoded finding.
fn shown(text: &[u8]) -> [u8; SHOWN_MAX] {
    let mut shown = [b'?'; SHOWN_MAX];
    if let Some(first) = text.get(..SHOWN_MAX) {
        shown.copy_from_slice(first);
    }
    shown
}

/// The value of a base64 character, of either alphabet.
const fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// The smallest `x ≥ floor` such that every byte of `haystack[x..at]` may be
/// base64: where the run holding `at` starts (or `floor`).
fn run_start(haystack: &[u8], at: usize, floor: usize) -> usize {
    let before = haystack.get(floor..at).unwrap_or_default();
    match before.iter().rposition(|&b| base64_value(b).is_none()) {
        Some(i) => floor + i + 1,
        None => floor,
    }
}

/// Decodes the base64 at the start of `text` into `out`, up to the first
/// byte that is not base64 or until `out` is full. Returns the bytes written,
/// the characters used, and whether a URL-safe character (`-`, `_`) was seen.
fn decode_base64(text: &[u8], out: &mut [u8]) -> (usize, usize, bool) {
    let (mut written, mut used, mut url, mut acc, mut bits) = (0, 0, false, 0u32, 0u32);
    for &b in text {
        let Some(value) = base64_value(b) else {
            break;
        };
        url |= matches!(b, b'-' | b'_');
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        used += 1;
        if bits >= 8 {
            bits -= 8;
            let Some(slot) = out.get_mut(written) else {
                break;
            };
            // The top 8 of the bits held.
            *slot = ((acc >> bits) & 0xff) as u8;
            written += 1;
        }
        acc &= (1 << bits) - 1;
    }
    (written, used, url)
}

/// Decodes a finding's `text` written in `encoding` into `out`; the length.
fn decode(encoding: FindingEncoding, text: &[u8], out: &mut [u8]) -> usize {
    match encoding {
        FindingEncoding::Plain => {
            let n = text.len().min(out.len());
            if let (Some(out), Some(text)) = (out.get_mut(..n), text.get(..n)) {
                out.copy_from_slice(text);
            }
            n
        }
        FindingEncoding::Base64 | FindingEncoding::Base64Url => decode_base64(text, out).0,
        FindingEncoding::Utf16Le | FindingEncoding::Utf16Be => {
            let first = usize::from(encoding == FindingEncoding::Utf16Be);
            let mut n = 0;
            for (slot, &c) in out.iter_mut().zip(text.iter().skip(first).step_by(2)) {
                *slot = c;
                n += 1;
            }
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use base64ct::{Base64, Base64Unpadded, Base64Url, Encoding as _};

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

    #[test]
    fn the_needles_are_the_prefixes_encodings() {
        for (prefix, (n0, n1, n2)) in [(SECRET_PREFIX, SECRET_NEEDLES), (KEY_PREFIX, KEY_NEEDLES)] {
            for (lead, needle, at) in [("", &n0[..], 0), ("x", &n1[..], 2), ("xy", &n2[..], 3)] {
                let encoded = Base64::encode_string(format!("{lead}{prefix}zzzz").as_bytes());
                assert_eq!(
                    &encoded.as_bytes()[at..at + needle.len()],
                    needle,
                    "{prefix} {lead:?}"
                );
                // Alphanumeric: the same in both alphabets.
                assert!(needle.iter().all(u8::is_ascii_alphanumeric));
            }
        }
        assert_eq!(&SECRET_NEEDLES.0, b"c3RzX");
        assert_eq!(&SECRET_NEEDLES.1, b"N0c1");
        assert_eq!(&SECRET_NEEDLES.2, b"zdHNf");
    }

    #[test]
    fn base64_at_every_alignment_in_both_alphabets() {
        // Decoded, the secret starts at each of the 3 positions of a group.
        for lead in [
            "",
            ":",
            "k:",
            "key:",
            "stk_4DmVJcy3ZpW0gNqk8TbX2a:",
            "\u{fb}\u{ff}",
        ] {
            for trail in ["", "\n", "&x=1", "\u{ff}\u{fe}"] {
                let plain = format!("{lead}{SECRET}{trail}");
                for (encoded, url) in [
                    (Base64::encode_string(plain.as_bytes()), false),
                    (Base64Unpadded::encode_string(plain.as_bytes()), false),
                    (Base64Url::encode_string(plain.as_bytes()), true),
                ] {
                    let text = format!("Authorization: Basic {encoded}\r\n");
                    let findings: Vec<_> = scan(text.as_bytes()).collect();
                    assert_eq!(findings.len(), 1, "{text}");
                    let f = findings[0];
                    assert_eq!(f.offset(), 21, "{text}");
                    assert_eq!(f.secret().unwrap().expose_secret(), SECRET);
                    assert_eq!(f.redacted(), &SECRET[..8]);
                    // The standard alphabet has neither `-` nor `_`.
                    if !url {
                        assert_eq!(f.encoding(), FindingEncoding::Base64, "{text}");
                    }
                    let range = f.range();
                    assert!(
                        range.start >= 21 && range.end <= 21 + encoded.len(),
                        "{text}"
                    );
                }
            }
        }
        // Glued to base62 once decoded: not a secret.
        let glued = Base64::encode_string(format!("a{SECRET}").as_bytes());
        assert_eq!(scan(glued.as_bytes()).count(), 0);
        let glued = Base64::encode_string(format!("{SECRET}0").as_bytes());
        assert_eq!(scan(glued.as_bytes()).count(), 0);
        // Off: only what is written as it is.
        let encoded = Base64::encode_string(SECRET.as_bytes());
        assert_eq!(
            Scanner::new()
                .with_decoding(false)
                .scan(encoded.as_bytes())
                .count(),
            0
        );
    }

    fn utf16(text: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(if le { &[0xff, 0xfe] } else { &[0xfe, 0xff] });
        }
        for unit in text.encode_utf16() {
            out.extend_from_slice(&if le {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        out
    }

    #[test]
    fn utf16_of_either_order_with_or_without_a_bom() {
        for le in [true, false] {
            for bom in [true, false] {
                for context in [("", ""), ("pass=", "\r\n"), ("«", "»"), ("é", "")] {
                    let text = format!("{}{SECRET}{}", context.0, context.1);
                    let bytes = utf16(&text, le, bom);
                    let findings: Vec<_> = scan(&bytes).collect();
                    assert_eq!(findings.len(), 1, "{text:?} le={le} bom={bom}");
                    let f = findings[0];
                    let at = 2 * (usize::from(bom) + context.0.encode_utf16().count());
                    assert_eq!((f.offset(), f.range()), (at, at..at + 106));
                    let expected = if le {
                        FindingEncoding::Utf16Le
                    } else {
                        FindingEncoding::Utf16Be
                    };
                    assert_eq!(f.encoding(), expected);
                    assert_eq!(f.secret().unwrap().expose_secret(), SECRET);
                    assert_eq!(
                        f.to_string(),
                        format!("{}… (access secret, {expected})", &SECRET[..8])
                    );
                }
                // Glued: a base62 character before or after.
                for glued in [format!("a{SECRET}"), format!("{SECRET}0")] {
                    assert_eq!(scan(&utf16(&glued, le, bom)).count(), 0, "{glued}");
                }
            }
        }
        // A non-ASCII character around it is a boundary.
        let bytes = utf16(&format!("\u{4e2d}{SECRET}\u{6587}"), true, false);
        assert_eq!(scan(&bytes).count(), 1);
    }

    #[test]
    fn base64_runs_name_where_they_start_and_each_byte_is_looked_at_once() {
        // "ICAg" decodes to three spaces: a boundary.
        let encoded = Base64::encode_string(format!("{SECRET}{SECRET}").as_bytes());
        let text = format!("x: {}{encoded}", "ICAg".repeat(1000));
        let findings: Vec<_> = scan(text.as_bytes()).collect();
        // The second secret follows the first without a boundary: neither is one.
        assert_eq!(findings.len(), 0, "{findings:?}");
        // "QUFB" decodes to "AAA": glued, not a secret either.
        let encoded = Base64::encode_string(SECRET.as_bytes());
        assert_eq!(scan(format!("QUFB{encoded}").as_bytes()).count(), 0);
        assert_eq!(scan(format!("ICAg{encoded}").as_bytes()).count(), 1);
        let encoded = Base64::encode_string(format!("{SECRET} {SECRET}").as_bytes());
        let text = format!("x: {}{encoded}", "ICAg".repeat(1000));
        let offsets: Vec<_> = scan(text.as_bytes())
            .map(|f| (f.offset(), f.range().start))
            .collect();
        assert_eq!(offsets, [(3, 4003), (3, 4003 + 72)]);
    }
}
