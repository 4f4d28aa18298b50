//! End to end: a real `mosquitto` broker loads the plugin, and real MQTT clients
//! (`mosquitto_pub`, `mosquitto_sub`) connect, publish and subscribe.
//!
//! Needs the Debian packages `mosquitto` and `mosquitto-clients`. Without them the
//! test says so and passes, unless `STRUCTURE_E2E_REQUIRED` is set (CI sets it,
//! after installing them).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{AdditionalTopics, FilterList};
use structure_access::{
    AccessKey, Cost, DeviceRecord, HashPolicy, KeyStatus, Restriction, Scope, UnixTime,
};
use structure_access_common::throttle::LogBudget;
use structure_access_common::wire;

/// Two applications share the broker.
const APP_A: &str = "64b1f0c2a7e3d95b8c4f2a10";
const APP_B: &str = "64b1f0c2a7e3d95b8c4f2a11";

#[derive(Clone)]
struct Key {
    id: String,
    secret: String,
}

/// The broker process; killed when dropped, whether the test passed or not.
struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether the broker and its clients are installed; without them a test
/// passes with a note, unless `STRUCTURE_E2E_REQUIRED` is set (CI).
fn broker_available() -> bool {
    if have("mosquitto") && have("mosquitto_pub") && have("mosquitto_sub") {
        return true;
    }
    assert!(
        std::env::var_os("STRUCTURE_E2E_REQUIRED").is_none(),
        "mosquitto, mosquitto_pub and mosquitto_sub are required"
    );
    eprintln!("skipped: install mosquitto and mosquitto-clients to run this test");
    false
}

fn built_plugin_path() -> PathBuf {
    // target/<profile>/deps/e2e-… → target/<profile>/libstructure_access_mosquitto.so
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("libstructure_access_mosquitto.so")
}

/// Cargo builds only the rlib for integration tests, not the plugin itself:
/// build it once per test run (a no-op when it is up to date).
fn build_plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--lib", "-p", "structure-access-mosquitto"]);
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let status = cargo.status().unwrap();
        assert!(status.success(), "building the plugin failed");
        let path = built_plugin_path();
        assert!(path.exists(), "plugin not built at {}", path.display());
        path
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    // Replace, as an operator's editor or deployment would: a new inode.
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A fresh directory the broker can read whatever the checkout's
/// permissions: under the system's temporary directory, mode 0755, holding
/// a copy of the plugin and the files. (Started as root, Mosquitto drops to
/// user `mosquitto` unless the configuration says `user root`, which it
/// says here; either alone suffices.)
fn broker_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("structure-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = dir.join("libstructure_access_mosquitto.so");
    std::fs::copy(build_plugin(), &plugin).unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn start_broker(name: &str, keys: &str, devices: &str, extra: &str) -> Broker {
    let dir = broker_dir(name);
    let keys_file = dir.join("keys.jsonl");
    let devices_file = dir.join("devices.jsonl");
    write(&keys_file, keys);
    write(&devices_file, devices);
    let port = free_port();
    let log = dir.join("mosquitto.log");
    let conf = dir.join("mosquitto.conf");
    let user = if running_as_root() { "user root\n" } else { "" };
    write(
        &conf,
        &format!(
            "{user}listener {port} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
             plugin_opt_keys_file {}\nplugin_opt_devices_file {}\n\
             log_dest stderr\nlog_type all\npersistence false\n{extra}",
            dir.join("libstructure_access_mosquitto.so").display(),
            keys_file.display(),
            devices_file.display(),
        ),
    );
    // Unbuffered: mosquitto writes each log line to stderr as it happens.
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let mut broker = Broker {
        child,
        port,
        log,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline && broker.child.try_wait().unwrap().is_none(),
            "broker did not start:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker
}

impl Broker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn keys_file(&self) -> PathBuf {
        self.dir.join("keys.jsonl")
    }

    fn devices_file(&self) -> PathBuf {
        self.dir.join("devices.jsonl")
    }

    /// Sends SIGHUP; returns when it was sent.
    fn sighup(&self) -> Instant {
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        sent
    }

    /// Waits (generously) until the log contains `text`.
    fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "log lacks `{text}`:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn publish(&self, device: &str, key: &Key, topic: &str, message: &str) -> Output {
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1"])
            .args([
                "-i",
                device,
                "-u",
                &key.id,
                "-P",
                &key.secret,
                "-t",
                topic,
                "-m",
                message,
            ])
            .output()
            .unwrap()
    }

    /// Starts a subscriber that prints `topic payload` lines and exits after
    /// `count` messages (a clean exit flushes its output) or 20 seconds.
    fn subscribe(&self, device: &str, key: &Key, filter: &str, count: u32) -> Child {
        self.subscribe_with(device, key, filter, &["-C", &count.to_string(), "-W", "20"])
    }

    fn subscribe_with(&self, device: &str, key: &Key, filter: &str, extra: &[&str]) -> Child {
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-q",
                "1",
                "-v",
            ])
            .args(["-i", device, "-u", &key.id, "-P", &key.secret, "-t", filter])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A raw MQTT 3.1.1 connection (clean session).
    fn connect(&self, device: &str, key: &Key) -> (Mqtt, u8) {
        Mqtt::connect(self.port, device, key, None)
    }
}

/// A minimal MQTT 3.1.1 client over TCP: what the CLI tools cannot show, such
/// as the moment the broker closes a live session.
struct Mqtt {
    stream: TcpStream,
}

impl Mqtt {
    /// CONNECT (clean session, keep-alive 60 s, QoS 0 will if given);
    /// returns the connection and the CONNACK return code.
    fn connect(port: u16, device: &str, key: &Key, will: Option<(&str, &str)>) -> (Self, u8) {
        let connect = wire::connect_with_will(device, Some((&key.id, &key.secret)), 60, will);
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(&connect).unwrap();
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).unwrap();
        assert_eq!(connack[0], 0x20, "not a CONNACK: {connack:?}");
        (Self { stream }, connack[3])
    }

    /// PUBLISH at QoS 0.
    fn publish(&mut self, topic: &str, message: &str) {
        let mut body = Vec::new();
        wire::string(&mut body, topic);
        body.extend_from_slice(message.as_bytes());
        self.stream.write_all(&wire::packet(0x30, &body)).unwrap();
    }

    /// PINGREQ → PINGRESP round trip (the session is alive and served).
    fn ping(&mut self) -> Duration {
        let start = Instant::now();
        self.stream.write_all(&[0xC0, 0x00]).unwrap();
        let mut response = [0u8; 2];
        self.stream.read_exact(&mut response).unwrap();
        assert_eq!(response, [0xD0, 0x00]);
        start.elapsed()
    }

    /// Waits until the broker closes the connection; returns when, or `None`
    /// after `timeout`. Packets before the close are skipped.
    fn closed_within(&mut self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 512];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut buffer) {
                Ok(0) => return Some(Instant::now()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(_) => return Some(Instant::now()),
            }
        }
    }
}

