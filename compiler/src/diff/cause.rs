//! Which resource change made an edge open or close, found by proving the
//! edge on both sides (`reach`) and comparing the proofs: the step that
//! differs, on the side where it lives.

use super::Sides;
use super::edges::{Direction, Group, RawChange};
use crate::pipeline::Outcome;
use crate::query::clients::ClientKind;
use crate::query::places::Place;
use crate::query::proof::{ResourceRef, Step};
use crate::query::reach::{ClientView, Reach, VerdictView, placed, reach};
use mesh_proxy_api::Client;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Cause {
    /// `base` or `head`: where the cited resource lives.
    pub side: &'static str,
    #[serde(flatten)]
    pub step: Step,
}

fn prove(o: &Outcome, client: Option<(Vec<(Place, Client)>, usize)>, workload: &str, port: u16) -> Option<Reach> {
    let wi = crate::query::workload_ref::find(&o.resolved, workload).ok()?;
    let (at, class) = client?;
    let view = ClientView::of_client(String::new(), ClientKind::Workload, &at, Some(class));
    Some(reach(o, view, wi, port, None))
}

/// The group's first member as it is on one side: the same client on both
/// sides when it did not change (a class representative may differ), at
/// every place it may be.
fn member(
    classes: &crate::query::classes::Classes,
    class: Option<usize>,
    label: &str,
) -> Option<(Vec<(Place, Client)>, usize)> {
    let class = class?;
    let m = classes.classes[class].members.iter().find(|m| m.label == label)?;
    Some((placed(classes, m.kind, &m.client), class))
}

fn find<'r>(r: &'r Option<Reach>, route: &str) -> Option<&'r VerdictView> {
    r.as_ref()?.verdicts.iter().find(|v| v.entry_name() == route)
}

fn step<'v>(v: Option<&'v VerdictView>, name: &str) -> Option<&'v Step> {
    v?.proof.iter().find(|s| s.step == name)
}

fn allowing(v: Option<&VerdictView>) -> Option<&Step> {
    v?.proof.iter().rev().find(|s| s.step == "authorization" && s.detail.contains(" allows"))
}

fn exists(o: &Outcome, r: &ResourceRef) -> bool {
    o.resolved.resources.iter().any(|x| x.id.kind == r.kind && x.id.namespace == r.namespace && x.name() == r.name)
}

fn differs(a: Option<&Step>, b: Option<&Step>) -> bool {
    a.map(|s| (&s.resource, &s.detail)) != b.map(|s| (&s.resource, &s.detail))
}

fn cite(side: &'static str, s: &Step, prefix: &str) -> Cause {
    Cause { side, step: Step { detail: format!("{prefix}{}", s.detail), ..s.clone() } }
}

pub fn cause(s: &Sides, g: &Group, c: &RawChange) -> Option<Cause> {
    let base_client = member(&s.base_classes, g.base, &g.members[0]);
    let head_client = member(&s.head_classes, g.head, &g.members[0]);
    if g.base.is_none() || g.head.is_none() {
        let (side, o, what) = if g.head.is_none() { ("base", s.base, "removed") } else { ("head", s.head, "added") };
        return Some(client_change(side, o, &g.members[0], what));
    }
    let first =
        |c: &Option<(Vec<(Place, Client)>, usize)>| c.as_ref().and_then(|(at, _)| at.first()).map(|p| p.1.clone());
    if let (Some(b), Some(h)) = (first(&base_client), first(&head_client))
        && b != h
    {
        let now = h.tls.identity().map_or_else(|| "a plaintext client".to_owned(), |id| format!("identity {id}"));
        return Some(client_change("head", s.head, &g.members[0], &format!("changed: it is now {now}")));
    }
    let base = prove(s.base, base_client, &c.workload, c.port);
    let head = prove(s.head, head_client, &c.workload, c.port);
    let (bv, hv) = (find(&base, &c.route), find(&head, &c.route));
    if head.is_none() || base.is_none() {
        let (side, r, what) = if head.is_none() { ("base", &base, "removed") } else { ("head", &head, "added") };
        let v = r.as_ref()?.verdicts.first()?;
        return Some(cite(side, step(Some(v), "target")?, &format!("workload {what}: ")));
    }
    match c.direction {
        Direction::Closed => closed(s, bv, hv),
        Direction::Opened => opened(s, bv, hv),
    }
}

fn closed(s: &Sides, bv: Option<&VerdictView>, hv: Option<&VerdictView>) -> Option<Cause> {
    if let Some(likely) = step(hv, "likely-cause") {
        return Some(cite("head", likely, ""));
    }
    if let Some(allowed) = allowing(bv)
        && let Some(r) = &allowed.resource
    {
        if !exists(s.head, r) {
            return Some(cite("base", allowed, &format!("{} {} was removed; before: ", r.kind, r.name)));
        }
        let now = hv.and_then(|v| v.proof.iter().find(|p| p.step == "authorization" && p.resource.as_ref() == Some(r)));
        if let Some(now) = now {
            return common(bv, hv)
                .or_else(|| Some(cite("head", now, &format!("{} {} no longer allows it: ", r.kind, r.name))));
        }
    }
    common(bv, hv).or_else(|| step(hv, "authorization").map(|a| cite("head", a, "")))
}

fn opened(s: &Sides, bv: Option<&VerdictView>, hv: Option<&VerdictView>) -> Option<Cause> {
    if let Some(allowed) = allowing(hv)
        && let Some(r) = &allowed.resource
        && !exists(s.base, r)
    {
        return Some(cite("head", allowed, &format!("added {} {}: ", r.kind, r.name)));
    }
    common(bv, hv).or_else(|| allowing(hv).map(|a| cite("head", a, "")))
}

/// A change of the port's Server or default policy, the route, or the client.
fn common(bv: Option<&VerdictView>, hv: Option<&VerdictView>) -> Option<Cause> {
    for name in ["server", "port", "route"] {
        if differs(step(bv, name), step(hv, name))
            && let Some(h) = step(hv, name)
        {
            return Some(cite("head", h, ""));
        }
    }
    None
}

/// A client that exists on one side only: a workload added or removed (or
/// whose identity changed), or a policy-named identity or network.
fn client_change(side: &'static str, o: &Outcome, label: &str, what: &str) -> Cause {
    let detail = format!("client {label} {what}");
    let step = match crate::query::workload_ref::find(&o.resolved, label) {
        Ok(wi) => {
            let p = crate::query::proof::Prover::new(o);
            p.at("client", o.resolved.workloads[wi].resource, &[], detail)
        }
        Err(_) => Step::plain("client", detail),
    };
    Cause { side, step }
}
