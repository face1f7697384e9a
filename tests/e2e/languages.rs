//! The transfer example in every language (`examples/transfer/{rust,python,js,c}`),
//! through the real server: the same scenarios, the same balances, the same
//! statuses and the same messages, whichever language the module is written in.
//!
//! Every scenario runs once per language on SQLite, and again with the
//! module's `default` database on MariaDB (the store on SQLite), whose SQL
//! dialect differs the most; the successful saga, `setup` overwriting
//! balances, the TCC that confirms and the TCC that cancels also run on
//! Postgres. Uploading the Python or JavaScript component compiles an
//! interpreter (15-35 s in a debug host on 2 cores; the compile cache makes
//! later uploads quick), so each test starts one server and uploads one
//! module.
//!
//! The assertions are the same for every language and must stay so: when one
//! language answers differently, that example has a bug; do not loosen the
//! assertion for it. Only the text after `invalid payload for <function>: `
//! may differ (each language's JSON decoder words it its own way).

use std::time::Instant;

use serde_json::{Value, json};

use crate::harness::{Backend, Extra, Server, example, fresh_mariadb, transfer};

/// Declares, for every language, one test per scenario: the scenarios listed
/// under `sqlite` run on SQLite, those under `postgres` on Postgres, those
/// under `mariadb` on MariaDB. A scenario is `async fn(lang: &str, database:
/// Database)`; tests are named `languages::<lang>::<database>::<scenario>`.
macro_rules! in_every_language {
    (
        sqlite: [$($sqlite:ident),+ $(,)?],
        postgres: [$($postgres:ident),+ $(,)?],
        mariadb: [$($mariadb:ident),+ $(,)?] $(,)?
    ) => {
        in_every_language!(@lang rust, [$($sqlite),+], [$($postgres),+], [$($mariadb),+]);
        in_every_language!(@lang python, [$($sqlite),+], [$($postgres),+], [$($mariadb),+]);
        in_every_language!(@lang js, [$($sqlite),+], [$($postgres),+], [$($mariadb),+]);
        in_every_language!(@lang c, [$($sqlite),+], [$($postgres),+], [$($mariadb),+]);
    };
    (@lang $lang:ident, [$($sqlite:ident),+], [$($postgres:ident),+], [$($mariadb:ident),+]) => {
        mod $lang {
            mod sqlite {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $sqlite() {
                    super::super::$sqlite(stringify!($lang), super::super::Database::Sqlite).await
                })+
            }
            mod postgres {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $postgres() {
                    super::super::$postgres(stringify!($lang), super::super::Database::Postgres).await
                })+
            }
            mod mariadb {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $mariadb() {
                    super::super::$mariadb(stringify!($lang), super::super::Database::Mariadb).await
                })+
            }
        }
    };
}

in_every_language!(
    sqlite: [
        transfer_succeeds,
        transfer_to_a_missing_account_rolls_back,
        overdraft_is_refused_and_its_compensation_is_null,
        same_gid_twice_applies_effects_once,
        guest_refusals_surface_with_the_guest_message,
        credits_that_would_overflow_are_refused,
        amounts_above_the_limit_are_refused,
        payloads_are_decoded_alike,
        setup_overwrites_balances_and_keeps_what_is_frozen,
        tcc_transfer_confirms,
        tcc_to_a_missing_account_cancels,
        tcc_overdraft_is_refused_and_try_in_never_runs,
        flaky_retries_then_succeeds,
    ],
    postgres: [
        transfer_succeeds,
        setup_overwrites_balances_and_keeps_what_is_frozen,
        tcc_transfer_confirms,
        tcc_to_a_missing_account_cancels,
    ],
    mariadb: [
        transfer_succeeds,
        transfer_to_a_missing_account_rolls_back,
        overdraft_is_refused_and_its_compensation_is_null,
        same_gid_twice_applies_effects_once,
        guest_refusals_surface_with_the_guest_message,
        credits_that_would_overflow_are_refused,
        amounts_above_the_limit_are_refused,
        payloads_are_decoded_alike,
        setup_overwrites_balances_and_keeps_what_is_frozen,
        tcc_transfer_confirms,
        tcc_to_a_missing_account_cancels,
        tcc_overdraft_is_refused_and_try_in_never_runs,
        flaky_retries_then_succeeds,
    ],
);

