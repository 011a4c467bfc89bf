//! The mesh with mesh-runtime in file mode between `meshc build` and the
//! proxies: proxies get their certificates from ServiceAccount tokens and
//! their configs over mTLS. A new build reaches every proxy within a second,
//! a tampered config is refused while proxies keep the last good one, a
//! runtime restart does not interrupt traffic, and an expired or unknown
//! token gets no certificate.

use super::clients::{self, Observed, Req, Tls};
use super::cluster::{ApiServer, Cluster};
use super::mesh::{self, RUNTIME_API, RUNTIME_IDENTITY, RuntimeThread};
use super::resilience::{Setup, forbidden, ok, opened_up, start_fed, start_with, tampered};
use mesh_proxy::identity::csr::{CsrSettings, CsrTiming};
use mesh_proxy_api::ProxyConfig;
use meshc::emit::{self, BuildInfo, write};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn start() -> Setup {
    start_with(true)
}

/// Every check below, in an order where each leaves the mesh as it found it
/// (the restart last).
pub async fn every_check(s: &mut Setup) {
    outbound_uses_runtime_discovery_from_the_first_request(s).await;
    new_builds_reach_every_proxy_within_a_second(s).await;
    tampered_configs_are_refused_and_proxies_keep_the_last_good_one(s).await;
    expired_and_unknown_tokens_get_no_certificate(s).await;
    a_runtime_restart_does_not_interrupt_traffic(s).await;
}

/// The same mesh with mesh-runtime in Kubernetes mode on `server`.
pub fn start_kube(server: ApiServer) -> Setup {
    start_fed(Some(Some(Arc::new(Cluster::start(server)))))
}

impl Setup {
    async fn to_podinfo(&self, meshed: bool) -> Observed {
        let w = self.mesh.workload("podinfo-primary");
        let tls = Tls { server_identity: w.identity.clone(), config: self.frontend_tls.clone() };
        let tls = meshed.then_some(&tls);
        clients::http(self.client_ip, SocketAddr::new(w.ip, 9898), tls, &Req::get("/api/echo"), "podinfo:9898").await
    }

    /// Signs `configs` with the build's key and writes them over `dist/`, as
    /// a new `meshc build` would; returns each workload's new digest. Each
    /// config is signed standalone, with its outbound part inline and no
    /// shared ServicePolicies (the first build shares the canary's), so a
    /// rebuild also switches the proxies from composed to standalone configs.
    fn rebuild(&self, configs: &[Option<ProxyConfig>]) -> BTreeMap<String, String> {
        // Each rebuild is a newer build, as a new commit's would be.
        static NEXT: AtomicU64 = AtomicU64::new(super::mesh::BUILD_SEQUENCE + 1);
        let sequence = NEXT.fetch_add(1, Ordering::Relaxed);
        let info = BuildInfo { source_revision: "e2e-2".into(), sequence, error_findings: 0 };
        let built = emit::build(configs, &self.build.key, &info).unwrap();
        let dist = self.build.dir.path().join("dist");
        write::write_dir(&dist, &built).unwrap();
        if let Some(cluster) = &self.mesh.cluster {
            let took = cluster.apply_dist(&dist);
            println!("kubectl apply of the new build took {took:?}");
        }
        digests(&built)
    }

    /// Puts a config object's file into force: written (file mode) and
    /// applied (Kubernetes mode).
    fn put(&self, path: &Path, content: &[u8]) {
        std::fs::write(path, content).unwrap();
        if let Some(cluster) = &self.mesh.cluster {
            cluster.apply_file(path);
        }
    }

    fn restart_runtime(&mut self) {
        let runtime = match &self.mesh.cluster {
            Some(cluster) => RuntimeThread::start_kube(cluster),
            None => {
                let discovery = serde_json::json!({ "services": [] });
                RuntimeThread::start(mesh::runtime_args(&self.build, &self.mesh.pki, &discovery))
            }
        };
        self.mesh.runtime = Some(runtime);
    }

