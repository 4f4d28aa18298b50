//! RabbitMQ's HTTP authentication and authorisation backend
//! (`rabbitmq_auth_backend_http`), answered from the records in force, so a
//! RabbitMQ cluster's MQTT plugin admits the platform's devices by their
//! access keys and confines them to their scope (README.md, "RabbitMQ").
//!
//! RabbitMQ asks four questions, each an HTTP request answered `allow` or
//! `deny` in the body:
//!
//! - `user` (`username`, `password`, `client_id`, `vhost`): the CONNECT.
//!   The client id is the device ID, the username the access key, the
//!   password the secret; the brokers' refusal rules apply (the same answer
//!   for every reason, Argon2 within its budget and on blocking threads,
//!   refusals past an address's budget held). A connection without a client
//!   id (AMQP, STOMP) is refused: a key authenticates a device.
//! - `vhost`: the one virtual host configured, for a key on file.
//! - `resource`: the topic exchange (read, write) and the device's own
//!   subscription queues, `mqtt-subscription-{deviceId}qos0` and `qos1`
//!   (configure, read, write); nothing else.
//! - `topic` (`routing_key`, `variable_map.client_id`): the core's topic
//!   policy, the principal derived again from the records in force for
//!   every question ([`Principal::reauthorize`]): a publication (`write`) is
//!   allowed when [`Principal::may_publish`] allows it, a subscription
//!   (`read`) when [`Principal::may_subscribe`] answers
//!   [`Decision::Allow`]. RabbitMQ has no per-delivery hook, so a
//!   subscription the policy grants only on the condition that each
//!   delivery is checked ([`Decision::Filter`]: a restricted key's wildcard
//!   over device topics) is **refused**.
//!
//! Routing keys are RabbitMQ's form of MQTT topics: its MQTT plugin turns
//! `/` into `.` and `+` into `*` and keeps any `.` of a topic as it is, so a
//! `.` inside an MQTT topic level becomes a level separator; RabbitMQ routes
//! by the routing key and delivers the topic it maps back (`.` to `/`, `*` to
//! `+`). [`mqtt_topic`] maps a routing key back the same way, and the policy
//! decides on that topic: the topic RabbitMQ itself routes and delivers. A
//! device ID holding a `.` therefore has no device topics through RabbitMQ
//! (`structure/dev.1/state` is routed as `structure/dev/1/state`, a reserved
//! topic): refused, never granted to another device.
//!
//! RabbitMQ keeps a connection's publications and subscriptions once
//! allowed, so a change of the records must end the connections it affects:
//! [`doomed`] names them, and [`Management`] lists and closes them through
//! RabbitMQ's management API ([`revoke`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use structure_access::mqtt::Decision;
use structure_access::{ApplicationId, KeyId, Principal, UnixTime};
use structure_access_common::audit::{Audit, Event, end_cause};
use structure_access_common::{Applied, KeyChanged, Records};

use super::{Credentials, Refusal, Server, SharedRecords, read, verdict};

/// The settings of the RabbitMQ endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitMqConfig {
    /// The virtual host the devices use (`mqtt.vhost`; RabbitMQ's default:
    /// `/`).
    pub vhost: String,
    /// The topic exchange of the MQTT plugin (`mqtt.exchange`; default
    /// `amq.topic`).
    pub exchange: String,
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        Self {
            vhost: "/".to_owned(),
            exchange: "amq.topic".to_owned(),
        }
    }
}

/// RabbitMQ's answer granting a request.
pub const ALLOW: &str = "allow";
/// RabbitMQ's answer refusing a request.
pub const DENY: &str = "deny";

/// The routes `/rabbitmq/user`, `/rabbitmq/vhost`, `/rabbitmq/resource` and
/// `/rabbitmq/topic`, each answering RabbitMQ's `GET` (the parameters in the
/// query) and `POST` (a form body: `auth_http.http_method = post`, which
/// keeps the password out of URLs and request logs).
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/rabbitmq/user", get(user).post(user))
        .route("/rabbitmq/vhost", get(vhost).post(vhost))
        .route("/rabbitmq/resource", get(resource).post(resource))
        .route("/rabbitmq/topic", get(topic).post(topic))
}

