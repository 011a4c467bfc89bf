//! Mesh settings that manifests do not carry, from `meshc.yaml` at the root
//! of the checked path and from flags, with Linkerd's defaults otherwise.

pub mod clusters;
pub mod helm_values;
pub mod version;

use crate::findings::{Code, Finding, Span};
use crate::load::yaml;
use ipnet::IpNet;
use mesh_proxy_api::IdentityDomain;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The file form. Every key is optional; see `docs/settings.md`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct SettingsFile {
    /// Helm `proxy.defaultInboundPolicy` (default `all-unauthenticated`).
    #[serde(default)]
    pub default_inbound_policy: Option<String>,
    /// Helm `clusterNetworks` (default `10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8`).
    #[serde(default)]
    pub cluster_networks: Option<Vec<String>>,
    /// The networks pod addresses come from (the cluster's pod CIDR), inside
    /// the cluster networks. Git does not hold it: unset, a pod may be
    /// anywhere in the cluster networks, and a verdict that turns on where
    /// is `depends`.
    #[serde(default)]
    pub pod_networks: Option<Vec<String>>,
    /// Helm `identityTrustDomain` (default `cluster.local`).
    #[serde(default)]
    pub trust_domain: Option<String>,
    /// Helm `clusterDomain` (default `cluster.local`): the suffix of Service
    /// FQDNs, which ServiceProfile names must use.
    #[serde(default)]
    pub cluster_domain: Option<String>,
    /// The namespace Linkerd's control plane runs in (default `linkerd`); part of every identity.
    #[serde(default)]
    pub control_plane_namespace: Option<String>,
    /// Helm `policyController.probeNetworks` (default `0.0.0.0/0, ::/0`).
    #[serde(default)]
    pub probe_networks: Option<Vec<String>>,
    /// Helm `egress.globalEgressNetworkNamespace` (default `linkerd-egress`):
    /// EgressNetworks here apply to clients of every namespace that has none of its own.
    #[serde(default)]
    pub egress_namespace: Option<String>,
    /// Helm `proxy.opaquePorts` (default `25,587,3306,4444,5432,6379,9300,11211`).
    #[serde(default)]
    pub default_opaque_ports: Option<String>,
    /// Helm `proxyInit.ignoreInboundPorts` (default `4567,4568`).
    #[serde(default)]
    pub default_skip_inbound_ports: Option<String>,
    /// Namespace for objects that name none (what `kubectl apply -n` would use; default `default`).
    #[serde(default)]
    pub default_namespace: Option<String>,
    /// Helm `identity.serviceAccountTokenProjection` (default `true`): the
    /// injector gives the proxy a projected token of its own, so a pod's
    /// `automountServiceAccountToken: false` stops injection only when this is `false`.
    #[serde(default)]
    pub service_account_token_projection: Option<bool>,
    /// The Linkerd release the cluster runs (`2.18`, `2.18.3`,
    /// `stable-2.14.10`, `enterprise-2.17.1`, `edge-24.11.8`; default `2.19`,
    /// or the chart version of the repository's `linkerd-control-plane`
    /// HelmRelease or Argo CD Application). Rules that changed between
    /// releases follow it.
    #[serde(default)]
    pub linkerd_version: Option<String>,
    /// The source address kubelet probes come from (a node IP; default: the first
    /// address of the first probe network narrower than 0.0.0.0/0, else of the
    /// first cluster network).
    #[serde(default)]
    pub kubelet_ip: Option<String>,
    /// Namespaces that exist in the cluster but not in this repository, with the
    /// annotations and labels that matter for injection and default policy.
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceSettings>,
    /// Workloads a pipeline injects (`linkerd inject` or `meshc inject` in
    /// CI) rather than an annotation in git; holds whether or not the
    /// Namespace object is in the repository.
    #[serde(default)]
    pub injected_by_pipeline: Vec<PipelineInjection>,
    /// Namespaces where something the repository does not hold creates
    /// workloads, Services and ServiceAccounts (`helm install` run by hand, a
    /// chart another repository applies): findings such objects could make
    /// false drop to info and name it, as for an unrendered Helm release.
    #[serde(default)]
    pub created_outside: Vec<OutsideCreator>,
    /// A repository of several clusters (root `meshc.yaml` only): each
    /// cluster's name, directory and settings. The other top-level keys then
    /// hold for every cluster. See `docs/multicluster.md`.
    #[serde(default)]
    pub clusters: Option<Vec<clusters::ClusterEntry>>,
}

/// What creates objects in `namespace` outside the repository.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct OutsideCreator {
    pub namespace: String,
    /// What creates them, for messages (e.g. `helm install faces`).
    pub by: String,
}

