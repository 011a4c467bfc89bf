//! Repositories of several clusters (`clusters:` in the root `meshc.yaml`).
//! Each cluster goes through the one pipeline (`pipeline::prepare`, then
//! `pipeline::complete`); between the two, this layer reads the Links,
//! adds the mirrored and federated Services Linkerd's service mirror would
//! create, and after them it checks what only two clusters together show
//! (identities across the gateway, trust anchors). See `docs/multicluster.md`
//! and `docs/semantics/multicluster.md`.

pub mod chart;
pub mod checks;
pub mod client_route;
pub mod edges;
pub mod flows;
pub mod identity;
pub mod link;
pub mod links_file;
pub mod mirror;
pub mod reach;
pub mod repository;
pub mod service_backends;

use crate::findings::{Code, Finding, Span};
use crate::load::discover::Source;
use crate::load::{Input, InputError, RawObject};
use crate::pipeline::{self, Options, Outcome, Prepared};
use link::Link;
pub use repository::{Repository, repository};

/// One cluster's outcome, as `meshc check` of its directory alone would
/// give it (its own sources and findings), plus the Services mirrored into it.
pub struct ClusterOutcome {
    pub name: String,
    pub directory: String,
    pub outcome: Outcome,
    /// Where its sources start in the combined outcome's.
    pub source_offset: u32,
    /// Where its sources' runtimes learn its endpoints (meshc.yaml's `runtime:`).
    pub runtime: Option<links_file::Remote>,
}

/// A multicluster repository after the check: each cluster and the Links.
pub struct Clusters {
    pub clusters: Vec<ClusterOutcome>,
    pub links: Links,
}

impl Clusters {
    /// The index of the cluster named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.clusters.iter().position(|c| c.name == name)
    }
}

/// What a cluster's objects hold for the multicluster layer.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub links: Vec<RawObject>,
    /// The `linkerd-identity-trust-roots` ConfigMap's `ca-bundle.crt`, and where it is.
    pub trust_roots: Option<(String, Span)>,
    /// The multicluster extension's Helm values, when the cluster holds them.
    pub chart: Option<chart::ChartValues>,
}

impl Inputs {
    pub fn collect(objects: &[RawObject]) -> Inputs {
        let links = link::raw_links(objects);
        let trust_roots = objects.iter().find_map(identity::trust_roots_configmap);
        let chart = chart::read(objects);
        Inputs { links, trust_roots, chart }
    }
}

/// The cross-cluster facts every later step reads.
pub struct Links {
    pub links: Vec<Link>,
    /// The cluster each Link's target names, when the repository holds it.
    pub target_of: Vec<Option<usize>>,
    pub exports: Vec<mirror::Export>,
    pub federated: Vec<mirror::Federated>,
    /// Per Link: both clusters' trust anchors are known and share none.
    pub untrusted: Vec<bool>,
    /// Per cluster: its gateway, from its multicluster values or the chart's defaults.
    pub gateways: Vec<identity::Gateway>,
    /// Per Link: why its gateway cannot be reached as the Link says, when the values show it.
    pub gateway_problems: Vec<Option<String>>,
}

pub fn check(repo: Repository, options: &Options, cache: Option<&pipeline::Reuse>) -> Result<Outcome, InputError> {
    let mut findings = repo.findings.clone();
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    let mut runtimes: Vec<Option<links_file::Remote>> = Vec::new();
    let mut anchors: Vec<Option<identity::Anchors>> = Vec::new();
    for (entry, span) in &repo.clusters {
        let opts = repository::cluster_options(&repo, entry, options);
        match pipeline::prepare(&Input::Path(repo.root.join(&entry.directory)), &opts, cache) {
            Ok(mut p) => {
                // What CEL's `cluster` field reads.
                p.settings.cluster = entry.name.clone();
                anchors.push(identity::anchors(&repo, entry, *span, &p, &mut findings));
                runtimes.push(entry.runtime.as_ref().and_then(|r| links_file::remote(r, &p.settings)));
                prepared.push(p);
                names.push((entry.name.clone(), entry.directory.clone()));
            }
            Err(e) => {
                let msg = format!("meshc.yaml: cluster `{}`: {e}; the cluster is not checked", entry.name);
                findings.push(Finding::new(Code::MulticlusterInvalid, *span, msg));
            }
        }
    }
    let cluster_names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let mut links = read_links(&mut prepared, &cluster_names);
    add_mirrors(&mut prepared, &mut links);
    let mut early = checks::mirror_names(&prepared, &links, &cluster_names);
    early.extend(checks::unselected_exports(&prepared, &links, &cluster_names));
    for (c, f) in early {
        prepared[c].findings.push(f);
    }
    // Tests run once every cluster is complete: a flow may cross clusters.
    let mut tests: Vec<Vec<(String, std::path::PathBuf)>> =
        prepared.iter_mut().map(|p| std::mem::take(&mut p.test_files)).collect();
    let per_cluster = Options { tests: None, ..options.clone() };
    let mut outcomes: Vec<Outcome> = prepared.into_iter().map(|p| pipeline::complete(p, &per_cluster)).collect();
    checks::drop_superseded(&mut outcomes);
    identity::drop_matched_elsewhere(&mut outcomes, &links);
    identity::gateway_denials(&mut outcomes, &links, &cluster_names);
    identity::shared_identities(&mut outcomes, &links, &cluster_names);
    links.untrusted = identity::differing_anchors(&mut outcomes, &links, &anchors, &cluster_names);
    links.gateway_problems = identity::gateway_problems(&mut outcomes, &links, &cluster_names);
    let clusters = outcomes
        .into_iter()
        .zip(names)
        .zip(runtimes)
        .map(|((outcome, (name, directory)), runtime)| ClusterOutcome {
            name,
            directory,
            outcome,
            source_offset: 0,
            runtime,
        })
        .collect();
    let mut m = Clusters { clusters, links };
    if let Some(extra) = &options.tests {
        // `--tests` files name the first cluster's workloads unless prefixed.
        if let Some(first) = tests.first_mut() {
            first.extend(extra.iter().map(|p| (p.display().to_string(), p.clone())));
        }
        flows::run(&mut m, tests);
    }
    Ok(combine(repo.source, findings, m, options))
}

