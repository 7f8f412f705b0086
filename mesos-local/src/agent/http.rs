//! The agent's HTTP listener: routes and the accept loop.
//!
//! Routes: `POST /api/v1/executor` (executor tokens), `GET /files/browse|read|download`
//! and `GET /state` (HTTP Basic when the agent has credentials; see [`super::auth`]).
//! Each connection runs in a task of one `JoinSet` owned by the accept loop, so aborting
//! the loop (agent stopped, killed or dropped) closes every connection, subscription
//! streams included. Handlers reach the agent through a `Weak`; a gone agent answers 503.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::core::Shared;
use super::files;

type Q = Query<HashMap<String, String>>;

fn gone() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "Agent is stopped").into_response()
}

async fn files_call(
    agent: Weak<Shared>,
    headers: HeaderMap,
    query: HashMap<String, String>,
    f: fn(&std::path::Path, &str, &HashMap<String, String>) -> Response,
) -> Response {
    let Some(shared) = agent.upgrade() else {
        return gone();
    };
    if let Err(r) = super::auth::authenticate_operator(&shared, &headers) {
        return r.into_response();
    }
    let work_dir = shared.cfg.work_dir.clone();
    let agent_id = shared.cfg.id.value.clone();
    drop(shared);
    tokio::task::spawn_blocking(move || f(&work_dir, &agent_id, &query))
        .await
        .unwrap_or_else(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("files handler failed: {e}"),
            )
                .into_response()
        })
}

async fn browse(State(agent): State<Weak<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    files_call(agent, headers, q, files::browse).await
}

async fn read(State(agent): State<Weak<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    files_call(agent, headers, q, files::read).await
}

async fn download(State(agent): State<Weak<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    let Some(shared) = agent.upgrade() else {
        return gone();
    };
    if let Err(r) = super::auth::authenticate_operator(&shared, &headers) {
        return r.into_response();
    }
    let work_dir = shared.cfg.work_dir.clone();
    let agent_id = shared.cfg.id.value.clone();
    drop(shared);
    files::download(&work_dir, &agent_id, &q).await
}

async fn state(State(agent): State<Weak<Shared>>, headers: HeaderMap, Query(q): Q) -> Response {
    let Some(shared) = agent.upgrade() else {
        return gone();
    };
    if let Err(r) = super::auth::authenticate_operator(&shared, &headers) {
        return r.into_response();
    }
    files::json_response(&shared.state_json(), &q)
}

/// The agent's routes.
pub(crate) fn router(agent: Weak<Shared>) -> Router {
    Router::new()
        .route("/api/v1/executor", post(super::executor_api::handle))
        .route("/files/browse", get(browse))
        .route("/files/read", get(read))
        .route("/files/download", get(download))
        .route("/state", get(state))
        .with_state(agent)
}

/// Accepts connections until aborted.
pub(crate) async fn serve(listener: TcpListener, agent: Weak<Shared>) {
    let app = router(agent);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("agent listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("agent connection ended: {e}");
            }
        });
        while connections.try_join_next().is_some() {}
    }
}