/// `allow` or `deny`, as `text/plain; charset=utf-8` (axum's for text).
fn answer(allowed: bool) -> Response {
    (StatusCode::OK, if allowed { ALLOW } else { DENY }).into_response()
}

/// `user`'s parameters. Not `Debug`: the password is the secret.
#[derive(Default, Deserialize)]
#[serde(default)]
struct UserQuestion {
    username: String,
    password: String,
    client_id: Option<String>,
    vhost: Option<String>,
}

async fn user(
    State(server): State<Arc<Server>>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Form(question): Form<UserQuestion>,
) -> Response {
    let Some(rabbit) = &server.config.rabbitmq else {
        return answer(false);
    };
    // RabbitMQ asks for every client: the budgets of an address are those
    // of the broker that asks.
    let address = connect.map(|axum::Extension(ConnectInfo(a))| a);
    let budget_key = address.map(|a| structure_access_common::throttle::address_key(a.ip()));
    let vhost_ok = question.vhost.as_deref().is_none_or(|v| v == rabbit.vhost);
    let Some(client_id) = question.client_id.filter(|c| !c.is_empty()) else {
        let refusal = Refusal {
            reason: "invalid_client_id",
            key: None,
            device: None,
        };
        return refuse_user(&server, refusal, budget_key).await;
    };
    let credentials = Credentials {
        device_id: client_id,
        key: question.username,
        secret: question.password,
    };
    match verdict(&server, credentials, budget_key.clone()).await {
        Ok((principal, _)) if vhost_ok => {
            server.gate.audit.write(&Event {
                event: "auth_accepted",
                device: Some(principal.device_id().as_str()),
                key: Some(principal.key().as_str()),
                application: Some(principal.application().as_str()),
                ..Event::default()
            });
            tracing::info!(
                "rabbitmq: device `{}` authenticated with access key `{}`",
                principal.device_id(),
                principal.key()
            );
            answer(true)
        }
        Ok((principal, _)) => {
            let refusal = Refusal {
                reason: "other",
                key: Some(*principal.key()),
                device: Some(*principal.device_id()),
            };
            refuse_user(&server, refusal, budget_key).await
        }
        Err(refusal) => refuse_user(&server, refusal, budget_key).await,
    }
}

async fn refuse_user(server: &Server, refusal: Refusal, budget_key: Option<String>) -> Response {
    server
        .refused(&refusal, "rabbitmq: ", None, budget_key.as_deref())
        .await;
    answer(false)
}

/// `vhost`'s parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VhostQuestion {
    username: String,
    vhost: String,
}

async fn vhost(State(server): State<Arc<Server>>, Form(q): Form<VhostQuestion>) -> Response {
    let Some(rabbit) = &server.config.rabbitmq else {
        return answer(false);
    };
    let now = (server.gate.clock)();
    let records = read(&server.gate.records);
    answer(q.vhost == rabbit.vhost && key_in_force(&records, &q.username, now).is_some())
}

/// The record of the key `username` names, if it is on file, active and
/// not expired at `now`.
fn key_in_force<'r>(
    records: &'r Records,
    username: &str,
    now: UnixTime,
) -> Option<&'r structure_access::AccessKey> {
    let key = username.parse::<KeyId>().ok()?;
    records
        .key(&key)
        .filter(|r| r.status().is_active() && !r.is_expired_at(now))
}

/// `resource`'s parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResourceQuestion {
    username: String,
    vhost: String,
    resource: String,
    name: String,
    permission: String,
}

async fn resource(State(server): State<Arc<Server>>, Form(q): Form<ResourceQuestion>) -> Response {
    let Some(rabbit) = &server.config.rabbitmq else {
        return answer(false);
    };
    let now = (server.gate.clock)();
    let records = read(&server.gate.records);
    let allowed = q.vhost == rabbit.vhost
        && decide_resource(
            &records,
            rabbit,
            &q.username,
            &q.resource,
            &q.name,
            &q.permission,
            now,
        );
    if !allowed {
        tracing::info!(
            "rabbitmq: {} of {} `{}` refused",
            structure_access_common::excerpt(&q.permission),
            structure_access_common::excerpt(&q.resource),
            structure_access_common::excerpt(&q.name)
        );
    }
    answer(allowed)
}

