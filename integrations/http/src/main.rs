//! `structure-http`: the reference HTTP server (README.md, "HTTP servers").
//!
//! `structure-http --keys-file K --devices-file D --signing-key S [--verification-keys V]`
//! (or `--database-url URL` / `--database-url-file F` instead of the files;
//! `--rabbitmq` for RabbitMQ's HTTP auth backend)
//! serves `POST /auth/device`, `POST /applications/{app}/devices/{device}/state`
//! and `GET /applications/{app}/devices`; `structure-http new-signing-key`
//! prints a new signing key (`k4.secret.…`, to keep secret) and, on stderr,
//! its public half (`k4.public.…`, for the verification keys of the other
//! servers).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderValue, Request};
use clap::{Parser, Subcommand};
use structure_access::UnixTime;
use structure_access::{Authenticator, HashPolicy};
use structure_access_common::FileSource;
use structure_access_common::Records;
use structure_access_common::audit::Audit;
use structure_access_common::postgres::Database;
use structure_access_http::rabbitmq::{self, Management, RabbitMqConfig};
use structure_access_http::{
    Gate, Server, ServerConfig, follow_database, follow_files_then, router,
};
use structure_access_tokens::{
    CachingVerifier, DEFAULT_LIFETIME, Issuer, SigningKey, TokenVerifier, VerifyingKey,
};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

#[derive(Parser)]
#[command(
    name = "structure-http",
    version,
    about = "The structure-access reference HTTP server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The access keys (JSON lines, as the brokers read them).
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// The devices (JSON lines).
    #[arg(long)]
    devices_file: Option<PathBuf>,
    /// The platform's database instead of the files (PostgreSQL, the schema
    /// of `structure-keys schema`): `postgres://user:password@host/db`. A
    /// role with SELECT on the four tables is enough.
    #[arg(long, conflicts_with_all = ["keys_file", "devices_file", "database_url_file"])]
    database_url: Option<String>,
    /// A file holding the database URL (it may hold a password).
    #[arg(long, conflicts_with_all = ["keys_file", "devices_file"])]
    database_url_file: Option<PathBuf>,
    /// The signing key's file (`k4.secret.…`, PASERK).
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// More verification keys (`k4.public.…`, one per line): keys being
    /// retired, or other servers' keys. The signing key's own is always in.
    #[arg(long)]
    verification_keys: Option<PathBuf>,
    /// The tokens' audience (`aud`).
    #[arg(long, default_value = "structure-http")]
    audience: String,
    /// Seconds a token is valid (1 to 86400).
    #[arg(long, default_value_t = DEFAULT_LIFETIME)]
    token_lifetime: u64,
    /// The audit trail's file (JSON lines); none: the log.
    #[arg(long)]
    audit_file: Option<PathBuf>,
    /// Milliseconds between looks at the files' modification times.
    #[arg(long, default_value_t = 250)]
    reload_interval_ms: u64,
    /// The largest request body (bytes).
    #[arg(long, default_value_t = 64 * 1024)]
    max_body: usize,
    /// Argon2 verifications a second in the server.
    #[arg(long, default_value_t = 10)]
    argon2_per_second: u32,
    /// Argon2 verifications a second per client address.
    #[arg(long, default_value_t = 2)]
    argon2_per_address_per_second: u32,
    /// Refusals of an address answered at once per second (past them, each
    /// is held `--refusal-delay-ms`).
    #[arg(long, default_value_t = 2)]
    refusals_per_address_per_second: u32,
    /// How long a refusal past the address's budget is held.
    #[arg(long, default_value_t = 1000)]
    refusal_delay_ms: u64,
    /// Tokens remembered once verified (0: none).
    #[arg(long, default_value_t = 100_000)]
    token_cache: usize,
    /// No authentication on the state route: a baseline for load tests only.
    #[arg(long)]
    no_auth: bool,
    /// Serve RabbitMQ's HTTP auth backend: `/rabbitmq/user`, `/vhost`,
    /// `/resource` and `/topic` (README.md, "RabbitMQ").
    #[arg(long)]
    rabbitmq: bool,
    /// The virtual host of the devices.
    #[arg(long, default_value = "/")]
    rabbitmq_vhost: String,
    /// The MQTT plugin's topic exchange.
    #[arg(long, default_value = "amq.topic")]
    rabbitmq_exchange: String,
    /// RabbitMQ's management API (`http://127.0.0.1:15672`), to close the
    /// connections of revoked keys; once per node, tried in turn.
    #[arg(long = "rabbitmq-management")]
    rabbitmq_management: Vec<String>,
    /// A file holding `user:password` of a management user tagged
    /// `administrator`.
    #[arg(long)]
    rabbitmq_management_credentials: Option<PathBuf>,
    /// How long (ms) each change of the records is looked for in RabbitMQ's
    /// list of connections, which names a connection's device only once its
    /// statistics are collected: at least twice RabbitMQ's
    /// `collect_statistics_interval`.
    #[arg(long, default_value_t = 12_000)]
    rabbitmq_revoke_window_ms: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Prints a new signing key on stdout and its public half on stderr.
    NewSigningKey,
}

