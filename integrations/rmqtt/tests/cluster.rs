//! A two-node RMQTT cluster with the plugin, on free loopback ports, driven by
//! independent MQTT clients (MQTT 3.1.1 spoken over plain TCP). The nodes are
//! killed when the test ends, pass or fail.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use structure_access::{AccessKey, Restriction, Scope};
use structure_access_common::throttle::LogBudget;
use support::{APP_A, APP_B, Client, Fixture, Key, cluster, device};

#[test]
fn a_two_node_cluster_enforces_access_keys_and_revokes_across_nodes() {
    let dir = std::env::temp_dir().join(format!("structure-rmqtt-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = Fixture::new(14);
    let trucks: Restriction = "vehicle=truck,gw-1".parse().unwrap();
    let (trucks_line, trucks_key) = f.key(APP_A, trucks.into());
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    let (revoked_line, revoked) = f.key(APP_A, Scope::Unrestricted);
    let (b_line, b_key) = f.key(APP_B, Scope::Unrestricted);
    let keys = [&trucks_line, &open_line, &revoked_line, &b_line];
    std::fs::write(dir.join("keys.jsonl"), keys.map(String::as_str).concat()).unwrap();
    let devices = [
        device(APP_A, "gw-1", &[]),
        device(APP_A, "truck-1", &[("vehicle", "truck")]),
        device(APP_A, "truck-2", &[("vehicle", "truck")]),
        device(APP_A, "car-1", &[("vehicle", "car")]),
        device(APP_A, "monitor", &[]),
        device(APP_A, "sensor-9", &[]),
        device(APP_B, "b-truck", &[("vehicle", "truck")]),
    ];
    std::fs::write(dir.join("devices.jsonl"), devices.concat()).unwrap();
    let broker = Path::new(env!("CARGO_BIN_EXE_structure-broker"));
    let (a, b) = cluster(broker, &dir, "");
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());

    // Right credentials connect, on either node; every wrong one is refused.
    for node in [&a, &b] {
        let _ = Client::connected(node.mqtt, "truck-1", &trucks_key);
    }
    let wrong = Key {
        id: trucks_key.id.clone(),
        secret: open.secret.clone(),
    };
    let unknown = Key {
        id: "stk_000000000000000000000u".into(),
        secret: open.secret.clone(),
    };
    for (device, key, why) in [
        ("truck-1", &wrong, "wrong secret"),
        ("truck-1", &unknown, "unknown access key"),
        ("car-1", &trucks_key, "outside the scope"),
        ("nobody", &open, "unknown device"),
        ("b-truck", &open, "another application"),
    ] {
        let (_, code) = Client::connect(a.mqtt, device, key);
        assert_eq!(code, 5, "{why}: CONNACK {code}\n{}", logs());
        assert!(a.log().contains(why), "log lacks `{why}`:\n{}", logs());
    }
    for secret in [&open.secret, &trucks_key.secret, &b_key.secret] {
        assert!(!logs().contains(secret.as_str()), "a secret reached a log");
    }

    // Past an address's budget of refusals (2 a second by default), each
    // refusal is held 1 s before it is answered, whatever its reason; right
    // credentials from the same address still connect at once.
    let timed = |device: &str, key: &Key| {
        let start = Instant::now();
        let (_, code) = Client::connect(b.mqtt, device, key);
        (code, start.elapsed())
    };
    for _ in 0..2 {
        let (code, took) = timed("truck-1", &wrong);
        assert_eq!(code, 5);
        assert!(took < Duration::from_millis(500), "held at once: {took:?}");
    }
    // The third is held (or, should the first two have taken half a second,
    // the budget refilled by one and the fourth is).
    let held = (0..2).any(|_| {
        let (code, took) = timed("truck-1", &unknown);
        assert_eq!(code, 5);
        took >= Duration::from_secs(1)
    });
    assert!(held, "no refusal held past the budget");
    let (code, took) = timed("truck-1", &trucks_key);
    assert_eq!(code, 0);
    assert!(
        took < Duration::from_millis(500),
        "a right CONNECT held: {took:?}"
    );

    // A restricted wildcard subscriber on node 1 gets in-scope state published
    // on node 2, and never out-of-scope state; subscribing to an out-of-scope
    // device's topic is denied.
    let mut gateway = Client::connected(a.mqtt, "gw-1", &trucks_key);
    assert_eq!(gateway.subscribe("structure/+/state"), 0);
    assert_eq!(gateway.subscribe("structure/car-1/state"), 0x80);
    // An unrestricted subscriber of application A on node 1, for the forged
    // publication below.
    let mut monitor = Client::connected(a.mqtt, "monitor", &open);
    assert_eq!(monitor.subscribe("structure/+/state"), 0);
    std::thread::sleep(Duration::from_millis(500));
    let mut truck2 = Client::connected(b.mqtt, "truck-2", &trucks_key);
    let mut car = Client::connected(b.mqtt, "car-1", &open);
    let mut b_truck = Client::connected(b.mqtt, "b-truck", &b_key);
    truck2.publish("structure/truck-2/state", "t2");
    car.publish("structure/car-1/state", "car");
    b_truck.publish("structure/b-truck/state", "other-app");
    // A restricted device may not publish another device's state outside its scope.
    truck2.publish("structure/car-1/state", "forged");
    let seen = gateway.messages(Duration::from_secs(2));
    assert_eq!(seen, ["structure/truck-2/state t2"], "{}", logs());
    let seen = monitor.messages(Duration::from_millis(500));
    assert!(
        seen.contains(&"structure/car-1/state car".to_string()),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|m| m.contains("forged")), "{seen:?}");
    assert!(!seen.iter().any(|m| m.contains("other-app")), "{seen:?}");
    assert!(
        b.log().contains("publish `structure/car-1/state`"),
        "{}",
        logs()
    );

    // Wills go through the same policy: truck-1 with a will on car-1's topic
    // (outside its scope) is refused, and its will never delivered; with one on
    // its own topic it connects, and the will is delivered once the connection
    // is closed without DISCONNECT.
    for (topic, message, delivered) in [
        ("structure/car-1/state", "forged-will", false),
        ("structure/truck-1/state", "own-will", true),
    ] {
        let (client, code) =
            Client::connect_with_will(b.mqtt, "truck-1", &trucks_key, Some((topic, message)));
        assert_eq!(code, if delivered { 0 } else { 5 }, "{}", logs());
        if !delivered {
            b.wait_for_log("its will's topic `structure/car-1/state` is not one it may publish to");
        }
        drop(client);
        let seen = monitor.messages(Duration::from_secs(1));
        let expected = if delivered {
            vec![format!("{topic} {message}")]
        } else {
            vec![]
        };
        assert_eq!(seen, expected, "{}", logs());
    }

    // Revoking a key: its line deleted, SIGHUP to node 1 only. Its session on
    // node 2 is disconnected by node 1 within 2 s.
    let mut sensor = Client::connected(b.mqtt, "sensor-9", &revoked);
    let kept = [&trucks_line, &open_line, &b_line];
    std::fs::write(dir.join("keys.jsonl"), kept.map(String::as_str).concat()).unwrap();
    a.sighup();
    let took = sensor.closed_within(Duration::from_secs(2));
    assert!(took.is_some(), "not disconnected within 2 s\n{}", logs());
    // Node 1 told node 2, which ended its session (and reloaded).
    b.wait_for_log("the access key was deleted");
    // Node 1 refuses the key at once; node 2 too, once it has reloaded.
    let (_, code) = Client::connect(a.mqtt, "sensor-9", &revoked);
    assert_eq!(code, 5, "{}", logs());
    b.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, code) = Client::connect(b.mqtt, "sensor-9", &revoked);
        if code == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 never reloaded\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The other sessions stand.
    gateway.publish("structure/gw-1/state", "still");
    let seen = monitor.messages(Duration::from_secs(1));
    assert_eq!(seen, ["structure/gw-1/state still"], "{}", logs());

    // An invalid keys file: refused, the previous records stay.
    std::fs::write(dir.join("keys.jsonl"), "not json\n").unwrap();
    a.sighup();
    a.wait_for_log("keys.jsonl` line 1");
    let _ = Client::connected(a.mqtt, "truck-1", &trucks_key);

    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nodes_reload_on_their_interval_and_revoke_what_changed() {
    let dir = std::env::temp_dir().join(format!("structure-rmqtt-interval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = Fixture::new(41);
    let (kept_line, kept) = f.key(APP_A, Scope::Unrestricted);
    let (deleted_line, deleted) = f.key(APP_A, Scope::Unrestricted);
    let (added_line, added) = f.key(APP_A, Scope::Unrestricted);
    let trucks: Restriction = "vehicle=truck,gw".parse().unwrap();
    let (trucks_line, trucks_key) = f.key(APP_A, trucks.into());
    // A record from before the fast scheme: an Argon2id verifier on file.
    let legacy = AccessKey::generate(
        &mut f.rng,
        APP_A.parse().unwrap(),
        Scope::Unrestricted,
        &f.policy.clone().argon2id_for_generated(true),
    )
    .unwrap()
    .record;
    let legacy_line = serde_json::to_string(&legacy).unwrap() + "\n";
    let trucks_line = trucks_line + &legacy_line;
    std::fs::write(
        dir.join("keys.jsonl"),
        kept_line.clone() + &deleted_line + &trucks_line,
    )
    .unwrap();
    let devices = |truck_a: &str| {
        [
            device(APP_A, "sensor-1", &[]),
            device(APP_A, "sensor-2", &[]),
            device(APP_A, "gw", &[]),
            device(APP_A, "truck-a", &[("vehicle", truck_a)]),
        ]
        .concat()
    };
    std::fs::write(dir.join("devices.jsonl"), devices("truck")).unwrap();
    let broker = Path::new(env!("CARGO_BIN_EXE_structure-broker"));
    let (a, b) = cluster(
        broker,
        &dir,
        "reload_interval = 1\nargon2_per_address_per_second = 1\n",
    );
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());

    // Imported-shaped passwords cost an Argon2 run each: past the address's
    // budget (1 a second here), refused without one, and said so; a
    // generated secret connects whatever the budget.
    let guess = Key {
        id: legacy.key().to_string(),
        secret: "an-imported-password-0123".into(),
    };
    for _ in 0..3 {
        let (_, code) = Client::connect(a.mqtt, "sensor-2", &guess);
        assert_eq!(code, 5, "{}", logs());
    }
    a.wait_for_log("the budget of slow (argon2) verifications is spent");
    assert!(a.log().contains("wrong secret"), "{}", logs());
    let _ = Client::connected(a.mqtt, "sensor-2", &kept);

    // A subscription allowed under the old records is decided again under the
    // new ones: `gw` (restricted to trucks) subscribed to truck-a's state, then
    // truck-a became a car; neither session is revoked, but gw no longer
    // receives truck-a's state.
    let mut gw = Client::connected(a.mqtt, "gw", &trucks_key);
    assert_eq!(gw.subscribe("structure/truck-a/state"), 0);
    let mut truck_a = Client::connected(b.mqtt, "truck-a", &kept);
    std::thread::sleep(Duration::from_millis(300));
    truck_a.publish("structure/truck-a/state", "as-truck");
    let seen = gw.messages(Duration::from_secs(2));
    assert_eq!(seen, ["structure/truck-a/state as-truck"], "{}", logs());
    std::fs::write(dir.join("devices.jsonl"), devices("car")).unwrap();
    // Each node reloads (on its interval, or told by the other first).
    a.wait_for_log("0 access key(s) and 1 device(s) changed");
    b.wait_for_log("0 access key(s) and 1 device(s) changed");
    truck_a.publish("structure/truck-a/state", "as-car");
    let seen = gw.messages(Duration::from_secs(1));
    assert!(seen.is_empty(), "{seen:?}\n{}", logs());
    assert!(gw.ping() < Duration::from_secs(5));

    let mut doomed = Client::connected(b.mqtt, "sensor-1", &deleted);
    let mut standing = Client::connected(a.mqtt, "sensor-2", &kept);
    let (_, code) = Client::connect(a.mqtt, "sensor-1", &added);
    assert_eq!(code, 5, "a key not yet on file connected");

    // No signal: the files change, and each node notices within its interval.
    std::fs::write(
        dir.join("keys.jsonl"),
        kept_line + &added_line + &trucks_line,
    )
    .unwrap();
    let took = doomed.closed_within(Duration::from_secs(5));
    assert!(took.is_some(), "not disconnected within 5 s\n{}", logs());
    // The second change, on each node.
    for node in [&a, &b] {
        node.wait_for_log("2 access key(s) and 0 device(s) changed");
    }
    // Node 2 ended the session (on its own reload or on node 1's word), and
    // says so once the kick is done.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logs().contains("the access key was deleted") {
        assert!(Instant::now() < deadline, "no kick logged\n{}", logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Client::connected(a.mqtt, "sensor-1", &added);
    let _ = Client::connected(b.mqtt, "sensor-1", &added);
    let (_, code) = Client::connect(a.mqtt, "sensor-1", &deleted);
    assert_eq!(code, 5, "{}", logs());
    // The session whose key stayed stands.
    assert!(standing.closed_within(Duration::from_millis(300)).is_none());
    assert!(standing.ping() < Duration::from_secs(5));

    // The log lines a client causes are bounded (20 a second): a burst of 50
    // denied publications writes fewer lines, and the others are counted in a
    // later line (the next one written, or the count written once a second);
    // none is lost from the count.
    std::thread::sleep(Duration::from_millis(1100));
    let before = a.log().len();
    for i in 0..50 {
        standing.publish(&format!("elsewhere/{i}"), "x");
    }
    assert!(standing.ping() < Duration::from_secs(5));
    let tally = || {
        let log = a.log();
        let burst = log.get(before..).unwrap_or_default().to_owned();
        let written = (0..50)
            .filter(|i| burst.contains(&format!("publish `elsewhere/{i}`")))
            .count();
        let counted = LogBudget::held_back_in(&burst);
        (written, counted, burst)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (written, counted, burst) = tally();
        assert!(written < 50, "every line written:\n{burst}");
        if written + counted == 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{written} written + {counted} counted != 50:\n{burst}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload that changes one key and one device while 200 clients stay
/// connected, 100 on each node, touches only their sessions: each node
/// re-evaluates its own (the log says how many), the other 194 are served.
#[test]
fn a_reload_touches_only_the_sessions_of_what_changed() {
    let dir = support::WorkDir::new("only-affected");
    let mut f = Fixture::new(78);
    let trucks: Restriction = "vehicle=truck".parse().unwrap();
    let (doomed_line, doomed) = f.key(APP_A, Scope::Unrestricted);
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    let (trucks_line, trucks_key) = f.key(APP_A, trucks.into());
    let devices = |moved: &str| -> String {
        (0..200)
            .map(|i| {
                let vehicle = if i == 7 { moved } else { "truck" };
                device(APP_A, &format!("d-{i}"), &[("vehicle", vehicle)])
            })
            .collect()
    };
    dir.write(
        "keys.jsonl",
        &[doomed_line, open_line.clone(), trucks_line.clone()].concat(),
    );
    dir.write("devices.jsonl", &devices("truck"));
    let broker = Path::new(env!("CARGO_BIN_EXE_structure-broker"));
    let (a, b) = cluster(broker, &dir.0, "");
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());
    // d-0…d-4 with the doomed key, d-5…d-9 trucks with the restricted key,
    // the others with the open one; even ones on node 1, odd ones on node 2.
    let mut clients: Vec<Client> = (0..200)
        .map(|i| {
            let key = match i {
                0..5 => &doomed,
                5..10 => &trucks_key,
                _ => &open,
            };
            let node = if i % 2 == 0 { &a } else { &b };
            Client::connected(node.mqtt, &format!("d-{i}"), key)
        })
        .collect();

    // The doomed key deleted, d-7 (a truck, on node 2) retagged; SIGHUP to
    // node 1 only: it tells node 2.
    dir.write("keys.jsonl", &[open_line, trucks_line].concat());
    dir.write("devices.jsonl", &devices("car"));
    a.sighup();
    a.wait_for_log("3 session(s) on this node re-evaluated, 3 revoked, of 100");
    // Node 2 reloads at node 1's word; the doomed key's 2 sessions there end
    // by its own change set or by node 1's list, whichever comes first: it
    // re-evaluates d-7 and perhaps them, nothing else.
    b.wait_for_log("1 access key(s) and 1 device(s) changed");
    let b_log = b.log();
    assert!(
        b_log.contains("1 session(s) on this node re-evaluated, 1 revoked")
            || b_log.contains("3 session(s) on this node re-evaluated, 3 revoked"),
        "{}",
        logs()
    );
    for (i, client) in clients.iter_mut().enumerate() {
        let ended = matches!(i, 0..5 | 7);
        let wait = Duration::from_millis(if ended { 3000 } else { 1 });
        assert_eq!(
            client.closed_within(wait).is_some(),
            ended,
            "d-{i}\n{}",
            logs()
        );
    }
    for (i, client) in clients.iter_mut().enumerate() {
        if !matches!(i, 0..5 | 7) {
            assert!(client.alive(), "d-{i}");
        }
    }
    assert_eq!(
        logs()
            .matches("structure-access: disconnected device")
            .count(),
        6,
        "{}",
        logs()
    );
}
