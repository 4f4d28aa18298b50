//! What the database suite and its load generator share: the Mosquitto
//! plugin and `structure-keys` built from the core's workspace, the command
//! line run against a [`Postgres`], and a `mosquitto` with the plugin
//! following the database (included by path, beside `mod support` and
//! `mod pg`).
#![allow(dead_code)] // each user takes its part

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::pg::{self, Postgres};
use crate::support::{Key, WorkDir, free_port};

/// How long anything the suite waits for may take before it fails (the
/// times themselves are printed, and measured by the load generator).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The application the suite's keys and devices belong to.
pub const APP: &str = crate::support::APP_A;

pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn available() -> bool {
    if !pg::available() {
        return false;
    }
    if have("mosquitto") && have("mosquitto_pub") && have("mosquitto_sub") {
        return true;
    }
    assert!(
        std::env::var_os("STRUCTURE_E2E_REQUIRED").is_none(),
        "mosquitto, mosquitto_pub and mosquitto_sub are required"
    );
    eprintln!("skipped: install mosquitto and mosquitto-clients to run this test");
    false
}

/// The Mosquitto plugin and `structure-keys`, built (once per run) in the
/// core's workspace with this suite's profile.
pub fn built() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let manifest = repo.join("Cargo.toml");
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        for args in [
            &["--lib", "-p", "structure-access-mosquitto"][..],
            &[
                "-p",
                "structure-access-common",
                "--features",
                "postgres",
                "--bin",
                "structure-keys",
            ],
        ] {
            let mut cargo = Command::new(env!("CARGO"));
            cargo.arg("build").arg("--manifest-path").arg(&manifest);
            cargo.args(args);
            if profile == "release" {
                cargo.arg("--release");
            }
            assert!(cargo.status().unwrap().success(), "cargo build {args:?}");
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| repo.join("target"), PathBuf::from)
            .join(profile);
        (
            target.join("libstructure_access_mosquitto.so"),
            target.join("structure-keys"),
        )
    })
}

/// `structure-keys` against `pg`: its output, which must be a success.
pub fn cli(pg: &Postgres, args: &[&str]) -> String {
    let out = Command::new(&built().1)
        .env("STRUCTURE_DATABASE_URL", pg.url())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "structure-keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `key create`: the key and its secret, as printed once.
pub fn create_key(pg: &Postgres, restrict: Option<&str>) -> Key {
    let mut args = vec!["key", "create", "--application", APP];
    if let Some(restrict) = restrict {
        args.extend(["--restrict", restrict]);
    }
    let out = cli(pg, &args);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{name}` in {out}"))
    };
    Key {
        id: field("key:"),
        secret: field("secret:"),
    }
}

/// A Mosquitto with the plugin; killed when dropped.
pub struct Mosquitto {
    pub child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: WorkDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// Starts it over the database (the URL in a file, as an operator who
    /// keeps the password out of `mosquitto.conf` would), with `files` (the
    /// keys and devices files' text) if given; `wait`: until it listens.
    pub fn start(name: &str, pg: &Postgres, files: Option<(&str, &str)>, wait: bool) -> Self {
        let dir = WorkDir::new(&format!("mosquitto-{name}"));
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plugin = dir.0.join("plugin.so");
        std::fs::copy(&built().0, &plugin).unwrap();
        dir.write("database-url", &format!("{}\n", pg.url()));
        let mut conf = format!(
            "listener {{port}} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
             plugin_opt_database_url_file {}\nlog_dest stderr\nlog_type all\npersistence false\n",
            plugin.display(),
            dir.0.join("database-url").display()
        );
        if let Some((keys, devices)) = files {
            dir.write("keys.jsonl", keys);
            dir.write("devices.jsonl", devices);
            conf += &format!(
                "plugin_opt_keys_file {}\nplugin_opt_devices_file {}\n",
                dir.0.join("keys.jsonl").display(),
                dir.0.join("devices.jsonl").display()
            );
        }
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            conf.insert_str(0, "user root\n");
        }
        let port = free_port();
        dir.write("mosquitto.conf", &conf.replace("{port}", &port.to_string()));
        let log = dir.0.join("mosquitto.log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(dir.0.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut broker = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        if wait {
            broker.wait_until_listening();
        }
        broker
    }

    pub fn listening(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    pub fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.listening() {
            assert!(
                Instant::now() < deadline && self.child.try_wait().unwrap().is_none(),
                "mosquitto did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
