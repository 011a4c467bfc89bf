//! ServiceProfiles (`linkerd.io/v1alpha2`, semantics reference §8.5): named
//! by the Service's FQDN, looked up in the client's namespace first, and,
//! when they have routes or dstOverrides, replacing every other outbound
//! policy for that Service.

use super::durations::parse_go;
use super::routes::{ServiceIndex, is_non_idempotent};
use crate::findings::{Code, Finding};
use crate::model::Resource;
use crate::model::profile::{
    ProfileRoute as SpecRoute, RequestMatch, ResponseClass as SpecClass, ResponseMatch, ServiceProfileSpec,
};
use crate::model::quantity;
use mesh_proxy_api::outbound::{
    DstOverride, Profile, ProfileRoute, RequestCondition, ResponseClass, ResponseCondition, RetryBudget, StatusRange,
};
use serde_json::Value;

/// A profile that applies: for Service `service`, to clients in `namespace`.
pub struct Lowered {
    pub service: usize,
    pub namespace: String,
    pub resource: usize,
    pub profile: Profile,
}

pub fn lower(
    ri: usize,
    r: &Resource,
    spec: &ServiceProfileSpec,
    services: &ServiceIndex,
    cluster_domain: &str,
    findings: &mut Vec<Finding>,
) -> Option<Lowered> {
    let name = r.name();
    let suffix = format!(".svc.{cluster_domain}");
    let Some((svc, svc_ns)) = name.strip_suffix(&suffix).and_then(|n| n.split_once('.')) else {
        let msg = format!(
            "{} is named `{name}`, not a Service FQDN `<service>.<namespace>{suffix}`; Linkerd never looks it up, so its routes, retries and timeouts do nothing",
            r.id
        );
        findings
            .push(Finding::new(Code::ServiceProfileName, r.span_at(&["metadata", "name"]), msg).resource(r.id.clone()));
        return None;
    };
    let Some(&service) = services.get(&(svc_ns.to_owned(), svc.to_owned())) else {
        let msg =
            format!("{} is for Service {svc_ns}/{svc}, which does not exist in the repository; it has no effect", r.id);
        findings
            .push(Finding::new(Code::ServiceProfileName, r.span_at(&["metadata", "name"]), msg).resource(r.id.clone()));
        return None;
    };
    if spec.routes.is_empty() && spec.dst_overrides.is_empty() {
        return None; // Linkerd keeps route/annotation policy for such profiles
    }
    let mut ctx = Ctx { r, findings };
    let routes: Vec<ProfileRoute> =
        spec.routes.iter().enumerate().filter_map(|(k, route)| ctx.route(k, route)).collect();
    let retry_budget = ctx.budget(spec);
    let dst_overrides = spec
        .dst_overrides
        .iter()
        .enumerate()
        .filter_map(|(k, d)| {
            let weight = ctx.quantity(k, &d.weight)?;
            Some(DstOverride { authority: d.authority.clone(), weight })
        })
        // The proxy drops zero-weight overrides (`convert_dst_override`).
        .filter(|d: &DstOverride| d.weight > 0)
        .collect::<Vec<_>>();
    if routes.is_empty() && dst_overrides.is_empty() {
        return None; // no targets and no routes: the proxy keeps the route/annotation policy
    }
    let profile =
        Profile { name: name.to_owned(), namespace: r.namespace().to_owned(), routes, retry_budget, dst_overrides };
    Some(Lowered { service, namespace: r.namespace().to_owned(), resource: ri, profile })
}

struct Ctx<'a> {
    r: &'a Resource,
    findings: &'a mut Vec<Finding>,
}

