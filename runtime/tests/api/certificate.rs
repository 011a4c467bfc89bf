use crate::support::*;
use http::StatusCode;
use mesh_common::identity::Identity;
use mesh_common::identity::pki::{WorkloadCert, write_identity_dir};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_token_gets_a_day_long_certificate_for_its_identity() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let tls = tls_config(None, files.pki.anchors_pem());
    let (key, pem) = csr(FRONTEND_ID);
    let r = post_json(
        rt.api_addr,
        tls.clone(),
        "/v1/certificate",
        serde_json::json!({"csr": pem, "token": "good-frontend"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let doc = r.json();
    let chain = doc["certificate"].as_str().unwrap().to_owned();

    let ders = CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(ders.len(), 2, "leaf then issuer");
    let (_, leaf) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(format!("{:?}", san.value.general_names), format!("[DNSName(\"{FRONTEND_ID}\")]"));
    let not_after = UNIX_EPOCH + Duration::from_secs(leaf.validity().not_after.timestamp() as u64);
    let left = not_after.duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(24 * 3600 - 60) && left <= Duration::from_secs(24 * 3600), "{left:?}");
    let expires_at =
        time::OffsetDateTime::parse(doc["expiresAt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(SystemTime::from(expires_at), not_after);

    // It chains to the trust anchors: mesh-proxy's Identity loads it (it
    // checks the chain against ca.crt), and the runtime accepts it as the
    // frontend's client certificate.
    let dir = files.tmp.path().join("issued");
    let cert = WorkloadCert { name: FRONTEND_ID.into(), chain_pem: chain, key_pem: key.serialize_pem() };
    write_identity_dir(&dir, &cert, files.pki.anchors_pem()).unwrap();
    let id = Identity::load(&dir).unwrap();
    assert_eq!(id.name(), FRONTEND_ID);
    let frontend = config("frontend");
    let r = get(rt.api_addr, id.client_config(), &config_path(&workload_key(&frontend), None, None)).await;
    assert_eq!(r.status, StatusCode::OK);

    let (_, metrics) = admin_get(rt.admin_addr, "/metrics").await;
    assert!(metrics.contains("mesh_runtime_certificates_issued_total 1"), "{metrics}");
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_wrong_csrs_get_no_certificate() {
    let files = Files::new();
    let rt = mesh_runtime::start(files.settings()).await.unwrap();
    let tls = tls_config(None, files.pki.anchors_pem());
    let ask = |token: &str, csr: String| serde_json::json!({"csr": csr, "token": token});
    let cases = [
        ("expired token", ask("old-frontend", csr(FRONTEND_ID).1), StatusCode::FORBIDDEN, "expired"),
        ("unknown token", ask("made-up", csr(FRONTEND_ID).1), StatusCode::FORBIDDEN, "not valid"),
        (
            "another name",
            ask("good-frontend", csr("podinfo.podinfo.serviceaccount.identity.linkerd.cluster.local").1),
            StatusCode::FORBIDDEN,
            "grants only",
        ),
        ("not a CSR", ask("good-frontend", "garbage".into()), StatusCode::BAD_REQUEST, "bad CSR"),
        ("not the request shape", serde_json::json!({"csr": 1}), StatusCode::BAD_REQUEST, "expected"),
    ];
    for (what, body, status, says) in cases {
        let r = post_json(rt.api_addr, tls.clone(), "/v1/certificate", body).await;
        assert_eq!(r.status, status, "{what}");
        let msg = r.json()["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(says), "{what}: {msg}");
    }
    // Revoking: the token leaves the file.
    std::fs::write(&files.tokens, r#"{"tokens": []}"#).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = post_json(rt.api_addr, tls.clone(), "/v1/certificate", ask("good-frontend", csr(FRONTEND_ID).1)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a revoked token");
    let (_, metrics) = admin_get(rt.admin_addr, "/metrics").await;
    assert!(metrics.contains(r#"mesh_runtime_certificates_refused_total{reason="expired-token"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"mesh_runtime_certificates_refused_total{reason="unknown-token"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"mesh_runtime_certificates_refused_total{reason="wrong-name"} 1"#), "{metrics}");
    assert!(!metrics.contains("mesh_runtime_certificates_issued_total 1"), "{metrics}");
    rt.shutdown.cancel();
    rt.stopped().await;
}
