//! The RMQTT plugin: CONNECT through the core's `Authenticator` (Argon2 on a
//! blocking thread, within a budget), PUBLISH and SUBSCRIBE through the topic
//! policy, per-delivery decisions for `Filter` subscriptions, and revocation of
//! live sessions on any node after a reload.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::plugin::{PackageInfo, Plugin};
use rmqtt::types::{AuthResult, Id, PublishAclResult, SubscribeAclResult};
use structure_access::mqtt::Decision;
use structure_access::{Authenticator, HashPolicy, Principal, Secret, VerificationCache};
use structure_access_common::throttle::{
    CLIENT_LINES_PER_SECOND, LogBudget, Tarpit, Throttle, address_key,
};
use structure_access_common::{Unlisted, escape, excerpt};

use crate::config::NodeConfig;
use crate::state::{Loaded, Store, affected, revoked};

/// The plugin's name in RMQTT's plugin manager.
pub const NAME: &str = "structure-access";

/// The hooks' priority: before any other plugin's.
const PRIORITY: u32 = 10;

/// Most `Filter` subscriptions one client may hold (each is kept until
/// unsubscribed): memory per client stays bounded.
const MAX_FILTERS: usize = 1_000;

/// Cluster calls (session lookups, kicks) a reload has in flight at once.
const CONCURRENT_CLUSTER_CALLS: usize = 32;

/// Most refusals held at once: a tenth of the 1 000 handshakes RMQTT runs at
/// once per listener, so that held refusals never crowd out devices.
const MAX_HELD_REFUSALS: usize = 100;

/// Most refusals of one client address held at once, so that one address
/// cannot take every place.
const MAX_HELD_PER_ADDRESS: usize = 10;

/// What the hooks share.
struct Shared {
    scx: ServerContext,
    store: Store,
    auth: Arc<Authenticator>,
    throttle: Arc<Throttle>,
    /// Refusals past their address's budget are answered late.
    tarpit: Tarpit,
    /// The log lines clients cause (refusals, denials), bounded.
    lines: LogBudget,
    /// Per client id: its subscriptions answered `Filter` (each delivery
    /// through them is decided by `may_receive`) and its principal under the
    /// records in force, derived once per load.
    clients: Mutex<HashMap<String, ClientState>>,
}

/// What the plugin keeps of a connected client.
#[derive(Default)]
struct ClientState {
    filters: HashSet<String>,
    /// The oldest load under which a subscription of this client was
    /// answered `Allow`: once another load is in force, every delivery to
    /// the client is decided again (a reload may have narrowed what it sees).
    allowed_under: Option<u64>,
    /// (load generation, username, principal or why there is none)
    principal: Option<(u64, String, Result<Principal, String>)>,
}

