//! Authentication resources → what the proxy checks. Linkerd's index refuses
//! an authentication it cannot convert, and every policy referring to it
//! becomes inert, so each conversion says why it failed.

use crate::model::policy::{MeshTlsAuthenticationSpec, NetworkSpec};
use crate::settings::{Settings, parse_net};
use ipnet::IpNet;
use mesh_proxy_api::{Authentication, IdentityMatch, Network, identity_match_from_str};

/// The identity matches of a MeshTLSAuthentication (§4).
pub fn mesh_tls_matches(
    spec: &MeshTlsAuthenticationSpec,
    namespace: &str,
    s: &Settings,
) -> Result<Vec<IdentityMatch>, String> {
    let mut out: Vec<IdentityMatch> = Vec::new();
    for id in spec.identities.iter().flatten() {
        out.push(identity_match_from_str(id));
    }
    for r in spec.identity_refs.iter().flatten() {
        let group_ok = r.group.as_deref().is_none_or(|g| g.is_empty() || g == "core");
        match (r.kind.to_ascii_lowercase().as_str(), group_ok) {
            ("serviceaccount", true) => {
                let name = r.name.as_deref().ok_or("has an identityRef of kind ServiceAccount without a name")?;
                out.push(IdentityMatch::Exact(s.identity(r.namespace.as_deref().unwrap_or(namespace), name)));
            }
            ("namespace", true) => {
                if r.namespace.is_some() {
                    return Err(
                        "has an identityRef of kind Namespace with a `namespace`, which is not allowed".to_owned()
                    );
                }
                let name = r.name.as_deref().ok_or("has an identityRef of kind Namespace without a name")?;
                out.push(IdentityMatch::Suffix(s.namespace_identity_suffix(name)));
            }
            _ => {
                return Err(format!(
                    "has an identityRef of kind `{}` (only ServiceAccount and Namespace are supported)",
                    r.kind
                ));
            }
        }
    }
    if spec.identities.is_some() && spec.identity_refs.is_some() {
        return Err("sets both `identities` and `identityRefs` (the CRD allows one)".to_owned());
    }
    if out.is_empty() {
        return Err("has no identities (Linkerd: \"No identities configured\")".to_owned());
    }
    Ok(out)
}

pub fn mesh_tls(spec: &MeshTlsAuthenticationSpec, namespace: &str, s: &Settings) -> Result<Authentication, String> {
    mesh_tls_matches(spec, namespace, s).map(Authentication::tls_authenticated)
}

/// Networks of a NetworkAuthentication or ServerAuthorization (§5): a CIDR
/// or bare address, minus `except`s that must lie inside it.
pub fn networks(specs: &[NetworkSpec]) -> Result<Vec<Network>, String> {
    specs.iter().map(network).collect()
}

fn network(spec: &NetworkSpec) -> Result<Network, String> {
    let net =
        parse_net(&spec.cidr).ok_or_else(|| format!("lists `{}`, which is not a CIDR or IP address", spec.cidr))?;
    let mut except = Vec::new();
    for e in &spec.except {
        let ex: IpNet = parse_net(e).ok_or_else(|| format!("lists except `{e}`, which is not a CIDR or IP address"))?;
        if !net.contains(&ex) {
            return Err(format!("lists except `{e}`, which is not inside `{}`", spec.cidr));
        }
        if ex.prefix_len() <= net.prefix_len() {
            return Err(format!("lists except `{e}`, which excludes all of `{}`", spec.cidr));
        }
        except.push(ex);
    }
    Ok(Network { net, except })
}

pub fn all_networks() -> Vec<Network> {
    ["0.0.0.0/0", "::/0"]
        .iter()
        .map(|n| Network { net: n.parse().expect("literal CIDR"), except: Vec::new() })
        .collect()
}

pub fn to_networks(nets: &[IpNet]) -> Vec<Network> {
    nets.iter().map(|n| Network { net: *n, except: Vec::new() }).collect()
}

/// Whether a network list admits every address (0.0.0.0/0 or ::/0 without exceptions).
pub fn is_overbroad(net: &Network) -> bool {
    net.net.prefix_len() == 0
}
