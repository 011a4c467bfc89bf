//! `mesh-runtime`'s command line: file mode (`--dir`) or Kubernetes mode
//! (`--kubernetes`), and what both share.

use mesh_common::duration::parse_duration;
use mesh_common::duration::parse_lifetime;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `mesh-runtime`.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "mesh-runtime", version)]
pub struct Settings {
    /// File mode: the directory `meshc build --out` writes (bundle.yaml, configs/).
    #[arg(long, required_unless_present = "kubernetes", conflicts_with = "kubernetes")]
    pub dir: Option<PathBuf>,
    /// File mode: a public key (`meshc keygen`'s NAME.pub) whose signatures
    /// are trusted; repeat for key rotation.
    #[arg(long = "trust-key", required_unless_present = "kubernetes", conflicts_with = "kubernetes")]
    pub trust_keys: Vec<PathBuf>,
    /// File mode: issuer.crt, issuer.key and ca.crt (`mesh-certs init`).
    #[arg(long, required_unless_present = "kubernetes", conflicts_with = "kubernetes")]
    pub ca_dir: Option<PathBuf>,
    /// File mode: static endpoints (mesh-proxy's discovery file format).
    #[arg(long, conflicts_with = "kubernetes")]
    pub endpoints: Option<PathBuf>,
    /// File mode: ServiceAccount tokens allowed to request certificates (see README).
    #[arg(long, conflicts_with = "kubernetes")]
    pub tokens: Option<PathBuf>,
    /// File mode: a directory the runtime owns, where it keeps the newest
    /// bundle sequence it accepted (`rollback-floor.json`), so that a
    /// restart still refuses an older build. Without it the floor lasts
    /// only as long as the process.
    #[arg(long, conflicts_with = "kubernetes")]
    pub state_dir: Option<PathBuf>,
    /// The Services linked clusters export, mirrored here as
    /// `<service>-<cluster>` with the endpoints Linkerd's service mirror
    /// gives them (gateway or pod-to-pod), from each cluster's runtime or an
    /// endpoints file (runtime/API.md, "Mirrored Services"). Read at start.
    #[arg(long)]
    pub links: Option<PathBuf>,
    /// How often file mode polls its files (and the links' endpoints files).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub poll_interval: Duration,

    #[command(flatten)]
    pub kube: KubeSettings,

    /// The API's address (HTTPS).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// `/live`, `/ready`, `/metrics` (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:9990")]
    pub admin: SocketAddr,
    /// The runtime's own tls.crt, tls.key and ca.crt; without it the
    /// runtime issues itself a certificate from its issuer for --identity.
    #[arg(long)]
    pub identity_dir: Option<PathBuf>,
    /// The name in a self-issued certificate (default:
    /// mesh-runtime.<namespace>.serviceaccount.identity.<control-plane-ns>.<trust-domain>,
    /// namespace mesh-system in file mode).
    #[arg(long)]
    pub identity: Option<String>,
    /// The control plane namespace in every identity name, as meshc's
    /// `controlPlaneNamespace`: the issuer must be
    /// `identity.<control-plane-ns>.<trust-domain>` and workload certificates
    /// are issued for `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`.
    #[arg(long, env = "MESH_CONTROL_PLANE_NAMESPACE", default_value = mesh_proxy_api::identity::DEFAULT_CONTROL_PLANE_NAMESPACE)]
    pub control_plane_namespace: String,
    /// The trust domain in every identity name, as meshc's `trustDomain`.
    #[arg(long, env = "MESH_TRUST_DOMAIN", default_value = mesh_proxy_api::identity::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Lifetime of issued workload certificates, e.g. 24h, 90m, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_lifetime)]
    pub cert_lifetime: Duration,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub webhook: WebhookSettings,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    pub log_format: String,
}

/// What one client, or all of them, may hold or ask for (runtime/API.md
/// names the answers past each limit).
#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// API connections held at once; more are closed as soon as accepted.
    #[arg(long, default_value_t = 20_000)]
    pub max_connections: usize,
    /// Long polls (config and endpoints) held open at once; more get 503.
    #[arg(long, default_value_t = 10_000)]
    pub max_watches: usize,
    /// Long polls one identity holds open at once; more get 429. An
    /// identity is shared by a workload's replicas: allow for replicas ×
    /// the Service ports each one watches.
    #[arg(long, default_value_t = 1_000)]
    pub max_watches_per_identity: usize,
    /// Certificate requests per second, all clients together (each costs a
    /// TokenReview in Kubernetes mode); more get 429.
    #[arg(long, default_value_t = 200.0, value_parser = parse_rate)]
    pub cert_rate: f64,
    /// Certificate requests allowed at once above --cert-rate.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..))]
    pub cert_burst: u32,
    /// Certificate requests per second for one identity; more get 429.
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
    pub cert_rate_per_identity: f64,
    /// Certificate requests one identity may make at once above
    /// --cert-rate-per-identity (a rollout's replicas start together).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub cert_burst_per_identity: u32,
}

