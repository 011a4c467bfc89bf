//! End-to-end: real proxies, real certificates, real sockets, configs from
//! `meshc build`, compared with `meshc reach`. Each test runs in its own
//! network namespace (see netns.rs), as root or in a user namespace.

mod clients;
mod coverage;
mod inbound;
mod mesh;
mod netns;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn booksapp_statuses_match_meshc_reach() {
    netns::run("booksapp_statuses_match_meshc_reach", || {
        let checks = runtime().block_on(inbound::check_example("booksapp-rest", inbound::Mode::Explicit));
        println!("booksapp-rest: {} requests, every status as meshc reach predicts", checks.total);
        checks.assert_covers("booksapp-rest", &coverage::BOOKSAPP);
    });
}

#[test]
fn emojivoto_grpc_statuses_match_meshc_reach() {
    netns::run("emojivoto_grpc_statuses_match_meshc_reach", || {
        let checks = runtime().block_on(inbound::check_example("emojivoto-grpc", inbound::Mode::Explicit));
        println!("emojivoto-grpc: {} requests, every status as meshc reach predicts", checks.total);
        checks.assert_covers("emojivoto-grpc", &coverage::EMOJIVOTO);
    });
}

mod canary;

#[test]
fn podinfo_canary_inbound_statuses_match_meshc_reach() {
    netns::run("podinfo_canary_inbound_statuses_match_meshc_reach", || {
        let checks = runtime().block_on(inbound::check_example("podinfo-canary", inbound::Mode::Explicit));
        println!("podinfo-canary: {} requests, every status as meshc reach predicts", checks.total);
        checks.assert_covers("podinfo-canary", &coverage::PODINFO_INBOUND);
    });
}

#[test]
fn podinfo_canary_split_retries_timeout() {
    netns::run("podinfo_canary_split_retries_timeout", || {
        let build = mesh::build("podinfo-canary");
        let c = canary::start(&build);
        runtime().block_on(async {
            canary::split_and_retries(&c).await;
            canary::header_routing(&c).await;
            canary::unmatched_requests_get_404_from_the_client_proxy(&c).await;
            canary::request_timeout(&c).await;
        });
    });
}

/// The same promise in transparent mode: iptables redirects each pod
/// address to its proxy, which finds the port from the original destination.
#[test]
fn booksapp_transparent_mode_statuses_match_meshc_reach() {
    netns::run("booksapp_transparent_mode_statuses_match_meshc_reach", || {
        if let Err(e) = netns::iptables_available() {
            let what = format!("transparent mode needs iptables in the test's network namespace ({e})");
            mesh_test_support::missing(
                "booksapp_transparent_mode_statuses_match_meshc_reach",
                &what,
                "apt-get install -y iptables",
            );
            return;
        }
        let checks = runtime().block_on(inbound::check_example("booksapp-rest", inbound::Mode::Transparent));
        println!(
            "booksapp-rest (transparent, iptables REDIRECT): {} requests, every status as meshc reach predicts",
            checks.total
        );
        checks.assert_covers("booksapp-rest (transparent)", &coverage::BOOKSAPP);
    });
}

mod resilience;

#[test]
fn proxy_keeps_its_last_good_state() {
    netns::run("proxy_keeps_its_last_good_state", || {
        let s = resilience::start();
        runtime().block_on(async {
            resilience::bad_configs_keep_the_last_good_one(&s).await;
            resilience::bad_certificates_are_refused_and_good_clients_kept(&s).await;
            resilience::vanishing_clients_and_backends(&s).await;
        });
    });
}

#[test]
fn sigterm_drains_in_flight_requests() {
    netns::run("sigterm_drains_in_flight_requests", || {
        let mut s = resilience::start();
        runtime().block_on(resilience::sigterm_drains_in_flight_requests(&mut s));
    });
}

mod cluster;
mod cluster_objects;
mod ratelimit;
mod runtime_mode;

/// Rate limits on the wire: each allowed client's burst passes exactly as
/// many requests as the limit `meshc reach` reports, the rest get 429.
#[test]
fn rate_limits_match_meshc_reach() {
    netns::run("rate_limits_match_meshc_reach", || {
        let scopes = runtime().block_on(ratelimit::bursts_match_meshc_reach());
        println!("rate limits checked on the wire, scopes: {scopes:?}");
        assert!(
            scopes.contains("override") && scopes.contains("identity"),
            "the bursts must exercise both an override and the identity limit, got {scopes:?}"
        );
    });
}

/// The same promise with mesh-runtime (file mode) between `meshc build` and
/// the proxies: certificates from ServiceAccount tokens, configs over mTLS.
#[test]
fn booksapp_through_mesh_runtime_statuses_match_meshc_reach() {
    netns::run("booksapp_through_mesh_runtime_statuses_match_meshc_reach", || {
        let checks = runtime().block_on(inbound::check_example("booksapp-rest", inbound::Mode::Runtime));
        println!(
            "booksapp-rest (mesh-runtime file mode): {} requests, every status as meshc reach predicts",
            checks.total
        );
        checks.assert_covers("booksapp-rest (mesh-runtime file mode)", &coverage::BOOKSAPP);
    });
}

