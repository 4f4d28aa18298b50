//! Records at a platform's size on a two-node `structure-broker` cluster:
//! KEYS keys (generated secrets; 10% restricted to a fleet, 10% to device
//! IDs) and DEVICES devices of 3 tags in APPS applications
//! (`integrations/common/scale/records.rs`), CLIENTS clients connected, half
//! on each node; then one key deleted, one device retagged out of a
//! restricted gateway's scope, one key added, each followed by SIGHUP to
//! node 1 alone (node 1 tells node 2).
//!
//! It reports each node's start (until its port accepts) and resident memory
//! with the records loaded, and for each change: the longest round trip of a
//! client pinging node 1 and of one pinging node 2 throughout, and how long
//! after the signal the change took effect (the deleted key's 10 sessions
//! closed, 5 on each node; the retagged device's messages, published on node
//! 1, no longer reaching the gateway on node 2; the new key connecting to
//! node 2).
//!
//! `cargo build --release && cargo run --release --example scale [KEYS]
//! [DEVICES] [APPS] [CLIENTS]` in `integrations/rmqtt` (defaults 100000
//! 1000000 100 1000). With `BASELINE=/path/to/structure-broker` it runs the
//! same steps against that node binary too, on the same files
//! (`scripts/baseline_node.sh` builds it at `8dbebf5`: a full reload, a
//! status call per affected device across the cluster).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../../common/scale/records.rs"]
mod records;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use records::Credentials;
use structure_access_common::wire;
use support::{Node, Pinger};

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

/// Waits (up to 60 s) until both nodes' logs hold `n` reload lines each,
/// then one second more; returns when the wait ended.
fn wait_reloads(nodes: [&Node; 2], n: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    while nodes.iter().any(|node| node.count("reloaded") < n) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    Instant::now()
}

/// The files the harness's nodes read.
fn files(dir: &Path) -> records::Files {
    records::Files {
        keys: dir.join("keys.jsonl"),
        devices: dir.join("devices.jsonl"),
    }
}

#[derive(Debug, Default)]
struct Figures {
    start: Duration,
    rss: [f64; 2],
    delete_hold: [Duration; 2],
    delete_closed: Option<Duration>,
    retag_hold: [Duration; 2],
    retag_effect: Option<Duration>,
    add_hold: [Duration; 2],
    add_effect: Option<Duration>,
}

