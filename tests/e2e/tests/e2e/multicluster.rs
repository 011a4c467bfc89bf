//! Emojivoto across two clusters (the book's chapter 12): web and vote-bot
//! in east call emoji and voting in west through the Services east's
//! runtime mirrors (`emoji-svc-west`, `voting-svc-west`), through west's
//! gateway or straight to west's pods. Every status on the wire is what
//! `meshc reach` proves for the same call across the clusters (each hop:
//! client proxy, gateway, target). The same for opaque TCP to west's
//! `relay-svc` (its port marked opaque: through the gateway with the
//! transport header), and, pod to pod, for the federated `emoji-svc`
//! (east's own emoji-east and west's emoji behind `emoji-svc-federated`).

mod federated;
mod two_clusters;

use super::clients::{self, Observed, Req};
use meshc::multicluster::Clusters;
use meshc::multicluster::reach as cross;
use meshc::query::classes::Classes;
use meshc::query::evaluate::Verdict;
use meshc::query::reach;
use std::collections::BTreeMap;
use two_clusters::TwoClusters;

/// How the example is set up.
#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    /// `gateway/`: west admits its gateway's identity.
    Gateway,
    /// `gateway/` with west admitting web's identity (pod-to-pod's policy):
    /// through the gateway every call arrives as the gateway and is refused.
    GatewayWithClientPolicy,
    /// `pod-to-pod/`: west admits web's identity, which arrives intact.
    PodToPod,
}

/// The calls east's apps make: (client, mirrored Service, gRPC method).
const CALLS: [(&str, &str, &str); 4] = [
    ("web", "emoji-svc-west", "/emojivoto.emoji.v1.EmojiService/ListAll"),
    ("web", "voting-svc-west", "/emojivoto.voting.v1.VotingService/VoteDoughnut"),
    ("vote-bot", "emoji-svc-west", "/emojivoto.emoji.v1.EmojiService/ListAll"),
    ("vote-bot", "voting-svc-west", "/emojivoto.voting.v1.VotingService/VoteDoughnut"),
];
const PORT: u16 = 8080;

/// Lays out both clusters of the scenario and starts everything.
pub fn start(scenario: Scenario) -> TwoClusters {
    let dir = tempfile::tempdir().unwrap();
    let repo = match scenario {
        Scenario::Gateway => two_clusters::repository("gateway", dir.path(), |_| {}),
        Scenario::GatewayWithClientPolicy => two_clusters::repository("gateway", dir.path(), |repo| {
            let admits_web = super::mesh::example("emojivoto-multicluster").join("pod-to-pod/west/policy.yaml");
            std::fs::copy(admits_web, repo.join("west/policy.yaml")).unwrap();
        }),
        Scenario::PodToPod => two_clusters::repository("pod-to-pod", dir.path(), federate_emoji),
    };
    two_clusters::start(dir, &repo)
}

/// Makes emoji-svc a federated Service: east's own member (emoji-east),
/// west's emoji-svc labelled a member, and east's Link selecting members
/// (what `link-gen` writes as `federatedServiceSelector`).
fn federate_emoji(repo: &std::path::Path) {
    let member = two_clusters::e2e_repo("multicluster-federated/east-emoji.yaml");
    std::fs::copy(member, repo.join("east/emoji-east.yaml")).unwrap();
    let edit = |file: &str, from: &str, to: &str| {
        let path = repo.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file}: no `{from}`");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    let exported =
        "    mirror.linkerd.io/exported: remote-discovery\nspec:\n  selector:\n    app.kubernetes.io/name: emoji\n";
    let member_too = exported.replacen("\nspec:", "\n    mirror.linkerd.io/federated: member\nspec:", 1);
    edit("west/emojivoto.yaml", exported, &member_too);
    let selector = "  remoteDiscoverySelector:\n";
    let federated = "  federatedServiceSelector:\n    matchLabels:\n      mirror.linkerd.io/federated: member\n";
    edit("east/link.yaml", selector, &format!("{federated}{selector}"));
}

