//! The node's configuration: one TOML file per cluster node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use structure_access_common::takeover::{DEFAULT_TAKEOVER_LIMIT, TakeoverPolicy};

/// One cluster node, as its TOML file describes it:
///
/// ```toml
/// node_id = 1
/// mqtt_listen = "127.0.0.1:1883"
/// grpc_listen = "127.0.0.1:5363"
/// # Every node of the cluster, this one included: "id@host:port" (gRPC).
/// peers = ["1@127.0.0.1:5363", "2@127.0.0.1:5364"]
/// keys_file = "/etc/structure/keys.jsonl"
/// devices_file = "/etc/structure/devices.jsonl"
/// # Or the records follow a database (the files then only serve when the
/// # database cannot be reached at start):
/// # database_url = "postgres://structure@db.internal/platform"
/// # database_url_file = "/etc/structure/database-url"   # its first line
/// # Optional, with their defaults:
/// topic_prefix = "structure"
/// reload_interval = 0            # seconds between looks at the files; 0: SIGHUP only
/// cache_capacity = 10000         # verification cache (Argon2 verifiers); 0: none
/// argon2_per_second = 10         # Argon2 budget of the node...
/// argon2_per_address_per_second = 2   # ...and of each client address
/// refusals_per_address_per_second = 2 # refusals answered at once to an address (0: none)...
/// refusal_delay_ms = 1000        # ...past them, each held this long (0: never held)
/// max_subscriptions = 1000       # subscriptions one session may hold
/// max_retained_messages = 100000 # retained messages the node keeps (0: none)
/// max_retained_payload = 65536   # bytes of a retained message's payload, at most
/// audit_file = "/var/log/structure/audit.jsonl"  # default: none, the log
/// audit = true                  # false: no audit trail at all, not even in the log
/// takeover = "allow"             # or "same_key": a live device is taken over with its key only
/// takeover_limit = 5             # takeovers of a device in a minute before it is reported
/// metrics_listen = "127.0.0.1:9464"   # default: none; Prometheus text on GET /metrics
/// access_keys = true             # false: no plugin (a baseline for benchmarks)
/// ```
///
/// Relative file paths are read from the configuration file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id in the cluster (1, 2, …).
    pub node_id: u64,
    /// The MQTT listener.
    pub mqtt_listen: SocketAddr,
    /// The gRPC listener the other nodes reach.
    pub grpc_listen: SocketAddr,
    /// Every node, `id@host:port`, this one included.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The access key records, one JSON record per line.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    /// The devices, one JSON record per line.
    #[serde(default)]
    pub devices_file: Option<PathBuf>,
    /// The database the records follow (it may hold a password: never
    /// logged).
    #[serde(default)]
    pub database_url: Option<DatabaseUrl>,
    /// A file whose first line is `database_url`.
    #[serde(default)]
    pub database_url_file: Option<PathBuf>,
    /// The first level of the device topics.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Seconds between looks at the files' modification times (0: SIGHUP only).
    #[serde(default)]
    pub reload_interval: u64,
    /// Entries of the verification cache (0: none).
    #[serde(default = "default_cache")]
    pub cache_capacity: usize,
    /// Argon2 verifications per second on this node.
    #[serde(default = "default_argon2")]
    pub argon2_per_second: u32,
    /// Argon2 verifications per second per client address.
    #[serde(default = "default_argon2_per_address")]
    pub argon2_per_address_per_second: u32,
    /// Refused CONNECTs answered at once per second to each client address
    /// (an IPv6 address: its /64 network); past them, each is held
    /// `refusal_delay_ms` before it is answered. 0: every refusal is held.
    #[serde(default = "default_refusals_per_address")]
    pub refusals_per_address_per_second: u32,
    /// Milliseconds a refusal past its address's budget is held (0: never;
    /// at most [`MAX_REFUSAL_DELAY_MS`]).
    #[serde(default = "default_refusal_delay")]
    pub refusal_delay_ms: u64,
    /// Most subscriptions one session may hold (each filter at most
    /// [`crate::plugin::MAX_FILTER_BYTES`] long).
    #[serde(default = "default_max_subscriptions")]
    pub max_subscriptions: usize,
    /// Most retained messages the node keeps (0: retained messages are not
    /// kept). Past it, a retained message on a new topic is not kept.
    #[serde(default = "default_max_retained")]
    pub max_retained_messages: usize,
    /// Longest payload of a retained message, in bytes; a longer one is
    /// delivered but not kept.
    #[serde(default = "default_max_retained_payload")]
    pub max_retained_payload: usize,
    /// The audit trail's file (JSON lines, appended to, created with mode
    /// 0600); none: the audit events go to the log (target `audit`).
    #[serde(default)]
    pub audit_file: Option<PathBuf>,
    /// Whether the audit trail is written at all (`false`: nowhere, not
    /// even the log).
    #[serde(default = "yes")]
    pub audit: bool,
    /// What a CONNECT for a device with a live session may do: `allow`
    /// (take it over, MQTT's rule) or `same_key` (only with the live
    /// session's access key).
    #[serde(default, deserialize_with = "takeover_policy")]
    pub takeover: TakeoverPolicy,
    /// Takeovers of a device in a minute (on this node) past which it is
    /// reported as a conflicting client id.
    #[serde(default = "default_takeover_limit")]
    pub takeover_limit: u32,
    /// Where to serve the counters as Prometheus text (`GET /metrics`);
    /// none: not served.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Whether the access-key plugin runs (false: a node without it, for
    /// benchmarks only: anonymous clients are then allowed).
    #[serde(default = "yes")]
    pub access_keys: bool,
}

