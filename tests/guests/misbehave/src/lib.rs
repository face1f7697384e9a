//! A purpose-built test guest for the sandbox: each function misbehaves in
//! one way (loops forever, allocates without bound, traps, sleeps, floods the
//! log, returns too much, reaches for files, the environment or the network)
//! or exercises one path (echo, guest errors, SQL through the `db` import).
//! `script` runs a list of SQL statements and reports each one's outcome, so
//! that tests can assert exactly what the host let through. Built by
//! `cargo xtask examples` to `target/examples/misbehave-rust.wasm`.

wit_bindgen::generate!({
    world: "branch",
    path: "../../../wit",
});

use exports::wasmtx::runtime::handler::Guest;
use serde_json::{Value as Json, json};
use wasmtx::runtime::db;
use wasmtx::runtime::log;
use wasmtx::runtime::types::{BranchContext, BranchError, Op};

struct Misbehave;

const FUNCTIONS: &[&str] = &[
    "echo",
    "context",
    "count",
    "spin",
    "grow",
    "trap",
    "fail",
    "retry",
    "sql",
    "script",
    "sleep",
    "env",
    "http",
    "output",
    "error",
    "log",
    "recurse",
    "retry-times",
    "busy",
];

/// Calls served by this instance: tells a reused instance from a fresh one.
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Keeps allocations reachable so the optimiser cannot drop them.
static mut HOARD: Vec<Vec<u8>> = Vec::new();

impl Guest for Misbehave {
    fn functions() -> Vec<String> {
        FUNCTIONS.iter().map(|f| f.to_string()).collect()
    }

    fn invoke(function: String, ctx: BranchContext, payload: Vec<u8>) -> Result<Vec<u8>, BranchError> {
        let text = String::from_utf8_lossy(&payload).into_owned();
        // Payloads come as JSON: a number, or a string in quotes.
        let bare = text.trim().trim_matches('"').to_owned();
        let number = || bare.parse::<usize>().unwrap_or(0);
        match function.as_str() {
            "echo" => Ok(payload),
            "count" => Ok((CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1).to_string().into_bytes()),
            "context" => Ok(format!(
                "{{\"gid\":\"{}\",\"branch_id\":\"{}\",\"op\":\"{:?}\",\"attempt\":{}}}",
                ctx.gid, ctx.branch_id, ctx.op, ctx.attempt
            )
            .into_bytes()),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => loop {
                let block = std::hint::black_box(vec![1u8; 1 << 20]);
                #[allow(static_mut_refs)]
                // SAFETY: the guest is single-threaded.
                unsafe {
                    HOARD.push(block)
                };
            },
            "trap" => panic!("the guest was asked to trap"),
            "fail" => Err(BranchError::Failure(text)),
            "retry" => Err(BranchError::Retry(text)),
            // Asks to be called again until attempt `number() + 1`, saying
            // which attempt it is and the headers it was given.
            "retry-times" => {
                let seen = format!("attempt {} headers {:?}", ctx.attempt, ctx.headers);
                if (ctx.attempt as usize) <= number() { Err(BranchError::Retry(seen)) } else { Ok(seen.into_bytes()) }
            }
            "sql" => match db::execute(&text, &[]) {
                Ok(n) => Ok(n.to_string().into_bytes()),
                Err(e) => Err(BranchError::Retry(format!("{}: {}", e.code.unwrap_or_default(), e.message))),
            },
            "script" => script(&payload, ctx.op),
            // Computes for the number of milliseconds given, then succeeds:
            // a slow branch that does not wait on a clock.
            "busy" => {
                let until = std::time::Instant::now() + std::time::Duration::from_millis(number() as u64);
                let mut n: u64 = 0;
                while std::time::Instant::now() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                Ok(b"done".to_vec())
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(number() as u64));
                Ok(b"woke up".to_vec())
            }
            "env" => Ok(environment().to_string().into_bytes()),
            "http" => Ok(json!(http_get(&bare)).to_string().into_bytes()),
            "output" => Ok(vec![b'x'; number()]),
            "error" => Err(BranchError::Failure("x".repeat(number()))),
            "log" => {
                for i in 0..number() {
                    log::log(log::Level::Info, &format!("line {i}: {}", "x".repeat(100)));
                }
                Ok(b"logged".to_vec())
            }
            "recurse" => Ok(recurse(std::hint::black_box(1)).to_string().into_bytes()),
            other => Err(BranchError::Failure(format!("unknown function {other}"))),
        }
    }
}

