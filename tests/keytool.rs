//! The operator's command line, run as a user would (through `cargo run`).
#![cfg(all(feature = "std", feature = "serde"))]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn keytool(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "--example",
            "keytool",
            "--features",
            "serde",
            "--",
        ])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn keytool_args(args: &[&str]) -> Output {
    keytool(args, "")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

#[test]
fn keytool_subcommands_print_what_they_promise() {
    let out = keytool(&["parse", " b , a ,vehicle= "], "");
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "a,b,vehicle=*")
    );

    let out = keytool(&["parse", "vehicle=truck,="], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("byte 14"),
        "{out:?}"
    );

    let out = keytool(
        &[
            "can-see",
            "--restrict",
            "=truck",
            "--device",
            "d1",
            "--tag",
            "vehicle=truck",
        ],
        "",
    );
    assert_eq!(stdout(&out), "yes");
    let out = keytool(&["can-see", "--restrict", "=truck", "--device", "d1"], "");
    assert_eq!(stdout(&out), "no");

    let out = keytool(
        &[
            "generate",
            "--application",
            "app1",
            "--restrict",
            "d1",
            "--description",
            "test",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let generated: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let secret = generated["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sts_"));
    assert_eq!(generated["record"]["restriction"], "d1");
    assert_eq!(generated["record"]["application"], "app1");
    assert_eq!(generated["record"]["key"], generated["key"]);

    assert!(
        generated["record"]["verifier"]
            .as_str()
            .unwrap()
            .starts_with("$hmac-sha256$v=1$"),
        "{generated}"
    );
    let argon2 = keytool_args(&[
        "generate",
        "--application",
        "app1",
        "--verifier",
        "argon2id",
    ]);
    assert_eq!(argon2.status.code(), Some(0), "{argon2:?}");
    let argon2: serde_json::Value = serde_json::from_str(&stdout(&argon2)).unwrap();
    assert!(
        argon2["record"]["verifier"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{argon2}"
    );

    let dir = std::env::temp_dir().join(format!("keytool-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("record.json");
    std::fs::write(&record, generated["record"].to_string()).unwrap();
    let path = record.to_str().unwrap();
    // can-see with a key record: the device's application counts.
    for (application, expected) in [("app1", "yes"), ("app2", "no")] {
        let out = keytool_args(&[
            "can-see",
            "--record",
            path,
            "--application",
            application,
            "--device",
            "d1",
        ]);
        assert_eq!(
            (out.status.code(), stdout(&out).as_str()),
            (Some(0), expected),
            "{out:?}"
        );
    }
    let out = keytool_args(&["can-see", "--record", path, "--device", "d1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = keytool_args(&["generate", "--application", "bad app"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--application"),
        "{out:?}"
    );
    let out = keytool(&["verify", "--record", path], &format!("{secret}\n"));
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "ok"),
        "{out:?}"
    );

    let argon2_record = dir.join("argon2.json");
    std::fs::write(&argon2_record, argon2["record"].to_string()).unwrap();
    let out = keytool(
        &["verify", "--record", argon2_record.to_str().unwrap()],
        &format!("{}\n", argon2["secret"].as_str().unwrap()),
    );
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "ok"),
        "{out:?}"
    );

    let wrong = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA\n";
    let out = keytool(&["verify", "--record", path], wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong secret"),
        "{out:?}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("AAAAAAAA"));

    let mut inactive = generated["record"].clone();
    inactive["status"] = "inactive".into();
    std::fs::write(&record, inactive.to_string()).unwrap();
    let out = keytool(&["verify", "--record", path], &format!("{secret}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("inactive"),
        "{out:?}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&secret[4..20]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keytool_topic_prints_the_decision() {
    let out = keytool_args(&[
        "generate",
        "--application",
        "app1",
        "--restrict",
        "site=north,listed",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut record = generated["record"].clone();
    record["additionalTopics"] = serde_json::json!({
        "filterType": "whitelist",
        "pubTopics": ["alerts/#"],
        "subTopics": ["config", "config/+/#"],
    });
    let dir = std::env::temp_dir().join(format!("keytool-topic-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("record.json");
    std::fs::write(&path, record.to_string()).unwrap();
    let path = path.to_str().unwrap();

    let gateway = [
        "topic",
        "--record",
        path,
        "--application",
        "app1",
        "--device",
        "gw",
        "--tag",
        "site=north",
    ];
    for (action, topic, expected) in [
        ("publish", "structure/gw/state", "allow"),
        ("publish", "structure/gw/command", "deny"),
        ("publish", "structure/listed/state", "allow"),
        ("publish", "structure/stranger/state", "deny"),
        ("publish", "alerts/fire", "allow"),
        ("publish", "config/site", "deny"),
        ("subscribe", "structure/gw/command", "allow"),
        ("subscribe", "structure/+/state", "filter"),
        ("subscribe", "config/#", "allow"),
        ("subscribe", "#", "deny"),
    ] {
        let out = keytool_args(&[&gateway[..], &[action, topic]].concat());
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            (out.status.code(), printed.trim_end()),
            (Some(0), expected),
            "{action} {topic}: {out:?}"
        );
    }

    // An invalid topic is a usage error that says where.
    let out = keytool_args(&[&gateway[..], &["publish", "a/+"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at byte 2"),
        "{out:?}"
    );
    // A device the key cannot authenticate gets no decision at all.
    let out = keytool_args(&[
        "topic",
        "--record",
        path,
        "--application",
        "app1",
        "--device",
        "gw",
        "publish",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside the scope"),
        "{out:?}"
    );
    // Nor does a device of another application.
    let out = keytool_args(
        &[
            &["topic", "--record", path, "--application", "app2"],
            &gateway[5..],
            &["publish", "structure/gw/state"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another application"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
