//! The runtime's background tasks (watches, pollers, listeners, renewals)
//! are supervised: one that panics or ends before shutdown is a failure.
//! The runtime then fails `/ready`, stops serving and stops, and the
//! binary exits non-zero so that its supervisor (the kubelet, systemd)
//! starts it again with fresh state.
//!
//! Why not restart the task in place: a watch's state lives partly in the
//! store (what the store holds from a watch that died is no longer kept
//! up to date) and partly in the task (the relist bookkeeping), and a
//! restarted task could not tell which of the store's objects are stale.
//! A new process starts from nothing, so nothing stale is ever served
//! behind a 200; the other replicas serve meanwhile.

use crate::metrics::Metrics;
use crate::serve::Readiness;
use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The runtime's background tasks and the first failure among them.
pub struct Tasks {
    shutdown: CancellationToken,
    failure: watch::Sender<Option<String>>,
    metrics: Option<Arc<Metrics>>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Tasks that stop at `shutdown`, which a failure cancels.
    pub fn new(shutdown: CancellationToken) -> Tasks {
        Tasks { shutdown, failure: watch::channel(None).0, metrics: None, handles: Vec::new() }
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Failures are counted in `metrics` from now on.
    pub fn count_in(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// Runs `task` under the name `name` (a fixed word: it is a metrics label).
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.adopt(name, tokio::spawn(task));
    }

    /// Supervises a task spawned elsewhere.
    pub fn adopt(&mut self, name: &'static str, handle: JoinHandle<()>) {
        let (shutdown, failure, metrics) = (self.shutdown.clone(), self.failure.clone(), self.metrics.clone());
        self.handles.push(tokio::spawn(async move {
            let why = match handle.await {
                Ok(()) => "ended".to_owned(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
                Err(_) => "was cancelled".to_owned(),
            };
            if shutdown.is_cancelled() {
                return;
            }
            let message = format!("background task `{name}` {why}");
            tracing::error!("{message}; stopping the runtime so that it is restarted with fresh state");
            if let Some(m) = metrics {
                m.task_failed(name);
            }
            failure.send_if_modified(|f| f.is_none() && f.replace(message).is_none());
            shutdown.cancel();
        }));
    }

    /// The first failure, once there is one.
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.failure.subscribe()
    }

    /// `inner`, failing as soon as a task has failed or shutdown began.
    pub fn readiness(&self, inner: Arc<dyn Readiness>) -> Arc<dyn Readiness> {
        Arc::new(Supervised { inner, failure: self.failure(), shutdown: self.shutdown.clone() })
    }

    /// Waits for every task (after shutdown).
    pub async fn join(mut self) {
        for h in std::mem::take(&mut self.handles) {
            let _ = h.await;
        }
    }
}

/// Tasks dropped without [`Tasks::join`] (a start that failed half-way)
/// are stopped rather than left running unsupervised.
impl Drop for Tasks {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.shutdown.cancel();
        }
    }
}

/// Runs blocking work (file reads, signature checks) on tokio's blocking
/// pool so that it never holds up an async worker thread; a panic there is
/// raised again here, in the supervised task that asked for the work.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) => match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            // Cancelled: only when the runtime itself shuts down.
            Err(_) => std::future::pending().await,
        },
    }
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

struct Supervised {
    inner: Arc<dyn Readiness>,
    failure: watch::Receiver<Option<String>>,
    shutdown: CancellationToken,
}

impl Readiness for Supervised {
    fn ready(&self) -> Result<String, String> {
        if let Some(f) = self.failure.borrow().as_ref() {
            return Err(f.clone());
        }
        if self.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        self.inner.ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Ready;
    impl Readiness for Ready {
        fn ready(&self) -> Result<String, String> {
            Ok("fine".into())
        }
    }

    async fn first_failure(tasks: &Tasks) -> String {
        let mut rx = tasks.failure();
        let f = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some)).await.unwrap().unwrap();
        f.clone().unwrap()
    }

    #[tokio::test]
    async fn a_task_that_ends_before_shutdown_is_a_failure() {
        let mut tasks = Tasks::new(CancellationToken::new());
        let metrics = Arc::new(Metrics::new());
        tasks.count_in(metrics.clone());
        let ready = tasks.readiness(Arc::new(Ready));
        assert_eq!(ready.ready(), Ok("fine".into()));
        tasks.spawn("poller", async {});
        assert_eq!(first_failure(&tasks).await, "background task `poller` ended");
        assert!(tasks.shutdown().is_cancelled());
        assert_eq!(ready.ready(), Err("background task `poller` ended".into()));
        assert!(metrics.encode().contains(r#"mesh_runtime_task_failures_total{task="poller"} 1"#));
        tasks.join().await;
    }

    #[tokio::test]
    async fn a_panic_is_reported_with_its_message_and_only_the_first_failure_counts() {
        let mut tasks = Tasks::new(CancellationToken::new());
        tasks.spawn("watch", async { panic!("bad object {}", 7) });
        assert_eq!(first_failure(&tasks).await, "background task `watch` panicked: bad object 7");
        tasks.spawn("later", async {});
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tasks.failure().borrow().as_deref(), Some("background task `watch` panicked: bad object 7"));
    }

    #[tokio::test]
    async fn tasks_that_end_at_shutdown_are_no_failure() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new(shutdown.clone());
        let stop = shutdown.clone();
        tasks.spawn("server", async move { stop.cancelled().await });
        let ready = tasks.readiness(Arc::new(Ready));
        shutdown.cancel();
        let failure = tasks.failure();
        tasks.join().await;
        assert!(failure.borrow().is_none());
        assert_eq!(ready.ready(), Err("shutting down".into()));
    }
}
