//! Scale benchmark: `meshc check` on a synthetic repository (default 10,000
//! workloads, ~100,000 objects) against the time to only parse the same YAML
//! with the same parser on one thread.
//!
//! Budget (the "done means", for 10,000 workloads): release `meshc
//! check` under 5 s on a 2-core machine, and at most 2x the single-thread
//! parse time. Both are measured in the same process, alternating, so machine
//! noise hits both. The baseline calls `meshc::load::yaml::parse_documents`,
//! so a faster parser speeds up both sides. It also prints each stage of the
//! pipeline timed on its own, and how much CPU the (shared) host really gave.
//!
//!     cargo bench -p meshc --bench check_scale
//!     MESHC_BENCH_WORKLOADS=1000 MESHC_BENCH_RUNS=3 cargo bench -p meshc --bench check_scale
//!
//! Other modes (used by scripts/bench.sh; `--bench`, which cargo adds, is ignored):
//!     check_scale --generate DIR      write the synthetic repository to DIR
//!     check_scale --parse-only DIR    time the single-thread parse of DIR only
//!     check_scale --invariants FILE write the 50 scale invariants as a MeshTest to FILE
//!     check_scale --cores             how many cores' worth of CPU we get right now
//!
//! Environment: MESHC_BENCH_SHAPE (`apps`, the default, or `wide`: the
//! second generator, see `synth/wide.rs`), MESHC_BENCH_WORKLOADS (10000),
//! MESHC_BENCH_NAMESPACES (workloads / 100, or / 50 for `wide`), MESHC_BENCH_RUNS (5), MESHC_BENCH_DIR (keep the
//! generated repository there instead of a temporary directory), MESHC_BENCH_NEW_KINDS=1 (`apps` only: an
//! EgressNetwork, a TLSRoute and an HTTPLocalRateLimitPolicy in every other namespace, `synth/new_kinds.rs`).

mod synth;

use meshc::findings::{Finding, Span};
use meshc::load::{self, Input, SETTINGS_FILE, discover, yaml};
use meshc::settings::{self, Settings};
use meshc::{analyze, lower, model, pipeline, resolve};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The budgets.
const MAX_CHECK: Duration = Duration::from_secs(5);
const MAX_RATIO: f64 = 2.0;

fn env_usize(key: &str) -> Option<usize> {
    let v = std::env::var(key).ok()?;
    match v.trim().replace('_', "").parse() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("{key}={v} is not a number; ignored");
            None
        }
    }
}

fn config() -> synth::Config {
    let shape = std::env::var("MESHC_BENCH_SHAPE").ok().map_or(synth::Shape::Apps, |s| {
        synth::Shape::parse(&s).unwrap_or_else(|| {
            eprintln!("MESHC_BENCH_SHAPE={s} is not `apps` or `wide`; using apps");
            synth::Shape::Apps
        })
    });
    let mut cfg = synth::Config::shaped(shape, env_usize("MESHC_BENCH_WORKLOADS").unwrap_or(10_000));
    if let Some(n) = env_usize("MESHC_BENCH_NAMESPACES") {
        cfg.namespaces = n.max(1);
    }
    cfg.new_kinds = std::env::var("MESHC_BENCH_NEW_KINDS").is_ok_and(|v| v == "1");
    cfg
}

