//! Rate-limit outcomes, which MeshTest flows cannot state: `ratelimits.txt`
//! lines of the form
//!
//! ```text
//! ID STAGE CLIENT -> NS/WORKLOAD:PORT METHOD PATH xN => A allowed, B limited
//! ```
//!
//! where CLIENT is `unmeshed` (no identity) or `sa:NS/NAME` (the identity
//! of that ServiceAccount). The N requests arrive at one instant (the
//! sources' concurrent bursts): each is decided by the proxy's own
//! `decide_http` on the lowered config, and an allowed one takes a token
//! from each bucket `mesh_proxy_api::buckets` names, in that order, every
//! bucket starting full with `requestsPerSecond` tokens (governor's burst,
//! which linkerd2-proxy uses). A refused request is `limited` (429).

use mesh_proxy_api::{BucketKey, Client, HttpRequest, HttpVerdict, PortPolicy, buckets, decide_http};
use meshc::pipeline::Outcome;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

pub struct Expectation {
    pub id: String,
    pub stage: String,
    pub line: usize,
    client: Option<(String, String)>,
    workload: (String, String),
    port: u16,
    request: HttpRequest,
    count: u32,
    allowed: u32,
    limited: u32,
}

pub fn parse(text: &str) -> Result<Vec<Expectation>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let mut x = parse_line(body).map_err(|e| format!("ratelimits.txt:{}: {e}", i + 1))?;
        x.line = i + 1;
        out.push(x);
    }
    Ok(out)
}

fn parse_line(body: &str) -> Result<Expectation, String> {
    let (flow, outcome) = body.split_once("=>").ok_or("expected `=> A allowed, B limited`")?;
    let words: Vec<&str> = flow.split_whitespace().collect();
    let [id, stage, client, "->", target, method, path, count] = words.as_slice() else {
        return Err("expected ID STAGE CLIENT -> NS/WORKLOAD:PORT METHOD PATH xN".into());
    };
    let client = match *client {
        "unmeshed" => None,
        c => {
            let (ns, sa) =
                c.strip_prefix("sa:").and_then(|s| s.split_once('/')).ok_or("CLIENT is unmeshed or sa:NS/NAME")?;
            Some((ns.to_owned(), sa.to_owned()))
        }
    };
    let (workload, port) = target.rsplit_once(':').ok_or("target is NS/WORKLOAD:PORT")?;
    let (ns, name) = workload.split_once('/').ok_or("target is NS/WORKLOAD:PORT")?;
    let number = |s: &str| s.trim().parse::<u32>().map_err(|_| format!("`{s}` is not a number"));
    let outcome: Vec<&str> = outcome.split([',', ' ']).filter(|w| !w.is_empty()).collect();
    let [allowed, "allowed", limited, "limited"] = outcome.as_slice() else {
        return Err("expected `=> A allowed, B limited`".into());
    };
    Ok(Expectation {
        id: (*id).to_owned(),
        stage: (*stage).to_owned(),
        line: 0,
        client,
        workload: (ns.to_owned(), name.to_owned()),
        port: port.parse().map_err(|_| format!("`{port}` is not a port number"))?,
        request: HttpRequest::new(method, path),
        count: number(count.strip_prefix('x').ok_or("the count is xN")?)?,
        allowed: number(allowed)?,
        limited: number(limited)?,
    })
}

pub fn check(o: &Outcome, x: &Expectation) -> Result<(), String> {
    let (ns, name) = &x.workload;
    let wi = o
        .resolved
        .workloads
        .iter()
        .position(|w| &w.namespace == ns && &w.name == name)
        .ok_or_else(|| format!("no workload {ns}/{name}"))?;
    let config = o.configs[wi].as_ref().ok_or_else(|| format!("{ns}/{name} has no proxy"))?;
    let PortPolicy::Server(server) = config.inbound.lookup(x.port) else {
        return Err(format!("port {} of {ns}/{name} is skipped", x.port));
    };
    let addr = IpAddr::V4(Ipv4Addr::new(10, 42, 0, 99));
    let identity = x.client.as_ref().map(|(ns, sa)| o.resolved.settings.identity(ns, sa));
    let client = match &identity {
        Some(id) => Client::identified(addr, id.clone()),
        None => Client::plaintext(addr),
    };
    let mut tokens: HashMap<BucketKey, u32> = HashMap::new();
    let (mut allowed, mut limited) = (0, 0);
    for _ in 0..x.count {
        if !matches!(decide_http(server, &client, &x.request), HttpVerdict::Allowed { .. }) {
            return Err(format!("{ns}/{name}:{} does not allow the request at all", x.port));
        }
        let passes = server.rate_limit.as_ref().is_none_or(|limit| {
            buckets(limit, identity.as_deref()).iter().all(|b| {
                let left = tokens.entry(b.key.clone()).or_insert(b.requests_per_second.get());
                let took = *left > 0;
                *left = left.saturating_sub(1);
                took
            })
        });
        if passes { allowed += 1 } else { limited += 1 }
    }
    if (allowed, limited) == (x.allowed, x.limited) {
        Ok(())
    } else {
        Err(format!("{allowed} allowed, {limited} limited; expected {} allowed, {} limited", x.allowed, x.limited))
    }
}
