//! Large mappings: a ConfigMap of 20,000 and of 200,000 keys through
//! `parse_documents` (where the duplicate-key and merge-key checks are) and
//! through `meshc check`. Both must scale linearly: 10x the keys may cost
//! about 10x the time (budget: 12x, for noise); before the key checks were
//! made linear it was 100x (20,000 keys 0.4-0.6 s, 200,000 keys 42-73 s).
//! `load::yaml`'s unit test holds the same property by counting probes.
//!
//!     cargo bench -p meshc --bench yaml_keys
//!
//! Environment: MESHC_BENCH_RUNS (3): the best of that many runs is kept.

use meshc::load::{Input, yaml};
use meshc::pipeline::{self, Options};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const MAX_RATIO: f64 = 12.0;

fn config_map(keys: usize) -> String {
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: x}\ndata: &data\n");
    for i in 0..keys {
        text.push_str(&format!("  key-{i}: value\n"));
    }
    // The same keys merged into a second mapping: the merge-key check.
    text.push_str("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: merged, namespace: x}\ndata:\n  <<: *data\n");
    text
}

fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    if filter.is_some_and(|f| !"yaml_keys".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let runs = std::env::var("MESHC_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3usize).max(1);
    let mut within = true;
    let (small, large) = (config_map(20_000), config_map(200_000));
    type Stage = fn(&str);
    let stages: [(&str, Stage); 2] = [
        ("parse_documents", |t| drop(yaml::parse_documents(t))),
        ("meshc check", |t| {
            let input = Input::Text { name: "big.yaml".to_owned(), text: t.to_owned() };
            drop(pipeline::check(&input, &Options::default()))
        }),
    ];
    for (stage, run) in stages {
        let a = best(runs, || run(&small));
        let b = best(runs, || run(&large));
        let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-9);
        println!("{stage}: 20,000 keys {a:.3?}, 200,000 keys {b:.3?}: {ratio:.1}x (budget {MAX_RATIO}x)");
        within &= ratio <= MAX_RATIO;
    }
    if within { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
