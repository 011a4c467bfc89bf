//! Command-line settings of `mesh-proxy run`.

use clap::Args;
use mesh_common::duration::parse_duration;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// The workload this proxy serves, `Kind/namespace/name`; configs for any other are refused.
    #[arg(long, env = "MESH_PROXY_WORKLOAD")]
    pub workload: String,
    /// Signed ProxyConfig: the object file `meshc build` wrote, or a bare DSSE envelope (JSON).
    /// Exactly one of `--config` and `--runtime`.
    #[arg(long, env = "MESH_PROXY_CONFIG", required_unless_present = "runtime", conflicts_with = "runtime")]
    pub config: Option<PathBuf>,
    /// With `--config`: the build's `servicepolicies/` directory, the shared
    /// Service policies a config may name (`outbound.servicePolicies`); a
    /// config that names some is enforced only with exactly those.
    #[arg(long, env = "MESH_PROXY_SERVICE_POLICIES", requires = "config")]
    pub service_policies: Option<PathBuf>,
    /// The runtime controller, `https://host:port`: configs come from it, and
    /// endpoints too unless `--discovery` is given.
    #[arg(long, env = "MESH_PROXY_RUNTIME", requires = "runtime_identity")]
    pub runtime: Option<String>,
    /// The identity the runtime's certificate must carry (checked against ca.crt).
    #[arg(long, env = "MESH_PROXY_RUNTIME_IDENTITY")]
    pub runtime_identity: Option<String>,
    /// ServiceAccount token file (a projected volume): with `--runtime`, the
    /// proxy requests its certificate from the runtime when the identity
    /// directory has no usable one, and renews it at 70% of its lifetime.
    #[arg(long, env = "MESH_PROXY_TOKEN_FILE", requires = "runtime")]
    pub token_file: Option<PathBuf>,
    /// The identity to request with `--token-file`; default: the Linkerd name
    /// of `--service-account` in the namespace of `--workload`.
    #[arg(long)]
    pub identity_name: Option<String>,
    #[arg(long, env = "MESH_PROXY_SERVICE_ACCOUNT")]
    pub service_account: Option<String>,
    /// The mesh's trust domain: the last part of every identity name.
    #[arg(long, env = "MESH_PROXY_TRUST_DOMAIN", default_value = mesh_proxy_api::identity::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// The control plane's namespace, part of every identity name
    /// (`<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`);
    /// meshc's `controlPlaneNamespace`.
    #[arg(
        long,
        env = "MESH_PROXY_CONTROL_PLANE_NAMESPACE",
        default_value = mesh_proxy_api::identity::DEFAULT_CONTROL_PLANE_NAMESPACE
    )]
    pub control_plane_namespace: String,
    /// Trusted public key (PEM, from `meshc keygen`); repeat for rotation.
    #[arg(long = "trust-key", required = true)]
    pub trust_keys: Vec<PathBuf>,
    /// Directory with `tls.crt` (leaf then issuer), `tls.key` and `ca.crt` (trust anchors).
    #[arg(long, env = "MESH_PROXY_IDENTITY_DIR")]
    pub identity_dir: PathBuf,
    /// Static endpoints file (JSON) for outbound discovery.
    #[arg(long)]
    pub discovery: Option<PathBuf>,

    /// Explicit inbound listener: `LISTEN=APP` (e.g. `10.20.0.11:7002=127.0.1.11:7002`);
    /// policy is looked up for LISTEN's port. Repeatable.
    #[arg(long = "inbound", value_parser = parse_pair)]
    pub inbound: Vec<(SocketAddr, SocketAddr)>,
    /// Transparent inbound listener for iptables-redirected connections; the
    /// original destination port selects the policy and the app port.
    #[arg(long)]
    pub inbound_transparent: Option<SocketAddr>,
    /// Where the app listens in transparent mode (the original port is kept).
    #[arg(long, default_value = "127.0.0.1")]
    pub app_host: IpAddr,
    /// Explicit outbound HTTP listener: requests are routed by their authority
    /// (`name.namespace.svc.<cluster domain>:port` or `name.namespace:port`).
    #[arg(long)]
    pub outbound: Option<SocketAddr>,
    /// Explicit outbound TCP listener for one Service port: `LISTEN=name.namespace:port`. Repeatable.
    #[arg(long = "outbound-tcp", value_parser = parse_tcp_target)]
    pub outbound_tcp: Vec<(SocketAddr, String)>,
    /// Transparent outbound listener; the original destination (a Service
    /// cluster IP) selects the Service.
    #[arg(long)]
    pub outbound_transparent: Option<SocketAddr>,
    /// Gateway mode: a multicluster gateway's listener (Linkerd's 4143).
    /// Only mTLS clients with an identity; the policy of this port in the
    /// workload's config authorizes each request, which goes on to the
    /// local Service its mirrored name stands for, with this proxy's identity.
    #[arg(long, requires = "gateway_cluster")]
    pub gateway: Option<SocketAddr>,
    /// Gateway mode: this cluster's name, the suffix that other clusters'
    /// service mirrors add to its Services' names (the Link's `targetClusterName`).
    #[arg(long, requires = "gateway")]
    pub gateway_cluster: Option<String>,
    /// The pod's addresses, comma-separated or repeated (a dual-stack pod
    /// has one per family; the downward API's `status.podIPs` gives them
    /// so): outbound connections are made from the one of the
    /// destination's family, and a Service endpoint at any of them is this
    /// pod (plaintext to the app, no inbound policy), as Linkerd's
    /// `LINKERD2_PROXY_INBOUND_IPS`.
    #[arg(long = "pod-ip", value_delimiter = ',')]
    pub pod_ips: Vec<IpAddr>,
    /// Admin server: `/live`, `/ready`, `/metrics`.
    #[arg(long, default_value = "127.0.0.1:4191")]
    pub admin: SocketAddr,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,

    /// How long protocol detection waits for the first bytes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub detect_timeout: Duration,
    /// How often the config, identity and discovery files are checked for changes.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// Open connections from peers (inbound listeners); more are closed
    /// at once and counted. Separate from the outbound limit, so peers can
    /// never take the app's own connections.
    #[arg(long, default_value_t = 10_000)]
    pub max_inbound_connections: usize,
    /// Open connections from the app (outbound listeners); more are closed
    /// at once and counted.
    #[arg(long, default_value_t = 10_000)]
    pub max_outbound_connections: usize,
    /// How long an inbound peer has to complete its TLS handshake once it
    /// has started one.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// Largest request or response header block accepted (bytes).
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Threads that serve traffic. 1, the default as in linkerd2-proxy
    /// (`LINKERD2_PROXY_CORES`), runs every connection on one thread: no
    /// wake-ups across threads per request, and the CPU a sidecar is
    /// usually given. More spreads connections over that many threads.
    #[arg(long, env = "MESH_PROXY_CORES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub cores: u16,
    /// Log format: `plain` or `json`.
    #[arg(long, default_value = "plain")]
    pub log_format: String,
}

