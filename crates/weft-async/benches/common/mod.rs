//! What weft-async's bench targets share: the rows criterion does not give
//! (percentiles, bytes), written to `target/weft-bench/extra/weft-async.json`
//! for `cargo xtask bench`, and the statistics behind them.
//!
//! Several bench targets of this crate write that one file during one
//! `cargo bench` run: each keeps the rows already there if they were written
//! during the same run (after the `cargo` process that runs the benches
//! started), and replaces its own.

#![allow(dead_code)] // each bench target uses part of it

use std::time::{Duration, SystemTime};

/// The median of `v` with a 95% confidence interval of the median (order
/// statistics: ranks n/2 -+ 0.98 sqrt(n)); with few values the interval is
/// wide (min..max up to n = 5), as it should be.
pub fn median_ci(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mid = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor().max(1.0) as usize).min(n) - 1;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).clamp(1, n) - 1;
    (mid, v[lo], v[hi])
}

/// The `q` quantile (0..1) of `v`, sorted in place.
pub fn quantile(v: &mut [u64], q: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// When the parent process (the `cargo bench` running this target)
/// started, from `/proc`; `None` where that cannot be read.
fn parent_started() -> Option<SystemTime> {
    let ppid = std::os::unix::process::parent_id();
    let stat = std::fs::read_to_string(format!("/proc/{ppid}/stat")).ok()?;
    // Field 22 (starttime, in clock ticks since boot) counts from after the
    // command name's closing parenthesis (field 2), which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    // The kernel's USER_HZ is 100 on every Linux the benches run on.
    let since_boot = Duration::from_secs_f64(ticks / 100.0);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

/// Adds rows `(bench, impl, (median, lo, hi))` to
/// `target/weft-bench/extra/weft-async.json`, which the xtask merges into
/// the table: rows of the same bench and impl are replaced; other rows are
/// kept if the file was written during this `cargo bench` run.
pub fn write_extra_rows(rows: &[(String, String, (f64, f64, f64))]) {
    // target/release/deps/<bench>-<hash> -> target/weft-bench/extra/
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.ancestors().nth(3)?.join("weft-bench/extra")))
    else {
        return;
    };
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("weft-async.json");
    let this_run = match (
        std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
        parent_started(),
    ) {
        // A second's slack: the start time is in clock ticks.
        (Some(written), Some(started)) => written + Duration::from_secs(1) >= started,
        _ => false,
    };
    let mut lines: Vec<String> = Vec::new();
    if this_run && let Ok(old) = std::fs::read_to_string(&path) {
        for line in old.lines() {
            let line = line.trim().trim_end_matches(',');
            if !line.starts_with('{') {
                continue;
            }
            let replaced = rows.iter().any(|(bench, imp, _)| {
                line.contains(&format!(r#""bench": "{bench}""#))
                    && line.contains(&format!(r#""impl": "{imp}""#))
            });
            if !replaced {
                lines.push(line.to_owned());
            }
        }
    }
    for (bench, imp, (ns, lo, hi)) in rows {
        lines.push(format!(
            r#"{{"bench": "{bench}", "impl": "{imp}", "ns_per_iter": {ns}, "lo": {lo}, "hi": {hi}}}"#
        ));
    }
    let _ = std::fs::write(&path, format!("[\n{}\n]\n", lines.join(",\n")));
}

/// The bench-name filter given on the command line (criterion's positional
/// argument), if any.
pub fn filter() -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--profile-time",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--format",
        "-c",
        "-s",
        "-b",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

/// Whether a workload named `name` is selected by the command line's filter
/// (criterion's substring match).
pub fn selected(name: &str) -> bool {
    filter().is_none_or(|f| name.contains(&f))
}
