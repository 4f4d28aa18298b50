//! The RMQTT plugin: CONNECT through the core's `Authenticator` (Argon2 on a
//! blocking thread, within a budget), PUBLISH and SUBSCRIBE through the topic
//! policy, every delivery and every will decided by the policy, and
//! revocation of live and offline sessions on any node after a reload.
//!
//! # Deny by default
//!
//! Every delivery to a client is decided by `may_receive` under the records
//! in force, whatever subscription it came through: one answered `Allow` or
//! `Filter` on this node, one carried over from another node or an earlier
//! connection (RMQTT moves a session's subscriptions and queue without its
//! subscribe hook), a shared or a retained one. A session's subscriptions
//! are also decided again once on this node, at its first delivery, and the
//! ones it may no longer hold are removed.
//!
//! # Sessions
//!
//! The plugin keeps, for each session it authenticated, the key and the
//! verifier that proved its secret ([`crate::clients`]). A CONNECT verified
//! under records that changed meanwhile is decided again under the new ones
//! before it is accepted; a reload marks every session that no longer
//! stands, refuses all its checks, and disconnects it until it is gone.
//!
//! # Wills
//!
//! RMQTT publishes a will without its publish hook, and a handler of its
//! message-publish hook cannot drop one. A will is decided when it is
//! published, under the records then in force, on the node of the session
//! that left it (whose verifier this node knows): one it may not publish is
//! made inert (not retained, and expired since 1970, so that every node
//! drops it before delivery). Each delivery of a will is decided again on
//! the subscriber's node, as the publisher's and as the subscriber's.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::plugin::{PackageInfo, Plugin};
use rmqtt::types::{
    AuthResult, From, FromType, Id, Publish, PublishAclResult, SubscribeAclResult, Unsubscribe,
};
use structure_access::mqtt::Decision;
use structure_access::{
    Authenticator, DeviceId, HashPolicy, KeyId, Secret, UnixTime, VerificationCache, Verifier,
};
use structure_access_common::audit::{Audit, Event, auth_reason, end_cause};
use structure_access_common::metrics::Metrics;
use structure_access_common::takeover::{TakeoverPolicy, Takeovers};
use structure_access_common::throttle::{
    CLIENT_LINES_PER_SECOND, LogBudget, Tarpit, Throttle, address_key,
};
use structure_access_common::{KeyChanged, Unlisted, escape, excerpt};

use crate::clients::Clients;
use crate::config::NodeConfig;
use crate::state::Store;
use structure_access_common::ChangeSet;
use structure_access_common::postgres::Database;

/// The plugin's name in RMQTT's plugin manager.
pub const NAME: &str = "structure-access";

/// The hooks' priority: before any other plugin's.
const PRIORITY: u32 = 10;

/// The longest subscription filter accepted, in bytes: the device topics
/// are short, custom filters on file are at most 1 024 bytes, and RMQTT
/// keeps every filter a session holds.
pub const MAX_FILTER_BYTES: usize = 4_096;

/// Most refusals held at once: a tenth of the 1 000 handshakes RMQTT runs at
/// once per listener, so that held refusals never crowd out devices.
const MAX_HELD_REFUSALS: usize = 100;

/// Most refusals of one client address held at once, so that one address
/// cannot take every place.
const MAX_HELD_PER_ADDRESS: usize = 10;

/// How long a revoked session is disconnected again and again before the
/// plugin gives up on it (saying so): far beyond a handshake.
const KICK_FOR: Duration = Duration::from_secs(30);

/// An entry whose session RMQTT no longer has is dropped once this old: a
/// CONNECT is entered before RMQTT registers its session.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// The gRPC message type of what one node tells the others after its records
/// changed (the cluster plugin's messages are of type 98).
const RECORDS_CHANGED: rmqtt::grpc::MessageType = 0x7374_6163;

/// What a node tells the others about its records: the moment it starts
/// reloading its files (they start reloading theirs: each node decides the
/// deliveries to its own sessions, so each must have the new records soon),
/// and once its change set is applied, which keys and devices it ended (each
/// ends its own sessions of them, through its own index, publishing none of
/// their wills, whether or not its own files changed).
#[derive(serde::Serialize, serde::Deserialize)]
enum PeerMessage {
    /// Reload your files now.
    Reload,
    /// End your sessions of these keys and devices (the reason is the
    /// sender's).
    Ended {
        keys: Vec<(KeyId, String)>,
        devices: Vec<(DeviceId, String)>,
    },
}

/// What the hooks share.
struct Shared {
    scx: ServerContext,
    store: Arc<Store>,
    /// Held through a reload (reading and applying): one at a time.
    reloading: tokio::sync::Mutex<()>,
    auth: Arc<Authenticator>,
    throttle: Arc<Throttle>,
    /// Refusals past their address's budget are answered late.
    tarpit: Tarpit,
    /// The log lines clients cause (refusals, denials), bounded.
    lines: LogBudget,
    /// The sessions this node authenticated.
    clients: Mutex<Clients>,
    /// Most subscriptions one session may hold.
    max_subscriptions: usize,
    /// The audit trail.
    audit: Audit,
    /// What a CONNECT for a device with a live session may do.
    takeover: TakeoverPolicy,
    /// Takeovers per device in the last minute, through this node.
    takeovers: Mutex<Takeovers>,
    /// The counters (served on `metrics_listen`).
    metrics: Metrics,
}

/// A refused CONNECT: its reason code (the audit trail's), its words (the
/// log's, escaped), and who, as far as it is known and valid.
struct Refusal {
    reason: &'static str,
    why: String,
    device: Option<DeviceId>,
    key: Option<KeyId>,
}

/// An accepted CONNECT, and the live session it takes over, if any.
struct Accepted {
    who: String,
    device: DeviceId,
    key: KeyId,
    application: structure_access::ApplicationId,
    /// The key of the session taken over.
    takes_over: Option<String>,
}

