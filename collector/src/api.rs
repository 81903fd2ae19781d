//! The HTTP API (axum on hyper), on its own port, every route behind
//! `Authorization: Bearer <api-token>`, within its own bounds
//! ([`crate::config::ApiLimits`]): connections, header and request time,
//! body size. It cannot take the agents' connections or descriptors.
//!
//! | route | answer |
//! |---|---|
//! | `GET /agents` | every agent's snapshot, by id |
//! | `GET /agents/{id}` | one agent: identity, status, last heartbeat, plugins; 404 if unknown |
//! | `POST /agents/{id}/tasks` | body `{"object_name", "data_type", "payload" \| "payload_base64"}`: 201 `{"token"}`; 404 unknown agent |
//! | `GET /tasks/{token}` | `{"token", "agent_id", "object_name", "data_type", "state": "queued" \| "sent" \| "done", "sends", "result": null \| {"status", "message"}}` |
//! | `PUT /configs/{name}` | body `{"version", "payload" \| "payload_base64"}`: 200; sent to every live agent now and to every agent on connect |
//! | `GET /metrics` | Prometheus text |
//!
//! With the JetStream sink every route reads and writes the registry
//! shared through JetStream KV ([`crate::jetstream::kv`]), so every
//! collector answers the same; `POST /agents/{id}/tasks` may then also
//! answer 429 (the agent has `--nats-max-open-tasks` tasks without a
//! result), 413 (the stored task would not fit the NATS server's
//! `max_payload`) or 503 (NATS did not answer).
//!
//! Bad input gets a 400 `{"error": "...", "field": "<name>"}`; a missing or
//! wrong token a 401 (checked before any body is read); a body above
//! `--api-max-body` a 413; a request not answered within
//! `--api-request-timeout` a 408. Connections are limited and timed by
//! [`listener`] (its module docs give the promises).

pub mod listener;

pub use listener::ApiCounters;

use crate::registry::{ConfigRow, TaskRow};
use crate::shared::{unix_ms, Command, Shared};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

/// Longest task or config payload accepted through the API (the frame
/// must still fit the agent's `max_frame`).
pub const MAX_PAYLOAD: usize = 1 << 20;

type Answer = Result<Response, ApiError>;

/// An error answer: a status and `{"error": ..., "field": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    msg: String,
    field: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.msg });
        if let Some(f) = self.field {
            body["field"] = f.into();
        }
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, msg: &str, field: Option<&'static str>) -> ApiError {
    ApiError { status, msg: msg.to_string(), field }
}

fn bad(field: &'static str, msg: &str) -> ApiError {
    error(StatusCode::BAD_REQUEST, msg, Some(field))
}

fn internal(e: String) -> ApiError {
    tracing::error!(error = %e, "registry error in the API");
    error(StatusCode::INTERNAL_SERVER_ERROR, "registry error", None)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| internal(e.to_string()))?.map_err(internal)
}

/// State of the API's routes.
#[derive(Clone)]
struct Api {
    shared: Arc<Shared>,
    counters: Arc<ApiCounters>,
}

impl axum::extract::FromRef<Api> for Arc<Shared> {
    fn from_ref(api: &Api) -> Arc<Shared> {
        api.shared.clone()
    }
}

/// Builds the router (for tests that serve it themselves): every route
/// behind the bearer token, bodies limited to `--api-max-body`, each
/// request answered within `--api-request-timeout` (or 408).
pub fn router(shared: Arc<Shared>) -> Router {
    router_with(shared, Arc::default())
}

fn router_with(shared: Arc<Shared>, counters: Arc<ApiCounters>) -> Router {
    let limits = shared.cfg.api_limits;
    let api = Api { shared: shared.clone(), counters };
    Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{id}", get(get_agent))
        .route("/agents/{id}/tasks", post(post_task))
        .route("/tasks/{token}", get(get_task))
        .route("/configs/{name}", put(put_config))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(middleware::from_fn_with_state(limits.max_body, declared_length))
        .layer(middleware::from_fn_with_state(shared, bearer))
        .layer(middleware::from_fn_with_state(limits.request_timeout, deadline))
        .with_state(api)
}

