//! Signed configs: round trip, and every way a changed byte must fail.

use base64ct::{Base64, Encoding};
use ed25519_dalek::SigningKey;
use mesh_proxy_api::envelope::{self, Envelope, PROXY_CONFIG_PAYLOAD_TYPE, VerifyError};
use mesh_proxy_api::{ProxyConfig, WorkloadRef};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn config() -> ProxyConfig {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "shop", "name": "web"},
        "identity": "web.shop.serviceaccount.identity.linkerd.cluster.local",
        "inbound": {
            "ports": [],
            "defaultServer": {
                "meta": {"kind": "default", "name": "all-unauthenticated"},
                "protocol": {"kind": "detect", "timeoutMs": 10000},
                "authorizations": [{
                    "meta": {"kind": "default", "name": "all-unauthenticated"},
                    "networks": [{"net": "0.0.0.0/0"}],
                    "authentication": {"kind": "unauthenticated"}
                }]
            }
        }
    }))
    .expect("sample config decodes")
}

fn signed() -> Envelope {
    envelope::sign(&config(), &key(1))
}

fn payload(env: &Envelope) -> Vec<u8> {
    Base64::decode_vec(&env.payload).unwrap()
}

fn with_payload(env: &Envelope, bytes: &[u8]) -> Envelope {
    Envelope { payload: Base64::encode_string(bytes), ..env.clone() }
}

#[test]
fn round_trip() {
    let env = signed();
    assert_eq!(env.payload_type, PROXY_CONFIG_PAYLOAD_TYPE);
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, envelope::key_id(&key(1).verifying_key()));
    assert_eq!(envelope::verify(&env, &[key(1).verifying_key()]), Ok(config()));
    // Rotation: any trusted key that signed it will do.
    assert_eq!(envelope::verify(&env, &[key(2).verifying_key(), key(1).verifying_key()]), Ok(config()));
}

#[test]
fn signing_is_deterministic() {
    assert_eq!(signed(), signed());
}

#[test]
fn wrong_key_is_untrusted() {
    let err = envelope::verify(&signed(), &[key(2).verifying_key()]).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedKey { .. }), "{err}");
    assert!(err.to_string().contains(&envelope::key_id(&key(1).verifying_key())));
    assert_eq!(envelope::verify(&signed(), &[]), Err(VerifyError::NoTrustedKeys));
}

#[test]
fn forged_keyid_does_not_verify() {
    // A signature by key 2 claiming key 1's id.
    let mut env = envelope::sign(&config(), &key(2));
    env.signatures[0].keyid = envelope::key_id(&key(1).verifying_key());
    let err = envelope::verify(&env, &[key(1).verifying_key()]).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
}

#[test]
fn flipped_signature_byte_fails() {
    let env = signed();
    let sig = Base64::decode_vec(&env.signatures[0].sig).unwrap();
    for i in 0..sig.len() {
        let mut bad = sig.clone();
        bad[i] ^= 0x01;
        let mut e = env.clone();
        e.signatures[0].sig = Base64::encode_string(&bad);
        assert!(envelope::verify(&e, &[key(1).verifying_key()]).is_err(), "signature byte {i}");
    }
}

#[test]
fn any_single_byte_change_in_payload_fails() {
    let env = signed();
    let bytes = payload(&env);
    let trusted = [key(1).verifying_key()];
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x20, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            let err = envelope::verify(&with_payload(&env, &bad), &trusted).unwrap_err();
            assert!(matches!(err, VerifyError::BadSignature { .. }), "byte {i} ^ {flip:#x}: {err}");
        }
    }
}

#[test]
fn non_canonical_payload_fails_even_when_signed() {
    // Pretty-printed JSON of the same config, correctly signed: the signature
    // holds, but the bytes are not the canonical form the digest names.
    let k = key(1);
    let pretty = serde_json::to_vec_pretty(&config()).unwrap();
    let sig = ed25519_dalek::Signer::sign(&k, &envelope::pae(PROXY_CONFIG_PAYLOAD_TYPE, &pretty));
    let mut env = signed();
    env.payload = Base64::encode_string(&pretty);
    env.signatures[0].sig = Base64::encode_string(&sig.to_bytes());
    assert_eq!(envelope::verify(&env, &[k.verifying_key()]), Err(VerifyError::NotCanonical));
}

#[test]
fn unknown_field_in_signed_payload_fails() {
    let k = key(1);
    let mut v = serde_json::to_value(config()).unwrap();
    v["extra"] = serde_json::json!(true);
    let env = envelope::sign_value(&v, PROXY_CONFIG_PAYLOAD_TYPE, &k).unwrap();
    let err = envelope::verify(&env, &[k.verifying_key()]).unwrap_err();
    assert!(matches!(err, VerifyError::Payload(_)), "{err}");
}

#[test]
fn wrong_payload_type_fails() {
    let mut env = signed();
    env.payload_type = "application/vnd.in-toto+json".to_owned();
    let err = envelope::verify(&env, &[key(1).verifying_key()]).unwrap_err();
    assert!(matches!(err, VerifyError::PayloadType { .. }), "{err}");
    // Signed as another type: the PAE binds the type, so relabelling fails too.
    let other = envelope::sign_value(&config(), "application/json", &key(1)).unwrap();
    let relabelled = Envelope { payload_type: PROXY_CONFIG_PAYLOAD_TYPE.to_owned(), ..other };
    assert!(envelope::verify(&relabelled, &[key(1).verifying_key()]).is_err());
}

