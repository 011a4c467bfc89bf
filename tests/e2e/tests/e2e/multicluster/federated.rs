//! The federated Service in east (pod-to-pod scenario): `emoji-svc-federated`
//! is backed by east's own `emoji-svc` (emoji-east) and west's (emoji),
//! each reached pod to pod with the client's identity. East's runtime
//! serves the union of both members' endpoints; every call's status is
//! what `meshc reach` proves at the member that answered (east's own
//! inbound verdict, or the call across to west's pod).

use super::super::clients::{self, Req};
use super::two_clusters::{self, TwoClusters};
use super::{Predicted, disagreement};
use meshc::multicluster::Clusters;
use meshc::multicluster::link::Mode;
use meshc::multicluster::reach as cross;
use meshc::query::classes::Classes;
use meshc::query::evaluate::Verdict;
use meshc::query::reach;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SERVICE: &str = "emoji-svc";
const FEDERATED: &str = "emoji-svc-federated";
const PORT: u16 = 8080;
const METHOD: &str = "/emojivoto.emoji.v1.EmojiService/ListAll";
/// Calls per client: each must match the prediction at the member that answered.
const CALLS: usize = 6;

/// Compares the runtime's union with meshc's members, then every call.
pub async fn check(clusters: &TwoClusters, m: &Clusters, tally: &mut BTreeMap<String, usize>, wrong: &mut Vec<String>) {
    let east = m.find("east").expect("cluster east");
    let members = members(m, east);
    let want: BTreeSet<(String, Option<String>)> = members
        .iter()
        .map(|(c, wi, port)| {
            let w = &m.clusters[*c].outcome.resolved.workloads[*wi];
            let pod = clusters.pod(&m.clusters[*c].name, &w.name);
            (SocketAddr::new(pod.ip, *port).to_string(), Some(w.identity.clone()))
        })
        .collect();
    assert_eq!(want.len(), 2, "east's and west's member: {members:?}");
    let path = format!("/v1/endpoints/emojivoto/{FEDERATED}/{PORT}");
    let got = until_endpoints(clusters, &path, &want).await;
    if got != want {
        wrong.push(format!("east's runtime serves {FEDERATED} as {got:?}, meshc's members are {want:?}"));
        return;
    }
    for client in ["web", "vote-bot"] {
        let predicted: Vec<Predicted> = members.iter().map(|b| predict(m, east, client, *b)).collect();
        let first = predicted[0].verdict;
        let verdict = if predicted.iter().all(|p| p.verdict == first) { first.as_str() } else { "partial" };
        *tally.entry(verdict.to_owned()).or_insert(0) += 1;
        let pod = clusters.pod("east", client);
        let host = format!("{FEDERATED}.emojivoto.svc.cluster.local:{PORT}");
        for _ in 0..CALLS {
            let seen = clients::http(pod.app, pod.outbound, None, &Req::grpc(METHOD), &host).await;
            if predicted.iter().all(|p| disagreement(p, &seen).is_some()) {
                let why: Vec<String> = predicted.iter().filter_map(|p| disagreement(p, &seen)).collect();
                wrong.push(format!("east/{client} → {FEDERATED}:{PORT}: no member agrees: {}", why.join("; ")));
            }
        }
    }
}

/// (cluster, workload, pod port) behind each member of east's federated `emoji-svc`.
fn members(m: &Clusters, east: usize) -> Vec<(usize, usize, u16)> {
    let f = m.links.federated.iter().find(|f| f.cluster == east && f.name == SERVICE).expect("a federated emoji-svc");
    let mut out = Vec::new();
    for &(c, _) in &f.members {
        let o = &m.clusters[c].outcome;
        for (wi, port) in meshc::multicluster::identity::backing_ports(o, "emojivoto", SERVICE) {
            out.push((c, wi, port));
        }
    }
    out
}

/// `meshc reach` at one member: east's own pod is an ordinary local call;
/// west's is the call across, pod to pod (federation never takes a gateway).
fn predict(m: &Clusters, east: usize, client: &str, (c, wi, port): (usize, usize, u16)) -> Predicted {
    let src = &m.clusters[east].outcome;
    let classes = Classes::derive(&src.resolved, &src.configs);
    let view = reach::parse_client(src, &classes, &format!("deploy/emojivoto/{client}")).expect("a client meshc knows");
    let req = Req::grpc(METHOD).to_api();
    let app = m.clusters[c].outcome.resolved.workloads[wi].name.clone();
    if c == east {
        let r = reach::reach(src, view, wi, port, Some(&req));
        let v = &r.verdicts[0];
        return Predicted { verdict: v.verdict, status: v.status, app };
    }
    let l = m.links.links.iter().position(|l| l.source_cluster == east).expect("east's Link");
    let path = cross::Path {
        source: east,
        target: c,
        mode: Mode::PodToPod,
        namespace: "emojivoto",
        service: SERVICE,
        mirror: FEDERATED,
        link: &m.links.links[l],
        untrusted: m.links.untrusted.get(l).copied().unwrap_or(false),
        // Federation is pod to pod: the gateway is never on the path.
        gateway: &m.links.gateways[c],
        gateway_problem: None,
    };
    let call = cross::cross(m, &view, &path, PORT, (wi, port), Some(&req));
    if let Some(v) = call.hops.iter().find_map(|h| h.verdict.filter(|v| *v != Verdict::Allow)) {
        return Predicted { verdict: v, status: None, app };
    }
    let (_, target) = call.target.as_ref().expect("every hop allows: the target decides");
    Predicted { verdict: target.verdicts[0].verdict, status: target.verdicts[0].status, app }
}

/// East's runtime's answer for `path` once it is `want` (or what it was after 10 s).
async fn until_endpoints(
    clusters: &TwoClusters,
    path: &str,
    want: &BTreeSet<(String, Option<String>)>,
) -> BTreeSet<(String, Option<String>)> {
    let start = Instant::now();
    loop {
        let got = match two_clusters::runtime_get(clusters, "east", path).await {
            Ok(doc) => endpoint_set(&doc),
            Err(e) => panic!("east's runtime: {e}"),
        };
        if got == *want || start.elapsed() > Duration::from_secs(10) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn endpoint_set(doc: &serde_json::Value) -> BTreeSet<(String, Option<String>)> {
    let list = doc["endpoints"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|e| (e["addr"].as_str().unwrap_or("").to_owned(), e["identity"].as_str().map(str::to_owned)))
        .collect()
}
