//! Connect throughput of a real `mosquitto` with the plugin: first connects (one
//! Argon2id verification each), repeat connects (answered by the cache), and the
//! same broker without authentication as the baseline.
//!
//! `cargo build --release -p structure-access-mosquitto &&
//! cargo run --release -p structure-access-mosquitto --example connect_rate [N]`
//! (needs `mosquitto`; N repeat connects per run, default 2000). The load
//! generator speaks MQTT 3.1.1 over TCP itself: CONNECT, wait for CONNACK,
//! DISCONNECT, one connection after another from one client thread.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, HashPolicy, Scope};

/// The application of every key and device here.
const APP: &str = "app1";

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// An MQTT 3.1.1 CONNECT packet (clean session, optional username/password).
fn connect_packet(client_id: &str, credentials: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(4);
    body.push(if credentials.is_some() { 0xC2 } else { 0x02 });
    body.extend_from_slice(&60u16.to_be_bytes());
    string(&mut body, client_id);
    if let Some((user, pass)) = credentials {
        string(&mut body, user);
        string(&mut body, pass);
    }
    let mut packet = vec![0x10];
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
    packet.extend_from_slice(&body);
    packet
}

/// Connects once; returns the CONNACK return code.
fn connect_once(port: u16, packet: &[u8]) -> u8 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(packet).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    let _ = stream.write_all(&[0xE0, 0x00]);
    connack[3]
}

struct Broker(Child, u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, extra: &str) -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\npersistence false\n{extra}"),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker(child, port)
}

fn rate(count: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..count {
        f(i);
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let repeats: usize = std::env::args().nth(1).map_or(2000, |n| n.parse().unwrap());
    let firsts = 40;
    let dir = std::env::temp_dir().join(format!("structure-connect-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Keys at the default (OWASP) parameters: what a first connect really costs.
    let policy = HashPolicy::default();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut keys = String::new();
    let mut devices = String::new();
    let mut credentials = Vec::new();
    for i in 0..firsts {
        let new = AccessKey::generate(&mut rng, APP.parse().unwrap(), Scope::Unrestricted, &policy)
            .unwrap();
        keys.push_str(&serde_json::to_string(&new.record).unwrap());
        keys.push('\n');
        devices.push_str(&format!(
            "{{\"id\": \"dev-{i}\", \"application\": \"{APP}\"}}\n"
        ));
        credentials.push((
            new.record.key().to_string(),
            new.secret.expose_secret().to_owned(),
        ));
    }
    std::fs::write(dir.join("keys"), keys).unwrap();
    std::fs::write(dir.join("devices"), devices).unwrap();
    let plugin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libstructure_access_mosquitto.so");

    let with_plugin = start(
        &dir,
        &format!(
            "allow_anonymous false\nplugin {}\nplugin_opt_keys_file {}\nplugin_opt_devices_file {}\n",
            plugin.display(),
            dir.join("keys").display(),
            dir.join("devices").display()
        ),
    );
    let packets: Vec<_> = credentials
        .iter()
        .enumerate()
        .map(|(i, (k, s))| connect_packet(&format!("dev-{i}"), Some((k, s))))
        .collect();
    let open = start(&dir, "allow_anonymous true\n");
    let anonymous: Vec<_> = (0..firsts)
        .map(|i| connect_packet(&format!("dev-{i}"), None))
        .collect();

    let first = rate(firsts, |i| {
        assert_eq!(connect_once(with_plugin.1, &packets[i]), 0)
    });
    // Alternate batches between the two brokers, so that noise from the rest of
    // the machine falls on both alike; report the median batch of each.
    let batch = (repeats / 5).max(1);
    let (mut repeat, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        repeat.push(rate(batch, |i| {
            assert_eq!(connect_once(with_plugin.1, &packets[i % firsts]), 0)
        }));
        baseline.push(rate(batch, |i| {
            assert_eq!(connect_once(open.1, &anonymous[i % firsts]), 0)
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (repeat, baseline) = (median(&mut repeat), median(&mut baseline));
    drop(with_plugin);
    drop(open);
    let _ = std::fs::remove_dir_all(&dir);

    println!("connects per second, one client thread, mosquitto:");
    println!("  first connects (Argon2id m=19456 t=2 p=1): {first:>9.1}/s  ({firsts} connects)");
    println!(
        "  repeat connects (verification cache):      {repeat:>9.1}/s  (median of 5 × {batch})"
    );
    println!(
        "  no authentication (baseline):              {baseline:>9.1}/s  (median of 5 × {batch})"
    );
    println!("  repeat ÷ baseline: {:.2}", repeat / baseline);
}