/// Reads every cluster's Links; a Link to its own cluster or to none the
/// repository holds is a finding.
fn read_links(prepared: &mut [Prepared], names: &[&str]) -> Links {
    let mut links = Vec::new();
    let mut target_of = Vec::new();
    for (c, p) in prepared.iter_mut().enumerate() {
        let raws = std::mem::take(&mut p.multicluster.links);
        // The unmodelled-resource finding said Links are not read: now they are.
        let spans: Vec<Span> = raws.iter().map(RawObject::span).collect();
        p.findings.retain(|f| !(f.code == Code::UnmodelledResource && spans.contains(&f.span)));
        for raw in &raws {
            let Some(l) = Link::read(raw, c, &p.settings.default_namespace, &mut p.findings) else { continue };
            let target = names.iter().position(|n| *n == l.target);
            match target {
                Some(t) if t == c => {
                    let msg = format!(
                        "Link {}/{} links cluster {} to itself: its service mirror would mirror the cluster's own \
                         Services; meshc leaves it out",
                        l.namespace, l.name, l.target
                    );
                    p.findings.push(Finding::new(Code::MulticlusterInvalid, l.span, msg));
                    continue;
                }
                None => {
                    let msg = format!(
                        "Link {}/{} targets cluster {}, which the repository does not hold: the Services it \
                         mirrors are unknown, and verdicts through it are not checked",
                        l.namespace, l.name, l.target
                    );
                    p.findings.push(Finding::new(Code::LinkTargetUnknown, l.span, msg));
                }
                Some(_) => {}
            }
            links.push(l);
            target_of.push(target);
        }
        p.multicluster.links = raws;
    }
    let gateways = prepared.iter().map(|p| identity::Gateway::of(&p.settings, p.multicluster.chart.as_ref())).collect();
    Links {
        links,
        target_of,
        exports: Vec::new(),
        federated: Vec::new(),
        untrusted: Vec::new(),
        gateways,
        gateway_problems: Vec::new(),
    }
}

/// Adds the mirrored and federated Services to each source cluster's
/// resources, placed at the Link that creates them.
fn add_mirrors(prepared: &mut [Prepared], links: &mut Links) {
    let views: Vec<&[crate::model::Resource]> = prepared.iter().map(|p| p.resources.as_slice()).collect();
    let exports = mirror::exports(&links.links, &views, &links.target_of);
    // The local service mirror's selector: the cluster's multicluster values, else the chart's default.
    let local: Vec<Option<crate::model::meta::LabelSelector>> =
        prepared.iter().map(|p| p.multicluster.chart.as_ref().and_then(|c| c.federated_selector.clone())).collect();
    let federated = mirror::federated(&links.links, &views, &links.target_of, &local);
    let mut added: Vec<Vec<crate::model::Resource>> = vec![Vec::new(); prepared.len()];
    for e in &exports {
        let link = &links.links[e.link];
        added[link.source_cluster].extend(mirror::mirror_service(e, link, &views[e.target_cluster][e.service]));
    }
    for f in &federated {
        let Some(&(mc, mi)) = f.members.first() else { continue };
        // Placed at the first Link of the cluster that federates (the local member has none).
        let Some(link) = links.links.iter().find(|l| l.source_cluster == f.cluster) else { continue };
        added[f.cluster].extend(mirror::federated_service(f, &views[mc][mi], link));
    }
    for (p, extra) in prepared.iter_mut().zip(added) {
        p.resources.extend(extra);
    }
    links.exports = exports;
    links.federated = federated;
}

/// One outcome for the repository: the root `meshc.yaml`, then each
/// cluster's sources under its directory, and every finding.
fn combine(settings: Source, mut findings: Vec<Finding>, mut m: Clusters, options: &Options) -> Outcome {
    let mut sources = vec![settings];
    let mut objects = 0;
    for c in &mut m.clusters {
        let offset = sources.len() as u32;
        let dir = c.directory.trim_end_matches('/').to_owned();
        // Named from the repository root, in the cluster's own proofs too.
        for s in &mut c.outcome.sources {
            s.name = format!("{dir}/{}", s.name);
        }
        for t in &mut c.outcome.tests {
            t.file = format!("{dir}/{}", t.file);
        }
        sources.extend(c.outcome.sources.iter().cloned());
        findings.extend(c.outcome.findings.iter().cloned().map(|mut f| {
            f.span.source += offset;
            f
        }));
        objects += c.outcome.objects;
        c.source_offset = offset;
    }
    findings.retain(|f| !options.ignore.contains(&f.code));
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let settings = crate::settings::Settings::default();
    let resolved = crate::resolve::resolve(Vec::new(), settings, &[], &mut Vec::new());
    let tests = m.clusters.iter().flat_map(|c| c.outcome.tests.iter().cloned()).collect();
    let multicluster = Some(Box::new(m));
    Outcome {
        sources,
        findings,
        objects,
        resolved,
        configs: Vec::new(),
        outbound: Default::default(),
        tests,
        multicluster,
    }
}
