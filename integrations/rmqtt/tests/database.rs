//! The platform's database as the brokers' source of records, end to end: a
//! real PostgreSQL of the test's own, the `structure-keys` command line
//! against it, the Mosquitto plugin in a real `mosquitto`, and a two-node
//! RMQTT cluster, every broker following the database by itself. The
//! clients are independent programs (`mosquitto_pub`, `mosquitto_sub`) and
//! the suite's own MQTT client (for the moment a session is closed).
//!
//! Needs PostgreSQL and Mosquitto (Debian's `postgresql`, `mosquitto`,
//! `mosquitto-clients`); without them it passes with a note, unless
//! `STRUCTURE_E2E_REQUIRED` is set (CI, which installs them). The Mosquitto
//! plugin and `structure-keys` are built from the core's workspace.
//!
//! No figure is asserted here: the times it prints are for reading; the
//! load generator `examples/database.rs` measures them (BENCHMARKING.md).

#[path = "../../common/testing/postgres.rs"]
mod pg;
#[path = "support/database.rs"]
mod shared;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pg::Postgres;
use shared::{Mosquitto, PATIENCE, available, cli, create_key};
use structure_access::Scope;
use support::{APP_A, Client, Fixture, Key, Node, WorkDir, device, free_port};

/// The three brokers: Mosquitto, and nodes 1 and 2 of an RMQTT cluster.
struct Brokers {
    mosquitto: Mosquitto,
    node1: Node,
    node2: Node,
    _dir: WorkDir,
}

impl Brokers {
    fn start(name: &str, pg: &Postgres) -> Self {
        let dir = WorkDir::new(&format!("database-{name}"));
        let broker = Path::new(env!("CARGO_BIN_EXE_structure-broker"));
        let records = format!("database_url = \"{}\"\n", pg.url());
        // The suite polls: refusals are answered at once.
        let (node1, node2, _) = support::cluster_over(
            broker,
            &dir.0,
            &records,
            "refusals_per_address_per_second = 100000\n",
        );
        let mosquitto = Mosquitto::start(name, pg, None, true);
        let brokers = Self {
            mosquitto,
            node1,
            node2,
            _dir: dir,
        };
        brokers.wait_for_each("from the database", 1);
        brokers
    }