/// Whether the key `username` may have `permission` (`configure`, `write`
/// or `read`) on the resource (`exchange` or `queue`) `name`: the topic
/// exchange for reading and writing, and the subscription queues of a
/// device the key may act for.
pub fn decide_resource(
    records: &Records,
    rabbit: &RabbitMqConfig,
    username: &str,
    resource: &str,
    name: &str,
    permission: &str,
    now: UnixTime,
) -> bool {
    let Some(record) = key_in_force(records, username, now) else {
        return false;
    };
    match (resource, permission) {
        ("exchange", "read" | "write") => name == rabbit.exchange,
        ("queue", "configure" | "read" | "write") => subscription_queue_device(name)
            .and_then(|device| records.device(device))
            .is_some_and(|device| Principal::reauthorize(record, &device, now).is_ok()),
        _ => false,
    }
}

/// The device ID of the MQTT plugin's subscription queue `name`
/// (`mqtt-subscription-{client id}qos0` or `qos1`).
pub fn subscription_queue_device(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("mqtt-subscription-")?;
    rest.strip_suffix("qos0")
        .or_else(|| rest.strip_suffix("qos1"))
        .filter(|id| !id.is_empty())
}

/// `topic`'s parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TopicQuestion {
    username: String,
    vhost: String,
    name: String,
    permission: String,
    routing_key: String,
    #[serde(rename = "variable_map.client_id")]
    client_id: String,
}

async fn topic(State(server): State<Arc<Server>>, Form(q): Form<TopicQuestion>) -> Response {
    let Some(rabbit) = &server.config.rabbitmq else {
        return answer(false);
    };
    let now = (server.gate.clock)();
    let records = read(&server.gate.records);
    let verdict = if q.vhost != rabbit.vhost || q.name != rabbit.exchange {
        Err("another virtual host or exchange")
    } else {
        decide_topic(
            &records,
            &q.username,
            &q.client_id,
            &q.permission,
            &q.routing_key,
            now,
        )
    };
    match verdict {
        Ok(()) => answer(true),
        Err(why) => {
            tracing::info!(
                "rabbitmq: {} of `{}` by device `{}` refused: {why}",
                structure_access_common::excerpt(&q.permission),
                structure_access_common::excerpt(&q.routing_key),
                structure_access_common::excerpt(&q.client_id)
            );
            answer(false)
        }
    }
}

/// The MQTT topic (or filter) RabbitMQ's MQTT plugin routes as
/// `routing_key` and delivers to MQTT subscribers: every `.` a level
/// separator `/`, every `*` the single-level wildcard `+` (RabbitMQ 3.10's
/// `amqp2mqtt`). `#` stays `#`.
pub fn mqtt_topic(routing_key: &str) -> String {
    routing_key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '*' => '+',
            c => c,
        })
        .collect()
}

/// Whether the device `client_id`, connected with the key `username`, may
/// publish (`write`) to or subscribe (`read`) to `routing_key`, or why not.
/// The principal is derived again from the records; a subscription is
/// allowed only when the policy answers [`Decision::Allow`].
pub fn decide_topic(
    records: &Records,
    username: &str,
    client_id: &str,
    permission: &str,
    routing_key: &str,
    now: UnixTime,
) -> Result<(), &'static str> {
    let principal = principal_of(records, username, client_id, now)?;
    let topic = mqtt_topic(routing_key);
    let directory = |id: &str| records.device(id);
    let decision = match permission {
        "write" => principal.may_publish(records.rules(), &topic, &directory),
        "read" => principal.may_subscribe(records.rules(), &topic, &directory),
        _ => return Err("not a topic permission (`read` or `write`)"),
    };
    match decision {
        Ok(Decision::Allow) => Ok(()),
        Ok(Decision::Filter) => Err(
            "a subscription that needs every delivery checked (RabbitMQ has no per-delivery hook)",
        ),
        Ok(_) => Err("denied by the topic policy"),
        Err(_) => Err("not a valid MQTT topic"),
    }
}

