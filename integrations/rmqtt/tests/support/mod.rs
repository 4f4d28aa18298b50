//! What the cluster suite and the load generator share: nodes of
//! `structure-broker` started on free loopback ports (killed when dropped),
//! and an MQTT 3.1.1 and 5 client over plain TCP.
#![allow(dead_code)] // each user takes its part

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use structure_access_common::wire::{self, Delivery};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node; killed when dropped.
pub struct Node {
    child: Child,
    /// The MQTT port.
    pub mqtt: u16,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 5 s) for `text` in the node's log.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "log lacks `{text}`:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The records lines of a node over `dir`'s keys and devices files.
pub const FILES: &str = "keys_file = \"keys.jsonl\"\ndevices_file = \"devices.jsonl\"\n";

/// Starts node `id` of `broker` with the given peers line and extra
/// configuration, over `dir`'s keys and devices files (`name` tells its files
/// apart), without waiting for it.
fn spawn(
    broker: &Path,
    dir: &Path,
    name: &str,
    id: usize,
    peers: &str,
    grpc: u16,
    extra: &str,
) -> Node {
    spawn_over(broker, dir, name, id, peers, grpc, FILES, extra)
}

/// [`spawn`] with the given records lines (the files, or a database).
#[allow(clippy::too_many_arguments)]
pub fn spawn_over(
    broker: &Path,
    dir: &Path,
    name: &str,
    id: usize,
    peers: &str,
    grpc: u16,
    records: &str,
    extra: &str,
) -> Node {
    let mqtt = free_port();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "node_id = {id}\nmqtt_listen = \"127.0.0.1:{mqtt}\"\ngrpc_listen = \"127.0.0.1:{grpc}\"\n\
             {peers}{records}{extra}"
        ),
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let mut command = Command::new(broker);
    // The node's own default filter, unless STRUCTURE_NODE_LOG gives one.
    match std::env::var("STRUCTURE_NODE_LOG") {
        Ok(filter) => command.env("RUST_LOG", filter),
        Err(_) => command.env_remove("RUST_LOG"),
    };
    let child = command
        .arg(&config)
        // As the README advises: RMQTT builds an error for each refused
        // connection, and RUST_BACKTRACE=1 would have each capture a backtrace.
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Node { child, mqtt, log }
}

