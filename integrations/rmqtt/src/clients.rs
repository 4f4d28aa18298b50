//! What this node knows of the sessions it authenticated, and the decisions
//! taken from it.
//!
//! A session is entered here when its CONNECT is accepted, before RMQTT
//! registers it, with the key and the verifier that proved its secret; it
//! leaves when RMQTT ends it (or a newer session of the device takes its
//! place). Every decision about a session is taken from its entry: its
//! principal is derived again under each load of the records, and a record
//! whose verifier is no longer the one the session proved its secret with
//! (a rotated secret) ends it, as a deleted key or device does. A session
//! this node has no entry for (none should exist, but RMQTT owns sessions)
//! is decided from the records alone, never allowed for want of state.
//!
//! What an entry holds is fixed in size: the session's identity, its key,
//! its verifier and its principal (whose restriction is shared with the key
//! record). Nothing grows with what the client subscribes to, and a new
//! session of the device replaces it.

use std::collections::HashMap;
use std::time::Instant;

use rmqtt::types::Id;
use structure_access::{DeviceId, KeyId, Principal, Verifier};
use structure_access_common::refusal_reason;

use crate::state::Loaded;

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
    /// Why a reload ended it, once one did: every check is then refused,
    /// and it is disconnected until it is gone.
    pub revoked: Option<String>,
    /// Its principal under the records of a load (its generation).
    principal: (u64, Result<Principal, String>),
    /// Whether its subscriptions were decided again on this node (once, at
    /// its first delivery: a session carried over from another node or an
    /// earlier connection brings subscriptions no hook saw).
    pub reviewed: bool,
    /// When it was entered.
    pub since: Instant,
}

impl Client {
    fn derive(&self, loaded: &Loaded) -> Result<Principal, String> {
        if let Some(why) = &self.revoked {
            return Err(why.clone());
        }
        let record = loaded
            .keys
            .get(&self.key)
            .ok_or("the access key was deleted")?;
        if *record.verifier() != self.verifier {
            return Err("the access key's secret was rotated (new verifier)".into());
        }
        let device = loaded
            .devices
            .get(&self.device)
            .ok_or("the device was deleted")?;
        Principal::reauthorize(record, device).map_err(|e| refusal_reason(&e))
    }

    /// Its principal under `loaded`, derived once per load.
    fn principal(&mut self, loaded: &Loaded) -> &Result<Principal, String> {
        if self.principal.0 != loaded.generation {
            self.principal = (loaded.generation, self.derive(loaded));
        }
        &self.principal.1
    }
}

/// Whether `a` and `b` are the same session: RMQTT hands out clones of one
/// `Id` (an `Arc`), so the pointers usually tell at once.
fn same(a: &Id, b: &Id) -> bool {
    std::ptr::eq::<rmqtt::types::_Id>(&**a, &**b) || a == b
}

/// The sessions this node authenticated, by client id (a device ID: at most
/// one live session each, and briefly a second while one takes over from
/// another).
#[derive(Debug, Default)]
pub struct Clients {
    by_device: HashMap<DeviceId, Vec<Client>>,
}

impl Clients {
    /// Enters the session `session` of `device`, authenticated with `key`,
    /// whose secret `verifier` proved, under `loaded` (the records in
    /// force). Refused, and not entered, if it does not stand under them:
    /// they may be newer than the ones its secret was verified with.
    pub fn admit(
        &mut self,
        loaded: &Loaded,
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
            principal: (0, Err(String::new())),
            reviewed: false,
            since: Instant::now(),
        };
        let principal = client.derive(loaded)?;
        client.principal = (loaded.generation, Ok(principal.clone()));
        let entries = self.by_device.entry(device).or_default();
        entries.retain(|c| c.session != client.session);
        entries.push(client);
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

