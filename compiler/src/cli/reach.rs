//! `meshc reach`, `meshc who-can-reach` and `meshc matrix`.

use super::EXIT_USAGE;
use crate::load::Input;
use crate::pipeline::{self, Options, Outcome};
use crate::query::classes::Classes;
use crate::query::reach::{self, Reach, workload_label};
use crate::query::render::{matrix_out, text};
use crate::query::{matrix, svc, who};
use crate::settings::SettingsFile;
use clap::{Args, ValueEnum};
use mesh_proxy_api::HttpRequest;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct Common {
    /// A directory or file of manifests.
    pub(super) path: PathBuf,
    /// Mesh settings file (default: meshc.yaml at the root of PATH).
    #[arg(long)]
    pub(super) settings: Option<PathBuf>,
    /// The cluster's pod CIDR, comma-separated (meshc.yaml podNetworks); unset, verdicts that turn on it are `depends`.
    #[arg(long, value_delimiter = ',')]
    pub(super) pod_networks: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ReachArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// The client: KIND/NS/NAME, NS/NAME, an identity, sa:NS/NAME, unmeshed[:NS], kubelet, external, localhost or ip:ADDRESS.
    #[arg(long)]
    pub(super) from: String,
    /// The target: WORKLOAD:PORT (port by number or container port name), or
    /// svc/NAMESPACE/NAME:PORT (port by number or Service port name), or
    /// egress:HOST:PORT for a destination outside the cluster (DNS name or IP).
    #[arg(long)]
    pub(super) to: String,
    /// TLS SNI: the client opens a TLS connection whose ClientHello names it
    /// (an egress target defaults to it on port 443 without request options: HOST;
    /// a svc/ target is called with HTTP unless it is given).
    #[arg(long)]
    sni: Option<String>,
    /// Opaque TCP to an egress target: neither HTTP nor a TLS ClientHello.
    #[arg(long, conflicts_with = "sni")]
    tcp: bool,
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
    pub(super) format: Format,
}

#[derive(Args, Debug)]
pub struct WhoArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// The workload, optionally with a port: KIND/NS/NAME[:PORT]; a Service
    /// port, svc/NS/NAME:PORT (every client calling it with GET / and a request
    /// per route rule); or egress:HOST:PORT (every workload as a client of that
    /// destination outside the cluster).
    pub(super) target: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(super) format: Format,
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
    pub(super) common: Common,
    /// Only targets in this namespace (clients are always every class).
    #[arg(long, short = 'n')]
    pub(super) namespace: Option<String>,
    #[arg(long, value_enum, default_value_t = MatrixFormat::Table)]
    pub(super) format: MatrixFormat,
    /// Client → Service edges (each Service port called with GET / and a
    /// request per route rule) instead of client → workload edges; formats
    /// table and json.
    #[arg(long)]
    pub(super) services: bool,
}

pub(super) fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub(super) fn load(c: &Common) -> Result<Outcome, ExitCode> {
    load_with(c, pipeline::check)
}

/// With each config's outbound part, as `meshc build` signs it: what a
/// client's proxy does with a call to a Service.
pub(super) fn load_compiled(c: &Common) -> Result<Outcome, ExitCode> {
    load_with(c, pipeline::compile)
}

fn load_with(
    c: &Common,
    run: fn(&Input, &Options) -> Result<Outcome, crate::load::InputError>,
) -> Result<Outcome, ExitCode> {
    if !c.path.exists() {
        return Err(fail(format!("{}: no such file or directory", c.path.display())));
    }
    let overrides = SettingsFile { pod_networks: c.pod_networks.clone(), ..SettingsFile::default() };
    let options = Options { settings_file: c.settings.clone(), overrides, ..Options::default() };
    run(&Input::Path(c.path.clone()), &options).map_err(fail)
}

pub(super) fn request(a: &ReachArgs) -> Result<Option<HttpRequest>, String> {
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
    if super::reach_clusters::is_multicluster(&a.common) {
        return super::reach_clusters::run_reach(&a);
    }
    if svc::target::is_service(&a.to) {
        return run_reach_service(a);
    }
    let o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    reach_in(&o, &a, &a.from, &a.to)
}

