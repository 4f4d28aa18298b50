//! Connect throughput of a real `mosquitto` with the plugin, each figure beside
//! the same broker without authentication, measured in the same run:
//!
//! 1. first connects of devices with generated secrets (`hmac-sha256`
//!    verifiers: one cold verification each, no cache);
//! 2. repeat connects of the same devices;
//! 3. first connects with Argon2id verifiers (m=19456, t=2, p=1), for reference;
//! 4. a restart storm: 1000 devices with generated secrets connect at once to a
//!    freshly started broker; time until every one is connected.
//!
//! `cargo build --release -p structure-access-mosquitto &&
//! cargo run --release -p structure-access-mosquitto --example connect_rate [N]`
//! (needs `mosquitto`; N first connects per run, default 2000). The load
//! generator speaks MQTT 3.1.1 over TCP itself: CONNECT, wait for CONNACK,
//! DISCONNECT, one connection after another from one client thread (the storm:
//! 100 threads at once, connections kept open).
//!
//! With `AUDIT_BASELINE=PATH` (a plugin built from an earlier commit, before
//! the audit trail and the counters), it measures instead first and repeat
//! connects of this plugin with its audit file and its `$SYS` counters on
//! (`plugin_opt_audit_file`, `plugin_opt_sys_interval 1`) beside that
//! plugin, batches alternated, and prints the ratios. With `AUDIT_OFF=1` the
//! baseline is this same plugin with no audit trail and no `$SYS` counters
//! (`plugin_opt_audit off`, `plugin_opt_sys_interval 0`): what the issue's
//! "with and without audit and metrics on" asks for; `AUDIT_AA=1` with it
//! runs both brokers without them, to show the comparison's noise floor.
//! These modes run N/1000 batch pairs (at least 10); use N = 60000 or more.

mod common;

use std::time::{Duration, Instant};

use common::{
    connect, connect_once, connect_packet, plugin_config, plugin_path, rate, start, work_dir,
    write_keys,
};
use structure_access::HashPolicy;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Connects every packet at once from `threads` threads and keeps the
/// connections open; returns the time until the last CONNACK.
fn storm(port: u16, packets: &[Vec<u8>], threads: usize) -> Duration {
    let start = Instant::now();
    let chunk = packets.len().div_ceil(threads);
    let streams: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = packets
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            let (stream, code) = connect(port, p).unwrap();
                            assert_eq!(code, 0, "a storm connect was refused");
                            stream
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let took = start.elapsed();
    assert_eq!(streams.len(), packets.len());
    took
}

