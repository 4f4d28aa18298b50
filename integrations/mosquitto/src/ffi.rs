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
const MOSQ_EVT_ACL_CHECK: c_int = 2;
const MOSQ_EVT_BASIC_AUTH: c_int = 3;
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
    mosquitto_client_id,
};

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

fn log_outcome(outcome: &Outcome) {
    if let Some(line) = &outcome.log {
        let level = match outcome.verdict {
            // Mosquitto logs every accepted client itself; ours is detail.
            Verdict::Allow => MOSQ_LOG_DEBUG,
            Verdict::Deny => MOSQ_LOG_NOTICE,
        };
        log(level, line);
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
        let plugin = match Plugin::from_options(&options) {
            Ok(plugin) => plugin,
            Err(e) => {
                log(MOSQ_LOG_ERR, &format!("{e}; refusing to start"));
                return MOSQ_ERR_INVAL;
            }
        };
        log(
            MOSQ_LOG_INFO,
            &format!(
                "loaded {} access key(s) and {} device(s)",
                plugin.key_count(),
                plugin.device_count()
            ),
        );
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

const CALLBACKS: [(c_int, Callback); 3] = [
    (MOSQ_EVT_BASIC_AUTH, on_basic_auth),
    (MOSQ_EVT_ACL_CHECK, on_acl_check),
    (MOSQ_EVT_DISCONNECT, on_disconnect),
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
        let (client_id, address) = if event.client.is_null() {
            (None, None)
        } else {
            // SAFETY: the client pointer is Mosquitto's own, valid for the call;
            // the returned strings are NUL-terminated or null.
            unsafe {
                (
                    bytes(mosquitto_client_id(event.client)),
                    bytes(mosquitto_client_address(event.client)),
                )
            }
        };
        // SAFETY: username and password are NUL-terminated strings or null.
        let (username, password) = unsafe { (bytes(event.username), bytes(event.password)) };
        let outcome = plugin.basic_auth(
            event.client as usize,
            address,
            client_id,
            username,
            password,
        );
        log_outcome(&outcome);
        match outcome.verdict {
            Verdict::Allow => MOSQ_ERR_SUCCESS,
            Verdict::Deny => MOSQ_ERR_AUTH,
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
        // SAFETY: the topic is a NUL-terminated string or null.
        let topic = unsafe { bytes(event.topic) };
        let outcome = plugin.acl_check(event.client as usize, access, topic);
        log_outcome(&outcome);
        match outcome.verdict {
            Verdict::Allow => MOSQ_ERR_SUCCESS,
            Verdict::Deny => MOSQ_ERR_ACL_DENIED,
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
            plugin.disconnect(event.client as usize);
        }
        MOSQ_ERR_SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::fake::{LOG, REGISTERED};
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    use structure_access::{AccessKey, HashPolicy, Scope};

    fn logged() -> String {
        LOG.with(|l| l.borrow().join("\n"))
    }

    struct Files {
        dir: std::path::PathBuf,
        secret: String,
        key: String,
    }

    fn files(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("structure-ffi-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let policy = HashPolicy::default().with_params(64, 1, 1).unwrap();
        let new = AccessKey::generate(
            &mut ChaCha20Rng::seed_from_u64(1),
            "app1".parse().unwrap(),
            Scope::Unrestricted,
            &policy,
        )
        .unwrap();
        std::fs::write(
            dir.join("keys"),
            serde_json::to_string(&new.record).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join("devices"),
            "{\"id\": \"dev-1\", \"application\": \"app1\"}\n",
        )
        .unwrap();
        Files {
            secret: new.secret.expose_secret().to_owned(),
            key: new.record.key().to_string(),
            dir,
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

    fn basic_auth(
        userdata: *mut c_void,
        client: &CStr,
        user: *const c_char,
        pass: *const c_char,
    ) -> c_int {
        let mut event = EvtBasicAuth {
            future: ptr::null_mut(),
            client: client.as_ptr().cast_mut().cast(),
            username: user.cast_mut(),
            password: pass.cast_mut(),
            future2: [ptr::null_mut(); 4],
        };
        // SAFETY: a valid event and the state from init.
        unsafe { on_basic_auth(MOSQ_EVT_BASIC_AUTH, (&raw mut event).cast(), userdata) }
    }

    fn acl(userdata: *mut c_void, client: &CStr, access: c_int, topic: *const c_char) -> c_int {
        let mut event = EvtAclCheck {
            future: ptr::null_mut(),
            client: client.as_ptr().cast_mut().cast(),
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

    #[test]
    fn a_spent_argon2_budget_refuses_at_once_but_never_generated_secrets() {
        let f = files("budget");
        let mut opts = options(&[
            ("keys_file", f.dir.join("keys").display().to_string()),
            ("devices_file", f.dir.join("devices").display().to_string()),
            ("argon2_per_second", "0".into()),
        ]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        let client = c"dev-1";
        let key = CString::new(f.key.clone()).unwrap();
        let secret = CString::new(f.secret.clone()).unwrap();
        // The generated secret needs no Argon2: it connects with no budget at all.
        assert_eq!(
            basic_auth(userdata, client, key.as_ptr(), secret.as_ptr()),
            MOSQ_ERR_SUCCESS,
            "{}",
            logged()
        );
        // An imported-shaped password would cost an Argon2 run: refused at once.
        LOG.with(|l| l.borrow_mut().clear());
        let imported = c"an-imported-password-0123";
        assert_eq!(
            basic_auth(userdata, client, key.as_ptr(), imported.as_ptr()),
            MOSQ_ERR_AUTH
        );
        assert!(logged().contains("budget"), "{}", logged());
        assert!(!logged().contains("an-imported-password"), "{}", logged());
        let unknown = c"stk_000000000000000000000u";
        assert_eq!(
            basic_auth(userdata, client, unknown.as_ptr(), imported.as_ptr()),
            MOSQ_ERR_AUTH
        );
        // SAFETY: the state from init, freed once.
        unsafe { mosquitto_plugin_cleanup(userdata, ptr::null_mut(), 0) };
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
        let f = files("bad");
        std::fs::write(
            f.dir.join("broken"),
            "{\"id\": \"dev-1\", \"application\": \"app1\"}\n\n# comment\nnot json\n",
        )
        .unwrap();
        let cases = [
            (vec![], "missing option `plugin_opt_keys_file`"),
            (
                vec![
                    ("keys_file", f.dir.join("nope").display().to_string()),
                    ("devices_file", String::new()),
                ],
                "cannot read",
            ),
            (
                vec![
                    ("keys_file", f.dir.join("keys").display().to_string()),
                    ("devices_file", f.dir.join("broken").display().to_string()),
                ],
                "broken` line 4:",
            ),
            (
                vec![
                    ("keys_file", f.dir.join("broken").display().to_string()),
                    ("devices_file", f.dir.join("devices").display().to_string()),
                ],
                "broken` line 1:",
            ),
            (vec![("allow_all", "true".into())], "unknown option"),
            (
                vec![
                    ("keys_file", f.dir.join("keys").display().to_string()),
                    ("devices_file", f.dir.join("devices").display().to_string()),
                    ("hash_max_m", "lots".into()),
                ],
                "`lots` is not a whole number",
            ),
        ];
        for (pairs, message) in cases {
            LOG.with(|l| l.borrow_mut().clear());
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
        let f = files("null");
        let mut opts = options(&[
            ("keys_file", f.dir.join("keys").display().to_string()),
            ("devices_file", f.dir.join("devices").display().to_string()),
            ("cache_capacity", "0".into()),
        ]);
        let (rc, userdata) = init(&mut opts);
        assert_eq!(rc, MOSQ_ERR_SUCCESS, "{}", logged());
        assert_eq!(REGISTERED.with(|r| r.borrow().len()), 3);
        let client = c"dev-1";
        let key = CString::new(f.key.clone()).unwrap();
        let secret = CString::new(f.secret.clone()).unwrap();
        let invalid = [0xff_u8, 0xfe, 0];
        let invalid = invalid.as_ptr().cast::<c_char>();

        // SAFETY: null event data and userdata are what is tested.
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
        }
        assert_eq!(
            basic_auth(ptr::null_mut(), client, key.as_ptr(), secret.as_ptr()),
            MOSQ_ERR_AUTH
        );
        assert_eq!(
            basic_auth(userdata, client, ptr::null(), secret.as_ptr()),
            MOSQ_ERR_AUTH
        );
        assert_eq!(
            basic_auth(userdata, client, key.as_ptr(), ptr::null()),
            MOSQ_ERR_AUTH
        );
        assert_eq!(
            basic_auth(userdata, client, invalid, secret.as_ptr()),
            MOSQ_ERR_AUTH
        );
        assert_eq!(
            basic_auth(userdata, client, key.as_ptr(), invalid),
            MOSQ_ERR_AUTH
        );
        let bad_client = CStr::from_bytes_with_nul(&[0xff, 0]).unwrap();
        assert_eq!(
            basic_auth(userdata, bad_client, key.as_ptr(), secret.as_ptr()),
            MOSQ_ERR_AUTH
        );
        // Not authenticated yet: every ACL check is denied.
        assert_eq!(
            acl(
                userdata,
                client,
                MOSQ_ACL_WRITE,
                c"structure/dev-1/state".as_ptr()
            ),
            MOSQ_ERR_ACL_DENIED
        );

        assert_eq!(
            basic_auth(userdata, client, key.as_ptr(), secret.as_ptr()),
            MOSQ_ERR_SUCCESS
        );
        let own = c"structure/dev-1/state".as_ptr();
        assert_eq!(acl(userdata, client, MOSQ_ACL_WRITE, own), MOSQ_ERR_SUCCESS);
        assert_eq!(
            acl(userdata, client, MOSQ_ACL_WRITE, ptr::null()),
            MOSQ_ERR_ACL_DENIED
        );
        assert_eq!(
            acl(userdata, client, MOSQ_ACL_WRITE, invalid),
            MOSQ_ERR_ACL_DENIED
        );
        assert_eq!(acl(userdata, client, 0x40, own), MOSQ_ERR_ACL_DENIED);
        assert_eq!(
            acl(ptr::null_mut(), client, MOSQ_ACL_WRITE, own),
            MOSQ_ERR_ACL_DENIED
        );
        assert_eq!(
            acl(
                userdata,
                client,
                MOSQ_ACL_WRITE,
                c"structure/dev-1/command".as_ptr()
            ),
            MOSQ_ERR_ACL_DENIED
        );
        assert!(!logged().contains(&f.secret), "the secret reached the log");

        let mut gone = EvtDisconnect {
            future: ptr::null_mut(),
            client: client.as_ptr().cast_mut().cast(),
            reason: 0,
            future2: [ptr::null_mut(); 4],
        };
        // SAFETY: a valid event and the state from init; then the state is freed once.
        unsafe {
            assert_eq!(
                on_disconnect(MOSQ_EVT_DISCONNECT, (&raw mut gone).cast(), userdata),
                MOSQ_ERR_SUCCESS
            );
        }
        // After the disconnect the principal is gone.
        assert_eq!(
            acl(userdata, client, MOSQ_ACL_WRITE, own),
            MOSQ_ERR_ACL_DENIED
        );
        // SAFETY: the state from init, freed exactly once; then a null one.
        unsafe {
            assert_eq!(
                mosquitto_plugin_cleanup(userdata, ptr::null_mut(), 0),
                MOSQ_ERR_SUCCESS
            );
            assert_eq!(
                mosquitto_plugin_cleanup(ptr::null_mut(), ptr::null_mut(), 0),
                MOSQ_ERR_SUCCESS
            );
        }
        assert_eq!(REGISTERED.with(|r| r.borrow().len()), 0);
    }
}
