//! Text rules shared by the parsers, and quoting user input in error messages:
//! one printable line, bounded length.

use alloc::string::String;
use core::fmt;

/// Unicode format characters (general category Cf, Unicode 16.0): zero-width
/// characters, bidirectional controls, the byte order mark, tag characters.
/// They print as nothing, or reorder the text around them.
const FORMAT_CHARS: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is a format character (Unicode category Cf).
pub(crate) fn is_format(c: char) -> bool {
    // Every format character is above U+00AC: ASCII costs one comparison.
    c > '\u{AC}' && FORMAT_CHARS.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// Whether `c` would not show as itself in a line of text: a control character
/// (Cc), a format character (Cf) or a line or paragraph separator (U+2028,
/// U+2029). Two texts that differ in such a character can print alike, and a
/// line or paragraph separator splits a log line. The crate escapes these
/// wherever it quotes input; a caller writing client text to its own logs can
/// use the same rule.
///
/// ```
/// use structure_access::is_invisible;
///
/// assert!(is_invisible('\n') && is_invisible('\u{202e}') && is_invisible('\u{ad}'));
/// assert!(!is_invisible('a') && !is_invisible('é'));
/// ```
#[must_use]
pub fn is_invisible(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format(c)
}

/// A character as it appears in a message: invisible characters
/// ([`is_invisible`]) escaped, so that a message is always one printable line
/// and shows every character it quotes.
pub(crate) struct Printable(pub(crate) char);

impl fmt::Display for Printable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_control() {
            write!(f, "{}", self.0.escape_default())
        } else if is_invisible(self.0) {
            write!(f, "{}", self.0.escape_unicode())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Text as it appears in a message, every character [`Printable`]: the one way
/// the crate quotes its caller's input.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.chars().try_for_each(|c| Printable(c).fmt(f))
    }
}

/// An error and its causes on one line, `: ` between them, for the places that
/// keep only a message (serde's custom errors).
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn core::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

/// At most `max_chars` characters of `text` from byte `start` (a character
/// boundary), [`Escaped`]; `…` marks a cut at either end.
pub(crate) fn excerpt(text: &str, start: usize, max_chars: usize) -> String {
    use fmt::Write as _;
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut chars = text.get(start..).unwrap_or_default().chars();
    for c in chars.by_ref().take(max_chars) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{}", Printable(c));
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn invisible_characters_are_named() {
        for c in [
            '\0',
            '\n',
            '\u{7f}',
            '\u{85}',
            '\u{ad}',
            '\u{200b}',
            '\u{200d}',
            '\u{202e}',
            '\u{2028}',
            '\u{2029}',
            '\u{2066}',
            '\u{feff}',
            '\u{e0041}',
            '\u{1343f}',
        ] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in [
            'a',
            ' ',
            'é',
            '\u{a0}',
            '☕',
            '\u{3000}',
            '\u{2070}',
            '\u{e0080}',
        ] {
            assert!(!is_invisible(c), "{c:?}");
        }
        // The table is sorted and its ranges are disjoint.
        assert!(FORMAT_CHARS.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(FORMAT_CHARS.iter().all(|&(lo, hi)| lo <= hi));
    }

    #[test]
    fn escaped_text_is_one_printable_line() {
        let text = "a\r\nb\u{2028}c\u{200b}d\u{202e}é";
        let shown = Escaped(text).to_string();
        assert_eq!(shown, "a\\r\\nb\\u{2028}c\\u{200b}d\\u{202e}é");
        assert_eq!(excerpt(text, 0, 100), shown);
        assert!(!shown.chars().any(is_invisible));
    }
}