    /// The digest each proxy reports in `/ready`.
    fn served(&self) -> BTreeMap<String, String> {
        self.mesh
            .workloads
            .iter()
            .map(|w| {
                let body = clients::blocking_get_body(w.admin, "/ready").unwrap_or_default();
                let digest = body.lines().find_map(|l| l.strip_prefix("digest ")).unwrap_or_default().to_string();
                (w.workload.name.clone(), digest)
            })
            .collect()
    }
}

fn digests(built: &emit::Built) -> BTreeMap<String, String> {
    built
        .files
        .iter()
        .filter(|(p, _)| p.starts_with(emit::CONFIGS_DIR))
        .map(|(_, text)| {
            let o: serde_json::Value = serde_json::from_str(text.trim_start_matches("---").trim()).unwrap();
            (
                o["spec"]["workload"]["name"].as_str().unwrap().to_string(),
                o["spec"]["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A new build with podinfo opened to everyone and every other config
/// changed too (an extra, inert authorization), so every proxy must update.
fn next_commit(configs: &[Option<ProxyConfig>]) -> Vec<Option<ProxyConfig>> {
    configs
        .iter()
        .map(|c| {
            c.as_ref().map(|c| {
                let mut c = if c.workload.name.starts_with("podinfo") { opened_up(c) } else { c.clone() };
                let mut inert = mesh_proxy_api::localhost_authorization();
                inert.meta = mesh_proxy_api::Meta::default_named("e2e-next-commit");
                inert.networks =
                    vec![mesh_proxy_api::Network { net: "192.0.2.1/32".parse().unwrap(), except: Vec::new() }];
                c.inbound.default_server.authorizations.push(inert);
                c
            })
        })
        .collect()
}

/// The frontend's first request to each Service waits for the runtime's
/// first endpoints answer instead of failing with "no endpoints".
pub async fn outbound_uses_runtime_discovery_from_the_first_request(s: &Setup) {
    let f = s.mesh.workload("frontend");
    let host = "podinfo.podinfo.svc.cluster.local:9898";
    let seen = clients::http(f.admin.ip(), f.outbound, None, &Req::get("/api/echo"), host).await;
    assert!(ok(&seen), "first request through runtime discovery: {seen:?}\n{}", s.mesh.dump_logs());
    let canary = Req::get("/x").with_header("x-canary", "always");
    let seen = clients::http(f.admin.ip(), f.outbound, None, &canary, host).await;
    assert!(
        matches!(seen, Observed::Response { status: 200, app: Some(ref a), .. } if a == "podinfo-canary"),
        "{seen:?}"
    );
}

pub async fn new_builds_reach_every_proxy_within_a_second(s: &Setup) {
    assert!(ok(&s.to_podinfo(true).await), "baseline: the frontend is admitted\n{}", s.mesh.dump_logs());
    assert!(forbidden(&s.to_podinfo(false).await), "baseline: unmeshed clients are not");
    let want = s.rebuild(&next_commit(&s.build.outcome.configs));
    let start = Instant::now();
    while s.served() != want {
        assert!(start.elapsed() < Duration::from_secs(5), "proxies serve {:?}, the build has {want:?}", s.served());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    println!("a new build reached all {} proxies in {took:?}", want.len());
    assert!(took < Duration::from_secs(1), "a new build took {took:?} to reach every proxy");
    assert!(ok(&s.to_podinfo(false).await), "the new build opened podinfo, but unmeshed clients are refused");
}

pub async fn tampered_configs_are_refused_and_proxies_keep_the_last_good_one(s: &Setup) {
    let before = s.served();
    let w = s.mesh.workload("podinfo-primary");
    let path = &s.build.files[&w.workload];
    let good = std::fs::read(path).unwrap();
    let mut locked = w.config.clone();
    locked.inbound.ports.clear();
    s.put(path, &tampered(&good, &locked, &s.build.key));
    if let Some(cluster) = &s.mesh.cluster {
        the_object_says_why(cluster, &good).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.served(), before, "a tampered config reached a proxy");
    assert!(ok(&s.to_podinfo(false).await), "podinfo lost its last good config");
    let metrics = clients::blocking_get_body("127.0.0.1:9990".parse().unwrap(), "/metrics").unwrap_or_default();
    assert!(
        metrics.lines().any(|l| l.contains("reason=\"signature\"") || l.contains("reason=\"digest\"")),
        "{metrics}"
    );
    s.put(path, &good);
}

/// The refused ProxyConfig's status carries Ready=False and Stalled=True
/// with the reason, as Flux's and Argo CD's health checks read it.
async fn the_object_says_why(cluster: &Cluster, good: &[u8]) {
    let text = String::from_utf8_lossy(good);
    let object: serde_json::Value = serde_json::from_str(text.trim_start_matches("---").trim()).unwrap();
    let (ns, name) = (object["metadata"]["namespace"].as_str().unwrap(), object["metadata"]["name"].as_str().unwrap());
    let start = Instant::now();
    loop {
        let status = cluster.config_status(ns, name);
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        let get = |t: &str| conditions.iter().find(|c| c["type"] == t).cloned().unwrap_or_default();
        let (ready, stalled) = (get("Ready"), get("Stalled"));
        if ready["status"] == "False" {
            assert_eq!(stalled["status"], "True", "a tampered config cannot heal: {status}");
            assert!(
                ["SignatureInvalid", "DigestMismatch"].contains(&ready["reason"].as_str().unwrap_or("")),
                "{status}"
            );
            assert!(ready["message"].as_str().unwrap_or("").contains("last good"), "{status}");
            println!("the tampered ProxyConfig's status says why after {:?}: {}", start.elapsed(), ready["reason"]);
            cluster.assert_rbac_was_enough();
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no Ready=False condition on {ns}/{name}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn a_runtime_restart_does_not_interrupt_traffic(s: &mut Setup) {
    let mut runtime = s.mesh.runtime.take().expect("runtime mode");
    runtime.stop();
    for _ in 0..20 {
        assert!(ok(&s.to_podinfo(true).await), "traffic stopped with the runtime\n{}", s.mesh.dump_logs());
    }
    s.restart_runtime();
    // The proxies reconnect: the original build's configs, signed again
    // (standalone, see `rebuild`), reach them.
    let want = s.rebuild(&s.build.outcome.configs);
    let start = Instant::now();
    while s.served() != want {
        assert!(start.elapsed() < Duration::from_secs(10), "after a restart proxies serve {:?}", s.served());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(forbidden(&s.to_podinfo(false).await), "the restored build did not close podinfo again");
}

pub async fn expired_and_unknown_tokens_get_no_certificate(s: &Setup) {
    let dir = s.build.dir.path().join("token-tests");
    // File mode's tokens.json and the fake carry an expired token; a real
    // API server issues none (its shortest lifetime is 10 minutes).
    let mut tokens = vec![("an unknown token", "never-issued".to_owned())];
    if s.mesh.cluster.as_ref().is_none_or(|c| c.issues_expired_tokens()) {
        tokens.push(("an expired token", "expired".to_owned()));
    }
    if let Some(cluster) = &s.mesh.cluster {
        tokens.push(("a revoked token", cluster.revoked_token()));
    }
    for (i, (what, token)) in tokens.into_iter().enumerate() {
        let id = dir.join(i.to_string());
        std::fs::create_dir_all(&id).unwrap();
        std::fs::write(id.join("ca.crt"), s.mesh.pki.anchors_pem()).unwrap();
        std::fs::write(id.join("token"), &token).unwrap();
        let csr = CsrSettings {
            runtime: format!("https://{RUNTIME_API}"),
            runtime_identity: RUNTIME_IDENTITY.into(),
            token_file: id.join("token"),
            dir: id.clone(),
            name: s.mesh.workload("podinfo-primary").identity.clone(),
            timing: CsrTiming { bootstrap_deadline: Duration::from_secs(2), ..CsrTiming::default() },
        };
        let refused = csr.bootstrap().await;
        assert!(refused.is_err(), "{what} got a certificate");
        assert!(!id.join("tls.crt").exists(), "{what}: a certificate was written");
    }
}
