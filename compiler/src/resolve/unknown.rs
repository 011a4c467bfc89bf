//! Findings whose truth depends on what the repository does not hold: a
//! Helm release meshc does not render may create, in its namespace, the pods
//! a Server selects, the ServiceAccount an identity names, the Service a
//! reference or backend names; a Flux `${VAR}` without a value (set outside
//! the repository) may hold the network that would admit a client. Such a
//! finding is not certain: it drops to info and says what may make it false.

use crate::findings::{Code, Finding, Referent, Severity};
use crate::load::flux::UnknownValues;
use crate::load::releases::Release;
use crate::load::yaml::{Node, Value};
use crate::model::{Resource, Spec};
use crate::resolve::Resolved;
use crate::resolve::index::Kind;
use mesh_proxy_api::{Authentication, Authorization, InboundServer, Meta, Network};

/// Codes that a release's objects can make false.
const DEPENDS_ON_RELEASES: &[Code] = &[
    Code::ServerSelectsNothing,
    Code::IdentityMatchesNothing,
    Code::UnresolvedReference,
    Code::BackendUnresolved,
    Code::TrafficSplitUnresolved,
];

/// Downgrades the findings a release in their namespace may make false.
pub fn downgrade(findings: &mut [Finding], releases: &[Release], default_namespace: &str) {
    if releases.is_empty() {
        return;
    }
    let namespace = |r: &Release| r.namespace.clone().unwrap_or_else(|| default_namespace.to_owned());
    for f in findings.iter_mut().filter(|f| DEPENDS_ON_RELEASES.contains(&f.code)) {
        // The namespace of the object looked for first, then the finding's
        // own; an identity's is that of its ServiceAccount alone (the
        // policy naming it may be anywhere).
        let wanted = f.referent.as_ref().and_then(Referent::namespace);
        let looked_for = || releases.iter().find(|r| wanted == Some(namespace(r).as_str()));
        let own = || releases.iter().find(|r| f.code != Code::IdentityMatchesNothing && is_in(f, &namespace(r)));
        let Some(release) = looked_for().or_else(own) else {
            continue;
        };
        let why = release.why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default();
        not_certain(
            f,
            &format!("may be created by {}, which meshc does not render{why}: not certain", release.creator),
        );
    }
}

fn is_in(f: &Finding, namespace: &str) -> bool {
    f.resource.as_ref().and_then(|id| id.namespace.as_deref()) == Some(namespace)
}

/// Findings a reference to an object with unknown values carries over: the
/// object may be valid (and the reference resolve) once the values are set.
const DEPENDS_BY_REFERENCE: &[Code] = &[Code::UnresolvedReference, Code::InertPolicy];

/// The resources holding unresolved Flux variables, by resource index.
pub struct Variables<'a>(Vec<(usize, &'a UnknownValues)>);

