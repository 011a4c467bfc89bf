//! `expect-outbound.txt`: assertions on the outbound configs of a golden
//! case, written by hand from Linkerd's semantics, so that a wrong value
//! fails even when `expected-outbound.json` was blessed with it.
//!
//! One assertion a line, `#` starts a comment (say which rule gives the value):
//!
//! ```text
//! WORKLOAD SCOPE... FIELD = VALUE   # why
//! deploy/shop/web services = shop/api
//! deploy/shop/web svc/shop/api timeouts.request = 10s
//! deploy/shop/web svc/shop/api:80 route[api-fields] rule[0] timeouts.request = 30s
//! deploy/shop/web svc/shop/api:80 request[GET /slow/x] timeouts.idle = none
//! ```
//!
//! WORKLOAD is `KIND/NAMESPACE/NAME` (`deploy/…`, as `meshc reach` takes).
//! Scopes, each inside the one before:
//! - `svc/NS/NAME` a Service the config lists; `svc/NS/NAME:PORT` its port;
//! - `route[NAME]` a route on the port; `rule[N]` its rule (from 0);
//!   `backend[NS/NAME:PORT]` a backend of the rule;
//! - `request[METHOD PATH NAME=VALUE…]` (on a port) what the client proxy
//!   does with that request: the route and rule it picks and the timeouts,
//!   retries and backends that then apply;
//! - `connection[SNI]` (on a port; `connection[-]` without SNI) what the
//!   client proxy does with one connection: `route_connection`'s outcome;
//!   `backend[NS/NAME:PORT]` one of its backends;
//! - `profile` the Service's ServiceProfile; `route[NAME]` a profile route;
//!   `dst[AUTHORITY]` a dstOverride.
//!
//! Fields, by scope (see `scope.rs`): workload `services`,
//! `default-opaque-ports`; Service `ports`, `profile`, `timeouts.request`
//! (`.response`, `.idle`), `retry` (`none`/`set`), `retry.limit`,
//! `retry.statuses`, `retry.grpc-codes` (both sorted), `retry.timeout`, `accrual`
//! (`none`/`consecutive`/`unified`), `accrual.max-failures`,
//! `accrual.min-penalty`, `accrual.max-penalty`, `accrual.jitter`,
//! `accrual.success-rate-{threshold,window,min-requests}`; port `protocol`,
//! `routes`, `tls-routes`, `tcp-route`; connection `outcome`
//! (`requests`/`service`/`route`/`no-route`), `route`, `backends`; route `group`, `hostnames`, `rules`; rule `matches`,
//! `backends`, `filters` and the timeout and retry fields; backend and dst
//! `weight`; profile `routes`, `dst-overrides`, `retry-budget.{ratio,
//! min-per-second,ttl}`; profile route `retryable`, `timeout`,
//! `response[STATUS]` (`failure`/`success`); request `outcome`
//! (`rule`/`default`/`profile`/`not-found`/`opaque`), `status` (what the
//! client proxy answers itself, or `none`), `route`, `rule`, `backends` and
//! the timeout and retry fields.
//!
//! Values: durations `300ms`/`1.5s`/`2m`/`none`, ratios `0.25`, lists
//! comma-separated in order (`none` when empty); a rule's `matches` read
//! `PathPrefix /x & header name=value & method GET` (`~` for a regex),
//! OR'ed with ` | `, `*` for a match-all rule. An unknown scope or field,
//! a scope the config lacks or a line without a value is an error, as is a
//! workload with an outbound config but no `services` line.

mod render;
mod scope;
mod value;

use mesh_proxy_api::ProxyConfig;
use meshc::pipeline::Outcome;
use scope::Scope;
use std::collections::BTreeSet;

pub const FILE: &str = "expect-outbound.txt";

/// Every problem with `text`'s assertions against the outcome's outbound
/// configs (which `lower::outbound::complete` must have filled in).
pub fn check(text: &str, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let Some(parsed) = split_line(line) else { continue };
        let result = parsed.and_then(|Line { path, value }| {
            let config = config_of(outcome, path[0])?;
            if path.len() == 2 && path[1] == "services" {
                listed.insert(config.workload.clone());
            }
            assert_line(&config.outbound, &path[1..], value.unwrap_or(""))
        });
        if let Err(e) = result {
            problems.push(format!("{FILE}:{}: `{}`: {e}", n + 1, line.trim()));
        }
    }
    for config in outcome.configs.iter().flatten().filter(|c| !listed.contains(&c.workload)) {
        let w = &config.workload;
        problems.push(format!("{FILE}: no `services` line for {}/{}/{}", w.kind, w.namespace, w.name));
    }
    problems
}

/// An assertion: the tokens before `=` (workload, scopes, field) and the value.
struct Line<'a> {
    path: Vec<&'a str>,
    value: Option<&'a str>,
}

/// A line's tokens before `=` and the value after it; `None` for blank
/// and comment lines. `#` and whitespace inside `[…]` belong to the token.
fn split_line(line: &str) -> Option<Result<Line<'_>, String>> {
    let (mut tokens, mut depth, mut start) = (Vec::new(), 0usize, None);
    let mut end = line.len();
    for (i, c) in line.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '#' if depth == 0 => {
                end = i;
                break;
            }
            c if c.is_whitespace() && depth == 0 => {
                if let Some(s) = start.take() {
                    tokens.push((s, &line[s..i]));
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        tokens.push((s, &line[s..end]));
    }
    if tokens.is_empty() {
        return None;
    }
    let Some(eq) = tokens.iter().position(|(_, t)| *t == "=") else {
        return Some(Err("no ` = VALUE`".into()));
    };
    let value = tokens.get(eq + 1).map(|(s, _)| line[*s..end].trim());
    let path: Vec<&str> = tokens[..eq].iter().map(|(_, t)| *t).collect();
    if path.len() < 2 {
        return Some(Err("want WORKLOAD [SCOPE...] FIELD = VALUE".into()));
    }
    Some(Ok(Line { path, value }))
}

fn config_of<'a>(outcome: &'a Outcome, workload: &str) -> Result<&'a ProxyConfig, String> {
    let wi = meshc::query::workload_ref::find(&outcome.resolved, workload)?;
    outcome.configs[wi].as_ref().ok_or_else(|| format!("{workload} has no proxy config (not meshed)"))
}

/// Walks `path` (scopes then a field) from the workload's outbound config
/// and compares the field with `expected`.
fn assert_line(outbound: &mesh_proxy_api::Outbound, path: &[&str], expected: &str) -> Result<(), String> {
    if expected.is_empty() {
        return Err("no value after `=`".into());
    }
    let (field, scopes) = path.split_last().expect("split_line keeps at least a workload and a field");
    let scope = scopes.iter().try_fold(Scope::Workload(outbound), |scope, token| scope.enter(token))?;
    let got = scope.field(field)?;
    let want = got.parse_like(expected)?;
    if normalized(&got) == normalized(&want) { Ok(()) } else { Err(format!("the config has {got}")) }
}

/// Text compares with runs of whitespace as one space.
fn normalized(v: &value::Value) -> value::Value {
    match v {
        value::Value::Text(t) => value::Value::Text(t.split_whitespace().collect::<Vec<_>>().join(" ")),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
