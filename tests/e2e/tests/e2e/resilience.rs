//! The proxy keeps serving with its last good state: bad configs, bad
//! signatures, configs for another workload, expired and untrusted
//! certificates, and clients and backends that vanish mid-request.

use super::clients::{self, Observed, Req, Tls};
use super::mesh::{self, BUILD_SEQUENCE, Launch, Mesh, Workload};
use mesh_common::identity::pki::{TestPki, Validity};
use mesh_proxy_api::envelope;
use mesh_proxy_api::{Authentication, ProxyConfig};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Setup {
    pub build: mesh::Build,
    pub mesh: Mesh,
    /// The meshed client podinfo admits, as a TLS config.
    pub frontend_tls: Arc<rustls::ClientConfig>,
    pub client_ip: IpAddr,
}

pub fn start() -> Setup {
    start_with(false)
}

/// podinfo-canary's mesh, fed by files or by mesh-runtime (serving the
/// podinfo endpoints), and a TLS client config with the frontend's identity.
pub fn start_with(runtime: bool) -> Setup {
    start_fed(runtime.then_some(None))
}

/// As [`start_with`]; `runtime` is `Some(None)` for file mode and
/// `Some(Some(cluster))` for Kubernetes mode.
pub fn start_fed(runtime: Option<Option<std::sync::Arc<super::cluster::Cluster>>>) -> Setup {
    let build = mesh::build("podinfo-canary");
    let runtime = runtime.map(|cluster| mesh::RuntimeMode { discovery: super::canary::discovery(&build), cluster });
    let client_ip: IpAddr = "10.40.7.7".parse().unwrap();
    let launch = Launch {
        build: &build,
        client_ip,
        discovery: serde_json::json!({ "services": [] }),
        echo_flags: BTreeMap::new(),
        proxy_flags: BTreeMap::new(),
        transparent: false,
        runtime,
    };
    let mesh = Mesh::start(&launch);
    let frontend = mesh.workload("frontend").identity.clone();
    let frontend_tls = client_tls(&mesh, &frontend, Validity::valid_for(Duration::from_secs(3600)));
    drop(launch);
    Setup { build, mesh, frontend_tls, client_ip }
}

/// A client certificate for `id` from the mesh's PKI.
pub fn client_tls(mesh: &Mesh, id: &str, validity: Validity) -> Arc<rustls::ClientConfig> {
    let cert = mesh.pki.issue_name(id, validity).unwrap();
    clients::client_config(&cert, mesh.pki.anchors_pem())
}

impl Setup {
    pub fn podinfo(&self) -> &Workload {
        self.mesh.workload("podinfo-primary")
    }

    pub async fn as_frontend(&self) -> Observed {
        let w = self.podinfo();
        let tls = Tls { server_identity: w.identity.clone(), config: self.frontend_tls.clone() };
        clients::http(self.client_ip, SocketAddr::new(w.ip, 9898), Some(&tls), &Req::get("/api/echo"), "podinfo:9898")
            .await
    }

    pub async fn unmeshed(&self) -> Observed {
        let w = self.podinfo();
        clients::http(self.client_ip, SocketAddr::new(w.ip, 9898), None, &Req::get("/api/echo"), "podinfo:9898").await
    }

    pub fn metrics(&self) -> String {
        clients::blocking_get_body(self.podinfo().admin, "/metrics").unwrap_or_default()
    }

    pub fn config_path(&self) -> &Path {
        &self.build.files[&self.podinfo().workload]
    }
}

pub fn ok(o: &Observed) -> bool {
    matches!(o, Observed::Response { status: 200, app: Some(_), .. })
}

pub fn forbidden(o: &Observed) -> bool {
    matches!(o, Observed::Response { status: 403, app: None, .. })
}

/// The value of a counter line that starts with `prefix`, summed over labels.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum()
}

/// podinfo's config with the Server opened to every unauthenticated client.
pub fn opened_up(config: &ProxyConfig) -> ProxyConfig {
    let mut c = config.clone();
    for port in &mut c.inbound.ports {
        for a in &mut port.server.authorizations {
            a.authentication = Authentication::Unauthenticated;
            a.networks = vec![mesh_proxy_api::Network { net: "0.0.0.0/0".parse().unwrap(), except: Vec::new() }];
        }
    }
    c
}

