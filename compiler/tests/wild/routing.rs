//! Client-side (outbound) outcomes, which MeshTest flows cannot state:
//! `routing.txt` lines of the form
//!
//! ```text
//! ID STAGE CLIENT_NS -> NS/SERVICE:PORT METHOD PATH [HEADER=VALUE...] => CLAUSE[; CLAUSE...]
//! ```
//!
//! run through the proxy's own `route_outbound` on the Service as a client
//! in `CLIENT_NS` sees it. `CLIENT_NS` written `unmeshed:NS` is a pod without
//! a proxy there: the line runs `meshc reach --to svc/...`'s query
//! (`meshc::query::svc`), and takes the clauses `no-proxy` (no route,
//! profile or retry applies: kube-proxy picks an endpoint) and `to`. Clauses:
//! - `to NAME:PORT=W ...`: the rule's backends, weights compared as shares;
//! - `route NAME`: the route that takes the request;
//! - `profile NAME`: a ServiceProfile governs the Service (its dstOverrides
//!   are what `to` compares, e.g. those a TrafficSplit became);
//! - `not-found`: routes exist and none matches (the proxy answers 404);
//! - `no-port`: the Service declares no such port (Linkerd denies it);
//! - `declared`: the Service declares the port (routes, profile or default);
//! - `retry 5xx limit N` / `retry CODE limit N` (gRPC status name);
//! - `timeout request DURATIONms`.

use mesh_proxy_api::HttpRequest;
use mesh_proxy_api::outbound::{
    Backend, BackendTarget, OutboundRoute, OutboundService, Profile, RouteTarget, RuleBackends, route_outbound,
};
use meshc::pipeline::Outcome;

pub struct Expectation {
    pub id: String,
    pub stage: String,
    pub line: usize,
    client_ns: String,
    service: (String, String),
    port: u16,
    request: HttpRequest,
    clauses: Vec<String>,
}

pub fn parse(text: &str) -> Result<Vec<Expectation>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        out.push(parse_line(body).map_err(|e| format!("routing.txt:{}: {e}", i + 1)).map(|mut x| {
            x.line = i + 1;
            x
        })?);
    }
    Ok(out)
}

fn parse_line(body: &str) -> Result<Expectation, String> {
    let (flow, outcome) = body.split_once("=>").ok_or("expected `=> OUTCOME`")?;
    let words: Vec<&str> = flow.split_whitespace().collect();
    let [id, stage, client_ns, "->", target, method, path, headers @ ..] = words.as_slice() else {
        return Err("expected ID STAGE CLIENT_NS -> NS/SERVICE:PORT METHOD PATH [HEADER=VALUE...]".into());
    };
    let (service, port) = target.rsplit_once(':').ok_or("target is NS/SERVICE:PORT")?;
    let (ns, name) = service.split_once('/').ok_or("target is NS/SERVICE:PORT")?;
    let mut request = HttpRequest::new(method, path);
    for h in headers {
        let (k, v) = h.split_once('=').ok_or("headers are NAME=VALUE")?;
        request = request.with_header(k, v);
    }
    Ok(Expectation {
        id: (*id).to_owned(),
        stage: (*stage).to_owned(),
        line: 0,
        client_ns: (*client_ns).to_owned(),
        service: (ns.to_owned(), name.to_owned()),
        port: port.parse().map_err(|_| format!("`{port}` is not a port"))?,
        request,
        clauses: outcome.split(';').map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")).collect(),
    })
}

fn service(o: &Outcome, x: &Expectation) -> Option<OutboundService> {
    let policy = &o.outbound;
    (0..policy.service_count())
        .map(|si| policy.service_for(si, &x.client_ns))
        .find(|s| s.namespace == x.service.0 && s.name == x.service.1)
}

/// `Ok` when every clause holds, else what meshc says instead.
pub fn check(o: &Outcome, x: &Expectation) -> Result<(), String> {
    if x.client_ns.starts_with("unmeshed:") {
        return check_unproxied(o, x);
    }
    let svc = service(o, x).ok_or_else(|| format!("no Service {}/{}", x.service.0, x.service.1))?;
    let routed = route_outbound(&svc, x.port, &x.request);
    for clause in &x.clauses {
        let held = match routed.as_ref() {
            Some(OutboundRoute::Profile { profile, .. }) => profile_clause_holds(clause, profile, x),
            other => clause_holds(clause, other, &svc.namespace),
        };
        held.map_err(|got| format!("`{clause}`: {got}"))?;
    }
    Ok(())
}

