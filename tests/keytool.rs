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

/// A fresh directory under the system's temporary directory.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("keytool-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A generated secret, made by keytool itself.
fn new_secret() -> String {
    let out = keytool_args(&["generate", "--application", "app1"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["secret"].as_str().unwrap().to_owned()
}

fn assert_never_shows(out: &Output, secret: &str) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(&secret[..9]), "{text}");
    }
}

#[test]
fn scan_reads_stdin_and_exits_1_on_a_secret() {
    let secret = new_secret();
    let shown = &secret[..8];

    let out = keytool(&["scan"], &format!("a\nMQTT_PASS={secret}\n"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!("<stdin>:2:11: {shown}… (access secret)")
    );
    assert_never_shows(&out, &secret);

    // A changed checksum, a glued character, a key id: nothing to report.
    let mut bad = secret.clone();
    bad.replace_range(52.., if secret.ends_with('a') { "b" } else { "a" });
    let clean = format!("{bad}\nx{secret}\nstk_4DmVJcy3ZpW0gNqk8TbX2a\n");
    let out = keytool(&["scan"], &clean);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), ""));

    // Key ids on request, as public identifiers: still exit 0.
    let out = keytool(&["scan", "--key-ids"], &clean);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "<stdin>:3:1: stk_4DmV… (access key id, a public identifier)"
    );

    // Too large for --max-size: skipped, saying so.
    let out = keytool(&["scan", "--max-size", "20"], &format!("{secret}\n"));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("skipped <stdin>: larger than --max-size 20")
    );
}

#[test]
fn scan_walks_a_tree_without_leaving_it() {
    let secret = new_secret();
    let shown = &secret[..8];
    let outside = scratch("scan-outside");
    std::fs::write(outside.join("elsewhere.txt"), format!("{secret}\n")).unwrap();
    let dir = scratch("scan-tree");
    std::fs::create_dir_all(dir.join("src/deep")).unwrap();
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join("a.txt"), format!("one\ntwo\n  \"{secret}\"\n")).unwrap();
    std::fs::write(
        dir.join("src/deep/b.rs"),
        format!("const S: &str = \"{secret}\";"),
    )
    .unwrap();
    std::fs::write(dir.join(".git/config"), format!("{secret}\n")).unwrap();
    std::fs::write(
        dir.join("big.txt"),
        format!("{secret}\n{}", "x".repeat(4000)),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.join("elsewhere.txt"), dir.join("out-link")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("out-dir")).unwrap();
    std::os::unix::fs::symlink(dir.join("a.txt"), dir.join("in-link")).unwrap();

    let root = dir.display().to_string();
    let out = keytool(&["scan", "--max-size", "1000", &root], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!(
            "{root}/a.txt:3:4: {shown}… (access secret)\n\
             {root}/src/deep/b.rs:1:18: {shown}… (access secret)"
        )
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "skipped {root}/big.txt: larger than --max-size 1000"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "skipped {root}/out-link: symbolic link out of the scanned tree"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "skipped {root}/out-dir: symbolic link out of the scanned tree"
        )),
        "{stderr}"
    );
    assert_never_shows(&out, &secret);

    // A file given directly is scanned; a link given directly that leads out of
    // the current directory is not.
    let out = keytool(&["scan", &format!("{root}/src/deep/b.rs")], "");
    assert_eq!(out.status.code(), Some(1));
    let out = keytool(&["scan", &format!("{root}/out-link")], "");
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), ""));

    // A missing path is an error: exit 2, unless a secret was found.
    let out = keytool(&["scan", &format!("{root}/missing")], "");
    assert_eq!(out.status.code(), Some(2));
    let out = keytool(
        &["scan", &format!("{root}/missing"), &format!("{root}/a.txt")],
        "",
    );
    assert_eq!(out.status.code(), Some(1));

    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}
