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
    start_with(None).await
}

/// The harness's proxy as the gateway; with `opaque_client`, also an
/// opaque outbound listener there for `web-west.test:80`, whose endpoint
/// is the gateway itself (the proxy as a client proxy of another cluster).
async fn start_with(opaque_client: Option<SocketAddr>) -> Setup {
    let inbound = free_addr();
    let gateway = free_addr();
    // Not 127.0.0.1: Linkerd's `localhost` authorization would admit the
    // gateway's connections to the Service, and the tests' clients.
    let mut flags =
        vec![format!("--gateway={gateway}"), "--gateway-cluster=west".to_string(), format!("--pod-ip={POD_IP}")];
    flags.extend(opaque_client.map(|at| format!("--outbound-tcp={at}=web-west.test:80")));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut discovery = service(inbound, Some(SERVER));
    let mirror = serde_json::json!({"namespace": "test", "name": "web-west",
        "ports": [{"port": 80, "endpoints": [{"addr": gateway.to_string(), "identity": GATEWAY}]}]});
    discovery["services"].as_array_mut().unwrap().push(mirror);
    let proxy = proxy_on(inbound, app(&[]).await, discovery, &flags).await;
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

const HTTP_GET: &[u8] = b"GET / HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n";

/// An opaque connection to the gateway as `client`, offering the transport
/// header's ALPN when `alpn`, writing `header` (if any) and then `payload`:
/// whatever came back before the connection closed.
async fn opaque_call(s: &Setup, client: &str, alpn: bool, header: Option<&str>, payload: &[u8]) -> String {
    use mesh_proxy::gateway::header as transport;
    let mut config = (*s.proxy.client_tls(client)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if alpn {
        config.alpn_protocols.insert(0, transport::ALPN.to_vec());
    }
    let tcp = mesh_proxy::net::connect_from(Some(CLIENT_IP), s.gateway).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(GATEWAY.to_string()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(
        negotiated.as_deref() == Some(transport::ALPN),
        alpn,
        "the gateway selects the header's ALPN when offered"
    );
    if let Some(h) = header {
        tls.write_all(&transport::encode(h)).await.unwrap();
    }
    let _ = tls.write_all(payload).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Opaque TCP crosses: the transport header names the mirror, the gateway
/// sends the bytes on to `web.test:80` as they are, and the Service's
/// proxy sees the gateway's identity, not the client's.
#[tokio::test]
async fn an_opaque_connection_names_its_mirror_in_the_transport_header() {
    let s = start().await;
    for authority in ["web-west.test.svc.cluster.local:80", "web-west.test:80"] {
        let got = opaque_call(&s, CLIENT, true, Some(authority), HTTP_GET).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{authority}: {got}");
        assert!(got.contains(&format!("l5d-client-id: {GATEWAY}\n")), "{authority}: {got}");
        assert!(!got.contains("forwarded:"), "opaque bytes are not rewritten: {got}");
    }
    let metrics = s.proxy.metrics();
    assert!(
        metrics.lines().any(|l| l.contains("direction=\"inbound\"") && l.contains("verdict=\"allow\"")),
        "{metrics}"
    );
}

/// The client side: the proxy's own opaque listener for the mirror offers
/// the header's ALPN and, the gateway selecting it, names the Service.
#[tokio::test]
async fn a_client_proxys_opaque_connection_to_a_gateway_carries_the_header() {
    let listener = free_addr();
    let s = start_with(Some(listener)).await;
    let mut app_side = None;
    for _ in 0..200 {
        if let Ok(c) = mesh_proxy::net::connect_from(Some(CLIENT_IP), listener).await {
            app_side = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut app_side = app_side.expect("the opaque listener accepts");
    app_side.write_all(HTTP_GET).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), app_side.read_to_end(&mut buf)).await;
    let got = String::from_utf8_lossy(&buf);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}\n{}", s.proxy.metrics());
    assert!(got.contains(&format!("l5d-client-id: {GATEWAY}\n")), "{got}");
}

/// The gateway's own policy decides per connection: one that admits only
/// another identity closes the client's connection before anything is sent on.
#[tokio::test]
async fn the_gateways_own_policy_authorizes_each_opaque_connection() {
    let s = start().await;
    s.proxy.config.send_replace(Some(policies(s.proxy.inbound.port(), Some(only(VOTE_BOT)), None)));
    let got = opaque_call(&s, CLIENT, true, Some("web-west.test:80"), HTTP_GET).await;
    assert_eq!(got, "", "closed without an answer");
    let got = opaque_call(&s, VOTE_BOT, true, Some("web-west.test:80"), HTTP_GET).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // And the target's own policy sees the gateway: admitting only the client, it refuses.
    s.proxy.config.send_replace(Some(policies(s.proxy.inbound.port(), None, Some(only(CLIENT)))));
    let got = opaque_call(&s, CLIENT, true, Some("web-west.test:80"), HTTP_GET).await;
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
}

/// What cannot name its target is closed: a connection that is neither HTTP
/// nor has a header (Linkerd's `TransportHeaderRequired`), a header naming
/// no mirror of this cluster, a header that is not a name.
#[tokio::test]
async fn opaque_connections_that_name_no_mirror_are_closed() {
    let s = start().await;
    assert_eq!(opaque_call(&s, CLIENT, false, None, b"\x00\x01 not http\n").await, "");
    for header in ["web.test:80", "web-east.test:80", "not a name"] {
        assert_eq!(opaque_call(&s, CLIENT, true, Some(header), HTTP_GET).await, "", "{header}");
    }
    let metrics = s.proxy.metrics();
    for reason in ["transport-header-required", "transport-header-invalid"] {
        assert!(metrics.lines().any(|l| l.contains(&format!("reason=\"{reason}\""))), "{reason}: {metrics}");
    }
}
