//! End to end: a real `mosquitto` broker loads the plugin, and real MQTT clients
//! (`mosquitto_pub`, `mosquitto_sub`) connect, publish and subscribe.
//!
//! Needs the Debian packages `mosquitto` and `mosquitto-clients`. Without them the
//! test says so and passes, unless `STRUCTURE_E2E_REQUIRED` is set (CI sets it,
//! after installing them).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::{AdditionalTopics, FilterList};
use structure_access::{AccessKey, HashPolicy, KeyStatus, Restriction, Scope};

struct Key {
    id: String,
    secret: String,
}

/// The broker process; killed when dropped, whether the test passed or not.
struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn plugin_path() -> PathBuf {
    // target/<profile>/deps/e2e-… → target/<profile>/libstructure_access_mosquitto.so
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("libstructure_access_mosquitto.so")
}

/// Cargo builds only the rlib for integration tests, not the plugin itself:
/// build it (a no-op when it is up to date).
fn build_plugin() {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--lib", "-p", "structure-access-mosquitto"]);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let status = cargo.status().unwrap();
    assert!(status.success(), "building the plugin failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn start_broker(dir: &Path, keys: &str, devices: &str) -> Broker {
    let keys_file = dir.join("keys.jsonl");
    let devices_file = dir.join("devices.jsonl");
    write(&keys_file, keys);
    write(&devices_file, devices);
    let port = free_port();
    let log = dir.join("mosquitto.log");
    let conf = dir.join("mosquitto.conf");
    write(
        &conf,
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
             plugin_opt_keys_file {}\nplugin_opt_devices_file {}\n\
             log_dest stderr\nlog_type all\npersistence false\n",
            plugin_path().display(),
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
    let broker = Broker { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
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
    /// `count` messages (a clean exit flushes its output) or 10 seconds.
    fn subscribe(&self, device: &str, key: &Key, filter: &str, count: u32) -> Child {
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
            .args(["-C", &count.to_string(), "-W", "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn connected(output: &Output) -> bool {
    output.status.success()
}

fn refused(output: &Output) -> bool {
    !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("not authorised")
}

#[test]
fn a_real_broker_enforces_access_keys_and_topics() {
    if !(have("mosquitto") && have("mosquitto_pub") && have("mosquitto_sub")) {
        assert!(
            std::env::var_os("STRUCTURE_E2E_REQUIRED").is_none(),
            "mosquitto, mosquitto_pub and mosquitto_sub are required"
        );
        eprintln!("skipped: install mosquitto and mosquitto-clients to run this test");
        return;
    }
    build_plugin();
    assert!(
        plugin_path().exists(),
        "plugin not built at {}",
        plugin_path().display()
    );

    let policy = HashPolicy::default().with_params(256, 1, 1).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let mut generate_with = |scope: Scope, status: KeyStatus, topics: AdditionalTopics| {
        let new = AccessKey::generate(&mut rng, scope, &policy).unwrap();
        let record = new
            .record
            .with_status(status)
            .with_additional_topics(topics);
        let key = Key {
            id: record.key().to_string(),
            secret: new.secret.expose_secret().to_owned(),
        };
        (serde_json::to_string(&record).unwrap(), key)
    };
    let mut generate =
        |scope: Scope, status: KeyStatus| generate_with(scope, status, AdditionalTopics::None);
    let trucks: Restriction = "vehicle=truck,gw-1".parse().unwrap();
    let (restricted_json, restricted) = generate(trucks.into(), KeyStatus::Active);
    let (open_json, open) = generate(Scope::Unrestricted, KeyStatus::Active);
    let (inactive_json, inactive) = generate(Scope::Unrestricted, KeyStatus::Inactive);
    // "No custom topics": a deny-list of `#`, which must cover `$` topics too.
    let no_custom = AdditionalTopics::DenyList {
        publish: FilterList::new(["#"]).unwrap(),
        subscribe: FilterList::new(["#"]).unwrap(),
    };
    let (no_custom_json, no_custom) =
        generate_with(Scope::Unrestricted, KeyStatus::Active, no_custom);
    let unknown = Key {
        id: "stk_000000000000000000000u".into(),
        secret: restricted.secret.clone(),
    };
    let wrong = Key {
        id: restricted.id.clone(),
        secret: open.secret.clone(),
    };
    let keys = format!("{restricted_json}\n{open_json}\n{inactive_json}\n{no_custom_json}\n");
    let devices = "\
{\"id\": \"gw-1\"}
{\"id\": \"truck-1\", \"tags\": [{\"key\": \"vehicle\", \"value\": \"truck\"}]}
{\"id\": \"truck-2\", \"tags\": [{\"key\": \"vehicle\", \"value\": \"truck\"}]}
{\"id\": \"car-1\", \"tags\": [{\"key\": \"vehicle\", \"value\": \"car\"}]}
{\"id\": \"monitor\"}
";
    let dir = std::env::temp_dir().join(format!("structure-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = start_broker(&dir, &keys, devices);
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
    let denied = broker.subscribe("truck-1", &restricted, "structure/car-1/state", 1);
    let out = denied.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("subscription requests were denied"),
        "{out:?}\n{}",
        log()
    );

    // A wildcard subscription of a restricted key receives in-scope devices only;
    // an unrestricted key's receives every device.
    // Each subscriber exits after the messages it should get; a leaked message
    // would take the place of a later one.
    let restricted_sub = broker.subscribe("gw-1", &restricted, "structure/+/state", 2);
    let open_sub = broker.subscribe("monitor", &open, "structure/+/state", 3);
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
        ("truck-1", &restricted),
    ] {
        let out = broker.publish(device, key, &format!("structure/{device}/state"), device);
        assert!(connected(&out), "{device}: {out:?}\n{}", log());
    }
    let restricted_seen =
        String::from_utf8_lossy(&restricted_sub.wait_with_output().unwrap().stdout).into_owned();
    let open_seen =
        String::from_utf8_lossy(&open_sub.wait_with_output().unwrap().stdout).into_owned();
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
        log().contains("Write `structure/car-1/state` denied"),
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
            log().contains(&format!("Write `{topic}` denied")),
            "publish `{topic}`:\n{}",
            log()
        );
    }

    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
