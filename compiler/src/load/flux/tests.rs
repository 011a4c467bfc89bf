use crate::findings::Code;
use crate::load::yaml::Value;
use crate::load::{Input, load};

fn files(list: &[(&str, &str)]) -> Input {
    let files = list.iter().map(|(n, t)| (n.to_string(), Ok(t.to_string()))).collect();
    Input::Files { files, settings: None }
}

const KUSTOMIZATION: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: app, namespace: flux-system}\nspec:\n  path: ./app\n  postBuild:\n    substituteFrom:\n    - {kind: Secret, name: vars}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: vars, namespace: flux-system}\ndata: {PORT: OTA5MA==}\n";

#[test]
fn secret_values_are_decoded_and_disabled_objects_left_alone() {
    let app = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: '${PORT}'}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations: {kustomize.toolkit.fluxcd.io/substitute: disabled}\ndata: {run: 'echo ${PORT}'}\n";
    let loaded = load(&files(&[("flux/app.yaml", KUSTOMIZATION), ("app/web.yaml", app)])).unwrap();
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    let service = loaded.objects.iter().find(|o| o.kind == "Service").unwrap();
    let port = &service.node.get("spec").unwrap().get("ports").unwrap();
    let Value::Seq(ports) = &port.value else { panic!("ports is not a sequence") };
    // OTA5MA== is base64 for 9090; the quoted '${PORT}' is re-read as Flux re-reads it: a number.
    assert_eq!(ports[0].get("port").unwrap().value, Value::Int(9090));
    let script = loaded.objects.iter().find(|o| o.kind == "ConfigMap").unwrap();
    assert_eq!(script.node.get("data").unwrap().get("run").unwrap().as_str(), Some("echo ${PORT}"));
}

#[test]
fn without_post_build_nothing_is_substituted() {
    let k =
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: app}\nspec: {path: ./app}\n";
    let app = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: '${NAME:=web}'}\n";
    let loaded = load(&files(&[("k.yaml", k), ("app/sa.yaml", app)])).unwrap();
    let sa = loaded.objects.iter().find(|o| o.kind == "ServiceAccount").unwrap();
    assert_eq!(sa.node.get("metadata").unwrap().get("name").unwrap().as_str(), Some("${NAME:=web}"));
}

#[test]
fn a_thousand_kustomizations_in_cycles_and_missing_paths_complete() {
    // k{i} lives in d{i} and applies d{i+1}; d999's applies d0 (one cycle of
    // 1000), and every tenth also has a Kustomization with a missing path.
    let mut list = Vec::new();
    for i in 0..1000 {
        let next = (i + 1) % 1000;
        let mut text = format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: k{i}}}\nspec: {{path: ./d{next}}}\n"
        );
        if i % 10 == 0 {
            text.push_str(&format!(
                "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: m{i}}}\nspec: {{path: ./missing{i}}}\n"
            ));
        }
        list.push((format!("d{i}/k.yaml"), text));
    }
    let refs: Vec<(&str, &str)> = list.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let loaded = load(&files(&refs)).unwrap();
    let count = |code| loaded.findings.iter().filter(|f| f.code == code).count();
    assert_eq!(count(Code::KustomizationCycle), 1);
    assert_eq!(count(Code::KustomizationPathMissing), 100);
}
