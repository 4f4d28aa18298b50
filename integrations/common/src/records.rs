//! The records a broker decides with, changed by change sets.
//!
//! [`Records`] holds the keys (each record behind an `Arc`, so that a
//! verification on another thread takes it without copying) and the devices
//! ([`Devices`], compact). A source of records ([`crate::files::FileSource`],
//! or a database) produces [`ChangeSet`]s off the broker's thread; applying
//! one ([`Records::apply`]) costs what it names, and says what changed
//! ([`Applied`]) so that the broker re-evaluates only the sessions of those
//! keys and devices.
//!
//! Why nothing more needs re-evaluating: the brokers decide every delivery
//! (and every publication, subscription and will) from the records in force
//! when it happens, and keep no decision about a device other than a
//! session's own. A device retagged into or out of a restricted key's scope
//! therefore changes what that key's wildcard subscriptions receive from the
//! next message on, with nothing to index; what a change can end is a
//! session: of its key (deleted, deactivated, rotated, rescoped), or of its
//! device (deleted, moved to another application or out of its key's scope).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use structure_access::mqtt::TopicRules;
use structure_access::{
    AccessKey, ApplicationId, AuthError, DeviceId, DeviceRecord, HashPolicy, KeyId, UnixTime,
};

use crate::devices::{DeviceView, Devices};

/// A key record, with the version its source gave it.
#[derive(Debug, Clone)]
struct HeldKey {
    record: Arc<AccessKey>,
    version: u64,
}

/// What a source says of one key.
#[derive(Debug, Clone)]
pub enum KeyChange {
    /// The record of its key, new or in place of the one in force, with
    /// its source's version of it (a file: the hash of its line).
    Put(Arc<AccessKey>, u64),
    /// The key is gone.
    Remove(KeyId),
}

/// What a source says of one device.
#[derive(Debug, Clone)]
pub enum DeviceChange {
    /// The device, new or in place of the one in force, with its source's
    /// version of it.
    Put(DeviceRecord, u64),
    /// The device is gone.
    Remove(DeviceId),
}

/// Keys and devices added, changed or removed, to apply all at once.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    /// The keys.
    pub keys: Vec<KeyChange>,
    /// The devices.
    pub devices: Vec<DeviceChange>,
}

impl ChangeSet {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.devices.is_empty()
    }

    /// How many records it names.
    pub fn len(&self) -> usize {
        self.keys.len() + self.devices.len()
    }
}

/// How a key changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChanged {
    /// A key that was not in force.
    Added,
    /// Its record changed (status, verifier, scope, topics, description…).
    Changed,
    /// It is gone.
    Removed,
}

/// What a change set changed: the keys and devices whose records are not
/// what they were (a record put again unchanged is not here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Keys added, changed or removed.
    pub keys: Vec<(KeyId, KeyChanged)>,
    /// Devices added, changed or removed.
    pub devices: Vec<DeviceId>,
}

impl Applied {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.devices.is_empty()
    }
}

/// The keys and devices in force, and what follows from them.
#[derive(Debug)]
pub struct Records {
    keys: HashMap<KeyId, HeldKey>,
    devices: Devices,
    /// How many keys each application has (for the single application).
    key_applications: HashMap<ApplicationId, usize>,
    /// How many keys cost Argon2 (see [`Records::argon2_on_file`]).
    argon2_keys: usize,
    /// The keys that expire, by expiry.
    expiries: BTreeMap<UnixTime, Vec<KeyId>>,
    policy: HashPolicy,
    base_rules: TopicRules,
    rules: TopicRules,
}

impl Records {
    /// No keys and no devices, under `policy` and `base_rules`.
    pub fn new(policy: HashPolicy, base_rules: TopicRules) -> Self {
        Self {
            keys: HashMap::new(),
            devices: Devices::default(),
            key_applications: HashMap::new(),
            argon2_keys: 0,
            expiries: BTreeMap::new(),
            policy,
            rules: base_rules.clone(),
            base_rules,
        }
    }

    /// No keys and no devices, under the default policy and rules.
    pub fn empty() -> Self {
        Self::new(HashPolicy::default(), TopicRules::default())
    }

    /// The key record of `key`.
    pub fn key(&self, key: &KeyId) -> Option<&AccessKey> {
        self.keys.get(key).map(|held| &*held.record)
    }

    /// The key record of `key`, shared (for a verification on another
    /// thread).
    pub fn key_shared(&self, key: &KeyId) -> Option<Arc<AccessKey>> {
        self.keys.get(key).map(|held| held.record.clone())
    }

