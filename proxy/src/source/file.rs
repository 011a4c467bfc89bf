//! A config file polled for changes. Polling (rather than inotify) works the
//! same for Kubernetes' symlink-swapped ConfigMap and Secret volumes, plain
//! files and network filesystems.
//!
//! Writers should replace the file atomically (write then rename, as
//! `meshc build` does): a half-written file is read as a parse failure,
//! counted once, and the complete file is loaded on the next poll.

use super::{ConfigSource, SourceError};
use mesh_proxy_api::envelope::digest;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::{Interval, MissedTickBehavior};

/// What the last poll saw, so that only changes are yielded.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// SHA-256 of the bytes: a collision cannot hide a change.
    Content(String),
    Failed(String),
}

pub struct FileSource {
    path: PathBuf,
    ticks: Interval,
    last: Option<Seen>,
}

impl FileSource {
    /// Reads `path` at once, then every `interval`.
    pub fn new(path: PathBuf, interval: Duration) -> FileSource {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
        // After a stall, poll once, not once per missed tick.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        FileSource { path, ticks, last: None }
    }

    /// The bytes, or the error, if they differ from the last poll's.
    async fn poll(&mut self) -> Option<Result<Vec<u8>, SourceError>> {
        let (seen, result) = match tokio::fs::read(&self.path).await {
            Ok(bytes) => (Seen::Content(digest(&bytes)), Ok(bytes)),
            Err(e) => {
                let msg = format!("{}: {e}", self.path.display());
                (Seen::Failed(msg.clone()), Err(SourceError(msg)))
            }
        };
        if self.last.as_ref() == Some(&seen) {
            return None;
        }
        self.last = Some(seen);
        Some(result)
    }
}

impl ConfigSource for FileSource {
    async fn next(&mut self) -> Result<Vec<u8>, SourceError> {
        loop {
            self.ticks.tick().await;
            if let Some(result) = self.poll().await {
                return result;
            }
        }
    }
}

/// A build's `servicepolicies/` directory, polled like a config file and
/// yielded as one answer (`shared::read_dir_answer`) when it changes.
pub struct PolicyDirSource {
    dir: PathBuf,
    ticks: Interval,
    last: Option<Seen>,
}

impl PolicyDirSource {
    pub fn new(dir: PathBuf, interval: Duration) -> PolicyDirSource {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        PolicyDirSource { dir, ticks, last: None }
    }
}

impl ConfigSource for PolicyDirSource {
    async fn next(&mut self) -> Result<Vec<u8>, SourceError> {
        loop {
            self.ticks.tick().await;
            let dir = self.dir.clone();
            let read = tokio::task::spawn_blocking(move || super::shared::read_dir_answer(&dir))
                .await
                .unwrap_or_else(|e| Err(SourceError(format!("reading the ServicePolicy directory: {e}"))));
            let seen = match &read {
                Ok(bytes) => Seen::Content(digest(bytes)),
                Err(e) => Seen::Failed(e.0.clone()),
            };
            if self.last.as_ref() != Some(&seen) {
                self.last = Some(seen);
                return read;
            }
        }
    }
}
