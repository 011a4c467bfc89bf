//! `meshc diff BASE HEAD [PATH]`.

use super::diff_checkout::as_directory;
use super::{EXIT_FINDINGS, EXIT_USAGE};
use crate::diff::{self, Sides, render, traffic};
use crate::load::git::{read_revision, read_revisions};
use crate::load::{Input, InputError};
use crate::pipeline::{self, Options, Outcome, Prepared, Reuse};
use crate::query::render::text::Paint;
use crate::settings::SettingsFile;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The base: a git revision, WORKTREE, or a directory (then HEAD is one too).
    base: String,
    /// The head: a git revision, WORKTREE, or a directory.
    head: String,
    /// The directory inside the git work tree that holds the manifests (default: .).
    path: Option<PathBuf>,
    /// Override a mesh setting on the head side only: KEY=VALUE (meshc.yaml keys, e.g.
    /// defaultInboundPolicy=deny, clusterNetworks=10.0.0.0/8,fd00::/8,
    /// namespaces.NS.annotations.KEY=VALUE); repeatable.
    #[arg(long = "head-set", value_name = "KEY=VALUE")]
    head_set: Vec<String>,
    /// Override a mesh setting on the base side only; repeatable.
    #[arg(long = "base-set", value_name = "KEY=VALUE")]
    base_set: Vec<String>,
    /// Only targets in this namespace.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Also compare client → Service edges (`matrix --services`: each Service
    /// port called by every client group); costs a Service call per group and port.
    #[arg(long)]
    services: bool,
    /// Observed flows (JSON) to check: those allowed before and denied after are reported first.
    #[arg(long)]
    traffic: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Exit 1 when the diff has what --fail-on names (default: anything opened or closed).
    #[arg(long)]
    exit_code: bool,
    /// With --exit-code: what fails the job (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    fail_on: Vec<FailOn>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Human,
    Json,
    /// A PR comment (at most ~60 KB).
    Markdown,
    /// SARIF 2.1.0 of the findings the head introduces.
    Sarif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FailOn {
    BrokenTraffic,
    Closed,
    Opened,
    Finding,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

const SETTINGS_KEYS: &[&str] = &[
    "defaultInboundPolicy",
    "clusterNetworks",
    "podNetworks",
    "trustDomain",
    "controlPlaneNamespace",
    "probeNetworks",
    "defaultOpaquePorts",
    "defaultSkipInboundPorts",
    "defaultNamespace",
    "kubeletIp",
    "linkerdVersion",
];

/// `KEY=VALUE` pairs as a settings overlay, in meshc.yaml's terms.
pub fn parse_sets(sets: &[String]) -> Result<SettingsFile, String> {
    let mut v = serde_json::json!({});
    for s in sets {
        let (key, value) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))?;
        if let Some(rest) = key.strip_prefix("namespaces.") {
            let mut parts = rest.splitn(3, '.');
            let (Some(ns), Some(map @ ("annotations" | "labels")), Some(k)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("`{key}`: expected namespaces.NAMESPACE.annotations.KEY (or .labels.KEY)"));
            };
            v["namespaces"][ns][map][k] = serde_json::json!(value);
            continue;
        }
        if !SETTINGS_KEYS.contains(&key) {
            return Err(format!("`{key}` is not a setting; settings: {}", SETTINGS_KEYS.join(", ")));
        }
        v[key] = if key.ends_with("Networks") {
            serde_json::json!(value.split(',').map(str::trim).collect::<Vec<_>>())
        } else {
            serde_json::json!(value)
        };
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// One side as an input: a directory, the work tree, or a revision.
fn side(spec: &str, repo: &Path) -> Result<Input, InputError> {
    if spec == "WORKTREE" {
        return Ok(Input::Path(repo.to_path_buf()));
    }
    let r = read_revision(repo, spec)?;
    Ok(Input::Files { files: r.files, settings: r.settings })
}

