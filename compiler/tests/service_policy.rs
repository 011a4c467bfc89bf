//! Shared ServicePolicies (docs/semantics/outbound-sharing.md): one view
//! of a Service for every namespace (its producer routes), one per
//! namespace with consumer routes or a ServiceProfile of its own; every
//! workload's effective outbound policy is its namespace's view.

use mesh_proxy_api::service_policy::{Audience, effective_outbound};
use meshc::load::Input;
use meshc::lower::outbound::scope::{self, Scope};
use meshc::pipeline::{self, Options, Outcome};

/// Service shop/api with a producer route (/shop); namespace `web` adds a
/// consumer route (/web), namespace `ops` a ServiceProfile; `plain` has
/// neither. One meshed Deployment in each of web, ops and plain.
const REPO: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules: [{matches: [{path: {type: PathPrefix, value: /shop}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: web}
spec:
  parentRefs: [{group: "", kind: Service, name: api, namespace: shop, port: 80}]
  rules: [{matches: [{path: {type: PathPrefix, value: /web}}]}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: api.shop.svc.cluster.local, namespace: ops}
spec:
  routes:
  - name: list
    condition: {method: GET, pathRegex: /list}
"#;

fn deployment(ns: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, annotations: {{linkerd.io/inject: enabled}}}}\n\
         ---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: client, namespace: {ns}}}\nspec:\n  \
         selector: {{matchLabels: {{app: client}}}}\n  template:\n    metadata: {{labels: {{app: client}}}}\n    \
         spec:\n      serviceAccountName: client\n      containers: [{{name: app, image: example/client:1}}]\n"
    )
}

fn outcome() -> (tempfile::TempDir, Outcome) {
    let dir = tempfile::tempdir().unwrap();
    let text: String = std::iter::once(REPO.to_owned()).chain(["web", "ops", "plain"].map(deployment)).collect();
    std::fs::write(dir.path().join("repo.yaml"), text).unwrap();
    let o = pipeline::check(&Input::Path(dir.path().to_path_buf()), &Options::default()).unwrap();
    (dir, o)
}

#[test]
fn one_view_for_every_namespace_and_one_per_namespace_of_its_own() {
    let (_dir, o) = outcome();
    let scope = Scope::new(&o);
    let views: Vec<(&str, &Audience)> = scope.shared.iter().map(|p| (p.service.name.as_str(), &p.audience)).collect();
    let ns = |n: &str| Audience::Namespace { namespace: n.into() };
    assert_eq!(views, [("api", &Audience::AllNamespaces), ("api", &ns("ops")), ("api", &ns("web"))]);

    // What a client in each namespace composes: the producer route for
    // all, the consumer's beside it in web, the profile instead in ops.
    let routes = |client_ns: &str| {
        let out = effective_outbound(&scope.own(&o, client_ns), &scope.shared, client_ns);
        let svc = out.service("shop", "api").expect("every namespace sees the Service's policy").clone();
        let names: Vec<String> = svc.ports[0].http_routes.iter().map(|r| r.meta.name.clone()).collect();
        (names, svc.profile.is_some())
    };
    assert_eq!(routes("plain"), (vec!["producer".to_owned()], false));
    assert!(!routes("web").1);
    assert_eq!(routes("web").0.len(), 2, "producer and consumer routes are merged for web");
    assert_eq!(routes("ops"), (vec![], true), "ops' ServiceProfile replaces the routes there");
}

#[test]
fn every_config_enforces_its_namespace_view() {
    let (_dir, mut o) = outcome();
    scope::complete(&mut o);
    let si = o.outbound.find("shop", "api").unwrap();
    let mut seen = 0;
    for (c, w) in o.configs.iter().zip(&o.resolved.workloads) {
        let Some(c) = c else { continue };
        let want = o.outbound.service_for(si, &w.namespace);
        assert_eq!(c.outbound.service("shop", "api"), Some(&want), "{}", w.namespace);
        assert_eq!(c.outbound.service_policies, None, "analysis holds the composed policy, not a reference");
        seen += 1;
    }
    assert!(seen >= 3, "one meshed client per namespace");
}