fn main() {
    let firsts: usize = std::env::args().nth(1).map_or(2000, |n| n.parse().unwrap());
    let earlier = std::env::var_os("AUDIT_BASELINE").map(std::path::PathBuf::from);
    let audit_off = std::env::var_os("AUDIT_OFF").is_some();
    let audited = earlier.is_some() || audit_off;
    // More, shorter batches when two near-equal brokers are compared.
    let rounds = if audited { (firsts / 1000).max(10) } else { 5 };
    let batch = firsts / rounds;

    // 1 and 2: generated secrets, the default policy (the fast scheme).
    let dir = work_dir("connect-rate");
    let credentials = write_keys(&dir, firsts, &HashPolicy::default());
    let packets: Vec<_> = credentials
        .iter()
        .enumerate()
        .map(|(i, (k, s))| connect_packet(&format!("dev-{i}"), Some((k, s))))
        .collect();
    let anonymous: Vec<_> = (0..firsts)
        .map(|i| connect_packet(&format!("dev-{i}"), None))
        .collect();
    let audited_config = plugin_config(
        &dir,
        &if std::env::var_os("AUDIT_AA").is_some() {
            // Both brokers alike: the noise floor of the comparison.
            "plugin_opt_audit off\nplugin_opt_sys_interval 0\n".to_owned()
        } else {
            format!(
                "plugin_opt_audit_file {}\nplugin_opt_sys_interval 1\n",
                dir.join("audit.jsonl").display()
            )
        },
    );
    let (with_plugin, open, anonymous) = match &earlier {
        None if audit_off => (
            start(&dir, &audited_config),
            start(
                &dir,
                &plugin_config(&dir, "plugin_opt_audit off\nplugin_opt_sys_interval 0\n"),
            ),
            packets.clone(),
        ),
        None => (
            start(&dir, &plugin_config(&dir, "")),
            start(&dir, "allow_anonymous true\n"),
            anonymous,
        ),
        // The baseline is the earlier plugin, with the same credentials.
        Some(earlier) => (
            start(&dir, &audited_config),
            start(
                &dir,
                &plugin_config(&dir, "").replace(
                    &plugin_path().display().to_string(),
                    &earlier.display().to_string(),
                ),
            ),
            packets.clone(),
        ),
    };
    // Alternate batches between the two brokers, so that noise from the rest of
    // the machine falls on both alike; report the median batch of each. Every
    // device connects once to each broker in this loop: a first connect.
    let (mut first, mut first_base) = (Vec::new(), Vec::new());
    // Which broker goes first alternates too, so neither gains from its place.
    let pair = |round: usize, a: &mut dyn FnMut(), b: &mut dyn FnMut()| {
        if round.is_multiple_of(2) {
            a();
            b();
        } else {
            b();
            a();
        }
    };
    for round in 0..rounds {
        let range = round * batch..(round + 1) * batch;
        pair(
            round,
            &mut || {
                first.push(rate(batch, |i| {
                    assert_eq!(connect_once(with_plugin.port, &packets[range.start + i]), 0)
                }))
            },
            &mut || {
                first_base.push(rate(batch, |i| {
                    assert_eq!(connect_once(open.port, &anonymous[range.start + i]), 0)
                }))
            },
        );
    }
    let (mut repeat, mut repeat_base) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        pair(
            round,
            &mut || {
                repeat.push(rate(batch, |i| {
                    assert_eq!(connect_once(with_plugin.port, &packets[i]), 0)
                }))
            },
            &mut || {
                repeat_base.push(rate(batch, |i| {
                    assert_eq!(connect_once(open.port, &anonymous[i]), 0)
                }))
            },
        );
    }
    drop(with_plugin);
    drop(open);
    if audited {
        let baseline = if audit_off {
            "audit and counters off:    "
        } else {
            "the earlier plugin:        "
        };
        let audit_lines =
            std::fs::read_to_string(dir.join("audit.jsonl")).map_or(0, |text| text.lines().count());
        let _ = std::fs::remove_dir_all(&dir);
        let (first, first_base) = (median(first), median(first_base));
        let (repeat, repeat_base) = (median(repeat), median(repeat_base));
        println!(
            "connects per second, one client thread, mosquitto (median of {rounds} × {batch}):"
        );
        println!("  first connects, audit file and counters on: {first:>9.1}/s");
        println!("  first connects, {baseline} {first_base:>9.1}/s");
        println!("  first ÷ baseline: {:.3}", first / first_base);
        println!("  repeat connects, audit file and counters on: {repeat:>9.1}/s");
        println!("  repeat connects, {baseline}  {repeat_base:>9.1}/s");
        println!("  repeat ÷ baseline: {:.3}", repeat / repeat_base);
        println!("  audit lines written: {audit_lines}");
        return;
    }

    // 3: Argon2id verifiers, for reference (no budget in the way).
    let argon2_dir = work_dir("connect-rate-argon2");
    let argon2_count = 40;
    let argon2 = write_keys(
        &argon2_dir,
        argon2_count,
        &HashPolicy::default().argon2id_for_generated(true),
    );
    let broker = start(
        &argon2_dir,
        &plugin_config(
            &argon2_dir,
            "plugin_opt_argon2_per_second 100000\nplugin_opt_argon2_per_address_per_second 100000\n",
        ),
    );
    let argon2_first = rate(argon2_count, |i| {
        let (k, s) = &argon2[i];
        let packet = connect_packet(&format!("dev-{i}"), Some((k, s)));
        assert_eq!(connect_once(broker.port, &packet), 0)
    });
    drop(broker);

    // 4: the restart storm, 1000 devices, alternating fresh brokers.
    let storm_count = 1000.min(firsts);
    let (mut plugin_storm, mut open_storm) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let broker = start(&dir, &plugin_config(&dir, ""));
        plugin_storm.push(storm(broker.port, &packets[..storm_count], 100).as_secs_f64());
        drop(broker);
        let broker = start(&dir, "allow_anonymous true\n");
        open_storm.push(storm(broker.port, &anonymous[..storm_count], 100).as_secs_f64());
        drop(broker);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&argon2_dir);

    let (first, first_base) = (median(first), median(first_base));
    let (repeat, repeat_base) = (median(repeat), median(repeat_base));
    let (plugin_storm, open_storm) = (median(plugin_storm), median(open_storm));
    println!("connects per second, one client thread, mosquitto (median of {rounds} × {batch}):");
    println!("  first connects, generated secrets (hmac-sha256): {first:>9.1}/s");
    println!("  first connects, no authentication (baseline):    {first_base:>9.1}/s");
    println!("  first ÷ baseline: {:.2}", first / first_base);
    println!("  repeat connects, generated secrets:              {repeat:>9.1}/s");
    println!("  repeat connects, no authentication (baseline):   {repeat_base:>9.1}/s");
    println!("  repeat ÷ baseline: {:.2}", repeat / repeat_base);
    println!(
        "  first connects, Argon2id m=19456 t=2 p=1:        {argon2_first:>9.1}/s  ({argon2_count} connects, reference)"
    );
    println!(
        "restart storm: {storm_count} devices connect at once to a fresh broker (median of 3):"
    );
    println!("  with the plugin (generated secrets): {plugin_storm:>7.3} s");
    println!("  no authentication (baseline):        {open_storm:>7.3} s");
    println!("  plugin ÷ baseline: {:.2}", plugin_storm / open_storm);
}
