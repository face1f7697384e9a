//! A purpose-built test guest for the sandbox: each function misbehaves in
//! one way (loops forever, allocates without bound, traps) or exercises one
//! path (echo, guest errors, SQL through the `db` import). Built by
//! `cargo xtask examples` to `target/examples/misbehave-rust.wasm`.

wit_bindgen::generate!({
    world: "branch",
    path: "../../../wit",
});

use exports::wasmtx::runtime::handler::Guest;
use wasmtx::runtime::db;
use wasmtx::runtime::types::{BranchContext, BranchError};

struct Misbehave;

const FUNCTIONS: &[&str] = &["echo", "context", "count", "spin", "grow", "trap", "fail", "retry", "sql"];

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
            "sql" => match db::execute(&text, &[]) {
                Ok(n) => Ok(n.to_string().into_bytes()),
                Err(e) => Err(BranchError::Retry(format!("{}: {}", e.code.unwrap_or_default(), e.message))),
            },
            other => Err(BranchError::Failure(format!("unknown function {other}"))),
        }
    }
}

export!(Misbehave);
