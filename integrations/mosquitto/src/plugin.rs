//! The plugin's logic, free of `unsafe`: decisions on CONNECT and ACL checks,
//! reloads of the keys and devices files, and revocation of live sessions.
//!
//! # Sessions
//!
//! A connection this plugin authenticated leaves a [`Session`] under its
//! client id (a device ID, so there are at most as many sessions as devices):
//! the key, the verifier that proved the secret, a keyed MAC of the password
//! (never the password) and the current [`Principal`]. ACL checks find the
//! principal from the connection's client id and username, which the broker
//! authenticated, so they keep working after DISCONNECT: the will, and
//! messages queued for an offline persistent session, are checked against
//! the same policy. A session ends only when a reload revokes it or another
//! connection authenticates with the same client id.
//!
//! # Reload
//!
//! A reload (SIGHUP, or `reload_interval` seeing a file change) reads the
//! files on a thread of its own, off the broker's: only a file whose stamp
//! changed is read, and only its lines not seen before are parsed
//! ([`FileSource::changes`]). The change set it gives, all or nothing, is
//! applied on the broker's thread at the next tick ([`Plugin::tick`]), at a
//! cost of what it names: the sessions of the keys and devices it changed are
//! re-derived without the secret ([`Principal::reauthorize`]), found through
//! an index of sessions by key and by device; a deleted or inactive key, a
//! changed verifier (rotated secret), a deleted device or a device now
//! outside the key's scope or application revokes the session, and the live
//! ones are disconnected. No other session depends on the change: every ACL
//! check (a delivery included) is decided from the records in force when it
//! happens. Mosquitto also checks the credentials of every client again on
//! SIGHUP: a CONNECT that repeats its session's client id, username and
//! password is answered from the session, without Argon2.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use blake2::digest::{FixedOutput, KeyInit, Update};
use structure_access::mqtt::{Decision, TopicRules};
use structure_access::{
    AccessKey, AuthError, Authenticator, DeviceId, KeyId, Principal, Secret, UnixTime,
    VerificationCache, Verifier,
};
use structure_access_common::audit::{Audit, Event, auth_reason, end_cause};
use structure_access_common::metrics::Metrics;
use structure_access_common::takeover::{TakeoverPolicy, Takeovers};
use subtle::ConstantTimeEq;

use crate::config::{
    ChangeSet, Config, ConfigError, FileError, FileSource, Records, Stamps, Unlisted, escape,
    excerpt, refusal_reason as reason, stamps, with_causes,
};
use crate::throttle::{CLIENT_LINES_PER_SECOND, LogBudget, Throttle, address_key};

/// What the broker is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse ("not authorised").
    Deny,
    /// Not this plugin's to decide (`MOSQ_ERR_PLUGIN_DEFER`): the next
    /// authentication source decides (only with `plugin_opt_defer_unknown`).
    Defer,
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

impl Access {
    /// The access as a word, for the log.
    pub fn word(self) -> &'static str {
        match self {
            Self::Read => "receive",
            Self::Write => "publish",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}

/// A connection, as the broker identifies it (the address of its client struct).
pub type ConnectionId = usize;

/// What the broker knows about a client: its client id, username and address,
/// each as the raw bytes it holds (or `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    /// The broker's client struct.
    pub connection: ConnectionId,
    /// The client id.
    pub id: Option<&'a [u8]>,
    /// The username of its CONNECT.
    pub username: Option<&'a [u8]>,
    /// Its network address.
    pub address: Option<&'a [u8]>,
}

impl Client<'_> {
    /// The address as shown in the log.
    fn address(&self) -> String {
        match self.address.map(std::str::from_utf8) {
            Some(Ok(address)) => excerpt(address),
            _ => "an unknown address".into(),
        }
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation.
    Info,
    /// A refusal or a revocation.
    Notice,
    /// A failed reload.
    Error,
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
    fn defer() -> Self {
        Self {
            verdict: Verdict::Defer,
            log: None,
        }
    }
}

/// What a reload did: lines for the log, and the client ids to disconnect.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Log lines, in order.
    pub log: Vec<(Level, String)>,
    /// Client ids of live connections whose session was revoked.
    pub kick: Vec<String>,
}

/// A connection this plugin authenticated (see the module docs).
#[derive(Debug)]
struct Session {
    /// The broker's client struct that authenticated last.
    connection: ConnectionId,
    /// Whether that connection is still up (no DISCONNECT seen).
    connected: bool,
    key: KeyId,
    /// The verifier that proved the secret: a rotation revokes the session.
    verifier: Verifier,
    /// Keyed MAC of the password.
    password: [u8; 32],
    /// The principal, or why a reload revoked it (kept until the next reload,
    /// so that Mosquitto's re-check and the offline session are refused
    /// without Argon2).
    principal: Result<Principal, String>,
}