/// Workloads of `namespace` whose pod template labels match `selector`
/// (every workload of the namespace without one).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct PipelineInjection {
    pub namespace: String,
    #[serde(default)]
    pub selector: Option<crate::model::meta::LabelSelector>,
}

impl PipelineInjection {
    pub fn covers(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespace == namespace
            && self.selector.as_ref().is_none_or(|s| crate::resolve::selector::matches(s, labels))
    }
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NamespaceSettings {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Resolved settings used by every stage.
#[derive(Clone, Debug)]
pub struct Settings {
    pub default_inbound_policy: String,
    pub cluster_networks: Vec<IpNet>,
    /// The pod CIDR; empty when unknown (then pods may be anywhere in `cluster_networks`).
    pub pod_networks: Vec<IpNet>,
    pub trust_domain: String,
    pub cluster_domain: String,
    pub control_plane_namespace: String,
    pub probe_networks: Vec<IpNet>,
    /// The global egress namespace (Linkerd's `global_egress_network_namespace`).
    pub egress_namespace: String,
    pub default_opaque_ports: String,
    pub default_skip_inbound_ports: String,
    pub default_namespace: String,
    pub kubelet_ip: std::net::IpAddr,
    pub namespaces: BTreeMap<String, NamespaceSettings>,
    pub injected_by_pipeline: Vec<PipelineInjection>,
    pub created_outside: Vec<OutsideCreator>,
    /// Protocol detection timeout Linkerd's controller sends (10 s).
    pub detect_timeout_ms: u64,
    pub service_account_token_projection: bool,
    pub linkerd_version: version::LinkerdVersion,
    /// The cluster's name in a multicluster repository (`clusters:`), set
    /// by `multicluster::check`; empty in a repository of one cluster.
    pub cluster: String,
}

pub const DEFAULT_CLUSTER_NETWORKS: &[&str] =
    &["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"];
pub const DEFAULT_EGRESS_NAMESPACE: &str = "linkerd-egress";
pub const DEFAULT_OPAQUE_PORTS: &str = "25,587,3306,4444,5432,6379,9300,11211";
pub const DEFAULT_POLICIES: &[&str] =
    &["all-unauthenticated", "all-authenticated", "cluster-unauthenticated", "cluster-authenticated", "deny", "audit"];

impl Default for Settings {
    fn default() -> Self {
        Settings::resolve(SettingsFile::default(), &mut Vec::new(), Span::default())
    }
}

impl Settings {
    /// Applies defaults; invalid values become findings at `span` and fall back to the default.
    pub fn resolve(file: SettingsFile, findings: &mut Vec<Finding>, span: Span) -> Settings {
        let mut bad = |what: &str, value: &str| {
            let msg = format!("meshc.yaml: invalid {what} `{value}`; using Linkerd's default");
            findings.push(Finding::new(Code::SchemaViolation, span, msg));
        };
        let default_inbound_policy = match file.default_inbound_policy {
            Some(p) if DEFAULT_POLICIES.contains(&p.as_str()) => p,
            Some(p) => {
                bad("defaultInboundPolicy", &p);
                "all-unauthenticated".to_owned()
            }
            None => "all-unauthenticated".to_owned(),
        };
        let mut nets = |what: &str, given: Option<Vec<String>>, default: &[&str]| -> Vec<IpNet> {
            let list: Vec<String> = given.unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect());
            list.iter()
                .filter(|s| !s.trim().is_empty())
                .filter_map(|s| {
                    parse_net(s).or_else(|| {
                        bad(what, s);
                        None
                    })
                })
                .collect()
        };
        let cluster_networks = nets("clusterNetworks", file.cluster_networks, DEFAULT_CLUSTER_NETWORKS);
        let pod_networks = nets("podNetworks", file.pod_networks, &[]);
        let probe_networks = nets("probeNetworks", file.probe_networks, &["0.0.0.0/0", "::/0"]);
        let kubelet_ip = match file.kubelet_ip.as_deref().map(str::parse) {
            Some(Ok(ip)) => ip,
            Some(Err(_)) => {
                bad("kubeletIp", file.kubelet_ip.as_deref().unwrap_or_default());
                kubelet_default(&probe_networks, &cluster_networks)
            }
            None => kubelet_default(&probe_networks, &cluster_networks),
        };
        let linkerd_version = match file.linkerd_version.as_deref().map(version::LinkerdVersion::parse) {
            Some(Ok(mapped)) => {
                if let Some(note) = mapped.note {
                    findings.push(Finding::new(
                        Code::LinkerdVersion,
                        span,
                        format!("meshc.yaml linkerdVersion: {note}"),
                    ));
                }
                mapped.version
            }
            Some(Err(e)) => {
                let msg = format!("meshc.yaml: invalid linkerdVersion: {e}; using {}", version::NEWEST);
                findings.push(Finding::new(Code::SchemaViolation, span, msg));
                version::NEWEST
            }
            None => version::NEWEST,
        };
        Settings {
            default_inbound_policy,
            cluster_networks,
            pod_networks,
            trust_domain: file.trust_domain.unwrap_or_else(|| "cluster.local".to_owned()),
            cluster_domain: file.cluster_domain.unwrap_or_else(|| "cluster.local".to_owned()),
            control_plane_namespace: file.control_plane_namespace.unwrap_or_else(|| "linkerd".to_owned()),
            probe_networks,
            egress_namespace: file.egress_namespace.unwrap_or_else(|| DEFAULT_EGRESS_NAMESPACE.to_owned()),
            default_opaque_ports: file.default_opaque_ports.unwrap_or_else(|| DEFAULT_OPAQUE_PORTS.to_owned()),
            default_skip_inbound_ports: file.default_skip_inbound_ports.unwrap_or_else(|| "4567,4568".to_owned()),
            default_namespace: file.default_namespace.unwrap_or_else(|| "default".to_owned()),
            kubelet_ip,
            namespaces: file.namespaces,
            injected_by_pipeline: file.injected_by_pipeline,
            created_outside: file.created_outside,
            detect_timeout_ms: 10_000,
            service_account_token_projection: file.service_account_token_projection.unwrap_or(true),
            linkerd_version,
            cluster: String::new(),
        }
    }

    /// The control plane namespace and trust domain every identity is built
    /// from, in the format mesh-proxy and mesh-runtime use too.
    pub fn identity_domain(&self) -> IdentityDomain {
        IdentityDomain::new(&self.control_plane_namespace, &self.trust_domain)
    }

    /// `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`
    /// Where a pod's address may be: the pod networks when known, else the cluster networks.
    pub fn pod_space(&self) -> &[IpNet] {
        if self.pod_networks.is_empty() { &self.cluster_networks } else { &self.pod_networks }
    }

    pub fn identity(&self, namespace: &str, service_account: &str) -> String {
        self.identity_domain().service_account(namespace, service_account)
    }

    /// The identity suffix shared by every ServiceAccount of `namespace`, with its leading dot.
    pub fn namespace_identity_suffix(&self, namespace: &str) -> String {
        self.identity_domain().namespace_suffix(namespace)
    }
}

/// A CIDR, or a bare address as a /32 or /128 (as Linkerd accepts).
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Kubelet probes come from a node address: the probe networks name it when
/// they are narrower than "anywhere", else a cluster address stands in.
fn kubelet_default(probe: &[IpNet], cluster: &[IpNet]) -> std::net::IpAddr {
    let narrow: Vec<IpNet> = probe.iter().filter(|n| n.prefix_len() > 0).copied().collect();
    if narrow.is_empty() { first_host(cluster) } else { first_host(&narrow) }
}

fn first_host(nets: &[IpNet]) -> std::net::IpAddr {
    nets.iter().find_map(|n| n.hosts().next()).unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)))
}

