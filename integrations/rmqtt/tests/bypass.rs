//! The ways around per-delivery enforcement on a two-node cluster, each tried
//! with real MQTT clients (3.1.1 and 5, persistent sessions, QoS 1): a
//! session moved to the other node, a takeover, queued messages, wills
//! (immediate, delayed, of revoked sessions), offline sessions of a revoked
//! key, the state kept per client, retained messages and shared
//! subscriptions.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use structure_access::{Restriction, Scope};
use structure_access_common::wire::{Connect, Will};
use support::{APP_A, APP_B, Client, Fixture, Key, Node, WorkDir, cluster, device};

fn broker() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_structure-broker"))
}

fn logs(a: &Node, b: &Node) -> String {
    format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log())
}

/// A persistent session (MQTT 3.1.1 clean session 0, or MQTT 5 with a
/// session expiry of 10 minutes).
fn persistent<'a>(client_id: &'a str, key: &'a Key, v5: bool) -> Connect<'a> {
    Connect {
        clean: false,
        v5_session_expiry: v5.then_some(600),
        ..Connect::new(client_id, key.credentials())
    }
}

/// Topics of the deliveries, sorted.
fn topics(client: &mut Client, wait: Duration) -> Vec<String> {
    let mut seen: Vec<String> = client
        .deliveries(wait)
        .into_iter()
        .map(|d| d.topic)
        .collect();
    seen.sort();
    seen
}

