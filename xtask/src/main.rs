//! weft's project commands: `cargo xtask <command>`.
//!
//! - `test-all`: everything CI checks, in order, stopping at the first failure
//!   (including the fast reliability checks: the loom models and a short soak).
//! - `bench [--quick] [CRATE...]`: criterion benches, then `target/weft-bench/results.json`,
//!   the named crates' sections of `docs/benchmarks.md` (medians, intervals, ratios,
//!   parity, goals) and their ratio charts, `docs/benchmarks/<crate>.svg` (`report.rs`).
//! - `miri [CRATE...]`: Miri over the crates that contain `unsafe`.
//! - `loom [CRATE...]`: the loom models (`RUSTFLAGS="--cfg loom"`).
//! - `tsan [CRATE...]`: the test suites under ThreadSanitizer (nightly, build-std).
//! - `soak [--seconds N | --minutes N]`: every engine under sustained mixed load.
//! - `fuzz [--seconds N] [TARGET...]`: cargo-fuzz over what weft-process decodes.
//! - `doc`: the API docs, with warnings as errors.
//! - `services [--bench]`: install the real servers the tests (and benches) run.
//!
//! What each reliability command guarantees: `docs/reliability.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

mod report;
mod scaling;
mod services;

use report::Row;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test-all                 fmt check, clippy -D warnings, every test and doc test,
                           every example built, docs with -D warnings, the loom
                           models (LOOM_MAX_PREEMPTIONS=2), weft-async's socket
                           tests on the portable (async-io) path, the macOS build
                           (cargo check --target x86_64-apple-darwin), a 10-second soak
  bench [--quick] [CRATE]  criterion benches of the named crates (all when none),
                           then target/weft-bench/results.json and docs/benchmarks.md
  bench --scaling [--threads 1,2,4,8,16] [--quick] [--report]
                           weft-pool vs rayon and chili at each thread count (default:
                           1,2,4,8,16 up to this machine's cores): docs/benchmarks.md's
                           scaling section and docs/benchmarks/scaling.svg
                           (--report: redraw them from docs/benchmarks.json)
  miri [CRATE...]          Miri over the crates with `unsafe` (installs nightly miri)
  loom [CRATE...]          loom models, RUSTFLAGS=\"--cfg loom\"
  tsan [CRATE...]          test suites under ThreadSanitizer (nightly, build-std);
                           default: weft-sync weft-pool weft-async
  soak [--seconds N | --minutes N]
                           every engine under sustained mixed load, invariants
                           checked (release; default: --minutes 1)
  fuzz [--seconds N] [TARGET...]
                           cargo-fuzz targets of crates/weft-process/fuzz, N seconds
                           each (default 60; installs cargo-fuzz if missing)
  doc                      API docs with RUSTDOCFLAGS=\"-D warnings\"
  services [--bench]       install the real servers the tests use where missing
                           (nats-server, mariadb-server; --bench: also redis-server
                           and Celery, the weft-cluster bench's peers, and loky,
                           a peer of the weft-process bench)

docs/reliability.md says what each reliability command guarantees.
";

/// Bench targets that need a cargo feature: (crate, bench, feature).
const FEATURE_BENCHES: &[(&str, &str, &str)] = &[("weft-sync", "deadlock", "deadlock-detection")];

/// The library crates, in dependency order.
const CRATES: &[&str] = &[
    "weft-sync",
    "weft-pool",
    "weft-async",
    "weft-process",
    "weft-cluster",
    "weft",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root).expect("cannot enter the workspace root");
    let result = match args.first().map(String::as_str) {
        Some("test-all") if args.len() == 1 => test_all(&root),
        Some("bench") => bench(&root, &args[1..]),
        Some("miri") => miri(&root, &args[1..]),
        Some("loom") => loom(&root, &args[1..]),
        Some("tsan") => tsan(&root, &args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("fuzz") => fuzz(&root, &args[1..]),
        Some("doc") if args.len() == 1 => doc(),
        Some("services") if args.len() == 1 => services::ensure(services::FOR_TESTS),
        Some("services") if args.len() == 2 && args[1] == "--bench" => {
            services::ensure(services::FOR_TESTS)
                .and_then(|()| services::ensure(services::FOR_CLUSTER_BENCH))
                .and_then(|()| services::ensure(services::FOR_PROCESS_BENCH))
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("\nxtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// One named step: a command line, run with inherited output.
struct Step<'a> {
    name: &'a str,
    program: &'a str,
    args: Vec<String>,
    env: Vec<(&'a str, String)>,
    dir: Option<PathBuf>,
}

impl<'a> Step<'a> {
    fn new(name: &'a str, program: &'a str, args: &[&str]) -> Self {
        Step {
            name,
            program,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            dir: None,
        }
    }

    /// Runs the command in `dir` instead of the workspace root.
    fn dir(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    fn env(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    fn run(&self) -> Result<(), String> {
        let env: String = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\" "))
            .collect();
        let dir = self
            .dir
            .as_ref()
            .map(|d| format!("(in {}) ", d.display()))
            .unwrap_or_default();
        println!(
            "\n==> [{}] {dir}{env}{} {}",
            self.name,
            self.program,
            self.args.join(" ")
        );
        let start = Instant::now();
        let mut command = Command::new(self.program);
        if let Some(d) = &self.dir {
            command.current_dir(d);
        }
        let status = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .status()
            .map_err(|e| format!("step '{}' could not start {}: {e}", self.name, self.program))?;
        println!(
            "==> [{}] {} in {:.1?}",
            self.name,
            if status.success() { "ok" } else { "FAILED" },
            start.elapsed()
        );
        if status.success() {
            Ok(())
        } else {
            Err(format!("step '{}' failed ({status})", self.name))
        }
    }
}

fn cargo() -> &'static str {
    "cargo"
}

fn test_all(root: &Path) -> Result<(), String> {
    let start = Instant::now();
    // The integration tests run real servers (NATS, MariaDB): install the
    // programs first where they are missing.
    println!("\n==> [services]");
    services::ensure(services::FOR_TESTS)?;
    let mut steps = vec![
        Step::new("fmt", cargo(), &["fmt", "--all", "--", "--check"]),
        Step::new(
            "clippy",
            cargo(),
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // Unit, integration and example tests; examples are built here too.
        // Benches are not run as tests (criterion would run each once, which
        // is slow in debug): clippy above already compiled them.
        Step::new(
            "test",
            cargo(),
            &[
                "test",
                "--workspace",
                "--lib",
                "--bins",
                "--tests",
                "--examples",
            ],
        ),
        // The umbrella's `cluster` feature is off by default: its example
        // is checked (and built) here.
        Step::new(
            "cluster-example",
            cargo(),
            &[
                "clippy",
                "-p",
                "weft",
                "--features",
                "cluster",
                "--example",
                "cluster",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::new("doctest", cargo(), &["test", "--workspace", "--doc"]),
        Step::new("doc", cargo(), &["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    ];
    // The fast parts of the reliability campaign (docs/reliability.md):
    // every loom model with at most 2 preemptions (its own `--cfg loom`
    // build, in <target>/loom), and a 10-second soak (a release build).
    let crates = pick_crates(root, &[], |dir| dir.join("tests/loom.rs").exists())?;
    steps.extend(crates.iter().map(|c| loom_step(root, c, "2")));
    steps.push(portable_io_step(root));
    if let Some(step) = macos_check_step(root) {
        steps.push(step);
    }
    steps.push(soak_step(&["--seconds", "10"]));
    for step in &steps {
        step.run()?;
    }
    println!(
        "\ntest-all: all {} steps passed in {:.1?}",
        steps.len(),
        start.elapsed()
    );
    Ok(())
}

fn doc() -> Result<(), String> {
    Step::new("doc", cargo(), &["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()
}

fn pick_crates(
    root: &Path,
    names: &[String],
    filter: impl Fn(&Path) -> bool,
) -> Result<Vec<String>, String> {
    for n in names {
        if !CRATES.contains(&n.as_str()) {
            return Err(format!(
                "unknown crate '{n}': expected one of {}",
                CRATES.join(", ")
            ));
        }
    }
    let chosen: Vec<&str> = if names.is_empty() {
        CRATES.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    Ok(chosen
        .into_iter()
        .filter(|c| filter(&root.join("crates").join(c)))
        .map(str::to_owned)
        .collect())
}

/// Whether any `.rs` file under `dir` contains the `unsafe` keyword in code.
fn has_unsafe(dir: &Path) -> bool {
    fn walk(dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else if p.extension().is_some_and(|x| x == "rs") {
                std::fs::read_to_string(&p).is_ok_and(|s| {
                    s.lines().any(|l| {
                        let code = l.split("//").next().unwrap_or("");
                        code.contains("unsafe ") || code.contains("unsafe{")
                    })
                })
            } else {
                false
            }
        })
    }
    walk(&dir.join("src"))
}

/// Crates Miri cannot run, and why (printed when they are skipped).
const MIRI_CANNOT_RUN: &[(&str, &str)] = &[
    (
        "weft-async",
        "every test drives async-io's reactor (timerfd_create, epoll), foreign calls \
         Miri does not support; the crate has no unsafe code (#![forbid(unsafe_code)])",
    ),
    (
        "weft-process",
        "its tests start worker processes and talk over sockets (posix_spawn, \
         ipc-channel), which Miri cannot run; its unsafe is libc calls (sys.rs), \
         covered by the tests and the fuzz targets instead",
    ),
];

/// Extra Miri flags a crate needs, and why.
/// weft-pool: crossbeam-epoch (under crossbeam-deque) trips Stacked Borrows in
/// its own code (`Local::element_of`), so the pool runs under Tree Borrows;
/// its global pool's threads are never joined, so leaks are not errors.
const MIRI_EXTRA_FLAGS: &[(&str, &str)] = &[(
    "weft-pool",
    "-Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks",
)];

fn miri(root: &Path, args: &[String]) -> Result<(), String> {
    let crates = pick_crates(root, args, has_unsafe)?;
    for (c, why) in MIRI_CANNOT_RUN {
        if args.is_empty() || args.iter().any(|a| a == c) {
            println!("miri: skipping {c}: {why}");
        }
    }
    let crates: Vec<String> = crates
        .into_iter()
        .filter(|c| !MIRI_CANNOT_RUN.iter().any(|(n, _)| n == c))
        .collect();
    if crates.is_empty() {
        println!("miri: no selected crate contains `unsafe`");
        return Ok(());
    }
    Step::new(
        "miri-install",
        "rustup",
        &[
            "component",
            "add",
            "miri",
            "rust-src",
            "--toolchain",
            "nightly",
        ],
    )
    .run()?;
    Step::new("miri-setup", cargo(), &["+nightly", "miri", "setup"]).run()?;
    for c in &crates {
        // Each crate decides which of its tests suit Miri (`cfg(miri)` makes
        // the heavy ones smaller or skips those that need real time or
        // foreign calls Miri cannot run).
        let extra = MIRI_EXTRA_FLAGS
            .iter()
            .find(|(n, _)| n == c)
            .map_or("", |(_, f)| f);
        // No backtraces: capturing one is slow under Miri, and tests that
        // panic on purpose would spend minutes printing them.
        Step::new("miri", cargo(), &["+nightly", "miri", "test", "-p", c])
            .env("RUST_BACKTRACE", "0")
            .env(
                "MIRIFLAGS",
                format!("-Zmiri-disable-isolation -Zmiri-many-seeds=0..4 {extra}")
                    .trim()
                    .to_owned(),
            )
            .run()?;
    }
    Ok(())
}

fn loom(root: &Path, args: &[String]) -> Result<(), String> {
    let crates = pick_crates(root, args, |dir| dir.join("tests/loom.rs").exists())?;
    if crates.is_empty() {
        println!("loom: no selected crate has tests/loom.rs");
        return Ok(());
    }
    let preemptions = std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "2".into());
    for c in &crates {
        loom_step(root, c, &preemptions).run()?;
    }
    Ok(())
}

/// The loom models of `krate`, in release, in `<target>/loom`.
fn loom_step<'a>(root: &Path, krate: &'a str, preemptions: &str) -> Step<'a> {
    Step::new(
        "loom",
        cargo(),
        &["test", "-p", krate, "--test", "loom", "--release"],
    )
    .env("RUSTFLAGS", "--cfg loom")
    .env(
        "CARGO_TARGET_DIR",
        target_dir(root).join("loom").display().to_string(),
    )
    .env("LOOM_MAX_PREEMPTIONS", preemptions)
}

/// weft-async's socket tests on the `async-io` path that platforms without
/// its epoll reactor take (`--cfg weft_async_portable_io`, in
/// `<target>/portable-io`), so that path is checked on Linux too.
fn portable_io_step(root: &Path) -> Step<'static> {
    Step::new(
        "net (portable)",
        cargo(),
        &["test", "-p", "weft-async", "--test", "net"],
    )
    .env("RUSTFLAGS", "--cfg weft_async_portable_io")
    .env(
        "CARGO_TARGET_DIR",
        target_dir(root).join("portable-io").display().to_string(),
    )
}

/// The target of the portability check: weft is tested on Linux and must
/// also build for macOS (the Linux-only parts are behind `cfg`).
const MACOS_TARGET: &str = "x86_64-apple-darwin";

/// The crates checked for macOS: all but weft-cluster, whose TLS stack
/// (ring) needs a C cross-compiler for the target.
const MACOS_CRATES: &[&str] = &[
    "weft-sync",
    "weft-pool",
    "weft-async",
    "weft-process",
    "weft",
];

/// `cargo check --target x86_64-apple-darwin` of [`MACOS_CRATES`], warnings
/// as errors, in `<target>/macos`. The target's standard library comes
/// from `rustup target add`; where that cannot be fetched, nightly's
/// `-Zbuild-std` builds it from the local `rust-src`. With neither, the
/// step is skipped with a message saying what to install.
fn macos_check_step(root: &Path) -> Option<Step<'static>> {
    let mut args: Vec<&str> = vec!["check", "--target", MACOS_TARGET];
    for c in MACOS_CRATES {
        args.extend(["-p", c]);
    }
    let dir = target_dir(root).join("macos").display().to_string();
    let installed = |toolchain: &str, what: &str, name: &str| {
        Command::new("rustup")
            .args([what, "list", "--installed", "--toolchain", toolchain])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == name)
            })
    };
    let stable_target = installed("stable", "target", MACOS_TARGET) || {
        println!("\n==> [macos] rustup target add {MACOS_TARGET}");
        Command::new("rustup")
            .args(["target", "add", MACOS_TARGET])
            .status()
            .is_ok_and(|s| s.success())
    };
    if stable_target {
        return Some(
            Step::new("macos", cargo(), &args)
                .env("RUSTFLAGS", "-D warnings")
                .env("CARGO_TARGET_DIR", dir),
        );
    }
    if installed("nightly", "component", "rust-src") {
        let mut nightly = vec!["+nightly", "check", "-Zbuild-std=std"];
        nightly.extend(&args[1..]);
        return Some(
            Step::new("macos", cargo(), &nightly)
                .env("RUSTFLAGS", "-D warnings")
                .env("CARGO_TARGET_DIR", dir),
        );
    }
    println!(
        "\n==> [macos] SKIPPED: neither `rustup target add {MACOS_TARGET}` nor a nightly \
         toolchain with rust-src is available here; install one to check the macOS build"
    );
    None
}

/// The crates `tsan` runs by default: those whose tests are all in-process.
const TSAN_CRATES: &[&str] = &["weft-sync", "weft-pool", "weft-async"];

/// ThreadSanitizer over the test suites of the named crates (default:
/// [`TSAN_CRATES`]), on nightly with the standard library rebuilt
/// instrumented, in `<target>/tsan`. Known false positives are suppressed
/// by `xtask/tsan-suppressions.txt` (each entry says why).
fn tsan(root: &Path, args: &[String]) -> Result<(), String> {
    let names: Vec<String> = if args.is_empty() {
        TSAN_CRATES.iter().map(|s| s.to_string()).collect()
    } else {
        args.to_vec()
    };
    let crates = pick_crates(root, &names, |_| true)?;
    Step::new(
        "tsan-install",
        "rustup",
        &["component", "add", "rust-src", "--toolchain", "nightly"],
    )
    .run()?;
    let host = nightly_host()?;
    let suppressions = root.join("xtask/tsan-suppressions.txt");
    for c in &crates {
        Step::new(
            "tsan",
            cargo(),
            &[
                "+nightly",
                "test",
                "-Zbuild-std",
                "--target",
                &host,
                "-p",
                c,
                "--lib",
                "--tests",
            ],
        )
        .env("RUSTFLAGS", "-Zsanitizer=thread")
        .env(
            "CARGO_TARGET_DIR",
            target_dir(root).join("tsan").display().to_string(),
        )
        .env(
            "TSAN_OPTIONS",
            format!(
                "suppressions={} second_deadlock_stack=1",
                suppressions.display()
            ),
        )
        // Sanitized tests run 5-15x slower: two test threads keep their
        // own timeouts meaningful on a small machine.
        .env("RUST_TEST_THREADS", "2")
        .run()?;
    }
    Ok(())
}

/// The nightly toolchain's host triple (`-Zbuild-std` needs `--target`).
fn nightly_host() -> Result<String, String> {
    let out = Command::new("rustc")
        .args(["+nightly", "-vV"])
        .output()
        .map_err(|e| format!("cannot run rustc +nightly: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc +nightly -vV printed no host triple (is nightly installed?)".into())
}

/// `soak [--seconds N | --minutes N]`: the soak example, in release.
fn soak(args: &[String]) -> Result<(), String> {
    let args: Vec<&str> = match args {
        [] => vec!["--minutes", "1"],
        [flag, n]
            if (flag == "--seconds" || flag == "--minutes")
                && n.parse::<u64>().is_ok_and(|n| n > 0) =>
        {
            vec![flag.as_str(), n.as_str()]
        }
        _ => {
            return Err(format!(
                "soak takes --seconds N or --minutes N (N > 0)\n{USAGE}"
            ));
        }
    };
    soak_step(&args).run()
}

/// `crates/weft/examples/soak.rs` in release, with `args`.
fn soak_step<'a>(args: &[&str]) -> Step<'a> {
    let mut all = vec!["run", "--release", "-p", "weft", "--example", "soak", "--"];
    all.extend_from_slice(args);
    Step::new("soak", cargo(), &all)
}

/// `fuzz [--seconds N] [TARGET...]`: each cargo-fuzz target of
/// `crates/weft-process/fuzz` for N seconds (default 60), on nightly, in
/// `<target>/fuzz`. Installs cargo-fuzz from crates.io if it is missing.
fn fuzz(root: &Path, args: &[String]) -> Result<(), String> {
    let mut seconds = "60".to_string();
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seconds" {
            match it.next() {
                Some(n) if n.parse::<u64>().is_ok_and(|n| n > 0) => seconds = n.clone(),
                _ => return Err(format!("--seconds needs a positive number\n{USAGE}")),
            }
        } else if a.starts_with('-') {
            return Err(format!("unknown flag '{a}'\n{USAGE}"));
        } else {
            names.push(a.clone());
        }
    }
    let krate = root.join("crates/weft-process");
    let mut targets: Vec<String> = std::fs::read_dir(krate.join("fuzz/fuzz_targets"))
        .map_err(|e| format!("cannot list crates/weft-process/fuzz/fuzz_targets: {e}"))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    targets.sort();
    if let Some(bad) = names.iter().find(|n| !targets.contains(n)) {
        return Err(format!(
            "unknown fuzz target '{bad}': expected one of {}",
            targets.join(", ")
        ));
    }
    if !names.is_empty() {
        targets = names;
    }
    let installed = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        Step::new(
            "fuzz-install",
            cargo(),
            &["install", "cargo-fuzz", "--locked"],
        )
        .run()?;
    }
    let target = target_dir(root).join("fuzz").display().to_string();
    for t in &targets {
        Step::new(
            "fuzz",
            cargo(),
            &[
                "+nightly",
                "fuzz",
                "run",
                t,
                "--",
                &format!("-max_total_time={seconds}"),
                // A unit that runs this long is a hang: fail on it.
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ],
        )
        .dir(krate.clone())
        .env("CARGO_TARGET_DIR", target.clone())
        .run()?;
    }
    Ok(())
}

fn bench(root: &Path, args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--scaling") {
        return bench_scaling(root, args, quick);
    }
    if args.iter().any(|a| a == "--threads") {
        return Err("--threads goes with --scaling".into());
    }
    let names: Vec<String> = args.iter().filter(|a| *a != "--quick").cloned().collect();
    if let Some(flag) = names.iter().find(|a| a.starts_with('-')) {
        return Err(format!("unknown flag '{flag}'\n{USAGE}"));
    }
    let crates = pick_crates(root, &names, |dir| dir.join("benches").is_dir())?;
    if crates.is_empty() {
        return Err("none of the selected crates has benches".into());
    }
    let target = target_dir(root);
    let mut rows: Vec<(String, Row)> = Vec::new(); // crate, row
    // The 1-minute load average as each crate's run started: other work on
    // the machine (a second benchmark, a build) shows here, and in the doc.
    let mut load: BTreeMap<String, String> = BTreeMap::new();
    if crates.iter().any(|c| c == "weft-cluster") {
        // Its peer is Celery on a Redis broker, both real.
        services::ensure(services::FOR_TESTS)?;
        services::ensure(services::FOR_CLUSTER_BENCH)?;
    }
    if crates.iter().any(|c| c == "weft-process") {
        // Its Python peers include loky, from PyPI.
        services::ensure(services::FOR_PROCESS_BENCH)?;
    }
    for c in &crates {
        let started = SystemTime::now();
        load.insert(c.clone(), load_average());
        let criterion_args: &[&str] = if quick {
            &[
                "--warm-up-time",
                "0.5",
                "--measurement-time",
                "1.5",
                "--sample-size",
                "10",
            ]
        } else {
            &[]
        };
        // Each crate's estimates go to a directory of its own run
        // (CRITERION_HOME), so a bench run at the same time by anything
        // else (a plain `cargo bench`, another crate) never lands in this
        // crate's rows.
        let criterion_dir = target.join("weft-bench/criterion").join(c);
        let home = criterion_dir.to_string_lossy().into_owned();
        let mut cargs = vec!["bench", "-p", c.as_str(), "--benches", "--"];
        cargs.extend(criterion_args);
        Step::new("bench", cargo(), &cargs)
            .env("CRITERION_HOME", home.clone())
            .run()?;
        // Benches that need a feature (so the main run measures the default
        // build) run as their own step.
        for (krate, bench, feature) in FEATURE_BENCHES {
            if krate == c {
                let mut fargs = vec![
                    "bench",
                    "-p",
                    krate,
                    "--features",
                    feature,
                    "--bench",
                    bench,
                    "--",
                ];
                fargs.extend(criterion_args);
                Step::new("bench", cargo(), &fargs)
                    .env("CRITERION_HOME", home.clone())
                    .run()?;
            }
        }
        for r in report::read_criterion(&criterion_dir, started) {
            rows.push((c.clone(), r));
        }
        // Rows a bench measured itself (percentiles, which criterion does
        // not give), written during this run to weft-bench/extra/<crate>.json.
        let extra = target.join("weft-bench/extra").join(format!("{c}.json"));
        let fresh = std::fs::metadata(&extra)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= started);
        if let Some(Value::Array(extra)) = fresh.then(|| report::read_json(&extra)).flatten() {
            rows.extend(
                extra
                    .iter()
                    .filter_map(Row::from_json)
                    .map(|r| (c.clone(), r)),
            );
        }
        for r in python_peers(root, c, quick)? {
            rows.push((c.clone(), r));
        }
    }
    if rows.is_empty() {
        return Err("the benches ran but criterion wrote no estimates".into());
    }
    // This run's figures, as the issue specifies them.
    let out_dir = target.join("weft-bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let results: Vec<Value> = rows.iter().map(|(_, r)| r.to_json()).collect();
    let results_path = out_dir.join("results.json");
    write(
        &results_path,
        &serde_json::to_string_pretty(&results).unwrap(),
    )?;
    println!(
        "\nbench: wrote {} rows to {}",
        results.len(),
        results_path.display()
    );

    // Merge into the committed record (replacing the crates run now) and
    // regenerate the table.
    let record_path = root.join("docs/benchmarks.json");
    let mut record: BTreeMap<String, Value> = std::fs::read_to_string(&record_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let machine = machine_description();
    let command = format!(
        "cargo xtask bench{}{}",
        if quick { " --quick" } else { "" },
        names.iter().map(|n| format!(" {n}")).collect::<String>()
    );
    for c in &crates {
        let crate_rows: Vec<Value> = rows
            .iter()
            .filter(|(rc, _)| rc == c)
            .map(|(_, r)| r.to_json())
            .collect();
        record.insert(
            c.clone(),
            json!({
                "machine": machine,
                "command": command,
                "date": today(),
                "load": load[c],
                "rows": crate_rows,
            }),
        );
    }
    write(
        &record_path,
        &(serde_json::to_string_pretty(&record).unwrap() + "\n"),
    )?;
    // The pictures and the tables: only the sections of the crates run now
    // are rewritten; the others stay as they are in the file.
    let charts = root.join("docs/benchmarks");
    std::fs::create_dir_all(&charts).map_err(|e| e.to_string())?;
    let mut fresh = BTreeMap::new();
    for c in &crates {
        let svg = charts.join(format!("{c}.svg"));
        let chart =
            report::ratio_chart(&svg, c, &record[c])?.then(|| format!("benchmarks/{c}.svg"));
        // Hook for the pool's scaling curves (`--scaling`): drawn the same
        // way into docs/benchmarks/, embedded in this crate's section.
        fresh.insert(
            c.clone(),
            report::render_section(c, &record[c], chart.as_deref()),
        );
    }
    let md_path = root.join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&md_path).unwrap_or_default();
    let md = splice(root, &old, &fresh, &record);
    write(&md_path, &md)?;
    println!("bench: regenerated {}", md_path.display());
    for c in &crates {
        print!("{}", fresh[c]);
    }
    Ok(())
}

