//! The nat-table rules `mesh-proxy init` installs, as one iptables-restore
//! script (`--noflush`), built from the options and what `iptables-save -t
//! nat` shows now. The chains, order, matches and comments are those of
//! linkerd2-proxy-init (`addIncomingTrafficRules`, `addOutgoingTrafficRules`
//! in `pkg/iptables/iptables.go`; docs/semantics/proxy-init.md), so people and
//! tools that know Linkerd's tables recognise these.

use super::ports::{PortRange, multiport_batches};
use ipnet::Ipv4Net;

pub const REDIRECT_CHAIN: &str = "PROXY_INIT_REDIRECT";
pub const OUTPUT_CHAIN: &str = "PROXY_INIT_OUTPUT";

/// What the rules are made from, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub inbound_port: u16,
    pub outbound_port: u16,
    /// Connections opened by this uid are never redirected (the proxy's own).
    pub proxy_uid: u32,
    /// Inbound destination ports left alone: the proxy's own ports, then
    /// `--skip-inbound-ports`.
    pub inbound_skip: Vec<PortRange>,
    /// Outbound destination ports left alone (`--skip-outbound-ports`).
    pub outbound_skip: Vec<PortRange>,
    /// Source networks whose inbound connections are left alone.
    pub skip_subnets: Vec<Ipv4Net>,
}

/// The jumps from the built-in chains found in `iptables-save -t nat`
/// output, exactly as saved (`-A PREROUTING … -j PROXY_INIT_REDIRECT`).
fn saved_jumps<'a>(saved: &'a str, from: &'a str, to: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let prefix = format!("-A {from} ");
    let target = format!("-j {to}");
    saved.lines().filter(move |l| l.starts_with(&prefix) && (l.ends_with(&target) || l.contains(&format!("{target} "))))
}

fn saved_chain(saved: &str, chain: &str) -> bool {
    let declared = format!(":{chain} ");
    saved.lines().any(|l| l.starts_with(&declared))
}

fn comment(what: &str) -> String {
    format!("-m comment --comment \"proxy-init/{what}\"")
}

/// The restore script that installs the rules. Declaring the two chains
/// creates them or, when they exist, flushes them (`--noflush` leaves every
/// other chain alone), so a second run writes the same contents again; the
/// jumps are added only when the saved table lacks them. The script is
/// applied in one commit: a failure leaves the table as it was.
pub fn install_script(plan: &Plan, saved: &str) -> String {
    let mut s = String::from("*nat\n");
    s.push_str(&format!(":{REDIRECT_CHAIN} - [0:0]\n:{OUTPUT_CHAIN} - [0:0]\n"));
    inbound_rules(plan, &mut s);
    if saved_jumps(saved, "PREROUTING", REDIRECT_CHAIN).next().is_none() {
        s.push_str(&format!("-A PREROUTING {} -j {REDIRECT_CHAIN}\n", comment("install-proxy-init-prerouting")));
    }
    outbound_rules(plan, &mut s);
    if saved_jumps(saved, "OUTPUT", OUTPUT_CHAIN).next().is_none() {
        s.push_str(&format!("-A OUTPUT {} -j {OUTPUT_CHAIN}\n", comment("install-proxy-init-output")));
    }
    s.push_str("COMMIT\n");
    s
}

/// `PROXY_INIT_REDIRECT`: skipped ports, skipped source subnets, then every
/// other TCP connection to the inbound port.
fn inbound_rules(plan: &Plan, s: &mut String) {
    for ports in multiport_batches(&plan.inbound_skip) {
        let c = comment(&format!("ignore-port-{ports}"));
        s.push_str(&format!("-A {REDIRECT_CHAIN} -p tcp -m multiport --dports {ports} {c} -j RETURN\n"));
    }
    for net in &plan.skip_subnets {
        let c = comment(&format!("ignore-subnet-{net}"));
        s.push_str(&format!("-A {REDIRECT_CHAIN} -s {net} {c} -j RETURN\n"));
    }
    let c = comment("redirect-all-incoming-to-proxy-port");
    s.push_str(&format!("-A {REDIRECT_CHAIN} -p tcp {c} -j REDIRECT --to-ports {}\n", plan.inbound_port));
}

/// `PROXY_INIT_OUTPUT`: the proxy's own connections, anything leaving
/// through loopback, skipped ports, then every other TCP connection to the
/// outbound port. Like Linkerd, a uid of 0 adds no exclusion (it would
/// exempt every root process, not the proxy); `--proxy-uid` refuses 0.
fn outbound_rules(plan: &Plan, s: &mut String) {
    let c = comment("ignore-proxy-user-id");
    s.push_str(&format!("-A {OUTPUT_CHAIN} -m owner --uid-owner {} {c} -j RETURN\n", plan.proxy_uid));
    s.push_str(&format!("-A {OUTPUT_CHAIN} -o lo {} -j RETURN\n", comment("ignore-loopback")));
    for ports in multiport_batches(&plan.outbound_skip) {
        let c = comment(&format!("ignore-port-{ports}"));
        s.push_str(&format!("-A {OUTPUT_CHAIN} -p tcp -m multiport --dports {ports} {c} -j RETURN\n"));
    }
    let c = comment("redirect-all-outgoing-to-proxy-port");
    s.push_str(&format!("-A {OUTPUT_CHAIN} -p tcp {c} -j REDIRECT --to-ports {}\n", plan.outbound_port));
}

/// The restore script that removes everything `install_script` added, in
/// Linkerd's `CleanupFirewallConfig` order (jumps, then flush, then delete
/// the chains); `None` when the saved table holds none of it, so cleanup
/// is idempotent. Each saved jump is deleted by its own saved spec.
pub fn cleanup_script(saved: &str) -> Option<String> {
    let mut body = String::new();
    for (from, to) in [("PREROUTING", REDIRECT_CHAIN), ("OUTPUT", OUTPUT_CHAIN)] {
        for jump in saved_jumps(saved, from, to) {
            body.push_str(&format!("-D {}\n", &jump[3..]));
        }
    }
    let chains: Vec<&str> = [REDIRECT_CHAIN, OUTPUT_CHAIN].into_iter().filter(|c| saved_chain(saved, c)).collect();
    for chain in &chains {
        body.push_str(&format!("-F {chain}\n"));
    }
    for chain in &chains {
        body.push_str(&format!("-X {chain}\n"));
    }
    (!body.is_empty()).then(|| format!("*nat\n{body}COMMIT\n"))
}

/// Whether the saved table carries the full installation (both chains and
/// both jumps); the tests and `--cleanup`'s report use it.
pub fn installed(saved: &str) -> bool {
    saved_chain(saved, REDIRECT_CHAIN)
        && saved_chain(saved, OUTPUT_CHAIN)
        && saved_jumps(saved, "PREROUTING", REDIRECT_CHAIN).next().is_some()
        && saved_jumps(saved, "OUTPUT", OUTPUT_CHAIN).next().is_some()
}
