//! The platform's database as the source of the records (feature
//! `postgres`): a consistent snapshot at start, then a change set for every
//! batch of the change log, told by `NOTIFY` and checked every few seconds.
//!
//! The schema ([`SCHEMA`], `sql/schema.sql`) keeps keys and devices in tables
//! whose triggers write, in the same transaction, one row of
//! `structure_access_changes` per record changed (a `bigserial` position, the
//! kind and the id) and `NOTIFY structure_access_changes` with it. A follower
//! ([`Database::follow`]) remembers the last position it applied; for each
//! new batch of positions it reads, in one `REPEATABLE READ` transaction, the
//! log entries and the current rows of the records they name, and gives the
//! change set: a record that exists is put, one that does not is removed.
//! A row the crate refuses (a bad restriction, a verifier the hash policy
//! refuses) is reported ([`Skipped`]) and its record removed from those in
//! force: it opens nothing until the row is valid, and nothing else changes.
//!
//! When the connection is lost the records in force stay, and the follower
//! reconnects with a growing pause (100 ms to 5 s), says so once per outage,
//! and catches up from the last position it applied: nothing that changed
//! meanwhile is missed. If the log has been trimmed past that position it
//! reads a fresh snapshot and gives the change set from the records in force
//! to it.
//!
//! The database's URL holds its password: it is never logged, and this
//! module's `Debug` and errors never show it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, pin_mut};
use structure_access::mqtt::TopicRules;
use structure_access::{AccessKey, DeviceId, DeviceRecord, HashPolicy, KeyId};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::files::put_device_line;
use crate::records::{ChangeSet, DeviceChange, KeyChange, Records};

/// The schema: tables, the change log, its triggers (idempotent).
pub const SCHEMA: &str = include_str!("../sql/schema.sql");

/// The channel the triggers notify.
pub const CHANNEL: &str = "structure_access_changes";

/// How often the log is read without a notification (one may be missed:
/// `NOTIFY` is not delivered to a connection that is being re-established).
pub const POLL: Duration = Duration::from_secs(2);

/// Most log entries read in one transaction.
const BATCH: i64 = 50_000;

/// The longest pause between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why the database could not be read. The message never holds the URL.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError {
    /// The URL is not one PostgreSQL accepts.
    Url(String),
    /// The database could not be reached (or the connection was lost).
    Unreachable(String),
    /// A query failed.
    Query(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(why) => write!(
                f,
                "the database URL is not valid: {}",
                crate::escape_line(why)
            ),
            Self::Unreachable(why) => {
                write!(f, "cannot reach the database: {}", crate::escape_line(why))
            }
            Self::Query(why) => write!(f, "a query failed: {}", crate::escape_line(why)),
        }
    }
}

impl std::error::Error for DbError {}

fn query(error: tokio_postgres::Error) -> DbError {
    if error.is_closed() {
        DbError::Unreachable(error.to_string())
    } else {
        // The database's own message, without its details: a row's content
        // may be in them.
        DbError::Query(
            error
                .as_db_error()
                .map_or_else(|| error.to_string(), |e| e.message().to_owned()),
        )
    }
}

/// A record the crate refused, reported and not put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `access key` or `device`.
    pub what: &'static str,
    /// Its id (escaped for a log line).
    pub id: String,
    /// Why.
    pub why: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} `{}` skipped (it opens nothing until its row is valid): {}",
            self.what,
            self.id,
            crate::escape_line(&self.why)
        )
    }
}

/// What following the database gives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Changes to apply, up to this log position (apply them in order).
    Changes {
        /// The change set.
        changes: ChangeSet,
        /// The last position it covers.
        position: i64,
        /// Rows refused (their records are removed in `changes`).
        skipped: Vec<Skipped>,
        /// How many log entries it covers.
        entries: usize,
    },
    /// A fresh snapshot, to replace the records in force (with the change
    /// set [`Records::changes_to`] makes, at the moment it is applied): the
    /// first event when the records in force came from elsewhere, and the
    /// one after an outage long enough for the log to be trimmed.
    Snapshot {
        /// The records of the snapshot.
        records: Box<Records>,
        /// The log position it saw.
        position: i64,
        /// Rows refused (absent from `records`).
        skipped: Vec<Skipped>,
    },
    /// The connection is lost (or could not be made): said once per outage.
    Lost(DbError),
    /// Connected again, after an outage of this long.
    Back(Duration),
}

