//! What the cluster suite and the load generator share: nodes of
//! `structure-broker` started on free loopback ports (killed when dropped),
//! and an MQTT 3.1.1 client over plain TCP.
#![allow(dead_code)] // each user takes its part

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use structure_access_common::wire;

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

    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

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
    let mqtt = free_port();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "node_id = {id}\nmqtt_listen = \"127.0.0.1:{mqtt}\"\ngrpc_listen = \"127.0.0.1:{grpc}\"\n\
             {peers}keys_file = \"keys.jsonl\"\ndevices_file = \"devices.jsonl\"\n{extra}"
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

fn wait_until_listening(node: &Node) {
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
    let grpc = [free_port(), free_port()];
    let peers = format!(
        "peers = [\"1@127.0.0.1:{}\", \"2@127.0.0.1:{}\"]\n",
        grpc[0], grpc[1]
    );
    let a = spawn(broker, dir, "node1", 1, &peers, grpc[0], extra);
    let b = spawn(broker, dir, "node2", 2, &peers, grpc[1], extra);
    wait_until_listening(&a);
    wait_until_listening(&b);
    // Let the nodes' gRPC clients reach each other.
    std::thread::sleep(Duration::from_millis(500));
    (a, b)
}

/// Starts one node alone (no cluster), named `name` in `dir`.
pub fn single(broker: &Path, dir: &Path, name: &str, extra: &str) -> Node {
    let node = spawn(broker, dir, name, 1, "", free_port(), extra);
    wait_until_listening(&node);
    node
}

/// An MQTT client over one TCP connection.
pub struct Client(pub TcpStream);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub secret: String,
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
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(&wire::connect_with_will(
                client_id,
                Some((&key.id, &key.secret)),
                60,
                will,
            ))
            .unwrap();
        let mut client = Self(stream);
        let (kind, body) = client.read().expect("no CONNACK");
        assert_eq!(kind >> 4, 2, "expected CONNACK");
        (client, body[1])
    }

    pub fn connected(port: u16, client_id: &str, key: &Key) -> Self {
        let (client, code) = Self::connect(port, client_id, key);
        assert_eq!(code, 0, "{client_id} refused");
        client
    }

    /// One packet: (first byte, body); `None` when the connection closed.
    pub fn read(&mut self) -> Option<(u8, Vec<u8>)> {
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
    pub fn subscribe(&mut self, filter: &str) -> u8 {
        let mut body = vec![0, 1];
        wire::string(&mut body, filter);
        body.push(0);
        self.0.write_all(&wire::packet(0x82, &body)).unwrap();
        loop {
            let (kind, body) = self.read().expect("no SUBACK");
            if kind >> 4 == 9 {
                return body[2];
            }
        }
    }

    /// PUBLISH at QoS 0.
    pub fn publish(&mut self, topic: &str, payload: &str) {
        let mut body = Vec::new();
        wire::string(&mut body, topic);
        body.extend_from_slice(payload.as_bytes());
        self.0.write_all(&wire::packet(0x30, &body)).unwrap();
    }

    /// The messages received within `wait`, as `topic payload`.
    pub fn messages(&mut self, wait: Duration) -> Vec<String> {
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

    /// One PINGREQ → PINGRESP round trip.
    pub fn ping(&mut self) -> Duration {
        let start = Instant::now();
        self.0.write_all(&[0xC0, 0]).unwrap();
        loop {
            let (kind, _) = self.read().expect("connection lost while pinging");
            if kind >> 4 == 13 {
                return start.elapsed();
            }
        }
    }

    /// DISCONNECT, then close.
    pub fn disconnect(mut self) {
        let _ = self.0.write_all(&[0xE0, 0]);
    }

    /// Waits until the broker closes the connection; how long that took.
    pub fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
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
