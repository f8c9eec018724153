//! The seed's "coroutine libraries" lesson, in Rust: real async libraries of
//! the ecosystem running unchanged on weft-async, because weft-async drives
//! async-io's reactor (the one the smol family is built on).
//!
//! 1. `async-fs`: write and read back a file without blocking the runtime.
//! 2. `hyper` (HTTP/1.1, through smol-hyper's I/O adapter) over `async-net`
//!    sockets: an HTTP server and 20 concurrent client requests, all on one
//!    thread, with a weft `Semaphore` capping requests in flight — the
//!    aiohttp use case. Each page's body comes from a database query.
//! 3. `sqlx`'s MySQL driver (on its smol runtime, i.e. async-io) against a
//!    real MariaDB server — the aiomysql use case: 40 tasks on one thread
//!    querying at once, a weft `Semaphore` capping connections, a
//!    transaction committed and one rolled back, a failed query's error,
//!    and a connection killed under the pool, which recovers.
//!
//! The example starts a private MariaDB server of its own (a temporary
//! data directory, socket and port; see `support/mariadb.rs`) and stops it
//! at the end. It needs Debian's `mariadb-server` package installed
//! (`apt-get install mariadb-server`); without it, it says so and fails.
//!
//! Run it: `cargo run -p weft --example coroutine_libraries`

use std::net::SocketAddr;
use std::time::Instant;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use smol_hyper::rt::FuturesIo;
use sqlx::mysql::MySqlPool;
use weft::aio;
use weft::sync::Semaphore;

#[path = "support/database.rs"]
mod database;
#[path = "support/mariadb.rs"]
mod mariadb;

/// The server's handler: answers `/page/N` with a body the database makes.
async fn handle(
    pool: MySqlPool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, sqlx::Error> {
    let body: String = sqlx::query_scalar("SELECT CONCAT('you asked for ', ?)")
        .bind(req.uri().path())
        .fetch_one(&pool)
        .await?;
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Accepts connections forever, serving each in its own weft-async task.
async fn serve(listener: async_net::TcpListener, pool: MySqlPool) {
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let pool = pool.clone();
        aio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(pool.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(FuturesIo::new(stream), service);
            if let Err(e) = conn.await {
                eprintln!("server connection error: {e}");
            }
        })
        .detach();
    }
}

/// One HTTP GET with hyper's client, returning the body as text.
async fn get(addr: SocketAddr, path: &str) -> Result<String, Box<dyn std::error::Error>> {
    let stream = async_net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(FuturesIo::new(stream)).await?;
    // The connection future drives the socket; run it beside the request.
    aio::spawn(async move {
        let _ = conn.await;
    })
    .detach();
    let req = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let res = sender.send_request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{path}: HTTP {status}").into());
    }
    Ok(String::from_utf8(body.to_vec())?)
}

async fn files() -> std::io::Result<usize> {
    let path = std::env::temp_dir().join(format!(
        "weft-coroutine-libraries-{}.txt",
        std::process::id()
    ));
    async_fs::write(&path, "written by async-fs on weft-async\n").await?;
    let text = async_fs::read_to_string(&path).await?;
    async_fs::remove_file(&path).await?;
    Ok(text.len())
}

fn main() {
    let server = match mariadb::MariaDb::start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("coroutine_libraries: cannot start a MariaDB server: {e}");
            std::process::exit(1);
        }
    };
    let url = server.url();
    aio::run(async {
        let bytes = files().await.expect("async-fs round trip");
        println!("1. async-fs: wrote and read back {bytes} bytes");

        let pool = database::connect(&url).await.expect("connect to MariaDB");
        let listener = async_net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        aio::spawn(serve(listener, pool.clone())).detach();

        let in_flight = Semaphore::new(5);
        let start = Instant::now();
        let pages = aio::join_all((0..20).map(|i| {
            let in_flight = &in_flight;
            async move {
                let _permit = in_flight.acquire_async().await; // at most 5 at once
                get(addr, &format!("/page/{i}")).await
            }
        }))
        .await;
        let elapsed = start.elapsed();
        let ok = pages.iter().filter(|p| p.is_ok()).count();
        for (i, page) in pages.iter().enumerate() {
            let body = page.as_ref().expect("every request succeeds");
            assert_eq!(body, &format!("you asked for /page/{i}"));
        }
        println!(
            "2. hyper over async-net: {ok}/20 pages, 5 in flight at a time, each body from a \
             MariaDB query, in {elapsed:.2?}"
        );
        pool.close().await;

        let r = database::demo(&url).await.expect("the database demo");
        println!(
            "3. sqlx on MariaDB: {} orders (sum {}) inserted by {} tasks on one thread, at most {} \
             at the database at once (weft Semaphore), in {:.2?}",
            r.orders,
            r.total,
            database::ORDERS,
            r.most_at_once,
            r.elapsed
        );
        println!(
            "   transaction: balances {:?} after moving 30; overdraft refused and rolled back, \
             still {:?}: {}",
            r.after_commit, r.after_rollback, r.overdraw_error
        );
        println!("   failed query: {}", r.missing_table_error);
        println!(
            "   connection {} killed from another: {}; the pool recovered (connection {})",
            r.killed_id, r.killed_error, r.recovered_id
        );
    });
    drop(server); // stops the server and removes its files
}