impl Shared {
    /// A warning a client caused (a refusal, a denial): written within the
    /// budget of such lines, counted past it.
    fn warn(&self, line: String) {
        if let Some(line) = self.lines.line(line) {
            log::warn!("{line}");
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClientState>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The principal of a session under the records in force: derived once
    /// per client, username and load, then reused for every check.
    fn principal(
        &self,
        loaded: &Loaded,
        client_id: &str,
        username: &str,
    ) -> Result<Principal, String> {
        let mut clients = self.clients();
        let state = match clients.get_mut(client_id) {
            Some(state) => state,
            None => clients.entry(client_id.to_owned()).or_default(),
        };
        if let Some((generation, name, principal)) = &state.principal
            && *generation == loaded.generation
            && name == username
        {
            return principal.clone();
        }
        let principal = loaded.principal(client_id, username);
        state.principal = Some((loaded.generation, username.to_owned(), principal.clone()));
        principal
    }
}

/// The plugin, as RMQTT's plugin manager holds it.
pub struct AccessKeyPlugin {
    shared: Arc<Shared>,
    register: Box<dyn Register>,
    reload_interval: Option<Duration>,
}

/// Registers and starts the plugin on `scx`, reading the files now: an error
/// in them refuses to start.
pub async fn register(scx: &ServerContext, config: &NodeConfig) -> Result<(), String> {
    let rules = structure_access::mqtt::TopicRules::new(&config.topic_prefix)
        .map_err(|e| format!("`topic_prefix`: {e}"))?;
    let policy = HashPolicy::default();
    let store = Store::open(
        config.keys_file.clone(),
        config.devices_file.clone(),
        rules,
        policy.clone(),
    )?;
    let mut auth = Authenticator::new(policy);
    if config.cache_capacity > 0 {
        let cache = VerificationCache::new(config.cache_capacity).map_err(|e| e.to_string())?;
        auth = auth.with_cache(cache);
    }
    let loaded = store.current();
    log::info!(
        "{NAME}: loaded {} access key(s) and {} device(s)",
        loaded.keys.len(),
        loaded.devices.len()
    );
    let shared = Arc::new(Shared {
        scx: scx.clone(),
        store,
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
        clients: Mutex::new(HashMap::new()),
    });
    let reload_interval =
        (config.reload_interval > 0).then(|| Duration::from_secs(config.reload_interval));
    let register = scx.extends.hook_mgr().register();
    let plugin = Arc::new(Mutex::new(Some(AccessKeyPlugin {
        shared,
        register,
        reload_interval,
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
            Type::ClientSubscribeCheckAcl,
            Type::MessagePublishCheckAcl,
            Type::MessageExpiryCheck,
            Type::SessionUnsubscribed,
            Type::SessionTerminated,
        ] {
            self.register
                .add_priority(typ, PRIORITY, Box::new(Hooks(self.shared.clone())))
                .await;
        }
        Ok(())
    }

    async fn get_config(&self) -> rmqtt::Result<serde_json::Value> {
        Ok(serde_json::json!({ "reload_interval": self.reload_interval.map(|d| d.as_secs()) }))
    }

    async fn start(&mut self) -> rmqtt::Result<()> {
        self.register.start().await;
        spawn_reloaders(self.shared.clone(), self.reload_interval);
        spawn_log_flusher(self.shared.clone());
        Ok(())
    }

    async fn stop(&mut self) -> rmqtt::Result<bool> {
        // Stopping it would let every client through: refuse.
        Ok(false)
    }
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
            reload(&on_signal, "SIGHUP").await;
        }
    });
    if let Some(interval) = interval {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                if shared.store.changed_on_disk() {
                    reload(&shared, "a change of the files").await;
                }
            }
        });
    }
}

/// Reloads the files, all or nothing, then ends every live session, on any
/// node, that the new records no longer allow.
async fn reload(shared: &Shared, cause: &str) {
    let (old, new) = match shared.store.reload() {
        Ok(versions) => versions,
        Err(e) => {
            log::error!("{NAME}: reload after {cause} refused, the previous records stay: {e}");
            return;
        }
    };
    log::info!(
        "{NAME}: reloaded after {cause}: {} access key(s), {} device(s)",
        new.keys.len(),
        new.devices.len()
    );
    revoke(shared, &old, &new).await;
}

