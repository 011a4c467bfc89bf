//! The containers and volumes an injected pod gets: `mesh-proxy` (`mesh-proxy
//! run`, its flags from `proxy/src/settings.rs`), `mesh-proxy-init`
//! (`mesh-proxy init`: iptables), and the volumes they mount. Linkerd's
//! counterparts are `_proxy.tpl`, `_proxy-init.tpl` and `_volumes.tpl`.

use super::knobs::{ADMIN_PORT, Config, INBOUND_PORT, Knobs, OUTBOUND_PORT};
use super::value::Y;
use super::{Context, PROXY_CONTAINER, PROXY_INIT_CONTAINER};

pub const IDENTITY_VOLUME: &str = "mesh-identity";
pub const TOKEN_VOLUME: &str = "mesh-identity-token";
pub const TRUST_ROOTS_VOLUME: &str = "mesh-trust-roots";
pub const TRUSTED_KEYS_VOLUME: &str = "meshc-trusted-keys";
pub const XTABLES_VOLUME: &str = "mesh-proxy-init-xtables-lock";
/// Every volume the injector adds, in the order it adds them.
pub const VOLUMES: &[&str] = &[XTABLES_VOLUME, IDENTITY_VOLUME, TOKEN_VOLUME, TRUST_ROOTS_VOLUME, TRUSTED_KEYS_VOLUME];

const IDENTITY_DIR: &str = "/var/run/mesh/identity";
const TOKEN_DIR: &str = "/var/run/secrets/tokens";
const TOKEN_FILE: &str = "mesh-identity-token";
const KEYS_DIR: &str = "/var/run/mesh/trusted-keys";
/// The key file `runtime/deploy/README.md` puts in `meshc-trusted-keys`.
const KEY_FILE: &str = "meshc.pub";

pub fn volumes(config: &Config) -> Vec<Y> {
    let configmap = |name: &str, items: Option<(&str, &str)>| {
        let mut cm = vec![("name".to_owned(), Y::str(name))];
        if let Some((key, path)) = items {
            cm.push(("items".to_owned(), Y::Seq(vec![Y::map([("key", Y::str(key)), ("path", Y::str(path))])])));
        }
        Y::Map(cm)
    };
    vec![
        Y::map([("name", Y::str(XTABLES_VOLUME)), ("emptyDir", Y::Map(Vec::new()))]),
        Y::map([("name", Y::str(IDENTITY_VOLUME)), ("emptyDir", Y::map([("medium", Y::str("Memory"))]))]),
        Y::map([
            ("name", Y::str(TOKEN_VOLUME)),
            (
                "projected",
                Y::map([(
                    "sources",
                    Y::Seq(vec![Y::map([(
                        "serviceAccountToken",
                        Y::map([
                            ("audience", Y::str(&config.token_audience)),
                            ("expirationSeconds", Y::Int(86400)),
                            ("path", Y::str(TOKEN_FILE)),
                        ]),
                    )])]),
                )]),
            ),
        ]),
        Y::map([
            ("name", Y::str(TRUST_ROOTS_VOLUME)),
            ("configMap", configmap(&config.trust_roots_configmap, Some(("ca-bundle.crt", "ca.crt")))),
        ]),
        Y::map([("name", Y::str(TRUSTED_KEYS_VOLUME)), ("configMap", configmap(&config.trusted_keys_configmap, None))]),
    ]
}

