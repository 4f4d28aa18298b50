//! Plugin options and the keys and devices files.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use structure_access::{AccessKey, Cost, DeviceId, DeviceRecord, HashPolicy, KeyId};

/// Why the plugin refuses to start. Every message names the option, or the file
/// and line, at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// A required `plugin_opt_*` is missing.
    MissingOption(&'static str),
    /// An option has a value that is not accepted.
    BadOption {
        /// The option's name (without `plugin_opt_`).
        name: String,
        /// Why.
        reason: String,
    },
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

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingOption(name) => write!(f, "missing option `plugin_opt_{name}`"),
            Self::BadOption { name, reason } => {
                write!(f, "option `plugin_opt_{name}`: {reason}")
            }
            Self::Read { path, error } => write!(f, "cannot read `{}`: {error}", path.display()),
            Self::Line { path, line, reason } => {
                write!(f, "`{}` line {line}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// What the plugin is configured with (the options; the files are read by
/// [`read_keys`] and [`read_devices`], at start and at each reload).
#[derive(Debug)]
pub struct Config {
    /// The keys file (`plugin_opt_keys_file`).
    pub keys_file: PathBuf,
    /// The devices file (`plugin_opt_devices_file`).
    pub devices_file: PathBuf,
    /// Hash policy (its bounds come from the options).
    pub policy: HashPolicy,
    /// Topic prefix of the device topics.
    pub topic_prefix: String,
    /// Verification cache capacity (0 disables the cache).
    pub cache_capacity: usize,
    /// Argon2 memory pool size (at least 1).
    pub pool_size: usize,
    /// How often the files' modification times are checked (`None`: only
    /// SIGHUP reloads them).
    pub reload_interval: Option<Duration>,
    /// Whether a username that is not a known access key, and ACL checks of
    /// connections this plugin did not authenticate, are left to the other
    /// authentication sources (`MOSQ_ERR_PLUGIN_DEFER`) instead of refused.
    pub defer_unknown: bool,
    /// Argon2 verifications allowed per second in the whole broker.
    pub argon2_per_second: u32,
    /// Argon2 verifications allowed per second per client address.
    pub argon2_per_address_per_second: u32,
}

/// Default of `plugin_opt_argon2_per_second`.
pub const DEFAULT_ARGON2_PER_SECOND: u32 = 10;
/// Default of `plugin_opt_argon2_per_address_per_second`.
pub const DEFAULT_ARGON2_PER_ADDRESS_PER_SECOND: u32 = 2;

/// Longest line accepted in the keys and devices files.
const MAX_LINE: usize = 1 << 20;

/// Longest `plugin_opt_reload_interval`: a day.
const MAX_RELOAD_INTERVAL: u64 = 86_400;

impl Config {
    /// Reads the options (`name`, `value`) given as `plugin_opt_name value`.
    pub fn from_options(options: &[(String, String)]) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            options
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        for (name, _) in options {
            if !KNOWN_OPTIONS.contains(&name.as_str()) {
                return Err(ConfigError::BadOption {
                    name: excerpt(name),
                    reason: format!(
                        "unknown option, expected one of {}",
                        KNOWN_OPTIONS.join(", ")
                    ),
                });
            }
        }
        let keys_file = get("keys_file").ok_or(ConfigError::MissingOption("keys_file"))?;
        let devices_file = get("devices_file").ok_or(ConfigError::MissingOption("devices_file"))?;
        let bad = |name: &str, reason: String| ConfigError::BadOption {
            name: name.into(),
            reason,
        };
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| bad(name, format!("`{}` is not a whole number", excerpt(v))))
            })
        };
        let defaults = HashPolicy::default();
        let (params, bounds) = (defaults.params(), defaults.bounds());
        let as_u32 = |name: &str, v: u64| {
            u32::try_from(v).map_err(|_| bad(name, format!("`{v}` is too large")))
        };
        let max_m = as_u32("hash_max_m", number("hash_max_m", bounds.m.into())?)?;
        let max_t = as_u32("hash_max_t", number("hash_max_t", bounds.t.into())?)?;
        let max_p = as_u32("hash_max_p", number("hash_max_p", bounds.p.into())?)?;
        // Explicit bounds replace the default ones (which also bound m × t to
        // four times the work of new verifiers).
        let explicit = ["hash_max_m", "hash_max_t", "hash_max_p"]
            .iter()
            .any(|name| get(name).is_some());
        let policy = if !explicit {
            defaults.clone()
        } else {
            HashPolicy::default()
                .with_bounds(Cost::new(max_m, max_t, max_p))
                .map_err(|e| {
                    // Name the bound below the parameters of new verifiers.
                    let name = if max_m < params.m {
                        "hash_max_m"
                    } else if max_t < params.t {
                        "hash_max_t"
                    } else if max_p < params.p {
                        "hash_max_p"
                    } else {
                        "hash_max_m"
                    };
                    bad(name, e.to_string())
                })?
        };
        let cache_capacity =
            usize::try_from(number("cache_capacity", 10_000)?).unwrap_or(usize::MAX);
        let pool_size = number("pool_size", 1)?;
        if pool_size == 0 {
            return Err(bad(
                "pool_size",
                "`0` is too small, expected at least 1".into(),
            ));
        }
        let pool_size = usize::try_from(pool_size)
            .map_err(|_| bad("pool_size", format!("`{pool_size}` is too large")))?;
        let reload_interval = match number("reload_interval", 0)? {
            0 => None,
            n if n > MAX_RELOAD_INTERVAL => {
                return Err(bad(
                    "reload_interval",
                    format!("`{n}` is too large, expected at most {MAX_RELOAD_INTERVAL} seconds"),
                ));
            }
            n => Some(Duration::from_secs(n)),
        };
        let defer_unknown = match get("defer_unknown") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(bad(
                    "defer_unknown",
                    format!("`{}` is not `true` or `false`", excerpt(other)),
                ));
            }
        };
        let topic_prefix = get("topic_prefix").unwrap_or("structure").to_owned();
        let argon2_per_second = as_u32(
            "argon2_per_second",
            number("argon2_per_second", DEFAULT_ARGON2_PER_SECOND.into())?,
        )?;
        let argon2_per_address_per_second = as_u32(
            "argon2_per_address_per_second",
            number(
                "argon2_per_address_per_second",
                DEFAULT_ARGON2_PER_ADDRESS_PER_SECOND.into(),
            )?,
        )?;
        Ok(Self {
            keys_file: keys_file.into(),
            devices_file: devices_file.into(),
            policy,
            topic_prefix,
            cache_capacity,
            pool_size,
            reload_interval,
            defer_unknown,
            argon2_per_second,
            argon2_per_address_per_second,
        })
    }
}

