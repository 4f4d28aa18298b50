//! A node of `structure-broker` with the access-key plugin, each figure beside
//! the same node without it (`access_keys = false`, anonymous), in one run:
//!
//! 1. first connects of devices with generated secrets, one client thread;
//! 2. repeat connects of the same devices;
//! 3. messages per second through a restricted wildcard subscriber
//!    (`structure/+/state` under `vehicle=truck`: a `Filter` subscription, each
//!    delivery decided by `may_receive`), QoS 0 from one publisher;
//! 4. a flood of bogus CONNECTs from 4 sockets for SECONDS while a connected
//!    client pings every 5 ms: its round-trip p99 beside its p99 without the
//!    flood.
//!
//! `cargo build --release && cargo run --release --example node_rate [N] [SECONDS]`
//! in `integrations/rmqtt` (N first connects, default 2000; SECONDS of flood,
//! default 20).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, KeyId, Restriction, Scope, Secret};
use support::{Client, Key, single};

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
            sub.0
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
    let broker = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("structure-broker");
    assert!(broker.exists(), "build it first: cargo build --release");
    let dir = std::env::temp_dir().join(format!("structure-node-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

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

    let plugin = single(&broker, &dir, "plugin", "");
    let open = single(&broker, &dir, "open", "access_keys = false\n");
    let connect = |port: u16, i: usize| {
        Client::connected(port, &format!("dev-{i}"), &fleet[i]).disconnect();
    };

    // 1 and 2, batches alternated between the nodes; every device connects
    // once to each node in the first loop.
    let rounds = 5;
    let batch = firsts / rounds;
    let (mut first, mut first_base, mut repeat, mut repeat_base) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let base = round * batch;
        first.push(rate(batch, |i| connect(plugin.mqtt, base + i)));
        first_base.push(rate(batch, |i| connect(open.mqtt, base + i)));
    }
    for _ in 0..rounds {
        repeat.push(rate(batch, |i| connect(plugin.mqtt, i)));
        repeat_base.push(rate(batch, |i| connect(open.mqtt, i)));
    }

    // 3.
    let (mut messages, mut messages_base) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        messages.push(throughput(plugin.mqtt, &trucks, &trucks, 20_000));
        messages_base.push(throughput(open.mqtt, &trucks, &trucks, 20_000));
    }
    drop(open);

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
    let mut pinger = Client::connected(plugin.mqtt, "dev-0", &fleet[0]);
    let mut pings = |until: Instant| {
        let mut samples = Vec::new();
        while Instant::now() < until {
            samples.push(pinger.ping());
            std::thread::sleep(Duration::from_millis(5));
        }
        samples
    };
    let mut quiet = pings(Instant::now() + Duration::from_secs(5));
    let stop = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    let mut flooded = std::thread::scope(|s| {
        for t in 0..4 {
            let (stop, answered, bogus) = (&stop, &answered, &bogus);
            let port = plugin.mqtt;
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let (_, code) =
                        Client::connect(port, &format!("dev-{}", 1 + i % 9), &bogus[i % 4]);
                    assert_ne!(code, 0, "a bogus CONNECT was accepted");
                    answered.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        let samples = pings(Instant::now() + Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        samples
    });
    drop(plugin);
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
    println!("  messages through a restricted wildcard subscriber (QoS 0, median of 3 × 20 000):");
    println!(
        "                                       {messages:>9.0}/s   without the plugin: {messages_base:>9.0}/s   ratio {:.2}",
        messages / messages_base
    );
    let (q50, q99) = (quantile(&mut quiet, 0.5), quantile(&mut quiet, 0.99));
    let (f50, f99) = (quantile(&mut flooded, 0.5), quantile(&mut flooded, 0.99));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("PINGREQ round trip of a connected client on the node:");
    println!(
        "  no flood:                p50 {:>7.3} ms  p99 {:>7.3} ms  ({} pings)",
        ms(q50),
        ms(q99),
        quiet.len()
    );
    println!(
        "  4-socket flood, {seconds} s:    p50 {:>7.3} ms  p99 {:>7.3} ms  ({} pings, {:.0} bogus CONNECTs/s answered)",
        ms(f50),
        ms(f99),
        flooded.len(),
        answered.into_inner() as f64 / seconds as f64
    );
    println!("  p99 flood ÷ p99 no flood: {:.2}", ms(f99) / ms(q99));
}
