//! Rollback protection: every `meshc build` carries a signed, monotonic
//! sequence (the MeshBundle's `spec.sequence`, repeated inside every
//! ProxyConfig payload). Whoever holds a build refuses one with a lower
//! sequence, and one with the same sequence but other content: a trusted
//! key's older signature must not reopen access a later build closed.
//!
//! One rule for the three holders: `meshc build` (against the build already
//! in `--out`), mesh-runtime (against its durable floor) and mesh-proxy
//! (against the config it serves).

use std::fmt;

/// What a holder holds: a sequence and the digest of the content it came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held<'a> {
    pub sequence: u64,
    pub digest: &'a str,
}

/// Why an offered build is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// An older build than the one held.
    Older { offered: u64, held: u64 },
    /// The held sequence, with other content: two builds claim one place
    /// in the order, and only the one seen first can be trusted to be it.
    Conflict { sequence: u64, offered_digest: String, held_digest: String },
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollback::Older { offered, held } => {
                write!(f, "sequence {offered} is below {held}, the newest already accepted: refusing a rollback")
            }
            Rollback::Conflict { sequence, offered_digest, held_digest } => write!(
                f,
                "sequence {sequence} was already accepted with other content ({held_digest}, offered \
                 {offered_digest}): refusing a rollback"
            ),
        }
    }
}

impl std::error::Error for Rollback {}

/// Whether `offered` may replace `held`: a higher sequence, or the same
/// sequence with the same content (a re-apply or a restart). Nothing held,
/// or a held build without a sequence (0: from before sequences, which
/// cannot be ordered among themselves), accepts anything.
pub fn admit(held: Option<Held>, offered: Held) -> Result<(), Rollback> {
    let Some(held) = held.filter(|h| !is_unset(&h.sequence)) else { return Ok(()) };
    if offered.sequence < held.sequence {
        return Err(Rollback::Older { offered: offered.sequence, held: held.sequence });
    }
    if offered.sequence == held.sequence && offered.digest != held.digest {
        return Err(Rollback::Conflict {
            sequence: offered.sequence,
            offered_digest: offered.digest.to_owned(),
            held_digest: held.digest.to_owned(),
        });
    }
    Ok(())
}

/// For `skip_serializing_if`: sequence 0 is a payload without one (a build
/// from before sequences, or a config that was never signed).
pub fn is_unset(sequence: &u64) -> bool {
    *sequence == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(sequence: u64, digest: &str) -> Held<'_> {
        Held { sequence, digest }
    }

    #[test]
    fn rollback_rule_orders_by_sequence_and_pins_content_per_sequence() {
        assert_eq!(admit(None, held(1, "a")), Ok(()));
        assert_eq!(admit(Some(held(0, "a")), held(0, "b")), Ok(()), "unsequenced builds are not ordered");
        assert_eq!(admit(Some(held(0, "a")), held(1, "b")), Ok(()));
        assert_eq!(admit(Some(held(1, "a")), held(0, "b")), Err(Rollback::Older { offered: 0, held: 1 }));
        assert_eq!(admit(Some(held(5, "a")), held(6, "b")), Ok(()), "newer");
        assert_eq!(admit(Some(held(5, "a")), held(5, "a")), Ok(()), "the same build again");
        assert_eq!(admit(Some(held(5, "a")), held(4, "a")), Err(Rollback::Older { offered: 4, held: 5 }));
        let conflict = admit(Some(held(5, "a")), held(5, "b")).unwrap_err();
        assert_eq!(conflict, Rollback::Conflict { sequence: 5, offered_digest: "b".into(), held_digest: "a".into() });
        assert!(conflict.to_string().contains("sequence 5"));
        let older = admit(Some(held(7, "a")), held(3, "b")).unwrap_err().to_string();
        assert!(older.contains('3') && older.contains('7'), "{older}");
    }
}
