//! Unit tests of model::values: each rule against the CRD text it follows.

use super::*;

fn findings(api_version: &str, kind: &str, spec: &str) -> Vec<String> {
    let text = format!("apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: r\nspec:\n{spec}");
    let node = std::sync::Arc::new(crate::load::yaml::parse_documents(&text).expect("yaml").remove(0));
    let raw = RawObject { source: 0, api_version: api_version.into(), kind: kind.into(), node, rendered_in: None };
    let (group, version) = super::super::split_api_version(api_version);
    check(&raw, group, version).into_iter().map(|f| format!("{}: {}", f.span.line, f.message)).collect()
}

#[test]
fn a_match_outside_the_enums_is_rejected_at_its_line() {
    let spec = "  rules:\n  - matches:\n    - path: {type: Prefix, value: /}\n      method: get\n";
    let got = findings("gateway.networking.k8s.io/v1", "HTTPRoute", spec);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("8: HTTPRoute is invalid at spec.rules[0].matches[0].path.type: `Prefix`"), "{got:?}");
    assert!(got[1].starts_with("9: HTTPRoute is invalid at spec.rules[0].matches[0].method: `get`"), "{got:?}");
}

#[test]
fn reference_names_ports_and_weights_follow_the_schema() {
    let spec = "  parentRefs:\n  - {name: web, kind: Service, group: core, port: 0}\n  rules:\n  - backendRefs:\n    - {name: web, port: 80, weight: 1000001, namespace: Shop}\n";
    let got = findings("gateway.networking.k8s.io/v1", "HTTPRoute", spec);
    let text = got.join("\n");
    assert!(text.contains("parentRefs[0].port: 0 is outside 1..=65535"), "{text}");
    assert!(text.contains("backendRefs[0].weight: 1000001"), "{text}");
    assert!(text.contains("backendRefs[0].namespace: `Shop` is not an RFC 1123 label"), "{text}");
    // `core` is a valid subdomain, as the schema's pattern is written.
    assert_eq!(got.len(), 3, "{text}");
}

#[test]
fn linkerd_routes_before_v1beta2_have_no_port_rules_and_fewer_filters() {
    let spec = "  parentRefs:\n  - {name: web, kind: Server, group: policy.linkerd.io}\n  rules:\n  - filters:\n    - type: URLRewrite\n      urlRewrite: {hostname: example.com}\n";
    let got = findings("policy.linkerd.io/v1beta1", "HTTPRoute", spec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("`URLRewrite` is not one of RequestHeaderModifier, RequestRedirect"), "{got:?}");
    assert!(findings("gateway.networking.k8s.io/v1", "HTTPRoute", spec).is_empty());
}

#[test]
fn fields_a_crd_lacks_are_unknown_fields() {
    let spec = "  rules:\n  - name: r0\n    filters:\n    - type: RequestHeaderModifier\n      urlRewrite: {}\n";
    let text = format!("apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n{spec}");
    let node = crate::load::yaml::parse_documents(&text).expect("yaml").remove(0);
    let raw = RawObject {
        source: 0,
        api_version: "policy.linkerd.io/v1beta3".into(),
        kind: "HTTPRoute".into(),
        node: std::sync::Arc::new(node),
        rendered_in: None,
    };
    let got: Vec<String> =
        absent_fields(&raw, "policy.linkerd.io").iter().map(|f| format!("{}: {}", f.span.line, f.message)).collect();
    assert_eq!(
        got,
        [
            "7: HTTPRoute has no field `spec.rules[0].name` (unknown field `name`)",
            "10: HTTPRoute has no field `spec.rules[0].filters[0].urlRewrite` (unknown field `urlRewrite`)",
        ]
    );
    // The Gateway API HTTPRoute has both.
    assert!(absent_fields(&raw, "gateway.networking.k8s.io").is_empty());
}

#[test]
fn a_gateway_filter_sets_the_field_of_its_type_and_no_other() {
    let spec = "  rules:\n  - filters:\n    - type: ExtensionRef\n      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /}}\n";
    let got = findings("gateway.networking.k8s.io/v1", "HTTPRoute", spec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("`urlRewrite` must not be set for type ExtensionRef"), "{got:?}");
    assert!(got[0].contains("`extensionRef` must be set for type ExtensionRef"), "{got:?}");
}

