//! The configuration knobs of an injected pod: cluster-wide defaults
//! ([`Config`]), then the namespace's `config.linkerd.io/*` annotations,
//! the pod template's own, and the command line's overrides, each above the
//! last. A knob whose value cannot be used refuses the injection: a pod
//! with a proxy the user did not ask for is worse than a pod without one.

use std::collections::BTreeMap;

/// The proxy's ports (issue 18 fixes them; they are not knobs, so `meshc
/// check`, which models an injected pod's ports, needs no settings for them).
pub const INBOUND_PORT: u16 = 4143;
pub const ADMIN_PORT: u16 = 4191;
pub const OUTBOUND_PORT: u16 = 4140;

pub const IMAGE: &str = "ghcr.io/meshc/mesh-proxy";

/// What a cluster's injector is configured with (flags of `meshc inject`,
/// the webhook's settings).
#[derive(Clone, Debug)]
pub struct Config {
    pub image: String,
    pub version: String,
    pub control_plane_namespace: String,
    pub trust_domain: String,
    pub cluster_domain: String,
    /// Where mesh-runtime's API is: its namespace, Service, port and the
    /// ServiceAccount its serving certificate names.
    pub runtime_namespace: String,
    pub runtime_service: String,
    pub runtime_port: u16,
    pub runtime_service_account: String,
    /// The audience mesh-runtime's TokenReview asks for (`--token-audience`).
    pub token_audience: String,
    /// ConfigMaps in the pod's namespace holding the trust anchors
    /// (`ca-bundle.crt`) and meshc's public keys (`meshc.pub`).
    pub trust_roots_configmap: String,
    pub trusted_keys_configmap: String,
    pub proxy_uid: i64,
    pub iptables_mode: String,
    pub native_sidecar: bool,
    /// Skipped inbound ports when the pod has no annotation (Linkerd's
    /// `proxyInit.ignoreInboundPorts`).
    pub default_skip_inbound_ports: String,
    /// `linkerd.io/created-by` on every injected pod.
    pub created_by: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            image: IMAGE.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            control_plane_namespace: "linkerd".to_owned(),
            trust_domain: "cluster.local".to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            runtime_namespace: "mesh-system".to_owned(),
            runtime_service: "mesh-runtime".to_owned(),
            runtime_port: 8443,
            runtime_service_account: "mesh-runtime".to_owned(),
            token_audience: "identity.l5d.io".to_owned(),
            trust_roots_configmap: "mesh-identity-trust-roots".to_owned(),
            trusted_keys_configmap: "meshc-trusted-keys".to_owned(),
            proxy_uid: 2102,
            iptables_mode: "legacy".to_owned(),
            native_sidecar: false,
            default_skip_inbound_ports: String::new(),
            created_by: format!("meshc/inject {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Every knob as the injected containers use it.
#[derive(Clone, Debug, PartialEq)]
pub struct Knobs {
    pub image: String,
    pub version: String,
    pub pull_policy: Option<String>,
    /// `(resource, "requests" | "limits", quantity)`.
    pub resources: Vec<(&'static str, &'static str, String)>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub skip_inbound_ports: String,
    pub skip_outbound_ports: String,
    pub skip_subnets: String,
    pub proxy_uid: i64,
    pub native_sidecar: bool,
    pub await_ready: bool,
    pub ingress: bool,
}

pub const IMAGE_KEY: &str = "config.linkerd.io/proxy-image";
pub const VERSION_KEY: &str = "config.linkerd.io/proxy-version";
pub const PULL_POLICY_KEY: &str = "config.linkerd.io/proxy-image-pull-policy";
pub const LOG_LEVEL_KEY: &str = "config.linkerd.io/proxy-log-level";
pub const LOG_FORMAT_KEY: &str = "config.linkerd.io/proxy-log-format";
pub const SKIP_INBOUND_KEY: &str = "config.linkerd.io/skip-inbound-ports";
pub const SKIP_OUTBOUND_KEY: &str = "config.linkerd.io/skip-outbound-ports";
pub const SKIP_SUBNETS_KEY: &str = "config.linkerd.io/skip-subnets";
pub const OPAQUE_PORTS_KEY: &str = "config.linkerd.io/opaque-ports";
pub const UID_KEY: &str = "config.linkerd.io/proxy-uid";
pub const AWAIT_KEY: &str = "config.linkerd.io/proxy-await";
pub const NATIVE_KEY: &str = "config.alpha.linkerd.io/proxy-enable-native-sidecar";

/// `config.linkerd.io/proxy-<name>` resource annotations (`_resources.tpl`).
const RESOURCES: &[(&str, &str, &str)] = &[
    ("config.linkerd.io/proxy-cpu-request", "cpu", "requests"),
    ("config.linkerd.io/proxy-memory-request", "memory", "requests"),
    ("config.linkerd.io/proxy-ephemeral-storage-request", "ephemeral-storage", "requests"),
    ("config.linkerd.io/proxy-cpu-limit", "cpu", "limits"),
    ("config.linkerd.io/proxy-memory-limit", "memory", "limits"),
    ("config.linkerd.io/proxy-ephemeral-storage-limit", "ephemeral-storage", "limits"),
];

/// The annotations the injector reads: the pod's, over the namespace's
/// `config.*` ones (Linkerd copies those onto the pod at injection), under
/// the overrides.
pub fn effective(
    pod: &BTreeMap<String, String>,
    namespace: Option<&BTreeMap<String, String>>,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in namespace.into_iter().flatten() {
        if (k.starts_with("config.linkerd.io/") || k.starts_with("config.alpha.linkerd.io/"))
            && k != "config.linkerd.io/admission-webhooks"
        {
            out.insert(k.clone(), v.clone());
        }
    }
    out.extend(pod.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// The knobs from the effective annotations, or why one cannot be used.
pub fn read(a: &BTreeMap<String, String>, config: &Config, ingress: bool) -> Result<Knobs, String> {
    let get = |k: &str| a.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let word = |k: &str| -> Result<Option<String>, String> {
        match get(k) {
            Some(v) if v.chars().any(char::is_whitespace) => Err(invalid(k, v, "contains whitespace")),
            v => Ok(v.map(str::to_owned)),
        }
    };
    let mut resources = Vec::new();
    for (key, resource, kind) in RESOURCES {
        if let Some(q) = get(key) {
            if !is_quantity(q) {
                return Err(invalid(key, q, "is not a Kubernetes quantity"));
            }
            resources.push((*resource, *kind, q.to_owned()));
        }
    }
    let pull_policy = word(PULL_POLICY_KEY)?;
    if let Some(p) = pull_policy.as_deref().filter(|p| !matches!(*p, "Always" | "IfNotPresent" | "Never")) {
        return Err(invalid(PULL_POLICY_KEY, p, "is not Always, IfNotPresent or Never"));
    }
    let log_format = word(LOG_FORMAT_KEY)?;
    if let Some(f) = log_format.as_deref().filter(|f| !matches!(*f, "plain" | "json")) {
        return Err(invalid(LOG_FORMAT_KEY, f, "is not plain or json"));
    }
    let skip_inbound = match get(SKIP_INBOUND_KEY) {
        Some(v) => port_list(SKIP_INBOUND_KEY, v)?,
        None => port_list("the default skip-inbound-ports", &config.default_skip_inbound_ports)?,
    };
    if let Some(v) = get(OPAQUE_PORTS_KEY) {
        // Enforced by the signed config, not by the containers; checked
        // here so a pod is never meshed with a list its config lacks.
        opaque_list(v)?;
    }
    let proxy_uid = match get(UID_KEY) {
        None => config.proxy_uid,
        Some(v) => match v.parse::<i64>() {
            Ok(uid) if (1..=i64::from(i32::MAX)).contains(&uid) => uid,
            _ => return Err(invalid(UID_KEY, v, "is not a non-root user id (1 to 2147483647)")),
        },
    };
    Ok(Knobs {
        image: word(IMAGE_KEY)?.unwrap_or_else(|| config.image.clone()),
        version: word(VERSION_KEY)?.unwrap_or_else(|| config.version.clone()),
        pull_policy,
        resources,
        log_level: word(LOG_LEVEL_KEY)?,
        log_format,
        skip_inbound_ports: skip_inbound,
        skip_outbound_ports: get(SKIP_OUTBOUND_KEY).map_or(Ok(String::new()), |v| port_list(SKIP_OUTBOUND_KEY, v))?,
        skip_subnets: get(SKIP_SUBNETS_KEY).map_or(Ok(String::new()), subnets)?,
        proxy_uid,
        native_sidecar: get(NATIVE_KEY).map_or(Ok(config.native_sidecar), |v| boolean(NATIVE_KEY, v))?,
        await_ready: match get(AWAIT_KEY) {
            None | Some("enabled") => true,
            Some("disabled") => false,
            Some(v) => return Err(invalid(AWAIT_KEY, v, "is not enabled or disabled")),
        },
        ingress,
    })
}

fn invalid(key: &str, value: &str, why: &str) -> String {
    format!("`{key}: {value}` {why}")
}

fn boolean(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, v, "is not true or false")),
    }
}

/// `80,443,4000-4100` normalised without spaces: what `mesh-proxy init` takes.
fn port_list(key: &str, v: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ok = match part.split_once('-') {
            Some((a, b)) => matches!((port(a), port(b)), (Some(a), Some(b)) if a <= b),
            None => port(part).is_some(),
        };
        if !ok {
            return Err(invalid(key, v, &format!("has `{part}`, not a port or a range of ports")));
        }
        out.push(part.replace(' ', ""));
    }
    Ok(out.join(","))
}

