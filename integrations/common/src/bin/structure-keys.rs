//! `structure-keys`: the platform's access keys and devices in its database,
//! as the Structure platform's "Generate Key" dialog and device pages keep
//! them. Every broker following the database (the Mosquitto plugin's
//! `plugin_opt_database_url`, the RMQTT node's `database_url`) sees a change
//! the moment it is committed.
//!
//! ```text
//! structure-keys --database URL schema
//! structure-keys --database URL application add APP
//! structure-keys --database URL key create --application APP [--restrict R] [--description D]
//!                                           [--expires-in DURATION | --expires-at TIME]
//! structure-keys --database URL key expire KEY (--in DURATION | --at TIME | --never)
//! structure-keys --database URL key list --application APP
//! structure-keys --database URL key deactivate|activate|delete KEY
//! structure-keys --database URL device add ID --application APP [--tag K=V]...
//! structure-keys --database URL device retag ID [--tag K=V]...
//! structure-keys --database URL device delete ID
//! ```
//!
//! `--database-file FILE` reads the URL from a file instead (its first line),
//! so that the password is not on the command line; so does the environment
//! variable `STRUCTURE_DATABASE_URL`. `key create` prints the key and the
//! secret once: only the verifier is stored. No command prints a secret or a
//! verifier again. Exit status: 0 done, 1 refused (unknown application, key
//! or device; a restriction that does not parse), 2 the database cannot be
//! reached or the arguments are wrong.
//!
//! A `DURATION` is `90d`, `12h`, `1w 2d` (humantime's syntax), counted from
//! now; a `TIME` is RFC 3339 UTC, `2027-03-01T12:00:00Z`. `key list` prints
//! one line per key: id, status, restriction, expiry (`never` or the time),
//! description.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use structure_access::{
    AccessKey, ApplicationId, DeviceId, HashPolicy, KeyId, Restriction, Scope, UnixTime,
};
use structure_access_common::postgres::SCHEMA;
use tokio_postgres::{Client, NoTls};

#[derive(Parser)]
#[command(
    name = "structure-keys",
    about = "Access keys and devices in the platform's database"
)]
struct Args {
    /// The database's URL (`postgres://user:password@host:port/db`).
    #[arg(long, env = "STRUCTURE_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// A file whose first line is the database's URL.
    #[arg(long, conflicts_with = "database")]
    database_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Applies the schema (tables, change log, triggers); safe to run again.
    Schema,
    /// Applications.
    Application {
        #[command(subcommand)]
        command: ApplicationCommand,
    },
    /// Access keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Devices.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
}

#[derive(Subcommand)]
enum ApplicationCommand {
    /// Adds an application.
    Add { application: String },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generates a key: prints the key and its secret once, stores only the
    /// verifier.
    Create {
        #[arg(long)]
        application: String,
        /// Device IDs and `key=value` tags, comma-separated; none: any device
        /// of the application.
        #[arg(long)]
        restrict: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        expiry: CreateExpiry,
    },
    /// Sets when a key expires (its sessions end then), or that it never
    /// does. Rotation: create the new key, expire the old one a week out
    /// (`--in 7d`), move the devices to the new one.
    Expire {
        key: String,
        #[command(flatten)]
        expiry: Expiry,
    },
    /// Lists the keys of an application (never a secret or a verifier).
    List {
        #[arg(long)]
        application: String,
    },
    /// Deactivates a key: it authenticates nobody, its sessions end.
    Deactivate { key: String },
    /// Activates a key again.
    Activate { key: String },
    /// Deletes a key: it opens nothing, its sessions end.
    Delete { key: String },
}

/// When a new key expires (neither: never).
#[derive(clap::Args)]
#[group(multiple = false)]
struct CreateExpiry {
    /// The key expires this long from now (`90d`, `12h`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires_in: Option<std::time::Duration>,
    /// The key expires at this time (RFC 3339 UTC).
    #[arg(long, value_name = "TIME")]
    expires_at: Option<UnixTime>,
}

/// When a key expires, exactly one of these.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Expiry {
    /// This long from now (`7d`, `12h`).
    #[arg(long = "in", value_name = "DURATION", value_parser = humantime::parse_duration)]
    within: Option<std::time::Duration>,
    /// At this time (RFC 3339 UTC).
    #[arg(long, value_name = "TIME")]
    at: Option<UnixTime>,
    /// Never.
    #[arg(long)]
    never: bool,
}