/// Binds the API's port; a loud warning when it is reachable beyond
/// loopback (plain HTTP: the token crosses the network in clear).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr).await?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the HTTP API listens beyond loopback: plain HTTP, so its bearer token and every answer cross the network in clear; \
             keep it on 127.0.0.1 behind a TLS proxy, or firewall the port"
        );
    }
    Ok(l)
}

/// Serves the API on `listener` until shutdown, within the configured
/// [`crate::config::ApiLimits`].
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let stop = shared.shutdown.clone();
    let limits = shared.cfg.api_limits;
    let counters = Arc::new(ApiCounters::default());
    let tls = shared.api_tls.clone();
    let app = router_with(shared, counters.clone());
    listener::run(listener, app, limits, counters, stop, tls).await;
}

/// Answers 413 at once, before reading the body, when the request declares
/// a `Content-Length` above `--api-max-body` (a body without a length is
/// cut at the limit by `DefaultBodyLimit`, also 413).
async fn declared_length(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max as u64 => error(StatusCode::PAYLOAD_TOO_LARGE, &format!("body of {n} bytes above --api-max-body ({max})"), Some("body")).into_response(),
        _ => next.run(req).await,
    }
}

/// Answers 408 when the request (its body, its handling) takes longer
/// than `--api-request-timeout`.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            let mut r = error(StatusCode::REQUEST_TIMEOUT, "request not received and answered within --api-request-timeout", None).into_response();
            r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            r
        }
    }
}

async fn bearer(State(s): State<Arc<Shared>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let expected = s.cfg.api.as_ref().map(|(_, t)| t.expose().as_bytes()).unwrap_or_default();
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if !expected.is_empty() && bool::from(t.as_bytes().ct_eq(expected)) => next.run(req).await,
        _ => {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token", Some("authorization")).into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            r
        }
    }
}

async fn list_agents(State(s): State<Arc<Shared>>) -> Answer {
    #[cfg(feature = "jetstream")]
    if let Some(kv) = &s.kv {
        let agents = kv.agents(s.stale_before_ms()).await.map_err(internal)?;
        return Ok(Json(json!({ "agents": agents })).into_response());
    }
    let reg = s.registry.clone();
    let agents = blocking(move || reg.agents()).await?;
    Ok(Json(json!({ "agents": agents })).into_response())
}

async fn get_agent(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let found = match () {
        #[cfg(feature = "jetstream")]
        () if s.kv.is_some() => s.kv.as_ref().expect("checked").agent(&id, s.stale_before_ms()).await.map_err(internal)?,
        () => {
            let reg = s.registry.clone();
            blocking(move || reg.agent(&id)).await?
        }
    };
    match found {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, "unknown agent", None)),
    }
}

/// True if the registry (shared, with the JetStream sink) has the agent.
async fn knows(s: &Arc<Shared>, id: &str) -> Result<bool, ApiError> {
    #[cfg(feature = "jetstream")]
    if let Some(kv) = &s.kv {
        return kv.knows(id).await.map_err(internal);
    }
    let reg = s.registry.clone();
    let agent = id.to_string();
    blocking(move || reg.knows(&agent)).await
}

/// The answer to a task or config the shared registry did not take.
#[cfg(feature = "jetstream")]
fn refused(r: crate::jetstream::kv::TaskRefused) -> ApiError {
    use crate::jetstream::kv::TaskRefused;
    match r {
        TaskRefused::Full => error(StatusCode::TOO_MANY_REQUESTS, &r.to_string(), None),
        TaskRefused::TooLarge => error(StatusCode::PAYLOAD_TOO_LARGE, &r.to_string(), Some("payload")),
        TaskRefused::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, &r.to_string(), None),
    }
}

fn parse_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("body", "the body must be a JSON object")),
        Err(e) => Err(bad("body", &format!("the body is not JSON: {e}"))),
    }
}

fn payload_of(m: &serde_json::Map<String, Value>) -> Result<Vec<u8>, ApiError> {
    let p = match (m.get("payload"), m.get("payload_base64")) {
        (Some(_), Some(_)) => return Err(bad("payload", "give payload or payload_base64, not both")),
        (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
        (Some(_), None) => return Err(bad("payload", "payload must be a string")),
        (None, Some(Value::String(s))) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| bad("payload_base64", &format!("not base64: {e}")))?,
        (None, Some(_)) => return Err(bad("payload_base64", "payload_base64 must be a string")),
        (None, None) => Vec::new(),
    };
    if p.len() > MAX_PAYLOAD {
        return Err(bad("payload", "payload larger than 1 MiB"));
    }
    Ok(p)
}

