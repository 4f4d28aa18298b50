//! What this node knows of the sessions it authenticated, and the decisions
//! taken from it.
//!
//! A session is entered here when its CONNECT is accepted, before RMQTT
//! registers it, with the key and the verifier that proved its secret; it
//! leaves when RMQTT ends it (or a newer session of the device takes its
//! place). Every decision about a session is taken from its entry: its
//! principal, derived when it is entered and again whenever a change set
//! changes its key or its device (found through an index of entries by key),
//! and only then. A record whose verifier is no longer the one the session
//! proved its secret with (a rotated secret) ends it, as a deleted key or
//! device does. A session this node has no entry for (none should exist, but
//! RMQTT owns sessions) is decided from the records alone, never allowed for
//! want of state.
//!
//! What an entry holds is fixed in size: the session's identity, its key,
//! its verifier and its principal (whose restriction is shared with the key
//! record). Nothing grows with what the client subscribes to, and a new
//! session of the device replaces it.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rmqtt::types::Id;
use structure_access::{DeviceId, KeyId, Principal, Verifier};
use structure_access_common::{Applied, Records, refusal_reason};

/// One session this node authenticated.
#[derive(Debug)]
pub struct Client {
    /// RMQTT's identity of the session (its node, addresses, client id,
    /// username and creation time): an entry serves that session only.
    pub session: Id,
    /// The key it authenticated with.
    pub key: KeyId,
    /// Its device.
    pub device: DeviceId,
    /// The verifier that proved its secret.
    verifier: Verifier,
    /// Why it was ended, once it was: every check is then refused, and it
    /// is disconnected until it is gone.
    pub revoked: Option<String>,
    /// Its principal under the records in force (or why it has none).
    principal: Result<Principal, String>,
    /// Whether its subscriptions were decided again on this node (once, at
    /// its first delivery: a session carried over from another node or an
    /// earlier connection brings subscriptions no hook saw).
    pub reviewed: bool,
    /// When it was entered.
    pub since: Instant,
}

impl Client {
    fn derive(&self, records: &Records) -> Result<Principal, String> {
        if let Some(why) = &self.revoked {
            return Err(why.clone());
        }
        let record = records.key(&self.key).ok_or("the access key was deleted")?;
        if *record.verifier() != self.verifier {
            return Err("the access key's secret was rotated (new verifier)".into());
        }
        let device = records
            .device(self.device.as_str())
            .ok_or("the device was deleted")?;
        Principal::reauthorize(record, &device, structure_access::UnixTime::now())
            .map_err(|e| refusal_reason(&e))
    }
}

/// Whether `a` and `b` are the same session: RMQTT hands out clones of one
/// `Id` (an `Arc`), so the pointers usually tell at once.
fn same(a: &Id, b: &Id) -> bool {
    std::ptr::eq::<rmqtt::types::_Id>(&**a, &**b) || a == b
}

/// The sessions this node authenticated, by client id (a device ID: at most
/// one live session each, and briefly a second while one takes over from
/// another), and the devices that have entries of each key.
#[derive(Debug, Default)]
pub struct Clients {
    by_device: HashMap<DeviceId, Vec<Client>>,
    by_key: HashMap<KeyId, HashSet<DeviceId>>,
}

impl Clients {
    /// Enters the session `session` of `device`, authenticated with `key`,
    /// whose secret `verifier` proved, under `records` (those in force).
    /// Refused, and not entered, if it does not stand under them: they may
    /// be newer than the ones its secret was verified with.
    pub fn admit(
        &mut self,
        records: &Records,
        session: Id,
        key: KeyId,
        device: DeviceId,
        verifier: Verifier,
    ) -> Result<Principal, String> {
        let mut client = Client {
            session,
            key,
            device,
            verifier,
            revoked: None,
            principal: Err(String::new()),
            reviewed: false,
            since: Instant::now(),
        };
        let principal = client.derive(records)?;
        client.principal = Ok(principal.clone());
        let entries = self.by_device.entry(device).or_default();
        entries.retain(|c| !same(&c.session, &client.session));
        entries.push(client);
        self.by_key.entry(key).or_default().insert(device);
        Ok(principal)
    }

