//! The database source and `structure-keys` against a real PostgreSQL of
//! the test's own (skipped without PostgreSQL, unless
//! `STRUCTURE_E2E_REQUIRED` is set).
#![cfg(feature = "postgres")]

#[path = "../testing/postgres.rs"]
mod pg;

use std::process::Command;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pg::Postgres;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::TopicRules;
use structure_access::{AccessKey, Device, HashPolicy, Scope};
use structure_access_common::Records;
use structure_access_common::postgres::{Database, Event};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn key(seed: u64, app: &str) -> AccessKey {
    AccessKey::generate(
        &mut ChaCha20Rng::seed_from_u64(seed),
        app.parse().unwrap(),
        Scope::Unrestricted,
        &HashPolicy::default(),
    )
    .unwrap()
    .record
}

fn insert_key(record: &AccessKey) -> String {
    format!(
        "INSERT INTO structure_access_keys (key_id, application, verifier) VALUES ('{}', '{}', '{}')",
        record.key(),
        record.application(),
        record.verifier()
    )
}

fn follow(db: Database, position: i64) -> Receiver<Event> {
    db.follow_on_thread(Some(position)).unwrap()
}

/// Applies change events until `done` holds (up to 10 s); the other events
/// seen meanwhile, as text.
fn apply_until(
    events: &Receiver<Event>,
    records: &RwLock<Records>,
    done: impl Fn(&Records) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done(&records.read().unwrap()) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "not done within 10 s; saw {seen:?}");
        match events.recv_timeout(left) {
            Ok(Event::Changes {
                changes, skipped, ..
            }) => {
                seen.extend(skipped.iter().map(ToString::to_string));
                records.write().unwrap().apply(changes);
            }
            Ok(Event::Snapshot {
                records: fresh,
                skipped,
                ..
            }) => {
                seen.push("snapshot".into());
                seen.extend(skipped.iter().map(ToString::to_string));
                let mut records = records.write().unwrap();
                let changes = records.changes_to(&fresh);
                records.apply(changes);
            }
            Ok(Event::Lost(e)) => seen.push(format!("lost: {e}")),
            Ok(Event::Back(_)) => seen.push("back".into()),
            Ok(_) => {}
            Err(_) => {}
        }
    }
    seen
}

