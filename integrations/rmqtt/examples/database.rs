//! The database as the source of records, measured: a PostgreSQL of its
//! own holding KEYS keys and DEVICES devices (`common/scale/records.rs`,
//! bulk-loaded), followed by a Mosquitto with the plugin and a two-node
//! RMQTT cluster, each by itself.
//!
//! It reports, for each broker:
//! - its start: until it listens, and the time its "loaded" line gives;
//! - its resident memory with the records loaded;
//! - REPS times: a key's session closed after the key's row is deleted,
//!   from the moment the `DELETE` is sent (one session on each broker);
//! - REPS times: a device retagged out of a restricted gateway's scope
//!   (an `UPDATE` of its tags): from the moment the `UPDATE` is sent until
//!   the send time of the last of its messages the gateway received (it
//!   publishes every millisecond; Mosquitto's gateway hears it on
//!   Mosquitto, both nodes' gateways hear it on node 1);
//! - 1 000 keys deleted in one second (one transaction each, one every
//!   millisecond), 100 of them (spread over the second) with a session on
//!   each broker: how long until every one of those sessions is closed, and
//!   the round trips of a client pinging each broker every 2 ms meanwhile.
//!
//! `cargo build --release && cargo run --release --example database [KEYS]
//! [DEVICES] [APPS] [REPS]` in `integrations/rmqtt` (defaults 100000 1000000
//! 100 100; DEVICES / APPS at least 3 000). It needs PostgreSQL and Mosquitto
//! (as the database suite does) and builds the plugin in the core's
//! workspace.

#[path = "../../common/testing/postgres.rs"]
mod pg;
#[allow(dead_code)] // the files' rewrites are not used here
#[path = "../../common/scale/records.rs"]
mod records;
#[path = "../tests/support/database.rs"]
mod shared;
#[path = "../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use records::Credentials;
use structure_access::{AccessKey, HashPolicy, Restriction};
use structure_access_common::wire;
use support::{Client, Key, Pinger};

/// The three brokers' names, in the order of their ports.
const NAMES: [&str; 3] = ["mosquitto", "rmqtt node 1", "rmqtt node 2"];

fn key(credentials: &Credentials) -> Key {
    Key {
        id: credentials.key.clone(),
        secret: credentials.secret.clone(),
    }
}

/// Connects `device` with `key` to `port`, trying again until the key is in
/// force there (up to 30 s).
fn connect_when_ready(port: u16, device: &str, key: &Key) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // No keepalive: a gateway only listens, for minutes.
        let connect = wire::Connect {
            keepalive: 0,
            ..wire::Connect::new(device, key.credentials())
        };
        let (client, code, _) = Client::open(port, &connect);
        if code == 0 {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "{device} never connected to {port}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// When the broker closes `client` (waiting up to 30 s), on a thread.
fn on_close(mut client: Client) -> std::thread::JoinHandle<Option<Instant>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        client
            .closed_within(Duration::from_secs(30))
            .map(|took| started + took)
    })
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((samples.len() as f64) * p).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn summary(samples: &mut [Duration]) -> String {
    format!(
        "p50 {}, p99 {}, max {} (n = {})",
        ms(percentile(samples, 0.50)),
        ms(percentile(samples, 0.99)),
        ms(percentile(samples, 1.0)),
        samples.len()
    )
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or_default()
        / 1024.0
}

/// The seconds a broker's "loaded … in X s" line gives.
fn loaded_in(log: &str) -> String {
    log.lines()
        .find(|l| l.contains("loaded ") && l.contains("from the database"))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .map_or_else(|| "?".into(), |s| format!("{s} s"))
}

/// The tags of device `i` (`records::device_line`'s), with `fleet`.
fn tags(i: usize, fleet: usize) -> String {
    format!(
        "[{{\"key\":\"fleet\",\"value\":\"f-{fleet}\"}},{{\"key\":\"floor\",\"value\":\"fl-{}\"}},\
         {{\"key\":\"site\",\"value\":\"s-{}\"}}]",
        i % 50,
        i % 20
    )
}