fn runs() -> usize {
    env_usize("MESHC_BENCH_RUNS").unwrap_or(5).max(1)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["--generate", dir] => {
            let stats = generate(Path::new(dir));
            println!("generated {dir}");
            print_stats(&stats);
            ExitCode::SUCCESS
        }
        ["--parse-only", dir] => {
            let dir = Path::new(dir);
            let mut times = Vec::new();
            let mut docs = 0;
            for i in 0..runs() {
                let (n, t, trees) = parse_only(dir);
                docs = n;
                times.push(t);
                // Like a CLI about to exit, the last run leaves its trees to the OS.
                if i + 1 == runs() {
                    std::mem::forget(trees);
                }
            }
            println!("parse-only (1 thread): {docs} documents; {}", summary(&times));
            println!("PARSE_ONLY_MEDIAN_S={:.4}", secs(median(&times)));
            ExitCode::SUCCESS
        }
        ["--invariants", file] => {
            let invariants = synth::invariants::fifty(&synth::invariants::namespaces(&config()));
            if let Err(e) = std::fs::write(file, synth::invariants::meshtest_yaml(&invariants)) {
                eprintln!("writing {file}: {e}");
                return ExitCode::from(2);
            }
            println!("wrote {} invariants to {file}", invariants.len());
            ExitCode::SUCCESS
        }
        ["--cores"] => {
            println!("effective parallelism: {:.2} of {} cores{}", effective_cores(), cores(), loadavg());
            ExitCode::SUCCESS
        }
        [] => bench(),
        // `cargo bench -p meshc` passes filters meant for other harnesses.
        [filter] if !filter.starts_with("--") => {
            if "check_scale".contains(filter) {
                bench()
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!("usage: check_scale [--generate DIR | --invariants FILE | --parse-only DIR | --cores]");
            ExitCode::from(2)
        }
    }
}

fn generate(dir: &Path) -> synth::Stats {
    let cfg = config();
    let t = Instant::now();
    let stats = synth::generate(dir, &cfg).unwrap_or_else(|e| panic!("generating into {}: {e}", dir.display()));
    eprintln!("generated in {:.2} s", t.elapsed().as_secs_f64());
    stats
}

fn print_stats(s: &synth::Stats) {
    println!(
        "repository: {} workloads, {} objects in {} files, {:.1} MiB of YAML",
        s.workloads,
        s.objects,
        s.files,
        s.bytes as f64 / (1024.0 * 1024.0)
    );
    let kinds: Vec<String> = s.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  by kind: {}", kinds.join(", "));
    let mistakes: Vec<String> = s.mistakes.iter().map(|(k, n)| format!("{n} x {k}")).collect();
    let mistakes = if mistakes.is_empty() { "none".to_owned() } else { mistakes.join(", ") };
    println!("  deliberate mistakes: {mistakes}");
}

fn bench() -> ExitCode {
    let (_tmp, dir): (Option<tempfile::TempDir>, PathBuf) = match std::env::var_os("MESHC_BENCH_DIR") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let t = tempfile::Builder::new().prefix("meshc-bench-").tempdir().expect("temp dir");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let stats = generate(&dir);
    print_stats(&stats);
    let input = Input::Path(dir.clone());
    let options = pipeline::Options::default();
    let runs = runs();
    let cores_before = effective_cores();

    // Warm-up (page cache, allocator), and the figures the timed runs must reproduce.
    let outcome = pipeline::check(&input, &options).expect("check");
    println!(
        "check: {} objects, {} workloads, {} findings",
        outcome.objects,
        outcome.workloads(),
        outcome.findings.len()
    );
    print_findings(&outcome.findings);
    if outcome.objects != stats.objects || outcome.workloads() != stats.workloads {
        eprintln!(
            "warning: meshc counted {} objects / {} workloads, the generator wrote {} / {}",
            outcome.objects,
            outcome.workloads(),
            stats.objects,
            stats.workloads
        );
    }
    drop(outcome);
    let (docs, _, _) = parse_only(&dir);

    // Alternate, so that drift and noise hit both sides alike.
    let mut parse_t = Vec::new();
    let mut check_t = Vec::new();
    let mut drop_t = Vec::new();
    let mut stage_t: Vec<Stages> = Vec::new();
    for i in 0..runs {
        let (_, t, trees) = parse_only(&dir);
        parse_t.push(t);
        drop(trees);
        let t = Instant::now();
        let outcome = pipeline::check(&input, &options).expect("check");
        check_t.push(t.elapsed());
        let t = Instant::now();
        drop(outcome);
        drop_t.push(t.elapsed());
        stage_t.push(stages(&dir));
        eprintln!(
            "run {}/{runs}: parse-only {:.3} s, check {:.3} s (+ {:.3} s to free the outcome)",
            i + 1,
            secs(parse_t[i]),
            secs(check_t[i]),
            secs(drop_t[i])
        );
    }

    let threads = cores();
    println!(
        "\neffective parallelism (CPU the host really gave us): {cores_before:.2} of {threads} cores before the runs, {:.2} after{}",
        effective_cores(),
        loadavg()
    );
    println!("parse-only (read + parse_documents, 1 thread, {docs} documents): {}", summary(&parse_t));
    println!("meshc check (pipeline::check, {threads} cores):                  {}", summary(&check_t));
    let ratio = secs(median(&check_t)) / secs(median(&parse_t));
    let ratio_min = secs(min(&check_t)) / secs(min(&parse_t));
    println!(
        "freeing the Outcome (not timed above; the CLI pays it at exit unless it forgets the outcome): median {:.3} s",
        secs(median(&drop_t))
    );
    println!("ratio check/parse-only: {ratio:.2} (median/median), {ratio_min:.2} (min/min); budget <= {MAX_RATIO}");
    print_stages(&stage_t, median(&check_t));
    let ok_time = median(&check_t) < MAX_CHECK;
    let ok_ratio = ratio <= MAX_RATIO;
    println!(
        "budget (set for 10,000 workloads): check {:.3} s {} {} s; ratio {ratio:.2} {} {MAX_RATIO}",
        secs(median(&check_t)),
        if ok_time { "<" } else { ">=" },
        MAX_CHECK.as_secs(),
        if ok_ratio { "<=" } else { ">" },
    );
    println!(
        "RESULT workloads={} objects={} parse_only_s={:.4} check_s={:.4} ratio={ratio:.3}",
        stats.workloads,
        stats.objects,
        secs(median(&parse_t)),
        secs(median(&check_t)),
    );
    ExitCode::SUCCESS
}

