//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` does it: one replica holds the Lease and renews it;
//! the others take it over once it was left unrenewed for its duration.
//!
//! Written here rather than taken from a crate: kube-coordinate and
//! kube-leader-election pin older kube versions, and kube-lease-manager
//! writes with server-side apply and no resourceVersion precondition and
//! trusts the Lease's remote timestamps, which is not the behaviour below.
//!
//! - Expiry is judged by the local monotonic clock: a candidate notes when
//!   it last saw the Lease's spec change and waits `leaseDurationSeconds`
//!   from then. `renewTime` is written for people to read but never trusted,
//!   so clock skew between nodes cannot make two replicas lead at once.
//! - Every write carries the resourceVersion it was decided on: of two
//!   candidates, one wins and the other gets 409 and re-reads.
//! - A leader that could not renew for `duration - renew_every` (at most
//!   half the duration) stops leading, before anyone else may take over.
//! - On shutdown a leader clears `holderIdentity` (and sets the duration to
//!   1 s) so that a successor takes over at its next poll.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

/// How long a Lease is held without renewal (client-go's default).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews and candidates look (client-go: every 2 s,
/// with a 10 s renew deadline; here the deadline is 15 s − 5 s).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Which Lease, who we are in it, and its timing.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity in `holderIdentity` (the pod name).
    pub holder: String,
    /// `leaseDurationSeconds`, rounded up to whole seconds.
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseSettings {
    /// The production timing: [`LEASE_DURATION`], [`RENEW_EVERY`].
    pub fn new(namespace: &str, name: &str, holder: &str) -> Self {
        LeaseSettings {
            namespace: namespace.into(),
            name: name.into(),
            holder: holder.into(),
            duration: LEASE_DURATION,
            renew_every: RENEW_EVERY,
        }
    }

    fn duration_secs(&self) -> i32 {
        let secs = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }

    /// How long after the start of its last successful write a leader may
    /// still act. Others wait the whole duration from when they *saw* that
    /// write, which is later; the margin covers clock rate drift.
    fn renew_deadline(&self) -> Duration {
        let duration = Duration::from_secs(self.duration_secs() as u64);
        duration.saturating_sub(self.renew_every).max(duration / 2)
    }
}

/// What a replica should do about a Lease it has just read.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    /// We hold it: write a new renewTime.
    Renew,
    /// Nobody holds it, or its holder let it lapse: take it.
    Acquire,
    /// Someone else holds it for at most this long.
    Wait(Duration),
}

/// `changed_at` is when we last saw `spec` change, on our own clock.
fn decide(spec: &LeaseSpec, changed_at: Instant, now: Instant, me: &str) -> Decision {
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) => {
            let secs = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
            let expires = changed_at + Duration::from_secs(secs);
            match expires.checked_duration_since(now) {
                Some(left) if !left.is_zero() => Decision::Wait(left),
                _ => Decision::Acquire,
            }
        }
    }
}

/// Starts electing. The receiver says whether this replica leads now; the
/// task ends after `shutdown`, having released the Lease if it held it.
pub fn spawn(
    client: kube::Client,
    s: LeaseSettings,
    shutdown: CancellationToken,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (leader, rx) = watch::channel(false);
    let api = Api::namespaced(client, &s.namespace);
    let elector = Elector { api, s, observed: None, leader_until: None, leader };
    (rx, tokio::spawn(elector.run(shutdown)))
}

struct Elector {
    api: Api<Lease>,
    s: LeaseSettings,
    /// The Lease as last read or written, and when its spec last changed.
    observed: Option<(Lease, Instant)>,
    /// While leading: when leadership lapses unless renewed.
    leader_until: Option<Instant>,
    leader: watch::Sender<bool>,
}