/// A database's URL: it may hold a password, so it is never shown.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(…)")
    }
}

/// The longest `refusal_delay_ms`: well within RMQTT's handshake timeout (30 s).
pub const MAX_REFUSAL_DELAY_MS: u64 = 10_000;

fn default_prefix() -> String {
    "structure".into()
}
const fn default_cache() -> usize {
    10_000
}
const fn default_argon2() -> u32 {
    10
}
const fn default_argon2_per_address() -> u32 {
    2
}
const fn default_refusals_per_address() -> u32 {
    2
}
const fn default_refusal_delay() -> u64 {
    1_000
}
const fn default_max_subscriptions() -> usize {
    1_000
}
const fn default_max_retained() -> usize {
    100_000
}
const fn default_max_retained_payload() -> usize {
    64 * 1024
}
const fn default_takeover_limit() -> u32 {
    DEFAULT_TAKEOVER_LIMIT
}
fn takeover_policy<'de, D: Deserializer<'de>>(from: D) -> Result<TakeoverPolicy, D::Error> {
    String::deserialize(from)?
        .parse()
        .map_err(serde::de::Error::custom)
}
const fn yes() -> bool {
    true
}

/// Why `grpc_listen` deserves a warning: the cluster's gRPC port takes, from
/// anyone who reaches it, publications to any topic past the plugin, kicks
/// and session lists. `None` for a loopback or private address.
pub fn grpc_exposure(addr: &SocketAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    let ip = addr.ip();
    if ip.is_unspecified() {
        return Some("every interface of the machine");
    }
    let private = match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                // Unique local (fc00::/7) and link-local (fe80::/10).
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    };
    (!private).then_some("a public address")
}