impl Shared {
    /// A warning a client caused (a refusal, a denial): written within the
    /// budget of such lines, counted past it.
    fn warn(&self, line: String) {
        if let Some(line) = self.lines.line(line) {
            log::warn!("{line}");
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters a session whose secret was proven under the records of
    /// `verified_under`, deciding it again under the records in force (a
    /// reload may have come meanwhile), its will's topic included. Under the
    /// same lock as a reload's swap of the records: every session is either
    /// entered before a reload looks at the entries, or decided under the
    /// reload's records.
    fn admit(
        &self,
        session: &Id,
        (key, device, verifier): (KeyId, DeviceId, Verifier),
        verified_under: u64,
        will: Option<&str>,
    ) -> Result<structure_access::ApplicationId, (&'static str, String)> {
        let mut clients = self.clients();
        let loaded = self.store.read();
        let changed = self.store.generation() != verified_under;
        let principal = clients
            .admit(&loaded, session.clone(), key, device, verifier)
            .map_err(|why| {
                let cause = end_cause(&why);
                if changed {
                    (
                        cause,
                        format!("{why} (while its secret was being verified)"),
                    )
                } else {
                    (cause, why)
                }
            })?;
        if let Some(topic) = will {
            let directory = |id: &str| loaded.device(id);
            if principal.may_publish(loaded.rules(), topic, &directory) != Ok(Decision::Allow) {
                clients.remove(session);
                return Err((
                    "will_denied",
                    format!(
                        "its will's topic `{}` is not one it may publish to",
                        excerpt(topic)
                    ),
                ));
            }
        }
        Ok(*principal.application())
    }

    /// Whether `publish` may be delivered to `session`: the subscriber may
    /// receive its topic, and a will's publisher may (still) publish there.
    /// Also whether the session's subscriptions are to be decided again (at
    /// its first delivery on this node).
    fn may_deliver(&self, session: &Id, from: &From, topic: &str) -> (bool, bool) {
        let mut clients = self.clients();
        let loaded = self.store.read();
        let directory = |id: &str| loaded.device(id);
        let review = clients
            .get_mut(session)
            .is_some_and(|c| !std::mem::replace(&mut c.reviewed, true));
        let receive = clients.decide(&loaded, session, |p| {
            p.may_receive(loaded.rules(), topic, &directory) == Ok(true)
        });
        let deliver = receive
            && (!matches!(from.typ(), FromType::LastWill)
                || clients.decide(&loaded, &from.id, |p| {
                    p.may_publish(loaded.rules(), topic, &directory) == Ok(Decision::Allow)
                }));
        (deliver, review)
    }
}

/// The plugin, as RMQTT's plugin manager holds it.
pub struct AccessKeyPlugin {
    shared: Arc<Shared>,
    register: Box<dyn Register>,
    reload_interval: Option<Duration>,
    /// The database to follow, from its snapshot's position (`None`: from
    /// the files in force), until the plugin starts.
    database: Option<(Database, Option<i64>)>,
    /// The metrics listener, bound at registration, served once started.
    metrics_listener: Option<std::net::TcpListener>,
}

/// Reads the records at start: from the database when one is configured (a
/// snapshot; if it cannot be reached, from the files if they are configured,
/// saying so, or waiting for it, saying so: the node does not listen
/// meanwhile, never serving no records in silence), else from the files.
async fn open_store(
    config: &NodeConfig,
    rules: structure_access::mqtt::TopicRules,
    policy: HashPolicy,
) -> Result<(Store, Option<(Database, Option<i64>)>), String> {
    let files = || match (&config.keys_file, &config.devices_file) {
        (Some(keys), Some(devices)) => Some(Store::open(
            keys.clone(),
            devices.clone(),
            rules.clone(),
            policy.clone(),
        )),
        _ => None,
    };
    let Some(url) = &config.database_url else {
        let store = files().ok_or("no records: give `keys_file` and `devices_file`")??;
        return Ok((store, None));
    };
    let database = Database::new(&url.0, policy.clone(), rules.clone())
        .map_err(|e| format!("`database_url`: {e}"))?;
    let mut waiting = false;
    loop {
        let snapshot = tokio::time::timeout(Duration::from_secs(10), database.snapshot())
            .await
            .unwrap_or_else(|_| {
                Err(structure_access_common::postgres::DbError::Unreachable(
                    "no answer within 10 s".into(),
                ))
            });
        match snapshot {
            Ok((records, position, skipped)) => {
                for skipped in skipped {
                    log::error!("{NAME}: the database: {skipped}");
                }
                return Ok((Store::with(records, None), Some((database, Some(position)))));
            }
            Err(e) => {
                if let Some(store) = files() {
                    log::warn!(
                        "{NAME}: {e}: serving the records of the files until the database can \
                         be reached (then its records replace them)"
                    );
                    return Ok((store?, Some((database, None))));
                }
                if !waiting {
                    log::warn!(
                        "{NAME}: {e}: waiting for the database (no records file is configured \
                         to start from); the node accepts no connection meanwhile"
                    );
                    waiting = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Registers and starts the plugin on `scx`, reading the files now: an error
/// in them refuses to start.
pub async fn register(scx: &ServerContext, config: &NodeConfig) -> Result<(), String> {
    let rules = structure_access::mqtt::TopicRules::new(&config.topic_prefix)
        .map_err(|e| format!("`topic_prefix`: {e}"))?;
    let policy = HashPolicy::default();
    let before = structure_access_common::resident_bytes();
    let started = std::time::Instant::now();
    let (store, database) = open_store(config, rules, policy.clone()).await?;
    let from = match &database {
        None => "from the files",
        Some((_, Some(_))) => "from the database",
        Some((_, None)) => "from the files (the database cannot be reached)",
    };
    let mut auth = Authenticator::new(policy);
    if config.cache_capacity > 0 {
        let cache = VerificationCache::new(config.cache_capacity).map_err(|e| e.to_string())?;
        auth = auth.with_cache(cache);
    }
    {
        let records = store.read();
        let grown = structure_access_common::resident_bytes()
            .zip(before)
            .map_or(String::new(), |(after, before)| {
                format!(
                    "; the process grew by {} MiB",
                    after.saturating_sub(before) >> 20
                )
            });
        log::info!(
            "{NAME}: loaded {} access key(s) and {} device(s) {from} in {:.2} s{grown}",
            records.key_count(),
            records.device_count(),
            started.elapsed().as_secs_f64()
        );
    }
    let node = Some(config.node_id);
    let audit = match &config.audit_file {
        _ if !config.audit => Audit::off("rmqtt", node),
        Some(path) => Audit::to_file(path, "rmqtt", node).map_err(|e| {
            format!(
                "`audit_file`: cannot open `{}` for appending: {e}",
                escape(&path.display().to_string())
            )
        })?,
        None => Audit::to_log(|line| log::info!(target: "audit", "{line}"), "rmqtt", node),
    };
    let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
    let metrics_listener = match config.metrics_listen {
        None => None,
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("`metrics_listen` {addr}: {e}"))?;
            if let Some(exposure) = crate::config::grpc_exposure(&addr) {
                log::warn!(
                    "{NAME}: `metrics_listen` is on {exposure} ({addr}): the counters name no \
                     secret, but serve them to your monitoring network only"
                );
            }
            Some(listener)
        }
    };
    let shared = Arc::new(Shared {
        metrics,
        audit,
        takeover: config.takeover,
        takeovers: Mutex::new(Takeovers::new(config.takeover_limit)),
        scx: scx.clone(),
        store: Arc::new(store),
        reloading: tokio::sync::Mutex::new(()),
        auth: Arc::new(auth),
        throttle: Arc::new(Throttle::new(
            config.argon2_per_second,
            config.argon2_per_address_per_second,
        )),
        tarpit: Tarpit::new(
            config.refusals_per_address_per_second,
            Duration::from_millis(config.refusal_delay_ms),
            MAX_HELD_REFUSALS,
            MAX_HELD_PER_ADDRESS,
        ),
        lines: LogBudget::new(CLIENT_LINES_PER_SECOND),
        clients: Mutex::new(Clients::default()),
        max_subscriptions: config.max_subscriptions,
    });
    let reload_interval =
        (config.reload_interval > 0).then(|| Duration::from_secs(config.reload_interval));
    let register = scx.extends.hook_mgr().register();
    let plugin = Arc::new(Mutex::new(Some(AccessKeyPlugin {
        shared,
        register,
        reload_interval,
        database,
        metrics_listener,
    })));
    scx.plugins
        .register(
            NAME,
            true,
            true,
            move || -> rmqtt::plugin::DynPluginResult {
                let plugin = plugin.clone();
                Box::pin(async move {
                    let plugin = plugin
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take()
                        .ok_or_else(|| anyhow::anyhow!("{NAME} can be started once"))?;
                    Ok(Box::new(plugin) as rmqtt::plugin::DynPlugin)
                })
            },
        )
        .await
        .map_err(|e| e.to_string())
}

impl PackageInfo for AccessKeyPlugin {
    fn name(&self) -> &str {
        NAME
    }
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
    fn descr(&self) -> Option<&str> {
        Some(env!("CARGO_PKG_DESCRIPTION"))
    }
}

#[async_trait]
impl Plugin for AccessKeyPlugin {
    async fn init(&mut self) -> rmqtt::Result<()> {
        for typ in [
            Type::ClientAuthenticate,
            Type::ClientConnack,
            Type::ClientConnected,
            Type::ClientSubscribeCheckAcl,
            Type::MessagePublishCheckAcl,
            Type::MessagePublish,
            Type::MessageExpiryCheck,
            Type::SessionTerminated,
            Type::GrpcMessageReceived,
        ] {
            self.register
                .add_priority(typ, PRIORITY, Box::new(Hooks(self.shared.clone())))
                .await;
        }
        // Shared subscriptions, each message to one member of its group
        // among those of the topic's application.
        *self.shared.scx.extends.shared_subscription_mut().await = Box::new(
            crate::shared_subscription::ApplicationGroups::new(self.shared.store.clone()),
        );
        Ok(())
    }

    async fn get_config(&self) -> rmqtt::Result<serde_json::Value> {
        Ok(serde_json::json!({ "reload_interval": self.reload_interval.map(|d| d.as_secs()) }))
    }

    async fn start(&mut self) -> rmqtt::Result<()> {
        self.register.start().await;
        if let Some((database, from)) = self.database.take() {
            let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                database
                    .follow(from, move |event| {
                        let _ = events.send(event);
                    })
                    .await;
            });
            let shared = self.shared.clone();
            tokio::spawn(async move {
                while let Some(event) = received.recv().await {
                    database_event(&shared, event).await;
                }
            });
        }
        spawn_reloaders(self.shared.clone(), self.reload_interval);
        spawn_log_flusher(self.shared.clone());
        spawn_sweeper(self.shared.clone());
        spawn_expirer(self.shared.clone());
        if let Some(listener) = self.metrics_listener.take() {
            spawn_metrics(self.shared.clone(), listener);
        }
        Ok(())
    }

    async fn stop(&mut self) -> rmqtt::Result<bool> {
        // Stopping it would let every client through: refuse.
        Ok(false)
    }
}

/// Serves the counters as Prometheus text on `GET /metrics`.
fn spawn_metrics(shared: Arc<Shared>, listener: std::net::TcpListener) {
    use axum::http::header::CONTENT_TYPE;
    tokio::spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                log::error!("{NAME}: the metrics listener cannot be served: {e}");
                return;
            }
        };
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let shared = shared.clone();
                async move {
                    {
                        let records = shared.store.read();
                        shared
                            .metrics
                            .records(records.key_count(), records.device_count());
                    }
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        shared.metrics.text(),
                    )
                }
            }),
        );
        if let Err(e) = axum::serve(listener, app).await {
            log::error!("{NAME}: the metrics listener stopped: {e}");
        }
    });
}

