//! The check pipeline: load → decode → resolve → lower → analyze, then
//! suppression and a deterministic order of findings.

use crate::findings::{Code, Finding, ResourceId, Span};
use crate::load::discover::Source;
use crate::load::{self, Input, InputError, SETTINGS_FILE};
use crate::resolve::Resolved;
use crate::settings::{self, Settings, SettingsFile};
use crate::{analyze, lower, model, resolve};
use mesh_proxy_api::ProxyConfig;
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Settings given as flags; each set field overrides `meshc.yaml`.
    pub overrides: SettingsFile,
    /// An explicit settings file instead of `<path>/meshc.yaml`.
    pub settings_file: Option<std::path::PathBuf>,
    /// Codes suppressed for this run.
    pub ignore: Vec<Code>,
    /// Run MeshTest files: those under the path, plus these. `None`: no tests.
    pub tests: Option<Vec<std::path::PathBuf>>,
    /// The repository root Flux `spec.path`s are relative to (default: the
    /// git top level of the checked directory, else the directory).
    pub root: Option<std::path::PathBuf>,
    /// The renderers run on kustomizations (`load::render`).
    pub render: load::render::Tools,
    /// Free the files' texts once parsed: only the human report quotes
    /// them (findings elsewhere carry file names and positions), and on a
    /// large repository they are the input's size again in memory.
    pub drop_source_texts: bool,
}

pub struct Outcome {
    pub sources: Vec<Source>,
    pub findings: Vec<Finding>,
    /// Objects read (every kind), and workloads among them.
    pub objects: usize,
    pub resolved: Resolved,
    /// Inbound only; `lower::outbound::complete` adds each config's outbound part.
    pub configs: Vec<Option<ProxyConfig>>,
    /// Every Service's client-side policy (see `lower::outbound`).
    pub outbound: crate::lower::outbound::Policy,
    /// Results of the MeshTest flows run (see `Options::tests`).
    pub tests: Vec<crate::meshtest::TestResult>,
    /// A multicluster repository's clusters, each checked on its own, and
    /// the Links between them (then `sources` and `findings` above are all
    /// of theirs, and `resolved` is empty).
    pub multicluster: Option<Box<crate::multicluster::Clusters>>,
}

impl Outcome {
    pub fn workloads(&self) -> usize {
        self.resolved.workloads.len()
            + self.multicluster.as_ref().map_or(0, |m| m.clusters.iter().map(|c| c.outcome.workloads()).sum())
    }
}

pub fn check(input: &Input, options: &Options) -> Result<Outcome, InputError> {
    check_cached(input, options, None)
}

/// [`check`], then each config composed with the outbound policy its proxy
/// enforces (`lower::outbound::complete`), for the analyses that read
/// configs whole. Every config then holds its namespace's every Service:
/// `meshc build` and `show-config` start from [`check`] instead and compose
/// only what they need (`emit::build_outcome`, `scope::completed`).
pub fn compile(input: &Input, options: &Options) -> Result<Outcome, InputError> {
    let mut o = check(input, options)?;
    crate::lower::outbound::complete(&mut o);
    crate::profile::stage("outbound complete");
    Ok(o)
}

/// What the two checks of `meshc diff` share, filled by the first (the
/// base) and taken by the second: each file whose name and text both sides
/// have (the same git blob) is parsed once ([`load::ParseCache`]: the head
/// gets the very same trees), and each object whose tree is such a parse,
/// untouched, is decoded once ([`model::DecodeCache`]). Resolving, lowering
/// and analysing are not shared: see docs/diff.md, "What the two sides share".
#[derive(Default)]
pub struct Reuse {
    pub parse: load::ParseCache,
    pub decode: model::DecodeCache,
}

impl Reuse {
    /// The first side is checked: the second only takes from now on.
    pub fn first_side_done(&self) {
        self.decode.seal();
    }
}

