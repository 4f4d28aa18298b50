//! What the broker integrations of `structure-access` share: the records a
//! broker decides with and the change sets that change them ([`records`]),
//! held compactly ([`devices`]); the keys and devices files as a source of
//! change sets ([`files`]); the escaping of client text in their log lines;
//! the budget of Argon2 verifications and the holding of refusals
//! ([`throttle`]); the audit trail ([`audit`]), takeovers ([`takeover`])
//! and the counters ([`metrics`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use structure_access::{AuthError, DeviceId};

pub mod audit;
pub mod devices;
pub mod files;
pub mod metrics;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod records;
pub mod takeover;
pub mod throttle;
pub mod wire;

pub use devices::{DeviceView, Devices};
pub use files::FileSource;
pub use records::{Applied, ChangeSet, DeviceChange, KeyChange, KeyChanged, Records};

/// Longest line accepted in the keys and devices files.
pub const MAX_LINE: usize = 1 << 20;

/// Why a file was not read: it could not be, or one of its lines is invalid.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A line of a file is invalid.
    Line {
        /// The file.
        path: PathBuf,
        /// Its 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// One line whatever the file held: the reason of an invalid line is built
/// from the line's content (serde quotes an unknown field's name as it is, a
/// `\n` and a forged log line included), so every part is shown through
/// [`escape_line`]. Both brokers log this message as it is.
impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => write!(
                f,
                "cannot read `{}`: {}",
                escape(&path.display().to_string()),
                escape_line(&error.to_string())
            ),
            Self::Line { path, line, reason } => write!(
                f,
                "`{}` line {line}: {}",
                escape(&path.display().to_string()),
                escape_line(reason)
            ),
        }
    }
}

impl std::error::Error for FileError {}

/// The stamps of the keys file and of the devices file.
pub type Stamps = (Option<FileStamp>, Option<FileStamp>);

/// The stamps of `keys_file` and `devices_file` now.
pub fn stamps(keys_file: &Path, devices_file: &Path) -> Stamps {
    (FileStamp::of(keys_file), FileStamp::of(devices_file))
}

/// A device a client named that is not in the devices file: of no
/// application, so that no key covers it. Authenticating as it costs what
/// authenticating as a listed device costs, so that the file cannot be
/// probed by timing.
#[derive(Debug, Clone, Copy)]
pub struct Unlisted(pub DeviceId);

impl structure_access::Device for Unlisted {
    fn application(&self) -> &str {
        ""
    }
    fn id(&self) -> &str {
        self.0.as_str()
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::empty()
    }
}

/// A refusal's cause in words, for a log line that names the device and the
/// key once: the key is not repeated, and nothing the client typed is shown.
pub fn refusal_reason(error: &AuthError) -> String {
    match error {
        AuthError::MalformedSecret(_) => "malformed secret".into(),
        AuthError::InvalidDeviceId(_) => "the client id is not a valid device ID".into(),
        AuthError::UnknownKey => "unknown access key".into(),
        AuthError::WrongSecret { .. } => "wrong secret".into(),
        AuthError::InactiveKey { .. } => "the access key is inactive".into(),
        AuthError::Expired { .. } => "the access key has expired".into(),
        AuthError::WrongApplication { .. } => {
            "the device belongs to another application than the access key".into()
        }
        AuthError::OutOfScope { .. } => "the device is outside the scope of the access key".into(),
        AuthError::ImportedSecretForFastVerifier { .. } => {
            "an imported secret for an access key whose fast verifier proves generated secrets only"
                .into()
        }
        AuthError::Throttled => {
            "refused without verifying: the budget of slow (argon2) verifications is spent".into()
        }
        AuthError::BadVerifier { source, .. } => {
            format!(
                "the stored verifier is refused: {}",
                escape(&with_causes(source))
            )
        }
        other => escape(&with_causes(other)),
    }
}

/// An error and its causes, `: ` between them (each one says its cause once).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// At most 64 characters of `text`, for a message, escaped with [`escape`].
pub fn excerpt(text: &str) -> String {
    let mut shown = escape(&text.chars().take(64).collect::<String>());
    if text.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

/// `text` with every character that could forge or disguise a log line
/// escaped as `\u{…}`: the core's rule ([`structure_access::is_invisible`]:
/// control and format characters, line and paragraph separators), and the
/// backslash and backtick that delimit quoted input. For client text and
/// anything else quoted between backticks.
pub fn escape(text: &str) -> String {
    escape_where(text, |c| {
        structure_access::is_invisible(c) || matches!(c, '\\' | '`')
    })
}

/// A whole message that may quote untrusted text (an error built from a
/// file's content), escaped by the same rule as [`escape`] except for the
/// backslash and the backtick: they are the message's own quoting, and
/// escaping them would garble every quote. What could split the line or hide
/// a character is escaped all the same, so the message is one printable line.
pub fn escape_line(text: &str) -> String {
    escape_where(text, structure_access::is_invisible)
}

fn escape_where(text: &str, escaped: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if escaped(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The resident memory of this process, in bytes (Linux; `None` elsewhere):
/// for the log line that says what loading the records took.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What identifies a version of a file without reading it: modification
/// time, length and inode. A reload on tick happens when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of `path` now (`None` if it cannot be read).
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn escape_shows_what_could_forge_or_hide_a_log_line() {
        assert_eq!(escape("dev-1"), "dev-1");
        assert_eq!(
            escape("a\nb\u{2028}c\u{202e}d`e\\"),
            "a\\u{a}b\\u{2028}c\\u{202e}d\\u{60}e\\u{5c}"
        );
        assert_eq!(excerpt(&"x".repeat(65)), format!("{}…", "x".repeat(64)));
        // Every format character, as the core quotes input: soft hyphen, word
        // joiner, tag characters, interlinear annotation.
        assert_eq!(
            escape("a\u{ad}b\u{2060}c\u{e0041}d\u{fff9}"),
            "a\\u{ad}b\\u{2060}c\\u{e0041}d\\u{fff9}"
        );
    }
}
