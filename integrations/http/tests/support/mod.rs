//! What the end-to-end test and the load generator share: records on disk,
//! signing keys, and the reference server as a child process.
#![allow(dead_code)]

pub mod load;
pub mod mqtt;
pub mod rabbitmq;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use structure_access::{AccessKey, DeviceRecord, HashPolicy, Restriction, Scope};
use structure_access_tokens::SigningKey;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("structure-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A key's id and secret, and its record's line.
#[derive(Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
    pub line: String,
}

pub fn key(rng: &mut ChaCha20Rng, app: &str, scope: Scope) -> Key {
    let new =
        AccessKey::generate(rng, app.parse().unwrap(), scope, &HashPolicy::default()).unwrap();
    Key {
        id: new.record.key().to_string(),
        secret: new.secret.expose_secret().to_owned(),
        line: serde_json::to_string(&new.record).unwrap(),
    }
}

pub fn device_line(app: &str, id: &str, kind: &str) -> String {
    let device =
        DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap()).with_tag("kind", kind);
    serde_json::to_string(&device).unwrap()
}

/// `n` devices `d-0`… of `app1` (tagged `kind=truck`), each with an
/// unrestricted key of its own, written to `dir`'s `keys.jsonl` and
/// `devices.jsonl`: the load generators' records.
pub fn fleet(dir: &Path, n: usize, seed: u64) -> Vec<Key> {
    let mut rng = rng(seed);
    let keys: Vec<_> = (0..n)
        .map(|_| key(&mut rng, "app1", Scope::Unrestricted))
        .collect();
    write_lines(
        &dir.join("keys.jsonl"),
        &keys.iter().map(|k| k.line.clone()).collect::<Vec<_>>(),
    );
    write_lines(
        &dir.join("devices.jsonl"),
        &(0..n)
            .map(|i| device_line("app1", &format!("d-{i}"), "truck"))
            .collect::<Vec<_>>(),
    );
    keys
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn restricted(text: &str) -> Scope {
    text.parse::<Restriction>().unwrap().into()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    // Written whole, then renamed: the server never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn signing_key(dir: &Path, name: &str, seed: u8) -> (PathBuf, SigningKey) {
    let key = SigningKey::from_seed([seed; 32]).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, key.to_paserk()).unwrap();
    (path, key)
}

/// The reference server; killed when dropped. Its stderr is kept.
pub struct HttpServer {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HttpServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// The server's binary: Cargo's for tests; beside the examples directory
/// for the load generator (build it first, same profile).
pub fn binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_structure-http") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("structure-http")
}

/// Starts the server on a free port with `dir`'s `keys.jsonl` and
/// `devices.jsonl`, the signing key file `signing`, and `extra` arguments;
/// returns once it accepts connections.
pub fn start(dir: &Path, signing: &Path, extra: &[&str]) -> HttpServer {
    start_on(free_port(), dir, signing, extra)
}

/// [`start`] on `port`.
pub fn start_on(port: u16, dir: &Path, signing: &Path, extra: &[&str]) -> HttpServer {
    let keys = dir.join("keys.jsonl");
    let devices = dir.join("devices.jsonl");
    let mut args = vec![
        "--keys-file",
        keys.to_str().unwrap(),
        "--devices-file",
        devices.to_str().unwrap(),
        "--signing-key",
        signing.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = spawn_on(port, &args);
    wait_listening(&server, Duration::from_secs(20));
    server
}

/// The server on `port` with `args` (and nothing else but `--listen`),
/// not waited for.
pub fn spawn_on(port: u16, args: &[&str]) -> HttpServer {
    let mut child = Command::new(binary())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    HttpServer { child, port, log }
}

/// Waits until `server` accepts connections (within `limit`).
pub fn wait_listening(server: &HttpServer, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", server.port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not start: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One curl request: (status, headers, body).
pub fn curl(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-i",
        "-X",
        method,
        url,
        "-H",
        "Content-Type: application/json",
    ]);
    if let Some(token) = token {
        command
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"));
    }
    if body.is_some() {
        command.args(["--data-binary", "@-"]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl is installed (.ci/run installs it)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        if let Some(body) = body {
            stdin.write_all(body.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}
