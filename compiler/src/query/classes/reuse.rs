//! The second side of a diff derives its classes from the first's.
//!
//! A member's signature is, at each place, the predicates its client
//! satisfies among those `Classes::signature` considers for it (the
//! address-only ones, and the identity-specific ones naming its identity or
//! a suffix): which are considered depends on the predicate's value and the
//! client's identity only. Predicates are compared by value (the
//! networks and the authentication), so a predicate both sides have holds
//! for the same client on both. A member that the other side has under the
//! same label, with the same clients at the same places, therefore
//! satisfies there exactly the predicates it satisfies here among those
//! both have: its signature is the other side's (its class's), renumbered
//! to this side's predicate ids, plus whichever of this side's own
//! predicates it satisfies, evaluated. Every other member is evaluated in
//! full. The signatures, hence the classes and their ids, are the ones
//! `derive_at` computes.

use super::{Classes, Pred};
use crate::query::clients::Member;
use mesh_proxy_api::Client;
use std::collections::HashMap;

pub(super) struct Reuse<'o, 'a> {
    other: &'o Classes<'a>,
    /// The other side's members by label: their class, and the member.
    by_label: HashMap<&'o str, (usize, &'o Member)>,
    /// Per class of the other side, its signature per place, in this
    /// side's predicate ids (those this side lacks left out), each sorted.
    translated: Vec<Vec<Vec<u32>>>,
    /// Whether each of this side's predicates is one the other side does not have.
    fresh: Vec<bool>,
}

impl<'o, 'a> Reuse<'o, 'a> {
    /// `this` holds its predicates already (interned), not its classes.
    pub(super) fn new(this: &Classes<'a>, other: &'o Classes<'a>) -> Self {
        let by_label =
            other.classes.iter().flat_map(|c| c.members.iter().map(move |m| (m.label.as_str(), (c.id, m)))).collect();
        let mut translated = vec![Vec::new(); other.classes.len()];
        for (sig, &class) in &other.by_signature {
            let places = sig.iter().filter(|&&p| p == u32::MAX).count();
            translated[class] = sig
                .split(|&p| p == u32::MAX)
                .take(places)
                .map(|part| {
                    let mut ids: Vec<u32> = part.iter().filter_map(|&p| this.id_of(&other.preds[p as usize])).collect();
                    ids.sort_unstable();
                    ids
                })
                .collect();
        }
        let fresh = this.preds.iter().map(|p| other.id_of(p).is_none()).collect();
        Reuse { other, by_label, translated, fresh }
    }

    /// `m`'s signature at `at` (this side's places), when the other side
    /// has the same client at the same places under `m`'s label.
    pub(super) fn signature(&self, this: &Classes<'a>, m: &Member, at: &[Client]) -> Option<Vec<u32>> {
        let &(class, theirs) = self.by_label.get(m.label.as_str())?;
        if theirs.kind != m.kind || self.other.addrs.at_places(theirs.kind, &theirs.client) != at {
            return None;
        }
        let parts = self.translated.get(class).filter(|parts| parts.len() == at.len())?;
        let mut sig = Vec::new();
        for (part, client) in parts.iter().zip(at) {
            let mut here = part.clone();
            here.extend(
                this.considered(client).filter(|&p| self.fresh[p as usize] && this.preds[p as usize].holds(client)),
            );
            here.sort_unstable();
            here.dedup();
            sig.extend(here);
            sig.push(u32::MAX);
        }
        Some(sig)
    }
}

impl<'a> Classes<'a> {
    fn id_of(&self, p: &Pred<'a>) -> Option<u32> {
        self.ids.get(p).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Input;
    use crate::pipeline::{Options, Outcome, check};
    use crate::query::clients::Addresses;

    fn golden(path: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/diff");
        std::fs::read_to_string(dir.join(path)).expect("golden file")
    }

    /// The diff goldens' application, with `policy` as its policy file.
    fn outcome(policy: &str) -> Outcome {
        let files = ["namespaces.yaml", "workloads.yaml"]
            .iter()
            .map(|f| ((*f).to_owned(), Ok(golden(&format!("_app/{f}")))))
            .chain([("policy.yaml".to_owned(), Ok(golden(policy)))])
            .collect();
        let input = Input::Files { files, settings: Some(golden("_app/meshc.yaml")) };
        check(&input, &Options::default()).expect("checks")
    }

    #[test]
    fn reused_signatures_are_the_ones_derived() {
        // The head names two identities where the base named a suffix: each
        // side has a predicate the other lacks.
        let (base, head) = (outcome("_app/policy.yaml"), outcome("isolation-per-identity/head/policy.yaml"));
        let (b, h) = Addresses::shared((&base.resolved, &base.configs), (&head.resolved, &head.configs));
        let base_classes = Classes::derive_at(&base.resolved, &base.configs, b);
        let derived = Classes::derive_at(&head.resolved, &head.configs, h.clone());
        let reused = Classes::derive_reusing(&head.resolved, &head.configs, h, &base_classes);
        assert_eq!(format!("{:?}", derived.classes), format!("{:?}", reused.classes));
        assert_eq!(derived.by_signature, reused.by_signature);
        assert_eq!(derived.sat, reused.sat);
        let reuse = Reuse::new(&derived, &base_classes);
        assert!(reuse.fresh.iter().any(|&f| f), "the head has a predicate of its own");
        let mut taken = 0;
        for m in derived.classes.iter().flat_map(|c| &c.members) {
            let at = derived.addrs.at_places(m.kind, &m.client);
            if let Some(sig) = reuse.signature(&derived, m, &at) {
                assert_eq!(sig, derived.place_signature(&at), "{}", m.label);
                taken += 1;
            }
        }
        assert!(taken > 0, "no member was taken from the base");
    }
}
