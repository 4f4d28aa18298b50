//! Records at a platform's size on a real Mosquitto: KEYS keys (generated
//! secrets; 10% restricted to a fleet, 10% to device IDs) and DEVICES devices
//! of 3 tags in APPS applications (`integrations/common/scale/records.rs`),
//! CLIENTS clients connected; then one key deleted, one device retagged out of
//! a restricted gateway's scope, one key added, each followed by SIGHUP.
//!
//! It reports the broker's start (until its port accepts), its resident memory
//! with the records loaded, and for each change: the longest round trip of a
//! client pinging throughout (is the broker held?), and how long after the
//! signal the change took effect (the deleted key's 10 sessions closed; the
//! retagged device's messages no longer reaching the gateway; the new key
//! connecting).
//!
//! `cargo build --release -p structure-access-mosquitto && cargo run --release
//! -p structure-access-mosquitto --example scale [KEYS] [DEVICES] [APPS] [CLIENTS]`
//! (defaults 100000 1000000 100 1000; needs `mosquitto` and about 300 MB of
//! temporary disk). With `BASELINE=/path/to/libstructure_access_mosquitto.so`
//! it runs the same steps against that plugin too, on the same files (built at
//! `8dbebf5` by `integrations/mosquitto/scripts/baseline_plugin.sh`: a full
//! reload on the broker's thread).

#[path = "../../common/scale/records.rs"]
mod records;

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Broker, free_port, start_logged};
use records::Credentials;
use structure_access_common::wire;

/// A device's MQTT connection (keep-alive 600 s).
fn open(port: u16, device: &str, key: &Credentials) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .write_all(&wire::connect(device, Some((&key.key, &key.secret)), 600))
        .unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack[3], 0, "{device} refused");
    stream
}

/// Whether `device` connects with `key` (and disconnects).
fn connects(port: u16, device: &str, key: &Credentials) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.write_all(&wire::connect(device, Some((&key.key, &key.secret)), 60));
    let mut connack = [0u8; 4];
    let ok = stream.read_exact(&mut connack).is_ok() && connack[3] == 0;
    let _ = stream.write_all(&[0xE0, 0]);
    ok
}

/// Round trips of a client pinging in a loop: (when, how long).
struct Pinger {
    samples: Arc<Mutex<Vec<(Instant, Duration)>>>,
    stop: Arc<AtomicBool>,
}

