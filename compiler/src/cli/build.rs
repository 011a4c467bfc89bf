use super::{EXIT_FINDINGS, EXIT_USAGE};
use crate::emit::{self, BuildInfo, Built, ConfigOut, keys, revision, sequence, write};
use crate::findings::{Code, Severity};
use crate::load::Input;
use crate::pipeline::Outcome;
use crate::pipeline::{self, Options};
use crate::report::{self, Summary};
use crate::settings::SettingsFile;
use clap::Args;
use mesh_proxy_api::envelope::SigningKey;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Cluster settings come from `meshc.yaml` in the repository rather than
/// from flags, so that a signed build is reproducible from its revision.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// A directory (searched recursively for .yaml, .yml, .json) or a file.
    #[arg(default_value = ".")]
    pub(super) path: PathBuf,
    /// The private key (PKCS#8 PEM, from `meshc keygen`).
    #[arg(long, value_name = "KEY")]
    pub(super) key: PathBuf,
    /// Write the build into this directory (see README, "meshc build").
    #[arg(long, value_name = "DIR", conflicts_with = "stdout", required_unless_present = "stdout")]
    pub(super) out: Option<PathBuf>,
    /// Print one YAML stream (CRDs, bundle, configs) instead, e.g. for an Argo CD plugin.
    #[arg(long)]
    pub(super) stdout: bool,
    /// Source revision to record (default: git HEAD of PATH, `-dirty` if PATH has changes).
    #[arg(long)]
    pub(super) revision: Option<String>,
    /// The build's sequence, signed into the bundle and every config; the
    /// runtime and proxies refuse a lower one. Default: the source commit's
    /// committer time (Unix seconds), or the clock when PATH is not a clean
    /// git work tree.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub(super) sequence: Option<u64>,
    /// Write a build whose sequence is not above the one already in --out
    /// (a deliberate rollback; the runtime still refuses it).
    #[arg(long)]
    pub(super) allow_rollback: bool,
    /// Sign even when there are error findings; the bundle says so.
    #[arg(long)]
    pub(super) allow_errors: bool,
    /// Suppress a finding code for this run (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(super) ignore: Vec<String>,
    /// Mesh settings file (default: meshc.yaml at the root of PATH).
    #[arg(long)]
    pub(super) settings: Option<PathBuf>,
    /// Namespace for objects that have none (what `kubectl apply -n` would use).
    #[arg(long = "namespace", short = 'n')]
    pub(super) default_namespace: Option<String>,
    /// In a multicluster repository, build this cluster only (required with --stdout there).
    #[arg(long, value_name = "NAME")]
    pub(super) cluster: Option<String>,
}

pub(super) fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn options(args: &BuildArgs) -> Result<Options, String> {
    let mut ignore = Vec::new();
    for code in args.ignore.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        ignore.push(
            Code::parse(code)
                .ok_or_else(|| format!("--ignore: unknown finding code `{code}` (see `meshc explain`)"))?,
        );
    }
    let overrides = SettingsFile { default_namespace: args.default_namespace.clone(), ..SettingsFile::default() };
    Ok(Options {
        overrides,
        settings_file: args.settings.clone(),
        ignore,
        tests: Some(Vec::new()),
        root: None,
        render: Default::default(),
        drop_source_texts: false,
    })
}

/// The revision and sequence to sign; says so when the sequence is the
/// clock's rather than a commit's.
pub(super) fn build_info(args: &BuildArgs, previous: Option<u64>, error_findings: usize) -> BuildInfo {
    let source = revision::detect(&args.path);
    let sequence = args.sequence.unwrap_or_else(|| match sequence::default(source.committed_at, previous) {
        (s, sequence::Origin::Commit) => s,
        (s, sequence::Origin::Clock) => {
            eprintln!(
                "note: {} is not a clean git work tree: sequence {s} is the current time (pass --sequence to choose one)",
                args.path.display()
            );
            s
        }
    });
    let source_revision = args.revision.clone().unwrap_or(source.revision);
    BuildInfo { source_revision, sequence, error_findings }
}

