//! Client classes: clients that no policy tells apart.
//!
//! Every authorization in every lowered config is a predicate over a
//! client (its address and TLS state), and so is every skip-subnets list.
//! A client's signature is the set of predicates it satisfies; clients
//! with the same signature get the same verdict on every port and route of
//! the repository, so they form one class and one representative decides
//! for all of them. Localhost's authorization is a predicate too.
//!
//! A pod may be at any of several places (see `places`): a pod client's
//! signature is the list of its signatures at every place, and the
//! satisfaction sets are kept per place, so a verdict that differs between
//! places (`depends`) is found by the same bitset unions.

mod reuse;

use super::clients::{Addresses, ClientKind, Member, members};
use crate::resolve::Resolved;
use fixedbitset::FixedBitSet;
use ipnet::IpNet;
use mesh_proxy_api::{Authentication, Authorization, Client, Network, ProxyConfig, localhost_authorization};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pred<'a> {
    Authz(&'a [Network], &'a Authentication),
    Bypass(&'a [IpNet]),
}

impl Pred<'_> {
    fn holds(&self, c: &Client) -> bool {
        match self {
            Pred::Authz(nets, authn) => nets.iter().any(|n| n.contains(c.addr)) && authn.permits(&c.tls),
            Pred::Bypass(nets) => nets.iter().any(|n| n.contains(&c.addr)),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Class {
    pub id: usize,
    /// The first member's label, and how many more there are.
    pub label: String,
    /// The representative every verdict for this class is computed with
    /// (a pod: where it is placed when nothing tells places apart).
    #[serde(skip)]
    pub client: Client,
    /// The representative at each place a pod may be (the same client
    /// everywhere when it is no pod).
    #[serde(skip)]
    pub at: Vec<Client>,
    pub members: Vec<Member>,
}

impl Class {
    pub fn label(&self) -> &str {
        &self.label
    }

    fn set_label(&mut self) {
        self.label = match self.members.len() {
            0 | 1 => self.members.first().map_or_else(String::new, |m| m.label.clone()),
            n => format!("{} (+{} more)", self.members[0].label, n - 1),
        };
    }
}

pub struct Classes<'a> {
    pub addrs: Addresses,
    pub classes: Vec<Class>,
    preds: Vec<Pred<'a>>,
    ids: HashMap<Pred<'a>, u32>,
    /// Predicates that depend on the address and TLS state only.
    generic: Vec<u32>,
    /// Identity-specific predicates by exact identity, and those with suffixes.
    by_identity: HashMap<&'a str, Vec<u32>>,
    suffixed: Vec<u32>,
    /// For each place and predicate, the classes that satisfy it there.
    sat: Vec<Vec<Satisfied>>,
    by_signature: HashMap<Vec<u32>, usize>,
    /// The classes that are only the pod itself ([`Self::is_localhost`]),
    /// kept as a set so that a port's edges drop them with one difference.
    localhost: FixedBitSet,
    /// Conditions in words by the places that allow: few patterns recur on
    /// many edges.
    conditions: std::sync::Mutex<HashMap<Vec<bool>, String>>,
}

/// The classes that satisfy one predicate at one place: their ids (sorted),
/// or a set of every class where that takes less memory.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Satisfied {
    Ids(Vec<u32>),
    Set(FixedBitSet),
}

impl Satisfied {
    /// `ids` (sorted, each below `n`) in whichever form is smaller: a set
    /// takes `n` bits, an id 32.
    fn of(ids: Vec<u32>, n: usize) -> Self {
        if ids.len().saturating_mul(32) <= n {
            let mut ids = ids;
            ids.shrink_to_fit();
            return Satisfied::Ids(ids);
        }
        let mut set = FixedBitSet::with_capacity(n);
        set.extend(ids.iter().map(|&c| c as usize));
        Satisfied::Set(set)
    }

    /// Adds these classes to `out` (a set of every class).
    fn add_to(&self, out: &mut FixedBitSet) {
        match self {
            Satisfied::Ids(ids) => ids.iter().for_each(|&c| out.insert(c as usize)),
            Satisfied::Set(set) => out.union_with(set),
        }
    }
}

static LOCALHOST: std::sync::LazyLock<Authorization> = std::sync::LazyLock::new(localhost_authorization);

impl<'a> Classes<'a> {
    pub fn derive(r: &Resolved, configs: &'a [Option<ProxyConfig>]) -> Self {
        Self::derive_at(r, configs, Addresses::new(r, configs))
    }

    /// Classes with clients placed at `addrs` (see [`Addresses::shared`]).
    pub fn derive_at(r: &Resolved, configs: &'a [Option<ProxyConfig>], addrs: Addresses) -> Self {
        Self::derive_with(r, configs, addrs, None)
    }