#[test]
fn bad_base64_is_reported() {
    let mut env = signed();
    env.payload.insert(3, '!');
    let err = envelope::verify(&env, &[key(1).verifying_key()]).unwrap_err();
    assert_eq!(err, VerifyError::Base64 { field: "payload" });
}

#[test]
fn config_for_another_workload_is_refused() {
    let trusted = [key(1).verifying_key()];
    let web = config().workload;
    assert!(envelope::verify_for_workload(&signed(), &trusted, &web).is_ok());
    let api = WorkloadRef { name: "api".into(), ..web };
    let err = envelope::verify_for_workload(&signed(), &trusted, &api).unwrap_err();
    assert_eq!(err.to_string(), "config is for Deployment shop/web, expected Deployment shop/api");
}

#[test]
fn digest_and_pae_match_the_spec() {
    assert_eq!(envelope::pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
    assert_eq!(envelope::digest(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let env = signed();
    assert_eq!(envelope::payload_digest(&env).unwrap(), envelope::digest(&payload(&env)));
    // Canonical JSON: sorted keys, no whitespace.
    let text = String::from_utf8(payload(&env)).unwrap();
    assert!(text.starts_with(r#"{"apiVersion":"meshc.io/v1alpha1","identity":"#), "{text}");
}

#[test]
fn pem_keys_round_trip_with_comment_lines() {
    let k = key(7);
    let private = envelope::signing_key_to_pem(&k).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(envelope::signing_key_from_pem(&private).unwrap().to_bytes(), k.to_bytes());
    let public = format!("# keyid: abc\n{}", envelope::verifying_key_to_pem(&k.verifying_key()).unwrap());
    assert_eq!(envelope::verifying_key_from_pem(&public).unwrap(), k.verifying_key());
    let err = envelope::verifying_key_from_pem(&private).unwrap_err();
    assert!(err.to_string().contains("not an ed25519 SPKI PEM public key"), "{err}");
    assert!(envelope::signing_key_from_pem("garbage").is_err());
}

/// An independent verifier: openssl checks the signature over the PAE with
/// the SPKI public key file, as another implementation would.
#[test]
fn openssl_verifies_the_signature() {
    if !mesh_test_support::require_tool(
        "openssl_verifies_the_signature",
        "openssl",
        &["version"],
        "apt-get install -y openssl",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let k = key(3);
    let env = envelope::sign(&config(), &k);
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let public = write("k.pub", envelope::verifying_key_to_pem(&k.verifying_key()).unwrap().as_bytes());
    let private = write("k.key", envelope::signing_key_to_pem(&k).unwrap().as_bytes());
    let pae = write("pae", &envelope::pae(&env.payload_type, &payload(&env)));
    let sig = write("sig", &Base64::decode_vec(&env.signatures[0].sig).unwrap());
    let openssl = |args: &[&std::ffi::OsStr]| std::process::Command::new("openssl").args(args).output().unwrap();
    let verify = |pae: &std::path::Path| {
        openssl(&[
            "pkeyutl".as_ref(),
            "-verify".as_ref(),
            "-pubin".as_ref(),
            "-inkey".as_ref(),
            public.as_os_str(),
            "-rawin".as_ref(),
            "-in".as_ref(),
            pae.as_os_str(),
            "-sigfile".as_ref(),
            sig.as_os_str(),
        ])
    };
    let out = verify(&pae);
    assert!(
        out.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tampered = envelope::pae(&env.payload_type, &payload(&env));
    tampered[20] ^= 1;
    let bad = write("pae-bad", &tampered);
    assert!(!verify(&bad).status.success(), "openssl accepted a tampered PAE");
    // openssl reads the private key file too, and derives the same public key.
    let out = openssl(&["pkey".as_ref(), "-in".as_ref(), private.as_os_str(), "-pubout".as_ref()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), std::fs::read_to_string(&public).unwrap());
    // And a key openssl made loads here.
    let theirs = dir.path().join("openssl.key");
    let out =
        openssl(&["genpkey".as_ref(), "-algorithm".as_ref(), "ed25519".as_ref(), "-out".as_ref(), theirs.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&theirs).unwrap();
    envelope::signing_key_from_pem(&text).expect("openssl's PKCS#8 key loads");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any change to any byte of the payload, not only single-bit flips.
        #[test]
        fn changed_payload_byte_never_verifies(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
            let env = signed();
            let mut bytes = payload(&env);
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            prop_assert!(envelope::verify(&with_payload(&env, &bytes), &[key(1).verifying_key()]).is_err());
        }

        /// A payload of the attacker's choosing under a real signature.
        #[test]
        fn other_payload_never_verifies(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let env = signed();
            prop_assume!(bytes != payload(&env));
            prop_assert!(envelope::verify(&with_payload(&env, &bytes), &[key(1).verifying_key()]).is_err());
        }
    }
}