fn string_field<'a>(m: &'a serde_json::Map<String, Value>, field: &'static str, required: bool) -> Result<&'a str, ApiError> {
    match m.get(field) {
        Some(Value::String(s)) if s.len() <= 255 => Ok(s),
        Some(Value::String(_)) => Err(bad(field, &format!("{field} longer than 255 bytes"))),
        Some(_) => Err(bad(field, &format!("{field} must be a string"))),
        None if required => Err(bad(field, &format!("{field} is required"))),
        None => Ok(""),
    }
}

async fn post_task(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Answer {
    let m = parse_object(&body)?;
    let object_name = string_field(&m, "object_name", false)?.to_string();
    let data_type = match m.get("data_type") {
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("data_type", "data_type must be an integer in 0..=4294967295"))?,
        None => return Err(bad("data_type", "data_type is required")),
    };
    let payload = payload_of(&m)?;
    if !s.is_live(&id) && !knows(&s, &id).await? {
        return Err(error(StatusCode::NOT_FOUND, "unknown agent", None));
    }
    let task = TaskRow {
        token: s.task_token(),
        agent_id: id.clone(),
        object_name,
        data_type,
        payload,
        state: "queued".into(),
        sends: 0,
        result_status: None,
        result_message: None,
    };
    let token = task.token.clone();
    #[cfg(feature = "jetstream")]
    if let Some(kv) = &s.kv {
        // Every collector's watcher (this one's too) hands it to the agent
        // wherever it is connected; else it goes out at the agent's next Hello.
        kv.create_task(&task, unix_ms()).await.map_err(refused)?;
        return Ok((StatusCode::CREATED, Json(json!({ "token": token }))).into_response());
    }
    let reg = s.registry.clone();
    let t = task.clone();
    blocking(move || reg.create_task(&t, unix_ms())).await?;
    // Not live, or its queue full: it goes out on the next connect.
    s.send_to(&id, Command::Task(task));
    Ok((StatusCode::CREATED, Json(json!({ "token": token }))).into_response())
}

async fn get_task(State(s): State<Arc<Shared>>, Path(token): Path<String>) -> Answer {
    let found = match () {
        #[cfg(feature = "jetstream")]
        () if s.kv.is_some() => s.kv.as_ref().expect("checked").task(&token).await.map_err(internal)?,
        () => {
            let reg = s.registry.clone();
            blocking(move || reg.task(&token)).await?
        }
    };
    let Some(t) = found else {
        return Err(error(StatusCode::NOT_FOUND, "unknown task", None));
    };
    let result = match (t.result_status, &t.result_message) {
        (Some(status), msg) => json!({ "status": status, "message": msg.clone().unwrap_or_default() }),
        _ => Value::Null,
    };
    Ok(Json(json!({
        "token": t.token, "agent_id": t.agent_id, "object_name": t.object_name, "data_type": t.data_type,
        "state": t.state, "sends": t.sends, "result": result,
    }))
    .into_response())
}

async fn put_config(State(s): State<Arc<Shared>>, Path(name): Path<String>, body: Bytes) -> Answer {
    let m = parse_object(&body)?;
    let version = string_field(&m, "version", true)?.to_string();
    let payload = payload_of(&m)?;
    if name.len() > 255 {
        return Err(bad("name", "name longer than 255 bytes"));
    }
    let c = ConfigRow { name, version, payload };
    #[cfg(feature = "jetstream")]
    if let Some(kv) = &s.kv {
        // Every collector's watcher (this one's too) hands it to its live agents.
        kv.put_config(&c).await.map_err(refused)?;
        return Ok(Json(json!({ "name": c.name, "version": c.version })).into_response());
    }
    let reg = s.registry.clone();
    let row = c.clone();
    blocking(move || reg.put_config(&row, unix_ms())).await?;
    s.broadcast(Command::Config(c.clone()));
    Ok(Json(json!({ "name": c.name, "version": c.version })).into_response())
}

async fn metrics(State(api): State<Api>) -> Response {
    let mut body = api.shared.metrics.render();
    api.counters.render(&mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
