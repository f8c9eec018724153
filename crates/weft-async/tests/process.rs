//! Child processes (`weft_async::process`, on async-process): output read
//! asynchronously while the loop runs other tasks, input written, exit
//! statuses, clear errors for programs that are not there, kill.
#![cfg(unix)]

use std::io::ErrorKind;
use std::time::Duration;

use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, StreamExt, io::BufReader};
use weft_async::process::{Command, Stdio};
use weft_async::{run, spawn, timeout};

const LIMIT: Duration = Duration::from_secs(30);

fn run_limited<T, F: std::future::Future<Output = T>>(f: F) -> T {
    run(async move {
        timeout(LIMIT, f)
            .await
            .expect("test ran past its time limit")
    })
}

#[test]
fn stdout_is_read_line_by_line_while_the_loop_runs() {
    run_limited(async {
        // The child prints a line, waits, prints another: the loop's other
        // tasks run meanwhile (a blocking read would stop them).
        let mut child = Command::new("sh")
            .args(["-c", "echo one; sleep 0.2; echo two; exit 3"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let ticks = spawn(async {
            let mut n = 0u32;
            for _ in 0..10 {
                weft_async::sleep(Duration::from_millis(10)).await;
                n += 1;
            }
            n
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().await.unwrap().unwrap(), "one");
        // The ticker finishes during the child's pause.
        assert_eq!(ticks.await.unwrap(), 10);
        assert_eq!(lines.next().await.unwrap().unwrap(), "two");
        assert!(lines.next().await.is_none());
        let status = child.status().await.unwrap();
        assert!(!status.success());
        assert_eq!(status.code(), Some(3));
    });
}

#[test]
fn stdin_is_written_and_output_captured() {
    run_limited(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // More than a pipe's buffer: the write and the read must overlap.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = spawn(async move {
            stdin.write_all(&data).await.unwrap();
            stdin.close().await.unwrap();
        });
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        writer.await.unwrap();
        assert!(out == expected, "cat gave back different bytes");
        assert!(child.status().await.unwrap().success());

        // communicate(): status, stdout and stderr at once.
        let out = Command::new("sh")
            .args(["-c", "printf out; printf err >&2; exit 1"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..], &out.stderr[..]),
            (Some(1), &b"out"[..], &b"err"[..])
        );
        // Environment and working directory reach the child.
        let out = Command::new("sh")
            .args(["-c", "printf \"$WEFT_X\"; pwd"])
            .env("WEFT_X", "x=1 ")
            .current_dir("/")
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "x=1 /\n");
    });
}

#[test]
fn a_program_that_is_not_there_is_a_clear_error() {
    run_limited(async {
        let err = Command::new("weft-no-such-program").spawn().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let msg = err.to_string();
        assert!(
            msg.contains("weft-no-such-program") && msg.contains("PATH"),
            "{msg}"
        );
        let err = Command::new("/no/such/dir/prog")
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("/no/such/dir/prog"), "{err}");
        // A file that is not executable (no x bit: refused even to root).
        let file = std::env::temp_dir().join(format!("weft-not-exec-{}", std::process::id()));
        std::fs::write(&file, b"#!/bin/sh\n").unwrap();
        let err = Command::new(&file).status().await.unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("not executable"), "{err}");
    });
}

#[test]
fn a_killed_child_reports_its_signal_and_many_children_run_at_once() {
    use std::os::unix::process::ExitStatusExt;
    run_limited(async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(child.try_status().unwrap().is_none());
        child.kill().unwrap();
        let status = child.status().await.unwrap();
        assert_eq!(status.signal(), Some(9));
        // Twenty children at once, awaited from one thread.
        let children: Vec<_> = (0..20)
            .map(|i| {
                spawn(async move {
                    let out = Command::new("sh")
                        .args(["-c", &format!("sleep 0.05; echo {i}")])
                        .output()
                        .await
                        .unwrap();
                    String::from_utf8(out.stdout)
                        .unwrap()
                        .trim()
                        .parse::<u32>()
                        .unwrap()
                })
            })
            .collect();
        let mut sum = 0;
        for c in children {
            sum += c.await.unwrap();
        }
        assert_eq!(sum, (0..20).sum::<u32>());
    });
}

#[test]
fn children_work_on_the_multi_threaded_flavour_too() {
    let rt = weft_async::multi::Runtime::builder()
        .threads(2)
        .build()
        .unwrap();
    let out = rt.block_on(async {
        weft_async::multi::timeout(LIMIT, Command::new("echo").arg("multi").output())
            .await
            .expect("test ran past its time limit")
            .unwrap()
    });
    assert_eq!(out.stdout, b"multi\n");
}
