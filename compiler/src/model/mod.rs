//! Typed resources. Dispatch is two-pass (apiVersion/kind first, then the
//! concrete type), which keeps positions exact and errors specific.

mod admission;
mod cel_rules;
pub mod core;
pub mod decode;
pub mod decode_cache;
pub mod egress;
pub mod egress_admission;
pub mod meta;
pub mod policy;
pub mod profile;
pub mod quantity;
mod rollout;
pub mod route;
mod stream_admission;
pub mod stream_route;
pub mod traffic_split;
mod unmodelled;
mod values;

use crate::findings::{Code, Finding, ResourceId, Span};
use crate::load::RawObject;
use crate::load::objects::span_of;
use crate::load::yaml::Node;
use decode::{Seg, decode, node_at};
pub use decode_cache::DecodeCache;
use meta::ObjectMeta;
use serde::de::DeserializeOwned;

/// A decoded resource with where it was written.
///
/// What decoding made of the object (`Typed`: identity, metadata, spec) is
/// behind an `Arc`: `meshc diff` decodes an object both sides share once
/// (`DecodeCache`) and both sides hold that one value, not a copy each. It
/// reads as fields of the resource (`Deref`); writing through one
/// (`DerefMut`: a Rollout's template filled in, a mirror's ports) copies it
/// first if the other side holds it too, so a side's change stays its own.
/// Where it sits (file number, tree) is each side's own.
#[derive(Clone)]
pub struct Resource {
    pub source: u32,
    /// The object's YAML tree, to point findings at a field; shared with
    /// the raw object it was decoded from (and, in `meshc diff`, with the
    /// other side's resource decoded from the same file: `DecodeCache`).
    pub node: std::sync::Arc<Node>,
    typed: std::sync::Arc<Typed>,
}

/// A resource's identity, metadata and typed spec: see [`Resource`].
#[derive(Clone, Debug)]
pub struct Typed {
    pub id: ResourceId,
    /// The API group (empty for core) and version it was written in.
    pub group: String,
    pub version: String,
    pub meta: ObjectMeta,
    pub spec: Spec,
}

impl std::ops::Deref for Resource {
    type Target = Typed;
    fn deref(&self) -> &Typed {
        &self.typed
    }
}

impl std::ops::DerefMut for Resource {
    /// Copied first when the other side of a diff holds it too.
    fn deref_mut(&mut self) -> &mut Typed {
        std::sync::Arc::make_mut(&mut self.typed)
    }
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("id", &self.id)
            .field("group", &self.group)
            .field("version", &self.version)
            .field("meta", &self.meta)
            .field("source", &self.source)
            .field("node", &self.node)
            .field("spec", &self.spec)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub enum Spec {
    Namespace,
    ServiceAccount,
    /// Pods and every controller with a pod template. Boxed: the largest
    /// variant by far (two `ObjectMeta`s' worth), which every resource's
    /// `Spec` would otherwise be the size of.
    Workload(Box<core::PodTemplate>),
    Service(core::ServiceSpec),
    Server(policy::ServerSpec),
    ServerAuthorization(policy::ServerAuthorizationSpec),
    AuthorizationPolicy(policy::AuthorizationPolicySpec),
    MeshTlsAuthentication(policy::MeshTlsAuthenticationSpec),
    NetworkAuthentication(policy::NetworkAuthenticationSpec),
    HttpRoute(route::HttpRouteSpec),
    GrpcRoute(route::GrpcRouteSpec),
    TlsRoute(stream_route::TlsRouteSpec),
    TcpRoute(stream_route::TcpRouteSpec),
    ServiceProfile(profile::ServiceProfileSpec),
    HttpLocalRateLimitPolicy(policy::HttpLocalRateLimitPolicySpec),
    EgressNetwork(egress::EgressNetworkSpec),
    /// SMI TrafficSplit, which the linkerd-smi extension turns into a ServiceProfile's dstOverrides.
    TrafficSplit(traffic_split::TrafficSplitSpec),
}

impl Resource {
    pub fn new(typed: Typed, source: u32, node: std::sync::Arc<Node>) -> Self {
        Resource { source, node, typed: std::sync::Arc::new(typed) }
    }

    /// Whether `other` holds the very same decoded value (not a copy).
    pub fn shares_typed(&self, other: &Resource) -> bool {
        std::sync::Arc::ptr_eq(&self.typed, &other.typed)
    }