struct Fixture {
    policy: HashPolicy,
    rng: ChaCha20Rng,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        Self {
            // Cheap parameters: the tests are about the broker, not Argon2.
            policy: HashPolicy::default()
                .with_params(Cost::new(256, 1, 1))
                .unwrap(),
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// A key record (its JSON line) and its credentials.
    fn key(&mut self, app: &str, scope: Scope, status: KeyStatus) -> (AccessKey, String, Key) {
        let new =
            AccessKey::generate(&mut self.rng, app.parse().unwrap(), scope, &self.policy).unwrap();
        let record = new.record.with_status(status);
        let key = Key {
            id: record.key().to_string(),
            secret: new.secret.expose_secret().to_owned(),
        };
        let line = serde_json::to_string(&record).unwrap() + "\n";
        (record, line, key)
    }
}

fn device(app: &str, id: &str, tags: &[(&str, &str)]) -> String {
    let record = tags.iter().fold(
        DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap()),
        |d, (k, v)| d.with_tag(k, v),
    );
    serde_json::to_string(&record).unwrap() + "\n"
}

fn connected(output: &Output) -> bool {
    output.status.success()
}

fn refused(output: &Output) -> bool {
    !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("not authorised")
}

#[test]
fn a_real_broker_enforces_access_keys_and_topics() {
    if !broker_available() {
        return;
    }
    let mut fixture = Fixture::new(2026);
    let mut generate_with = |app: &str, scope: Scope, status: KeyStatus, topics| {
        let (record, _, key) = fixture.key(app, scope, status);
        let record = record.with_additional_topics(topics);
        (serde_json::to_string(&record).unwrap(), key)
    };
    let mut generate = |app: &str, scope: Scope, status: KeyStatus| {
        generate_with(app, scope, status, AdditionalTopics::None)
    };
    let trucks: Restriction = "vehicle=truck,gw-1".parse().unwrap();
    let (restricted_json, restricted) = generate(APP_A, trucks.into(), KeyStatus::Active);
    let (open_json, open) = generate(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (inactive_json, inactive) = generate(APP_A, Scope::Unrestricted, KeyStatus::Inactive);
    // An unrestricted key of a second application on the same broker.
    let (b_json, b_open) = generate(APP_B, Scope::Unrestricted, KeyStatus::Active);
    // "No custom topics": a deny-list of `#`, which must cover `$` topics too.
    let no_custom = AdditionalTopics::DenyList {
        publish: FilterList::new(["#"]).unwrap(),
        subscribe: FilterList::new(["#"]).unwrap(),
    };
    let (no_custom_json, no_custom) =
        generate_with(APP_A, Scope::Unrestricted, KeyStatus::Active, no_custom);
    let unknown = Key {
        id: "stk_000000000000000000000u".into(),
        secret: restricted.secret.clone(),
    };
    let wrong = Key {
        id: restricted.id.clone(),
        secret: open.secret.clone(),
    };
    let keys =
        format!("{restricted_json}\n{open_json}\n{inactive_json}\n{b_json}\n{no_custom_json}\n");
    let devices = [
        device(APP_A, "gw-1", &[]),
        device(APP_A, "truck-1", &[("vehicle", "truck")]),
        device(APP_A, "truck-2", &[("vehicle", "truck")]),
        device(APP_A, "car-1", &[("vehicle", "car")]),
        device(APP_A, "monitor", &[]),
        device(APP_B, "b-truck", &[("vehicle", "truck")]),
        device(APP_B, "b-monitor", &[]),
    ]
    .concat();
    let broker = start_broker("policy", &keys, &devices, "");
    let log = || broker.log();

    // CONNECT: the right credentials connect; every wrong one is "not authorised".
    let ok = broker.publish("truck-1", &restricted, "structure/truck-1/state", "1");
    assert!(connected(&ok), "{ok:?}\n{}", log());
    for (device, key, why) in [
        ("truck-1", &wrong, "wrong secret"),
        ("truck-1", &unknown, "unknown access key"),
        ("truck-1", &inactive, "inactive"),
        ("car-1", &restricted, "outside the scope"),
        ("nobody", &open, "unknown device"),
        // Unrestricted, but of application A: not a device of application B.
        ("b-truck", &open, "another application"),
        ("monitor", &b_open, "another application"),
        // An imported-shaped password for a generated key's fast verifier is
        // refused after the fast dummy (the cost rule goes by the key id's
        // shape), without Argon2.
        (
            "truck-1",
            &Key {
                id: restricted.id.clone(),
                secret: "an-imported-password-0123".into(),
            },
            "an imported secret for an access key whose fast verifier proves generated secrets only",
        ),
        // No key on file costs Argon2: an unknown UUID-shaped key is refused at
        // once, without the Argon2 dummy.
        (
            "truck-1",
            &Key {
                id: "00000000-0000-4000-8000-000000000000".into(),
                secret: "an-imported-password-0123".into(),
            },
            "unknown access key",
        ),
    ] {
        let out = broker.publish(device, key, &format!("structure/{device}/state"), "x");
        assert!(refused(&out), "{why}: {out:?}");
        assert!(log().contains(why), "log lacks `{why}`:\n{}", log());
    }
    assert!(
        !log().contains(&restricted.secret),
        "a secret reached the log"
    );
    assert!(!log().contains(&open.secret), "a secret reached the log");

    // SUBSCRIBE to an out-of-scope device's topics is denied.
    // So is a shared subscription to them (done when 8), while a shared
    // subscription to an in-scope device is granted.
    for filter in ["structure/car-1/state", "$share/g/structure/car-1/state"] {
        let denied = broker.subscribe("truck-1", &restricted, filter, 1);
        let out = denied.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("subscription requests were denied"),
            "{filter}: {out:?}\n{}",
            log()
        );
    }
    let out = broker
        .subscribe_with(
            "truck-1",
            &restricted,
            "$share/g/structure/truck-2/state",
            &["-E"],
        )
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", log());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("denied"),
        "{out:?}"
    );

    // A wildcard subscription of a restricted key receives in-scope devices only;
    // an unrestricted key's receives every device.
    // Each subscriber exits after the messages it should get; a leaked message
    // would take the place of a later one.
    let restricted_sub = broker.subscribe("gw-1", &restricted, "structure/+/state", 2);
    let open_sub = broker.subscribe("monitor", &open, "structure/+/state", 3);
    // Application B's unrestricted wildcard subscriber: its own device only.
    let b_sub = broker.subscribe("b-monitor", &b_open, "structure/+/state", 1);
    std::thread::sleep(Duration::from_millis(800));
    // A restricted device may not publish another device's state outside its scope.
    let out = broker.publish("truck-1", &restricted, "structure/car-1/state", "forged");
    assert!(
        out.status.success(),
        "QoS 1 publish completes even when dropped: {out:?}"
    );
    for (device, key) in [
        ("truck-2", &restricted),
        ("car-1", &open),
        ("b-truck", &b_open),
        ("truck-1", &restricted),
    ] {
        let out = broker.publish(device, key, &format!("structure/{device}/state"), device);
        assert!(connected(&out), "{device}: {out:?}\n{}", log());
    }
    let restricted_seen =
        String::from_utf8_lossy(&restricted_sub.wait_with_output().unwrap().stdout).into_owned();
    let open_seen =
        String::from_utf8_lossy(&open_sub.wait_with_output().unwrap().stdout).into_owned();
    let b_seen = String::from_utf8_lossy(&b_sub.wait_with_output().unwrap().stdout).into_owned();
    assert_eq!(
        b_seen.trim_end(),
        "structure/b-truck/state b-truck",
        "application B's subscriber\n{}",
        log()
    );
    for seen in [&restricted_seen, &open_seen] {
        assert!(
            !seen.contains("b-truck"),
            "application B's state reached application A: {seen}"
        );
    }
    assert!(
        open_seen.contains("structure/truck-1/state truck-1"),
        "{open_seen}"
    );
    assert!(
        restricted_seen.contains("structure/truck-2/state truck-2"),
        "{restricted_seen}\n{}",
        log()
    );
    assert!(
        restricted_seen.contains("structure/truck-1/state truck-1"),
        "{restricted_seen}"
    );
    assert!(
        !restricted_seen.contains("car-1"),
        "out-of-scope message leaked: {restricted_seen}"
    );
    assert!(
        open_seen.contains("structure/car-1/state car-1"),
        "{open_seen}\n{}",
        log()
    );
    assert!(
        open_seen.contains("structure/truck-2/state truck-2"),
        "{open_seen}"
    );
    assert!(
        !open_seen.contains("forged"),
        "a forged state was delivered: {open_seen}"
    );
    assert!(
        log().contains("publish `structure/car-1/state`"),
        "{}",
        log()
    );

    // A deny-list of `#` denies `$covert/x` as it denies `covert/x`: neither a
    // subscription nor a publication gets through.
    for filter in ["covert/x", "$covert/x", "$covert/#"] {
        let denied = broker.subscribe("monitor", &no_custom, filter, 1);
        let out = denied.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("subscription requests were denied"),
            "subscribe `{filter}`: {out:?}\n{}",
            log()
        );
    }
    for topic in ["covert/x", "$covert/x"] {
        let out = broker.publish("gw-1", &no_custom, topic, "covert");
        assert!(connected(&out), "{out:?}\n{}", log());
        assert!(
            log().contains(&format!("publish `{topic}`")),
            "publish `{topic}`:\n{}",
            log()
        );
    }
}