/// `reach` in one cluster (`from` and `to` without a cluster prefix).
pub(super) fn reach_in(o: &Outcome, a: &ReachArgs, from: &str, to: &str) -> ExitCode {
    if svc::target::is_service(to) {
        return reach_service_in(o, a, from, to);
    }
    let classes = Classes::derive(&o.resolved, &o.configs);
    let req = match request(a) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let client = match reach::parse_client(o, &classes, from) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(target) = crate::query::egress_ref::parse(to) {
        return match target {
            Ok(target) => run_reach_egress(o, &client, &target, req, a),
            Err(e) => fail(e),
        };
    }
    if a.sni.is_some() || a.tcp {
        return fail(
            "--sni applies to svc/NS/NAME:PORT and egress:HOST:PORT targets only, --tcp to egress:HOST:PORT only",
        );
    }
    let (wi, port) = match reach::parse_target(o, to) {
        Ok((wi, Some(p))) => (wi, p),
        Ok((wi, None)) => match single_port(o, wi) {
            Ok(p) => (wi, p),
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    let result = reach::reach(o, client, wi, port, req.as_ref());
    match a.format {
        Format::Json => outln!("{}", reach_json(&result, req.is_some())),
        Format::Text => {
            let line = req.as_ref().map(|r| format!("{} {}", r.method, r.path));
            out!("{}", text::reach(&result, line.as_deref(), text::Paint::detect()));
        }
    }
    ExitCode::SUCCESS
}

/// `reach --to svc/...`: the client's proxy first, then each backend's
/// workloads. Without a request part, the request is `GET /`.
fn run_reach_service(a: ReachArgs) -> ExitCode {
    let o = match load_compiled(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    reach_service_in(&o, &a, &a.from, &a.to)
}

/// `reach --to svc/...` in one cluster; `o` is compiled (outbound parts complete).
pub(super) fn reach_service_in(o: &Outcome, a: &ReachArgs, from: &str, to: &str) -> ExitCode {
    reach_service_with(o, a, from, to, |_, _| {})
}

/// [`reach_service_in`], with `follow` given the answer and the request its
/// backends were judged with (`None`: a TLS connection) before it is shown.
pub(super) fn reach_service_with(
    o: &Outcome,
    a: &ReachArgs,
    from: &str,
    to: &str,
    follow: impl FnOnce(&mut svc::ServiceReach, Option<&HttpRequest>),
) -> ExitCode {
    if a.tcp {
        return fail(
            "--tcp applies to egress:HOST:PORT targets only (a svc/ target is called with HTTP, or TLS with --sni)",
        );
    }
    let classes = Classes::derive(&o.resolved, &o.configs);
    let req = match request(a) {
        Ok(Some(_)) if a.sni.is_some() => {
            return fail("--sni (TLS) and --method/--path/--header/--host (HTTP) describe different traffic: give one");
        }
        Ok(r) => r.unwrap_or_else(|| HttpRequest::new("GET", "/")),
        Err(e) => return fail(e),
    };
    let client = match reach::parse_client(o, &classes, from) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let target = match svc::target::parse(o, to) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let mut result = svc::reach(o, client, &target, &req, a.sni.as_deref());
    let judged_with = (a.sni.is_none() && !result.client_route.connection).then_some(&req);
    follow(&mut result, judged_with);
    match a.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&svc::render::json(&result)).expect("json")),
        Format::Text => {
            let grpc = a.sni.is_none() && req.header_values("content-type").any(|v| v.starts_with("application/grpc"));
            let line = match &a.sni {
                Some(sni) => format!("TLS SNI {sni}"),
                None => format!("{} {}", req.method, req.path),
            };
            out!("{}", svc::render::text(&result, &line, grpc, text::Paint::detect()));
        }
    }
    ExitCode::SUCCESS
}

