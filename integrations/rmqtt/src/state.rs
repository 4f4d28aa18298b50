//! The records a node decides with: loaded from the keys and devices files,
//! swapped all-or-nothing on reload, and the decisions a reload takes about
//! live sessions.

use std::collections::BTreeSet;
use std::path::PathBuf;
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

    /// Whether a file changed on disk since the version in force was read.
    pub fn changed_on_disk(&self) -> bool {
        stamps(&self.keys_file, &self.devices_file) != self.current().stamps
    }

    /// Reads the files again and puts them in force, all or nothing: on any
    /// error the version in force stays, and the error names file and line.
    /// Returns the previous version and the new one.
    pub fn reload(&self) -> Result<(Arc<Loaded>, Arc<Loaded>), String> {
        let generation = self.current().generation + 1;
        let new = Arc::new(self.load(generation)?);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *current, new.clone());
        Ok((old, new))
    }
}
