//! The records a node decides with: read from the keys and devices files at
//! start, then changed by change sets (a reload reads only what changed in
//! the files, on a blocking thread, and the change set is applied at a cost
//! of what it names).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use structure_access::mqtt::TopicRules;
use structure_access::{DeviceId, HashPolicy, KeyId, Principal};
use structure_access_common::{Applied, ChangeSet, FileError, FileSource, Records, refusal_reason};

/// The records in force, and the files they come from.
#[derive(Debug)]
pub struct Store {
    records: RwLock<Records>,
    /// The files, when the records are theirs (none: they follow a database
    /// that could be reached at start).
    source: Option<Mutex<FileSource>>,
    /// How many change sets were applied (every CONNECT compares it before
    /// and after its verification).
    generation: AtomicU64,
    /// Whether the files are still read (no longer once the records follow
    /// a database that was down at start).
    files_in_force: std::sync::atomic::AtomicBool,
}

impl Store {
    /// Reads the files; any error refuses to start, naming the file and line.
    pub fn open(
        keys_file: PathBuf,
        devices_file: PathBuf,
        base_rules: TopicRules,
        policy: HashPolicy,
    ) -> Result<Self, String> {
        let (source, records) = FileSource::open(keys_file, devices_file, policy, base_rules)
            .map_err(|e| e.to_string())?;
        Ok(Self::with(records, Some(source)))
    }

    /// Records from elsewhere (a database's snapshot), and the files if they
    /// are theirs.
    pub fn with(records: Records, source: Option<FileSource>) -> Self {
        Self {
            records: RwLock::new(records),
            source: source.map(Mutex::new),
            generation: AtomicU64::new(0),
            files_in_force: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The records follow a database from now on: the files are no longer
    /// read.
    pub fn retire_files(&self) {
        self.files_in_force.store(false, Ordering::Release);
    }

    fn files(&self) -> Option<&Mutex<FileSource>> {
        self.source
            .as_ref()
            .filter(|_| self.files_in_force.load(Ordering::Acquire))
    }

    /// The records in force (a read lock: hold it only for a decision).
    pub fn read(&self) -> RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many change sets were applied.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a file changed on disk since the version in force was read.
    pub fn changed_on_disk(&self) -> bool {
        self.files().is_some_and(|source| {
            source
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .changed_on_disk()
        })
    }

    /// The change set from the records in force to the files as they are
    /// now, all or nothing (blocking: reads the files that changed). Apply it
    /// before asking for the next one.
    pub fn changes(&self) -> Result<ChangeSet, FileError> {
        let Some(source) = self.files() else {
            return Ok(ChangeSet::default());
        };
        let records = self.read();
        source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .changes(&records)
    }

    /// Applies `changes`; says what changed.
    pub fn apply(&self, changes: ChangeSet) -> Applied {
        let applied = self
            .records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(changes);
        self.generation.fetch_add(1, Ordering::AcqRel);
        applied
    }
}

/// The principal of a session that this node's plugin authenticated with
/// `username` (its key) as `client_id` (its device), from the records alone;
/// `Err` says why it does not stand.
pub fn principal(records: &Records, client_id: &str, username: &str) -> Result<Principal, String> {
    let key: KeyId = username
        .parse()
        .map_err(|_| "the username is not an access key".to_string())?;
    let device_id: DeviceId = client_id
        .parse()
        .map_err(|_| "the client id is not a device ID".to_string())?;
    let record = records
        .key(&key)
        .ok_or_else(|| "the access key was deleted".to_string())?;
    let device = records
        .device(device_id.as_str())
        .ok_or_else(|| "the device was deleted".to_string())?;
    Principal::reauthorize(record, &device, structure_access::UnixTime::now())
        .map_err(|e| refusal_reason(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    use structure_access::{AccessKey, DeviceRecord, Restriction, Scope};
    use structure_access_common::KeyChanged;

    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "structure-rmqtt-state-{}-{name}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self { dir }
        }
        fn write(&self, keys: &[&AccessKey], devices: &[DeviceRecord]) {
            let keys: String = keys
                .iter()
                .map(|k| serde_json::to_string(k).unwrap() + "\n")
                .collect();
            let devices: String = devices
                .iter()
                .map(|d| serde_json::to_string(d).unwrap() + "\n")
                .collect();
            for (name, text) in [("keys", keys), ("devices", devices)] {
                let tmp = self.dir.join(format!(".{name}"));
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, self.dir.join(name)).unwrap();
            }
        }
        fn store(&self) -> Store {
            Store::open(
                self.dir.join("keys"),
                self.dir.join("devices"),
                TopicRules::default(),
                HashPolicy::default(),
            )
            .unwrap()
        }
    }

    fn key(seed: u64, scope: Scope) -> AccessKey {
        AccessKey::generate(
            &mut ChaCha20Rng::seed_from_u64(seed),
            "app1".parse().unwrap(),
            scope,
            &HashPolicy::default(),
        )
        .unwrap()
        .record
    }

    fn device(id: &str, tags: &[(&str, &str)]) -> DeviceRecord {
        tags.iter().fold(
            DeviceRecord::new("app1".parse().unwrap(), id.parse().unwrap()),
            |d, (k, v)| d.with_tag(k, v),
        )
    }

    #[test]
    fn a_reload_is_all_or_nothing_and_says_what_changed() {
        let files = Files::new("reload");
        let trucks: Restriction = "vehicle=truck".parse().unwrap();
        let (open, fleet) = (key(1, Scope::Unrestricted), key(2, trucks.into()));
        let devices = [
            device("d1", &[]),
            device("t1", &[("vehicle", "truck")]),
            device("t2", &[("vehicle", "truck")]),
        ];
        files.write(&[&open, &fleet], &devices);
        let store = files.store();
        assert_eq!(store.generation(), 0);
        assert!(!store.changed_on_disk());
        let (o, f) = (open.key().as_str(), fleet.key().as_str());
        assert!(principal(&store.read(), "t1", f).is_ok());

        // A broken file: refused with its line, the records in force stay.
        std::fs::write(files.dir.join("keys"), "not json\n").unwrap();
        assert!(store.changed_on_disk());
        let err = store.changes().unwrap_err().to_string();
        assert!(err.contains("keys` line 1"), "{err}");
        assert!(principal(&store.read(), "t1", f).is_ok());

        // The fleet key deleted, t2 moved out of the trucks.
        let moved = [
            device("d1", &[]),
            device("t1", &[("vehicle", "truck")]),
            device("t2", &[("vehicle", "car")]),
        ];
        files.write(&[&open], &moved);
        let applied = store.apply(store.changes().unwrap());
        assert_eq!(store.generation(), 1);
        assert_eq!(applied.keys, [(*fleet.key(), KeyChanged::Removed)]);
        assert_eq!(applied.devices, ["t2".parse::<DeviceId>().unwrap()]);
        assert_eq!(
            principal(&store.read(), "t1", f).unwrap_err(),
            "the access key was deleted"
        );
        assert!(principal(&store.read(), "t1", o).is_ok());
        assert_eq!(
            principal(&store.read(), "d1", "not a key").unwrap_err(),
            "the username is not an access key"
        );
    }
}
