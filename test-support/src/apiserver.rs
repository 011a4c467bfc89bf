//! A real kube-apiserver (with an embedded etcd) for tests: the Go program in
//! `tests/apiserver-harness`, built once per version of its sources into
//! `~/.cache/meshc/apiserver/<hash>/` (or `$MESHC_APISERVER_CACHE/<hash>/`)
//! and started on loopback.
//!
//! Building needs `go` and the Go module proxy (or a filled module cache); the
//! first build compiles Kubernetes and takes long (docs/development.md gives
//! the figure), later ones reuse the binary. Without `go`, a test fails under
//! CI and skips loudly elsewhere, as for every other tool ([`crate::missing`]).

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a start may take: on a loaded 2-core machine the API server's
/// post-start hooks (RBAC roles, priority levels, CRD informers) take tens of
/// seconds.
const READY_WITHIN: Duration = Duration::from_secs(240);
/// How long a stop may take before the harness is killed outright.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// A running harness. Dropping it closes the harness's stdin, which stops the
/// API server and etcd and removes their directory; a harness that has not
/// exited after [`STOP_WITHIN`] is killed.
pub struct RealApiServer {
    child: Child,
    stdin: Option<ChildStdin>,
    kubeconfig: PathBuf,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl RealApiServer {
    /// Builds (if needed) and starts a harness of its own. `None` when `go` is
    /// missing outside CI (after the loud skip line). Panics when the build or
    /// the start fails: that is a broken test setup, not a missing tool.
    pub fn start(test: &str) -> Option<RealApiServer> {
        let binary = harness_binary(test)?;
        Some(RealApiServer::spawn(&binary).unwrap_or_else(|e| panic!("{test}: {e}")))
    }

    /// One harness for the whole test process, started on first use. Tests
    /// that share it keep to namespaces of their own. It stops when the test
    /// process exits, since that closes its stdin.
    pub fn shared(test: &str) -> Option<&'static RealApiServer> {
        static SHARED: OnceLock<RealApiServer> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        if let Some(server) = SHARED.get() {
            return Some(server);
        }
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = SHARED.get() {
            return Some(server);
        }
        let server = RealApiServer::start(test)?;
        Some(SHARED.get_or_init(|| server))
    }

    /// The kubeconfig of the static admin (group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client for the admin, made for the calling tokio runtime (a
    /// `kube::Client` runs its connection pool on the runtime that made it).
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("{}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.kubeconfig.display()));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client: {e}"))
    }

    /// The harness's log (the API server's and etcd's stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    fn spawn(binary: &Path) -> Result<RealApiServer, String> {
        let log_dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let log = log_dir.path().join("apiserver.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = RealApiServer { child, stdin, kubeconfig: PathBuf::new(), log, _log_dir: log_dir };
        match wait_for_ready(&rx) {
            Ok(kubeconfig) => {
                server.kubeconfig = kubeconfig;
                Ok(server)
            }
            Err(why) => Err(format!("the API server harness did not start: {why}\n{}", server.log_tail())),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("last lines of {}:\n{tail}", self.log.display())
    }
}

/// The harness prints `ready <kubeconfig>` once `/readyz` answers 200.
fn wait_for_ready(lines: &mpsc::Receiver<String>) -> Result<PathBuf, String> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(path) = line.strip_prefix("ready ") {
                    return Ok(PathBuf::from(path));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(format!("not ready within {READY_WITHIN:?}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("it exited before it was ready".into()),
        }
    }
}

impl Drop for RealApiServer {
    fn drop(&mut self) {
        // EOF on stdin is the harness's signal to shut down cleanly.
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the API server harness did not stop within {STOP_WITHIN:?}; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The harness's sources, next to this crate in the checkout.
pub fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/apiserver-harness")
}

/// The built harness, building it first when this version of its sources has
/// not been built on this machine. `None` after the loud skip when `go` is
/// missing outside CI.
pub fn harness_binary(test: &str) -> Option<PathBuf> {
    static BUILDING: Mutex<()> = Mutex::new(());
    if !crate::require_tool(test, "go", &["version"], "apt-get install golang-go, or Go from go.dev (1.26 or newer)") {
        return None;
    }
    let dir = harness_dir();
    let binary = cache_dir().join(sources_hash(&dir)).join("apiserver-harness");
    let _one_build = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if !binary.exists() {
        let _one_process = build_lock(&binary).unwrap_or_else(|e| panic!("{test}: {e}"));
        // Another test process may have built it while this one waited.
        if !binary.exists() {
            build(&dir, &binary).unwrap_or_else(|e| panic!("{test}: building the API server harness failed: {e}"));
        }
    }
    Some(binary)
}

/// An exclusive lock on `<key>/build.lock`, held while building: test
/// processes started together (two `cargo test` runs, several helpers on one
/// machine) wait for one build instead of each compiling Kubernetes. The lock
/// ends with the file handle, also when the process dies. The rename in
/// [`build`] keeps a half-written binary out of sight even of a process that
/// does not take the lock.
fn build_lock(binary: &Path) -> Result<std::fs::File, String> {
    let parent = binary.parent().expect("binary path has a parent");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let path = parent.join("build.lock");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("another process is building the API server harness; waiting for it ({})", path.display());
            file.lock().map_err(|e| format!("locking {}: {e}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("locking {}: {e}", path.display())),
    }
    Ok(file)
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESHC_APISERVER_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/meshc/apiserver")
}

/// go.mod, go.sum and the Go sources: a change to any of them is a new binary.
/// The key is the first 24 hex digits of the SHA-256 of their contents
/// concatenated in this order (`*.go` by name), the same as `.ci/run`'s
/// `cat go.mod go.sum *.go | sha256sum`, so CI's prebuilt binary is found.
fn sources_hash(dir: &Path) -> String {
    let mut go_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "go"))
        .collect();
    go_files.sort();
    let mut hash = Sha256::new();
    for file in [dir.join("go.mod"), dir.join("go.sum")].iter().chain(&go_files) {
        hash.update(std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
    }
    hash.finalize()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// `go build` into a temporary name, then a rename: another test process that
/// builds at the same time never sees half a binary.
fn build(dir: &Path, binary: &Path) -> Result<(), String> {
    let parent = binary.parent().expect("binary path has a parent");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let partial = parent.join(format!("apiserver-harness.{}.partial", std::process::id()));
    eprintln!("building the API server harness into {} (the first build takes minutes)", binary.display());
    let started = Instant::now();
    let output = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&partial)
        .arg(".")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("go build: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("go build in {}: {}", dir.display(), String::from_utf8_lossy(&output.stderr)));
    }
    std::fs::rename(&partial, binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    eprintln!("built the API server harness in {:.0?}", started.elapsed());
    Ok(())
}
