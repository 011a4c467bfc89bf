//! The proxy's runtime clients against a runtime on loopback that follows
//! runtime/API.md over real TLS: config long polls, endpoint watches, and
//! certificate bootstrap and renewal.

mod runtime_client_support;

use mesh_common::identity::Identity;
use mesh_common::identity::pki::{self, Validity};
use mesh_proxy::discovery::runtime::RuntimeDiscovery;
use mesh_proxy::discovery::{Discovery, ServiceKey};
use mesh_proxy::identity::csr::{CsrSettings, CsrTiming};
use mesh_proxy::metrics::Metrics;
use mesh_proxy::source::http::{PollTiming, RuntimeClient};
use mesh_proxy::source::{self, RuntimeSource, Verifier};
use mesh_proxy::state::{self, ConfigRx};
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::{self, SigningKey};
use meshc::emit::objects::{Object, ObjectMeta, ProxyConfigSpec, document};
use runtime_client_support::{ConfigEntry, FakeRuntime, RUNTIME_ID, TD};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

const WORKLOAD: &str = "Deployment/shop/web";
const WEB: &str = "web.shop.serviceaccount.identity.linkerd.cluster.local";

/// Logs under `cargo test -- --nocapture`, filtered by `MESH_PROXY_LOG`.
fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESH_PROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

fn fast() -> PollTiming {
    PollTiming {
        wait: Duration::from_secs(2),
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        forbidden: Duration::from_millis(100),
        not_found: Duration::from_millis(50),
    }
}

/// A ProxyConfig object for web, as `meshc build` writes it, signed by `key`.
fn config_entry(policy: &str, key: &SigningKey) -> ConfigEntry {
    let config: ProxyConfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "shop", "name": "web"},
        "identity": WEB,
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": policy}, "protocol": {"kind": "opaque"}, "authorizations": []}}
    }))
    .unwrap();
    let envelope = envelope::sign(&config, key);
    let digest = envelope::payload_digest(&envelope).unwrap();
    let object = Object {
        api_version: "meshc.io/v1alpha1".into(),
        kind: "ProxyConfig".into(),
        metadata: ObjectMeta { name: "web".into(), namespace: Some("shop".into()), ..Default::default() },
        spec: ProxyConfigSpec {
            workload: config.workload.clone(),
            identity: WEB.into(),
            digest: digest.clone(),
            envelope,
        },
    };
    ConfigEntry { body: document(&object).into(), digest, identity: WEB.into() }
}

/// An identity directory for web signed by the runtime's PKI, and an mTLS client with it.
fn workload_client(rt: &FakeRuntime) -> (tempfile::TempDir, Arc<RuntimeClient>) {
    let dir = tempfile::tempdir().unwrap();
    let cert = rt.pki.issue_workload("web", "shop", Validity::valid_for(Duration::from_secs(3600))).unwrap();
    pki::write_identity_dir(dir.path(), &cert, rt.pki.anchors_pem()).unwrap();
    let id = Identity::load(dir.path()).unwrap();
    let client = RuntimeClient::new(&rt.url(), RUNTIME_ID, Arc::new(move || Ok(id.client_config()))).unwrap();
    (dir, Arc::new(client))
}

async fn generation(rx: &mut ConfigRx, want: u64) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|c| c.as_ref().is_some_and(|c| c.generation == want)))
        .await
        .unwrap_or_else(|_| panic!("generation {want} within 5 s"))
        .unwrap();
    start.elapsed()
}

fn current(rx: &ConfigRx) -> (u64, String) {
    let c = rx.borrow().clone().unwrap();
    (c.generation, c.config.inbound.default_server.meta.name.clone())
}