/// Sends every call and returns how many of each verdict were compared;
/// panics with every disagreement.
pub async fn check(clusters: &TwoClusters, scenario: Scenario) -> BTreeMap<String, usize> {
    let m = clusters.outcome.multicluster.as_deref().expect("clusters");
    until_mirrors_have_endpoints(clusters).await;
    let mut tally = BTreeMap::new();
    let mut wrong = Vec::new();
    for (client, mirror, method) in CALLS {
        let req = Req::grpc(method);
        let predicted = predict(m, client, mirror, &req);
        let seen = call(clusters, client, mirror, &req).await;
        *tally.entry(predicted.verdict.as_str().to_owned()).or_insert(0) += 1;
        if let Some(why) = disagreement(&predicted, &seen) {
            wrong.push(format!("east/{client} → {mirror}:{PORT} {method}: {why}"));
        }
    }
    if matches!(scenario, Scenario::Gateway | Scenario::GatewayWithClientPolicy) {
        // Without a proxy: plaintext to the gateway, which requires an identity.
        let predicted = predict(m, "unmeshed:emojivoto", "voting-svc-west", &Req::grpc(CALLS[1].2));
        let from = clusters.pod("east", "web").app;
        let host = format!("voting-svc-west.emojivoto.svc.cluster.local:{PORT}");
        let seen = clients::http(from, clusters.gateway, None, &Req::grpc(CALLS[1].2), &host).await;
        *tally.entry(predicted.verdict.as_str().to_owned()).or_insert(0) += 1;
        if let Some(why) = disagreement(&predicted, &seen) {
            wrong.push(format!("unmeshed → the gateway: {why}"));
        }
    }
    until_runtime_has_endpoints(clusters, &format!("/v1/endpoints/emojivoto/{}/{}", OPAQUE.0, OPAQUE.1)).await;
    for client in ["web", "vote-bot"] {
        let predicted = predict_opaque(m, client, OPAQUE.0, OPAQUE.1);
        let seen = call_opaque(clusters, client, OPAQUE.0, OPAQUE.1).await;
        *tally.entry(predicted.verdict.as_str().to_owned()).or_insert(0) += 1;
        if let Some(why) = disagreement(&predicted, &seen) {
            wrong.push(format!("east/{client} → {}:{} (opaque TCP): {why}", OPAQUE.0, OPAQUE.1));
        }
    }
    if matches!(scenario, Scenario::PodToPod) {
        federated::check(clusters, m, &mut tally, &mut wrong).await;
    }
    assert!(wrong.is_empty(), "{scenario:?}:\n{}\n{}", wrong.join("\n"), clusters.dump_logs());
    tally
}

/// The opaque call: west's relay-svc through its mirror, port 7000.
const OPAQUE: (&str, u16) = ("relay-svc-west", 7000);

/// `meshc reach` for an opaque connection (no request): the first hop that
/// does not allow, else the target's one connection verdict.
fn predict_opaque(m: &Clusters, client: &str, mirror: &str, port: u16) -> Predicted {
    let east = m.find("east").expect("cluster east");
    let src = &m.clusters[east].outcome;
    let classes = Classes::derive(&src.resolved, &src.configs);
    let view = reach::parse_client(src, &classes, &format!("deploy/emojivoto/{client}")).expect("a client meshc knows");
    let path = cross::path_of_mirror(m, east, "emojivoto", mirror).expect("a mirrored Service");
    let backends = cross::backends(m, &path, port);
    let [backend] = backends.as_slice() else { panic!("{mirror}: one workload behind it, got {backends:?}") };
    let app = m.clusters[path.target].outcome.resolved.workloads[backend.0].name.clone();
    let call = cross::cross(m, &view, &path, port, *backend, None);
    let verdict = match call.hops.iter().find_map(|h| h.verdict.filter(|v| *v != Verdict::Allow)) {
        Some(v) => v,
        None => call.target.as_ref().expect("every hop allows: the target decides").1.verdicts[0].verdict,
    };
    Predicted { verdict, status: None, app }
}