    pub fn name(&self) -> &str {
        &self.id.name
    }

    pub fn namespace(&self) -> &str {
        self.id.namespace.as_deref().unwrap_or("")
    }

    pub fn span(&self) -> Span {
        self.span_at(&[])
    }

    /// Position of the field at `path` (e.g. `["spec", "targetRef", "name"]`),
    /// or of its deepest existing ancestor.
    pub fn span_at(&self, path: &[&str]) -> Span {
        let segs: Vec<Seg> =
            path.iter().map(|s| s.parse::<usize>().map_or_else(|_| Seg::Key((*s).to_owned()), Seg::Index)).collect();
        let node = node_at(&self.node, &segs);
        span_of(self.source, node)
    }

    /// The TLSRoute or TCPRoute this resource is, if it is one.
    pub fn stream_route(&self) -> Option<stream_route::StreamRoute<'_>> {
        match &self.spec {
            Spec::TlsRoute(t) => Some(stream_route::StreamRoute::Tls(t)),
            Spec::TcpRoute(t) => Some(stream_route::StreamRoute::Tcp(t)),
            _ => None,
        }
    }

    /// `meshc.io/ignore: code[,code]` on the resource suppresses those codes for it.
    pub fn ignores(&self, code: Code) -> bool {
        self.meta
            .annotation("meshc.io/ignore")
            .is_some_and(|v| v.split(',').any(|c| c.trim() == code.as_str() || c.trim() == "all"))
    }
}

/// Which kinds meshc reads, by group and kind, with the versions each group serves.
fn known(group: &str, kind: &str) -> Option<(&'static [&'static str], bool)> {
    const CORE: &[&str] = &["v1"];
    const APPS: &[&str] = &["v1"];
    const BATCH: &[&str] = &["v1", "v1beta1"];
    const SERVER: &[&str] = &["v1alpha1", "v1beta1", "v1beta2", "v1beta3"];
    const SAZ: &[&str] = &["v1alpha1", "v1beta1"];
    const A1: &[&str] = &["v1alpha1"];
    const LROUTE: &[&str] = &["v1alpha1", "v1beta1", "v1beta2", "v1beta3"];
    const GHTTP: &[&str] = &["v1", "v1beta1"];
    const GGRPC: &[&str] = &["v1", "v1alpha2"];
    const SP: &[&str] = &["v1alpha2", "v1alpha1"];
    const GSTREAM: &[&str] = &["v1alpha2"];
    // (versions, strict): strict kinds report unknown fields.
    Some(match (group, kind) {
        ("", "Namespace" | "Pod" | "Service" | "ServiceAccount") => (CORE, false),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => (APPS, false),
        ("batch", "Job" | "CronJob") => (BATCH, false),
        ("argoproj.io", "Rollout") => (&["v1alpha1"], false),
        ("policy.linkerd.io", "Server") => (SERVER, true),
        ("policy.linkerd.io", "ServerAuthorization") => (SAZ, true),
        ("policy.linkerd.io", "AuthorizationPolicy" | "MeshTLSAuthentication" | "NetworkAuthentication") => (A1, true),
        ("policy.linkerd.io", "HTTPLocalRateLimitPolicy" | "EgressNetwork") => (A1, true),
        ("policy.linkerd.io", "HTTPRoute") => (LROUTE, true),
        ("gateway.networking.k8s.io", "HTTPRoute") => (GHTTP, true),
        ("gateway.networking.k8s.io", "GRPCRoute") => (GGRPC, true),
        ("gateway.networking.k8s.io", "TLSRoute" | "TCPRoute") => (GSTREAM, true),
        ("linkerd.io", "ServiceProfile") => (SP, true),
        // linkerd-smi's CRD serves these two (v1alpha3/v1alpha4 are the SMI SDK's only).
        ("split.smi-spec.io", "TrafficSplit") => (&["v1alpha1", "v1alpha2"], true),
        _ => return None,
    })
}

/// Groups whose kinds meshc knows all of: an unknown kind there is a typo.
const OWNED_GROUPS: &[&str] = &["policy.linkerd.io", "linkerd.io"];

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Decodes every raw object meshc models; others are counted, not kept.
pub fn decode_all(
    raws: Vec<RawObject>,
    default_namespace: &str,
    findings: &mut Vec<Finding>,
) -> (Vec<Resource>, usize) {
    decode_all_cached(raws, default_namespace, findings, None, |_| {})
}

