//! The attack catalog: what an uploaded module may try, as a test that must
//! fail to do harm, on SQLite and on Postgres. Every attack runs as a saga
//! branch of the `misbehave` test guest (or as a direct call when its output
//! is the evidence), and each asserts the exact outcome: a branch error
//! naming the cause. Meanwhile transfer sagas of an honest module keep being
//! submitted, and each must still succeed within a bound; at the end the
//! honest transactions' coordinator and barrier rows are unchanged, no file
//! appeared outside the data dir, and the server still serves.
//!
//! SQL attacks run with the attacker bound to the honest module's own
//! database (the hard case: same tables, same connection pool, same SQLite
//! writer). Resource attacks (loops, sleeps, floods) run bound to a database
//! of their own, which is how an operator isolates a module it does not
//! trust; `a_branch_holding_the_sqlite_writer_is_stopped_after_sqlite_hold`
//! covers the shared-file case.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{Backend, Extra, Server, example, transfer};

on_both_backends!(
    sql_attacks_on_a_shared_database_end_as_branch_errors_and_change_nothing,
    resource_attacks_fail_their_own_branch_and_honest_sagas_keep_their_pace
);

/// Runs `function(payload)` of `module` as a one-branch saga that gives up
/// at the first error; returns its final status and rollback reason.
async fn attack(server: &Server, module: &str, function: &str, payload: Value) -> (String, String) {
    let request = json!({
        "mode": "saga", "wait": true, "options": { "retry_limit": 0 },
        "branches": [{ "action": { "module": module, "function": function },
                       "compensate": { "module": module, "function": "echo" },
                       "payload": payload }],
    });
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 200, "{module}.{function}: {body}");
    (
        body["status"].as_str().unwrap_or_default().to_owned(),
        body["rollback_reason"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Runs SQL steps in one branch and returns each step's result
/// (`{"changed":n}`, `{"rows":…}` or `{"error":{"code","message"}}`).
async fn sql(server: &Server, module: &str, steps: Value) -> Vec<Value> {
    let (status, reason) = attack(server, module, "script", json!({ "steps": steps, "then": "fail" })).await;
    assert_eq!(status, "failed", "the script reports through its failure: {reason}");
    let report: Value = serde_json::from_str(&reason).unwrap_or_else(|e| panic!("{e}: {reason}"));
    report["results"].as_array().cloned().unwrap_or_default()
}

/// A statement run with `query` when it is a SELECT or WITH, else `execute`.
fn step(text: &str) -> Value {
    let upper = text.trim_start().to_ascii_uppercase();
    json!({ "sql": text, "query": upper.starts_with("SELECT") || upper.starts_with("WITH") })
}

/// A statement run with `execute` (its rows, if any, are not returned).
fn exec(text: &str) -> Value {
    json!({ "sql": text, "query": false })
}

/// Asserts that `result` is an error whose message contains one of `expected`.
fn refused(what: &str, result: &Value, expected: &[&str]) {
    let message = result["error"]["message"].as_str().unwrap_or_else(|| panic!("{what} was not refused: {result}"));
    assert!(
        expected.iter().any(|e| message.contains(e)),
        "{what}: unexpected refusal {message:?} (expected {expected:?})"
    );
}

/// An honest bank with two accounts, the attacker uploaded beside it, and the
/// evidence to compare afterwards: finished honest transactions.
async fn scene(backend: Backend, extra: Extra, attacker_database: &str, query: &str) -> (Server, Vec<String>) {
    let server = Server::start_with(backend, extra).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    server
        .call(
            "bank",
            "setup",
            json!({ "accounts": [{ "id": "alice", "balance": 1000 }, { "id": "bob", "balance": 0 }] }),
        )
        .await;
    let url = format!("{}/v1/modules/hog?database={attacker_database}{query}", server.base);
    let r = server.http.put(url).body(example("misbehave-rust")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap_or_default());
    let mut honest = Vec::new();
    for i in 0..3 {
        let gid = format!("honest-{i}");
        let (status, body) =
            server.post("/v1/transactions", &transfer("bank", Some(&gid), "alice", "bob", 1, true)).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
        honest.push(gid);
    }
    (server, honest)
}

/// What must not change: the honest transactions as the API shows them, and
/// their barrier rows in the business database.
async fn evidence(server: &Server, backend: Backend, gids: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    for gid in gids {
        let (status, mut tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        assert_eq!(status, 200);
        // The history fills in a moment after the transaction ends: the
        // evidence is the transaction's state.
        tx.as_object_mut().unwrap().remove("history");
        seen.push(tx.to_string());
    }
    let url = server.database_url("default");
    let rows: Vec<(String, String, String, String)> = match backend {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
            let conn =
                rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            let mut stmt = conn.prepare("SELECT gid, branch_id, op, reason FROM wasmtx_barrier ORDER BY id").unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_as("SELECT gid::text, branch_id::text, op::text, reason::text FROM wasmtx.barrier ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .unwrap()
        }
    };
    seen.extend(rows.into_iter().filter(|r| r.0.starts_with("honest-")).map(|r| format!("{r:?}")));
    seen
}

async fn sql_attacks_on_a_shared_database_end_as_branch_errors_and_change_nothing(backend: Backend) {
    // One guest connection on Postgres, so a setting left by one branch
    // would meet the next.
    let extra = Extra { config: "postgres_connections = 1\n".to_owned(), ..Extra::default() };
    let (server, honest) = scene(backend, extra, "default", "").await;
    let before = evidence(&server, backend, &honest).await;
    let outside = std::env::temp_dir().join(format!("wasmtx-attack-{}", uuid::Uuid::new_v4().simple()));
    let outside_path = outside.display().to_string();

    let cases: Vec<(&str, Value, Vec<&str>)> = match backend {
        Backend::Sqlite => {
            let store = server.data_dir().join("wasmtx.sqlite").display().to_string();
            vec![
                (
                    "fts3_tokenizer with a pointer",
                    json!([{ "sql": "SELECT fts3_tokenizer('x', $1)", "params": [{ "hex": "4141414141414141" }], "query": true }]),
                    vec!["fts3_tokenizer() is not allowed"],
                ),
                (
                    "fts3_tokenizer leak",
                    json!([step("SELECT fts3_tokenizer('simple')")]),
                    vec!["fts3_tokenizer() is not allowed"],
                ),
                (
                    "fts3 table in temp",
                    json!([step("CREATE VIRTUAL TABLE temp.t USING fts3(tokenize=x)")]),
                    vec!["not authorized"],
                ),
                (
                    "ATTACH the store",
                    json!([step(&format!("ATTACH '{store}' AS x"))]),
                    vec!["ATTACH, DETACH and VACUUM INTO are not allowed"],
                ),
                (
                    "ATTACH a new file",
                    json!([step(&format!("ATTACH '{outside_path}' AS x"))]),
                    vec!["ATTACH, DETACH and VACUUM INTO are not allowed"],
                ),
                ("PRAGMA query_only", json!([step("PRAGMA query_only = 1")]), vec!["PRAGMA query_only is not allowed"]),
                (
                    "PRAGMA hard_heap_limit",
                    json!([step("PRAGMA hard_heap_limit = 1")]),
                    vec!["PRAGMA hard_heap_limit is not allowed"],
                ),
                (
                    "PRAGMA writable_schema",
                    json!([step("PRAGMA writable_schema = 1")]),
                    vec!["PRAGMA writable_schema is not allowed"],
                ),
                (
                    "PRAGMA ignore_check_constraints",
                    json!([step("PRAGMA ignore_check_constraints = 1")]),
                    vec!["PRAGMA ignore_check_constraints is not allowed"],
                ),
                (
                    "smuggled ROLLBACK",
                    json!([step("SELECT 1; ROLLBACK")]),
                    vec!["one statement per call", "ROLLBACK is not allowed"],
                ),
                (
                    "VACUUM INTO",
                    json!([step(&format!("VACUUM INTO '{outside_path}'"))]),
                    vec!["not authorized", "cannot VACUUM"],
                ),
                ("ROLLBACK", json!([step("ROLLBACK")]), vec!["ROLLBACK is not allowed"]),
                ("COMMIT", json!([step("COMMIT")]), vec!["COMMIT is not allowed"]),
                ("shadow the barrier", json!([step("CREATE TEMP TABLE wasmtx_barrier (x)")]), vec!["temporary tables"]),
                (
                    "temp trigger",
                    json!([step("CREATE TEMP TRIGGER t AFTER INSERT ON accounts BEGIN SELECT 1; END")]),
                    vec!["temporary tables"],
                ),
                ("delete the barrier", json!([step("DELETE FROM wasmtx_barrier")]), vec!["belongs to the host"]),
                (
                    "forge a barrier row",
                    json!([step(
                        "INSERT INTO wasmtx_barrier (gid, branch_id, op, barrier_id) VALUES ('honest-0', '01', 'compensate', '01')"
                    )]),
                    vec!["belongs to the host"],
                ),
                ("read the barrier", json!([step("SELECT gid FROM wasmtx_barrier")]), vec!["belongs to the host"]),
                (
                    "trigger on the barrier",
                    json!([step("CREATE TRIGGER evil BEFORE INSERT ON wasmtx_barrier BEGIN SELECT 1; END")]),
                    vec!["belongs to the host"],
                ),
                ("nested comment parameter", json!([step("SELECT /* /* */ $0 --*/")]), vec!["$0"]),
                (
                    "load_extension",
                    json!([step("SELECT load_extension('/tmp/x.so')")]),
                    vec!["load_extension() is not allowed"],
                ),
                (
                    "the coordinator's tables",
                    json!([step("SELECT gid FROM wasmtx_transactions")]),
                    vec!["belongs to the host", "no such table"],
                ),
            ]
        }
        Backend::Postgres => vec![
            (
                "COPY TO PROGRAM",
                json!([step(&format!("COPY (SELECT 1) TO PROGRAM 'touch {outside_path}'"))]),
                vec!["`COPY` is not allowed"],
            ),
            ("pg_read_file", json!([step("SELECT pg_read_file('/etc/passwd')")]), vec!["permission denied"]),
            ("lo_import", json!([step("SELECT lo_import('/etc/passwd')")]), vec!["permission denied"]),
            (
                "CREATE EXTENSION",
                json!([step("CREATE EXTENSION IF NOT EXISTS dblink")]),
                vec!["permission denied", "not available", "could not open extension"],
            ),
            (
                "ALTER SYSTEM",
                json!([step("ALTER SYSTEM SET work_mem = '1MB'")]),
                vec!["permission denied", "must be superuser", "cannot run inside a transaction block"],
            ),
            (";COMMIT", json!([step(";COMMIT")]), vec!["`COMMIT` is not allowed"]),
            ("delete the barrier", json!([step("DELETE FROM wasmtx.barrier")]), vec!["permission denied"]),
            (
                "forge a barrier row",
                json!([step(
                    "INSERT INTO wasmtx.barrier (gid, branch_id, op, barrier_id) VALUES ('honest-0', '01', 'compensate', '01')"
                )]),
                vec!["permission denied"],
            ),
            ("read the barrier", json!([step("SELECT gid FROM wasmtx.barrier")]), vec!["permission denied"]),
            ("read the host key", json!([step("SELECT key FROM wasmtx.host")]), vec!["permission denied"]),
            (
                "enter the barrier",
                json!([step(
                    "SELECT * FROM wasmtx.enter('guess', 'saga', 'honest-0', '01', 'compensate', 'action', '01', NULL)"
                )]),
                vec!["reserved for the host"],
            ),
            (
                "write the coordinator's progress",
                json!([step("SELECT wasmtx.apply_progress('{}'::jsonb)")]),
                vec!["permission denied", "does not exist"],
            ),
            ("set role", json!([step("SET ROLE postgres")]), vec!["permission denied"]),
            (
                "set_config role",
                json!([step("SELECT set_config('role', 'postgres', false)")]),
                vec!["permission denied"],
            ),
            ("session authorization", json!([step("SET SESSION AUTHORIZATION postgres")]), vec!["permission denied"]),
            ("DEALLOCATE", json!([step("DEALLOCATE ALL")]), vec!["`DEALLOCATE` is not allowed"]),
            (
                "the coordinator's tables",
                json!([step("SELECT gid FROM wasmtx.transactions")]),
                vec!["permission denied", "does not exist"],
            ),
        ],
    };
    for (what, steps, expected) in &cases {
        let results = sql(&server, "hog", steps.clone()).await;
        refused(what, &results[0], expected);
    }
    assert!(!outside.exists(), "no file outside the data dir: {outside_path}");

    if backend == Backend::Postgres {
        // Undoing the role changes nothing: the session user is the guest.
        let results = sql(&server, "hog", json!([step("RESET ROLE"), step("DELETE FROM wasmtx.barrier")])).await;
        assert!(results[0].get("changed").is_some(), "RESET ROLE itself is harmless: {}", results[0]);
        refused("delete after RESET ROLE", &results[1], &["permission denied"]);
        // Settings and temporary tables a committed branch leaves on its
        // (only) connection do not reach the next branch.
        let steps = [
            step("CREATE TEMP TABLE leftover (x int)"),
            step("SET search_path = pg_temp"),
            step("SET statement_timeout = 123456"),
        ];
        let (status, reason) = attack(&server, "hog", "script", json!({ "steps": steps })).await;
        assert_eq!(status, "succeeded", "{reason}");
        let next = sql(
            &server,
            "hog",
            json!([
                step("SELECT current_setting('statement_timeout'), current_setting('search_path')"),
                step("SELECT count(*) FROM pg_temp.leftover")
            ]),
        )
        .await;
        let settings = &next[0]["rows"][0];
        assert_ne!(settings[0], json!("123456ms"), "the next branch runs with the host's timeout: {settings}");
        assert_ne!(settings[1], json!("pg_temp"), "and the default search_path: {settings}");
        refused("the last branch's temporary table", &next[1], &["does not exist"]);
    }

    // The honest module still works, and nothing of the honest past changed.
    let (status, body) =
        server.post("/v1/transactions", &transfer("bank", Some("after"), "alice", "bob", 1, true)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    assert_eq!(server.balance("bank", "alice").await, 996);
    assert_eq!(evidence(&server, backend, &honest).await, before);
}

/// A tiny HTTP server answering 200 to every request.
fn http_ok_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    addr
}

async fn resource_attacks_fail_their_own_branch_and_honest_sagas_keep_their_pace(backend: Backend) {
    let allowed = http_ok_server();
    let elsewhere = http_ok_server();
    let extra = Extra {
        config: format!("deadline_ms = 2000\nmemory_mb = 64\nhttp_allow = [\"{allowed}\", \"{elsewhere}\"]\n"),
        databases: vec!["attacker"],
        ..Extra::default()
    };
    let (server, honest) = scene(backend, extra, "attacker", &format!("&http={allowed}")).await;
    let before = evidence(&server, backend, &honest).await;

    // Honest sagas, one after another, for as long as the attacks run.
    let done = Arc::new(AtomicBool::new(false));
    let honest_load = {
        let (http, base, done) = (server.http.clone(), server.base.clone(), done.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !done.load(Ordering::Acquire) {
                let started = Instant::now();
                let request = transfer("bank", Some(&format!("alongside-{i}")), "alice", "bob", 1, true);
                let body: Value = http
                    .post(format!("{base}/v1/transactions"))
                    .json(&request)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(body["status"], "succeeded", "an honest saga during the attacks: {body}");
                latencies.push(started.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };

    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let mut attacks: Vec<(&str, Value, &'static str)> = vec![
        ("spin", json!(null), "deadline exceeded"),
        ("grow", json!(null), "memory limit exceeded"),
        // Rust keeps its stack in linear memory: running off it is a memory fault.
        ("recurse", json!(null), "guest trapped"),
        ("trap", json!(null), "guest trapped"),
        ("sleep", json!(5000), "sleep is not available"),
        ("output", json!(2_000_000), "output limit exceeded"),
        ("error", json!(100_000), "error message limit exceeded"),
        ("log", json!(5_000), "log limit exceeded"),
        // Stopped by SQLite's progress handler, or Postgres's statement
        // timeout, or the deadline when the guest gets control back.
        ("script", json!({ "steps": [step(endless)], "then": "fail" }), "exceeded"),
    ];
    let sql_attacks: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "too many rows",
            json!([step(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000) SELECT x FROM c"
            )]),
            vec!["exceed the limit of rows"],
        ),
        ("invalid SQL", json!([step("SELEKT 1")]), vec!["syntax error"]),
        (
            "a table of another module's database",
            json!([step("SELECT balance FROM accounts")]),
            vec!["no such table", "does not exist"],
        ),
    ];
    if backend == Backend::Postgres {
        let steps = [
            step("CREATE TABLE t (x int)"),
            step("LOCK TABLE t IN ACCESS EXCLUSIVE MODE"),
            exec("SELECT pg_sleep(60)"),
        ];
        // Whichever stops it first: the statement timeout, or the deadline.
        attacks.push(("script", json!({ "steps": steps, "then": "fail" }), "exceeded"));
    }
    for (function, payload, expected) in attacks {
        let started = Instant::now();
        let (status, reason) = attack(&server, "hog", function, payload).await;
        assert_eq!(status, "failed", "{function}: {reason}");
        assert!(reason.contains(expected), "{function}: {reason:?} should name {expected:?}");
        assert!(started.elapsed() < Duration::from_secs(15), "{function} took {:?}", started.elapsed());
    }
    for (what, steps, expected) in sql_attacks {
        let results = sql(&server, "hog", steps).await;
        refused(what, &results[0], &expected);
    }

    // Direct calls whose output is the evidence: files, environment, network.
    let seen = server.call("hog", "env", json!(null)).await;
    assert_eq!(seen["vars"], 0, "no environment: {seen}");
    for key in ["file", "dir", "write"] {
        assert!(seen[key].as_str().is_some_and(|v| v.starts_with("error")), "no files: {seen}");
    }
    assert!(!std::path::Path::new("/tmp/wasmtx-guest-was-here").exists());
    let reached = server.call("hog", "http", json!(format!("http://{allowed}/"))).await;
    assert_eq!(reached, json!("status 200"), "a host both lists allow is reachable");
    let denied = server.call("hog", "http", json!(format!("http://{elsewhere}/"))).await;
    assert!(
        denied.as_str().is_some_and(|d| d.contains("HttpRequestDenied")),
        "the operator allows it, the module did not ask: {denied}"
    );

    done.store(true, Ordering::Release);
    let latencies = honest_load.await.unwrap();
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    eprintln!("{} honest sagas during the attacks, slowest {slowest:?}", latencies.len());
    assert!(latencies.len() >= 10, "honest sagas kept being served: {}", latencies.len());
    assert!(slowest < Duration::from_secs(2), "an honest saga took {slowest:?} while a module misbehaved");
    assert_eq!(evidence(&server, backend, &honest).await, before);
    assert_eq!(server.get("/healthz").await.0, 200);
}

/// On SQLite a branch holds its file's single writer while it runs: a
/// module that loops on the honest module's own file stalls it for at most
/// `sqlite_hold`, then fails with the limit named, and the honest saga runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_holding_the_sqlite_writer_is_stopped_after_sqlite_hold() {
    let extra = Extra { config: "sqlite_hold_ms = 500\n".to_owned(), ..Extra::default() };
    let (server, _) = scene(Backend::Sqlite, extra, "default", "").await;
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let hog = {
        let (http, base) = (server.http.clone(), server.base.clone());
        tokio::spawn(async move {
            let request = json!({
                "mode": "saga", "wait": true, "options": { "retry_limit": 0 },
                "branches": [{ "action": { "module": "hog", "function": "script" },
                               "compensate": { "module": "hog", "function": "echo" },
                               "payload": { "steps": [step(endless)], "then": "fail" } }],
            });
            let body: Value =
                http.post(format!("{base}/v1/transactions")).json(&request).send().await.unwrap().json().await.unwrap();
            body
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", 1, true)).await;
    let waited = started.elapsed();
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    assert!(waited < Duration::from_millis(1500), "the honest saga waited {waited:?}, more than the hold allows");
    let hog = hog.await.unwrap();
    assert_eq!(hog["status"], "failed", "{hog}");
    let reason = hog["rollback_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("deadline exceeded"), "{reason}");
}
