//! The workload's mTLS identity: its certificate and key, the trust anchors,
//! and the rustls configs built from them. Files are re-read when they
//! change; new handshakes use the new certificate, open connections stay
//! (each keeps the session state it negotiated).
//!
//! Interface used by inbound/outbound:
//! - `Identity::load(dir)`; `Identity::spawn_reloader(self: &Arc<Self>, interval, shutdown)`
//! - `name()`: the identity in our certificate (SAN DNS)
//! - `server_config()`: client certificates optional but verified against the trust anchors
//! - `client_config()`: presents our certificate; the caller passes the expected server identity as the server name
//! - `peer_identity(&ServerConnection)`: the verified client identity, if it sent a certificate
//!
//! Take `server_config()`/`client_config()` per connection (an `Arc` clone):
//! a change of trust anchors replaces them.

pub mod material;
pub mod pki;
mod reload;
mod tls;

pub use reload::Reload;

use material::{Files, Material};
use rustls::crypto::CryptoProvider;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;
use tls::Resolver;

pub struct Identity {
    dir: PathBuf,
    name: String,
    provider: Arc<CryptoProvider>,
    /// Shared by every config built here, so a new certificate reaches new
    /// handshakes without rebuilding configs.
    resolver: Arc<Resolver>,
    state: RwLock<State>,
}

struct State {
    material: Material,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    /// The files the current material came from.
    files: Files,
    /// The last files that failed validation, so they are reported once.
    rejected: Option<Files>,
    generation: u64,
    last_error: Option<String>,
    failed_reloads: u64,
}

/// A snapshot for `/ready` and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    /// 1 at load, +1 for every accepted change.
    pub generation: u64,
    /// Why the latest change on disk was rejected; `None` once a later one is accepted.
    pub last_error: Option<String>,
    /// Changes on disk that were rejected (each distinct content counted once).
    pub failed_reloads: u64,
    pub not_before: SystemTime,
    pub expires_at: SystemTime,
}

impl Identity {
    /// Loads and validates `dir`/tls.crt, tls.key and ca.crt.
    pub fn load(dir: &Path) -> Result<Arc<Identity>, String> {
        let provider = Arc::new(tls::mesh_provider());
        let files = Files::read(dir)?;
        let material = Material::parse(dir, &files, &provider)?;
        let resolver = Arc::new(Resolver::new(material.certified.clone()));
        let (server, client) = tls::configs(&material.anchors, &resolver, &provider)?;
        let state = State {
            material,
            server,
            client,
            files,
            rejected: None,
            generation: 1,
            last_error: None,
            failed_reloads: 0,
        };
        let name = state.material.name.clone();
        Ok(Arc::new(Identity { dir: dir.to_path_buf(), name, provider, resolver, state: RwLock::new(state) }))
    }

    /// The identity in our certificate (its SAN DNS name). It never changes:
    /// a reload to another name is rejected.
    pub fn name(&self) -> String {
        self.name.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// For accepted connections: presents our certificate; a client
    /// certificate is optional but must chain to the trust anchors; ALPN h2
    /// and http/1.1.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.read().server.clone()
    }

    /// For connections to meshed peers: presents our certificate and checks
    /// the server's chain against the anchors and its name against the
    /// `ServerName` the caller connects with (the expected identity).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.read().client.clone()
    }

    /// Whether the certificate in use is valid now (an expired one is still
    /// served, since there is nothing better, but the proxy is not ready).
    pub fn is_ready(&self) -> bool {
        let now = SystemTime::now();
        let s = self.read();
        s.material.not_before <= now && now < s.material.not_after
    }

    /// When the certificate in use expires.
    pub fn expires_at(&self) -> SystemTime {
        self.read().material.not_after
    }

    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    pub fn last_error(&self) -> Option<String> {
        self.read().last_error.clone()
    }

    pub fn status(&self) -> Status {
        let s = self.read();
        Status {
            name: self.name.clone(),
            generation: s.generation,
            last_error: s.last_error.clone(),
            failed_reloads: s.failed_reloads,
            not_before: s.material.not_before,
            expires_at: s.material.not_after,
        }
    }

    /// A poisoned lock only means a panic elsewhere mid-update; every update
    /// here is a whole-value swap, so the data is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The identity a client proved with its certificate, if it sent one. rustls
/// only completes a handshake whose client chain verified against the trust
/// anchors, so any certificate seen here is trusted.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    material::dns_san(&cert)
}
