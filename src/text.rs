//! Quoting user input in error messages: one printable line, bounded length.

use alloc::string::String;
use core::fmt;

/// A character as it appears in a message: control characters escaped, so that
/// a message is always one printable line.
pub(crate) struct Printable(pub(crate) char);

impl fmt::Display for Printable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_control() {
            write!(f, "{}", self.0.escape_default())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// At most `max_chars` characters of `text` from byte `start` (a character
/// boundary), control characters escaped; `…` marks a cut at either end.
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