impl<'a> Variables<'a> {
    /// Matches each object with unknown values to its resource (same source
    /// and document offset; an object meshc could not decode has none).
    pub fn find(resources: &[Resource], unknown: &'a [UnknownValues]) -> Self {
        let mut out = Vec::new();
        for u in unknown {
            if let Some(i) = resources.iter().position(|r| r.source == u.source && r.node.offset == u.offset) {
                out.push((i, u));
            }
        }
        Variables(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The unknown values of resource `i`, if it has any.
    pub fn of(&self, i: usize) -> Option<&'a UnknownValues> {
        self.0.iter().find(|(r, _)| *r == i).map(|(_, u)| *u)
    }

    /// Drops to info every finding that follows from an unknown value: one
    /// about a field of the object that holds (or held, for a dropped list
    /// entry) a variable, and a reference to such an object that fails.
    pub fn downgrade(&self, findings: &mut [Finding], resources: &[Resource]) {
        for f in findings.iter_mut().filter(|f| f.severity != Severity::Info) {
            let own = self.0.iter().find(|(i, u)| {
                let r = &resources[*i];
                f.resource.as_ref() == Some(&r.id)
                    && f.span.source == r.source
                    && field_holds_use(&r.node, f.span.offset, u)
            });
            let referent = f.referent.as_ref().filter(|_| DEPENDS_BY_REFERENCE.contains(&f.code));
            let named = || referent.and_then(|to| self.0.iter().find(|(i, _)| to.is(&resources[*i].id)));
            if let Some((_, u)) = own.or_else(named) {
                mark(f, u);
            }
        }
    }

    /// A verdict on `server` that denies, and whether it would allow (`allows`)
    /// if every network a Flux variable left unknown held the client's address:
    /// then the denial depends on that variable. The authorizations widened are
    /// those of a ServerAuthorization with unknown values, or of an
    /// AuthorizationPolicy requiring such a NetworkAuthentication.
    pub fn widened_allows(
        &self,
        r: &Resolved,
        namespace: &str,
        server: &InboundServer,
        allows: impl Fn(&InboundServer) -> bool,
    ) -> Option<&'a UnknownValues> {
        let mut widened = server.clone();
        let mut found = None;
        let routes = widened.http_routes.iter_mut().flat_map(|route| route.authorizations.iter_mut());
        for a in widened.authorizations.iter_mut().chain(routes) {
            if let Some(u) = self.behind(r, namespace, &a.meta) {
                a.networks.extend(every_address());
                found = found.or(Some(u));
            }
        }
        let restored = self.restore_inert(r, namespace, &mut widened);
        found.or(restored).filter(|_| allows(&widened))
    }

    /// A policy whose NetworkAuthentication a variable left with no network
    /// at all is inert, so it has no authorization to widen: it is restored
    /// as it may be once the value is set (every address, no identity),
    /// when it requires nothing but NetworkAuthentications.
    fn restore_inert(&self, r: &Resolved, namespace: &str, server: &mut InboundServer) -> Option<&'a UnknownValues> {
        let mut found = None;
        for &p in r.index.in_namespace(Kind::AuthorizationPolicy, namespace) {
            let Spec::AuthorizationPolicy(spec) = &r.resources[p].spec else { continue };
            let name = r.resources[p].name();
            let refs = &spec.required_authentication_refs;
            let networks_only =
                !refs.is_empty() && refs.iter().all(|a| a.kind.eq_ignore_ascii_case("NetworkAuthentication"));
            let granted = |a: &Authorization| a.meta.kind == "authorizationpolicy" && a.meta.name == name;
            let routes = server.http_routes.iter().flat_map(|route| route.authorizations.iter());
            if !networks_only || server.authorizations.iter().chain(routes).any(granted) {
                continue;
            }
            let Some(u) =
                self.behind(r, namespace, &Meta { kind: "authorizationpolicy".into(), name: name.into(), group: None })
            else {
                continue;
            };
            let authz = Authorization {
                meta: Meta { kind: "authorizationpolicy".into(), name: name.into(), group: None },
                networks: every_address(),
                authentication: Authentication::Unauthenticated,
            };
            let t = &spec.target_ref;
            let target = match t.kind.to_ascii_lowercase().as_str() {
                "server" if server.meta.kind == "server" && server.meta.name == t.name => {
                    Some(&mut server.authorizations)
                }
                "namespace" if server.meta.kind == "server" => Some(&mut server.authorizations),
                "httproute" => {
                    server.http_routes.iter_mut().find(|rt| rt.meta.name == t.name).map(|rt| &mut rt.authorizations)
                }
                _ => None,
            };
            if let Some(list) = target {
                list.push(authz);
                found = found.or(Some(u));
            }
        }
        found
    }

    /// The unknown values an authorization's networks come from.
    fn behind(&self, r: &Resolved, namespace: &str, meta: &Meta) -> Option<&'a UnknownValues> {
        match meta.kind.as_str() {
            "serverauthorization" => self.of(r.index.get(Kind::ServerAuthorization, namespace, &meta.name)?),
            "authorizationpolicy" => {
                let p = r.index.get(Kind::AuthorizationPolicy, namespace, &meta.name)?;
                let Spec::AuthorizationPolicy(spec) = &r.resources[p].spec else { return None };
                spec.required_authentication_refs
                    .iter()
                    .filter(|a| a.kind.eq_ignore_ascii_case("NetworkAuthentication"))
                    .find_map(|a| {
                        self.of(r.index.get(
                            Kind::NetworkAuthn,
                            a.namespace.as_deref().unwrap_or(namespace),
                            &a.name,
                        )?)
                    })
            }
            _ => None,
        }
    }
}

