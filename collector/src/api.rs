//! The HTTP API (axum), on its own port, every route behind
//! `Authorization: Bearer <api-token>`.
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
//! Bad input gets a 400 `{"error": "...", "field": "<name>"}`; a missing or
//! wrong token a 401.

use crate::registry::{ConfigRow, TaskRow};
use crate::server::{unix_ms, Command, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
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

/// Builds the router (for tests that serve it themselves).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{id}", get(get_agent))
        .route("/agents/{id}/tasks", post(post_task))
        .route("/tasks/{token}", get(get_task))
        .route("/configs/{name}", put(put_config))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(shared.clone(), bearer))
        .with_state(shared)
}

/// Serves the API on `listener` until shutdown.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.shutdown.clone();
    let app = router(shared);
    let r = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop.changed().await;
    });
    if let Err(e) = r.await {
        tracing::error!(error = %e, "API server failed");
    }
}

async fn bearer(State(s): State<Arc<Shared>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let expected = s.cfg.api.as_ref().map(|(_, t)| t.as_bytes()).unwrap_or_default();
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
    let reg = s.registry.clone();
    let agents = blocking(move || reg.agents()).await?;
    Ok(Json(json!({ "agents": agents })).into_response())
}

async fn get_agent(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let reg = s.registry.clone();
    match blocking(move || reg.agent(&id)).await? {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, "unknown agent", None)),
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
    let reg = s.registry.clone();
    let live = s.is_live(&id);
    let agent = id.clone();
    if !live && !blocking(move || reg.knows(&agent)).await? {
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
    let reg = s.registry.clone();
    let t = task.clone();
    blocking(move || reg.create_task(&t, unix_ms())).await?;
    let token = task.token.clone();
    // Not live, or its queue full: it goes out on the next connect.
    s.send_to(&id, Command::Task(task));
    Ok((StatusCode::CREATED, Json(json!({ "token": token }))).into_response())
}

async fn get_task(State(s): State<Arc<Shared>>, Path(token): Path<String>) -> Answer {
    let reg = s.registry.clone();
    let Some(t) = blocking(move || reg.task(&token)).await? else {
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
    let reg = s.registry.clone();
    let row = c.clone();
    blocking(move || reg.put_config(&row, unix_ms())).await?;
    s.broadcast(Command::Config(c.clone()));
    Ok(Json(json!({ "name": c.name, "version": c.version })).into_response())
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let body = s.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