/// What a parse-only run built: each file's text and documents.
type Trees = Vec<(String, Vec<yaml::Node>)>;

/// Reads every manifest file (as `meshc check` would find them) and parses
/// it with `parse_documents`, sequentially. The trees are returned, as the
/// pipeline keeps them: freeing them is not timed.
fn parse_only(dir: &Path) -> (usize, Duration, Trees) {
    let t = Instant::now();
    let found = discover::discover(dir).expect("discover");
    let mut trees = Vec::with_capacity(found.files.len());
    let mut docs = 0;
    for (name, path) in &found.files {
        if name == SETTINGS_FILE {
            continue;
        }
        let text = discover::read_text(path).expect("read");
        let parsed = yaml::parse_documents(&text).expect("valid YAML");
        docs += parsed.len();
        trees.push((text, parsed));
    }
    (docs, t.elapsed(), trees)
}

#[derive(Clone, Copy, Default)]
struct Stages {
    load: Duration,
    settings: Duration,
    decode: Duration,
    resolve: Duration,
    lower: Duration,
    analyze_probes: Duration,
    analyze_routes: Duration,
    analyze_servers: Duration,
    analyze_policies: Duration,
}

impl Stages {
    const NAMES: [&'static str; 9] = [
        "load (discover, read, parse in parallel, objects)",
        "settings (meshc.yaml)",
        "model::decode_all",
        "resolve::resolve",
        "lower::lower_all",
        "analyze::probes",
        "analyze::routes",
        "analyze::servers",
        "analyze::policies",
    ];

    fn get(&self, i: usize) -> Duration {
        [
            self.load,
            self.settings,
            self.decode,
            self.resolve,
            self.lower,
            self.analyze_probes,
            self.analyze_routes,
            self.analyze_servers,
            self.analyze_policies,
        ][i]
    }
}