impl NodeConfig {
    /// Reads and checks the TOML file at `path`.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let mut config: Self =
            toml::from_str(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            &mut config.keys_file,
            &mut config.devices_file,
            &mut config.database_url_file,
            &mut config.audit_file,
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        if let Some(file) = &config.database_url_file {
            if config.database_url.is_some() {
                return Err("give `database_url` or `database_url_file`, not both".into());
            }
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
            let url = text.lines().next().unwrap_or_default().trim();
            if url.is_empty() {
                return Err(format!(
                    "`{}` holds no URL on its first line",
                    file.display()
                ));
            }
            config.database_url = Some(DatabaseUrl(url.to_owned()));
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        match (&self.keys_file, &self.devices_file) {
            (Some(_), Some(_)) => {}
            (None, None) if self.database_url.is_some() => {}
            (None, None) => {
                return Err(
                    "give `keys_file` and `devices_file`, or `database_url` (or \
                     `database_url_file`)"
                        .into(),
                );
            }
            (Some(_), None) => return Err("`keys_file` without `devices_file`".into()),
            (None, Some(_)) => return Err("`devices_file` without `keys_file`".into()),
        }
        if self.node_id == 0 {
            return Err("`node_id` must be at least 1".into());
        }
        for peer in &self.peers {
            let valid = peer.split_once('@').is_some_and(|(id, addr)| {
                id.parse::<u64>().is_ok() && addr.parse::<SocketAddr>().is_ok()
            });
            if !valid {
                return Err(format!(
                    "peer `{}` is not `id@host:port`",
                    structure_access_common::excerpt(peer)
                ));
            }
        }
        structure_access::mqtt::TopicRules::new(&self.topic_prefix)
            .map_err(|e| format!("`topic_prefix`: {e}"))?;
        if self.refusal_delay_ms > MAX_REFUSAL_DELAY_MS {
            return Err(format!(
                "`refusal_delay_ms` is {}, expected at most {MAX_REFUSAL_DELAY_MS}",
                self.refusal_delay_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_on_a_public_or_every_address_is_flagged() {
        for (addr, flagged) in [
            ("127.0.0.1:5363", None),
            ("10.1.2.3:5363", None),
            ("172.16.0.9:5363", None),
            ("192.168.1.1:5363", None),
            ("[::1]:5363", None),
            ("[fd12:3456::1]:5363", None),
            ("[fe80::1]:5363", None),
            ("0.0.0.0:5363", Some("every interface of the machine")),
            ("[::]:5363", Some("every interface of the machine")),
            ("203.0.113.7:5363", Some("a public address")),
            ("[2001:db8::1]:5363", Some("a public address")),
        ] {
            assert_eq!(grpc_exposure(&addr.parse().unwrap()), flagged, "{addr}");
        }
    }

    #[test]
    fn a_minimal_file_gets_the_defaults_and_bad_ones_say_why() {
        let dir = std::env::temp_dir().join(format!("structure-rmqtt-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(
            &path,
            "node_id = 2\nmqtt_listen = \"127.0.0.1:1884\"\ngrpc_listen = \"127.0.0.1:5364\"\n\
             peers = [\"1@127.0.0.1:5363\", \"2@127.0.0.1:5364\"]\n\
             keys_file = \"keys.jsonl\"\ndevices_file = \"/abs/devices.jsonl\"\n",
        )
        .unwrap();
        let config = NodeConfig::read(&path).unwrap();
        assert_eq!(config.keys_file, Some(dir.join("keys.jsonl")));
        assert_eq!(
            config.devices_file,
            Some(PathBuf::from("/abs/devices.jsonl"))
        );
        assert_eq!(config.topic_prefix, "structure");
        assert_eq!(
            (config.argon2_per_second, config.cache_capacity),
            (10, 10_000)
        );
        assert!(config.access_keys);
        assert_eq!(
            (
                config.max_subscriptions,
                config.max_retained_messages,
                config.max_retained_payload
            ),
            (1_000, 100_000, 65_536)
        );
        assert_eq!(
            (
                config.refusals_per_address_per_second,
                config.refusal_delay_ms
            ),
            (2, 1_000)
        );

        std::fs::write(&path, "node_id = 1\nmqtt = 1\n").unwrap();
        let err = NodeConfig::read(&path).unwrap_err();
        assert!(err.contains("unknown field `mqtt`"), "{err}");
        std::fs::write(
            &path,
            "node_id = 1\nmqtt_listen = \"127.0.0.1:1884\"\ngrpc_listen = \"127.0.0.1:5364\"\n\
             peers = [\"one@x\"]\nkeys_file = \"k\"\ndevices_file = \"d\"\n",
        )
        .unwrap();
        let err = NodeConfig::read(&path).unwrap_err();
        assert_eq!(err, "peer `one@x` is not `id@host:port`");
        std::fs::write(
            &path,
            "node_id = 1\nmqtt_listen = \"127.0.0.1:1884\"\ngrpc_listen = \"127.0.0.1:5364\"\n\
             keys_file = \"k\"\ndevices_file = \"d\"\nrefusal_delay_ms = 60000\n",
        )
        .unwrap();
        let err = NodeConfig::read(&path).unwrap_err();
        assert_eq!(err, "`refusal_delay_ms` is 60000, expected at most 10000");
        assert_eq!(config.takeover, TakeoverPolicy::Allow);
        assert_eq!((config.audit_file, config.takeover_limit), (None, 5));
        assert!(config.audit);
        std::fs::write(
            &path,
            "node_id = 1\nmqtt_listen = \"127.0.0.1:1884\"\ngrpc_listen = \"127.0.0.1:5364\"\n\
             keys_file = \"k\"\ndevices_file = \"d\"\naudit_file = \"audit.jsonl\"\n\
             takeover = \"same_key\"\ntakeover_limit = 2\naudit = false\n",
        )
        .unwrap();
        let config = NodeConfig::read(&path).unwrap();
        assert_eq!(config.audit_file, Some(dir.join("audit.jsonl")));
        assert!(!config.audit);
        assert_eq!(
            (config.takeover, config.takeover_limit),
            (TakeoverPolicy::SameKey, 2)
        );
        std::fs::write(
            &path,
            "node_id = 1\nmqtt_listen = \"127.0.0.1:1884\"\ngrpc_listen = \"127.0.0.1:5364\"\n\
             keys_file = \"k\"\ndevices_file = \"d\"\ntakeover = \"never\"\n",
        )
        .unwrap();
        let err = NodeConfig::read(&path).unwrap_err();
        assert!(
            err.contains("`never` is not `allow` or `same_key`"),
            "{err}"
        );
    }
}
