//! The iptables backend: which binaries, whether this process may use
//! them, and running them. Everything goes through `<family>-save -t nat`
//! (read) and `<family>-restore --noflush` (one atomic write).

use super::InitError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `--iptables-mode`: the iptables family whose binaries are run. Linkerd's
/// default since 2.19 is nft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Nft,
    Legacy,
}

impl Mode {
    fn prefix(self) -> &'static str {
        match self {
            Mode::Nft => "iptables-nft",
            Mode::Legacy => "iptables-legacy",
        }
    }

    fn package_hint(self) -> &'static str {
        "install Debian's iptables package (it ships iptables-nft-* and iptables-legacy-*)"
    }
}

/// The two binaries of one family, found on `PATH`.
#[derive(Debug)]
pub struct Backend {
    pub mode: Mode,
    save: PathBuf,
    restore: PathBuf,
}

/// `CAP_NET_ADMIN`'s bit in the capability sets (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

impl Backend {
    /// Finds `mode`'s save and restore binaries. Unlike linkerd2-proxy-init's
    /// `resolveBinFallback`, a missing family is an error rather than a
    /// silent switch to another: rules written into the other backend's
    /// tables would work or not depending on the kernel and on what else
    /// writes them, which is the kind of surprise an init container must not
    /// have.
    pub fn find(mode: Mode) -> Result<Backend, InitError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        let find = |name: String| {
            dirs.iter()
                .map(|d| d.join(&name))
                .find(|p| is_executable(p))
                .ok_or_else(|| InitError::MissingBinary { binary: name.clone(), hint: mode.package_hint() })
        };
        Ok(Backend {
            mode,
            save: find(format!("{}-save", mode.prefix()))?,
            restore: find(format!("{}-restore", mode.prefix()))?,
        })
    }

    /// `iptables-save -t nat`.
    pub fn save_nat(&self) -> Result<String, InitError> {
        let out = Command::new(&self.save)
            .args(["-t", "nat"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| InitError::Command { command: self.save.display().to_string(), message: e.to_string() })?;
        if !out.status.success() {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(InitError::Command { command: format!("{} -t nat", self.save.display()), message });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `iptables-restore --noflush` with `script` on stdin.
    pub fn restore(&self, script: &str) -> Result<(), InitError> {
        let command = format!("{} --noflush", self.restore.display());
        let failed = |message: String| InitError::Command { command: command.clone(), message };
        let mut child = Command::new(&self.restore)
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(|e| failed(e.to_string()))?;
        }
        let out = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(failed(format!("{stderr}\nscript:\n{script}")));
        }
        Ok(())
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails unless this process holds `CAP_NET_ADMIN` in its effective set
/// (read from `/proc/self/status`), before anything runs: iptables' own
/// message for it ("Permission denied (you must be root)") names neither the
/// capability nor the pod setting that grants it.
pub fn require_net_admin() -> Result<(), InitError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| InitError::Command { command: "read /proc/self/status".into(), message: e.to_string() })?;
    match effective_caps(&status) {
        Some(caps) if caps & (1 << CAP_NET_ADMIN) != 0 => Ok(()),
        Some(_) => Err(InitError::NoNetAdmin),
        None => Err(InitError::Command { command: "read /proc/self/status".into(), message: "no CapEff line".into() }),
    }
}

/// The `CapEff:` mask of a `/proc/<pid>/status` text.
pub fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}