/// [`check`] sharing parse and decode results through `cache` (see [`Reuse`]).
/// A repository whose `meshc.yaml` declares `clusters:` is checked one
/// cluster at a time, then across clusters (`multicluster`).
pub fn check_cached(input: &Input, options: &Options, cache: Option<&Reuse>) -> Result<Outcome, InputError> {
    if let Some(repo) = crate::multicluster::repository(input, options)? {
        return crate::multicluster::check(repo, options, cache);
    }
    let prepared = prepare(input, options, cache)?;
    release_freed_memory();
    Ok(complete(prepared, options))
}

/// Hands the pages the allocator holds free back to the OS. Loading and
/// decoding free much of what they allocated (the files' texts, the trees'
/// scalars, `meshc diff`'s caches) in small pieces between live ones, in
/// the allocator's per-thread arenas; glibc keeps those pages resident and
/// reuses them only for allocations from the same arena, so without this
/// the stages after decoding (which allocate from other threads) grow the
/// process past what it holds live. A no-op where the allocator is not glibc's.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers; it only returns free pages of
    // the allocator's own heaps, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
    crate::profile::stage("freed memory released");
}

/// Caps glibc's malloc at two arenas; call it first, before any thread
/// starts. Left alone, glibc gives each allocating thread an arena of its
/// own (up to 8 per core), and memory freed in one arena serves only that
/// arena's later allocations: `meshc diff` decodes on the main thread and
/// then completes its two sides on two worker threads, so what decoding
/// freed could not be reused by either side. With two arenas the wide
/// benchmark's diff peaks 5.7% lower (1,296 -> 1,222 MB at 10,000
/// workloads) for the same CPU time, and check's peak does not change
/// (docs/benchmarks/scale.md, fifth session). A no-op elsewhere.
pub fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// One cluster's objects, decoded, with its settings: what `resolve` takes.
pub struct Prepared {
    pub sources: Vec<Source>,
    pub findings: Vec<Finding>,
    pub objects: usize,
    pub resources: Vec<model::Resource>,
    pub settings: Settings,
    /// What the multicluster layer reads besides resources: Links (reported as
    /// unmodelled until it reads them) and the trust anchors.
    pub multicluster: crate::multicluster::Inputs,
    releases: Vec<load::releases::Release>,
    unknown_values: Vec<load::flux::UnknownValues>,
    pub(crate) test_files: Vec<(String, std::path::PathBuf)>,
}

/// Load, settings and decode: everything before `resolve`.
pub fn prepare(input: &Input, options: &Options, cache: Option<&Reuse>) -> Result<Prepared, InputError> {
    let mut loaded = load::load_cached_at(input, cache.map(|c| &c.parse), options.root.as_deref(), &options.render)?;
    crate::profile::stage("load (read, parse)");
    let test_files = std::mem::take(&mut loaded.test_files);
    let mut sources = loaded.sources;
    if options.drop_source_texts {
        sources.iter_mut().for_each(|s| s.text = String::new());
    }
    let mut findings = loaded.findings;
    let helm = settings::helm_values::from_helm_release(&loaded.objects);
    let chart = settings::helm_values::chart_version(&loaded.objects);
    let mut releases = std::mem::take(&mut loaded.unrendered);
    let unknown_values = std::mem::take(&mut loaded.unknown_values);
    let settings = read_settings(input, options, (helm, chart), &mut sources, &mut findings)?;
    releases.extend(settings.created_outside.iter().map(|c| load::releases::Release {
        creator: format!("{} (createdOutside in meshc.yaml)", c.by),
        namespace: Some(c.namespace.clone()),
        why: None,
    }));
    let objects = resolve::versions::unserved(loaded.objects, settings.linkerd_version, &mut findings);
    let multicluster = crate::multicluster::Inputs::collect(&objects);
    let decode_cache = cache.map(|c| &c.decode);
    let (resources, objects) =
        model::decode_all_cached(objects, &settings.default_namespace, &mut findings, decode_cache, drop_scalars_of);
    crate::profile::stage("settings, decode");
    Ok(Prepared { sources, findings, objects, resources, settings, multicluster, releases, unknown_values, test_files })
}

