//! Static endpoints file (JSON), re-read when it changes. OWNER: outbound helper.

use super::Discovery;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct StaticFile;

impl StaticFile {
    pub fn spawn(_path: PathBuf, _interval: Duration) -> Result<Arc<dyn Discovery>, String> {
        Ok(Arc::new(super::NoDiscovery))
    }
}