/// `{"steps":[{"sql":"…","params":[…],"query":true}], "undo":[…], "then":"ok"|"fail"|"retry"}`:
/// runs each statement (whatever the previous one did; as a saga's
/// compensation, the `undo` steps instead when given) and answers
/// `{"results":[{"changed":n} | {"rows":[[…]]} | {"error":{"code":…,"message":…}}]}`.
/// Parameters: null, true/false, integers, floats, strings, `{"hex":"00ff"}`.
fn script(payload: &[u8], op: Op) -> Result<Vec<u8>, BranchError> {
    let script: Json = serde_json::from_slice(payload).map_err(|e| BranchError::Failure(format!("bad script: {e}")))?;
    let mut results = Vec::new();
    let steps = match (op, script.get("undo")) {
        (Op::Compensate, Some(undo)) => undo,
        _ => &script["steps"],
    };
    for step in steps.as_array().cloned().unwrap_or_default() {
        let sql = step["sql"].as_str().unwrap_or_default();
        let params: Vec<db::Value> = step["params"].as_array().cloned().unwrap_or_default().iter().map(value).collect();
        let result = if step["query"].as_bool().unwrap_or(false) {
            db::query(sql, &params).map(|rows| json!({ "rows": rows.values.iter().map(|r| r.iter().map(to_json).collect::<Vec<_>>()).collect::<Vec<_>>() }))
        } else {
            db::execute(sql, &params).map(|n| json!({ "changed": n }))
        };
        results.push(result.unwrap_or_else(|e| json!({ "error": { "code": e.code, "message": e.message } })));
    }
    let output = json!({ "results": results }).to_string();
    match script["then"].as_str().unwrap_or("ok") {
        "fail" => Err(BranchError::Failure(output)),
        "retry" => Err(BranchError::Retry(output)),
        _ => Ok(output.into_bytes()),
    }
}

fn value(v: &Json) -> db::Value {
    match v {
        Json::Null => db::Value::Null,
        Json::Bool(b) => db::Value::Boolean(*b),
        Json::Number(n) => {
            n.as_i64().map(db::Value::Int).unwrap_or_else(|| db::Value::Float(n.as_f64().unwrap_or(0.0)))
        }
        Json::String(s) => db::Value::Text(s.clone()),
        Json::Object(o) => {
            let hex = o.get("hex").and_then(Json::as_str).unwrap_or_default();
            db::Value::Bytes(
                (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect(),
            )
        }
        Json::Array(_) => db::Value::Null,
    }
}

fn to_json(v: &db::Value) -> Json {
    match v {
        db::Value::Null => Json::Null,
        db::Value::Boolean(b) => json!(b),
        db::Value::Int(i) => json!(i),
        db::Value::Float(f) => json!(f),
        db::Value::Text(s) => json!(s),
        db::Value::Bytes(b) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

/// What the guest can see of its surroundings: environment, arguments,
/// files and directories.
fn environment() -> Json {
    let file =
        std::fs::read_to_string("/etc/passwd").map(|s| s.len().to_string()).unwrap_or_else(|e| format!("error: {e}"));
    let dir = std::fs::read_dir("/").map(|d| d.count().to_string()).unwrap_or_else(|e| format!("error: {e}"));
    let written = std::fs::write("/tmp/wasmtx-guest-was-here", b"x")
        .map(|()| "written".to_owned())
        .unwrap_or_else(|e| format!("error: {e}"));
    json!({ "vars": std::env::vars().count(), "args": std::env::args().count(), "file": file, "dir": dir, "write": written })
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(frame[0] + 1) + frame[63]
}

/// GET `url` (`http://host:port/path`) with wasi:http: "status N" or "error: …".
#[cfg(target_arch = "wasm32")]
fn http_get(url: &str) -> String {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let Some(rest) = url.strip_prefix("http://") else { return "error: only http:// URLs".to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(&path));
    match outgoing_handler::handle(request, None) {
        Err(e) => format!("error: {e:?}"),
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => format!("status {}", response.status()),
                Some(Ok(Err(e))) => format!("error: {e:?}"),
                other => format!("error: {other:?}"),
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn http_get(_url: &str) -> String {
    "error: not built for wasm".to_owned()
}

export!(Misbehave);
