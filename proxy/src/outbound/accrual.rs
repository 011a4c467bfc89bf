//! Failure accrual (circuit breaking) per endpoint, semantics reference §8.4.
//!
//! Consecutive mode: after `max_failures` failures in a row (a 5xx, or the
//! route's failure class, or a connection error) the endpoint leaves the
//! balancer for a penalty that starts at `min_penalty` and doubles with each
//! ejection in a row up to `max_penalty`, plus up to `jitter` × penalty.
//! When the penalty ends the endpoint is probed: it takes requests again,
//! one more failure ejects it with the next penalty, a success closes the
//! breaker and resets the penalty.
//!
//! Unified mode adds the success-rate part as a tumbling window: when a
//! window of `success_rate_window` has seen at least `min_requests`
//! responses and the share of successes is below the threshold, the endpoint
//! is ejected as if it had failed `max_failures` times. Linkerd computes the
//! rate as an exponentially weighted moving average; a tumbling window is
//! the simpler reading and ejects under the same sustained failure rates.

use mesh_proxy_api::outbound::{Backoff, FailureAccrual};
use std::time::{Duration, Instant};

/// A Service's failure-accrual settings, read from its config.
#[derive(Clone, Debug, PartialEq)]
pub struct AccrualPolicy {
    pub max_failures: u32,
    pub min_penalty: Duration,
    pub max_penalty: Duration,
    /// Share of the penalty added at random (0.5: up to half again).
    pub jitter: f64,
    pub success_rate: Option<SuccessRate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SuccessRate {
    pub threshold: f64,
    pub window: Duration,
    pub min_requests: u32,
}

impl AccrualPolicy {
    pub fn from_config(fa: &FailureAccrual) -> Self {
        let (max_failures, backoff, success_rate) = match fa {
            FailureAccrual::Consecutive { max_failures, backoff } => (*max_failures, backoff, None),
            FailureAccrual::Unified {
                max_failures,
                backoff,
                success_rate_threshold_ppm,
                success_rate_window_ms,
                success_rate_min_requests,
            } => (
                *max_failures,
                backoff,
                Some(SuccessRate {
                    threshold: f64::from(*success_rate_threshold_ppm) / 1e6,
                    window: Duration::from_millis(*success_rate_window_ms),
                    min_requests: *success_rate_min_requests,
                }),
            ),
        };
        let Backoff { min_penalty_ms, max_penalty_ms, jitter_ppm } = *backoff;
        AccrualPolicy {
            // 0 would eject on no failure at all; Linkerd's admission never emits it.
            max_failures: max_failures.max(1),
            min_penalty: Duration::from_millis(min_penalty_ms),
            max_penalty: Duration::from_millis(max_penalty_ms.max(min_penalty_ms)),
            jitter: f64::from(jitter_ppm) / 1e6,
            success_rate,
        }
    }

    /// The penalty for the `step`-th ejection in a row (0-based), before jitter.
    fn base_penalty(&self, step: u32) -> Duration {
        let factor = 2u32.saturating_pow(step.min(31));
        self.min_penalty.saturating_mul(factor).min(self.max_penalty)
    }
}

/// One endpoint's breaker.
#[derive(Debug, Default)]
pub struct Accrual {
    consecutive: u32,
    ejected_until: Option<Instant>,
    /// Ejections in a row without a success in between.
    step: u32,
    window_start: Option<Instant>,
    window_ok: u32,
    window_total: u32,
}

impl Accrual {
    /// Whether the balancer may send to the endpoint now.
    pub fn available(&self, now: Instant) -> bool {
        self.ejected_until.is_none_or(|t| now >= t)
    }

