//! Helm releases under `meshc check` (`load/render/helm.rs`): a Flux
//! HelmRelease or Argo CD Application whose chart is in the repository is
//! rendered with `helm template`, and its objects are checked at the chart's
//! template files. No real helm runs here: each test writes a stand-in that
//! follows `helm template RELEASE CHART --namespace NS --values FILE...
//! --set K=V...`, checks the arguments it is given, and prints manifests
//! built from the values, so a test proves the values meshc passed.

use meshc::findings::{Code, Severity};
use meshc::load::Input;
use meshc::load::render::{Engine, Tools};
use meshc::pipeline::{self, Options};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

type Row = (Code, Severity, String, u32, String);

fn check(repo: &Path, helm: Engine, timeout: Duration) -> (Vec<Row>, pipeline::Outcome) {
    let render = Tools { helm, timeout, kustomize: Engine::Never };
    let options = Options { root: Some(repo.to_path_buf()), render, ..Options::default() };
    let o = pipeline::check(&Input::Path(repo.to_path_buf()), &options).unwrap();
    let name = |f: &meshc::findings::Finding| o.sources[f.span.source as usize].name.clone();
    let rows = o.findings.iter().map(|f| (f.code, f.severity, name(f), f.span.line, f.message.clone())).collect();
    (rows, o)
}

#[cfg(unix)]
fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("helm");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A stand-in `helm template`: it insists on `template RELEASE CHART` and
/// the expected release, namespace and chart, reads the last `--values`
/// file (the merged values, JSON) and each `--set`, and prints a meshed
/// Deployment whose name is the release, whose labels and port come from
/// the values, and whose default-inbound-policy annotation is
/// `values.policy`. It prints no namespace: Helm's objects land in the
/// release namespace.
fn stand_in(dir: &Path, release: &str, namespace: &str, chart: &str) -> PathBuf {
    let body = format!(
        r#"[ "$1" = template ] || {{ echo "unknown command $1" >&2; exit 1; }}
[ "$2" = "{release}" ] || {{ echo "release name $2, expected {release}" >&2; exit 1; }}
case "$3" in */{chart}) ;; *) echo "chart $3, expected .../{chart}" >&2; exit 1;; esac
[ -f "$3/Chart.yaml" ] || {{ echo "Error: $3 has no Chart.yaml" >&2; exit 1; }}
chart="$3"; shift 3
ns=""; values="$chart/values.yaml"; sets=""
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) ns="$2"; shift 2;;
    --values) [ -f "$2" ] || {{ echo "Error: open $2: no such file" >&2; exit 1; }}; values="$2"; shift 2;;
    --set|--set-string) sets="$sets $2"; shift 2;;
    *) echo "Error: unknown flag $1" >&2; exit 1;;
  esac
done
[ "$ns" = "{namespace}" ] || {{ echo "namespace $ns, expected {namespace}" >&2; exit 1; }}
field() {{ sed -n "s/.*\"$1\":\"\{{0,1\}}\([^\",}}]*\).*/\1/p" "$values"; }}
app=$(field app); port=$(field port); policy=$(field policy)
for s in $sets; do case "$s" in port=*) port="${{s#port=}}";; esac; done
printf -- '---\n# Source: web/templates/sa.yaml\n'; cat "$chart/templates/sa.yaml"
cat <<OUT
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {release}
spec:
  selector: {{matchLabels: {{app: $app}}}}
  template:
    metadata:
      labels: {{app: $app}}
      annotations: {{linkerd.io/inject: enabled, config.linkerd.io/default-inbound-policy: $policy}}
    spec:
      containers:
      - name: web
        image: web
        ports: [{{containerPort: $port}}]
OUT"#
    );
    script(dir, &body)
}

const CHART: &str = "apiVersion: v2\nname: web\nversion: 1.0.0\n";
const TEMPLATE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n";
/// A Server that selects the release's pods: without them, it selects nothing.
const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  port: 8080\n";