/// Writes, once a second, the count of client lines held back that no later
/// line carried.
fn spawn_log_flusher(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticks.tick().await;
            if let Some(line) = shared.lines.flush() {
                log::warn!("{NAME}: {line}");
            }
            if let Some(line) = shared.audit.flush() {
                log::error!("{NAME}: {line}");
            }
        }
    });
}

/// Ends, within a quarter of a second of its expiry, this node's sessions of
/// every key that expires (each node does so for its own: each holds the
/// records). The records do not change: the time does.
fn spawn_expirer(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut up_to = UnixTime::now();
        let mut ticks = tokio::time::interval(Duration::from_millis(250));
        loop {
            ticks.tick().await;
            let now = UnixTime::now();
            if now <= up_to {
                continue;
            }
            // Not while a change set is applied: one look at a time.
            let _one_at_a_time = shared.reloading.lock().await;
            let (keys, doomed, looked_at, sessions) = {
                let mut clients = shared.clients();
                let records = shared.store.read();
                let applied = records.expired_as_applied(up_to, now);
                if applied.is_empty() {
                    (0, Vec::new(), 0, 0)
                } else {
                    let (doomed, looked_at) = clients.apply(&records, &applied);
                    (applied.keys.len(), doomed, looked_at, clients.len())
                }
            };
            up_to = now;
            if keys == 0 {
                continue;
            }
            shared.audit.write(&Event {
                event: "keys_expired",
                keys: Some(keys),
                revoked: Some(doomed.len()),
                ..Event::default()
            });
            log::info!(
                "{NAME}: {keys} access key(s) expired; {looked_at} session(s) on this node \
                 re-evaluated, {} revoked, of {sessions}",
                doomed.len()
            );
            for (id, why) in doomed {
                tokio::spawn(end_session(shared.clone(), id, why));
            }
        }
    });
}