const KNOWN_OPTIONS: &[&str] = &[
    "keys_file",
    "devices_file",
    "topic_prefix",
    "hash_max_m",
    "hash_max_t",
    "hash_max_p",
    "cache_capacity",
    "pool_size",
    "reload_interval",
    "defer_unknown",
    "argon2_per_second",
    "argon2_per_address_per_second",
];

/// At most 64 characters of `text`, for a message, escaped with [`escape`].
pub fn excerpt(text: &str) -> String {
    let mut shown = escape(&text.chars().take(64).collect::<String>());
    if text.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

/// `text` with every character that could forge or disguise a log line
/// escaped as `\u{…}`: control characters (line breaks included), the Unicode
/// line and paragraph separators, bidirectional formatting characters, and
/// the backslash and backtick that delimit quoted input.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{061C}' | '\u{200E}' | '\u{200F}' // ALM, LRM, RLM
                | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
                | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
                | '\u{FEFF}' | '\u{200B}'..='\u{200D}' // zero-width
                | '\\' | '`'
            );
        if hidden {
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
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    for (index, line) in text.lines().enumerate() {
        let line_error = |reason: String| ConfigError::Line {
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
) -> Result<HashMap<KeyId, AccessKey>, ConfigError> {
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
pub fn read_devices(path: &Path) -> Result<HashMap<DeviceId, DeviceRecord>, ConfigError> {
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