/// The principal of the device `client_id` connected with the key
/// `username`, derived from the records in force, or why there is none.
fn principal_of(
    records: &Records,
    username: &str,
    client_id: &str,
    now: UnixTime,
) -> Result<Principal, &'static str> {
    let key = username.parse::<KeyId>().map_err(|_| "not an access key")?;
    let record = records.key(&key).ok_or("the access key is not on file")?;
    let device = records
        .device(client_id)
        .ok_or("the device is not on file")?;
    Principal::reauthorize(record, &device, now)
        .map_err(|_| "the access key no longer admits the device")
}

/// A connection RabbitMQ holds, as its management API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Its name, which closes it (`DELETE /api/connections/{name}`).
    pub name: String,
    /// Its user: the access key, for a device.
    pub user: String,
    /// The MQTT client id: the device ID.
    pub client_id: Option<String>,
}

/// Why a connection must end: the cause code of the audit trail's
/// `session_ended`, and the words of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doom {
    /// The cause code.
    pub cause: &'static str,
    /// What happened.
    pub why: &'static str,
}

/// The connections to close after `applied` changed the records (now
/// `records`) at `now`, each with why:
///
/// - a connection of a key whose record changed or is gone (deleted,
///   deactivated, its secret rotated: RabbitMQ does not say which secret a
///   connection proved, so every connection of a changed key ends, and its
///   devices connect again with what they hold);
/// - a connection whose key no longer admits its device (the device deleted,
///   moved, retagged out of scope, the key expired);
/// - a connection of a **restricted** key whose scope may have changed: a
///   device of its application changed, or a device was deleted. RabbitMQ
///   keeps the bindings and the publication rights a connection was
///   granted, so the only way to take back what a retag took out of scope
///   is to end the connection; the device reconnects and is decided again.
///
/// Connections of users that are neither keys on file nor keys the change
/// names (RabbitMQ's own users) are left alone. A connection whose client
/// id is not known yet is doomed only by its key (the first two rules and
/// the restricted keys'): the rest waits for a later look, when RabbitMQ
/// names its device.
pub fn doomed<'c>(
    records: &Records,
    applied: &Applied,
    connections: &'c [Connection],
    now: UnixTime,
) -> Vec<(&'c Connection, Doom)> {
    let changed_keys: HashMap<&KeyId, KeyChanged> =
        applied.keys.iter().map(|(k, how)| (k, *how)).collect();
    let mut applications: HashSet<ApplicationId> = HashSet::new();
    let mut device_gone = false;
    for id in &applied.devices {
        match records.device(id.as_str()) {
            Some(device) => {
                if let Ok(app) = structure_access::Device::application(&device).parse() {
                    applications.insert(app);
                }
            }
            None => device_gone = true,
        }
    }
    // Every connection of a restricted key of an application where a
    // device changed.
    let restricted_doom = |record: &structure_access::AccessKey| {
        (record.scope().restriction().is_some()
            && (device_gone || applications.contains(record.application())))
        .then_some(Doom {
            cause: "out_of_scope",
            why: "a device of its restricted key's application changed: its scope is decided again",
        })
    };
    let mut out = Vec::new();
    for connection in connections {
        let Ok(key) = connection.user.parse::<KeyId>() else {
            continue;
        };
        let record = records.key(&key);
        let doom = match (changed_keys.get(&key), record) {
            // Not a key this change names nor one on file: one of
            // RabbitMQ's own users.
            (None, None) => None,
            (Some(KeyChanged::Removed), _) | (Some(_), None) => Some(Doom {
                cause: "deleted",
                why: "the access key was deleted",
            }),
            (Some(_), Some(record)) if !record.status().is_active() => Some(Doom {
                cause: "inactive",
                why: "the access key is inactive",
            }),
            (Some(_), Some(record)) if record.is_expired_at(now) => Some(Doom {
                cause: "expired",
                why: "the access key has expired",
            }),
            (Some(_), Some(record)) => {
                let refused = connection
                    .client_id
                    .as_deref()
                    .and_then(|id| records.device(id))
                    .and_then(|device| Principal::reauthorize(record, &device, now).err());
                Some(match refused {
                    Some(e) => Doom {
                        cause: end_cause(&structure_access_common::refusal_reason(&e)),
                        why: "the access key no longer admits the device",
                    },
                    None => Doom {
                        cause: "rotated",
                        why: "the access key's record changed (its secret, perhaps)",
                    },
                })
            }
            // Not yet known which device it is (RabbitMQ names it later):
            // decided at a later look, unless its key is doomed whole.
            (None, Some(record)) if connection.client_id.is_none() => restricted_doom(record),
            (None, Some(record)) => {
                let device = connection
                    .client_id
                    .as_deref()
                    .and_then(|id| records.device(id));
                match device {
                    None => Some(Doom {
                        cause: "device_deleted",
                        why: "the device was deleted",
                    }),
                    Some(device) => match Principal::reauthorize(record, &device, now) {
                        Err(e) => {
                            let why = structure_access_common::refusal_reason(&e);
                            Some(Doom {
                                cause: end_cause(&why),
                                why: "the access key no longer admits the device",
                            })
                        }
                        Ok(_) => restricted_doom(record),
                    },
                }
            }
        };
        if let Some(doom) = doom {
            out.push((connection, doom));
        }
    }
    out
}

