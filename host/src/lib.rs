//! wasmtx: a distributed-transaction coordinator whose branch code runs as
//! sandboxed WebAssembly components.
//!
//! # Layout
//!
//! - [`model`]: ids, statuses, transactions and branch ops as plain data.
//! - [`api`]: HTTP routes and DTOs; no protocol logic, no SQL.
//! - [`engine`]: the protocols as pure state transitions plus the async driver.
//! - [`store`]: coordinator persistence (SQLite, Postgres); the only place with coordinator SQL.
//! - [`database`]: the business databases branches run against, and the barrier.
//! - [`sqlite`]: one SQLite file: its single writer thread with group commit, readers, guest mode.
//! - [`sandbox`]: wasmtime; the only module that names wasmtime types.
//! - [`registry`]: module upload, validation, versions, compiled-module cache.
//! - [`branch`]: runs one branch op (sandbox + database + barrier) for the engine.
//! - [`metrics`]: the Prometheus registry everything records into, and its text.
//! - [`telemetry`]: logging, and the OpenTelemetry spans of transactions, branch ops and database calls.
//! - [`config`], [`server`]: typed configuration and the process wiring.

pub mod api;
pub mod branch;
pub mod config;
pub mod database;
pub mod engine;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod sandbox;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod telemetry;

#[cfg(test)]
pub(crate) mod test_db;