impl Settings {
    /// `mesh-proxy run`'s flags (the first item is the program name), for
    /// proxies started in-process.
    pub fn try_parse_from<I, T>(args: I) -> Result<Settings, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Run {
            #[command(flatten)]
            settings: Settings,
        }
        <Run as clap::Parser>::try_parse_from(args).map(|r| r.settings)
    }

    /// The names this proxy's identities are built from.
    pub fn identity_domain(&self) -> mesh_proxy_api::IdentityDomain {
        mesh_proxy_api::IdentityDomain::new(&self.control_plane_namespace, &self.trust_domain)
    }
}

fn parse_pair(s: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let (a, b) = s.split_once('=').ok_or("expected LISTEN=APP")?;
    Ok((a.parse().map_err(|e| format!("{a}: {e}"))?, b.parse().map_err(|e| format!("{b}: {e}"))?))
}

fn parse_tcp_target(s: &str) -> Result<(SocketAddr, String), String> {
    let (a, b) = s.split_once('=').ok_or("expected LISTEN=name.namespace:port")?;
    let listen = a.parse().map_err(|e| format!("{a}: {e}"))?;
    let (host, port) = b.rsplit_once(':').ok_or("expected name.namespace:port")?;
    port.parse::<u16>().map_err(|e| format!("{port}: {e}"))?;
    if host.split('.').count() < 2 {
        return Err(format!("{host}: expected name.namespace"));
    }
    Ok((listen, b.to_string()))
}
