//! mTLS between identities over real loopback sockets: who is accepted,
//! who is refused, and what identity the server sees.

mod identity_common;

use identity_common::*;
use mesh_common::identity::Identity;
use mesh_common::identity::pki::{self, TestPki, Validity};

#[tokio::test]
async fn meshed_client_identity_is_seen_by_the_server() {
    let pki = TestPki::new(TD).unwrap();
    let (_s, web) = workload(&pki, "web");
    let (_c, vote) = workload(&pki, "voting");
    assert_eq!(web.name(), name("web"));
    assert_eq!(web.name(), "web.emojivoto.serviceaccount.identity.linkerd.cluster.local");

    let (server, client) = handshake(web.server_config(), vote.client_config(), &web.name()).await;
    assert_eq!(server, Ok(Some(name("voting"))));
    assert_eq!(client, Ok(format!("hello {}", name("voting"))));
}

/// Linkerd's proxies prefer AES-128-GCM (`linkerd/rustls/src/crypto.rs`,
/// `TLS_SUPPORTED_CIPHERSUITES`); *ring*'s default order starts with
/// AES-256-GCM, whose 14 rounds cost the mesh more CPU per byte of every body
/// for no gain between two pods of one cluster.
#[test]
fn mesh_connections_use_aes_128_gcm_as_linkerd() {
    let pki = TestPki::new(TD).unwrap();
    let (_s, web) = workload(&pki, "web");
    let (_c, vote) = workload(&pki, "voting");
    let server_name = rustls_pki_types::ServerName::try_from(web.name()).unwrap();
    let mut client = rustls::ClientConnection::new(vote.client_config(), server_name).unwrap();
    let mut server = rustls::ServerConnection::new(web.server_config()).unwrap();
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        server.read_tls(&mut wire.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        wire.clear();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets().unwrap();
    }
    assert!(!client.is_handshaking() && !server.is_handshaking(), "handshake did not complete");
    for suite in [client.negotiated_cipher_suite(), server.negotiated_cipher_suite()] {
        assert_eq!(suite.map(|s| s.suite()), Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    }
}

#[tokio::test]
async fn alpn_offers_h2_then_http1() {
    let pki = TestPki::new(TD).unwrap();
    let (_s, web) = workload(&pki, "web");
    for config in [web.server_config().alpn_protocols.clone(), web.client_config().alpn_protocols.clone()] {
        assert_eq!(config, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }
}

#[tokio::test]
async fn client_without_certificate_is_accepted_anonymously() {
    let pki = TestPki::new(TD).unwrap();
    let (_s, web) = workload(&pki, "web");
    let client = raw_client(pki.anchors_pem(), None);

    let (server, reply) = handshake(web.server_config(), client, &web.name()).await;
    assert_eq!(server, Ok(None));
    assert_eq!(reply, Ok("hello anonymous".to_string()));
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = TestPki::new(TD).unwrap();
    let other = TestPki::new(TD).unwrap();
    let (_s, web) = workload(&pki, "web");
    // Same name, same trust domain, wrong anchor: only the chain differs.
    let intruder = other.issue_workload("voting", "emojivoto", Validity::valid_for(DAY)).unwrap();
    let client = raw_client(pki.anchors_pem(), Some(&intruder));

    let (server, reply) = handshake(web.server_config(), client, &web.name()).await;
    let err = server.unwrap_err();
    assert!(untrusted(&err), "{err}");
    assert!(reply.is_err(), "client got {reply:?}");
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let pki = TestPki::new(TD).unwrap();
    let (_s, web) = workload(&pki, "web");
    let expired = pki.issue_workload("voting", "emojivoto", Validity::expired()).unwrap();
    let client = raw_client(pki.anchors_pem(), Some(&expired));

    let (server, reply) = handshake(web.server_config(), client, &web.name()).await;
    let err = server.unwrap_err();
    assert!(err.contains("expired"), "{err}");
    assert!(reply.is_err(), "client got {reply:?}");
}

#[tokio::test]
async fn not_yet_valid_client_certificate_is_refused() {
    let pki = TestPki::new(TD).unwrap();
    let (_s, web) = workload(&pki, "web");
    let early = pki.issue_workload("voting", "emojivoto", Validity::not_yet_valid()).unwrap();
    let client = raw_client(pki.anchors_pem(), Some(&early));

    let (server, reply) = handshake(web.server_config(), client, &web.name()).await;
    let err = server.unwrap_err();
    assert!(err.contains("not valid yet") || err.contains("NotValidYet"), "{err}");
    assert!(reply.is_err(), "client got {reply:?}");
}

#[tokio::test]
async fn expired_server_certificate_is_refused_by_the_client() {
    let pki = TestPki::new(TD).unwrap();
    let (_c, vote) = workload(&pki, "voting");
    let expired = pki.issue_workload("web", "emojivoto", Validity::expired()).unwrap();

    let (server, reply) = handshake(raw_server(&expired), vote.client_config(), &name("web")).await;
    let err = reply.unwrap_err();
    assert!(err.contains("expired"), "{err}");
    assert!(server.is_err(), "server got {server:?}");
}

#[tokio::test]
async fn server_with_the_wrong_identity_is_refused() {
    let pki = TestPki::new(TD).unwrap();
    let (_s, emoji) = workload(&pki, "emoji");
    let (_c, vote) = workload(&pki, "voting");

    // The client expects `web`; the server proves `emoji`, with a valid chain.
    let (server, reply) = handshake(emoji.server_config(), vote.client_config(), &name("web")).await;
    let err = reply.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    assert!(server.is_err(), "server got {server:?}");
}

#[tokio::test]
async fn server_from_another_ca_is_refused() {
    let pki = TestPki::new(TD).unwrap();
    let other = TestPki::new(TD).unwrap();
    let (_c, vote) = workload(&pki, "voting");
    let impostor = other.issue_workload("web", "emojivoto", Validity::valid_for(DAY)).unwrap();

    let (_, reply) = handshake(raw_server(&impostor), vote.client_config(), &name("web")).await;
    let err = reply.unwrap_err();
    assert!(untrusted(&err), "{err}");
}

#[test]
fn load_rejects_bad_directories_naming_the_file() {
    let pki = TestPki::new(TD).unwrap();
    let other = TestPki::new(TD).unwrap();
    let good = pki.issue_workload("web", "emojivoto", Validity::valid_for(DAY)).unwrap();
    let cases = [
        ("expired", pki.issue_workload("web", "emojivoto", Validity::expired()).unwrap(), "tls.crt", "expired"),
        (
            "not yet valid",
            pki.issue_workload("web", "emojivoto", Validity::not_yet_valid()).unwrap(),
            "tls.crt",
            "not valid yet",
        ),
        (
            "untrusted",
            other.issue_workload("web", "emojivoto", Validity::valid_for(DAY)).unwrap(),
            "ca.crt",
            "BadSignature",
        ),
        (
            "key mismatch",
            pki::WorkloadCert {
                key_pem: pki.issue_workload("web", "emojivoto", Validity::valid_for(DAY)).unwrap().key_pem,
                ..good.clone()
            },
            "tls.key",
            "does not match",
        ),
        (
            "bad cert PEM",
            pki::WorkloadCert { chain_pem: "not a certificate".into(), ..good.clone() },
            "tls.crt",
            "no CERTIFICATE",
        ),
        (
            "bad key PEM",
            pki::WorkloadCert {
                key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                ..good.clone()
            },
            "tls.key",
            "unsupported private key",
        ),
    ];
    for (what, cert, file, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        pki::write_identity_dir(dir.path(), &cert, pki.anchors_pem()).unwrap();
        let err = Identity::load(dir.path()).err().unwrap_or_else(|| panic!("{what}: loaded"));
        assert!(err.contains(file) && err.contains(reason), "{what}: {err}");
    }

    let dir = tempfile::tempdir().unwrap();
    let err = Identity::load(&dir.path().join("missing")).err().unwrap();
    assert!(err.contains("missing/tls.crt"), "{err}");
    pki::write_identity_dir(dir.path(), &good, "").unwrap();
    let err = Identity::load(dir.path()).err().unwrap();
    assert!(err.contains("ca.crt: no CERTIFICATE"), "{err}");
}

#[test]
fn status_reports_the_loaded_certificate() {
    let pki = TestPki::new(TD).unwrap();
    let (_d, web) = workload(&pki, "web");
    let status = web.status();
    assert_eq!(status.name, name("web"));
    assert_eq!(status.generation, 1);
    assert_eq!(status.last_error, None);
    assert_eq!(status.failed_reloads, 0);
    assert!(web.is_ready());
    let left = web.expires_at().duration_since(std::time::SystemTime::now()).unwrap();
    // Issued for a day; X.509 keeps whole seconds.
    assert!(left > DAY - std::time::Duration::from_secs(60) && left <= DAY, "{left:?}");
}