fn chart_repo(r: &Path) {
    write(r, "charts/web/Chart.yaml", CHART);
    // JSON, which is YAML, so the stand-in reads the chart's defaults the same way.
    write(r, "charts/web/values.yaml", "{\"app\":\"web\",\"port\":8080,\"policy\":\"all-authenticated\"}\n");
    write(r, "charts/web/templates/deployment.yaml", TEMPLATE);
    // No template syntax: read as an object too, until its chart is rendered.
    write(
        r,
        "charts/web/templates/sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop}\n",
    );
    write(r, "policy/server.yaml", SERVER);
}

/// Flux: the chart is a path of the GitRepository; the values are the
/// ConfigMap's `values.yaml` key, then the Secret's key set at `policy`
/// (targetPath), then `spec.values` over them; the release is named
/// `shop-web` (`targetNamespace-name`) and lands in the target namespace.
const FLUX: &str = r#"apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: flux-system}
spec:
  targetNamespace: shop
  chart:
    spec:
      chart: ./charts/web
      sourceRef: {kind: GitRepository, name: flux-system}
  valuesFrom:
  - {kind: ConfigMap, name: web-values}
  - {kind: Secret, name: web-policy, valuesKey: policy, targetPath: policy}
  values:
    port: 8080
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-values, namespace: flux-system}
data:
  values.yaml: |
    app: web
    port: 9999
---
apiVersion: v1
kind: Secret
metadata: {name: web-policy, namespace: flux-system}
stringData: {policy: all-sorts}
"#;

#[cfg(unix)]
#[test]
fn a_flux_release_with_its_chart_in_the_repository_is_rendered_with_its_values() {
    let repo = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let r = repo.path();
    chart_repo(r);
    write(r, "clusters/prod/web.yaml", FLUX);
    let helm = stand_in(bin.path(), "shop-web", "shop", "charts/web");
    let (rows, o) = check(r, Engine::At(helm), Duration::from_secs(20));
    // The Server selects the rendered pods on port 8080 (spec.values over the ConfigMap's 9999).
    assert!(!rows.iter().any(|r| r.0 == Code::ServerSelectsNothing || r.0 == Code::RenderFailed), "{rows:#?}");
    let w = o.resolved.workloads.iter().find(|w| w.name == "shop-web").expect("the rendered Deployment");
    assert_eq!(w.namespace, "shop", "Helm applies objects without a namespace in the release namespace");
    let ports: Vec<u16> = w.ports.iter().filter(|p| !p.injected).map(|p| p.port).collect();
    assert_eq!(ports, [8080], "spec.values is merged over the ConfigMap's port 9999");
    // The Secret's value reached the template: its bad annotation is reported at the template, line 1.
    let bad = rows.iter().find(|r| r.0 == Code::InvalidAnnotation).expect("the annotation from valuesFrom");
    assert_eq!((bad.2.as_str(), bad.3), ("charts/web/templates/deployment.yaml", 1), "{bad:?}");
    assert!(bad.4.contains("all-sorts"), "{bad:?}");
    // The chart's own files are rendered, not skipped nor read a second time as written.
    assert!(!rows.iter().any(|r| matches!(r.0, Code::SkippedFile | Code::DuplicateResource)), "{rows:#?}");
}