/// The control plane's pods, by their `linkerd.io/control-plane-component`
/// label (Linkerd's `charts/linkerd-control-plane/templates`: the
/// destination, identity and proxy-injector Deployments, the heartbeat
/// CronJob).
const CONTROL_PLANE_COMPONENTS: &[&str] = &["destination", "identity", "proxy-injector", "heartbeat"];
const COMPONENT_LABEL: &str = "linkerd.io/control-plane-component";

/// A Server in the control-plane namespace that selects the control plane's
/// own pods by their labels selects pods that exist wherever Linkerd runs:
/// `linkerd install` or the linkerd-control-plane chart creates them, and a
/// repository that hardens the control plane rarely holds them. When the
/// repository holds none, its `server-selects-nothing` drops to info. A
/// selector naming another component, or another label, keeps its severity.
pub fn control_plane_servers(findings: &mut [Finding], r: &Resolved) {
    let ns = r.settings.control_plane_namespace.as_str();
    if r.workloads.iter().any(|w| w.namespace == ns && w.labels.contains_key(COMPONENT_LABEL)) {
        return;
    }
    for f in findings.iter_mut().filter(|f| f.code == Code::ServerSelectsNothing && f.severity != Severity::Info) {
        let Some(id) = f.resource.as_ref().filter(|id| id.namespace.as_deref() == Some(ns)) else { continue };
        let Some(server) = r.index.get(Kind::Server, ns, &id.name) else { continue };
        let Spec::Server(spec) = &r.resources[server].spec else { continue };
        let Some(component) = spec.pod_selector.as_ref().and_then(|s| control_plane_component(s, ns)) else {
            continue;
        };
        not_certain(
            f,
            &format!(
                "not certain: it selects the Linkerd control plane's {component} pods, which Linkerd's installation creates and this repository does not hold"
            ),
        );
    }
}

/// The component a selector picks when it names only labels every pod of
/// that control-plane component carries.
fn control_plane_component<'s>(s: &'s crate::model::meta::LabelSelector, ns: &str) -> Option<&'s str> {
    let component = s.match_labels.get(COMPONENT_LABEL)?.as_str();
    let known = |(k, v): (&String, &String)| match k.as_str() {
        COMPONENT_LABEL => CONTROL_PLANE_COMPONENTS.contains(&v.as_str()),
        "linkerd.io/control-plane-ns" => v == ns,
        _ => false,
    };
    (s.match_expressions.is_empty() && s.match_labels.iter().all(known)).then_some(component)
}

fn every_address() -> Vec<Network> {
    let all: [ipnet::IpNet; 2] = [ipnet::Ipv4Net::default().into(), ipnet::Ipv6Net::default().into()];
    all.into_iter().map(|net| Network { net, except: Vec::new() }).collect()
}

/// Drops `f` to info, naming the variables it depends on.
pub fn mark(f: &mut Finding, u: &UnknownValues) {
    not_certain(f, &format!("not certain: {}", depends_on(u)));
}

/// The one way a finding whose truth depends on what the repository does
/// not hold is lowered: to info, with what it depends on in parentheses.
fn not_certain(f: &mut Finding, why: &str) {
    f.severity = Severity::Info;
    f.message.push_str(&format!(" ({why})"));
}

/// `depends on unresolved variable X from Flux Kustomization NS/NAME`.
pub fn depends_on(u: &UnknownValues) -> String {
    let s = if u.vars.len() == 1 { "" } else { "s" };
    format!("depends on unresolved variable{s} {} {}", u.vars.join(", "), u.scope)
}

