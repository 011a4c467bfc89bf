//! The fields of the maps invariants see, read from the checked repository
//! when an expression selects them: nothing is copied into CEL values ahead
//! of time, and strings borrow the repository's own.

use super::tables::Tables;
use crate::query::clients::ClientKind;
use cel::common::types::{CelBool, CelInt, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use std::collections::{BTreeMap, HashMap};

/// What a map value stands for; ids index the repository's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    Class(u32),
    Target {
        workload: u32,
        port: u16,
    },
    Workload(u32),
    /// An allowed edge: `entry` indexes the routes of target `target` (an id of [`Tables::targets`]).
    Edge {
        class: u32,
        target: u32,
        entry: u32,
    },
    Resource(u32),
    /// An egress edge: an index into [`Tables::egress`].
    Egress(u32),
}

pub const CLASS_FIELDS: &[&str] = &["kind", "name", "namespace", "identity", "id", "members", "labels", "cluster"];
pub const TARGET_FIELDS: &[&str] = &["namespace", "name", "kind", "port", "portName", "workload", "cluster"];
pub const WORKLOAD_FIELDS: &[&str] = &["kind", "namespace", "name", "meshed", "identity", "ports", "labels", "cluster"];
pub const EDGE_FIELDS: &[&str] = &["client", "target", "route", "partial"];
pub const RESOURCE_FIELDS: &[&str] = &["kind", "namespace", "name", "apiVersion"];
pub const EGRESS_FIELDS: &[&str] =
    &["client", "namespace", "kind", "egressNetwork", "route", "port", "verdict", "backends"];

/// What [`Item`]s of a kind are called in messages, and their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Class,
    Target,
    Workload,
    Edge,
    Resource,
    Egress,
}

impl Shape {
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Shape::Class => CLASS_FIELDS,
            Shape::Target => TARGET_FIELDS,
            Shape::Workload => WORKLOAD_FIELDS,
            Shape::Edge => EDGE_FIELDS,
            Shape::Resource => RESOURCE_FIELDS,
            Shape::Egress => EGRESS_FIELDS,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Shape::Class => "a client class",
            Shape::Target => "a target",
            Shape::Workload => "a workload",
            Shape::Edge => "an edge",
            Shape::Resource => "a resource",
            Shape::Egress => "an egress edge",
        }
    }

    /// The shape of field `f` of this shape, when it is a map of ours.
    pub fn child(self, f: &str) -> Option<Shape> {
        match (self, f) {
            (Shape::Edge, "client") => Some(Shape::Class),
            (Shape::Edge, "target") => Some(Shape::Target),
            (Shape::Egress, "client") => Some(Shape::Class),
            _ => None,
        }
    }
}

impl Item {
    pub fn shape(&self) -> Shape {
        match self {
            Item::Class(_) => Shape::Class,
            Item::Target { .. } => Shape::Target,
            Item::Workload(_) => Shape::Workload,
            Item::Edge { .. } => Shape::Edge,
            Item::Resource(_) => Shape::Resource,
            Item::Egress(_) => Shape::Egress,
        }
    }

    /// The fields this item has: every field of its shape, except a class's
    /// `labels` when its first member is no workload.
    pub fn has(&self, t: &Tables, f: &str) -> bool {
        match (self, f) {
            (Item::Class(c), "labels") => first_workload(t, *c).is_some(),
            _ => self.shape().fields().contains(&f),
        }
    }
}

pub fn client_kind(k: ClientKind) -> &'static str {
    match k {
        ClientKind::Workload => "workload",
        ClientKind::Identity => "identity",
        ClientKind::Unmeshed => "unmeshed",
        ClientKind::Kubelet => "kubelet",
        ClientKind::External => "external",
        ClientKind::Localhost => "localhost",
        ClientKind::Cidr => "cidr",
    }
}

fn first_workload(t: &Tables, c: u32) -> Option<usize> {
    t.classes.classes.get(c as usize)?.members.first()?.workload
}

type Boxed<'t> = Box<dyn Val + 't>;

fn string<'t>(s: &'t str) -> Boxed<'t> {
    Box::new(CelString::from(s))
}

fn int<'t>(i: i64) -> Boxed<'t> {
    Box::new(CelInt::from(i))
}

fn labels<'t>(l: &'t BTreeMap<String, String>) -> Boxed<'t> {
    let map: HashMap<CelMapKey<'t>, Boxed<'t>> =
        l.iter().map(|(k, v)| (CelMapKey::from(k.as_str()), string(v.as_str()))).collect();
    Box::new(CelMap::from(map))
}

/// The value of field `f` of `item`, or `None` if it has no such field.
pub fn field<'t>(t: &'t Tables<'t>, item: Item, f: &str) -> Option<Boxed<'t>> {
    match item {
        Item::Class(c) => class_field(t, c, f),
        Item::Target { workload, port } => target_field(t, workload as usize, port, f),
        Item::Workload(w) => workload_field(t, w as usize, f),
        Item::Edge { class, target, entry } => edge_field(t, class, target, entry, f),
        Item::Resource(r) => resource_field(t, r as usize, f),
        Item::Egress(e) => egress_field(t, e as usize, f),
    }
}

