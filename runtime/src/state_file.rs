//! File mode's durable rollback floor: `--state-dir/rollback-floor.json`.
//!
//! The directory is the runtime's own, not the build directory: whoever
//! can rewrite the build (and so put an older one back) must not be able to
//! reset the floor with it.

use crate::store::Floor;
use std::path::{Path, PathBuf};

pub const FLOOR_FILE: &str = "rollback-floor.json";

/// The floor file, and the floor last written to it.
#[derive(Debug, Default)]
pub struct FloorFile {
    path: Option<PathBuf>,
    written: Option<Floor>,
}

impl FloorFile {
    /// Reads the floor a previous run left in `dir`. A file that exists
    /// but does not read is an error: starting without it would accept
    /// any older build.
    pub fn open(dir: Option<&Path>) -> Result<FloorFile, String> {
        let Some(dir) = dir else {
            tracing::warn!("no --state-dir: rollback protection lasts only as long as this process");
            return Ok(FloorFile::default());
        };
        let path = dir.join(FLOOR_FILE);
        let written = match std::fs::read_to_string(&path) {
            Ok(text) => Some(Floor::from_json(&text).map_err(|e| {
                format!("{}: {e} (repair it, or delete it to forget the rollback floor)", path.display())
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(FloorFile { path: Some(path), written })
    }

    /// What the previous run accepted.
    pub fn floor(&self) -> Option<&Floor> {
        self.written.as_ref()
    }

    /// Writes `floor` if it is above what the file holds; a failure is
    /// logged and tried again on the next call.
    pub fn save(&mut self, floor: Option<Floor>) {
        let (Some(path), Some(floor)) = (&self.path, floor) else { return };
        if !floor.is_above(self.written.as_ref()) {
            return;
        }
        match write_atomic(path, &floor.to_json()) {
            Ok(()) => self.written = Some(floor),
            Err(e) => tracing::error!(path = %path.display(), "cannot record the rollback floor; retrying: {e}"),
        }
    }
}

/// Through a temporary file and a rename, so a crash never leaves half a
/// floor (which the next start would refuse).
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