pub fn signed_envelope_json(config: &ProxyConfig, key: &envelope::SigningKey) -> String {
    serde_json::to_string(&envelope::sign(config, key)).unwrap()
}

/// Waits for the proxy to have looked at the file again.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// The object file with podinfo opened up in the payload but the original
/// signature kept: what an attacker with write access to git or the API
/// server could produce without the key.
pub fn tampered(good: &[u8], opened: &ProxyConfig, key: &envelope::SigningKey) -> Vec<u8> {
    let text = String::from_utf8_lossy(good);
    let mut object: serde_json::Value = serde_json::from_str(text.trim_start_matches("---").trim()).unwrap();
    let forged = envelope::sign(opened, key);
    object["spec"]["envelope"]["payload"] = serde_json::Value::String(forged.payload);
    serde_json::to_vec_pretty(&object).unwrap()
}

pub async fn bad_configs_keep_the_last_good_one(s: &Setup) {
    assert!(ok(&s.as_frontend().await), "baseline: frontend is admitted");
    assert!(forbidden(&s.unmeshed().await), "baseline: unmeshed clients are not");
    let path = s.config_path().to_path_buf();
    let good = std::fs::read(&path).unwrap();
    let opened = opened_up(&s.podinfo().config);
    let other = std::fs::read(&s.build.files[&s.mesh.workload("podinfo-canary").workload]).unwrap();
    let untrusted = envelope::SigningKey::from_bytes(&[9; 32]);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("a payload changed under its signature", tampered(&good, &opened, &s.build.key)),
        ("a config signed by an untrusted key", signed_envelope_json(&opened, &untrusted).into_bytes()),
        ("another workload's config", other),
        ("not JSON", b"\x00\x01garbage".to_vec()),
        ("an empty file", Vec::new()),
    ];
    let mut rejected = metric_sum(&s.metrics(), "mesh_proxy_config_rejected_total");
    for (what, bytes) in bad {
        std::fs::write(&path, bytes).unwrap();
        settle().await;
        assert!(ok(&s.as_frontend().await), "after {what}: the frontend lost access\n{}", s.mesh.dump_logs());
        assert!(forbidden(&s.unmeshed().await), "after {what}: unmeshed clients got in");
        let now = metric_sum(&s.metrics(), "mesh_proxy_config_rejected_total");
        assert!(now > rejected, "{what} was not counted as rejected ({now})");
        rejected = now;
        assert_eq!(clients::blocking_get_status(s.podinfo().admin, "/ready").unwrap(), 200, "after {what}");
    }
    std::fs::remove_file(&path).unwrap();
    settle().await;
    assert!(ok(&s.as_frontend().await), "after the file vanished");
    // A config from a newer build takes effect at once, without a restart.
    let newer = ProxyConfig { sequence: BUILD_SEQUENCE + 1, ..opened };
    std::fs::write(&path, signed_envelope_json(&newer, &s.build.key)).unwrap();
    settle().await;
    assert!(ok(&s.unmeshed().await), "a valid new config was not applied\n{}", s.mesh.dump_logs());
    // The original build put back is a rollback: refused, the newer stays.
    std::fs::write(&path, &good).unwrap();
    settle().await;
    assert!(ok(&s.unmeshed().await), "the original (older) build replaced the newer one");
    assert!(metric_sum(&s.metrics(), "mesh_proxy_config_rejected_total{reason=\"rollback\"}") >= 1.0);
    // Closing it again takes a newer build of the original policy.
    let restored = ProxyConfig { sequence: BUILD_SEQUENCE + 2, ..s.podinfo().config.clone() };
    std::fs::write(&path, signed_envelope_json(&restored, &s.build.key)).unwrap();
    settle().await;
    assert!(forbidden(&s.unmeshed().await), "the original policy was not restored by a newer build");
}