pub fn wait_until_listening(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", node.mqtt)).is_err() {
        assert!(
            Instant::now() < deadline,
            "node did not start:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// For the load generators (examples): the release `structure-broker` built
/// beside them, and a new work directory `{name}-{pid}` under the system's
/// temporary directory.
pub fn example_setup(name: &str) -> (PathBuf, PathBuf) {
    let broker = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("structure-broker");
    assert!(broker.exists(), "build it first: cargo build --release");
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    (broker, dir)
}

/// Starts nodes 1 and 2 of a cluster of `broker` over `dir`'s keys and devices files.
pub fn cluster(broker: &Path, dir: &Path, extra: &str) -> (Node, Node) {
    let (a, b, _) = cluster_timed(broker, dir, extra);
    (a, b)
}

/// [`cluster`], and how long until both nodes' MQTT ports accepted.
pub fn cluster_timed(broker: &Path, dir: &Path, extra: &str) -> (Node, Node, Duration) {
    cluster_over(broker, dir, FILES, extra)
}

/// The peers line of a two-node cluster on these gRPC ports.
pub fn peers(grpc: [u16; 2]) -> String {
    format!(
        "peers = [\"1@127.0.0.1:{}\", \"2@127.0.0.1:{}\"]\n",
        grpc[0], grpc[1]
    )
}

/// [`cluster_timed`] with the given records lines (the files, or a database).
pub fn cluster_over(
    broker: &Path,
    dir: &Path,
    records: &str,
    extra: &str,
) -> (Node, Node, Duration) {
    let started = Instant::now();
    let grpc = [free_port(), free_port()];
    let peers = peers(grpc);
    let a = spawn_over(broker, dir, "node1", 1, &peers, grpc[0], records, extra);
    let b = spawn_over(broker, dir, "node2", 2, &peers, grpc[1], records, extra);
    wait_until_listening(&a);
    wait_until_listening(&b);
    let listening = started.elapsed();
    // Let the nodes' gRPC clients reach each other.
    std::thread::sleep(Duration::from_millis(500));
    (a, b, listening)
}

/// Starts one node alone (no cluster), named `name` in `dir`.
pub fn single(broker: &Path, dir: &Path, name: &str, extra: &str) -> Node {
    let node = spawn(broker, dir, name, 1, "", free_port(), extra);
    wait_until_listening(&node);
    node
}

/// An MQTT client (3.1.1, or 5) over one TCP connection. QoS 1 deliveries
/// are acknowledged as they are read; deliveries that arrive while it waits
/// for another answer (a SUBACK, a PINGRESP) are kept for [`Client::deliveries`].
pub struct Client {
    pub stream: TcpStream,
    v5: bool,
    next_id: u16,
    pending: VecDeque<Delivery>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

impl Key {
    pub fn credentials(&self) -> Option<(&str, &str)> {
        Some((&self.id, &self.secret))
    }
}

impl Client {
    /// CONNECT; returns the client and the CONNACK return code.
    pub fn connect(port: u16, client_id: &str, key: &Key) -> (Self, u8) {
        Self::connect_with_will(port, client_id, key, None)
    }

    /// CONNECT with a QoS 0 will (`topic`, `message`) if given.
    pub fn connect_with_will(
        port: u16,
        client_id: &str,
        key: &Key,
        will: Option<(&str, &str)>,
    ) -> (Self, u8) {
        let connect = wire::Connect {
            will: will.map(|(topic, message)| wire::Will::new(topic, message)),
            ..wire::Connect::new(client_id, key.credentials())
        };
        let (client, code, _) = Self::open(port, &connect);
        (client, code)
    }

    /// Sends `connect`; returns the client, the CONNACK's return (or reason)
    /// code and its session-present flag.
    pub fn open(port: u16, connect: &wire::Connect<'_>) -> (Self, u8, bool) {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&connect.encode()).unwrap();
        let mut client = Self {
            stream,
            v5: connect.level() == 5,
            next_id: 0,
            pending: VecDeque::new(),
        };
        let (kind, body) = client.read().expect("no CONNACK");
        assert_eq!(kind >> 4, 2, "expected CONNACK");
        (client, body[1], body[0] & 1 == 1)
    }

    pub fn connected(port: u16, client_id: &str, key: &Key) -> Self {
        // CONNACK 3 (service unavailable) is RMQTT's own, never the
        // plugin's (its refusals are 5, not authorized): RMQTT answers it
        // when the client id's previous session is still being torn down
        // (a reconnect right after a DISCONNECT fails to kick it). A client
        // tries again; so does the test, a few times.
        for _ in 0..20 {
            let (client, code) = Self::connect(port, client_id, key);
            if code != 3 {
                assert_eq!(code, 0, "{client_id} refused");
                return client;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{client_id}: the node answered 3 (service unavailable) for 1 s");
    }

    /// [`Client::open`], which must succeed.
    pub fn opened(port: u16, connect: &wire::Connect<'_>) -> (Self, bool) {
        let (client, code, present) = Self::open(port, connect);
        assert_eq!(code, 0, "{} refused", connect.client_id);
        (client, present)
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id % 65535 + 1;
        self.next_id
    }

    /// One packet: (first byte, body); `None` when the connection closed.
    pub fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut first = [0u8];
        match self.stream.read_exact(&mut first) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut byte = [0u8];
            self.stream.read_exact(&mut byte).ok()?;
            len |= usize::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).ok()?;
        Some((first[0], body))
    }

    /// Reads packets until one of `kind` (its first byte's high nibble)
    /// comes; deliveries read meanwhile are kept (and acknowledged).
    fn read_until(&mut self, kind: u8) -> Option<Vec<u8>> {
        loop {
            let (first, body) = self.read()?;
            if first >> 4 == kind {
                return Some(body);
            }
            self.keep(first, &body);
        }
    }

    fn keep(&mut self, first: u8, body: &[u8]) {
        if let Some(delivery) = Delivery::decode(first, body, self.v5) {
            if let (1, Some(id)) = (delivery.qos, delivery.id) {
                let _ = self.stream.write_all(&wire::puback(id));
            }
            self.pending.push_back(delivery);
        }
    }

    /// SUBSCRIBE at QoS 0; returns the SUBACK return code.
    pub fn subscribe(&mut self, filter: &str) -> u8 {
        self.subscribe_qos(filter, 0)
    }

    /// SUBSCRIBE at `qos`; returns the SUBACK return (or reason) code.
    pub fn subscribe_qos(&mut self, filter: &str, qos: u8) -> u8 {
        let id = self.id();
        self.stream
            .write_all(&wire::subscribe(id, filter, qos, self.v5))
            .unwrap();
        let body = self.read_until(9).expect("no SUBACK");
        wire::suback_code(&body, self.v5).expect("a SUBACK without a code")
    }

    /// UNSUBSCRIBE; waits for the UNSUBACK.
    pub fn unsubscribe(&mut self, filter: &str) {
        let id = self.id();
        self.stream
            .write_all(&wire::unsubscribe(id, filter, self.v5))
            .unwrap();
        self.read_until(11).expect("no UNSUBACK");
    }

    /// PUBLISH at QoS 0.
    pub fn publish(&mut self, topic: &str, payload: &str) {
        self.publish_with(topic, payload, 0, false);
    }

    /// PUBLISH at `qos` (0 or 1), retained if `retain`; at QoS 1, waits for
    /// the PUBACK.
    pub fn publish_with(&mut self, topic: &str, payload: &str, qos: u8, retain: bool) {
        let id = self.id();
        self.stream
            .write_all(&wire::publish(
                topic,
                payload.as_bytes(),
                qos,
                retain,
                id,
                self.v5,
            ))
            .unwrap();
        if qos > 0 {
            self.read_until(4).expect("no PUBACK");
        }
    }

    /// The deliveries received within `wait` (those kept while waiting for
    /// other answers first).
    pub fn deliveries(&mut self, wait: Duration) -> Vec<Delivery> {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let mut first = [0u8];
            match self.stream.peek(&mut first) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
            let Some((kind, body)) = self.read() else {
                break;
            };
            self.keep(kind, &body);
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        self.pending.drain(..).collect()
    }

    /// The messages received within `wait`, as `topic payload`.
    pub fn messages(&mut self, wait: Duration) -> Vec<String> {
        self.deliveries(wait)
            .into_iter()
            .map(|d| format!("{} {}", d.topic, String::from_utf8_lossy(&d.payload)))
            .collect()
    }

    /// One PINGREQ → PINGRESP round trip.
    pub fn ping(&mut self) -> Duration {
        let start = Instant::now();
        self.stream.write_all(&[0xC0, 0]).unwrap();
        self.read_until(13).expect("connection lost while pinging");
        start.elapsed()
    }

    /// Whether the connection still answers a ping.
    pub fn alive(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let alive = self.stream.write_all(&[0xC0, 0]).is_ok() && self.read_until(13).is_some();
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        alive
    }

    /// DISCONNECT, then close.
    pub fn disconnect(mut self) {
        let _ = self.stream.write_all(&[0xE0, 0]);
    }

    /// Closes the socket without DISCONNECT: the broker publishes the will.
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Waits until the broker closes the connection; how long that took.
    pub fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(_) => return Some(start.elapsed()),
            }
            if start.elapsed() > limit {
                return None;
            }
        }
    }
}