impl Ctx<'_> {
    fn report(&mut self, code: Code, path: &[&str], msg: String) {
        self.findings.push(Finding::new(code, self.r.span_at(path), msg).resource(self.r.id.clone()));
    }

    fn route(&mut self, k: usize, route: &SpecRoute) -> Option<ProfileRoute> {
        let ks = k.to_string();
        let condition = match condition(&route.condition) {
            Ok(c) => c,
            Err(why) => {
                let msg = format!(
                    "{} route {}: {why}; Linkerd rejects the condition and the route never matches",
                    self.r.id, route.name
                );
                self.report(Code::RouteNotAccepted, &["spec", "routes", &ks, "condition"], msg);
                return None;
            }
        };
        let timeout_ms = route.timeout.as_deref().and_then(|t| match parse_go(t) {
            Ok(ms) => Some(ms).filter(|ms| *ms > 0),
            Err(e) => {
                let msg = format!("{} route {} timeout: {e}; the route gets no timeout", self.r.id, route.name);
                self.report(Code::InvalidDuration, &["spec", "routes", &ks, "timeout"], msg);
                None
            }
        });
        let is_retryable = route.is_retryable.unwrap_or(false);
        if is_retryable
            && !is_grpc_call(&condition)
            && let Some(m) = methods(&condition).into_iter().find(|m| is_non_idempotent(m))
        {
            let msg = format!(
                "{} route {} is retryable and matches {m} requests: a {m} that reached the server and failed may be applied twice",
                self.r.id, route.name
            );
            self.report(Code::RetryNonIdempotent, &["spec", "routes", &ks, "isRetryable"], msg);
        }
        let response_classes = route
            .response_classes
            .iter()
            .enumerate()
            .filter_map(|(c, class)| self.response_class(&ks, &route.name, c, class))
            .collect();
        Some(ProfileRoute { name: route.name.clone(), condition, response_classes, is_retryable, timeout_ms })
    }

    /// A response class, or `None` with a finding: Linkerd's ServiceProfile
    /// validation (`linkerd profile`, the webhook) rejects an invalid condition.
    fn response_class(&mut self, ks: &str, route: &str, c: usize, class: &SpecClass) -> Option<ResponseClass> {
        match response_match(&class.condition) {
            Ok(condition) => Some(ResponseClass { condition, is_failure: class.is_failure.unwrap_or(false) }),
            Err(why) => {
                let msg = format!(
                    "{} route {route} responseClasses[{c}]: {why}; Linkerd rejects the ServiceProfile, and meshc leaves the class out, so these responses are not classified",
                    self.r.id
                );
                let cs = c.to_string();
                self.report(Code::SchemaViolation, &["spec", "routes", ks, "responseClasses", &cs, "condition"], msg);
                None
            }
        }
    }

    fn budget(&mut self, spec: &ServiceProfileSpec) -> RetryBudget {
        let Some(b) = &spec.retry_budget else { return RetryBudget::default() };
        let ttl_ms = parse_go(&b.ttl).unwrap_or_else(|e| {
            let msg = format!("{} retryBudget.ttl: {e}; Linkerd's default 10s applies", self.r.id);
            self.report(Code::InvalidDuration, &["spec", "retryBudget", "ttl"], msg);
            10_000
        });
        RetryBudget {
            retry_ratio_ppm: (b.retry_ratio.clamp(0.0, 1000.0) * 1e6).round() as u32,
            min_retries_per_second: u32::try_from(b.min_retries_per_second).unwrap_or(0),
            ttl_ms,
        }
    }

    /// A dstOverride's weight in decimilli (1 = 10000), as Linkerd's
    /// destination controller computes it (`toDstOverrides`:
    /// `uint32(Weight.MilliValue() * 10)`). The API server has already
    /// refused what is neither an integer nor a quantity (model::values).
    fn quantity(&mut self, k: usize, v: &Value) -> Option<u32> {
        let text = match v {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        let decimilli = quantity::parse(&text).map(|q| q.milli_value().and_then(|m| m.checked_mul(10)));
        let why = match decimilli {
            Ok(Some(w)) => match u32::try_from(w) {
                Ok(w) => return Some(w),
                Err(_) => format!(
                    "is {} in decimilli, outside 0..={}: Linkerd's uint32 conversion wraps it around to {}",
                    w,
                    u32::MAX,
                    w as u32
                ),
            },
            Ok(None) => "is too large for Linkerd's 64-bit milli value".to_owned(),
            Err(e) => {
                format!("cannot be read by Linkerd ({e}), so the destination controller cannot decode the profile")
            }
        };
        let msg = format!("{} dstOverrides weight `{text}` {why}; meshc leaves the override out", self.r.id);
        self.report(Code::InvalidAnnotation, &["spec", "dstOverrides", &k.to_string(), "weight"], msg);
        None
    }
}

