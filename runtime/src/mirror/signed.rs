//! Reading `--links`: the file `meshc build` writes is a DSSE envelope
//! signed with the build's key (`LINKS_PAYLOAD_TYPE`), opened with the
//! runtime's trusted keys like a config. The file decides which identity
//! client proxies expect at a gateway and which runtime is believed about
//! remote pods, so it is trusted no more than the channel it comes through:
//!
//! - signed: believed once a trusted key's signature verifies;
//! - unsigned (a document written by hand): operator configuration, like
//!   `--endpoints` and `--ca-dir`, except inside the build directory
//!   (`--dir`), which is the channel signatures exist for: there an unsigned
//!   file is refused, so whoever can write the build cannot swap meshc's
//!   signed file for one that sends mirrors elsewhere.

use super::Links;
use mesh_proxy_api::envelope::{self, Envelope, LINKS_PAYLOAD_TYPE, VerifyingKey};
use std::path::{Path, PathBuf};

/// The keys and the build directory a links file is judged by, at start
/// and at every re-read (`mirror::watch`).
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<VerifyingKey>,
    pub build_dir: Option<PathBuf>,
}

/// The links `path` holds, signed by one of `trusted` or unsigned outside `build_dir`.
pub fn read(path: &Path, trust: &Trust) -> Result<Links, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    open(&bytes, path, trust)
}

/// The links in `bytes`, read from `path`: see [`read`].
pub fn open(bytes: &[u8], path: &Path, trust: &Trust) -> Result<Links, String> {
    let (trusted, build_dir) = (trust.keys.as_slice(), trust.build_dir.as_deref());
    if let Ok(env) = serde_json::from_slice::<Envelope>(bytes) {
        let payload = envelope::verified_payload(&env, LINKS_PAYLOAD_TYPE, trusted).map_err(|e| {
            let keys = if trusted.is_empty() { " (the runtime has no --trust-key to verify it with)" } else { "" };
            format!("the signed links file does not verify{keys}: {e}")
        })?;
        return super::parse(&payload);
    }
    if build_dir.is_some_and(|dir| inside(path, dir)) {
        return Err("an unsigned links file inside the build directory (--dir), whose files are trusted only when \
                    signed: use the links.json `meshc build` signs, or keep a hand-written one outside --dir"
            .to_owned());
    }
    let links = super::parse(bytes)?;
    tracing::warn!("the links file is not signed: trusted as operator configuration, like --endpoints");
    Ok(links)
}

fn inside(path: &Path, dir: &Path) -> bool {
    match (path.canonicalize(), dir.canonicalize()) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        // What cannot be resolved is taken as inside: the safe side.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proxy_api::envelope::SigningKey;

    const DOC: &str = r#"{"links":[{"targetCluster":"west","gateway":{"addresses":["203.0.113.20"],"port":4143,"identity":"gw.example"},"services":[{"namespace":"shop","name":"api","mode":"gateway","ports":[8080]}]}]}"#;

    fn trust(keys: Vec<VerifyingKey>, build_dir: Option<&Path>) -> Trust {
        Trust { keys, build_dir: build_dir.map(Path::to_path_buf) }
    }

    fn signed(key: &SigningKey) -> String {
        let doc: serde_json::Value = serde_json::from_str(DOC).unwrap();
        serde_json::to_string(&envelope::sign_value(&doc, LINKS_PAYLOAD_TYPE, key).unwrap()).unwrap()
    }

    #[test]
    fn a_signed_file_opens_with_a_trusted_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let path = dir.path().join("links.json");
        std::fs::write(&path, signed(&key)).unwrap();
        let links = read(&path, &trust(vec![key.verifying_key()], Some(dir.path()))).unwrap();
        assert_eq!(links.links[0].target_cluster, "west");
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(read(&path, &trust(vec![other], None)).unwrap_err().contains("does not verify"));
        assert!(read(&path, &trust(vec![], None)).unwrap_err().contains("no --trust-key"));
    }

    #[test]
    fn an_unsigned_file_is_refused_inside_the_build_directory_only() {
        let build = tempfile::tempdir().unwrap();
        let inside_path = build.path().join("links.json");
        std::fs::write(&inside_path, DOC).unwrap();
        let err = read(&inside_path, &trust(vec![], Some(build.path()))).unwrap_err();
        assert!(err.contains("unsigned links file inside the build directory"), "{err}");
        let elsewhere = tempfile::tempdir().unwrap();
        let outside_path = elsewhere.path().join("links.json");
        std::fs::write(&outside_path, DOC).unwrap();
        assert_eq!(read(&outside_path, &trust(vec![], Some(build.path()))).unwrap().links.len(), 1);
    }
}
