//! The C ABI of Mosquitto 2's plugin interface (version 5): the only `unsafe`
//! code of the repository. It converts pointers to safe values and hands them to
//! [`Plugin`]; it never unwinds into the broker.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use crate::plugin::{Access, Outcome, Plugin, Verdict};

/// `MOSQ_PLUGIN_VERSION`.
pub const PLUGIN_VERSION: c_int = 5;
const MOSQ_ERR_SUCCESS: c_int = 0;
const MOSQ_ERR_INVAL: c_int = 3;
const MOSQ_ERR_AUTH: c_int = 11;
const MOSQ_ERR_ACL_DENIED: c_int = 12;
const MOSQ_ERR_UNKNOWN: c_int = 13;
const MOSQ_ERR_PLUGIN_DEFER: c_int = 17;
const MOSQ_EVT_RELOAD: c_int = 1;
const MOSQ_EVT_ACL_CHECK: c_int = 2;
const MOSQ_EVT_BASIC_AUTH: c_int = 3;
const MOSQ_EVT_TICK: c_int = 9;
const MOSQ_EVT_DISCONNECT: c_int = 10;
const MOSQ_ACL_READ: c_int = 0x01;
const MOSQ_ACL_WRITE: c_int = 0x02;
const MOSQ_ACL_SUBSCRIBE: c_int = 0x04;
const MOSQ_ACL_UNSUBSCRIBE: c_int = 0x08;
const MOSQ_LOG_INFO: c_int = 1 << 0;
const MOSQ_LOG_NOTICE: c_int = 1 << 1;
const MOSQ_LOG_ERR: c_int = 1 << 3;
const MOSQ_LOG_DEBUG: c_int = 1 << 4;

/// `struct mosquitto` (opaque).
#[repr(C)]
pub struct Client {
    _private: [u8; 0],
}

/// `mosquitto_plugin_id_t` (opaque).
#[repr(C)]
pub struct PluginId {
    _private: [u8; 0],
}

/// `struct mosquitto_opt`.
#[repr(C)]
pub struct Opt {
    key: *mut c_char,
    value: *mut c_char,
}

/// `struct mosquitto_evt_basic_auth`.
#[repr(C)]
pub struct EvtBasicAuth {
    future: *mut c_void,
    client: *mut Client,
    username: *mut c_char,
    password: *mut c_char,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_acl_check`.
#[repr(C)]
pub struct EvtAclCheck {
    future: *mut c_void,
    client: *mut Client,
    topic: *const c_char,
    payload: *const c_void,
    properties: *mut c_void,
    access: c_int,
    payloadlen: u32,
    qos: u8,
    retain: bool,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_reload`.
#[repr(C)]
pub struct EvtReload {
    future: *mut c_void,
    options: *mut Opt,
    option_count: c_int,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_tick`.
#[repr(C)]
pub struct EvtTick {
    future: *mut c_void,
    now_ns: std::ffi::c_long,
    next_ns: std::ffi::c_long,
    now_s: i64,
    next_s: i64,
    future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_disconnect`.
#[repr(C)]
pub struct EvtDisconnect {
    future: *mut c_void,
    client: *mut Client,
    reason: c_int,
    future2: [*mut c_void; 4],
}

pub(crate) type Callback = unsafe extern "C" fn(c_int, *mut c_void, *mut c_void) -> c_int;

use crate::broker::{
    self, mosquitto_callback_register, mosquitto_callback_unregister, mosquitto_client_address,
    mosquitto_client_id, mosquitto_client_username, mosquitto_kick_client_by_clientid,
};
use crate::plugin::{Level, Reload};

/// What the plugin keeps between init and cleanup.
struct State {
    identifier: *mut PluginId,
    plugin: Plugin,
}

fn log(level: c_int, message: &str) {
    let line = format!("structure-access: {message}");
    // Interior NULs cannot come from our messages; replace them all the same.
    let Ok(line) = CString::new(line.replace('\0', "?")) else {
        return;
    };
    broker::log_line(level, &line);
}

/// An audit event's line, when no audit file is configured.
pub(crate) fn log_audit(line: &str) {
    log(MOSQ_LOG_NOTICE, &format!("audit {line}"));
}

fn log_outcome(plugin: &Plugin, outcome: &Outcome) {
    if let Some(line) = plugin.log_line(outcome) {
        let level = match outcome.verdict {
            // Mosquitto logs every accepted client itself; ours is detail.
            Verdict::Allow | Verdict::Defer => MOSQ_LOG_DEBUG,
            Verdict::Deny => MOSQ_LOG_NOTICE,
        };
        log(level, &line);
    }
}

/// Logs what a reload did, then disconnects the revoked live clients (after
/// the plugin's lock is released: a kick runs our DISCONNECT callback).
fn finish_reload(report: &Reload) {
    for (level, line) in &report.log {
        let level = match level {
            Level::Info => MOSQ_LOG_INFO,
            Level::Notice => MOSQ_LOG_NOTICE,
            Level::Error => MOSQ_LOG_ERR,
        };
        log(level, line);
    }
    for id in &report.kick {
        // Device IDs hold no NUL.
        let Ok(id) = CString::new(id.as_str()) else {
            continue;
        };
        // SAFETY: a NUL-terminated string that outlives the call; Mosquitto
        // copies nothing and keeps no pointer to it. Without the will: the
        // key no longer speaks for the device.
        let rc = unsafe { mosquitto_kick_client_by_clientid(id.as_ptr(), false) };
        if rc != MOSQ_ERR_SUCCESS {
            log(
                MOSQ_LOG_DEBUG,
                &format!("client `{}` was not connected", id.to_string_lossy()),
            );
        }
    }
}

/// Where the counters are published, as Mosquitto's own statistics are.
pub const SYS_PREFIX: &str = "$SYS/broker/plugin/structure-access/";

/// Publishes each counter, retained, on its `$SYS` topic.
fn publish_counters(updates: Vec<(String, u64)>) {
    for (path, value) in updates {
        // The paths are ours (no NUL).
        let Ok(topic) = CString::new(format!("{SYS_PREFIX}{path}")) else {
            continue;
        };
        let rc = broker::publish_retained(&topic, value.to_string().as_bytes());
        if rc != MOSQ_ERR_SUCCESS {
            log(
                MOSQ_LOG_DEBUG,
                &format!("could not publish `{}`: {rc}", topic.to_string_lossy()),
            );
        }
    }
}

/// What the broker knows of `client`: its id, username and address.
///
/// # Safety
/// `client` is null or Mosquitto's own client, valid for the call; the
/// returned strings are used only during the call.
unsafe fn client_info<'a>(client: *const Client) -> crate::plugin::Client<'a> {
    if client.is_null() {
        return crate::plugin::Client::default();
    }
    // SAFETY: a valid client; each function returns a NUL-terminated string
    // owned by the client, or null.
    unsafe {
        crate::plugin::Client {
            connection: client as usize,
            id: bytes(mosquitto_client_id(client)),
            username: bytes(mosquitto_client_username(client)),
            address: bytes(mosquitto_client_address(client)),
        }
    }
}

/// Bytes of a C string, or `None` for a null pointer.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string valid for the call.
unsafe fn bytes<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: non-null, and NUL-terminated and valid per the contract.
        Some(unsafe { CStr::from_ptr(ptr) }.to_bytes())
    }
}

