//! Every example runs to completion and prints what it promises.

use std::process::Command;

/// Builds (if needed) and runs an example with the same cargo, profile and
/// target directory as this test, so a stale binary is never run.
fn run_example(name: &str) -> String {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet", "-p", "weft", "--example", name]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
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
