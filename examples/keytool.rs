//! `keytool`: the operator's command line for Structure access keys.
//!
//! ```text
//! keytool parse EXPR                                          canonical form of a restriction
//! keytool can-see --restrict EXPR --device ID [--tag K=V]...  `yes` or `no`
//! keytool can-see --record FILE --application ID --device ID [--tag K=V]...
//! keytool generate --application ID [--restrict EXPR] [--description TEXT] [--verifier hmac-sha256|argon2id]
//!                                                             a new key, as one line of JSON
//! keytool verify --record FILE < secret                      `ok` if the secret opens the active key
//! keytool topic --record FILE --application ID --device ID [--tag K=V]... (publish|subscribe) TOPIC
//!                                                             `allow`, `deny` or `filter`
//! keytool scan [--max-size BYTES] [--key-ids] [PATH]...       `path:line:column: sts_AbCd… (access secret)`
//!                                                             per leaked secret; exit 1 if any
//! ```
//!
//! Results go to stdout, errors to stderr. Exit status: 0 on success, 2 when an
//! argument is invalid (as for clap's usage errors), 1 when the work itself
//! failed. `scan` exits 1 when it finds a secret, 0 when it finds none and 2 on
//! an invalid argument or an unreadable path. Run with `cargo run --example keytool --features serde -- …`.
//!
//! Each subcommand is a variant of [`Command`] and a function returning its
//! output, so a new one is a variant and a match arm in [`run`].
//!
//! Secrets: the secret read by `verify` and the JSON written by `generate` live in
//! `Zeroizing` buffers, allocated once at their final size, so that they are wiped
//! when dropped and no reallocation leaves a copy behind. (The standard streams'
//! own buffers are beyond its reach.)

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use structure_access::mqtt::TopicRules;
use structure_access::{
    AccessKey, ApplicationId, DeviceRecord, HashPolicy, KeyId, Principal, Restriction, Scope,
    Secret, VerifierError,
};
use zeroize::Zeroizing;

#[derive(Debug, Parser)]
#[command(
    name = "keytool",
    version,
    about = "Access keys of the Structure IoT platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the canonical form of a restriction
    Parse {
        /// The restriction, e.g. `vehicle=truck,color=` or `5f2b8c1e9a4d3b7c6e1f0a2b`
        expr: String,
    },
    /// Prints `yes` when a device is in a restriction's scope, or covered by a
    /// key (same application and in scope), `no` otherwise
    #[command(group(clap::ArgGroup::new("scope").required(true).args(["restrict", "record"])))]
    CanSee {
        /// The restriction (applications aside)
        #[arg(long, value_name = "EXPR")]
        restrict: Option<String>,
        /// A key record, as JSON: its application and scope
        #[arg(long, value_name = "FILE", requires = "application")]
        record: Option<std::path::PathBuf>,
        /// The device's application (with `--record`)
        #[arg(long, value_name = "ID")]
        application: Option<String>,
        /// The device's ID
        #[arg(long, value_name = "ID")]
        device: String,
        /// A tag of the device (repeatable); the value may contain `=`
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Generates a key and its secret, printed as one line of JSON
    ///
    /// Prints `{"key": …, "secret": …, "record": {…}}`. The secret is shown this
    /// once and cannot be recovered: store only the record.
    Generate {
        /// The application the key belongs to
        #[arg(long, value_name = "ID")]
        application: String,
        /// Restricts the key to these devices (default: unrestricted)
        #[arg(long, value_name = "EXPR")]
        restrict: Option<String>,
        /// A description stored with the key
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// The verifier's scheme: the fast one the policy writes for generated
        /// secrets, or Argon2id (m=19456 KiB, t=2, p=1)
        #[arg(long, value_enum, default_value_t = VerifierScheme::HmacSha256)]
        verifier: VerifierScheme,
    },
    /// Prints `ok` when the secret on the first line of stdin is right and the key
    /// active; otherwise prints the error on stderr and exits 1
    Verify {
        /// The key record, as JSON (what `generate` prints as `record`)
        #[arg(long, value_name = "FILE")]
        record: std::path::PathBuf,
    },
    /// Prints `allow`, `deny` or `filter`: may a device authenticated with the key
    /// publish to, or subscribe to, an MQTT topic
    ///
    /// Other devices are known by their ID only, as devices of the key's
    /// application: one in the key's scope through its tags alone reads as out
    /// of scope.
    Topic {
        /// The key record, as JSON (what `generate` prints as `record`)
        #[arg(long, value_name = "FILE")]
        record: std::path::PathBuf,
        /// The connecting device's application
        #[arg(long, value_name = "ID")]
        application: String,
        /// The connecting device's ID (its MQTT client id)
        #[arg(long, value_name = "ID")]
        device: String,
        /// A tag of the connecting device (repeatable); the value may contain `=`
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// What the device does
        action: Action,
        /// The topic; a topic filter for `subscribe`
        topic: String,
    },
    /// Finds leaked access secrets in files, directories or standard input:
    /// prints `path:line:column: sts_AbCd… (access secret)` for each one (never
    /// more of it) and exits 1 when it finds one, 0 otherwise
    ///
    /// Directories are walked (`.git` skipped). A symbolic link is followed only
    /// when it stays inside the tree being scanned (the directory given, or the
    /// current directory for a path given directly); one that leads out of it is
    /// skipped, saying so on stderr.
    Scan {
        /// Files or directories; standard input when none is given
        paths: Vec<std::path::PathBuf>,
        /// Skips, saying so on stderr, files larger than this
        #[arg(long, value_name = "BYTES", default_value_t = 10 * 1024 * 1024)]
        max_size: u64,
        /// Also reports key ids (`stk_…`): public identifiers, not leaks
        #[arg(long)]
        key_ids: bool,
    },
}