/// Where the module's business database (`default`) lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Database {
    /// The data dir's SQLite file, with the store.
    Sqlite,
    /// A fresh Postgres database; the store in another.
    Postgres,
    /// A fresh MariaDB database; the store in the data dir's SQLite file.
    Mariadb,
}

/// A ready server whose `default` database is `database`.
async fn start(database: Database) -> Server {
    let server = match database {
        Database::Sqlite => Server::start(Backend::Sqlite).await,
        Database::Postgres => Server::start(Backend::Postgres).await,
        Database::Mariadb => {
            let default = ("default".to_owned(), fresh_mariadb().await);
            Server::start_with(Backend::Sqlite, Extra { database_urls: vec![default], ..Extra::default() }).await
        }
    };
    server.ready().await;
    server
}

/// Uploads `transfer-<lang>` as `module`, reporting how long the upload
/// (validation and compilation) took.
async fn upload(server: &Server, module: &str, lang: &str) {
    let started = Instant::now();
    let (status, body) = server.upload(module, example(&format!("transfer-{lang}"))).await;
    assert_eq!(status, 201, "upload of transfer-{lang}: {body}");
    eprintln!("uploaded transfer-{lang} as {module} in {:.1} s", started.elapsed().as_secs_f64());
}

async fn setup(server: &Server, module: &str, accounts: &[(&str, i64)]) {
    let accounts: Vec<Value> = accounts.iter().map(|(id, b)| json!({ "id": id, "balance": b })).collect();
    let n = accounts.len();
    let body = server.call(module, "setup", json!({ "accounts": accounts })).await;
    assert_eq!(body, json!({ "accounts": n }));
}

/// A server with `transfer-<lang>` uploaded as `bank` and accounts seeded.
async fn bank(lang: &str, database: Database, accounts: &[(&str, i64)]) -> Server {
    let server = start(database).await;
    upload(&server, "bank", lang).await;
    setup(&server, "bank", accounts).await;
    server
}

/// The transaction as GET /v1/transactions/{gid} reports it.
async fn transaction(server: &Server, gid: &str) -> Value {
    let (status, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
    assert_eq!(status, 200, "{tx}");
    tx
}

/// `("01 action", "succeeded")`, ... for every op of the transaction, in order.
fn ops(tx: &Value) -> Vec<(String, String)> {
    let field =
        |op: &Value, name: &str| op[name].as_str().unwrap_or_else(|| panic!("{name} missing in {op}")).to_owned();
    tx["branches"]
        .as_array()
        .unwrap_or_else(|| panic!("no branches in {tx}"))
        .iter()
        .map(|op| (format!("{} {}", field(op, "branch_id"), field(op, "op")), field(op, "status")))
        .collect()
}

/// The four ops of a two-branch saga with these statuses.
fn expected_ops(statuses: [&str; 4]) -> Vec<(String, String)> {
    ["01 action", "01 compensate", "02 action", "02 compensate"]
        .into_iter()
        .zip(statuses)
        .map(|(op, status)| (op.to_owned(), status.to_owned()))
        .collect()
}

/// A TCC transfer over the bank module: `try-out` freezes the amount on
/// `from`, `try-in` checks `to`; the confirms move the money, the cancels
/// give the frozen amount back.
fn tcc(module: &str, from: &str, to: &str, amount: i64) -> Value {
    let payload = json!({ "from": from, "to": to, "amount": amount });
    let f = |function: &str| json!({ "module": module, "function": function });
    json!({
        "mode": "tcc",
        "wait": true,
        "branches": [
            { "try": f("try-out"), "confirm": f("confirm-out"), "cancel": f("cancel-out"), "payload": payload },
            { "try": f("try-in"), "confirm": f("confirm-in"), "cancel": f("cancel-in"), "payload": payload },
        ],
    })
}

/// The six ops of a two-branch TCC with these statuses.
fn expected_tcc_ops(statuses: [&str; 6]) -> Vec<(String, String)> {
    ["01 try", "01 confirm", "01 cancel", "02 try", "02 confirm", "02 cancel"]
        .into_iter()
        .zip(statuses)
        .map(|(op, status)| (op.to_owned(), status.to_owned()))
        .collect()
}

/// `attempts` of every op of the transaction, in order.
fn attempts(tx: &Value) -> Vec<u64> {
    tx["branches"]
        .as_array()
        .unwrap_or_else(|| panic!("no branches in {tx}"))
        .iter()
        .map(|op| op["attempts"].as_u64().unwrap())
        .collect()
}

/// `(id, frozen)` of every account, read from the business database itself:
/// no function of the example reports `frozen`.
async fn frozen(server: &Server, database: Database) -> Vec<(String, i64)> {
    const SQL: &str = "SELECT id, frozen FROM accounts ORDER BY id";
    let url = server.database_url("default");
    match database {
        Database::Sqlite => {
            let path = url.trim_start_matches("sqlite://").split('?').next().expect("a path").to_owned();
            let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap_or_else(|e| panic!("open {path}: {e}"));
            let mut stmt = conn.prepare(SQL).expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").map(|r| r.expect("row")).collect()
        }
        Database::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
            sqlx::query_as(SQL).fetch_all(&mut conn).await.expect("query")
        }
        Database::Mariadb => {
            use sqlx::Connection;
            let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
            sqlx::query_as(SQL).fetch_all(&mut conn).await.expect("query")
        }
    }
}