    /// Decides with the principal of `session` under `loaded`: `decide(p)`
    /// if it has one, `false` if it no longer stands. A session without an
    /// entry is decided from the records alone (its username as key).
    pub fn decide(
        &mut self,
        loaded: &Loaded,
        session: &Id,
        decide: impl FnOnce(&Principal) -> bool,
    ) -> bool {
        match self.get_mut(session) {
            Some(client) => client.principal(loaded).as_ref().is_ok_and(decide),
            None => loaded
                .principal(&session.client_id, session.username_ref())
                .as_ref()
                .is_ok_and(decide),
        }
    }

    /// Why the session no longer stands under `loaded`, if it does not.
    pub fn refusal(&mut self, loaded: &Loaded, session: &Id) -> Option<String> {
        match self.get_mut(session) {
            Some(client) => client.principal(loaded).as_ref().err().cloned(),
            None => loaded
                .principal(&session.client_id, session.username_ref())
                .err(),
        }
    }

    /// Re-derives every entry under `loaded` (just put in force): the ones
    /// that no longer stand are marked revoked and returned, with why.
    pub fn revoke(&mut self, loaded: &Loaded) -> Vec<(Id, String)> {
        let mut doomed = Vec::new();
        for client in self.by_device.values_mut().flatten() {
            if client.revoked.is_some() {
                continue;
            }
            if let Err(why) = client.principal(loaded).clone() {
                client.revoked = Some(why.clone());
                doomed.push((client.session.clone(), why));
            }
        }
        doomed
    }

    /// Marks `session` revoked, for `why` (another node's reload found it no
    /// longer stands). Whether this node has it.
    pub fn mark_revoked(&mut self, session: &Id, why: &str) -> bool {
        match self.get_mut(session) {
            Some(client) => {
                let why = client.revoked.get_or_insert_with(|| why.to_owned()).clone();
                client.principal.1 = Err(why);
                true
            }
            None => false,
        }
    }

    /// `session` is connected: the other entries of its device (sessions it
    /// took over) go, but revoked ones, which stay until they are gone.
    /// Returns why `session` itself was revoked, if it was.
    pub fn connected(&mut self, session: &Id) -> Option<String> {
        let device = session.client_id.parse::<DeviceId>().ok()?;
        let entries = self.by_device.get_mut(&device)?;
        entries.retain(|c| c.session == *session || c.revoked.is_some());
        entries
            .iter()
            .find(|c| c.session == *session)
            .and_then(|c| c.revoked.clone())
    }

    /// `session` ended (or its CONNECT failed after authentication).
    pub fn remove(&mut self, session: &Id) {
        let Ok(device) = session.client_id.parse::<DeviceId>() else {
            return;
        };
        if let Some(entries) = self.by_device.get_mut(&device) {
            entries.retain(|c| c.session != *session);
            if entries.is_empty() {
                self.by_device.remove(&device);
            }
        }
    }

    /// Keeps the entries `keep` says to keep.
    pub fn retain(&mut self, mut keep: impl FnMut(&Client) -> bool) {
        self.by_device.retain(|_, entries| {
            entries.retain(&mut keep);
            !entries.is_empty()
        });
    }

    /// Every entry's session.
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
    use std::collections::HashMap;
    use structure_access::{AccessKey, DeviceRecord, HashPolicy, Restriction, Scope};
    use structure_access_common::Records;

