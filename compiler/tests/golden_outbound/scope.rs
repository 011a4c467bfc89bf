//! Scopes: the part of a workload's outbound config that the tokens of an
//! assertion line walk to (`svc/…`, `route[…]`, `rule[…]`, …), and the
//! fields each scope has. Anything else is an error, never a skip.

use super::render::{self, RouteView, RuleView};
use super::value::Value;
use mesh_proxy_api::outbound::{
    Backend, DstOverride, FailureAccrual, OutboundPort, OutboundService, Profile, ProfileRoute, Retry, Timeouts,
};
use mesh_proxy_api::outbound::{ConnectionRoute, route_connection};
use mesh_proxy_api::{HttpRequest, Outbound, OutboundRoute, RuleBackends, route_outbound};

pub enum Scope<'a> {
    Workload(&'a Outbound),
    Service(&'a OutboundService),
    Port(&'a OutboundService, &'a OutboundPort),
    Route(RouteView<'a>),
    Rule(RuleView<'a>),
    Backend(&'a Backend),
    Profile(&'a Profile),
    ProfileRoute(&'a ProfileRoute),
    Dst(&'a DstOverride),
    /// What the client proxy does with one request to a Service port.
    Request(OutboundRoute<'a>),
    /// What the client proxy does with one connection (by its SNI) to a Service port.
    Connection(ConnectionRoute<'a>),
}

/// `name[arg]` → (`name`, `Some(arg)`); any other token → (token, `None`).
pub fn split_arg(token: &str) -> (&str, Option<&str>) {
    match token.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((name, arg)) => (name, Some(arg)),
        None => (token, None),
    }
}

impl<'a> Scope<'a> {
    /// The scope `token` names inside this one.
    pub fn enter(self, token: &str) -> Result<Scope<'a>, String> {
        let (name, arg) = split_arg(token);
        match (self, name, arg) {
            (Scope::Workload(o), svc, None) if svc.starts_with("svc/") => service(o, svc),
            (Scope::Service(s), "profile", None) => s
                .profile
                .as_ref()
                .map(Scope::Profile)
                .ok_or_else(|| format!("svc/{}/{} has no ServiceProfile", s.namespace, s.name)),
            (Scope::Port(s, p), "route", Some(arg)) => render::route_named(s, p, arg).map(Scope::Route),
            (Scope::Port(s, p), "request", Some(arg)) => {
                let req = request(arg)?;
                route_outbound(s, p.port, &req).map(Scope::Request).ok_or_else(|| "no such port".to_string())
            }
            (Scope::Port(s, p), "connection", Some(arg)) => {
                let sni = (arg != "-").then_some(arg);
                route_connection(s, p.port, sni).map(Scope::Connection).ok_or_else(|| "no such port".to_string())
            }
            (Scope::Connection(ConnectionRoute::Route { backends, .. }), "backend", Some(arg)) => {
                backend(backends, arg)
            }
            (Scope::Route(r), "rule", Some(arg)) => {
                let i: usize = arg.parse().map_err(|_| format!("rule[{arg}]: not an index"))?;
                let n = r.rules.len();
                r.rules.into_iter().nth(i).map(Scope::Rule).ok_or_else(|| format!("rule[{i}]: the route has {n} rules"))
            }
            (Scope::Rule(r), "backend", Some(arg)) => backend(r.backends, arg),
            (Scope::Request(OutboundRoute::Rule { target, .. }), "backend", Some(arg)) => match target.backends {
                RuleBackends::Weighted(b) => backend(b, arg),
                RuleBackends::Service { .. } => Err("the default route has no weighted backends".into()),
            },
            (Scope::Profile(p), "route", Some(arg)) => {
                p.routes.iter().find(|r| r.name == arg).map(Scope::ProfileRoute).ok_or_else(|| {
                    format!("the profile has no route `{arg}` (it has {})", Value::list(profile_route_names(p)))
                })
            }
            (Scope::Profile(p), "dst", Some(arg)) => p
                .dst_overrides
                .iter()
                .find(|d| d.authority == arg)
                .map(Scope::Dst)
                .ok_or_else(|| format!("the profile has no dstOverride for `{arg}`")),
            (scope, _, _) => Err(format!("`{token}` is not a scope inside {}", scope.kind())),
        }
    }

    /// The value of `field` in this scope.
    pub fn field(&self, field: &str) -> Result<Value, String> {
        let (name, arg) = split_arg(field);
        let unknown = || format!("{} has no field `{field}`", self.kind());
        match self {
            Scope::Workload(o) => match field {
                "services" => Ok(Value::list(o.services.iter().map(|s| format!("{}/{}", s.namespace, s.name)))),
                "default-opaque-ports" => Ok(Value::list(o.default_opaque_ports.iter().map(render::port_range))),
                _ => Err(unknown()),
            },
            Scope::Service(s) => service_field(s, field).ok_or_else(unknown)?,
            Scope::Port(_, p) => match field {
                "protocol" => Ok(Value::Text(render::protocol(p.protocol).into())),
                "routes" => Ok(Value::list(render::route_names(p))),
                "tls-routes" => Ok(Value::list(p.tls_routes.iter().map(|r| r.meta.name.clone()))),
                "tcp-route" => Ok(Value::Text(p.tcp_route.as_ref().map_or("none".into(), |r| r.meta.name.clone()))),
                _ => Err(unknown()),
            },
            Scope::Route(r) => match field {
                "group" => Ok(Value::Text(r.meta.group.clone().unwrap_or_else(|| "none".into()))),
                "hostnames" => Ok(Value::list(r.hostnames.iter().map(render::host))),
                "rules" => Ok(Value::Int(r.rules.len() as u64)),
                _ => Err(unknown()),
            },
            Scope::Rule(r) => match field {
                "matches" => Ok(Value::Text(r.matches.clone())),
                "backends" => Ok(Value::list(r.backends.iter().map(|b| render::target(&b.target)))),
                "filters" => Ok(Value::Int(r.filters.len() as u64)),
                _ => timeouts_or_retry(r.timeouts, r.retry, field).ok_or_else(unknown)?,
            },
            Scope::Backend(b) if field == "weight" => Ok(Value::Int(b.weight.into())),
            Scope::Profile(p) => profile_field(p, field).ok_or_else(unknown),
            Scope::ProfileRoute(r) => match (name, arg) {
                ("retryable", None) => Ok(Value::Bool(r.is_retryable)),
                ("timeout", None) => Ok(Value::Duration(r.timeout_ms)),
                ("response", Some(status)) => {
                    let status: u16 = status.parse().map_err(|_| format!("response[{status}]: not a status"))?;
                    let failure = Profile::is_failure(Some(r), status);
                    Ok(Value::Text(if failure { "failure" } else { "success" }.into()))
                }
                _ => Err(unknown()),
            },
            Scope::Dst(d) if field == "weight" => Ok(Value::Int(d.weight.into())),
            Scope::Request(outcome) => request_field(outcome, field).ok_or_else(unknown)?,
            Scope::Connection(c) => connection_field(c, field).ok_or_else(unknown),
            _ => Err(unknown()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Scope::Workload(_) => "a workload",
            Scope::Service(_) => "a Service",
            Scope::Port(..) => "a Service port",
            Scope::Route(_) => "a route",
            Scope::Rule(_) => "a rule",
            Scope::Backend(_) => "a backend",
            Scope::Profile(_) => "a ServiceProfile",
            Scope::ProfileRoute(_) => "a profile route",
            Scope::Dst(_) => "a dstOverride",
            Scope::Request(_) => "a request",
            Scope::Connection(_) => "a connection",
        }
    }
}

/// `svc/NS/NAME` or `svc/NS/NAME:PORT`: a Service the config lists.
fn service<'a>(o: &'a Outbound, token: &str) -> Result<Scope<'a>, String> {
    let (ns_name, port) = match token.rsplit_once(':') {
        Some((svc, port)) => (svc, Some(port.parse::<u16>().map_err(|_| format!("`{token}`: bad port"))?)),
        None => (token, None),
    };
    let (ns, name) = ns_name["svc/".len()..].split_once('/').ok_or_else(|| format!("`{token}`: want svc/NS/NAME"))?;
    let s = o.service(ns, name).ok_or_else(|| format!("{ns_name} is not listed (its policy is the default)"))?;
    let Some(port) = port else { return Ok(Scope::Service(s)) };
    let p = s.ports.iter().find(|p| p.port == port).ok_or_else(|| format!("{ns_name} has no port {port}"))?;
    Ok(Scope::Port(s, p))
}

/// `METHOD TARGET [NAME=VALUE]...`: a request with those headers.
fn request(arg: &str) -> Result<HttpRequest, String> {
    let mut words = arg.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(format!("request[{arg}]: want METHOD PATH [NAME=VALUE]..."));
    };
    words.try_fold(HttpRequest::new(method, target), |req, header| {
        let (n, v) = header.split_once('=').ok_or_else(|| format!("request[{arg}]: `{header}` is not NAME=VALUE"))?;
        Ok(req.with_header(n, v))
    })
}

fn backend<'a>(backends: &'a [Backend], target: &str) -> Result<Scope<'a>, String> {
    backends.iter().find(|b| render::target(&b.target) == target).map(Scope::Backend).ok_or_else(|| {
        format!("no backend `{target}` (there are {})", Value::list(backends.iter().map(|b| render::target(&b.target))))
    })
}

fn service_field(s: &OutboundService, field: &str) -> Option<Result<Value, String>> {
    Some(Ok(match field {
        "ports" => Value::list(s.ports.iter().map(|p| p.port.to_string())),
        "profile" => Value::Text(s.profile.as_ref().map_or_else(|| "none".into(), |p| p.name.clone())),
        f if f == "accrual" || f.starts_with("accrual.") => return Some(accrual_field(s.failure_accrual.as_ref(), f)),
        _ => return timeouts_or_retry(&s.timeouts, s.retry.as_ref(), field),
    }))
}

/// `timeouts.request|response|idle`, `retry` (`none`/`set`), `retry.limit`,
/// `retry.statuses`, `retry.grpc-codes`, `retry.timeout`; `None` for others.
fn timeouts_or_retry(t: &Timeouts, retry: Option<&Retry>, field: &str) -> Option<Result<Value, String>> {
    let timeout = match field {
        "timeouts.request" => Some(t.request_ms),
        "timeouts.response" => Some(t.response_ms),
        "timeouts.idle" => Some(t.idle_ms),
        _ => None,
    };
    if let Some(ms) = timeout {
        return Some(Ok(Value::Duration(ms)));
    }
    if field == "retry" {
        return Some(Ok(Value::Text(if retry.is_some() { "set" } else { "none" }.into())));
    }
    let sub = field.strip_prefix("retry.")?;
    let Some(r) = retry else { return Some(Err(format!("`{field}`: no retry policy applies (retry = none)"))) };
    Some(Ok(match sub {
        "limit" => Value::Int(r.limit.into()),
        // Sets: a response is retried if any element matches, so sorted.
        "statuses" => Value::list(sorted(r.http_statuses.iter().map(|s| render::range(s.min, s.max)))),
        "grpc-codes" => Value::list(sorted(r.grpc_codes.iter().cloned())),
        "timeout" => Value::Duration(r.timeout_ms),
        _ => return None,
    }))
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.collect();
    items.sort();
    items
}

fn accrual_field(accrual: Option<&FailureAccrual>, field: &str) -> Result<Value, String> {
    let kind = match accrual {
        None => "none",
        Some(FailureAccrual::Consecutive { .. }) => "consecutive",
        Some(FailureAccrual::Unified { .. }) => "unified",
    };
    if field == "accrual" {
        return Ok(Value::Text(kind.into()));
    }
    let missing = || format!("`{field}`: the Service's failure accrual is {kind}");
    let (max_failures, backoff) = match accrual.ok_or_else(missing)? {
        FailureAccrual::Consecutive { max_failures, backoff }
        | FailureAccrual::Unified { max_failures, backoff, .. } => (max_failures, backoff),
    };
    Ok(match (field, accrual) {
        ("accrual.max-failures", _) => Value::Int((*max_failures).into()),
        ("accrual.min-penalty", _) => Value::Duration(Some(backoff.min_penalty_ms)),
        ("accrual.max-penalty", _) => Value::Duration(Some(backoff.max_penalty_ms)),
        ("accrual.jitter", _) => Value::Ratio(backoff.jitter_ppm),
        ("accrual.success-rate-threshold", Some(FailureAccrual::Unified { success_rate_threshold_ppm: t, .. })) => {
            Value::Ratio(*t)
        }
        ("accrual.success-rate-window", Some(FailureAccrual::Unified { success_rate_window_ms: w, .. })) => {
            Value::Duration(Some(*w))
        }
        ("accrual.success-rate-min-requests", Some(FailureAccrual::Unified { success_rate_min_requests: n, .. })) => {
            Value::Int((*n).into())
        }
        _ => return Err(format!("a Service with {kind} failure accrual has no field `{field}`")),
    })
}

fn profile_route_names(p: &Profile) -> impl Iterator<Item = String> + '_ {
    p.routes.iter().map(|r| r.name.clone())
}

fn profile_field(p: &Profile, field: &str) -> Option<Value> {
    let b = &p.retry_budget;
    Some(match field {
        "routes" => Value::list(profile_route_names(p)),
        "dst-overrides" => Value::list(p.dst_overrides.iter().map(|d| d.authority.clone())),
        "retry-budget.ratio" => Value::Ratio(b.retry_ratio_ppm),
        "retry-budget.min-per-second" => Value::Int(b.min_retries_per_second.into()),
        "retry-budget.ttl" => Value::Duration(Some(b.ttl_ms)),
        _ => return None,
    })
}

fn request_field(outcome: &OutboundRoute, field: &str) -> Option<Result<Value, String>> {
    let text = |s: &str| Some(Ok(Value::Text(s.to_string())));
    match (field, outcome) {
        ("outcome", _) => return text(render::outcome(outcome)),
        ("status", _) => return text(&outcome.local_status().map_or_else(|| "none".into(), |s| s.to_string())),
        ("route", OutboundRoute::Rule { route, .. }) => return text(&route.name),
        ("route", OutboundRoute::Profile { route, .. }) => return text(route.map_or("none", |r| r.name.as_str())),
        ("rule", OutboundRoute::Rule { selection, .. }) => return Some(Ok(Value::Int(selection.rule as u64))),
        ("route" | "rule", other) => {
            return Some(Err(format!("`{field}`: the request's outcome is {}", render::outcome(other))));
        }
        _ => {}
    }
    let target = match outcome {
        OutboundRoute::Rule { target, .. } | OutboundRoute::Default { target } => target,
        other => return Some(Err(format!("`{field}`: the request's outcome is {}", render::outcome(other)))),
    };
    if field == "backends" {
        return Some(Ok(Value::list(render::rule_backends(&target.backends))));
    }
    timeouts_or_retry(target.timeouts, target.retry, field)
}

/// `outcome` (`requests`/`service`/`route`/`no-route`), `route`, `backends`.
fn connection_field(c: &ConnectionRoute<'_>, field: &str) -> Option<Value> {
    let text = |s: &str| Some(Value::Text(s.to_owned()));
    match (field, c) {
        ("outcome", ConnectionRoute::Requests) => text("requests"),
        ("outcome", ConnectionRoute::Service { .. }) => text("service"),
        ("outcome", ConnectionRoute::Route { .. }) => text("route"),
        ("outcome", ConnectionRoute::NoRoute) => text("no-route"),
        ("route", ConnectionRoute::Route { route, .. }) => text(&route.name),
        ("route", _) => text("none"),
        ("backends", ConnectionRoute::Route { backends, .. }) => {
            Some(Value::list(backends.iter().map(|b| render::target(&b.target))))
        }
        ("backends", ConnectionRoute::Service { namespace, name, port }) => {
            Some(Value::list([format!("{namespace}/{name}:{port}")]))
        }
        ("backends", _) => Some(Value::list(Vec::<String>::new())),
        _ => None,
    }
}
