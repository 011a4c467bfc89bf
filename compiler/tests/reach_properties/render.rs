//! Rendering a generated repository as Kubernetes YAML.

use super::generator::*;
use meshc::findings::Code;
use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use meshc::settings::SettingsFile;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// Rendering.

impl Repo {
    fn ns(&self, i: usize) -> &'static str {
        NAMESPACES[i % self.namespaces.len()]
    }

    fn deploy_ns(&self, d: usize) -> &'static str {
        self.ns(self.deployments[d % self.deployments.len()].ns)
    }

    fn server_idx(&self, s: usize) -> Option<usize> {
        (!self.servers.is_empty()).then(|| s % self.servers.len())
    }

    fn server_ns(&self, s: usize) -> &'static str {
        self.deploy_ns(self.servers[s].deploy)
    }

    /// Routes whose Server exists, with that Server.
    fn route_server(&self, r: usize) -> Option<usize> {
        self.server_idx(self.routes[r].server)
    }

    fn documents(&self) -> Vec<Value> {
        let mut docs = Vec::new();
        for (i, n) in self.namespaces.iter().enumerate() {
            let mut annotations = Map::new();
            annotations.insert("linkerd.io/inject".into(), json!("enabled"));
            if let Some(p) = n.default_policy {
                annotations.insert("config.linkerd.io/default-inbound-policy".into(), json!(p));
            }
            docs.push(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": NAMESPACES[i], "annotations": annotations},
            }));
        }
        for (i, d) in self.deployments.iter().enumerate() {
            docs.push(self.deployment(i, d));
        }
        for (i, s) in self.servers.iter().enumerate() {
            let d = &self.deployments[s.deploy % self.deployments.len()];
            let selector = if s.by_tier {
                json!({"tier": "back"})
            } else {
                json!({"app": format!("d{}", s.deploy % self.deployments.len())})
            };
            let port = SERVER_PORTS[s.port];
            let port = port.parse::<u16>().map_or_else(|_| json!(port), |p| json!(p));
            let mut spec = json!({"podSelector": {"matchLabels": selector}, "port": port});
            if let Some(p) = PROTOCOLS[s.protocol] {
                spec["proxyProtocol"] = json!(p);
            }
            if let Some(p) = s.access_policy {
                spec["accessPolicy"] = json!(p);
            }
            docs.push(json!({
                "apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
                "metadata": {
                    "name": format!("s{i}"), "namespace": self.ns(d.ns),
                    "labels": {"group": if s.group_a { "a" } else { "b" }},
                },
                "spec": spec,
            }));
        }
        for i in 0..self.routes.len() {
            if let Some(doc) = self.route(i) {
                docs.push(doc);
            }
        }
        for (i, m) in self.mesh.iter().enumerate() {
            let ids = identity_strings();
            let spec = match &m.ids {
                MeshIds::Identities(list) => {
                    json!({"identities": list.iter().map(|&k| ids[k].clone()).collect::<Vec<_>>()})
                }
                MeshIds::Refs(refs) => {
                    let refs: Vec<Value> = refs
                        .iter()
                        .map(|&(account, ns)| match account {
                            Some(a) => json!({"kind": "ServiceAccount", "name": ACCOUNTS[a], "namespace": self.ns(ns)}),
                            None => json!({"kind": "Namespace", "name": self.ns(ns)}),
                        })
                        .collect();
                    json!({"identityRefs": refs})
                }
            };
            docs.push(json!({
                "apiVersion": "policy.linkerd.io/v1alpha1", "kind": "MeshTLSAuthentication",
                "metadata": {"name": format!("m{i}"), "namespace": self.ns(m.ns)},
                "spec": spec,
            }));
        }
        for (i, n) in self.nets.iter().enumerate() {
            docs.push(json!({
                "apiVersion": "policy.linkerd.io/v1alpha1", "kind": "NetworkAuthentication",
                "metadata": {"name": format!("n{i}"), "namespace": self.ns(n.ns)},
                "spec": {"networks": networks(&n.networks)},
            }));
        }
        for (i, p) in self.policies.iter().enumerate() {
            docs.push(self.policy(i, p));
        }
        for (i, a) in self.server_authzs.iter().enumerate() {
            docs.push(self.server_authz(i, a));
        }
        docs
    }

    fn deployment(&self, i: usize, d: &Deployment) -> Value {
        let mut annotations = Map::new();
        if d.inject_disabled {
            annotations.insert("linkerd.io/inject".into(), json!("disabled"));
        }
        let mut put = |key: &str, v: Option<&str>| {
            if let Some(v) = v {
                annotations.insert(key.into(), json!(v));
            }
        };
        put("config.linkerd.io/skip-inbound-ports", d.skip_ports.map(|k| SKIP_PORTS[k]));
        put("config.linkerd.io/skip-subnets", d.skip_subnets.map(|k| SKIP_SUBNETS[k]));
        put("config.linkerd.io/opaque-ports", d.opaque_ports.map(|k| OPAQUE_PORTS[k]));
        put("config.linkerd.io/default-inbound-policy", d.pod_policy);
        let mut labels = Map::new();
        labels.insert("app".into(), json!(format!("d{i}")));
        if d.tier {
            labels.insert("tier".into(), json!("back"));
        }
        let mut ports = vec![json!({"name": "http", "containerPort": 8080})];
        if d.grpc_port {
            ports.push(json!({"name": "grpc", "containerPort": 9090}));
        }
        let mut container = json!({"name": "app", "image": "registry.example.com/app:1", "ports": ports});
        if let Some((port, path)) = d.probe {
            let port = [json!(8080), json!(9090), json!("http")][port].clone();
            container["readinessProbe"] = json!({"httpGet": {"path": PROBE_PATHS[path], "port": port}});
        }
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("d{i}"), "namespace": self.ns(d.ns)},
            "spec": {
                "selector": {"matchLabels": {"app": format!("d{i}")}},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": {"serviceAccountName": ACCOUNTS[d.account], "containers": [container]},
                },
            },
        })
    }

    fn route(&self, i: usize) -> Option<Value> {
        let r = &self.routes[i];
        let s = self.route_server(i)?;
        let parent = json!([{"group": "policy.linkerd.io", "kind": "Server", "name": format!("s{s}")}]);
        let meta = json!({"name": format!("r{i}"), "namespace": self.server_ns(s)});
        if r.grpc {
            let rules: Vec<Value> = r
                .rules
                .iter()
                .flatten()
                .map(|rule| {
                    let matches: Vec<Value> = rule
                        .iter()
                        .map(|m| match m.method {
                            Some(0) => json!({"method": {"service": "shop.v1.Catalog", "method": "Lookup"}}),
                            Some(_) => json!({"method": {"service": "shop.v1.Catalog"}}),
                            None => json!({"method": {"service": "shop.v1.Other"}}),
                        })
                        .collect();
                    json!({"matches": matches})
                })
                .collect();
            let mut spec = json!({"parentRefs": parent, "rules": rules});
            if let Some(h) = r.hostnames {
                spec["hostnames"] = json!(HOSTNAMES[h]);
            }
            return Some(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": meta, "spec": spec,
            }));
        }
        let api = if r.gateway { "gateway.networking.k8s.io/v1" } else { "policy.linkerd.io/v1beta3" };
        let mut spec = json!({"parentRefs": parent});
        if let Some(h) = r.hostnames {
            spec["hostnames"] = json!(HOSTNAMES[h]);
        }
        if let Some(rules) = &r.rules {
            let rules: Vec<Value> = rules
                .iter()
                .map(|rule| {
                    let matches: Vec<Value> = rule
                        .iter()
                        .map(|m| {
                            let mut out = Map::new();
                            if let Some(k) = m.method {
                                out.insert("method".into(), json!(METHODS[k]));
                            }
                            if let Some(k) = m.path {
                                let (t, v) = ROUTE_PATHS[k];
                                out.insert("path".into(), json!({"type": t, "value": v}));
                            }
                            if let Some(k) = m.header {
                                let (name, t, value) = HEADERS[k];
                                out.insert("headers".into(), json!([{"name": name, "type": t, "value": value}]));
                            }
                            if m.query {
                                out.insert("queryParams".into(), json!([{"name": "debug", "value": "1"}]));
                            }
                            Value::Object(out)
                        })
                        .collect();
                    if matches.is_empty() { json!({}) } else { json!({"matches": matches}) }
                })
                .collect();
            spec["rules"] = json!(rules);
        }
        Some(json!({"apiVersion": api, "kind": "HTTPRoute", "metadata": meta, "spec": spec}))
    }

    fn policy(&self, i: usize, p: &Policy) -> Value {
        let route_target = |r: usize| -> Option<(Value, &'static str)> {
            if self.routes.is_empty() {
                return None;
            }
            let r = r % self.routes.len();
            let s = self.route_server(r)?;
            let route = &self.routes[r];
            let group = if route.grpc || route.gateway { "gateway.networking.k8s.io" } else { "policy.linkerd.io" };
            let kind = if route.grpc { "GRPCRoute" } else { "HTTPRoute" };
            let target = if p.group_ok {
                json!({"group": group, "kind": kind, "name": format!("r{r}")})
            } else {
                json!({"kind": kind, "name": format!("r{r}")})
            };
            Some((target, self.server_ns(s)))
        };
        let server_target = |s: usize| -> Option<(Value, &'static str)> {
            let s = self.server_idx(s)?;
            Some((json!({"group": "policy.linkerd.io", "kind": "Server", "name": format!("s{s}")}), self.server_ns(s)))
        };
        let namespace_target = |n: usize| (json!({"kind": "Namespace", "name": self.ns(n)}), self.ns(n));
        let (target, ns) = match p.target {
            Target::Server(s) => server_target(s),
            Target::Route(r) => route_target(r),
            Target::Namespace(n) => Some(namespace_target(n)),
            Target::Missing(n) => {
                Some((json!({"group": "policy.linkerd.io", "kind": "Server", "name": "missing"}), self.ns(n)))
            }
        }
        .unwrap_or_else(|| namespace_target(0));
        let with_ns = |mut r: Value, other: &str| {
            if p.explicit_ns || other != ns {
                r["namespace"] = json!(other);
            }
            r
        };
        let mut refs = Vec::new();
        match p.identity {
            Identity::None => {}
            Identity::Mesh(k) => {
                let (name, other) = match self.mesh.get(k) {
                    Some(m) => (format!("m{k}"), self.ns(m.ns)),
                    None => ("missing-mtls".to_owned(), ns),
                };
                let r = json!({"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": name});
                refs.push(with_ns(r, other));
            }
            Identity::ServiceAccount(a, n) => {
                let other = n.map_or(ns, |n| self.ns(n));
                refs.push(with_ns(json!({"kind": "ServiceAccount", "name": ACCOUNTS[a]}), other));
            }
        }
        if let Some(k) = p.network {
            let (name, other) = match self.nets.get(k) {
                Some(n) => (format!("n{k}"), self.ns(n.ns)),
                None => ("missing-net".to_owned(), ns),
            };
            let r = json!({"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": name});
            refs.push(with_ns(r, other));
        }
        json!({
            "apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
            "metadata": {"name": format!("p{i}"), "namespace": ns},
            "spec": {"targetRef": target, "requiredAuthenticationRefs": refs},
        })
    }

    fn server_authz(&self, i: usize, a: &ServerAuthz) -> Value {
        let by_name = a.server.and_then(|s| self.server_idx(s));
        let (server, ns) = match by_name {
            Some(s) => (json!({"name": format!("s{s}")}), self.server_ns(s)),
            None => {
                let group = if a.group_a { "a" } else { "b" };
                (json!({"selector": {"matchLabels": {"group": group}}}), self.ns(a.ns))
            }
        };
        let ids = identity_strings();
        let mut client = match &a.client {
            SaClient::Unauthenticated => json!({"unauthenticated": true}),
            SaClient::UnauthenticatedTls => json!({"meshTLS": {"unauthenticatedTLS": true}}),
            SaClient::Identities(list) => {
                json!({"meshTLS": {"identities": list.iter().map(|&k| ids[k].clone()).collect::<Vec<_>>()}})
            }
            SaClient::ServiceAccounts(list) => {
                let sas: Vec<Value> = list
                    .iter()
                    .map(|&(sa, n)| match n {
                        Some(n) => json!({"name": ACCOUNTS[sa], "namespace": self.ns(n)}),
                        None => json!({"name": ACCOUNTS[sa]}),
                    })
                    .collect();
                json!({"meshTLS": {"serviceAccounts": sas}})
            }
        };
        if !a.networks.is_empty() {
            client["networks"] = json!(networks(&a.networks));
        }
        json!({
            "apiVersion": "policy.linkerd.io/v1beta1", "kind": "ServerAuthorization",
            "metadata": {"name": format!("sa{i}"), "namespace": ns},
            "spec": {"server": server, "client": client},
        })
    }

    fn yaml(&self) -> String {
        self.documents().iter().map(yaml_document).collect::<Vec<_>>().join("---\n")
    }

    fn options(&self) -> Options {
        let list = |l: &Option<Vec<&str>>| l.as_ref().map(|v| v.iter().map(|s| (*s).to_owned()).collect());
        let overrides = SettingsFile {
            kubelet_ip: self.settings.kubelet_ip.map(str::to_owned),
            probe_networks: list(&self.settings.probe_networks),
            cluster_networks: list(&self.settings.cluster_networks),
            pod_networks: list(&self.settings.pod_networks),
            ..SettingsFile::default()
        };
        Options { overrides, ..Options::default() }
    }

    /// The repository and the settings, as a failing case should be reported.
    pub(crate) fn describe(&self) -> String {
        format!("settings: {:?}\n{}", self.settings, self.yaml())
    }

    pub(crate) fn check(&self) -> Outcome {
        let input = Input::Text { name: "repo.yaml".to_owned(), text: self.yaml() };
        let outcome = pipeline::check(&input, &self.options()).expect("text input is always readable");
        // A generator bug, not a property failure: the repository must be well-formed.
        let bad: Vec<&str> = outcome
            .findings
            .iter()
            .filter(|f| matches!(f.code, Code::ParseError | Code::SchemaViolation))
            .map(|f| f.message.as_str())
            .collect();
        assert!(bad.is_empty(), "generated repository is malformed: {bad:?}\n{}", self.describe());
        outcome
    }
}