/// Done when 1 and 2: after each change and a SIGHUP, the live session of the
/// revoked key or device is closed within 1 s and its reconnect is refused;
/// the other sessions stay connected and served.
#[test]
fn sighup_revocation_reaches_live_sessions() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(12);
    let open = |f: &mut Fixture| f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, deleted_line, deleted) = open(&mut f);
    let (inactive_record, inactive_line, inactive) = open(&mut f);
    let (rotated_record, rotated_line, rotated) = open(&mut f);
    let (_, keep_line, keep) = open(&mut f);
    let trucks: Restriction = "vehicle=truck".parse().unwrap();
    let (_, trucks_line, trucks_key) = f.key(APP_A, trucks.into(), KeyStatus::Active);
    let mut keys = vec![
        deleted_line,
        inactive_line,
        rotated_line,
        keep_line.clone(),
        trucks_line,
    ];
    let mut devices = vec![
        device(APP_A, "d-deleted-key", &[]),
        device(APP_A, "d-inactive", &[]),
        device(APP_A, "d-rotated", &[]),
        device(APP_A, "d-gone", &[]),
        device(APP_A, "truck-1", &[("vehicle", "truck")]),
        device(APP_A, "d-keep", &[]),
    ];
    // Mosquitto re-checks every client on SIGHUP: without the verification
    // cache, only the plugin's sessions keep that cheap.
    let broker = start_broker(
        "revoke",
        &keys.concat(),
        &devices.concat(),
        "plugin_opt_cache_capacity 0\n",
    );
    let mut keeper = broker.connect("d-keep", &keep);
    assert_eq!(keeper.1, 0, "{}", broker.log());

    // Each change, the session it must end, and the key it connects with.
    type Change = Box<dyn Fn(&mut Vec<String>, &mut Vec<String>)>;
    let (new_verifier_record, _, _) = open(&mut f);
    let rotated_again = AccessKey::new(
        *rotated_record.key(),
        *rotated_record.application(),
        new_verifier_record.verifier().clone(),
        Scope::Unrestricted,
    );
    let cases: Vec<(&str, &Key, &str, Change)> = vec![
        (
            "d-deleted-key",
            &deleted,
            "the access key was deleted",
            Box::new(|k, _| {
                k.remove(0);
            }),
        ),
        (
            "d-inactive",
            &inactive,
            "the access key is inactive",
            Box::new(move |k, _| {
                let line = serde_json::to_string(
                    &inactive_record.clone().with_status(KeyStatus::Inactive),
                )
                .unwrap();
                k[0] = line + "\n";
            }),
        ),
        (
            "d-gone",
            &keep,
            "the device was deleted",
            Box::new(|_, d| d.retain(|line| !line.contains("\"d-gone\""))),
        ),
        (
            "truck-1",
            &trucks_key,
            "outside the scope of the access key",
            Box::new(|_, d| {
                for line in d.iter_mut() {
                    if line.contains("\"truck-1\"") {
                        *line = device(APP_A, "truck-1", &[("vehicle", "car")]);
                    }
                }
            }),
        ),
        (
            "d-rotated",
            &rotated,
            "secret was rotated",
            Box::new(move |k, _| {
                for line in k.iter_mut() {
                    if line.contains(&rotated_again.key().to_string()) {
                        *line = serde_json::to_string(&rotated_again).unwrap() + "\n";
                    }
                }
            }),
        ),
    ];
    for (device_id, key, why, change) in cases {
        let (mut session, rc) = broker.connect(device_id, key);
        assert_eq!(rc, 0, "{device_id}: {}", broker.log());
        session.ping();
        change(&mut keys, &mut devices);
        write(&broker.keys_file(), &keys.concat());
        write(&broker.devices_file(), &devices.concat());
        let sent = broker.sighup();
        let closed = session
            .closed_within(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{device_id}: still connected\n{}", broker.log()));
        let took = closed.duration_since(sent);
        assert!(
            took < Duration::from_secs(1),
            "{device_id}: closed {took:?} after SIGHUP"
        );
        broker.wait_log(&format!("disconnecting device `{device_id}`"));
        assert!(broker.log().contains(why), "{why}:\n{}", broker.log());
        let (_, rc) = broker.connect(device_id, key);
        assert_eq!(
            rc,
            5,
            "{device_id}: reconnect not refused\n{}",
            broker.log()
        );
        // The other session is still connected and served.
        keeper.0.ping();
    }
    assert!(
        keeper.0.closed_within(Duration::from_millis(200)).is_none(),
        "the unrevoked session was closed:\n{}",
        broker.log()
    );
    assert!(
        !broker.log().contains(&keep.secret),
        "a secret reached the log"
    );
}