/// Waits, at most 10 s, until east's runtime serves endpoints at `path`:
/// a TCP connection finding none is closed, which would look like a deny.
async fn until_runtime_has_endpoints(clusters: &TwoClusters, path: &str) {
    let start = std::time::Instant::now();
    loop {
        let doc = two_clusters::runtime_get(clusters, "east", path).await;
        if doc.as_ref().is_ok_and(|d| d["endpoints"].as_array().is_some_and(|a| !a.is_empty())) {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "{path}: {doc:?}\n{}", clusters.dump_logs());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The app's opaque connection through its proxy's `--outbound-tcp` listener for the mirror.
async fn call_opaque(clusters: &TwoClusters, client: &str, mirror: &str, port: u16) -> Observed {
    let pod = clusters.pod("east", client);
    let name = format!("{mirror}.emojivoto");
    let (_, listener) = pod.opaque.iter().find(|(k, _)| *k == (name.clone(), port)).expect("an opaque listener");
    clients::tcp(pod.app, *listener, None).await
}

/// What `meshc reach` proves: the first hop that does not allow, else the target's verdict.
struct Predicted {
    verdict: Verdict,
    /// gRPC status when the call is refused with one; `None`: closed.
    status: Option<u32>,
    /// The app that answers an allowed call.
    app: String,
}

fn predict(m: &Clusters, client: &str, mirror: &str, req: &Req) -> Predicted {
    let east = m.find("east").expect("cluster east");
    let src = &m.clusters[east].outcome;
    let classes = Classes::derive(&src.resolved, &src.configs);
    let spec = if client.contains(':') { client.to_owned() } else { format!("deploy/emojivoto/{client}") };
    let view = reach::parse_client(src, &classes, &spec).expect("a client meshc knows");
    let path = cross::path_of_mirror(m, east, "emojivoto", mirror).expect("a mirrored Service");
    let backends = cross::backends(m, &path, PORT);
    let [backend] = backends.as_slice() else { panic!("{mirror}: one workload behind it, got {backends:?}") };
    let app = m.clusters[path.target].outcome.resolved.workloads[backend.0].name.clone();
    let call = cross::cross(m, &view, &path, PORT, *backend, Some(&req.to_api()));
    if let Some(hop) = call.hops.iter().find(|h| h.verdict.is_some_and(|v| v != Verdict::Allow)) {
        return Predicted { verdict: hop.verdict.unwrap_or(Verdict::Deny), status: None, app };
    }
    let (_, target) = call.target.as_ref().expect("every hop allows: the target decides");
    let v = &target.verdicts[0];
    Predicted { verdict: v.verdict, status: v.status, app }
}

/// East's proxies learn a mirror's endpoints from east's runtime, which
/// learns west's from west's runtime: until both have answered, a call
/// finds no endpoints (gRPC UNAVAILABLE, 14), which no prediction here is.
/// Waits for every mirror, at most 10 s, before anything is compared.
async fn until_mirrors_have_endpoints(clusters: &TwoClusters) {
    let start = std::time::Instant::now();
    for (client, mirror, method) in CALLS {
        loop {
            let seen = call(clusters, client, mirror, &Req::grpc(method)).await;
            if !matches!(seen, Observed::Response { grpc: Some(14), .. }) {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{mirror} has no endpoints in east: {seen:?}\n{}",
                clusters.dump_logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The app's call through its proxy's outbound listener, by the mirror's name.
async fn call(clusters: &TwoClusters, client: &str, mirror: &str, req: &Req) -> Observed {
    let pod = clusters.pod("east", client);
    let host = format!("{mirror}.emojivoto.svc.cluster.local:{PORT}");
    clients::http(pod.app, pod.outbound, None, req, &host).await
}

/// `None` when the wire agrees with the prediction (gRPC: HTTP 200 and `grpc-status`).
fn disagreement(p: &Predicted, seen: &Observed) -> Option<String> {
    let ok = match (p.verdict, p.status, seen) {
        (Verdict::Allow, _, Observed::Response { status: 200, grpc: Some(0), app: Some(name) }) => *name == p.app,
        (Verdict::Deny | Verdict::NoRoute, None, Observed::Closed(_)) => true,
        (Verdict::Allow, None, Observed::Echoed(name)) => *name == p.app,
        (Verdict::Deny | Verdict::NoRoute, Some(code), Observed::Response { status: 200, grpc, app: None }) => {
            *grpc == Some(code)
        }
        _ => false,
    };
    (!ok).then(|| {
        format!("meshc reach predicts {:?} (status {:?}, app {}); the wire saw {seen:?}", p.verdict, p.status, p.app)
    })
}