/// The scheme `generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum VerifierScheme {
    /// `$hmac-sha256$v=1$…`: about a microsecond to verify
    #[value(name = "hmac-sha256")]
    HmacSha256,
    /// `$argon2id$v=19$…`: tens of milliseconds to verify
    Argon2id,
}

/// The MQTT request `topic` decides.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Action {
    Publish,
    Subscribe,
}

/// Why a subcommand failed: the message for stderr and the exit status.
#[derive(Debug)]
struct Failure {
    message: String,
    status: u8,
}

impl Failure {
    /// An invalid argument: exit status 2.
    fn invalid(message: impl Display) -> Self {
        Self {
            message: message.to_string(),
            status: 2,
        }
    }

    /// The work failed: exit status 1.
    fn failed(message: impl Display) -> Self {
        Self {
            message: message.to_string(),
            status: 1,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Scan {
        paths,
        max_size,
        key_ids,
    } = cli.command
    {
        return scan::run(&paths, max_size, key_ids);
    }
    match run(cli.command) {
        Ok(output) => {
            println!("{}", output.as_str());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

/// Runs one subcommand; returns what to print on stdout (wiped once printed:
/// `generate`'s holds a secret).
fn run(command: Command) -> Result<Zeroizing<String>, Failure> {
    match command {
        Command::Parse { expr } => Ok(restriction(&expr)?.to_string().into()),
        Command::CanSee {
            restrict,
            record,
            application,
            device,
            tags,
        } => match (restrict, record, application) {
            (Some(restrict), None, _) => can_see(&restrict, &device, &tags).map(Zeroizing::new),
            (None, Some(record), Some(application)) => {
                key_can_see(&record, &application, &device, &tags).map(Zeroizing::new)
            }
            // clap's group and `requires` leave no other case.
            _ => Err(Failure::invalid(
                "expected either --restrict, or --record with --application",
            )),
        },
        Command::Generate {
            application,
            restrict,
            description,
            verifier,
        } => generate(
            &application,
            restrict.as_deref(),
            description.as_deref(),
            verifier,
        ),
        Command::Verify { record } => verify(&record).map(Zeroizing::new),
        Command::Topic {
            record,
            application,
            device,
            tags,
            action,
            topic: text,
        } => topic(&record, &application, &device, &tags, action, &text).map(Zeroizing::new),
        // Streams its output and has exit statuses of its own: see `main`.
        Command::Scan { .. } => Err(Failure::invalid("scan runs from main")),
    }
}

fn topic(
    path: &std::path::Path,
    application: &str,
    device: &str,
    tags: &[(String, String)],
    action: Action,
    text: &str,
) -> Result<String, Failure> {
    let record = read_record(path)?;
    let device = device_arg(application, device, tags)?;
    // keytool has no secret: it asks what the device could do once connected.
    let principal = Principal::reauthorize(&record, &device).map_err(|e| {
        Failure::failed(format_args!(
            "device `{}` cannot connect: {}",
            device.device_id(),
            with_causes(&e)
        ))
    })?;
    let known = |other: &str| (other == device.device_id().as_str()).then_some(&device);
    // Other devices are known by their ID only: take them as the key's
    // application's (the record is the only application keytool knows).
    let rules = TopicRules::default().with_single_application(*record.application());
    let decision = match action {
        Action::Publish => principal.may_publish(&rules, text, &known),
        Action::Subscribe => principal.may_subscribe(&rules, text, &known),
    }
    .map_err(Failure::invalid)?;
    Ok(decision.to_string())
}

fn verify(path: &std::path::Path) -> Result<String, Failure> {
    let record = read_record(path)?;
    // Room for any secret and its line ending: reading never reallocates (and
    // leaves no copy behind) unless the line is far longer than a secret.
    let mut line = Zeroizing::new(String::with_capacity(4 * structure_access::MAX_SECRET_LEN));
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::failed(format_args!("cannot read the secret from stdin: {e}")))?;
    // The line is not echoed anywhere: errors below never quote it.
    let secret = Secret::parse_any(line.trim_end_matches(['\r', '\n'])).map_err(Failure::failed)?;
    let policy = HashPolicy::default();
    match record.verifier().verify(&secret, &policy) {
        Ok(()) if record.status().is_active() => Ok("ok".to_owned()),
        Ok(()) => Err(Failure::failed(format_args!(
            "access key `{}` is inactive",
            record.key()
        ))),
        Err(VerifierError::Mismatch) => Err(Failure::failed(format_args!(
            "wrong secret for access key `{}`",
            record.key()
        ))),
        Err(e) => Err(Failure::failed(e)),
    }
}

fn can_see(restrict: &str, device: &str, tags: &[(String, String)]) -> Result<String, Failure> {
    let restriction = restriction(restrict)?;
    // A restriction is application-free: any application will do.
    let device = device_arg("any", device, tags)?;
    Ok(yes_no(restriction.can_see(&device)))
}

fn key_can_see(
    path: &std::path::Path,
    application: &str,
    device: &str,
    tags: &[(String, String)],
) -> Result<String, Failure> {
    let record = read_record(path)?;
    let device = device_arg(application, device, tags)?;
    Ok(yes_no(record.can_see(&device)))
}

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_owned()
}

fn generate(
    application: &str,
    restrict: Option<&str>,
    description: Option<&str>,
    verifier: VerifierScheme,
) -> Result<Zeroizing<String>, Failure> {
    let application = application_arg(application)?;
    let scope = Scope::from(restrict.map(restriction).transpose()?);
    let policy = HashPolicy::default().argon2id_for_generated(verifier == VerifierScheme::Argon2id);
    let new = AccessKey::generate_os(application, scope, &policy).map_err(Failure::failed)?;
    let record = match description {
        Some(text) => new
            .record
            .with_description(text)
            .map_err(Failure::invalid)?,
        None => new.record,
    };
    let output = Generated {
        key: record.key(),
        secret: new.secret.expose_secret(),
        record: &record,
    };
    // Measured first, then written into a buffer of exactly that size, which is
    // wiped on drop: a growing buffer would leave copies of the secret behind.
    let mut size = ByteCount(0);
    serde_json::to_writer(&mut size, &output).map_err(Failure::failed)?;
    let mut json = Zeroizing::new(Vec::with_capacity(size.0));
    serde_json::to_writer(&mut *json, &output).map_err(Failure::failed)?;
    let json = String::from_utf8(std::mem::take(&mut *json)).map_err(Failure::failed)?;
    Ok(Zeroizing::new(json))
}

/// A writer that only counts the bytes written to it.
struct ByteCount(usize);

impl Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The output of `generate`, fields in this order.
#[derive(serde::Serialize)]
struct Generated<'a> {
    key: &'a KeyId,
    secret: &'a str,
    record: &'a AccessKey,
}

/// A key record read from a JSON file.
fn read_record(path: &std::path::Path) -> Result<AccessKey, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::failed(format_args!("cannot read `{}`: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::failed(format_args!("`{}`: {e}", path.display())))
}

/// The application of `--application ID`.
fn application_arg(application: &str) -> Result<ApplicationId, Failure> {
    application
        .parse()
        .map_err(|e| Failure::invalid(format_args!("--application: {e}")))
}

/// The device of `--application ID --device ID [--tag K=V]...`.
fn device_arg(
    application: &str,
    device: &str,
    tags: &[(String, String)],
) -> Result<DeviceRecord, Failure> {
    let application = application_arg(application)?;
    let id = device
        .parse()
        .map_err(|e| Failure::invalid(format_args!("--device: {e}")))?;
    Ok(tags
        .iter()
        .fold(DeviceRecord::new(application, id), |d, (k, v)| {
            d.with_tag(k, v)
        }))
}

/// Parses a restriction; a failure quotes the text and points at the error.
fn restriction(expr: &str) -> Result<Restriction, Failure> {
    expr.parse()
        .map_err(|e: structure_access::RestrictionError| {
            match e.offset().and_then(|offset| pointer(expr, offset)) {
                Some(pointer) => Failure::invalid(format_args!("{e}\n{pointer}")),
                None => Failure::invalid(e),
            }
        })
}

/// `expr` with a caret under byte `offset`, when `expr` is one short printable
/// line.
fn pointer(expr: &str, offset: usize) -> Option<String> {
    if expr.trim().is_empty() || expr.chars().count() > 120 || expr.chars().any(char::is_control) {
        return None;
    }
    let column = expr.get(..offset)?.chars().count();
    Some(format!("  {expr}\n  {}^", " ".repeat(column)))
}

/// An error and its causes, `: ` between them (each one says its cause once).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// `KEY=VALUE`, split at the first `=`.
fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, found `{text}`")),
    }
}

/// `keytool scan`: the walk, the size limit, the symbolic links and the report.
mod scan {
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use structure_access::Scanner;
    use zeroize::Zeroizing;