/// Done when 3 and 4: with `reload_interval 1`, a new key and device connect
/// within 2 s of the files' change, no signal; an invalid keys file keeps the
/// previous state, with the file and line in the log.
#[test]
fn files_changed_without_a_signal_are_reloaded() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(13);
    let (_, old_line, old) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, new_line, new) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let old_devices = device(APP_A, "old", &[]);
    let broker = start_broker(
        "interval",
        &old_line,
        &old_devices,
        "plugin_opt_reload_interval 1\n",
    );
    assert_eq!(broker.connect("new", &new).1, 5);
    assert_eq!(broker.connect("old", &old).1, 0);

    let changed = Instant::now();
    write(&broker.keys_file(), &format!("{old_line}{new_line}"));
    write(
        &broker.devices_file(),
        &format!("{old_devices}{}", device(APP_A, "new", &[])),
    );
    loop {
        if broker.connect("new", &new).1 == 0 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(20),
            "{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = changed.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "new key connected after {took:?}"
    );
    assert!(
        broker
            .log()
            .contains("2 access keys and 2 devices in force")
    );

    // A broken third line: nothing of the new file applies, old devices connect.
    let (_, third_line, third) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    write(
        &broker.keys_file(),
        &format!("{old_line}{third_line}{{\"key\": \"stk_broken\"\n"),
    );
    broker.wait_log("reload failed, the previous keys and devices stay in force");
    let line = format!("`{}` line 3:", broker.keys_file().display());
    assert!(broker.log().contains(&line), "{line}\n{}", broker.log());
    assert_eq!(broker.connect("old", &old).1, 0);
    assert_eq!(broker.connect("new", &new).1, 0, "{}", broker.log());
    assert_eq!(broker.connect("new", &third).1, 5);
    // And SIGHUP on the same broken file too.
    broker.sighup();
    broker.wait_log("Reloading config.");
    assert_eq!(broker.connect("new", &new).1, 0, "{}", broker.log());
}

/// Done when 5 and 6: a will to the device's own state topic reaches an
/// in-scope subscriber, a will to an out-of-scope device's topic does not;
/// a QoS 1 message queued for an offline persistent session is delivered
/// when it reconnects.
#[test]
fn wills_and_offline_queues_are_checked_after_disconnect() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(14);
    let trucks: Restriction = "vehicle=truck,gw-1".parse().unwrap();
    let (_, trucks_line, trucks_key) = f.key(APP_A, trucks.into(), KeyStatus::Active);
    let (_, open_line, open) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let devices = [
        device(APP_A, "gw-1", &[]),
        device(APP_A, "truck-1", &[("vehicle", "truck")]),
        device(APP_A, "truck-2", &[("vehicle", "truck")]),
        device(APP_A, "car-1", &[("vehicle", "car")]),
        device(APP_A, "monitor", &[]),
    ]
    .concat();
    let broker = start_broker("wills", &format!("{trucks_line}{open_line}"), &devices, "");

    // The monitor sees every device; it must get exactly the legitimate will.
    let monitor = broker.subscribe("monitor", &open, "structure/+/state", 1);
    std::thread::sleep(Duration::from_millis(800));
    // truck-1 (restricted to trucks) leaves a will for car-1: out of scope.
    let (forger, rc) = Mqtt::connect(
        broker.port,
        "truck-1",
        &trucks_key,
        Some(("structure/car-1/state", "forged will")),
    );
    assert_eq!(rc, 0);
    drop(forger); // no DISCONNECT: the will is published
    broker.wait_log("Client truck-1 closed its connection.");
    let (honest, rc) = Mqtt::connect(
        broker.port,
        "truck-2",
        &trucks_key,
        Some(("structure/truck-2/state", "offline")),
    );
    assert_eq!(rc, 0);
    drop(honest);
    let seen = monitor.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen.stdout).trim_end(),
        "structure/truck-2/state offline",
        "{seen:?}\n{}",
        broker.log()
    );

    // gw-1 subscribes with a persistent session, leaves; truck-2 publishes.
    let out = broker
        .subscribe_with("gw-1", &trucks_key, "structure/+/state", &["-c", "-E"])
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", broker.log());
    for (device, key) in [("car-1", &open), ("truck-2", &trucks_key)] {
        let topic = format!("structure/{device}/state");
        let out = broker.publish(
            device,
            key,
            &topic,
            &format!("queued for gw-1 from {device}"),
        );
        assert!(out.status.success(), "{out:?}\n{}", broker.log());
    }
    let back = broker
        .subscribe_with(
            "gw-1",
            &trucks_key,
            "structure/+/state",
            &["-c", "-C", "1", "-W", "20"],
        )
        .wait_with_output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&back.stdout).trim_end(),
        "structure/truck-2/state queued for gw-1 from truck-2",
        "{back:?}\n{}",
        broker.log()
    );
}

