//! The text form of a restriction, parsed with nom (grammar in the module
//! documentation and in `DESIGN.md`).
//!
//! The grammar is flat: entries separated by commas, each one a device ID or a
//! tag pattern, so the parser is a loop over entries with no recursion. Every
//! step consumes input or stops, which keeps the work linear in the input.
//! Once an entry has committed to a branch (a `*`, or a `=` after a key), errors
//! are `cut` so they point at the real mistake.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;

use nom::branch::alt;
use nom::bytes::complete::take_while;
use nom::character::complete::{char, multispace0};
use nom::combinator::cut;
use nom::error::{ContextError, ErrorKind, ParseError, context};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use super::error::{found_at, snippet};
use super::{
    Builder, Item, Limits, Location, Restriction, RestrictionError, check_chars, check_len,
    is_tag_key_char,
};
use crate::device::is_device_id_byte;
use crate::text::is_invisible;

const EXPECTED_ENTRY: &str = "a device ID or a tag pattern";
const EXPECTED_AFTER_ID: &str = "`,`, `=` or the end of the input after a device ID";
const EXPECTED_AFTER_TAG: &str = "`,` or the end of the input after a tag pattern";
const EXPECTED_VALUE: &str = "a tag value or `*` after `=`";

/// Parses `text` into a restriction within `limits`.
pub(super) fn parse(text: &str, limits: &Limits) -> Result<Restriction, RestrictionError> {
    if text.len() > limits.max_input_bytes {
        return Err(input_too_long(text, limits.max_input_bytes));
    }
    let cx = Cx { full: text, limits };
    let mut builder = Builder::new(limits);
    // Entries are at most one more than the commas (fewer when some commas are
    // quoted): room for that many IDs, within the limit, spares the rehashing
    // of a growing table.
    builder.reserve_device_ids(count_commas(text).saturating_add(1));
    let mut rest = skip_ws(text);
    if rest.is_empty() {
        return Err(RestrictionError::Empty {
            at: Location::Byte(cx.offset(rest)),
        });
    }
    loop {
        let (after, entry) = cx.entry(rest).map_err(|e| cx.error(e))?;
        let expected = match entry {
            Entry::DeviceId { id, at } => {
                builder.insert_device_id(id, Location::Byte(at))?;
                EXPECTED_AFTER_ID
            }
            Entry::Tag { key, value, at } => {
                builder.insert_pattern(key, value.as_deref(), Location::Byte(at))?;
                EXPECTED_AFTER_TAG
            }
        };
        let after = skip_ws(after);
        if after.is_empty() {
            break;
        }
        let (after, _) = context(expected, char(','))
            .parse(after)
            .map_err(|e| cx.error(e))?;
        rest = skip_ws(after);
    }
    // Unreachable: the loop added at least one entry.
    builder.finish(Location::Byte(0))
}

fn input_too_long(text: &str, max: usize) -> RestrictionError {
    let mut offset = max;
    while !text.is_char_boundary(offset) {
        offset = offset.saturating_sub(1);
    }
    RestrictionError::InputTooLong {
        at: Location::Byte(offset),
        text: snippet(text.get(offset..).unwrap_or_default()),
        len: text.len(),
        max,
    }
}

/// One entry; offsets are in bytes from the start of the text.
enum Entry<'a> {
    DeviceId {
        id: &'a str,
        at: usize,
    },
    Tag {
        key: Option<&'a str>,
        value: Option<Cow<'a, str>>,
        at: usize,
    },
}

/// The parser's error: nom's own (to be named by a `context`), a named
/// expectation, or a finished [`RestrictionError`].
#[derive(Debug)]
struct PError<'a> {
    input: &'a str,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Nom,
    Expected(&'static str),
    // Boxed: the error travels through every combinator's result, which stays
    // small this way.
    Rejected(Box<RestrictionError>),
}

