//! Issue 24: on a port listed in `proxy-require-identity-inbound-ports` with no
//! Server, Linkerd tightens an allowing, unauthenticated default policy to its
//! authenticated twin *before* naming it (policy-controller
//! `k8s/index/src/inbound/index.rs`, `default_inbound_server`; `defaults.rs`,
//! `DefaultPolicy::as_str` and `AuthorizationRef::Default`), so the default
//! server and its one authorization carry the tightened name. `audit` and
//! `deny` are not `Allow` policies and keep theirs. Other ports keep the
//! namespace's policy. The cases are the show-config golden inputs.

use mesh_proxy_api::{Authentication, InboundServer, ProxyConfig};
use meshc::load::Input;
use meshc::pipeline::{self, Options};
use std::path::Path;

/// (namespace default, name on the require-identity port, whether that port
/// requires a client identity)
const CASES: [(&str, &str, Option<bool>); 6] = [
    ("all-unauthenticated", "all-authenticated", Some(true)),
    ("cluster-unauthenticated", "cluster-authenticated", Some(true)),
    ("all-authenticated", "all-authenticated", Some(true)),
    ("cluster-authenticated", "cluster-authenticated", Some(true)),
    // audit allows everyone and logs; deny has no authorization at all.
    ("audit", "audit", Some(false)),
    ("deny", "deny", None),
];

fn config(policy: &str) -> ProxyConfig {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/queries")
        .join(format!("show-config-require-identity-{policy}/input"));
    let outcome = pipeline::check(&Input::Path(dir), &Options::default()).expect("the case loads");
    let configs: Vec<&ProxyConfig> = outcome.configs.iter().flatten().collect();
    assert_eq!(configs.len(), 1, "one meshed workload, deploy/e/web");
    configs[0].clone()
}

fn server(c: &ProxyConfig, port: u16) -> &InboundServer {
    c.inbound.ports.iter().find(|p| p.port == port).map_or(&c.inbound.default_server, |p| &p.server)
}

#[test]
fn require_identity_ports_are_named_after_the_tightened_default_policy() {
    for (policy, tightened, identity_required) in CASES {
        let c = config(policy);
        let s = server(&c, 8080);
        assert_eq!((s.meta.kind.as_str(), s.meta.name.as_str()), ("default", tightened), "{policy}: server name");
        let authz: Vec<(&str, &str)> =
            s.authorizations.iter().map(|a| (a.meta.kind.as_str(), a.meta.name.as_str())).collect();
        match identity_required {
            None => assert!(authz.is_empty(), "{policy}: no authorization, got {authz:?}"),
            Some(required) => {
                assert_eq!(authz, [("default", tightened)], "{policy}: the authorization carries the same name");
                let tls = matches!(s.authorizations[0].authentication, Authentication::TlsAuthenticated { .. });
                assert_eq!(tls, required, "{policy}: mTLS required on 8080");
            }
        }
        // Every other port, the admin port among them, keeps the namespace's policy.
        for other in [c.inbound.default_server.clone(), server(&c, 4191).clone()] {
            assert_eq!(other.meta.name, policy, "{policy}: ports without require-identity keep the name");
        }
    }
}
