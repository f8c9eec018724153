//! Signals as awaitable events (`weft_async::signal`, on async-signal).
//! A test binary of its own: every test registers its signal before the
//! signal is raised, so the default action (ending the process) never
//! happens, and no other suite shares the process.
#![cfg(unix)]

use std::time::Duration;

use futures_lite::StreamExt;
use weft_async::process::Command;
use weft_async::signal::{Signal, Signals, ctrl_c};
use weft_async::{run, spawn, timeout, yield_now};

const LIMIT: Duration = Duration::from_secs(30);

/// Sends `signal` to this process from a child (`kill`, as another program
/// would), and waits for the child.
async fn raise(signal: &str) {
    let script = format!("kill -{signal} {}", std::process::id());
    let status = Command::new("sh")
        .args(["-c", &script])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill -{signal} failed: {status}");
}

#[test]
fn sigterm_to_self_is_delivered_as_an_event() {
    run(async {
        timeout(LIMIT, async {
            let mut signals = Signals::new([Signal::Term, Signal::Hup]).unwrap();
            // The loop runs other tasks while the stream waits.
            let waiter = spawn(async move {
                let first = signals.next().await.unwrap().unwrap();
                let second = signals.next().await.unwrap().unwrap();
                (first, second)
            });
            yield_now().await;
            raise("TERM").await;
            // Let the first be taken before the second is sent, so the
            // two are not merged into one.
            weft_async::sleep(Duration::from_millis(50)).await;
            raise("HUP").await;
            assert_eq!(waiter.await.unwrap(), (Signal::Term, Signal::Hup));
        })
        .await
        .expect("the signals never arrived");
    });
}

#[test]
fn ctrl_c_waits_for_sigint() {
    run(async {
        timeout(LIMIT, async {
            let waiter = spawn(ctrl_c());
            // The waiter registers on its first poll, here.
            yield_now().await;
            assert!(!waiter.is_finished(), "ctrl_c returned before any SIGINT");
            raise("INT").await;
            waiter.await.unwrap().unwrap();
        })
        .await
        .expect("SIGINT never arrived");
    });
}
