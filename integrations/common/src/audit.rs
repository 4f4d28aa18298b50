//! The audit trail both brokers write: one JSON object per line, to a file
//! the operator names or to the broker's log.
//!
//! Every line has `time` (RFC 3339 UTC, milliseconds), `broker`
//! (`mosquitto` or `rmqtt`), `node` (RMQTT's node id) and `event`; the other
//! fields depend on the event (README.md, "Audit trail", has the schema and
//! the reason codes). No line holds a secret, a verifier, or text a client
//! typed other than a valid device ID or key id: a username that is no key
//! id may be a secret in the wrong field, and is never written.
//!
//! Accepted authentications, ended sessions, takeovers and records applied
//! are always written. Refusals, which anyone can cause, are written up to
//! [`AUDIT_REFUSALS_PER_SECOND`] a second; past that they are counted, and
//! the count is written as a `refusals_not_written` event before the next
//! refusal written, or by [`Audit::flush`] (called once a second).
//!
//! A file is written by a thread of its own: the broker copies the event
//! and hands it over (a bounded queue of [`AUDIT_QUEUE_LINES`]; when it is full
//! the broker waits, and no line is dropped), and the thread appends what
//! has come, in order, with one write per batch, at most
//! [`AUDIT_WRITE_DELAY`] after the line came. The broker's thread thus
//! makes no system call per event. Dropping the [`Audit`] writes what is
//! queued before it returns; a crash loses the lines of the last few
//! milliseconds.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use structure_access::{AuthError, UnixTime};

/// Refusals written per second; past that, counted.
pub const AUDIT_REFUSALS_PER_SECOND: u32 = 100;

/// Lines an audit file's queue holds before the broker waits for the
/// file.
pub const AUDIT_QUEUE_LINES: usize = 16 * 1024;

/// How long an audit file's thread gathers lines after the first one of a
/// batch, at most, before it writes them.
pub const AUDIT_WRITE_DELAY: Duration = Duration::from_millis(5);

/// One audit event: `event` and the fields that apply (the others are left
/// out of the line).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Event<'a> {
    /// `auth_accepted`, `auth_refused`, `session_ended`, `takeover`,
    /// `conflicting_client_id`, `records_applied`, `refusals_not_written`.
    pub event: &'static str,
    /// Why (a code of the README's table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The device ID (valid ones only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<&'a str>,
    /// The access key id (valid ones only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// The key's application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<&'a str>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<&'a str>,
    /// A takeover: the key of the session taken over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_key: Option<&'a str>,
    /// Takeovers of this device in the last minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub takeovers: Option<u32>,
    /// Records applied: where from (`files`, `database`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'a str>,
    /// Records applied: keys changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<usize>,
    /// Records applied: devices changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<usize>,
    /// Records applied: sessions revoked on this broker or node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<usize>,
    /// `refusals_not_written`: how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Where the lines go.
enum Output {
    File {
        path: PathBuf,
        /// To the writing thread; `None` once dropped.
        lines: Option<SyncSender<Queued>>,
        writer: Option<JoinHandle<()>>,
    },
    Log(Box<dyn Fn(&str) + Send + Sync>),
    /// No trail (`audit = off`): nothing is formatted or written.
    Off,
}

/// The refusals of the current second.
#[derive(Debug, Default)]
struct Budget {
    start: Option<Instant>,
    written: u32,
    held_back: u64,
}

/// The audit trail of one broker (or node).
pub struct Audit {
    output: Output,
    broker: &'static str,
    node: Option<u64>,
    budget: Mutex<Budget>,
    /// Lines the file refused, and the last error, for the broker's log.
    failed: Arc<Mutex<(u64, Option<String>)>>,
}

/// The line of `event` at `time`: the fields every line has, then the
/// event's (its object without its `{`), as a struct with a flattened event
/// would give it, at half the cost. `broker` is one of the brokers' names,
/// which JSON needs no escape for.
fn line(time: SystemTime, broker: &str, node: Option<u64>, event: &Event<'_>) -> Option<String> {
    let mut bytes = Vec::with_capacity(256);
    let time = time_text(time);
    match node {
        Some(node) => write!(
            bytes,
            "{{\"time\":\"{time}\",\"broker\":\"{broker}\",\"node\":{node},"
        ),
        None => write!(bytes, "{{\"time\":\"{time}\",\"broker\":\"{broker}\","),
    }
    .ok()?;
    let start = bytes.len();
    serde_json::to_writer(&mut bytes, event).ok()?;
    // `{"event":…}`: its `{` goes.
    if bytes.get(start) != Some(&b'{') {
        return None;
    }
    bytes.remove(start);
    String::from_utf8(bytes).ok()
}

