//! A node of `structure-broker` with the access-key plugin, each figure beside
//! the same node without it (`access_keys = false`, anonymous), in one run:
//!
//! 1. first connects of devices with generated secrets, one client thread;
//! 2. repeat connects of the same devices;
//! 3. messages per second through a restricted wildcard subscriber
//!    (`structure/+/state` under `vehicle=truck`: a `Filter` subscription, each
//!    delivery decided by `may_receive`), QoS 0 from one publisher;
//! 4. floods of bogus CONNECTs from 4 sockets for SECONDS against node A of a
//!    two-node cluster, while a client connected to node A pings every 5 ms:
//!    its round-trip p99 beside its p99 without the flood.
//!
//! The floods, each against a fresh cluster:
//! - 0: the default configuration, each socket waiting for its CONNACK (the
//!   flood of the issue: refusals past the address's budget are held);
//! - 1: the same with refusals never held (`refusal_delay_ms = 0`): what
//!   holding them saves;
//! - 2: the default, each socket hanging up as soon as its CONNECT is sent;
//! - 3: the same with refusals never held;
//! - 4: the default, each socket hanging up at once with nothing sent: a flood
//!   that never reaches the plugin.
//!
//! Floods 2–4 are not bounded by 4 sockets on the broker's side: the broker
//! still has every connection to handle after the client left.
//!
//! `cargo build --release && cargo run --release --example node_rate [N] [SECONDS]`
//! in `integrations/rmqtt` (N first connects, default 2000; SECONDS of each
//! flood, default 20; `FLOODS=01` runs floods 0 and 1 only; `SHOW_ROUNDS=1`
//! prints the messages/s of every round, to judge the noise).
//!
//! With `AUDIT_BASELINE=PATH` (a `structure-broker` built from an earlier
//! commit, before the audit trail and the counters), 1–3 compare instead
//! this node with its audit file and its metrics endpoint on (scraped every
//! second meanwhile) beside that node with its plugin, and the floods are
//! skipped. With `AUDIT_OFF=1` the baseline is this same node with no audit
//! trail and no metrics endpoint (`audit = false`): the issue's "with and
//! without audit and metrics on"; `AUDIT_AA=1` with it runs both nodes
//! without them, to show the comparison's noise floor. These modes run
//! N/500 batch pairs (at least 10), in alternating order; use N = 20000.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, KeyId, Restriction, Scope, Secret};
use structure_access_common::wire;
use support::{Client, Key, cluster, single};

const APP: &str = "app1";

