//! Authorization: does a client (address + TLS state) satisfy an
//! [`Authorization`], and which one of an ordered list permits it first.
//!
//! Mirrors linkerd2-proxy's inbound check: the client IP must be in one of
//! the networks (and in none of that network's `except`s) AND the TLS /
//! identity requirement must hold. Across authorizations it is OR, and the
//! first match in route → server → localhost order is the one reported
//! (it names the metric label and the audit log line).

use crate::client::{Client, ClientTls};
use crate::config::{Authentication, Authorization, Meta, Network};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// One parsed entry of a MeshTLSAuthentication / ServerAuthorization
/// `identities` list.
///
/// `Suffix` holds the literal string a client identity must end with, in the
/// convention of [`Authentication::TlsAuthenticated::suffixes`]: `""` for
/// `*`, `.a.b` (leading dot kept) for `*.a.b`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityMatch {
    Exact(String),
    Suffix(String),
}

/// Parses an identity string as Linkerd's policy controller does:
/// `*` matches any identity, `*.a.b` any identity ending in `.a.b` (at any
/// depth); everything else — including `**.x` and `foo.*.bar` — is an exact
/// string, which for those two matches nothing real.
pub fn identity_match_from_str(s: &str) -> IdentityMatch {
    if s == "*" {
        return IdentityMatch::Suffix(String::new());
    }
    // "*.a.b" → ".a.b": only the star is dropped. Keeping the dot matters
    // because the proxy compares with a plain `ends_with`: ".a.b" matches
    // "x.a.b" but not "xa.b".
    match s.strip_prefix('*') {
        Some(rest) if rest.starts_with('.') => IdentityMatch::Suffix(rest.to_string()),
        _ => IdentityMatch::Exact(s.to_string()),
    }
}

impl Authentication {
    /// `TlsAuthenticated` from parsed identity strings, exact ones first as
    /// written; duplicates are kept (they are harmless and keep lowering
    /// one-to-one with the source).
    pub fn tls_authenticated(matches: impl IntoIterator<Item = IdentityMatch>) -> Self {
        let (mut identities, mut suffixes) = (Vec::new(), Vec::new());
        for m in matches {
            match m {
                IdentityMatch::Exact(id) => identities.push(id),
                IdentityMatch::Suffix(sfx) => suffixes.push(sfx),
            }
        }
        Authentication::TlsAuthenticated { identities, suffixes }
    }

    /// Whether a client with this TLS state satisfies the requirement.
    pub fn permits(&self, tls: &ClientTls) -> bool {
        self.check(tls).is_ok()
    }

    /// Like [`Self::permits`], saying why not.
    pub fn check(&self, tls: &ClientTls) -> Result<(), AuthnMismatch> {
        match self {
            Authentication::Unauthenticated => Ok(()),
            Authentication::TlsUnauthenticated if tls.is_tls() => Ok(()),
            Authentication::TlsUnauthenticated => Err(AuthnMismatch::TlsRequired),
            Authentication::TlsAuthenticated { identities, suffixes } => match tls {
                ClientTls::Plaintext => Err(AuthnMismatch::TlsRequired),
                ClientTls::Unidentified => Err(AuthnMismatch::IdentityRequired),
                ClientTls::Identified(id) => check_identity(id, identities, suffixes),
            },
        }
    }
}

fn check_identity(id: &str, identities: &[String], suffixes: &[String]) -> Result<(), AuthnMismatch> {
    if identities.iter().any(|i| i == id) {
        return Ok(());
    }
    // The proxy applies suffixes only to DNS-form identities; a URI identity
    // (SPIFFE) must be listed exactly.
    let suffix_hit = suffixes.iter().any(|s| id.ends_with(s.as_str()));
    match (suffix_hit, is_dns_identity(id)) {
        (true, true) => Ok(()),
        (true, false) => Err(AuthnMismatch::UriIdentityNeedsExactMatch),
        (false, _) => Err(AuthnMismatch::IdentityNotAllowed),
    }
}

/// Whether the proxy would parse `id` as a DNS name rather than a URI. The
/// proxy tries DNS first; anything with characters outside a DNS name
/// (`:`, `/`, …, e.g. `spiffe://td/ns/x`) or a trailing dot is a URI.
pub fn is_dns_identity(id: &str) -> bool {
    !id.is_empty()
        && !id.ends_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Network {
    /// Inside `net` and inside none of `except`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.net.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }
}

impl Authorization {
    /// Network AND authentication, as the proxy checks one authorization.
    pub fn permits(&self, client: &Client) -> bool {
        self.networks.iter().any(|n| n.contains(client.addr)) && self.authentication.permits(&client.tls)
    }
}

/// Why a client's address is not covered by an authorization's networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkMismatch {
    /// The address is inside none of the networks.
    NotListed,
    /// The address is inside `net` but carved out by its `except` (the
    /// first such pair is reported).
    Excepted { net: IpNet, except: IpNet },
}

/// Why a client's TLS state does not satisfy an authentication requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthnMismatch {
    /// mTLS is required and the connection is plaintext (unmeshed client,
    /// or traffic that skipped the client's proxy).
    TlsRequired,
    /// A client identity is required and the mTLS session has none.
    IdentityRequired,
    /// The client identity is neither listed nor covered by a suffix.
    IdentityNotAllowed,
    /// A suffix covers the identity textually, but the identity is a URI
    /// (e.g. SPIFFE), which the proxy only matches exactly.
    UriIdentityNeedsExactMatch,
}

