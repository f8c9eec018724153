//! The `coroutine_libraries` example's database work against a real
//! MariaDB server that the test starts (its own data directory, socket and
//! port) and stops: many concurrent queries from one thread under a weft
//! `Semaphore`, a transaction committed and one rolled back, a failed
//! query's error, and a connection killed under the pool.
//!
//! Needs `mariadbd` (Debian: `apt-get install mariadb-server`); without it
//! the test fails and says so: it never passes without a server.
#![cfg(target_os = "linux")]

use std::time::Duration;

#[path = "../examples/support/database.rs"]
mod database;
#[path = "../examples/support/mariadb.rs"]
mod mariadb;

use weft::aio;

fn server() -> mariadb::MariaDb {
    mariadb::MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"))
}

/// Runs `f` on weft-async with a time limit, so a hang fails the test.
fn run_limited<T>(f: impl std::future::Future<Output = T>) -> T {
    aio::run(async move {
        aio::timeout(Duration::from_secs(120), f)
            .await
            .expect("the database work ran past its time limit")
    })
}

#[test]
fn the_example_queries_run_against_a_real_server() {
    let server = server();
    let r = run_limited(database::demo(&server.url())).expect("the database demo");
    println!("the concurrent part took {:?} (not asserted)", r.elapsed);
    // Every task's insert is there, counted by the server.
    assert_eq!(r.orders, database::ORDERS as i64);
    assert_eq!(r.total, (0..database::ORDERS as i64).sum::<i64>());
    // The Semaphore let exactly CONNECTIONS tasks at the database at once
    // (they all start together, so all permits are taken).
    assert_eq!(r.most_at_once, database::CONNECTIONS);
    // The transaction moved 30; the overdraft moved nothing.
    assert_eq!(r.after_commit, (70, 130));
    assert_eq!(r.after_rollback, (70, 130));
    assert!(
        r.overdraw_error.contains("no_overdraft") && r.overdraw_error.contains("4025"),
        "{}",
        r.overdraw_error
    );
    // The failed query: the server's code, state and message.
    assert!(
        r.missing_table_error.contains("1146")
            && r.missing_table_error.contains("42S02")
            && r.missing_table_error.contains("no_such_table"),
        "{}",
        r.missing_table_error
    );
    // The killed connection: a sentence, then a new connection.
    assert!(
        r.killed_error.contains("closed the connection") || r.killed_error.contains("killed"),
        "{}",
        r.killed_error
    );
    assert_ne!(r.recovered_id, r.killed_id);
    assert_ne!(r.recovered_id, 0);
}

#[test]
fn wrong_credentials_and_a_stopped_server_are_clear_errors() {
    let server = server();
    let url = server.url();
    run_limited(async {
        // Real authentication: a wrong password is refused by the server.
        let wrong = url.replace(&server.password, "not-the-password");
        let err = database::connect(&wrong).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("1045") && msg.contains("Access denied"),
            "{msg}"
        );
        // A database the user may not see.
        let other = format!(
            "mysql://{}:{}@127.0.0.1:{}/mysql",
            server.user, server.password, server.port
        );
        let msg = database::connect(&other).await.unwrap_err().to_string();
        assert!(
            msg.contains("1044") && msg.contains("Access denied"),
            "{msg}"
        );
        // The right ones work.
        let pool = database::connect(&url).await.unwrap();
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(one, 1);
        pool.close().await;
    });
    // Stopped (dropped), the server is gone: connecting fails at once
    // with the refusal (a pool would retry until its acquire timeout).
    let port = server.port;
    drop(server);
    let err = run_limited(async move {
        use sqlx::Connection;
        let url = format!("mysql://weft:x@127.0.0.1:{port}/weft");
        sqlx::MySqlConnection::connect(&url).await.unwrap_err()
    });
    let msg = database::explain(&err);
    assert!(
        msg.contains("refused") || msg.contains("closed the connection"),
        "{msg}"
    );
}
