//! `meshc inject`: manifests in, the same manifests out with every pod
//! template that asks for it meshed (`compiler/src/inject/`). Like `linkerd
//! inject --manual`: flags override the templates' annotations and are
//! written onto them.

use super::EXIT_USAGE;
use crate::inject::documents::{Message, Options, inject_text};
use crate::inject::knobs;
use crate::load::discover;
use crate::settings::{Settings, SettingsFile};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// A directory (every .yaml, .yml, .json under it, in order), a file, or `-` for stdin.
    #[arg(default_value = "-")]
    path: String,
    /// Mesh settings file (default: meshc.yaml at the root of PATH): controlPlaneNamespace, trustDomain,
    /// clusterDomain, defaultNamespace and `namespaces:` are used.
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Namespace for objects that have none.
    #[arg(long = "namespace", short = 'n')]
    default_namespace: Option<String>,
    /// Inject every template in ingress mode (`linkerd.io/inject: ingress`).
    #[arg(long)]
    ingress: bool,
    /// The proxy image without its tag (config.linkerd.io/proxy-image).
    #[arg(long)]
    proxy_image: Option<String>,
    /// The proxy image's tag (config.linkerd.io/proxy-version).
    #[arg(long)]
    proxy_version: Option<String>,
    /// Always, IfNotPresent or Never (config.linkerd.io/proxy-image-pull-policy).
    #[arg(long)]
    image_pull_policy: Option<String>,
    /// mesh-proxy's log filter, MESH_PROXY_LOG (config.linkerd.io/proxy-log-level).
    #[arg(long)]
    proxy_log_level: Option<String>,
    /// plain or json (config.linkerd.io/proxy-log-format).
    #[arg(long)]
    proxy_log_format: Option<String>,
    #[arg(long)]
    proxy_cpu_request: Option<String>,
    #[arg(long)]
    proxy_cpu_limit: Option<String>,
    #[arg(long)]
    proxy_memory_request: Option<String>,
    #[arg(long)]
    proxy_memory_limit: Option<String>,
    /// Inbound ports not redirected to the proxy (config.linkerd.io/skip-inbound-ports).
    #[arg(long)]
    skip_inbound_ports: Option<String>,
    /// Outbound ports not redirected to the proxy (config.linkerd.io/skip-outbound-ports).
    #[arg(long)]
    skip_outbound_ports: Option<String>,
    /// Destination networks not redirected to the proxy (config.linkerd.io/skip-subnets).
    #[arg(long)]
    skip_subnets: Option<String>,
    /// Ports whose traffic is not protocol-detected (config.linkerd.io/opaque-ports).
    #[arg(long)]
    opaque_ports: Option<String>,
    /// The proxy's user id, which the redirection exempts (config.linkerd.io/proxy-uid).
    #[arg(long)]
    proxy_uid: Option<u32>,
    /// Run the proxy as a native sidecar (config.alpha.linkerd.io/proxy-enable-native-sidecar).
    #[arg(long)]
    native_sidecar: Option<bool>,
    /// Start the app once the proxy is ready (config.linkerd.io/proxy-await).
    #[arg(long = "await", value_enum)]
    await_ready: Option<Switch>,
    /// iptables backend of `mesh-proxy init`.
    #[arg(long, value_enum, default_value_t = IptablesMode::Legacy)]
    iptables_mode: IptablesMode,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Switch {
    Enabled,
    Disabled,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum IptablesMode {
    Nft,
    Legacy,
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(args: InjectArgs) -> ExitCode {
    let inputs = match read_inputs(&args.path) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let (mut options, mut namespaces) = Options::from_settings(&settings, overrides(&args));
    options.config.iptables_mode = match args.iptables_mode {
        IptablesMode::Nft => "nft",
        IptablesMode::Legacy => "legacy",
    }
    .to_owned();
    for (_, text) in &inputs {
        namespaces.collect(text);
    }
    // Files are independent once the namespaces are known.
    use rayon::prelude::*;
    let injected: Vec<_> = inputs.par_iter().map(|(_, text)| inject_text(text, &namespaces, &options)).collect();
    let mut all = Vec::new();
    for (i, ((name, _), (out, messages))) in inputs.iter().zip(injected).enumerate() {
        // Files are joined as documents of one stream, as `linkerd inject` prints them.
        if i > 0 {
            out!("---\n");
        }
        out!("{out}");
        if !out.is_empty() && !out.ends_with('\n') {
            out!("\n");
        }
        all.extend(messages.into_iter().map(|m| (name.clone(), m)));
    }
    for (file, Message { object, refused, why }) in &all {
        let what = if *refused { "cannot be injected" } else { "not injected" };
        eprintln!("{file}: {object}: {what}: {why}");
    }
    ExitCode::SUCCESS
}

/// The texts to inject, by display name, in order.
fn read_inputs(path: &str) -> Result<Vec<(String, String)>, String> {
    if path == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(|e| format!("cannot read stdin: {e}"))?;
        return Ok(vec![("<stdin>".to_owned(), discover::text_from_bytes(bytes).map_err(|e| format!("stdin: {e}"))?)]);
    }
    let found = discover::discover(Path::new(path)).map_err(|e| format!("{path}: {e}"))?;
    if let Some(bad) = found.errors.first() {
        return Err(format!("{}: {}", bad.name, bad.reason));
    }
    let mut out = Vec::new();
    for (name, real) in found.files {
        // meshc.yaml is meshc's settings, not a manifest.
        if name == crate::load::SETTINGS_FILE {
            continue;
        }
        out.push((name.clone(), discover::read_text(&real).map_err(|e| format!("{name}: {e}"))?));
    }
    if out.is_empty() {
        return Err(format!("{path}: no manifests (.yaml, .yml, .json) found"));
    }
    Ok(out)
}

fn settings(args: &InjectArgs) -> Result<Settings, String> {
    let path = match &args.settings {
        Some(p) => Some(p.clone()),
        None => Some(Path::new(&args.path).join(crate::load::SETTINGS_FILE)).filter(|p| p.is_file()),
    };
    let mut findings = Vec::new();
    let mut file = match path {
        Some(p) => {
            let text = discover::read_text(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            crate::settings::parse_file(0, &text, &mut findings)
        }
        None => SettingsFile::default(),
    };
    if let Some(ns) = &args.default_namespace {
        file.default_namespace = Some(ns.clone());
    }
    Ok(Settings::resolve(file, &mut findings, crate::findings::Span::default()))
}

/// Each flag given, as the annotation it stands for.
fn overrides(args: &InjectArgs) -> BTreeMap<String, String> {
    let text = |v: &Option<String>| v.clone();
    let flags: [(&str, Option<String>); 17] = [
        (crate::inject::INJECT_KEY, args.ingress.then(|| "ingress".to_owned())),
        (knobs::IMAGE_KEY, text(&args.proxy_image)),
        (knobs::VERSION_KEY, text(&args.proxy_version)),
        (knobs::PULL_POLICY_KEY, text(&args.image_pull_policy)),
        (knobs::LOG_LEVEL_KEY, text(&args.proxy_log_level)),
        (knobs::LOG_FORMAT_KEY, text(&args.proxy_log_format)),
        ("config.linkerd.io/proxy-cpu-request", text(&args.proxy_cpu_request)),
        ("config.linkerd.io/proxy-cpu-limit", text(&args.proxy_cpu_limit)),
        ("config.linkerd.io/proxy-memory-request", text(&args.proxy_memory_request)),
        ("config.linkerd.io/proxy-memory-limit", text(&args.proxy_memory_limit)),
        (knobs::SKIP_INBOUND_KEY, text(&args.skip_inbound_ports)),
        (knobs::SKIP_OUTBOUND_KEY, text(&args.skip_outbound_ports)),
        (knobs::SKIP_SUBNETS_KEY, text(&args.skip_subnets)),
        (knobs::OPAQUE_PORTS_KEY, text(&args.opaque_ports)),
        (knobs::UID_KEY, args.proxy_uid.map(|u| u.to_string())),
        (knobs::NATIVE_KEY, args.native_sidecar.map(|b| b.to_string())),
        (
            knobs::AWAIT_KEY,
            args.await_ready.map(|s| match s {
                Switch::Enabled => "enabled".to_owned(),
                Switch::Disabled => "disabled".to_owned(),
            }),
        ),
    ];
    flags.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))).collect()
}
