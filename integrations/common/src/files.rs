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

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use structure_access::mqtt::TopicRules;
use structure_access::{AccessKey, DeviceId, DeviceRecord, HashPolicy, KeyId};

use crate::records::{ChangeSet, DeviceChange, KeyChange, Records};
use crate::{FileError, MAX_LINE, Stamps, stamps};

/// Records applied at a time while a file is read whole: the change set in
/// hand stays small however large the file.
const BATCH: usize = 10_000;

/// The two files, and what of them is in force.
#[derive(Debug)]
pub struct FileSource {
    keys_file: PathBuf,
    devices_file: PathBuf,
    policy: HashPolicy,
    /// Hashes of the lines in force, per file.
    key_lines: HashSet<u128>,
    device_lines: HashSet<u128>,
    /// The stamps of the files in force.
    stamps: Stamps,
    seed: u64,
}

/// How a file's line is found again: a hash of its text, keyed per process.
fn line_hash(seed: u64, line: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(line.as_bytes(), seed)
}

/// Calls `each(line_number, line)` for every non-empty, non-comment line,
/// reading a line at a time: at most [`MAX_LINE`] bytes are held.
pub fn for_each_line(
    path: &Path,
    mut each: impl FnMut(usize, &str) -> Result<(), String>,
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
        let line = std::str::from_utf8(&buf).map_err(|_| line_error("not UTF-8".into()))?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
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

fn parse_device(line: &str) -> Result<DeviceRecord, String> {
    serde_json::from_str(line).map_err(|e| e.to_string())
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
            key_lines: HashSet::new(),
            device_lines: HashSet::new(),
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
        let (seed, policy, lines) = (self.seed, &self.policy, &mut self.key_lines);
        for_each_line(&self.keys_file, |_, line| {
            let record = parse_key(line, policy)?;
            let key = *record.key();
            if records.key(&key).is_some() || !pending.insert(key) {
                return Err(format!("access key `{key}` appears twice"));
            }
            let hash = line_hash(seed, line);
            lines.insert(hash);
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
        let mut batch = ChangeSet::default();
        let mut pending = HashSet::new();
        let (seed, lines) = (self.seed, &mut self.device_lines);
        for_each_line(&self.devices_file, |_, line| {
            let record = parse_device(line)?;
            let id = *record.device_id();
            if records.device(id.as_str()).is_some() || !pending.insert(id) {
                return Err(format!("device `{id}` appears twice"));
            }
            let hash = line_hash(seed, line);
            lines.insert(hash);
            batch.devices.push(DeviceChange::Put(record, hash));
            if batch.len() == BATCH {
                records.apply(std::mem::take(&mut batch));
                pending.clear();
            }
            Ok(())
        })?;
        records.apply(batch);
        Ok(())
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
        let keys = (now.0 != self.stamps.0)
            .then(|| self.key_changes(records))
            .transpose()?;
        let devices = (now.1 != self.stamps.1)
            .then(|| self.device_changes(records))
            .transpose()?;
        let mut changes = ChangeSet::default();
        if let Some((lines, puts)) = keys {
            self.key_lines = lines;
            changes.keys = puts;
        }
        if let Some((lines, puts)) = devices {
            self.device_lines = lines;
            changes.devices = puts;
        }
        self.stamps = now;
        Ok(changes)
    }

    fn key_changes(&self, records: &Records) -> Result<(HashSet<u128>, Vec<KeyChange>), FileError> {
        let mut seen = HashSet::with_capacity(self.key_lines.len());
        let mut puts: HashMap<KeyId, (Arc<AccessKey>, u128, usize)> = HashMap::new();
        for_each_line(&self.keys_file, |number, line| {
            let hash = line_hash(self.seed, line);
            let first = seen.insert(hash);
            if first && self.key_lines.contains(&hash) {
                return Ok(());
            }
            let record = parse_key(line, &self.policy)?;
            let key = *record.key();
            if !first || puts.insert(key, (Arc::new(record), hash, number)).is_some() {
                return Err(format!("access key `{key}` appears twice"));
            }
            Ok(())
        })?;
        let twice = |number: usize, key: &KeyId| FileError::Line {
            path: self.keys_file.clone(),
            line: number,
            reason: format!("access key `{key}` appears twice"),
        };
        let mut changes = Vec::with_capacity(puts.len());
        for (key, (record, hash, number)) in puts {
            // A record put while its line in force is still in the file.
            if records.key_version(&key).is_some_and(|v| seen.contains(&v)) {
                return Err(twice(number, &key));
            }
            changes.push(KeyChange::Put(record, hash));
        }
        let put: HashSet<KeyId> = changes
            .iter()
            .filter_map(|c| match c {
                KeyChange::Put(record, _) => Some(*record.key()),
                KeyChange::Remove(_) => None,
            })
            .collect();
        changes.extend(
            records
                .keys()
                .filter(|(key, _, version)| !seen.contains(version) && !put.contains(*key))
                .map(|(key, _, _)| KeyChange::Remove(*key)),
        );
        Ok((seen, changes))
    }

    fn device_changes(
        &self,
        records: &Records,
    ) -> Result<(HashSet<u128>, Vec<DeviceChange>), FileError> {
        let mut seen = HashSet::with_capacity(self.device_lines.len());
        let mut puts: HashMap<DeviceId, (DeviceRecord, u128, usize)> = HashMap::new();
        for_each_line(&self.devices_file, |number, line| {
            let hash = line_hash(self.seed, line);
            let first = seen.insert(hash);
            if first && self.device_lines.contains(&hash) {
                return Ok(());
            }
            let record = parse_device(line)?;
            let id = *record.device_id();
            if !first || puts.insert(id, (record, hash, number)).is_some() {
                return Err(format!("device `{id}` appears twice"));
            }
            Ok(())
        })?;
        let mut changes = Vec::with_capacity(puts.len());
        for (id, (record, hash, number)) in puts {
            if records
                .device(id.as_str())
                .is_some_and(|d| seen.contains(&d.line()))
            {
                return Err(FileError::Line {
                    path: self.devices_file.clone(),
                    line: number,
                    reason: format!("device `{id}` appears twice"),
                });
            }
            changes.push(DeviceChange::Put(record, hash));
        }
        let put: HashSet<DeviceId> = changes
            .iter()
            .filter_map(|c| match c {
                DeviceChange::Put(record, _) => Some(*record.device_id()),
                DeviceChange::Remove(_) => None,
            })
            .collect();
        changes.extend(
            records
                .devices()
                .iter()
                .filter(|device| !seen.contains(&device.line()))
                .filter_map(|device| device.id_str().parse::<DeviceId>().ok())
                .filter(|id| !put.contains(id))
                .map(DeviceChange::Remove),
        );
        Ok((seen, changes))
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
