//! `structure-access` for HTTP servers.
//!
//! - [`Gate`] and the [`Authenticated`] extractor: a handler that takes an
//!   `Authenticated` runs only for a request whose `Authorization: Bearer`
//!   header holds a device token ([`structure_access_tokens`]) that verifies
//!   and whose key and device the **current** records still admit; it gets
//!   the device's [`Principal`]. Anything else is answered `401` with
//!   `{"error": "invalid token"}`, and written to the audit trail.
//! - [`Server`] and [`router`]: the reference server, with Losant's shapes:
//!   `POST /auth/device`, `POST /applications/{app}/devices/{device}/state`,
//!   `GET /applications/{app}/devices` (README.md, "HTTP servers").
//!
//! - [`rabbitmq`]: RabbitMQ's HTTP auth backend, so a RabbitMQ cluster's MQTT
//!   plugin authenticates and authorizes the devices by their keys, and the
//!   connections of revoked keys are closed through its management API.
//!
//! The records are those of the brokers ([`Records`]): from the keys and
//! devices files through [`FileSource`], re-read when they change
//! ([`follow_files`]), or from the platform's database, a snapshot then its
//! change log ([`follow_database`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use structure_access::{
    ApplicationId, AuthError, Authenticator, Device, DeviceId, KeyId, Principal, Secret, UnixTime,
};
use structure_access_common::audit::{Audit, Event, auth_reason};
use structure_access_common::throttle::{Tarpit, Throttle};
use structure_access_common::{FileSource, Records, Unlisted};
use structure_access_tokens::{CachingVerifier, Issuer, TokenError};

pub mod rabbitmq;

/// The answer to every refused `POST /auth/device`, whatever the reason.
pub const BAD_CREDENTIALS: &str = "bad credentials";

/// The answer to every request refused for its token, whatever the reason.
pub const INVALID_TOKEN: &str = "invalid token";

/// Devices listed at most by `GET /applications/{app}/devices`.
pub const MAX_LISTED: usize = 10_000;

/// The records in force, shared by the requests and the reloads.
pub type SharedRecords = Arc<RwLock<Records>>;

fn read(records: &SharedRecords) -> std::sync::RwLockReadGuard<'_, Records> {
    records.read().unwrap_or_else(PoisonError::into_inner)
}

/// What authenticates a request's device token: the verifier (with its
/// cache), the records in force, the audit trail and the clock.
pub struct Gate {
    verifier: CachingVerifier,
    records: SharedRecords,
    audit: Arc<Audit>,
    clock: fn() -> UnixTime,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("verifier", &self.verifier)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate for tokens `verifier` accepts, checked against `records`,
    /// refusals written to `audit`.
    pub fn new(verifier: CachingVerifier, records: SharedRecords, audit: Arc<Audit>) -> Self {
        Self {
            verifier,
            records,
            audit,
            clock: UnixTime::now,
        }
    }

    /// The same, reading the time from `clock` (tests).
    pub fn with_clock(mut self, clock: fn() -> UnixTime) -> Self {
        self.clock = clock;
        self
    }

    /// The records it checks against.
    pub fn records(&self) -> &SharedRecords {
        &self.records
    }

