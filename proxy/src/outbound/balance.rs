//! Power-of-two-choices over peak-EWMA load, Linkerd's default balancer.
//!
//! Each endpoint's cost is its round-trip estimate times (pending + 1). The
//! estimate jumps to any slower sample at once (peak) and otherwise decays
//! towards recent samples with a 10 s time constant; it also decays while
//! the endpoint is idle, so a once-slow endpoint is tried again. New
//! endpoints start at a 30 ms estimate. Two distinct endpoints are drawn at
//! random and the cheaper one is used.
//!
//! Endpoints come from a discovery watch, read lazily at each pick; their
//! load and breaker state survive updates that keep them.

use super::accrual::{Accrual, AccrualPolicy};
use crate::discovery::{Discovery, Endpoint, Endpoints, ServiceKey};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const DECAY: Duration = Duration::from_secs(10);
const DEFAULT_RTT: Duration = Duration::from_millis(30);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A peak-sensitive exponentially weighted moving average of round trips.
#[derive(Debug)]
pub struct PeakEwma {
    rtt_ns: f64,
    at: Instant,
}

impl PeakEwma {
    pub fn new(now: Instant) -> Self {
        PeakEwma { rtt_ns: DEFAULT_RTT.as_nanos() as f64, at: now }
    }

    fn weight(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_nanos() as f64;
        (-elapsed / DECAY.as_nanos() as f64).exp()
    }

    /// The estimate at `now`, decayed for the time since the last sample.
    pub fn estimate(&self, now: Instant) -> f64 {
        self.rtt_ns * self.weight(now)
    }

    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let sample = rtt.as_nanos() as f64;
        self.rtt_ns = if sample > self.rtt_ns {
            sample
        } else {
            let w = self.weight(now);
            self.rtt_ns * w + sample * (1.0 - w)
        };
        self.at = now;
    }
}

/// One endpoint with its load, breaker and whatever the caller attaches
/// (the connection pool in production).
pub struct EndpointState<T> {
    pub endpoint: Endpoint,
    pub conn: T,
    pending: AtomicU32,
    ewma: Mutex<PeakEwma>,
    accrual: Mutex<Accrual>,
}

impl<T> EndpointState<T> {
    fn new(endpoint: Endpoint, conn: T, now: Instant) -> Self {
        EndpointState {
            endpoint,
            conn,
            pending: AtomicU32::new(0),
            ewma: Mutex::new(PeakEwma::new(now)),
            accrual: Mutex::new(Accrual::default()),
        }
    }

    fn cost(&self, now: Instant) -> f64 {
        let pending = self.pending.load(Ordering::Relaxed);
        lock(&self.ewma).estimate(now) * f64::from(pending + 1)
    }

    fn available(&self, now: Instant) -> bool {
        lock(&self.accrual).available(now)
    }

    /// Records one exchange: its latency feeds the load estimate, its
    /// outcome the breaker (when the Service has failure accrual).
    pub fn record(&self, rtt: Duration, success: bool, accrual: Option<&AccrualPolicy>, now: Instant) {
        lock(&self.ewma).observe(rtt, now);
        if let Some(policy) = accrual {
            lock(&self.accrual).record(policy, success, now, fastrand::f64());
        }
    }
}

/// Why no endpoint could be picked; both answer 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickError {
    NoEndpoints,
    AllEjected,
}

impl std::fmt::Display for PickError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PickError::NoEndpoints => "no endpoints",
            PickError::AllEjected => "all endpoints are ejected by failure accrual",
        })
    }
}

/// A picked endpoint; counts as pending until dropped.
pub struct Picked<T> {
    pub ep: Arc<EndpointState<T>>,
    start: Instant,
}

impl<T> Picked<T> {
    /// Records the exchange's outcome, timed from the pick; the endpoint
    /// stays pending until this handle is dropped (a TCP connection's life).
    pub fn observe(&self, success: bool, accrual: Option<&AccrualPolicy>) {
        let now = Instant::now();
        self.ep.record(now.saturating_duration_since(self.start), success, accrual, now);
    }
}

