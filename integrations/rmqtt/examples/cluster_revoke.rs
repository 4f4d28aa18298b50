//! How soon a key deleted on node A ends its sessions on node B of a two-node
//! cluster, when only node A reloads: node A tells node B which keys its change
//! set removed, and node B ends its own sessions of them (marking them
//! revoked, so that their wills are not published), through its index of
//! sessions by key, then reloads its files.
//!
//! `cargo build --release && cargo run --release --example cluster_revoke [N]`
//! in `integrations/rmqtt` (N devices, default 1000, all connected to node B
//! with the one key that is then deleted; needs more open files than 2 × N).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, Scope};
use support::{Client, Key, cluster};

const APP: &str = "app1";

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1000, |n| n.parse().expect("N: a number"));
    let (broker, dir) = support::example_setup("structure-cluster-revoke");

    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let policy = HashPolicy::default();
    let mut key = || {
        let new = AccessKey::generate(&mut rng, APP.parse().unwrap(), Scope::Unrestricted, &policy)
            .unwrap();
        let line = serde_json::to_string(&new.record).unwrap() + "\n";
        let key = Key {
            id: new.record.key().to_string(),
            secret: new.secret.expose_secret().to_owned(),
        };
        (line, key)
    };
    let (doomed_line, doomed) = key();
    let (kept_line, kept) = key();
    let devices: String = (0..=n)
        .map(|i| {
            let device =
                DeviceRecord::new(APP.parse().unwrap(), format!("dev-{i}").parse().unwrap());
            serde_json::to_string(&device).unwrap() + "\n"
        })
        .collect();
    std::fs::write(dir.join("devices.jsonl"), devices).unwrap();
    std::fs::write(dir.join("keys.jsonl"), doomed_line + &kept_line).unwrap();

    let (a, b) = cluster(&broker, &dir, "");
    let mut clients: Vec<Client> = (1..=n)
        .map(|i| Client::connected(b.mqtt, &format!("dev-{i}"), &doomed))
        .collect();
    let mut standing = Client::connected(b.mqtt, "dev-0", &kept);
    std::thread::sleep(Duration::from_millis(500));

    std::fs::write(dir.join("keys.jsonl"), kept_line).unwrap();
    let start = Instant::now();
    a.sighup();
    let mut open = 0;
    for client in &mut clients {
        let left = Duration::from_secs(30).saturating_sub(start.elapsed());
        if client.closed_within(left).is_none() {
            open += 1;
        }
    }
    let took = start.elapsed();
    assert!(
        standing.ping() < Duration::from_secs(5),
        "the kept key's session fell"
    );
    // (A kick is logged once RMQTT has removed the session, after its socket
    // closed.)
    let logged = Instant::now() + Duration::from_secs(5);
    while b.log().matches("disconnected device").count() < n && Instant::now() < logged {
        std::thread::sleep(Duration::from_millis(20));
    }
    let kicked = b.log().matches("disconnected device").count();
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);

    println!("{n} sessions on node B of a key deleted on node A, node A alone reloading (SIGHUP):");
    println!(
        "  all closed within {:.0} ms ({kicked} kicks logged by node B, {open} still open after 30 s)",
        took.as_secs_f64() * 1e3
    );
}