#[test]
fn mesh_runtime_file_mode_updates_tampering_restarts_tokens() {
    netns::run("mesh_runtime_file_mode_updates_tampering_restarts_tokens", || {
        let mut s = runtime_mode::start();
        runtime().block_on(runtime_mode::every_check(&mut s));
    });
}

/// The same promise with mesh-runtime in Kubernetes mode: `meshc build`'s
/// objects applied with `kubectl apply --server-side` to the fake API server,
/// the runtime watching them, proxies bootstrapped from TokenReview'd tokens.
#[test]
fn booksapp_through_kubernetes_mode_statuses_match_meshc_reach() {
    booksapp_through_kubernetes_mode(
        "booksapp_through_kubernetes_mode_statuses_match_meshc_reach",
        cluster::ApiServer::Fake,
    );
}

/// The same on a real kube-apiserver: runtime/deploy/ applied server-side
/// and its RBAC judged by the real authorizer (the runtime presents its
/// ServiceAccount's TokenRequest token), the proxies' tokens issued by
/// TokenRequest and checked by TokenReview, the build applied server-side
/// against the CRDs' structural schema.
#[test]
fn booksapp_through_kubernetes_mode_real_apiserver_statuses_match_meshc_reach() {
    booksapp_through_kubernetes_mode(
        "booksapp_through_kubernetes_mode_real_apiserver_statuses_match_meshc_reach",
        cluster::ApiServer::Real,
    );
}

fn booksapp_through_kubernetes_mode(test: &str, server: cluster::ApiServer) {
    if !cluster::prebuild(test, server) {
        return;
    }
    netns::run(test, || {
        let checks = runtime().block_on(inbound::check_example("booksapp-rest", inbound::Mode::Kubernetes(server)));
        println!(
            "booksapp-rest (mesh-runtime Kubernetes mode, {server:?} API server): {} requests, every status as meshc reach predicts",
            checks.total
        );
        checks.assert_covers("booksapp-rest (mesh-runtime Kubernetes mode)", &coverage::BOOKSAPP);
    });
}

#[test]
fn mesh_runtime_kubernetes_mode_updates_tampering_restarts_tokens() {
    kubernetes_mode_updates_tampering_restarts_tokens(
        "mesh_runtime_kubernetes_mode_updates_tampering_restarts_tokens",
        cluster::ApiServer::Fake,
    );
}

/// The same on a real kube-apiserver, where discovery comes from Services,
/// EndpointSlices and Pods it stores and serves through real watches.
#[test]
fn mesh_runtime_kubernetes_mode_real_apiserver_updates_tampering_restarts_tokens() {
    kubernetes_mode_updates_tampering_restarts_tokens(
        "mesh_runtime_kubernetes_mode_real_apiserver_updates_tampering_restarts_tokens",
        cluster::ApiServer::Real,
    );
}

fn kubernetes_mode_updates_tampering_restarts_tokens(test: &str, server: cluster::ApiServer) {
    if !cluster::prebuild(test, server) {
        return;
    }
    netns::run(test, || {
        let mut s = runtime_mode::start_kube(server);
        runtime().block_on(runtime_mode::every_check(&mut s));
    });
}

mod control_plane_ns;

/// meshc, mesh-runtime and mesh-proxy build identities the same way when
/// `controlPlaneNamespace` is not Linkerd's default.
#[test]
fn mesh_system_control_plane_statuses_match_meshc_reach() {
    netns::run("mesh_system_control_plane_statuses_match_meshc_reach", || {
        let checks = runtime().block_on(control_plane_ns::booksapp_with_mesh_system_control_plane());
        println!(
            "booksapp-rest (controlPlaneNamespace: mesh-system): {} requests, every status as meshc reach predicts",
            checks.total
        );
        // The same policy as booksapp-rest under another name: the same floor and verdicts.
        checks.assert_covers("booksapp-rest (mesh-system)", &coverage::BOOKSAPP);
    });
}

mod stream_routes;

/// A TCPRoute's 80/20 split and a TLSRoute's 3:1 split by SNI on the wire,
/// through the client's and the backends' proxies (mTLS between them).
#[test]
fn tcp_and_tls_route_splits_on_the_wire() {
    netns::run("tcp_and_tls_route_splits_on_the_wire", || {
        let s = stream_routes::start();
        runtime().block_on(async {
            stream_routes::tcp_split(&s).await;
            stream_routes::tls_split_by_sni(&s).await;
        });
    });
}

mod egress;