/// Done when 7: with `defer_unknown`, a `password_file` user connects and
/// publishes next to access-key devices; without it, it is refused.
#[test]
fn defer_unknown_lets_a_password_file_user_in() {
    if !broker_available() || !have("mosquitto_passwd") {
        assert!(
            std::env::var_os("STRUCTURE_E2E_REQUIRED").is_none() || have("mosquitto_passwd"),
            "mosquitto_passwd is required"
        );
        return;
    }
    let mut f = Fixture::new(15);
    let (_, line, key) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let devices = device(APP_A, "dev-1", &[]);
    let alice = Key {
        id: "alice".into(),
        secret: "correct horse".into(),
    };
    for defer in [true, false] {
        let name = if defer { "defer" } else { "nodefer" };
        let passwords = std::env::temp_dir().join(format!(
            "structure-e2e-{}-{name}-passwd",
            std::process::id()
        ));
        let status = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwords)
            .args([&alice.id, &alice.secret])
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o644)).unwrap();
        let broker = start_broker(
            name,
            &line,
            &devices,
            &format!(
                "password_file {}\nplugin_opt_defer_unknown {defer}\n",
                passwords.display()
            ),
        );
        let out = broker.publish("laptop", &alice, "home/alice", "hi");
        assert_eq!(out.status.success(), defer, "{out:?}\n{}", broker.log());
        let out = broker.publish("dev-1", &key, "structure/dev-1/state", "1");
        assert!(out.status.success(), "{out:?}\n{}", broker.log());
        // A wrong secret for a known key is still refused by the plugin.
        let wrong = Key {
            id: key.id.clone(),
            secret: alice.secret.clone(),
        };
        assert!(refused(&broker.publish(
            "dev-1",
            &wrong,
            "structure/dev-1/state",
            "1"
        )));
        let _ = std::fs::remove_file(&passwords);
    }
}

#[test]
fn the_argon2_budget_and_the_log_budget_hold_on_a_real_broker() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(16);
    let (_, line, key) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    // A record from before the fast scheme: an Argon2id verifier on file.
    let legacy = AccessKey::generate(
        &mut f.rng,
        APP_A.parse().unwrap(),
        Scope::Unrestricted,
        &f.policy.clone().argon2id_for_generated(true),
    )
    .unwrap()
    .record;
    let legacy_line = serde_json::to_string(&legacy).unwrap() + "\n";
    let devices = device(APP_A, "dev-1", &[]) + &device(APP_A, "dev-2", &[]);
    let broker = start_broker(
        "budgets",
        &(line + &legacy_line),
        &devices,
        "plugin_opt_argon2_per_address_per_second 1\n",
    );
    let log = || broker.log();

    // Imported-shaped passwords cost an Argon2 run each: past the address's
    // budget (1 a second here), refused at once, and said so.
    let guess = Key {
        id: legacy.key().to_string(),
        secret: "an-imported-password-0123".into(),
    };
    for _ in 0..3 {
        let (_, code) = Mqtt::connect(broker.port, "dev-2", &guess, None);
        assert_eq!(code, 5, "{}", log());
    }
    broker.wait_log("the budget of slow (argon2) verifications is spent");
    assert!(log().contains("wrong secret"), "{}", log());
    // A generated secret needs no Argon2: it connects whatever the budget.
    let (mut dev, code) = Mqtt::connect(broker.port, "dev-1", &key, None);
    assert_eq!(code, 0, "{}", log());

    // 50 denied publications at once: fewer than 50 lines, and every other
    // one counted, with the next such line or on a tick once its second is
    // over.
    std::thread::sleep(Duration::from_millis(1100));
    let before = log().len();
    for i in 0..50 {
        dev.publish(&format!("elsewhere/{i}"), "x");
    }
    assert!(dev.ping() < Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = log();
        let burst = all.get(before..).unwrap_or_default();
        let written = (0..50)
            .filter(|i| burst.contains(&format!("publish `elsewhere/{i}`")))
            .count();
        let counted = LogBudget::held_back_in(burst);
        assert!(written < 50, "every line written:\n{burst}");
        if written + counted == 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{written} written + {counted} counted != 50:\n{burst}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `examples/device.rs`, built beside this test (`target/<profile>/examples/device`).
fn build_device_example() -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "--example",
        "device",
        "-p",
        "structure-access-mosquitto",
    ]);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    assert!(
        cargo.status().unwrap().success(),
        "building the device example failed"
    );
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/device");
    assert!(
        path.exists(),
        "device example not built at {}",
        path.display()
    );
    path
}

/// Issue 15: a Rust device (`DeviceCredentials` + `rumqttc`) connects with a
/// generated key, publishes its state and receives a command. The platform's
/// side is a `password_file` user (with `defer_unknown`): it watches the state
/// and sends the command, which no access key may publish.
#[test]
fn the_rust_device_example_connects_publishes_and_receives_a_command() {
    if !broker_available() || !have("mosquitto_passwd") {
        assert!(
            std::env::var_os("STRUCTURE_E2E_REQUIRED").is_none() || have("mosquitto_passwd"),
            "mosquitto_passwd is required"
        );
        return;
    }
    use std::io::BufRead;
    let example = build_device_example();
    let mut f = Fixture::new(1515);
    let restriction: Restriction = "dev-1".parse().unwrap();
    let (_, line, key) = f.key(APP_A, Scope::from(Some(restriction)), KeyStatus::Active);
    let platform = Key {
        id: "platform".into(),
        secret: "platform password".into(),
    };
    let passwords = std::env::temp_dir().join(format!(
        "structure-e2e-{}-device-passwd",
        std::process::id()
    ));
    let status = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args([&platform.id, &platform.secret])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The plugin defers the platform user's ACL checks to Mosquitto's own.
    let acl = passwords.with_extension("acl");
    write(&acl, "user platform\ntopic readwrite structure/#\n");
    let broker = start_broker(
        "device",
        &line,
        &device(APP_A, "dev-1", &[]),
        &format!(
            "password_file {}\nacl_file {}\nplugin_opt_defer_unknown true\n",
            passwords.display(),
            acl.display()
        ),
    );

    let watcher = broker.subscribe("platform-watch", &platform, "structure/dev-1/state", 1);
    broker.wait_log("Sending SUBACK to platform-watch");

    let mut device = Command::new(&example)
        .args(["--port", &broker.port.to_string(), "--device", "dev-1"])
        .args([
            "--key",
            &key.id,
            "--state",
            r#"{"temp": 21}"#,
            "--timeout",
            "20",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(device.stdin.take().unwrap(), "{}", key.secret).unwrap();
    let mut lines = std::io::BufReader::new(device.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("subscribed")) {
        match lines.next() {
            Some(line) => seen.push(line.unwrap()),
            None => panic!(
                "device exited early: {seen:?}\n{:?}\n{}",
                device.wait_with_output(),
                broker.log()
            ),
        }
    }
    let out = broker.publish(
        "platform-send",
        &platform,
        "structure/dev-1/command",
        "reboot",
    );
    assert!(out.status.success(), "{out:?}\n{}", broker.log());
    seen.extend(lines.map(Result::unwrap));
    let status = device.wait().unwrap();
    assert!(status.success(), "{seen:?}\n{}", broker.log());
    assert_eq!(
        seen,
        [
            "connected",
            "subscribed structure/dev-1/command",
            "published structure/dev-1/state",
            "command reboot"
        ],
        "{}",
        broker.log()
    );
    let watched = watcher.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&watched.stdout).trim_end(),
        r#"structure/dev-1/state {"temp": 21}"#
    );
    // The plugin authenticated the device with its access key.
    assert!(!broker.log().contains("not authorised"), "{}", broker.log());
    let _ = std::fs::remove_file(&passwords);
    let _ = std::fs::remove_file(&acl);
}