fn run(
    broker: &Path,
    dir: &Path,
    made: &[(String, Credentials)],
    (devices, apps, clients): (usize, usize, usize),
) -> Figures {
    let mut figures = Figures::default();
    let lines: Vec<String> = made.iter().map(|(line, _)| line.clone()).collect();
    let files = files(dir);
    records::rewrite_keys(&files, &lines, None);
    records::rewrite_devices(&files, devices, apps, 0, 0);
    // Refusals answered at once: the example polls for the added key.
    let (a, b, start) = support::cluster_timed(broker, dir, "refusal_delay_ms = 0\n");
    figures.start = start;
    figures.rss = [a.rss_kib() as f64 / 1024.0, b.rss_kib() as f64 / 1024.0];
    let nodes = [&a, &b];
    let key = |k: usize| &made[k].1;
    // As in the Mosquitto example: application 0's devices are multiples of
    // APPS; key 0's ten sessions alternate between the nodes.
    let doomed: Vec<TcpStream> = (0..10)
        .map(|i| open(nodes[i % 2].mqtt, &format!("dev-{}", i * apps), key(0)))
        .collect();
    let mut spare = (10..)
        .map(|i| i * apps)
        .filter(|d| d % 1000 != 0)
        .map(|d| format!("dev-{d}"));
    let others: Vec<TcpStream> = (0..clients.saturating_sub(14))
        .map(|i| open(nodes[i % 2].mqtt, &spare.next().unwrap(), key(4 + i % 6)))
        .collect();
    let pingers = [
        Pinger::start(open(a.mqtt, &spare.next().unwrap(), key(5))),
        Pinger::start(open(b.mqtt, &spare.next().unwrap(), key(6))),
    ];
    let mut gateway = open(b.mqtt, "dev-1000", key(1));
    gateway
        .write_all(&wire::subscribe(1, "structure/+/state", 0, false))
        .unwrap();
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
                if buf[..n]
                    .windows(22)
                    .any(|w| w.starts_with(b"structure/dev-2000/sta"))
                {
                    arrivals.lock().unwrap().push(Instant::now());
                }
            }
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let mut publisher = open(a.mqtt, "dev-2000", key(3));
        let stop = stop.clone();
        std::thread::spawn(move || {
            let packet = wire::publish("structure/dev-2000/state", b"{}", 0, false, 0, false);
            while !stop.load(Ordering::Relaxed) {
                if publisher.write_all(&packet).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !arrivals.lock().unwrap().is_empty(),
        "the gateway receives nothing:\n{}",
        b.log()
    );
    let hold = |from: Instant, until: Instant| {
        [
            pingers[0].longest(from, until),
            pingers[1].longest(from, until),
        ]
    };

    // 1. Key 0 deleted.
    records::rewrite_keys(&files, &lines, Some(0));
    let sent = Instant::now();
    a.sighup();
    let mut doomed = doomed;
    let mut last = Duration::ZERO;
    let mut all = true;
    for s in &mut doomed {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => last = last.max(sent.elapsed()),
            Ok(_) => all = false,
        }
    }
    figures.delete_closed = all.then_some(last);
    let until = wait_reloads(nodes, 1);
    figures.delete_hold = hold(sent, until);

    // 2. dev-2000 retagged out of the gateway's fleet.
    records::rewrite_devices(&files, devices, apps, 2000, 1);
    let sent = Instant::now();
    a.sighup();
    let until = wait_reloads(nodes, 2);
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<Instant> = arrivals
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t >= sent)
        .collect();
    figures.retag_effect = match after.last() {
        None => Some(Duration::ZERO),
        Some(last) if *last < until => Some(last.duration_since(sent)),
        Some(_) => None,
    };
    figures.retag_hold = hold(sent, until);
    stop.store(true, Ordering::Relaxed);

    // 3. A key added: its device connects to node 2 once applied there.
    let (new_line, new_key) = records::new_key(0, 999);
    let mut with_new = lines.clone();
    with_new.push(new_line);
    records::rewrite_keys(&files, &with_new, Some(0));
    let sent = Instant::now();
    a.sighup();
    let deadline = sent + Duration::from_secs(60);
    while Instant::now() < deadline {
        if connects(b.mqtt, "dev-3000", &new_key) {
            figures.add_effect = Some(sent.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let until = wait_reloads(nodes, 3);
    figures.add_hold = hold(sent, until);
    for (name, node) in [("node 1", &a), ("node 2", &b)] {
        for line in node
            .log()
            .lines()
            .filter(|l| l.contains("loaded") || l.contains("reloaded"))
        {
            eprintln!("  {name}: {line}");
        }
    }
    drop((others, gateway, pingers));
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
        "  start of both nodes, until their ports accept: {:>8.2} s",
        f.start.as_secs_f64()
    );
    println!(
        "  RSS of node 1, node 2, records loaded:       {:>5.0}, {:.0} MiB",
        f.rss[0], f.rss[1]
    );
    println!(
        "  delete one key: longest round trip, node 1, node 2: {:.1}, {:.1} ms; its 10 sessions closed after {}",
        ms(f.delete_hold[0]),
        ms(f.delete_hold[1]),
        opt(f.delete_closed)
    );
    println!(
        "  retag one device: longest round trip:              {:.1}, {:.1} ms; the gateway got its messages until {} after the signal",
        ms(f.retag_hold[0]),
        ms(f.retag_hold[1]),
        opt(f.retag_effect)
    );
    println!(
        "  add one key: longest round trip:                   {:.1}, {:.1} ms; it connects to node 2 after {}",
        ms(f.add_hold[0]),
        ms(f.add_hold[1]),
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
    let (ours, dir): (PathBuf, PathBuf) = support::example_setup("structure-rmqtt-scale");
    let made = records::write(&files(&dir), keys, devices, apps);
    println!(
        "{keys} keys, {devices} devices in {apps} applications, {clients} clients on a two-node cluster:"
    );
    let figures = run(&ours, &dir, &made, (devices, apps, clients));
    print("this node", &figures);
    if let Ok(baseline) = std::env::var("BASELINE") {
        let theirs = run(Path::new(&baseline), &dir, &made, (devices, apps, clients));
        print(&format!("baseline ({baseline})"), &theirs);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