/// Resolve, lower, analyze, MeshTests and the order of findings: everything after `prepare`.
pub fn complete(p: Prepared, options: &Options) -> Outcome {
    let Prepared { sources, mut findings, objects, resources, settings, releases, unknown_values, test_files, .. } = p;
    let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    let mut resolved = resolve::resolve(resources, settings, &names, &mut findings);
    resolved.unknown_values = unknown_values;
    empty_workload_strings(&mut resolved.resources);
    crate::profile::stage("resolve");
    let configs = lower::lower_all(&resolved);
    crate::profile::stage("lower");
    analyze::analyze(&resolved, &configs, &mut findings);
    let outbound = lower::outbound::analyze(&resolved, &mut findings);
    crate::profile::stage("analyze, outbound");
    resolve::unknown::downgrade(&mut findings, &releases, &resolved.settings.default_namespace);
    resolve::unknown::control_plane_servers(&mut findings, &resolved);
    resolve::unknown::Variables::find(&resolved.resources, &resolved.unknown_values)
        .downgrade(&mut findings, &resolved.resources);
    let mut o =
        Outcome { sources, findings, objects, resolved, configs, outbound, tests: Vec::new(), multicluster: None };
    if let Some(extra) = &options.tests {
        o.tests = crate::meshtest::run(&mut o, test_files, extra);
    }
    o.findings = finish(std::mem::take(&mut o.findings), &o.resolved, options);
    crate::profile::stage("tests, finish");
    o
}

/// Decoding has read every value the later stages use into the typed specs;
/// from here a resource's YAML tree only locates fields for findings and
/// proofs (`Resource::span_at`, `resolve::unknown`: keys and positions), so
/// its scalar strings are freed for the stages after decoding to reuse (as
/// each object is decoded: `model::decode_all_cached`).
/// Except a workload's: the injector's refusal (`not-injectable`, from
/// `resolve::workload`) runs the one function behind `meshc inject` and the
/// webhook on the pod template as written, which the typed spec does not
/// hold in full. A tree still shared (`meshc diff`: the parse both sides
/// read, `load::ParseCache`) keeps them: the other side may still need
/// them, and sharing one whole tree costs less than two without scalars.
fn drop_scalars_of(r: &mut model::Resource) {
    if crate::inject::documents::template_path(&r.id.kind).is_none()
        && let Some(node) = std::sync::Arc::get_mut(&mut r.node)
    {
        node.drop_scalars();
    }
}

/// The workloads' trees, whose strings [`drop_scalars_of`] kept for
/// `resolve::workload`, lose them once resolved: no later stage reads a
/// workload's strings from its tree (`query::svc::own_pod` asks only whether
/// `replicas` is a number, so the strings are emptied, not removed). A tree
/// the other side of a diff shares keeps them, as in [`drop_scalars_of`].
fn empty_workload_strings(resources: &mut [model::Resource]) {
    for r in resources {
        if crate::inject::documents::template_path(&r.id.kind).is_some()
            && let Some(node) = std::sync::Arc::get_mut(&mut r.node)
        {
            node.empty_strings();
        }
    }
}

/// [`drop_scalars_of`] every resource.
fn drop_decoded_scalars(resources: &mut [model::Resource]) {
    use rayon::prelude::*;
    resources.par_iter_mut().with_min_len(256).for_each(drop_scalars_of);
}

