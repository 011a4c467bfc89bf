//! What the fuzz targets share: the signing key their seeds are signed with,
//! so that mutations of a seed reach payload decoding, not only the
//! signature check.

use mesh_proxy_api::envelope::{SigningKey, VerifyingKey};

/// A fixed test key (not secret: it signs only fuzz seeds).
pub fn seed_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

pub fn trusted() -> Vec<VerifyingKey> {
    vec![seed_key().verifying_key()]
}

/// The workload the proxy-config seeds are for.
pub const SEED_WORKLOAD: &str = "Deployment/booksapp/webapp";
