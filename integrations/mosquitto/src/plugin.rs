//! The plugin's logic, free of `unsafe`: decisions on CONNECT and ACL checks.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use structure_access::{
    AccessKey, AuthError, Authenticator, DeviceId, DeviceRecord, KeyId, Principal,
    VerificationCache,
};

use crate::config::{Config, ConfigError};

/// What the broker is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse ("not authorised").
    Deny,
}

/// Which ACL check the broker asks for (`MOSQ_ACL_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Delivery of a message to this client (`MOSQ_ACL_READ`).
    Read,
    /// A PUBLISH from this client (`MOSQ_ACL_WRITE`).
    Write,
    /// A SUBSCRIBE filter (`MOSQ_ACL_SUBSCRIBE`).
    Subscribe,
    /// An UNSUBSCRIBE filter (`MOSQ_ACL_UNSUBSCRIBE`).
    Unsubscribe,
}

/// A connection, as the broker identifies it (the address of its client struct).
pub type ConnectionId = usize;

/// The plugin's state: configuration, authenticator and the authenticated clients.
#[derive(Debug)]
pub struct Plugin {
    keys: HashMap<KeyId, AccessKey>,
    devices: HashMap<DeviceId, DeviceRecord>,
    auth: Authenticator,
    rules: structure_access::mqtt::TopicRules,
    sessions: Mutex<HashMap<ConnectionId, Principal>>,
}

/// A decision with the line for the broker's log (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The decision.
    pub verdict: Verdict,
    /// What to log, if anything.
    pub log: Option<String>,
}

impl Outcome {
    fn allow(log: impl Into<Option<String>>) -> Self {
        Self {
            verdict: Verdict::Allow,
            log: log.into(),
        }
    }
    fn deny(log: String) -> Self {
        Self {
            verdict: Verdict::Deny,
            log: Some(log),
        }
    }
}

fn text(bytes: Option<&[u8]>) -> Result<&str, &'static str> {
    let bytes = bytes.ok_or("missing")?;
    std::str::from_utf8(bytes).map_err(|_| "not UTF-8")
}

impl Plugin {
    /// Builds the plugin from its options; refuses to start on any problem.
    pub fn from_options(options: &[(String, String)]) -> Result<Self, ConfigError> {
        Self::from_config(Config::from_options(options)?)
    }

