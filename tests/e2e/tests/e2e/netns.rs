//! Runs a test inside a fresh network namespace, where it may put the
//! example's pod, kubelet and external addresses on the loopback device:
//! policy sees the real source addresses it names, with no veth or routes.

use std::net::IpAddr;
use std::process::Command;

const INSIDE: &str = "MESH_E2E_IN_NETNS";

/// Re-runs test `name` of this binary under `unshare --net` (falling back to a
/// user namespace when not root) and asserts it passed; inside, runs `body`.
pub fn run(name: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        ip(&["link", "set", "lo", "up"]);
        return body();
    }
    let exe = std::env::current_exe().expect("test binary path");
    if !mesh_test_support::require_tool(name, "ip", &["-V"], "apt-get install -y iproute2") {
        return;
    }
    let attempts: [&[&str]; 2] = [&["--net"], &["--user", "--map-root-user", "--net"]];
    let Some(flags) = attempts
        .into_iter()
        .find(|flags| Command::new("unshare").args(*flags).arg("true").status().is_ok_and(|s| s.success()))
    else {
        // The example's addresses only exist inside a namespace of the test's own.
        mesh_test_support::missing(
            name,
            "cannot create a network namespace (`unshare --net` and `unshare --user --net` both failed)",
            "run as root, or where unprivileged user namespaces are allowed (util-linux's unshare)",
        );
        return;
    };
    // Built out here: inside, the namespace has no network for cargo.
    let bin_dir = mesh_e2e::bin_dir();
    println!("e2e {name}: running in a new network namespace (unshare {})", flags.join(" "));
    let status = Command::new("unshare")
        .args(flags)
        .arg("--")
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .env(mesh_e2e::BIN_DIR_ENV, bin_dir)
        .status()
        .expect("unshare runs");
    assert!(status.success(), "e2e {name} failed inside its network namespace");
}

/// Puts `addr` on the loopback device of this namespace.
pub fn add_address(addr: IpAddr) {
    if addr.is_loopback() {
        return;
    }
    let prefix = if addr.is_ipv4() { 32 } else { 128 };
    let cidr = format!("{addr}/{prefix}");
    let out = Command::new("ip").args(["addr", "add", &cidr, "dev", "lo"]).output().expect("ip runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("File exists") || err.contains("already assigned"),
        "ip addr add {cidr}: {err}"
    );
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {}", args.join(" "));
}

/// Whether iptables works here (transparent mode needs REDIRECT).
pub fn iptables_available() -> Result<(), String> {
    match Command::new("iptables").args(["-t", "nat", "-L", "-n"]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("iptables: {e}")),
    }
}

pub fn iptables(args: &[&str]) {
    let out = Command::new("iptables").args(args).output().expect("iptables runs");
    assert!(out.status.success(), "iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}