fn rate(count: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..count {
        f(i);
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Messages per second from `truck-1` to the wildcard subscriber `gw`.
fn throughput(port: u16, gw: &Key, truck: &Key, count: usize) -> f64 {
    let mut sub = Client::connected(port, "gw", gw);
    assert_eq!(sub.subscribe("structure/+/state"), 0);
    let mut publisher = Client::connected(port, "truck-1", truck);
    std::thread::sleep(Duration::from_millis(300));
    let received = std::thread::scope(|s| {
        let counter = s.spawn(move || {
            sub.stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut n = 0;
            let mut last = Instant::now();
            while n < count {
                match sub.read() {
                    Some((kind, _)) if kind >> 4 == 3 => {
                        n += 1;
                        last = Instant::now();
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            (n, last)
        });
        let start = Instant::now();
        for i in 0..count {
            publisher.publish("structure/truck-1/state", &i.to_string());
        }
        let (n, last) = counter.join().unwrap();
        (n, last.duration_since(start))
    });
    let (n, took) = received;
    assert!(n > count * 9 / 10, "only {n} of {count} messages arrived");
    n as f64 / took.as_secs_f64()
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .map_or(default, |n| n.parse().unwrap())
    };
    let firsts = arg(1, 2000) as usize;
    let seconds = arg(2, 20);
    let (broker, dir) = support::example_setup("structure-node-rate");

    // Keys and devices: one unrestricted key per device, and a key restricted
    // to trucks for the wildcard subscriber `gw` and the publisher `truck-1`.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let policy = HashPolicy::default();
    let (mut keys, mut devices, mut fleet) = (String::new(), String::new(), Vec::new());
    let mut add = |scope: Scope, keys: &mut String| {
        let new = AccessKey::generate(&mut rng, APP.parse().unwrap(), scope, &policy).unwrap();
        keys.push_str(&(serde_json::to_string(&new.record).unwrap() + "\n"));
        Key {
            id: new.record.key().to_string(),
            secret: new.secret.expose_secret().to_owned(),
        }
    };
    for i in 0..firsts {
        fleet.push(add(Scope::Unrestricted, &mut keys));
        let device = DeviceRecord::new(APP.parse().unwrap(), format!("dev-{i}").parse().unwrap());
        devices.push_str(&(serde_json::to_string(&device).unwrap() + "\n"));
    }
    let trucks: Restriction = "vehicle=truck,gw".parse().unwrap();
    let trucks = add(trucks.into(), &mut keys);
    for (id, tag) in [("gw", "gateway"), ("truck-1", "truck")] {
        let device =
            DeviceRecord::new(APP.parse().unwrap(), id.parse().unwrap()).with_tag("vehicle", tag);
        devices.push_str(&(serde_json::to_string(&device).unwrap() + "\n"));
    }
    std::fs::write(dir.join("keys.jsonl"), keys).unwrap();
    std::fs::write(dir.join("devices.jsonl"), devices).unwrap();

    let earlier = std::env::var_os("AUDIT_BASELINE").map(std::path::PathBuf::from);
    let audit_off = std::env::var_os("AUDIT_OFF").is_some();
    let audited = earlier.is_some() || audit_off;
    let metrics_port = support::free_port();
    let off = "audit = false\n";
    let on = if std::env::var_os("AUDIT_AA").is_some() {
        off.to_owned()
    } else {
        format!("audit_file = \"audit.jsonl\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n")
    };
    let (plugin, open) = match &earlier {
        None if audit_off => (
            single(&broker, &dir, "plugin", &on),
            single(&broker, &dir, "off", off),
        ),
        None => (
            single(&broker, &dir, "plugin", ""),
            single(&broker, &dir, "open", "access_keys = false\n"),
        ),
        Some(earlier) => (
            single(&broker, &dir, "plugin", &on),
            single(earlier, &dir, "earlier", ""),
        ),
    };
    // An operator's scraper, once a second.
    let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(audited));
    let scraper = {
        let scraping = scraping.clone();
        std::thread::spawn(move || {
            let mut scrapes = 0u32;
            while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                use std::io::{Read, Write};
                if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", metrics_port)) {
                    let _ = s.write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    let mut body = Vec::new();
                    if s.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200") {
                        scrapes += 1;
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        })
    };
    let connect = |port: u16, i: usize| {
        Client::connected(port, &format!("dev-{i}"), &fleet[i]).disconnect();
    };

    // 1 and 2, batches alternated between the nodes; every device connects
    // once to each node in the first loop.
    let rounds = if audited { (firsts / 500).max(10) } else { 5 };
    let batch = firsts / rounds;
    let (mut first, mut first_base, mut repeat, mut repeat_base) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Which node goes first alternates in the comparisons, so that neither
    // gains from its place.
    let swap = |round: usize| audited && round % 2 == 1;
    for round in 0..rounds {
        let base = round * batch;
        let (a, b) = if swap(round) {
            (&open, &plugin)
        } else {
            (&plugin, &open)
        };
        let a_rate = rate(batch, |i| connect(a.mqtt, base + i));
        let b_rate = rate(batch, |i| connect(b.mqtt, base + i));
        let (with, without) = if swap(round) {
            (b_rate, a_rate)
        } else {
            (a_rate, b_rate)
        };
        first.push(with);
        first_base.push(without);
    }
    for round in 0..rounds {
        let (a, b) = if swap(round) {
            (&open, &plugin)
        } else {
            (&plugin, &open)
        };
        let a_rate = rate(batch, |i| connect(a.mqtt, i));
        let b_rate = rate(batch, |i| connect(b.mqtt, i));
        let (with, without) = if swap(round) {
            (b_rate, a_rate)
        } else {
            (a_rate, b_rate)
        };
        repeat.push(with);
        repeat_base.push(without);
    }

    // 3.
    let (mut messages, mut messages_base) = (Vec::new(), Vec::new());
    for round in 0..7 {
        let (a, b) = if swap(round) {
            (&open, &plugin)
        } else {
            (&plugin, &open)
        };
        let a_rate = throughput(a.mqtt, &trucks, &trucks, 100_000);
        let b_rate = throughput(b.mqtt, &trucks, &trucks, 100_000);
        let (with, without) = if swap(round) {
            (b_rate, a_rate)
        } else {
            (a_rate, b_rate)
        };
        messages.push(with);
        messages_base.push(without);
    }
    if std::env::var_os("SHOW_ROUNDS").is_some() {
        eprintln!("{messages:.0?}\n{messages_base:.0?}");
    }
    drop(open);
    scraping.store(false, std::sync::atomic::Ordering::Relaxed);
    let scrapes = scraper.join().unwrap_or(0);
    if audited {
        let baseline = if audit_off {
            "off:"
        } else {
            "the earlier node:"
        };
        drop(plugin);
        let audit_lines =
            std::fs::read_to_string(dir.join("audit.jsonl")).map_or(0, |text| text.lines().count());
        let _ = std::fs::remove_dir_all(&dir);
        let (first, first_base) = (median(first), median(first_base));
        let (repeat, repeat_base) = (median(repeat), median(repeat_base));
        let (messages, messages_base) = (median(messages), median(messages_base));
        println!("RMQTT node, one client thread (median of {rounds} × {batch}):");
        println!(
            "  first connects, audit file and metrics on: {first:>9.1}/s   {baseline} \
             {first_base:>9.1}/s   ratio {:.3}",
            first / first_base
        );
        println!(
            "  repeat connects:                           {repeat:>9.1}/s   {baseline} \
             {repeat_base:>9.1}/s   ratio {:.3}",
            repeat / repeat_base
        );
        println!(
            "  messages through a restricted wildcard:    {messages:>9.0}/s   {baseline} \
             {messages_base:>9.0}/s   ratio {:.3}",
            messages / messages_base
        );
        println!("  audit lines written: {audit_lines}; metrics scraped {scrapes} times");
        return;
    }

    // 4.
    let unknown = KeyId::generate(&mut rng).to_string();
    let valid = Secret::generate(&mut rng).expose_secret().to_owned();
    let imported = "5f2b8c1e9a4d3b7c6e1f0a2b5f2b8c1e".to_owned();
    let bogus = [
        Key {
            id: unknown.clone(),
            secret: valid.clone(),
        },
        Key {
            id: fleet[1].id.clone(),
            secret: valid.clone(),
        },
        Key {
            id: unknown.clone(),
            secret: imported.clone(),
        },
        Key {
            id: fleet[1].id.clone(),
            secret: imported.clone(),
        },
    ];
    drop(plugin);
    let floods = [
        (
            "0. default: waiting for each CONNACK (refusals held past 2/s per address)",
            "",
            Flood::Waiting,
        ),
        (
            "1. waiting for each CONNACK, refusals never held (refusal_delay_ms = 0)",
            "refusal_delay_ms = 0\n",
            Flood::Waiting,
        ),
        (
            "2. default, hanging up once the CONNECT is sent",
            "",
            Flood::HangingUp,
        ),
        (
            "3. hanging up once the CONNECT is sent, refusals never held",
            "refusal_delay_ms = 0\n",
            Flood::HangingUp,
        ),
        (
            "4. default, hanging up at once with nothing sent",
            "",
            Flood::TcpOnly,
        ),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| std::env::var("FLOODS").map_or(true, |only| only.contains(&i.to_string())))
    .map(|(_, (name, extra, flood))| {
        let run = flood_cluster(&broker, &dir, extra, flood, seconds, &fleet[0], &bogus);
        (name, run)
    })
    .collect::<Vec<_>>();
    let _ = std::fs::remove_dir_all(&dir);

    let (first, first_base) = (median(first), median(first_base));
    let (repeat, repeat_base) = (median(repeat), median(repeat_base));
    let (messages, messages_base) = (median(messages), median(messages_base));
    println!("RMQTT node, one client thread (median of {rounds} × {batch}):");
    println!(
        "  first connects, generated secrets:   {first:>9.1}/s   without the plugin: {first_base:>9.1}/s   ratio {:.2}",
        first / first_base
    );
    println!(
        "  repeat connects:                     {repeat:>9.1}/s   without the plugin: {repeat_base:>9.1}/s   ratio {:.2}",
        repeat / repeat_base
    );
    println!("  messages through a restricted wildcard subscriber (QoS 0, median of 7 × 100 000):");
    println!(
        "                                       {messages:>9.0}/s   without the plugin: {messages_base:>9.0}/s   ratio {:.2}",
        messages / messages_base
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "PINGREQ round trip of a client connected to node A of a two-node cluster, \
         5 s without a flood, then {seconds} s of a 4-socket flood of bogus CONNECTs against node A:"
    );
    for (name, mut run) in floods {
        let (q50, q99) = (
            quantile(&mut run.quiet, 0.5),
            quantile(&mut run.quiet, 0.99),
        );
        let (f50, f99) = (
            quantile(&mut run.flooded, 0.5),
            quantile(&mut run.flooded, 0.99),
        );
        println!("  {name}:");
        println!(
            "    no flood:  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} pings)",
            ms(q50),
            ms(q99),
            run.quiet.len()
        );
        println!(
            "    flood:     p50 {:>7.3} ms  p99 {:>7.3} ms  ({} pings, {:.0} bogus CONNECTs/s {})",
            ms(f50),
            ms(f99),
            run.flooded.len(),
            run.connects as f64 / seconds as f64,
            match run.flood {
                Flood::Waiting => "answered",
                Flood::HangingUp => "sent",
                Flood::TcpOnly => "(sockets opened)",
            }
        );
        println!(
            "    p99 flood ÷ p99 no flood: {:.2}; node A's log grew {:.0} KiB during the flood",
            ms(f99) / ms(q99),
            run.log_bytes as f64 / 1024.0
        );
    }
}

#[derive(Clone, Copy)]
enum Flood {
    /// Each socket sends a bogus CONNECT and waits for its CONNACK.
    Waiting,
    /// Each socket sends a bogus CONNECT and hangs up at once.
    HangingUp,
    /// Each socket connects and hangs up at once, sending nothing.
    TcpOnly,
}

struct FloodRun {
    flood: Flood,
    quiet: Vec<Duration>,
    flooded: Vec<Duration>,
    connects: u64,
    /// What node A wrote to its log during the flood.
    log_bytes: usize,
}

/// A two-node cluster (`extra` added to both nodes' configuration); a client
/// connected to node A pings it every 5 ms, 5 s alone, then for `seconds` while
/// 4 sockets flood node A with bogus CONNECTs.
fn flood_cluster(
    broker: &std::path::Path,
    dir: &std::path::Path,
    extra: &str,
    flood: Flood,
    seconds: u64,
    device: &Key,
    bogus: &[Key; 4],
) -> FloodRun {
    let (a, _b) = cluster(broker, dir, extra);
    let mut pinger = Client::connected(a.mqtt, "dev-0", device);
    let mut pings = |until: Instant| {
        let mut samples = Vec::new();
        while Instant::now() < until {
            samples.push(pinger.ping());
            std::thread::sleep(Duration::from_millis(5));
        }
        samples
    };
    let quiet = pings(Instant::now() + Duration::from_secs(5));
    let log_before = a.log().len();
    let stop = AtomicBool::new(false);
    let connects = AtomicU64::new(0);
    let flooded = std::thread::scope(|s| {
        for t in 0..4 {
            let (stop, connects, port) = (&stop, &connects, a.mqtt);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let client_id = format!("dev-{}", 1 + i % 9);
                    let key = &bogus[i % 4];
                    i += 1;
                    match flood {
                        Flood::Waiting => {
                            let (_, code) = Client::connect(port, &client_id, key);
                            assert_ne!(code, 0, "a bogus CONNECT was accepted");
                        }
                        Flood::TcpOnly => {
                            if TcpStream::connect(("127.0.0.1", port)).is_err() {
                                continue;
                            }
                        }
                        Flood::HangingUp => {
                            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                                continue;
                            };
                            let packet =
                                wire::connect(&client_id, Some((&key.id, &key.secret)), 60);
                            if stream.write_all(&packet).is_err() {
                                continue;
                            }
                        }
                    }
                    connects.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let samples = pings(Instant::now() + Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        samples
    });
    FloodRun {
        flood,
        quiet,
        flooded,
        connects: connects.into_inner(),
        log_bytes: a.log().len().saturating_sub(log_before),
    }
}