/// Why the management API did not answer as expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// No node could be reached.
    #[error("cannot reach rabbitmq's management api at `{url}`: {reason}")]
    Unreachable {
        /// The URL tried last.
        url: String,
        /// Why.
        reason: String,
    },
    /// A node answered with an unexpected status.
    #[error("rabbitmq's management api answered {status} to {what}")]
    Status {
        /// The status.
        status: u16,
        /// The request.
        what: String,
    },
    /// The list of connections is not the JSON expected.
    #[error("rabbitmq's list of connections is not the json expected: {0}")]
    Malformed(String),
    /// The credentials file is not `user:password`.
    #[error("expected `user:password` in the management credentials")]
    Credentials,
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<axum::body::Bytes>,
>;

/// RabbitMQ's management API (the `rabbitmq_management` plugin), on one or
/// more nodes, tried in turn: the connections of the whole cluster, and
/// closing one.
pub struct Management {
    urls: Vec<String>,
    authorization: HeaderValue,
    client: Client,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("urls", &self.urls)
            .field("authorization", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The largest list of connections read (bytes).
const MAX_LIST: usize = 256 << 20;

impl Management {
    /// The API at `urls` (`http://127.0.0.1:15672`, …), with the
    /// credentials `user:password` of a RabbitMQ user tagged
    /// `administrator` (or `monitoring` plus the right to close
    /// connections).
    pub fn new(urls: Vec<String>, credentials: &str) -> Result<Self, ManagementError> {
        use base64ct::Encoding;
        let credentials = credentials.trim_end_matches(['\r', '\n']);
        if !credentials.contains(':') {
            return Err(ManagementError::Credentials);
        }
        let mut authorization = HeaderValue::from_str(&format!(
            "Basic {}",
            base64ct::Base64::encode_string(credentials.as_bytes())
        ))
        .map_err(|_| ManagementError::Credentials)?;
        authorization.set_sensitive(true);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http();
        Ok(Self {
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            authorization,
            client,
        })
    }

    async fn request(
        &self,
        method: axum::http::Method,
        path: &str,
        reason: Option<&str>,
    ) -> Result<(u16, axum::body::Bytes), ManagementError> {
        use http_body_util::BodyExt;
        let mut last = ManagementError::Unreachable {
            url: String::new(),
            reason: "no url".into(),
        };
        for base in &self.urls {
            let url = format!("{base}{path}");
            let mut request = axum::http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .header(header::AUTHORIZATION, self.authorization.clone());
            if let Some(reason) = reason {
                request = request.header("x-reason", reason);
            }
            let Ok(request) = request.body(http_body_util::Full::new(axum::body::Bytes::new()))
            else {
                return Err(ManagementError::Unreachable {
                    url,
                    reason: "not a valid url".into(),
                });
            };
            let sent = tokio::time::timeout(Duration::from_secs(10), async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let body = http_body_util::Limited::new(response.into_body(), MAX_LIST)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok::<_, String>((status, body))
            })
            .await;
            match sent {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(reason)) => last = ManagementError::Unreachable { url, reason },
                Err(_) => {
                    last = ManagementError::Unreachable {
                        url,
                        reason: "no answer within 10 s".into(),
                    }
                }
            }
        }
        Err(last)
    }

