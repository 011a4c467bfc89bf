//! A node and its pods, as a CNI plugin and kube-proxy would lay them out,
//! inside the test's own network namespace (the node): each pod a named
//! network namespace (`ip netns add`) joined to the node by a veth pair,
//! its address a /32 on its `eth0` with the node's gateway address as the
//! default route (the node owns the same gateway address on every veth,
//! routes each pod's /32 to its veth and forwards between them), and the
//! node DNATs each Service cluster IP and port to the pod behind it, as
//! kube-proxy's iptables mode does.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

/// One pod's network namespace; deleted (with its veth) on drop.
pub struct PodNet {
    pub name: String,
    pub ip: Ipv4Addr,
}

fn run(program: &str, args: &[&str]) {
    let out =
        Command::new(program).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
}

/// The node side: forwarding on, the gateway address known.
pub fn node_up() {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward in the node namespace");
}

impl PodNet {
    /// Pod `n` at `ip`, behind the node's `gateway`.
    pub fn create(n: usize, ip: Ipv4Addr, gateway: Ipv4Addr) -> PodNet {
        let name = format!("mesh-pod-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let pod = PodNet { name, ip };
        let veth = pod.veth();
        run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pod.name]);
        run("ip", &["addr", "add", &format!("{gateway}/32"), "dev", &veth]);
        run("ip", &["link", "set", &veth, "up"]);
        run("ip", &["route", "add", &format!("{ip}/32"), "dev", &veth]);
        let inside = |args: &[&str]| run("ip", &[&["-n", pod.name.as_str()], args].concat());
        inside(&["link", "set", "lo", "up"]);
        inside(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["route", "add", &format!("{gateway}/32"), "dev", "eth0"]);
        inside(&["route", "add", "default", "via", &gateway.to_string(), "dev", "eth0"]);
        pod
    }

    fn veth(&self) -> String {
        // At most 15 characters: unique per pod within the node namespace.
        format!("vp{}", self.name.rsplit('-').next().unwrap_or("0"))
    }

    /// `ip netns exec <pod> program args…`.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Spawns `program` in the pod as `uid` (the proxy's own), logging to `log`.
    pub fn spawn_as(&self, uid: u32, program: &std::path::Path, args: &[String], log: File) -> Child {
        let id = uid.to_string();
        Command::new("ip")
            .args(["netns", "exec", &self.name, "setpriv", &format!("--reuid={id}"), &format!("--regid={id}")])
            .args(["--clear-groups", "--"])
            .arg(program)
            .args(args)
            .env("MESH_PROXY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }

    /// A TCP connection opened from inside the pod, as its app opens one
    /// (uid 0, so the pod's OUTPUT rules apply to it).
    pub fn connect(&self, dst: SocketAddr) -> std::io::Result<std::net::TcpStream> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path)?;
            // SAFETY: setns on a descriptor we own; it moves only this short-lived thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let s = std::net::TcpStream::connect_timeout(&dst, std::time::Duration::from_secs(5))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the connecting thread panicked")))
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth()]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// kube-proxy's rule for one Service port with one endpoint: connections
/// to the cluster IP and port, from the pods or the node, go to the pod.
pub fn dnat(cluster: SocketAddr, endpoint: SocketAddr) {
    let (ip, port, to) = (cluster.ip().to_string(), cluster.port().to_string(), endpoint.to_string());
    for chain in ["PREROUTING", "OUTPUT"] {
        let rule = ["-t", "nat", "-A", chain, "-p", "tcp", "-d", &ip, "--dport", &port, "-j", "DNAT"];
        run("iptables", &[&rule[..], &["--to-destination", &to]].concat());
    }
}

/// Whether `ip` is IPv4 (the pod network here is).
pub fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => panic!("the pod test lays out an IPv4 pod network; {ip} is IPv6"),
    }
}
