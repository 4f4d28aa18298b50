//! The records a node decides with: loaded from the keys and devices files,
//! swapped all-or-nothing on reload, and the decisions a reload takes about
//! live sessions.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use structure_access::mqtt::TopicRules;
use structure_access::{DeviceId, HashPolicy, KeyId, Principal};
use structure_access_common::{Records, stamps};

/// One consistent version of the files, and which load it is.
#[derive(Debug)]
pub struct Loaded {
    /// The keys, devices and topic rules.
    pub records: Records,
    /// Which load this is (0 at start, one more at each reload).
    pub generation: u64,
}

impl std::ops::Deref for Loaded {
    type Target = Records;
    fn deref(&self) -> &Records {
        &self.records
    }
}

impl Loaded {
    /// The principal of a session that this node's plugin authenticated with
    /// `username` (its key) as `client_id` (its device), under these records;
    /// `Err` says why it no longer stands.
    pub fn principal(&self, client_id: &str, username: &str) -> Result<Principal, String> {
        let key: KeyId = username
            .parse()
            .map_err(|_| "the username is not an access key".to_string())?;
        let device_id: DeviceId = client_id
            .parse()
            .map_err(|_| "the client id is not a device ID".to_string())?;
        let record = self
            .keys
            .get(&key)
            .ok_or_else(|| "the access key was deleted".to_string())?;
        let device = self
            .devices
            .get(&device_id)
            .ok_or_else(|| "the device was deleted".to_string())?;
        Principal::reauthorize(record, device).map_err(|e| e.to_string())
    }
}

/// Why a live session authenticated with `username` as `client_id` under `old`
/// must end under `new`, or `None` if it stands (its next check uses `new`).
/// A changed verifier ends it: the secret was rotated.
pub fn revoked(old: &Loaded, new: &Loaded, client_id: &str, username: &str) -> Option<String> {
    let key = username.parse::<KeyId>().ok()?;
    if let (Some(before), Some(after)) = (old.keys.get(&key), new.keys.get(&key))
        && before.verifier() != after.verifier()
    {
        return Some("the access key's secret was rotated (new verifier)".into());
    }
    new.principal(client_id, username).err()
}

/// The devices whose sessions a change from `old` to `new` may end: every
/// device a changed or deleted key could authenticate, and every changed or
/// deleted device. (Sessions on this node are all looked at; this bounds what
/// is asked of the other nodes.)
pub fn affected(old: &Loaded, new: &Loaded) -> BTreeSet<DeviceId> {
    let mut ids = BTreeSet::new();
    for (key, before) in &old.keys {
        // Every device already in: the other changed keys add nothing (and a
        // reload changing many keys stays linear in the devices).
        if ids.len() == old.devices.len() {
            break;
        }
        if new.keys.get(key) != Some(before) {
            ids.extend(
                old.devices
                    .values()
                    .filter(|d| before.can_see(*d))
                    .map(|d| *d.device_id()),
            );
        }
    }
    for (id, before) in &old.devices {
        if new.devices.get(id) != Some(before) {
            ids.insert(*id);
        }
    }
    ids
}

/// The files, and the version of them in force.
#[derive(Debug)]
pub struct Store {
    keys_file: PathBuf,
    devices_file: PathBuf,
    base_rules: TopicRules,
    policy: HashPolicy,
    current: RwLock<Arc<Loaded>>,
    /// The generation in force, readable without the lock (every delivery
    /// asks it).
    generation: AtomicU64,
}

impl Store {
    /// Reads the files; any error refuses to start, naming the file and line.
    pub fn open(
        keys_file: PathBuf,
        devices_file: PathBuf,
        base_rules: TopicRules,
        policy: HashPolicy,
    ) -> Result<Self, String> {
        let mut store = Self {
            keys_file,
            devices_file,
            base_rules,
            policy,
            current: RwLock::new(Arc::new(Loaded {
                records: Records::empty(),
                generation: 0,
            })),
            generation: AtomicU64::new(0),
        };
        let loaded = store.load(0)?;
        store.current = RwLock::new(Arc::new(loaded));
        Ok(store)
    }