/// Argo CD: the source path holds the chart; the release name is the
/// Application's name, the namespace the destination's, the value files
/// are relative to the chart, and parameters (`--set`) win over them.
#[cfg(unix)]
#[test]
fn an_argo_application_with_a_chart_path_is_rendered() {
    let repo = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let r = repo.path();
    chart_repo(r);
    write(r, "charts/web/values-prod.yaml", "{\"app\":\"web\",\"port\":9999,\"policy\":\"all-authenticated\"}\n");
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web, namespace: argocd}\nspec:\n  destination: {namespace: shop}\n  source:\n    repoURL: https://example.com/repo.git\n    path: charts/web\n    helm:\n      valueFiles: [values-prod.yaml]\n      parameters: [{name: port, value: \"8080\"}]\n";
    write(r, "apps/web.yaml", app);
    let helm = stand_in(bin.path(), "web", "shop", "charts/web");
    let (rows, o) = check(r, Engine::At(helm), Duration::from_secs(20));
    assert!(!rows.iter().any(|r| matches!(r.0, Code::ServerSelectsNothing | Code::RenderFailed)), "{rows:#?}");
    let w = o.resolved.workloads.iter().find(|w| (w.namespace.as_str(), w.name.as_str()) == ("shop", "web")).unwrap();
    let ports: Vec<u16> = w.ports.iter().filter(|p| !p.injected).map(|p| p.port).collect();
    assert_eq!(ports, [8080], "the parameter is set over the value file's port 9999");
    assert!(!rows.iter().any(|r| r.0 == Code::InvalidAnnotation), "all-authenticated from values-prod.yaml: {rows:#?}");

    // Without `helm:`, Argo CD still takes a path holding a Chart.yaml as a chart.
    let plain = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web, namespace: argocd}\nspec:\n  destination: {namespace: shop}\n  source: {repoURL: https://example.com/repo.git, path: charts/web}\n";
    write(r, "apps/web.yaml", plain);
    let (rows, o) = check(r, Engine::At(bin.path().join("helm")), Duration::from_secs(20));
    assert!(!rows.iter().any(|r| matches!(r.0, Code::ServerSelectsNothing | Code::RenderFailed)), "{rows:#?}");
    assert!(o.resolved.workloads.iter().any(|w| (w.namespace.as_str(), w.name.as_str()) == ("shop", "web")));
}

/// Not rendered: the release stays unknown context, and the finding says why.
#[test]
fn a_release_meshc_cannot_render_stays_unknown_and_says_why() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    chart_repo(r);
    write(r, "clusters/prod/web.yaml", FLUX);
    let (rows, _) = check(r, Engine::Never, Duration::from_secs(20));
    let f = rows.iter().find(|r| r.0 == Code::ServerSelectsNothing).expect("the Server selects nothing");
    assert_eq!(f.1, Severity::Info, "{f:?}");
    assert!(f.4.contains("HelmRelease flux-system/web") && f.4.contains("--helm-bin none"), "{f:?}");

    let elsewhere =
        FLUX.replace("chart: ./charts/web", "chart: web").replace("kind: GitRepository", "kind: HelmRepository");
    write(r, "clusters/prod/web.yaml", &elsewhere);
    let (rows, _) = check(r, Engine::Never, Duration::from_secs(20));
    let f = rows.iter().find(|r| r.0 == Code::ServerSelectsNothing).unwrap();
    assert!(f.4.contains("its chart web comes from HelmRepository flux-system, not from the repository"), "{f:?}");
}

/// helm fails: `render-failed` at the release, with helm's message; the
/// release's objects stay unknown. helm hangs: stopped and reported.
#[cfg(unix)]
#[test]
fn helm_failures_and_hangs_are_reported_at_the_release() {
    let repo = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let r = repo.path();
    chart_repo(r);
    write(r, "clusters/prod/web.yaml", FLUX);
    let failing = script(bin.path(), "echo 'Error: parse error at (web/templates/deployment.yaml:3): bad' >&2; exit 1");
    let (rows, _) = check(r, Engine::At(failing), Duration::from_secs(20));
    let f = rows.iter().find(|r| r.0 == Code::RenderFailed).expect("render-failed");
    assert_eq!((f.2.as_str(), f.3), ("clusters/prod/web.yaml", 1), "{f:?}");
    assert!(f.4.contains("`helm template shop-web charts/web` failed: Error: parse error at"), "{f:?}");
    let s = rows.iter().find(|r| r.0 == Code::ServerSelectsNothing).unwrap();
    assert_eq!(s.1, Severity::Info, "{s:?}");

    let hang = script(bin.path(), "sleep 30");
    let start = Instant::now();
    let (rows, _) = check(r, Engine::At(hang), Duration::from_millis(300));
    assert!(start.elapsed() < Duration::from_secs(10), "the hung helm was not stopped");
    let f = rows.iter().find(|r| r.0 == Code::RenderFailed).expect("render-failed");
    assert!(f.4.contains("did not finish within 0.3 s and was stopped"), "{f:?}");
}
