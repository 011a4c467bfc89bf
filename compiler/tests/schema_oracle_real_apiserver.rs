//! meshc's `schema-violation` against a real kube-apiserver as the oracle.
//!
//! The Linkerd and Gateway API CRDs of `../shared/reference/crds` are
//! installed in the harness of `mesh_test_support::apiserver`; every object
//! of every example repository, every golden case's input, and a seeded set
//! of mutants derived from the CRD schemas (`schema_oracle/mutate.rs`) is
//! applied server-side with `dryRun=All`, one request per object. For each
//! object: the server rejects it <=> meshc reports `schema-violation` on it.
//!
//! `fieldValidation=Strict` is the mode compared: it is what `kubectl apply`
//! sends (client-side and `--server-side`, `--validate=strict` being its
//! default) and what Argo CD sends (its `Validate=false` sync option turns
//! it off). Flux's kustomize-controller applies server-side with no
//! `fieldValidation` (the server's default, `Warn`): the test applies every
//! object that way too and counts the objects whose answer changes. Measured:
//! none, since a server-side apply refuses a field the schema does not
//! declare whatever `fieldValidation` says ("failed to create typed patch
//! object ... field not declared in schema"). meshc reports an unknown field
//! either way.
//!
//! Exceptions, each with why, are [`WEBHOOK_RULES`] (Linkerd's admission
//! webhook rejects what the API server alone accepts), [`SERVER_ONLY`]
//! (what the server rejects that meshc, by design, does not), [`NOT_DECODED`]
//! (kinds meshc does not decode) and [`MESHC_GAPS`] (disagreements found
//! and not fixed yet).
//! Any other disagreement fails the test, printing both sides.

#[path = "schema_oracle/inputs.rs"]
mod inputs;
#[path = "schema_oracle/mutate.rs"]
mod mutate;
#[path = "schema_oracle/server.rs"]
mod server;

use inputs::Object;
use mesh_test_support::apiserver::RealApiServer;
use server::{Answer, Validation};
use std::collections::{BTreeMap, BTreeSet};

/// Rules of Linkerd's admission webhook (policy-controller
/// `runtime/src/admission.rs`, `Validate<...>` impls), which a real cluster
/// runs and this API server does not: meshc reports them as
/// `schema-violation` (model/admission.rs, resolve/authz.rs) because a
/// cluster with Linkerd refuses the object. `(rule, text of meshc's message,
/// why the API server accepts it)`.
const WEBHOOK_RULES: &[(&str, &str, &str)] = &[
    (
        "AuthorizationPolicy target",
        "the admission webhook rejects it",
        "targetRef kinds and namespaces and requiredAuthenticationRefs are checked by \
         Validate<AuthorizationPolicySpec>; the CRD schema types them as free strings",
    ),
    (
        "Server values",
        "the admission webhook rejects the Server",
        "proxyProtocol and accessPolicy values are checked by Validate<ServerSpec> (the CRD has no enum on them)",
    ),
    (
        "HTTPLocalRateLimitPolicy rates",
        "the admission webhook rejects the policy",
        "rates above zero, under the total, and a Server target are Validate<RateLimitPolicySpec> rules",
    ),
    (
        "Linkerd's own types",
        "the API server or Linkerd's admission webhook rejects it",
        "the webhook reads policy.linkerd.io objects into Linkerd's Rust types, narrower than the CRD schema \
         (HTTPLocalRateLimitPolicy's requestsPerSecond is a u32 there, a free integer in the CRD)",
    ),
    (
        "EgressNetwork parent without a port",
        "cannot target an EgressNetwork without specifying a port",
        "a Validate rule of the webhook for routes (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute) whose parent is an \
         EgressNetwork; the Gateway API schema makes `port` optional",
    ),
    (
        "TCPRoute and TLSRoute rules",
        "Linkerd supports a single rule only",
        "the webhook's Validate for TLSRoute and TCPRoute specs accepts one rule; the Gateway API schema allows 16",
    ),
    (
        "ServiceProfile validation",
        "Linkerd rejects the ServiceProfile",
        "Linkerd's ServiceProfile validator (controller/sp-validator, pkg/profiles Validate) requires one field \
         in every response match and status bounds in 100..=599 with min <= max; the CRD leaves the nested \
         matches open (x-kubernetes-preserve-unknown-fields) and the bounds unbounded",
    ),
    (
        "authentications and ServerAuthorization clients",
        "Linkerd rejects it",
        "identities, networks and `unauthenticated` with `meshTLS` are parsed by the webhook and the policy \
         controller, not by the schema",
    ),
];

