//! Certificate rotation under live connections, and bad files during reload.

mod identity_common;

use identity_common::*;
use mesh_common::identity::pki::{self, TestPki, Validity};
use mesh_common::identity::{Identity, Reload};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

/// Echo server taking its config from `identity` for every connection, as
/// the proxy's listeners do.
async fn echo_server(identity: Arc<Identity>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = TlsAcceptor::from(identity.server_config());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = tls.read(&mut buf).await {
                    if tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn connect(client: &Identity, addr: SocketAddr, server: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let sni = ServerName::try_from(server.to_string()).unwrap();
    TlsConnector::from(client.client_config()).connect(sni, tcp).await.unwrap()
}

async fn echo(conn: &mut TlsStream<TcpStream>, msg: &[u8]) {
    conn.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, msg);
}

fn server_leaf(conn: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    conn.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

fn leaf_of(chain_pem: &str) -> CertificateDer<'static> {
    CertificateDer::pem_slice_iter(chain_pem.as_bytes()).next().unwrap().unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn rotation_keeps_open_connections_and_new_handshakes_get_the_new_cert() {
    let pki = TestPki::new(TD).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = pki.issue_workload("web", "emojivoto", Validity::valid_for(DAY)).unwrap();
    pki::write_identity_dir(dir.path(), &first, pki.anchors_pem()).unwrap();
    let web = Identity::load(dir.path()).unwrap();
    let shutdown = CancellationToken::new();
    let reloader = web.spawn_reloader(Duration::from_millis(20), shutdown.clone());
    let (_c, vote) = workload(&pki, "voting");
    let addr = echo_server(web.clone()).await;

    let mut before = connect(&vote, addr, &web.name()).await;
    echo(&mut before, b"before rotation").await;
    assert_eq!(server_leaf(&before), leaf_of(&first.chain_pem));

    let second = pki.issue_workload("web", "emojivoto", Validity::valid_for(2 * DAY)).unwrap();
    pki::write_identity_dir(dir.path(), &second, pki.anchors_pem()).unwrap();
    wait_for("the reloader to take the new certificate", || web.generation() == 2).await;
    assert!(web.expires_at() > std::time::SystemTime::now() + DAY);

    // The connection opened before the rotation still carries data both ways.
    echo(&mut before, b"after rotation").await;
    let mut after = connect(&vote, addr, &web.name()).await;
    echo(&mut after, b"new handshake").await;
    assert_eq!(server_leaf(&after), leaf_of(&second.chain_pem));

    // A broken file is rejected and the second certificate stays in use.
    write(dir.path(), pki::TLS_CRT, "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
    wait_for("the reloader to reject the broken file", || web.last_error().is_some()).await;
    let err = web.last_error().unwrap();
    assert!(err.contains("tls.crt"), "{err}");
    assert_eq!(web.generation(), 2);
    assert!(web.is_ready());
    let mut during = connect(&vote, addr, &web.name()).await;
    echo(&mut during, b"while broken").await;
    assert_eq!(server_leaf(&during), leaf_of(&second.chain_pem));
    echo(&mut before, b"still open").await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), reloader).await.unwrap().unwrap();
}

#[test]
fn reload_rejects_bad_changes_and_keeps_the_last_good_identity() {
    let pki = TestPki::new(TD).unwrap();
    let other = TestPki::new(TD).unwrap();
    let (dir, web) = workload(&pki, "web");
    let served = web.server_config();
    let valid = |sa: &str| pki.issue_workload(sa, "emojivoto", Validity::valid_for(DAY)).unwrap();
    let cases = [
        ("expired", pki.issue_workload("web", "emojivoto", Validity::expired()).unwrap(), "expired"),
        ("untrusted", other.issue_workload("web", "emojivoto", Validity::valid_for(DAY)).unwrap(), "BadSignature"),
        ("key mismatch", pki::WorkloadCert { key_pem: valid("web").key_pem, ..valid("web") }, "does not match"),
        ("another identity", valid("emoji"), "identity changed"),
    ];
    let mut failures = 0;
    for (what, cert, reason) in cases {
        pki::write_identity_dir(dir.path(), &cert, pki.anchors_pem()).unwrap();
        match web.reload_now() {
            Reload::Rejected(err) => assert!(err.contains(reason), "{what}: {err}"),
            other => panic!("{what}: {other:?}"),
        }
        failures += 1;
        // Rejected once; polling the same files again does not count it twice.
        assert!(matches!(web.reload_now(), Reload::Rejected(_)));
        let status = web.status();
        assert_eq!((status.generation, status.failed_reloads), (1, failures), "{what}");
        assert_eq!(web.name(), name("web"));
        assert!(Arc::ptr_eq(&served, &web.server_config()), "{what}: configs rebuilt");
    }

    pki::write_identity_dir(dir.path(), &valid("web"), pki.anchors_pem()).unwrap();
    assert_eq!(web.reload_now(), Reload::Swapped(2));
    assert_eq!(web.last_error(), None);
    assert_eq!(web.reload_now(), Reload::Unchanged);
}

#[tokio::test]
async fn new_trust_anchors_rebuild_the_configs() {
    let pki = TestPki::new(TD).unwrap();
    let other = TestPki::new(TD).unwrap();
    let (dir, web) = workload(&pki, "web");
    let (_c, outsider) = workload(&other, "voting");

    let (server, _) = handshake(web.server_config(), outsider.client_config(), &web.name()).await;
    assert!(server.is_err(), "an unknown anchor was trusted: {server:?}");

    // Trust both anchors (anchor rotation): the outsider is now accepted.
    let bundle = format!("{}{}", pki.anchors_pem(), other.anchors_pem());
    write(dir.path(), pki::CA_CRT, &bundle);
    assert_eq!(web.reload_now(), Reload::Swapped(2));
    let outsider_trusts_web = {
        let dir = tempfile::tempdir().unwrap();
        let cert = other.issue_workload("voting", "emojivoto", Validity::valid_for(DAY)).unwrap();
        pki::write_identity_dir(dir.path(), &cert, &bundle).unwrap();
        Identity::load(dir.path()).unwrap().client_config()
    };
    let (server, reply) = handshake(web.server_config(), outsider_trusts_web, &web.name()).await;
    assert_eq!(server, Ok(Some(name("voting"))));
    assert!(reply.is_ok(), "{reply:?}");
}