/// A reload that changes one key and one device while 200 clients stay
/// connected touches only their sessions: the log says how many were
/// re-evaluated, the others are served throughout.
#[test]
fn a_reload_touches_only_the_sessions_of_what_changed() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(77);
    let trucks: Restriction = "vehicle=truck".parse().unwrap();
    let (_, doomed_line, doomed) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, open_line, open) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, trucks_line, trucks_key) = f.key(APP_A, trucks.into(), KeyStatus::Active);
    // d-0…d-4 with the doomed key, d-5…d-9 trucks with the restricted key,
    // the others with the open one.
    let devices = |moved: &str| -> String {
        (0..200)
            .map(|i| {
                let vehicle = if i == 7 { moved } else { "truck" };
                device(APP_A, &format!("d-{i}"), &[("vehicle", vehicle)])
            })
            .collect()
    };
    let keys = format!("{doomed_line}{open_line}{trucks_line}");
    let broker = start_broker("only-affected", &keys, &devices("truck"), "");
    let key_of = |i: usize| match i {
        0..5 => &doomed,
        5..10 => &trucks_key,
        _ => &open,
    };
    let mut clients: Vec<Mqtt> = (0..200)
        .map(|i| {
            let (client, code) = broker.connect(&format!("d-{i}"), key_of(i));
            assert_eq!(code, 0, "d-{i}\n{}", broker.log());
            client
        })
        .collect();

    // The doomed key deleted, d-7 (a truck of the restricted key) retagged.
    write(&broker.keys_file(), &format!("{open_line}{trucks_line}"));
    write(&broker.devices_file(), &devices("car"));
    broker.sighup();
    broker.wait_log("6 session(s) re-evaluated, 6 revoked, of 200");
    let log = broker.log();
    assert!(
        log.contains("1 access key(s) and 1 device(s) changed"),
        "{log}"
    );
    for (i, client) in clients.iter_mut().enumerate() {
        let ended = matches!(i, 0..5 | 7);
        let closed = client
            .closed_within(Duration::from_millis(if ended { 2000 } else { 1 }))
            .is_some();
        assert_eq!(closed, ended, "d-{i}\n{log}");
    }
    for (i, client) in clients.iter_mut().enumerate() {
        if !matches!(i, 0..5 | 7) {
            assert!(client.ping() < Duration::from_secs(5), "d-{i}");
        }
    }
}

/// The wall-clock second `secs` ahead, and the moment it begins.
fn second_ahead(secs: u64) -> (UnixTime, Instant) {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now = Instant::now();
    let at = since_epoch.as_secs() + secs;
    let begins = now + (Duration::from_secs(at) - since_epoch);
    (UnixTime::from_secs(at).unwrap(), begins)
}

/// A key that expires a few seconds ahead: its session is closed within a
/// second of the expiry (not at a reload: there is none), with the cause in
/// the log, and it is refused afterwards. It is also the documented rotation
/// with overlap: a new key made, the old one given an expiry, the devices
/// moved to the new key meanwhile keep working when the old one expires.
#[test]
fn keys_expire_at_their_time_and_rotation_with_overlap_keeps_devices_on() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(91);
    let (old_record, _, old) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, new_line, new) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (expiry, expires) = second_ahead(4);
    let old_line = serde_json::to_string(&old_record.with_expiry(Some(expiry))).unwrap() + "\n";
    let devices = [device(APP_A, "d-1", &[]), device(APP_A, "d-2", &[])].concat();
    let audit_dir = broker_dir("expiry-audit");
    let audit = audit_dir.join("audit.jsonl");
    let broker = start_broker(
        "expiry",
        &format!("{old_line}{new_line}"),
        &devices,
        &format!("plugin_opt_audit_file {}\n", audit.display()),
    );

    // Both devices on the old key; d-2 moved to the new one during the
    // overlap (it connects again with it), d-1 not yet.
    let (mut stays, rc) = broker.connect("d-1", &old);
    assert_eq!(rc, 0, "{}", broker.log());
    let (_, rc) = broker.connect("d-2", &old);
    assert_eq!(rc, 0, "{}", broker.log());
    let (mut moved, rc) = broker.connect("d-2", &new);
    assert_eq!(rc, 0, "{}", broker.log());
    assert!(
        Instant::now() + Duration::from_millis(500) < expires,
        "the setup took too long for the test to mean anything"
    );
    stays.ping();

    let closed = stays
        .closed_within(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the expired key's session stayed:\n{}", broker.log()));
    assert!(
        closed + Duration::from_millis(50) >= expires,
        "closed {:?} before the expiry",
        expires - closed
    );
    assert!(
        closed <= expires + Duration::from_secs(1),
        "closed {:?} after the expiry",
        closed - expires
    );
    println!(
        "d-1: closed {:.0} ms after the expiry",
        closed.saturating_duration_since(expires).as_secs_f64() * 1e3
    );
    broker.wait_log("1 access key(s) expired");
    broker.wait_log("disconnecting device `d-1`");
    // The audit trail says why.
    let events = wait_audit(&audit, "session_ended", "reason", "expired");
    let ended = events
        .iter()
        .find(|e| e["event"] == "session_ended")
        .unwrap();
    assert_eq!(
        (&ended["device"], &ended["key"]),
        (&"d-1".into(), &old.id.clone().into())
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "keys_expired" && e["keys"] == 1)
    );
    assert!(
        broker.log().contains("the access key has expired"),
        "{}",
        broker.log()
    );
    // Refused afterwards; the device moved to the new key is served, and
    // the other one moves now.
    assert_eq!(broker.connect("d-1", &old).1, 5, "{}", broker.log());
    moved.ping();
    assert!(
        moved.closed_within(Duration::from_millis(300)).is_none(),
        "the device on the new key was disconnected:\n{}",
        broker.log()
    );
    let (mut d1, rc) = broker.connect("d-1", &new);
    assert_eq!(rc, 0, "{}", broker.log());
    d1.ping();
    let log = broker.log();
    assert!(!log.contains(&old.secret) && !log.contains(&new.secret));
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    assert!(!audit_text.contains(&old.secret) && !audit_text.contains(&new.secret));
    let _ = std::fs::remove_dir_all(&audit_dir);
}