fn port(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

/// Opaque ports may also name a container port.
fn opaque_list(v: &str) -> Result<(), String> {
    let named = |p: &str| {
        !p.is_empty() && p.len() <= 15 && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if port_list(OPAQUE_PORTS_KEY, part).is_err() && !named(part) {
            return Err(invalid(OPAQUE_PORTS_KEY, v, &format!("has `{part}`, not a port, a range or a port name")));
        }
    }
    Ok(())
}

fn subnets(v: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.parse::<ipnet::IpNet>().is_err() {
            return Err(invalid(SKIP_SUBNETS_KEY, v, &format!("has `{part}`, not a CIDR")));
        }
        out.push(part.to_owned());
    }
    Ok(out.join(","))
}

/// Kubernetes' quantity grammar: a decimal number, then an optional binary
/// (`Ki`..`Ei`) or decimal (`m`, `k`..`E`) suffix or an exponent.
fn is_quantity(q: &str) -> bool {
    let digits_end = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(digits_end);
    let number = number.strip_prefix(['+', '-']).unwrap_or(number);
    let numeric = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1
        && number != ".";
    let exponent = suffix.strip_prefix(['e', 'E']).map(|e| e.strip_prefix(['+', '-']).unwrap_or(e));
    let suffix_ok =
        matches!(suffix, "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei")
            || exponent.is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    numeric && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_kubernetes_grammar() {
        for ok in ["100m", "1", "0.5", "128Mi", "1Gi", "2e3", "1.5k"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "1 Gi", "1.2.3", "ten", "1Qi", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn port_lists_are_normalised_and_names_refused() {
        assert_eq!(port_list("k", " 25, 4000-4100 ").unwrap(), "25,4000-4100");
        assert!(port_list("k", "http").is_err());
        assert!(port_list("k", "200-100").is_err());
        assert!(opaque_list("mysql,3306").is_ok());
    }
}
