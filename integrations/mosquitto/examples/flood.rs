//! A flood of bogus CONNECTs against a real `mosquitto` with the plugin, beside
//! the same flood against a `password_file` broker, while a connected client
//! measures its PINGREQ → PINGRESP round trip.
//!
//! 4 flooding sockets, one after another: connect, send a bogus CONNECT, read
//! the refusal, close; the bogus kinds rotate: an unknown key with a
//! checksum-valid secret, a known key with a wrong secret, an unknown key with
//! an imported-shaped password, a known key with an imported-shaped password.
//! Two plugin brokers are measured: one whose keys all have generated secrets
//! (no imported-shaped password can open anything there, so none costs
//! Argon2), and one with an imported (UUID-shaped) key's Argon2id record on
//! file too. The flood names generated keys only: by the cost rule (which goes
//! by the key id's shape) none of its CONNECTs costs Argon2 on either broker. The brokers take turns in slices of
//! 5 s, so that noise from the rest of the machine falls on all alike; the
//! legitimate client pings every 5 ms.
//!
//! `cargo build --release -p structure-access-mosquitto &&
//! cargo run --release -p structure-access-mosquitto --example flood [SECONDS]`
//! (needs `mosquitto` and `mosquitto_passwd`; SECONDS of flood per broker,
//! default 20).

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{connect, connect_packet, ping, plugin_config, quantile, start, work_dir, write_keys};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, HashPolicy, KeyId, Scope, Secret, Verifier};

const SLICE: Duration = Duration::from_secs(5);

