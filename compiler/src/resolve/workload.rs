//! What Linkerd's injector and policy controller derive for each pod
//! template: whether it is meshed, its identity, its effective annotations
//! (namespace `config.linkerd.io/*` copied at injection), ports and probes.

use super::ports::parse_port_ranges;
use crate::findings::{Code, Finding};
use crate::model::core::{Container, PodTemplate};
use crate::model::meta::PortRef;
use crate::model::{Resource, Spec};
use crate::settings::{DEFAULT_POLICIES, Settings};
use mesh_proxy_api::{AccessLogFormat, PortRange};
use std::collections::BTreeMap;

pub const PROXY_PORT: u16 = 4143;
pub const ADMIN_PORT: u16 = 4191;

#[derive(Clone, Debug)]
pub struct Workload {
    /// Index of the resource in the resolved model.
    pub resource: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub meshed: Result<(), String>,
    pub service_account: String,
    pub identity: String,
    pub default_policy: DefaultPolicySource,
    pub ports: Vec<NamedPort>,
    pub probes: Vec<HttpProbe>,
    pub opaque_ports: Vec<PortRange>,
    pub skip_inbound_ports: Vec<PortRange>,
    pub skip_subnets: Vec<ipnet::IpNet>,
    pub require_identity_ports: Vec<PortRange>,
    /// `config.linkerd.io/access-log`; `None` when absent or invalid.
    pub access_log: Option<AccessLogFormat>,
}

