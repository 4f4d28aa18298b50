//! Keys that expire, on a two-node cluster: each node ends its own sessions
//! of a key within a second of its expiry (no reload, no other node's word)
//! and refuses it afterwards; the rotation with overlap (a new key, the old
//! one given an expiry, the devices moved meanwhile) keeps the moved devices
//! connected on both nodes.

mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use structure_access::{Scope, UnixTime};
use support::{APP_A, Client, Fixture, WorkDir, cluster, device, line};

/// The wall-clock second `secs` ahead, and the moment it begins.
fn second_ahead(secs: u64) -> (UnixTime, Instant) {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now = Instant::now();
    let at = since_epoch.as_secs() + secs;
    let begins = now + (Duration::from_secs(at) - since_epoch);
    (UnixTime::from_secs(at).unwrap(), begins)
}

#[test]
fn keys_expire_on_every_node_and_rotation_with_overlap_keeps_devices_on() {
    let dir = WorkDir::new("expiry");
    let mut f = Fixture::new(93);
    let (old_record, old) = f.record(APP_A, Scope::Unrestricted);
    let (new_line, new) = f.key(APP_A, Scope::Unrestricted);
    let (expiry, expires) = second_ahead(6);
    let old_line = line(&old_record.with_expiry(Some(expiry)));
    dir.write("keys.jsonl", &format!("{old_line}{new_line}"));
    dir.write(
        "devices.jsonl",
        &["d-1", "d-2", "d-3"]
            .map(|id| device(APP_A, id, &[]))
            .concat(),
    );
    let broker = Path::new(env!("CARGO_BIN_EXE_structure-broker"));
    let (a, b) = cluster(broker, &dir.0, "audit_file = \"audit.jsonl\"\n");
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());

    // d-1 on node 1 and d-3 on node 2 stay on the old key; d-2 connects to
    // node 2 with it, then moves to the new key on node 1 (a takeover
    // across the nodes), as the rotation procedure says.
    let mut d1 = Client::connected(a.mqtt, "d-1", &old);
    let mut d3 = Client::connected(b.mqtt, "d-3", &old);
    let _before = Client::connected(b.mqtt, "d-2", &old);
    let mut d2 = Client::connected(a.mqtt, "d-2", &new);
    assert!(
        Instant::now() + Duration::from_millis(500) < expires,
        "the setup took too long for the test to mean anything"
    );
    d1.ping();
    d3.ping();

    for (name, client) in [("d-1 on node 1", &mut d1), ("d-3 on node 2", &mut d3)] {
        let from = Instant::now();
        let took = client
            .closed_within(Duration::from_secs(12))
            .unwrap_or_else(|| panic!("{name}: the expired key's session stayed\n{}", logs()));
        let closed = from + took;
        assert!(
            closed + Duration::from_millis(50) >= expires,
            "{name}: closed {:?} before the expiry",
            expires - closed
        );
        assert!(
            closed <= expires + Duration::from_secs(1),
            "{name}: closed {:?} after the expiry\n{}",
            closed - expires,
            logs()
        );
        println!(
            "{name}: closed {:.0} ms after the expiry",
            closed.saturating_duration_since(expires).as_secs_f64() * 1e3
        );
    }
    a.wait_for_log("1 access key(s) expired");
    b.wait_for_log("1 access key(s) expired");
    for node in [&a, &b] {
        node.wait_for_log("the access key has expired");
    }
    // The audit trail says why, on each node.
    let audit = dir.0.join("audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let ended: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|e: &serde_json::Value| {
                e["event"] == "session_ended" && e["reason"] == "expired" && e["key"] == old.id
            })
            .collect();
        if ended.iter().any(|e| e["node"] == 1 && e["device"] == "d-1")
            && ended.iter().any(|e| e["node"] == 2 && e["device"] == "d-3")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no expiry in the audit:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Refused afterwards, on both nodes.
    for port in [a.mqtt, b.mqtt] {
        let (_, code) = Client::connect(port, "d-1", &old);
        assert_eq!(code, 5, "{}", logs());
    }
    // The moved device is served; the others move now, to either node.
    assert!(
        d2.alive(),
        "the device on the new key was disconnected\n{}",
        logs()
    );
    let mut d1 = Client::connected(b.mqtt, "d-1", &new);
    let mut d3 = Client::connected(a.mqtt, "d-3", &new);
    assert!(d1.alive() && d3.alive());
    let all = logs();
    assert!(!all.contains(&old.secret) && !all.contains(&new.secret));
}