pub async fn bad_certificates_are_refused_and_good_clients_kept(s: &Setup) {
    let w = s.podinfo();
    let to = SocketAddr::new(w.ip, 9898);
    let frontend = s.mesh.workload("frontend").identity.clone();
    let expired = client_tls(&s.mesh, &frontend, Validity::expired());
    let foreign = TestPki::new("cluster.local").unwrap();
    let cert = foreign.issue_name(&frontend, Validity::valid_for(Duration::from_secs(3600))).unwrap();
    // The client trusts the mesh's anchor; only the server must refuse it.
    let untrusted = clients::client_config(&cert, s.mesh.pki.anchors_pem());
    for (what, config) in [("an expired certificate", expired), ("a certificate from another trust anchor", untrusted)]
    {
        let tls = Tls { server_identity: w.identity.clone(), config };
        let seen = clients::http(s.client_ip, to, Some(&tls), &Req::get("/api/echo"), "podinfo:9898").await;
        assert!(matches!(seen, Observed::Closed(_)), "a client with {what} got {seen:?}");
        assert!(ok(&s.as_frontend().await), "after a client with {what}, the frontend lost access");
    }
    // The client refuses a server that is not who discovery says it is.
    let tls = Tls { server_identity: frontend.clone(), config: s.frontend_tls.clone() };
    let seen = clients::http(s.client_ip, to, Some(&tls), &Req::get("/api/echo"), "podinfo:9898").await;
    assert!(matches!(seen, Observed::Closed(ref e) if e.contains("tls")), "wrong server identity accepted: {seen:?}");
}

/// SIGTERM: the proxy stops accepting, lets the in-flight request finish,
/// and exits 0.
pub async fn sigterm_drains_in_flight_requests(s: &mut Setup) {
    let w = s.podinfo();
    let to = SocketAddr::new(w.ip, 9898);
    let tls = Tls { server_identity: w.identity.clone(), config: s.frontend_tls.clone() };
    let slow = Req::get("/api/echo").with_header("x-echo-delay-ms", "1500");
    let client_ip = s.client_ip;
    let in_flight = tokio::spawn(async move { clients::http(client_ip, to, Some(&tls), &slow, "podinfo:9898").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.mesh.signal_proxy("podinfo-primary", libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = clients::tcp(s.client_ip, to, None).await;
    assert!(matches!(late, Observed::Closed(_)), "a new connection after SIGTERM was served: {late:?}");
    let seen = in_flight.await.unwrap();
    assert!(ok(&seen), "the in-flight request was cut off: {seen:?}");
    let status = s.mesh.signal_proxy("podinfo-primary", 0).wait().unwrap();
    assert!(status.success(), "the proxy exited with {status}");
}

pub async fn vanishing_clients_and_backends(s: &Setup) {
    let w = s.podinfo();
    let to = SocketAddr::new(w.ip, 9898);
    let tls = Tls { server_identity: w.identity.clone(), config: s.frontend_tls.clone() };
    // A client that gives up while the app is still answering.
    let slow = Req::get("/api/echo").with_header("x-echo-delay-ms", "2000");
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        clients::http(s.client_ip, to, Some(&tls), &slow, "podinfo:9898"),
    )
    .await;
    assert!(gave_up.is_err(), "the slow request answered early");
    // A client that disappears half-way through its request headers.
    {
        use tokio::io::AsyncWriteExt;
        let mut raw = mesh_proxy::net::connect_from(Some(s.client_ip), to).await.unwrap();
        raw.write_all(b"GET /api/echo HTTP/1.1\r\nhost: podin").await.unwrap();
    }
    // An app that resets the connection instead of answering: 502, once.
    let abort = Req::get("/api/echo").with_header("x-echo-abort", "1");
    let seen = clients::http(s.client_ip, to, Some(&tls), &abort, "podinfo:9898").await;
    assert!(matches!(seen, Observed::Response { status: 502, .. }), "an aborted answer gave {seen:?}");
    for _ in 0..20 {
        assert!(ok(&s.as_frontend().await), "after disconnects the proxy stopped serving\n{}", s.mesh.dump_logs());
    }
    settle().await;
    let open = metric_sum(&s.metrics(), "mesh_proxy_open_connections");
    assert_eq!(open, 0.0, "connections of vanished clients are still held open");
}