impl Workload {
    pub fn is_meshed(&self) -> bool {
        self.meshed.is_ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultPolicySource {
    pub policy: String,
    /// "pod annotation", "namespace annotation" or "cluster default".
    pub from: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPort {
    pub name: Option<String>,
    pub port: u16,
    /// True for ports of the injected linkerd-proxy container.
    pub injected: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    pub port: u16,
    /// Without its query string (Linkerd strips it, #10877).
    pub path: String,
    pub kind: &'static str,
    pub container: String,
    pub injected: bool,
    pub https: bool,
    /// Where the probe is written, from the resource root (empty when injected).
    pub field: Vec<String>,
}

/// Namespace metadata as the injector sees it: from the repo, else meshc.yaml.
pub struct NamespaceInfo<'a> {
    pub annotations: Option<&'a BTreeMap<String, String>>,
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub known: bool,
}

pub fn derive(
    index: usize,
    r: &Resource,
    template: &PodTemplate,
    ns: &NamespaceInfo,
    settings: &Settings,
    findings: &mut Vec<Finding>,
) -> Workload {
    let namespace = r.namespace().to_owned();
    let meta = if r.id.kind == "Pod" { &r.meta } else { &template.metadata };
    let annotations = effective_annotations(&meta.annotations, ns.annotations);
    let meshed = injection(r, template, &meta.labels, &annotations, ns, settings);
    let service_account = template
        .spec
        .service_account_name
        .clone()
        .or_else(|| template.spec.service_account.clone())
        .unwrap_or_else(|| "default".to_owned());
    if let Some(why) = injector_refusal(r, ns, settings) {
        let msg = format!(
            "{} {}/{}: `meshc inject` and mesh-runtime's injector leave this pod template without mesh-proxy: {why}",
            r.id.kind,
            namespace,
            r.name()
        );
        let at = pod_spec_path(&r.id.kind);
        findings.push(Finding::new(Code::NotInjectable, r.span_at(&at), msg).resource(r.id.clone()));
    }
    // Values copied from the namespace are reported once, on the Namespace.
    let mut annotation_finding = |key: &str, why: String| {
        if !meta.annotations.contains_key(key) {
            return;
        }
        let msg = format!("{} {}/{}: `{key}` {why}", r.id.kind, namespace, r.name());
        let at = annotation_path(&r.id.kind, key);
        findings.push(Finding::new(Code::InvalidAnnotation, r.span_at(&at), msg).resource(r.id.clone()));
    };
    if let Some(v) =
        meta.annotations.get("linkerd.io/inject").filter(|v| !matches!(v.as_str(), "enabled" | "ingress" | "disabled"))
    {
        annotation_finding(
            "linkerd.io/inject",
            format!("`{v}` is not enabled, ingress or disabled; the injector does not mesh this pod"),
        );
    }
    let default_policy = default_policy(&meta.annotations, ns.annotations, settings, &mut annotation_finding);
    let mut ports = container_ports(&template.spec.containers, false);
    ports.extend(container_ports(&template.spec.init_containers, false));
    let prefix = pod_spec_path(&r.id.kind);
    let mut probes = http_probes(&template.spec.containers, &prefix, "containers");
    probes.extend(http_probes(&template.spec.init_containers, &prefix, "initContainers"));
    let already_injected = has_proxy_container(template);
    if meshed.is_ok() && !already_injected {
        add_injected_proxy(&mut ports, &mut probes);
    }
    let declared: Vec<u16> = ports.iter().filter(|p| !p.injected).map(|p| p.port).collect();
    let port_list = |key: &str, default: Option<&str>, f: &mut dyn FnMut(&str, String)| -> Vec<PortRange> {
        match annotations.get(key).map(String::as_str).or(default) {
            None => Vec::new(),
            Some(v) => parse_port_ranges(v).unwrap_or_else(|e| {
                f(key, format!("is invalid ({e}); Linkerd ignores the whole list"));
                Vec::new()
            }),
        }
    };
    let opaque_ports = match annotations.get("config.linkerd.io/opaque-ports") {
        Some(_) => port_list("config.linkerd.io/opaque-ports", None, &mut annotation_finding),
        // The injector writes the default list filtered to declared containerPorts.
        None => parse_port_ranges(&settings.default_opaque_ports)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| declared.iter().any(|p| r.contains(*p)))
            .collect(),
    };
    let skip_inbound_ports = port_list(
        "config.linkerd.io/skip-inbound-ports",
        Some(&settings.default_skip_inbound_ports),
        &mut annotation_finding,
    );
    let require_identity_ports =
        port_list("config.linkerd.io/proxy-require-identity-inbound-ports", None, &mut annotation_finding);
    let skip_subnets = annotations
        .get("config.linkerd.io/skip-subnets")
        .map(|v| v.split(',').filter_map(crate::settings::parse_net).collect())
        .unwrap_or_default();
    let access_log = annotations.get("config.linkerd.io/access-log").and_then(|v| {
        let format = AccessLogFormat::from_annotation(v);
        if format.is_none() {
            annotation_finding(
                "config.linkerd.io/access-log",
                format!("`{v}` is not apache or json; the proxy writes no access log"),
            );
        }
        format
    });
    Workload {
        resource: index,
        kind: r.id.kind.clone(),
        namespace: namespace.clone(),
        name: r.name().to_owned(),
        labels: if meshed.is_ok() && !already_injected {
            injected_labels(&meta.labels, &r.id.kind, r.name(), &namespace, settings)
        } else {
            meta.labels.clone()
        },
        meshed,
        identity: settings.identity(&namespace, &service_account),
        service_account,
        default_policy,
        ports,
        probes,
        opaque_ports,
        skip_inbound_ports,
        skip_subnets,
        require_identity_ports,
        access_log,
    }
}

/// The pod's labels once the injector has patched it: the control plane's
/// namespace, the owning workload by kind, and the workload's namespace
/// (`pkg/inject/inject.go`: `ControllerNSLabel` in `GetPodPatch`, the
/// `Proxy<Kind>Label` and `WorkloadNamespaceLabel` in `populateMeta`). Servers
/// and policies select on them (the viz extension's do), and a patch
/// overwrites what the template had. A bare Pod gets no owner label: its
/// owner is known only in the cluster.
fn injected_labels(
    labels: &BTreeMap<String, String>,
    kind: &str,
    name: &str,
    namespace: &str,
    settings: &Settings,
) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    out.insert("linkerd.io/control-plane-ns".to_owned(), settings.control_plane_namespace.clone());
    out.insert("linkerd.io/workload-ns".to_owned(), namespace.to_owned());
    let owner = match kind {
        "Deployment" => Some("deployment"),
        "ReplicationController" => Some("replicationcontroller"),
        "ReplicaSet" => Some("replicaset"),
        "Job" => Some("job"),
        "DaemonSet" => Some("daemonset"),
        "StatefulSet" => Some("statefulset"),
        "CronJob" => Some("cronjob"),
        _ => None,
    };
    if let Some(owner) = owner {
        out.insert(format!("linkerd.io/proxy-{owner}"), name.to_owned());
    }
    out
}