    async fn list(&self, path: &str) -> Result<Vec<Connection>, ManagementError> {
        let (status, body) = self.request(axum::http::Method::GET, path, None).await?;
        if status != 200 {
            return Err(ManagementError::Status {
                status,
                what: "GET /api/connections".into(),
            });
        }
        parse_connections(&body)
    }

    /// Every connection of the cluster, with its client id when RabbitMQ
    /// lists it yet. The connections are those the nodes track now
    /// (`disable_stats=true`: a connection is there as soon as it is
    /// open); their client ids come from the statistics, which name a new
    /// connection only once they are next collected
    /// (`collect_statistics_interval`): until then its `client_id` is
    /// `None`.
    pub async fn connections(&self) -> Result<Vec<Connection>, ManagementError> {
        let mut tracked = self.list("/api/connections?disable_stats=true").await?;
        let ids: HashMap<String, String> = self
            .list("/api/connections?columns=name,user,variable_map")
            .await?
            .into_iter()
            .filter_map(|c| Some((c.name, c.client_id?)))
            .collect();
        for connection in &mut tracked {
            connection.client_id = ids.get(&connection.name).cloned();
        }
        Ok(tracked)
    }

    /// Closes the connection `name`, saying `reason` to RabbitMQ's log:
    /// `true` when it was closed, `false` when it was already gone (the
    /// list lags behind the nodes).
    pub async fn close(&self, name: &str, reason: &str) -> Result<bool, ManagementError> {
        // `disable_stats`: a connection too new for the statistics is
        // closed too.
        let path = format!(
            "/api/connections/{}?disable_stats=true",
            percent_encode(name)
        );
        let (status, _) = self
            .request(axum::http::Method::DELETE, &path, Some(reason))
            .await?;
        match status {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(ManagementError::Status {
                status,
                what: "DELETE /api/connections/…".into(),
            }),
        }
    }
}

/// The connections of the management API's JSON list (an array, or a
/// page's `items`).
pub fn parse_connections(body: &[u8]) -> Result<Vec<Connection>, ManagementError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ManagementError::Malformed(e.to_string()))?;
    let items = match &value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(page) => page
            .get("items")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| ManagementError::Malformed("expected an array".into()))?,
        _ => return Err(ManagementError::Malformed("expected an array".into())),
    };
    Ok(items
        .iter()
        .filter_map(|item| {
            let text =
                |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
            Some(Connection {
                name: text(item.get("name"))?,
                user: text(item.get("user")).unwrap_or_default(),
                client_id: text(item.pointer("/variable_map/client_id"))
                    .or_else(|| text(item.pointer("/client_properties/client_id"))),
            })
        })
        .collect())
}

/// `text` with every byte but the URL path's unreserved ones
/// percent-encoded (a connection's name holds spaces, `:` and `>`).
/// Hand-written: six lines, where a crate would add a dependency for one
/// call.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// How long each change is looked for in RabbitMQ's list of connections,
/// by default: RabbitMQ's management API lists a connection only once its
/// statistics are collected (`collect_statistics_interval`, 5 s by
/// default), so a CONNECT authenticated just before a change may show up
/// that much later. Twice the default interval, and some.
pub const DEFAULT_LOOK_WINDOW: Duration = Duration::from_secs(12);

/// How often the list is read while changes are being looked for.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// How long after a change is first looked at a new connection may still
/// have been authenticated before it (RabbitMQ tracks a connection a few
/// milliseconds after its `user` question is answered).
const GRACE: Duration = Duration::from_millis(500);

