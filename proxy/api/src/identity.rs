//! Linkerd's identity names, the one format meshc, mesh-proxy and
//! mesh-runtime all use.
//!
//! Linkerd names a ServiceAccount's workloads
//! `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>` and
//! its identity issuer `identity.<control-plane-ns>.<trust-domain>`
//! (linkerd2 `pkg/identity`, `controller/cmd/identity`). meshc signs configs
//! whose authorizations name these identities; the runtime issues
//! certificates carrying them; the proxy asks for them. If any of the three
//! built the name differently, no issued certificate would match a signed
//! config, so all three go through [`IdentityDomain`].

/// Linkerd's default control plane namespace (`linkerd install`).
pub const DEFAULT_CONTROL_PLANE_NAMESPACE: &str = "linkerd";
/// Linkerd's default trust domain (`identityTrustDomain`).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The two settings every identity name is built from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentityDomain {
    control_plane_namespace: String,
    trust_domain: String,
}

impl Default for IdentityDomain {
    /// Linkerd's defaults: `linkerd` and `cluster.local`.
    fn default() -> Self {
        IdentityDomain::new(DEFAULT_CONTROL_PLANE_NAMESPACE, DEFAULT_TRUST_DOMAIN)
    }
}

impl IdentityDomain {
    pub fn new(control_plane_namespace: &str, trust_domain: &str) -> Self {
        IdentityDomain {
            control_plane_namespace: control_plane_namespace.to_owned(),
            trust_domain: trust_domain.to_owned(),
        }
    }

    pub fn control_plane_namespace(&self) -> &str {
        &self.control_plane_namespace
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`.
    pub fn service_account(&self, namespace: &str, service_account: &str) -> String {
        format!("{service_account}{}", self.namespace_suffix(namespace))
    }

    /// `.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`: what
    /// every ServiceAccount identity of `namespace` ends with, leading dot included.
    pub fn namespace_suffix(&self, namespace: &str) -> String {
        format!(".{namespace}{}", self.service_account_suffix())
    }

    /// `.serviceaccount.identity.<control-plane-ns>.<trust-domain>`: what every
    /// ServiceAccount identity ends with, leading dot included.
    pub fn service_account_suffix(&self) -> String {
        format!(".serviceaccount.{}", self.issuer())
    }

    /// `identity.<control-plane-ns>.<trust-domain>`: the identity issuer's
    /// name (its certificate's subject CN).
    pub fn issuer(&self) -> String {
        format!("identity.{}.{}", self.control_plane_namespace, self.trust_domain)
    }

    /// `(service account, namespace)` of a ServiceAccount identity of this
    /// domain; `None` for any other name.
    pub fn split_service_account<'a>(&self, identity: &'a str) -> Option<(&'a str, &'a str)> {
        let head = identity.strip_suffix(self.service_account_suffix().as_str())?;
        head.split_once('.').filter(|(sa, ns)| !sa.is_empty() && !ns.is_empty() && !ns.contains('.'))
    }

    /// The domain an issuer name `identity.<control-plane-ns>.<trust-domain>`
    /// belongs to (the namespace is one DNS label, so the split is unique).
    pub fn from_issuer(name: &str) -> Option<IdentityDomain> {
        let (ns, trust_domain) = name.strip_prefix("identity.")?.split_once('.')?;
        (!ns.is_empty() && !trust_domain.is_empty()).then(|| IdentityDomain::new(ns, trust_domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkerd_defaults_give_linkerd_names() {
        let d = IdentityDomain::default();
        assert_eq!(
            d.service_account("emojivoto", "web"),
            "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(d.namespace_suffix("emojivoto"), ".emojivoto.serviceaccount.identity.linkerd.cluster.local");
        assert_eq!(d.issuer(), "identity.linkerd.cluster.local");
    }

    #[test]
    fn another_control_plane_namespace_and_trust_domain_are_in_every_name() {
        let d = IdentityDomain::new("mesh-system", "corp.example");
        assert_eq!(d.service_account("shop", "web"), "web.shop.serviceaccount.identity.mesh-system.corp.example");
        assert_eq!(d.issuer(), "identity.mesh-system.corp.example");
        assert_eq!(IdentityDomain::from_issuer(&d.issuer()), Some(d.clone()));
    }

    #[test]
    fn names_split_back_only_within_their_domain() {
        let d = IdentityDomain::new("mesh-system", "cluster.local");
        assert_eq!(d.split_service_account(&d.service_account("shop", "web")), Some(("web", "shop")));
        let linkerd = IdentityDomain::default().service_account("shop", "web");
        assert_eq!(d.split_service_account(&linkerd), None);
        assert_eq!(d.split_service_account(".shop.serviceaccount.identity.mesh-system.cluster.local"), None);
        assert_eq!(d.split_service_account("a.b.c.serviceaccount.identity.mesh-system.cluster.local"), None);
    }

    #[test]
    fn issuer_names_need_both_parts() {
        assert_eq!(IdentityDomain::from_issuer("identity.linkerd.cluster.local"), Some(IdentityDomain::default()));
        for bad in
            ["identity.linkerd", "identity..cluster.local", "identity.linkerd.", "root.linkerd.cluster.local", ""]
        {
            assert_eq!(IdentityDomain::from_issuer(bad), None, "{bad}");
        }
    }
}