    /// What a scan found, and how it went.
    struct Scan {
        scanner: Scanner,
        max_size: u64,
        found: bool,
        errors: bool,
    }

    pub(super) fn run(paths: &[PathBuf], max_size: u64, key_ids: bool) -> ExitCode {
        let mut scan = Scan {
            scanner: Scanner::new().with_key_ids(key_ids),
            max_size,
            found: false,
            errors: false,
        };
        if paths.is_empty() {
            match read_bounded(std::io::stdin().lock(), max_size) {
                Ok(Some(bytes)) => scan.report("<stdin>", &bytes),
                Ok(None) => scan.skip("<stdin>", &format!("larger than --max-size {max_size}")),
                Err(e) => scan.error("<stdin>", &e),
            }
        }
        for path in paths {
            scan.argument(path);
        }
        match (scan.found, scan.errors) {
            (true, _) => ExitCode::from(1),
            (false, true) => ExitCode::from(2),
            (false, false) => ExitCode::SUCCESS,
        }
    }

    impl Scan {
        /// A path given on the command line.
        fn argument(&mut self, path: &Path) {
            let metadata = match std::fs::symlink_metadata(path) {
                Ok(metadata) => metadata,
                Err(e) => return self.error(&path.display().to_string(), &e),
            };
            if metadata.is_symlink() {
                // Given directly: the tree is the current directory.
                let inside = std::env::current_dir()
                    .and_then(|cwd| cwd.canonicalize())
                    .ok()
                    .and_then(|cwd| Some(path.canonicalize().ok()?.starts_with(cwd)));
                if inside != Some(true) {
                    return self.skip(
                        &path.display().to_string(),
                        "symbolic link out of the scanned tree",
                    );
                }
            }
            match std::fs::metadata(path) {
                Ok(metadata) if metadata.is_dir() => match path.canonicalize() {
                    Ok(root) => self.walk(&root, path),
                    Err(e) => self.error(&path.display().to_string(), &e),
                },
                Ok(_) => self.file(path),
                Err(e) => self.error(&path.display().to_string(), &e),
            }
        }

