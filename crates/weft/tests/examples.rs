//! Every example runs to completion and prints what it promises.

use std::process::Command;

/// Runs the example's binary, which `cargo test` builds next to this test
/// (target/<profile>/examples/), falling back to `cargo run`.
fn run_example(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let built = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name));
    let out = match built.filter(|p| p.exists()) {
        Some(path) => Command::new(path).output(),
        None => Command::new(env!("CARGO"))
            .args(["run", "--quiet", "-p", "weft", "--example", name])
            .output(),
    }
    .expect("the example can be started");
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
