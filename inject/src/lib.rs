//! Injection: what `meshc inject` and mesh-runtime's admission webhook do to
//! a pod template, as one pure function ([`inject_template`]) from the
//! template (JSON), its namespace and the injector's configuration to the
//! operations that mesh it, or the reason it is left alone.
//!
//! A crate of its own because both meshc and mesh-runtime run it, and
//! neither links the other (ARCHITECTURE.md). The rules are Linkerd's
//! injector's (docs/semantics/injection.md); where mesh-proxy differs
//! (names, flags, no copied namespace annotations) the notes say why.
//! meshc's `inject::documents` applies the result to manifests for the
//! command line; mesh-runtime's `webhook` sends it as a JSON patch.

mod containers;
mod decide;
pub mod knobs;
pub mod value;

pub use decide::{INJECT_KEY, Verdict};
pub use knobs::Config;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use value::{Op, Step, Y, at, key};

pub const PROXY_CONTAINER: &str = "mesh-proxy";
pub const PROXY_INIT_CONTAINER: &str = "mesh-proxy-init";

/// A Namespace as the injector sees it.
#[derive(Clone, Copy, Debug)]
pub struct NamespaceMeta<'a> {
    pub annotations: &'a BTreeMap<String, String>,
    pub labels: &'a BTreeMap<String, String>,
}

/// Everything the injection of one template depends on besides the template.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The workload owning the template (`Deployment`, ..., or `Pod`): the
    /// proxy's `--workload` and the `linkerd.io/proxy-<kind>` label.
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    /// `None` when the Namespace is not known (not in the input).
    pub namespace_meta: Option<NamespaceMeta<'a>>,
    /// Annotations from the command line's flags: above the template's own,
    /// and written onto it (as `linkerd inject` does).
    pub overrides: &'a BTreeMap<String, String>,
    pub config: &'a Config,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The operations, on the template (`metadata`, `spec`), in order.
    Injected(Vec<Op>),
    Skipped(String),
    Refused(String),
}

/// The injection of one pod template (`{metadata, spec}`; a Pod itself).
/// A template meshc injected before is injected again from scratch (its
/// proxy containers and volumes removed first), so injecting twice gives
/// the same template.
pub fn inject_template(template: &Json, ctx: &Context) -> Outcome {
    let pod_annotations = string_map(&template["metadata"]["annotations"]);
    let annotations = knobs::effective(&pod_annotations, ctx.namespace_meta.map(|n| n.annotations), ctx.overrides);
    let ingress = match decide::decide(template, &annotations, ctx) {
        Verdict::Inject { ingress } => ingress,
        Verdict::Skip(why) => return Outcome::Skipped(why),
        Verdict::Refuse(why) => return Outcome::Refused(why),
    };
    let knobs = match knobs::read(&annotations, ctx.config, ingress) {
        Ok(k) => k,
        Err(why) => return Outcome::Refused(why),
    };
    let mut ops = removals(template);
    let mut clean = template.clone();
    if value::apply_json(&mut clean, &ops).is_err() {
        return Outcome::Refused("its earlier injection could not be removed".to_owned());
    }
    metadata_ops(&clean, ctx, &knobs, &mut ops);
    spec_ops(&clean, ctx, &knobs, &mut ops);
    Outcome::Injected(ops)
}

/// Why a template that asks for injection cannot be injected, without
/// computing the patch: what `meshc check` reports (`not-injectable`), so
/// that it agrees with `meshc inject` and the webhook.
pub fn refusal(template: &Json, ctx: &Context) -> Option<String> {
    let pod_annotations = string_map(&template["metadata"]["annotations"]);
    let annotations = knobs::effective(&pod_annotations, ctx.namespace_meta.map(|n| n.annotations), ctx.overrides);
    match decide::decide(template, &annotations, ctx) {
        Verdict::Inject { ingress } => knobs::read(&annotations, ctx.config, ingress).err(),
        Verdict::Skip(_) => None,
        Verdict::Refuse(why) => Some(why),
    }
}

