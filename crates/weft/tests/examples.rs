//! Every example runs to completion and prints what it promises.

use std::process::Command;

/// Builds (if needed) and runs an example with the same cargo, profile and
/// target directory as this test, so a stale binary is never run.
fn run_example(name: &str) -> String {
    run_example_with(name, &[])
}

fn run_example_with(name: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet", "-p", "weft", "--example", name]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args);
    let out = cmd.output().expect("cargo can run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn threads_example_counts_every_byte() {
    let out = run_example("threads");
    assert!(out.contains("sequential: 8 sites, 20800 bytes"), "{out}");
    assert!(out.contains("threads:    8 sites, 20800 bytes"), "{out}");
    assert_eq!(out.matches("  read ").count(), 8, "{out}");
}

#[test]
fn race_conditions_example_fixes_every_race() {
    let out = run_example("race_conditions");
    assert!(out.contains("with a Lock:    400000"), "{out}");
    assert!(out.contains("Condition sum 5050, Queue sum 5050"), "{out}");
    assert!(
        out.contains("at most") && out.contains("(limit 3)"),
        "{out}"
    );
    assert!(out.contains("balances") && out.contains("= 20000"), "{out}");
}

#[test]
fn tour_runs_quick_and_reports_every_model() {
    let out = run_example_with("tour", &["--quick"]);
    for model in [
        "sequential",
        "threads (weft-pool)",
        "processes (weft-process)",
        "async (weft-async)",
    ] {
        assert_eq!(
            out.matches(model).count(),
            2,
            "{model} should appear once per workload:\n{out}"
        );
    }
    assert!(out.contains("17984 primes below 200000"), "{out}");
    assert!(out.contains("What it means"), "{out}");
}

#[test]
fn tour_json_is_machine_readable() {
    let out = run_example_with("tour", &["--quick", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["results"].as_array().unwrap().len(), 8);
    assert_eq!(v["cpu"]["primes"], 17984);
}

#[test]
fn tour_rejects_bad_flags_with_usage() {
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "-p",
            "weft",
            "--example",
            "tour",
            "--",
            "--requests",
            "zero",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--requests needs a positive whole number, got 'zero'"),
        "{err}"
    );
    assert!(err.contains("usage: tour"), "{err}");
}

#[test]
fn coroutine_libraries_run_on_weft_async() {
    let out = run_example("coroutine_libraries");
    assert!(
        out.contains("1. async-fs: wrote and read back 34 bytes"),
        "{out}"
    );
    assert!(
        out.contains("2. hyper over async-net: 20/20 pages"),
        "{out}"
    );
}

#[test]
fn asyncio_example_runs_coroutines_concurrently() {
    let out = run_example("asyncio");
    for line in [
        "A: start",
        "B: start",
        "C: start",
        "B: done after 100ms",
        "C: done after 200ms",
        "A: done after 300ms",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // Concurrent: B finishes before A although A started first.
    assert!(
        out.find("B: done").unwrap() < out.find("A: done").unwrap(),
        "{out}"
    );
    assert!(out.contains(r#"["A data", "B data", "C data"]"#), "{out}");
}

#[test]
fn fetch_urls_example_respects_its_limit() {
    let out = run_example("fetch_urls");
    assert!(out.contains("fetched 100 pages"), "{out}");
    assert!(
        out.contains("at most 10 at a time (limit 10)") || out.contains("(limit 10)"),
        "{out}"
    );
}

#[test]
fn multiprocessing_example_matches_sequential() {
    let out = run_example("multiprocessing");
    let expected = if cfg!(debug_assertions) {
        "primes below 400000: 33860"
    } else {
        "primes below 4000000: 283146"
    };
    assert!(out.contains(expected), "{out}");
    assert!(out.contains(" processes: "), "{out}");
}
