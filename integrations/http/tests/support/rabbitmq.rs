//! A two-node RabbitMQ cluster of the test's own (`tests/rabbitmq/cluster.sh`:
//! the package's scripts run as root, loopback only, a private epmd), asking
//! the auth service at a given URL; stopped when dropped, pass or fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{HttpServer, free_port, signing_key, start_on};

/// The cluster script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rabbitmq/cluster.sh")
}

/// Whether RabbitMQ's package is installed (its own scripts, which run as
/// root).
pub fn installed() -> bool {
    std::fs::read_dir("/usr/lib/rabbitmq/lib").is_ok_and(|mut entries| {
        entries.any(|e| {
            e.is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("rabbitmq_server-")
                    && e.path().join("sbin/rabbitmq-server").exists()
            })
        })
    })
}

/// Whether a missing RabbitMQ fails the suite (CI) rather than skipping it.
pub fn required() -> bool {
    std::env::var_os("STRUCTURE_E2E_REQUIRED").is_some_and(|v| v == "1")
}

/// A running cluster.
pub struct Cluster {
    dir: PathBuf,
    ports: HashMap<String, String>,
}

impl Cluster {
    /// Starts two nodes in `dir` whose HTTP auth backend is `auth_base`
    /// (`…/user`, `…/vhost`, `…/resource`, `…/topic`), and joins them.
    pub fn start(dir: &Path, auth_base: &str) -> Self {
        let started = Instant::now();
        let out = Command::new("sh")
            .arg(script())
            .arg("start")
            .arg(dir)
            .arg(auth_base)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("sh runs the cluster script");
        let text = String::from_utf8_lossy(&out.stdout);
        let ports = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        // Dropped (stopped) even when the start failed half-way.
        let cluster = Self {
            dir: dir.to_owned(),
            ports,
        };
        assert!(
            out.status.success(),
            "the cluster did not start ({}); logs under {}",
            out.status,
            dir.display()
        );
        eprintln!(
            "two-node RabbitMQ cluster started and joined in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    fn port(&self, name: &str) -> u16 {
        self.ports[name].parse().unwrap()
    }

    /// Node `n`'s (1 or 2) MQTT port.
    pub fn mqtt(&self, n: u8) -> u16 {
        self.port(&format!("MQTT{n}"))
    }

    /// Node `n`'s management API.
    pub fn management(&self, n: u8) -> String {
        format!("http://127.0.0.1:{}", self.port(&format!("MGMT{n}")))
    }

    /// `user:password` of the management user (an internal user tagged
    /// `administrator`, with no access to any virtual host).
    pub fn admin(&self) -> String {
        format!("{}:{}", self.ports["ADMIN_USER"], self.ports["ADMIN_PASS"])
    }

    /// `rabbitmqctl` against node `n`.
    pub fn ctl(&self, n: u8, args: &[&str]) -> String {
        let out = Command::new("sh")
            .arg(script())
            .arg("ctl")
            .arg(&self.dir)
            .arg(n.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A cluster asking structure-http, and the service itself (its records in
/// `dir`'s files): `--rabbitmq`, the management API of both nodes, the
/// audit trail in `dir/audit.jsonl`, and `extra` arguments.
pub fn cluster_with_service(dir: &Path, extra: &[&str]) -> (Cluster, HttpServer) {
    let (signing, _) = signing_key(dir, "signing.key", 3);
    let port = free_port();
    let cluster = Cluster::start(
        &dir.join("cluster"),
        &format!("http://127.0.0.1:{port}/rabbitmq"),
    );
    let credentials = dir.join("management");
    std::fs::write(&credentials, cluster.admin()).unwrap();
    let audit = dir.join("audit.jsonl");
    let (m1, m2) = (cluster.management(1), cluster.management(2));
    let mut args = vec![
        "--rabbitmq",
        "--rabbitmq-management",
        &m1,
        "--rabbitmq-management",
        &m2,
        "--rabbitmq-management-credentials",
        credentials.to_str().unwrap(),
        "--audit-file",
        audit.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = start_on(port, dir, &signing, &args);
    (cluster, server)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .status();
    }
}