/// The audit file's events, one JSON object a line.
fn audit_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Waits until the audit file has an event with `field` = `value`; returns
/// all events.
fn wait_audit(
    path: &Path,
    event: &str,
    field: &str,
    value: impl Into<serde_json::Value>,
) -> Vec<serde_json::Value> {
    let value = value.into();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = audit_events(path);
        if events
            .iter()
            .any(|e| e["event"] == event && e[field] == value)
        {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no `{event}` with {field} = `{value}` in {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every refusal has its reason code, every acceptance and ended session
/// its event, in the operator's file (0600), and no line holds a secret or
/// what a client typed in place of a key id.
#[test]
fn the_audit_trail_says_who_was_accepted_refused_and_ended_and_why() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(101);
    let (_, open_line, open) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, inactive_line, inactive) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Inactive);
    let (expired_record, _, expired) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let expired_line = serde_json::to_string(
        &expired_record.with_expiry(Some("2020-01-01T00:00:00Z".parse().unwrap())),
    )
    .unwrap()
        + "\n";
    let (_, other_app_line, other_app) = f.key(APP_B, Scope::Unrestricted, KeyStatus::Active);
    let only_d2: Restriction = "d-2".parse().unwrap();
    let (_, scoped_line, scoped) = f.key(APP_A, only_d2.into(), KeyStatus::Active);
    // A key id nobody has, and a secret that is no key's.
    let (_, _, unknown) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let wrong = Key {
        id: open.id.clone(),
        secret: unknown.secret.clone(),
    };
    let secret_as_username = Key {
        id: open.secret.clone(),
        secret: open.secret.clone(),
    };
    let keys = [
        open_line,
        inactive_line,
        expired_line,
        other_app_line,
        scoped_line,
    ]
    .concat();
    let devices = [device(APP_A, "d-1", &[]), device(APP_A, "d-2", &[])].concat();
    let dir = broker_dir("audit-file");
    let audit = dir.join("audit.jsonl");
    let broker = start_broker(
        "audit",
        &keys,
        &devices,
        &format!("plugin_opt_audit_file {}\n", audit.display()),
    );
    let mode = std::fs::metadata(&audit).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the audit file is readable by others");

    let (mut d1, rc) = broker.connect("d-1", &open);
    assert_eq!(rc, 0, "{}", broker.log());
    for (device, key, reason) in [
        ("d-1", &wrong, "wrong_secret"),
        ("d-1", &unknown, "unknown_key"),
        ("d-1", &secret_as_username, "not_an_access_key"),
        ("d-9", &open, "unknown_device"),
        ("d-1", &inactive, "inactive"),
        ("d-1", &expired, "expired"),
        ("d-1", &other_app, "wrong_application"),
        ("d-1", &scoped, "out_of_scope"),
        ("bad id!", &open, "invalid_client_id"),
    ] {
        assert_eq!(
            broker.connect(device, key).1,
            5,
            "{reason}\n{}",
            broker.log()
        );
        let events = wait_audit(&audit, "auth_refused", "reason", reason);
        let event = events.iter().rev().find(|e| e["reason"] == reason).unwrap();
        assert_eq!(event["broker"], "mosquitto");
        assert_eq!(
            event["address"].as_str().unwrap().split(':').next(),
            Some("127.0.0.1")
        );
        if reason != "invalid_client_id" {
            assert_eq!(event["device"], device, "{event}");
        }
        match reason {
            "unknown_key" | "not_an_access_key" => assert!(event.get("key").is_none(), "{event}"),
            "invalid_client_id" => {}
            _ => {
                assert_eq!(event["key"], key.id, "{event}");
                assert!(event["application"].is_string(), "{event}");
            }
        }
    }
    d1.ping();

    // The open key deleted: the session ends, with its cause, and the
    // records applied are counted.
    write(
        &broker.keys_file(),
        &std::fs::read_to_string(broker.keys_file())
            .unwrap()
            .lines()
            .filter(|line| !line.contains(&open.id))
            .map(|line| format!("{line}\n"))
            .collect::<String>(),
    );
    broker.sighup();
    assert!(d1.closed_within(Duration::from_secs(10)).is_some());
    let events = wait_audit(&audit, "session_ended", "reason", "deleted");
    let ended = events
        .iter()
        .find(|e| e["event"] == "session_ended")
        .unwrap();
    assert_eq!(ended["device"], "d-1");
    assert_eq!(ended["key"], open.id);
    let applied = events
        .iter()
        .find(|e| e["event"] == "records_applied")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(applied["source"], "files");
    assert_eq!(applied["keys"], 1);
    assert_eq!(applied["revoked"], 1);
    let accepted: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "auth_accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{events:#?}");
    assert_eq!(accepted[0]["device"], "d-1");
    assert_eq!(accepted[0]["key"], open.id);
    assert_eq!(accepted[0]["application"], APP_A);
    for e in &events {
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }

    let text = std::fs::read_to_string(&audit).unwrap();
    for key in [&open, &inactive, &expired, &other_app, &scoped, &unknown] {
        assert!(!text.contains(&key.secret), "a secret in the audit file");
        assert!(!text.contains(&key.secret[4..20]));
    }
    assert!(!broker.log().contains(&open.secret));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under `takeover same_key`, a CONNECT for a device with a live session