#[test]
fn a_v1alpha1_server_selects_pods_by_exactly_one_of_labels_and_expressions() {
    let spec = "  port: 80\n  podSelector: {}\n";
    let got = findings("policy.linkerd.io/v1alpha1", "Server", spec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("exactly one of matchExpressions, matchLabels must be set (0 are)"), "{got:?}");
    // v1beta1's CRD has no `oneOf` (the API server accepts the empty
    // selector, found by the schema oracle's mutant 373), nor later ones.
    assert!(findings("policy.linkerd.io/v1beta1", "Server", spec).is_empty());
    assert!(findings("policy.linkerd.io/v1beta3", "Server", spec).is_empty());
}

#[test]
fn stream_route_references_follow_the_schema() {
    let spec =
        "  parentRefs: [{kind: \"@@ bad @@\", name: web, port: 80}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]";
    let got = findings("gateway.networking.k8s.io/v1alpha2", "TCPRoute", spec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("spec.parentRefs[0].kind"), "{got:?}");
}

#[test]
fn valid_values_pass() {
    let spec = "  hostnames: ['*.example.com']\n  rules:\n  - matches:\n    - path: {type: PathPrefix, value: /}\n      headers: [{name: x-b3, value: '1', type: Exact}]\n      method: GET\n";
    assert!(findings("gateway.networking.k8s.io/v1", "HTTPRoute", spec).is_empty());
}

#[test]
fn gateway_cel_rules_and_the_duration_pattern_apply_to_gateway_routes_only() {
    let spec = "  rules:\n  - backendRefs:\n    - {name: web}\n    timeouts: {request: 2.5s}\n    filters:\n    - type: RequestMirror\n      requestMirror: {backendRef: {name: mirror}}\n    - type: URLRewrite\n      urlRewrite: {hostname: Web, path: {type: ReplacePrefix}}\n";
    let got = findings("gateway.networking.k8s.io/v1", "HTTPRoute", spec);
    let text = got.join("\n");
    assert!(
        text.contains(
            "8: HTTPRoute is invalid at spec.rules[0].backendRefs[0]: the reference to Service `web` has no port"
        ),
        "{text}"
    );
    assert!(text.contains("9: HTTPRoute is invalid at spec.rules[0].timeouts.request: `2.5s` should match"), "{text}");
    assert!(
        text.contains("at spec.rules[0].filters[0].requestMirror.backendRef: the reference to Service `mirror`"),
        "{text}"
    );
    assert!(text.contains("at spec.rules[0].filters[1].urlRewrite.hostname: `Web` is not a DNS subdomain"), "{text}");
    assert!(text.contains("at spec.rules[0].filters[1].urlRewrite.path.type: `ReplacePrefix` is not one of"), "{text}");
    assert_eq!(got.len(), 5, "{text}");
    // Linkerd's HTTPRoute has no such rules: a port-less backend is the
    // outbound index's (backend-unresolved), its timeouts Go durations.
    let linkerd = "  rules:\n  - backendRefs:\n    - {name: web}\n    timeouts: {request: 2.5s}\n";
    assert!(findings("policy.linkerd.io/v1beta3", "HTTPRoute", linkerd).is_empty());
}

#[test]
fn a_service_profile_weight_is_a_quantity() {
    let spec = "  dstOverrides:\n  - {authority: a, weight: 500m}\n  - {authority: b, weight: 7}\n  - {authority: c, weight: 'x'}\n";
    let got = findings("linkerd.io/v1alpha2", "ServiceProfile", spec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "9: ServiceProfile is invalid at spec.dstOverrides[2].weight: `x` is not a Kubernetes quantity"
        ),
        "{got:?}"
    );
}

#[test]
fn a_server_authorization_names_servers_one_way_and_clients_by_pattern() {
    let spec = "  server: {name: web-http, selector: {matchLabels: {a: b}}}\n  client:\n    meshTLS:\n      identities: ['*', '*.cluster.local', 'web.shop.serviceaccount.identity.linkerd.cluster.local', 'Web']\n      serviceAccounts: [{name: '@@ x', namespace: shop}, {name: web}]\n";
    let got = findings("policy.linkerd.io/v1beta1", "ServerAuthorization", spec);
    let text = got.join("\n");
    assert!(text.contains("6: ServerAuthorization is invalid at spec.server: exactly one of name, selector"), "{text}");
    assert!(text.contains("at spec.client.meshTLS.identities[3]: `Web` is not a proxy identity"), "{text}");
    assert!(text.contains("at spec.client.meshTLS.serviceAccounts[0].name: `@@ x` is not an RFC 1123 label"), "{text}");
    assert_eq!(got.len(), 3, "{text}");
    // The pattern has no length bound (a Label rule would stop at 63).
    let long = format!("  server: {{name: {}}}\n  client: {{unauthenticated: true}}\n", "a".repeat(70));
    assert!(findings("policy.linkerd.io/v1beta1", "ServerAuthorization", &long).is_empty());
}