/// A ServiceProfile governs the Service: `profile NAME`, and `to` compares
/// its dstOverrides (an authority `NAME.NS.svc.cluster.local` is `NAME:PORT`,
/// on the port called); without dstOverrides, the Service itself.
fn profile_clause_holds(clause: &str, profile: &Profile, x: &Expectation) -> Result<(), String> {
    let words: Vec<&str> = clause.split_whitespace().collect();
    match words.as_slice() {
        ["profile", name] => (profile.name == *name).then_some(()).ok_or_else(|| format!("profile {}", profile.name)),
        ["declared"] => Ok(()),
        ["to", shares @ ..] => {
            let suffix = format!(".{}.svc.cluster.local", x.service.0);
            let got: Vec<(String, u64)> = if profile.dst_overrides.is_empty() {
                vec![(format!("{}:{}", x.service.1, x.port), 1)]
            } else {
                profile
                    .dst_overrides
                    .iter()
                    .map(|d| {
                        let name = d
                            .authority
                            .strip_suffix(&suffix)
                            .map_or(d.authority.clone(), |n| format!("{n}:{}", x.port));
                        (name, u64::from(d.weight))
                    })
                    .collect()
            };
            shares_hold(shares, got)
        }
        _ => Err(format!("ServiceProfile {} governs the Service: unknown clause for a profile", profile.name)),
    }
}

fn target<'a>(routed: Option<&'a OutboundRoute<'a>>) -> Result<&'a RouteTarget<'a>, String> {
    match routed {
        Some(OutboundRoute::Default { target }) | Some(OutboundRoute::Rule { target, .. }) => Ok(target),
        other => Err(format!("routed as {}", describe(other))),
    }
}

fn describe(routed: Option<&OutboundRoute>) -> String {
    match routed {
        None => "no such Service port".into(),
        Some(OutboundRoute::Opaque) => "opaque TCP".into(),
        Some(OutboundRoute::NotFound) => "no route (404)".into(),
        Some(OutboundRoute::Profile { profile, .. }) => format!("ServiceProfile {}", profile.name),
        Some(OutboundRoute::Default { .. }) => "the default route".into(),
        Some(OutboundRoute::Rule { route, .. }) => format!("route {}", route.name),
    }
}

fn clause_holds(clause: &str, routed: Option<&OutboundRoute>, ns: &str) -> Result<(), String> {
    let words: Vec<&str> = clause.split_whitespace().collect();
    match words.as_slice() {
        ["no-port"] => routed.is_none().then_some(()).ok_or_else(|| describe(routed)),
        ["declared"] => routed.is_some().then_some(()).ok_or_else(|| describe(routed)),
        ["not-found"] => matches!(routed, Some(OutboundRoute::NotFound)).then_some(()).ok_or_else(|| describe(routed)),
        ["route", name] => match routed {
            Some(OutboundRoute::Rule { route, .. }) if route.name == *name => Ok(()),
            other => Err(describe(other)),
        },
        ["to", shares @ ..] => backends_hold(shares, target(routed)?, ns),
        ["retry", on, "limit", n] => retry_holds(on, n, target(routed)?),
        ["timeout", "request", ms] => {
            let got = target(routed)?.timeouts.request_ms;
            let want = ms.strip_suffix("ms").and_then(|m| m.parse().ok());
            (want.is_some() && got == want).then_some(()).ok_or_else(|| format!("request timeout {got:?} ms"))
        }
        _ => Err("unknown clause".into()),
    }
}

fn backend_name(b: &Backend, ns: &str) -> String {
    match &b.target {
        BackendTarget::Service { namespace, name, port } if namespace == ns => format!("{name}:{port}"),
        BackendTarget::Service { namespace, name, port } => format!("{namespace}/{name}:{port}"),
        BackendTarget::Invalid { reason } => format!("invalid ({reason})"),
    }
}

