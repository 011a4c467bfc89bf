use super::EXIT_USAGE;
use crate::load::Input;
use crate::pipeline::{self, Options};
use crate::query::{show_config, workload_ref};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ShowConfigArgs {
    /// A directory or file of manifests.
    path: PathBuf,
    /// The workload: KIND/NAMESPACE/NAME (deploy, sts, ds, rs, job, cj, pod) or NAMESPACE/NAME;
    /// in a multicluster repository prefixed with its cluster (CLUSTER/KIND/NAMESPACE/NAME).
    workload: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Mesh settings file (default: meshc.yaml at the root of PATH).
    #[arg(long)]
    settings: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Prints what the workload's proxy will enforce (offline `linkerd diagnostics policy`).
pub fn run(args: ShowConfigArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    if !args.path.exists() {
        return fail(format!("{}: no such file or directory", args.path.display()));
    }
    let options = Options { settings_file: args.settings, ..Options::default() };
    // Only the config shown is composed with its namespace's shared
    // Service policies (`pipeline::compile` would compose every one).
    let mut outcome = match pipeline::check(&Input::Path(args.path), &options) {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    if let Some(m) = outcome.multicluster.as_deref_mut() {
        // `CLUSTER/KIND/NS/NAME`: that cluster's config, with the Services mirrored into it.
        let names: Vec<String> = m.clusters.iter().map(|c| c.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (c, workload) = match crate::query::cluster_ref::split(&names, &args.workload) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        return show(&m.clusters[c].outcome, workload, args.format);
    }
    show(&outcome, &args.workload, args.format)
}

fn show(outcome: &pipeline::Outcome, workload: &str, format: Format) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    let wi = match workload_ref::find(&outcome.resolved, workload) {
        Ok(wi) => wi,
        Err(e) => return fail(e),
    };
    let w = &outcome.resolved.workloads[wi];
    let Some(config) = crate::lower::outbound::scope::completed(outcome, wi) else {
        let why = w.meshed.as_ref().err().cloned().unwrap_or_default();
        return fail(format!(
            "{} {}/{} has no Linkerd proxy ({why}), so nothing is enforced there",
            w.kind, w.namespace, w.name
        ));
    };
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&config).expect("config serializes")),
        Format::Text => {
            out!("{}", show_config::render(&config));
        }
    }
    ExitCode::SUCCESS
}