/// The database, as a source of records.
pub struct Database {
    config: tokio_postgres::Config,
    policy: HashPolicy,
    base_rules: TopicRules,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .finish_non_exhaustive()
    }
}

/// The `application_name` of a broker's connections, unless the URL gives
/// one.
pub const APPLICATION_NAME: &str = "structure-access";

/// The JSON of a key's row, as the keys file has it.
const KEY_JSON: &str = "json_build_object('key', key_id, 'application', application, \
     'verifier', verifier, 'restriction', restriction, 'status', status, \
     'description', nullif(description, ''), 'additionalTopics', additional_topics, \
     'expiresAt', to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))::text";

/// The JSON of a device's row, as the devices file has it.
const DEVICE_JSON: &str =
    "json_build_object('id', device_id, 'application', application, 'tags', tags)::text";

impl Database {
    /// The database at `url` (`postgres://user:password@host:port/db`, or
    /// `host=… user=…`), checking keys against `policy`, with `base_rules`.
    pub fn new(url: &str, policy: HashPolicy, base_rules: TopicRules) -> Result<Self, DbError> {
        let mut config = url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| DbError::Url(e.to_string()))?;
        // So that an operator sees the brokers' connections for what they
        // are in `pg_stat_activity`.
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        Ok(Self {
            config,
            policy,
            base_rules,
        })
    }

    /// A connection, its notifications sent to `notified` (the connection
    /// is driven by a task of the current runtime; when it ends, the sender
    /// is dropped).
    async fn connect(
        &self,
        notified: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    ) -> Result<Client, DbError> {
        let (client, mut connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| DbError::Unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if let Some(notified) = &notified {
                            let _ = notified.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        Ok(client)
    }

    /// Applies the schema (idempotent).
    pub async fn apply_schema(&self) -> Result<(), DbError> {
        let client = self.connect(None).await?;
        client.batch_execute(SCHEMA).await.map_err(query)
    }

    /// A consistent snapshot: the records, the log position it saw, and the
    /// rows refused.
    pub async fn snapshot(&self) -> Result<(Records, i64, Vec<Skipped>), DbError> {
        let client = self.connect(None).await?;
        self.snapshot_with(&client).await
    }

    async fn snapshot_with(
        &self,
        client: &Client,
    ) -> Result<(Records, i64, Vec<Skipped>), DbError> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(query)?;
        let position: i64 = client
            .query_one(
                "SELECT coalesce(max(position), 0) FROM structure_access_changes",
                &[],
            )
            .await
            .map_err(query)?
            .get(0);
        let mut records = Records::new(self.policy.clone(), self.base_rules.clone());
        let mut skipped = Vec::new();
        let keys = client
            .query_raw(
                &format!("SELECT key_id, {KEY_JSON} FROM structure_access_keys"),
                std::iter::empty::<i32>(),
            )
            .await
            .map_err(query)?;
        pin_mut!(keys);
        let mut batch = ChangeSet::default();
        while let Some(row) = keys.next().await {
            let row = row.map_err(query)?;
            let (id, json): (String, String) = (row.get(0), row.get(1));
            match self.key(&json) {
                Ok(record) => batch.keys.push(KeyChange::Put(Arc::new(record), 0)),
                Err(why) => skipped.push(skipped_key(&id, why)),
            }
            if batch.keys.len() == 10_000 {
                records.apply(std::mem::take(&mut batch));
            }
        }
        records.apply(batch);
        let devices = client
            .query_raw(
                &format!("SELECT device_id, {DEVICE_JSON} FROM structure_access_devices"),
                std::iter::empty::<i32>(),
            )
            .await
            .map_err(query)?;
        pin_mut!(devices);
        while let Some(row) = devices.next().await {
            let row = row.map_err(query)?;
            let (id, json): (String, String) = (row.get(0), row.get(1));
            if let Err(why) = put_device_line(records.devices_mut(), &json, 0) {
                skipped.push(skipped_device(&id, why));
            }
        }
        records.refresh_rules();
        client.batch_execute("COMMIT").await.map_err(query)?;
        Ok((records, position, skipped))
    }

    fn key(&self, json: &str) -> Result<AccessKey, String> {
        let record: AccessKey = serde_json::from_str(json).map_err(|e| e.to_string())?;
        self.policy
            .check(record.verifier())
            .map_err(|e| format!("verifier refused by the hash policy: {e}"))?;
        Ok(record)
    }

    /// The changes after `position`, if any: the log entries of one batch,
    /// and the records they name as they are now, read in one transaction.
    /// `None` when the log has been trimmed past `position` (a snapshot is
    /// then needed).
    async fn changes_after(
        &self,
        client: &Client,
        position: i64,
    ) -> Result<Option<Option<Event>>, DbError> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(query)?;
        let result = self.read_changes(client, position).await;
        let _ = client.batch_execute("COMMIT").await;
        result
    }

    async fn read_changes(
        &self,
        client: &Client,
        position: i64,
    ) -> Result<Option<Option<Event>>, DbError> {
        let first: Option<i64> = client
            .query_one("SELECT min(position) FROM structure_access_changes", &[])
            .await
            .map_err(query)?
            .get(0);
        if position > 0 && first.is_some_and(|first| first > position + 1) {
            return Ok(None);
        }
        let entries = client
            .query(
                "SELECT position, kind, id FROM structure_access_changes \
                 WHERE position > $1 ORDER BY position LIMIT $2",
                &[&position, &BATCH],
            )
            .await
            .map_err(query)?;
        let Some(last) = entries.last().map(|row| row.get::<_, i64>(0)) else {
            return Ok(Some(None));
        };
        let mut keys: Vec<String> = Vec::new();
        let mut devices: Vec<String> = Vec::new();
        let (mut seen_keys, mut seen_devices) = (HashSet::new(), HashSet::new());
        for row in &entries {
            let (kind, id): (&str, String) = (row.get(1), row.get(2));
            match kind {
                "key" if seen_keys.insert(id.clone()) => keys.push(id),
                "device" if seen_devices.insert(id.clone()) => devices.push(id),
                _ => {}
            }
        }
        let mut changes = ChangeSet::default();
        let mut skipped = Vec::new();
        let version = u64::try_from(last).unwrap_or(0);
        if !keys.is_empty() {
            let rows = client
                .query(
                    &format!(
                        "SELECT key_id, {KEY_JSON} FROM structure_access_keys \
                         WHERE key_id = ANY($1)"
                    ),
                    &[&keys],
                )
                .await
                .map_err(query)?;
            let mut found: HashMap<String, String> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for id in keys {
                let parsed = found.remove(&id).map(|json| self.key(&json));
                match parsed {
                    Some(Ok(record)) if record.key().as_str() == id => {
                        changes.keys.push(KeyChange::Put(Arc::new(record), version));
                    }
                    Some(Ok(_)) => {
                        skipped.push(skipped_key(&id, "its key id is not its row's".into()))
                    }
                    Some(Err(why)) => {
                        if let Ok(key) = id.parse::<KeyId>() {
                            changes.keys.push(KeyChange::Remove(key));
                        }
                        skipped.push(skipped_key(&id, why));
                    }
                    None => {
                        if let Ok(key) = id.parse::<KeyId>() {
                            changes.keys.push(KeyChange::Remove(key));
                        }
                    }
                }
            }
        }
        if !devices.is_empty() {
            let rows = client
                .query(
                    &format!(
                        "SELECT device_id, {DEVICE_JSON} FROM structure_access_devices \
                         WHERE device_id = ANY($1)"
                    ),
                    &[&devices],
                )
                .await
                .map_err(query)?;
            let mut found: HashMap<String, String> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for id in devices {
                let parsed = found.remove(&id).map(|json| {
                    serde_json::from_str::<DeviceRecord>(&json).map_err(|e| e.to_string())
                });
                match parsed {
                    Some(Ok(record)) => changes.devices.push(DeviceChange::Put(record, version)),
                    Some(Err(why)) => {
                        if let Ok(device) = id.parse::<DeviceId>() {
                            changes.devices.push(DeviceChange::Remove(device));
                        }
                        skipped.push(skipped_device(&id, why));
                    }
                    None => {
                        if let Ok(device) = id.parse::<DeviceId>() {
                            changes.devices.push(DeviceChange::Remove(device));
                        }
                    }
                }
            }
        }
        Ok(Some(Some(Event::Changes {
            changes,
            position: last,
            skipped,
            entries: entries.len(),
        })))
    }

    /// A fresh snapshot, as an event.
    async fn resync(&self, client: &Client) -> Result<Event, DbError> {
        let (records, position, skipped) = self.snapshot_with(client).await?;
        Ok(Event::Snapshot {
            records: Box::new(records),
            position,
            skipped,
        })
    }

    /// Follows the log from `position` (the one of the snapshot in force;
    /// `None`: the records in force come from elsewhere, a records file, and
    /// the first connection gives a [`Event::Snapshot`]), for ever, giving
    /// each event to `events`. Apply the events in the order they come: a
    /// snapshot (when the log was trimmed past the position) replaces what
    /// the change sets before it made.
    pub async fn follow(&self, from: Option<i64>, mut events: impl FnMut(Event) + Send) {
        // Position 0 with a trimmed-looking log forces the first snapshot.
        let mut resync = from.is_none();
        let mut position = from.unwrap_or(0);
        let mut down_since: Option<Instant> = None;
        let mut pause = Duration::from_millis(100);
        loop {
            let (notified, mut notifications) = tokio::sync::mpsc::unbounded_channel();
            let client = match self.connect(Some(notified)).await {
                Ok(client) => client,
                Err(e) => {
                    if down_since.is_none() {
                        down_since = Some(Instant::now());
                        events(Event::Lost(e));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            // LISTEN first, then catch up: a change committed in between is
            // read once by the catch-up (its notification finds nothing new).
            if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    events(Event::Lost(query(e)));
                }
                continue;
            }
            pause = Duration::from_millis(100);
            if let Some(since) = down_since.take() {
                events(Event::Back(since.elapsed()));
            }
            let lost = loop {
                let read = if resync {
                    self.resync(&client).await.map(Some)
                } else {
                    match self.changes_after(&client, position).await {
                        Ok(Some(event)) => Ok(event),
                        Ok(None) => self.resync(&client).await.map(Some),
                        Err(e) => Err(e),
                    }
                };
                if read.is_ok() {
                    resync = false;
                }
                match read {
                    Ok(Some(event)) => {
                        if let Event::Changes { position: p, .. }
                        | Event::Snapshot { position: p, .. } = &event
                        {
                            position = *p;
                        }
                        let more = matches!(&event, Event::Changes { entries, .. } if *entries as i64 == BATCH);
                        events(event);
                        if more {
                            continue;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => break e,
                }
                tokio::select! {
                    told = notifications.recv() => {
                        if told.is_none() {
                            break DbError::Unreachable("the connection was closed".into());
                        }
                        // Every notification so far is answered by one read.
                        while notifications.try_recv().is_ok() {}
                    }
                    () = tokio::time::sleep(POLL) => {}
                }
            };
            down_since = Some(Instant::now());
            events(Event::Lost(lost));
        }
    }
}

impl Database {
    /// [`Database::snapshot`] from synchronous code, giving up after
    /// `limit`.
    pub fn snapshot_blocking(
        &self,
        limit: Duration,
    ) -> Result<(Records, i64, Vec<Skipped>), DbError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Unreachable(e.to_string()))?;
        runtime.block_on(async {
            tokio::time::timeout(limit, self.snapshot())
                .await
                .map_err(|_| DbError::Unreachable(format!("no answer within {limit:?}")))?
        })
    }

    /// [`Database::follow`] on a thread of its own (with a runtime of its
    /// own), for a broker without one: the events come out of the receiver.
    pub fn follow_on_thread(
        self,
        from: Option<i64>,
    ) -> std::io::Result<std::sync::mpsc::Receiver<Event>> {
        let (events, received) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("structure-database".into())
            .spawn(move || {
                runtime.block_on(self.follow(from, move |event| {
                    let _ = events.send(event);
                }));
            })?;
        Ok(received)
    }
}

fn skipped_key(id: &str, why: String) -> Skipped {
    Skipped {
        what: "access key",
        id: crate::escape(id),
        why,
    }
}

fn skipped_device(id: &str, why: String) -> Skipped {
    Skipped {
        what: "device",
        id: crate::escape(id),
        why,
    }
}
