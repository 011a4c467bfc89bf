//! The Gateway API CRDs' CEL rules (`x-kubernetes-validations`) and the
//! duration pattern that model::values applies. The API server evaluates
//! them after defaulting, so a field the schema defaults (a backendRef's
//! `group` "" and `kind` "Service") counts as written with its default.

use crate::load::yaml::{Node, Value};

/// `(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true`
/// ("Must have port for Service reference"), on every backendRef of
/// HTTPRoute, GRPCRoute, TLSRoute and TCPRoute and on a RequestMirror
/// filter's backendRef.
pub fn service_port(backend: &Node) -> Option<String> {
    let group = backend.get("group").and_then(Node::as_str).unwrap_or("");
    let kind = backend.get("kind").and_then(Node::as_str).unwrap_or("Service");
    let name = backend.get("name").and_then(Node::as_str).unwrap_or("");
    (group.is_empty() && kind == "Service" && backend.get("port").is_none())
        .then(|| format!("the reference to Service `{name}` has no port (Must have port for Service reference)"))
}

/// `!(has(self.request) && has(self.backendRequest) && duration(self.request)
/// != duration('0s') && duration(self.backendRequest) > duration(self.request))`
/// on an HTTPRoute rule's `timeouts`. A value the pattern refuses is
/// reported by the pattern alone.
pub fn timeout_order(timeouts: &Node) -> Option<String> {
    let ms = |field: &str| timeouts.get(field).and_then(Node::as_str).and_then(gateway_duration_ms);
    let (request, backend) = (ms("request")?, ms("backendRequest")?);
    (request != 0 && backend > request).then(|| {
        "backendRequest timeout cannot be longer than request timeout (the CRD's rule; a request timeout of 0s \
         disables the check)"
            .to_owned()
    })
}

