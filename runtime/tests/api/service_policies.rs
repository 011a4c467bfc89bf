//! `GET /v1/service-policies` in file mode, over a real `meshc build` that
//! shares the example's Service policies.

use crate::support::*;
use http::StatusCode;
use mesh_proxy_api::envelope;
use meshc::emit::{self, BuildInfo, ConfigOut, write};

/// `meshc build --out dist` of the example, as the command writes it.
fn shared_build(files: &Files) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/podinfo-canary");
    let outcome = meshc::pipeline::check(&meshc::load::Input::Path(dir), &Default::default()).unwrap();
    let info =
        BuildInfo { source_revision: "shared".into(), sequence: sequence_of(&files.dist) + 1, error_findings: 0 };
    let built = emit::build_outcome(&outcome, &files.key, &info, &ConfigOut::Keep).unwrap();
    write::write_dir(&files.dist, &built).unwrap();
}

/// The set a built config names (`outbound.servicePolicies` of its payload).
fn named_set(files: &Files, name: &str) -> String {
    let text = std::fs::read_to_string(files.config_file(name)).unwrap();
    let object: serde_json::Value = serde_json::from_str(text.trim_start_matches("---").trim()).unwrap();
    let env: envelope::Envelope = serde_json::from_value(object["spec"]["envelope"].clone()).unwrap();
    let config = envelope::verify(&env, &[files.key.verifying_key()]).unwrap();
    config.outbound.service_policies.expect("the build shares policies, so the config names its set")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_gets_the_set_its_configs_name_and_only_its_own() {
    let files = Files::new();
    shared_build(&files);
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let frontend = config("frontend");
    let tls = tls_config(Some(&files.identity(&frontend.identity)), files.pki.anchors_pem());
    let ns = &frontend.workload.namespace;

    let r = get(rt.api_addr, tls.clone(), &format!("/v1/service-policies?namespace={ns}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.digest(), named_set(&files, "frontend"), "the digest its configs name");
    let policies = r.json()["policies"].as_array().unwrap().clone();
    assert!(!policies.is_empty(), "the canary's routes are shared");
    assert!(policies.iter().all(|p| p["kind"] == "ServicePolicy"), "{policies:?}");

    // Held while unchanged; another namespace's or none: refused.
    let held = format!("/v1/service-policies?namespace={ns}&after={}&wait=1", r.digest());
    assert_eq!(get(rt.api_addr, tls.clone(), &held).await.status, StatusCode::NOT_MODIFIED);
    let r = get(rt.api_addr, tls.clone(), "/v1/service-policies?namespace=elsewhere").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = get(rt.api_addr, tls.clone(), "/v1/service-policies").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    rt.shutdown.cancel();
    rt.stopped().await;
}
