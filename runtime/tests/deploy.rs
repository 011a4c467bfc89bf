//! runtime/deploy/ and the GitOps health checks, checked against the code
//! they configure: the Deployment's arguments against the runtime's own
//! command line, its probes against the admin server, its RBAC against
//! fake-apiserver's authorizer driven by a real kube::Client, the Flux CEL
//! expressions with the `cel` crate and the Argo CD Lua with a Lua
//! interpreter.

use fake_apiserver::{FakeApiServer, TokenInfo};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchParams,
};
use mesh_runtime::Settings;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[path = "deploy/support.rs"]
mod support;
use support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy_dir() -> PathBuf {
    repo().join("runtime/deploy")
}

#[test]
fn kustomization_lists_every_manifest_and_each_exists() {
    let listed: BTreeSet<String> = kustomization_resources().into_iter().collect();
    for file in &listed {
        assert!(deploy_dir().join(file).is_file(), "runtime/deploy/kustomization.yaml lists {file}, which is missing");
    }
    let mut on_disk = BTreeSet::new();
    yaml_files(&deploy_dir(), &deploy_dir(), &mut on_disk);
    on_disk.remove("kustomization.yaml");
    assert_eq!(listed, on_disk, "runtime/deploy/kustomization.yaml must list every manifest in runtime/deploy/");
    for object in deploy_objects() {
        let what = format!("{} {}", object["kind"], object["metadata"]["name"]);
        assert!(object["apiVersion"].is_string() && object["metadata"]["name"].is_string(), "{what}");
    }
}

#[test]
fn crds_are_the_schemas_crds() {
    let schemas = repo().join("schemas/crds");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&schemas).expect("schemas/crds/") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        let copy = deploy_dir().join("crds").join(&name);
        let same = std::fs::read(schemas.join(&name)).ok() == std::fs::read(&copy).ok();
        assert!(
            same,
            "runtime/deploy/crds/{name} differs from schemas/crds/{name}: copy it \
             (cp schemas/crds/*.yaml runtime/deploy/crds/)"
        );
        names.insert(format!("crds/{name}"));
    }
    let listed: BTreeSet<String> = kustomization_resources().into_iter().filter(|f| f.starts_with("crds/")).collect();
    assert_eq!(listed, names, "runtime/deploy/crds/ must hold exactly the CRDs of schemas/crds/");
}

#[test]
fn deployment_args_are_the_runtimes_kubernetes_mode() {
    let settings = deployed_settings();
    assert!(settings.kube.kubernetes, "--kubernetes");
    assert_eq!(settings.dir, None);
    let c = container();
    assert_eq!(settings.listen.port(), container_port("api"), "--listen and the api port");
    assert_eq!(settings.admin.port(), container_port("admin"), "--admin and the admin port");
    assert!(
        settings.listen.ip().is_unspecified() && settings.admin.ip().is_unspecified(),
        "reachable from outside the pod"
    );
    for (var, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let env = c["env"].as_array().into_iter().flatten().find(|e| e["name"] == var);
        let env = env.unwrap_or_else(|| panic!("{var} is not set"));
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], field, "{var} from the downward API");
    }
    assert_eq!(deployment()["spec"]["replicas"], 2);
    assert_eq!(deployment()["metadata"]["namespace"], settings.kube.namespace.as_str());
}

#[test]
fn pods_are_locked_down_and_spread() {
    let spec = &deployment()["spec"]["template"]["spec"];
    let c = container();
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(spec["serviceAccountName"], "mesh-runtime");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    for (kind, resource) in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")] {
        assert!(c["resources"][kind][resource].is_string(), "resources.{kind}.{resource}");
    }
    let spread = spec["topologySpreadConstraints"].as_array().into_iter().flatten();
    let anti = &spec["affinity"]["podAntiAffinity"];
    assert!(
        spread.into_iter().any(|t| t["topologyKey"] == "kubernetes.io/hostname") || anti.is_object(),
        "replicas spread across nodes"
    );
    let tmp = c["volumeMounts"].as_array().into_iter().flatten().find(|m| m["mountPath"] == "/tmp");
    let volume = tmp.map(|m| m["name"].clone()).expect("/tmp is mounted (the runtime writes its certificate there)");
    let volumes = spec["volumes"].as_array().into_iter().flatten();
    assert!(volumes.into_iter().any(|v| v["name"] == volume && v["emptyDir"].is_object()), "/tmp is an emptyDir");
}