impl Elector {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let attempt = timeout(self.attempt_budget(started), self.try_acquire_or_renew(started));
            let outcome = tokio::select! {
                outcome = attempt => outcome.unwrap_or_else(|_| Err("the API server did not answer in time".into())),
                _ = shutdown.cancelled() => break,
            };
            failures = self.note(outcome, failures);
            self.lapse_if_due(Instant::now());
            tokio::select! {
                _ = sleep(self.next_delay(failures)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.release().await;
    }

    /// A leader's request may take until its leadership lapses; a
    /// candidate's until its next turn.
    fn attempt_budget(&self, now: Instant) -> Duration {
        let until_lapse = self.leader_until.map(|t| t.saturating_duration_since(now));
        until_lapse.unwrap_or(self.s.renew_every).min(self.s.renew_every).max(Duration::from_millis(1))
    }

    /// Logs the first failure of a streak and the recovery; returns the
    /// streak's new length.
    fn note(&self, outcome: Result<(), String>, failures: u32) -> u32 {
        match outcome {
            Ok(()) if failures > 0 => {
                tracing::info!(lease = %self.s.name, failures, "the Lease can be read and written again");
                0
            }
            Ok(()) => 0,
            Err(e) if failures == 0 => {
                tracing::warn!(lease = %self.s.name, error = %e, "leader election: retrying with backoff");
                1
            }
            Err(_) => failures.saturating_add(1),
        }
    }

    fn next_delay(&self, failures: u32) -> Duration {
        let every = self.s.renew_every;
        if failures > 0 {
            // Exponential from an eighth of the period, capped at the period
            // so that a leader keeps trying before its deadline.
            let shift = (failures - 1).min(3);
            return (every / 8 * (1 << shift)).min(every);
        }
        if *self.leader.borrow() {
            return every;
        }
        // Candidates spread out their polls (client-go jitters by 20%), but
        // wake when the holder's lease would run out.
        let jittered = every.mul_f64(1.0 + fastrand::f64() * 0.2);
        match self.observed_decision() {
            Some(Decision::Wait(left)) => jittered.min(left + Duration::from_millis(10)),
            _ => jittered,
        }
    }

    /// What the Lease as last seen would have us do now.
    fn observed_decision(&self) -> Option<Decision> {
        let (lease, changed_at) = self.observed.as_ref()?;
        Some(decide(lease.spec.as_ref()?, *changed_at, Instant::now(), &self.s.holder))
    }

    async fn try_acquire_or_renew(&mut self, started: Instant) -> Result<(), String> {
        let Some(lease) = self.api.get_opt(&self.s.name).await.map_err(|e| e.to_string())? else {
            return self.create(started).await;
        };
        self.observe(&lease, Instant::now());
        let spec = lease.spec.clone().unwrap_or_default();
        let changed_at = self.observed.as_ref().map_or(started, |(_, at)| *at);
        match decide(&spec, changed_at, Instant::now(), &self.s.holder) {
            Decision::Wait(_) => {
                if self.leader_until.take().is_some() {
                    tracing::warn!(lease = %self.s.name, holder = ?spec.holder_identity, "another replica holds the Lease: no longer leading");
                }
                self.leader.send_if_modified(|l| std::mem::replace(l, false));
                Ok(())
            }
            decision => self.write(lease, decision == Decision::Acquire, started).await,
        }
    }

    async fn create(&mut self, started: Instant) -> Result<(), String> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta { name: Some(self.s.name.clone()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.s.holder.clone()),
                lease_duration_seconds: Some(self.s.duration_secs()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.became_leader(&created, started);
                Ok(())
            }
            // Another replica created it first: read it at the next turn.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// PUTs `lease` (with the resourceVersion it was read at) as held by us.
    async fn write(&mut self, mut lease: Lease, acquire: bool, started: Instant) -> Result<(), String> {
        let now = MicroTime(Timestamp::now());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if acquire {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            spec.acquire_time = Some(now.clone());
            spec.holder_identity = Some(self.s.holder.clone());
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(self.s.duration_secs());
        match self.api.replace(&self.s.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.became_leader(&written, started);
                Ok(())
            }
            // Someone else wrote first; the next read tells who holds it.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn became_leader(&mut self, lease: &Lease, started: Instant) {
        self.observe(lease, Instant::now());
        self.leader_until = Some(started + self.s.renew_deadline());
        if !self.leader.send_replace(true) {
            tracing::info!(lease = %self.s.name, holder = %self.s.holder, "leading");
        }
    }

    fn observe(&mut self, lease: &Lease, now: Instant) {
        let unchanged = self.observed.as_ref().is_some_and(|(seen, _)| seen.spec == lease.spec);
        let changed_at = match &self.observed {
            Some((_, at)) if unchanged => *at,
            _ => now,
        };
        self.observed = Some((lease.clone(), changed_at));
    }

    /// Stops leading once the last successful renewal is too old.
    fn lapse_if_due(&mut self, now: Instant) {
        if self.leader_until.is_some_and(|t| now >= t) {
            self.leader_until = None;
            self.leader.send_replace(false);
            tracing::warn!(lease = %self.s.name, "could not renew the Lease in time: no longer leading");
        }
    }

    /// Stops leading first, then hands the Lease over: a successor may act
    /// as soon as it sees the cleared holder.
    async fn release(mut self) {
        self.leader_until = None;
        self.leader.send_replace(false);
        if self.observed_decision() != Some(Decision::Renew) {
            return;
        }
        match timeout(self.s.renew_every, self.hand_over()).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.s.name, "released the Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.s.name, error = %e, "could not release the Lease; it lapses by itself")
            }
            Err(_) => tracing::warn!(lease = %self.s.name, "releasing the Lease timed out; it lapses by itself"),
        }
    }

    /// Clears the holder if it is still us. Read afresh: a renewal cut
    /// short by the shutdown may have been written all the same.
    async fn hand_over(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else { return Ok(false) };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.s.holder.as_str()) {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        match self.api.replace(&self.s.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Written by someone else since our read: no longer ours.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn our_own_lease_is_renewed_whatever_its_age() {
        let t0 = Instant::now();
        let spec = held_by(Some("me"), 15);
        assert_eq!(decide(&spec, t0, t0, "me"), Decision::Renew);
        assert_eq!(decide(&spec, t0, t0 + Duration::from_secs(60), "me"), Decision::Renew);
    }

    #[test]
    fn an_empty_or_missing_holder_is_taken_at_once() {
        let t0 = Instant::now();
        assert_eq!(decide(&held_by(None, 15), t0, t0, "me"), Decision::Acquire);
        assert_eq!(decide(&held_by(Some(""), 15), t0, t0, "me"), Decision::Acquire);
        assert_eq!(decide(&LeaseSpec::default(), t0, t0, "me"), Decision::Acquire);
    }

    #[test]
    fn another_holder_is_waited_for_until_the_duration_has_passed_since_the_last_change_we_saw() {
        let t0 = Instant::now();
        let spec = held_by(Some("other"), 15);
        assert_eq!(decide(&spec, t0, t0, "me"), Decision::Wait(Duration::from_secs(15)));
        assert_eq!(decide(&spec, t0, t0 + Duration::from_secs(10), "me"), Decision::Wait(Duration::from_secs(5)));
        assert_eq!(decide(&spec, t0, t0 + Duration::from_secs(15), "me"), Decision::Acquire);
        assert_eq!(decide(&spec, t0, t0 + Duration::from_secs(16), "me"), Decision::Acquire);
    }

    #[test]
    fn remote_timestamps_are_not_trusted() {
        // A renewTime far in the past (a skewed clock) does not make a
        // lease we have just seen change look expired.
        let t0 = Instant::now();
        let mut spec = held_by(Some("other"), 15);
        spec.renew_time = Some(MicroTime(Timestamp::UNIX_EPOCH));
        assert_eq!(decide(&spec, t0, t0 + Duration::from_secs(1), "me"), Decision::Wait(Duration::from_secs(14)));
    }

    #[test]
    fn a_holder_without_a_duration_has_lapsed() {
        let t0 = Instant::now();
        let spec = LeaseSpec { holder_identity: Some("other".into()), ..LeaseSpec::default() };
        assert_eq!(decide(&spec, t0, t0, "me"), Decision::Acquire);
        assert_eq!(decide(&held_by(Some("other"), -3), t0, t0, "me"), Decision::Acquire);
    }

    #[test]
    fn the_renew_deadline_leaves_a_margin_within_the_duration() {
        let s = LeaseSettings::new("ns", "l", "me");
        assert_eq!(s.duration_secs(), 15);
        assert_eq!(s.renew_deadline(), Duration::from_secs(10));
        let short =
            LeaseSettings { duration: Duration::from_secs(1), renew_every: Duration::from_millis(200), ..s.clone() };
        assert_eq!(short.renew_deadline(), Duration::from_millis(800));
        let odd = LeaseSettings { duration: Duration::from_millis(1500), renew_every: Duration::from_secs(2), ..s };
        assert_eq!(odd.duration_secs(), 2);
        assert_eq!(odd.renew_deadline(), Duration::from_secs(1));
    }
}