/// Runs `f`, turning a panic into `on_panic` (a panic must not unwind into C).
fn guarded(on_panic: c_int, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        log(MOSQ_LOG_ERR, "internal error; refusing");
        on_panic
    })
}

/// Tells Mosquitto which plugin interface this is.
///
/// # Safety
/// `supported_versions` points to `supported_version_count` integers, or is null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_version(
    supported_version_count: c_int,
    supported_versions: *const c_int,
) -> c_int {
    let count = usize::try_from(supported_version_count).unwrap_or(0);
    if supported_versions.is_null() || count == 0 {
        return -1;
    }
    // SAFETY: non-null, with `count` elements per the contract.
    let versions = unsafe { std::slice::from_raw_parts(supported_versions, count) };
    if versions.contains(&PLUGIN_VERSION) {
        PLUGIN_VERSION
    } else {
        -1
    }
}

/// Reads the options, loads the files and registers the callbacks.
///
/// # Safety
/// Mosquitto's contract: `userdata` is writable; `options` points to
/// `option_count` options whose keys and values are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_init(
    identifier: *mut PluginId,
    userdata: *mut *mut c_void,
    options: *mut Opt,
    option_count: c_int,
) -> c_int {
    guarded(MOSQ_ERR_UNKNOWN, || {
        if userdata.is_null() {
            log(MOSQ_LOG_ERR, "no userdata pointer; refusing to start");
            return MOSQ_ERR_INVAL;
        }
        // SAFETY: per the contract of this function.
        let options = match unsafe { read_options(options, option_count) } {
            Ok(options) => options,
            Err(message) => {
                log(MOSQ_LOG_ERR, &format!("{message}; refusing to start"));
                return MOSQ_ERR_INVAL;
            }
        };
        let plugin = match Plugin::from_options(&options, &mut |line| log(MOSQ_LOG_NOTICE, &line)) {
            Ok(plugin) => plugin,
            Err(e) => {
                log(MOSQ_LOG_ERR, &format!("{e}; refusing to start"));
                return MOSQ_ERR_INVAL;
            }
        };
        log(MOSQ_LOG_INFO, plugin.loaded());
        let state = Box::into_raw(Box::new(State { identifier, plugin }));
        // SAFETY: `userdata` is non-null and writable per the contract.
        unsafe { *userdata = state.cast() };
        for (event, callback) in CALLBACKS {
            // SAFETY: `identifier` is Mosquitto's own; `state` stays valid until
            // cleanup unregisters the callbacks and frees it.
            let rc = unsafe {
                mosquitto_callback_register(identifier, event, callback, ptr::null(), state.cast())
            };
            if rc != MOSQ_ERR_SUCCESS {
                log(
                    MOSQ_LOG_ERR,
                    &format!("cannot register callback for event {event}"),
                );
                return rc;
            }
        }
        MOSQ_ERR_SUCCESS
    })
}

const CALLBACKS: [(c_int, Callback); 5] = [
    (MOSQ_EVT_BASIC_AUTH, on_basic_auth),
    (MOSQ_EVT_ACL_CHECK, on_acl_check),
    (MOSQ_EVT_DISCONNECT, on_disconnect),
    (MOSQ_EVT_RELOAD, on_reload),
    (MOSQ_EVT_TICK, on_tick),
];

/// # Safety
/// `options` points to `count` options with NUL-terminated keys and values, or is null.
unsafe fn read_options(options: *const Opt, count: c_int) -> Result<Vec<(String, String)>, String> {
    let count = usize::try_from(count).unwrap_or(0);
    if options.is_null() || count == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: non-null, with `count` elements per the contract.
    let options = unsafe { std::slice::from_raw_parts(options, count) };
    options
        .iter()
        .map(|opt| {
            // SAFETY: keys and values are NUL-terminated strings or null.
            let (key, value) = unsafe { (bytes(opt.key), bytes(opt.value)) };
            let key = key
                .and_then(|k| std::str::from_utf8(k).ok())
                .ok_or("an option name is missing or not UTF-8")?;
            let value = value
                .and_then(|v| std::str::from_utf8(v).ok())
                .ok_or_else(|| format!("option `plugin_opt_{key}` has no UTF-8 value"))?;
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Unregisters the callbacks and frees the state.
///
/// # Safety
/// `userdata` is what [`mosquitto_plugin_init`] stored, or null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_cleanup(
    userdata: *mut c_void,
    _options: *mut Opt,
    _option_count: c_int,
) -> c_int {
    if userdata.is_null() {
        return MOSQ_ERR_SUCCESS;
    }
    let state: *mut State = userdata.cast();
    // SAFETY: `state` came from `Box::into_raw` in init and is freed only here.
    let state = unsafe { Box::from_raw(state) };
    for (event, callback) in CALLBACKS {
        // SAFETY: the identifier and callbacks are those registered in init.
        unsafe { mosquitto_callback_unregister(state.identifier, event, callback, ptr::null()) };
    }
    drop(state);
    MOSQ_ERR_SUCCESS
}

/// The plugin behind `userdata` and the event behind `event_data`.
///
/// # Safety
/// `userdata` is null or the state stored by init, not yet cleaned up;
/// `event_data` is null or points to a valid `E` for the duration of the call.
unsafe fn parts<'a, E>(
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> Option<(&'a Plugin, &'a E)> {
    let state: *const State = userdata.cast();
    let event: *const E = event_data.cast();
    // SAFETY: both pointers are null or valid, per the contract.
    let (state, event) = unsafe { (state.as_ref()?, event.as_ref()?) };
    Some((&state.plugin, event))
}

/// `MOSQ_EVT_BASIC_AUTH`: CONNECT with client id, username and password.
///
/// # Safety
/// Mosquitto's contract: `event_data` is a `mosquitto_evt_basic_auth` and
/// `userdata` the state from init (either may be null: then refuse).
pub unsafe extern "C" fn on_basic_auth(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_AUTH, || {
        // SAFETY: Mosquitto passes its event and our state, per the contract.
        let Some((plugin, event)) = (unsafe { parts::<EvtBasicAuth>(event_data, userdata) }) else {
            return MOSQ_ERR_AUTH;
        };
        // SAFETY: the client pointer is Mosquitto's own (or null), valid for the call.
        let mut client = unsafe { client_info(event.client) };
        // SAFETY: username and password are NUL-terminated strings or null.
        let (username, password) = unsafe { (bytes(event.username), bytes(event.password)) };
        // The event's username is the one being checked (the client's is
        // set from it only after a successful check).
        client.username = username;
        let outcome = plugin.basic_auth(client, password);
        log_outcome(plugin, &outcome);
        match outcome.verdict {
            Verdict::Allow => MOSQ_ERR_SUCCESS,
            Verdict::Deny => MOSQ_ERR_AUTH,
            Verdict::Defer => MOSQ_ERR_PLUGIN_DEFER,
        }
    })
}

/// `MOSQ_EVT_ACL_CHECK`: publish, subscribe and per-message delivery.
///
/// # Safety
/// Mosquitto's contract: `event_data` is a `mosquitto_evt_acl_check` and
/// `userdata` the state from init (either may be null: then deny).
pub unsafe extern "C" fn on_acl_check(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_ACL_DENIED, || {
        // SAFETY: Mosquitto passes its event and our state, per the contract.
        let Some((plugin, event)) = (unsafe { parts::<EvtAclCheck>(event_data, userdata) }) else {
            return MOSQ_ERR_ACL_DENIED;
        };
        let access = match event.access {
            MOSQ_ACL_READ => Access::Read,
            MOSQ_ACL_WRITE => Access::Write,
            MOSQ_ACL_SUBSCRIBE => Access::Subscribe,
            MOSQ_ACL_UNSUBSCRIBE => Access::Unsubscribe,
            _ => return MOSQ_ERR_ACL_DENIED,
        };
        // SAFETY: the topic is a NUL-terminated string or null; the client
        // pointer is Mosquitto's own (or null), valid for the call.
        let (topic, client) = unsafe { (bytes(event.topic), client_info(event.client)) };
        let outcome = plugin.acl_check(client, access, topic);
        log_outcome(plugin, &outcome);
        match outcome.verdict {
            Verdict::Allow => MOSQ_ERR_SUCCESS,
            Verdict::Deny => MOSQ_ERR_ACL_DENIED,
            Verdict::Defer => MOSQ_ERR_PLUGIN_DEFER,
        }
    })
}