/// Request ids `<process>-<n>`.
#[derive(Clone)]
struct Counter(Arc<(u32, AtomicU64)>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.0.1.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:08x}-{n}", self.0.0))
            .ok()
            .map(RequestId::new)
    }
}

fn seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    Ok(seed)
}

fn read_text(path: &PathBuf, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Some(Command::NewSigningKey) = cli.command {
        let key = SigningKey::from_seed(seed()?).map_err(|e| e.to_string())?;
        println!("{}", key.to_paserk());
        eprintln!("{}", key.verifying_key().to_paserk());
        return Ok(());
    }
    let need = |v: Option<PathBuf>, flag: &str| v.ok_or(format!("`--{flag}` is required"));
    let database_url = match (&cli.database_url, &cli.database_url_file) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(path)) => Some(read_text(path, "the database url")?.trim().to_owned()),
        (None, None) => None,
    };
    let files = match database_url {
        Some(_) => None,
        None => Some((
            need(cli.keys_file, "keys-file` (or `--database-url")?,
            need(cli.devices_file, "devices-file` (or `--database-url")?,
        )),
    };
    let signing_file = need(cli.signing_key, "signing-key")?;
    let signing = SigningKey::from_paserk(&read_text(&signing_file, "the signing key")?)
        .map_err(|e| format!("`{}`: {e}", signing_file.display()))?;
    let mut keys = vec![signing.verifying_key()];
    if let Some(path) = &cli.verification_keys {
        for (n, line) in read_text(path, "the verification keys")?
            .lines()
            .enumerate()
        {
            if line.trim().is_empty() {
                continue;
            }
            keys.push(
                VerifyingKey::from_paserk(line)
                    .map_err(|e| format!("`{}` line {}: {e}", path.display(), n + 1))?,
            );
        }
    }
    let verifier = TokenVerifier::new(&cli.audience, keys).map_err(|e| e.to_string())?;
    let issuer = Issuer::new(signing, &cli.audience)
        .and_then(|i| i.with_lifetime(cli.token_lifetime))
        .map_err(|e| e.to_string())?;
    let policy = HashPolicy::default();
    let (source, records) = match (files, database_url) {
        (Some((keys_file, devices_file)), _) => {
            let (source, records) =
                FileSource::open(keys_file, devices_file, policy.clone(), Default::default())
                    .map_err(|e| e.to_string())?;
            (Source::Files(source), records)
        }
        (None, Some(url)) => {
            let database = Database::new(&url, policy.clone(), Default::default())
                .map_err(|e| format!("the database url: {e}"))?;
            let (records, position) = first_snapshot(&database).await;
            (Source::Database(database, position), records)
        }
        (None, None) => {
            return Err(
                "`--keys-file` and `--devices-file`, or `--database-url`, are required".into(),
            );
        }
    };
    tracing::info!(
        "{} access key(s) and {} device(s) loaded",
        records.key_count(),
        records.device_count()
    );
    let records = Arc::new(RwLock::new(records));
    let audit = Arc::new(match &cli.audit_file {
        Some(path) => Audit::to_file(path, "http", None)
            .map_err(|e| format!("cannot open `{}` for appending: {e}", path.display()))?,
        None => Audit::to_log(
            |line| tracing::info!(target: "audit", "{line}"),
            "http",
            None,
        ),
    });
    let gate = Gate::new(
        CachingVerifier::new(verifier, cli.token_cache),
        records.clone(),
        audit.clone(),
    );
    let config = ServerConfig {
        max_body: cli.max_body,
        no_auth: cli.no_auth,
        argon2_per_second: (cli.argon2_per_second, cli.argon2_per_address_per_second),
        refusal_hold: (
            cli.refusals_per_address_per_second,
            Duration::from_millis(cli.refusal_delay_ms),
        ),
        rabbitmq: cli.rabbitmq.then(|| RabbitMqConfig {
            vhost: cli.rabbitmq_vhost.clone(),
            exchange: cli.rabbitmq_exchange.clone(),
        }),
        ..ServerConfig::default()
    };
    let management = match (
        &cli.rabbitmq_management[..],
        &cli.rabbitmq_management_credentials,
    ) {
        ([], None) => None,
        ([], Some(_)) => {
            return Err("`--rabbitmq-management-credentials` needs `--rabbitmq-management`".into());
        }
        (_, None) => {
            return Err("`--rabbitmq-management` needs `--rabbitmq-management-credentials`".into());
        }
        (urls, Some(path)) => Some(Arc::new(
            Management::new(
                urls.to_vec(),
                &read_text(path, "the management credentials")?,
            )
            .map_err(|e| format!("`{}`: {e}", path.display()))?,
        )),
    };
    if cli.rabbitmq && management.is_none() {
        tracing::warn!(
            "rabbitmq: no management api given: the connections of revoked keys stay open until they reconnect"
        );
    }
    let (revocations, revoked) = tokio::sync::mpsc::unbounded_channel();
    if let Some(management) = management {
        tokio::spawn(rabbitmq::revoke(
            management,
            records.clone(),
            audit.clone(),
            UnixTime::now,
            Duration::from_millis(cli.rabbitmq_revoke_window_ms),
            revoked,
        ));
        // Keys that expire: their connections are closed at the first tick
        // after the instant.
        let (records, revocations) = (records.clone(), revocations.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut last = UnixTime::now();
            loop {
                tick.tick().await;
                let now = UnixTime::now();
                let expired = records
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .expired_as_applied(last, now);
                last = now;
                if !expired.is_empty() && revocations.send(expired).is_err() {
                    return;
                }
            }
        });
    }
    let server = Arc::new(Server::new(
        gate,
        issuer,
        Authenticator::new(policy),
        config,
    ));
    let then = move |applied| {
        let _ = revocations.send(applied);
    };
    match source {
        Source::Files(source) => {
            tokio::spawn(follow_files_then(
                source,
                records,
                audit.clone(),
                Duration::from_millis(cli.reload_interval_ms.max(10)),
                then,
            ));
        }
        Source::Database(database, position) => {
            tokio::spawn(follow_database(
                database,
                position,
                records,
                audit.clone(),
                then,
            ));
        }
    }
    {
        let audit = audit.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Some(line) = audit.flush() {
                    tracing::error!("{line}");
                }
            }
        });
    }
    let counter = Counter(Arc::new((
        u32::from_le_bytes(seed()?[..4].try_into().unwrap_or_default()),
        AtomicU64::new(1),
    )));
    let app = router(server)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", id, method = %request.method(), path = request.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(counter));
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on `{}`: {e}", cli.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Answers leave at once (RabbitMQ's client keeps its connections open
    // and waits on each answer).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    tracing::info!("listening on http://{local}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}

/// Where the records come from.
enum Source {
    Files(FileSource),
    Database(Database, i64),
}

/// The database's first snapshot; while it cannot be read, the server
/// waits, without listening (it has no records to decide with), saying so
/// once, and tries again every second.
async fn first_snapshot(database: &Database) -> (Records, i64) {
    let mut said = false;
    loop {
        match database.snapshot().await {
            Ok((records, position, skipped)) => {
                for row in &skipped {
                    tracing::error!("the database: {row}");
                }
                if said {
                    tracing::info!("the database is reachable: its snapshot is read");
                }
                return (records, position);
            }
            Err(e) => {
                if !said {
                    tracing::error!(
                        "cannot read the database ({e}): waiting for it, not listening until then"
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("structure-http: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("structure-http: {e}");
            eprintln!("structure-http: {e}");
            ExitCode::FAILURE
        }
    }
}
