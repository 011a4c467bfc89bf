//! A background task that panics or ends takes the runtime down: `/ready`
//! stops answering 200 and the runtime stops, so that its supervisor
//! (the kubelet, systemd) restarts it with fresh state.

use crate::support::*;
use http::StatusCode;
use mesh_runtime::ca::Ca;
use mesh_runtime::hub::{ConfigHub, EndpointsHub};
use mesh_runtime::metrics::Metrics;
use mesh_runtime::run::{self, Parts};
use mesh_runtime::serve::Readiness;
use mesh_runtime::store::Store;
use mesh_runtime::supervise::Tasks;
use mesh_runtime::tokens::FileTokens;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct AlwaysReady;

impl Readiness for AlwaysReady {
    fn ready(&self) -> Result<String, String> {
        Ok("inputs synced".into())
    }
}

fn parts(files: &Files) -> Parts {
    let metrics = Arc::new(Metrics::new());
    let (_, ca) = tokio::sync::watch::channel(Arc::new(
        Ca::load(&files.ca_dir, &mesh_proxy_api::IdentityDomain::default()).unwrap(),
    ));
    Parts {
        configs: Arc::new(ConfigHub::new(Store::new(Vec::new()), metrics.clone())),
        endpoints: Arc::new(EndpointsHub::default()),
        tokens: Arc::new(FileTokens::default()),
        readiness: Arc::new(AlwaysReady),
        ca,
        metrics,
        namespace: "mesh-system".into(),
        source: "test".into(),
        namespaces: Arc::new(mesh_runtime::webhook::NoNamespaces),
    }
}

/// `/ready`'s status, or `None` once the admin port is closed (which may
/// happen at any step).
async fn ready_status(admin: std::net::SocketAddr) -> Option<StatusCode> {
    use http_body_util::Full;
    let tcp = tokio::net::TcpStream::connect(admin).await.ok()?;
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
    tokio::spawn(conn);
    let req = http::Request::get("/ready").header("host", "admin").body(Full::new(bytes::Bytes::new())).ok()?;
    Some(send.send_request(req).await.ok()?.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_background_task_fails_ready_and_stops_the_runtime() {
    let files = Files::new();
    let mut tasks = Tasks::new(CancellationToken::new());
    tasks.spawn("injected", async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        panic!("injected failure");
    });
    let rt = run::serve(&files.settings(), parts(&files), tasks).await.unwrap();
    assert_eq!(ready_status(rt.admin_addr).await, Some(StatusCode::OK));

    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = ready_status(rt.admin_addr).await;
        if status != Some(StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "/ready still answers 200 after the task panicked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failure = tokio::time::timeout(Duration::from_secs(1), rt.failed()).await.unwrap();
    assert_eq!(failure, "background task `injected` panicked: injected failure");
    assert!(rt.shutdown.is_cancelled());
    tokio::time::timeout(Duration::from_secs(5), rt.stopped()).await.expect("the runtime stops by itself");
}