#[test]
fn the_database_is_followed_through_changes_bad_rows_and_lost_connections() {
    if !pg::available() {
        return;
    }
    let pg = Postgres::start("source");
    let database =
        || Database::new(&pg.url(), HashPolicy::default(), TopicRules::default()).unwrap();
    runtime().block_on(database().apply_schema()).unwrap();
    // Again: the schema can be applied twice.
    runtime().block_on(database().apply_schema()).unwrap();
    let (k1, k2, k3) = (key(1, "a1"), key(2, "a1"), key(3, "a1"));
    pg.sql(&format!(
        "INSERT INTO structure_access_applications VALUES ('a1'); {}; {}; \
         INSERT INTO structure_access_devices VALUES ('d1', 'a1', '[{{\"key\": \"fleet\", \"value\": \"f1\"}}]');",
        insert_key(&k1),
        insert_key(&k2)
    ));
    let (records, position, skipped) = runtime().block_on(database().snapshot()).unwrap();
    assert!(skipped.is_empty());
    assert_eq!((records.key_count(), records.device_count()), (2, 1));
    assert!(position > 0);
    let records = Arc::new(RwLock::new(records));
    // A broker needs to read only: a role with SELECT on the four tables
    // follows the database (what README.md tells operators to grant).
    pg.sql(
        "CREATE ROLE broker LOGIN; GRANT SELECT ON structure_access_applications, \
         structure_access_keys, structure_access_devices, structure_access_changes TO broker;",
    );
    let as_broker = pg.url().replace("user=postgres", "user=broker");
    assert!(as_broker.contains("user=broker"), "{as_broker}");
    let database =
        || Database::new(&as_broker, HashPolicy::default(), TopicRules::default()).unwrap();
    let events = follow(database(), position);

    // A key deleted, one added, a device retagged: each applied.
    pg.sql(&format!(
        "DELETE FROM structure_access_keys WHERE key_id = '{}'; {}; \
         UPDATE structure_access_devices SET tags = '[{{\"key\": \"fleet\", \"value\": \"f2\"}}]' WHERE device_id = 'd1';",
        k2.key(),
        insert_key(&k3)
    ));
    apply_until(&events, &records, |r| {
        r.key(k2.key()).is_none()
            && r.key(k3.key()).is_some()
            && r.device("d1")
                .is_some_and(|d| d.tags().any(|(_, v)| v == "f2"))
    });

    // Rows the crate refuses: a restriction that does not parse, a verifier
    // the policy refuses before hashing. Skipped and said so; the valid row
    // of the same transaction applies; a key made invalid opens nothing.
    let k4 = key(4, "a1");
    let hostile = "$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    pg.sql(&format!(
        "INSERT INTO structure_access_keys (key_id, application, verifier, restriction) \
         VALUES ('bad-restriction', 'a1', '{}', 'vehicle=truck,,'); \
         INSERT INTO structure_access_keys (key_id, application, verifier) VALUES ('hostile', 'a1', '{hostile}'); \
         UPDATE structure_access_keys SET verifier = '{hostile}' WHERE key_id = '{}'; {};",
        k1.verifier(),
        k1.key(),
        insert_key(&k4)
    ));
    let seen = apply_until(&events, &records, |r| r.key(k4.key()).is_some());
    let skipped = seen.join("\n");
    assert!(
        skipped.contains("access key `bad-restriction` skipped"),
        "{skipped}"
    );
    assert!(
        skipped.contains("access key `hostile` skipped"),
        "{skipped}"
    );
    assert!(
        skipped.contains("verifier refused by the hash policy"),
        "{skipped}"
    );
    {
        let r = records.read().unwrap();
        assert!(r.key(k1.key()).is_none(), "an invalid row opens nothing");
        assert!(r.key(&"hostile".parse().unwrap()).is_none());
        assert_eq!(r.key_count(), 2, "k3 and k4");
    }

    // The follower's connection killed while keys change through another:
    // it reconnects and applies every change made meanwhile.
    let k5 = key(5, "a1");
    pg.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'; \
         DELETE FROM structure_access_keys WHERE key_id = '{}'; {};",
        k3.key(),
        insert_key(&k5)
    ));
    let seen = apply_until(&events, &records, |r| {
        r.key(k3.key()).is_none() && r.key(k5.key()).is_some()
    });
    assert!(seen.iter().any(|e| e.starts_with("lost: ")), "{seen:?}");

    // The server stopped and started again: said once, then back.
    pg.stop();
    std::thread::sleep(Duration::from_secs(2));
    pg.start_server();
    let k6 = key(6, "a1");
    pg.sql(&insert_key(&k6));
    let seen = apply_until(&events, &records, |r| r.key(k6.key()).is_some());
    let lost = seen.iter().filter(|e| e.starts_with("lost: ")).count();
    assert!(lost >= 1 && seen.contains(&"back".to_owned()), "{seen:?}");

    // The log trimmed past a follower's position: it reads a fresh snapshot
    // and gives the change set from the records in force.
    let stale = Arc::new(RwLock::new(
        runtime().block_on(database().snapshot()).unwrap().0,
    ));
    let k7 = key(7, "a1");
    pg.sql(&format!(
        "DELETE FROM structure_access_keys WHERE key_id = '{}'; {}; \
         DELETE FROM structure_access_changes WHERE position < (SELECT max(position) FROM structure_access_changes);",
        k4.key(),
        insert_key(&k7)
    ));
    let events = follow(database(), 1);
    let seen = apply_until(&events, &stale, |r| {
        r.key(k4.key()).is_none() && r.key(k7.key()).is_some()
    });
    assert!(seen.contains(&"snapshot".to_owned()), "{seen:?}");
}

