//! The rollback floor: the sequence and digest of the newest MeshBundle
//! the runtime accepted. It must outlive the process (file mode keeps it in
//! `--state-dir`, Kubernetes mode in a ConfigMap), or a restart would
//! forget it and accept an older build that was put back meanwhile.

use super::Rejection;
use super::check::Bundle;
use mesh_proxy_api::sequence::{self, Held};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Floor {
    pub sequence: u64,
    /// `sha256:…` of the bundle's signed payload: the same sequence with
    /// another content is refused too.
    pub digest: String,
}

impl Floor {
    /// The durable form: one small JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a floor serializes")
    }

    pub fn from_json(text: &str) -> Result<Floor, String> {
        serde_json::from_str(text).map_err(|e| format!("not a rollback floor: {e}"))
    }

    /// Whether `self` says more than `other` (a higher sequence); equal
    /// floors need not be written again.
    pub fn is_above(&self, other: Option<&Floor>) -> bool {
        other.is_none_or(|o| self.sequence > o.sequence)
    }
}

/// Refuses `bundle` when it is below `floor`, or at it with other content.
pub fn admit(floor: Option<&Floor>, bundle: &Bundle) -> Result<(), Rejection> {
    let held = floor.map(|f| Held { sequence: f.sequence, digest: &f.digest });
    sequence::admit(held, Held { sequence: bundle.sequence, digest: &bundle.digest })
        .map_err(|r| Rejection::new("rollback", r.to_string()))
}
