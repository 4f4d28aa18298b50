//! A two-node RMQTT cluster with the plugin, on free loopback ports, driven by
//! independent MQTT clients (MQTT 3.1.1 spoken over plain TCP). The nodes are
//! killed when the test ends, pass or fail.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, Restriction, Scope};

const APP_A: &str = "64b1f0c2a7e3d95b8c4f2a10";
const APP_B: &str = "64b1f0c2a7e3d95b8c4f2a11";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node; killed when dropped.
struct Node {
    child: Child,
    mqtt: u16,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 5 s) for `text` in the node's log.
    fn wait_for_log(&self, text: &str) {
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

    fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Starts nodes 1 and 2 of a cluster over `dir`'s keys and devices files.
fn cluster(dir: &Path, extra: &str) -> (Node, Node) {
    let grpc = [free_port(), free_port()];
    let peers = format!(
        "peers = [\"1@127.0.0.1:{}\", \"2@127.0.0.1:{}\"]\n",
        grpc[0], grpc[1]
    );
    let mut nodes = Vec::new();
    for (i, grpc) in grpc.iter().enumerate() {
        let id = i + 1;
        let mqtt = free_port();
        let config = dir.join(format!("node{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "node_id = {id}\nmqtt_listen = \"127.0.0.1:{mqtt}\"\ngrpc_listen = \"127.0.0.1:{grpc}\"\n\
                 {peers}keys_file = \"keys.jsonl\"\ndevices_file = \"devices.jsonl\"\n{extra}"
            ),
        )
        .unwrap();
        let log = dir.join(format!("node{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_structure-broker"))
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        nodes.push(Node { child, mqtt, log });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &nodes {
        while TcpStream::connect(("127.0.0.1", node.mqtt)).is_err() {
            assert!(
                Instant::now() < deadline,
                "node did not start:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    // Let the nodes' gRPC clients reach each other.
    std::thread::sleep(Duration::from_millis(500));
    (a, b)
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
}

/// An MQTT client over one TCP connection.
struct Client(TcpStream);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    id: String,
    secret: String,
}

impl Client {
    /// CONNECT; returns the client and the CONNACK return code.
    fn connect(port: u16, client_id: &str, key: &Key) -> (Self, u8) {
        let mut body = Vec::new();
        string(&mut body, "MQTT");
        body.extend_from_slice(&[4, 0xC2, 0, 60]);
        string(&mut body, client_id);
        string(&mut body, &key.id);
        string(&mut body, &key.secret);
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&packet(0x10, &body)).unwrap();
        let mut client = Self(stream);
        let (kind, body) = client.read().expect("no CONNACK");
        assert_eq!(kind >> 4, 2, "expected CONNACK");
        (client, body[1])
    }

    fn connected(port: u16, client_id: &str, key: &Key) -> Self {
        let (client, code) = Self::connect(port, client_id, key);
        assert_eq!(code, 0, "{client_id} refused");
        client
    }

    /// One packet: (first byte, body); `None` when the connection closed.
    fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut first = [0u8];
        match self.0.read_exact(&mut first) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut byte = [0u8];
            self.0.read_exact(&mut byte).ok()?;
            len |= usize::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).ok()?;
        Some((first[0], body))
    }

    /// SUBSCRIBE at QoS 0; returns the SUBACK return code.
    fn subscribe(&mut self, filter: &str) -> u8 {
        let mut body = vec![0, 1];
        string(&mut body, filter);
        body.push(0);
        self.0.write_all(&packet(0x82, &body)).unwrap();
        loop {
            let (kind, body) = self.read().expect("no SUBACK");
            if kind >> 4 == 9 {
                return body[2];
            }
        }
    }

    /// PUBLISH at QoS 0.
    fn publish(&mut self, topic: &str, payload: &str) {
        let mut body = Vec::new();
        string(&mut body, topic);
        body.extend_from_slice(payload.as_bytes());
        self.0.write_all(&packet(0x30, &body)).unwrap();
    }

    /// The messages received within `wait`, as `topic payload`.
    fn messages(&mut self, wait: Duration) -> Vec<String> {
        self.0.set_read_timeout(Some(wait)).unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let mut first = [0u8];
            match self.0.peek(&mut first) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
            let Some((kind, body)) = self.read() else {
                break;
            };
            if kind >> 4 == 3 {
                let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let topic = String::from_utf8_lossy(&body[2..2 + len]);
                let payload = String::from_utf8_lossy(&body[2 + len..]);
                seen.push(format!("{topic} {payload}"));
            }
        }
        seen
    }

    /// Waits until the broker closes the connection; how long that took.
    fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        self.0.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match self.0.read(&mut buf) {
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

struct Fixture {
    rng: ChaCha20Rng,
    policy: HashPolicy,
}

impl Fixture {
    fn key(&mut self, app: &str, scope: Scope) -> (String, Key) {
        let new =
            AccessKey::generate(&mut self.rng, app.parse().unwrap(), scope, &self.policy).unwrap();
        let line = serde_json::to_string(&new.record).unwrap() + "\n";
        let key = Key {
            id: new.record.key().to_string(),
            secret: new.secret.expose_secret().to_owned(),
        };
        (line, key)
    }
}

fn device(app: &str, id: &str, tags: &[(&str, &str)]) -> String {
    let record = tags.iter().fold(
        DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap()),
        |d, (k, v)| d.with_tag(k, v),
    );
    serde_json::to_string(&record).unwrap() + "\n"
}

#[test]
fn a_two_node_cluster_enforces_access_keys_and_revokes_across_nodes() {
    let dir = std::env::temp_dir().join(format!("structure-rmqtt-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = Fixture {
        rng: ChaCha20Rng::seed_from_u64(14),
        policy: HashPolicy::default(),
    };
    let trucks: Restriction = "vehicle=truck,gw-1".parse().unwrap();
    let (trucks_line, trucks_key) = f.key(APP_A, trucks.into());
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    let (revoked_line, revoked) = f.key(APP_A, Scope::Unrestricted);
    let (b_line, b_key) = f.key(APP_B, Scope::Unrestricted);
    let keys = [&trucks_line, &open_line, &revoked_line, &b_line];
    std::fs::write(dir.join("keys.jsonl"), keys.map(String::as_str).concat()).unwrap();
    let devices = [
        device(APP_A, "gw-1", &[]),
        device(APP_A, "truck-1", &[("vehicle", "truck")]),
        device(APP_A, "truck-2", &[("vehicle", "truck")]),
        device(APP_A, "car-1", &[("vehicle", "car")]),
        device(APP_A, "monitor", &[]),
        device(APP_A, "sensor-9", &[]),
        device(APP_B, "b-truck", &[("vehicle", "truck")]),
    ];
    std::fs::write(dir.join("devices.jsonl"), devices.concat()).unwrap();
    let (a, b) = cluster(&dir, "");
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());

    // Right credentials connect, on either node; every wrong one is refused.
    for node in [&a, &b] {
        let _ = Client::connected(node.mqtt, "truck-1", &trucks_key);
    }
    let wrong = Key {
        id: trucks_key.id.clone(),
        secret: open.secret.clone(),
    };
    let unknown = Key {
        id: "stk_000000000000000000000u".into(),
        secret: open.secret.clone(),
    };
    for (device, key, why) in [
        ("truck-1", &wrong, "wrong secret"),
        ("truck-1", &unknown, "unknown access key"),
        ("car-1", &trucks_key, "outside the scope"),
        ("nobody", &open, "unknown device"),
        ("b-truck", &open, "another application"),
    ] {
        let (_, code) = Client::connect(a.mqtt, device, key);
        assert_eq!(code, 5, "{why}: CONNACK {code}\n{}", logs());
        assert!(a.log().contains(why), "log lacks `{why}`:\n{}", logs());
    }
    for secret in [&open.secret, &trucks_key.secret, &b_key.secret] {
        assert!(!logs().contains(secret.as_str()), "a secret reached a log");
    }

    // A restricted wildcard subscriber on node 1 gets in-scope state published
    // on node 2, and never out-of-scope state; subscribing to an out-of-scope
    // device's topic is denied.
    let mut gateway = Client::connected(a.mqtt, "gw-1", &trucks_key);
    assert_eq!(gateway.subscribe("structure/+/state"), 0);
    assert_eq!(gateway.subscribe("structure/car-1/state"), 0x80);
    // An unrestricted subscriber of application A on node 1, for the forged
    // publication below.
    let mut monitor = Client::connected(a.mqtt, "monitor", &open);
    assert_eq!(monitor.subscribe("structure/+/state"), 0);
    std::thread::sleep(Duration::from_millis(500));
    let mut truck2 = Client::connected(b.mqtt, "truck-2", &trucks_key);
    let mut car = Client::connected(b.mqtt, "car-1", &open);
    let mut b_truck = Client::connected(b.mqtt, "b-truck", &b_key);
    truck2.publish("structure/truck-2/state", "t2");
    car.publish("structure/car-1/state", "car");
    b_truck.publish("structure/b-truck/state", "other-app");
    // A restricted device may not publish another device's state outside its scope.
    truck2.publish("structure/car-1/state", "forged");
    let seen = gateway.messages(Duration::from_secs(2));
    assert_eq!(seen, ["structure/truck-2/state t2"], "{}", logs());
    let seen = monitor.messages(Duration::from_millis(500));
    assert!(
        seen.contains(&"structure/car-1/state car".to_string()),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|m| m.contains("forged")), "{seen:?}");
    assert!(!seen.iter().any(|m| m.contains("other-app")), "{seen:?}");
    assert!(
        b.log().contains("publish `structure/car-1/state`"),
        "{}",
        logs()
    );

    // Revoking a key: its line deleted, SIGHUP to node 1 only. Its session on
    // node 2 is disconnected by node 1 within 2 s.
    let mut sensor = Client::connected(b.mqtt, "sensor-9", &revoked);
    let kept = [&trucks_line, &open_line, &b_line];
    std::fs::write(dir.join("keys.jsonl"), kept.map(String::as_str).concat()).unwrap();
    a.sighup();
    let took = sensor.closed_within(Duration::from_secs(2));
    assert!(took.is_some(), "not disconnected within 2 s\n{}", logs());
    a.wait_for_log("the access key was deleted");
    // Node 1 refuses the key at once; node 2 too, once it has reloaded.
    let (_, code) = Client::connect(a.mqtt, "sensor-9", &revoked);
    assert_eq!(code, 5, "{}", logs());
    b.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, code) = Client::connect(b.mqtt, "sensor-9", &revoked);
        if code == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 never reloaded\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The other sessions stand.
    gateway.publish("structure/gw-1/state", "still");
    let seen = monitor.messages(Duration::from_secs(1));
    assert_eq!(seen, ["structure/gw-1/state still"], "{}", logs());

    // An invalid keys file: refused, the previous records stay.
    std::fs::write(dir.join("keys.jsonl"), "not json\n").unwrap();
    a.sighup();
    a.wait_for_log("keys.jsonl` line 1");
    let _ = Client::connected(a.mqtt, "truck-1", &trucks_key);

    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
