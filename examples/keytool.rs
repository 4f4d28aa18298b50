//! `keytool`: the operator's command line for Structure access keys.
//!
//! ```text
//! keytool parse EXPR                                          canonical form of a restriction
//! keytool can-see --restrict EXPR --device ID [--tag K=V]...  `yes` or `no`
//! keytool can-see --record FILE --application ID --device ID [--tag K=V]...
//! keytool generate --application ID [--restrict EXPR] [--description TEXT] [--verifier hmac-sha256|argon2id]
//!                  [--expires-in DURATION | --expires-at TIME]  a new key, as one line of JSON
//! keytool verify --record FILE < secret                      `ok` if the secret opens the active, unexpired key
//! keytool topic --record FILE --application ID --device ID [--tag K=V]... (publish|subscribe) TOPIC
//!                                                             `allow`, `deny` or `filter`
//! keytool scan [--max-size BYTES] [--allow-skipped] [--key-ids] [--git-staged] [PATH]...
//!                                                             `path:line:column: sts_AbCd… (access secret)`
//!                                                             per leaked secret; exit 1 if any
//! ```
//!
//! Results go to stdout, errors to stderr. Exit status: 0 on success, 2 when an
//! argument is invalid (as for clap's usage errors), 1 when the work itself
//! failed. `scan` exits 1 when it finds a secret; otherwise 2 on an invalid
//! argument, an unreadable path or a skipped file (unless `--allow-skipped`),
//! and 0. Run with `cargo run --example keytool --features serde -- …`.
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
    Secret, UnixTime, VerifierError,
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
        /// The key expires this long from now (`90d`, `12h`, `1w 2d`)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// The key expires at this time (RFC 3339 UTC, `2027-03-01T12:00:00Z`)
        #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
        expires_at: Option<UnixTime>,
    },
    /// Prints `ok` when the secret on the first line of stdin is right and the key
    /// active and not expired; otherwise prints the error on stderr and exits 1
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
    /// Finds leaked access secrets in files, directories, standard input or
    /// the files staged for a commit: prints `path:line:column: sts_AbCd…
    /// (access secret)` for each one (never more of it) and exits 1 when it
    /// finds one
    ///
    /// Secrets are found as they are, in base64 (a Kubernetes Secret, an HTTP
    /// Basic header; the position is where the base64 run starts) and in
    /// UTF-16. Files of any size are read in windows of 1 MiB. Directories are
    /// walked (`.git` skipped). A symbolic link is followed only when it stays
    /// inside the tree being scanned (the directory given, or the current
    /// directory for a path given directly). A file that is not scanned (larger
    /// than `--max-size`, a link out of the tree, not a regular file) is named
    /// on stderr and makes the exit status 2, unless `--allow-skipped`.
    Scan {
        /// Files or directories; standard input when none is given
        paths: Vec<std::path::PathBuf>,
        /// Scans the files staged for the next commit, as staged (`git diff
        /// --cached`), not as they are in the working tree: a pre-commit hook
        #[arg(long, conflicts_with = "paths")]
        git_staged: bool,
        /// Skips, saying so on stderr, files larger than this (default: none)
        #[arg(long, value_name = "BYTES")]
        max_size: Option<u64>,
        /// Exits 0 rather than 2 when files were skipped and no secret found
        #[arg(long)]
        allow_skipped: bool,
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
        git_staged,
        max_size,
        allow_skipped,
        key_ids,
    } = cli.command
    {
        let options = scan::Options {
            max_size,
            allow_skipped,
            key_ids,
        };
        return if git_staged {
            scan::git_staged(&options)
        } else {
            scan::run(&paths, &options)
        };
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
            expires_in,
            expires_at,
        } => {
            let expires_at = match (expires_in, expires_at) {
                (Some(within), _) => Some(
                    UnixTime::now()
                        .plus_secs(within.as_secs())
                        .ok_or_else(|| Failure::invalid("--expires-in: past the year 9999"))?,
                ),
                (None, at) => at,
            };
            generate(
                &application,
                restrict.as_deref(),
                description.as_deref(),
                verifier,
                expires_at,
            )
        }
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
    let principal = Principal::reauthorize(&record, &device, structure_access::UnixTime::now())
        .map_err(|e| {
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
        Ok(()) if !record.status().is_active() => Err(Failure::failed(format_args!(
            "access key `{}` is inactive",
            record.key()
        ))),
        Ok(()) if record.is_expired_at(UnixTime::now()) => Err(Failure::failed(format_args!(
            "access key `{}` has expired",
            record.key()
        ))),
        Ok(()) => Ok("ok".to_owned()),
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
    expires_at: Option<UnixTime>,
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
    }
    .with_expiry(expires_at);
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

/// `keytool scan`: the walk, the staged files, the size limit, the symbolic
/// links and the report.
mod scan {
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Command, ExitCode, Stdio};

    use structure_access::{DEFAULT_SCAN_WINDOW, Scanner};

    /// The options of `keytool scan`.
    pub(super) struct Options {
        pub(super) max_size: Option<u64>,
        pub(super) allow_skipped: bool,
        pub(super) key_ids: bool,
    }

    /// What a scan found, and how it went.
    struct Scan {
        scanner: Scanner,
        max_size: Option<u64>,
        found: bool,
        errors: bool,
        skipped: bool,
    }

    impl Scan {
        fn new(options: &Options) -> Self {
            Self {
                scanner: Scanner::new().with_key_ids(options.key_ids),
                max_size: options.max_size,
                found: false,
                errors: false,
                skipped: false,
            }
        }

        fn status(&self, options: &Options) -> ExitCode {
            if self.found {
                ExitCode::from(1)
            } else if self.errors || (self.skipped && !options.allow_skipped) {
                if self.skipped && !options.allow_skipped {
                    eprintln!(
                        "keytool scan: some files were not scanned (see above); --allow-skipped accepts that"
                    );
                }
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
    }

    pub(super) fn run(paths: &[PathBuf], options: &Options) -> ExitCode {
        let mut scan = Scan::new(options);
        if paths.is_empty() {
            scan.stream("<stdin>", std::io::stdin().lock());
        }
        for path in paths {
            scan.argument(path);
        }
        scan.status(options)
    }

    /// The files staged for the next commit, read from the index (`git
    /// cat-file`), not from the working tree: what the commit will hold.
    pub(super) fn git_staged(options: &Options) -> ExitCode {
        let mut scan = Scan::new(options);
        let staged = git(&[
            "diff",
            "--cached",
            "--raw",
            "-z",
            "--no-renames",
            "--diff-filter=ACMRT",
        ]);
        let staged = match staged {
            Ok(staged) => staged,
            Err(e) => {
                eprintln!("keytool scan: cannot list the staged files: {e}");
                return ExitCode::from(2);
            }
        };
        // `:old-mode new-mode old-blob new-blob status` NUL `path` NUL, per file.
        let mut fields = staged.split(|&b| b == 0);
        while let (Some(meta), Some(path)) = (fields.next(), fields.next()) {
            let meta = String::from_utf8_lossy(meta);
            let path = String::from_utf8_lossy(path);
            let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
            let (Some(mode), Some(blob)) = (parts.get(1), parts.get(3)) else {
                continue;
            };
            if *mode == "160000" {
                // A submodule: its commit, not a file of this repository.
                continue;
            }
            scan.blob(&path, blob);
        }
        scan.status(options)
    }

    /// Counts the lines of a window's bytes, each byte once.
    struct Lines<'a> {
        bytes: &'a [u8],
        /// The window's offset in the text.
        start: u64,
        /// Bytes of the window counted so far.
        counted: usize,
        /// The line of byte `counted`, from 1, and where that line starts.
        line: u64,
        line_start: u64,
    }

    impl Lines<'_> {
        fn count_to(&mut self, to: usize) {
            let part = self.bytes.get(self.counted..to).unwrap_or_default();
            self.line += part.iter().filter(|&&b| b == b'\n').count() as u64;
            if let Some(last) = memchr::memrchr(b'\n', part) {
                self.line_start = self.start + (self.counted + last + 1) as u64;
            }
            self.counted = to.max(self.counted);
        }
    }

    /// Runs git in the current directory; its standard output.
    fn git(args: &[&str]) -> std::io::Result<Vec<u8>> {
        let out = Command::new("git")
            .args(args)
            .stderr(Stdio::inherit())
            .output()?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(std::io::Error::other(format!(
                "`git {}` failed ({})",
                args.join(" "),
                out.status
            )))
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
            let file =
                std::fs::File::open(path).and_then(|file| Ok((file.metadata()?.len(), file)));
            match file {
                Ok((len, _)) if self.max_size.is_some_and(|max| len > max) => {
                    let message = format!("larger than --max-size {}", self.max_size.unwrap_or(0));
                    self.skip(&shown, &message);
                }
                Ok((_, file)) => self.stream(&shown, file),
                Err(e) => self.error(&shown, &e),
            }
        }

        /// A staged blob, streamed from `git cat-file`.
        fn blob(&mut self, shown: &str, blob: &str) {
            let child = Command::new("git")
                .args(["cat-file", "blob", blob])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn();
            let mut child = match child {
                Ok(child) => child,
                Err(e) => return self.error(shown, &e),
            };
            if let Some(stdout) = child.stdout.take() {
                self.stream(shown, stdout);
            }
            match child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => self.error(
                    shown,
                    &std::io::Error::other(format!("git cat-file {status}")),
                ),
                Err(e) => self.error(shown, &e),
            }
        }

        /// Scans `reader` window by window, printing `path:line:column:
        /// finding` for each finding (the line and column of where it is
        /// written: a base64 run's start).
        fn stream(&mut self, shown: &str, mut reader: impl Read) {
            let mut out = std::io::stdout().lock();
            let (mut line, mut line_start, mut total) = (1u64, 0u64, 0u64);
            let max = self.max_size;
            let scanner = self.scanner.clone();
            let mut found = false;
            let mut too_large = false;
            let read = |buffer: &mut [u8]| loop {
                // At most `max` bytes and one more, to tell that it is larger.
                let room = max.map_or(u64::MAX, |max| (max + 1).saturating_sub(total));
                if room == 0 {
                    too_large = true;
                    return Ok(0);
                }
                let n = buffer
                    .len()
                    .min(usize::try_from(room).unwrap_or(usize::MAX));
                match reader.read(&mut buffer[..n]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(n) => {
                        total += n as u64;
                        return Ok(n);
                    }
                    Err(e) => return Err(e),
                }
            };
            let result = scanner.scan_stream(DEFAULT_SCAN_WINDOW, read, |window| {
                let bytes = window.bytes();
                let owned = window.owned();
                let mut lines = Lines {
                    bytes,
                    start: window.start(),
                    counted: owned.start,
                    line,
                    line_start,
                };
                for finding in window.findings() {
                    lines.count_to(finding.range().start);
                    // A base64 run holds no line break: its start is on this line.
                    let column = window
                        .text_offset(&finding)
                        .saturating_sub(lines.line_start)
                        + 1;
                    found |= finding.is_secret();
                    // A closed stdout (`| head`) ends the report, not the scan's verdict.
                    let _ = writeln!(out, "{shown}:{}:{column}: {finding}", lines.line);
                }
                lines.count_to(owned.end);
                (line, line_start) = (lines.line, lines.line_start);
            });
            self.found |= found;
            match result {
                Err(e) => self.error(shown, &e),
                Ok(()) if too_large => {
                    let message = format!(
                        "larger than --max-size {}, scanned only that many bytes of it",
                        max.unwrap_or(0)
                    );
                    self.skip(shown, &message);
                }
                Ok(()) => {}
            }
        }

        fn skip(&mut self, shown: &str, why: &str) {
            eprintln!("keytool scan: skipped {shown}: {why}");
            self.skipped = true;
        }

        fn error(&mut self, shown: &str, error: &std::io::Error) {
            eprintln!("keytool scan: cannot read {shown}: {error}");
            self.errors = true;
        }
    }
}
