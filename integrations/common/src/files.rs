//! The keys and devices files as a source of change sets.
//!
//! - keys file: one [`AccessKey`] record per line, the core's JSON;
//! - devices file: one [`DeviceRecord`] per line, the platform's JSON
//!   (`{"id": "...", "application": "...", "tags": [{"key": "...", "value": "..."}]}`).
//!
//! Empty lines and lines starting with `#` are skipped; every error names the
//! file and the line.
//!
//! [`FileSource::open`] reads both files whole, streaming them (a line at a
//! time, in bounded memory). After that, [`FileSource::changes`] reads again
//! only a file whose stamp changed, hashes each line, parses only the lines
//! it has not seen before, and gives the change set from the records in force
//! to the files: a key deleted from a file of 100 000 costs reading the file,
//! not parsing it. It runs off the broker's thread; the broker applies what
//! it returns.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use structure_access::mqtt::TopicRules;
use structure_access::{
    AccessKey, ApplicationId, Device, DeviceId, DeviceRecord, HashPolicy, KeyId,
};

use crate::records::{ChangeSet, DeviceChange, KeyChange, Records};
use crate::{FileError, MAX_LINE, Stamps, stamps};

/// Records applied at a time while a file is read whole: the change set in
/// hand stays small however large the file.
const BATCH: usize = 10_000;

/// The hasher of the sets of line hashes: the values are keyed xxh3 hashes
/// already, so their low bits serve as they are.
#[derive(Debug, Default, Clone, Copy)]
struct LineHasher(u64);

impl std::hash::Hasher for LineHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Hashes of lines.
type Lines = HashSet<u64, BuildHasherDefault<LineHasher>>;

/// The two files, and what of them is in force.
#[derive(Debug)]
pub struct FileSource {
    keys_file: PathBuf,
    devices_file: PathBuf,
    policy: HashPolicy,
    /// The lines in force, per file.
    key_file: InForce,
    device_file: InForce,
    /// The stamps of the files in force.
    stamps: Stamps,
    seed: u64,
}

/// How a file's line is found again: a hash of its text, keyed per process.
fn line_hash(seed: u64, line: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(line, seed)
}

/// Calls `each(line_number, line)` for every non-empty, non-comment line,
/// reading a line at a time: at most [`MAX_LINE`] bytes are held.
pub fn for_each_line(
    path: &Path,
    mut each: impl FnMut(usize, &str) -> Result<(), String>,
) -> Result<(), FileError> {
    for_each_raw_line(path, |number, line| {
        let line = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
        each(number, line)
    })
}

/// [`for_each_line`], the lines as bytes (trimmed of ASCII white space): a
/// line seen before needs no UTF-8 check, only its hash.
fn for_each_raw_line(
    path: &Path,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), String>,
) -> Result<(), FileError> {
    let read_error = |error| FileError::Read {
        path: path.to_owned(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        let read = Read::take(&mut reader, MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(read_error)?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let line_error = |reason: String| FileError::Line {
            path: path.to_owned(),
            line: number,
            reason,
        };
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.len() > MAX_LINE {
            return Err(line_error(format!("longer than {MAX_LINE} bytes")));
        }
        let trimmed = buf.trim_ascii();
        if trimmed.is_empty() || trimmed.first() == Some(&b'#') {
            continue;
        }
        each(number, trimmed).map_err(line_error)?;
    }
}

fn parse_key(line: &str, policy: &HashPolicy) -> Result<AccessKey, String> {
    let record: AccessKey = serde_json::from_str(line).map_err(|e| e.to_string())?;
    policy.check(record.verifier()).map_err(|e| {
        format!(
            "access key `{}`: verifier refused by the hash policy: {e}",
            record.key()
        )
    })?;
    Ok(record)
}

/// Adds the device of a line (a devices file's, or a database row's JSON) to
/// `devices`, at start: refused if it is no device, or one already there.
pub(crate) fn put_device_line(
    devices: &mut crate::devices::Devices,
    line: &str,
    version: u64,
) -> Result<(), String> {
    let (added, id) = match DeviceLine::read(line) {
        Some(device) => (
            devices.insert_new(&device.id, &device.application, || device.tags(), version),
            device.id,
        ),
        None => {
            let record = parse_device(line)?;
            let added =
                devices.insert_new(record.id(), record.application(), || record.tags(), version);
            (added, Cow::Owned(record.id().to_owned()))
        }
    };
    if added {
        Ok(())
    } else {
        Err(format!("device `{}` appears twice", crate::escape(&id)))
    }
}

fn parse_device(line: &str) -> Result<DeviceRecord, String> {
    serde_json::from_str(line).map_err(|e| e.to_string())
}

/// A device's line, its strings borrowed from the line when they hold no
/// escape: the shape of `DeviceRecord`'s JSON, read without allocating per
/// device (a platform's million are read at start).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceLine<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    application: Cow<'a, str>,
    #[serde(default, borrow)]
    tags: Vec<TagLine<'a>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TagLine<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
}

impl<'a> DeviceLine<'a> {
    /// The line's device, if it is one `DeviceRecord` would read (anything
    /// else goes through `DeviceRecord`, for its error message).
    fn read(line: &'a str) -> Option<Self> {
        let device: Self = serde_json::from_str(line).ok()?;
        let valid = device.id.parse::<DeviceId>().is_ok()
            && device.application.parse::<ApplicationId>().is_ok()
            && device.tags.len() <= structure_access::MAX_DEVICE_TAGS;
        valid.then_some(device)
    }

    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|t| (&*t.key, &*t.value))
    }
}

