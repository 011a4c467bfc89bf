//! Kubernetes-mode discovery against the in-process fake API server, driven
//! by a real kube::Client and kube-runtime's watchers: initial sync, changes
//! of each kind, a compaction (410 → relist) with changes the watches never
//! see as events, deletion, and shutdown. The `..._real_apiserver` test runs
//! the same changes, less the compaction (only the fake compacts on demand),
//! against a real kube-apiserver. The empty-cluster and failed-list tests
//! stay fake-only: they count the runtime's list requests and inject
//! failures, and a real server is never empty (it serves the `kubernetes`
//! Service and its EndpointSlice).

mod servers;

use fake_apiserver::{FakeApiServer, Verb};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use mesh_proxy_api::endpoints::ServiceKey;
use mesh_runtime::hub::{EndpointsHub, EndpointsSnapshot};
use mesh_runtime::kube::endpoints;
use serde_json::{Value, json};
use servers::Server;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const TD: &str = "cluster.local";
/// Generous: a relist waits for the watcher's backoff (about a second).
const WAIT: Duration = Duration::from_secs(15);

type Answer = Vec<(String, Option<String>)>;

fn id(sa: &str, ns: &str) -> Option<String> {
    Some(format!("{sa}.{ns}.serviceaccount.identity.linkerd.{TD}"))
}

fn key(port: u16) -> ServiceKey {
    ServiceKey { namespace: "shop".into(), name: "web".into(), port }
}

fn pod(name: &str, sa: &str, meshed: bool) -> Value {
    let mut labels = json!({"app": "web"});
    if meshed {
        labels[endpoints::MESHED_LABEL] = json!("linkerd");
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"namespace": "shop", "name": name, "labels": labels},
           "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "app"}]}})
}

fn service(port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "web"},
           "spec": {"ports": [{"name": "http", "port": port, "targetPort": "http"}]}})
}