    fn loaded(keys: &[&AccessKey], devices: &[DeviceRecord], generation: u64) -> Loaded {
        let mut records = Records::empty();
        records.keys = keys
            .iter()
            .map(|k| (*k.key(), (*k).clone()))
            .collect::<HashMap<_, _>>();
        records.devices = devices
            .iter()
            .map(|d| (*d.device_id(), d.clone()))
            .collect();
        Loaded {
            records,
            generation,
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

    fn admit(clients: &mut Clients, at: &Loaded, id: &Id, key: &AccessKey) -> Result<(), String> {
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
        let v1 = loaded(&[&k], std::slice::from_ref(&t1), 1);
        let mut clients = Clients::default();
        let s = session("t1", &k, 1);
        admit(&mut clients, &v1, &s, &k).unwrap();
        assert!(clients.decide(&v1, &s, |p| p.device_id().as_str() == "t1"));
        assert_eq!(clients.refusal(&v1, &s), None);

        // A rotated verifier: the session no longer stands, and a CONNECT
        // verified with the old one is not entered under the new records.
        let rotated = k
            .clone()
            .with_verifier(key(2, Scope::Unrestricted).verifier().clone());
        let v2 = loaded(&[&rotated], std::slice::from_ref(&t1), 2);
        assert!(!clients.decide(&v2, &s, |_| true));
        let late = session("t1", &k, 2);
        let err = admit(&mut clients, &v2, &late, &k).unwrap_err();
        assert_eq!(err, "the access key's secret was rotated (new verifier)");
        assert_eq!(clients.len(), 1, "a refused CONNECT is not entered");
        let doomed = clients.revoke(&v2);
        assert_eq!(doomed, [(s.clone(), err)]);
        // Revoked stays revoked, even under records that would admit it.
        assert!(!clients.decide(&v1, &s, |_| true));
        assert!(clients.revoke(&v2).is_empty(), "revoked once");

        // The device retagged out of scope, or deleted.
        let mut clients = Clients::default();
        admit(&mut clients, &v1, &s, &k).unwrap();
        let car = loaded(&[&k], &[device("t1", &[("vehicle", "car")])], 3);
        assert_eq!(
            clients.refusal(&car, &s).as_deref(),
            Some("the device is outside the scope of the access key")
        );
        let gone = loaded(&[&k], &[], 4);
        assert_eq!(
            clients.refusal(&gone, &s).as_deref(),
            Some("the device was deleted")
        );
    }

    #[test]
    fn a_revocation_from_another_node_is_seen_at_once() {
        let k = key(3, Scope::Unrestricted);
        let d = device("d1", &[]);
        let v1 = loaded(&[&k], std::slice::from_ref(&d), 1);
        let mut clients = Clients::default();
        let s = session("d1", &k, 1);
        admit(&mut clients, &v1, &s, &k).unwrap();
        // Derived (and kept) under v1, then revoked by another node while
        // this one still holds v1: no check uses the kept principal again.
        assert!(clients.decide(&v1, &s, |_| true));
        assert!(clients.mark_revoked(&s, "the access key was deleted"));
        assert!(!clients.decide(&v1, &s, |_| true));
        assert_eq!(
            clients.refusal(&v1, &s).as_deref(),
            Some("the access key was deleted")
        );
        assert!(!clients.mark_revoked(&session("d1", &k, 9), "x"));
    }

    #[test]
    fn a_takeover_replaces_the_entry_but_a_revoked_one_stays_until_it_is_gone() {
        let k = key(4, Scope::Unrestricted);
        let d = device("d1", &[]);
        let v1 = loaded(&[&k], std::slice::from_ref(&d), 1);
        let mut clients = Clients::default();
        let (old, new) = (session("d1", &k, 1), session("d1", &k, 2));
        admit(&mut clients, &v1, &old, &k).unwrap();
        admit(&mut clients, &v1, &new, &k).unwrap();
        assert_eq!(clients.len(), 2);
        assert_eq!(clients.connected(&new), None);
        assert_eq!(clients.len(), 1, "the session taken over is forgotten");
        assert!(clients.get_mut(&old).is_none());
        // A session unknown here is decided from the records alone.
        assert!(clients.decide(&v1, &old, |_| true));
        assert!(!clients.decide(&loaded(&[], &[d], 2), &old, |_| true));

        let third = session("d1", &k, 3);
        admit(&mut clients, &v1, &third, &k).unwrap();
        clients.mark_revoked(&new, "revoked");
        assert_eq!(clients.connected(&third), None);
        assert_eq!(clients.len(), 2, "a revoked entry stays for its will");
        clients.remove(&new);
        clients.remove(&third);
        assert!(clients.is_empty());
    }
}