impl FileSource {
    /// Reads both files whole (checking every key's verifier against
    /// `policy`): the records at start, under `base_rules`.
    pub fn open(
        keys_file: PathBuf,
        devices_file: PathBuf,
        policy: HashPolicy,
        base_rules: TopicRules,
    ) -> Result<(Self, Records), FileError> {
        let mut seed = [0u8; 8];
        // A seed per process keeps the hashes of the lines from being chosen
        // to collide; without randomness a fixed one does as well for files
        // the operator writes.
        let _ = getrandom::fill(&mut seed);
        let mut source = Self {
            stamps: stamps(&keys_file, &devices_file),
            keys_file,
            devices_file,
            key_file: InForce::default(),
            device_file: InForce::default(),
            seed: u64::from_le_bytes(seed),
            policy: policy.clone(),
        };
        let mut records = Records::new(policy, base_rules);
        source.load_keys(&mut records)?;
        source.load_devices(&mut records)?;
        Ok((source, records))
    }

    fn load_keys(&mut self, records: &mut Records) -> Result<(), FileError> {
        let mut batch = ChangeSet::default();
        let mut pending = HashSet::new();
        let (seed, policy, file) = (self.seed, &self.policy, &mut self.key_file);
        for_each_line(&self.keys_file, |_, line| {
            let record = parse_key(line, policy)?;
            let key = *record.key();
            if records.key(&key).is_some() || !pending.insert(key) {
                return Err(format!("access key `{key}` appears twice"));
            }
            let hash = line_hash(seed, line.as_bytes());
            file.push(hash);
            batch.keys.push(KeyChange::Put(Arc::new(record), hash));
            if batch.len() == BATCH {
                records.apply(std::mem::take(&mut batch));
                pending.clear();
            }
            Ok(())
        })?;
        records.apply(batch);
        Ok(())
    }

    fn load_devices(&mut self, records: &mut Records) -> Result<(), FileError> {
        let (seed, file) = (self.seed, &mut self.device_file);
        let devices = records.devices_mut();
        let read = for_each_line(&self.devices_file, |_, line| {
            let hash = line_hash(seed, line.as_bytes());
            file.push(hash);
            put_device_line(devices, line, hash)
        });
        records.refresh_rules();
        read
    }

    /// The keys file.
    pub fn keys_file(&self) -> &Path {
        &self.keys_file
    }

    /// The devices file.
    pub fn devices_file(&self) -> &Path {
        &self.devices_file
    }

    /// The stamps of the files in force.
    pub fn stamps(&self) -> Stamps {
        self.stamps
    }

    /// Whether a file changed on disk since the version in force was read.
    pub fn changed_on_disk(&self) -> bool {
        stamps(&self.keys_file, &self.devices_file) != self.stamps
    }

