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

mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{APP, connect_packet_keepalive, free_port, plugin_config, start_logged};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, Cost, HashPolicy, Scope};

/// Keys at the default Argon2id parameters, shared by the connected devices.
const FLEET_KEYS: usize = 100;
/// Connected devices deleted before the SIGHUP.
const REVOKED: usize = 10;

/// Connects (keep-alive 600 s); panics unless the CONNACK accepts.
fn connect(port: u16, client_id: &str, user: &str, pass: &str) -> TcpStream {
    let packet = connect_packet_keepalive(client_id, Some((user, pass)), 600);
    let (stream, code) = common::connect(port, &packet).unwrap();
    assert_eq!(code, 0, "{client_id} refused");
    stream
}

fn ping(stream: &mut TcpStream) -> Duration {
    common::ping(stream).unwrap()
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
    // Argon2id for the fleet, the worst case for Mosquitto's re-check of every
    // connected client on SIGHUP (generated secrets would get the fast scheme).
    let fleet_policy = HashPolicy::default().argon2id_for_generated(true);
    let cheap_policy = HashPolicy::default()
        .with_params(Cost::new(64, 1, 1))
        .unwrap();
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
    let port = free_port();
    let broker = start_logged(
        &dir,
        port,
        &plugin_config(
            &dir,
            // No Argon2 budget in the way of the fleet's first connects.
            &format!(
                "max_keepalive 600\nplugin_opt_cache_capacity {cache}\n\
                 plugin_opt_argon2_per_second 1000000\n\
                 plugin_opt_argon2_per_address_per_second 1000000\n"
            ),
        ),
        Some(&dir.join("log")),
    );

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
        .args(["-HUP", &broker.pid().to_string()])
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