/// `MOSQ_EVT_DISCONNECT`: forget the client's principal.
///
/// # Safety
/// Mosquitto's contract: `event_data` is a `mosquitto_evt_disconnect` and
/// `userdata` the state from init (either may be null).
pub unsafe extern "C" fn on_disconnect(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        // SAFETY: Mosquitto passes its event and our state, per the contract.
        if let Some((plugin, event)) = unsafe { parts::<EvtDisconnect>(event_data, userdata) } {
            // SAFETY: the client pointer is Mosquitto's own (or null), valid for the call.
            plugin.disconnect(unsafe { client_info(event.client) });
        }
        MOSQ_ERR_SUCCESS
    })
}

/// `MOSQ_EVT_RELOAD` (SIGHUP): starts reading the files again, off the
/// broker's thread; a later tick applies what changed, re-evaluates the
/// sessions it concerns and disconnects the revoked ones. Mosquitto's new
/// options are ignored (they take a restart).
///
/// # Safety
/// Mosquitto's contract: `event_data` is a `mosquitto_evt_reload` and
/// `userdata` the state from init (either may be null).
pub unsafe extern "C" fn on_reload(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        // SAFETY: Mosquitto passes its event and our state, per the contract.
        if let Some((plugin, _)) = unsafe { parts::<EvtReload>(event_data, userdata) } {
            plugin.reload();
        }
        // A failed reload keeps the previous state: the broker goes on.
        MOSQ_ERR_SUCCESS
    })
}