/// Every account of `ids` with nothing frozen.
fn nothing_frozen(ids: &[&str]) -> Vec<(String, i64)> {
    ids.iter().map(|id| (id.to_string(), 0)).collect()
}

async fn transfer_succeeds(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100), ("bob", 20)]).await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", 30, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(server.balance("bank", "alice").await, 70);
    assert_eq!(server.balance("bank", "bob").await, 50);

    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(tx["status"], "succeeded");
    assert_eq!(ops(&tx), expected_ops(["succeeded", "prepared", "succeeded", "prepared"]));
}

async fn transfer_to_a_missing_account_rolls_back(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100)]).await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "carol", 30, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "account carol does not exist", "{body}");
    assert_eq!(server.balance("bank", "alice").await, 100, "the debit was compensated");

    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(tx["status"], "failed");
    assert_eq!(tx["rollback_reason"], "account carol does not exist");
    assert_eq!(ops(&tx), expected_ops(["succeeded", "succeeded", "failed", "succeeded"]));
}

async fn overdraft_is_refused_and_its_compensation_is_null(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 10), ("bob", 0)]).await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", 30, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "insufficient funds in alice", "{body}");
    // trans-out-revert ran as a null compensation: no credit for a debit that never happened.
    assert_eq!(server.balance("bank", "alice").await, 10);
    assert_eq!(server.balance("bank", "bob").await, 0);

    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(tx["status"], "failed");
    assert_eq!(ops(&tx), expected_ops(["failed", "succeeded", "prepared", "prepared"]));
}

