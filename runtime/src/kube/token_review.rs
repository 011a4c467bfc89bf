//! Certificate requests' ServiceAccount tokens, checked by the API server
//! with an `authentication.k8s.io/v1` TokenReview.
//!
//! The token is only ever put in the review's `spec.token`: it is never
//! logged, and nothing here formats the request. Errors carry the API
//! server's own message, which does not repeat the token.

use crate::tokens::{ReviewFuture, ServiceAccount, TokenError, TokenReviewer};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};
use std::time::Duration;

/// A review slower than this is answered as unavailable: the proxy asking
/// for a certificate retries, which beats holding its request open.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// [`TokenReviewer`] through the API server.
pub struct KubeTokenReviewer {
    api: Api<TokenReview>,
    audience: String,
}

impl KubeTokenReviewer {
    /// `audience` is the one a proxy's projected token must carry
    /// (`--token-audience`).
    pub fn new(client: kube::Client, audience: impl Into<String>) -> Self {
        KubeTokenReviewer { api: Api::all(client), audience: audience.into() }
    }

    async fn check(&self, token: &str) -> Result<ServiceAccount, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Unknown);
        }
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.into()), audiences: Some(vec![self.audience.clone()]) },
            ..TokenReview::default()
        };
        let params = PostParams::default();
        let answer = tokio::time::timeout(REVIEW_TIMEOUT, self.api.create(&params, &review))
            .await
            .map_err(|_| TokenError::Unavailable(format!("no TokenReview answer within {REVIEW_TIMEOUT:?}")))?;
        // Any failure, 4xx included (e.g. RBAC forbids creating reviews),
        // says nothing about the token: the caller may retry.
        let answer = answer.map_err(|e| TokenError::Unavailable(format!("TokenReview: {e}")))?;
        account_of(answer.status.as_ref(), &self.audience)
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a str) -> ReviewFuture<'a> {
        Box::pin(self.check(token))
    }
}

/// The ServiceAccount a review's status grants for `audience`.
fn account_of(status: Option<&TokenReviewStatus>, audience: &str) -> Result<ServiceAccount, TokenError> {
    let status = status.ok_or_else(|| TokenError::Unavailable("the TokenReview came back without a status".into()))?;
    if status.authenticated != Some(true) {
        // The real API server says "… service account token has expired";
        // older ones "… token is expired (exp)".
        let expired = status.error.as_deref().is_some_and(|e| e.to_ascii_lowercase().contains("expired"));
        return Err(if expired { TokenError::Expired } else { TokenError::Unknown });
    }
    // A server that ignores spec.audiences returns none: the token is then
    // not shown to be meant for us.
    let for_us = status.audiences.as_ref().is_some_and(|a| a.iter().any(|a| a == audience));
    if !for_us {
        return Err(TokenError::Unknown);
    }
    let username = status.user.as_ref().and_then(|u| u.username.as_deref()).unwrap_or("");
    service_account(username).ok_or(TokenError::Unknown)
}

/// `system:serviceaccount:<namespace>:<name>`; any other user (a person,
/// a node, a malformed name) is not a workload.
fn service_account(username: &str) -> Option<ServiceAccount> {
    let (namespace, name) = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some(ServiceAccount { namespace: namespace.into(), name: name.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AUD: &str = "identity.l5d.io";

    fn status(v: serde_json::Value) -> TokenReviewStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_service_account_user_for_our_audience_is_granted() {
        let s = status(json!({
            "authenticated": true, "audiences": ["other", AUD],
            "user": {"username": "system:serviceaccount:podinfo:frontend", "groups": ["system:serviceaccounts"]},
        }));
        let sa = account_of(Some(&s), AUD).unwrap();
        assert_eq!(sa, ServiceAccount { namespace: "podinfo".into(), name: "frontend".into() });
    }

    #[test]
    fn users_that_are_not_service_accounts_are_refused() {
        for username in [
            "kubernetes-admin",
            "system:node:worker-1",
            "system:serviceaccount:podinfo",
            "system:serviceaccount::frontend",
            "system:serviceaccount:podinfo:",
            "system:serviceaccount:a:b:c",
            "",
        ] {
            let s = status(json!({"authenticated": true, "audiences": [AUD], "user": {"username": username}}));
            assert_eq!(account_of(Some(&s), AUD), Err(TokenError::Unknown), "{username}");
        }
        let no_user = status(json!({"authenticated": true, "audiences": [AUD]}));
        assert_eq!(account_of(Some(&no_user), AUD), Err(TokenError::Unknown));
    }

    #[test]
    fn a_grant_without_our_audience_is_refused() {
        let user = json!({"username": "system:serviceaccount:ns:sa"});
        let other =
            status(json!({"authenticated": true, "audiences": ["https://kubernetes.default.svc"], "user": user}));
        assert_eq!(account_of(Some(&other), AUD), Err(TokenError::Unknown));
        let none = status(json!({"authenticated": true, "user": user}));
        assert_eq!(account_of(Some(&none), AUD), Err(TokenError::Unknown));
    }

    #[test]
    fn refusals_say_whether_the_token_expired() {
        for error in [
            "[invalid bearer token, service account token has expired]",
            "invalid bearer token, square/go-jose/jwt: validation failed, token is expired (exp)",
        ] {
            let s = status(json!({"authenticated": false, "error": error}));
            assert_eq!(account_of(Some(&s), AUD), Err(TokenError::Expired), "{error}");
        }
        let invalid = status(json!({"authenticated": false, "error": "invalid bearer token"}));
        assert_eq!(account_of(Some(&invalid), AUD), Err(TokenError::Unknown));
        assert_eq!(account_of(Some(&status(json!({}))), AUD), Err(TokenError::Unknown));
    }

    #[test]
    fn a_review_without_status_is_no_answer() {
        assert!(matches!(account_of(None, AUD), Err(TokenError::Unavailable(_))));
    }
}