/// Drops, every 10 s, the entries of sessions RMQTT no longer has (a session
/// taken over from another node, a CONNECT that failed after it was
/// accepted): what the plugin keeps stays within the sessions that exist.
fn spawn_sweeper(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(10));
        loop {
            ticks.tick().await;
            let entries = shared.clients().sessions();
            let cluster = shared.scx.extends.shared().await;
            let mut gone = Vec::new();
            for (id, since, _) in entries {
                let exists = cluster
                    .entry(id.clone())
                    .session()
                    .is_some_and(|s| s.id == id);
                if !exists && since.elapsed() > STALE_AFTER {
                    gone.push(id);
                }
            }
            drop(cluster);
            if !gone.is_empty() {
                let mut clients = shared.clients();
                for id in &gone {
                    clients.remove(id);
                }
            }
        }
    });
}

/// Reloads on SIGHUP, and when the files change with `interval`.
fn spawn_reloaders(shared: Arc<Shared>, interval: Option<Duration>) {
    let on_signal = shared.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            log::error!("{NAME}: cannot listen for SIGHUP; reload by signal is off");
            return;
        };
        while hangups.recv().await.is_some() {
            tokio::spawn(tell_other_nodes(on_signal.clone(), PeerMessage::Reload));
            reload(&on_signal, "SIGHUP", true).await;
        }
    });
    if let Some(interval) = interval {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                let store = shared.store.clone();
                let changed = tokio::task::spawn_blocking(move || store.changed_on_disk()).await;
                if changed.unwrap_or(false) {
                    tokio::spawn(tell_other_nodes(shared.clone(), PeerMessage::Reload));
                    reload(&shared, "a change of the files", true).await;
                }
            }
        });
    }
}

/// Reloads the files: reads what changed in them on a blocking thread, all
/// or nothing, applies that change set, and ends the sessions of this node
/// that it revokes (re-evaluating only the sessions of the keys and devices
/// it changed). With `tell`, then tells the other nodes which keys and
/// devices it removed or deactivated: they end their own sessions of them.
async fn reload(shared: &Arc<Shared>, cause: &str, tell: bool) {
    let _one_at_a_time = shared.reloading.lock().await;
    let started = std::time::Instant::now();
    let store = shared.store.clone();
    let read = tokio::task::spawn_blocking(move || store.changes()).await;
    let changes = match read {
        Ok(Ok(changes)) => changes,
        Ok(Err(e)) => {
            log::error!("{NAME}: reload after {cause} refused, the previous records stay: {e}");
            return;
        }
        Err(_) => {
            log::error!("{NAME}: reload after {cause} failed, the previous records stay");
            return;
        }
    };
    let read_in = started.elapsed();
    let what = format!(
        "after {cause}: the files read again in {:.1} ms",
        read_in.as_secs_f64() * 1e3
    );
    apply_changes(shared, changes, &what, tell);
}

/// Applies a change set (of the files, or of the database), ends the
/// sessions of this node it revokes (re-evaluating only the sessions of the
/// keys and devices it changed), logs what it did (`what`: where it came
/// from), and with `tell` tells the other nodes which keys and devices it
/// removed or deactivated.
fn apply_changes(shared: &Arc<Shared>, changes: ChangeSet, what: &str, tell: bool) {
    let named = changes.len();
    let started = Instant::now();
    // The change and the look at the sessions it concerns, under the
    // sessions' lock: a CONNECT verified meanwhile is entered either before
    // (and looked at here) or after (and decided under the new records).
    let (applied, doomed, looked_at, sessions, told) = {
        let mut clients = shared.clients();
        let applied = shared.store.apply(changes);
        let records = shared.store.read();
        let (doomed, looked_at) = clients.apply(&records, &applied);
        let told = tell.then(|| PeerMessage::Ended {
            keys: applied
                .keys
                .iter()
                .filter_map(|(key, kind)| match (kind, records.key(key)) {
                    (KeyChanged::Removed, _) => Some((*key, "the access key was deleted".into())),
                    (_, Some(record)) if !record.status().is_active() => {
                        Some((*key, "the access key is inactive".into()))
                    }
                    _ => None,
                })
                .collect(),
            devices: applied
                .devices
                .iter()
                .filter(|device| records.device(device.as_str()).is_none())
                .map(|device| (*device, "the device was deleted".into()))
                .collect(),
        });
        (applied, doomed, looked_at, clients.len(), told)
    };
    shared
        .metrics
        .change_sets
        .observe(started.elapsed().as_secs_f64());
    shared.audit.records_applied(
        what,
        applied.keys.len(),
        applied.devices.len(),
        doomed.len(),
    );
    let records = shared.store.read();
    log::info!(
        "{NAME}: reloaded {what}: {} access key(s) and {} device(s) changed ({named} record(s) \
         named); {looked_at} session(s) on this node re-evaluated, {} revoked, of {sessions}; {} \
         access key(s) and {} device(s) in force",
        applied.keys.len(),
        applied.devices.len(),
        doomed.len(),
        records.key_count(),
        records.device_count(),
    );
    drop(records);
    for (id, why) in doomed {
        tokio::spawn(end_session(shared.clone(), id, why));
    }
    if let Some(told @ PeerMessage::Ended { .. }) = told
        && !applied.is_empty()
    {
        tokio::spawn(tell_other_nodes(shared.clone(), told));
    }
}