/// A RequestMatch: several fields in one object are AND; at least one is required.
fn condition(m: &RequestMatch) -> Result<RequestCondition, String> {
    let mut all = Vec::new();
    if let Some(re) = &m.path_regex {
        mesh_proxy_api::validate_regex(re).map_err(|e| format!("pathRegex `{re}` is invalid: {e}"))?;
        all.push(RequestCondition::PathRegex(re.clone()));
    }
    if let Some(method) = &m.method {
        all.push(RequestCondition::Method(method.clone()));
    }
    if !m.all.is_empty() {
        all.push(RequestCondition::All(m.all.iter().map(condition).collect::<Result<_, _>>()?));
    }
    if !m.any.is_empty() {
        all.push(RequestCondition::Any(m.any.iter().map(condition).collect::<Result<_, _>>()?));
    }
    if let Some(not) = &m.not {
        // The CRD types `not` as a list, Linkerd's Go type as one match: a list negates any of its entries.
        let inner: Vec<RequestMatch> = match not {
            Value::Array(items) => items.iter().map(|i| serde_json::from_value(i.clone())).collect::<Result<_, _>>(),
            other => serde_json::from_value(other.clone()).map(|m| vec![m]),
        }
        .map_err(|e| format!("`not` is not a request match: {e}"))?;
        let inner = inner.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
        let negated = if inner.len() == 1 {
            inner.into_iter().next().unwrap_or(RequestCondition::Any(vec![]))
        } else {
            RequestCondition::Any(inner)
        };
        all.push(RequestCondition::Not(Box::new(negated)));
    }
    match all.len() {
        0 => Err("the condition sets none of pathRegex, method, all, any, not".to_owned()),
        1 => Ok(all.remove(0)),
        _ => Ok(RequestCondition::All(all)),
    }
}