/// [`decode_all`], taking from `cache` what the other side of a diff
/// decoded of the same parsed trees, and recording its own decoding there
/// until the cache is sealed (see [`DecodeCache`]). `decoded` is applied to
/// each resource as soon as it is decoded (and recorded), while the others
/// are still being decoded: the pipeline frees the tree's scalars there, so
/// that no moment holds every tree whole and every typed spec at once.
pub fn decode_all_cached(
    raws: Vec<RawObject>,
    default_namespace: &str,
    findings: &mut Vec<Finding>,
    cache: Option<&DecodeCache>,
    decoded: impl Fn(&mut Resource) + Sync,
) -> (Vec<Resource>, usize) {
    use rayon::prelude::*;
    let total = raws.len();
    // Objects decode independently; collecting keeps input order, so
    // findings and duplicate resolution stay deterministic.
    let all: Vec<decode_cache::Decoded> = raws
        .into_par_iter()
        .with_min_len(256)
        .map(|raw| {
            let mut one = match cache {
                Some(cache) => cache.take(&raw, default_namespace).unwrap_or_else(|| {
                    let place = cache.recording().then(|| decode_cache::Place::of(&raw));
                    let one = decode_with_id(raw, default_namespace);
                    if let Some(place) = place {
                        cache.put(place, default_namespace, &one);
                    }
                    one
                }),
                None => decode_with_id(raw, default_namespace),
            };
            if let Some(r) = &mut one.0 {
                decoded(r);
            }
            one
        })
        .collect();
    let mut out = Vec::with_capacity(total);
    for (resource, local) in all {
        findings.extend(local);
        out.extend(resource);
    }
    // A Rollout's workloadRef names another object's template.
    rollout::resolve_refs(&mut out, findings);
    (out, total)
}

/// One object decoded, its findings naming the object as written where
/// decoding did not name it.
fn decode_with_id(raw: RawObject, default_namespace: &str) -> decode_cache::Decoded {
    let id = raw_id(&raw, default_namespace);
    let mut local = Vec::new();
    let resource = decode_one(raw, default_namespace, &mut local);
    for f in local.iter_mut().filter(|f| f.resource.is_none()) {
        f.resource.clone_from(&id);
    }
    (resource, local)
}

/// The object's identity as written, for findings raised before (or
/// instead of) a successful decode.
fn raw_id(raw: &RawObject, default_namespace: &str) -> Option<ResourceId> {
    let meta = raw.node.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_owned();
    let namespace = (raw.kind != "Namespace")
        .then(|| meta.get("namespace").and_then(Node::as_str).unwrap_or(default_namespace).to_owned());
    Some(ResourceId { api_version: raw.api_version.clone(), kind: raw.kind.clone(), namespace, name })
}

fn decode_one(raw: RawObject, default_namespace: &str, findings: &mut Vec<Finding>) -> Option<Resource> {
    let (group, version) = split_api_version(&raw.api_version);
    let Some((versions, strict)) = known(group, &raw.kind) else {
        // meshc models every kind Linkerd 2.19 serves in these groups (charts/linkerd-crds).
        if OWNED_GROUPS.contains(&group) {
            let msg = format!("{} has no kind `{}`; the API server rejects this object", group, raw.kind);
            findings.push(Finding::new(Code::SchemaViolation, raw.span(), msg));
        } else {
            let namespace = raw.node.get("metadata").and_then(|m| m.get("namespace")).and_then(Node::as_str);
            findings.extend(unmodelled::finding(&raw, group, namespace.unwrap_or(default_namespace)));
        }
        return None;
    };
    if !versions.contains(&version) {
        let msg = format!("{}/{} is not served for {} (served: {})", group, version, raw.kind, versions.join(", "));
        let span = field_span(&raw, "apiVersion");
        findings.push(Finding::new(Code::SchemaViolation, span, msg));
        return None;
    }
    let (group, version) = (group.to_owned(), version.to_owned());
    let (meta, spec) = decode_spec(&raw, strict, findings)?;
    findings.extend(values::absent_fields(&raw, &group));
    let out_of_schema = values::check(&raw, &group, &version);
    if !out_of_schema.is_empty() {
        findings.extend(out_of_schema);
        return None;
    }
    let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
        let msg = format!("{} has no metadata.name; kubectl apply rejects it", raw.kind);
        findings.push(Finding::new(Code::SchemaViolation, raw.span(), msg));
        return None;
    };
    let namespaced = raw.kind != "Namespace";
    let namespace = namespaced.then(|| meta.namespace.clone().unwrap_or_else(|| default_namespace.to_owned()));
    let id = ResourceId { api_version: raw.api_version.clone(), kind: raw.kind.clone(), namespace, name };
    let mut resource = Resource::new(Typed { id, group, version, meta, spec }, raw.source, raw.node);
    admission::check(&mut resource, findings).then_some(resource)
}