/// Floods `port` with `bogus` CONNECTs from 4 threads while pinging on
/// `pinger` every 5 ms, for `length`; returns the round trips and the number
/// of bogus CONNECTs answered.
fn flood(
    port: u16,
    pinger: &mut std::net::TcpStream,
    bogus: &[Vec<u8>],
    length: Duration,
) -> (Vec<Duration>, u64) {
    let stop = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    let mut samples = Vec::new();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (stop, answered) = (&stop, &answered);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((mut stream, code)) = connect(port, &bogus[i % bogus.len()]) {
                        assert_ne!(code, 0, "a bogus CONNECT was accepted");
                        let _ = stream.flush();
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
        let end = Instant::now() + length;
        while Instant::now() < end {
            samples.push(ping(pinger).expect("the legitimate client lost its connection"));
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    (samples, answered.into_inner())
}

/// Round trips with no flood, for reference.
fn quiet(pinger: &mut std::net::TcpStream, length: Duration) -> Vec<Duration> {
    let end = Instant::now() + length;
    let mut samples = Vec::new();
    while Instant::now() < end {
        samples.push(ping(pinger).unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    samples
}

fn report(name: &str, samples: &mut [Duration], answered: Option<(u64, Duration)>) -> Duration {
    let (p50, p99) = (quantile(samples, 0.5), quantile(samples, 0.99));
    let max = samples.last().copied().unwrap_or_default();
    let rate = answered.map_or(String::new(), |(n, t)| {
        format!(
            ", {:.0} bogus CONNECTs/s answered",
            n as f64 / t.as_secs_f64()
        )
    });
    println!(
        "  {name:<34} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  ({} pings{rate})",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        samples.len()
    );
    p99
}

fn main() {
    let seconds: u64 = std::env::args().nth(1).map_or(20, |n| n.parse().unwrap());
    let dir = work_dir("flood");
    let credentials = write_keys(&dir, 10, &HashPolicy::default());

    // The password_file broker: one user, the legitimate client.
    let passwords = dir.join("passwords");
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["legit", "legit-password-0123"])
        .status()
        .expect("mosquitto_passwd must be installed");
    assert!(status.success());
    let plugin = start(&dir, &plugin_config(&dir, ""));
    // The same keys, plus an imported key with an imported secret's Argon2id
    // verifier. Before the cost rule went by the key id's shape, imported-shaped
    // passwords for the flood's generated keys then cost an Argon2 dummy each
    // (within the budget: 10 a second, 2 per address); now they cost the fast one.
    let legacy_dir = work_dir("flood-legacy");
    let _ = write_keys(&legacy_dir, 10, &HashPolicy::default());
    let imported_secret = Secret::imported("0123456789abcdef0123456789abcdef").unwrap();
    let legacy_record = AccessKey::new(
        "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse().unwrap(),
        common::APP.parse().unwrap(),
        Verifier::create(
            &imported_secret,
            &HashPolicy::default(),
            &mut ChaCha20Rng::seed_from_u64(3),
        )
        .unwrap(),
        Scope::Unrestricted,
    );
    let mut keys = std::fs::read_to_string(legacy_dir.join("keys")).unwrap();
    keys.push_str(&(serde_json::to_string(&legacy_record).unwrap() + "\n"));
    std::fs::write(legacy_dir.join("keys"), keys).unwrap();
    let legacy = start(&legacy_dir, &plugin_config(&legacy_dir, ""));
    let file = start(
        &dir,
        &format!(
            "allow_anonymous false\npassword_file {}\n",
            passwords.display()
        ),
    );

    // The bogus CONNECTs: for the plugin, and the same shapes for the file.
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let unknown = KeyId::generate(&mut rng).to_string();
    let valid_secret = Secret::generate(&mut rng);
    let valid_secret = valid_secret.expose_secret();
    let imported = "5f2b8c1e9a4d3b7c6e1f0a2b5f2b8c1e";
    let (known, _) = &credentials[1];
    let bogus_plugin: Vec<_> = [
        (unknown.as_str(), valid_secret),
        (known.as_str(), valid_secret),
        (unknown.as_str(), imported),
        (known.as_str(), imported),
    ]
    .iter()
    .enumerate()
    .map(|(i, (k, s))| connect_packet(&format!("dev-{}", 1 + i % 9), Some((k, s))))
    .collect();
    let bogus_file: Vec<_> = [
        ("nobody", valid_secret),
        ("legit", valid_secret),
        ("nobody", imported),
        ("legit", imported),
    ]
    .iter()
    .enumerate()
    .map(|(i, (k, s))| connect_packet(&format!("dev-{}", 1 + i % 9), Some((k, s))))
    .collect();

    let (key, secret) = &credentials[0];
    let (mut plugin_pinger, code) =
        connect(plugin.port, &connect_packet("dev-0", Some((key, secret)))).unwrap();
    assert_eq!(code, 0, "the legitimate device was refused");
    let (mut legacy_pinger, code) =
        connect(legacy.port, &connect_packet("dev-0", Some((key, secret)))).unwrap();
    assert_eq!(code, 0, "the legitimate device was refused");
    let (mut file_pinger, code) = connect(
        file.port,
        &connect_packet("legit", Some(("legit", "legit-password-0123"))),
    )
    .unwrap();
    assert_eq!(code, 0, "the legitimate user was refused");

    let mut quiet_plugin = quiet(&mut plugin_pinger, Duration::from_secs(2));
    let mut quiet_file = quiet(&mut file_pinger, Duration::from_secs(2));
    let (mut under_plugin, mut under_legacy, mut under_file) = (Vec::new(), Vec::new(), Vec::new());
    let (mut answered_plugin, mut answered_legacy, mut answered_file) = (0, 0, 0);
    let slices = seconds.div_ceil(SLICE.as_secs()).max(1);
    for _ in 0..slices {
        let (samples, n) = flood(plugin.port, &mut plugin_pinger, &bogus_plugin, SLICE);
        under_plugin.extend(samples);
        answered_plugin += n;
        let (samples, n) = flood(legacy.port, &mut legacy_pinger, &bogus_plugin, SLICE);
        under_legacy.extend(samples);
        answered_legacy += n;
        let (samples, n) = flood(file.port, &mut file_pinger, &bogus_file, SLICE);
        under_file.extend(samples);
        answered_file += n;
    }
    let flooded = SLICE * u32::try_from(slices).unwrap();
    drop(plugin);
    drop(legacy);
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&legacy_dir);

    println!("PINGREQ round trip of a connected client, mosquitto:");
    report("plugin, no flood", &mut quiet_plugin, None);
    report("password_file, no flood", &mut quiet_file, None);
    let p = report(
        "plugin, 4-socket flood",
        &mut under_plugin,
        Some((answered_plugin, flooded)),
    );
    let l = report(
        "plugin, an Argon2 record on file",
        &mut under_legacy,
        Some((answered_legacy, flooded)),
    );
    let f = report(
        "password_file, 4-socket flood",
        &mut under_file,
        Some((answered_file, flooded)),
    );
    println!(
        "  p99 plugin ÷ p99 password_file under the same flood: {:.2} (generated secrets only), {:.2} (an Argon2 record on file)",
        p.as_secs_f64() / f.as_secs_f64(),
        l.as_secs_f64() / f.as_secs_f64()
    );
}