/// A slice of `web` whose endpoints are (ip, pod, uid, ready).
fn slice(name: &str, eps: &[(&str, &str, &str, bool)]) -> Value {
    let eps: Vec<Value> = eps
        .iter()
        .map(|(ip, pod, uid, ready)| {
            json!({"addresses": [ip], "conditions": {"ready": ready},
                   "targetRef": {"kind": "Pod", "namespace": "shop", "name": pod, "uid": uid}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"namespace": "shop", "name": name, "labels": {endpoints::SERVICE_NAME_LABEL: "web"}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": eps})
}

fn read(hub: &EndpointsHub, snap: &EndpointsSnapshot, svc: &ServiceKey) -> Answer {
    let body: Value = serde_json::from_slice(&hub.answer(snap, svc).body).unwrap();
    body["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["addr"].as_str().unwrap().to_string(), e["identity"].as_str().map(str::to_string)))
        .collect()
}

/// Waits until `svc`'s answer is `expected`.
async fn wait_for(
    hub: &EndpointsHub,
    rx: &mut watch::Receiver<EndpointsSnapshot>,
    svc: &ServiceKey,
    expected: &[(&str, Option<String>)],
) {
    let expected: Answer = expected.iter().map(|(a, i)| (a.to_string(), i.clone())).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = read(hub, &rx.borrow_and_update().clone(), svc);
        if seen == expected {
            return;
        }
        if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
            panic!("{svc:?}: expected {expected:?}, still {seen:?}");
        }
    }
}

/// Discovery running against an API server.
struct Discovery {
    hub: Arc<EndpointsHub>,
    synced: Arc<AtomicBool>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn discovery(client: kube::Client) -> Discovery {
    let hub = Arc::new(EndpointsHub::default());
    let synced = Arc::new(AtomicBool::new(false));
    let shutdown = CancellationToken::new();
    let run = endpoints::run(
        client,
        hub.clone(),
        mesh_proxy_api::IdentityDomain::new("linkerd", TD),
        synced.clone(),
        shutdown.clone(),
    );
    Discovery { hub, synced, shutdown, task: tokio::spawn(run) }
}

async fn wait_synced(synced: &AtomicBool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !synced.load(Ordering::Acquire) {
        assert!(tokio::time::Instant::now() < deadline, "never synced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Services, slices and Pods created, changed and deleted through the API;
/// on the fake, a compaction first makes the second half of the changes
/// reach the runtime only through relists (etcd compacts on its own
/// schedule, so a real server's watches see them as events).
async fn endpoints_follow_services_slices_and_pods(server: Server) {
    server.namespace("shop").await;
    let client = server.client().await;
    let web1 = uid(create::<Pod>(&client, pod("web-1", "web", true)).await.metadata);
    let web2 = uid(create::<Pod>(&client, pod("web-2", "legacy", false)).await.metadata);
    let web3 = uid(create::<Pod>(&client, pod("web-3", "web", true)).await.metadata);
    create::<Service>(&client, service(80)).await;
    let eps = [
        ("10.0.0.1", "web-1", &*web1, true),
        ("10.0.0.2", "web-2", &*web2, true),
        ("10.0.0.3", "web-3", &*web3, false),
    ];
    create::<EndpointSlice>(&client, slice("web-a", &eps)).await;

    let Discovery { hub, synced, shutdown, task } = discovery(client.clone());
    let mut rx = hub.subscribe();

    // Synced means the initial lists are already in the hub.
    wait_synced(&synced).await;
    let initial = read(&hub, &hub.subscribe().borrow().clone(), &key(80));
    assert_eq!(initial, vec![("10.0.0.1:8080".to_string(), id("web", "shop")), ("10.0.0.2:8080".to_string(), None)]);

    // web-3 gets ready; web-2 gets meshed.
    create::<EndpointSlice>(
        &client,
        slice("web-b", &[("10.0.0.3", "web-3", &web3, true), ("10.0.0.1", "web-1", &web1, true)]),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let meshed = json!({"metadata": {"labels": {endpoints::MESHED_LABEL: "linkerd"}}});
    pods.patch("web-2", &PatchParams::default(), &Patch::Merge(meshed)).await.unwrap();
    let three = [
        ("10.0.0.1:8080", id("web", "shop")),
        ("10.0.0.2:8080", id("legacy", "shop")),
        ("10.0.0.3:8080", id("web", "shop")),
    ];
    wait_for(&hub, &mut rx, &key(80), &three).await;

    // A slice naming a pod the runtime has not seen: left out until it is.
    create::<EndpointSlice>(&client, slice("web-c", &[("10.0.0.4", "web-4", "uid-to-come", true)])).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(read(&hub, &rx.borrow().clone(), &key(80)).len(), 3, "the unknown pod is not served");
    let web4 = uid(create::<Pod>(&client, pod("web-4", "web", true)).await.metadata);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "shop");
    let named = json!({"endpoints": slice("web-c", &[("10.0.0.4", "web-4", &web4, true)])["endpoints"]});
    slices.patch("web-c", &PatchParams::default(), &Patch::Merge(named)).await.unwrap();
    let four = [three.to_vec(), vec![("10.0.0.4:8080", id("web", "shop"))]].concat();
    wait_for(&hub, &mut rx, &key(80), &four).await;

    // On the fake, a compaction, so that changes of all three kinds before
    // the watchers are back can only be told by the relists.
    let lists =
        |fake: &FakeApiServer| ["services", "endpointslices", "pods"].map(|r| fake.faults().count_for(Verb::List, r));
    let lists_before = server.fake_server().map(lists);
    if let Some(fake) = server.fake_server() {
        fake.store().compact();
    }
    // A deleted Pod's endpoint goes although a slice still names it.
    pods.delete("web-1", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    slices.delete("web-c", &DeleteParams::default()).await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "shop");
    let port = json!({"spec": {"ports": [{"name": "http", "port": 81, "targetPort": "http"}]}});
    services.patch("web", &PatchParams::default(), &Patch::Merge(port)).await.unwrap();
    wait_for(&hub, &mut rx, &key(81), &[("10.0.0.2:8080", id("legacy", "shop")), ("10.0.0.3:8080", id("web", "shop"))])
        .await;
    assert!(read(&hub, &rx.borrow().clone(), &key(80)).is_empty(), "the old port is gone");

    // Each of the three changes needed its kind's relist (the history they
    // could have been replayed from is gone), and watching goes on from
    // there.
    if let (Some(before), Some(after)) = (lists_before, server.fake_server().map(lists)) {
        assert!(before.iter().zip(after).all(|(b, a)| a == b + 1), "one relist each: {before:?} → {after:?}");
    }
    let unmeshed = json!({"metadata": {"labels": {endpoints::MESHED_LABEL: null}}});
    pods.patch("web-3", &PatchParams::default(), &Patch::Merge(unmeshed)).await.unwrap();
    wait_for(&hub, &mut rx, &key(81), &[("10.0.0.2:8080", id("legacy", "shop")), ("10.0.0.3:8080", None)]).await;
    assert!(synced.load(Ordering::Acquire), "a relist keeps the runtime synced");

    // The Service goes: so do its answers.
    services.delete("web", &DeleteParams::default()).await.unwrap();
    wait_for(&hub, &mut rx, &key(81), &[]).await;

    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.expect("run stops on shutdown").unwrap();
}

#[tokio::test]
async fn endpoints_follow_services_slices_and_pods_through_relists() {
    endpoints_follow_services_slices_and_pods(Server::fake().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_services_slices_and_pods_real_apiserver() {
    let test = "endpoints_follow_services_slices_and_pods_real_apiserver";
    // A server of its own: discovery watches every namespace.
    let Some(server) = tokio::task::spawn_blocking(move || Server::own_real(test)).await.unwrap() else { return };
    endpoints_follow_services_slices_and_pods(server).await;
}

#[tokio::test]
async fn an_empty_cluster_syncs_and_the_hub_stays_empty() {
    let server = FakeApiServer::start().await.unwrap();
    let Discovery { hub, synced, shutdown, task } = discovery(server.client().unwrap());
    wait_synced(&synced).await;
    assert!(hub.subscribe().borrow().is_empty());
    for r in ["services", "endpointslices", "pods"] {
        assert_eq!(server.faults().count_for(Verb::List, r), 1, "{r} listed once");
    }
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.expect("run stops on shutdown").unwrap();
}

#[tokio::test]
async fn synced_waits_for_all_three_lists() {
    let server = FakeApiServer::start().await.unwrap();
    // Two of the three first lists fail: synced stays false until their
    // retries (after the watcher's backoff) succeed.
    server.faults().fail_next(Verb::List, 2, http::StatusCode::INTERNAL_SERVER_ERROR);
    server.store().create_object(service(80)).unwrap();
    let Discovery { synced, shutdown, task, .. } = discovery(server.client().unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!synced.load(Ordering::Acquire), "two of the three first lists failed");
    wait_synced(&synced).await;
    assert!(server.faults().count(Verb::List) >= 5, "the failed lists were retried");
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.expect("run stops on shutdown").unwrap();
}

/// Waits until the hub's cluster IP table answers `addr` with `expected`.
async fn wait_service_at(hub: &EndpointsHub, addr: &str, expected: Option<ServiceKey>) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while hub.service_at(addr) != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr}: expected {expected:?}, still {:?}",
            hub.service_at(addr)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The lookup behind `GET /v1/services/by-cluster-ip`: a Service's cluster
/// IP and TCP ports, whether or not it has endpoints, following port
/// changes and deletion; a headless Service has none.
#[tokio::test]
async fn cluster_ips_follow_services() {
    let server = FakeApiServer::start().await.unwrap();
    let mut web = service(80);
    web["spec"]["clusterIP"] = json!("10.96.0.20");
    web["spec"]["clusterIPs"] = json!(["10.96.0.20"]);
    server.store().create_object(web).unwrap();
    let mut headless = service(90);
    headless["metadata"]["name"] = json!("db");
    headless["spec"]["clusterIP"] = json!("None");
    server.store().create_object(headless).unwrap();
    let client = server.client().unwrap();
    let Discovery { hub, synced, shutdown, task } = discovery(client.clone());
    wait_synced(&synced).await;
    assert_eq!(hub.service_at("10.96.0.20:80".parse().unwrap()), Some(key(80)), "no endpoints needed");
    assert_eq!(hub.service_at("10.96.0.20:8080".parse().unwrap()), None, "the target port is not a Service port");

    let services: Api<Service> = Api::namespaced(client, "shop");
    let port = json!({"spec": {"ports": [{"name": "http", "port": 81, "targetPort": "http"}]}});
    services.patch("web", &PatchParams::default(), &Patch::Merge(port)).await.unwrap();
    wait_service_at(&hub, "10.96.0.20:81", Some(key(81))).await;
    assert_eq!(hub.service_at("10.96.0.20:80".parse().unwrap()), None, "the old port is gone");
    services.delete("web", &DeleteParams::default()).await.unwrap();
    wait_service_at(&hub, "10.96.0.20:81", None).await;

    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.expect("run stops on shutdown").unwrap();
}

/// Creates `object` in namespace `shop`; the API server fills in its uid.
async fn create<K>(client: &kube::Client, object: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), "shop");
    let typed: K = serde_json::from_value(object).expect("a valid object");
    api.create(&PostParams::default(), &typed).await.expect("the API server accepts it")
}

fn uid(meta: ObjectMeta) -> String {
    meta.uid.expect("a created object has a uid")
}