/// Pod annotations plus the namespace's `config.linkerd.io/*` ones the pod lacks.
fn effective_annotations(
    pod: &BTreeMap<String, String>,
    ns: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = pod.clone();
    for (k, v) in ns.into_iter().flatten() {
        if k.starts_with("config.linkerd.io/") && k != "config.linkerd.io/admission-webhooks" {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    out
}

/// The injector's decision (`pkg/inject/report.go`); `Err` says why not.
fn injection(
    r: &Resource,
    template: &PodTemplate,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    ns: &NamespaceInfo,
    settings: &Settings,
) -> Result<(), String> {
    if has_proxy_container(template) {
        return Ok(());
    }
    let namespace = r.namespace();
    if matches!(namespace, "kube-system" | "cert-manager") {
        return Err(format!("namespace {namespace} is never injected"));
    }
    if ns.labels.and_then(|l| l.get("config.linkerd.io/admission-webhooks")).is_some_and(|v| v == "disabled") {
        return Err(format!("namespace {namespace} has config.linkerd.io/admission-webhooks: disabled"));
    }
    if labels.contains_key("linkerd.io/control-plane-component") || labels.contains_key("linkerd.io/cni-resource") {
        return Err("it is a Linkerd control-plane pod".to_owned());
    }
    if template.spec.host_network == Some(true) {
        return Err("it uses hostNetwork".to_owned());
    }
    // A pipeline's `linkerd inject` writes `linkerd.io/inject: enabled` into
    // the pod template; a value written in git is kept.
    let by_pipeline = settings.injected_by_pipeline.iter().any(|p| p.covers(namespace, labels));
    let pod_value = annotations.get("linkerd.io/inject").map(String::as_str).or(by_pipeline.then_some("enabled"));
    let ns_value = ns.annotations.and_then(|a| a.get("linkerd.io/inject")).map(String::as_str);
    let enabling = |v: Option<&str>| matches!(v, Some("enabled" | "ingress"));
    let valid = |v: Option<&str>| matches!(v, None | Some("enabled" | "ingress" | "disabled"));
    // The injector rejects an invalid namespace value before it looks at the pod.
    if !valid(ns_value) {
        return Err(format!(
            "namespace {namespace} has an invalid linkerd.io/inject value `{}`",
            ns_value.unwrap_or("")
        ));
    }
    let decided = match pod_value {
        Some("disabled") => Err("its pod template has linkerd.io/inject: disabled".to_owned()),
        Some(v) if !enabling(Some(v)) => Err(format!("linkerd.io/inject: {v} is not a valid value")),
        Some(_) => Ok(()),
        None if enabling(ns_value) => Ok(()),
        None if !ns.known => Err(format!(
            "neither its pod template nor namespace {namespace} enables linkerd.io/inject (the Namespace is not in the repository: add it, or declare it under `namespaces:` in meshc.yaml; if a pipeline injects it, declare it under `injectedByPipeline:`)"
        )),
        None => Err(format!("neither its pod template nor namespace {namespace} has linkerd.io/inject: enabled")),
    };
    decided?;
    // Since Linkerd 2.12 the proxy gets a projected token of its own; the
    // injector refuses such a pod only when the control plane turned that off
    // (`pkg/inject/report.go`, `newReport` and `Injectable`).
    if template.spec.automount_service_account_token == Some(false) {
        if !settings.linkerd_version.has(crate::settings::version::Feature::TokenProjection) {
            return Err(format!(
                "automountServiceAccountToken is false, and Linkerd {} (before 2.12) has no projected token for the proxy",
                settings.linkerd_version
            ));
        }
        if !settings.service_account_token_projection {
            return Err("automountServiceAccountToken is false and the control plane's identity.serviceAccountTokenProjection is false, so the proxy gets no identity token".to_owned());
        }
    }
    Ok(())
}

/// Why meshc's injector (`crate::inject`, the function behind `meshc inject`
/// and the webhook) refuses a template that asks for injection.
fn injector_refusal(r: &Resource, ns: &NamespaceInfo, settings: &Settings) -> Option<String> {
    let path = crate::inject::documents::template_path(&r.id.kind)?;
    let mut node: &crate::load::yaml::Node = &r.node;
    for step in &path {
        let crate::inject::value::Step::Key(k) = step else { return None };
        node = node.get(k)?;
    }
    let empty = BTreeMap::new();
    let namespace_meta = (ns.annotations.is_some() || ns.labels.is_some()).then(|| crate::inject::NamespaceMeta {
        annotations: ns.annotations.unwrap_or(&empty),
        labels: ns.labels.unwrap_or(&empty),
    });
    let config = crate::inject::Config {
        default_skip_inbound_ports: settings.default_skip_inbound_ports.clone(),
        ..crate::inject::Config::default()
    };
    let ctx = crate::inject::Context {
        kind: &r.id.kind,
        name: r.name(),
        namespace: r.namespace(),
        namespace_meta,
        overrides: &empty,
        config: &config,
    };
    crate::inject::refusal(&node.to_json(), &ctx)
}

/// Linkerd's proxy, or mesh-proxy as `meshc inject` adds it: the pod was
/// injected before it reached the cluster (`linkerd inject --manual`).
fn has_proxy_container(template: &PodTemplate) -> bool {
    template.spec.containers.iter().chain(&template.spec.init_containers).any(is_proxy)
}

fn is_proxy(c: &Container) -> bool {
    c.name == "linkerd-proxy" || c.name == crate::inject::PROXY_CONTAINER
}

fn default_policy(
    pod: &BTreeMap<String, String>,
    ns: Option<&BTreeMap<String, String>>,
    settings: &Settings,
    finding: &mut dyn FnMut(&str, String),
) -> DefaultPolicySource {
    const KEY: &str = "config.linkerd.io/default-inbound-policy";
    let cluster = DefaultPolicySource { policy: settings.default_inbound_policy.clone(), from: "cluster default" };
    // The namespace value is copied at injection only when the pod has none;
    // an invalid copied value falls back to the cluster default like a pod one.
    let (value, from) = match (pod.get(KEY), ns.and_then(|n| n.get(KEY))) {
        (Some(v), _) => (v, "pod annotation"),
        (None, Some(v)) => (v, "namespace annotation"),
        (None, None) => return cluster,
    };
    if DEFAULT_POLICIES.contains(&value.as_str()) {
        DefaultPolicySource { policy: value.clone(), from }
    } else {
        finding(
            KEY,
            format!(
                "({from}) `{value}` is not a default policy; Linkerd falls back to the cluster default `{}`",
                cluster.policy
            ),
        );
        cluster
    }
}

fn container_ports(containers: &[Container], injected: bool) -> Vec<NamedPort> {
    let mut out = Vec::new();
    for c in containers {
        for p in &c.ports {
            let tcp = p.protocol.as_deref().is_none_or(|proto| proto.eq_ignore_ascii_case("TCP"));
            if let (true, Ok(port)) = (tcp, u16::try_from(p.container_port)) {
                // An injected proxy's own ports are the proxy's, not the app's.
                let injected = injected || is_proxy(c);
                out.push(NamedPort { name: p.name.clone(), port, injected });
            }
        }
    }
    out
}

/// Path from a workload resource's root to one of its pod annotations.
pub fn annotation_path<'a>(kind: &str, key: &'a str) -> Vec<&'a str> {
    let mut path = pod_spec_path(kind);
    path.pop();
    path.extend(["metadata", "annotations", key]);
    path
}