impl<'a> ParseError<&'a str> for PError<'a> {
    fn from_error_kind(input: &'a str, _: ErrorKind) -> Self {
        Self {
            input,
            kind: Kind::Nom,
        }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

impl<'a> ContextError<&'a str> for PError<'a> {
    /// Names an anonymous error where it happened; keeps a more precise one.
    fn add_context(_: &'a str, expected: &'static str, other: Self) -> Self {
        match other.kind {
            Kind::Nom => Self {
                input: other.input,
                kind: Kind::Expected(expected),
            },
            Kind::Expected(_) | Kind::Rejected(_) => other,
        }
    }
}

type Res<'a, T> = IResult<&'a str, T, PError<'a>>;

/// Bytes of a device ID (and of a tag key, a subset), as a table: the scan of
/// IDs is most of the work of parsing a long list.
// Indexing in a constant is checked when compiling: it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
const ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte: u8 = 0;
    loop {
        table[byte as usize] = is_device_id_byte(byte);
        if byte == u8::MAX {
            break table;
        }
        byte += 1;
    }
};

/// `1*( ALPHA / DIGIT / "_" / "-" / "." / ":" )`, scanned as bytes (all ASCII,
/// so the end is a character boundary).
fn id_token(input: &str) -> Res<'_, &str> {
    let len = input
        .bytes()
        .position(|b| !ID_BYTES.get(usize::from(b)).copied().unwrap_or(false))
        .unwrap_or(input.len());
    match input.split_at_checked(len) {
        Some((token, rest)) if !token.is_empty() => Ok((rest, token)),
        _ => Err(nom::Err::Error(PError::from_error_kind(
            input,
            ErrorKind::TakeWhile1,
        ))),
    }
}

/// The number of `,` in `text`, eight bytes at a time.
fn count_commas(text: &str) -> usize {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const COMMAS: u64 = u64::from_ne_bytes([b','; 8]);
    let chunks = text.as_bytes().chunks_exact(8);
    let tail = chunks.remainder().iter().filter(|&&b| b == b',').count();
    chunks
        .map(|chunk| {
            let word = chunk.try_into().map_or(0, u64::from_ne_bytes) ^ COMMAS;
            // The high bit of each byte is set exactly when the byte is zero,
            // that is, when it was a comma (no carry crosses bytes).
            let zero = !(((word & LOW7).wrapping_add(LOW7)) | word | LOW7);
            zero.count_ones() as usize
        })
        .sum::<usize>()
        + tail
}

