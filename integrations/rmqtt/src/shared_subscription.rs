//! Shared subscriptions (`$share/{group}/{filter}`): RMQTT asks, for each
//! message and group, which member gets it; this answers among the members
//! whose device belongs to the application of the message's device, in
//! turn, online ones first.
//!
//! The policy still decides every delivery (a member gets only what it may
//! receive): choosing within the application keeps a device of another
//! application, subscribed to a group of the same name, from taking messages
//! it would then be refused. Members of one group are expected to share a
//! scope (the workers of one service, with one key): a restricted member
//! chosen for a message outside its scope does not get it, and no other
//! member gets it instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    ClientId, Id, IsOnline, NodeId, SharedGroup, SubscriptionIdentifier, SubscriptionOptions,
    TopicName,
};
use structure_access::mqtt::{Topic, TopicClass};
use structure_access::{ApplicationId, Device};

use crate::state::Store;
use structure_access_common::Records;

/// The members RMQTT offers for one message: (node, client id, options,
/// subscription identifiers, online).
type Members = [(
    NodeId,
    ClientId,
    SubscriptionOptions,
    Option<Vec<SubscriptionIdentifier>>,
    Option<IsOnline>,
)];

/// The choice of a group's member, within the message's application.
pub struct ApplicationGroups {
    store: Arc<Store>,
    next: AtomicUsize,
}

impl ApplicationGroups {
    /// Chooses with the records in force in `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            next: AtomicUsize::new(0),
        }
    }
}

/// The index of the member to get a message on `topic`, under `records`
/// (`turns` counts the messages, for the turns), and whether it is online;
/// `None` when no member may.
pub fn choose(
    records: &Records,
    turns: &AtomicUsize,
    topic: &str,
    members: &Members,
) -> Option<(usize, IsOnline)> {
    let application = match audience(records, topic) {
        Audience::Application(application) => Some(application),
        Audience::Anyone => None,
        Audience::Nobody => return None,
    };
    let eligible: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, (_, client, ..))| {
            application.is_none_or(|app| {
                records
                    .device(client)
                    .is_some_and(|d| d.application() == app.as_str())
            })
        })
        .map(|(i, _)| i)
        .collect();
    let online: Vec<usize> = eligible
        .iter()
        .copied()
        .filter(|&i| members.get(i).is_some_and(|m| m.4 != Some(false)))
        .collect();
    let pool = if online.is_empty() {
        &eligible
    } else {
        &online
    };
    let turn = turns.fetch_add(1, Ordering::Relaxed);
    let chosen = *pool.get(turn.checked_rem(pool.len())?)?;
    Some((chosen, members.get(chosen)?.4.unwrap_or(true)))
}

/// Who may get a message, by its topic.
enum Audience {
    /// Devices of this application (a device topic).
    Application(ApplicationId),
    /// Anyone the policy lets receive it (a custom topic).
    Anyone,
    /// No one (a reserved topic, or a device unknown to the records).
    Nobody,
}

fn audience(records: &Records, topic: &str) -> Audience {
    let Ok(topic) = Topic::new(topic) else {
        return Audience::Nobody;
    };
    match records.rules().classify(topic) {
        TopicClass::State(id) | TopicClass::Command(id) => records
            .device(id)
            .and_then(|d| d.application().parse().ok())
            .map_or(Audience::Nobody, Audience::Application),
        TopicClass::Custom => Audience::Anyone,
        _ => Audience::Nobody,
    }
}

#[async_trait]
impl SharedSubscription for ApplicationGroups {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _scx: &ServerContext,
        _group: &SharedGroup,
        _publisher: &Id,
        topic: &TopicName,
        members: &Members,
    ) -> Option<(usize, IsOnline)> {
        choose(&self.store.read(), &self.next, topic, members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use structure_access::DeviceRecord;

    fn member(
        client: &str,
        online: Option<bool>,
    ) -> (
        NodeId,
        ClientId,
        SubscriptionOptions,
        Option<Vec<SubscriptionIdentifier>>,
        Option<IsOnline>,
    ) {
        (
            1,
            client.into(),
            SubscriptionOptions::default(),
            None,
            online,
        )
    }

    #[test]
    fn a_member_is_chosen_in_turn_within_the_topic_s_application() {
        let mut records = Records::empty();
        records.apply(structure_access_common::ChangeSet {
            keys: vec![],
            devices: [
                ("a1", "app-a"),
                ("a2", "app-a"),
                ("a3", "app-a"),
                ("b1", "app-b"),
            ]
            .into_iter()
            .map(|(id, app)| {
                let d = DeviceRecord::new(app.parse().unwrap(), id.parse().unwrap());
                structure_access_common::DeviceChange::Put(d, 0)
            })
            .collect(),
        });
        let turns = AtomicUsize::new(0);
        let groups = |topic: &str, members: &Members| choose(&records, &turns, topic, members);
        let members = [
            member("b1", Some(true)),
            member("a1", Some(true)),
            member("a2", Some(false)),
            member("a3", Some(true)),
        ];
        // A device topic of application A: a1 and a3 in turn (a2 offline,
        // b1 of another application).
        let chosen: Vec<usize> = (0..4)
            .map(|_| groups("structure/a2/state", &members).unwrap().0)
            .collect();
        assert_eq!(chosen, [1, 3, 1, 3]);
        // Only offline members of the application: one of them, offline.
        let offline = [member("b1", Some(true)), member("a2", Some(false))];
        assert_eq!(groups("structure/a1/state", &offline), Some((1, false)));
        // No member of the application, an unknown device, a reserved topic:
        // nobody.
        assert_eq!(groups("structure/a1/state", &[member("b1", None)]), None);
        assert_eq!(groups("structure/zz/state", &members), None);
        assert_eq!(groups("structure/a1/other", &members), None);
        // A custom topic: any member.
        assert!(groups("fleet/x", &[member("b1", None)]).is_some());
    }
}