    /// The source's version of the record of `key`.
    pub fn key_version(&self, key: &KeyId) -> Option<u64> {
        self.keys.get(key).map(|held| held.version)
    }

    /// Every key record.
    pub fn keys(&self) -> impl Iterator<Item = (&KeyId, &AccessKey, u64)> {
        self.keys
            .iter()
            .map(|(id, held)| (id, &*held.record, held.version))
    }

    /// The number of keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The device with ID `id`: also the topic policy's directory
    /// (`|id: &str| records.device(id)`).
    pub fn device(&self, id: &str) -> Option<DeviceView<'_>> {
        self.devices.get(id)
    }

    /// The devices.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// The number of devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The topic rules, declaring the single application when every key and
    /// device has the same one (unrestricted wildcard subscriptions then
    /// cost nothing per message).
    pub fn rules(&self) -> &TopicRules {
        &self.rules
    }

    /// The hash policy the records were checked against.
    pub fn policy(&self) -> &HashPolicy {
        &self.policy
    }

    /// Whether any key on file costs Argon2: its record has an Argon2
    /// verifier, or the hash policy's cost rule names Argon2id for its key
    /// id's shape ([`HashPolicy::expected_scheme`]: an imported, UUID-shaped
    /// key by default). When none does, no authentication that would run
    /// Argon2 can open any key, and refusing one needs no Argon2 dummy: known
    /// and unknown keys are then refused alike at once.
    pub fn argon2_on_file(&self) -> bool {
        self.argon2_keys > 0
    }

    /// May an Argon2 verification run? Never when no key costs Argon2 (see
    /// [`Records::argon2_on_file`]); otherwise as `budget` says.
    pub fn permit_argon2(&self, budget: impl FnOnce() -> bool) -> bool {
        self.argon2_on_file() && budget()
    }

    /// [`crate::refusal_reason`], saying why a password was refused without
    /// verifying when no key costs Argon2.
    pub fn refusal_reason(&self, error: &AuthError) -> String {
        match error {
            AuthError::Throttled if !self.argon2_on_file() => {
                "no access key on file has an argon2 verifier or costs argon2, so this would open none: refused without verifying".into()
            }
            other => crate::refusal_reason(other),
        }
    }

    fn costs_argon2(&self, record: &AccessKey) -> bool {
        record.verifier().is_slow() || self.policy.expected_scheme(record.key()).is_slow()
    }

    /// The keys whose expiry is after `after` and at most `upto`: those that
    /// expired in between (a broker ends their sessions, see
    /// [`Records::expired_as_applied`]).
    pub fn expired_between(&self, after: UnixTime, upto: UnixTime) -> Vec<KeyId> {
        if upto <= after {
            return Vec::new();
        }
        let Some(from) = after.plus_secs(1) else {
            return Vec::new();
        };
        self.expiries
            .range(from..=upto)
            .flat_map(|(_, keys)| keys.iter().copied())
            .collect()
    }

    /// The first expiry after `after`, if a key has one: when a broker
    /// should look again.
    pub fn next_expiry_after(&self, after: UnixTime) -> Option<UnixTime> {
        let from = after.plus_secs(1)?;
        self.expiries.range(from..).next().map(|(at, _)| *at)
    }

    /// The keys that expired after `after`, up to `upto`, as a change a
    /// broker takes in like any other ([`Applied`], each key changed): their
    /// sessions are decided again, and refused as expired.
    pub fn expired_as_applied(&self, after: UnixTime, upto: UnixTime) -> Applied {
        Applied {
            keys: self
                .expired_between(after, upto)
                .into_iter()
                .map(|key| (key, KeyChanged::Changed))
                .collect(),
            devices: Vec::new(),
        }
    }

    /// The devices, to fill at start without change sets in between (then
    /// [`Records::refresh_rules`]).
    pub(crate) fn devices_mut(&mut self) -> &mut Devices {
        &mut self.devices
    }

    /// Recomputes the topic rules (the single application) from the counts.
    pub(crate) fn refresh_rules(&mut self) {
        self.rules = match self.single_application() {
            Some(application) => self.base_rules.clone().with_single_application(application),
            None => self.base_rules.clone(),
        };
    }

    /// Applies `changes`, all of them: what they name only (and the single
    /// application, recomputed from counts). Says what changed.
    pub fn apply(&mut self, changes: ChangeSet) -> Applied {
        let mut applied = Applied::default();
        for change in changes.keys {
            match change {
                KeyChange::Put(record, version) => {
                    let key = *record.key();
                    let before = self.keys.get_mut(&key);
                    if let Some(held) = before {
                        held.version = version;
                        if *held.record == *record {
                            continue;
                        }
                    }
                    let kind = match self.remove_key(&key) {
                        Some(_) => KeyChanged::Changed,
                        None => KeyChanged::Added,
                    };
                    if self.costs_argon2(&record) {
                        self.argon2_keys += 1;
                    }
                    if let Some(at) = record.expires_at() {
                        self.expiries.entry(at).or_default().push(key);
                    }
                    *self
                        .key_applications
                        .entry(*record.application())
                        .or_default() += 1;
                    self.keys.insert(key, HeldKey { record, version });
                    applied.keys.push((key, kind));
                }
                KeyChange::Remove(key) => {
                    if self.remove_key(&key).is_some() {
                        applied.keys.push((key, KeyChanged::Removed));
                    }
                }
            }
        }
        for change in changes.devices {
            match change {
                DeviceChange::Put(record, version) => {
                    if self.devices.put(&record, version) {
                        applied.devices.push(*record.device_id());
                    }
                }
                DeviceChange::Remove(id) => {
                    if self.devices.remove(id.as_str()) {
                        applied.devices.push(id);
                    }
                }
            }
        }
        self.refresh_rules();
        applied
    }

    /// The change set that makes these records `fresh`'s (what differs
    /// only): keys and devices of `fresh` new or different here, and those
    /// here that `fresh` has not, removed.
    pub fn changes_to(&self, fresh: &Records) -> ChangeSet {
        let mut changes = ChangeSet::default();
        for (key, record, version) in fresh.keys() {
            if self.key(key) != Some(record) {
                changes
                    .keys
                    .push(KeyChange::Put(Arc::new(record.clone()), version));
            }
        }
        for (key, _, _) in self.keys() {
            if fresh.key(key).is_none() {
                changes.keys.push(KeyChange::Remove(*key));
            }
        }
        for device in fresh.devices().iter() {
            let same = self
                .device(device.id_str())
                .and_then(|d| d.to_record())
                .is_some_and(|d| device.is(&d));
            if !same {
                changes.devices.extend(
                    device
                        .to_record()
                        .map(|record| DeviceChange::Put(record, 0)),
                );
            }
        }
        changes.devices.extend(
            self.devices()
                .iter()
                .filter(|device| fresh.device(device.id_str()).is_none())
                .filter_map(|device| device.id_str().parse::<DeviceId>().ok())
                .map(DeviceChange::Remove),
        );
        changes
    }

    fn remove_key(&mut self, key: &KeyId) -> Option<HeldKey> {
        let held = self.keys.remove(key)?;
        if self.costs_argon2(&held.record) {
            self.argon2_keys -= 1;
        }
        if let Some(at) = held.record.expires_at() {
            if let Some(keys) = self.expiries.get_mut(&at) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.expiries.remove(&at);
                }
            }
        }
        let application = held.record.application();
        if let Some(count) = self.key_applications.get_mut(application) {
            *count -= 1;
            if *count == 0 {
                self.key_applications.remove(application);
            }
        }
        Some(held)
    }

    /// The one application of every key and device, if there is exactly one.
    pub fn single_application(&self) -> Option<ApplicationId> {
        let mut devices = self.devices.applications();
        let from_devices = match (devices.next(), devices.next()) {
            (Some(_), Some(_)) => return None,
            (Some((app, _)), None) => Some(app.parse::<ApplicationId>().ok()?),
            (None, _) => None,
        };
        let mut keys = self.key_applications.keys();
        let from_keys = match (keys.next(), keys.next()) {
            (Some(_), Some(_)) => return None,
            (one, None) => one.copied(),
            (None, Some(_)) => None,
        };
        match (from_keys, from_devices) {
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(_), Some(_)) => None,
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    use structure_access::{KeyStatus, Scope};

    fn key(seed: u64, app: &str) -> AccessKey {
        AccessKey::generate(
            &mut ChaCha20Rng::seed_from_u64(seed),
            app.parse().unwrap(),
            Scope::Unrestricted,
            &HashPolicy::default(),
        )
        .unwrap()
        .record
    }

    fn device(id: &str, app: &str) -> DeviceRecord {
        DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap())
    }

    #[test]
    fn expiries_are_indexed_as_the_keys_change() {
        let at = |secs: u64| UnixTime::from_secs(secs).unwrap();
        let mut records = Records::empty();
        let (k1, k2, k3) = (key(1, "a1"), key(2, "a1"), key(3, "a1"));
        let put = |k: &AccessKey, expiry: Option<u64>| {
            KeyChange::Put(Arc::new(k.clone().with_expiry(expiry.map(at))), 1)
        };
        records.apply(ChangeSet {
            keys: vec![put(&k1, Some(100)), put(&k2, Some(100)), put(&k3, None)],
            devices: vec![],
        });
        assert_eq!(records.next_expiry_after(at(0)), Some(at(100)));
        let mut both = records.expired_between(at(99), at(100));
        both.sort();
        let mut expected = vec![*k1.key(), *k2.key()];
        expected.sort();
        assert_eq!(both, expected);
        // The interval is (after, upto]: an expiry is seen once.
        assert!(records.expired_between(at(100), at(200)).is_empty());
        assert!(records.expired_between(at(0), at(99)).is_empty());
        assert!(records.expired_between(at(100), at(100)).is_empty());
        // Moved, removed, cleared: the index follows.
        records.apply(ChangeSet {
            keys: vec![put(&k1, Some(150)), KeyChange::Remove(*k2.key())],
            devices: vec![],
        });
        assert_eq!(records.expired_between(at(0), at(100)), Vec::<KeyId>::new());
        assert_eq!(records.expired_between(at(149), at(150)), [*k1.key()]);
        assert_eq!(records.next_expiry_after(at(150)), None);
        let applied = records.expired_as_applied(at(100), at(150));
        assert_eq!(applied.keys, [(*k1.key(), KeyChanged::Changed)]);
        records.apply(ChangeSet {
            keys: vec![put(&k1, None)],
            devices: vec![],
        });
        assert_eq!(records.next_expiry_after(at(0)), None);
    }

    #[test]
    fn a_change_set_changes_what_it_names_and_says_what_changed() {
        let mut records = Records::empty();
        let (k1, k2) = (key(1, "a1"), key(2, "a1"));
        let applied = records.apply(ChangeSet {
            keys: vec![
                KeyChange::Put(Arc::new(k1.clone()), 1),
                KeyChange::Put(Arc::new(k2.clone()), 2),
            ],
            devices: vec![DeviceChange::Put(device("d1", "a1"), 3)],
        });
        assert_eq!(
            applied.keys,
            [
                (*k1.key(), KeyChanged::Added),
                (*k2.key(), KeyChanged::Added)
            ]
        );
        assert_eq!(applied.devices, ["d1".parse::<DeviceId>().unwrap()]);
        assert_eq!(records.single_application(), Some("a1".parse().unwrap()));
        assert_eq!(
            records.rules().single_application(),
            Some(&"a1".parse().unwrap())
        );
        assert!(!records.argon2_on_file());

        // The same records again, from other lines: nothing changed.
        let again = records.apply(ChangeSet {
            keys: vec![KeyChange::Put(Arc::new(k1.clone()), 11)],
            devices: vec![DeviceChange::Put(device("d1", "a1"), 13)],
        });
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(records.key_version(k1.key()), Some(11));

        // A deactivated key, a removed one, a device of another application.
        let inactive = k1.clone().with_status(KeyStatus::Inactive);
        let applied = records.apply(ChangeSet {
            keys: vec![
                KeyChange::Put(Arc::new(inactive), 21),
                KeyChange::Remove(*k2.key()),
                KeyChange::Remove(*key(3, "a1").key()),
            ],
            devices: vec![DeviceChange::Put(device("d2", "a2"), 22)],
        });
        assert_eq!(
            applied.keys,
            [
                (*k1.key(), KeyChanged::Changed),
                (*k2.key(), KeyChanged::Removed)
            ]
        );
        assert_eq!(records.key_count(), 1);
        assert_eq!(records.single_application(), None);
        assert_eq!(records.rules().single_application(), None);
        let applied = records.apply(ChangeSet {
            keys: vec![],
            devices: vec![DeviceChange::Remove("d2".parse().unwrap())],
        });
        assert_eq!(applied.devices.len(), 1);
        assert_eq!(records.single_application(), Some("a1".parse().unwrap()));
    }

    #[test]
    fn keys_that_cost_argon2_are_counted_through_changes() {
        let mut records = Records::empty();
        let legacy = AccessKey::generate(
            &mut ChaCha20Rng::seed_from_u64(4),
            "a1".parse().unwrap(),
            Scope::Unrestricted,
            &HashPolicy::default().argon2id_for_generated(true),
        )
        .unwrap()
        .record;
        records.apply(ChangeSet {
            keys: vec![KeyChange::Put(Arc::new(legacy.clone()), 1)],
            devices: vec![],
        });
        assert!(records.argon2_on_file());
        records.apply(ChangeSet {
            keys: vec![KeyChange::Remove(*legacy.key())],
            devices: vec![],
        });
        assert!(!records.argon2_on_file());
    }
}