/// A change being looked for: the connections it may doom, until when.
struct Look {
    applied: Applied,
    until: tokio::time::Instant,
    open_until: tokio::time::Instant,
    names: HashSet<String>,
}

/// Closes the connections the changes sent on `changes` doom (see
/// [`doomed`]), through `management`. Each change is decided against the
/// connections open when it was applied (the first list read once it is in
/// force, and those that open within half a second: a CONNECT authenticated
/// just before), every half second for `window`: a connection whose device
/// RabbitMQ names late (see [`DEFAULT_LOOK_WINDOW`]) is closed when it does;
/// connections opened later were authenticated under the new records and
/// are not its to close. While the API
/// cannot be read, the changes wait, none forgotten (they are merged, so
/// the wait holds at most one of each key and device). Each connection
/// closed is written to the audit trail as `session_ended`.
pub async fn revoke(
    management: Arc<Management>,
    records: SharedRecords,
    audit: Arc<Audit>,
    clock: fn() -> UnixTime,
    window: Duration,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Applied>,
) {
    // Changes not yet decided against a list, merged; and those being
    // looked for, until their deadline.
    let mut waiting = Applied::default();
    let mut looking: Vec<Look> = Vec::new();
    // Connections closed lately (the list may still name them).
    let mut closed: HashMap<String, tokio::time::Instant> = HashMap::new();
    loop {
        let received = if waiting.is_empty() && looking.is_empty() {
            changes.recv().await
        } else {
            match tokio::time::timeout(LOOK_EVERY, changes.recv()).await {
                Ok(received) => received,
                Err(_) => Some(Applied::default()),
            }
        };
        let Some(applied) = received else {
            return;
        };
        merge(&mut waiting, applied);
        while let Ok(more) = changes.try_recv() {
            merge(&mut waiting, more);
        }
        let connections = match management.connections().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("rabbitmq: revocations wait for the management api: {e}");
                continue;
            }
        };
        let listed = tokio::time::Instant::now();
        if !waiting.is_empty() {
            looking.push(Look {
                applied: std::mem::take(&mut waiting),
                until: listed + window,
                open_until: listed + GRACE,
                names: HashSet::new(),
            });
        }
        // The connections a change may doom: those open when it was
        // applied (the first list after it, and a grace for a CONNECT
        // authenticated just before it); a later one was authenticated
        // under the records it made.
        // During the grace, a connection is decided as listed; the ones
        // RabbitMQ has not named yet are remembered, to be decided once it
        // does. (One that was named and not doomed stays so: the change is
        // the same, and a later one is looked at on its own.)
        for look in &mut looking {
            if listed <= look.open_until {
                look.names.extend(
                    connections
                        .iter()
                        .filter(|c| c.client_id.is_none())
                        .map(|c| c.name.clone()),
                );
            }
        }
        closed.retain(|_, until| *until > listed);
        let now = clock();
        let decided: Vec<(String, Option<String>, String, Doom)> = {
            let records = read(&records);
            looking
                .iter()
                .flat_map(|look| {
                    doomed(&records, &look.applied, &connections, now)
                        .into_iter()
                        .filter(|(c, _)| listed <= look.open_until || look.names.contains(&c.name))
                })
                .filter(|(c, _)| !closed.contains_key(&c.name))
                .map(|(c, doom)| (c.name.clone(), c.client_id.clone(), c.user.clone(), doom))
                .collect()
        };
        for (name, device, key, doom) in decided {
            if closed.contains_key(&name) {
                continue;
            }
            match management
                .close(&name, &format!("structure-access: {}", doom.why))
                .await
            {
                Ok(was_open) => {
                    closed.insert(name, listed + window);
                    if !was_open {
                        continue;
                    }
                    audit.write(&Event {
                        event: "session_ended",
                        reason: Some(doom.cause),
                        device: device.as_deref(),
                        key: Some(&key),
                        ..Event::default()
                    });
                    tracing::info!(
                        "rabbitmq: closed the connection of device `{}` (access key `{key}`): {}",
                        structure_access_common::escape(device.as_deref().unwrap_or("-")),
                        doom.why
                    );
                }
                // Tried again at the next look.
                Err(e) => tracing::error!("rabbitmq: cannot close a connection: {e}"),
            }
        }
        looking.retain(|look| look.until > listed);
    }
}

