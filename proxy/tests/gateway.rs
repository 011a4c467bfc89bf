//! Gateway mode on loopback: a client proxy's mTLS request for a mirrored
//! Service (`web-west.test`) reaches the gateway, which authorizes it with
//! its own inbound policy and sends it on to the local Service `web.test`
//! with its own identity, as Linkerd's gateway does.
//!
//! The gateway here is the harness's proxy (identity `SERVER`) with
//! `--gateway`; `web.test:80`'s endpoint is that proxy's own inbound
//! listener, so what the app reports is what the Service's proxy received
//! from the gateway.

mod inbound_support;

use inbound_support::*;
use mesh_proxy::state::Loaded;
use mesh_proxy_api::config::Authentication;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GATEWAY: &str = SERVER;
/// The gateway's pod address (its outbound connections come from it).
const POD_IP: &str = "127.0.0.2";
/// Where the tests' clients connect from.
const CLIENT_IP: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

struct Setup {
    proxy: Proxy,
    gateway: SocketAddr,
}

async fn start() -> Setup {
    let inbound = free_addr();
    let gateway = free_addr();
    // Not 127.0.0.1: Linkerd's `localhost` authorization would admit the
    // gateway's connections to the Service, and the tests' clients.
    let flags = [format!("--gateway={gateway}"), "--gateway-cluster=west".to_string(), format!("--pod-ip={POD_IP}")];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let proxy = proxy_on(inbound, app(&[]).await, service(inbound, Some(SERVER)), &flags).await;
    tokio::spawn(mesh_proxy::gateway::serve(proxy.ctx.clone()));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(gateway).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Setup { proxy, gateway }
}

impl Setup {
    async fn call(&self, client: &str, authority: &str, headers: &[(&str, &str)]) -> Reply {
        get_from(Some(CLIENT_IP), self.gateway, Some(self.proxy.client_tls(client)), authority, headers).await
    }
}

#[tokio::test]
async fn a_mirrored_service_is_reached_with_the_gateways_identity() {
    let s = start().await;
    for authority in ["web-west.test:80", "web-west.test.svc.cluster.local:80", "web-west.test"] {
        let reply = s.call(CLIENT, authority, &[]).await;
        assert_eq!(reply.status, 200, "{authority}: {}", reply.body);
        // The Service's proxy saw the gateway's identity, not the client's.
        assert_eq!(header_seen(&reply, "l5d-client-id"), Some(GATEWAY), "{}", reply.body);
        let want = format!("by={GATEWAY};for={CLIENT};host=web.test.svc.cluster.local:80;proto=https");
        assert_eq!(header_seen(&reply, "forwarded"), Some(want.as_str()), "{}", reply.body);
        assert_eq!(header_seen(&reply, "host"), Some("web.test.svc.cluster.local:80"), "{}", reply.body);
    }
}

/// Linkerd's `GatewayDomainInvalid`: a name that is no mirror of this
/// cluster's Services is not forwarded (404).
#[tokio::test]
async fn names_that_are_no_mirror_of_this_cluster_get_404() {
    let s = start().await;
    for authority in ["web.test:80", "web-east.test:80", "example.com:80"] {
        let reply = s.call(CLIENT, authority, &[]).await;
        assert_eq!(reply.status, 404, "{authority}: {}", reply.body);
        assert!(reply.headers.contains_key("l5d-proxy-error"), "{authority}");
    }
}

/// Linkerd's `GatewayLoop`: the gateway's own identity as the client, or a
/// `forwarded` header it wrote, is a loop (508).
#[tokio::test]
async fn requests_that_passed_this_gateway_already_are_loops() {
    let s = start().await;
    assert_eq!(s.call(GATEWAY, "web-west.test:80", &[]).await.status, 508);
    let fwd = format!("by={GATEWAY};for={CLIENT};host=web.test.svc.cluster.local:80;proto=https");
    assert_eq!(s.call(CLIENT, "web-west.test:80", &[("forwarded", fwd.as_str())]).await.status, 508);
    let other = format!("by=other.gateway;for={CLIENT}");
    assert_eq!(s.call(CLIENT, "web-west.test:80", &[("forwarded", other.as_str())]).await.status, 200);
}

/// The gateway's port requires an identity: a plaintext client gets no
/// answer at all (the connection is closed), and is counted.
#[tokio::test]
async fn clients_without_mtls_are_refused() {
    let s = start().await;
    let mut tcp = tokio::net::TcpStream::connect(s.gateway).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: web-west.test:80\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(15), tcp.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a plaintext client got {:?}", String::from_utf8_lossy(&buf));
    let metrics = s.proxy.metrics();
    assert!(metrics.lines().any(|l| l.contains("reason=\"no-identity\"")), "{metrics}");
}

fn only(identity: &str) -> Authentication {
    Authentication::TlsAuthenticated { identities: vec![identity.to_string()], suffixes: Vec::new() }
}

/// The harness's open config with the gateway's port (the default server)
/// admitting `gateway` and the Service's port (`target`) admitting `service`.
fn policies(target: u16, gateway: Option<Authentication>, service: Option<Authentication>) -> Arc<Loaded> {
    let mut config = open_config().config.clone();
    let restrict = |server: &mut mesh_proxy_api::InboundServer, auth: &Authentication| {
        for authz in server.authorizations.iter_mut().chain(server.http_routes[0].authorizations.iter_mut()) {
            authz.authentication = auth.clone();
        }
    };
    let mut target_server = config.inbound.default_server.clone();
    if let Some(auth) = &service {
        restrict(&mut target_server, auth);
    }
    if let Some(auth) = &gateway {
        restrict(&mut config.inbound.default_server, auth);
    }
    config.inbound.ports = vec![mesh_proxy_api::config::PortServer { port: target, server: target_server }];
    Arc::new(Loaded { config, generation: 2, digest: "sha256:test2".into(), key_id: "test".into() })
}

const VOTE_BOT: &str = "vote-bot.test.serviceaccount.identity.linkerd.cluster.local";

/// The gateway's own policy decides first: one that admits only another
/// identity refuses the client (403) before anything is forwarded.
#[tokio::test]
async fn the_gateways_own_policy_authorizes_each_request() {
    let s = start().await;
    s.proxy.config.send_replace(Some(policies(s.proxy.inbound.port(), Some(only(VOTE_BOT)), None)));
    let reply = s.call(CLIENT, "web-west.test:80", &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(header_seen(&reply, "forwarded"), None, "nothing reached the app");
    let reply = s.call(VOTE_BOT, "web-west.test:80", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The case: the Service admits the client's identity, so the
/// client reaches it directly (pod-to-pod), but through the gateway it
/// arrives as the gateway and is refused.
#[tokio::test]
async fn a_service_that_admits_the_client_refuses_the_gateway() {
    let s = start().await;
    s.proxy.config.send_replace(Some(policies(s.proxy.inbound.port(), None, Some(only(CLIENT)))));
    let direct = get_from(Some(CLIENT_IP), s.proxy.inbound, Some(s.proxy.client_tls(CLIENT)), "web.test:80", &[]).await;
    assert_eq!(direct.status, 200, "pod-to-pod: {}", direct.body);
    assert_eq!(header_seen(&direct, "l5d-client-id"), Some(CLIENT));
    let through = s.call(CLIENT, "web-west.test:80", &[]).await;
    assert_eq!(through.status, 403, "through the gateway: {}", through.body);
}
