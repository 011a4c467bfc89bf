//! `config.linkerd.io/access-log` on a pod template reaches its ProxyConfig;
//! an invalid value is a finding and no access log.

use mesh_proxy_api::AccessLogFormat;
use meshc::findings::Code;
use meshc::load::Input;
use meshc::pipeline::{self, Options};

fn deployment(name: &str, access_log: Option<&str>) -> String {
    let annotation = access_log.map_or(String::new(), |v| format!("\n        config.linkerd.io/access-log: \"{v}\""));
    format!(
        "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations:
        linkerd.io/inject: enabled{annotation}
    spec:
      containers:
      - name: app
        image: app
        ports: [{{containerPort: 8080}}]
"
    )
}

#[test]
fn the_annotation_sets_the_config_field() {
    let text = [
        deployment("plain", None),
        deployment("apache", Some("apache")),
        deployment("json", Some("json")),
        deployment("bad", Some("xml")),
    ]
    .concat();
    let input = Input::Text { name: "repo.yaml".into(), text };
    let outcome = pipeline::compile(&input, &Options::default()).expect("text input is always readable");
    let format = |name: &str| {
        let c = outcome.configs.iter().flatten().find(|c| c.workload.name == name);
        c.unwrap_or_else(|| panic!("{name} is meshed")).access_log
    };
    assert_eq!(format("plain"), None);
    assert_eq!(format("apache"), Some(AccessLogFormat::Apache));
    assert_eq!(format("json"), Some(AccessLogFormat::Json));
    assert_eq!(format("bad"), None);
    let invalid: Vec<&str> =
        outcome.findings.iter().filter(|f| f.code == Code::InvalidAnnotation).map(|f| f.message.as_str()).collect();
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert!(invalid[0].contains("Deployment shop/bad") && invalid[0].contains("`xml`"), "{invalid:?}");
}
