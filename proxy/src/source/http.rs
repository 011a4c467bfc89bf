//! The runtime controller as a config source: long polls
//! `GET /v1/config?workload=…&after=<digest>&wait=…` (runtime/API.md) over
//! mTLS with the workload certificate. The bytes it yields go through the
//! same verifying loader as a file's, so the proxy checks signatures itself
//! and keeps its last good config whatever the runtime sends.
//!
//! Outcomes: 200 yields the object; 304 (the wait ran out, nothing new)
//! polls again at once; 404 (the runtime holds nothing for us yet) polls
//! again after `not_found`; 403 (the runtime serves no config our identity
//! may read: another identity's, or none yet, which it does not tell apart
//! so that callers cannot enumerate workloads) is yielded as an error once
//! and retried every `forbidden`; connection
//! failures and other statuses are yielded once and retried with capped,
//! jittered exponential backoff.

pub mod client;

use super::{ConfigSource, SourceError};
pub use client::{Reply, RuntimeClient, TlsSource};
use http::StatusCode;
use mesh_proxy_api::envelope::digest;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How the runtime clients wait and retry.
#[derive(Clone, Copy, Debug)]
pub struct PollTiming {
    /// `wait=` of each long poll: how long the runtime may hold it.
    pub wait: Duration,
    /// Backoff after a failure: starts at `retry_min`, doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Pause after a 403: no config our identity may read, which a newly
    /// published config (the usual case at a workload's first start) or a
    /// new certificate changes, so this also bounds how soon a first
    /// config is seen.
    pub forbidden: Duration,
    /// Pause after a 404: the runtime answers those at once, so this is how
    /// soon a workload's first config is seen.
    pub not_found: Duration,
}

impl Default for PollTiming {
    fn default() -> PollTiming {
        PollTiming {
            wait: Duration::from_secs(30),
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            forbidden: Duration::from_secs(2),
            not_found: Duration::from_secs(1),
        }
    }
}

impl PollTiming {
    /// The whole long poll may take `wait` plus this before it is given up
    /// as a dead connection.
    pub fn request_timeout(&self) -> Duration {
        self.wait + Duration::from_secs(10)
    }

    /// `wait=` in whole seconds, at least 1 (the API's unit).
    pub fn wait_param(&self) -> u64 {
        self.wait.as_secs().max(1)
    }
}

/// Capped exponential backoff with equal jitter: each delay is between half
/// and all of the current step, so proxies that lost the runtime together
/// do not come back in lockstep.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        Backoff { min, max: max.max(min), step: min }
    }

    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }

    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

/// What the last yield was, so only changes are yielded.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Content(String),
    Failed(String),
}

enum Outcome {
    Changed { bytes: Vec<u8>, digest: String },
    Unchanged,
    Missing,
    Failed { message: String, retry_in: Duration },
}

pub struct RuntimeSource {
    client: Arc<RuntimeClient>,
    /// What is polled, for messages: `Kind/namespace/name`, or
    /// `ServicePolicies of <namespace>`.
    workload: String,
    /// The request without `wait` and `after`.
    base_path: String,
    timing: PollTiming,
    /// The digest the runtime last sent: the long poll waits for another.
    after: Option<String>,
    last: Option<Seen>,
    /// No request before this (kept in `self` so a cancelled `next()` still honours it).
    resume_at: Option<Instant>,
    backoff: Backoff,
    missing_logged: bool,
}

impl RuntimeSource {
    /// Watches `workload` (`Kind/namespace/name`) through `client`.
    pub fn new(client: Arc<RuntimeClient>, workload: String, timing: PollTiming) -> RuntimeSource {
        let base_path = format!("/v1/config?workload={}", client::encode_query(&workload));
        RuntimeSource::polling(client, workload, base_path, timing)
    }

    /// Watches the shared Service policies clients in `namespace` see
    /// (`GET /v1/service-policies?namespace=…`, runtime/API.md).
    pub fn service_policies(client: Arc<RuntimeClient>, namespace: &str, timing: PollTiming) -> RuntimeSource {
        let base_path = format!("/v1/service-policies?namespace={}", client::encode_query(namespace));
        RuntimeSource::polling(client, format!("ServicePolicies of {namespace}"), base_path, timing)
    }