impl<T> Drop for Picked<T> {
    fn drop(&mut self) {
        self.ep.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

type MakeConn<T> = Arc<dyn Fn(&Endpoint) -> T + Send + Sync>;

pub struct Balancer<T> {
    key: ServiceKey,
    discovery: Arc<dyn Discovery>,
    make: MakeConn<T>,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    rx: watch::Receiver<Endpoints>,
    endpoints: Vec<Arc<EndpointState<T>>>,
}

impl<T> Balancer<T> {
    pub fn new(key: ServiceKey, discovery: Arc<dyn Discovery>, make: MakeConn<T>) -> Self {
        let mut rx = discovery.endpoints(&key);
        let now = Instant::now();
        let endpoints =
            rx.borrow_and_update().iter().map(|e| Arc::new(EndpointState::new(e.clone(), make(e), now))).collect();
        Balancer { key, discovery, make, inner: Mutex::new(Inner { rx, endpoints }) }
    }

    /// Whether discovery keeps watching this Service (a live receiver): a
    /// runtime watch whose first answer is on its way, rather than a name
    /// discovery does not know.
    pub fn is_watched(&self) -> bool {
        lock(&self.inner).rx.has_changed().is_ok()
    }

    /// With no endpoints yet, waits up to `timeout` for discovery to answer,
    /// so the first request to a newly watched Service is not refused while
    /// its endpoints are in flight.
    pub async fn ready(&self, timeout: std::time::Duration) {
        let mut rx = {
            let mut inner = lock(&self.inner);
            self.refresh(&mut inner);
            if !inner.endpoints.is_empty() || inner.rx.has_changed().is_err() {
                return;
            }
            inner.rx.clone()
        };
        let _ = tokio::time::timeout(timeout, rx.changed()).await;
    }

    /// Whether discovery has endpoints for this Service right now.
    pub fn is_empty(&self) -> bool {
        let mut inner = lock(&self.inner);
        self.refresh(&mut inner);
        inner.endpoints.is_empty()
    }

    fn refresh(&self, inner: &mut Inner<T>) {
        match inner.rx.has_changed() {
            Ok(false) => return,
            Ok(true) => {}
            // The Service was unknown to discovery: ask again, it may exist now.
            Err(_) => inner.rx = self.discovery.endpoints(&self.key),
        }
        let latest = inner.rx.borrow_and_update().clone();
        let now = Instant::now();
        let old = std::mem::take(&mut inner.endpoints);
        inner.endpoints = latest
            .iter()
            .map(|e| match old.iter().find(|s| s.endpoint == *e) {
                Some(s) => s.clone(),
                None => Arc::new(EndpointState::new(e.clone(), (self.make)(e), now)),
            })
            .collect();
    }

    /// Picks the cheaper of two random available endpoints.
    pub fn pick(&self) -> Result<Picked<T>, PickError> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        self.refresh(&mut inner);
        if inner.endpoints.is_empty() {
            return Err(PickError::NoEndpoints);
        }
        let available: Vec<&Arc<EndpointState<T>>> = inner.endpoints.iter().filter(|e| e.available(now)).collect();
        let ep = match available.len() {
            0 => return Err(PickError::AllEjected),
            1 => available[0],
            n => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (ea, eb) = (available[a], available[b]);
                if eb.cost(now) < ea.cost(now) { eb } else { ea }
            }
        };
        ep.pending.fetch_add(1, Ordering::Relaxed);
        Ok(Picked { ep: ep.clone(), start: now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::NoDiscovery;
    use std::net::SocketAddr;

    struct Fixed(Endpoints);
    impl Discovery for Fixed {
        fn endpoints(&self, _svc: &ServiceKey) -> watch::Receiver<Endpoints> {
            let (tx, rx) = watch::channel(self.0.clone());
            std::mem::forget(tx);
            rx
        }
        fn service_at(&self, _addr: SocketAddr) -> Option<ServiceKey> {
            None
        }
    }

    fn key() -> ServiceKey {
        ServiceKey { namespace: "test".into(), name: "svc".into(), port: 80 }
    }

    fn balancer(addrs: &[&str]) -> Balancer<()> {
        let eps = addrs.iter().map(|a| Endpoint { addr: a.parse().unwrap(), identity: None }).collect();
        Balancer::new(key(), Arc::new(Fixed(Arc::new(eps))), Arc::new(|_| ()))
    }

    #[test]
    fn ewma_takes_peaks_at_once_and_decays_towards_faster_samples() {
        let t = Instant::now();
        let mut e = PeakEwma::new(t);
        e.observe(Duration::from_millis(500), t);
        assert_eq!(e.estimate(t), 500e6, "peak");
        e.observe(Duration::from_millis(10), t + Duration::from_secs(10));
        let est = e.estimate(t + Duration::from_secs(10));
        assert!(est > 10e6 && est < 500e6 * 0.4, "one time constant later: {est}");
        assert!(e.estimate(t + Duration::from_secs(60)) < est / 50.0, "idle decay");
    }

    #[test]
    fn slow_endpoint_gets_less_traffic() {
        let b = balancer(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let slow: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let start = Instant::now();
        let mut to_slow = 0;
        for i in 0..3000u32 {
            let picked = b.pick().unwrap();
            let is_slow = picked.ep.endpoint.addr == slow;
            to_slow += u32::from(is_slow);
            let rtt = Duration::from_millis(if is_slow { 200 } else { 5 });
            // Simulated clock: one request every millisecond.
            picked.ep.record(rtt, true, None, start + Duration::from_millis(u64::from(i)));
        }
        // Uniform would be 1000; P2C only picks the slow one when drawn
        // against itself, which it never is (distinct draws).
        assert!(to_slow < 100, "slow endpoint got {to_slow} of 3000");
    }

    #[test]
    fn pending_requests_spread_load() {
        let b = balancer(&["10.0.0.1:80", "10.0.0.2:80"]);
        let held: Vec<_> = (0..10).map(|_| b.pick().unwrap()).collect();
        let on_first = held.iter().filter(|p| p.ep.endpoint.addr.ip().to_string() == "10.0.0.1").count();
        assert_eq!(on_first, 5, "equal estimates: pending count alternates");
        drop(held);
        assert!(b.inner.lock().unwrap().endpoints.iter().all(|e| e.pending.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn ejected_endpoints_are_skipped_and_all_ejected_fails_fast() {
        let b = balancer(&["10.0.0.1:80", "10.0.0.2:80"]);
        let policy = AccrualPolicy::from_config(&mesh_proxy_api::outbound::FailureAccrual::Consecutive {
            max_failures: 1,
            backoff: mesh_proxy_api::outbound::Backoff {
                min_penalty_ms: 60_000,
                max_penalty_ms: 60_000,
                jitter_ppm: 0,
            },
        });
        let first = b.pick().unwrap();
        let bad = first.ep.endpoint.addr;
        first.observe(false, Some(&policy));
        drop(first);
        for _ in 0..20 {
            assert_ne!(b.pick().unwrap().ep.endpoint.addr, bad);
        }
        b.pick().unwrap().observe(false, Some(&policy));
        assert_eq!(b.pick().err(), Some(PickError::AllEjected));
    }

    #[test]
    fn no_endpoints_and_updates_keep_state() {
        let none = Balancer::new(key(), Arc::new(NoDiscovery), Arc::new(|_| ()));
        assert_eq!(none.pick().err(), Some(PickError::NoEndpoints));

        let (tx, rx) =
            watch::channel(Arc::new(vec![Endpoint { addr: "10.0.0.1:80".parse().unwrap(), identity: None }]));
        struct Once(Mutex<Option<watch::Receiver<Endpoints>>>);
        impl Discovery for Once {
            fn endpoints(&self, _: &ServiceKey) -> watch::Receiver<Endpoints> {
                self.0.lock().unwrap().take().unwrap()
            }
            fn service_at(&self, _: SocketAddr) -> Option<ServiceKey> {
                None
            }
        }
        let b: Balancer<()> = Balancer::new(key(), Arc::new(Once(Mutex::new(Some(rx)))), Arc::new(|_| ()));
        let before = b.pick().unwrap().ep.clone();
        tx.send_replace(Arc::new(vec![
            Endpoint { addr: "10.0.0.1:80".parse().unwrap(), identity: None },
            Endpoint { addr: "10.0.0.2:80".parse().unwrap(), identity: None },
        ]));
        assert!(!b.is_empty());
        let kept = b.inner.lock().unwrap().endpoints[0].clone();
        assert!(Arc::ptr_eq(&before, &kept), "an endpoint that stays keeps its load and breaker");
    }
}
