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
fn keytool_generates_keys_that_expire_and_verify_refuses_them_after() {
    let before = structure_access::UnixTime::now();
    let out = keytool_args(&["generate", "--application", "app1", "--expires-in", "90d"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let generated: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let at: structure_access::UnixTime = generated["record"]["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let after = structure_access::UnixTime::now();
    // The keytool may have been built by this very call: the expiry is 90 days
    // after a moment between `before` and `after`, whatever that took.
    let ninety_days = 90 * 86_400;
    assert!(
        before.secs_until(at) >= ninety_days && after.secs_until(at) <= ninety_days,
        "{generated}"
    );

    let out = keytool_args(&[
        "generate",
        "--application",
        "app1",
        "--expires-at",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let expired: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(expired["record"]["expiresAt"], "2020-01-01T00:00:00Z");
    let dir = scratch("expiry");
    let record = dir.join("expired.json");
    std::fs::write(&record, expired["record"].to_string()).unwrap();
    let out = keytool(
        &["verify", "--record", record.to_str().unwrap()],
        &format!("{}\n", expired["secret"].as_str().unwrap()),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has expired"),
        "{out:?}"
    );

    for bad in [
        &["--expires-at", "2027-03-01T12:00:00+01:00"][..],
        &["--expires-in", "soon"][..],
        &["--expires-in", "1d", "--expires-at", "2027-03-01T12:00:00Z"][..],
    ] {
        let mut args = vec!["generate", "--application", "app1"];
        args.extend_from_slice(bad);
        let out = keytool_args(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--expires"),
            "{bad:?}: {out:?}"
        );
    }
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

    // Too large for --max-size: skipped, saying so, and the gate fails...
    let padded = format!("{}\n{secret}\n", "x".repeat(100));
    let out = keytool(&["scan", "--max-size", "20"], &padded);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("skipped <stdin>: larger than --max-size 20"),
        "{out:?}"
    );
    // ...unless the caller says skipping is fine.
    let out = keytool(&["scan", "--max-size", "20", "--allow-skipped"], &padded);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
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
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(2), ""));
    let out = keytool(
        &["scan", "--allow-skipped", &format!("{root}/out-link")],
        "",
    );
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

#[test]
fn scan_reads_large_files_whole_and_decodes_base64_and_utf16() {
    let secret = new_secret();
    let shown = &secret[..8];
    let dir = scratch("scan-large");
    // Padded past the old 10 MiB limit: the secret at the end is found, in
    // bounded memory (windows of 1 MiB).
    let line = "0123456789abcdef ".repeat(6);
    let lines = 12 * 1024 * 1024 / (line.len() + 1);
    let mut padded = format!("{line}\n").repeat(lines);
    padded.push_str(&format!("  password: {secret}\n"));
    std::fs::write(dir.join("padded.txt"), &padded).unwrap();
    // A Kubernetes Secret, a Basic header, a UTF-16 file (columns count
    // bytes: the line break's zero byte, then 4 characters of 2 bytes).
    let b64 = |text: &str| {
        use base64ct::{Base64, Encoding as _};
        Base64::encode_string(text.as_bytes())
    };
    std::fs::write(
        dir.join("secret.yaml"),
        format!("kind: Secret\ndata:\n  password: {}\n", b64(&secret)),
    )
    .unwrap();
    std::fs::write(
        dir.join("request.http"),
        format!(
            "GET / HTTP/1.1\r\nAuthorization: Basic {}\r\n",
            b64(&format!("stk_4DmVJcy3ZpW0gNqk8TbX2a:{secret}"))
        ),
    )
    .unwrap();
    let mut utf16 = vec![0xff, 0xfe];
    for unit in format!("a\r\nb = {secret}\r\n").encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    std::fs::write(dir.join("windows.ini"), utf16).unwrap();

    let root = dir.display().to_string();
    let out = keytool(&["scan", &root], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!(
            "{root}/padded.txt:{}:13: {shown}… (access secret)\n\
             {root}/request.http:2:22: {shown}… (access secret, base64)\n\
             {root}/secret.yaml:3:13: {shown}… (access secret, base64)\n\
             {root}/windows.ini:2:10: {shown}… (access secret, utf-16le)",
            lines + 1
        )
    );
    assert_never_shows(&out, &secret);
    // An explicit size limit skips it, and says so with the exit status.
    let out = keytool(
        &[
            "scan",
            "--max-size",
            "1000000",
            &format!("{root}/padded.txt"),
        ],
        "",
    );
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(2), ""),
        "{out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than --max-size 1000000"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README's pre-commit hook, installed in a real repository: a secret
/// staged and then removed from the working copy still fails the commit.
#[test]
fn the_readme_pre_commit_hook_scans_what_is_staged() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("skipped: no git");
        return;
    }
    let readme = include_str!("../README.md");
    let hook = readme
        .split("```sh\n")
        .find(|block| block.starts_with("#!/bin/sh\n") && block.contains("--git-staged"))
        .and_then(|block| block.split("```").next())
        .expect("the README's pre-commit hook");
    let secret = new_secret();
    let dir = scratch("hook");
    let repo = dir.join("repo");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    // `keytool` on the PATH: this crate's, through cargo.
    let wrapper = bin.join("keytool");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec \"{}\" run -q --manifest-path \"{}/Cargo.toml\" --example keytool --features serde -- \"$@\"\n",
            env!("CARGO"),
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
            .args(args)
            .current_dir(&repo)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    assert!(git(&["init", "-q"]).status.success());
    let hook_path = repo.join(".git/hooks/pre-commit");
    std::fs::write(&hook_path, hook).unwrap();
    for file in [&wrapper, &hook_path] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(repo.join("config.env"), format!("MQTT_PASSWORD={secret}\n")).unwrap();
    assert!(git(&["add", "config.env"]).status.success());
    // The working copy no longer holds it; the index does.
    std::fs::write(repo.join("config.env"), "MQTT_PASSWORD=${FROM_VAULT}\n").unwrap();
    let commit = git(&["commit", "-q", "-m", "leak"]);
    assert!(!commit.status.success(), "{commit:?}");
    // git shows a hook's output on its stderr.
    let said = String::from_utf8_lossy(&commit.stderr);
    assert!(
        said.contains(&format!("config.env:1:15: {}…", &secret[..8])),
        "{commit:?}"
    );
    assert_never_shows(&commit, &secret);
    // Staging the clean version lets it through; the secret never landed.
    assert!(git(&["add", "config.env"]).status.success());
    let commit = git(&["commit", "-q", "-m", "clean"]);
    assert!(commit.status.success(), "{commit:?}");
    let log = git(&["log", "-p"]);
    assert!(!String::from_utf8_lossy(&log.stdout).contains(&secret[4..20]));
    // And the other way round: a secret only in the working copy is not the
    // commit's business.
    std::fs::write(repo.join("notes.txt"), "nothing\n").unwrap();
    assert!(git(&["add", "notes.txt"]).status.success());
    std::fs::write(repo.join("notes.txt"), format!("{secret}\n")).unwrap();
    let commit = git(&["commit", "-q", "-m", "notes"]);
    assert!(commit.status.success(), "{commit:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
