use crate::kube::{on_both_servers, server};
use crate::servers::Server;
use crate::support::*;
use http::StatusCode;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Kills the child if the test fails before it is stopped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on free ports with the arguments `configure` adds;
/// its log goes to `runtime.log` in the test's directory.
fn spawn(files: &Files, configure: impl FnOnce(&mut Command)) -> (Child, SocketAddr, SocketAddr) {
    let (api, admin) = (free_port(), free_port());
    let log = std::fs::File::create(files.tmp.path().join("runtime.log")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mesh-runtime"));
    configure(&mut command);
    command.args(["--listen", &api.to_string(), "--admin", &admin.to_string()]);
    let child = command.stdout(Stdio::null()).stderr(log).spawn().unwrap();
    (Child(child), api, admin)
}

fn log_of(files: &Files) -> String {
    std::fs::read_to_string(files.tmp.path().join("runtime.log")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_build_directory_and_stops_on_sigterm() {
    let files = Files::new();
    let (mut child, api, admin) = spawn(&files, |c| {
        c.arg("--dir").arg(&files.dist).arg("--trust-key").arg(&files.pubkey).arg("--ca-dir").arg(&files.ca_dir);
        c.arg("--endpoints").arg(&files.endpoints).arg("--tokens").arg(&files.tokens);
    });
    serves_the_frontend(&files, api, admin).await;
    stops_on_sigterm(&mut child).await;
    let log = log_of(&files);
    assert!(log.contains("mesh-runtime serving"), "{log}");
}

/// `mesh-runtime --kubernetes` takes its API server from KUBECONFIG.
async fn binary_reads_kubeconfig_and_stops_on_sigterm(server: Server) {
    let files = crate::kube::populate(&server).await;
    let kubeconfig = match (server.fake_server(), server.real_server()) {
        (Some(fake), _) => {
            let path = files.tmp.path().join("kubeconfig");
            fake.kubeconfig(&path).unwrap();
            path
        }
        (None, Some(real)) => real.kubeconfig().to_owned(),
        (None, None) => unreachable!("a server is the fake or a real one"),
    };
    let (mut child, api, admin) = spawn(&files, |c| {
        c.env("KUBECONFIG", &kubeconfig).env_remove("POD_NAMESPACE");
        c.args(["--kubernetes", "--pod-name", "binary-test"]);
    });
    serves_the_frontend(&files, api, admin).await;
    stops_on_sigterm(&mut child).await;
    let log = log_of(&files);
    assert!(log.contains("Kubernetes (namespace mesh-system, replica binary-test)"), "{log}");
}

on_both_servers!(binary_reads_kubeconfig_and_stops_on_sigterm:
    the_binary_in_kubernetes_mode_reads_kubeconfig_and_stops_on_sigterm,
    the_binary_in_kubernetes_mode_reads_kubeconfig_real_apiserver);

/// Waits for `/ready`, then fetches the frontend's config as its proxy would.
async fn serves_the_frontend(files: &Files, api: SocketAddr, admin: SocketAddr) {
    let started = Instant::now();
    loop {
        if let Ok(tcp) = tokio::net::TcpStream::connect(admin).await {
            drop(tcp);
            if admin_get(admin, "/ready").await.0 == StatusCode::OK {
                break;
            }
        }
        assert!(started.elapsed() < crate::kube::WAIT, "not ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frontend = config("frontend");
    let tls = tls_config(Some(&files.identity(&frontend.identity)), files.pki.anchors_pem());
    let r = get(api, tls, &config_path(&workload_key(&frontend), None, None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.digest().starts_with("sha256:"));
}

async fn stops_on_sigterm(child: &mut Child) {
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