async fn same_gid_twice_applies_effects_once(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100), ("bob", 0)]).await;
    let request = transfer("bank", Some("order-42"), "alice", "bob", 30, true);
    let (s1, b1) = server.post("/v1/transactions", &request).await;
    let (s2, b2) = server.post("/v1/transactions", &request).await;
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(b1["status"], "succeeded", "{b1}");
    assert_eq!(b2["status"], "succeeded", "{b2}");
    assert_eq!(b2["gid"], "order-42");
    assert_eq!(server.balance("bank", "alice").await, 70);
    assert_eq!(server.balance("bank", "bob").await, 30);

    let tx = transaction(&server, "order-42").await;
    let attempts: Vec<u64> =
        tx["branches"].as_array().unwrap().iter().map(|op| op["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 0, 1, 0], "each action ran once: {tx}");
}

async fn guest_refusals_surface_with_the_guest_message(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100), ("bob", 0)]).await;

    // A refusal by the function itself: the message is the guest's, word for word.
    let zero = json!({ "from": "alice", "to": "bob", "amount": 0 });
    let (status, body) = server.post("/v1/modules/bank/call/trans-out", &zero).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body,
        json!({ "error": { "code": "branch_failure", "message": "amount must be a positive integer, got 0" } })
    );

    // A payload the function cannot decode: refused by the module's own
    // decoding, which names the function (the rest of the text is the
    // language's decoder's).
    let (status, body) = server.post("/v1/modules/bank/call/trans-out", &json!({ "from": "alice" })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "branch_failure", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.starts_with("invalid payload for trans-out: "), "{message}");

    // The same inside a saga: the action fails, the transaction rolls back,
    // and the compensation of the action that never committed is null.
    let mut request = transfer("bank", None, "alice", "bob", 30, true);
    request["branches"][0]["payload"] = json!({ "from": 5 });
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    let reason = body["rollback_reason"].as_str().expect("rollback_reason");
    assert!(reason.starts_with("invalid payload for trans-out: "), "{reason}");
    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(ops(&tx), expected_ops(["failed", "succeeded", "prepared", "prepared"]));
    assert_eq!(tx["branches"][0]["last_error"], reason, "the op keeps the guest's message");

    assert_eq!(server.balance("bank", "alice").await, 100, "no refusal wrote anything");
    assert_eq!(server.balance("bank", "bob").await, 0);
}