/// Whether the field at `offset` of the object contains a value a variable
/// left unknown. A field's extent runs from its offset to the next node, in
/// document order, that is not inside it; the list entries the substitution
/// dropped count as nodes, so that an entry does not swallow a dropped
/// neighbour. Of nodes at one offset (a list and its first entry) the
/// innermost is the field.
fn field_holds_use(root: &Node, offset: u32, u: &UnknownValues) -> bool {
    let mut flat = Vec::new();
    preorder(root, 0, &mut flat);
    flat.extend(u.uses.iter().copied());
    flat.sort_by_key(|&(o, _)| o);
    let Some(at) = flat.iter().rposition(|&(o, _)| o == offset) else {
        return false;
    };
    let depth = flat[at].1;
    let end = flat[at + 1..].iter().find(|&&(o, d)| o > offset && d <= depth).map_or(u32::MAX, |&(o, _)| o);
    u.uses.iter().any(|&(use_at, _)| use_at >= offset && use_at < end)
}

fn preorder(node: &Node, depth: u32, out: &mut Vec<(u32, u32)>) {
    out.push((node.offset, depth));
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|n| preorder(n, depth + 1, out)),
        Value::Map(entries) => entries.iter().for_each(|(_, n)| preorder(n, depth + 1, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{ResourceId, Span};

    /// A finding about a resource in `namespace` whose message names
    /// nothing: only its code and referent may decide.
    fn finding(code: Code, namespace: &str, referent: Option<Referent>) -> Finding {
        let id = ResourceId {
            api_version: "policy.linkerd.io/v1alpha1".into(),
            kind: "MeshTLSAuthentication".into(),
            namespace: Some(namespace.into()),
            name: "m".into(),
        };
        Finding::new(code, Span::default(), "reworded").resource(id).referent(referent)
    }

    #[test]
    fn only_findings_about_a_release_namespace_drop_to_info() {
        let releases =
            [Release { creator: "HelmRelease flux-system/web".into(), namespace: Some("web".into()), why: None }];
        let identity = |id: &str| Some(Referent::Identity(id.into()));
        let mut findings = vec![
            // The identity is in ns other: the resource's own namespace web does not matter.
            finding(Code::IdentityMatchesNothing, "web", identity("a.other.serviceaccount.identity.x")),
            finding(Code::IdentityMatchesNothing, "other", identity("a.web.serviceaccount.identity.x")),
            finding(Code::IdentityMatchesNothing, "other", identity("*.web.serviceaccount.identity.x")),
            // A pattern over every namespace names none.
            finding(Code::IdentityMatchesNothing, "other", identity("*.serviceaccount.identity.x")),
            finding(Code::ServerSelectsNothing, "web", None),
            finding(Code::ServerSelectsNothing, "batch", None),
            // The object looked for is in web; the policy looking is not.
            finding(Code::UnresolvedReference, "batch", Some(Referent::object("NetworkAuthentication", "web", "n"))),
            finding(Code::UnresolvedReference, "batch", Some(Referent::object("Server", "batch", "s"))),
            finding(Code::SchemaViolation, "web", None),
        ];
        downgrade(&mut findings, &releases, "default");
        let severities: Vec<_> = findings.iter().map(|f| f.severity).collect();
        let (info, default) = (Severity::Info, |c: Code| c.entry().severity);
        let want = [
            default(Code::IdentityMatchesNothing),
            info,
            info,
            default(Code::IdentityMatchesNothing),
            info,
            default(Code::ServerSelectsNothing),
            info,
            default(Code::UnresolvedReference),
            default(Code::SchemaViolation),
        ];
        assert_eq!(severities, want);
        assert!(findings[1].message.contains("may be created by HelmRelease flux-system/web"));
    }

    #[test]
    fn an_identity_names_the_namespace_of_its_service_account() {
        let ns = |id: &str| Referent::Identity(id.into()).namespace().map(str::to_owned);
        assert_eq!(ns("api.shop.serviceaccount.identity.linkerd.cluster.local").as_deref(), Some("shop"));
        assert_eq!(ns("*.shop.serviceaccount.identity.linkerd.cluster.local").as_deref(), Some("shop"));
        assert_eq!(ns("*.serviceaccount.identity.linkerd.cluster.local"), None);
        assert_eq!(ns("shop.serviceaccount.identity.linkerd.cluster.local"), None);
        assert_eq!(ns("spiffe://example.org/x"), None);
    }
}

#[cfg(test)]
mod variable_tests {
    use crate::findings::{Code, Finding, Severity};
    use crate::load::Input;
    use crate::pipeline::{Options, check};

    /// A pod whose readiness probe GET /health takes a route authorized for
    /// the kubelet networks; kubelet's address (10.0.0.1, the first host of
    /// the first cluster network) is outside the pod CIDR default.
    const PROBED: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata:\n      labels: {app: web}\n      annotations: {linkerd.io/inject: enabled}\n    spec:\n      containers:\n      - name: web\n        image: web\n        ports: [{name: http, containerPort: 8080}]\n        readinessProbe: {httpGet: {path: /health, port: 8080}}\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web, namespace: shop}\nspec: {podSelector: {matchLabels: {app: web}}, port: 8080, proxyProtocol: HTTP/1}\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata: {name: health, namespace: shop}\nspec:\n  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]\n  rules: [{matches: [{path: {type: Exact, value: /health}, method: GET}]}]\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: health, namespace: shop}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: health}\n  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: kubelet}]\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {name: kubelet, namespace: shop}\nspec:\n  networks:\n  - cidr: ${POD:=10.240.0.0/16}\n  - cidr: NODES\n";

    fn findings(text: &str, code: Code) -> Vec<Finding> {
        let input = Input::Text { name: "app.yaml".into(), text: text.into() };
        let o = check(&input, &Options::default()).expect("checks");
        o.findings.into_iter().filter(|f| f.code == code).collect()
    }

    #[test]
    fn a_probe_denied_unless_an_unknown_network_holds_kubelet_depends_on_it() {
        let denied = findings(&PROBED.replace("NODES", "${VNET}"), Code::ProbeDenied);
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert_eq!(denied[0].severity, Severity::Info);
        assert!(
            denied[0].message.contains("not certain: depends on unresolved variable VNET set outside the repository")
        );
        // Every network known, and none holds kubelet: certain.
        let denied = findings(&PROBED.replace("NODES", "10.250.0.0/16"), Code::ProbeDenied);
        assert_eq!(denied[0].severity, Severity::Error);
        // No network would let a plaintext probe through a policy that also requires mTLS.
        let mesh = "\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: any, namespace: shop}\nspec: {identities: ['*']}\n";
        let both = PROBED.replace("NODES", "${VNET}").replace(
            "name: kubelet}]",
            "name: kubelet}, {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: any}]",
        ) + mesh;
        let denied = findings(&both, Code::ProbeDenied);
        assert_eq!(denied[0].severity, Severity::Error, "{denied:?}");
    }

    #[test]
    fn an_authentication_left_without_networks_by_a_variable_is_unknown_not_invalid() {
        let text = PROBED.replace("  - cidr: ${POD:=10.240.0.0/16}\n", "").replace("NODES", "${VNET}");
        let schema = findings(&text, Code::SchemaViolation);
        assert_eq!(schema.len(), 1, "{schema:?}");
        assert_eq!(schema[0].severity, Severity::Info);
        let refs = findings(&text, Code::UnresolvedReference);
        assert_eq!((refs.len(), refs[0].severity), (1, Severity::Info), "{refs:?}");
        assert!(refs[0].message.contains("depends on unresolved variable VNET"));
        // The probe route's policy is inert for meshc, but would admit kubelet if VNET held its address.
        let probes = findings(&text, Code::ProbeDenied);
        assert_eq!((probes.len(), probes[0].severity), (1, Severity::Info), "{probes:?}");
        // A mistake in a field that holds no variable stays certain.
        let typo = text.replace("  networks:\n", "  networks:\n  - cidr: 10.0.0.0/33\n");
        let schema = findings(&typo, Code::SchemaViolation);
        assert_eq!(schema.iter().map(|f| f.severity).collect::<Vec<_>>(), [Severity::Error], "{schema:?}");
    }
}