/// `more` added to `into`, each key and device once.
fn merge(into: &mut Applied, more: Applied) {
    if more.is_empty() {
        return;
    }
    let mut keys: HashMap<KeyId, usize> = into
        .keys
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, i))
        .collect();
    for (key, how) in more.keys {
        match keys.get(&key).and_then(|&i| into.keys.get_mut(i)) {
            // A removal stays a removal; any other change is a change.
            Some((_, held)) => {
                if how == KeyChanged::Removed {
                    *held = how;
                }
            }
            None => {
                keys.insert(key, into.keys.len());
                into.keys.push((key, how));
            }
        }
    }
    let mut devices: HashSet<structure_access::DeviceId> = into.devices.iter().copied().collect();
    for device in more.devices {
        if devices.insert(device) {
            into.devices.push(device);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_map_back_as_rabbitmq_delivers_them() {
        assert_eq!(mqtt_topic("structure.d1.state"), "structure/d1/state");
        assert_eq!(mqtt_topic("structure.*.state"), "structure/+/state");
        assert_eq!(mqtt_topic("structure.#"), "structure/#");
        assert_eq!(mqtt_topic("structure.dev.1.state"), "structure/dev/1/state");
        assert_eq!(mqtt_topic(""), "");
    }

    #[test]
    fn subscription_queues_name_their_device() {
        assert_eq!(
            subscription_queue_device("mqtt-subscription-d1qos0"),
            Some("d1")
        );
        assert_eq!(
            subscription_queue_device("mqtt-subscription-d1qos1"),
            Some("d1")
        );
        assert_eq!(
            subscription_queue_device("mqtt-subscription-qos1qos0"),
            Some("qos1")
        );
        assert_eq!(subscription_queue_device("mqtt-subscription-qos0"), None);
        assert_eq!(subscription_queue_device("mqtt-subscription-d1"), None);
        assert_eq!(subscription_queue_device("other-d1qos0"), None);
    }

    #[test]
    fn merged_changes_hold_each_key_and_device_once() {
        let k1: KeyId = "stk_0123456789abcdefghijkl".parse().unwrap();
        let k2: KeyId = "stk_0123456789abcdefghijkm".parse().unwrap();
        let d1: structure_access::DeviceId = "d1".parse().unwrap();
        let mut into = Applied::default();
        merge(
            &mut into,
            Applied {
                keys: vec![(k1, KeyChanged::Removed), (k2, KeyChanged::Changed)],
                devices: vec![d1],
            },
        );
        merge(
            &mut into,
            Applied {
                keys: vec![(k1, KeyChanged::Added), (k2, KeyChanged::Removed)],
                devices: vec![d1],
            },
        );
        assert_eq!(
            into.keys,
            vec![(k1, KeyChanged::Removed), (k2, KeyChanged::Removed)]
        );
        assert_eq!(into.devices, vec![d1]);
    }

    #[test]
    fn connection_names_are_percent_encoded() {
        assert_eq!(
            percent_encode("127.0.0.1:5 -> 127.0.0.1:1883"),
            "127.0.0.1%3A5%20-%3E%20127.0.0.1%3A1883"
        );
    }

    #[test]
    fn the_connection_list_is_read_as_rabbitmq_writes_it() {
        let body = br#"[{"name":"a -> b","user":"stk_1","client_properties":{"client_id":"d1"}},
            {"name":"c -> d","user":"admin","client_properties":{}},{"user":"nameless"}]"#;
        let list = parse_connections(body).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].client_id.as_deref(), Some("d1"));
        assert_eq!(list[1].client_id, None);
        assert!(parse_connections(b"{}").is_err());
        assert!(parse_connections(b"not json").is_err());
    }

    #[test]
    fn management_credentials_are_redacted() {
        let m = Management::new(vec!["http://127.0.0.1:1".into()], "admin:hunter2").unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
        assert!(Management::new(vec![], "no-colon").is_err());
    }
}