    /// Records one response (or connection) outcome under `policy`;
    /// `roll` in `0.0..1.0` draws the jitter.
    pub fn record(&mut self, policy: &AccrualPolicy, success: bool, now: Instant, roll: f64) {
        let rate_tripped = policy.success_rate.as_ref().is_some_and(|sr| self.count_window(sr, success, now));
        if success && !rate_tripped {
            self.consecutive = 0;
            self.step = 0;
            return;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive >= policy.max_failures || rate_tripped {
            let base = policy.base_penalty(self.step);
            let penalty = (base + base.mul_f64(policy.jitter * roll.clamp(0.0, 1.0))).min(policy.max_penalty.max(base));
            self.ejected_until = Some(now + penalty);
            self.step = self.step.saturating_add(1);
            // Probation: the first failure after the penalty ejects again.
            self.consecutive = policy.max_failures - 1;
            self.window_start = None;
        }
    }

    /// Counts an outcome in the success-rate window; true when the window
    /// shows a rate below the threshold over enough requests.
    fn count_window(&mut self, sr: &SuccessRate, success: bool, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.duration_since(start) < sr.window => {}
            _ => {
                self.window_start = Some(now);
                self.window_ok = 0;
                self.window_total = 0;
            }
        }
        self.window_total += 1;
        self.window_ok += u32::from(success);
        self.window_total >= sr.min_requests.max(1)
            && f64::from(self.window_ok) / f64::from(self.window_total) < sr.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consecutive(max: u32) -> AccrualPolicy {
        AccrualPolicy::from_config(&FailureAccrual::Consecutive {
            max_failures: max,
            backoff: Backoff { min_penalty_ms: 1000, max_penalty_ms: 4000, jitter_ppm: 500_000 },
        })
    }

    #[test]
    fn ejects_after_max_consecutive_failures_only() {
        let p = consecutive(3);
        let mut a = Accrual::default();
        let t = Instant::now();
        a.record(&p, false, t, 0.0);
        a.record(&p, false, t, 0.0);
        a.record(&p, true, t, 0.0);
        a.record(&p, false, t, 0.0);
        a.record(&p, false, t, 0.0);
        assert!(a.available(t), "a success in between resets the count");
        a.record(&p, false, t, 0.0);
        assert!(!a.available(t));
        assert!(!a.available(t + Duration::from_millis(999)));
        assert!(a.available(t + Duration::from_millis(1000)), "min penalty, no jitter at roll 0");
    }

    #[test]
    fn penalty_grows_to_max_with_jitter_and_success_resets_it() {
        let p = consecutive(1);
        let mut a = Accrual::default();
        let t0 = Instant::now();
        a.record(&p, false, t0, 1.0);
        assert_eq!(a.ejected_until, Some(t0 + Duration::from_millis(1500)), "1s + 50% jitter");
        let t1 = t0 + Duration::from_secs(2);
        a.record(&p, false, t1, 0.0);
        assert_eq!(a.ejected_until, Some(t1 + Duration::from_secs(2)), "doubled");
        let t2 = t1 + Duration::from_secs(3);
        a.record(&p, false, t2, 0.0);
        a.record(&p, false, t2, 1.0);
        assert_eq!(a.ejected_until, Some(t2 + Duration::from_secs(4)), "capped at max, jitter too");
        a.record(&p, true, t2 + Duration::from_secs(5), 0.0);
        let t3 = t2 + Duration::from_secs(6);
        a.record(&p, false, t3, 0.0);
        assert_eq!(a.ejected_until, Some(t3 + Duration::from_secs(1)), "a success resets the penalty");
    }

    #[test]
    fn probation_ejects_on_the_first_failure_after_the_penalty() {
        let p = consecutive(5);
        let mut a = Accrual::default();
        let t = Instant::now();
        for _ in 0..5 {
            a.record(&p, false, t, 0.0);
        }
        let later = t + Duration::from_secs(1);
        assert!(a.available(later));
        a.record(&p, false, later, 0.0);
        assert!(!a.available(later));
    }

    #[test]
    fn unified_ejects_on_a_low_success_rate_without_a_failure_streak() {
        let p = AccrualPolicy::from_config(&FailureAccrual::Unified {
            max_failures: 100,
            backoff: Backoff { min_penalty_ms: 1000, max_penalty_ms: 1000, jitter_ppm: 0 },
            success_rate_threshold_ppm: 800_000,
            success_rate_window_ms: 10_000,
            success_rate_min_requests: 10,
        });
        let mut a = Accrual::default();
        let t = Instant::now();
        // Alternating: 50% success, never two failures in a row.
        for i in 0..9 {
            a.record(&p, i % 2 == 0, t, 0.0);
            assert!(a.available(t), "below min requests at {i}");
        }
        a.record(&p, false, t, 0.0);
        assert!(!a.available(t), "10 requests at 40% success");
    }
}