#[cfg(test)]
mod control_plane_tests {
    use crate::findings::{Code, Severity};
    use crate::load::Input;
    use crate::pipeline::{Options, check};

    const SERVERS: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: identity-admin, namespace: linkerd}\nspec: {podSelector: {matchLabels: {linkerd.io/control-plane-component: identity}}, port: ident-admin}\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: typo, namespace: linkerd}\nspec: {podSelector: {matchLabels: {linkerd.io/control-plane-component: identiy}}, port: 9990}\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: app, namespace: linkerd}\nspec: {podSelector: {matchLabels: {linkerd.io/control-plane-component: identity, app: x}}, port: 9990}\n";

    fn severities(text: &str) -> Vec<(String, Severity)> {
        let input = Input::Text { name: "cp.yaml".into(), text: text.into() };
        let o = check(&input, &Options::default()).expect("checks");
        let selects_nothing = o.findings.into_iter().filter(|f| f.code == Code::ServerSelectsNothing);
        selects_nothing.map(|f| (f.resource.map(|r| r.name).unwrap_or_default(), f.severity)).collect()
    }

    #[test]
    fn servers_on_control_plane_pods_the_repository_does_not_hold_are_not_certain() {
        // Only the selector every identity pod matches; a misspelt component and
        // a label the control plane's pods do not carry stay warnings.
        let got = severities(SERVERS);
        let want = [("identity-admin", Severity::Info), ("typo", Severity::Warning), ("app", Severity::Warning)];
        assert_eq!(got, want.map(|(n, s)| (n.to_owned(), s)));
        // With the control plane in the repository, what it holds is the truth.
        let identity = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: linkerd-destination, namespace: linkerd}\nspec:\n  selector: {matchLabels: {linkerd.io/control-plane-component: destination}}\n  template:\n    metadata: {labels: {linkerd.io/control-plane-component: destination}}\n    spec: {containers: [{name: d, image: d}]}\n";
        let got = severities(&format!("{SERVERS}{identity}"));
        assert!(got.iter().all(|(_, s)| *s == Severity::Warning), "{got:?}");
    }
}

