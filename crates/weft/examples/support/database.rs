//! The `coroutine_libraries` example's database work (aiomysql's use case),
//! shared with the umbrella's `tests/mariadb.rs`: sqlx's MySQL driver on its
//! smol runtime (async-io, which weft-async drives), inside `weft::aio::run`,
//! against a real MariaDB server.

use std::cell::Cell;
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use weft::aio;
use weft::sync::Semaphore;

/// How many connections the example may hold at once (the pool's size and
/// the weft `Semaphore`'s permits).
pub const CONNECTIONS: usize = 5;
/// How many orders the example's tasks insert, one task each.
pub const ORDERS: usize = 40;

/// What [`demo`] did, for the example to print and the test to check.
#[derive(Debug)]
pub struct Report {
    /// Orders the concurrent tasks inserted (counted back by a query).
    pub orders: i64,
    /// The sum of their amounts (counted back by a query).
    pub total: i64,
    /// The most tasks that held a permit (and a connection) at once.
    pub most_at_once: usize,
    /// How long the concurrent part took (printed; never asserted).
    pub elapsed: Duration,
    /// Balances after a committed transfer of 30 from account 1 to 2.
    pub after_commit: (i64, i64),
    /// The error of a transfer that would overdraw account 1.
    pub overdraw_error: String,
    /// Balances after that transfer was rolled back.
    pub after_rollback: (i64, i64),
    /// The error of a query on a missing table.
    pub missing_table_error: String,
    /// The error of a query on a connection killed from another one.
    pub killed_error: String,
    /// The killed connection's id and the id of the one the pool gave next.
    pub killed_id: u64,
    /// The connection id the pool gave after the kill (a new connection).
    pub recovered_id: u64,
}

/// An error in a sentence: sqlx reports a connection the server closed as
/// a bare I/O error ("expected to read 4 bytes, got 0 bytes at EOF"); say
/// what it means.
pub fn explain(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(_) => {
            format!("the server closed the connection (killed, restarted or timed out): {e}")
        }
        sqlx::Error::PoolTimedOut => format!(
            "no connection could be made before the pool's acquire timeout \
             (is the server up and reachable?): {e}"
        ),
        other => other.to_string(),
    }
}

/// The pool: at most [`CONNECTIONS`], TLS off (a local test server).
pub async fn connect(url: &str) -> Result<MySqlPool, sqlx::Error> {
    let options: MySqlConnectOptions = url.parse()?;
    MySqlPoolOptions::new()
        .max_connections(CONNECTIONS as u32)
        .acquire_timeout(Duration::from_secs(20))
        .connect_with(options.ssl_mode(MySqlSslMode::Disabled))
        .await
}

async fn balances(pool: &MySqlPool) -> Result<(i64, i64), sqlx::Error> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT CAST(balance AS SIGNED) FROM accounts ORDER BY id")
            .fetch_all(pool)
            .await?;
    Ok((rows[0].0, rows[1].0))
}

/// Moves `amount` from account 1 to account 2 in one transaction: both
/// updates or neither (the `CHECK` refuses a negative balance, and the
/// dropped transaction rolls back).
async fn transfer(pool: &MySqlPool, amount: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE accounts SET balance = balance + ? WHERE id = 2")
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE accounts SET balance = balance - ? WHERE id = 1")
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The whole example: tables, many concurrent queries from one thread
/// capped by a weft `Semaphore`, a transaction committed and one rolled
/// back, a failed query, and a connection killed under the pool.
pub async fn demo(url: &str) -> Result<Report, sqlx::Error> {
    let pool = connect(url).await?;
    for ddl in [
        "DROP TABLE IF EXISTS orders, accounts",
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, \
         customer VARCHAR(40) NOT NULL, amount INT NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE accounts (id INT PRIMARY KEY, \
         balance INT NOT NULL, CONSTRAINT no_overdraft CHECK (balance >= 0)) ENGINE=InnoDB",
        "INSERT INTO accounts VALUES (1, 100), (2, 100)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }

    // 1. Many queries at once from one thread: each task inserts an order
    //    and runs a slow report query (20 ms on the server); the weft
    //    Semaphore lets CONNECTIONS of them at the database at a time.
    let permits = Semaphore::new(CONNECTIONS);
    let (now, most) = (Cell::new(0usize), Cell::new(0usize));
    let start = Instant::now();
    let results = aio::join_all((0..ORDERS).map(|i| {
        let (pool, permits, now, most) = (&pool, &permits, &now, &most);
        async move {
            let _permit = permits.acquire_async().await;
            now.set(now.get() + 1);
            most.set(most.get().max(now.get()));
            let result = async {
                sqlx::query("INSERT INTO orders (customer, amount) VALUES (?, ?)")
                    .bind(format!("customer-{}", i % 7))
                    .bind(i as i64)
                    .execute(pool)
                    .await?;
                sqlx::query("SELECT SLEEP(0.02), COUNT(*) FROM orders")
                    .execute(pool)
                    .await
            }
            .await;
            now.set(now.get() - 1);
            result
        }
    }))
    .await;
    let elapsed = start.elapsed();
    for r in results {
        r?;
    }
    let (orders, total): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS SIGNED) FROM orders")
            .fetch_one(&pool)
            .await?;

    // 2. A transaction, committed; then one the CHECK refuses, rolled back.
    transfer(&pool, 30).await?;
    let after_commit = balances(&pool).await?;
    let overdraw_error = match transfer(&pool, 1_000).await {
        Ok(()) => panic!("overdrawing account 1 succeeded"),
        Err(e) => e.to_string(),
    };
    let after_rollback = balances(&pool).await?;

    // 3. A query that fails: the server's error, as a value.
    let missing_table_error = match sqlx::query("SELECT * FROM no_such_table")
        .fetch_all(&pool)
        .await
    {
        Ok(_) => panic!("a query on a missing table succeeded"),
        Err(e) => e.to_string(),
    };

    // 4. A connection killed from another one (as a DBA or a failover
    //    would): its next query fails clearly, and the pool replaces it.
    let mut victim = pool.acquire().await?;
    let killed_id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(&mut *victim)
        .await?;
    // KILL takes no bind parameter; the id is a number the server gave.
    sqlx::query(sqlx::AssertSqlSafe(format!("KILL {killed_id}")))
        .execute(&pool)
        .await?;
    let killed_error = match sqlx::query("SELECT 1").execute(&mut *victim).await {
        Ok(_) => panic!("a query on a killed connection succeeded"),
        Err(e) => explain(&e),
    };
    drop(victim); // back to the pool, which tests it and throws it away
    // Every connection the pool gives from now on works.
    let mut recovered_id = 0;
    for _ in 0..CONNECTIONS + 1 {
        let mut conn = pool.acquire().await?;
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(&mut *conn)
            .await?;
        if id != killed_id {
            recovered_id = id;
        } else {
            panic!("the pool handed out the killed connection {killed_id} again");
        }
    }
    pool.close().await;

    Ok(Report {
        orders,
        total,
        most_at_once: most.get(),
        elapsed,
        after_commit,
        overdraw_error,
        after_rollback,
        missing_table_error,
        killed_error,
        killed_id,
        recovered_id,
    })
}
