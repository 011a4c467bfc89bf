//! Outbound annotations on Services and routes (semantics reference
//! §8.2–8.4): timeouts, retries and failure accrual. Each parser returns what
//! Linkerd would use plus the problems it found, as (annotation, problem).

use super::durations::parse_linkerd;
use mesh_proxy_api::outbound::{Backoff, FailureAccrual, Retry, StatusRange, Timeouts};
use std::collections::BTreeMap;

pub type Problems = Vec<(&'static str, String)>;

const TIMEOUTS: [&str; 3] = ["timeout.linkerd.io/request", "timeout.linkerd.io/response", "timeout.linkerd.io/idle"];
const RETRY_HTTP: &str = "retry.linkerd.io/http";
const RETRY_GRPC: &str = "retry.linkerd.io/grpc";
const RETRY_LIMIT: &str = "retry.linkerd.io/limit";
const RETRY_TIMEOUT: &str = "retry.linkerd.io/timeout";
const GRPC_CODES: [&str; 5] = ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"];

/// `timeout.linkerd.io/{request,response,idle}`. A value that does not
/// parse is a problem and is left unset.
pub fn timeouts(a: &BTreeMap<String, String>, problems: &mut Problems) -> Timeouts {
    let mut get = |key: &'static str| {
        let v = a.get(key)?;
        parse_linkerd(v).map_err(|e| problems.push((key, e))).ok().filter(|ms| *ms > 0)
    };
    Timeouts { request_ms: get(TIMEOUTS[0]), response_ms: get(TIMEOUTS[1]), idle_ms: get(TIMEOUTS[2]) }
}

/// Whether any timeout annotation is written (valid or not).
pub fn has_timeouts(a: &BTreeMap<String, String>) -> bool {
    TIMEOUTS.iter().any(|k| a.contains_key(*k))
}

/// `retry.linkerd.io/*`: `None` when none of them is written. The limit
/// defaults to 1; `0` means unset.
pub fn retry(a: &BTreeMap<String, String>, problems: &mut Problems) -> Option<Retry> {
    if ![RETRY_HTTP, RETRY_GRPC, RETRY_LIMIT, RETRY_TIMEOUT].iter().any(|k| a.contains_key(*k)) {
        return None;
    }
    let http_statuses = a.get(RETRY_HTTP).map(|v| status_ranges(v, problems)).unwrap_or_default();
    let grpc_codes = a.get(RETRY_GRPC).map(|v| grpc_codes(v, problems)).unwrap_or_default();
    let limit = match a.get(RETRY_LIMIT).map(|v| v.trim().parse::<u16>()) {
        None | Some(Ok(0)) => 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            problems.push((RETRY_LIMIT, format!("`{}` is not a number from 0 to 65535", a[RETRY_LIMIT])));
            1
        }
    };
    let timeout_ms = a
        .get(RETRY_TIMEOUT)
        .and_then(|v| parse_linkerd(v).map_err(|e| problems.push((RETRY_TIMEOUT, e))).ok())
        .filter(|ms| *ms > 0);
    Some(Retry { http_statuses, grpc_codes, limit, timeout_ms })
}

fn status_ranges(v: &str, problems: &mut Problems) -> Vec<StatusRange> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let range = match item.to_ascii_lowercase().as_str() {
            "5xx" => Some((500, 599)),
            "gateway-error" => Some((502, 504)),
            other => match other.split_once('-') {
                Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
                None => other.parse().ok().map(|c| (c, c)),
            },
        };
        match range {
            Some((min, max)) if (100..=599).contains(&min) && (100..=599).contains(&max) && min <= max => {
                out.push(StatusRange { min, max })
            }
            _ => problems.push((
                RETRY_HTTP,
                format!("`{item}` is not 5xx, gateway-error, a status code or a range a-b within 100-599"),
            )),
        }
    }
    out
}

fn grpc_codes(v: &str, problems: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for item in v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        if GRPC_CODES.contains(&item.as_str()) {
            out.push(item);
        } else {
            problems.push((RETRY_GRPC, format!("`{item}` is not one of {}", GRPC_CODES.join(", "))));
        }
    }
    out
}

const ACCRUAL: &str = "balancer.linkerd.io/failure-accrual";
const MAX_FAILURES: &str = "balancer.linkerd.io/failure-accrual-consecutive-max-failures";
const MIN_PENALTY: &str = "balancer.linkerd.io/failure-accrual-consecutive-min-penalty";
const MAX_PENALTY: &str = "balancer.linkerd.io/failure-accrual-consecutive-max-penalty";
const JITTER: &str = "balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio";
const SR_THRESHOLD: &str = "balancer.alpha.linkerd.io/failure-accrual-success-rate-threshold";
const SR_WINDOW: &str = "balancer.alpha.linkerd.io/failure-accrual-success-rate-window";
const SR_MIN_REQUESTS: &str = "balancer.alpha.linkerd.io/failure-accrual-success-rate-min-requests";