/// The number of error findings, or the refusal to sign them without `--allow-errors`.
pub(super) fn error_findings(args: &BuildArgs, outcome: &pipeline::Outcome) -> Result<usize, ExitCode> {
    let errors: Vec<_> = outcome.findings.iter().filter(|f| f.severity == Severity::Error).cloned().collect();
    if !errors.is_empty() && !args.allow_errors {
        let summary = Summary::new(&outcome.findings, outcome.objects, outcome.workloads());
        eprint!("{}", report::human::render(&errors, &outcome.sources, summary, false));
        eprintln!(
            "error: {} error finding(s): refusing to sign configs for a policy that does not check (run `meshc check {}`, or pass --allow-errors)",
            errors.len(),
            args.path.display()
        );
        return Err(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(errors.len())
}

pub fn run(args: BuildArgs) -> ExitCode {
    let key = match keys::read_signing_key(&args.key) {
        Ok(k) => k,
        Err(e) => return usage(&e),
    };
    if !args.path.exists() {
        return usage(&format!("{}: no such file or directory", args.path.display()));
    }
    let options = match options(&args) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    // Each config's outbound part is laid out as it is signed (`sign`), not
    // for all configs first: `pipeline::compile` would hold them all.
    let outcome = match pipeline::check(&Input::Path(args.path.clone()), &options) {
        Ok(o) => o,
        Err(e) => return usage(&e.to_string()),
    };
    if outcome.sources.is_empty() {
        return usage(&format!("{}: no manifests (.yaml, .yml, .json) found", args.path.display()));
    }
    if outcome.multicluster.is_some() {
        return super::build_clusters::run(&args, &key, outcome);
    }
    if args.cluster.is_some() {
        return usage("--cluster applies to a repository whose meshc.yaml declares clusters:");
    }
    let errors = match error_findings(&args, &outcome) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let previous = match args.out.as_deref().filter(|_| !args.allow_rollback).map(sequence::previous) {
        Some(Err(e)) => return usage(&e),
        Some(Ok(p)) => p,
        None => None,
    };
    let info = build_info(&args, previous.as_ref().map(|p| p.sequence), errors);
    let written = match &args.out {
        Some(dir) => build_into(dir, &outcome, &key, &info, previous.as_ref()).map(|summary| {
            eprintln!(
                "wrote {summary} and the MeshBundle to {} (revision {}, sequence {})",
                dir.display(),
                info.source_revision,
                info.sequence
            );
        }),
        None => sign(&outcome, &key, &info, &ConfigOut::Keep).and_then(|built| {
            crate::profile::stage("build: signed");
            let written = std::io::stdout().lock().write_all(built.stream().as_bytes());
            std::mem::forget(built);
            written.map_err(|e| format!("cannot write stdout: {e}"))
        }),
    };
    crate::profile::stage("build: written");
    // Like check: freeing a large repository's analysis at exit is the OS's job.
    std::mem::forget(outcome);
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage(&e),
    }
}

/// Signs every config and shared Service policy of `outcome`.
fn sign(outcome: &Outcome, key: &SigningKey, info: &BuildInfo, out: &ConfigOut) -> Result<Built, String> {
    emit::build_outcome(outcome, key, info, out).map_err(|e| e.to_string())
}

/// `--out DIR`: each config file is written as soon as it is signed, when
/// the sequence is known to go forward; the same sequence again is admitted
/// only for the same signed content, which needs every digest first, so
/// then the files are kept until the check. Returns what it wrote, for the message.
fn build_into(
    dir: &Path,
    outcome: &Outcome,
    key: &SigningKey,
    info: &BuildInfo,
    previous: Option<&sequence::Previous>,
) -> Result<String, String> {
    let same_sequence = previous.is_some_and(|p| p.sequence == info.sequence);
    if !same_sequence {
        // The digest decides only between equal sequences.
        sequence::check_forward(previous, info.sequence, "")?;
    }
    let writer = write::DirWriter::open(dir)?;
    let write_now = |rel: &str, text: &str| writer.write(rel, text);
    let out = if same_sequence { ConfigOut::Keep } else { ConfigOut::Write(&write_now) };
    let built = sign(outcome, key, info, &out)?;
    crate::profile::stage("build: signed");
    sequence::check_forward(previous, info.sequence, &built.bundle_digest)?;
    let summary = built.summary();
    write::finish_dir(writer, &built)?;
    std::mem::forget(built);
    Ok(summary)
}
