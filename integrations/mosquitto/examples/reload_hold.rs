//! How long a reload (SIGHUP) holds a real `mosquitto` with the plugin, and
//! how soon revoked sessions are gone.
//!
//! `cargo build --release -p structure-access-mosquitto &&
//! cargo run --release -p structure-access-mosquitto --example reload_hold [KEYS] [DEVICES] [CLIENTS] [CACHE]`
//! (defaults 10000 10000 1000 0; needs `mosquitto`, and more open files than
//! CLIENTS). The broker loads KEYS key records and DEVICES devices; CLIENTS
//! devices connect and stay connected, with `plugin_opt_cache_capacity CACHE`
//! (0: no verification cache, the worst case for Mosquitto's re-check of
//! every client on SIGHUP). The first 100 keys have the default (OWASP)
//! Argon2id parameters and the connected devices share them; the others are
//! cheaper to generate but cost the same to load. Then 10 of the connected
//! devices are deleted from the devices file and the broker gets SIGHUP,
//! while one more client measures PINGREQ → PINGRESP round trips: the longest
//! one is how long the broker was held.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, HashPolicy, Scope};

/// The application of every key and device here.
const APP: &str = "app1";
/// Keys at the default parameters, shared by the connected devices.
const FLEET_KEYS: usize = 100;
/// Connected devices deleted before the SIGHUP.
const REVOKED: usize = 10;

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Connects with MQTT 3.1.1 (clean session, keep-alive 600 s); panics unless
/// the CONNACK accepts.
fn connect(port: u16, client_id: &str, user: &str, pass: &str) -> TcpStream {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.extend_from_slice(&[4, 0xC2]);
    body.extend_from_slice(&600u16.to_be_bytes());
    string(&mut body, client_id);
    string(&mut body, user);
    string(&mut body, pass);
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
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "{client_id} refused");
    stream
}

fn ping(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    stream.write_all(&[0xC0, 0]).unwrap();
    let mut response = [0u8; 2];
    stream.read_exact(&mut response).unwrap();
    assert_eq!(response, [0xD0, 0]);
    start.elapsed()
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16, cache: usize) -> Broker {
    let plugin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libstructure_access_mosquitto.so");
    let user = if std::fs::metadata("/proc/self")
        .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        "user root\n"
    } else {
        ""
    };
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "{user}listener {port} 127.0.0.1\npersistence false\nallow_anonymous false\n\
             max_keepalive 600\nplugin {}\nplugin_opt_keys_file {}\n\
             plugin_opt_devices_file {}\nplugin_opt_cache_capacity {cache}\n",
            plugin.display(),
            dir.join("keys").display(),
            dir.join("devices").display(),
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn()
        .expect("mosquitto must be installed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker(child)
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |n| n.parse().unwrap())
    };
    let (keys_n, devices_n, clients, cache) =
        (arg(1, 10_000), arg(2, 10_000), arg(3, 1000), arg(4, 0));
    assert!(keys_n >= FLEET_KEYS && devices_n > clients && clients > REVOKED);
    let dir = std::env::temp_dir().join(format!("structure-reload-hold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let fleet_policy = HashPolicy::default();
    let cheap_policy = HashPolicy::default().with_params(64, 1, 1).unwrap();
    let mut keys = String::new();
    let mut fleet = Vec::new();
    for i in 0..keys_n {
        let policy = if i < FLEET_KEYS {
            &fleet_policy
        } else {
            &cheap_policy
        };
        let new = AccessKey::generate(&mut rng, APP.parse().unwrap(), Scope::Unrestricted, policy)
            .unwrap();
        keys.push_str(&serde_json::to_string(&new.record).unwrap());
        keys.push('\n');
        if i < FLEET_KEYS {
            fleet.push((
                new.record.key().to_string(),
                new.secret.expose_secret().to_owned(),
            ));
        }
    }
    let device_line = |i: usize| {
        format!(
            "{{\"id\": \"dev-{i}\", \"application\": \"{APP}\", \"tags\": [{{\"key\": \"site\", \"value\": \"s{}\"}}]}}\n",
            i % 50
        )
    };
    let devices: String = (0..devices_n).map(device_line).collect();
    std::fs::write(dir.join("keys"), &keys).unwrap();
    std::fs::write(dir.join("devices"), &devices).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = start(&dir, port, cache);

    let started = Instant::now();
    let mut sessions: Vec<TcpStream> = (0..clients)
        .map(|i| {
            let (key, secret) = &fleet[i % FLEET_KEYS];
            connect(port, &format!("dev-{i}"), key, secret)
        })
        .collect();
    let connect_time = started.elapsed();
    let (key, secret) = &fleet[0];
    let mut probe = connect(port, &format!("dev-{clients}"), key, secret);
    let baseline = (0..200).map(|_| ping(&mut probe)).max().unwrap();

    // Delete the first REVOKED connected devices, then SIGHUP.
    let kept: String = (REVOKED..devices_n).map(device_line).collect();
    std::fs::write(dir.join("devices"), kept).unwrap();
    for s in &sessions[..REVOKED] {
        s.set_nonblocking(true).unwrap();
    }
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-HUP", &broker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut longest = Duration::ZERO;
    let mut gone: Vec<Option<Duration>> = vec![None; REVOKED];
    while sent.elapsed() < Duration::from_secs(3) {
        longest = longest.max(ping(&mut probe));
        for (s, gone) in sessions[..REVOKED].iter_mut().zip(&mut gone) {
            if gone.is_none() {
                let mut buf = [0u8; 64];
                match s.read(&mut buf) {
                    Ok(0) => *gone = Some(sent.elapsed()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => *gone = Some(sent.elapsed()),
                    Ok(_) => {}
                }
            }
        }
    }
    // The others are still connected and served.
    for s in &mut sessions[REVOKED..] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let still = sessions[REVOKED..].iter_mut().take(50).map(ping).count();
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);

    let all_gone = gone.iter().all(Option::is_some);
    let last_gone = gone.iter().flatten().max().copied().unwrap_or_default();
    println!(
        "reload with {keys_n} keys, {devices_n} devices, {clients} connected clients, cache_capacity {cache}:"
    );
    println!(
        "  first connects of {clients} clients:            {:>8.2} s",
        connect_time.as_secs_f64()
    );
    println!(
        "  longest PINGREQ round trip before SIGHUP:     {:>8.1} ms",
        baseline.as_secs_f64() * 1e3
    );
    println!(
        "  longest PINGREQ round trip after SIGHUP:      {:>8.1} ms  (how long the broker was held)",
        longest.as_secs_f64() * 1e3
    );
    println!(
        "  last of the {REVOKED} revoked sessions closed after:  {:>8.1} ms{}",
        last_gone.as_secs_f64() * 1e3,
        if all_gone { "" } else { "  (NOT ALL CLOSED)" }
    );
    println!("  unrevoked sessions answering a ping afterwards: {still} of 50 tried");
    assert!(
        log.contains("reloaded"),
        "the plugin did not reload:\n{log}"
    );
}