/// `balancer.linkerd.io/failure-accrual*` on a Service. Any invalid
/// parameter disables accrual altogether, as Linkerd does (`None`).
pub fn failure_accrual(a: &BTreeMap<String, String>, problems: &mut Problems) -> Option<FailureAccrual> {
    let mode = a.get(ACCRUAL)?.trim();
    let before = problems.len();
    if mode != "consecutive" && mode != "unified" {
        problems.push((ACCRUAL, format!("`{mode}` is not `consecutive` or `unified`; no failure accrual applies")));
        return None;
    }
    let max_failures = number(a, MAX_FAILURES, 7, problems);
    let duration = |key: &'static str, default: u64, problems: &mut Problems| match a.get(key) {
        None => default,
        Some(v) => parse_linkerd(v).unwrap_or_else(|e| {
            problems.push((key, e));
            default
        }),
    };
    let min_penalty_ms = duration(MIN_PENALTY, 1_000, problems);
    let max_penalty_ms = duration(MAX_PENALTY, 60_000, problems);
    let jitter_ppm = ratio_ppm(a, JITTER, 500_000, 100, problems);
    if max_penalty_ms == 0 {
        problems.push((MAX_PENALTY, "the maximum penalty must be greater than 0".to_owned()));
    } else if min_penalty_ms > max_penalty_ms {
        problems.push((
            MIN_PENALTY,
            format!("the minimum penalty {min_penalty_ms}ms exceeds the maximum {max_penalty_ms}ms"),
        ));
    }
    let backoff = Backoff { min_penalty_ms, max_penalty_ms, jitter_ppm };
    let accrual = if mode == "consecutive" {
        FailureAccrual::Consecutive { max_failures, backoff }
    } else {
        FailureAccrual::Unified {
            max_failures,
            backoff,
            success_rate_threshold_ppm: ratio_ppm(a, SR_THRESHOLD, 800_000, 1, problems),
            success_rate_window_ms: duration(SR_WINDOW, 10_000, problems),
            success_rate_min_requests: number(a, SR_MIN_REQUESTS, 5, problems),
        }
    };
    (problems.len() == before).then_some(accrual)
}

fn number(a: &BTreeMap<String, String>, key: &'static str, default: u32, problems: &mut Problems) -> u32 {
    match a.get(key).map(|v| v.trim().parse::<u32>()) {
        None => default,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            problems.push((key, format!("`{}` is not a positive whole number", a[key])));
            default
        }
    }
}

/// A decimal ratio from 0 to `max`, as parts per million.
fn ratio_ppm(a: &BTreeMap<String, String>, key: &'static str, default: u32, max: u32, problems: &mut Problems) -> u32 {
    let Some(v) = a.get(key) else { return default };
    match v.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && (0.0..=f64::from(max)).contains(&r) => (r * 1e6).round() as u32,
        _ => {
            problems.push((key, format!("`{v}` is not a number from 0 to {max}")));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn retry_defaults_and_lists() {
        let mut p = Problems::new();
        let r = retry(&map(&[(RETRY_HTTP, "5xx, 429,gateway-error,500-504")]), &mut p).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(r.limit, 1);
        let ranges: Vec<(u16, u16)> = r.http_statuses.iter().map(|s| (s.min, s.max)).collect();
        assert_eq!(ranges, [(500, 599), (429, 429), (502, 504), (500, 504)]);
        assert!(retry(&map(&[]), &mut p).is_none());
        let r = retry(&map(&[(RETRY_LIMIT, "0"), (RETRY_GRPC, "unavailable,bogus")]), &mut p).unwrap();
        assert_eq!((r.limit, r.grpc_codes.as_slice()), (1, &["unavailable".to_owned()][..]));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn accrual_defaults_and_validation() {
        let mut p = Problems::new();
        let fa = failure_accrual(&map(&[(ACCRUAL, "consecutive")]), &mut p).unwrap();
        let want = Backoff { min_penalty_ms: 1_000, max_penalty_ms: 60_000, jitter_ppm: 500_000 };
        assert_eq!(fa, FailureAccrual::Consecutive { max_failures: 7, backoff: want });
        let bad = map(&[(ACCRUAL, "consecutive"), (MIN_PENALTY, "2m"), (MAX_PENALTY, "1m")]);
        assert!(failure_accrual(&bad, &mut p).is_none());
        assert!(failure_accrual(&map(&[(ACCRUAL, "sometimes")]), &mut p).is_none());
        assert_eq!(p.len(), 2);
    }
}