    /// The change set from `records` (those in force, read from this source)
    /// to the files as they are now, all or nothing: on an error (naming the
    /// file and line) nothing is returned and nothing changes here. A file
    /// whose stamp did not change is not read. The caller applies the change
    /// set to `records` before asking for the next one.
    pub fn changes(&mut self, records: &Records) -> Result<ChangeSet, FileError> {
        let now = stamps(&self.keys_file, &self.devices_file);
        let policy = &self.policy;
        let keys = (now.0 != self.stamps.0)
            .then(|| {
                self.key_file.diff(&self.keys_file, self.seed, |line| {
                    let record = parse_key(line, policy)?;
                    Ok((record.key().to_string(), record))
                })
            })
            .transpose()?;
        let devices = (now.1 != self.stamps.1)
            .then(|| {
                self.device_file
                    .diff(&self.devices_file, self.seed, |line| {
                        let record = parse_device(line)?;
                        Ok((record.id().to_owned(), record))
                    })
            })
            .transpose()?;
        let mut changes = ChangeSet::default();
        if let Some(diff) = keys {
            let (puts, removed, order) = diff.resolve(&self.keys_file, "access key", |id| {
                id.parse::<KeyId>()
                    .ok()
                    .and_then(|key| records.key_version(&key))
            })?;
            let added: Vec<u64> = puts.iter().map(|(_, hash)| *hash).collect();
            changes.keys = puts
                .into_iter()
                .map(|(record, hash)| KeyChange::Put(Arc::new(record), hash))
                .collect();
            let put: HashSet<KeyId> = changes
                .keys
                .iter()
                .filter_map(|c| match c {
                    KeyChange::Put(record, _) => Some(*record.key()),
                    KeyChange::Remove(_) => None,
                })
                .collect();
            if !removed.is_empty() {
                changes.keys.extend(
                    records
                        .keys()
                        .filter(|(key, _, version)| {
                            removed.contains(version) && !put.contains(*key)
                        })
                        .map(|(key, _, _)| KeyChange::Remove(*key)),
                );
            }
            self.key_file.commit(order, &removed, added.into_iter());
        }
        if let Some(diff) = devices {
            let (puts, removed, order) = diff.resolve(&self.devices_file, "device", |id| {
                records.device(id).map(|d| d.line())
            })?;
            let added: Vec<u64> = puts.iter().map(|(_, hash)| *hash).collect();
            changes.devices = puts
                .into_iter()
                .map(|(record, hash)| DeviceChange::Put(record, hash))
                .collect();
            if !removed.is_empty() {
                let put: HashSet<DeviceId> = changes
                    .devices
                    .iter()
                    .filter_map(|c| match c {
                        DeviceChange::Put(record, _) => Some(*record.device_id()),
                        DeviceChange::Remove(_) => None,
                    })
                    .collect();
                changes.devices.extend(
                    records
                        .devices()
                        .iter()
                        .filter(|device| removed.contains(&device.line()))
                        .filter_map(|device| device.id_str().parse::<DeviceId>().ok())
                        .filter(|id| !put.contains(id))
                        .map(DeviceChange::Remove),
                );
            }
            self.device_file.commit(order, &removed, added.into_iter());
        }
        self.stamps = now;
        Ok(changes)
    }
}

/// What of one file is in force: its lines' hashes in file order, and as a
/// set.
#[derive(Debug, Default)]
struct InForce {
    order: Vec<u64>,
    lines: Lines,
}

/// How many lines in force a new line may be ahead of its place before it
/// is looked up instead: deleting or moving a few lines keeps the walk in
/// step.
const RESYNC: usize = 8;

/// A pass over a file against the lines in force.
#[derive(Debug)]
struct Scan<T> {
    /// The new file's line hashes, in order.
    order: Vec<u64>,
    /// Lines not in force, parsed: (record, its id, hash, line number).
    puts: Vec<(T, String, u64, usize)>,
    /// Lines in force not found at their place.
    skipped: Vec<u64>,
    /// Lines in force found elsewhere, and at which line.
    moved: HashMap<u64, usize>,
}

/// A scan, before its records are checked against those in force.
struct Diff<T> {
    scan: Scan<T>,
}

impl InForce {
    /// One more line, at the end (reading a file whole).
    fn push(&mut self, hash: u64) {
        self.order.push(hash);
        self.lines.insert(hash);
    }

