//! The canonical text form of a [`Restriction`] and of a [`TagPattern`].

use core::fmt::{self, Write as _};

use super::{Restriction, TagPattern};

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for id in self.device_ids() {
            f.write_str(separator)?;
            f.write_str(id)?;
            separator = ",";
        }
        for pattern in self.tag_patterns() {
            f.write_str(separator)?;
            write!(f, "{pattern}")?;
            separator = ",";
        }
        Ok(())
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        PatternText {
            key: self.key(),
            value: self.value(),
        }
        .fmt(f)
    }
}

/// A tag pattern's canonical text from its parts; `None` is a wildcard.
pub(super) struct PatternText<'a> {
    pub(super) key: Option<&'a str>,
    pub(super) value: Option<&'a str>,
}

impl fmt::Display for PatternText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key.unwrap_or("*"))?;
        f.write_char('=')?;
        match self.value {
            None => f.write_char('*'),
            Some(value) if needs_quotes(value) => write_quoted(f, value),
            Some(value) => f.write_str(value),
        }
    }
}

/// Whether the bare form of `value` would read back as something else: a
/// wildcard, a cut, a syntax error or a trimmed value. A `\` alone does not need
/// quotes: it is only an escape inside quotes.
fn needs_quotes(value: &str) -> bool {
    value.is_empty()
        || value == "*"
        || value.contains([',', '=', '"'])
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace)
}

fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_char('"')?;
    let mut rest = value;
    while let Some(at) = rest.find(['"', '\\']) {
        let (plain, special) = rest.split_at(at);
        f.write_str(plain)?;
        f.write_char('\\')?;
        let mut chars = special.chars();
        if let Some(c) = chars.next() {
            f.write_char(c)?;
        }
        rest = chars.as_str();
    }
    f.write_str(rest)?;
    f.write_char('"')
}