#[derive(Debug)]
struct State {
    sessions: HashMap<DeviceId, Session>,
    /// The devices of the sessions of each key.
    by_key: HashMap<KeyId, HashSet<DeviceId>>,
    /// Sessions the last change set revoked: forgotten at the next.
    revoked: Vec<DeviceId>,
    /// The stamps of the files in force.
    stamps: Stamps,
    /// When the files' stamps were last compared (with `reload_interval`).
    last_check: Option<Instant>,
    /// Stamps of files that failed to load: not retried until they change.
    failed: Option<Stamps>,
    /// A reading of the files under way, off the broker's thread.
    reading: Option<Reading>,
    /// Whether the records follow the database now (the files, read at
    /// start while it could not be reached, are no longer read).
    database_in_force: bool,
    /// The keys that expired up to this time have had their sessions ended.
    expired_up_to: UnixTime,
    /// Takeovers per device in the last minute.
    takeovers: Takeovers,
}

/// A reading of the files on a thread of its own.
#[derive(Debug)]
struct Reading {
    done: Receiver<Result<ChangeSet, FileError>>,
    /// The files' stamps when it started.
    stamps: Stamps,
    /// A reload was asked for while it ran: read again once it is applied.
    again: bool,
    started: Instant,
}

impl State {
    fn index(&mut self, key: KeyId, device: DeviceId) {
        self.by_key.entry(key).or_default().insert(device);
    }

    fn unindex(&mut self, key: &KeyId, device: &DeviceId) {
        if let Some(devices) = self.by_key.get_mut(key) {
            devices.remove(device);
            if devices.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
}

/// The plugin's state: configuration, authenticator, the files in force and
/// the sessions.
pub struct Plugin {
    config: Config,
    auth: Authenticator,
    throttle: Throttle,
    /// The log lines clients cause (refusals, denials), bounded.
    lines: LogBudget,
    /// The audit trail.
    audit: Audit,
    /// The counters, published under `$SYS`.
    metrics: Metrics,
    /// When the counters were last published, and the values then.
    published: Mutex<(Option<Instant>, HashMap<String, u64>)>,
    mac: Blake2bMac<U32>,
    /// The records in force: read by every callback, changed only by a
    /// change set applied on the broker's thread. (Lock order: `state`,
    /// then `records`.)
    records: Arc<RwLock<Records>>,
    /// The files, read off the broker's thread (none: the records follow a
    /// database, and come from the files only if it was down at start).
    source: Option<Arc<Mutex<FileSource>>>,
    /// The events of the database the records follow, if they do.
    #[cfg(feature = "postgres")]
    database: Option<Mutex<std::sync::mpsc::Receiver<structure_access_common::postgres::Event>>>,
    state: Mutex<State>,
    /// The line saying what was loaded at start.
    loaded: String,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn text(bytes: Option<&[u8]>) -> Result<&str, &'static str> {
    let bytes = bytes.ok_or("missing")?;
    std::str::from_utf8(bytes).map_err(|_| "not UTF-8")
}

impl Plugin {
    /// Builds the plugin from its options and reads the files (or the
    /// database); refuses to start on any problem. `note` gets the lines to
    /// log while it starts (waiting for the database, serving the files
    /// meanwhile, rows skipped).
    pub fn from_options(
        options: &[(String, String)],
        note: &mut dyn FnMut(String),
    ) -> Result<Self, ConfigError> {
        Self::from_config(Config::from_options(options)?, note)
    }

    /// Builds the plugin from a configuration and reads the files (or the
    /// database).
    pub fn from_config(config: Config, note: &mut dyn FnMut(String)) -> Result<Self, ConfigError> {
        let mut auth = Authenticator::new(config.policy.clone()).with_pool_size(config.pool_size);
        if config.cache_capacity > 0 {
            let cache = VerificationCache::new(config.cache_capacity).map_err(|e| {
                ConfigError::BadOption {
                    name: "cache_capacity".into(),
                    reason: e.to_string(),
                }
            })?;
            auth = auth.with_cache(cache);
        }
        let base_rules =
            TopicRules::new(&config.topic_prefix).map_err(|e| ConfigError::BadOption {
                name: "topic_prefix".into(),
                reason: e.to_string(),
            })?;
        let mut mac_key = [0u8; 32];
        getrandom::fill(&mut mac_key).map_err(|e| ConfigError::BadOption {
            name: "keys_file".into(),
            reason: format!("no randomness for the session MAC key: {e}"),
        })?;
        let mac =
            Blake2bMac::<U32>::new_from_slice(&mac_key).map_err(|e| ConfigError::BadOption {
                name: "keys_file".into(),
                reason: format!("session MAC key: {e}"),
            })?;
        mac_key.fill(0);
        let before = structure_access_common::resident_bytes();
        let started = Instant::now();
        let opened = open_sources(&config, base_rules, note)?;
        let records = opened.records;
        let took = started.elapsed();
        let held = structure_access_common::resident_bytes()
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        let loaded = format!(
            "loaded {} access key(s) and {} device(s) {} in {:.2} s{}",
            records.key_count(),
            records.device_count(),
            opened.from,
            took.as_secs_f64(),
            held.map_or(String::new(), |bytes| format!(
                "; the process grew by {} MiB",
                bytes >> 20
            ))
        );
        let records = Arc::new(RwLock::new(records));
        #[cfg(feature = "postgres")]
        let database = match opened.database {
            Some((database, from)) => Some(Mutex::new(database.follow_on_thread(from).map_err(
                |e| ConfigError::BadOption {
                    name: "database_url".into(),
                    reason: format!("cannot start following the database: {e}"),
                },
            )?)),
            None => None,
        };
        let audit = match &config.audit_file {
            _ if !config.audit => Audit::off("mosquitto", None),
            Some(path) => {
                Audit::to_file(path, "mosquitto", None).map_err(|e| ConfigError::BadOption {
                    name: "audit_file".into(),
                    reason: format!(
                        "cannot open `{}` for appending: {e}",
                        escape(&path.display().to_string())
                    ),
                })?
            }
            None => Audit::to_log(crate::ffi::log_audit, "mosquitto", None),
        };
        let metrics = Metrics::new().map_err(|e| ConfigError::BadOption {
            name: "metrics".into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            audit,
            metrics,
            published: Mutex::new((None, HashMap::new())),
            throttle: Throttle::new(
                config.argon2_per_second,
                config.argon2_per_address_per_second,
            ),
            lines: LogBudget::new(CLIENT_LINES_PER_SECOND),
            auth,
            mac,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                by_key: HashMap::new(),
                revoked: Vec::new(),
                stamps: opened
                    .files
                    .as_ref()
                    .map_or((None, None), FileSource::stamps),
                last_check: None,
                failed: None,
                reading: None,
                database_in_force: false,
                expired_up_to: UnixTime::now(),
                takeovers: Takeovers::new(config.takeover_limit),
            }),
            records,
            source: opened.files.map(|files| Arc::new(Mutex::new(files))),
            #[cfg(feature = "postgres")]
            database,
            loaded,
            config,
        })
    }