fn field_span(raw: &RawObject, key: &str) -> Span {
    span_of(raw.source, node_at(&raw.node, &[Seg::Key(key.to_owned())]))
}

fn decode_spec(raw: &RawObject, strict: bool, findings: &mut Vec<Finding>) -> Option<(ObjectMeta, Spec)> {
    fn typed<S: DeserializeOwned>(
        raw: &RawObject,
        strict: bool,
        fallback: Option<Spec>,
        findings: &mut Vec<Finding>,
        wrap: impl FnOnce(S) -> Spec,
    ) -> Option<(ObjectMeta, Spec)> {
        let env = decode::<S>(raw, strict, findings)?;
        match (env.spec, fallback) {
            (Some(spec), _) => Some((env.metadata, wrap(spec))),
            (None, Some(fallback)) => Some((env.metadata, fallback)),
            (None, None) => {
                let msg = format!("{} has no spec; the API server rejects it", raw.kind);
                findings.push(Finding::new(Code::SchemaViolation, raw.span(), msg));
                None
            }
        }
    }
    let s = strict;
    match raw.kind.as_str() {
        "Namespace" | "ServiceAccount" => {
            let env = decode::<serde_json::Value>(raw, false, findings)?;
            let spec = if raw.kind == "Namespace" { Spec::Namespace } else { Spec::ServiceAccount };
            Some((env.metadata, spec))
        }
        "Pod" => {
            // A Pod is its own template: its labels and annotations are the pod's.
            let (meta, spec) = typed::<core::PodSpec>(raw, s, None, findings, |spec| {
                Spec::Workload(Box::new(core::PodTemplate { metadata: Default::default(), spec }))
            })?;
            let Spec::Workload(mut template) = spec else {
                return None;
            };
            template.metadata = meta.clone();
            Some((meta, Spec::Workload(template)))
        }
        "CronJob" => typed::<core::CronJobSpec>(raw, s, None, findings, |c| {
            Spec::Workload(Box::new(c.job_template.spec.template))
        }),
        "Rollout" => {
            let env = decode::<core::RolloutSpec>(raw, s, findings)?;
            let template = rollout::template(raw, env.spec.unwrap_or_default(), findings)?;
            Some((env.metadata, Spec::Workload(Box::new(template))))
        }
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            typed::<core::WorkloadSpec>(raw, s, None, findings, |w| Spec::Workload(Box::new(w.template)))
        }
        // A Service without spec is still a Service (it selects nothing).
        "Service" => typed(raw, s, Some(Spec::Service(Default::default())), findings, Spec::Service),
        "Server" => typed(raw, s, None, findings, Spec::Server),
        "ServerAuthorization" => typed(raw, s, None, findings, Spec::ServerAuthorization),
        "AuthorizationPolicy" => typed(raw, s, None, findings, Spec::AuthorizationPolicy),
        "MeshTLSAuthentication" => typed(raw, s, None, findings, Spec::MeshTlsAuthentication),
        "NetworkAuthentication" => typed(raw, s, None, findings, Spec::NetworkAuthentication),
        "HTTPRoute" => typed(raw, s, None, findings, Spec::HttpRoute),
        "GRPCRoute" => typed(raw, s, None, findings, Spec::GrpcRoute),
        "TLSRoute" => typed(raw, s, None, findings, Spec::TlsRoute),
        "TCPRoute" => typed(raw, s, None, findings, Spec::TcpRoute),
        "ServiceProfile" => typed(raw, s, None, findings, Spec::ServiceProfile),
        "HTTPLocalRateLimitPolicy" => typed(raw, s, None, findings, Spec::HttpLocalRateLimitPolicy),
        "EgressNetwork" => typed(raw, s, None, findings, Spec::EgressNetwork),
        "TrafficSplit" => typed(raw, s, None, findings, Spec::TrafficSplit),
        _ => None,
    }
}