/// `within` from now, or `at`.
fn expiry_time(
    within: Option<std::time::Duration>,
    at: Option<UnixTime>,
) -> Result<Option<UnixTime>, Failure> {
    match within {
        Some(within) => UnixTime::now()
            .plus_secs(within.as_secs())
            .map(Some)
            .ok_or_else(|| refused("the expiry is past the year 9999")),
        None => Ok(at),
    }
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Adds a device.
    Add {
        id: String,
        #[arg(long)]
        application: String,
        /// A tag, `key=value` (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Replaces a device's tags.
    Retag {
        id: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Deletes a device.
    Delete { id: String },
}

/// Why a command did not do what it was asked, and its exit status.
struct Failure {
    message: String,
    status: u8,
}

fn refused(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        status: 1,
    }
}

fn database(error: tokio_postgres::Error) -> Failure {
    let message = match error.as_db_error() {
        Some(db) => format!("the database refused: {}", db.message()),
        None => format!("cannot reach the database: {error}"),
    };
    Failure { message, status: 2 }
}

fn tags_json(tags: &[String]) -> Result<String, Failure> {
    let mut out = Vec::new();
    for tag in tags {
        let Some((key, value)) = tag.split_once('=') else {
            return Err(refused(format!(
                "tag `{}` is not `key=value`",
                structure_access_common::escape(tag)
            )));
        };
        out.push(serde_json::json!({ "key": key, "value": value }));
    }
    if out.len() > structure_access::MAX_DEVICE_TAGS {
        return Err(refused(format!(
            "{} tags, expected at most {}",
            out.len(),
            structure_access::MAX_DEVICE_TAGS
        )));
    }
    Ok(serde_json::Value::Array(out).to_string())
}

async fn known_application(client: &Client, application: &str) -> Result<ApplicationId, Failure> {
    let parsed: ApplicationId = application.parse().map_err(|e| refused(format!("{e}")))?;
    let found = client
        .query_opt(
            "SELECT 1 FROM structure_access_applications WHERE application = $1",
            &[&application],
        )
        .await
        .map_err(database)?;
    if found.is_none() {
        return Err(refused(format!(
            "unknown application `{}`: add it with `structure-keys application add`",
            structure_access_common::escape(application)
        )));
    }
    Ok(parsed)
}

/// Runs a statement changing one row; refused when it changed none.
async fn one_row(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    missing: String,
) -> Result<(), Failure> {
    let changed = client.execute(sql, params).await.map_err(database)?;
    if changed == 0 {
        return Err(refused(missing));
    }
    Ok(())
}

async fn run(client: &Client, command: Command) -> Result<String, Failure> {
    match command {
        Command::Schema => {
            client.batch_execute(SCHEMA).await.map_err(database)?;
            Ok("schema applied".into())
        }
        Command::Application {
            command: ApplicationCommand::Add { application },
        } => {
            application
                .parse::<ApplicationId>()
                .map_err(|e| refused(e.to_string()))?;
            client
                .execute(
                    "INSERT INTO structure_access_applications (application) VALUES ($1) \
                     ON CONFLICT DO NOTHING",
                    &[&application],
                )
                .await
                .map_err(database)?;
            Ok(format!("application `{application}`"))
        }
        Command::Key { command } => key(client, command).await,
        Command::Device { command } => device(client, command).await,
    }
}

async fn key(client: &Client, command: KeyCommand) -> Result<String, Failure> {
    let set_status = |key: String, status: &'static str| async move {
        key.parse::<KeyId>().map_err(|e| refused(e.to_string()))?;
        one_row(
            client,
            "UPDATE structure_access_keys SET status = $2 WHERE key_id = $1",
            &[&key, &status],
            format!(
                "unknown access key `{}`",
                structure_access_common::escape(&key)
            ),
        )
        .await?;
        Ok::<_, Failure>(format!("access key `{key}` {status}"))
    };
    match command {
        KeyCommand::Create {
            application,
            restrict,
            description,
            expiry,
        } => {
            let app = known_application(client, &application).await?;
            let expires_at = expiry_time(expiry.expires_in, expiry.expires_at)?;
            let scope = match restrict {
                Some(text) => Scope::from(
                    text.parse::<Restriction>()
                        .map_err(|e| refused(format!("--restrict: {e}")))?,
                ),
                None => Scope::Unrestricted,
            };
            let mut new = AccessKey::generate_os(app, scope, &HashPolicy::default())
                .map_err(|e| refused(e.to_string()))?;
            if !description.is_empty() {
                new.record = new
                    .record
                    .with_description(&description)
                    .map_err(|e| refused(format!("--description: {e}")))?;
            }
            let record = &new.record;
            let restriction = record.scope().restriction().map(|r| r.to_string());
            let expires = expires_at.map(|at| at.to_string());
            client
                .execute(
                    "INSERT INTO structure_access_keys \
                     (key_id, application, verifier, restriction, status, description, expires_at) \
                     VALUES ($1, $2, $3, $4, 'active', $5, $6::text::timestamptz)",
                    &[
                        &record.key().as_str(),
                        &application,
                        &record.verifier().to_string(),
                        &restriction,
                        &description,
                        &expires,
                    ],
                )
                .await
                .map_err(database)?;
            let expiry = match expires {
                Some(at) => format!("expires: {at}\n"),
                None => String::new(),
            };
            Ok(format!(
                "key:    {}\nsecret: {}\n{expiry}(the secret is shown once and not stored: keep it now)",
                record.key(),
                new.secret.expose_secret()
            ))
        }
        KeyCommand::Expire { key, expiry } => {
            key.parse::<KeyId>().map_err(|e| refused(e.to_string()))?;
            let expires = if expiry.never {
                None
            } else {
                expiry_time(expiry.within, expiry.at)?.map(|at| at.to_string())
            };
            one_row(
                client,
                "UPDATE structure_access_keys SET expires_at = $2::text::timestamptz \
                 WHERE key_id = $1",
                &[&key, &expires],
                format!(
                    "unknown access key `{}`",
                    structure_access_common::escape(&key)
                ),
            )
            .await?;
            Ok(match expires {
                Some(at) => format!("access key `{key}` expires at {at}"),
                None => format!("access key `{key}` never expires"),
            })
        }
        KeyCommand::List { application } => {
            known_application(client, &application).await?;
            let rows = client
                .query(
                    "SELECT key_id, status, coalesce(restriction, ''), description, \
                     coalesce(to_char(expires_at AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'never') \
                     FROM structure_access_keys WHERE application = $1 ORDER BY key_id",
                    &[&application],
                )
                .await
                .map_err(database)?;
            let mut out = String::new();
            for row in rows {
                let (key, status, restriction, description, expires): (
                    String,
                    String,
                    String,
                    String,
                    String,
                ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
                let restriction = if restriction.is_empty() {
                    "unrestricted".to_owned()
                } else {
                    restriction
                };
                out.push_str(&format!(
                    "{key}\t{status}\t{}\t{expires}\t{}\n",
                    structure_access_common::escape(&restriction),
                    structure_access_common::escape(&description)
                ));
            }
            Ok(out.trim_end().to_owned())
        }
        KeyCommand::Deactivate { key } => set_status(key, "inactive").await,
        KeyCommand::Activate { key } => set_status(key, "active").await,
        KeyCommand::Delete { key } => {
            key.parse::<KeyId>().map_err(|e| refused(e.to_string()))?;
            one_row(
                client,
                "DELETE FROM structure_access_keys WHERE key_id = $1",
                &[&key],
                format!(
                    "unknown access key `{}`",
                    structure_access_common::escape(&key)
                ),
            )
            .await?;
            Ok(format!("access key `{key}` deleted"))
        }
    }
}

async fn device(client: &Client, command: DeviceCommand) -> Result<String, Failure> {
    let check = |id: &str| {
        id.parse::<DeviceId>()
            .map(drop)
            .map_err(|e| refused(e.to_string()))
    };
    match command {
        DeviceCommand::Add {
            id,
            application,
            tags,
        } => {
            check(&id)?;
            known_application(client, &application).await?;
            let tags = tags_json(&tags)?;
            client
                .execute(
                    "INSERT INTO structure_access_devices (device_id, application, tags) \
                     VALUES ($1, $2, $3::text::jsonb)",
                    &[&id, &application, &tags],
                )
                .await
                .map_err(database)?;
            Ok(format!("device `{id}`"))
        }
        DeviceCommand::Retag { id, tags } => {
            check(&id)?;
            let tags = tags_json(&tags)?;
            one_row(
                client,
                "UPDATE structure_access_devices SET tags = $2::text::jsonb WHERE device_id = $1",
                &[&id, &tags],
                format!("unknown device `{}`", structure_access_common::escape(&id)),
            )
            .await?;
            Ok(format!("device `{id}` retagged"))
        }
        DeviceCommand::Delete { id } => {
            check(&id)?;
            one_row(
                client,
                "DELETE FROM structure_access_devices WHERE device_id = $1",
                &[&id],
                format!("unknown device `{}`", structure_access_common::escape(&id)),
            )
            .await?;
            Ok(format!("device `{id}` deleted"))
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let url = match (&args.database, &args.database_file) {
        (Some(url), _) => url.clone(),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => text.lines().next().unwrap_or_default().trim().to_owned(),
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", file.display());
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            eprintln!("error: give --database, --database-file or STRUCTURE_DATABASE_URL");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .map_err(database)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        run(&client, args.command).await
    });
    match outcome {
        Ok(done) => {
            if !done.is_empty() {
                println!("{done}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}