    fn polling(client: Arc<RuntimeClient>, workload: String, base_path: String, timing: PollTiming) -> RuntimeSource {
        let backoff = Backoff::new(timing.retry_min, timing.retry_max);
        RuntimeSource {
            client,
            workload,
            base_path,
            timing,
            after: None,
            last: None,
            resume_at: None,
            backoff,
            missing_logged: false,
        }
    }

    async fn poll(&mut self) -> Outcome {
        let mut path = format!("{}&wait={}", self.base_path, self.timing.wait_param());
        if let Some(after) = &self.after {
            path.push_str(&format!("&after={}", client::encode_query(after)));
        }
        match self.client.get(&path, self.timing.request_timeout()).await {
            Ok(reply) => self.outcome(reply),
            Err(message) => Outcome::Failed { message, retry_in: self.backoff.next_delay() },
        }
    }

    fn outcome(&mut self, reply: Reply) -> Outcome {
        let failed =
            |what: &str, reply: &Reply| format!("runtime {what} ({}): {}", reply.status, reply.error_message());
        match reply.status {
            StatusCode::OK => match reply.digest.clone().or_else(|| stated_digest(&reply.body)) {
                Some(digest) => Outcome::Changed { bytes: reply.body.to_vec(), digest },
                None => Outcome::Failed {
                    message: format!("runtime sent {} without x-mesh-digest or spec.digest", self.workload),
                    retry_in: self.backoff.next_delay(),
                },
            },
            StatusCode::NOT_MODIFIED => Outcome::Unchanged,
            StatusCode::NOT_FOUND => Outcome::Missing,
            StatusCode::FORBIDDEN => Outcome::Failed {
                message: failed(&format!("refused our identity for {}", self.workload), &reply),
                retry_in: self.timing.forbidden,
            },
            _ => Outcome::Failed { message: failed("answered", &reply), retry_in: self.backoff.next_delay() },
        }
    }
}

/// `spec.digest` of a ProxyConfig object, for a runtime that sent no header.
fn stated_digest(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.pointer("/spec/digest")?.as_str().map(str::to_string)
}

impl ConfigSource for RuntimeSource {
    async fn next(&mut self) -> Result<Vec<u8>, SourceError> {
        loop {
            if let Some(at) = self.resume_at {
                tokio::time::sleep_until(at).await;
                self.resume_at = None;
            }
            match self.poll().await {
                Outcome::Changed { bytes, digest: d } => {
                    self.backoff.reset();
                    self.missing_logged = false;
                    self.after = Some(d);
                    let seen = Seen::Content(digest(&bytes));
                    if self.last.as_ref() != Some(&seen) {
                        self.last = Some(seen);
                        return Ok(bytes);
                    }
                }
                Outcome::Unchanged => {
                    self.backoff.reset();
                    if matches!(self.last, Some(Seen::Failed(_))) {
                        tracing::info!(workload = %self.workload, "runtime reachable again; config unchanged");
                        self.last = None;
                    }
                }
                Outcome::Missing => {
                    self.backoff.reset();
                    if !self.missing_logged {
                        tracing::info!(workload = %self.workload, "the runtime holds nothing for this yet");
                        self.missing_logged = true;
                    }
                    self.resume_at = Some(Instant::now() + self.timing.not_found);
                }
                Outcome::Failed { message, retry_in } => {
                    tracing::debug!(retry_in = ?retry_in, "{message}");
                    self.resume_at = Some(Instant::now() + retry_in);
                    let seen = Seen::Failed(message.clone());
                    if self.last.as_ref() != Some(&seen) {
                        self.last = Some(seen);
                        return Err(SourceError(message));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let steps: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        for (d, step) in steps.iter().zip([100, 200, 400, 400, 400]) {
            assert!(*d >= Duration::from_millis(step / 2) && *d <= Duration::from_millis(step), "{d:?} for {step}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn the_digest_falls_back_to_spec_digest() {
        assert_eq!(stated_digest(br#"{"spec":{"digest":"sha256:ab"}}"#).as_deref(), Some("sha256:ab"));
        assert_eq!(stated_digest(b"{}"), None);
        assert_eq!(stated_digest(b"not json"), None);
    }
}