/// White space between tokens: space, tab, CR, LF.
fn skip_ws(input: &str) -> &str {
    input.trim_start_matches(is_ws)
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A character of a bare value.
fn is_bare_char(c: char) -> bool {
    !matches!(c, ',' | '=' | '"') && !is_invisible(c)
}

struct Cx<'a, 'l> {
    full: &'a str,
    limits: &'l Limits,
}

impl<'a> Cx<'a, '_> {
    /// Byte offset of `rest`, a suffix of the text.
    fn offset(&self, rest: &str) -> usize {
        self.full.len().saturating_sub(rest.len())
    }

    fn reject(&self, input: &'a str, error: RestrictionError) -> nom::Err<PError<'a>> {
        nom::Err::Failure(PError {
            input,
            kind: Kind::Rejected(Box::new(error)),
        })
    }

    fn error(&self, error: nom::Err<PError<'a>>) -> RestrictionError {
        let (input, kind) = match error {
            nom::Err::Error(e) | nom::Err::Failure(e) => (e.input, e.kind),
            nom::Err::Incomplete(_) => ("", Kind::Nom),
        };
        let expected = match kind {
            Kind::Rejected(error) => return *error,
            Kind::Expected(expected) => expected,
            Kind::Nom => EXPECTED_ENTRY,
        };
        RestrictionError::Syntax {
            at: Location::Byte(self.offset(input)),
            expected,
            found: found_at(input),
        }
    }

    /// `entry = tag / device-id`, told apart by the first byte: `=` or `*`
    /// starts a pattern with a wildcard key, an ID byte a device ID or a key.
    /// (Dispatching instead of trying each branch in turn keeps the common path
    /// free of discarded errors: a list of 1000 IDs parses in half the time.)
    fn entry(&self, input: &'a str) -> Res<'a, Entry<'a>> {
        match input.as_bytes().first() {
            Some(b'=' | b'*') => cut(|i| self.wildcard_key_pattern(i)).parse(input),
            _ => context(EXPECTED_ENTRY, |i| self.token_entry(i)).parse(input),
        }
    }

    /// A tag pattern whose key is a wildcard: `=value` or `*=value`.
    fn wildcard_key_pattern(&self, input: &'a str) -> Res<'a, Entry<'a>> {
        let (rest, _) = alt((
            char('='),
            preceded(
                char('*'),
                context("`=` after `*`", preceded(multispace0, char('='))),
            ),
        ))
        .parse(input)?;
        self.tag_value(input, rest, None)
    }

    /// A device ID, or the key of a tag pattern when a `=` follows.
    fn token_entry(&self, input: &'a str) -> Res<'a, Entry<'a>> {
        let (rest, token) = id_token(input)?;
        let at = self.offset(input);
        let Some(after_eq) = skip_ws(rest).strip_prefix('=') else {
            let chars = token.len(); // ASCII
            check_len(
                token,
                chars,
                Item::DeviceId,
                Location::Byte(at),
                self.limits.max_device_id_chars,
            )
            .map_err(|e| self.reject(input, e))?;
            return Ok((rest, Entry::DeviceId { id: token, at }));
        };
        check_chars(token, Item::TagKey, Location::Byte(at), is_tag_key_char)
            .map_err(|e| self.reject(input, e))?;
        check_len(
            token,
            token.len(),
            Item::TagKey,
            Location::Byte(at),
            self.limits.max_tag_key_chars,
        )
        .map_err(|e| self.reject(input, e))?;
        self.tag_value(input, after_eq, Some(token))
    }

    /// The value after `=` (committed), completing the pattern that starts at
    /// `start`.
    fn tag_value(
        &self,
        start: &'a str,
        after_eq: &'a str,
        key: Option<&'a str>,
    ) -> Res<'a, Entry<'a>> {
        let rest = skip_ws(after_eq);
        let (rest, value) = cut(|i| self.tag_value_text(i)).parse(rest)?;
        let at = self.offset(start);
        if key.is_none() && value.is_none() {
            let written = start
                .get(..start.len().saturating_sub(rest.len()))
                .unwrap_or_default()
                .trim_end_matches(is_ws);
            return Err(self.reject(
                start,
                RestrictionError::MatchesEverything {
                    at: Location::Byte(at),
                    text: snippet(written),
                },
            ));
        }
        Ok((rest, Entry::Tag { key, value, at }))
    }

    /// `tag-value`, or nothing: a quoted value, a bare one, `*` or nothing (both
    /// wildcards, `None`).
    fn tag_value_text(&self, input: &'a str) -> Res<'a, Option<Cow<'a, str>>> {
        if input.starts_with('"') {
            self.quoted_value(input)
        } else {
            self.bare_value(input)
        }
    }

    /// A bare value, `*` or nothing (both wildcards, `None`).
    fn bare_value(&self, input: &'a str) -> Res<'a, Option<Cow<'a, str>>> {
        let (rest, raw) = take_while(is_bare_char).parse(input)?;
        let value = raw.trim_end_matches(is_ws);
        let next = skip_ws(rest);
        if !(next.is_empty() || next.starts_with(',')) {
            match rest.chars().next() {
                Some(found) if is_invisible(found) => {
                    let written = found_at(input).unwrap_or_default();
                    return Err(self.reject(
                        rest,
                        RestrictionError::InvalidCharacter {
                            at: Location::Byte(self.offset(rest)),
                            item: Item::TagValue,
                            found,
                            text: written,
                        },
                    ));
                }
                _ if value.is_empty() => {
                    return Err(nom::Err::Failure(PError {
                        input: rest,
                        kind: Kind::Expected(EXPECTED_VALUE),
                    }));
                }
                // A `=` or `"` after a value: the caller expects a `,` there.
                _ => {}
            }
        }
        if value.is_empty() || value == "*" {
            return Ok((rest, None));
        }
        let chars = value.chars().count();
        check_len(
            value,
            chars,
            Item::TagValue,
            Location::Byte(self.offset(input)),
            self.limits.max_tag_value_chars,
        )
        .map_err(|e| self.reject(input, e))?;
        Ok((rest, Some(Cow::Borrowed(value))))
    }

    /// `"…"` with `\"` and `\\` escapes; never a wildcard.
    fn quoted_value(&self, input: &'a str) -> Res<'a, Option<Cow<'a, str>>> {
        let (body, _) = char('"').parse(input)?;
        let at = Location::Byte(self.offset(input));
        // Escapes are rare: borrow the text until the first one.
        let mut owned: Option<String> = None;
        let mut plain_from = 0;
        let mut chars = body.char_indices();
        let (value, rest) = loop {
            let Some((offset, c)) = chars.next() else {
                return Err(nom::Err::Failure(PError {
                    input: "",
                    kind: Kind::Expected("a closing `\"`"),
                }));
            };
            let here = body.get(offset..).unwrap_or_default();
            match c {
                '"' => {
                    let tail = body.get(plain_from..offset).unwrap_or_default();
                    let value = match owned {
                        Some(mut text) => {
                            text.push_str(tail);
                            Cow::Owned(text)
                        }
                        None => Cow::Borrowed(tail),
                    };
                    break (
                        value,
                        body.get(offset.saturating_add(1)..).unwrap_or_default(),
                    );
                }
                '\\' => match chars.next() {
                    Some((next, escaped @ ('"' | '\\'))) => {
                        let text = owned.get_or_insert_with(String::new);
                        text.push_str(body.get(plain_from..offset).unwrap_or_default());
                        text.push(escaped);
                        plain_from = next.saturating_add(1);
                    }
                    _ => {
                        return Err(nom::Err::Failure(PError {
                            input: here,
                            kind: Kind::Expected(
                                "`\\\"` or `\\\\` after `\\` in a quoted tag value",
                            ),
                        }));
                    }
                },
                c if is_invisible(c) => {
                    // The value as written, up to and including the character.
                    let end = input
                        .len()
                        .saturating_sub(here.len())
                        .saturating_add(c.len_utf8());
                    return Err(self.reject(
                        here,
                        RestrictionError::InvalidCharacter {
                            at: Location::Byte(self.offset(here)),
                            item: Item::TagValue,
                            found: c,
                            text: snippet(input.get(..end).unwrap_or_default()),
                        },
                    ));
                }
                _ => {}
            }
        };
        let max = self.limits.max_tag_value_chars;
        if value.is_empty() {
            return Err(self.reject(input, RestrictionError::EmptyQuotedValue { at, max }));
        }
        let chars = value.chars().count();
        check_len(&value, chars, Item::TagValue, at, max).map_err(|e| self.reject(input, e))?;
        Ok((rest, Some(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::count_commas;
    use alloc::string::String;

    #[test]
    fn commas_are_counted_exactly() {
        let texts = [
            "",
            ",",
            "a,b",
            ",,,,,,,,,,,,,,,,,",
            "\u{2c}\u{ac}\u{12c},é,☕,,x\u{0},\u{7f}\u{ff},",
            "abcdefgh,ijklmnop,qrstuvwx,",
        ];
        for text in texts {
            let naive = text.bytes().filter(|&b| b == b',').count();
            assert_eq!(count_commas(text), naive, "{text:?}");
        }
        let all_bytes: String = (0..=127u8).map(char::from).collect();
        assert_eq!(count_commas(&all_bytes.repeat(3)), 3);
    }
}