/// `MOSQ_EVT_TICK` (about every 100 ms): writes the count of refusal and
/// denial lines held back, if no later line carried it; applies what a
/// reading of the files found; with `plugin_opt_reload_interval`, starts a
/// reading when the files changed.
///
/// # Safety
/// Mosquitto's contract: `event_data` is a `mosquitto_evt_tick` and
/// `userdata` the state from init (either may be null).
pub unsafe extern "C" fn on_tick(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        // SAFETY: Mosquitto passes its event and our state, per the contract.
        let Some((plugin, _)) = (unsafe { parts::<EvtTick>(event_data, userdata) }) else {
            return MOSQ_ERR_SUCCESS;
        };
        let now = std::time::Instant::now();
        if let Some(line) = plugin.held_back_lines(now) {
            log(MOSQ_LOG_NOTICE, &line);
        }
        if let Some(report) = plugin.tick(now) {
            finish_reload(&report);
        }
        publish_counters(plugin.sys_updates(now));
        MOSQ_ERR_SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::fake::{FakeClient, KICKED, LOG, REGISTERED};
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    use structure_access::{AccessKey, Cost, HashPolicy, KeyStatus, Restriction, Scope};

    fn logged() -> String {
        LOG.with(|l| l.borrow().join("\n"))
    }

    fn clear() {
        LOG.with(|l| l.borrow_mut().clear());
        KICKED.with(|k| k.borrow_mut().clear());
    }

    fn kicked() -> Vec<(String, bool)> {
        KICKED.with(|k| k.borrow().clone())
    }

    fn policy() -> HashPolicy {
        HashPolicy::default()
            .with_params(Cost::new(64, 1, 1))
            .unwrap()
    }

    /// A key record (as a line of the keys file) and its secret.
    struct Key {
        record: AccessKey,
        id: CString,
        secret: CString,
    }

    impl Key {
        fn new(seed: u64, scope: Scope) -> Self {
            let new = AccessKey::generate(
                &mut ChaCha20Rng::seed_from_u64(seed),
                "app1".parse().unwrap(),
                scope,
                &policy(),
            )
            .unwrap();
            Self {
                id: CString::new(new.record.key().to_string()).unwrap(),
                secret: CString::new(new.secret.expose_secret()).unwrap(),
                record: new.record,
            }
        }

        fn line(&self) -> String {
            serde_json::to_string(&self.record).unwrap()
        }
    }

    struct Files {
        dir: std::path::PathBuf,
    }

    impl Files {
        fn new(name: &str, keys: &[String], devices: &[&str]) -> Self {
            let dir =
                std::env::temp_dir().join(format!("structure-ffi-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let files = Self { dir };
            files.write(keys, devices);
            files
        }

        fn write(&self, keys: &[String], devices: &[&str]) {
            std::fs::write(self.keys(), keys.join("\n") + "\n").unwrap();
            let devices: String = devices
                .iter()
                .map(|d| {
                    let (id, tags) = d.split_once(':').unwrap_or((d, ""));
                    let tags: Vec<String> = tags
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(|t| {
                            let (k, v) = t.split_once('=').unwrap();
                            format!("{{\"key\": \"{k}\", \"value\": \"{v}\"}}")
                        })
                        .collect();
                    format!(
                        "{{\"id\": \"{id}\", \"application\": \"app1\", \"tags\": [{}]}}\n",
                        tags.join(", ")
                    )
                })
                .collect();
            std::fs::write(self.devices(), devices).unwrap();
        }

        fn keys(&self) -> std::path::PathBuf {
            self.dir.join("keys")
        }

        fn devices(&self) -> std::path::PathBuf {
            self.dir.join("devices")
        }

        fn options(&self, extra: &[(&str, &str)]) -> Options {
            let mut pairs = vec![
                ("keys_file", self.keys().display().to_string()),
                ("devices_file", self.devices().display().to_string()),
            ];
            pairs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            options(&pairs)
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Options as Mosquitto passes them, kept alive with their strings.
    struct Options {
        _strings: Vec<CString>,
        opts: Vec<Opt>,
    }

    fn options(pairs: &[(&str, String)]) -> Options {
        let mut strings = Vec::new();
        let mut opts = Vec::new();
        for (k, v) in pairs {
            let k = CString::new(*k).unwrap();
            let v = CString::new(v.as_str()).unwrap();
            opts.push(Opt {
                key: k.as_ptr().cast_mut(),
                value: v.as_ptr().cast_mut(),
            });
            strings.push(k);
            strings.push(v);
        }
        Options {
            _strings: strings,
            opts,
        }
    }

    fn init(opts: &mut Options) -> (c_int, *mut c_void) {
        let mut userdata: *mut c_void = ptr::null_mut();
        let count = c_int::try_from(opts.opts.len()).unwrap();
        // SAFETY: valid options and a writable userdata pointer.
        let rc = unsafe {
            mosquitto_plugin_init(
                ptr::null_mut(),
                &mut userdata,
                opts.opts.as_mut_ptr(),
                count,
            )
        };
        (rc, userdata)
    }

    fn cleanup(userdata: *mut c_void) {
        // SAFETY: the state from init, freed exactly once.
        let rc = unsafe { mosquitto_plugin_cleanup(userdata, ptr::null_mut(), 0) };
        assert_eq!(rc, MOSQ_ERR_SUCCESS);
    }

    /// A fake broker client: client id and username (as the broker keeps them).
    fn client(id: &CStr, username: &CStr) -> FakeClient {
        FakeClient {
            id: id.as_ptr(),
            username: username.as_ptr(),
            address: c"192.0.2.7".as_ptr(),
        }
    }

    fn basic_auth(
        userdata: *mut c_void,
        client: &FakeClient,
        user: *const c_char,
        pass: *const c_char,
    ) -> c_int {
        let mut event = EvtBasicAuth {
            future: ptr::null_mut(),
            client: ptr::from_ref(client).cast_mut().cast(),
            username: user.cast_mut(),
            password: pass.cast_mut(),
            future2: [ptr::null_mut(); 4],
        };
        // SAFETY: a valid event and the state from init.
        unsafe { on_basic_auth(MOSQ_EVT_BASIC_AUTH, (&raw mut event).cast(), userdata) }
    }

    /// CONNECT of `client` with its own username and `secret`.
    fn connect(userdata: *mut c_void, client: &FakeClient, secret: &CStr) -> c_int {
        basic_auth(userdata, client, client.username, secret.as_ptr())
    }

    fn acl(
        userdata: *mut c_void,
        client: &FakeClient,
        access: c_int,
        topic: *const c_char,
    ) -> c_int {
        let mut event = EvtAclCheck {
            future: ptr::null_mut(),
            client: ptr::from_ref(client).cast_mut().cast(),
            topic,
            payload: ptr::null(),
            properties: ptr::null_mut(),
            access,
            payloadlen: 0,
            qos: 0,
            retain: false,
            future2: [ptr::null_mut(); 4],
        };
        // SAFETY: a valid event and the state from init.
        unsafe { on_acl_check(MOSQ_EVT_ACL_CHECK, (&raw mut event).cast(), userdata) }
    }

    fn publish(userdata: *mut c_void, client: &FakeClient, topic: &CStr) -> c_int {
        acl(userdata, client, MOSQ_ACL_WRITE, topic.as_ptr())
    }

    fn disconnect(userdata: *mut c_void, client: &FakeClient) {
        let mut gone = EvtDisconnect {
            future: ptr::null_mut(),
            client: ptr::from_ref(client).cast_mut().cast(),
            reason: 0,
            future2: [ptr::null_mut(); 4],
        };
        // SAFETY: a valid event and the state from init.
        let rc = unsafe { on_disconnect(MOSQ_EVT_DISCONNECT, (&raw mut gone).cast(), userdata) };
        assert_eq!(rc, MOSQ_ERR_SUCCESS);
    }

    fn reload(userdata: *mut c_void) {
        let mut event = EvtReload {
            future: ptr::null_mut(),
            options: ptr::null_mut(),
            option_count: 0,
            future2: [ptr::null_mut(); 4],
        };
        // SAFETY: a valid event and the state from init.
        let rc = unsafe { on_reload(MOSQ_EVT_RELOAD, (&raw mut event).cast(), userdata) };
        assert_eq!(rc, MOSQ_ERR_SUCCESS);
        settle(userdata);
    }
    /// Ticks until no reading of the files is under way: what SIGHUP (or a
    /// tick seeing a change) started is applied.
    fn settle(userdata: *mut c_void) {
        // SAFETY: the state from init, alive until cleanup.
        let plugin = unsafe { &(*userdata.cast::<State>()).plugin };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while plugin.reading() {
            assert!(
                std::time::Instant::now() < deadline,
                "the reading never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
            tick(userdata);
        }
    }

    fn tick(userdata: *mut c_void) {
        let mut event = EvtTick {
            future: ptr::null_mut(),
            now_ns: 0,
            next_ns: 0,
            now_s: 0,
            next_s: 0,
            future2: [ptr::null_mut(); 4],
        };
        // SAFETY: a valid event and the state from init.
        let rc = unsafe { on_tick(MOSQ_EVT_TICK, (&raw mut event).cast(), userdata) };
        assert_eq!(rc, MOSQ_ERR_SUCCESS);
    }

    #[test]
    fn plugin_version_negotiation() {
        // SAFETY: null, or arrays of the given length.
        unsafe {
            assert_eq!(mosquitto_plugin_version(0, ptr::null()), -1);
            assert_eq!(mosquitto_plugin_version(2, ptr::null()), -1);
            assert_eq!(mosquitto_plugin_version(1, [4].as_ptr()), -1);
            assert_eq!(mosquitto_plugin_version(2, [4, 5].as_ptr()), 5);
            assert_eq!(mosquitto_plugin_version(-3, [5].as_ptr()), -1);
        }
    }

    #[test]
    fn init_refuses_bad_configuration_with_a_clear_log_line() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("bad", &[key.line()], &["dev-1"]);
        std::fs::write(
            f.dir.join("broken"),
            "{\"id\": \"dev-1\", \"application\": \"app1\"}\n\n# comment\nnot json\n",
        )
        .unwrap();
        // An Argon2 verifier above the default policy's bounds (t = 17 > 8).
        let expensive = AccessKey::generate(
            &mut ChaCha20Rng::seed_from_u64(2),
            "app1".parse().unwrap(),
            Scope::Unrestricted,
            &HashPolicy::default()
                .with_bounds(Cost::new(262_144, 17, 8))
                .unwrap()
                .with_params(Cost::new(64, 17, 1))
                .unwrap()
                .argon2id_for_generated(true),
        )
        .unwrap()
        .record;
        std::fs::write(
            f.dir.join("expensive"),
            format!(
                "{}\n{}\n",
                key.line(),
                serde_json::to_string(&expensive).unwrap()
            ),
        )
        .unwrap();
        let path = |name: &str| f.dir.join(name).display().to_string();
        let files = |keys: &str, devices: &str| {
            vec![("keys_file", path(keys)), ("devices_file", path(devices))]
        };
        let with = |extra: &[(&'static str, &str)]| {
            let mut pairs = files("keys", "devices");
            pairs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            pairs
        };
        let cases = [
            (vec![], "missing option `plugin_opt_keys_file`"),
            (
                vec![("keys_file", path("nope")), ("devices_file", String::new())],
                "cannot read",
            ),
            (files("keys", "broken"), "broken` line 4:"),
            (files("broken", "devices"), "broken` line 1:"),
            (vec![("allow_all", "true".into())], "unknown option"),
            (
                with(&[("hash_max_m", "lots")]),
                "option `plugin_opt_hash_max_m`: `lots` is not a whole number",
            ),
            (
                with(&[("hash_max_t", "1")]),
                "option `plugin_opt_hash_max_t`:",
            ),
            (
                with(&[("hash_max_p", "0")]),
                "option `plugin_opt_hash_max_p`:",
            ),
            (
                with(&[("hash_max_m", "8")]),
                "option `plugin_opt_hash_max_m`:",
            ),
            (
                with(&[("pool_size", "0")]),
                "option `plugin_opt_pool_size`: `0` is too small",
            ),
            (
                with(&[("reload_interval", "soon")]),
                "option `plugin_opt_reload_interval`: `soon` is not a whole number",
            ),
            (
                with(&[("defer_unknown", "yes\u{202e}")]),
                "option `plugin_opt_defer_unknown`: `yes\\u{202e}` is not `true` or `false`",
            ),
            (
                with(&[("audit", "false")]),
                "option `plugin_opt_audit`: `false` is not `on` or `off`",
            ),
            (
                files("expensive", "devices"),
                "expensive` line 2: access key",
            ),
        ];
        for (pairs, message) in cases {
            clear();
            let mut opts = options(&pairs);
            let (rc, userdata) = init(&mut opts);
            assert_eq!(rc, MOSQ_ERR_INVAL, "{pairs:?}");
            assert!(userdata.is_null());
            assert!(logged().contains(message), "{message}: {}", logged());
            assert!(logged().contains("refusing to start"), "{}", logged());
        }
        // A null userdata pointer is refused too.
        // SAFETY: null pointers are what is tested.
        let rc =
            unsafe { mosquitto_plugin_init(ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0) };
        assert_eq!(rc, MOSQ_ERR_INVAL);
    }

    #[test]
    fn callbacks_refuse_null_and_non_utf8_input() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("null", &[key.line()], &["dev-1"]);
        let mut opts = f.options(&[("cache_capacity", "0")]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        assert_eq!(REGISTERED.with(|r| r.borrow().len()), 5);
        let dev = client(c"dev-1", &key.id);
        let invalid = [0xff_u8, 0xfe, 0];
        let invalid = invalid.as_ptr().cast::<c_char>();

        // SAFETY: null event data is what is tested.
        unsafe {
            assert_eq!(
                on_basic_auth(MOSQ_EVT_BASIC_AUTH, ptr::null_mut(), userdata),
                MOSQ_ERR_AUTH
            );
            assert_eq!(
                on_acl_check(MOSQ_EVT_ACL_CHECK, ptr::null_mut(), userdata),
                MOSQ_ERR_ACL_DENIED
            );
            assert_eq!(
                on_disconnect(MOSQ_EVT_DISCONNECT, ptr::null_mut(), userdata),
                MOSQ_ERR_SUCCESS
            );
            assert_eq!(on_reload(MOSQ_EVT_RELOAD, ptr::null_mut(), userdata), 0);
            assert_eq!(on_tick(MOSQ_EVT_TICK, ptr::null_mut(), userdata), 0);
        }
        let secret = key.secret.as_ptr();
        assert_eq!(
            basic_auth(ptr::null_mut(), &dev, dev.username, secret),
            MOSQ_ERR_AUTH
        );
        assert_eq!(
            basic_auth(userdata, &dev, ptr::null(), secret),
            MOSQ_ERR_AUTH
        );
        assert_eq!(
            basic_auth(userdata, &dev, dev.username, ptr::null()),
            MOSQ_ERR_AUTH
        );
        assert_eq!(basic_auth(userdata, &dev, invalid, secret), MOSQ_ERR_AUTH);
        assert_eq!(
            basic_auth(userdata, &dev, dev.username, invalid),
            MOSQ_ERR_AUTH
        );
        let bad_client = FakeClient {
            id: invalid,
            ..client(c"", &key.id)
        };
        assert_eq!(connect(userdata, &bad_client, &key.secret), MOSQ_ERR_AUTH);
        let no_client = FakeClient {
            id: ptr::null(),
            ..client(c"", &key.id)
        };
        assert_eq!(connect(userdata, &no_client, &key.secret), MOSQ_ERR_AUTH);
        // Not authenticated yet: every ACL check is denied.
        let own = c"structure/dev-1/state";
        assert_eq!(publish(userdata, &dev, own), MOSQ_ERR_ACL_DENIED);

        assert_eq!(connect(userdata, &dev, &key.secret), MOSQ_ERR_SUCCESS);
        assert_eq!(publish(userdata, &dev, own), MOSQ_ERR_SUCCESS);
        assert_eq!(
            acl(userdata, &dev, MOSQ_ACL_WRITE, ptr::null()),
            MOSQ_ERR_ACL_DENIED
        );
        assert_eq!(
            acl(userdata, &dev, MOSQ_ACL_WRITE, invalid),
            MOSQ_ERR_ACL_DENIED
        );
        assert_eq!(acl(userdata, &dev, 0x40, own.as_ptr()), MOSQ_ERR_ACL_DENIED);
        assert_eq!(
            acl(ptr::null_mut(), &dev, MOSQ_ACL_WRITE, own.as_ptr()),
            MOSQ_ERR_ACL_DENIED
        );
        assert_eq!(
            publish(userdata, &dev, c"structure/dev-1/command"),
            MOSQ_ERR_ACL_DENIED
        );
        // A connection with the same client id but another username is not
        // the one this plugin authenticated; nor is a null client.
        let other = client(c"dev-1", c"someone");
        assert_eq!(publish(userdata, &other, own), MOSQ_ERR_ACL_DENIED);
        let nobody = FakeClient {
            id: ptr::null(),
            username: ptr::null(),
            address: ptr::null(),
        };
        assert_eq!(publish(userdata, &nobody, own), MOSQ_ERR_ACL_DENIED);
        assert!(logged().contains("did not authenticate"), "{}", logged());
        assert!(
            !logged().contains(key.secret.to_str().unwrap()),
            "the secret reached the log"
        );

        // After DISCONNECT the session stays: the will and an offline
        // session's queue are checked against it.
        disconnect(userdata, &dev);
        assert_eq!(publish(userdata, &dev, own), MOSQ_ERR_SUCCESS);
        assert_eq!(
            acl(
                userdata,
                &dev,
                MOSQ_ACL_READ,
                c"structure/dev-1/command".as_ptr()
            ),
            MOSQ_ERR_SUCCESS
        );
        cleanup(userdata);
        // SAFETY: a null state.
        unsafe {
            assert_eq!(
                mosquitto_plugin_cleanup(ptr::null_mut(), ptr::null_mut(), 0),
                MOSQ_ERR_SUCCESS
            );
        }
        assert_eq!(REGISTERED.with(|r| r.borrow().len()), 0);
    }

    /// Each way a reload revokes a live session: the client is kicked (without
    /// its will), the log says why, ACL checks and the re-check are refused;
    /// other sessions go on, re-checked without Argon2.
    #[test]
    fn reload_revokes_live_sessions_and_kicks_them() {
        let open = Key::new(1, Scope::Unrestricted);
        let trucks: Restriction = "vehicle=truck".parse().unwrap();
        let restricted = Key::new(2, trucks.into());
        let devices = ["keep", "gone", "truck-1:vehicle=truck", "idle"];
        let f = Files::new("revoke", &[open.line(), restricted.line()], &devices);
        // No verification cache: a re-check must not need it.
        let mut opts = f.options(&[("cache_capacity", "0")]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        let keep = client(c"keep", &open.id);
        let gone = client(c"gone", &open.id);
        let truck = client(c"truck-1", &restricted.id);
        let idle = client(c"idle", &open.id);
        for c in [&keep, &gone, &truck, &idle] {
            assert_eq!(connect(userdata, c, &open_or(c, &open, &restricted)), 0);
        }
        disconnect(userdata, &idle);

        let recheck = |c: &FakeClient, key: &Key| {
            let start = std::time::Instant::now();
            let rc = connect(userdata, c, &key.secret);
            (rc, start.elapsed())
        };
        // 1. A device deleted, a device moved out of scope.
        clear();
        f.write(
            &[open.line(), restricted.line()],
            &["keep", "truck-1:vehicle=car", "idle"],
        );
        reload(userdata);
        let mut k = kicked();
        k.sort();
        assert_eq!(
            k,
            [("gone".to_owned(), false), ("truck-1".to_owned(), false)],
            "{}",
            logged()
        );
        let log = logged();
        assert!(
            log.contains("2 access keys and 3 devices in force"),
            "{log}"
        );
        // Only the sessions of the changed devices were looked at.
        assert!(
            log.contains("0 access key(s) and 2 device(s) changed")
                && log.contains("2 session(s) re-evaluated, 2 revoked, of 4"),
            "{log}"
        );
        assert!(
            log.contains("disconnecting device `gone` (access key `")
                && log.contains("the device was deleted"),
            "{log}"
        );
        assert!(
            log.contains("disconnecting device `truck-1`")
                && log.contains("outside the scope of the access key"),
            "{log}"
        );
        assert_eq!(
            publish(userdata, &gone, c"structure/gone/state"),
            MOSQ_ERR_ACL_DENIED
        );
        assert!(logged().contains("session revoked"), "{}", logged());
        // Mosquitto's re-check after the reload: kept ones without Argon2,
        // revoked ones refused.
        let (rc, _) = recheck(&keep, &open);
        assert_eq!(rc, MOSQ_ERR_SUCCESS);
        assert_eq!(recheck(&truck, &restricted).0, MOSQ_ERR_AUTH);
        assert!(
            logged().contains("revoked: the device is outside"),
            "{}",
            logged()
        );
        // A wrong password is no re-check.
        assert_eq!(connect(userdata, &keep, &restricted.secret), MOSQ_ERR_AUTH);

        // 2. The key made inactive: every session of it goes, the offline
        // one without a kick.
        clear();
        f.write(
            &[
                open.record.clone().with_status(KeyStatus::Inactive),
                restricted.record.clone(),
            ]
            .map(|r| serde_json::to_string(&r).unwrap()),
            &["keep", "truck-1:vehicle=truck", "idle"],
        );
        reload(userdata);
        assert_eq!(kicked(), [("keep".to_owned(), false)], "{}", logged());
        assert!(
            logged().contains("the access key is inactive"),
            "{}",
            logged()
        );
        assert!(
            logged().contains("revoked the offline session of device `idle`"),
            "{}",
            logged()
        );
        assert_eq!(
            publish(userdata, &idle, c"structure/idle/state"),
            MOSQ_ERR_ACL_DENIED
        );

        // 3. The key deleted; 4. the secret rotated (same key, new verifier).
        let rotated = {
            let new = Key::new(3, Scope::Unrestricted);
            AccessKey::new(
                *open.record.key(),
                *open.record.application(),
                new.record.verifier().clone(),
                Scope::Unrestricted,
            )
        };
        f.write(
            &[open.line(), restricted.line()],
            &["keep", "truck-1:vehicle=truck"],
        );
        reload(userdata);
        assert_eq!(connect(userdata, &keep, &open.secret), MOSQ_ERR_SUCCESS);
        assert_eq!(
            connect(userdata, &truck, &restricted.secret),
            MOSQ_ERR_SUCCESS
        );
        clear();
        f.write(
            &[serde_json::to_string(&rotated).unwrap()],
            &["keep", "truck-1:vehicle=truck"],
        );
        reload(userdata);
        let mut k = kicked();
        k.sort();
        assert_eq!(
            k,
            [("keep".to_owned(), false), ("truck-1".to_owned(), false)]
        );
        assert!(logged().contains("secret was rotated"), "{}", logged());
        assert!(
            logged().contains("the access key was deleted"),
            "{}",
            logged()
        );
        assert_eq!(recheck(&keep, &open).0, MOSQ_ERR_AUTH);
        assert_eq!(
            publish(userdata, &keep, c"structure/keep/state"),
            MOSQ_ERR_ACL_DENIED
        );
        cleanup(userdata);
    }

    fn open_or(c: &FakeClient, open: &Key, restricted: &Key) -> CString {
        // SAFETY: the fake client's username is a valid C string.
        let user = unsafe { CStr::from_ptr(c.username) };
        if user == open.id.as_c_str() {
            open.secret.clone()
        } else {
            restricted.secret.clone()
        }
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_state() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("failed", &[key.line()], &["dev-1", "dev-2"]);
        let mut opts = f.options(&[]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        let dev = client(c"dev-1", &key.id);
        assert_eq!(connect(userdata, &dev, &key.secret), MOSQ_ERR_SUCCESS);
        clear();
        // A broken second line, and the first device gone: nothing applies.
        std::fs::write(f.keys(), format!("{}\n{{\"key\": \"stk_x\"\n", key.line())).unwrap();
        std::fs::write(
            f.devices(),
            "{\"id\": \"dev-2\", \"application\": \"app1\"}\n",
        )
        .unwrap();
        reload(userdata);
        let log = logged();
        assert!(
            log.contains("reload failed, the previous keys and devices stay in force")
                && log.contains(&format!("`{}` line 2:", f.keys().display())),
            "{log}"
        );
        assert!(kicked().is_empty());
        assert_eq!(
            publish(userdata, &dev, c"structure/dev-1/state"),
            MOSQ_ERR_SUCCESS
        );
        let dev2 = client(c"dev-2", &key.id);
        assert_eq!(connect(userdata, &dev2, &key.secret), MOSQ_ERR_SUCCESS);
        cleanup(userdata);
    }

    #[test]
    fn a_records_file_cannot_write_lines_into_the_log() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("forged", &[key.line()], &["dev-1"]);
        let mut opts = f.options(&[]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        clear();
        // serde's "unknown field" quotes the name as it is: a crafted name
        // holds a line break and a forged log line.
        let forged = "x\nstructure-access: device `dev-9` authenticated with access key `stk_x`";
        let json = serde_json::to_string(forged).unwrap();
        std::fs::write(f.devices(), format!("{{\"id\": \"dev-1\", {json}: 1}}\n")).unwrap();
        reload(userdata);
        let lines: Vec<String> = LOG.with(|l| l.borrow().clone());
        let failed: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("reload failed"))
            .collect();
        assert_eq!(failed.len(), 1, "{lines:?}");
        assert!(!failed[0].contains('\n'), "{lines:?}");
        assert!(
            failed[0].contains("unknown field `x\\u{a}structure-access: device"),
            "{lines:?}"
        );
        cleanup(userdata);
    }

    #[test]
    fn tick_reloads_changed_files_with_reload_interval() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("tick", &[key.line()], &["dev-1"]);
        let added = Key::new(2, Scope::Unrestricted);
        let dev2 = client(c"dev-2", &added.id);

        // Without the option, ticks never read the files.
        let mut opts = f.options(&[]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        f.write(&[key.line(), added.line()], &["dev-1", "dev-2"]);
        tick(userdata);
        settle(userdata);
        assert_eq!(connect(userdata, &dev2, &added.secret), MOSQ_ERR_AUTH);
        cleanup(userdata);

        f.write(&[key.line()], &["dev-1"]);
        let mut opts = f.options(&[("reload_interval", "1")]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        clear();
        tick(userdata);
        settle(userdata);
        assert!(
            !logged().contains("reloaded"),
            "unchanged files: {}",
            logged()
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
        f.write(&[key.line(), added.line()], &["dev-1", "dev-2"]);
        tick(userdata);
        settle(userdata);
        assert!(
            logged().contains("2 access keys and 2 devices in force"),
            "{}",
            logged()
        );
        assert_eq!(connect(userdata, &dev2, &added.secret), MOSQ_ERR_SUCCESS);
        // Within the interval, changes wait for the next look.
        clear();
        f.write(&[key.line()], &["dev-1"]);
        tick(userdata);
        settle(userdata);
        assert!(logged().is_empty(), "{}", logged());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        tick(userdata);
        settle(userdata);
        assert_eq!(kicked(), [("dev-2".to_owned(), false)], "{}", logged());
        // A broken file is reported once, not on every tick.
        clear();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(f.devices(), "oops\n").unwrap();
        tick(userdata);
        settle(userdata);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        tick(userdata);
        settle(userdata);
        assert_eq!(logged().matches("reload failed").count(), 1, "{}", logged());
        cleanup(userdata);
    }

    #[test]
    fn a_spent_argon2_budget_refuses_at_once_but_never_generated_secrets() {
        let key = Key::new(1, Scope::Unrestricted);
        // A record from before the fast scheme: an Argon2id verifier is on file.
        let legacy = AccessKey::generate(
            &mut ChaCha20Rng::seed_from_u64(2),
            "app1".parse().unwrap(),
            Scope::Unrestricted,
            &policy().argon2id_for_generated(true),
        )
        .unwrap()
        .record;
        let legacy = serde_json::to_string(&legacy).unwrap();
        let imported = c"an-imported-password-0123";
        let fast_for_imported = "an imported secret for an access key whose fast verifier proves generated secrets only";
        for (keys, legacy_why) in [
            // No Argon2 verifier on file, no imported (UUID-shaped) key: nothing
            // costs an Argon2 run, whatever the budget.
            (vec![key.line()], None),
            // One on file: the budget (here none) decides for it.
            (
                vec![key.line(), legacy.clone()],
                Some("the budget of slow (argon2) verifications is spent"),
            ),
        ] {
            let f = Files::new("budget", &keys, &["dev-1", "dev-2"]);
            let mut opts = f.options(&[("argon2_per_second", "0")]);
            let (rc, userdata) = init(&mut opts);
            assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
            // The generated secret needs no Argon2: it connects with no budget.
            let dev = client(c"dev-1", &key.id);
            assert_eq!(
                connect(userdata, &dev, &key.secret),
                MOSQ_ERR_SUCCESS,
                "{}",
                logged()
            );
            // An imported-shaped password: a generated key costs the fast
            // dummy, known or not (the cost rule goes by the key id's shape);
            // the Argon2 record is verified, within the budget.
            let legacy_id = CString::new(legacy_key(&legacy)).unwrap();
            let mut cases = vec![
                (key.id.as_c_str(), fast_for_imported),
                (c"stk_000000000000000000000u", "unknown access key"),
                (
                    c"00000000-0000-4000-8000-000000000000",
                    "unknown access key",
                ),
            ];
            if let Some(why) = legacy_why {
                cases.push((legacy_id.as_c_str(), why));
            }
            for (username, logged_why) in cases {
                clear();
                let other = client(c"dev-2", username);
                assert_eq!(connect(userdata, &other, imported), MOSQ_ERR_AUTH);
                assert!(logged().contains(logged_why), "{logged_why}: {}", logged());
                assert!(!logged().contains("an-imported-password"), "{}", logged());
            }
            cleanup(userdata);
        }
    }

    fn legacy_key(line: &str) -> String {
        let record: AccessKey = serde_json::from_str(line).unwrap();
        record.key().to_string()
    }

    #[test]
    fn defer_unknown_leaves_other_users_to_other_sources() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("defer", &[key.line()], &["dev-1"]);
        let dev = client(c"dev-1", &key.id);
        let alice = client(c"alice-laptop", c"alice");
        let pass = c"alice's password".as_ptr();
        for (defer, unknown) in [(false, MOSQ_ERR_AUTH), (true, MOSQ_ERR_PLUGIN_DEFER)] {
            let mut opts = f.options(&[("defer_unknown", if defer { "true" } else { "false" })]);
            let (rc, userdata) = init(&mut opts);
            assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
            assert_eq!(basic_auth(userdata, &alice, alice.username, pass), unknown);
            let unknown_key = client(c"dev-1", c"stk_000000000000000000000u");
            assert_eq!(connect(userdata, &unknown_key, &key.secret), unknown);
            // A known key is this plugin's to decide.
            assert_eq!(connect(userdata, &dev, c"wrong"), MOSQ_ERR_AUTH);
            assert_eq!(connect(userdata, &dev, &key.secret), MOSQ_ERR_SUCCESS);
            let acl_unknown = if defer {
                MOSQ_ERR_PLUGIN_DEFER
            } else {
                MOSQ_ERR_ACL_DENIED
            };
            assert_eq!(publish(userdata, &alice, c"home/alice"), acl_unknown);
            assert_eq!(publish(userdata, &dev, c"structure/dev-1/state"), 0);
            assert_eq!(
                publish(userdata, &dev, c"structure/dev-1/command"),
                MOSQ_ERR_ACL_DENIED
            );
            cleanup(userdata);
        }
    }

    /// One line per refusal with the address; nothing the client typed unless
    /// it is a known key or a valid device ID; quoted input escaped.
    #[test]
    fn refusals_log_only_what_is_safe_to_show() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("logs", &[key.line()], &["dev-1"]);
        let mut opts = f.options(&[]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        let legacy = c"3f2a9c0d8b7e6f5a4c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f";
        let typed = c"hunter2 is my password";
        let cases: [(FakeClient, *const c_char, &str); 6] = [
            // A secret typed as the username, with a malformed password.
            (
                client(c"dev-1", legacy),
                c"x".as_ptr(),
                "unknown access key",
            ),
            (
                client(c"dev-1", typed),
                c"x".as_ptr(),
                "the username is not an access key",
            ),
            // A key-shaped unknown username, malformed password.
            (
                client(c"dev-1", c"stk_000000000000000000000u"),
                c"x".as_ptr(),
                "unknown access key",
            ),
            // A client id with bidirectional and line-separator characters.
            (
                client(c"dev\xe2\x80\xae-1\xe2\x80\xa8x", &key.id),
                key.secret.as_ptr(),
                "the client id is not a valid device ID",
            ),
            (client(c"dev-1", &key.id), c"x".as_ptr(), "malformed secret"),
            (
                client(c"nobody", &key.id),
                key.secret.as_ptr(),
                "unknown device",
            ),
        ];
        for (c, pass, why) in cases {
            clear();
            assert_eq!(basic_auth(userdata, &c, c.username, pass), MOSQ_ERR_AUTH);
            // One line, and (no audit file configured) its audit event.
            let log = logged();
            let (audit, lines): (Vec<_>, Vec<_>) = log
                .lines()
                .partition(|l| l.starts_with("structure-access: audit {"));
            assert_eq!((lines.len(), audit.len()), (1, 1), "{log}");
            assert!(audit[0].contains("\"event\":\"auth_refused\""), "{log}");
            assert!(
                log.contains(why) && log.contains("at 192.0.2.7"),
                "{why}: {log}"
            );
            assert!(!log.contains(legacy.to_str().unwrap()), "{log}");
            assert!(!log.contains("hunter2"), "{log}");
            assert!(!log.contains("stk_000"), "{log}");
            assert!(!log.contains(['\u{202e}', '\u{2028}']), "{log}");
        }
        // A wrong secret names the device and the key once.
        clear();
        let dev = client(c"dev-1", &key.id);
        assert_eq!(connect(userdata, &dev, c"sts_wrong"), MOSQ_ERR_AUTH);
        let log = logged();
        let lines: String = log
            .lines()
            .filter(|l| !l.starts_with("structure-access: audit {"))
            .collect();
        assert_eq!(lines.matches(key.id.to_str().unwrap()).count(), 1, "{log}");
        // ACL refusals: access as a word, the topic escaped.
        assert_eq!(connect(userdata, &dev, &key.secret), MOSQ_ERR_SUCCESS);
        clear();
        let topic = c"structure/dev-1/command\xe2\x80\xae";
        assert_eq!(publish(userdata, &dev, topic), MOSQ_ERR_ACL_DENIED);
        assert_eq!(
            acl(
                userdata,
                &dev,
                MOSQ_ACL_SUBSCRIBE,
                c"structure/dev-1/other".as_ptr()
            ),
            MOSQ_ERR_ACL_DENIED
        );
        let log = logged();
        assert!(
            log.contains("at 192.0.2.7: publish `structure/dev-1/command\\u{202e}`"),
            "{log}"
        );
        assert!(log.contains(": subscribe `structure/dev-1/other`"), "{log}");
        assert_eq!(log.lines().count(), 2, "{log}");
        assert_eq!(log.matches(key.id.to_str().unwrap()).count(), 2, "{log}");
        cleanup(userdata);
    }

    #[test]
    fn the_lines_clients_cause_are_bounded_and_counted() {
        let key = Key::new(1, Scope::Unrestricted);
        let f = Files::new("lines", &[key.line()], &["dev-1"]);
        let mut opts = f.options(&[]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        let dev = client(c"dev-1", &key.id);
        assert_eq!(connect(userdata, &dev, &key.secret), MOSQ_ERR_SUCCESS);
        clear();
        // 30 denials at once: each is denied, 20 are logged...
        for _ in 0..30 {
            assert_eq!(publish(userdata, &dev, c"elsewhere/x"), MOSQ_ERR_ACL_DENIED);
        }
        assert_eq!(logged().lines().count(), 20, "{}", logged());
        // ...and a second later the next line counts the other 10.
        std::thread::sleep(std::time::Duration::from_millis(1050));
        clear();
        assert_eq!(publish(userdata, &dev, c"elsewhere/y"), MOSQ_ERR_ACL_DENIED);
        let log = logged();
        assert!(
            log.contains("publish `elsewhere/y` (and 10 more refusals or denials"),
            "{log}"
        );
        // A count no later line carries is written on a tick once its second
        // is over: 19 more lines fit in the second `elsewhere/y` opened.
        for _ in 0..25 {
            assert_eq!(publish(userdata, &dev, c"elsewhere/z"), MOSQ_ERR_ACL_DENIED);
        }
        std::thread::sleep(std::time::Duration::from_millis(1050));
        clear();
        tick(userdata);
        let log = logged();
        assert!(
            log.contains("structure-access: 6 more refusals or denials not logged one by one"),
            "{log}"
        );
        cleanup(userdata);
    }
}
