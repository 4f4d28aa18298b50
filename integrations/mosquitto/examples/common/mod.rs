//! What the load generators share: a real `mosquitto` started on a free
//! loopback port (killed when dropped), the plugin's path, the key and device
//! files, and the few MQTT 3.1.1 packets they speak over plain TCP.
#![allow(dead_code)] // each example uses its own part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, Scope};
use structure_access_common::wire;

/// The application of every key and device.
pub const APP: &str = "app1";

/// A running broker; killed when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
}

impl Broker {
    /// The broker's process id (to send it SIGHUP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `mosquitto` on `port` with `extra` configuration lines, and waits
/// until it accepts connections.
pub fn start_on(dir: &Path, port: u16, extra: &str) -> Broker {
    start_logged(dir, port, extra, None)
}

/// [`start_on`], writing the broker's log to `log`.
pub fn start_logged(dir: &Path, port: u16, extra: &str, log: Option<&Path>) -> Broker {
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    // Started as root, mosquitto drops to user `mosquitto` unless told otherwise.
    let user = if std::fs::metadata("/proc/self")
        .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        "user root\n"
    } else {
        ""
    };
    std::fs::write(
        &conf,
        format!("{user}listener {port} 127.0.0.1\npersistence false\n{extra}"),
    )
    .unwrap();
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("mosquitto must be installed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker { child, port }
}

/// [`start_on`] a free port.
pub fn start(dir: &Path, extra: &str) -> Broker {
    start_on(dir, free_port(), extra)
}

/// The plugin built beside this example (`target/<profile>/lib…so`).
pub fn plugin_path() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libstructure_access_mosquitto.so")
}

/// The configuration lines that load the plugin with `dir`'s files.
pub fn plugin_config(dir: &Path, options: &str) -> String {
    format!(
        "allow_anonymous false\nplugin {}\nplugin_opt_keys_file {}\nplugin_opt_devices_file {}\n{options}",
        plugin_path().display(),
        dir.join("keys").display(),
        dir.join("devices").display()
    )
}

/// Writes `count` unrestricted keys of `policy`, one per device `dev-{i}`,
/// into `dir`'s keys and devices files; returns (key, secret) per device.
pub fn write_keys(dir: &Path, count: usize, policy: &HashPolicy) -> Vec<(String, String)> {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut keys = String::new();
    let mut devices = String::new();
    let mut credentials = Vec::new();
    for i in 0..count {
        let new = AccessKey::generate(&mut rng, APP.parse().unwrap(), Scope::Unrestricted, policy)
            .unwrap();
        keys.push_str(&serde_json::to_string(&new.record).unwrap());
        keys.push('\n');
        let device = DeviceRecord::new(APP.parse().unwrap(), format!("dev-{i}").parse().unwrap());
        devices.push_str(&serde_json::to_string(&device).unwrap());
        devices.push('\n');
        credentials.push((
            new.record.key().to_string(),
            new.secret.expose_secret().to_owned(),
        ));
    }
    std::fs::write(dir.join("keys"), keys).unwrap();
    std::fs::write(dir.join("devices"), devices).unwrap();
    credentials
}

/// An MQTT 3.1.1 CONNECT packet (clean session, keep-alive 60 s, optional
/// username/password).
pub fn connect_packet(client_id: &str, credentials: Option<(&str, &str)>) -> Vec<u8> {
    wire::connect(client_id, credentials, 60)
}

/// [`connect_packet`] with another keep-alive, in seconds.
pub fn connect_packet_keepalive(
    client_id: &str,
    credentials: Option<(&str, &str)>,
    keepalive: u16,
) -> Vec<u8> {
    wire::connect(client_id, credentials, keepalive)
}

/// PINGREQ.
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// DISCONNECT.
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// Opens a connection and sends `connect`; returns the stream and the CONNACK
/// return code (0: accepted).
pub fn connect(port: u16, connect: &[u8]) -> std::io::Result<(TcpStream, u8)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.write_all(connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    Ok((stream, connack[3]))
}

/// Connects once and disconnects; returns the CONNACK return code.
pub fn connect_once(port: u16, packet: &[u8]) -> u8 {
    let (mut stream, code) = connect(port, packet).unwrap();
    let _ = stream.write_all(&DISCONNECT);
    code
}

/// One PINGREQ → PINGRESP round trip on a connected stream.
pub fn ping(stream: &mut TcpStream) -> std::io::Result<Duration> {
    let start = Instant::now();
    stream.write_all(&PINGREQ)?;
    let mut pingresp = [0u8; 2];
    stream.read_exact(&mut pingresp)?;
    Ok(start.elapsed())
}

/// The `q`-quantile (0 to 1) of `samples`, sorted in place.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index.min(samples.len() - 1)]
}

/// Calls `f(i)` for `i` in `0..count`; returns calls per second.
pub fn rate(count: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..count {
        f(i);
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// A fresh working directory, readable by the broker.
pub fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("structure-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