    /// The entry of `session`.
    pub fn get_mut(&mut self, session: &Id) -> Option<&mut Client> {
        let device = session.client_id.parse::<DeviceId>().ok()?;
        self.by_device
            .get_mut(&device)?
            .iter_mut()
            .find(|c| same(&c.session, session))
    }

    /// Decides with the principal of `session`: `decide(p)` if it has one,
    /// `false` if it no longer stands. A session without an entry is decided
    /// from `records` alone (its username as key).
    pub fn decide(
        &mut self,
        records: &Records,
        session: &Id,
        decide: impl FnOnce(&Principal) -> bool,
    ) -> bool {
        match self.get_mut(session) {
            Some(client) => client.principal.as_ref().is_ok_and(decide),
            None => crate::state::principal(records, &session.client_id, session.username_ref())
                .as_ref()
                .is_ok_and(decide),
        }
    }

    /// Why the session no longer stands, if it does not.
    pub fn refusal(&mut self, records: &Records, session: &Id) -> Option<String> {
        match self.get_mut(session) {
            Some(client) => client.principal.as_ref().err().cloned(),
            None => {
                crate::state::principal(records, &session.client_id, session.username_ref()).err()
            }
        }
    }

    /// Re-derives, under `records` (just changed as `applied` says), the
    /// entries of the keys and devices that changed, and only those. The
    /// ones that no longer stand are marked revoked and returned, with why;
    /// also how many entries were re-derived.
    pub fn apply(&mut self, records: &Records, applied: &Applied) -> (Vec<(Id, String)>, usize) {
        let mut devices: HashSet<DeviceId> = applied
            .devices
            .iter()
            .filter(|d| self.by_device.contains_key(*d))
            .copied()
            .collect();
        for (key, _) in &applied.keys {
            if let Some(of_key) = self.by_key.get(key) {
                devices.extend(of_key.iter().copied());
            }
        }
        let (mut doomed, mut looked_at) = (Vec::new(), 0);
        for device in devices {
            for client in self.by_device.get_mut(&device).into_iter().flatten() {
                if client.revoked.is_some() {
                    continue;
                }
                looked_at += 1;
                client.principal = client.derive(records);
                if let Err(why) = &client.principal {
                    client.revoked = Some(why.clone());
                    doomed.push((client.session.clone(), why.clone()));
                }
            }
        }
        (doomed, looked_at)
    }