/// Both sides of a diff prepared and their [`Reuse`] dropped: the trees they
/// share (one per object decoded once) lose their scalars as a check's do,
/// which `drop_decoded_scalars` skipped while the head's load could still
/// read them. A shared tree is changed in place once the base's reference is
/// set aside, then both sides hold it again; a tree still held elsewhere
/// keeps its scalars (they are only positions' company).
pub fn drop_shared_scalars(base: &mut Prepared, head: &mut Prepared) {
    use std::sync::Arc;
    let placeholder = Arc::new(load::yaml::Node {
        line: 0,
        column: 0,
        offset: 0,
        source: load::yaml::SAME_SOURCE,
        value: load::yaml::Value::Null,
    });
    let by_tree: HashMap<usize, usize> =
        base.resources.iter().enumerate().map(|(i, r)| (Arc::as_ptr(&r.node) as usize, i)).collect();
    let mut shared = Vec::new();
    for (h, r) in head.resources.iter().enumerate() {
        if let Some(&b) = by_tree.get(&(Arc::as_ptr(&r.node) as usize)) {
            base.resources[b].node = Arc::clone(&placeholder);
            shared.push((b, h));
        }
    }
    drop_decoded_scalars(&mut head.resources);
    for (b, h) in shared {
        base.resources[b].node = Arc::clone(&head.resources[h].node);
    }
    drop_decoded_scalars(&mut base.resources);
}

fn read_settings(
    input: &Input,
    options: &Options,
    (helm, chart): (Option<SettingsFile>, Option<settings::helm_values::ChartVersion>),
    sources: &mut Vec<Source>,
    findings: &mut Vec<Finding>,
) -> Result<Settings, InputError> {
    let path = match (&options.settings_file, input) {
        (Some(p), _) => Some(p.clone()),
        // A meshc.yaml that links out of the directory is reported by the loader, never read.
        (None, Input::Path(root)) if root.is_dir() => {
            Some(root.join(SETTINGS_FILE)).filter(|p| p.is_file() && load::discover::resolves_inside(root, p))
        }
        _ => None,
    };
    // Precedence: flags, then meshc.yaml, then the repository's Linkerd HelmRelease, then Linkerd's defaults.
    let mut file = helm.unwrap_or_default();
    let mut span = Span::default();
    let settings_text = match (path, input) {
        (Some(path), _) => {
            let text = load::discover::read_text(&path)
                .map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
            let name =
                if options.settings_file.is_some() { path.display().to_string() } else { SETTINGS_FILE.to_owned() };
            Some((name, text))
        }
        (None, Input::Files { settings: Some(text), .. }) => Some((SETTINGS_FILE.to_owned(), text.clone())),
        _ => None,
    };
    if let Some((name, text)) = settings_text {
        let source = sources.len() as u32;
        overlay(&mut file, settings::parse_file(source, &text, findings));
        span = Span::file(source);
        sources.push(Source { name, text });
    }
    overlay(&mut file, options.overrides.clone());
    let explicit = file.linkerd_version.is_some();
    let mut settings = Settings::resolve(file, findings, span);
    if let Some(chart) = chart {
        settings::helm_values::apply_chart_version(&mut settings, explicit, &chart, findings);
    }
    Ok(settings)
}

pub(crate) fn overlay(file: &mut SettingsFile, o: SettingsFile) {
    macro_rules! take {
        ($($f:ident),*) => { $( if o.$f.is_some() { file.$f = o.$f; } )* };
    }
    take!(
        default_inbound_policy,
        cluster_networks,
        pod_networks,
        trust_domain,
        cluster_domain,
        control_plane_namespace,
        probe_networks,
        egress_namespace,
        default_opaque_ports,
        default_skip_inbound_ports,
        default_namespace,
        kubelet_ip,
        service_account_token_projection,
        linkerd_version
    );
    file.namespaces.extend(o.namespaces);
    file.injected_by_pipeline.extend(o.injected_by_pipeline);
    file.created_outside.extend(o.created_outside);
}

/// Drops suppressed findings and duplicates, and sorts by place.
fn finish(findings: Vec<Finding>, r: &Resolved, options: &Options) -> Vec<Finding> {
    let by_id: HashMap<&ResourceId, &model::Resource> = r.resources.iter().map(|res| (&res.id, res)).collect();
    let mut out: Vec<Finding> = findings
        .into_iter()
        .filter(|f| !options.ignore.contains(&f.code))
        .filter(|f| !f.resource.as_ref().and_then(|id| by_id.get(id)).is_some_and(|res| res.ignores(f.code)))
        .collect();
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.dedup_by(|a, b| a.code == b.code && a.span == b.span && a.message == b.message);
    out
}