    /// Builds the plugin from a configuration.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        let mut auth = Authenticator::new(config.policy).with_pool_size(config.pool_size);
        if config.cache_capacity > 0 {
            let cache = VerificationCache::new(config.cache_capacity).map_err(|e| {
                ConfigError::BadOption {
                    name: "cache_capacity".into(),
                    reason: e.to_string(),
                }
            })?;
            auth = auth.with_cache(cache);
        }
        let rules = structure_access::mqtt::TopicRules::new(&config.topic_prefix).map_err(|e| {
            ConfigError::BadOption {
                name: "topic_prefix".into(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            keys: config.keys,
            devices: config.devices,
            auth,
            rules,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Number of key records loaded.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Number of devices loaded.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Principal>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// CONNECT: client id = device ID, username = key, password = secret.
    pub fn basic_auth(
        &self,
        connection: ConnectionId,
        client_id: Option<&[u8]>,
        username: Option<&[u8]>,
        password: Option<&[u8]>,
    ) -> Outcome {
        // A reconnect on the same connection object must not keep an old principal.
        self.sessions().remove(&connection);
        let client_id = match text(client_id) {
            Ok(id) => id,
            Err(why) => return Outcome::deny(format!("refused: client id {why}")),
        };
        let username = match text(username) {
            Ok(name) => name,
            Err(why) => {
                return Outcome::deny(format!(
                    "refused client `{}`: username {why}",
                    shown(client_id)
                ));
            }
        };
        let Ok(password) = text(password) else {
            return Outcome::deny(format!(
                "refused client `{}`: password missing or not UTF-8",
                shown(client_id)
            ));
        };
        // The error would quote the username, which may be a secret typed in
        // the wrong field: say only that it is not a key.
        let Ok(key) = username.parse::<KeyId>() else {
            return Outcome::deny(format!(
                "refused client `{}`: the username is not an access key",
                shown(client_id)
            ));
        };
        let device_id: DeviceId = match client_id.parse() {
            Ok(id) => id,
            Err(e) => return Outcome::deny(format!("refused client: {e}")),
        };
        let Some(device) = self.devices.get(&device_id) else {
            // Run the same verification as for a known device, so that the
            // devices file cannot be probed by timing.
            let _ = self
                .auth
                .authenticate_password(self.keys.get(&key), password, &device_id);
            return Outcome::deny(format!("refused device `{device_id}`: unknown device"));
        };
        match self
            .auth
            .authenticate_password(self.keys.get(&key), password, device)
        {
            Ok(principal) => {
                self.sessions().insert(connection, principal);
                Outcome::allow(format!(
                    "device `{device_id}` authenticated with access key `{key}`"
                ))
            }
            Err(e) => Outcome::deny(refusal(&device_id, &key, &e)),
        }
    }

    /// An ACL check for `topic` (a topic name, or a filter for subscribe).
    pub fn acl_check(
        &self,
        connection: ConnectionId,
        access: Access,
        topic: Option<&[u8]>,
    ) -> Outcome {
        let topic = match text(topic) {
            Ok(topic) => topic,
            Err(why) => return Outcome::deny(format!("acl: topic {why}")),
        };
        let sessions = self.sessions();
        let Some(principal) = sessions.get(&connection) else {
            return Outcome::deny(format!(
                "acl: `{}` from an unauthenticated connection",
                shown(topic)
            ));
        };
        let directory = |id: &str| -> Option<&DeviceRecord> {
            id.parse::<DeviceId>()
                .ok()
                .and_then(|id| self.devices.get(&id))
        };
        use structure_access::mqtt::Decision;
        let decision = match access {
            Access::Unsubscribe => return Outcome::allow(None),
            Access::Write => principal.may_publish(&self.rules, topic, &directory),
            Access::Subscribe => principal.may_subscribe(&self.rules, topic, &directory),
            Access::Read => principal
                .may_receive(&self.rules, topic, &directory)
                .map(|ok| if ok { Decision::Allow } else { Decision::Deny }),
        };
        match decision {
            Ok(Decision::Allow | Decision::Filter) => Outcome::allow(None),
            // Per-message filtering of a wildcard subscription: expected, not news.
            Ok(_) if access == Access::Read => Outcome {
                verdict: Verdict::Deny,
                log: None,
            },
            Ok(_) => Outcome::deny(format!(
                "acl: {access:?} `{}` denied to device `{}`",
                shown(topic),
                principal.device_id()
            )),
            Err(e) => Outcome::deny(format!("acl: {e}")),
        }
    }

    /// The connection is gone: forget its principal.
    pub fn disconnect(&self, connection: ConnectionId) {
        self.sessions().remove(&connection);
    }
}

/// At most 64 characters of client-supplied text, for a log line. A character
/// that would not print as itself (a control or format character, a line or
/// paragraph separator: what `char::escape_debug` escapes, quotes and
/// backslashes aside) is shown as `\u{…}`, so that the line stays one line and
/// says what the client sent.
fn shown(text: &str) -> String {
    let mut shown = String::new();
    for c in text.chars().take(64) {
        if c.escape_debug().len() > 1 && !matches!(c, '"' | '\'' | '\\') {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    if text.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

fn refusal(device: &DeviceId, key: &KeyId, error: &AuthError) -> String {
    let why = with_causes(error);
    match error {
        // A username that names no key may be anything the client typed, a
        // legacy hex secret in the wrong field included: do not repeat it.
        AuthError::UnknownKey => format!("refused device `{device}`: {why}"),
        _ => format!("refused device `{device}` with access key `{key}`: {why}"),
    }
}

/// An error and its causes, `: ` between them (each one says its cause once).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{refusal, shown};
    use structure_access::{AuthError, VerifierError};

    #[test]
    fn client_text_in_logs_is_one_line_and_escaped() {
        assert_eq!(shown("dev-1"), "dev-1");
        assert_eq!(shown("café \"x\" \\"), "café \"x\" \\");
        assert_eq!(
            shown("a\r\nINFO forged\u{2028}\u{202e}\u{200b}\0"),
            "a\\u{d}\\u{a}INFO forged\\u{2028}\\u{202e}\\u{200b}\\u{0}"
        );
        let long = "x".repeat(65);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(64)));
        assert_eq!(shown(&long[..64]), "x".repeat(64));
    }

    #[test]
    fn refusals_log_the_cause_of_a_server_fault() {
        let key = "stk_4DmVJcy3ZpW0gNqk8TbX2a".parse().unwrap();
        let error = AuthError::BadVerifier {
            key,
            source: VerifierError::OutOfMemory { kib: 19456 },
        };
        assert_eq!(
            refusal(&"dev-1".parse().unwrap(), &key, &error),
            "refused device `dev-1` with access key `stk_4DmVJcy3ZpW0gNqk8TbX2a`: \
             stored verifier of access key `stk_4DmVJcy3ZpW0gNqk8TbX2a` refused: \
             could not allocate 19456 KiB for argon2"
        );
    }
}