/// Removes what an earlier injection by meshc added: its containers and
/// volumes (highest index first, so the indices stay right). Labels and
/// annotations are overwritten in place instead, which keeps their order.
fn removals(template: &Json) -> Vec<Op> {
    let mut ops = Vec::new();
    let spec = &template["spec"];
    for list in ["initContainers", "containers", "volumes"] {
        let items = spec[list].as_array().map(Vec::as_slice).unwrap_or_default();
        for (i, item) in items.iter().enumerate().rev() {
            let ours = match list {
                "volumes" => item["name"].as_str().is_some_and(|n| containers::VOLUMES.contains(&n)),
                _ => decide::is_ours(item),
            };
            if ours {
                ops.push(Op::Remove(at(&["spec", list], Step::Index(i))));
            }
        }
    }
    ops
}

fn metadata_ops(t: &Json, ctx: &Context, knobs: &knobs::Knobs, ops: &mut Vec<Op>) {
    if !t["metadata"].is_object() {
        ops.push(Op::Add(key(&["metadata"]), Y::Map(Vec::new())));
    }
    let mut annotations: Vec<(String, String)> = ctx.overrides.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    annotations.push(("linkerd.io/created-by".to_owned(), ctx.config.created_by.clone()));
    annotations.push(("linkerd.io/proxy-version".to_owned(), knobs.version.clone()));
    let mut labels = vec![
        ("linkerd.io/control-plane-ns".to_owned(), ctx.config.control_plane_namespace.clone()),
        ("linkerd.io/workload-ns".to_owned(), ctx.namespace.to_owned()),
    ];
    if let Some(owner) = owner_label(ctx.kind) {
        labels.push((format!("linkerd.io/proxy-{owner}"), ctx.name.to_owned()));
    }
    for (field, entries) in [("annotations", annotations), ("labels", labels)] {
        if !t["metadata"][field].is_object() {
            ops.push(Op::Add(key(&["metadata", field]), Y::Map(Vec::new())));
        }
        for (k, v) in entries {
            ops.push(Op::Add(key(&["metadata", field, &k]), Y::Str(v)));
        }
    }
}

/// `linkerd.io/proxy-<kind>` (`populateMeta`); a bare Pod has none.
fn owner_label(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => "deployment",
        "ReplicationController" => "replicationcontroller",
        "ReplicaSet" => "replicaset",
        "Job" => "job",
        "DaemonSet" => "daemonset",
        "StatefulSet" => "statefulset",
        "CronJob" => "cronjob",
        _ => return None,
    })
}

/// Volumes, then the init container and the proxy: with a native sidecar
/// both go first among the init containers (init, then proxy), so later init
/// containers run meshed; otherwise proxy-init runs after the pod's own init
/// containers and the proxy is the first container (the kubelet starts it
/// first) when the pod awaits it, else the last (`charts/patch`).
fn spec_ops(t: &Json, ctx: &Context, knobs: &knobs::Knobs, ops: &mut Vec<Op>) {
    let spec = &t["spec"];
    for list in ["volumes", "initContainers"] {
        if !spec[list].is_array() {
            ops.push(Op::Add(key(&["spec", list]), Y::Seq(Vec::new())));
        }
    }
    for v in containers::volumes(ctx.config) {
        ops.push(Op::Add(at(&["spec", "volumes"], Step::End), v));
    }
    let native = knobs.native_sidecar;
    let init = containers::proxy_init(ctx, knobs);
    let proxy = containers::proxy(ctx, knobs, native);
    if native {
        ops.push(Op::Add(at(&["spec", "initContainers"], Step::Index(0)), init));
        ops.push(Op::Add(at(&["spec", "initContainers"], Step::Index(1)), proxy));
    } else {
        ops.push(Op::Add(at(&["spec", "initContainers"], Step::End), init));
        let place = if knobs.await_ready { Step::Index(0) } else { Step::End };
        ops.push(Op::Add(at(&["spec", "containers"], place), proxy));
    }
}

fn string_map(v: &Json) -> BTreeMap<String, String> {
    v.as_object().into_iter().flatten().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect()
}
