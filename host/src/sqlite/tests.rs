//! The SQLite file layer: the writer's jobs, group commit, readers, guest mode.

use std::time::{Duration, Instant};

use rusqlite::types::Value;

use super::*;
use crate::test_db::fresh_sqlite;

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).expect("count")
}

async fn file_with_table() -> SqliteFile {
    let file = SqliteFile::open(&fresh_sqlite()).expect("open");
    file.write(|w| w.conn().execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")).await.unwrap().unwrap();
    file
}

#[test]
fn urls_name_a_file_or_memory() {
    let at = |url: &str| Location::parse(url).unwrap();
    assert_eq!(at("sqlite:///a/b.db").path.as_deref(), Some(Path::new("/a/b.db")));
    assert_eq!(at("sqlite:/a/b.db?mode=rwc"), Location { path: Some("/a/b.db".into()), create: true });
    assert!(!at("sqlite:///a/b.db?mode=rw").create);
    assert_eq!(at("sqlite::memory:").path, None);
    assert_eq!(at("sqlite://x.db?mode=memory").path, None);
    assert!(Location::parse("sqlite:///a?mode=ro").is_err());
    assert!(Location::parse("postgres://x").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ok_job_commits_and_an_err_job_rolls_back() {
    let file = file_with_table().await;
    let kept: Result<(), ()> = file
        .write(|w| w.conn().execute("INSERT INTO t VALUES (1, 'a')", []).map(|_| ()).map_err(|_| ()))
        .await
        .unwrap();
    assert_eq!(kept, Ok(()));
    let undone: Result<(), &str> = file
        .write(|w| {
            w.conn().execute("INSERT INTO t VALUES (2, 'b')", []).expect("insert");
            Err("changed my mind")
        })
        .await
        .unwrap();
    assert_eq!(undone, Err("changed my mind"));
    assert_eq!(file.read(|c| count(c, "t")).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_rolled_back_and_the_writer_goes_on() {
    let file = file_with_table().await;
    let result: Result<Result<(), ()>, SqliteError> = file
        .write(|w| {
            w.conn().execute("INSERT INTO t VALUES (1, 'a')", []).expect("insert");
            panic!("a bug in a job");
        })
        .await;
    assert!(matches!(result, Err(SqliteError::Panicked)), "{result:?}");
    let ok: Result<(), ()> = file
        .write(|w| w.conn().execute("INSERT INTO t VALUES (2, 'b')", []).map(|_| ()).map_err(|_| ()))
        .await
        .unwrap();
    assert_eq!(ok, Ok(()));
    assert_eq!(file.read(|c| count(c, "t")).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_all_commit_and_two_handles_on_one_path_share_the_writer() {
    let url = fresh_sqlite();
    let a = SqliteFile::open(&url).unwrap();
    let b = SqliteFile::open(&url).unwrap();
    assert!(a.same_file(&b), "one writer per file");
    a.write(|w| w.conn().execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")).await.unwrap().unwrap();
    let jobs: Vec<_> = (0..200)
        .map(|i| {
            let file = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                file.write(move |w| w.conn().execute("INSERT INTO t VALUES (?1, 'x')", [i]).map(|_| ())).await
            })
        })
        .collect();
    for job in jobs {
        job.await.unwrap().unwrap().unwrap();
    }
    assert_eq!(a.read(|c| count(c, "t")).await.unwrap(), 200);
}

/// A write job for the batch tests.
type TestJob = Box<dyn FnOnce(&Arc<Writer>) -> Result<(), String> + Send>;

/// Queues `jobs` behind one that holds the writer for a while, so that they
/// all run in the same batch; returns each job's answer, in order.
async fn in_one_batch(file: &SqliteFile, jobs: Vec<TestJob>) -> Vec<Result<Result<(), String>, SqliteError>> {
    let hold = file.clone();
    let mut answers = vec![tokio::spawn(async move {
        hold.write(|w| {
            std::thread::sleep(Duration::from_millis(300));
            w.conn().execute("INSERT INTO t VALUES (100, 'first')", []).map(|_| ()).map_err(|e| e.to_string())
        })
        .await
    })];
    for job in jobs {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let file = file.clone();
        answers.push(tokio::spawn(async move { file.write(job).await }));
    }
    let mut results = Vec::new();
    for answer in answers {
        results.push(answer.await.unwrap());
    }
    results
}

fn insert(id: i64) -> TestJob {
    Box::new(move |w| w.conn().execute("INSERT INTO t VALUES (?1, 'x')", [id]).map(|_| ()).map_err(|e| e.to_string()))
}

fn ids(conn: &Connection) -> Vec<i64> {
    let mut stmt = conn.prepare("SELECT id FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_one_batch_keep_or_undo_only_their_own_writes() {
    let file = file_with_table().await;
    let undo: TestJob = Box::new(|w| {
        w.conn().execute("INSERT INTO t VALUES (3, 'x')", []).unwrap();
        Err("undo mine".to_owned())
    });
    let answers = in_one_batch(&file, vec![insert(2), undo, insert(4)]).await;
    let outcomes: Vec<_> = answers.into_iter().map(|a| a.expect("the batch committed")).collect();
    assert_eq!(outcomes, [Ok(()), Ok(()), Err("undo mine".to_owned()), Ok(())]);
    assert_eq!(file.read(ids).await.unwrap(), [2, 4, 100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ends_the_transaction_fails_the_batch_before_it_and_nothing_after_it() {
    let file = file_with_table().await;
    let ender: TestJob = Box::new(|w| {
        w.conn().execute("INSERT INTO t VALUES (3, 'x')", []).unwrap();
        w.conn().execute_batch("ROLLBACK").map_err(|e| e.to_string())
    });
    let answers = in_one_batch(&file, vec![insert(2), ender, insert(4)]).await;
    // The holder and job 2 were released into the batch the ender ended.
    for lost in &answers[..2] {
        assert!(matches!(lost, Err(SqliteError::Commit(m)) if m.contains("rolled back with its batch")), "{lost:?}");
    }
    assert!(matches!(&answers[2], Err(SqliteError::Commit(m)) if m.contains("ended before the host")), "{answers:?}");
    assert!(matches!(&answers[3], Ok(Ok(()))), "the next job starts a new batch: {answers:?}");
    assert_eq!(file.read(ids).await.unwrap(), [4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cannot_commit_behind_the_writer_s_back() {
    let file = file_with_table().await;
    // A job that ends the transaction itself: the commit hook refuses its COMMIT.
    let result: Result<Result<(), String>, SqliteError> = file
        .write(|w| {
            let conn = w.conn();
            conn.execute("INSERT INTO t VALUES (1, 'a')", []).map_err(|e| e.to_string())?;
            conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        })
        .await;
    assert!(
        matches!(&result, Ok(Err(m)) if m.contains("constraint") || m.contains("rollback")) || result.is_err(),
        "{result:?}"
    );
    assert_eq!(file.read(|c| count(c, "t")).await.unwrap(), 0);
}

fn guest(w: &Writer, sql: &str, params: &[Value]) -> Result<GuestOutput, GuestSqlError> {
    let limits = GuestLimits { rows: 100, bytes: 1 << 20 };
    w.guest_statement(sql, params, Instant::now() + Duration::from_secs(5), &limits, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_statements_bind_by_number_and_are_refused_what_the_authorizer_denies() {
    let file = file_with_table().await;
    let outcome = file
        .write(|w| {
            let rows = guest(w, "SELECT $2, $1, $2", &[Value::Integer(1), Value::Integer(2)]);
            let denied = guest(w, "ATTACH '/tmp/x.db' AS x", &[]);
            let pragma = guest(w, "PRAGMA query_only = 1", &[]);
            let named = guest(w, "SELECT :name", &[Value::Integer(1)]);
            let missing = guest(w, "SELECT $3", &[Value::Integer(1)]);
            Ok::<_, ()>((rows, denied, pragma, named, missing))
        })
        .await
        .unwrap()
        .unwrap();
    let (rows, denied, pragma, named, missing) = outcome;
    match rows.unwrap() {
        GuestOutput::Rows { rows, .. } => {
            assert_eq!(rows, vec![vec![Value::Integer(2), Value::Integer(1), Value::Integer(2)]])
        }
        other => panic!("{other:?}"),
    }
    let denied = denied.unwrap_err();
    assert!(denied.message.starts_with("not authorized: ATTACH"), "{denied:?}");
    assert!(pragma.unwrap_err().message.contains("PRAGMA query_only is not allowed"));
    assert!(named.unwrap_err().message.contains("use numbered parameters"));
    assert!(missing.unwrap_err().message.contains("has no value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_statement_past_its_deadline_is_interrupted_and_names_it() {
    let file = file_with_table().await;
    let (result, took) = file
        .write(|w| {
            let started = Instant::now();
            let limits = GuestLimits { rows: 100, bytes: 1 << 20 };
            let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
            let result = w.guest_statement(endless, &[], Instant::now() + Duration::from_millis(200), &limits, true);
            Ok::<_, ()>((result, started.elapsed()))
        })
        .await
        .unwrap()
        .unwrap();
    let err = result.unwrap_err();
    assert!(err.message.starts_with("deadline exceeded"), "{err:?}");
    assert!(took < Duration::from_secs(2), "stopped near its deadline, not later: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_query_stops_at_the_row_limit() {
    let file = file_with_table().await;
    let err = file
        .write(|w| {
            let limits = GuestLimits { rows: 10, bytes: 1 << 20 };
            let many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50) SELECT x FROM c";
            Ok::<_, ()>(w.guest_statement(many, &[], Instant::now() + Duration::from_secs(5), &limits, true))
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.message.contains("exceed the limit of rows"), "{err:?}");
}