/// Objects the server rejects and meshc, by design, does not: `(rule, texts
/// all in the server's message, why meshc does not report it)`.
const SERVER_ONLY: &[(&str, &[&str], &str)] = &[
    (
        "Gateway API fields newer than Linkerd's bundled CRDs",
        &["unknown field \"spec.rules[", "].name\""],
        "rule names came with a later Gateway API release than the one Linkerd bundles; a cluster with \
         newer Gateway API CRDs accepts them, so meshc does not report them",
    ),
    (
        "Gateway API fields newer than Linkerd's bundled CRDs",
        &["unknown field \"spec.rules[", "].retry\""],
        "HTTPRoute retries came with a later Gateway API release (as rule names)",
    ),
    (
        "apps/v1 validation",
        &["Deployment.apps \""],
        "meshc reads a workload's pod template only (model::core); the rest of apps/v1 validation \
         (spec.selector present and matching the template's labels, volume names) is the API server's. \
         Golden inputs and a kustomize patch file leave the selector out",
    ),
    (
        "an explicit null under server-side apply",
        &["in body must be of type array: \"null\""],
        "meshc drops a null field as the API server does on create and update (decode::prune_nulls); \
         a server-side apply keeps the null in the applied configuration and validates it \
         (tests/golden/clean-null-optional-fields writes `identityRefs:` with nothing after it)",
    ),
];

/// Disagreements found here and not fixed yet in meshc: each names what meshc
/// would have to check. `(rule, texts all in the server's message, why not yet)`.
/// Listed so that a new disagreement still fails; they are meshc's to fix.
/// Empty: the Gateway API CEL rule on a Service backendRef's port, the
/// timeout pattern, ServiceProfile response class conditions, dstOverrides
/// weights (quantities) and urlRewrite's fields, found here, are checked by
/// model::values and model::cel_rules (tests/golden/schema-violation-gateway-rules).
const MESHC_GAPS: &[(&str, &[&str], &str)] = &[];

/// Kinds the server has a CRD for that meshc does not decode: it reads them
/// only to say what it does not model (model/unmodelled.rs), so it cannot
/// report a value of theirs. `(group, kind, why)`. An object of these the
/// server rejects is counted here; one it accepts is an agreement.
const NOT_DECODED: &[(&str, &str, &str)] = &[
    ("workload.linkerd.io", "ExternalWorkload", "meshc does not model mesh expansion"),
    (
        "multicluster.linkerd.io",
        "Link",
        "meshc decodes a Link only in a repository of several clusters (`clusters:` in meshc.yaml, \
         multicluster::link); elsewhere, as in the mutants' directory, it is an unmodelled kind, and even \
         there `probeSpec` is read untyped and the selectors' operators are not checked",
    ),
];

/// How the server names an unknown field, to count the objects a `Warn`
/// apply (Flux) would accept with the field dropped.
/// (A server-side apply says "field not declared in schema", a create or
/// update "unknown field".)
const UNKNOWN_FIELD_UNDER_WARN: &[&str] = &["field not declared in schema", "unknown field"];

/// Mutants per category (eight categories).
const PER_CATEGORY: usize = 50;
const SEED: u64 = 0x6d65_7368_6320_3139;

