//! The aiohttp use case: fetch 100 URLs concurrently, at most 10 at a time.
//!
//! A tiny HTTP server runs on the same runtime (an `async-net` listener, one
//! task per connection, each response delayed a little as a real server
//! would be), and 100 requests go to it at once through a
//! `weft_sync::Semaphore` that lets at most 10 be in flight. Everything runs
//! on one thread.
//!
//! Python:
//!
//! ```python
//! async def fetch(session, url, limit):
//!     async with limit:
//!         async with session.get(url) as resp:
//!             return await resp.text()
//!
//! async def main():
//!     limit = asyncio.Semaphore(10)
//!     async with aiohttp.ClientSession() as session:
//!         pages = await asyncio.gather(*(fetch(session, u, limit) for u in urls))
//! ```
//!
//! Run it: `cargo run -p weft --example fetch_urls`

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use weft_sync::Semaphore;

const URLS: usize = 100;
const LIMIT: usize = 10;

/// Serves `GET /page/N` with a short body, after a 20 ms "think time".
async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        weft::aio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            weft::aio::sleep(Duration::from_millis(20)).await;
            let body = format!("hello from {path}\n");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        })
        .detach();
    }
}

/// A minimal HTTP/1.1 GET: returns the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

fn main() {
    weft::aio::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let server = weft::aio::spawn(serve(listener));

        let limit = Semaphore::new(LIMIT);
        let in_flight = Cell::new(0usize);
        let most_in_flight = Cell::new(0usize);
        let start = Instant::now();
        let fetches = (0..URLS).map(|i| {
            let (limit, in_flight, most) = (&limit, &in_flight, &most_in_flight);
            async move {
                let _permit = limit.acquire_async().await;
                in_flight.set(in_flight.get() + 1);
                most.set(most.get().max(in_flight.get()));
                let page = get(addr, &format!("/page/{i}")).await;
                in_flight.set(in_flight.get() - 1);
                page
            }
        });
        let pages = weft::aio::try_join_all(fetches)
            .await
            .expect("every fetch succeeds");
        let elapsed = start.elapsed();

        assert_eq!(pages.len(), URLS);
        assert!(pages.iter().all(|(status, _)| status == "HTTP/1.1 200 OK"));
        assert_eq!(pages[42].1, "hello from /page/42\n");
        assert!(most_in_flight.get() <= LIMIT);
        println!("first page: {:?}", pages[0]);
        println!(
            "fetched {URLS} pages in {elapsed:.2?}, at most {} at a time (limit {LIMIT}); \
             one at a time would take over {:?}",
            most_in_flight.get(),
            Duration::from_millis(20) * URLS as u32
        );
        drop(server); // cancels the accept loop
    });
}