fn inputs(a: &DiffArgs) -> Result<(Input, Input), InputError> {
    let (b, h) = (Path::new(&a.base), Path::new(&a.head));
    if a.path.is_none() && b.is_dir() && h.is_dir() {
        return Ok((Input::Path(b.to_path_buf()), Input::Path(h.to_path_buf())));
    }
    let repo = a.path.clone().unwrap_or_else(|| PathBuf::from("."));
    if !repo.is_dir() {
        return Err(InputError(format!("{}: not a directory", repo.display())));
    }
    if a.base != "WORKTREE" && a.head != "WORKTREE" {
        let (b, h) = read_revisions(&repo, &a.base, &a.head)?;
        let files = |r: crate::load::git::Revision| Input::Files { files: r.files, settings: r.settings };
        return Ok((files(b), files(h)));
    }
    Ok((side(&a.base, &repo)?, side(&a.head, &repo)?))
}

/// The options a side is checked with, and whether it is a multicluster
/// repository (a directory whose meshc.yaml declares `clusters:`; a git
/// revision of one is a directory by now: `diff_checkout`).
fn side_options(input: &Input, overrides: &SettingsFile) -> Result<(Options, bool), InputError> {
    let options = Options { overrides: overrides.clone(), ..Options::default() };
    let multicluster = crate::multicluster::repository(input, &options)?.is_some();
    Ok((options, multicluster))
}

/// One side loaded, its settings read and its objects decoded
/// (`pipeline::prepare`), taking from `cache` what the other side shares.
fn prepare(input: &Input, options: &Options, cache: &Reuse) -> Result<Prepared, InputError> {
    pipeline::prepare(input, options, Some(cache))
}

/// Either side a multicluster repository: both checked whole, cluster by
/// cluster (no sharing between the sides), then compared per cluster and
/// across clusters.
fn run_multicluster(a: &DiffArgs, sides: [(&Input, &Options); 2]) -> ExitCode {
    let [(base_in, base_options), (head_in, head_options)] = sides;
    let (base, head) =
        match rayon::join(|| pipeline::check(base_in, base_options), || pipeline::check(head_in, head_options)) {
            (Ok(b), Ok(h)) => (std::mem::ManuallyDrop::new(b), std::mem::ManuallyDrop::new(h)),
            (Err(e), _) | (_, Err(e)) => return fail(e),
        };
    run_clusters(a, &base, &head)
}

