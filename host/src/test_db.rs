//! Fresh databases for tests: every test gets its own Postgres database (created
//! on the server named by `WASMTX_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) or its own SQLite file.
//! A Postgres that cannot be reached fails the test: nothing skips silently.

use sqlx::Connection;

/// Admin URL of the test Postgres server.
pub fn postgres_admin_url() -> String {
    std::env::var("WASMTX_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty database and returns its URL.
pub async fn fresh_postgres() -> String {
    let admin = postgres_admin_url();
    let name = format!("wasmtx_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn =
        sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| panic!("tests need Postgres at {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A SQLite URL for a new file in a new temporary directory (kept until the process exits).
pub fn fresh_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("wasmtx-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display())
}

/// Expands each listed `async fn name(url: String)` into the tests
/// `sqlite::<name>` and `postgres::<name>`, each given a fresh store URL.
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::test_db::fresh_sqlite()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::test_db::fresh_postgres().await).await;
                }
            )+
        }
    };
}
pub(crate) use on_both_stores;
