//! The links file of a source cluster (`mesh-runtime --links`, format in
//! runtime/API.md, "Mirrored Services"): per Link, the target cluster's
//! gateway (the Link's fields), where the target's endpoints come from
//! (meshc.yaml's `runtime:` of the target cluster, which the manifests
//! cannot say), and the Services the target exports through it with their
//! mode and ports. `meshc build` signs it with the build's key
//! (`LINKS_PAYLOAD_TYPE`): it decides which identity a client's proxy
//! expects at a gateway and which runtime is believed about remote pods, so
//! the runtime trusts it only as it trusts a config (docs/multicluster.md).

use super::Clusters;
use super::link::{Link, Mode};
use crate::model::Spec;
use crate::settings::Settings;
use crate::settings::clusters::ClusterRuntime;
use mesh_proxy_api::envelope::{self, LINKS_PAYLOAD_TYPE, SigningKey};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The file's name in each source cluster's build directory.
pub const FILE_NAME: &str = "links.json";

/// Kubernetes' limit on a Service name: the service mirror fails to create a longer mirror.
const MAX_SERVICE_NAME: usize = 63;

/// Where a linked cluster's endpoints come from, for its sources' runtimes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// The cluster's mesh-runtime API and the identity its certificate carries.
    Runtime { url: String, identity: String },
    /// An endpoints file on the source runtime's disk.
    EndpointsFile(String),
}

/// Why a `runtime:` entry of meshc.yaml is unusable, if it is.
pub fn check_runtime(r: &ClusterRuntime) -> Result<(), String> {
    match (&r.url, &r.endpoints_file) {
        (Some(_), Some(_)) => return Err("runtime: give either `url` or `endpointsFile`, not both".to_owned()),
        (None, None) => return Err("runtime: needs `url` (https://HOST:PORT) or `endpointsFile`".to_owned()),
        (None, Some(_)) if r.identity.is_some() => {
            return Err("runtime: `identity` is the certificate of a runtime `url`; an endpoints file has none".into());
        }
        (None, Some(f)) if f.trim().is_empty() => return Err("runtime: `endpointsFile` is empty".to_owned()),
        _ => {}
    }
    if let Some(url) = &r.url {
        check_url(url)?;
    }
    if let Some(id) = &r.identity
        && !is_dns_name(id)
    {
        return Err(format!("runtime: identity `{id}` is not a DNS name (the name in the runtime's certificate)"));
    }
    Ok(())
}

/// `https://HOST:PORT` with nothing after the authority, as mesh-runtime takes it.
fn check_url(url: &str) -> Result<(), String> {
    let bad = || Err(format!("runtime: url `{url}` is not https://HOST:PORT"));
    let Some(rest) = url.strip_prefix("https://") else { return bad() };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return bad();
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal without a port: the colon is inside the brackets.
        Some((h, p)) if !p.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(host),
    };
    if port_ok && host_ok { Ok(()) } else { bad() }
}

fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(mesh_proxy_api::names::is_dns_label)
}

/// The remote of a cluster's checked `runtime:` entry; the identity
/// defaults to mesh-runtime's own (`mesh-runtime` in `mesh-system`).
pub fn remote(r: &ClusterRuntime, settings: &Settings) -> Option<Remote> {
    match (&r.url, &r.endpoints_file) {
        (Some(url), None) => {
            let identity = r.identity.clone().unwrap_or_else(|| settings.identity("mesh-system", "mesh-runtime"));
            Some(Remote::Runtime { url: url.clone(), identity })
        }
        (None, Some(file)) => Some(Remote::EndpointsFile(file.clone())),
        _ => None,
    }
}

/// The links document of cluster `source` and, in words, what it leaves
/// out; `None` when the cluster holds no Link (its runtime mirrors nothing).
pub fn document(m: &Clusters, source: usize) -> Option<(Value, Vec<String>)> {
    let mut notes = Vec::new();
    let mut links = Vec::new();
    let mut mirrors: BTreeSet<(String, String)> = BTreeSet::new();
    let mut linked: BTreeSet<&str> = BTreeSet::new();
    let (federated, member_links) = federated_entries(m, source, &mut notes);
    let mut any = false;
    for (l, link) in m.links.links.iter().enumerate() {
        if link.source_cluster != source {
            continue;
        }
        any = true;
        let Some(target) = m.links.target_of[l] else {
            notes.push(format!(
                "Link {}/{} targets cluster {}, which the repository does not hold: its Services are unknown, left out",
                link.namespace, link.name, link.target
            ));
            continue;
        };
        // The runtime takes one link per target cluster (its mirrors' suffix).
        if !linked.insert(link.target.as_str()) {
            notes.push(format!(
                "Link {}/{} links cluster {} a second time: left out (the runtime takes one link per target cluster)",
                link.namespace, link.name, link.target
            ));
            continue;
        }
        if let Some(entry) = link_entry(m, l, target, &mut mirrors, &mut notes, member_links.contains(&l)) {
            links.push(entry);
        }
    }
    let mut doc = json!({ "links": links });
    if !federated.is_empty() {
        doc["federated"] = Value::Array(federated);
    }
    any.then_some((doc, notes))
}