    /// [`Self::derive_at`] for the second side of a diff, taking from
    /// `other` (the first side's classes) the signature of every member that
    /// is the same client at the same places there: the same result,
    /// without evaluating the predicates both sides have again (see
    /// `reuse::Reuse`).
    pub fn derive_reusing(
        r: &Resolved,
        configs: &'a [Option<ProxyConfig>],
        addrs: Addresses,
        other: &Classes<'a>,
    ) -> Self {
        Self::derive_with(r, configs, addrs, Some(other))
    }

    fn derive_with(
        r: &Resolved,
        configs: &'a [Option<ProxyConfig>],
        addrs: Addresses,
        other: Option<&Classes<'a>>,
    ) -> Self {
        let mut this = Classes {
            classes: Vec::new(),
            preds: Vec::new(),
            ids: HashMap::new(),
            generic: Vec::new(),
            by_identity: HashMap::new(),
            suffixed: Vec::new(),
            sat: Vec::new(),
            by_signature: HashMap::new(),
            localhost: FixedBitSet::new(),
            conditions: std::sync::Mutex::default(),
            addrs,
        };
        // At most one predicate per authorization and skip-subnets list:
        // reserved at once, not grown push by push through a heap that
        // decoding left fragmented.
        let mut listed = 1;
        for c in configs.iter().flatten() {
            listed += 1;
            super::for_each_authorization(c, |_| listed += 1);
        }
        this.preds.reserve(listed);
        // Every proxy appends the localhost authorization, so it tells the pod itself apart.
        let local: &'static Authorization = &LOCALHOST;
        this.intern(Pred::Authz(&local.networks, &local.authentication));
        for c in configs.iter().flatten() {
            if !c.inbound.skip_subnets.is_empty() {
                this.intern(Pred::Bypass(&c.inbound.skip_subnets));
            }
            super::for_each_authorization(c, |a| {
                this.intern(Pred::Authz(&a.networks, &a.authentication));
            });
        }
        this.preds.shrink_to_fit();
        // Signatures are independent per member (most of the derivation's
        // time): computed in parallel, grouped afterwards in member order,
        // so class ids are the same as one at a time.
        let signed: Vec<(Member, Vec<Client>, Vec<u32>)> = {
            use rayon::prelude::*;
            let this = &this;
            let reuse = other.map(|o| reuse::Reuse::new(this, o));
            members(r, &this.addrs)
                .into_par_iter()
                .map(|m| {
                    let at = this.addrs.at_places(m.kind, &m.client);
                    let known = reuse.as_ref().and_then(|x| x.signature(this, &m, &at));
                    let sig = known.unwrap_or_else(|| this.place_signature(&at));
                    (m, at, sig)
                })
                .collect()
        };
        for (m, at, sig) in signed {
            let next = this.classes.len();
            let id = *this.by_signature.entry(sig).or_insert(next);
            if id == next {
                let client = m.client.clone();
                this.classes.push(Class { id, label: String::new(), client, at, members: Vec::new() });
            }
            this.classes[id].members.push(m);
        }
        this.classes.iter_mut().for_each(Class::set_label);
        this.localhost = (0..this.classes.len()).filter(|&c| this.is_localhost(c)).collect();
        this.localhost.grow(this.classes.len());
        this.fill_satisfaction();
        this
    }

    fn intern(&mut self, p: Pred<'a>) {
        if self.ids.contains_key(&p) {
            return;
        }
        let id = self.preds.len() as u32;
        self.preds.push(p);
        self.ids.insert(p, id);
        match p {
            Pred::Authz(_, Authentication::TlsAuthenticated { identities, suffixes }) => {
                for i in identities {
                    self.by_identity.entry(i.as_str()).or_default().push(id);
                }
                if !suffixes.is_empty() {
                    self.suffixed.push(id);
                }
            }
            _ => self.generic.push(id),
        }
    }

    /// The predicates `c` satisfies, sorted.
    fn signature(&self, c: &Client) -> Vec<u32> {
        let mut sig: Vec<u32> = self.considered(c).filter(|&p| self.preds[p as usize].holds(c)).collect();
        sig.sort_unstable();
        sig.dedup();
        sig
    }

    /// The predicates that may hold for `c` (maybe twice): those on the
    /// address alone, and with an identity those naming it or a suffix.
    fn considered<'s>(&'s self, c: &'s Client) -> impl Iterator<Item = u32> + 's {
        let (exact, suffixed) = match c.tls.identity() {
            Some(id) => (self.by_identity.get(id).map_or(&[][..], Vec::as_slice), &self.suffixed[..]),
            None => (&[][..], &[][..]),
        };
        self.generic.iter().chain(exact).chain(suffixed).copied()
    }

    /// The signatures at every place, each closed by a separator no
    /// predicate id reaches. A client that is the same everywhere is
    /// evaluated once.
    fn place_signature(&self, at: &[Client]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut last: Option<(&Client, Vec<u32>)> = None;
        for c in at {
            let sig = match &last {
                Some((prev, sig)) if *prev == c => sig.clone(),
                _ => self.signature(c),
            };
            out.extend(&sig);
            out.push(u32::MAX);
            last = Some((c, sig));
        }
        out
    }