/// Reads `meshc.yaml` text: a parse error or unknown key is a finding in that file.
pub fn parse_file(source: u32, text: &str, findings: &mut Vec<Finding>) -> SettingsFile {
    let file_span = Span::file(source);
    let docs = match yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(f) => {
            let span = f.span(source);
            findings.push(Finding::new(Code::ParseError, span, format!("meshc.yaml: {}", f.message)));
            return SettingsFile::default();
        }
    };
    let Some(doc) = docs.into_iter().find(|d| d.value != yaml::Value::Null) else {
        return SettingsFile::default();
    };
    let mut unknown = Vec::new();
    let parsed: Result<SettingsFile, _> = serde_ignored::deserialize(doc.to_json(), |p| unknown.push(p.to_string()));
    for key in unknown {
        let span = doc.get(key.split('.').next().unwrap_or(&key)).map_or(file_span, |n| Span {
            source,
            line: n.line,
            column: n.column,
            offset: n.offset,
        });
        findings.push(Finding::new(Code::SchemaViolation, span, format!("meshc.yaml: unknown setting `{key}`")));
    }
    parsed.unwrap_or_else(|e| {
        findings.push(Finding::new(Code::SchemaViolation, file_span, format!("meshc.yaml: {e}")));
        SettingsFile::default()
    })
}
