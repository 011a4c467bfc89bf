//! Leader election with short timings (1 s lease, 200 ms renewals), against
//! the in-process fake API server and, in the `..._real_apiserver_...` tests,
//! a real kube-apiserver. Only the step-down test, which makes renewals fail,
//! needs the fake's injected faults.

mod servers;

use fake_apiserver::Verb;
use http::StatusCode;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::Api;
use mesh_runtime::kube::lease::{LeaseSettings, spawn};
use servers::Server;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

const NS: &str = "mesh-system";
const NAME: &str = "mesh-runtime";

struct Replica {
    name: &'static str,
    leader: watch::Receiver<bool>,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
}

async fn start(server: &Server, ns: &str, name: &'static str) -> Replica {
    start_with(server, ns, name, Duration::from_secs(1), Duration::from_millis(200)).await
}

async fn start_with(
    server: &Server,
    ns: &str,
    name: &'static str,
    duration: Duration,
    renew_every: Duration,
) -> Replica {
    let settings =
        LeaseSettings { namespace: ns.into(), name: NAME.into(), holder: name.into(), duration, renew_every };
    let shutdown = CancellationToken::new();
    let (leader, task) = spawn(server.client().await, settings, shutdown.clone());
    Replica { name, leader, task, shutdown }
}

async fn becomes(r: &Replica, want: bool, within: Duration) -> bool {
    let mut rx = r.leader.clone();
    timeout(within, rx.wait_for(|l| *l == want)).await.is_ok_and(|r| r.is_ok())
}

async fn spec(server: &Server, ns: &str) -> LeaseSpec {
    let api: Api<Lease> = Api::namespaced(server.client().await, ns);
    api.get(NAME).await.unwrap().spec.unwrap()
}

/// Two replicas; returns (leader, follower) once one leads.
async fn elect(server: &Server, ns: &str) -> (Replica, Replica) {
    let (a, b) = (start(server, ns, "replica-a").await, start(server, ns, "replica-b").await);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let now = (*a.leader.borrow(), *b.leader.borrow());
        match now {
            (true, false) => return (a, b),
            (false, true) => return (b, a),
            (true, true) => panic!("two leaders"),
            (false, false) => {}
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("nobody was elected within 3 s");
}

async fn two_replicas_elect_exactly_one_leader(server: Server) {
    let ns = server.namespace(NS).await;
    let (leader, follower) = elect(&server, &ns).await;
    // Several lease durations of renewals: the leader keeps it, the
    // follower never leads, and they never lead at once.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert!(*leader.leader.borrow(), "the leader stopped leading while renewing");
        assert!(!*follower.leader.borrow(), "the follower took over a renewed lease");
        sleep(Duration::from_millis(20)).await;
    }
    let spec = spec(&server, &ns).await;
    assert_eq!(spec.holder_identity.as_deref(), Some(leader.name));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(0), "created by the winner, never taken over");
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    assert!(spec.renew_time > spec.acquire_time, "renewals move renewTime on");
}

async fn shut_down_leader_hands_over(server: Server) {
    let ns = server.namespace(NS).await;
    let (leader, follower) = elect(&server, &ns).await;
    let stopped = Instant::now();
    leader.shutdown.cancel();
    leader.task.await.unwrap();
    assert!(!*leader.leader.borrow(), "a stopped replica says it no longer leads");
    assert!(becomes(&follower, true, Duration::from_secs(1)).await, "no handover within 1 s");
    // Well before the 1 s lease could have lapsed on its own.
    assert!(stopped.elapsed() < Duration::from_millis(900), "handover took {:?}", stopped.elapsed());
    let spec = spec(&server, &ns).await;
    assert_eq!(spec.holder_identity.as_deref(), Some(follower.name));
    assert_eq!(spec.lease_transitions, Some(1));
}

async fn dead_leader_is_replaced_after_its_lease(server: Server) {
    let ns = server.namespace(NS).await;
    let (leader, follower) = elect(&server, &ns).await;
    let died = Instant::now();
    leader.task.abort();
    assert!(becomes(&follower, true, Duration::from_secs(3)).await, "nobody took over a dead leader's lease");
    let took = died.elapsed();
    // The lease was last renewed about one period (200 ms, more under
    // load) before the abort; the follower must wait its full second from
    // when it saw that renewal, where polling alone would take ~250 ms.
    assert!(took >= Duration::from_millis(600), "took over a live lease after {took:?}");
    assert!(took < Duration::from_millis(2000), "took over only after {took:?}");
    let spec = spec(&server, &ns).await;
    assert_eq!(spec.holder_identity.as_deref(), Some(follower.name));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_its_lease_lapses() {
    // Fake only: renewals are made to fail with injected 500s.
    let server = Server::fake().await;
    let faults = server.fake_server().expect("the fake").faults();
    // A 3 s lease renewed every second: its 2 s renew deadline leaves a
    // whole second for a loaded machine to wake this test, where the 1 s
    // lease of the other tests left 200 ms and CI missed it.
    let only = start_with(&server, NS, "replica-a", Duration::from_secs(3), Duration::from_secs(1)).await;
    assert!(becomes(&only, true, Duration::from_secs(2)).await);
    faults.fail_next(Verb::Update, 1_000, StatusCode::INTERNAL_SERVER_ERROR);
    let failing = Instant::now();
    assert!(becomes(&only, false, Duration::from_secs(4)).await, "kept believing it leads");
    // It stops 2 s after its last successful renewal, which was at most one
    // period before the failures began: before the 3 s lease could lapse.
    assert!(failing.elapsed() < Duration::from_secs(3), "stepped down only after {:?}", failing.elapsed());
    assert!(faults.count_for(Verb::Update, "leases") > 0, "it did try to renew");
    // Once the API server answers again, it leads again (its own lease).
    faults.fail_next(Verb::Update, 0, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(becomes(&only, true, Duration::from_secs(4)).await, "did not recover");
    only.shutdown.cancel();
    only.task.await.unwrap();
    let spec = spec(&server, NS).await;
    assert_eq!(spec.holder_identity, None, "released on shutdown");
    assert_eq!(spec.lease_duration_seconds, Some(1), "released as client-go releases: a 1 s lease");
}

// Each election test on both servers: the fake, and a real kube-apiserver,
// whose MicroTime precision, optimistic concurrency and Lease validation are
// the ones a cluster has.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_exactly_one_leader_and_the_lease_names_it() {
    two_replicas_elect_exactly_one_leader(Server::fake().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_exactly_one_leader_real_apiserver() {
    let Some(server) = Server::real("two_replicas_elect_exactly_one_leader_real_apiserver") else { return };
    two_replicas_elect_exactly_one_leader(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_hands_over_at_once() {
    shut_down_leader_hands_over(Server::fake().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_hands_over_at_once_real_apiserver() {
    let Some(server) = Server::real("a_leader_that_shuts_down_hands_over_at_once_real_apiserver") else { return };
    shut_down_leader_hands_over(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_dies_is_replaced_once_its_lease_has_lapsed() {
    dead_leader_is_replaced_after_its_lease(Server::fake().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_dies_is_replaced_real_apiserver() {
    let Some(server) = Server::real("a_leader_that_dies_is_replaced_real_apiserver") else { return };
    dead_leader_is_replaced_after_its_lease(server).await;
}
