//! The shared ServicePolicies the store serves, published for long polls
//! as one index; each namespace's answer (`GET /v1/service-policies`) is
//! made once per index, on first request.

use crate::store::{ObjectKey, ServedPolicy};
use bytes::Bytes;
use mesh_proxy_api::service_policy::{answer_body, set_digest};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// One namespace's answer: the digest naming its set (the one its
/// configs name) and `{"policies": [object, …]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyAnswer {
    pub digest: String,
    pub body: Bytes,
}

/// Every served ServicePolicy, by object.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    policies: BTreeMap<ObjectKey, Arc<ServedPolicy>>,
    /// Namespaces asked about so far → their answer.
    answers: Mutex<HashMap<String, Arc<PolicyAnswer>>>,
}

impl PolicyIndex {
    pub fn new(policies: BTreeMap<ObjectKey, Arc<ServedPolicy>>) -> PolicyIndex {
        PolicyIndex { policies, answers: Mutex::default() }
    }

    /// Whether `other` serves the same objects with the same digests.
    pub fn same_as(&self, other: &BTreeMap<ObjectKey, Arc<ServedPolicy>>) -> bool {
        self.policies.len() == other.len()
            && self.policies.iter().zip(other).all(|((k, a), (l, b))| k == l && a.digest == b.digest)
    }

    /// The answer for clients in `namespace`: the views whose audience
    /// includes it, in object order.
    pub fn answer(&self, namespace: &str) -> Arc<PolicyAnswer> {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = answers.get(namespace) {
            return a.clone();
        }
        let chosen: Vec<&Arc<ServedPolicy>> =
            self.policies.values().filter(|p| p.audience.includes(namespace)).collect();
        let digest = set_digest(chosen.iter().map(|p| p.digest.as_str()));
        let body = answer_body(chosen.iter().map(|p| &p.body[..]));
        let answer = Arc::new(PolicyAnswer { digest, body: Bytes::from(body) });
        answers.insert(namespace.to_owned(), answer.clone());
        answer
    }
}