    /// Walks `path`'s lines beside the lines in force: a line at its place,
    /// or a few places ahead, is unchanged and costs its hash; one in force
    /// elsewhere (moved) costs a look-up; only a new line is parsed.
    fn diff<T>(
        &self,
        path: &Path,
        seed: u64,
        parse: impl Fn(&str) -> Result<(String, T), String>,
    ) -> Result<Diff<T>, FileError> {
        let mut scan = Scan {
            order: Vec::with_capacity(self.order.len()),
            puts: Vec::new(),
            skipped: Vec::new(),
            moved: HashMap::new(),
        };
        let mut at = 0;
        for_each_raw_line(path, |number, raw| {
            let hash = line_hash(seed, raw);
            scan.order.push(hash);
            if self.order.get(at) == Some(&hash) {
                at += 1;
                return Ok(());
            }
            let ahead = (1..=RESYNC).find(|&k| self.order.get(at + k) == Some(&hash));
            if let Some(k) = ahead {
                scan.skipped
                    .extend_from_slice(self.order.get(at..at + k).unwrap_or_default());
                at += k + 1;
                return Ok(());
            }
            let text = || std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_owned());
            if self.lines.contains(&hash) {
                if scan.moved.insert(hash, number).is_some() {
                    let (id, _) = parse(text()?)?;
                    return Err(twice(&id));
                }
                return Ok(());
            }
            let (id, record) = parse(text()?)?;
            scan.puts.push((record, id, hash, number));
            Ok(())
        })?;
        scan.skipped
            .extend_from_slice(self.order.get(at..).unwrap_or_default());
        Ok(Diff { scan })
    }

    /// Takes what a scan found as the lines in force: its order, without
    /// the `removed` lines, with the `added` ones.
    fn commit(&mut self, order: Vec<u64>, removed: &Lines, added: impl Iterator<Item = u64>) {
        for hash in removed {
            self.lines.remove(hash);
        }
        self.lines.extend(added);
        self.order = order;
    }
}

/// Why a line is refused: its record appears twice.
fn twice(id: &str) -> String {
    format!("`{}` appears twice", crate::escape(id))
}