pub fn run(a: DiffArgs) -> ExitCode {
    let (base_set, head_set) = match (parse_sets(&a.base_set), parse_sets(&a.head_set)) {
        (Ok(b), Ok(h)) => (b, h),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    // Kept until the diff ends: revisions of a multicluster repository
    // written out as directories.
    let mut checkouts = Vec::new();
    let sides = inputs(&a).and_then(|(b, h)| Ok((as_directory(b, &mut checkouts)?, as_directory(h, &mut checkouts)?)));
    let (base_in, head_in) = match sides {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let (base_options, head_options) = match (side_options(&base_in, &base_set), side_options(&head_in, &head_set)) {
        (Ok((b, false)), Ok((h, false))) => (b, h),
        (Ok((b, _)), Ok((h, _))) => return run_multicluster(&a, [(&base_in, &b), (&head_in, &h)]),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    // One after the other: the head reuses what the base parsed and decoded
    // (most files are the same; `pipeline::Reuse`).
    let cache = Reuse::default();
    crate::profile::stage("diff: read revisions");
    // Each side's input text is dropped once loaded (its sources hold a
    // copy), and the sources' too unless SARIF quotes them (`diff::drop_texts`).
    let quoted = matches!(a.format, Format::Sarif);
    let base = prepare(&base_in, &base_options, &cache).map(|mut p| {
        diff::drop_texts(&mut p.sources);
        p
    });
    drop(base_in);
    cache.first_side_done();
    crate::profile::stage("diff: base prepared");
    let head = prepare(&head_in, &head_options, &cache).map(|mut p| {
        if !quoted {
            diff::drop_texts(&mut p.sources);
        }
        p
    });
    drop(head_in);
    drop(cache);
    crate::profile::stage("diff: head prepared");
    let (mut base, mut head) = match (base, head) {
        (Ok(b), Ok(h)) => (b, h),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    pipeline::drop_shared_scalars(&mut base, &mut head);
    crate::profile::stage("diff: shared scalars dropped");
    pipeline::release_freed_memory();
    // Resolving and analysing are mostly one core's work each, and the
    // sides are independent: side by side (profile stages interleave here).
    let (base, head) =
        rayon::join(|| pipeline::complete(base, &base_options), || pipeline::complete(head, &head_options));
    crate::profile::stage("diff: both sides checked");
    // Freeing two large repositories' trees takes seconds; the process is about to exit.
    let (base, head) = (std::mem::ManuallyDrop::new(base), std::mem::ManuallyDrop::new(head));
    let sides = Sides::new(&base, &head);
    crate::profile::stage("diff: classes");
    let mut d = diff::diff(&sides, a.namespace.as_deref());
    if a.services {
        (d.services_opened, d.services_closed) = diff::services::changes(&sides, a.namespace.as_deref());
        d.services_compared = true;
    }
    crate::profile::stage("diff: compared");
    let traffic = match &a.traffic {
        Some(file) => match traffic::check_file(&sides, file) {
            Ok(checked) => checked,
            Err(e) => return fail(e),
        },
        None => traffic::Checked::default(),
    };
    let failed = report(&a, &head, &d, &traffic);
    crate::profile::stage("diff: rendered");
    std::mem::forget(sides);
    if failed { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

/// Both sides (or one) are multicluster repositories: each cluster's diff
/// and the calls across clusters (`diff::clusters`).
fn run_clusters(a: &DiffArgs, base: &Outcome, head: &Outcome) -> ExitCode {
    if base.multicluster.is_some() != head.multicluster.is_some() {
        return fail(
            "one side's meshc.yaml declares clusters: and the other's does not: there are no clusters to match",
        );
    }
    if a.services || a.traffic.is_some() {
        return fail(
            "--services and --traffic compare one cluster: in a multicluster repository, diff one cluster's directory",
        );
    }
    let d = diff::clusters::diff(base, head, a.namespace.as_deref());
    let traffic = traffic::Checked::default();
    let failed = report(a, head, &d, &traffic);
    if failed { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

/// Writes the diff in the chosen format; whether `--exit-code` fails it.
fn report(a: &DiffArgs, head: &Outcome, d: &diff::Diff, traffic: &traffic::Checked) -> bool {
    match a.format {
        Format::Human => out!("{}", render::human(d, traffic, Paint::detect())),
        Format::Json => outln!("{}", render::json(d, traffic)),
        Format::Markdown => out!("{}", render::markdown(d, traffic)),
        Format::Sarif => {
            let prefix = super::check::report_prefix(&a.path.as_ref().map_or(".".into(), |p| p.display().to_string()));
            outln!("{}", sarif(head, d, &prefix))
        }
    }
    a.exit_code && fails(&a.fail_on, d, traffic)
}

fn fails(fail_on: &[FailOn], d: &diff::Diff, traffic: &traffic::Checked) -> bool {
    let all = [FailOn::BrokenTraffic, FailOn::Closed, FailOn::Opened];
    let list = if fail_on.is_empty() { &all[..] } else { fail_on };
    list.iter().any(|f| match f {
        // A row that could not be checked may be a broken flow.
        FailOn::BrokenTraffic => !traffic.broken.is_empty() || !traffic.unchecked.is_empty(),
        FailOn::Closed => !d.closed.is_empty() || !d.egress_closed.is_empty() || !d.services_closed.is_empty(),
        FailOn::Opened => !d.opened.is_empty() || !d.egress_opened.is_empty() || !d.services_opened.is_empty(),
        FailOn::Finding => !d.findings.introduced.is_empty(),
    })
}

/// The findings the head introduces, as SARIF with head-side file:line.
fn sarif(head: &Outcome, d: &diff::Diff, prefix: &str) -> String {
    let introduced: std::collections::BTreeSet<(&str, &str)> =
        d.findings.introduced.iter().map(|f| (f.code, f.message.as_str())).collect();
    let findings: Vec<_> =
        head.findings.iter().filter(|f| introduced.contains(&(f.code.as_str(), f.message.as_str()))).cloned().collect();
    crate::report::ci::sarif(&findings, &head.sources, prefix)
}