/// What following the database gives: change sets applied in order, each
/// node on its own (no other node is told: each follows the database), and
/// the outages, said once each.
async fn database_event(shared: &Arc<Shared>, event: structure_access_common::postgres::Event) {
    use structure_access_common::postgres::Event;
    match event {
        Event::Changes {
            changes,
            position,
            skipped,
            entries,
        } => {
            // From now on the records follow the database, not the files.
            shared.store.retire_files();
            for skipped in skipped {
                log::error!("{NAME}: the database: {skipped}");
            }
            if !changes.is_empty() {
                let _one_at_a_time = shared.reloading.lock().await;
                let what = format!(
                    "from {entries} change(s) of the database, up to its position {position}"
                );
                apply_changes(shared, changes, &what, false);
            }
        }
        Event::Snapshot {
            records: fresh,
            position,
            skipped,
        } => {
            shared.store.retire_files();
            for skipped in skipped {
                log::error!("{NAME}: the database: {skipped}");
            }
            let _one_at_a_time = shared.reloading.lock().await;
            let changes = shared.store.read().changes_to(&fresh);
            drop(fresh);
            let what = format!("from a snapshot of the database at its position {position}");
            apply_changes(shared, changes, &what, false);
        }
        Event::Lost(e) => {
            log::error!("{NAME}: {e}; the records in force stay, reconnecting");
        }
        Event::Back(after) => {
            log::warn!(
                "{NAME}: the database is reachable again (after {:.1} s); catching up",
                after.as_secs_f64()
            );
        }
        _ => {}
    }
}

/// Tells every other node `told` (see [`PeerMessage`]).
async fn tell_other_nodes(shared: Arc<Shared>, told: PeerMessage) {
    let Ok(message) = serde_json::to_vec(&told) else {
        return;
    };
    let peers = shared.scx.extends.shared().await.get_grpc_clients();
    let sends = peers.iter().map(|(node, (_, client))| {
        let message = message.clone();
        async move {
            let sent = rmqtt::grpc::MessageSender::new(
                client.clone(),
                RECORDS_CHANGED,
                rmqtt::grpc::Message::Data(message),
                Some(Duration::from_secs(5)),
            )
            .send()
            .await;
            if !matches!(sent, Ok(rmqtt::grpc::MessageReply::Success)) {
                log::warn!(
                    "{NAME}: could not tell node {node} that the records change: it follows at \
                     its own next reload"
                );
            }
        }
    });
    futures::future::join_all(sends).await;
}

/// Another node ended these keys and devices: its word on this node's
/// sessions of them.
async fn ended_elsewhere(
    shared: Arc<Shared>,
    keys: Vec<(KeyId, String)>,
    devices: Vec<(DeviceId, String)>,
) {
    let ended: Vec<(Id, String)> = {
        let mut clients = shared.clients();
        let mut ended = Vec::new();
        for (key, why) in &keys {
            ended.extend(clients.of_key(key).into_iter().map(|id| (id, why.clone())));
        }
        for (device, why) in &devices {
            ended.extend(
                clients
                    .of_device(device)
                    .into_iter()
                    .map(|id| (id, why.clone())),
            );
        }
        ended.retain(|(id, why)| clients.mark_revoked(id, why));
        ended
    };
    log::info!(
        "{NAME}: another node's records ended {} access key(s) and {} device(s); {} session(s) \
         of them ended here",
        keys.len(),
        devices.len(),
        ended.len()
    );
    for (id, why) in ended {
        tokio::spawn(end_session(shared.clone(), id, why));
    }
}

