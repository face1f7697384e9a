//! Host side of the WIT `db` interface: forwards the guest's SQL to the
//! branch's open local transaction ([`LocalTx`]). The guest never begins,
//! commits or rolls back; the caller of [`super::Sandbox::invoke`] does.

use tracing::Instrument;

use super::HostState;
use super::bindings::wasmtx::runtime::db::{DbError, Host, Rows, Value};
use crate::database;

impl Host for HostState {
    async fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, DbError> {
        let Some(tx) = self.tx.as_mut() else { return Err(no_database()) };
        let params: Vec<database::Value> = params.into_iter().map(from_wit).collect();
        tx.execute(&sql, &params).instrument(db_call_span("execute", &sql)).await.map_err(to_wit_error)
    }

    async fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, DbError> {
        let Some(tx) = self.tx.as_mut() else { return Err(no_database()) };
        let params: Vec<database::Value> = params.into_iter().map(from_wit).collect();
        let rows = tx.query(&sql, &params).instrument(db_call_span("query", &sql)).await.map_err(to_wit_error)?;
        Ok(Rows {
            columns: rows.columns,
            values: rows.values.into_iter().map(|row| row.into_iter().map(to_wit).collect()).collect(),
        })
    }
}

/// The `db_call` span of one statement (see [`crate::telemetry`]): its
/// first keyword only, never its text or parameters.
fn db_call_span(kind: &'static str, sql: &str) -> tracing::Span {
    let span =
        tracing::debug_span!(target: crate::telemetry::SPANS, "db_call", kind, operation = tracing::field::Empty);
    if !span.is_disabled() {
        span.record("operation", crate::telemetry::sql_keyword(sql));
    }
    span
}

fn no_database() -> DbError {
    DbError { code: None, message: "no database is available in this context".to_owned() }
}

fn to_wit_error(e: database::DbError) -> DbError {
    DbError { code: e.code, message: e.message }
}

fn from_wit(v: Value) -> database::Value {
    match v {
        Value::Null => database::Value::Null,
        Value::Boolean(b) => database::Value::Boolean(b),
        Value::Int(i) => database::Value::Int(i),
        Value::Float(f) => database::Value::Float(f),
        Value::Text(s) => database::Value::Text(s),
        Value::Bytes(b) => database::Value::Bytes(b),
    }
}

fn to_wit(v: database::Value) -> Value {
    match v {
        database::Value::Null => Value::Null,
        database::Value::Boolean(b) => Value::Boolean(b),
        database::Value::Int(i) => Value::Int(i),
        database::Value::Float(f) => Value::Float(f),
        database::Value::Text(s) => Value::Text(s),
        database::Value::Bytes(b) => Value::Bytes(b),
    }
}