#[tokio::test]
async fn config_long_poll_delivers_changes_and_keeps_the_last_good_config_through_failures() {
    logs();
    let mut rt = FakeRuntime::start().await;
    let (_dir, client) = workload_client(&rt);
    let key = SigningKey::from_bytes(&[7; 32]);
    let (tx, mut rx) = state::channel();
    let shutdown = CancellationToken::new();
    let verifier = Verifier { trusted: vec![key.verifying_key()], workload: WORKLOAD.into() };
    let source = RuntimeSource::new(client, WORKLOAD.into(), fast());
    tokio::spawn(source::run(source, verifier, tx, Arc::new(Metrics::new()), shutdown.clone()));

    // 404 first: the source keeps asking and takes the config once it exists.
    tokio::time::sleep(Duration::from_millis(200)).await;
    rt.set_config(Some(config_entry("a", &key)));
    generation(&mut rx, 1).await;

    // A change wakes the held long poll: well under a second, not a poll interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.set_config(Some(config_entry("b", &key)));
    let took = generation(&mut rx, 2).await;
    assert!(took < Duration::from_secs(1), "config took {took:?}");

    // A config the proxy's own keys do not verify is refused; b stays.
    rt.set_config(Some(config_entry("evil", &SigningKey::from_bytes(&[9; 32]))));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(current(&rx), (2, "b".into()));

    for status in [403, 503] {
        rt.force(Some(status));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(current(&rx).0, 2, "{status} keeps the last good config");
        rt.force(None);
    }
    rt.set_config(Some(config_entry("c", &key)));
    generation(&mut rx, 3).await;

    // Connection refused, then the runtime comes back with a new config.
    rt.stop();
    rt.set_config(Some(config_entry("d", &key)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(current(&rx), (3, "c".into()), "unreachable runtime: the last good config stays");
    rt.restart().await;
    generation(&mut rx, 4).await;
    assert_eq!(current(&rx).1, "d");

    // Unchanged configs are long polls, not a busy loop.
    let before = rt.state.config_gets.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rt.state.config_gets.load(Ordering::Relaxed) - before <= 1, "held, not re-polled");
    shutdown.cancel();
}

fn key(name: &str, port: u16) -> ServiceKey {
    ServiceKey { namespace: "shop".into(), name: name.into(), port }
}

#[tokio::test]
async fn endpoint_updates_reach_receivers_and_watches_end_with_their_receivers() {
    logs();
    let rt = FakeRuntime::start().await;
    let (_dir, client) = workload_client(&rt);
    rt.set_endpoints("shop/api/8080", "1", serde_json::json!([{"addr": "10.0.0.1:8080", "identity": WEB}]));
    let disc = RuntimeDiscovery::new(client, fast(), 2).unwrap();

    let mut rx = disc.endpoints(&key("api", 8080));
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|e| e.len() == 1)).await.unwrap().unwrap();
    assert_eq!(rx.borrow_and_update()[0].identity.as_deref(), Some(WEB));

    let start = Instant::now();
    rt.set_endpoints("shop/api/8080", "2", serde_json::json!([{"addr": "10.0.0.1:8080"}, {"addr": "10.0.0.2:8080"}]));
    tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
    assert!(start.elapsed() < Duration::from_secs(1), "update took {:?}", start.elapsed());
    assert_eq!(rx.borrow_and_update().len(), 2);

    rt.force(Some(500));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!rx.has_changed().unwrap(), "a failing runtime keeps the last good endpoints");
    rt.force(None);
    rt.set_endpoints("shop/api/8080", "3", serde_json::json!([]));
    tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
    assert!(rx.borrow().is_empty());

    // The bound: a second port is watched, a third is refused (closed receiver).
    let other = disc.endpoints(&key("unknown", 1));
    let refused = disc.endpoints(&key("third", 1));
    assert!(refused.has_changed().is_err(), "over the limit: closed, ask again later");
    assert_eq!(disc.watched(), 2);

    drop((rx, other));
    tokio::time::timeout(Duration::from_secs(5), async {
        while disc.watched() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("watches stop when their receivers are gone");
    let again = disc.endpoints(&key("third", 1));
    assert!(again.has_changed().is_ok(), "room again once the others ended");
}

/// Waits until `path` no longer holds `old`.
async fn replaced(path: &Path, old: &[u8], within: Duration) {
    tokio::time::timeout(within, async {
        while std::fs::read(path).unwrap() == old {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} replaced within {within:?}", path.display()));
}

fn csr_settings(rt: &FakeRuntime, dir: &Path, token_file: &Path) -> CsrSettings {
    CsrSettings {
        runtime: rt.url(),
        runtime_identity: RUNTIME_ID.into(),
        token_file: token_file.to_path_buf(),
        dir: dir.to_path_buf(),
        name: mesh_proxy_api::IdentityDomain::new("linkerd", TD).service_account("shop", "web"),
        timing: CsrTiming {
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(200),
            bootstrap_deadline: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
        },
    }
}

/// An identity directory with only the trust anchors, and a token file.
fn bare_identity_dir(rt: &FakeRuntime, token: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(pki::CA_CRT), rt.pki.anchors_pem()).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    (dir, token_file)
}

#[tokio::test]
async fn csr_bootstrap_writes_a_working_identity_and_renewal_replaces_it_before_expiry() {
    use std::os::unix::fs::PermissionsExt;
    logs();
    let rt = FakeRuntime::start().await;
    rt.state.tokens.lock().unwrap().insert("good".into(), WEB.into());
    *rt.state.lifetime.lock().unwrap() = Duration::from_secs(3);
    let (dir, token_file) = bare_identity_dir(&rt, "good");
    let csr = csr_settings(&rt, dir.path(), &token_file);

    csr.bootstrap().await.unwrap();
    let id = Identity::load(dir.path()).unwrap();
    assert_eq!(id.name(), WEB);
    let mode = std::fs::metadata(dir.path().join(pki::TLS_KEY)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");
    csr.bootstrap().await.unwrap();
    assert_eq!(rt.state.issued.load(Ordering::Relaxed), 1, "a usable certificate is kept, not re-requested");

    // The bootstrapped identity works for mTLS to the runtime.
    let mtls = id.clone();
    let client = RuntimeClient::new(&rt.url(), RUNTIME_ID, Arc::new(move || Ok(mtls.client_config()))).unwrap();
    let reply = client.get("/v1/config?workload=Deployment/shop/web", Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply.status, 404, "authenticated: the runtime just has no config");

    let key_before = std::fs::read(dir.path().join(pki::TLS_KEY)).unwrap();
    let expiry_before = id.expires_at();
    let cert_before = std::fs::read(dir.path().join(pki::TLS_CRT)).unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(csr.clone().renew(shutdown.clone()));
    // 70% of (1 s backdating + 3 s) is ~2.8 s after issue.
    replaced(&dir.path().join(pki::TLS_CRT), &cert_before, Duration::from_secs(6)).await;
    assert_eq!(rt.state.issued.load(Ordering::Relaxed), 2);
    assert!(SystemTime::now() < expiry_before, "renewed before the old certificate expired");
    assert!(matches!(id.reload_now(), mesh_common::identity::Reload::Swapped(2)), "the reloader takes the new one");
    assert!(id.expires_at() > expiry_before);
    assert_eq!(std::fs::read(dir.path().join(pki::TLS_KEY)).unwrap(), key_before, "renewal keeps the key");
    shutdown.cancel();
}

#[tokio::test]
async fn a_refused_token_gets_no_certificate_and_leaves_the_old_one_serving() {
    logs();
    let rt = FakeRuntime::start().await;
    rt.state.tokens.lock().unwrap().insert("good".into(), WEB.into());
    *rt.state.lifetime.lock().unwrap() = Duration::from_secs(2);

    let (empty, bad_token) = bare_identity_dir(&rt, "revoked");
    let err = csr_settings(&rt, empty.path(), &bad_token).bootstrap().await.unwrap_err();
    assert!(err.contains("403") && err.contains("token refused"), "{err}");
    assert!(!empty.path().join(pki::TLS_CRT).exists(), "nothing written");

    let (dir, token_file) = bare_identity_dir(&rt, "good");
    let csr = csr_settings(&rt, dir.path(), &token_file);
    csr.bootstrap().await.unwrap();
    let cert_before = std::fs::read(dir.path().join(pki::TLS_CRT)).unwrap();
    std::fs::write(&token_file, "revoked").unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(csr.clone().renew(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(std::fs::read(dir.path().join(pki::TLS_CRT)).unwrap(), cert_before, "refused: the old cert stays");
    assert_eq!(rt.state.issued.load(Ordering::Relaxed), 1);

    // The token file is re-read per request: a rotated, valid token renews.
    std::fs::write(&token_file, "good").unwrap();
    replaced(&dir.path().join(pki::TLS_CRT), &cert_before, Duration::from_secs(3)).await;
    Identity::load(dir.path()).expect("the renewed identity loads");
    shutdown.cancel();
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    settings: mesh_proxy::Settings,
}

/// `GET /ready` on the admin server: status and body.
async fn ready(admin: std::net::SocketAddr) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(admin).await.ok()?;
    tcp.write_all(b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").await.ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

async fn ready_with(admin: std::net::SocketAddr, generation: u64) {
    let want = format!("generation {generation}\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = ready(admin).await;
        if now.as_ref().is_some_and(|(s, body)| *s == 200 && body.contains(&want)) {
            return;
        }
        assert!(Instant::now() < deadline, "ready with generation {generation}: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn run_with_runtime_bootstraps_its_certificate_and_takes_configs_from_the_runtime() {
    use clap::Parser;
    logs();
    let rt = FakeRuntime::start().await;
    rt.state.tokens.lock().unwrap().insert("good".into(), WEB.into());
    let key = SigningKey::from_bytes(&[7; 32]);
    rt.set_config(Some(config_entry("a", &key)));
    let (dir, token_file) = bare_identity_dir(&rt, "good");
    let trust_key = dir.path().join("trust.pem");
    std::fs::write(&trust_key, envelope::verifying_key_to_pem(&key.verifying_key()).unwrap()).unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let args = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "mesh-proxy".into(),
            format!("--workload={WORKLOAD}"),
            format!("--trust-key={}", trust_key.display()),
            format!("--identity-dir={}", dir.path().display()),
            format!("--admin={admin}"),
            "--reload-interval=20ms".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    assert!(Cli::try_parse_from(args(&[])).is_err(), "one of --config and --runtime is required");
    let url = rt.url();
    let both = args(&["--config=/dev/null", &format!("--runtime={url}"), &format!("--runtime-identity={RUNTIME_ID}")]);
    assert!(Cli::try_parse_from(both).is_err(), "not both");
    assert!(Cli::try_parse_from(args(&[&format!("--runtime={url}")])).is_err(), "--runtime needs --runtime-identity");

    let settings = Cli::try_parse_from(args(&[
        &format!("--runtime={url}"),
        &format!("--runtime-identity={RUNTIME_ID}"),
        &format!("--token-file={}", token_file.display()),
        "--service-account=web",
    ]))
    .unwrap()
    .settings;
    let proxy = tokio::spawn(mesh_proxy::run::run(settings));
    ready_with(admin, 1).await;
    assert_eq!(Identity::load(dir.path()).unwrap().name(), WEB, "bootstrapped before the proxy loaded its identity");
    rt.set_config(Some(config_entry("b", &key)));
    ready_with(admin, 2).await;
    proxy.abort();
}
