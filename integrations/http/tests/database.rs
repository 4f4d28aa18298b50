//! `structure-http` with the platform's database as its source, against a
//! real PostgreSQL of the test's own (skipped without PostgreSQL, unless
//! `STRUCTURE_E2E_REQUIRED` is set): started while the database is down it
//! waits without listening; then a key made in the database issues tokens
//! and answers RabbitMQ, and its deletion ends both at once.

#[path = "../../common/testing/postgres.rs"]
mod pg;
mod support;

use std::time::{Duration, Instant};

use pg::Postgres;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::mqtt::TopicRules;
use structure_access::{AccessKey, HashPolicy, Restriction, Scope};
use structure_access_common::postgres::Database;
use support::*;

fn insert_key(record: &AccessKey) -> String {
    let restriction = record
        .scope()
        .restriction()
        .map_or("NULL".to_owned(), |r| format!("'{r}'"));
    format!(
        "INSERT INTO structure_access_keys (key_id, application, verifier, restriction) \
         VALUES ('{}', '{}', '{}', {restriction})",
        record.key(),
        record.application(),
        record.verifier()
    )
}

/// `POST /rabbitmq/{question}` with a form body: `allow` or `deny`.
fn rabbitmq(server: &HttpServer, question: &str, form: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "POST", "--data", form])
        .arg(server.url(&format!("/rabbitmq/{question}")))
        .output()
        .expect("curl is installed (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn until(limit: Duration, what: &str, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn the_server_follows_the_platforms_database() {
    if !pg::available() {
        return;
    }
    let pg = Postgres::start("http");
    let database = Database::new(&pg.url(), HashPolicy::default(), TopicRules::default()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(database.apply_schema())
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    let policy = HashPolicy::default();
    let restricted: Scope = "kind=truck".parse::<Restriction>().unwrap().into();
    let made = AccessKey::generate(&mut rng, "app1".parse().unwrap(), restricted, &policy).unwrap();
    let (record, secret) = (made.record, made.secret.expose_secret().to_owned());
    pg.sql(&format!(
        "INSERT INTO structure_access_applications VALUES ('app1'); {}; \
         INSERT INTO structure_access_devices VALUES ('truck-1', 'app1', '[{{\"key\": \"kind\", \"value\": \"truck\"}}]'); \
         CREATE ROLE reader LOGIN; GRANT SELECT ON structure_access_applications, \
         structure_access_keys, structure_access_devices, structure_access_changes TO reader;",
        insert_key(&record)
    ));
    // The server reads only: a role with SELECT on the four tables.
    let url = pg.url().replace("user=postgres", "user=reader");
    assert!(url.contains("user=reader"), "{url}");
    let dir = work_dir("database");
    let url_file = dir.join("database-url");
    std::fs::write(&url_file, &url).unwrap();
    let (signing, _) = signing_key(&dir, "signing.key", 4);

    // Started while the database is down: it waits, without listening.
    pg.stop();
    let port = free_port();
    let server = spawn_on(
        port,
        &[
            "--database-url-file",
            url_file.to_str().unwrap(),
            "--signing-key",
            signing.to_str().unwrap(),
            "--rabbitmq",
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "it listened without records"
    );
    assert!(
        server.log().contains("waiting for it, not listening"),
        "{}",
        server.log()
    );
    pg.start_server();
    wait_listening(&server, Duration::from_secs(20));

    // The key of the database issues a token, and answers RabbitMQ.
    let login = serde_json::json!({ "deviceId": "truck-1", "key": record.key().to_string(), "secret": secret })
        .to_string();
    let (status, _, body) = curl("POST", &server.url("/auth/device"), None, Some(&login));
    assert_eq!(status, 200, "{body}");
    let token = json(&body)["token"].as_str().unwrap().to_owned();
    let state = || {
        curl(
            "POST",
            &server.url("/applications/app1/devices/truck-1/state"),
            Some(&token),
            Some(r#"{"speed": 80}"#),
        )
        .0
    };
    assert_eq!(state(), 202);
    let user_form = format!(
        "username={}&password={secret}&vhost=%2F&client_id=truck-1",
        record.key()
    );
    let topic_form = format!(
        "username={}&vhost=%2F&resource=topic&name=amq.topic&permission=write\
         &routing_key=structure.truck-1.state&variable_map.client_id=truck-1",
        record.key()
    );
    assert_eq!(rabbitmq(&server, "user", &user_form), "allow");
    assert_eq!(rabbitmq(&server, "topic", &topic_form), "allow");

    // The device retagged out of the key's scope, in the database: refused
    // from the change on.
    pg.sql(
        "UPDATE structure_access_devices SET tags = '[{\"key\": \"kind\", \"value\": \"car\"}]' \
         WHERE device_id = 'truck-1'",
    );
    let took = until(Duration::from_secs(5), "the retag applied", || {
        rabbitmq(&server, "topic", &topic_form) == "deny"
    });
    assert_eq!(state(), 401);
    eprintln!("retag in the database → refused after {took:?}");
    pg.sql(
        "UPDATE structure_access_devices SET tags = '[{\"key\": \"kind\", \"value\": \"truck\"}]' \
         WHERE device_id = 'truck-1'",
    );
    until(Duration::from_secs(5), "the retag back applied", || {
        state() == 202
    });

    // The key deleted in the database: its token and its RabbitMQ rights end.
    pg.sql(&format!(
        "DELETE FROM structure_access_keys WHERE key_id = '{}'",
        record.key()
    ));
    let took = until(Duration::from_secs(5), "the deletion applied", || {
        state() == 401
    });
    eprintln!("key deleted in the database → its token refused after {took:?}");
    assert_eq!(rabbitmq(&server, "user", &user_form), "deny");
    assert_eq!(rabbitmq(&server, "topic", &topic_form), "deny");
    let log = server.log();
    assert!(log.contains("records applied from"), "{log}");
    assert!(!log.contains(&secret), "the secret is in the log");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
