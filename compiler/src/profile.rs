//! `MESHC_PROFILE=1`: each stage of a command's pipeline on stderr, with
//! the wall time since the previous stage, the resident memory after it and
//! the peak so far (Linux `/proc/self/status`). How the figures in
//! docs/benchmarks/profile.md were taken; silent (one env lookup) otherwise.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Instant;

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MESHC_PROFILE").is_some_and(|v| !v.is_empty() && v != "0"))
}

/// Resident and peak resident memory in MiB, where the OS says.
fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((kib("VmRSS:")? / 1024, kib("VmHWM:")? / 1024))
}

/// Marks the end of stage `name`.
pub fn stage(name: &str) {
    if !enabled() {
        return;
    }
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let now = Instant::now();
    let Ok(mut last) = LAST.lock() else { return };
    let took = last.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
    *last = Some(now);
    let (rss, peak) = memory().unwrap_or_default();
    eprintln!("profile {name:<28} {took:>8.3} s  rss {rss:>6} MiB  peak {peak:>6} MiB");
}