/// Disconnects the session `id` (live or offline, on any node), discarding
/// it with its subscriptions and queue, again and again until it is gone: a
/// kick can fail while the session is locked (a CONNECT of the same client
/// id under way), and a session accepted just before a reload may not be
/// registered yet (its connection then disconnects it, see
/// [`Parameter::ClientConnected`]).
async fn end_session(shared: Arc<Shared>, id: Id, why: String) {
    shared.metrics.ended(end_cause(&why));
    shared.audit.write(&Event {
        event: "session_ended",
        reason: Some(end_cause(&why)),
        device: id
            .client_id
            .parse::<DeviceId>()
            .is_ok()
            .then_some(&*id.client_id),
        key: id
            .username_ref()
            .parse::<KeyId>()
            .is_ok()
            .then_some(id.username_ref()),
        ..Event::default()
    });
    let start = Instant::now();
    // Tried again promptly: a session being connected holds its entry's
    // lock for a moment, and a revoked session must not linger past it.
    let mut pause = Duration::from_millis(10);
    loop {
        if kick(&shared, &id).await {
            log::warn!(
                "{NAME}: disconnected device `{}` (access key `{}`) on node {}: {why}",
                escape(&id.client_id),
                escape(id.username_ref()),
                id.node()
            );
            return;
        }
        if start.elapsed() > KICK_FOR {
            log::error!(
                "{NAME}: could not disconnect device `{}` on node {} within {} s: {why}",
                escape(&id.client_id),
                id.node(),
                KICK_FOR.as_secs()
            );
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// One attempt at ending the session `id`; whether it is gone.
async fn kick(shared: &Shared, id: &Id) -> bool {
    let cluster = shared.scx.extends.shared().await;
    let entry = cluster.entry(id.clone());
    let this_node = id.node_id == shared.scx.node.id();
    if this_node {
        // Gone, or not registered yet (then its connection ends it), or
        // replaced by a newer session of the device: nothing to end.
        if entry.session().is_none_or(|s| s.id != *id) {
            return true;
        }
        let Ok(mut locked) = entry.try_lock().await else {
            return false;
        };
        if locked.session().is_none_or(|s| s.id != *id) {
            return true;
        }
        locked.kick(true, true, true).await.is_ok()
    } else {
        if let Ok(mut locked) = entry.try_lock().await {
            let _ = locked.kick(true, true, true).await;
        }
        // Gone once the cluster no longer shows this very session.
        cluster
            .session_status(&id.client_id)
            .await
            .is_none_or(|status| status.id != *id)
    }
}

/// Decides again, once, the subscriptions a session holds on this node
/// (carried over by RMQTT from another node or an earlier connection without
/// the subscribe hook), and removes the ones it may not hold.
async fn review(shared: Arc<Shared>, id: Id) {
    let cluster = shared.scx.extends.shared().await;
    let entry = cluster.entry(id.clone());
    let Some(session) = entry.session().filter(|s| s.id == id) else {
        return;
    };
    let Ok(subscriptions) = session.subscriptions().await else {
        return;
    };
    let held: Vec<_> = subscriptions
        .read()
        .await
        .iter()
        .map(|(filter, opts)| (filter.clone(), opts.shared_group().cloned()))
        .collect();
    let denied: Vec<_> = {
        let mut clients = shared.clients();
        let loaded = shared.store.read();
        let directory = |device: &str| loaded.device(device);
        held.into_iter()
            .filter(|(filter, _)| {
                !clients.decide(&loaded, &id, |p| {
                    matches!(
                        p.may_subscribe(loaded.rules(), filter, &directory),
                        Ok(Decision::Allow | Decision::Filter)
                    )
                })
            })
            .collect()
    };
    for (topic_filter, shared_group) in denied {
        let unsubscribe = Unsubscribe {
            topic_filter,
            shared_group,
        };
        if entry.unsubscribe(&unsubscribe).await.is_ok() {
            shared.warn(format!(
                "{NAME}: removed the subscription `{}` of device `{}` (access key `{}`): not one \
                 it may hold",
                excerpt(&unsubscribe.topic_filter),
                escape(&id.client_id),
                escape(id.username_ref())
            ));
        }
    }
}

/// Makes a will that may not be published inert: not retained, and expired
/// since 1970, so that every node's expiry check drops it before delivery
/// (RMQTT keeps the original will when a handler drops it).
fn inert(will: &Publish) -> Publish {
    let mut will = will.clone();
    will.retain = false;
    let mut properties = will.properties.clone().unwrap_or_default();
    properties.message_expiry_interval = std::num::NonZeroU32::new(1);
    will.properties = Some(properties);
    will.create_time = Some(0);
    will
}

/// The hook handler.
struct Hooks(Arc<Shared>);

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let shared = &self.0;
        match param {
            Parameter::ClientAuthenticate(connect) => {
                let result = authenticate(shared, connect).await;
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::ClientConnack(connect, reason) => {
                if !reason.success() {
                    shared.clients().remove(connect.id());
                }
                (true, acc)
            }
            Parameter::ClientConnected(session) => {
                // Revoked before RMQTT registered it: disconnected now.
                if let Some(why) = shared.clients().connected(&session.id) {
                    tokio::spawn(end_session(shared.clone(), session.id.clone(), why));
                }
                (true, acc)
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let result = subscribe_acl(shared, session, subscribe).await;
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let allowed = {
                    let mut clients = shared.clients();
                    let loaded = shared.store.read();
                    let directory = |id: &str| loaded.device(id);
                    clients.decide(&loaded, &session.id, |p| {
                        p.may_publish(loaded.rules(), &publish.topic, &directory)
                            == Ok(Decision::Allow)
                    })
                };
                let result = if allowed {
                    PublishAclResult::allow()
                } else {
                    shared.warn(format!(
                        "{NAME}: denied device `{}` (access key `{}`): publish `{}`",
                        escape(&session.id.client_id),
                        escape(session.id.username_ref()),
                        excerpt(&publish.topic)
                    ));
                    PublishAclResult::rejected(false, None)
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            Parameter::MessagePublish(_, from, publish)
                if matches!(from.typ(), FromType::LastWill) =>
            {
                let why = {
                    let mut clients = shared.clients();
                    let loaded = shared.store.read();
                    let directory = |id: &str| loaded.device(id);
                    match clients.refusal(&loaded, &from.id) {
                        Some(why) => Some(why),
                        None => (!clients.decide(&loaded, &from.id, |p| {
                            p.may_publish(loaded.rules(), &publish.topic, &directory)
                                == Ok(Decision::Allow)
                        }))
                        .then(|| "its topic is not one it may publish to".to_owned()),
                    }
                };
                log::debug!("{NAME}: will of {:?}: {why:?}", from.id);
                match why {
                    None => (true, acc),
                    Some(why) => {
                        shared.warn(format!(
                            "{NAME}: the will of device `{}` (access key `{}`) on `{}` is not \
                             published: {}",
                            escape(&from.id.client_id),
                            escape(from.id.username_ref()),
                            excerpt(&publish.topic),
                            escape(&why)
                        ));
                        (false, Some(HookResult::Publish(inert(publish))))
                    }
                }
            }
            Parameter::MessageExpiryCheck(session, from, publish) => {
                let (deliver, review_now) = shared.may_deliver(&session.id, from, &publish.topic);
                if deliver {
                    shared.metrics.delivered.inc();
                } else {
                    shared.metrics.dropped.inc();
                }
                if review_now {
                    tokio::spawn(review(shared.clone(), session.id.clone()));
                }
                if deliver {
                    (true, acc)
                } else {
                    // This one delivery is dropped; nothing else is.
                    (false, Some(HookResult::MessageExpiry))
                }
            }
            Parameter::SessionTerminated(session, _reason) => {
                shared.clients().remove(&session.id);
                (true, acc)
            }
            Parameter::GrpcMessageReceived(typ, rmqtt::grpc::Message::Data(data))
                if *typ == RECORDS_CHANGED =>
            {
                let reply = match serde_json::from_slice::<PeerMessage>(data) {
                    Ok(PeerMessage::Reload) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            reload(&shared, "another node's reload", false).await;
                        });
                        rmqtt::grpc::MessageReply::Success
                    }
                    Ok(PeerMessage::Ended { keys, devices }) => {
                        tokio::spawn(ended_elsewhere(shared.clone(), keys, devices));
                        rmqtt::grpc::MessageReply::Success
                    }
                    Err(_) => rmqtt::grpc::MessageReply::Error("not a records change".into()),
                };
                (false, Some(HookResult::GrpcMessageReply(Ok(reply))))
            }
            _ => (true, acc),
        }
    }
}

/// SUBSCRIBE: the topic policy, within the bounds of a session (its number
/// of subscriptions, the length of a filter).
async fn subscribe_acl(
    shared: &Arc<Shared>,
    session: &rmqtt::session::Session,
    subscribe: &rmqtt::types::Subscribe,
) -> SubscribeAclResult {
    let filter = &subscribe.topic_filter;
    let refuse = |why: String| {
        shared.warn(format!(
            "{NAME}: denied device `{}` (access key `{}`): subscribe `{}`{why}",
            escape(&session.id.client_id),
            escape(session.id.username_ref()),
            excerpt(filter)
        ));
        SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
    };
    if filter.len() > MAX_FILTER_BYTES {
        return refuse(format!(": longer than {MAX_FILTER_BYTES} bytes"));
    }
    if let Ok(held) = session.subscriptions().await {
        let held = held.read().await;
        if held.len() >= shared.max_subscriptions && !held.contains_key(filter) {
            return refuse(format!(
                ": it holds {} subscriptions already, the most a session may",
                held.len()
            ));
        }
    }
    let mut why = None;
    let mut clients = shared.clients();
    let loaded = shared.store.read();
    let directory = |id: &str| loaded.device(id);
    let allowed = clients.decide(&loaded, &session.id, |p| {
        match p.may_subscribe(loaded.rules(), filter, &directory) {
            Ok(Decision::Allow | Decision::Filter) => true,
            Ok(_) => false,
            Err(e) => {
                why = Some(format!(": {}", escape(&e.to_string())));
                false
            }
        }
    });
    if allowed {
        SubscribeAclResult::new_success(subscribe.opts.qos(), None)
    } else {
        refuse(why.unwrap_or_default())
    }
}

/// The topic of the CONNECT's will, if it has one.
fn will_topic(connect: &rmqtt::types::ConnectInfo) -> Option<&str> {
    Some(match connect.last_will()? {
        rmqtt::types::LastWill::V3(will) => &will.topic,
        rmqtt::types::LastWill::V5(will) => &will.topic,
    })
}

/// CONNECT: client id = device ID, username = key, password = secret. A
/// refusal is logged with the client's address and, past the address's budget
/// of refusals, held before it is answered (for every reason alike).
async fn authenticate(shared: &Arc<Shared>, connect: &rmqtt::types::ConnectInfo) -> AuthResult {
    let ip = connect.id().remote_addr.map(|a| a.ip());
    // The budgets' key: the address, or its /64 network for IPv6.
    let key = ip.map(address_key);
    let address = connect
        .id()
        .remote_addr
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    match verdict(shared, connect, key.clone()).await {
        Ok(accepted) => {
            log::debug!("{NAME}: {} authenticated", accepted.who);
            shared.metrics.accepted();
            if let Some(previous) = &accepted.takes_over {
                let (takeovers, conflict) = shared
                    .takeovers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .count(accepted.device, Instant::now());
                shared.metrics.taken_over.inc();
                if conflict {
                    shared.metrics.conflicting.inc();
                }
                shared.audit.takeover(
                    (accepted.device.as_str(), accepted.key.as_str(), previous),
                    &address,
                    takeovers,
                    conflict,
                );
            }
            shared.audit.write(&Event {
                event: "auth_accepted",
                device: Some(accepted.device.as_str()),
                key: Some(accepted.key.as_str()),
                application: Some(accepted.application.as_str()),
                address: Some(&address),
                ..Event::default()
            });
            AuthResult::Allow(false, None)
        }
        Err(refusal) => {
            shared.metrics.refused(refusal.reason);
            if refusal.reason == "takeover_refused" {
                shared.metrics.takeovers_refused.inc();
            }
            // The key only if it is on file: an unknown one is only text
            // the client typed.
            let on_file = refusal
                .key
                .and_then(|k| shared.store.read().key(&k).map(|r| (k, *r.application())));
            shared.audit.refused(&Event {
                event: "auth_refused",
                reason: Some(refusal.reason),
                device: refusal.device.as_ref().map(DeviceId::as_str),
                key: on_file.as_ref().map(|(k, _)| k.as_str()),
                application: on_file.as_ref().map(|(_, a)| a.as_str()),
                address: Some(&address),
                ..Event::default()
            });
            let why = refusal.why;
            let shown = ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
            shared.warn(format!("{NAME}: refused a client at {shown}: {why}"));
            if let Some(held) = shared.tarpit.hold(key.as_deref()) {
                tokio::time::sleep(held.delay()).await;
            }
            AuthResult::NotAuthorized
        }
    }
}

/// Who the CONNECT authenticates, or why it is refused (escaped for the log).
/// Runs the core's `Authenticator`, on a blocking thread whenever Argon2 may
/// run, and asks the budget (of the node and of the client's address, keyed
/// by `budget_key`) before any Argon2; then looks for a live session of the
/// device in the cluster (a takeover, refused under `same_key` with another
/// key), and enters the session.
async fn verdict(
    shared: &Arc<Shared>,
    connect: &rmqtt::types::ConnectInfo,
    budget_key: Option<String>,
) -> Result<Accepted, Refusal> {
    let valid_device = connect.client_id().parse::<DeviceId>().ok();
    let refuse = |reason, why: &str, key| Refusal {
        reason,
        why: why.to_owned(),
        device: valid_device,
        key,
    };
    let username = connect
        .username()
        .ok_or_else(|| refuse("not_an_access_key", "no username", None))?;
    let Ok(key) = username.parse::<KeyId>() else {
        // It may be anything the client typed, a secret included: not repeated.
        return Err(refuse(
            "not_an_access_key",
            "the username is not an access key",
            None,
        ));
    };
    let password = connect
        .password()
        .and_then(|p| std::str::from_utf8(p).ok())
        .ok_or_else(|| {
            refuse(
                "malformed_secret",
                "password missing or not UTF-8",
                Some(key),
            )
        })?;
    // The error's detail (length, offending position) is the password's:
    // only its kind is logged.
    let secret = Secret::parse_any(password)
        .map_err(|_| refuse("malformed_secret", "malformed secret", Some(key)))?;
    let Some(device_id) = valid_device else {
        return Err(refuse(
            "invalid_client_id",
            "the client id is not a device ID",
            Some(key),
        ));
    };
    let generation = shared.store.generation();
    let (auth, throttle) = (shared.auth.clone(), shared.throttle.clone());
    let metrics = shared.metrics.clone();
    let permit = move |argon2_on_file: bool| {
        move || {
            if !argon2_on_file {
                return false;
            }
            let permitted = throttle.permit(budget_key.as_deref());
            if permitted {
                metrics.argon2_verified.inc();
            } else {
                metrics.argon2_over_budget.inc();
            }
            permitted
        }
    };
    // Argon2 may run: on a blocking thread, with what it needs taken out of
    // the records (their lock is not held across it). Otherwise inline.
    // (With no key costing Argon2 on file it never runs: what would is
    // refused at once.)
    let slow = {
        let records = shared.store.read();
        let slow = records.argon2_on_file()
            && (shared.auth.policy().expected_scheme(&key).is_slow()
                || records.key(&key).is_some_and(|r| r.verifier().is_slow()));
        if slow {
            Some((
                records.key_shared(&key),
                records
                    .device(device_id.as_str())
                    .and_then(|d| d.to_record()),
                records.argon2_on_file(),
            ))
        } else {
            None
        }
    };
    let (result, verifier, known_key, known_device) = match slow {
        Some((record, device, argon2_on_file)) => {
            let permit = permit(argon2_on_file);
            tokio::task::spawn_blocking(move || {
                verify(
                    &auth,
                    &key,
                    record.as_deref(),
                    &secret,
                    device.as_ref(),
                    device_id,
                    permit,
                )
            })
            .await
            .map_err(|_| refuse("other", "internal error", Some(key)))?
        }
        None => {
            let records = shared.store.read();
            let permit = permit(records.argon2_on_file());
            let device = records.device(device_id.as_str());
            verify(
                &auth,
                &key,
                records.key(&key),
                &secret,
                device.as_ref(),
                device_id,
                permit,
            )
        }
    };
    let who = if known_key {
        format!("device `{device_id}` with access key `{key}`")
    } else {
        format!("device `{device_id}`")
    };
    let refused = |reason, why: String| Refusal {
        reason,
        why: format!("{who}: {why}"),
        device: Some(device_id),
        key: Some(key),
    };
    match (result, verifier) {
        (Ok(_), Some(verifier)) => {
            let takes_over = live_session(shared, connect.id()).await;
            if let Some(previous) = &takes_over
                && shared.takeover == TakeoverPolicy::SameKey
                && previous.as_str() != key.as_str()
            {
                return Err(refused(
                    "takeover_refused",
                    format!(
                        "the device has a live session with another access key (`{}`), and \
                         takeover is same_key",
                        escape(previous)
                    ),
                ));
            }
            let application = shared
                .admit(
                    connect.id(),
                    (key, device_id, verifier),
                    generation,
                    will_topic(connect),
                )
                .map_err(|(reason, why)| refused(reason, why))?;
            Ok(Accepted {
                who,
                device: device_id,
                key,
                application,
                takes_over,
            })
        }
        (Ok(_), None) => Err(refused("other", "internal error".into())),
        (Err(_), _) if !known_device => Err(refused("unknown_device", "unknown device".into())),
        (Err(e), _) => Err(refused(
            auth_reason(&e),
            shared.store.read().refusal_reason(&e),
        )),
    }
}

/// The key of the device's live session elsewhere in the cluster (on this
/// node or another), if it has one: a CONNECT of `id` takes it over.
async fn live_session(shared: &Shared, id: &Id) -> Option<String> {
    let status = shared
        .scx
        .extends
        .shared()
        .await
        .session_status(&id.client_id)
        .await?;
    (status.online && status.id != *id).then(|| status.id.username_ref().to_owned())
}

/// The core's verification of a CONNECT: its result, the verifier that
/// proved the secret, and whether the key and the device are on file. A
/// device not on file is refused at the cost of a listed one.
fn verify(
    auth: &Authenticator,
    key: &KeyId,
    record: Option<&structure_access::AccessKey>,
    secret: &Secret,
    device: Option<&impl structure_access::Device>,
    device_id: DeviceId,
    permit: impl FnOnce() -> bool,
) -> (
    Result<structure_access::Principal, structure_access::AuthError>,
    Option<Verifier>,
    bool,
    bool,
) {
    let result = match device {
        Some(device) => auth.authenticate_with(key, record, secret, device, permit),
        None => auth.authenticate_with(key, record, secret, &Unlisted(device_id), permit),
    };
    let verifier = result
        .as_ref()
        .ok()
        .and(record)
        .map(|r| r.verifier().clone());
    (result, verifier, record.is_some(), device.is_some())
}