/// An event on its way to the file's thread: its time, and its text
/// fields copied into one string.
struct Queued {
    time: SystemTime,
    event: Event<'static>,
    text: String,
    /// Where `device`, `key`, `application`, `address`, `previous_key`
    /// and `source` are in `text`.
    spans: [Option<(usize, usize)>; 6],
}

impl Queued {
    fn of(event: &Event<'_>) -> Self {
        let fields = [
            event.device,
            event.key,
            event.application,
            event.address,
            event.previous_key,
            event.source,
        ];
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let spans = fields.map(|field| {
            field.map(|field| {
                let start = text.len();
                text.push_str(field);
                (start, text.len())
            })
        });
        Self {
            time: SystemTime::now(),
            event: Event {
                device: None,
                key: None,
                application: None,
                address: None,
                previous_key: None,
                source: None,
                ..event.clone()
            },
            text,
            spans,
        }
    }

    fn line(&self, broker: &str, node: Option<u64>) -> Option<String> {
        let [device, key, application, address, previous_key, source] = self
            .spans
            .map(|span| span.and_then(|(start, end)| self.text.get(start..end)));
        let event = Event {
            device,
            key,
            application,
            address,
            previous_key,
            source,
            ..self.event.clone()
        };
        line(self.time, broker, node, &event)
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if let Output::File { lines, writer, .. } = &mut self.output {
            // The thread writes what is queued, then sees the queue closed.
            drop(lines.take());
            if let Some(writer) = writer.take() {
                let _ = writer.join();
            }
        }
    }
}