impl<T> Diff<T> {
    /// Checks the scan: no record twice (a line twice, a line in force and
    /// one in place of it, two new lines of one record); `version_of(id)` is
    /// the line hash of the record `id` in force. Returns the records to put,
    /// the hashes of the lines in force that are gone, and the new file's
    /// order of lines.
    #[allow(clippy::type_complexity)]
    fn resolve(
        self,
        path: &Path,
        what: &str,
        version_of: impl Fn(&str) -> Option<u64>,
    ) -> Result<(Vec<(T, u64)>, Lines, Vec<u64>), FileError> {
        let error = |line: usize, id: &str| FileError::Line {
            path: path.to_owned(),
            line,
            reason: format!("{what} {}", twice(id)),
        };
        let scan = self.scan;
        let skipped: Lines = scan.skipped.iter().copied().collect();
        // A line in force found elsewhere and at its place too.
        if let Some((_, &line)) = scan.moved.iter().find(|(hash, _)| !skipped.contains(*hash)) {
            return Err(FileError::Line {
                path: path.to_owned(),
                line,
                reason: format!("the same line as an earlier one: its {what} appears twice"),
            });
        }
        let removed: Lines = skipped
            .into_iter()
            .filter(|hash| !scan.moved.contains_key(hash))
            .collect();
        let mut ids = HashSet::with_capacity(scan.puts.len());
        for (_, id, _, line) in &scan.puts {
            // Two new lines of one record, or a new one beside the line in
            // force of its record.
            let beside = version_of(id).is_some_and(|v| !removed.contains(&v));
            if !ids.insert(id.as_str()) || beside {
                return Err(error(*line, id));
            }
        }
        let puts = scan
            .puts
            .into_iter()
            .map(|(record, _, hash, _)| (record, hash))
            .collect();
        Ok((puts, removed, scan.order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::KeyChanged;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    use structure_access::{KeyStatus, Scope};

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("structure-files-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            // Another length or inode each time: a new stamp.
            let path = self.0.join(name);
            let tmp = self.0.join(format!(".{name}"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            path
        }
        fn open(&self) -> Result<(FileSource, Records), FileError> {
            FileSource::open(
                self.0.join("keys"),
                self.0.join("devices"),
                HashPolicy::default(),
                TopicRules::default(),
            )
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn key(seed: u64) -> AccessKey {
        AccessKey::generate(
            &mut ChaCha20Rng::seed_from_u64(seed),
            "a1".parse().unwrap(),
            Scope::Unrestricted,
            &HashPolicy::default(),
        )
        .unwrap()
        .record
    }

    fn line(record: &AccessKey) -> String {
        serde_json::to_string(record).unwrap() + "\n"
    }

    fn device(id: &str, fleet: &str) -> String {
        format!(
            "{{\"id\": \"{id}\", \"application\": \"a1\", \"tags\": [{{\"key\": \"fleet\", \"value\": \"{fleet}\"}}]}}\n"
        )
    }

    #[test]
    fn devices_are_read_with_their_application_and_errors_name_file_and_line() {
        let dir = Dir::new("read");
        dir.write("keys", "");
        dir.write(
            "devices",
            "# a comment\n\n{\"id\": \"d1\", \"application\": \"a1\"}\n{\"id\": \"d2\", \"application\": \"a1\", \"tags\": [{\"key\": \"k\", \"value\": \"v\"}]}\n",
        );
        let (_, records) = dir.open().unwrap();
        assert_eq!(records.device_count(), 2);
        assert_eq!(records.single_application(), Some("a1".parse().unwrap()));
        dir.write(
            "devices",
            "{\"id\": \"d1\", \"application\": \"a1\"}\n{\"id\": \"d1\", \"application\": \"a1\"}\n",
        );
        let err = dir.open().unwrap_err().to_string();
        assert!(
            err.ends_with("` line 2: device `d1` appears twice"),
            "{err}"
        );
        dir.write("devices", "{\"id\": \"d1\"}\n");
        let err = dir.open().unwrap_err().to_string();
        assert!(err.contains("line 1: missing field `application`"), "{err}");
        std::fs::remove_file(dir.0.join("keys")).unwrap();
        let err = dir.open().unwrap_err();
        assert!(matches!(err, FileError::Read { .. }), "{err}");
        dir.write("keys", &format!("{}{}", line(&key(1)), line(&key(1))));
        dir.write("devices", "");
        let err = dir.open().unwrap_err().to_string();
        assert!(err.contains("line 2: access key `"), "{err}");
        assert!(err.ends_with("appears twice"), "{err}");
    }

    #[test]
    fn a_crafted_field_name_makes_one_escaped_line() {
        // serde quotes an unknown field's name as it is: a `\n` in it would
        // start a forged line in the broker's log.
        let forged = "x\n2026-01-01T00:00:00: New client connected as admin\u{2028}";
        let json = serde_json::to_string(forged).unwrap();
        let dir = Dir::new("crafted");
        let mut errors = Vec::new();
        dir.write("keys", &format!("{{{json}: 1}}\n"));
        dir.write("devices", "");
        errors.push(dir.open().unwrap_err());
        dir.write("keys", "");
        dir.write("devices", &format!("{{\"id\": \"d1\", {json}: 1}}\n"));
        errors.push(dir.open().unwrap_err());
        for error in errors {
            assert!(matches!(error, FileError::Line { .. }), "{error:?}");
            let FileError::Line { reason, .. } = &error else {
                continue;
            };
            // The raw reason holds the forged line...
            assert!(reason.contains('\n'), "{reason:?}");
            // ...the message a broker logs is one line, every character shown.
            let message = error.to_string();
            assert_eq!(message.lines().count(), 1, "{message}");
            assert!(
                !message.chars().any(structure_access::is_invisible),
                "{message}"
            );
            assert!(
                message.contains("unknown field `x\\u{a}2026-01-01T00:00:00: New client connected as admin\\u{2028}`"),
                "{message}"
            );
            assert!(message.contains(" line 1: "), "{message}");
        }
        // A path is quoted like client text.
        let error = for_each_line(Path::new("/no/such\ndir"), |_, _| Ok(())).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read `/no/such\\u{a}dir`: "),
            "{error}"
        );
    }

    #[test]
    fn an_edited_file_gives_the_change_set_of_what_was_edited() {
        let dir = Dir::new("changes");
        let (k1, k2, k3) = (key(1), key(2), key(3));
        dir.write("keys", &(line(&k1) + &line(&k2)));
        dir.write("devices", &(device("d1", "f1") + &device("d2", "f1")));
        let (mut source, mut records) = dir.open().unwrap();
        assert!(!source.changed_on_disk());
        assert!(source.changes(&records).unwrap().is_empty());

        // k2 deleted, k3 added, k1 written another way (same record), d2
        // retagged, d3 added, d1 deleted.
        let k1_spaced = line(&k1).replace("\":", "\": ");
        dir.write("keys", &(k1_spaced.clone() + &line(&k3)));
        dir.write("devices", &(device("d2", "f2") + &device("d3", "f1")));
        assert!(source.changed_on_disk());
        let changes = source.changes(&records).unwrap();
        assert_eq!(changes.keys.len(), 3, "{changes:?}");
        assert_eq!(changes.devices.len(), 3, "{changes:?}");
        let mut applied = records.apply(changes);
        applied.keys.sort_by_key(|(k, _)| k.to_string());
        let mut expected = vec![
            (*k2.key(), KeyChanged::Removed),
            (*k3.key(), KeyChanged::Added),
        ];
        expected.sort_by_key(|(k, _)| k.to_string());
        assert_eq!(applied.keys, expected, "k1's new line is no change");
        let mut devices: Vec<String> = applied.devices.iter().map(|d| d.to_string()).collect();
        devices.sort();
        assert_eq!(devices, ["d1", "d2", "d3"]);
        let tags: Vec<_> = {
            use structure_access::Device;
            records
                .device("d2")
                .unwrap()
                .tags()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        };
        assert_eq!(tags, ["fleet=f2"]);
        assert!(records.device("d1").is_none());
        assert_eq!(records.key_count(), 2);

        // Nothing read again when nothing changed on disk.
        assert!(source.changes(&records).unwrap().is_empty());

        // Only the keys file changes: k1 deactivated.
        let inactive = k1.clone().with_status(KeyStatus::Inactive);
        dir.write("keys", &(line(&inactive) + &line(&k3)));
        let changes = source.changes(&records).unwrap();
        assert!(changes.devices.is_empty());
        let applied = records.apply(changes);
        assert_eq!(applied.keys, [(*k1.key(), KeyChanged::Changed)]);
        assert!(!records.key(k1.key()).unwrap().status().is_active());
    }

    /// The fast reading of a device's line never accepts what `DeviceRecord`
    /// refuses, and reads what it accepts alike: on the platform's lines, on
    /// edge cases, and on thousands of mutations of them.
    #[test]
    fn the_fast_device_line_reads_what_device_record_reads() {
        let tags100: String = (0..100)
            .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"v\"}}"))
            .collect::<Vec<_>>()
            .join(",");
        let tags101 = format!("{tags100},{{\"key\":\"x\",\"value\":\"y\"}}");
        let mut lines = vec![
            device("d1", "f1").trim().to_owned(),
            r#"{"id":"d1","application":"a1"}"#.to_owned(),
            r#"{"id":"d\u0031","application":"a1","tags":[{"key":"k\"q","value":"v\n"}]}"#
                .to_owned(),
            r#"{"id":"d1","application":"a1","tags":[]}"#.to_owned(),
            r#"{"id":"d 1","application":"a1"}"#.to_owned(),
            r#"{"id":"","application":"a1"}"#.to_owned(),
            r#"{"id":"d1","application":""}"#.to_owned(),
            r#"{"id":"d1"}"#.to_owned(),
            r#"{"id":"d1","application":"a1","extra":1}"#.to_owned(),
            r#"{"id":"d1","application":"a1","tags":[{"key":"k","value":"v","x":1}]}"#.to_owned(),
            r#"{"id":"d1","application":"a1","tags":[{"key":"k"}]}"#.to_owned(),
            r#"{"id":1,"application":"a1"}"#.to_owned(),
            format!(r#"{{"id":"d1","application":"a1","tags":[{tags100}]}}"#),
            format!(r#"{{"id":"d1","application":"a1","tags":[{tags101}]}}"#),
            format!(r#"{{"id":"{}","application":"a1"}}"#, "d".repeat(129)),
        ];
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let bases = lines.clone();
        for _ in 0..5_000 {
            use rand_chacha::rand_core::Rng;
            let base = &bases[(rng.next_u32() as usize) % bases.len()];
            let mut bytes = base.as_bytes().to_vec();
            let at = (rng.next_u32() as usize) % bytes.len();
            let alphabet = b"\"{}[],:\\ az019_-.";
            match rng.next_u32() % 3 {
                0 => bytes[at] = alphabet[(rng.next_u32() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[(rng.next_u32() as usize) % alphabet.len()]),
            }
            if let Ok(line) = String::from_utf8(bytes) {
                lines.push(line);
            }
        }
        let mut accepted = 0;
        for line in &lines {
            let slow = parse_device(line);
            match DeviceLine::read(line) {
                Some(fast) => {
                    accepted += 1;
                    assert!(slow.is_ok(), "accepted what DeviceRecord refuses: {line}");
                    let record = slow.unwrap();
                    assert_eq!(&*fast.id, record.id(), "{line}");
                    assert_eq!(&*fast.application, record.application(), "{line}");
                    assert!(fast.tags().eq(record.tags()), "{line}");
                }
                None => assert!(
                    slow.is_err() || line.contains('\\'),
                    "refused what DeviceRecord reads (without an escape): {line}"
                ),
            }
        }
        assert!(accepted > 10, "{accepted}");
    }

    #[test]
    fn lines_moved_inserted_or_deleted_anywhere_are_found() {
        let dir = Dir::new("moves");
        dir.write("keys", "");
        let all: Vec<String> = (0..40).map(|i| device(&format!("d{i}"), "f")).collect();
        dir.write("devices", &all.concat());
        let (mut source, mut records) = dir.open().unwrap();
        let ids = |changes: &ChangeSet| -> Vec<String> {
            let mut ids: Vec<String> = changes
                .devices
                .iter()
                .map(|c| match c {
                    DeviceChange::Put(r, _) => format!("put {}", r.id()),
                    DeviceChange::Remove(id) => format!("remove {id}"),
                })
                .collect();
            ids.sort();
            ids
        };
        // Reversed: every line elsewhere, nothing changed.
        let reversed: Vec<String> = all.iter().rev().cloned().collect();
        dir.write("devices", &reversed.concat());
        let changes = source.changes(&records).unwrap();
        assert!(changes.is_empty(), "{:?}", ids(&changes));
        records.apply(changes);
        // A line deleted in the middle, one inserted at the start, one
        // retagged near the end, 20 deleted at the end.
        let mut edited: Vec<String> = reversed.clone();
        edited.remove(5);
        edited.insert(0, device("new", "f"));
        edited[30] = device("d9", "g");
        edited.truncate(35);
        dir.write("devices", &edited.concat());
        let changes = source.changes(&records).unwrap();
        let mut expected = vec![
            "put new".to_owned(),
            "put d9".into(),
            format!("remove d{}", 39 - 5),
        ];
        expected.extend((0..5).map(|i| format!("remove d{i}")));
        expected.sort();
        assert_eq!(ids(&changes), expected);
        records.apply(changes);
        assert_eq!(records.device_count(), 35);
        // A line in force twice (at its place, and again further on).
        let mut twice = edited.clone();
        twice.push(edited[3].clone());
        dir.write("devices", &twice.concat());
        let err = source.changes(&records).unwrap_err().to_string();
        assert!(
            err.contains("line 36: ") && err.contains("appears twice"),
            "{err}"
        );
        // A new line for a device whose line in force is still there.
        let mut beside = edited.clone();
        beside.insert(10, device("d20", "other"));
        dir.write("devices", &beside.concat());
        let err = source.changes(&records).unwrap_err().to_string();
        assert!(err.contains("line 11: device `d20` appears twice"), "{err}");
    }

    #[test]
    fn a_broken_or_doubled_file_changes_nothing_and_names_its_line() {
        let dir = Dir::new("broken");
        let (k1, k2) = (key(1), key(2));
        dir.write("keys", &line(&k1));
        dir.write("devices", &device("d1", "f1"));
        let (mut source, records) = dir.open().unwrap();
        // An unchanged line and a changed one for the same device, in either
        // order; the same line twice; a broken line.
        for (devices, at) in [
            (device("d1", "f1") + &device("d1", "f2"), 2),
            (device("d1", "f2") + &device("d1", "f1"), 1),
            (device("d1", "f1") + &device("d1", "f1"), 2),
            (device("d1", "f1") + "{not json\n", 2),
        ] {
            dir.write("devices", &devices);
            let err = source.changes(&records).unwrap_err().to_string();
            assert!(err.contains(&format!("` line {at}: ")), "{err}");
            // Nothing taken from it: the files in force are still the old ones.
            assert!(source.changed_on_disk());
        }
        dir.write("devices", &device("d1", "f1"));
        dir.write("keys", &(line(&k1) + &line(&k2) + &line(&k2)));
        let err = source.changes(&records).unwrap_err().to_string();
        assert!(err.contains("line 3: access key `"), "{err}");
        // A good file again: only what differs from the records in force.
        dir.write("keys", &(line(&k1) + &line(&k2)));
        let changes = source.changes(&records).unwrap();
        assert_eq!(changes.keys.len(), 1);
        assert!(changes.devices.is_empty());
    }
}