/// Two applications, for tests that cross them.
pub const APP_A: &str = "64b1f0c2a7e3d95b8c4f2a10";
pub const APP_B: &str = "64b1f0c2a7e3d95b8c4f2a11";

/// Key records made from a seeded generator.
pub struct Fixture {
    pub rng: rand_chacha::ChaCha20Rng,
    pub policy: structure_access::HashPolicy,
}

impl Fixture {
    pub fn new(seed: u64) -> Self {
        use rand_chacha::rand_core::SeedableRng;
        Self {
            rng: rand_chacha::ChaCha20Rng::seed_from_u64(seed),
            policy: structure_access::HashPolicy::default(),
        }
    }

    /// A new key of `app`: its record's line and its credentials.
    pub fn key(&mut self, app: &str, scope: structure_access::Scope) -> (String, Key) {
        let (record, key) = self.record(app, scope);
        (line(&record), key)
    }

    /// A new key of `app`: its record and its credentials.
    pub fn record(
        &mut self,
        app: &str,
        scope: structure_access::Scope,
    ) -> (structure_access::AccessKey, Key) {
        let new = structure_access::AccessKey::generate(
            &mut self.rng,
            app.parse().unwrap(),
            scope,
            &self.policy,
        )
        .unwrap();
        let key = Key {
            id: new.record.key().to_string(),
            secret: new.secret.expose_secret().to_owned(),
        };
        (new.record, key)
    }