    /// Each broker's name and MQTT port. (The RMQTT nodes are one cluster:
    /// a device has one session in it, so each broker is given devices of
    /// its own, `…-0`, `…-1`, `…-2`, in this order.)
    fn each(&self) -> [(&'static str, u16); 3] {
        [
            ("mosquitto", self.mosquitto.port),
            ("rmqtt node 1", self.node1.mqtt),
            ("rmqtt node 2", self.node2.mqtt),
        ]
    }

    /// A client of each broker, as `{device}-{i}`.
    fn sessions(&self, device: &str, key: &Key) -> Vec<Client> {
        self.each()
            .iter()
            .enumerate()
            .map(|(i, &(_, port))| Client::connected(port, &format!("{device}-{i}"), key))
            .collect()
    }

    fn logs(&self) -> [String; 3] {
        [self.mosquitto.log(), self.node1.log(), self.node2.log()]
    }

    fn all_logs(&self) -> String {
        let [m, a, b] = self.logs();
        format!("mosquitto:\n{m}\nnode 1:\n{a}\nnode 2:\n{b}")
    }

    /// How many times each broker's log says `text`.
    fn counts(&self, text: &str) -> [usize; 3] {
        self.logs().map(|log| log.matches(text).count())
    }

    /// Waits until every broker's log says `text` at least `n` times.
    fn wait_for_each(&self, text: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.counts(text).iter().any(|&c| c < n) {
            assert!(
                Instant::now() < deadline,
                "not every log says `{text}` {n} time(s):\n{}",
                self.all_logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether `mosquitto_pub` connects with `key` as `device` to `port` and
/// publishes (QoS 1: the broker acknowledged it).
fn publishes(port: u16, device: &str, key: &Key) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", device])
        .args(["-u", &key.id, "-P", &key.secret, "-q", "1"])
        .args(["-t", &format!("structure/{device}/state"), "-m", "on"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Polls until `mosquitto_pub` succeeds on `port`; how long it took.
fn until_it_publishes(port: u16, device: &str, key: &Key) -> Duration {
    let started = Instant::now();
    while !publishes(port, device, key) {
        assert!(
            started.elapsed() < PATIENCE,
            "{device} never connected to {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// A `mosquitto_sub` on `port` as `device`, subscribed to every device's
/// state; its output is read at the end.
struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    fn start(dir: &Path, port: u16, device: &str, key: &Key) -> Self {
        let out = dir.join(format!("sub-{device}-{port}.txt"));
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", device])
            .args(["-u", &key.id, "-P", &key.secret, "-v", "-q", "1"])
            .args(["-t", "structure/+/state"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, out }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until it received `line` (`topic payload`).
    fn wait_for(&self, line: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.received().lines().any(|l| l == line) {
            assert!(
                Instant::now() < deadline,
                "never received `{line}`; received:\n{}",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `payload` on `device`'s state topic through an open client.
fn say(client: &mut Client, device: &str, payload: &str) {
    client.publish_with(&format!("structure/{device}/state"), payload, 1, false);
}

fn database(name: &str) -> Postgres {
    let pg = Postgres::start(name);
    cli(&pg, &["schema"]);
    cli(&pg, &["application", "add", APP_A]);
    let mut devices = vec!["dev-1".to_owned(), "dev-2".to_owned()];
    for prefix in ["probe", "session", "gw"] {
        devices.extend((0..3).map(|i| format!("{prefix}-{i}")));
    }
    for id in &devices {
        cli(
            &pg,
            &[
                "device",
                "add",
                id,
                "--application",
                APP_A,
                "--tag",
                "site=north",
            ],
        );
    }
    pg
}

#[test]
fn keys_made_and_deleted_with_the_command_line_take_effect_on_every_broker() {
    if !available() {
        return;
    }
    let pg = database("cli");
    let brokers = Brokers::start("cli", &pg);
    let work = WorkDir::new("database-cli-clients");

    // A key made with the command line authenticates its device on every
    // broker: no file, no signal.
    let device_key = create_key(&pg, None);
    let committed = Instant::now();
    for (i, (name, port)) in brokers.each().into_iter().enumerate() {
        until_it_publishes(port, &format!("probe-{i}"), &device_key);
        println!(
            "{name}: the new key authenticated by {:.0} ms after its commit (polled in turn)",
            committed.elapsed().as_secs_f64() * 1e3
        );
    }
    // A key that was never made opens nothing.
    let unknown = Key {
        id: "stk_000000000000000000000u".into(),
        secret: device_key.secret.clone(),
    };
    for (i, (name, port)) in brokers.each().into_iter().enumerate() {
        assert!(!publishes(port, &format!("probe-{i}"), &unknown), "{name}");
    }

    // A gateway restricted to `site=north` sees its site's devices, on
    // every broker; retagged out of its scope, a device is no longer
    // delivered to it, while its site's others still are. (The devices
    // publish on Mosquitto, and on node 1 for both nodes of the cluster.)
    let gateway_key = create_key(&pg, Some("site=north"));
    for (i, (_, port)) in brokers.each().into_iter().enumerate() {
        until_it_publishes(port, &format!("gw-{i}"), &gateway_key);
    }
    let gateways: Vec<Subscriber> = brokers
        .each()
        .iter()
        .enumerate()
        .map(|(i, &(_, port))| Subscriber::start(&work.0, port, &format!("gw-{i}"), &gateway_key))
        .collect();
    let mut publishers: Vec<(Client, Client)> = [brokers.mosquitto.port, brokers.node1.mqtt]
        .iter()
        .map(|&port| {
            (
                Client::connected(port, "dev-1", &device_key),
                Client::connected(port, "dev-2", &device_key),
            )
        })
        .collect();
    let say_all = |publishers: &mut Vec<(Client, Client)>, payload: &str| {
        for (one, two) in publishers.iter_mut() {
            say(one, "dev-1", payload);
            say(two, "dev-2", payload);
        }
    };
    // mosquitto_sub has subscribed once a first delivery arrives.
    let deadline = Instant::now() + PATIENCE;
    while !gateways
        .iter()
        .all(|g| g.received().contains("structure/dev-1/state before"))
    {
        assert!(Instant::now() < deadline, "{}", brokers.all_logs());
        say_all(&mut publishers, "before");
        std::thread::sleep(Duration::from_millis(100));
    }
    let reloads = brokers.counts("change(s) of the database");
    cli(&pg, &["device", "retag", "dev-1", "--tag", "site=south"]);
    let deadline = Instant::now() + PATIENCE;
    while brokers
        .counts("change(s) of the database")
        .iter()
        .zip(reloads)
        .any(|(now, before)| *now <= before)
    {
        assert!(Instant::now() < deadline, "{}", brokers.all_logs());
        std::thread::sleep(Duration::from_millis(10));
    }
    say_all(&mut publishers, "after");
    for gateway in &gateways {
        gateway.wait_for("structure/dev-2/state after");
        assert!(
            !gateway.received().contains("structure/dev-1/state after"),
            "a device out of the gateway's scope was delivered:\n{}",
            gateway.received()
        );
    }

    // Deleted with the command line, the key's live sessions end on every
    // broker (mosquitto_sub's too: it tries again, and is refused), and it
    // authenticates nowhere.
    let mut sessions = brokers.sessions("session", &gateway_key);
    cli(&pg, &["key", "delete", &gateway_key.id]);
    let committed = Instant::now();
    for ((name, _), session) in brokers.each().iter().zip(&mut sessions) {
        let closed = session.closed_within(PATIENCE);
        assert!(closed.is_some(), "{name} kept the deleted key's session");
        println!(
            "{name}: the deleted key's session closed by {:.0} ms after the commit",
            committed.elapsed().as_secs_f64() * 1e3
        );
    }
    for (i, (name, port)) in brokers.each().into_iter().enumerate() {
        assert!(!publishes(port, &format!("gw-{i}"), &gateway_key), "{name}");
    }
    say_all(&mut publishers, "deleted");
    std::thread::sleep(Duration::from_millis(500));
    for gateway in &gateways {
        assert!(
            !gateway.received().contains("state deleted"),
            "delivered to a deleted key:\n{}",
            gateway.received()
        );
    }
    drop(gateways);

    // Invalid rows: each broker logs it with its key and skips it; the
    // rest applies and nothing else changes.
    let bent = create_key(&pg, Some("site=north"));
    for (i, (_, port)) in brokers.each().into_iter().enumerate() {
        until_it_publishes(port, &format!("gw-{i}"), &bent);
    }
    let mut bent_sessions = brokers.sessions("session", &bent);
    let mut f = Fixture::new(22);
    let (hostile, _) = f.record(APP_A, Scope::Unrestricted);
    let hostile_verifier = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$\
                            aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    pg.sql(&format!(
        "BEGIN; \
         UPDATE structure_access_keys SET restriction = 'site=north,,' WHERE key_id = '{}'; \
         INSERT INTO structure_access_keys (key_id, application, verifier, status) \
         VALUES ('{}', '{APP_A}', '{hostile_verifier}', 'active'); \
         COMMIT;",
        bent.id,
        hostile.key()
    ));
    brokers.wait_for_each(&format!("access key `{}` skipped", bent.id), 1);
    brokers.wait_for_each(&format!("access key `{}` skipped", hostile.key()), 1);
    // The key whose row went bad opens nothing: its sessions end, never
    // "allow all".
    for (i, ((name, port), session)) in brokers.each().iter().zip(&mut bent_sessions).enumerate() {
        assert!(session.closed_within(PATIENCE).is_some(), "{name}");
        assert!(!publishes(*port, &format!("gw-{i}"), &bent), "{name}");
    }
    // The rest is as it was: the devices' sessions are served, and the
    // next key made applies.
    for (one, two) in &mut publishers {
        assert!(one.alive() && two.alive());
    }
    let next = create_key(&pg, None);
    for (i, (_, port)) in brokers.each().into_iter().enumerate() {
        until_it_publishes(port, &format!("probe-{i}"), &next);
    }
    let log = brokers.all_logs();
    for secret in [
        &device_key.secret,
        &gateway_key.secret,
        &bent.secret,
        &next.secret,
    ] {
        assert!(!log.contains(secret.as_str()), "a secret in a log");
    }
}

#[test]
fn brokers_keep_serving_through_database_outages_and_miss_no_change() {
    if !available() {
        return;
    }
    let pg = database("faults");
    let first = create_key(&pg, None);
    let brokers = Brokers::start("faults", &pg);
    let mut sessions = brokers.sessions("session", &first);

    // (a) PostgreSQL stopped for 10 s: the brokers say so once, serve the
    // connected devices and new ones with the records in force, and
    // reconnect by themselves.
    pg.stop();
    brokers.wait_for_each("the records in force stay, reconnecting", 1);
    let stopped = Instant::now();
    while stopped.elapsed() < Duration::from_secs(10) {
        for (i, ((name, port), session)) in brokers.each().iter().zip(&mut sessions).enumerate() {
            assert!(session.alive(), "{name} dropped a session");
            assert!(
                publishes(*port, &format!("probe-{i}"), &first),
                "{name} refused a device"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        brokers.counts("the records in force stay, reconnecting"),
        [1, 1, 1],
        "the outage is said once:\n{}",
        brokers.all_logs()
    );
    pg.start_server();
    brokers.wait_for_each("the database is reachable again", 1);
    let after = create_key(&pg, None);
    for (i, (_, port)) in brokers.each().into_iter().enumerate() {
        until_it_publishes(port, &format!("probe-{i}"), &after);
    }

    // (b) The brokers' connections killed while keys are deleted and made
    // through another connection: every change made meanwhile is applied
    // once they reconnect.
    let mut doomed = brokers.sessions("gw", &after);
    let killed = pg.sql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = '{}'",
        structure_access_common::postgres::APPLICATION_NAME
    ));
    assert_eq!(killed, "3", "one connection per broker");
    cli(&pg, &["key", "delete", &after.id]);
    let made = create_key(&pg, None);
    let committed = Instant::now();
    for ((name, _), session) in brokers.each().iter().zip(&mut doomed) {
        assert!(
            session.closed_within(PATIENCE).is_some(),
            "{name} kept a session of a key deleted while it reconnected"
        );
    }
    for (i, (name, port)) in brokers.each().into_iter().enumerate() {
        until_it_publishes(port, &format!("probe-{i}"), &made);
        assert!(!publishes(port, &format!("probe-{i}"), &after), "{name}");
    }
    println!(
        "a deletion and a creation made while the connections were killed: applied on every \
         broker by {:.0} ms after their commit",
        committed.elapsed().as_secs_f64() * 1e3
    );
    brokers.wait_for_each("the database is reachable again", 2);
    drop(sessions);
    drop(brokers);

    // (c) A broker started while the database is down says so: with a
    // records file it serves the file's records until the database is back
    // (then the database's replace them); without one it waits, and does
    // not listen meanwhile.
    pg.stop();
    let mut f = Fixture::new(23);
    let (file_line, file_key) = f.key(APP_A, Scope::Unrestricted);
    let file_devices = device(APP_A, "dev-1", &[]);
    let mosquitto = Mosquitto::start("from-files", &pg, Some((&file_line, &file_devices)), true);
    assert!(publishes(mosquitto.port, "dev-1", &file_key));
    assert!(
        mosquitto
            .log()
            .contains("serving the records of the files until the database can be reached"),
        "{}",
        mosquitto.log()
    );
    let dir = WorkDir::new("database-waiting");
    dir.write("keys.jsonl", &file_line);
    dir.write("devices.jsonl", &file_devices);
    let broker = Path::new(env!("CARGO_BIN_EXE_structure-broker"));
    let records = format!("database_url = \"{}\"\n", pg.url());
    let node_from_files = support::spawn_over(
        broker,
        &dir.0,
        "from-files",
        1,
        "",
        free_port(),
        &format!("{records}{}", support::FILES),
        "",
    );
    support::wait_until_listening(&node_from_files);
    assert!(publishes(node_from_files.mqtt, "dev-1", &file_key));
    node_from_files
        .wait_for_log("serving the records of the files until the database can be reached");
    let waiting = support::spawn_over(broker, &dir.0, "alone", 1, "", free_port(), &records, "");
    let mut waiting_mosquitto = Mosquitto::start("waiting", &pg, None, false);
    waiting.wait_for_log("waiting for the database");
    let deadline = Instant::now() + PATIENCE;
    while !waiting_mosquitto.log().contains("waiting for the database") {
        assert!(Instant::now() < deadline, "{}", waiting_mosquitto.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", waiting.mqtt)).is_err(),
        "the node listens with no records"
    );
    assert!(
        !waiting_mosquitto.listening(),
        "mosquitto listens with no records"
    );
    pg.start_server();
    support::wait_until_listening(&waiting);
    waiting_mosquitto.wait_until_listening();
    for port in [
        waiting.mqtt,
        waiting_mosquitto.port,
        mosquitto.port,
        node_from_files.mqtt,
    ] {
        until_it_publishes(port, "dev-1", &made);
        // The database's records replaced the file's.
        assert!(!publishes(port, "dev-1", &file_key));
    }
}
