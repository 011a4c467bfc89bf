//! Identity headers as linkerd2-proxy handles them: the app learns its
//! client's identity from `l5d-client-id`, which only the proxy may set
//! (from the verified client certificate); the app's client learns the
//! server's from `l5d-server-id`, which only the client's proxy may set
//! (from the verified server certificate). Whatever a client or an app sent
//! under those names is dropped, and so are hop-by-hop headers.

mod inbound_support;

use inbound_support::*;

const SPOOF: &str = "admin.kube-system.serviceaccount.identity.linkerd.cluster.local";

fn count(reply: &Reply, header: &str) -> usize {
    let prefix = format!("{header}: ");
    reply.body.lines().filter(|l| l.starts_with(&prefix)).count()
}

#[tokio::test]
async fn a_plaintext_client_cannot_claim_an_identity() {
    let p = proxy(app(&[]).await, no_services(), &[]).await;
    let reply = get(p.inbound, None, "web", &[("l5d-client-id", SPOOF)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(header_seen(&reply, "l5d-client-id"), None, "the app saw:\n{}", reply.body);
}

#[tokio::test]
async fn a_meshed_clients_verified_identity_replaces_what_it_sent() {
    let p = proxy(app(&[]).await, no_services(), &[]).await;
    let tls = p.client_tls(CLIENT);
    let reply = get(p.inbound, Some(tls), "web", &[("l5d-client-id", SPOOF), ("l5d-client-id", SPOOF)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(header_seen(&reply, "l5d-client-id"), Some(CLIENT), "the app saw:\n{}", reply.body);
    assert_eq!(count(&reply, "l5d-client-id"), 1, "the app saw:\n{}", reply.body);
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_inbound_proxy() {
    let p = proxy(app(&[]).await, no_services(), &[]).await;
    let sent = [
        ("connection", "x-internal-token"),
        ("x-internal-token", "secret"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("x-kept", "yes"),
    ];
    let reply = get(p.inbound, None, "web", &sent).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for gone in ["connection", "x-internal-token", "keep-alive", "proxy-connection"] {
        assert_eq!(header_seen(&reply, gone), None, "{gone} reached the app:\n{}", reply.body);
    }
    assert_eq!(header_seen(&reply, "x-kept"), Some("yes"), "an end-to-end header was dropped:\n{}", reply.body);
}

#[tokio::test]
async fn an_app_cannot_claim_a_server_identity_inbound() {
    let p = proxy(app(&[("l5d-server-id", SPOOF)]).await, no_services(), &[]).await;
    let reply = get(p.inbound, Some(p.client_tls(CLIENT)), "web", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers.get("l5d-server-id"), None, "{:?}", reply.headers);
}

/// Outbound through the proxy to its own inbound listener, a meshed
/// endpoint whose certificate is `SERVER`: the response names `SERVER`,
/// whatever the app claimed, and the app sees the proxy's identity as client.
#[tokio::test]
async fn outbound_responses_name_the_verified_server() {
    let app = app(&[("l5d-server-id", SPOOF)]).await;
    let inbound = free_addr();
    let p = proxy_on(inbound, app, service(inbound, Some(SERVER)), &[]).await;
    let reply = get(p.outbound, None, "web.test.svc.cluster.local:80", &[("l5d-client-id", SPOOF)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let server_ids: Vec<_> = reply.headers.get_all("l5d-server-id").iter().collect();
    assert_eq!(server_ids, [SERVER], "{:?}", reply.headers);
    assert_eq!(header_seen(&reply, "l5d-client-id"), Some(SERVER), "the app saw:\n{}", reply.body);
}

/// A pod calling its own Service: the endpoint at the proxy's `--pod-ip`
/// is this pod, reached in plaintext (linkerd2-proxy's
/// `NoClientTls::Loopback`) straight to the app, past the inbound proxy. No
/// handshake proved the identity discovery names for it, and no proxy
/// answered: the response names no server, whatever the app claimed.
#[tokio::test]
async fn a_self_call_names_no_server() {
    let app = app(&[("l5d-server-id", SPOOF)]).await;
    let pod_ip = app.ip().to_string();
    let p = proxy(app, service(app, Some(SERVER)), &["--pod-ip", &pod_ip]).await;
    let reply = get(p.outbound, None, "web.test.svc.cluster.local:80", &[("l5d-client-id", SPOOF)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers.get("l5d-server-id"), None, "{:?}", reply.headers);
    // The app was called directly: no inbound proxy named the client (through
    // one, it would see `SERVER`, this proxy's own identity).
    assert_eq!(header_seen(&reply, "l5d-client-id"), None, "the app saw:\n{}", reply.body);
}

/// A dual-stack pod lists both its addresses (`status.podIPs`, comma-
/// separated as in `LINKERD2_PROXY_INBOUND_IPS`): the one listed second is
/// the pod's own too. The app serves plaintext only, so the 200 shows the
/// proxy did not try mTLS there.
#[tokio::test]
async fn a_self_call_to_the_second_address_of_a_dual_stack_pod_is_local() {
    let app = app(&[("l5d-server-id", SPOOF)]).await;
    let pod_ips = format!("fd00::7,{}", app.ip());
    let p = proxy(app, service(app, Some(SERVER)), &["--pod-ip", &pod_ips]).await;
    let reply = get(p.outbound, None, "web.test.svc.cluster.local:80", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers.get("l5d-server-id"), None, "{:?}", reply.headers);
}

#[tokio::test]
async fn outbound_responses_from_unmeshed_endpoints_name_no_server() {
    let app = app(&[("l5d-server-id", SPOOF)]).await;
    let p = proxy(app, service(app, None), &[]).await;
    let reply = get(p.outbound, None, "web.test.svc.cluster.local:80", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers.get("l5d-server-id"), None, "{:?}", reply.headers);
}