/// A direct call of `function` on `bank` with `body` sent as written:
/// [`Server::post`] sends a `Value`, which cannot spell `-0` or a key given twice.
async fn call_raw(server: &Server, function: &str, body: &'static str) -> (u16, Value) {
    let url = format!("{}/v1/modules/bank/call/{function}", server.base);
    let r = server.http.post(url).body(body).send().await.expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The answer to a direct call refused with `message`.
fn refusal(message: &str) -> Value {
    json!({ "error": { "code": "branch_failure", "message": message } })
}

async fn credits_that_would_overflow_are_refused(lang: &str, database: Database) {
    const NEAR_MAX: i64 = 9_223_372_036_854_775_000;
    let server = bank(lang, database, &[("alice", 5000), ("bob", NEAR_MAX)]).await;

    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", 1000, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "balance of bob would overflow", "{body}");
    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(ops(&tx), expected_ops(["succeeded", "succeeded", "failed", "succeeded"]));
    assert_eq!(server.balance("bank", "alice").await, 5000, "the debit was compensated");
    assert_eq!(server.balance("bank", "bob").await, NEAR_MAX, "still an integer, unchanged");
    // The same credit as a TCC: try-in refuses it before anything is confirmed.
    let (status, body) = server.post("/v1/transactions", &tcc("bank", "alice", "bob", 1000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "balance of bob would overflow", "{body}");
    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(ops(&tx), expected_tcc_ops(["succeeded", "prepared", "succeeded", "failed", "prepared", "succeeded"]));
    assert_eq!(server.balance("bank", "alice").await, 5000, "the freeze was cancelled");
    assert_eq!(server.balance("bank", "bob").await, NEAR_MAX);
    assert_eq!(frozen(&server, database).await, nothing_frozen(&["alice", "bob"]));

    // Up to i64::MAX exactly is a credit like any other.
    let rest = i64::MAX - NEAR_MAX;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", rest, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(server.balance("bank", "alice").await, 5000 - rest);
    assert_eq!(server.balance("bank", "bob").await, i64::MAX);

    // The compensations are guarded too (called directly here: no barrier).
    // trans-out-revert credits `from` back; trans-in-revert debits `to`.
    setup(&server, "bank", &[("dave", i64::MIN + 999)]).await;
    let back_to_bob = json!({ "from": "bob", "to": "alice", "amount": 1 });
    let (status, body) = server.post("/v1/modules/bank/call/trans-out-revert", &back_to_bob).await;
    assert_eq!((status, body), (422, refusal("balance of bob would overflow")));
    let from_dave = json!({ "from": "alice", "to": "dave", "amount": 1000 });
    let (status, body) = server.post("/v1/modules/bank/call/trans-in-revert", &from_dave).await;
    assert_eq!((status, body), (422, refusal("balance of dave would overflow")));
    assert_eq!(server.balance("bank", "bob").await, i64::MAX);
    assert_eq!(server.balance("bank", "dave").await, i64::MIN + 999);
    let from_dave = json!({ "from": "alice", "to": "dave", "amount": 999 });
    assert_eq!(server.call("bank", "trans-in-revert", from_dave).await, Value::Null);
    assert_eq!(server.balance("bank", "dave").await, i64::MIN);

    // A compensation for an account that is gone still does nothing.
    let nobody = json!({ "from": "nobody", "to": "nobody", "amount": 1 });
    assert_eq!(server.call("bank", "trans-out-revert", nobody.clone()).await, Value::Null);
    assert_eq!(server.call("bank", "trans-in-revert", nobody).await, Value::Null);
}

async fn amounts_above_the_limit_are_refused(lang: &str, database: Database) {
    const LIMIT: i64 = 1_000_000_000_000_000;
    let server = bank(lang, database, &[("alice", LIMIT + 1), ("bob", 0)]).await;

    let above = json!({ "from": "alice", "to": "bob", "amount": LIMIT + 1 });
    let steps = ["trans-out", "trans-out-revert", "trans-in", "trans-in-revert"];
    let tcc_steps = ["try-out", "confirm-out", "cancel-out", "try-in", "confirm-in", "cancel-in"];
    for function in steps.into_iter().chain(tcc_steps) {
        let (status, body) = server.post(&format!("/v1/modules/bank/call/{function}"), &above).await;
        assert_eq!(status, 422, "{function}: {body}");
        assert_eq!(body, refusal("amount must be at most 1000000000000000, got 1000000000000001"), "{function}");
    }
    assert_eq!(server.balance("bank", "alice").await, LIMIT + 1, "no refusal wrote anything");

    // The limit itself is an amount like any other.
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", LIMIT, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(server.balance("bank", "alice").await, 1);
    assert_eq!(server.balance("bank", "bob").await, LIMIT);
}

async fn payloads_are_decoded_alike(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100), ("bob", 0)]).await;

    // Only a JSON object is a payload. (serde's derived Deserialize alone
    // would read `["alice","bob",30]` as a transfer.)
    let not_objects = [
        ("trans-out", r#"["alice","bob",30]"#),
        ("trans-in", r#"["alice","bob",30]"#),
        ("balance", r#"["alice"]"#),
        ("setup", r#"[[{"id":"carol","balance":5}]]"#),
        ("trans-out-revert", "null"),
        ("trans-in-revert", r#""alice""#),
        ("trans-out", "30"),
        ("try-out", r#"["alice","bob",30]"#),
        ("cancel-in", "null"),
    ];
    for (function, body) in not_objects {
        let (status, answer) = call_raw(&server, function, body).await;
        let message = format!("invalid payload for {function}: payload must be a JSON object");
        assert_eq!((status, answer), (422, refusal(&message)), "{function}({body})");
    }
    // The same for each account given to setup.
    let (status, answer) = call_raw(&server, "setup", r#"{"accounts":[["carol",5]]}"#).await;
    assert_eq!((status, answer), (422, refusal("invalid payload for setup: account must be a JSON object")));

    // `-0` is not an integer (serde_json reads it as -0.0): the payload is
    // invalid, rather than "amount must be a positive integer, got 0".
    let (status, answer) = call_raw(&server, "trans-out", r#"{"from":"alice","to":"bob","amount":-0}"#).await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.starts_with("invalid payload for trans-out: "), "{message}");

    // A key given twice is refused if the function reads it, and ignored if not.
    let (status, answer) = call_raw(&server, "balance", r#"{"id":"alice","id":"bob"}"#).await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.starts_with("invalid payload for balance: "), "{message}");
    let (status, answer) = call_raw(&server, "setup", r#"{"accounts":[{"id":"carol","balance":5,"balance":6}]}"#).await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.starts_with("invalid payload for setup: "), "{message}");
    let (status, answer) = call_raw(&server, "balance", r#"{"id":"alice","note":1,"note":[2]}"#).await;
    assert_eq!((status, answer), (200, json!({ "id": "alice", "balance": 100 })));

    // Nothing was written by any of it.
    let (status, answer) = server.post("/v1/modules/bank/call/balance", &json!({ "id": "carol" })).await;
    assert_eq!((status, answer), (422, refusal("account carol does not exist")));
    assert_eq!(server.balance("bank", "alice").await, 100);
    assert_eq!(server.balance("bank", "bob").await, 0);
}

async fn setup_overwrites_balances_and_keeps_what_is_frozen(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100), ("bob", 0)]).await;
    let t = json!({ "from": "alice", "to": "bob", "amount": 30 });
    assert_eq!(server.call("bank", "try-out", t).await, Value::Null);

    // alice gets a new balance, bob the one he has, carol is new.
    setup(&server, "bank", &[("alice", 500), ("bob", 0), ("carol", 7)]).await;
    assert_eq!(server.balance("bank", "alice").await, 500);
    assert_eq!(server.balance("bank", "bob").await, 0);
    assert_eq!(server.balance("bank", "carol").await, 7);
    let frozen = frozen(&server, database).await;
    let expected = [("alice".to_owned(), 30), ("bob".to_owned(), 0), ("carol".to_owned(), 0)];
    assert_eq!(frozen, expected, "an overwritten account keeps what it has frozen");
}

/// A saga whose debit runs in Python and whose credit runs in C, both
/// modules bound to the same business database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_mixing_python_and_c_commits_and_compensates_across_languages() {
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    upload(&server, "bank-py", "python").await;
    upload(&server, "bank-c", "c").await;
    setup(&server, "bank-py", &[("alice", 100), ("bob", 20)]).await;

    let mixed = |to: &str| {
        let mut request = transfer("bank-py", None, "alice", to, 30, true);
        request["branches"][1]["action"]["module"] = json!("bank-c");
        request["branches"][1]["compensate"]["module"] = json!("bank-c");
        request
    };
    let (status, body) = server.post("/v1/transactions", &mixed("bob")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    for module in ["bank-py", "bank-c"] {
        assert_eq!(server.balance(module, "alice").await, 70, "{module} reads the debit");
        assert_eq!(server.balance(module, "bob").await, 50, "{module} reads the credit");
    }
    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    let modules: Vec<&str> =
        tx["branches"].as_array().unwrap().iter().map(|op| op["module"].as_str().unwrap()).collect();
    assert_eq!(modules, ["bank-py", "bank-py", "bank-c", "bank-c"]);

    // C refuses the credit; Python compensates the debit.
    let (status, body) = server.post("/v1/transactions", &mixed("carol")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "account carol does not exist", "{body}");
    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(ops(&tx), expected_ops(["succeeded", "succeeded", "failed", "succeeded"]));
    assert_eq!(server.balance("bank-c", "alice").await, 70, "the second debit was compensated");
    assert_eq!(server.balance("bank-py", "bob").await, 50);
}

async fn tcc_transfer_confirms(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100), ("bob", 0)]).await;
    let (status, body) = server.post("/v1/transactions", &tcc("bank", "alice", "bob", 30)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(server.balance("bank", "alice").await, 70);
    assert_eq!(server.balance("bank", "bob").await, 30);
    assert_eq!(frozen(&server, database).await, nothing_frozen(&["alice", "bob"]), "the confirm released the freeze");

    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(tx["mode"], "tcc");
    assert_eq!(tx["status"], "succeeded");
    assert_eq!(
        ops(&tx),
        expected_tcc_ops(["succeeded", "succeeded", "prepared", "succeeded", "succeeded", "prepared"])
    );
    assert_eq!(attempts(&tx), [1, 1, 0, 1, 1, 0], "every try and confirm ran once, no cancel ran");

    // What the steps do on their own (called directly: no barrier). try-out
    // moves the amount from the balance to `frozen`, cancel-out moves it back;
    // try-in reserves nothing.
    let t = json!({ "from": "alice", "to": "bob", "amount": 20 });
    assert_eq!(server.call("bank", "try-out", t.clone()).await, Value::Null);
    assert_eq!(server.balance("bank", "alice").await, 50);
    assert_eq!(frozen(&server, database).await, [("alice".to_owned(), 20), ("bob".to_owned(), 0)]);
    assert_eq!(server.call("bank", "try-in", t.clone()).await, Value::Null);
    assert_eq!(server.balance("bank", "bob").await, 30);
    assert_eq!(server.call("bank", "cancel-out", t.clone()).await, Value::Null);
    assert_eq!(server.balance("bank", "alice").await, 70);
    assert_eq!(frozen(&server, database).await, nothing_frozen(&["alice", "bob"]));
    // A confirm or cancel of more than is frozen is refused and writes nothing.
    for function in ["confirm-out", "cancel-out"] {
        let (status, body) = server.post(&format!("/v1/modules/bank/call/{function}"), &t).await;
        assert_eq!((status, body), (422, refusal("account alice has less than 20 frozen")), "{function}");
    }
    assert_eq!(server.balance("bank", "alice").await, 70);
    assert_eq!(frozen(&server, database).await, nothing_frozen(&["alice", "bob"]));
}

async fn tcc_to_a_missing_account_cancels(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 100)]).await;
    let (status, body) = server.post("/v1/transactions", &tcc("bank", "alice", "carol", 30)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "account carol does not exist", "{body}");
    assert_eq!(server.balance("bank", "alice").await, 100, "cancel-out gave the frozen amount back");
    assert_eq!(frozen(&server, database).await, nothing_frozen(&["alice"]));

    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(tx["status"], "failed");
    assert_eq!(tx["rollback_reason"], "account carol does not exist");
    assert_eq!(ops(&tx), expected_tcc_ops(["succeeded", "prepared", "succeeded", "failed", "prepared", "succeeded"]));
    assert_eq!(tx["branches"][3]["last_error"], "account carol does not exist", "try-in keeps the guest's message");
}

async fn tcc_overdraft_is_refused_and_try_in_never_runs(lang: &str, database: Database) {
    let server = bank(lang, database, &[("alice", 10), ("bob", 0)]).await;
    let (status, body) = server.post("/v1/transactions", &tcc("bank", "alice", "bob", 30)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "insufficient funds in alice", "{body}");
    // cancel-out ran as a null cancel: nothing back for a freeze that never happened.
    assert_eq!(server.balance("bank", "alice").await, 10);
    assert_eq!(server.balance("bank", "bob").await, 0);
    assert_eq!(frozen(&server, database).await, nothing_frozen(&["alice", "bob"]));

    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(tx["status"], "failed");
    assert_eq!(ops(&tx), expected_tcc_ops(["failed", "prepared", "succeeded", "prepared", "prepared", "prepared"]));
    let attempts = attempts(&tx);
    assert_eq!(attempts[0], 1, "try-out ran once: a refusal is not retried");
    assert_eq!(
        [attempts[1], attempts[3], attempts[4], attempts[5]],
        [0, 0, 0, 0],
        "nothing ran after the refusal but cancel-out: {tx}"
    );
}

async fn flaky_retries_then_succeeds(lang: &str, database: Database) {
    let server = start(database).await;
    upload(&server, "bank", lang).await;

    // Two retries a second apart, well within the server's wait timeout.
    let flaky = json!({ "module": "bank", "function": "flaky" });
    let request = json!({
        "mode": "saga",
        "wait": true,
        "branches": [{ "action": flaky, "compensate": flaky, "payload": { "retries": 2 } }],
        "options": { "retry_interval": 1 },
    });
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    let tx = transaction(&server, body["gid"].as_str().expect("gid")).await;
    assert_eq!(tx["status"], "succeeded");
    assert_eq!(
        ops(&tx),
        [("01 action".to_owned(), "succeeded".to_owned()), ("01 compensate".to_owned(), "prepared".to_owned())]
    );
    assert_eq!(attempts(&tx), [3, 0], "two retries, then the success; no compensation: {tx}");

    // Called directly (a first attempt): no retries succeeds at once, and a
    // count out of range is refused.
    assert_eq!(server.call("bank", "flaky", json!({ "retries": 0 })).await, json!({ "attempts": 1 }));
    let (status, body) = server.post("/v1/modules/bank/call/flaky", &json!({ "retries": 5000 })).await;
    assert_eq!((status, body), (422, refusal("retries must be between 0 and 1000, got 5000")));
}
