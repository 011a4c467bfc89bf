//! Certificate rotation: poll the files, validate a change, swap it in.
//! A change that does not validate is logged once and the last good
//! identity stays in use.

use super::material::{Files, Material};
use super::{Identity, tls};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What one check of the files found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    /// The new files were accepted; the new generation.
    Swapped(u64),
    /// The files changed but did not validate; the old identity stays.
    Rejected(String),
}

impl Identity {
    /// Checks the files every `interval` until `shutdown`.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
        let identity = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                let id = identity.clone();
                // File reads and signature checks block; keep them off the
                // runtime's worker threads.
                if let Err(e) = tokio::task::spawn_blocking(move || id.reload_now()).await {
                    tracing::error!(error = %e, "identity reload task failed");
                }
            }
        })
    }

    /// Reads the files once and swaps in a validated change.
    pub fn reload_now(&self) -> Reload {
        let files = match Files::read(&self.dir) {
            Ok(f) => f,
            Err(e) => return self.reject(None, e),
        };
        {
            let mut s = self.write();
            if s.files == files {
                // The disk is back to what we serve: an earlier rejection is moot.
                s.rejected = None;
                s.last_error = None;
                return Reload::Unchanged;
            }
            if s.rejected.as_ref() == Some(&files) {
                return Reload::Rejected(s.last_error.clone().unwrap_or_default());
            }
        }
        match self.validate(&files) {
            Ok(material) => self.swap(files, material),
            Err(e) => self.reject(Some(files), e),
        }
    }

    fn validate(&self, files: &Files) -> Result<Material, String> {
        let material = Material::parse(&self.dir, files, &self.provider)?;
        if material.name != self.name {
            return Err(format!(
                "{}: identity changed from {} to {}; restart the proxy to take a new identity",
                self.dir.join(super::pki::TLS_CRT).display(),
                self.name,
                material.name
            ));
        }
        Ok(material)
    }

    fn swap(&self, files: Files, material: Material) -> Reload {
        let mut s = self.write();
        if material.anchors_der != s.material.anchors_der {
            match tls::configs(&material.anchors, &self.resolver, &self.provider) {
                Ok((server, client)) => (s.server, s.client) = (server, client),
                Err(e) => {
                    drop(s);
                    return self.reject(Some(files), e);
                }
            }
        }
        self.resolver.set(material.certified.clone());
        s.material = material;
        s.files = files;
        s.rejected = None;
        s.last_error = None;
        s.generation += 1;
        tracing::info!(identity = %self.name, generation = s.generation, expires = ?s.material.not_after, "identity reloaded");
        Reload::Swapped(s.generation)
    }

    /// Records a rejected change; `files` is `None` when they could not be read.
    fn reject(&self, files: Option<Files>, error: String) -> Reload {
        let mut s = self.write();
        let repeated =
            files.is_some() && s.rejected == files || files.is_none() && s.last_error.as_ref() == Some(&error);
        if !repeated {
            tracing::warn!(identity = %self.name, error = %error, "identity change rejected; keeping the last good certificate");
            s.failed_reloads += 1;
        }
        s.rejected = files;
        s.last_error = Some(error.clone());
        Reload::Rejected(error)
    }
}