    fn load(&self, generation: u64) -> Result<Loaded, String> {
        // Stamps first: a change while reading is seen at the next look.
        let stamps = stamps(&self.keys_file, &self.devices_file);
        let records = Records::load(
            &self.keys_file,
            &self.devices_file,
            stamps,
            &self.policy,
            &self.base_rules,
        )
        .map_err(|e| e.to_string())?;
        Ok(Loaded {
            records,
            generation,
        })
    }

    /// The version in force.
    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The generation of the version in force.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a file changed on disk since the version in force was read.
    pub fn changed_on_disk(&self) -> bool {
        stamps(&self.keys_file, &self.devices_file) != self.current().stamps
    }

    /// Reads the files as they are now, all or nothing, without putting
    /// them in force: on any error the error names file and line.
    pub fn read(&self) -> Result<Loaded, String> {
        self.load(0)
    }

    /// Puts `loaded` in force, numbered after the version in force. Returns
    /// the previous version and the new one.
    pub fn put(&self, mut loaded: Loaded) -> (Arc<Loaded>, Arc<Loaded>) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Numbered under the lock: two reloads at once never share a number.
        loaded.generation = current.generation + 1;
        let new = Arc::new(loaded);
        let old = std::mem::replace(&mut *current, new.clone());
        self.generation.store(new.generation, Ordering::Release);
        (old, new)
    }

    /// Reads the files again and puts them in force, all or nothing: on any
    /// error the version in force stays, and the error names file and line.
    /// Returns the previous version and the new one.
    pub fn reload(&self) -> Result<(Arc<Loaded>, Arc<Loaded>), String> {
        Ok(self.put(self.read()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    use structure_access::{AccessKey, DeviceRecord, Restriction, Scope};

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
            std::fs::write(self.dir.join("keys"), keys).unwrap();
            std::fs::write(self.dir.join("devices"), devices).unwrap();
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
    fn a_reload_is_all_or_nothing_and_says_what_it_revokes() {
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
        assert_eq!(store.current().generation, 0);
        assert!(!store.changed_on_disk());
        let (o, f) = (open.key().as_str(), fleet.key().as_str());
        assert!(store.current().principal("t1", f).is_ok());

        // A broken file: refused with its line, the records in force stay.
        std::fs::write(files.dir.join("keys"), "not json\n").unwrap();
        assert!(store.changed_on_disk());
        let err = store.reload().unwrap_err();
        assert!(err.contains("keys` line 1"), "{err}");
        assert!(store.current().principal("t1", f).is_ok());

        // The fleet key deleted, t2 moved out of the trucks: only their
        // sessions end; the unrestricted key's stand.
        let moved = [
            device("d1", &[]),
            device("t1", &[("vehicle", "truck")]),
            device("t2", &[("vehicle", "car")]),
        ];
        files.write(&[&open], &moved);
        let (old, new) = store.reload().unwrap();
        assert_eq!(new.generation, 1);
        assert_eq!(
            revoked(&old, &new, "t1", f).as_deref(),
            Some("the access key was deleted")
        );
        assert_eq!(revoked(&old, &new, "t1", o), None);
        assert_eq!(revoked(&old, &new, "d1", o), None);
        assert_eq!(revoked(&old, &new, "d1", "not a key"), None);
        let ids: Vec<String> = affected(&old, &new).iter().map(|d| d.to_string()).collect();
        assert_eq!(ids, ["t1", "t2"]);

        // A rotated verifier ends the key's sessions.
        let rotated = open
            .clone()
            .with_verifier(key(3, Scope::Unrestricted).verifier().clone());
        files.write(&[&rotated], &moved);
        let (old, new) = store.reload().unwrap();
        assert_eq!(
            revoked(&old, &new, "d1", o).as_deref(),
            Some("the access key's secret was rotated (new verifier)")
        );
        // A deleted device ends its sessions.
        files.write(&[&rotated], &moved[..2]);
        let (old, new) = store.reload().unwrap();
        assert_eq!(
            revoked(&old, &new, "t2", o).as_deref(),
            Some("the device was deleted")
        );
    }
}
