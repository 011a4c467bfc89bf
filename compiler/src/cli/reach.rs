//! `meshc reach`, `meshc who-can-reach` and `meshc matrix`.

use super::EXIT_USAGE;
use crate::load::Input;
use crate::pipeline::{self, Options, Outcome};
use crate::query::classes::Classes;
use crate::query::reach::{self, Reach, workload_label};
use crate::query::render::{matrix_out, text};
use crate::query::{matrix, who};
use crate::settings::SettingsFile;
use clap::{Args, ValueEnum};
use mesh_proxy_api::HttpRequest;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct Common {
    /// A directory or file of manifests.
    path: PathBuf,
    /// Mesh settings file (default: meshc.yaml at the root of PATH).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// The cluster's pod CIDR, comma-separated (meshc.yaml podNetworks); unset, verdicts that turn on it are `depends`.
    #[arg(long, value_delimiter = ',')]
    pod_networks: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ReachArgs {
    #[command(flatten)]
    common: Common,
    /// The client: KIND/NS/NAME, NS/NAME, an identity, sa:NS/NAME, unmeshed[:NS], kubelet, external, localhost or ip:ADDRESS.
    #[arg(long)]
    from: String,
    /// The target: WORKLOAD:PORT (port by number or container port name).
    #[arg(long)]
    to: String,
    /// Request method (default GET when --path is given).
    #[arg(long)]
    method: Option<String>,
    /// Request path, with an optional ?query (default / when --method is given).
    #[arg(long = "path")]
    request_path: Option<String>,
    /// Request header NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Request authority (Host).
    #[arg(long)]
    host: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args, Debug)]
pub struct WhoArgs {
    #[command(flatten)]
    common: Common,
    /// The workload, optionally with a port: KIND/NS/NAME[:PORT].
    target: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MatrixFormat {
    Table,
    Json,
    Dot,
    Mermaid,
    Html,
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    #[command(flatten)]
    common: Common,
    /// Only targets in this namespace (clients are always every class).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    #[arg(long, value_enum, default_value_t = MatrixFormat::Table)]
    format: MatrixFormat,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn load(c: &Common) -> Result<Outcome, ExitCode> {
    if !c.path.exists() {
        return Err(fail(format!("{}: no such file or directory", c.path.display())));
    }
    let overrides = SettingsFile { pod_networks: c.pod_networks.clone(), ..SettingsFile::default() };
    let options = Options { settings_file: c.settings.clone(), overrides, ..Options::default() };
    pipeline::check(&Input::Path(c.path.clone()), &options).map_err(fail)
}

fn request(a: &ReachArgs) -> Result<Option<HttpRequest>, String> {
    if let Some(path) = a.request_path.as_deref().filter(|p| !p.starts_with('/')) {
        return Err(format!("--path `{path}` must start with /"));
    }
    let headers = a
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(n, v)| (n.trim(), v.trim()))
                .ok_or_else(|| format!("--header `{h}`: expected NAME=VALUE"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(reach::request_of(a.method.as_deref(), a.request_path.as_deref(), a.host.as_deref(), headers))
}

pub fn run_reach(a: ReachArgs) -> ExitCode {
    let o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let classes = Classes::derive(&o.resolved, &o.configs);
    let req = match request(&a) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let client = match reach::parse_client(&o, &classes, &a.from) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (wi, port) = match reach::parse_target(&o, &a.to) {
        Ok((wi, Some(p))) => (wi, p),
        Ok((wi, None)) => match single_port(&o, wi) {
            Ok(p) => (wi, p),
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    let result = reach::reach(&o, client, wi, port, req.as_ref());
    match a.format {
        Format::Json => outln!("{}", reach_json(&result, req.is_some())),
        Format::Text => {
            let line = req.as_ref().map(|r| format!("{} {}", r.method, r.path));
            out!("{}", text::reach(&result, line.as_deref(), text::Paint::detect()));
        }
    }
    ExitCode::SUCCESS
}

/// A target without a port is fine when the workload has exactly one.
fn single_port(o: &Outcome, wi: usize) -> Result<u16, String> {
    let ports = who::target_ports(&o.resolved.workloads[wi], o.configs[wi].as_ref());
    match ports.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!("{} has ports {ports:?}: name one as WORKLOAD:PORT", workload_label(o, wi))),
    }
}

/// Version 1: with a request, one verdict at the top level; without, the
/// verdict of every route under `routes` and an overall `verdict`
/// (`allow`, `deny`, `partial` when some routes allow, or `depends` when
/// none does for sure and some do depending on the pod CIDR).
pub fn reach_json(r: &Reach, with_request: bool) -> String {
    let mut v = serde_json::json!({
        "version": 1,
        "client": r.client,
        "target": r.target,
        "server": r.server,
    });
    if let Some(limit) = &r.rate_limit {
        v["rateLimit"] = serde_json::to_value(limit).expect("rate limit serializes");
    }
    if with_request && let Some(one) = r.verdicts.first() {
        let one = serde_json::to_value(one).expect("verdict serializes");
        for (k, val) in one.as_object().expect("object") {
            v[k] = val.clone();
        }
    } else {
        use crate::query::evaluate::Verdict;
        let count = |want: Verdict| r.verdicts.iter().filter(|x| x.verdict == want).count();
        // Allowed on some route for sure is partial; on none for sure but on
        // some where the pod CIDR decides, it depends (each route says when).
        v["verdict"] = serde_json::json!(match (count(Verdict::Allow), count(Verdict::Depends)) {
            (0, 0) => "deny",
            (0, _) => "depends",
            (n, _) if n == r.verdicts.len() => "allow",
            _ => "partial",
        });
        v["routes"] = serde_json::to_value(&r.verdicts).expect("verdicts serialize");
    }
    serde_json::to_string_pretty(&v).expect("json")
}

pub fn run_who(a: WhoArgs) -> ExitCode {
    let o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (wi, port) = match reach::parse_target(&o, &a.target) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let classes = Classes::derive(&o.resolved, &o.configs);
    let answers = who::who_can_reach(&o, &classes, wi, port);
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "version": 1,
                "workload": workload_label(&o, wi),
                "ports": answers,
                "classes": classes.classes,
            });
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Text => out!("{}", text::who(&workload_label(&o, wi), &answers, &classes, text::Paint::detect())),
    }
    ExitCode::SUCCESS
}

pub fn run_matrix(a: MatrixArgs) -> ExitCode {
    let o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let scope = matrix::workloads_in(&o, a.namespace.as_deref());
    if let Some(ns) = &a.namespace
        && scope.is_empty()
    {
        return fail(format!("namespace {ns} has no workloads in {}", a.common.path.display()));
    }
    let classes = Classes::derive(&o.resolved, &o.configs);
    crate::profile::stage("matrix: classes");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let title = format!("meshc matrix: {}", a.common.path.display());
    let written = match a.format {
        MatrixFormat::Json => matrix_out::json(&mut out, &o, &classes, &scope, &|s| s).map(drop),
        MatrixFormat::Table => matrix_out::table(&mut out, &o, &classes, &scope),
        MatrixFormat::Dot => matrix_out::dot(&mut out, &o, &classes, &scope),
        MatrixFormat::Mermaid => matrix_out::mermaid(&mut out, &o, &classes, &scope),
        MatrixFormat::Html => matrix_out::html(&mut out, &o, &classes, &scope, &title),
    };
    let written = written.and_then(|()| out.flush());
    crate::profile::stage("matrix: written");
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