#[derive(Default)]
struct Tally {
    compared: usize,
    agreed: usize,
    webhook: BTreeMap<&'static str, usize>,
    not_decoded: BTreeMap<&'static str, usize>,
    gaps: BTreeMap<&'static str, usize>,
    server_only: BTreeMap<&'static str, usize>,
    unknown_kind: BTreeMap<String, usize>,
    disagreements: Vec<String>,
}

impl Tally {
    fn record(&mut self, object: &Object, what: &str, answer: &Answer) {
        let meshc_rejects = !object.meshc.is_empty();
        match answer {
            Answer::UnknownKind => {
                *self.unknown_kind.entry(format!("{} {}", object.api_version(), object.kind())).or_default() += 1;
                return;
            }
            Answer::Accepted if !meshc_rejects => self.agreed += 1,
            Answer::Rejected(_) if meshc_rejects => self.agreed += 1,
            Answer::Accepted => match webhook_rule(&object.meshc) {
                Some(rule) => *self.webhook.entry(rule).or_default() += 1,
                None => self.disagree(object, what, answer),
            },
            Answer::Rejected(_) if not_decoded(object).is_some() => {
                *self.not_decoded.entry(not_decoded(object).unwrap_or_default()).or_default() += 1;
            }
            Answer::Rejected(message) => {
                if let Some(rule) = listed(SERVER_ONLY, message) {
                    *self.server_only.entry(rule).or_default() += 1;
                } else if let Some(rule) = listed(MESHC_GAPS, message) {
                    *self.gaps.entry(rule).or_default() += 1;
                } else {
                    self.disagree(object, what, answer);
                }
            }
        }
        self.compared += 1;
    }

    fn disagree(&mut self, object: &Object, what: &str, answer: &Answer) {
        let server = match answer {
            Answer::Rejected(m) => format!("rejects: {m}"),
            _ => "accepts".to_owned(),
        };
        let meshc = if object.meshc.is_empty() { "no schema-violation".to_owned() } else { object.meshc.join(" | ") };
        let object_json = serde_json::to_string(&object.json).unwrap_or_default();
        self.disagreements.push(format!(
            "{} {} {}/{}{what}\n  server: {server}\n  meshc:  {meshc}\n  object: {object_json}",
            object.origin,
            object.kind(),
            object.namespace(),
            object.name().unwrap_or("<no name>")
        ));
    }
}

/// The rule of `list` whose texts are all in the server's `message`.
fn listed(list: &'static [(&'static str, &[&str], &str)], message: &str) -> Option<&'static str> {
    list.iter().find(|(_, texts, _)| texts.iter().all(|t| message.contains(t))).map(|(rule, _, _)| *rule)
}

fn not_decoded(object: &Object) -> Option<&'static str> {
    let group = object.api_version().split('/').next().unwrap_or_default();
    NOT_DECODED.iter().find(|(g, k, _)| *g == group && *k == object.kind()).map(|(_, k, _)| *k)
}

/// The webhook rule every one of meshc's messages on an object falls under.
fn webhook_rule(messages: &[String]) -> Option<&'static str> {
    let rule_of = |m: &String| WEBHOOK_RULES.iter().find(|(_, text, _)| m.contains(text)).map(|(r, _, _)| *r);
    let rules: BTreeSet<Option<&'static str>> = messages.iter().map(rule_of).collect();
    match rules.into_iter().collect::<Vec<_>>()[..] {
        [Some(rule)] => Some(rule),
        _ => None,
    }
}