/// The pipeline of `pipeline::check`, stage by stage (without its final
/// suppression and sorting of findings, which is private).
fn stages(dir: &Path) -> Stages {
    let mut s = Stages::default();
    let mut t = Instant::now();
    let mut lap = |d: &mut Duration| {
        *d = t.elapsed();
        t = Instant::now();
    };
    let input = Input::Path(dir.to_path_buf());
    let loaded = load::load(&input).expect("load");
    lap(&mut s.load);
    let mut findings: Vec<Finding> = loaded.findings;
    let settings = match discover::read_text(&dir.join(SETTINGS_FILE)) {
        Ok(text) => {
            let file = settings::parse_file(loaded.sources.len() as u32, &text, &mut findings);
            Settings::resolve(file, &mut findings, Span::default())
        }
        Err(_) => Settings::resolve(Default::default(), &mut findings, Span::default()),
    };
    lap(&mut s.settings);
    let (resources, _) = model::decode_all(loaded.objects, &settings.default_namespace, &mut findings);
    lap(&mut s.decode);
    let names: Vec<String> = loaded.sources.iter().map(|s| s.name.clone()).collect();
    let resolved = resolve::resolve(resources, settings, &names, &mut findings);
    lap(&mut s.resolve);
    let configs = lower::lower_all(&resolved);
    lap(&mut s.lower);
    analyze::probes::check(&resolved, &configs, &mut findings);
    lap(&mut s.analyze_probes);
    analyze::routes::check(&resolved, &configs, &mut findings);
    lap(&mut s.analyze_routes);
    analyze::servers::check(&resolved, &mut findings);
    lap(&mut s.analyze_servers);
    analyze::policies::check(&resolved, &mut findings);
    lap(&mut s.analyze_policies);
    drop((loaded.sources, resolved, configs, findings));
    s
}

fn print_stages(runs: &[Stages], check: Duration) {
    println!("\nstages (median of {} runs, called one by one):", runs.len());
    let mut total = Duration::ZERO;
    for (i, name) in Stages::NAMES.iter().enumerate() {
        let times: Vec<Duration> = runs.iter().map(|r| r.get(i)).collect();
        let m = median(&times);
        total += m;
        println!("  {name:<52} {:>8.1} ms  {:>5.1}% of check", m.as_secs_f64() * 1e3, 100.0 * secs(m) / secs(check));
    }
    println!(
        "  {:<52} {:>8.1} ms  (check median minus stages: sorting findings, drop, noise: {:.1} ms)",
        "sum",
        total.as_secs_f64() * 1e3,
        (secs(check) - secs(total)) * 1e3
    );
}

fn print_findings(findings: &[Finding]) {
    let mut by: BTreeMap<(meshc::findings::Severity, &str), usize> = BTreeMap::new();
    for f in findings {
        *by.entry((f.severity, f.code.as_str())).or_default() += 1;
    }
    for ((sev, code), n) in by.iter().rev() {
        println!("  {:<8} {code:<32} {n}", sev.as_str());
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many cores' worth of CPU the machine gives right now: the same busy
/// loop on one thread (best of 3), then on every core at once. On a shared
/// host this is often well below the core count, and the parallel check
/// suffers from it while the single-thread baseline does not.
fn effective_cores() -> f64 {
    fn spin() -> u64 {
        let mut x = std::hint::black_box(1u64);
        for i in 0..150_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
        x
    }
    // The same code path for both: `threads` spawned threads running `spin`.
    let run = |threads: usize| {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(spin);
            }
        });
        t.elapsed()
    };
    let one = (0..3).map(|_| run(1)).min().unwrap_or_default();
    let n = cores();
    n as f64 * secs(one) / secs(run(n))
}

/// The 1, 5 and 15 minute load averages (Linux), which count other tenants' work too.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or(String::new(), |l| {
        format!(" (load average {})", l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
    })
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(ts: &[Duration]) -> Duration {
    let mut v = ts.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn min(ts: &[Duration]) -> Duration {
    ts.iter().copied().min().unwrap_or_default()
}

fn summary(ts: &[Duration]) -> String {
    format!(
        "median {:.3} s, min {:.3} s, max {:.3} s ({} runs)",
        secs(median(ts)),
        secs(min(ts)),
        secs(ts.iter().copied().max().unwrap_or_default()),
        ts.len()
    )
}