/// Path from a workload resource's root to its pod spec.
pub fn pod_spec_path(kind: &str) -> Vec<&'static str> {
    match kind {
        "Pod" => vec!["spec"],
        "CronJob" => vec!["spec", "jobTemplate", "spec", "template", "spec"],
        _ => vec!["spec", "template", "spec"],
    }
}

fn http_probes(containers: &[Container], prefix: &[&str], list: &str) -> Vec<HttpProbe> {
    let mut out = Vec::new();
    for (ci, c) in containers.iter().enumerate() {
        let probes = [
            ("liveness", "livenessProbe", &c.liveness_probe),
            ("readiness", "readinessProbe", &c.readiness_probe),
            ("startup", "startupProbe", &c.startup_probe),
        ];
        for (kind, key, probe) in probes {
            let Some(get) = probe.as_ref().and_then(|p| p.http_get.as_ref()) else {
                continue;
            };
            // A named probe port resolves only against the same container's TCP ports.
            let port = match get.port.port() {
                Some(PortRef::Number(n)) => Some(n),
                Some(PortRef::Name(name)) => container_ports(std::slice::from_ref(c), false)
                    .into_iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .map(|p| p.port),
                None => None,
            };
            let Some(port) = port else { continue };
            let raw = get.path.as_deref().unwrap_or("/");
            let path = raw.split('?').next().unwrap_or("/");
            let path = if path.is_empty() { "/" } else { path };
            let https = get.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
            let field = prefix
                .iter()
                .map(|s| (*s).to_owned())
                .chain([list.to_owned(), ci.to_string(), key.to_owned(), "httpGet".to_owned()])
                .collect();
            out.push(HttpProbe {
                port,
                path: path.to_owned(),
                kind,
                container: c.name.clone(),
                injected: is_proxy(c),
                https,
                field,
            });
        }
    }
    out
}