/// The four CEL rules on a RequestRedirect's or URLRewrite's `path`: type
/// `ReplaceFullPath` has `replaceFullPath` and only it, type
/// `ReplacePrefixMatch` has `replacePrefixMatch` and only it.
pub fn path_modifier(path: &Node) -> Option<String> {
    let ty = path.get("type").and_then(Node::as_str)?;
    let mut wrong = Vec::new();
    for (want, field) in [("ReplaceFullPath", "replaceFullPath"), ("ReplacePrefixMatch", "replacePrefixMatch")] {
        match (ty == want, path.get(field).is_some()) {
            (true, false) => wrong.push(format!("{field} must be specified when type is set to '{want}'")),
            (false, true) => wrong.push(format!("type must be '{want}' when {field} is set")),
            _ => {}
        }
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// The CEL rules on a Gateway API filter list: a header modifier (and, on
/// an HTTPRoute, a RequestRedirect or URLRewrite) at most once, and not a
/// RequestRedirect with a URLRewrite. `http`: an HTTPRoute's list.
pub fn filter_list(filters: &Node, http: bool) -> Option<String> {
    let Value::Seq(items) = &filters.value else { return None };
    let types: Vec<&str> = items.iter().filter_map(|f| f.get("type").and_then(Node::as_str)).collect();
    let count = |t: &str| types.iter().filter(|x| **x == t).count();
    let once: &[&str] = if http {
        &["RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"]
    } else {
        &["RequestHeaderModifier", "ResponseHeaderModifier"]
    };
    let mut wrong: Vec<String> =
        once.iter().filter(|t| count(t) > 1).map(|t| format!("{t} filter cannot be repeated")).collect();
    if http && count("RequestRedirect") > 0 && count("URLRewrite") > 0 {
        wrong.push(
            "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both"
                .to_owned(),
        );
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// The CEL rules on a Gateway API HTTPRoute rule: no RequestRedirect with
/// backendRefs, and a redirect or rewrite by `replacePrefixMatch` only on a
/// rule with exactly one match, a PathPrefix one (after defaulting: no
/// `matches` is one PathPrefix `/` match, a match without `path` or `type`
/// is PathPrefix).
pub fn http_rule(rule: &Node) -> Option<String> {
    let filters = match rule.get("filters").map(|f| &f.value) {
        Some(Value::Seq(items)) => &items[..],
        _ => &[],
    };
    let backends = matches!(rule.get("backendRefs").map(|b| &b.value), Some(Value::Seq(b)) if !b.is_empty());
    let mut wrong = Vec::new();
    if backends && filters.iter().any(|f| f.get("requestRedirect").is_some()) {
        wrong.push("RequestRedirect filter must not be used together with backendRefs".to_owned());
    }
    let one_prefix_match = match rule.get("matches").map(|m| &m.value) {
        None => true,
        Some(Value::Seq(matches)) => {
            matches.len() == 1
                && matches[0]
                    .get("path")
                    .and_then(|p| p.get("type"))
                    .and_then(Node::as_str)
                    .is_none_or(|t| t == "PathPrefix")
        }
        Some(_) => return None,
    };
    for (field, name) in [("requestRedirect", "RequestRedirect"), ("urlRewrite", "URLRewrite")] {
        let by_prefix = |f: &&Node| {
            f.get(field).and_then(|m| m.get("path")).is_some_and(|p| {
                p.get("type").and_then(Node::as_str) == Some("ReplacePrefixMatch")
                    && p.get("replacePrefixMatch").is_some()
            })
        };
        if filters.iter().filter(by_prefix).count() == 1 && !one_prefix_match {
            wrong.push(format!(
                "When using {name} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"
            ));
        }
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// The Gateway API duration pattern `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, in
/// milliseconds (what CEL's `duration()` reads it as); None when the
/// pattern refuses it. Stricter than Go's durations: no fractions, no
/// `us` or `ns`, at most five digits per part and four parts.
pub fn gateway_duration_ms(s: &str) -> Option<u64> {
    let mut rest = s;
    let mut total = 0u64;
    let mut parts = 0;
    while !rest.is_empty() {
        if parts == 4 {
            return None;
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=5).contains(&digits) {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        let (scale, len) = match tail.as_bytes() {
            [b'm', b's', ..] => (1, 2),
            [b'h', ..] => (3_600_000, 1),
            [b'm', ..] => (60_000, 1),
            [b's', ..] => (1_000, 1),
            _ => return None,
        };
        total += n * scale;
        rest = &tail[len..];
        parts += 1;
    }
    (parts > 0).then_some(total)
}

/// A Kubernetes quantity field (`x-kubernetes-int-or-string` with the
/// quantity pattern): an integer, or a string the pattern accepts.
pub fn quantity(node: &Node) -> Option<String> {
    match &node.value {
        Value::Int(_) | Value::Null => None,
        // The API server's JSON reading takes a float without a fraction as an integer.
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => None,
        Value::Str(s) if super::quantity::matches_crd_pattern(s) => None,
        Value::Str(s) => Some(format!("`{s}` is not a Kubernetes quantity (an integer, or `500m`, `0.5`, `1k`, ...)")),
        _ => Some("must be an integer or a quantity string".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(yaml: &str) -> Node {
        crate::load::yaml::parse_documents(yaml).expect("yaml").remove(0)
    }

    #[test]
    fn gateway_durations_follow_the_pattern() {
        assert_eq!(gateway_duration_ms("10s"), Some(10_000));
        assert_eq!(gateway_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(gateway_duration_ms("250ms"), Some(250));
        assert_eq!(gateway_duration_ms("0s"), Some(0));
        assert_eq!(gateway_duration_ms("1h1m1s1ms"), Some(3_661_001));
        assert_eq!(gateway_duration_ms("99999ms"), Some(99_999));
        for bad in ["2.5s", "0", "10", "1d", "100000s", "1h1m1s1ms1h", "", "1us", "-1s", "1S", "s", "1 s"] {
            assert_eq!(gateway_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_service_backend_needs_a_port_after_defaulting() {
        assert!(service_port(&node("{name: api}")).is_some());
        assert!(service_port(&node("{name: api, group: '', kind: Service}")).is_some());
        assert!(service_port(&node("{name: api, port: 80}")).is_none());
        // Another kind or group: the rule does not apply.
        assert!(service_port(&node("{name: api, group: policy.linkerd.io, kind: EgressNetwork}")).is_none());
        assert!(service_port(&node("{name: api, group: core, kind: Service}")).is_none());
    }

    #[test]
    fn a_backend_request_timeout_is_no_longer_than_the_request_timeout() {
        assert!(timeout_order(&node("{request: 1s, backendRequest: 2s}")).is_some());
        assert!(timeout_order(&node("{request: 2s, backendRequest: 2000ms}")).is_none());
        assert!(timeout_order(&node("{request: 0s, backendRequest: 2s}")).is_none());
        assert!(timeout_order(&node("{backendRequest: 2s}")).is_none());
    }

    #[test]
    fn a_path_modifier_sets_the_field_of_its_type_only() {
        assert!(path_modifier(&node("{type: ReplaceFullPath, replaceFullPath: /x}")).is_none());
        assert!(path_modifier(&node("{type: ReplacePrefixMatch}")).is_some());
        let both = path_modifier(&node("{type: ReplaceFullPath, replacePrefixMatch: /x}")).unwrap_or_default();
        assert!(both.contains("replaceFullPath must be specified"), "{both}");
        assert!(both.contains("type must be 'ReplacePrefixMatch'"), "{both}");
    }

    #[test]
    fn filter_lists_repeat_no_filter_and_do_not_mix_redirects_with_rewrites() {
        let twice = node("[{type: RequestHeaderModifier}, {type: RequestHeaderModifier}]");
        assert!(
            filter_list(&twice, true).is_some_and(|m| m.contains("RequestHeaderModifier filter cannot be repeated"))
        );
        assert!(filter_list(&twice, false).is_some());
        let both = node("[{type: RequestRedirect}, {type: URLRewrite}]");
        assert!(filter_list(&both, true).is_some_and(|m| m.contains("but not both")));
        let mirrors = node("[{type: RequestMirror}, {type: RequestMirror}]");
        assert!(filter_list(&mirrors, true).is_none(), "mirrors may repeat");
    }

    #[test]
    fn an_http_rule_redirects_without_backends_and_by_prefix_on_one_prefix_match() {
        let redirect = "filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]";
        assert!(http_rule(&node(&format!("{{{redirect}}}"))).is_none(), "no matches: the default PathPrefix /");
        assert!(
            http_rule(&node(&format!("{{{redirect}, matches: [{{headers: [{{name: a, value: b}}]}}]}}"))).is_none()
        );
        let exact = format!("{{{redirect}, matches: [{{path: {{type: Exact, value: /v1}}}}]}}");
        assert!(http_rule(&node(&exact)).is_some_and(|m| m.contains("exactly one PathPrefix match")));
        let two = format!("{{{redirect}, matches: [{{path: {{value: /a}}}}, {{path: {{value: /b}}}}]}}");
        assert!(http_rule(&node(&two)).is_some());
        let with_backends = format!("{{{redirect}, backendRefs: [{{name: web, port: 80}}]}}");
        assert!(
            http_rule(&node(&with_backends)).is_some_and(|m| m.contains("must not be used together with backendRefs"))
        );
    }

    #[test]
    fn quantities_are_integers_or_pattern_strings() {
        assert!(quantity(&node("7")).is_none());
        assert!(quantity(&node("'500m'")).is_none());
        assert!(quantity(&node("'@@ Not/Matching @@'")).is_some());
        assert!(quantity(&node("0.5")).is_some(), "a YAML float is neither an integer nor a string");
        assert!(quantity(&node("{notAScalar: true}")).is_some());
        assert!(quantity(&node("2.0")).is_none());
    }
}