/// The thread of an audit file: waits for a line, gathers what comes within
/// [`AUDIT_WRITE_DELAY`], and appends it all with one write.
fn write_lines(
    mut file: File,
    (broker, node): (&str, Option<u64>),
    lines: &Receiver<Queued>,
    failed: &Mutex<(u64, Option<String>)>,
) {
    let mut batch = String::new();
    let add = |batch: &mut String, queued: Queued| {
        if let Some(line) = queued.line(broker, node) {
            batch.push_str(&line);
            batch.push('\n');
        }
    };
    while let Ok(queued) = lines.recv() {
        add(&mut batch, queued);
        // Not woken per line meanwhile: the broker's sends find no one
        // waiting, and make no system call.
        std::thread::sleep(AUDIT_WRITE_DELAY);
        let mut count = 1u64;
        let closed = loop {
            match lines.try_recv() {
                Ok(queued) => {
                    add(&mut batch, queued);
                    count += 1;
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if let Err(e) = file.write_all(batch.as_bytes()) {
            let mut failed = failed.lock().unwrap_or_else(PoisonError::into_inner);
            failed.0 = failed.0.saturating_add(count);
            failed.1 = Some(e.to_string());
        }
        batch.clear();
        if batch.capacity() > 1 << 20 {
            batch.shrink_to(64 * 1024);
        }
        if closed {
            break;
        }
    }
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = match &self.output {
            Output::File { path, .. } => path.display().to_string(),
            Output::Log(_) => "the broker's log".into(),
            Output::Off => "nowhere (off)".into(),
        };
        f.debug_struct("Audit")
            .field("to", &to)
            .field("broker", &self.broker)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// `time`, RFC 3339 UTC to the millisecond.
fn time_text(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = UnixTime::from_secs(since.as_secs())
        .unwrap_or(UnixTime::EPOCH)
        .to_string();
    format!(
        "{}.{:03}Z",
        second.trim_end_matches('Z'),
        since.subsec_millis()
    )
}

impl Audit {
    /// Appends to the file at `path` (created with mode 0600 if missing).
    pub fn to_file(path: &Path, broker: &'static str, node: Option<u64>) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let failed = Arc::new(Mutex::new((0, None)));
        let (lines, queue) = std::sync::mpsc::sync_channel(AUDIT_QUEUE_LINES);
        let writer = {
            let failed = failed.clone();
            std::thread::Builder::new()
                .name("audit-file".into())
                .spawn(move || write_lines(file, (broker, node), &queue, &failed))?
        };
        let mut audit = Self::with(
            Output::File {
                path: path.to_owned(),
                lines: Some(lines),
                writer: Some(writer),
            },
            broker,
            node,
        );
        audit.failed = failed;
        Ok(audit)
    }

    /// Hands each line to `log` (the broker's log).
    pub fn to_log(
        log: impl Fn(&str) + Send + Sync + 'static,
        broker: &'static str,
        node: Option<u64>,
    ) -> Self {
        Self::with(Output::Log(Box::new(log)), broker, node)
    }

    /// No audit trail at all (the operator's `audit = off`): every event
    /// is dropped before it is formatted.
    pub fn off(broker: &'static str, node: Option<u64>) -> Self {
        Self::with(Output::Off, broker, node)
    }

    /// Whether events are written anywhere (not [`Audit::off`]).
    pub fn is_on(&self) -> bool {
        !matches!(self.output, Output::Off)
    }

    fn with(output: Output, broker: &'static str, node: Option<u64>) -> Self {
        Self {
            output,
            broker,
            node,
            budget: Mutex::new(Budget::default()),
            failed: Arc::new(Mutex::new((0, None))),
        }
    }

    /// Writes `event`, always.
    pub fn write(&self, event: &Event<'_>) {
        match &self.output {
            Output::Off => {}
            Output::Log(log) => {
                if let Some(line) = line(SystemTime::now(), self.broker, self.node, event) {
                    log(&line);
                }
            }
            Output::File { lines, .. } => {
                // The thread formats it: the broker only copies the event.
                let queued = Queued::of(event);
                // Waits while the queue is full; fails only if the thread
                // is gone (it panicked), and then the line is counted.
                if lines
                    .as_ref()
                    .is_none_or(|lines| lines.send(queued).is_err())
                {
                    let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
                    failed.0 = failed.0.saturating_add(1);
                    failed.1 = Some("the audit file's thread is gone".into());
                }
            }
        }
    }

    /// Writes a refusal within the budget, or counts it.
    pub fn refused(&self, event: &Event<'_>) {
        self.refused_at(event, Instant::now());
    }

    /// [`Audit::refused`] at the time `now`.
    pub fn refused_at(&self, event: &Event<'_>, now: Instant) {
        if !self.is_on() {
            return;
        }
        let held_back = {
            let mut budget = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
            let over = budget
                .start
                .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
            if over {
                budget.start = Some(now);
                budget.written = 0;
            }
            if budget.written >= AUDIT_REFUSALS_PER_SECOND {
                budget.held_back = budget.held_back.saturating_add(1);
                return;
            }
            budget.written += 1;
            std::mem::take(&mut budget.held_back)
        };
        if held_back > 0 {
            self.not_written(held_back);
        }
        self.write(event);
    }

    /// A change set applied: `from` is the broker's description of where it
    /// came from (one naming the database is the database's, else the
    /// files'), with what it changed and the sessions it revoked.
    pub fn records_applied(&self, from: &str, keys: usize, devices: usize, revoked: usize) {
        self.write(&Event {
            event: "records_applied",
            source: Some(if from.contains("database") {
                "database"
            } else {
                "files"
            }),
            keys: Some(keys),
            devices: Some(devices),
            revoked: Some(revoked),
            ..Event::default()
        });
    }

    /// A takeover of `device`'s live session (of `previous`'s key) by
    /// `key`, the `takeovers`-th in its minute; and, with `conflict`, the
    /// `conflicting_client_id` event after it.
    pub fn takeover(
        &self,
        (device, key, previous): (&str, &str, &str),
        address: &str,
        takeovers: u32,
        conflict: bool,
    ) {
        let mut event = Event {
            event: "takeover",
            device: Some(device),
            key: Some(key),
            previous_key: Some(previous),
            address: Some(address),
            takeovers: Some(takeovers),
            ..Event::default()
        };
        self.write(&event);
        if conflict {
            event.event = "conflicting_client_id";
            self.write(&event);
        }
    }

    fn not_written(&self, count: u64) {
        self.write(&Event {
            event: "refusals_not_written",
            count: Some(count),
            ..Event::default()
        });
    }

    /// Writes the count of refusals held back once their second is over
    /// (call it about once a second), and returns a line for the broker's
    /// log if the file refused lines since the last call.
    pub fn flush(&self) -> Option<String> {
        self.flush_at(Instant::now())
    }

    /// [`Audit::flush`] at the time `now`.
    pub fn flush_at(&self, now: Instant) -> Option<String> {
        let held_back = {
            let mut budget = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
            let running = budget
                .start
                .is_some_and(|start| now.saturating_duration_since(start) < Duration::from_secs(1));
            if running {
                0
            } else {
                std::mem::take(&mut budget.held_back)
            }
        };
        if held_back > 0 {
            self.not_written(held_back);
        }
        let (count, error) =
            std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner));
        match (&self.output, count) {
            (Output::File { path, .. }, 1..) => Some(format!(
                "{count} audit event(s) could not be written to `{}`: {}",
                crate::escape(&path.display().to_string()),
                crate::escape(error.as_deref().unwrap_or("unknown error"))
            )),
            _ => None,
        }
    }
}

/// Every reason code of a refused CONNECT (README.md, "Audit trail and
/// takeovers").
pub const AUTH_REASONS: &[&str] = &[
    "not_an_access_key",
    "unknown_key",
    "malformed_secret",
    "invalid_client_id",
    "unknown_device",
    "wrong_secret",
    "imported_secret_for_fast_verifier",
    "throttled",
    "bad_verifier",
    "inactive",
    "expired",
    "wrong_application",
    "out_of_scope",
    "takeover_refused",
    "will_denied",
    "deleted",
    "rotated",
    "device_deleted",
    "other",
];

/// Every cause code of a session ended.
pub const END_CAUSES: &[&str] = &[
    "deleted",
    "inactive",
    "expired",
    "rotated",
    "device_deleted",
    "out_of_scope",
    "wrong_application",
    "other",
];

/// The reason code of a refused authentication.
pub fn auth_reason(error: &AuthError) -> &'static str {
    match error {
        AuthError::MalformedSecret(_) => "malformed_secret",
        AuthError::InvalidDeviceId(_) => "invalid_client_id",
        AuthError::UnknownKey => "unknown_key",
        AuthError::WrongSecret { .. } => "wrong_secret",
        AuthError::ImportedSecretForFastVerifier { .. } => "imported_secret_for_fast_verifier",
        AuthError::Throttled => "throttled",
        AuthError::InactiveKey { .. } => "inactive",
        AuthError::Expired { .. } => "expired",
        AuthError::WrongApplication { .. } => "wrong_application",
        AuthError::OutOfScope { .. } => "out_of_scope",
        AuthError::BadVerifier { .. } => "bad_verifier",
        _ => "other",
    }
}

/// The cause code of a session ended, from the brokers' own words for it
/// (what [`crate::refusal_reason`] and the brokers' re-evaluations say).
pub fn end_cause(why: &str) -> &'static str {
    match why.strip_prefix("revoked: ").unwrap_or(why) {
        "the access key was deleted" => "deleted",
        "the access key is inactive" => "inactive",
        "the access key has expired" => "expired",
        "the access key's secret was rotated (new verifier)" => "rotated",
        "the device was deleted" => "device_deleted",
        "the device is outside the scope of the access key" => "out_of_scope",
        "the device belongs to another application than the access key" => "wrong_application",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn captured() -> (Audit, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let into = lines.clone();
        let audit = Audit::to_log(
            move |line| into.lock().unwrap().push(line.to_owned()),
            "rmqtt",
            Some(2),
        );
        (audit, lines)
    }

    #[test]
    fn a_line_is_one_json_object_with_the_common_fields() {
        let (audit, lines) = captured();
        audit.write(&Event {
            event: "auth_accepted",
            device: Some("d-1"),
            key: Some("stk_x"),
            address: Some("127.0.0.1:1\n{\"forged\":1}"),
            ..Event::default()
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["event"], "auth_accepted");
        assert_eq!(v["broker"], "rmqtt");
        assert_eq!(v["node"], 2);
        assert_eq!(v["device"], "d-1");
        assert!(v.get("reason").is_none());
        let time = v["time"].as_str().unwrap();
        assert_eq!(time.len(), 24, "{time}");
        assert_eq!(&time[19..20], ".");
        assert!(time.ends_with('Z'));
        assert!(format!("{}Z", &time[..19]).parse::<UnixTime>().is_ok());
    }

    #[test]
    fn refusals_past_the_budget_are_counted_and_the_count_written() {
        let (audit, lines) = captured();
        let start = Instant::now();
        let refusal = Event {
            event: "auth_refused",
            reason: Some("wrong_secret"),
            ..Event::default()
        };
        for _ in 0..AUDIT_REFUSALS_PER_SECOND + 30 {
            audit.refused_at(&refusal, start);
        }
        assert_eq!(
            lines.lock().unwrap().len(),
            AUDIT_REFUSALS_PER_SECOND as usize
        );
        // Within the second, nothing more; after it, the count.
        assert_eq!(audit.flush_at(start + Duration::from_millis(500)), None);
        assert_eq!(
            lines.lock().unwrap().len(),
            AUDIT_REFUSALS_PER_SECOND as usize
        );
        audit.flush_at(start + Duration::from_secs(1));
        let last: serde_json::Value =
            serde_json::from_str(lines.lock().unwrap().last().unwrap()).unwrap();
        assert_eq!(last["event"], "refusals_not_written");
        assert_eq!(last["count"], 30);
        // Accepted ones are never held back.
        for _ in 0..500 {
            audit.write(&Event {
                event: "auth_accepted",
                ..Event::default()
            });
        }
        assert_eq!(
            lines.lock().unwrap().len(),
            AUDIT_REFUSALS_PER_SECOND as usize + 1 + 500
        );
    }

    #[test]
    fn a_file_gets_every_line_of_every_thread_in_order_soon_and_all_at_drop() {
        let path = std::env::temp_dir().join(format!("audit-order-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let audit = Audit::to_file(&path, "rmqtt", Some(3)).unwrap();
        audit.write(&Event {
            event: "records_applied",
            keys: Some(0),
            ..Event::default()
        });
        // Soon, without the drop: within AUDIT_WRITE_DELAY and a write.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the line never reached the file");
            std::thread::sleep(Duration::from_millis(1));
        }
        // More lines than the queue holds, from four threads at once.
        let per_thread = AUDIT_QUEUE_LINES;
        std::thread::scope(|s| {
            for thread in 0..4u32 {
                let audit = &audit;
                s.spawn(move || {
                    for n in 0..per_thread {
                        audit.write(&Event {
                            event: "takeover",
                            takeovers: Some(thread),
                            keys: Some(n),
                            ..Event::default()
                        });
                    }
                });
            }
        });
        drop(audit);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines().skip(1) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                (v["broker"].as_str(), v["node"].as_u64()),
                (Some("rmqtt"), Some(3))
            );
            let thread = v["takeovers"].as_u64().unwrap() as usize;
            assert_eq!(v["keys"].as_u64(), Some(next[thread] as u64), "{line}");
            next[thread] += 1;
        }
        assert_eq!(next, [per_thread; 4]);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn off_writes_nothing_and_holds_back_nothing() {
        let audit = Audit::off("mosquitto", None);
        assert!(!audit.is_on());
        let refusal = Event {
            event: "auth_refused",
            reason: Some("wrong_secret"),
            ..Event::default()
        };
        let start = Instant::now();
        for _ in 0..AUDIT_REFUSALS_PER_SECOND * 2 {
            audit.refused_at(&refusal, start);
        }
        audit.write(&refusal);
        assert_eq!(audit.flush_at(start + Duration::from_secs(2)), None);
        assert_eq!(audit.budget.lock().unwrap().held_back, 0);
        assert!(Audit::to_log(|_| {}, "rmqtt", None).is_on());
    }

    #[test]
    fn a_file_is_appended_to_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("audit-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        for _ in 0..2 {
            let audit = Audit::to_file(&path, "mosquitto", None).unwrap();
            audit.write(&Event {
                event: "records_applied",
                source: Some("files"),
                keys: Some(1),
                ..Event::default()
            });
            assert_eq!(audit.flush(), None);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn every_cause_the_brokers_give_has_a_code() {
        use structure_access::KeyId;
        let key: KeyId = "stk_0000000000000000000000".parse().unwrap();
        for (error, code) in [
            (AuthError::InactiveKey { key }, "inactive"),
            (AuthError::Expired { key }, "expired"),
            (AuthError::OutOfScope { key }, "out_of_scope"),
            (AuthError::WrongApplication { key }, "wrong_application"),
        ] {
            assert_eq!(end_cause(&crate::refusal_reason(&error)), code);
            assert_eq!(auth_reason(&error), code);
        }
        for (why, code) in [
            ("the access key was deleted", "deleted"),
            (
                "the access key's secret was rotated (new verifier)",
                "rotated",
            ),
            ("the device was deleted", "device_deleted"),
            ("revoked: the device was deleted", "device_deleted"),
        ] {
            assert_eq!(end_cause(why), code);
            assert!(END_CAUSES.contains(&code) && AUTH_REASONS.contains(&code));
        }
    }
}
