//! Fresh network namespaces for the `..._iptables_...` tests: named ones
//! (`ip netns add`), so that both `ip netns exec` and a thread that joins
//! one with `setns` can work inside; deleted on drop.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Netns {
    pub name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip(args: &[&str]) {
    run_ip(args).unwrap_or_else(|e| panic!("{e}"));
}

impl Netns {
    /// A new namespace with loopback up, or `None` (after the loud skip, or
    /// the CI failure) when the tools are missing or it cannot be made.
    pub fn create(test: &str, tools: &[&str]) -> Option<Netns> {
        let install = "apt-get install -y iproute2 iptables util-linux bash";
        if !mesh_test_support::require_tool(test, "ip", &["-V"], install) {
            return None;
        }
        for tool in tools {
            if !mesh_test_support::require_tool(test, tool, &["--version"], install) {
                return None;
            }
        }
        let name = format!("mp-init-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = run_ip(&["netns", "add", &name]) {
            mesh_test_support::missing(
                test,
                &format!("cannot create a network namespace ({e})"),
                "run the tests as root",
            );
            return None;
        }
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// Two namespaces joined by a veth pair, `eth0` on both sides, with
    /// `addrs.0` in the first and `addrs.1` in the second (a /24 each).
    pub fn pair(test: &str, addrs: (Ipv4Addr, Ipv4Addr), tools: &[&str]) -> Option<(Netns, Netns)> {
        let a = Netns::create(test, tools)?;
        let b = Netns::create(test, tools)?;
        ip(&["-n", &a.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b.name]);
        for (ns, addr) in [(&a, addrs.0), (&b, addrs.1)] {
            ns.add_address(addr);
            ip(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        }
        Some((a, b))
    }

    pub fn add_address(&self, addr: Ipv4Addr) {
        ip(&["-n", &self.name, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
    }

    /// `ip netns exec NAME program`.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that has joined this namespace: sockets it
    /// makes live here, wherever they are used afterwards.
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a file descriptor we own; it changes only this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("the thread inside the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_ip(&["netns", "del", &self.name]);
    }
}

pub fn listen(ns: &Netns, addr: SocketAddr) -> TcpListener {
    let l = ns.inside(move || TcpListener::bind(addr)).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    l.set_nonblocking(true).unwrap();
    l
}

/// Opens a connection from inside `ns` (from `source` when given) and
/// returns once it is established.
pub fn connect_from(ns: &Netns, source: Option<Ipv4Addr>, dst: SocketAddr) -> TcpStream {
    ns.inside(move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        if let Some(ip) = source {
            s.bind(&SocketAddr::from((ip, 0)).into())?;
        }
        s.connect_timeout(&dst.into(), Duration::from_secs(3))?;
        Ok::<_, std::io::Error>(TcpStream::from(s))
    })
    .unwrap_or_else(|e| panic!("connect to {dst} (from {source:?}): {e}"))
}

/// The destination the client of the next connection on `l` asked for
/// (its `SO_ORIGINAL_DST` when the connection was redirected, else the
/// listener's own address); `None` when none arrives within a second.
pub fn accepted_from(l: &TcpListener) -> Option<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let original = socket2::SockRef::from(&s).original_dst_v4().ok().and_then(|a| a.as_socket());
                return Some(original.unwrap_or_else(|| s.local_addr().expect("local address")));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return None,
        }
    }
}
