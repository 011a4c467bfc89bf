//! Starting mesh-echo as a workload's app: one listener per port the
//! workload's config serves, HTTP (`--listen`) or opaque TCP (`--tcp`) as
//! the port's Server says, and no return before every listener is bound.

use crate::binary;
use mesh_proxy_api::config::Protocol;
use mesh_proxy_api::{PortPolicy, ProxyConfig};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A command that runs mesh-echo here; a test that runs it elsewhere (in a
/// pod's network namespace) builds its own around [`binary`]`("mesh-echo")`.
pub fn command() -> Command {
    Command::new(binary("mesh-echo"))
}

/// Spawns `command` (mesh-echo, see [`command`]) as app `name` listening on
/// `addrs`, each served as `config`'s inbound policy has its port, with
/// `extra` flags after; returns once mesh-echo has reported every listener,
/// so a test's first request finds them bound.
pub fn spawn(mut command: Command, name: &str, config: &ProxyConfig, addrs: &[SocketAddr], extra: &[String]) -> Child {
    let mut child = command
        .args(args(name, config, addrs))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("mesh-echo {name} starts: {e}"));
    let stdout = child.stdout.take().expect("mesh-echo's stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    for _ in addrs {
        let line = lines.next().and_then(Result::ok);
        let line = line.unwrap_or_else(|| panic!("mesh-echo {name} ended before reporting its listeners"));
        assert!(line.starts_with("listening"), "mesh-echo {name}: {line}");
    }
    child
}

/// `--name NAME` and a listener flag per address.
fn args(name: &str, config: &ProxyConfig, addrs: &[SocketAddr]) -> Vec<String> {
    let mut args = vec!["--name".to_string(), name.to_string()];
    for addr in addrs {
        let flag = if serves_opaque(config, addr.port()) { "--tcp" } else { "--listen" };
        args.extend([flag.to_string(), addr.to_string()]);
    }
    args
}

/// Whether the port's Server takes opaque TCP (or TLS passed through), for
/// which mesh-echo echoes bytes; every other port gets HTTP.
fn serves_opaque(config: &ProxyConfig, port: u16) -> bool {
    matches!(config.inbound.lookup(port), PortPolicy::Server(s) if matches!(s.protocol, Protocol::Opaque | Protocol::Tls))
}
