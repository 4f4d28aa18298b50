//! What the broker integrations of `structure-access` share: the keys and
//! devices files they read at start and at each reload, one JSON record per
//! line; the escaping of client text in their log lines; the budget of
//! Argon2 verifications and the holding of refusals ([`throttle`]).
//!
//! - keys file: one [`AccessKey`] record per line, the core's JSON;
//! - devices file: one [`DeviceRecord`] per line, the platform's JSON
//!   (`{"id": "...", "application": "...", "tags": [{"key": "...", "value": "..."}]}`).
//!
//! Empty lines and lines starting with `#` are skipped; every error names the
//! file and the line.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use structure_access::mqtt::TopicRules;
use structure_access::{
    AccessKey, ApplicationId, AuthError, DeviceId, DeviceRecord, HashPolicy, KeyId,
};

pub mod throttle;
pub mod wire;

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

/// One consistent version of the keys and devices files: what a broker
/// decides with until the next reload.
#[derive(Debug)]
pub struct Records {
    /// Key records by key id.
    pub keys: HashMap<KeyId, AccessKey>,
    /// Devices by ID.
    pub devices: HashMap<DeviceId, DeviceRecord>,
    /// The topic rules, declaring the single application when the files hold
    /// only one (unrestricted wildcard subscriptions then cost nothing per
    /// message).
    pub rules: TopicRules,
    /// The files' stamps, taken before they were read.
    pub stamps: Stamps,
    /// Whether any key on file costs Argon2: its record has an Argon2
    /// verifier, or the hash policy's cost rule names Argon2id for its key id's
    /// shape ([`HashPolicy::expected_scheme`]: an imported, UUID-shaped key by
    /// default). When none does, no authentication that would run Argon2 can
    /// open any key, and refusing one needs no Argon2 dummy: known and unknown
    /// keys are then refused alike at once.
    pub argon2_on_file: bool,
}

impl Records {
    /// No keys and no devices.
    pub fn empty() -> Self {
        Self {
            keys: HashMap::new(),
            devices: HashMap::new(),
            rules: TopicRules::default(),
            stamps: (None, None),
            argon2_on_file: false,
        }
    }

    /// Reads both files, whose `stamps` the caller took just before, checking
    /// every record's verifier against `policy`; `base_rules` get the single
    /// application declared when there is one.
    pub fn load(
        keys_file: &Path,
        devices_file: &Path,
        stamps: Stamps,
        policy: &HashPolicy,
        base_rules: &TopicRules,
    ) -> Result<Self, FileError> {
        let keys = read_keys(keys_file, |record| {
            policy
                .check(record.verifier())
                .map_err(|e| format!("verifier refused by the hash policy: {e}"))
        })?;
        let devices = read_devices(devices_file)?;
        let rules = match single_application(&keys, &devices) {
            Some(application) => base_rules.clone().with_single_application(application),
            None => base_rules.clone(),
        };
        let argon2_on_file = keys.values().any(|record| {
            record.verifier().is_slow() || policy.expected_scheme(record.key()).is_slow()
        });
        Ok(Self {
            keys,
            devices,
            rules,
            stamps,
            argon2_on_file,
        })
    }

    /// May an Argon2 verification run? Never when no record has an Argon2
    /// verifier (see [`Records::argon2_on_file`]); otherwise as `budget` says.
    pub fn permit_argon2(&self, budget: impl FnOnce() -> bool) -> bool {
        self.argon2_on_file && budget()
    }

    /// [`refusal_reason`], saying why a password was refused without
    /// verifying when no record has an Argon2 verifier.
    pub fn refusal_reason(&self, error: &AuthError) -> String {
        match error {
            AuthError::Throttled if !self.argon2_on_file => {
                "no access key on file has an argon2 verifier or costs argon2, so this would open none: refused without verifying".into()
            }
            other => refusal_reason(other),
        }
    }