const INSERT_KEY: &str = "INSERT INTO structure_access_keys \
     (key_id, application, verifier, restriction, status, description, additional_topics) \
     SELECT j->>'key', j->>'application', j->>'verifier', j->>'restriction', \
     coalesce(j->>'status', 'active'), coalesce(j->>'description', ''), j->'additionalTopics' \
     FROM (SELECT ($1::text)::jsonb AS j) AS line";

/// A device publishing on its state topic every millisecond, the payload
/// its sequence number; when each was sent.
struct Publisher {
    sent: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl Publisher {
    fn start(mut client: Client, device: &str) -> Self {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (sent.clone(), stop.clone());
        let topic = format!("structure/{device}/state");
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !st.load(Ordering::Relaxed) {
                s.lock().unwrap().push(Instant::now());
                client.publish_with(&topic, &seq.to_string(), 0, false);
                seq += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Self { sent, stop }
    }

    fn sent_at(&self, seq: u64) -> Instant {
        self.sent.lock().unwrap()[seq as usize]
    }

    fn latest(&self) -> u64 {
        self.sent.lock().unwrap().len() as u64
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A gateway's last received sequence number of `topic` (`u64::MAX`:
/// none yet).
fn listen(mut client: Client, topic: &str) -> Arc<Mutex<u64>> {
    let last = Arc::new(Mutex::new(u64::MAX));
    let (l, topic) = (last.clone(), topic.to_owned());
    client.subscribe("structure/+/state");
    std::thread::spawn(move || {
        loop {
            for delivery in client.deliveries(Duration::from_millis(20)) {
                if delivery.topic == topic
                    && let Ok(seq) = String::from_utf8_lossy(&delivery.payload).parse::<u64>()
                {
                    *l.lock().unwrap() = seq;
                }
            }
        }
    });
    last
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("KEYS DEVICES APPS REPS"))
        .collect();
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let (keys, devices, apps, reps) =
        (arg(0, 100_000), arg(1, 1_000_000), arg(2, 100), arg(3, 100));
    let per_app = devices / apps;
    assert!(per_app >= 3000, "DEVICES / APPS must be at least 3 000");
    assert!(shared::available(), "PostgreSQL and Mosquitto are needed");
    let (broker, dir) = support::example_setup("structure-database");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The records, bulk-loaded (triggers off: a provisioning, not changes).
    let pg = pg::Postgres::start("load");
    shared::cli(&pg, &["schema"]);
    let files = records::Files {
        keys: dir.join("keys.jsonl"),
        devices: dir.join("devices.jsonl"),
    };
    let made = records::write(&files, keys, devices, apps);
    for file in [&files.keys, &files.devices] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let loading = Instant::now();
    pg.sql(&format!(
        "SET session_replication_role = replica; \
         CREATE TEMP TABLE key_lines (j jsonb); CREATE TEMP TABLE device_lines (j jsonb); \
         COPY key_lines FROM '{}' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'); \
         COPY device_lines FROM '{}' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'); \
         INSERT INTO structure_access_applications \
           SELECT j->>'application' FROM device_lines UNION SELECT j->>'application' FROM key_lines; \
         INSERT INTO structure_access_keys \
           (key_id, application, verifier, restriction, status, description, additional_topics) \
           SELECT j->>'key', j->>'application', j->>'verifier', j->>'restriction', \
           coalesce(j->>'status', 'active'), coalesce(j->>'description', ''), \
           j->'additionalTopics' FROM key_lines; \
         INSERT INTO structure_access_devices SELECT j->>'id', j->>'application', j->'tags' \
           FROM device_lines; \
         ANALYZE;",
        files.keys.display(),
        files.devices.display()
    ));
    println!(
        "records: {keys} keys and {devices} devices in {apps} applications, loaded into \
         PostgreSQL in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    // The brokers, each from the database.
    let records = format!("database_url = \"{}\"\n", pg.url());
    let (node1, node2, listening) = support::cluster_over(
        &broker,
        &dir,
        &records,
        "refusals_per_address_per_second = 100000\n",
    );
    let started = Instant::now();
    let mosquitto = shared::Mosquitto::start("load", &pg, None, true);
    let mosquitto_listening = started.elapsed();
    let ports = [mosquitto.port, node1.mqtt, node2.mqtt];
    let logs = || [mosquitto.log(), node1.log(), node2.log()];
    let pids = [mosquitto.child.id(), node1.pid(), node2.pid()];
    println!(
        "start: mosquitto listening after {} (loaded in {}); both rmqtt nodes listening after {} \
         (loaded in {} and {})",
        ms(mosquitto_listening),
        loaded_in(&logs()[0]),
        ms(listening),
        loaded_in(&logs()[1]),
        loaded_in(&logs()[2]),
    );
    for (name, pid) in NAMES.iter().zip(pids) {
        println!("memory: {name} {:.0} MiB resident", rss_mib(pid));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (db, connection) = runtime
        .block_on(tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(connection);
    let sql = |statement: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]| {
        runtime.block_on(db.execute(statement, params)).unwrap()
    };
    let device = |app: usize, j: usize| format!("dev-{}", app + apps * j);

    // A key's sessions closed after its row is deleted.
    let mut closed: [Vec<Duration>; 3] = Default::default();
    for rep in 0..reps {
        let (line, credentials) = records::new_key(0, 10_000 + rep as u64);
        sql(INSERT_KEY, &[&line.trim_end()]);
        let k = key(&credentials);
        let watchers: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(b, &port)| on_close(connect_when_ready(port, &device(0, b + 1), &k)))
            .collect();
        let sent = Instant::now();
        sql(
            "DELETE FROM structure_access_keys WHERE key_id = $1",
            &[&credentials.key],
        );
        for (b, watcher) in watchers.into_iter().enumerate() {
            let at = watcher.join().unwrap().expect("a session outlived its key");
            closed[b].push(at.saturating_duration_since(sent));
        }
    }
    for (name, samples) in NAMES.iter().zip(&mut closed) {
        println!("delete → session closed, {name}: {}", summary(samples));
    }

    // A device retagged out of a restricted gateway's scope.
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let gateway = AccessKey::generate(
        &mut rng,
        records::application(0).parse().unwrap(),
        "fleet=f-0".parse::<Restriction>().unwrap().into(),
        &HashPolicy::default(),
    )
    .unwrap();
    sql(
        INSERT_KEY,
        &[&serde_json::to_string(&gateway.record).unwrap()],
    );
    let gateway_key = Key {
        id: gateway.record.key().to_string(),
        secret: gateway.secret.expose_secret().to_owned(),
    };
    let (publisher_line, publisher) = records::new_key(0, 7);
    sql(INSERT_KEY, &[&publisher_line.trim_end()]);
    let publisher_key = key(&publisher);
    // Devices multiple of 1 000 are of application 0 and fleet f-0.
    let moved = 3000;
    let topic = format!("structure/dev-{moved}/state");
    let listeners: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(b, &port)| {
            let client = connect_when_ready(port, &format!("dev-{}", b * 1000), &gateway_key);
            listen(client, &topic)
        })
        .collect();
    let publishers = [ports[0], ports[1]].map(|port| {
        Publisher::start(
            connect_when_ready(port, &format!("dev-{moved}"), &publisher_key),
            &format!("dev-{moved}"),
        )
    });
    // Mosquitto's gateway hears Mosquitto's publisher; the nodes' hear node 1's.
    let heard_from = [0, 1, 1];
    let retag = |fleet: usize| {
        sql(
            "UPDATE structure_access_devices SET tags = ($1::text)::jsonb WHERE device_id = $2",
            &[&tags(moved, fleet), &format!("dev-{moved}")],
        );
    };
    let resumed = |since: [u64; 2]| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while listeners.iter().zip(heard_from).any(|(last, p)| {
            let last = *last.lock().unwrap();
            last == u64::MAX || last < since[p]
        }) {
            assert!(Instant::now() < deadline, "deliveries never resumed");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    resumed([0, 0]);
    let mut stopped: [Vec<Duration>; 3] = Default::default();
    for _ in 0..reps {
        let sent = Instant::now();
        retag(1);
        std::thread::sleep(Duration::from_millis(400));
        for (b, last) in listeners.iter().enumerate() {
            let last = *last.lock().unwrap();
            let at = publishers[heard_from[b]].sent_at(last);
            stopped[b].push(at.saturating_duration_since(sent));
        }
        let since = [publishers[0].latest(), publishers[1].latest()];
        retag(0);
        resumed(since);
    }
    drop(publishers);
    for (name, samples) in NAMES.iter().zip(&mut stopped) {
        println!(
            "retag → gateway's deliveries stopped, {name}: {}",
            summary(samples)
        );
    }

    // 1 000 keys deleted in one second, 100 of them with a session on each
    // broker, while a client pings each broker.
    let doomed: Vec<(usize, &Credentials)> = made
        .iter()
        .enumerate()
        .filter(|(k, _)| !matches!(k % 10, 1 | 2))
        .map(|(k, (_, credentials))| (k, credentials))
        .take(1000)
        .collect();
    assert_eq!(doomed.len(), 1000, "KEYS too small for 1 000 deletions");
    let pingers: Vec<Pinger> = ports
        .iter()
        .enumerate()
        .map(|(b, &port)| {
            let client =
                connect_when_ready(port, &format!("dev-{}", 4000 + b * 1000), &publisher_key);
            Pinger::start(client.stream)
        })
        .collect();
    let mut watchers: [Vec<_>; 3] = Default::default();
    // Sessions of 300 of them, spread over the second: keys `i % 10` 0, 1
    // and 2 on the three brokers.
    for (i, (k, credentials)) in doomed.iter().enumerate().filter(|(i, _)| i % 10 < 3) {
        let b = i % 10;
        let app = records::key_application(*k, apps);
        let client = connect_when_ready(ports[b], &device(app, per_app / 2 + i), &key(credentials));
        watchers[b].push(on_close(client));
    }
    std::thread::sleep(Duration::from_millis(500));
    let first = Instant::now();
    runtime.block_on(async {
        let statement = db
            .prepare("DELETE FROM structure_access_keys WHERE key_id = $1")
            .await
            .unwrap();
        for (i, (_, credentials)) in doomed.iter().enumerate() {
            tokio::time::sleep_until((first + Duration::from_micros(1000 * i as u64)).into()).await;
            db.execute(&statement, &[&credentials.key]).await.unwrap();
        }
    });
    let committed = first.elapsed();
    let last_commit = Instant::now();
    let mut all_closed = first;
    for (name, watchers) in NAMES.iter().zip(watchers) {
        let n = watchers.len();
        let last = watchers
            .into_iter()
            .map(|w| w.join().unwrap().expect("a session outlived its key"))
            .max()
            .unwrap();
        all_closed = all_closed.max(last);
        println!(
            "1 000 deletions committed in {}: {name}'s {n} sessions of them (keys spread over \
             the second) all closed {} after the first deletion was sent, {} after the last \
             commit",
            ms(committed),
            ms(last - first),
            ms(last.saturating_duration_since(last_commit))
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    for (name, pinger) in NAMES.iter().zip(&pingers) {
        let mut rtts = pinger.within(first, all_closed);
        println!(
            "round trip of another client meanwhile, {name}: {}",
            summary(&mut rtts)
        );
    }
    // Every deleted key is refused on every broker (a sample of 30).
    for (k, credentials) in doomed.iter().step_by(33) {
        let app = records::key_application(*k, apps);
        for (b, &port) in ports.iter().enumerate() {
            let (_, code) =
                Client::connect(port, &device(app, per_app / 2 + 400 + b), &key(credentials));
            assert_ne!(code, 0, "a deleted key connected to {}", NAMES[b]);
        }
    }
    println!("a sample of 30 deleted keys: refused on every broker");
    drop(pingers);
    let _ = std::fs::remove_dir_all(&dir);
}
