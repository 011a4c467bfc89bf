//! Kubernetes mode's certificate endpoint on both servers: proxies' tokens
//! reviewed by the API server (TokenReview), and an issuer rotated by editing
//! its Secret. On the fake the tokens are registered with it; on a real
//! server they come from TokenRequest and are signed with its
//! service-account key.

use crate::kube::{Cluster, NS, WAIT, b64, issuer_secret, on_both_servers, server, start};
use crate::servers::Server;
use crate::support::*;
use fake_apiserver::TokenInfo;
use http::StatusCode;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime};

const AUDIENCE: &str = "identity.l5d.io";

/// The issuer certificate in a chain the runtime issued (leaf, then issuer).
fn issuer_of(chain: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let ders = CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(ders.len(), 2, "leaf then issuer");
    ders[1].to_vec()
}

async fn certificate(c: &Cluster, token: &str) -> (StatusCode, Value) {
    let id = "frontend.podinfo.serviceaccount.identity.linkerd.cluster.local";
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(vec![id.to_owned()]).unwrap().serialize_request(&key).unwrap();
    let tls = tls_config(None, c.files.pki.anchors_pem());
    let body = json!({"csr": csr.pem().unwrap(), "token": token});
    let r = post_json(c.running.api_addr, tls, "/v1/certificate", body).await;
    (r.status, r.json())
}

/// A token of ServiceAccount `podinfo/frontend` for `audience`: registered
/// with the fake (under `name`), or requested from the real server.
async fn token(server: &Server, name: &str, audience: &str) -> String {
    if let Some(fake) = server.fake_server() {
        let far = SystemTime::now() + Duration::from_secs(3600);
        fake.tokens().insert(name, TokenInfo::new("podinfo", "frontend", far).with_audiences(&[audience]));
        return name.to_owned();
    }
    request_token(server, audience, None).await
}

async fn request_token(server: &Server, audience: &str, bound_to: Option<BoundObjectReference>) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(server.client().await, "podinfo");
    if accounts.get_opt("frontend").await.unwrap().is_none() {
        let account = ServiceAccount {
            metadata: ObjectMeta { name: Some("frontend".into()), ..Default::default() },
            ..Default::default()
        };
        accounts.create(&PostParams::default(), &account).await.unwrap();
    }
    let spec = TokenRequestSpec {
        audiences: vec![audience.into()],
        expiration_seconds: Some(3600),
        bound_object_ref: bound_to,
    };
    let request = TokenRequest { spec, ..Default::default() };
    let issued = accounts.create_token_request("frontend", &PostParams::default(), &request).await.unwrap();
    issued.status.expect("TokenRequest answers with a status").token
}

/// A token of `podinfo/frontend` for our audience that is no longer valid:
/// revoked on the fake; on the real server, bound to a Secret that is then
/// deleted (a bound token dies with its object). It is never reviewed
/// before, so no cached success outlives the revocation.
async fn revoked_token(server: &Server) -> String {
    if let Some(fake) = server.fake_server() {
        let far = SystemTime::now() + Duration::from_secs(3600);
        fake.tokens().insert("revoked", TokenInfo::new("podinfo", "frontend", far).with_audiences(&[AUDIENCE]));
        fake.tokens().revoke("revoked");
        return "revoked".into();
    }
    let secrets: Api<Secret> = Api::namespaced(server.client().await, "podinfo");
    let binding = Secret {
        metadata: ObjectMeta { name: Some("token-binding".into()), ..Default::default() },
        ..Default::default()
    };
    let binding = secrets.create(&PostParams::default(), &binding).await.unwrap();
    let bound_to = BoundObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        name: binding.metadata.name.clone(),
        uid: binding.metadata.uid.clone(),
    };
    let token = request_token(server, AUDIENCE, Some(bound_to)).await;
    secrets.delete("token-binding", &DeleteParams::default()).await.unwrap();
    token
}

async fn tokens_reviewed_and_rotated_issuer_signs(server: Server) {
    let mut c = start(server).await;
    let live = token(&c.server, "frontend-token", AUDIENCE).await;
    let other_audience = token(&c.server, "other-audience", "vault").await;
    let revoked = revoked_token(&c.server).await;
    let never_issued = "never-issued".to_owned();
    for (what, refused) in [("other audience", &other_audience), ("revoked", &revoked), ("never issued", &never_issued)]
    {
        assert_eq!(certificate(&c, refused).await.0, StatusCode::FORBIDDEN, "{what}");
    }
    let (code, first) = certificate(&c, &live).await;
    assert_eq!(code, StatusCode::OK, "{first}");
    let old_issuer = issuer_of(first["certificate"].as_str().unwrap());

    // cert-manager renews the issuer under the same anchor: the Secret changes.
    c.files.pki.rotate_issuer(mesh_common::identity::pki::Validity::valid_for(HOUR)).unwrap();
    c.files.pki.write_ca_dir(&c.files.ca_dir).unwrap();
    let secret = issuer_secret(&c.files);
    c.objects.replace("Secret", Some(NS), "mesh-identity-issuer", |live| live["data"] = secret["data"].clone()).await;
    let start = Instant::now();
    loop {
        let (code, next) = certificate(&c, &live).await;
        assert_eq!(code, StatusCode::OK, "{next}");
        if issuer_of(next["certificate"].as_str().unwrap()) != old_issuer {
            break;
        }
        assert!(start.elapsed() < WAIT, "the rotated issuer never signed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A Secret that does not hold a valid issuer is refused; the last good one signs on.
    let broken = |live: &mut Value| live["data"]["tls.key"] = json!(b64(b"not a key"));
    c.objects.replace("Secret", Some(NS), "mesh-identity-issuer", broken).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(certificate(&c, &live).await.0, StatusCode::OK);
    c.stop().await;
}

on_both_servers!(tokens_reviewed_and_rotated_issuer_signs:
    tokens_are_reviewed_and_a_rotated_issuer_signs_from_the_next_request,
    tokens_are_reviewed_and_a_rotated_issuer_signs_real_apiserver);