    /// The device with ID `id`: the topic policy's directory.
    pub fn device(&self, id: &str) -> Option<&DeviceRecord> {
        id.parse::<DeviceId>()
            .ok()
            .and_then(|id| self.devices.get(&id))
    }
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

/// The one application of every key and device, if there is exactly one: a
/// broker can then declare it (`TopicRules::with_single_application`).
pub fn single_application(
    keys: &HashMap<KeyId, AccessKey>,
    devices: &HashMap<DeviceId, DeviceRecord>,
) -> Option<ApplicationId> {
    let mut applications = keys
        .values()
        .map(AccessKey::application)
        .chain(devices.values().map(DeviceRecord::application_id));
    let first = *applications.next()?;
    applications.all(|a| *a == first).then_some(first)
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

/// Calls `each(line_number, line)` for every non-empty, non-comment line.
fn for_each_line(
    path: &Path,
    mut each: impl FnMut(usize, &str) -> Result<(), String>,
) -> Result<(), FileError> {
    let text = std::fs::read_to_string(path).map_err(|error| FileError::Read {
        path: path.to_owned(),
        error,
    })?;
    for (index, line) in text.lines().enumerate() {
        let line_error = |reason: String| FileError::Line {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        if line.len() > MAX_LINE {
            return Err(line_error(format!("longer than {MAX_LINE} bytes")));
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        each(index + 1, trimmed).map_err(line_error)?;
    }
    Ok(())
}

/// One access key record (the core's JSON) per line; `check` is asked about
/// each record (the hash policy), and its refusal names the file and line.
pub fn read_keys(
    path: &Path,
    check: impl Fn(&AccessKey) -> Result<(), String>,
) -> Result<HashMap<KeyId, AccessKey>, FileError> {
    let mut keys = HashMap::new();
    for_each_line(path, |_, line| {
        let record: AccessKey = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let key = *record.key();
        check(&record).map_err(|e| format!("access key `{key}`: {e}"))?;
        if keys.insert(key, record).is_some() {
            return Err(format!("access key `{key}` appears twice"));
        }
        Ok(())
    })?;
    Ok(keys)
}

/// One device per line, in the core's [`DeviceRecord`] JSON (the platform's
/// shape): `{"id": "...", "application": "...", "tags": [{"key": "...", "value": "..."}]}`.
pub fn read_devices(path: &Path) -> Result<HashMap<DeviceId, DeviceRecord>, FileError> {
    let mut devices = HashMap::new();
    for_each_line(path, |_, line| {
        let record: DeviceRecord = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let id = *record.device_id();
        if devices.insert(id, record).is_some() {
            return Err(format!("device `{id}` appears twice"));
        }
        Ok(())
    })?;
    Ok(devices)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("structure-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn devices_are_read_with_their_application_and_errors_name_file_and_line() {
        let path = write(
            "devices",
            "# a comment\n\n{\"id\": \"d1\", \"application\": \"a1\"}\n{\"id\": \"d2\", \"application\": \"a1\", \"tags\": [{\"key\": \"k\", \"value\": \"v\"}]}\n",
        );
        let devices = read_devices(&path).unwrap();
        assert_eq!(devices.len(), 2);
        let bad = write(
            "bad",
            "{\"id\": \"d1\", \"application\": \"a1\"}\n{\"id\": \"d1\", \"application\": \"a1\"}\n",
        );
        let err = read_devices(&bad).unwrap_err().to_string();
        assert!(
            err.ends_with("` line 2: device `d1` appears twice"),
            "{err}"
        );
        let missing = write("missing", "{\"id\": \"d1\"}\n");
        let err = read_devices(&missing).unwrap_err().to_string();
        assert!(err.contains("line 1: missing field `application`"), "{err}");
        assert_eq!(
            single_application(&HashMap::new(), &devices),
            Some("a1".parse().unwrap())
        );
        let err = read_keys(&path.with_file_name("nope"), |_| Ok(())).unwrap_err();
        assert!(matches!(err, FileError::Read { .. }), "{err}");
    }

    #[test]
    fn a_crafted_field_name_makes_one_escaped_line() {
        // serde quotes an unknown field's name as it is: a `\n` in it would
        // start a forged line in the broker's log.
        let forged = "x\n2026-01-01T00:00:00: New client connected as admin\u{2028}";
        let json = serde_json::to_string(forged).unwrap();
        let keys = write("crafted-keys", &format!("{{{json}: 1}}\n"));
        let devices = write(
            "crafted-devices",
            &format!("{{\"id\": \"d1\", {json}: 1}}\n"),
        );
        let errors = [
            read_keys(&keys, |_| Ok(())).unwrap_err(),
            read_devices(&devices).unwrap_err(),
        ];
        for error in errors {
            assert!(matches!(error, FileError::Line { .. }), "{error:?}");
            let FileError::Line { reason, .. } = &error else {
                continue;
            };
            // The raw reason holds the forged line...
            assert!(reason.contains('\n'), "{reason:?}");
            // ...the message a broker logs is one line, every character shown.
            let message = error.to_string();
            assert_eq!(message.lines().count(), 1, "{message}");
            assert!(
                !message.chars().any(structure_access::is_invisible),
                "{message}"
            );
            assert!(
                message.contains("unknown field `x\\u{a}2026-01-01T00:00:00: New client connected as admin\\u{2028}`"),
                "{message}"
            );
            assert!(message.contains(" line 1: "), "{message}");
        }
        // A path is quoted like client text.
        let error = read_devices(Path::new("/no/such\ndir")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read `/no/such\\u{a}dir`: "),
            "{error}"
        );
    }

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