    /// The principal of the device whose token `headers` carry (as
    /// `Authorization: Bearer <token>`), or why there is none. A refusal is
    /// written to the audit trail (within its budget), naming the device and
    /// key only when the token verified.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        address: Option<&str>,
    ) -> Result<Principal, TokenError> {
        self.authenticate_from(headers, || address.map(str::to_owned))
    }

    /// [`Gate::authenticate`], with the client's address worked out only
    /// for a refusal.
    pub fn authenticate_from(
        &self,
        headers: &HeaderMap,
        address: impl FnOnce() -> Option<String>,
    ) -> Result<Principal, TokenError> {
        let result = self.check(headers);
        if let Err(refused) = &result {
            let (error, claimed) = &**refused;
            let address = address();
            let address = address.as_deref();
            self.audit.refused(&Event {
                event: "token_refused",
                reason: Some(error.code()),
                device: claimed.as_ref().map(|(d, _)| d.as_str()),
                key: claimed.as_ref().map(|(_, k)| k.as_str()),
                address,
                ..Event::default()
            });
            tracing::info!("token refused: {error}");
        }
        result.map_err(|refused| refused.0)
    }

    /// The principal, or why not (boxed: refusals are the rare path) with
    /// the token's device and key when it verified.
    #[allow(clippy::type_complexity)]
    fn check(
        &self,
        headers: &HeaderMap,
    ) -> Result<Principal, Box<(TokenError, Option<(DeviceId, KeyId)>)>> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            // UTF-8 (checked fast), not `to_str`'s byte-by-byte visible
            // ASCII: a token is ASCII, anything else fails verification.
            .and_then(|v| std::str::from_utf8(v).ok())
            .ok_or_else(|| {
                Box::new((
                    TokenError::Malformed("expected `Authorization: Bearer <token>`"),
                    None,
                ))
            })?;
        let now = (self.clock)();
        let claims = self
            .verifier
            .verify(token.trim(), now)
            .map_err(|e| Box::new((e, None)))?;
        let records = read(&self.records);
        let device = records.device(claims.device_id().as_str());
        claims
            .principal(records.key(claims.key()), device.as_ref(), now)
            .map_err(|e| Box::new((e, Some((*claims.device_id(), *claims.key())))))
    }
}

/// A state that holds a [`Gate`]: what [`Authenticated`] needs.
pub trait HasGate {
    /// The gate that authenticates the requests' tokens.
    fn gate(&self) -> &Gate;
}

impl HasGate for Arc<Gate> {
    fn gate(&self) -> &Gate {
        self
    }
}

/// A request's authenticated device: a handler that takes one runs only
/// when the request carries a valid device token (see [`Gate`]). The
/// router's state must implement [`HasGate`].
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// The rejection of a request without a valid token: `401`, with
/// `WWW-Authenticate: Bearer` and `{"error": "invalid token"}`.
#[derive(Debug, Clone, Copy)]
pub struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": INVALID_TOKEN })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

fn client_address(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.to_string())
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: HasGate + Send + Sync,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        state
            .gate()
            .authenticate_from(&parts.headers, || client_address(parts))
            .map(Authenticated)
            .map_err(|_| Unauthorized)
    }
}

/// The settings of the reference server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest request body accepted (bytes); larger: `413`.
    pub max_body: usize,
    /// The bytes of device states kept, at most (the last state of each
    /// device); past them a new state is refused with `507`.
    pub max_state_bytes: usize,
    /// No authentication at all on the state route (a baseline for the
    /// load test only).
    pub no_auth: bool,
    /// Argon2 verifications per second, in the server and per address.
    pub argon2_per_second: (u32, u32),
    /// Refusals of an address answered at once per second; past them each
    /// is held this long (as the brokers do).
    pub refusal_hold: (u32, Duration),
    /// RabbitMQ's auth backend endpoints (`/rabbitmq/…`), when set.
    pub rabbitmq: Option<rabbitmq::RabbitMqConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024,
            max_state_bytes: 64 << 20,
            no_auth: false,
            argon2_per_second: (10, 2),
            refusal_hold: (2, Duration::from_secs(1)),
            rabbitmq: None,
        }
    }
}

