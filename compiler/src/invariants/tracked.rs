//! An edge that records what a predicate reads of it.
//!
//! [`Tracked`] behaves as the [`Record`] it wraps, and appends to a [`Log`]
//! every read that depends on which edge it is: a field's value, the
//! identity (equality, `in`, a function argument: all go through
//! [`Probe`]), or the set of keys (iteration, `size`, `in` on the map).
//! Selecting `client` or `target` reads nothing yet: it hands out a tracked
//! view of that side.

use super::fields::{CLASS_FIELDS, EDGE_FIELDS, Item, TARGET_FIELDS};
use super::values::{Probe, Record};
use cel::ExecutionError;
use cel::common::traits::{self, Container, Indexer, Iterable, Sizer};
use cel::common::types::{CelInt, CelString, Type};
use cel::common::value::{CowVal, Val};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Edge,
    Client,
    Target,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum What {
    /// Index into the side's field list.
    Field(u8),
    Id,
    Keys,
}

pub type Read = (Side, What);

/// The reads of one evaluation, in order.
#[derive(Default)]
pub struct Log(Mutex<Vec<Read>>);

impl Log {
    fn push(&self, r: Read) {
        if let Ok(mut reads) = self.0.lock() {
            reads.push(r);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut reads) = self.0.lock() {
            reads.clear();
        }
    }

    /// The distinct reads since [`Log::clear`], first occurrences in order.
    pub fn distinct(&self) -> Vec<Read> {
        let reads = self.0.lock().map(|r| r.clone()).unwrap_or_default();
        let mut out: Vec<Read> = Vec::with_capacity(reads.len());
        for r in reads {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }
}

pub fn fields_of(side: Side) -> &'static [&'static str] {
    match side {
        Side::Edge => EDGE_FIELDS,
        Side::Client => CLASS_FIELDS,
        Side::Target => TARGET_FIELDS,
    }
}

#[derive(Clone, Copy)]
pub struct Tracked<'t> {
    pub rec: Record<'t>,
    pub side: Side,
    pub log: &'t Log,
}

impl std::fmt::Debug for Tracked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rec.fmt(f)
    }
}

impl<'t> Tracked<'t> {
    fn read(&self, what: What) {
        self.log.push((self.side, what));
    }

    /// A tracked view of the edge's client or target.
    fn side_view(&self, f: &str) -> Option<Tracked<'t>> {
        let Item::Edge { class, target, .. } = self.rec.item else { return None };
        let t = self.rec.t;
        let (item, side) = match f {
            "client" => (Item::Class(class), Side::Client),
            "target" => {
                let r = *t.targets().list.get(target as usize)?;
                (Item::Target { workload: r.workload, port: r.port }, Side::Target)
            }
            _ => return None,
        };
        Some(Tracked { rec: Record { t, item }, side, log: self.log })
    }
}

impl<'t> Val for Tracked<'t> {
    fn get_type(&self) -> &Type {
        self.rec.get_type()
    }
    fn cel_type() -> &'static Type {
        <Record as Val>::cel_type()
    }
    self_capabilities!(indexer, iterable, sizer, container);
    fn equals(&self, other: &dyn Val) -> bool {
        self.read(What::Id);
        self.rec.equals(other)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }
}

impl<'t> Indexer for Tracked<'t> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        if idx.downcast_ref::<Probe>().is_some() {
            self.read(What::Id);
        } else if let Some(key) = idx.downcast_ref::<CelString>() {
            let f = key.inner();
            if let Some(view) = self.side_view(f) {
                return Ok(CowVal::owned(view));
            }
            if let Some(i) = fields_of(self.side).iter().position(|x| *x == f) {
                self.read(What::Field(i as u8));
            }
        }
        self.rec.get(idx).map(|v| CowVal::Owned(v.into_owned()))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Iterable for Tracked<'_> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        self.read(What::Keys);
        self.rec.iter()
    }
}

impl Sizer for Tracked<'_> {
    fn size(&self) -> CelInt {
        self.read(What::Keys);
        self.rec.size()
    }
}

impl Container for Tracked<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        self.read(What::Keys);
        self.rec.contains(value)
    }
}
