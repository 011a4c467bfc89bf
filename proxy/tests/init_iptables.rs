//! `mesh-proxy init` against real tables in fresh network namespaces
//! (`ip netns add`): the rules read back with `iptables-save`, a second run
//! and `--cleanup` checked by listing them again, and the redirection
//! checked with real sockets between a "pod" namespace and a "peer"
//! namespace joined by a veth pair. Needs root and iproute2, iptables and
//! util-linux (setpriv); under CI a missing tool fails the test.

mod netns;

use netns::{Netns, accepted_from, connect_from, listen};
use std::net::{Ipv4Addr, SocketAddr};

const MESH_PROXY: &str = env!("CARGO_BIN_EXE_mesh-proxy");

/// Runs `mesh-proxy init ARGS` in `ns`; returns its stdout, stderr, success.
fn init(ns: &Netns, args: &[&str]) -> (String, String, bool) {
    let out = ns.command(MESH_PROXY).arg("init").args(args).output().expect("mesh-proxy runs");
    (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into(), out.status.success())
}

fn init_ok(ns: &Netns, args: &[&str]) -> String {
    let (stdout, stderr, ok) = init(ns, args);
    assert!(ok, "mesh-proxy init {args:?} failed: {stderr}");
    stdout
}

/// `<family>-save -t nat` without its timestamped comment lines.
fn saved_nat(ns: &Netns, save: &str) -> String {
    let out = ns.command(save).args(["-t", "nat"]).output().expect("iptables-save runs");
    assert!(out.status.success(), "{save}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
}

fn rules_of(saved: &str, chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    saved.lines().filter(|l| l.starts_with(&prefix)).map(str::to_owned).collect()
}

/// What Linkerd's proxy-init would install for these flags (the chains and
/// order of docs/semantics/proxy-init.md), as the backend saves it back.
fn check_installed_rules(saved: &str) {
    let c = |what: &str| format!("-m comment --comment \"proxy-init/{what}\"");
    assert_eq!(
        rules_of(saved, "PREROUTING"),
        [format!("-A PREROUTING {} -j PROXY_INIT_REDIRECT", c("install-proxy-init-prerouting"))]
    );
    assert_eq!(
        rules_of(saved, "OUTPUT"),
        [format!("-A OUTPUT {} -j PROXY_INIT_OUTPUT", c("install-proxy-init-output"))]
    );
    assert_eq!(
        rules_of(saved, "PROXY_INIT_REDIRECT"),
        [
            format!(
                "-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4191,9999,7000:7010 {} -j RETURN",
                c("ignore-port-4191,9999,7000:7010")
            ),
            format!("-A PROXY_INIT_REDIRECT -s 10.77.0.3/32 {} -j RETURN", c("ignore-subnet-10.77.0.3/32")),
            format!(
                "-A PROXY_INIT_REDIRECT -p tcp {} -j REDIRECT --to-ports 4143",
                c("redirect-all-incoming-to-proxy-port")
            ),
        ]
    );
    assert_eq!(
        rules_of(saved, "PROXY_INIT_OUTPUT"),
        [
            format!("-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 {} -j RETURN", c("ignore-proxy-user-id")),
            format!("-A PROXY_INIT_OUTPUT -o lo {} -j RETURN", c("ignore-loopback")),
            format!("-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 5432 {} -j RETURN", c("ignore-port-5432")),
            format!(
                "-A PROXY_INIT_OUTPUT -p tcp {} -j REDIRECT --to-ports 4140",
                c("redirect-all-outgoing-to-proxy-port")
            ),
        ]
    );
}

const FLAGS: [&str; 8] = [
    "--skip-inbound-ports",
    "9999,7000-7010",
    "--skip-outbound-ports",
    "5432",
    "--skip-subnets",
    "10.77.0.3/32",
    "--proxy-uid",
    "2102",
];

/// Install, install again (nothing changes), clean up, clean up again.
fn rules_round_trip(test: &str, mode: &str, save: &str) {
    let Some(ns) = Netns::create(test, &[save]) else { return };
    let flags: Vec<&str> = ["--iptables-mode", mode].into_iter().chain(FLAGS).collect();
    let before = saved_nat(&ns, save);
    assert!(init_ok(&ns, &flags).contains("installed"));
    let first = saved_nat(&ns, save);
    check_installed_rules(&first);
    assert!(init_ok(&ns, &flags).contains("jumps already in place"));
    assert_eq!(saved_nat(&ns, save), first, "a second run changes nothing");
    assert!(init_ok(&ns, &["--iptables-mode", mode, "--cleanup"]).contains("removed"));
    assert_eq!(saved_nat(&ns, save), before, "cleanup leaves the table as it was");
    assert!(init_ok(&ns, &["--iptables-mode", mode, "--cleanup"]).contains("no proxy-init"));
}

#[test]
fn init_iptables_nft_rules_are_linkerds_idempotent_and_cleaned_up() {
    rules_round_trip("init_iptables_nft_rules_are_linkerds_idempotent_and_cleaned_up", "nft", "iptables-nft-save");
}

#[test]
fn init_iptables_legacy_rules_are_linkerds_idempotent_and_cleaned_up() {
    rules_round_trip(
        "init_iptables_legacy_rules_are_linkerds_idempotent_and_cleaned_up",
        "legacy",
        "iptables-legacy-save",
    );
}

/// A change of options refills the chains and keeps one jump each.
#[test]
fn init_iptables_rerun_with_other_ports_replaces_the_chains() {
    let Some(ns) = Netns::create("init_iptables_rerun_with_other_ports_replaces_the_chains", &["iptables-nft-save"])
    else {
        return;
    };
    init_ok(&ns, &FLAGS);
    init_ok(&ns, &["--inbound-port", "5143", "--outbound-port", "5140"]);
    let saved = saved_nat(&ns, "iptables-nft-save");
    assert_eq!(rules_of(&saved, "PREROUTING").len(), 1);
    assert_eq!(rules_of(&saved, "OUTPUT").len(), 1);
    let inbound = rules_of(&saved, "PROXY_INIT_REDIRECT");
    assert_eq!(inbound.len(), 2, "admin port, then the redirect: {inbound:?}");
    assert!(inbound[1].ends_with("--to-ports 5143"));
    assert!(rules_of(&saved, "PROXY_INIT_OUTPUT").last().is_some_and(|r| r.ends_with("--to-ports 5140")));
}

#[test]
fn init_iptables_errors_name_the_missing_binary_and_capability() {
    let Some(ns) = Netns::create("init_iptables_errors_name_the_missing_binary_and_capability", &["setpriv"]) else {
        return;
    };
    let out = ns
        .command("env")
        .args(["PATH=/nonexistent", MESH_PROXY, "init", "--iptables-mode", "legacy"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("`iptables-legacy-save` is not on PATH"), "{stderr}");
    // Root without its capabilities, as in a container that did not add NET_ADMIN.
    let out = ns
        .command("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--", MESH_PROXY, "init"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("lacks CAP_NET_ADMIN"), "{stderr}");
    let out = ns.command(MESH_PROXY).args(["init", "--skip-subnets", "10.0.0.0/40"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a CIDR"));
    assert!(saved_nat(&ns, "iptables-nft-save").lines().all(|l| !l.contains("PROXY_INIT")), "nothing was installed");
}

const POD: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER_IN_SKIPPED_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);

/// Real connections in both directions, each landing where the rules say:
/// on the proxy's port (with the original destination readable through
/// `SO_ORIGINAL_DST`) or, when skipped, on the address it was sent to.
#[test]
fn init_iptables_redirects_real_connections_except_the_skipped_ones() {
    let test = "init_iptables_redirects_real_connections_except_the_skipped_ones";
    let Some((pod, peer)) = Netns::pair(test, (POD, PEER), &["setpriv", "bash"]) else { return };
    peer.add_address(PEER_IN_SKIPPED_SUBNET);
    init_ok(&pod, &FLAGS);
    let sa = |ip: Ipv4Addr, port: u16| SocketAddr::from((ip, port));
    let inbound = listen(&pod, sa(Ipv4Addr::UNSPECIFIED, 4143));
    let outbound = listen(&pod, sa(Ipv4Addr::LOCALHOST, 4140));
    let app = listen(&pod, sa(Ipv4Addr::UNSPECIFIED, 8080));
    let skipped_app = listen(&pod, sa(Ipv4Addr::UNSPECIFIED, 9999));
    let admin = listen(&pod, sa(Ipv4Addr::UNSPECIFIED, 4191));
    let peer_http = listen(&peer, sa(PEER, 80));
    let peer_db = listen(&peer, sa(PEER, 5432));

    // Inbound: redirected to 4143 unless the port or the source is skipped.
    connect_from(&peer, None, sa(POD, 8080));
    assert_eq!(accepted_from(&inbound), Some(sa(POD, 8080)), "inbound 8080 reaches the inbound port");
    connect_from(&peer, None, sa(POD, 9999));
    assert!(accepted_from(&skipped_app).is_some(), "a skipped inbound port reaches the app");
    connect_from(&peer, None, sa(POD, 4191));
    assert!(accepted_from(&admin).is_some(), "the admin port is never redirected");
    connect_from(&peer, Some(PEER_IN_SKIPPED_SUBNET), sa(POD, 8080));
    assert!(accepted_from(&app).is_some(), "a skipped source subnet reaches the app directly");

    // Outbound: redirected to 4140 unless the port is skipped or the proxy's uid opens it.
    connect_from(&pod, None, sa(PEER, 80));
    assert_eq!(accepted_from(&outbound), Some(sa(PEER, 80)), "outbound reaches the outbound port");
    connect_from(&pod, None, sa(PEER, 5432));
    assert!(accepted_from(&peer_db).is_some(), "a skipped outbound port goes out directly");
    let as_proxy = pod
        .command("setpriv")
        .args(["--reuid=2102", "--regid=2102", "--clear-groups", "bash", "-c", "exec 3<>/dev/tcp/10.77.0.1/80"])
        .status()
        .unwrap();
    assert!(as_proxy.success(), "the proxy's uid connects");
    assert!(accepted_from(&peer_http).is_some(), "the proxy's own connection is not redirected");
    connect_from(&pod, None, sa(Ipv4Addr::LOCALHOST, 8080));
    assert!(accepted_from(&app).is_some(), "loopback is never redirected");

    assert!(accepted_from(&inbound).is_none() && accepted_from(&outbound).is_none(), "nothing else was redirected");
}