/// Whether the condition names one gRPC method: `/package.Service/Method`,
/// as `linkerd profile --proto` writes it (`method: POST` and
/// `pathRegex: /pkg\.Service/Method`). Every gRPC call is an HTTP POST, so the
/// method says nothing about idempotency there (`ListAll` is a read).
fn is_grpc_call(c: &RequestCondition) -> bool {
    let paths: Vec<&str> = match c {
        RequestCondition::PathRegex(re) => vec![re],
        RequestCondition::All(cs) => cs
            .iter()
            .filter_map(|c| match c {
                RequestCondition::PathRegex(re) => Some(re.as_str()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    paths.iter().any(|re| grpc_method_path(&re.replace('\\', "")))
}

/// `/Service/Method` or `/a.b.Service/Method`, with protobuf's naming: the
/// service's last part and the method in UpperCamelCase.
fn grpc_method_path(path: &str) -> bool {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let upper = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else { return false };
    let service_name = service.rsplit('.').next().unwrap_or_default();
    service.split('.').all(ident) && ident(method) && upper(service_name) && upper(method)
}

/// Methods a condition requires positively (not under `not`).
fn methods(c: &RequestCondition) -> Vec<&str> {
    match c {
        RequestCondition::Method(m) => vec![m.as_str()],
        RequestCondition::All(cs) | RequestCondition::Any(cs) => cs.iter().flat_map(methods).collect(),
        RequestCondition::PathRegex(_) | RequestCondition::Not(_) => vec![],
    }
}

/// A response class's condition (its top level typed by the CRD schema),
/// validated as Linkerd validates it: at least one field, status bounds
/// within 100..=599 and min <= max.
fn response_match(m: &ResponseMatch) -> Result<ResponseCondition, String> {
    let status = m.status.as_ref().map(|s| status_range(s.min.map(i64::from), s.max.map(i64::from))).transpose()?;
    let nested = |items: &Option<Vec<serde_json::Map<String, Value>>>| -> Result<Vec<ResponseCondition>, String> {
        items.iter().flatten().map(|o| response_condition(&Value::Object(o.clone()))).collect()
    };
    let not = m.not.as_ref().map(|n| response_condition(&Value::Object(n.clone()))).transpose()?;
    combine(status, nested(&m.all)?, nested(&m.any)?, not)
}

/// A nested ResponseMatch, which the CRD schema leaves open: read as
/// Linkerd's validator reads it.
fn response_condition(v: &Value) -> Result<ResponseCondition, String> {
    let obj = v.as_object().ok_or("the condition is not a mapping")?;
    let status = match obj.get("status") {
        Some(s) => Some(status_range(s.get("min").and_then(Value::as_i64), s.get("max").and_then(Value::as_i64))?),
        None => None,
    };
    let list = |k: &str| -> Result<Vec<ResponseCondition>, String> {
        obj.get(k).and_then(Value::as_array).map_or(Ok(vec![]), |a| a.iter().map(response_condition).collect())
    };
    let not = obj.get("not").map(response_condition).transpose()?;
    combine(status, list("all")?, list("any")?, not)
}

/// The fields of one ResponseMatch, which must set at least one (several are AND).
fn combine(
    status: Option<StatusRange>,
    all_of: Vec<ResponseCondition>,
    any_of: Vec<ResponseCondition>,
    not: Option<ResponseCondition>,
) -> Result<ResponseCondition, String> {
    let mut all = Vec::new();
    all.extend(status.map(ResponseCondition::Status));
    if !all_of.is_empty() {
        all.push(ResponseCondition::All(all_of));
    }
    if !any_of.is_empty() {
        all.push(ResponseCondition::Any(any_of));
    }
    all.extend(not.map(|n| ResponseCondition::Not(Box::new(n))));
    match all.len() {
        0 => Err("a response match must set one of status, all, any, not".to_owned()),
        1 => Ok(all.remove(0)),
        _ => Ok(ResponseCondition::All(all)),
    }
}

#[cfg(test)]
mod grpc_path_tests {
    use super::grpc_method_path;

    #[test]
    fn grpc_method_paths_are_recognised() {
        assert!(grpc_method_path("/emojivoto.v1.EmojiService/ListAll"));
        assert!(grpc_method_path("/Greeter/SayHello"));
        assert!(grpc_method_path("/grpc.health.v1.Health/Check"));
        for rest in ["/books", "/books/list", "/books/[^/]*", "/api/v1/Orders", "/emojivoto.v1.EmojiService/", "/a/B"] {
            assert!(!grpc_method_path(rest), "{rest}");
        }
    }
}

/// Linkerd's validation lets 0 through as "not set" and checks the order
/// only of two set bounds; 0 is kept as written, as Linkerd sends it on.
fn status_range(min: Option<i64>, max: Option<i64>) -> Result<StatusRange, String> {
    let bound = |k: &str, v: Option<i64>, absent: u16| match v {
        None => Ok(absent),
        Some(n @ (0 | 100..=599)) => Ok(n as u16),
        Some(n) => Err(format!("status {k} {n} is not between 100 and 599")),
    };
    let (min, max) = (bound("min", min, 100)?, bound("max", max, 599)?);
    if min != 0 && max != 0 && max < min {
        return Err(format!("status max {max} is smaller than min {min}"));
    }
    Ok(StatusRange { min, max })
}

#[cfg(test)]
mod tests {
    use crate::findings::Code;
    use crate::load::Input;
    use crate::pipeline::{Options, check};

    const SERVICE: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  ports: [{port: 80}]\n";

    fn profile_with_classes(classes: &str) -> String {
        format!(
            "{SERVICE}---\napiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {{name: api.shop.svc.cluster.local, namespace: shop}}\nspec:\n  routes:\n  - name: get\n    condition: {{method: GET}}\n    responseClasses:\n{classes}"
        )
    }

    /// (line of the class's condition, code) for each finding about the profile.
    fn findings(classes: &str) -> Vec<(u32, Code)> {
        let input = Input::Text { name: "p.yaml".into(), text: profile_with_classes(classes) };
        let outcome = check(&input, &Options::default()).unwrap();
        outcome.findings.iter().filter(|f| f.span.line > 5).map(|f| (f.span.line, f.code)).collect()
    }

    #[test]
    fn invalid_response_class_conditions_are_findings() {
        // Line 15 is the first class's condition: 11 profile lines after the 5 Service lines, minus the `---`.
        assert_eq!(findings("    - condition: {status: {min: 500, max: 599}}\n      isFailure: true\n"), []);
        assert_eq!(findings("    - condition: {}\n      isFailure: true\n"), [(15, Code::SchemaViolation)]);
        assert_eq!(findings("    - condition: {status: {min: 600}}\n"), [(15, Code::SchemaViolation)]);
        assert_eq!(findings("    - condition: {status: {min: 503, max: 500}}\n"), [(15, Code::SchemaViolation)]);
        assert_eq!(findings("    - condition: {not: {any: [{}]}}\n"), [(15, Code::SchemaViolation)]);
    }
}
