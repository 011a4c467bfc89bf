//! The `edges` variable: a list that is counted, indexed and searched
//! without being listed, and listed (24 bytes an edge) only when an
//! expression iterates it other than as the top-level `edges.all(...)` or
//! `edges.exists(...)`, which `edges.rs` walks without listing.

use super::fields::Item;
use super::tables::Tables;
use super::values::{Record, RecordList, identify};
use cel::ExecutionError;
use cel::common::traits::{Adder, Container, Indexer, Iterable, Sizer};
use cel::common::types::{self, CelInt, Type};
use cel::common::value::{CowVal, Val};
use std::sync::OnceLock;

static LIST: Type = types::LIST_TYPE;

pub struct EdgeList<'t> {
    t: &'t Tables<'t>,
    items: OnceLock<RecordList<'t>>,
}

impl std::fmt::Debug for EdgeList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("edges")
    }
}

impl<'t> EdgeList<'t> {
    pub fn new(t: &'t Tables<'t>) -> Self {
        EdgeList { t, items: OnceLock::new() }
    }

    fn listed(&self) -> &RecordList<'t> {
        self.items.get_or_init(|| {
            let t = self.t;
            t.all_edges();
            let mut items = Vec::with_capacity(self.len());
            for target in 0..t.targets().list.len() as u32 {
                for (entry, (_, classes)) in t.edges_of(target).entries.iter().enumerate() {
                    let edge = |&class: &u32| Item::Edge { class, target, entry: entry as u32 };
                    items.extend(classes.iter().map(edge).map(|item| Record { t, item }));
                }
            }
            RecordList(items)
        })
    }

    fn len(&self) -> usize {
        let t = self.t;
        t.all_edges();
        (0..t.targets().list.len() as u32)
            .map(|target| t.edges_of(target).entries.iter().map(|(_, c)| c.len()).sum::<usize>())
            .sum()
    }

    /// Edge `i` in list order, found by counting.
    fn nth(&self, mut i: usize) -> Option<Record<'t>> {
        let t = self.t;
        t.all_edges();
        for target in 0..t.targets().list.len() as u32 {
            for (entry, (_, classes)) in t.edges_of(target).entries.iter().enumerate() {
                if let Some(&class) = classes.get(i) {
                    return Some(Record { t, item: Item::Edge { class, target, entry: entry as u32 } });
                }
                i -= classes.len();
            }
        }
        None
    }
}

impl<'t> Val for EdgeList<'t> {
    fn get_type(&self) -> &Type {
        &LIST
    }
    fn cel_type() -> &'static Type {
        &LIST
    }
    fn as_adder<'b, 'v>(&'b self) -> Option<&'b (dyn Adder + 'v)>
    where
        Self: 'v,
    {
        Some(self.listed())
    }
    self_capabilities!(indexer);
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self.listed())
    }
    self_capabilities!(sizer, container);
    fn equals(&self, other: &dyn Val) -> bool {
        self.listed().equals(other)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(EdgeList::new(self.t))
    }
}

impl Sizer for EdgeList<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.len() as i64)
    }
}

impl Container for EdgeList<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        let Some(Item::Edge { class, target, entry }) = identify(value) else { return Ok(false) };
        let edges = self.t.edges_of(target);
        Ok(edges.entries.get(entry as usize).is_some_and(|(_, cs)| cs.binary_search(&class).is_ok()))
    }
}

impl<'t> Indexer for EdgeList<'t> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let i = idx.downcast_ref::<CelInt>().map(|i| *i.inner()).ok_or_else(|| ExecutionError::UnexpectedType {
            got: idx.get_type().name().to_owned(),
            want: "int".to_owned(),
        })?;
        let edge = usize::try_from(i).ok().and_then(|i| self.nth(i));
        edge.map(CowVal::owned).ok_or_else(|| ExecutionError::IndexOutOfBounds(i.into()))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}
