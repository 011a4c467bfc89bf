//! The `mesh-runtime` binary as a child process: started in file or
//! Kubernetes mode, waited on until it serves N configs, and measured from
//! /proc.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Runtime {
    child: Child,
    pub api: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// A port the kernel just handed out; the runtime binds it right after.
pub fn free_addr() -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

impl Runtime {
    /// Starts `bin` with `mode_args` plus its listen addresses; stderr goes
    /// to `log` (shown if it never gets ready).
    pub fn spawn(bin: &Path, mode_args: &[OsString], env: &[(&str, &Path)], log: &Path) -> Result<Runtime, String> {
        let (api, admin) = (free_addr()?, free_addr()?);
        let stderr = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(mode_args)
            .args(["--listen", &api.to_string(), "--admin", &admin.to_string(), "--max-watches", "20000"])
            // The certificate figure is the runtime's own ceiling: no rate limit.
            .args(["--cert-rate", "1e9", "--cert-burst", "1000000000"])
            .args(["--cert-rate-per-identity", "1e9", "--cert-burst-per-identity", "1000000000"])
            .env("MESH_RUNTIME_LOG", "warn")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Runtime { child, api, admin, log: log.to_owned() })
    }

    /// Waits until /ready answers 200 with `configs <n>`; returns how long that took.
    pub async fn wait_serving(&mut self, n: usize, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let want = format!("configs {n}\n");
        let mut last = String::new();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("mesh-runtime exited ({status}): {}", self.log_tail()));
            }
            if let Ok(body) = http_get(self.admin, "/ready").await {
                if body.starts_with("HTTP/1.1 200") && body.contains(&want) {
                    return Ok(start.elapsed());
                }
                last = body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("mesh-runtime not serving {n} configs after {timeout:?}; /ready: {last}\n{}", self.log_tail()))
    }

    pub fn memory(&self) -> Result<Memory, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("{path}: no {name}"))
        };
        Ok(Memory { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 GET on the admin port; the whole response as text.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.map_err(std::io::Error::other)??;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
