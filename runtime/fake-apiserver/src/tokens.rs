//! ServiceAccount tokens the test registers, and TokenReview answers.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What a registered token stands for.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub namespace: String,
    pub service_account: String,
    pub expires: SystemTime,
    /// The audiences the token was issued for; empty means the API server's
    /// default audience, which any review without audiences accepts.
    pub audiences: Vec<String>,
    /// The pod a projected token is bound to, reported in `user.extra`.
    pub pod: Option<String>,
}

impl TokenInfo {
    pub fn new(namespace: &str, service_account: &str, expires: SystemTime) -> Self {
        TokenInfo {
            namespace: namespace.into(),
            service_account: service_account.into(),
            expires,
            audiences: Vec::new(),
            pod: None,
        }
    }

    pub fn with_audiences(mut self, audiences: &[&str]) -> Self {
        self.audiences = audiences.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn bound_to_pod(mut self, pod: &str) -> Self {
        self.pod = Some(pod.into());
        self
    }
}

/// The registered tokens; cheap to clone, every clone is the same set.
#[derive(Clone, Default)]
pub struct Tokens {
    tokens: Arc<Mutex<HashMap<String, TokenInfo>>>,
}

impl Tokens {
    pub fn insert(&self, token: &str, info: TokenInfo) {
        self.lock().insert(token.into(), info);
    }

    /// Revokes a token (as deleting its ServiceAccount or pod would).
    pub fn revoke(&self, token: &str) -> bool {
        self.lock().remove(token).is_some()
    }

    /// The TokenReview the server answers for a TokenReview request body.
    pub fn review(&self, request: &Value) -> Value {
        let token = request["spec"]["token"].as_str().unwrap_or("");
        let wanted: Vec<&str> = request["spec"]["audiences"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let status = match self.check(token, &wanted) {
            Ok((info, audiences)) => authenticated(&info, audiences),
            Err(reason) => json!({ "authenticated": false, "error": reason }),
        };
        let mut review = request.clone();
        review["apiVersion"] = "authentication.k8s.io/v1".into();
        review["kind"] = "TokenReview".into();
        if !review["metadata"].is_object() {
            review["metadata"] = json!({});
        }
        review["metadata"]["creationTimestamp"] = Value::Null;
        review["status"] = status;
        review
    }

    /// The ServiceAccount a bearer token authenticates to the API server
    /// itself: live, and issued for the API server's default audience
    /// (no audiences); a token issued only for another audience, such as a
    /// proxy's identity token, is refused as the real server refuses it.
    pub(crate) fn authenticate(&self, token: &str) -> Option<TokenInfo> {
        let info = self.lock().get(token).cloned()?;
        (info.expires > SystemTime::now() && info.audiences.is_empty()).then_some(info)
    }

    fn check(&self, token: &str, wanted: &[&str]) -> Result<(TokenInfo, Vec<String>), String> {
        let info = self.lock().get(token).cloned().ok_or("invalid bearer token")?;
        if info.expires <= SystemTime::now() {
            return Err("invalid bearer token, token has expired".into());
        }
        if wanted.is_empty() || info.audiences.is_empty() {
            let audiences =
                if wanted.is_empty() { info.audiences.clone() } else { wanted.iter().map(|a| a.to_string()).collect() };
            return Ok((info, audiences));
        }
        let common: Vec<String> =
            wanted.iter().filter(|a| info.audiences.iter().any(|b| b == *a)).map(|a| a.to_string()).collect();
        if common.is_empty() {
            return Err("invalid bearer token, token audiences is invalid".into());
        }
        Ok((info, common))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenInfo>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn authenticated(info: &TokenInfo, audiences: Vec<String>) -> Value {
    let mut user = json!({
        "username": format!("system:serviceaccount:{}:{}", info.namespace, info.service_account),
        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", info.namespace), "system:authenticated"],
    });
    if let Some(pod) = &info.pod {
        user["extra"] = json!({ "authentication.kubernetes.io/pod-name": [pod] });
    }
    let mut status = json!({ "authenticated": true, "user": user });
    if !audiences.is_empty() {
        status["audiences"] = json!(audiences);
    }
    status
}