/// Cluster `source`'s federated Services (`<name>-federated`, every
/// member's pods, pod to pod): the local member, the remote members (each
/// through the Link to its cluster, whose runtime meshc.yaml must name), and
/// the ports of the Service meshc adds (its oldest member's). Also the Links
/// those members need written even when they export nothing themselves.
fn federated_entries(m: &Clusters, source: usize, notes: &mut Vec<String>) -> (Vec<Value>, BTreeSet<usize>) {
    let (mut out, mut needed) = (Vec::new(), BTreeSet::new());
    let o = &m.clusters[source].outcome;
    for f in m.links.federated.iter().filter(|f| f.cluster == source) {
        let name = format!("{}-federated", f.name);
        let what = format!("federated Service {}/{name}", f.namespace);
        let Some(ri) = o.resolved.index.get(crate::resolve::index::Kind::Service, &f.namespace, &name) else {
            continue;
        };
        let Spec::Service(spec) = &o.resolved.resources[ri].spec else { continue };
        let ports = tcp_ports(spec);
        let local = f.members.iter().any(|(c, _)| *c == source);
        let mut remote = Vec::new();
        for &(c, _) in f.members.iter().filter(|(c, _)| *c != source) {
            let cluster = &m.clusters[c];
            let link = m
                .links
                .links
                .iter()
                .enumerate()
                .find(|(l, link)| link.source_cluster == source && m.links.target_of[*l] == Some(c));
            match (link, &cluster.runtime) {
                (Some((l, _)), Some(_)) => {
                    needed.insert(l);
                    remote.push(cluster.name.clone());
                }
                (None, _) => {
                    notes.push(format!("{what}: member cluster {} has no Link from here, left out", cluster.name))
                }
                (Some(_), None) => notes.push(format!(
                    "{what}: member cluster {} left out: its pods come from its runtime, which meshc.yaml does not \
                     name (add `runtime:` to cluster {})",
                    cluster.name, cluster.name
                )),
            }
        }
        if ports.is_empty() || (!local && remote.is_empty()) {
            notes.push(format!("{what} left out: it has no TCP port or no member left"));
            continue;
        }
        out.push(json!({
            "namespace": f.namespace, "name": f.name, "ports": ports,
            "localMember": local, "remoteMembers": remote,
        }));
    }
    (out, needed)
}

/// A Service's TCP ports, as the runtime serves them.
fn tcp_ports(spec: &crate::model::core::ServiceSpec) -> BTreeSet<u16> {
    spec.ports
        .iter()
        .filter(|p| p.protocol.as_deref().is_none_or(|x| x.eq_ignore_ascii_case("TCP")))
        .filter_map(|p| u16::try_from(p.port).ok().filter(|n| *n > 0))
        .collect()
}

/// Cluster `source`'s links file signed with `key` (a DSSE envelope of
/// [`LINKS_PAYLOAD_TYPE`], JSON text) and what it leaves out; `None` when
/// the cluster holds no Link.
pub fn signed(m: &Clusters, source: usize, key: &SigningKey) -> Result<Option<(String, Vec<String>)>, String> {
    let Some((doc, notes)) = document(m, source) else { return Ok(None) };
    let envelope = envelope::sign_value(&doc, LINKS_PAYLOAD_TYPE, key).map_err(|e| format!("{FILE_NAME}: {e}"))?;
    let text = serde_json::to_string_pretty(&envelope).map_err(|e| format!("{FILE_NAME}: {e}"))?;
    Ok(Some((text + "\n", notes)))
}