        /// A directory under `root` (canonical), in name order.
        fn walk(&mut self, root: &Path, dir: &Path) {
            let mut entries = match std::fs::read_dir(dir)
                .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
            {
                Ok(entries) => entries,
                Err(e) => return self.error(&dir.display().to_string(), &e),
            };
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let path = entry.path();
                let shown = path.display().to_string();
                match entry.file_type() {
                    Err(e) => self.error(&shown, &e),
                    Ok(kind) if kind.is_symlink() => {
                        // Inside the tree, its target is scanned where it is.
                        match path.canonicalize() {
                            Ok(target) if target.starts_with(root) => {}
                            _ => self.skip(&shown, "symbolic link out of the scanned tree"),
                        }
                    }
                    Ok(kind) if kind.is_dir() => {
                        if entry.file_name() != ".git" {
                            self.walk(root, &path);
                        }
                    }
                    Ok(kind) if kind.is_file() => self.file(&path),
                    Ok(_) => self.skip(&shown, "not a regular file"),
                }
            }
        }

        fn file(&mut self, path: &Path) {
            let shown = path.display().to_string();
            let read = std::fs::File::open(path).and_then(|file| {
                let len = file.metadata()?.len();
                if len > self.max_size {
                    return Ok(None);
                }
                read_bounded(file, self.max_size)
            });
            match read {
                Ok(Some(bytes)) => self.report(&shown, &bytes),
                Ok(None) => {
                    let message = format!("larger than --max-size {}", self.max_size);
                    self.skip(&shown, &message);
                }
                Err(e) => self.error(&shown, &e),
            }
        }