/// The sections of `docs/benchmarks.md`, in order: one per crate, then the
/// pool's scaling curves.
fn sections() -> Vec<&'static str> {
    CRATES.iter().copied().chain(["scaling"]).collect()
}

/// `old` with the sections in `fresh` rewritten; a section in the record
/// but not in the file is rendered from the record.
fn splice(
    root: &Path,
    old: &str,
    fresh: &BTreeMap<String, String>,
    record: &BTreeMap<String, Value>,
) -> String {
    report::splice_sections(old, fresh, &sections(), |c| {
        let entry = record.get(c)?;
        if c == "scaling" {
            let chart = root
                .join("docs/benchmarks/scaling.svg")
                .exists()
                .then_some("benchmarks/scaling.svg");
            return Some(scaling::render(entry, chart));
        }
        let chart = format!("benchmarks/{c}.svg");
        let chart = root.join("docs").join(&chart).exists().then_some(chart);
        Some(report::render_section(c, entry, chart.as_deref()))
    })
}

/// `cargo xtask bench --scaling [--threads 1,2,4] [--quick]`: weft-pool's
/// scaling workloads at each thread count (see `scaling.rs`).
fn bench_scaling(root: &Path, args: &[String], quick: bool) -> Result<(), String> {
    let mut wanted = None;
    let mut report_only = false;
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--scaling" | "--quick" => {}
            "--report" => report_only = true,
            "--threads" => {
                let list = rest
                    .next()
                    .ok_or("--threads needs a list, e.g. --threads 1,2,4")?;
                wanted = Some(scaling::parse_threads(list)?);
            }
            other => {
                return Err(format!(
                    "--scaling runs weft-pool against rayon and chili only; unexpected '{other}'"
                ));
            }
        }
    }
    if report_only {
        // Redraw the section and the curves from the record, measuring
        // nothing.
        let record_path = root.join("docs/benchmarks.json");
        let record: BTreeMap<String, Value> = std::fs::read_to_string(&record_path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let entry = record
            .get("scaling")
            .ok_or("bench --scaling --report: docs/benchmarks.json has no scaling run yet")?;
        return write_scaling(root, entry, &record);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (threads, skipped) = scaling::plan(wanted, cores);
    if !skipped.is_empty() {
        println!(
            "bench --scaling: this machine has {cores} cores; not running {:?} threads \
             (more threads than cores measures time slicing; --threads forces them)",
            skipped
        );
    }
    let target = target_dir(root);
    let filter = scaling::filter();
    let mut runs = Vec::new();
    for &n in &threads {
        let dir = target.join("weft-bench/scaling").join(n.to_string());
        let started = SystemTime::now();
        let load = load_average();
        let mut cargs = vec![
            "bench",
            "-p",
            "weft-pool",
            "--benches",
            "--",
            filter.as_str(),
        ];
        if quick {
            cargs.extend(["--warm-up-time", "0.5", "--measurement-time", "1.5"]);
        }
        Step::new("bench-scaling", cargo(), &cargs)
            .env("WEFT_BENCH_THREADS", n.to_string())
            .env("CRITERION_HOME", dir.to_string_lossy().into_owned())
            .run()?;
        let rows = scaling::read(&dir, started);
        if rows.is_empty() {
            return Err(format!("bench --scaling: no estimates at {n} threads"));
        }
        runs.push(scaling::Run {
            threads: n,
            load,
            rows,
        });
    }
    let command = format!(
        "cargo xtask bench --scaling{}{}",
        if quick { " --quick" } else { "" },
        args.windows(2)
            .find(|w| w[0] == "--threads")
            .map(|w| format!(" --threads {}", w[1]))
            .unwrap_or_default()
    );
    let entry = scaling::entry(&runs, &machine_description(), &command, &today());
    let record_path = root.join("docs/benchmarks.json");
    let mut record: BTreeMap<String, Value> = std::fs::read_to_string(&record_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    record.insert("scaling".into(), entry.clone());
    write(
        &record_path,
        &(serde_json::to_string_pretty(&record).unwrap() + "\n"),
    )?;
    write_scaling(root, &entry, &record)
}

/// The scaling curves and section of `docs/benchmarks.md`, from `entry`.
fn write_scaling(
    root: &Path,
    entry: &Value,
    record: &BTreeMap<String, Value>,
) -> Result<(), String> {
    let charts = root.join("docs/benchmarks");
    std::fs::create_dir_all(&charts).map_err(|e| e.to_string())?;
    let chart =
        scaling::chart(&charts.join("scaling.svg"), entry)?.then_some("benchmarks/scaling.svg");
    let section = scaling::render(entry, chart);
    let md_path = root.join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&md_path).unwrap_or_default();
    let fresh = BTreeMap::from([("scaling".to_owned(), section.clone())]);
    write(&md_path, &splice(root, &old, &fresh, record))?;
    println!("bench: regenerated {}\n{section}", md_path.display());
    Ok(())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, or `target/` in the root.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// Rows from a crate's Python peers (`benches/python_peers.py`, which
/// prints results.json-style rows), when the crate has one and python3 is
/// installed. Python is the peer weft replaces, so it belongs in the table.
fn python_peers(root: &Path, krate: &str, quick: bool) -> Result<Vec<Row>, String> {
    let script = root
        .join("crates")
        .join(krate)
        .join("benches/python_peers.py");
    if !script.exists() {
        return Ok(Vec::new());
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&script);
    if quick {
        cmd.arg("--quick");
    }
    println!(
        "\n==> [bench-python] python3 {}{}",
        script.display(),
        if quick { " --quick" } else { "" }
    );
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            println!("==> [bench-python] skipped: python3 is not available ({e})");
            return Ok(Vec::new());
        }
    };
    if !out.status.success() {
        return Err(format!(
            "step 'bench-python' failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("step 'bench-python' printed rows that are not JSON: {e}"))?;
    Ok(rows.iter().filter_map(Row::from_json).collect())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn machine_description() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cores} cores, {cpu}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The 1-minute load average (`/proc/loadavg`), or "?".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
