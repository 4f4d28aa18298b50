//! The audit trail and takeovers on a two-node cluster: refusals with their
//! reason codes, acceptances, a takeover across the nodes, the same-key rule
//! holding across them, the conflicting client id past the limit, and a
//! deletion's ended session and records applied, all in the nodes' audit
//! file (one here, for both: each line says its node), without a secret.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use structure_access::{KeyStatus, Restriction, Scope};
use support::{
    APP_A, APP_B, Client, FILES, Fixture, Key, Node, WorkDir, device, free_port, line, peers,
    spawn_over, wait_until_listening,
};

/// The node's counters, as an operator's `curl` of its metrics endpoint
/// reads them: `name{labels}` → value.
fn scrape(port: u16) -> std::collections::HashMap<String, f64> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .expect("curl is needed (Debian package `curl`)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn refused(reason: &str) -> String {
    format!("structure_access_authentications_total{{outcome=\"refused\",reason=\"{reason}\"}}")
}

const ACCEPTED: &str = "structure_access_authentications_total{outcome=\"accepted\",reason=\"ok\"}";

fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits for an event matching `wanted`; returns all of them.
fn wait_for(
    path: &Path,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = events(path);
        if all.iter().any(&wanted) {
            return all;
        }
        assert!(Instant::now() < deadline, "no {what} in {all:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_audit_trail_and_takeovers_on_a_cluster() {
    let dir = WorkDir::new("audit");
    let mut f = Fixture::new(111);
    let (first_line, first) = f.key(APP_A, Scope::Unrestricted);
    let (second_line, second) = f.key(APP_A, Scope::Unrestricted);
    let (inactive_record, inactive) = f.record(APP_A, Scope::Unrestricted);
    let inactive_line = line(&inactive_record.with_status(KeyStatus::Inactive));
    let only_d2: Restriction = "d-2".parse().unwrap();
    let (scoped_line, scoped) = f.key(APP_A, only_d2.into());
    let (other_app_line, other_app) = f.key(APP_B, Scope::Unrestricted);
    let (_, unknown) = f.key(APP_A, Scope::Unrestricted);
    let keys = [
        &first_line,
        &second_line,
        &inactive_line,
        &scoped_line,
        &other_app_line,
    ]
    .map(String::as_str)
    .concat();
    dir.write("keys.jsonl", &keys);
    dir.write(
        "devices.jsonl",
        &[device(APP_A, "d-1", &[]), device(APP_A, "d-2", &[])].concat(),
    );
    let broker = Path::new(env!("CARGO_BIN_EXE_structure-broker"));
    let common = "audit_file = \"audit.jsonl\"\ntakeover = \"same_key\"\ntakeover_limit = 2\n\
                  refusal_delay_ms = 0\n";
    let grpc = [free_port(), free_port()];
    let metrics = [free_port(), free_port()];
    let node = |i: usize| -> Node {
        spawn_over(
            broker,
            &dir.0,
            &format!("node{}", i + 1),
            i + 1,
            &peers(grpc),
            grpc[i],
            FILES,
            &format!("{common}metrics_listen = \"127.0.0.1:{}\"\n", metrics[i]),
        )
    };
    let (a, b) = (node(0), node(1));
    wait_until_listening(&a);
    wait_until_listening(&b);
    std::thread::sleep(Duration::from_millis(500));
    let before = scrape(metrics[0]);
    assert_eq!(before[ACCEPTED], 0.0);
    assert_eq!(before[&refused("wrong_secret")], 0.0);
    assert_eq!(before["structure_access_keys"], 5.0);
    assert_eq!(before["structure_access_devices"], 2.0);
    let audit = dir.0.join("audit.jsonl");
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&audit).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let wrong = Key {
        id: first.id.clone(),
        secret: unknown.secret.clone(),
    };
    let secret_as_username = Key {
        id: first.secret.clone(),
        secret: first.secret.clone(),
    };
    for (device, key, reason) in [
        ("d-1", &wrong, "wrong_secret"),
        ("d-1", &unknown, "unknown_key"),
        ("d-1", &secret_as_username, "not_an_access_key"),
        ("d-9", &first, "unknown_device"),
        ("d-1", &inactive, "inactive"),
        ("d-1", &scoped, "out_of_scope"),
        ("d-1", &other_app, "wrong_application"),
        ("bad id!", &first, "invalid_client_id"),
    ] {
        let (_, code) = Client::connect(a.mqtt, device, key);
        assert_eq!(code, 5, "{reason}\n{}", logs());
        let all = wait_for(&audit, reason, |e| e["reason"] == reason);
        let e = all.iter().find(|e| e["reason"] == reason).unwrap();
        assert_eq!(
            (&e["event"], &e["broker"], &e["node"]),
            (&"auth_refused".into(), &"rmqtt".into(), &1.into()),
            "{e}"
        );
        assert!(e["address"].as_str().unwrap().starts_with("127.0.0.1:"));
        if reason != "invalid_client_id" {
            assert_eq!(e["device"], device, "{e}");
        }
        match reason {
            "unknown_key" | "not_an_access_key" => assert!(e.get("key").is_none(), "{e}"),
            _ => assert_eq!(e["key"], key.id, "{e}"),
        }
    }

    let node1 = scrape(metrics[0]);
    for reason in [
        "wrong_secret",
        "unknown_key",
        "unknown_device",
        "out_of_scope",
    ] {
        assert_eq!(node1[&refused(reason)], 1.0, "{reason}");
    }
    assert_eq!(node1[ACCEPTED], 0.0);

    // d-1 on node 1; another key on node 2 is refused under same_key (the
    // live session is on the other node), and d-1 stays on.
    let mut live = Client::connected(a.mqtt, "d-1", &first);
    wait_for(&audit, "auth_accepted", |e| {
        e["event"] == "auth_accepted" && e["node"] == 1 && e["device"] == "d-1"
    });
    let (_, code) = Client::connect(b.mqtt, "d-1", &second);
    assert_eq!(code, 5, "{}", logs());
    let all = wait_for(&audit, "takeover_refused", |e| {
        e["reason"] == "takeover_refused"
    });
    let refused = all
        .iter()
        .find(|e| e["reason"] == "takeover_refused")
        .unwrap();
    assert_eq!(
        (&refused["node"], &refused["device"], &refused["key"]),
        (&2.into(), &"d-1".into(), &second.id.clone().into())
    );
    assert!(live.alive(), "{}", logs());
    // The second key on another device is no takeover.
    let mut d2 = Client::connected(b.mqtt, "d-2", &second);
    assert!(d2.alive());

    // The same key takes over, across the nodes, then three times on node
    // 2: the third on node 2 is past its limit.
    for _ in 0..3 {
        let mut next = Client::connected(b.mqtt, "d-1", &first);
        assert!(
            live.closed_within(Duration::from_secs(5)).is_some(),
            "{}",
            logs()
        );
        assert!(next.alive());
        live = next;
    }
    let all = wait_for(&audit, "conflicting_client_id", |e| {
        e["event"] == "conflicting_client_id"
    });
    let takeovers: Vec<_> = all.iter().filter(|e| e["event"] == "takeover").collect();
    assert_eq!(takeovers.len(), 3, "{all:#?}");
    for (i, t) in takeovers.iter().enumerate() {
        assert_eq!(t["node"], 2);
        assert_eq!(t["takeovers"], i + 1);
        assert_eq!(
            (&t["device"], &t["previous_key"]),
            (&"d-1".into(), &first.id.clone().into())
        );
    }
    assert_eq!(
        all.iter()
            .filter(|e| e["event"] == "conflicting_client_id")
            .count(),
        1
    );

    // The first key deleted (SIGHUP on node 1, which tells node 2): d-1's
    // session on node 2 ends with its cause, and both nodes applied it.
    dir.write("keys.jsonl", &keys.replace(&first_line, ""));
    a.sighup();
    assert!(
        live.closed_within(Duration::from_secs(5)).is_some(),
        "{}",
        logs()
    );
    let all = wait_for(&audit, "session_ended", |e| {
        e["event"] == "session_ended" && e["reason"] == "deleted"
    });
    let ended = all.iter().find(|e| e["event"] == "session_ended").unwrap();
    assert_eq!(
        (&ended["device"], &ended["key"]),
        (&"d-1".into(), &first.id.clone().into())
    );
    for node in [1, 2] {
        wait_for(&audit, "records applied", |e| {
            e["event"] == "records_applied"
                && e["node"] == node
                && e["source"] == "files"
                && e["keys"] == 1
        });
    }
    assert!(d2.alive());
    let node2 = scrape(metrics[1]);
    assert_eq!(node2[ACCEPTED], 4.0, "{node2:#?}");
    assert_eq!(
        node2["structure_access_takeovers_total{result=\"taken_over\"}"],
        3.0
    );
    assert_eq!(
        node2["structure_access_takeovers_total{result=\"refused\"}"],
        1.0
    );
    assert_eq!(
        node2["structure_access_takeovers_total{result=\"conflicting\"}"],
        1.0
    );
    assert_eq!(
        node2["structure_access_sessions_ended_total{cause=\"deleted\"}"],
        1.0
    );
    assert_eq!(node2["structure_access_keys"], 4.0);
    assert!(node2["structure_access_change_set_seconds_count"] >= 1.0);
    assert_eq!(scrape(metrics[0])[ACCEPTED], 1.0);

    let text = std::fs::read_to_string(&audit).unwrap();
    for key in [&first, &second, &inactive, &scoped, &other_app, &unknown] {
        assert!(!text.contains(&key.secret));
        assert!(!text.contains(&key.secret[4..20]));
    }
    assert!(!logs().contains(&first.secret));
}
