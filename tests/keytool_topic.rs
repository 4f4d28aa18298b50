//! `keytool topic`, run as a user would (through `cargo run`).
#![cfg(all(feature = "std", feature = "serde"))]

use std::process::{Command, Output};

fn keytool(args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
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
        .output()
        .unwrap()
}

#[test]
fn keytool_topic_prints_the_decision() {
    let out = keytool(&["generate", "--restrict", "site=north,listed"]);
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
        let out = keytool(&[&gateway[..], &[action, topic]].concat());
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            (out.status.code(), printed.trim_end()),
            (Some(0), expected),
            "{action} {topic}: {out:?}"
        );
    }

    // An invalid topic is a usage error that says where.
    let out = keytool(&[&gateway[..], &["publish", "a/+"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at byte 2"),
        "{out:?}"
    );
    // A device the key cannot authenticate gets no decision at all.
    let out = keytool(&["topic", "--record", path, "--device", "gw", "publish", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside the scope"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
