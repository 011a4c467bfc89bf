//! The resource types a fake server serves, registered by the test.

use std::fmt;

/// A resource type identified as the API identifies it: group (empty for
/// the core group), version and plural name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl Gvr {
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        Gvr { group: group.into(), version: version.into(), plural: plural.into() }
    }

    /// A resource of the core (legacy, `/api/v1`) group.
    pub fn core(plural: &str) -> Self {
        Gvr::new("", "v1", plural)
    }

    /// `v1` for the core group, `group/version` otherwise, as in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

impl fmt::Display for Gvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() { write!(f, "{}", self.plural) } else { write!(f, "{}.{}", self.plural, self.group) }
    }
}

/// What kind of requests a resource type accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Stored objects: get, list, watch, create, update, patch, delete.
    Stored,
    /// `authentication.k8s.io/v1` TokenReview: create only, answered from the
    /// registered tokens and never stored.
    TokenReview,
}

/// One registered resource type and what discovery says about it.
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub gvr: Gvr,
    pub kind: String,
    pub singular: String,
    pub namespaced: bool,
    /// Whether the type has a `/status` subresource: then the main resource
    /// ignores `.status` and `/status` changes only `.status`.
    pub status: bool,
    pub short_names: Vec<String>,
    pub behaviour: Behaviour,
}

impl ResourceType {
    /// A namespaced, stored type; the singular is the lowercased kind.
    pub fn namespaced(gvr: Gvr, kind: &str) -> Self {
        ResourceType {
            gvr,
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced: true,
            status: false,
            short_names: Vec::new(),
            behaviour: Behaviour::Stored,
        }
    }

    /// A cluster-scoped, stored type.
    pub fn cluster(gvr: Gvr, kind: &str) -> Self {
        ResourceType { namespaced: false, ..ResourceType::namespaced(gvr, kind) }
    }

    pub fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    pub fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn api_version(&self) -> String {
        self.gvr.api_version()
    }

    pub(crate) fn verbs(&self) -> &'static [&'static str] {
        match self.behaviour {
            Behaviour::Stored => &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            Behaviour::TokenReview => &["create"],
        }
    }
}

/// The set of types a server serves. Order is kept for discovery output.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    types: Vec<ResourceType>,
}

impl Resources {
    pub fn empty() -> Self {
        Resources::default()
    }

    /// Everything mesh-runtime touches: core v1 namespaces, pods, services,
    /// secrets, configmaps, serviceaccounts; discovery.k8s.io/v1
    /// endpointslices; coordination.k8s.io/v1 leases; TokenReview; and
    /// meshc's ProxyConfig, ServicePolicy and MeshBundle (with their status subresource, as
    /// schemas/crds/ declares).
    pub fn standard() -> Self {
        let mut r = Resources::empty();
        r.add(ResourceType::cluster(Gvr::core("namespaces"), "Namespace").with_status().with_short_names(&["ns"]));
        r.add(ResourceType::namespaced(Gvr::core("pods"), "Pod").with_status().with_short_names(&["po"]));
        r.add(ResourceType::namespaced(Gvr::core("services"), "Service").with_status().with_short_names(&["svc"]));
        r.add(ResourceType::namespaced(Gvr::core("secrets"), "Secret"));
        r.add(ResourceType::namespaced(Gvr::core("configmaps"), "ConfigMap").with_short_names(&["cm"]));
        r.add(ResourceType::namespaced(Gvr::core("serviceaccounts"), "ServiceAccount").with_short_names(&["sa"]));
        r.add(ResourceType::namespaced(Gvr::new("discovery.k8s.io", "v1", "endpointslices"), "EndpointSlice"));
        r.add(ResourceType::namespaced(Gvr::new("coordination.k8s.io", "v1", "leases"), "Lease"));
        r.add(ResourceType {
            behaviour: Behaviour::TokenReview,
            ..ResourceType::cluster(Gvr::new("authentication.k8s.io", "v1", "tokenreviews"), "TokenReview")
        });
        r.add(
            ResourceType::namespaced(Gvr::new(MESHC_GROUP, MESHC_VERSION, "proxyconfigs"), "ProxyConfig").with_status(),
        );
        r.add(
            ResourceType::namespaced(Gvr::new(MESHC_GROUP, MESHC_VERSION, "servicepolicies"), "ServicePolicy")
                .with_status(),
        );
        r.add(ResourceType::cluster(Gvr::new(MESHC_GROUP, MESHC_VERSION, "meshbundles"), "MeshBundle").with_status());
        r
    }

    /// Registers a type, replacing one with the same group/version/plural.
    pub fn add(&mut self, t: ResourceType) -> &mut Self {
        self.types.retain(|o| o.gvr != t.gvr);
        self.types.push(t);
        self
    }

    pub fn get(&self, gvr: &Gvr) -> Option<&ResourceType> {
        self.types.iter().find(|t| &t.gvr == gvr)
    }

    /// The type of an object from its `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.kind == kind && t.api_version() == api_version)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.iter()
    }
}

/// meshc's API group and version (schemas/crds/).
pub const MESHC_GROUP: &str = "meshc.io";
pub const MESHC_VERSION: &str = "v1alpha1";

impl Resources {
    /// Registers what a CustomResourceDefinition (as JSON) declares: one type
    /// per served version, with its scope, names and status subresource.
    pub fn add_crd(&mut self, crd: &serde_json::Value) -> Result<&mut Self, String> {
        let spec = &crd["spec"];
        let text = |v: &serde_json::Value, what: &str| {
            v.as_str().map(str::to_owned).ok_or_else(|| format!("CRD has no {what}"))
        };
        let group = text(&spec["group"], "spec.group")?;
        let names = &spec["names"];
        let kind = text(&names["kind"], "spec.names.kind")?;
        let plural = text(&names["plural"], "spec.names.plural")?;
        let namespaced = match spec["scope"].as_str() {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            other => return Err(format!("CRD scope {other:?} is neither Namespaced nor Cluster")),
        };
        let versions = spec["versions"].as_array().ok_or("CRD has no spec.versions")?;
        for v in versions.iter().filter(|v| v["served"].as_bool() != Some(false)) {
            let version = text(&v["name"], "version name")?;
            let mut t = ResourceType::namespaced(Gvr::new(&group, &version, &plural), &kind);
            t.namespaced = namespaced;
            if let Some(singular) = names["singular"].as_str() {
                t.singular = singular.into();
            }
            if let Some(short) = names["shortNames"].as_array() {
                t.short_names = short.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect();
            }
            t.status = v["subresources"]["status"].is_object();
            self.add(t);
        }
        Ok(self)
    }
}
