//! `cargo xtask bench --scaling`: weft-pool against rayon and chili on the
//! same workloads at 1, 2, 4, 8 and 16 threads (what one machine has), the
//! `scaling` section of `docs/benchmarks.md` and its curves,
//! `docs/benchmarks/scaling.svg`.
//!
//! Each thread count is its own `cargo bench` run of weft-pool's benches
//! with `WEFT_BENCH_THREADS` set (every pool in the run gets that many
//! threads) and its own criterion directory, so no estimate of one count
//! is read as another's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use plotters::prelude::*;
use serde_json::{Value, json};

use crate::report::{self, Row};

/// The workloads of the curves: fork/join with the same user cutoff on
/// every pool (fib, a tree), the unbalanced, the sort, the reduction and
/// the parallel-iterator rows (a criterion filter
/// on the group names; a group a build does not have is simply absent).
pub const WORKLOADS: &[&str] = &[
    "fib_30_join_cutoff_15",
    "tree_sum_16m_join_cutoff_1024",
    "mandelbrot_1024x512_rows",
    "quicksort_10m_u32",
    "map_reduce_10m_u64_sum",
    "par_iter_sum_squares_100m_u64",
    "par_iter_fine_grained_1m_20ns",
];

/// The default thread counts.
pub const DEFAULT_THREADS: &[usize] = &[1, 2, 4, 8, 16];

/// Parses `--threads 1,2,4`: counts in increasing order, each at least 1.
pub fn parse_threads(list: &str) -> Result<Vec<usize>, String> {
    let mut out = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: usize = part
            .parse()
            .map_err(|_| format!("--threads: '{part}' is not a thread count"))?;
        if n == 0 {
            return Err("--threads: a pool needs at least 1 thread".into());
        }
        out.insert(n);
    }
    if out.is_empty() {
        return Err("--threads: give at least one count, e.g. --threads 1,2,4".into());
    }
    Ok(out.into_iter().collect())
}

/// The counts to run: `wanted`, or the default ones this machine has the
/// cores for (a count above the cores measures the OS's time slicing, not
/// the pool). Returns the counts and the ones left out.
pub fn plan(wanted: Option<Vec<usize>>, cores: usize) -> (Vec<usize>, Vec<usize>) {
    match wanted {
        Some(list) => (list, Vec::new()),
        None => DEFAULT_THREADS.iter().partition(|&&n| n <= cores.max(1)),
    }
}

/// The criterion filter that selects [`WORKLOADS`].
pub fn filter() -> String {
    format!("^({})/", WORKLOADS.join("|"))
}

/// One thread count's rows.
pub struct Run {
    pub threads: usize,
    pub load: String,
    pub rows: Vec<Row>,
}

