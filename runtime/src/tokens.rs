//! Who a ServiceAccount token belongs to. Kubernetes mode asks the API
//! server (TokenReview); file mode reads a static tokens file:
//!
//! ```json
//! {"tokens": [{"token": "…", "namespace": "podinfo", "serviceAccount": "podinfo",
//!              "expiresAt": "2026-12-01T00:00:00Z"}]}
//! ```
//!
//! `expiresAt` (RFC 3339) is optional. The file is re-read when it changes
//! (removing a line revokes the token); a file that does not parse keeps
//! the last good set.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;
use std::time::SystemTime;

/// The ServiceAccount a token was issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

/// Why a token is refused (answered with 403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    Unknown,
    Expired,
    /// The reviewer could not answer (Kubernetes: the API server is unreachable).
    Unavailable(String),
}

impl TokenError {
    /// A metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Unknown => "unknown-token",
            TokenError::Expired => "expired-token",
            TokenError::Unavailable(_) => "token-review-unavailable",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Unknown => f.write_str("the token is not valid"),
            TokenError::Expired => f.write_str("the token has expired"),
            TokenError::Unavailable(e) => write!(f, "the token cannot be reviewed now: {e}"),
        }
    }
}

pub type ReviewFuture<'a> = Pin<Box<dyn Future<Output = Result<ServiceAccount, TokenError>> + Send + 'a>>;

/// Validates ServiceAccount tokens; boxed futures so that the server can
/// hold any implementation as `Arc<dyn TokenReviewer>`.
pub trait TokenReviewer: Send + Sync + 'static {
    fn review<'a>(&'a self, token: &'a str) -> ReviewFuture<'a>;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokensDoc {
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenEntry {
    token: String,
    namespace: String,
    service_account: String,
    #[serde(default)]
    expires_at: Option<String>,
}

struct Grant {
    account: ServiceAccount,
    expires_at: Option<SystemTime>,
}

/// Tokens from a file. Tokens are kept as SHA-256 digests and looked up by
/// digest, so the secret itself is never compared byte by byte.
#[derive(Default)]
pub struct FileTokens {
    grants: RwLock<HashMap<[u8; 32], Grant>>,
}

/// How a token is kept in memory: its SHA-256, never the token itself (the
/// certificate limits key their cache of recent reviews by it too).
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expiresAt `{s}`: {e}"))?;
    Ok(t.into())
}

impl FileTokens {
    /// Parses a tokens file; `Err` names what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<FileTokens, String> {
        let tokens = FileTokens::default();
        tokens.replace(bytes)?;
        Ok(tokens)
    }

    /// Replaces the tokens with a new file's, unless it does not parse.
    pub fn replace(&self, bytes: &[u8]) -> Result<usize, String> {
        let doc: TokensDoc = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut grants = HashMap::new();
        for (i, e) in doc.tokens.into_iter().enumerate() {
            if e.token.is_empty() || e.namespace.is_empty() || e.service_account.is_empty() {
                return Err(format!("tokens[{i}]: token, namespace and serviceAccount must not be empty"));
            }
            let expires_at =
                e.expires_at.as_deref().map(parse_time).transpose().map_err(|m| format!("tokens[{i}]: {m}"))?;
            let grant =
                Grant { account: ServiceAccount { namespace: e.namespace, name: e.service_account }, expires_at };
            if grants.insert(token_digest(&e.token), grant).is_some() {
                return Err(format!("tokens[{i}]: the same token is listed twice"));
            }
        }
        let n = grants.len();
        *self.grants.write().unwrap_or_else(|e| e.into_inner()) = grants;
        Ok(n)
    }

    /// The ServiceAccount of `token` at time `now`.
    pub fn check(&self, token: &str, now: SystemTime) -> Result<ServiceAccount, TokenError> {
        let grants = self.grants.read().unwrap_or_else(|e| e.into_inner());
        let grant = grants.get(&token_digest(token)).ok_or(TokenError::Unknown)?;
        if grant.expires_at.is_some_and(|t| t <= now) {
            return Err(TokenError::Expired);
        }
        Ok(grant.account.clone())
    }
}

impl TokenReviewer for FileTokens {
    fn review<'a>(&'a self, token: &'a str) -> ReviewFuture<'a> {
        let result = self.check(token, SystemTime::now());
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FILE: &str = r#"{"tokens": [
        {"token": "t-podinfo", "namespace": "podinfo", "serviceAccount": "podinfo"},
        {"token": "t-old", "namespace": "podinfo", "serviceAccount": "frontend", "expiresAt": "2020-01-01T00:00:00Z"},
        {"token": "t-later", "namespace": "ns", "serviceAccount": "sa", "expiresAt": "2999-01-01T00:00:00+02:00"}]}"#;

    #[test]
    fn known_tokens_map_to_their_service_account_until_they_expire() {
        let t = FileTokens::parse(FILE.as_bytes()).unwrap();
        let now = SystemTime::now();
        let sa = t.check("t-podinfo", now).unwrap();
        assert_eq!(sa, ServiceAccount { namespace: "podinfo".into(), name: "podinfo".into() });
        assert_eq!(t.check("t-old", now), Err(TokenError::Expired));
        assert_eq!(t.check("t-later", now).unwrap().name, "sa");
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(32_503_680_000);
        assert_eq!(t.check("t-later", after), Err(TokenError::Expired));
        assert_eq!(t.check("nope", now), Err(TokenError::Unknown));
        assert_eq!(t.check("", now), Err(TokenError::Unknown));
    }

    #[test]
    fn a_bad_file_is_refused_and_keeps_the_last_good_tokens() {
        let t = FileTokens::parse(FILE.as_bytes()).unwrap();
        assert!(t.replace(b"{").is_err());
        let dup = r#"{"tokens":[{"token":"a","namespace":"n","serviceAccount":"s"},{"token":"a","namespace":"n","serviceAccount":"t"}]}"#;
        assert!(t.replace(dup.as_bytes()).unwrap_err().contains("twice"));
        let bad_time = r#"{"tokens":[{"token":"a","namespace":"n","serviceAccount":"s","expiresAt":"tomorrow"}]}"#;
        assert!(t.replace(bad_time.as_bytes()).unwrap_err().contains("expiresAt"));
        assert!(t.check("t-podinfo", SystemTime::now()).is_ok());
        // Revocation: a new file without the token.
        t.replace(br#"{"tokens": []}"#).unwrap();
        assert_eq!(t.check("t-podinfo", SystemTime::now()), Err(TokenError::Unknown));
    }
}
