//! `GET /metrics`: the Prometheus text exposition (see [`crate::metrics`]),
//! behind the `metrics` right (or loopback, with no tokens configured).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::metrics::{Gauges, render};

pub(super) async fn get(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.engine.store().pool_connections();
    let gauges = Gauges {
        in_flight: state.engine.in_flight(),
        compiled_modules: state.registry.compiled_count() as u64,
        idle_instances: state.registry.idle_instances() as u64,
        store_connections: store.map(|(idle, busy)| vec![("idle", idle), ("busy", busy)]).unwrap_or_default(),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&gauges))
}
