//! Which HTTPLocalRateLimitPolicy applies to each Server, as Linkerd's status
//! controller accepts them (`policy-controller/k8s/status/src/index.rs`,
//! `target_ref_status`): the target Server must exist, and of the policies
//! on one Server only the oldest (creationTimestamp, then name; one with a
//! timestamp before one without) is Accepted; the others are refused with
//! `RateLimitReasonAlreadyExists`. The inbound index sends a Server only an
//! accepted policy (`k8s/index/src/inbound/index.rs`, `client_ratelimit`).

use super::index::{Index, Kind};
use crate::findings::{Code, Finding, Referent};
use crate::model::policy::HttpLocalRateLimitPolicySpec;
use crate::model::{Resource, Spec};
use std::collections::BTreeMap;

/// Accepted policies by the Server they target: (namespace, Server name) →
/// index into `Resolved::resources`.
#[derive(Clone, Debug, Default)]
pub struct RateLimits {
    by_server: BTreeMap<(String, String), usize>,
}

impl RateLimits {
    /// The accepted policy on Server `namespace/name`, with its spec.
    pub fn for_server<'r>(
        &self,
        resources: &'r [Resource],
        namespace: &str,
        name: &str,
    ) -> Option<(&'r Resource, &'r HttpLocalRateLimitPolicySpec)> {
        let &i = self.by_server.get(&(namespace.to_owned(), name.to_owned()))?;
        match &resources[i].spec {
            Spec::HttpLocalRateLimitPolicy(p) => Some((&resources[i], p)),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = ((&str, &str), usize)> {
        self.by_server.iter().map(|((ns, s), &i)| ((ns.as_str(), s.as_str()), i))
    }
}

pub fn accept(resources: &[Resource], index: &Index, findings: &mut Vec<Finding>) -> RateLimits {
    let mut by_target: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for &i in index.all(Kind::RateLimitPolicy) {
        let r = &resources[i];
        let Spec::HttpLocalRateLimitPolicy(p) = &r.spec else { continue };
        let server = &p.target_ref.name;
        if index.get(Kind::Server, r.namespace(), server).is_none() {
            let msg = format!(
                "HTTPLocalRateLimitPolicy {} targets Server {}/{server}, which does not exist: Linkerd does not \
                 accept it (NoMatchingTarget), so it limits nothing",
                r.name(),
                r.namespace()
            );
            let span = r.span_at(&["spec", "targetRef", "name"]);
            let f = Finding::new(Code::UnresolvedReference, span, msg).resource(r.id.clone());
            findings.push(f.referent(Referent::object("Server", r.namespace(), server)));
            continue;
        }
        by_target.entry((r.namespace().to_owned(), server.clone())).or_default().push(i);
    }
    let mut by_server = BTreeMap::new();
    for (key, mut policies) in by_target {
        policies.sort_by(|&a, &b| age(&resources[a]).cmp(&age(&resources[b])));
        let winner = policies[0];
        for &loser in &policies[1..] {
            let r = &resources[loser];
            let msg = format!(
                "HTTPLocalRateLimitPolicy {} is not accepted: Server {}/{} already has {} (the oldest, then first \
                 by name, wins; RateLimitReasonAlreadyExists), so this one limits nothing",
                r.name(),
                key.0,
                key.1,
                resources[winner].name()
            );
            findings.push(Finding::new(Code::InertPolicy, r.span(), msg).resource(r.id.clone()));
        }
        by_server.insert(key, winner);
    }
    RateLimits { by_server }
}

/// Sort key: with a timestamp before without, older first, then by name.
fn age(r: &Resource) -> (bool, Option<&str>, &str) {
    let ts = r.meta.creation_timestamp.as_deref();
    (ts.is_none(), ts, r.name())
}
