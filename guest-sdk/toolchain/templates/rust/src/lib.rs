//! The `{{name}}` module: wasmtx branch functions in Rust (see README.md).

use serde::{Deserialize, Serialize};
use wasmtx_guest::{BranchError, Context, db};

/// The payload of `hello`: `{"name": "Ada"}`.
#[derive(Debug, Deserialize)]
struct Hello {
    name: String,
}

/// The output of `hello`: `{"greeting": "Hello, Ada!"}`.
#[derive(Debug, Serialize)]
struct Greeting {
    greeting: String,
}

/// What `hello` decides before it touches the database: the greeting, or a
/// refusal (a failure is never retried).
fn greeting_for(name: &str) -> Result<String, BranchError> {
    if name.is_empty() {
        return Err(BranchError::failure("name must not be empty"));
    }
    Ok(format!("Hello, {name}!"))
}

/// Greets `name` by way of the module's database. The function runs inside a
/// database transaction that commits only if it returns `Ok`; the SQL runs
/// unchanged on SQLite and Postgres.
fn hello(_ctx: &Context, input: Hello) -> Result<Greeting, BranchError> {
    let greeting = greeting_for(&input.name)?;
    let rows = db::query("SELECT CAST($1 AS TEXT) AS greeting", &[greeting.as_str().into()])?;
    Ok(Greeting { greeting: rows.get(0, "greeting")? })
}

wasmtx_guest::export_branch! {
    "hello" => hello,
}

#[cfg(test)]
mod tests {
    use wasmtx_guest::Op;

    use super::*;

    #[test]
    fn a_name_is_greeted() {
        assert_eq!(greeting_for("Ada"), Ok("Hello, Ada!".to_owned()));
    }

    #[test]
    fn an_empty_name_is_refused_before_the_database() {
        // Natively every `db` call fails with "no host": a failure here proves
        // the refusal came first.
        let refused = hello(&Context::new(Op::Action), Hello { name: String::new() }).unwrap_err();
        assert_eq!(refused, BranchError::failure("name must not be empty"));
    }
}