#[cfg(test)]
mod outside_tests {
    use crate::findings::{Code, Severity};
    use crate::load::Input;
    use crate::pipeline::{Options, check};
    use crate::settings::{OutsideCreator, SettingsFile};

    #[test]
    fn a_namespace_declared_created_outside_is_like_an_unrendered_release() {
        let text = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: face, namespace: faces}\nspec: {podSelector: {matchLabels: {service: face}}, port: http}\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: other, namespace: shop}\nspec: {podSelector: {matchLabels: {app: x}}, port: http}\n";
        let input = Input::Text { name: "s.yaml".into(), text: text.into() };
        let by = OutsideCreator { namespace: "faces".into(), by: "helm install faces".into() };
        let overrides = SettingsFile { created_outside: vec![by], ..SettingsFile::default() };
        let o = check(&input, &Options { overrides, ..Options::default() }).expect("checks");
        let got: Vec<_> = o
            .findings
            .iter()
            .filter(|f| f.code == Code::ServerSelectsNothing)
            .map(|f| (f.resource.as_ref().map(|r| r.name.as_str()), f.severity))
            .collect();
        assert_eq!(got, [(Some("face"), Severity::Info), (Some("other"), Severity::Warning)]);
        assert!(o.findings[0].message.contains("may be created by helm install faces (createdOutside in meshc.yaml)"));
    }
}