#[tokio::test]
async fn probes_hit_what_the_admin_server_serves() {
    let c = container();
    let admin = deployed_settings().admin.port();
    let mut paths = Vec::new();
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        let port = match &get["port"] {
            Value::String(name) => container_port(name),
            other => other.as_u64().and_then(|p| u16::try_from(p).ok()).expect("a probe port"),
        };
        assert_eq!(port, admin, "{probe} goes to the admin port");
        paths.push((probe, get["path"].as_str().expect("a probe path").to_string()));
    }
    assert_eq!(paths, [("readinessProbe", "/ready".to_string()), ("livenessProbe", "/live".to_string())]);
    // The runtime's admin server answers both (200 live, 200 ready here).
    let served = admin_answers(&["/live", "/ready"]).await;
    assert_eq!(served, [200, 200]);
}

#[test]
fn service_and_pdb_select_the_pods_on_their_ports() {
    let labels = deployment()["spec"]["template"]["metadata"]["labels"].clone();
    let matches = |selector: &Value| {
        selector.as_object().is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
    };
    let service = object("Service", "mesh-runtime");
    assert!(matches(&service["spec"]["selector"]), "the Service selects the pods");
    assert!(matches(&deployment()["spec"]["selector"]["matchLabels"]), "the Deployment selects its pods");
    let pdb = object("PodDisruptionBudget", "mesh-runtime");
    assert!(matches(&pdb["spec"]["selector"]["matchLabels"]), "the PodDisruptionBudget selects the pods");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let mut names = BTreeSet::new();
    for port in service["spec"]["ports"].as_array().expect("Service ports") {
        let target = port["targetPort"].as_str().expect("named target ports");
        assert_eq!(port["port"].as_u64(), Some(u64::from(container_port(target))), "Service port {target}");
        names.insert(target.to_string());
    }
    assert_eq!(names, BTreeSet::from(["admin".to_string(), "api".to_string(), "webhook".to_string()]));
}

/// The API server reaches the injection webhook through the Service's
/// `webhook` port, which the runtime listens on with `--webhook-listen`.
#[test]
fn the_webhook_configuration_calls_the_runtimes_webhook_listener() {
    let hook = object("MutatingWebhookConfiguration", "mesh-runtime-injector");
    let client = &hook["webhooks"][0]["clientConfig"]["service"];
    assert_eq!(client["name"], "mesh-runtime");
    assert_eq!(client["namespace"], "mesh-system");
    let settings = deployed_settings();
    let listen = settings.webhook.webhook_listen.expect("the Deployment turns the webhook on");
    assert_eq!(client["port"].as_u64(), Some(u64::from(listen.port())));
    assert_eq!(container_port("webhook"), listen.port());
    // Pods of the runtime's own namespace never wait for it.
    let excluded = &hook["webhooks"][0]["namespaceSelector"]["matchExpressions"][1]["values"];
    assert!(excluded.as_array().unwrap().iter().any(|v| v == "mesh-system"), "{excluded}");
}

const TOKEN: &str = "mesh-runtime-token";

