use super::{EXIT_FINDINGS, EXIT_USAGE};
use crate::findings::{Code, Severity};
use crate::load::Input;
use crate::pipeline::{self, Options};
use crate::report::{self, Summary};
use crate::settings::SettingsFile;
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A directory (searched recursively for .yaml, .yml, .json), a file, or `-` for stdin.
    #[arg(default_value = ".")]
    path: String,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Exit 1 when a finding at or above this severity remains.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
    /// Suppress a finding code for this run (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// Mesh settings file (default: meshc.yaml at the root of PATH).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Repository root that Flux `spec.path`s are relative to (default: the git top level of PATH, else PATH).
    #[arg(long)]
    root: Option<PathBuf>,
    /// kustomize engine for directories with a kustomization file: a `kustomize` binary, or `kubectl` (run as
    /// `kubectl kustomize`), or `none` to render nothing (default: `kustomize` on PATH, else `kubectl`).
    #[arg(long, value_name = "PATH")]
    kustomize_bin: Option<crate::load::render::Engine>,
    /// helm binary for Helm releases whose chart is in the repository (run as `helm template`), or `none` to
    /// render none (default: `helm` on PATH); unrendered releases stay unknown context.
    #[arg(long, value_name = "PATH")]
    helm_bin: Option<crate::load::render::Engine>,
    /// Seconds a renderer (kustomize, helm) may run before it is stopped and reported.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    render_timeout: f64,
    /// Cluster default inbound policy (Helm proxy.defaultInboundPolicy).
    #[arg(long)]
    default_inbound_policy: Option<String>,
    /// Cluster networks, comma-separated (Helm clusterNetworks).
    #[arg(long, value_delimiter = ',')]
    cluster_networks: Option<Vec<String>>,
    /// The cluster's pod CIDR, comma-separated (meshc.yaml podNetworks); unset, verdicts that turn on it are `depends`.
    #[arg(long, value_delimiter = ',')]
    pod_networks: Option<Vec<String>>,
    /// Identity trust domain (Helm identityTrustDomain).
    #[arg(long)]
    trust_domain: Option<String>,
    /// Namespace of Linkerd's control plane.
    #[arg(long)]
    control_plane_namespace: Option<String>,
    /// Networks allowed to reach probe paths (Helm policyController.probeNetworks).
    #[arg(long, value_delimiter = ',')]
    probe_networks: Option<Vec<String>>,
    /// The Linkerd release the cluster runs (e.g. 2.18, stable-2.14.10, edge-24.11.8); default 2.19.
    #[arg(long)]
    linkerd_version: Option<String>,
    /// Default opaque ports (Helm proxy.opaquePorts).
    #[arg(long)]
    default_opaque_ports: Option<String>,
    /// Namespace for objects that have none (what `kubectl apply -n` would use).
    #[arg(long = "namespace", short = 'n')]
    default_namespace: Option<String>,
    /// A MeshTest file to run besides the `*.meshtest.yaml` files under PATH (repeatable).
    #[arg(long = "tests", value_name = "FILE")]
    tests: Vec<PathBuf>,
    /// Color in human output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Human,
    Json,
    /// GitHub Actions annotations (workflow commands).
    Github,
    /// SARIF 2.1.0, for code-scanning uploads.
    Sarif,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Info,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(args: CheckArgs) -> ExitCode {
    let mut ignore = Vec::new();
    for code in args.ignore.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        match Code::parse(code) {
            Some(c) => ignore.push(c),
            None => {
                return fail(&format!("--ignore: unknown finding code `{code}` (see `meshc explain`)"));
            }
        }
    }
    let input = if args.path == "-" {
        let mut bytes = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
            return fail(&format!("cannot read stdin: {e}"));
        }
        match crate::load::discover::text_from_bytes(bytes) {
            Ok(text) => Input::Text { name: "<stdin>".to_owned(), text },
            Err(e) => return fail(&format!("stdin: {e}")),
        }
    } else {
        let path = PathBuf::from(&args.path);
        if !path.exists() {
            return fail(&format!("{}: no such file or directory", args.path));
        }
        Input::Path(path)
    };
    let overrides = SettingsFile {
        default_inbound_policy: args.default_inbound_policy,
        cluster_networks: args.cluster_networks,
        pod_networks: args.pod_networks,
        trust_domain: args.trust_domain,
        control_plane_namespace: args.control_plane_namespace,
        probe_networks: args.probe_networks,
        default_opaque_ports: args.default_opaque_ports,
        default_namespace: args.default_namespace,
        linkerd_version: args.linkerd_version,
        ..SettingsFile::default()
    };
    let Ok(timeout) = std::time::Duration::try_from_secs_f64(args.render_timeout) else {
        return fail(&format!("--render-timeout {}: not a number of seconds", args.render_timeout));
    };
    let kustomize = args.kustomize_bin.unwrap_or(crate::load::render::Engine::Search);
    let helm = args.helm_bin.unwrap_or(crate::load::render::Engine::Search);
    let render = crate::load::render::Tools { kustomize, helm, timeout };
    let drop_source_texts = !matches!(args.format, Format::Human);
    let options = Options {
        overrides,
        settings_file: args.settings,
        ignore,
        tests: Some(args.tests),
        root: args.root,
        render,
        drop_source_texts,
    };
    let outcome = match pipeline::check(&input, &options) {
        Ok(o) => o,
        Err(e) => return fail(&e.to_string()),
    };
    if outcome.sources.is_empty() {
        return fail(&format!("{}: no manifests (.yaml, .yml, .json) found", args.path));
    }
    let summary = Summary::new(&outcome.findings, outcome.objects, outcome.workloads());
    // CI tools want paths from the repository root: findings are relative to PATH.
    let prefix = report_prefix(&args.path);
    let text = match args.format {
        Format::Json => {
            // Streamed: the report of a large repository is megabytes.
            let _ = report::json::write(&outcome.findings, &outcome.sources, summary, std::io::stdout().lock());
            String::new()
        }
        Format::Github => report::ci::github(&outcome.findings, &outcome.sources, &prefix),
        Format::Sarif => report::ci::sarif(&outcome.findings, &outcome.sources, &prefix),
        Format::Human => {
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            report::human::render(&outcome.findings, &outcome.sources, summary, color)
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    let threshold = match args.fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
        FailOn::Info => Severity::Info,
    };
    let failed = outcome.findings.iter().any(|f| f.severity >= threshold);
    // Freeing a large repository's trees takes a noticeable share of the run
    // (0.5 s or more at 100k objects); the process is about to exit anyway.
    std::mem::forget(outcome);
    if failed { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

/// The directory findings' file names are relative to, as given on the command line.
pub(crate) fn report_prefix(path: &str) -> String {
    let p = std::path::Path::new(path);
    let dir = if p.is_file() { p.parent().unwrap_or(std::path::Path::new("")) } else { p };
    let dir = dir.to_string_lossy();
    let dir = dir.trim_start_matches("./").trim_end_matches('/');
    if path == "-" || dir == "." { String::new() } else { dir.to_owned() }
}