impl Pinger {
    fn start(mut stream: TcpStream) -> Self {
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

    /// The longest round trip under way at some time within `from..until`.
    fn longest(&self, from: Instant, until: Instant) -> Duration {
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

fn sighup(broker: &Broker) -> Instant {
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    sent
}

/// Waits (up to 60 s) until the log holds `n` reload lines, then one second
/// more; returns when the wait ended.
fn wait_reloads(log: &dyn Fn() -> String, n: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    while log().matches("reloaded").count() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    Instant::now()
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// The figures of one run.
#[derive(Debug, Default)]
struct Figures {
    start: Duration,
    rss: f64,
    delete_hold: Duration,
    delete_closed: Option<Duration>,
    retag_hold: Duration,
    retag_effect: Option<Duration>,
    add_hold: Duration,
    add_effect: Option<Duration>,
}

fn run(
    plugin: &Path,
    dir: &Path,
    made: &[(String, Credentials)],
    (devices, apps, clients): (usize, usize, usize),
) -> Figures {
    let mut figures = Figures::default();
    let lines: Vec<String> = made.iter().map(|(line, _)| line.clone()).collect();
    let files = records::Files {
        keys: dir.join("keys"),
        devices: dir.join("devices"),
    };
    records::rewrite_keys(&files, &lines, None);
    records::rewrite_devices(&files, devices, apps, 0, 0);
    let port = free_port();
    let config = format!(
        "allow_anonymous false\nplugin {}\nplugin_opt_keys_file {}\nplugin_opt_devices_file {}\n",
        plugin.display(),
        dir.join("keys").display(),
        dir.join("devices").display()
    );
    let started = Instant::now();
    let broker = start_logged(dir, port, &config, Some(&dir.join(format!("log-{port}"))));
    figures.start = started.elapsed();
    let log = || std::fs::read_to_string(dir.join(format!("log-{port}"))).unwrap_or_default();
    figures.rss = rss_mib(broker.pid());

    // Application 0: key 0 (unrestricted) for dev-0, dev-100, … dev-900, the
    // ten sessions that its deletion ends; key 1 (restricted to fleet f-0)
    // for the gateway dev-1000, subscribed to every device's state; dev-2000
    // (fleet f-0) publishing its state with key 3; the other clients with
    // keys 4…9, and one of them pinging.
    let key = |k: usize| &made[k].1;
    let doomed: Vec<TcpStream> = (0..10)
        .map(|i| open(port, &format!("dev-{}", i * apps), key(0)))
        .collect();
    // Devices of application 0 are the multiples of APPS; dev-1000, dev-2000
    // and dev-3000 have their own part.
    let mut spare = (10..)
        .map(|i| i * apps)
        .filter(|d| d % 1000 != 0)
        .map(|d| format!("dev-{d}"));
    let others: Vec<TcpStream> = (0..clients.saturating_sub(13))
        .map(|i| open(port, &spare.next().unwrap(), key(4 + i % 6)))
        .collect();
    let pinger = Pinger::start(open(port, &spare.next().unwrap(), key(5)));
    let mut gateway = open(port, "dev-1000", key(1));
    let mut body = vec![0, 1];
    wire::string(&mut body, "structure/+/state");
    body.push(0);
    gateway.write_all(&wire::packet(0x82, &body)).unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    {
        let arrivals = arrivals.clone();
        let mut gateway = gateway.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = gateway.read(&mut buf) {
                if n == 0 {
                    return;
                }
                // Each delivery of dev-2000's state is a PUBLISH packet; count
                // them by arrival (their payloads are not needed).
                let seen = buf[..n]
                    .windows(22)
                    .filter(|w| w.starts_with(b"structure/dev-2000/sta"))
                    .count();
                if seen > 0 {
                    arrivals.lock().unwrap().push(Instant::now());
                }
            }
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let mut publisher = open(port, "dev-2000", key(3));
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut body = Vec::new();
            wire::string(&mut body, "structure/dev-2000/state");
            body.extend_from_slice(b"{}");
            let packet = wire::packet(0x30, &body);
            while !stop.load(Ordering::Relaxed) {
                if publisher.write_all(&packet).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !arrivals.lock().unwrap().is_empty(),
        "the gateway receives nothing:\n{}",
        log()
    );

    // 1. Key 0 deleted.
    records::rewrite_keys(&files, &lines, Some(0));
    let sent = sighup(&broker);
    let mut doomed = doomed;
    for s in &mut doomed {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let mut last = Duration::ZERO;
    let mut all = true;
    for s in &mut doomed {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => last = last.max(sent.elapsed()),
            Ok(_) => all = false,
        }
    }
    figures.delete_closed = all.then_some(last);
    let until = wait_reloads(&log, 1);
    figures.delete_hold = pinger.longest(sent, until);

    // 2. dev-2000 retagged to fleet f-1: out of the gateway's scope.
    records::rewrite_devices(&files, devices, apps, 2000, 1);
    let sent = sighup(&broker);
    let until = wait_reloads(&log, 2);
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<Instant> = arrivals
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t >= sent)
        .collect();
    // Delivered until the last arrival after the signal, if it then stopped.
    figures.retag_effect = match after.last() {
        None => Some(Duration::ZERO),
        Some(last) if *last < until => Some(last.duration_since(sent)),
        Some(_) => None,
    };
    figures.retag_hold = pinger.longest(sent, until);
    stop.store(true, Ordering::Relaxed);

    // 3. A key added (application 0): its device connects once applied.
    let (new_line, new_key) = records::new_key(0, 999);
    let mut with_new = lines.clone();
    with_new.push(new_line);
    records::rewrite_keys(&files, &with_new, Some(0));
    let sent = sighup(&broker);
    let deadline = sent + Duration::from_secs(60);
    while Instant::now() < deadline {
        if connects(port, "dev-3000", &new_key) {
            figures.add_effect = Some(sent.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let until = wait_reloads(&log, 3);
    figures.add_hold = pinger.longest(sent, until);
    let log = log();
    for line in log
        .lines()
        .filter(|l| l.contains("loaded") || l.contains("reloaded"))
    {
        eprintln!("  log: {line}");
    }
    drop((others, gateway, pinger));
    figures
}

fn print(name: &str, f: &Figures) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let opt = |d: Option<Duration>| {
        d.map_or("never (within the wait)".into(), |d| {
            format!("{:.0} ms", ms(d))
        })
    };
    println!("{name}:");
    println!(
        "  start, until the port accepts:              {:>8.2} s",
        f.start.as_secs_f64()
    );
    println!(
        "  broker RSS, records loaded:                 {:>8.0} MiB",
        f.rss
    );
    println!(
        "  delete one key: longest round trip          {:>8.1} ms; its 10 sessions closed after {}",
        ms(f.delete_hold),
        opt(f.delete_closed)
    );
    println!(
        "  retag one device: longest round trip        {:>8.1} ms; the gateway got its messages until {} after the signal",
        ms(f.retag_hold),
        opt(f.retag_effect)
    );
    println!(
        "  add one key: longest round trip             {:>8.1} ms; it connects after {}",
        ms(f.add_hold),
        opt(f.add_effect)
    );
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |n| n.parse().unwrap())
    };
    let (keys, devices, apps, clients) = (
        arg(1, 100_000),
        arg(2, 1_000_000),
        arg(3, 100),
        arg(4, 1000),
    );
    assert!(
        (10 + clients + clients / 9) * apps < devices && keys >= 10,
        "too few devices for the clients"
    );
    let dir: PathBuf = common::work_dir("scale");
    let made = records::write(
        &records::Files {
            keys: dir.join("keys"),
            devices: dir.join("devices"),
        },
        keys,
        devices,
        apps,
    );
    println!("{keys} keys, {devices} devices in {apps} applications, {clients} clients:");
    let ours = run(
        &common::plugin_path(),
        &dir,
        &made,
        (devices, apps, clients),
    );
    print("this plugin", &ours);
    if let Ok(baseline) = std::env::var("BASELINE") {
        let theirs = run(Path::new(&baseline), &dir, &made, (devices, apps, clients));
        print(&format!("baseline ({baseline})"), &theirs);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