/// One Link's entry: its gateway, its remote, the Services it exports;
/// written without Services when a federated Service's member needs it.
fn link_entry(
    m: &Clusters,
    l: usize,
    target: usize,
    mirrors: &mut BTreeSet<(String, String)>,
    notes: &mut Vec<String>,
    federation_needs_it: bool,
) -> Option<Value> {
    let link = &m.links.links[l];
    let what = format!("Link {}/{}", link.namespace, link.name);
    let tgt = &m.clusters[target];
    let gw = gateway(link);
    let remote = tgt.runtime.as_ref();
    let mut services = Vec::new();
    let mut exports: Vec<&super::mirror::Export> = m.links.exports.iter().filter(|e| e.link == l).collect();
    exports.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for e in exports {
        let svc = format!("{}/{}", e.namespace, e.name);
        match (e.mode, &gw, remote) {
            (Mode::Gateway, Err(why), _) => {
                notes.push(format!("{what}: {svc} (gateway mode) left out: {why}"));
                continue;
            }
            (Mode::PodToPod, _, None) => {
                notes.push(format!(
                    "{what}: {svc} (pod-to-pod) left out: its endpoints come from cluster {}'s runtime, which \
                     meshc.yaml does not name (add `runtime:` to cluster {})",
                    tgt.name, tgt.name
                ));
                continue;
            }
            _ => {}
        }
        if e.mirror.len() > MAX_SERVICE_NAME {
            notes.push(format!("{what}: {svc} left out: its mirror's name {} is over 63 characters", e.mirror));
            continue;
        }
        if !mirrors.insert((e.namespace.clone(), e.mirror.clone())) {
            notes.push(format!("{what}: {svc} left out: another Link already mirrors {}/{}", e.namespace, e.mirror));
            continue;
        }
        let Spec::Service(spec) = &tgt.outcome.resolved.resources[e.service].spec else { continue };
        let ports = tcp_ports(spec);
        if ports.is_empty() {
            notes.push(format!("{what}: {svc} left out: it has no TCP port"));
            continue;
        }
        let mode = match e.mode {
            Mode::Gateway => "gateway",
            Mode::PodToPod => "remote-discovery",
        };
        services.push(json!({"namespace": e.namespace, "name": e.name, "mode": mode, "ports": ports}));
    }
    if services.is_empty() && !federation_needs_it {
        return None;
    }
    let mut entry = json!({ "targetCluster": link.target, "services": services });
    if let Ok(g) = gw {
        entry["gateway"] = g;
    }
    match remote {
        Some(Remote::Runtime { url, identity }) => {
            entry["remote"] = json!({"runtime": url, "runtimeIdentity": identity});
        }
        Some(Remote::EndpointsFile(file)) => entry["remote"] = json!({ "endpointsFile": file }),
        None => notes.push(format!(
            "{what}: cluster {}'s runtime is not named in meshc.yaml: the gateway-mode mirrors keep their \
             endpoints while the target Service has none",
            tgt.name
        )),
    }
    Some(entry)
}

/// The Link's gateway as the runtime takes it: IP addresses, a port, an identity.
fn gateway(link: &Link) -> Result<Value, String> {
    let s = &link.spec;
    let addresses: Vec<&str> =
        s.gateway_address.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    let ips: Vec<IpAddr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
    if addresses.is_empty() {
        return Err("the Link has no gatewayAddress".to_owned());
    }
    if ips.len() != addresses.len() {
        return Err(format!(
            "gatewayAddress `{}` names hosts, and mesh-runtime takes IP addresses only (it does not resolve names \
             as the service mirror does)",
            addresses.join(",")
        ));
    }
    let port = s.gateway_port.as_deref().and_then(|p| p.trim().parse::<u16>().ok()).filter(|p| *p > 0);
    let Some(port) = port else { return Err("the Link has no usable gatewayPort".to_owned()) };
    let Some(identity) = s.gateway_identity.as_deref().filter(|i| !i.trim().is_empty()) else {
        return Err("the Link has no gatewayIdentity".to_owned());
    };
    Ok(json!({"addresses": ips, "port": port, "identity": identity}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(url: Option<&str>, identity: Option<&str>, file: Option<&str>) -> ClusterRuntime {
        ClusterRuntime {
            url: url.map(str::to_owned),
            identity: identity.map(str::to_owned),
            endpoints_file: file.map(str::to_owned),
        }
    }

    #[test]
    fn a_runtime_is_a_url_or_an_endpoints_file() {
        assert!(check_runtime(&runtime(Some("https://10.20.255.1:8443"), None, None)).is_ok());
        assert!(check_runtime(&runtime(Some("https://runtime.west.example:8443/"), Some("a.b"), None)).is_ok());
        assert!(check_runtime(&runtime(Some("https://[fd00::1]:8443"), None, None)).is_ok());
        assert!(check_runtime(&runtime(None, None, Some("/etc/mesh/west.json"))).is_ok());
        for bad in [
            runtime(None, None, None),
            runtime(Some("https://a:1"), None, Some("f")),
            runtime(Some("http://10.0.0.1:8443"), None, None),
            runtime(Some("https://10.0.0.1:8443/v1"), None, None),
            runtime(Some("https://10.0.0.1:0"), None, None),
            runtime(Some("https://10.0.0.1:99999"), None, None),
            runtime(Some("https://"), None, None),
            runtime(Some("https://a:1"), Some("Not A Name"), None),
            runtime(None, Some("a.b"), Some("f")),
        ] {
            assert!(check_runtime(&bad).is_err(), "{bad:?}");
        }
    }
}