fn run_reach_egress(
    o: &Outcome,
    client: &reach::ClientView,
    target: &crate::query::egress_ref::EgressRef,
    req: Option<HttpRequest>,
    a: &ReachArgs,
) -> ExitCode {
    use crate::query::egress;
    if (a.sni.is_some() || a.tcp) && req.is_some() {
        return fail(
            "--sni (TLS) or --tcp (opaque) and --method/--path/--header/--host (HTTP) describe different traffic: give one",
        );
    }
    let traffic = if a.tcp { egress::EgressProtocol::Opaque } else { egress::traffic_of(target, req, a.sni.clone()) };
    let result = match egress::reach_egress(o, client, target, &traffic) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match a.format {
        Format::Json => {
            let mut v = serde_json::to_value(&result).expect("egress reach serializes");
            v["version"] = serde_json::json!(1);
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Text => out!("{}", text::reach_egress(&result, text::Paint::detect())),
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
    if super::reach_clusters::is_multicluster(&a.common) {
        return super::query_clusters::run_who(&a);
    }
    if svc::target::is_service(&a.target) {
        return run_who_service(a);
    }
    let o = match load(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if let Some(target) = crate::query::egress_ref::parse(&a.target) {
        return match target {
            Ok(target) => run_who_egress(&o, &target, a.format),
            Err(e) => fail(e),
        };
    }
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

/// `who-can-reach svc/...`: every client group calling the Service port
/// (GET /, and a request per route rule).
fn run_who_service(a: WhoArgs) -> ExitCode {
    let o = match load_compiled(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    who_service_in(&o, &a.target, a.format)
}

/// `who-can-reach svc/...` in one cluster; `o` is compiled.
pub(super) fn who_service_in(o: &Outcome, spec: &str, format: Format) -> ExitCode {
    let target = match svc::target::parse(o, spec) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let classes = Classes::derive(&o.resolved, &o.configs);
    let rows = svc::who::who_can_reach(o, &classes, &target);
    match format {
        Format::Json => {
            let v = serde_json::json!({ "version": 1, "service": target.label(), "clients": rows });
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Text => out!("{}", svc::who::text(&target, &rows)),
    }
    ExitCode::SUCCESS
}

/// `matrix --services`: client → Service edges.
fn run_matrix_services(a: MatrixArgs) -> ExitCode {
    let o = match load_compiled(&a.common) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let targets = svc::matrix::service_targets(&o, a.namespace.as_deref());
    if let Some(ns) = &a.namespace
        && targets.is_empty()
    {
        return fail(format!("namespace {ns} has no Services in {}", a.common.path.display()));
    }
    let classes = Classes::derive(&o.resolved, &o.configs);
    let all = svc::matrix::edges(&o, &classes, &targets);
    match a.format {
        MatrixFormat::Json => {
            let v = serde_json::json!({ "version": 1, "services": all });
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        MatrixFormat::Table => out!("{}", svc::matrix::table(&all)),
        other => return fail(format!("matrix --services writes table or json, not {other:?}")),
    }
    ExitCode::SUCCESS
}

/// Default traffic for the destination: TLS on 443, else HTTP GET /.
pub(super) fn run_who_egress(o: &Outcome, target: &crate::query::egress_ref::EgressRef, format: Format) -> ExitCode {
    use crate::query::{egress, egress_who};
    let classes = Classes::derive(&o.resolved, &o.configs);
    let traffic = egress::traffic_of(target, None, None);
    let clients = match egress_who::who_can_reach_egress(o, &classes, target, &traffic) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match format {
        Format::Json => {
            let v = serde_json::json!({"version": 1, "target": target.to_string(), "clients": clients});
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Text => out!("{}", egress_who::render(target, &clients)),
    }
    ExitCode::SUCCESS
}

pub fn run_matrix(a: MatrixArgs) -> ExitCode {
    if super::reach_clusters::is_multicluster(&a.common) {
        return super::query_clusters::run_matrix(&a);
    }
    if a.services {
        return run_matrix_services(a);
    }
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
    let egress = crate::query::matrix_egress::rows(&o, &classes, a.namespace.as_deref());
    crate::profile::stage("matrix: classes");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let title = format!("meshc matrix: {}", a.common.path.display());
    let written = match a.format {
        MatrixFormat::Json => matrix_out::json(&mut out, &o, &classes, &scope, &egress, &|s| s).map(drop),
        MatrixFormat::Table => matrix_out::table(&mut out, &o, &classes, &scope, &egress),
        MatrixFormat::Dot => matrix_out::dot(&mut out, &o, &classes, &scope, &egress),
        MatrixFormat::Mermaid => matrix_out::mermaid(&mut out, &o, &classes, &scope, &egress),
        MatrixFormat::Html => matrix_out::html(&mut out, &o, &classes, &scope, &egress, &title),
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
