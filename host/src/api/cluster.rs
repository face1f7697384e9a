//! `GET /v1/cluster`: the instances serving this store, as their heartbeats
//! tell it (for people: leases, not heartbeats, decide who drives what).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorEnvelope;
use super::{ApiError, AppState, time};

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// The node id of the instance that answered.
    node: String,
    /// Instances heard from within three heartbeats, by node id.
    instances: Vec<InstanceView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    node: String,
    version: String,
    started_at: String,
    heartbeat_at: String,
    /// Transactions it was driving at its last heartbeat.
    in_flight: u64,
}

#[utoipa::path(
    get,
    path = "/v1/cluster",
    operation_id = "get_cluster",
    tag = "cluster",
    responses(
        (status = 200, description = "The instances serving this store", body = ClusterView),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn get(State(state): State<AppState>) -> Result<Json<ClusterView>, ApiError> {
    let instances = state.engine.cluster().await?;
    Ok(Json(ClusterView {
        node: state.engine.node().to_owned(),
        instances: instances
            .into_iter()
            .map(|i| InstanceView {
                node: i.node,
                version: i.version,
                started_at: time::rfc3339(i.started_at),
                heartbeat_at: time::rfc3339(i.heartbeat_at),
                in_flight: i.in_flight,
            })
            .collect(),
    }))
}