/// and another key is refused and the device stays on; the same key takes
/// over (MQTT's rule), and past the limit in a minute the device is reported
/// as a conflicting client id, once.
#[test]
fn takeovers_are_audited_and_refused_with_another_key_under_same_key() {
    if !broker_available() {
        return;
    }
    let mut f = Fixture::new(102);
    let (_, first_line, first) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, second_line, second) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let devices = [device(APP_A, "d-1", &[]), device(APP_A, "d-2", &[])].concat();
    let dir = broker_dir("takeover-audit");
    let audit = dir.join("audit.jsonl");
    let broker = start_broker(
        "takeover",
        &format!("{first_line}{second_line}"),
        &devices,
        &format!(
            "plugin_opt_audit_file {}\nplugin_opt_takeover same_key\n\
             plugin_opt_takeover_limit 2\n",
            audit.display()
        ),
    );

    let (mut live, rc) = broker.connect("d-1", &first);
    assert_eq!(rc, 0, "{}", broker.log());
    // Another key: refused, and the live session stays.
    assert_eq!(broker.connect("d-1", &second).1, 5, "{}", broker.log());
    live.ping();
    assert!(live.closed_within(Duration::from_millis(200)).is_none());
    let events = wait_audit(&audit, "auth_refused", "reason", "takeover_refused");
    let refusal = events
        .iter()
        .find(|e| e["reason"] == "takeover_refused")
        .unwrap();
    assert_eq!(refusal["device"], "d-1");
    assert_eq!(refusal["key"], second.id);
    assert!(
        broker.log().contains("takeover is same_key"),
        "{}",
        broker.log()
    );
    // Another device with the second key is not a takeover.
    let (mut d2, rc) = broker.connect("d-2", &second);
    assert_eq!(rc, 0, "{}", broker.log());
    d2.ping();

    // The same key takes over, three times: the third is past the limit.
    for _ in 0..3 {
        let (mut next, rc) = broker.connect("d-1", &first);
        assert_eq!(rc, 0, "{}", broker.log());
        assert!(live.closed_within(Duration::from_secs(5)).is_some());
        next.ping();
        live = next;
    }
    let events = wait_audit(&audit, "conflicting_client_id", "device", "d-1");
    let takeovers: Vec<_> = events.iter().filter(|e| e["event"] == "takeover").collect();
    assert_eq!(takeovers.len(), 3, "{events:#?}");
    assert_eq!(
        takeovers
            .iter()
            .map(|e| e["takeovers"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for t in &takeovers {
        assert_eq!(t["device"], "d-1");
        assert_eq!(t["key"], first.id);
        assert_eq!(t["previous_key"], first.id);
    }
    let conflicts = events
        .iter()
        .filter(|e| e["event"] == "conflicting_client_id")
        .count();
    assert_eq!(conflicts, 1, "{events:#?}");
    // One more: counted, not said again.
    let (_next, rc) = broker.connect("d-1", &first);
    assert_eq!(rc, 0);
    let events = wait_audit(&audit, "takeover", "takeovers", 4);
    let conflicts = events
        .iter()
        .filter(|e| e["event"] == "conflicting_client_id")
        .count();
    assert_eq!(conflicts, 1, "{events:#?}");
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);

    // The default, `allow`: another key takes over, and the sixth takeover
    // in a minute (the default limit is 5) is a conflicting client id.
    let dir = broker_dir("takeover-allow-audit");
    let audit = dir.join("audit.jsonl");
    let broker = start_broker(
        "takeover-allow",
        &format!("{first_line}{second_line}"),
        &devices,
        &format!("plugin_opt_audit_file {}\n", audit.display()),
    );
    let (mut live, rc) = broker.connect("d-1", &first);
    assert_eq!(rc, 0, "{}", broker.log());
    for i in 0..6 {
        let key = if i % 2 == 0 { &second } else { &first };
        let (mut next, rc) = broker.connect("d-1", key);
        assert_eq!(rc, 0, "{}", broker.log());
        assert!(live.closed_within(Duration::from_secs(5)).is_some());
        next.ping();
        live = next;
    }
    let events = wait_audit(&audit, "conflicting_client_id", "takeovers", 6);
    let takeovers: Vec<_> = events.iter().filter(|e| e["event"] == "takeover").collect();
    assert_eq!(takeovers.len(), 6, "{events:#?}");
    assert_eq!(takeovers[0]["previous_key"], first.id);
    assert_eq!(takeovers[0]["key"], second.id);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "conflicting_client_id")
            .count(),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The counters of `broker` under `$SYS/broker/plugin/structure-access/`, as
/// an operator's client reads them (retained), by path.
fn sys_counters(broker: &Broker, ops: &Key) -> std::collections::HashMap<String, u64> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-v"])
        .args(["-i", "ops", "-u", &ops.id, "-P", &ops.secret])
        .args(["-t", "$SYS/broker/plugin/structure-access/#", "-W", "1"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (topic, value) = line.split_once(' ')?;
            let path = topic.strip_prefix("$SYS/broker/plugin/structure-access/")?;
            Some((path.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The plugin's counters on `$SYS`, read by an operator's `mosquitto_sub`
/// (a password-file user, with `defer_unknown`), move as clients connect,
/// are refused and are disconnected by a revocation.
#[test]
fn the_counters_are_published_under_sys_and_move() {
    if !broker_available() || !have("mosquitto_passwd") {
        return;
    }
    let mut f = Fixture::new(103);
    let (_, open_line, open) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let (_, _, stranger) = f.key(APP_A, Scope::Unrestricted, KeyStatus::Active);
    let devices = device(APP_A, "d-1", &[]);
    let ops = Key {
        id: "ops".into(),
        secret: "operator password".into(),
    };
    let passwords =
        std::env::temp_dir().join(format!("structure-e2e-{}-sys-passwd", std::process::id()));
    let status = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args([&ops.id, &ops.secret])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o644)).unwrap();
    let broker = start_broker(
        "sys",
        &open_line,
        &devices,
        &format!(
            "password_file {}\nplugin_opt_defer_unknown true\nplugin_opt_sys_interval 1\n\
             plugin_opt_sys_readers ops\n",
            passwords.display()
        ),
    );
    let wait_for =
        |what: &str, wanted: &dyn Fn(&std::collections::HashMap<String, u64>) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let counters = sys_counters(&broker, &ops);
                if wanted(&counters) {
                    return counters;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: {counters:#?}\n{}",
                    broker.log()
                );
            }
        };
    let first = wait_for("the first publication", &|c| c.contains_key("keys"));
    assert_eq!(first["keys"], 1);
    assert_eq!(first["devices"], 1);
    assert_eq!(first["authentications/accepted"], 0);
    assert_eq!(first["authentications/refused/wrong_secret"], 0);
    assert!(first.contains_key("sessions_ended/deleted"));

    let (mut d1, rc) = broker.connect("d-1", &open);
    assert_eq!(rc, 0, "{}", broker.log());
    let wrong = Key {
        id: open.id.clone(),
        secret: stranger.secret.clone(),
    };
    assert_eq!(broker.connect("d-1", &wrong).1, 5);
    // (An unknown key is not this plugin's under `defer_unknown`.)
    assert_eq!(broker.connect("d-9", &open).1, 5);
    let moved = wait_for("the connects counted", &|c| {
        c.get("authentications/accepted") == Some(&1)
            && c.get("authentications/refused/wrong_secret") == Some(&1)
            && c.get("authentications/refused/unknown_device") == Some(&1)
    });
    assert_eq!(moved["authentications/refused/unknown_key"], 0);
    assert_eq!(moved["sessions_ended/deleted"], 0);

    write(&broker.keys_file(), "");
    broker.sighup();
    assert!(d1.closed_within(Duration::from_secs(10)).is_some());
    let after = wait_for("the revocation counted", &|c| {
        c.get("sessions_ended/deleted") == Some(&1) && c.get("keys") == Some(&0)
    });
    assert!(after["change_sets/count"] >= 1, "{after:#?}");
    let _ = std::fs::remove_file(&passwords);
}