/// The server with the deploy RBAC loaded, one object of each kind the
/// runtime reads, and the runtime's ServiceAccount token registered.
async fn rbac_server(settings: &Settings) -> FakeApiServer {
    let server = FakeApiServer::start().await.expect("fake API server");
    let loaded = server.authorizer().load(&deploy_objects()).expect("runtime/deploy RBAC loads");
    assert_eq!(loaded, 4, "ClusterRole, ClusterRoleBinding, Role, RoleBinding");
    let sa = object("ServiceAccount", "mesh-runtime");
    let sa_ns = sa["metadata"]["namespace"].as_str().expect("ServiceAccount namespace");
    let later = SystemTime::now() + Duration::from_secs(3600);
    server.tokens().insert(TOKEN, TokenInfo::new(sa_ns, "mesh-runtime", later));
    let ns = settings.kube.namespace.as_str();
    let store = server.store();
    let (keys_kind, keys_name) = trusted_keys(settings);
    let objects = [
        json!({"apiVersion": "v1", "kind": keys_kind, "metadata": {"name": keys_name, "namespace": ns}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": settings.kube.trust_roots, "namespace": ns}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": settings.kube.issuer_secret, "namespace": ns}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other", "namespace": ns}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "booksapp"}}),
        json!({"apiVersion": "meshc.io/v1alpha1", "kind": "ProxyConfig", "metadata": {"name": "web", "namespace": "booksapp"},
            "spec": {"digest": "sha256:00"}}),
        json!({"apiVersion": "meshc.io/v1alpha1", "kind": "MeshBundle", "metadata": {"name": "bundle"}, "spec": {}}),
    ];
    for o in objects {
        store.create_object(o).expect("setup object");
    }
    server
}

fn meshc_api(client: &kube::Client, kind: &str, plural: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("meshc.io", "v1alpha1", kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

#[tokio::test]
async fn rbac_allows_every_call_the_runtime_makes() {
    let settings = deployed_settings();
    let server = rbac_server(&settings).await;
    let client = server.client_with_token(TOKEN).expect("client");
    let ns = settings.kube.namespace.as_str();
    let all = ListParams::default();
    let watch_all = WatchParams::default().timeout(1);

    for (kind, plural) in
        [("ProxyConfig", "proxyconfigs"), ("ServicePolicy", "servicepolicies"), ("MeshBundle", "meshbundles")]
    {
        let api = meshc_api(&client, kind, plural, None);
        allowed(&format!("list {plural}"), api.list(&all).await);
        allowed(&format!("watch {plural}"), api.watch(&watch_all, "0").await);
    }
    let status = Patch::Merge(json!({"status": accepted_status(1)}));
    let pc = meshc_api(&client, "ProxyConfig", "proxyconfigs", Some("booksapp"));
    allowed("patch proxyconfigs/status", pc.patch_status("web", &PatchParams::default(), &status).await);
    let mb = meshc_api(&client, "MeshBundle", "meshbundles", None);
    allowed("patch meshbundles/status", mb.patch_status("bundle", &PatchParams::default(), &status).await);

    list_and_watch_all::<Service>(&client, "services").await;
    list_and_watch_all::<Pod>(&client, "pods").await;
    list_and_watch_all::<EndpointSlice>(&client, "endpointslices").await;
    list_and_watch_all::<Namespace>(&client, "namespaces").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    allowed("get a namespace (the webhook, before its watch holds it)", namespaces.get_opt("booksapp").await);

    let (keys_kind, keys_name) = trusted_keys(&settings);
    match keys_kind {
        "Secret" => list_and_watch_named::<Secret>(&client, ns, &keys_name).await,
        _ => list_and_watch_named::<ConfigMap>(&client, ns, &keys_name).await,
    }
    list_and_watch_named::<ConfigMap>(&client, ns, &settings.kube.trust_roots).await;
    list_and_watch_named::<Secret>(&client, ns, &settings.kube.issuer_secret).await;

    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let lease = Lease {
        metadata: kube::api::ObjectMeta { name: Some(settings.kube.lease.clone()), ..Default::default() },
        spec: Some(LeaseSpec { holder_identity: Some("mesh-runtime-0".into()), ..Default::default() }),
    };
    allowed("create the Lease", leases.create(&PostParams::default(), &lease).await);
    let mut current = leases.get(&settings.kube.lease).await.expect("get the Lease");
    current.spec.get_or_insert_with(Default::default).holder_identity = Some("mesh-runtime-1".into());
    allowed("update the Lease", leases.replace(&settings.kube.lease, &PostParams::default(), &current).await);

    let state: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let name = settings.kube.state_configmap.clone();
    let floor = ConfigMap {
        metadata: kube::api::ObjectMeta { name: Some(name.clone()), ..Default::default() },
        ..Default::default()
    };
    allowed("create the rollback floor ConfigMap", state.create(&PostParams::default(), &floor).await);
    allowed("get the rollback floor", state.get(&name).await);
    let current = state.get(&name).await.expect("get the rollback floor");
    allowed("update the rollback floor", state.replace(&name, &PostParams::default(), &current).await);

    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec { token: Some("a-proxy-token".into()), audiences: None },
        ..Default::default()
    };
    allowed("create tokenreviews", reviews.create(&PostParams::default(), &review).await);
}

#[tokio::test]
async fn rbac_refuses_everything_else() {
    let settings = deployed_settings();
    let server = rbac_server(&settings).await;
    let client = server.client_with_token(TOKEN).expect("client");
    let ns = settings.kube.namespace.as_str();
    let all = ListParams::default();

    let secrets_everywhere: Api<Secret> = Api::all(client.clone());
    forbidden("list Secrets cluster-wide", secrets_everywhere.list(&all).await);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    forbidden("list every Secret in the namespace", secrets.list(&all).await);
    forbidden("get another Secret", secrets.get("other").await);
    forbidden("list another Secret by name", secrets.list(&ListParams::default().fields("metadata.name=other")).await);
    forbidden("get even the issuer (only list+watch by name)", secrets.get(&settings.kube.issuer_secret).await);
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "booksapp");
    let named = ListParams::default().fields(&format!("metadata.name={}", settings.kube.trust_roots));
    forbidden("the trust roots' name in another namespace", elsewhere.list(&named).await);

    let pc = meshc_api(&client, "ProxyConfig", "proxyconfigs", Some("booksapp"));
    let forged = Patch::Merge(json!({"spec": {"digest": "sha256:ff"}}));
    forbidden("patch a ProxyConfig's spec", pc.patch("web", &PatchParams::default(), &forged).await);
    let mut object = pc.list(&all).await.expect("list").items.remove(0);
    forbidden("update a ProxyConfig", pc.replace("web", &PostParams::default(), &object).await);
    object.metadata.name = Some("new".into());
    object.metadata.resource_version = None;
    forbidden("create a ProxyConfig", pc.create(&PostParams::default(), &object).await);
    forbidden("get a ProxyConfig (reflectors list)", pc.get("web").await);
    let sp = meshc_api(&client, "ServicePolicy", "servicepolicies", Some("booksapp"));
    forbidden("patch a ServicePolicy's spec", sp.patch("books", &PatchParams::default(), &forged).await);
    let mb = meshc_api(&client, "MeshBundle", "meshbundles", None);
    forbidden("patch a MeshBundle's spec", mb.patch("bundle", &PatchParams::default(), &forged).await);

    let dp = DeleteParams::default();
    forbidden("delete a ProxyConfig", pc.delete("web", &dp).await);
    forbidden("delete a MeshBundle", mb.delete("bundle", &dp).await);
    forbidden("delete every ProxyConfig", pc.delete_collection(&dp, &all).await);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "booksapp");
    forbidden("delete a Pod", pods.delete("web-1", &dp).await);
    forbidden("patch a Pod", pods.patch("web-1", &PatchParams::default(), &Patch::Merge(json!({}))).await);
    forbidden("delete the issuer", secrets.delete(&settings.kube.issuer_secret, &dp).await);
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    forbidden("get another Lease", leases.get("someone-else").await);
    let lease = Lease {
        metadata: kube::api::ObjectMeta { name: Some(settings.kube.lease.clone()), ..Default::default() },
        spec: None,
    };
    leases.create(&PostParams::default(), &lease).await.expect("create the Lease");
    forbidden("delete the Lease", leases.delete(&settings.kube.lease, &dp).await);
    let other_ns: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    forbidden("create a Lease elsewhere", other_ns.create(&PostParams::default(), &lease).await);

    // The rollback floor's rights reach no other ConfigMap.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let (_, keys_name) = trusted_keys(&settings);
    forbidden("get the trusted keys by name", configmaps.get(&keys_name).await);
    let mut roots = ConfigMap::default();
    roots.metadata.name = Some(settings.kube.trust_roots.clone());
    forbidden(
        "update the trust roots",
        configmaps.replace(&settings.kube.trust_roots, &PostParams::default(), &roots).await,
    );
    forbidden("delete the rollback floor", configmaps.delete(&settings.kube.state_configmap, &dp).await);
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "booksapp");
    let mut floor = ConfigMap::default();
    floor.metadata.name = Some(settings.kube.state_configmap.clone());
    forbidden("create a ConfigMap elsewhere", elsewhere.create(&PostParams::default(), &floor).await);
}