/// The admission webhook that injects mesh-proxy into pods
/// (runtime/deploy/webhook.yaml); off unless `--webhook-listen` is given.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookSettings {
    /// Serve the webhook (HTTPS) here, e.g. `0.0.0.0:9443`.
    #[arg(long)]
    pub webhook_listen: Option<SocketAddr>,
    /// The DNS name in the webhook's certificate, as the API server calls it
    /// (default: `mesh-runtime.<namespace>.svc`).
    #[arg(long)]
    pub webhook_name: Option<String>,
    /// The proxy image injected pods run, without its tag.
    #[arg(long, default_value = mesh_inject::knobs::IMAGE)]
    pub proxy_image: String,
    /// The proxy image's tag (default: this runtime's version).
    #[arg(long)]
    pub proxy_version: Option<String>,
    /// The iptables backend `mesh-proxy init` uses in injected pods.
    #[arg(long, default_value = "legacy", value_parser = ["nft", "legacy"])]
    pub iptables_mode: String,
    /// The cluster's DNS domain, in the runtime's address injected proxies use.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Inject the proxy as a native sidecar unless a pod's annotation says otherwise.
    #[arg(long)]
    pub native_sidecar: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        defaults()
    }
}

impl WebhookSettings {
    /// The injector's configuration for a runtime in `namespace`.
    pub fn inject_config(&self, s: &Settings, namespace: &str) -> mesh_inject::Config {
        let mut c = mesh_inject::Config {
            image: self.proxy_image.clone(),
            control_plane_namespace: s.control_plane_namespace.clone(),
            trust_domain: s.trust_domain.clone(),
            cluster_domain: self.cluster_domain.clone(),
            runtime_namespace: namespace.to_owned(),
            token_audience: s.kube.token_audience.clone(),
            iptables_mode: self.iptables_mode.clone(),
            native_sidecar: self.native_sidecar,
            created_by: format!("mesh-runtime/webhook {}", env!("CARGO_PKG_VERSION")),
            ..mesh_inject::Config::default()
        };
        if let Some(v) = &self.proxy_version {
            c.version = v.clone();
        }
        c
    }
}

/// Every limit at its command-line default.
impl Default for Limits {
    fn default() -> Self {
        defaults()
    }
}

/// `T` with every flag at its command-line default.
fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let matches = T::augment_args(clap::Command::new("mesh-runtime")).get_matches_from(["mesh-runtime"]);
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// A rate per second: finite and above zero.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{s}` is not a rate per second above zero")),
    }
}

impl Settings {
    /// The names the issuer carries and signs.
    pub fn identity_domain(&self) -> mesh_proxy_api::IdentityDomain {
        mesh_proxy_api::IdentityDomain::new(&self.control_plane_namespace, &self.trust_domain)
    }
}

/// Kubernetes mode: everything comes from the API server the environment
/// names (in-cluster, or `KUBECONFIG`).
#[derive(Clone, Debug, clap::Args)]
pub struct KubeSettings {
    /// Watch ProxyConfigs, MeshBundles, EndpointSlices and Pods in the cluster.
    #[arg(long)]
    pub kubernetes: bool,
    /// The runtime's namespace: its Lease, trusted keys, issuer and trust roots.
    #[arg(long, env = "POD_NAMESPACE", default_value = "mesh-system")]
    pub namespace: String,
    /// This replica's name in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// `configmap/NAME` or `secret/NAME` in --namespace: every entry whose
    /// key ends in `.pub` is a trusted public key.
    #[arg(long, default_value = "configmap/meshc-trusted-keys")]
    pub trusted_keys: String,
    /// The issuer: a kubernetes.io/tls Secret in --namespace (tls.crt, tls.key).
    #[arg(long, default_value = "mesh-identity-issuer")]
    pub issuer_secret: String,
    /// The trust anchors: a ConfigMap in --namespace with `ca-bundle.crt`
    /// (several anchors during a rotation).
    #[arg(long, default_value = "mesh-identity-trust-roots")]
    pub trust_roots: String,
    /// The audience a proxy's projected ServiceAccount token must carry.
    #[arg(long, default_value = "identity.l5d.io")]
    pub token_audience: String,
    /// The Lease through which one replica is elected to write statuses.
    #[arg(long, default_value = "mesh-runtime")]
    pub lease: String,
    /// A ConfigMap in --namespace the runtime owns, where it keeps the
    /// newest bundle sequence it accepted (rollback protection across
    /// restarts and leader changes).
    #[arg(long, default_value = "mesh-runtime-state")]
    pub state_configmap: String,
}

/// Kubernetes mode off, every other value at its command-line default.
impl Default for KubeSettings {
    fn default() -> Self {
        defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_command_lines() {
        let l = Limits::default();
        assert_eq!((l.max_connections, l.max_watches, l.max_watches_per_identity), (20_000, 10_000, 1_000));
        assert_eq!((l.cert_rate, l.cert_burst), (200.0, 400));
        assert_eq!((l.cert_rate_per_identity, l.cert_burst_per_identity), (10.0, 100));
        let k = KubeSettings::default();
        assert!(!k.kubernetes);
        assert_eq!(k.token_audience, "identity.l5d.io");
    }

    #[test]
    fn rates_must_be_above_zero_and_bursts_at_least_one() {
        use clap::Parser;
        let base = ["mesh-runtime", "--kubernetes"];
        for bad in [["--cert-rate", "0"], ["--cert-rate", "-1"], ["--cert-rate", "inf"], ["--cert-burst", "0"]] {
            assert!(Settings::try_parse_from(base.iter().chain(&bad)).is_err(), "{bad:?}");
        }
        let s = Settings::try_parse_from(base.iter().chain(&["--cert-rate", "0.5"])).unwrap();
        assert_eq!(s.limits.cert_rate, 0.5);
    }
}