pub(crate) fn networks(list: &[usize]) -> Vec<Value> {
    list.iter()
        .map(|&k| match NETWORKS[k] {
            (cidr, Some(except)) => json!({"cidr": cidr, "except": [except]}),
            (cidr, None) => json!({"cidr": cidr}),
        })
        .collect()
}

/// Block-style YAML, so a failing case reads like a repository.
pub(crate) fn yaml_document(v: &Value) -> String {
    let mut out = String::new();
    yaml_block(v, 0, &mut out);
    out
}

pub(crate) fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Array(a) if a.is_empty() => "[]".to_owned(),
        Value::Object(o) if o.is_empty() => "{}".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn is_block(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty()) || matches!(v, Value::Object(o) if !o.is_empty())
}

pub(crate) fn yaml_block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                if is_block(v) {
                    out.push_str(&format!("{pad}{k}:\n"));
                    yaml_block(v, indent + 2, out);
                } else {
                    out.push_str(&format!("{pad}{k}: {}\n", yaml_scalar(v)));
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                if is_block(item) {
                    let mut inner = String::new();
                    yaml_block(item, indent + 2, &mut inner);
                    out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                } else {
                    out.push_str(&format!("{pad}- {}\n", yaml_scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", yaml_scalar(other))),
    }
}