/// The reference server's state: the gate, the token issuer, the core's
/// authenticator with its Argon2 budget, and the devices' last states.
pub struct Server {
    gate: Arc<Gate>,
    issuer: Issuer,
    auth: Arc<Authenticator>,
    throttle: Arc<Throttle>,
    tarpit: Tarpit,
    config: ServerConfig,
    states: Mutex<(HashMap<String, Bytes>, usize)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("gate", &self.gate)
            .field("issuer", &self.issuer)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HasGate for Arc<Server> {
    fn gate(&self) -> &Gate {
        &self.gate
    }
}

impl Server {
    /// A server that issues tokens with `issuer`, authenticates with `auth`
    /// (the records' hash policy) and checks tokens with `gate`.
    pub fn new(gate: Gate, issuer: Issuer, auth: Authenticator, config: ServerConfig) -> Self {
        let (rate, per_address) = config.argon2_per_second;
        let (refusals, hold) = config.refusal_hold;
        Self {
            gate: Arc::new(gate),
            issuer,
            auth: Arc::new(auth),
            throttle: Arc::new(Throttle::new(rate, per_address)),
            tarpit: Tarpit::new(refusals, hold, 10_000, 100),
            config,
            states: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The last state stored for `device`, if any.
    pub fn state_of(&self, device: &str) -> Option<Bytes> {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .get(device)
            .cloned()
    }
}

/// The routes of the reference server, with the body limit.
pub fn router(server: Arc<Server>) -> Router {
    let state_route = if server.config.no_auth {
        post(post_state_open)
    } else {
        post(post_state)
    };
    let routes = if server.config.rabbitmq.is_some() {
        rabbitmq::routes()
    } else {
        Router::new()
    };
    routes
        .route("/auth/device", post(auth_device))
        .route(
            "/applications/{application}/devices/{device}/state",
            state_route,
        )
        .route("/applications/{application}/devices", get(list_devices))
        .layer(DefaultBodyLimit::max(server.config.max_body))
        .with_state(server)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A `400` for a body that is not the JSON expected, saying where, and
/// what was expected (nothing of the body is repeated: it may hold a
/// secret).
fn malformed(e: &serde_json::Error, expected: &str) -> Response {
    let what = match e.classify() {
        serde_json::error::Category::Data => "unexpected content",
        _ => "malformed JSON",
    };
    error(
        StatusCode::BAD_REQUEST,
        &format!(
            "{what} at line {}, column {}: expected {expected}",
            e.line(),
            e.column()
        ),
    )
}

impl Server {
    /// A refused authentication: written to the audit trail (the key named
    /// only if it is on file: an unknown one is only text the client typed,
    /// a secret perhaps) and the log (`context` before it), then held when
    /// `budget_key`'s refusals are past their budget.
    async fn refused(
        &self,
        refusal: &Refusal,
        context: &str,
        address: Option<&str>,
        budget_key: Option<&str>,
    ) {
        let on_file = {
            let records = read(&self.gate.records);
            refusal
                .key
                .filter(|k| records.key(k).is_some())
                .map(|k| k.to_string())
        };
        self.gate.audit.refused(&Event {
            event: "auth_refused",
            reason: Some(refusal.reason),
            device: refusal.device.as_ref().map(DeviceId::as_str),
            key: on_file.as_deref(),
            address,
            ..Event::default()
        });
        tracing::info!("{context}authentication refused: {}", refusal.reason);
        if let Some(held) = self.tarpit.hold(budget_key) {
            tokio::time::sleep(held.delay()).await;
        }
    }
}

/// `POST /auth/device`'s body. Not `Debug`: it holds the secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Credentials {
    device_id: String,
    key: String,
    secret: String,
}

const CREDENTIALS: &str = r#"{"deviceId": "…", "key": "…", "secret": "…"}"#;

/// A refused authentication: its audit reason code, and the key and
/// device when valid.
struct Refusal {
    reason: &'static str,
    key: Option<KeyId>,
    device: Option<DeviceId>,
}

async fn auth_device(
    State(server): State<Arc<Server>>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let credentials: Credentials = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return malformed(&e, CREDENTIALS),
    };
    let address = connect.map(|axum::Extension(ConnectInfo(a))| a);
    let budget_key = address.map(|a| structure_access_common::throttle::address_key(a.ip()));
    let shown = address.map(|a| a.to_string());
    match verdict(&server, credentials, budget_key.clone()).await {
        Ok((principal, record)) => {
            let now = (server.gate.clock)();
            match server.issuer.issue(&principal, &record, now) {
                Ok(issued) => {
                    server.gate.audit.write(&Event {
                        event: "token_issued",
                        device: Some(principal.device_id().as_str()),
                        key: Some(principal.key().as_str()),
                        application: Some(principal.application().as_str()),
                        address: shown.as_deref(),
                        ..Event::default()
                    });
                    tracing::info!(
                        "token issued to device `{}` of key `{}`",
                        principal.device_id(),
                        principal.key()
                    );
                    Json(json!({
                        "applicationId": principal.application().as_str(),
                        "deviceId": principal.device_id().as_str(),
                        "token": issued.token.expose(),
                        "expiresAt": issued.expires_at.to_string(),
                    }))
                    .into_response()
                }
                Err(e) => {
                    tracing::error!("cannot issue a token: {e}");
                    error(StatusCode::INTERNAL_SERVER_ERROR, "cannot issue a token")
                }
            }
        }
        Err(refusal) => {
            server
                .refused(&refusal, "", shown.as_deref(), budget_key.as_deref())
                .await;
            error(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS)
        }
    }
}

/// Who the credentials authenticate (and the key record that did), or
/// why not: the core's `Authenticator`, on a blocking thread whenever
/// Argon2 may run, within the server's and the address's Argon2 budget.
async fn verdict(
    server: &Arc<Server>,
    credentials: Credentials,
    budget_key: Option<String>,
) -> Result<(Principal, Arc<structure_access::AccessKey>), Refusal> {
    let device_id = credentials.device_id.parse::<DeviceId>().ok();
    let refuse = |reason, key| Refusal {
        reason,
        key,
        device: device_id,
    };
    let Ok(key) = credentials.key.parse::<KeyId>() else {
        return Err(refuse("not_an_access_key", None));
    };
    let secret = Secret::parse_any(&credentials.secret)
        .map_err(|_| refuse("malformed_secret", Some(key)))?;
    drop(credentials);
    let Some(device_id) = device_id else {
        return Err(refuse("invalid_client_id", Some(key)));
    };
    let (record, device, argon2_on_file) = {
        let records = read(&server.gate.records);
        (
            records.key_shared(&key),
            records
                .device(device_id.as_str())
                .and_then(|d| d.to_record()),
            records.argon2_on_file(),
        )
    };
    let (auth, throttle) = (server.auth.clone(), server.throttle.clone());
    let known_device = device.is_some();
    let slow = argon2_on_file && auth.may_run_argon2(&key, record.as_deref());
    let run = move || {
        let permit = || argon2_on_file && throttle.permit(budget_key.as_deref());
        let result = match &device {
            Some(device) => {
                auth.authenticate_with(&key, record.as_deref(), &secret, device, permit)
            }
            None => auth.authenticate_with(
                &key,
                record.as_deref(),
                &secret,
                &Unlisted(device_id),
                permit,
            ),
        };
        (result, record)
    };
    let (result, record) = if slow {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|_| refuse("other", Some(key)))?
    } else {
        run()
    };
    match (result, record) {
        (Ok(principal), Some(record)) => Ok((principal, record)),
        (Ok(_), None) => Err(refuse("unknown_key", Some(key))),
        (Err(_), _) if !known_device => Err(refuse("unknown_device", Some(key))),
        (Err(e), _) => Err(refuse(reason_of(&e), Some(key))),
    }
}

fn reason_of(error: &AuthError) -> &'static str {
    auth_reason(error)
}