fn network_mismatch(networks: &[Network], ip: IpAddr) -> Option<NetworkMismatch> {
    if networks.iter().any(|n| n.contains(ip)) {
        return None;
    }
    let excepted = networks.iter().filter(|n| n.net.contains(&ip)).find_map(|n| {
        let except = n.except.iter().find(|e| e.contains(&ip))?;
        Some(NetworkMismatch::Excepted { net: n.net, except: *except })
    });
    Some(excepted.unwrap_or(NetworkMismatch::NotListed))
}

/// The `default:localhost` authorization the proxy appends to every server:
/// unauthenticated from 127.0.0.1/32 and ::1/128.
pub fn localhost_authorization() -> Authorization {
    let host = |ip: IpAddr| Network { net: IpNet::from(ip), except: Vec::new() };
    Authorization {
        meta: Meta::default_named("localhost"),
        networks: vec![host(Ipv4Addr::LOCALHOST.into()), host(Ipv6Addr::LOCALHOST.into())],
        authentication: Authentication::Unauthenticated,
    }
}

/// Shared so an [`AuthzMatch`] can borrow it like the configured ones.
static LOCALHOST: LazyLock<Authorization> = LazyLock::new(localhost_authorization);

/// Where a tried authorization came from; indices are into the slices
/// passed to [`authorize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthzSource {
    Route(usize),
    Server(usize),
    Localhost,
}

/// The authorization that permitted a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthzMatch<'a> {
    pub source: AuthzSource,
    pub authorization: &'a Authorization,
}

impl AuthzMatch<'_> {
    /// Allowed by the `audit` default: the proxy logs the request.
    pub fn is_audit(&self) -> bool {
        self.authorization.meta.is_audit()
    }
}

/// The proxy's effective list: route authorizations, then the server's,
/// then localhost.
fn candidates<'a>(
    route_authzs: &'a [Authorization],
    server_authzs: &'a [Authorization],
) -> impl Iterator<Item = (AuthzSource, &'a Authorization)> {
    let route = route_authzs.iter().enumerate().map(|(i, a)| (AuthzSource::Route(i), a));
    let server = server_authzs.iter().enumerate().map(|(i, a)| (AuthzSource::Server(i), a));
    let localhost = std::iter::once((AuthzSource::Localhost, &*LOCALHOST));
    route.chain(server).chain(localhost)
}

/// The first authorization permitting `client`, in route → server →
/// localhost order. For a connection-level (TCP) check pass no route
/// authorizations.
pub fn authorize<'a>(
    route_authzs: &'a [Authorization],
    server_authzs: &'a [Authorization],
    client: &Client,
) -> Option<AuthzMatch<'a>> {
    candidates(route_authzs, server_authzs)
        .find(|(_, a)| a.permits(client))
        .map(|(source, authorization)| AuthzMatch { source, authorization })
}

/// One authorization the proxy tried, and what failed. Both checks are
/// evaluated (the proxy stops at the first failure) so a proof can say
/// everything that would have to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzAttempt<'a> {
    pub source: AuthzSource,
    pub authorization: &'a Authorization,
    pub network: Option<NetworkMismatch>,
    pub authentication: Option<AuthnMismatch>,
}

impl AuthzAttempt<'_> {
    pub fn matched(&self) -> bool {
        self.network.is_none() && self.authentication.is_none()
    }
}

/// Every authorization [`authorize`] tries, in order, with why it did not
/// match; it stops after the first match, which is then the last element.
/// No element matched ⇔ `authorize` returns `None`.
pub fn explain_authorize<'a>(
    route_authzs: &'a [Authorization],
    server_authzs: &'a [Authorization],
    client: &Client,
) -> Vec<AuthzAttempt<'a>> {
    let mut attempts = Vec::new();
    for (source, authorization) in candidates(route_authzs, server_authzs) {
        let attempt = AuthzAttempt {
            source,
            authorization,
            network: network_mismatch(&authorization.networks, client.addr),
            authentication: authorization.authentication.check(&client.tls).err(),
        };
        let done = attempt.matched();
        attempts.push(attempt);
        if done {
            break;
        }
    }
    attempts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_identity_shape() {
        assert!(is_dns_identity("web.emojivoto.serviceaccount.identity.linkerd.cluster.local"));
        assert!(is_dns_identity("a_b-c.d"));
        assert!(!is_dns_identity("spiffe://td/ns/web"));
        assert!(!is_dns_identity("trailing.dot."));
        assert!(!is_dns_identity(""));
    }

    #[test]
    fn excepted_network_is_reported_with_its_pair() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        let except: IpNet = "10.1.0.0/16".parse().unwrap();
        let networks = [Network { net, except: vec![except] }];
        let ip = "10.1.2.3".parse().unwrap();
        assert_eq!(network_mismatch(&networks, ip), Some(NetworkMismatch::Excepted { net, except }));
        let outside = "192.168.0.1".parse().unwrap();
        assert_eq!(network_mismatch(&networks, outside), Some(NetworkMismatch::NotListed));
    }
}
