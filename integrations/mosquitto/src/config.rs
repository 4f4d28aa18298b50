//! Plugin options and the keys and devices files.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use structure_access::{AccessKey, DeviceId, DeviceRecord, HashPolicy, KeyId};

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

/// What the plugin is configured with.
#[derive(Debug)]
pub struct Config {
    /// Key records by key id.
    pub keys: HashMap<KeyId, AccessKey>,
    /// Devices by ID.
    pub devices: HashMap<DeviceId, DeviceRecord>,
    /// Hash policy (its bounds come from the options).
    pub policy: HashPolicy,
    /// Topic prefix of the device topics.
    pub topic_prefix: String,
    /// Verification cache capacity (0 disables the cache).
    pub cache_capacity: usize,
    /// Argon2 memory pool size.
    pub pool_size: usize,
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
                    name: name.clone(),
                    reason: format!(
                        "unknown option, expected one of {}",
                        KNOWN_OPTIONS.join(", ")
                    ),
                });
            }
        }
        let keys_file = get("keys_file").ok_or(ConfigError::MissingOption("keys_file"))?;
        let devices_file = get("devices_file").ok_or(ConfigError::MissingOption("devices_file"))?;
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| ConfigError::BadOption {
                    name: name.into(),
                    reason: format!("`{v}` is not a whole number"),
                })
            })
        };
        let defaults = HashPolicy::default().bounds();
        let as_u32 = |name: &str, v: u64| {
            u32::try_from(v).map_err(|_| ConfigError::BadOption {
                name: name.into(),
                reason: format!("`{v}` is too large"),
            })
        };
        let max_m = as_u32("hash_max_m", number("hash_max_m", defaults.m.into())?)?;
        let max_t = as_u32("hash_max_t", number("hash_max_t", defaults.t.into())?)?;
        let max_p = as_u32("hash_max_p", number("hash_max_p", defaults.p.into())?)?;
        // Explicit bounds replace the default ones (which also bound m × t to
        // four times the policy's work).
        let explicit = ["hash_max_m", "hash_max_t", "hash_max_p"]
            .iter()
            .any(|name| get(name).is_some());
        let policy = if explicit {
            HashPolicy::default()
                .with_bounds(max_m, max_t, max_p)
                .map_err(|e| ConfigError::BadOption {
                    name: "hash_max_m".into(),
                    reason: e.to_string(),
                })?
        } else {
            HashPolicy::default()
        };
        let cache_capacity =
            usize::try_from(number("cache_capacity", 10_000)?).unwrap_or(usize::MAX);
        let pool_size = usize::try_from(number("pool_size", 1)?).unwrap_or(1).max(1);
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
            keys: read_keys(Path::new(keys_file))?,
            devices: read_devices(Path::new(devices_file))?,
            policy,
            topic_prefix,
            cache_capacity,
            pool_size,
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
    "argon2_per_second",
    "argon2_per_address_per_second",
];

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

/// One access key record (the core's JSON) per line.
pub fn read_keys(path: &Path) -> Result<HashMap<KeyId, AccessKey>, ConfigError> {
    let mut keys = HashMap::new();
    for_each_line(path, |_, line| {
        let record: AccessKey = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let key = *record.key();
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