/// Whether `principal` may see the device `device` of `application` (a
/// device not on file: no).
fn visible(server: &Server, principal: &Principal, application: &str, device: &str) -> bool {
    if application.parse::<ApplicationId>().ok() != Some(*principal.application()) {
        return false;
    }
    let records = read(&server.gate.records);
    records
        .device(device)
        .is_some_and(|view| principal.can_see(&view))
}

async fn post_state(
    Authenticated(principal): Authenticated,
    State(server): State<Arc<Server>>,
    Path((application, device)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !visible(&server, &principal, &application, &device) {
        return error(StatusCode::FORBIDDEN, "not allowed for this device");
    }
    store_state(&server, device, body)
}

/// The state route without authentication: the load test's baseline.
async fn post_state_open(
    State(server): State<Arc<Server>>,
    Path((_application, device)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    store_state(&server, device, body)
}

const STATE: &str = "a JSON object, the device's state";

fn store_state(server: &Server, device: String, body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(_)) => {}
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unexpected content: expected {STATE}"),
            );
        }
        Err(e) => return malformed(&e, STATE),
    }
    let mut states = server.states.lock().unwrap_or_else(PoisonError::into_inner);
    let (map, bytes) = &mut *states;
    let before = map.get(&device).map_or(0, Bytes::len);
    let after = bytes.saturating_sub(before).saturating_add(body.len());
    if after > server.config.max_state_bytes {
        return error(StatusCode::INSUFFICIENT_STORAGE, "device states full");
    }
    *bytes = after;
    map.insert(device, body);
    (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
}