        /// Prints `path:line:column: finding` for each finding.
        fn report(&mut self, shown: &str, bytes: &[u8]) {
            let mut out = std::io::stdout().lock();
            let (mut line, mut line_start, mut counted) = (1, 0, 0);
            for finding in self.scanner.scan(bytes) {
                let offset = finding.offset();
                for newline in
                    memchr::memchr_iter(b'\n', bytes.get(counted..offset).unwrap_or_default())
                {
                    line += 1;
                    line_start = counted + newline + 1;
                }
                counted = offset;
                let column = offset - line_start + 1;
                self.found |= finding.is_secret();
                // A closed stdout (`| head`) ends the report, not the scan's verdict.
                let _ = writeln!(out, "{shown}:{line}:{column}: {finding}");
            }
        }

        fn skip(&mut self, shown: &str, why: &str) {
            eprintln!("keytool scan: skipped {shown}: {why}");
        }

        fn error(&mut self, shown: &str, error: &std::io::Error) {
            eprintln!("keytool scan: cannot read {shown}: {error}");
            self.errors = true;
        }
    }

    /// Everything `reader` holds, or `None` if it is longer than `max` bytes.
    /// The text may hold secrets: it lives in buffers wiped when dropped, and a
    /// full one is copied into a larger one (the old one wiped), never
    /// reallocated in place.
    fn read_bounded(reader: impl Read, max: u64) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
        let mut reader = reader.take(max.saturating_add(1));
        let mut bytes = Zeroizing::new(Vec::with_capacity(64 * 1024));
        let mut chunk = Zeroizing::new([0u8; 16 * 1024]);
        loop {
            let n = match reader.read(&mut chunk[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if bytes.len() + n > bytes.capacity() {
                let mut larger = Zeroizing::new(Vec::with_capacity(2 * (bytes.len() + n)));
                larger.extend_from_slice(&bytes);
                bytes = larger;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        Ok((bytes.len() as u64 <= max).then_some(bytes))
    }
}
