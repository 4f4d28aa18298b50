//! The rotation race on a two-node cluster: devices reconnecting in a loop
//! with a key's secret while the key is rotated (its verifier replaced), 12
//! times, for a generated secret (hmac-sha256) and an imported one
//! (Argon2id, verified on a blocking thread, where a CONNECT stays in flight
//! for tens of milliseconds). After each rotation no session authenticated
//! with the old secret may be left.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use structure_access::Scope;
use support::{APP_A, Client, Fixture, Key, Node, WorkDir, cluster, device, line};

const DEVICES: usize = 6;
const ROTATIONS: usize = 12;

/// One device reconnecting with `key` until `stop`: each accepted session is
/// held until the broker closes it. Returns whether a session is open when
/// it stops (a survivor).
fn reconnect_loop(
    port: u16,
    id: String,
    key: Key,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
) -> bool {
    while !stop.load(Ordering::Acquire) {
        let (mut client, code) = Client::connect(port, &id, &key);
        if code != 0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        accepted.fetch_add(1, Ordering::Relaxed);
        loop {
            if stop.load(Ordering::Acquire) {
                // Open when told to stop: it survived. (A ping tells it apart
                // from a close the broker sent that was not read yet.)
                return client.alive();
            }
            if client.closed_within(Duration::from_millis(20)).is_some() {
                break;
            }
        }
    }
    false
}

fn rotations(imported: bool) {
    let dir = WorkDir::new(if imported {
        "rotation-imported"
    } else {
        "rotation-generated"
    });
    let mut f = Fixture::new(if imported { 24 } else { 25 });
    let (mut record, mut key) = f.record(APP_A, Scope::Unrestricted);
    if imported {
        (record, key) = f.rotate(&record, true);
    }
    dir.write("keys.jsonl", &line(&record));
    let devices: String = (0..DEVICES)
        .map(|i| device(APP_A, &format!("d-{i}"), &[]))
        .collect();
    dir.write("devices.jsonl", &devices);
    // No budget in the way: every CONNECT is verified and answered at once.
    let (a, b) = cluster(
        Path::new(env!("CARGO_BIN_EXE_structure-broker")),
        &dir.0,
        "argon2_per_second = 100000\nargon2_per_address_per_second = 100000\nrefusal_delay_ms = 0\n",
    );
    let nodes: [&Node; 2] = [&a, &b];
    let mut survived = Vec::new();
    for round in 1..=ROTATIONS {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..DEVICES)
            .map(|i| {
                let (port, id, key) = (nodes[i % 2].mqtt, format!("d-{i}"), key.clone());
                let (stop, accepted) = (stop.clone(), accepted.clone());
                std::thread::spawn(move || reconnect_loop(port, id, key, stop, accepted))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // Rotate while they reconnect: the new verifier, on both nodes.
        let (rotated, new_key) = f.rotate(&record, imported);
        dir.write("keys.jsonl", &line(&rotated));
        for node in nodes {
            node.sighup();
        }
        for node in nodes {
            node.wait_for_count("reloaded after SIGHUP", round);
        }
        // Time for kicks; then whatever is open survived the rotation.
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Release);
        let open = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&open| open)
            .count();
        assert!(
            accepted.load(Ordering::Relaxed) > 0,
            "round {round}: no CONNECT accepted before the rotation"
        );
        survived.push(open);
        (record, key) = (rotated, new_key);
    }
    let kind = if imported { "imported" } else { "generated" };
    println!("{kind} secret: sessions surviving each of {ROTATIONS} rotations: {survived:?}");
    assert!(
        survived.iter().all(|&n| n == 0),
        "{kind} secret: sessions survived rotations: {survived:?}\nnode 1:\n{}\nnode 2:\n{}",
        a.log(),
        b.log()
    );
}

#[test]
fn no_session_survives_a_rotation_of_a_generated_secret() {
    rotations(false);
}

#[test]
fn no_session_survives_a_rotation_of_an_imported_secret() {
    rotations(true);
}