async fn list_devices(
    Authenticated(principal): Authenticated,
    State(server): State<Arc<Server>>,
    Path(application): Path<String>,
) -> Response {
    if application.parse::<ApplicationId>().ok() != Some(*principal.application()) {
        return error(StatusCode::FORBIDDEN, "not allowed for this application");
    }
    let records = read(&server.gate.records);
    let mut items = Vec::new();
    let mut truncated = false;
    for view in records.devices().iter() {
        if !principal.can_see(&view) {
            continue;
        }
        if items.len() == MAX_LISTED {
            truncated = true;
            break;
        }
        let tags: serde_json::Map<String, Value> = view
            .tags()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        items.push(json!({ "deviceId": view.id(), "tags": tags }));
    }
    Json(json!({ "count": items.len(), "truncated": truncated, "items": items })).into_response()
}

/// Re-reads the files every `interval` when they changed, and applies what
/// changed; a file that cannot be read or holds an invalid line leaves the
/// records as they are (said in the log), and is tried again.
pub async fn follow_files(
    source: FileSource,
    records: SharedRecords,
    audit: Arc<Audit>,
    interval: Duration,
) {
    follow_files_then(source, records, audit, interval, |_| {}).await;
}

/// [`follow_files`], handing what each reload changed to `then` once it
/// is in force (the RabbitMQ revocations: [`rabbitmq::revoke`]).
pub async fn follow_files_then(
    mut source: FileSource,
    records: SharedRecords,
    audit: Arc<Audit>,
    interval: Duration,
    then: impl Fn(structure_access_common::Applied) + Send,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !source.changed_on_disk() {
            continue;
        }
        let shared = records.clone();
        let Ok((back, changes)) = tokio::task::spawn_blocking(move || {
            let changes = source.changes(&read(&shared));
            (source, changes)
        })
        .await
        else {
            return;
        };
        source = back;
        match changes {
            Ok(changes) => apply(&records, &audit, changes, "the files", &then),
            Err(e) => tracing::error!("records not reloaded, the ones in force kept: {e}"),
        }
    }
}

/// Applies `changes` (from `from`, which names the files or the database),
/// writes what they changed to the audit trail and the log, and hands it to
/// `then`.
fn apply(
    records: &SharedRecords,
    audit: &Audit,
    changes: structure_access_common::ChangeSet,
    from: &str,
    then: &impl Fn(structure_access_common::Applied),
) {
    let applied = records
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .apply(changes);
    let (keys, devices) = (applied.keys.len(), applied.devices.len());
    audit.records_applied(from, keys, devices, 0);
    tracing::info!("records applied from {from}: {keys} key(s), {devices} device(s)");
    if !applied.is_empty() {
        then(applied);
    }
}

/// Follows the platform's database from the snapshot at `position` (the
/// records in force), for ever: each change set applied in order as it
/// comes, a fresh snapshot (after an outage that outlived the change log)
/// applied as the changes that make the records in force into it; rows the
/// crate refuses are skipped and said (their records removed: they open
/// nothing); an outage is said once, and the records in force stay. What
/// each event changed goes to `then` once in force (the RabbitMQ
/// revocations).
pub async fn follow_database(
    database: structure_access_common::postgres::Database,
    position: i64,
    records: SharedRecords,
    audit: Arc<Audit>,
    then: impl Fn(structure_access_common::Applied) + Send,
) {
    use structure_access_common::postgres::Event;
    database
        .follow(Some(position), move |event| {
            let (changes, from, skipped) = match event {
                Event::Changes {
                    changes,
                    position,
                    skipped,
                    entries,
                } => (
                    changes,
                    format!("{entries} change(s) of the database, up to its position {position}"),
                    skipped,
                ),
                Event::Snapshot {
                    records: fresh,
                    position,
                    skipped,
                } => {
                    let changes = read(&records).changes_to(&fresh);
                    (
                        changes,
                        format!("a snapshot of the database, at its position {position}"),
                        skipped,
                    )
                }
                Event::Lost(e) => {
                    tracing::error!("the database is lost, the records in force kept: {e}");
                    return;
                }
                Event::Back(after) => {
                    tracing::info!("the database is back after {:.1} s", after.as_secs_f64());
                    return;
                }
                _ => return,
            };
            for row in &skipped {
                tracing::error!("the database: {row}");
            }
            if !changes.is_empty() {
                apply(&records, &audit, changes, &from, &then);
            }
        })
        .await;
}
