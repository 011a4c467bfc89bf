//! The four figures: each sets up its sources, drives the runtime binary
//! and prints a Markdown table as soon as its numbers are in.

use crate::Args;
use crate::certs;
use crate::fleet::{self, Fleet};
use crate::process::Runtime;
use crate::source::{Env, Mode, Source};
use crate::stats::{median, median_f64, ms, percentile, spread};
use crate::webhook as hook;
use crate::workloads::{self, Signed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(300);
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// Lets the runtime finish what follows a change (Kubernetes mode writes
/// every object's status) before the next one or a memory reading.
const SETTLE: Duration = Duration::from_secs(2);

/// The machine, for the notes under the tables.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("machine: {} × {}, Linux {}", cores, model.unwrap_or("unknown CPU"), kernel.trim())
}

fn log(env: &Env, name: &str) -> std::path::PathBuf {
    env.tmp.path().join(format!("{name}.log"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

struct Round {
    apply: Duration,
    p50: Duration,
    p100: Duration,
}

/// Figure 1, one mode: start the runtime over build 0, connect the
/// proxies, then apply builds 1..=rounds where every config changes.
async fn latency_mode(
    env: &Env,
    args: &Args,
    mode: Mode,
    ids: &[(String, Arc<mesh_common::identity::Identity>)],
) -> Result<(), String> {
    let n = ids.len();
    let base = workloads::example()?;
    let source = Source::new(env, mode, &format!("latency-{}", mode.label()), 0).await?;
    let initial = workloads::sign(&workloads::configs(&base, n, 0), &env.key, "r0")?;
    source.apply(&initial).await?;
    let mut rt = source.spawn(env, &log(env, &format!("latency-{}", mode.label())))?;
    rt.wait_serving(n, START_TIMEOUT).await?;
    let start = Instant::now();
    let mut fleet = Fleet::start(rt.api, ids.to_vec())?;
    fleet.wait_for(&initial.digests, start, START_TIMEOUT).await?;
    let connected = start.elapsed();
    tokio::time::sleep(SETTLE).await;
    let mut rounds = Vec::new();
    for r in 1..=args.rounds {
        let next: Signed = workloads::sign(&workloads::configs(&base, n, r), &env.key, &format!("r{r}"))?;
        let t0 = Instant::now();
        source.apply(&next).await?;
        let apply = t0.elapsed();
        let times = fleet.wait_for(&next.digests, t0, ROUND_TIMEOUT).await?;
        let (p50, p100) = (percentile(&times, 50.0), percentile(&times, 100.0));
        rounds.push(Round { apply, p50: p50.unwrap_or_default(), p100: p100.unwrap_or_default() });
        eprintln!("  {} round {r}: apply {} p50 {} p100 {}", mode.label(), ms(Some(apply)), ms(p50), ms(p100));
        tokio::time::sleep(SETTLE).await;
    }
    let mem = rt.memory()?;
    let col = |f: fn(&Round) -> Duration| spread(&rounds.iter().map(f).collect::<Vec<_>>());
    println!(
        "| {} | {} | {} | {} | {} | {} | {} / {} |",
        mode.label(),
        n,
        col(|r| r.apply),
        col(|r| r.p50),
        col(|r| r.p100),
        ms(Some(connected)),
        mib(mem.rss_kib),
        mib(mem.hwm_kib)
    );
    Ok(())
}

pub async fn latency(env: &Env, args: &Args, modes: &[Mode]) -> Result<(), String> {
    let n = args.workloads;
    let base = workloads::example()?;
    let names: Vec<String> = (0..n).map(workloads::identity).collect();
    let keys = workloads::configs(&base, n, 0).iter().map(workloads::workload_key).collect::<Vec<_>>();
    let ids: Vec<_> = keys.into_iter().zip(fleet::identities(env, &names)?).collect();
    println!("\n### 1. New build applied → every proxy holds its new config ({} rounds)\n", args.rounds);
    println!(
        "| mode | proxies | apply | proxies updated p50 | p100 (all) | first sync of all proxies | runtime RSS / HWM |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &mode in modes {
        latency_mode(env, args, mode, &ids).await?;
    }
    println!("\nmedian (min–max) over rounds; times from the start of the apply.");
    Ok(())
}

/// Figure 2: one source per size (shared by its runs), a fresh runtime per run.
pub async fn memory(env: &Env, args: &Args, modes: &[Mode]) -> Result<(), String> {
    let base = workloads::example()?;
    println!("\n### 2. Runtime memory after sync (median of {} starts)\n", args.memory_runs);
    println!("| mode | ProxyConfigs | VmRSS | VmHWM | start → serving all |");
    println!("|---|---|---|---|---|");
    for &n in &args.sizes {
        let signed = workloads::sign(&workloads::configs(&base, n, 0), &env.key, "r0")?;
        for &mode in modes {
            let name = format!("memory-{}-{n}", mode.label());
            let source = Source::new(env, mode, &name, 0).await?;
            source.apply(&signed).await?;
            let (mut rss, mut hwm, mut ready) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..args.memory_runs {
                let mut rt: Runtime = source.spawn(env, &log(env, &name))?;
                ready.push(rt.wait_serving(n, START_TIMEOUT).await?);
                tokio::time::sleep(SETTLE).await;
                let m = rt.memory()?;
                rss.push(m.rss_kib as f64);
                hwm.push(m.hwm_kib as f64);
            }
            let kib = |v: &[f64]| mib(median_f64(v).unwrap_or_default() as u64);
            println!("| {} | {n} | {} | {} | {} |", mode.label(), kib(&rss), kib(&hwm), ms(median(&ready)));
        }
    }
    println!(
        "\nthe runtime process only (the fake API server runs in this program, a real one in a process of its own)."
    );
    Ok(())
}

/// Figure 3: certificates per second for each client count.
pub async fn certs(env: &Env, args: &Args, modes: &[Mode]) -> Result<(), String> {
    let most = args.clients.iter().copied().max().unwrap_or(1).max(1);
    let (requests, csr_cost) = certs::pregenerate(most)?;
    let requests = Arc::new(requests);
    let duration = Duration::from_secs_f64(args.seconds);
    let base = workloads::example()?;
    let one = workloads::sign(&workloads::configs(&base, 1, 0), &env.key, "r0")?;
    println!("\n### 3. Certificates issued per second (median of {} × {:.0} s)\n", args.cert_runs, args.seconds);
    println!("| mode | clients | certificates/s | refused | failed |");
    println!("|---|---|---|---|---|");
    for &mode in modes {
        let name = format!("certs-{}", mode.label());
        let source = Source::new(env, mode, &name, most).await?;
        source.apply(&one).await?;
        let mut rt = source.spawn(env, &log(env, &name))?;
        rt.wait_serving(1, START_TIMEOUT).await?;
        for &c in &args.clients {
            let mut outcomes = Vec::new();
            for _ in 0..args.cert_runs {
                outcomes.push(certs::run(rt.api, env.pki.anchors_pem(), &requests, c, duration).await?);
            }
            let rate = median_f64(&outcomes.iter().map(|o| o.per_second()).collect::<Vec<_>>()).unwrap_or_default();
            let refused: u64 = outcomes.iter().map(|o| o.refused).sum();
            let failed: u64 = outcomes.iter().map(|o| o.failed).sum();
            println!("| {} | {c} | {rate:.0} | {refused} | {failed} |", mode.label());
        }
    }
    println!(
        "\nCSRs are generated before the clock starts (one P-256 key + CSR costs {} here); \
         each client reuses its own.",
        format_args!("{:.2} ms", csr_cost.as_secs_f64() * 1e3)
    );
    Ok(())
}

/// Figure 4: the admission webhook's answer time for a typical pod, one
/// client at a time and `--clients`' largest count at once.
pub async fn webhook(env: &Env, args: &Args, modes: &[Mode]) -> Result<(), String> {
    let base = workloads::example()?;
    let one = workloads::sign(&workloads::configs(&base, 1, 0), &env.key, "r0")?;
    let many = args.clients.iter().copied().max().unwrap_or(1).max(1);
    println!("\n### 4. Admission webhook: answer time for a typical pod ({} reviews per row)\n", args.reviews);
    println!("| mode | clients at once | p50 / p99 / max (ms) | reviews/s |");
    println!("|---|---|---|---|");
    for &mode in modes {
        let name = format!("webhook-{}", mode.label());
        let source = Source::new(env, mode, &name, 0).await?;
        source.create(&hook::namespace()).await?;
        source.apply(&one).await?;
        let listen = crate::process::free_addr()?;
        let flags = ["--webhook-listen".into(), listen.to_string().into(), "--webhook-name".into(), hook::NAME.into()];
        let mut rt = source.spawn_with(env, &log(env, &name), &flags)?;
        rt.wait_serving(1, START_TIMEOUT).await?;
        for clients in [1, many] {
            let per_client = args.reviews.div_ceil(clients);
            let t0 = Instant::now();
            let times = hook::measure(listen, env.pki.anchors_pem(), clients, per_client, 50).await?;
            let rate = times.len() as f64 / t0.elapsed().as_secs_f64();
            println!("| {} | {clients} | {} | {rate:.0} |", mode.label(), hook::summary(&times));
        }
    }
    println!(
        "\nover TLS on kept-alive connections (as the API server's webhook client); each review is a Deployment's \
         pod in a namespace asking for injection, answered with a patch; 50 untimed reviews per connection first. \
         Kubernetes mode reads the pod's Namespace from its metadata-only watch of Namespaces (a GET only for one the watch does not hold yet)."
    );
    Ok(())
}
