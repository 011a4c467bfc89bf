//! The links file (`--links`): JSON, format in runtime/API.md. Everything
//! wrong in it is an error that names the link and Service, so the
//! runtime refuses to start rather than serve half of a link.

use super::{Exported, Federated, Gateway, Link, Links, Mode, Remote};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

/// Kubernetes' limit on a Service name: a longer mirror name fails to be
/// created in Linkerd's cluster (`Error` condition), so it is refused here.
const MAX_SERVICE_NAME: usize = 63;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileDoc {
    links: Vec<FileLink>,
    #[serde(default)]
    federated: Vec<FileFederated>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileLink {
    target_cluster: String,
    #[serde(default)]
    gateway: Option<FileGateway>,
    #[serde(default)]
    remote: Option<FileRemote>,
    services: Vec<FileService>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileGateway {
    addresses: Vec<IpAddr>,
    port: u16,
    identity: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileRemote {
    #[serde(default)]
    runtime: Option<String>,
    #[serde(default)]
    runtime_identity: Option<String>,
    #[serde(default)]
    endpoints_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileService {
    namespace: String,
    name: String,
    mode: String,
    ports: Vec<u16>,
    #[serde(default, rename = "clusterIP")]
    cluster_ip: Option<IpAddr>,
}

/// A federated Service (`<name>-federated`) and its members.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileFederated {
    namespace: String,
    name: String,
    ports: Vec<u16>,
    #[serde(default, rename = "clusterIP")]
    cluster_ip: Option<IpAddr>,
    #[serde(default)]
    local_member: bool,
    #[serde(default)]
    remote_members: Vec<String>,
}

/// Parses and checks a links file.
pub fn parse(bytes: &[u8]) -> Result<Links, String> {
    let doc: FileDoc = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let links = doc.links.into_iter().map(link).collect::<Result<Vec<_>, _>>()?;
    let mut seen = BTreeSet::new();
    for l in &links {
        if !seen.insert(l.target_cluster.as_str()) {
            return Err(format!("link `{}`: two links target this cluster", l.target_cluster));
        }
    }
    let federated = doc.federated.into_iter().map(|f| federated(f, &links)).collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    let mirrors =
        links.iter().flat_map(|l| l.services.iter().map(move |s| (&s.namespace, s.mirror_name(&l.target_cluster))));
    for (namespace, name) in mirrors.chain(federated.iter().map(|f| (&f.namespace, f.federated_name()))) {
        if !names.insert((namespace, name.clone())) {
            return Err(format!(
                "{namespace}/{name}: mirrored twice (two exported or federated Services have this name)"
            ));
        }
    }
    Ok(Links { links, federated })
}

fn link(l: FileLink) -> Result<Link, String> {
    let cluster = l.target_cluster;
    if !is_dns_label(&cluster) {
        return Err(format!("link `{cluster}`: targetCluster must be a DNS label"));
    }
    let gateway = l.gateway.map(|g| gateway(&cluster, g)).transpose()?;
    let remote = l.remote.map(|r| remote(&cluster, r)).transpose()?;
    let services: Result<Vec<_>, String> =
        l.services.into_iter().map(|s| service(&cluster, s, gateway.is_some(), remote.is_some())).collect();
    Ok(Link { target_cluster: cluster, gateway, remote, services: services? })
}

fn gateway(cluster: &str, g: FileGateway) -> Result<Gateway, String> {
    if g.addresses.is_empty() || g.port == 0 || g.identity.is_empty() {
        return Err(format!("link `{cluster}`: the gateway needs addresses, a port and an identity"));
    }
    Ok(Gateway { addresses: g.addresses, port: g.port, identity: g.identity })
}

fn remote(cluster: &str, r: FileRemote) -> Result<Remote, String> {
    match (r.runtime, r.runtime_identity, r.endpoints_file) {
        (Some(url), Some(identity), None) => {
            super::remote::check_url(&url).map_err(|e| format!("link `{cluster}`: {e}"))?;
            rustls_pki_types::ServerName::try_from(identity.as_str())
                .map_err(|e| format!("link `{cluster}`: runtimeIdentity `{identity}`: {e}"))?;
            Ok(Remote::Runtime { url, identity })
        }
        (None, None, Some(path)) => Ok(Remote::EndpointsFile(path)),
        _ => Err(format!("link `{cluster}`: remote is either `runtime` with `runtimeIdentity`, or `endpointsFile`")),
    }
}

fn service(cluster: &str, s: FileService, has_gateway: bool, has_remote: bool) -> Result<Exported, String> {
    let what = format!("link `{cluster}`, Service {}/{}", s.namespace, s.name);
    let mode = match s.mode.as_str() {
        "gateway" if has_gateway => Mode::Gateway,
        "gateway" => return Err(format!("{what}: gateway mode needs the link's gateway")),
        "remote-discovery" if has_remote => Mode::RemoteDiscovery,
        "remote-discovery" => return Err(format!("{what}: pod-to-pod needs the link's remote endpoints source")),
        "federated" => {
            return Err(format!("{what}: federated members are listed in the top-level `federated`, not as a mode"));
        }
        other => return Err(format!("{what}: mode `{other}` is neither `gateway` nor `remote-discovery`")),
    };
    if !is_dns_label(&s.namespace) || !is_dns_label(&s.name) {
        return Err(format!("{what}: namespace and name must be DNS labels"));
    }
    if s.ports.is_empty() || s.ports.contains(&0) {
        return Err(format!("{what}: needs its ports (1-65535)"));
    }
    let svc = Exported { namespace: s.namespace, name: s.name, mode, ports: s.ports, cluster_ip: s.cluster_ip };
    if svc.mirror_name(cluster).len() > MAX_SERVICE_NAME {
        return Err(format!("{what}: the mirror's name {} is over 63 characters", svc.mirror_name(cluster)));
    }
    Ok(svc)
}

/// A federated Service: its members must be this cluster or linked
/// clusters whose endpoints this runtime hears (federation is pod to pod).
fn federated(f: FileFederated, links: &[Link]) -> Result<Federated, String> {
    let what = format!("federated Service {}/{}", f.namespace, f.name);
    if !is_dns_label(&f.namespace) || !is_dns_label(&f.name) {
        return Err(format!("{what}: namespace and name must be DNS labels"));
    }
    if f.ports.is_empty() || f.ports.contains(&0) {
        return Err(format!("{what}: needs its ports (1-65535)"));
    }
    if !f.local_member && f.remote_members.is_empty() {
        return Err(format!("{what}: no members (`localMember` is false and `remoteMembers` is empty)"));
    }
    for (i, member) in f.remote_members.iter().enumerate() {
        let Some(link) = links.iter().find(|l| &l.target_cluster == member) else {
            return Err(format!("{what}: remote member `{member}` is no link's targetCluster"));
        };
        if link.remote.is_none() {
            return Err(format!(
                "{what}: remote member `{member}` needs that link's `remote` (federated members are reached pod to pod)"
            ));
        }
        if f.remote_members[..i].contains(member) {
            return Err(format!("{what}: remote member `{member}` is listed twice"));
        }
    }
    let out = Federated {
        namespace: f.namespace,
        name: f.name,
        ports: f.ports,
        cluster_ip: f.cluster_ip,
        local_member: f.local_member,
        remote_members: f.remote_members,
    };
    if out.federated_name().len() > MAX_SERVICE_NAME {
        return Err(format!("{what}: the name {} is over 63 characters", out.federated_name()));
    }
    Ok(out)
}

/// RFC 1123 label: what Kubernetes allows as a namespace or Service name.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_SERVICE_NAME
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}