    /// `record` with a new secret (generated, or an imported one, which gets
    /// an Argon2id verifier): the rotated record and its credentials.
    pub fn rotate(
        &mut self,
        record: &structure_access::AccessKey,
        imported: bool,
    ) -> (structure_access::AccessKey, Key) {
        use rand_chacha::rand_core::Rng;
        let secret = if imported {
            let n: u64 = self.rng.next_u64();
            structure_access::Secret::imported(&format!("legacy-password-{n:016x}")).unwrap()
        } else {
            structure_access::Secret::generate(&mut self.rng)
        };
        let verifier =
            structure_access::Verifier::create(&secret, &self.policy, &mut self.rng).unwrap();
        let key = Key {
            id: record.key().to_string(),
            secret: secret.expose_secret().to_owned(),
        };
        (record.clone().with_verifier(verifier), key)
    }
}

/// A record as a line of the keys file.
pub fn line(record: &structure_access::AccessKey) -> String {
    serde_json::to_string(record).unwrap() + "\n"
}

/// A device as a line of the devices file.
pub fn device(app: &str, id: &str, tags: &[(&str, &str)]) -> String {
    let record = tags.iter().fold(
        structure_access::DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap()),
        |d, (k, v)| d.with_tag(k, v),
    );
    serde_json::to_string(&record).unwrap() + "\n"
}

/// A fresh work directory under the system's temporary one, removed when
/// dropped.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("structure-rmqtt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn write(&self, name: &str, text: &str) {
        // Written whole, then renamed: a node reloading on its interval never
        // reads half a file.
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Node {
    /// How many times `text` appears in the log.
    pub fn count(&self, text: &str) -> usize {
        self.log().matches(text).count()
    }

    /// Waits (up to 5 s) until `text` appears at least `n` times in the log.
    pub fn wait_for_count(&self, text: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.count(text) < n {
            assert!(
                Instant::now() < deadline,
                "log has `{text}` fewer than {n} times:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The node's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

/// Round trips of a client pinging in a loop: (when, how long).
pub struct Pinger {
    samples: Arc<Mutex<Vec<(Instant, Duration)>>>,
    stop: Arc<AtomicBool>,
}

impl Pinger {
    pub fn start(mut stream: TcpStream) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let start = Instant::now();
                if stream.write_all(&[0xC0, 0]).is_err() {
                    return;
                }
                let mut resp = [0u8; 2];
                if stream.read_exact(&mut resp).is_err() {
                    return;
                }
                s.lock().unwrap().push((start, start.elapsed()));
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self { samples, stop }
    }

    /// Every round trip under way at some time within `from..until`.
    pub fn within(&self, from: Instant, until: Instant) -> Vec<Duration> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, rtt)| *at < until && *at + *rtt > from)
            .map(|(_, rtt)| *rtt)
            .collect()
    }

    /// The longest round trip under way at some time within `from..until`.
    pub fn longest(&self, from: Instant, until: Instant) -> Duration {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, rtt)| *at < until && *at + *rtt > from)
            .map(|(_, rtt)| *rtt)
            .max()
            .unwrap_or_default()
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
