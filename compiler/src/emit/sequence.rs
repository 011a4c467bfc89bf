//! The build's sequence (`spec.sequence`, signed into the bundle and every
//! config): where its default comes from, and the refusal to go back in
//! `--out`. The rule itself is `mesh_proxy_api::sequence`, shared with the
//! runtime and the proxy.

use super::BUNDLE_FILE;
use super::objects::{BundleSpec, Object};
use mesh_proxy_api::envelope;
use mesh_proxy_api::sequence::{self, Held};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The build already in an output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Previous {
    pub sequence: u64,
    /// Of its bundle's signed payload.
    pub digest: String,
}

/// Where a default sequence came from, for the build's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The clean source commit's committer time.
    Commit,
    /// No clean commit (not a repository, or uncommitted changes): the
    /// clock, and above the build in `--out`.
    Clock,
}

/// The committer time of a clean source commit; otherwise the current Unix
/// time, raised above `previous` so that rebuilding a dirty tree into the
/// same `--out` keeps going forward even within one second.
pub fn default(committed_at: Option<u64>, previous: Option<u64>) -> (u64, Origin) {
    if let Some(t) = committed_at {
        return (t, Origin::Commit);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs());
    (now.max(previous.map_or(0, |p| p.saturating_add(1))), Origin::Clock)
}

/// The bundle `meshc build` wrote into `dir` before, if any. Its signature
/// is not checked: this guards against going back by mistake, and whoever
/// can edit `dir` can also pass `--allow-rollback`.
pub fn previous(dir: &Path) -> Result<Option<Previous>, String> {
    let path = dir.join(BUNDLE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let unreadable = |e: String| {
        format!(
            "{}: cannot read the previous build's sequence ({e}); pass --allow-rollback to replace it",
            path.display()
        )
    };
    let json = text.trim_start().strip_prefix("---").unwrap_or(&text);
    let object: Object<BundleSpec> = serde_json::from_str(json).map_err(|e| unreadable(e.to_string()))?;
    let env = object.spec.envelope.ok_or_else(|| unreadable("no spec.envelope".into()))?;
    let digest = envelope::payload_digest(&env).map_err(|e| unreadable(e.to_string()))?;
    Ok(Some(Previous { sequence: object.spec.sequence, digest }))
}

/// Refuses a build whose sequence is not above the one in `--out`, unless
/// it is the same build again (same sequence, same signed content).
pub fn check_forward(previous: Option<&Previous>, sequence: u64, digest: &str) -> Result<(), String> {
    let held = previous.map(|p| Held { sequence: p.sequence, digest: &p.digest });
    sequence::admit(held, Held { sequence, digest }).map_err(|r| {
        format!(
            "--out already holds a build with sequence {}: {r} (commit the change, pass a higher --sequence, \
             or --allow-rollback to go back on purpose)",
            previous.map_or(0, |p| p.sequence)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_default_sequence_is_the_commit_time_or_the_clock_above_the_previous() {
        assert_eq!(default(Some(1_700_000_000), Some(1_800_000_000)), (1_700_000_000, Origin::Commit));
        let far_future = 4_000_000_000;
        assert_eq!(default(None, Some(far_future)), (far_future + 1, Origin::Clock));
        let (now, origin) = default(None, None);
        assert_eq!(origin, Origin::Clock);
        assert!(now > 1_700_000_000, "the clock in Unix seconds: {now}");
    }

    #[test]
    fn rollback_check_forward_allows_a_newer_or_the_same_build_only() {
        let prev = Previous { sequence: 10, digest: "sha256:a".into() };
        assert!(check_forward(None, 1, "sha256:x").is_ok());
        assert!(check_forward(Some(&prev), 11, "sha256:b").is_ok());
        assert!(check_forward(Some(&prev), 10, "sha256:a").is_ok(), "the same build again");
        let older = check_forward(Some(&prev), 9, "sha256:b").unwrap_err();
        assert!(older.contains("sequence 9 is below 10") && older.contains("--allow-rollback"), "{older}");
        let conflict = check_forward(Some(&prev), 10, "sha256:b").unwrap_err();
        assert!(conflict.contains("other content"), "{conflict}");
    }
}