/// Kicks the sessions `new` no longer allows: every local one is looked at,
/// and the other nodes are asked about the devices the change may concern.
async fn revoke(shared: &Shared, old: &Loaded, new: &Loaded) {
    let cluster = shared.scx.extends.shared().await;
    let local: Vec<Id> = cluster
        .iter()
        .filter_map(|entry| entry.session().map(|session| session.id.clone()))
        .collect();
    let mut seen = HashSet::new();
    let mut doomed = Vec::new();
    for id in local {
        seen.insert(id.client_id.to_string());
        if let Some(why) = revoked(old, new, &id.client_id, id.username_ref()) {
            doomed.push((id, why));
        }
    }
    // The other nodes are asked about the affected devices not found here,
    // and the doomed sessions kicked, a bounded number at a time.
    let remote: Vec<_> = affected(old, new)
        .into_iter()
        .filter(|device| !seen.contains(device.as_str()))
        .collect();
    let cluster = &cluster;
    let found: Vec<(Id, String)> = stream::iter(remote)
        .map(|device| async move {
            let status = cluster.session_status(device.as_str()).await?;
            if !status.online {
                return None;
            }
            let why = revoked(old, new, &status.id.client_id, status.id.username_ref())?;
            Some((status.id.clone(), why))
        })
        .buffer_unordered(CONCURRENT_CLUSTER_CALLS)
        .filter_map(|found| async move { found })
        .collect()
        .await;
    doomed.extend(found);
    stream::iter(doomed)
        .for_each_concurrent(CONCURRENT_CLUSTER_CALLS, |(id, why)| async move {
            let entry = cluster.entry(id.clone());
            let kicked = match entry.try_lock().await {
                Ok(mut locked) => locked.kick(true, true, true).await.map(|_| ()),
                Err(e) => Err(e),
            };
            // A remote kick may report `NotExist` for a session it did end: ask.
            let gone = kicked.is_ok() || !entry.online().await;
            let shown = escape(&id.client_id);
            if gone {
                log::warn!(
                    "{NAME}: disconnected device `{shown}` (access key `{}`) on node {}: {why}",
                    escape(id.username_ref()),
                    id.node()
                );
            } else {
                log::error!(
                    "{NAME}: could not disconnect device `{shown}` on node {}: {why}",
                    id.node()
                );
            }
        })
        .await;
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
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let loaded = shared.store.current();
                let filter = &subscribe.topic_filter;
                let decision = shared
                    .principal(&loaded, &session.id.client_id, session.id.username_ref())
                    .and_then(|p| {
                        let directory = |id: &str| loaded.device(id);
                        p.may_subscribe(&loaded.rules, filter, &directory)
                            .map_err(|e| e.to_string())
                    });
                let result = match decision {
                    Ok(Decision::Allow) => {
                        let mut clients = shared.clients();
                        let state = clients.entry(session.id.client_id.to_string()).or_default();
                        let oldest = state
                            .allowed_under
                            .map_or(loaded.generation, |g| g.min(loaded.generation));
                        state.allowed_under = Some(oldest);
                        SubscribeAclResult::new_success(subscribe.opts.qos(), None)
                    }
                    Ok(Decision::Filter) => {
                        let mut clients = shared.clients();
                        let filters = &mut clients
                            .entry(session.id.client_id.to_string())
                            .or_default()
                            .filters;
                        if filters.len() < MAX_FILTERS || filters.contains(&**filter) {
                            filters.insert(filter.to_string());
                            SubscribeAclResult::new_success(subscribe.opts.qos(), None)
                        } else {
                            drop(clients);
                            shared.warn(format!(
                                "{NAME}: denied `{}`: subscribe `{}`: more than {MAX_FILTERS} \
                                 filtered subscriptions",
                                escape(&session.id.client_id),
                                excerpt(filter)
                            ));
                            SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                        }
                    }
                    Ok(_) => {
                        shared.warn(format!(
                            "{NAME}: denied device `{}` (access key `{}`): subscribe `{}`",
                            escape(&session.id.client_id),
                            escape(session.id.username_ref()),
                            excerpt(filter)
                        ));
                        SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                    }
                    Err(why) => {
                        shared.warn(format!(
                            "{NAME}: denied `{}`: subscribe `{}`: {}",
                            escape(&session.id.client_id),
                            excerpt(filter),
                            escape(&why)
                        ));
                        SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                    }
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let loaded = shared.store.current();
                let allowed = shared
                    .principal(&loaded, &session.id.client_id, session.id.username_ref())
                    .is_ok_and(|p| {
                        let directory = |id: &str| loaded.device(id);
                        p.may_publish(&loaded.rules, &publish.topic, &directory)
                            == Ok(Decision::Allow)
                    });
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
            Parameter::MessageExpiryCheck(session, _from, publish) => {
                let client: &str = &session.id.client_id;
                // Decided again: a delivery through a `Filter` subscription,
                // and every delivery once the records changed since an
                // `Allow` (most deliveries are neither: one map lookup).
                let generation = shared.store.generation();
                let decide = shared.clients().get(client).is_some_and(|state| {
                    !state.filters.is_empty()
                        || state.allowed_under.is_some_and(|g| g != generation)
                });
                if !decide {
                    return (true, acc);
                }
                let loaded = shared.store.current();
                let receive = shared
                    .principal(&loaded, client, session.id.username_ref())
                    .is_ok_and(|p| {
                        let directory = |id: &str| loaded.device(id);
                        p.may_receive(&loaded.rules, &publish.topic, &directory) == Ok(true)
                    });
                if receive {
                    (true, acc)
                } else {
                    // This one delivery is dropped; nothing else is.
                    (false, Some(HookResult::MessageExpiry))
                }
            }
            Parameter::SessionUnsubscribed(session, unsubscribe) => {
                let client: &str = &session.id.client_id;
                if let Some(state) = shared.clients().get_mut(client) {
                    state.filters.remove(&*unsubscribe.topic_filter);
                }
                (true, acc)
            }
            Parameter::SessionTerminated(session, _reason) => {
                let client: &str = &session.id.client_id;
                shared.clients().remove(client);
                (true, acc)
            }
            _ => (true, acc),
        }
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
    match verdict(shared, connect, key.clone()).await {
        Ok(who) => {
            log::debug!("{NAME}: {who} authenticated");
            AuthResult::Allow(false, None)
        }
        Err(why) => {
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
/// by `budget_key`) before any Argon2.
async fn verdict(
    shared: &Arc<Shared>,
    connect: &rmqtt::types::ConnectInfo,
    budget_key: Option<String>,
) -> Result<String, String> {
    let username = connect.username().ok_or("no username")?;
    let Ok(key) = username.parse::<structure_access::KeyId>() else {
        // It may be anything the client typed, a secret included: not repeated.
        return Err("the username is not an access key".into());
    };
    let password = connect
        .password()
        .and_then(|p| std::str::from_utf8(p).ok())
        .ok_or("password missing or not UTF-8")?;
    // The error's detail (length, offending position) is the password's:
    // only its kind is logged.
    let secret = Secret::parse_any(password).map_err(|_| "malformed secret")?;
    let Ok(device_id) = connect.client_id().parse::<structure_access::DeviceId>() else {
        return Err("the client id is not a device ID".into());
    };
    let loaded = shared.store.current();
    // Argon2 may run: on a blocking thread. (With no Argon2 verifier on file
    // it never does: what would cost Argon2 is refused at once.)
    let slow = loaded.argon2_on_file
        && (shared.auth.policy().expected_scheme(&key).is_slow()
            || loaded
                .keys
                .get(&key)
                .is_some_and(|r| r.verifier().is_slow()));
    let (auth, throttle, on_file) = (shared.auth.clone(), shared.throttle.clone(), loaded.clone());
    // Returns the result, and whether the key and the device are on file.
    let run = move || {
        let record = on_file.keys.get(&key);
        let permit = || on_file.permit_argon2(|| throttle.permit(budget_key.as_deref()));
        let device = on_file.devices.get(&device_id);
        let result = match device {
            Some(device) => auth.authenticate_with(&key, record, &secret, device, permit),
            // Not in the devices file: refused, at the cost of a listed device.
            None => auth.authenticate_with(&key, record, &secret, &Unlisted(device_id), permit),
        };
        (result, record.is_some(), device.is_some())
    };
    let (result, known_key, known_device) = if slow {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|_| "internal error")?
    } else {
        run()
    };
    let who = if known_key {
        format!("device `{device_id}` with access key `{key}`")
    } else {
        format!("device `{device_id}`")
    };
    match result {
        Ok(principal) => {
            // RMQTT publishes a will without the publish hook: its topic is
            // decided here, as a publication of the device would be.
            if let Some(topic) = will_topic(connect) {
                let directory = |id: &str| loaded.device(id);
                if principal.may_publish(&loaded.rules, topic, &directory) != Ok(Decision::Allow) {
                    return Err(format!(
                        "{who}: its will's topic `{}` is not one it may publish to",
                        excerpt(topic)
                    ));
                }
            }
            Ok(who)
        }
        Err(_) if !known_device => Err(format!("{who}: unknown device")),
        Err(e) => Err(format!("{who}: {}", loaded.refusal_reason(&e))),
    }
}