/// Backends and weights as shares: `a=9 b=1` equals `a=90 b=10`.
fn backends_hold(shares: &[&str], t: &RouteTarget, ns: &str) -> Result<(), String> {
    let got: Vec<(String, u64)> = match t.backends {
        RuleBackends::Service { namespace, name, port } => {
            let n = if namespace == ns { format!("{name}:{port}") } else { format!("{namespace}/{name}:{port}") };
            vec![(n, 1)]
        }
        RuleBackends::Weighted(b) => b.iter().map(|b| (backend_name(b, ns), u64::from(b.weight))).collect(),
    };
    shares_hold(shares, got)
}

/// `shares` (`NAME:PORT=W ...`) against the backends got, weights as shares.
fn shares_hold(shares: &[&str], got: Vec<(String, u64)>) -> Result<(), String> {
    let mut want = Vec::new();
    for s in shares {
        let (name, w) = s.rsplit_once('=').ok_or("`to` takes NAME:PORT=WEIGHT")?;
        want.push((name.to_owned(), w.parse::<u64>().map_err(|_| "weights are integers")?));
    }
    let (got_total, want_total) = (got.iter().map(|g| g.1).sum::<u64>(), want.iter().map(|w| w.1).sum::<u64>());
    let mut g = got.clone();
    let mut w = want.clone();
    g.sort();
    w.sort();
    let same = g.len() == w.len() && g.iter().zip(&w).all(|(g, w)| g.0 == w.0 && g.1 * want_total == w.1 * got_total);
    same.then_some(()).ok_or_else(|| format!("backends {got:?}"))
}

fn retry_holds(on: &str, limit: &str, t: &RouteTarget) -> Result<(), String> {
    let Some(r) = t.retry else { return Err("no retry".into()) };
    let covered = match on {
        "5xx" => r.http_statuses.iter().any(|s| s.min <= 500 && s.max >= 599),
        code => r.grpc_codes.iter().any(|c| c.eq_ignore_ascii_case(code)),
    };
    let limit_ok = limit.parse::<u16>().is_ok_and(|n| n == r.limit);
    (covered && limit_ok).then_some(()).ok_or_else(|| format!("retry {r:?}"))
}

/// A client without a proxy, through the Service query: what the client
/// route is, and where requests go (each backend Service once, with its weight).
fn check_unproxied(o: &Outcome, x: &Expectation) -> Result<(), String> {
    use meshc::query::{classes::Classes, reach::parse_client, svc};
    let classes = Classes::derive(&o.resolved, &o.configs);
    let client = parse_client(o, &classes, &x.client_ns)?;
    let target = svc::target::parse(o, &format!("svc/{}/{}:{}", x.service.0, x.service.1, x.port))?;
    let r = svc::reach(o, client, &target, &x.request, None);
    for clause in &x.clauses {
        let words: Vec<&str> = clause.split_whitespace().collect();
        let held = match words.as_slice() {
            ["no-proxy"] => {
                (r.client_route.kind == "no-proxy").then_some(()).ok_or_else(|| r.client_route.kind.to_owned())
            }
            ["to", shares @ ..] => {
                let mut got: Vec<(String, u32)> = Vec::new();
                for b in &r.backends {
                    let name = b.service.strip_prefix(&format!("{}/", x.service.0)).unwrap_or(&b.service).to_owned();
                    if !got.iter().any(|(n, _)| *n == name) {
                        got.push((name, b.weight));
                    }
                }
                let want: Vec<(String, u32)> = shares
                    .iter()
                    .filter_map(|s| s.rsplit_once('=').and_then(|(n, w)| Some((n.to_owned(), w.parse().ok()?))))
                    .collect();
                let (gt, wt) =
                    (got.iter().map(|g| u64::from(g.1)).sum::<u64>(), want.iter().map(|w| u64::from(w.1)).sum::<u64>());
                let (mut g, mut w) = (got.clone(), want);
                g.sort();
                w.sort();
                let same = g.len() == w.len()
                    && g.iter().zip(&w).all(|(g, w)| g.0 == w.0 && u64::from(g.1) * wt == u64::from(w.1) * gt);
                same.then_some(()).ok_or_else(|| format!("backends {got:?}"))
            }
            _ => Err("unknown clause for a client without a proxy".into()),
        };
        held.map_err(|got| format!("`{clause}`: {got}"))?;
    }
    Ok(())
}
