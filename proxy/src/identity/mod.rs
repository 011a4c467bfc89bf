//! The workload's mTLS identity: its certificate and key, the trust anchors,
//! and the rustls configs built from them. Files are re-read when they
//! change; new handshakes use the new certificate, open connections stay.
//!
//! OWNER: identity helper. Interface used by inbound/outbound:
//! - `Identity::load(dir)`; `Identity::spawn_reloader(self: &Arc<Self>, interval, shutdown)`
//! - `name()`: the identity in our certificate (SAN DNS)
//! - `server_config()`: client certificates optional but verified against the trust anchors
//! - `client_config()`: presents our certificate; the caller passes the expected server identity as the server name
//! - `peer_identity(&ServerConnection)`: the verified client identity, if it sent a certificate

pub mod pki;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Identity {
    pub dir: PathBuf,
}

impl Identity {
    pub fn load(dir: &Path) -> Result<Arc<Identity>, String> {
        Ok(Arc::new(Identity { dir: dir.to_path_buf() }))
    }
    pub fn name(&self) -> String {
        unimplemented!("identity helper")
    }
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        unimplemented!("identity helper")
    }
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        unimplemented!("identity helper")
    }
}

/// The identity a client proved with its certificate, if it sent one.
pub fn peer_identity(_conn: &rustls::ServerConnection) -> Option<String> {
    unimplemented!("identity helper")
}