fn class_field<'t>(t: &'t Tables<'t>, c: u32, f: &str) -> Option<Boxed<'t>> {
    let class = t.classes.classes.get(c as usize)?;
    let first = class.members.first()?;
    Some(match f {
        "kind" => string(client_kind(first.kind)),
        "name" => string(&first.name),
        "namespace" => string(first.namespace.as_deref().unwrap_or("")),
        "identity" => string(first.identity.as_deref().unwrap_or("")),
        "id" => int(i64::from(c)),
        "members" => {
            let members: Vec<Boxed<'t>> = class.members.iter().map(|m| string(m.label.as_str())).collect();
            Box::new(CelList::from(members))
        }
        "labels" => labels(&t.o.resolved.workloads.get(first.workload?)?.labels),
        "cluster" => string(&t.o.resolved.settings.cluster),
        _ => return None,
    })
}

fn target_field<'t>(t: &'t Tables<'t>, wi: usize, port: u16, f: &str) -> Option<Boxed<'t>> {
    let w = t.o.resolved.workloads.get(wi)?;
    Some(match f {
        "namespace" => string(&w.namespace),
        "name" => string(&w.name),
        "kind" => string(&w.kind),
        "port" => int(i64::from(port)),
        "portName" => {
            let name = w.ports.iter().find(|p| p.port == port).and_then(|p| p.name.as_deref());
            string(name.unwrap_or(""))
        }
        "workload" => Box::new(CelString::from(format!("{}/{}/{}", w.kind, w.namespace, w.name))),
        "cluster" => string(&t.o.resolved.settings.cluster),
        _ => return None,
    })
}

fn workload_field<'t>(t: &'t Tables<'t>, wi: usize, f: &str) -> Option<Boxed<'t>> {
    let w = t.o.resolved.workloads.get(wi)?;
    Some(match f {
        "kind" => string(&w.kind),
        "namespace" => string(&w.namespace),
        "name" => string(&w.name),
        "meshed" => Box::new(CelBool::from(w.is_meshed())),
        "identity" => string(if w.is_meshed() { w.identity.as_str() } else { "" }),
        "ports" => {
            let targets = t.targets();
            let (start, end) = *targets.by_workload.get(wi)?;
            let ports = targets.list[start as usize..end as usize].iter().map(|p| int(i64::from(p.port)));
            Box::new(CelList::from(ports.collect::<Vec<_>>()))
        }
        "labels" => labels(&w.labels),
        "cluster" => string(&t.o.resolved.settings.cluster),
        _ => return None,
    })
}

fn edge_field<'t>(t: &'t Tables<'t>, class: u32, target: u32, entry: u32, f: &str) -> Option<Boxed<'t>> {
    let tr = *t.targets().list.get(target as usize)?;
    Some(match f {
        "client" => Box::new(super::values::Record { t, item: Item::Class(class) }),
        "target" => {
            let item = Item::Target { workload: tr.workload, port: tr.port };
            Box::new(super::values::Record { t, item })
        }
        "route" => string(&t.edges_of(target).entries.get(entry as usize)?.0),
        "partial" => Box::new(CelBool::from(t.edges_of(target).partial(class))),
        _ => return None,
    })
}

fn resource_field<'t>(t: &'t Tables<'t>, r: usize, f: &str) -> Option<Boxed<'t>> {
    let res = t.o.resolved.resources.get(r)?;
    Some(match f {
        "kind" => string(&res.id.kind),
        "namespace" => string(res.namespace()),
        "name" => string(res.name()),
        "apiVersion" => string(&res.id.api_version),
        _ => return None,
    })
}

/// `kind`: `route`, `trafficPolicy`, `uncovered` or `no-proxy`.
fn egress_field<'t>(t: &'t Tables<'t>, e: usize, f: &str) -> Option<Boxed<'t>> {
    let edge = t.egress().get(e)?;
    let fact = &edge.outcome.target;
    Some(match f {
        "client" => Box::new(super::values::Record { t, item: Item::Class(edge.class) }),
        "namespace" => string(&edge.namespace),
        "kind" => string(match (&fact.route, fact.traffic_policy, fact.egress) {
            (Some(_), _, _) => "route",
            (None, Some(_), _) => "trafficPolicy",
            (None, None, Some(kind)) => kind,
            (None, None, None) => "",
        }),
        "egressNetwork" => string(fact.egress_network.as_deref().unwrap_or("")),
        "route" => string(fact.route.as_deref().unwrap_or("")),
        "port" => int(fact.port.map_or(0, i64::from)),
        "verdict" => string(edge.outcome.verdict),
        "backends" => {
            let list: Vec<Boxed<'t>> = edge.outcome.backends.iter().map(|b| string(b.as_str())).collect();
            Box::new(CelList::from(list))
        }
        _ => return None,
    })
}