#[test]
fn a_session_moved_to_the_other_node_keeps_its_scope() {
    let dir = WorkDir::new("moved");
    let mut f = Fixture::new(19);
    let spy_scope: Restriction = "spy-1,spy-5".parse().unwrap();
    let (spy_line, spy) = f.key(APP_A, spy_scope.into());
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    let (b_line, b_key) = f.key(APP_B, Scope::Unrestricted);
    dir.write("keys.jsonl", &[spy_line, open_line, b_line].concat());
    dir.write(
        "devices.jsonl",
        &[
            device(APP_A, "spy-1", &[]),
            device(APP_A, "spy-5", &[]),
            device(APP_A, "victim-1", &[]),
            device(APP_B, "b-dev", &[]),
        ]
        .concat(),
    );
    let (a, b) = cluster(broker(), &dir.0, "");
    let mut victim = Client::connected(a.mqtt, "victim-1", &open);
    let mut other = Client::connected(b.mqtt, "b-dev", &b_key);
    let mut peer = Client::connected(a.mqtt, "spy-5", &spy);
    let mut publish_all = |round: &str| {
        victim.publish_with("structure/victim-1/state", round, 1, false);
        other.publish_with("structure/b-dev/state", round, 1, false);
        peer.publish_with("structure/spy-5/state", round, 1, false);
    };
    let in_scope = vec!["structure/spy-5/state".to_string()];

    for v5 in [false, true] {
        // On node 1: a persistent session, subscribed at QoS 1 to every
        // device's state (answered `Filter`), then offline.
        let (mut spy1, _) = Client::opened(a.mqtt, &persistent("spy-1", &spy, v5));
        assert_eq!(spy1.subscribe_qos("structure/+/state", 1), 1);
        std::thread::sleep(Duration::from_millis(300));
        publish_all("online-1");
        assert_eq!(
            topics(&mut spy1, Duration::from_secs(1)),
            in_scope,
            "node 1"
        );
        spy1.disconnect();
        std::thread::sleep(Duration::from_millis(300));

        // While it is offline, QoS 1 messages are queued for it on node 1.
        publish_all("queued");
        std::thread::sleep(Duration::from_millis(300));

        // It comes back on node 2 without subscribing again: the session,
        // its subscription and its queue move there.
        let (mut spy2, present) = Client::opened(b.mqtt, &persistent("spy-1", &spy, v5));
        assert!(
            present,
            "the session did not move (v5: {v5})\n{}",
            logs(&a, &b)
        );
        assert_eq!(
            topics(&mut spy2, Duration::from_secs(1)),
            in_scope,
            "the queue moved to node 2 (v5: {v5})\n{}",
            logs(&a, &b)
        );
        // (RMQTT routes the moved subscription asynchronously.)
        std::thread::sleep(Duration::from_millis(300));
        publish_all("moved");
        assert_eq!(
            topics(&mut spy2, Duration::from_secs(1)),
            in_scope,
            "published after the move (v5: {v5})\n{}",
            logs(&a, &b)
        );

        // Taken over from node 2 by connecting to node 1, without going
        // offline first.
        let (mut spy3, present) = Client::opened(a.mqtt, &persistent("spy-1", &spy, v5));
        assert!(present);
        assert!(spy2.closed_within(Duration::from_secs(2)).is_some());
        std::thread::sleep(Duration::from_millis(300));
        publish_all("taken-over");
        assert_eq!(
            topics(&mut spy3, Duration::from_secs(1)),
            in_scope,
            "after a takeover (v5: {v5})\n{}",
            logs(&a, &b)
        );
        // A clean session ends it before the next round.
        spy3.disconnect();
        let (clean, _) = Client::opened(a.mqtt, &Connect::new("spy-1", spy.credentials()));
        clean.disconnect();
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn wills_are_decided_when_they_are_published_and_revocation_sends_none() {
    let dir = WorkDir::new("wills");
    let mut f = Fixture::new(20);
    let trucks: Restriction = "vehicle=truck,gw".parse().unwrap();
    let (gw_line, gw) = f.key(APP_A, trucks.into());
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    let (doomed_line, doomed) = f.key(APP_A, Scope::Unrestricted);
    let devices = |dev2: &str, dev3: &str| {
        [
            device(APP_A, "gw", &[]),
            device(APP_A, "dev-2", &[("vehicle", dev2)]),
            device(APP_A, "dev-3", &[("vehicle", dev3)]),
            device(APP_A, "sensor", &[]),
            device(APP_A, "monitor-1", &[]),
            device(APP_A, "monitor-2", &[]),
        ]
        .concat()
    };
    dir.write(
        "keys.jsonl",
        &[gw_line.clone(), open_line.clone(), doomed_line].concat(),
    );
    dir.write("devices.jsonl", &devices("truck", "truck"));
    let (a, b) = cluster(broker(), &dir.0, "");
    let mut reloads = 0;
    let mut reload = || {
        reloads += 1;
        a.sighup();
        b.sighup();
        a.wait_for_count("reloaded after SIGHUP", reloads);
        b.wait_for_count("reloaded after SIGHUP", reloads);
    };
    // An unrestricted subscriber on each node.
    let mut monitors = [
        Client::connected(a.mqtt, "monitor-1", &open),
        Client::connected(b.mqtt, "monitor-2", &open),
    ];
    for monitor in &mut monitors {
        assert_eq!(monitor.subscribe("structure/+/state"), 0);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut seen = |wait: Duration| -> Vec<String> {
        let mut all = Vec::new();
        for monitor in &mut monitors {
            all.extend(monitor.messages(wait));
        }
        all.sort();
        all
    };

    // An allowed will is delivered on both nodes.
    let (gw1, _) =
        Client::connect_with_will(a.mqtt, "gw", &gw, Some(("structure/gw/state", "own")));
    gw1.drop_connection();
    assert_eq!(
        seen(Duration::from_secs(1)),
        ["structure/gw/state own", "structure/gw/state own"],
        "{}",
        logs(&a, &b)
    );

    // A will on dev-2's state, allowed at CONNECT; then dev-2 leaves the
    // gateway's scope. A direct publication there is denied, and so is the
    // will when the socket drops.
    let (mut gw2, code) =
        Client::connect_with_will(b.mqtt, "gw", &gw, Some(("structure/dev-2/state", "will-2")));
    assert_eq!(code, 0);
    dir.write("devices.jsonl", &devices("car", "truck"));
    reload();
    gw2.publish("structure/dev-2/state", "direct");
    assert!(gw2.alive());
    gw2.drop_connection();
    assert_eq!(
        seen(Duration::from_secs(1)),
        Vec::<String>::new(),
        "a will out of scope was delivered\n{}",
        logs(&a, &b)
    );

    // MQTT 5: a will delayed 2 s, of an offline session, decided when it is
    // published: dev-3 leaves the scope during the delay.
    let will = Will {
        delay: Some(2),
        ..Will::new("structure/dev-3/state", "delayed")
    };
    let connect = Connect {
        clean: false,
        will: Some(will),
        v5_session_expiry: Some(600),
        ..Connect::new("gw", gw.credentials())
    };
    let (gw3, _) = Client::opened(a.mqtt, &connect);
    gw3.drop_connection();
    dir.write("devices.jsonl", &devices("car", "car"));
    reload();
    assert_eq!(
        seen(Duration::from_secs(3)),
        Vec::<String>::new(),
        "a delayed will out of scope was delivered\n{}",
        logs(&a, &b)
    );
    // (The control: the same delayed will, in scope, is delivered.)
    let will = Will {
        delay: Some(1),
        ..Will::new("structure/gw/state", "delayed-own")
    };
    let connect = Connect {
        will: Some(will),
        ..connect
    };
    let (gw4, _) = Client::opened(b.mqtt, &connect);
    gw4.drop_connection();
    assert_eq!(
        seen(Duration::from_secs(3)),
        [
            "structure/gw/state delayed-own",
            "structure/gw/state delayed-own"
        ],
        "{}",
        logs(&a, &b)
    );

    // A session revoked (its key deleted) is closed without its will.
    let (mut sensor, code) = Client::connect_with_will(
        b.mqtt,
        "sensor",
        &doomed,
        Some(("structure/sensor/state", "revoked-will")),
    );
    assert_eq!(code, 0);
    dir.write("keys.jsonl", &[gw_line, open_line].concat());
    reload();
    assert!(
        sensor.closed_within(Duration::from_secs(2)).is_some(),
        "{}",
        logs(&a, &b)
    );
    assert_eq!(
        seen(Duration::from_secs(1)),
        Vec::<String>::new(),
        "a revoked session's will was delivered\n{}",
        logs(&a, &b)
    );
}

#[test]
fn revocation_ends_offline_sessions_on_every_node() {
    let dir = WorkDir::new("offline");
    let mut f = Fixture::new(21);
    let (doomed_line, doomed) = f.key(APP_A, Scope::Unrestricted);
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    dir.write("keys.jsonl", &[doomed_line, open_line.clone()].concat());
    dir.write(
        "devices.jsonl",
        &[device(APP_A, "s-1", &[]), device(APP_A, "monitor", &[])].concat(),
    );
    let (a, b) = cluster(broker(), &dir.0, "");
    // s-1's persistent session on node 2, subscribed at QoS 1, offline.
    let (mut s1, _) = Client::opened(b.mqtt, &persistent("s-1", &doomed, false));
    assert_eq!(s1.subscribe_qos("structure/s-1/state", 1), 1);
    s1.disconnect();
    std::thread::sleep(Duration::from_millis(300));
    // The key is deleted; only node 1 reloads. Node 1 ends the offline
    // session on node 2: its subscription and queue go with it.
    dir.write("keys.jsonl", &open_line);
    a.sighup();
    a.wait_for_count("reloaded after SIGHUP", 1);
    std::thread::sleep(Duration::from_millis(500));
    let mut monitor = Client::connected(a.mqtt, "monitor", &open);
    monitor.publish_with("structure/s-1/state", "queued", 1, false);
    std::thread::sleep(Duration::from_millis(300));
    // The device, with a key still valid, finds no session on node 2.
    let (mut again, present) = Client::opened(b.mqtt, &persistent("s-1", &open, false));
    assert!(
        !present,
        "the revoked key's offline session survived\n{}",
        logs(&a, &b)
    );
    assert_eq!(again.messages(Duration::from_secs(1)), Vec::<String>::new());
}

#[test]
fn per_client_state_is_bounded_and_reset_by_a_clean_session() {
    let dir = WorkDir::new("state");
    let mut f = Fixture::new(22);
    let scope: Restriction = "vehicle=truck".parse().unwrap();
    let (key_line, key) = f.key(APP_A, scope.into());
    dir.write("keys.jsonl", &key_line);
    let ids: Vec<String> = (1..=4).map(|i| format!("t-{i}")).collect();
    let devices: String = ids
        .iter()
        .map(|id| device(APP_A, id, &[("vehicle", "truck")]))
        .collect();
    dir.write("devices.jsonl", &devices);
    let (a, b) = cluster(broker(), &dir.0, "");

    // A filter longer than the bound is refused; one at it is answered.
    let mut c = Client::connected(a.mqtt, "t-1", &key);
    let at = |n: usize, i: usize| format!("structure/+/{i:04}{}", "x".repeat(n - 16));
    assert_eq!(at(4096, 0).len(), 4096);
    assert_eq!(c.subscribe(&at(4096, 0)), 0, "{}", logs(&a, &b));
    assert_eq!(c.subscribe(&at(4097, 1)), 0x80, "{}", logs(&a, &b));
    c.disconnect();

    // 1 000 filtered subscriptions per client, then a clean session: the
    // device subscribes again. Four devices, three rounds, each with the
    // longest filters: the node's memory does not grow round after round.
    let mut rss = Vec::new();
    for round in 0..3 {
        for id in &ids {
            let mut c = Client::connected(a.mqtt, id, &key);
            for i in 0..1_000 {
                assert_eq!(
                    c.subscribe(&at(4096, i)),
                    0,
                    "round {round}, {id}, filter {i}\n{}",
                    logs(&a, &b)
                );
            }
            // The 1 001st is refused.
            assert_eq!(c.subscribe(&at(4096, 1_000)), 0x80, "{}", logs(&a, &b));
            assert!(c.alive());
            c.disconnect();
        }
        std::thread::sleep(Duration::from_millis(500));
        rss.push(a.rss_kib());
    }
    let growth = rss[2].saturating_sub(rss[0]);
    assert!(
        growth < 24 * 1024,
        "node 1 grew {growth} KiB from round 1 to round 3: {rss:?} KiB"
    );
}

#[test]
fn retained_messages_and_shared_subscriptions_follow_the_policy() {
    let dir = WorkDir::new("retained");
    let mut f = Fixture::new(23);
    let trucks: Restriction = "vehicle=truck,gw".parse().unwrap();
    let (gw_line, gw) = f.key(APP_A, trucks.into());
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    let (b_line, b_key) = f.key(APP_B, Scope::Unrestricted);
    dir.write("keys.jsonl", &[gw_line, open_line, b_line].concat());
    dir.write(
        "devices.jsonl",
        &[
            device(APP_A, "gw", &[]),
            device(APP_A, "truck-r", &[("vehicle", "truck")]),
            device(APP_A, "car-r", &[("vehicle", "car")]),
            device(APP_A, "pub-a", &[]),
            device(APP_A, "mon-1", &[]),
            device(APP_A, "mon-2", &[]),
            device(APP_A, "sh-1", &[]),
            device(APP_A, "sh-2", &[]),
            device(APP_B, "b-r", &[]),
        ]
        .concat(),
    );
    let (a, b) = cluster(broker(), &dir.0, "");

    // Retained, published on node 1 (application A) and node 2 (B).
    let mut publisher = Client::connected(a.mqtt, "pub-a", &open);
    publisher.publish_with("structure/truck-r/state", "t", 1, true);
    publisher.publish_with("structure/car-r/state", "c", 1, true);
    let mut b_pub = Client::connected(b.mqtt, "b-r", &b_key);
    b_pub.publish_with("structure/b-r/state", "b", 1, true);
    std::thread::sleep(Duration::from_millis(500));

    // An unrestricted subscriber gets A's retained messages on either node,
    // never B's; a restricted gateway only its scope's.
    for (node, name) in [(&a, "mon-1"), (&b, "mon-2")] {
        let mut monitor = Client::connected(node.mqtt, name, &open);
        assert_eq!(monitor.subscribe("structure/+/state"), 0);
        let got = monitor.deliveries(Duration::from_secs(1));
        let mut retained: Vec<_> = got
            .iter()
            .filter(|d| d.retain)
            .map(|d| d.topic.clone())
            .collect();
        retained.sort();
        assert_eq!(
            retained,
            ["structure/car-r/state", "structure/truck-r/state"],
            "{name}\n{}",
            logs(&a, &b)
        );
        monitor.disconnect();
        let mut gateway = Client::connected(node.mqtt, "gw", &gw);
        assert_eq!(gateway.subscribe("structure/+/state"), 0);
        assert_eq!(
            topics(&mut gateway, Duration::from_secs(1)),
            ["structure/truck-r/state"],
            "gateway on {name}'s node\n{}",
            logs(&a, &b)
        );
        gateway.disconnect();
    }

    // A shared group across both nodes: each message reaches one member,
    // and a member of another application in a group of the same name
    // takes none of them.
    let mut sh1 = Client::connected(a.mqtt, "sh-1", &open);
    let mut sh2 = Client::connected(b.mqtt, "sh-2", &open);
    let mut intruder = Client::connected(b.mqtt, "b-r", &b_key);
    for member in [&mut sh1, &mut sh2, &mut intruder] {
        assert_eq!(member.subscribe("$share/g/structure/+/state"), 0);
    }
    let mut gateway = Client::connected(b.mqtt, "gw", &gw);
    assert_eq!(gateway.subscribe("$share/h/structure/+/state"), 0);
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..10 {
        publisher.publish_with("structure/truck-r/state", &format!("s{i}"), 1, false);
        publisher.publish_with("structure/car-r/state", &format!("c{i}"), 1, false);
    }
    // (RMQTT may send retained messages to a new shared subscriber: only the
    // messages published now count.)
    let published = |client: &mut Client, wait| -> Vec<String> {
        client
            .deliveries(wait)
            .into_iter()
            .filter(|d| !d.retain)
            .map(|d| format!("{} {}", d.topic, String::from_utf8_lossy(&d.payload)))
            .collect()
    };
    let mut shared = published(&mut sh1, Duration::from_secs(1));
    shared.extend(published(&mut sh2, Duration::from_millis(200)));
    shared.sort();
    let mut expected: Vec<String> = (0..10)
        .flat_map(|i| {
            [
                format!("structure/car-r/state c{i}"),
                format!("structure/truck-r/state s{i}"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(shared, expected, "{}", logs(&a, &b));
    assert_eq!(
        published(&mut intruder, Duration::from_millis(200)),
        Vec::<String>::new()
    );
    let mut to_gateway = published(&mut gateway, Duration::from_millis(500));
    to_gateway.sort();
    let mut trucks: Vec<String> = (0..10)
        .map(|i| format!("structure/truck-r/state s{i}"))
        .collect();
    trucks.sort();
    assert_eq!(to_gateway, trucks, "{}", logs(&a, &b));
}

/// How long before `deadline` is left, at least a millisecond.
#[allow(dead_code)]
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

#[test]
fn subscriptions_carried_into_a_session_are_decided_again() {
    let dir = WorkDir::new("review");
    let mut f = Fixture::new(26);
    let trucks: Restriction = "vehicle=truck,gw".parse().unwrap();
    let (gw_line, gw) = f.key(APP_A, trucks.into());
    let (open_line, open) = f.key(APP_A, Scope::Unrestricted);
    dir.write("keys.jsonl", &[gw_line, open_line].concat());
    let devices = |truck_x: &str| {
        [
            device(APP_A, "gw", &[]),
            device(APP_A, "truck-x", &[("vehicle", truck_x)]),
            device(APP_A, "monitor", &[]),
        ]
        .concat()
    };
    dir.write("devices.jsonl", &devices("truck"));
    let (a, b) = cluster(broker(), &dir.0, "");
    // The gateway subscribes to truck-x's state (allowed) and its own, then
    // goes offline; truck-x becomes a car.
    let (mut gw1, _) = Client::opened(a.mqtt, &persistent("gw", &gw, false));
    assert_eq!(gw1.subscribe_qos("structure/truck-x/state", 1), 1);
    assert_eq!(gw1.subscribe_qos("structure/gw/state", 1), 1);
    gw1.disconnect();
    dir.write("devices.jsonl", &devices("car"));
    for node in [&a, &b] {
        node.sighup();
    }
    for node in [&a, &b] {
        node.wait_for_count("reloaded after SIGHUP", 1);
    }
    // Back on node 2: the session moves with both subscriptions. At its
    // first delivery node 2 decides them again and removes the one it may
    // no longer hold; nothing of truck-x reaches it meanwhile.
    let (mut gw2, present) = Client::opened(b.mqtt, &persistent("gw", &gw, false));
    assert!(present);
    let mut monitor = Client::connected(a.mqtt, "monitor", &open);
    // (Until RMQTT has the moved subscriptions routed, a publication may reach
    // no one: published again until one arrives.)
    let mut seen = Vec::new();
    for _ in 0..10 {
        monitor.publish_with("structure/truck-x/state", "as-car", 1, false);
        monitor.publish_with("structure/gw/state", "to-gw", 1, false);
        seen.extend(gw2.messages(Duration::from_millis(500)));
        if !seen.is_empty() {
            break;
        }
    }
    assert!(
        seen.iter().all(|m| m == "structure/gw/state to-gw") && !seen.is_empty(),
        "{seen:?}\n{}",
        logs(&a, &b)
    );
    b.wait_for_log("removed the subscription `structure/truck-x/state` of device `gw`");
    assert!(!a.log().contains("removed the subscription"));
}
