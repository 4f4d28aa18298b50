//! Plugin options and the keys and devices files.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use structure_access::{Cost, HashPolicy};
use structure_access_common::takeover::{
    DEFAULT_TAKEOVER_LIMIT, TakeoverPolicy, TakeoverPolicyError,
};
pub use structure_access_common::{
    ChangeSet, FileError, FileSource, Records, Stamps, Unlisted, escape, excerpt, refusal_reason,
    stamps, with_causes,
};

/// Why the plugin refuses to start. Every message names the option, or the file
/// and line, at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// A required `plugin_opt_*` is missing.
    MissingOption(&'static str),
    /// Neither the files nor a database is configured.
    NoSource,
    /// An option has a value that is not accepted.
    BadOption {
        /// The option's name (without `plugin_opt_`).
        name: String,
        /// Why.
        reason: String,
    },
    /// The keys or devices file could not be read, or one of its lines is
    /// invalid (the error names the file and line).
    File(FileError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingOption(name) => write!(f, "missing option `plugin_opt_{name}`"),
            Self::NoSource => write!(
                f,
                "missing option `plugin_opt_keys_file` and `plugin_opt_devices_file`, or \
                 `plugin_opt_database_url` (or `plugin_opt_database_url_file`)"
            ),
            Self::BadOption { name, reason } => {
                write!(f, "option `plugin_opt_{name}`: {reason}")
            }
            Self::File(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<FileError> for ConfigError {
    fn from(error: FileError) -> Self {
        Self::File(error)
    }
}

/// What the plugin is configured with (the options; the files are read by a
/// [`FileSource`], at start and at each reload).
#[derive(Debug)]
pub struct Config {
    /// The keys file (`plugin_opt_keys_file`); with a database, read only
    /// when the database cannot be reached at start.
    pub keys_file: Option<PathBuf>,
    /// The devices file (`plugin_opt_devices_file`), given with the keys
    /// file.
    pub devices_file: Option<PathBuf>,
    /// The database the records come from (`plugin_opt_database_url`, or the
    /// first line of `plugin_opt_database_url_file`).
    pub database_url: Option<DatabaseUrl>,
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
    /// The audit trail's file (`plugin_opt_audit_file`; `None`: the
    /// broker's log).
    pub audit_file: Option<PathBuf>,
    /// Whether the audit trail is written at all (`plugin_opt_audit`,
    /// `on` or `off`; default `on`).
    pub audit: bool,
    /// What a CONNECT for a device with a live session may do
    /// (`plugin_opt_takeover`, `allow` or `same_key`).
    pub takeover: TakeoverPolicy,
    /// Takeovers of a device in a minute past which it is reported as a
    /// conflicting client id (`plugin_opt_takeover_limit`).
    pub takeover_limit: u32,
    /// How often the counters are published under
    /// `$SYS/broker/plugin/structure-access/` (`plugin_opt_sys_interval`,
    /// seconds, default 10 as Mosquitto's own `sys_interval`; `None`: never).
    pub sys_interval: Option<Duration>,
    /// Users of connections this plugin did not authenticate (an operator's
    /// monitoring client, a password-file user under `defer_unknown`) who
    /// may subscribe to and read `$SYS/…` (`plugin_opt_sys_readers`, names
    /// separated by commas).
    pub sys_readers: Vec<String>,
}

/// A database's URL: it may hold a password, so it is never shown.
#[derive(Clone)]
pub struct DatabaseUrl(pub String);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(…)")
    }
}

/// Default of `plugin_opt_argon2_per_second`.
pub const DEFAULT_ARGON2_PER_SECOND: u32 = 10;
/// Default of `plugin_opt_argon2_per_address_per_second`.
pub const DEFAULT_ARGON2_PER_ADDRESS_PER_SECOND: u32 = 2;

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
        let bad = |name: &str, reason: String| ConfigError::BadOption {
            name: name.into(),
            reason,
        };
        let database_url = match (get("database_url"), get("database_url_file")) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "database_url_file",
                    "give `plugin_opt_database_url` or `plugin_opt_database_url_file`, not both"
                        .into(),
                ));
            }
            (Some(url), None) => Some(DatabaseUrl(url.to_owned())),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    bad(
                        "database_url_file",
                        format!("cannot read `{}`: {e}", excerpt(file)),
                    )
                })?;
                let url = text.lines().next().unwrap_or_default().trim();
                if url.is_empty() {
                    return Err(bad(
                        "database_url_file",
                        format!("`{}` holds no URL on its first line", excerpt(file)),
                    ));
                }
                Some(DatabaseUrl(url.to_owned()))
            }
            (None, None) => None,
        };
        let (keys_file, devices_file) = match (get("keys_file"), get("devices_file")) {
            (Some(k), Some(d)) => (Some(PathBuf::from(k)), Some(PathBuf::from(d))),
            (None, None) if database_url.is_some() => (None, None),
            (None, None) => return Err(ConfigError::NoSource),
            (Some(_), None) => return Err(ConfigError::MissingOption("devices_file")),
            (None, Some(_)) => return Err(ConfigError::MissingOption("keys_file")),
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
        // 64 MiB × 4 passes).
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
        let audit = match get("audit") {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(bad(
                    "audit",
                    format!("`{}` is not `on` or `off`", excerpt(other)),
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
        let takeover = match get("takeover") {
            None => TakeoverPolicy::default(),
            Some(text) => text
                .parse()
                .map_err(|e: TakeoverPolicyError| bad("takeover", e.to_string()))?,
        };
        let takeover_limit = as_u32(
            "takeover_limit",
            number("takeover_limit", DEFAULT_TAKEOVER_LIMIT.into())?,
        )?;
        let sys_interval = number("sys_interval", 10)?;
        Ok(Self {
            sys_readers: get("sys_readers")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            sys_interval: (sys_interval > 0).then(|| Duration::from_secs(sys_interval)),
            audit_file: get("audit_file").map(PathBuf::from),
            audit,
            takeover,
            takeover_limit,
            keys_file,
            devices_file,
            database_url,
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
    "database_url",
    "database_url_file",
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
    "audit_file",
    "audit",
    "takeover",
    "takeover_limit",
    "sys_interval",
    "sys_readers",
];