    /// What was loaded at start, how long it took and how much memory it
    /// took, for the log.
    pub fn loaded(&self) -> &str {
        &self.loaded
    }

    /// Number of key records loaded.
    pub fn key_count(&self) -> usize {
        self.records().key_count()
    }

    /// Number of devices loaded.
    pub fn device_count(&self) -> usize {
        self.records().device_count()
    }

    fn records(&self) -> RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn stamps(&self) -> Stamps {
        match (&self.config.keys_file, &self.config.devices_file) {
            (Some(keys), Some(devices)) => stamps(keys, devices),
            _ => (None, None),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn password_mac(&self, password: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(password.as_bytes());
        mac.finalize_fixed().into()
    }

    /// Who is refused, for a log line: the device ID if valid, the key if
    /// known, the address always. Nothing else the client typed.
    fn refused(
        &self,
        loaded: &Records,
        client: &Client<'_>,
        (device, key): (Option<&DeviceId>, Option<&KeyId>),
        reason: &'static str,
        why: &str,
    ) -> Outcome {
        let address = client.address();
        let application = key.and_then(|k| loaded.key(k)).map(|r| *r.application());
        self.metrics.refused(reason);
        if reason == "takeover_refused" {
            self.metrics.takeovers_refused.inc();
        }
        self.audit.refused(&Event {
            event: "auth_refused",
            reason: Some(reason),
            device: device.map(DeviceId::as_str),
            key: key.map(KeyId::as_str),
            application: application.as_ref().map(|a| a.as_str()),
            address: Some(&address),
            ..Event::default()
        });
        let who = match (device, key) {
            (Some(d), Some(k)) => format!("device `{d}` with access key `{k}`"),
            (Some(d), None) => format!("device `{d}`"),
            (None, Some(k)) => format!("a client with access key `{k}`"),
            (None, None) => "a client".into(),
        };
        Outcome::deny(format!("refused {who} at {address}: {why}"))
    }

    /// The line to write to the broker's log for `outcome`, if any. Refusals
    /// and denials, which clients cause, are written within a budget
    /// ([`CLIENT_LINES_PER_SECOND`] a second) and counted past it; the count
    /// is given with the next one written.
    pub fn log_line(&self, outcome: &Outcome) -> Option<String> {
        let line = outcome.log.clone()?;
        match outcome.verdict {
            Verdict::Deny => self.lines.line(line),
            Verdict::Allow | Verdict::Defer => Some(line),
        }
    }

    /// The count of refusal and denial lines held back that no later line
    /// carried, once their second is over (called on every tick).
    pub fn held_back_lines(&self, now: Instant) -> Option<String> {
        self.lines.flush_at(now)
    }

    /// The counters to publish under `$SYS/broker/plugin/structure-access/`
    /// (path, value), once per `sys_interval` (called on every tick): all of
    /// them the first time, then those that changed.
    pub fn sys_updates(&self, now: Instant) -> Vec<(String, u64)> {
        let Some(interval) = self.config.sys_interval else {
            return Vec::new();
        };
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if published
            .0
            .is_some_and(|last| now.saturating_duration_since(last) < interval)
        {
            return Vec::new();
        }
        published.0 = Some(now);
        {
            let loaded = self.records();
            self.metrics
                .records(loaded.key_count(), loaded.device_count());
        }
        let mut changed = Vec::new();
        for (path, value) in self.metrics.samples() {
            if published.1.get(&path) != Some(&value) {
                published.1.insert(path.clone(), value);
                changed.push((path, value));
            }
        }
        changed
    }

    /// The counters (for tests and the `$SYS` topics).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// CONNECT: client id = device ID, username = key, password = secret.
    pub fn basic_auth(&self, client: Client<'_>, password: Option<&[u8]>) -> Outcome {
        let mut state = self.state();
        let loaded = &*self.records();
        let device_id = match text(client.id).map(str::parse::<DeviceId>) {
            Ok(Ok(id)) => Some(id),
            Ok(Err(_)) => None,
            Err(why) => {
                return self.refused(
                    loaded,
                    &client,
                    (None, None),
                    "invalid_client_id",
                    &format!("client id {why}"),
                );
            }
        };
        // A username that names no key may be anything the client typed, a
        // secret in the wrong field included: never repeat it.
        let named = text(client.username)
            .ok()
            .and_then(|name| name.parse::<KeyId>().ok());
        let key = named.filter(|key| loaded.key(key).is_some());
        let Some(key) = key else {
            if self.config.defer_unknown {
                return Outcome::defer();
            }
            let (reason, why) = match text(client.username) {
                Err(why) => ("not_an_access_key", format!("username {why}")),
                Ok(_) if named.is_some() => ("unknown_key", "unknown access key".into()),
                Ok(_) => (
                    "not_an_access_key",
                    "the username is not an access key".into(),
                ),
            };
            if let (Some(device), Some(named), Ok(password)) = (&device_id, &named, text(password))
            {
                // Run the same verification as for a known key of its shape, so
                // that the keys file cannot be probed by timing. (A username
                // that is no key id at all is refused by its public format.)
                let _ =
                    self.authenticate(loaded, named, None, password, &Unlisted(*device), &client);
            }
            return self.refused(loaded, &client, (device_id.as_ref(), None), reason, &why);
        };
        let Some(device_id) = device_id else {
            return self.refused(
                loaded,
                &client,
                (None, Some(&key)),
                "invalid_client_id",
                "the client id is not a valid device ID",
            );
        };
        let Ok(password) = text(password) else {
            return self.refused(
                loaded,
                &client,
                (Some(&device_id), Some(&key)),
                "malformed_secret",
                "password missing or not UTF-8",
            );
        };
        let mac = self.password_mac(password);
        // The credentials of this client id's session (Mosquitto's re-check
        // of connected clients on reload, or a reconnect): answered from the
        // session, which every reload re-derives, without Argon2.
        if let Some(session) = state.sessions.get_mut(&device_id)
            && session.key == key
            && bool::from(session.password.ct_eq(&mac))
        {
            return match &session.principal {
                Ok(principal) => {
                    let application = *principal.application();
                    // Mosquitto checks every live connection again after
                    // its own reload (SIGHUP): that is no new CONNECT.
                    let checked_again =
                        session.connected && session.connection == client.connection;
                    let taken_over = session.connected && session.connection != client.connection;
                    session.connection = client.connection;
                    session.connected = true;
                    if taken_over {
                        self.taken_over(&mut state, &client, device_id, key, key);
                    }
                    if !checked_again {
                        self.accepted(&client, &device_id, &key, application.as_str());
                    }
                    Outcome::allow(format!(
                        "device `{device_id}` authenticated with access key `{key}` (session)"
                    ))
                }
                Err(why) => {
                    let why = format!("revoked: {why}");
                    let reason = end_cause(&why);
                    self.refused(
                        loaded,
                        &client,
                        (Some(&device_id), Some(&key)),
                        reason,
                        &why,
                    )
                }
            };
        }
        let record = loaded.key(&key);
        let Some(device) = loaded.device(device_id.as_str()) else {
            // The same verification as for a known device, so that the
            // devices file cannot be probed by timing.
            let _ = self.authenticate(
                loaded,
                &key,
                record,
                password,
                &Unlisted(device_id),
                &client,
            );
            return self.refused(
                loaded,
                &client,
                (Some(&device_id), Some(&key)),
                "unknown_device",
                "unknown device",
            );
        };
        match self.authenticate(loaded, &key, record, password, &device, &client) {
            Ok(principal) => {
                // A live session of the device on another connection: a
                // takeover, refused under `same_key` if by another key.
                let live = state
                    .sessions
                    .get(&device_id)
                    .filter(|s| {
                        s.connected && s.connection != client.connection && s.principal.is_ok()
                    })
                    .map(|s| s.key);
                if let Some(previous) = live {
                    if self.config.takeover == TakeoverPolicy::SameKey && previous != key {
                        return self.refused(
                            loaded,
                            &client,
                            (Some(&device_id), Some(&key)),
                            "takeover_refused",
                            &format!(
                                "the device has a live session with another access key \
                                 (`{previous}`), and takeover is same_key"
                            ),
                        );
                    }
                    self.taken_over(&mut state, &client, device_id, key, previous);
                }
                self.accepted(&client, &device_id, &key, principal.application().as_ref());
                if let Some(record) = record {
                    let replaced = state.sessions.insert(
                        device_id,
                        Session {
                            connection: client.connection,
                            connected: true,
                            key,
                            verifier: record.verifier().clone(),
                            password: mac,
                            principal: Ok(principal),
                        },
                    );
                    if let Some(old) = replaced {
                        state.unindex(&old.key, &device_id);
                    }
                    state.index(key, device_id);
                }
                Outcome::allow(format!(
                    "device `{device_id}` authenticated with access key `{key}`"
                ))
            }
            Err(e) => self.refused(
                loaded,
                &client,
                (Some(&device_id), Some(&key)),
                auth_reason(&e),
                &loaded.refusal_reason(&e),
            ),
        }
    }

    /// An accepted authentication, for the audit trail.
    fn accepted(&self, client: &Client<'_>, device: &DeviceId, key: &KeyId, application: &str) {
        self.metrics.accepted();
        let address = client.address();
        self.audit.write(&Event {
            event: "auth_accepted",
            device: Some(device.as_str()),
            key: Some(key.as_str()),
            application: Some(application),
            address: Some(&address),
            ..Event::default()
        });
    }

    /// A takeover of `device`'s live session (of `previous`'s key) by
    /// `key`: counted, written, and said to be a conflicting client id past
    /// the limit.
    fn taken_over(
        &self,
        state: &mut State,
        client: &Client<'_>,
        device: DeviceId,
        key: KeyId,
        previous: KeyId,
    ) {
        let (takeovers, conflict) = state.takeovers.count(device, Instant::now());
        self.metrics.taken_over.inc();
        if conflict {
            self.metrics.conflicting.inc();
        }
        self.audit.takeover(
            (device.as_str(), key.as_str(), previous.as_str()),
            &client.address(),
            takeovers,
            conflict,
        );
    }

    /// Authenticates with the key's record, if any; Argon2 runs only within
    /// the budget of the broker and of the client's address (the fast scheme
    /// and cache hits never ask for it).
    fn authenticate(
        &self,
        loaded: &Records,
        key: &KeyId,
        record: Option<&AccessKey>,
        password: &str,
        device: &impl structure_access::Device,
        client: &Client<'_>,
    ) -> Result<Principal, AuthError> {
        let secret = Secret::parse_any(password)?;
        // The budget's key: the address, or its /64 network for IPv6.
        let address = client
            .address
            .and_then(|a| std::str::from_utf8(a).ok())
            .map(|a| a.parse().map_or_else(|_| a.to_owned(), address_key));
        self.auth
            .authenticate_with(key, record, &secret, device, || {
                loaded.permit_argon2(|| {
                    let permitted = self.throttle.permit(address.as_deref());
                    if permitted {
                        self.metrics.argon2_verified.inc();
                    } else {
                        self.metrics.argon2_over_budget.inc();
                    }
                    permitted
                })
            })
    }

    /// An ACL check for `topic` (a topic name, or a filter for subscribe),
    /// from a connection identified by its client id and username.
    pub fn acl_check(&self, client: Client<'_>, access: Access, topic: Option<&[u8]>) -> Outcome {
        let state = self.state();
        let session = text(client.id)
            .ok()
            .and_then(|id| id.parse::<DeviceId>().ok())
            .and_then(|id| state.sessions.get(&id).map(|session| (id, session)))
            .filter(|(_, session)| {
                text(client.username).is_ok_and(|name| name == session.key.as_str())
            });
        let Some((device_id, session)) = session else {
            // Not a connection this plugin authenticated: an operator's
            // client (a user of another plugin or the password file) named
            // by `sys_readers` may read the broker's `$SYS` topics.
            let operator = text(client.username)
                .is_ok_and(|name| self.config.sys_readers.iter().any(|r| r == name));
            if operator
                && matches!(access, Access::Read | Access::Subscribe)
                && topic.is_some_and(|t| t.starts_with(b"$SYS/"))
            {
                return Outcome::allow(None);
            }
            if self.config.defer_unknown {
                return Outcome::defer();
            }
            return Outcome::deny(format!(
                "denied a connection at {} that this plugin did not authenticate: {}",
                client.address(),
                access.word()
            ));
        };
        let principal = match &session.principal {
            Ok(principal) => principal,
            Err(why) => {
                return Outcome::deny(format!(
                    "denied device `{device_id}` (access key `{}`) at {}: {}: session revoked: {why}",
                    session.key,
                    client.address(),
                    access.word()
                ));
            }
        };
        let topic = match text(topic) {
            Ok(topic) => topic,
            Err(why) => {
                return Outcome::deny(format!(
                    "denied device `{}` (access key `{}`) at {}: {}: topic {why}",
                    principal.device_id(),
                    session.key,
                    client.address(),
                    access.word()
                ));
            }
        };
        let loaded = &*self.records();
        let directory = |id: &str| loaded.device(id);
        let rules = loaded.rules();
        let decision = match access {
            Access::Unsubscribe => return Outcome::allow(None),
            Access::Write => principal.may_publish(rules, topic, &directory),
            Access::Subscribe => principal.may_subscribe(rules, topic, &directory),
            Access::Read => principal
                .may_receive(rules, topic, &directory)
                .map(|ok| if ok { Decision::Allow } else { Decision::Deny }),
        };
        let denied = |why: String| {
            Outcome::deny(format!(
                "denied device `{}` (access key `{}`) at {}: {} `{}`{why}",
                principal.device_id(),
                session.key,
                client.address(),
                access.word(),
                excerpt(topic),
            ))
        };
        if access == Access::Read {
            if matches!(decision, Ok(Decision::Allow | Decision::Filter)) {
                self.metrics.delivered.inc();
            } else {
                self.metrics.dropped.inc();
            }
        }
        match decision {
            Ok(Decision::Allow | Decision::Filter) => Outcome::allow(None),
            // Per-message filtering of a wildcard subscription: expected, not news.
            Ok(_) if access == Access::Read => Outcome {
                verdict: Verdict::Deny,
                log: None,
            },
            Ok(_) => denied(String::new()),
            Err(e) => denied(format!(": {}", escape(&with_causes(&e)))),
        }
    }

    /// The connection is gone. Its session stays (the will and the queue of
    /// an offline persistent session are still checked against it), marked
    /// offline unless another connection took its client id over.
    pub fn disconnect(&self, client: Client<'_>) {
        let Some(id) = text(client.id)
            .ok()
            .and_then(|id| id.parse::<DeviceId>().ok())
        else {
            return;
        };
        if let Some(session) = self.state().sessions.get_mut(&id)
            && session.connection == client.connection
        {
            session.connected = false;
        }
    }

    /// SIGHUP: starts reading the files off the broker's thread (or, if a
    /// reading is under way, reads them again once it is applied). What they
    /// changed is applied by a later [`Plugin::tick`].
    pub fn reload(&self) {
        let mut state = self.state();
        state.last_check = Some(Instant::now());
        match &mut state.reading {
            Some(reading) => reading.again = true,
            None => self.start_reading(&mut state),
        }
    }

    fn start_reading(&self, state: &mut State) {
        // Records following a database are not read from the files.
        let Some(source) = self.source.clone().filter(|_| !state.database_in_force) else {
            return;
        };
        let (done, result) = std::sync::mpsc::channel();
        let records = self.records.clone();
        let spawned = std::thread::Builder::new()
            .name("structure-reload".into())
            .spawn(move || {
                let changes = {
                    let records = records.read().unwrap_or_else(PoisonError::into_inner);
                    let mut source = source.lock().unwrap_or_else(PoisonError::into_inner);
                    source.changes(&records)
                };
                let _ = done.send(changes);
            });
        if spawned.is_ok() {
            state.reading = Some(Reading {
                done: result,
                stamps: self.stamps(),
                again: false,
                started: Instant::now(),
            });
        }
    }

    /// Called on every tick (about every 100 ms): applies what a reading of
    /// the files found, when it is done; with `reload_interval`, starts one
    /// when a file's stamp changed (reading only the files' metadata, at most
    /// once per interval).
    pub fn tick(&self, now: Instant) -> Option<Reload> {
        let mut state = self.state();
        let mut expired = self.expire(&mut state, UnixTime::now());
        if let Some(line) = self.audit.flush() {
            expired
                .get_or_insert_with(Reload::default)
                .log
                .push((Level::Error, line));
        }
        let changed = self.tick_sources(&mut state, now);
        match (expired, changed) {
            (Some(mut expired), Some(mut changed)) => {
                expired.log.append(&mut changed.log);
                expired.kick.append(&mut changed.kick);
                Some(expired)
            }
            (expired, changed) => expired.or(changed),
        }
    }

    /// Ends the sessions of the keys that expired since the last look, up to
    /// `now` (their records are unchanged: the time is).
    fn expire(&self, state: &mut State, now: UnixTime) -> Option<Reload> {
        if now <= state.expired_up_to {
            return None;
        }
        let applied = self.records().expired_as_applied(state.expired_up_to, now);
        state.expired_up_to = now;
        if applied.is_empty() {
            return None;
        }
        forget_revoked(state);
        let loaded = &*self.records();
        let (mut report, looked_at, revoked) = self.reevaluate(state, loaded, &applied, now);
        self.audit.write(&Event {
            event: "keys_expired",
            keys: Some(applied.keys.len()),
            revoked: Some(revoked),
            ..Event::default()
        });
        report.log.insert(
            0,
            (
                Level::Info,
                format!(
                    "{} access key(s) expired; {looked_at} session(s) re-evaluated, {revoked} \
                     revoked, of {}",
                    applied.keys.len(),
                    state.sessions.len()
                ),
            ),
        );
        Some(report)
    }

    /// [`Plugin::tick`]'s sources: the database's events, the files.
    fn tick_sources(&self, state: &mut State, now: Instant) -> Option<Reload> {
        #[cfg(feature = "postgres")]
        if let Some(report) = self.database_events(state) {
            return Some(report);
        }
        if let Some(reading) = &state.reading {
            return match reading.done.try_recv() {
                Err(TryRecvError::Empty) => None,
                Ok(result) => Some(self.finish(state, result)),
                Err(TryRecvError::Disconnected) => {
                    state.reading = None;
                    Some(Reload {
                        log: vec![(
                            Level::Error,
                            "reload failed (its reading stopped), the previous keys and devices stay in force".into(),
                        )],
                        kick: Vec::new(),
                    })
                }
            };
        }
        let interval = self.config.reload_interval?;
        if state
            .last_check
            .is_some_and(|last| now.saturating_duration_since(last) < interval)
        {
            return None;
        }
        state.last_check = Some(now);
        let stamps = self.stamps();
        if stamps != state.stamps && Some(stamps) != state.failed {
            self.start_reading(state);
        }
        None
    }

    /// Whether a reading of the files is under way (or done and not yet
    /// applied).
    pub fn reading(&self) -> bool {
        self.state().reading.is_some()
    }

    /// Reloads now and waits for it (SIGHUP and the ticks that apply it, in
    /// one call: for tests and tools).
    pub fn reload_and_wait(&self) -> Reload {
        self.reload();
        loop {
            if let Some(report) = self.tick(Instant::now()) {
                return report;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Applies a reading's result on the broker's thread.
    fn finish(&self, state: &mut State, result: Result<ChangeSet, FileError>) -> Reload {
        let Some(reading) = state.reading.take() else {
            return Reload::default();
        };
        let read_in = reading.started.elapsed();
        let report = match result {
            Ok(changes) => {
                state.failed = None;
                state.stamps = reading.stamps;
                let from = format!(
                    "the files read in {:.1} ms off the broker's thread",
                    read_in.as_secs_f64() * 1e3
                );
                self.apply(state, changes, &from)
            }
            Err(e) => {
                let first = state.failed != Some(reading.stamps);
                state.failed = Some(reading.stamps);
                let mut report = Reload::default();
                // The same broken files are reported once.
                if first {
                    report.log.push((
                        Level::Error,
                        format!("reload failed, the previous keys and devices stay in force: {e}"),
                    ));
                }
                report
            }
        };
        if reading.again {
            self.start_reading(state);
        }
        report
    }

    /// Applies what the database gave since the last tick, in order.
    #[cfg(feature = "postgres")]
    fn database_events(&self, state: &mut State) -> Option<Reload> {
        use structure_access_common::postgres::Event;
        let events = self.database.as_ref()?;
        let events = events.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report: Option<Reload> = None;
        while let Ok(event) = events.try_recv() {
            let mut add = |mut more: Reload| match &mut report {
                Some(report) => {
                    report.log.append(&mut more.log);
                    report.kick.append(&mut more.kick);
                }
                None => report = Some(more),
            };
            match event {
                Event::Changes {
                    changes,
                    position,
                    skipped,
                    entries,
                } => {
                    state.database_in_force = true;
                    let mut more = Reload::default();
                    more.log.extend(
                        skipped
                            .iter()
                            .map(|s| (Level::Error, format!("the database: {s}"))),
                    );
                    if !changes.is_empty() {
                        let from = format!(
                            "{entries} change(s) of the database, up to its position {position}"
                        );
                        let mut applied = self.apply(state, changes, &from);
                        more.log.append(&mut applied.log);
                        more.kick.append(&mut applied.kick);
                    }
                    add(more);
                }
                Event::Snapshot {
                    records: fresh,
                    position,
                    skipped,
                } => {
                    state.database_in_force = true;
                    let mut more = Reload::default();
                    more.log.extend(
                        skipped
                            .iter()
                            .map(|s| (Level::Error, format!("the database: {s}"))),
                    );
                    let changes = self.records().changes_to(&fresh);
                    drop(fresh);
                    let from = format!("a snapshot of the database at its position {position}");
                    let mut applied = self.apply(state, changes, &from);
                    more.log.append(&mut applied.log);
                    more.kick.append(&mut applied.kick);
                    add(more);
                }
                Event::Lost(e) => add(Reload {
                    log: vec![(
                        Level::Error,
                        format!("{e}; the records in force stay, reconnecting"),
                    )],
                    kick: Vec::new(),
                }),
                Event::Back(after) => add(Reload {
                    log: vec![(
                        Level::Notice,
                        format!(
                            "the database is reachable again (after {:.1} s); catching up",
                            after.as_secs_f64()
                        ),
                    )],
                    kick: Vec::new(),
                }),
                _ => {}
            }
        }
        report
    }

    /// Applies `changes` (what a reading found, or the database gave), then
    /// re-evaluates the sessions of the keys and devices it changed, and
    /// only those.
    fn apply(&self, state: &mut State, changes: ChangeSet, from: &str) -> Reload {
        let started = Instant::now();
        forget_revoked(state);
        let named = changes.len();
        let applied = self
            .records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(changes);
        let loaded = &*self.records();
        let (mut report, looked_at, revoked) =
            self.reevaluate(state, loaded, &applied, UnixTime::now());
        self.metrics
            .change_sets
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .records(loaded.key_count(), loaded.device_count());
        self.audit
            .records_applied(from, applied.keys.len(), applied.devices.len(), revoked);
        report.log.insert(
            0,
            (
                Level::Info,
                format!(
                    "reloaded: {} access key(s) and {} device(s) changed ({named} record(s) named, \
                     {from}, applied in {:.1} ms); {looked_at} session(s) re-evaluated, {revoked} \
                     revoked, of {}; {} access keys and {} devices in force",
                    applied.keys.len(),
                    applied.devices.len(),
                    started.elapsed().as_secs_f64() * 1e3,
                    state.sessions.len(),
                    loaded.key_count(),
                    loaded.device_count(),
                ),
            ),
        );
        report
    }

    /// Re-evaluates, at `now`, the sessions of the keys and devices `applied`
    /// names, and only those; says what to log and whom to disconnect, how
    /// many sessions it looked at and how many it revoked.
    fn reevaluate(
        &self,
        state: &mut State,
        loaded: &Records,
        applied: &structure_access_common::Applied,
        now: UnixTime,
    ) -> (Reload, usize, usize) {
        let mut report = Reload::default();
        let mut affected: HashSet<DeviceId> = applied
            .devices
            .iter()
            .filter(|id| state.sessions.contains_key(*id))
            .copied()
            .collect();
        for (key, _) in &applied.keys {
            if let Some(devices) = state.by_key.get(key) {
                affected.extend(devices.iter().copied());
            }
        }
        let mut revoked = 0;
        for id in &affected {
            let Some(session) = state.sessions.get_mut(id) else {
                continue;
            };
            if session.principal.is_err() {
                continue;
            }
            match evaluate(loaded, id, session, now) {
                Ok(principal) => session.principal = Ok(principal),
                Err(why) => {
                    revoked += 1;
                    self.metrics.ended(end_cause(&why));
                    self.audit.write(&Event {
                        event: "session_ended",
                        reason: Some(end_cause(&why)),
                        device: Some(id.as_str()),
                        key: Some(session.key.as_str()),
                        ..Event::default()
                    });
                    if session.connected {
                        report.log.push((
                            Level::Notice,
                            format!(
                                "disconnecting device `{id}` (access key `{}`): {why}",
                                session.key
                            ),
                        ));
                        report.kick.push(id.to_string());
                    } else {
                        report.log.push((
                            Level::Notice,
                            format!(
                                "revoked the offline session of device `{id}` (access key `{}`): {why}",
                                session.key
                            ),
                        ));
                    }
                    session.connected = false;
                    session.principal = Err(why);
                    state.revoked.push(*id);
                }
            }
        }
        (report, affected.len(), revoked)
    }

    /// The number of sessions (live or offline, revoked included).
    pub fn session_count(&self) -> usize {
        self.state().sessions.len()
    }
}

/// Forgets the sessions the previous change set (or expiry) revoked: they
/// have been refused by now.
fn forget_revoked(state: &mut State) {
    for id in std::mem::take(&mut state.revoked) {
        if let Some(session) = state.sessions.get(&id)
            && session.principal.is_err()
        {
            let key = session.key;
            state.sessions.remove(&id);
            state.unindex(&key, &id);
        }
    }
}

/// A session's principal under the new records, or why it is revoked.
fn evaluate(
    loaded: &Records,
    id: &DeviceId,
    session: &Session,
    now: UnixTime,
) -> Result<Principal, String> {
    let record = loaded
        .key(&session.key)
        .ok_or("the access key was deleted")?;
    if *record.verifier() != session.verifier {
        return Err("the access key's secret was rotated (new verifier)".into());
    }
    let device = loaded.device(id.as_str()).ok_or("the device was deleted")?;
    Principal::reauthorize(record, &device, now).map_err(|e| reason(&e))
}

/// Where the records came from at start.
struct Opened {
    records: Records,
    /// The files, if the records are theirs (or the database was down).
    files: Option<FileSource>,
    /// The database to follow, from its snapshot's position (`None`: from
    /// the files in force).
    #[cfg(feature = "postgres")]
    database: Option<(structure_access_common::postgres::Database, Option<i64>)>,
    /// For the log: where from.
    from: &'static str,
}

/// The files' source and records, if the files are configured.
fn open_files(
    config: &Config,
    base_rules: TopicRules,
) -> Result<Option<(FileSource, Records)>, ConfigError> {
    let (Some(keys), Some(devices)) = (&config.keys_file, &config.devices_file) else {
        return Ok(None);
    };
    Ok(Some(FileSource::open(
        keys.clone(),
        devices.clone(),
        config.policy.clone(),
        base_rules,
    )?))
}

/// Reads the records at start: from the database when one is configured (a
/// snapshot; if it cannot be reached, from the files if they are configured,
/// saying so, or waiting for it, saying so, never serving no records in
/// silence), else from the files.
fn open_sources(
    config: &Config,
    base_rules: TopicRules,
    note: &mut dyn FnMut(String),
) -> Result<Opened, ConfigError> {
    #[cfg(not(feature = "postgres"))]
    let _ = note;
    #[cfg(feature = "postgres")]
    if let Some(url) = &config.database_url {
        use structure_access_common::postgres::Database;
        let database =
            Database::new(&url.0, config.policy.clone(), base_rules.clone()).map_err(|e| {
                ConfigError::BadOption {
                    name: "database_url".into(),
                    reason: e.to_string(),
                }
            })?;
        let mut waiting = false;
        loop {
            match database.snapshot_blocking(Duration::from_secs(10)) {
                Ok((records, position, skipped)) => {
                    for skipped in skipped {
                        note(format!("the database: {skipped}"));
                    }
                    return Ok(Opened {
                        records,
                        files: None,
                        database: Some((database, Some(position))),
                        from: "from the database",
                    });
                }
                Err(e) => {
                    if let Some((files, records)) = open_files(config, base_rules.clone())? {
                        note(format!(
                            "{e}: serving the records of the files until the database can be \
                             reached (then its records replace them)"
                        ));
                        return Ok(Opened {
                            records,
                            files: Some(files),
                            database: Some((database, None)),
                            from: "from the files (the database cannot be reached)",
                        });
                    }
                    if !waiting {
                        note(format!(
                            "{e}: waiting for the database (no records file is configured to \
                             start from); the broker accepts no connection meanwhile"
                        ));
                        waiting = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
    match open_files(config, base_rules)? {
        Some((files, records)) => Ok(Opened {
            records,
            files: Some(files),
            #[cfg(feature = "postgres")]
            database: None,
            from: "from the files",
        }),
        None => Err(ConfigError::NoSource),
    }
}