    /// The entries of `key` (to end, on another node's word).
    pub fn of_key(&self, key: &KeyId) -> Vec<Id> {
        self.by_key
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|d| self.by_device.get(d))
            .flatten()
            .filter(|c| c.key == *key)
            .map(|c| c.session.clone())
            .collect()
    }

    /// The entries of `device`.
    pub fn of_device(&self, device: &DeviceId) -> Vec<Id> {
        self.by_device
            .get(device)
            .into_iter()
            .flatten()
            .map(|c| c.session.clone())
            .collect()
    }

    /// Marks `session` revoked, for `why` (another node's reload found it no
    /// longer stands). Whether this marked it: false when this node does not
    /// have it, or had already revoked it (its end is then under way, and
    /// ending it again would only say so twice).
    pub fn mark_revoked(&mut self, session: &Id, why: &str) -> bool {
        match self.get_mut(session) {
            Some(client) if client.revoked.is_none() => {
                client.revoked = Some(why.to_owned());
                client.principal = Err(why.to_owned());
                true
            }
            _ => false,
        }
    }

    /// `session` is connected: the other entries of its device (sessions it
    /// took over) go, but revoked ones, which stay until they are gone.
    /// Returns why `session` itself was revoked, if it was.
    pub fn connected(&mut self, session: &Id) -> Option<String> {
        let device = session.client_id.parse::<DeviceId>().ok()?;
        let revoked = self
            .by_device
            .get(&device)?
            .iter()
            .find(|c| same(&c.session, session))
            .and_then(|c| c.revoked.clone());
        self.drop_entries(&device, |c| {
            !same(&c.session, session) && c.revoked.is_none()
        });
        revoked
    }

    /// `session` ended (or its CONNECT failed after authentication).
    pub fn remove(&mut self, session: &Id) {
        if let Ok(device) = session.client_id.parse::<DeviceId>() {
            self.drop_entries(&device, |c| same(&c.session, session));
        }
    }

    /// Drops the entries of `device` that `dropped` says, keeping the index
    /// of keys as the entries left are.
    fn drop_entries(&mut self, device: &DeviceId, dropped: impl Fn(&Client) -> bool) {
        let Some(entries) = self.by_device.get_mut(device) else {
            return;
        };
        let gone: Vec<KeyId> = entries
            .iter()
            .filter(|c| dropped(c))
            .map(|c| c.key)
            .collect();
        entries.retain(|c| !dropped(c));
        for key in gone {
            if entries.iter().any(|c| c.key == key) {
                continue;
            }
            if let Some(devices) = self.by_key.get_mut(&key) {
                devices.remove(device);
                if devices.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
        if entries.is_empty() {
            self.by_device.remove(device);
        }
    }

    /// Drops the entries whose sessions `keep` refuses.
    pub fn retain_sessions(&mut self, keep: impl Fn(&Id) -> bool) {
        let devices: Vec<DeviceId> = self.by_device.keys().copied().collect();
        for device in devices {
            self.drop_entries(&device, |c| !keep(&c.session));
        }
    }

    /// Every entry's session: (id, when entered, whether revoked).
    pub fn sessions(&self) -> Vec<(Id, Instant, bool)> {
        self.by_device
            .values()
            .flatten()
            .map(|c| (c.session.clone(), c.since, c.revoked.is_some()))
            .collect()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.by_device.values().map(Vec::len).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    use std::sync::Arc;
    use structure_access::{AccessKey, DeviceRecord, HashPolicy, Restriction, Scope};
    use structure_access_common::{ChangeSet, DeviceChange, KeyChange};

    fn records(keys: &[&AccessKey], devices: &[DeviceRecord]) -> Records {
        let mut records = Records::empty();
        records.apply(put(keys, devices));
        records
    }

    fn put(keys: &[&AccessKey], devices: &[DeviceRecord]) -> ChangeSet {
        ChangeSet {
            keys: keys
                .iter()
                .map(|k| KeyChange::Put(Arc::new((*k).clone()), 0))
                .collect(),
            devices: devices
                .iter()
                .map(|d| DeviceChange::Put(d.clone(), 0))
                .collect(),
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

    fn session(device: &str, key: &AccessKey, created: u16) -> Id {
        Id::new(
            1,
            created,
            None,
            None,
            device.into(),
            Some(key.key().as_str().into()),
        )
    }

    fn admit(clients: &mut Clients, at: &Records, id: &Id, key: &AccessKey) -> Result<(), String> {
        let device = id.client_id.parse().unwrap();
        clients
            .admit(at, id.clone(), *key.key(), device, key.verifier().clone())
            .map(drop)
    }

    #[test]
    fn a_session_stands_only_under_records_that_still_admit_it() {
        let trucks: Restriction = "vehicle=truck".parse().unwrap();
        let k = key(1, trucks.into());
        let t1 = device("t1", &[("vehicle", "truck")]);
        let mut r = records(&[&k], std::slice::from_ref(&t1));
        let mut clients = Clients::default();
        let s = session("t1", &k, 1);
        admit(&mut clients, &r, &s, &k).unwrap();
        assert!(clients.decide(&r, &s, |p| p.device_id().as_str() == "t1"));
        assert_eq!(clients.refusal(&r, &s), None);

        // A rotated verifier: the session no longer stands, and a CONNECT
        // verified with the old one is not entered under the new records.
        let rotated = k
            .clone()
            .with_verifier(key(2, Scope::Unrestricted).verifier().clone());
        let applied = r.apply(put(&[&rotated], &[]));
        let (doomed, looked_at) = clients.apply(&r, &applied);
        let why = "the access key's secret was rotated (new verifier)";
        assert_eq!((doomed, looked_at), (vec![(s.clone(), why.to_owned())], 1));
        assert!(!clients.decide(&r, &s, |_| true));
        let late = session("t1", &k, 2);
        assert_eq!(admit(&mut clients, &r, &late, &k).unwrap_err(), why);
        assert_eq!(clients.len(), 1, "a refused CONNECT is not entered");
        // Revoked stays revoked, even under records that would admit it.
        let applied = r.apply(put(&[&k], &[]));
        assert_eq!(clients.apply(&r, &applied), (vec![], 0));
        assert!(!clients.decide(&r, &s, |_| true));

        // The device retagged out of scope, or deleted.
        let mut clients = Clients::default();
        admit(&mut clients, &r, &s, &k).unwrap();
        let applied = r.apply(put(&[], &[device("t1", &[("vehicle", "car")])]));
        let (doomed, _) = clients.apply(&r, &applied);
        assert_eq!(
            doomed[0].1,
            "the device is outside the scope of the access key"
        );
    }

    #[test]
    fn a_change_re_derives_the_sessions_of_what_it_changed_and_no_other() {
        let (a, b) = (key(5, Scope::Unrestricted), key(6, Scope::Unrestricted));
        let devices: Vec<DeviceRecord> = (0..10).map(|i| device(&format!("d{i}"), &[])).collect();
        let mut r = records(&[&a, &b], &devices);
        let mut clients = Clients::default();
        for i in 0..10 {
            let k = if i < 3 { &a } else { &b };
            admit(&mut clients, &r, &session(&format!("d{i}"), k, 1), k).unwrap();
        }
        // Key a deleted: its 3 sessions; device d7 retagged: its own.
        let applied = r.apply(ChangeSet {
            keys: vec![KeyChange::Remove(*a.key())],
            devices: vec![DeviceChange::Put(device("d7", &[("x", "y")]), 0)],
        });
        let (doomed, looked_at) = clients.apply(&r, &applied);
        assert_eq!(looked_at, 4);
        let mut ended: Vec<String> = doomed
            .iter()
            .map(|(id, _)| id.client_id.to_string())
            .collect();
        ended.sort();
        assert_eq!(ended, ["d0", "d1", "d2"]);
        assert_eq!(clients.of_key(a.key()).len(), 3);
        assert_eq!(clients.of_key(b.key()).len(), 7);
    }

    #[test]
    fn a_revocation_from_another_node_is_seen_at_once() {
        let k = key(3, Scope::Unrestricted);
        let d = device("d1", &[]);
        let r = records(&[&k], std::slice::from_ref(&d));
        let mut clients = Clients::default();
        let s = session("d1", &k, 1);
        admit(&mut clients, &r, &s, &k).unwrap();
        assert!(clients.decide(&r, &s, |_| true));
        assert!(clients.mark_revoked(&s, "the access key was deleted"));
        assert!(!clients.decide(&r, &s, |_| true));
        assert_eq!(
            clients.refusal(&r, &s).as_deref(),
            Some("the access key was deleted")
        );
        assert!(!clients.mark_revoked(&session("d1", &k, 9), "x"));
        // Marked once: a second word (another node's list after this node's
        // own reload) neither ends it again nor changes why.
        assert!(!clients.mark_revoked(&s, "the access key is inactive"));
        assert_eq!(
            clients.refusal(&r, &s).as_deref(),
            Some("the access key was deleted")
        );
    }

    #[test]
    fn a_takeover_replaces_the_entry_but_a_revoked_one_stays_until_it_is_gone() {
        let k = key(4, Scope::Unrestricted);
        let d = device("d1", &[]);
        let r = records(&[&k], std::slice::from_ref(&d));
        let mut clients = Clients::default();
        let (old, new) = (session("d1", &k, 1), session("d1", &k, 2));
        admit(&mut clients, &r, &old, &k).unwrap();
        admit(&mut clients, &r, &new, &k).unwrap();
        assert_eq!(clients.len(), 2);
        assert_eq!(clients.connected(&new), None);
        assert_eq!(clients.len(), 1, "the session taken over is forgotten");
        assert!(clients.get_mut(&old).is_none());
        // A session unknown here is decided from the records alone.
        assert!(clients.decide(&r, &old, |_| true));
        assert!(!clients.decide(&records(&[], &[d]), &old, |_| true));

        let third = session("d1", &k, 3);
        admit(&mut clients, &r, &third, &k).unwrap();
        clients.mark_revoked(&new, "revoked");
        assert_eq!(clients.connected(&third), None);
        assert_eq!(clients.len(), 2, "a revoked entry stays for its will");
        clients.remove(&new);
        clients.remove(&third);
        assert!(clients.is_empty());
        assert!(clients.of_key(k.key()).is_empty());
    }
}