#[test]
fn flux_cel_health_checks_read_both_status_shapes() {
    for (kind, check) in flux_health_checks() {
        let kind = kind.as_str();
        let accepted = with_status(kind, 3, Some(accepted_status(3)));
        assert_eq!(check.eval(&accepted), (true, false), "{kind} accepted: current, not failed");
        let refused = with_status(kind, 3, Some(refused_status(3)));
        assert_eq!(check.eval(&refused), (false, true), "{kind} refused: failed, not current");
        let stale = with_status(kind, 4, Some(accepted_status(3)));
        assert_eq!(check.eval(&stale), (false, false), "{kind}: a new generation not yet verified is in progress");
        let fixed = with_status(kind, 4, Some(refused_status(3)));
        assert_eq!(
            check.eval(&fixed),
            (false, false),
            "{kind}: a refusal of the previous generation is not this one's"
        );
        let fresh = with_status(kind, 1, None);
        assert_eq!(check.eval(&fresh), (false, false), "{kind} before any status: in progress");
    }
}

#[test]
fn argocd_lua_health_checks_read_both_status_shapes() {
    let Some(lua) = lua_interpreter("argocd_lua_health_checks_read_both_status_shapes") else { return };
    for (kind, script) in argocd_health_scripts() {
        let kind = kind.as_str();
        let run = |object: &Value| run_lua_health(&lua, &script, object);
        let (status, message) = run(&with_status(kind, 3, Some(accepted_status(3))));
        assert_eq!(status, "Healthy", "{kind} accepted: {message}");
        let (status, message) = run(&with_status(kind, 3, Some(refused_status(3))));
        assert_eq!(status, "Degraded", "{kind} refused");
        assert!(message.starts_with("SignatureInvalid: ") && message.contains("keyid"), "{kind}: {message}");
        let (status, _) = run(&with_status(kind, 4, Some(accepted_status(3))));
        assert_eq!(status, "Progressing", "{kind}: a new generation not yet verified");
        let (status, _) = run(&with_status(kind, 4, Some(refused_status(3))));
        assert_eq!(status, "Progressing", "{kind}: a refusal of the previous generation");
        let (status, _) = run(&with_status(kind, 1, None));
        assert_eq!(status, "Progressing", "{kind} before any status");
    }
}