/// Egress on the wire: web's proxy refuses, passes through or redirects its
/// connections to hosts outside the cluster (loopback addresses meshc.yaml
/// declares external) exactly as `meshc reach --to egress:` says.
#[test]
fn egress_matches_meshc_reach() {
    netns::run("egress_matches_meshc_reach", || {
        if let Err(e) = netns::iptables_available() {
            let what = format!("egress needs iptables REDIRECT in the test's network namespace ({e})");
            mesh_test_support::missing("egress_matches_meshc_reach", &what, "apt-get install -y iptables");
            return;
        }
        let e = egress::start();
        let checked = runtime().block_on(async {
            egress::external_hosts().await;
            egress::outcomes_match_meshc_reach(&e).await
        });
        println!("egress: {checked} outcomes on the wire, each as meshc reach predicts");
        assert_eq!(checked, 7);
    });
}
mod pods;

/// Booksapp in pods: each workload in a network namespace of its own with
/// `mesh-proxy init`'s rules, the apps calling Service cluster IPs in plain
/// HTTP, the node DNATing cluster IPs as kube-proxy does, the proxies fed
/// by mesh-runtime; every status as `meshc reach --to svc/...` predicts.
#[test]
fn booksapp_in_pods_statuses_match_meshc_reach() {
    in_pods(
        "booksapp_in_pods_statuses_match_meshc_reach",
        "booksapp-rest",
        pods::booksapp_requests,
        &["allow", "deny", "no-route", "own pod"],
    );
}

/// The same with emojivoto: gRPC to the emoji and voting Services, HTTP to web.
#[test]
fn emojivoto_in_pods_statuses_match_meshc_reach() {
    in_pods(
        "emojivoto_in_pods_statuses_match_meshc_reach",
        "emojivoto-grpc",
        pods::emojivoto_requests,
        &["allow", "deny", "own pod"],
    );
}

/// In test `test`'s network namespace, when iptables and setpriv are
/// there: starts `example` in pods, checks every request, and asserts each
/// of `verdicts` was among those compared.
fn in_pods(test: &str, example: &str, requests: fn() -> Vec<clients::Req>, verdicts: &[&str]) {
    netns::run(test, || {
        if let Err(e) = netns::iptables_available() {
            mesh_test_support::missing(test, &format!("the pods need iptables ({e})"), "apt-get install -y iptables");
            return;
        }
        if !mesh_test_support::require_tool(test, "setpriv", &["--version"], "apt-get install -y util-linux") {
            return;
        }
        check_in_pods(example, &requests(), verdicts);
    });
}

fn check_in_pods(example: &str, requests: &[clients::Req], verdicts: &[&str]) {
    let cluster = pods::start(example);
    let tally = runtime().block_on(pods::check(&cluster, requests));
    println!("{example} in pods: every status as meshc reach predicts; verdicts {tally:?}");
    for verdict in verdicts {
        assert!(
            tally.get(*verdict).is_some_and(|n| *n > 0),
            "{example}: no `{verdict}` request was checked: {tally:?}"
        );
    }
}

mod multicluster;

/// Emojivoto split across two clusters (web in east; emoji and voting in
/// west), each with its own mesh-runtime and one trust anchor: every
/// cross-cluster call's status is what `meshc reach` proves across the
/// clusters, through west's gateway and pod-to-pod, including the policy
/// that admits web's identity and so refuses the gateway's; opaque TCP
/// crosses the gateway too, and a federated Service is served from both
/// clusters' members.
#[test]
fn emojivoto_multicluster_statuses_match_meshc_reach() {
    netns::run("emojivoto_multicluster_statuses_match_meshc_reach", || {
        use multicluster::Scenario;
        let expected: [(Scenario, &[(&str, usize)]); 3] = [
            // web and vote-bot both arrive as the gateway, which west admits (gRPC and opaque TCP alike);
            // a client without a proxy has no identity for the gateway.
            (Scenario::Gateway, &[("allow", 6), ("deny", 1)]),
            // West admits web, but through the gateway web arrives as the gateway (opaque too).
            (Scenario::GatewayWithClientPolicy, &[("deny", 7)]),
            // Pod-to-pod web's own identity arrives: web is admitted, vote-bot is not, on the mirrors
            // (gRPC and opaque) and on either member of the federated emoji-svc.
            (Scenario::PodToPod, &[("allow", 4), ("deny", 4)]),
        ];
        for (scenario, want) in expected {
            let clusters = multicluster::start(scenario);
            let tally = runtime().block_on(multicluster::check(&clusters, scenario));
            println!("emojivoto multicluster {scenario:?}: every status as meshc reach predicts; verdicts {tally:?}");
            let want: std::collections::BTreeMap<String, usize> =
                want.iter().map(|(v, n)| (v.to_string(), *n)).collect();
            assert_eq!(tally, want, "{scenario:?}: the verdicts compared");
        }
    });
}