/// The record entry (`docs/benchmarks.json`, key `scaling`).
pub fn entry(runs: &[Run], machine: &str, command: &str, date: &str) -> Value {
    json!({
        "machine": machine,
        "command": command,
        "date": date,
        "runs": runs.iter().map(|r| json!({
            "threads": r.threads,
            "load": r.load,
            "rows": r.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `(workload, impl) -> threads -> row`, from a record entry.
type Table = BTreeMap<(String, String), BTreeMap<usize, Row>>;

fn table(entry: &Value) -> Table {
    let mut t = Table::new();
    for run in entry["runs"].as_array().into_iter().flatten() {
        let Some(n) = run["threads"].as_u64() else {
            continue;
        };
        for row in run["rows"].as_array().into_iter().flatten() {
            if let Some(r) = Row::from_json(row) {
                t.entry((r.bench.clone(), r.imp.clone()))
                    .or_default()
                    .insert(n as usize, r);
            }
        }
    }
    t
}

fn threads_of(entry: &Value) -> Vec<usize> {
    let set: BTreeSet<usize> = entry["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["threads"].as_u64().map(|n| n as usize))
        .collect();
    set.into_iter().collect()
}

fn fmt_ms(ns: f64) -> String {
    let ms = ns / 1e6;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

/// The `## scaling` section of `docs/benchmarks.md`.
pub fn render(entry: &Value, chart: Option<&str>) -> String {
    let t = table(entry);
    let threads = threads_of(entry);
    let mut md = String::from("\n## scaling\n\n");
    md.push_str(&format!(
        "weft-pool, rayon and chili on the same workloads, one `cargo bench` run per thread \
         count (`WEFT_BENCH_THREADS`; every pool in a run gets that many threads). Machine: \
         {}. Command: `{}`. Date: {}. 1-minute load average as each count's run started: {}.\n\n",
        entry["machine"].as_str().unwrap_or("?"),
        entry["command"].as_str().unwrap_or("?"),
        entry["date"].as_str().unwrap_or("?"),
        entry["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!(
                "{} at {} threads",
                r["load"].as_str().unwrap_or("?"),
                r["threads"]
            ))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    md.push_str(
        "Each cell: the median time, and in brackets the speed-up over the same \
         implementation at the fewest threads run. The last columns give weft's time over \
         each peer's at the most threads run (below 1.00x, weft is faster).\n\n",
    );
    let top = threads.last().copied().unwrap_or(1);
    if t.keys().any(|(_, i)| i == "std") {
        md.push_str(
            "`std` rows run sequentially whatever the thread count: how much they change \
             from one count to the next is the machine's own noise (other work on its \
             cores), and bounds what the other rows can show.\n\n",
        );
    }
    if top < 16 {
        md.push_str(&format!(
            "**Scaling beyond {top} threads is unmeasured:** this run had {top} cores at \
             most; `cargo xtask bench --scaling` on a bigger machine runs 1, 2, 4, 8 and \
             16.\n\n"
        ));
    }
    if let Some(c) = chart {
        md.push_str(&format!("![scaling curves]({c})\n\n"));
    }
    md.push_str("| workload | impl |");
    for n in &threads {
        md.push_str(&format!(" {n} thr |"));
    }
    md.push_str(&format!(" weft/impl at {top} thr |\n|---|---|"));
    md.push_str(&"---|".repeat(threads.len() + 1));
    md.push('\n');
    let workloads: BTreeSet<&String> = t.keys().map(|(w, _)| w).collect();
    for w in workloads {
        let weft_top = t.get(&(w.clone(), "weft".into())).and_then(|m| m.get(&top));
        let mut imps: Vec<&String> = t.keys().filter(|(b, _)| b == w).map(|(_, i)| i).collect();
        imps.sort_by_key(|i| (i.as_str() != "weft", i.to_string()));
        for imp in imps {
            let by_n = &t[&(w.clone(), imp.clone())];
            let base = by_n.values().next().map(|r| r.ns);
            md.push_str(&format!("| {w} | {imp} |"));
            for n in &threads {
                match (by_n.get(n), base) {
                    (Some(r), Some(b)) => {
                        md.push_str(&format!(" {} ({:.2}x) |", fmt_ms(r.ns), b / r.ns))
                    }
                    _ => md.push_str(" – |"),
                }
            }
            match (weft_top, by_n.get(&top)) {
                (Some(wr), Some(pr)) if imp.as_str() != "weft" => {
                    md.push_str(&format!(" {:.2}x |\n", wr.ns / pr.ns))
                }
                _ => md.push_str(" |\n"),
            }
        }
    }
    md
}

/// Draws one panel per workload: speed-up over one thread (or the fewest
/// run) against threads, one line per implementation, and the ideal line.
pub fn chart(path: &Path, entry: &Value) -> Result<bool, String> {
    let t = table(entry);
    let threads = threads_of(entry);
    if threads.len() < 2 || t.is_empty() {
        return Ok(false);
    }
    draw(path, &t, &threads).map_err(|e| format!("drawing {}: {e}", path.display()))?;
    Ok(true)
}

fn draw(path: &Path, t: &Table, threads: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let workloads: Vec<&String> = t
        .keys()
        .map(|(w, _)| w)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cols = 2usize;
    let rows = workloads.len().div_ceil(cols);
    let root = SVGBackend::new(path, (960, 320 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((rows, cols));
    let (lo, hi) = (threads[0] as f64, *threads.last().unwrap() as f64);
    let colour = |imp: &str| match imp {
        "weft" => RGBColor(0, 120, 60),
        "rayon" => RGBColor(40, 90, 200),
        "chili" => RGBColor(200, 120, 0),
        _ => RGBColor(120, 120, 120),
    };
    for (panel, w) in panels.iter().zip(&workloads) {
        let ymax = t
            .iter()
            .filter(|((b, _), _)| b == *w)
            .flat_map(|(_, by_n)| {
                let base = by_n.values().next().map_or(1.0, |r| r.ns);
                by_n.values().map(move |r| base / r.ns)
            })
            .fold(hi / lo, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(w.as_str(), ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d((lo.log2())..(hi.log2()), 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_labels(threads.len())
            .x_label_formatter(&|x| format!("{:.0}", x.exp2()))
            .x_desc("threads")
            .y_desc("speed-up")
            .label_style(("sans-serif", 11))
            .draw()?;
        chart.draw_series(std::iter::once(PathElement::new(
            threads
                .iter()
                .map(|&n| ((n as f64).log2(), n as f64 / lo))
                .collect::<Vec<_>>(),
            RGBColor(200, 200, 200).stroke_width(1),
        )))?;
        for ((_, imp), by_n) in t.iter().filter(|((b, _), _)| b == *w) {
            let base = by_n.values().next().map_or(1.0, |r| r.ns);
            let c = colour(imp);
            let points: Vec<(f64, f64)> = by_n
                .iter()
                .map(|(&n, r)| ((n as f64).log2(), base / r.ns))
                .collect();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    points.clone(),
                    c.stroke_width(2),
                )))?
                .label(imp.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 11))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Reads one thread count's rows, written since `since` under `dir`.
pub fn read(dir: &Path, since: SystemTime) -> Vec<Row> {
    report::read_criterion(dir, since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_lists_are_checked() {
        assert_eq!(parse_threads("4,1, 2,4").unwrap(), vec![1, 2, 4]);
        assert!(parse_threads("0,2").unwrap_err().contains("at least 1"));
        assert!(parse_threads("two").unwrap_err().contains("'two'"));
        assert!(parse_threads(" , ").is_err());
    }

    #[test]
    fn the_default_plan_stops_at_the_cores() {
        assert_eq!(plan(None, 2), (vec![1, 2], vec![4, 8, 16]));
        assert_eq!(plan(None, 16), (vec![1, 2, 4, 8, 16], vec![]));
        assert_eq!(plan(Some(vec![1, 32]), 2), (vec![1, 32], vec![]));
    }

    #[test]
    fn the_section_gives_speedups_and_ratios_at_the_top_count() {
        let row = |b: &str, i: &str, ns: f64| Row {
            bench: b.into(),
            imp: i.into(),
            ns,
            ci: None,
        };
        let runs = [
            Run {
                threads: 1,
                load: "0.1".into(),
                rows: vec![row("fib", "weft", 8e6), row("fib", "rayon", 10e6)],
            },
            Run {
                threads: 2,
                load: "0.2".into(),
                rows: vec![row("fib", "weft", 4e6), row("fib", "rayon", 8e6)],
            },
        ];
        let e = entry(
            &runs,
            "2 cores",
            "cargo xtask bench --scaling",
            "2026-12-02",
        );
        let md = render(&e, Some("benchmarks/scaling.svg"));
        assert!(
            md.contains("| fib | weft | 8.0 ms (1.00x) | 4.0 ms (2.00x) | |"),
            "{md}"
        );
        assert!(
            md.contains("| fib | rayon | 10.0 ms (1.00x) | 8.0 ms (1.25x) | 0.50x |"),
            "{md}"
        );
        assert!(md.contains("![scaling curves](benchmarks/scaling.svg)"));
        assert!(md.contains("0.1 at 1 threads, 0.2 at 2 threads"), "{md}");

        let svg = std::env::temp_dir().join(format!("weft-scaling-{}.svg", std::process::id()));
        assert!(chart(&svg, &e).unwrap());
        let drawn = std::fs::read_to_string(&svg).unwrap();
        let _ = std::fs::remove_file(&svg);
        assert!(drawn.contains("<svg") && drawn.contains("fib"), "{drawn}");
        // One thread count draws no curve.
        let one = entry(&runs[..1], "2 cores", "c", "d");
        assert!(!chart(&svg, &one).unwrap());
    }
}