/// Mutants of the objects of CRD kinds both sides accepted, checked by meshc
/// as one directory of one object per file.
fn mutants(objects: &[Object], answers: &[Answer], dir: &std::path::Path) -> (Vec<Object>, Vec<String>) {
    let bases: Vec<&serde_json::Value> = objects
        .iter()
        .zip(answers)
        .filter(|(o, a)| **a == Answer::Accepted && o.meshc.is_empty() && o.api_version().contains(".io/"))
        .map(|(o, _)| &o.json)
        .collect();
    let schemas = server::crd_schemas();
    let made = mutate::mutants(&bases, &schemas, &mut mutate::Rng::new(SEED), PER_CATEGORY);
    let mut whats = BTreeMap::new();
    for (i, m) in made.iter().enumerate() {
        let file = dir.join(format!("{i:04}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&m.json).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        whats.insert(format!("mutants/{i:04}.json:1"), format!(" ({})", m.what));
    }
    let checked = inputs::check_dir(dir, "mutants");
    assert_eq!(checked.len(), made.len(), "meshc did not read every mutant");
    let labels = checked.iter().map(|o| whats.get(&o.origin).cloned().unwrap_or_default()).collect();
    (checked, labels)
}

#[test]
fn schema_violation_agrees_with_a_real_apiserver_on_every_object() {
    let test = "schema_violation_agrees_with_a_real_apiserver_on_every_object";
    if !mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install -y kubectl") {
        return;
    }
    let Some(server) = RealApiServer::start(test) else { return };
    server::install_crds(&server);

    let mut objects: Vec<Object> = Vec::new();
    for (label, dir) in inputs::corpus() {
        objects.extend(inputs::check_dir(&dir, &label));
    }
    let mut whats = vec![String::new(); objects.len()];
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("tokio: {e}"));
    let applier = runtime.block_on(server::Applier::new(&server));
    let namespaces: BTreeSet<String> = objects.iter().map(|o| o.namespace().to_owned()).collect();
    server::create_namespaces(&server, namespaces.iter().map(String::as_str));
    let corpus_answers =
        runtime.block_on(applier.apply_all(&objects.iter().map(|o| &o.json).collect::<Vec<_>>(), Validation::Strict));

    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (mutated, labels) = mutants(&objects, &corpus_answers, tmp.path());
    let corpus_len = objects.len();
    objects.extend(mutated);
    whats.extend(labels);
    let all: Vec<&serde_json::Value> = objects.iter().map(|o| &o.json).collect();
    let strict = runtime.block_on(applier.apply_all(&all[corpus_len..], Validation::Strict));
    let strict: Vec<Answer> = corpus_answers.into_iter().chain(strict).collect();
    let warn = runtime.block_on(applier.apply_all(&all, Validation::ServerDefault));

    let mut tally = Tally::default();
    for ((object, what), answer) in objects.iter().zip(&whats).zip(&strict) {
        tally.record(object, what, answer);
    }
    let warn_accepts_unknown = strict
        .iter()
        .zip(&warn)
        .filter(|(s, w)| {
            matches!(s, Answer::Rejected(m) if UNKNOWN_FIELD_UNDER_WARN.iter().any(|t| m.contains(t)))
                && **w == Answer::Accepted
        })
        .count();
    let listed: usize = [&tally.webhook, &tally.server_only, &tally.not_decoded, &tally.gaps]
        .iter()
        .map(|m| m.values().sum::<usize>())
        .sum();
    eprintln!(
        "schema oracle (fieldValidation=Strict): {} objects compared ({} from examples and golden inputs, {} mutants), \
         {} agreed, {} listed exceptions (webhook {:?}, server only {:?}, not decoded by meshc {:?}, meshc gaps {:?}), {} disagreements; \
         not compared (no CRD): {:?}; \
         under fieldValidation=Warn (Flux) {} objects rejected for an unknown field are accepted with it dropped",
        tally.compared,
        corpus_len,
        objects.len() - corpus_len,
        tally.agreed,
        listed,
        tally.webhook,
        tally.server_only,
        tally.not_decoded,
        tally.gaps,
        tally.disagreements.len(),
        tally.unknown_kind,
        warn_accepts_unknown,
    );
    assert!(tally.compared > 300, "too few objects compared: {}", tally.compared);
    assert!(
        tally.disagreements.is_empty(),
        "{} disagreements between the API server and meshc:\n{}",
        tally.disagreements.len(),
        tally.disagreements.join("\n")
    );
}