    /// Which classes satisfy each predicate at each place. Most predicates
    /// name an identity and hold for a few classes: those are kept as ids,
    /// not as a set of every class (places x predicates x classes bits,
    /// most of a large repository's classes' memory and time otherwise).
    fn fill_satisfaction(&mut self) {
        let n = self.classes.len();
        let mut by_class: Vec<&[u32]> = vec![&[]; n];
        for (sig, &class) in &self.by_signature {
            by_class[class] = sig.as_slice();
        }
        let mut ids: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new(); self.preds.len()]; self.addrs.places.len()];
        // In class order, so each list is sorted.
        for (class, sig) in by_class.into_iter().enumerate() {
            for (place, part) in sig.split(|&p| p == u32::MAX).take(ids.len()).enumerate() {
                for &p in part {
                    ids[place][p as usize].push(class as u32);
                }
            }
        }
        self.sat = ids.into_iter().map(|place| place.into_iter().map(|c| Satisfied::of(c, n)).collect()).collect();
    }

    /// The class whose members behave exactly like `c` (of `kind`, which
    /// says whether it is a pod that may be anywhere), if any member of the
    /// repository does.
    pub fn class_of(&self, kind: ClientKind, c: &Client) -> Option<usize> {
        self.by_signature.get(&self.place_signature(&self.addrs.at_places(kind, c))).copied()
    }

    /// The condition (see [`super::places::condition`]) of a verdict
    /// allowed at the places `allowed` marks.
    pub fn condition(&self, allowed: &[bool]) -> String {
        let text = || super::places::condition(&self.addrs.places, allowed);
        let Ok(mut memo) = self.conditions.lock() else { return text() };
        memo.entry(allowed.to_vec()).or_insert_with(text).clone()
    }

    /// How many places a pod may be that policies tell apart.
    pub fn places(&self) -> usize {
        self.addrs.places.len()
    }

    /// Whether class `c` is only the pod itself (127.0.0.1 / ::1).
    pub fn is_localhost(&self, c: usize) -> bool {
        self.classes[c].members.iter().all(|m| m.kind == super::clients::ClientKind::Localhost)
    }

    /// Every class [`Self::is_localhost`] says is only the pod itself.
    pub fn localhost(&self) -> &FixedBitSet {
        &self.localhost
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Classes some authorization of the lists (or localhost) permits at
    /// `place`: the classes [`mesh_proxy_api::authorize`] lets through.
    pub fn permitted(&self, place: usize, lists: &[&[Authorization]]) -> FixedBitSet {
        let sat = &self.sat[place];
        let mut out = FixedBitSet::with_capacity(self.classes.len());
        // Interned first in `derive`: predicate 0 is localhost's.
        sat[0].add_to(&mut out);
        for a in lists.iter().flat_map(|l| l.iter()) {
            if let Some(&p) = self.ids.get(&Pred::Authz(&a.networks, &a.authentication)) {
                sat[p as usize].add_to(&mut out);
            }
        }
        out
    }

    /// Classes whose traffic bypasses a proxy with these skip-subnets at `place`.
    pub fn bypassing(&self, place: usize, skip_subnets: &[IpNet]) -> FixedBitSet {
        let mut out = FixedBitSet::with_capacity(self.classes.len());
        if let Some(&p) = self.ids.get(&Pred::Bypass(skip_subnets)) {
            self.sat[place][p as usize].add_to(&mut out);
        }
        out
    }

    pub fn all(&self) -> FixedBitSet {
        let mut all = FixedBitSet::with_capacity(self.classes.len());
        all.insert_range(..);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::Satisfied;
    use fixedbitset::FixedBitSet;

    fn set_of(s: &Satisfied, n: usize) -> FixedBitSet {
        let mut out = FixedBitSet::with_capacity(n);
        s.add_to(&mut out);
        out
    }

    #[test]
    fn satisfied_classes_are_the_same_as_ids_or_as_a_set() {
        let n = 640;
        let few: Vec<u32> = vec![3, 64, 639];
        let many: Vec<u32> = (0..n as u32).step_by(2).collect();
        assert!(matches!(Satisfied::of(few.clone(), n), Satisfied::Ids(_)), "a few classes are kept as ids");
        assert!(matches!(Satisfied::of(many.clone(), n), Satisfied::Set(_)), "half of them as a set");
        for ids in [few, many, Vec::new()] {
            let want: FixedBitSet = {
                let mut s = FixedBitSet::with_capacity(n);
                s.extend(ids.iter().map(|&c| c as usize));
                s
            };
            assert_eq!(set_of(&Satisfied::of(ids.clone(), n), n), want, "{ids:?}");
        }
        // Added to a set that holds others already: a union.
        let mut out = FixedBitSet::with_capacity(n);
        out.insert(1);
        Satisfied::of(vec![2], n).add_to(&mut out);
        Satisfied::of((100..400).collect(), n).add_to(&mut out);
        assert_eq!(out.count_ones(..), 302);
    }
}