#[test]
fn structure_keys_provisions_keys_and_devices() {
    if !pg::available() {
        return;
    }
    let pg = Postgres::start("cli");
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_structure-keys"))
            .arg("--database")
            .arg(pg.url())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(cli(&["schema"]).0, 0);
    // Unknown application; then known.
    let (code, _, err) = cli(&["key", "create", "--application", "a1"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown application `a1`"), "{err}");
    assert_eq!(cli(&["application", "add", "a1"]).0, 0);
    // A bad restriction names its offset.
    let (code, _, err) = cli(&[
        "key",
        "create",
        "--application",
        "a1",
        "--restrict",
        "vehicle=truck,,x",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--restrict: ") && err.contains("at byte"),
        "{err}"
    );
    // Created: key and secret printed once, only the verifier stored.
    let (code, out, _) = cli(&[
        "key",
        "create",
        "--application",
        "a1",
        "--restrict",
        "vehicle=truck",
        "--description",
        "fleet",
    ]);
    assert_eq!(code, 0, "{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:    "))
        .unwrap()
        .to_owned();
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("sts_"));
    let stored =
        pg.sql("SELECT key_id || ' ' || verifier || ' ' || restriction FROM structure_access_keys");
    assert!(
        stored.starts_with(&format!("{key} $hmac-sha256$")),
        "{stored}"
    );
    assert!(stored.ends_with(" vehicle=truck"), "{stored}");
    assert!(
        !pg.sql("SELECT verifier FROM structure_access_keys")
            .contains(&secret)
    );
    // Listed without secret or verifier.
    let (code, list, _) = cli(&["key", "list", "--application", "a1"]);
    assert_eq!(code, 0);
    assert_eq!(
        list.trim(),
        format!("{key}\tactive\tvehicle=truck\tnever\tfleet")
    );
    assert!(!list.contains("$hmac") && !list.contains(&secret));
    // Expiry: set, shown, read by a broker's snapshot, cleared.
    let snapshot_expiry = || {
        let db = Database::new(&pg.url(), HashPolicy::default(), TopicRules::default()).unwrap();
        let (records, _, skipped) = runtime().block_on(db.snapshot()).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        records.key(&key.parse().unwrap()).unwrap().expires_at()
    };
    let (code, out, err) = cli(&["key", "expire", &key, "--at", "2027-03-01T12:00:00.5Z"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!("access key `{key}` expires at 2027-03-01T12:00:00Z")
    );
    let (_, list, _) = cli(&["key", "list", "--application", "a1"]);
    assert!(list.contains("\t2027-03-01T12:00:00Z\t"), "{list}");
    assert_eq!(
        snapshot_expiry(),
        Some("2027-03-01T12:00:00Z".parse().unwrap())
    );
    assert_eq!(cli(&["key", "expire", &key, "--never"]).0, 0);
    assert_eq!(snapshot_expiry(), None);
    for bad in [
        &["key", "expire", &key][..],
        &["key", "expire", &key, "--in", "7d", "--never"][..],
        &["key", "expire", &key, "--at", "2027-03-01T12:00:00+02:00"][..],
        &[
            "key",
            "create",
            "--application",
            "a1",
            "--expires-in",
            "later",
        ][..],
    ] {
        let (code, _, err) = cli(bad);
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
    let (code, out, _) = cli(&["key", "create", "--application", "a1", "--expires-in", "1h"]);
    assert_eq!(code, 0, "{out}");
    let expires: structure_access::UnixTime = out
        .lines()
        .find_map(|l| l.strip_prefix("expires: "))
        .unwrap()
        .parse()
        .unwrap();
    let within = structure_access::UnixTime::now().secs_until(expires);
    assert!((3590..=3600).contains(&within), "{out}");
    let short_lived = out
        .lines()
        .find_map(|l| l.strip_prefix("key:    "))
        .unwrap()
        .to_owned();
    assert_eq!(cli(&["key", "delete", &short_lived]).0, 0);
    // Deactivated, activated, deleted; each change in the log.
    assert_eq!(cli(&["key", "deactivate", &key]).0, 0);
    assert_eq!(
        pg.sql("SELECT status FROM structure_access_keys"),
        "inactive"
    );
    assert_eq!(cli(&["key", "activate", &key]).0, 0);
    // Devices.
    assert_eq!(
        cli(&[
            "device",
            "add",
            "t1",
            "--application",
            "a1",
            "--tag",
            "vehicle=truck"
        ])
        .0,
        0
    );
    assert_eq!(
        cli(&[
            "device",
            "retag",
            "t1",
            "--tag",
            "vehicle=car",
            "--tag",
            "site=n"
        ])
        .0,
        0
    );
    assert_eq!(
        pg.sql("SELECT tags::text FROM structure_access_devices"),
        r#"[{"key": "vehicle", "value": "car"}, {"key": "site", "value": "n"}]"#
    );
    let (code, _, err) = cli(&["device", "retag", "nobody", "--tag", "a=b"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown device `nobody`"), "{err}");
    assert_eq!(cli(&["device", "delete", "t1"]).0, 0);
    assert_eq!(cli(&["key", "delete", &key]).0, 0);
    let (code, _, err) = cli(&["key", "delete", &key]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown access key"), "{err}");
    // Created, deactivated, activated, expired, never, the short-lived key
    // created and deleted, the device added, retagged, deleted, the key deleted.
    assert_eq!(
        pg.sql("SELECT count(*) FROM structure_access_changes"),
        "11"
    );
    // An unreachable database.
    let out = Command::new(env!("CARGO_BIN_EXE_structure-keys"))
        .args(["--database", "host=127.0.0.1 port=1 user=x", "schema"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the database"));
}