/// `mesh-proxy run` for this workload.
pub fn proxy(ctx: &Context, knobs: &Knobs, native: bool) -> Y {
    let c = ctx.config;
    let runtime_identity = format!(
        "{}.{}.serviceaccount.identity.{}.{}",
        c.runtime_service_account, c.runtime_namespace, c.control_plane_namespace, c.trust_domain
    );
    let runtime =
        format!("https://{}.{}.svc.{}:{}", c.runtime_service, c.runtime_namespace, c.cluster_domain, c.runtime_port);
    // Ingress mode: requests are routed by their authority, as Linkerd's
    // ingress mode routes by `l5d-dst-override` / Host, not by the
    // original destination.
    let outbound = if knobs.ingress { "--outbound" } else { "--outbound-transparent" };
    let mut args: Vec<String> = [
        "run",
        "--workload",
        &format!("{}/{}/{}", ctx.kind, ctx.namespace, ctx.name),
        "--runtime",
        &runtime,
        "--runtime-identity",
        &runtime_identity,
        "--token-file",
        &format!("{TOKEN_DIR}/{TOKEN_FILE}"),
        "--trust-domain",
        &c.trust_domain,
        "--control-plane-namespace",
        &c.control_plane_namespace,
        "--cluster-domain",
        &c.cluster_domain,
        "--trust-key",
        &format!("{KEYS_DIR}/{KEY_FILE}"),
        "--identity-dir",
        IDENTITY_DIR,
        "--inbound-transparent",
        &format!("0.0.0.0:{INBOUND_PORT}"),
        outbound,
        &format!("127.0.0.1:{OUTBOUND_PORT}"),
        "--admin",
        &format!("0.0.0.0:{ADMIN_PORT}"),
        "--pod-ip",
        "$(MESH_POD_IPS)",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(f) = &knobs.log_format {
        args.extend(["--log-format".to_owned(), f.clone()]);
    }
    let field = |path: &str| Y::map([("fieldRef", Y::map([("fieldPath", Y::str(path))]))]);
    let mut env = vec![
        Y::map([("name", Y::str("MESH_PROXY_SERVICE_ACCOUNT")), ("valueFrom", field("spec.serviceAccountName"))]),
        // Every address of the pod, comma-separated (a dual-stack pod has
        // two), as Linkerd's `LINKERD2_PROXY_INBOUND_IPS` in `_proxy.tpl`.
        Y::map([("name", Y::str("MESH_POD_IPS")), ("valueFrom", field("status.podIPs"))]),
    ];
    if let Some(level) = &knobs.log_level {
        env.push(Y::map([("name", Y::str("MESH_PROXY_LOG")), ("value", Y::str(level))]));
    }
    let probe = |path: &str, extra: Vec<(String, Y)>| {
        let get = Y::map([("path", Y::str(path)), ("port", Y::Int(i64::from(ADMIN_PORT)))]);
        let mut p = vec![("httpGet".to_owned(), get)];
        p.extend(extra);
        Y::Map(p)
    };
    let tuning =
        |delay: i64| vec![("initialDelaySeconds".to_owned(), Y::Int(delay)), ("timeoutSeconds".to_owned(), Y::Int(1))];
    let mut fields = vec![("name".to_owned(), Y::str(PROXY_CONTAINER)), ("image".to_owned(), image(knobs))];
    if let Some(p) = &knobs.pull_policy {
        fields.push(("imagePullPolicy".to_owned(), Y::str(p)));
    }
    fields.push(("args".to_owned(), Y::Seq(args.into_iter().map(Y::Str).collect())));
    fields.push(("env".to_owned(), Y::Seq(env)));
    let port = |name: &str, p: u16| Y::map([("name", Y::str(name)), ("containerPort", Y::Int(i64::from(p)))]);
    // Linkerd's port names: Servers written for Linkerd's proxy (the viz
    // extension's select `linkerd-admin`) keep selecting mesh-proxy's.
    let ports = vec![port("linkerd-proxy", INBOUND_PORT), port("linkerd-admin", ADMIN_PORT)];
    fields.push(("ports".to_owned(), Y::Seq(ports)));
    fields.push(("livenessProbe".to_owned(), probe("/live", tuning(10))));
    fields.push(("readinessProbe".to_owned(), probe("/ready", tuning(2))));
    if native && knobs.await_ready {
        // The kubelet starts the next init container only once this
        // passes: the app starts with its proxy ready (Linkerd's await).
        let startup = vec![("periodSeconds".to_owned(), Y::Int(1)), ("failureThreshold".to_owned(), Y::Int(120))];
        fields.push(("startupProbe".to_owned(), probe("/ready", startup)));
    }
    if native {
        fields.push(("restartPolicy".to_owned(), Y::str("Always")));
    }
    if let Some(r) = resources(knobs) {
        fields.push(("resources".to_owned(), r));
    }
    fields.push(("securityContext".to_owned(), security(knobs.proxy_uid, &[], false)));
    fields.push(("terminationMessagePolicy".to_owned(), Y::str("FallbackToLogsOnError")));
    let mount = |name: &str, path: &str, extra: Vec<(&str, Y)>| {
        let mut m = vec![("name".to_owned(), Y::str(name)), ("mountPath".to_owned(), Y::str(path))];
        m.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        Y::Map(m)
    };
    fields.push((
        "volumeMounts".to_owned(),
        Y::Seq(vec![
            mount(IDENTITY_VOLUME, IDENTITY_DIR, vec![]),
            // One file inside the identity directory, where mesh-proxy reads
            // the trust anchors (`ca.crt`); the proxy writes its key beside it.
            mount(
                TRUST_ROOTS_VOLUME,
                &format!("{IDENTITY_DIR}/ca.crt"),
                vec![("subPath", Y::str("ca.crt")), ("readOnly", Y::Bool(true))],
            ),
            mount(TOKEN_VOLUME, TOKEN_DIR, vec![("readOnly", Y::Bool(true))]),
            mount(TRUSTED_KEYS_VOLUME, KEYS_DIR, vec![("readOnly", Y::Bool(true))]),
        ]),
    ));
    Y::Map(fields)
}

/// `mesh-proxy init`: the pod's iptables rules (flag names agreed with the
/// helper that builds it). The admin port is always skipped inbound, so the
/// kubelet's probes reach the proxy directly.
pub fn proxy_init(ctx: &Context, knobs: &Knobs) -> Y {
    let mut skip_inbound = ADMIN_PORT.to_string();
    if !knobs.skip_inbound_ports.is_empty() {
        skip_inbound = format!("{skip_inbound},{}", knobs.skip_inbound_ports);
    }
    let mut args = vec![
        "init".to_owned(),
        "--inbound-port".to_owned(),
        INBOUND_PORT.to_string(),
        "--outbound-port".to_owned(),
        OUTBOUND_PORT.to_string(),
        "--proxy-uid".to_owned(),
        knobs.proxy_uid.to_string(),
        "--skip-inbound-ports".to_owned(),
        skip_inbound,
    ];
    for (flag, value) in
        [("--skip-outbound-ports", &knobs.skip_outbound_ports), ("--skip-subnets", &knobs.skip_subnets)]
    {
        if !value.is_empty() {
            args.extend([flag.to_owned(), value.clone()]);
        }
    }
    args.extend(["--iptables-mode".to_owned(), ctx.config.iptables_mode.clone()]);
    let mut fields = vec![("name".to_owned(), Y::str(PROXY_INIT_CONTAINER)), ("image".to_owned(), image(knobs))];
    if let Some(p) = &knobs.pull_policy {
        fields.push(("imagePullPolicy".to_owned(), Y::str(p)));
    }
    fields.extend([
        ("args".to_owned(), Y::Seq(args.into_iter().map(Y::Str).collect())),
        ("securityContext".to_owned(), security(0, &["NET_ADMIN", "NET_RAW"], true)),
        ("terminationMessagePolicy".to_owned(), Y::str("FallbackToLogsOnError")),
        (
            "volumeMounts".to_owned(),
            Y::Seq(vec![Y::map([("name", Y::str(XTABLES_VOLUME)), ("mountPath", Y::str("/run"))])]),
        ),
    ]);
    Y::Map(fields)
}

fn image(knobs: &Knobs) -> Y {
    Y::Str(format!("{}:{}", knobs.image, knobs.version))
}

fn resources(knobs: &Knobs) -> Option<Y> {
    let part = |kind: &str| {
        let entries: Vec<(String, Y)> =
            knobs.resources.iter().filter(|r| r.1 == kind).map(|(res, _, q)| ((*res).to_owned(), Y::str(q))).collect();
        (!entries.is_empty()).then(|| (kind.to_owned(), Y::Map(entries)))
    };
    let parts: Vec<(String, Y)> = [part("requests"), part("limits")].into_iter().flatten().collect();
    (!parts.is_empty()).then_some(Y::Map(parts))
}

/// Both containers drop every capability and cannot escalate; proxy-init
/// adds back what iptables needs and runs as root, the proxy runs as its
/// own user, which proxy-init's rules exempt from redirection.
fn security(uid: i64, add: &[&str], root: bool) -> Y {
    let mut caps = Vec::new();
    if !add.is_empty() {
        caps.push(("add".to_owned(), Y::Seq(add.iter().map(|c| Y::str(*c)).collect())));
    }
    caps.push(("drop".to_owned(), Y::Seq(vec![Y::str("ALL")])));
    Y::map([
        ("allowPrivilegeEscalation", Y::Bool(false)),
        ("capabilities", Y::Map(caps)),
        ("privileged", Y::Bool(false)),
        ("readOnlyRootFilesystem", Y::Bool(true)),
        ("runAsNonRoot", Y::Bool(!root)),
        ("runAsUser", Y::Int(uid)),
        ("seccompProfile", Y::map([("type", Y::str("RuntimeDefault"))])),
    ])
}
