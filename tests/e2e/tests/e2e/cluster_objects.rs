//! The objects a Kubernetes-mode test cluster holds before the build is
//! applied, the same for the fake and the real API server: namespaces,
//! ServiceAccounts, trust material, and discovery's Services, EndpointSlices
//! and Pods.

use super::cluster::NAMESPACE;
use super::mesh::Build;
use mesh_common::identity::pki::TestPki;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

fn b64(s: &str) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(s.as_bytes())
}

/// The RBAC objects of `runtime/deploy/`: the fake authorizes the runtime's
/// requests by exactly what the deployment grants it.
pub fn deploy_rbac() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime/deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = meshc::load::yaml::parse_documents(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    docs.iter().map(|d| d.to_json()).filter(|v| !v.is_null()).collect()
}

/// Every ServiceAccount of the example's workloads, as (namespace, name).
pub fn service_accounts(build: &Build) -> BTreeSet<(String, String)> {
    build.outcome.resolved.workloads.iter().map(|w| (w.namespace.clone(), w.service_account.clone())).collect()
}

/// The objects to create, in an order a real server accepts (namespaces
/// first). `mesh-system` itself is left out: runtime/deploy/ creates it on
/// the real server, and the fake needs no Namespace objects.
pub fn objects(build: &Build, pki: &TestPki, discovery: &Value) -> Vec<Value> {
    let services: Vec<&Value> = discovery["services"].as_array().into_iter().flatten().collect();
    let workloads = Workloads::of(&services);
    let mut accounts = service_accounts(build);
    accounts.extend(workloads.accounts.iter().cloned());
    let mut namespaces: BTreeSet<&str> = accounts.iter().map(|(ns, _)| ns.as_str()).collect();
    namespaces.extend(services.iter().filter_map(|s| s["namespace"].as_str()));
    namespaces.remove(NAMESPACE);
    let mut out: Vec<Value> = namespaces
        .iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    out.extend(accounts.iter().map(
        |(ns, sa)| json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}),
    ));
    out.extend(trust_material(build, pki));
    out.extend(workloads.pods);
    out.extend(workloads.services);
    out
}

/// The issuer Secret, the trust roots and the trusted keys, under the names
/// mesh-runtime reads by default.
fn trust_material(build: &Build, pki: &TestPki) -> Vec<Value> {
    let ca = build.dir.path().join("kube-ca");
    pki.write_ca_dir(&ca).unwrap();
    let read = |f: &str| std::fs::read_to_string(ca.join(f)).unwrap();
    let pubkey = std::fs::read_to_string(&build.pubkey).unwrap();
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "mesh-identity-issuer", "namespace": NAMESPACE},
            "data": {"tls.crt": b64(&read("issuer.crt")), "tls.key": b64(&read("issuer.key"))}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-identity-trust-roots", "namespace": NAMESPACE},
            "data": {"ca-bundle.crt": pki.anchors_pem()}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "meshc-trusted-keys", "namespace": NAMESPACE},
            "data": {"meshc.pub": pubkey}}),
    ]
}

/// Discovery's objects: per Service, the Service and its EndpointSlice, and
/// a meshed Pod per endpoint with the ServiceAccount its identity names.
#[derive(Default)]
struct Workloads {
    pods: Vec<Value>,
    services: Vec<Value>,
    accounts: BTreeSet<(String, String)>,
}

impl Workloads {
    fn of(services: &[&Value]) -> Workloads {
        let mut w = Workloads::default();
        let mut pods_seen = BTreeSet::new();
        for svc in services {
            w.add_service(svc, &mut pods_seen);
        }
        w
    }

    fn add_service(&mut self, svc: &Value, pods_seen: &mut BTreeSet<(String, String)>) {
        let (ns, name) = (svc["namespace"].as_str().unwrap(), svc["name"].as_str().unwrap());
        let port = &svc["ports"][0];
        let number = port["port"].as_u64().unwrap();
        let mut endpoints = Vec::new();
        let mut target = 0;
        for ep in port["endpoints"].as_array().into_iter().flatten() {
            let addr: SocketAddr = ep["addr"].as_str().unwrap().parse().unwrap();
            target = addr.port();
            let pod = format!("pod-{}", addr.ip().to_string().replace('.', "-"));
            let sa = ep["identity"].as_str().and_then(|id| id.split('.').next()).unwrap_or("default");
            let mut labels = json!({"app": name});
            if ep["identity"].is_string() {
                labels["linkerd.io/control-plane-ns"] = json!("linkerd");
            }
            // Several Services select one pod: it is created once.
            if pods_seen.insert((ns.to_owned(), pod.clone())) {
                self.accounts.insert((ns.to_owned(), sa.to_owned()));
                self.pods.push(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": ns, "labels": labels},
                    "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "mesh-echo"}]},
                    "status": {"podIP": addr.ip().to_string()}}));
            }
            endpoints.push(json!({"addresses": [addr.ip().to_string()], "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}));
        }
        self.services.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": number, "targetPort": target}]}}));
        self.services.push(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": target, "protocol": "TCP"}]}));
    }
}
