//! TokenReview against the in-process fake API server and, in the
//! `..._real_apiserver_...` tests, a real kube-apiserver whose tokens come
//! from TokenRequest and are checked against its service-account key. The
//! fake alone issues an already-expired token (the real server issues none
//! shorter than 10 minutes) and injects API failures.

mod servers;

use fake_apiserver::{FakeApiServer, TokenInfo, Verb};
use http::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount as KubeServiceAccount;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use mesh_runtime::kube::token_review::KubeTokenReviewer;
use mesh_runtime::tokens::{ServiceAccount, TokenError, TokenReviewer};
use servers::Server;
use std::time::{Duration, Instant, SystemTime};

const AUD: &str = "identity.l5d.io";

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

async fn setup() -> (FakeApiServer, KubeTokenReviewer) {
    let server = FakeApiServer::start().await.unwrap();
    let reviewer = KubeTokenReviewer::new(server.client().unwrap(), AUD);
    (server, reviewer)
}

/// A live token of `ns/sa` for `audience`: registered with the fake, or
/// requested from the real server (TokenRequest) for a ServiceAccount it
/// creates first.
async fn issue(server: &Server, ns: &str, sa: &str, audience: &str) -> String {
    match server {
        Server::Fake(fake) => {
            let token = format!("t-{ns}-{sa}-{audience}");
            fake.tokens().insert(&token, TokenInfo::new(ns, sa, in_an_hour()).with_audiences(&[audience]));
            token
        }
        Server::Real(_) | Server::OwnReal(_) => {
            let accounts: Api<KubeServiceAccount> = Api::namespaced(server.client().await, ns);
            let account = KubeServiceAccount {
                metadata: ObjectMeta { name: Some(sa.into()), ..Default::default() },
                ..Default::default()
            };
            if accounts.get_opt(sa).await.unwrap().is_none() {
                accounts.create(&PostParams::default(), &account).await.unwrap();
            }
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![audience.into()],
                    expiration_seconds: Some(3600),
                    ..Default::default()
                },
                ..Default::default()
            };
            let issued = accounts.create_token_request(sa, &PostParams::default(), &request).await.unwrap();
            issued.status.expect("TokenRequest answers with a status").token
        }
    }
}

/// Makes every token of `ns/sa` invalid: revoked on the fake; on the real
/// server, the ServiceAccount is deleted, which is how a cluster revokes its
/// tokens (bound tokens name the account's UID).
async fn revoke(server: &Server, ns: &str, sa: &str, token: &str) {
    match server {
        Server::Fake(fake) => assert!(fake.tokens().revoke(token)),
        Server::Real(_) | Server::OwnReal(_) => {
            let accounts: Api<KubeServiceAccount> = Api::namespaced(server.client().await, ns);
            accounts.delete(sa, &DeleteParams::default()).await.unwrap();
        }
    }
}

async fn reviewer(server: &Server) -> KubeTokenReviewer {
    KubeTokenReviewer::new(server.client().await, AUD)
}

async fn live_token_names_its_service_account(server: Server) {
    let ns = server.namespace("podinfo").await;
    let token = issue(&server, &ns, "frontend", AUD).await;
    let sa = reviewer(&server).await.review(&token).await.unwrap();
    assert_eq!(sa, ServiceAccount { namespace: ns, name: "frontend".into() });
}

async fn token_for_another_audience_is_refused(server: Server) {
    let ns = server.namespace("podinfo").await;
    let token = issue(&server, &ns, "frontend", "https://kubernetes.default.svc").await;
    assert_eq!(reviewer(&server).await.review(&token).await, Err(TokenError::Unknown));
}

async fn unknown_and_revoked_tokens_are_refused_on(server: Server) {
    let ns = server.namespace("ns").await;
    let reviewer = reviewer(&server).await;
    let token = issue(&server, &ns, "sa", AUD).await;
    assert!(reviewer.review(&token).await.is_ok());
    revoke(&server, &ns, "sa", &token).await;
    // kube-apiserver caches a successful token authentication for 10 s
    // (TokenSuccessCacheTTL in pkg/kubeapiserver/options/authentication.go),
    // TokenReview included: a revoked token is refused once that lapses, so
    // the runtime must not cache a review for longer than it means to.
    let revoked = Instant::now();
    while reviewer.review(&token).await != Err(TokenError::Unknown) {
        assert!(revoked.elapsed() < Duration::from_secs(15), "a revoked token still passes after 15 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(reviewer.review("never-issued").await, Err(TokenError::Unknown));
    assert_eq!(reviewer.review("").await, Err(TokenError::Unknown));
}

#[tokio::test]
async fn a_live_token_for_our_audience_names_its_service_account() {
    let (server, reviewer) = setup().await;
    let info = TokenInfo::new("podinfo", "frontend", in_an_hour()).with_audiences(&[AUD]).bound_to_pod("frontend-1");
    server.tokens().insert("t-frontend", info);
    let sa = reviewer.review("t-frontend").await.unwrap();
    assert_eq!(sa, ServiceAccount { namespace: "podinfo".into(), name: "frontend".into() });
    assert_eq!(server.faults().count_for(Verb::Create, "tokenreviews"), 1);
}

#[tokio::test]
async fn a_live_token_names_its_service_account_real_apiserver() {
    let Some(server) = Server::real("a_live_token_names_its_service_account_real_apiserver") else { return };
    live_token_names_its_service_account(server).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    token_for_another_audience_is_refused(Server::fake().await).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_real_apiserver() {
    let Some(server) = Server::real("a_token_for_another_audience_is_refused_real_apiserver") else { return };
    token_for_another_audience_is_refused(server).await;
}

#[tokio::test]
async fn unknown_and_revoked_tokens_are_refused() {
    unknown_and_revoked_tokens_are_refused_on(Server::fake().await).await;
}

#[tokio::test]
async fn unknown_and_revoked_tokens_are_refused_real_apiserver() {
    let Some(server) = Server::real("unknown_and_revoked_tokens_are_refused_real_apiserver") else { return };
    unknown_and_revoked_tokens_are_refused_on(server).await;
}

#[tokio::test]
async fn an_expired_token_is_reported_as_expired() {
    let (server, reviewer) = setup().await;
    let past = SystemTime::now() - Duration::from_secs(1);
    server.tokens().insert("t-old", TokenInfo::new("ns", "sa", past).with_audiences(&[AUD]));
    assert_eq!(reviewer.review("t-old").await, Err(TokenError::Expired));
}

#[tokio::test]
async fn api_failures_make_the_review_unavailable_not_a_refusal() {
    let (server, reviewer) = setup().await;
    server.tokens().insert("t-live", TokenInfo::new("ns", "sa", in_an_hour()).with_audiences(&[AUD]));
    for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::FORBIDDEN] {
        server.faults().fail_next(Verb::Create, 1, status);
        match reviewer.review("t-live").await {
            Err(TokenError::Unavailable(why)) => assert!(!why.contains("t-live"), "the token leaked into `{why}`"),
            other => panic!("{status}: {other:?}"),
        }
    }
    // The next review goes through.
    assert!(reviewer.review("t-live").await.is_ok());
}

#[tokio::test]
async fn an_unreachable_api_server_makes_the_review_unavailable() {
    let (server, reviewer) = setup().await;
    drop(server);
    // Nothing listens on the port any more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(reviewer.review("t").await, Err(TokenError::Unavailable(_))));
}