/// The proxy container the injector adds (`_proxy.tpl`): its ports and probes.
fn add_injected_proxy(ports: &mut Vec<NamedPort>, probes: &mut Vec<HttpProbe>) {
    for (name, port) in [("linkerd-proxy", PROXY_PORT), ("linkerd-admin", ADMIN_PORT)] {
        ports.push(NamedPort { name: Some(name.to_owned()), port, injected: true });
    }
    for (kind, path) in [("liveness", "/live"), ("readiness", "/ready")] {
        probes.push(HttpProbe {
            port: ADMIN_PORT,
            path: path.to_owned(),
            kind,
            container: "linkerd-proxy".to_owned(),
            injected: true,
            https: false,
            field: Vec::new(),
        });
    }
}

/// The pod template of a workload resource, if it is one.
pub fn template_of(r: &Resource) -> Option<&PodTemplate> {
    match &r.spec {
        Spec::Workload(t) => Some(&**t),
        _ => None,
    }
}

/// Linkerd annotations on a Namespace are copied into pods at injection; an
/// invalid one is reported here once, where it is written.
pub fn check_namespace(ns: &Resource, findings: &mut Vec<Finding>) {
    const PORT_LISTS: &[&str] = &[
        "config.linkerd.io/opaque-ports",
        "config.linkerd.io/skip-inbound-ports",
        "config.linkerd.io/proxy-require-identity-inbound-ports",
    ];
    for (key, value) in &ns.meta.annotations {
        let why = match key.as_str() {
            "linkerd.io/inject" if !matches!(value.as_str(), "enabled" | "ingress" | "disabled") => {
                format!("`{value}` is not enabled, ingress or disabled; the injector meshes no pod in this namespace")
            }
            "config.linkerd.io/default-inbound-policy" if !DEFAULT_POLICIES.contains(&value.as_str()) => {
                format!(
                    "`{value}` is not a default policy; pods created in this namespace fall back to the cluster default"
                )
            }
            k if PORT_LISTS.contains(&k) => match parse_port_ranges(value) {
                Ok(_) => continue,
                Err(e) => format!("is invalid ({e}); Linkerd ignores the whole list in every pod of this namespace"),
            },
            _ => continue,
        };
        let msg = format!("Namespace {}: `{key}` {why}", ns.name());
        let at = ["metadata", "annotations", key.as_str()];
        findings.push(Finding::new(Code::InvalidAnnotation, ns.span_at(&at), msg).resource(ns.id.clone()));
    }
}
