//! TokenReview against the in-process fake API server.

use fake_apiserver::{FakeApiServer, TokenInfo, Verb};
use http::StatusCode;
use mesh_runtime::kube::token_review::KubeTokenReviewer;
use mesh_runtime::tokens::{ServiceAccount, TokenError, TokenReviewer};
use std::time::{Duration, SystemTime};

const AUD: &str = "identity.l5d.io";

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

async fn setup() -> (FakeApiServer, KubeTokenReviewer) {
    let server = FakeApiServer::start().await.unwrap();
    let reviewer = KubeTokenReviewer::new(server.client().unwrap(), AUD);
    (server, reviewer)
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
async fn a_token_for_another_audience_is_refused() {
    let (server, reviewer) = setup().await;
    let info = TokenInfo::new("podinfo", "frontend", in_an_hour()).with_audiences(&["https://kubernetes.default.svc"]);
    server.tokens().insert("t-api", info);
    assert_eq!(reviewer.review("t-api").await, Err(TokenError::Unknown));
}

#[tokio::test]
async fn unknown_and_revoked_tokens_are_refused() {
    let (server, reviewer) = setup().await;
    server.tokens().insert("t-live", TokenInfo::new("ns", "sa", in_an_hour()).with_audiences(&[AUD]));
    assert!(reviewer.review("t-live").await.is_ok());
    assert!(server.tokens().revoke("t-live"));
    assert_eq!(reviewer.review("t-live").await, Err(TokenError::Unknown));
    assert_eq!(reviewer.review("never-issued").await, Err(TokenError::Unknown));
    assert_eq!(reviewer.review("").await, Err(TokenError::Unknown));
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
